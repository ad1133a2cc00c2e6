"""The record rules exist once (annonorm.records): the models, the fast check, the loader index and the
reader of normalized datasets agree on every drawn record, shorthand forms and edge values included."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from annonorm.fastcheck import RecordChecker
from annonorm.geometry import round_coord
from annonorm.index import build_index
from annonorm.records import (
    BOX_KEYS,
    RECORD_KEYS,
    CountListError,
    box_counts,
    canonical_box,
    canonical_record,
    consistency_problem,
    make_record,
    merge_count_list,
    polygon_outside,
    present_labels,
)
from annonorm.schemas import Record
from annonorm.schemas.types import INT32_MAX
from annonorm.sink import encode_record
from annonorm.testing import category_names, records


@st.composite
def seed_forms(draw: st.DrawFn, record: dict[str, Any]) -> dict[str, Any]:
    """``record`` as the seed format may spell it: labels/counts left out, a bare string, a count list."""
    data = dict(record)
    labels, counts, boxes = data["labels"], data["counts"], data["boxes"]
    if not boxes and draw(st.booleans()):
        del data["boxes"]
    if counts == box_counts(box["name"] for box in boxes) and draw(st.booleans()):
        del data["counts"]
    elif counts and draw(st.booleans()):
        data["counts"] = [{name: value} for name, value in counts.items()]
    if labels == present_labels((box["name"] for box in boxes), counts) and draw(st.booleans()):
        del data["labels"]
    elif len(labels) == 1 and draw(st.booleans()):
        data["labels"] = labels[0]
    return data


@st.composite
def edge_records(draw: st.DrawFn, names: list[str]) -> dict[str, Any]:
    """Records at the edges: sides at int32's end, boxes on the image border or empty, zero counts."""
    width, height = draw(st.sampled_from([(1, 1), (INT32_MAX, 1), (640, 480), (INT32_MAX, INT32_MAX)]))
    edge = st.sampled_from([0.0, 0.5, 1e-6, 2.5e-6, float(width)])
    boxes = []
    for _ in range(draw(st.integers(0, 3))):
        x1, x2 = sorted(min(draw(edge), float(width)) for _ in range(2))
        y1, y2 = sorted(min(draw(edge), float(height)) for _ in range(2))
        boxes.append({"name": draw(st.sampled_from(names)), "x1": x1, "y1": y1, "x2": x2, "y2": y2})
    counts = draw(st.dictionaries(st.sampled_from(names), st.integers(0, 2**62), max_size=2))
    return make_record(image="edge.png", width=width, height=height, boxes=boxes, counts=counts)


@st.composite
def drawn(draw: st.DrawFn) -> tuple[list[str], dict[str, Any], dict[str, Any]]:
    """(categories, the canonical record, the record as written: a seed form of it)."""
    names = draw(category_names())
    record = draw(st.one_of(records(names, sizes=False), edge_records(names)))
    canonical = json.loads(encode_record(record))
    return names, canonical, draw(seed_forms(canonical))


def _loaded(tmp: Path, names: list[str], line: bytes) -> dict[str, Any]:
    """The record as the loader's index holds it: labels, counts and boxes (float32) by name."""
    split = tmp / "split.jsonl"
    split.write_bytes(line)
    arrays, _ = build_index(split, names)
    labels = [names[k] for k in arrays["label_ids"].tolist()]
    counts = dict(zip((names[k] for k in arrays["count_ids"].tolist()), arrays["count_values"].tolist(), strict=True))
    boxes = [(names[k], *c) for k, c in zip(arrays["box_labels"].tolist(), arrays["boxes"].tolist(), strict=True)]
    return {"labels": labels, "counts": counts, "boxes": boxes}


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(drawn())
def test_models_fast_check_index_and_reader_agree(tmp_path: Path, case: tuple[list, dict, dict]) -> None:
    names, canonical, written = case
    line = json.dumps(written).encode() + b"\n"

    model = Record.model_validate_json(line, context={"categories": frozenset(names)})
    assert model.to_json_dict() == {k: v for k, v in canonical.items() if v is not None}
    assert RecordChecker(names).check(line) is not None
    read = canonical_record(json.loads(line))
    assert (read["labels"], read.get("counts", {}), read["boxes"]) == (model.labels, model.counts, canonical["boxes"])

    loaded = _loaded(tmp_path, names, line)
    assert loaded["labels"] == model.labels
    assert loaded["counts"] == model.counts
    expected = [(box.name, *np.float32([box.x1, box.y1, box.x2, box.y2]).tolist()) for box in model.boxes]
    assert loaded["boxes"] == expected


@st.composite
def broken(draw: st.DrawFn) -> tuple[list[str], bytes]:
    """A seed-form record with one labels/counts rule broken (or not), for accept/refuse agreement."""
    names, canonical, written = draw(drawn())
    data = dict(written)
    change = draw(st.sampled_from(["none", "drop_label", "lower_count", "duplicate", "count_list", "extra_label"]))
    labels = data.get("labels")
    if change == "drop_label" and isinstance(labels, list) and labels:
        data["labels"] = labels[1:]
    elif change == "lower_count" and canonical["boxes"]:
        counts = dict(canonical["counts"])
        counts[canonical["boxes"][0]["name"]] = 0
        data["counts"] = counts
    elif change == "duplicate" and isinstance(labels, list) and labels:
        data["labels"] = [*labels, labels[0]]
    elif change == "count_list" and canonical["counts"]:
        name = next(iter(canonical["counts"]))
        data["counts"] = [{name: 1}, {name: 1}] if draw(st.booleans()) else [dict(canonical["counts"], **{"\x01": 1})]
    elif change == "extra_label":
        data["labels"] = [*canonical["labels"], *(n for n in names if n not in canonical["labels"])][:6]
    return names, json.dumps(data).encode() + b"\n"


@settings(max_examples=300)
@given(broken())
def test_models_and_fast_check_accept_the_same_seed_forms(case: tuple[list[str], bytes]) -> None:
    names, line = case
    try:
        Record.model_validate_json(line, context={"categories": frozenset(names)})
    except ValidationError:
        accepted = False
    else:
        accepted = True
    assert (RecordChecker(names).check(line) is not None) is accepted


def test_count_list_errors_are_worded_once() -> None:
    assert merge_count_list([{"a": 1}, {"b": 2}]) == {"a": 1, "b": 2}
    assert merge_count_list({"a": 1}) == {"a": 1}
    with pytest.raises(CountListError) as twice:
        merge_count_list([{"a": 1}, {"a": 2}])
    assert (twice.value.position, str(twice.value)) == (1, "counts[1]: class 'a' is counted twice")
    with pytest.raises(CountListError) as wide:
        merge_count_list([{"a": 1, "b": 2}])
    assert wide.value.reason == "expected an object with exactly one class name key"


def test_derivations_and_rules() -> None:
    assert box_counts(["b", "a", "b"]) == {"b": 2, "a": 1}
    assert list(box_counts(["b", "a", "b"])) == ["b", "a"]
    assert present_labels(["b", "a"], {"c": 1, "d": 0, "a": 3}) == ["b", "a", "c"]
    assert present_labels([2, 0, 2], {5: 1}) == [2, 0, 5]  # the index derives over category ids
    assert consistency_problem(["a"], {"a": 1}, {"a": 1}) is None
    assert "missing from labels" in (consistency_problem([], {}, {"a": 1}) or "")
    assert "expected a count >=" in (consistency_problem(["a"], {"a": 1}, {"a": 2}) or "")
    assert "has a count of 2" in (consistency_problem([], {"a": 2}, {}) or "")


def test_make_record_key_order_and_labels() -> None:
    record = make_record(
        image="x.jpg",
        width=2,
        height=2,
        boxes=[{"name": "b", "x1": 0, "y1": 0, "x2": 1, "y2": 1}],
        labels=["z"],
        counts={"c": 1, "b": 0},
    )
    assert record["labels"] == ["z", "b", "c"]
    assert record["counts"] == {"c": 1, "b": 1}
    line = json.loads(encode_record({**record, "id": 3}))
    assert list(line) == [key for key in RECORD_KEYS if key in line]
    assert math.isclose(line["boxes"][0]["x2"], 1.0) and isinstance(line["boxes"][0]["x2"], float)


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=4, max_size=4))
def test_canonical_box_rounds_as_round_coord(corners: list[float]) -> None:
    box = canonical_box({"name": "a", **dict(zip(("x1", "y1", "x2", "y2"), corners, strict=True))})
    assert [box[k] for k in ("x1", "y1", "x2", "y2")] == [round_coord(v) for v in corners]
    assert list(box) == [key for key in BOX_KEYS if key in box]


_RING_VALUE = st.floats(-5, 60, allow_nan=False) | st.integers(-2, 60).map(float)


@given(
    st.lists(
        st.lists(_RING_VALUE, min_size=2, max_size=12).map(lambda r: r[: len(r) // 2 * 2]), min_size=1, max_size=3
    ),
    st.integers(1, 50),
    st.integers(1, 50),
)
def test_polygon_outside_is_a_point_beyond_the_image_edges(polygon: list[list[float]], width: int, height: int) -> None:
    points = [(ring[i], ring[i + 1]) for ring in polygon for i in range(0, len(ring), 2)]
    beyond = any(not (0 <= x <= width and 0 <= y <= height) for x, y in points)
    assert polygon_outside(polygon, width, height) is beyond
