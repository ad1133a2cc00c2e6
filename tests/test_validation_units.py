"""``boxes_look_normalized``: a split whose boxes are fractions (0..1) or percentages (0..100), not pixels."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from annonorm.cli import app
from annonorm.engine import Execution
from annonorm.testing import write_dataset
from annonorm.validation import validate_dataset

runner = CliRunner()
CODE = "boxes_look_normalized"


def box(x1: float, y1: float, x2: float, y2: float) -> dict[str, Any]:
    return {"name": "car", "x1": x1, "y1": y1, "x2": x2, "y2": y2}


def records(count: int, corners: tuple[float, float, float, float], size: tuple[int, int] = (640, 480)) -> list:
    width, height = size
    return [
        {"image": f"{i}.jpg", "width": width, "height": height, "boxes": [box(*corners)], "id": i} for i in range(count)
    ]


def make(tmp_path: Path, split_records: list[dict[str, Any]], name: str = "ds") -> Path:
    return write_dataset(tmp_path / name, ["car"], {"train": split_records})


def unit_findings(root: Path, **options: Any) -> list[Any]:
    return [f for f in validate_dataset(root, **options).findings if f.code == CODE]


# ------------------------------------------------------------------------------------------- command line


def test_normalized_boxes_warn_through_the_cli_and_exit_zero(tmp_path: Path) -> None:
    root = make(tmp_path, records(5, (0.1, 0.2, 0.5, 0.9)))
    result = runner.invoke(app, ["validate", str(root)])
    assert result.exit_code == 0, result.output
    assert str(root / "train.jsonl") in result.output
    assert "boxes are absolute pixels; these look normalized (0..1)" in result.output
    assert "normalized option" in result.output and "--normalized" in result.output
    assert f"[{CODE}]" in result.output
    assert "1 warnings" in result.output


def test_normalized_boxes_are_an_error_with_strict(tmp_path: Path) -> None:
    root = make(tmp_path, records(5, (0.1, 0.2, 0.5, 0.9)))
    result = runner.invoke(app, ["validate", str(root), "--strict"])
    assert result.exit_code == 1, result.output
    assert "error: all 5 boxes lie within 0..1" in result.output and CODE in result.output


def test_json_report_carries_the_code(tmp_path: Path) -> None:
    root = make(tmp_path, records(7, (0.0, 0.0, 1.0, 1.0)))
    result = runner.invoke(app, ["validate", str(root), "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    (finding,) = [f for f in report["findings"] if f["code"] == CODE]
    assert finding["severity"] == "warning"
    assert finding["file"] == str(root / "train.jsonl")
    assert finding["key"] == "boxes"
    assert report["valid"] is True and report["warnings"] == 1


def test_percent_boxes_warn_when_the_images_are_four_times_larger(tmp_path: Path) -> None:
    root = make(tmp_path, records(6, (10.0, 20.0, 55.5, 99.0), size=(1024, 768)))
    result = runner.invoke(app, ["validate", str(root)])
    assert result.exit_code == 0, result.output
    assert "these look like percentages of the image side (0..100)" in result.output
    assert "every image is at least 768 px on each side" in result.output


# ------------------------------------------------------------------------------------------- edge cases


def test_four_boxes_are_too_few_to_judge(tmp_path: Path) -> None:
    assert unit_findings(make(tmp_path, records(4, (0.1, 0.1, 0.5, 0.5)))) == []


def test_five_boxes_over_several_records_are_enough(tmp_path: Path) -> None:
    split = records(2, (0.1, 0.1, 0.5, 0.5))
    split[0]["boxes"] = [box(0.1, 0.1, 0.2, 0.2)] * 4  # 4 + 1 boxes
    split[0]["counts"] = {"car": 4}
    split.append({"image": "empty.jpg", "width": 640, "height": 480, "id": 99})
    assert len(unit_findings(make(tmp_path, split))) == 1


def test_one_box_beyond_one_is_pixels(tmp_path: Path) -> None:
    split = records(9, (0.1, 0.1, 0.5, 0.5))
    split[4]["boxes"] = [box(0.1, 0.1, 1.5, 0.5)]
    assert unit_findings(make(tmp_path, split)) == []


def test_small_images_hold_boxes_within_one_legitimately(tmp_path: Path) -> None:
    assert unit_findings(make(tmp_path, records(10, (0.0, 0.0, 1.0, 1.0), size=(20, 20)))) == []


def test_one_small_image_among_large_ones_is_enough_to_not_judge(tmp_path: Path) -> None:
    split = records(10, (0.1, 0.1, 0.9, 0.9))
    split[3]["width"] = 31
    assert unit_findings(make(tmp_path, split)) == []


def test_images_of_exactly_32_px_are_judged(tmp_path: Path) -> None:
    assert len(unit_findings(make(tmp_path, records(5, (0.1, 0.1, 0.9, 0.9), size=(32, 32))))) == 1


def test_percent_needs_images_at_least_400_px_a_side(tmp_path: Path) -> None:
    assert unit_findings(make(tmp_path, records(8, (1.0, 1.0, 90.0, 90.0), size=(399, 1000)))) == []
    assert len(unit_findings(make(tmp_path, records(8, (1.0, 1.0, 90.0, 90.0), size=(400, 400)), "b"))) == 1


def test_boxes_between_one_and_ten_fit_neither_reading(tmp_path: Path) -> None:
    assert unit_findings(make(tmp_path, records(8, (1.0, 1.0, 9.5, 10.0), size=(1000, 1000)))) == []


def test_boxes_beyond_one_hundred_are_pixels(tmp_path: Path) -> None:
    split = records(8, (1.0, 1.0, 90.0, 90.0), size=(1000, 1000))
    split[-1]["boxes"] = [box(1.0, 1.0, 100.5, 50.0)]
    assert unit_findings(make(tmp_path, split)) == []


def test_unknown_image_sizes_are_not_judged(tmp_path: Path) -> None:
    split = [{"image": f"{i}.jpg", "boxes": [box(0.1, 0.1, 0.5, 0.5)]} for i in range(10)]
    assert unit_findings(make(tmp_path, split)) == []


def test_boxes_all_empty_at_the_origin_are_not_called_normalized(tmp_path: Path) -> None:
    assert unit_findings(make(tmp_path, records(6, (0.0, 0.0, 0.0, 0.0)))) == []


def test_each_split_is_judged_alone(tmp_path: Path) -> None:
    pixels = records(6, (10.0, 10.0, 200.0, 200.0))
    fractions = records(6, (0.1, 0.1, 0.2, 0.2))
    root = write_dataset(tmp_path / "ds", ["car"], {"train": pixels, "val": fractions})
    (finding,) = unit_findings(root)
    assert finding.file == str(root / "val.jsonl")


def test_a_bare_split_file_is_judged(tmp_path: Path) -> None:
    root = make(tmp_path, records(5, (0.1, 0.1, 0.2, 0.2)))
    assert len(unit_findings(root / "train.jsonl")) == 1


def test_byte_ranges_checked_by_several_processes_judge_the_whole_split(tmp_path: Path, monkeypatch: Any) -> None:
    two = Execution(workers=2, min_parallel=1)
    split = records(40, (0.1, 0.1, 0.2, 0.2))
    root = make(tmp_path, split)
    assert len(unit_findings(root, execution=two)) == 1
    split[37]["boxes"] = [box(0.1, 0.1, 300.0, 0.2)]  # in the second range
    assert unit_findings(make(tmp_path, split, "b"), execution=two) == []


@given(
    count=st.integers(0, 12),
    top=st.one_of(st.floats(0.001, 150.0, allow_nan=False), st.sampled_from([1.0, 1.000001, 10.0, 10.5, 100.0])),
    side=st.integers(1, 1200),
)
def test_the_rule_fires_exactly_when_its_conditions_hold(count: int, top: float, side: int) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        root = make(Path(tmp), records(count, (0.0, 0.0, top, top / 2), size=(side, side + 7)))
        found = unit_findings(root)
    rounded = round(top, 6)
    expected = count >= 5 and ((rounded <= 1 and side >= 32) or (10 < rounded <= 100 and side >= 400))
    assert bool(found) == expected
