"""The operations at scale (issue 16 item 8): the parallel line pass writes what one process writes, copies
unchanged lines as they are, checks its output in the same pass, and words bad lines with file and line."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annonorm.engine import Execution, LocalExecutor
from annonorm.errors import InvalidDataError, ParseError
from annonorm.ops import filter_dataset, remap, split
from annonorm.ops.split import _random_assign
from annonorm.records import make_record
from annonorm.testing import DatasetSpec, datasets, write_dataset
from annonorm.validation import validate

#: Two processes from the first byte: every range is its own forked part.
PARALLEL = Execution(workers=2, min_parallel=0)
ONE = Execution(workers=1)


def _tree(directory: Path) -> dict[str, bytes]:
    """Every file of an output except the manifest (its provenance names the output's own path)."""
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file() and p.name != "annonorm.json"}


def _write(directory: Path, spec: DatasetSpec) -> Path:
    return write_dataset(directory, spec.categories, spec.splits, keypoints=spec.keypoints)


@settings(max_examples=8, deadline=None)
@given(datasets(max_records=12, polygons=True, scores=True), st.integers(0, 99), st.booleans(), st.data())
def test_parallel_pass_writes_the_bytes_of_one_process(
    spec: DatasetSpec, seed: int, stratify: bool, data: st.DataObject
) -> None:
    keep = data.draw(st.lists(st.sampled_from(spec.categories), min_size=1, unique=True))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        source = _write(root / "ds", spec)
        total = sum(len(records) for records in spec.splits.values())
        ratios = "train=0.5,val=0.5" if total >= 2 else "train=1"
        runs = {
            "split": lambda out, ex: split(source, out, ratios=ratios, seed=seed, stratify=stratify, execution=ex),
            "filter": lambda out, ex: filter_dataset(source, out, classes=keep, min_area=10.0, execution=ex),
            "remap": lambda out, ex: remap(source, out, {keep[0]: "renamed"}, execution=ex),
        }
        for name, run in runs.items():
            one = run(root / f"{name}-one", ONE).out
            two = run(root / f"{name}-two", PARALLEL).out
            assert _tree(one) == _tree(two), name
            assert (
                json.loads((one / "annonorm.json").read_text())["categories"]
                == json.loads((two / "annonorm.json").read_text())["categories"]
            )
            assert validate(two).valid


def _records(count: int, names: list[str], start: int = 0) -> list[dict[str, Any]]:
    return [
        make_record(
            image=f"img/{start + i}.jpg",
            width=100,
            height=100,
            boxes=[{"name": names[(start + i) % len(names)], "x1": 1.0, "y1": 2.0, "x2": 30.5, "y2": 40.25}],
            id=i,
        )
        for i in range(count)
    ]


def test_pooled_splits_keep_ids_unique_and_lists_in_order(tmp_path: Path) -> None:
    assert LocalExecutor(PARALLEL).forks()  # else PARALLEL would quietly run in one process
    names = ["a", "b"]
    source = write_dataset(tmp_path / "ds", names, {"x": _records(30, names), "y": _records(30, names, 30)})
    outs = [
        split(source, tmp_path / f"out{k}", ratios="train=0.5,val=0.5", seed=3, execution=ex).out
        for k, ex in enumerate((ONE, PARALLEL))
    ]
    assert _tree(outs[0]) == _tree(outs[1])
    for name in ("train", "val"):
        lines = [json.loads(line) for line in (outs[1] / f"{name}.jsonl").read_text().splitlines()]
        ids = [r["id"] for r in lines if "id" in r]
        assert len(ids) == len(set(ids))
        moved = [r["attributes"]["merged_id"] for r in lines if "id" not in r]
        assert len(ids) + len(moved) == len(lines)
        listed = (outs[1] / f"{name}.txt").read_text().splitlines()
        assert listed == [r["image"] for r in lines]
    assert validate(outs[1]).valid


def test_unchanged_lines_are_copied_as_they_are(tmp_path: Path) -> None:
    source = write_dataset(tmp_path / "ds", ["a", "b", "c"], {"train": []})
    # Written by hand: shorthand forms and a key order annonorm would not write; only "b" records change.
    lines = [
        b'{"image":"1.jpg","labels":"a","counts":[{"a":1}],"width":10,"height":10}',
        b'{"image":"2.jpg","width":10,"height":10,"boxes":[{"name":"b","x1":1,"y1":1,"x2":5,"y2":5}]}',
        b'{"height":10,"image":"3.jpg","width":10,"labels":["c"],"counts":{"c":2}}',
    ]
    (source / "train.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    for ex in (ONE, PARALLEL):
        out = remap(source, tmp_path / "out", {"b": "bee"}, force=True, execution=ex).out
        written = (out / "train.jsonl").read_bytes().splitlines()
        assert written[0] == lines[0] and written[2] == lines[2]
        changed = json.loads(written[1])
        assert changed["labels"] == ["bee"] and changed["boxes"][0]["name"] == "bee"
        assert changed["counts"] == {"bee": 1}
        kept = filter_dataset(source, tmp_path / "kept", drop_classes="c", force=True, execution=ex).out
        written = (kept / "train.jsonl").read_bytes().splitlines()
        assert written[:2] == lines[:2]
        assert json.loads(written[2])["labels"] == []


def test_output_is_checked_in_the_pass_and_bad_lines_name_file_and_line(tmp_path: Path) -> None:
    names = ["a", "b"]
    records = _records(40, names)
    source = write_dataset(tmp_path / "ds", names, {"train": records})
    lines = (source / "train.jsonl").read_bytes().splitlines(keepends=True)
    assert b'"name":"a"' in lines[32]
    lines[32] = lines[32].replace(b'"name":"a"', b'"name":"zebra"')  # a class the manifest does not have
    (source / "train.jsonl").write_bytes(b"".join(lines))
    where = f"{source / 'train.jsonl'}:line 33"
    for ex in (ONE, PARALLEL):
        # The record is only checked, never relabeled: the pass's own check finds it, before any rename.
        with pytest.raises(InvalidDataError, match="invalid dataset") as caught:
            remap(source, tmp_path / "out", {"b": "bee"}, execution=ex)
        assert not (tmp_path / "out").exists()
        assert "zebra" in str(caught.value) and "train.jsonl:33" in str(caught.value)
        with pytest.raises(InvalidDataError) as scanned:
            split(source, tmp_path / "cut", ratios="train=0.5,val=0.5", stratify=True, execution=ex)
        assert str(scanned.value).startswith(where) and "zebra" in str(scanned.value)
        assert not (tmp_path / "cut").exists()
    lines[20] = b"{not json\n"
    (source / "train.jsonl").write_bytes(b"".join(lines))
    for ex in (ONE, PARALLEL):
        with pytest.raises(ParseError) as broken:
            remap(source, tmp_path / "out", {"a": "b"}, execution=ex)
        assert str(broken.value).startswith(f"{source / 'train.jsonl'}:line 21: not valid JSON")
        assert not (tmp_path / "out").exists()


def _greedy(sizes: np.ndarray, ratios: list[float], rng: np.random.Generator) -> np.ndarray:
    """The random split's rule written as the plain loop: each group to the split furthest below its share."""
    wanted = [float(sizes.sum()) * r for r in ratios]
    have = [0.0] * len(ratios)
    assigned = np.empty(len(sizes), dtype=np.int8)
    for group in rng.permutation(len(sizes)).tolist():
        best = max(range(len(ratios)), key=lambda j: (wanted[j] - have[j], ratios[j], -j))
        assigned[group] = best
        have[best] += float(sizes[group])
    return assigned


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 400),
    st.lists(st.sampled_from([1.0, 1.0, 2.0, 3.0, 0.37, 5.5]), min_size=1, max_size=5),
    st.integers(0, 2**31),
    st.booleans(),
)
def test_random_assignment_of_single_images_is_the_greedy_rule(
    count: int, weights: list[float], seed: int, grouped: bool
) -> None:
    ratios = [w / sum(weights) for w in weights]
    sizes = np.ones(count, dtype=np.int64)
    if grouped:
        sizes[:: max(1, count // 7)] = 3
    expected = _greedy(sizes, ratios, np.random.default_rng(seed))
    assert (_random_assign(sizes, ratios, np.random.default_rng(seed)) == expected).all()


def test_mask_files_come_along_in_parallel(tmp_path: Path) -> None:
    names = ["a", "b"]
    records = _records(20, names)
    for number, record in enumerate(records[::2]):
        record["mask"] = f"masks/{number}.png"
    source = write_dataset(tmp_path / "ds", names, {"train": records}, mask_kind="instance")
    (source / "masks").mkdir()
    for number in range(10):
        (source / "masks" / f"{number}.png").write_bytes(b"mask %d" % number)
    outs = [
        split(source, tmp_path / f"cut{k}", ratios="train=0.5,val=0.5", seed=1, execution=ex).out
        for k, ex in enumerate((ONE, PARALLEL))
    ]
    assert _tree(outs[0]) == _tree(outs[1])
    kept = remap(source, tmp_path / "renamed", {"b": "bee"}, execution=PARALLEL).out
    for out in (*outs, kept):
        listed = sorted(p.name for p in (out / "masks").iterdir())
        assert listed == sorted(f"{n}.png" for n in range(10))
        assert (out / "masks" / "3.png").read_bytes() == b"mask 3"
        assert validate(out).valid
    assert (source / "masks" / "3.png").read_bytes() == b"mask 3"  # the input is untouched
