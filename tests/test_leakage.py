"""Leakage: ``image_in_several_splits`` for an image path in two splits and, with ``--check-images``, for
the same image content under two paths in two splits. Expected findings come from plain-Python oracles."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from annonorm.cli import app
from annonorm.converters.base import make_record
from annonorm.engine import Execution
from annonorm.fastcheck import repeated_across
from annonorm.testing import write_dataset
from annonorm.validation import Report, validate, validate_dataset

CODE = "image_in_several_splits"
SPLITS = ("train", "val", "test")
runner = CliRunner()


def _record(image: str) -> dict[str, Any]:
    return make_record(image=image, width=4, height=4)


def _leaks(report: Report) -> set[tuple[str, int]]:
    """``(split file name, line)`` of every leakage finding."""
    return {(Path(f.file or "").name, f.line or 0) for f in report.findings if f.code == CODE}


def _path_oracle(splits: dict[str, list[str]]) -> set[tuple[str, int]]:
    """A record leaks when an earlier split (manifest order) holds its image path."""
    expected = set()
    for position, (split, images) in enumerate(splits.items()):
        earlier = {image for other in list(splits.values())[:position] for image in other}
        expected |= {(f"{split}.jsonl", line) for line, image in enumerate(images, start=1) if image in earlier}
    return expected


def _write_png(path: Path, shade: int) -> None:
    Image.new("L", (4, 4), shade).save(path)  # the same shade gives the same bytes


split_images = st.dictionaries(
    st.sampled_from(SPLITS),
    st.lists(st.sampled_from([f"img{i}.png" for i in range(6)]), min_size=1, max_size=5, unique=True),
    min_size=1,
    max_size=3,
)


@given(split_images)
def test_leakage_is_found_iff_an_image_path_is_in_two_splits(splits: dict[str, list[str]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        dataset = write_dataset(
            Path(tmp) / "ds", ["a"], {s: [_record(i) for i in images] for s, images in splits.items()}
        )
        report = validate(dataset)
        strict = validate(dataset, strict=True)
    expected = _path_oracle(splits)
    assert _leaks(report) == expected
    assert report.valid  # a warning ...
    assert strict.valid == (not expected)  # ... and an error with --strict


@given(
    st.dictionaries(
        st.sampled_from(SPLITS), st.lists(st.integers(0, 3), min_size=1, max_size=4), min_size=1, max_size=3
    )
)
def test_same_content_under_another_path_is_found_with_check_images(shades: dict[str, list[int]]) -> None:
    # Every path is unique, so only content can leak: a record leaks when an earlier split has its bytes.
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        names = {split: [f"{split}_{i}.png" for i in range(len(values))] for split, values in shades.items()}
        for split, values in shades.items():
            for name, shade in zip(names[split], values, strict=True):
                _write_png(root / name, shade)
        records = {split: [_record(name) for name in names[split]] for split in shades}
        dataset = write_dataset(root / "ds", ["a"], records, image_root="..")
        without = validate(dataset)
        report = validate(dataset, check_images=True)
        content = {split: [(root / name).read_bytes() for name in names[split]] for split in shades}
    expected = set()
    for position, (split, blobs) in enumerate(content.items()):
        earlier = {blob for other in list(content.values())[:position] for blob in other}
        expected |= {(f"{split}.jsonl", line) for line, blob in enumerate(blobs, start=1) if blob in earlier}
    assert _leaks(without) == set()  # files are hashed only with --check-images
    assert _leaks(report) == expected
    assert all(f.severity == "warning" for f in report.findings)


def test_a_path_in_two_splits_is_one_finding_even_with_check_images(tmp_path: Path) -> None:
    for name, shade in (("a.png", 1), ("b.png", 2)):
        _write_png(tmp_path / name, shade)
    records = {"train": [_record("a.png"), _record("b.png")], "val": [_record("b.png")]}
    report = validate(write_dataset(tmp_path / "ds", ["a"], records, image_root=".."), check_images=True)
    [finding] = [f for f in report.findings if f.code == CODE]
    assert (Path(finding.file or "").name, finding.line, finding.key) == ("val.jsonl", 1, "image")
    assert finding.message == (
        "image 'b.png' of split 'val' (line 1) is also in split 'train' (line 2); expected each image in one split"
    )


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_splits_checked_in_worker_processes_are_compared_exactly(tmp_path: Path, start: str) -> None:
    # train is large enough to be checked by two workers, val is not: with spawned workers the two
    # splits' path keys come from different hash functions, and must still be compared alike.
    train = [_record(f"t{i}.png") for i in range(40)] + [_record("shared.png")]
    dataset = write_dataset(tmp_path / "ds", ["a"], {"train": train, "val": [_record("shared.png")]})
    threshold = (dataset / "train.jsonl").stat().st_size // 2
    assert (dataset / "val.jsonl").stat().st_size < threshold
    execution = Execution(workers=2, min_parallel=threshold, start=start)
    report = validate_dataset(dataset, execution=execution)
    assert _leaks(report) == {("val.jsonl", 1)}
    assert "(line 41)" in next(f.message for f in report.findings if f.code == CODE)


def test_repeated_across_marks_only_keys_of_several_groups() -> None:
    groups = [np.array([5, 1, 5, 9]), np.array([2, 9]), np.array([], dtype=np.int64), np.array([1, 7, 7])]
    marked = repeated_across(groups)
    assert [m.tolist() for m in marked] == [
        [False, True, False, True],  # 5 twice in one group only: not marked
        [False, True],
        [],
        [True, False, False],
    ]
    assert [m.tolist() for m in repeated_across([np.array([3, 3])])] == [[False, False]]


def test_cli_warns_names_both_splits_and_strict_fails(tmp_path: Path) -> None:
    records = {"train": [_record("x.png"), _record("y.png")], "val": [_record("z.png"), _record("y.png")]}
    dataset = write_dataset(tmp_path / "ds", ["a"], records)
    text = runner.invoke(app, ["validate", str(dataset)])
    assert text.exit_code == 0, text.output
    line = next(row for row in text.output.splitlines() if CODE in row)
    assert line.startswith(f"{dataset / 'val.jsonl'}:2: image: warning: ")
    assert "split 'val' (line 2)" in line and "split 'train' (line 2)" in line
    strict = runner.invoke(app, ["validate", str(dataset), "--strict", "--format", "json"])
    assert strict.exit_code == 1
    data = json.loads(strict.output)
    assert data["valid"] is False and data["errors"] == 1
    [finding] = data["findings"]
    assert (finding["code"], finding["severity"], finding["line"]) == (CODE, "error", 2)


def test_cli_check_images_reports_content_leak_in_json(tmp_path: Path) -> None:
    _write_png(tmp_path / "cat.png", 7)
    _write_png(tmp_path / "cat_copy.png", 7)
    records = {"train": [_record("cat.png")], "test": [_record("cat_copy.png")]}
    dataset = write_dataset(tmp_path / "ds", ["a"], records, image_root="..")
    assert runner.invoke(app, ["validate", str(dataset), "--format", "json"]).exit_code == 0
    result = runner.invoke(app, ["validate", str(dataset), "--check-images", "--strict", "--format", "json"])
    assert result.exit_code == 1, result.output
    [finding] = json.loads(result.output)["findings"]
    assert finding["code"] == CODE and finding["file"] == str(dataset / "test.jsonl")
    assert "'cat_copy.png' of split 'test' (line 1) has the same content" in finding["message"]
    assert "as 'cat.png' in split 'train' (line 1)" in finding["message"]
