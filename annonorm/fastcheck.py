"""Bulk record checking at msgspec speed, agreeing exactly with the Pydantic models.

The Pydantic models in :mod:`annonorm.schemas` are the source of truth and word the messages,
but validating a million lines through them takes over a minute. This module decodes lines with
msgspec typed structs that state the same per-field rules (types, ``>= 0``, ``> 0``, category
names as a ``Literal``, unknown keys refused) and applies the same cross-field rules in one tight
loop. It only answers "is this line valid?"; :mod:`annonorm.validation` re-validates the lines it
rejects with the Pydantic models to explain why. A hypothesis test proves that both accept exactly
the same records.

The leakage rule (``image_in_several_splits``) lives here too, as :func:`leaks`: the validator
hands over each split's image keys (hashes of the paths, and with ``check_images`` the SHA-256 of
the files) and :func:`repeated_across` finds, in one sort, what another split also has.

Both also refuse what the loader's arrays cannot hold (see :mod:`annonorm.schemas.types`): sides
beyond int32, ids and counts beyond int64, coordinates and box areas beyond float32.
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

import msgspec
import numpy as np
from msgspec import UNSET, Meta, UnsetType

from annonorm.io import UNDECODABLE, iter_lines
from annonorm.paths import check_relative_path
from annonorm.records import (
    CountListError,
    box_counts,
    consistency_problem,
    duplicate_labels,
    keypoints_outside,
    keypoints_problem,
    label_list,
    merge_count_list,
    obb_problem,
    polygon_outside,
    polygon_problem,
    present_labels,
    rle_problem,
    score_problem,
)
from annonorm.schemas.types import FLOAT32_MAX, INT32_MAX, INT64_MAX, INT64_MIN

__all__ = ["CheckedRecord", "RecordChecker", "SplitImages", "leaks", "repeated_across", "stable_key", "values_at"]

NonNegative = Annotated[float, Meta(ge=0, le=FLOAT32_MAX)]
PositiveInt = Annotated[int, Meta(gt=0, le=INT32_MAX)]
CountValue = Annotated[int, Meta(ge=0, le=INT64_MAX)]
ImageId = Annotated[int, Meta(ge=INT64_MIN, le=INT64_MAX)]
AnyName = Annotated[str, Meta(min_length=1)]
Coordinate = Annotated[float, Meta(ge=-FLOAT32_MAX, le=FLOAT32_MAX)]


class FastRle(msgspec.Struct, forbid_unknown_fields=True, frozen=True, gc=False):
    """A box's ``rle``, decoded; its rules are :func:`annonorm.records.rle_problem`'s."""

    size: list[PositiveInt]
    counts: str


class CheckedRecord(Protocol):
    """What the cross-record rules and the quality warnings read from one valid record."""

    image: str
    width: int | None
    height: int | None
    boxes: list[Any]
    mask: str | None
    id: int | str | None


def _struct_types(name_type: Any) -> tuple[type, type]:
    box = msgspec.defstruct(
        "FastBox",
        [
            ("name", name_type),
            ("x1", NonNegative),
            ("y1", NonNegative),
            ("x2", NonNegative),
            ("y2", NonNegative),
            ("polygon", list[list[Coordinate]] | None, None),
            ("rle", FastRle | None, None),
            ("obb", list[Coordinate] | None, None),
            ("keypoints", list[tuple[Coordinate, Coordinate, int]] | None, None),
            ("score", float | None, None),
            ("attributes", dict[str, Any] | None, None),
        ],
        forbid_unknown_fields=True,
        frozen=True,
        gc=False,  # decoded JSON holds no cycles; untracked structs keep the garbage collector idle
    )
    counts_type = dict[name_type, CountValue] | list[dict[name_type, CountValue]] | UnsetType
    record = msgspec.defstruct(
        "FastRecord",
        [
            ("image", str),
            ("width", PositiveInt | None, None),
            ("height", PositiveInt | None, None),
            ("labels", name_type | list[name_type] | UnsetType, UNSET),
            ("counts", counts_type, UNSET),
            ("boxes", list[box], []),  # type: ignore[valid-type]
            ("mask", str | None, None),
            ("id", ImageId | str | None, None),
            ("attributes", dict[str, Any] | None, None),
        ],
        forbid_unknown_fields=True,
        frozen=True,
        gc=False,  # decoded JSON holds no cycles; untracked structs keep the garbage collector idle
    )
    return box, record


class RecordChecker:
    """Checks JSON lines against the record rules, given the manifest's category names (or ``None``)."""

    def __init__(self, categories: Collection[str] | None, keypoints: Mapping[str, int] | None = None) -> None:
        """``keypoints``: category name -> number of keypoint names (a category left out has none);
        ``None`` leaves the number of a box's keypoints unchecked, as the models do without it."""
        self._keypoints = keypoints
        if categories:
            name_type: Any = Literal[tuple(categories)]
        elif categories is None:
            name_type = AnyName
        else:  # a manifest with no category: no name is valid
            name_type = Literal["\x00no category\x00"]
        _, record_type = _struct_types(name_type)
        self._decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(record_type)

    def check(self, line: bytes) -> tuple[CheckedRecord, bool] | None:
        """``(record, suspicious)`` when ``line`` is a valid record, else ``None``.

        ``suspicious`` says that a box may leave the image or be empty, so the caller runs the
        slower quality checks on this record only.
        """
        try:
            record = self._decoder.decode(line)
        except (msgspec.DecodeError, msgspec.ValidationError, *UNDECODABLE):
            return None
        suspicious = _rules_hold(record, self._keypoints)
        if suspicious is None:
            return None
        return record, suspicious


def _relative(path: str) -> bool:
    try:
        check_relative_path(path)
    except ValueError:
        return False
    return True


_name_of = operator.attrgetter("name")

#: The right and bottom edge of an image of unknown size, for the fast test: a box beyond it takes the
#: slow branch, where its area is checked (within a known size, an area always fits float32).
_NO_EDGE = float(INT32_MAX)


def _rules_hold(record: Any, keypoints: Mapping[str, int] | None = None) -> bool | None:
    """The cross-field rules of :class:`annonorm.schemas.Record` on a decoded struct.

    ``None`` when a rule is broken, else whether a box is empty or leaves the image (or its polygon
    or a keypoint does). Names are already known to be categories: the struct types spell them as a
    ``Literal``. ``keypoints`` is what :class:`RecordChecker` was given.
    """
    width, height = record.width, record.height
    if (width is None) != (height is None):
        return None
    if not _relative(record.image) or (record.mask is not None and not _relative(record.mask)):
        return None
    suspicious = False
    right, bottom = (_NO_EDGE, _NO_EDGE) if width is None else (width, height)
    for box in record.boxes:
        x1, y1, x2, y2 = box.x1, box.y1, box.x2, box.y2
        if not (x1 < x2 <= right and y1 < y2 <= bottom):  # one test for the common case (runs per box)
            if x2 < x1 or y2 < y1 or (x2 - x1) * (y2 - y1) > FLOAT32_MAX:
                return None
            suspicious = True  # empty, or leaves the image
        attributes = box.attributes
        if attributes is not None:
            area = attributes.get("area")
            if area is not None and area.__class__ in (int, float) and area > FLOAT32_MAX:
                return None
        if (
            box.polygon is not None
            or box.rle is not None
            or box.obb is not None
            or box.keypoints is not None
            or box.score is not None
        ):
            verdict = _v2_rules_hold(box, width, height, keypoints)
            if verdict is None:
                return None
            suspicious = suspicious or verdict
    # labels, counts and their rules: annonorm.records, as the models apply them
    boxed = box_counts(map(_name_of, record.boxes))
    counts = record.counts
    if counts is UNSET:
        counts = boxed
    elif counts.__class__ is list:
        try:
            counts = merge_count_list(counts)
        except CountListError:
            return None
    labels = record.labels
    labels = present_labels(boxed, counts) if labels is UNSET else label_list(labels)
    if duplicate_labels(labels) or consistency_problem(labels, counts, boxed) is not None:
        return None
    return suspicious


def _v2_rules_hold(box: Any, width: int | None, height: int | None, keypoints: Mapping[str, int] | None) -> bool | None:
    """The rules of a box's format-version-2 fields: ``None`` when one is broken, else whether its
    polygon or a labeled keypoint leaves the image (the models' rules, from :mod:`annonorm.records`)."""
    outside = False
    polygon = box.polygon
    if polygon is not None:
        if polygon_problem(polygon) is not None:
            return None
        outside = width is not None and polygon_outside(polygon, width, height)  # type: ignore[arg-type]
    if box.obb is not None and obb_problem(box.obb, box.x1, box.y1, box.x2, box.y2) is not None:
        return None
    points = box.keypoints
    if points is not None:
        expected = None if keypoints is None else keypoints.get(box.name, 0)
        if keypoints_problem(points, expected) is not None:
            return None
        outside = outside or (width is not None and keypoints_outside(points, width, height))  # type: ignore[arg-type]
    if box.score is not None and score_problem(box.score) is not None:
        return None
    rle = box.rle
    if rle is not None and rle_problem(rle.size, rle.counts, width, height) is not None:
        return None
    return outside


def repeated_across(keys: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Per group (a split's int64 keys), a boolean mask of the rows whose key another group also has.

    One stable sort of all keys: a run of equal keys whose rows come from more than one group marks
    all its rows. Keys are hashes, so a marked row is only a candidate: the caller compares the
    values themselves. A key repeated within one group only is not marked.
    """
    sizes = [len(group) for group in keys]
    if len(keys) < 2 or sum(sizes) == 0:
        return [np.zeros(size, dtype=bool) for size in sizes]
    every = np.concatenate([np.asarray(group, dtype=np.int64) for group in keys])
    owner = np.repeat(np.arange(len(keys)), sizes)
    order = np.argsort(every, kind="stable")
    ordered, owners = every[order], owner[order]
    starts = np.concatenate(([0], np.flatnonzero(ordered[1:] != ordered[:-1]) + 1))
    run = np.zeros(len(ordered), dtype=np.int64)
    run[starts[1:]] = 1
    np.cumsum(run, out=run)  # the run each sorted row belongs to
    mixed = np.minimum.reduceat(owners, starts) != np.maximum.reduceat(owners, starts)
    marked = np.empty(len(every), dtype=bool)
    marked[order] = mixed[run]
    return np.split(marked, np.cumsum(sizes)[:-1])


def stable_key(value: object) -> int:
    """A 64-bit key of an image path or id that is the same in every process."""
    data = (f"i{value}" if isinstance(value, int) else f"s{value}").encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little", signed=True)


def values_at(path: Path, wanted: set[int], field_name: str) -> dict[int, Any]:
    """Line number -> the ``field_name`` of that line's record, for the ``wanted`` lines (valid records)."""
    values: dict[int, Any] = {}
    if wanted:
        for number, line in iter_lines(path):
            if number in wanted:
                values[number] = msgspec.json.decode(line).get(field_name)
    return values


@dataclass
class SplitImages:
    """What the leakage rule needs of one split: its image keys and their lines."""

    split: str
    path: Path
    #: One key per valid record: Python's salted ``hash`` of the image path, or :func:`stable_key`.
    keys: np.ndarray
    lines: np.ndarray
    #: Which key functions made ``keys`` (True: :func:`stable_key`); splits keyed differently are re-keyed.
    stable: frozenset[bool]
    #: ``(n, 32)`` uint8 SHA-256 of the image files (``check_images`` only), and their lines.
    digests: np.ndarray
    digest_lines: np.ndarray


def leaks(splits: Sequence[SplitImages]) -> Iterator[tuple[SplitImages, int, str]]:
    """``(split, line, message)`` for each image path a later split repeats, then for each image file
    whose content a later split has under another path (once per split and image).

    The finding is the later record's; its message names the first split and line holding the image.
    Candidates come from hashes; their lines are read again and compared exactly.
    """
    if len(splits) < 2:
        return
    if len(frozenset().union(*(s.stable for s in splits))) > 1:  # spawned workers keyed some splits
        for s in splits:
            values = values_at(s.path, set(s.lines.tolist()), "image")
            s.keys = np.array([stable_key(values[n]) for n in s.lines.tolist()], dtype=np.int64)
    expected = "expected each image in one split"
    first: dict[str, tuple[str, int]] = {}
    leaked: set[tuple[str, str]] = set()
    for s, marked in zip(splits, repeated_across([s.keys for s in splits]), strict=True):
        images = values_at(s.path, set(s.lines[marked].tolist()), "image")
        for number, image in sorted(images.items()):
            split, line = first.setdefault(image, (s.split, number))
            if split != s.split and (s.split, image) not in leaked:
                leaked.add((s.split, image))
                yield (
                    s,
                    number,
                    f"image {image!r} of split {s.split!r} (line {number}) is also in split {split!r} "
                    + (f"(line {line}); {expected}"),
                )
    prefixes = [np.ascontiguousarray(s.digests[:, :8]).view(np.int64).ravel() for s in splits]
    same: dict[bytes, tuple[str, int, str]] = {}
    for s, marked in zip(splits, repeated_across(prefixes), strict=True):
        digests = dict(zip(s.digest_lines[marked].tolist(), map(bytes, s.digests[marked]), strict=True))
        images = values_at(s.path, set(digests), "image")
        for number, image in sorted(images.items()):
            split, line, other = same.setdefault(digests[number], (s.split, number, image))
            if split != s.split and other != image and (s.split, image) not in leaked:
                leaked.add((s.split, image))
                yield (
                    s,
                    number,
                    (
                        f"image {image!r} of split {s.split!r} (line {number}) has the same content (SHA-256 "
                        f"{digests[number].hex()[:12]}...) as {other!r} in split {split!r} (line {line}); {expected}"
                    ),
                )
