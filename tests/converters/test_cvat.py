"""``annonorm convert cvat`` / ``export cvat`` (issue 14): the mappings alone, the peer exports end to end through
the CLI, the writer's round trip, and the hostile cases of ``tests/hostile/cases_cvat.py``.

Expected numbers are counted here from the XML with :mod:`xml.etree.ElementTree`, independently of the converter.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from peer import PEER_DATA
from PIL import Image
from pycocotools import mask as mask_utils
from typer.testing import CliRunner

from annonorm.api import convert, export
from annonorm.cli import app
from annonorm.converters.cvat import (
    CvatConverter,
    Keyframe,
    attribute_value,
    box_to_cvat_shapes,
    cvat_box_to_box,
    cvat_mask_to_box,
    cvat_points,
    cvat_points_to_box,
    frame_numbers,
    interpolate_track,
    obb_to_cvat_box,
    rle_to_cvat_mask,
)
from annonorm.errors import InvalidDataError
from annonorm.io import open_dataset
from annonorm.validation import validate_dataset

runner = CliRunner()
CVAT_PEER = PEER_DATA / "cvat_dataset"
needs_peer = pytest.mark.skipif(not CVAT_PEER.is_dir(), reason=f"peer_data is not on this machine ({CVAT_PEER})")
SHAPES = ("box", "polygon", "polyline", "points", "mask")


def records(dataset: Path) -> dict[str, list[dict[str, Any]]]:
    source = open_dataset(dataset)
    return {split: list(source.records(split)) for split in source.manifest.splits}


def cli(*args: str) -> Any:
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


# ---------------------------------------------------------------------------------------------- mappings alone


def test_points_text_is_read_as_flat_pairs() -> None:
    assert cvat_points(text="1.0,2;3,4.5") == [1.0, 2.0, 3.0, 4.5]
    for bad in ("1,2;3", "1,2,3", "", "1,2;;3,4", "a,b", "1,nan", "inf,1"):
        with pytest.raises(ValueError):
            cvat_points(text=bad)


def test_unrotated_box_is_its_corners_and_a_rotated_one_adds_its_obb() -> None:
    assert cvat_box_to_box(xtl=0, ytl=2, xbr=4, ybr=4) == {"x1": 0.0, "y1": 2.0, "x2": 4.0, "y2": 4.0}
    assert "obb" not in cvat_box_to_box(xtl=0, ytl=2, xbr=4, ybr=4, rotation=360)
    # A 4 x 2 box centred on (2, 3), turned 90 degrees clockwise (y down): its top-left corner goes to the top-right.
    box = cvat_box_to_box(xtl=0, ytl=2, xbr=4, ybr=4, rotation=90)
    assert box["obb"] == [3.0, 1.0, 3.0, 5.0, 1.0, 5.0, 1.0, 1.0]
    assert (box["x1"], box["y1"], box["x2"], box["y2"]) == (1.0, 1.0, 3.0, 5.0)
    with pytest.raises(ValueError, match="xtl <= xbr"):
        cvat_box_to_box(xtl=5, ytl=0, xbr=4, ybr=1)


@settings(max_examples=200, deadline=None)
@given(
    st.floats(400, 900),
    st.floats(400, 900),
    st.floats(0.5, 300),
    st.floats(0.5, 300),
    st.floats(0, 359.9).filter(lambda r: r > 1e-3),
)
def test_a_rotated_box_comes_back_from_its_obb(x: float, y: float, w: float, h: float, rotation: float) -> None:
    box = cvat_box_to_box(xtl=x, ytl=y, xbr=x + w, ybr=y + h, rotation=rotation)
    fitted = obb_to_cvat_box(obb=box["obb"])
    assert fitted is not None
    for got, want in zip(fitted[:4], (x, y, x + w, y + h), strict=True):
        assert math.isclose(got, want, abs_tol=1e-4)
    assert math.isclose(math.cos(math.radians(fitted[4] - rotation)), 1.0, abs_tol=1e-6)


def test_an_obb_that_is_no_rectangle_is_not_a_cvat_box() -> None:
    assert obb_to_cvat_box(obb=[0, 0, 4, 0, 5, 3, 0, 3]) is None  # a trapezoid
    assert obb_to_cvat_box(obb=[0, 0, 0, 3, 4, 3, 4, 0]) is None  # counter-clockwise
    assert box_to_cvat_shapes(box={"x1": 0, "y1": 0, "x2": 5, "y2": 3, "obb": [0, 0, 4, 0, 5, 3, 0, 3]}) == [
        ("polygon", {"points": "0,0;4,0;5,3;0,3"})
    ]


def test_shapes_with_points_keep_their_geometry() -> None:
    polygon = cvat_points_to_box(kind="polygon", points=[1, 2, 3, 4, 6, 5])
    assert polygon == {"x1": 1.0, "y1": 2.0, "x2": 6.0, "y2": 5.0, "polygon": [[1.0, 2.0, 3.0, 4.0, 6.0, 5.0]]}
    line = cvat_points_to_box(kind="polyline", points=[1, 8, 7, 2])
    assert line == {"x1": 1.0, "y1": 2.0, "x2": 7.0, "y2": 8.0, "attributes": {"polyline": [1.0, 8.0, 7.0, 2.0]}}
    points = cvat_points_to_box(kind="points", points=[1, 2, 3, 4], keypoints=3)
    assert points["keypoints"] == [[1.0, 2.0, 2], [3.0, 4.0, 2], [0.0, 0.0, 0]]
    for kind, flat in (("polygon", [1, 2, 3, 4]), ("polyline", [1, 2]), ("points", [])):
        with pytest.raises(ValueError, match="at least"):
            cvat_points_to_box(kind=kind, points=flat)


def test_a_cvat_mask_becomes_the_coco_rle_of_its_pixels() -> None:
    # Window 3 x 2 at (1, 2) of a 5 x 4 image; row by row: 0 1 1 / 1 0 0.
    box = cvat_mask_to_box(rle=[1, 3, 2], left=1, top=2, width=3, height=2, image_width=5, image_height=4)
    assert (box["x1"], box["y1"], box["x2"], box["y2"]) == (1.0, 2.0, 4.0, 4.0)
    pixels = mask_utils.decode({"size": box["rle"]["size"], "counts": box["rle"]["counts"].encode()})
    want = np.zeros((4, 5), dtype=np.uint8)
    want[2, 2:4] = 1
    want[3, 1] = 1
    assert (pixels == want).all()
    back = rle_to_cvat_mask(rle=box["rle"])
    assert back == {"rle": "1, 3, 2", "left": 1, "top": 2, "width": 3, "height": 2}
    with pytest.raises(ValueError, match="cover"):
        cvat_mask_to_box(rle=[1, 2], left=0, top=0, width=2, height=2, image_width=5, image_height=4)
    with pytest.raises(ValueError, match="not inside"):
        cvat_mask_to_box(rle=[4], left=4, top=0, width=2, height=2, image_width=5, image_height=4)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 9), st.integers(1, 9), st.data())
def test_a_coco_rle_goes_to_cvat_and_back_pixel_for_pixel(width: int, height: int, data: st.DataObject) -> None:
    bits = data.draw(st.lists(st.booleans(), min_size=width * height, max_size=width * height))
    pixels = np.asfortranarray(np.array(bits, dtype=np.uint8).reshape(height, width))
    encoded = mask_utils.encode(pixels)
    rle = {"size": [height, width], "counts": encoded["counts"].decode()}
    mask = rle_to_cvat_mask(rle=rle)
    if not pixels.any():
        assert mask is None
        return
    assert mask is not None
    runs = [int(v) for v in mask["rle"].split(",")]
    fields = {k: mask[k] for k in ("left", "top", "width", "height")}
    back = cvat_mask_to_box(rle=runs, **fields, image_width=width, image_height=height)
    assert back["rle"] == rle


def test_attribute_text_is_typed_by_its_input_type() -> None:
    assert attribute_value(text="true", input_type="checkbox") is True
    assert attribute_value(text="False", input_type="checkbox") is False
    assert attribute_value(text="2.4", input_type="number") == 2.4
    assert attribute_value(text="-5", input_type="number") == -5
    assert attribute_value(text="0003", input_type="text") == "0003"
    assert attribute_value(text=None, input_type="select") == ""
    for text, kind in (("yes", "checkbox"), ("nan", "number"), ("abc", "number"), ("1e999", "number")):
        with pytest.raises(ValueError):
            attribute_value(text=text, input_type=kind)


def test_frame_numbers_follow_the_frame_filter() -> None:
    assert frame_numbers(start=10, stop=19, frame_filter="step=3") == [10, 13, 16, 19]
    assert frame_numbers(start=0, stop=2, frame_filter="") == [0, 1, 2]
    with pytest.raises(ValueError, match="step=N"):
        frame_numbers(start=0, stop=2, frame_filter="every=2")


def test_a_track_is_interpolated_between_keyframes_hidden_when_outside_and_held_after_the_last() -> None:
    keys = [
        Keyframe(0, "box", [0, 0, 10, 10, 0]),
        Keyframe(10, "box", [10, 20, 30, 40, 0], outside=False),
        Keyframe(20, "box", [0, 0, 1, 1, 0], outside=True),
        Keyframe(30, "box", [5, 5, 6, 6, 0]),
    ]
    shown = interpolate_track(keys=keys, frames=list(range(0, 40, 5)))
    assert sorted(shown) == [0, 5, 10, 15, 30, 35]
    assert shown[5].values == [5, 10, 20, 25, 0] and not shown[5].keyframe
    assert shown[15].values == [5, 10, 15.5, 20.5, 0]  # towards the outside keyframe, as CVAT does
    assert shown[35].values == [5, 5, 6, 6, 0] and shown[30].keyframe
    # Point lists of different lengths hold rather than move.
    held = interpolate_track(keys=[Keyframe(0, "points", [1, 1]), Keyframe(4, "points", [3, 3, 4, 4])], frames=[2])
    assert held[2].values == [1, 1]


# ---------------------------------------------------------------------------------------------- peer exports


def xml_counts(path: Path) -> dict[tuple[str, str], tuple[int, int, int, list[str]]]:
    """(subset, image name) -> (shapes, polygon rings, points, tag labels), counted from the XML."""
    counts = {}
    for image in ET.parse(path).getroot().iter("image"):
        shapes = [child for child in image if child.tag in SHAPES]
        rings = sum(1 for child in shapes if child.tag == "polygon")
        points = sum(len(c.get("points", "").split(";")) for c in shapes if c.tag == "points")
        tags = [child.get("label", "") for child in image if child.tag == "tag"]
        counts[(image.get("subset") or "", image.get("name", ""))] = (len(shapes), rings, points, tags)
    return counts


def record_counts(record: dict[str, Any]) -> tuple[int, int, int]:
    rings = sum(len(box.get("polygon") or ()) for box in record["boxes"])
    points = sum(1 for box in record["boxes"] for p in box.get("keypoints") or () if p[2] > 0)
    return len(record["boxes"]), rings, points


@needs_peer
@pytest.mark.parametrize(
    ("case", "xml_name", "splits"),
    [
        ("for_images/export_task", "train.xml", {"train"}),
        ("for_images/export_project", "annotations.xml", {"Train", "Test", "Validation"}),
    ],
)
def test_peer_image_exports_convert_validate_and_keep_every_shape(
    case: str, xml_name: str, splits: set[str], tmp_path: Path
) -> None:
    source = CVAT_PEER / case
    out = tmp_path / "out"
    result = cli("convert", "cvat", str(source), "-o", str(out))
    assert result.exit_code == 0, result.output
    # Not --strict: the project export's subsets hold the same image files (image_in_several_splits).
    checked = cli("validate", str(out), "--check-images", *(() if xml_name == "annotations.xml" else ("--strict",)))
    assert checked.exit_code == 0, checked.output
    got = records(out)
    assert set(got) == splits
    want = xml_counts(source / xml_name)
    project = xml_name == "annotations.xml"
    seen = {}
    for split, split_records in got.items():
        for record in split_records:
            name = record["image"].split("/", 1)[1] if project else record["image"]
            seen[(split if project else "", name)] = record
    assert set(seen) == set(want)
    for key, (shapes, rings, points, _) in want.items():
        assert record_counts(seen[key]) == (shapes, rings, points)
    manifest = json.loads((out / "annonorm.json").read_text())
    names = [c["name"] for c in manifest["categories"]]
    assert names[:2] == ["label1", "label2"]
    box = seen[(("Test" if project else ""), "img0.jpg")]["boxes"][0]
    assert box["attributes"] == {"a1": True, "a2": "v3", "a3": "0003", "a4": 2.4, "occluded": True, "z_order": 1}


@needs_peer
def test_peer_task_export_keeps_unlabeled_shapes_under_the_unlabeled_class(tmp_path: Path) -> None:
    out = tmp_path / "out"
    convert("cvat", CVAT_PEER / "for_images/export_task", out, unlabeled="no_label")
    names = [c.name for c in open_dataset(out).manifest.categories]
    assert names == ["label1", "label2", "no_label"]
    boxes = [box["name"] for record in records(out)["train"] for box in record["boxes"]]
    assert boxes.count("no_label") == 2  # the polyline and the polygon with label=""


def video_expectation(path: Path) -> dict[int, int]:
    """Frame -> visible shapes on the frames that hold keyframes, from the track XML (keyframes alone here)."""
    visible: dict[int, int] = {}
    for track in ET.parse(path).getroot().iter("track"):
        for shape in track:
            frame = int(shape.get("frame", "0"))
            visible[frame] = visible.get(frame, 0) + (shape.get("outside") == "0")
    return visible


@needs_peer
def test_peer_video_export_becomes_one_record_per_frame_image(tmp_path: Path) -> None:
    source = CVAT_PEER / "for_video"
    out = tmp_path / "out"
    result = cli("convert", "cvat", str(source), "-o", str(out))
    assert result.exit_code == 0, result.output
    checked = cli("validate", str(out), "--check-images", "--strict")
    assert checked.exit_code == 0, checked.output
    (split, frames), *rest = records(out).items()
    assert split == "default" and not rest
    on_disk = sorted(p.name for p in (source / "images").iterdir())
    assert [r["image"] for r in frames] == on_disk  # frame 19 has neither an image nor a visible shape
    # Keyframes only at 10, 13, 16 with step 3: each frame's boxes are that frame's visible keyframe shapes.
    want = video_expectation(source / "annotations.xml")
    for record in frames:
        assert len(record["boxes"]) == want[record["id"]]
        assert (record["width"], record["height"]) == (25, 20)
    first = frames[0]["boxes"]
    assert first[0]["attributes"] == {"track_id": 0, "occluded": True, "keyframe": True}
    assert first[1]["keypoints"] == [[21.95, 8.0, 2], [2.55, 15.09, 2], [2.23, 3.16, 2]]
    assert first[1]["attributes"]["hgl"] == "hgkf"
    categories = {c.name: c.keypoints for c in open_dataset(out).manifest.categories}
    assert categories == {"klhg": ["1", "2", "3"], "z U k": None, "II": None}


VIDEO = """<annotations><version>1.1</version><meta><task><mode>interpolation</mode>
<start_frame>0</start_frame><stop_frame>4</stop_frame><frame_filter></frame_filter>
<original_size><width>100</width><height>80</height></original_size>
<labels><label><name>car</name></label></labels></task></meta>
<track id="7" label="car">
  <box frame="0" outside="0" occluded="0" keyframe="1" xtl="0" ytl="0" xbr="10" ybr="10"/>
  <box frame="2" outside="0" occluded="0" keyframe="1" xtl="20" ytl="10" xbr="30" ybr="30" rotation="90"/>
  <box frame="3" outside="1" occluded="0" keyframe="1" xtl="20" ytl="10" xbr="30" ybr="30"/>
</track></annotations>"""


def test_a_video_track_is_interpolated_onto_every_frame_of_the_task(tmp_path: Path) -> None:
    (tmp_path / "annotations.xml").write_text(VIDEO)
    convert("cvat", tmp_path / "annotations.xml", tmp_path / "out", split="video")
    frames = records(tmp_path / "out")["video"]
    assert [r["image"] for r in frames] == [f"frame_{i:06d}.png" for i in range(5)]
    assert [len(r["boxes"]) for r in frames] == [1, 1, 1, 0, 0]
    # Halfway: corners (10, 5)-(20, 20) turned 45 degrees about their centre (15, 12.5).
    middle = frames[1]["boxes"][0]
    half = math.sqrt(0.5)
    want = [(15 + dx * half - dy * half, 12.5 + dx * half + dy * half) for dx, dy in ((-5, -7.5), (5, -7.5), (5, 7.5))]
    got = list(zip(middle["obb"][0::2], middle["obb"][1::2], strict=True))[:3]
    assert all(
        math.isclose(a, b, abs_tol=1e-6) for p, q in zip(got, want, strict=True) for a, b in zip(p, q, strict=True)
    )
    assert math.isclose(middle["x1"], 15 - (5 + 7.5) * half, abs_tol=1e-6)
    assert middle["attributes"] == {"track_id": 7, "rotation": 45.0}
    assert frames[2]["boxes"][0]["attributes"] == {"track_id": 7, "rotation": 90.0, "keyframe": True}


# ---------------------------------------------------------------------------------------------- writer


@needs_peer
def test_peer_project_export_goes_through_the_writer_and_back_unchanged(tmp_path: Path) -> None:
    convert("cvat", CVAT_PEER / "for_images/export_project", tmp_path / "first")
    export("cvat", tmp_path / "first", tmp_path / "written")
    assert sorted(p.name for p in (tmp_path / "written").glob("*.xml")) == ["Test.xml", "Train.xml", "Validation.xml"]
    root = ET.parse(tmp_path / "written" / "Test.xml").getroot()
    assert root.findtext("version") == "1.1"
    assert [label.findtext("name") for label in root.iter("label")] == ["label1", "label2"]
    kinds = {a.findtext("name"): a.findtext("input_type") for a in root.iter("attribute") if a.find("name") is not None}
    assert kinds == {"a1": "checkbox", "a2": "text", "a3": "text", "a4": "number"}
    convert("cvat", tmp_path / "written", tmp_path / "back", images=CVAT_PEER / "for_images/export_project/images")
    assert records(tmp_path / "back") == records(tmp_path / "first")
    assert validate_dataset(tmp_path / "back", check_images=True).valid
    export("cvat", tmp_path / "back", tmp_path / "again")
    for name in ("Test.xml", "Train.xml", "Validation.xml"):
        assert (tmp_path / "again" / name).read_bytes() == (tmp_path / "written" / name).read_bytes()


RICH = """<?xml version="1.0" encoding="utf-8"?>
<annotations><version>1.1</version><meta><task><subset>val</subset><labels>
<label><name>cat</name><attributes><attribute><name>age</name><input_type>number</input_type></attribute>
<attribute><name>fat</name><input_type>checkbox</input_type></attribute></attributes></label>
<label><name>sky</name></label><label><name>night</name></label></labels></task></meta>
<image id="4" name="sub/a.jpg" width="20" height="10">
  <box label="cat" occluded="1" z_order="2" group_id="3" source="manual" xtl="1.5" ytl="2" xbr="6" ybr="8"
   rotation="30">
    <attribute name="age">3</attribute><attribute name="fat">true</attribute></box>
  <mask label="sky" source="manual" occluded="0" rle="3, 2, 1, 4, 2" left="2" top="1" width="4" height="3"/>
  <polygon label="cat" points="1,1;5,1;3,4"><attribute name="age">1.5</attribute></polygon>
  <points label="cat" points="2,2;3,3"/>
  <polyline label="sky" points="0,0;19,9"/>
  <tag label="night"/>
</image>
<image id="5" name="b.jpg" width="20" height="10"/>
</annotations>"""


def test_every_shape_kind_goes_through_the_writer_and_back(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "annotations.xml").write_text(RICH)
    convert("cvat", tmp_path / "src", tmp_path / "first")
    first = records(tmp_path / "first")
    assert list(first) == ["val"]
    a = first["val"][0]
    assert a["image"] == "sub/a.jpg" and a["id"] == 4 and a["labels"] == ["cat", "sky", "night"]
    box, mask, polygon, points, line = a["boxes"]
    assert box["attributes"] == {
        "age": 3,
        "fat": True,
        "occluded": True,
        "z_order": 2,
        "group_id": 3,
        "source": "manual",
        "rotation": 30.0,
    }
    assert len(box["obb"]) == 8 and mask["rle"]["size"] == [10, 20]
    assert (mask["x1"], mask["y1"], mask["x2"], mask["y2"]) == (2.0, 1.0, 6.0, 4.0)
    assert polygon["attributes"] == {"age": 1.5} and len(points["keypoints"]) == 2
    assert line["attributes"]["polyline"] == [0.0, 0.0, 19.0, 9.0]
    export("cvat", tmp_path / "first", tmp_path / "written")
    convert("cvat", tmp_path / "written", tmp_path / "back")
    assert records(tmp_path / "back") == first
    export("cvat", tmp_path / "back", tmp_path / "again")
    assert (tmp_path / "again" / "val.xml").read_bytes() == (tmp_path / "written" / "val.xml").read_bytes()


def test_export_then_convert_through_the_cli(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "annotations.xml").write_text(RICH)
    image = tmp_path / "src" / "images" / "sub" / "a.jpg"
    image.parent.mkdir(parents=True)
    Image.new("RGB", (20, 10)).save(image)
    Image.new("RGB", (20, 10)).save(tmp_path / "src" / "images" / "b.jpg")
    assert cli("convert", "cvat", str(tmp_path / "src"), "-o", str(tmp_path / "ds")).exit_code == 0
    assert cli("validate", str(tmp_path / "ds"), "--check-images").exit_code == 0
    assert cli("export", "cvat", str(tmp_path / "ds"), "-o", str(tmp_path / "xml")).exit_code == 0
    assert cli("convert", "auto", str(tmp_path / "xml"), "-o", str(tmp_path / "again")).exit_code == 0
    assert records(tmp_path / "again") == records(tmp_path / "ds")


# ---------------------------------------------------------------------------------------------- detection, errors


def test_sniff_knows_cvat_xml_from_voc_xml(tmp_path: Path) -> None:
    cvat = tmp_path / "cvat.xml"
    cvat.write_text(RICH)
    voc = tmp_path / "voc" / "a.xml"
    voc.parent.mkdir()
    voc.write_text("<annotation><filename>a.jpg</filename></annotation>")
    assert CvatConverter.sniff(cvat) and CvatConverter.sniff(tmp_path)
    assert not CvatConverter.sniff(voc) and not CvatConverter.sniff(voc.parent)
    assert CvatConverter.source_files(tmp_path, {}) == [cvat]


def test_skip_mode_leaves_out_the_bad_image_and_names_it(tmp_path: Path) -> None:
    bad = RICH.replace('<image id="5" name="b.jpg" width="20" height="10"/>', '<image id="5" name="b.jpg" width="x"/>')
    (tmp_path / "annotations.xml").write_text(bad)
    with pytest.raises(InvalidDataError, match="width: expected a whole number"):
        convert("cvat", tmp_path / "annotations.xml", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    convert("cvat", tmp_path / "annotations.xml", tmp_path / "out", on_error="skip")
    assert [r["image"] for r in records(tmp_path / "out")["val"]] == ["sub/a.jpg"]


def _hostile_cases() -> list[Any]:
    import hostile.make_corpus  # noqa: F401  (first: it imports every cases_<format> module itself)
    from hostile.cases_cvat import CASES

    return CASES


@pytest.mark.parametrize("case", _hostile_cases(), ids=lambda case: case.name)
def test_hostile_input_gets_one_line_and_writes_nothing(case: Any, tmp_path: Path) -> None:
    from hostile.make_corpus import materialize
    from test_hostile import check_outcome, run_cli

    materialize(case, tmp_path)
    code, stdout, stderr, exception = run_cli(case, tmp_path)
    assert exception is None, repr(exception)
    check_outcome(case, tmp_path, code, stdout, stderr)
    assert len([line for line in (stdout + stderr).splitlines() if line.strip()]) == 1, stdout + stderr


def _peak_read_memory(tmp_path: Path, images: int) -> int:
    """Peak Python memory of reading a generated export of ``images`` images (the reader alone, into a sink)."""
    import tracemalloc

    from annonorm.converters.base import ReadContext
    from annonorm.sink import DatasetWriter

    xml = tmp_path / f"{images}.xml"
    with xml.open("w") as stream:
        meta = RICH[RICH.index("<meta>") : RICH.index("</meta>") + len("</meta>")]
        stream.write(f"<annotations><version>1.1</version>{meta}")
        for index in range(images):
            stream.write(
                f'<image id="{index}" name="{index:07d}.jpg" width="640" height="480">'
                '<box label="cat" xtl="1" ytl="2" xbr="30" ybr="40"/>'
                '<polygon label="cat" points="1,2;3,4;5,6"/></image>\n'
            )
        stream.write("</annotations>\n")
    out = tmp_path / f"out{images}"
    out.mkdir()
    sink = DatasetWriter(out)
    tracemalloc.start()
    try:
        CvatConverter().read(xml, ReadContext(options={"split": None, "unlabeled": "unlabeled"}, sink=sink))
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        sink.close()


def test_the_reader_streams_an_export_in_flat_memory(tmp_path: Path) -> None:
    small, large = _peak_read_memory(tmp_path, 1_000), _peak_read_memory(tmp_path, 8_000)
    assert large < small + 128 * 1024, (small, large)  # 8 times the images, the same memory
    assert sum(1 for _ in (tmp_path / "out8000" / "val.jsonl").open()) == 8_000


def test_the_writer_keeps_distinct_ids_and_numbers_the_others(tmp_path: Path) -> None:
    from annonorm.converters.base import make_record
    from annonorm.testing import write_dataset

    def record(name: str, id: Any) -> dict[str, Any]:
        return make_record(
            image=name, width=4, height=4, boxes=[{"name": "a", "x1": 0, "y1": 0, "x2": 1, "y2": 1}], id=id
        )

    splits = {
        "kept": [record("x.jpg", 9), record("y.jpg", 3)],
        "renumbered": [record("x.jpg", "a"), record("y.jpg", None)],
    }
    write_dataset(tmp_path / "ds", ["a"], splits)
    export("cvat", tmp_path / "ds", tmp_path / "xml")
    for split, ids in (("kept", ["9", "3"]), ("renumbered", ["0", "1"])):
        images = ET.parse(tmp_path / "xml" / f"{split}.xml").getroot().iter("image")
        assert [image.get("id") for image in images] == ids
