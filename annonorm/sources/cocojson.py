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
- LVIS (https://www.lvisdataset.org/dataset, v0.5 and v1): an image without ``file_name`` is the one its
  ``coco_url`` names (``train2017/x.jpg``, :func:`coco_url_to_file_name`); the image labels
  ``neg_category_ids`` and ``not_exhaustive_category_ids`` are lists of the file's category ids
  (:func:`coco_image_names`); a record holding them is an LVIS image (:func:`is_lvis_record`), written back
  without the ``file_name`` its ``coco_url`` already names and without an ``iscrowd`` it did not have.

The column helpers (:func:`segmentation_fields`, :func:`keypoint_fields`) give a chunk of
:class:`~annonorm.sources.columns.Box` es those fields and return the rows that cannot have them, worded.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from operator import attrgetter
from pathlib import Path
from typing import Any, Protocol, cast

import msgspec
import numpy as np
from msgspec import UNSET, UnsetType

from annonorm.errors import AnnonormError, InvalidDataError, ParseError, UnsafePathError
from annonorm.fsutil import require_regular_file
from annonorm.geometry import corners_to_xywh, round_coord, round_coords, xywh_to_corners
from annonorm.images import read_image_size
from annonorm.masks import coco_segmentation_to_rle
from annonorm.paths import check_relative_path
from annonorm.shapes import is_coco_results
from annonorm.sources.columns import Box
from annonorm.sources.jsondoc import JsonProblem, describe_json, exact_numbers, is_empty_json

__all__ = [
    "ANNOTATION_CORE",
    "EXPECTED_DOCUMENT",
    "LVIS_IMAGE_LABELS",
    "NO_FILE_NAME",
    "ONLY_INSTANCES",
    "SEGMENTATION",
    "SEGMENTATIONS",
    "CocoRle",
    "LvisCategoryFields",
    "LvisImageFields",
    "box_to_coco_annotation",
    "box_to_coco_bbox",
    "canonical_rings",
    "category_keypoints",
    "coco_bbox_problem",
    "coco_bbox_reword",
    "coco_bbox_to_corners",
    "coco_bboxes_to_corners",
    "coco_categories_to_names",
    "coco_document_problem",
    "coco_file_name_entry",
    "coco_file_name_problem",
    "coco_image_dir",
    "coco_image_names",
    "coco_image_size",
    "coco_keypoints_to_points",
    "coco_mask_problem",
    "coco_polygons_to_rings",
    "coco_rle_to_rle",
    "coco_skeleton_to_pairs",
    "coco_url_to_file_name",
    "is_lvis_record",
    "json_fields",
    "keypoint_fields",
    "lvis_labels_problem",
    "segmentation_fields",
]

#: What a COCO document is, said when a file is something else.
EXPECTED_DOCUMENT = 'a JSON object with an "images" array (and "annotations", "categories")'
ONLY_INSTANCES = (
    "annonorm's coco converter reads only instances-style files (instances, person_keypoints, stuff, labels, "
    "image_info)"
)
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


# ---------------------------------------------------------------------------------------------- document


def coco_document_problem(*, head: bytes, document: Any) -> str | None:
    """Why valid JSON that COCO's structs refused is no COCO instances document at all, else ``None``.

    ``head`` is the start of the file, ``document`` the file decoded as plain JSON (``UNSET`` when it
    is not valid JSON). Named: a COCO results list, a JSON without ``images`` (a LabelMe file?), and
    the captions and panoptic tasks, recognised by their first annotation.
    """
    if isinstance(document, list) and is_coco_results(head):
        return (
            f"this is a COCO results list ({len(document)} entries of image_id, category_id, bbox, score; no images "
            "or categories); read it with the ground truth it was computed on: annonorm convert coco-results FILE "
            "--gt INSTANCES.json"
        )
    if document is UNSET:
        return None
    if isinstance(document, dict) and "images" in document:
        annotations = document.get("annotations")
        first = annotations[0] if isinstance(annotations, list) and annotations else None
        task = None
        if isinstance(first, dict):
            task = "panoptic" if "segments_info" in first else "captions" if "caption" in first else None
        return None if task is None else f"this is a COCO {task} file (its annotations have no bbox); {ONLY_INSTANCES}"
    if isinstance(document, dict):
        found = f"an object with the keys {', '.join(sorted(document)[:8])}" if document else "an empty object"
        if "shapes" in document and "imagePath" in document:
            found += " (a LabelMe file?)"
    else:
        found = describe_json(document)
    return f"no COCO annotations here: expected {EXPECTED_DOCUMENT}, found {found}"


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
    *,
    box: Mapping[str, Any],
    annotation_id: int,
    image_id: int,
    category_id: int,
    segmentation: dict[str, Any] | None,
    lvis: bool = False,
) -> dict[str, Any]:
    """A canonical box as a COCO annotation; box attributes come back as annotation fields.

    ``lvis``: the box is of an LVIS image (:func:`is_lvis_record`), whose annotations have no ``iscrowd``
    (LVIS has no crowd boxes): one is written only where the box has it.
    """
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
    iscrowd = attributes.pop("iscrowd", None if lvis else 0)
    if not isinstance(iscrowd, int) and not (lvis and iscrowd is None):  # COCO holds 0 or 1 here; bool is an int
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
    if iscrowd is None:
        del entry["iscrowd"]
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


# ----------------------------------------------------------------------------------------------------- LVIS

#: The ``file_name`` of a decoded image that has none (LVIS v1): a string no JSON path can be (NUL is refused).
NO_FILE_NAME = "\0no file_name\0"
#: LVIS's image-level labels, lists of category ids: verified absent from the image / not exhaustively boxed in it.
LVIS_IMAGE_LABELS = ("neg_category_ids", "not_exhaustive_category_ids")


class LvisImageFields(msgspec.Struct, kw_only=True, gc=False):
    """LVIS's own fields of an ``images`` entry: the base of a COCO image struct, so that an LVIS file
    decodes with the typed structs (not the lenient pass that collects unknown keys)."""

    neg_category_ids: Any = UNSET
    not_exhaustive_category_ids: Any = UNSET


class LvisCategoryFields(msgspec.Struct, kw_only=True, gc=False):
    """LVIS's own fields of a ``categories`` entry (``def`` is a Python keyword: the field is ``definition``)."""

    synset: Any = UNSET
    synonyms: Any = UNSET
    definition: Any = msgspec.field(default=UNSET, name="def")
    frequency: Any = UNSET
    image_count: Any = UNSET
    instance_count: Any = UNSET


class _CocoImage(Protocol):
    """What :func:`coco_image_names` reads of a decoded image and sets (``file_name``, if :data:`NO_FILE_NAME`)."""

    file_name: str
    coco_url: Any
    neg_category_ids: Any
    not_exhaustive_category_ids: Any


_FILE_NAME = attrgetter("file_name")
_ID_TYPES = frozenset({int, str})
_IMAGE_LABELS = attrgetter(*LVIS_IMAGE_LABELS)
_NO_IMAGE_LABELS = (UNSET,) * len(LVIS_IMAGE_LABELS)


def json_fields(item: msgspec.Struct, leave_out: frozenset[str]) -> dict[str, Any]:
    """The fields of a decoded struct that the JSON had, by their JSON names (``def``), except ``leave_out``."""
    return {
        key: value
        for name, key in zip(item.__struct_fields__, item.__struct_encode_fields__, strict=True)
        if key not in leave_out and (value := getattr(item, name)) is not UNSET
    }


#: A URL path segment that is a file or folder name as it is (no escape, not ``.`` or ``..``): the common case.
_PLAIN_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")
#: What makes the segments of a URL other than its ``/``-separated text: escapes, query, fragment, IPv6 hosts.
_URL_SYNTAX = re.compile(r"[%?#\\\[\]]")


def coco_url_to_file_name(url: Any) -> str:
    """The image path an LVIS ``coco_url`` names: the last two segments of its path, COCO's image folder and
    the file (``http://images.cocodataset.org/val2017/000000000139.jpg`` -> ``val2017/000000000139.jpg``).

    The folder is kept because LVIS v1's val split holds images of COCO's train2017 and val2017 folders
    alike (detectron2 and the LVIS API join the same two segments to the COCO image root). Percent
    escapes are decoded. Raises :class:`ValueError` for a URL that names no image file, or a path
    :func:`coco_file_name_problem` refuses (``..``).
    """
    if not isinstance(url, str):
        raise ValueError(f"expected the image's URL (a string), got {describe_json(url)}")
    segments = url.split("/")
    plain = len(segments) > 4 and segments[2].isascii() and not _URL_SYNTAX.search(url)
    if plain and _PLAIN_SEGMENT.fullmatch(segments[-2]) and _PLAIN_SEGMENT.fullmatch(segments[-1]):
        return f"{segments[-2]}/{segments[-1]}"  # as every LVIS URL: what _parsed_url_file_name finds, 20x faster
    return _parsed_url_file_name(url)


def _parsed_url_file_name(url: str) -> str:
    """:func:`coco_url_to_file_name` of any URL, by parsing it."""
    try:
        path = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
    except ValueError as exc:
        raise ValueError(f"coco_url {url!r} is not a URL ({exc})") from None
    *_, folder, name = ["", *path.split("/")]
    if name in ("", ".", ".."):
        raise ValueError(f"coco_url {url!r} names no image file; expected a URL ending in the file's name")
    file_name = f"{folder}/{name}" if folder else name
    if (problem := coco_file_name_problem(file_name)) is not None:
        raise ValueError(f"coco_url {url!r} names {file_name!r}: {problem}")
    return file_name


def lvis_labels_problem(value: Any, categories: AbstractSet[Any]) -> tuple[str, str] | None:
    """Why an LVIS image label (``neg_category_ids``...) is refused, and where in it (``""`` or ``[i]``), else
    ``None``: it must be a list of the ids (integers or strings) of categories of the file."""
    if not isinstance(value, list):
        return f"expected a list of category ids, got {describe_json(value)}", ""
    if _ID_TYPES.issuperset(map(type, value)) and categories >= set(value):  # the common case, at C speed
        return None
    for index, category_id in enumerate(value):
        if category_id.__class__ not in _ID_TYPES or category_id not in categories:
            return f"category id {category_id!r} is not the id of any category", f"[{index}]"
    return None


def coco_image_names(
    images: Sequence[_CocoImage], *, categories: AbstractSet[Any], file: Path
) -> dict[int, AnnonormError]:
    """Give every image without a ``file_name`` the one its LVIS ``coco_url`` names (:func:`coco_url_to_file_name`),
    check the LVIS image labels against ``categories`` (the file's category ids); return index -> the error of
    each image that cannot be read. Raises :class:`ParseError` for an image with neither (no COCO file at all).
    """
    named = NO_FILE_NAME not in map(_FILE_NAME, images)
    if named and not any(map(_NO_IMAGE_LABELS.__ne__, map(_IMAGE_LABELS, images))):
        return {}  # plain COCO
    errors: dict[int, AnnonormError] = {}
    for index, image in enumerate(images):
        if image.file_name == NO_FILE_NAME:
            if image.coco_url is UNSET:
                message = "object missing required field `file_name` (or, as LVIS has it, `coco_url`)"
                raise ParseError(message, file=file, location=f"images[{index}]")
            try:
                image.file_name = coco_url_to_file_name(image.coco_url)
            except ValueError as exc:
                errors[index] = UnsafePathError(str(exc), file=file, location=f"images[{index}].coco_url")
                continue
        for key in LVIS_IMAGE_LABELS:
            value = getattr(image, key)
            if value is not UNSET and (problem := lvis_labels_problem(value, categories)) is not None:
                location = f"images[{index}].{key}{problem[1]}"
                errors[index] = InvalidDataError(problem[0], file=file, location=location, image=image.file_name)
                break
    return errors


def is_lvis_record(record: Mapping[str, Any]) -> bool:
    """Whether a record is an LVIS image (its attributes hold LVIS's image labels)."""
    attributes = record.get("attributes") or {}
    return any(key in attributes for key in LVIS_IMAGE_LABELS)


def coco_file_name_entry(record: Mapping[str, Any]) -> dict[str, str]:
    """The ``file_name`` of a record's COCO image entry: none for an LVIS image whose ``coco_url`` names the
    record's image (LVIS v1 has no file_name; writing one would add what the source had not), else the image."""
    image = record["image"]
    if is_lvis_record(record):
        with contextlib.suppress(ValueError):
            name = coco_url_to_file_name(record["attributes"].get("coco_url"))
            if image == name or image.endswith(f"/{name}"):
                return {}
    return {"file_name": image}


def coco_image_dir(candidates: Sequence[Path], head: bytes) -> Path | None:
    """The first of ``candidates`` that holds the first image of a COCO file whose start is ``head``, or ``None``.

    The image is its ``file_name``, else (LVIS) the one its ``coco_url`` names, ``train2017/x.jpg``: that one
    is also found in a candidate named ``train2017`` that holds ``x.jpg`` (then the folder above it is the
    image folder).
    """
    text = head.decode("utf-8", errors="replace")
    if first := re.search(r'"file_name"\s*:\s*"((?:[^"\\]|\\.)*)"', text):
        return next((candidate for candidate in candidates if (candidate / first.group(1)).is_file()), None)
    if not (url := re.search(r'"coco_url"\s*:\s*"((?:[^"\\]|\\.)*)"', text)):
        return None
    try:
        name = coco_url_to_file_name(url.group(1))
    except ValueError:
        return None
    folder, _, last = name.rpartition("/")
    for candidate in candidates:
        if (candidate / name).is_file():
            return candidate
        if folder and candidate.name == folder and (candidate / last).is_file():
            return candidate.parent
    return None
