"""``annonorm export yolo`` writes what an Ultralytics trainer accepts (issue 11, item 7): ``data.yaml`` with
``train:`` and ``val:``, no relative ``path:``, ``names`` as a mapping; ``images/<split>/NAME`` beside
``labels/<split>/NAME.txt`` without a repeated split folder; and it reads back to the same boxes."""

from __future__ import annotations

import math
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from peer import PEER_DATA
from PIL import Image
from typer.testing import CliRunner

from annonorm.api import convert, export
from annonorm.cli import app
from annonorm.converters.base import make_record
from annonorm.converters.yolo import export_image_path
from annonorm.errors import InvalidDataError
from annonorm.io import open_dataset
from annonorm.testing import write_dataset

yaml = pytest.importorskip("yaml", reason="PyYAML loads the written data.yaml as Ultralytics does")
runner = CliRunner()
CVAT_PEER = PEER_DATA.parent / "cvat-ai-datumaro"
needs_peer = pytest.mark.skipif(not PEER_DATA.is_dir(), reason=f"peer_data is not on this machine ({PEER_DATA})")


def image(path: Path, width: int, height: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height)).save(path)
    return path


def box(name: str, x1: float, y1: float, x2: float, y2: float) -> dict[str, Any]:
    return {"name": name, "x1": x1, "y1": y1, "x2": x2, "y2": y2}


def ultralytics_label(image_path: str) -> str:
    """Where Ultralytics looks for an image's label: the last /images/ of the path becomes /labels/, suffix .txt."""
    head, sep, tail = f"/{image_path}".rpartition("/images/")
    assert sep, image_path
    return (head + "/labels/" + tail).lstrip("/").rsplit(".", 1)[0] + ".txt"


def dataset_with_images(tmp_path: Path, splits: dict[str, list[dict[str, Any]]]) -> Path:
    for records in splits.values():
        for record in records:
            image(tmp_path / "pics" / record["image"], record["width"], record["height"])
    return write_dataset(tmp_path / "ds", ["cat", "dog"], splits, image_root=str(tmp_path / "pics"))


# ---------------------------------------------------------------------------------------------- data.yaml


def test_one_split_writes_train_and_val_and_says_so(tmp_path: Path) -> None:
    records = [make_record(image="a.jpg", width=20, height=10, boxes=[box("dog", 0, 0, 10, 5)])]
    dataset = dataset_with_images(tmp_path, {"default": records})
    done = runner.invoke(app, ["export", "yolo", str(dataset), "-o", str(tmp_path / "yolo"), "--images", "copy"])
    assert done.exit_code == 0, done.output
    text = (tmp_path / "yolo/data.yaml").read_text()
    data = yaml.safe_load(text)
    assert "path" not in data
    assert data["train"] == data["val"] == "images/default"
    assert "one split only: val is the train split" in text
    assert data["names"] == {0: "cat", 1: "dog"} and data["nc"] == 2
    assert (tmp_path / "yolo" / data["train"] / "a.jpg").is_file()


@pytest.mark.parametrize(
    ("splits", "keys"),
    [
        (["train", "val", "test"], {"train": "train", "val": "val", "test": "test"}),
        (["train", "valid"], {"train": "train", "val": "valid"}),
        (["test", "train"], {"train": "train", "val": "train", "test": "test"}),
        (["trainval", "val", "extra"], {"train": "trainval", "val": "val"}),
    ],
)
def test_split_keys(tmp_path: Path, splits: list[str], keys: dict[str, str]) -> None:
    dataset = write_dataset(
        tmp_path / "ds", ["cat"], {s: [make_record(image=f"{s}_img.jpg", width=8, height=8)] for s in splits}
    )
    export("yolo", dataset, tmp_path / "yolo")
    text = (tmp_path / "yolo/data.yaml").read_text()
    data = yaml.safe_load(text)
    assert {k: data[k] for k in ("train", "val", "test") if k in data} == {k: f"images/{v}" for k, v in keys.items()}
    assert "path" not in data
    for split in splits:
        assert (tmp_path / f"yolo/labels/{split}/{split}_img.txt").is_file()
    if keys["val"] == keys["train"]:
        assert "no validation split: val is train" in text
    if "extra" in splits:
        assert "without an Ultralytics key (labels/<split>, images/<split>): extra" in text  # a comment only


def test_names_that_need_quoting_survive_yaml(tmp_path: Path) -> None:
    names = ["a: b", "#hash", "yes", "0", "naïve", 'quote "q"']
    dataset = write_dataset(tmp_path / "ds", names, {"train": [make_record(image="a.jpg", width=8, height=8)]})
    export("yolo", dataset, tmp_path / "yolo")
    assert yaml.safe_load((tmp_path / "yolo/data.yaml").read_text())["names"] == dict(enumerate(names))


# ---------------------------------------------------------------------------------------------- file locations


def test_split_folder_is_not_repeated_and_labels_are_where_ultralytics_looks(tmp_path: Path) -> None:
    records = [
        make_record(image="train/a.jpg", width=20, height=10, boxes=[box("cat", 0, 0, 10, 10)]),  # read from YOLO
        make_record(image="train/images/b.jpg", width=20, height=10),  # read from Roboflow's layout
        make_record(image="sub/c.jpg", width=20, height=10),
        make_record(image="data/images/d.png", width=20, height=10),
    ]
    dataset = dataset_with_images(tmp_path, {"train": records})
    export("yolo", dataset, tmp_path / "yolo", images="copy")
    out = tmp_path / "yolo"
    placed = sorted(p.relative_to(out).as_posix() for p in (out / "images").rglob("*") if p.is_file())
    assert placed == ["images/train/a.jpg", "images/train/b.jpg", "images/train/d.png", "images/train/sub/c.jpg"]
    assert not (out / "images/train/train").exists()
    for path in placed:
        assert (out / ultralytics_label(path)).is_file(), path
    assert (out / "labels/train/a.txt").read_text() == "0 0.250000 0.500000 0.500000 1.000000\n"


def test_export_image_path() -> None:
    assert export_image_path(image="train/a.jpg", split="train") == "a.jpg"
    assert export_image_path(image="val/a.jpg", split="train") == "val/a.jpg"  # another split's folder: kept
    assert export_image_path(image="train/images/x/a.jpg", split="train") == "x/a.jpg"
    assert export_image_path(image="train", split="train") == "train"  # a file named like the split
    assert export_image_path(image="a/images/b/images/c.jpg", split="s") == "c.jpg"


def test_two_records_on_one_label_file_are_refused(tmp_path: Path) -> None:
    records = [make_record(image="train/a.jpg", width=8, height=8), make_record(image="a.png", width=8, height=8)]
    dataset = write_dataset(tmp_path / "ds", ["cat"], {"train": records})
    with pytest.raises(InvalidDataError, match=r"would share labels/train/a\.txt") as raised:
        export("yolo", dataset, tmp_path / "yolo")
    assert raised.value.location == "record 2"
    assert not (tmp_path / "yolo").exists()


# ---------------------------------------------------------------------------------------------- round trips


def corners(record: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(b["name"], b["x1"], b["y1"], b["x2"], b["y2"]) for b in record["boxes"]]


def assert_same_boxes(first: dict[str, Any], second: dict[str, Any]) -> None:
    assert len(first["boxes"]) == len(second["boxes"])
    tolerance = 1e-6 * max(first["width"], first["height"]) + 1e-6  # 6-decimal fractions
    for a, b in zip(corners(first), corners(second), strict=True):
        assert a[0] == b[0]
        assert all(math.isclose(x, y, abs_tol=tolerance) for x, y in zip(a[1:], b[1:], strict=True)), (a, b)


def test_round_trip_keeps_boxes_and_image_names(tmp_path: Path) -> None:
    records = [
        make_record(
            image="train/a.jpg", width=64, height=48, boxes=[box("dog", 1.5, 2, 30.25, 47), box("cat", 0, 0, 64, 48)]
        ),
        make_record(image="train/b.jpg", width=33, height=17),
    ]
    val = [make_record(image="v.jpg", width=50, height=50, boxes=[box("cat", 10, 10, 20, 20)])]
    dataset = dataset_with_images(tmp_path, {"train": records, "val": val})
    export("yolo", dataset, tmp_path / "yolo", images="copy")
    back = convert("yolo", tmp_path / "yolo", tmp_path / "back")
    assert back.manifest.category_names == ["cat", "dog"]
    got = open_dataset(back.out)
    want = {"train": {PurePosixPath(r["image"]).name: r for r in records}, "val": {r["image"]: r for r in val}}
    for split, originals in want.items():
        records_back = {PurePosixPath(r["image"]).name: r for r in got.records(split)}
        assert sorted(records_back) == sorted(originals)
        assert all(r["image"] == f"{split}/{name}" for name, r in records_back.items())
        for name, original in originals.items():
            assert_same_boxes(records_back[name], original)


@needs_peer
@pytest.mark.parametrize(
    "case",
    [
        PEER_DATA / "roboflow_dataset/yolo",
        PEER_DATA / "yolo_dataset/strict",
        CVAT_PEER / "yolo_dataset/yolov8_detection",
    ],
    ids=lambda p: p.name,
)
def test_peer_data_round_trips_through_an_ultralytics_export(case: Path, tmp_path: Path) -> None:
    first = convert("yolo", case, tmp_path / "first")
    export("yolo", first.out, tmp_path / "yolo", images="copy")
    data = yaml.safe_load((tmp_path / "yolo/data.yaml").read_text())
    assert {"train", "val", "names"} <= set(data) and "path" not in data
    for key in ("train", "val"):
        assert (tmp_path / "yolo" / data[key]).is_dir()
    back = convert("yolo", tmp_path / "yolo", tmp_path / "back")
    assert back.manifest.category_names == first.manifest.category_names
    for split in first.manifest.splits:
        before = {PurePosixPath(r["image"]).name: r for r in open_dataset(first.out).records(split)}
        after = {PurePosixPath(r["image"]).name: r for r in open_dataset(back.out).records(split)}
        assert sorted(before) == sorted(after)
        for name, record in before.items():
            assert (after[name]["width"], after[name]["height"]) == (record["width"], record["height"])
            assert_same_boxes(after[name], record)
