"""The CSV converter: third-party CSV files, round trips, pure mappings, dialects and bad input."""

from __future__ import annotations

import csv
import json
import math
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from peer import PEER_DATA

from annonorm.api import convert, export
from annonorm.converters import ReadContext
from annonorm.converters.base import make_record
from annonorm.converters.csvtable import (
    CsvConverter,
    bbox_cell_to_values,
    csv_box_to_corners,
    read_csv,
    record_to_csv_rows,
    sniff_delimiter,
)
from annonorm.engine import Execution, LocalExecutor
from annonorm.errors import AnnonormError, InvalidDataError, ParseError, UnsafePathError, UsageError
from annonorm.io import DatasetWriter, open_dataset
from annonorm.sources.tabular import Strategy, TableStream
from annonorm.testing import datasets, write_dataset
from annonorm.validation import validate_dataset

assert PEER_DATA is not None  # peer.py types its fallback as optional
PEER = PEER_DATA
KAGGLE = PEER / "kaggle_dataset"
OPEN_IMAGES = PEER / "open_images_dataset"
SAMPLE = Path(__file__).resolve().parents[2] / "sample_data" / "csv"

# ---------------------------------------------------------------------------------------------- helpers

Expected = dict[tuple[str, str], Any]  # (split, image stem) -> Counter of box names, or a set of labels


def stdlib_rows(path: Path, **fmt: Any) -> list[list[str]]:
    """Rows of a CSV file read with nothing but the standard library (cells stripped, blank rows dropped)."""
    with path.open(encoding="utf-8-sig", newline="") as stream:
        return [[c.strip() for c in row] for row in csv.reader(stream, **fmt) if any(row)]


def boxes_by_image(
    rows: list[list[str]], image: int, label: int | None, split: str = "train", keep: Callable[[list[str]], bool] = bool
) -> Expected:
    """Box names per image, one box per row."""
    expected: dict[tuple[str, str], Counter[str]] = {}
    for row in rows:
        counter = expected.setdefault((split, PurePosixPath(row[image]).stem), Counter())
        if keep(row):
            counter[row[label] if label is not None else "object"] += 1
    return dict(expected)


def labels_by_image(rows: list[list[str]], image: int, labels: Callable[[list[str]], set[str]], split: str) -> Expected:
    """Label sets per image, rows of one image merged."""
    expected: dict[tuple[str, str], set[str]] = {}
    for row in rows:
        expected.setdefault((split, PurePosixPath(row[image]).stem), set()).update(labels(row))
    return dict(expected)


def onehot(header: list[str], first: int) -> Callable[[list[str]], set[str]]:
    return lambda row: {header[i] for i in range(first, len(header)) if row[i] == "1"}


def open_images_names() -> dict[str, str]:
    return dict(stdlib_rows(OPEN_IMAGES / "v6/annotations/oidv6-class-descriptions.csv")[1:])


def actual(out: Path, kind: str) -> Expected:
    """What the converted dataset says, in the same shape as the expectation."""
    dataset = open_dataset(out)
    got: Expected = {}
    for split in dataset.manifest.splits:
        for record in dataset.records(split):
            key = (split, PurePosixPath(record["image"]).stem)
            assert key not in got, f"image {key} converted twice"
            if kind == "boxes":
                got[key] = Counter(box["name"] for box in record["boxes"])
            else:
                got[key] = set(record["labels"])
    return got


@dataclass
class Case:
    source: Path
    images: Path | None
    options: dict[str, Any]
    kind: str  # "boxes" or "labels"
    expected: Callable[[], Expected]
    check_images: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def _kaggle_det(name: str, **fmt: Any) -> Callable[[], Expected]:
    def expected() -> Expected:
        rows = stdlib_rows(KAGGLE / name, **fmt)
        return boxes_by_image(rows[1:] if "csv_det" in name else rows, 0, 1)

    return expected


def _vott(*files: Path) -> Callable[[], Expected]:
    def expected() -> Expected:
        out: Expected = {}
        for file in files:
            out.update(boxes_by_image(stdlib_rows(file)[1:], 0, 5, split=file.stem.split("-")[0]))
        return out

    return expected


def _open_images_boxes(name: str, split: str) -> Callable[[], Expected]:
    def expected() -> Expected:
        names = open_images_names()
        rows = stdlib_rows(OPEN_IMAGES / "v6/annotations" / name)
        header = rows[0]
        counted: Expected = {}
        for row in rows[1:]:
            cell = dict(zip(header, row, strict=True))
            counter = counted.setdefault((split, cell["ImageID"]), Counter())
            if float(cell.get("Confidence", "1")) > 0:
                counter[names.get(cell["LabelName"], cell["LabelName"])] += 1
        return counted

    return expected


def _open_images_labels(name: str, split: str) -> Callable[[], Expected]:
    def expected() -> Expected:
        names = open_images_names()
        rows = stdlib_rows(OPEN_IMAGES / "v6/annotations" / name)
        return labels_by_image(rows[1:], 0, lambda row: {names[row[2]]} if float(row[3]) > 0 else set(), split=split)

    return expected


def _image_list(path: Path) -> Callable[[], Expected]:
    def expected() -> Expected:
        rows = stdlib_rows(path)
        return {(row[1], row[0]): set() for row in rows[1:]}

    return expected


def _roboflow(split: str) -> Callable[[], Expected]:
    def expected() -> Expected:
        rows = stdlib_rows(PEER / f"roboflow_dataset/multiclass/{split}/_classes.csv", skipinitialspace=True)
        return labels_by_image(rows[1:], 0, onehot(rows[0], 1), split=split)

    return expected


def _kaggle_cls(path: Path, **fmt: Any) -> Callable[[], Expected]:
    def expected() -> Expected:
        rows = stdlib_rows(path, **fmt)
        body = rows[1:] if path.suffix == ".csv" else rows
        if len(rows[0]) > 2:
            return labels_by_image(body, 0, onehot(rows[0], 1), "train")
        return labels_by_image(body, 0, lambda row: {row[1]}, "train")

    return expected


OI_CLASSES = OPEN_IMAGES / "v6/annotations/oidv6-class-descriptions.csv"
OI_IMAGES = OPEN_IMAGES / "v6/images"

CASES: dict[str, Case] = {
    "image_csv": Case(
        KAGGLE / "image_csv/ann.csv",
        KAGGLE / "image_csv/images",
        {"preset": "kaggle-cls"},
        "labels",
        _kaggle_cls(KAGGLE / "image_csv/ann.csv"),
    ),
    "image_csv_wo_ext": Case(
        KAGGLE / "image_csv/ann_wo_ext.csv",
        KAGGLE / "image_csv/images",
        {"preset": "kaggle-cls"},
        "labels",
        _kaggle_cls(KAGGLE / "image_csv/ann_wo_ext.csv"),
    ),
    "image_csv_multi_label": Case(
        KAGGLE / "image_csv_multi_label/ann.csv",
        KAGGLE / "image_csv_multi_label/images",
        {"preset": "kaggle-cls"},
        "labels",
        _kaggle_cls(KAGGLE / "image_csv_multi_label/ann.csv"),
    ),
    "image_csv_multi_label_wo_ext": Case(
        KAGGLE / "image_csv_multi_label/ann_wo_ext.csv",
        KAGGLE / "image_csv_multi_label/images",
        {"column": ["image=image_name"], "label_columns": ["dog", "cat", "person"]},
        "labels",
        _kaggle_cls(KAGGLE / "image_csv_multi_label/ann_wo_ext.csv"),
    ),
    "image_csv_det_xyxy": Case(
        KAGGLE / "image_csv_det/ann.csv",
        KAGGLE / "image_csv_det/images",
        {"preset": "kaggle-det"},
        "boxes",
        _kaggle_det("image_csv_det/ann.csv"),
    ),
    "image_csv_det_xywh": Case(
        KAGGLE / "image_csv_det/ann2.csv",
        KAGGLE / "image_csv_det/images",
        {"preset": "kaggle-det"},
        "boxes",
        _kaggle_det("image_csv_det/ann2.csv"),
    ),
    "image_csv_det_bbox_cell": Case(
        KAGGLE / "image_csv_det/ann3.csv",
        KAGGLE / "image_csv_det/images",
        {"preset": "kaggle-det"},
        "boxes",
        _kaggle_det("image_csv_det/ann3.csv"),
    ),
    "image_txt": Case(
        KAGGLE / "image_txt/ann.txt",
        KAGGLE / "image_txt/images",
        {"preset": "kaggle-cls"},
        "labels",
        _kaggle_cls(KAGGLE / "image_txt/ann.txt", delimiter=" "),
    ),
    "image_txt_wo_ext": Case(
        KAGGLE / "image_txt/ann_wo_ext.txt",
        KAGGLE / "image_txt/images",
        {"column": ["image=0", "label=1"], "delimiter": " ", "header": "no"},
        "labels",
        _kaggle_cls(KAGGLE / "image_txt/ann_wo_ext.txt", delimiter=" "),
    ),
    "image_txt_det": Case(
        KAGGLE / "image_txt_det/ann.txt",
        KAGGLE / "image_txt_det/images",
        {"preset": "kaggle-det"},
        "boxes",
        _kaggle_det("image_txt_det/ann.txt"),
    ),
    "image_txt_det_single_class": Case(
        KAGGLE / "image_txt_det/ann_single_obj.txt",
        KAGGLE / "image_txt_det/images",
        {"column": ["image=0", "x=1", "y=2", "w=3", "h=4"]},
        "boxes",
        lambda: boxes_by_image(stdlib_rows(KAGGLE / "image_txt_det/ann_single_obj.txt"), 0, None),
    ),
    "vott_directory": Case(
        PEER / "vott_csv_dataset/dataset",
        None,
        {"preset": "vott"},
        "boxes",
        _vott(*sorted((PEER / "vott_csv_dataset/dataset").glob("*.csv"))),
    ),
    "vott_with_meta_file": Case(
        PEER / "vott_csv_dataset/dataset_with_meta_file/test-export.csv",
        None,
        {"preset": "vott", "classes": PEER / "vott_csv_dataset/dataset_with_meta_file/dataset_meta.json"},
        "boxes",
        _vott(PEER / "vott_csv_dataset/dataset_with_meta_file/test-export.csv"),
    ),
    "roboflow_multiclass_train": Case(
        PEER / "roboflow_dataset/multiclass/train/_classes.csv",
        None,
        {"preset": "roboflow-multiclass", "split": "train"},
        "labels",
        _roboflow("train"),
    ),
    "roboflow_multiclass_val": Case(
        PEER / "roboflow_dataset/multiclass/val/_classes.csv",
        None,
        {"preset": "roboflow-multiclass", "split": "val"},
        "labels",
        _roboflow("val"),
    ),
    "open_images_v6_train_boxes": Case(
        OPEN_IMAGES / "v6/annotations/oidv6-train-annotations-bbox.csv",
        OI_IMAGES,
        {"preset": "open-images", "classes": OI_CLASSES},
        "boxes",
        _open_images_boxes("oidv6-train-annotations-bbox.csv", "train"),
    ),
    "open_images_v6_test_boxes": Case(
        OPEN_IMAGES / "v6/annotations/test-annotations-bbox.csv",
        OI_IMAGES,
        {"preset": "open-images", "classes": OI_CLASSES},
        "boxes",
        _open_images_boxes("test-annotations-bbox.csv", "test"),
    ),
    "open_images_v6_segmentation_boxes": Case(
        OPEN_IMAGES / "v6/annotations/train-annotations-object-segmentation.csv",
        OI_IMAGES,
        {"preset": "open-images", "classes": OI_CLASSES},
        "boxes",
        _open_images_boxes("train-annotations-object-segmentation.csv", "train"),
    ),
    "open_images_v6_train_labels": Case(
        OPEN_IMAGES / "v6/annotations/oidv6-train-annotations-human-imagelabels.csv",
        OI_IMAGES,
        {"preset": "open-images", "classes": OI_CLASSES},
        "labels",
        _open_images_labels("oidv6-train-annotations-human-imagelabels.csv", "train"),
    ),
    "open_images_v6_test_labels": Case(
        OPEN_IMAGES / "v6/annotations/test-annotations-human-imagelabels.csv",
        OI_IMAGES,
        {"preset": "open-images", "classes": OI_CLASSES},
        "labels",
        _open_images_labels("test-annotations-human-imagelabels.csv", "test"),
    ),
    "open_images_v6_image_list": Case(
        OPEN_IMAGES / "v6/annotations/image_ids_and_rotation.csv",
        OI_IMAGES,
        # The peer file's last row has 11 cells for 12 columns (a missing License cell).
        {"preset": "open-images", "short_rows": "pad"},
        "labels",
        _image_list(OPEN_IMAGES / "v6/annotations/image_ids_and_rotation.csv"),
    ),
    "open_images_v5_train_list": Case(
        OPEN_IMAGES / "v5/annotations/train-images-with-labels-with-rotation.csv",
        OPEN_IMAGES / "v5/images",
        {"preset": "open-images", "classes": OPEN_IMAGES / "v5/annotations/class-descriptions.csv"},
        "labels",
        _image_list(OPEN_IMAGES / "v5/annotations/train-images-with-labels-with-rotation.csv"),
    ),
    "open_images_v5_test_list": Case(
        OPEN_IMAGES / "v5/annotations/test-images-with-rotation.csv",
        OPEN_IMAGES / "v5/images",
        {"preset": "open-images"},
        "labels",
        _image_list(OPEN_IMAGES / "v5/annotations/test-images-with-rotation.csv"),
    ),
}


def test_every_peer_csv_file_has_a_case() -> None:
    covered = {c.source for c in CASES.values()} | {
        f for c in CASES.values() if c.source.is_dir() for f in c.source.glob("*.csv")
    }
    peer_tables = [
        p
        for folder in (KAGGLE, PEER / "vott_csv_dataset", PEER / "roboflow_dataset/multiclass", OPEN_IMAGES)
        for p in folder.rglob("*")
        if p.suffix in (".csv", ".txt") and "class-descriptions" not in p.name
    ]
    assert peer_tables
    assert sorted(set(peer_tables) - covered) == []


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_peer_csv_converts_with_the_source_boxes_and_labels(case_id: str, tmp_path: Path) -> None:
    case = CASES[case_id]
    out = tmp_path / "out"
    convert("csv", case.source, out, images=case.images, **case.options)
    report = validate_dataset(out, check_images=case.check_images)
    assert report.errors == []
    assert actual(out, case.kind) == case.expected()


def test_peer_open_images_boxes_are_scaled_by_the_image_size(tmp_path: Path) -> None:
    convert(
        "csv",
        OPEN_IMAGES / "v6/annotations/oidv6-train-annotations-bbox.csv",
        tmp_path / "out",
        images=OI_IMAGES,
        preset="open-images",
    )
    (record,) = list(open_dataset(tmp_path / "out").records("train"))
    # b.jpg is 8x2; the row says XMin .2, XMax 1, YMin .3, YMax .5 (fractions, x by width, y by height).
    assert (record["width"], record["height"]) == (8, 2)
    box = record["boxes"][0]
    assert [box["x1"], box["y1"], box["x2"], box["y2"]] == pytest.approx([1.6, 0.6, 8.0, 1.0])
    assert box["name"] == "/m/0"  # without --classes the code is the name


def test_peer_classes_file_fixes_category_order_and_source_ids(tmp_path: Path) -> None:
    convert(
        "csv",
        OPEN_IMAGES / "v6/annotations/test-annotations-bbox.csv",
        tmp_path / "out",
        images=OI_IMAGES,
        preset="open-images",
        classes=OI_CLASSES,
    )
    manifest = open_dataset(tmp_path / "out").manifest
    expected = stdlib_rows(OI_CLASSES)[1:]
    assert [(c.source_id, c.name) for c in manifest.categories] == [tuple(row) for row in expected]


# ---------------------------------------------------------------------------------------------- sample data


@pytest.mark.skipif(not (SAMPLE / "annotations.csv").exists(), reason="sample_data/csv not generated")
def test_sample_tensorflow_csv_converts(tmp_path: Path) -> None:
    result = convert("csv", SAMPLE / "annotations.csv", tmp_path / "out", images=SAMPLE / "images")
    assert validate_dataset(tmp_path / "out", check_images=True).errors == []
    rows = stdlib_rows(SAMPLE / "annotations.csv")
    header = rows[0]
    boxes = Counter(row[header.index("filename")] for row in rows[1:])
    records = {r["image"]: r for r in open_dataset(result.out).records("train")}
    assert {image: len(r["boxes"]) for image, r in records.items()} == dict(boxes)
    sizes = {row[0]: (int(row[1]), int(row[2])) for row in rows[1:]}
    assert {image: (r["width"], r["height"]) for image, r in records.items()} == sizes


@pytest.mark.skipif(not (SAMPLE / "counts.csv").exists(), reason="sample_data/csv not generated")
def test_sample_crowd_counting_csv_converts(tmp_path: Path) -> None:
    convert(
        "csv",
        SAMPLE / "counts.csv",
        tmp_path / "out",
        images=SAMPLE / "images",
        column=["image=image"],
        count_columns=["*"],
    )
    assert validate_dataset(tmp_path / "out", check_images=True).errors == []
    rows = stdlib_rows(SAMPLE / "counts.csv")
    expected = {row[0]: {name: int(v) for name, v in zip(rows[0][1:], row[1:], strict=True)} for row in rows[1:]}
    records = list(open_dataset(tmp_path / "out").records("train"))
    assert {r["image"]: r["counts"] for r in records} == expected
    assert {r["image"]: set(r["labels"]) for r in records} == {
        image: {n for n, c in counts.items() if c > 0} for image, counts in expected.items()
    }


# ---------------------------------------------------------------------------------------------- round trip


def _csv_limits(record: dict[str, Any]) -> dict[str, Any]:
    """What CSV can hold of a record: no attributes or ids, counts only as many boxes."""
    return make_record(
        image=record["image"],
        width=record.get("width"),
        height=record.get("height"),
        boxes=record["boxes"],
        labels=record["labels"],
    )


def _assert_same_records(got: list[dict[str, Any]], want: list[dict[str, Any]], tolerance: float) -> None:
    by_image = {r["image"]: r for r in got}
    assert sorted(by_image) == sorted(r["image"] for r in want)
    for expected in want:
        record = by_image[expected["image"]]
        assert (record.get("width"), record.get("height")) == (expected.get("width"), expected.get("height"))
        assert set(record["labels"]) == set(expected["labels"])
        assert record["counts"] == expected["counts"]
        assert [b["name"] for b in record["boxes"]] == [b["name"] for b in expected["boxes"]]
        for box, original in zip(record["boxes"], expected["boxes"], strict=True):
            for key in ("x1", "y1", "x2", "y2"):
                assert math.isclose(box[key], original[key], abs_tol=tolerance), (key, box, original)


@settings(max_examples=25, deadline=None)
@given(datasets(attributes=False, sizes=False, ids=False))
def test_round_trip_through_csv_keeps_boxes_labels_and_counts(spec: Any) -> None:
    splits = {split: [_csv_limits(r) for r in records] for split, records in spec.splits.items()}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_dataset(root / "ds", spec.categories, splits)
        export("csv", root / "ds", root / "csv")
        convert("csv", root / "csv", root / "back", classes=root / "csv" / "classes.txt")
        back = open_dataset(root / "back")
        assert back.manifest.category_names == spec.categories
        assert set(back.manifest.splits) == set(splits)
        for split, want in splits.items():
            _assert_same_records(list(back.records(split)), want, 1e-6)
        # Exporting what was read gives the same bytes.
        export("csv", root / "back", root / "csv2")
        for file in sorted((root / "csv").iterdir()):
            assert (root / "csv2" / file.name).read_bytes() == file.read_bytes()


# ---------------------------------------------------------------------------------------------- pure functions


@pytest.mark.parametrize(
    ("box_format", "values", "corners"),
    [
        ("xyxy", (1, 2, 3, 5), (1, 2, 3, 5)),
        ("xywh", (1, 2, 3, 5), (1, 2, 4, 7)),
        ("cxcywh", (4, 5, 2, 4), (3, 3, 5, 7)),
    ],
)
def test_csv_box_to_corners_absolute(box_format: str, values: tuple[float, ...], corners: tuple[float, ...]) -> None:
    got = csv_box_to_corners(values=values, box_format=box_format, normalized=False, width=None, height=None)
    assert got == corners


def test_csv_box_to_corners_normalized_scales_x_by_width_and_y_by_height() -> None:
    got = csv_box_to_corners(values=(0.25, 0.5, 0.75, 1.0), box_format="xyxy", normalized=True, width=200, height=40)
    assert got == (50, 20, 150, 40)
    got = csv_box_to_corners(values=(0.5, 0.5, 0.5, 0.25), box_format="cxcywh", normalized=True, width=100, height=80)
    assert got == (25, 30, 75, 50)


def test_csv_box_to_corners_rounds_sum_artifacts() -> None:
    x1, _, x2, _ = csv_box_to_corners(values=(0.1, 0, 0.2, 1), box_format="xywh", normalized=False, width=1, height=1)
    assert x2 == 0.3 and repr(x2) == "0.3"  # 0.1 + 0.2 is 0.30000000000000004 before rounding
    assert x1 == 0.1


@pytest.mark.parametrize(
    ("text", "values"),
    [("[0,1,1,2]", (0, 1, 1, 2)), ("1, 2, 3, 3", (1, 2, 3, 3)), ("0 0 1 1", (0, 0, 1, 1)), ("[1.5 2 3 4]", None)],
)
def test_bbox_cell_to_values(text: str, values: tuple[float, ...] | None) -> None:
    expected = values if values is not None else (1.5, 2, 3, 4)
    assert bbox_cell_to_values(text=text) == expected


@pytest.mark.parametrize("text", ["[1,2,3]", "1 2 3 4 5", "[a,b,c,d]", "1,2,inf,4"])
def test_bbox_cell_to_values_refuses_anything_but_four_numbers(text: str) -> None:
    with pytest.raises(ValueError):
        bbox_cell_to_values(text=text)


@pytest.mark.parametrize(
    ("text", "values"),
    [("[0,5; 1; 2,5; 3]", (0.5, 1.0, 2.5, 3.0)), ("0,5 1 2,5 3", (0.5, 1.0, 2.5, 3.0)), ("1;2;3;4", (1, 2, 3, 4))],
)
def test_bbox_cell_to_values_with_decimal_commas(text: str, values: tuple[float, ...]) -> None:
    assert bbox_cell_to_values(text=text, decimal=",") == values


@pytest.mark.parametrize("text", ["[0,5,1,2,5,3]", "0.5 1 2.5 3", "1,000.5;1;2;3"])
def test_bbox_cell_with_decimal_commas_refuses_points_and_comma_separators(text: str) -> None:
    with pytest.raises(ValueError):
        bbox_cell_to_values(text=text, decimal=",")


def test_bbox_cell_empty_means_no_box() -> None:
    assert bbox_cell_to_values(text="") is None
    assert bbox_cell_to_values(text="[]") is None


@pytest.mark.parametrize(
    ("sample", "delimiter"),
    [
        ("a,b,c\n1,2,3\n4,5,6\n", ","),
        ("a;b;c\n1;2;3\n4;5;6\n", ";"),
        ("a\tb\tc\n1\t2\t3\n", "\t"),
        ("a|b|c\n1|2|3\n", "|"),
        ("1.jpg dog\n2.jpg cat\n", " "),
        ('"x, y";b\n"1, 2";3\n', ";"),
        ("filename, label_0, label_1\na.jpg, 1, 0\n", ","),
        ("only\none\n", ","),
    ],
)
def test_sniff_delimiter(sample: str, delimiter: str) -> None:
    assert sniff_delimiter(sample) == delimiter


def test_record_to_csv_rows_tensorflow() -> None:
    record = make_record(
        image="a/b.jpg",
        width=640,
        height=480,
        boxes=[{"name": "cat", "x1": 1.0, "y1": 2.5, "x2": 379.09000000000003, "y2": 4.1234567}],
        labels=["dog"],
    )
    assert record_to_csv_rows(record=record, layout="tensorflow") == [
        ["a/b.jpg", "640", "480", "cat", "1", "2.5", "379.09", "4.123457"],
        ["a/b.jpg", "640", "480", "dog", "", "", "", ""],
    ]


def test_record_to_csv_rows_image_without_boxes_has_one_empty_row() -> None:
    record = make_record(image="x.png", width=None, height=None)
    assert record_to_csv_rows(record=record, layout="vott") == [["x.png", "", "", "", "", ""]]


# ---------------------------------------------------------------------------------------------- reading details


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def records_of(out: Path, split: str = "train") -> list[dict[str, Any]]:
    return list(open_dataset(out).records(split))


TF_HEADER = "filename,width,height,class,xmin,ymin,xmax,ymax\n"


def test_bom_is_dropped_and_tensorflow_preset_reads(tmp_path: Path) -> None:
    source = write(tmp_path / "a.csv", b"\xef\xbb\xbf" + (TF_HEADER + "a.jpg,10,10,cat,1,2,3,4\n").encode())
    convert("csv", source, tmp_path / "out", preset="tensorflow")
    (record,) = records_of(tmp_path / "out")
    assert record["boxes"] == [{"name": "cat", "x1": 1.0, "y1": 2.0, "x2": 3.0, "y2": 4.0}]
    assert (record["width"], record["height"]) == (10, 10)


def test_auto_preset_recognises_the_header(tmp_path: Path) -> None:
    source = write(tmp_path / "a.csv", '"image","xmin","ymin","xmax","ymax","label"\n"a.jpg",1,2,3,4,"cat"\n')
    convert("csv", source, tmp_path / "out")
    assert records_of(tmp_path / "out")[0]["boxes"][0]["name"] == "cat"


def test_semicolon_file_with_explicit_columns_and_header(tmp_path: Path) -> None:
    source = write(tmp_path / "t.csv", "img;cls;left;top;w;h;W;H\na.jpg;cat;1;2;3;4;100;50\n")
    columns = ["image=img", "label=cls", "x=left", "y=top", "w=w", "h=h", "width=W", "height=H"]
    convert("csv", source, tmp_path / "out", column=columns)
    box = records_of(tmp_path / "out")[0]["boxes"][0]
    assert (box["x1"], box["y1"], box["x2"], box["y2"]) == (1, 2, 4, 6)


def test_header_no_reads_the_first_row_as_data(tmp_path: Path) -> None:
    source = write(tmp_path / "t.csv", "a.jpg,cat,1,2,3,4\nb.jpg,dog,1,1,2,2\n")
    columns = ["image=0", "label=1", "x1=2", "y1=3", "x2=4", "y2=5"]
    convert("csv", source, tmp_path / "out", column=columns, header="no")
    assert [r["image"] for r in records_of(tmp_path / "out")] == ["a.jpg", "b.jpg"]


def test_header_auto_with_indices_detects_a_named_first_row(tmp_path: Path) -> None:
    source = write(tmp_path / "t.csv", "file,c,a,b,c2,d\na.jpg,cat,1,2,3,4\n")
    columns = ["image=0", "label=1", "x1=2", "y1=3", "x2=4", "y2=5"]
    convert("csv", source, tmp_path / "out", column=columns)
    assert [r["image"] for r in records_of(tmp_path / "out")] == ["a.jpg"]


def test_normalized_coordinates_use_the_image_header_size(tmp_path: Path) -> None:
    from PIL import Image

    Image.new("L", (200, 100)).save(tmp_path / "a.png")
    source = write(tmp_path / "t.csv", "image,label,cx,cy,w,h\na.png,cat,0.5,0.5,0.5,0.2\n")
    convert("csv", source, tmp_path / "out", column=["image=image", "label=label", "cx=cx", "cy=cy", "w=w", "h=h"],
            normalized=True)  # fmt: skip
    (record,) = records_of(tmp_path / "out")
    assert (record["width"], record["height"]) == (200, 100)
    assert record["boxes"][0] | {} == {"name": "cat", "x1": 50.0, "y1": 40.0, "x2": 150.0, "y2": 60.0}


def test_normalized_without_any_size_names_the_row(tmp_path: Path) -> None:
    source = write(tmp_path / "t.csv", "image,label,x1,y1,x2,y2\nmissing.jpg,cat,0.1,0.1,0.2,0.2\n")
    with pytest.raises(InvalidDataError, match="image size") as error:
        convert("csv", source, tmp_path / "out", preset="kaggle-det", column=["image=image", "label=label"],
                normalized=True)  # fmt: skip
    assert error.value.location == "row 2"
    assert not (tmp_path / "out").exists()


def test_normalized_value_above_one_is_refused(tmp_path: Path) -> None:
    source = write(tmp_path / "t.csv", TF_HEADER + "a.jpg,10,10,cat,0.1,0.2,30,0.4\n")
    with pytest.raises(InvalidDataError, match=r"outside 0\.\.1") as error:
        convert("csv", source, tmp_path / "out", preset="tensorflow", normalized=True)
    assert error.value.location == "row 2, column 'xmax'"


def test_rows_of_one_image_need_not_be_adjacent_and_order_is_first_seen(tmp_path: Path) -> None:
    rows = ["b.jpg,10,10,cat,1,1,2,2", "a.jpg,10,10,dog,1,1,2,2", "b.jpg,10,10,dog,3,3,4,4", "c.jpg,10,10,,,,,"]
    source = write(tmp_path / "t.csv", TF_HEADER + "\n".join(rows) + "\n")
    convert("csv", source, tmp_path / "out")
    records = records_of(tmp_path / "out")
    assert [r["image"] for r in records] == ["b.jpg", "a.jpg", "c.jpg"]
    assert [b["name"] for b in records[0]["boxes"]] == ["cat", "dog"]
    assert records[2]["boxes"] == [] and records[2]["labels"] == []
    assert open_dataset(tmp_path / "out").manifest.category_names == ["cat", "dog"]


def test_label_delimiter_splits_a_label_cell(tmp_path: Path) -> None:
    source = write(tmp_path / "t.csv", "image,tags\na.jpg,haze primary\nb.jpg,clear\n")
    convert("csv", source, tmp_path / "out", column=["image=image", "label=tags"], label_delimiter=" ")
    assert [r["labels"] for r in records_of(tmp_path / "out")] == [["haze", "primary"], ["clear"]]


def test_label_and_count_rows(tmp_path: Path) -> None:
    source = write(tmp_path / "t.csv", "image,class,n\na.jpg,car,2\na.jpg,bike,0\na.jpg,car,1\n")
    convert("csv", source, tmp_path / "out", column=["image=image", "label=class", "count=n"])
    (record,) = records_of(tmp_path / "out")
    assert record["counts"] == {"car": 3, "bike": 0}
    assert record["labels"] == ["car"]


def test_split_column_and_split_from_file_name(tmp_path: Path) -> None:
    source = write(tmp_path / "t.csv", "image,label,part\na.jpg,cat,val\nb.jpg,dog,\n")
    convert("csv", source, tmp_path / "out", column=["image=image", "label=label", "split=part"])
    assert {s: [r["image"] for r in records_of(tmp_path / "out", s)] for s in ("val", "train")} == {
        "val": ["a.jpg"],
        "train": ["b.jpg"],
    }
    named = write(tmp_path / "x" / "oidv6-test-things.csv", "image,label\na.jpg,cat\n")
    convert("csv", named, tmp_path / "out2", column=["image=image", "label=label"])
    assert list(open_dataset(tmp_path / "out2").manifest.splits) == ["test"]


def test_classes_text_file_orders_categories_and_refuses_unknown(tmp_path: Path) -> None:
    classes = write(tmp_path / "classes.txt", "zebra\ncat\n")
    source = write(tmp_path / "t.csv", TF_HEADER + "a.jpg,10,10,cat,1,1,2,2\n")
    convert("csv", source, tmp_path / "out", classes=classes)
    assert open_dataset(tmp_path / "out").manifest.category_names == ["zebra", "cat"]
    bad = write(tmp_path / "u.csv", TF_HEADER + "a.jpg,10,10,dog,1,1,2,2\n")
    with pytest.raises(InvalidDataError, match="'dog' is not in the --classes list") as error:
        convert("csv", bad, tmp_path / "out2", classes=classes)
    assert error.value.location == "row 2, column 'class'"


def test_confidence_zero_adds_only_the_image(tmp_path: Path) -> None:
    source = write(tmp_path / "t.csv", "ImageID,Source,LabelName,Confidence\na,human,/m/1,0\nb,human,/m/1,1\n")
    convert("csv", source, tmp_path / "out", preset="open-images")
    assert [(r["image"], r["labels"]) for r in records_of(tmp_path / "out")] == [("a", []), ("b", ["/m/1"])]


def test_image_outside_the_image_directory_is_refused(tmp_path: Path) -> None:
    source = write(tmp_path / "t.csv", TF_HEADER + "../secret.jpg,10,10,cat,1,1,2,2\n")
    with pytest.raises(UnsafePathError) as error:
        convert("csv", source, tmp_path / "out")
    assert error.value.location == "row 2, column 'filename'"


def test_same_image_in_two_files_is_a_problem(tmp_path: Path) -> None:
    write(tmp_path / "d" / "train.csv", TF_HEADER + "a.jpg,10,10,cat,1,1,2,2\n")
    write(tmp_path / "d" / "val.csv", TF_HEADER + "a.jpg,10,10,cat,1,1,2,2\n")
    with pytest.raises(InvalidDataError, match="already described by"):
        convert("csv", tmp_path / "d", tmp_path / "out")


# ---------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("body", "error", "location", "message"),
    [
        ("a.jpg,10,10,cat,1,2,3\n", ParseError, "row 2", "row has 7 cells but the header has 8"),
        ("a.jpg,10,10,cat,1,2,3,4,5\n", ParseError, "row 2", "row has 9 cells"),
        ("a.jpg,10,10,cat,1,2,3,4\nb.jpg,10,10,cat,1,x,3,4\n", ParseError, "row 3, column 'ymin'", "found 'x'"),
        ("a.jpg,10,10,cat,1,2,3,nan\n", ParseError, "row 2, column 'ymax'", "expected a number"),
        ("a.jpg,10,10,cat,1,2,,4\n", ParseError, "row 2, column 'xmax'", "incomplete"),
        ("a.jpg,10,10,cat,3,2,1,4\n", InvalidDataError, "row 2, column 'xmin'", "x1 <= x2"),
        ("a.jpg,10,10,,1,2,3,4\n", InvalidDataError, "row 2, column 'class'", "no class"),
        ("a.jpg,ten,10,cat,1,2,3,4\n", ParseError, "row 2, column 'width'", "positive whole number"),
        ("a.jpg,10,10,cat,1,2,3,4\na.jpg,20,10,cat,1,2,3,4\n", InvalidDataError, "row 3, column 'width'", "differs"),
        (",10,10,cat,1,2,3,4\n", ParseError, "row 2, column 'filename'", "image cell is empty"),
        ('a.jpg,10,10,"cat,1,2,3,4\n', ParseError, "row 2", "cells"),
    ],
)
def test_bad_rows_name_file_row_and_column(
    tmp_path: Path, body: str, error: type[AnnonormError], location: str, message: str
) -> None:
    source = write(tmp_path / "t.csv", TF_HEADER + body)
    with pytest.raises(error, match=message) as raised:
        convert("csv", source, tmp_path / "out", preset="tensorflow")
    assert raised.value.file == str(source)
    assert raised.value.location == location
    assert not (tmp_path / "out").exists()


def test_ragged_row_can_be_padded(tmp_path: Path) -> None:
    source = write(tmp_path / "t.csv", "image,label,note\na.jpg,cat\n")
    convert("csv", source, tmp_path / "out", column=["image=image", "label=label"], short_rows="pad")
    assert records_of(tmp_path / "out")[0]["labels"] == ["cat"]


def test_trailing_delimiter_is_not_a_ragged_row(tmp_path: Path) -> None:
    source = write(tmp_path / "t.csv", TF_HEADER + "a.jpg,10,10,cat,1,2,3,4,\n")
    convert("csv", source, tmp_path / "out")
    assert len(records_of(tmp_path / "out")[0]["boxes"]) == 1


def test_non_utf8_bytes_name_the_row(tmp_path: Path) -> None:
    source = write(
        tmp_path / "t.csv", (TF_HEADER + "a.jpg,10,10,cat,1,2,3,4\n").encode() + b"b\xe9.jpg,10,10,c,1,2,3,4\n"
    )
    with pytest.raises(ParseError, match="not UTF-8") as error:
        convert("csv", source, tmp_path / "out")
    assert error.value.location == "row 3"


def test_unknown_column_in_the_mapping_names_the_header(tmp_path: Path) -> None:
    source = write(tmp_path / "t.csv", TF_HEADER + "a.jpg,10,10,cat,1,2,3,4\n")
    with pytest.raises(ParseError, match="'left' is not in the header") as error:
        convert("csv", source, tmp_path / "out", column=["image=filename", "x1=left", "y1=ymin", "x2=xmax", "y2=ymax"])
    assert error.value.location == "row 1"


def test_preset_that_does_not_fit_the_header_says_what_it_expected(tmp_path: Path) -> None:
    source = write(tmp_path / "t.csv", "a,b,c\n1,2,3\n")
    with pytest.raises(ParseError, match="matches no layout of the vott preset") as error:
        convert("csv", source, tmp_path / "out", preset="vott")
    assert error.value.location == "row 1"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"column": ["image=filename", "x1=xmin", "y1=ymin", "x2=xmax"]}, "incomplete"),
        ({"column": ["label=class"]}, "no image column"),
        ({"column": ["pic=filename"]}, "unknown role 'pic'"),
        ({"column": ["image"]}, "expected ROLE=COLUMN"),
        ({"preset": "tensorflow", "box_format": "xywh"}, "needs columns x,y,w,h"),
    ],
)
def test_incomplete_or_wrong_mapping_is_a_usage_error(tmp_path: Path, options: dict[str, Any], message: str) -> None:
    source = write(tmp_path / "t.csv", TF_HEADER + "a.jpg,10,10,cat,1,2,3,4\n")
    with pytest.raises(UsageError, match=message):
        convert("csv", source, tmp_path / "out", **options)


def test_skip_mode_drops_only_the_bad_image(tmp_path: Path) -> None:
    body = "a.jpg,10,10,cat,1,2,3,4\nb.jpg,10,10,cat,1,x,3,4\nb.jpg,10,10,cat,1,2,3,4\nc.jpg,10,10,cat,1,2,3,4\n"
    source = write(tmp_path / "t.csv", TF_HEADER + body)
    result = convert("csv", source, tmp_path / "out", on_error="skip")
    assert [r["image"] for r in records_of(tmp_path / "out")] == ["a.jpg", "c.jpg"]
    assert [e.location for e in result.skipped] == ["row 3, column 'ymin'"]


# ---------------------------------------------------------------------------------------------- reading strategies

#: Ways the reader can take a file; each must give what the two-pass reader gives.
STRATEGIES: dict[str, dict[str, Any]] = {
    "two passes": {"strategy": Strategy(streaming=False)},
    "row by row": {"strategy": Strategy(columnar=False)},
    "columns, small chunks": {"strategy": Strategy(chunk_bytes=40, block_rows=3)},
    "two processes": {"execution": Execution(workers=2, min_parallel=0), "strategy": Strategy(chunk_bytes=64)},
}


def read_with(strategy: dict[str, Any], source: Path, options: dict[str, Any], on_error: str) -> Any:
    """What the reader writes (split files, categories, skipped problems), or the error it raises."""
    with tempfile.TemporaryDirectory() as tmp:
        execution = strategy.get("execution", Execution(workers=2))
        writer = DatasetWriter(Path(tmp), on_error=on_error)
        converter = CsvConverter()
        try:
            resolved = converter.resolve_options(converter.read_options, {**options, "workers": 2})
            context = ReadContext(options=resolved, sink=writer, images=None, executor=LocalExecutor(execution))
            read_csv(source, context, strategy.get("strategy"))
        except AnnonormError as error:
            return type(error).__name__, str(error), error.location
        finally:
            writer.close()
        skipped = [(type(e).__name__, str(e), e.location) for e in writer.skipped]
        files = {p.name: p.read_bytes() for p in sorted(Path(tmp).iterdir())}
        return files, writer.categories, skipped


NUMBER_CELLS = st.one_of(
    st.integers(0, 60).map(str), st.sampled_from(["2.5", "0.1234567", "", "x", "-1", "nan", "1e1"])
)


@st.composite
def tables(draw: st.DrawFn) -> tuple[bytes, dict[str, Any]]:
    """A TensorFlow-layout CSV: mostly plain box rows, some of them broken, rows grouped or scattered."""
    rows = []
    for image in range(draw(st.integers(1, 12))):
        name = draw(st.sampled_from([f"{image}.jpg", f"./{image}.jpg", f"sub/{image}", f"{image}.png"]))
        size = draw(st.sampled_from(["10,10", "10,10", "20,8", ",", "0,10"]))
        for _ in range(draw(st.integers(1, 4))):
            label = draw(st.sampled_from(["cat", "dog", "traffic light", "cat", "dog", ""]))
            if draw(st.integers(0, 4)):
                x1, y1 = draw(st.integers(0, 20)), draw(st.integers(0, 20))
                box = [str(x1), str(y1), str(x1 + draw(st.integers(0, 9))), str(y1 + draw(st.integers(0, 9)))]
            else:
                box = [draw(NUMBER_CELLS) for _ in range(4)]
            rows.append([name, size, label, *box])
    if draw(st.integers(0, 9)) == 0:
        rows[draw(st.integers(0, len(rows) - 1))][2] = '"a, b"'  # a quoted cell: csv.reader splits this file
    if draw(st.integers(0, 3)) == 0:
        rows = draw(st.permutations(rows))
    lines = ["filename,width,height,class,xmin,ymin,xmax,ymax", *map(",".join, rows)]
    if draw(st.integers(0, 5)) == 0:
        lines.insert(
            draw(st.integers(1, len(lines))), draw(st.sampled_from(["", ",,,,,,,", "a.jpg,1", ",1,1,c,1,1,2,2"]))
        )
    text = draw(st.sampled_from(["\n", "\r\n"])).join(lines) + "\n"
    options: dict[str, Any] = {"preset": "tensorflow"}
    if draw(st.integers(0, 4)) == 0:
        options["short_rows"] = "pad"
    return text.encode(), options


@settings(max_examples=60, deadline=None)
@given(tables(), st.sampled_from(["fail", "skip"]))
def test_every_reading_strategy_gives_the_two_pass_result(table: tuple[bytes, dict[str, Any]], on_error: str) -> None:
    data, options = table
    with tempfile.TemporaryDirectory() as tmp:
        source = write(Path(tmp) / "t.csv", data)
        (Path(tmp) / "0.jpg").write_bytes(b"")  # found beside the CSV
        (Path(tmp) / "sub").mkdir()
        (Path(tmp) / "sub" / "1.png").write_bytes(b"")  # found by its extension
        results = {name: read_with(strategy, source, options, on_error) for name, strategy in STRATEGIES.items()}
    reference = results.pop("two passes")
    for name, result in results.items():
        assert result == reference, name


def _tensorflow_rows(images: int, first_split: str = "train") -> str:
    rows = [
        f"{i:05d}.jpg,640,480,{('person', 'car', 'dog')[(i + j) % 3]},{j},{j},{j + 10.5},{j + 20},"
        f"{first_split if i < images // 3 else 'val'}"
        for i in range(images)
        for j in range(1 + i % 4)
    ]
    return "filename,width,height,class,xmin,ymin,xmax,ymax,part\n" + "\n".join(rows) + "\n"


def test_a_large_file_read_by_two_processes_is_the_file_read_by_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write(tmp_path / "t.csv", _tensorflow_rows(300))
    options = {"preset": "tensorflow", "column": ["split=part"]}
    one = read_with({"execution": Execution(workers=2, min_parallel=1 << 40)}, source, options, "fail")
    halves: list[tuple[int, int]] = []
    monkeypatch.setattr(TableStream, "stream_halves", _recorded(TableStream.stream_halves, halves))
    two = read_with({"execution": Execution(workers=2, min_parallel=0)}, source, options, "fail")
    assert halves and halves[0][0] > 0  # it did cut the file in two
    assert two == one
    assert [c["name"] for c in two[1]] == ["person", "car", "dog"]
    assert set(two[0]) == {"train.jsonl", "val.jsonl"}  # no part file left behind


def _with_decimal_commas(text: str, delimiter: str) -> str:
    """``text`` (a comma-separated table) as a European locale writes it: decimal commas, ``delimiter`` between
    cells, cells holding the delimiter quoted."""

    def cell(text: str) -> str:
        try:
            float(text)
        except ValueError:
            return text
        return text.replace(".", ",")

    rows = [[cell(c) for c in line.split(",")] for line in text.splitlines()]
    return "".join(delimiter.join(f'"{c}"' if delimiter in c else c for c in row) + "\n" for row in rows)


@pytest.mark.parametrize("delimiter", [";", ","])
def test_every_reading_strategy_reads_decimal_commas_as_the_file_with_points(tmp_path: Path, delimiter: str) -> None:
    text = _tensorflow_rows(300)
    assert "10.5" in text
    with_points = write(tmp_path / "points.csv", text)
    with_commas = write(tmp_path / "commas.csv", _with_decimal_commas(text, delimiter))
    assert ("10,5" if delimiter == ";" else '"10,5"') in with_commas.read_text()
    options = {"preset": "tensorflow", "column": ["split=part"]}
    reference = read_with(STRATEGIES["two passes"], with_points, options, "fail")
    assert isinstance(reference, tuple) and len(reference) == 3 and reference[2] == []
    for name, strategy in STRATEGIES.items():
        assert read_with(strategy, with_commas, {**options, "decimal": ","}, "fail") == reference, name


@pytest.mark.parametrize("on_error", ["fail", "skip"])
@pytest.mark.parametrize("delimiter", [";", ","])
def test_every_reading_strategy_reports_decimal_comma_problems_alike(
    tmp_path: Path, delimiter: str, on_error: str
) -> None:
    lines = _with_decimal_commas(_tensorflow_rows(300), delimiter).splitlines()
    assert "13,5" in lines[40] and "640" in lines[-3]
    lines[40] = lines[40].replace("13,5", "13.5")  # a point where the table has decimal commas
    lines[-3] = lines[-3].replace("640", '"640,5"' if delimiter == "," else "640,5")  # not a whole number
    source = write(tmp_path / "commas.csv", "\n".join(lines) + "\n")
    options = {"preset": "tensorflow", "column": ["split=part"], "decimal": ","}
    results = {name: read_with(strategy, source, options, on_error) for name, strategy in STRATEGIES.items()}
    reference = results.pop("two passes")
    for name, result in results.items():
        assert result == reference, name
    first = ("ParseError", f"{source}:row 41, column 'xmax': expected a number, found '13.5' "
             "(--decimal , is given: expected a decimal comma)", "row 41, column 'xmax'")  # fmt: skip
    if on_error == "fail":
        assert reference == first
    else:
        assert reference[2] == [
            first,
            (
                "ParseError",
                f"{source}:row {len(lines) - 2}, column 'width': expected the image width as a positive whole "
                "number of pixels, found '640,5'",
                f"row {len(lines) - 2}, column 'width'",
            ),
        ]


def _recorded(method: Callable[..., Any], calls: list[Any]) -> Callable[..., Any]:
    def wrapper(self: Any, *args: Any) -> Any:
        calls.append(args)
        return method(self, *args)

    return wrapper


@pytest.mark.parametrize("on_error", ["fail", "skip"])
def test_a_problem_in_the_second_half_is_reported_as_one_process_reports_it(tmp_path: Path, on_error: str) -> None:
    text = _tensorflow_rows(300)
    lines = text.splitlines()
    lines[-5] = lines[-5].replace(",640,", ",641,")  # an image whose size changes on a later row
    lines[10] = lines[10].replace(",640,", ",ten,")  # and one in the first half
    source = write(tmp_path / "t.csv", "\n".join(lines) + "\n")
    options = {"preset": "tensorflow", "column": ["split=part"]}
    one = read_with({"execution": Execution(workers=2, min_parallel=1 << 40)}, source, options, on_error)
    two = read_with({"execution": Execution(workers=2, min_parallel=0)}, source, options, on_error)
    assert two == one
    if on_error == "skip":
        assert [location for _, _, location in two[2]] == [
            "row 11, column 'width'",
            f"row {len(lines) - 4}, column 'width'",
        ]


def test_a_problem_of_the_file_is_reported_before_an_earlier_image_problem(tmp_path: Path) -> None:
    # One pass streams this file; the two-pass reader named the ragged row first, and so does it.
    body = "a.jpg,10,10,cat,1,x,3,4\n" + "".join(f"{i}.jpg,10,10,cat,1,2,3,4\n" for i in range(50)) + "z.jpg,10\n"
    source = write(tmp_path / "t.csv", TF_HEADER + body)
    with pytest.raises(ParseError, match="row has 2 cells") as error:
        convert("csv", source, tmp_path / "out", preset="tensorflow")
    assert error.value.location == "row 53"


def test_scattered_rows_declare_classes_and_report_problems_in_the_order_of_their_rows(tmp_path: Path) -> None:
    # a.jpg has rows 2, 6 and 7 (a bad box on 7); b.jpg rows 3 and 4 (a bad number on 4); c.jpg row 5.
    rows = ["a.jpg,cat,1,1,2,2", "b.jpg,dog,1,1,2,2", "b.jpg,dog,1,x,2,2", "c.jpg,bird,1,1,2,2"]
    rows += ["a.jpg,emu,1,1,2,2", "a.jpg,cat,1,1,0,2"]
    source = write(tmp_path / "t.csv", "filename,class,xmin,ymin,xmax,ymax\n" + "".join(f"{r}\n" for r in rows))
    result = convert("csv", source, tmp_path / "out", on_error="skip")
    assert [r["image"] for r in records_of(tmp_path / "out")] == ["c.jpg"]
    assert [e.location for e in result.skipped] == ["row 4, column 'ymin'", "row 7, column 'xmin'"]
    # The classes of the rows read before each image's problem, in the order of the rows that first name them.
    assert open_dataset(tmp_path / "out").manifest.category_names == ["cat", "dog", "bird", "emu"]


def test_an_image_described_twice_is_named_by_its_first_row(tmp_path: Path) -> None:
    source = write(
        tmp_path / "t.csv", TF_HEADER + "a.jpg,10,10,cat,1,1,2,2\nb.jpg,10,10,cat,1,1,2,2\n./a.jpg,10,10,cat,1,1,2,2\n"
    )
    with pytest.raises(InvalidDataError, match="already described by") as error:
        convert("csv", source, tmp_path / "out")
    assert error.value.location == "row 4"


# ---------------------------------------------------------------------------------------------- writing, sniff


def test_export_writes_tensorflow_rows_with_empty_rows_for_bare_images(tmp_path: Path) -> None:
    records = [
        make_record(image="a.jpg", width=10, height=8, boxes=[{"name": "cat", "x1": 1, "y1": 2, "x2": 3.5, "y2": 4}]),
        make_record(image="b.jpg", width=10, height=8),
    ]
    write_dataset(tmp_path / "ds", ["cat", "dog"], {"val": records})
    export("csv", tmp_path / "ds", tmp_path / "csv")
    assert (tmp_path / "csv" / "val.csv").read_bytes() == (
        b"filename,width,height,class,xmin,ymin,xmax,ymax\na.jpg,10,8,cat,1,2,3.5,4\nb.jpg,10,8,,,,,\n"
    )
    assert (tmp_path / "csv" / "classes.txt").read_text() == "cat\ndog\n"
    export("csv", tmp_path / "ds", tmp_path / "vott", layout="vott")
    assert (tmp_path / "vott" / "val.csv").read_text().splitlines()[0] == "image,xmin,ymin,xmax,ymax,label"


def test_sniff(tmp_path: Path) -> None:
    assert CsvConverter.sniff(write(tmp_path / "a.csv", TF_HEADER))
    assert CsvConverter.sniff(write(tmp_path / "a.txt", "1.jpg dog\n"))
    assert not CsvConverter.sniff(write(tmp_path / "b.csv", '{"images": []}\n'))
    assert not CsvConverter.sniff(write(tmp_path / "c.json", TF_HEADER))
    assert not CsvConverter.sniff(write(tmp_path / "d.csv", "justoneword\n"))
    assert not CsvConverter.sniff(tmp_path)


def test_categories_come_in_first_row_order_when_an_images_rows_are_scattered(tmp_path: Path) -> None:
    # 2.jpg's second row (cat) comes after 1.jpg's cat and 0.jpg's ab: the folded group must not
    # declare cat at its own (later) row.
    body = "2.jpg,10,10,dog,0,0,1,1\n1.jpg,10,10,cat,0,0,1,1\n0.jpg,10,10,ab,0,0,1,1\n2.jpg,10,10,cat,0,0,1,1\n"
    source = write(tmp_path / "t.csv", TF_HEADER + body)
    convert("csv", source, tmp_path / "out")
    names = [c["name"] for c in json.loads((tmp_path / "out" / "annonorm.json").read_text())["categories"]]
    first_seen = list(dict.fromkeys(line.split(",")[3] for line in body.splitlines()))
    assert names == first_seen == ["dog", "cat", "ab"]
