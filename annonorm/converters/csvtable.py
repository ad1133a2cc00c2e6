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
  image are grouped wherever they are in the file, and records keep first-seen order: the table
  engine (:mod:`annonorm.sources.tabular`) streams a file whose images' rows are adjacent in one
  pass, and folds each image's rows first otherwise; the output is the same.
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
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from operator import lt
from pathlib import Path
from typing import Any, cast

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
from annonorm.errors import InvalidDataError, ParseError, UnsafePathError
from annonorm.geometry import round_coord, round_coords, scale, to_corners
from annonorm.images import read_image_size
from annonorm.io import NormalizedSource
from annonorm.paths import check_relative_path
from annonorm.sources.classlists import ClassList, read_class_list
from annonorm.sources.tabular import (
    EXPECTED_TABLE,
    NOT_A_TABLE,
    Irregular,
    Output,
    Rows,
    Strategy,
    TableStream,
    group_runs,
    looks_like_table,
    read_sample,
    sniff_delimiter,
    table_files,
)
from annonorm.sources.tabular_columns import (
    ALL_OTHER_COLUMNS,
    DECIMALS,
    PARSE_NUMBER,
    ColumnMapping,
    Faults,
    ImageFinder,
    Preset,
    Variant,
    bbox_cell_to_values,
    bbox_cells,
    count_cell,
    first_named,
    flag_problem,
    flag_value,
    group_sizes,
    nonpositive_rows,
    number_block,
    number_cells,
    open_mapping,
)

__all__ = [
    "PRESETS",
    "CsvConverter",
    "Preset",
    "Variant",
    "bbox_cell_to_values",
    "csv_box_problem",
    "csv_box_to_corners",
    "csv_boxes_to_corners",
    "csv_normalized_problem",
    "csv_split_problem",
    "read_csv",
    "record_to_csv_rows",
    "sniff_delimiter",
    "write_csv",
]

# ---------------------------------------------------------------------------------------------- constants

#: Box roles per box format, in the order a ``bbox`` cell holds them.
BOX_FORMATS: dict[str, tuple[str, str, str, str]] = {
    "xyxy": ("x1", "y1", "x2", "y2"),
    "xywh": ("x", "y", "w", "h"),
    "cxcywh": ("cx", "cy", "w", "h"),
}
COORD_ROLES = frozenset(role for roles in BOX_FORMATS.values() for role in roles)
BOX_ROLES = COORD_ROLES | {"bbox"}
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
SPLIT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
#: A normalized coordinate may exceed 1 by this much (rounding in the exporting tool).
NORMALIZED_SLACK = 1e-6
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

#: Prefixes an image name is looked up under, in order (common export layouts).
IMAGE_PREFIXES = ("", "{split}/", "images/", "images/{split}/")

READ_OPTIONS = (
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
WRITE_OPTIONS = (Option("layout", "Column layout of the written CSV", default="tensorflow", choices=tuple(LAYOUTS)),)

# ---------------------------------------------------------------------------------------------- sniff


def csv_sniff(source: Path) -> bool:
    """A ``.csv``/``.txt`` file whose first line splits into at least two cells."""
    if not source.is_file() or source.suffix.lower() not in (".csv", ".txt"):
        return False
    sample = read_sample(source)
    return looks_like_table(next((line for line in sample.splitlines() if line.strip()), ""))


# ---------------------------------------------------------------------------------------------- mapping csv -> annonorm


def csv_boxes_to_corners(
    values: np.ndarray, *, box_format: str, normalized: bool, widths: Any = None, heights: Any = None
) -> np.ndarray:
    """Turn columns of 4 CSV numbers in ``box_format`` (an array of shape ``(4, n)``) into rows
    ``x1, y1, x2, y2`` of absolute pixel corners rounded to 6 decimals.

    ``normalized`` values are fractions of the image side, scaled by ``widths`` and ``heights`` (one
    per box, or one for all); xyxy corners are taken as they are (no 1-based shift in CSV exports).
    """
    a, b, c, d = values
    corners = to_corners(box_format, a, b, c, d)
    if normalized:
        corners = scale(*corners, widths, heights)  # x by the width, y by the height
    return round_coords(np.stack(corners))


def csv_box_to_corners(
    *, values: Sequence[float], box_format: str, normalized: bool, width: int | None, height: int | None
) -> tuple[float, float, float, float]:
    """:func:`csv_boxes_to_corners` of one box; ``normalized`` values need ``width`` and ``height``."""
    if normalized and (width is None or height is None):
        raise ValueError("normalized coordinates need the image size")
    array = np.array(values, dtype=np.float64).reshape(4, 1)
    corners = csv_boxes_to_corners(array, box_format=box_format, normalized=normalized, widths=width, heights=height)
    x1, y1, x2, y2 = corners.ravel().tolist()
    return x1, y1, x2, y2


def csv_split_problem(text: str) -> str | None:
    """What is wrong with a split cell, or ``None``."""
    if SPLIT_PATTERN.match(text):
        return None
    return f"split {text!r} is not a valid split name (letters, digits, _ . -)"


def csv_normalized_problem(value: float) -> str | None:
    """What is wrong with a normalized coordinate (a fraction 0..1 of the image side), or ``None``."""
    if -NORMALIZED_SLACK <= value <= 1 + NORMALIZED_SLACK:
        return None
    return f"normalized coordinate {value} is outside 0..1; expected a fraction of the image side"


def csv_box_problem(corners: Sequence[float], box_format: str) -> str | None:
    """What is wrong with a box's absolute corners, or ``None``."""
    x1, y1, x2, y2 = corners
    if x2 < x1 or y2 < y1 or min(x1, y1) < 0:
        return (
            f"box ({x1}, {y1}, {x2}, {y2}) in {box_format} is not a box with non-negative corners x1 <= x2 and y1 <= y2"
        )
    return None


@dataclass
class _Block:
    """What the rows of a block gave, step by step: its images (first rows), boxes, classes and faults."""

    starts: list[int]
    ends: list[int]
    images: list[str]  # as found under the image directory, if they were
    splits: list[str]
    sizes: list[tuple[int, int] | None]
    faults: Faults
    dropped: set[int] = field(default_factory=set)  # confidence <= 0: the row adds nothing
    corners: np.ndarray | None = None  # rows x1, y1, x2, y2 (NaN on a row without a box)
    present: np.ndarray | None = None  # which rows hold a box (None: every one, when there are box columns)
    names: list[str | None] = field(default_factory=list)  # each box row's class (None: not in --classes)
    declares: dict[int, list[str]] = field(default_factory=dict)  # classes a row without a box names
    labels: dict[int, list[str]] = field(default_factory=dict)  # image labels, by row
    counts: dict[int, list[tuple[str, int]]] = field(default_factory=dict)  # counts, by row

    def boxed(self, row: int) -> bool:  # whether a row holds a box
        return self.corners is not None and (self.present is None or bool(self.present[row]))

    def live(self, row: int) -> bool:  # whether a row is still read (no fault, not dropped)
        return row not in self.faults and row not in self.dropped


class _CsvRows:
    """THE record mapping of one CSV file (a :class:`~annonorm.sources.tabular.GroupMapping`): the rows of
    one image make one record. Each step types whole columns of a block, in the order a row is read
    (first row: split, path, size; then size, confidence, box, class, counts); a column a fast typer
    leaves (an empty or odd cell) is typed cell by cell, and a bad row is worded by the ``csv_*_problem``
    and cell ``*_problem`` functions. An image's first bad row drops it; its earlier rows still declare
    their classes."""

    def __init__(
        self,
        mapping: ColumnMapping,
        output: Output,
        *,
        image_root: Path,
        classes: ClassList | None,
        options: Mapping[str, Any],
    ) -> None:
        self.mapping, self.table, self.output, self.image_root = mapping, mapping.table, output, image_root
        self.codes = classes.codes if classes is not None else None
        self.label_delimiter = options.get("label_delimiter") or None
        self.default_class = options.get("default_class") or "object"
        columns = mapping.columns
        self.box_columns = (
            None
            if mapping.box_format is None
            else ([columns["bbox"]] if "bbox" in columns else [columns[r] for r in BOX_FORMATS[mapping.box_format]])
        )
        self.size_columns = (columns.get("width"), columns.get("height"))
        self.finder = ImageFinder(image_root, IMAGE_PREFIXES)

    def map_block(self, block: Rows, stream: TableStream) -> None:
        """Map a block of whole images to records, reporting each bad image's first problem."""
        mapped = self._first_rows(block)
        confidence = self.mapping.columns.get("confidence")
        if confidence is not None:
            mapped.dropped = nonpositive_rows(block.columns[confidence], confidence, mapped.faults)
        if self.box_columns is not None:
            self._boxes(block, mapped)
        self._classes(block, mapped)
        self._emit(block, stream, mapped)

    def _first_rows(self, block: Rows) -> _Block:
        """Each image's split, path and size from its first row (split, then path, then size problems)."""
        mapping, columns, keys = self.mapping, block.columns, block.keys
        starts, ends = group_runs(keys)
        faults = Faults(self.table, block.numbers)
        split_column = mapping.columns.get("split")
        images, splits, found = [], [], []
        find, default_split = self.finder.find, mapping.default_split
        for start in starts:
            split = default_split
            if split_column is not None and (text := columns[split_column][start].strip()):
                problem = csv_split_problem(text)
                if problem is not None:
                    faults.add(start, InvalidDataError, problem, split_column)
                split = text
            name = keys[start].replace("\\", "/").removeprefix("./")  # Windows-style separators from some exporters
            path = None
            if start not in faults:
                try:
                    check_relative_path(name)
                except ValueError as exc:
                    problem = f"{exc}; expected a path relative to the image directory"
                    faults.add(start, UnsafePathError, problem, mapping.columns["image"])
                else:
                    path = find(name, split)
            images.append(path or name)
            splits.append(split)
            found.append(path is not None)

        def header_size(group: int) -> tuple[int, int] | None:
            return read_image_size(self.image_root / images[group]) if found[group] else None

        sizes = group_sizes(columns, self.size_columns, starts, faults, header_size)
        return _Block(starts, ends, images, splits, sizes, faults)

    def _boxes(self, block: Rows, mapped: _Block) -> None:
        """Each row's box corners: the numbers of its box cells, scaled when normalized, checked."""
        columns, mapping, faults = self.box_columns, self.mapping, mapped.faults
        assert columns is not None
        try:
            if len(columns) == 1:
                raise Irregular
            values = number_block(block.columns, columns, PARSE_NUMBER[self.table.decimal])
        except Irregular:
            if len(columns) == 1:
                values, mapped.present = bbox_cells(block.columns[columns[0]], columns[0], mapped.dropped, faults)
            else:
                values, mapped.present = number_cells(block.columns, columns, mapped.dropped, faults)
        widths = heights = None
        if mapping.normalized:
            owner = np.repeat(np.arange(len(mapped.starts)), np.subtract(mapped.ends, mapped.starts))
            sizes = np.array([size or (math.nan, math.nan) for size in mapped.sizes], dtype=np.float64)
            widths, heights = sizes[owner, 0], sizes[owner, 1]
            inside = ((values >= -NORMALIZED_SLACK) & (values <= 1 + NORMALIZED_SLACK)).all(0)
            for row in np.flatnonzero(np.isnan(widths) | ~inside).tolist():
                if not mapped.live(row) or (mapped.present is not None and not mapped.present[row]):
                    continue
                if math.isnan(widths[row]):
                    problem = (
                        f"normalized coordinates need the image size, but no width/height column is mapped "
                        f"and {mapped.images[int(owner[row])]} was not found under {self.image_root}"
                    )
                    faults.add(row, InvalidDataError, problem)
                    continue
                # Only a corner or centre is bounded by 1; a width or height is too, in every format.
                bad = [(i, text) for i, v in enumerate(values[:, row].tolist()) if (text := csv_normalized_problem(v))]
                if bad:
                    faults.add(row, InvalidDataError, bad[0][1], columns[min(bad[0][0], len(columns) - 1)])
        box_format = mapping.box_format or "xyxy"
        corners = mapped.corners = csv_boxes_to_corners(
            values, box_format=box_format, normalized=mapping.normalized, widths=widths, heights=heights
        )
        x1, y1, x2, y2 = corners
        for row in np.flatnonzero((x2 < x1) | (y2 < y1) | (x1 < 0) | (y1 < 0)).tolist():
            if mapped.live(row) and mapped.boxed(row):
                faults.add(
                    row, InvalidDataError, csv_box_problem(corners[:, row].tolist(), box_format) or "", columns[0]
                )

    def _class_name(self, faults: Faults, row: int, text: str, column: int | None) -> str | None:
        """The category of a class cell through ``--classes`` (``None``, the row's fault, when not listed)."""
        name = text if self.codes is None else self.codes.get(text)
        if name is None:
            faults.add(row, InvalidDataError, f"class {text!r} is not in the --classes list", column, named=True)
        return name

    def _classes(self, block: Rows, mapped: _Block) -> None:
        """Each box row's class; the classes, image labels and counts that the other rows give."""
        count, faults, label_column = len(block), mapped.faults, self.mapping.columns.get("label")
        boxed = (row for row in range(count) if mapped.boxed(row) and mapped.live(row))  # read when one is odd
        mapped.names = [self.default_class if self.codes is None else self.codes.get(self.default_class)] * count
        if label_column is None:
            for row in boxed if mapped.names[0] is None else ():
                self._class_name(faults, row, self.default_class, None)
        else:
            texts = list(map(str.strip, block.columns[label_column]))
            names = mapped.names = list(texts) if self.codes is None else [self.codes.get(text) for text in texts]
            for row in boxed if None in names or "" in names else ():
                if self._class_name(faults, row, texts[row], label_column) is not None and not texts[row]:
                    problem = "the row has a box but no class; expected a class name"
                    faults.add(row, InvalidDataError, problem, label_column, named=True)
            for row in range(count) if mapped.present is not None or self.box_columns is None else ():
                if texts[row] and not mapped.boxed(row) and mapped.live(row):
                    self._label_row(block, mapped, row, texts[row])
        for row in range(count) if self.mapping.count_columns or self.mapping.label_columns else ():
            if mapped.live(row):
                self._class_columns(block, mapped, row)

    def _label_row(self, block: Rows, mapped: _Block, row: int, text: str) -> None:
        """A row without a box: its classes label the image, or are counted (with a count column)."""
        label_column, count_column = self.mapping.columns["label"], self.mapping.columns.get("count")
        if self.label_delimiter is None:
            parts = [text]
        elif not self.label_delimiter.strip():
            parts = text.split()  # a blank delimiter means any run of whitespace
        else:
            parts = text.split(self.label_delimiter)
        names = [self._class_name(mapped.faults, row, part.strip(), label_column) for part in parts if part.strip()]
        if row in mapped.faults:
            return
        found = mapped.declares[row] = cast(list[str], names)  # declared, even when the count is bad
        if count_column is not None and (cell := block.columns[count_column][row].strip()):
            value = count_cell(cell, row, count_column, mapped.faults)
            if value is not None:
                mapped.counts.setdefault(row, []).extend((name, value) for name in found)
        else:
            mapped.labels.setdefault(row, []).extend(found)

    def _class_columns(self, block: Rows, mapped: _Block, row: int) -> None:
        """The count columns and one-hot columns of a row."""
        faults, decimal = mapped.faults, self.table.decimal
        for name, column in self.mapping.count_columns:
            if text := block.columns[column][row].strip():
                category = self._class_name(faults, row, name, column)
                value = None if category is None else count_cell(text, row, column, faults)
                if category is None or value is None:
                    return
                mapped.counts.setdefault(row, []).append((category, value))
        for name, column in self.mapping.label_columns:
            text = block.columns[column][row].strip()
            problem = flag_problem(text, decimal)
            if problem is not None:
                faults.add(row, ParseError, problem, column, named=True)
                return
            if flag_value(text, decimal):
                category = self._class_name(faults, row, name, column)
                if category is None:
                    return
                mapped.labels.setdefault(row, []).append(category)

    def _emit(self, block: Rows, stream: TableStream, mapped: _Block) -> None:
        """Declare the classes the rows name and write each image's record, or report its first problem."""
        numbers, keys, faults, names = block.numbers, block.keys, mapped.faults, mapped.names
        # Plain: every row a box and nothing else; the records are built here as make_record builds them.
        plain = mapped.present is None and mapped.corners is not None
        plain = plain and not (faults or mapped.dropped or mapped.declares or mapped.labels or mapped.counts)
        if plain and self.codes is None and all(map(lt, numbers, numbers[1:])):  # rows in file order
            firsts = dict(zip(reversed(names), reversed(numbers), strict=True))  # each class's first row
            stream.declare(sorted((number, name) for name, number in firsts.items() if name is not None))
        elif plain and self.codes is None:  # groups folded from scattered rows
            stream.declare(first_named([(n, name) for n, name in zip(numbers, names, strict=True) if name is not None]))
        elif self.codes is None:
            stream.declare(first_named(self._named(block, mapped)))
        boxes: list[dict[str, Any]] = []
        if mapped.corners is not None:
            boxes = [
                {"name": name, "x1": x1, "y1": y1, "x2": x2, "y2": y2}
                for name, x1, y1, x2, y2 in zip(names, *mapped.corners.tolist(), strict=True)
            ]
        emitted, path_text, add = self.output.emitted, str(self.table.path), self.output.writer.add
        for start, end, image, split, size in zip(
            mapped.starts, mapped.ends, mapped.images, mapped.splits, mapped.sizes, strict=True
        ):
            if faults and (cut := faults.first(start, end)) < end:
                stream.problem(faults[cut][0], keys[start], numbers[cut])
                continue
            earlier = emitted.get(image)
            if earlier is not None:
                problem = f"image {image!r} was already described by {earlier[0]} ({earlier[1]})"
                error = InvalidDataError(
                    f"{problem}; expected each image in one place",
                    file=self.table.path,
                    location=f"row {numbers[start]}",
                )
                stream.problem(error, keys[start])
                continue
            emitted[image] = (path_text, split)
            if not plain:
                add(split, self._record(mapped, start, end, image, size, boxes))
                continue
            counts: dict[str, int] = {}
            for name in cast(list[str], names[start:end]):
                counts[name] = counts.get(name, 0) + 1
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

    @staticmethod
    def _record(
        mapped: _Block, start: int, end: int, image: str, size: tuple[int, int] | None, boxes: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """The record of rows ``start`` to ``end``: their boxes, image labels and counts."""
        rows = [row for row in range(start, end) if row not in mapped.dropped]
        counts: dict[str, int] | None = None
        for name, value in chain.from_iterable(mapped.counts.get(row, ()) for row in rows):
            counts = counts if counts is not None else {}
            counts[name] = counts.get(name, 0) + value
        return make_record(
            image=image,
            width=size[0] if size is not None else None,
            height=size[1] if size is not None else None,
            boxes=[boxes[row] for row in rows if mapped.boxed(row)],
            labels=dict.fromkeys(chain.from_iterable(mapped.labels.get(row, ()) for row in rows)),
            counts=counts,
        )

    @staticmethod
    def _named(block: Rows, mapped: _Block) -> list[tuple[int, str]]:
        """(row, class) of each class a row names before its image's first problem, in group order."""
        named: list[tuple[int, str]] = []
        faults, names = mapped.faults, mapped.names
        for start, end in zip(mapped.starts, mapped.ends, strict=True):
            cut = faults.first(start, end)
            stop = cut + 1 if cut < end and faults[cut][1] else cut  # the bad row named its classes first
            for row in range(start, stop):
                if row not in mapped.dropped:
                    name = names[row]
                    if mapped.boxed(row) and name is not None:
                        named.append((block.numbers[row], name))
                    named += ((block.numbers[row], name) for name in mapped.declares.get(row, ()))
        return named


# ---------------------------------------------------------------------------------------------- mapping annonorm -> csv


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


# ---------------------------------------------------------------------------------------------- layout, source files


def _split_from_name(path: Path) -> str | None:
    tokens = re.split(r"[-_. ]+", path.stem.lower())
    return next((token for token in tokens if token in SPLIT_NAMES), None)


def _source_files(source: Path) -> list[Path]:
    """The CSV files of ``source``, each a regular file (a FIFO or a device named ``x.csv`` is refused)."""
    return table_files(source)


def _open_mapping(path: Path, options: Mapping[str, Any]) -> ColumnMapping:
    """Sniff the dialect, decide the header and resolve the column mapping of one CSV file."""
    default_split = options.get("split") or _split_from_name(path) or DEFAULT_SPLIT
    return open_mapping(path, options, PRESETS, ROLES, BOX_FORMATS, NUMERIC_ROLES, default_split)


# ---------------------------------------------------------------------------------------------- read


def read_csv(source: Path, ctx: ReadContext, strategy: Strategy | None = None) -> ReadResult:
    """Read a CSV file (or every ``.csv`` file of a directory) into ``ctx.sink``; ``strategy`` says how
    the table engine takes each file (every strategy gives the same output)."""
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
    output = Output(writer)
    for path in files:
        mapping = _open_mapping(path, options)
        writer.add_source_file(path)
        rows = _CsvRows(mapping, output, image_root=image_root, classes=classes, options=options)
        if classes is None:
            for name, _ in mapping.count_columns + mapping.label_columns:
                writer.category(name)
        stream = TableStream(
            mapping.table,
            mapping.columns["image"],
            rows,
            output,
            short_rows=options.get("short_rows") or "error",
            executor=ctx.executor,
            strategy=strategy or Strategy(),
        )
        stream.run()
    if not output.emitted and not writer.skipped:  # every data row gives an image or a problem: there is none
        header = ", ".join(mapping.table.header or ())
        found = f"no row under the header ({header})"
        if len(files) > 1:
            found = f"its {len(files)} .csv files have no data row"
        raise ParseError(f"{NOT_A_TABLE}{found}; {EXPECTED_TABLE}", file=source)
    name = source.name if source.is_dir() else source.stem
    return ReadResult(name=name or "csv", image_root=image_root)


# ---------------------------------------------------------------------------------------------- write


def write_csv(dataset: NormalizedSource, out: Path, *, options: Mapping[str, Any]) -> None:
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


# ---------------------------------------------------------------------------------------------- converter


class CsvConverter(Converter):
    """CSV tables of boxes, labels or counts, driven by a column mapping or a preset."""

    name = "csv"
    summary = "CSV tables (TensorFlow, VoTT, Kaggle, Open Images, crowd counts) via a column mapping"
    read_options = READ_OPTIONS
    write_options = WRITE_OPTIONS
    capabilities = Capabilities(image_labels=True, label_order=False, unknown_sizes=True)

    @classmethod
    def sniff(cls, source: Path) -> bool:
        """A ``.csv``/``.txt`` file whose first line splits into at least two cells."""
        return csv_sniff(source)

    @classmethod
    def source_files(cls, source: Path, options: Mapping[str, Any]) -> list[Path]:
        """The CSV file, or the ``.csv`` files of a directory."""
        return table_files(source, checked=False)  # for provenance: no check, no error

    def read(self, source: Path, ctx: ReadContext) -> ReadResult:
        """Read a CSV file (or every ``.csv`` file of a directory) into ``ctx.sink``."""
        return read_csv(source, ctx)

    def write(self, dataset: NormalizedSource, out: Path, *, options: Mapping[str, Any]) -> None:
        """Write ``<split>.csv`` per split (one row per box) and ``classes.txt``."""
        write_csv(dataset, out, options=options)
