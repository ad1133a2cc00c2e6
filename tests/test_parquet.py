"""The Parquet layout (issue 17): export, read back byte for byte, read by pyarrow and DuckDB with no annonorm code."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from annonorm.api import convert, export
from annonorm.columnar import iter_parquet_records, write_split
from annonorm.converters.base import make_record
from annonorm.sink import encode_record
from annonorm.testing import DatasetSpec, datasets, write_dataset

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
duckdb = pytest.importorskip("duckdb")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "annonorm", *args], capture_output=True, text=True, check=False)


def _split_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _box(name: str, x1: float, y1: float, x2: float, y2: float, **extra: Any) -> dict[str, Any]:
    return {"name": name, "x1": x1, "y1": y1, "x2": x2, "y2": y2, **extra}


@pytest.fixture(scope="module")
def coco(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small dataset with COCO's shapes: attributes, a polygon, a crowd RLE, a mask PNG, an image without boxes."""
    from PIL import Image

    root = tmp_path_factory.mktemp("coco") / "ds"
    polygon = {"polygon": [[1.0, 1.0, 9.5, 1.0, 9.5, 7.25]], "attributes": {"id": 7, "iscrowd": False}}
    rle = {"rle": {"size": [20, 30], "counts": "[12b00U`0"}, "attributes": {"iscrowd": True}}
    splits = {
        "train": [
            make_record(
                image="train/a.jpg",
                width=30,
                height=20,
                mask="masks/train/a.png",
                id=1,
                boxes=[_box("cat", 1, 1, 9.5, 7.25, **polygon), _box("dog", 2, 3, 4, 5, **rle)],
                attributes={"license": 1},
            ),
            make_record(image="train/b.jpg", width=30, height=20, id=2, boxes=[_box("cat", 0, 0, 30, 20)]),
        ],
        "val": [make_record(image="val/c.jpg", width=None, height=None, id="c-3", counts={"dog": 4})],
    }
    write_dataset(root, ["cat", "dog"], splits, image_root="../images", mask_kind="instance")
    (root / "masks" / "train").mkdir(parents=True)
    Image.new("L", (30, 20), 1).save(root / "masks" / "train" / "a.png")
    return root


def test_export_then_convert_back_gives_the_same_jsonl_and_masks(coco: Path, tmp_path: Path) -> None:
    assert _cli("export", "parquet", str(coco), "-o", str(tmp_path / "pq")).returncode == 0
    done = _cli("convert", "parquet", str(tmp_path / "pq"), "-o", str(tmp_path / "back"))
    assert done.returncode == 0, done.stderr
    for split in ("train", "val"):
        assert (tmp_path / "back" / f"{split}.jsonl").read_bytes() == (coco / f"{split}.jsonl").read_bytes()
    before = json.loads((coco / "annonorm.json").read_text())
    after = json.loads((tmp_path / "back" / "annonorm.json").read_text())
    assert after["categories"] == before["categories"]
    assert (tmp_path / "back").joinpath(after["image_root"]).resolve() == coco.joinpath(before["image_root"]).resolve()
    masks = sorted(p.relative_to(coco) for p in (coco / "masks").rglob("*.png"))
    assert masks and all((tmp_path / "back" / m).read_bytes() == (coco / m).read_bytes() for m in masks)


def test_pyarrow_and_duckdb_read_the_layout_alone(coco: Path, tmp_path: Path) -> None:
    export("parquet", coco, tmp_path / "pq")
    for split in ("train", "val"):
        records = _split_records(coco / f"{split}.jsonl")
        table = pq.read_table(tmp_path / "pq" / split)
        assert table.num_rows == len(records)
        assert table.column("image").to_pylist() == [r["image"] for r in records]
        assert pa.compute.sum(pa.compute.list_value_length(table.column("boxes"))).as_py() == sum(
            len(r["boxes"]) for r in records
        )
    boxes = pq.read_table(tmp_path / "pq" / "train").column("boxes").to_pylist()
    first = _split_records(coco / "train.jsonl")[0]["boxes"]
    assert [b["name"] for b in boxes[0]] == [b["name"] for b in first]
    assert boxes[0][0]["polygon"] == first[0]["polygon"] and boxes[0][1]["rle"] == first[1]["rle"]
    assert [json.loads(b["attributes"]) for b in boxes[0]] == [b["attributes"] for b in first]
    expected: dict[str, int] = {}
    for split in ("train", "val"):
        for record in _split_records(coco / f"{split}.jsonl"):
            for box in record["boxes"]:
                expected[box["name"]] = expected.get(box["name"], 0) + 1
    rows = duckdb.sql(
        f"SELECT b.name, count(*) FROM (SELECT unnest(boxes) AS b FROM read_parquet('{tmp_path}/pq/*/*.parquet')) "
        "GROUP BY ALL"
    ).fetchall()
    assert dict(rows) == expected


def _round_trip(spec: DatasetSpec, root: Path) -> None:
    ds = write_dataset(root / "ds", spec.categories, spec.splits, keypoints=spec.keypoints)
    export("parquet", ds, root / "pq")
    convert("parquet", root / "pq", root / "back")
    for split in spec.splits:
        assert (root / "back" / f"{split}.jsonl").read_bytes() == (ds / f"{split}.jsonl").read_bytes()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(datasets(polygons=True, rle=True, obb=True, keypoints=True, scores=True, sizes=False))
def test_every_v2_field_survives_byte_for_byte(spec: DatasetSpec) -> None:
    with tempfile.TemporaryDirectory() as folder:
        _round_trip(spec, Path(folder))


def test_small_row_groups_and_file_limits_split_the_files(tmp_path: Path) -> None:
    records = [
        {"image": f"i{n}.jpg", "width": 10, "height": 10, "boxes": [{"name": "a", "x1": 0, "y1": 0, "x2": n, "y2": 1}]}
        for n in range(7)
    ]
    jsonl = tmp_path / "train.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    parts = write_split(jsonl, tmp_path / "train", "train", row_group_rows=2, file_bytes=1)
    assert [p.name for p in parts] == [f"part-{n:05d}.parquet" for n in range(4)]  # 2 + 2 + 2 + 1 images
    assert [pq.ParquetFile(p).metadata.num_rows for p in parts] == [2, 2, 2, 1]
    back = [encode_record(r) for r in iter_parquet_records(parts, "train")]
    assert [json.loads(line)["boxes"][0]["x2"] for line in back] == [float(n) for n in range(7)]


def _foreign(path: Path, table: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


@pytest.mark.parametrize(
    ("table", "fragment"),
    [
        ({"file_name": ["a.jpg"], "objects": [1]}, "not annonorm's Parquet layout"),
        ({"image": ["a.jpg"], "boxes": [None], "width": ["ten"]}, "schema mismatch"),
    ],
)
def test_a_foreign_parquet_file_is_one_line_exit_2_nothing_written(
    coco: Path, tmp_path: Path, table: dict[str, Any], fragment: str
) -> None:
    export("parquet", coco, tmp_path / "pq")
    part = tmp_path / "pq" / "val" / "part-00000.parquet"
    part.unlink()
    _foreign(part, pa.table(table))
    done = _cli("convert", "parquet", str(tmp_path / "pq"), "-o", str(tmp_path / "back"))
    assert done.returncode == 2
    assert fragment in done.stderr and "part-00000.parquet" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "back").exists()


def test_a_split_without_parquet_files_is_refused(coco: Path, tmp_path: Path) -> None:
    export("parquet", coco, tmp_path / "pq")
    (tmp_path / "pq" / "val" / "part-00000.parquet").unlink()
    done = _cli("convert", "parquet", str(tmp_path / "pq"), "-o", str(tmp_path / "back"))
    assert done.returncode == 2 and "split 'val' has no" in done.stderr
    assert not (tmp_path / "back").exists()
