"""The Pascal VOC converter: third-party VOC datasets, the corner convention, masks, round trips, hostile XML."""

from __future__ import annotations

import json
import pickle
import tempfile
import threading
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from peer import PEER_DATA
from PIL import Image

from annonorm.api import convert, export
from annonorm.converters.base import make_record
from annonorm.converters.voc import (
    VOC_CLASSES,
    VocConverter,
    box_to_voc_corners,
    voc_corners_problem,
    voc_corners_to_box,
    voc_image_name_problem,
    voc_object_to_box,
    voc_side_problem,
    voc_split_name_problem,
    voc_stem_problem,
)
from annonorm.engine import Execution, LocalExecutor
from annonorm.errors import InvalidDataError, ParseError, UnsafePathError
from annonorm.io import open_dataset
from annonorm.sink import DatasetWriter, encode_record
from annonorm.sources import each
from annonorm.sources.each import encoded_record
from annonorm.testing import boxes, category_names, write_dataset
from annonorm.validation import validate_dataset

PEER = PEER_DATA
SAMPLE = Path(__file__).resolve().parents[2] / "sample_data" / "voc"

#: case -> (folder under peer_data/datumaro, whether the case ships its images)
CASES = {
    "voc_dataset1": ("voc_dataset/voc_dataset1", True),
    "voc_dataset2": ("voc_dataset/voc_dataset2", False),
    "voc_dataset3": ("voc_dataset/voc_dataset3", True),
    "relaxed_voc1": ("kaggle_dataset/relaxed_voc1", True),
    "relaxed_voc2": ("kaggle_dataset/relaxed_voc2", True),
    "roboflow_voc": ("roboflow_dataset/voc", True),
}
needs_peer = pytest.mark.skipif(not PEER.is_dir(), reason="peer_data is not on this machine")


# ---------------------------------------------------------------------------------------------- helpers


def read_records(dataset: Path) -> list[dict[str, Any]]:
    manifest = json.loads((dataset / "annonorm.json").read_text())
    records = []
    for split, file in manifest["splits"].items():
        for line in (dataset / file).read_text().splitlines():
            records.append({**json.loads(line), "_split": split})
    return records


def plain_objects(xml: Path) -> list[dict[str, Any]]:
    """The objects with a bndbox of a VOC XML file, read with plain ElementTree (independent of the converter)."""
    objects = []
    for element in ET.parse(xml).getroot().findall("object"):
        bndbox = element.find("bndbox")
        if bndbox is None:
            continue
        corners = {tag: float(bndbox.findtext(tag) or "nan") for tag in ("xmin", "ymin", "xmax", "ymax")}
        flags = {tag: element.findtext(tag) for tag in ("difficult", "truncated", "occluded")}
        objects.append({"name": element.findtext("name"), **corners, "flags": flags})
    return objects


def write_xml(path: Path, body: str, *, filename: str | None = None, size: tuple[int, int] | None = (20, 10)) -> None:
    parts = ["<annotation>"]
    if filename is not None:
        parts.append(f"<filename>{filename}</filename>")
    if size is not None:
        parts.append(f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>")
    parts += [body, "</annotation>"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts) + "\n")


def voc_object(name: str, xmin: float, ymin: float, xmax: float, ymax: float, extra: str = "") -> str:
    return (
        f"<object><name>{name}</name>{extra}<bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin>"
        f"<xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox></object>"
    )


def devkit(root: Path, annotations: dict[str, str], splits: dict[str, str] | None = None) -> Path:
    """A small devkit: XML bodies by stem, a 20x10 JPEG per stem, optional split lists (file name -> text)."""
    for stem, body in annotations.items():
        write_xml(root / "Annotations" / f"{stem}.xml", body, filename=f"{stem}.jpg")
        (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (20, 10)).save(root / "JPEGImages" / f"{stem}.jpg")
    for name, text in (splits or {}).items():
        (root / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
        (root / "ImageSets" / "Main" / name).write_text(text)
    return root


def tree_bytes(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------------- peer datasets


@needs_peer
@pytest.mark.parametrize("case", sorted(CASES))
def test_peer_case_converts_valid_with_one_box_per_object(case: str, tmp_path: Path) -> None:
    folder, has_images = CASES[case]
    source = PEER / folder
    result = convert("voc", source, tmp_path / "out")
    report = validate_dataset(result.out, check_images=True)
    if has_images:
        assert report.errors == []
    else:
        # The case ships no images at all: the only possible complaint is the missing image directory.
        assert {f.code for f in report.errors} == {"image_root_missing"}
        assert validate_dataset(result.out).errors == []
        assert {f.code for f in report.warnings} == {"size_unknown"}
    xml_by_stem = {p.stem: p for p in source.rglob("*.xml")}
    records = read_records(result.out)
    assert {r["id"] for r in records} >= set(xml_by_stem)
    for record in records:
        xml = xml_by_stem.get(record["id"])
        expected = len(plain_objects(xml)) if xml is not None else 0
        assert len(record["boxes"]) == expected, record["id"]


@needs_peer
@pytest.mark.parametrize("case", sorted(CASES))
def test_peer_boxes_follow_the_corner_convention_and_keep_flags(case: str, tmp_path: Path) -> None:
    folder, _ = CASES[case]
    source = PEER / folder
    result = convert("voc", source, tmp_path / "out")
    xml_by_stem = {p.stem: p for p in source.rglob("*.xml")}
    for record in read_records(result.out):
        xml = xml_by_stem.get(record["id"])
        objects = plain_objects(xml) if xml is not None else []
        for box, obj in zip(record["boxes"], objects, strict=True):
            assert box["name"] == obj["name"]
            # 1-based inclusive corners -> continuous corners; a 0 minimum (0-based writers) stays at the edge.
            assert (box["x1"], box["y1"]) == (max(obj["xmin"] - 1, 0), max(obj["ymin"] - 1, 0))
            assert (box["x2"], box["y2"]) == (obj["xmax"], obj["ymax"])
            for flag, text in obj["flags"].items():
                if text is not None:
                    assert box["attributes"][flag] is (text.strip() == "1")
        if "mask" in record:
            with Image.open(result.out / record["mask"]) as mask:
                assert mask.size == (record["width"], record["height"])
                assert mask.mode == "L"


@needs_peer
def test_voc_dataset1_details(tmp_path: Path) -> None:
    result = convert("voc", PEER / "voc_dataset/voc_dataset1", tmp_path / "out")
    assert list(result.manifest.splits) == ["test", "train"]  # pure lists only, not <class>_train.txt
    # Its ImageSets/Main has a <class>_train.txt for each of the 20 Pascal classes: they are the table.
    assert result.manifest.category_names == list(VOC_CLASSES)
    assert result.manifest.mask_kind == "instance"
    by_id = {r["id"]: r for r in read_records(result.out)}
    cat, person = by_id["2007_000001"]["boxes"]
    assert (cat["x1"], cat["y1"], cat["x2"], cat["y2"]) == (0, 1, 3, 4)  # xmin=1 ymin=2 xmax=3 ymax=4
    assert cat["attributes"] == {"pose": "Unspecified", "truncated": True, "difficult": False}
    assert person["attributes"]["actions"]["jumping"] is False
    assert person["attributes"]["actions"]["phoning"] is True
    assert person["attributes"]["parts"] == [{"name": "head", "x1": 4.5, "y1": 5.0, "x2": 7.5, "y2": 8.0}]
    assert by_id["2007_000001"]["attributes"] == {"depth": 3, "folder": "VOC2007", "segmented": True}
    # Listed in test.txt with an image but no XML: an image without objects, size from its header.
    assert by_id["2007_000002"]["boxes"] == [] and by_id["2007_000002"]["width"] == 20
    # The RGB SegmentationObject PNG is painted (128, 0, 0): VOC palette index 1, the first object.
    mask = np.asarray(Image.open(result.out / by_id["2007_000001"]["mask"]))
    assert set(np.unique(mask).tolist()) == {1}


@needs_peer
def test_semantic_masks_use_category_id_plus_one(tmp_path: Path) -> None:
    result = convert("voc", PEER / "voc_dataset/voc_dataset1", tmp_path / "out", masks="semantic")
    assert result.manifest.mask_kind == "semantic"
    (record,) = [r for r in read_records(result.out) if "mask" in r]
    # The SegmentationClass PNG is painted (0, 128, 0): the VOC color of bicycle.
    bicycle = result.manifest.category_names.index("bicycle")
    assert set(np.unique(np.asarray(Image.open(result.out / record["mask"]))).tolist()) == {bicycle + 1}


@needs_peer
def test_labelmap_order_and_unlisted_classes(tmp_path: Path) -> None:
    result = convert("voc", PEER / "voc_dataset/voc_dataset2", tmp_path / "out")
    names = result.manifest.category_names
    # labelmap order without its reserved background/ignored entries, then the XML-only "background" object class.
    assert names == [*VOC_CLASSES, "background"]
    assert result.manifest.categories[0].source_id == 1
    assert result.manifest.categories[-1].source_id is None


@needs_peer
@pytest.mark.parametrize("case", sorted(CASES))
def test_sniff_recognises_peer_layouts(case: str) -> None:
    assert VocConverter.sniff(PEER / CASES[case][0])


@needs_peer
def test_sniff_refuses_coco(tmp_path: Path) -> None:
    assert not VocConverter.sniff(PEER / "coco_dataset/coco_instances")
    (tmp_path / "other.xml").write_text("<?xml version='1.0'?>\n<!-- x -->\n<svg></svg>\n")
    assert not VocConverter.sniff(tmp_path)


@pytest.mark.skipif(not (SAMPLE / "Annotations").is_dir(), reason="sample_data/voc not generated")
def test_sample_data_converts_and_round_trips(tmp_path: Path) -> None:
    result = convert("voc", SAMPLE, tmp_path / "out")
    assert validate_dataset(result.out, check_images=True).errors == []
    for record in read_records(result.out):
        expected = len(plain_objects(SAMPLE / "Annotations" / f"{record['id']}.xml"))
        assert len(record["boxes"]) == expected
    export("voc", result.out, tmp_path / "voc", copy_images=True)
    again = convert("voc", tmp_path / "voc", tmp_path / "again")
    assert validate_dataset(again.out, check_images=True).errors == []
    first = {r["id"]: r for r in read_records(result.out)}
    second = {r["id"]: r for r in read_records(again.out)}
    assert {k: v["boxes"] for k, v in first.items()} == {k: v["boxes"] for k, v in second.items()}
    for key, record in first.items():
        if "mask" in record:
            assert (result.out / record["mask"]).read_bytes() == (again.out / second[key]["mask"]).read_bytes()


# ---------------------------------------------------------------------------------------------- synthetic inputs


def test_palette_masks_split_lists_and_image_lookup(tmp_path: Path) -> None:
    root = devkit(
        tmp_path / "voc",
        {
            "a": voc_object("dog", 1, 1, 10, 5) + voc_object("cat", 2.5, 3, 8.5, 9, "<difficult>1</difficult>"),
            "b": voc_object("dog", 5, 5, 6, 6),
        },
        {
            "train.txt": "# comment line\na\n\n",
            "val.txt": "b  # trailing comment\n",
            "dog_train.txt": "a  1\n",
        },
    )
    (root / "Annotations" / "b.xml").write_text(
        (root / "Annotations" / "b.xml").read_text().replace("<filename>b.jpg", "<filename>wrong_name.png")
    )
    (root / "SegmentationObject").mkdir()
    mask = np.zeros((10, 20), dtype=np.uint8)
    mask[0:5, 0:10], mask[5:, 10:], mask[9, :] = 1, 2, 255
    Image.fromarray(mask).convert("P").save(root / "SegmentationObject" / "a.png")  # values stay palette indices
    result = convert("voc", root, tmp_path / "out")
    assert list(result.manifest.splits) == ["train", "val"]
    by_id = {r["id"]: r for r in read_records(result.out)}
    assert by_id["a"]["boxes"][1] == {
        "name": "cat",
        "x1": 1.5,
        "y1": 2.0,
        "x2": 8.5,
        "y2": 9.0,
        "attributes": {"difficult": True},
    }
    assert by_id["b"]["image"] == "b.jpg"  # <filename> names no file: found by stem in JPEGImages
    copied = Image.open(result.out / by_id["a"]["mask"])
    assert copied.mode == "L"
    assert np.array_equal(np.asarray(copied), mask)
    assert validate_dataset(result.out, check_images=True).errors == []


def test_size_from_image_header_and_relaxed_flat_layout(tmp_path: Path) -> None:
    write_xml(tmp_path / "src" / "x.xml", voc_object("dog", 1, 1, 3, 3), filename="x.png", size=None)
    Image.new("RGB", (33, 17)).save(tmp_path / "src" / "x.png")
    write_xml(tmp_path / "src" / "y.xml", voc_object("dog", 1, 1, 3, 3), filename="y.jpg", size=(0, 0))
    result = convert("voc", tmp_path / "src", tmp_path / "out")
    by_id = {r["id"]: r for r in read_records(result.out)}
    assert list(result.manifest.splits) == ["default"]
    assert (by_id["x"]["width"], by_id["x"]["height"]) == (33, 17)
    assert "width" not in by_id["y"]  # no size, no image: left unknown
    report = validate_dataset(result.out)
    assert report.errors == [] and [f.code for f in report.warnings] == ["size_unknown"]


def test_labelmap_order_and_semantic_palette_remap(tmp_path: Path) -> None:
    root = devkit(tmp_path / "voc", {"a": voc_object("zebra", 1, 1, 4, 4) + voc_object("okapi", 2, 2, 3, 3)})
    (root / "labelmap.txt").write_text("# label:color_rgb:parts:actions\nzebra:10,20,30::\nbackground:0,0,0::\n")
    (root / "SegmentationClass").mkdir()
    indices = np.zeros((10, 20), dtype=np.uint8)  # labelmap positions: 0 zebra, 1 background
    indices[:, 10:] = 1
    indices[0, 0] = 255
    Image.fromarray(indices).save(root / "SegmentationClass" / "a.png")
    result = convert("voc", root, tmp_path / "out")
    assert result.manifest.category_names == ["zebra", "okapi"]  # labelmap first, XML-only class appended
    assert result.manifest.mask_kind == "semantic"
    (record,) = read_records(result.out)
    values = np.asarray(Image.open(result.out / record["mask"]))
    assert values[1, 0] == 1 and values[0, 15] == 0 and values[0, 0] == 255  # zebra id 0 -> 1


def test_parallel_workers_give_identical_output(tmp_path: Path) -> None:
    bodies = {f"img{i:03d}": voc_object(VOC_CLASSES[i % 20], 1 + i % 5, 1, 10, 5) for i in range(40)}
    root = devkit(tmp_path / "voc", bodies)
    one = convert("voc", root, tmp_path / "a" / "out", workers=1)
    # min_parallel=0: the pool even for 40 files (the thresholds hold for --workers N as for auto).
    two = convert("voc", root, tmp_path / "b" / "out", workers=2, execution=Execution(min_parallel=0))
    # workers changes how the work is done, not the output: not even the manifest differs.
    assert tree_bytes(one.out) == tree_bytes(two.out)
    assert "workers" not in json.loads((one.out / "annonorm.json").read_text())["source"]["options"]
    assert [r["id"] for r in read_records(two.out)] == sorted(bodies)


@pytest.mark.parametrize("thread_running", [False, True])
def test_pool_forks_unless_a_thread_runs_and_gives_identical_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, thread_running: bool
) -> None:
    bodies = {f"img{i:03d}": voc_object(VOC_CLASSES[i % 20], 1 + i % 5, 1, 10, 5) for i in range(30)}
    root = devkit(tmp_path / "voc", bodies)
    one = convert("voc", root, tmp_path / "a" / "out", workers=1)
    fresh_asked: list[bool] = []
    real_map = LocalExecutor.map

    def spying_map(self: LocalExecutor, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(fn, "func", None) is each._run_chunk:  # the XML files' map (not the output check's)
            fresh_asked.append(kwargs.get("fresh", False))
        return real_map(self, fn, *args, **kwargs)

    monkeypatch.setattr(LocalExecutor, "map", spying_map)
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)  # as a progress bar's refresh thread
    if thread_running:
        thread.start()
    try:
        two = convert("voc", root, tmp_path / "b" / "out", workers=2, execution=Execution(min_parallel=0))
    finally:
        stop.set()
        if thread_running:
            thread.join()
    # Forked workers unless forking is unsafe (another thread runs): then fresh ones, with the same output.
    assert fresh_asked and set(fresh_asked) == {thread_running}
    assert tree_bytes(one.out) == tree_bytes(two.out)


_COORDINATES = st.one_of(st.integers(-5, 5000).map(float), st.floats(-1e6, 1e6, allow_nan=False))
_BOXES = st.lists(
    st.fixed_dictionaries(
        {"name": st.sampled_from(VOC_CLASSES[:4]), **{key: _COORDINATES for key in ("x1", "y1", "x2", "y2")}},
        optional={"attributes": st.dictionaries(st.sampled_from(["pose", "difficult"]), st.booleans() | st.text())},
    ),
    max_size=5,
)


@settings(max_examples=60, deadline=None)
@given(boxes=_BOXES, width=st.none() | st.integers(1, 5000), attributes=st.dictionaries(st.text(max_size=3), st.text()))
def test_a_worker_record_is_written_as_the_sink_writes_the_record(
    boxes: list[dict[str, Any]], width: int | None, attributes: dict[str, Any]
) -> None:
    record = make_record(image="a.jpg", width=width, height=width, boxes=boxes, id="a", attributes=attributes)
    handed_back = pickle.loads(pickle.dumps(encoded_record(record)))  # as a worker hands it to the parent
    with tempfile.TemporaryDirectory() as directory:
        writer = DatasetWriter(Path(directory))
        writer.add("train", handed_back, canonical=True)
        writer.close()
        assert (Path(directory) / "train.jsonl").read_bytes() == encode_record(record)
    assert writer.summary["train"].boxes == len(boxes)
    assert set(handed_back["labels"]) == {box["name"] for box in boxes}


@pytest.mark.parametrize(
    ("body", "error", "location"),
    [
        (voc_object("dog", 1, 1, 3, 3) + "<object><name>cat</name></object>", InvalidDataError, "object[2]/bndbox"),
        (voc_object("dog", 1, 1, 3, 3) + voc_object("cat", "abc", 1, 3, 3), InvalidDataError, "object[2]/bndbox/xmin"),
        (voc_object("dog", 5, 1, 3, 3), InvalidDataError, "object[1]/bndbox"),
        (voc_object("", 1, 1, 3, 3), InvalidDataError, "object[1]/name"),
    ],
)
def test_bad_objects_name_file_and_element(tmp_path: Path, body: str, error: type, location: str) -> None:
    root = devkit(tmp_path / "voc", {"a": body})
    with pytest.raises(error) as caught:
        convert("voc", root, tmp_path / "out")
    assert caught.value.file == str(root / "Annotations" / "a.xml")
    assert caught.value.location == location
    assert not (tmp_path / "out").exists()


def test_malformed_xml_names_the_line(tmp_path: Path) -> None:
    root = devkit(tmp_path / "voc", {"a": voc_object("dog", 1, 1, 3, 3)})
    (root / "Annotations" / "a.xml").write_text("<annotation>\n<object>\n<name>dog</name>\n</annotation>\n")
    with pytest.raises(ParseError) as caught:
        convert("voc", root, tmp_path / "out")
    assert caught.value.location is not None and caught.value.location.startswith("line 4")


@pytest.mark.parametrize("filename", ["../../etc/passwd", "/etc/passwd"])
def test_unsafe_filename_is_refused(tmp_path: Path, filename: str) -> None:
    write_xml(tmp_path / "src" / "Annotations" / "a.xml", voc_object("dog", 1, 1, 3, 3), filename=filename)
    with pytest.raises(UnsafePathError) as caught:
        convert("voc", tmp_path / "src", tmp_path / "out")
    assert caught.value.location == "filename"


def test_split_list_naming_a_missing_stem(tmp_path: Path) -> None:
    root = devkit(tmp_path / "voc", {"a": voc_object("dog", 1, 1, 3, 3)}, {"train.txt": "a\n# c\nghost\n"})
    with pytest.raises(InvalidDataError) as caught:
        convert("voc", root, tmp_path / "out")
    assert caught.value.file == str(root / "ImageSets" / "Main" / "train.txt")
    assert caught.value.location == "line 3"
    skipped = convert("voc", root, tmp_path / "out", on_error="skip")
    assert [r["id"] for r in read_records(skipped.out)] == ["a"] and len(skipped.skipped) == 1


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE annotation [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<annotation><filename>&lol4;</filename></annotation>
"""
XXE = """<?xml version="1.0"?>
<!DOCTYPE annotation [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<annotation><filename>a.jpg</filename><folder>&xxe;</folder></annotation>
"""


@pytest.mark.parametrize(("text", "words"), [(BILLION_LAUGHS, "entity 'lol'"), (XXE, "'file:///etc/passwd'")])
def test_hostile_xml_is_refused_and_leaves_nothing(tmp_path: Path, text: str, words: str) -> None:
    root = devkit(tmp_path / "voc", {"a": voc_object("dog", 1, 1, 3, 3)})
    (root / "Annotations" / "a.xml").write_text(text)
    with pytest.raises(ParseError) as caught:
        convert("voc", root, tmp_path / "out", on_error="fail")
    assert caught.value.file == str(root / "Annotations" / "a.xml")
    assert words in caught.value.message and "refused" in caught.value.message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["voc"]  # no output, no temporary directory


def test_export_refuses_colliding_stems(tmp_path: Path) -> None:
    records = [make_record(image=f"{d}/same.jpg", width=10, height=10) for d in ("x", "y")]
    dataset = write_dataset(tmp_path / "ds", ["dog"], {"train": records})
    with pytest.raises(InvalidDataError, match="share the stem 'same'"):
        export("voc", dataset, tmp_path / "voc")
    assert not (tmp_path / "voc").exists()


# ---------------------------------------------------------------------------------------------- pure mapping


def test_corner_mapping_examples() -> None:
    # Pixel columns 0..9 (0-based) are written xmin=1 xmax=10 in VOC: continuous corners 0..10.
    assert voc_corners_to_box(xmin=1, ymin=1, xmax=10, ymax=10) == (0.0, 0.0, 10.0, 10.0)
    assert voc_corners_to_box(xmin=0, ymin=0, xmax=4, ymax=4) == (0.0, 0.0, 4.0, 4.0)  # 0-based writers: clamped
    assert voc_corners_to_box(xmin=2.5, ymin=3, xmax=7.25, ymax=8) == (1.5, 2.0, 7.25, 8.0)
    assert box_to_voc_corners(x1=0, y1=0, x2=10, y2=10) == (1, 1, 10, 10)
    assert box_to_voc_corners(x1=3, y1=3, x2=3, y2=3) == (4, 4, 4, 4)  # zero width widened to one pixel


@given(st.integers(1, 5000), st.integers(0, 5000), st.integers(1, 5000), st.integers(0, 5000))
def test_corner_mapping_is_inverse_on_the_pixel_grid(xmin: int, width: int, ymin: int, height: int) -> None:
    corners = (xmin, ymin, xmin + width, ymin + height)
    x1, y1, x2, y2 = voc_corners_to_box(xmin=corners[0], ymin=corners[1], xmax=corners[2], ymax=corners[3])
    assert (x2 - x1, y2 - y1) == (width + 1, height + 1)  # inclusive: xmin == xmax covers one pixel
    assert box_to_voc_corners(x1=x1, y1=y1, x2=x2, y2=y2) == corners


def test_object_mapping_keeps_voc_attributes() -> None:
    element = ET.fromstring(
        "<object><name>person</name><pose>Left</pose><truncated>0</truncated><occluded>1</occluded>"
        "<difficult>2</difficult><bndbox><xmin>11</xmin><ymin>21</ymin><xmax>30</xmax><ymax>40</ymax></bndbox>"
        "<point><x>15</x><y>25</y></point><actions><jumping>1</jumping></actions>"
        "<part><name>hand</name><bndbox><xmin>12</xmin><ymin>22</ymin><xmax>14</xmax><ymax>24</ymax></bndbox></part>"
        "<attributes><attribute><name>color</name><value>red</value></attribute>"
        "<attribute><name>parked</name><value>false</value></attribute></attributes>"
        "<score>0.75</score></object>"
    )
    box = voc_object_to_box(element=element, index=1, file="f.xml")
    assert (box["name"], box["x1"], box["y1"], box["x2"], box["y2"]) == ("person", 10, 20, 30, 40)
    assert box["attributes"] == {
        "pose": "Left",
        "truncated": False,
        "occluded": True,
        "difficult": 2,  # not 0/1: kept as the number it is
        "point": {"x": 14.0, "y": 24.0},
        "actions": {"jumping": True},
        "parts": [{"name": "hand", "x1": 11.0, "y1": 21.0, "x2": 14.0, "y2": 24.0}],
        "color": "red",
        "parked": False,
        "score": 0.75,
    }


def test_problem_wording_of_rare_bad_values() -> None:
    assert voc_corners_problem(xmin=1, ymin=1, xmax=1, ymax=1) is None  # one pixel: a box
    assert (
        voc_corners_problem(xmin=5, ymin=9, xmax=3, ymax=1)
        == "xmax (3) is smaller than xmin (5); expected xmin <= xmax"
    )
    assert voc_corners_problem(xmin=1, ymin=2.5, xmax=3, ymax=1) == (
        "ymax (1) is smaller than ymin (2.5); expected ymin <= ymax"
    )
    assert voc_side_problem(value=0) is None and voc_side_problem(value=640) is None
    assert (
        voc_side_problem(value=-1) == voc_side_problem(value=-1.0) == "expected a whole number of pixels >= 0, found -1"
    )
    assert voc_side_problem(value=2.5) == "expected a whole number of pixels >= 0, found 2.5"
    assert voc_stem_problem(stem="2007_000032") is None
    for stem in ("", ".", "..", "a/b", "a\\b", "a\x00"):
        assert voc_stem_problem(stem=stem) == f"{stem!r} is not a file stem; expected a name without '/' or '..'"
    assert voc_split_name_problem(name="train.v2") is None
    assert voc_split_name_problem(name=".hidden") is not None and voc_split_name_problem(name="a b") is not None
    assert voc_image_name_problem(image="x/a b.jpg", stem="a b") is not None
    assert voc_image_name_problem(image="x/ab.jpg", stem="ab") is None


# ---------------------------------------------------------------------------------------------- round trip

VOC_NAMES = category_names().filter(lambda names: not {"background", "ignored"} & set(names))


@st.composite
def voc_records(draw: st.DrawFn, names: list[str], index: int) -> dict[str, Any]:
    """A record on VOC's pixel grid, with VOC attributes; boxes at least one pixel wide (VOC's minimum)."""
    width, height = draw(st.integers(1, 400)), draw(st.integers(1, 400))
    drawn = draw(boxes(names, width, height, integer_pixels=True, with_attributes=False))
    drawn = [b for b in drawn if b["x2"] > b["x1"] and b["y2"] > b["y1"]]
    for box in drawn:
        attributes = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "difficult": st.booleans(),
                    "truncated": st.booleans(),
                    "occluded": st.booleans(),
                    "pose": st.sampled_from(["Unspecified", "Left", "Frontal"]),
                },
            )
        )
        if attributes:
            box["attributes"] = attributes
    return make_record(image=f"img_{index:03d}.jpg", width=width, height=height, boxes=drawn)


@st.composite
def voc_datasets(draw: st.DrawFn) -> tuple[list[str], dict[str, list[dict[str, Any]]]]:
    names = draw(VOC_NAMES)
    counts = draw(st.tuples(st.integers(1, 3), st.integers(0, 2)))
    splits, index = {}, 0
    for split, count in zip(("train", "val"), counts, strict=True):
        if count:
            splits[split] = [draw(voc_records(names, index + i)) for i in range(count)]
            index += count
    return names, splits


def voc_view(box: dict[str, Any]) -> dict[str, Any]:
    """A box as VOC holds it: the VOC writer fills pose, truncated and difficult when they are absent."""
    attributes = {"pose": "Unspecified", "truncated": False, "difficult": False, **(box.get("attributes") or {})}
    return {**{k: box[k] for k in ("name", "x1", "y1", "x2", "y2")}, "attributes": attributes}


@settings(max_examples=25, deadline=None)
@given(voc_datasets())
def test_round_trip_through_voc(spec: tuple[list[str], dict[str, list[dict[str, Any]]]]) -> None:
    names, splits = spec
    assume(splits)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        dataset = write_dataset(base / "ds", names, splits)
        export("voc", dataset, base / "voc")
        back = convert("voc", base / "voc", base / "back")
        assert back.manifest.category_names == names
        got = {split: list(open_dataset(back.out).records(split)) for split in back.manifest.splits}
        assert list(got) == list(splits)
        for split, originals in splits.items():
            assert len(got[split]) == len(originals)
            for original, record in zip(originals, got[split], strict=True):
                assert record["image"] == original["image"]
                assert (record["width"], record["height"]) == (original["width"], original["height"])
                assert record["counts"] == original["counts"]
                assert [voc_view(b) for b in record["boxes"]] == [voc_view(b) for b in original["boxes"]]
        # write(read(write(x))) == write(x), byte for byte.
        export("voc", back.out, base / "voc2")
        assert tree_bytes(base / "voc2") == tree_bytes(base / "voc")
