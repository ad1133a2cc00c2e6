"""Hugging Face ``datasets`` object-detection layout: Parquet shards with ``objects`` in COCO ``xywh`` pixels.

The layout the Hub serves for detection sets (cppe-5, fashionpedia, ...) and ``Dataset.push_to_hub`` writes::

    README.md                                   # the dataset card (YAML header: configs, features)
    data/<split>-00000-of-0000N.parquet         # one row per image

Columns: ``image_id`` (int64), ``image`` (the ``Image`` feature: a struct of ``bytes`` and ``path``; the path only
unless ``--embed-images``), ``width``, ``height`` (int32), ``objects`` = {``id`` (int64), ``area`` (float64),
``bbox`` (four float64: ``[x_min, y_min, width, height]`` in absolute pixels, COCO's convention), ``category``
(a ``ClassLabel``: an index into the names stored in the features metadata, the Parquet schema's
``huggingface`` key)}. ``datasets.load_dataset("parquet", data_files=...)`` reads it with those features.

The reader takes such a folder (a Hub snapshot), with shards under ``data/``, ``<split>/`` or beside each other
(the split is the file name before ``-NNNNN-of-NNNNN``); ``objects`` may also be a list of per-object dicts.
``--bbox-format xyxy`` reads sets whose ``bbox`` holds corners. A ``category`` that is a string is the class
name; an integer without ``ClassLabel`` names is named by its value. Object ``id`` and ``area`` become the box
attributes ``id`` and ``area``; ``image_id`` the record id. Embedded image bytes without a path are written to
``--extract-images DIR`` inside the output as ``<image_id>.<jpg|png>``.

Parquet is read through ``datasets`` itself (streaming: nothing is cached), so ``annonorm[hf]`` is needed.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from annonorm.converters.base import Capabilities, Converter, Option, ReadContext, ReadResult, make_record
from annonorm.errors import AnnonormError, InvalidDataError, MissingDependency, ParseError
from annonorm.fsutil import read_regular_bytes
from annonorm.geometry import round_coord
from annonorm.io import NormalizedSource, open_dataset
from annonorm.paths import check_relative_path
from annonorm.sources.images import list_dir

__all__ = ["HfConverter", "hf_features", "hf_row_to_record", "record_to_hf_row", "to_hf"]

# ---------------------------------------------------------------------------------------------- constants

DATA_DIR = "data"
CARD = "README.md"
#: ``train-00000-of-00002.parquet`` (the Hub may add ``-<hash>`` before the suffix).
SHARD_NAME = re.compile(r"^(?P<split>.+?)-(?P<shard>\d{5})-of-(?P<total>\d{5})(?:-[0-9a-f]+)?\.parquet$")
ROWS_PER_SHARD = 100_000
BOX_FORMATS = ("xywh", "xyxy")


def _datasets() -> Any:
    try:
        import datasets  # type: ignore[import-untyped]
    except ImportError:
        raise MissingDependency("datasets", "hf", "the Hugging Face datasets layout") from None
    return datasets


@contextlib.contextmanager
def _quiet(datasets: Any) -> Iterator[None]:
    """datasets' own progress bars off (annonorm shows its own), and no tqdm monitor thread: a process with
    another thread never forks (the engine's rule), so one left running would slow every later conversion."""
    import tqdm  # type: ignore[import-untyped]

    was_on = datasets.is_progress_bar_enabled()
    interval = tqdm.tqdm.monitor_interval
    datasets.disable_progress_bars()
    tqdm.tqdm.monitor_interval = 0
    try:
        yield
    finally:
        tqdm.tqdm.monitor_interval = interval
        if was_on:
            datasets.enable_progress_bars()


# ---------------------------------------------------------------------------------------------- sniff


def _parquet_files(folder: Path) -> list[Path]:
    return sorted(Path(e.path) for e in list_dir(folder) if e.is_file() and e.name.endswith(".parquet"))


def _shard_folders(root: Path) -> list[Path]:
    if (root / DATA_DIR).is_dir() and _parquet_files(root / DATA_DIR):
        return [root / DATA_DIR]
    if _parquet_files(root):
        return [root]
    return sorted(Path(e.path) for e in list_dir(root) if e.is_dir() and _parquet_files(Path(e.path)))


def _sniff(source: Path) -> bool:
    try:
        return source.is_dir() and any(
            SHARD_NAME.match(p.name) for f in _shard_folders(source) for p in _parquet_files(f)
        )
    except (OSError, AnnonormError):
        return False


# ------------------------------------------------------------------------------------ mapping hf -> annonorm


def _objects(value: Any) -> dict[str, list[Any]]:
    """``objects`` as a dict of lists (datasets' ``Sequence`` of a dict), from that or a list of dicts."""
    if value is None:
        return {}
    if isinstance(value, list):
        keys = dict.fromkeys(k for item in value if isinstance(item, dict) for k in item)
        return {k: [item.get(k) if isinstance(item, dict) else None for item in value] for k in keys}
    if isinstance(value, dict):
        return value
    raise ValueError(f"expected objects as a struct of lists or a list of structs, found {type(value).__name__}")


def hf_row_to_record(
    *, row: Mapping[str, Any], names: Sequence[str] | None, box_format: str, image: str
) -> dict[str, Any]:
    """The record of one row; ``names`` are the ClassLabel names (None: categories are names or bare ints).

    Raises :class:`ValueError` saying what was expected.
    """
    objects = _objects(row.get("objects"))
    bboxes = objects.get("bbox") or []
    categories = objects.get("category") or []
    if len(categories) != len(bboxes):
        raise ValueError(f"objects has {len(bboxes)} bbox and {len(categories)} category values")
    boxes = []
    for k, (bbox, category) in enumerate(zip(bboxes, categories, strict=True)):
        if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
            raise ValueError(f"object {k}: expected bbox [x, y, w, h] of 4 numbers, found {bbox!r}")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in bbox):
            raise ValueError(f"object {k}: the bbox values must be finite numbers, found {bbox!r}")
        a, b, c, d = (float(v) for v in bbox)
        x2, y2 = (a + c, b + d) if box_format == "xywh" else (c, d)
        if isinstance(category, str):
            name = category
        elif isinstance(category, int) and names is not None and 0 <= category < len(names):
            name = names[category]
        elif isinstance(category, int) and names is None:
            name = str(category)
        else:
            raise ValueError(f"object {k}: category {category!r} is not one of the {len(names or ())} ClassLabel names")
        box: dict[str, Any] = {"name": name, "x1": round_coord(a), "y1": round_coord(b)}
        box |= {"x2": round_coord(x2), "y2": round_coord(y2)}
        attributes = {key: objects[key][k] for key in ("id", "area") if objects.get(key) and k < len(objects[key])}
        attributes = {key: value for key, value in attributes.items() if value is not None}
        if attributes:
            box["attributes"] = attributes
        boxes.append(box)
    image_id = row.get("image_id")
    width, height = row.get("width"), row.get("height")
    return make_record(
        image=image,
        width=width if isinstance(width, int) and width > 0 else None,
        height=height if isinstance(height, int) and height > 0 else None,
        boxes=boxes,
        id=image_id if isinstance(image_id, (int, str)) and not isinstance(image_id, bool) else None,
    )


# ------------------------------------------------------------------------------------ mapping annonorm -> hf


def hf_features(names: Sequence[str]) -> Any:
    """The ``datasets.Features`` of the layout, with ``names`` as the ClassLabel names."""
    datasets = _datasets()
    value, sequence = datasets.Value, datasets.List
    return datasets.Features(
        {
            "image_id": value("int64"),
            "image": datasets.Image(),
            "width": value("int32"),
            "height": value("int32"),
            "objects": {
                "id": sequence(value("int64")),
                "area": sequence(value("float64")),
                "bbox": sequence(sequence(value("float64"), length=4)),
                "category": sequence(datasets.ClassLabel(names=list(names))),
            },
        }
    )


def record_to_hf_row(
    *, record: Mapping[str, Any], index: int, category_ids: Mapping[str, int], image: dict[str, Any]
) -> dict[str, Any]:
    """One row: ``image_id`` is the record's integer id (else ``index``), object ids and areas from the box
    attributes (else the box's place in the image and ``w * h``)."""
    objects: dict[str, list[Any]] = {"id": [], "area": [], "bbox": [], "category": []}
    for k, box in enumerate(record["boxes"]):
        attributes = box.get("attributes") or {}
        w, h = box["x2"] - box["x1"], box["y2"] - box["y1"]
        own_id, area = attributes.get("id"), attributes.get("area")
        objects["id"].append(own_id if isinstance(own_id, int) and not isinstance(own_id, bool) else k)
        objects["area"].append(float(area) if isinstance(area, (int, float)) and not isinstance(area, bool) else w * h)
        objects["bbox"].append([box["x1"], box["y1"], w, h])
        objects["category"].append(category_ids[box["name"]])
    record_id = record.get("id")
    image_id = record_id if isinstance(record_id, int) and not isinstance(record_id, bool) else index
    return {"image_id": image_id, "image": image, "width": record.get("width"), "height": record.get("height")} | {
        "objects": objects
    }


def _card(names: Sequence[str], splits: Mapping[str, int]) -> str:
    """The dataset card: YAML header (configs, features, splits in name order) and the box convention."""
    splits = dict(sorted(splits.items()))
    configs = "".join(f"  - split: {s}\n    path: {DATA_DIR}/{s}-*.parquet\n" for s in splits)
    labels = "".join(f"          '{k}': {json.dumps(n)}\n" for k, n in enumerate(names))
    split_info = "".join(f"  - name: {s}\n    num_examples: {n}\n" for s, n in splits.items())
    return (
        "---\nconfigs:\n- config_name: default\n  data_files:\n"
        + configs
        + "dataset_info:\n  features:\n  - name: image_id\n    dtype: int64\n  - name: image\n    dtype: image\n"
        "  - name: width\n    dtype: int32\n  - name: height\n    dtype: int32\n  - name: objects\n    struct:\n"
        "    - name: id\n      list: int64\n    - name: area\n      list: float64\n"
        "    - name: bbox\n      list:\n        list: float64\n        length: 4\n"
        "    - name: category\n      list:\n        class_label:\n          names:\n"
        + labels
        + "  splits:\n"
        + split_info
        + "task_categories:\n- object-detection\n---\n\n"
        "# Object detection dataset\n\nWritten by annonorm. One row per image. `objects.bbox` is "
        "**COCO `[x_min, y_min, width, height]` in absolute pixels** (origin at the top-left corner); "
        "`objects.category` indexes the class names below; `objects.area` is the box area in pixels unless "
        "the source gave one.\n\nClasses: " + ", ".join(f"`{n}`" for n in names) + "\n"
    )


# ---------------------------------------------------------------------------------------------- layout


def _splits(source: Path) -> dict[str, list[Path]]:
    splits: dict[str, list[Path]] = {}
    for folder in _shard_folders(source):
        for path in _parquet_files(folder):
            match = SHARD_NAME.match(path.name)
            flat = folder in (source, source / DATA_DIR)
            split = (match["split"] if match else path.stem) if flat else folder.name
            splits.setdefault(split, []).append(path)
    return splits


def _source_files(source: Path, options: Mapping[str, Any]) -> list[Path]:
    return [path for paths in _splits(source).values() for path in paths]


# ---------------------------------------------------------------------------------------------- read


def _rows(path: Path, cache: str) -> tuple[Any, Iterator[dict[str, Any]]]:
    """The features and the rows of one Parquet file, images undecoded; unreadable files name themselves."""
    datasets = _datasets()
    try:
        loaded = datasets.load_dataset("parquet", data_files={"x": [str(path)]}, streaming=True, cache_dir=cache)["x"]
        features = loaded.features
        if features is not None and isinstance(features.get("image"), datasets.Image):
            loaded = loaded.cast_column("image", datasets.Image(decode=False))
        rows = iter(loaded)
        first = next(rows, None)
    except (ValueError, OSError, TypeError, datasets.exceptions.DatasetGenerationError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ParseError(f"not a readable Parquet file ({reason})", file=path) from None
    return features, itertools.chain(() if first is None else (first,), rows)


def _image_name(row: Mapping[str, Any], index: int) -> tuple[str, bytes]:
    image = row.get("image")
    if isinstance(image, str):
        return image, b""
    data = image.get("bytes") if isinstance(image, dict) else None
    path = image.get("path") if isinstance(image, dict) else None
    if path:
        return str(path), data or b""
    suffix = ".png" if data and data.startswith(b"\x89PNG") else ".jpg"
    return f"{row.get('image_id', index)}{suffix}", data or b""


def _read(source: Path, ctx: ReadContext) -> ReadResult:
    writer = ctx.sink
    splits = _splits(source) if source.is_dir() else {}
    if not splits:
        raise ParseError("no Parquet shards here: expected data/<split>-00000-of-0000N.parquet", file=source)
    box_format = ctx.options.get("bbox_format") or "xywh"
    extract = ctx.options.get("extract_images")
    out_images = writer.directory / check_relative_path(str(extract)) if extract else None
    datasets = _datasets()
    with tempfile.TemporaryDirectory(prefix="annonorm-hf-") as cache, _quiet(datasets):
        for split, paths in splits.items():
            writer.declare_split(split)
            index = 0
            for path in paths:
                writer.add_source_file(path)
                features, rows = _rows(path, cache)
                category = ((features or {}).get("objects") or {}) if features is not None else {}
                label = category.get("category") if isinstance(category, dict) else None
                label = getattr(label, "feature", label)
                names = list(label.names) if isinstance(label, datasets.ClassLabel) else None
                for name in names or ():
                    writer.category(name)
                for row in rows:
                    image, data = _image_name(row, index)
                    try:
                        record = hf_row_to_record(row=row, names=names, box_format=box_format, image=image)
                        if out_images is not None and data:
                            target = out_images / check_relative_path(image)
                            target.parent.mkdir(parents=True, exist_ok=True)
                            target.write_bytes(data)
                    except ValueError as exc:
                        writer.problem(InvalidDataError(str(exc), file=path, location=f"row {index}", image=image))
                        continue
                    finally:
                        index += 1
                    for box in record["boxes"]:
                        writer.category(box["name"])
                    writer.add(split, record)
    image_root = out_images if out_images is not None else (ctx.images or source)
    return ReadResult(name=source.resolve().name or "hf", image_root=image_root)


# ---------------------------------------------------------------------------------------------- write


def _image_cell(dataset: NormalizedSource, record: Mapping[str, Any], embed: bool, absolute: bool) -> dict[str, Any]:
    if not (embed or absolute):
        return {"bytes": None, "path": record["image"]}
    path = dataset.image_path(record["image"])
    data = read_regular_bytes(path, "image") if embed else None
    return {"bytes": data, "path": str(path) if absolute else record["image"]}


def _table(dataset: NormalizedSource, split: str, *, embed: bool, absolute: bool) -> Iterator[list[dict[str, Any]]]:
    ids = {name: k for k, name in enumerate(dataset.manifest.category_names)}
    rows: list[dict[str, Any]] = []
    for index, record in enumerate(dataset.records(split)):
        image = _image_cell(dataset, record, embed, absolute)
        rows.append(record_to_hf_row(record=record, index=index, category_ids=ids, image=image))
        if len(rows) == ROWS_PER_SHARD:
            yield rows
            rows = []
    if rows:
        yield rows


def _write(dataset: NormalizedSource, out: Path, options: Mapping[str, Any]) -> None:
    datasets = _datasets()
    names = dataset.manifest.category_names
    features = hf_features(names)
    (out / DATA_DIR).mkdir()
    counts = {}
    with _quiet(datasets):
        for split in dataset.manifest.splits:
            total = max(1, math.ceil(dataset.count_records(split) / ROWS_PER_SHARD))
            counts[split] = 0
            for shard, rows in enumerate(
                _table(dataset, split, embed=bool(options.get("embed_images")), absolute=False)
            ):
                table = datasets.Dataset.from_list(rows, features=features)
                table.to_parquet(str(out / DATA_DIR / f"{split}-{shard:05d}-of-{total:05d}.parquet"), batch_size=1000)
                counts[split] += len(rows)
            if not counts[split]:
                empty = datasets.Dataset.from_list([], features=features)
                empty.to_parquet(str(out / DATA_DIR / f"{split}-00000-of-00001.parquet"), batch_size=1000)
    (out / CARD).write_text(_card(names, counts), encoding="utf-8", newline="")


def to_hf(dataset: str | Path, split: str | None = None) -> Any:
    """A normalized dataset's split as an in-memory ``datasets.Dataset`` of the layout above (images by absolute
    path, decoded by ``datasets`` on access). ``split`` defaults to the only split, else ``train``."""
    source = open_dataset(Path(dataset))
    splits = list(source.manifest.splits)
    chosen = split or (splits[0] if len(splits) == 1 else "train")
    if chosen not in source.manifest.splits:
        raise InvalidDataError(f"no split {chosen!r}; the dataset has {', '.join(splits)}", file=source.root)
    datasets = _datasets()
    rows = [row for chunk in _table(source, chosen, embed=False, absolute=True) for row in chunk]
    with _quiet(datasets):
        return datasets.Dataset.from_list(rows, features=hf_features(source.manifest.category_names))


# ---------------------------------------------------------------------------------------------- the converter


class HfConverter(Converter):
    """Hugging Face ``datasets`` object-detection Parquet (``objects`` with COCO ``xywh`` boxes), both ways."""

    name = "hf"
    summary = "Hugging Face datasets object detection: data/<split>-*.parquet, objects.bbox COCO xywh, README card"
    read_options = (
        Option("bbox_format", "What objects.bbox holds: xywh (COCO, default) or xyxy corners", choices=BOX_FORMATS),
        Option("extract_images", "Write embedded image bytes to this folder inside the output"),
    )
    write_options = (Option("embed_images", "Store the image bytes in the Parquet files, not only paths", type=bool),)
    capabilities = Capabilities(
        reserved_attributes=frozenset({"id", "area"}),
        added_attributes=frozenset({"id", "area"}),
        ids=True,
        unknown_sizes=True,
        category_order=True,
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
