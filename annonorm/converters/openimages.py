"""Open Images V7 (and V5/V6): CSV tables keyed by ``ImageID``, boxes in fractions of the image side.

SOURCE is the dataset folder (``annotations/`` + ``images/<split>/`` + ``masks/<split>/``, as Datumaro and the
downloader lay it out) or the folder of the CSV files itself. Tables (``oidv6-``/``oidv7-`` prefixes allowed):

- ``<split>-annotations-bbox.csv``: ``ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,
  IsTruncated,IsGroupOf,IsDepiction,IsInside``; corners are fractions 0..1 of the width/height (x1 = XMin * W).
  The flags are 1, 0 or -1 (unknown, left out) and become the box attributes ``occluded``, ``truncated``,
  ``iscrowd`` (IsGroupOf), ``depiction``, ``inside``; ``Source`` and ``Confidence`` become ``source`` and
  ``confidence``.
- ``class-descriptions*.csv``: ``LabelName,DisplayName`` (the MID, e.g. ``/m/01g317``, and its name; the header
  is optional). The category is the display name, its ``source_id`` the MID.
- ``<split>-annotations-human-imagelabels*.csv``: ``ImageID,Source,LabelName,Confidence``; confidence 1 puts the
  class in the record's ``labels``, 0 in its ``negative_labels`` attribute (verified absent).
- ``<split>-annotations-object-segmentation.csv``: ``MaskPath,ImageID,LabelName,BoxID,BoxXMin,BoxXMax,BoxYMin,
  BoxYMax,...``; each mask PNG (any size) is rescaled to the image and stored as the ``rle`` of the box of the
  same image, class and corners (attribute ``box_id``); a mask without such a box is a box of its own.
- ``bbox_labels_600_hierarchy.json``: a category's ``supercategory`` is its parent's name.
- image lists (``image_ids_and_rotation.csv``, ``<split>-images-with-rotation.csv``: ``ImageID,Subset``): images
  without annotations; ``images.meta`` (``ImageID height width`` per line): sizes of images not at hand.

The split is the file's (``train``, ``validation``, ``test``). Images are ``<split>/<ImageID>.<ext>`` below
``--images DIR`` or SOURCE's ``images/`` (or flat in it), their sizes from the headers, else ``images.meta``.
The categories are the classes used, in the class descriptions' order (``--classes`` first). A single CSV file
is the ``csv`` converter's ``--preset openimages``. The writer puts ``annotations/`` with the descriptions,
per split the box and image-label tables, ``image_ids_and_rotation.csv`` and ``images.meta``.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import lru_cache
from itertools import chain, groupby
from operator import itemgetter
from pathlib import Path, PurePosixPath
from typing import IO, Any, cast

import numpy as np

from annonorm.converters.base import Capabilities, Converter, Option, ReadContext, ReadResult, make_record
from annonorm.errors import AnnonormError, InvalidDataError, ParseError, UnsafePathError
from annonorm.fsutil import open_regular
from annonorm.geometry import round_coord
from annonorm.images import read_image_size
from annonorm.io import NormalizedSource, read_text
from annonorm.paths import check_relative_path
from annonorm.sources.classlists import read_class_list
from annonorm.sources.images import images_by_stem, list_dir
from annonorm.sources.tabular import iter_rows

__all__ = ["OpenimagesConverter", "box_to_openimages_row", "openimages_row_to_box"]

# ---------------------------------------------------------------------------------------------- constants

_PREFIX = r"^(?:oidv\d+-)?(?P<split>[A-Za-z0-9][A-Za-z0-9_.-]*)-"  # a split name as annonorm allows it
BBOX = re.compile(_PREFIX + r"annotations-bbox\.csv$")
LABELS = re.compile(_PREFIX + r"annotations-human-imagelabels(?:-boxable)?\.csv$")
MASKS = re.compile(_PREFIX + r"annotations-object-segmentation\.csv$")
DESCRIPTIONS = re.compile(r"^(?:oidv\d+-)?class-descriptions(?:-boxable)?\.csv$")
IMAGE_LIST = re.compile(r"^(?:image_ids_and_rotation|.*images.*-with-rotation)\.csv$")
HIERARCHY, SIZES = "bbox_labels_600_hierarchy.json", "images.meta"
BOX_COLUMNS = ("ImageID", "Source", "LabelName", "Confidence", "XMin", "XMax", "YMin", "YMax")
#: The flag columns and the box attributes they become.
FLAGS = {"IsOccluded": "occluded", "IsTruncated": "truncated", "IsGroupOf": "iscrowd",
         "IsDepiction": "depiction", "IsInside": "inside"}  # fmt: skip
LABEL_COLUMNS = ("ImageID", "Source", "LabelName", "Confidence")
MASK_COLUMNS = ("MaskPath", "ImageID", "LabelName", "BoxID", "BoxXMin", "BoxXMax", "BoxYMin", "BoxYMax")
#: The cells a box is made of, in the order :func:`_cells_to_box` takes them.
BOX_CELLS = ("XMin", "XMax", "YMin", "YMax", *FLAGS, "Source", "Confidence")
#: The cells of a mask row that name its box, in :data:`BOX_CELLS` order (the rest absent).
MASK_BOX_CELLS = ("BoxXMin", "BoxXMax", "BoxYMin", "BoxYMax")

# ---------------------------------------------------------------------------------------------- sniff


def _annotation_dir(source: Path) -> Path:
    return source / "annotations" if (source / "annotations").is_dir() else source


def _tables(folder: Path) -> dict[str, list[Path]]:
    """The tables of ``folder`` by kind (``bbox``, ``labels``, ``masks``, ``descriptions``, ``lists``), by name."""
    found: dict[str, list[Path]] = {"bbox": [], "labels": [], "masks": [], "descriptions": [], "lists": []}
    for entry in list_dir(folder):
        for kind, pattern in (("bbox", BBOX), ("labels", LABELS), ("masks", MASKS), ("descriptions", DESCRIPTIONS)):
            if pattern.match(entry.name):
                found[kind].append(Path(entry.path))
                break
        else:
            if IMAGE_LIST.match(entry.name):
                found["lists"].append(Path(entry.path))
    return found


def _sniff(source: Path) -> bool:
    try:
        tables = _tables(_annotation_dir(source)) if source.is_dir() else {}
        return bool(tables) and bool(tables["descriptions"]) and any(tables[k] for k in ("bbox", "labels", "lists"))
    except (OSError, AnnonormError):
        return False


# ------------------------------------------------------------------------------ mapping openimages -> annonorm


def _fraction(text: str | None, column: str) -> float:
    try:
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"expected {column} a number, found {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"expected {column} a finite number, found {text!r}")
    return value


def _cells_to_box(cells: Sequence[str | None], name: str, width: int, height: int) -> dict[str, Any]:
    """The box of one bbox row given as its :data:`BOX_CELLS` cells (``None``: the column is absent)."""
    try:
        x1, x2, y1, y2 = float(cells[0]), float(cells[1]), float(cells[2]), float(cells[3])  # type: ignore[arg-type]
        usual = math.isfinite(x1 + x2 + y1 + y2)
    except (TypeError, ValueError):
        usual = False
    if not usual:  # one cell at a time, in column order, so that the error names the first bad one
        x1, x2, y1, y2 = (_fraction(cells[k], BOX_CELLS[k]) for k in range(4))
    if x2 < x1 or y2 < y1:
        raise ValueError(f"expected XMin <= XMax and YMin <= YMax, found {x1}, {x2}, {y1}, {y2}")
    attributes = _box_attributes(tuple(cells[4:]))
    box: dict[str, Any] = {"name": name, "x1": round_coord(x1 * width), "y1": round_coord(y1 * height),
                           "x2": round_coord(x2 * width), "y2": round_coord(y2 * height)}  # fmt: skip
    if attributes:
        box["attributes"] = dict(attributes)  # a copy: a mask adds its box_id to it
    return box


@lru_cache(maxsize=4096)
def _box_attributes(cells: tuple[str | None, ...]) -> dict[str, Any]:
    """The attributes of the flag, Source and Confidence cells of a bbox row (few combinations: cached)."""
    attributes: dict[str, Any] = {}
    for text, column, key in zip(cells[:5], FLAGS, FLAGS.values(), strict=True):
        if text == "1" or text == "0":
            attributes[key] = text == "1"
        elif text and text != "-1":  # an empty or absent flag is unknown, like -1
            raise ValueError(f"expected {column} 0, 1 or -1 (unknown), found {text!r}")
    source, confidence = cells[5], cells[6]
    if source:
        attributes["source"] = source
    if confidence:
        attributes["confidence"] = _fraction(confidence, "Confidence")
    return attributes


def openimages_row_to_box(*, row: Mapping[str, str], name: str, width: int, height: int) -> dict[str, Any]:
    """The box of one bbox row (column -> cell); :class:`ValueError` says what is wrong."""
    return _cells_to_box([row.get(column) for column in BOX_CELLS], name, width, height)


def mask_png_to_rle(*, path: Path, width: int, height: int) -> dict[str, Any]:
    """The COCO RLE of a mask PNG (non-zero = the object), rescaled to ``width`` x ``height`` (nearest pixel)."""
    from PIL import Image
    from pycocotools import mask as mask_utils

    try:
        with Image.open(path) as image:
            pixels = image.convert("L").resize((width, height), Image.Resampling.NEAREST)
            mask = np.asfortranarray((np.asarray(pixels) > 0).astype(np.uint8))
    except (OSError, ValueError) as exc:
        raise InvalidDataError(f"cannot read the mask PNG: {exc}", file=path) from None
    encoded = mask_utils.encode(mask)
    return {"size": [height, width], "counts": encoded["counts"].decode("ascii")}


# ------------------------------------------------------------------------------ mapping annonorm -> openimages


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def box_to_openimages_row(*, box: Mapping[str, Any], image_id: str, mid: str, width: int, height: int) -> list[str]:
    """One bbox row of a box (Source ``xclick`` and Confidence 1 unless the box says; unknown flags -1)."""
    attributes = box.get("attributes") or {}
    fractions = [box["x1"] / width, box["x2"] / width, box["y1"] / height, box["y2"] / height]
    flags = ["-1" if attributes.get(k) is None else str(int(bool(attributes[k]))) for k in FLAGS.values()]
    source, confidence = str(attributes.get("source", "xclick")), attributes.get("confidence", 1)
    return [image_id, source, mid, _number(confidence), *(_number(v) for v in fractions), *flags]


# ---------------------------------------------------------------------------------------------- layout


def _source_files(source: Path, options: Mapping[str, Any]) -> list[Path]:
    folder = _annotation_dir(source)
    named = [p for paths in _tables(folder).values() for p in paths]
    return sorted([*named, *(folder / n for n in (HIERARCHY, SIZES) if (folder / n).is_file())])


def _table_rows(
    path: Path, columns: tuple[str, ...], header: bool = True
) -> Iterator[tuple[int, list[str], list[str]]]:
    """``(row number, column names, cells)`` of a CSV table with ``columns`` (more allowed); errors name the row."""
    names: list[str] | None = None if header else list(columns)
    for number, cells in iter_rows(path, ","):
        if not any(cells):
            continue
        if names is None:
            missing = [c for c in columns if c not in cells]
            if missing:
                raise ParseError(f"expected the columns {', '.join(columns)}; {missing[0]} is missing", file=path,
                                 location="row 1")  # fmt: skip
            names = cells
            continue
        if (len(cells) < len(names) and len(cells) < len(columns)) or (header and len(cells) > len(names)):
            raise ParseError(f"expected {len(names)} values, found {len(cells)}", file=path, location=f"row {number}")
        yield number, names, cells
    if names is None:
        raise ParseError(f"the table is empty; expected a header row {','.join(columns)}", file=path)


def _rows(path: Path, columns: tuple[str, ...], header: bool = True) -> Iterator[tuple[int, dict[str, str]]]:
    """``(row number, column -> cell)`` of a CSV table (:func:`_table_rows`), for the image-level tables."""
    for number, names, cells in _table_rows(path, columns, header):
        yield number, dict(zip(names, cells, strict=False))


#: One bbox row as kept until its image's record is built: file, row number, LabelName, :data:`BOX_CELLS` cells.
_BoxRow = tuple[Path, int, str, tuple[str | None, ...]]


def _box_rows(path: Path) -> Iterator[tuple[str, _BoxRow]]:
    """``(ImageID, row)`` of a bbox table in file order, each row only the cells a box needs (no dict per row)."""
    pick, slots = None, 0
    for number, names, cells in _table_rows(path, BOX_COLUMNS):
        if pick is None:
            position = {column: k for k, column in enumerate(names)}  # a repeated column: the last one, as a dict
            slots = len(names) + 1  # the last slot, always None, stands for the absent columns
            pick = itemgetter(
                position["ImageID"], position["LabelName"], *(position.get(c, len(names)) for c in BOX_CELLS)
            )
        padded = cast(list[str | None], cells)
        if len(cells) + 1 == slots:
            padded.append(None)
        else:  # a short row (allowed when it holds the required columns)
            padded = [*cells, *[None] * (slots - len(cells))]
        values = pick(padded)
        if values[1] is None:
            raise ParseError(f"expected {len(names)} values, found {len(cells)}", file=path, location=f"row {number}")
        yield _image_id(values[0], path, number), (path, number, values[1], values[2:])


def _scan_runs(paths: list[Path]) -> list[str] | None:
    """The ImageIDs of the bbox tables ``paths`` (read as one), one per run of adjacent rows; ``None`` when an image's
    rows are not adjacent or a quick look cannot be sure of the cells (quotes, lone CR, NUL, not UTF-8, odd rows).

    The official tables are grouped by ImageID, so their records can be built as the rows stream (``None``: the
    rows are gathered per image instead). The look splits lines on commas, which is what the CSV reader does with
    text holding no quote, NUL or lone CR; anything else it leaves to the reader's own errors.
    """
    runs: list[str] = []
    seen: set[str] = set()
    last: str | None = None
    for path in paths:
        column: int | None = None
        try:
            stream = open_regular(path, "CSV file")
        except (OSError, AnnonormError):
            return None
        with stream:
            for lines in _line_blocks(stream):
                if lines is None:
                    return None
                for raw in lines:
                    if column is None:
                        try:
                            names = [cell.strip() for cell in raw.decode("utf-8").split(",")]
                        except UnicodeDecodeError:
                            return None
                        if any(names):
                            column = max((k for k, name in enumerate(names) if name == "ImageID"), default=-1)
                            if column < 0:
                                return None
                        continue
                    cells = raw.split(b",", column + 1)
                    try:
                        image_id = cells[column].decode("utf-8").strip() if column < len(cells) else ""
                        if not image_id:
                            if raw.replace(b",", b"").decode("utf-8").strip():
                                return None
                            continue  # a blank row
                    except UnicodeDecodeError:
                        return None
                    if image_id != last:
                        if image_id in seen:
                            return None
                        seen.add(image_id)
                        runs.append(image_id)
                        last = image_id
    return runs


def _line_blocks(stream: IO[bytes], size: int = 1 << 20) -> Iterator[list[bytes] | None]:
    """The lines of ``stream`` (no line ending, no byte order mark), a block at a time; ``None`` for a block
    holding a quote, a NUL or a CR that ends no line (the comma split would not be the CSV reader's cells)."""
    pending = b""
    first = True
    while True:
        block = stream.read(size)
        data = pending + block
        if first:
            data, first = data.removeprefix(b"\xef\xbb\xbf"), False
        if b'"' in data or b"\x00" in data:
            yield None
            return
        lines = data.split(b"\n")
        pending = lines.pop() if block else b""
        if b"\r" in data:
            lines = [line.removesuffix(b"\r") for line in lines]
            if any(b"\r" in line for line in lines):
                yield None
                return
        yield lines
        if not block:
            return


def _in_order(runs: list[str], images: Iterable[str]) -> bool:
    """Whether ``runs`` come in the order of ``images`` (a subsequence of it)."""
    order = iter(images)
    return all(any(image_id == run for image_id in order) for run in runs)


def _descriptions(paths: list[Path]) -> dict[str, str]:
    names: dict[str, str] = {}
    for path in paths:
        for number, row in _rows(path, ("LabelName", "DisplayName"), header=False):
            if (row["LabelName"], row.get("DisplayName")) == ("LabelName", "DisplayName"):
                continue
            if not row.get("DisplayName"):
                raise ParseError("expected 'MID,DisplayName'", file=path, location=f"row {number}")
            names.setdefault(row["LabelName"], row["DisplayName"])
    return names


def _parents(folder: Path) -> dict[str, str]:
    """MID -> parent MID from the hierarchy JSON (absent: none)."""
    path = folder / HIERARCHY
    if not path.is_file():
        return {}
    try:
        tree = json.loads(read_text(path, "Open Images hierarchy"))
    except (ValueError, RecursionError) as exc:
        raise ParseError(f"not valid JSON ({exc})", file=path) from None
    parents: dict[str, str] = {}
    pending = [tree]
    while pending:
        node = pending.pop()
        if not isinstance(node, dict) or not isinstance(node.get("LabelName"), str):
            raise ParseError("expected nodes {'LabelName': MID, 'Subcategory': [...]}", file=path)
        for child in node.get("Subcategory") or []:
            if isinstance(child, dict) and isinstance(child.get("LabelName"), str):
                parents.setdefault(child["LabelName"], node["LabelName"])
            pending.append(child)
    return parents


def _sizes(folder: Path) -> dict[str, tuple[int, int]]:
    """ImageID -> (width, height) from ``images.meta`` (``ImageID height width``)."""
    path, sizes = folder / SIZES, {}
    shapes: dict[tuple[int, int], tuple[int, int]] = {}  # one tuple per distinct size: a few, not one per image
    if path.is_file():
        for number, line in enumerate(read_text(path, SIZES).splitlines(), start=1):
            tokens = line.split()
            if not tokens or tokens[0].startswith("#"):
                continue
            if len(tokens) != 3 or not all(t.isascii() and t.isdigit() and int(t) > 0 for t in tokens[1:]):
                raise ParseError("expected 'ImageID height width' (sizes > 0)", file=path, location=f"line {number}")
            size = (int(tokens[2]), int(tokens[1]))
            sizes[tokens[0]] = shapes.setdefault(size, size)
    return sizes


def _image_id(text: str, path: Path, number: int) -> str:
    if not text or "/" in text or "\\" in text or text in (".", ".."):
        raise UnsafePathError(f"expected an ImageID (a file stem), found {text!r}", file=path, location=f"row {number}")
    return text


# ---------------------------------------------------------------------------------------------- read


class _Image:
    """What the tables say of one image (its box rows only when they are gathered rather than streamed)."""

    __slots__ = ("labels", "masks", "negative", "rows")

    def __init__(self) -> None:
        self.rows: list[_BoxRow] = []
        self.masks: list[tuple[Path, int, dict[str, str]]] = []
        self.labels: list[str] = []
        self.negative: list[str] = []


#: split -> ImageID -> what the image-level tables (and gathered box rows) say of it, ``None`` for nothing.
_Splits = dict[str, dict[str, "_Image | None"]]


def _bbox_files(tables: dict[str, list[Path]]) -> dict[str, list[Path]]:
    """split -> its bbox tables, in table order."""
    files: dict[str, list[Path]] = {}
    for path in tables["bbox"]:
        match = BBOX.match(path.name)
        assert match is not None
        files.setdefault(match["split"], []).append(path)
    return files


def _gather_boxes(path: Path, images: dict[str, _Image | None]) -> None:
    for image_id, row in _box_rows(path):
        image = images.get(image_id)
        if image is None:
            image = images[image_id] = _Image()
        image.rows.append(row)


def _gather(tables: dict[str, list[Path]], runs: dict[str, list[str] | None]) -> _Splits:
    """split -> ImageID -> what the tables say of it, images in the order they first appear; the box rows of a
    split with ``runs`` (its boxed images in row order) are left to stream, the others are gathered."""
    splits: _Splits = {}
    for path in tables["lists"]:
        for number, row in _rows(path, ("ImageID", "Subset")):
            splits.setdefault(row["Subset"], {}).setdefault(_image_id(row["ImageID"], path, number), None)
    for split, paths in _bbox_files(tables).items():
        images = splits.setdefault(split, {})
        boxed = runs.get(split)
        if boxed is not None:
            images.update((image_id, images.get(image_id)) for image_id in boxed)
        else:
            for path in paths:
                _gather_boxes(path, images)
    for kind, columns, pattern in (("labels", LABEL_COLUMNS, LABELS), ("masks", MASK_COLUMNS, MASKS)):
        for path in tables[kind]:
            match = pattern.match(path.name)
            assert match is not None
            images = splits.setdefault(match["split"], {})
            for number, row in _rows(path, columns):
                image_id = _image_id(row["ImageID"], path, number)
                image = images.get(image_id)
                if image is None:
                    image = images[image_id] = _Image()
                if kind == "masks":
                    image.masks.append((path, number, row))
                elif row["Confidence"] not in ("0", "1"):
                    raise InvalidDataError(f"expected Confidence 0 or 1, found {row['Confidence']!r}", file=path,
                                           location=f"row {number}")  # fmt: skip
                else:
                    (image.labels if row["Confidence"] == "1" else image.negative).append(row["LabelName"])
    return splits


def _split_images(
    images: dict[str, _Image | None], streamed: list[Path] | None
) -> Iterator[tuple[str, _Image | None, list[_BoxRow]]]:
    """``(ImageID, image, its box rows)`` in the split's image order; with ``streamed`` (its bbox tables, grouped by
    image in that order) the rows come from the tables as they are read, one image's at a time."""
    if streamed is None:
        yield from ((image_id, image, image.rows if image else []) for image_id, image in images.items())
        return
    order = iter(images.items())
    rows = chain.from_iterable(_box_rows(path) for path in streamed)
    for boxed_id, group in groupby(rows, key=itemgetter(0)):
        for image_id, image in order:
            if image_id == boxed_id:
                yield image_id, image, [row for _, row in group]
                break
            yield image_id, image, []
        else:
            raise AssertionError(f"{boxed_id!r}: the scan of the bbox tables and their rows disagree")
    yield from ((image_id, image, []) for image_id, image in order)


def _mask_file(roots: list[Path], split: str, mask: str, path: Path, number: int) -> Path:
    try:
        check_relative_path(mask)
    except ValueError as exc:
        raise UnsafePathError(str(exc), file=path, location=f"row {number}") from None
    for folder in (f"masks/{split}/", f"{split}-masks/", "masks/", ""):
        for root in roots:
            if (root / folder / mask).is_file():
                return root / folder / mask
    raise InvalidDataError(f"the mask {mask!r} is not in masks/{split}/ or {split}-masks/", file=path,
                           location=f"row {number}")  # fmt: skip


def _image_record(
    image_id: str,
    image: _Image | None,
    rows: list[_BoxRow],
    picture: str,
    size: tuple[int, int] | None,
    names: dict[str, str],
    roots: list[Path],
    split: str,
) -> dict[str, Any]:
    def name(mid: str) -> str:
        return names.get(mid, mid)

    masks = image.masks if image is not None else []
    if size is None and (rows or masks):
        file, number = rows[0][:2] if rows else masks[0][:2]
        message = f"no image {picture!r} and no size for {image_id!r} in {SIZES}; expected one of them"
        raise InvalidDataError(f"{message} (boxes are fractions of the image size)", file=file,
                               location=f"row {number}", image=picture)  # fmt: skip
    width, height = size if size is not None else (None, None)
    boxes = []
    for path, number, mid, cells in rows:
        try:
            boxes.append(_cells_to_box(cells, name(mid), width, height))  # type: ignore[arg-type]
        except ValueError as exc:
            raise InvalidDataError(str(exc), file=path, location=f"row {number}", image=picture) from None
    for path, number, row in masks:
        assert width is not None and height is not None
        mask_row = dict(zip(BOX_CELLS, (row[c] for c in MASK_BOX_CELLS), strict=False))
        try:
            box = openimages_row_to_box(row=mask_row, name=name(row["LabelName"]), width=width, height=height)
        except ValueError as exc:
            raise InvalidDataError(str(exc), file=path, location=f"row {number}", image=picture) from None
        rle = mask_png_to_rle(path=_mask_file(roots, split, row["MaskPath"], path, number), width=width, height=height)
        same = [b for b in boxes if "rle" not in b and all(b[k] == box[k] for k in ("name", "x1", "y1", "x2", "y2"))]
        target = same[0] if same else box
        if not same:
            boxes.append(box)
        target["rle"] = rle
        target.setdefault("attributes", {})["box_id"] = row["BoxID"]
    negative = list(dict.fromkeys(name(m) for m in image.negative)) if image is not None else []
    attributes = {"negative_labels": negative} if negative else None
    labels = [name(m) for m in image.labels] if image is not None else []
    return make_record(
        image=picture, width=width, height=height, boxes=boxes, id=image_id, labels=labels, attributes=attributes
    )


def _read(source: Path, ctx: ReadContext) -> ReadResult:
    writer = ctx.sink
    folder = _annotation_dir(source) if source.is_dir() else source
    tables = _tables(folder) if source.is_dir() else {}
    if not tables or not any(tables[k] for k in ("bbox", "labels", "lists", "masks")):
        raise ParseError(
            "no Open Images tables here: expected <split>-annotations-bbox.csv, image labels or image lists",
            file=source,
        )
    for path in _source_files(source, ctx.options):
        writer.add_source_file(path)
    names = _descriptions(tables["descriptions"])
    parents = _parents(folder)
    bbox_files = _bbox_files(tables)
    runs = {split: _scan_runs(paths) for split, paths in bbox_files.items()}
    splits = _gather(tables, runs)
    streamed: dict[str, list[Path]] = {}
    for split, boxed in runs.items():
        if boxed is not None and _in_order(boxed, splits[split]):
            streamed[split] = bbox_files[split]
        elif boxed is not None:  # the image lists put the boxed images in another order: gather their rows
            for path in bbox_files[split]:
                _gather_boxes(path, splits[split])
    del runs
    base = folder.parent if folder != source else source
    image_root = ctx.images or (base / "images" if (base / "images").is_dir() else base)
    sizes = _sizes(folder)
    if ctx.options.get("classes") is not None:
        for listed in read_class_list(str(ctx.options["classes"])).names:
            writer.category(listed)
    # Records name their classes; the categories (the used ones, in the descriptions' order) are declared once
    # every row has been read, so that streamed rows need not be kept.
    used: set[str] = set()
    roots = [base, folder]
    writer.expect(sum(len(images) for images in splits.values()))
    for split, images in splits.items():
        writer.declare_split(split)
        prefix = f"{split}/" if (image_root / split).is_dir() else ""
        index = images_by_stem(image_root / prefix)
        for image_id, image, rows in _split_images(images, streamed.get(split)):
            used.update(row[2] for row in rows)
            if image is not None:
                used.update(image.labels, image.negative, (row["LabelName"] for _, _, row in image.masks))
            found = index.get(image_id)
            picture = prefix + (found or f"{image_id}.jpg")
            size = (read_image_size(image_root / picture) if found else None) or sizes.get(image_id)
            try:
                record = _image_record(image_id, image, rows, picture, size, names, roots, split)
            except AnnonormError as error:
                error.image = error.image or picture
                writer.problem(error)
                continue
            # canonical: make_record's key order, rounded corners, no None (a mask's box is not in box key order)
            writer.add(split, record, canonical=size is not None and not (image is not None and image.masks))
    for mid in [*(m for m in names if m in used), *sorted(used - set(names))]:
        parent = parents.get(mid)
        writer.category(names.get(mid, mid), source_id=mid, supercategory=names.get(parent, parent) if parent else None)
    return ReadResult(name=base.resolve().name or "openimages", image_root=image_root)


# ---------------------------------------------------------------------------------------------- write


def _csv(path: Path, header: tuple[str, ...], rows: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as stream:
        table = csv.writer(stream, lineterminator="\n")
        table.writerow(header)
        table.writerows(rows)


def _write(dataset: NormalizedSource, out: Path, options: Mapping[str, Any]) -> None:
    folder = out / "annotations"
    folder.mkdir(parents=True)
    mids = {c.name: c.source_id if isinstance(c.source_id, str) else c.name for c in dataset.manifest.categories}
    _csv(folder / "class-descriptions.csv", ("LabelName", "DisplayName"), [[m, n] for n, m in mids.items()])
    listed: list[list[str]] = []
    sizes: list[str] = []
    seen: dict[str, str] = {}
    for split in dataset.manifest.splits:
        boxes: list[list[str]] = []
        labels: list[list[str]] = []
        for number, record in enumerate(dataset.records(split), start=1):
            file, location = dataset.split_path(split), f"record {number}"
            image_id = PurePosixPath(record["image"]).stem
            if image_id in seen:
                message = f"images {seen[image_id]!r} and {record['image']!r} share the ImageID {image_id!r}"
                raise InvalidDataError(
                    f"{message}; Open Images names an image by its stem", file=file, location=location
                )
            seen[image_id] = record["image"]
            width, height = record.get("width"), record.get("height")
            if width is None or height is None:
                raise InvalidDataError(
                    "the image size is unknown; Open Images boxes are fractions of it", file=file, location=location
                )
            listed.append([image_id, split])
            sizes.append(f"{image_id} {height} {width}\n")
            boxes += [box_to_openimages_row(box=b, image_id=image_id, mid=mids[b["name"]], width=width, height=height)
                      for b in record["boxes"]]  # fmt: skip
            labels += [[image_id, "verification", mids[n], "1"] for n in record["labels"]]
            negative = (record.get("attributes") or {}).get("negative_labels") or []
            labels += [[image_id, "verification", mids.get(n, n), "0"] for n in negative]
        _csv(folder / f"{split}-annotations-bbox.csv", (*BOX_COLUMNS, *FLAGS), boxes)
        _csv(folder / f"{split}-annotations-human-imagelabels.csv", LABEL_COLUMNS, labels)
    _csv(folder / "image_ids_and_rotation.csv", ("ImageID", "Subset"), listed)
    (folder / SIZES).write_text("".join(sizes), encoding="utf-8", newline="")


# ---------------------------------------------------------------------------------------------- the converter


class OpenimagesConverter(Converter):
    """Open Images V5-V7 tables (boxes, image-level labels, masks, hierarchy); boxes and labels both ways."""

    name = "openimages"
    summary = "Open Images V7 folder: *-annotations-bbox.csv, class-descriptions, image labels, masks, hierarchy"
    read_options = (Option("classes", "The classes and their order (a class list file or A,B,C); the others follow"),)
    capabilities = Capabilities(
        image_labels=True,
        reader_ids=True,
        image_folders=False,
        needs_image_files=True,
        reserved_attributes=frozenset({*FLAGS.values(), "source", "confidence", "box_id", "negative_labels"}),
        added_attributes=frozenset({"source", "confidence"}),
    )

    @classmethod
    def sniff(cls, source: Path) -> bool:
        return _sniff(source)

    @classmethod
    def source_files(cls, source: Path, options: Mapping[str, Any]) -> list[Path]:
        return _source_files(source, options)

    def read(self, source: Path, ctx: ReadContext) -> ReadResult:
        return _read(source, ctx)

    def write(self, dataset: NormalizedSource, out: Path, *, options: Mapping[str, Any]) -> None:
        _write(dataset, out, options)
