"""Label Studio JSON exports (issue 14, item 7): the mappings alone, then ``annonorm convert labelstudio``
end to end, the writer's round trip, and the hostile cases of ``tests/hostile/cases_labelstudio.py``.

Expected geometry is computed here independently of the converter: rotations with a numpy rotation
matrix, brush masks encoded by this file's own Label Studio RLE encoder, counts by walking the JSON.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from pycocotools import mask as mask_utils
from typer.testing import CliRunner

from annonorm.cli import app
from annonorm.converters.base import make_record
from annonorm.converters.labelstudio import (
    LabelstudioConverter,
    box_to_ls_results,
    image_reference_path,
    label_config_to_xml,
    ls_rle_to_mask,
    mask_to_ls_rle,
    parse_label_config,
    percent_points_to_ring,
    percent_rect_to_box,
    rotated_corners,
)
from annonorm.io import open_dataset
from annonorm.sources.brushrle import coco_rle_to_ls_rle, ls_rle_to_coco_rle
from annonorm.testing import write_dataset
from annonorm.validation import validate_dataset

runner = CliRunner()


# ---------------------------------------------------------------------------------------------- helpers


class BitWriter:
    """Label Studio's brush RLE, written independently: most significant bit first."""

    def __init__(self) -> None:
        self.bits: list[str] = []

    def write(self, value: int, size: int) -> None:
        self.bits.append(format(value, f"0{size}b"))

    def bytes(self) -> list[int]:
        text = "".join(self.bits)
        text += "0" * (-len(text) % 8)
        return [int(text[i : i + 8], 2) for i in range(0, len(text), 8)]


def ls_encode(values: list[int], *, word: int = 8, literal_every: int = 0) -> list[int]:
    """Encode ``values`` with run-length size 8 bits (runs of up to 256); ``literal_every`` > 0 writes
    every ``literal_every``-th chunk as literal words, to exercise both chunk kinds."""
    out = BitWriter()
    out.write(len(values), 32)
    out.write(word - 1, 5)
    for _ in range(4):
        out.write(7, 4)  # every run-length size is 8 bits
    index, chunk = 0, 0
    while index < len(values):
        end = index + 1
        while end < len(values) and values[end] == values[index] and end - index < 256:
            end += 1
        chunk += 1
        literal = literal_every and chunk % literal_every == 0
        out.write(0 if literal else 1, 1)
        out.write(chunk % 4, 2)  # which size: all are 8 bits
        out.write(end - index - 1, 8)
        for value in values[index:end] if literal else [values[index]]:
            out.write(value, word)
        index = end
    return out.bytes()


def brush_rle(mask: np.ndarray, **kwargs: Any) -> list[int]:
    """The RGBA canvas Label Studio encodes: every channel 255 where painted."""
    return ls_encode(np.repeat(mask.astype(np.uint8).ravel() * 255, 4).tolist(), **kwargs)


def rect(
    x: float, y: float, w: float, h: float, label: str, *, size: tuple[int, int], rid: str = "r", **extra: Any
) -> dict[str, Any]:
    value = {"x": x, "y": y, "width": w, "height": h, "rotation": extra.pop("rotation", 0), "rectanglelabels": [label]}
    return {
        "id": rid,
        "type": "rectanglelabels",
        "from_name": "label",
        "to_name": "image",
        "original_width": size[0],
        "original_height": size[1],
        "value": value,
        **extra,
    }


def task(image: str, *annotations: list[dict[str, Any]], tid: int = 1, **extra: Any) -> dict[str, Any]:
    listed = [
        {"id": i + 1, "completed_by": i + 1, "was_cancelled": False, "result": r} for i, r in enumerate(annotations)
    ]
    return {"id": tid, "data": {"image": image}, "annotations": listed, **extra}


def save_image(path: Path, width: int, height: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height)).save(path)


def convert_cli(export: Any, tmp: Path, *args: str, images: Path | None = None) -> tuple[int, str]:
    source = tmp / "export.json"
    source.write_text(json.dumps(export), encoding="utf-8")
    extra = ["--images", str(images)] if images is not None else []
    result = runner.invoke(app, ["convert", "labelstudio", str(source), "-o", str(tmp / "out"), *extra, *args])
    return result.exit_code, result.output


def records(out: Path, split: str = "train") -> list[dict[str, Any]]:
    return list(open_dataset(out).records(split))


# ---------------------------------------------------------------------------------------------- mappings


def test_percent_rectangle_scales_x_by_the_width_and_y_by_the_height() -> None:
    (x1, y1, x2, y2), obb = percent_rect_to_box(
        value={"x": 10, "y": 20, "width": 30, "height": 40}, image_width=200, image_height=50
    )
    assert (x1, y1, x2, y2) == (20.0, 10.0, 80.0, 30.0)
    assert obb is None


@pytest.mark.parametrize(
    "value",
    [
        {"x": 101, "y": 0, "width": 1, "height": 1},
        {"x": 0, "y": -1, "width": 1, "height": 1},
        {"x": 60, "y": 0, "width": 50, "height": 1},  # x + width = 110
        {"x": 0, "y": 0, "width": 1, "height": 150},
    ],
)
def test_percent_rectangle_outside_0_to_100_is_refused(value: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="percent"):
        percent_rect_to_box(value=value, image_width=100, image_height=100)


@given(
    st.floats(0, 500),
    st.floats(0, 500),
    st.floats(0.5, 300),
    st.floats(0.5, 300),
    st.floats(-720, 720, allow_nan=False),
)
def test_rotated_corners_agree_with_a_rotation_matrix(x: float, y: float, w: float, h: float, degrees: float) -> None:
    corners = np.array(rotated_corners(x=x, y=y, width=w, height=h, degrees=degrees)).reshape(4, 2)
    theta = math.radians(degrees)
    # Clockwise on screen with y pointing down is the ordinary rotation matrix in (x, y).
    turn = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    unturned = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=float)
    assert np.allclose(corners, unturned @ turn.T + [x, y], atol=1e-9)
    sides = np.linalg.norm(np.roll(corners, -1, axis=0) - corners, axis=1)
    assert np.allclose(sides, [w, h, w, h], rtol=1e-9)


def test_rotation_90_turns_the_top_edge_downwards_and_the_box_is_the_hull() -> None:
    (x1, y1, x2, y2), obb = percent_rect_to_box(
        value={"x": 50, "y": 10, "width": 10, "height": 20, "rotation": 90}, image_width=100, image_height=100
    )
    assert obb == [50.0, 10.0, 50.0, 20.0, 30.0, 20.0, 30.0, 10.0]
    assert (x1, y1, x2, y2) == (30.0, 10.0, 50.0, 20.0)


def test_polygon_points_become_one_ring_in_pixels() -> None:
    ring = percent_points_to_ring(points=[[0, 0], [50, 0], [50, 100]], image_width=40, image_height=10)
    assert ring == [0.0, 0.0, 20.0, 0.0, 20.0, 10.0]


@pytest.mark.parametrize(
    ("points", "message"),
    [
        ([[0, 0], [1, 1]], "at least 3"),
        ([[0, 0], [1, 1], [2]], "expected \\[x, y\\]"),
        ([[0, 0], [1, 1], [2, 120]], "0..100"),
    ],
)
def test_odd_polygons_are_refused(points: list[list[float]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        percent_points_to_ring(points=points, image_width=10, image_height=10)


@given(st.integers(1, 12), st.integers(1, 12), st.data(), st.integers(0, 3))
def test_brush_rle_decodes_what_an_independent_encoder_wrote(height: int, width: int, data: Any, every: int) -> None:
    pixels = data.draw(st.lists(st.booleans(), min_size=height * width, max_size=height * width))
    mask = np.array(pixels, dtype=bool).reshape(height, width)
    decoded = ls_rle_to_mask(rle=brush_rle(mask, literal_every=every), height=height, width=width)
    assert decoded.dtype == bool
    assert np.array_equal(decoded, mask)


def test_brush_rle_of_another_size_or_truncated_is_refused() -> None:
    mask = np.ones((3, 4), dtype=bool)
    code = brush_rle(mask)
    with pytest.raises(ValueError, match="it codes 48 values; expected 4x4 RGBA = 64"):
        ls_rle_to_mask(rle=code, height=4, width=4)
    with pytest.raises(ValueError, match="truncated"):
        ls_rle_to_mask(rle=code[:6], height=3, width=4)
    with pytest.raises(ValueError, match="larger than"):
        ls_rle_to_mask(rle=code, height=1 << 15, width=1 << 15)


@pytest.mark.parametrize(
    ("reference", "path"),
    [
        ("/data/upload/3/3f2a9c1d-dog.jpg", "dog.jpg"),
        ("/data/upload/3/dog.jpg", "dog.jpg"),
        ("/data/local-files/?d=images/train/a%20b.jpg", "images/train/a b.jpg"),
        ("s3://bucket/datasets/x/c.png", "datasets/x/c.png"),
        ("https://example.org/static/img/d.jpg?token=1", "static/img/d.jpg"),
        ("train/e.jpg", "train/e.jpg"),
    ],
)
def test_image_references_name_their_path(reference: str, path: str) -> None:
    assert image_reference_path(reference=reference) == path


@pytest.mark.parametrize(
    "reference", ["/data/local-files/?d=../../etc/passwd", "s3://b/a/../../x.jpg", "", "/data/local-files/?d="]
)
def test_image_references_that_climb_out_or_name_nothing_are_refused(reference: str) -> None:
    with pytest.raises(ValueError):
        image_reference_path(reference=reference)


def test_label_config_gives_classes_in_order_keypoint_names_and_the_image_key() -> None:
    root = ET.fromstring(
        '<View><Image name="img" value="$photo"/>'
        '<RectangleLabels name="l" toName="img"><Label value="person"/><Label value="car"/></RectangleLabels>'
        '<PolygonLabels name="p" toName="img"><Label value="car"/><Label value="road"/></PolygonLabels>'
        '<KeyPointLabels name="k" toName="img"><Label value="nose"/><Label value="eye"/></KeyPointLabels>'
        '<Choices name="c" toName="img"><Choice value="day"/></Choices></View>'
    )
    config = parse_label_config(root=root)
    assert config.image_key == "photo"
    assert config.classes == ("person", "car", "road", "day")
    assert config.keypoints == ("nose", "eye")


def test_written_config_parses_back_to_its_classes() -> None:
    names = ["a", 'quote"d', "<tag>", "x & y"]
    assert parse_label_config(root=ET.fromstring(label_config_to_xml(classes=names))).classes == tuple(names)


@given(st.integers(1, 3000), st.integers(1, 3000), st.data())
def test_written_rectangles_read_back_to_the_same_corners(width: int, height: int, data: Any) -> None:
    x1 = round(data.draw(st.floats(0, width)), 6)
    x2 = round(data.draw(st.floats(x1, width)), 6)
    y1 = round(data.draw(st.floats(0, height)), 6)
    y2 = round(data.draw(st.floats(y1, height)), 6)
    box = {"name": "a", "x1": x1, "y1": y1, "x2": x2, "y2": y2}
    (result,) = box_to_ls_results(box=box, region="r0", width=width, height=height)
    corners, _ = percent_rect_to_box(value=result["value"], image_width=width, image_height=height)
    assert [round(v, 6) for v in corners] == [x1, y1, x2, y2]


# ---------------------------------------------------------------------------------------------- end to end


def count_results(export: list[dict[str, Any]], kind: str) -> int:
    """The number of labels of one region type in the first annotation of every task (independently)."""
    total = 0
    for item in export:
        for result in (item["annotations"] or [{"result": []}])[0]["result"]:
            if result["type"] == kind:
                total += len(result["value"][kind])
    return total


def test_convert_cli_rectangles_polygons_choices_and_images_found_by_name(tmp_path: Path) -> None:
    images = tmp_path / "images"
    save_image(images / "sub" / "dog.jpg", 200, 100)
    save_image(images / "cat.png", 50, 40)
    poly = {
        "id": "p",
        "type": "polygonlabels",
        "original_width": 200,
        "original_height": 100,
        "value": {"points": [[0, 0], [50, 0], [50, 50]], "polygonlabels": ["cat"]},
    }
    choice = {"id": "c", "type": "choices", "value": {"choices": ["outdoor"]}}
    export = [
        task("/data/upload/1/3f2a9c1d-dog.jpg", [rect(10, 20, 30, 40, "dog", size=(200, 100)), poly, choice]),
        task("s3://bucket/x/cat.png", tid=2),
    ]
    code, output = convert_cli(export, tmp_path, images=images)
    assert code == 0, output
    got = {r["image"]: r for r in records(tmp_path / "out")}
    assert set(got) == {"sub/dog.jpg", "cat.png"}
    dog = got["sub/dog.jpg"]
    assert (dog["width"], dog["height"], dog["id"]) == (200, 100, 1)
    assert len(dog["boxes"]) == count_results(export, "rectanglelabels") + count_results(export, "polygonlabels")
    assert [b["x1"] for b in dog["boxes"]] == [20.0, 0.0]
    assert dog["boxes"][1]["polygon"] == [[0.0, 0.0, 100.0, 0.0, 100.0, 50.0]]
    assert "outdoor" in dog["labels"]
    assert (got["cat.png"]["width"], got["cat.png"]["height"], got["cat.png"]["boxes"]) == (50, 40, [])
    report = validate_dataset(tmp_path / "out", check_images=True)
    assert report.valid and not report.warnings, [str(f) for f in report.errors + report.warnings]


def test_annotations_first_prefers_ground_truth_and_skips_cancelled_all_keeps_each_annotator(tmp_path: Path) -> None:
    size = (100, 100)
    item = task(
        "a.jpg",
        [rect(0, 0, 10, 10, "a", size=size)],
        [rect(0, 0, 20, 20, "b", size=size)],
        [rect(0, 0, 30, 30, "c", size=size)],
    )
    item["annotations"][0]["was_cancelled"] = True
    item["annotations"][2]["ground_truth"] = True
    item["annotations"][1]["completed_by"] = {"id": 7, "email": "ann@example.org"}
    code, output = convert_cli([item], tmp_path)
    assert code == 0, output
    assert [b["name"] for b in records(tmp_path / "out")[0]["boxes"]] == ["c"]
    code, output = convert_cli([item], tmp_path, "--annotations", "all", "--force")
    assert code == 0, output
    boxes = records(tmp_path / "out")[0]["boxes"]
    assert [(b["name"], b["attributes"]["annotator"]) for b in boxes] == [("b", "ann@example.org"), ("c", 3)]


def test_predictions_become_scored_boxes(tmp_path: Path) -> None:
    size = (100, 50)
    item = task("a.jpg", [rect(0, 0, 10, 10, "gt", size=size)])
    item["predictions"] = [
        {
            "model_version": "v2",
            "score": 0.5,
            "result": [
                rect(0, 0, 50, 50, "car", size=size, score=0.875),
                rect(10, 10, 5, 5, "car", size=size, rid="q"),
            ],
        }
    ]
    code, output = convert_cli([item], tmp_path, "--predictions")
    assert code == 0, output
    boxes = records(tmp_path / "out")[0]["boxes"]
    assert [(b["name"], b["score"]) for b in boxes] == [("car", 0.875), ("car", 0.5)]
    assert boxes[0]["x2"] == 50.0 and boxes[0]["y2"] == 25.0


def test_keypoints_tied_by_parent_id_and_relation_in_config_order(tmp_path: Path) -> None:
    config = tmp_path / "config.xml"
    config.write_text(
        '<View><Image name="image" value="$image"/><RectangleLabels name="l" toName="image">'
        '<Label value="person"/></RectangleLabels><KeyPointLabels name="k" toName="image">'
        '<Label value="nose"/><Label value="eye"/><Label value="ear"/></KeyPointLabels></View>'
    )
    size = (200, 100)

    def point(rid: str, name: str, x: float, y: float, **extra: Any) -> dict[str, Any]:
        return {
            "id": rid,
            "type": "keypointlabels",
            "original_width": 200,
            "original_height": 100,
            "value": {"x": x, "y": y, "width": 1, "keypointlabels": [name]},
            **extra,
        }

    results = [
        rect(0, 0, 50, 50, "person", size=size, rid="box"),
        point("k1", "eye", 10, 10, parentID="box"),
        point("k2", "nose", 20, 30),
        {"id": "rel", "type": "relation", "from_id": "k2", "to_id": "box", "direction": "right"},
    ]
    code, output = convert_cli([task("a.jpg", results)], tmp_path, "--config", str(config))
    assert code == 0, output
    (box,) = records(tmp_path / "out")[0]["boxes"]
    assert box["keypoints"] == [[40.0, 30.0, 2], [20.0, 10.0, 2], [0.0, 0.0, 0]]
    manifest = open_dataset(tmp_path / "out").manifest
    assert manifest.categories[0].keypoints == ["nose", "eye", "ear"]
    code, output = convert_cli([task("a.jpg", results)], tmp_path, "--force")
    assert code == 2 and "--config" in output and "Traceback" not in output


def test_brush_becomes_a_coco_rle_of_the_same_pixels(tmp_path: Path) -> None:
    mask = np.zeros((6, 9), dtype=bool)
    mask[1:4, 2:7] = True
    mask[5, 8] = True
    brush = {
        "id": "b",
        "type": "brushlabels",
        "original_width": 9,
        "original_height": 6,
        "value": {"format": "rle", "rle": brush_rle(mask, literal_every=2), "brushlabels": ["blob"]},
    }
    code, output = convert_cli([task("a.png", [brush])], tmp_path)
    assert code == 0, output
    (box,) = records(tmp_path / "out")[0]["boxes"]
    decoded = mask_utils.decode({"size": box["rle"]["size"], "counts": box["rle"]["counts"].encode()})
    assert np.array_equal(decoded.astype(bool), mask)
    assert (box["x1"], box["y1"], box["x2"], box["y2"]) == (2.0, 1.0, 9.0, 6.0)


def test_writer_round_trip_keeps_boxes_polygons_rotations_labels_scores_and_class_order(tmp_path: Path) -> None:
    images = tmp_path / "images"
    save_image(images / "train" / "a.jpg", 300, 200)
    save_image(images / "train" / "b.jpg", 40, 30)
    size = (300, 200)
    poly = {
        "id": "p",
        "type": "polygonlabels",
        "original_width": 300,
        "original_height": 200,
        "value": {"points": [[10, 10], [50, 10], [30, 60]], "polygonlabels": ["cat"]},
    }
    export = [
        task(
            "/data/local-files/?d=train/a.jpg",
            [
                rect(20, 10, 30, 40, "dog", size=size, rotation=30, score=0.25, rid="d"),
                poly,
                {"id": "c", "type": "choices", "value": {"choices": ["day"]}},
            ],
        ),
        task("/data/local-files/?d=train/b.jpg", tid=5),
    ]
    config = tmp_path / "config.xml"
    config.write_text(label_config_to_xml(classes=["unused", "cat", "dog", "day"]))
    code, output = convert_cli(export, tmp_path, "--config", str(config), images=images)
    assert code == 0, output
    first = records(tmp_path / "out")
    result = runner.invoke(app, ["export", "labelstudio", str(tmp_path / "out"), "-o", str(tmp_path / "ls")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "ls").iterdir() if not p.name.startswith(".")) == [
        "label_config.xml",
        "train.json",
    ]
    back = runner.invoke(
        app, ["convert", "labelstudio", str(tmp_path / "ls"), "-o", str(tmp_path / "back"), "--images", str(images)]
    )
    assert back.exit_code == 0, back.output
    assert records(tmp_path / "back") == first
    assert open_dataset(tmp_path / "back").manifest.category_names == ["unused", "cat", "dog", "day"]
    assert first[0]["boxes"][0]["obb"] and first[0]["boxes"][0]["score"] == 0.25


def test_sniff_knows_an_export_and_not_a_coco_file(tmp_path: Path) -> None:
    export = tmp_path / "project-1.json"
    export.write_text(json.dumps([task("a.jpg", [])]))
    coco = tmp_path / "instances.json"
    coco.write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    assert LabelstudioConverter.sniff(export)
    assert not LabelstudioConverter.sniff(coco)


# ---------------------------------------------------------------------------------------------- hostile cases


def _hostile_cases() -> list[Any]:
    import hostile.make_corpus  # noqa: F401  # first: it imports every hostile/cases_*.py, this one too
    from hostile.cases_labelstudio import CASES

    return CASES


@pytest.mark.parametrize("case", _hostile_cases(), ids=lambda case: case.name)
def test_hostile_input_gets_one_line_and_writes_nothing(case: Any, tmp_path: Path) -> None:
    from hostile.make_corpus import materialize
    from test_hostile import check_outcome, run_cli

    materialize(case, tmp_path)
    code, stdout, stderr, exception = run_cli(case, tmp_path)
    assert exception is None, repr(exception)
    check_outcome(case, tmp_path, code, stdout, stderr)
    assert len([line for line in (stdout + stderr).splitlines() if line.strip()]) == 1, stdout + stderr


# ------------------------------------------------------------------------------- writing brushes and keypoints


def coco_of(mask: np.ndarray) -> dict[str, Any]:
    """pycocotools' own compressed RLE of a boolean mask (the reference the converter must match)."""
    encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in encoded["size"]], "counts": encoded["counts"].decode("ascii")}


@given(st.integers(1, 12), st.integers(1, 12), st.data())
def test_brush_rle_encoder_is_the_inverse_of_the_decoder(height: int, width: int, data: Any) -> None:
    pixels = data.draw(st.lists(st.booleans(), min_size=height * width, max_size=height * width))
    mask = np.array(pixels, dtype=bool).reshape(height, width)
    code = mask_to_ls_rle(mask=mask)
    assert all(0 <= b <= 255 for b in code)
    assert np.array_equal(ls_rle_to_mask(rle=code, height=height, width=width), mask)
    # The COCO side: pycocotools' string of the same pixels, an empty mask too.
    coco, decoded = ls_rle_to_coco_rle(rle=coco_rle_to_ls_rle(rle=coco_of(mask)), height=height, width=width)
    assert coco == coco_of(mask) and np.array_equal(decoded, mask)


@pytest.mark.parametrize("value", [True, False])
def test_brush_rle_encoder_splits_runs_longer_than_a_chunk(value: bool) -> None:
    mask = np.full((300, 250), value)  # 300 000 values: more than one 2**16-value run
    mask[150, 100] = not value
    assert np.array_equal(ls_rle_to_mask(rle=mask_to_ls_rle(mask=mask), height=300, width=250), mask)


def test_writer_writes_brushes_and_keypoints_tied_by_parent_id(tmp_path: Path) -> None:
    mask = np.zeros((20, 30), dtype=bool)
    mask[2:5, 3:9] = True  # bounding box (3, 2, 9, 5): the first box is exactly it
    outside = np.zeros((20, 30), dtype=bool)
    outside[15:18, 25:29] = True  # beyond the second box
    boxes = [
        {"name": "blob", "x1": 3.0, "y1": 2.0, "x2": 9.0, "y2": 5.0, "rle": coco_of(mask)},
        {
            "name": "person",
            "x1": 1.5,
            "y1": 2.5,
            "x2": 12.25,
            "y2": 14.0,
            "rle": coco_of(outside),
            "keypoints": [[4.5, 3.0, 2], [0.0, 0.0, 0], [6.0, 9.5, 1]],
        },
        {"name": "person", "x1": 0.0, "y1": 0.0, "x2": 5.0, "y2": 5.0, "keypoints": [[0.0, 0.0, 0]] * 3},
    ]
    record = make_record(image="a.jpg", width=30, height=20, boxes=boxes)
    names = ["nose", "eye", "ear"]
    write_dataset(tmp_path / "ds", ["blob", "person"], {"train": [record]}, keypoints={"person": names})
    assert (
        runner.invoke(app, ["export", "labelstudio", str(tmp_path / "ds"), "-o", str(tmp_path / "ls")]).exit_code == 0
    )
    (written,) = json.loads((tmp_path / "ls" / "train.json").read_text())
    results = written["annotations"][0]["result"]
    kinds = [(r["type"], r["id"], r.get("parentID")) for r in results]
    assert kinds == [
        ("brushlabels", "r0", None),  # the box is the mask's bounding box: the brush alone
        ("rectanglelabels", "r1", None),
        ("brushlabels", "r1-mask", "r1"),
        ("keypointlabels", "r1-kp0", "r1"),
        ("keypointlabels", "r1-kp2", "r1"),
        ("rectanglelabels", "r2", None),
        ("keypointlabels", "r2-kp0", "r2"),  # none labeled: the first kept, visibility 0
    ]
    decoded = [
        ls_rle_to_mask(rle=r["value"]["rle"], height=20, width=30) for r in results if r["type"] == "brushlabels"
    ]
    assert np.array_equal(decoded[0], mask) and np.array_equal(decoded[1], outside)
    points = [r["value"] for r in results if r["type"] == "keypointlabels"]
    assert [(p["keypointlabels"], p.get("visibility", 2)) for p in points] == [
        (["nose"], 2),
        (["ear"], 1),
        (["nose"], 0),
    ]
    assert math.isclose(points[0]["x"] * 30 / 100, 4.5) and math.isclose(points[1]["y"] * 20 / 100, 9.5)
    config = ET.fromstring((tmp_path / "ls" / "label_config.xml").read_text())
    tags = {t.get("name"): [c.get("value") for c in t] for t in config if t.tag in ("BrushLabels", "KeyPointLabels")}
    assert tags == {"brush": ["blob", "person"], "keypoints:person": names}
    args = ["convert", "labelstudio", str(tmp_path / "ls"), "-o", str(tmp_path / "back")]
    assert runner.invoke(app, [*args, "--images", str(_images_for(tmp_path, 30, 20))]).exit_code == 0
    (back,) = records(tmp_path / "back")
    assert back["boxes"] == record["boxes"]
    categories = open_dataset(tmp_path / "back").manifest.categories
    assert [(c.name, c.keypoints) for c in categories] == [("blob", None), ("person", names)]


def _images_for(tmp_path: Path, width: int, height: int) -> Path:
    save_image(tmp_path / "images" / "a.jpg", width, height)
    return tmp_path / "images"


def test_brush_tied_to_a_rectangle_gives_it_its_mask_and_one_of_another_label_is_refused(tmp_path: Path) -> None:
    mask = np.zeros((6, 9), dtype=bool)
    mask[0, 0] = mask[5, 8] = True
    brush = {
        "id": "m",
        "parentID": "r",
        "type": "brushlabels",
        "original_width": 9,
        "original_height": 6,
        "value": {"format": "rle", "rle": brush_rle(mask), "brushlabels": ["cat"]},
    }
    box = rect(10, 10, 50, 50, "cat", size=(9, 6))
    code, output = convert_cli([task("a.png", [box, brush])], tmp_path)
    assert code == 0, output
    (got,) = records(tmp_path / "out")[0]["boxes"]
    assert (got["x1"], got["y1"], got["x2"], got["y2"]) == (0.9, 0.6, 5.4, 3.6)
    assert got["rle"] == coco_of(mask)
    brush["value"]["brushlabels"] = ["dog"]
    (tmp_path / "bad").mkdir()
    code, output = convert_cli([task("a.png", [box, brush])], tmp_path / "bad")
    assert code != 0 and len(output.strip().splitlines()) == 1, output
    assert "export.json" in output and "[0].annotations[0].result[1]" in output
    assert "tied by parentID" in output and not (tmp_path / "bad" / "out").exists()
