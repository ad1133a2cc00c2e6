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

The rules of a box's format-version-2 fields, each with its stable code (the Pydantic error type
and the ``annonorm validate`` finding code, :data:`V2_RULE_CODES`), return ``(code, message)`` or
``None``: :func:`polygon_problem`, :func:`obb_problem`, :func:`keypoints_problem`,
:func:`score_problem`, :func:`rle_problem`; the warnings :func:`polygon_outside` and
:func:`keypoints_outside`.

The derivations are generic over the class key: the models and the fast check count names, the
loader's index counts category ids.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from annonorm.geometry import COORD_DECIMALS, obb_hull, rle_string_runs

__all__ = [
    "BOX_EXTRA_KEYS",
    "BOX_KEYS",
    "KEYPOINTS_INVALID",
    "OBB_INVALID",
    "POLYGON_INVALID",
    "RECORD_KEYS",
    "RLE_INVALID",
    "SCORE_OUT_OF_RANGE",
    "V2_RULE_CODES",
    "CountListError",
    "box_counts",
    "canonical_box",
    "canonical_record",
    "consistency_problem",
    "duplicate_labels",
    "keypoints_outside",
    "keypoints_problem",
    "label_list",
    "make_record",
    "merge_count_list",
    "obb_problem",
    "polygon_outside",
    "polygon_problem",
    "present_labels",
    "rle_problem",
    "score_problem",
]

#: The record's keys in the order the canonical form writes them.
RECORD_KEYS = ("image", "width", "height", "labels", "counts", "boxes", "mask", "id", "attributes")
#: A box's keys in the order the canonical form writes them.
BOX_KEYS = ("name", "x1", "y1", "x2", "y2", "polygon", "rle", "obb", "keypoints", "score", "attributes")
#: The optional geometry and prediction keys of a box (format version 2), in canonical order.
BOX_EXTRA_KEYS = ("polygon", "rle", "obb", "keypoints", "score")

K = TypeVar("K", bound=Hashable)

#: A ring has an odd number of coordinates or fewer than 3 points, or a polygon has no ring.
POLYGON_INVALID = "polygon_invalid"
#: An ``obb`` is not 8 numbers, or its axis-aligned hull is not the box (within :data:`OBB_TOLERANCE`).
OBB_INVALID = "obb_invalid"
#: ``keypoints`` are not one ``[x, y, v]`` per keypoint name of the category, or a ``v`` is not 0, 1 or 2.
KEYPOINTS_INVALID = "keypoints_invalid"
#: A ``score`` is outside ``[0, 1]``.
SCORE_OUT_OF_RANGE = "score_out_of_range"
#: An ``rle``'s size is not ``[height, width]``, or its counts do not decode to exactly that many pixels.
RLE_INVALID = "rle_invalid"
#: The codes of the rules of a box's v2 fields (each one a Pydantic error type and a finding code).
V2_RULE_CODES = frozenset({POLYGON_INVALID, OBB_INVALID, KEYPOINTS_INVALID, SCORE_OUT_OF_RANGE, RLE_INVALID})
#: How far (pixels) an oriented box's hull may be from the box's corners.
OBB_TOLERANCE = 1e-3
#: The COCO visibility flags of a keypoint: 0 not labeled, 1 labeled but not visible, 2 visible.
VISIBILITIES = (0, 1, 2)

#: What a rule of a v2 field answers: ``(code, message)`` when it is broken, else ``None``.
Problem = tuple[str, str] | None


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
    """A box in the canonical form: keys in format order, coordinates as rounded floats, ``None`` left out.

    Polygon, oriented-box and keypoint coordinates are rounded like the corners; ``v`` of a keypoint
    and ``rle`` are kept as they are.
    """
    # Spelled out rather than looped over BOX_KEYS, and round_coord inlined (a quarter of the cost of
    # encoding a record is four calls per box): this runs once per box of every conversion.
    out = {
        "name": box["name"],
        "x1": round(float(box["x1"]), COORD_DECIMALS) + 0.0,
        "y1": round(float(box["y1"]), COORD_DECIMALS) + 0.0,
        "x2": round(float(box["x2"]), COORD_DECIMALS) + 0.0,
        "y2": round(float(box["y2"]), COORD_DECIMALS) + 0.0,
    }
    if len(box) > 5:  # most boxes have no v2 field: one length test instead of five lookups
        polygon = box.get("polygon")
        if polygon is not None:
            out["polygon"] = [[round(float(v), COORD_DECIMALS) + 0.0 for v in ring] for ring in polygon]
        rle = box.get("rle")
        if rle is not None:
            out["rle"] = rle
        obb = box.get("obb")
        if obb is not None:
            out["obb"] = [round(float(v), COORD_DECIMALS) + 0.0 for v in obb]
        keypoints = box.get("keypoints")
        if keypoints is not None:
            out["keypoints"] = [
                [round(float(x), COORD_DECIMALS) + 0.0, round(float(y), COORD_DECIMALS) + 0.0, v]
                for x, y, v in keypoints
            ]
        score = box.get("score")
        if score is not None:
            out["score"] = float(score)
        attributes = box.get("attributes")
        if attributes is not None:
            out["attributes"] = attributes
    return out


def polygon_problem(polygon: Sequence[Sequence[float]]) -> Problem:
    """A polygon holds at least one ring, and each ring an even number (>= 6) of coordinates."""
    if not polygon:
        return POLYGON_INVALID, "polygon has no ring; expected at least one ring [x1, y1, x2, y2, x3, y3, ...]"
    for index, ring in enumerate(polygon):
        if len(ring) % 2 or len(ring) < 6:
            return POLYGON_INVALID, (
                f"polygon ring {index} has {len(ring)} coordinates; expected an even number, at least 6 (3 points)"
            )
    return None


def obb_problem(obb: Sequence[float], x1: float, y1: float, x2: float, y2: float) -> Problem:
    """An oriented box is 4 corners (8 numbers) whose axis-aligned hull is the box, within :data:`OBB_TOLERANCE`."""
    if len(obb) != 8:
        return OBB_INVALID, f"obb has {len(obb)} numbers; expected 8 (4 corners x, y)"
    hull = obb_hull(obb)
    if max(abs(hull[0] - x1), abs(hull[1] - y1), abs(hull[2] - x2), abs(hull[3] - y2)) > OBB_TOLERANCE:
        shown = ", ".join(f"{v:g}" for v in hull)
        return OBB_INVALID, (
            f"obb's hull ({shown}) is not the box ({x1:g}, {y1:g}, {x2:g}, {y2:g}); "
            f"expected x1..y2 to be the hull of the obb within {OBB_TOLERANCE:g} px"
        )
    return None


def keypoints_problem(keypoints: Sequence[Sequence[float]], expected: int | None) -> Problem:
    """One ``[x, y, v]`` per keypoint name (``expected``; ``None``: not checked), each ``v`` in 0, 1, 2."""
    for index, point in enumerate(keypoints):
        if len(point) != 3:
            return KEYPOINTS_INVALID, f"keypoints[{index}] has {len(point)} numbers; expected [x, y, v]"
        visibility = point[2]
        if visibility.__class__ is not int or visibility not in VISIBILITIES:
            return KEYPOINTS_INVALID, (
                f"keypoints[{index}] has visibility {visibility!r}; expected 0 (not labeled), 1 (labeled, "
                "not visible) or 2 (visible)"
            )
    if expected is not None and len(keypoints) != expected:
        return KEYPOINTS_INVALID, (
            f"{len(keypoints)} keypoints where the category names {expected}; expected one [x, y, v] per keypoint name"
        )
    return None


def score_problem(score: float) -> Problem:
    """A score is a confidence in ``[0, 1]``."""
    if not 0.0 <= score <= 1.0:
        return SCORE_OUT_OF_RANGE, f"score {score:g} is outside [0, 1]; expected a confidence between 0 and 1"
    return None


def rle_problem(size: Sequence[int], counts: str, width: int | None, height: int | None) -> Problem:
    """An RLE's size is ``[height, width]`` (when known) and its counts decode to exactly ``height * width`` pixels."""
    if len(size) != 2:
        return RLE_INVALID, f"rle.size has {len(size)} numbers; expected [height, width]"
    if width is not None and (size[0] != height or size[1] != width):
        return RLE_INVALID, f"rle.size is {list(size)} but the image is [{height}, {width}]; expected [height, width]"
    try:
        runs = rle_string_runs(counts)
    except ValueError as exc:
        return RLE_INVALID, f"rle.counts does not decode: {exc}"
    total = int(runs.sum())
    if total != size[0] * size[1]:
        return RLE_INVALID, (
            f"rle.counts covers {total} pixels; expected {size[0]} x {size[1]} = {size[0] * size[1]} (rle.size)"
        )
    return None


def polygon_outside(polygon: Sequence[Sequence[float]], width: int, height: int) -> bool:
    """Whether a point of a polygon lies outside the ``width`` x ``height`` image."""
    for ring in polygon:
        xs, ys = ring[0::2], ring[1::2]
        if min(xs) < 0 or min(ys) < 0 or max(xs) > width or max(ys) > height:
            return True
    return False


def keypoints_outside(keypoints: Sequence[Sequence[float]], width: int, height: int) -> bool:
    """Whether a labeled keypoint (``v`` > 0) lies outside the ``width`` x ``height`` image."""
    return any(v > 0 and not (0 <= x <= width and 0 <= y <= height) for x, y, v in keypoints)
