"""``annonorm validate`` refuses inputs that are not regular files (FIFO, device, directory), before reading.

Each case that could block or never end (a FIFO, ``/dev/zero``) runs in a real subprocess with a
timeout, so that a regression fails the test instead of hanging the suite.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from annonorm.cli import app
from annonorm.errors import ParseError
from annonorm.testing import write_dataset
from annonorm.validation import validate_dataset

runner = CliRunner()
needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
needs_dev_zero = pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
TIMEOUT = 60


def validate_in_subprocess(path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", "from annonorm.cli import app; app()", "validate", str(path), *options]
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)


def dataset(tmp_path: Path) -> Path:
    records = [{"image": f"{i}.png", "width": 8, "height": 8} for i in range(3)]
    return write_dataset(tmp_path / "ds", ["car"], {"train": records})


def assert_refused(result: subprocess.CompletedProcess[str], path: Path, kind: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert f"{path}: " in result.stderr and f"not a regular file ({kind})" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


@needs_fifo
def test_a_fifo_split_file_is_refused_without_blocking(tmp_path: Path) -> None:
    root = dataset(tmp_path)
    split = root / "train.jsonl"
    split.unlink()
    os.mkfifo(split)
    assert_refused(validate_in_subprocess(root), split, "a FIFO")


@needs_fifo
def test_a_fifo_named_as_a_bare_split_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "train.jsonl"
    os.mkfifo(fifo)
    assert_refused(validate_in_subprocess(fifo), fifo, "a FIFO")


@needs_fifo
def test_a_fifo_manifest_is_refused_without_blocking(tmp_path: Path) -> None:
    root = dataset(tmp_path)
    (root / "annonorm.json").unlink()
    os.mkfifo(root / "annonorm.json")
    assert_refused(validate_in_subprocess(root), root / "annonorm.json", "a FIFO")
    assert_refused(validate_in_subprocess(root / "annonorm.json"), root / "annonorm.json", "a FIFO")


@needs_fifo
def test_a_fifo_named_as_the_dataset_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "dataset"
    os.mkfifo(fifo)
    assert_refused(validate_in_subprocess(fifo), fifo, "a FIFO")


@needs_dev_zero
def test_a_split_file_linked_to_dev_zero_is_refused(tmp_path: Path) -> None:
    root = dataset(tmp_path)
    split = root / "train.jsonl"
    split.unlink()
    split.symlink_to("/dev/zero")
    assert_refused(validate_in_subprocess(root), split, "a character device")
    assert_refused(validate_in_subprocess(split), split, "a character device")


@needs_dev_zero
def test_a_manifest_linked_to_dev_zero_is_refused(tmp_path: Path) -> None:
    root = dataset(tmp_path)
    (root / "annonorm.json").unlink()
    (root / "annonorm.json").symlink_to("/dev/zero")
    assert_refused(validate_in_subprocess(root), root / "annonorm.json", "a character device")
    result = validate_in_subprocess(root, "--format", "json")
    assert result.returncode == 2 and result.stdout == ""
    error = json.loads(result.stderr)
    assert error["file"] == str(root / "annonorm.json")
    assert error["message"] == "the manifest is not a regular file (a character device)"


def test_a_directory_where_the_split_file_should_be_is_refused(tmp_path: Path) -> None:
    root = dataset(tmp_path)
    (root / "train.jsonl").unlink()
    (root / "train.jsonl").mkdir()
    result = runner.invoke(app, ["validate", str(root)])
    assert result.exit_code == 2
    assert "train.jsonl: the split file is not a regular file (a directory)" in result.output
    with pytest.raises(ParseError, match=r"not a regular file \(a directory\)"):
        validate_dataset(root)


def test_a_directory_where_the_manifest_should_be_is_refused(tmp_path: Path) -> None:
    root = dataset(tmp_path)
    (root / "annonorm.json").unlink()
    (root / "annonorm.json").mkdir()
    result = runner.invoke(app, ["validate", str(root), "--format", "json"])
    assert result.exit_code == 2
    error = json.loads(result.output)
    assert error["file"] == str(root / "annonorm.json") and "not a regular file (a directory)" in error["message"]


def test_a_missing_split_file_is_still_called_missing(tmp_path: Path) -> None:
    root = dataset(tmp_path)
    (root / "train.jsonl").unlink()
    with pytest.raises(ParseError, match="split file is missing"):
        validate_dataset(root)


@needs_fifo
def test_a_fifo_image_or_mask_is_a_finding_not_a_hang(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    records = [
        {"image": "fifo.png", "width": 8, "height": 8},
        {"image": "ok.png", "width": 8, "height": 8, "mask": "masks/fifo.png"},
    ]
    write_dataset(root, ["car"], {"train": records}, mask_kind="semantic")
    os.mkfifo(root / "fifo.png")
    (root / "masks").mkdir()
    os.mkfifo(root / "masks" / "fifo.png")
    from PIL import Image

    Image.new("RGB", (8, 8)).save(root / "ok.png")
    result = validate_in_subprocess(root, "--check-images", "--format", "json")
    assert result.returncode == 1, result.stderr
    findings = {f["code"]: f for f in json.loads(result.stdout)["findings"]}
    assert "not a regular file (a FIFO)" in findings["image_unreadable"]["message"]
    assert "not a regular file (a FIFO)" in findings["mask_unreadable"]["message"]
