"""``annonorm convert yolo`` (issue 11): the third-party YOLO trees, the Darknet layout, not-YOLO folders,
skipped images named, inputs that are not regular files.

Expected boxes are computed here from the label text with the YOLO definition (centre and size as fractions
of the image side, corners clipped to the image), independently of the converter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from peer import PEER_DATA
from PIL import Image
from typer.testing import CliRunner

from annonorm.api import convert
from annonorm.cli import app
from annonorm.converters.yolo import darknet_data_to_entries
from annonorm.io import open_dataset
from annonorm.validation import validate_dataset

runner = CliRunner()
CVAT_PEER = PEER_DATA.parent / "cvat-ai-datumaro"
needs_peer = pytest.mark.skipif(not PEER_DATA.is_dir(), reason=f"peer_data is not on this machine ({PEER_DATA})")
TIMEOUT = 60

#: Detection (boxes) cases of the peer data: folder -> (expected splits, the folder label files are under).
PEER_CASES = {
    "datumaro/yolo_dataset/strict": {"train"},
    "datumaro/yolo_dataset/labels": {"train", "val"},
    "datumaro/yolo_dataset/annotations": {"train"},
    "datumaro/roboflow_dataset/yolo": {"train", "val"},
    "cvat-ai-datumaro/yolo_dataset/yolov8_detection": {"train"},
    "cvat-ai-datumaro/yolo_dataset/yolov8_detection_with_list_of_names": {"train"},
    "cvat-ai-datumaro/yolo_dataset/yolov8_detection_with_list_of_imgs": {"train"},
    "cvat-ai-datumaro/yolo_dataset/yolov8_detection_with_subset_txt": {"train"},
    "cvat-ai-datumaro/yolo_dataset/yolov8_segmentation": {"train"},  # polygons: their bounding boxes
}


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def image(path: Path, width: int = 20, height: int = 10) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (width, height)).save(path)
    return path


def expected_boxes(label: Path, width: int, height: int, names: list[str]) -> list[tuple[Any, ...]]:
    """The boxes of a label file, by the YOLO definition."""
    boxes = []
    for line in label.read_text().splitlines():
        values = line.split()
        if not values:
            continue
        numbers = [float(v) for v in values[1:]]
        if len(numbers) == 4:
            cx, cy, w, h = numbers
            left, top, right, bottom = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
        else:
            left, right = min(numbers[0::2]), max(numbers[0::2])
            top, bottom = min(numbers[1::2]), max(numbers[1::2])
        corners = [min(max(v, 0.0), 1.0) for v in (left, top, right, bottom)]
        boxes.append(
            (names[int(values[0])], corners[0] * width, corners[1] * height, corners[2] * width, corners[3] * height)
        )
    return boxes


def peer_root(case: str) -> Path:
    return (CVAT_PEER if case.startswith("cvat-ai-datumaro/") else PEER_DATA).joinpath(case.split("/", 1)[1])


def class_names(root: Path) -> list[str]:
    for name in ("obj.names", "classes.txt"):
        if (root / name).is_file():
            return [line.strip() for line in (root / name).read_text().splitlines() if line.strip()]
    text = (root / "data.yaml").read_text()
    import yaml  # the peer data.yaml files are plain YAML

    names = yaml.safe_load(text)["names"]
    return [names[k] for k in sorted(names)] if isinstance(names, dict) else list(names)


def run_module(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "annonorm", *args], capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


# ---------------------------------------------------------------------------------------------- peer data


@needs_peer
@pytest.mark.parametrize("case", sorted(PEER_CASES))
def test_peer_case_converts_with_the_boxes_of_its_label_files(case: str, tmp_path: Path) -> None:
    pytest.importorskip("yaml", reason="PyYAML reads the peer data.yaml files here")
    root = peer_root(case)
    done = runner.invoke(app, ["convert", "yolo", str(root), "-o", str(tmp_path / "out")])
    assert done.exit_code == 0, done.output
    assert validate_dataset(tmp_path / "out", check_images=True).errors == []
    dataset = open_dataset(tmp_path / "out")
    assert set(dataset.manifest.splits) == PEER_CASES[case]
    names = class_names(root)
    assert dataset.manifest.category_names == names
    labels = {p.stem: p for p in root.rglob("*.txt") if p.parent != root and p.name not in ("README.txt",)}
    checked = 0
    for split in dataset.manifest.splits:
        for record in dataset.records(split):
            stem = Path(record["image"]).stem
            want = expected_boxes(labels[stem], record["width"], record["height"], names) if stem in labels else []
            got = [(b["name"], b["x1"], b["y1"], b["x2"], b["y2"]) for b in record["boxes"]]
            assert len(got) == len(want), record["image"]
            for mine, theirs in zip(got, want, strict=True):
                assert mine[0] == theirs[0]
                assert mine[1:] == pytest.approx(theirs[1:], abs=1e-5)
            checked += len(got)
    assert checked >= 2


@needs_peer
def test_darknet_strict_layout_strips_the_data_prefix(tmp_path: Path) -> None:
    root = PEER_DATA / "yolo_dataset/strict"
    assert "data/" in (root / "train.txt").read_text()  # a prefix that is not on disk
    result = convert("yolo", root, tmp_path / "out")
    (record,) = open_dataset(result.out).records("train")
    assert record["image"] == "obj_train_data/1.jpg"
    assert (record["width"], record["height"]) == (15, 10)
    assert {Path(f.path).name for f in result.manifest.source.files} >= {"obj.data", "obj.names", "train.txt"}


def test_darknet_data_entries() -> None:
    text = "# made by CVAT\nclasses = 2\n\ntrain = data/train.txt  # the list\nnames=data/obj.names\n"
    assert darknet_data_to_entries(text=text) == {
        "classes": (2, "2"),
        "train": (4, "data/train.txt"),
        "names": (5, "data/obj.names"),
    }
    with pytest.raises(ValueError, match="line 2: expected 'key = value'"):
        darknet_data_to_entries(text="classes = 2\ntrain data/train.txt\n")


def test_darknet_layout_with_two_splits_and_an_unlabeled_image(tmp_path: Path) -> None:
    root = tmp_path / "dn"
    write(root / "obj.data", "classes = 2\ntrain = data/train.txt\nvalid = data/valid.txt\nnames = data/obj.names\n")
    write(root / "obj.names", "cat\ndog\n")
    image(root / "obj_train_data/a.jpg", 40, 20)
    write(root / "obj_train_data/a.txt", "1 0.5 0.5 0.5 0.5\n")
    image(root / "obj_train_data/b.jpg", 40, 20)  # listed, no label file: no object
    image(root / "obj_valid_data/c.png", 10, 10)
    write(root / "obj_valid_data/c.txt", "0 0.25 0.25 0.5 0.5\n")
    write(root / "train.txt", "data/obj_train_data/a.jpg\n/home/someone/darknet/data/obj_train_data/b.jpg\n")
    write(root / "valid.txt", "data/obj_valid_data/c.png\n")
    done = runner.invoke(app, ["convert", "yolo", str(root), "-o", str(tmp_path / "out")])
    assert done.exit_code == 0, done.output
    dataset = open_dataset(tmp_path / "out")
    assert dataset.manifest.category_names == ["cat", "dog"]
    train = list(dataset.records("train"))
    assert [(r["image"], len(r["boxes"])) for r in train] == [("obj_train_data/a.jpg", 1), ("obj_train_data/b.jpg", 0)]
    assert train[0]["boxes"][0] == {"name": "dog", "x1": 10.0, "y1": 5.0, "x2": 30.0, "y2": 15.0}
    (valid,) = dataset.records("valid")
    assert valid["boxes"][0] == {"name": "cat", "x1": 0.0, "y1": 0.0, "x2": 5.0, "y2": 5.0}


def test_darknet_list_naming_a_missing_image_is_a_problem_naming_its_line(tmp_path: Path) -> None:
    root = tmp_path / "dn"
    write(root / "obj.data", "train = train.txt\nnames = obj.names\n")
    write(root / "obj.names", "cat\n")
    image(root / "obj_train_data/a.jpg")
    write(root / "obj_train_data/a.txt", "0 0.5 0.5 0.5 0.5\n")
    write(root / "train.txt", "obj_train_data/a.jpg\nobj_train_data/ghost.jpg\n")
    done = runner.invoke(app, ["convert", "yolo", str(root), "-o", str(tmp_path / "out")])
    assert done.exit_code == 1, done.output
    assert "train.txt:line 2" in done.stderr and "ghost.jpg" in done.stderr


def test_classes_given_as_names(tmp_path: Path) -> None:
    root = tmp_path / "yolo"
    image(root / "images/train/a.jpg")
    write(root / "labels/train/a.txt", "1 0.5 0.5 0.5 0.5\n")  # no class list in the tree
    result = convert("yolo", root, tmp_path / "out", classes="zebra,kite")
    assert result.manifest.category_names == ["zebra", "kite"]
    (record,) = open_dataset(result.out).records("train")
    assert record["boxes"][0]["name"] == "kite"


# ---------------------------------------------------------------------------------------------- not this format


@needs_peer
@pytest.mark.parametrize("folder", ["coco_dataset/coco_instances", "voc_dataset/voc_dataset1"])
def test_peer_folders_of_other_formats_are_not_yolo(folder: str, tmp_path: Path) -> None:
    done = runner.invoke(app, ["convert", "yolo", str(PEER_DATA / folder), "-o", str(tmp_path / "out")])
    assert done.exit_code == 2, done.output
    assert "no YOLO annotations here" in done.stderr and "expected labels/<split>/*.txt" in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "files",
    [
        {},
        {"classes.txt": "cat\n", "images/a.jpg": None},
        {"classes.txt": "cat\n", "labels/train/README.md": "x", "images/train/a.jpg": None},
        {"obj.data": "classes = 1\nnames = obj.names\n", "obj.names": "cat\n"},
    ],
    ids=["empty", "images-only", "labels-without-txt", "obj-data-without-lists"],
)
def test_folders_without_yolo_labels_exit_2(tmp_path: Path, files: dict[str, str | None]) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name, text in files.items():
        if text is None:
            image(source / name)
        else:
            write(source / name, text)
    done = runner.invoke(app, ["convert", "yolo", str(source), "-o", str(tmp_path / "out")])
    assert done.exit_code == 2, done.output
    assert "no YOLO annotations here" in done.stderr
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------- skipped.jsonl


def test_skipped_entries_name_the_image(tmp_path: Path) -> None:
    root = tmp_path / "yolo"
    write(root / "classes.txt", "cat\n")
    for stem in ("a", "b", "c"):
        image(root / f"images/train/{stem}.jpg")
    write(root / "labels/train/a.txt", "0 0.5 0.5 0.5 0.5\n")
    write(root / "labels/train/b.txt", "0 0.5 0.5 0.5 0.5\n0 0.5 oops 0.5 0.5\n")  # a broken line
    write(root / "labels/train/c.txt", "3 0.5 0.5 0.5 0.5\n")  # no class 3
    write(root / "labels/train/ghost.txt", "0 0.5 0.5 0.5 0.5\n")  # no image
    done = runner.invoke(app, ["convert", "yolo", str(root), "-o", str(tmp_path / "out"), "--on-error", "skip"])
    assert done.exit_code == 1, done.output
    entries = [json.loads(line) for line in (tmp_path / "out/skipped.jsonl").read_text().splitlines()]
    assert sorted((e["image"], Path(e["file"]).name, e["location"]) for e in entries) == [
        ("ghost", "ghost.txt", None),
        ("train/b.jpg", "b.txt", "line 2"),
        ("train/c.jpg", "c.txt", "line 1"),
    ]
    assert [r["image"] for r in open_dataset(tmp_path / "out").records("train")] == ["train/a.jpg"]


# ---------------------------------------------------------------------------------------------- not regular files


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
def test_a_label_file_linked_to_dev_zero_is_refused_promptly(tmp_path: Path) -> None:
    root = tmp_path / "yolo"
    write(root / "classes.txt", "cat\n")
    image(root / "images/train/a.jpg")
    (root / "labels/train").mkdir(parents=True)
    (root / "labels/train/a.txt").symlink_to("/dev/zero")  # an endless label file
    done = run_module("convert", "yolo", str(root), "-o", str(tmp_path / "out"))
    assert done.returncode == 2, done.stderr
    assert "a.txt" in done.stderr and "not a regular file" in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
@pytest.mark.parametrize("fifo", ["labels/train/a.txt", "classes.txt", "data.yaml"])
def test_a_fifo_input_is_refused_promptly(tmp_path: Path, fifo: str) -> None:
    root = tmp_path / "yolo"
    write(root / "classes.txt", "cat\n")
    image(root / "images/train/a.jpg")
    write(root / "labels/train/b.txt", "0 0.5 0.5 0.5 0.5\n")
    image(root / "images/train/b.jpg")
    (root / fifo).parent.mkdir(parents=True, exist_ok=True)
    (root / fifo).unlink(missing_ok=True)
    os.mkfifo(root / fifo)  # nothing ever writes to it: reading it would block forever
    done = run_module("convert", "yolo", str(root), "-o", str(tmp_path / "out"))
    assert done.returncode == 2, done.stderr
    assert Path(fifo).name in done.stderr and "not a regular file" in done.stderr


def test_an_unlistable_label_folder_is_an_error(tmp_path: Path, unlistable: Callable[[Path], None]) -> None:
    root = tmp_path / "yolo"
    write(root / "classes.txt", "cat\n")
    image(root / "images/train/a.jpg")
    write(root / "labels/train/sub/a.txt", "0 0.5 0.5 0.5 0.5\n")
    locked = root / "labels/train/sub"
    unlistable(locked)
    done = runner.invoke(app, ["convert", "yolo", str(root), "-o", str(tmp_path / "out")])
    assert done.exit_code == 2, done.output
    assert str(locked) in done.stderr and "cannot list the folder" in done.stderr


def test_options_left_off_the_command_line_give_the_api_output(tmp_path: Path) -> None:
    root = tmp_path / "yolo"
    write(root / "data.yaml", "names:\n  0: cat\n  1: dog\n")
    image(root / "images/x.jpg", 30, 20)
    write(root / "labels/x.txt", "1 0.5 0.5 0.5 0.5\n")
    done = runner.invoke(app, ["convert", "yolo", str(root), "-o", str(tmp_path / "cli")])
    assert done.exit_code == 0, done.output
    convert("yolo", root, tmp_path / "api")
    for name in ("train.jsonl", "annonorm.json"):  # --split not given: the flat tree is the train split
        assert (tmp_path / "cli" / name).read_bytes() == (tmp_path / "api" / name).read_bytes(), name
