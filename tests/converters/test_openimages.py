"""Open Images (issue 15, item 6): the row mapping alone, the peer V5/V6 folders end to end, masks, the round trip.

Expected boxes and labels are computed here from the CSV files with the csv module and Open Images' definitions
(fractions of the image side, confidence 1/0 labels), independently of the converter.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path
from typing import Any
from unittest.mock import patch

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from peer import PEER_DATA
from PIL import Image
from pycocotools import mask as mask_utils
from typer.testing import CliRunner

from annonorm.api import convert, export
from annonorm.cli import app
from annonorm.converters import openimages
from annonorm.converters.openimages import OpenimagesConverter, box_to_openimages_row, openimages_row_to_box
from annonorm.io import open_dataset

runner = CliRunner()
PEER = PEER_DATA / "open_images_dataset"
ROW = {"XMin": "0.25", "XMax": "0.5", "YMin": "0", "YMax": "1", "IsOccluded": "1", "IsTruncated": "-1",
       "IsGroupOf": "1", "IsDepiction": "0", "IsInside": "-1", "Source": "xclick", "Confidence": "1"}  # fmt: skip


def test_a_row_is_a_box_in_pixels_with_the_known_flags() -> None:
    box = openimages_row_to_box(row=ROW, name="cat", width=8, height=4)
    assert box == {
        "name": "cat",
        "x1": 2.0,
        "y1": 0.0,
        "x2": 4.0,
        "y2": 4.0,
        "attributes": {"occluded": True, "iscrowd": True, "depiction": False, "source": "xclick", "confidence": 1.0},
    }
    row = box_to_openimages_row(box=box, image_id="a", mid="/m/0", width=8, height=4)
    assert row == ["a", "xclick", "/m/0", "1", "0.25", "0.5", "0", "1", "1", "-1", "1", "0", "-1"]


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"XMin": "nan"}, "finite"),
        ({"XMax": "x"}, "a number"),
        ({"IsGroupOf": "2"}, "0, 1 or -1"),
        ({"XMin": "0.9"}, "XMin <= XMax"),
    ],
)
def test_a_bad_row_says_what_was_expected(change: dict[str, str], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        openimages_row_to_box(row={**ROW, **change}, name="cat", width=8, height=4)


def _table(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as stream:
        return list(csv.DictReader(stream))


def _expected(root: Path) -> dict[str, tuple[list[tuple[str, float, float, float, float]], list[str], list[str]]]:
    """ImageID -> (boxes in pixels, labels, negative labels), from the CSVs and the image files."""
    notes = root / "annotations"
    names = dict(row for row in csv.reader((notes / "oidv6-class-descriptions.csv").open()) if row[0] != "LabelName")
    sizes = {p.stem: Image.open(p).size for p in (root / "images").glob("*/*")}
    found: dict[str, tuple[list[tuple[str, float, float, float, float]], list[str], list[str]]] = {
        image_id: ([], [], []) for image_id in sizes
    }
    for path in notes.glob("*-annotations-bbox.csv"):
        for row in _table(path):
            w, h = sizes[row["ImageID"]]
            xs, ys = (float(row["XMin"]) * w, float(row["XMax"]) * w), (float(row["YMin"]) * h, float(row["YMax"]) * h)
            found[row["ImageID"]][0].append((names[row["LabelName"]], xs[0], ys[0], xs[1], ys[1]))
    for path in notes.glob("*-annotations-human-imagelabels.csv"):
        for row in _table(path):
            found[row["ImageID"]][1 if row["Confidence"] == "1" else 2].append(names[row["LabelName"]])
    return found


def test_the_v6_folder_converts_validates_and_keeps_boxes_labels_and_the_mask(tmp_path: Path) -> None:
    source = PEER / "v6"
    assert OpenimagesConverter.sniff(source)
    result = runner.invoke(app, ["convert", "openimages", str(source), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["validate", str(tmp_path / "out"), "--check-images"])
    assert result.exit_code == 0, result.output
    dataset = open_dataset(tmp_path / "out")
    assert sorted(dataset.manifest.splits) == ["test", "train", "validation"]
    categories = {c.name: c for c in dataset.manifest.categories}
    assert categories["Generic label #1"].supercategory == "Generic label #0"  # from the hierarchy
    assert categories["Generic label #0"].source_id == "/m/0"
    expected = _expected(source)
    got = {}
    for split in dataset.manifest.splits:
        for record in dataset.records(split):
            boxes = [(b["name"], b["x1"], b["y1"], b["x2"], b["y2"]) for b in record["boxes"]]
            negative = (record.get("attributes") or {}).get("negative_labels", [])
            got[record["id"]] = (boxes, record["labels"], negative)
            assert record["image"].startswith(f"{split}/")
    assert got.keys() == expected.keys()
    for image_id, (boxes, labels, negative) in expected.items():
        assert got[image_id][2] == negative
        assert [b[0] for b in got[image_id][0]] == [b[0] for b in boxes]
        assert np.allclose([b[1:] for b in got[image_id][0]], [b[1:] for b in boxes]) if boxes else True
        assert got[image_id][1] == list(dict.fromkeys([*labels, *(b[0] for b in boxes)]))
    (b,) = [r for r in dataset.records("train") if r["id"] == "b"]
    mask = np.asarray(Image.open(source / "masks" / "train" / "b_m0_01234567.png").convert("L")) > 0
    rle = b["boxes"][0]["rle"]
    assert (mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()}) == mask).all()
    assert b["boxes"][0]["attributes"]["box_id"] == "01234567"


def test_the_v5_image_lists_give_records_without_boxes(tmp_path: Path) -> None:
    convert("openimages", PEER / "v5", tmp_path / "out")
    dataset = open_dataset(tmp_path / "out")
    listed = {
        row["ImageID"]: row["Subset"] for p in (PEER / "v5" / "annotations").glob("*rotation.csv") for row in _table(p)
    }
    got = {r["id"]: split for split in dataset.manifest.splits for r in dataset.records(split)}
    assert got == listed


def test_a_mask_is_rescaled_to_the_image_and_sizes_come_from_images_meta(tmp_path: Path) -> None:
    shutil.copytree(PEER / "v6", tmp_path / "src")
    path = tmp_path / "src" / "masks" / "train" / "b_m0_01234567.png"
    small = np.asarray(Image.open(path).convert("L"))
    Image.fromarray(np.kron(small, np.ones((3, 3), dtype=np.uint8))).save(path)  # 3 times the image's size
    (tmp_path / "src" / "images" / "train" / "b.jpg").unlink()
    convert("openimages", tmp_path / "src", tmp_path / "out")
    (b,) = [r for r in open_dataset(tmp_path / "out").records("train") if r["id"] == "b"]
    assert (b["width"], b["height"]) == (8, 2)  # images.meta: "b 2 8" (height, width)
    rle = b["boxes"][0]["rle"]
    decoded = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()})
    assert (decoded == (small > 0)).all()  # nearest-pixel rescaling of a 3x mask gives the original back


def test_export_writes_the_tables_back(tmp_path: Path) -> None:
    convert("openimages", PEER / "v6", tmp_path / "out")
    export("openimages", tmp_path / "out", tmp_path / "back")
    rows = _table(tmp_path / "back" / "annotations" / "test-annotations-bbox.csv")
    source = _table(PEER / "v6" / "annotations" / "test-annotations-bbox.csv")
    assert rows == source
    convert("openimages", tmp_path / "back", tmp_path / "again", images=PEER / "v6" / "images")
    first = [r for s in ("train", "test") for r in open_dataset(tmp_path / "out").records(s)]
    again = [r for s in ("train", "test") for r in open_dataset(tmp_path / "again").records(s)]
    strip = [{**r, "boxes": [{k: v for k, v in b.items() if k not in ("rle", "attributes")} for b in r["boxes"]]}
             for r in first]  # fmt: skip
    assert [
        {**r, "boxes": [{k: v for k, v in b.items() if k != "attributes"} for b in r["boxes"]]} for r in again
    ] == strip


def test_round_trip_property() -> None:
    from test_roundtrip import check_round_trip

    check_round_trip("openimages", max_examples=15)


# ------------------------------------------------------------- streamed or gathered box rows (issues 15/17)

MIDS = ("/m/a", "/m/b", "/m/c")
SIZE = {"a": (10, 20), "b": (30, 40), "c": (50, 60), "d": (70, 80)}  # ImageID -> (width, height)


def _corners(number: int) -> tuple[float, float, float, float]:
    """XMin, XMax, YMin, YMax of the ``number``-th box row (made up, valid)."""
    low = (number % 8) / 16
    return low, low + 0.25, low / 2, low / 2 + 0.5


def _oi_source(
    root: Path, rows: list[tuple[str, int]], listed: list[str] | None = None, *, style: str = "plain"
) -> Path:
    """An Open Images folder with bbox rows ``(ImageID, class index)``, sizes in images.meta and optionally an
    image list; ``style`` ``crlf`` ends lines with CR LF, ``quoted`` quotes the ImageIDs, ``blank`` adds blank rows."""
    notes = root / "annotations"
    notes.mkdir(parents=True)
    (notes / "class-descriptions.csv").write_text("".join(f"{m},Class {m[-1]}\n" for m in MIDS))
    (notes / "images.meta").write_text("".join(f"{i} {h} {w}\n" for i, (w, h) in SIZE.items()))
    lines = [",".join((*BOX_HEADER, *FLAG_COLUMNS))]
    for number, (image_id, label) in enumerate(rows):
        cell = f'"{image_id}"' if style == "quoted" else image_id
        lines.append(
            ",".join([cell, "xclick", MIDS[label], "1", *map(str, _corners(number)), "0", "1", "-1", "0", "0"])
        )
        if style == "blank" and number % 3 == 0:
            lines.append(" , ,")
    end = "\r\n" if style == "crlf" else "\n"
    (notes / "train-annotations-bbox.csv").write_bytes(end.join(lines).encode() + end.encode())
    if listed is not None:
        (notes / "image_ids_and_rotation.csv").write_text("ImageID,Subset\n" + "".join(f"{i},train\n" for i in listed))
    return root


BOX_HEADER = ("ImageID", "Source", "LabelName", "Confidence", "XMin", "XMax", "YMin", "YMax")
FLAG_COLUMNS = ("IsOccluded", "IsTruncated", "IsGroupOf", "IsDepiction", "IsInside")


def _expected_records(rows: list[tuple[str, int]], listed: list[str] | None) -> dict[str, list[tuple[Any, ...]]]:
    """ImageID -> its boxes (class name, corners in pixels) in row order; images listed first, then as boxed."""
    found: dict[str, list[tuple[Any, ...]]] = {image_id: [] for image_id in listed or ()}
    for number, (image_id, label) in enumerate(rows):
        (w, h), (x1, x2, y1, y2) = SIZE[image_id], _corners(number)
        found.setdefault(image_id, []).append((f"Class {MIDS[label][-1]}", x1 * w, y1 * h, x2 * w, y2 * h))
    return found


def _converted(source: Path, out: Path) -> tuple[bytes, bytes]:
    convert("openimages", source, out)
    return (out / "train.jsonl").read_bytes(), (out / "annonorm.json").read_bytes()


def _check_records(out: Path, rows: list[tuple[str, int]], listed: list[str] | None) -> None:
    expected = _expected_records(rows, listed)
    records = list(open_dataset(out).records("train"))
    assert [r["id"] for r in records] == list(expected)
    for record in records:
        boxes = [(b["name"], b["x1"], b["y1"], b["x2"], b["y2"]) for b in record["boxes"]]
        assert [b[0] for b in boxes] == [b[0] for b in expected[record["id"]]]
        assert np.allclose([b[1:] for b in boxes], [b[1:] for b in expected[record["id"]]]) if boxes else True
        assert all(b["attributes"]["truncated"] and "iscrowd" not in b["attributes"] for b in record["boxes"])


@pytest.mark.parametrize(
    ("rows", "listed", "streamed"),
    [
        ([("a", 0), ("a", 1), ("b", 2), ("b", 0), ("c", 1)], None, True),  # grouped by image
        ([("a", 0), ("b", 1), ("a", 2), ("c", 0), ("b", 1)], None, False),  # scattered
        ([("a", 0), ("b", 1), ("b", 2)], ["d", "b", "a"], False),  # the list orders the boxed images otherwise
        ([("a", 0), ("c", 1), ("c", 2)], ["a", "d", "c"], True),  # the list agrees (d has no box)
    ],
)
def test_records_follow_the_image_order_with_every_box_of_an_image(
    tmp_path: Path, rows: list[tuple[str, int]], listed: list[str] | None, streamed: bool
) -> None:
    source = _oi_source(tmp_path / "src", rows, listed)
    with patch.object(openimages, "_gather_boxes", wraps=openimages._gather_boxes) as gather:
        _converted(source, tmp_path / "out")
    assert gather.called is not streamed
    _check_records(tmp_path / "out", rows, listed)


def _runs_by_csv(path: Path) -> list[str] | None:
    """The runs of ImageIDs of a bbox table read with the csv module, ``None`` when an image's rows are apart."""
    with path.open(newline="") as stream:
        ids = [row[0].strip() for row in csv.reader(stream, skipinitialspace=True) if any(c.strip() for c in row)]
    runs = [image_id for k, image_id in enumerate(ids[1:], start=1) if image_id != ids[k - 1] or k == 1]
    return runs if len(runs) == len(set(runs)) else None


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(st.tuples(st.sampled_from(sorted(SIZE)), st.integers(0, len(MIDS) - 1)), min_size=1, max_size=10),
    listed=st.none() | st.lists(st.sampled_from(sorted(SIZE)), unique=True, max_size=4),
    style=st.sampled_from(["plain", "crlf", "quoted", "blank"]),
)
def test_streaming_and_gathering_write_the_same_bytes(
    tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[str, int]], listed: list[str] | None, style: str
) -> None:
    root = tmp_path_factory.mktemp("oi")
    source = _oi_source(root / "src", rows, listed, style=style)
    table = source / "annotations" / "train-annotations-bbox.csv"
    scanned = openimages._scan_runs([table])
    by_csv = _runs_by_csv(table)
    if style != "quoted":  # the quick look stands back only from quotes here, and never disagrees with csv
        assert scanned == by_csv
    assert scanned is None or scanned == by_csv
    streamed = _converted(source, root / "streamed")
    with patch.object(openimages, "_scan_runs", return_value=None):
        gathered = _converted(source, root / "gathered")
    assert streamed == gathered
    _check_records(root / "streamed", rows, listed)


def test_a_bad_row_of_a_streamed_table_names_its_file_and_row(tmp_path: Path) -> None:
    source = _oi_source(tmp_path / "src", [("a", 0), ("a", 1), ("b", 2), ("b", 0)])
    table = source / "annotations" / "train-annotations-bbox.csv"
    lines = table.read_text().splitlines()
    lines[4] = lines[4].replace("xclick,/m/a,1,0.1875", "xclick,/m/a,1,x")  # row 5: the second box of b
    assert "x,0.4375" in lines[4]
    table.write_text("\n".join(lines) + "\n")
    assert openimages._scan_runs([table]) == ["a", "b"]
    result = runner.invoke(app, ["convert", "openimages", str(source), "-o", str(tmp_path / "out")])
    assert result.exit_code != 0
    assert "train-annotations-bbox.csv" in result.output and "row 5" in result.output
    assert "expected XMin a number" in result.output
    convert("openimages", source, tmp_path / "skip", on_error="skip")
    assert [r["id"] for r in open_dataset(tmp_path / "skip").records("train")] == ["a"]


@pytest.mark.parametrize("split", ["train2017", "val-2.x", "Test_A"])
def test_any_split_name_annonorm_allows_reads_back(tmp_path: Path, split: str) -> None:
    # The file names carry the split (<split>-annotations-bbox.csv); a reader that knew only letters read a
    # train2017 export back as images without boxes, silently.
    from annonorm.testing import write_dataset

    record = {"image": "a.jpg", "width": 40, "height": 20, "labels": ["cat"], "counts": {"cat": 1},
              "boxes": [{"name": "cat", "x1": 4.0, "y1": 2.0, "x2": 20.0, "y2": 10.0}]}  # fmt: skip
    write_dataset(tmp_path / "norm", ["cat"], {split: [record]})
    export("openimages", tmp_path / "norm", tmp_path / "oi")
    convert("openimages", tmp_path / "oi", tmp_path / "back")
    back = list(open_dataset(tmp_path / "back").records(split))
    assert [len(r["boxes"]) for r in back] == [1]
    assert [(b["x1"], b["y1"], b["x2"], b["y2"]) for b in back[0]["boxes"]] == [(4.0, 2.0, 20.0, 10.0)]
