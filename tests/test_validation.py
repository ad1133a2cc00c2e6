"""annonorm validate: every problem reported with file, line and key; exit codes; image checks."""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from annonorm.engine import Execution
from annonorm.errors import ParseError
from annonorm.testing import write_dataset
from annonorm.validation import validate_dataset

CATEGORIES = ["car", "bike"]


def good_record(index: int, **changes: Any) -> dict[str, Any]:
    record = {
        "image": f"img_{index:04d}.png",
        "width": 40,
        "height": 30,
        "labels": ["car"],
        "counts": {"car": 1},
        "boxes": [{"name": "car", "x1": 1.0, "y1": 2.0, "x2": 11.0, "y2": 12.0}],
        "id": index,
    }
    record.update(changes)
    return record


def dataset(tmp_path: Path, records: list[dict[str, Any]], **kwargs: Any) -> Path:
    return write_dataset(tmp_path / "ds", CATEGORIES, {"train": records}, **kwargs)


def codes(report: Any) -> list[str]:
    return [f.code for f in report.findings]


def test_valid_dataset_has_no_findings(tmp_path: Path) -> None:
    report = validate_dataset(dataset(tmp_path, [good_record(i) for i in range(20)]))
    assert report.valid and report.findings == []
    assert report.splits["train"].records == 20
    assert report.splits["train"].boxes == 20


def test_one_broken_line_among_a_thousand_is_reported_exactly(tmp_path: Path) -> None:
    root = dataset(tmp_path, [good_record(i) for i in range(1000)])
    split = root / "train.jsonl"
    lines = split.read_bytes().splitlines(keepends=True)
    broken = json.loads(lines[636])
    broken["boxes"][0]["x2"] = 0.5  # now x2 < x1
    lines[636] = json.dumps(broken).encode() + b"\n"
    split.write_bytes(b"".join(lines))
    report = validate_dataset(root)
    assert not report.valid
    assert [(f.line, f.key, f.code) for f in report.errors] == [(637, "boxes.0", "record_invalid")]
    assert "x2 (0.5) is smaller than x1 (1.0)" in report.errors[0].message
    assert report.errors[0].file == str(split)


def test_every_problem_is_reported_not_just_the_first(tmp_path: Path) -> None:
    records = [
        good_record(0, boxes=[{"name": "dog", "x1": 0, "y1": 0, "x2": 1, "y2": 1}], labels=["dog"]),
        good_record(1, width=-1),
        good_record(2, colour="red"),
        good_record(3),
        good_record(4, image="img_0003.png"),
        good_record(5, id=3),
    ]
    root = dataset(tmp_path, [good_record(9)])
    (root / "train.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n{not json\n")
    report = validate_dataset(root)
    found = {(f.line, f.code) for f in report.errors}
    assert {(2, "record_invalid"), (3, "record_invalid"), (5, "duplicate_image"), (6, "duplicate_id")} <= found
    assert (7, "json_invalid") in found
    assert any(f.line == 1 and "'dog' is not a category" in f.message for f in report.errors)


def test_boxes_leaving_the_image_are_warnings_or_errors_with_strict(tmp_path: Path) -> None:
    outside = good_record(0, boxes=[{"name": "car", "x1": 30, "y1": 2, "x2": 45, "y2": 12}])
    root = dataset(tmp_path, [outside])
    report = validate_dataset(root)
    assert report.valid and codes(report) == ["box_outside_image"]
    assert report.warnings[0].key == "boxes.0"
    strict = validate_dataset(root, strict=True)
    assert not strict.valid and [f.code for f in strict.errors] == ["box_outside_image"]


def test_unknown_size_is_a_warning(tmp_path: Path) -> None:
    record = good_record(0)
    del record["width"], record["height"]
    report = validate_dataset(dataset(tmp_path, [record]))
    assert report.valid and codes(report) == ["size_unknown"]


@pytest.mark.parametrize(
    "content",
    [b"", b"\x00\x01\x02\xff\xfe binary", b'{"image": "a.jpg", "boxes": [{"na', b"[1, 2, 3]\n"],
    ids=["empty", "binary", "truncated", "wrong-shape"],
)
def test_garbage_manifest_is_unreadable(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "annonorm.json").write_bytes(content)
    with pytest.raises(ParseError):
        validate_dataset(tmp_path)


@pytest.mark.parametrize("content", [b"\x00\x01\xff\xfe\n\x89PNG\n", b'{"image": "a.jpg", "bo'])
def test_garbage_split_file_is_unreadable(tmp_path: Path, content: bytes) -> None:
    root = dataset(tmp_path, [good_record(0)])
    (root / "train.jsonl").write_bytes(content)
    with pytest.raises(ParseError, match="no line of this split file is a JSON object"):
        validate_dataset(root)


def test_missing_split_file_is_unreadable(tmp_path: Path) -> None:
    root = dataset(tmp_path, [good_record(0)])
    (root / "train.jsonl").unlink()
    with pytest.raises(ParseError, match="split file is missing"):
        validate_dataset(root)


def test_bare_jsonl_split_can_be_validated(tmp_path: Path) -> None:
    split = tmp_path / "records.jsonl"
    split.write_text(json.dumps({"image": "a.jpg", "labels": "zebra", "counts": [{"zebra": 4}]}) + "\n")
    report = validate_dataset(split)
    assert report.valid and report.splits["split"].records == 1


def test_manifest_rule_breaks_are_findings(tmp_path: Path) -> None:
    root = dataset(tmp_path, [good_record(0)])
    manifest = json.loads((root / "annonorm.json").read_text())
    manifest["categories"][1]["name"] = "car"
    (root / "annonorm.json").write_text(json.dumps(manifest))
    report = validate_dataset(root)
    assert codes(report) == ["manifest_invalid"]
    assert "repeats the name 'car'" in report.errors[0].message


# ---------------------------------------------------------------------------------------- --check-images


def write_image(path: Path, size: tuple[int, int], mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size).save(path)


def test_check_images_finds_missing_corrupt_and_wrong_size(tmp_path: Path) -> None:
    images = tmp_path / "images"
    write_image(images / "img_0000.png", (40, 30))
    write_image(images / "img_0001.png", (41, 30))
    (images / "img_0002.png").write_bytes(b"not a png at all")
    (images / "img_0003.png").write_bytes(b"")
    root = dataset(tmp_path, [good_record(i) for i in range(5)], image_root="../images")
    assert validate_dataset(root).valid  # without --check-images nothing is opened
    report = validate_dataset(root, check_images=True)
    assert [(f.line, f.code) for f in report.errors] == [
        (2, "image_size_mismatch"),
        (3, "image_unreadable"),
        (4, "image_unreadable"),
        (5, "image_missing"),
    ]
    assert "41x30 but the record says 40x30" in report.errors[0].message


def test_check_images_refuses_symlinks_out_of_the_image_root(tmp_path: Path) -> None:
    outside = tmp_path / "secret.png"
    write_image(outside, (40, 30))
    images = tmp_path / "images"
    images.mkdir()
    (images / "img_0000.png").symlink_to(outside)
    root = dataset(tmp_path, [good_record(0)], image_root="../images")
    assert codes(validate_dataset(root, check_images=True)) == ["image_outside_root"]


def test_check_images_checks_masks(tmp_path: Path) -> None:
    images = tmp_path / "images"
    for i in range(4):
        write_image(images / f"img_{i:04d}.png", (40, 30))
    root = tmp_path / "ds"
    (root / "masks").mkdir(parents=True)
    Image.fromarray(np.zeros((30, 40), np.uint8)).save(root / "masks" / "ok.png")
    Image.fromarray(np.zeros((31, 40), np.uint8)).save(root / "masks" / "small.png")
    Image.fromarray(np.zeros((30, 40), np.uint16)).save(root / "masks" / "wide.png")
    records = [
        good_record(0, mask="masks/ok.png"),
        good_record(1, mask="masks/small.png"),
        good_record(2, mask="masks/wide.png"),
        good_record(3, mask="masks/none.png"),
    ]
    write_dataset(root, CATEGORIES, {"train": records}, image_root="../images", mask_kind="instance")
    report = validate_dataset(root, check_images=True)
    assert [(f.line, f.code) for f in report.errors] == [
        (2, "mask_size_mismatch"),
        (3, "mask_depth"),
        (4, "mask_missing"),
    ]
    assert "16-bit mask where 8-bit is expected" in report.errors[1].message


def test_mask_without_mask_kind_is_an_error(tmp_path: Path) -> None:
    report = validate_dataset(dataset(tmp_path, [good_record(0, mask="masks/a.png")]))
    assert codes(report) == ["mask_kind_missing"]


def test_validate_says_when_the_dataset_is_stale_against_its_sources(tmp_path: Path) -> None:
    from annonorm.api import convert

    source = tmp_path / "instances_val.json"
    coco = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}],
        "categories": [{"id": 1, "name": "car"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 2], "iscrowd": 0}],
    }
    source.write_text(json.dumps(coco))
    out = convert("coco", source, tmp_path / "out").out
    assert validate_dataset(out).findings == []
    coco["annotations"][0]["bbox"] = [1, 1, 3, 3]
    source.write_text(json.dumps(coco))
    stale = validate_dataset(out)
    assert [(f.code, f.key) for f in stale.findings] == [("source_changed", "source.files.0")]
    assert not validate_dataset(out, strict=True).valid
    source.unlink()
    assert [f.code for f in validate_dataset(out).findings] == ["source_missing"]


def test_parallel_byte_ranges_report_exactly_what_one_process_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    records = [good_record(i) for i in range(400)]
    records[10]["boxes"][0]["x2"] = 0.5  # invalid record early
    records[390]["image"] = records[5]["image"]  # duplicate image across byte ranges
    records[391]["id"] = 7  # duplicate id across byte ranges
    records[200]["boxes"][0]["x2"] = 45.0  # a warning in the middle
    root = dataset(tmp_path, [records[0]])
    lines = [json.dumps(r) for r in records]
    lines.insert(300, "")  # a blank line shifts every later line number by one
    lines.insert(150, "{broken json")
    (root / "train.jsonl").write_text("\n".join(lines) + "\n")
    sequential = validate_dataset(root, workers=1)
    for workers in (2, 3, 7):
        parallel = validate_dataset(root, execution=Execution(workers=workers, min_parallel=0))
        assert parallel.findings == sequential.findings
        assert parallel.splits == sequential.splits
    # Spawned workers do not share the parent's hash secret: keys must then be process-stable.
    spawned = Execution(workers=2, min_parallel=0, start="spawn")
    assert validate_dataset(root, execution=spawned).findings == sequential.findings
    found = [(f.line, f.code) for f in sequential.findings]
    assert found == [
        (11, "record_invalid"),
        (151, "json_invalid"),
        (202, "box_outside_image"),
        (393, "duplicate_image"),
        (394, "duplicate_id"),
    ]


def _write_checked_parts(root: Path, lines: list[str], cuts: list[int]) -> list[Any]:
    """The split as consecutive part files, each checked as a converter's process checks what it wrote."""
    from annonorm.validation import check_part

    parts = []
    for number, (start, stop) in enumerate(itertools.pairwise([0, *cuts, len(lines)])):
        part = root / f".part-{number}.jsonl"
        part.write_text("".join(line + "\n" for line in lines[start:stop]))
        parts.append(check_part(part, CATEGORIES, masks=0))
    return parts


def test_parts_checked_by_their_writers_report_exactly_what_a_full_check_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import annonorm.validation as validation

    records = [good_record(i) for i in range(300)]
    records[20]["boxes"][0]["x2"] = 0.5  # invalid in the first part
    records[250]["image"] = records[5]["image"]  # duplicate image across parts
    records[150]["boxes"][0]["x2"] = 45.0  # a warning in the second part
    root = dataset(tmp_path, [records[0]])
    lines = [json.dumps(r) for r in records]
    parts = _write_checked_parts(root, lines, [100, 200])
    (root / "train.jsonl").write_text("".join(line + "\n" for line in lines))
    full = validate_dataset(root, workers=1, check_sources=False)

    rechecked: list[Any] = []
    check_chunk = validation._check_chunk

    def counting(chunk: Any) -> Any:
        rechecked.append(chunk)
        return check_chunk(chunk)

    monkeypatch.setattr(validation, "_check_chunk", counting)
    from_parts = validate_dataset(root, workers=1, check_sources=False, checked={"train": parts})
    assert rechecked == []  # the split was not read again
    assert from_parts.findings == full.findings
    assert from_parts.splits == full.splits
    assert {f.file for f in from_parts.findings} == {str(root / "train.jsonl")}
    assert [(f.line, f.code) for f in full.findings] == [
        (21, "record_invalid"),
        (151, "box_outside_image"),
        (251, "duplicate_image"),
    ]


def test_parts_that_do_not_cover_the_split_exactly_are_not_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import annonorm.validation as validation

    records = [good_record(i) for i in range(50)]
    root = dataset(tmp_path, [records[0]])
    lines = [json.dumps(r) for r in records]
    parts = _write_checked_parts(root, lines, [25])
    rechecked: list[Any] = []
    check_chunk = validation._check_chunk

    def counting(chunk: Any) -> Any:
        rechecked.append(chunk)
        return check_chunk(chunk)

    monkeypatch.setattr(validation, "_check_chunk", counting)
    broken = good_record(99)
    broken["boxes"][0]["x2"] = 0.5
    (root / "train.jsonl").write_text("".join(line + "\n" for line in [*lines, json.dumps(broken)]))
    report = validate_dataset(root, check_sources=False, checked={"train": parts})
    assert [(f.line, f.code) for f in report.findings] == [(51, "record_invalid")]
    assert len(rechecked) == 1
    (root / "train.jsonl").write_text("".join(line + "\n" for line in lines))
    other_names = [dataclasses.replace(part, categories=("car",)) for part in parts]
    with_masks = [dataclasses.replace(part, masks=1) for part in parts]
    for checked, strict in ((other_names, False), (with_masks, False), (parts, True)):
        rechecked.clear()
        report = validate_dataset(root, strict=strict, check_sources=False, checked={"train": checked})
        assert report.valid and report.splits["train"].records == 50
        assert len(rechecked) == 1
