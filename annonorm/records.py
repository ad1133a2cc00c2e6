"""THE canonical record rules: building a record, the seed's shorthand forms, labels/counts, key order.

A rule of the format (layer 0), written once and used by the Pydantic models
(:mod:`annonorm.schemas.record`), the bulk fast check (:mod:`annonorm.fastcheck`), the loader's
index (:mod:`annonorm.index`), the reader of normalized datasets (:mod:`annonorm.io`), the sink
that writes records (:mod:`annonorm.sink`) and the converters (:func:`make_record`).

- ``labels``: the classes present. The seed writes one class as a bare string (:func:`label_list`).
- ``counts``: class -> number of items; the seed writes a list of one-key objects
  (:func:`merge_count_list`). Left out, it is the number of boxes per class (:func:`box_counts`).
- Left out, ``labels`` is the boxed classes, then the counted ones (count > 0), in first-seen order
  (:func:`present_labels`).
- A boxed class is in ``labels`` and counted at least once per box; a counted class is in
  ``labels`` (:func:`consistency_problem`).

The derivations are generic over the class key: the models and the fast check count names, the
loader's index counts category ids.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from annonorm.geometry import COORD_DECIMALS

__all__ = [
    "BOX_KEYS",
    "RECORD_KEYS",
    "CountListError",
    "box_counts",
    "canonical_box",
    "canonical_record",
    "consistency_problem",
    "duplicate_labels",
    "label_list",
    "make_record",
    "merge_count_list",
    "present_labels",
]

#: The record's keys in the order the canonical form writes them.
RECORD_KEYS = ("image", "width", "height", "labels", "counts", "boxes", "mask", "id", "attributes")
#: A box's keys in the order the canonical form writes them.
BOX_KEYS = ("name", "x1", "y1", "x2", "y2", "attributes")

K = TypeVar("K", bound=Hashable)


class CountListError(ValueError):
    """The seed's list of one-key count objects is malformed at ``position``.

    ``str(error)`` is the models' message (``counts[1]: class 'car' is counted twice``); ``reason``
    is the same without the place, for callers that name the place themselves.
    """

    def __init__(self, position: int, message: str, reason: str) -> None:
        super().__init__(message)
        self.position = position
        self.reason = reason


def label_list(value: Any) -> Any:
    """The seed's bare-string ``labels`` (one class) as a list; anything else as it is."""
    return [value] if isinstance(value, str) else value


def merge_count_list(value: Any) -> Any:
    """The seed's ``[{"car": 2}, {"bike": 3}]`` as ``{"car": 2, "bike": 3}``; anything else as it is.

    Raises :class:`CountListError` for an item that is not a one-key object or a class counted twice.
    """
    if not isinstance(value, list):
        return value
    merged: dict[Any, Any] = {}
    for index, item in enumerate(value):
        if not isinstance(item, dict) or len(item) != 1:
            raise CountListError(
                index,
                f"counts[{index}] must be an object with exactly one class name key",
                "expected an object with exactly one class name key",
            )
        ((name, count),) = item.items()
        if name in merged:
            reason = f"class {name!r} is counted twice"
            raise CountListError(index, f"counts[{index}]: {reason}", reason)
        merged[name] = count
    return merged


def box_counts(names: Iterable[K]) -> dict[K, int]:
    """The number of boxes per class, classes in first-seen order: ``counts`` when it is left out."""
    counted: dict[K, int] = {}
    for name in names:
        counted[name] = counted.get(name, 0) + 1
    return counted


def present_labels(boxed: Iterable[K], counts: Mapping[K, int]) -> list[K]:
    """The classes present: the boxed ones, then the counted ones (count > 0), in first-seen order.

    ``labels`` when it is left out. ``boxed`` is the boxes' classes (repeats allowed) or a mapping
    of them, ``counts`` the record's (merged) counts.
    """
    present = dict.fromkeys(boxed)
    for name, count in counts.items():
        if count > 0:
            present[name] = None
    return list(present)


def duplicate_labels(labels: Sequence[K]) -> list[K]:
    """The classes ``labels`` lists more than once (each once, sorted); empty when there is none."""
    if len(set(labels)) == len(labels):
        return []
    return sorted({name for name in labels if labels.count(name) > 1})  # type: ignore[type-var]


def consistency_problem(labels: Sequence[str], counts: Mapping[str, int], boxed: Mapping[str, int]) -> str | None:
    """What breaks the rules between ``labels``, ``counts`` and the boxes per class (``boxed``), or ``None``.

    A boxed class must be in ``labels`` and counted at least once per box; a class counted more
    than zero times must be in ``labels``.
    """
    for name, number in boxed.items():
        if name not in labels:
            return f"class {name!r} has boxes but is missing from labels"
        counted = counts.get(name, 0)
        if counted < number:
            return (
                f"counts[{name!r}] is {counted} but there are {number} boxes of that class; "
                "expected a count >= the number of boxes"
            )
    for name, count in counts.items():
        if count > 0 and name not in labels:
            return f"class {name!r} has a count of {count} but is missing from labels"
    return None


def make_record(
    *,
    image: str,
    width: int | None,
    height: int | None,
    boxes: Sequence[dict[str, Any]] = (),
    labels: Iterable[str] | None = None,
    counts: Mapping[str, int] | None = None,
    mask: str | None = None,
    id: int | str | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Build a canonical record dict.

    ``counts`` defaults to the number of boxes per class; when given, each class's count is raised
    to at least its number of boxes. ``labels`` defaults to the boxed and counted classes in
    first-seen order; given labels are kept in their order, boxed classes missing from them appended.
    """
    per_class = box_counts(box["name"] for box in boxes)
    if counts is not None:
        merged = dict(counts)
        for name, boxed in per_class.items():
            merged[name] = max(merged.get(name, 0), boxed)
        per_class = merged
    names = dict.fromkeys(labels or ())
    names.update(dict.fromkeys(present_labels((box["name"] for box in boxes), per_class)))
    record: dict[str, Any] = {"image": image, "width": width, "height": height, "labels": list(names)}
    record["counts"] = per_class
    record["boxes"] = list(boxes)
    if mask is not None:
        record["mask"] = mask
    if id is not None:
        record["id"] = id
    if attributes:
        record["attributes"] = dict(attributes)
    return record


def canonical_record(data: dict[str, Any]) -> dict[str, Any]:
    """Expand the seed's shorthand forms of an already-valid record in place (cheap, no model objects).

    A malformed count list raises :class:`CountListError` (a :class:`ValueError`).
    """
    data.setdefault("boxes", [])  # optional in the format (counts-only records); exporters index it
    labels = data.get("labels")
    counts = data.get("counts")
    if isinstance(labels, str):
        data["labels"] = label_list(labels)
    if isinstance(counts, list):
        data["counts"] = merge_count_list(counts)
    if "counts" not in data and data["boxes"]:
        data["counts"] = box_counts(box["name"] for box in data["boxes"])
    if "labels" not in data:
        data["labels"] = present_labels((box["name"] for box in data["boxes"]), data.get("counts", {}))
    return data


def canonical_box(box: Mapping[str, Any]) -> dict[str, Any]:
    """A box in the canonical form: keys in format order, corners as rounded floats, no empty attributes."""
    # Spelled out rather than looped over BOX_KEYS, and round_coord inlined (a quarter of the cost of
    # encoding a record is four calls per box): this runs once per box of every conversion.
    out = {
        "name": box["name"],
        "x1": round(float(box["x1"]), COORD_DECIMALS) + 0.0,
        "y1": round(float(box["y1"]), COORD_DECIMALS) + 0.0,
        "x2": round(float(box["x2"]), COORD_DECIMALS) + 0.0,
        "y2": round(float(box["y2"]), COORD_DECIMALS) + 0.0,
    }
    attributes = box.get("attributes")
    if attributes is not None:
        out["attributes"] = attributes
    return out
