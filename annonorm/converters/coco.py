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
- LVIS (v0.5, v1; https://www.lvisdataset.org/dataset) is COCO with a few fields more, read and written
  as such. An image without ``file_name`` (LVIS v1) is the one its ``coco_url`` names, the URL's last two
  path segments: ``http://images.cocodataset.org/train2017/000000000009.jpg`` -> ``train2017/000000000009.jpg``
  under the image folder, which is then COCO's image root, the folder holding ``train2017/`` and
  ``val2017/`` (LVIS v1 val mixes both; ``--images coco/train2017`` holding the first image stands for
  ``coco``). ``coco_url`` stays an image field, as do ``neg_category_ids`` (classes verified absent) and
  ``not_exhaustive_category_ids`` (classes not all boxed): record attributes, lists of COCO category ids
  (``source_id``), each the id of a category of the file. ``synset``, ``synonyms``, ``def``, ``frequency``
  (``r``/``c``/``f``), ``image_count`` and ``instance_count`` are category attributes. A record with LVIS's
  image labels is written back as LVIS has it: no ``file_name`` when its ``coco_url`` names its image
  (v0.5's own ``file_name`` differs and is written), and no ``iscrowd`` on annotations that had none.

Sources: a COCO JSON file (split = the name without its task prefix, ``instances_val2017.json`` ->
``val2017``; Roboflow's ``_annotations.coco.json`` -> its folder) or a folder laid out as COCO
(``annotations/instances_<split>.json``, images in ``images/<split>/``, ``<split>/`` or ``<split>2017/``),
as Roboflow (``<split>/_annotations.coco.json``) or flat. The instances file wins over other task files.

Writing: ``annotations/instances_<split>.json`` per split, ids restored from ``source_id`` / record
``id`` / box attribute ``id`` where unique integers; ``segmentation`` is the box's polygon, else its RLE
(a box with both writes its RLE beside, as ``rle``), else the instance mask PNG as one compressed RLE.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path, PurePosixPath
from typing import Any

import msgspec
import numpy as np
from msgspec import UNSET, UnsetType

from annonorm.converters.base import Capabilities, Converter, Option, ReadContext, ReadResult, workers_option
from annonorm.engine import Executor, LocalExecutor
from annonorm.errors import AnnonormError, InvalidDataError, ParseError
from annonorm.fsutil import read_regular_bytes, require_regular_file
from annonorm.io import NormalizedSource
from annonorm.masks import (
    NAME_ERRNOS,
    MaskJob,
    draw_instance_masks,
    instance_mask_name,
    instance_mask_to_coco_rles,
    mask_name_error,
    max_mask_pixels,
    read_instance_mask,
)
from annonorm.shapes import PREFIX_BYTES, is_coco_results
from annonorm.sink import DatasetWriter
from annonorm.sources.cocojson import (
    ANNOTATION_CORE,
    LVIS_IMAGE_LABELS,
    NO_FILE_NAME,
    ONLY_INSTANCES,
    LvisCategoryFields,
    LvisImageFields,
    box_to_coco_annotation,
    box_to_coco_bbox,
    category_keypoints,
    coco_bbox_problem,
    coco_bbox_reword,
    coco_bbox_to_corners,
    coco_bboxes_to_corners,
    coco_categories_to_names,
    coco_document_problem,
    coco_file_name_entry,
    coco_file_name_problem,
    coco_image_dir,
    coco_image_names,
    coco_image_size,
    coco_mask_problem,
    is_lvis_record,
    json_fields,
    keypoint_fields,
    segmentation_fields,
)
from annonorm.sources.columns import (
    AttributeColumns,
    Box,
    GroupedBoxes,
    Grouping,
    column,
    field_columns,
    first_repeat,
    grouped_record,
    positions,
)
from annonorm.sources.jsondoc import (
    Decoded,
    TypedJson,
    fresh_ids,
    is_empty_json,
    json_head,
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
#: Annotation fields kept as box attributes, in this order; unknown annotation keys follow them.
_BOX_ATTRIBUTE_FIELDS = ("id", "area", "iscrowd", "keypoints", "num_keypoints", "score", "attributes")
_IMAGE_CORE = frozenset({"id", "file_name", "width", "height"})
_CATEGORY_CORE = frozenset({"id", "name"})
_SPLIT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_JSON = msgspec.json.Encoder()
_NO_BOX = (np.nan, np.nan, np.nan, np.nan)

# Typed structs decode COCO train2017 (860k annotations) several times faster than plain dicts; the
# segmentation stays raw JSON until a mask is drawn. gc=False: decoded JSON holds no reference cycles,
# and a million tracked items would make every full collection cost more than the decoding.


class _Image(LvisImageFields, kw_only=True, forbid_unknown_fields=True, gc=False):
    id: int | str
    file_name: str = NO_FILE_NAME  # LVIS v1 has none: coco_image_names gives the one its coco_url names
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


class _Category(LvisCategoryFields, kw_only=True, forbid_unknown_fields=True, gc=False):
    id: int | str
    name: str
    supercategory: Any = UNSET
    keypoints: Any = UNSET
    skeleton: Any = UNSET


#: The annotation fields that plain instance files never carry (keypoint files and predictions do).
_RARE_FIELDS = attrgetter("keypoints", "num_keypoints", "score", "attributes")
_NO_RARE_FIELD = (UNSET,) * 4


class _Document(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    images: list[_Image]
    annotations: list[_Annotation] = []
    categories: list[_Category] = []
    info: Any = UNSET
    licenses: Any = UNSET


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


def coco_annotation_to_box(*, name: str, bbox: Sequence[float], attributes: dict[str, Any] | None) -> dict[str, Any]:
    """One COCO annotation as a canonical box dict."""
    x1, y1, x2, y2 = coco_bbox_to_corners(bbox=bbox)
    box: dict[str, Any] = {"name": name, "x1": x1, "y1": y1, "x2": x2, "y2": y2}
    if attributes:
        box["attributes"] = attributes
    return box


_TYPED = TypedJson(
    _Document,
    items={"images": _Image, "annotations": _Annotation, "categories": _Category},
    what="COCO",
    refuse=lambda raw, document: coco_document_problem(head=raw[:PREFIX_BYTES], document=document),
    reword=coco_bbox_reword,
)


# -------------------------------------------------------------------------------- mapping annonorm -> coco


def record_to_coco_image(*, record: Mapping[str, Any], image_id: int) -> dict[str, Any]:
    """A record as a COCO ``images`` entry; record attributes come back as image fields."""
    entry: dict[str, Any] = {"id": image_id, **coco_file_name_entry(record)}
    if record.get("width") is not None:
        entry["width"] = record["width"]
        entry["height"] = record["height"]
    entry.update((k, v) for k, v in (record.get("attributes") or {}).items() if k not in _IMAGE_CORE)
    return entry


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
    found = coco_image_dir(candidates, json_head(json_path, SNIFF_BYTES))  # the first image, from the file's start
    return found or next((candidate for candidate in specific if candidate.is_dir()), fallback)


def _directory_hint(source: Path) -> str:
    """What a directory without COCO files holds instead, when that is recognisable (for the error)."""
    annotations = source / "annotations"
    unsupported = sorted(annotations.glob("*.json")) if annotations.is_dir() else []
    if unsupported:
        return f" (found only {', '.join(p.name for p in unsupported[:5])}: captions and panoptic are not supported)"
    for path in sorted(source.glob("*.json"))[:20]:
        if is_coco_results(json_head(path, SNIFF_BYTES)):
            return f" ({path.name} is a COCO results list: annonorm convert coco-results {path} --gt INSTANCES.json)"
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
            raise ParseError(f"this is a COCO {task} file; {ONLY_INSTANCES}", file=path)
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
        attributes = json_fields(category, _CATEGORY_CORE) | (extras[index] if extras else {})
        if name != category.name:
            attributes["name"] = category.name
        supercategory = attributes.pop("supercategory", None)
        if not isinstance(supercategory, str) or not supercategory:  # not what the manifest holds: an attribute
            attributes |= {} if supercategory is None else {"supercategory": supercategory}
            supercategory = None
        keypoints, skeleton = category_keypoints(attributes, lengths.get(category.id, set()))
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


class _SplitReader:
    """One decoded COCO file as the records of one split.

    The annotations become columns in image order (:class:`~annonorm.sources.columns.Grouping`: file
    order within an image; COCO files need not be sorted by image), and records are built from them a
    chunk of images at a time. A rule a row breaks is found for all rows at once and worded, for the
    rare image that has one, by the ``coco_*_problem`` functions.
    """

    def __init__(
        self, decoded: Decoded[_Document], plan: _SplitPlan, writer: DatasetWriter, names: dict[Any, str], masks: str
    ) -> None:
        self.document, self.plan, self.writer, self.file = decoded.document, plan, writer, plan.path
        extras = decoded.extras or {}
        self.image_extras = extras.get("images")
        self.names = [*names.values(), ""]  # "" for -1, an unknown category: its image is refused, never built
        self.image_errors = coco_image_names(self.document.images, categories=names.keys(), file=self.file)
        self.used_masks: set[str] = set()
        images, annotations = self.document.images, self.document.annotations
        image_ids = column([image.id for image in images])
        if (repeat := first_repeat(image_ids)) is not None:
            message = f"image id {images[repeat[0]].id!r} is used twice"
            raise InvalidDataError(message, file=self.file, location=f"images[{repeat[0]}].id")
        groups = self.groups = Grouping(column(list(map(attrgetter("image_id"), annotations))), image_ids)
        categories = positions(column(list(map(attrgetter("category_id"), annotations))), column(list(names)))
        # One pass tells whether the rarely used fields occur at all (they do in keypoint files).
        rare = any(map(_NO_RARE_FIELD.__ne__, map(_RARE_FIELDS, annotations)))
        fields = _BOX_ATTRIBUTE_FIELDS if rare else _BOX_ATTRIBUTE_FIELDS[:3]
        attributes = field_columns(annotations, fields, flags=frozenset({"iscrowd"}))
        if "id" in attributes and (repeat := first_repeat(attributes["id"][0])) is not None:
            message = f"annotation id {annotations[repeat[0]].id!r} is used twice (also annotations[{repeat[1]}])"
            raise InvalidDataError(message, file=self.file, location=f"annotations[{repeat[0]}].id")
        for index in groups.orphans:
            message = f"image_id {annotations[index].image_id!r} is not the id of any image"
            writer.problem(InvalidDataError(message, file=self.file, location=f"annotations[{index}].image_id"))
        self.order, self.owner = groups.order, groups.owner
        # Read in file order (adjacent objects), then put in image order.
        bboxes = [_NO_BOX if a.bbox is UNSET else a.bbox for a in annotations]
        xywh = np.fromiter(itertools.chain.from_iterable(bboxes), dtype=np.float64, count=4 * len(bboxes))
        xywh = groups.take(xywh.reshape(-1, 4))
        self.corners = coco_bboxes_to_corners(bboxes=xywh)
        self.categories = groups.take(categories)
        self.boxed = ~np.isnan(xywh[:, 0])  # JSON has no NaN: only _NO_BOX holds one
        self.bad = (xywh < 0).any(axis=1) | (self.categories < 0)
        self.attributes = AttributeColumns(attributes, groups, extras.get("annotations"))
        self.clean = ~groups.flagged(self.bad)
        self.mode, self.segmentations, self.rles = masks, None, None
        if masks != "none":
            self.segmentations = groups.take_list(list(map(attrgetter("segmentation"), annotations)))
        if masks == "vector" and any(a.rle is not UNSET for a in annotations):
            self.rles = groups.take_list([a.rle for a in annotations])
        # Keypoints become the box field where the category names them; the score is a field of its own.
        counts = [len(writer.category_keypoints(name) or ()) for name in self.names]
        self.keypoint_counts = np.array(counts)[self.categories]
        self.keypoints = self.attributes.pop("keypoints") if any(counts) else None
        self.num_keypoints = self.attributes.pop("num_keypoints") if self.keypoints is not None else None
        self.scores = self.attributes.pop("score")
        self.vectors = masks == "vector" or self.keypoints is not None or self.scores is not None
        self.boxes = GroupedBoxes(groups, self.categories, self.names, self.corners, self.boxed, self.attributes)

    def write(self, writer: DatasetWriter, start: int, stop: int) -> None:
        """Write the records of images ``start..stop`` (no masks drawn) into ``writer``."""
        parent, self.writer = self.writer, writer  # a forked part's problems go to its part writer
        try:
            for records, _ in self.records(start, stop):
                writer.add_many(self.plan.split, records)
        finally:
            self.writer = parent

    def records(self, start: int, stop: int) -> Iterator[tuple[list[dict[str, Any]], list[MaskJob | None]]]:
        """The records of images ``start..stop`` (and, with masks, their mask jobs), a chunk at a time."""
        images = self.document.images
        for chunk in self.groups.chunks(start, stop):
            built = self.boxes.build(chunk)
            problems = self._vector_fields(built.boxes, chunk.first) if self.vectors else {}
            clean = self.clean[chunk.start : chunk.stop].tolist()
            records: list[dict[str, Any]] = []
            jobs: list[MaskJob | None] = []
            for index, low, high in chunk.groups():
                image = images[index]
                if (size := self._image_size(index, image)) is None:
                    continue
                if not clean[index - chunk.start]:
                    self._refuse(image, low, high)
                    continue
                if problems and (problem := next((problems[p] for p in range(low, high) if p in problems), None)):
                    error = InvalidDataError(problem[0], file=self.file, location=problem[1], image=image.file_name)
                    self.writer.problem(error)
                    continue
                mask, job = None, None
                if self.mode == "png":
                    if (drawn := self._mask_job(index, image, size, low, high)) is None:
                        continue
                    mask, job = drawn
                attributes = present_fields(image, _IMAGE_CORE)
                if self.image_extras is not None:
                    attributes.update(self.image_extras[index])
                group = built.group(index, low, high)
                image_path = self.plan.prefix + image.file_name
                records.append(
                    grouped_record(
                        image=image_path, size=size, group=group, mask=mask, id=image.id, attributes=attributes
                    )
                )
                jobs.append(job)
            yield records, jobs

    def _vector_fields(self, boxes: list[Box], first: int) -> dict[int, tuple[str, str]]:
        """Give the boxes of positions ``first..`` their polygon, RLE, keypoints and score; return
        position -> (problem, location) for the annotations whose values cannot be."""
        problems: dict[int, tuple[str, str]] = {}
        last = first + len(boxes)
        if self.mode == "vector":
            assert self.segmentations is not None
            rles = None if self.rles is None else self.rles[first:last]
            problems = segmentation_fields(
                boxes,
                self.segmentations[first:last],
                rles,
                image_size=lambda at: self._known_size(self.document.images[self.owner[first + at]]),
                location=lambda at: f"annotations[{self.order[first + at]}].segmentation",
            )
        if self.keypoints is not None:
            values = self.keypoints[0][first:last].tolist()
            numbers = self.num_keypoints[0][first:last].tolist() if self.num_keypoints is not None else None
            found = keypoint_fields(
                boxes,
                values,
                numbers or [UNSET] * len(boxes),
                self.keypoint_counts[first:last].tolist(),
                location=lambda at: f"annotations[{self.order[first + at]}].keypoints",
            )
            problems = found | problems  # a segmentation's problem is said first
        if self.scores is not None:
            values, everywhere = self.scores
            for box, score in zip(boxes, values[first:last].tolist(), strict=True):
                if isinstance(score, (int, float)) and not isinstance(score, bool) and 0 <= score <= 1:
                    box.score = float(score)
                elif everywhere or score is not UNSET:  # not a confidence: kept as the source has it
                    box.attributes = {"score": score} | (box.attributes or {})
        return {first + at: problem for at, problem in problems.items()}

    @staticmethod
    def _known_size(image: _Image) -> dict[str, Any]:
        return {} if image.width is UNSET else {"height": image.height, "width": image.width}

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
        try:
            if index in self.image_errors:  # no file name, or LVIS labels naming no category
                raise self.image_errors[index]
            return coco_image_size(
                file_name=image.file_name,
                width=image.width,
                height=image.height,
                image_dir=self.plan.image_dir,
                file=self.file,
                index=index,
            )
        except AnnonormError as error:
            self.writer.problem(error)
            return None

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
            size, file = reader.groups.occupied(), plan.path
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
        boxes, lvis = record["boxes"], is_lvis_record(record)
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
                lvis=lvis,
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
        reserved_attributes=frozenset((*_BOX_ATTRIBUTE_FIELDS, *ANNOTATION_CORE, *LVIS_IMAGE_LABELS)) | _IMAGE_CORE,
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
