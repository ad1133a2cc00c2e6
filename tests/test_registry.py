"""The converter registry: built-ins and third-party plugins come through the same entry-point door.

Two toy plugins, each a real installed distribution: the plugin of ``docs/plugins.md`` (its code
block is extracted from the page, so the page and this test never drift apart), and a plugin
written for annonorm 0.1's contract (``read(source, writer, *, images, options)``), which keeps working.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from peer import PEER_DATA

from annonorm import registry
from annonorm.converters.base import Converter
from annonorm.errors import UnknownFormatError

DOCS = Path(__file__).resolve().parent.parent / "docs" / "plugins.md"


def docs_blocks() -> list[str]:
    """The Python code blocks of docs/plugins.md."""
    return re.findall(r"^```python\n(.*?)^```", DOCS.read_text(encoding="utf-8"), re.DOTALL | re.MULTILINE)


def docs_plugin() -> str:
    """The Python code block of docs/plugins.md that defines a converter: the complete plugin."""
    blocks = [block for block in docs_blocks() if "(Converter):" in block]
    assert len(blocks) == 1, "docs/plugins.md holds one Python code block with a converter class, the plugin"
    return blocks[0]


#: A plugin written against annonorm 0.1's contract: ``read(source, writer, *, images, options)``.
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


def install(site: Path, code: str, entry_points: str, version: str = "1.0") -> Path:
    """A real installed distribution ``toyplugin`` (dist-info with entry_points.txt) in ``site``."""
    (site / "toyplugin").mkdir(parents=True)
    (site / "toyplugin" / "__init__.py").write_text(code)
    info = site / f"toyplugin-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: toyplugin\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[annonorm.converters]\n{entry_points}")
    return site


@pytest.fixture
def plugin_path(tmp_path: Path) -> Path:
    """The annonorm 0.1 plugin, installed on a path of its own."""
    return install(tmp_path / "site", PLUGIN, "toy = toyplugin:ToyConverter\n")


BROKEN = '''

class BrokenToy(ToyConverter):
    """The docs plugin with a bug of its own in the reader."""

    name = "broken"

    @classmethod
    def sniff(cls, source):
        return False

    def read(self, source, ctx):
        return {}["split"]
'''


@pytest.fixture
def docs_plugin_path(tmp_path: Path) -> Path:
    """The plugin of docs/plugins.md (and a broken subclass of it), installed on a path of its own."""
    entries = "toy = toyplugin:ToyConverter\nbroken = toyplugin:BrokenToy\n"
    return install(tmp_path / "docs-site", docs_plugin() + BROKEN, entries, version="2.3")


@pytest.fixture
def docs_plugin_loaded(docs_plugin_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The docs plugin importable and registered in this process (the registry's caches cleared around it)."""
    monkeypatch.syspath_prepend(str(docs_plugin_path))
    for cached in (registry.available, registry.get):
        cached.cache_clear()
    yield
    sys.modules.pop("toyplugin", None)
    for cached in (registry.available, registry.get):
        cached.cache_clear()


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
    tried = ", ".join(n for n in registry.names() if registry.get(n).can_read())
    assert f"no installed converter recognizes this (tried {tried})" in unknown.stderr
    assert not (tmp_path / "never").exists()


def _sample_dataset(tmp_path: Path) -> Path:
    from annonorm.api import convert

    return convert("coco", SAMPLE / "coco", tmp_path / "from-coco", masks=False).out


# ---------------------------------------------------------------------------------------------- the docs plugin


def test_the_docs_plugin_is_small_and_complete(tmp_path: Path, docs_plugin_path: Path) -> None:
    assert len(docs_plugin().splitlines()) < 100
    listing = run_cli(["formats", "--format", "json"], docs_plugin_path)
    assert listing.returncode == 0, listing.stderr
    toy = next(entry for entry in json.loads(listing.stdout) if entry["name"] == "toy")
    assert toy["read"] is True and toy["write"] is True
    assert toy["read_options"] == [{"flag": "--split", "help": "Split name (default: the file's name)."}]

    source = tmp_path / "src"
    source.mkdir()
    (source / "val.toy").write_text("a.jpg 10 10 cat 1.0 1.5 4.0 4.0\na.jpg 10 10 dog 2.0 2.0 9.25 9.0\nb.jpg 8 6\n")
    done = run_cli(["convert", "auto", str(source), "-o", str(tmp_path / "out")], docs_plugin_path)
    assert done.returncode == 0, done.stderr
    assert "is in the toy format" in done.stderr and "val: 2 images, 2 boxes" in done.stdout
    records = [json.loads(line) for line in (tmp_path / "out" / "val.jsonl").read_text().splitlines()]
    assert [r["counts"] for r in records] == [{"cat": 1, "dog": 1}, {}]
    exported = run_cli(["export", "toy", str(tmp_path / "out"), "-o", str(tmp_path / "again")], docs_plugin_path)
    assert exported.returncode == 0, exported.stderr
    assert (tmp_path / "again" / "val.toy").read_bytes() == (source / "val.toy").read_bytes()

    bad = tmp_path / "bad.toy"
    bad.write_text("a.jpg 10 10 cat 1 1 4\n")
    failed = run_cli(["convert", "toy", str(bad), "-o", str(tmp_path / "never")], docs_plugin_path)
    assert failed.returncode == 2
    assert failed.stderr.strip() == f"annonorm: error: {bad}:line 1: expected 8 fields, found 7"


def test_the_docs_plugin_gets_the_round_trip_property(docs_plugin_loaded: None) -> None:
    """The plugin's own test, as docs/plugins.md shows it, run against the plugin."""
    (test,) = [block for block in docs_blocks() if "check_round_trip" in block]
    assert registry.get("toy").can_write()
    namespace: dict[str, Any] = {}
    exec(compile(test, str(DOCS), "exec"), namespace)
    tests = [value for name, value in namespace.items() if name.startswith("test_")]
    assert len(tests) == 1
    tests[0]()


def test_a_plugins_own_exception_is_one_line_naming_it_and_its_distribution(
    tmp_path: Path, docs_plugin_path: Path
) -> None:
    source = tmp_path / "a.toy"
    source.write_text("a.jpg 10 10 cat 1 1 4 4\n")
    args = ["convert", "broken", str(source), "-o", str(tmp_path / "out")]
    done = run_cli(args, docs_plugin_path)
    assert done.returncode == 2
    assert done.stderr == (
        "annonorm: error: the converter plugin 'broken' (distribution toyplugin 2.3) failed: KeyError: 'split' "
        "(run with --debug for the traceback)\n"
    )
    assert not (tmp_path / "out").exists()
    debug = run_cli(["--debug", *args], docs_plugin_path)
    assert debug.returncode == 2
    assert "Traceback (most recent call last)" in debug.stderr and 'return {}["split"]' in debug.stderr
    assert debug.stderr.splitlines()[-1] == (
        "annonorm: error: the converter plugin 'broken' (distribution toyplugin 2.3) failed: KeyError: 'split'"
    )


def test_a_builtins_own_exception_names_annonorm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from annonorm import __version__
    from annonorm.api import convert
    from annonorm.converters import csvtable

    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(csvtable, "_source_files", broken)
    source = tmp_path / "a.csv"
    source.write_text("filename,class\na.jpg,cat\n")
    with pytest.raises(registry.PluginError) as raised:
        convert("csv", source, tmp_path / "out")
    assert str(raised.value).startswith(
        f"the converter plugin 'csv' (distribution annonorm {__version__}) failed: ZeroDivisionError: division by zero"
    )
    assert isinstance(raised.value.__cause__, ZeroDivisionError)
    assert raised.value.exit_code == 2 and not (tmp_path / "out").exists()
