"""``annonorm convert voc`` through the command line (issue 11): not-VOC folders, skipped images named,
inputs that are not regular files, options left off the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from peer import PEER_DATA
from PIL import Image
from typer.testing import CliRunner

from annonorm.api import convert
from annonorm.cli import app

runner = CliRunner()
needs_peer = pytest.mark.skipif(not PEER_DATA.is_dir(), reason=f"peer_data is not on this machine ({PEER_DATA})")
#: A hang (a FIFO read) fails the test after this many seconds instead of blocking the suite.
TIMEOUT = 60


def good_xml(stem: str, name: str = "dog") -> str:
    return (
        f"<annotation><filename>{stem}.jpg</filename><size><width>20</width><height>10</height></size>"
        f"<object><name>{name}</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox>"
        "</object></annotation>\n"
    )


def devkit(root: Path, stems: tuple[str, ...] = ("a", "b")) -> Path:
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    for stem in stems:
        (root / "Annotations" / f"{stem}.xml").write_text(good_xml(stem))
        Image.new("RGB", (20, 10)).save(root / "JPEGImages" / f"{stem}.jpg")
    return root


def run_module(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m annonorm ARGS`` in a real process, killed (failing the test) after TIMEOUT seconds."""
    return subprocess.run(
        [sys.executable, "-m", "annonorm", *args], capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


# ---------------------------------------------------------------------------------------------- not this format


@needs_peer
def test_a_coco_folder_is_not_voc(tmp_path: Path) -> None:
    source = PEER_DATA / "coco_dataset/coco_instances"
    assert (source / "annotations").is_dir()  # the trap: an annotations/ folder, holding JSON
    done = runner.invoke(app, ["convert", "voc", str(source), "-o", str(tmp_path / "out")])
    assert done.exit_code == 2, done.output
    assert "no VOC annotations here" in done.stderr
    assert "expected Annotations/*.xml" in done.stderr
    assert str(source) in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "files",
    [
        {},
        {"annotations/instances.json": "{}", "images/a.jpg": None},
        {"Annotations/readme.txt": "x"},
        {"Annotations/a.xml": '<?xml version="1.0"?>\n<annotations><version>1.1</version></annotations>\n'},
        {"train/a.xml": "<annotations/>", "train/b.xml": "<svg/>"},
    ],
    ids=["empty", "coco-like", "annotations-without-xml", "cvat-xml", "per-split-not-voc"],
)
def test_folders_without_voc_xml_exit_2(tmp_path: Path, files: dict[str, str | None]) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name, text in files.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        if text is None:
            Image.new("RGB", (4, 4)).save(source / name)
        else:
            (source / name).write_text(text)
    done = runner.invoke(app, ["convert", "voc", str(source), "-o", str(tmp_path / "out")])
    assert done.exit_code == 2, done.output
    assert "no VOC annotations here" in done.stderr and "expected" in done.stderr
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------- skipped.jsonl


def test_skipped_entries_name_the_image(tmp_path: Path) -> None:
    root = devkit(tmp_path / "voc", ("a", "b", "c"))
    (root / "Annotations" / "b.xml").write_text("<annotation><filename>b.jpg</filename><object>\n")  # broken XML
    (root / "Annotations" / "c.xml").write_text(good_xml("c").replace("<xmax>5</xmax>", "<xmax>oops</xmax>"))
    done = runner.invoke(app, ["convert", "voc", str(root), "-o", str(tmp_path / "out"), "--on-error", "skip"])
    assert done.exit_code == 1, done.output  # images were left out
    entries = [json.loads(line) for line in (tmp_path / "out" / "skipped.jsonl").read_text().splitlines()]
    assert [(e["image"], Path(e["file"]).name) for e in entries] == [("b.jpg", "b.xml"), ("c.jpg", "c.xml")]
    assert entries[1]["location"] == "object[1]/bndbox/xmax"
    records = (tmp_path / "out" / "default.jsonl").read_text().splitlines()
    assert [json.loads(line)["image"] for line in records] == ["a.jpg"]


def test_skipped_list_entry_without_xml_or_image_names_its_stem(tmp_path: Path) -> None:
    root = devkit(tmp_path / "voc", ("a",))
    (root / "ImageSets/Main").mkdir(parents=True)
    (root / "ImageSets/Main/train.txt").write_text("a\nghost\n")
    result = convert("voc", root, tmp_path / "out", on_error="skip")
    assert [(e.image, e.location) for e in result.skipped] == [("ghost", "line 2")]


# ---------------------------------------------------------------------------------------------- not regular files


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
@pytest.mark.parametrize(
    ("fifo", "splits"),
    [("Annotations/b.xml", False), ("labelmap.txt", False), ("ImageSets/Main/train.txt", True)],
)
def test_a_fifo_input_is_refused_promptly(tmp_path: Path, fifo: str, splits: bool) -> None:
    root = devkit(tmp_path / "voc", ("a",))
    if splits:
        (root / "ImageSets/Main").mkdir(parents=True)
    os.mkfifo(root / fifo)  # nothing ever writes to it: reading it would block forever
    done = run_module("convert", "voc", str(root), "-o", str(tmp_path / "out"))
    assert done.returncode == 2, done.stderr
    assert "not a regular file" in done.stderr and Path(fifo).name in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
def test_an_xml_linked_to_dev_zero_is_refused(tmp_path: Path) -> None:
    root = devkit(tmp_path / "voc", ("a",))
    (root / "Annotations" / "z.xml").symlink_to("/dev/zero")  # an endless file
    done = run_module("convert", "voc", str(root), "-o", str(tmp_path / "out"))
    assert done.returncode == 2, done.stderr
    assert "z.xml" in done.stderr and "not a regular file" in done.stderr


def test_a_directory_named_like_an_xml_file_is_refused(tmp_path: Path) -> None:
    root = devkit(tmp_path / "voc", ("a",))
    (root / "Annotations" / "d.xml").mkdir()
    done = runner.invoke(app, ["convert", "voc", str(root), "-o", str(tmp_path / "out")])
    assert done.exit_code == 2, done.output
    assert "d.xml" in done.stderr and "not a regular file" in done.stderr


def test_an_unlistable_folder_is_an_error_not_an_empty_dataset(
    tmp_path: Path, unlistable: Callable[[Path], None]
) -> None:
    root = devkit(tmp_path / "voc", ("a",))
    locked = root / "Annotations"
    unlistable(locked)
    done = runner.invoke(app, ["convert", "voc", str(root), "-o", str(tmp_path / "out")])
    assert done.exit_code == 2, done.output
    assert str(locked) in done.stderr and "cannot list the folder: Permission denied" in done.stderr


# ---------------------------------------------------------------------------------------------- options not given


def test_options_left_off_the_command_line_give_the_api_output(tmp_path: Path) -> None:
    root = devkit(tmp_path / "voc")
    (root / "SegmentationObject").mkdir()
    Image.new("L", (20, 10)).save(root / "SegmentationObject" / "a.png")
    done = runner.invoke(app, ["convert", "voc", str(root), "-o", str(tmp_path / "cli")])
    assert done.exit_code == 0, done.output
    convert("voc", root, tmp_path / "api")
    for name in ("default.jsonl", "annonorm.json", "masks/a.png"):
        assert (tmp_path / "cli" / name).read_bytes() == (tmp_path / "api" / name).read_bytes(), name
    manifest = json.loads((tmp_path / "cli" / "annonorm.json").read_text())
    assert manifest["mask_kind"] == "instance"  # masks not given: decided from the data (SegmentationObject/)
