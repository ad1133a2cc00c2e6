"""Odd image names survive export and convert in every format, or are refused with the place named.

Newlines, emoji, combining accents, leading dashes, names of only dots, quotes, commas, tabs and
carriage returns: each either comes back as it went out, or the export says which record the target
format cannot hold (never a silently renamed image, never a traceback).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from annonorm.api import convert, export
from annonorm.cli import app
from annonorm.errors import AnnonormError
from annonorm.testing import write_dataset

ODD_NAMES = [
    "new\nline.jpg",
    "emoji\U0001f600.jpg",
    "cafe\u0301.jpg",
    "-dash.jpg",
    "--force.jpg",
    "...jpg",
    "sp ace.jpg",
    "tab\t.jpg",
    "a\rb.jpg",
    'quo"te.jpg',
    "com,ma.jpg",
    "semi;colon.jpg",
]
#: What each format cannot hold, by design of the format (the export must refuse these, naming the record).
CANNOT_HOLD = {
    "voc": {"new\nline.jpg", "sp ace.jpg", "tab\t.jpg", "a\rb.jpg", "...jpg"},  # stem lists, files named by stem
    "csv": {"a\rb.jpg"},
    "yolo": set(),
    "coco": set(),
}
EXPORT_OPTIONS = {"voc": {"copy_images": True}, "yolo": {"images": "copy"}, "csv": {}, "coco": {}}


def _dataset(root: Path, name: str) -> Path:
    record = {"image": name, "width": 12, "height": 10, "boxes": [{"name": "cat", "x1": 1, "y1": 1, "x2": 5, "y2": 6}]}
    dataset = write_dataset(root / "ds", ["cat"], {"train": [record]})
    Image.new("RGB", (12, 10), (200, 30, 30)).save(dataset / name, format="JPEG")
    return dataset


def _image_names(dataset: Path) -> list[str]:
    return [json.loads(line)["image"] for line in (dataset / "train.jsonl").read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("format_name", ["coco", "voc", "csv", "yolo"])
@pytest.mark.parametrize("name", ODD_NAMES, ids=[repr(n) for n in ODD_NAMES])
def test_odd_names_round_trip_or_are_refused_naming_the_record(tmp_path: Path, format_name: str, name: str) -> None:
    dataset = _dataset(tmp_path, name)
    exported = tmp_path / "exported"
    if name in CANNOT_HOLD[format_name]:
        with pytest.raises(AnnonormError) as refused:
            export(format_name, dataset, exported, **EXPORT_OPTIONS[format_name])
        assert refused.value.file is not None and refused.value.file.endswith("train.jsonl")
        assert not exported.exists()
        return
    export(format_name, dataset, exported, **EXPORT_OPTIONS[format_name])
    back = convert(format_name, exported, tmp_path / "back").out
    names = _image_names(back)
    # YOLO's layout puts the split folder in front of the image path (images/train/NAME); the name is kept.
    expected = [f"train/{name}"] if format_name == "yolo" else [name]
    assert names == expected


def test_a_refused_name_is_one_line_through_the_cli(tmp_path: Path) -> None:
    dataset = _dataset(tmp_path, "sp ace.jpg")
    done = CliRunner().invoke(app, ["export", "voc", str(dataset), "-o", str(tmp_path / "voc")])
    assert done.exit_code == 1
    assert "train.jsonl:image: image name 'sp ace.jpg' holds whitespace" in done.output
    assert "Traceback" not in done.output
    assert not (tmp_path / "voc").exists()
