"""CSV tables of boxes or image labels: TensorFlow object detection, VoTT, Kaggle, Open Images, your own.

There is no one CSV annotation format, only habits. The TensorFlow object detection tutorials
popularised ``filename,width,height,class,xmin,ymin,xmax,ymax`` (one row per box, absolute pixel
corners, no +1); Microsoft VoTT exports ``image,xmin,ymin,xmax,ymax,label`` (one CSV per split,
``<split>-export.csv``); Kaggle competitions ship ``image_name,label_name`` classification tables,
one-hot ``image_name,dog,cat,...`` multi-label tables and detection tables with ``x1,y1,x2,y2``,
``x1,y1,w,h`` or a single ``bbox`` cell; Open Images v6 keeps ``ImageID,Source,LabelName,Confidence,
XMin,XMax,YMin,YMax,...`` with coordinates as fractions (0..1) of the image side, images named by
id without an extension, class codes (``/m/0``) resolved through a class-descriptions CSV, and
``Confidence`` 0 meaning "verified absent"; crowd-counting tables have one count column per class.

So this reader is driven by a column mapping: ``--column ROLE=COLUMN`` where COLUMN is a header
name or a 0-based index, and ROLE is one of

    image                       the image path, relative to the image directory
    label                       the class (of the row's box, or of the image when there is no box)
    x1 y1 x2 y2                 box corners                         (--box-format xyxy)
    x y w h                     top-left corner, width, height      (--box-format xywh)
    cx cy w h                   centre, width, height               (--box-format cxcywh)
    bbox                        one cell holding 4 numbers in --box-format order: "[0,1,1,2]", "0 1 1 2"
    width height                the image size (else read from the image file's header)
    split                       the split of the row's image
    count                       the number of items of the row's class (with ``label``)
    confidence                  a row whose confidence is <= 0 adds nothing but its image

plus ``--count-columns`` (one column per class holding a count; ``*`` = every unmapped column) and
``--label-columns`` (one-hot: a non-zero cell means the class is present). ``--preset`` fills the
mapping for the layouts above; explicit options win over a preset. Without a mapping or preset the
header is matched against every preset (``auto``).

Rules this reader applies (each documented where the option is declared):

- Rows name one box each (any box role mapped) or describe their image (labels, counts). Rows of one
  image are grouped wherever they are in the file, and records keep first-seen order. When a scan
  of the image column finds each image's rows adjacent (as exporters write them), the file is
  read in one pass, a large one in two halves by two processes; otherwise a first pass remembers
  the last row of each image and a record is written as soon as its last row has been read.
  Either way memory grows with images, not rows, and the output is the same.
- A row whose box cells are all empty lists its image without a box (exports do that for images
  with no object); a class on such a row becomes an image-level label.
- The delimiter is sniffed (``csv.Sniffer`` over the first 16 KiB, among ``, ; tab | space``) unless
  ``--delimiter`` is given. Cells are stripped of surrounding spaces. A UTF-8 byte order mark is
  dropped; bytes that are not UTF-8 are a :class:`~annonorm.errors.ParseError` naming the row.
- Numbers have a decimal point unless ``--decimal ,``: then a decimal comma (``0,3580246914``, as a
  European locale writes it, between ``;`` or in quoted ``,`` cells), and a point is refused (it
  may be a thousands mark). A cell that reads only with the other mark says so in its error.
- A source that holds no table of annotations (no data row under the header, JSON, XML or binary
  bytes, a folder without ``.csv``) is a :class:`~annonorm.errors.ParseError` starting "no CSV
  annotations here", never an empty dataset. A CSV file must be a regular file (not a FIFO or device).
- ``--header auto``: the first row is a header when the mapping names a column by its header name
  (a preset's layout is chosen by the names the first row holds); with a mapping by index only,
  when a numeric column's first cell is not a number, else when ``csv.Sniffer.has_header`` says so.
- A row with more cells than the header is an error unless the extra cells are empty (a trailing
  delimiter); a shorter row is an error unless ``--short-rows pad``.
- An image name that is not a file under the image directory is looked up with a common image
  extension appended (Kaggle and Open Images list ids), then under a sub-directory named after its
  split (Open Images keeps ``images/<subset>/``). The record keeps the path that was found.
- Categories are declared in first-seen order, or in the order of ``--classes`` (one name per line;
  a ``dataset_meta.json`` with ``labels``; or a two-column ``code,name`` CSV such as Open Images'
  class descriptions, whose code becomes the category's ``source_id``).
- The split is the ``split`` column, else ``--split``, else a split name found in the file name
  (``train-export.csv``, ``oidv6-train-annotations-bbox.csv``, ``val.csv``), else ``train``.
- Row numbers in messages are 1-based and count the header row.

The writer emits one ``<split>.csv`` per split in the TensorFlow layout (or ``--layout vott``), one
row per box with absolute corners (at most 6 decimals, trailing zeros dropped), one row with empty
box cells for each image label that no box carries and for an image with no box at all, and a
``classes.txt`` with the categories in order. CSV has no place for attributes, masks, ids, or
counts beyond the boxes: they are not written.
"""

from __future__ import annotations

import csv
import errno
import io
import math
import os
import re
import shutil
import stat
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain, compress, groupby, islice, repeat
from operator import itemgetter, ne
from pathlib import Path, PurePosixPath
from typing import IO, Any, ClassVar, NoReturn

import numpy as np

from annonorm.converters.base import (
    Capabilities,
    Converter,
    Option,
    ReadContext,
    ReadResult,
    make_record,
    workers_option,
)
from annonorm.engine import Executor, LocalExecutor
from annonorm.errors import AnnonormError, InvalidDataError, ParseError, UnsafePathError, UsageError
from annonorm.fsutil import open_regular, require_regular_file
from annonorm.geometry import round_coord, round_coords, scale, to_corners
from annonorm.images import read_image_size
from annonorm.io import NormalizedSource
from annonorm.paths import check_relative_path
from annonorm.sink import DatasetWriter, SplitSummary
from annonorm.sources.classlists import ClassList, read_class_list
from annonorm.sources.images import IMAGE_EXTENSIONS, IMAGE_SUFFIXES

__all__ = [
    "PRESETS",
    "CsvConverter",
    "Preset",
    "Variant",
    "bbox_cell_to_values",
    "csv_box_to_corners",
    "record_to_csv_rows",
    "sniff_delimiter",
]

# ---------------------------------------------------------------------------------------------- constants

#: Box roles per box format, in the order a ``bbox`` cell holds them.
BOX_FORMATS: dict[str, tuple[str, str, str, str]] = {
    "xyxy": ("x1", "y1", "x2", "y2"),
    "xywh": ("x", "y", "w", "h"),
    "cxcywh": ("cx", "cy", "w", "h"),
}
COORD_ROLES = frozenset(role for roles in BOX_FORMATS.values() for role in roles)
NUMERIC_ROLES = COORD_ROLES | {"width", "height", "count", "confidence"}
ROLES = (
    "image",
    "label",
    *BOX_FORMATS["xyxy"],
    *BOX_FORMATS["xywh"],
    *BOX_FORMATS["cxcywh"][:2],
    "bbox",
    "width",
    "height",
    "split",
    "count",
    "confidence",
)
#: Names a split is recognised by inside a file name.
SPLIT_NAMES = ("train", "val", "valid", "validation", "test", "trainval", "dev")
DEFAULT_SPLIT = "train"
SNIFF_BYTES = 16 * 1024
SNIFF_DELIMITERS = ",;\t| "
SPLIT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
ALL_OTHER_COLUMNS = "*"
#: A normalized coordinate may exceed 1 by this much (rounding in the exporting tool).
NORMALIZED_SLACK = 1e-6
#: Bytes the streaming reader decodes and splits at a time: small enough for a block's cells to stay
#: in the CPU cache (64 KiB ran 1.5x faster than 1 MiB), large enough to amortise the per-block work.
CHUNK_BYTES = 64 * 1024
#: Rows per block when ``csv.reader`` splits them (files with quote characters).
BLOCK_ROWS = 2048
#: Files at least this large are streamed in two halves by two processes, when there are two cores.
PARALLEL_MIN_BYTES = 8 << 20
#: Decimal marks of ``--decimal``: a European locale writes ``0,35`` (with ``;`` cells, or quoted ``,`` ones).
DECIMALS = (".", ",")
DECIMAL_HINT = " (use --decimal , for decimal commas)"
#: How a source that holds no CSV table of annotations is refused, and what was expected instead.
NOT_CSV = "no CSV annotations here: "
EXPECTED_TABLE = "expected a delimited table, one row per box or image (e.g. filename,class,xmin,ymin,xmax,ymax)"

#: Writer layouts: (header, record field) pairs. Field names are record keys or box corner names.
LAYOUTS: dict[str, tuple[tuple[str, str], ...]] = {
    "tensorflow": (
        ("filename", "image"),
        ("width", "width"),
        ("height", "height"),
        ("class", "label"),
        ("xmin", "x1"),
        ("ymin", "y1"),
        ("xmax", "x2"),
        ("ymax", "y2"),
    ),
    "vott": (
        ("image", "image"),
        ("xmin", "x1"),
        ("ymin", "y1"),
        ("xmax", "x2"),
        ("ymax", "y2"),
        ("label", "label"),
    ),
}


@dataclass(frozen=True)
class Variant:
    """One column layout of a preset: role -> header name (or index), and how to read it."""

    columns: Mapping[str, str | int]
    box_format: str | None = None
    normalized: bool = False
    label_columns: tuple[str, ...] = ()

    @property
    def by_name(self) -> bool:
        """Whether this layout needs a header (it names its columns)."""
        return any(isinstance(c, str) for c in self.columns.values()) or bool(self.label_columns)


@dataclass(frozen=True)
class Preset:
    """A named layout: the first variant whose columns the file has is used."""

    name: str
    summary: str
    variants: tuple[Variant, ...]


def _layout_columns(layout: str) -> dict[str, str]:
    # A layout's record fields are reader roles too ("image", "label", "x1"...).
    return {role: header for header, role in LAYOUTS[layout]}


_TF_WITHOUT_SIZE = {k: v for k, v in _layout_columns("tensorflow").items() if k not in ("width", "height")}
_KAGGLE_BOXES: tuple[dict[str, str | int], ...] = (
    {"x1": "x1", "y1": "y1", "x2": "x2", "y2": "y2"},
    {"x": "x1", "y": "y1", "w": "w", "h": "h"},  # Kaggle's "x1,y1,w,h": top-left corner plus size
    {"bbox": "bbox"},
)
_OPEN_IMAGES_BOX = {"x1": "XMin", "x2": "XMax", "y1": "YMin", "y2": "YMax"}
_OPEN_IMAGES_SEGMENT_BOX = {"x1": "BoxXMin", "x2": "BoxXMax", "y1": "BoxYMin", "y2": "BoxYMax"}
_OPEN_IMAGES_LABEL = {"image": "ImageID", "label": "LabelName", "confidence": "Confidence"}

PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(
            "tensorflow",
            "TensorFlow object detection CSV: filename,width,height,class,xmin,ymin,xmax,ymax (absolute pixels)",
            (Variant(_layout_columns("tensorflow"), "xyxy"), Variant(_TF_WITHOUT_SIZE, "xyxy")),
        ),
        Preset(
            "vott",
            "VoTT CSV export: image,xmin,ymin,xmax,ymax,label (absolute pixels, <split>-export.csv)",
            (Variant(_layout_columns("vott"), "xyxy"),),
        ),
        Preset(
            "kaggle-det",
            "Kaggle detection: image_name,label_name + x1,y1,x2,y2 | x1,y1,w,h | bbox; headerless with 6 columns",
            (
                *(Variant({"image": "image_name", "label": "label_name", **box}) for box in _KAGGLE_BOXES),
                Variant({"image": 0, "label": 1, "x1": 2, "y1": 3, "x2": 4, "y2": 5}, "xyxy"),
            ),
        ),
        Preset(
            "kaggle-cls",
            "Kaggle classification: image_name,label_name; one-hot image_name,<class>...; headerless image label",
            (
                Variant({"image": "image_name", "label": "label_name"}),
                Variant({"image": "image_name"}, label_columns=(ALL_OTHER_COLUMNS,)),
                Variant({"image": 0, "label": 1}),
            ),
        ),
        Preset(
            "roboflow-multiclass",
            "Roboflow multi-label classification _classes.csv: filename, <class>, ... (one-hot)",
            (Variant({"image": "filename"}, label_columns=(ALL_OTHER_COLUMNS,)),),
        ),
        Preset(
            "open-images",
            "Open Images v5/v6 CSVs: boxes (normalized), human image labels, segmentation boxes, image lists",
            (
                Variant({**_OPEN_IMAGES_LABEL, **_OPEN_IMAGES_BOX}, "xyxy", normalized=True),
                Variant(
                    {"image": "ImageID", "label": "LabelName", **_OPEN_IMAGES_SEGMENT_BOX}, "xyxy", normalized=True
                ),
                Variant(_OPEN_IMAGES_LABEL),
                Variant({"image": "ImageID", "split": "Subset"}),
            ),
        ),
    )
}

# ---------------------------------------------------------------------------------------------- sniff


def _looks_like_table(line: str) -> bool:
    if not line.strip() or line.lstrip()[:1] in ("{", "[", "<"):
        return False
    return any(len([c for c in line.split(d) if c.strip()]) >= 2 for d in SNIFF_DELIMITERS if d != " ") or (
        len(line.split()) >= 2
    )


def sniff_delimiter(sample: str) -> str:
    """The delimiter of a CSV sample (``csv.Sniffer`` among ``, ; tab | space``), ``,`` when it cannot tell."""
    lines = [line for line in sample.splitlines() if line.strip()]
    if not lines:
        return ","
    try:
        delimiter = csv.Sniffer().sniff("\n".join(lines[:50]), delimiters=SNIFF_DELIMITERS).delimiter
    except csv.Error:
        # One column, or too few rows for the Sniffer's statistics: take the first candidate present.
        first = lines[0]
        delimiter = next((d for d in SNIFF_DELIMITERS if d in first), ",")
    if delimiter == " " and any(d in lines[0] for d in ",;\t|"):
        # "1.jpg, dog" sniffs as space-separated; a real separator in the first line wins.
        delimiter = next(d for d in ",;\t|" if d in lines[0])
    return delimiter


# ---------------------------------------------------------------------------------------------- mapping functions


def bbox_cell_to_values(*, text: str, decimal: str = ".") -> tuple[float, float, float, float] | None:
    """Parse a cell holding 4 numbers (``"[0,1,1,2]"``, ``"1, 2, 3, 3"``, ``"0 0 1 1"``); ``None`` when empty.

    With ``decimal=","`` the numbers have decimal commas and are separated by ``;`` or spaces
    (``"0,1; 0,2; 0,5; 0,6"``). Raises :class:`ValueError` when the cell holds anything but 4 finite numbers.
    """
    inner = text.strip().strip("[]()").strip()
    if not inner:
        return None
    parts = [p for p in re.split(r"[,;\s]+" if decimal == "." else r"[;\s]+", inner) if p]
    if len(parts) != 4:
        raise ValueError(f"expected 4 numbers, found {len(parts)}")
    values = tuple(_finite(p, decimal) for p in parts)
    return values[0], values[1], values[2], values[3]


def _comma_float(text: str) -> float:
    """``float`` of a number with a decimal comma (``"0,35"``); one with a ``.`` (a thousands mark?) is refused."""
    if "." in text:
        raise ValueError(f"{text!r} has a '.' but the decimal mark is ','")
    return float(text.replace(",", "."))


#: The parser of one number cell, per decimal mark (``float`` ignores surrounding spaces, as stripping does).
_PARSE_NUMBER: dict[str, Callable[[str], float]] = {".": float, ",": _comma_float}


def _finite(text: str, decimal: str = ".") -> float:
    value = _PARSE_NUMBER[decimal](text)
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def _is_number(text: str, decimal: str = ".") -> bool:
    try:
        _PARSE_NUMBER[decimal](text)
    except ValueError:
        return False
    return True


def _decimal_hint(text: str, decimal: str, bbox: bool = False) -> str:
    """For a cell that is no number with ``decimal`` but reads with the other mark, a hint that says so; else ``""``."""
    other = "," if decimal == "." else "."
    if other not in text:
        return ""
    try:
        bbox_cell_to_values(text=text, decimal=other) if bbox else _finite(text, other)
    except ValueError:
        return ""
    return DECIMAL_HINT if other == "," else " (--decimal , is given: expected a decimal comma)"


def csv_box_to_corners(
    *,
    values: Sequence[float],
    box_format: str,
    normalized: bool,
    width: int | None,
    height: int | None,
) -> tuple[float, float, float, float]:
    """Turn 4 CSV numbers in ``box_format`` into absolute pixel corners ``(x1, y1, x2, y2)``.

    ``normalized`` values are fractions of the image side and need ``width`` and ``height``.
    """
    a, b, c, d = values
    x1, y1, x2, y2 = to_corners(box_format, a, b, c, d)  # xyxy as it is: no 1-based shift in CSV exports
    if normalized:
        if width is None or height is None:
            raise ValueError("normalized coordinates need the image size")
        # Fractions of the image side (0..1): x by the width, y by the height.
        x1, y1, x2, y2 = scale(x1, y1, x2, y2, width, height)
    return round_coord(x1), round_coord(y1), round_coord(x2), round_coord(y2)


def _format_number(value: float) -> str:
    # At most 6 decimals, trailing zeros dropped: 8 -> "8", 12.5 -> "12.5".
    text = f"{round_coord(float(value)):.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def record_to_csv_rows(*, record: Mapping[str, Any], layout: str) -> list[list[str]]:
    """The CSV rows of one record in ``layout``: one per box, one per unboxed label, one for a bare image."""
    fields = [name for _, name in LAYOUTS[layout]]
    size = {
        "image": str(record["image"]),
        "width": "" if record.get("width") is None else str(record["width"]),
        "height": "" if record.get("height") is None else str(record["height"]),
    }
    rows = []
    boxes = record.get("boxes") or ()
    for box in boxes:
        values = {**size, "label": box["name"], **{k: _format_number(box[k]) for k in ("x1", "y1", "x2", "y2")}}
        rows.append([values[f] for f in fields])
    boxed = {box["name"] for box in boxes}
    for label in record.get("labels") or ():
        if label not in boxed:
            rows.append([{**size, "label": label}.get(f, "") for f in fields])
    if not rows:
        rows.append([size.get(f, "") for f in fields])
    return rows


# ---------------------------------------------------------------------------------------------- reading: files


class _DecodeFailure(Exception):
    def __init__(self, line: int, error: UnicodeDecodeError) -> None:
        super().__init__(str(error))
        self.line = line
        self.error = error


def _decoded_lines(stream: IO[bytes]) -> Iterator[str]:
    for number, raw in enumerate(stream, start=1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]  # UTF-8 byte order mark (Excel writes one)
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _DecodeFailure(number, exc) from None


def _iter_rows(path: Path, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(row number, stripped cells)``, 1-based, counting every row (the header and blank ones)."""
    stream = open_regular(path, "CSV file")
    row = 0
    with stream:
        reader = csv.reader(_decoded_lines(stream), delimiter=delimiter, quotechar='"', skipinitialspace=True)
        try:
            for cells in reader:
                row += 1
                yield row, [cell.strip() for cell in cells]
        except _DecodeFailure as exc:
            raise ParseError(
                f"{NOT_CSV if exc.line == 1 else ''}line {exc.line} is not UTF-8 (byte "
                f"{exc.error.object[exc.error.start]:#04x} at offset {exc.error.start}); expected a UTF-8 text file",
                file=path,
                location=f"row {row + 1}",
            ) from None
        except csv.Error as exc:
            raise ParseError(f"not valid CSV: {exc}", file=path, location=f"row {row + 1}") from None


def _text_chunks(path: Path, start: int = 0, stop: int | None = None, line: int = 1) -> Iterator[tuple[int, str]]:
    """Yield ``(number of its first line, text)`` for runs of whole lines of about :data:`CHUNK_BYTES`.

    The streaming reader's source: one decode per chunk instead of one per line. Bytes ``start`` to
    ``stop`` are read (a line starts at ``start``, numbered ``line``). The byte order mark is dropped
    as :func:`_iter_rows` drops it; bytes that are not UTF-8 raise ``UnicodeDecodeError`` (the
    caller has :func:`_iter_rows` name the row).
    """
    with open_regular(path, "CSV file") as stream:
        if start == 0 and stream.read(3) != b"\xef\xbb\xbf":
            stream.seek(0)  # no UTF-8 byte order mark (Excel writes one)
        elif start:
            stream.seek(start)
        position, rest = stream.tell(), b""
        while True:
            more = stream.read(CHUNK_BYTES if stop is None else min(CHUNK_BYTES, stop - position))
            position += len(more)
            buffer = rest + more
            if not buffer:
                return
            cut = buffer.rfind(b"\n") + 1 if more else len(buffer)  # at the end, the last line has no newline
            if cut:
                text = buffer[:cut].decode("utf-8")
                yield line, text
                line += text.count("\n")
            rest = buffer[cut:]  # a line longer than a chunk stays here until its end is read


def _simple_lines(text: str, delimiter: str) -> list[str] | None:
    """The lines of a chunk when ``str.split`` cuts each into the cells ``csv.reader`` would; else ``None``.

    That holds without quote characters (no quoted field, no field spanning lines), without NUL,
    with a delimiter other than space (``skipinitialspace`` merges runs of spaces), with no
    carriage return but in CRLF endings (a lone one is a csv error) and with no line longer than
    the csv module's field size limit (which it refuses).
    """
    if delimiter == " " or '"' in text or "\x00" in text:
        return None
    if "\r" in text:
        text = text.replace("\r\n", "\n")
        if "\r" in text:
            return None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the chunk's last line ending, not a blank line
    if lines and max(map(len, lines)) > csv.field_size_limit():
        return None
    return lines


def _read_sample(path: Path) -> str:
    with open_regular(path, "CSV file") as stream:
        try:
            raw = stream.read(SNIFF_BYTES)
        except OSError as exc:
            raise ParseError(f"cannot read the CSV file: {exc.strerror}", file=path) from None
    if len(raw) == SNIFF_BYTES and b"\n" in raw:
        raw = raw[: raw.rindex(b"\n") + 1]  # the sniffer must not see a cut line
    return raw.decode("utf-8-sig", errors="replace")


def _split_from_name(path: Path) -> str | None:
    tokens = re.split(r"[-_. ]+", path.stem.lower())
    return next((token for token in tokens if token in SPLIT_NAMES), None)


def _source_files(source: Path) -> list[Path]:
    """The CSV files of ``source``, each a regular file (a FIFO or a device named ``x.csv`` is refused)."""
    files = [source]
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() == ".csv" and not p.is_dir())
        if not files:
            raise ParseError(
                f"{NOT_CSV}no .csv file in this directory; expected a CSV file or a folder of them", file=source
            )
    for path in files:
        require_regular_file(path, "CSV file")
    return files


# ---------------------------------------------------------------------------------------------- reading: the table


def _parse_column_options(values: Iterable[str]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for value in values:
        role, sep, column = value.partition("=")
        role, column = role.strip(), column.strip()
        if not sep or not column:
            raise UsageError(f"--column {value!r}: expected ROLE=COLUMN, e.g. image=filename")
        if role not in ROLES:
            raise UsageError(f"--column {value!r}: unknown role {role!r}; expected one of {', '.join(ROLES)}")
        if role in mapping:
            raise UsageError(f"--column: role {role!r} is given twice")
        mapping[role] = column
    return mapping


def _box_roles(roles: Iterable[str]) -> set[str]:
    return {r for r in roles if r in COORD_ROLES or r == "bbox"}


@dataclass
class _Table:
    """One CSV file, its dialect and its resolved column mapping."""

    path: Path
    delimiter: str
    header: list[str] | None
    width: int  # number of cells a row has
    columns: dict[str, int]
    box_format: str | None
    normalized: bool
    count_columns: list[tuple[str, int]]
    label_columns: list[tuple[str, int]]
    default_split: str
    decimal: str = "."  # the decimal mark of number cells

    def column_name(self, index: int) -> str:
        """How messages name a column: its header name, else its 0-based index."""
        if self.header is not None and index < len(self.header) and self.header[index]:
            return repr(self.header[index])
        return str(index)

    def where(self, row: int, index: int | None = None) -> str:
        """``row N`` or ``row N, column C``."""
        return f"row {row}" if index is None else f"row {row}, column {self.column_name(index)}"

    def data_rows(self, short_rows: str) -> Iterator[tuple[int, list[str]]]:
        """Data rows (header skipped, blank rows dropped), checked against the table's width."""
        for number, cells in _iter_rows(self.path, self.delimiter):
            if self.header is not None and number == 1:
                continue
            checked = self.check_row(number, cells, short_rows)
            if checked is not None:
                yield number, checked

    def check_row(self, number: int, cells: list[str], short_rows: str) -> list[str] | None:
        """A data row's stripped cells cut or padded to the table's width; ``None`` for a blank row."""
        if not any(cells):
            return None
        if len(cells) > self.width:
            if any(cells[self.width :]):
                raise ParseError(
                    f"row has {len(cells)} cells but the {'header' if self.header else 'first row'} "
                    f"has {self.width}; expected the same number in every row",
                    file=self.path,
                    location=f"row {number}",
                )
            return cells[: self.width]  # a trailing delimiter
        if len(cells) < self.width:
            if short_rows != "pad":
                raise ParseError(
                    f"row has {len(cells)} cells but the {'header' if self.header else 'first row'} "
                    f"has {self.width}; expected the same number in every row (or pass --short-rows pad)",
                    file=self.path,
                    location=f"row {number}",
                )
            return cells + [""] * (self.width - len(cells))
        return cells


def _resolve_column(spec: str | int, header: list[str] | None, path: Path, role: str) -> int:
    if header is not None and isinstance(spec, str):
        if spec in header:
            return header.index(spec)
        folded = [h.lower() for h in header]
        if folded.count(spec.lower()) == 1:
            return folded.index(spec.lower())
    if isinstance(spec, int) or spec.isdigit():
        return int(spec)
    shown = ", ".join(header or ())
    raise ParseError(
        f"the {role} column {spec!r} is not in the header (columns: {shown})"
        if header is not None
        else f"the {role} column {spec!r} is a name but the file has no header row; use a 0-based index",
        file=path,
        location="row 1",
    )


def _first_rows(path: Path, delimiter: str) -> list[list[str]]:
    rows = []
    for _, cells in _iter_rows(path, delimiter):
        if any(cells):
            rows.append(cells)
        if len(rows) == 2:
            break
    return rows


def _header_named(first: list[str], columns: Mapping[str, str | int], extra: Sequence[str]) -> bool:
    """Whether ``first`` holds every column that ``columns``/``extra`` name (ignoring case)."""
    folded = {c.lower() for c in first}
    names = [c for c in columns.values() if isinstance(c, str) and not c.isdigit()]
    names += [c for c in extra if c != ALL_OTHER_COLUMNS]
    return bool(names) and all(n.lower() in folded for n in names)


def _decide_header(
    option: str,
    first_rows: list[list[str]],
    columns: Mapping[str, str | int],
    extra_named: Sequence[str],
    sample: str,
    decimal: str,
) -> bool:
    """Whether the first row is a header (see the module docstring for the ``auto`` rule)."""
    if option != "auto":
        return option == "yes"
    first = first_rows[0]
    if extra_named or any(isinstance(c, str) and not c.isdigit() for c in columns.values()):
        return True  # columns named by header names, or '*' taking class names from the header
    numeric = [int(c) for role, c in columns.items() if role in NUMERIC_ROLES]
    if numeric:
        return any(i < len(first) and first[i] and not _is_number(first[i], decimal) for i in numeric)
    try:
        return csv.Sniffer().has_header(sample)
    except csv.Error:
        return False


def _split_extra_columns(values: Sequence[str]) -> list[tuple[str | None, str]]:
    """``--count-columns``/``--label-columns`` values: ``COLUMN`` or ``CLASS=COLUMN``."""
    out: list[tuple[str | None, str]] = []
    for value in values:
        name, sep, column = value.partition("=")
        out.append((name.strip(), column.strip()) if sep else (None, value.strip()))
    return out


def _open_table(path: Path, options: Mapping[str, Any]) -> _Table:
    """Sniff the dialect, decide the header and resolve the column mapping of one CSV file."""
    sample = _read_sample(path)
    first_line = next((line for line in sample.splitlines() if line.strip()), "")
    if "\x00" in first_line or first_line.lstrip()[:1] in ("{", "[", "<"):
        shape = (
            "binary data or UTF-16 text (NUL bytes), not UTF-8 text"
            if "\x00" in first_line
            else f"a line starting with {first_line.lstrip()[:1]!r} (JSON or XML)"
        )
        raise ParseError(f"{NOT_CSV}the file holds {shape}; {EXPECTED_TABLE}", file=path, location="row 1")
    delimiter = options.get("delimiter") or sniff_delimiter(sample)
    if delimiter == "\\t":
        delimiter = "\t"
    if len(delimiter) != 1:
        raise UsageError(f"--delimiter {delimiter!r}: expected one character")
    first_rows = _first_rows(path, delimiter)
    if not first_rows:
        raise ParseError(f"{NOT_CSV}the file holds no row; {EXPECTED_TABLE}", file=path)
    decimal = options.get("decimal") or "."
    explicit = _parse_column_options(options.get("column") or ())
    count_specs = _split_extra_columns(options.get("count_columns") or ())
    label_specs = _split_extra_columns(options.get("label_columns") or ())
    preset_name = options.get("preset") or "auto"
    header_option = options.get("header") or "auto"

    columns: dict[str, str | int] = dict(explicit)
    box_format = options.get("box_format")
    normalized = options.get("normalized")
    extra_named = [c for _, c in count_specs + label_specs]
    if preset_name != "none" and (preset_name != "auto" or not (explicit or count_specs or label_specs)):
        variant = _choose_variant(path, preset_name, first_rows, explicit, extra_named, header_option)
        preset_columns = dict(variant.columns)
        if _box_roles(explicit):
            preset_columns = {r: c for r, c in preset_columns.items() if r not in COORD_ROLES and r != "bbox"}
        columns = {**preset_columns, **explicit}
        if box_format is None and not _box_roles(explicit):
            box_format = variant.box_format
        if normalized is None:
            normalized = variant.normalized
        if not label_specs and not count_specs:
            label_specs = [(None, c) for c in variant.label_columns]
    has_header = _decide_header(header_option, first_rows, columns, extra_named, sample, decimal)
    header = first_rows[0] if has_header else None
    width = len(first_rows[0])

    if "image" not in columns:
        raise UsageError(f"{path}: no image column; pass --column image=COLUMN or a --preset")
    resolved = {role: _resolve_column(spec, header, path, role) for role, spec in columns.items()}
    for role, index in resolved.items():
        if index >= width:
            raise ParseError(
                f"the {role} column is index {index} but rows have {width} cells", file=path, location="row 1"
            )
    box_format = _check_box_roles(path, set(resolved), box_format)
    mapped = set(resolved.values())
    counts = _resolve_extra(path, count_specs, header, mapped, width, "--count-columns")
    labels = _resolve_extra(path, label_specs, header, mapped, width, "--label-columns")
    split = options.get("split") or _split_from_name(path) or DEFAULT_SPLIT
    return _Table(
        path=path,
        delimiter=delimiter,
        header=header,
        width=len(header) if header is not None else width,
        columns=resolved,
        box_format=box_format,
        normalized=bool(normalized),
        count_columns=counts,
        label_columns=labels,
        default_split=split,
        decimal=decimal,
    )


def _choose_variant(
    path: Path,
    preset_name: str,
    first_rows: list[list[str]],
    explicit: Mapping[str, str],
    extra_named: Sequence[str],
    header_option: str,
) -> Variant:
    if preset_name == "auto":
        candidates = [v for p in PRESETS.values() for v in p.variants if v.by_name]
    elif preset_name in PRESETS:
        candidates = list(PRESETS[preset_name].variants)
    else:
        raise UsageError(f"--preset {preset_name!r}: expected one of auto, none, {', '.join(PRESETS)}")
    first = first_rows[0]
    for variant in candidates:
        needed = {r: c for r, c in variant.columns.items() if r not in explicit}
        if _box_roles(explicit):
            needed = {r: c for r, c in needed.items() if r not in COORD_ROLES and r != "bbox"}
        if variant.by_name:
            if header_option == "no":
                continue
            if _header_named(first, needed, extra_named) or (not needed and header_option == "yes"):
                return variant
        elif (
            header_option != "yes"
            and not _header_named(first, explicit, extra_named)
            and all(isinstance(c, int) and c < len(first) for c in needed.values())
        ):
            return variant
    shown = ", ".join(first)
    if preset_name == "auto":
        raise ParseError(
            f"{NOT_CSV}cannot tell the columns from the first row ({shown}); expected the header of a known "
            f"layout ({', '.join(PRESETS)}), or pass --preset or --column ROLE=COLUMN",
            file=path,
            location="row 1",
        )
    raise ParseError(
        f"the first row ({shown}) matches no layout of the {preset_name} preset; "
        f"expected one of: {'; '.join(', '.join(map(str, v.columns.values())) for v in candidates)}",
        file=path,
        location="row 1",
    )


def _check_box_roles(path: Path, roles: set[str], box_format: str | None) -> str | None:
    box = _box_roles(roles)
    if not box:
        return None
    if box == {"bbox"}:
        return box_format or "xyxy"
    if "bbox" in box:
        raise UsageError(f"{path}: map either a bbox column or separate coordinate columns, not both")
    matching = [name for name, names in BOX_FORMATS.items() if box == set(names)]
    if not matching:
        raise UsageError(
            f"{path}: box columns {', '.join(sorted(box))} are incomplete; expected x1,y1,x2,y2 (xyxy), "
            "x,y,w,h (xywh) or cx,cy,w,h (cxcywh)"
        )
    if box_format is not None and box_format != matching[0]:
        raise UsageError(
            f"{path}: --box-format {box_format} needs columns {','.join(BOX_FORMATS[box_format])}, "
            f"but {','.join(sorted(box))} are mapped"
        )
    return matching[0]


def _resolve_extra(
    path: Path,
    specs: Sequence[tuple[str | None, str]],
    header: list[str] | None,
    mapped: set[int],
    width: int,
    flag: str,
) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for name, spec in specs:
        if spec == ALL_OTHER_COLUMNS:
            if header is None:
                raise UsageError(f"{path}: {flag} '*' takes class names from the header, but the file has none")
            out += [(h, i) for i, h in enumerate(header) if i not in mapped and h]
            continue
        index = _resolve_column(spec, header, path, flag)
        if index >= width:
            raise ParseError(f"{flag} column {index} is beyond the {width} cells of a row", file=path, location="row 1")
        label = name or (header[index] if header is not None else None)
        if not label:
            raise UsageError(f"{path}: {flag} {spec!r} has no header name; write it as CLASS={spec}")
        out.append((label, index))
    return out


# ---------------------------------------------------------------------------------------------- reading: images

#: Prefixes an image name is looked up under, in order (common export layouts).
_IMAGE_PREFIXES = ("", "{split}/", "images/", "images/{split}/")
#: The errors ``Path.is_file`` reads as "no such file" (it raises the others, e.g. a denied search).
_ABSENT_ERRNOS = frozenset((errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP))


def _find_image(root: Path, name: str, split: str) -> str | None:
    """The image's path relative to ``root``, trying extensions and the ``<split>/``, ``images/`` and
    ``images/<split>/`` sub-directories (common export layouts); ``None`` if absent."""
    for prefix in _IMAGE_PREFIXES:
        candidate = prefix.format(split=split) + name
        if (root / candidate).is_file():
            return candidate
        if PurePosixPath(name).suffix.lower() not in IMAGE_SUFFIXES:
            for extension in IMAGE_EXTENSIONS:
                if (root / (candidate + extension)).is_file():
                    return candidate + extension
    return None


def _stat_is(path: str, kind: int) -> bool:
    """``Path.is_file``/``is_dir`` on a string path: the same answers and the same errors, without ``Path``."""
    try:
        return stat.S_IFMT(os.stat(path).st_mode) == kind
    except OSError as exc:
        if exc.errno in _ABSENT_ERRNOS:
            return False
        raise
    except ValueError:
        return False


class _ImageFinder:
    """:func:`_find_image` with a fraction of its system calls, for the streaming reader.

    Each candidate is one ``stat`` of a string path (``Path`` objects cost more than the call), and
    whether a directory exists is asked once: the ``<split>/`` and ``images/`` candidates of a CSV
    kept beside its images cost no system call per image. Directories are looked at in the order
    :func:`_find_image` looks at them, so it meets the same errors (a directory it may not search).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.base = os.path.join(str(root), "")
        self.directories: dict[str, bool] = {}  # relative directory -> whether it exists
        self.prefixes: dict[str, list[str]] = {}  # split -> its candidate prefixes

    def find(self, name: str, split: str) -> str | None:
        """What :func:`_find_image` answers for ``name``."""
        if name.endswith(("/", "/.")):
            return _find_image(self.root, name, split)  # Path drops the trailing part, stat does not
        head, _, base = name.rpartition("/")
        dot = base.rfind(".")
        bare = not 0 < dot < len(base) - 1 or base[dot:].lower() not in IMAGE_SUFFIXES  # PurePath.suffix's rule
        prefixes = self.prefixes.get(split)
        if prefixes is None:
            prefixes = self.prefixes[split] = [prefix.format(split=split) for prefix in _IMAGE_PREFIXES]
        directories = self.directories
        for prefix in prefixes:
            directory = prefix + head
            exists = directories.get(directory)
            if exists is None:
                exists = directories[directory] = _stat_is(self.base + directory, stat.S_IFDIR)
            if not exists:
                continue  # nothing is a file under a directory that is not there
            path = self.base + prefix + name
            if _stat_is(path, stat.S_IFREG):
                return prefix + name
            if bare:
                for extension in IMAGE_EXTENSIONS:
                    if _stat_is(path + extension, stat.S_IFREG):
                        return prefix + name + extension
        return None


# ---------------------------------------------------------------------------------------------- reading: rows


@dataclass
class _Pending:
    """An image whose rows are still being read."""

    image: str
    split: str
    width: int | None
    height: int | None
    row: int  # its first row
    key: str = ""  # its image cell, as the source names it (skipped.jsonl lists it)
    size_text: tuple[str, str] = ("", "")  # the width and height cells of the first row
    boxes: list[dict[str, Any]] = field(default_factory=list)
    labels: dict[str, None] = field(default_factory=dict)
    counts: dict[str, int] | None = None
    failed: bool = False
    complete: bool = False  # its last row has been read (two-pass reading)


@dataclass
class _Rows:
    """Consecutive data rows of one file, column by column: the streaming reader's unit of work."""

    numbers: list[int]  # the row numbers
    columns: list[list[str]]  # the cells as split, stripped or not, one list per column
    keys: list[str]  # the stripped image cells; "" on a blank row (or an empty image cell)

    def __len__(self) -> int:
        return len(self.keys)

    def part(self, start: int, stop: int) -> _Rows:
        """Rows ``start`` to ``stop`` (excluded)."""
        return _Rows(self.numbers[start:stop], [c[start:stop] for c in self.columns], self.keys[start:stop])

    @staticmethod
    def join(parts: Sequence[_Rows]) -> _Rows:
        """The rows of ``parts``, in order."""
        if len(parts) == 1:
            return parts[0]
        return _Rows(
            list(chain.from_iterable(p.numbers for p in parts)),
            [list(chain.from_iterable(column)) for column in zip(*(p.columns for p in parts), strict=True)],
            list(chain.from_iterable(p.keys for p in parts)),
        )

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """``(row number, stripped cells)`` of each row that is not blank."""
        for number, cells in zip(self.numbers, zip(*self.columns, strict=True), strict=True):
            stripped = [cell.strip() for cell in cells]
            if any(stripped):
                yield number, stripped


def _last_image_start(keys: list[str], open_key: str) -> tuple[int | None, str]:
    """Where the rows of the last image of ``keys`` start, and its key.

    ``None`` when every row goes on with the image ``open_key`` (or is blank): that image may go on
    in the next rows too. Blank rows just before the last image go with it.
    """
    last = ""
    start = len(keys)
    while start:
        key = keys[start - 1]
        if key:
            if not last:
                last = key
            elif key != last:
                break
        start -= 1
    if start == 0 and last in ("", open_key):
        return None, open_key
    return start, last


def _adjacent(keys: Iterable[str]) -> bool:
    """Whether the rows of each key are consecutive (a key seen again after another is not)."""
    seen: set[str] = set()
    for key, _ in groupby(keys):
        if key in seen:
            return False
        seen.add(key)
    return True


class _NotSimple(Exception):
    """A chunk that ``str.split`` would cut otherwise than ``csv.reader``."""


class _Irregular(Exception):
    """A block that the column-by-column conversion leaves to the row-by-row one."""


class _GiveUp(Exception):
    """A forked half met something its parent must report in order: the parent reads that half again."""


@dataclass
class _Half:
    """What a forked process streamed: its splits (in first-seen order), categories and images."""

    splits: list[tuple[str, SplitSummary]]
    categories: list[str]
    images: list[tuple[str, tuple[str, str]]]  # image -> (file, split), as _TableReader.emitted


def _stream_part(reader: _TableReader, offset: int, line: int, directory: Path) -> _Half | None:
    """In a forked process: stream bytes ``offset`` on into ``directory``; ``None`` when it gave up."""
    directory.mkdir()
    writer = reader.writer = DatasetWriter(directory)  # its own sink; the parent's stays untouched
    reader.forked = True
    known = len(reader.emitted)
    try:
        reader._stream(reader._simple_pieces(offset, None, line))
    except Exception:  # anything at all: the parent streams this half itself and meets it in order
        return None
    finally:
        writer.close()
    return _Half(
        splits=list(writer.summary.items()),
        categories=[category["name"] for category in writer.categories],
        images=list(islice(reader.emitted.items(), known, None)),
    )


class _TableReader:
    """Streams one :class:`_Table` into a :class:`DatasetWriter`.

    Two strategies give the same records, categories and errors:

    * streaming, when every image's rows are adjacent (exporters write them so; a scan of the image
      column proves it first): one pass, rows taken in blocks of whole images. A block of plain box
      rows is converted column by column (:meth:`_fast_block`: C loops and numpy instead of Python
      per cell), any other block row by row (:meth:`_slow_block`). A file without quote characters
      is cut with ``str.split`` (it splits as ``csv.reader`` would there, several times faster);
      otherwise ``csv.reader`` reads it.
    * two passes, when the rows of an image are scattered: pass 1 remembers the last row of each
      image, pass 2 writes each record as soon as its last row has been read.

    The two-pass reader reports a problem of the file (bytes that are not UTF-8, bad CSV, a ragged
    row, an empty image cell) before any image's own problem, wherever both are. The streaming
    reader keeps that order: when it meets either, it runs pass 1 (:meth:`last_rows`), which raises
    the first problem of the file if there is one.
    """

    #: Whether adjacent rows are streamed, and plain box rows converted column by column. Tests turn
    #: them off to check that every strategy gives the same result.
    streaming: ClassVar[bool] = True
    columnar: ClassVar[bool] = True

    def __init__(
        self,
        table: _Table,
        writer: DatasetWriter,
        *,
        image_root: Path,
        classes: ClassList | None,
        options: Mapping[str, Any],
        emitted: dict[str, tuple[str, str]],
        executor: Executor | None = None,
    ) -> None:
        self.table = table
        self.writer = writer
        self.image_root = image_root
        self.classes = classes
        self.emitted = emitted
        self.short_rows = options.get("short_rows") or "error"
        self.label_delimiter = options.get("label_delimiter") or None
        self.default_class = options.get("default_class") or "object"
        columns = table.columns
        self.image_column = columns["image"]
        self.label_column = columns.get("label")
        self.box_columns = (
            None
            if table.box_format is None
            else ([columns["bbox"]] if "bbox" in columns else [columns[r] for r in BOX_FORMATS[table.box_format]])
        )
        self.has_counts = "count" in columns or bool(table.count_columns)
        self.size_columns = (columns.get("width"), columns.get("height"))
        self.path_text = str(table.path)
        self.parse_number = _PARSE_NUMBER[table.decimal]
        self.finder = _ImageFinder(image_root)
        self.single_pass = False
        self.forked = False  # streaming the second half of the file in a forked process
        self.executor = executor or LocalExecutor()
        self.claimed: set[str] = set()  # images whose rows have been read (streaming)
        # Whether _fast_block can read this table: rows holding a box in 4 columns and nothing more.
        self.columnar_table = (
            self.box_columns is not None
            and len(self.box_columns) == 4
            and not ({"confidence", "count"} & columns.keys())
            and not table.count_columns
            and not table.label_columns
            and (self.size_columns[0] is None) == (self.size_columns[1] is None)
        )

    def run(self) -> None:
        """Read the table: in one pass when each image's rows are adjacent, else in two."""
        layout = self._layout() if self.streaming else None
        if self.classes is None:
            for name, _ in self.table.count_columns + self.table.label_columns:
                self.writer.category(name)
        if layout is None:
            self._run_two_passes()
        else:
            self._run_streaming(layout)

    # -- two passes ----------------------------------------------------------------------------

    def last_rows(self) -> dict[str, int]:
        """Pass 1: the last row of each image (memory grows with the number of images only).

        It raises the first problem of the file (as a whole) that there is.
        """
        last: dict[str, int] = {}
        for number, cells in self.table.data_rows(self.short_rows):
            key = cells[self.image_column]
            if not key:
                raise ParseError(
                    "the image cell is empty; expected an image path",
                    file=self.table.path,
                    location=self.table.where(number, self.image_column),
                )
            last[key] = number
        return last

    def _run_two_passes(self) -> None:
        """Pass 2: build each image's record from its rows; write it once its last row is read."""
        last = self.last_rows()
        pending: dict[str, _Pending] = {}
        for number, cells in self.table.data_rows(self.short_rows):
            key = cells[self.image_column]
            state = pending.get(key)
            if state is None:
                state = pending[key] = self._start(key, number, cells)
            if not state.failed:
                try:
                    self._add_row(state, number, cells)
                except AnnonormError as error:
                    state.failed = True
                    self._problem(error, key)
            if last[key] == number:
                state.complete = True
            while pending:
                first_key = next(iter(pending))
                if not pending[first_key].complete:
                    break
                self._emit(pending.pop(first_key))

    # -- streaming -----------------------------------------------------------------------------

    def _layout(self) -> str | None:
        """How to stream the file when each image's rows are adjacent: ``"simple"`` (``str.split``) or
        ``"csv"`` (``csv.reader``); ``None`` when they are not, or when the scan meets a problem
        (the two-pass reader names it)."""
        try:
            return "simple" if _adjacent(chain.from_iterable(self._simple_keys())) else None
        except _NotSimple:
            pass
        except (ParseError, OSError, UnicodeDecodeError, IndexError):
            return None
        table = self.table
        try:
            with (
                open_regular(table.path, "CSV file") as raw,
                io.TextIOWrapper(raw, encoding="utf-8-sig", newline="\n") as text,
            ):
                # The dialect of _iter_rows; newline="\n" cuts lines where iterating over bytes does.
                rows = csv.reader(text, delimiter=table.delimiter, quotechar='"', skipinitialspace=True)
                if table.header is not None:
                    next(rows, None)
                cells = map(itemgetter(self.image_column), filter(None, rows))  # IndexError on a short row
                return "csv" if _adjacent(filter(None, map(str.strip, cells))) else None
        except (OSError, UnicodeDecodeError, IndexError, csv.Error):
            return None

    def _simple_keys(self) -> Iterator[Iterable[str]]:
        """Per chunk of the file, the stripped non-empty image cells; :class:`_NotSimple` at a chunk
        that ``str.split`` would cut otherwise than ``csv.reader``."""
        table = self.table
        delimiter, column = table.delimiter, self.image_column
        for first, text in _text_chunks(table.path):
            lines = _simple_lines(text, delimiter)
            if lines is None:
                raise _NotSimple
            if first == 1 and table.header is not None:
                lines = lines[1:]
            if column == 0:
                cells = map(itemgetter(0), map(str.partition, lines, repeat(delimiter)))
            else:  # a row without that cell raises IndexError
                cells = map(
                    itemgetter(column), map(str.split, filter(None, lines), repeat(delimiter), repeat(column + 1))
                )
            yield filter(None, map(str.strip, cells))

    def _run_streaming(self, layout: str) -> None:
        """Read the rows in one pass, a block of whole images at a time (a large file in two halves,
        the second in a forked process, when there are cores for it)."""
        self.single_pass = True
        if layout == "csv":
            self._stream(self._csv_pieces())
            return
        middle = self._middle()
        if middle is not None:
            self.writer.finish_hashing()  # no thread may run when the process forks
        if middle is None or not self.executor.forks():
            self._stream(self._simple_pieces())
        else:
            self._stream_halves(*middle)

    def _stream(self, pieces: Iterable[_Rows]) -> None:
        columnar = self.columnar and self.columnar_table
        for block in self._blocks(pieces):
            try:
                if not columnar:
                    raise _Irregular
                self._fast_block(block)
            except _Irregular:
                self._slow_block(block)

    def _simple_pieces(self, start: int = 0, stop: int | None = None, line: int = 1) -> Iterator[_Rows]:
        """The data rows of bytes ``start`` to ``stop`` (from line ``line``), a chunk at a time, cut
        with ``str.split`` (the file has no quote character)."""
        table = self.table
        delimiter, width, column = table.delimiter, table.width, self.image_column
        try:
            for first, text in _text_chunks(table.path, start, stop, line):
                lines = _simple_lines(text, delimiter)
                if lines is None:
                    self._file_changed()
                if first == 1 and table.header is not None:
                    lines, first = lines[1:], 2
                if not lines:
                    continue
                if set(map(str.count, lines, repeat(delimiter))) == {width - 1}:
                    # Every line has the table's width: cut them all at once and take every width-th cell.
                    cells = delimiter.join(lines).split(delimiter)
                    columns = [cells[i::width] for i in range(width)]
                    yield _Rows(list(range(first, first + len(lines))), columns, list(map(str.strip, columns[column])))
                    continue
                numbers, rows = [], []
                for number, text in enumerate(lines, start=first):
                    checked = table.check_row(number, [cell.strip() for cell in text.split(delimiter)], self.short_rows)
                    if checked is not None:
                        numbers.append(number)
                        rows.append(checked)
                if rows:
                    columns = [list(cells) for cells in zip(*rows, strict=True)]
                    yield _Rows(numbers, columns, columns[column])
        except (ParseError, UnicodeDecodeError):
            self._file_problem()

    def _middle(self) -> tuple[int, int] | None:
        """Where to cut a large file in two: the byte offset and line number of the first row of the
        first image that starts after the middle; ``None`` for a small file (or a strange middle)."""
        path = self.table.path
        size = path.stat().st_size
        if self.executor.execution.pool_size(size, PARALLEL_MIN_BYTES) <= 1:
            return None  # a small file, or --workers 1
        with open_regular(path, "CSV file") as stream:
            stream.seek(size // 2)
            stream.readline()  # the end of the line the middle falls in
            first = ""
            while True:
                offset = stream.tell()
                raw = stream.readline()
                if not raw:
                    return None  # the last image runs to the end
                try:
                    key = raw.decode("utf-8").split(self.table.delimiter)[self.image_column].strip()
                except (UnicodeDecodeError, IndexError):
                    return None  # a row the two-pass reader will name
                if key and not first:
                    first = key
                elif key and key != first:
                    break
            stream.seek(0)
            lines = 1
            while stream.tell() < offset:
                lines += stream.read(min(1 << 20, offset - stream.tell())).count(b"\n")
        return offset, lines

    def _stream_halves(self, offset: int, line: int) -> None:
        """Stream bytes ``offset`` on in a forked process while this one streams the first half.

        The second half's records go to a part file; they are appended to the split files, its
        categories declared and its images noted after the first half, so the output is byte for
        byte that of one process. If the second half meets anything but plain rows (a problem, a
        file problem, an image the first half already has), this process streams it again itself,
        so problems are reported as one process reports them.
        """
        directory = self.writer.directory / f".part-{uuid.uuid4().hex[:8]}"

        def second_half(_: int) -> _Half | None:
            return _stream_part(self, offset, line, directory)

        def redo(_: int) -> None:
            self._stream(self._simple_pieces(offset, None, line))

        def first_half() -> None:
            self._stream(self._simple_pieces(0, offset, 1))

        try:
            for _, second in self.executor.parts(second_half, 1, redo=redo, meanwhile=first_half):
                if any(image in self.emitted for image, _ in second.images):
                    redo(0)  # an image the first half has too: only one process can tell how it goes on
                    continue
                for name in second.categories:
                    self.writer.category(name)
                self.emitted.update(second.images)
                for split, summary in second.splits:
                    self.writer.append_part(split, directory / f"{split}.jsonl", summary)
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    def _csv_pieces(self) -> Iterator[_Rows]:
        """The data rows, :data:`BLOCK_ROWS` at a time, read by ``csv.reader``."""
        rows = self.table.data_rows(self.short_rows)
        try:
            while batch := list(islice(rows, BLOCK_ROWS)):
                columns = [list(cells) for cells in zip(*(cells for _, cells in batch), strict=True)]
                yield _Rows([number for number, _ in batch], columns, columns[self.image_column])
        except ParseError:
            self._file_problem()

    @staticmethod
    def _blocks(pieces: Iterable[_Rows]) -> Iterator[_Rows]:
        """Regroup pieces into blocks of whole images (an image's rows may straddle two pieces)."""
        carry: list[_Rows] = []  # the rows of the last image seen, which may go on
        open_key = ""
        for piece in pieces:
            start, open_key = _last_image_start(piece.keys, open_key)
            if start is None:
                carry.append(piece)
                continue
            if carry or start:
                yield _Rows.join([*carry, piece.part(0, start)])
            carry = [piece.part(start, len(piece))]
        if carry:
            yield _Rows.join(carry)

    def _slow_block(self, block: _Rows) -> None:
        """Read a block of whole images row by row."""
        state: _Pending | None = None
        current = ""
        for number, cells in block.rows():
            key = cells[self.image_column]
            if not key:
                self._file_problem()
            if state is None or key != current:
                if state is not None:
                    self._emit(state)
                self._claim(key)
                current = key
                state = self._start(key, number, cells)
            if not state.failed:
                try:
                    self._add_row(state, number, cells)
                except AnnonormError as error:
                    state.failed = True
                    self._problem(error, key)
        if state is not None:
            self._emit(state)

    def _fast_block(self, block: _Rows) -> None:
        """Convert a block of plain box rows column by column; raise :class:`_Irregular`, having done
        nothing, when a row needs :meth:`_slow_block` (an empty or bad cell, a bad box, an image with a
        problem).

        What it writes is what :meth:`_slow_block` writes: the same checks, made on whole columns,
        the same arithmetic (numpy rounds nothing differently: each value gets the same IEEE
        operations, and the rounding to 6 decimals is Python's own wherever a value has a fraction).
        """
        keys = block.keys
        count = len(keys)
        if "" in keys:
            raise _Irregular  # a blank row, or an empty image cell
        table, columns = self.table, block.columns
        assert self.box_columns is not None and table.box_format is not None
        # The rows where an image starts: the block holds whole images, each one run of rows.
        starts = [0, *compress(range(1, count), map(ne, keys[1:], keys[:-1]))]
        ends = [*starts[1:], count]

        names = self._fast_names(columns, count)
        try:
            cells = chain.from_iterable(columns[i] for i in self.box_columns)
            values = np.fromiter(map(self.parse_number, cells), np.float64, 4 * count).reshape(4, count)
        except ValueError:
            # An empty cell, or not a number (float() ignores no space that str.strip() keeps).
            raise _Irregular from None
        if not np.isfinite(values).all():
            raise _Irregular
        sizes = self._fast_sizes(columns, starts)
        splits = [table.default_split] * len(starts)
        split_column = table.columns.get("split")
        if split_column is not None:
            texts = [columns[split_column][start].strip() for start in starts]
            if not all(SPLIT_PATTERN.match(text) for text in texts if text):
                raise _Irregular
            splits = [text or split for text, split in zip(texts, splits, strict=True)]
        images: list[str] = []
        image_sizes: list[tuple[int, int] | None] = []
        for start, split in zip(starts, splits, strict=True):
            name = keys[start].replace("\\", "/").removeprefix("./")  # as _start
            try:
                check_relative_path(name)
            except ValueError:
                raise _Irregular from None
            found = self.finder.find(name, split)
            images.append(found or name)
            if sizes is None:
                image_sizes.append(read_image_size(self.image_root / found) if found is not None else None)
        if sizes is not None:
            image_sizes = list(sizes)
        corners = self._fast_corners(values, image_sizes, starts, ends)

        writer = self.writer
        if self.classes is None:
            for name in dict.fromkeys(names):  # categories in first-seen order
                writer.category(name)
        boxes = [
            {"name": name, "x1": x1, "y1": y1, "x2": x2, "y2": y2}
            for name, x1, y1, x2, y2 in zip(names, *corners.tolist(), strict=True)
        ]
        emitted, claimed, path_text, add = self.emitted, self.claimed, self.path_text, writer.add
        for start, end, image, split, size in zip(starts, ends, images, splits, image_sizes, strict=True):
            if keys[start] in claimed:
                self._file_changed()  # the scan found each image's rows adjacent
            claimed.add(keys[start])
            earlier = emitted.get(image)
            if earlier is not None:
                self._problem(self._described_twice(image, earlier, block.numbers[start]), keys[start])
                continue
            emitted[image] = (path_text, split)
            counts: dict[str, int] = {}
            for name in names[start:end]:
                counts[name] = counts.get(name, 0) + 1
            # The canonical record, keys in format order, as make_record builds it for boxes only.
            record: dict[str, Any]
            if size is None:
                record = {"image": image, "labels": list(counts), "counts": counts, "boxes": boxes[start:end]}
            else:
                record = {
                    "image": image,
                    "width": size[0],
                    "height": size[1],
                    "labels": list(counts),
                    "counts": counts,
                    "boxes": boxes[start:end],
                }
            add(split, record, canonical=True)

    def _fast_names(self, columns: list[list[str]], count: int) -> list[str]:
        """The class of each row's box (as :meth:`_class` names it); :class:`_Irregular` when one is
        missing or unknown."""
        codes = self.classes.codes if self.classes is not None else None
        if self.label_column is None:
            name = self.default_class if codes is None else codes.get(self.default_class)
            if name is None:
                raise _Irregular
            return [name] * count
        names = list(map(str.strip, columns[self.label_column]))
        if "" in names:
            raise _Irregular
        if codes is None:
            return names
        try:
            return list(map(codes.__getitem__, names))
        except KeyError:
            raise _Irregular from None

    def _fast_sizes(self, columns: list[list[str]], starts: list[int]) -> list[tuple[int, int]] | None:
        """Each image's size from its first row (``None`` when no size column is mapped);
        :class:`_Irregular` when one is not a positive whole number or a later row has other size cells."""
        width_column, height_column = self.size_columns
        if width_column is None or height_column is None:
            return None
        sides = []
        first_rows = set(starts)
        for column in (columns[width_column], columns[height_column]):
            if not first_rows.issuperset(compress(range(1, len(column)), map(ne, column[1:], column[:-1]))):
                raise _Irregular  # a size cell differs from the row above inside an image: _add_row compares
            try:
                values = [self.parse_number(column[start]) for start in starts]
            except ValueError:
                raise _Irregular from None
            if not (all(map(float.is_integer, values)) and min(values) > 0):  # is_integer: finite too
                raise _Irregular
            sides.append(list(map(int, values)))
        return list(zip(sides[0], sides[1], strict=True))

    def _fast_corners(
        self, values: np.ndarray, sizes: list[tuple[int, int] | None], starts: list[int], ends: list[int]
    ) -> np.ndarray:
        """Rows x1, y1, x2, y2 of absolute corners rounded to 6 decimals (:func:`csv_box_to_corners` on
        every column); :class:`_Irregular` when a box is refused."""
        table = self.table
        a, b, c, d = values
        if table.normalized and (
            None in sizes or not ((values >= -NORMALIZED_SLACK) & (values <= 1 + NORMALIZED_SLACK)).all()
        ):
            raise _Irregular  # no size to scale by, or a value outside 0..1
        corners = to_corners(table.box_format or "xyxy", a, b, c, d)  # csv_box_to_corners, per column
        if table.normalized:
            # Fractions of the image side: x by the width, y by the height (each row its image's).
            lengths = np.subtract(ends, starts)
            width = np.repeat(np.array([s[0] for s in sizes if s is not None], dtype=np.float64), lengths)
            height = np.repeat(np.array([s[1] for s in sizes if s is not None], dtype=np.float64), lengths)
            corners = scale(*corners, width, height)
        box = round_coords(np.stack(corners))
        x1, y1, x2, y2 = box
        if (x2 < x1).any() or (y2 < y1).any() or (x1 < 0).any() or (y1 < 0).any():
            raise _Irregular
        return box

    def _claim(self, key: str) -> None:
        if key in self.claimed:
            self._file_changed()  # the scan found each image's rows adjacent
        self.claimed.add(key)

    def _file_problem(self) -> NoReturn:
        """Raise the first problem of the file, as pass 1 names it."""
        if self.forked:
            raise _GiveUp
        self.last_rows()
        self._file_changed()

    def _file_changed(self) -> NoReturn:
        raise ParseError("the file changed while it was being read; expected it to stay as it is", file=self.table.path)

    def _problem(self, error: AnnonormError, image: str) -> None:
        """Report a problem of the image the source names ``image``. When it would stop the conversion
        (``--on-error fail``) while streaming, a problem of the file anywhere in it is raised instead, as
        the two-pass reader does."""
        if error.image is None:
            error.image = image
        if self.forked:
            raise _GiveUp  # the parent reads this half again and reports it in order
        if self.single_pass and self.writer.on_error != "skip":
            self.last_rows()
        self.writer.problem(error)

    # -- one image -----------------------------------------------------------------------------

    def _start(self, key: str, number: int, cells: list[str]) -> _Pending:
        table = self.table
        split = table.default_split
        state = _Pending(image=key, split=split, width=None, height=None, row=number, key=key)
        try:
            if "split" in table.columns and cells[table.columns["split"]]:
                split = cells[table.columns["split"]]
                if not SPLIT_PATTERN.match(split):
                    raise InvalidDataError(
                        f"split {split!r} is not a valid split name (letters, digits, _ . -)",
                        file=table.path,
                        location=table.where(number, table.columns["split"]),
                    )
            state.split = split
            name = key.replace("\\", "/").removeprefix("./")  # Windows-style separators from some exporters
            try:
                check_relative_path(name)
            except ValueError as exc:
                raise UnsafePathError(
                    f"{exc}; expected a path relative to the image directory",
                    file=table.path,
                    location=table.where(number, self.image_column),
                ) from None
            found = _find_image(self.image_root, name, split)
            state.image = found or name
            state.size_text = self._size_text(cells)
            state.width = self._side(cells, number, "width")
            state.height = self._side(cells, number, "height")
            if (state.width is None) != (state.height is None):
                raise InvalidDataError(
                    "only one of width and height is given; expected both or neither",
                    file=table.path,
                    location=table.where(number),
                )
            if state.width is None and found is not None:
                size = read_image_size(self.image_root / found)
                if size is not None:
                    state.width, state.height = size
        except AnnonormError as error:
            state.failed = True
            self._problem(error, key)
        return state

    def _size_text(self, cells: list[str]) -> tuple[str, str]:
        return (
            cells[self.size_columns[0]] if self.size_columns[0] is not None else "",
            cells[self.size_columns[1]] if self.size_columns[1] is not None else "",
        )

    def _side(self, cells: list[str], number: int, role: str) -> int | None:
        index = self.table.columns.get(role)
        if index is None or not cells[index]:
            return None
        try:
            value = self.parse_number(cells[index])
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value > 0 and value == int(value)):
            raise ParseError(
                f"expected the image {role} as a positive whole number of pixels, found {cells[index]!r}"
                + _decimal_hint(cells[index], self.table.decimal),
                file=self.table.path,
                location=self.table.where(number, index),
            )
        return int(value)

    def _number(self, cells: list[str], number: int, index: int) -> float:
        try:
            return _finite(cells[index], self.table.decimal)
        except ValueError:
            raise ParseError(
                f"expected a number, found {cells[index]!r}" + _decimal_hint(cells[index], self.table.decimal),
                file=self.table.path,
                location=self.table.where(number, index),
            ) from None

    def _class(self, text: str, number: int, index: int | None) -> str:
        """The category name of a label cell (or class column), declaring it when new."""
        if self.classes is not None:
            name = self.classes.codes.get(text)
            if name is None:
                raise InvalidDataError(
                    f"class {text!r} is not in the --classes list",
                    file=self.table.path,
                    location=self.table.where(number, index),
                )
            return name
        self.writer.category(text)
        return text

    def _add_row(self, state: _Pending, number: int, cells: list[str]) -> None:
        table = self.table
        columns = table.columns
        size_text = self._size_text(cells)
        if size_text != state.size_text and any(size_text):
            width, height = self._side(cells, number, "width"), self._side(cells, number, "height")
            if state.width is not None and (width, height) != (state.width, state.height):
                raise InvalidDataError(
                    f"image size {width}x{height} differs from {state.width}x{state.height} given on an earlier row",
                    file=table.path,
                    location=table.where(number, self.size_columns[0]),
                )
        confidence = columns.get("confidence")
        if confidence is not None and cells[confidence] and self._number(cells, number, confidence) <= 0:
            return  # Open Images: confidence 0 marks a class verified to be absent from the image

        label_index = columns.get("label")
        label_text = cells[label_index] if label_index is not None else ""
        box = self._box(state, number, cells) if self.box_columns is not None else None
        if box is not None:
            name = self._class(label_text, number, label_index) if label_index is not None else None
            if label_index is not None and not label_text:
                raise InvalidDataError(
                    "the row has a box but no class; expected a class name",
                    file=table.path,
                    location=table.where(number, label_index),
                )
            box["name"] = name if name is not None else self._class(self.default_class, number, None)
            state.boxes.append(box)
        elif label_text:
            if self.label_delimiter is None:
                texts = [label_text]
            elif not self.label_delimiter.strip():
                texts = label_text.split()  # a blank delimiter means any run of whitespace
            else:
                texts = label_text.split(self.label_delimiter)
            names = [self._class(t.strip(), number, label_index) for t in texts if t.strip()]
            if "count" in columns and cells[columns["count"]]:
                count = self._count(cells, number, columns["count"])
                for name in names:
                    self._add_count(state, name, count)
            else:
                state.labels.update(dict.fromkeys(names))
        for name, index in table.count_columns:
            if cells[index]:
                self._add_count(state, self._class(name, number, index), self._count(cells, number, index))
        for name, index in table.label_columns:
            if self._flag(cells, number, index):
                state.labels[self._class(name, number, index)] = None

    def _box(self, state: _Pending, number: int, cells: list[str]) -> dict[str, Any] | None:
        table = self.table
        assert self.box_columns is not None and table.box_format is not None
        if len(self.box_columns) == 1:
            index = self.box_columns[0]
            try:
                parsed = bbox_cell_to_values(text=cells[index], decimal=table.decimal)
            except ValueError as exc:
                raise ParseError(
                    f"{exc} in the bbox cell {cells[index]!r}" + _decimal_hint(cells[index], table.decimal, bbox=True),
                    file=table.path,
                    location=table.where(number, index),
                ) from None
            if parsed is None:
                return None
            values: list[float] = list(parsed)
        else:
            texts = [cells[i] for i in self.box_columns]
            if not any(texts):
                return None  # an image listed without a box
            for index, text in zip(self.box_columns, texts, strict=True):
                if not text:
                    raise ParseError(
                        "the box is incomplete: this coordinate is empty",
                        file=table.path,
                        location=table.where(number, index),
                    )
            values = [self._number(cells, number, i) for i in self.box_columns]
        if table.normalized:
            if state.width is None:
                raise InvalidDataError(
                    f"normalized coordinates need the image size, but no width/height column is mapped "
                    f"and {state.image} was not found under {self.image_root}",
                    file=table.path,
                    location=table.where(number),
                )
            for position, value in enumerate(values):
                # Only a corner or centre is bounded by 1; a width or height is too, in every format.
                if not -NORMALIZED_SLACK <= value <= 1 + NORMALIZED_SLACK:
                    raise InvalidDataError(
                        f"normalized coordinate {value} is outside 0..1; expected a fraction of the image side",
                        file=table.path,
                        location=table.where(number, self.box_columns[min(position, len(self.box_columns) - 1)]),
                    )
        x1, y1, x2, y2 = csv_box_to_corners(
            values=values,
            box_format=table.box_format,
            normalized=table.normalized,
            width=state.width,
            height=state.height,
        )
        if x2 < x1 or y2 < y1 or min(x1, y1) < 0:
            raise InvalidDataError(
                f"box ({x1}, {y1}, {x2}, {y2}) in {table.box_format} is not a box with non-negative corners "
                "x1 <= x2 and y1 <= y2",
                file=table.path,
                location=table.where(number, self.box_columns[0]),
            )
        return {"name": "", "x1": x1, "y1": y1, "x2": x2, "y2": y2}

    def _count(self, cells: list[str], number: int, index: int) -> int:
        value = self._number(cells, number, index)
        if value < 0 or value != int(value):
            raise InvalidDataError(
                f"expected a count (a whole number >= 0), found {cells[index]!r}",
                file=self.table.path,
                location=self.table.where(number, index),
            )
        return int(value)

    def _flag(self, cells: list[str], number: int, index: int) -> bool:
        text = cells[index].lower()
        if text in ("", "0", "0.0", "false", "no"):
            return False
        if text in ("true", "yes") or (_is_number(text, self.table.decimal) and self.parse_number(text) != 0):
            return True
        raise ParseError(
            f"expected a one-hot cell (0/1, true/false), found {cells[index]!r}",
            file=self.table.path,
            location=self.table.where(number, index),
        )

    @staticmethod
    def _add_count(state: _Pending, name: str, count: int) -> None:
        if state.counts is None:
            state.counts = {}
        state.counts[name] = state.counts.get(name, 0) + count

    def _emit(self, state: _Pending) -> None:
        if state.failed:
            return
        earlier = self.emitted.get(state.image)
        if earlier is not None:
            self._problem(self._described_twice(state.image, earlier, state.row), state.key)
            return
        self.emitted[state.image] = (self.path_text, state.split)
        record = make_record(
            image=state.image,
            width=state.width,
            height=state.height,
            boxes=state.boxes,
            labels=state.labels,
            counts=state.counts if self.has_counts else None,
        )
        self.writer.add(state.split, record)

    def _described_twice(self, image: str, earlier: tuple[str, str], row: int) -> InvalidDataError:
        return InvalidDataError(
            f"image {image!r} was already described by {earlier[0]} ({earlier[1]}); expected each image in one place",
            file=self.table.path,
            location=f"row {row}",
        )


# ---------------------------------------------------------------------------------------------- the converter


class CsvConverter(Converter):
    """CSV tables of boxes, labels or counts, driven by a column mapping or a preset."""

    name = "csv"
    summary = "CSV tables (TensorFlow, VoTT, Kaggle, Open Images, crowd counts) via a column mapping"
    read_options = (
        Option(
            "column",
            "Column mapping ROLE=COLUMN (repeatable); COLUMN is a header name or a 0-based index. Roles: "
            + ", ".join(ROLES),
            multiple=True,
        ),
        Option("preset", "A ready-made mapping", default="auto", choices=("auto", "none", *PRESETS)),
        Option(
            "box_format",
            "How the 4 box numbers are meant (default: from the mapped roles; xyxy for a bbox cell)",
            choices=tuple(BOX_FORMATS),
        ),
        Option(
            "normalized",
            "Coordinates are fractions 0..1 of the image side (size from width/height columns or the image)",
            type=bool,
        ),
        Option("header", "Whether the first row is a header", default="auto", choices=("auto", "yes", "no")),
        Option("delimiter", "Cell delimiter (default: sniffed among , ; tab | space; write \\t for tab)"),
        Option("decimal", "Decimal mark of numbers: , for a European locale's 0,35 (default: .)", choices=DECIMALS),
        Option(
            "count_columns",
            "Count columns, one per class: COLUMN or CLASS=COLUMN (repeatable); '*' = every unmapped column",
            multiple=True,
        ),
        Option(
            "label_columns",
            "One-hot class columns (non-zero = present): COLUMN or CLASS=COLUMN; '*' = every unmapped column",
            multiple=True,
        ),
        Option("label_delimiter", "Split a label cell into several classes at this string (per-image rows)"),
        Option(
            "classes",
            "Class list fixing the category order: A,B,C, one name per line, dataset_meta.json, or a code,name CSV",
        ),
        Option("split", "Split of rows without a split column (default: a split name in the file name, else train)"),
        Option("default_class", "Class of boxes when no label column is mapped", default="object"),
        Option(
            "short_rows",
            "A row with fewer cells than the header: error, or pad with empty cells",
            default="error",
            choices=("error", "pad"),
        ),
        workers_option("stream a large file, one half each"),
    )
    write_options = (
        Option("layout", "Column layout of the written CSV", default="tensorflow", choices=tuple(LAYOUTS)),
    )
    capabilities = Capabilities(image_labels=True, label_order=False, unknown_sizes=True)

    @classmethod
    def sniff(cls, source: Path) -> bool:
        """A ``.csv``/``.txt`` file whose first line splits into at least two cells."""
        if not source.is_file() or source.suffix.lower() not in (".csv", ".txt"):
            return False
        sample = _read_sample(source)
        first = next((line for line in sample.splitlines() if line.strip()), "")
        return _looks_like_table(first)

    @classmethod
    def source_files(cls, source: Path, options: Mapping[str, Any]) -> list[Path]:
        """The CSV file, or the ``.csv`` files of a directory."""
        if source.is_dir():
            return sorted(p for p in source.iterdir() if p.suffix.lower() == ".csv" and p.is_file())
        return [source]

    def read(self, source: Path, ctx: ReadContext) -> ReadResult:
        """Read a CSV file (or every ``.csv`` file of a directory) into ``ctx.sink``."""
        writer, images, options = ctx.sink, ctx.images, ctx.options
        files = _source_files(source)
        image_root = images if images is not None else (source if source.is_dir() else source.parent)
        classes = None
        if options.get("classes") is not None:
            classes = read_class_list(options["classes"])
            for name in classes.names:
                writer.category(name, source_id=classes.source_ids.get(name))
            if classes.file is not None:
                writer.add_source_file(classes.file)
        emitted: dict[str, tuple[str, str]] = {}
        for path in files:
            table = _open_table(path, options)
            writer.add_source_file(path)
            reader = _TableReader(
                table,
                writer,
                image_root=image_root,
                classes=classes,
                options=options,
                emitted=emitted,
                executor=ctx.executor,
            )
            reader.run()
        if not emitted and not writer.skipped:  # every data row gives an image or a problem: there is none
            header = ", ".join(table.header or ())
            found = (
                f"its {len(files)} .csv files have no data row"
                if len(files) > 1
                else f"no row under the header ({header})"
            )
            raise ParseError(f"{NOT_CSV}{found}; {EXPECTED_TABLE}", file=source)
        name = source.name if source.is_dir() else source.stem
        return ReadResult(name=name or "csv", image_root=image_root)

    def write(self, dataset: NormalizedSource, out: Path, *, options: Mapping[str, Any]) -> None:
        """Write ``<split>.csv`` per split (one row per box) and ``classes.txt``."""
        layout = options.get("layout") or "tensorflow"
        header = [name for name, _ in LAYOUTS[layout]]
        for split in dataset.manifest.splits:
            with (out / f"{split}.csv").open("w", encoding="utf-8", newline="") as stream:
                table = csv.writer(stream, lineterminator="\n")
                table.writerow(header)
                for number, record in enumerate(dataset.records(split), start=1):
                    if "\r" in record["image"]:  # the csv module leaves a lone CR unquoted: the row would break
                        raise InvalidDataError(
                            f"image name {record['image']!r} holds a carriage return, which a CSV row cannot hold",
                            file=dataset.split_path(split),
                            location=f"line {number}",
                        )
                    table.writerows(record_to_csv_rows(record=record, layout=layout))
        names = dataset.manifest.category_names
        if any("\n" in n or "\r" in n or n != n.strip() for n in names):
            raise InvalidDataError(
                "a class name has a line break or surrounding spaces; classes.txt cannot hold it",
                file=dataset.root / "annonorm.json",
                location="categories",
            )
        (out / "classes.txt").write_text("".join(f"{n}\n" for n in names), encoding="utf-8", newline="")
