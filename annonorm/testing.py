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

A converter plugin gets annonorm's round-trip property for free: :func:`check_round_trip` draws datasets
narrowed by the converter's declared capabilities, writes and reads them through it, and checks what
comes back (see docs/plugins.md).
"""

from __future__ import annotations

import math
import string
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hypothesis import strategies as st

from annonorm.geometry import obb_hull, polygon_hull
from annonorm.io import DatasetWriter
from annonorm.records import BOX_EXTRA_KEYS, BOX_KEYS, make_record
from annonorm.schemas.manifest import Manifest
from annonorm.schemas.types import round_coord

if TYPE_CHECKING:
    from annonorm.converters.base import Capabilities

__all__ = [
    "DatasetSpec",
    "assert_same",
    "attributes",
    "boxes",
    "category_names",
    "check_round_trip",
    "datasets",
    "drawn_for",
    "fit",
    "keypoint_names",
    "project",
    "records",
    "round_trip",
    "write_dataset",
    "write_in_format",
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


# ---------------------------------------------------------------------------------------------- round trips

#: A box's v2 field -> the capability that says it survives.
_V2_FIELDS = {"polygon": "polygons", "rle": "rle", "obb": "obb", "keypoints": "keypoints", "score": "scores"}


def _attributes(values: dict[str, Any] | None, kept: bool, caps: Capabilities) -> dict[str, Any] | None:
    if not kept or not values:
        return None
    return {k: v for k, v in values.items() if k not in caps.reserved_attributes} or None


def fit(spec: DatasetSpec, caps: Capabilities) -> DatasetSpec:
    """The drawn dataset narrowed to what the format's writer accepts (nothing it must refuse)."""
    splits = {}
    for split, records in spec.splits.items():
        fitted = []
        for record in records:
            boxes = []
            for box in record["boxes"]:
                if not caps.empty_boxes and (box["x2"] <= box["x1"] or box["y2"] <= box["y1"]):
                    continue
                attributes = _attributes(box.get("attributes"), caps.box_attributes, caps)
                kept = {key for key, flag in _V2_FIELDS.items() if getattr(caps, flag)}
                corners = {k: box[k] for k in ("x1", "y1", "x2", "y2")}
                if caps.shape_boxes and "polygon" in box and "polygon" in kept and not ("obb" in box and "obb" in kept):
                    corners = dict(
                        zip(("x1", "y1", "x2", "y2"), map(round_coord, polygon_hull(box["polygon"])), strict=True)
                    )
                boxes.append(
                    {
                        "name": box["name"],
                        **corners,
                        **{k: box[k] for k in BOX_EXTRA_KEYS if k in box and k in kept},
                        **({"attributes": attributes} if attributes else {}),
                    }
                )
            fitted.append(
                make_record(
                    image=record["image"] if caps.image_folders else record["image"].replace("/", "_"),
                    width=record["width"],
                    height=record["height"],
                    boxes=boxes,
                    labels=record["labels"],
                    counts=record["counts"],
                    id=record.get("id"),
                    attributes=_attributes(record.get("attributes"), caps.image_attributes, caps),
                )
            )
        splits[split] = fitted
    return DatasetSpec(categories=spec.categories, splits=splits, keypoints=spec.keypoints if caps.keypoints else {})


def project(record: dict[str, Any], caps: Capabilities) -> dict[str, Any]:
    """What of a (fitted) record the format gives back."""
    boxed = {box["name"] for box in record["boxes"]}
    labels = record["labels"] if caps.image_labels else [n for n in record["labels"] if n in boxed]
    return make_record(
        image=record["image"],
        width=record["width"],
        height=record["height"],
        boxes=record["boxes"],
        labels=labels if caps.image_labels or caps.counts_only else None,
        counts=record["counts"] if caps.counts_only else None,
        id=record.get("id") if caps.ids else None,
        attributes=record.get("attributes"),
    )


def _comparable(record: dict[str, Any], caps: Capabilities) -> tuple[dict[str, Any], list[tuple[float, ...]]]:
    """The record without its box corners and the attributes the format adds; the corners apart."""
    boxes, corners = [], []
    for box in record["boxes"]:
        attributes = {k: v for k, v in (box.get("attributes") or {}).items() if k not in caps.added_attributes}
        # Coordinates (corners, polygon, obb and keypoint positions) are compared apart, within the tolerance.
        flags = [point[2] for point in box.get("keypoints") or ()]
        rings = [len(ring) for ring in box.get("polygon") or ()]
        shape = {"rle": box.get("rle"), "score": box.get("score"), "rings": rings, "visibility": flags}
        boxes.append({"name": box["name"], "attributes": attributes or None, **shape, "obb": "obb" in box})
        coordinates = [box[k] for k in ("x1", "y1", "x2", "y2")]
        coordinates += [v for ring in box.get("polygon") or () for v in ring] + list(box.get("obb") or ())
        coordinates += [v for point in box.get("keypoints") or () for v in point[:2]]
        corners.append(tuple(coordinates))
    rest = {k: v for k, v in record.items() if k not in ("boxes", "attributes", "id")}
    rest |= {"width": record.get("width"), "height": record.get("height")}  # the sink leaves out unknown sizes
    attributes = {k: v for k, v in (record.get("attributes") or {}).items() if k not in caps.added_attributes}
    rest |= {"attributes": attributes or None, "id": None if caps.reader_ids else record.get("id")}
    if not caps.label_order or not (caps.image_labels or caps.counts_only):
        rest["labels"] = sorted(rest["labels"])  # derived from the boxes: their order is the boxes'
    return {**rest, "boxes": boxes}, corners


def assert_same(got: dict[str, Any], want: dict[str, Any], caps: Capabilities) -> None:
    """``got == want`` up to what the capabilities say of coordinates (exact, or N decimals of a fraction)."""
    got_rest, got_corners = _comparable(got, caps)
    want_rest, want_corners = _comparable(want, caps)
    assert got_rest == want_rest
    tolerance = 0.0
    if caps.fraction_decimals is not None:
        # Each fraction is off by at most half a unit of its last decimal; a corner combines two, times the side.
        tolerance = 10.0**-caps.fraction_decimals * max(want["width"] or 1, want["height"] or 1) + 1e-6
    for mine, theirs in zip(got_corners, want_corners, strict=True):
        for a, b in zip(mine, theirs, strict=True):
            assert math.isclose(a, b, rel_tol=0, abs_tol=tolerance), (got, want)


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _images(root: Path, spec: DatasetSpec) -> None:
    """Image files of the drawn sizes (for formats that read sizes from the images)."""
    from PIL import Image

    for records in spec.splits.values():
        for record in records:
            path = root / record["image"]
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (record["width"], record["height"])).save(path)


def write_in_format(name: str, spec: DatasetSpec, root: Path) -> Path | None:
    """``spec`` (already :func:`fit` to the format) as a normalized dataset at ``root/ds``, exported by the
    converter ``name`` to ``root/written``. Returns the folder of image files made for a format that reads
    sizes from them (``root/images``), else ``None``."""
    from annonorm import registry
    from annonorm.api import export

    image_root, images = ".", None
    if registry.get(name).capabilities.needs_image_files:
        images, image_root = root / "images", "../images"
        _images(images, spec)
    write_dataset(root / "ds", spec.categories, spec.splits, image_root=image_root, keypoints=spec.keypoints)
    export(name, root / "ds", root / "written")
    return images


def round_trip(name: str, drawn: DatasetSpec, *, rewrite: bool = True) -> None:
    """The two properties for one drawn dataset through the converter ``name`` (``rewrite``: check the bytes)."""
    from annonorm import registry
    from annonorm.api import convert, export
    from annonorm.io import open_dataset

    caps = registry.get(name).capabilities
    spec = fit(drawn, caps)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        images = write_in_format(name, spec, root)
        classes = None if caps.category_order else spec.categories
        convert(name, root / "written", root / "back", classes=classes, images=images)
        back = open_dataset(root / "back")
        assert back.manifest.category_names == spec.categories
        if caps.keypoints:
            assert {c.name: c.keypoints for c in back.manifest.categories if c.keypoints} == spec.keypoints
        assert sorted(back.manifest.splits) == sorted(spec.splits)
        for split, records in spec.splits.items():
            got = sorted(back.records(split), key=lambda r: r["image"])
            want = sorted((project(r, caps) for r in records), key=lambda r: r["image"])
            assert [r["image"] for r in got] == [r["image"] for r in want]
            for mine, theirs in zip(got, want, strict=True):
                assert_same(mine, theirs, caps)
        if not rewrite:
            return
        export(name, root / "back", root / "again")
        assert _tree(root / "again") == _tree(root / "written")


def drawn_for(caps: Capabilities) -> st.SearchStrategy[DatasetSpec]:
    """:func:`annonorm.testing.datasets` narrowed by what the format holds."""
    return datasets(
        max_records=3,
        integer_pixels=caps.integer_pixels,
        attributes=caps.box_attributes or caps.image_attributes,
        sizes=not caps.unknown_sizes,
        ids=caps.ids,
        polygons=caps.polygons,
        rle=caps.rle,
        obb=caps.obb,
        keypoints=caps.keypoints,
        scores=caps.scores,
    )


def check_round_trip(name: str, max_examples: int = 20, *, rewrite: bool = True) -> None:
    """The round-trip property for the installed converter ``name``, driven by its capabilities.

    ``read(write(r)) == project(r)`` for every drawn ``r`` (:func:`fit` to what the writer accepts), and,
    with ``rewrite``, ``write(read(write(r))) == write(r)`` byte for byte. A plugin's own test suite calls
    it: ``def test_round_trip(): check_round_trip("toy")``; a false capability fails with the smallest
    counterexample.
    """
    from hypothesis import HealthCheck, given, settings

    from annonorm import registry

    caps = registry.get(name).capabilities

    @settings(max_examples=max_examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(drawn_for(caps))
    def property_holds(drawn: DatasetSpec) -> None:
        round_trip(name, drawn, rewrite=rewrite)

    property_holds()
