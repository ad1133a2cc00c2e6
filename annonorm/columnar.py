"""Records <-> columns: annonorm's Parquet layout (DESIGN.md §7), written and read with pyarrow.

One file set per split (``OUT/<split>/part-00000.parquet``, ``part-00001.parquet``, ... once a file
passes about 256 MB), one row per image, row groups of about 64k images. The columns are the
record's fields with the JSONL's names, plus ``split``::

    image string, width int64, height int64, labels list<string>, counts map<string, int64>,
    boxes list<struct<name string, x1 double, y1 double, x2 double, y2 double,
                      polygon list<list<double>>, rle struct<size list<int64>, counts string>,
                      obb list<double>, keypoints list<struct<x double, y double, v int8>>,
                      score double, attributes string>>,
    mask string, id int64, id_text string, attributes string, split string

``attributes`` (of a record and of a box) are JSON text; an integer image id is ``id``, a string one
``id_text``. A field a record leaves out is null, so reading back gives the same JSONL, byte for byte.
The file's schema metadata carries ``annonorm.layout`` (:data:`LAYOUT_VERSION`), which the reader
checks. pyarrow is imported here only, lazily (``annonorm[parquet]``).

Split files are decoded with typed msgspec structs (attributes kept as their raw JSON text), so a
box never becomes a Python dict on the way to Parquet.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from annonorm.errors import MissingDependency, ParseError
from annonorm.io import UNDECODABLE, iter_lines
from annonorm.records import RECORD_KEYS, box_counts, label_list, merge_count_list, present_labels

if TYPE_CHECKING:
    import pyarrow  # type: ignore[import-untyped]

__all__ = [
    "FILE_BYTES",
    "LAYOUT_KEY",
    "LAYOUT_VERSION",
    "ROW_GROUP_ROWS",
    "arrow_schema",
    "iter_parquet_records",
    "part_files",
    "write_split",
]

#: Images per row group.
ROW_GROUP_ROWS = 65_536
#: A split's file is closed and the next one started once it passes this many bytes.
FILE_BYTES = 256 * 1024 * 1024
#: Schema metadata key naming the layout and its version.
LAYOUT_KEY = b"annonorm.layout"
LAYOUT_VERSION = b"annonorm-parquet-1"
PART_GLOB = "part-*.parquet"


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet  # type: ignore[import-untyped]
    except ImportError:
        raise MissingDependency("pyarrow", "parquet", "the Parquet layout") from None
    return pyarrow


def arrow_schema() -> pyarrow.Schema:
    """The Arrow schema of one split's Parquet files."""
    pa = _pyarrow()
    box = pa.struct(
        [
            ("name", pa.string()),
            ("x1", pa.float64()),
            ("y1", pa.float64()),
            ("x2", pa.float64()),
            ("y2", pa.float64()),
            ("polygon", pa.list_(pa.list_(pa.float64()))),
            ("rle", pa.struct([("size", pa.list_(pa.int64())), ("counts", pa.string())])),
            ("obb", pa.list_(pa.float64())),
            ("keypoints", pa.list_(pa.struct([("x", pa.float64()), ("y", pa.float64()), ("v", pa.int8())]))),
            ("score", pa.float64()),
            ("attributes", pa.string()),
        ]
    )
    fields = [
        ("image", pa.string(), False),
        ("width", pa.int64(), True),
        ("height", pa.int64(), True),
        ("labels", pa.list_(pa.string()), True),
        ("counts", pa.map_(pa.string(), pa.int64()), True),
        ("boxes", pa.list_(box), True),
        ("mask", pa.string(), True),
        ("id", pa.int64(), True),
        ("id_text", pa.string(), True),
        ("attributes", pa.string(), True),
        ("split", pa.string(), False),
    ]
    return pa.schema(
        [pa.field(name, kind, nullable=nullable) for name, kind, nullable in fields],
        metadata={LAYOUT_KEY: LAYOUT_VERSION},
    )


# --- JSONL -> columns ------------------------------------------------------------------------------


class _Rle(msgspec.Struct):
    size: list[int]
    counts: str


class _Box(msgspec.Struct):
    name: str
    x1: float
    y1: float
    x2: float
    y2: float
    polygon: list[list[float]] | None = None
    rle: _Rle | None = None
    obb: list[float] | None = None
    keypoints: list[tuple[float, float, int]] | None = None
    score: float | None = None
    attributes: msgspec.Raw = msgspec.Raw(b"")


class _Record(msgspec.Struct):
    image: str
    width: int | None = None
    height: int | None = None
    labels: list[str] | str | None = None
    counts: dict[str, int] | list[dict[str, int]] | None = None
    boxes: list[_Box] | None = None
    mask: str | None = None
    id: int | str | None = None
    attributes: msgspec.Raw = msgspec.Raw(b"")


_RECORD_DECODER = msgspec.json.Decoder(_Record)


def _raw_text(raw: msgspec.Raw) -> str | None:
    text = bytes(raw)
    return None if not text or text == b"null" else text.decode("utf-8")


class _Columns:
    """One batch of records as column lists (boxes flattened, with offsets)."""

    def __init__(self) -> None:
        self.rows: dict[str, list[Any]] = {name: [] for name in (*RECORD_KEYS, "id_text")}
        self.offsets: list[int] = [0]
        self.has_boxes: list[bool] = []
        self.box: dict[str, list[Any]] = {
            name: []
            for name in ("name", "x1", "y1", "x2", "y2", "polygon", "rle", "obb", "keypoints", "score", "attributes")
        }

    def __len__(self) -> int:
        return len(self.has_boxes)

    def add(self, record: _Record) -> None:
        rows, box = self.rows, self.box
        boxes = record.boxes if record.boxes is not None else []
        labels, counts = record.labels, record.counts
        # The shorthand forms and the derivations of records.canonical_record, on the typed struct.
        if isinstance(labels, str):
            labels = label_list(labels)
        if isinstance(counts, list):
            counts = merge_count_list(counts)
        if counts is None and boxes:
            counts = box_counts(b.name for b in boxes)
        if labels is None:
            labels = present_labels((b.name for b in boxes), counts or {})
        rows["image"].append(record.image)
        rows["width"].append(record.width)
        rows["height"].append(record.height)
        rows["labels"].append(labels)
        rows["counts"].append(None if counts is None else list(counts.items()))
        rows["mask"].append(record.mask)
        rows["id"].append(record.id if isinstance(record.id, int) else None)
        rows["id_text"].append(record.id if isinstance(record.id, str) else None)
        rows["attributes"].append(_raw_text(record.attributes))
        self.has_boxes.append(True)  # canonical records always carry a (possibly empty) box list
        for b in boxes:
            box["name"].append(b.name)
            box["x1"].append(b.x1)
            box["y1"].append(b.y1)
            box["x2"].append(b.x2)
            box["y2"].append(b.y2)
            box["polygon"].append(b.polygon)
            box["rle"].append(None if b.rle is None else {"size": b.rle.size, "counts": b.rle.counts})
            box["obb"].append(b.obb)
            box["keypoints"].append(
                None if b.keypoints is None else [{"x": x, "y": y, "v": v} for x, y, v in b.keypoints]
            )
            box["score"].append(b.score)
            box["attributes"].append(_raw_text(b.attributes))
        self.offsets.append(self.offsets[-1] + len(boxes))

    def table(self, schema: pyarrow.Schema, split: str) -> pyarrow.Table:
        pa = _pyarrow()
        box_type = schema.field("boxes").type.value_type
        children = [pa.array(self.box[f.name], type=f.type) for f in box_type]
        boxes = pa.ListArray.from_arrays(
            pa.array(self.offsets, type=pa.int32()), pa.StructArray.from_arrays(children, fields=list(box_type))
        )
        columns = []
        for field in schema:
            if field.name == "boxes":
                columns.append(boxes)
            elif field.name == "split":
                columns.append(pa.array([split] * len(self), type=field.type))
            else:
                columns.append(pa.array(self.rows[field.name], type=field.type))
        return pa.Table.from_arrays(columns, schema=schema)


def write_split(
    split_file: Path,
    directory: Path,
    split: str,
    *,
    row_group_rows: int = ROW_GROUP_ROWS,
    file_bytes: int = FILE_BYTES,
    progress: Any = None,
) -> list[Path]:
    """Write the records of the JSONL ``split_file`` as Parquet files ``directory/part-NNNNN.parquet``.

    The split is streamed, one row group at a time; a file is closed once it passes ``file_bytes``.
    Returns the files written (at least one: an empty split gets one file with no rows).
    """
    pa = _pyarrow()
    pq = pa.parquet
    schema = arrow_schema()
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    writer: Any = None

    def flush(columns: _Columns) -> None:
        nonlocal writer
        if writer is None:
            path = directory / f"part-{len(written):05d}.parquet"
            written.append(path)
            writer = pq.ParquetWriter(path, schema, compression="zstd")
        writer.write_table(columns.table(schema, split), row_group_size=row_group_rows)
        if progress is not None:
            progress(len(columns))
        if writer.file_handle is not None and writer.file_handle.tell() >= file_bytes:
            writer.close()
            writer = None

    columns = _Columns()
    for number, line in iter_lines(split_file):
        try:
            record = _RECORD_DECODER.decode(line)
        except (msgspec.ValidationError, *UNDECODABLE) as exc:
            raise ParseError(
                f"record cannot be read ({exc}); run annonorm validate", file=split_file, location=f"line {number}"
            ) from None
        columns.add(record)
        if len(columns) == row_group_rows:
            flush(columns)
            columns = _Columns()
    if len(columns) or not written:
        flush(columns)
    if writer is not None:
        writer.close()
    return written


# --- columns -> records ----------------------------------------------------------------------------


def part_files(directory: Path) -> list[Path]:
    """A split's Parquet files, in order."""
    return sorted(directory.glob(PART_GLOB))


def check_schema(found: pyarrow.Schema, path: Path) -> None:
    """Refuse a Parquet file that is not annonorm's layout, or whose columns are not the layout's types."""
    metadata = found.metadata or {}
    expected = arrow_schema()
    if metadata.get(LAYOUT_KEY) != LAYOUT_VERSION:
        names = {field.name for field in found}
        if not {"image", "boxes"} <= names:
            raise ParseError(
                "not annonorm's Parquet layout: expected the columns image, boxes, ... (annonorm export parquet)",
                file=path,
            )
    for field in expected:
        index = found.get_field_index(field.name)
        if index < 0:
            raise ParseError(f"schema mismatch: column {field.name!r} is missing", file=path)
        if not found.field(index).type.equals(field.type):
            raise ParseError(
                f"schema mismatch: column {field.name!r} is {found.field(index).type}, expected {field.type}",
                file=path,
            )
    extra = [field.name for field in found if expected.get_field_index(field.name) < 0]
    if extra:
        raise ParseError(f"schema mismatch: unexpected column {extra[0]!r}", file=path)


def _json(text: str | None, path: Path, place: str) -> Any:
    if text is None:
        return None
    try:
        return msgspec.json.decode(text)
    except UNDECODABLE as exc:
        raise ParseError(f"attributes are not valid JSON ({exc})", file=path, location=place) from None


def _box(box: dict[str, Any], path: Path, place: str) -> dict[str, Any]:
    keypoints = box["keypoints"]
    if keypoints is not None:
        box["keypoints"] = [[k["x"], k["y"], k["v"]] for k in keypoints]
    box["attributes"] = _json(box["attributes"], path, place)
    return box


def iter_parquet_records(paths: Sequence[Path], split: str) -> Iterator[dict[str, Any]]:
    """Stream the records of a split's Parquet files (checked against the layout) as canonical dicts."""
    pa = _pyarrow()
    pq = pa.parquet
    for path in paths:
        try:
            parquet = pq.ParquetFile(path)
        except (pa.ArrowException, OSError) as exc:
            raise ParseError(f"not a readable Parquet file ({' '.join(str(exc).split())})", file=path) from None
        check_schema(parquet.schema_arrow, path)
        row = 0
        for batch in parquet.iter_batches(batch_size=8192):
            for data in batch.to_pylist():
                place = f"row {row}"
                row += 1
                found = data.pop("split")
                if found != split:
                    raise ParseError(f"row belongs to split {found!r}, not {split!r}", file=path, location=place)
                id_text = data.pop("id_text")
                if id_text is not None:
                    data["id"] = id_text
                if data["counts"] is not None:
                    data["counts"] = dict(data["counts"])
                if data["boxes"] is not None:
                    data["boxes"] = [_box(b, path, f"{place}.boxes[{i}]") for i, b in enumerate(data["boxes"])]
                data["attributes"] = _json(data["attributes"], path, f"{place}.attributes")
                if data["image"] is None:
                    raise ParseError("image is null; expected the image path", file=path, location=place)
                yield data
