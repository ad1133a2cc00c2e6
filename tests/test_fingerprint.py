"""The content fingerprint of a normalized dataset (:func:`annonorm.io.fingerprint`, ``annonorm stats``):
the same for the same categories and split bytes wherever the folder is and whenever it was touched,
different as soon as one byte of a record, a category or a split name differs."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from annonorm.cli import app
from annonorm.converters.base import make_record
from annonorm.errors import ParseError
from annonorm.io import fingerprint
from annonorm.testing import DatasetSpec, datasets, write_dataset

runner = CliRunner()


def _manifest(dataset: Path) -> dict[str, object]:
    return json.loads((dataset / "annonorm.json").read_text(encoding="utf-8"))


def _write_manifest(dataset: Path, manifest: dict[str, object]) -> None:
    (dataset / "annonorm.json").write_text(json.dumps(manifest), encoding="utf-8")


@given(datasets(max_records=4))
def test_moving_rewriting_and_touching_keep_the_fingerprint(spec: DatasetSpec) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        first = write_dataset(Path(tmp) / "first", spec.categories, spec.splits)
        before = fingerprint(first)
        moved = Path(tmp) / "renamed" / "elsewhere"
        moved.parent.mkdir()
        shutil.move(first, moved)
        assert fingerprint(moved) == before
        for split_file in moved.glob("*.jsonl"):  # the same bytes in a new file, with other times
            data = split_file.read_bytes()
            split_file.unlink()
            split_file.write_bytes(data)
            os.utime(split_file, (1_000_000_000, 1_000_000_000))
        manifest = _manifest(moved)
        manifest["name"] = "another name"  # neither the name nor the image root is content
        manifest["image_root"] = "../images"
        manifest["splits"] = dict(reversed(list(manifest["splits"].items())))  # type: ignore[attr-defined]
        _write_manifest(moved, manifest)
        assert fingerprint(moved) == before
        assert fingerprint(moved / "annonorm.json") == before


@given(datasets(max_records=4), st.data())
def test_changing_any_record_byte_changes_the_fingerprint(spec: DatasetSpec, data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        dataset = write_dataset(Path(tmp) / "ds", spec.categories, spec.splits)
        before = fingerprint(dataset)
        split = data.draw(st.sampled_from(sorted(spec.splits)))
        split_file = dataset / f"{split}.jsonl"
        content = bytearray(split_file.read_bytes())
        position = data.draw(st.integers(0, len(content) - 1))
        content[position] = data.draw(st.integers(0, 255).filter(lambda b: b != content[position]))
        split_file.write_bytes(bytes(content))
        assert fingerprint(dataset) != before


def test_one_box_a_category_or_a_split_name_changes_it(tmp_path: Path) -> None:
    box = {"name": "cat", "x1": 1.0, "y1": 2.0, "x2": 30.0, "y2": 40.0}
    records = {"train": [make_record(image="a.jpg", width=64, height=64, boxes=[box])]}
    base = fingerprint(write_dataset(tmp_path / "base", ["cat", "dog"], records))
    moved_box = {"train": [make_record(image="a.jpg", width=64, height=64, boxes=[{**box, "x2": 31.0}])]}
    assert fingerprint(write_dataset(tmp_path / "box", ["cat", "dog"], moved_box)) != base
    assert fingerprint(write_dataset(tmp_path / "order", ["dog", "cat"], records)) != base
    assert fingerprint(write_dataset(tmp_path / "split", ["cat", "dog"], {"val": records["train"]})) != base
    keypoints = write_dataset(tmp_path / "kp", ["cat", "dog"], records, keypoints={"dog": ["nose"]})
    assert fingerprint(keypoints) != base


def test_bytes_moved_between_splits_change_it(tmp_path: Path) -> None:
    # The same bytes in a different cut between two files must not hash alike (each part is length-prefixed).
    records = [make_record(image=f"{i}.jpg", width=4, height=4) for i in range(3)]
    one = write_dataset(tmp_path / "one", ["a"], {"train": records[:1], "val": records[1:]})
    two = write_dataset(tmp_path / "two", ["a"], {"train": records[:2], "val": records[2:]})
    joined = b"".join((d / s).read_bytes() for d in (one,) for s in ("train.jsonl", "val.jsonl"))
    assert joined == b"".join((two / s).read_bytes() for s in ("train.jsonl", "val.jsonl"))
    assert fingerprint(one) != fingerprint(two)


def test_the_scheme_is_stable(tmp_path: Path) -> None:
    # Experiment logs keep fingerprints: a change of scheme must be deliberate (a new FINGERPRINT_TAG).
    dataset = tmp_path / "ds"
    dataset.mkdir()
    (dataset / "train.jsonl").write_bytes(b'{"image":"a.jpg"}\n')
    manifest = {"format": "annonorm", "version": 2, "name": "n", "categories": [{"id": 0, "name": "a"}]}
    _write_manifest(dataset, {**manifest, "splits": {"train": "train.jsonl"}, "image_root": "."})

    # The documented scheme spelled out by hand: tag, then each part as an 8-byte big-endian length and its bytes.
    def part(data: bytes) -> bytes:
        return len(data).to_bytes(8, "big") + data

    stream = (
        b"annonorm-fingerprint-1\n" + part(b'[{"id":0,"name":"a"}]') + part(b"train") + part(b'{"image":"a.jpg"}\n')
    )
    assert fingerprint(dataset) == hashlib.sha256(stream).hexdigest()


def test_a_missing_split_or_dataset_is_a_parse_error(tmp_path: Path) -> None:
    dataset = write_dataset(tmp_path / "ds", ["a"], {"train": [make_record(image="a.jpg", width=4, height=4)]})
    (dataset / "train.jsonl").unlink()
    with pytest.raises(ParseError, match="split file is missing"):
        fingerprint(dataset)
    with pytest.raises(ParseError, match=r"no annonorm\.json"):
        fingerprint(tmp_path / "nothing")


def test_stats_prints_it_and_puts_it_in_json(tmp_path: Path) -> None:
    records = [make_record(image=f"{i}.jpg", width=8, height=8) for i in range(3)]
    dataset = write_dataset(tmp_path / "ds", ["a"], {"train": records[:2], "val": records[2:]})
    expected = fingerprint(dataset)
    as_json = runner.invoke(app, ["stats", str(dataset), "--format", "json"])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.output)["fingerprint"] == expected
    only_val = runner.invoke(app, ["stats", str(dataset), "--split", "val", "--format", "json"])
    assert json.loads(only_val.output)["fingerprint"] == expected  # the dataset's, whichever splits are shown
    text = runner.invoke(app, ["stats", str(dataset)])
    assert text.exit_code == 0
    assert f"fingerprint: {expected}" in text.output.splitlines()
    assert runner.invoke(app, ["validate", str(dataset)]).exit_code == 0
    assert fingerprint(dataset) == expected  # reading the dataset never changes it
    (dataset / "val.jsonl").unlink()
    missing = runner.invoke(app, ["stats", str(dataset)])
    assert missing.exit_code == 2
    assert "split file is missing" in missing.output and "Traceback" not in missing.output


def test_the_loader_gives_the_fingerprint_stats_prints(tmp_path: Path) -> None:
    """``NormalizedDataset.fingerprint`` is :func:`annonorm.io.fingerprint` of its dataset, whatever the split."""
    from annonorm.dataset import NormalizedDataset

    write_dataset(tmp_path / "ds", ["cat"], {"train": [make_record(image="a.png", width=4, height=4)], "val": []})
    train = NormalizedDataset(tmp_path / "ds", split="train", load_images=False)
    assert train.fingerprint == fingerprint(tmp_path / "ds")
    assert len(train.fingerprint) == 64
