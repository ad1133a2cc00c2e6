"""Hugging Face ``datasets`` layout (issue 15, item 1): the real ``datasets`` package reads what annonorm writes,
annonorm reads Hub-style folders (xywh and xyxy, ClassLabel or string categories), ``to_hf``, and bad input.

Expected bboxes are computed here from the JSONL corners (COCO ``[x, y, w, h]``), not by the converter.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from peer import PEER_DATA
from PIL import Image
from typer.testing import CliRunner

from annonorm.api import convert, export
from annonorm.cli import app
from annonorm.converters.base import make_record
from annonorm.converters.hf import hf_features, hf_row_to_record, to_hf
from annonorm.io import open_dataset
from annonorm.testing import write_dataset
from annonorm.validation import validate

datasets = pytest.importorskip("datasets")
pq = pytest.importorskip("pyarrow.parquet")
runner = CliRunner()


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    # datasets' own progress bars (the tests call load_dataset directly) would start tqdm's monitor thread,
    # which outlives the test: the engine never forks a process with other threads, so the fork tests that
    # share this pytest worker would lose their forks.
    import tqdm

    monkeypatch.setattr(tqdm.tqdm, "monitor_interval", 0)


def _peer_dataset(tmp_path: Path) -> Path:
    convert("tfrecord", PEER_DATA / "tf_detection_api_dataset", tmp_path / "ds")
    return tmp_path / "ds"


def _expected_rows(dataset: Path) -> dict[str, list[tuple[str, list[float]]]]:
    source = open_dataset(dataset)
    return {
        r["image"]: [(b["name"], [b["x1"], b["y1"], b["x2"] - b["x1"], b["y2"] - b["y1"]]) for b in r["boxes"]]
        for split in source.manifest.splits
        for r in source.records(split)
    }


def test_datasets_load_the_export_with_its_features(tmp_path: Path) -> None:
    ds = _peer_dataset(tmp_path)
    export("hf", ds, tmp_path / "hf")
    files = sorted((tmp_path / "hf" / "data").iterdir())
    assert [f.name for f in files] == [f"{s}-00000-of-00001.parquet" for s in ("test", "train", "val")]
    loaded = datasets.load_dataset(
        "parquet",
        data_files={"train": str(tmp_path / "hf" / "data" / "train-*.parquet")},
        cache_dir=str(tmp_path / "c"),
    )["train"]
    names = open_dataset(ds).manifest.category_names
    assert loaded.features == hf_features(names)
    assert loaded.features["objects"]["category"].feature.names == names
    (row,) = loaded.cast_column("image", datasets.Image(decode=False))
    got = [(names[c], b) for c, b in zip(row["objects"]["category"], row["objects"]["bbox"], strict=True)]
    assert got == _expected_rows(ds)[row["image"]["path"]]
    assert (row["image_id"], row["width"], row["height"]) == (1, 16, 16)
    # The ClassLabel names are in the features metadata under the Parquet schema's "huggingface" key.
    metadata = json.loads(pq.read_schema(files[1]).metadata[b"huggingface"])
    assert metadata["info"]["features"]["objects"]["category"]["feature"]["names"] == names


def test_the_dataset_card_states_the_box_convention_and_splits(tmp_path: Path) -> None:
    export("hf", _peer_dataset(tmp_path), tmp_path / "hf")
    card = (tmp_path / "hf" / "README.md").read_text()
    assert card.startswith("---\nconfigs:\n")
    assert "COCO `[x_min, y_min, width, height]` in absolute pixels" in card
    assert "path: data/train-*.parquet" in card and "num_examples: 1" in card


def test_embedded_images_are_the_image_bytes_and_extract_back(tmp_path: Path) -> None:
    convert("tfrecord", PEER_DATA / "tf_detection_api_dataset", tmp_path / "ds", extract_images="images")
    images = tmp_path / "ds" / "images"
    assert json.loads((tmp_path / "ds" / "annonorm.json").read_text())["image_root"] == "images"
    export("hf", tmp_path / "ds", tmp_path / "hf", embed_images=True)
    table = pq.read_table(tmp_path / "hf" / "data" / "val-00000-of-00001.parquet")
    assert table.column("image").to_pylist() == [{"bytes": (images / "2.jpg").read_bytes(), "path": "2.jpg"}]
    convert("hf", tmp_path / "hf", tmp_path / "back", extract_images="pics")
    assert sorted(p.name for p in (tmp_path / "back" / "pics").iterdir()) == ["1.jpg", "2.jpg", "3.jpg"]


def _hub_folder(tmp_path: Path, rows: list[dict[str, Any]], features: Any) -> Path:
    folder = tmp_path / "hub" / "data"
    folder.mkdir(parents=True)
    datasets.Dataset.from_list(rows, features=features).to_parquet(
        str(folder / "train-00000-of-00001-0123abcd.parquet"), batch_size=100
    )
    return tmp_path / "hub"


def test_a_hub_folder_with_corner_boxes_and_string_categories_reads_with_xyxy(tmp_path: Path) -> None:
    features = datasets.Features(
        {
            "image": datasets.Value("string"),
            "objects": datasets.List(
                {"bbox": datasets.List(datasets.Value("float32")), "category": datasets.Value("string")}
            ),
        }
    )
    rows = [
        {
            "image": "a.jpg",
            "objects": [{"bbox": [1, 2, 5, 8], "category": "cat"}, {"bbox": [0, 0, 1, 1], "category": "dog"}],
        }
    ]
    hub = _hub_folder(tmp_path, rows, features)
    result = runner.invoke(app, ["convert", "hf", str(hub), "-o", str(tmp_path / "out"), "--bbox-format", "xyxy"])
    assert result.exit_code == 0, result.output
    (record,) = open_dataset(tmp_path / "out").records("train")
    assert [(b["name"], b["x1"], b["y1"], b["x2"], b["y2"]) for b in record["boxes"]] == [
        ("cat", 1.0, 2.0, 5.0, 8.0),
        ("dog", 0.0, 0.0, 1.0, 1.0),
    ]
    assert validate(tmp_path / "out").valid


def test_a_classlabel_index_beyond_the_names_is_one_line_naming_the_row(tmp_path: Path) -> None:
    features = hf_features(["cat"])
    bad = {"image_id": 0, "image": {"path": "a.jpg", "bytes": None}, "width": 4, "height": 4}
    bad["objects"] = {"id": [0], "area": [1.0], "bbox": [[0.0, 0.0, 1.0, 1.0]], "category": [0]}
    hub = _hub_folder(tmp_path, [bad], features)
    # Without ClassLabel names (a bare int column) the value itself names the class.
    assert hf_row_to_record(row=bad, names=None, box_format="xywh", image="a.jpg")["boxes"][0]["name"] == "0"
    with pytest.raises(ValueError, match="category 3 is not one of the 1 ClassLabel names"):
        hf_row_to_record(
            row=bad | {"objects": bad["objects"] | {"category": [3]}}, names=["cat"], box_format="xywh", image="a"
        )
    convert("hf", hub, tmp_path / "ok")
    assert open_dataset(tmp_path / "ok").manifest.category_names == ["cat"]


def test_a_file_that_is_not_parquet_is_one_line_naming_it(tmp_path: Path) -> None:
    (tmp_path / "src" / "data").mkdir(parents=True)
    (tmp_path / "src" / "data" / "train-00000-of-00001.parquet").write_bytes(b"PAR1 not really")
    result = runner.invoke(app, ["convert", "hf", str(tmp_path / "src"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "train-00000-of-00001.parquet: not a readable Parquet file" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


def test_to_hf_gives_a_dataset_whose_images_decode(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    Image.new("RGB", (20, 10)).save(tmp_path / "images" / "a.png")
    record = make_record(image="a.png", width=20, height=10, boxes=[{"name": "b", "x1": 1, "y1": 2, "x2": 4, "y2": 8}])
    write_dataset(tmp_path / "ds", ["a", "b"], {"val": [record]}, image_root="../images")
    hf = to_hf(tmp_path / "ds")
    assert len(hf) == 1 and hf.features["objects"]["category"].feature.names == ["a", "b"]
    row = hf[0]
    assert row["image"].size == (20, 10)
    assert row["objects"]["bbox"] == [[1.0, 2.0, 3.0, 6.0]] and row["objects"]["category"] == [1]
