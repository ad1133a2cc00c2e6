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
for CSV, ``sizes=False`` to allow records without a known image size. The fields of format version 2
are drawn on request, one flag each (the names of :class:`annonorm.converters.base.Capabilities`):
``polygons`` (rings inside the box), ``rle`` (pycocotools' encoding of a drawn mask inside the box),
``obb`` (4 corners; the box is then their hull), ``keypoints`` (categories get keypoint names,
:attr:`DatasetSpec.keypoints`, and their boxes one ``[x, y, v]`` per name) and ``scores``.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from annonorm.geometry import obb_hull
from annonorm.io import DatasetWriter
from annonorm.records import BOX_KEYS, make_record
from annonorm.schemas.manifest import Manifest
from annonorm.schemas.types import round_coord

__all__ = [
    "DatasetSpec",
    "attributes",
    "boxes",
    "category_names",
    "datasets",
    "keypoint_names",
    "records",
    "write_dataset",
]

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


def keypoint_names(max_size: int = 4) -> st.SearchStrategy[list[str]]:
    """Unique keypoint names of one category (at least one)."""
    return st.lists(
        st.text(string.ascii_lowercase + "_", min_size=1, max_size=8), min_size=1, max_size=max_size, unique=True
    )


def _coordinate(limit: float, integer_pixels: bool) -> st.SearchStrategy[float]:
    if integer_pixels:
        return st.integers(0, int(limit)).map(float)
    return st.floats(0, limit, allow_nan=False).map(round_coord)


@st.composite
def _polygon(draw: st.DrawFn, box: dict[str, Any], integer_pixels: bool) -> list[list[float]]:
    """1 or 2 rings of 3 to 6 points inside the box."""
    rings = []
    for _ in range(draw(st.integers(1, 2))):
        ring: list[float] = []
        for _ in range(draw(st.integers(3, 6))):
            ring.append(box["x1"] + draw(_coordinate(box["x2"] - box["x1"], integer_pixels)))
            ring.append(box["y1"] + draw(_coordinate(box["y2"] - box["y1"], integer_pixels)))
        rings.append([round_coord(v) for v in ring])
    return rings


@st.composite
def _rle(draw: st.DrawFn, box: dict[str, Any], width: int, height: int) -> dict[str, Any]:
    """pycocotools' compressed RLE of a mask of up to 8 x 8 drawn pixels at the box's top-left corner."""
    import numpy as np
    from pycocotools import mask as mask_utils

    left, top = min(int(box["x1"]), width - 1), min(int(box["y1"]), height - 1)
    columns, rows = draw(st.integers(1, min(8, width - left))), draw(st.integers(1, min(8, height - top)))
    pixels = draw(st.lists(st.booleans(), min_size=rows * columns, max_size=rows * columns))
    mask = np.zeros((height, width), dtype=np.uint8, order="F")
    mask[top : top + rows, left : left + columns] = np.array(pixels, dtype=np.uint8).reshape(rows, columns)
    encoded = mask_utils.encode(mask)
    return {"size": [int(v) for v in encoded["size"]], "counts": encoded["counts"].decode("ascii")}


@st.composite
def _keypoints(draw: st.DrawFn, count: int, width: int, height: int, integer_pixels: bool) -> list[list[Any]]:
    """``count`` keypoints in the image; ``x = y = 0`` where ``v = 0``."""
    points: list[list[Any]] = []
    for _ in range(count):
        visibility = draw(st.sampled_from((0, 1, 2)))
        if visibility == 0:
            points.append([0.0, 0.0, 0])
        else:
            points.append(
                [draw(_coordinate(width, integer_pixels)), draw(_coordinate(height, integer_pixels)), visibility]
            )
    return points


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
    polygons: bool = False,
    rle: bool = False,
    obb: bool = False,
    keypoints: Mapping[str, int] | None = None,
    scores: bool = False,
) -> list[dict[str, Any]]:
    """Boxes inside a ``width`` x ``height`` image, named from ``names``.

    ``polygons``, ``rle``, ``obb`` and ``scores`` let a box carry that field (drawn or not, per box);
    ``keypoints`` (category name -> number of keypoint names) gives the boxes of those categories
    keypoints, or none. ``rle`` needs a known image size (the width and height given are the image's).
    """
    drawn = []
    for _ in range(draw(st.integers(0, max_size))):
        name = draw(st.sampled_from(list(names)))
        box: dict[str, Any]
        if obb and draw(st.booleans()):
            corners = [draw(_coordinate(width if i % 2 == 0 else height, integer_pixels)) for i in range(8)]
            x1, y1, x2, y2 = obb_hull(corners)
            box = {"name": name, "x1": x1, "y1": y1, "x2": x2, "y2": y2, "obb": corners}
        else:
            x1, x2 = draw(_coordinate_pair(width, integer_pixels))
            y1, y2 = draw(_coordinate_pair(height, integer_pixels))
            box = {"name": name, "x1": x1, "y1": y1, "x2": x2, "y2": y2}
        if polygons and draw(st.booleans()):
            box["polygon"] = draw(_polygon(box, integer_pixels))
        if rle and draw(st.booleans()):
            box["rle"] = draw(_rle(box, width, height))
        if keypoints and name in keypoints and draw(st.booleans()):
            box["keypoints"] = draw(_keypoints(keypoints[name], width, height, integer_pixels))
        if scores and draw(st.booleans()):
            box["score"] = round_coord(draw(st.floats(0, 1)))
        if with_attributes:
            extra = draw(attributes())
            if extra:
                box["attributes"] = extra
        drawn.append({key: box[key] for key in BOX_KEYS if key in box})
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
    polygons: bool = False,
    rle: bool = False,
    obb: bool = False,
    keypoints: Mapping[str, int] | None = None,
    scores: bool = False,
) -> dict[str, Any]:
    """One canonical record whose boxes and counts use ``names`` (v2 fields as :func:`boxes` draws them)."""
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
            polygons=polygons,
            rle=rle and known_size,
            obb=obb,
            keypoints=keypoints,
            scores=scores,
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
    """A drawn dataset: category names in order, records per split, and the categories' keypoint names."""

    categories: list[str]
    splits: dict[str, list[dict[str, Any]]]
    #: Category name -> its keypoint names, for the categories that have keypoints.
    keypoints: dict[str, list[str]] = field(default_factory=dict)


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
    polygons: bool = False,
    rle: bool = False,
    obb: bool = False,
    keypoints: bool = False,
    scores: bool = False,
) -> DatasetSpec:
    """A whole dataset: categories, and per split records with unique image names (and unique int ids).

    With ``keypoints`` some categories get keypoint names (:attr:`DatasetSpec.keypoints`) and their
    boxes keypoints; the other v2 flags are :func:`boxes`'.
    """
    names = draw(category_names())
    named: dict[str, list[str]] = {}
    if keypoints:
        for category in names:
            if draw(st.booleans()):
                named[category] = draw(keypoint_names())
    counts = {category: len(points) for category, points in named.items()}
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
                    polygons=polygons,
                    rle=rle,
                    obb=obb,
                    keypoints=counts,
                    scores=scores,
                )
            )
            if ids:
                record["id"] = next_id
                next_id += 1
            split_records.append(record)
        splits[split] = split_records
    return DatasetSpec(categories=names, splits=splits, keypoints=named)


def write_dataset(
    directory: Path,
    categories: Sequence[str],
    splits: dict[str, list[dict[str, Any]]],
    *,
    image_root: str = ".",
    mask_kind: str | None = None,
    name: str = "test",
    keypoints: Mapping[str, Sequence[str]] | None = None,
    skeletons: Mapping[str, Sequence[Sequence[int]]] | None = None,
) -> Path:
    """Write records as a normalized dataset in ``directory`` (created); return the directory.

    ``keypoints`` and ``skeletons`` give categories (by name) their keypoint names and skeleton.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    writer = DatasetWriter(directory)
    for category in categories:
        writer.category(category, keypoints=(keypoints or {}).get(category), skeleton=(skeletons or {}).get(category))
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
