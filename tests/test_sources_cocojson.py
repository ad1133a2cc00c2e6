"""sources/cocojson: the COCO JSON conventions shared by the COCO and COCO results readers (and LVIS, SA-1B)."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec import UNSET
from PIL import Image
from pycocotools import mask as mask_utils

from annonorm.errors import InvalidDataError, ParseError, UnsafePathError
from annonorm.sources.cocojson import (
    NO_FILE_NAME,
    SEGMENTATION,
    LvisCategoryFields,
    LvisImageFields,
    _parsed_url_file_name,
    _segmentation_fields,
    box_to_coco_annotation,
    box_to_coco_bbox,
    canonical_rings,
    category_keypoints,
    coco_bbox_reword,
    coco_bbox_to_corners,
    coco_bboxes_to_corners,
    coco_categories_to_names,
    coco_file_name_entry,
    coco_image_dir,
    coco_image_names,
    coco_image_size,
    coco_polygons_to_rings,
    coco_rle_to_rle,
    coco_url_to_file_name,
    is_lvis_record,
    json_fields,
    keypoint_fields,
    lvis_labels_problem,
    segmentation_fields,
)
from annonorm.sources.columns import Box, grouped_record
from annonorm.sources.jsondoc import JsonProblem

coordinate = st.floats(min_value=0, max_value=1e5, allow_nan=False, allow_infinity=False)


def _raw(value: Any) -> msgspec.Raw:
    return msgspec.Raw(msgspec.json.encode(value))


def _box() -> Box:
    return Box("a", 0.0, 0.0, 1.0, 1.0)


@given(st.lists(st.tuples(coordinate, coordinate, coordinate, coordinate), max_size=20))
def test_bboxes_to_corners_adds_the_size_and_rounds_each_value_like_round(rows: list[tuple[float, ...]]) -> None:
    corners = coco_bboxes_to_corners(bboxes=np.array(rows, dtype=np.float64).reshape(-1, 4))
    expected = [
        [round(x, 6) + 0.0, round(y, 6) + 0.0, round(x + w, 6) + 0.0, round(y + h, 6) + 0.0] for x, y, w, h in rows
    ]
    assert corners.tolist() == expected
    for row, one in zip(rows, expected, strict=True):
        assert list(coco_bbox_to_corners(bbox=row)) == one


@given(coordinate, coordinate, coordinate, coordinate)
def test_a_box_written_back_as_bbox_reads_to_the_same_corners(x: float, y: float, w: float, h: float) -> None:
    x1, y1, x2, y2 = coco_bbox_to_corners(bbox=(x, y, w, h))
    bbox = box_to_coco_bbox(box={"x1": x1, "y1": y1, "x2": x2, "y2": y2})
    assert coco_bbox_to_corners(bbox=bbox) == pytest.approx((x1, y1, x2, y2), abs=2e-6)


@given(st.lists(st.sampled_from(["a", "b", "a#1", "c"]), max_size=8))
def test_category_names_are_unique_and_keep_the_first_of_each_name(names: list[str]) -> None:
    categories = [(index + 1, name) for index, name in enumerate(names)]
    unique = coco_categories_to_names(categories=categories)
    assert len(unique) == len(names) and len(set(unique)) == len(unique)
    for (source_id, name), got in zip(categories, unique, strict=True):
        assert got == name or got.startswith(f"{name}#{source_id}")
    first = {name: index for index, name in reversed(list(enumerate(names)))}
    assert [unique[index] for index in first.values()] == list(first)  # a first occurrence keeps its name


def test_a_repeated_name_takes_its_source_id() -> None:
    assert coco_categories_to_names(categories=[(1, "a"), (2, "a"), (3, "a#2")]) == ["a", "a#2#2", "a#2"]


@given(st.lists(st.lists(st.lists(coordinate, min_size=3, max_size=8).map(lambda v: v * 2), max_size=3), max_size=4))
def test_polygons_are_rounded_value_by_value_and_short_rings_fixed(polygons: list[list[list[float]]]) -> None:
    rings = coco_polygons_to_rings(segmentations=polygons)
    expected = [[[round(v, 6) + 0.0 for v in ring] for ring in polygon] for polygon in polygons]
    assert rings == expected


def test_ring_rules_lenient_for_coco_strict_for_results() -> None:
    # COCO: an empty ring is dropped, a 2-point ring gets its first point again (pycocotools' triangle).
    assert coco_polygons_to_rings(segmentations=[[[], [1, 2, 3, 4]]]) == [[[1, 2, 3, 4, 1, 2]]]
    for bad, found in (([1, 2, 3], 3), ([1, 2], 2)):
        with pytest.raises(ValueError, match=f"polygon ring 1 has {found} numbers; expected an even count"):
            coco_polygons_to_rings(segmentations=[[[0, 0, 1, 0, 1, 1], bad]])
    for short in ([1, 2, 3, 4], []):
        with pytest.raises(ValueError, match=f"ring 0 has {len(short)} numbers"):
            coco_polygons_to_rings(segmentations=[[short]], strict=True)
    with pytest.raises(ValueError, match="not a finite number"):
        coco_polygons_to_rings(segmentations=[[[0, 0, 1, 0, math.inf, 1]]])


def _runs_to_mask(counts: list[int], height: int, width: int) -> np.ndarray:
    """Uncompressed COCO runs (column-major, starting with 0s) as a mask: independent of pycocotools."""
    flat = np.repeat(np.arange(len(counts)) % 2, counts).astype(np.uint8)
    return flat.reshape(width, height).T


@given(st.integers(1, 12), st.integers(1, 12), st.data())
def test_list_counts_are_compressed_losslessly(height: int, width: int, data: st.DataObject) -> None:
    pixels = data.draw(st.lists(st.booleans(), min_size=height * width, max_size=height * width))
    flat = [int(p) for p in pixels]
    counts, value, run = [], 0, 0
    for pixel in flat:
        if pixel != value:
            counts.append(run)
            value, run = pixel, 0
        run += 1
    counts.append(run)
    rle = coco_rle_to_rle(size=[height, width], counts=counts)
    assert rle["size"] == [height, width] and isinstance(rle["counts"], str)
    decoded = mask_utils.decode({"size": [height, width], "counts": rle["counts"].encode()})
    assert (decoded == _runs_to_mask(counts, height, width)).all()


def test_rle_strings_are_kept_and_sizes_checked() -> None:
    assert coco_rle_to_rle(size=[2, 2], counts="04") == {"size": [2, 2], "counts": "04"}
    with pytest.raises(InvalidDataError):
        coco_rle_to_rle(size=[2, 2], counts=[1, 1], height=2, width=2)  # 2 runs for 4 pixels


def test_segmentation_fields_fill_the_boxes_and_name_the_rows_they_cannot() -> None:
    raws: list[Any] = [
        _raw([[0, 0, 4, 0, 4, 4]]),
        _raw({"size": [2, 2], "counts": [0, 4]}),
        _raw([[0, 0, 1]]),
        _raw(None),
        UNSET,
        _raw({"size": [3, 3], "counts": [0, 4]}),
        _raw("nonsense"),
    ]
    boxes = [_box() for _ in raws]
    problems = segmentation_fields(
        boxes, raws, None, image_size=lambda at: {"height": 2, "width": 2}, location=lambda at: f"row {at}"
    )
    assert boxes[0].polygon == [[0, 0, 4, 0, 4, 4]]
    assert boxes[1].rle == {"size": [2, 2], "counts": coco_rle_to_rle(size=[2, 2], counts=[0, 4])["counts"]}
    assert all(box.polygon is UNSET and box.rle is UNSET for box in boxes[2:])
    assert sorted(problems) == [2, 5, 6]
    assert problems[2] == ("polygon ring 0 has 3 numbers; expected an even count, at least 6 (x, y pairs)", "row 2")
    assert problems[5][0].startswith("cannot read the segmentation: ") and problems[6][1] == "row 6"


def test_segmentation_fields_take_the_rle_beside_a_polygon() -> None:
    boxes = [_box()]
    rles: list[Any] = [_raw({"size": [2, 2], "counts": "04"})]
    problems = segmentation_fields(boxes, [_raw([[0, 0, 1, 0, 1, 1]])], rles, image_size=lambda at: {}, location=str)
    assert problems == {}
    assert boxes[0].polygon == [[0, 0, 1, 0, 1, 1]] and boxes[0].rle == {"size": [2, 2], "counts": "04"}


def test_keypoint_fields() -> None:
    boxes = [_box() for _ in range(4)]
    values = [[1, 2, 2, 3, 4, 0], [1, 2, 2, 3, 4, 1], [1, 2, 2], [5, 5, 1]]
    numbers = [UNSET, 1, UNSET, 1]
    problems = keypoint_fields(boxes, values, numbers, [2, 2, 2, 0], location=lambda at: f"kp {at}")
    assert boxes[0].keypoints == [[1.0, 2.0, 2], [3.0, 4.0, 0]] and boxes[0].attributes is UNSET
    assert boxes[1].attributes == {"num_keypoints": 1}  # two are visible: the source's number is kept
    assert list(problems) == [2] and problems[2][1] == "kp 2" and "expected 3 x 2 numbers" in problems[2][0]
    assert boxes[3].keypoints is UNSET and boxes[3].attributes == {"keypoints": [5, 5, 1], "num_keypoints": 1}


def test_category_keypoints_names_and_datumaro_numbers() -> None:
    attributes: dict[str, Any] = {"keypoints": ["nose", "eye"], "skeleton": [[1, 2]], "other": 1}
    assert category_keypoints(attributes, {6}) == (["nose", "eye"], [[0, 1]])
    assert attributes == {"other": 1}
    datumaro: dict[str, Any] = {"keypoints": [], "skeleton": [[0, 1]]}
    assert category_keypoints(datumaro, {6}) == (["1", "2"], [[0, 1]])
    assert datumaro == {"keypoints": [], "skeleton": [[0, 1]]}  # kept to be written back as it was
    assert category_keypoints({"keypoints": ["a", "a"]}, set()) == (None, None)


def test_bbox_reword() -> None:
    assert coco_bbox_reword(JsonProblem("annotations[0].bbox", "x", "box")) == (
        'expected 4 numbers [x, y, width, height], got "box"'
    )
    assert (coco_bbox_reword(JsonProblem("annotations[0].bbox[1]", "expected number", UNSET)) or "").startswith(
        "bbox values must be numbers"
    )
    assert coco_bbox_reword(JsonProblem("images[0].width", "expected int", "8")) is None


def test_image_size_from_the_entry_the_header_or_an_error(tmp_path: Path) -> None:
    def size(file_name: str, width: Any = UNSET, height: Any = UNSET) -> tuple[int | None, int | None]:
        return coco_image_size(
            file_name=file_name, width=width, height=height, image_dir=tmp_path, file=tmp_path / "c.json", index=3
        )

    assert size("a.png", 7, 5) == (7, 5)
    Image.new("RGB", (9, 4)).save(tmp_path / "a.png")
    assert size("a.png") == (9, 4)
    assert size("missing.png") == (None, None)
    with pytest.raises(UnsafePathError) as unsafe:
        size("../a.png")
    assert unsafe.value.location == "images[3].file_name"
    with pytest.raises(UnsafePathError, match="names a folder"):
        size("a/.")
    with pytest.raises(InvalidDataError, match="width and height must be > 0, got 0 x 5"):
        size("a.png", 0, 5)
    os.mkfifo(tmp_path / "fifo.png")
    with pytest.raises(ParseError):
        size("fifo.png")


def test_grouped_record_keys_in_canonical_order() -> None:
    box = _box()
    record = grouped_record(
        image="a.jpg", size=(4, 3), group=([box], ["a"], {"a": 1}), mask="m.png", id=7, attributes={"k": 1}
    )
    assert list(record) == ["image", "width", "height", "labels", "counts", "boxes", "mask", "id", "attributes"]
    bare = grouped_record(image="a.jpg", size=(None, None), group=([], [], {}), mask=None, id=1, attributes={})
    assert list(bare) == ["image", "labels", "counts", "boxes", "id"]


# Number tokens as files write them: mostly shortest reprs of 2-decimal values (the fast path), and among
# them integers, trailing or leading zeros, exponents, tiny values, negative zeros, long fractions, large
# values, which msgspec writes otherwise or the rounding changes.
shortest = st.floats(min_value=-1e4, max_value=1e5, allow_nan=False).map(lambda v: repr(round(v, 2) + 0.0))
wild = st.one_of(
    st.floats(min_value=-2e6, max_value=2e6, allow_nan=False).map(repr),
    st.integers(-(10**8), 10**8).map(str),
    shortest.map(lambda text: text + "0"),
    st.tuples(st.integers(0, 10**4), st.text("0123456789", min_size=1, max_size=8)).map(lambda p: f"{p[0]}.{p[1]}"),
    st.sampled_from(["-0", "-0.0", "-0.00", "0.0", "0.00001", "0.000001", "-0.00005", "1e3", "1E-7", "01.5", "00.0"]),
)
number_text = st.tuples(st.integers(0, 5), shortest, wild).map(lambda p: p[2] if p[0] == 5 else p[1])
ring_text = st.one_of(st.lists(number_text, min_size=6, max_size=10), st.lists(number_text, max_size=5))
segmentation_text = st.tuples(
    st.lists(ring_text, max_size=2), st.sampled_from([",", ", ", " ,\n\t"]), st.sampled_from(["", " ", "\n"])
).map(lambda p: p[2] + "[" + p[1].join("[" + p[1].join(ring) + "]" for ring in p[0]) + "]" + p[2])


def _decoded_polygon_json(text: bytes) -> bytes | None:
    """What the decoding path writes for one segmentation's ``polygon``, or ``None`` when it gives none."""
    try:
        rings = coco_polygons_to_rings(segmentations=[SEGMENTATION.decode(text)])[0]
    except (ValueError, msgspec.DecodeError):
        return None
    return msgspec.json.encode(rings) if rings else None


@settings(max_examples=400)
@given(segmentation_text)
def test_canonical_rings_are_what_decoding_rounding_and_encoding_write(text: str) -> None:
    fast = canonical_rings(text.encode())
    if fast is not None:  # taken only where it is byte for byte what the decoding path writes
        assert bytes(fast) == _decoded_polygon_json(text.encode())


@given(st.lists(st.lists(coordinate, min_size=3, max_size=12).map(lambda v: v * 2), min_size=1, max_size=3))
def test_canonical_rings_take_rounded_shortest_reprs_as_they_are(polygon: list[list[float]]) -> None:
    rounded = [[round(value, 2) for value in ring] for ring in polygon]
    text = msgspec.json.encode(rounded)
    assert canonical_rings(text) is not None and bytes(canonical_rings(text) or b"") == text
    assert bytes(canonical_rings(msgspec.json.encode(rounded).replace(b",", b", ")) or b"") == text


def _json(text: bytes) -> bool:
    try:
        msgspec.json.decode(text)
    except msgspec.DecodeError:
        return False
    return True


# A reader's raw segmentations are valid JSON (the document was decoded).
raw_segmentation = st.one_of(segmentation_text.map(str.encode).filter(_json), st.just(b"null"), st.just(b"[]"))


@settings(max_examples=300)
@given(st.lists(raw_segmentation, max_size=8))
def test_segmentation_fields_write_what_the_decoding_path_writes(texts: list[bytes]) -> None:
    fast, slow = [_box() for _ in texts], [_box() for _ in texts]
    raws = [msgspec.Raw(text) for text in texts]
    options: dict[str, Any] = {"image_size": lambda at: {}, "location": str}
    problems = segmentation_fields(fast, raws, None, **options)
    assert problems == _segmentation_fields(slow, raws, None, **options)
    assert msgspec.json.encode(fast) == msgspec.json.encode(slow)
    assert sorted(problems) == [at for at, text in enumerate(texts) if _decoding_refuses(text)]


def _decoding_refuses(text: bytes) -> bool:
    try:
        coco_polygons_to_rings(segmentations=[SEGMENTATION.decode(text) or []])
    except (ValueError, msgspec.DecodeError):
        return True
    return False


def test_canonical_rings_leave_every_number_written_otherwise_to_the_decoding_path() -> None:
    written_otherwise = ["12", "1.50", "1.00", "01.5", "0.000001", "-0.0", "-0", "1e3", "1.1234567", "-0.00"]
    for token in [*written_otherwise, "0.00001", "1234567.5"]:  # the last two: written alike, left all the same
        text = f"[[{token},2.0,3.5,4.0,5.0,6.25]]".encode()
        assert canonical_rings(text) is None, token
        assert (_decoded_polygon_json(text) != text) is (token in written_otherwise), token
    assert canonical_rings(b"[[0.5,2.0,3.5,4.0,5.0,6.25],[1.0,2.0,3.0,4.0,5.0,6.0]]") is not None
    assert canonical_rings(b"[[0.5,2.0,3.5,4.0]]") is None  # a 2-point ring gets its first point again


# ----------------------------------------------------------------------------------------------------- LVIS


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("http://images.cocodataset.org/train2017/000000000009.jpg", "train2017/000000000009.jpg"),
        ("https://host/a/b/val2017/x.png?size=big#top", "val2017/x.png"),  # query and fragment are no path
        ("http://host/x.jpg", "x.jpg"),
        ("x.jpg", "x.jpg"),
        ("http://host/my%20images/a%20b.jpg", "my images/a b.jpg"),
    ],
)
def test_a_coco_url_names_its_folder_and_file(url: str, name: str) -> None:
    assert coco_url_to_file_name(url) == name


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://host/train2017/", "names no image file"),
        ("http://host", "names no image file"),
        ("", "names no image file"),
        ("http://host/a/..", "names no image file"),
        ("http://host/../a.jpg", "must not climb out"),
        (3, "expected the image's URL (a string), got 3"),
        ("http://[::1/a.jpg", "is not a URL"),
    ],
)
def test_a_coco_url_that_names_no_file_is_refused(url: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        coco_url_to_file_name(url)


@given(folder=st.sampled_from(["train2017", "val2017", "test2017"]), number=st.integers(min_value=0, max_value=10**12))
def test_property_the_name_is_the_urls_last_two_segments(folder: str, number: int) -> None:
    url = f"http://images.cocodataset.org/{folder}/{number:012d}.jpg"
    assert coco_url_to_file_name(url) == "/".join(url.split("/")[-2:])


#: URL texts of 2-5 segments, mostly plain names (the shortcut's case), some with URL syntax or odd names.
url_text = st.lists(
    st.one_of(st.from_regex(r"[a-z0-9_-][a-z0-9_.-]{0,6}", fullmatch=True), st.text(alphabet="ab.%2e?#[]:@ \t\\é")),
    min_size=2,
    max_size=5,
).map("/".join)


def _name_or_refusal(function: Any, url: str) -> str:
    try:
        return str(function(url))
    except ValueError as exc:
        return f"refused: {exc}"


@settings(max_examples=500)
@given(scheme=st.sampled_from(["http://", "https://", "", "//"]), rest=url_text)
def test_property_the_plain_url_shortcut_names_what_parsing_names(scheme: str, rest: str) -> None:
    url = scheme + rest
    assert _name_or_refusal(coco_url_to_file_name, url) == _name_or_refusal(_parsed_url_file_name, url)


def test_lvis_labels_must_be_lists_of_the_files_category_ids() -> None:
    known = {1, 3, 12}
    assert lvis_labels_problem([], known) is None
    assert lvis_labels_problem([12, 1], known) is None
    assert lvis_labels_problem([1, 2], known) == ("category id 2 is not the id of any category", "[1]")
    assert lvis_labels_problem([True], known) == ("category id True is not the id of any category", "[0]")
    assert lvis_labels_problem([1.0], known) == ("category id 1.0 is not the id of any category", "[0]")
    assert lvis_labels_problem([[1]], known) == ("category id [1] is not the id of any category", "[0]")
    assert lvis_labels_problem(["1"], known) == ("category id '1' is not the id of any category", "[0]")
    assert lvis_labels_problem("1,3", known) == ('expected a list of category ids, got "1,3"', "")


class _Image(LvisImageFields, kw_only=True):
    file_name: str = NO_FILE_NAME
    coco_url: Any = UNSET


class _Category(LvisCategoryFields, kw_only=True):
    id: int
    name: str


def test_json_fields_are_named_as_the_json_has_them() -> None:
    category = msgspec.json.decode(b'{"id": 1, "name": "ax", "def": "a tool", "frequency": "r"}', type=_Category)
    assert json_fields(category, frozenset({"id", "name"})) == {"def": "a tool", "frequency": "r"}


def test_coco_image_names_give_url_only_images_their_file_and_word_each_broken_one(tmp_path: Path) -> None:
    images = [
        _Image(file_name="own.jpg", coco_url="http://host/val2017/other.jpg"),
        _Image(coco_url="http://host/val2017/a.jpg", neg_category_ids=[1]),
        _Image(coco_url="http://host/val2017/", not_exhaustive_category_ids=[1]),
        _Image(coco_url="http://host/train2017/b.jpg", not_exhaustive_category_ids=[1, 5]),
    ]
    errors = coco_image_names(images, categories={1, 2}, file=tmp_path / "lvis.json")
    assert [image.file_name for image in images[:2]] == ["own.jpg", "val2017/a.jpg"]
    assert {index: (type(e), e.location) for index, e in errors.items()} == {
        2: (UnsafePathError, "images[2].coco_url"),
        3: (InvalidDataError, "images[3].not_exhaustive_category_ids[1]"),
    }
    with pytest.raises(ParseError, match="missing required field `file_name`") as info:
        coco_image_names([_Image(file_name="a.jpg"), _Image()], categories=(), file=tmp_path / "lvis.json")
    assert info.value.location == "images[1]"


def test_plain_coco_images_are_left_as_they_are(tmp_path: Path) -> None:
    images = [_Image(file_name="a.jpg", coco_url="http://host/val2017/b.jpg")]
    assert coco_image_names(images, categories=(), file=tmp_path / "x.json") == {}
    assert images[0].file_name == "a.jpg"


def test_an_lvis_record_writes_no_file_name_its_coco_url_already_names() -> None:
    url = "http://images.cocodataset.org/val2017/000000000139.jpg"
    lvis = {"image": "val2017/000000000139.jpg", "attributes": {"coco_url": url, "neg_category_ids": []}}
    assert is_lvis_record(lvis)
    assert coco_file_name_entry(lvis) == {}
    assert coco_file_name_entry(lvis | {"image": "coco/val2017/000000000139.jpg"}) == {}  # under a prefix folder
    v05 = lvis | {"image": "COCO_val2014_000000000139.jpg"}
    assert coco_file_name_entry(v05) == {"file_name": "COCO_val2014_000000000139.jpg"}
    plain = {"image": "val2017/000000000139.jpg", "attributes": {"coco_url": url}}  # no LVIS labels: COCO
    assert not is_lvis_record(plain)
    assert coco_file_name_entry(plain) == {"file_name": "val2017/000000000139.jpg"}
    assert coco_file_name_entry({"image": "a.jpg", "attributes": None}) == {"file_name": "a.jpg"}


def test_an_lvis_box_gets_no_iscrowd_it_did_not_have() -> None:
    box = {"name": "cat", "x1": 1.0, "y1": 2.0, "x2": 4.0, "y2": 6.0, "attributes": {"area": 12.0}}
    fields: dict[str, Any] = {"annotation_id": 1, "image_id": 2, "category_id": 3, "segmentation": None}
    assert "iscrowd" not in box_to_coco_annotation(box=box, lvis=True, **fields)
    assert box_to_coco_annotation(box=box, **fields)["iscrowd"] == 0
    crowd = box | {"attributes": {"iscrowd": True}}
    assert box_to_coco_annotation(box=crowd, lvis=True, **fields)["iscrowd"] == 1


def test_the_image_folder_of_an_lvis_file_is_the_one_above_its_coco_folder(tmp_path: Path) -> None:
    (tmp_path / "train2017").mkdir()
    (tmp_path / "train2017" / "9.jpg").write_bytes(b"")
    head = b'{"images": [{"id": 9, "coco_url": "http://images.cocodataset.org/train2017/9.jpg"}]'
    assert coco_image_dir([tmp_path / "elsewhere", tmp_path], head) == tmp_path
    assert coco_image_dir([tmp_path / "train2017"], head) == tmp_path
    assert coco_image_dir([tmp_path / "val2017"], head) is None
    assert coco_image_dir([tmp_path / "train2017"], b'{"images": [{"file_name": "9.jpg"}]') == tmp_path / "train2017"
