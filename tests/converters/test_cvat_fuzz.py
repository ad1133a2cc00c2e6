"""Properties of the CVAT converter on drawn exports.

- A drawn CVAT for images file (every shape kind, typed attributes, tags) reads into exactly the boxes,
  rings, keypoints and attributes the drawing says (computed here, not by the converter), and
  read -> write -> read gives the same records and a byte-identical second write.
- A valid file with one value replaced by drawn text, or cut at a drawn place, either converts into a
  valid dataset or fails with an :class:`~annonorm.errors.AnnonormError` (never another exception), and a
  failure leaves no output.
"""

from __future__ import annotations

import math
import re
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annonorm.api import convert, export
from annonorm.errors import AnnonormError
from annonorm.io import open_dataset
from annonorm.validation import validate_dataset

LABELS = ("cat", "dog", "sky")
WIDTH, HEIGHT = 40, 30
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _coordinate(limit: int) -> st.SearchStrategy[float]:
    return st.integers(0, limit * 100).map(lambda v: v / 100)


@st.composite
def _shape(draw: st.DrawFn) -> dict[str, Any]:
    """One shape: its XML tag and attributes, and what annonorm must read from it."""
    kind = draw(st.sampled_from(("box", "polygon", "polyline", "points", "mask")))
    label = draw(st.sampled_from(LABELS))
    fields: dict[str, str] = {"label": label}
    expect: dict[str, Any] = {"name": label, "rings": 0, "points": 0}
    if kind == "box":
        rotation = draw(st.sampled_from((0, 0, 30, 90, 181.5)))
        # A rotated box stays inside the image (one that leaves it is clipped: no longer a rectangle).
        low, side = (10, 8) if rotation else (0, WIDTH)
        x1, y1 = low + draw(_coordinate(side // 2)), low + draw(_coordinate(side // 2))
        x2, y2 = draw(st.floats(x1, x1 + side)), draw(st.floats(y1, min(y1 + side, HEIGHT)))
        fields |= {"xtl": str(x1), "ytl": str(y1), "xbr": str(min(x2, WIDTH)), "ybr": str(y2)}
        if rotation:
            fields["rotation"] = str(rotation)
        expect["obb"] = bool(rotation) and (x1, y1) != (x2, y2)  # a turned point is a point
        expect["rotation"] = float(rotation)
    elif kind == "mask":
        left, top = draw(st.integers(0, WIDTH - 1)), draw(st.integers(0, HEIGHT - 1))
        width, height = draw(st.integers(1, min(6, WIDTH - left))), draw(st.integers(1, min(6, HEIGHT - top)))
        bits = draw(st.lists(st.booleans(), min_size=width * height, max_size=width * height))
        runs, value, count = [], False, 0
        for bit in bits:
            if bit != value:
                runs.append(count)
                value, count = bit, 0
            count += 1
        runs.append(count)
        fields |= {"rle": ", ".join(map(str, runs)), "left": str(left), "top": str(top)}
        fields |= {"width": str(width), "height": str(height)}
        expect["pixels"] = sum(bits)
    else:
        count = draw(st.integers({"polygon": 3, "polyline": 2, "points": 1}[kind], 6))
        flat = [draw(_coordinate(WIDTH if i % 2 == 0 else HEIGHT)) for i in range(2 * count)]
        fields["points"] = ";".join(f"{flat[i]},{flat[i + 1]}" for i in range(0, len(flat), 2))
        expect["rings"] = int(kind == "polygon")
        expect["points"] = count if kind == "points" else 0
        if kind == "polyline":
            expect["polyline"] = flat
    attributes: dict[str, Any] = {}
    if draw(st.booleans()):
        attributes["age"] = draw(st.integers(-5, 99) | st.floats(-1e3, 1e3, allow_nan=False).map(lambda v: round(v, 3)))
    if draw(st.booleans()):
        attributes["fat"] = draw(st.booleans())
    if draw(st.booleans()):
        attributes["note"] = draw(st.text("abc xyz0123", max_size=6))
    if draw(st.booleans()):
        fields["occluded"] = "1"
        expect["occluded"] = True
    expect["attributes"] = attributes
    return {"kind": kind, "fields": fields, "attributes": attributes, "expect": expect}


def _meta() -> ET.Element:
    meta = ET.Element("meta")
    labels = ET.SubElement(ET.SubElement(meta, "task"), "labels")
    for name in LABELS:
        label = ET.SubElement(labels, "label")
        ET.SubElement(label, "name").text = name
        specs = ET.SubElement(label, "attributes")
        for attribute, kind in (("age", "number"), ("fat", "checkbox"), ("note", "text")):
            spec = ET.SubElement(specs, "attribute")
            ET.SubElement(spec, "name").text = attribute
            ET.SubElement(spec, "input_type").text = kind
    return meta


def _text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def cvat_file(images: list[dict[str, Any]]) -> bytes:
    """A CVAT for images 1.1 file of the drawn images, built with ElementTree (not the converter's writer)."""
    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = "1.1"
    root.append(_meta())
    for index, image in enumerate(images):
        fields = {"id": str(index), "name": f"img{index}.jpg", "width": str(WIDTH), "height": str(HEIGHT)}
        element = ET.SubElement(root, "image", fields)
        for shape in image["shapes"]:
            child = ET.SubElement(element, shape["kind"], shape["fields"])
            for name, value in shape["attributes"].items():
                ET.SubElement(child, "attribute", {"name": name}).text = _text(value)
        for tag in image["tags"]:
            ET.SubElement(element, "tag", {"label": tag})
    return ET.tostring(root, encoding="utf-8")


_IMAGES = st.lists(
    st.fixed_dictionaries(
        {"shapes": st.lists(_shape(), max_size=5), "tags": st.lists(st.sampled_from(LABELS), max_size=2, unique=True)}
    ),
    min_size=1,
    max_size=3,
)


def _records(path: Path) -> list[dict[str, Any]]:
    source = open_dataset(path)
    return [record for split in source.manifest.splits for record in source.records(split)]


def _check_box(box: dict[str, Any], want: dict[str, Any]) -> None:
    from pycocotools import mask as mask_utils

    assert box["name"] == want["name"]
    assert len(box.get("polygon") or ()) == want["rings"]
    assert sum(1 for p in box.get("keypoints") or () if p[2] == 2) == want["points"]
    attributes = dict(box.get("attributes") or {})
    assert attributes.pop("occluded", False) == want.get("occluded", False)
    if "polyline" in want:
        assert attributes.pop("polyline") == want["polyline"]
    if want.get("obb"):
        assert attributes.pop("rotation") == want["rotation"]
    assert attributes == want["attributes"]
    assert ("obb" in box) == want.get("obb", False)
    if "pixels" in want:
        rle = box["rle"]
        assert int(mask_utils.area({"size": rle["size"], "counts": rle["counts"].encode()})) == want["pixels"]
    if "obb" in box:  # the box is the hull of the oriented box
        xs, ys = box["obb"][0::2], box["obb"][1::2]
        assert math.isclose(box["x1"], min(xs)) and math.isclose(box["y2"], max(ys))


@SETTINGS
@given(_IMAGES)
def test_a_drawn_export_reads_as_drawn_and_survives_the_writer(images: list[dict[str, Any]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "annotations.xml").write_bytes(cvat_file(images))
        convert("cvat", root / "annotations.xml", root / "first")
        got = _records(root / "first")
        assert [r["image"] for r in got] == [f"img{i}.jpg" for i in range(len(images))]
        for record, image in zip(got, images, strict=True):
            assert len(record["boxes"]) == len(image["shapes"])
            for box, shape in zip(record["boxes"], image["shapes"], strict=True):
                _check_box(box, shape["expect"])
            boxed = {shape["expect"]["name"] for shape in image["shapes"]}
            assert set(record["labels"]) == boxed | set(image["tags"])
        assert validate_dataset(root / "first").valid
        export("cvat", root / "first", root / "written")
        convert("cvat", root / "written", root / "back")
        back = _records(root / "back")
        _same(back, got)
        export("cvat", root / "back", root / "again")
        if not any("obb" in box for record in got for box in record["boxes"]):
            assert (root / "again" / "default.xml").read_bytes() == (root / "written" / "default.xml").read_bytes()


def _split_rotated(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[float]]:
    """The records without the coordinates of their rotated boxes, and those coordinates: CVAT stores a rotated
    box as centre, sides and angle, and the 6-decimal corners of the rectangle they span move by rounding."""
    rest, coordinates = [], []
    for record in records:
        boxes = []
        for box in record["boxes"]:
            if "obb" in box:
                coordinates += [*box["obb"], *(box[k] for k in ("x1", "y1", "x2", "y2"))]
                box = {k: v for k, v in box.items() if k not in ("obb", "x1", "y1", "x2", "y2")}
            boxes.append(box)
        rest.append({**record, "boxes": boxes})
    return rest, coordinates


def _same(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    (got_rest, got_coordinates), (want_rest, want_coordinates) = _split_rotated(got), _split_rotated(want)
    assert got_rest == want_rest
    assert all(math.isclose(a, b, abs_tol=2e-6) for a, b in zip(got_coordinates, want_coordinates, strict=True))


_VALID = cvat_file(
    [
        {
            "shapes": [
                {
                    "kind": "box",
                    "fields": {"label": "cat", "xtl": "1", "ytl": "2", "xbr": "5", "ybr": "6", "rotation": "10"},
                    "attributes": {"age": 3, "fat": True},
                },
                {"kind": "polygon", "fields": {"label": "dog", "points": "1,1;5,1;3,4"}, "attributes": {}},
                {
                    "kind": "mask",
                    "fields": {"label": "sky", "rle": "1, 2, 1", "left": "0", "top": "0", "width": "2", "height": "2"},
                    "attributes": {"note": "x"},
                },
                {"kind": "points", "fields": {"label": "cat", "points": "2,2;3,3"}, "attributes": {}},
            ],
            "tags": ["sky"],
        }
    ]
).decode()
#: Where each XML attribute value of the valid file is.
_VALUES = [(m.start(1), m.end(1)) for m in re.finditer(r'="([^"]*)"', _VALID)]
_NASTY = ("nan", "-1", "1e999", "", "../a.jpg", "0,0", "9999999999999", "1,2;3", "true")


@SETTINGS
@given(st.data())
def test_a_damaged_export_converts_or_fails_with_one_annonorm_error(data: st.DataObject) -> None:
    if data.draw(st.booleans()):
        start, end = data.draw(st.sampled_from(_VALUES))
        replacement = data.draw(
            st.text(st.characters(blacklist_characters='"<&'), max_size=8) | st.sampled_from(_NASTY)
        )
        text = _VALID[:start] + replacement + _VALID[end:]
    else:
        text = _VALID[: data.draw(st.integers(0, len(_VALID) - 1))]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "annotations.xml").write_text(text, encoding="utf-8")
        try:
            convert("cvat", root / "annotations.xml", root / "out")
        except AnnonormError as error:
            assert str(error) and "\n" not in str(error)
            assert not (root / "out").exists()
            return
        assert validate_dataset(root / "out").valid
