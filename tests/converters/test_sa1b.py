"""SA-1B (issue 15, item 5): the peer files end to end, the transposed empty mask, the engine's parallel path.

Expected masks are decoded here with pycocotools from the source JSON, independently of the converter.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from peer import PEER_DATA
from PIL import Image
from pycocotools import mask as mask_utils
from typer.testing import CliRunner

from annonorm.api import convert
from annonorm.cli import app
from annonorm.converters.sa1b import Sa1bAnnotation, Sa1bConverter, Sa1bSegmentation, sa1b_annotation_to_box
from annonorm.engine import Execution
from annonorm.errors import InvalidDataError
from annonorm.io import open_dataset

runner = CliRunner()
PEER = PEER_DATA / "segment_anything_dataset"


def decoded(rle: dict[str, Any]) -> np.ndarray:
    return np.asarray(mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()}))


def test_the_peer_files_convert_validate_and_keep_every_mask(tmp_path: Path) -> None:
    assert Sa1bConverter.sniff(PEER)
    result = runner.invoke(app, ["convert", "sa1b", str(PEER), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["validate", str(tmp_path / "out"), "--check-images"])
    assert result.exit_code == 0, result.output
    dataset = open_dataset(tmp_path / "out")
    assert dataset.manifest.category_names == ["object"]
    records = {r["image"]: r for r in dataset.records("train")}
    for path in sorted(PEER.glob("*.json")):
        source = json.loads(path.read_text())
        record = records[source["image"]["file_name"]]
        assert (record["width"], record["height"], record["id"]) == (
            source["image"]["width"],
            source["image"]["height"],
            source["image"]["image_id"],
        )
        assert len(record["boxes"]) == len(source["annotations"])
        for box, annotation in zip(record["boxes"], source["annotations"], strict=True):
            x, y, w, h = annotation["bbox"]
            assert (box["x1"], box["y1"], box["x2"], box["y2"]) == (x, y, x + w, y + h)
            assert box["attributes"]["predicted_iou"] == annotation["predicted_iou"]
            assert box["attributes"]["point_coords"] == annotation["point_coords"]
            want = decoded(annotation["segmentation"])
            if want.any():
                assert (decoded(box["rle"]) == want).all()
            else:  # b.json: an empty mask whose size is the image's transposed carries no shape
                assert "rle" not in box and annotation["segmentation"]["size"] != [record["height"], record["width"]]
    assert len(records) == 2


def test_a_non_empty_mask_of_another_size_is_an_error() -> None:
    annotation = Sa1bAnnotation(segmentation=Sa1bSegmentation(size=[5, 10], counts="`04n0"), bbox=[3, 1, 1, 4])
    with pytest.raises(InvalidDataError, match="differs from the image size"):
        sa1b_annotation_to_box(annotation=annotation, width=5, height=10)


def test_an_uncompressed_mask_is_stored_compressed() -> None:
    annotation = Sa1bAnnotation(segmentation=Sa1bSegmentation(size=[2, 2], counts=[1, 2, 1]), bbox=[0, 0, 2, 2])
    box = sa1b_annotation_to_box(annotation=annotation, width=2, height=2)
    assert isinstance(box["rle"]["counts"], str)
    assert decoded(box["rle"]).T.ravel().tolist() == [0, 1, 1, 0]


def _many(root: Path, count: int) -> None:
    root.mkdir()
    for index in range(count):
        mask = np.zeros((4, 6), dtype=np.uint8, order="F")
        mask[: 1 + index % 4, : 1 + index % 6] = 1
        rle = mask_utils.encode(mask)
        document = {
            "image": {"image_id": index, "width": 6, "height": 4, "file_name": f"sa_{index}.jpg"},
            "annotations": [
                {
                    "id": index,
                    "segmentation": {"size": [4, 6], "counts": rle["counts"].decode()},
                    "bbox": [0, 0, 1 + index % 6, 1 + index % 4],
                    "area": int(mask.sum()),
                }
            ],
        }
        (root / f"sa_{index}.json").write_text(json.dumps(document))


def test_the_parallel_path_writes_the_bytes_of_one_process(tmp_path: Path) -> None:
    _many(tmp_path / "src", 150)
    convert("sa1b", tmp_path / "src", tmp_path / "one", execution=Execution(workers=1))
    convert("sa1b", tmp_path / "src", tmp_path / "two", execution=Execution(workers=2, min_parallel=0))
    one = (tmp_path / "one" / "train.jsonl").read_bytes()
    assert one == (tmp_path / "two" / "train.jsonl").read_bytes()
    assert one.count(b"\n") == 150


def test_sub_folders_are_read_in_order_and_a_bad_file_names_itself(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    for folder in ("sa_000001", "sa_000000"):
        shutil.copytree(PEER, tmp_path / "src" / folder)
    for path in (tmp_path / "src" / "sa_000001").glob("*.json"):  # SA-1B's image ids are unique
        path.write_text(path.read_text().replace('"image_id": ', '"image_id": 1'))
    convert("sa1b", tmp_path / "src", tmp_path / "out", split="val")
    images = [r["image"] for r in open_dataset(tmp_path / "out").records("val")]
    assert images == ["sa_000000/a.jpg", "sa_000000/b.jpg", "sa_000001/a.jpg", "sa_000001/b.jpg"]
    Image.new("RGB", (10, 5)).save(tmp_path / "src" / "sa_000001" / "a.jpg")
    bad = tmp_path / "src" / "sa_000001" / "b.json"
    bad.write_text(bad.read_text().replace('"counts": "b1"', '"counts": "b1!"'))
    result = runner.invoke(app, ["convert", "sa1b", str(tmp_path / "src"), "-o", str(tmp_path / "bad")])
    assert result.exit_code == 1, result.output
    assert "sa_000001/b.json:annotations[0]" in result.output and "invalid character" in result.output
    assert not (tmp_path / "bad").exists()
    result = runner.invoke(app, ["convert", "sa1b", str(tmp_path / "src"), "-o", str(tmp_path / "skip"),
                                 "--on-error", "skip"])  # fmt: skip
    assert result.exit_code == 1
    assert len(list(open_dataset(tmp_path / "skip").records("train"))) == 3
