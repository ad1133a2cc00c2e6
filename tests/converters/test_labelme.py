"""LabelMe JSON (issue 14, item 5): the mappings alone, then ``annonorm convert labelme`` end to end.

Expected instances, rings and pixels are computed here from the JSON with LabelMe's own definitions
(shapes grouped by ``(label, group_id)``, ``__ignore__`` dropped, a mask placed at its first point),
independently of the converter; masks are checked against pycocotools' encoding of the whole canvas.
"""

from __future__ import annotations

import base64
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from pycocotools import mask as mask_utils
from typer.testing import CliRunner

from annonorm.api import convert
from annonorm.cli import app
from annonorm.converters.labelme import (
    LabelmeConverter,
    ShapeProblem,
    box_to_labelme_shapes,
    labelme_image_path,
    labelme_shapes_to_boxes,
    mask_png_to_rle,
    record_to_labelme,
)
from annonorm.engine import Execution
from annonorm.io import open_dataset

runner = CliRunner()
PEER_XML = Path(__file__).resolve().parents[3] / "shared" / "peer_data" / "datumaro" / "labelme_dataset"


def png_b64(mask: np.ndarray) -> str:
    stream = io.BytesIO()
    Image.fromarray(mask.astype(bool)).save(stream, format="PNG")
    return base64.b64encode(stream.getvalue()).decode("ascii")


def shape(label: str, kind: str, points: list[list[float]], group_id: int | None = None, **more: Any) -> dict:
    return {"label": label, "points": points, "group_id": group_id, "shape_type": kind, "flags": {}, **more}


def document(shapes: list[dict], image_path: str, width: int | None = 40, height: int | None = 30, **more: Any) -> dict:
    return {
        "version": "5.5.0",
        "flags": more.pop("flags", {}),
        "shapes": shapes,
        "imagePath": image_path,
        "imageData": None,
        "imageHeight": height,
        "imageWidth": width,
        **more,
    }


def write_json(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def write_image(path: Path, width: int = 40, height: int = 30) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height)).save(path)


# ---------------------------------------------------------------------------------------------- mappings alone


def test_image_path_reads_windows_separators_relative_to_the_json_folder() -> None:
    assert labelme_image_path(image_path="..\\images\\a.jpg", folder="annotations") == "images/a.jpg"
    assert labelme_image_path(image_path="./a.jpg", folder="") == "a.jpg"
    assert labelme_image_path(image_path="C:\\data\\a.jpg", folder="x") is None
    assert labelme_image_path(image_path="/home/u/a.jpg", folder="") is None
    with pytest.raises(ValueError, match="climb out"):
        labelme_image_path(image_path="..\\..\\a.jpg", folder="annotations")


def test_rectangle_corners_in_either_order_and_ignore_dropped() -> None:
    boxes = labelme_shapes_to_boxes(
        shapes=[
            shape("cat", "rectangle", [[20, 20], [12, 15]]),
            shape("__ignore__", "polygon", [[0, 0], [1, 0], [1, 1]]),
            shape("dog", "rectangle", [[1, 2], [5, 2], [5, 9], [1, 9]]),  # AnyLabeling's 4 corners
        ],
        width=40,
        height=30,
    )
    assert [(b["name"], b["x1"], b["y1"], b["x2"], b["y2"]) for b in boxes] == [
        ("cat", 12.0, 15.0, 20.0, 20.0),
        ("dog", 1.0, 2.0, 5.0, 9.0),
    ]
    assert all("polygon" not in b for b in boxes)


def test_shapes_sharing_label_and_group_id_are_one_instance() -> None:
    boxes = labelme_shapes_to_boxes(
        shapes=[
            shape("dog", "polygon", [[1, 1], [4, 1], [4, 4]], 3),
            shape("cat", "polygon", [[1, 1], [2, 1], [2, 2]], 3),  # same group id, other label: its own
            shape("dog", "polygon", [[10, 10], [14, 10], [14, 14]], 3),
            shape("dog", "polygon", [[5, 5], [6, 5], [6, 6]]),  # no group id: its own
        ],
        width=40,
        height=30,
    )
    assert [(b["name"], len(b.get("polygon", []))) for b in boxes] == [("dog", 2), ("cat", 1), ("dog", 1)]
    assert (boxes[0]["x1"], boxes[0]["y1"], boxes[0]["x2"], boxes[0]["y2"]) == (1.0, 1.0, 14.0, 14.0)
    assert boxes[0]["attributes"] == {"group_id": 3}


def test_circle_point_lines_and_oriented_rectangle() -> None:
    circle, point, line, obb = labelme_shapes_to_boxes(
        shapes=[
            shape("c", "circle", [[20, 15], [25, 15]]),
            shape("p", "point", [[3, 4]]),
            shape("l", "linestrip", [[0, 0], [5, 5], [8, 2]]),
            shape("o", "oriented_rectangle", [[10, 0], [20, 10], [10, 20], [0, 10]]),
        ],
        width=40,
        height=30,
    )
    ring = circle["polygon"][0]
    assert len(ring) == 64 and all(
        math.isclose(math.hypot(x - 20, y - 15), 5, abs_tol=1e-5) for x, y in zip(ring[::2], ring[1::2], strict=True)
    )
    assert (circle["x1"], circle["y1"], circle["x2"], circle["y2"]) == (15.0, 10.0, 25.0, 20.0)
    assert (point["x1"], point["x2"], point["y1"], point["y2"]) == (3.0, 3.0, 4.0, 4.0)
    assert line["attributes"] == {"linestrip": [0.0, 0.0, 5.0, 5.0, 8.0, 2.0]} and line["x2"] == 8.0
    assert obb["obb"] == [10.0, 0.0, 20.0, 10.0, 10.0, 20.0, 0.0, 10.0] and obb["x2"] == 20.0


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        (shape("a", "polygon", [[0, 0], [1, 1]]), "a polygon has 2 points; expected at least 3"),
        (shape("a", "rectangle", [[0, 0], [1, 1], [2, 2]]), "expected 2 or 4"),
        (shape("a", "bezier", [[0, 0]]), "unknown shape_type 'bezier'"),
        (shape("a", "point", [[math.inf, 0]]), "not a finite number"),
        (shape("a", "rectangle", [[0, 0], [1, 1]], score=1.5), "outside [0, 1]"),
        (shape("a", "mask", [[0, 0], [1, 1]], mask="!!"), "not a base64 PNG"),
        (shape(" ", "point", [[0, 0]]), "empty label"),
    ],
)
def test_a_shape_breaking_a_rule_is_named(bad: dict, fragment: str) -> None:
    good = shape("ok", "point", [[1, 1]])
    with pytest.raises(ShapeProblem) as caught:
        labelme_shapes_to_boxes(shapes=[good, bad], width=40, height=30)
    assert caught.value.index == 1 and fragment in caught.value.message


@settings(max_examples=40, deadline=None)
@given(
    data=st.data(),
    width=st.integers(1, 12),
    height=st.integers(1, 12),
)
def test_mask_rle_is_pycocotools_encoding_of_the_placed_patch(data: st.DataObject, width: int, height: int) -> None:
    rows, columns = data.draw(st.integers(1, 8)), data.draw(st.integers(1, 8))
    left, top = data.draw(st.integers(-columns + 1, width - 1)), data.draw(st.integers(-rows + 1, height - 1))
    bits = data.draw(st.lists(st.booleans(), min_size=rows * columns, max_size=rows * columns))
    patch = np.array(bits, dtype=bool).reshape(rows, columns)
    rle, extent = mask_png_to_rle(data=png_b64(patch), left=left, top=top, width=width, height=height)
    canvas = np.zeros((height + 16, width + 16), dtype=np.uint8)  # placed by plain slicing, then cut to the image
    canvas[top + 8 : top + 8 + rows, left + 8 : left + 8 + columns] = patch
    expected = mask_utils.encode(np.asfortranarray(canvas[8 : 8 + height, 8 : 8 + width]))
    assert rle == {"size": [height, width], "counts": expected["counts"].decode("ascii")}
    assert extent == [max(left, 0), max(top, 0), min(left + columns, width), min(top + rows, height)]


def test_writer_groups_rings_and_refuses_two_instances_it_cannot_tell_apart() -> None:
    rings = [[1.0, 1.0, 4.0, 1.0, 4.0, 4.0], [6.0, 6.0, 8.0, 6.0, 8.0, 8.0]]
    record = {
        "labels": ["cat", "day"],
        "width": 40,
        "height": 30,
        "boxes": [
            {"name": "cat", "x1": 1.0, "y1": 1.0, "x2": 8.0, "y2": 8.0, "polygon": rings},
            {"name": "cat", "x1": 2.0, "y1": 2.0, "x2": 2.0, "y2": 2.0, "attributes": {"group_id": 4}},
        ],
    }
    doc = record_to_labelme(record=record, image_path="a.jpg")
    assert [(s["shape_type"], s["group_id"]) for s in doc["shapes"]] == [("polygon", 5), ("polygon", 5), ("point", 4)]
    assert doc["flags"] == {"day": True} and doc["imageData"] is None
    record["boxes"][0]["attributes"] = {"group_id": 4}
    with pytest.raises(ValueError, match="boxes 0 and 1 are both 'cat' with group_id 4"):
        record_to_labelme(record=record, image_path="a.jpg")
    assert box_to_labelme_shapes(box={"name": "r", "x1": 0, "y1": 1, "x2": 2, "y2": 3}, group_id=None)[0]["points"] == [
        [0, 1],
        [2, 3],
    ]


# ---------------------------------------------------------------------------------------------- end to end


def expected_instances(doc: dict) -> list[tuple[str, int]]:
    """(label, rings) per instance, in LabelMe's grouping, counted from the document alone."""
    groups: dict[Any, list[dict]] = {}
    for index, item in enumerate(doc["shapes"]):
        if item["label"] == "__ignore__":
            continue
        key = (item["label"], item["group_id"]) if item.get("group_id") is not None else index
        groups.setdefault(key, []).append(item)
    result = []
    for members in groups.values():
        area = [m for m in members if m["shape_type"] in ("polygon", "circle", "rectangle", "oriented_rectangle")]
        lone = len(members) == 1 and members[0]["shape_type"] in ("rectangle", "oriented_rectangle")
        result.append((members[0]["label"], 0 if lone else len(area)))
    return result


def make_tree(root: Path) -> dict[str, dict]:
    """A LabelMe tree in train/ and val/ folders: JSON beside its image and in annotations/."""
    patch = np.zeros((4, 5), dtype=bool)
    patch[1:3, 1:4] = True
    docs = {
        "train/annotations/a.json": document(
            [
                shape("cat", "polygon", [[1, 1], [10, 2], [5, 9]]),
                shape("cat", "rectangle", [[20, 20], [12, 15]], description="left"),
                shape("dog", "polygon", [[1, 1], [4, 1], [4, 4]], 3),
                shape("dog", "polygon", [[10, 10], [14, 10], [14, 14]], 3),
                shape("dog", "circle", [[20, 15], [25, 15]]),
                shape("m", "mask", [[30, 20], [34, 23]], mask=png_b64(patch)),
                shape("o", "oriented_rectangle", [[10, 0], [20, 10], [10, 20], [0, 10]]),
                shape("__ignore__", "polygon", [[0, 0], [1, 0], [1, 1]]),
            ],
            "..\\images\\a.jpg",
            flags={"day": True, "night": False},
            lineColor=[0, 255, 0, 128],
        ),
        "train/b.json": document([shape("cat", "point", [[3, 4]]), shape("l", "line", [[0, 0], [5, 5]])], "b.png"),
        "val/c.json": document([], "c.jpg", width=None, height=None),  # size from the image header
    }
    for relative, doc in docs.items():
        write_json(root / relative, doc)
    write_image(root / "train/images/a.jpg")
    write_image(root / "train/b.png")
    write_image(root / "val/c.jpg", 17, 9)
    (root / "labels.txt").write_text("__ignore__\n_background_\nl\ncat\n", encoding="utf-8")
    return docs


def test_convert_validate_and_counts_from_the_json(tmp_path: Path) -> None:
    docs = make_tree(tmp_path / "src")
    assert LabelmeConverter.sniff(tmp_path / "src")
    result = runner.invoke(app, ["convert", "labelme", str(tmp_path / "src"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["validate", str(tmp_path / "out"), "--check-images"])
    assert result.exit_code == 0, result.output
    dataset = open_dataset(tmp_path / "out")
    assert sorted(dataset.manifest.splits) == ["train", "val"]
    assert dataset.manifest.category_names[:2] == ["l", "cat"]  # labels.txt first, its two specials left out
    records = {r["image"]: r for split in dataset.manifest.splits for r in dataset.records(split)}
    images = {
        "train/annotations/a.json": "train/images/a.jpg",
        "train/b.json": "train/b.png",
        "val/c.json": "val/c.jpg",
    }
    for relative, doc in docs.items():
        record = records[images[relative]]
        got = [(b["name"], len(b.get("polygon", []))) for b in record["boxes"]]
        assert got == expected_instances(doc), relative
    a = records["train/images/a.jpg"]
    assert a["labels"][0] == "day" and "night" not in a["labels"] and a["attributes"] == {"lineColor": [0, 255, 0, 128]}
    canvas = np.zeros((30, 40), dtype=np.uint8)
    canvas[21:23, 31:34] = 1
    mask_box = next(b for b in a["boxes"] if b["name"] == "m")
    assert mask_box["rle"]["counts"] == mask_utils.encode(np.asfortranarray(canvas))["counts"].decode("ascii")
    assert (records["val/c.jpg"]["width"], records["val/c.jpg"]["height"]) == (17, 9)


def test_round_trip_through_the_writer(tmp_path: Path) -> None:
    make_tree(tmp_path / "src")
    for args in (
        ["convert", "labelme", str(tmp_path / "src"), "-o", str(tmp_path / "one")],
        ["export", "labelme", str(tmp_path / "one"), "-o", str(tmp_path / "written")],
        ["convert", "labelme", str(tmp_path / "written"), "-o", str(tmp_path / "two")],
        ["export", "labelme", str(tmp_path / "two"), "-o", str(tmp_path / "again")],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    one, two = open_dataset(tmp_path / "one"), open_dataset(tmp_path / "two")
    assert one.manifest.categories == two.manifest.categories
    for split in one.manifest.splits:
        assert sorted(one.records(split), key=lambda r: r["image"]) == sorted(
            two.records(split), key=lambda r: r["image"]
        )
    written = {p.relative_to(tmp_path / "written"): p.read_bytes() for p in (tmp_path / "written").rglob("*.*")}
    again = {p.relative_to(tmp_path / "again"): p.read_bytes() for p in (tmp_path / "again").rglob("*.*")}
    assert written == again
    doc = json.loads((tmp_path / "written/train/images/a.json").read_text())
    assert doc["imagePath"] == "a.jpg" and doc["imageData"] is None


def test_copy_images_puts_them_where_image_path_points(tmp_path: Path) -> None:
    make_tree(tmp_path / "src")
    assert runner.invoke(app, ["convert", "labelme", str(tmp_path / "src"), "-o", str(tmp_path / "one")]).exit_code == 0
    args = ["export", "labelme", str(tmp_path / "one"), "-o", str(tmp_path / "w"), "--copy-images", "copy"]
    assert runner.invoke(app, args).exit_code == 0
    for path in (tmp_path / "w").rglob("*.json"):
        doc = json.loads(path.read_text())
        assert (path.parent / doc["imagePath"]).is_file(), path


def test_sniff_leaves_mit_labelme_xml_and_coco_alone(tmp_path: Path) -> None:
    write_json(tmp_path / "coco" / "instances.json", {"images": [], "annotations": [], "categories": []})
    assert not LabelmeConverter.sniff(tmp_path / "coco")
    if PEER_XML.is_dir():
        assert not LabelmeConverter.sniff(PEER_XML)


def coco_of(mask: np.ndarray) -> dict[str, Any]:
    """pycocotools' own compressed RLE of a boolean mask."""
    encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in encoded["size"]], "counts": encoded["counts"].decode("ascii")}


def placed(shape: dict[str, Any], width: int, height: int) -> np.ndarray:
    """A mask shape's PNG put on the canvas at its first point, as labelme's shape_to_mask does."""
    with Image.open(io.BytesIO(base64.b64decode(shape["mask"]))) as image:
        patch = np.asarray(image).astype(bool)
    left, top = (int(v) for v in shape["points"][0])
    assert [left + patch.shape[1] - 1, top + patch.shape[0] - 1] == shape["points"][1]
    canvas = np.zeros((height, width), dtype=bool)
    canvas[top : top + patch.shape[0], left : left + patch.shape[1]] = patch
    return canvas


def test_writer_mask_keeps_pixels_outside_the_box_and_a_rectangle_keeps_the_box() -> None:
    mask = np.zeros((30, 40), dtype=bool)
    mask[3:6, 4:7] = True  # inside the box
    mask[25, 35:38] = True  # far outside it
    box = {"name": "m", "x1": 2.5, "y1": 1.25, "x2": 10.0, "y2": 8.0, "rle": coco_of(mask), "score": 0.5}
    doc = record_to_labelme(record={"width": 40, "height": 30, "boxes": [box]}, image_path="a.jpg")
    assert [(s["shape_type"], s["group_id"]) for s in doc["shapes"]] == [("mask", 1), ("rectangle", 1)]
    assert np.array_equal(placed(doc["shapes"][0], 40, 30), mask)  # no pixel lost
    assert doc["shapes"][1]["points"] == [[2.5, 1.25], [10.0, 8.0]]
    (back,) = labelme_shapes_to_boxes(shapes=doc["shapes"], width=40, height=30)
    assert {k: back[k] for k in box} == box and back["attributes"] == {"group_id": 1}


def test_writer_mask_of_an_integer_box_around_it_is_one_shape_of_the_box_region() -> None:
    mask = np.zeros((30, 40), dtype=bool)
    mask[10:12, 20:25] = True
    box = {"name": "m", "x1": 18.0, "y1": 9.0, "x2": 26.0, "y2": 15.0, "rle": coco_of(mask)}
    (shape,) = box_to_labelme_shapes(box=box, group_id=None)
    assert shape["shape_type"] == "mask" and shape["points"] == [[18.0, 9.0], [25.0, 14.0]]
    assert np.array_equal(placed(shape, 40, 30), mask)
    (back,) = labelme_shapes_to_boxes(shapes=[shape], width=40, height=30)
    assert back == box
    empty = {**box, "rle": coco_of(np.zeros((30, 40), dtype=bool))}
    (shape,) = box_to_labelme_shapes(box=empty, group_id=None)
    assert labelme_shapes_to_boxes(shapes=[shape], width=40, height=30) == [empty]


def test_a_pool_of_workers_gives_the_output_of_one_process(tmp_path: Path) -> None:
    make_tree(tmp_path / "src")
    for n in range(30):  # classes first seen in later files, and one broken file, skipped in its place
        points = [[n, 1]] if n != 5 else [[1, 1], [2, 2]]  # n05: a polygon of two points
        write_json(
            tmp_path / f"src/train/n{n:02d}.json",
            document([shape(f"k{n % 7}", "polygon" if n == 5 else "point", points)], f"n{n:02d}.jpg"),
        )
    one = convert("labelme", tmp_path / "src", tmp_path / "one", on_error="skip", workers=1)
    pool = Execution(min_parallel=0)  # the pool even for 33 files
    two = convert("labelme", tmp_path / "src", tmp_path / "two", on_error="skip", workers=2, execution=pool)
    trees = [{p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} for out in (one.out, two.out)]
    assert trees[0] == trees[1]
    assert [str(e) for e in one.skipped] == [str(e) for e in two.skipped]
    assert len(one.skipped) == 1 and "n05.json" in str(one.skipped[0]) and "shapes[0]" in str(one.skipped[0])
    names = one.manifest.category_names
    assert names[:2] == ["l", "cat"] and names.index("k1") < names.index("k6")
