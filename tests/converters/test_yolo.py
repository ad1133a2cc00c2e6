"""The YOLO converter: layouts, data.yaml names, round trips through real image files, bad input."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from PIL import Image

from annonorm.api import convert, export
from annonorm.converters.base import make_record
from annonorm.converters.yolo import YoloConverter, box_to_yolo_line, yolo_line_to_box
from annonorm.errors import InvalidDataError, ParseError
from annonorm.io import open_dataset
from annonorm.sources.classlists import data_yaml_to_names
from annonorm.testing import datasets, write_dataset
from annonorm.validation import validate_dataset

SAMPLE_CSV = Path(__file__).resolve().parents[2] / "sample_data" / "csv"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def image(path: Path, width: int, height: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (width, height)).save(path)
    return path


def records_of(out: Path, split: str = "train") -> list[dict[str, Any]]:
    return list(open_dataset(out).records(split))


# ---------------------------------------------------------------------------------------------- pure functions


@pytest.mark.parametrize(
    "text",
    [
        "names: [cat, 'big dog', \"a: b\"]\n",
        "path: .\nnames:\n  - cat\n  - 'big dog'   # the second\n  - \"a: b\"\nnc: 3\n",
        'names:\n  2: "a: b"\n  0: cat\n  1: big dog\n',
        "names: {0: cat, 1: 'big dog', 2: \"a: b\"}\n",
        "names: [cat,\n  'big dog',\n  \"a: b\"]\n",
    ],
)
def test_data_yaml_names_forms(text: str) -> None:
    assert data_yaml_to_names(text=text) == ["cat", "big dog", "a: b"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nc: 2\n", "no top-level 'names:'"),
        ("names:\n  0: a\n  2: b\n", "indices must be 0..1"),
        ("names: [a, b\n", "never closed"),
        ("names: cat\n", "expected a list or mapping"),
        ("names:\n  - a\n  1: b\n", "mixes"),
    ],
)
def test_data_yaml_names_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        data_yaml_to_names(text=text)


def test_yolo_line_to_box_centre_size_and_polygon() -> None:
    assert yolo_line_to_box(values=[0.5, 0.5, 0.5, 0.25], width=200, height=100) == (50, 37.5, 150, 62.5)
    polygon = [0.1, 0.2, 0.4, 0.1, 0.3, 0.6]
    assert yolo_line_to_box(values=polygon, width=100, height=10) == (10, 1, 40, 6)


def test_yolo_line_to_box_clips_corners_to_the_image() -> None:
    # Centre 0.05 and width 0.2 put the left edge at -0.05: clipped to 0, as Ultralytics does.
    assert yolo_line_to_box(values=[0.05, 0.5, 0.2, 1.0], width=100, height=50) == (0, 0, 15, 50)


@pytest.mark.parametrize("values", [[1.5, 0.5, 0.1, 0.1], [0.5, -0.1, 0.1, 0.1]])
def test_yolo_line_to_box_refuses_values_outside_zero_one(values: list[float]) -> None:
    with pytest.raises(ValueError, match=r"in 0\.\.1"):
        yolo_line_to_box(values=values, width=10, height=10)


def test_box_to_yolo_line_six_decimals() -> None:
    box = {"x1": 10.0, "y1": 20.0, "x2": 40.0, "y2": 30.0}
    assert box_to_yolo_line(class_id=3, box=box, width=300, height=100) == "3 0.083333 0.250000 0.100000 0.100000"


# ---------------------------------------------------------------------------------------------- reading


def test_reads_ultralytics_split_layout_with_data_yaml(tmp_path: Path) -> None:
    root = tmp_path / "yolo"
    write(root / "data.yaml", "path: .\ntrain: images/train\nval: images/val\nnames:\n  0: cat\n  1: dog\n")
    image(root / "images/train/a.jpg", 200, 100)
    image(root / "images/train/b.png", 40, 20)  # no label file: an image without objects
    image(root / "images/val/sub/c.jpg", 10, 10)
    write(root / "labels/train/a.txt", "1 0.5 0.5 0.5 0.5\n\n0 0.25 0.25 0.1 0.1\n")
    write(root / "labels/val/sub/c.txt", "")
    result = convert("yolo", root, tmp_path / "out")
    assert validate_dataset(tmp_path / "out", check_images=True).errors == []
    train = records_of(tmp_path / "out", "train")
    assert [r["image"] for r in train] == ["train/a.jpg", "train/b.png"]
    assert train[0]["boxes"] == [
        {"name": "dog", "x1": 50.0, "y1": 25.0, "x2": 150.0, "y2": 75.0},
        {"name": "cat", "x1": 40.0, "y1": 20.0, "x2": 60.0, "y2": 30.0},
    ]
    assert train[1]["boxes"] == []
    assert [(r["image"], r["boxes"]) for r in records_of(tmp_path / "out", "val")] == [("val/sub/c.jpg", [])]
    assert [(c.name, c.source_id) for c in result.manifest.categories] == [("cat", 0), ("dog", 1)]


def test_reads_flat_layout_with_obj_names_and_split_option(tmp_path: Path) -> None:
    root = tmp_path / "yolo"
    write(root / "obj.names", "person\ncar\n")
    image(root / "images/x.jpg", 100, 100)
    write(root / "labels/x.txt", "1 0.5 0.5 1 1\n")
    convert("yolo", root, tmp_path / "out", split="val")
    (record,) = records_of(tmp_path / "out", "val")
    assert record["image"] == "x.jpg" and record["boxes"][0]["name"] == "car"


def test_reads_roboflow_layout_from_its_data_yaml(tmp_path: Path) -> None:
    root = tmp_path / "rf"
    write(root / "data.yaml", "train: ../train/images\nval: ../valid/images\nnc: 1\nnames: ['thing']\n")
    image(root / "train/images/a.jpg", 20, 10)
    write(root / "train/labels/a.txt", "0 0.5 0.5 0.5 0.5\n")
    image(root / "valid/images/b.jpg", 20, 10)
    write(root / "valid/labels/b.txt", "")
    convert("yolo", root / "data.yaml", tmp_path / "out")
    assert validate_dataset(tmp_path / "out", check_images=True).errors == []
    assert [r["image"] for r in records_of(tmp_path / "out", "train")] == ["train/images/a.jpg"]
    assert [r["image"] for r in records_of(tmp_path / "out", "valid")] == ["valid/images/b.jpg"]


def test_images_elsewhere_are_found_with_images_option(tmp_path: Path) -> None:
    write(tmp_path / "yolo/classes.txt", "a\n")
    write(tmp_path / "yolo/labels/train/p.txt", "0 0.5 0.5 0.2 0.2\n")
    image(tmp_path / "pics/p.jpeg", 50, 50)
    convert("yolo", tmp_path / "yolo", tmp_path / "out", images=tmp_path / "pics")
    (record,) = records_of(tmp_path / "out")
    assert (record["image"], record["width"]) == ("p.jpeg", 50)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "yolo"
    write(root / "classes.txt", "a\nb\n")
    image(root / "images/train/ok.jpg", 10, 10)
    write(root / "labels/train/ok.txt", "0 0.5 0.5 0.2 0.2\n")
    return root


@pytest.mark.parametrize(
    ("line", "error", "message"),
    [
        ("2 0.5 0.5 0.2 0.2", InvalidDataError, "class '2' is not an index 0..1"),
        ("0 0.5 0.5 0.2", ParseError, "found 4 values"),
        ("0 0.5 0.5 0.2 1.7", InvalidDataError, r"in 0\.\.1"),
        ("0 0.5 x 0.2 0.2", InvalidDataError, "could not convert"),
        ("a 0.5 0.5 0.2 0.2", InvalidDataError, "not an index"),
    ],
)
def test_bad_label_line_names_file_and_line(
    tree: Path, tmp_path: Path, line: str, error: type[Exception], message: str
) -> None:
    label = write(tree / "labels/train/bad.txt", f"0 0.5 0.5 0.1 0.1\n{line}\n")
    image(tree / "images/train/bad.jpg", 10, 10)
    with pytest.raises(error, match=message) as raised:
        convert("yolo", tree, tmp_path / "out")
    assert getattr(raised.value, "file", None) == str(label)
    assert getattr(raised.value, "location", None) == "line 2"
    assert not (tmp_path / "out").exists()


def test_label_without_image_is_a_problem_naming_the_label_file(tree: Path, tmp_path: Path) -> None:
    label = write(tree / "labels/train/ghost.txt", "0 0.5 0.5 0.1 0.1\n")
    with pytest.raises(InvalidDataError, match="no image for this label file") as raised:
        convert("yolo", tree, tmp_path / "out")
    assert raised.value.file == str(label)
    result = convert("yolo", tree, tmp_path / "out", on_error="skip")
    assert [r["image"] for r in records_of(tmp_path / "out")] == ["train/ok.jpg"]
    assert [e.file for e in result.skipped] == [str(label)]


def test_missing_class_list_is_a_parse_error(tmp_path: Path) -> None:
    write(tmp_path / "yolo/labels/train/a.txt", "0 0.5 0.5 0.1 0.1\n")
    with pytest.raises(ParseError, match="no class list"):
        convert("yolo", tmp_path / "yolo", tmp_path / "out")


def test_sniff(tree: Path, tmp_path: Path) -> None:
    assert YoloConverter.sniff(tree)
    assert YoloConverter.sniff(write(tmp_path / "d/data.yaml", "names: [a]\n"))
    assert not YoloConverter.sniff(tree / "classes.txt")
    assert not YoloConverter.sniff(write(tmp_path / "plain/readme.txt", "hi"))


# ---------------------------------------------------------------------------------------------- writing


def test_export_layout_empty_label_files_and_data_yaml(tmp_path: Path) -> None:
    records = [
        make_record(
            image="a.jpg", width=200, height=100, boxes=[{"name": "b: c", "x1": 0, "y1": 0, "x2": 20, "y2": 10}]
        ),
        make_record(image="sub/e.jpg", width=20, height=10),
    ]
    write_dataset(tmp_path / "ds", ["a", "b: c"], {"train": records})
    export("yolo", tmp_path / "ds", tmp_path / "yolo")
    assert (tmp_path / "yolo/labels/train/a.txt").read_bytes() == b"1 0.050000 0.050000 0.100000 0.100000\n"
    assert (tmp_path / "yolo/labels/train/sub/e.txt").read_bytes() == b""
    assert (tmp_path / "yolo/classes.txt").read_text() == "a\nb: c\n"
    assert data_yaml_to_names(text=(tmp_path / "yolo/data.yaml").read_text()) == ["a", "b: c"]
    assert not (tmp_path / "yolo/images").exists()


@pytest.mark.parametrize("mode", ["copy", "symlink"])
def test_export_places_images_when_asked(tmp_path: Path, mode: str) -> None:
    image(tmp_path / "pics/a.jpg", 20, 10)
    records = [make_record(image="a.jpg", width=20, height=10)]
    write_dataset(tmp_path / "ds", ["x"], {"val": records}, image_root=str(tmp_path / "pics"))
    export("yolo", tmp_path / "ds", tmp_path / "yolo", images=mode)
    placed = tmp_path / "yolo/images/val/a.jpg"
    assert placed.is_symlink() == (mode == "symlink")
    assert placed.read_bytes() == (tmp_path / "pics/a.jpg").read_bytes()


def test_export_refuses_boxes_without_image_size(tmp_path: Path) -> None:
    box = {"name": "x", "x1": 0, "y1": 0, "x2": 1, "y2": 1}
    write_dataset(tmp_path / "ds", ["x"], {"train": [make_record(image="a.jpg", width=None, height=None, boxes=[box])]})
    with pytest.raises(InvalidDataError, match="image size is unknown") as raised:
        export("yolo", tmp_path / "ds", tmp_path / "yolo")
    assert raised.value.location == "record 1"
    assert not (tmp_path / "yolo").exists()


# ---------------------------------------------------------------------------------------------- round trips


def _yolo_limits(record: dict[str, Any]) -> dict[str, Any]:
    """What YOLO holds of a record: its boxes (labels and counts follow from them)."""
    return make_record(image=record["image"], width=record["width"], height=record["height"], boxes=record["boxes"])


@settings(max_examples=25, deadline=None)
@given(datasets(attributes=False, ids=False, sizes=True, max_records=3))
def test_round_trip_through_yolo_within_six_decimal_fractions(spec: Any) -> None:
    splits = {split: [_yolo_limits(r) for r in records] for split, records in spec.splits.items()}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for records in splits.values():
            for record in records:
                image(root / "images" / record["image"], record["width"], record["height"])
        write_dataset(root / "ds", spec.categories, splits, image_root="../images")
        export("yolo", root / "ds", root / "yolo")
        convert("yolo", root / "yolo", root / "back", images=root / "images")
        back = open_dataset(root / "back")
        assert back.manifest.category_names == spec.categories
        for split, want in splits.items():
            got = {r["image"]: r for r in back.records(split)}
            assert sorted(got) == sorted(r["image"] for r in want)
            for expected in want:
                record = got[expected["image"]]
                assert (record["width"], record["height"]) == (expected["width"], expected["height"])
                assert record["counts"] == expected["counts"]
                assert [b["name"] for b in record["boxes"]] == [b["name"] for b in expected["boxes"]]
                # Each fraction is off by at most 5e-7; a corner combines two of them, times the side.
                tolerance = 1e-6 * max(expected["width"], expected["height"]) + 1e-6
                for box, original in zip(record["boxes"], expected["boxes"], strict=True):
                    for key in ("x1", "y1", "x2", "y2"):
                        assert math.isclose(box[key], original[key], abs_tol=tolerance), (key, box, original)


@pytest.mark.skipif(not (SAMPLE_CSV / "annotations.csv").exists(), reason="sample_data/csv not generated")
def test_sample_data_csv_to_yolo_with_copied_images_and_back(tmp_path: Path) -> None:
    convert("csv", SAMPLE_CSV / "annotations.csv", tmp_path / "ds", images=SAMPLE_CSV / "images")
    export("yolo", tmp_path / "ds", tmp_path / "yolo", images="copy")
    assert YoloConverter.sniff(tmp_path / "yolo")
    convert("yolo", tmp_path / "yolo", tmp_path / "back")
    assert validate_dataset(tmp_path / "back", check_images=True).errors == []
    original = {f"train/{r['image']}": r for r in records_of(tmp_path / "ds")}
    back = {r["image"]: r for r in records_of(tmp_path / "back")}
    assert sorted(back) == sorted(original)
    for name, record in back.items():
        want = original[name]
        assert [b["name"] for b in record["boxes"]] == [b["name"] for b in want["boxes"]]
        for box, expected in zip(record["boxes"], want["boxes"], strict=True):
            assert [box[k] for k in ("x1", "y1", "x2", "y2")] == pytest.approx(
                [expected[k] for k in ("x1", "y1", "x2", "y2")], abs=1e-4
            )
