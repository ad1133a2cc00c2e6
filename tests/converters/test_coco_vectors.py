"""COCO with ``--masks vector`` (format version 2): polygons, RLE, keypoints, scores, category fields.

Counts are taken from the source JSON with plain ``json`` (never through the converter); round trips
compare coordinates and RLE strings, not pixels.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from peer import PEER_DATA
from pycocotools import mask as mask_utils

from annonorm.api import convert, export
from annonorm.engine import Execution
from annonorm.errors import InvalidDataError
from annonorm.geometry import round_coord
from annonorm.sources.cocojson import (
    coco_keypoints_to_points,
    coco_polygons_to_rings,
    coco_rle_to_rle,
    coco_skeleton_to_pairs,
)
from annonorm.sources.jsondoc import exact_numbers as _exact_json
from annonorm.validation import validate_dataset

PEER_CASES = ["coco_person_keypoints", "coco_stuff", "coco_instances"]


def _records(dataset: Path, split: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (dataset / f"{split}.jsonl").read_text().splitlines()]


def _write(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def _source_shapes(annotation: dict[str, Any]) -> tuple[int, int, int]:
    """(rings, RLEs, keypoints) of one source annotation, counted from its JSON."""
    segmentation = annotation.get("segmentation")
    rings = len([ring for ring in segmentation if ring]) if isinstance(segmentation, list) else 0
    rles = 1 if isinstance(segmentation, dict) else 0
    return rings, rles, len(annotation.get("keypoints") or []) // 3


def _record_shapes(box: dict[str, Any]) -> tuple[int, int, int]:
    return len(box.get("polygon") or []), 1 if "rle" in box else 0, len(box.get("keypoints") or [])


@pytest.mark.parametrize("case", PEER_CASES)
def test_peer_data_keeps_every_box_ring_rle_and_keypoint(case: str, tmp_path: Path) -> None:
    source = PEER_DATA / "coco_dataset" / case
    result = convert("coco", source, tmp_path / "out")
    assert validate_dataset(tmp_path / "out").errors == []
    assert not (tmp_path / "out" / "masks").exists()
    for json_file in sorted((source / "annotations").glob("*.json")):
        data = json.loads(json_file.read_text())
        split = json_file.stem.rsplit("_", 1)[-1]
        assert split in result.splits
        expected: dict[Any, list[tuple[int, int, int]]] = {image["id"]: [] for image in data["images"]}
        for annotation in data["annotations"]:
            if "bbox" in annotation:
                expected[annotation["image_id"]].append(_source_shapes(annotation))
        got = {r["id"]: [_record_shapes(box) for box in r["boxes"]] for r in _records(tmp_path / "out", split)}
        assert got == expected


def test_keypoints_categories_and_scores_round_trip_exactly(tmp_path: Path) -> None:
    names = ["nose", "left_eye", "right_eye"]
    categories = [
        {"id": 1, "name": "person", "supercategory": "person", "keypoints": names, "skeleton": [[1, 2], [1, 3]]},
        {"id": 5, "name": "crowd", "supercategory": "group"},
    ]
    images = [{"id": 7, "file_name": "a.jpg", "width": 40, "height": 30}]
    crowd = mask_utils.encode(np.asfortranarray((np.eye(30, 40) > 0).astype(np.uint8)))
    annotations = [
        {
            "id": 1,
            "image_id": 7,
            "category_id": 1,
            "segmentation": [[1.5, 2.25, 10, 2, 10, 12, 1, 12], [20, 20, 24, 20, 22, 25.125]],
            "area": 55.5,
            "bbox": [1, 2, 23, 23.125],
            "iscrowd": 0,
            "keypoints": [3, 4, 2, 0, 0, 0, 5.5, 6, 1],
            "num_keypoints": 2,
            "score": 0.75,
        },
        {
            "id": 2,
            "image_id": 7,
            "category_id": 5,
            "segmentation": {"size": [30, 40], "counts": crowd["counts"].decode("ascii")},
            "area": 30.0,
            "bbox": [0, 0, 30, 30],
            "iscrowd": 1,
        },
    ]
    document = {"images": images, "annotations": annotations, "categories": categories}
    convert("coco", _write(tmp_path / "person_keypoints_val.json", document), tmp_path / "out")
    manifest = json.loads((tmp_path / "out" / "annonorm.json").read_text())
    person = manifest["categories"][0]
    assert (person["keypoints"], person["skeleton"], person["supercategory"]) == (names, [[0, 1], [0, 2]], "person")
    (record,) = _records(tmp_path / "out", "val")
    first, second = record["boxes"]
    assert first["keypoints"] == [[3.0, 4.0, 2], [0.0, 0.0, 0], [5.5, 6.0, 1]] and first["score"] == 0.75
    assert first["polygon"] == [[1.5, 2.25, 10.0, 2.0, 10.0, 12.0, 1.0, 12.0], [20.0, 20.0, 24.0, 20.0, 22.0, 25.125]]
    assert second["rle"] == annotations[1]["segmentation"] and second["attributes"]["iscrowd"] is True
    assert "num_keypoints" not in first["attributes"]  # derived from the keypoints, written back from them

    export("coco", tmp_path / "out", tmp_path / "back")
    back = json.loads((tmp_path / "back" / "annotations" / "instances_val.json").read_text())
    assert back["categories"] == categories
    assert back["annotations"] == annotations


def test_uncompressed_rle_is_stored_compressed_and_losslessly(tmp_path: Path) -> None:
    counts = [5, 10, 20, 15]  # 50 pixels of a 10 x 5 image
    images = [{"id": 1, "file_name": "a.jpg", "width": 5, "height": 10}]
    annotations = [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "iscrowd": 1}]
    annotations[0]["segmentation"] = {"size": [10, 5], "counts": counts}
    document = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "a"}]}
    convert("coco", _write(tmp_path / "instances_x.json", document), tmp_path / "out")
    (record,) = _records(tmp_path / "out", "x")
    rle = record["boxes"][0]["rle"]
    assert isinstance(rle["counts"], str) and rle["size"] == [10, 5]
    ours = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()})
    theirs = mask_utils.decode(mask_utils.frPyObjects(annotations[0]["segmentation"], 10, 5))
    assert (ours == theirs).all()


@pytest.mark.parametrize(
    ("change", "location", "message"),
    [
        ({"segmentation": [[1, 2, 3, 4, 5]]}, "annotations[0].segmentation", "odd|even count"),
        ({"segmentation": [["a", 2, 3, 4, 5, 6]]}, "annotations[0].segmentation", "Expected `float`"),
        ({"segmentation": {"size": [10, 5], "counts": [1, 2]}}, "annotations[0].segmentation", "cover 3 pixels"),
        ({"segmentation": {"size": [4, 4], "counts": [16]}}, "annotations[0].segmentation", "image size"),
        ({"keypoints": [1, 2, 2, 3, 4]}, "annotations[0].keypoints", "expected 3 x 2 numbers"),
        ({"keypoints": [1, 2, 3, 3, 4, 2]}, "annotations[0].keypoints", "visibility"),
    ],
)
def test_bad_vectors_refuse_their_image_naming_the_place(
    change: dict[str, Any], location: str, message: str, tmp_path: Path
) -> None:
    images = [{"id": 1, "file_name": "a.jpg", "width": 5, "height": 10}, {"id": 2, "file_name": "b.jpg"}]
    good = {"id": 2, "image_id": 2, "category_id": 1, "bbox": [0, 0, 1, 1], "segmentation": [[0, 0, 1, 0, 1, 1]]}
    bad = {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], **change}
    categories = [{"id": 1, "name": "p", "keypoints": ["a", "b"], "skeleton": [[1, 2]]}]
    source = _write(
        tmp_path / "instances_x.json", {"images": images, "annotations": [bad, good], "categories": categories}
    )
    with pytest.raises(InvalidDataError, match=message) as info:
        convert("coco", source, tmp_path / "out")
    assert info.value.location == location and info.value.image == "a.jpg"
    assert not (tmp_path / "out").exists()
    result = convert("coco", source, tmp_path / "skip", on_error="skip")
    assert [r["image"] for r in _records(tmp_path / "skip", "x")] == ["b.jpg"]
    assert [e.location for e in result.skipped] == [location]
    assert convert("coco", source, tmp_path / "none", masks="none", on_error="skip").splits["x"].records == (
        1 if "keypoints" in change else 2
    )


def test_the_masks_option_and_its_older_spellings(tmp_path: Path) -> None:
    images = [{"id": 1, "file_name": "a.jpg", "width": 8, "height": 8}]
    annotations = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 4, 4], "segmentation": [[0, 0, 4, 0, 4, 4]]}
    ]
    source = _write(
        tmp_path / "instances_t.json",
        {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "a"}]},
    )
    shapes = {}
    for masks in ("vector", "png", "none", True, False, None):
        (record,) = _records(convert("coco", source, tmp_path / str(masks), masks=masks).out, "t")
        shapes[masks] = ("polygon" in record["boxes"][0], "mask" in record)
    assert shapes == {
        "vector": (True, False),
        None: (True, False),  # not given: vector
        "png": (False, True),
        True: (False, True),  # annonorm 0.1's masks=True drew PNGs
        "none": (False, False),
        False: (False, False),
    }


def test_forked_workers_write_the_same_vectors(tmp_path: Path) -> None:
    images = [{"id": i, "file_name": f"{i}.jpg", "width": 30, "height": 20} for i in range(60)]
    annotations = [
        {
            "id": i,
            "image_id": i % 60,
            "category_id": 1,
            "bbox": [1, 1, 5, 5],
            "segmentation": [[1, 1, 6, 1.333333333, 6, 6]],
        }
        for i in range(150)
    ]
    annotations[7]["segmentation"] = {"size": [20, 30], "counts": [600]}
    source = _write(
        tmp_path / "instances_t.json",
        {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "a"}]},
    )
    execution = Execution(min_parallel=10)
    one = convert("coco", source, tmp_path / "one", workers=1, execution=execution).out / "t.jsonl"
    two = convert("coco", source, tmp_path / "two", workers=2, execution=execution).out / "t.jsonl"
    assert one.read_bytes() == two.read_bytes()
    assert _records(tmp_path / "one", "t")[0]["boxes"][0]["polygon"] == [[1.0, 1.0, 6.0, 1.333333, 6.0, 6.0]]


_RING = st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=4, max_size=12).map(lambda v: v[: len(v) // 2 * 2])


@given(st.lists(st.lists(_RING, max_size=3), max_size=6))
def test_rings_of_many_annotations_map_as_one_at_a_time(segmentations: list[list[list[float]]]) -> None:
    bulk = coco_polygons_to_rings(segmentations=segmentations)
    assert bulk == [coco_polygons_to_rings(segmentations=[one])[0] for one in segmentations]
    for polygon, rings in zip(segmentations, bulk, strict=True):
        expected = [ring + ring[:2] if len(ring) == 4 else ring for ring in polygon if ring]
        assert rings == [[round_coord(v) for v in ring] for ring in expected]


def test_pure_mappings_refuse_what_they_cannot_hold() -> None:
    with pytest.raises(ValueError, match="even count"):
        coco_polygons_to_rings(segmentations=[[[1, 2, 3]]])
    with pytest.raises(ValueError, match="3 x 1"):
        coco_keypoints_to_points(keypoints=[1, 2], count=1)
    assert coco_keypoints_to_points(keypoints=[1, 2.0000004, 2], count=1) == [[1.0, 2.0, 2]]
    assert coco_skeleton_to_pairs(skeleton=[[1, 3]], count=3) == [[0, 2]]
    assert coco_skeleton_to_pairs(skeleton=[[0, 1]], count=3) is None  # 1-based in COCO: 0 names no keypoint
    with pytest.raises(InvalidDataError, match="cover 4 pixels"):
        coco_rle_to_rle(size=[2, 3], counts=[4])
    assert coco_rle_to_rle(size=[2, 3], counts=[6]) == {"size": [2, 3], "counts": "6"}


_COORD = st.one_of(st.floats(-1e4, 1e4, allow_nan=False).map(lambda v: round(v, 2)), st.floats(allow_nan=False))


@given(st.lists(st.lists(st.lists(_COORD, min_size=6, max_size=10).map(lambda v: v[: len(v) // 2 * 2]), max_size=3)))
def test_the_exact_text_shortcut_changes_nothing(segmentations: list[list[list[float]]]) -> None:
    """Rings whose JSON text :func:`_exact_json` passes are what the rounding would have made of them."""
    text = json.dumps(segmentations).encode()
    if all(math.isfinite(v) for polygon in segmentations for ring in polygon for v in ring) and _exact_json(text):
        decoded = json.loads(text)
        assert coco_polygons_to_rings(segmentations=decoded, exact=True) == coco_polygons_to_rings(
            segmentations=decoded
        )
        assert all(math.copysign(1, v) > 0 or v != 0 for polygon in decoded for ring in polygon for v in ring)
