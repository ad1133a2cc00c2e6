"""Every hostile input of the corpus, through the command line.

For each case (see ``tests/hostile/make_corpus.py``): the expected exit code, the expected message
fragment, no traceback, no output directory unless the case expects one (and then a valid one), and
nothing outside ``-o`` touched: the case's whole directory (inputs, the working directory, the
"outside" files that symlinks and XXE point at) is hashed before and after the run.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hostile.make_corpus import CASES, Case, command, materialize
from typer.testing import CliRunner

from annonorm.cli import app
from annonorm.validation import validate_dataset

runner = CliRunner()

BY_NAME = {case.name: case for case in CASES}
#: Cases also run through a real ``python -m annonorm`` process (the installed entry point path).
SUBPROCESS_CASES = (
    "coco_truncated_json",
    "coco_skip_writes_good_records",
    "voc_xxe_reads_local_file",
    "csv_ragged_long_row",
    "yolo_class_out_of_range",
    "validate_split_binary_garbage",
    "export_invalid_dataset",
)


def snapshot(root: Path, *, include_out: bool) -> dict[str, tuple[str, ...]]:
    """Every entry under ``root`` (links not followed): kind, content hash or link target, mtime."""
    state: dict[str, tuple[str, ...]] = {}
    for directory, names, files in os.walk(root):
        base = Path(directory)
        for name in [*names, *files]:
            path = base / name
            relative = path.relative_to(root).as_posix()
            if not include_out and (relative == "out" or relative.startswith("out/")):
                continue
            info = path.lstat()
            if path.is_symlink():
                state[relative] = ("link", os.readlink(path))
            elif path.is_dir():
                state[relative] = ("dir",)
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                state[relative] = ("file", digest, str(info.st_mtime_ns))
        names[:] = [n for n in names if not (base / n).is_symlink()]
    return state


def run_cli(case: Case, root: Path, extra: tuple[str, ...] = ()) -> tuple[int, str, str, BaseException | None]:
    """Run the case with CliRunner from ``root/cwd``: exit code, stdout, stderr, uncaught exception."""
    previous = os.getcwd()
    os.chdir(root / "cwd")
    try:
        result = runner.invoke(app, [*command(case, root), *extra])
    finally:
        os.chdir(previous)
    exception = None if isinstance(result.exception, SystemExit) else result.exception
    return result.exit_code, result.stdout, result.stderr, exception


def check_outcome(case: Case, root: Path, code: int, stdout: str, stderr: str) -> None:
    """The assertions every case shares (exit code, message, no traceback, output and inputs)."""
    text = stdout + stderr
    assert code == case.exit_code, f"exit {code}, expected {case.exit_code}\n{text}"
    assert case.fragment in text, f"{case.fragment!r} not in:\n{text}"
    if case.stdout_fragment is not None:
        assert case.stdout_fragment in stdout, f"{case.stdout_fragment!r} not in stdout:\n{stdout}"
    assert "Traceback" not in text
    for secret in case.absent:
        assert secret not in text
    error_lines = [line for line in stderr.splitlines() if line.strip()]
    # Errors are one line each, prefixed "annonorm:" (or one JSON object with --format json).
    assert all(line.startswith(("annonorm: ", "{")) for line in error_lines), stderr
    if code != 0 and case.args[0] != "validate":
        assert error_lines, "a failing command must say why on stderr"
    out = root / "out"
    if case.output == "none":
        assert not out.exists() and not out.is_symlink(), "an output appeared although the command failed"
    elif case.output == "created":
        assert out.is_dir()
        report = validate_dataset(out)
        assert report.valid, [str(f) for f in report.errors]
        if "skipped" in case.extra:
            skipped = (out / "skipped.jsonl").read_text().splitlines()
            assert len(skipped) == case.extra["skipped"]
            assert all(json.loads(line)["file"] for line in skipped)
            assert sum(s.records for s in report.splits.values()) == case.extra["records"]
            assert "skipped.jsonl" in stderr
        if case.extra.get("record_without_size"):
            records = [json.loads(line) for split in report.splits for line in (out / f"{split}.jsonl").open()]
            assert records and all("width" not in r for r in records)
            assert any(f.code == "size_unknown" for f in report.warnings)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_hostile_case_through_cli(case: Case, tmp_path: Path) -> None:
    root = tmp_path / case.name
    materialize(case, root)
    before = snapshot(root, include_out=case.output == "kept")
    code, stdout, stderr, exception = run_cli(case, root)
    assert exception is None, f"uncaught {type(exception).__name__}: {exception}"
    check_outcome(case, root, code, stdout, stderr)
    after = snapshot(root, include_out=case.output == "kept")
    assert after == before, "files outside -o changed: " + ", ".join(
        sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    )


#: Cases whose command takes ``--format json`` and fails with an error (not a validation report).
JSON_CASES = [
    c
    for c in CASES
    if (c.args[0] == "convert" and c.exit_code != 0 and c.output != "created")
    or (c.args[0] == "validate" and c.exit_code == 2 and "--format" not in c.args)
]


@pytest.mark.parametrize("case", JSON_CASES, ids=[c.name for c in JSON_CASES])
def test_json_error_format(case: Case, tmp_path: Path) -> None:
    """``--format json`` turns the same error into one JSON object naming file, place and exit code."""
    root = tmp_path / case.name
    materialize(case, root)
    code, _, stderr, exception = run_cli(case, root, ("--format", "json"))
    assert exception is None
    assert code == case.exit_code
    assert not (root / "out").exists() or case.output == "kept"
    (line,) = stderr.strip().splitlines()
    error = json.loads(line)
    assert error["exit_code"] == case.exit_code
    assert error["error"].endswith(("Error", "Exists"))
    where = ":".join(part for part in (error["file"], error["location"]) if part)
    assert case.fragment in f"{where}: {error['message']}"


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_hostile_case_through_a_real_process(name: str, tmp_path: Path) -> None:
    case = BY_NAME[name]
    root = tmp_path / name
    materialize(case, root)
    before = snapshot(root, include_out=False)
    done = subprocess.run(
        [sys.executable, "-m", "annonorm", *command(case, root)],
        cwd=root / "cwd",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    check_outcome(case, root, done.returncode, done.stdout, done.stderr)
    assert snapshot(root, include_out=False) == before


def test_corpus_size_and_coverage() -> None:
    """The corpus keeps at least 60 cases and spans every command the issue names."""
    assert len(CASES) >= 60
    assert len(BY_NAME) == len(CASES), "case names must be unique"
    categories = {case.category for case in CASES}
    assert {"coco", "voc", "csv", "yolo", "validate", "export"} <= categories
    assert {case.exit_code for case in CASES} == {0, 1, 2}
    assert any(case.output == "created" and "skipped" in case.extra for case in CASES)
