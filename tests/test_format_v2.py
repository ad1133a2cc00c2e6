"""Format version 2: polygons, RLE masks, oriented boxes, keypoints and scores; each rule with its code.

Every rule is checked by both the fast check and the models (they must agree, and ``annonorm validate``
reports the rule's stable code); the geometry helpers are checked against plain Python and pycocotools.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycocotools import mask as mask_utils
from pydantic import ValidationError

from annonorm.converters.base import Capabilities
from annonorm.fastcheck import RecordChecker
from annonorm.geometry import obb_hull, polygon_hull, rle_string_runs
from annonorm.io import encode_record, open_dataset, read_manifest
from annonorm.records import BOX_KEYS, canonical_box
from annonorm.schemas import Manifest, Record
from annonorm.sink import DatasetWriter
from annonorm.testing import datasets, write_dataset
from annonorm.validation import validate

CATEGORIES = ["person", "car"]
KEYPOINTS = {"person": ["nose", "left_eye", "right_eye"]}
BASE: dict[str, Any] = {"image": "a.jpg", "width": 10, "height": 8}


def box(**extra: Any) -> dict[str, Any]:
    return {"name": "person", "x1": 1.0, "y1": 1.0, "x2": 5.0, "y2": 6.0, **extra}


def rle_of(mask: np.ndarray) -> dict[str, Any]:
    encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in encoded["size"]], "counts": encoded["counts"].decode("ascii")}


GOOD_RLE = rle_of(np.eye(8, 10))
POINTS = [[2.0, 2.0, 2], [3.0, 2.5, 1], [0.0, 0.0, 0]]

#: (box fields, the code annonorm validate reports): one broken rule each.
BROKEN = [
    ({"polygon": []}, "polygon_invalid"),
    ({"polygon": [[1, 1, 2, 2]]}, "polygon_invalid"),
    ({"polygon": [[1, 1, 2, 2, 3, 3], [1, 1, 2, 2, 3]]}, "polygon_invalid"),
    ({"obb": [1, 1, 5, 1, 5, 6]}, "obb_invalid"),
    ({"obb": [1, 1, 5, 1, 5, 6.01, 1, 6]}, "obb_invalid"),
    ({"keypoints": POINTS[:2]}, "keypoints_invalid"),
    ({"keypoints": [[2, 2, 3], *POINTS[1:]]}, "keypoints_invalid"),
    ({"keypoints": [[2, 2, -1], *POINTS[1:]]}, "keypoints_invalid"),
    ({"score": 1.0000001}, "score_out_of_range"),
    ({"score": -0.5}, "score_out_of_range"),
    ({"rle": {**GOOD_RLE, "size": [10, 8]}}, "rle_invalid"),
    ({"rle": {**GOOD_RLE, "counts": GOOD_RLE["counts"][:-1]}}, "rle_invalid"),
    ({"rle": {"size": [8, 10], "counts": "0" + "\x7f"}}, "rle_invalid"),
    ({"rle": {"size": [8, 10], "counts": "PP"}}, "rle_invalid"),
    ({"polygon": [[1, 1, 2, 2, 3, 1e39]]}, "number_out_of_range"),
    ({"keypoints": [[2, 2, True], *POINTS[1:]]}, "record_invalid"),
    ({"rle": {**GOOD_RLE, "mode": "x"}}, "record_invalid"),
]

VALID = [
    {"polygon": [[1, 1, 5, 1, 3, 6], [2, 2, 3, 2, 3, 3, 2, 3]]},
    {"obb": [3, 1, 5, 3.5, 3, 6, 1, 3.5]},
    {"obb": [1, 1, 5, 1, 5, 6.0005, 1, 6]},  # within 1e-3 px of the box
    {"keypoints": POINTS},
    {"score": 0.0},
    {"score": 1},
    {"rle": GOOD_RLE},
    {"polygon": [[1, 1, 5, 1, 3, 6]], "rle": GOOD_RLE, "obb": [1, 1, 5, 1, 5, 6, 1, 6], "keypoints": POINTS},
]


def dataset(tmp_path: Path, boxes: list[dict[str, Any]], **record: Any) -> Path:
    line = {**BASE, **record, "boxes": boxes}
    return write_dataset(tmp_path / "ds", CATEGORIES, {"train": [line]}, keypoints=KEYPOINTS)


def both_accept(line: dict[str, Any]) -> tuple[bool, bool]:
    raw = json.dumps(line).encode()
    fast = RecordChecker(CATEGORIES, {"person": 3}).check(raw) is not None
    try:
        Record.model_validate_json(raw, context={"categories": frozenset(CATEGORIES), "keypoints": {"person": 3}})
    except ValidationError:
        return fast, False
    return fast, True


@pytest.mark.parametrize(("fields", "code"), BROKEN)
def test_each_broken_rule_is_refused_by_both_with_its_code(tmp_path: Path, fields: dict[str, Any], code: str) -> None:
    assert both_accept({**BASE, "boxes": [box(**fields)]}) == (False, False)
    report = validate(dataset(tmp_path, [box(**fields)]))
    assert [f.code for f in report.errors] == [code], report.findings
    finding = report.errors[0]
    assert finding.line == 1 and finding.key is not None and finding.key.startswith("boxes")
    assert finding.message and "\n" not in finding.message


@pytest.mark.parametrize("fields", VALID)
def test_valid_v2_fields_are_accepted_by_both(tmp_path: Path, fields: dict[str, Any]) -> None:
    assert both_accept({**BASE, "boxes": [box(**fields)]}) == (True, True)
    report = validate(dataset(tmp_path, [box(**fields)]))
    assert report.valid and not report.findings, report.findings


def test_keypoints_of_a_category_without_keypoint_names_are_refused(tmp_path: Path) -> None:
    car = {**box(keypoints=[[1.0, 1.0, 2]]), "name": "car"}
    report = validate(dataset(tmp_path, [car]))
    assert [f.code for f in report.errors] == ["keypoints_invalid"]
    assert "1 keypoints where the category names 0" in report.errors[0].message


def test_rle_of_an_image_of_unknown_size_is_checked_against_its_own_size(tmp_path: Path) -> None:
    line = {"image": "a.jpg", "boxes": [box(rle=GOOD_RLE)]}
    assert both_accept(line) == (True, True)
    short = {"image": "a.jpg", "boxes": [box(rle={**GOOD_RLE, "size": [8, 11]})]}
    assert both_accept(short) == (False, False)


def test_messages_say_what_was_expected() -> None:
    with pytest.raises(ValidationError) as caught:
        Record.model_validate_json(json.dumps({**BASE, "boxes": [box(polygon=[[1, 1, 2, 2, 3]])]}))
    (error,) = caught.value.errors()
    assert error["type"] == "polygon_invalid" and error["loc"] == ("boxes", 0, "polygon")
    assert error["msg"] == "polygon ring 0 has 5 coordinates; expected an even number, at least 6 (3 points)"
    with pytest.raises(ValidationError) as caught:
        Record.model_validate_json(json.dumps({**BASE, "boxes": [box(rle={**GOOD_RLE, "size": [10, 8]})]}))
    assert "rle.size is [10, 8] but the image is [8, 10]; expected [height, width]" in str(caught.value)


@pytest.mark.parametrize(
    ("fields", "code", "key"),
    [
        ({"polygon": [[1, 1, 11, 1, 3, 6]]}, "polygon_outside_image", "boxes.0.polygon"),
        ({"polygon": [[-0.5, 1, 5, 1, 3, 6]]}, "polygon_outside_image", "boxes.0.polygon"),
        ({"keypoints": [[2.0, 9.0, 1], *POINTS[1:]]}, "keypoint_outside_image", "boxes.0.keypoints"),
    ],
)
def test_geometry_outside_the_image_is_a_warning(tmp_path: Path, fields: dict[str, Any], code: str, key: str) -> None:
    path = dataset(tmp_path, [box(**fields)])
    report = validate(path)
    assert report.valid and [(f.code, f.severity, f.key) for f in report.findings] == [(code, "warning", key)]
    assert not validate(path, strict=True).valid


def test_an_unlabeled_keypoint_at_the_origin_is_not_outside(tmp_path: Path) -> None:
    assert not validate(dataset(tmp_path, [box(keypoints=POINTS)])).findings


def test_manifest_is_written_as_version_2_with_keypoint_categories(tmp_path: Path) -> None:
    path = dataset(tmp_path, [box(keypoints=POINTS)])
    written = json.loads((path / "annonorm.json").read_text())
    assert written["version"] == 2
    assert written["categories"] == [
        {"id": 0, "name": "person", "keypoints": ["nose", "left_eye", "right_eye"]},
        {"id": 1, "name": "car"},
    ]


def test_sink_category_takes_the_v2_fields_in_manifest_key_order(tmp_path: Path) -> None:
    writer = DatasetWriter(tmp_path, class_list=["car", "person"])
    assert writer.category(
        "person", 1, {"color": "red"}, supercategory="human", keypoints=("a", "b"), skeleton=[(0, 1)]
    )
    assert writer.category("person", 7, keypoints=["z"]) == 1  # the first declaration of a listed class is kept
    assert writer.category("bird", supercategory="animal") == 2
    assert writer.categories[1] == {
        "id": 1,
        "name": "person",
        "source_id": 1,
        "supercategory": "human",
        "keypoints": ["a", "b"],
        "skeleton": [[0, 1]],
        "attributes": {"color": "red"},
    }
    assert list(writer.categories[1]) == [
        "id",
        "name",
        "source_id",
        "supercategory",
        "keypoints",
        "skeleton",
        "attributes",
    ]
    assert writer.category_keypoints("person") == ["a", "b"] and writer.category_keypoints("car") is None
    Manifest.model_validate({"name": "x", "categories": writer.categories, "splits": {"t": "t.jsonl"}})


@pytest.mark.parametrize(
    ("category", "fragment"),
    [
        ({"keypoints": ["a", "a"]}, "keypoints name 'a' more than once"),
        ({"keypoints": ["a", "b"], "skeleton": [[0, 2]]}, "skeleton[0] joins keypoints 0 and 2"),
        ({"skeleton": [[0, 1]]}, "the category has 0 keypoint names"),
        ({"keypoints": ["a"], "skeleton": [[0]]}, "at least 2 items"),
        ({"keypoints": [""]}, "at least 1 character"),
    ],
)
def test_category_rules(tmp_path: Path, category: dict[str, Any], fragment: str) -> None:
    (tmp_path / "t.jsonl").write_text("")
    manifest = {"format": "annonorm", "version": 2, "name": "x", "splits": {"t": "t.jsonl"}}
    (tmp_path / "annonorm.json").write_text(
        json.dumps({**manifest, "categories": [{"id": 0, "name": "a", **category}]})
    )
    report = validate(tmp_path)
    assert [f.code for f in report.errors] == ["manifest_invalid"] and fragment in report.errors[0].message


def test_a_version_1_dataset_validates_and_loads_unchanged(tmp_path: Path) -> None:
    line = {**BASE, "labels": ["car"], "counts": {"car": 1}, "boxes": [{**box(), "name": "car"}]}
    manifest = {
        "format": "annonorm",
        "version": 1,
        "name": "old",
        "categories": [{"id": 0, "name": "car", "source_id": 3, "attributes": {"supercategory": "vehicle"}}],
        "splits": {"train": "train.jsonl"},
    }
    (tmp_path / "annonorm.json").write_text(json.dumps(manifest))
    (tmp_path / "train.jsonl").write_text(json.dumps(line) + "\n")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert validate(tmp_path).valid
    source = open_dataset(tmp_path)
    assert source.manifest.version == 1
    assert list(source.records("train")) == [line]
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_a_version_1_manifest_with_v2_category_fields_is_refused(tmp_path: Path) -> None:
    (tmp_path / "t.jsonl").write_text("")
    categories = [{"id": 0, "name": "a", "keypoints": ["x"]}]
    manifest = {"format": "annonorm", "version": 1, "name": "x", "categories": categories, "splits": {"t": "t.jsonl"}}
    (tmp_path / "annonorm.json").write_text(json.dumps(manifest))
    with pytest.raises(Exception, match='expected "version": 2'):
        read_manifest(tmp_path)


def test_canonical_box_orders_and_rounds_v2_fields() -> None:
    raw = {
        "attributes": {"a": 1},
        "score": 0.5,
        "keypoints": [[1.00000049, 2, 2]],
        "obb": [1, 1.0000004, 5, 1, 5, 6, 1, 6],
        "rle": GOOD_RLE,
        "polygon": [[1, 1, 2.1234567, 2, 3, 3]],
        "y2": 6,
        "x2": 5,
        "y1": 1,
        "x1": 1,
        "name": "person",
    }
    out = canonical_box(raw)
    assert list(out) == list(BOX_KEYS)
    assert out["polygon"] == [[1.0, 1.0, 2.123457, 2.0, 3.0, 3.0]] and out["obb"][1] == 1.0
    assert out["keypoints"] == [[1.0, 2.0, 2]] and type(out["keypoints"][0][2]) is int
    record = Record.model_validate_json(encode_record({**BASE, "boxes": [raw]}))
    assert record.to_json_dict()["boxes"][0] == out


def test_capabilities_have_the_v2_flags_off_by_default() -> None:
    caps = Capabilities()
    assert not (caps.polygons or caps.rle or caps.obb or caps.keypoints or caps.scores)


def test_json_schema_states_the_v2_fields() -> None:
    committed = Path(__file__).parent.parent / "schemas"
    record = json.loads((committed / "record.schema.json").read_text())
    assert list(record["$defs"]["Box"]["properties"]) == list(BOX_KEYS)
    manifest = json.loads((committed / "manifest.schema.json").read_text())
    assert {"supercategory", "keypoints", "skeleton"} <= set(manifest["$defs"]["Category"]["properties"])


# ------------------------------------------------------------------------------------------------ geometry

corner = st.floats(-1e4, 1e4, allow_nan=False)


@given(st.lists(st.lists(corner, min_size=8, max_size=8), min_size=1, max_size=5))
def test_obb_hull_on_rows_is_the_scalar_hull_of_each(rows: list[list[float]]) -> None:
    columns = obb_hull(np.array(rows))
    for index, row in enumerate(rows):
        xs, ys = row[0::2], row[1::2]
        assert obb_hull(row) == (min(xs), min(ys), max(xs), max(ys))
        assert tuple(float(c[index]) for c in columns) == obb_hull(row)


@given(st.lists(st.lists(corner, min_size=3, max_size=12).map(lambda r: r[: len(r) // 2 * 2]), min_size=1, max_size=4))
def test_polygon_hull_is_the_extremes_over_every_ring(rings: list[list[float]]) -> None:
    rings = [ring for ring in rings if ring] or [[0.0, 0.0]]
    xs = [v for ring in rings for v in ring[0::2]]
    ys = [v for ring in rings for v in ring[1::2]]
    assert polygon_hull(rings) == (min(xs), min(ys), max(xs), max(ys))
    same_length = np.array([rings[0]] * 3)
    assert tuple(float(c[1]) for c in polygon_hull(same_length)) == polygon_hull([rings[0]])


@settings(max_examples=50)
@given(st.integers(1, 12), st.integers(1, 12), st.data())
def test_rle_string_runs_read_what_pycocotools_writes(height: int, width: int, data: st.DataObject) -> None:
    pixels = data.draw(st.lists(st.booleans(), min_size=height * width, max_size=height * width))
    mask = np.array(pixels, dtype=np.uint8).reshape(height, width)
    encoded = mask_utils.encode(np.asfortranarray(mask))
    runs = rle_string_runs(encoded["counts"].decode("ascii"))
    assert int(runs.sum()) == height * width
    flat = np.repeat(np.arange(len(runs)) % 2, runs).astype(np.uint8)
    assert np.array_equal(flat.reshape(width, height).T, mask)


@settings(max_examples=25, deadline=None)
@given(datasets(max_records=3, polygons=True, rle=True, obb=True, keypoints=True, scores=True, sizes=False))
def test_drawn_v2_datasets_validate_and_read_back_unchanged(spec: Any) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = write_dataset(Path(tmp) / "ds", spec.categories, spec.splits, keypoints=spec.keypoints)
        report = validate(path)
        assert report.valid and not report.errors, report.findings
        assert not {f.code for f in report.findings} & {"polygon_outside_image", "keypoint_outside_image"}
        source = open_dataset(path)
        assert {c.name: c.keypoints for c in source.manifest.categories if c.keypoints} == spec.keypoints
        for split, records in spec.splits.items():
            got = list(source.records(split))
            want = [{k: v for k, v in r.items() if v is not None} for r in records]
            assert got == json.loads(json.dumps(want))
