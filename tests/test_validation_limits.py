"""The validator and the loader agree: what ``annonorm validate`` calls valid loads, what the loader refuses fails.

The loader keeps a split in numpy arrays (image sides int32, ids and counts int64, coordinates and
areas float32, 8/16-bit mask values): a number they cannot hold is ``number_out_of_range``, and a
mask pixel value that names no box or class is ``mask_value_unknown`` (with ``--check-images``).
"""

from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from test_fastcheck import encode, perturbed_records
from typer.testing import CliRunner

from annonorm.cli import app
from annonorm.dataset import NormalizedDataset
from annonorm.errors import ParseError
from annonorm.imagecheck import mask_values_problem as _mask_values_problem
from annonorm.testing import write_dataset
from annonorm.validation import validate_dataset

runner = CliRunner()
CATEGORIES = ["car", "bike"]


def manifest(root: Path, categories: list[str], keypoints: dict[str, int] | None = None, **extra: Any) -> None:
    """A manifest of version 1, or 2 when some categories have keypoints (``keypoints``: name -> how many)."""
    root.mkdir(parents=True, exist_ok=True)
    entries: list[dict[str, Any]] = [{"id": i, "name": n} for i, n in enumerate(categories)]
    for entry in entries:
        if keypoints and entry["name"] in keypoints:
            entry["keypoints"] = [f"k{i}" for i in range(keypoints[entry["name"]])]
    document = {
        "format": "annonorm",
        "version": 2 if keypoints else 1,
        "name": "t",
        "categories": entries,
        "splits": {"train": "train.jsonl"},
        **extra,
    }
    (root / "annonorm.json").write_text(json.dumps(document))


def raw_dataset(
    root: Path,
    lines: list[bytes],
    categories: list[str] = CATEGORIES,
    keypoints: dict[str, int] | None = None,
    **extra: Any,
) -> Path:
    manifest(root, categories, keypoints, **extra)
    (root / "train.jsonl").write_bytes(b"".join(line.rstrip(b"\n") + b"\n" for line in lines))
    return root


def box(corners: str, extra: str = "") -> str:
    return '{"name": "car", ' + corners + extra + "}"


def record(boxes: str = "", head: str = '"width": 64, "height": 48', image: str = "a.png") -> bytes:
    return ('{"image": "' + image + '", ' + head + (', "boxes": [' + boxes + "]" if boxes else "") + "}").encode()


OUT_OF_RANGE = [
    ("side", record(head='"width": 2147483648, "height": 48'), "width", "int32"),
    ("id", record(head='"width": 64, "height": 48, "id": 9223372036854775808'), "id", "int64"),
    ("negative id", record(head='"width": 64, "height": 48, "id": -9223372036854775809'), "id", "int64"),
    ("count", record(head='"labels": ["car"], "counts": {"car": 9223372036854775808}'), "counts.car", "int64"),
    ("coordinate", record(box('"x1": 0, "y1": 0, "x2": 1e39, "y2": 1')), "boxes.0.x2", "float32"),
    (
        "big integer coordinate",
        record(box('"x1": 0, "y1": 0, "x2": 1' + "0" * 40 + ', "y2": 1')),
        "boxes.0.x2",
        "float32",
    ),
    ("float64 overflow", record(box('"x1": 0, "y1": 0, "x2": 1e400, "y2": 1')), "boxes.0.x2", "beyond float64"),
    ("area", record(box('"x1": 0, "y1": 0, "x2": 2e19, "y2": 3e19'), head='"id": 1'), "boxes.0", "box area"),
    (
        "area attribute",
        record(box('"x1": 0, "y1": 0, "x2": 1, "y2": 1', ', "attributes": {"area": 1' + "0" * 400 + "}")),
        "boxes.0",
        "attributes.area",
    ),
    ("attribute overflow", record(head='"width": 64, "height": 48, "attributes": {"s": [1e400]}'), "attributes", "s.0"),
]


@pytest.mark.parametrize(("case", "line", "key", "said"), OUT_OF_RANGE, ids=[c[0] for c in OUT_OF_RANGE])
def test_numbers_the_loader_cannot_hold_are_number_out_of_range(
    tmp_path: Path, case: str, line: bytes, key: str, said: str
) -> None:
    root = raw_dataset(tmp_path / "ds", [line])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy RuntimeWarning, no other warning
        report = validate_dataset(root)
    assert not report.valid
    (finding,) = report.errors
    assert (finding.code, finding.key, finding.line) == ("number_out_of_range", key, 1), finding
    assert said in finding.message and finding.file == str(root / "train.jsonl")


def test_cli_names_the_place_and_exits_one(tmp_path: Path) -> None:
    root = raw_dataset(tmp_path / "ds", [record(), record(box('"x1": 0, "y1": 0, "x2": 3.5e38, "y2": 1'))])
    result = runner.invoke(app, ["validate", str(root)])
    assert result.exit_code == 1, result.output
    assert f"{root / 'train.jsonl'}:2: boxes.0.x2: error: coordinate 3.5e+38 is beyond float32" in result.output
    assert "[number_out_of_range]" in result.output and "Traceback" not in result.output
    report = json.loads(runner.invoke(app, ["validate", str(root), "--format", "json"]).output)
    assert [f["code"] for f in report["findings"]] == ["number_out_of_range"]


def test_the_largest_values_the_loader_holds_validate_and_load(tmp_path: Path) -> None:
    lines = [
        record(head='"width": 2147483647, "height": 2147483647, "id": 9223372036854775807'),
        record(box('"x1": 0, "y1": 0, "x2": 3.4028234663852886e38, "y2": 1'), '"id": -9223372036854775808', "b"),
        record(box('"x1": 0, "y1": 0, "x2": 1.8e19, "y2": 1.8e19', ', "attributes": {"area": 3e38}'), '"id": 3', "c"),
        record(head='"labels": ["car"], "counts": {"car": 9223372036854775807}, "id": 4', image="d"),
    ]
    root = raw_dataset(tmp_path / "ds", lines)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = validate_dataset(root)
        assert report.valid and {f.code for f in report.findings} == {"size_unknown"}, report.findings
        ds = NormalizedDataset(root, "train", load_images=False, cache=False)
        targets = [ds.target(i) for i in range(len(ds))]
    assert ds.size(0) == (2147483647, 2147483647)
    assert targets[0]["image_id"] == 2**63 - 1 and targets[1]["image_id"] == -(2**63)
    assert all(np.isfinite(t["boxes"]).all() and np.isfinite(t["area"]).all() for t in targets)
    assert targets[3]["counts"] == {"car": 2**63 - 1}


# -------------------------------------------------------------------------------- agreement, as a property


def loader_refuses(root: Path) -> bool:
    """Whether the loader refuses the split (anything it raises); a numpy warning counts as a failure to load."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            ds = NormalizedDataset(root, "train", load_images=False, cache=False)
            for index in range(len(ds)):
                target = ds.target(index)
                if not (np.isfinite(target["boxes"]).all() and np.isfinite(target["area"]).all()):
                    return True
                ds.size(index)
    except Exception:
        return True
    return False


def validator_refuses(root: Path) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            return not validate_dataset(root, check_sources=False).valid
    except ParseError:
        return True


@given(perturbed_records())
def test_valid_means_loadable_and_refused_means_invalid(
    drawn: tuple[list[str], dict[str, Any], dict[str, int]],
) -> None:
    names, drawn_record, keypoints = drawn
    with tempfile.TemporaryDirectory() as tmp:
        root = raw_dataset(Path(tmp) / "ds", [encode(drawn_record)], names, keypoints)
        refused_by_validator = validator_refuses(root)
        refused_by_loader = loader_refuses(root)
    if not refused_by_validator:
        assert not refused_by_loader, f"validate accepts what the loader refuses: {encode(drawn_record)!r}"
    if refused_by_loader:
        assert refused_by_validator


# ------------------------------------------------------------------------------------------------- masks


def save_png(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def mask_dataset(tmp_path: Path, mask: np.ndarray, boxes: int, kind: str, categories: list[str] = CATEGORIES) -> Path:
    height, width = mask.shape
    root = tmp_path / "ds"
    box_list = [
        {"name": categories[0], "x1": 0.0, "y1": 0.0, "x2": float(width), "y2": float(height)} for _ in range(boxes)
    ]
    write_dataset(
        root,
        categories,
        {"train": [{"image": "a.png", "width": width, "height": height, "boxes": box_list, "mask": "masks/a.png"}]},
        mask_kind=kind,
    )
    save_png(root / "a.png", np.zeros((height, width, 3), dtype=np.uint8))
    save_png(root / "masks" / "a.png", mask)
    return root


def mask_findings(root: Path) -> list[Any]:
    return [f for f in validate_dataset(root, check_images=True).findings if f.code == "mask_value_unknown"]


def test_eight_bit_instance_mask_values_name_boxes_or_void(tmp_path: Path) -> None:
    pixels = np.array([[0, 1, 2, 255]] * 4, dtype=np.uint8)
    assert validate_dataset(mask_dataset(tmp_path, pixels, 2, "instance"), check_images=True).valid
    pixels[0, 0] = 7
    (finding,) = mask_findings(mask_dataset(tmp_path / "b", pixels, 2, "instance"))
    assert finding.severity == "error" and finding.line == 1 and finding.key == "mask"
    assert "pixel value 7 names no box: the record has 2 boxes" in finding.message


def test_sixteen_bit_instance_mask_values_beyond_the_boxes_are_refused(tmp_path: Path) -> None:
    pixels = np.zeros((4, 400), dtype=np.uint16)
    pixels[0, :300] = np.arange(1, 301)
    pixels[1, 0] = 65535  # void
    root = mask_dataset(tmp_path, pixels, 300, "instance")
    with Image.open(root / "masks" / "a.png") as written:
        assert written.mode.startswith("I")  # really 16-bit
    report = validate_dataset(root, check_images=True)
    assert report.valid, report.findings
    pixels[2, 5] = 301
    pixels[3, 5:8] = [4000, 4000, 65534]
    (finding,) = mask_findings(mask_dataset(tmp_path / "b", pixels, 300, "instance"))
    assert "pixel values 301, 4000, 65534 name no box: the record has 300 boxes" in finding.message
    assert "65535 void" in finding.message


def test_semantic_mask_values_beyond_the_categories_are_refused(tmp_path: Path) -> None:
    pixels = np.array([[0, 1, 2, 255]] * 3, dtype=np.uint8)
    assert validate_dataset(mask_dataset(tmp_path, pixels, 1, "semantic"), check_images=True).valid
    pixels[1, 1] = 3
    (finding,) = mask_findings(mask_dataset(tmp_path / "b", pixels, 1, "semantic"))
    assert "pixel value 3 names no class: the manifest has 2 categories" in finding.message


def test_mask_values_through_the_cli_only_with_check_images(tmp_path: Path) -> None:
    pixels = np.array([[0, 1, 9]] * 3, dtype=np.uint8)
    root = mask_dataset(tmp_path, pixels, 1, "instance")
    assert runner.invoke(app, ["validate", str(root)]).exit_code == 0
    result = runner.invoke(app, ["validate", str(root), "--check-images"])
    assert result.exit_code == 1, result.output
    assert "[mask_value_unknown]" in result.output and "masks/a.png" in result.output


def test_a_palette_mask_is_checked_by_its_indices(tmp_path: Path) -> None:
    root = mask_dataset(tmp_path, np.array([[0, 1, 2]] * 2, dtype=np.uint8), 1, "semantic")
    paletted = Image.fromarray(np.array([[0, 1, 5]] * 2, dtype=np.uint8)).convert("P")
    paletted.putpalette([0, 0, 0] * 256)
    paletted.save(root / "masks" / "a.png")
    (finding,) = mask_findings(root)
    assert "pixel value 5 names no class" in finding.message


@given(
    st.lists(st.integers(0, 65535), min_size=1, max_size=40),
    st.integers(0, 300),
    st.booleans(),
    st.sampled_from(["instance", "semantic"]),
)
def test_mask_values_problem_names_exactly_the_values_outside_the_rule(
    values: list[int], boxes: int, wide: bool, kind: str
) -> None:
    pixels = np.array([v if wide else v % 256 for v in values], dtype=np.uint16 if wide else np.uint8)
    top, void = (boxes, 65535 if wide else 255) if kind == "instance" else (2, 255)
    unknown = sorted({int(v) for v in pixels.tolist() if v > top and v != void})
    problem = _mask_values_problem(pixels.reshape(1, -1), kind, boxes, 2, wide)
    assert (problem is None) == (not unknown)
    if unknown:
        assert ", ".join(map(str, unknown[:5])) in problem  # type: ignore[operator]
