"""Building the loader's index: one streaming pass over a split into flat, checked numpy arrays.

:func:`build_index` decodes a split with msgspec typed decoding (no per-box object kept) into the
arrays of :data:`ARRAYS`: record offsets into one box array, label ids, counts, image ids and sizes,
the image and mask paths as one UTF-8 buffer plus offsets, and the format-version-2 fields per box
(polygon rings as flat float64 coordinates with ring and box offsets, RLE strings as bytes with
offsets, keypoints as an ``(n, 3)`` array with offsets, scores). :mod:`annonorm.index` checks,
caches and maps them.
"""

from __future__ import annotations

import hashlib
import math
import operator
import re
from array import array
from collections.abc import Mapping, Sequence
from itertools import chain
from pathlib import Path
from typing import Annotated, Any

import msgspec
import numpy as np
from msgspec import UNSET, Meta, UnsetType

from annonorm.errors import InvalidDataError, ParseError
from annonorm.fsutil import open_regular
from annonorm.records import (
    CountListError,
    box_counts,
    label_list,
    merge_count_list,
    polygon_problem,
    present_labels,
)
from annonorm.schemas.types import FLOAT32_MAX, INT32_MAX, INT64_MAX, INT64_MIN

__all__ = ["ARRAYS", "BOX_OFFSETS", "OFFSETS", "VISIBILITIES", "build_index", "categories_sha256"]

_INT64 = Annotated[int, Meta(ge=INT64_MIN, le=INT64_MAX)]
_SIDE = Annotated[int, Meta(gt=0, le=INT32_MAX)]
_COUNT = Annotated[int, Meta(ge=0, le=INT64_MAX)]
_COORD = Annotated[float, Meta(ge=0, le=FLOAT32_MAX)]
_NAME = Annotated[str, Meta(min_length=1)]
_PATH = Annotated[str, Meta(min_length=1)]

# name -> (dtype, trailing shape); the first dimension is records (+1 for offsets), boxes, or a flat length.
# fmt: off
ARRAYS: dict[str, tuple[str, tuple[int, ...]]] = {
    "box_offsets": ("int64", ()), "boxes": ("float32", (4,)), "box_labels": ("int32", ()),
    "box_area": ("float32", ()), "box_iscrowd": ("uint8", ()),
    "label_offsets": ("int64", ()), "label_ids": ("int32", ()),
    "count_offsets": ("int64", ()), "count_ids": ("int32", ()), "count_values": ("int64", ()),
    "image_ids": ("int64", ()), "sizes": ("int32", (2,)), "lines": ("int64", ()),
    "image_offsets": ("int64", ()), "image_bytes": ("uint8", ()),
    "mask_offsets": ("int64", ()), "mask_bytes": ("uint8", ()),
    # Format version 2, per box; each group is empty when no box of the split has the field.
    "box_rings": ("int64", ()), "ring_offsets": ("int64", ()), "polygon_coords": ("float64", ()),
    "rle_offsets": ("int64", ()), "rle_bytes": ("uint8", ()), "rle_sizes": ("int32", (2,)),
    "keypoint_offsets": ("int64", ()), "keypoints": ("float32", (3,)),
    "box_score": ("float32", ()),
}
# offsets array -> the flat array it indexes into
OFFSETS = {
    "box_offsets": "box_labels", "label_offsets": "label_ids", "count_offsets": "count_ids",
    "image_offsets": "image_bytes", "mask_offsets": "mask_bytes",
}
# The optional per-box groups: box offsets array -> (the array it indexes into, the other arrays of the group).
BOX_OFFSETS = {
    "box_rings": ("ring_offsets", ("polygon_coords",)), "rle_offsets": ("rle_bytes", ("rle_sizes",)),
    "keypoint_offsets": ("keypoints", ()),
}
# fmt: on


# ------------------------------------------------------------------------------------------ decoding


class _BoxAttributes(msgspec.Struct, gc=False):
    """The box attributes the loader reads; other keys are skipped unread.

    Attributes are free-form in the format, so a value of another type is not an error here:
    see :func:`_crowd` and :func:`_area`.
    """

    iscrowd: Any = None
    area: Any = None


def _crowd(value: Any) -> int:
    """``iscrowd`` as 0/1: true or a non-zero number is 1, anything else (absent, a string...) 0."""
    return 1 if value is True or (type(value) in (int, float) and value != 0) else 0


def _area(value: Any) -> float:
    """The ``area`` attribute when it is a number >= 0, else NaN (the box's area is used).

    A number beyond float32 is inf here, refused afterwards with the place named (as the validator does).
    """
    if type(value) not in (int, float):
        return math.nan
    if value > FLOAT32_MAX:
        return math.inf
    return float(value) if value >= 0 else math.nan


class _Rle(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    size: list[_SIDE]
    counts: str


class _Box(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    name: _NAME
    x1: _COORD
    y1: _COORD
    x2: _COORD
    y2: _COORD
    # Format version 2: kept loosely typed here (the validator owns their rules); see build_index.
    polygon: list[list[float]] | None = None
    rle: _Rle | None = None
    obb: list[float] | None = None
    keypoints: list[list[float]] | None = None
    score: float | None = None
    attributes: _BoxAttributes | None = None


class _Record(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    image: _PATH
    width: _SIDE | None = None
    height: _SIDE | None = None
    labels: _NAME | list[_NAME] | UnsetType = UNSET
    counts: dict[_NAME, _COUNT] | list[dict[_NAME, _COUNT]] | UnsetType = UNSET
    boxes: list[_Box] = []
    mask: _PATH | None = None
    id: _INT64 | str | None = None
    # Record attributes are not read by the loader: keep them as raw bytes, undecoded.
    attributes: msgspec.Raw = msgspec.Raw(b"null")


def categories_sha256(categories: Sequence[str], keypoint_counts: Mapping[str, int] | None = None) -> str:
    # The keypoint counts are checked while indexing: an index is only valid for the same ones.
    data: Any = list(categories) if not keypoint_counts else [list(categories), sorted(keypoint_counts.items())]
    return hashlib.sha256(msgspec.json.encode(data)).hexdigest()


_NO_EXTRAS = (None, None, None, None)
VISIBILITIES = (0.0, 1.0, 2.0)
_RLE_STRING = re.compile(rb"[0-o]*")


class _Extras:
    """The format-version-2 fields of a split's boxes, gathered sparsely (box number, value) while indexing."""

    def __init__(self, keypoint_counts: Mapping[str, int] | None) -> None:
        self.keypoint_counts = keypoint_counts
        self.polygon_boxes: array[int] = array("q")
        self.polygon_rings: array[int] = array("q")
        self.ring_lengths: array[int] = array("q")
        self.coords: array[float] = array("d")
        self.rle_boxes: array[int] = array("q")
        self.rle_lengths: array[int] = array("q")
        self.rle_sizes: array[int] = array("i")
        self.rle_bytes = bytearray()
        self.keypoint_boxes: array[int] = array("q")
        self.keypoint_counts_of: array[int] = array("q")
        self.keypoint_values: array[float] = array("d")
        self.score_boxes: array[int] = array("q")
        self.scores: array[float] = array("d")

    def add(self, number: int, position: int, flat: int, box: _Box, size: tuple[int, int] | None, file: Path) -> None:
        """Keep box ``position`` of line ``number`` (the split's box ``flat``); refuse what the arrays cannot hold."""
        where = f"line {number}: boxes[{position}]"
        polygon = box.polygon
        if polygon is not None:
            problem = polygon_problem(polygon)
            if problem is not None:
                raise InvalidDataError(problem[1], file=file, location=f"{where}.polygon")
            values = list(chain.from_iterable(polygon))
            if not all(map(math.isfinite, values)):
                raise InvalidDataError("polygon holds a coordinate that is not finite", file=file, location=where)
            self.polygon_boxes.append(flat)
            self.polygon_rings.append(len(polygon))
            self.ring_lengths.extend(map(len, polygon))
            self.coords.extend(values)
        rle = box.rle
        if rle is not None:
            if len(rle.size) != 2:
                raise InvalidDataError(
                    f"rle.size has {len(rle.size)} numbers; expected [height, width]", file=file, location=where
                )
            if size is not None and (rle.size[0], rle.size[1]) != (size[1], size[0]):
                raise InvalidDataError(
                    f"rle.size is {rle.size} but the image is [{size[1]}, {size[0]}]; expected [height, width]",
                    file=file,
                    location=f"{where}.rle",
                )
            counts = rle.counts.encode("utf-8")
            if not _RLE_STRING.fullmatch(counts):
                raise InvalidDataError(
                    "rle.counts holds a character no COCO RLE string has (expected '0'..'o')",
                    file=file,
                    location=f"{where}.rle.counts",
                )
            self.rle_boxes.append(flat)
            self.rle_sizes.extend(rle.size)
            self.rle_lengths.append(len(counts))
            self.rle_bytes += counts
        keypoints = box.keypoints
        if keypoints is not None:
            self._add_keypoints(keypoints, box.name, flat, where, file)
        score = box.score
        if score is not None:
            if not 0.0 <= score <= 1.0:
                raise InvalidDataError(
                    f"score {score:g} is outside [0, 1]; expected a confidence between 0 and 1",
                    file=file,
                    location=f"{where}.score",
                )
            self.score_boxes.append(flat)
            self.scores.append(score)

    def _add_keypoints(self, keypoints: list[list[float]], name: str, flat: int, where: str, file: Path) -> None:
        expected = None if self.keypoint_counts is None else self.keypoint_counts.get(name, 0)
        if expected is not None and len(keypoints) != expected:
            raise InvalidDataError(
                f"{len(keypoints)} keypoints where the category names {expected}; "
                "expected one [x, y, v] per keypoint name",
                file=file,
                location=f"{where}.keypoints",
            )
        for index, point in enumerate(keypoints):
            if len(point) != 3 or point[2] not in VISIBILITIES:
                raise InvalidDataError(
                    "expected [x, y, v] with v 0 (not labeled), 1 (labeled, not visible) or 2 (visible)",
                    file=file,
                    location=f"{where}.keypoints[{index}]",
                )
            if not (abs(point[0]) <= FLOAT32_MAX and abs(point[1]) <= FLOAT32_MAX):
                raise InvalidDataError(
                    f"coordinate is not a finite number within float32's range (at most {FLOAT32_MAX:g}), "
                    "which the loader keeps keypoints in",
                    file=file,
                    location=f"{where}.keypoints[{index}]",
                )
            self.keypoint_values.extend(point)
        self.keypoint_boxes.append(flat)
        self.keypoint_counts_of.append(len(keypoints))

    def arrays(self, boxes: int) -> dict[str, np.ndarray]:
        """The dense per-box arrays (offsets over every box); a group no box has stays empty."""

        def offsets(which: array[int], lengths: array[int]) -> np.ndarray:
            if not len(which):
                return np.empty(0, dtype=np.int64)
            per_box = np.zeros(boxes + 1, dtype=np.int64)
            per_box[_as_numpy(which, "int64") + 1] = _as_numpy(lengths, "int64")
            return np.cumsum(per_box)

        ring_offsets = np.empty(0, dtype=np.int64)
        if len(self.polygon_boxes):
            ring_offsets = np.concatenate(([0], np.cumsum(_as_numpy(self.ring_lengths, "int64"))))
        rle_sizes = np.empty((0, 2), dtype=np.int32)
        if len(self.rle_boxes):
            rle_sizes = np.zeros((boxes, 2), dtype=np.int32)
            rle_sizes[_as_numpy(self.rle_boxes, "int64")] = _as_numpy(self.rle_sizes, "int32").reshape(-1, 2)
        box_score = np.empty(0, dtype=np.float32)
        if len(self.score_boxes):
            box_score = np.full(boxes, np.nan, dtype=np.float32)
            box_score[_as_numpy(self.score_boxes, "int64")] = _as_numpy(self.scores, "float32")
        return {
            "box_rings": offsets(self.polygon_boxes, self.polygon_rings),
            "ring_offsets": ring_offsets,
            "polygon_coords": _as_numpy(self.coords, "float64"),
            "rle_offsets": offsets(self.rle_boxes, self.rle_lengths),
            "rle_bytes": _as_numpy(self.rle_bytes, "uint8"),
            "rle_sizes": rle_sizes,
            "keypoint_offsets": offsets(self.keypoint_boxes, self.keypoint_counts_of),
            "keypoints": _as_numpy(self.keypoint_values, "float32").reshape(-1, 3),
            "box_score": box_score,
        }


def _as_numpy(values: array[Any] | bytearray, dtype: str) -> np.ndarray:
    if not len(values):
        return np.empty(0, dtype=dtype)
    return np.frombuffer(values, dtype=np.uint8 if isinstance(values, bytearray) else values.typecode).astype(dtype)


def _merge_counts(counts: list[dict[str, int]], file: Path, number: int) -> dict[str, int]:
    try:
        merged: dict[str, int] = merge_count_list(counts)
    except CountListError as exc:
        raise InvalidDataError(exc.reason, file=file, location=f"line {number}: counts[{exc.position}]") from None
    return merged


def _unknown(name: str, key: str, file: Path, number: int) -> InvalidDataError:
    return InvalidDataError(f"{name!r} is not a category of the manifest", file=file, location=f"line {number}: {key}")


def _path_bytes(value: str, key: str, file: Path, number: int) -> bytes:
    if "\x00" in value:  # no file system takes it (the format refuses it too)
        raise InvalidDataError("path must not contain a NUL character", file=file, location=f"line {number}: {key}")
    return value.encode("utf-8")


def _box_problem(
    boxes: np.ndarray, area: np.ndarray, offsets: np.ndarray, lines: array[int], file: Path
) -> InvalidDataError | None:
    """The first box out of order or beyond the loader's float32 areas, worded as the validator words it."""
    own_area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    checks = (
        ("order", (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])),
        ("area", own_area > FLOAT32_MAX),
        ("attribute", area > FLOAT32_MAX),
    )
    for kind, bad in checks:
        found = np.flatnonzero(bad)
        if not found.size:
            continue
        flat = int(found[0])
        position = int(np.searchsorted(offsets, flat, side="right")) - 1
        where = f"line {lines[position]}: boxes[{flat - int(offsets[position])}]"
        if kind == "order":
            x1, y1, x2, y2 = boxes[flat].tolist()
            message = f"corners out of order ({x1}, {y1}, {x2}, {y2}); expected x1 <= x2 and y1 <= y2"
        elif kind == "area":
            message = f"box area {float(own_area[flat]):g} is beyond float32's range (at most {FLOAT32_MAX:g})"
        else:
            where += ".attributes.area"
            message = f"attributes.area is beyond float32's range (at most {FLOAT32_MAX:g})"
        return InvalidDataError(
            f"{message}, which the loader keeps areas in" if kind != "order" else message, file=file, location=where
        )
    return None


def build_index(
    split_path: Path, categories: Sequence[str], keypoint_counts: Mapping[str, int] | None = None
) -> tuple[dict[str, np.ndarray], str]:
    """Read a split file in one streaming pass into the index arrays; return them and the file's SHA-256.

    Each line is decoded with msgspec into typed structs (unknown keys refused, types and ranges
    checked) and copied into flat arrays at once, so memory holds only the arrays being built. A
    line that is not a valid record raises :class:`ParseError` (not JSON) or
    :class:`InvalidDataError` naming the file, the line and the key. This is not the full
    validator (``annonorm validate`` is): it checks what the loader relies on, and refuses what its
    arrays cannot hold as the validator does (:mod:`annonorm.schemas.types`). The split file must
    be a regular file (checked on the opened descriptor).

    Format version 2 fields (``polygon``, ``rle``, ``keypoints``, ``score``; ``obb`` is not kept)
    go to per-box arrays, empty when no box has the field. ``keypoint_counts`` (category name ->
    number of keypoint names, a category left out has none) checks each box's keypoints; ``None``
    leaves their number unchecked.
    """
    extras = _Extras(keypoint_counts)
    extras_of = operator.attrgetter("polygon", "rle", "keypoints", "score")
    decode = msgspec.json.Decoder(_Record).decode
    category_ids = {name: position for position, name in enumerate(categories)}
    digest = hashlib.sha256()
    coords: array[float] = array("d")
    box_labels: array[int] = array("i")
    areas: array[float] = array("d")
    crowd: array[int] = array("B")
    box_offsets: array[int] = array("q", [0])
    label_ids: array[int] = array("i")
    label_offsets: array[int] = array("q", [0])
    count_ids: array[int] = array("i")
    count_values: array[int] = array("q")
    count_offsets: array[int] = array("q", [0])
    image_ids: array[int] = array("q")
    sizes: array[int] = array("i")
    lines: array[int] = array("q")
    image_bytes = bytearray()
    image_offsets: array[int] = array("q", [0])
    mask_bytes = bytearray()
    mask_offsets: array[int] = array("q", [0])
    nan = math.nan
    name_of = operator.attrgetter("name")
    corners_of = operator.attrgetter("x1", "y1", "x2", "y2")
    attributes_of = operator.attrgetter("attributes")
    with open_regular(split_path, "split file") as stream:
        for number, line in enumerate(stream, start=1):
            digest.update(line)
            if line.isspace():
                continue
            try:
                record = decode(line)
            except msgspec.ValidationError as exc:
                raise InvalidDataError(
                    f"not a valid record: {exc}", file=split_path, location=f"line {number}"
                ) from None
            except msgspec.DecodeError as exc:
                raise ParseError(f"not valid JSON ({exc})", file=split_path, location=f"line {number}") from None
            first_box = len(box_labels)
            record_boxes = record.boxes
            if record_boxes:
                try:
                    box_labels.extend(map(category_ids.__getitem__, map(name_of, record_boxes)))
                except KeyError:
                    position, name = next((k, b.name) for k, b in enumerate(record_boxes) if b.name not in category_ids)
                    raise _unknown(name, f"boxes[{position}].name", split_path, number) from None
                coords.extend(chain.from_iterable(map(corners_of, record_boxes)))
                for attributes in map(attributes_of, record_boxes):
                    if attributes is None:
                        areas.append(nan)
                        crowd.append(0)
                    else:
                        areas.append(_area(attributes.area))
                        crowd.append(_crowd(attributes.iscrowd))
                for position, found_extras in enumerate(map(extras_of, record_boxes)):
                    if found_extras != _NO_EXTRAS:
                        size = (record.width, record.height) if record.width and record.height else None
                        extras.add(number, position, first_box + position, record_boxes[position], size, split_path)
            box_offsets.append(len(box_labels))

            counts = record.counts
            if isinstance(counts, UnsetType):
                # The seed format may leave counts out: one per box, in first-seen order.
                derived = box_counts(box_labels[first_box:])
                count_ids.extend(derived)
                count_values.extend(derived.values())
                counted = derived
            else:
                if isinstance(counts, list):
                    counts = _merge_counts(counts, split_path, number)
                counted = {}
                for name, value in counts.items():
                    found = category_ids.get(name)
                    if found is None:
                        raise _unknown(name, f"counts.{name}", split_path, number)
                    counted[found] = value
                count_ids.extend(counted)
                count_values.extend(counted.values())
            count_offsets.append(len(count_ids))

            labels = record.labels
            if isinstance(labels, UnsetType):
                # Derived as the schema does: boxed classes, then counted ones, first-seen order.
                label_ids.extend(present_labels(box_labels[first_box:], counted))
            else:
                for position, name in enumerate(label_list(labels)):
                    found = category_ids.get(name)
                    if found is None:
                        raise _unknown(name, f"labels[{position}]", split_path, number)
                    label_ids.append(found)
            label_offsets.append(len(label_ids))

            if (record.width is None) != (record.height is None):
                raise InvalidDataError(
                    "width and height must be given together (or both left out)",
                    file=split_path,
                    location=f"line {number}",
                )
            sizes.extend((record.width or 0, record.height or 0))
            identifier = record.id
            # image_id: the record's id when it is an integer, else the record's position in the split.
            image_ids.append(identifier if type(identifier) is int else len(lines))
            lines.append(number)
            image_bytes += _path_bytes(record.image, "image", split_path, number)
            image_offsets.append(len(image_bytes))
            if record.mask is not None:
                mask_bytes += _path_bytes(record.mask, "mask", split_path, number)
            mask_offsets.append(len(mask_bytes))

    boxes = np.frombuffer(coords, dtype=np.float64).reshape(-1, 4) if len(coords) else np.empty((0, 4))
    offsets = _as_numpy(box_offsets, "int64")
    given_area = np.frombuffer(areas, dtype=np.float64) if len(areas) else np.empty(0)
    with np.errstate(over="ignore", invalid="ignore"):
        problem = _box_problem(boxes, given_area, offsets, lines, split_path)
    if problem is not None:
        raise problem
    # area: the source's own area (COCO: the segment's) when the box carries one, else the box's.
    area = np.where(np.isnan(given_area), (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), given_area)
    arrays = {
        "box_offsets": offsets,
        "boxes": boxes.astype(np.float32),
        "box_labels": _as_numpy(box_labels, "int32"),
        "box_area": area.astype(np.float32),
        "box_iscrowd": _as_numpy(crowd, "uint8"),
        "label_offsets": _as_numpy(label_offsets, "int64"),
        "label_ids": _as_numpy(label_ids, "int32"),
        "count_offsets": _as_numpy(count_offsets, "int64"),
        "count_ids": _as_numpy(count_ids, "int32"),
        "count_values": _as_numpy(count_values, "int64"),
        "image_ids": _as_numpy(image_ids, "int64"),
        "sizes": _as_numpy(sizes, "int32").reshape(-1, 2),
        "lines": _as_numpy(lines, "int64"),
        "image_offsets": _as_numpy(image_offsets, "int64"),
        "image_bytes": _as_numpy(image_bytes, "uint8"),
        "mask_offsets": _as_numpy(mask_offsets, "int64"),
        "mask_bytes": _as_numpy(mask_bytes, "uint8"),
        **extras.arrays(len(box_labels)),
    }
    return arrays, digest.hexdigest()
