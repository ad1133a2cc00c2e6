"""The bulk fast check and the Pydantic models accept exactly the same records."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from annonorm.fastcheck import RecordChecker
from annonorm.schemas import Record
from annonorm.schemas.types import FLOAT32_MAX, INT32_MAX, INT64_MAX, INT64_MIN
from annonorm.testing import category_names, keypoint_names, records

ODD_NAMES = ["", "dog", " car", "../x", "/abs", "a/../../b", "C:\\x"]
KEYS = ["image", "width", "height", "labels", "counts", "boxes", "mask", "id", "attributes", "extra"]
BOX_KEYS = ["name", "x1", "y1", "x2", "y2", "polygon", "rle", "obb", "keypoints", "score", "attributes", "extra"]
#: Written into a JSON line as ``1e400``: a number JSON can spell but float64 cannot hold.
OVERFLOW = "\x00overflow"
#: The edges of what the loader's arrays hold (int32 sides, int64 ids and counts, float32 coordinates), either side.
EDGE_NUMBERS = [
    INT32_MAX,
    INT32_MAX + 1,
    INT64_MAX,
    INT64_MAX + 1,
    INT64_MIN,
    INT64_MIN - 1,
    2**64,
    10**40,
    FLOAT32_MAX,
    math.nextafter(FLOAT32_MAX, math.inf),
    1.9e19,  # squared, beyond float32: an area that overflows while each corner fits
    2e19,
    1e39,
    1e300,
    640.0,
    OVERFLOW,
]


def edge_numbers() -> st.SearchStrategy[Any]:
    return st.sampled_from(EDGE_NUMBERS)


def encode(record: Any) -> bytes:
    return json.dumps(record).replace(json.dumps(OVERFLOW), "1e400").encode()


def odd_values(names: list[str]) -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-3, 300),
        st.floats(-3, 300, allow_nan=False, allow_infinity=False),
        st.sampled_from(names + ODD_NAMES),
        edge_numbers(),
    )
    return st.one_of(
        scalars,
        st.lists(scalars, max_size=3),
        st.dictionaries(st.sampled_from(names + ODD_NAMES), scalars, max_size=2),
        st.lists(st.dictionaries(st.sampled_from([*names, "dog"]), st.integers(-1, 4), max_size=2), max_size=2),
    )


#: Ways to break (or, for some, keep) one format-version-2 field of a box.
V2_EDITS = [
    ("polygon", []),
    ("polygon", [[1, 1, 2, 2]]),
    ("polygon", [[1, 1, 2, 2, 3]]),
    ("polygon", [[-5, 1, 2, 2, 3, 3]]),
    ("polygon", [[1, 1, 2, 2, 3, OVERFLOW]]),
    ("polygon", [[1, 1, 2, 2, 3, 3.5e38]]),
    ("polygon", [[1, 1, 2, 2, 3, "3"]]),
    ("polygon", [1, 1, 2, 2, 3, 3]),
    ("obb", [0, 0, 1, 0, 1, 1]),
    ("obb", [0, 0, 1, 0, 1, 1, 0, 1, 0]),
    ("obb", None),
    ("keypoints", [[1, 1, 3]]),
    ("keypoints", [[1, 1, True]]),
    ("keypoints", [[1, 1, 2.0]]),
    ("keypoints", [[1, 1]]),
    ("keypoints", [[1, 1, 2, 0]]),
    ("keypoints", [[-1, 1e39, 2]]),
    ("keypoints", []),
    ("score", 1.5),
    ("score", -0.1),
    ("score", 1),
    ("score", 0),
    ("score", OVERFLOW),
    ("score", "0.5"),
    ("rle", {"size": [2, 2], "counts": "04"}),
    ("rle", {"size": [2, 2, 1], "counts": "04"}),
    ("rle", {"size": [2, 2], "counts": "0"}),
    ("rle", {"size": [2, 2], "counts": "0\x7f"}),
    ("rle", {"size": [2, 2], "counts": "p"}),
    ("rle", {"size": [2, 2], "counts": "04", "extra": 1}),
    ("rle", {"size": [2, 2]}),
    ("rle", "04"),
]


def _v2_edit(draw: st.DrawFn, box: dict[str, Any], record: dict[str, Any]) -> None:
    """Break (or move) one v2 field of ``box``: a drawn bad value, or a shifted obb, keypoint or rle size."""
    how = draw(st.sampled_from(["value", "obb_shift", "keypoint_drop", "rle_size"]))
    if how == "value":
        key, value = draw(st.sampled_from(V2_EDITS))
        if key == "obb" and value is None:
            value = [box.get("x1"), box.get("y1"), box.get("x2"), box.get("y1"), box.get("x2"), box.get("y2")] * 1
            value += [box.get("x1"), box.get("y2")]  # the box itself as 4 corners: valid
        box[key] = value
    elif how == "obb_shift" and isinstance(box.get("obb"), list) and box["obb"]:
        box["obb"][draw(st.integers(0, len(box["obb"]) - 1))] += draw(st.sampled_from([1e-4, 0.5, 3.0]))
    elif how == "keypoint_drop" and isinstance(box.get("keypoints"), list) and box["keypoints"]:
        box["keypoints"].pop()
    elif how == "rle_size" and isinstance(box.get("rle"), dict):
        box["rle"]["size"] = draw(st.sampled_from([[record.get("width"), record.get("height")], [1, 1], [0, 5]]))


@st.composite
def perturbed_records(draw: st.DrawFn) -> tuple[list[str], dict[str, Any], dict[str, int]]:
    """A valid record (v2 fields included), then up to three random edits: wrong types, odd names, unknown keys,
    swapped corners, broken polygons, oriented boxes, keypoints, scores and RLE masks.

    Also the number of keypoint names of each category that has some."""
    names = draw(category_names(max_size=3))
    keypoints = {name: len(draw(keypoint_names())) for name in names if draw(st.booleans())}
    record = draw(
        records(names, sizes=False, max_boxes=3, polygons=True, rle=True, obb=True, keypoints=keypoints, scores=True)
    )
    for _ in range(draw(st.integers(0, 3))):
        edit = draw(
            st.sampled_from(["set", "delete", "box_set", "box_swap", "shorthand", "edge", "box_edge", "v2", "v2", "v2"])
        )
        if edit == "v2" and isinstance(record.get("boxes"), list) and record["boxes"]:
            box = record["boxes"][draw(st.integers(0, len(record["boxes"]) - 1))]
            if isinstance(box, dict):
                _v2_edit(draw, box, record)
        elif edit == "set":
            record[draw(st.sampled_from(KEYS))] = draw(odd_values(names))
        elif edit == "edge":
            # A number at the edge of the loader's arrays, where a number may be: a side, the id, a count, attributes.
            value = draw(edge_numbers())
            where = draw(st.sampled_from(["size", "id", "count", "attribute"]))
            if where == "size":
                record["width"] = value
                record["height"] = draw(st.sampled_from([value, 10]))
            elif where == "id":
                record["id"] = value
            elif where == "count" and isinstance(record.get("counts"), dict) and record["counts"]:
                record["counts"][draw(st.sampled_from(sorted(record["counts"])))] = value
            elif where == "attribute":
                record["attributes"] = {"a": draw(st.sampled_from([value, [value], {"b": value}]))}
        elif edit == "box_edge" and isinstance(record.get("boxes"), list) and record["boxes"]:
            box = record["boxes"][draw(st.integers(0, len(record["boxes"]) - 1))]
            if not isinstance(box, dict):
                continue
            value = draw(edge_numbers())
            target = draw(st.sampled_from(["x2", "y2", "both", "area"]))
            if target == "area":
                box["attributes"] = {"area": value}
            else:
                for key in ("x2", "y2") if target == "both" else (target,):
                    box[key] = value
        elif edit == "delete":
            record.pop(draw(st.sampled_from(KEYS)), None)
        elif edit in {"box_set", "box_swap"} and isinstance(record.get("boxes"), list) and record["boxes"]:
            box = record["boxes"][draw(st.integers(0, len(record["boxes"]) - 1))]
            if not isinstance(box, dict):
                continue
            if edit == "box_set":
                box[draw(st.sampled_from(BOX_KEYS))] = draw(odd_values(names))
            else:
                box["x1"], box["x2"] = box.get("x2"), box.get("x1")
        elif edit == "shorthand" and isinstance(record.get("counts"), dict):
            record["counts"] = [{k: v} for k, v in record["counts"].items()]
            if isinstance(record.get("labels"), list) and len(record["labels"]) == 1:
                record["labels"] = record["labels"][0]
    return names, record, keypoints


def models_accept(line: bytes, categories: frozenset[str] | None, keypoints: dict[str, int] | None = None) -> bool:
    context: dict[str, Any] | None = None
    if categories is not None:
        context = (
            {"categories": categories} if keypoints is None else {"categories": categories, "keypoints": keypoints}
        )
    try:
        Record.model_validate_json(line, context=context)
    except ValidationError:
        return False
    return True


@settings(max_examples=300)
@given(perturbed_records(), st.booleans())
def test_fast_check_and_models_agree(
    drawn: tuple[list[str], dict[str, Any], dict[str, int]], with_manifest: bool
) -> None:
    names, record, keypoints = drawn
    categories = frozenset(names) if with_manifest else None
    keypoint_counts = keypoints if with_manifest else None
    line = encode(record)
    fast = RecordChecker(categories, keypoint_counts).check(line) is not None
    assert fast == models_accept(line, categories, keypoint_counts), line


@given(category_names().flatmap(lambda n: st.tuples(st.just(n), records(n, sizes=False))))
def test_every_drawn_record_passes_the_fast_check(drawn: tuple[list[str], dict[str, Any]]) -> None:
    names, record = drawn
    assert RecordChecker(frozenset(names)).check(json.dumps(record).encode()) is not None


def test_checker_with_empty_category_table_refuses_every_name() -> None:
    checker = RecordChecker([])
    assert checker.check(b'{"image": "a.jpg"}') is not None
    assert checker.check(b'{"image": "a.jpg", "labels": ["x"]}') is None


def box_line(corners: str, extra: str = "") -> bytes:
    return b'{"image": "a.jpg", "boxes": [{"name": "x", ' + corners.encode() + extra.encode() + b"}]}"


@pytest.mark.parametrize(
    "line",
    [
        b'{"image": "a.jpg", "width": 2147483648, "height": 2}',
        b'{"image": "a.jpg", "width": 2, "height": 99999999999999999999}',
        b'{"image": "a.jpg", "width": 640.0, "height": 480}',
        b'{"image": "a.jpg", "width": "640", "height": 480}',
        b'{"image": "a.jpg", "id": 9223372036854775808}',
        b'{"image": "a.jpg", "id": -9223372036854775809}',
        b'{"image": "a.jpg", "labels": ["x"], "counts": {"x": 9223372036854775808}}',
        box_line('"x1": 0, "y1": 0, "x2": 3.5e38, "y2": 1'),
        box_line('"x1": 0, "y1": 0, "x2": 1e400, "y2": 1'),
        box_line('"x1": 0, "y1": 0, "x2": 1' + "0" * 40 + ', "y2": 1'),
        box_line('"x1": 0, "y1": 0, "x2": 2e19, "y2": 2e19'),
        box_line('"x1": 0, "y1": 0, "x2": 1, "y2": 1', ', "attributes": {"area": 1e39}'),
        box_line('"x1": 0, "y1": 0, "x2": 1, "y2": 1', ', "attributes": {"area": 1' + "0" * 400 + "}"),
        box_line('"x1": 0, "y1": 0, "x2": 1, "y2": 1', ', "attributes": {"note": [1e400]}'),
        b'{"image": "a.jpg", "attributes": {"score": 1e400}}',
    ],
)
def test_what_the_loader_cannot_hold_is_refused_by_both(line: bytes) -> None:
    assert RecordChecker(None).check(line) is None
    assert not models_accept(line, None)


@pytest.mark.parametrize(
    "line",
    [
        b'{"image": "a.jpg", "width": 2147483647, "height": 1}',
        b'{"image": "a.jpg", "id": 9223372036854775807}',
        b'{"image": "a.jpg", "id": -9223372036854775808}',
        b'{"image": "a.jpg", "id": "99999999999999999999999"}',
        b'{"image": "a.jpg", "labels": ["x"], "counts": {"x": 9223372036854775807}}',
        box_line('"x1": 0, "y1": 0, "x2": 3.4028234663852886e38, "y2": 1'),
        box_line('"x1": 0, "y1": 0, "x2": 1.8e19, "y2": 1.8e19'),
        box_line('"x1": 0, "y1": 0, "x2": 1, "y2": 1', ', "attributes": {"area": 3e38, "id": 18446744073709551616}'),
    ],
)
def test_the_largest_values_the_loader_holds_are_accepted_by_both(line: bytes) -> None:
    assert RecordChecker(None).check(line) is not None
    assert models_accept(line, None)
