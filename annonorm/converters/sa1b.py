"""SA-1B (Segment Anything 1 Billion): one JSON per image, class-agnostic masks as COCO RLE.

Layout: a folder of ``sa_<n>.json`` beside ``sa_<n>.jpg`` (one folder per downloaded tar), or a folder of such
folders. A JSON document is::

    {"image": {"image_id": 1, "width": 1500, "height": 2250, "file_name": "sa_1.jpg"},
     "annotations": [{"id": 7, "segmentation": {"size": [2250, 1500], "counts": "<COCO RLE string>"},
                      "bbox": [x, y, w, h], "area": 4400, "predicted_iou": 0.93, "stability_score": 0.97,
                      "point_coords": [[x, y]], "crop_box": [x, y, w, h]}]}

Every mask is a box of the one category ``object``: x1..y2 from ``bbox`` (top-left corner, width, height, in
pixels), ``rle`` = the segmentation, and the attributes ``id``, ``area``, ``predicted_iou``,
``stability_score``, ``point_coords`` and ``crop_box`` as the source has them. The record is the image
(``file_name`` below the JSON's folder, ``image_id`` as its id, the size from the JSON). Known quirk: an empty
mask (no foreground pixel) whose ``size`` is not the image's (seen transposed) carries no shape and is left
out, the box kept; a non-empty mask of another size is an error of that image.

SA-1B has about 11 million files: they are listed once and decoded in chunks on the engine's ordered map
(``--workers``), at most a few chunks in memory.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec

from annonorm.converters.base import (
    Capabilities,
    Converter,
    Option,
    ReadContext,
    ReadResult,
    make_record,
    workers_option,
)
from annonorm.errors import AnnonormError, InvalidDataError, ParseError, UnsafePathError
from annonorm.fsutil import read_regular_bytes
from annonorm.geometry import round_coord
from annonorm.io import DatasetWriter
from annonorm.masks import coco_rle_string_runs, coco_segmentation_to_rle
from annonorm.paths import check_relative_path
from annonorm.sources.images import list_dir
from annonorm.sources.jsondoc import strip_bom, validation_problem

__all__ = ["Sa1bConverter", "sa1b_annotation_to_box", "sa1b_document_to_record"]

# ---------------------------------------------------------------------------------------------- constants

CATEGORY = "object"
DEFAULT_SPLIT = "train"
#: Files decoded per unit of work on the engine: large enough to amortize a round trip to a worker.
CHUNK_SIZE = 64
#: From this many files the read goes parallel.
PARALLEL_MIN_FILES = 512
#: The annotation keys kept as box attributes, in this order.
KEPT = ("id", "area", "predicted_iou", "stability_score", "point_coords", "crop_box")


class Sa1bImage(msgspec.Struct):
    """The ``image`` object."""

    image_id: int | str
    width: int
    height: int
    file_name: str


class Sa1bSegmentation(msgspec.Struct):
    """A COCO RLE: ``size`` = [height, width], ``counts`` compressed (a string) or not (a list)."""

    size: list[int]
    counts: str | list[int]


class Sa1bAnnotation(msgspec.Struct):
    """One mask; the fields after ``bbox`` are optional (kept where present)."""

    segmentation: Sa1bSegmentation
    bbox: list[float]
    id: int | str | None = None
    area: int | float | None = None
    predicted_iou: float | None = None
    stability_score: float | None = None
    point_coords: list[list[int | float]] | None = None
    crop_box: list[int | float] | None = None


class Sa1bDocument(msgspec.Struct):
    """One per-image JSON file."""

    image: Sa1bImage
    annotations: list[Sa1bAnnotation]


_DECODER = msgspec.json.Decoder(Sa1bDocument)
_PLAIN = msgspec.json.Decoder()

# ---------------------------------------------------------------------------------------------- sniff


def _json_names(folder: Path) -> list[str]:
    """The JSON file names of one folder, by name (one listing; the paths are built as they are read)."""
    return [e.name for e in list_dir(folder) if e.name.endswith(".json") and e.is_file()]


def _folders(source: Path) -> list[tuple[str, Path]]:
    """``(record path prefix, folder)``: SOURCE itself when it holds JSON files, else its sub-folders, by name."""
    if _json_names(source):
        return [("", source)]
    return [(f"{e.name}/", Path(e.path)) for e in list_dir(source) if e.is_dir()]


def _sniff(source: Path) -> bool:
    try:
        if not source.is_dir():
            return False
        first = next((e for e in list_dir(source) if e.name.endswith(".json") and e.is_file()), None)
        if first is None:
            return False
        with open(first.path, "rb") as stream:
            head = stream.read(4096)
        return b'"image"' in head and b'"annotations"' in head and b'"image_id"' in head
    except (OSError, AnnonormError):
        return False


# ------------------------------------------------------------------------------------ mapping sa1b -> annonorm


def _finite(values: Sequence[float]) -> bool:
    return all(math.isfinite(v) for v in values)


def _rle(segmentation: Sa1bSegmentation, width: int, height: int) -> dict[str, Any] | None:
    """The box's ``rle``; None for an empty mask of another size (the quirk above). InvalidDataError if bad."""
    value = {"size": segmentation.size, "counts": segmentation.counts}
    if segmentation.size != [height, width]:
        counts = segmentation.counts
        empty = (
            sum(counts[1::2]) == 0 if isinstance(counts, list) else not coco_rle_string_runs(counts=counts)[1::2].any()
        )
        if empty:
            return None
    rle = coco_segmentation_to_rle(segmentation=value, height=height, width=width)
    assert rle is not None  # an RLE object always gives one
    counts = rle["counts"]
    return {"size": [height, width], "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}


def sa1b_annotation_to_box(*, annotation: Sa1bAnnotation, width: int, height: int) -> dict[str, Any]:
    """The ``object`` box of one annotation; :class:`InvalidDataError` (without a file) says what is wrong."""
    bbox = annotation.bbox
    if len(bbox) != 4 or not _finite(bbox) or bbox[2] < 0 or bbox[3] < 0:
        raise InvalidDataError(f"expected bbox [x, y, w, h] of finite numbers, w and h >= 0, found {bbox}")
    for key in ("area", "predicted_iou", "stability_score"):
        number = getattr(annotation, key)
        if number is not None and not math.isfinite(number):
            raise InvalidDataError(f"expected {key} a finite number, found {number}")
    x, y, w, h = bbox
    box: dict[str, Any] = {"name": CATEGORY, "x1": round_coord(x), "y1": round_coord(y)}
    box |= {"x2": round_coord(x + w), "y2": round_coord(y + h)}
    rle = _rle(annotation.segmentation, width, height)
    if rle is not None:
        box["rle"] = rle
    attributes = {key: getattr(annotation, key) for key in KEPT if getattr(annotation, key) is not None}
    if attributes:
        box["attributes"] = attributes
    return box


def sa1b_document_to_record(*, document: Sa1bDocument, prefix: str) -> dict[str, Any]:
    """The record of one decoded JSON document; errors carry the place (``annotations[3]``), not the file."""
    image = document.image
    if image.width <= 0 or image.height <= 0:
        raise InvalidDataError(f"expected a width and height > 0, found {image.width} x {image.height}",
                               location="image")  # fmt: skip
    try:
        name = check_relative_path(prefix + image.file_name)
    except ValueError as exc:
        raise UnsafePathError(str(exc), location="image.file_name") from None
    boxes = []
    for index, annotation in enumerate(document.annotations):
        try:
            boxes.append(sa1b_annotation_to_box(annotation=annotation, width=image.width, height=image.height))
        except InvalidDataError as error:
            error.location = f"annotations[{index}]"
            error.image = name
            raise
    return make_record(image=name, width=image.width, height=image.height, boxes=boxes, id=image.image_id)


def _decode(raw: bytes, path: Path) -> Sa1bDocument:
    raw = strip_bom(raw)
    try:
        return _DECODER.decode(raw)
    except msgspec.ValidationError as exc:
        try:
            plain = _PLAIN.decode(raw)
        except msgspec.DecodeError:
            plain = msgspec.UNSET
        problem = validation_problem(plain, exc)
        raise ParseError(problem.message, file=path, location=problem.path or None) from None
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ParseError(f"not valid JSON ({exc})", file=path) from None


# ---------------------------------------------------------------------------------------------- layout


def _source_files(source: Path, options: Mapping[str, Any]) -> list[Path]:
    return [source]


# ---------------------------------------------------------------------------------------------- read


def _read_one(prefix: str, path: Path) -> dict[str, Any] | AnnonormError:
    try:
        return sa1b_document_to_record(document=_decode(read_regular_bytes(path, "SA-1B JSON"), path), prefix=prefix)
    except AnnonormError as error:
        error.file = error.file or str(path)
        error.image = error.image or prefix + path.name[: -len(".json")]
        return error


def _read_chunk(unit: tuple[str, str, Sequence[str]]) -> list[dict[str, Any] | AnnonormError]:
    prefix, folder, names = unit
    return [_read_one(prefix, Path(folder, name)) for name in names]


def _chunks(
    folders: list[tuple[str, Path]], writer: DatasetWriter
) -> Iterator[tuple[None, tuple[str, str, Sequence[str]]]]:
    """Units of at most :data:`CHUNK_SIZE` files, one folder listed at a time (memory: one folder's names)."""
    for prefix, folder in folders:
        names = _json_names(folder)
        writer.expect(len(names))
        for start in range(0, len(names), CHUNK_SIZE):
            yield None, (prefix, str(folder), names[start : start + CHUNK_SIZE])


def _outcomes(folders: list[tuple[str, Path]], ctx: ReadContext) -> Iterator[dict[str, Any] | AnnonormError]:
    """Records (or errors) in file order: here, or in chunks on the engine's ordered map (a few in flight)."""
    estimate = len(_json_names(folders[0][1])) * len(folders)
    workers = ctx.executor.execution.pool_size(estimate, PARALLEL_MIN_FILES, parent_busy=True)
    mapped = ctx.executor.map(
        _read_chunk, _chunks(folders, ctx.sink), processes=workers, window=2 * workers, fresh=True
    )
    with contextlib.closing(mapped) as done:
        for _, outcome in done:
            yield from outcome or ()


def _read(source: Path, ctx: ReadContext) -> ReadResult:
    writer = ctx.sink
    folders = _folders(source) if source.is_dir() else []
    if not folders:
        raise ParseError("no SA-1B annotations here: expected a folder of per-image <name>.json files", file=source)
    writer.category(CATEGORY)
    writer.add_source_file(source)
    split = ctx.options.get("split") or DEFAULT_SPLIT
    writer.declare_split(split)
    empty = True
    for outcome in _outcomes(folders, ctx):
        empty = False
        if isinstance(outcome, AnnonormError):
            writer.problem(outcome)
        else:
            writer.add(split, outcome)
    if empty:
        raise ParseError("no SA-1B annotations here: expected a folder of per-image <name>.json files", file=source)
    return ReadResult(name=source.resolve().name or "sa1b", image_root=ctx.images or source)


# ---------------------------------------------------------------------------------------------- the converter


class Sa1bConverter(Converter):
    """SA-1B per-image JSON (class-agnostic RLE masks, one category ``object``); read only."""

    name = "sa1b"
    summary = "SA-1B (Segment Anything) per-image <name>.json with COCO RLE masks, class-agnostic"
    read_options = (
        Option("split", "The split the images go to (default train)"),
        workers_option("decode the JSON files"),
    )
    capabilities = Capabilities(box_attributes=True, rle=True, ids=True, reserved_attributes=frozenset(KEPT))

    @classmethod
    def sniff(cls, source: Path) -> bool:
        return _sniff(source)

    @classmethod
    def source_files(cls, source: Path, options: Mapping[str, Any]) -> list[Path]:
        return _source_files(source, options)

    def read(self, source: Path, ctx: ReadContext) -> ReadResult:
        return _read(source, ctx)
