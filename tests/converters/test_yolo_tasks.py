"""YOLO segment, OBB and pose rows, data.yaml layouts (image lists, lists of folders, ``path``), both ways.

Expected counts and coordinates are computed here from the label text (fractions times the image side),
independently of the converter.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from peer import PEER_DATA
from PIL import Image
from typer.testing import CliRunner

from annonorm.api import convert, export
from annonorm.cli import app
from annonorm.converters.base import make_record
from annonorm.converters.yolo import box_to_yolo_row, row_kind, yolo_row_to_box
from annonorm.errors import ParseError
from annonorm.io import open_dataset
from annonorm.sources.classlists import data_yaml_fields, data_yaml_pose
from annonorm.sources.layouts import existing_tail, swap_last_folder
from annonorm.validation import validate_dataset

runner = CliRunner()
CVAT_YOLO = PEER_DATA.parent / "cvat-ai-datumaro" / "yolo_dataset"
needs_peer = pytest.mark.skipif(not PEER_DATA.is_dir(), reason=f"peer_data is not on this machine ({PEER_DATA})")

#: Peer case -> values per keypoint (pose cases) or None.
TASK_CASES = {
    "yolov8_segmentation": None,
    "yolov8_oriented_boxes": None,
    "yolov8_pose": 3,
    "yolov8_pose_two_values_per_point": 2,
    "yolov8_detection_with_list_of_imgs": None,
    "yolov8_detection_with_subset_txt": None,
    "yolov8_detection": None,
}


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def image(path: Path, width: int = 20, height: int = 10) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (width, height)).save(path)
    return path


def source_counts(label: Path, dims: int | None) -> list[tuple[int, int]]:
    """(rings, keypoints) per row of a label file, by the row's length alone."""
    counts = []
    for line in label.read_text().splitlines():
        values = line.split()[1:]
        if not values:
            continue
        if dims is not None:
            counts.append((0, (len(values) - 4) // dims))
        else:
            counts.append((1 if len(values) > 4 and len(values) != 8 else 0, 0))
    return counts


# ---------------------------------------------------------------------------------------------- peer data


@needs_peer
@pytest.mark.parametrize("case", sorted(TASK_CASES))
def test_peer_task_case_gives_the_boxes_rings_and_keypoints_of_its_rows(case: str, tmp_path: Path) -> None:
    root = CVAT_YOLO / case
    done = runner.invoke(app, ["convert", "yolo", str(root), "-o", str(tmp_path / "out")])
    assert done.exit_code == 0, done.output
    assert validate_dataset(tmp_path / "out", check_images=True).errors == []
    dims = TASK_CASES[case]
    (record,) = open_dataset(tmp_path / "out").records("train")
    want = source_counts(root / "labels/train/1.txt", dims)
    got = [(len(b.get("polygon", [])), len(b.get("keypoints", []))) for b in record["boxes"]]
    assert got == want
    text = (root / "labels/train/1.txt").read_text().split()
    if case == "yolov8_oriented_boxes":
        corners = [float(v) for v in text[1:9]]
        expected = [min(max(v, 0.0), 1.0) * (10 if i % 2 else 15) for i, v in enumerate(corners)]
        assert record["boxes"][0]["obb"] == pytest.approx(expected, abs=1e-6)
        assert all(min(b["obb"][1::2]) >= 0 for b in record["boxes"])  # y = -0.0098 clipped to the image
    if dims is not None:
        manifest = json.loads((tmp_path / "out/annonorm.json").read_text())
        assert manifest["categories"][0]["keypoints"] == ["0", "1", "2"]
        assert record["boxes"][0]["keypoints"][1] == pytest.approx([0.3 * 15, 0.4 * 10, 2])


@needs_peer
def test_roboflow_yolo_obb_is_dota_text_and_refused_saying_so(tmp_path: Path) -> None:
    done = runner.invoke(
        app, ["convert", "yolo", str(PEER_DATA / "roboflow_dataset/yolo_obb"), "-o", str(tmp_path / "o")]
    )
    assert done.exit_code == 2
    assert "DOTA format" in done.output and "Traceback" not in done.output
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------------------------------------- tasks


def obb_tree(tmp_path: Path, rows: str, yaml: str = "names: [a, b]\n") -> Path:
    root = tmp_path / "src"
    write(root / "data.yaml", yaml)
    image(root / "images/train/x.png", 20, 10)
    image(root / "images/train/y.png", 20, 10)
    write(root / "labels/train/x.txt", rows)
    return root


def test_eight_values_are_an_obb_unless_task_segment(tmp_path: Path) -> None:
    root = obb_tree(tmp_path, "1 0.1 0.1 0.5 0.1 0.5 0.5 0.1 0.5\r\n0 0.5 0.5 0.2 0.2\r\n")  # CRLF
    convert("yolo", root, tmp_path / "auto")
    (x, _) = open_dataset(tmp_path / "auto").records("train")
    assert x["boxes"][0]["obb"] == [2.0, 1.0, 10.0, 1.0, 10.0, 5.0, 2.0, 5.0]
    assert "polygon" not in x["boxes"][1] and "obb" not in x["boxes"][1]  # a box row stays a box
    convert("yolo", root, tmp_path / "seg", task="segment")
    (x, _) = open_dataset(tmp_path / "seg").records("train")
    assert x["boxes"][0]["polygon"] == [[2.0, 1.0, 10.0, 1.0, 10.0, 5.0, 2.0, 5.0]]
    convert("yolo", root, tmp_path / "det", task="detect")
    (x, _) = open_dataset(tmp_path / "det").records("train")
    assert set(x["boxes"][0]) == {"name", "x1", "y1", "x2", "y2"}


def test_a_polygon_after_the_task_was_taken_as_obb_names_both_places(tmp_path: Path) -> None:
    root = obb_tree(tmp_path, "1 0.1 0.1 0.5 0.1 0.5 0.5 0.1 0.5\n")
    bad = write(root / "labels/train/y.txt", "0 0.1 0.1 0.5 0.1 0.5 0.5\n")
    with pytest.raises(
        ParseError, match=r"task obb, the task taken from .*x\.txt:line 1; pass --task segment"
    ) as raised:
        convert("yolo", root, tmp_path / "out")
    assert raised.value.file == str(bad) and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("0 0.5 0.5 0.2 0.2 0.1 0.1 2\n", "kpt_shape \\[2, 3\\]"),
        ("0 0.5 0.5 0.2 0.2 0.1 0.1 2 0.2 0.2 5\n", "visibility 0, 1 or 2, found 5"),
        ("0 0.5 0.5 0.2 0.2 0.1 1.5 2 0.2 0.2 1\n", "in 0..1"),
    ],
)
def test_bad_pose_rows(tmp_path: Path, rows: str, message: str) -> None:
    root = obb_tree(tmp_path, rows, "kpt_shape: [2, 3]\nnames: [a, b]\n")
    done = runner.invoke(app, ["convert", "yolo", str(root), "-o", str(tmp_path / "out")])
    assert done.exit_code in (1, 2) and "x.txt:line 1" in done.output, done.output
    assert __import__("re").search(message, done.output)


def test_unlabeled_keypoints_have_no_position_and_flip_idx_is_kept(tmp_path: Path) -> None:
    yaml = "kpt_shape: [2, 3]\nflip_idx: [1, 0]\nnames: [a, b]\n"
    root = obb_tree(tmp_path, "1 0.5 0.5 0.2 0.2 0.3 0.4 0 0.25 0.5 1\n", yaml)
    result = convert("yolo", root, tmp_path / "out")
    (x, _) = open_dataset(result.out).records("train")
    assert x["boxes"][0]["keypoints"] == [[0.0, 0.0, 0], [5.0, 5.0, 1]]
    assert result.manifest.attributes == {"flip_idx": [1, 0]}
    export("yolo", result.out, tmp_path / "yolo")
    data = (tmp_path / "yolo/data.yaml").read_text()
    assert "kpt_shape: [2, 3]" in data and "flip_idx: [1, 0]" in data and "task: pose" in data
    row = (tmp_path / "yolo/labels/train/x.txt").read_text()
    assert row == "1 0.500000 0.500000 0.200000 0.200000 0.000000 0.000000 0 0.250000 0.500000 1\n"


def test_pose_without_kpt_shape_and_a_bad_flip_idx_are_refused(tmp_path: Path) -> None:
    root = obb_tree(tmp_path, "0 0.5 0.5 0.2 0.2\n")
    with pytest.raises(ParseError, match="needs the kpt_shape"):
        convert("yolo", root, tmp_path / "a", task="pose")
    write(root / "data.yaml", "kpt_shape: [2, 3]\nflip_idx: [0, 0]\nnames: [a, b]\n")
    with pytest.raises(ParseError, match=r"flip_idx: expected a reordering of 0\.\.1") as raised:
        convert("yolo", root, tmp_path / "b")
    assert raised.value.location == "line 2"


# ---------------------------------------------------------------------------------------------- data.yaml layouts


def test_data_yaml_with_path_lists_of_folders_and_image_lists(tmp_path: Path) -> None:
    root = tmp_path / "src"
    write(root / "data.yaml", "path: ds\ntrain:\n  - images/a\n  - lists/more.txt\nval: images/v/z.png\nnames: [c]\n")
    for name in ("images/a/p.png", "images/b/q.png", "images/v/z.png", "images/b/not_listed.png"):
        image(root / "ds" / name)
    write(root / "ds/lists/more.txt", "./../images/b/q.png\n# a comment\n")
    write(root / "ds/labels/a/p.txt", "0 0.5 0.5 0.5 0.5\n")
    write(root / "ds/labels/b/q.txt", "0 0.5 0.5 0.5 0.5\n0 0.2 0.2 0.1 0.1\n")
    result = convert("yolo", root / "data.yaml", tmp_path / "out")
    got = {s: [(r["image"], len(r["boxes"])) for r in open_dataset(result.out).records(s)] for s in ("train", "val")}
    assert got == {"train": [("a/p.png", 1), ("b/q.png", 2)], "val": [("v/z.png", 0)]}
    assert validate_dataset(result.out, check_images=True).errors == []


def test_data_yaml_path_leaving_the_dataset_is_refused(tmp_path: Path) -> None:
    image(tmp_path / "outside/images/x.png")
    root = tmp_path / "src"
    write(root / "data.yaml", "train: ../../outside/images\nnames: [c]\n")
    write(root / "labels/x.txt", "")
    done = runner.invoke(app, ["convert", "yolo", str(root), "-o", str(tmp_path / "out")])
    assert done.exit_code == 2 and "leaves the dataset folder" in done.output and "line 1" in done.output
    assert not (tmp_path / "out").exists()


def test_data_yaml_fields_and_pose() -> None:
    text = "path: 'a b'  # c\ntrain:\n- x.txt\n- y\nkpt_shape: [17,\n 3]\nflip_idx: [1, 0, 2]\nnames: [q]\n"
    fields = data_yaml_fields(text=text)
    assert fields == {
        "path": (1, "a b"),
        "train": (2, ["x.txt", "y"]),
        "kpt_shape": (5, ["17", "3"]),
        "flip_idx": (7, ["1", "0", "2"]),
    }
    with pytest.raises(ValueError, match="line 7: flip_idx"):
        data_yaml_pose(fields)
    assert data_yaml_pose({"kpt_shape": (1, ["3", "2"])}) == (3, 2, None)
    for bad in (["3"], ["3", "4"], ["x", "3"], "3"):
        with pytest.raises(ValueError, match="line 1: kpt_shape"):
            data_yaml_pose({"kpt_shape": (1, bad)})
    with pytest.raises(ValueError, match="never closed"):
        data_yaml_fields(text="val: [a, b\n")


def test_layout_helpers(tmp_path: Path) -> None:
    image(tmp_path / "images/t/1.jpg")
    assert existing_tail(tmp_path, "data/images/t/1.jpg") == "images/t/1.jpg"
    assert existing_tail(tmp_path, "../images/t/1.jpg") is None
    assert swap_last_folder("images/a/images/x.jpg", "images", "labels", ".txt") == "images/a/labels/x.txt"
    assert swap_last_folder("a/x.jpg", "images", "labels", ".txt") is None


# ---------------------------------------------------------------------------------------------- writing


def test_row_kind() -> None:
    assert [row_kind(count=n, task=None) for n in (4, 5, 6, 8, 10)] == ["box", None, "polygon", "polygon", "polygon"]
    assert [row_kind(count=n, task="obb") for n in (4, 6, 8)] == ["box", None, "obb"]
    assert (
        row_kind(count=10, task="pose", kpt_values=6) == "pose" and row_kind(count=8, task="pose", kpt_values=6) is None
    )


def test_several_rings_are_one_row_joined_by_bridges() -> None:
    box = {"x1": 0, "y1": 0, "x2": 10, "y2": 10, "polygon": [[0, 0, 4, 0, 4, 4], [6, 6, 10, 6, 10, 10]]}
    row = box_to_yolo_row(task="segment", class_id=0, box=box, width=10, height=10).split()[1:]
    assert len(row) == 2 * (3 + 1 + 3 + 1)
    assert row[6:10] == ["0.000000", "0.000000", "0.600000", "0.600000"]  # closed at its start, then the bridge


side = st.integers(min_value=1, max_value=4000)


@st.composite
def task_box(draw: Any, task: str) -> tuple[dict[str, Any], int, int]:
    width, height = draw(side), draw(side)
    count = {"segment": draw(st.integers(3, 6)), "obb": 4, "pose": 1}[task]
    xs = draw(st.lists(st.floats(0, width), min_size=count, max_size=count))
    ys = draw(st.lists(st.floats(0, height), min_size=count, max_size=count))
    points = [round(v, 6) for xy in zip(xs, ys, strict=True) for v in xy]
    x1, y1, x2, y2 = min(points[0::2]), min(points[1::2]), max(points[0::2]), max(points[1::2])
    box: dict[str, Any] = {"name": "a", "x1": x1, "y1": y1, "x2": x2, "y2": y2}
    if task == "segment":
        box["polygon"] = [points]
    elif task == "obb":
        box["obb"] = points
    else:
        box["keypoints"] = [[points[0], points[1], 2], [0.0, 0.0, 0]]
    return box, width, height


@settings(max_examples=60, deadline=None)
@given(data=st.data(), task=st.sampled_from(["segment", "obb", "pose"]))
def test_rows_read_back_within_six_decimal_fractions_and_rewrite_byte_for_byte(data: Any, task: str) -> None:
    box, width, height = data.draw(task_box(task))
    row = box_to_yolo_row(task=task, class_id=0, box=box, width=width, height=height, keypoints=2)
    values = [float(v) for v in row.split()[1:]]
    kind = row_kind(count=len(values), task=task, kpt_values=6)
    assert kind is not None
    back = yolo_row_to_box(kind=kind, values=values, width=width, height=height, task=task)
    tolerance = 0.5e-6 * max(width, height) + 1e-6
    key = {"segment": "polygon", "obb": "obb", "pose": "keypoints"}[task]
    flat = (lambda v: [c for p in v for c in p]) if task != "obb" else (lambda v: v)
    assert flat(back[key]) == pytest.approx(flat(box[key]), abs=tolerance)
    if task != "pose":
        assert [back[k] for k in ("x1", "y1", "x2", "y2")] == pytest.approx(
            [box[k] for k in ("x1", "y1", "x2", "y2")], abs=tolerance
        )
    again = box_to_yolo_row(task=task, class_id=0, box={"name": "a", **back}, width=width, height=height, keypoints=2)
    assert again == row


@pytest.mark.parametrize("task", ["segment", "obb"])
def test_export_then_convert_keeps_the_geometry(tmp_path: Path, task: str) -> None:
    root = obb_tree(
        tmp_path,
        "1 0.1 0.1 0.5 0.1 0.5 0.5 0.1 0.5\n0 0.2 0.3 0.4 0.3 0.3 0.6\n"
        if task == "segment"
        else "1 0.1 0.1 0.5 0.1 0.5 0.5 0.1 0.5\n",
    )
    first = convert("yolo", root, tmp_path / "first", task=task)
    export("yolo", first.out, tmp_path / "yolo", images="copy")
    assert f"task: {task}" in (tmp_path / "yolo/data.yaml").read_text()
    back = convert("yolo", tmp_path / "yolo", tmp_path / "back")  # the task comes back from the rows
    before = [r["boxes"] for r in open_dataset(first.out).records("train")]
    after = [r["boxes"] for r in open_dataset(back.out).records("train")]
    assert after == before


def test_make_record_keeps_v2_fields() -> None:
    box = {"name": "a", "x1": 0.0, "y1": 0.0, "x2": 1.0, "y2": 1.0, "obb": [0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0]}
    assert make_record(image="x.png", width=2, height=2, boxes=[box])["boxes"] == [box]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.floats(-0.5, 1.5, allow_nan=False) | st.sampled_from([0.0, -0.0, 1.0, 0.5, 1 / 3]), max_size=40),
    st.integers(1, 100_000),
    st.integers(1, 100_000),
)
def test_row_points_are_rounded_as_one_by_one(values: list[float], width: int, height: int) -> None:
    from annonorm.geometry import fraction_points, round_coord

    values = values[: len(values) // 2 * 2]
    one_by_one = [round_coord(min(max(v, 0.0), 1.0) * (height if i % 2 else width)) for i, v in enumerate(values)]
    got = fraction_points(values, width, height)
    assert got == one_by_one
    assert all(type(v) is float for v in got)
