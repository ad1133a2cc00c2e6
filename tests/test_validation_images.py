"""``validate --check-images`` over the engine: image batches in worker processes give the one-process report."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from typer.testing import CliRunner

from annonorm.cli import app
from annonorm.engine import Execution
from annonorm.imagecheck import ImageBatch, check_batch
from annonorm.testing import write_dataset
from annonorm.validation import validate_dataset

CATEGORIES = ["car"]


def _record(index: int, width: int = 20, height: int = 10) -> dict[str, Any]:
    return {
        "image": f"img_{index:04d}.png",
        "width": width,
        "height": height,
        "labels": ["car"],
        "counts": {"car": 1},
        "boxes": [{"name": "car", "x1": 1.0, "y1": 1.0, "x2": 5.0, "y2": 5.0}],
    }


def _mixed_dataset(tmp_path: Path, count: int) -> tuple[Path, dict[int, str], dict[str, int]]:
    """Two splits over ``count`` images, some broken; the expected code per train line, and the repeat."""
    images = tmp_path / "images"
    images.mkdir()
    expected: dict[int, str] = {}
    for i in range(count):
        path = images / f"img_{i:04d}.png"
        if i % 7 == 3:
            expected[i + 1] = "image_missing"
        elif i % 7 == 5:
            path.write_bytes(b"not an image")
            expected[i + 1] = "image_unreadable"
        elif i % 7 == 6:
            Image.new("L", (21, 10), i % 250).save(path)
            expected[i + 1] = "image_size_mismatch"
        else:
            Image.new("L", (20, 10), i % 250).save(path)
    # val holds a copy of image 0 under another name: the same content in two splits.
    shutil.copyfile(images / "img_0000.png", images / "copy_of_0.png")
    val = [dict(_record(0), image="copy_of_0.png")]
    root = write_dataset(
        tmp_path / "ds",
        CATEGORIES,
        {"train": [_record(i) for i in range(count)], "val": val},
        image_root="../images",
    )
    return root, expected, {"copy_of_0.png": 1}


@pytest.mark.parametrize("count", [1, 40, 1500])
def test_parallel_batches_give_the_one_process_report(tmp_path: Path, count: int) -> None:
    root, expected, _ = _mixed_dataset(tmp_path, count)
    one = validate_dataset(root, check_images=True, workers=1)
    many = validate_dataset(root, check_images=True, execution=Execution(workers=2, min_parallel=0))
    assert many.findings == one.findings
    train = [(f.line, f.code) for f in one.findings if f.file and f.file.endswith("train.jsonl")]
    assert train == sorted(expected.items())
    leaks = [f for f in one.findings if f.code == "image_in_several_splits"]
    assert len(leaks) == 1 and "same content" in leaks[0].message and "'img_0000.png'" in leaks[0].message


def test_one_split_hashes_nothing_and_still_checks_every_image(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for i in range(3):
        Image.new("L", (20, 10)).save(images / f"img_{i:04d}.png")
    jobs = [(i + 1, f"img_{i:04d}.png", 20, 10, None, 1) for i in range(4)]
    without = check_batch(ImageBatch(str(images), str(tmp_path), None, 1, jobs, digests=False))
    assert without.digests == b"" and without.lines == []
    assert [(line, code) for line, code, _, _ in without.problems] == [(4, "image_missing")]
    hashed = check_batch(ImageBatch(str(images), str(tmp_path), None, 1, jobs, digests=True))
    assert hashed.lines == [1, 2, 3] and len(hashed.digests) == 3 * 32
    assert hashed.problems == without.problems


def test_a_link_inside_the_root_is_followed_and_one_out_of_it_refused(tmp_path: Path) -> None:
    images = tmp_path / "images"
    (images / "sub").mkdir(parents=True)
    Image.new("L", (20, 10)).save(images / "sub" / "real.png")
    Image.new("L", (20, 10)).save(tmp_path / "outside.png")
    os.symlink(images / "sub" / "real.png", images / "inside_link.png")
    os.symlink(tmp_path / "outside.png", images / "outside_link.png")
    os.symlink(tmp_path, images / "up")  # a folder link: the image under it is outside too
    jobs = [
        (1, "sub/real.png", 20, 10, None, 1),
        (2, "inside_link.png", 20, 10, None, 1),
        (3, "outside_link.png", 20, 10, None, 1),
        (4, "up/outside.png", 20, 10, None, 1),
        (5, "sub/../sub/real.png", 20, 10, None, 1),
    ]
    found = check_batch(ImageBatch(str(images), str(tmp_path), None, 1, jobs))
    assert [(line, code) for line, code, _, _ in found.problems] == [
        (3, "image_outside_root"),
        (4, "image_outside_root"),
    ]


def test_validate_engine_and_workers_through_the_cli(tmp_path: Path) -> None:
    root, expected, _ = _mixed_dataset(tmp_path, 30)
    runner = CliRunner()
    one = runner.invoke(app, ["validate", str(root), "--check-images", "--workers", "1", "--format", "json"])
    two = runner.invoke(app, ["validate", str(root), "--check-images", "--workers", "2", "--engine", "local"])
    assert one.exit_code == 1 and two.exit_code == 1
    assert f"{len(expected)} errors" in two.output
    bad = runner.invoke(app, ["validate", str(root), "--engine", "spark"])
    assert bad.exit_code == 2
