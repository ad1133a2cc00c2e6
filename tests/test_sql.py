"""SQL over annotations (issue 17): the DuckDB views over JSONL and over a Parquet export, and `annonorm query`."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from annonorm.api import export
from annonorm.converters.base import make_record
from annonorm.errors import UsageError
from annonorm.testing import write_dataset

duckdb = pytest.importorskip("duckdb")
pytest.importorskip("pyarrow")

from annonorm.sql import connect, query  # noqa: E402


def _box(name: str, x1: float, y1: float, x2: float, y2: float) -> dict[str, Any]:
    return {"name": name, "x1": x1, "y1": y1, "x2": x2, "y2": y2}


@pytest.fixture(scope="module", params=["jsonl", "parquet"])
def dataset(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sql")
    crowded = [_box("car", n, 0, n + 10, 10) for n in range(55)]
    splits = {
        "train": [
            make_record(image="a.jpg", width=100, height=80, boxes=crowded, id=1),
            make_record(
                image="b.jpg", width=100, height=80, boxes=[_box("cat", 0, 0, 5, 40), _box("car", 1, 1, 50, 50)], id=2
            ),
        ],
        "val": [make_record(image="c.jpg", width=100, height=80, boxes=[_box("dog", 0, 0, 7, 7)], id="c")],
    }
    ds = write_dataset(root / "ds", ["car", "cat", "dog"], splits)
    if request.param == "jsonl":
        return ds
    return export("parquet", ds, root / "pq")


def _source_records(dataset: Path) -> dict[str, list[dict[str, Any]]]:
    ds = dataset if (dataset / "train.jsonl").exists() else dataset.parent / "ds"
    return {s: [json.loads(line) for line in (ds / f"{s}.jsonl").open()] for s in ("train", "val")}


def test_classes_per_split(dataset: Path) -> None:
    expected = Counter((s, b["name"]) for s, rs in _source_records(dataset).items() for r in rs for b in r["boxes"])
    _, rows = query(dataset, "SELECT split, name, count(*) FROM boxes GROUP BY ALL")
    assert {(s, n): c for s, n, c in rows} == dict(expected)


def test_images_with_more_than_50_boxes(dataset: Path) -> None:
    expected = sorted(r["image"] for rs in _source_records(dataset).values() for r in rs if len(r["boxes"]) > 50)
    _, rows = query(dataset, "SELECT image FROM images WHERE len(boxes) > 50 ORDER BY image")
    assert [r[0] for r in rows] == expected


def test_boxes_smaller_than_8_px_with_their_index(dataset: Path) -> None:
    expected = sorted(
        (r["image"], i)
        for rs in _source_records(dataset).values()
        for r in rs
        for i, b in enumerate(r["boxes"])
        if b["x2"] - b["x1"] < 8 or b["y2"] - b["y1"] < 8
    )
    _, rows = query(dataset, "SELECT image, index FROM boxes WHERE x2 - x1 < 8 OR y2 - y1 < 8 ORDER BY ALL")
    assert rows == expected and expected


def test_ids_labels_categories_and_area(dataset: Path) -> None:
    db = connect(dataset)
    assert db.sql("SELECT image, id, id_text FROM images ORDER BY image").fetchall() == [
        ("a.jpg", 1, None),
        ("b.jpg", 2, None),
        ("c.jpg", None, "c"),
    ]
    assert db.sql("SELECT name, count FROM labels WHERE image = 'b.jpg' ORDER BY name").fetchall() == [
        ("car", 1),
        ("cat", 1),
    ]
    assert db.sql("SELECT id, name FROM categories ORDER BY id").fetchall() == [(0, "car"), (1, "cat"), (2, "dog")]
    assert db.sql("SELECT area FROM boxes WHERE image = 'c.jpg'").fetchall() == [(49.0,)]


def test_a_sql_error_is_a_usage_error(dataset: Path) -> None:
    with pytest.raises(UsageError, match=r"SQL error: .*nope"):
        query(dataset, "SELECT nope FROM boxes")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "annonorm", *args], capture_output=True, text=True, check=False)


def test_cli_formats_and_errors(dataset: Path) -> None:
    sql = "SELECT split, count(*) AS n FROM images GROUP BY split ORDER BY split"
    done = _cli("query", str(dataset), sql, "--format", "json")
    assert done.returncode == 0 and json.loads(done.stdout) == [{"split": "train", "n": 2}, {"split": "val", "n": 1}]
    done = _cli("query", str(dataset), sql, "--format", "csv")
    assert list(csv.reader(io.StringIO(done.stdout))) == [["split", "n"], ["train", "2"], ["val", "1"]]
    done = _cli("query", str(dataset), sql)
    assert done.stdout.splitlines()[1].split() == ["train", "2"]
    done = _cli("query", str(dataset), "SELEC 1")
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "syntax error" in done.stderr
