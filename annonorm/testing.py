"""Hypothesis strategies for annonorm records and datasets, for property tests of your own pipelines.

Every record these strategies draw is valid and canonical (coordinates already rounded to the
format's 6 decimals), so ``read(write(x)) == x`` can be asserted exactly::

    from hypothesis import given
    from annonorm.testing import datasets, write_dataset

    @given(datasets())
    def test_my_pipeline(spec):
        with tempfile.TemporaryDirectory() as tmp:
            write_dataset(Path(tmp) / "ds", spec.categories, spec.splits)
            ...

Narrow them per target format: ``integer_pixels=True`` for VOC's pixel grid, ``attributes=False``
for CSV, ``sizes=False`` to allow records without a known image size.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from annonorm.io import DatasetWriter
from annonorm.records import make_record
from annonorm.schemas.manifest import Manifest
from annonorm.schemas.types import round_coord

__all__ = ["DatasetSpec", "attributes", "boxes", "category_names", "datasets", "records", "write_dataset"]

_NAME_ALPHABET = string.ascii_letters + string.digits + "_-"


def category_names(min_size: int = 1, max_size: int = 5) -> st.SearchStrategy[list[str]]:
    """Unique class names (letters, digits, ``_`` and ``-``)."""
    name = st.text(_NAME_ALPHABET, min_size=1, max_size=10)
    return st.lists(name, min_size=min_size, max_size=max_size, unique=True)


def attributes() -> st.SearchStrategy[dict[str, Any]]:
    """Small attribute dicts of JSON scalars."""
    scalar = st.one_of(
        st.booleans(),
        st.integers(-(2**31), 2**31),
        st.text(string.ascii_letters + " ", max_size=8),
        st.floats(-1e6, 1e6, allow_nan=False).map(round_coord),
    )
    key = st.text(string.ascii_lowercase + "_", min_size=1, max_size=8)
    return st.dictionaries(key, scalar, max_size=3)


@st.composite
def _coordinate_pair(draw: st.DrawFn, limit: int, integer_pixels: bool) -> tuple[float, float]:
    if integer_pixels:
        first = draw(st.integers(0, limit))
        return float(first), float(draw(st.integers(first, limit)))
    low = round_coord(draw(st.floats(0, limit, allow_nan=False)))
    high = round_coord(draw(st.floats(low, limit, allow_nan=False)))
    return low, max(low, high)


@st.composite
def boxes(
    draw: st.DrawFn,
    names: Sequence[str],
    width: int,
    height: int,
    *,
    integer_pixels: bool = False,
    with_attributes: bool = True,
    max_size: int = 6,
) -> list[dict[str, Any]]:
    """Boxes inside a ``width`` x ``height`` image, named from ``names``."""
    drawn = []
    for _ in range(draw(st.integers(0, max_size))):
        x1, x2 = draw(_coordinate_pair(width, integer_pixels))
        y1, y2 = draw(_coordinate_pair(height, integer_pixels))
        box: dict[str, Any] = {"name": draw(st.sampled_from(list(names))), "x1": x1, "y1": y1, "x2": x2, "y2": y2}
        if with_attributes:
            extra = draw(attributes())
            if extra:
                box["attributes"] = extra
        drawn.append(box)
    return drawn


@st.composite
def records(
    draw: st.DrawFn,
    names: Sequence[str],
    *,
    image: str | None = None,
    integer_pixels: bool = False,
    attributes: bool = True,
    sizes: bool = True,
    max_boxes: int = 6,
) -> dict[str, Any]:
    """One canonical record whose boxes and counts use ``names``."""
    known_size = sizes or draw(st.booleans())
    width = draw(st.integers(1, 2000)) if known_size else None
    height = draw(st.integers(1, 2000)) if known_size else None
    drawn_boxes = draw(
        boxes(
            names,
            width or 2000,
            height or 2000,
            integer_pixels=integer_pixels,
            with_attributes=attributes,
            max_size=max_boxes,
        )
    )
    extra_counts = draw(st.dictionaries(st.sampled_from(list(names)), st.integers(0, 3), max_size=2))
    counts = dict(extra_counts)
    for box in drawn_boxes:
        counts[box["name"]] = counts.get(box["name"], 0) + 1
    image_name = image or draw(st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=8)) + ".jpg"
    record_attributes = draw(_image_attributes()) if attributes else None
    return make_record(
        image=image_name,
        width=width,
        height=height,
        boxes=drawn_boxes,
        counts=counts,
        attributes=record_attributes,
    )


def _image_attributes() -> st.SearchStrategy[dict[str, Any] | None]:
    return st.one_of(st.none(), attributes())


@dataclass(frozen=True)
class DatasetSpec:
    """A drawn dataset: category names in order, and records per split."""

    categories: list[str]
    splits: dict[str, list[dict[str, Any]]]


@st.composite
def datasets(
    draw: st.DrawFn,
    *,
    split_names: Sequence[str] = ("train", "val"),
    max_records: int = 5,
    integer_pixels: bool = False,
    attributes: bool = True,
    sizes: bool = True,
    ids: bool = True,
) -> DatasetSpec:
    """A whole dataset: categories, and per split records with unique image names (and unique int ids)."""
    names = draw(category_names())
    chosen = draw(st.lists(st.sampled_from(list(split_names)), min_size=1, max_size=len(split_names), unique=True))
    splits: dict[str, list[dict[str, Any]]] = {}
    next_id = 1
    for split in chosen:
        count = draw(st.integers(1, max_records))
        split_records = []
        for index in range(count):
            record = draw(
                records(
                    names,
                    image=f"{split}/img_{index:04d}.jpg",
                    integer_pixels=integer_pixels,
                    attributes=attributes,
                    sizes=sizes,
                )
            )
            if ids:
                record["id"] = next_id
                next_id += 1
            split_records.append(record)
        splits[split] = split_records
    return DatasetSpec(categories=names, splits=splits)


def write_dataset(
    directory: Path,
    categories: Sequence[str],
    splits: dict[str, list[dict[str, Any]]],
    *,
    image_root: str = ".",
    mask_kind: str | None = None,
    name: str = "test",
) -> Path:
    """Write records as a normalized dataset in ``directory`` (created); return the directory."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    writer = DatasetWriter(directory)
    for category in categories:
        writer.category(category)
    for split, split_records in splits.items():
        writer.declare_split(split)
        for record in split_records:
            writer.add(split, record)
    writer.close()
    manifest = Manifest.model_validate(
        {
            "name": name,
            "categories": writer.categories,
            "splits": {split: f"{split}.jsonl" for split in splits},
            "image_root": image_root,
            "mask_kind": mask_kind,
        }
    )
    writer.write_manifest(manifest)
    return directory
