"""KITTI (issue 15, item 3): the label-line mapping alone, the peer sets end to end, instance PNGs, the round trip.

Expected boxes and instances are computed here from the label text and the PNG pixels (class * 256 + instance),
independently of the converter.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from peer import PEER_DATA
from PIL import Image
from typer.testing import CliRunner

from annonorm.cli import app
from annonorm.converters.kitti import KittiConverter, box_to_kitti_line, kitti_line_to_box
from annonorm.io import open_dataset

runner = CliRunner()
KITTI = PEER_DATA / "kitti_dataset"


def words(text: str) -> list[str]:
    return text.split()


def test_a_label_line_keeps_the_3d_fields_and_dontcare_is_ignored() -> None:
    box = kitti_line_to_box(tokens=words("DontCare -1 -1 -10 500 170 590 190 -1 -1 -1 -1000 -1000 -1000 -10"))
    assert (box["name"], box["x1"], box["y1"], box["x2"], box["y2"]) == ("DontCare", 500, 170, 590, 190)
    assert box["attributes"] == {
        "truncated": -1.0,
        "occluded": -1,
        "alpha": -10.0,
        "dimensions": [-1.0, -1.0, -1.0],
        "location": [-1000.0, -1000.0, -1000.0],
        "rotation_y": -10.0,
        "ignore": True,
    }
    scored = kitti_line_to_box(tokens=words("Car 0 0 1.5 1 2 3 4 1.5 1.6 3.9 1 2 30 -1.5 0.75"))
    assert scored["score"] == 0.75 and "ignore" not in scored["attributes"]
    assert (
        kitti_line_to_box(tokens=words("Car 0 0 1.5 1 2 3 4 1.5 1.6 3.9 1 2 30 -1.5 12.5"))["attributes"]["score"]
        == 12.5
    )
    assert box_to_kitti_line(box=scored) == "Car 0 0 1.5 1 2 3 4 1.5 1.6 3.9 1 2 30 -1.5 0.75"
    assert box_to_kitti_line(box={"name": "Van", "x1": 0, "y1": 1, "x2": 2.5, "y2": 3}) == (
        "Van 0 0 -10 0 1 2.5 3 -1 -1 -1 -1000 -1000 -1000 -10"
    )


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("Car 0 0 x 1 2 3 4 1 1 1 1 1 1 1", "not a number"),
        ("Car 0 0 nan 1 2 3 4 1 1 1 1 1 1 1", "finite"),
        ("Car 0 0.5 0 1 2 3 4 1 1 1 1 1 1 1", "occlusion state"),
        ("Car 0 0 0 5 2 3 4 1 1 1 1 1 1 1", "left <= right"),
        ("Car 0 0 0 0 0 1 3.5e38 1 1 1 1 1 1 1", "magnitude at most"),
        ("Car 0 0 0 0 0 3e30 3e30 1 1 1 1 1 1 1", "area must be at most"),
    ],
)
def test_a_bad_line_says_what_was_expected(line: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        kitti_line_to_box(tokens=words(line))


@pytest.mark.parametrize("name", ["kitti_detection", "kitti_3d"])
def test_peer_labels_convert_validate_and_keep_every_line(name: str, tmp_path: Path) -> None:
    source = KITTI / name
    assert KittiConverter.sniff(source)
    assert runner.invoke(app, ["convert", "kitti", str(source), "-o", str(tmp_path / "out")]).exit_code == 0
    result = runner.invoke(app, ["validate", str(tmp_path / "out"), "--check-images"])
    assert result.exit_code == 0, result.output
    dataset = open_dataset(tmp_path / "out")
    got = {Path(r["image"]).stem: r for r in dataset.records("train")}
    for label in sorted((source / "training" / "label_2").glob("*.txt")):
        rows = [line.split() for line in label.read_text().splitlines() if line.strip()]
        record = got[label.stem]
        assert record["image"] == f"training/image_2/{label.stem}.png"
        assert [(b["name"], *(b[k] for k in ("x1", "y1", "x2", "y2"))) for b in record["boxes"]] == [
            (r[0], *map(float, r[4:8])) for r in rows
        ]
        assert [b["attributes"].get("ignore", False) for b in record["boxes"]] == [r[0] == "DontCare" for r in rows]
        assert [b["attributes"]["location"] for b in record["boxes"]] == [list(map(float, r[11:14])) for r in rows]


def test_instance_pngs_are_instance_masks_with_a_box_per_instance(tmp_path: Path) -> None:
    source = KITTI / "kitti_segmentation"
    assert runner.invoke(app, ["convert", "kitti", str(source), "-o", str(tmp_path / "out")]).exit_code == 0
    result = runner.invoke(app, ["validate", str(tmp_path / "out"), "--check-images"])
    assert result.exit_code == 0, result.output
    dataset = open_dataset(tmp_path / "out")
    assert dataset.manifest.mask_kind == "instance"
    for record in dataset.records("train"):
        pixels = np.asarray(Image.open(source / "training" / "instance" / Path(record["image"]).name)).astype(int)
        instances = sorted(v for v in np.unique(pixels).tolist() if v % 256)
        assert len(record["boxes"]) == len(instances)
        mask = np.asarray(Image.open(tmp_path / "out" / record["mask"]))
        for k, value in enumerate(instances, start=1):
            assert np.array_equal(mask == k, pixels == value)
            cols = np.nonzero((pixels == value).any(axis=0))[0]
            assert (record["boxes"][k - 1]["x1"], record["boxes"][k - 1]["x2"]) == (cols.min(), cols.max() + 1)
        assert np.array_equal(mask == 0, pixels % 256 == 0)


def test_labels_export_back_byte_for_byte(tmp_path: Path) -> None:
    source = KITTI / "kitti_3d"
    assert runner.invoke(app, ["convert", "kitti", str(source), "-o", str(tmp_path / "out")]).exit_code == 0
    assert runner.invoke(app, ["export", "kitti", str(tmp_path / "out"), "-o", str(tmp_path / "back")]).exit_code == 0
    want = [
        [float(v) if i else v for i, v in enumerate(line.split())]
        for line in (source / "training/label_2/000001.txt").read_text().splitlines()
    ]
    got = [
        [float(v) if i else v for i, v in enumerate(line.split())]
        for line in (tmp_path / "back/training/label_2/000001.txt").read_text().splitlines()
    ]
    assert got == want


def test_a_wrong_column_count_names_file_and_line_and_nothing_is_written(tmp_path: Path) -> None:
    (tmp_path / "src" / "label_2").mkdir(parents=True)
    (tmp_path / "src" / "image_2").mkdir()
    Image.new("RGB", (8, 6)).save(tmp_path / "src" / "image_2" / "a.png")
    (tmp_path / "src" / "label_2" / "a.txt").write_text("Car 0 0 0 1 2 3 4\n")
    result = runner.invoke(app, ["convert", "kitti", str(tmp_path / "src"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2 and "a.txt:line 1" in result.output and "found 8 values" in result.output
    assert not (tmp_path / "out").exists()


def test_round_trip_property() -> None:
    from annonorm.testing import check_round_trip

    check_round_trip("kitti", max_examples=15)
