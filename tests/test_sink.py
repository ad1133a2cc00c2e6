"""The sink (annonorm.sink): the dataset writer, its part-check hook, and the names annonorm.io keeps for v0.1."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from annonorm.api import convert
from annonorm.sink import DatasetWriter, SplitSummary


def test_annonorm_io_keeps_the_names_of_v0_1() -> None:
    import annonorm.io as io
    import annonorm.provenance as provenance
    import annonorm.sink as sink

    assert io.DatasetWriter is sink.DatasetWriter
    assert io.SplitSummary is sink.SplitSummary
    assert io.encode_record is sink.encode_record
    assert io.file_sha256 is provenance.file_sha256
    assert {"DatasetWriter", "SplitSummary", "encode_record", "file_sha256"} <= set(io.__all__)


def _record(index: int, mask: bool = False) -> dict[str, Any]:
    record: dict[str, Any] = {"image": f"{index}.jpg", "width": 10, "height": 10, "labels": ["a"]}
    if mask:
        record["mask"] = f"masks/{index}.png"
    return record


def test_check_part_calls_the_hook_with_the_part_file_its_masks_and_the_categories(tmp_path: Path) -> None:
    calls: list[tuple[Path, list[str], int]] = []

    def hook(path: Path, categories: Sequence[str], *, masks: int) -> str:
        calls.append((path, list(categories), masks))
        return f"checked {path.name}"

    parent = DatasetWriter(tmp_path / "out", on_error="skip", part_check=hook)
    part = parent.part_writer(tmp_path / "part")
    assert (part.on_error, part.part_check) == ("skip", hook)
    assert part.categories == [] and part.progress is None
    part.directory.mkdir()
    part.declare_split("train")
    part.add("train", _record(0, mask=True))
    part.add("train", _record(1))
    part.close()
    assert part.check_part("train", ["a", "b"]) == "checked train.jsonl"
    assert calls == [(tmp_path / "part" / "train.jsonl", ["a", "b"], 1)]

    parent.directory.mkdir()
    parent.append_part("train", part.directory / "train.jsonl", part.summary["train"], "checked train.jsonl")
    parent.close()
    assert parent.checked_parts == {"train": ["checked train.jsonl"]}
    assert parent.summary["train"] == SplitSummary(records=2, boxes=0, masks=1)
    assert (parent.directory / "train.jsonl").read_bytes() == (part.directory / "train.jsonl").read_bytes()


def test_without_a_hook_no_part_is_checked(tmp_path: Path) -> None:
    writer = DatasetWriter(tmp_path / "out")
    part = writer.part_writer(tmp_path / "part")
    assert writer.part_check is None and part.part_check is None
    part.directory.mkdir()
    part.declare_split("train")
    part.add("train", _record(0))
    part.close()
    assert part.check_part("train", ["a"]) is None
    writer.directory.mkdir()
    writer.append_part("train", part.directory / "train.jsonl", part.summary["train"], None)
    writer.close()
    assert writer.checked_parts == {} and writer.summary["train"].records == 1


def _large_coco(path: Path, images: int) -> Path:
    """A COCO file with ``images`` images (one box each): above the threshold of the forked record builders."""
    document = {
        "images": [{"id": i, "file_name": f"{i:06d}.jpg", "width": 64, "height": 48} for i in range(images)],
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
        "annotations": [
            {"id": i + 1, "image_id": i, "category_id": 1 + i % 2, "bbox": [1, 2, 3 + i % 7, 4], "iscrowd": 0}
            for i in range(images)
        ],
    }
    path.write_text(json.dumps(document))
    return path


#: COCO builds the records of a file with this many images in forked processes (converters/coco.py).
FORKED_IMAGES = 20_000


def test_convert_checks_every_forked_part_through_the_hook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """COCO's record builders run in forked processes; each checks its part with the validator's check,
    which api injects into the sink: the split is not read again before the output is renamed into place."""
    import threading

    import annonorm.validation as validation

    # The engine forks only a process with no other thread; one left by an earlier test in this worker
    # (a library's monitor or pool thread) would silently keep the conversion in one process.
    others = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    assert others == [], f"threads left running by earlier tests in this process: {others}"
    log = tmp_path / "calls.jsonl"
    check_part = validation.check_part

    def recording(path: Path, categories: Sequence[str], *, masks: int) -> Any:
        with log.open("a") as stream:  # written by the forked process that made the call
            stream.write(json.dumps({"pid": os.getpid(), "part": path.parent.name, "categories": list(categories)}))
            stream.write("\n")
        return check_part(path, categories, masks=masks)

    monkeypatch.setattr(validation, "check_part", recording)
    read_here: list[Path] = []  # split files the final validation read in this process
    check_chunk = validation._check_chunk
    monkeypatch.setattr(validation, "_check_chunk", lambda chunk: read_here.append(chunk.path) or check_chunk(chunk))
    source = _large_coco(tmp_path / "instances_train.json", FORKED_IMAGES)

    one = convert("coco", source, tmp_path / "one", masks=False, workers=1)
    assert not log.exists()  # one process: no part, nothing for the hook
    assert [path.name for path in read_here] == ["train.jsonl"]  # validated in full

    read_here.clear()
    two = convert("coco", source, tmp_path / "two", masks=False, workers=2)
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert sorted(call["part"] for call in calls) == [".part-train-0", ".part-train-1"]
    assert all(call["pid"] != os.getpid() for call in calls)  # checked where the part was written
    assert all(call["categories"] == ["a", "b"] for call in calls)
    assert read_here == []  # the parts covered the split: it was not read again
    assert two.splits["train"].records == one.splits["train"].records == FORKED_IMAGES
    assert (two.out / "train.jsonl").read_bytes() == (one.out / "train.jsonl").read_bytes()
