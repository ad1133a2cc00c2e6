"""Dataset I/O: streaming reads, canonical writes, atomic output directories."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annonorm.errors import OutputExistsError, ParseError
from annonorm.io import atomic_output, encode_record, open_dataset
from annonorm.testing import records as records_strategy
from annonorm.testing import write_dataset


def test_encode_record_orders_keys_rounds_and_drops_none() -> None:
    line = encode_record(
        {
            "boxes": [
                {"y2": 2, "x2": 379.09000000000003, "name": "a", "x1": -0.0, "y1": 0.1 + 0.2, "attributes": None}
            ],
            "image": "x.jpg",
            "mask": None,
            "labels": ["a"],
            "counts": {"a": 1},
            "width": 400,
            "height": 3,
        }
    )
    assert line == (
        b'{"image":"x.jpg","width":400,"height":3,"labels":["a"],"counts":{"a":1},'
        b'"boxes":[{"name":"a","x1":0.0,"y1":0.3,"x2":379.09,"y2":2.0}]}\n'
    )


def test_records_are_streamed_in_canonical_form(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "d", ["car"], {"val": [{"image": "a.jpg", "labels": ["car"]}]})
    (root / "val.jsonl").write_text(
        json.dumps({"image": "a.jpg", "labels": "car", "counts": [{"car": 2}]})
        + "\n\n"
        + json.dumps({"image": "b.jpg", "boxes": [{"name": "car", "x1": 0, "y1": 0, "x2": 1, "y2": 1}]})
        + "\n"
    )
    records = list(open_dataset(root).records("val"))
    assert records[0]["labels"] == ["car"] and records[0]["counts"] == {"car": 2}
    assert records[1]["labels"] == ["car"] and records[1]["counts"] == {"car": 1}


def test_open_dataset_names_the_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match=r"no annonorm\.json here"):
        open_dataset(tmp_path)


def test_atomic_output_renames_into_place_on_success(tmp_path: Path) -> None:
    target = tmp_path / "out"
    with atomic_output(target) as temporary:
        (temporary / "f.txt").write_text("new")
        assert not target.exists()
    assert (target / "f.txt").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_atomic_output_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out"
    with pytest.raises(RuntimeError), atomic_output(target) as temporary:
        (temporary / "half.txt").write_text("partial")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_existing_output_needs_force_and_survives_a_failed_replacement(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "annonorm.json").write_text("{}")  # a previous annonorm output: the only kind --force replaces
    (target / "old.txt").write_text("old")
    with pytest.raises(OutputExistsError), atomic_output(target):
        pass
    with pytest.raises(RuntimeError), atomic_output(target, force=True) as temporary:
        (temporary / "new.txt").write_text("new")
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in target.iterdir()) == ["annonorm.json", "old.txt"]
    with atomic_output(target, force=True) as temporary:
        (temporary / "new.txt").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_leftovers_of_a_killed_run_are_cleaned(tmp_path: Path) -> None:
    leftover = tmp_path / ".out.annonorm-999999999-deadbeef"
    leftover.mkdir()
    with atomic_output(tmp_path / "out"):
        pass
    assert not leftover.exists()


@given(records=st.lists(records_strategy(["car", "bike"]), max_size=12), cut=st.integers(0, 12))
@settings(max_examples=30, deadline=None)
def test_adding_canonical_records_in_chunks_writes_what_adding_them_one_by_one_does(
    records: list[dict[str, Any]], cut: int
) -> None:
    from annonorm.io import DatasetWriter

    canonical = [msgspec.json.decode(encode_record(record)) for record in records]
    with tempfile.TemporaryDirectory() as directory:
        one, many = DatasetWriter(Path(directory) / "one"), DatasetWriter(Path(directory) / "many")
        for writer in (one, many):
            writer.directory.mkdir()
            writer.declare_split("train")
        for record in canonical:
            one.add("train", record, canonical=True)
        many.add_many("train", canonical[:cut])
        many.add_many("train", canonical[cut:])
        one.close()
        many.close()
        assert (one.directory / "train.jsonl").read_bytes() == (many.directory / "train.jsonl").read_bytes()
        assert one.summary == many.summary
