"""COCO results (issue 15, item 7): predictions joined to their ground truth, the peer COCO set end to end, export.

The results files here are made from the peer COCO instances (Datumaro's test assets) with scores drawn in the
test; expected boxes and per-image counts are computed here from the JSON with COCO's definition (``bbox`` is
``[x, y, w, h]``), independently of the converter.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from peer import PEER_DATA
from typer.testing import CliRunner

from annonorm.api import convert, export
from annonorm.cli import app
from annonorm.converters.base import make_record
from annonorm.converters.coco_results import CocoResultsConverter, prediction_to_box, read_predictions
from annonorm.errors import InvalidDataError, ParseError, UsageError
from annonorm.io import open_dataset
from annonorm.shapes import shape_hint
from annonorm.testing import write_dataset
from annonorm.validation import validate

runner = CliRunner()
PEER = PEER_DATA / "coco_dataset" / "coco_instances"


def _peer_gt(split: str) -> Path:
    path = PEER / "annotations" / f"instances_{split}.json"
    if not path.is_file():
        pytest.skip(f"peer data missing: {path}")
    return path


def _results_from(gt: Path, out: Path) -> list[dict[str, Any]]:
    """The ground truth's annotations as predictions with distinct scores (what a perfect model would write)."""
    annotations = json.loads(gt.read_text())["annotations"]
    results = [
        {
            "image_id": a["image_id"],
            "category_id": a["category_id"],
            "bbox": a["bbox"],
            "score": round(0.95 - 0.1 * i, 3),
            "segmentation": a["segmentation"],
        }
        for i, a in enumerate(annotations)
    ]
    out.write_text(json.dumps(results))
    return results


def _expected(gt: Path, results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """file_name -> {counts, boxes (name, corners, score)} computed from the JSON alone."""
    doc = json.loads(gt.read_text())
    file_of = {image["id"]: image["file_name"] for image in doc["images"]}
    name_of = {c["id"]: c["name"] for c in doc["categories"]}
    expected: dict[str, dict[str, Any]] = {name: {"counts": Counter(), "boxes": []} for name in file_of.values()}
    for r in results:
        x, y, w, h = r["bbox"]
        image = expected[file_of[r["image_id"]]]
        image["counts"][name_of[r["category_id"]]] += 1
        image["boxes"].append((name_of[r["category_id"]], x, y, round(x + w, 6), round(y + h, 6), r["score"]))
    return expected


@pytest.mark.parametrize("split", ["train", "val"])
def test_peer_coco_results_convert_and_validate_with_counts_per_image(split: str, tmp_path: Path) -> None:
    gt = _peer_gt(split)
    results = _results_from(gt, tmp_path / "detections.json")
    convert("coco-results", tmp_path / "detections.json", tmp_path / "out", gt=gt)
    report = validate(tmp_path / "out", check_images=True)
    assert not report.errors, report.findings
    dataset = open_dataset(tmp_path / "out")
    assert dataset.manifest.category_names == [c["name"] for c in json.loads(gt.read_text())["categories"]]
    assert [c.source_id for c in dataset.manifest.categories] == [
        c["id"] for c in json.loads(gt.read_text())["categories"]
    ]
    expected = _expected(gt, results)
    records = list(dataset.records(split))
    assert sorted(r["image"] for r in records) == sorted(expected)
    for record in records:
        want = expected[record["image"]]
        assert record["counts"] == dict(want["counts"])
        got = [(b["name"], b["x1"], b["y1"], b["x2"], b["y2"], b["score"]) for b in record["boxes"]]
        assert got == want["boxes"]


def test_polygon_and_rle_segmentations_are_kept(tmp_path: Path) -> None:
    gt = _peer_gt("val")
    results = _results_from(gt, tmp_path / "detections.json")
    convert("coco-results", tmp_path / "detections.json", tmp_path / "out", gt=gt)
    (record,) = open_dataset(tmp_path / "out").records("val")
    polygon_box, rle_box = record["boxes"]
    assert polygon_box["polygon"] == results[0]["segmentation"]
    # The peer's RLE has uncompressed list counts: stored compressed, and it decodes to the same pixels.
    from pycocotools import mask as mask_utils

    size = results[1]["segmentation"]["size"]
    want = mask_utils.decode(mask_utils.frPyObjects(results[1]["segmentation"], *size))
    got = mask_utils.decode({"size": rle_box["rle"]["size"], "counts": rle_box["rle"]["counts"].encode()})
    assert (want == got).all()


def test_export_writes_the_list_back_and_pycocotools_loads_it(tmp_path: Path) -> None:
    gt = _peer_gt("val")
    results = _results_from(gt, tmp_path / "detections.json")
    convert("coco-results", tmp_path / "detections.json", tmp_path / "out", gt=gt)
    export("coco-results", tmp_path / "out", tmp_path / "exported")
    written = json.loads((tmp_path / "exported" / "results_val.json").read_text())
    keys = ("image_id", "category_id", "bbox", "score")
    assert [[w[k] for k in keys] for w in written] == [[r[k] for k in keys] for r in results]
    assert written[0]["segmentation"] == results[0]["segmentation"]
    from pycocotools.coco import COCO

    truth = COCO(str(gt))
    loaded = truth.loadRes(str(tmp_path / "exported" / "results_val.json"))  # ids match the original ground truth
    assert sorted(a["score"] for a in loaded.anns.values()) == sorted(r["score"] for r in results)
    # The exported folder reads back without --gt (its ground_truth/), and auto detection finds it.
    done = runner.invoke(app, ["convert", "auto", str(tmp_path / "exported"), "-o", str(tmp_path / "again")])
    assert done.exit_code == 0, done.output
    again = list(open_dataset(tmp_path / "again").records("val"))
    assert again == list(open_dataset(tmp_path / "out").records("val"))


def test_predictions_naming_unknown_images_or_categories_are_one_error_listing_them(tmp_path: Path) -> None:
    gt = _peer_gt("val")
    image_id = json.loads(gt.read_text())["images"][0]["id"]
    bad = [{"image_id": 1000 + i, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5} for i in range(7)]
    good = [{"image_id": image_id, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}]
    (tmp_path / "r.json").write_text(json.dumps(good + bad + bad[:1]))
    with pytest.raises(InvalidDataError) as caught:
        convert("coco-results", tmp_path / "r.json", tmp_path / "out", gt=gt)
    message = str(caught.value)
    assert "8 predictions name image ids that are not in the ground truth instances_val.json" in message
    assert "1000, 1001, 1002, 1003, 1004 (and 2 more)" in message
    assert not (tmp_path / "out").exists()
    (tmp_path / "c.json").write_text(json.dumps([{**good[0], "category_id": 99}]))
    with pytest.raises(InvalidDataError, match=r"1 predictions name category ids .*: 99"):
        convert("coco-results", tmp_path / "c.json", tmp_path / "out", gt=gt)


def test_without_ground_truth_the_error_names_the_command(tmp_path: Path) -> None:
    (tmp_path / "r.json").write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}]))
    with pytest.raises(UsageError, match=r"--gt INSTANCES\.json"):
        convert("coco-results", tmp_path / "r.json", tmp_path / "out")
    done = runner.invoke(app, ["convert", "coco-results", str(tmp_path / "r.json"), "-o", str(tmp_path / "out")])
    assert done.exit_code == 2 and "--gt INSTANCES.json" in done.output
    assert "Traceback" not in done.output and not (tmp_path / "out").exists()
    assert "read it with annonorm convert coco-results FILE --gt INSTANCES.json" in shape_hint(tmp_path / "r.json")


def _one(entry: dict[str, Any]) -> dict[str, Any]:
    (prediction,), extras = read_predictions(raw=json.dumps([entry]).encode(), file=Path("r.json"))
    return prediction_to_box(
        prediction=prediction, name="a", width=10, height=10, extras=extras[0] if extras is not None else {}
    )


finite = st.floats(0, 1e4, allow_nan=False).map(lambda v: round(v, 3))


@settings(max_examples=60, deadline=None)
@given(x=finite, y=finite, w=finite, h=finite, score=st.floats(0, 1))
def test_a_prediction_is_its_xywh_corners_and_score(x: float, y: float, w: float, h: float, score: float) -> None:
    box = _one({"image_id": 1, "category_id": 1, "bbox": [x, y, w, h], "score": score})
    assert box == {
        "name": "a",
        "x1": round(x, 6),
        "y1": round(y, 6),
        "x2": round(x + w, 6),
        "y2": round(y + h, 6),
        "score": score,
    }


def test_mapping_details() -> None:
    # Without a bbox the box is the segmentation's hull, as pycocotools' loadRes computes it.
    box = _one({"image_id": 1, "category_id": 1, "segmentation": [[1, 2, 5, 2, 5, 7]], "score": 0.3})
    assert (box["x1"], box["y1"], box["x2"], box["y2"]) == (1, 2, 5, 7)
    # Keys of a tool's own become box attributes.
    assert _one({"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "id": 7, "area": 1})["attributes"] == {
        "id": 7,
        "area": 1,
    }
    for entry, fragment in [
        ({"bbox": [0, 0, -1, 1], "score": 0.5}, "width and height >= 0"),
        ({"bbox": [0, 0, 1, 1], "score": 1.5}, r"outside \[0, 1\]"),
        ({"score": 0.5}, "expected a bbox"),
        ({"segmentation": [[0, 0, 1, 1]], "score": 0.5}, "ring 0 has 4 numbers"),
    ]:
        with pytest.raises(ValueError, match=fragment):
            _one({"image_id": 1, "category_id": 1, **entry})


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b'{"images": []}', "got an object .this is a COCO instances file"),
        (b'[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": NaN}]', "NaN and Infinity"),
        (b'[{"image_id": 1, "category_id": 1, "bbox": "box"}]', "expected array"),
    ],
)
def test_a_file_that_is_no_results_list_says_what_was_expected(raw: bytes, fragment: str) -> None:
    with pytest.raises(ParseError, match=fragment):
        read_predictions(raw=raw, file=Path("r.json"))


def test_export_refuses_a_record_without_id_and_attributes_named_like_results_keys(tmp_path: Path) -> None:
    box = {"name": "a", "x1": 0, "y1": 0, "x2": 1, "y2": 1, "score": 0.5}
    write_dataset(tmp_path / "noid", ["a"], {"val": [make_record(image="a.jpg", width=4, height=4, boxes=[box])]})
    with pytest.raises(InvalidDataError, match="record has no id"):
        export("coco-results", tmp_path / "noid", tmp_path / "out")
    clash = {**box, "attributes": {"score": 1}}
    record = make_record(image="a.jpg", width=4, height=4, boxes=[clash], id=3)
    write_dataset(tmp_path / "clash", ["a"], {"val": [record]})
    with pytest.raises(InvalidDataError, match="'score' is a COCO results key"):
        export("coco-results", tmp_path / "clash", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_sniff_claims_only_what_reads_without_gt(tmp_path: Path) -> None:
    gt = _peer_gt("val")
    _results_from(gt, tmp_path / "results_val.json")
    assert not CocoResultsConverter.sniff(tmp_path / "results_val.json")
    assert not CocoResultsConverter.sniff(tmp_path)
    (tmp_path / "ground_truth").mkdir()
    shutil.copy(gt, tmp_path / "ground_truth" / "instances_val.json")
    assert CocoResultsConverter.sniff(tmp_path / "results_val.json")
    assert CocoResultsConverter.sniff(tmp_path)
    assert CocoResultsConverter.source_files(tmp_path, {}) == [
        tmp_path / "results_val.json",
        tmp_path / "ground_truth" / "instances_val.json",
    ]
