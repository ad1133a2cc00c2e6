"""The command line is a package of small modules over the library; ``annonorm formats`` reads registry.describe()."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from annonorm import registry
from annonorm.cli import app, run

CLI = Path(__file__).resolve().parent.parent / "annonorm" / "cli"


def test_the_entry_points_stay_where_the_script_finds_them() -> None:
    assert callable(app) and callable(run)  # pyproject: annonorm = "annonorm.cli:run"


def test_every_cli_module_stays_small() -> None:
    sizes = {path.name: len(path.read_text(encoding="utf-8").splitlines()) for path in CLI.glob("*.py")}
    assert {"__init__.py", "convert.py", "inspect.py", "dvc.py"} <= set(sizes)
    assert max(sizes.values()) <= 300, sizes


def test_describe_lists_every_converter_with_its_declared_options() -> None:
    described = registry.describe()
    assert [info.name for info in described] == registry.names()
    for info in described:
        converter = registry.get(info.name)
        assert info.error is None and info.summary == converter.summary
        assert (info.read, info.write) == (converter.can_read(), converter.can_write())
        for shown, declared in (
            (info.read_options, converter.read_options),
            (info.write_options, converter.write_options),
        ):
            assert [(o.flag, o.help, o.choices) for o in shown] == [(o.flag, o.help, o.choices) for o in declared]
    assert any(o.choices for info in described for o in info.read_options)


def test_formats_prints_what_describe_returns() -> None:
    done = CliRunner().invoke(app, ["formats", "--format", "json"])
    assert done.exit_code == 0, done.output
    listing = json.loads(done.stdout)
    assert [entry["name"] for entry in listing] == [info.name for info in registry.describe()]
    for entry, info in zip(listing, registry.describe(), strict=True):
        assert entry["read_options"] == [{"flag": o.flag, "help": o.help} for o in info.read_options]
