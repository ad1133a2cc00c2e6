"""The COCO JSON conventions several readers share: COCO instances, COCO results, LVIS, SA-1B's RLE.

Origin: https://cocodataset.org/#format-data and #format-results. What is written once here:

- ``bbox`` ``[x, y, width, height]`` in pixels <-> corners, rounded to the format's 6 decimals;
- category names made unique (a repeated name becomes ``<name>#<source id>``);
- an image ``file_name`` that can be a record's image path;
- ``segmentation``: polygon rings ``[[x1, y1, x2, y2, ...], ...]`` (rounded like the corners) and RLE objects
  ``{"size": [h, w], "counts": ...}`` (a compressed string kept, uncompressed list counts compressed by
  pycocotools, losslessly);
- keypoints: the flat ``[x1, y1, v1, ...]`` per annotation and the category's 1-based ``skeleton``
  (0-based in annonorm, DESIGN §1).

The column helpers (:func:`segmentation_fields`, :func:`keypoint_fields`) give a chunk of
:class:`~annonorm.sources.columns.Box` es those fields and return the rows that cannot have them, worded.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import msgspec
import numpy as np
from msgspec import UNSET, UnsetType

from annonorm.errors import InvalidDataError, ParseError, UnsafePathError
from annonorm.fsutil import require_regular_file
from annonorm.geometry import corners_to_xywh, round_coord, round_coords, xywh_to_corners
from annonorm.images import read_image_size
from annonorm.masks import coco_segmentation_to_rle
from annonorm.paths import check_relative_path
from annonorm.sources.columns import Box
from annonorm.sources.jsondoc import JsonProblem, describe_json, exact_numbers, is_empty_json

__all__ = [
    "ANNOTATION_CORE",
    "SEGMENTATION",
    "SEGMENTATIONS",
    "CocoRle",
    "box_to_coco_annotation",
    "box_to_coco_bbox",
    "canonical_rings",
    "category_keypoints",
    "coco_bbox_problem",
    "coco_bbox_reword",
    "coco_bbox_to_corners",
    "coco_bboxes_to_corners",
    "coco_categories_to_names",
    "coco_file_name_problem",
    "coco_image_size",
    "coco_keypoints_to_points",
    "coco_mask_problem",
    "coco_polygons_to_rings",
    "coco_rle_to_rle",
    "coco_skeleton_to_pairs",
    "keypoint_fields",
    "segmentation_fields",
]

#: Annotation fields of their own in COCO JSON (an attribute of one of these names is not written back).
ANNOTATION_CORE = frozenset({"image_id", "category_id", "bbox", "segmentation", "rle"})
#: Row position -> (what is wrong, JSON location): what the column helpers return.
Problems = dict[int, tuple[str, str]]


class CocoRle(msgspec.Struct, gc=False):
    """A COCO RLE object: ``size`` is ``[height, width]``, ``counts`` a compressed string or a list of runs."""

    size: tuple[int, int]
    counts: str | list[int]


#: One segmentation, decoded only where vectors are kept: rings of numbers, an RLE object, or null.
SEGMENTATION = msgspec.json.Decoder(list[list[float]] | CocoRle | None)
SEGMENTATIONS = msgspec.json.Decoder(list[list[list[float]] | CocoRle | None])


# ------------------------------------------------------------------------------------------------ boxes


def coco_bboxes_to_corners(*, bboxes: np.ndarray) -> np.ndarray:
    """COCO ``[x, y, width, height]`` rows -> ``[x1, y1, x2, y2]`` rows rounded to the format's 6 decimals.

    The reader maps every annotation of a file in one call: rounding 3.4 million coordinates one
    ``round()`` at a time costs more than decoding them (``round_coords`` equals ``round_coord``).
    """
    x, y, width, height = np.array(bboxes, dtype=np.float64).reshape(-1, 4).T  # top-left corner + size
    return round_coords(np.stack(xywh_to_corners(x, y, width, height), axis=1))


def coco_bbox_to_corners(*, bbox: Sequence[float]) -> tuple[float, float, float, float]:
    """One COCO ``[x, y, width, height]`` -> corners ``(x1, y1, x2, y2)``: a one-row :func:`coco_bboxes_to_corners`."""
    x1, y1, x2, y2 = coco_bboxes_to_corners(bboxes=np.array([bbox], dtype=np.float64))[0].tolist()
    return x1, y1, x2, y2


def coco_bbox_problem(*, bbox: Sequence[float]) -> str | None:
    """Why a COCO ``bbox`` is refused (a negative size, or a start left of or above the image), else ``None``.

    The reader finds these rows at once as those with a negative value; this words one of them.
    """
    x, y, w, h = bbox
    if w < 0 or h < 0:
        return f"bbox width and height must be >= 0, got {w} x {h}"
    if x < 0 or y < 0:
        return f"bbox starts outside the image at x={x}, y={y}; expected x, y >= 0"
    return None


def box_to_coco_bbox(*, box: Mapping[str, Any]) -> list[float]:
    """A canonical box -> COCO ``[x, y, width, height]``, rounded to the format's 6 decimals."""
    xywh = corners_to_xywh(float(box["x1"]), float(box["y1"]), float(box["x2"]), float(box["y2"]))
    return [round_coord(value) for value in xywh]


def coco_bbox_reword(problem: JsonProblem) -> str | None:
    """A refused ``bbox`` said in COCO's terms (a :class:`~annonorm.sources.jsondoc.TypedJson` ``reword``)."""
    if problem.path.endswith(".bbox") and problem.found is not UNSET:
        return f"expected 4 numbers [x, y, width, height], got {describe_json(problem.found)}"
    if re.search(r"\.bbox\[\d+\]$", problem.path):
        return f"bbox values must be numbers [x, y, width, height]; {problem.message}"
    return None


def coco_categories_to_names(*, categories: Sequence[tuple[int | str, str]]) -> list[str]:
    """Unique category names, in order: a repeated name becomes ``<name>#<source id>`` (then ``#2``...)."""
    taken = {name for _, name in categories}
    seen: set[str] = set()
    names = []
    for source_id, name in categories:
        unique = name
        if name in seen:
            unique = f"{name}#{source_id}"
            suffix = 2
            while unique in taken or unique in seen:
                unique = f"{name}#{source_id}#{suffix}"
                suffix += 1
        seen.add(unique)
        names.append(unique)
    return names


def coco_file_name_problem(file_name: str) -> str | None:
    """Why an image ``file_name`` cannot be a record's image path, or ``None`` when it can.

    Refused: what :func:`check_relative_path` refuses (absolute, ``..``, surrounding spaces, NUL,
    empty), and a name of a folder rather than a file (``.``, ``a/.``, a trailing ``/``). Newlines
    inside, emoji, combining accents, leading dashes and names of dots only (``...``) are kept.
    """
    try:
        check_relative_path(file_name)
    except ValueError as exc:
        return str(exc)
    last = file_name.replace("\\", "/").rsplit("/", 1)[-1]
    if last in ("", "."):
        return f"file_name {file_name!r} names a folder, not an image file"
    return None


# ------------------------------------------------------------------------------------------ segmentation


def coco_polygons_to_rings(
    *, segmentations: Sequence[Sequence[Sequence[float]]], exact: bool = False, strict: bool = False
) -> list[list[list[float]]]:
    """COCO polygon segmentations (one list of rings per annotation) -> annonorm ``polygon`` s, rounded.

    Coordinates are rounded like box corners, all rings of all annotations in one call; an empty ring
    is dropped, and a 2-point ring gets its first point again (the degenerate triangle pycocotools
    draws). Raises :class:`ValueError` for a ring of an odd count or of fewer than 4 numbers (``strict``:
    fewer than 6, an empty ring included, as a results list must hold them), or a coordinate that is not
    finite. ``exact``: the caller knows every coordinate is a finite float already rounded
    (:func:`~annonorm.sources.jsondoc.exact_numbers`).
    """
    rings = [ring for polygon in segmentations for ring in polygon]
    lengths = list(map(len, rings))
    if any(length % 2 or length < 6 for length in lengths):
        for polygon in segmentations:
            for index, ring in enumerate(polygon):
                if len(ring) % 2 or (0 if strict else 1) <= len(ring) < (6 if strict else 4):
                    raise ValueError(
                        f"polygon ring {index} has {len(ring)} numbers; expected an even count, at least 6 (x, y pairs)"
                    )
    if exact and min(lengths, default=6) >= 6:  # as COCO ships them: the rings are kept
        return cast(list[list[list[float]]], list(segmentations))
    flat = np.fromiter(itertools.chain.from_iterable(rings), dtype=np.float64, count=sum(lengths))
    if not np.isfinite(flat).all():
        raise ValueError("a polygon coordinate is not a finite number")
    rounded = round_coords(flat)
    unchanged = np.array_equal(rounded, flat) and not np.signbit(flat[flat == 0]).any()
    if unchanged and min(lengths, default=6) >= 6:
        return cast(list[list[list[float]]], list(segmentations))
    values = rounded.tolist()
    out: list[list[list[float]]] = []
    start = 0
    for polygon in segmentations:
        kept = []
        for ring in polygon:
            end = start + len(ring)
            if ring:
                kept.append(values[start:end] if end - start > 4 else [*values[start:end], *values[start : start + 2]])
            start = end
        out.append(kept)
    return out


def coco_rle_to_rle(
    *, size: Sequence[int], counts: str | list[int], height: int | None = None, width: int | None = None
) -> dict[str, Any]:
    """A COCO RLE -> annonorm ``rle``: a compressed string kept as it is, uncompressed counts compressed
    by pycocotools (lossless). Raises :class:`InvalidDataError` for counts that do not cover ``size``, or
    a ``size`` other than the image's ``[height, width]`` (when known)."""
    if height is None or width is None:
        height, width = size
    rle = coco_segmentation_to_rle(segmentation={"size": list(size), "counts": counts}, height=height, width=width)
    assert rle is not None
    return {"size": [height, width], "counts": counts if isinstance(counts, str) else rle["counts"].decode("ascii")}


#: A JSON number as msgspec writes the float it decodes to (its shortest repr) and that the 6-decimal
#: rounding keeps: at most 6 integer digits without a leading zero, then a fraction (``12.0``, never ``12``)
#: of at most 6 digits without trailing zeros (12 significant digits: the text is the shortest repr). All
#: possessive, without backtracking, which would cost more than the match at a million rings.
_NUMBER = rb"-?+(?>0|[1-9][0-9]{0,5}+)\.(?>0(?![0-9])|[0-9]{1,6}+(?<!0))"
_RING = rb"\[" + _NUMBER + rb"," + _NUMBER + rb"(?:," + _NUMBER + rb"," + _NUMBER + rb"){2,}+\]"
#: A segmentation of rings of an even count of at least 6 such numbers, without spaces.
_CANONICAL_RINGS = re.compile(rb"\[" + _RING + rb"(?:," + _RING + rb")*+\]")
_SPACE = b" \t\r\n"


def canonical_rings(raw: bytes | msgspec.Raw) -> msgspec.Raw | None:
    """``raw`` (one COCO polygon segmentation) as the exact JSON text msgspec writes for its ``polygon``, or
    ``None`` when it is not such a one (then it is decoded and rounded as any other).

    The common case at scale: rings of enough numbers, each already rounded and written as its shortest
    repr. Their text, without spaces, is the encoding of the rounded floats, so no float is made.
    """
    return _canonical_texts([raw])[0]


def _rewritten(text: bytes) -> bool:
    """Whether a number of :data:`_NUMBER` in ``text`` is one msgspec writes otherwise: a nonzero value
    under 1e-4 (msgspec writes ``1e-6``) or a negative zero. Holds for texts joined by a newline."""
    return b"0.0000" in text or b"-0.0," in text or b"-0.0]" in text


def _canonical_texts(raws: Sequence[bytes | msgspec.Raw | UnsetType]) -> list[msgspec.Raw | None]:
    """:func:`canonical_rings` of every item (``None`` for ``UNSET``), the rare values looked for once for all."""
    fullmatch = _CANONICAL_RINGS.fullmatch
    texts = [None if raw is UNSET else bytes(raw).translate(None, _SPACE) for raw in raws]
    kept = [text if text is not None and fullmatch(text) is not None else None for text in texts]
    if _rewritten(b"\n".join(text for text in kept if text is not None)):
        kept = [None if text is None or _rewritten(text) else text for text in kept]
    return [None if text is None else msgspec.Raw(text) for text in kept]


def segmentation_fields(
    boxes: Sequence[Box],
    raws: Sequence[msgspec.Raw | UnsetType],
    rles: Sequence[msgspec.Raw | UnsetType] | None,
    *,
    image_size: Callable[[int], Mapping[str, int]],
    location: Callable[[int], str],
) -> Problems:
    """Give ``boxes[i]`` the ``polygon`` / ``rle`` of its raw ``segmentation`` ``raws[i]`` (and of the
    writer's ``rle`` beside it, ``rles[i]``); return ``i`` -> (problem, location) for those that cannot.

    ``image_size(i)``: ``{"height", "width"}`` of row ``i``'s image when known (an RLE must cover it);
    ``location(i)``: the JSON path of row ``i``'s ``segmentation``. A segmentation whose text is already
    its polygon's JSON (:func:`canonical_rings`) becomes that text (a ``msgspec.Raw``); the others are
    decoded, checked and rounded.
    """
    if rles is None:  # the common case: rings whose text is already the polygon's JSON
        slow: list[int] = []
        for position, (box, raw, fast) in enumerate(zip(boxes, raws, _canonical_texts(raws), strict=True)):
            if fast is not None:
                box.polygon = fast
            elif raw is not UNSET:
                slow.append(position)
        if len(slow) < len(raws):
            found = _segmentation_fields(
                [boxes[p] for p in slow],
                [raws[p] for p in slow],
                None,
                image_size=lambda at: image_size(slow[at]),
                location=lambda at: location(slow[at]),
            )
            return {slow[at]: problem for at, problem in found.items()}
    return _segmentation_fields(boxes, raws, rles, image_size=image_size, location=location)


def _segmentation_fields(
    boxes: Sequence[Box],
    raws: Sequence[msgspec.Raw | UnsetType],
    rles: Sequence[msgspec.Raw | UnsetType] | None,
    *,
    image_size: Callable[[int], Mapping[str, int]],
    location: Callable[[int], str],
) -> Problems:
    """:func:`segmentation_fields` by decoding: rings to round or to check, RLE objects, null."""
    problems: Problems = {}
    polygons: list[tuple[int, Box, list[list[float]]]] = []
    decoded: list[Any]
    text = b"[" + b",".join(b"null" if r is UNSET else r for r in raws) + b"]"
    try:  # one decode for the chunk; an item it refuses is decoded alone below, to be named
        decoded = SEGMENTATIONS.decode(text)
    except msgspec.ValidationError:
        decoded = [UNSET] * len(raws)
    for position, (box, known) in enumerate(zip(boxes, decoded, strict=True)):
        if known.__class__ is list and rles is None:  # the common case, without a call
            if known:
                polygons.append((position, box, known))
            continue
        if known is None and rles is None:
            continue
        pair = [raws[position], UNSET if rles is None else rles[position]]
        try:
            for number, raw in enumerate(pair):
                if number == 0 and known is not UNSET:
                    value = known
                else:
                    value = None if raw is UNSET or is_empty_json(raw) else SEGMENTATION.decode(raw)
                if isinstance(value, CocoRle):
                    box.rle = coco_rle_to_rle(size=value.size, counts=value.counts, **image_size(position))
                elif value is not None:
                    polygons.append((position, box, value))
        except (msgspec.ValidationError, InvalidDataError) as exc:
            said = str(exc).replace(" - at `$", " at `")  # msgspec's path is within the segmentation
            message = exc.message if isinstance(exc, InvalidDataError) else said
            problems[position] = f"cannot read the segmentation: {message}", location(position)
    try:
        exact = exact_numbers(b",".join(cast(bytes, raws[position]) for position, _, _ in polygons))
        rings = coco_polygons_to_rings(segmentations=[value for _, _, value in polygons], exact=exact)
    except ValueError:
        rings = []
        for position, _, value in polygons:
            try:
                rings.extend(coco_polygons_to_rings(segmentations=[value]))
            except ValueError as exc:
                rings.append([])
                problems[position] = str(exc), location(position)
    for (_, box, _), ring in zip(polygons, rings, strict=True):
        if ring:
            box.polygon = ring
    return problems


def coco_mask_problem(*, width: int | None, height: int | None, limit: int) -> str | None:
    """Why an image's segmentations cannot be drawn (size unknown, or over ``limit`` pixels), else ``None``."""
    if width is None or height is None:
        return "the image size is unknown (no width/height, no image file): cannot draw its segmentation"
    if width * height > limit:
        return (
            f"a {width} x {height} image is too large to draw its mask (more than {limit} pixels, Pillow's "
            "decompression-bomb limit); pass --no-masks"
        )
    return None


# ------------------------------------------------------------------------------------------------ keypoints


def coco_keypoints_to_points(*, keypoints: Any, count: int) -> list[list[Any]]:
    """COCO's flat ``[x1, y1, v1, x2, ...]`` -> one ``[x, y, v]`` per keypoint name (``count``), ``x, y`` rounded.

    Raises :class:`ValueError` unless it is ``3 * count`` numbers with every ``v`` 0, 1 or 2.
    """
    if not isinstance(keypoints, list) or len(keypoints) != 3 * count:
        found = f"{len(keypoints)} values" if isinstance(keypoints, list) else describe_json(keypoints)
        raise ValueError(f"expected 3 x {count} numbers [x, y, v, ...] (one triple per keypoint name), got {found}")
    points = []
    for index in range(0, len(keypoints), 3):
        x, y, v = keypoints[index : index + 3]
        if not all(isinstance(n, (int, float)) and not isinstance(n, bool) for n in (x, y)) or v not in (0, 1, 2):
            raise ValueError(f"keypoint {index // 3}: expected numbers x, y and a visibility v of 0, 1 or 2")
        points.append([round_coord(float(x)), round_coord(float(y)), int(v)])
    return points


def coco_skeleton_to_pairs(*, skeleton: Any, count: int) -> list[list[int]] | None:
    """COCO's 1-based skeleton -> annonorm's 0-based pairs of keypoint indices; ``None`` if it is no such list."""
    if not isinstance(skeleton, list):
        return None
    pairs = []
    for pair in skeleton:
        if not (isinstance(pair, list) and len(pair) == 2 and all(type(i) is int and 1 <= i <= count for i in pair)):
            return None
        pairs.append([pair[0] - 1, pair[1] - 1])
    return pairs


def category_keypoints(attributes: dict[str, Any], lengths: set[int]) -> tuple[Any, Any]:
    """A category's keypoint names and 0-based skeleton (taken out of ``attributes``), or ``(None, None)``.

    ``lengths``: the lengths of the ``keypoints`` lists of the category's annotations. Datumaro writes
    ``"keypoints": []`` with a 0-based skeleton: when every annotation of the class has the same ``3 K``
    values, the names are ``"1"..."K"`` and the source's fields stay as attributes (the writer puts them
    back as they were).
    """
    names, skeleton = attributes.get("keypoints"), attributes.get("skeleton", [])
    if names == [] and len(lengths) == 1 and (count := next(iter(lengths))) and count % 3 == 0:
        generated = [str(number) for number in range(1, count // 3 + 1)]
        pairs = coco_skeleton_to_pairs(skeleton=skeleton, count=len(generated))
        with contextlib.suppress(TypeError):  # Datumaro's 0-based pairs
            pairs = pairs or coco_skeleton_to_pairs(skeleton=[[i + 1 for i in p] for p in skeleton], count=count // 3)
        return generated, pairs
    if not (isinstance(names, list) and names and all(isinstance(n, str) and n for n in names)):
        return None, None
    pairs = coco_skeleton_to_pairs(skeleton=skeleton, count=len(names))
    if len(set(names)) < len(names) or pairs is None:
        return None, None
    del attributes["keypoints"]
    attributes.pop("skeleton", None)
    return names, pairs


def keypoint_fields(
    boxes: Sequence[Box],
    values: Sequence[Any],
    numbers: Sequence[Any],
    counts: Sequence[int],
    *,
    location: Callable[[int], str],
) -> Problems:
    """Give ``boxes[i]`` the ``keypoints`` of ``values[i]`` where its category names ``counts[i]`` of them;
    return ``i`` -> (problem, location) for those that cannot. A ``num_keypoints`` (``numbers[i]``) that
    disagrees with the keypoints, and the fields of a category without names, are kept as attributes."""
    problems: Problems = {}
    for position, (box, value, number, count) in enumerate(zip(boxes, values, numbers, counts, strict=True)):
        kept: dict[str, Any] = {}
        if value is not UNSET and count:
            try:
                box.keypoints = coco_keypoints_to_points(keypoints=value, count=count)
            except ValueError as exc:
                problems[position] = str(exc), location(position)
                continue
            if number is not UNSET and number != sum(1 for point in box.keypoints if point[2]):
                kept["num_keypoints"] = number  # not what the keypoints say: kept as the source has it
        else:
            kept = {k: v for k, v in (("keypoints", value), ("num_keypoints", number)) if v is not UNSET}
        if kept:
            box.attributes = kept if isinstance(box.attributes, UnsetType) else box.attributes | kept
    return problems


# --------------------------------------------------------------------------------------------------- images


def coco_image_size(
    *, file_name: str, width: Any, height: Any, image_dir: Path, file: Path, index: int
) -> tuple[int | None, int | None]:
    """The ``(width, height)`` of ``images[index]`` of ``file``: its own when both are integers, else the image
    file's header (``(None, None)`` when it cannot be read).

    Raises :class:`UnsafePathError` for a ``file_name`` that cannot be a record's image path,
    :class:`ParseError` for an image path that is no regular file (a FIFO would block the header read), and
    :class:`InvalidDataError` for a size that is not > 0.
    """
    problem = coco_file_name_problem(file_name)
    location = f"images[{index}].file_name"
    if problem is not None:
        raise UnsafePathError(problem, file=file, location=location, image=file_name)
    if not isinstance(width, int) or not isinstance(height, int):
        path = image_dir / file_name
        if os.path.exists(path) and not os.path.isfile(path):
            try:
                require_regular_file(path, "image")
            except ParseError as exc:
                raise ParseError(exc.message, file=path, location=location, image=file_name) from None
        return read_image_size(path) or (None, None)
    if width <= 0 or height <= 0:
        message = f"width and height must be > 0, got {width} x {height}"
        raise InvalidDataError(message, file=file, location=f"images[{index}]", image=file_name)
    return width, height


# -------------------------------------------------------------------------------- mapping annonorm -> coco


def box_to_coco_annotation(
    *, box: Mapping[str, Any], annotation_id: int, image_id: int, category_id: int, segmentation: dict[str, Any] | None
) -> dict[str, Any]:
    """A canonical box as a COCO annotation; box attributes come back as annotation fields."""
    from pycocotools import mask as mask_utils

    bbox = box_to_coco_bbox(box=box)
    attributes = dict(box.get("attributes") or {})
    rle = box.get("rle")
    if segmentation is None:
        segmentation = box.get("polygon") or rle
    area = attributes.pop("area", None)
    if not isinstance(area, (int, float)) or isinstance(area, bool):
        if isinstance(segmentation, list):
            area = round_coord(float(mask_utils.area(mask_utils.merge(_polygon_rles(segmentation, box)))))
        elif segmentation is not None:
            counts = segmentation["counts"].encode("ascii")
            area = float(mask_utils.area({"size": segmentation["size"], "counts": counts}))
        else:
            area = round_coord(bbox[2] * bbox[3])
    iscrowd = attributes.pop("iscrowd", 0)
    if not isinstance(iscrowd, int):  # COCO holds 0 or 1 here; bool is an int
        iscrowd = 0
    entry: dict[str, Any] = {
        "id": annotation_id,
        "image_id": image_id,
        "category_id": category_id,
        "segmentation": segmentation if segmentation is not None else [],
        "area": area,
        "bbox": bbox,
        "iscrowd": int(iscrowd) if isinstance(iscrowd, bool) else iscrowd,
    }
    if rle is not None and segmentation is not rle:  # a polygon and an RLE: COCO holds one, the RLE goes beside it
        entry["rle"] = rle
    if box.get("keypoints") is not None:
        entry["keypoints"] = [int(v) if float(v).is_integer() else v for point in box["keypoints"] for v in point]
        entry["num_keypoints"] = attributes.pop("num_keypoints", sum(1 for point in box["keypoints"] if point[2]))
    if box.get("score") is not None:
        entry["score"] = box["score"]
    entry.update((k, v) for k, v in attributes.items() if k not in entry and k not in ANNOTATION_CORE)
    return entry


def _polygon_rles(rings: list[list[float]], box: Mapping[str, Any]) -> Any:
    """Polygon rings as pycocotools RLEs on a canvas that holds them (the area does not depend on its size)."""
    from pycocotools import mask as mask_utils

    height = int(max(float(box["y2"]), *(max(ring[1::2]) for ring in rings))) + 2
    width = int(max(float(box["x2"]), *(max(ring[0::2]) for ring in rings))) + 2
    return mask_utils.frPyObjects(rings, height, width)
