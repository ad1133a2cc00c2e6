"""An interrupted conversion leaves either no output or the complete previous one, never a partial dataset."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from annonorm.validation import validate_dataset

IMAGES = 15_000


def write_coco(path: Path, images: int, offset: int = 0) -> Path:
    data = {
        "images": [{"id": i, "file_name": f"{i}.jpg", "width": 64, "height": 48} for i in range(images)],
        "categories": [{"id": 1, "name": "thing"}, {"id": 3, "name": "other"}],
        "annotations": [
            {
                "id": i,
                "image_id": i % images,
                "category_id": 1 + 2 * (i % 2),
                "bbox": [1, 2, 3 + offset, 4],
                "iscrowd": 0,
            }
            for i in range(images * 2)
        ],
    }
    path.write_text(json.dumps(data))
    return path


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def convert(source: Path, out: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "annonorm", "convert", "coco", str(source), "-o", str(out), "--force", "-q"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.parametrize("previous", [False, True], ids=["fresh", "replacing"])
def test_sigkill_at_any_point_leaves_nothing_or_the_previous_dataset(tmp_path: Path, previous: bool) -> None:
    source = write_coco(tmp_path / "big.json", IMAGES)
    out = tmp_path / "out"
    before: dict[str, bytes] | None = None
    if previous:
        small = write_coco(tmp_path / "small.json", 5, 1)
        assert convert(small, out).wait() == 0
        before = snapshot(out)
    # A full run, timed, tells where "several points" of the conversion are on this machine.
    started = time.perf_counter()
    finished = tmp_path / "finished"
    assert convert(source, finished).wait() == 0
    duration = time.perf_counter() - started
    complete = snapshot(finished)
    outcomes = set()
    for fraction in (0.1, 0.3, 0.5, 0.7, 0.85, 0.95):
        process = convert(source, out)
        time.sleep(duration * fraction)
        process.send_signal(signal.SIGKILL)
        process.wait()
        if not out.exists():
            assert not previous, "the previous dataset vanished"
            outcomes.add("nothing")
            continue
        state = snapshot(out)
        if state == before:
            outcomes.add("previous")
        else:
            assert state == complete, f"partial dataset after SIGKILL at {fraction:.0%}"
            assert validate_dataset(out).valid
            outcomes.add("complete")
            # the next kill must again leave this complete dataset or a new complete one
            before = state
        leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")]
        assert all(".annonorm-" in name for name in leftovers)  # only hidden temporaries, cleaned next run
    assert outcomes & {"nothing", "previous"}, f"no kill landed mid-conversion: {outcomes}"
    # a later run cleans the killed runs' temporaries
    assert convert(source, out).wait() == 0
    assert snapshot(out) == complete
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]
    assert os.listdir(out)
