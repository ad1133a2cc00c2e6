"""DOTA (issue 15, item 4): the line mappings alone, the peer exports end to end, the round trip of oriented boxes.

Expected boxes are computed here from the label text with DOTA's definition (8 corners, class, difficulty),
independently of the converter.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from peer import PEER_DATA
from PIL import Image
from typer.testing import CliRunner

from annonorm.api import convert, export
from annonorm.cli import app
from annonorm.converters.base import make_record
from annonorm.converters.dota import DotaConverter, box_to_dota_line, dota_header_to_attribute, dota_line_to_box
from annonorm.geometry import obb_hull
from annonorm.io import open_dataset
from annonorm.testing import write_dataset

runner = CliRunner()


def words(text: str) -> list[str]:
    return text.split()


PEER = [PEER_DATA / "dota_dataset", PEER_DATA / "roboflow_dataset" / "yolo_obb"]


def test_an_object_line_is_an_oriented_box_with_its_hull() -> None:
    box = dota_line_to_box(tokens=words("10 5 20 8 18 15 8 12 plane 1"))
    assert box == {
        "name": "plane",
        "x1": 8.0,
        "y1": 5.0,
        "x2": 20.0,
        "y2": 15.0,
        "obb": [10.0, 5.0, 20.0, 8.0, 18.0, 15.0, 8.0, 12.0],
        "attributes": {"difficulty": 1},
    }
    assert "attributes" not in dota_line_to_box(tokens=words("0 0 1 0 1 1 0 1 a"))  # DOTA-v1.0 test: no difficulty


def test_the_writers_rectangle_reads_as_a_plain_box_any_other_order_keeps_its_corners() -> None:
    assert "obb" not in dota_line_to_box(tokens=words("1 2 5 2 5 9 1 9 a 0"))
    assert dota_line_to_box(tokens=words("1 2 1 9 5 9 5 2 a 0"))["obb"] == [1, 2, 1, 9, 5, 9, 5, 2]
    line = box_to_dota_line(box={"name": "a", "x1": 1, "y1": 2, "x2": 5.5, "y2": 9})
    assert line == "1 2 5.5 2 5.5 9 1 9 a 0"


@pytest.mark.parametrize(
    ("tokens", "fragment"),
    [
        ("0 0 1 x 1 1 0 1 a 0", "not a number"),
        ("0 0 1 nan 1 1 0 1 a 0", "finite"),
        ("0 0 1 inf 1 1 0 1 a 0", "finite"),
        ("0 0 1 0 1 1 0 1 a -1", "difficulty 0 or 1"),
        ("0 0 0 0 0 0 0 3.402823466385289e+38 a", "magnitude at most"),
        ("0 0 3e30 0 3e30 3e30 0 3e30 a", "area must be at most"),
    ],
)
def test_a_bad_object_line_says_what_was_expected(tokens: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        dota_line_to_box(tokens=words(tokens))


def test_header_lines() -> None:
    assert dota_header_to_attribute(line="imagesource:GoogleEarth") == ("imagesource", "GoogleEarth")
    assert dota_header_to_attribute(line="gsd:0.146343590398") == ("gsd", 0.146343590398)
    assert dota_header_to_attribute(line="gsd:null") == ("gsd", None)
    assert dota_header_to_attribute(line="0 0 1 0 1 1 0 1 a 0") is None
    with pytest.raises(ValueError):
        dota_header_to_attribute(line="gsd:nan")


def _expected(root: Path) -> dict[str, list[tuple[str, list[float]]]]:
    """Stem -> (class, corners) per object line, read straight from the label files."""
    found = {}
    for path in sorted(root.glob("*/labelTxt/*.txt")):
        rows = [line.split() for line in path.read_text().splitlines() if line.split()]
        found[f"{path.parent.parent.name}/{path.stem}"] = [(r[8], [float(v) for v in r[:8]]) for r in rows]
    return found


@pytest.mark.parametrize("source", PEER, ids=lambda p: p.name)
def test_peer_export_converts_validates_and_keeps_every_object(source: Path, tmp_path: Path) -> None:
    assert DotaConverter.sniff(source)
    result = runner.invoke(app, ["convert", "dota", str(source), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["validate", str(tmp_path / "out"), "--check-images"])
    assert result.exit_code == 0, result.output
    dataset = open_dataset(tmp_path / "out")
    assert sorted(dataset.manifest.splits) == ["train", "val"]
    assert dataset.manifest.category_names == ["label_0", "label_1"]
    got = {}
    for split in dataset.manifest.splits:
        for record in dataset.records(split):
            stem = Path(record["image"]).stem
            assert record["image"] == f"{split}/images/{stem}.jpg" and record["width"] is not None
            got[f"{split}/{stem}"] = [(b["name"], b["obb"]) for b in record["boxes"]]
            assert all(b["attributes"] == {"difficulty": 0} for b in record["boxes"])
    assert got == _expected(source)


def test_header_lines_become_record_attributes_and_are_written_back(tmp_path: Path) -> None:
    (tmp_path / "src" / "labelTxt").mkdir(parents=True)
    (tmp_path / "src" / "images").mkdir()
    Image.new("RGB", (30, 20)).save(tmp_path / "src" / "images" / "P1.png")
    text = "imagesource:GoogleEarth\ngsd:0.5\n10 5 20 8 18 15 8 12 large-vehicle 1\n"
    (tmp_path / "src" / "labelTxt" / "P1.txt").write_text(text)
    assert runner.invoke(app, ["convert", "dota", str(tmp_path / "src"), "-o", str(tmp_path / "out")]).exit_code == 0
    (record,) = open_dataset(tmp_path / "out").records("train")
    assert record["image"] == "images/P1.png" and (record["width"], record["height"]) == (30, 20)
    assert record["attributes"] == {"imagesource": "GoogleEarth", "gsd": 0.5}
    args = ["export", "dota", str(tmp_path / "out"), "-o", str(tmp_path / "back"), "--images", "copy"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "back" / "train" / "labelTxt" / "P1.txt").read_text() == text
    assert (tmp_path / "back" / "train" / "images" / "P1.png").is_file()


def test_a_bad_line_names_file_and_line_and_nothing_is_written(tmp_path: Path) -> None:
    shutil.copytree(PEER[0], tmp_path / "src")
    (tmp_path / "src" / "val" / "labelTxt" / "val_001.txt").write_text("0 0 1 0 1 1 0 1 a 0\n0 0 1 0 1 a 0\n")
    result = runner.invoke(app, ["convert", "dota", str(tmp_path / "src"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "val_001.txt:line 2" in result.output and "found 7 values" in result.output
    assert not (tmp_path / "out").exists()


oriented = st.lists(st.integers(0, 50).map(float), min_size=8, max_size=8).filter(
    lambda c: c != [c[0], c[1], c[2], c[1], c[2], c[5], c[0], c[5]]
)


@settings(max_examples=15, deadline=None)
@given(st.lists(oriented, min_size=1, max_size=4))
def test_oriented_boxes_round_trip_exactly(corners: list[list[float]]) -> None:
    """What ``obb=False`` in the capabilities leaves out: every oriented box but the writer's rectangle survives."""
    boxes = [{"name": "a", **dict(zip(("x1", "y1", "x2", "y2"), obb_hull(c), strict=True)), "obb": c} for c in corners]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_dataset(root / "ds", ["a"], {"train": [make_record(image="p.png", width=60, height=60, boxes=boxes)]})
        export("dota", root / "ds", root / "written")
        (root / "written" / "train" / "images").mkdir()
        Image.new("RGB", (60, 60)).save(root / "written" / "train" / "images" / "p.png")
        convert("dota", root / "written", root / "back")
        (record,) = open_dataset(root / "back").records("train")
        assert [(b["obb"], b["x1"], b["y1"], b["x2"], b["y2"]) for b in record["boxes"]] == [
            (b["obb"], b["x1"], b["y1"], b["x2"], b["y2"]) for b in boxes
        ]
        export("dota", root / "back", root / "again")
        assert (root / "again" / "train" / "labelTxt" / "p.txt").read_bytes() == (
            root / "written" / "train" / "labelTxt" / "p.txt"
        ).read_bytes()


def test_round_trip_property() -> None:
    from annonorm.testing import check_round_trip

    check_round_trip("dota", max_examples=15)
