"""Bulk record checking at msgspec speed, agreeing exactly with the Pydantic models.

The Pydantic models in :mod:`annonorm.schemas` are the source of truth and word the messages,
but validating a million lines through them takes over a minute. This module decodes lines with
msgspec typed structs that state the same per-field rules (types, ``>= 0``, ``> 0``, category
names as a ``Literal``, unknown keys refused) and applies the same cross-field rules in one tight
loop. It only answers "is this line valid?"; :mod:`annonorm.validation` re-validates the lines it
rejects with the Pydantic models to explain why. A hypothesis test proves that both accept exactly
the same records.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from annonorm.schemas.types import check_relative_path

__all__ = ["CheckedRecord", "RecordChecker"]

NonNegative = Annotated[float, Meta(ge=0)]
PositiveInt = Annotated[int, Meta(gt=0)]
CountValue = Annotated[int, Meta(ge=0)]
AnyName = Annotated[str, Meta(min_length=1)]


@dataclass(frozen=True)
class CheckedRecord:
    """What the cross-record rules and the quality warnings need from one valid record."""

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
            ("id", int | str | None, None),
            ("attributes", dict[str, Any] | None, None),
        ],
        forbid_unknown_fields=True,
        frozen=True,
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
        self._categories = categories
        _, record_type = _struct_types(name_type)
        self._decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(record_type)

    def check(self, line: bytes) -> CheckedRecord | None:
        """The record's essentials when ``line`` is a valid record, else ``None``."""
        try:
            record = self._decoder.decode(line)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None
        if not _rules_hold(record, self._categories):
            return None
        return CheckedRecord(record.image, record.width, record.height, record.boxes, record.mask, record.id)


def _relative(path: str) -> bool:
    try:
        check_relative_path(path)
    except ValueError:
        return False
    return True


def _rules_hold(record: Any, categories: Collection[str] | None) -> bool:
    """The cross-field rules of :class:`annonorm.schemas.Record`, on a decoded struct."""
    if (record.width is None) != (record.height is None):
        return False
    if not _relative(record.image) or (record.mask is not None and not _relative(record.mask)):
        return False
    boxed: dict[str, int] = {}
    for box in record.boxes:
        if box.x2 < box.x1 or box.y2 < box.y1:
            return False
        boxed[box.name] = boxed.get(box.name, 0) + 1
    counts = record.counts
    if counts is UNSET:
        counts = boxed
    elif isinstance(counts, list):
        merged: dict[str, int] = {}
        for item in counts:
            if len(item) != 1:
                return False
            ((name, value),) = item.items()
            if name in merged:
                return False
            merged[name] = value
        counts = merged
    labels = record.labels
    if labels is UNSET:
        labels = list(dict.fromkeys([*boxed, *(n for n, c in counts.items() if c > 0)]))
    elif isinstance(labels, str):
        labels = [labels]
    if len(set(labels)) != len(labels):
        return False
    for name, number in boxed.items():
        if name not in labels or counts.get(name, 0) < number:
            return False
    return all(count <= 0 or name in labels for name, count in counts.items())
