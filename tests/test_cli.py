"""The command line: exit codes, one-line errors without tracebacks, text and JSON reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from annonorm.cli import app
from annonorm.testing import write_dataset

runner = CliRunner()


def make_dataset(tmp_path: Path, count: int = 3) -> Path:
    records = [
        {
            "image": f"{i}.jpg",
            "width": 10,
            "height": 10,
            "boxes": [{"name": "cat", "x1": 1, "y1": 1, "x2": 5, "y2": 5}],
        }
        for i in range(count)
    ]
    return write_dataset(tmp_path / "ds", ["cat"], {"train": records})


def test_validate_valid_dataset_exits_zero(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(make_dataset(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "valid: 3 records, 3 boxes in 1 splits; 0 errors, 0 warnings" in result.output


def test_validate_reports_file_line_key_and_exits_one(tmp_path: Path) -> None:
    root = make_dataset(tmp_path, 1000)
    split = root / "train.jsonl"
    lines = split.read_text().splitlines()
    lines[499] = lines[499].replace('"x2":5.0', '"x2":0.5')
    split.write_text("\n".join(lines) + "\n")
    result = runner.invoke(app, ["validate", str(root)])
    assert result.exit_code == 1
    problems = [line for line in result.output.splitlines() if ": error: " in line]
    assert problems == [
        f"{split}:500: boxes.0: error: x2 (0.5) is smaller than x1 (1.0); expected x1 <= x2 [record_invalid]"
    ]


def test_validate_json_report(tmp_path: Path) -> None:
    root = make_dataset(tmp_path)
    (root / "train.jsonl").write_text('{"image": "a.jpg", "width": 0, "height": 3}\n')
    result = runner.invoke(app, ["validate", str(root), "--format", "json"])
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["valid"] is False and report["errors"] == 1
    assert report["findings"][0] | {"message": None} == {
        "code": "record_invalid",
        "severity": "error",
        "message": None,
        "file": str(root / "train.jsonl"),
        "line": 1,
        "key": "width",
    }


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n\x00\x00garbage", b'{"format": "annonorm", "na'])
def test_validate_garbage_exits_two_with_one_line(tmp_path: Path, content: bytes) -> None:
    target = tmp_path / "annonorm.json"
    target.write_bytes(content)
    result = runner.invoke(app, ["validate", str(target)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert result.output.startswith(f"annonorm: error: {target}")


def test_validate_missing_dataset_exits_two(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "no annonorm.json here" in result.output


def test_schema_command_writes_the_committed_files(tmp_path: Path) -> None:
    result = runner.invoke(app, ["schema", "-o", str(tmp_path)])
    assert result.exit_code == 0
    committed = Path(__file__).parent.parent / "schemas"
    generated = sorted(p.name for p in tmp_path.iterdir())
    assert generated == sorted(p.name for p in committed.glob("*.json"))
    for name in generated:
        assert (tmp_path / name).read_text() == (committed / name).read_text(), (
            f"schemas/{name} drifted from the models: run `annonorm schema -o schemas/`"
        )


def test_unknown_format_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["convert", "nosuchformat", str(tmp_path), "-o", str(tmp_path / "o")])
    assert result.exit_code == 2


def test_installed_script_runs_as_a_subprocess(tmp_path: Path) -> None:
    root = make_dataset(tmp_path)
    script = Path(sys.executable).parent / "annonorm"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "annonorm"]
    done = subprocess.run(
        [*command, "validate", str(root), "--format", "json"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "120"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["splits"]["train"]["records"] == 3


def test_export_json_result_and_json_error(tmp_path: Path) -> None:
    root = make_dataset(tmp_path)
    done = runner.invoke(app, ["export", "csv", str(root), "-o", str(tmp_path / "csv"), "--format", "json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output) == {"out": str(tmp_path / "csv"), "format": "csv"}
    again = runner.invoke(app, ["export", "csv", str(root), "-o", str(tmp_path / "csv"), "--format", "json"])
    assert again.exit_code == 2
    error = json.loads(again.output)
    assert error["error"] == "OutputExistsError" and error["file"] == str(tmp_path / "csv")
