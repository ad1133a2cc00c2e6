"""Properties of the dataset operations (issue 16): merge, split, filter, remap on drawn datasets."""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from annonorm.io import open_dataset
from annonorm.ops import filter_dataset, merge, remap, split
from annonorm.sink import encode_record
from annonorm.testing import DatasetSpec, datasets, write_dataset
from annonorm.validation import validate

FAST = settings(max_examples=20, deadline=None)


def _write(directory: Path, spec: DatasetSpec, image_root: str = ".") -> Path:
    return write_dataset(directory, spec.categories, spec.splits, image_root=image_root, keypoints=spec.keypoints)


def _lines(dataset: Path) -> dict[str, list[dict[str, Any]]]:
    """Every split's records as parsed JSON, read with json (independent of annonorm's reader)."""
    manifest = json.loads((dataset / "annonorm.json").read_text())
    return {
        split: [json.loads(line) for line in (dataset / file).read_text().splitlines() if line.strip()]
        for split, file in manifest["splits"].items()
    }


def _content(record: dict[str, Any]) -> str:
    """A record without its id (ids may move when splits are pooled), as comparable text."""
    kept = {k: v for k, v in record.items() if k not in ("id", "attributes")}
    attributes = {k: v for k, v in (record.get("attributes") or {}).items() if k != "merged_id"}
    return json.dumps({**kept, "attributes": attributes}, sort_keys=True)


@FAST
@given(datasets(polygons=True, obb=True, scores=True), datasets(keypoints=True, rle=True), st.integers(0, 99))
def test_merge_then_split_keeps_the_multiset_of_records(first: DatasetSpec, second: DatasetSpec, seed: int) -> None:
    # A class both inputs have must name the same keypoints, else merge refuses them.
    shared = set(first.categories) & set(second.categories)
    assume(all((first.keypoints or {}).get(n) == (second.keypoints or {}).get(n) for n in shared))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        a = _write(root / "a", first, image_root="../img/a")
        b = _write(root / "b", second, image_root="../img/b")
        merged = merge([a, b], root / "m").out
        cut = split(merged, root / "s", ratios="train=0.5,val=0.5", seed=seed).out
        expected: Counter[str] = Counter()
        for prefix, spec in (("a", first), ("b", second)):
            for records in spec.splits.values():
                for record in records:
                    moved = json.loads(encode_record({**record, "image": f"{prefix}/{record['image']}"}))
                    expected[_content(moved)] += 1
        merged_records = Counter(_content(r) for rs in _lines(merged).values() for r in rs)
        cut_records = Counter(_content(r) for rs in _lines(cut).values() for r in rs)
        assert merged_records == expected
        assert cut_records == expected
        assert validate(cut).valid
        names = list(dict.fromkeys([*first.categories, *second.categories]))
        assert [c["name"] for c in json.loads((merged / "annonorm.json").read_text())["categories"]] == names


@FAST
@given(datasets(polygons=True, keypoints=True, scores=True), st.data())
def test_filter_then_validate_passes_and_counts_follow(spec: DatasetSpec, data: st.DataObject) -> None:
    keep = data.draw(st.lists(st.sampled_from(spec.categories), min_size=1, unique=True))
    min_area = data.draw(st.sampled_from([None, 0.0, 10.0, 5000.0]))
    with tempfile.TemporaryDirectory() as tmp:
        source = _write(Path(tmp) / "ds", spec)
        out = filter_dataset(source, Path(tmp) / "out", classes=keep, min_area=min_area, drop_empty=True).out
        report = validate(out)
        assert report.valid, [str(f) for f in report.errors]
        threshold = min_area or 0.0
        expected = sum(
            1
            for records in spec.splits.values()
            for record in records
            for box in record["boxes"]
            if box["name"] in keep and (box["x2"] - box["x1"]) * (box["y2"] - box["y1"]) >= threshold
        )
        written = _lines(out)
        assert sum(len(r["boxes"]) for rs in written.values() for r in rs) == expected
        assert all(r["labels"] for rs in written.values() for r in rs)  # drop_empty
        assert [c["name"] for c in json.loads((out / "annonorm.json").read_text())["categories"]] == [
            c for c in spec.categories if c in keep
        ]


@FAST
@given(datasets(max_records=8), st.integers(0, 2**31), st.booleans())
def test_split_with_the_same_seed_is_byte_identical(spec: DatasetSpec, seed: int, stratify: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        source = _write(Path(tmp) / "ds", spec)
        total = sum(len(r) for r in spec.splits.values())
        ratios = "train=0.5,val=0.5" if total >= 2 else "train=1"
        first = split(source, Path(tmp) / "one", ratios=ratios, seed=seed, stratify=stratify).out
        second = split(source, Path(tmp) / "two", ratios=ratios, seed=seed, stratify=stratify).out
        files = sorted(p.name for p in first.iterdir())
        assert files == sorted(p.name for p in second.iterdir())
        for name in files:
            assert (first / name).read_bytes() == (second / name).read_bytes(), name
        listed = sorted(
            line
            for n in ("train", "val")
            if (first / f"{n}.txt").exists()
            for line in (first / f"{n}.txt").read_text().splitlines()
        )
        assert listed == sorted(r["image"] for rs in spec.splits.values() for r in rs)


@FAST
@given(datasets(polygons=True, keypoints=True, rle=True, obb=True, scores=True))
def test_remap_with_the_identity_map_changes_nothing(spec: DatasetSpec) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        source = _write(Path(tmp) / "ds", spec)
        out = remap(source, Path(tmp) / "out", {name: name for name in spec.categories}).out
        for file in open_dataset(source).manifest.splits.values():
            assert (out / file).read_bytes() == (source / file).read_bytes()
        before = json.loads((source / "annonorm.json").read_text())
        after = json.loads((out / "annonorm.json").read_text())
        assert after["categories"] == before["categories"]


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.lists(st.integers(0, 5), max_size=3, unique=True), min_size=10, max_size=120),
    st.integers(0, 1000),
)
def test_stratified_split_puts_every_class_of_5_images_in_every_split(labels: list[list[int]], seed: int) -> None:
    names = [f"c{i}" for i in range(6)]
    records = [
        {"image": f"{i}.jpg", "width": 10, "height": 10, "labels": [names[c] for c in ls], "counts": {}}
        for i, ls in enumerate(labels)
    ]
    for record in records:
        record["counts"] = {name: 1 for name in record["labels"]}
    with tempfile.TemporaryDirectory() as tmp:
        source = write_dataset(Path(tmp) / "ds", names, {"all": records})
        out = split(source, Path(tmp) / "out", ratios="train=0.8,val=0.1,test=0.1", stratify=True, seed=seed).out
        per_split = {s: Counter(n for r in rs for n in r["labels"]) for s, rs in _lines(out).items()}
        total = Counter(n for r in records for n in r["labels"])
        for name, number in total.items():
            if number >= 5:
                assert all(per_split[s][name] >= 1 for s in ("train", "val", "test")), (name, per_split)
        sizes = np.array([sum(1 for _ in rs) for rs in _lines(out).values()])
        assert sizes.sum() == len(records)


@settings(max_examples=20, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=8, max_size=60), st.integers(0, 99), st.booleans())
def test_group_by_keeps_each_group_in_one_split(groups: list[int], seed: int, stratify: bool) -> None:
    records = [
        {
            "image": f"g{g}/{i}.jpg",
            "width": 10,
            "height": 10,
            "labels": ["a"],
            "counts": {"a": 1},
            "attributes": {"patient": g},
        }
        for i, g in enumerate(groups)
    ]
    if len(set(groups)) < 2:
        return
    with tempfile.TemporaryDirectory() as tmp:
        source = write_dataset(Path(tmp) / "ds", ["a"], {"all": records})
        for key in ("folder", "attribute:patient"):
            out = split(
                source,
                Path(tmp) / key.replace(":", "-"),
                ratios="train=0.5,val=0.5",
                group_by=key,
                seed=seed,
                stratify=stratify,
            ).out
            where: dict[str, set[str]] = {}
            for name, rs in _lines(out).items():
                for r in rs:
                    where.setdefault(r["image"].split("/")[0], set()).add(name)
            assert all(len(splits) == 1 for splits in where.values())
