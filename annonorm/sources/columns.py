"""Columnar grouping for readers: the items of one list (annotations) joined to those of another (images) by id.

Formats that keep a document's images and annotations in two lists joined by an id (COCO, LVIS, COCO
results, SA-1B-like dumps) build their records one image at a time. Visiting a million decoded Python
objects in image order costs more cache misses than building the records, so the fields are read in file
order into numpy columns (:func:`column`, :func:`field_columns`), the rows are joined to their groups at
numpy speed (:func:`positions`), put in group order once (:class:`Grouping`), and handed out a chunk of
groups at a time (:meth:`Grouping.chunks`). A rule a row breaks is found for every row at once
(:meth:`Grouping.flagged`), so that only the rare group that has one is looked at again.

Nothing here knows a format: a reader names the fields, the engine decides who reads which groups.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

import msgspec
import numpy as np
from msgspec import UNSET, UnsetType

from annonorm.records import box_counts

__all__ = [
    "AttributeColumns",
    "Box",
    "Chunk",
    "GroupedBoxes",
    "Grouping",
    "column",
    "field_columns",
    "first_repeat",
    "flag_column",
    "grouped_record",
    "positions",
]

#: Groups whose rows are handed out at once: bounds a builder's memory.
CHUNK_GROUPS = 4096


def column(values: list[Any]) -> np.ndarray:
    """``values`` (one field of decoded items) as the narrowest array whose ``tolist()`` gives them back
    equal and of the same type: bool, int64, float64, else object."""
    kinds = set(map(type, values))
    dtype = {bool: bool, float: np.float64, int: np.int64}.get(kinds.pop()) if len(kinds) == 1 else None
    if dtype is not None:
        try:
            return np.fromiter(values, dtype=dtype, count=len(values))
        except OverflowError:  # an integer beyond 64 bits
            pass
    return np.fromiter(values, dtype=object, count=len(values))


def positions(keys: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """The position in ``ids`` (unique) of every key, -1 where none: a join of items on their ids.

    Integer ids take a sorted search (a tenth of the time of a dict lookup per key at a million keys);
    others a dict.
    """
    if keys.dtype.kind != "i" or ids.dtype.kind != "i" or not len(ids):
        position_of = {key: index for index, key in enumerate(ids.tolist())}
        return np.array([position_of.get(key, -1) for key in keys.tolist()], dtype=np.int64).reshape(-1)
    sorter = np.argsort(ids)
    sorted_ids = ids[sorter]
    at = np.searchsorted(sorted_ids, keys).clip(max=len(ids) - 1)
    return np.where(sorted_ids[at] == keys, sorter[at], -1)


def first_repeat(values: np.ndarray) -> tuple[int, int] | None:
    """``(index, earlier index)`` of the first value repeating an earlier one (``UNSET`` never counts), or ``None``.

    Integer columns are checked at numpy speed (a sort is much faster than ``np.unique``); only a column
    with a repeat, or of other values, is walked.
    """
    if values.dtype.kind == "i":
        ordered = np.sort(values)
        if not (ordered[1:] == ordered[:-1]).any():
            return None
    first_seen: dict[Any, int] = {}
    for index, value in enumerate(values.tolist()):
        if value is not UNSET and (earlier := first_seen.setdefault(value, index)) != index:
            return index, earlier
    return None


def flag_column(values: list[Any]) -> np.ndarray:
    """0/1 flags (COCO's ``iscrowd``) as a boolean column; any other value is kept as it is."""
    flags = column(values)
    if flags.dtype == np.int64 and ((flags == 0) | (flags == 1)).all():
        return flags.astype(bool)
    if flags.dtype == bool:
        return flags
    return column([bool(v) if v is not UNSET and v in (0, 1) else v for v in values])


def field_columns(
    items: Sequence[msgspec.Struct], fields: Sequence[str], flags: frozenset[str] = frozenset()
) -> dict[str, tuple[np.ndarray, int]]:
    """Field -> (its values in item order, how many items lack it), for the ``fields`` some items have;
    ``flags`` are :func:`flag_column` s."""
    columns = {}
    for key in fields:
        values = list(map(attrgetter(key), items))
        absent = values.count(UNSET)
        if absent < len(values):
            columns[key] = (flag_column(values) if key in flags else column(values), absent)
    return columns


@dataclass(frozen=True)
class Chunk:
    """Groups ``start..stop`` of a :class:`Grouping` and where their rows are."""

    start: int
    stop: int
    #: Row offsets (in group order): group ``start + i`` holds rows ``bounds[i]..bounds[i + 1]``.
    bounds: list[int]

    @property
    def first(self) -> int:
        """The first row of the chunk."""
        return self.bounds[0]

    @property
    def last(self) -> int:
        """One past the last row of the chunk."""
        return self.bounds[-1]

    def groups(self) -> Iterator[tuple[int, int, int]]:
        """``(group, first row, one past its last row)`` for every group of the chunk, rows in group order."""
        bounds = self.bounds
        for offset, group in enumerate(range(self.start, self.stop)):
            yield group, bounds[offset], bounds[offset + 1]


class Grouping:
    """Rows (annotations) in the order of the groups (images) they join, file order within a group.

    ``keys`` holds the group id of every row, ``ids`` the id of every group (unique). Rows whose key is
    no group id are :attr:`orphans` and are left out of the order.
    """

    def __init__(self, keys: np.ndarray, ids: np.ndarray) -> None:
        owners = positions(keys, ids)
        known = np.flatnonzero(owners >= 0)
        #: Row of the file at every position of the group order.
        self.order: np.ndarray = known[np.argsort(owners[known], kind="stable")]  # stable: file order kept
        #: Group of every position.
        self.owner: np.ndarray = owners[self.order]
        #: Rows (file order) whose key is no group's id.
        self.orphans: list[int] = np.flatnonzero(owners < 0).tolist()
        self.size = len(ids)
        self.starts: np.ndarray = np.r_[0, np.cumsum(np.bincount(self.owner, minlength=self.size))]

    def take(self, values: np.ndarray) -> np.ndarray:
        """A column in file order, put in group order."""
        return values[self.order]

    def take_list(self, values: Sequence[Any]) -> list[Any]:
        """A list in file order, put in group order."""
        return [values[i] for i in self.order.tolist()]

    def flagged(self, flags: np.ndarray) -> np.ndarray:
        """Per group: whether any of its rows is flagged (``flags`` in group order)."""
        return np.bincount(self.owner[flags], minlength=self.size) > 0

    def occupied(self) -> int:
        """How many groups have at least one row."""
        return int(np.count_nonzero(np.diff(self.starts)))

    def chunks(self, start: int, stop: int, size: int = CHUNK_GROUPS) -> Iterator[Chunk]:
        """Groups ``start..stop``, ``size`` groups at a time."""
        for chunk in range(start, stop, size):
            end = min(chunk + size, stop)
            yield Chunk(chunk, end, self.starts[chunk : end + 1].tolist())


class AttributeColumns:
    """Optional fields of rows kept as attributes: one dict per row, only with the fields the row has.

    ``columns`` is :func:`field_columns` of the rows (file order), ``extras`` their unknown keys (one
    dict per row, or ``None``); both are put in group order here.
    """

    def __init__(
        self, columns: dict[str, tuple[np.ndarray, int]], grouping: Grouping, extras: list[dict[str, Any]] | None
    ) -> None:
        self.columns = {key: (grouping.take(values), absent == 0) for key, (values, absent) in columns.items()}
        self.extras = None
        if extras is not None:
            self.extras = grouping.take(np.fromiter(extras, dtype=object, count=len(extras)))

    def pop(self, key: str) -> tuple[np.ndarray, bool] | None:
        """Take a field out (a reader maps it to a field of its own): its column and whether every row has it."""
        return self.columns.pop(key, None)

    def __bool__(self) -> bool:
        return bool(self.columns) or self.extras is not None

    def dicts(self, first: int, last: int) -> list[dict[str, Any]]:
        """The attributes of positions ``first..last`` (group order), fields in column order, extras after."""
        attributes: list[dict[str, Any]] = [{} for _ in range(last - first)]
        for key, (values, everywhere) in self.columns.items():
            for extra, value in zip(attributes, values[first:last].tolist(), strict=True):
                if everywhere or value is not UNSET:
                    extra[key] = value
        if self.extras is not None:
            for extra, unknown in zip(attributes, self.extras[first:last].tolist(), strict=True):
                extra.update(unknown)
        return attributes


class Box(msgspec.Struct, omit_defaults=True, gc=False):
    """A box as a reader builds it: encodes to exactly the canonical box dict (key order included), and faster."""

    name: str
    x1: float
    y1: float
    x2: float
    y2: float
    polygon: list[list[float]] | msgspec.Raw | UnsetType = UNSET  # Raw: the JSON text of rings already canonical
    rle: dict[str, Any] | UnsetType = UNSET
    keypoints: list[list[Any]] | UnsetType = UNSET
    score: float | UnsetType = UNSET
    attributes: dict[str, Any] | UnsetType = UNSET


class GroupedBoxes:
    """The boxes of grouped rows, built a chunk at a time, and each group's boxes, labels and counts.

    ``classes`` (group order) indexes ``names``; ``corners`` are ``[x1, y1, x2, y2]`` rows in group
    order; ``boxed`` says which rows are boxes: the others only name a class present in their group (an
    image-level label). A reader gives the boxes of a chunk their other fields before taking groups.
    """

    def __init__(
        self,
        grouping: Grouping,
        classes: np.ndarray,
        names: Sequence[str],
        corners: np.ndarray,
        boxed: np.ndarray,
        attributes: AttributeColumns,
    ) -> None:
        self.names, self.corners, self.boxed, self.attributes = list(names), corners, boxed, attributes
        self.classes = classes
        self.unboxed = grouping.flagged(~boxed)

    def build(self, chunk: Chunk) -> ChunkBoxes:
        """The boxes of every row of ``chunk``."""
        first, last = chunk.first, chunk.last
        box_names = [self.names[k] for k in self.classes[first:last].tolist()]
        x1, y1, x2, y2 = self.corners[first:last].T.tolist()
        if not self.attributes:
            boxes = [Box(*row) for row in zip(box_names, x1, y1, x2, y2, strict=True)]
        else:
            rows = zip(box_names, x1, y1, x2, y2, self.attributes.dicts(first, last), strict=True)
            boxes = [Box(n, a, b, c, d, attributes=e or UNSET) for n, a, b, c, d, e in rows]
        return ChunkBoxes(self, chunk, boxes, box_names, self.unboxed[chunk.start : chunk.stop].tolist())


@dataclass
class ChunkBoxes:
    """The boxes of one :class:`Chunk` (``boxes[i]`` is row ``chunk.first + i``) and their class names."""

    source: GroupedBoxes
    chunk: Chunk
    boxes: list[Box]
    names: list[str]
    unboxed: list[bool]

    def group(self, group: int, low: int, high: int) -> tuple[list[Box], list[str], dict[str, int]]:
        """The boxes, ``labels`` and ``counts`` of a group holding rows ``low..high``."""
        first = self.chunk.first
        own, own_names = self.boxes[low - first : high - first], self.names[low - first : high - first]
        if not self.unboxed[group - self.chunk.start]:
            counts = box_counts(own_names)
            return own, list(counts), counts
        labels = list(dict.fromkeys(own_names))  # boxed and unboxed rows name the classes present
        kept = self.source.boxed[low:high].tolist()
        own = [box for box, keep in zip(own, kept, strict=True) if keep]
        return own, labels, box_counts(name for name, keep in zip(own_names, kept, strict=True) if keep)


def grouped_record(
    *,
    image: str,
    size: tuple[int | None, int | None],
    group: tuple[list[Box], list[str], dict[str, int]],
    mask: str | None,
    id: Any,
    attributes: dict[str, Any] | None,
) -> dict[str, Any]:
    """The canonical record of one group: ``group`` is :meth:`ChunkBoxes.group`'s ``(boxes, labels, counts)``,
    ``size`` the image's ``(width, height)`` (``None`` when unknown). Keys in the canonical order, so that the
    writer encodes it as it is (:func:`~annonorm.records.make_record` derives ``labels`` from dict boxes)."""
    record: dict[str, Any] = {"image": image}
    width, height = size
    if width is not None and height is not None:
        record["width"], record["height"] = width, height
    record["labels"], record["counts"], record["boxes"] = group[1], group[2], group[0]
    if mask is not None:
        record["mask"] = mask
    record["id"] = id
    if attributes:
        record["attributes"] = attributes
    return record
