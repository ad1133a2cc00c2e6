"""The converter registry: built-ins and third-party plugins come through the same entry-point door."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from peer import PEER_DATA

from annonorm import registry
from annonorm.converters.base import Converter
from annonorm.errors import UnknownFormatError

PLUGIN = '''
"""A toy third-party format: one line per box, 'image width height class x1 y1 x2 y2'."""
from pathlib import Path
from annonorm.converters import Converter, Option, ReadResult, make_record
from annonorm.errors import ParseError


class ToyConverter(Converter):
    name = "toy"
    summary = "Toy boxes, one per line."
    read_options = (Option("split", "Split name.", default="all"),)

    @classmethod
    def sniff(cls, source: Path) -> bool:
        return source.suffix == ".toy"

    def read(self, source, writer, *, images, options):
        writer.add_source_file(source)
        by_image = {}
        for number, line in enumerate(source.read_text().splitlines(), start=1):
            parts = line.split()
            if len(parts) != 8:
                raise ParseError(f"expected 8 fields, found {len(parts)}", file=source, location=f"line {number}")
            image, width, height, name, *corners = parts
            writer.category(name)
            entry = by_image.setdefault(image, (int(width), int(height), []))
            x1, y1, x2, y2 = map(float, corners)
            entry[2].append({"name": name, "x1": x1, "y1": y1, "x2": x2, "y2": y2})
        for image, (width, height, boxes) in by_image.items():
            writer.add(options["split"], make_record(image=image, width=width, height=height, boxes=boxes))
        return ReadResult(name=source.stem, image_root=images or source.parent)
'''


@pytest.fixture
def plugin_path(tmp_path: Path) -> Path:
    """A real installed distribution (dist-info with entry_points.txt) on a path of its own."""
    site = tmp_path / "site"
    (site / "toyplugin").mkdir(parents=True)
    (site / "toyplugin" / "__init__.py").write_text(PLUGIN)
    info = site / "toyplugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toyplugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[annonorm.converters]\ntoy = toyplugin:ToyConverter\n")
    return site


def run_cli(args: list[str], site: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", "annonorm", *args], capture_output=True, text=True, env=env, check=False
    )


def test_third_party_plugin_is_listed_and_converts_end_to_end(tmp_path: Path, plugin_path: Path) -> None:
    listing = run_cli(["formats", "--format", "json"], plugin_path)
    assert listing.returncode == 0, listing.stderr
    toy = next(entry for entry in json.loads(listing.stdout) if entry["name"] == "toy")
    assert toy["read"] is True and toy["write"] is False
    assert toy["read_options"] == [{"flag": "--split", "help": "Split name."}]

    source = tmp_path / "boxes.toy"
    source.write_text("a.jpg 10 10 cat 1 1 4 4\na.jpg 10 10 dog 2 2 9 9\nb.jpg 8 6 cat 0 0 8 6\n")
    done = run_cli(["convert", "toy", str(source), "-o", str(tmp_path / "out"), "--split", "val"], plugin_path)
    assert done.returncode == 0, done.stderr
    assert "val: 2 images, 3 boxes" in done.stdout
    records = [json.loads(line) for line in (tmp_path / "out" / "val.jsonl").read_text().splitlines()]
    assert [r["counts"] for r in records] == [{"cat": 1, "dog": 1}, {"cat": 1}]
    assert run_cli(["validate", str(tmp_path / "out")], plugin_path).returncode == 0


def test_plugin_errors_reach_the_user_as_one_line(tmp_path: Path, plugin_path: Path) -> None:
    source = tmp_path / "bad.toy"
    source.write_text("a.jpg 10 10 cat 1 1 4\n")
    done = run_cli(["convert", "toy", str(source), "-o", str(tmp_path / "out")], plugin_path)
    assert done.returncode == 2
    assert done.stderr.strip() == f"annonorm: error: {source}:line 1: expected 8 fields, found 7"
    assert not (tmp_path / "out").exists()


def test_a_plugin_may_not_take_a_builtin_name(tmp_path: Path, plugin_path: Path) -> None:
    info = plugin_path / "toyplugin-1.0.dist-info" / "entry_points.txt"
    info.write_text("[annonorm.converters]\ncoco = toyplugin:ToyConverter\n")
    done = run_cli(["formats"], plugin_path)
    assert done.returncode == 2
    assert "two converters claim the name 'coco'" in done.stderr


def test_builtins_are_registered_lazily() -> None:
    assert {"coco", "voc", "csv", "yolo"} <= set(registry.names())
    assert issubclass(registry.get("coco"), Converter)
    with pytest.raises(UnknownFormatError, match="unknown format 'nope'; installed: coco, voc, csv, yolo"):
        registry.get("nope")


def test_every_builtin_declares_what_it_can_do() -> None:
    for name in ("coco", "voc", "csv", "yolo"):
        converter = registry.get(name)
        assert converter.name == name
        assert converter.summary
        assert converter.can_read() and converter.can_write()
        assert textwrap.dedent(converter.__module__).startswith("annonorm.converters.")


SAMPLE = Path(__file__).resolve().parent.parent / "sample_data"
PEER = PEER_DATA


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (SAMPLE / "coco", "coco"),
        (SAMPLE / "coco" / "annotations" / "instances_val.json", "coco"),
        (SAMPLE / "voc", "voc"),
        (SAMPLE / "csv" / "annotations.csv", "csv"),
        (PEER / "coco_dataset" / "coco_roboflow", "coco"),
        (PEER / "kaggle_dataset" / "relaxed_voc2", "voc"),
        (PEER / "vott_csv_dataset" / "dataset" / "train-export.csv", "csv"),
    ],
)
def test_detect_asks_each_converters_sniff(source: Path, expected: str) -> None:
    if not source.exists():
        pytest.skip(f"{source} is not here")
    assert registry.detect(source) == expected


def test_convert_auto_detects_then_converts(tmp_path: Path) -> None:
    from annonorm.api import export

    yolo = export("yolo", _sample_dataset(tmp_path), tmp_path / "yolo", images="copy")
    assert registry.detect(yolo) == "yolo"
    done = run_cli(["convert", "auto", str(yolo), "-o", str(tmp_path / "back")], tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"{yolo} is in the yolo format" in done.stderr
    unknown = run_cli(["convert", "auto", str(Path(__file__)), "-o", str(tmp_path / "never")], tmp_path)
    assert unknown.returncode == 2
    assert "no installed converter recognizes this (tried coco, voc, csv, yolo)" in unknown.stderr
    assert not (tmp_path / "never").exists()


def _sample_dataset(tmp_path: Path) -> Path:
    from annonorm.api import convert

    return convert("coco", SAMPLE / "coco", tmp_path / "from-coco", masks=False).out
