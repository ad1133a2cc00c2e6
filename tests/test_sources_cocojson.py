"""sources/cocojson: the COCO JSON conventions shared by the COCO and COCO results readers (and LVIS, SA-1B)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from msgspec import UNSET
from PIL import Image
from pycocotools import mask as mask_utils

from annonorm.errors import InvalidDataError, ParseError, UnsafePathError
from annonorm.sources.cocojson import (
    box_to_coco_bbox,
    category_keypoints,
    coco_bbox_reword,
    coco_bbox_to_corners,
    coco_bboxes_to_corners,
    coco_categories_to_names,
    coco_image_size,
    coco_polygons_to_rings,
    coco_rle_to_rle,
    keypoint_fields,
    segmentation_fields,
)
from annonorm.sources.columns import Box, grouped_record
from annonorm.sources.jsondoc import JsonProblem

coordinate = st.floats(min_value=0, max_value=1e5, allow_nan=False, allow_infinity=False)


def _raw(value: Any) -> msgspec.Raw:
    return msgspec.Raw(msgspec.json.encode(value))


def _box() -> Box:
    return Box("a", 0.0, 0.0, 1.0, 1.0)


@given(st.lists(st.tuples(coordinate, coordinate, coordinate, coordinate), max_size=20))
def test_bboxes_to_corners_adds_the_size_and_rounds_each_value_like_round(rows: list[tuple[float, ...]]) -> None:
    corners = coco_bboxes_to_corners(bboxes=np.array(rows, dtype=np.float64).reshape(-1, 4))
    expected = [
        [round(x, 6) + 0.0, round(y, 6) + 0.0, round(x + w, 6) + 0.0, round(y + h, 6) + 0.0] for x, y, w, h in rows
    ]
    assert corners.tolist() == expected
    for row, one in zip(rows, expected, strict=True):
        assert list(coco_bbox_to_corners(bbox=row)) == one


@given(coordinate, coordinate, coordinate, coordinate)
def test_a_box_written_back_as_bbox_reads_to_the_same_corners(x: float, y: float, w: float, h: float) -> None:
    x1, y1, x2, y2 = coco_bbox_to_corners(bbox=(x, y, w, h))
    bbox = box_to_coco_bbox(box={"x1": x1, "y1": y1, "x2": x2, "y2": y2})
    assert coco_bbox_to_corners(bbox=bbox) == pytest.approx((x1, y1, x2, y2), abs=2e-6)


@given(st.lists(st.sampled_from(["a", "b", "a#1", "c"]), max_size=8))
def test_category_names_are_unique_and_keep_the_first_of_each_name(names: list[str]) -> None:
    categories = [(index + 1, name) for index, name in enumerate(names)]
    unique = coco_categories_to_names(categories=categories)
    assert len(unique) == len(names) and len(set(unique)) == len(unique)
    for (source_id, name), got in zip(categories, unique, strict=True):
        assert got == name or got.startswith(f"{name}#{source_id}")
    first = {name: index for index, name in reversed(list(enumerate(names)))}
    assert [unique[index] for index in first.values()] == list(first)  # a first occurrence keeps its name


def test_a_repeated_name_takes_its_source_id() -> None:
    assert coco_categories_to_names(categories=[(1, "a"), (2, "a"), (3, "a#2")]) == ["a", "a#2#2", "a#2"]


@given(st.lists(st.lists(st.lists(coordinate, min_size=3, max_size=8).map(lambda v: v * 2), max_size=3), max_size=4))
def test_polygons_are_rounded_value_by_value_and_short_rings_fixed(polygons: list[list[list[float]]]) -> None:
    rings = coco_polygons_to_rings(segmentations=polygons)
    expected = [[[round(v, 6) + 0.0 for v in ring] for ring in polygon] for polygon in polygons]
    assert rings == expected


def test_ring_rules_lenient_for_coco_strict_for_results() -> None:
    # COCO: an empty ring is dropped, a 2-point ring gets its first point again (pycocotools' triangle).
    assert coco_polygons_to_rings(segmentations=[[[], [1, 2, 3, 4]]]) == [[[1, 2, 3, 4, 1, 2]]]
    for bad, found in (([1, 2, 3], 3), ([1, 2], 2)):
        with pytest.raises(ValueError, match=f"polygon ring 1 has {found} numbers; expected an even count"):
            coco_polygons_to_rings(segmentations=[[[0, 0, 1, 0, 1, 1], bad]])
    for short in ([1, 2, 3, 4], []):
        with pytest.raises(ValueError, match=f"ring 0 has {len(short)} numbers"):
            coco_polygons_to_rings(segmentations=[[short]], strict=True)
    with pytest.raises(ValueError, match="not a finite number"):
        coco_polygons_to_rings(segmentations=[[[0, 0, 1, 0, math.inf, 1]]])


def _runs_to_mask(counts: list[int], height: int, width: int) -> np.ndarray:
    """Uncompressed COCO runs (column-major, starting with 0s) as a mask: independent of pycocotools."""
    flat = np.repeat(np.arange(len(counts)) % 2, counts).astype(np.uint8)
    return flat.reshape(width, height).T


@given(st.integers(1, 12), st.integers(1, 12), st.data())
def test_list_counts_are_compressed_losslessly(height: int, width: int, data: st.DataObject) -> None:
    pixels = data.draw(st.lists(st.booleans(), min_size=height * width, max_size=height * width))
    flat = [int(p) for p in pixels]
    counts, value, run = [], 0, 0
    for pixel in flat:
        if pixel != value:
            counts.append(run)
            value, run = pixel, 0
        run += 1
    counts.append(run)
    rle = coco_rle_to_rle(size=[height, width], counts=counts)
    assert rle["size"] == [height, width] and isinstance(rle["counts"], str)
    decoded = mask_utils.decode({"size": [height, width], "counts": rle["counts"].encode()})
    assert (decoded == _runs_to_mask(counts, height, width)).all()


def test_rle_strings_are_kept_and_sizes_checked() -> None:
    assert coco_rle_to_rle(size=[2, 2], counts="04") == {"size": [2, 2], "counts": "04"}
    with pytest.raises(InvalidDataError):
        coco_rle_to_rle(size=[2, 2], counts=[1, 1], height=2, width=2)  # 2 runs for 4 pixels


def test_segmentation_fields_fill_the_boxes_and_name_the_rows_they_cannot() -> None:
    raws: list[Any] = [
        _raw([[0, 0, 4, 0, 4, 4]]),
        _raw({"size": [2, 2], "counts": [0, 4]}),
        _raw([[0, 0, 1]]),
        _raw(None),
        UNSET,
        _raw({"size": [3, 3], "counts": [0, 4]}),
        _raw("nonsense"),
    ]
    boxes = [_box() for _ in raws]
    problems = segmentation_fields(
        boxes, raws, None, image_size=lambda at: {"height": 2, "width": 2}, location=lambda at: f"row {at}"
    )
    assert boxes[0].polygon == [[0, 0, 4, 0, 4, 4]]
    assert boxes[1].rle == {"size": [2, 2], "counts": coco_rle_to_rle(size=[2, 2], counts=[0, 4])["counts"]}
    assert all(box.polygon is UNSET and box.rle is UNSET for box in boxes[2:])
    assert sorted(problems) == [2, 5, 6]
    assert problems[2] == ("polygon ring 0 has 3 numbers; expected an even count, at least 6 (x, y pairs)", "row 2")
    assert problems[5][0].startswith("cannot read the segmentation: ") and problems[6][1] == "row 6"


def test_segmentation_fields_take_the_rle_beside_a_polygon() -> None:
    boxes = [_box()]
    rles: list[Any] = [_raw({"size": [2, 2], "counts": "04"})]
    problems = segmentation_fields(boxes, [_raw([[0, 0, 1, 0, 1, 1]])], rles, image_size=lambda at: {}, location=str)
    assert problems == {}
    assert boxes[0].polygon == [[0, 0, 1, 0, 1, 1]] and boxes[0].rle == {"size": [2, 2], "counts": "04"}


def test_keypoint_fields() -> None:
    boxes = [_box() for _ in range(4)]
    values = [[1, 2, 2, 3, 4, 0], [1, 2, 2, 3, 4, 1], [1, 2, 2], [5, 5, 1]]
    numbers = [UNSET, 1, UNSET, 1]
    problems = keypoint_fields(boxes, values, numbers, [2, 2, 2, 0], location=lambda at: f"kp {at}")
    assert boxes[0].keypoints == [[1.0, 2.0, 2], [3.0, 4.0, 0]] and boxes[0].attributes is UNSET
    assert boxes[1].attributes == {"num_keypoints": 1}  # two are visible: the source's number is kept
    assert list(problems) == [2] and problems[2][1] == "kp 2" and "expected 3 x 2 numbers" in problems[2][0]
    assert boxes[3].keypoints is UNSET and boxes[3].attributes == {"keypoints": [5, 5, 1], "num_keypoints": 1}


def test_category_keypoints_names_and_datumaro_numbers() -> None:
    attributes: dict[str, Any] = {"keypoints": ["nose", "eye"], "skeleton": [[1, 2]], "other": 1}
    assert category_keypoints(attributes, {6}) == (["nose", "eye"], [[0, 1]])
    assert attributes == {"other": 1}
    datumaro: dict[str, Any] = {"keypoints": [], "skeleton": [[0, 1]]}
    assert category_keypoints(datumaro, {6}) == (["1", "2"], [[0, 1]])
    assert datumaro == {"keypoints": [], "skeleton": [[0, 1]]}  # kept to be written back as it was
    assert category_keypoints({"keypoints": ["a", "a"]}, set()) == (None, None)


def test_bbox_reword() -> None:
    assert coco_bbox_reword(JsonProblem("annotations[0].bbox", "x", "box")) == (
        'expected 4 numbers [x, y, width, height], got "box"'
    )
    assert (coco_bbox_reword(JsonProblem("annotations[0].bbox[1]", "expected number", UNSET)) or "").startswith(
        "bbox values must be numbers"
    )
    assert coco_bbox_reword(JsonProblem("images[0].width", "expected int", "8")) is None


def test_image_size_from_the_entry_the_header_or_an_error(tmp_path: Path) -> None:
    def size(file_name: str, width: Any = UNSET, height: Any = UNSET) -> tuple[int | None, int | None]:
        return coco_image_size(
            file_name=file_name, width=width, height=height, image_dir=tmp_path, file=tmp_path / "c.json", index=3
        )

    assert size("a.png", 7, 5) == (7, 5)
    Image.new("RGB", (9, 4)).save(tmp_path / "a.png")
    assert size("a.png") == (9, 4)
    assert size("missing.png") == (None, None)
    with pytest.raises(UnsafePathError) as unsafe:
        size("../a.png")
    assert unsafe.value.location == "images[3].file_name"
    with pytest.raises(UnsafePathError, match="names a folder"):
        size("a/.")
    with pytest.raises(InvalidDataError, match="width and height must be > 0, got 0 x 5"):
        size("a.png", 0, 5)
    os.mkfifo(tmp_path / "fifo.png")
    with pytest.raises(ParseError):
        size("fifo.png")


def test_grouped_record_keys_in_canonical_order() -> None:
    box = _box()
    record = grouped_record(
        image="a.jpg", size=(4, 3), group=([box], ["a"], {"a": 1}), mask="m.png", id=7, attributes={"k": 1}
    )
    assert list(record) == ["image", "width", "height", "labels", "counts", "boxes", "mask", "id", "attributes"]
    bare = grouped_record(image="a.jpg", size=(None, None), group=([], [], {}), mask=None, id=1, attributes={})
    assert list(bare) == ["image", "labels", "counts", "boxes", "id"]
