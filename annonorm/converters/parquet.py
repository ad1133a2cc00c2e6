"""Parquet: annonorm's own columnar layout (DESIGN.md §7), for Spark, Dask, DuckDB, Polars, Ray Data.

Layout (written by ``annonorm export parquet DATASET -o OUT``, read back by ``annonorm convert parquet OUT``)::

    OUT/
      annonorm.json               # the dataset's manifest (image_root rewritten to hold from OUT, no provenance)
      <split>/part-00000.parquet  # one row per image; a new part once a file passes about 256 MB
      masks/                      # the dataset's mask PNGs, when it has some

The columns and their types are :func:`annonorm.columnar.arrow_schema` (the record's fields with the
JSONL's names, ``boxes`` a list of structs, attributes as JSON text). Coordinates are the JSONL's:
absolute pixel corners. Reading back gives the JSONL the dataset had, byte for byte; the JSONL stays
the canonical, validated form.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from annonorm.columnar import FILE_BYTES, PART_GLOB, ROW_GROUP_ROWS, iter_parquet_records, part_files, write_split
from annonorm.converters.base import Capabilities, Converter, Option, ReadContext, ReadResult
from annonorm.errors import ParseError
from annonorm.io import NormalizedSource, read_manifest
from annonorm.paths import contained
from annonorm.schemas.manifest import MANIFEST_FILE

# --- constants

MASKS_DIR = "masks"

# --- sniff


def looks_like_layout(source: Path) -> bool:
    """A directory holding a manifest and at least one ``<split>/part-*.parquet``."""
    return source.is_dir() and (source / MANIFEST_FILE).is_file() and any(source.glob(f"*/{PART_GLOB}"))


# --- layout


def _layout_root(source: Path) -> Path:
    root = source.parent if source.name == MANIFEST_FILE else source
    if root.is_file():
        raise ParseError(
            "expected the directory annonorm export parquet wrote (annonorm.json beside <split>/part-*.parquet)",
            file=root,
        )
    return root


def split_parts(root: Path, split: str) -> list[Path]:
    """The Parquet files of ``split`` under ``root``; none is a :class:`ParseError`."""
    parts = part_files(root / split)
    if not parts:
        raise ParseError(f"split {split!r} has no {split}/{PART_GLOB}; expected annonorm's Parquet layout", file=root)
    return parts


# --- read


def read_layout(source: Path, ctx: ReadContext) -> ReadResult:
    """Stream a Parquet export back into ``ctx.sink``: categories, records and mask files as they were."""
    root = _layout_root(source)
    manifest = read_manifest(root)
    sink = ctx.sink
    sink.add_source_file(root / MANIFEST_FILE)
    for category in manifest.categories:
        sink.category(
            category.name,
            category.source_id,
            category.attributes,
            supercategory=category.supercategory,
            keypoints=category.keypoints,
            skeleton=category.skeleton,
        )
    sink.mask_kind = manifest.mask_kind
    splits = {split: split_parts(root, split) for split in manifest.splits}  # all checked before any record
    for split, parts in splits.items():
        sink.declare_split(split)
        for part in parts:
            sink.add_source_file(part)
        for record in iter_parquet_records(parts, split):
            mask = record.get("mask")
            if mask is not None:
                shutil.copyfile(contained(root.resolve(), mask, "the dataset"), sink.mask_file(mask))
            sink.add(split, record)
    image_root = Path(manifest.image_root)
    return ReadResult(
        name=manifest.name,
        image_root=image_root if image_root.is_absolute() else root / image_root,
        attributes=manifest.attributes,
    )


# --- write


def write_layout(dataset: NormalizedSource, out: Path, options: Mapping[str, Any]) -> None:
    """Write every split of ``dataset`` as Parquet files, the manifest and the mask files beside."""
    rows = options.get("row_group_size") or ROW_GROUP_ROWS
    megabytes = options.get("file_size_mb")
    file_bytes = megabytes * 1024 * 1024 if megabytes else FILE_BYTES
    for split in dataset.manifest.splits:
        write_split(
            dataset.split_path(split),
            out / split,
            split,
            row_group_rows=rows,
            file_bytes=file_bytes,
            progress=dataset.progress,
        )
    masks = dataset.root / MASKS_DIR
    if masks.is_dir():
        shutil.copytree(masks, out / MASKS_DIR, symlinks=False)
    # The temporary directory is beside OUT, so a path relative to it holds from OUT too. The provenance
    # is the JSONL dataset's business: left out, an export of a read-back export is the same bytes.
    image_root = Path(os.path.relpath(dataset.image_root(), out)).as_posix()
    manifest = dataset.manifest.model_copy(update={"image_root": image_root, "source": None})
    data = manifest.model_dump_json(indent=2, exclude_none=True)
    (out / MANIFEST_FILE).write_text(data + "\n", encoding="utf-8")


# --- converter


class ParquetConverter(Converter):
    """annonorm's Parquet layout: one row per image, boxes as a list of structs (DESIGN.md §7)."""

    name = "parquet"
    summary = "annonorm's columnar layout: <split>/part-*.parquet, one row per image (Spark, Dask, DuckDB, Ray)"
    write_options = (
        Option("row_group_size", f"Images per Parquet row group (default {ROW_GROUP_ROWS})", type=int),
        Option("file_size_mb", f"Start a new part file past this size in MB (default {FILE_BYTES >> 20})", type=int),
    )
    capabilities = Capabilities(
        box_attributes=True,
        image_attributes=True,
        counts_only=True,
        image_labels=True,
        ids=True,
        unknown_sizes=True,
        category_order=True,
        polygons=True,
        rle=True,
        obb=True,
        keypoints=True,
        scores=True,
    )

    @classmethod
    def sniff(cls, source: Path) -> bool:
        """A directory with ``annonorm.json`` beside ``<split>/part-*.parquet``."""
        return looks_like_layout(source)

    @classmethod
    def source_files(cls, source: Path, options: Mapping[str, Any]) -> list[Path]:
        """The whole export directory (its manifest and Parquet files)."""
        return [_layout_root(source)]

    def read(self, source: Path, ctx: ReadContext) -> ReadResult:
        """Read a Parquet export back into a normalized dataset."""
        return read_layout(source, ctx)

    def write(self, dataset: NormalizedSource, out: Path, *, options: Mapping[str, Any]) -> None:
        """Write ``dataset`` in the Parquet layout into ``out``."""
        write_layout(dataset, out, options)
