"""WIDER Face (issue 15, item 9): the row mapping alone, the peer export end to end, the format's quirks.

Expected faces are read here straight from the ground-truth text with WIDER's definition (path, count, rows of
x y w h and six flags; a count of 0 followed by one dummy row), independently of the converter.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from peer import PEER_DATA
from PIL import Image
from typer.testing import CliRunner

from annonorm.api import convert
from annonorm.cli import app
from annonorm.converters.widerface import WiderfaceConverter, widerface_row_problem, widerface_row_to_box
from annonorm.io import open_dataset

runner = CliRunner()
PEER = PEER_DATA / "widerface_dataset"


def words(text: str) -> list[str]:
    return text.split()


FLAGS = ("blur", "expression", "illumination", "invalid", "occlusion", "pose")


def expected_faces(root: Path) -> dict[str, list[list[float]]]:
    """``WIDER_<split>/images/<path>`` -> its rows as numbers, by walking the text block by block."""
    found: dict[str, list[list[float]]] = {}
    for gt in sorted((root / "wider_face_split").glob("wider_face_*_bbx_gt.txt")):
        split = gt.name[len("wider_face_") : -len("_bbx_gt.txt")]
        lines = [line for line in gt.read_text().splitlines() if line.strip()]
        at = 0
        while at < len(lines):
            name, count = lines[at], int(lines[at + 1])
            rows = lines[at + 2 : at + 2 + count]
            found[f"WIDER_{split}/images/{name}"] = [[float(v) for v in row.split()] for row in rows]
            at += 2 + max(count, 1)
    return found


def test_a_row_is_a_face_with_its_six_flags() -> None:
    box = widerface_row_to_box(tokens=words("10 20 5 8 2 0 1 0 2 1"))
    assert box == {
        "name": "face",
        "x1": 10.0,
        "y1": 20.0,
        "x2": 15.0,
        "y2": 28.0,
        "attributes": {"blur": 2, "expression": 0, "illumination": 1, "invalid": 0, "occlusion": 2, "pose": 1},
    }


@pytest.mark.parametrize(
    ("row", "fragment"),
    [
        ("1 2 3 4 0 0 0 0 0", "found 9 values"),
        ("1 2 x 4 0 0 0 0 0 0", "not a number"),
        ("1 2 inf 4 0 0 0 0 0 0", "finite"),
        ("1 2 -3 4 0 0 0 0 0 0", "width and height >= 0"),
        ("1 2 3 4 0.5 0 0 0 0 0", "whole numbers"),
    ],
)
def test_a_bad_row_says_what_was_expected(row: str, fragment: str) -> None:
    problem = widerface_row_problem(tokens=row.split())
    assert problem is not None and fragment in problem
    with pytest.raises(ValueError, match=fragment):
        widerface_row_to_box(tokens=row.split())


def test_the_peer_export_converts_validates_and_keeps_every_face(tmp_path: Path) -> None:
    assert WiderfaceConverter.sniff(PEER)
    result = runner.invoke(app, ["convert", "widerface", str(PEER), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["validate", str(tmp_path / "out"), "--check-images"])
    assert result.exit_code == 0, result.output
    dataset = open_dataset(tmp_path / "out")
    assert dataset.manifest.category_names == ["face"]
    assert sorted(dataset.manifest.splits) == ["train", "val"]
    got = {}
    for split in dataset.manifest.splits:
        for record in dataset.records(split):
            with Image.open(PEER / record["image"]) as image:
                assert (record["width"], record["height"]) == image.size
            assert record["attributes"] == {"event": record["image"].split("/")[2]}
            assert record["counts"] == ({"face": len(record["boxes"])} if record["boxes"] else {})
            got[record["image"]] = [
                [b["x1"], b["y1"], b["x2"] - b["x1"], b["y2"] - b["y1"], *(b["attributes"][f] for f in FLAGS)]
                for b in record["boxes"]
            ]
    assert got == expected_faces(PEER)
    assert sum(len(v) for v in got.values()) == 6


def test_a_count_of_zero_has_one_dummy_row_that_is_no_face(tmp_path: Path) -> None:
    shutil.copytree(PEER, tmp_path / "src")
    gt = tmp_path / "src" / "wider_face_split" / "wider_face_val_bbx_gt.txt"
    gt.write_text("0--Parade/empty.jpg\n0\n0 0 0 0 0 0 0 0 0 0\n" + gt.read_text())
    convert("widerface", tmp_path / "src", tmp_path / "out")
    records = list(open_dataset(tmp_path / "out").records("val"))
    assert [len(r["boxes"]) for r in records] == [0, 3]
    assert expected_faces(tmp_path / "src")["WIDER_val/images/0--Parade/0_Parade_image_03.jpg"] == [
        [b["x1"], b["y1"], b["x2"] - b["x1"], b["y2"] - b["y1"], *b["attributes"].values()] for b in records[1]["boxes"]
    ]


def test_images_elsewhere_and_the_test_file_list(tmp_path: Path) -> None:
    (tmp_path / "src" / "wider_face_split").mkdir(parents=True)
    (tmp_path / "src" / "wider_face_split" / "wider_face_test_filelist.txt").write_text("3--Riot/x.jpg\n")
    (tmp_path / "pics" / "WIDER_test" / "images" / "3--Riot").mkdir(parents=True)
    Image.new("RGB", (12, 7)).save(tmp_path / "pics" / "WIDER_test" / "images" / "3--Riot" / "x.jpg")
    convert("widerface", tmp_path / "src", tmp_path / "out", images=tmp_path / "pics")
    (record,) = open_dataset(tmp_path / "out").records("test")
    assert record["image"] == "WIDER_test/images/3--Riot/x.jpg" and (record["width"], record["height"]) == (12, 7)
    assert record["boxes"] == []


def test_a_truncated_block_names_file_and_line_and_nothing_is_written(tmp_path: Path) -> None:
    shutil.copytree(PEER, tmp_path / "src")
    gt = tmp_path / "src" / "wider_face_split" / "wider_face_train_bbx_gt.txt"
    gt.write_text(gt.read_text().rstrip("\n").rsplit("\n", 1)[0] + "\n")
    result = runner.invoke(app, ["convert", "widerface", str(tmp_path / "src"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "wider_face_train_bbx_gt.txt:line" in result.output and "has 2 faces but the file ends" in result.output
    assert not (tmp_path / "out").exists()


face_rows = st.lists(
    st.tuples(st.integers(0, 30), st.integers(0, 30), st.integers(0, 9), st.integers(0, 9), st.integers(0, 2)),
    max_size=4,
)


@settings(max_examples=20, deadline=None)
@given(st.lists(face_rows, min_size=1, max_size=4))
def test_any_well_formed_file_gives_its_faces_back(images: list[list[tuple[int, ...]]]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "src" / "wider_face_split").mkdir(parents=True)
        text = ""
        for index, rows in enumerate(images):
            text += f"0--Parade/{index}.jpg\n{len(rows)}\n"
            text += "".join(f"{x} {y} {w} {h} {f} 0 0 0 {f} 0\n" for x, y, w, h, f in rows) or "0 " * 9 + "0\n"
        (root / "src" / "wider_face_split" / "wider_face_train_bbx_gt.txt").write_text(text)
        convert("widerface", root / "src", root / "out")
        records = list(open_dataset(root / "out").records("train"))
        assert [r["image"] for r in records] == [f"WIDER_train/images/0--Parade/{i}.jpg" for i in range(len(images))]
        for record, rows in zip(records, images, strict=True):
            got = [
                (b["x1"], b["y1"], b["x2"] - b["x1"], b["y2"] - b["y1"], b["attributes"]["blur"])
                for b in record["boxes"]
            ]
            assert got == [(*(float(v) for v in row[:4]), row[4]) for row in rows]
