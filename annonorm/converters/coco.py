"""COCO object-detection ("instances") annotations: read into annonorm records, write back.

Origin: Microsoft COCO (Lin et al., 2014), https://cocodataset.org/#format-data. One JSON file per split:
``images`` (``id``, ``file_name``, ``width``, ``height``), ``annotations`` (``id``, ``image_id``,
``category_id``, ``bbox``, ``segmentation``, ``area``, ``iscrowd``; ``keypoints``/``num_keypoints``,
``score``), ``categories`` (``id``, ``name``, ``supercategory``; ``keypoints``, ``skeleton``). The
keypoint (``person_keypoints_*``), stuff, image-label (``labels_*``, no ``bbox``) and ``image_info_*``
files are read too; captions, panoptic, results lists and non-COCO JSON are refused naming what they are.

Mapping (COCO -> annonorm; ``export coco`` does the reverse):

- ``bbox`` ``[x, y, w, h]`` in pixels -> corners rounded to 6 decimals; a negative size or start is refused.
- ``segmentation``, with ``--masks vector`` (the default): polygons -> ``polygon`` rings rounded like the
  corners (an empty ring dropped, a 2-point ring given its first point again, as pycocotools draws it);
  RLE -> ``rle``, a compressed string kept, uncompressed ``counts`` compressed by pycocotools (lossless).
  ``--masks png``: drawn as pycocotools draws them into one instance PNG per image,
  ``masks/<split>/<file_name without extension>.png`` (:mod:`annonorm.masks`). ``--masks none``
  (``--no-masks``): not read.
- ``keypoints`` ``[x1, y1, v1, ...]`` -> one ``[x, y, v]`` per keypoint name of the category;
  ``num_keypoints`` is derived (kept only where it disagrees). ``skeleton`` is 1-based in COCO and
  0-based in annonorm (DESIGN §1: indices into the ``keypoints`` list). Datumaro's ``"keypoints": []``
  gets the names ``"1".."K"`` from its annotations, its own fields kept as category attributes.
- ``score`` in [0, 1] -> ``score``; ``supercategory`` -> the category's ``supercategory``.
- Category ids are kept as ``source_id`` in source order; a repeated name becomes
  ``<name>#<source id>``. Everything else is kept as attributes: annotation ``id``, ``area``,
  ``iscrowd`` (a boolean) and unknown keys (box); image fields (record); ``info``, ``licenses``
  (dataset). The record ``id`` is the image id; unboxed annotations only add their class to ``labels``.
- ``file_name`` is kept as it is unless it cannot be a path inside the image root (absolute, ``..``,
  a folder): that image is refused (``--on-error skip`` skips it). Only regular files are opened.

Sources: a COCO JSON file (split = the name without its task prefix, ``instances_val2017.json`` ->
``val2017``; Roboflow's ``_annotations.coco.json`` -> its folder) or a folder laid out as COCO
(``annotations/instances_<split>.json``, images in ``images/<split>/``, ``<split>/`` or ``<split>2017/``),
as Roboflow (``<split>/_annotations.coco.json``) or flat. The instances file wins over other task files.

Writing: ``annotations/instances_<split>.json`` per split, ids restored from ``source_id`` / record
``id`` / box attribute ``id`` where unique integers; ``segmentation`` is the box's polygon, else its RLE
(a box with both writes its RLE beside, as ``rle``), else the instance mask PNG as one compressed RLE.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path, PurePosixPath
from typing import Any, cast

import msgspec
import numpy as np
from msgspec import UNSET, UnsetType

from annonorm.converters.base import Capabilities, Converter, Option, ReadContext, ReadResult, workers_option
from annonorm.engine import Executor, LocalExecutor
from annonorm.errors import InvalidDataError, ParseError, UnsafePathError
from annonorm.fsutil import read_regular_bytes, require_regular_file
from annonorm.geometry import corners_to_xywh, round_coord, round_coords, xywh_to_corners
from annonorm.images import read_image_size
from annonorm.io import NormalizedSource
from annonorm.masks import (
    NAME_ERRNOS,
    MaskJob,
    coco_segmentation_to_rle,
    draw_instance_masks,
    instance_mask_name,
    instance_mask_to_coco_rles,
    mask_name_error,
    max_mask_pixels,
    read_instance_mask,
)
from annonorm.paths import check_relative_path
from annonorm.shapes import PREFIX_BYTES, is_coco_results
from annonorm.sink import DatasetWriter
from annonorm.sources.jsondoc import (
    Decoded,
    JsonProblem,
    TypedJson,
    column,
    describe_json,
    field_columns,
    first_repeat,
    fresh_ids,
    is_empty_json,
    json_head,
    positions,
    present_fields,
    write_json_array,
)

__all__ = [
    "CocoConverter",
    "box_to_coco_annotation",
    "box_to_coco_bbox",
    "coco_annotation_to_box",
    "coco_bbox_problem",
    "coco_bbox_to_corners",
    "coco_bboxes_to_corners",
    "coco_categories_to_names",
    "coco_document_problem",
    "coco_file_name_problem",
    "coco_mask_problem",
    "coco_path_to_split",
    "coco_task_files",
    "read_coco",
    "record_to_coco_image",
    "write_coco",
]

# ---------------------------------------------------------------------------------------------- constants

#: Task prefixes of the files COCO ships that this converter reads, best first for one split.
TASK_PREFIXES = ("instances_", "person_keypoints_", "stuff_", "labels_", "image_info_")
#: COCO tasks of another shape, refused with a message naming them.
UNSUPPORTED_PREFIXES = {"captions_": "captions", "panoptic_": "panoptic"}
ROBOFLOW_FILE = "_annotations.coco.json"
#: What ``--masks`` does with segmentations: keep them as vectors, draw instance PNGs, or drop them.
MASK_MODES = ("vector", "png", "none")
#: Below this many masks a process pool costs more to start than it saves.
POOL_MIN_MASKS = 64
#: Splits with at least this many images build their records in one process per core (without masks).
PARALLEL_MIN_IMAGES = 20_000
SNIFF_BYTES = PREFIX_BYTES
#: What a COCO document is, said when a file is something else.
EXPECTED_DOCUMENT = 'a JSON object with an "images" array (and "annotations", "categories")'
_ONLY_INSTANCES = (
    "annonorm's coco converter reads only instances-style files (instances, person_keypoints, stuff, labels, "
    "image_info)"
)
#: Images whose records are built at once: bounds the builder's memory.
_CHUNK_IMAGES = 4096
#: Annotation fields kept as box attributes, in this order; unknown annotation keys follow them.
_BOX_ATTRIBUTE_FIELDS = ("id", "area", "iscrowd", "keypoints", "num_keypoints", "score", "attributes")
_ANNOTATION_CORE = frozenset({"image_id", "category_id", "bbox", "segmentation", "rle"})
_IMAGE_CORE = frozenset({"id", "file_name", "width", "height"})
_CATEGORY_CORE = frozenset({"id", "name"})
_SPLIT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_JSON = msgspec.json.Encoder()
_NO_BOX = (np.nan, np.nan, np.nan, np.nan)

# Typed structs decode COCO train2017 (860k annotations) several times faster than plain dicts; the
# segmentation stays raw JSON until a mask is drawn. gc=False: decoded JSON holds no reference cycles,
# and a million tracked items would make every full collection cost more than the decoding.


class _Image(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, gc=False):
    id: int | str
    file_name: str
    width: int | UnsetType | None = UNSET
    height: int | UnsetType | None = UNSET
    license: Any = UNSET
    coco_url: Any = UNSET
    flickr_url: Any = UNSET
    date_captured: Any = UNSET


class _Annotation(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, gc=False):
    image_id: int | str
    category_id: int | str
    id: int | str | UnsetType = UNSET
    bbox: tuple[float, float, float, float] | UnsetType = UNSET
    segmentation: msgspec.Raw | UnsetType = UNSET
    area: float | UnsetType | None = UNSET
    iscrowd: bool | int | UnsetType = UNSET
    keypoints: Any = UNSET
    num_keypoints: Any = UNSET
    score: Any = UNSET  # a detection's confidence (results, predictions)
    rle: msgspec.Raw | UnsetType = UNSET  # annonorm's writer: a box's RLE beside its polygon
    attributes: Any = UNSET  # Datumaro writes its own attributes here


class _Category(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, gc=False):
    id: int | str
    name: str
    supercategory: Any = UNSET
    keypoints: Any = UNSET
    skeleton: Any = UNSET


class _Document(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    images: list[_Image]
    annotations: list[_Annotation] = []
    categories: list[_Category] = []
    info: Any = UNSET
    licenses: Any = UNSET


class _Rle(msgspec.Struct, gc=False):
    size: tuple[int, int]
    counts: str | list[int]


class _Box(msgspec.Struct, omit_defaults=True, gc=False):
    """A box as the reader builds it: encodes to exactly the canonical box dict, and faster."""

    name: str
    x1: float
    y1: float
    x2: float
    y2: float
    polygon: list[list[float]] | UnsetType = UNSET
    rle: dict[str, Any] | UnsetType = UNSET
    keypoints: list[list[Any]] | UnsetType = UNSET
    score: float | UnsetType = UNSET
    attributes: dict[str, Any] | UnsetType = UNSET


#: One segmentation, decoded only where vectors are kept: rings of numbers, an RLE object, or null.
_SEGMENTATION = msgspec.json.Decoder(list[list[float]] | _Rle | None)
_SEGMENTATIONS = msgspec.json.Decoder(list[list[list[float]] | _Rle | None])


# -------------------------------------------------------------------------------------------------- sniff


def _sniff_file(path: Path) -> bool:
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    head = json_head(path, SNIFF_BYTES)
    # COCO puts "images" before "annotations"; in a big file only "images" fits in the first KBs.
    return head[:1] == b"{" and b'"images"' in head and (b'"annotations"' in head or b'"file_name"' in head)


def coco_task_files(directory: Path) -> list[Path]:
    """The COCO JSON files of a directory laid out as COCO, Roboflow or flat."""
    annotations = directory / "annotations"
    found: list[Path] = []
    if annotations.is_dir():
        found = sorted(p for p in annotations.glob("*.json") if p.name.startswith(TASK_PREFIXES))
    if not found:
        found = sorted(p for p in directory.glob(f"*/{ROBOFLOW_FILE}") if p.is_file())
    if not found:
        found = sorted(p for p in directory.glob("*.json") if _sniff_file(p))
    return found


# -------------------------------------------------------------------------------- mapping coco -> annonorm


def coco_path_to_split(*, path: Path) -> str:
    """The split a COCO file holds: ``instances_val2017.json`` -> ``val2017``, Roboflow -> its directory."""
    if path.name == ROBOFLOW_FILE:
        stem = path.parent.name
    else:
        stem = path.name.removesuffix(".json")
        for prefix in (*TASK_PREFIXES, *UNSUPPORTED_PREFIXES):
            if stem.startswith(prefix) and len(stem) > len(prefix):
                stem = stem[len(prefix) :]
                break
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "_", stem)[:64]
    return cleaned if _SPLIT_NAME.match(cleaned) else f"split_{cleaned}"[:64]


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


def coco_annotation_to_box(*, name: str, bbox: Sequence[float], attributes: dict[str, Any] | None) -> dict[str, Any]:
    """One COCO annotation as a canonical box dict."""
    x1, y1, x2, y2 = coco_bbox_to_corners(bbox=bbox)
    box: dict[str, Any] = {"name": name, "x1": x1, "y1": y1, "x2": x2, "y2": y2}
    if attributes:
        box["attributes"] = attributes
    return box


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


def coco_document_problem(*, head: bytes, document: Any) -> str | None:
    """Why valid JSON that COCO's structs refused is no COCO instances document at all, else ``None``.

    ``head`` is the start of the file, ``document`` the file decoded as plain JSON (``UNSET`` when it
    is not valid JSON). Named: a COCO results list, a JSON without ``images`` (a LabelMe file?), and
    the captions and panoptic tasks, recognised by their first annotation.
    """
    if isinstance(document, list) and is_coco_results(head):
        return (
            f"this is a COCO results list ({len(document)} entries of image_id, category_id, bbox, score; no images "
            "or categories); reading COCO results is not supported yet: convert the ground-truth annotations file "
            "the results were computed on"
        )
    if document is UNSET:
        return None
    if isinstance(document, dict) and "images" in document:
        annotations = document.get("annotations")
        first = annotations[0] if isinstance(annotations, list) and annotations else None
        task = None
        if isinstance(first, dict):
            task = "panoptic" if "segments_info" in first else "captions" if "caption" in first else None
        return None if task is None else f"this is a COCO {task} file (its annotations have no bbox); {_ONLY_INSTANCES}"
    if isinstance(document, dict):
        found = f"an object with the keys {', '.join(sorted(document)[:8])}" if document else "an empty object"
        if "shapes" in document and "imagePath" in document:
            found += " (a LabelMe file?)"
    else:
        found = describe_json(document)
    return f"no COCO annotations here: expected {EXPECTED_DOCUMENT}, found {found}"


def coco_polygons_to_rings(
    *, segmentations: Sequence[Sequence[Sequence[float]]], exact: bool = False
) -> list[list[list[float]]]:
    """COCO polygon segmentations (one list of rings per annotation) -> annonorm ``polygon`` s, rounded.

    Coordinates are rounded like box corners, all rings of all annotations in one call; an empty ring
    is dropped, and a 2-point ring gets its first point again (the degenerate triangle pycocotools
    draws). Raises :class:`ValueError` for a ring of an odd count or of fewer than 4 numbers.
    ``exact``: the caller knows every coordinate is a finite float already rounded (:func:`_exact_json`).
    """
    rings = [ring for polygon in segmentations for ring in polygon]
    lengths = list(map(len, rings))
    if any(length % 2 or length < 6 for length in lengths):
        for length in lengths:
            if length % 2 or 0 < length < 4:
                raise ValueError(
                    f"a polygon ring has {length} numbers; expected an even count, at least 6 (x, y pairs)"
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


#: A number the 6-decimal rounding changes, or a negative zero: written with an exponent, more than 6
#: decimals, or as -0 (a JSON text without one decodes to floats that are already canonical).
_LONG_FRACTION = re.compile(rb"\.\d{7}")
_NEGATIVE_ZERO = re.compile(rb"-0(?:\.0*)?(?![\d.])")


def _exact_json(raw: bytes) -> bool:
    """Whether every number of a JSON text of numbers decodes to a coordinate the rounding leaves as it is."""
    if b"e" in raw or b"E" in raw or (b"-0" in raw and _NEGATIVE_ZERO.search(raw)):
        return False
    return _LONG_FRACTION.search(raw) is None


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


def _reword(problem: JsonProblem) -> str | None:
    """A refused ``bbox`` said in COCO's terms."""
    if problem.path.endswith(".bbox") and problem.found is not UNSET:
        return f"expected 4 numbers [x, y, width, height], got {describe_json(problem.found)}"
    if re.search(r"\.bbox\[\d+\]$", problem.path):
        return f"bbox values must be numbers [x, y, width, height]; {problem.message}"
    return None


_TYPED = TypedJson(
    _Document,
    items={"images": _Image, "annotations": _Annotation, "categories": _Category},
    what="COCO",
    refuse=lambda raw, document: coco_document_problem(head=raw[:PREFIX_BYTES], document=document),
    reword=_reword,
)


# -------------------------------------------------------------------------------- mapping annonorm -> coco


def box_to_coco_bbox(*, box: Mapping[str, Any]) -> list[float]:
    """A canonical box -> COCO ``[x, y, width, height]``, rounded to the format's 6 decimals."""
    xywh = corners_to_xywh(float(box["x1"]), float(box["y1"]), float(box["x2"]), float(box["y2"]))
    return [round_coord(value) for value in xywh]


def record_to_coco_image(*, record: Mapping[str, Any], image_id: int) -> dict[str, Any]:
    """A record as a COCO ``images`` entry; record attributes come back as image fields."""
    entry: dict[str, Any] = {"id": image_id, "file_name": record["image"]}
    if record.get("width") is not None:
        entry["width"] = record["width"]
        entry["height"] = record["height"]
    entry.update((k, v) for k, v in (record.get("attributes") or {}).items() if k not in _IMAGE_CORE)
    return entry


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
    entry.update((k, v) for k, v in attributes.items() if k not in entry and k not in _ANNOTATION_CORE)
    return entry


def _polygon_rles(rings: list[list[float]], box: Mapping[str, Any]) -> Any:
    """Polygon rings as pycocotools RLEs on a canvas that holds them (the area does not depend on its size)."""
    from pycocotools import mask as mask_utils

    height = int(max(float(box["y2"]), *(max(ring[1::2]) for ring in rings))) + 2
    width = int(max(float(box["x2"]), *(max(ring[0::2]) for ring in rings))) + 2
    return mask_utils.frPyObjects(rings, height, width)


# ------------------------------------------------------------------------------------------------- layout


@dataclass
class _SplitPlan:
    """One COCO file to read as one split, and where its images are."""

    split: str
    path: Path
    image_dir: Path
    prefix: str = ""  # path of image_dir relative to the dataset's image root, "" when equal


def _split_dir_names(split: str) -> list[str]:
    short = split.removesuffix("2017")
    return list(dict.fromkeys([split, f"{short}2017", short]))


def _find_image_dir(json_path: Path, split: str, images: Path | None) -> Path:
    """Where a split's images are: the first candidate directory that holds the split's first image."""
    if images is not None:
        specific = [images / name for name in _split_dir_names(split)]
        candidates, fallback = [*specific, images], images
    elif json_path.name == ROBOFLOW_FILE:
        return json_path.parent  # Roboflow puts the images beside the JSON
    else:
        base = json_path.parent.parent if json_path.parent.name == "annotations" else json_path.parent
        names = _split_dir_names(split)
        specific = [*(base / "images" / name for name in names), *(base / name for name in names)]
        candidates, fallback = [*specific, base / "images", base, json_path.parent], base
    # The first image's file_name, from the beginning of the file (cheap, no full decode).
    head = json_head(json_path, SNIFF_BYTES).decode("utf-8", errors="replace")
    first = re.search(r'"file_name"\s*:\s*"((?:[^"\\]|\\.)*)"', head)
    if first:
        for candidate in candidates:
            if (candidate / first.group(1)).is_file():
                return candidate
    return next((candidate for candidate in specific if candidate.is_dir()), fallback)


def _directory_hint(source: Path) -> str:
    """What a directory without COCO files holds instead, when that is recognisable (for the error)."""
    annotations = source / "annotations"
    unsupported = sorted(annotations.glob("*.json")) if annotations.is_dir() else []
    if unsupported:
        return f" (found only {', '.join(p.name for p in unsupported[:5])}: captions and panoptic are not supported)"
    for path in sorted(source.glob("*.json"))[:20]:
        if is_coco_results(json_head(path, SNIFF_BYTES)):
            return f" ({path.name} is a COCO results list: reading COCO results is not supported yet)"
    if (source / "Annotations").is_dir() and next((source / "Annotations").glob("*.xml"), None) is not None:
        return " (it holds Annotations/*.xml: a Pascal VOC folder? try annonorm convert voc)"
    return ""


def _plan(source: Path, images: Path | None) -> tuple[str, Path, list[_SplitPlan]]:
    """Name, image root and per-split files of a source (a COCO file or directory)."""
    if source.is_dir():
        by_split: dict[str, Path] = {}
        for path in sorted(coco_task_files(source), key=lambda p: (_prefix_rank(p.name), p.name)):
            by_split.setdefault(coco_path_to_split(path=path), path)
        if not by_split:
            raise ParseError(
                "no COCO annotations here: expected annotations/instances_<split>.json, "
                f"<split>/{ROBOFLOW_FILE} or a COCO .json file{_directory_hint(source)}",
                file=source,
            )
        plans = [_SplitPlan(split, path, Path()) for split, path in sorted(by_split.items(), key=_split_order)]
        name = source.resolve().name or "coco"
    else:
        split = coco_path_to_split(path=source)
        plans = [_SplitPlan(split, source, Path())]
        name = f"coco-{split}"
    for plan in plans:
        require_regular_file(plan.path, "COCO JSON file")  # a FIFO or /dev/zero: refused before any read
    for plan in plans:
        plan.image_dir = Path(os.path.abspath(_find_image_dir(plan.path, plan.split, images)))
    image_root = Path(os.path.commonpath([str(plan.image_dir) for plan in plans]))
    for plan in plans:
        relative = PurePosixPath(Path(os.path.relpath(plan.image_dir, image_root)).as_posix())
        plan.prefix = "" if str(relative) == "." else f"{relative}/"
    return name, image_root, plans


def _prefix_rank(name: str) -> int:
    return next((rank for rank, prefix in enumerate(TASK_PREFIXES) if name.startswith(prefix)), len(TASK_PREFIXES))


def _split_order(item: tuple[str, Path]) -> tuple[int, str]:
    # train before val before test, as COCO ships them; other names alphabetically after.
    split = item[0]
    return next((rank for rank, key in enumerate(("train", "val", "test")) if split.startswith(key)), 3), split


def _source_files(source: Path) -> list[Path]:
    if not source.is_dir():
        return [source]
    found = coco_task_files(source)
    if not found:
        raise ParseError("no COCO annotation file here; expected annotations/instances_<split>.json", file=source)
    return found


# --------------------------------------------------------------------------------------------------- read


def parse_coco_file(path: Path) -> Decoded[_Document]:
    """Read and decode one COCO file, refusing unreadable, malformed and unsupported-task files."""
    raw = read_regular_bytes(path, "COCO JSON file")  # FIFOs, devices, folders: refused before reading
    for prefix, task in UNSUPPORTED_PREFIXES.items():
        if path.name.startswith(prefix):
            raise ParseError(f"this is a COCO {task} file; {_ONLY_INSTANCES}", file=path)
    return _TYPED.decode(raw, file=path)


def _declare_categories(
    decoded: Decoded[_Document], file: Path, writer: DatasetWriter, declared: dict[str, Any]
) -> dict[Any, str]:
    """Register a file's categories (source order) and return COCO id -> unique name.

    Categories go through ``writer.category`` only (a user's class list may already fix them and their
    order); ``declared`` (unique name -> COCO id) is what earlier files of this read declared, so that
    a class keeps one id across splits.
    """
    categories = decoded.document.categories
    extras = (decoded.extras or {}).get("categories")
    repeat = first_repeat(column([c.id for c in categories]))
    empty = next((index for index, category in enumerate(categories) if not category.name), None)
    if repeat is not None and (empty is None or repeat[0] <= empty):
        message = f"category id {categories[repeat[0]].id!r} is used twice (also categories[{repeat[1]}])"
        raise InvalidDataError(message, file=file, location=f"categories[{repeat[0]}].id")
    if empty is not None:
        raise InvalidDataError("category name is empty", file=file, location=f"categories[{empty}].name")
    names = coco_categories_to_names(categories=[(c.id, c.name) for c in categories])
    lengths: dict[Any, set[int]] = {}
    for annotation in decoded.document.annotations:
        if isinstance(annotation.keypoints, list):
            lengths.setdefault(annotation.category_id, set()).add(len(annotation.keypoints))
    table: dict[Any, str] = {}
    for index, (category, name) in enumerate(zip(categories, names, strict=True)):
        attributes = present_fields(category, _CATEGORY_CORE) | (extras[index] if extras else {})
        if name != category.name:
            attributes["name"] = category.name
        supercategory = attributes.pop("supercategory", None)
        if not isinstance(supercategory, str) or not supercategory:  # not what the manifest holds: an attribute
            attributes |= {} if supercategory is None else {"supercategory": supercategory}
            supercategory = None
        keypoints, skeleton = _category_keypoints(attributes, lengths.get(category.id, set()))
        if name not in declared:
            fields = {"supercategory": supercategory, "keypoints": keypoints, "skeleton": skeleton}
            writer.category(name, category.id, attributes or None, **fields)
            declared[name] = category.id
        elif declared[name] != category.id:
            raise InvalidDataError(
                f"category {name!r} has id {category.id!r} here but {declared[name]!r} in an earlier file; "
                "annonorm needs one id per class across splits",
                file=file,
                location=f"categories[{index}]",
            )
        elif keypoints is not None and writer.category_keypoints(name) is None:  # names generated from this file
            writer.categories[writer.category(name)] |= {"keypoints": keypoints, "skeleton": skeleton}
        table[category.id] = name
    return table


def _category_keypoints(attributes: dict[str, Any], lengths: set[int]) -> tuple[Any, Any]:
    """A category's keypoint names and 0-based skeleton (taken out of ``attributes``), or ``(None, None)``.

    Datumaro writes ``"keypoints": []`` with a 0-based skeleton: when every annotation of the class has
    the same ``3 K`` values, the names are ``"1"..."K"`` and the source's fields stay as attributes
    (the writer puts them back as they were).
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


class _SplitReader:
    """One decoded COCO file as the records of one split.

    The annotations become arrays in image order (file order within an image; COCO files need not be
    sorted by image), and records are built from them a chunk of images at a time: Python objects
    reached in image order are scattered over the decoded file, and at COCO train2017 scale the cache
    misses of visiting them cost more than building the records. A rule a row breaks is found for all
    rows at once and worded, for the rare image that has one, by the ``coco_*_problem`` functions.
    """

    def __init__(
        self, decoded: Decoded[_Document], plan: _SplitPlan, writer: DatasetWriter, names: dict[Any, str], masks: str
    ) -> None:
        self.document, self.plan, self.writer, self.file = decoded.document, plan, writer, plan.path
        extras = decoded.extras or {}
        self.image_extras, annotation_extras = extras.get("images"), extras.get("annotations")
        self.names = [*names.values(), ""]  # "" for -1, an unknown category: its image is refused, never built
        self.used_masks: set[str] = set()
        images, annotations = self.document.images, self.document.annotations
        image_ids = column([image.id for image in images])
        if (repeat := first_repeat(image_ids)) is not None:
            message = f"image id {images[repeat[0]].id!r} is used twice"
            raise InvalidDataError(message, file=self.file, location=f"images[{repeat[0]}].id")
        rows = column(list(map(attrgetter("image_id"), annotations)))
        owners = positions(rows, image_ids)
        categories = positions(column(list(map(attrgetter("category_id"), annotations))), column(list(names)))
        # One pass tells whether the rarely used fields occur at all (they do in keypoint files).
        rare = any((a.keypoints, a.num_keypoints, a.score, a.attributes) != (UNSET,) * 4 for a in annotations)
        fields = _BOX_ATTRIBUTE_FIELDS if rare else _BOX_ATTRIBUTE_FIELDS[:3]
        attributes = field_columns(annotations, fields, flags=frozenset({"iscrowd"}))
        if "id" in attributes and (repeat := first_repeat(attributes["id"][0])) is not None:
            message = f"annotation id {annotations[repeat[0]].id!r} is used twice (also annotations[{repeat[1]}])"
            raise InvalidDataError(message, file=self.file, location=f"annotations[{repeat[0]}].id")
        for index in np.flatnonzero(owners < 0).tolist():
            message = f"image_id {annotations[index].image_id!r} is not the id of any image"
            writer.problem(InvalidDataError(message, file=self.file, location=f"annotations[{index}].image_id"))
        known = np.flatnonzero(owners >= 0)
        order = self.order = known[np.argsort(owners[known], kind="stable")]  # stable: file order within an image
        self.starts = np.r_[0, np.cumsum(np.bincount(owners[known], minlength=len(images)))]
        # Read in file order (adjacent objects), then put in image order.
        bboxes = [_NO_BOX if a.bbox is UNSET else a.bbox for a in annotations]
        xywh = np.fromiter(itertools.chain.from_iterable(bboxes), dtype=np.float64, count=4 * len(bboxes))
        xywh = xywh.reshape(-1, 4)[order]
        self.corners = coco_bboxes_to_corners(bboxes=xywh)
        self.categories = categories[order]
        self.boxed = ~np.isnan(xywh[:, 0])  # JSON has no NaN: only _NO_BOX holds one
        self.bad = (xywh < 0).any(axis=1) | (self.categories < 0)
        self.attributes = {key: (values[order], absent == 0) for key, (values, absent) in attributes.items()}
        self.extras = None
        if annotation_extras is not None:
            self.extras = np.fromiter(annotation_extras, dtype=object, count=len(annotation_extras))[order]
        owner = self.owner = owners[order]
        self.clean = np.bincount(owner[self.bad], minlength=len(images)) == 0
        self.unboxed = np.bincount(owner[~self.boxed], minlength=len(images)) > 0
        self.mode, self.segmentations, self.rles = masks, None, None
        if masks != "none":
            segmentations = list(map(attrgetter("segmentation"), annotations))
            self.segmentations = [segmentations[i] for i in order.tolist()]
        if masks == "vector" and any(a.rle is not UNSET for a in annotations):
            self.rles = [annotations[i].rle for i in order.tolist()]
        # Keypoints become the box field where the category names them; the score is a field of its own.
        counts = [len(writer.category_keypoints(name) or ()) for name in self.names]
        self.keypoint_counts = np.array(counts)[self.categories]
        self.keypoints = self.attributes.pop("keypoints", None) if any(counts) else None
        self.num_keypoints = self.attributes.pop("num_keypoints", None) if self.keypoints is not None else None
        self.scores = self.attributes.pop("score", None)
        self.vectors = masks == "vector" or self.keypoints is not None or self.scores is not None

    def write(self, writer: DatasetWriter, start: int, stop: int) -> None:
        """Write the records of images ``start..stop`` (no masks drawn) into ``writer``."""
        parent, self.writer = self.writer, writer  # a forked part's problems go to its part writer
        try:
            for records, _ in self.records(start, stop):
                writer.add_many(self.plan.split, records)
        finally:
            self.writer = parent

    def annotated_images(self) -> int:
        """How many images have at least one annotation."""
        return int(np.count_nonzero(np.diff(self.starts)))

    def records(self, start: int, stop: int) -> Iterator[tuple[list[dict[str, Any]], list[MaskJob | None]]]:
        """The records of images ``start..stop`` (and, with masks, their mask jobs), a chunk at a time."""
        images, boxed = self.document.images, self.boxed
        for chunk in range(start, stop, _CHUNK_IMAGES):
            end = min(chunk + _CHUNK_IMAGES, stop)
            starts = self.starts[chunk : end + 1].tolist()
            first = starts[0]
            boxes, box_names = self._boxes(first, starts[-1])
            problems = self._vector_fields(boxes, first) if self.vectors else {}
            clean, unboxed = self.clean[chunk:end].tolist(), self.unboxed[chunk:end].tolist()
            records: list[dict[str, Any]] = []
            jobs: list[MaskJob | None] = []
            for offset, index in enumerate(range(chunk, end)):
                image = images[index]
                size = self._image_size(index, image)
                low, high = starts[offset], starts[offset + 1]
                if size is None:
                    continue
                if not clean[offset]:
                    self._refuse(image, low, high)
                    continue
                if problems and (problem := next((problems[p] for p in range(low, high) if p in problems), None)):
                    error = InvalidDataError(problem[0], file=self.file, location=problem[1], image=image.file_name)
                    self.writer.problem(error)
                    continue
                own, own_names = boxes[low - first : high - first], box_names[low - first : high - first]
                labels = list(dict.fromkeys(own_names)) if unboxed[offset] else None
                if unboxed[offset]:  # image-level labels (COCO "labels" task): the class is present, unboxed
                    kept = boxed[low:high].tolist()
                    own = [box for box, keep in zip(own, kept, strict=True) if keep]
                    own_names = [name for name, keep in zip(own_names, kept, strict=True) if keep]
                counts: dict[str, int] = {}
                for name in own_names:
                    counts[name] = counts.get(name, 0) + 1
                mask, job = None, None
                if self.mode == "png":
                    drawn = self._mask_job(index, image, size, low, high)
                    if drawn is None:
                        continue
                    mask, job = drawn
                records.append(self._assemble(index, image, size, labels or list(counts), counts, own, mask))
                jobs.append(job)
            yield records, jobs

    def _boxes(self, first: int, last: int) -> tuple[list[_Box], list[str]]:
        """The boxes of positions ``first..last`` and their class names."""
        names = self.names
        box_names = [names[k] for k in self.categories[first:last].tolist()]
        x1, y1, x2, y2 = self.corners[first:last].T.tolist()
        if not self.attributes and self.extras is None:
            return [_Box(*row) for row in zip(box_names, x1, y1, x2, y2, strict=True)], box_names
        attributes: list[dict[str, Any]] = [{} for _ in box_names]
        for key, (values, everywhere) in self.attributes.items():
            pairs = zip(attributes, values[first:last].tolist(), strict=True)
            for extra, value in pairs:
                if everywhere or value is not UNSET:
                    extra[key] = value
        if self.extras is not None:
            for extra, unknown in zip(attributes, self.extras[first:last].tolist(), strict=True):
                extra.update(unknown)
        rows = zip(box_names, x1, y1, x2, y2, attributes, strict=True)
        return [_Box(n, a, b, c, d, attributes=e or UNSET) for n, a, b, c, d, e in rows], box_names

    def _vector_fields(self, boxes: list[_Box], first: int) -> dict[int, tuple[str, str]]:
        """Give the boxes of positions ``first..`` their polygon, RLE, keypoints and score; return
        position -> (problem, location) for the annotations whose values cannot be."""
        problems: dict[int, tuple[str, str]] = {}
        last = first + len(boxes)
        if self.mode == "vector":
            assert self.segmentations is not None
            polygons: list[tuple[int, _Box, list[list[float]]]] = []
            chunk = self.segmentations[first:last]
            decoded: list[Any]
            text = b"[" + b",".join(b"null" if r is UNSET else r for r in chunk) + b"]"
            try:  # one decode for the chunk; an item it refuses is decoded alone below, to be named
                decoded = _SEGMENTATIONS.decode(text)
            except msgspec.ValidationError:
                decoded = [UNSET] * len(chunk)
            for position, box, known in zip(range(first, last), boxes, decoded, strict=True):
                if known.__class__ is list and self.rles is None:  # the common case, without a call
                    if known:
                        polygons.append((position, box, known))
                    continue
                if known is None and self.rles is None:
                    continue
                raws = [chunk[position - first], UNSET if self.rles is None else self.rles[position]]
                try:
                    for number, raw in enumerate(raws):
                        if number == 0 and known is not UNSET:
                            value = known
                        else:
                            value = None if raw is UNSET or is_empty_json(raw) else _SEGMENTATION.decode(raw)
                        if isinstance(value, _Rle):
                            image = self.document.images[self.owner[position]]
                            size = {} if image.width is UNSET else {"height": image.height, "width": image.width}
                            box.rle = coco_rle_to_rle(size=value.size, counts=value.counts, **size)
                        elif value is not None:
                            polygons.append((position, box, value))
                except (msgspec.ValidationError, InvalidDataError) as exc:
                    said = str(exc).replace(" - at `$", " at `")  # msgspec's path is within the segmentation
                    message = exc.message if isinstance(exc, InvalidDataError) else said
                    location = f"annotations[{self.order[position]}].segmentation"
                    problems[position] = f"cannot read the segmentation: {message}", location
            try:
                exact = _exact_json(b",".join(chunk[position - first] for position, _, _ in polygons))
                rings = coco_polygons_to_rings(segmentations=[value for _, _, value in polygons], exact=exact)
            except ValueError:
                rings = []
                for position, _, value in polygons:
                    try:
                        rings.extend(coco_polygons_to_rings(segmentations=[value]))
                    except ValueError as exc:
                        rings.append([])
                        problems[position] = str(exc), f"annotations[{self.order[position]}].segmentation"
            for (_, box, _), ring in zip(polygons, rings, strict=True):
                if ring:
                    box.polygon = ring
        if self.keypoints is not None:
            self._keypoint_fields(boxes, first, problems)
        if self.scores is not None:
            values, everywhere = self.scores
            for box, score in zip(boxes, values[first:last].tolist(), strict=True):
                if isinstance(score, (int, float)) and not isinstance(score, bool) and 0 <= score <= 1:
                    box.score = float(score)
                elif everywhere or score is not UNSET:  # not a confidence: kept as the source has it
                    box.attributes = {"score": score} | (box.attributes or {})
        return problems

    def _keypoint_fields(self, boxes: list[_Box], first: int, problems: dict[int, tuple[str, str]]) -> None:
        assert self.keypoints is not None
        last = first + len(boxes)
        values = self.keypoints[0][first:last].tolist()
        numbers = self.num_keypoints[0][first:last].tolist() if self.num_keypoints is not None else [UNSET] * len(boxes)
        counts = self.keypoint_counts[first:last].tolist()
        for position, (box, value, number, count) in enumerate(zip(boxes, values, numbers, counts, strict=True), first):
            kept: dict[str, Any] = {}
            if value is not UNSET and count:
                try:
                    box.keypoints = coco_keypoints_to_points(keypoints=value, count=count)
                except ValueError as exc:
                    problems.setdefault(position, (str(exc), f"annotations[{self.order[position]}].keypoints"))
                    continue
                if number is not UNSET and number != sum(1 for point in box.keypoints if point[2]):
                    kept["num_keypoints"] = number  # not what the keypoints say: kept as the source has it
            else:
                kept = {k: v for k, v in (("keypoints", value), ("num_keypoints", number)) if v is not UNSET}
            if kept:
                box.attributes = kept if isinstance(box.attributes, UnsetType) else box.attributes | kept

    def _refuse(self, image: _Image, low: int, high: int) -> None:
        """Report the first annotation of positions ``low..high`` that breaks a rule."""
        position = low + int(np.argmax(self.bad[low:high]))
        member = int(self.order[position])
        annotation = self.document.annotations[member]
        if self.categories[position] < 0:
            message = f"category_id {annotation.category_id!r} is not the id of any category"
            location = f"annotations[{member}].category_id"
        else:
            assert not isinstance(annotation.bbox, UnsetType)  # an unboxed row breaks no box rule
            message, location = coco_bbox_problem(bbox=annotation.bbox) or "", f"annotations[{member}].bbox"
        self.writer.problem(InvalidDataError(message, file=self.file, location=location, image=image.file_name))

    def _image_size(self, index: int, image: _Image) -> tuple[int | None, int | None] | None:
        """The image's width and height (``None`` when unknown), or ``None`` after reporting a problem."""
        problem = coco_file_name_problem(image.file_name)
        location = f"images[{index}].file_name"
        if problem is not None:
            self.writer.problem(UnsafePathError(problem, file=self.file, location=location, image=image.file_name))
            return None
        width, height = image.width, image.height
        if not isinstance(width, int) or not isinstance(height, int):
            path = self.plan.image_dir / image.file_name
            if os.path.exists(path) and not os.path.isfile(path):  # a FIFO would block the header read
                try:
                    require_regular_file(path, "image")
                except ParseError as exc:
                    self.writer.problem(ParseError(exc.message, file=path, location=location, image=image.file_name))
                    return None
            return read_image_size(path) or (None, None)
        if width <= 0 or height <= 0:
            message = f"width and height must be > 0, got {width} x {height}"
            self.writer.problem(
                InvalidDataError(message, file=self.file, location=f"images[{index}]", image=image.file_name)
            )
            return None
        return width, height

    def _mask_job(
        self, index: int, image: _Image, size: tuple[int | None, int | None], low: int, high: int
    ) -> tuple[str | None, MaskJob | None] | None:
        """The mask path and job of an image (``(None, None)``: nothing to draw), ``None`` after a problem."""
        assert self.segmentations is not None
        segmentations: list[bytes | None] = []
        locations: list[str] = []
        for position in range(low, high):
            if self.boxed[position]:
                raw = self.segmentations[position]
                drawn = isinstance(raw, msgspec.Raw) and not is_empty_json(raw)
                segmentations.append(bytes(raw) if drawn and isinstance(raw, msgspec.Raw) else None)
                locations.append(f"annotations[{self.order[position]}].segmentation")
        if all(s is None for s in segmentations):
            return None, None
        width, height = size
        problem = coco_mask_problem(width=width, height=height, limit=max_mask_pixels())
        if problem is not None or width is None or height is None:
            error = InvalidDataError(problem or "", file=self.file, location=f"images[{index}]", image=image.file_name)
            self.writer.problem(error)
            return None
        mask = instance_mask_name(self.plan.split, image.file_name, self.used_masks)
        try:
            out = self.writer.mask_file(mask)
        except OSError as exc:
            if exc.errno not in NAME_ERRNOS:
                raise
            self.writer.problem(mask_name_error(exc, self.file, index, image.file_name))
            return None
        return mask, MaskJob(str(out), height, width, segmentations, locations, image.file_name, index)

    def _assemble(
        self,
        index: int,
        image: _Image,
        size: tuple[int | None, int | None],
        labels: list[str],
        counts: dict[str, int],
        boxes: list[_Box],
        mask: str | None,
    ) -> dict[str, Any]:
        """The canonical record, keys in format order (the writer encodes it as it is)."""
        attributes = present_fields(image, _IMAGE_CORE)
        if self.image_extras is not None:
            attributes.update(self.image_extras[index])
        record: dict[str, Any] = {"image": self.plan.prefix + image.file_name}
        width, height = size
        if width is not None and height is not None:
            record["width"], record["height"] = width, height
        record["labels"], record["counts"], record["boxes"] = labels, counts, boxes
        if mask is not None:
            record["mask"] = mask
        record["id"] = image.id
        if attributes:
            record["attributes"] = attributes
        return record


def read_coco(
    source: Path,
    writer: DatasetWriter,
    *,
    images: Path | None,
    masks: str = "vector",
    executor: Executor | None = None,
) -> ReadResult:
    """Read a COCO file or directory into ``writer`` (see the module docstring); ``masks`` is
    ``vector`` (polygons and RLE into the boxes), ``png`` (instance mask PNGs) or ``none``."""
    name, image_root, plans = _plan(source, images)
    dataset_attributes: dict[str, Any] = {}
    declared: dict[str, Any] = {}
    images_seen = 0
    executor = executor or LocalExecutor()
    for plan in plans:
        writer.add_source_file(plan.path)  # hashed in a thread while the file is decoded
        decoded = parse_coco_file(plan.path)
        document = decoded.document
        for key in ("info", "licenses"):
            if (value := getattr(document, key)) is not UNSET:
                dataset_attributes.setdefault(key, value)
        for key, value in decoded.top_extras.items():
            if key not in ("info", "licenses"):
                dataset_attributes.setdefault(key, value)
        if masks == "none":  # raw segmentations point into the file's bytes and keep all of them alive
            for annotation in document.annotations:
                annotation.segmentation = UNSET
        images_seen += len(document.images)
        writer.expect(len(document.images))
        if not images_seen and plan is plans[-1]:
            files = "it lists" if len(plans) == 1 else f"its {len(plans)} files list"
            message = f'no COCO annotations here: expected at least one entry in "images", but {files} no image'
            raise ParseError(message, file=source)
        names = _declare_categories(decoded, plan.path, writer, declared)
        reader = _SplitReader(decoded, plan, writer, names, masks)
        writer.declare_split(plan.split)
        writer.finish_hashing()  # no thread may run when a pool forks
        if masks == "png":
            records = reader.records(0, len(document.images))
            units = (pair for built, jobs in records for pair in zip(built, jobs, strict=True))
            size, file = reader.annotated_images(), plan.path
            if draw_instance_masks(writer, executor, plan.split, units, file=file, size=size, pool_min=POOL_MIN_MASKS):
                writer.mask_kind = "instance"
            continue
        workers = executor.execution.pool_size(len(document.images), PARALLEL_MIN_IMAGES)
        if not (workers > 1 and writer.add_in_parts(plan.split, executor, len(document.images), workers, reader.write)):
            reader.write(writer, 0, len(document.images))
    return ReadResult(name=name, image_root=image_root, attributes=dataset_attributes or None)


# -------------------------------------------------------------------------------------------------- write


def _annotations(
    dataset: NormalizedSource, split: str, image_ids: list[int], id_of_name: Mapping[str, int]
) -> Iterator[dict[str, Any]]:
    """The COCO annotations of a split, with the instance masks (if any) as one RLE per box."""
    instance_masks = dataset.manifest.mask_kind == "instance"
    annotation_ids = fresh_ids(
        (box.get("attributes") or {}).get("id") for record in dataset.records(split) for box in record["boxes"]
    )
    for record, image_id in zip(dataset.records(split), image_ids, strict=True):
        boxes = record["boxes"]
        segmentations: list[dict[str, Any] | None] = [None] * len(boxes)
        if instance_masks and record.get("mask") and boxes:
            mask = read_instance_mask(dataset.mask_path(record["mask"]))
            segmentations = instance_mask_to_coco_rles(mask=mask, count=len(boxes))
        for box, segmentation in zip(boxes, segmentations, strict=True):
            yield box_to_coco_annotation(
                box=box,
                annotation_id=next(annotation_ids),
                image_id=image_id,
                category_id=id_of_name[box["name"]],
                segmentation=segmentation,
            )


def write_coco(dataset: NormalizedSource, out: Path) -> None:
    """Write every split of ``dataset`` as ``annotations/instances_<split>.json`` in ``out``."""
    manifest = dataset.manifest
    categories = []
    id_of_name: dict[str, int] = {}
    for category, coco_id in zip(manifest.categories, fresh_ids(c.source_id for c in manifest.categories), strict=True):
        entry: dict[str, Any] = {"id": coco_id, "name": category.name}
        if category.supercategory is not None:
            entry["supercategory"] = category.supercategory
        if category.keypoints is not None:
            entry["keypoints"] = category.keypoints
            entry["skeleton"] = [[first + 1, second + 1] for first, second in category.skeleton or ()]  # 1-based
        categories.append(entry | {k: v for k, v in (category.attributes or {}).items() if k != "id"})
        id_of_name[category.name] = coco_id
    from_coco = manifest.source is not None and manifest.source.format == "coco"
    top = {
        k: v
        for k, v in (manifest.attributes or {}).items()
        if k not in ("images", "annotations", "categories") and (from_coco or k in ("info", "licenses"))
    }
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    for split in manifest.splits:
        image_ids = list(fresh_ids(record.get("id") for record in dataset.records(split)))
        with (out / "annotations" / f"instances_{split}.json").open("wb") as stream:
            stream.write(b"{" + b",\n".join(_JSON.encode(k) + b": " + _JSON.encode(v) for k, v in top.items()))
            images = zip(dataset.records(split), image_ids, strict=True)
            write_json_array(
                stream, "images", (record_to_coco_image(record=r, image_id=i) for r, i in images), first=not top
            )
            write_json_array(stream, "annotations", _annotations(dataset, split, image_ids, id_of_name))
            stream.write(b",\n" + _JSON.encode("categories") + b": " + _JSON.encode(categories) + b"}\n")


# ---------------------------------------------------------------------------------------------- converter


class _MasksOption(Option):
    """``--masks``; the Python API's 0.1 spelling ``masks=True`` / ``False`` means ``png`` / ``none``."""

    def convert(self, value: Any) -> Any:
        return super().convert({True: "png", False: "none"}.get(value, value) if isinstance(value, bool) else value)


class CocoConverter(Converter):
    """COCO instances JSON (boxes, crowds, polygon and RLE masks, keypoints), both ways."""

    name = "coco"
    summary = "COCO instances JSON: boxes, crowds, polygon/RLE segmentation, keypoints"
    read_options = (
        _MasksOption(
            "masks",
            "Segmentations: vector (polygons, RLE in the records; default), png (instance mask PNGs) or none.",
            choices=MASK_MODES,
            default="vector",
        ),
        Option("no_masks", "Boxes only: the same as --masks none.", type=bool),
        workers_option("build records (large splits) or render masks"),
    )
    capabilities = Capabilities(
        box_attributes=True,
        image_attributes=True,
        # COCO's own fields: an attribute of one of these names would be written as the field.
        reserved_attributes=frozenset((*_BOX_ATTRIBUTE_FIELDS, *_ANNOTATION_CORE)) | _IMAGE_CORE,
        added_attributes=frozenset({"id", "area", "iscrowd"}),
        ids=True,
        category_order=True,
        polygons=True,
        rle=True,
        keypoints=True,
        scores=True,
    )

    @classmethod
    def sniff(cls, source: Path) -> bool:
        """A ``.json`` that starts like a COCO file, or a directory holding such files."""
        return bool(coco_task_files(source)) if source.is_dir() else _sniff_file(source)

    @classmethod
    def source_files(cls, source: Path, options: Mapping[str, Any]) -> list[Path]:
        """The COCO file, or the annotation files of a directory."""
        return _source_files(source)

    def read(self, source: Path, ctx: ReadContext) -> ReadResult:
        """Stream a COCO file or directory into ``ctx.sink``."""
        masks = "none" if ctx.options.get("no_masks") else ctx.options.get("masks") or "vector"
        return read_coco(source, ctx.sink, images=ctx.images, masks=masks, executor=ctx.executor)

    def write(self, dataset: NormalizedSource, out: Path, *, options: Mapping[str, Any]) -> None:
        """Write ``annotations/instances_<split>.json`` per split."""
        write_coco(dataset, out)
