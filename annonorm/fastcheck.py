"""Bulk record checking at msgspec speed, agreeing exactly with the Pydantic models.

The Pydantic models in :mod:`annonorm.schemas` are the source of truth and word the messages,
but validating a million lines through them takes over a minute. This module decodes lines with
msgspec typed structs that state the same per-field rules (types, ``>= 0``, ``> 0``, category
names as a ``Literal``, unknown keys refused) and applies the same cross-field rules in one tight
loop. It only answers "is this line valid?"; :mod:`annonorm.validation` re-validates the lines it
rejects with the Pydantic models to explain why. A hypothesis test proves that both accept exactly
the same records.

Both also refuse what the loader's arrays cannot hold (see :mod:`annonorm.schemas.types`): sides
beyond int32, ids and counts beyond int64, coordinates and box areas beyond float32.
"""

from __future__ import annotations

import operator
from collections.abc import Collection
from typing import Annotated, Any, Literal, Protocol

import msgspec
from msgspec import UNSET, Meta, UnsetType

from annonorm.io import UNDECODABLE
from annonorm.paths import check_relative_path
from annonorm.records import (
    CountListError,
    box_counts,
    consistency_problem,
    duplicate_labels,
    label_list,
    merge_count_list,
    present_labels,
)
from annonorm.schemas.types import FLOAT32_MAX, INT32_MAX, INT64_MAX, INT64_MIN

__all__ = ["CheckedRecord", "RecordChecker"]

NonNegative = Annotated[float, Meta(ge=0, le=FLOAT32_MAX)]
PositiveInt = Annotated[int, Meta(gt=0, le=INT32_MAX)]
CountValue = Annotated[int, Meta(ge=0, le=INT64_MAX)]
ImageId = Annotated[int, Meta(ge=INT64_MIN, le=INT64_MAX)]
AnyName = Annotated[str, Meta(min_length=1)]


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

    def __init__(self, categories: Collection[str] | None) -> None:
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
        suspicious = _rules_hold(record)
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


def _rules_hold(record: Any) -> bool | None:
    """The cross-field rules of :class:`annonorm.schemas.Record` on a decoded struct.

    ``None`` when a rule is broken, else whether a box is empty or leaves the image. Names are
    already known to be categories: the struct types spell them as a ``Literal``.
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
