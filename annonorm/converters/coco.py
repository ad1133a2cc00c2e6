"""COCO object-detection ("instances") annotations: read into annonorm records, write back.

Origin: the Microsoft COCO dataset (Lin et al., 2014), https://cocodataset.org/#format-data. One JSON
file per split holds ``images`` (``id``, ``file_name``, ``width``, ``height`` and provenance fields),
``annotations`` (``id``, ``image_id``, ``category_id``, ``bbox``, ``segmentation``, ``area``,
``iscrowd``), ``categories`` (``id``, ``name``, ``supercategory``) and dataset-level ``info`` /
``licenses``. The same shape serves the keypoint (``person_keypoints_*``), stuff (``stuff_*``),
image-level label (``labels_*``, annotations without ``bbox``) and test-image (``image_info_*``, no
annotations) files, which this converter reads too.

Conventions and how they map:

- ``bbox`` is ``[x, y, width, height]`` in absolute pixels from the top-left corner; annonorm stores
  the corners ``x2 = x + width``, ``y2 = y + height`` (rounded to 6 decimals when the record is
  encoded). A negative width or height is refused.
- Category ids are the source's own and need not be contiguous (COCO 2017 skips 12, 26, 29, ...):
  they are kept as ``source_id`` in source order. Two categories with the same name get unique
  names deterministically: every repeat after the first is renamed ``<name>#<source id>`` and keeps
  its COCO name in the category attribute ``name``, which the writer restores.
- ``segmentation`` is either polygons (a list of flat ``[x1, y1, x2, y2, ...]`` lists in pixel-edge
  coordinates) or a run-length encoding (``{"size": [h, w], "counts": ...}``, column-major, counts a
  list of ints ("uncompressed", as COCO ships its crowds) or pycocotools' compressed string). The
  pixels are pycocotools' (``frPyObjects`` + ``merge`` + ``decode``) exactly, on reading and on
  writing: a polygon becomes pycocotools' run-length encoding of the image, in time proportional
  to its outline, and only its bounding box is decoded (see "masks" below: the cost follows the
  masks, not the image). A polygon of exactly 4 numbers (two points) would be taken for a box by
  ``frPyObjects``; it is padded with its first point into a degenerate triangle instead. The
  polygons of one image become one instance mask PNG ``masks/<split>/<file_name without
  extension>.png`` (pixel k = k-th box, 1-based, painted in annotation order so a later instance
  covers an earlier one; 8-bit when the image has <= 254 boxes, 16-bit above; a folder or file name
  over 255 bytes is shortened with a digest). ``masks=False`` (``--no-masks``) skips the
  segmentations entirely; the option not given means masks are drawn.
- Everything else is kept: annotation ``id``, ``area``, ``iscrowd`` (as a boolean), ``keypoints``,
  ``num_keypoints`` and any other annotation key go into box attributes; image fields other than
  ``id``/``file_name``/``width``/``height`` (``license``, ``coco_url``, ``date_captured``...) into
  record attributes; ``supercategory``, ``keypoints`` and ``skeleton`` of a category into category
  attributes; ``info``, ``licenses`` (and any other top-level key) into the dataset attributes. The
  record ``id`` is the COCO image id. Images without annotations are kept as empty records.
  Annotations without ``bbox`` (the ``labels_*`` task) name a class present in the image: they go
  into the record's ``labels`` and are not written back (COCO tools expect a ``bbox``).
- Refused with a :class:`~annonorm.errors.ParseError` that names the task: captions
  (``caption`` annotations) and panoptic (``segments_info`` with PNG segment maps) files. What is
  no COCO document at all (a folder or JSON without ``images``, a file listing no image) is "no
  COCO annotations here: expected ..." (exit 2), never an empty dataset; a COCO results list
  (``[{image_id, category_id, bbox, score}, ...]``) is named as one, not readable yet.
- Image ``file_name`` s are kept as they are (newlines inside, emoji, combining accents, leading
  dashes, names of dots only). Refused, naming the image (``--on-error skip`` skips it): what
  cannot be a path inside the image root (absolute, ``..``, surrounding spaces, empty) and the name
  of a folder (``.``, ``a/.``, a trailing ``/``). Every per-image problem carries the image's name.
- Inputs are opened only when they are regular files (the JSON files, the mask PNGs an export
  reads, an image whose header gives a missing size): a FIFO, a device, a socket or a folder,
  directly or through a symlink, is refused before reading (exit 2).

Sources: an instances JSON file (split = the file name without ``instances_`` or another task
prefix, so ``instances_val2017.json`` is split ``val2017``; the parent directory for a Roboflow
``_annotations.coco.json``; else the file stem), or a directory laid out as COCO ships
(``annotations/instances_<split>.json``, images in ``images/<split>/``, ``<split>/`` or
``<split>2017/``), as Roboflow exports (``<split>/_annotations.coco.json`` beside the images), or
holding COCO JSON files directly. In a directory the instances file wins over the other task files
of the same split. When the splits' images live in different directories, the dataset's image root
is their common parent and image paths are relative to it (``train/a.jpg``).

Writing (``annonorm export coco``) produces ``annotations/instances_<split>.json`` per split (images
are not copied; ``file_name`` is the record's image path, relative to the dataset's image root) with the
record order kept, COCO ids restored from ``source_id`` / record ``id`` / box attribute ``id`` where
they are integers and unique (fresh integers otherwise), and the instance mask (if any) encoded as
one compressed RLE per box (string ``counts``) for crowds and single objects alike: pycocotools and
every COCO consumer read that form for both, and it avoids tracing polygons. Semantic masks are not
per instance and are not exported (``segmentation`` is ``[]``).
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import hashlib
import itertools
import math
import os
import re
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path, PurePosixPath
from typing import IO, Any

import msgspec
import numpy as np
from msgspec import UNSET, UnsetType

from annonorm.converters.base import Capabilities, Converter, Option, ReadContext, ReadResult, workers_option
from annonorm.engine import Executor, LocalExecutor
from annonorm.errors import AnnonormError, InvalidDataError, ParseError, UnsafePathError
from annonorm.fsutil import OutputError, open_regular, read_regular_bytes, require_regular_file
from annonorm.geometry import corners_to_xywh, round_coord, round_coords, xywh_to_corners
from annonorm.images import read_image_size
from annonorm.io import NormalizedSource
from annonorm.masks import (
    instance_mask_to_coco_rles,
    instance_windows,
    write_instance_mask_png,
)
from annonorm.paths import check_relative_path
from annonorm.sink import DatasetWriter, SplitSummary

__all__ = [
    "CocoConverter",
    "box_to_coco_bbox",
    "coco_annotation_to_box",
    "coco_bbox_to_corners",
    "coco_bboxes_to_corners",
    "coco_categories_to_names",
    "coco_file_name_problem",
    "coco_path_to_split",
    "coco_task_files",
]

#: Task prefixes of the files COCO ships that this converter reads, best first for one split.
TASK_PREFIXES = ("instances_", "person_keypoints_", "stuff_", "labels_", "image_info_")
#: COCO tasks of another shape, refused with a message naming them.
UNSUPPORTED_PREFIXES = {"captions_": "captions", "panoptic_": "panoptic"}
ROBOFLOW_FILE = "_annotations.coco.json"
#: Below this many masks a process pool costs more to start than it saves.
POOL_MIN_MASKS = 64
#: Splits with at least this many images build their records in one process per core (without masks).
PARALLEL_MIN_IMAGES = 20_000
SNIFF_BYTES = 64 * 1024
#: Annotation keys with a place in the box itself; every other key goes into box attributes.
_ANNOTATION_CORE = frozenset({"image_id", "category_id", "bbox", "segmentation"})
_IMAGE_CORE = frozenset({"id", "file_name", "width", "height"})
_CATEGORY_CORE = frozenset({"id", "name"})
_DOCUMENT_CORE = frozenset({"images", "annotations", "categories"})
_SPLIT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_MSGSPEC_PATH = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_JSON = msgspec.json.Encoder()
_NO_BOX = (math.nan, math.nan, math.nan, math.nan)


# ------------------------------------------------------------------------------------- typed decoding
# Typed structs decode COCO train2017 (860k annotations) several times faster than plain dicts; the
# segmentation stays raw JSON until a mask is rendered. The strict variants refuse unknown keys: when
# a file has some, it is decoded again with the lenient variants plus a pass that collects the extras.
# gc=False: a million decoded items hold no reference cycles (JSON cannot make one), and left to the
# garbage collector every full collection would walk all of them, which costs more than the decoding.


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
    attributes: Any = UNSET  # Datumaro writes its own attributes here


class _Category(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, gc=False):
    id: int | str
    name: str
    supercategory: Any = UNSET
    keypoints: Any = UNSET
    skeleton: Any = UNSET


class _LenientImage(_Image, forbid_unknown_fields=False):
    pass


class _LenientAnnotation(_Annotation, forbid_unknown_fields=False):
    pass


class _LenientCategory(_Category, forbid_unknown_fields=False):
    pass


class _Document(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    images: list[_Image]
    annotations: list[_Annotation] = []
    categories: list[_Category] = []
    info: Any = UNSET
    licenses: Any = UNSET


class _LenientDocument(msgspec.Struct, kw_only=True):
    images: list[_LenientImage]
    annotations: list[_LenientAnnotation] = []
    categories: list[_LenientCategory] = []
    info: Any = UNSET
    licenses: Any = UNSET


_RawItems = list[dict[str, msgspec.Raw]]
_STRICT_DECODER = msgspec.json.Decoder(_Document)
_LENIENT_DECODER = msgspec.json.Decoder(_LenientDocument)
_RAW_TOP_DECODER = msgspec.json.Decoder(dict[str, msgspec.Raw])
_RAW_ITEMS_DECODER = msgspec.json.Decoder(_RawItems)
_ANY_DECODER = msgspec.json.Decoder()


@dataclass
class _Parsed:
    """One COCO file, decoded and checked for shape; extras are per-item dicts of unknown keys."""

    path: Path
    document: _Document | _LenientDocument
    image_extras: list[dict[str, Any]] | None = None
    annotation_extras: list[dict[str, Any]] | None = None
    category_extras: list[dict[str, Any]] | None = None
    top_extras: dict[str, Any] = field(default_factory=dict)


# -------------------------------------------------------------------------------------------- sniff


def _sniff_file(path: Path) -> bool:
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    try:
        with open_regular(path, "COCO JSON file") as stream:
            head = stream.read(SNIFF_BYTES)
    except (AnnonormError, OSError):
        return False
    # COCO puts "images" before "annotations"; in a big file only "images" fits in the first KBs.
    head = head.removeprefix(codecs.BOM_UTF8).lstrip()
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


# ------------------------------------------------------------------------------- pure mapping functions


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


def coco_bbox_to_corners(*, bbox: Sequence[float]) -> tuple[float, float, float, float]:
    """COCO ``[x, y, width, height]`` -> corners ``(x1, y1, x2, y2)``; rounding happens when encoding."""
    x, y, width, height = bbox
    return xywh_to_corners(x, y, width, height)  # COCO boxes are top-left corner + size, not two corners


def coco_bboxes_to_corners(*, bboxes: np.ndarray) -> np.ndarray:
    """COCO ``[x, y, width, height]`` rows -> ``[x1, y1, x2, y2]`` rows rounded to the format's 6 decimals.

    The vectorized form of :func:`coco_bbox_to_corners`, used by the reader on every annotation at
    once: rounding 3.4 million coordinates one ``round()`` call at a time costs more than decoding them.
    ``round_coords`` equals ``round_coord`` element for element: re-rounding when encoding changes nothing.
    """
    x, y, width, height = np.array(bboxes, dtype=np.float64).reshape(-1, 4).T  # top-left corner + size
    return round_coords(np.stack(xywh_to_corners(x, y, width, height), axis=1))


def coco_annotation_to_box(*, name: str, bbox: Sequence[float], attributes: dict[str, Any] | None) -> dict[str, Any]:
    """One COCO annotation as a canonical box dict."""
    x1, y1, x2, y2 = coco_bbox_to_corners(bbox=bbox)
    box: dict[str, Any] = {"name": name, "x1": x1, "y1": y1, "x2": x2, "y2": y2}
    if attributes:
        box["attributes"] = attributes
    return box


def box_to_coco_bbox(*, box: Mapping[str, Any]) -> list[float]:
    """A canonical box -> COCO ``[x, y, width, height]``, rounded to the format's 6 decimals."""
    xywh = corners_to_xywh(float(box["x1"]), float(box["y1"]), float(box["x2"]), float(box["y2"]))
    return [round_coord(value) for value in xywh]


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


# --------------------------------------------------------------------------------------------- reading


def _read_bytes(path: Path) -> bytes:
    """The whole file, refusing FIFOs, devices, sockets and directories before reading (exit 2)."""
    return read_regular_bytes(path, "COCO JSON file")


def _describe(value: Any) -> str:
    if isinstance(value, list):
        return f"an array of {len(value)}"
    if isinstance(value, dict):
        return "an object"
    text = msgspec.json.encode(value).decode()
    return text if len(text) <= 40 else text[:37] + "..."


def _value_at(data: Any, path: str) -> Any:
    for key, index in re.findall(r"\.([^.\[]+)|\[(\d+)\]", path):
        try:
            data = data[key] if key else data[int(index)]
        except (KeyError, IndexError, TypeError):
            return UNSET
    return data


def _task_of(raw: bytes) -> str | None:
    """Which unsupported COCO task a document holds (captions, panoptic), from its first annotation."""
    try:
        top = _RAW_TOP_DECODER.decode(raw)
        annotations = _ANY_DECODER.decode(top["annotations"]) if "annotations" in top else []
    except (msgspec.DecodeError, KeyError):
        return None
    first = annotations[0] if isinstance(annotations, list) and annotations else None
    if isinstance(first, dict):
        if "segments_info" in first:
            return "panoptic"
        if "caption" in first:
            return "captions"
    return None


#: What a COCO document is, said when a file is something else.
EXPECTED_DOCUMENT = 'a JSON object with an "images" array (and "annotations", "categories")'
#: Keys every COCO results (detections) entry has.
_RESULT_KEYS = frozenset({"image_id", "category_id"})


def _results_list(value: Any) -> bool:
    """Whether ``value`` is a COCO results list: ``[{image_id, category_id, bbox | segmentation, score}, ...]``."""
    if not isinstance(value, list) or not value:
        return False
    return all(
        isinstance(item, dict) and item.keys() >= _RESULT_KEYS and ("bbox" in item or "segmentation" in item)
        for item in value[:100]
    )


def _results_error(path: Path, entries: int) -> ParseError:
    return ParseError(
        f"this is a COCO results list ({entries} entries of image_id, category_id, bbox, score; no images or "
        "categories); reading COCO results is not supported yet: convert the ground-truth annotations file "
        "the results were computed on",
        file=path,
    )


def _foreign_shape(path: Path, raw: bytes) -> ParseError | None:
    """The error for valid JSON that is no COCO document at all (a results list, another format), else ``None``."""
    try:
        top = _ANY_DECODER.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return None
    if _results_list(top):
        return _results_error(path, len(top))
    if isinstance(top, dict) and "images" in top:
        return None
    if isinstance(top, dict):
        found = f"an object with the keys {', '.join(sorted(top)[:8])}" if top else "an empty object"
        if "shapes" in top and "imagePath" in top:
            found += " (a LabelMe file?)"
    else:
        found = _describe(top)
    return ParseError(f"no COCO annotations here: expected {EXPECTED_DOCUMENT}, found {found}", file=path)


def _shape_error(path: Path, raw: bytes, error: msgspec.ValidationError) -> ParseError:
    """A msgspec validation error as a ParseError naming the JSON path and what was found."""
    match = _MSGSPEC_PATH.match(str(error))
    message = match.group("message") if match else str(error)
    json_path = (match.group("path") if match else None) or ""
    message = message.replace("`", "")
    message = message[:1].lower() + message[1:]
    try:
        found = _value_at(_ANY_DECODER.decode(raw), json_path)
    except msgspec.DecodeError:
        found = UNSET
    if found is not UNSET and "object contains unknown field" not in message:
        message = f"{message.split(', got ')[0]}, got {_describe(found)}"
    if json_path.endswith(".bbox") and found is not UNSET:
        message = f"expected 4 numbers [x, y, width, height], got {_describe(found)}"
    elif re.search(r"\.bbox\[\d+\]$", json_path):
        message = f"bbox values must be numbers [x, y, width, height]; {message}"
    return ParseError(message, file=path, location=json_path.lstrip(".") or None)


def _fields(struct: type[msgspec.Struct]) -> frozenset[str]:
    return frozenset(struct.__struct_fields__)


def _decode_extras(path: Path, items: Any, name: str, core: frozenset[str]) -> list[dict[str, Any]]:
    try:
        raw_items = _RAW_ITEMS_DECODER.decode(items)
        return [{k: _ANY_DECODER.decode(v) for k, v in item.items() if k not in core} for item in raw_items]
    except msgspec.DecodeError as exc:  # pragma: no cover - the typed pass has already accepted the shape
        raise ParseError(f"{name}: {exc}", file=path, location=name) from None


def parse_coco_file(path: Path) -> _Parsed:
    """Read and decode one COCO file, refusing unreadable, malformed and unsupported-task files."""
    raw = _read_bytes(path)
    for prefix, task in UNSUPPORTED_PREFIXES.items():
        if path.name.startswith(prefix):
            raise ParseError(
                f"this is a COCO {task} file; annonorm's coco converter reads only instances-style files "
                "(instances, person_keypoints, stuff, labels, image_info)",
                file=path,
            )
    # Windows tools write a UTF-8 byte order mark; RFC 8259 lets a parser ignore it, msgspec does not.
    raw = raw.removeprefix(codecs.BOM_UTF8)
    try:
        return _decode_coco_file(path, raw)
    except UnicodeDecodeError as exc:  # msgspec raises it for invalid UTF-8 inside a string
        raise ParseError(f"not valid JSON: a string is not UTF-8 ({exc.reason}: {exc.object!r})", file=path) from None
    except RecursionError:
        raise ParseError(
            "not valid JSON for COCO: nested too deeply; expected arrays of flat objects", file=path
        ) from None


def _decode_coco_file(path: Path, raw: bytes) -> _Parsed:
    """Decode a COCO document strictly; on unknown keys again leniently, collecting them as extras."""
    try:
        return _Parsed(path, _STRICT_DECODER.decode(raw))
    except msgspec.ValidationError as exc:
        strict_error = exc
    except msgspec.DecodeError as exc:
        raise ParseError(f"not valid JSON ({exc})", file=path) from None
    foreign = _foreign_shape(path, raw)
    if foreign is not None:
        raise foreign
    detected = _task_of(raw)
    if detected is not None:
        raise ParseError(
            f"this is a COCO {detected} file (its annotations have no bbox); annonorm's coco converter reads "
            "only instances-style files (instances, person_keypoints, stuff, labels, image_info)",
            file=path,
        )
    if "unknown field" not in str(strict_error):
        raise _shape_error(path, raw, strict_error) from None
    try:
        document = _LENIENT_DECODER.decode(raw)
    except msgspec.ValidationError as exc:
        raise _shape_error(path, raw, exc) from None
    top = _RAW_TOP_DECODER.decode(raw)
    parsed = _Parsed(path, document)
    parsed.image_extras = _decode_extras(path, top["images"], "images", _fields(_Image))
    if "annotations" in top:
        parsed.annotation_extras = _decode_extras(path, top["annotations"], "annotations", _fields(_Annotation))
    if "categories" in top:
        parsed.category_extras = _decode_extras(path, top["categories"], "categories", _fields(_Category))
    parsed.top_extras = {k: _ANY_DECODER.decode(v) for k, v in top.items() if k not in _DOCUMENT_CORE}
    return parsed


def _empty_json(raw: msgspec.Raw) -> bool:
    """Whether a raw segmentation holds nothing to draw (``[]``, ``{}``, ``null``, whitespace inside)."""
    return len(raw) < 32 and bytes(raw).translate(None, b" \t\r\n") in (b"[]", b"[[]]", b"{}", b"null")


def _struct_extras(item: msgspec.Struct, core: frozenset[str]) -> dict[str, Any]:
    """The declared optional fields of a struct that are present (not UNSET), core keys left out."""
    return {
        name: value
        for name in item.__struct_fields__
        if name not in core and (value := getattr(item, name)) is not UNSET
    }


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


def _first_file_name(raw_path: Path) -> str | None:
    """The first image's ``file_name`` from the beginning of a COCO file (cheap, no full decode)."""
    try:
        with open_regular(raw_path, "COCO JSON file") as stream:
            head = stream.read(SNIFF_BYTES).decode("utf-8", errors="replace")
    except (AnnonormError, OSError):
        return None
    match = re.search(r'"file_name"\s*:\s*"((?:[^"\\]|\\.)*)"', head)
    return match.group(1) if match else None


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
    first = _first_file_name(json_path)
    if first:
        for candidate in candidates:
            if (candidate / first).is_file():
                return candidate
    return next((candidate for candidate in specific if candidate.is_dir()), fallback)


def _plan(source: Path, images: Path | None) -> tuple[str, Path, list[_SplitPlan]]:
    """Name, image root and per-split files of a source (a COCO file or directory)."""
    if source.is_dir():
        files = coco_task_files(source)
        by_split: dict[str, Path] = {}
        for path in sorted(files, key=lambda p: (_prefix_rank(p.name), p.name)):
            by_split.setdefault(coco_path_to_split(path=path), path)
        if not by_split:
            raise ParseError(
                "no COCO annotations here: expected annotations/instances_<split>.json, "
                f"<split>/{ROBOFLOW_FILE} or a COCO .json file{_directory_hint(source)}",
                file=source,
            )
        plans = [_SplitPlan(split, path, Path()) for split, path in sorted(by_split.items(), key=_file_order)]
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


def _directory_hint(source: Path) -> str:
    """What a directory without COCO files holds instead, when that is recognisable (for the error)."""
    annotations = source / "annotations"
    unsupported = sorted(annotations.glob("*.json")) if annotations.is_dir() else []
    if unsupported:
        return f" (found only {', '.join(p.name for p in unsupported[:5])}: captions and panoptic are not supported)"
    for path in sorted(source.glob("*.json"))[:20]:
        try:
            with open_regular(path, "JSON file") as stream:
                head = stream.read(SNIFF_BYTES).removeprefix(codecs.BOM_UTF8).lstrip()
        except (AnnonormError, OSError):
            continue
        if head[:1] == b"[" and b'"image_id"' in head and b'"category_id"' in head:
            return f" ({path.name} is a COCO results list: reading COCO results is not supported yet)"
    if (source / "Annotations").is_dir() and next((source / "Annotations").glob("*.xml"), None) is not None:
        return " (it holds Annotations/*.xml: a Pascal VOC folder? try annonorm convert voc)"
    return ""


def _prefix_rank(name: str) -> int:
    return next((rank for rank, prefix in enumerate(TASK_PREFIXES) if name.startswith(prefix)), len(TASK_PREFIXES))


def _file_order(item: tuple[str, Path]) -> tuple[int, str]:
    # train before val before test, as COCO ships them; other names alphabetically after.
    order = {"train": 0, "val": 1, "test": 2}
    split = item[0]
    return next((rank for key, rank in order.items() if split.startswith(key)), 3), split


@dataclass
class _MaskJob:
    """What a worker needs to render one image's instance mask."""

    out: str
    height: int
    width: int
    segmentations: list[bytes | None]
    locations: list[str]
    image: str  # the source's file name, for the error
    index: int  # the image's position in "images"


#: Errors of a file name the file system refuses (too long, not in its encoding).
_NAME_ERRNOS = frozenset({errno.ENAMETOOLONG, errno.EILSEQ, errno.EINVAL})


def _mask_name_error(exc: OSError, file: Path, index: int, image: str) -> OutputError:
    return OutputError(
        f"cannot write the mask of this image: the file system refuses its name ({exc.strerror})",
        file=file,
        location=f"images[{index}].file_name",
        image=image,
    )


def _render_job(job: _MaskJob) -> AnnonormError | None:
    """Render and write one mask; return the problem of a malformed segmentation or an impossible name."""
    try:
        values = [None if raw is None else _ANY_DECODER.decode(raw) for raw in job.segmentations]
        windows = instance_windows(values, job.height, job.width)
    except InvalidDataError as exc:
        location = job.locations[int(exc.location)] if exc.location is not None else job.locations[0]
        return InvalidDataError(exc.message, location=location, image=job.image)
    try:
        write_instance_mask_png(
            Path(job.out), windows=windows, height=job.height, width=job.width, instances=len(job.segmentations)
        )
    except OSError as exc:
        if exc.errno not in _NAME_ERRNOS:
            raise
        return _mask_name_error(exc, Path(), job.index, job.image)
    return None


def _write_with_masks(
    writer: DatasetWriter,
    source: Path,
    executor: Executor,
    built: Iterator[tuple[str, dict[str, Any], _MaskJob | None]],
    masks_expected: int,
) -> int:
    """Write records in source order while their masks render (inline, or on the engine's ordered
    bounded map); return how many masks were written."""
    processes = executor.execution.pool_size(masks_expected, POOL_MIN_MASKS)
    units = (((split, record, job), job) for split, record, job in built)
    written = 0
    rendered = executor.map(_render_job, units, processes=processes, window=4 * processes + 1)
    with contextlib.closing(rendered):
        for (split, record, job), failure in rendered:
            if failure is not None:
                failure.file = str(source)  # the worker does not know it
                writer.problem(failure)
                continue
            if job is not None:
                written += 1
            writer.add(split, record, canonical=True)
    return written


#: Images whose records the fast builder makes at once: bounds a builder's memory.
_CHUNK_IMAGES = 4096
#: Box attributes in the order :meth:`_SplitReader.box_attributes` writes them.
_BOX_ATTRIBUTE_FIELDS = ("id", "area", "iscrowd", "keypoints", "num_keypoints", "attributes")


def _column(values: list[Any]) -> np.ndarray:
    """``values`` as the narrowest array whose ``tolist()`` gives them back equal and of the same type."""
    kinds = set(map(type, values))
    dtype = {bool: bool, float: np.float64, int: np.int64}.get(kinds.pop()) if len(kinds) == 1 else None
    if dtype is not None:
        try:
            return np.fromiter(values, dtype=dtype, count=len(values))
        except OverflowError:  # an integer beyond 64 bits
            pass
    return np.fromiter(values, dtype=object, count=len(values))


def _crowd_flag(value: Any) -> Any:
    """COCO's ``iscrowd`` 0/1 as a boolean; anything else kept as it is."""
    return bool(value) if value is not UNSET and value in (0, 1) else value


def _crowd_flags(values: list[Any]) -> np.ndarray:
    """:func:`_crowd_flag` of every value, as a column."""
    column = _column(values)
    if column.dtype == np.int64 and ((column == 0) | (column == 1)).all():
        return column.astype(bool)
    if column.dtype == bool:
        return column
    return _column([_crowd_flag(value) for value in values])


def _value(column: np.ndarray, index: int) -> Any:
    """One entry of a column as the Python value it was decoded as."""
    return column[index : index + 1].tolist()[0]


@dataclass
class _AnnotationColumns:
    """A file's annotations as arrays, in file order: what grouping and the fast record builder read.

    Fields absent from every annotation have no column; elsewhere ``UNSET`` marks an annotation
    without the field.
    """

    image_ids: np.ndarray
    category_ids: np.ndarray
    bboxes: np.ndarray  # (annotations, 4) COCO x, y, width, height; a NaN row has no bbox
    attributes: dict[str, tuple[np.ndarray, int]]  # box attribute -> (values, how many annotations lack it)

    @classmethod
    def of(cls, annotations: Sequence[_Annotation]) -> _AnnotationColumns:
        """The columns of decoded annotations (one sequential pass per field: adjacent objects)."""
        bbox_rows = [_NO_BOX if a.bbox is UNSET else a.bbox for a in annotations]
        bboxes = np.fromiter(itertools.chain.from_iterable(bbox_rows), dtype=np.float64, count=4 * len(bbox_rows))
        # One pass tells whether the rarely used fields occur at all (they do in keypoint files).
        rare = any(
            a.keypoints is not UNSET or a.num_keypoints is not UNSET or a.attributes is not UNSET for a in annotations
        )
        attributes: dict[str, tuple[np.ndarray, int]] = {}
        for key in _BOX_ATTRIBUTE_FIELDS if rare else _BOX_ATTRIBUTE_FIELDS[:3]:
            values = list(map(attrgetter(key), annotations))
            absent = values.count(UNSET)
            if absent < len(values):
                attributes[key] = (_crowd_flags(values) if key == "iscrowd" else _column(values), absent)
        return cls(
            image_ids=_column(list(map(attrgetter("image_id"), annotations))),
            category_ids=_column(list(map(attrgetter("category_id"), annotations))),
            bboxes=bboxes.reshape(-1, 4),
            attributes=attributes,
        )


def _positions(keys: np.ndarray, ids: np.ndarray, position_of: dict[Any, int]) -> np.ndarray:
    """The position in ``ids`` (unique) of every key, -1 where none; at numpy speed for integer ids.

    A dict lookup per key costs a cache miss or two on the dict and the key at COCO train2017 scale
    (0.6 s for 860k annotations); a sorted search of integer arrays, a tenth of that.
    """
    if keys.dtype.kind != "i" or ids.dtype.kind != "i" or not len(ids):
        return np.array([position_of.get(key, -1) for key in keys.tolist()], dtype=np.int64).reshape(-1)
    sorter = np.argsort(ids)
    sorted_ids = ids[sorter]
    at = np.searchsorted(sorted_ids, keys).clip(max=len(ids) - 1)
    return np.where(sorted_ids[at] == keys, sorter[at], -1)


class _Box(msgspec.Struct, omit_defaults=True, gc=False):
    """A box as the fast builder makes it: encodes to exactly the canonical box dict, and faster."""

    name: str
    x1: float
    y1: float
    x2: float
    y2: float
    attributes: dict[str, Any] | UnsetType = UNSET


@dataclass
class _BoxColumns:
    """A split's annotations in image order, as arrays: what the fast record builder reads.

    Python objects reached in image order are scattered over the decoded file, and at COCO train2017
    scale the cache misses of visiting them cost more than building the records; arrays in image
    order turn into fresh, adjacent objects with one ``tolist()`` per chunk of images.
    """

    names: list[str]
    categories: np.ndarray  # index into ``names`` per position (-1: unknown, its image is not simple)
    corners: np.ndarray  # (positions, 4) x1, y1, x2, y2, rounded
    attributes: dict[str, tuple[np.ndarray, bool]]  # box attribute -> (values, present on every box)
    extras: np.ndarray | None  # unknown annotation keys (a dict per position) when the file has some
    simple: np.ndarray  # per image: every annotation has a known category and a valid bbox

    def boxes(self, first: int, last: int) -> tuple[list[_Box], list[str]]:
        """The boxes of positions ``first..last`` and their class names."""
        names = self.names
        box_names = [names[k] for k in self.categories[first:last].tolist()]
        x1, y1, x2, y2 = self.corners[first:last].T.tolist()
        if not self.attributes and self.extras is None:
            boxes = [_Box(*row) for row in zip(box_names, x1, y1, x2, y2, strict=True)]
            return boxes, box_names
        attributes: list[dict[str, Any]] = [{} for _ in box_names]
        for key, (column, everywhere) in self.attributes.items():
            values = column[first:last].tolist()
            if everywhere:
                for extra, value in zip(attributes, values, strict=True):
                    extra[key] = value
            else:
                for extra, value in zip(attributes, values, strict=True):
                    if value is not UNSET:
                        extra[key] = value
        if self.extras is not None:
            for extra, unknown in zip(attributes, self.extras[first:last].tolist(), strict=True):
                extra.update(unknown)
        boxes = [
            _Box(n, a, b, c, d, e or UNSET)
            for n, a, b, c, d, e in zip(box_names, x1, y1, x2, y2, attributes, strict=True)
        ]
        return boxes, box_names


class _SplitReader:
    """Turns one decoded COCO file into records of one split (problems reported from group_annotations on)."""

    def __init__(self, parsed: _Parsed, plan: _SplitPlan, writer: DatasetWriter, names: dict[Any, str]) -> None:
        self.parsed = parsed
        self.plan = plan
        self.writer = writer
        self.names = names
        self.file = parsed.path
        self.used_masks: set[str] = set()
        images = parsed.document.images
        columns = _AnnotationColumns.of(parsed.document.annotations)
        self.columns = columns
        bboxes = columns.bboxes
        self.has_bbox: np.ndarray = ~np.isnan(bboxes[:, 0])  # JSON has no NaN: only _NO_BOX holds one
        # Rows that break a rule are rare: found here at once, worded when their image is built.
        self.bad_boxes: np.ndarray = np.asarray((bboxes < 0).any(axis=1))
        self.corners = coco_bboxes_to_corners(bboxes=bboxes)
        self._position_of = {image.id: index for index, image in enumerate(images)}
        image_ids = _column([image.id for image in images])
        #: The position in ``images`` of each annotation's image (-1: no such image).
        self.owners = _positions(columns.image_ids, image_ids, self._position_of)
        number_of = {category_id: number for number, category_id in enumerate(names)}
        #: The number of each annotation's category in ``names`` (-1: no such category).
        self.categories = _positions(columns.category_ids, _column(list(names)), number_of)
        #: Annotation indices in image order (file order within an image); set by group_annotations.
        self.order = np.zeros(0, dtype=np.int64)
        #: Where each image's annotations start in ``order`` (one more entry than images).
        self.starts = np.zeros(len(images) + 1, dtype=np.int64)

    def group_annotations(self) -> None:
        """Put the annotations in image order (COCO files need not be sorted by image); checks ids."""
        images = self.parsed.document.images
        if len(self._position_of) != len(images):
            seen: set[Any] = set()
            for index, image in enumerate(images):
                if image.id in seen:
                    raise InvalidDataError(
                        f"image id {image.id!r} is used twice", file=self.file, location=f"images[{index}].id"
                    )
                seen.add(image.id)
        self._check_annotation_ids()
        owners = self.owners
        for index in np.flatnonzero(owners < 0).tolist():
            self._unknown_image(index, _value(self.columns.image_ids, index))
        known = np.flatnonzero(owners >= 0)
        # A stable sort keeps each image's annotations in file order.
        self.order = known[np.argsort(owners[known], kind="stable")]
        self.starts = np.r_[0, np.cumsum(np.bincount(owners[known], minlength=len(images)))]

    def members(self, index: int) -> list[int]:
        """The annotation indices of image ``index``, in file order."""
        return self.order[self.starts[index] : self.starts[index + 1]].tolist()

    def annotated_images(self) -> int:
        """How many images have at least one annotation."""
        return int(np.count_nonzero(np.diff(self.starts)))

    def _unknown_image(self, index: int, owner: Any) -> None:
        self.writer.problem(
            InvalidDataError(
                f"image_id {owner!r} is not the id of any image",
                file=self.file,
                location=f"annotations[{index}].image_id",
            ),
        )

    def _check_annotation_ids(self) -> None:
        if "id" not in self.columns.attributes:
            return
        ids = self.columns.attributes["id"][0]
        if ids.dtype.kind == "i":
            ordered = np.sort(ids)
            if not (ordered[1:] == ordered[:-1]).any():
                return  # the common case, checked at numpy speed (a sort is much faster than np.unique)
        first_seen: dict[Any, int] = {}
        for index, annotation_id in enumerate(ids.tolist()):
            if annotation_id is UNSET:
                continue
            earlier = first_seen.setdefault(annotation_id, index)
            if earlier != index:
                raise InvalidDataError(
                    f"annotation id {annotation_id!r} is used twice (also annotations[{earlier}])",
                    file=self.file,
                    location=f"annotations[{index}].id",
                )

    def box_attributes(self, index: int, annotation: _Annotation) -> dict[str, Any]:
        """Every annotation field without a place in the box (:class:`_BoxColumns` keeps the same order)."""
        attributes: dict[str, Any] = {}
        for key in _BOX_ATTRIBUTE_FIELDS:
            value = getattr(annotation, key)
            if value is not UNSET:
                attributes[key] = _crowd_flag(value) if key == "iscrowd" else value
        if self.parsed.annotation_extras is not None:
            attributes.update(self.parsed.annotation_extras[index])
        return attributes

    def box_columns(self) -> _BoxColumns:
        """The annotations as :class:`_BoxColumns` (after :meth:`group_annotations`)."""
        order = self.order
        simple = (self.categories >= 0) & self.has_bbox & ~self.bad_boxes
        not_simple = np.flatnonzero(~simple[order])
        extras = self.parsed.annotation_extras
        return _BoxColumns(
            names=list(self.names.values()),
            categories=self.categories[order],
            corners=self.corners[order],
            attributes={key: (values[order], absent == 0) for key, (values, absent) in self.columns.attributes.items()},
            extras=None if extras is None else np.fromiter(extras, dtype=object, count=len(extras))[order],
            simple=np.bincount(self.owners[order][not_simple], minlength=len(self.starts) - 1) == 0,
        )

    def records(self, columns: _BoxColumns, start: int, stop: int) -> Iterator[list[dict[str, Any]]]:
        """The records (without masks) of images ``start..stop``, built from ``columns``, in chunks.

        An image whose annotations all have a known category and a valid box takes the fast way;
        any other goes through :meth:`record`, which words its problem. Both give the same record.
        """
        images = self.parsed.document.images
        for chunk in range(start, stop, _CHUNK_IMAGES):
            chunk_stop = min(chunk + _CHUNK_IMAGES, stop)
            starts = self.starts[chunk : chunk_stop + 1].tolist()
            first = starts[0]
            boxes, box_names = columns.boxes(first, starts[-1])
            simple = columns.simple[chunk:chunk_stop].tolist()
            records: list[dict[str, Any]] = []
            for offset, index in enumerate(range(chunk, chunk_stop)):
                image = images[index]
                if not simple[offset]:
                    built = self.record(index, image, self.members(index), masks=False)
                    if built is not None:
                        records.append(built[0])
                    continue
                size = self._image_size(index, image)
                if size is None:
                    continue
                low, high = starts[offset] - first, starts[offset + 1] - first
                counts: dict[str, int] = {}
                for name in box_names[low:high]:
                    counts[name] = counts.get(name, 0) + 1
                records.append(self._assemble(index, image, size, list(counts), counts, boxes[low:high], None))
            yield records

    def _image_size(self, index: int, image: _Image) -> tuple[int | None, int | None] | None:
        """The image's width and height (``None`` when unknown), or ``None`` after reporting a problem."""
        problem = coco_file_name_problem(image.file_name)
        if problem is not None:
            location = f"images[{index}].file_name"
            self.writer.problem(UnsafePathError(problem, file=self.file, location=location, image=image.file_name))
            return None
        width, height = image.width, image.height
        if not isinstance(width, int) or not isinstance(height, int):
            path = self.plan.image_dir / image.file_name
            if os.path.exists(path) and not os.path.isfile(path):  # a FIFO would block the header read
                try:
                    require_regular_file(path, "image")
                except ParseError as exc:
                    location = f"images[{index}].file_name"
                    self.writer.problem(ParseError(exc.message, file=path, location=location, image=image.file_name))
                    return None
            size = read_image_size(path)
            return size if size is not None else (None, None)
        if width <= 0 or height <= 0:
            message = f"width and height must be > 0, got {width} x {height}"
            self.writer.problem(
                InvalidDataError(message, file=self.file, location=f"images[{index}]", image=image.file_name)
            )
            return None
        return width, height

    def _assemble(
        self,
        index: int,
        image: _Image,
        size: tuple[int | None, int | None],
        labels: list[str],
        counts: dict[str, int],
        boxes: list[dict[str, Any]] | list[_Box],
        mask: str | None,
    ) -> dict[str, Any]:
        """The canonical record, keys in format order (the writer encodes it as it is)."""
        attributes = _struct_extras(image, _IMAGE_CORE)
        if self.parsed.image_extras is not None:
            attributes.update(self.parsed.image_extras[index])
        record: dict[str, Any] = {"image": self.plan.prefix + image.file_name}
        width, height = size
        if width is not None and height is not None:
            record["width"], record["height"] = width, height
        record["labels"] = labels
        record["counts"] = counts
        record["boxes"] = boxes
        if mask is not None:
            record["mask"] = mask
        record["id"] = image.id
        if attributes:
            record["attributes"] = attributes
        return record

    def record(
        self, index: int, image: _Image, members: list[int], masks: bool
    ) -> tuple[dict[str, Any], _MaskJob | None] | None:
        """The record of one image (and its mask job), or ``None`` after reporting a problem."""
        size = self._image_size(index, image)
        if size is None:
            return None
        width, height = size
        annotations = self.parsed.document.annotations
        names, corners, bad_boxes = self.names, self.corners, self.bad_boxes
        boxes: list[dict[str, Any]] = []
        labels: dict[str, None] = {}
        counts: dict[str, int] = {}
        segmentations: list[bytes | None] = []
        locations: list[str] = []
        for member in members:
            annotation = annotations[member]
            name = names.get(annotation.category_id)
            if name is None:
                self.writer.problem(
                    InvalidDataError(
                        f"category_id {annotation.category_id!r} is not the id of any category",
                        file=self.file,
                        location=f"annotations[{member}].category_id",
                        image=image.file_name,
                    ),
                )
                return None
            labels[name] = None
            if annotation.bbox is UNSET:
                continue  # an image-level label (COCO "labels" task): the class is present, unboxed
            if bad_boxes[member]:
                self._bad_box(member, annotation.bbox, image.file_name)
                return None
            x1, y1, x2, y2 = corners[member].tolist()
            box = {"name": name, "x1": x1, "y1": y1, "x2": x2, "y2": y2}
            extra = self.box_attributes(member, annotation)
            if extra:
                box["attributes"] = extra
            boxes.append(box)
            counts[name] = counts.get(name, 0) + 1
            if masks:
                segmentation = annotation.segmentation
                drawn = isinstance(segmentation, msgspec.Raw) and not _empty_json(segmentation)
                segmentations.append(bytes(segmentation) if drawn and isinstance(segmentation, msgspec.Raw) else None)
                locations.append(f"annotations[{member}].segmentation")
        job = None
        mask = None
        if any(s is not None for s in segmentations):
            if width is None or height is None:
                self.writer.problem(
                    InvalidDataError(
                        "the image size is unknown (no width/height, no image file): cannot draw its segmentation",
                        file=self.file,
                        location=f"images[{index}]",
                        image=image.file_name,
                    ),
                )
                return None
            if width * height > _max_mask_pixels():
                self.writer.problem(
                    InvalidDataError(
                        f"a {width} x {height} image is too large to draw its mask (more than "
                        f"{_max_mask_pixels()} pixels, Pillow's decompression-bomb limit); pass --no-masks",
                        file=self.file,
                        location=f"images[{index}]",
                        image=image.file_name,
                    ),
                )
                return None
            mask = self.mask_path(image.file_name)
            try:
                out = self.writer.mask_file(mask)
            except OSError as exc:
                if exc.errno not in _NAME_ERRNOS:
                    raise
                self.writer.problem(_mask_name_error(exc, self.file, index, image.file_name))
                return None
            job = _MaskJob(str(out), height, width, segmentations, locations, image.file_name, index)
        return self._assemble(index, image, size, list(labels), counts, boxes, mask), job

    def _bad_box(self, member: int, bbox: tuple[float, float, float, float], image: str) -> None:
        x, y, w, h = bbox
        message = (
            f"bbox width and height must be >= 0, got {w} x {h}"
            if w < 0 or h < 0
            else f"bbox starts outside the image at x={x}, y={y}; expected x, y >= 0"
        )
        self.writer.problem(
            InvalidDataError(message, file=self.file, location=f"annotations[{member}].bbox", image=image)
        )

    def mask_path(self, file_name: str) -> str:
        """``masks/<split>/<file name without extension>.png``, unique within the split.

        A folder or file name longer than a file system holds (255 bytes) is shortened to a prefix
        and a digest of the whole, so any name the source holds gets a mask file.
        """
        path = PurePosixPath(file_name.replace("\\", "/"))
        parts = (path.with_suffix("") if path.suffix else path).parts
        folders = [_fitting_name(part, 0) for part in parts[:-1]]
        number = 1
        while True:  # a.jpg and a.png in one directory: a.png, a.2.png
            ending = ".png" if number == 1 else f".{number}.png"
            name = _fitting_name(parts[-1], len(ending)) + ending
            candidate = "/".join(["masks", self.plan.split, *folders, name])
            if candidate not in self.used_masks:
                break
            number += 1
        self.used_masks.add(candidate)
        return candidate


#: The longest file or folder name most file systems hold, in bytes.
NAME_MAX_BYTES = 255


def _fitting_name(name: str, room: int) -> str:
    """``name``, or when it and ``room`` more bytes exceed a file name's limit, a prefix and a digest of it."""
    raw = name.encode("utf-8", errors="surrogatepass")
    if len(raw) + room <= NAME_MAX_BYTES:
        return name
    digest = hashlib.sha256(raw).hexdigest()[:16]
    prefix = raw[: NAME_MAX_BYTES - room - len(digest) - 1].decode("utf-8", errors="ignore")
    return f"{prefix}~{digest}"


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


def _declare_categories(
    parsed: _Parsed, writer: DatasetWriter, declared: dict[str, Any] | None = None
) -> dict[Any, str]:
    """Register a file's categories (source order) and return COCO id -> unique name.

    Categories are declared through ``writer.category`` only (a class list given by the user may
    already fix them and their order); ``declared`` (unique name -> COCO id, shared by the files of
    one read) is what this reader saw in earlier files, so that a class keeps one id across splits.
    """
    if declared is None:
        declared = {}
    categories = parsed.document.categories
    seen: dict[Any, int] = {}
    for index, category in enumerate(categories):
        if category.id in seen:
            raise InvalidDataError(
                f"category id {category.id!r} is used twice (also categories[{seen[category.id]}])",
                file=parsed.path,
                location=f"categories[{index}].id",
            )
        if not category.name:
            raise InvalidDataError("category name is empty", file=parsed.path, location=f"categories[{index}].name")
        seen[category.id] = index
    names = coco_categories_to_names(categories=[(c.id, c.name) for c in categories])
    table: dict[Any, str] = {}
    for index, (category, name) in enumerate(zip(categories, names, strict=True)):
        attributes = _struct_extras(category, _CATEGORY_CORE)
        if parsed.category_extras is not None:
            attributes.update(parsed.category_extras[index])
        if name != category.name:
            attributes["name"] = category.name
        if name in declared:
            if declared[name] != category.id:
                raise InvalidDataError(
                    f"category {name!r} has id {category.id!r} here but {declared[name]!r} in an earlier file; "
                    "annonorm needs one id per class across splits",
                    file=parsed.path,
                    location=f"categories[{index}]",
                )
        else:
            writer.category(name, category.id, attributes or None)
            declared[name] = category.id
        table[category.id] = name
    return table


def read_coco(
    source: Path, writer: DatasetWriter, *, images: Path | None, masks: bool = True, executor: Executor | None = None
) -> ReadResult:
    """Read a COCO file or directory into ``writer`` (see the module docstring)."""
    name, image_root, plans = _plan(source, images)
    dataset_attributes: dict[str, Any] = {}
    declared: dict[str, Any] = {}
    images_seen = 0
    executor = executor or LocalExecutor()
    for plan in plans:
        writer.add_source_file(plan.path)  # hashed in a thread while the file is decoded
        parsed = parse_coco_file(plan.path)
        document = parsed.document
        for key in ("info", "licenses"):
            value = getattr(document, key)
            if value is not UNSET:
                dataset_attributes.setdefault(key, value)
        for key, value in parsed.top_extras.items():
            if key not in ("info", "licenses"):
                dataset_attributes.setdefault(key, value)
        if not masks:
            # Raw segmentations point into the file's bytes and keep all of them alive: drop them.
            for annotation in document.annotations:
                annotation.segmentation = UNSET
        images_seen += len(document.images)
        writer.expect(len(document.images))
        if not images_seen and plan is plans[-1]:
            files = "it lists" if len(plans) == 1 else f"its {len(plans)} files list"
            raise ParseError(
                f'no COCO annotations here: expected at least one entry in "images", but {files} no image',
                file=source,
            )
        names = _declare_categories(parsed, writer, declared)
        reader = _SplitReader(parsed, plan, writer, names)
        reader.group_annotations()
        writer.declare_split(plan.split)
        writer.finish_hashing()  # no thread may run when a pool forks
        if not masks:
            columns = reader.box_columns()
            workers = executor.execution.pool_size(len(document.images), PARALLEL_MIN_IMAGES)
            if not (workers > 1 and _build_in_parallel(reader, columns, executor, workers)):
                for records in reader.records(columns, 0, len(document.images)):
                    writer.add_many(plan.split, records)
            continue
        built = (
            (plan.split, *record)
            for index, image in enumerate(document.images)
            if (record := reader.record(index, image, reader.members(index), masks)) is not None
        )
        if _write_with_masks(writer, plan.path, executor, built, reader.annotated_images()):
            writer.mask_kind = "instance"
    return ReadResult(name=name, image_root=image_root, attributes=dataset_attributes or None)


def _build_in_parallel(reader: _SplitReader, columns: _BoxColumns, executor: Executor, workers: int) -> bool:
    """Build and encode a split's records in ``workers`` forked processes, one range of images each.

    Forked children share the decoded file with this process (nothing is pickled but the results),
    each writes its records to a part file, and the parts are appended in order (a part that failed
    is built again here, in its turn): the split file is byte for byte what one process writes.
    Returns ``False`` (do it in this process) where fork is not safe.
    """
    if not executor.forks():
        return False
    writer, split = reader.writer, reader.plan.split
    count = len(reader.parsed.document.images)
    bounds = [count * part // workers for part in range(workers + 1)]
    parts = [writer.directory / f".part-{split}-{part}" for part in range(workers)]

    def build(part: int) -> tuple[SplitSummary, list[AnnonormError], Any]:
        return _build_part(reader, columns, bounds[part], bounds[part + 1], parts[part])

    def redo(part: int) -> None:
        for records in reader.records(columns, bounds[part], bounds[part + 1]):
            writer.add_many(split, records)

    try:
        for part, (summary, skipped, checked) in executor.parts(build, workers, redo=redo):
            writer.skipped.extend(skipped)
            writer.append_part(split, parts[part] / f"{split}.jsonl", summary, checked)
    finally:
        for part_directory in parts:
            shutil.rmtree(part_directory, ignore_errors=True)
    return True


def _build_part(
    reader: _SplitReader, columns: _BoxColumns, start: int, stop: int, directory: Path
) -> tuple[SplitSummary, list[AnnonormError], Any]:
    """In a forked worker: the records of images ``start..stop`` into ``directory/<split>.jsonl``, checked
    (by the sink's part check, while the part is in the page cache)."""
    parent = reader.writer
    categories = [category["name"] for category in parent.categories]
    writer = parent.part_writer(directory)
    directory.mkdir()
    reader.writer = writer  # this part's own sink; a worker may build a second part after this one
    split = reader.plan.split
    writer.declare_split(split)
    try:
        for records in reader.records(columns, start, stop):
            writer.add_many(split, records)
    finally:
        writer.close()
        reader.writer = parent
    summary = writer.summary[split]
    return summary, writer.skipped, writer.check_part(split, categories)


# --------------------------------------------------------------------------------------------- writing


def _fresh_ids(values: Iterator[Any]) -> Iterator[int]:
    """Keep integer ids on first use; give every missing, non-integer or repeated one the next free integer."""
    items = list(values)
    used = [v for v in items if isinstance(v, int) and not isinstance(v, bool)]
    following = max(used, default=0) + 1
    seen: set[int] = set()
    for value in items:
        if isinstance(value, int) and not isinstance(value, bool) and value not in seen:
            seen.add(value)
            yield value
        else:
            yield following
            following += 1


def _max_mask_pixels() -> int:
    """Pillow's decompression-bomb limit: a larger mask could not be read back, and would fill memory."""
    from PIL import Image

    return 2 * int(Image.MAX_IMAGE_PIXELS or 0) or 2**62


def _load_mask(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as image:
            mask = np.asarray(image)
    # missing, truncated, not an image (UnidentifiedImageError is an OSError), or a pixel bomb
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InvalidDataError(
            f"cannot read the mask: {exc}; check it with annonorm validate --check-images", file=path
        ) from None
    if mask.ndim != 2:
        raise InvalidDataError(f"mask has {mask.shape[2]} channels; expected a single-channel instance mask", file=path)
    return mask


class _JsonArrayWriter:
    """Streams one JSON array of objects, one per line."""

    def __init__(self, stream: IO[bytes], key: str, first: bool) -> None:
        self.stream = stream
        self.count = 0
        stream.write(b"" if first else b",\n")
        stream.write(_JSON.encode(key) + b": [")

    def add(self, item: dict[str, Any]) -> None:
        self.stream.write(b"\n" if self.count == 0 else b",\n")
        self.stream.write(_JSON.encode(item))
        self.count += 1

    def close(self) -> None:
        self.stream.write(b"\n]" if self.count else b"]")


def write_coco(dataset: NormalizedSource, out: Path) -> None:
    """Write every split of ``dataset`` as ``annotations/instances_<split>.json`` in ``out``."""
    manifest = dataset.manifest
    category_ids = list(_fresh_ids(iter([c.source_id for c in manifest.categories])))
    categories = []
    id_of_name: dict[str, int] = {}
    for category, coco_id in zip(manifest.categories, category_ids, strict=True):
        entry: dict[str, Any] = {"id": coco_id, "name": category.name}
        entry.update((k, v) for k, v in (category.attributes or {}).items() if k != "id")
        categories.append(entry)
        id_of_name[category.name] = coco_id
    attributes = dict(manifest.attributes or {})
    from_coco = manifest.source is not None and manifest.source.format == "coco"
    top = {k: v for k, v in attributes.items() if k not in _DOCUMENT_CORE and (from_coco or k in ("info", "licenses"))}
    instance_masks = manifest.mask_kind == "instance"
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    for split in manifest.splits:
        image_ids = _fresh_ids(record.get("id") for record in dataset.records(split))
        annotation_ids = _fresh_ids(
            (box.get("attributes") or {}).get("id") for record in dataset.records(split) for box in record["boxes"]
        )
        with (out / "annotations" / f"instances_{split}.json").open("wb") as stream:
            stream.write(b"{")
            for position, (key, value) in enumerate(top.items()):
                stream.write((b",\n" if position else b"") + _JSON.encode(key) + b": " + _JSON.encode(value))
            images = _JsonArrayWriter(stream, "images", first=not top)
            records_ids = []
            for record, image_id in zip(dataset.records(split), image_ids, strict=True):
                images.add(record_to_coco_image(record=record, image_id=image_id))
                records_ids.append(image_id)
            images.close()
            annotations = _JsonArrayWriter(stream, "annotations", first=False)
            for record, image_id in zip(dataset.records(split), records_ids, strict=True):
                boxes = record["boxes"]
                segmentations: list[dict[str, Any] | None] = [None] * len(boxes)
                if instance_masks and record.get("mask") and boxes:
                    mask = _load_mask(dataset.mask_path(record["mask"]))
                    segmentations = instance_mask_to_coco_rles(mask=mask, count=len(boxes))
                for box, segmentation in zip(boxes, segmentations, strict=True):
                    annotations.add(
                        box_to_coco_annotation(
                            box=box,
                            annotation_id=next(annotation_ids),
                            image_id=image_id,
                            category_id=id_of_name[box["name"]],
                            segmentation=segmentation,
                        )
                    )
            annotations.close()
            stream.write(b",\n" + _JSON.encode("categories") + b": " + _JSON.encode(categories) + b"}\n")


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
    area = attributes.pop("area", None)
    if not isinstance(area, (int, float)) or isinstance(area, bool):
        area = (
            float(mask_utils.area({"size": segmentation["size"], "counts": segmentation["counts"].encode("ascii")}))
            if segmentation is not None
            else round_coord(bbox[2] * bbox[3])
        )
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
    entry.update((k, v) for k, v in attributes.items() if k not in entry and k not in _ANNOTATION_CORE)
    return entry


# ------------------------------------------------------------------------------------------ converter


class CocoConverter(Converter):
    """COCO instances JSON (boxes, crowds, polygon and RLE masks, keypoints), both ways."""

    name = "coco"
    summary = "COCO instances JSON: boxes, crowds, polygon/RLE segmentation, keypoints"
    read_options = (
        Option("masks", "Render segmentations into instance mask PNGs.", type=bool, default=True),
        workers_option("build records (large splits) or render masks"),
    )

    capabilities = Capabilities(
        box_attributes=True,
        image_attributes=True,
        # COCO's own fields: an attribute of one of these names would be written as the field.
        reserved_attributes=frozenset((*_BOX_ATTRIBUTE_FIELDS, "bbox", "segmentation", "image_id", "category_id"))
        | _IMAGE_CORE,
        added_attributes=frozenset({"id", "area", "iscrowd"}),
        ids=True,
        category_order=True,
    )

    @classmethod
    def sniff(cls, source: Path) -> bool:
        """A ``.json`` that starts like a COCO file, or a directory holding such files."""
        if source.is_dir():
            return bool(coco_task_files(source))
        return _sniff_file(source)

    @classmethod
    def source_files(cls, source: Path, options: Mapping[str, Any]) -> list[Path]:
        """The COCO file, or the annotation files of a directory."""
        if not source.is_dir():
            return [source]
        found = coco_task_files(source)
        if not found:
            raise ParseError("no COCO annotation file here; expected annotations/instances_<split>.json", file=source)
        return found

    def read(self, source: Path, ctx: ReadContext) -> ReadResult:
        """Stream a COCO file or directory into ``ctx.sink``."""
        masks = ctx.options.get("masks")  # None: not given, which means render them
        return read_coco(source, ctx.sink, images=ctx.images, masks=masks is None or bool(masks), executor=ctx.executor)

    def write(self, dataset: NormalizedSource, out: Path, *, options: Mapping[str, Any]) -> None:
        """Write ``annotations/instances_<split>.json`` per split."""
        write_coco(dataset, out)
