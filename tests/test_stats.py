"""annonorm.stats: checked against a plain-Python oracle, COCO's area limits at their edges, and the CLI."""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from typer.testing import CliRunner

from annonorm.cli import app
from annonorm.converters.base import make_record
from annonorm.errors import InvalidDataError, UsageError
from annonorm.stats import compute_stats
from annonorm.testing import DatasetSpec, datasets, write_dataset


def _size_oracle(width: float, height: float) -> str:
    area = width * height
    if area < 32 * 32:
        return "small"
    if area < 96 * 96:
        return "medium"
    return "large"


def _aspect_oracle(ratio: float) -> str:
    for upper, name in ((0.25, "<0.25"), (0.5, "0.25-0.5"), (0.8, "0.5-0.8"), (1.25, "0.8-1.25"), (2, "1.25-2")):
        if ratio < upper:
            return name
    return "2-4" if ratio < 4 else ">=4"


def _oracle(categories: list[str], records: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures of one split, the slow obvious way."""
    per_class = {n: {"images": 0, "boxes": 0, "count": 0, "small": 0, "medium": 0, "large": 0} for n in categories}
    sizes = {"small": 0, "medium": 0, "large": 0}
    aspects: dict[str, int] = {}
    ratios = []
    for record in records:
        for name in set(record["labels"]) | {b["name"] for b in record["boxes"]}:
            per_class[name]["images"] += 1
        for name, value in record["counts"].items():
            per_class[name]["count"] += value
        for box in record["boxes"]:
            width, height = box["x2"] - box["x1"], box["y2"] - box["y1"]
            size = _size_oracle(width, height)
            sizes[size] += 1
            per_class[box["name"]]["boxes"] += 1
            per_class[box["name"]][size] += 1
            if width > 0 and height > 0:
                ratios.append(width / height)
                aspects[_aspect_oracle(width / height)] = aspects.get(_aspect_oracle(width / height), 0) + 1
    return {
        "images": len(records),
        "boxes": sum(len(r["boxes"]) for r in records),
        "without_boxes": sum(1 for r in records if not r["boxes"]),
        "sizes": sizes,
        "aspects": aspects,
        "degenerate": sum(len(r["boxes"]) for r in records) - len(ratios),
        "median": statistics.median(ratios) if ratios else None,
        "classes": per_class,
    }


@given(datasets(max_records=6))
def test_stats_agree_with_a_plain_python_oracle(spec: DatasetSpec) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        stats = compute_stats(write_dataset(Path(tmp) / "ds", spec.categories, spec.splits))
    assert list(stats.splits) == list(spec.splits)
    for split, records in spec.splits.items():
        expected = _oracle(spec.categories, records)
        got = stats.splits[split]
        assert (got.images, got.boxes, got.images_without_boxes) == (
            expected["images"],
            expected["boxes"],
            expected["without_boxes"],
        )
        assert got.sizes == expected["sizes"]
        assert {k: v for k, v in got.aspect_buckets.items() if v} == expected["aspects"]
        assert got.degenerate_boxes == expected["degenerate"]
        if expected["median"] is None:
            assert got.aspect_quantiles == {}
        else:
            assert got.aspect_quantiles["p50"] == pytest.approx(expected["median"], abs=1e-4, rel=1e-4)
        assert [c.name for c in got.classes] == spec.categories
        for c in got.classes:
            oracle = expected["classes"][c.name]
            assert (c.images, c.boxes, c.count) == (oracle["images"], oracle["boxes"], oracle["count"])
            assert c.sizes == {k: oracle[k] for k in ("small", "medium", "large")}


def _box(name: str, width: float, height: float) -> dict[str, Any]:
    return {"name": name, "x1": 0.0, "y1": 0.0, "x2": width, "y2": height}


def test_coco_area_limits_and_aspect_buckets_at_their_edges(tmp_path: Path) -> None:
    boxes = [
        _box("a", 31.9, 32),  # 1020.8 < 32²: small
        _box("a", 32, 32),  # exactly 32²: medium
        _box("b", 95, 96),  # < 96²: medium
        _box("b", 96, 96),  # exactly 96²: large
        _box("b", 40, 20),  # w/h = 2: the 2-4 bucket
        _box("b", 0, 20),  # no width: no aspect ratio
    ]
    records = [
        make_record(image="one.jpg", width=200, height=200, boxes=boxes),
        make_record(image="two.jpg", width=10, height=10, counts={"a": 4}),
        make_record(image="three.jpg", width=10, height=10),
    ]
    stats = compute_stats(write_dataset(tmp_path / "ds", ["a", "b", "c"], {"train": records}))
    split = stats.splits["train"]
    assert split.sizes == {"small": 3, "medium": 2, "large": 1}  # 40x20 = 800 and 0x20 = 0 are small too
    assert split.aspect_buckets["2-4"] == 1
    assert split.aspect_buckets["0.8-1.25"] == 4  # 31.9/32, 1, 95/96, 1
    assert split.degenerate_boxes == 1
    assert (split.images_without_boxes, split.images_without_labels) == (2, 1)
    by_name = {c.name: c for c in split.classes}
    assert (by_name["a"].images, by_name["a"].boxes, by_name["a"].count) == (2, 2, 6)
    assert by_name["a"].sizes == {"small": 1, "medium": 1, "large": 0}
    assert (by_name["c"].images, by_name["c"].boxes) == (0, 0)  # listed although absent


def test_unknown_split_is_a_usage_error(tmp_path: Path) -> None:
    dataset = write_dataset(tmp_path / "ds", ["a"], {"train": [make_record(image="x.jpg", width=4, height=4)]})
    with pytest.raises(UsageError, match="no split 'test'"):
        compute_stats(dataset, ["test"])
    assert list(compute_stats(dataset, ["train", "train"]).splits) == ["train"]


def test_cli_prints_tables_and_json(tmp_path: Path) -> None:
    records = [make_record(image=f"{i}.jpg", width=64, height=64, boxes=[_box("cat", 10, 5)] * i) for i in range(3)]
    dataset = write_dataset(tmp_path / "ds", ["cat", "dog"], {"train": records[:2], "val": records[2:]})
    runner = CliRunner()
    result = runner.invoke(app, ["stats", str(dataset), "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["splits"]["train"]["boxes"] == 1 and data["splits"]["val"]["boxes"] == 2
    assert data["splits"]["val"]["aspect_buckets"]["2-4"] == 2
    assert [c["name"] for c in data["splits"]["val"]["classes"]] == ["cat", "dog"]

    text = runner.invoke(app, ["stats", str(dataset)])
    assert text.exit_code == 0
    assert "per class" in text.output and "dog" in text.output

    missing = runner.invoke(app, ["stats", str(tmp_path / "nothing")])
    assert missing.exit_code == 2
    assert "no annonorm.json here" in missing.output


def test_a_malformed_record_is_an_error_naming_its_place(tmp_path: Path) -> None:
    records = [make_record(image="a.jpg", width=4, height=4), make_record(image="b.jpg", width=4, height=4)]
    dataset = write_dataset(tmp_path / "ds", ["a"], {"train": records})
    with (dataset / "train.jsonl").open("a") as stream:
        stream.write('{"image": "c.jpg", "boxes": [{"name": "a", "x1": 0}]}\n')  # no x2: validate's job
    with pytest.raises(InvalidDataError, match="malformed record") as caught:
        compute_stats(dataset)
    assert caught.value.file == str(dataset / "train.jsonl")
    assert caught.value.location == "record 3"
