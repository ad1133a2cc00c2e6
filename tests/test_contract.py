"""The converter contract v2 (converters/base.py): ReadContext, options not given, signatures, source files."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from annonorm import registry
from annonorm.converters.base import Capabilities, Converter, Option, ReadContext, ReadResult
from annonorm.engine import Execution, LocalExecutor
from annonorm.errors import UsageError
from annonorm.io import DatasetWriter

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data"


class NewStyle(Converter):
    name = "new"
    read_options = (
        Option("split", "Split."),
        Option("mode", "Mode.", default="fast", choices=("fast", "slow")),
        Option("tag", "Tags.", multiple=True),
    )

    def read(self, source: Path, ctx: ReadContext) -> ReadResult:
        return ReadResult(name="x", image_root=source)


class OldStyle(Converter):
    name = "old"

    def read(self, source, writer, *, images, options):  # type: ignore[no-untyped-def, override]
        return ReadResult(name="x", image_root=source)


class OldPositional(Converter):
    name = "old2"

    def read(self, source, writer, images=None, options=None):  # type: ignore[no-untyped-def, override]
        return ReadResult(name="x", image_root=source)


def test_the_reader_contract_is_told_apart_by_its_signature() -> None:
    assert not NewStyle.reads_v1()
    assert OldStyle.reads_v1() and OldPositional.reads_v1()
    for name in ("coco", "voc", "csv", "yolo"):
        assert not registry.get(name).reads_v1(), name


def test_an_option_not_given_is_none_unless_its_default_is_what_not_given_means() -> None:
    resolved = NewStyle.resolve_options(NewStyle.read_options, {})
    assert resolved == {"split": None, "mode": "fast", "tag": ()}
    assert NewStyle.resolve_options(NewStyle.read_options, {"split": None, "mode": None}) == resolved
    given = NewStyle.resolve_options(NewStyle.read_options, {"split": "val", "mode": "slow", "tag": "a"})
    assert given == {"split": "val", "mode": "slow", "tag": ("a",)}
    with pytest.raises(UsageError, match="has no option 'nope'"):
        NewStyle.resolve_options(NewStyle.read_options, {"nope": 1})


def test_a_default_must_be_one_of_the_options_values() -> None:
    with pytest.raises((TypeError, UsageError)):
        Option("mode", "Mode.", default="medium", choices=("fast", "slow"))
    with pytest.raises(TypeError):
        Option("tag", "Tags.", default="a", multiple=True)


def test_every_builtin_default_is_meant_and_none_overrides_the_data() -> None:
    """The declared defaults, decided per option: each is the one meaning of "not given"."""
    defaults = {
        name: {o.name: o.default for o in (*registry.get(name).read_options, *registry.get(name).write_options)}
        for name in ("coco", "voc", "csv", "yolo")
    }
    meant = {
        "coco": {"masks": "vector"},
        "voc": {"copy_images": False},
        "csv": {"preset": "auto", "header": "auto", "default_class": "object", "short_rows": "error"}
        | {"layout": "tensorflow"},
        "yolo": {"images": "none"},
    }
    for name, declared in defaults.items():
        assert {k: v for k, v in declared.items() if v is not None} == meant[name], name


def test_the_read_context_carries_the_sink_its_sources_and_the_options(tmp_path: Path) -> None:
    writer = DatasetWriter(tmp_path)
    try:
        ctx = ReadContext(
            options={"split": None}, sink=writer, images=tmp_path, executor=LocalExecutor(Execution(workers=2))
        )
        ctx.sink.add_source_file(Path(__file__))
        assert ctx.sources is writer.sources and ctx.sources.paths == [Path(__file__)]
        assert (ctx.images, ctx.workers, ctx.options["split"]) == (tmp_path, 2, None)
    finally:
        writer.close()


def test_source_files_default_to_the_source_and_the_builtins_answer_themselves() -> None:
    from annonorm.dvc import source_files

    assert NewStyle.source_files(Path("anything"), {}) == [Path("anything")]
    assert registry.get("csv").source_files(SAMPLE / "csv" / "annotations.csv", {}) == [
        SAMPLE / "csv" / "annotations.csv"
    ]
    coco = SAMPLE / "coco"
    assert source_files("coco", coco, {}) == registry.get("coco").source_files(coco, {})


def test_dvc_asks_the_converter_for_its_source_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from annonorm.dvc import source_files

    class Declared(NewStyle):
        read_options = (Option("labels", "A label file.", type=Path),)

        @classmethod
        def source_files(cls, source: Path, options: Mapping[str, Any]) -> list[Path]:
            return [source / "a.txt"]

    monkeypatch.setattr(registry, "get", lambda name: Declared)
    assert source_files("declared", tmp_path, {"labels": tmp_path / "l.txt"}) == [
        tmp_path / "a.txt",
        tmp_path / "l.txt",
    ]


def test_every_builtin_declares_its_capabilities() -> None:
    for name in ("coco", "voc", "csv", "yolo"):
        capabilities = registry.get(name).capabilities
        assert isinstance(capabilities, Capabilities) and capabilities != Capabilities(), name
    assert registry.get("voc").capabilities.integer_pixels
    assert registry.get("yolo").capabilities.fraction_decimals == 6
    assert registry.get("coco").capabilities.ids and registry.get("coco").capabilities.box_attributes
    assert registry.get("csv").capabilities.unknown_sizes and registry.get("csv").capabilities.image_labels
