"""The COCO converter: real third-party COCO files, round trips, pure mappings and bad input."""

from __future__ import annotations

import json
import math
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from pycocotools import mask as mask_utils

from annonorm.api import convert, export
from annonorm.converters.base import make_record
from annonorm.converters.coco import (
    CocoConverter,
    box_to_coco_bbox,
    coco_annotation_to_box,
    coco_bbox_to_corners,
    coco_categories_to_names,
    coco_path_to_split,
    coco_rle_string_total,
    coco_segmentation_to_rle,
    instance_mask_to_coco_rle,
    render_instance_mask,
)
from annonorm.errors import InvalidDataError, ParseError, UnsafePathError
from annonorm.testing import datasets, write_dataset
from annonorm.validation import validate_dataset

PEER = Path("/work/shared/peer_data/datumaro")
SAMPLE = Path(__file__).resolve().parents[2] / "sample_data" / "coco"

# case id -> (source given to the converter, {split: the JSON file that split must come from})
CASES: dict[str, tuple[Path, dict[str, Path]]] = {
    "coco_instances": (
        PEER / "coco_dataset/coco_instances",
        {s: PEER / f"coco_dataset/coco_instances/annotations/instances_{s}.json" for s in ("train", "val")},
    ),
    "coco_all_tasks": (
        PEER / "coco_dataset/coco",
        {s: PEER / f"coco_dataset/coco/annotations/instances_{s}.json" for s in ("train", "val")},
    ),
    "coco_roboflow": (
        PEER / "coco_dataset/coco_roboflow",
        {s: PEER / f"coco_dataset/coco_roboflow/{s}/_annotations.coco.json" for s in ("train", "val")},
    ),
    "mmdet_coco": (
        PEER / "coco_dataset/mmdet_coco",
        {s: PEER / f"coco_dataset/mmdet_coco/annotations/instances_{s}.json" for s in ("train", "val")},
    ),
    "person_keypoints": (
        PEER / "coco_dataset/coco_person_keypoints",
        {
            s: PEER / f"coco_dataset/coco_person_keypoints/annotations/person_keypoints_{s}.json"
            for s in ("train", "val")
        },
    ),
    "stuff": (
        PEER / "coco_dataset/coco_stuff",
        {s: PEER / f"coco_dataset/coco_stuff/annotations/stuff_{s}.json" for s in ("train", "val")},
    ),
    "labels": (
        PEER / "coco_dataset/coco_labels",
        {s: PEER / f"coco_dataset/coco_labels/annotations/labels_{s}.json" for s in ("train", "val")},
    ),
    "image_info": (
        PEER / "coco_dataset/coco_image_info",
        {s: PEER / f"coco_dataset/coco_image_info/annotations/image_info_{s}.json" for s in ("train", "val")},
    ),
    "kaggle_relaxed": (
        PEER / "kaggle_dataset/relaxed_coco",
        {"annotations": PEER / "kaggle_dataset/relaxed_coco/annotations.json"},
    ),
    "roboflow_export": (
        PEER / "roboflow_dataset/coco",
        {s: PEER / f"roboflow_dataset/coco/{s}/_annotations.coco.json" for s in ("train", "val")},
    ),
    "single_file": (
        PEER / "coco_dataset/coco/annotations/instances_val.json",
        {"val": PEER / "coco_dataset/coco/annotations/instances_val.json"},
    ),
    "single_keypoints_file": (
        PEER / "coco_dataset/coco/annotations/person_keypoints_val.json",
        {"val": PEER / "coco_dataset/coco/annotations/person_keypoints_val.json"},
    ),
    "sample_data": (SAMPLE, {s: SAMPLE / f"annotations/instances_{s}.json" for s in ("train", "val")}),
}


def _records(dataset: Path, split: str) -> list[dict[str, Any]]:
    lines = (dataset / f"{split}.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _source_mask(segmentation: Any, height: int, width: int) -> np.ndarray | None:
    """A source segmentation decoded independently with pycocotools (no annonorm code)."""
    if not segmentation:
        return None
    if isinstance(segmentation, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation["counts"], list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = segmentation
    return mask_utils.decode(rle).astype(bool)


def _write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def _document(
    annotations: list[dict[str, Any]],
    *,
    images: list[dict[str, Any]] | None = None,
    categories: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "images": images if images is not None else [{"id": 1, "file_name": "a.jpg", "width": 20, "height": 10}],
        "annotations": annotations,
        "categories": categories if categories is not None else [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}],
    }


def _ann(id: int, bbox: list[float], **extra: Any) -> dict[str, Any]:
    return {"id": id, "image_id": 1, "category_id": 3, "bbox": bbox, "iscrowd": 0, **extra}


# ------------------------------------------------------------------------------------- real data


@pytest.mark.parametrize("case", sorted(CASES))
def test_real_cases_convert_valid_with_one_box_per_annotation(case: str, tmp_path: Path) -> None:
    source, files = CASES[case]
    result = convert("coco", source, tmp_path / "out")
    report = validate_dataset(tmp_path / "out", check_images=True)
    assert report.errors == []
    assert set(result.splits) == set(files)
    for split, json_file in files.items():
        data = json.loads(json_file.read_text())
        expected = Counter(a["image_id"] for a in data["annotations"] if "bbox" in a)
        records = _records(tmp_path / "out", split)
        assert sorted(r["id"] for r in records) == sorted(image["id"] for image in data["images"])
        assert {r["id"]: len(r["boxes"]) for r in records} == {i["id"]: expected[i["id"]] for i in data["images"]}
    manifest = json.loads((tmp_path / "out" / "annonorm.json").read_text())
    first = json.loads(next(iter(files.values())).read_text())
    assert [c["source_id"] for c in manifest["categories"]] == [c["id"] for c in first["categories"]]
    assert [c["name"] for c in manifest["categories"]] == [c["name"] for c in first["categories"]]


@pytest.mark.parametrize("case", sorted(CASES))
def test_real_cases_export_back_to_the_source_annotations(case: str, tmp_path: Path) -> None:
    source, files = CASES[case]
    convert("coco", source, tmp_path / "out")
    export("coco", tmp_path / "out", tmp_path / "back")
    for split, json_file in files.items():
        original = json.loads(json_file.read_text())
        exported = json.loads((tmp_path / "back" / "annotations" / f"instances_{split}.json").read_text())
        assert [(c["id"], c["name"]) for c in exported["categories"]] == [
            (c["id"], c["name"]) for c in original["categories"]
        ]
        assert [i["id"] for i in exported["images"]] == [i["id"] for i in original["images"]]
        boxed = [a for a in original["annotations"] if "bbox" in a]
        by_id = {a["id"]: a for a in exported["annotations"]}
        assert sorted(by_id) == sorted(a["id"] for a in boxed)
        sizes = {i["id"]: (i["height"], i["width"]) for i in original["images"]}
        source_masks = {a["id"]: _source_mask(a.get("segmentation"), *sizes[a["image_id"]]) for a in boxed}
        for annotation in boxed:
            mine = by_id[annotation["id"]]
            assert mine["image_id"] == annotation["image_id"]
            assert mine["category_id"] == annotation["category_id"]
            assert mine["iscrowd"] == annotation.get("iscrowd", 0)
            assert mine["bbox"] == pytest.approx(annotation["bbox"], abs=1e-6)
            wanted = source_masks[annotation["id"]]
            others = [
                m
                for i, m in source_masks.items()
                if i != annotation["id"] and m is not None and by_id[i]["image_id"] == annotation["image_id"]
            ]
            if wanted is None or any((wanted & other).any() for other in others):
                continue
            got = mask_utils.decode(mine["segmentation"]).astype(bool)
            assert (wanted & got).sum() / (wanted | got).sum() >= 0.99


def test_labels_task_puts_unboxed_classes_into_labels(tmp_path: Path) -> None:
    convert("coco", PEER / "coco_dataset/coco_labels", tmp_path / "out")
    (record,) = _records(tmp_path / "out", "val")
    assert record["labels"] == ["a", "b"]
    assert record["boxes"] == []


def test_keypoints_and_category_skeleton_are_kept(tmp_path: Path) -> None:
    convert("coco", PEER / "coco_dataset/coco_person_keypoints", tmp_path / "out", masks=False)
    manifest = json.loads((tmp_path / "out" / "annonorm.json").read_text())
    assert manifest["categories"][0]["attributes"] == {
        "supercategory": "",
        "keypoints": [],
        "skeleton": [[0, 1], [1, 2]],
    }
    assert manifest["attributes"]["licenses"] == [{"name": "", "id": 0, "url": ""}]
    (record,) = _records(tmp_path / "out", "val")
    assert record["boxes"][1]["attributes"]["keypoints"] == [2, 4, 2, 4, 4, 2, 4, 2, 2]
    assert record["boxes"][1]["attributes"]["num_keypoints"] == 3
    assert record["boxes"][0]["attributes"]["attributes"] == {"x": 1, "y": "hello"}
    assert "mask" not in record  # masks=False skips the segmentations


def test_split_images_in_different_directories_share_a_common_root(tmp_path: Path) -> None:
    convert("coco", PEER / "coco_dataset/mmdet_coco", tmp_path / "out")
    manifest = json.loads((tmp_path / "out" / "annonorm.json").read_text())
    root = (tmp_path / "out" / manifest["image_root"]).resolve()
    assert root == (PEER / "coco_dataset/mmdet_coco").resolve()
    assert [r["image"] for r in _records(tmp_path / "out", "train")] == ["train/a.jpg"]


@pytest.mark.parametrize("case", ["coco_dataset/coco_panoptic", "coco_dataset/coco_captions"])
def test_panoptic_and_captions_directories_are_refused_naming_the_task(case: str, tmp_path: Path) -> None:
    with pytest.raises(ParseError, match="captions and panoptic are not supported"):
        convert("coco", PEER / case, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("task", ["panoptic", "captions"])
def test_panoptic_and_captions_content_is_refused_whatever_the_file_name(task: str, tmp_path: Path) -> None:
    data = json.loads((PEER / f"coco_dataset/coco/annotations/{task}_val.json").read_text())
    path = _write_json(tmp_path / "renamed.json", data)
    with pytest.raises(ParseError, match=f"COCO {task} file") as info:
        convert("coco", path, tmp_path / "out")
    assert info.value.file == str(path)


# ---------------------------------------------------------------------------- hypothesis round trip

_RESERVED = {"id", "area", "iscrowd", "keypoints", "num_keypoints", "bbox", "segmentation", "image_id", "category_id"}


def _coco_holdable(record: dict[str, Any]) -> dict[str, Any]:
    """What COCO can hold of a record: boxes (with attributes not named like COCO fields), no free counts."""
    boxes = []
    for box in record["boxes"]:
        attributes = {k: v for k, v in (box.get("attributes") or {}).items() if k not in _RESERVED}
        boxes.append({**{k: box[k] for k in ("name", "x1", "y1", "x2", "y2")}, "attributes": attributes or None})
    attributes = {k: v for k, v in (record.get("attributes") or {}).items() if k not in _RESERVED | {"file_name"}}
    return make_record(
        image=record["image"],
        width=record["width"],
        height=record["height"],
        boxes=[{k: v for k, v in box.items() if v is not None} for box in boxes],
        id=record["id"],
        attributes=attributes or None,
    )


@settings(max_examples=25, deadline=None)
@given(datasets(max_records=4))
def test_hypothesis_round_trip_through_coco(spec: Any) -> None:
    splits = {split: [_coco_holdable(r) for r in records] for split, records in spec.splits.items()}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_dataset(root / "ds", spec.categories, splits)
        export("coco", root / "ds", root / "coco")
        convert("coco", root / "coco", root / "back")
        assert json.loads((root / "back" / "annonorm.json").read_text())["categories"] == [
            {"id": i, "name": name, "source_id": i + 1} for i, name in enumerate(spec.categories)
        ]
        for split, records in splits.items():
            back = _records(root / "back", split)
            assert len(back) == len(records)
            for mine, theirs in zip(back, records, strict=True):
                for key in ("image", "width", "height", "id", "labels", "counts"):
                    assert mine.get(key) == theirs.get(key), key
                assert mine.get("attributes") == theirs.get("attributes")
                assert len(mine["boxes"]) == len(theirs["boxes"])
                for got, want in zip(mine["boxes"], theirs["boxes"], strict=True):
                    assert got["name"] == want["name"]
                    for corner in ("x1", "y1", "x2", "y2"):
                        assert math.isclose(got[corner], want[corner], abs_tol=1e-6)
                    added = {k: got["attributes"].pop(k) for k in ("id", "area", "iscrowd")}
                    assert added["iscrowd"] is False
                    assert added["area"] == pytest.approx(
                        (want["x2"] - want["x1"]) * (want["y2"] - want["y1"]), abs=1e-5
                    )
                    assert (got["attributes"] or None) == want.get("attributes")
        # export(convert(export(x))) == export(x), byte for byte
        export("coco", root / "back", root / "coco2")
        for split in splits:
            name = f"annotations/instances_{split}.json"
            assert (root / "coco2" / name).read_bytes() == (root / "coco" / name).read_bytes()


# --------------------------------------------------------------------------------- pure mappings


def test_bbox_corners_and_back() -> None:
    assert coco_bbox_to_corners(bbox=[10.5, 20.0, 30.25, 0.0]) == (10.5, 20.0, 40.75, 20.0)
    box = coco_annotation_to_box(name="cat", bbox=[1.1, 2.2, 3.3, 4.4], attributes={"iscrowd": False})
    assert box["attributes"] == {"iscrowd": False}
    assert box_to_coco_bbox(box=box) == pytest.approx([1.1, 2.2, 3.3, 4.4], abs=1e-6)
    assert box_to_coco_bbox(box={"x1": 0.1, "y1": 0.2, "x2": 379.19, "y2": 0.3}) == [0.1, 0.2, 379.09, 0.1]


@pytest.mark.parametrize(
    ("path", "split"),
    [
        ("annotations/instances_val2017.json", "val2017"),
        ("annotations/person_keypoints_train2017.json", "train2017"),
        ("annotations/image_info_test-dev2017.json", "test-dev2017"),
        ("valid/_annotations.coco.json", "valid"),
        ("my data/coco labels.json", "coco_labels"),
        ("instances_.json", "instances_"),
    ],
)
def test_split_names_from_file_names(path: str, split: str) -> None:
    assert coco_path_to_split(path=Path(path)) == split


def test_duplicate_category_names_get_unique_deterministic_names() -> None:
    assert coco_categories_to_names(categories=[(1, "a"), (2, "b"), (5, "a"), (9, "a")]) == ["a", "b", "a#5", "a#9"]
    assert coco_categories_to_names(categories=[(1, "a"), (2, "a#2"), (2, "a")]) == ["a", "a#2", "a#2#2"]


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 12), st.integers(1, 12), st.data())
def test_rle_string_total_agrees_with_pycocotools(height: int, width: int, data: st.DataObject) -> None:
    bits = data.draw(st.lists(st.booleans(), min_size=height * width, max_size=height * width))
    binary = np.asfortranarray(np.array(bits, dtype=np.uint8).reshape(height, width))
    rle = mask_utils.encode(binary)
    assert coco_rle_string_total(counts=rle["counts"].decode()) == height * width
    decoded = coco_segmentation_to_rle(
        segmentation={"size": [height, width], "counts": rle["counts"].decode()}, height=height, width=width
    )
    assert decoded is not None
    assert (mask_utils.decode(decoded) == binary).all()


def test_compressed_and_uncompressed_rle_paint_the_same_pixels() -> None:
    rng = np.random.default_rng(7)
    binary = (rng.random((9, 13)) > 0.6).astype(np.uint8)
    flat = binary.flatten(order="F")  # RLE runs go down the columns
    runs, current, length = [], 0, 0
    for value in flat:
        if value == current:
            length += 1
        else:
            runs.append(length)
            current, length = value, 1
    runs.append(length)
    compressed = mask_utils.encode(np.asfortranarray(binary))["counts"].decode()
    one = render_instance_mask(segmentations=[{"size": [9, 13], "counts": runs}], height=9, width=13)
    two = render_instance_mask(segmentations=[{"size": [9, 13], "counts": compressed}], height=9, width=13)
    assert (one == binary).all()
    assert (two == binary).all()


def test_four_number_polygon_is_not_taken_for_a_box() -> None:
    # frPyObjects would read [[2, 2, 8, 8]] as a box and fill 36 pixels; as a polygon it is a line.
    rle = coco_segmentation_to_rle(segmentation=[[2, 2, 8, 8]], height=10, width=10)
    assert rle is not None
    assert mask_utils.area(rle) < 36
    square = coco_segmentation_to_rle(segmentation=[[2, 2, 8, 2, 8, 8, 2, 8]], height=10, width=10)
    assert square is not None and mask_utils.area(square) == 36


def test_later_instances_are_painted_over_earlier_ones() -> None:
    first = [[0, 0, 6, 0, 6, 6, 0, 6]]
    second = [[3, 3, 9, 3, 9, 9, 3, 9]]
    canvas = render_instance_mask(segmentations=[first, None, second], height=10, width=10)
    assert canvas.dtype == np.uint8
    assert canvas[1, 1] == 1 and canvas[4, 4] == 3 and canvas[8, 8] == 3 and canvas[9, 0] == 0
    assert 2 not in canvas


def test_instance_mask_to_rle_uses_compressed_string_counts() -> None:
    mask = np.zeros((6, 5), dtype=np.uint16)
    mask[1:3, 2:4] = 300
    rle = instance_mask_to_coco_rle(mask=mask, index=300)
    assert rle is not None and isinstance(rle["counts"], str) and rle["size"] == [6, 5]
    assert (mask_utils.decode(rle) == (mask == 300)).all()
    assert instance_mask_to_coco_rle(mask=mask, index=1) is None


@pytest.mark.parametrize(
    ("segmentation", "message"),
    [
        ([[1, 2, 3]], "even count"),
        ([["a", 1, 2, 3, 4, 5]], "list of numbers"),
        ({"size": [4, 4], "counts": [1, 2]}, "differs from the image size"),
        ({"size": [10, 10], "counts": [1, 2]}, "cover 3 pixels"),
        ({"size": [10, 10], "counts": "0:"}, "cover 10 pixels"),
        ({"size": [10, 10], "counts": "0d"}, "ends in the middle of a number"),
        ({"size": [10, 10], "counts": "\x01"}, "invalid character"),
        (5, "expected a list of polygons or an RLE object"),
    ],
)
def test_malformed_segmentations_are_refused(segmentation: Any, message: str) -> None:
    with pytest.raises(InvalidDataError, match=message):
        coco_segmentation_to_rle(segmentation=segmentation, height=10, width=10)


# ------------------------------------------------------------------------------- reading details


def test_more_than_254_instances_make_a_16_bit_mask_and_export_back(tmp_path: Path) -> None:
    annotations = []
    for k in range(300):
        x, y = k % 20, k // 20
        polygon = [x, y, x + 1, y, x + 1, y + 1, x, y + 1]
        annotations.append(_ann(k + 1, [x, y, 1, 1], segmentation=[polygon]))
    images = [{"id": 1, "file_name": "a.jpg", "width": 20, "height": 16}]
    source = _write_json(tmp_path / "instances_many.json", _document(annotations, images=images))
    convert("coco", source, tmp_path / "out")
    (record,) = _records(tmp_path / "out", "many")
    with Image.open(tmp_path / "out" / record["mask"]) as image:
        assert image.mode == "I;16"
        pixels = np.asarray(image)
    for k in range(300):
        assert pixels[k // 20, k % 20] == k + 1
    export("coco", tmp_path / "out", tmp_path / "back")
    back = json.loads((tmp_path / "back/annotations/instances_many.json").read_text())["annotations"]
    assert [mask_utils.area(a["segmentation"]) for a in back] == [1] * 300

    few = _write_json(tmp_path / "instances_few.json", _document(annotations[:254], images=images))
    convert("coco", few, tmp_path / "out_few")
    (record,) = _records(tmp_path / "out_few", "few")
    with Image.open(tmp_path / "out_few" / record["mask"]) as image:
        assert image.mode == "L"


def test_annotations_need_not_be_sorted_by_image(tmp_path: Path) -> None:
    images = [{"id": i, "file_name": f"{i}.jpg", "width": 20, "height": 20} for i in (30, 10, 20)]
    annotations = [
        {"id": 5, "image_id": 20, "category_id": 7, "bbox": [1, 1, 2, 2]},
        {"id": 1, "image_id": 10, "category_id": 3, "bbox": [0, 0, 1, 1]},
        {"id": 2, "image_id": 20, "category_id": 3, "bbox": [3, 3, 1, 1]},
    ]
    source = _write_json(tmp_path / "x.json", _document(annotations, images=images))
    convert("coco", source, tmp_path / "out")
    records = _records(tmp_path / "out", "x")
    assert [r["id"] for r in records] == [30, 10, 20]
    assert [[b["attributes"]["id"] for b in r["boxes"]] for r in records] == [[], [1], [5, 2]]
    assert records[0]["labels"] == [] and records[2]["labels"] == ["dog", "cat"]


def test_missing_size_is_read_from_the_image_header(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    Image.new("RGB", (33, 21)).save(tmp_path / "images" / "a.png")
    images = [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "gone.png"}]
    source = _write_json(tmp_path / "annotations" / "instances_train.json", _document([], images=images))
    convert("coco", tmp_path, tmp_path / "out")
    first, second = _records(tmp_path / "out", "train")
    assert (first["width"], first["height"]) == (33, 21)
    assert "width" not in second
    assert source.exists()


def test_images_option_overrides_the_image_directory(tmp_path: Path) -> None:
    (tmp_path / "pics").mkdir()
    Image.new("RGB", (20, 10)).save(tmp_path / "pics" / "a.jpg")
    source = _write_json(tmp_path / "ann" / "instances_val.json", _document([_ann(1, [1, 1, 2, 2])]))
    convert("coco", source, tmp_path / "out", images=tmp_path / "pics")
    manifest = json.loads((tmp_path / "out" / "annonorm.json").read_text())
    assert (tmp_path / "out" / manifest["image_root"]).resolve() == (tmp_path / "pics").resolve()
    assert validate_dataset(tmp_path / "out", check_images=True).errors == []


def test_duplicate_category_names_survive_a_round_trip(tmp_path: Path) -> None:
    categories = [{"id": 3, "name": "cat"}, {"id": 9, "name": "cat", "supercategory": "animal"}]
    annotations = [_ann(1, [1, 1, 2, 2]), {**_ann(2, [2, 2, 2, 2]), "category_id": 9}]
    source = _write_json(tmp_path / "instances_val.json", _document(annotations, categories=categories))
    convert("coco", source, tmp_path / "out")
    (record,) = _records(tmp_path / "out", "val")
    assert [b["name"] for b in record["boxes"]] == ["cat", "cat#9"]
    export("coco", tmp_path / "out", tmp_path / "back")
    back = json.loads((tmp_path / "back/annotations/instances_val.json").read_text())
    assert back["categories"] == [{"id": 3, "name": "cat"}, {"id": 9, "name": "cat", "supercategory": "animal"}]


def test_output_is_deterministic_and_the_pool_renders_the_same_bytes(tmp_path: Path) -> None:
    images = [{"id": i, "file_name": f"d/{i:03d}.jpg", "width": 24, "height": 18} for i in range(80)]
    annotations = [
        {"id": 100 + i, "image_id": i, "category_id": 3, "bbox": [1, 1, 10, 8], "segmentation": [[1, 1, 11, 1, 6, 9]]}
        for i in range(80)
    ]
    source = _write_json(tmp_path / "instances_p.json", _document(annotations, images=images))
    convert("coco", source, tmp_path / "one", workers=1)
    convert("coco", source, tmp_path / "two", workers=2)

    def contents(root: Path) -> dict[str, bytes]:
        return {
            str(p.relative_to(root)): p.read_bytes()
            for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "annonorm.json"
        }

    one, two = contents(tmp_path / "one"), contents(tmp_path / "two")
    assert len([name for name in one if name.startswith("masks/p/d/")]) == 80
    assert one == two
    export("coco", tmp_path / "one", tmp_path / "e1")
    export("coco", tmp_path / "two", tmp_path / "e2")
    name = "annotations/instances_p.json"
    assert (tmp_path / "e1" / name).read_bytes() == (tmp_path / "e2" / name).read_bytes()


def test_mask_names_stay_unique_when_stems_collide(tmp_path: Path) -> None:
    images = [
        {"id": 1, "file_name": "a.jpg", "width": 8, "height": 8},
        {"id": 2, "file_name": "a.png", "width": 8, "height": 8},
    ]
    annotations = [
        {"id": i, "image_id": i, "category_id": 3, "bbox": [0, 0, 4, 4], "segmentation": [[0, 0, 4, 0, 4, 4, 0, 4]]}
        for i in (1, 2)
    ]
    convert("coco", _write_json(tmp_path / "instances_t.json", _document(annotations, images=images)), tmp_path / "o")
    assert [r["mask"] for r in _records(tmp_path / "o", "t")] == ["masks/t/a.png", "masks/t/a.2.png"]


def test_sniff() -> None:
    assert CocoConverter.sniff(PEER / "coco_dataset/coco_instances")
    assert CocoConverter.sniff(PEER / "coco_dataset/coco_roboflow")
    assert CocoConverter.sniff(PEER / "kaggle_dataset/relaxed_coco/annotations.json")
    assert not CocoConverter.sniff(PEER / "voc_dataset/voc_dataset1")
    assert not CocoConverter.sniff(PEER / "kaggle_dataset/image_csv/ann.csv")


# ------------------------------------------------------------------------------------- bad input


def test_missing_file_and_truncated_json_are_parse_errors(tmp_path: Path) -> None:
    with pytest.raises(ParseError):
        convert("coco", tmp_path / "nope.json", tmp_path / "out")
    truncated = tmp_path / "instances_t.json"
    truncated.write_text(json.dumps(_document([_ann(1, [1, 1, 2, 2])]))[:-20])
    with pytest.raises(ParseError, match="not valid JSON") as info:
        convert("coco", truncated, tmp_path / "out")
    assert info.value.file == str(truncated)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("mutate", "location", "message"),
    [
        (
            lambda d: d["annotations"][1].update(bbox=[1, 2, 3]),
            "annotations[1].bbox",
            "expected 4 numbers.*got an array of 3",
        ),
        (
            lambda d: d["annotations"][0].update(bbox=["1", 2, 3, 4]),
            "annotations[0].bbox[0]",
            'expected float, got "1"',
        ),
        (lambda d: d.update(images={"id": 1}), "images", "expected array, got an object"),
        (lambda d: d["images"][0].pop("file_name"), "images[0]", "file_name"),
        (lambda d: d["images"][0].update(width="wide"), "images[0].width", "wide"),
        (lambda d: d["categories"][0].update(name=5), "categories[0].name", "expected str"),
    ],
)
def test_wrong_shapes_are_parse_errors_naming_the_json_path(
    mutate: Any, location: str, message: str, tmp_path: Path
) -> None:
    data = _document([_ann(1, [1, 1, 2, 2]), _ann(2, [0, 0, 1, 1], note="extra key")])
    mutate(data)
    source = _write_json(tmp_path / "instances_x.json", data)
    with pytest.raises(ParseError, match=message) as info:
        convert("coco", source, tmp_path / "out")
    assert info.value.location == location
    assert info.value.file == str(source)


@pytest.mark.parametrize(
    ("annotations", "images", "error", "location", "message"),
    [
        (
            [{**_ann(1, [1, 1, 2, 2]), "category_id": 4}],
            None,
            InvalidDataError,
            "annotations[0].category_id",
            "category_id 4",
        ),
        ([{**_ann(1, [1, 1, 2, 2]), "image_id": 99}], None, InvalidDataError, "annotations[0].image_id", "image_id 99"),
        ([_ann(1, [1, 1, 2, 2]), _ann(1, [1, 1, 2, 2])], None, InvalidDataError, "annotations[1].id", "used twice"),
        ([_ann(1, [1, 1, -2, 2])], None, InvalidDataError, "annotations[0].bbox", "must be >= 0"),
        (
            [],
            [{"id": 1, "file_name": "a.jpg"}, {"id": 1, "file_name": "b.jpg"}],
            InvalidDataError,
            "images[1].id",
            "twice",
        ),
        ([], [{"id": 1, "file_name": "../a.jpg"}], UnsafePathError, "images[0].file_name", "climb"),
        ([], [{"id": 1, "file_name": "/etc/a.jpg"}], UnsafePathError, "images[0].file_name", "absolute"),
        (
            [_ann(1, [1, 1, 2, 2], segmentation={"size": [5, 5], "counts": [25]})],
            None,
            InvalidDataError,
            "annotations[0].segmentation",
            "differs from the image size",
        ),
    ],
)
def test_invalid_data_names_the_place(
    annotations: list[dict[str, Any]],
    images: list[dict[str, Any]] | None,
    error: type[Exception],
    location: str,
    message: str,
    tmp_path: Path,
) -> None:
    source = _write_json(tmp_path / "instances_x.json", _document(annotations, images=images))
    with pytest.raises(error, match=message) as info:
        convert("coco", source, tmp_path / "out")
    assert getattr(info.value, "location", None) == location
    assert not (tmp_path / "out").exists()


def test_skip_mode_drops_only_the_bad_image(tmp_path: Path) -> None:
    images = [
        {"id": 1, "file_name": "a.jpg", "width": 9, "height": 9},
        {"id": 2, "file_name": "b.jpg", "width": 9, "height": 9},
    ]
    annotations = [{**_ann(1, [1, 1, 2, 2]), "category_id": 4}, {**_ann(2, [1, 1, 2, 2]), "image_id": 2}]
    source = _write_json(tmp_path / "instances_x.json", _document(annotations, images=images))
    result = convert("coco", source, tmp_path / "out", on_error="skip")
    assert [r["id"] for r in _records(tmp_path / "out", "x")] == [2]
    assert [e.location for e in result.skipped] == ["annotations[0].category_id"]


def test_raw_json_is_not_decoded_when_masks_are_off(tmp_path: Path) -> None:
    # A malformed segmentation is never looked at with masks=False (it is not decoded at all).
    source = _write_json(tmp_path / "instances_x.json", _document([_ann(1, [1, 1, 2, 2], segmentation=[[1, 2, 3]])]))
    convert("coco", source, tmp_path / "out", masks=False)
    assert msgspec.json.decode((tmp_path / "out" / "x.jsonl").read_bytes())["boxes"][0]["name"] == "cat"
    with pytest.raises(InvalidDataError, match="even count"):
        convert("coco", source, tmp_path / "out2")


def test_extra_annotation_keys_are_kept_and_written_back(tmp_path: Path) -> None:
    annotation = _ann(1, [1, 1, 2, 2], score=0.5, tags=["x"])
    images = [{"id": 1, "file_name": "a.jpg", "width": 20, "height": 10, "camera": "left"}]
    data = {**_document([annotation], images=images), "type": "instances"}
    source = _write_json(tmp_path / "instances_x.json", data)
    convert("coco", source, tmp_path / "out")
    (record,) = _records(tmp_path / "out", "x")
    assert record["boxes"][0]["attributes"] == {"id": 1, "iscrowd": False, "score": 0.5, "tags": ["x"]}
    assert record["attributes"] == {"camera": "left"}
    export("coco", tmp_path / "out", tmp_path / "back")
    back = json.loads((tmp_path / "back/annotations/instances_x.json").read_text())
    assert back["type"] == "instances"
    assert back["images"] == images
    assert back["annotations"][0] == {**annotation, "segmentation": [], "area": 4.0}
