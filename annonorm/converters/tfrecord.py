"""TFRecord of the TensorFlow Object Detection API: ``tf.train.Example`` records, read and written without TensorFlow.

Each record is one image (:mod:`annonorm.sources.tfexample` reads the framing, checks both CRC32Cs and decodes
the protobuf). Features: ``image/encoded`` (the image bytes; may be empty), ``image/filename``,
``image/source_id``, ``image/height``, ``image/width``, ``image/format`` (``jpeg``/``png``), and per object
``image/object/bbox/xmin|xmax|ymin|ymax`` (fractions of the image side, 0..1), ``image/object/class/label``
(1-based ids of ``label_map.pbtxt``; 0 is TF's background), ``image/object/class/text``,
``image/object/difficult``/``truncated`` (0/1 -> bool attributes), ``image/object/view`` (text attribute) and
``image/object/mask`` (one PNG per object -> ``rle``). A box's class is its label's label-map name (its
``display_name`` when there is one), else its text, else the label id as text.

``label_map.pbtxt`` is the text protobuf ``item { id: 1 name: 'cat' display_name: 'Cat' }`` (one item per class,
``#`` comments). Layouts (SOURCE): one ``.tfrecord`` file; a folder of ``<split>.tfrecord`` files (shards
``<split>.tfrecord-00000-of-00002`` are one split; a missing shard is an error) with ``label_map.pbtxt`` beside;
or one folder per split holding both (Roboflow's export). Record images are the ``filename``; with
``--extract-images DIR`` the embedded images are written to ``DIR`` inside the output and ``image_root`` points
there, else images are looked up under ``--images`` (default: the source folder). The record id is the
``source_id`` (a whole number when it is one).

The writer puts ``<split>.tfrecord`` per split (``--embed-images`` fills ``image/encoded`` from the image files;
TF's training input needs it) and ``label_map.pbtxt`` (ids: the categories' own integer ids when they all have
one, else 1..N). Coordinates are stored as 32-bit fractions: they come back within a pixel fraction of 1e-6.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from annonorm.converters.base import Capabilities, Converter, Option, ReadContext, ReadResult, make_record
from annonorm.errors import AnnonormError, InvalidDataError, ParseError
from annonorm.fsutil import read_regular_bytes
from annonorm.geometry import round_coord
from annonorm.images import read_image_size
from annonorm.io import NormalizedSource, read_text
from annonorm.paths import check_relative_path
from annonorm.sources.images import list_dir
from annonorm.sources.tfexample import BYTES, FLOATS, INTS, ProtoError, decode_example, encode_example, frame_record
from annonorm.sources.tfexample import iter_records as iter_tfrecords

__all__ = [
    "TfrecordConverter",
    "example_to_record",
    "label_map_text",
    "parse_label_map",
    "record_to_example",
]

# ---------------------------------------------------------------------------------------------- constants

LABEL_MAP = "label_map.pbtxt"
#: ``train.tfrecord``, ``train.record``, ``train.tfrecord-00001-of-00004``: the split and the shard.
RECORD_NAME = re.compile(r"^(?P<split>.+?)\.(?:tfrecord|record|tfrec)(?:-(?P<shard>\d+)-of-(?P<total>\d+))?$")
BOX = "image/object/bbox/"
FLAGS = ("difficult", "truncated")
SUFFIXES = {"jpeg": ".jpg", "jpg": ".jpg", "png": ".png"}
_ITEM = re.compile(r"item\s*\{(?P<body>[^{}]*)\}", re.S)
_FIELD = re.compile(r"(?P<key>\w+)\s*:\s*(?P<value>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[-\w.]+)")

# ---------------------------------------------------------------------------------------------- sniff


def _record_files(folder: Path) -> list[Path]:
    return sorted(Path(e.path) for e in list_dir(folder) if e.is_file() and RECORD_NAME.match(e.name))


def _sniff(source: Path) -> bool:
    try:
        if source.is_file():
            return bool(RECORD_NAME.match(source.name))
        return source.is_dir() and (
            bool(_record_files(source)) or any(e.is_dir() and _record_files(Path(e.path)) for e in list_dir(source))
        )
    except (OSError, AnnonormError):
        return False


# ------------------------------------------------------------------------------------ mapping tfrecord -> annonorm


def _unquote(value: str) -> str:
    if value[:1] in "'\"":
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def parse_label_map(*, text: str, file: str) -> list[tuple[int, str, str | None]]:
    """The ``(id, name, display_name)`` of each ``item { }`` of a ``label_map.pbtxt``, in file order."""
    text = re.sub(r"#[^\n]*", "", text)
    items = []
    for match in _ITEM.finditer(text):
        fields = {m["key"]: _unquote(m["value"]) for m in _FIELD.finditer(match["body"])}
        line = text.count("\n", 0, match.start()) + 1
        if not fields.get("id", "").lstrip("-").isdigit() or not (fields.get("name") or fields.get("display_name")):
            raise ParseError("expected item { id: <integer> name: '<class>' }", file=file, location=f"line {line}")
        name = fields.get("name") or fields["display_name"]
        items.append((int(fields["id"]), name, fields.get("display_name")))
    if not items and text.strip():
        raise ParseError("no item { id: ... name: ... } entries", file=file)
    return items


def _text(feature: tuple[str, list[Any]] | None) -> str | None:
    if feature is None or feature[0] != BYTES or not feature[1] or not feature[1][0]:
        return None
    return bytes(feature[1][0]).decode("utf-8", errors="replace")


def _one_int(feature: tuple[str, list[Any]] | None) -> int | None:
    return int(feature[1][0]) if feature is not None and feature[0] == INTS and feature[1] else None


def _mask_rle(png: bytes) -> dict[str, Any] | None:
    import numpy as np
    from PIL import Image

    from annonorm.masks import instance_mask_to_coco_rle

    with Image.open(io.BytesIO(png)) as image:
        pixels = (np.asarray(image.convert("L")) > 0).astype(np.uint8)
    return instance_mask_to_coco_rle(mask=pixels, index=1)


def example_to_record(
    *, features: Mapping[str, tuple[str, list[Any]]], classes: Mapping[int, str], index: int
) -> tuple[dict[str, Any], bytes]:
    """The record of one decoded Example and its embedded image bytes (``b""`` when none).

    ``classes`` maps label-map ids to class names. Raises :class:`ValueError` saying what was expected.
    """
    image_format = (_text(features.get("image/format")) or "jpeg").lower()
    source_id = _text(features.get("image/source_id"))
    image = _text(features.get("image/filename")) or f"{source_id or index}{SUFFIXES.get(image_format, '.jpg')}"
    width, height = _one_int(features.get("image/width")), _one_int(features.get("image/height"))
    sides = {}
    for side in ("xmin", "xmax", "ymin", "ymax"):
        kind, values = features.get(BOX + side, (FLOATS, []))
        if kind != FLOATS:
            raise ValueError(f"expected {BOX}{side} as a float_list, found a {kind} list")
        sides[side] = values
    count = len(sides["xmin"])
    if any(len(values) != count for values in sides.values()):
        raise ValueError(f"the bbox lists have different lengths ({', '.join(str(len(v)) for v in sides.values())})")
    if count and (not width or not height):
        raise ValueError("boxes need image/width and image/height > 0 (the coordinates are fractions of them)")
    labels = features.get("image/object/class/label", (INTS, []))[1]
    texts = features.get("image/object/class/text", (BYTES, []))[1]
    masks = features.get("image/object/mask", (BYTES, []))
    boxes = []
    for k in range(count):
        label = int(labels[k]) if k < len(labels) else None
        text = bytes(texts[k]).decode("utf-8", errors="replace") if k < len(texts) and texts[k] else None
        name = classes.get(label) if label is not None else None
        name = name or text or (str(label) if label is not None else None)
        if name is None:
            raise ValueError(f"object {k + 1} has neither image/object/class/label nor class/text")
        assert width and height
        box: dict[str, Any] = {
            "name": name,
            "x1": round_coord(sides["xmin"][k] * width),
            "y1": round_coord(sides["ymin"][k] * height),
            "x2": round_coord(sides["xmax"][k] * width),
            "y2": round_coord(sides["ymax"][k] * height),
        }
        if masks[0] == BYTES and k < len(masks[1]) and masks[1][k]:
            rle = _mask_rle(bytes(masks[1][k]))
            if rle is not None:
                box["rle"] = rle
        attributes: dict[str, Any] = {}
        for flag in FLAGS:
            values = features.get(f"image/object/{flag}", (INTS, []))[1]
            if k < len(values):
                attributes[flag] = bool(values[k])
        views = features.get("image/object/view", (BYTES, []))[1]
        if k < len(views) and views[k]:
            attributes["view"] = bytes(views[k]).decode("utf-8", errors="replace")
        if attributes:
            box["attributes"] = attributes
        boxes.append(box)
    record_id: int | str | None = int(source_id) if source_id and source_id.isdigit() else source_id
    encoded = features.get("image/encoded", (BYTES, [b""]))
    data = bytes(encoded[1][0]) if encoded[0] == BYTES and encoded[1] else b""
    return make_record(image=image, width=width, height=height, boxes=boxes, id=record_id), data


# ------------------------------------------------------------------------------------ mapping annonorm -> tfrecord


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def label_map_text(*, classes: Sequence[tuple[int, str]]) -> str:
    """The ``label_map.pbtxt`` of ``(id, name)`` pairs."""
    return "".join(f"item {{\n  id: {number}\n  name: {_quote(name)}\n}}\n" for number, name in classes)


def record_to_example(*, record: Mapping[str, Any], label_ids: Mapping[str, int], encoded: bytes = b"") -> bytes:
    """The serialized Example of one record (sizes known: fractions need them)."""
    width, height = record["width"], record["height"]
    boxes = record["boxes"]
    suffix = PurePosixPath(record["image"]).suffix.lower()
    image_format = "png" if suffix == ".png" else "jpeg"
    source_id = str(record["id"]) if record.get("id") is not None else ""
    features: list[tuple[str, tuple[str, Sequence[Any]]]] = [
        ("image/height", (INTS, [height])),
        ("image/width", (INTS, [width])),
        ("image/filename", (BYTES, [record["image"].encode("utf-8")])),
        ("image/source_id", (BYTES, [source_id.encode("utf-8")])),
        ("image/format", (BYTES, [image_format.encode()])),
        ("image/encoded", (BYTES, [encoded])),
        (BOX + "xmin", (FLOATS, [b["x1"] / width for b in boxes])),
        (BOX + "xmax", (FLOATS, [b["x2"] / width for b in boxes])),
        (BOX + "ymin", (FLOATS, [b["y1"] / height for b in boxes])),
        (BOX + "ymax", (FLOATS, [b["y2"] / height for b in boxes])),
        ("image/object/class/text", (BYTES, [b["name"].encode("utf-8") for b in boxes])),
        ("image/object/class/label", (INTS, [label_ids[b["name"]] for b in boxes])),
    ]
    attributes = [b.get("attributes") or {} for b in boxes]
    for flag in FLAGS:
        if any(flag in a for a in attributes):
            features.append((f"image/object/{flag}", (INTS, [int(bool(a.get(flag))) for a in attributes])))
    if any(isinstance(a.get("view"), str) for a in attributes):
        views = [str(a["view"]).encode("utf-8") if isinstance(a.get("view"), str) else b"" for a in attributes]
        features.append(("image/object/view", (BYTES, views)))
    return encode_example(features)


# ---------------------------------------------------------------------------------------------- layout


def _splits(source: Path) -> Iterator[tuple[str, list[Path], Path | None]]:
    """``(split, record files in shard order, label map or None)`` of the layouts above."""
    folders = [source.parent] if source.is_file() else [source]
    if source.is_dir() and not _record_files(source):
        folders = sorted(Path(e.path) for e in list_dir(source) if e.is_dir() and _record_files(Path(e.path)))
    for folder in folders:
        files = [source] if source.is_file() else _record_files(folder)
        label_map = next((p for p in (folder / LABEL_MAP, folder.parent / LABEL_MAP) if p.is_file()), None)
        label_map = label_map or next(iter(sorted(folder.glob(f"*{LABEL_MAP}"))), None)
        groups: dict[str, list[tuple[int, int, Path]]] = {}
        for path in files:
            match = RECORD_NAME.match(path.name)
            assert match is not None
            shard, total = int(match["shard"] or 0), int(match["total"] or 1)
            groups.setdefault(match["split"], []).append((shard, total, path))
        for base, shards in groups.items():
            shards.sort()
            total = shards[0][1]
            if [s for s, _, _ in shards] != list(range(total)) or any(t != total for _, t, _ in shards):
                missing = sorted(set(range(total)) - {s for s, _, _ in shards})
                raise ParseError(
                    f"incomplete shard set: expected {total} shards, missing {missing or 'none'} "
                    f"(found {', '.join(p.name for _, _, p in shards)})",
                    file=folder,
                )
            split = folder.name if folder != source.parent and folder != source and len(groups) == 1 else base
            yield split, [p for _, _, p in shards], label_map


def _source_files(source: Path, options: Mapping[str, Any]) -> list[Path]:
    found: list[Path] = []
    for _, files, label_map in _splits(source):
        found += [*([label_map] if label_map and label_map not in found else []), *files]
    return found


# ---------------------------------------------------------------------------------------------- read


def _extract(directory: Path, image: str, data: bytes) -> None:
    target = directory / check_relative_path(image)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def _read(source: Path, ctx: ReadContext) -> ReadResult:
    writer = ctx.sink
    splits = list(_splits(source))
    if not splits:
        raise ParseError("no TFRecord files here: expected <split>.tfrecord files or <split>/ folders", file=source)
    extract = ctx.options.get("extract_images")
    out_images = writer.directory / check_relative_path(str(extract)) if extract else None
    image_root = ctx.images or (source.parent if source.is_file() else source)
    for split, files, label_map in splits:
        classes: dict[int, str] = {}
        if label_map is not None:
            writer.add_source_file(label_map)
            for number, name, display in parse_label_map(text=read_text(label_map, "label map"), file=str(label_map)):
                shown = display or name
                writer.category(shown, number, {"labelmap_name": name} if display and display != name else None)
                classes[number] = shown
        writer.declare_split(split)
        for path in files:
            writer.add_source_file(path)
            for index, (offset, data) in enumerate(iter_tfrecords(path)):
                try:
                    record, encoded = example_to_record(features=decode_example(data), classes=classes, index=index)
                    if out_images is not None and encoded:
                        _extract(out_images, record["image"], encoded)
                except (ProtoError, ValueError) as exc:
                    writer.problem(InvalidDataError(str(exc), file=path, location=f"record at byte {offset}"))
                    continue
                if out_images is not None and encoded and record["width"] is None:
                    size = read_image_size(out_images / record["image"])
                    record["width"], record["height"] = size if size else (None, None)
                for box in record["boxes"]:
                    writer.category(box["name"])
                writer.add(split, record)
    # The extracted images live inside the output: the caller maps a root below its temporary directory.
    root = out_images if out_images is not None else image_root
    return ReadResult(name=(source.stem if source.is_file() else source.resolve().name) or "tfrecord", image_root=root)


# ---------------------------------------------------------------------------------------------- write


def _label_ids(dataset: NormalizedSource) -> dict[str, int]:
    """Class name -> label id: the categories' own positive integer ids when they all have distinct ones, else 1..N."""
    categories = dataset.manifest.categories
    own = [c.source_id for c in categories]
    if all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in own) and len(set(own)) == len(own):
        return {c.name: int(c.source_id) for c in categories}  # type: ignore[arg-type]
    return {c.name: c.id + 1 for c in categories}


def _write(dataset: NormalizedSource, out: Path, options: Mapping[str, Any]) -> None:
    ids = _label_ids(dataset)
    (out / LABEL_MAP).write_text(
        label_map_text(classes=[(number, name) for name, number in ids.items()]), encoding="utf-8", newline=""
    )
    for split in dataset.manifest.splits:
        with (out / f"{split}.tfrecord").open("wb") as stream:
            for index, record in enumerate(dataset.records(split), start=1):
                if not record.get("width") or not record.get("height"):
                    raise InvalidDataError(
                        "the image size is unknown; TFRecord boxes are fractions of it",
                        file=dataset.split_path(split),
                        location=f"record {index}",
                    )
                encoded = b""
                if options.get("embed_images"):
                    encoded = read_regular_bytes(dataset.image_path(record["image"]), "image")
                stream.write(frame_record(record_to_example(record=record, label_ids=ids, encoded=encoded)))


# ---------------------------------------------------------------------------------------------- the converter


class TfrecordConverter(Converter):
    """TF Object Detection API TFRecords (``tf.train.Example``) and ``label_map.pbtxt``, both ways."""

    name = "tfrecord"
    summary = "TF Object Detection API TFRecord (tf.train.Example, label_map.pbtxt, shards), without TensorFlow"
    read_options = (
        Option("extract_images", "Write the embedded images (image/encoded) to this folder inside the output"),
    )
    write_options = (
        Option("embed_images", "Put each image file's bytes in image/encoded (TF training needs it)", type=bool),
    )
    capabilities = Capabilities(
        reserved_attributes=frozenset({*FLAGS, "view"}),
        ids=True,
        category_order=True,
        fraction_decimals=6,
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
