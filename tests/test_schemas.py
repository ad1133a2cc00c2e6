"""The format's models: shorthand forms, canonical output, and every hard rule with its message."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from annonorm.io import encode_record
from annonorm.schemas import Manifest, Record
from annonorm.testing import category_names, records

CATEGORIES = frozenset({"car", "bike", "person"})


def validate(data: dict[str, Any], categories: frozenset[str] | None = CATEGORIES) -> Record:
    context = {"categories": categories} if categories is not None else None
    return Record.model_validate_json(json.dumps(data), context=context)


def messages(data: dict[str, Any], categories: frozenset[str] | None = CATEGORIES) -> str:
    with pytest.raises(ValidationError) as caught:
        validate(data, categories)
    return "\n".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in caught.value.errors())


def box(name: str = "car", x1: float = 1, y1: float = 2, x2: float = 10, y2: float = 20, **extra: Any) -> dict:
    return {"name": name, "x1": x1, "y1": y1, "x2": x2, "y2": y2, **extra}


BASE = {"image": "a.jpg", "width": 100, "height": 50}


def test_seed_shorthand_is_accepted_and_canonical_form_emitted() -> None:
    record = validate({**BASE, "labels": "car", "counts": [{"car": 2}], "boxes": [box()]})
    assert record.to_json_dict() == {
        **BASE,
        "labels": ["car"],
        "counts": {"car": 2},
        "boxes": [{"name": "car", "x1": 1.0, "y1": 2.0, "x2": 10.0, "y2": 20.0}],
    }


def test_a_counted_class_must_be_labelled() -> None:
    assert "'bike' has a count of 3 but is missing from labels" in messages(
        {**BASE, "labels": "car", "counts": [{"car": 1}, {"bike": 3}]}
    )


def test_labels_string_shorthand_becomes_list() -> None:
    assert validate({**BASE, "labels": "person"}).to_json_dict()["labels"] == ["person"]


def test_counts_list_shorthand_merges() -> None:
    record = validate({**BASE, "labels": ["car", "bike"], "counts": [{"car": 2}, {"bike": 3}]})
    assert record.counts == {"car": 2, "bike": 3}


def test_labels_and_counts_derived_from_boxes_when_absent() -> None:
    record = validate({**BASE, "boxes": [box("bike"), box("car"), box("bike")]})
    assert record.labels == ["bike", "car"]
    assert record.counts == {"bike": 2, "car": 1}


def test_coordinates_rounded_to_six_decimals() -> None:
    record = validate({**BASE, "boxes": [box(x1=0.1 + 0.2, x2=379.09000000000003)]})
    assert record.boxes[0].x1 == 0.3
    assert record.boxes[0].x2 == 379.09
    assert b"379.09000000000003" not in encode_record(record.to_json_dict())


@pytest.mark.parametrize(
    ("mutation", "fragment"),
    [
        ({"boxes": [box(x1=10, x2=5)]}, "x2 (5.0) is smaller than x1 (10.0)"),
        ({"boxes": [box(y1=30, y2=5)]}, "y2 (5.0) is smaller than y1 (30.0)"),
        ({"boxes": [box(x1=-1)]}, "greater than or equal to 0"),
        ({"boxes": [box(y2=math.inf)]}, "finite"),
        ({"width": 0}, "greater than 0"),
        ({"height": -5}, "greater than 0"),
        ({"width": None}, "width and height must be given together"),
        ({"width": 10.5}, "valid integer"),
        ({"boxes": [box("dog")]}, "'dog' is not a category of the manifest"),
        ({"labels": ["dog"]}, "label 'dog' is not a category"),
        ({"counts": {"dog": 1}}, "count name 'dog' is not a category"),
        ({"counts": {"car": 1}, "boxes": [box(), box()]}, "counts['car'] is 1 but there are 2 boxes"),
        ({"labels": ["bike"], "boxes": [box("car")]}, "'car' has boxes but is missing from labels"),
        ({"labels": ["car", "car"]}, "more than once"),
        ({"counts": [{"car": 1, "bike": 2}]}, "exactly one class name key"),
        ({"counts": [{"car": 1}, {"car": 2}]}, "counted twice"),
        ({"colour": "red"}, "Extra inputs are not permitted"),
        ({"boxes": [box(colour="red")]}, "Extra inputs are not permitted"),
        ({"mask": "/etc/passwd"}, "must be relative, not absolute"),
        ({"mask": "../../secret.png"}, "must not climb out"),
        ({"image": "C:\\data\\a.jpg"}, "must be relative"),
        ({"image": "imgs/../../a.jpg"}, "must not climb out"),
        ({"image": ""}, "non-empty"),
    ],
)
def test_each_rule_rejects_with_a_readable_message(mutation: dict[str, Any], fragment: str) -> None:
    data = {**BASE, **mutation}
    if data.get("width") is None and "width" in mutation:
        data.pop("width")
    assert fragment in messages(data)


def test_names_are_free_without_a_manifest() -> None:
    assert validate({**BASE, "boxes": [box("anything")]}, categories=None).labels == ["anything"]


def test_manifest_rules() -> None:
    good = {"name": "d", "categories": [{"id": 0, "name": "a"}, {"id": 1, "name": "b"}], "splits": {"t": "t.jsonl"}}
    assert Manifest.model_validate(good).category_names == ["a", "b"]
    with pytest.raises(ValidationError, match=r"expected ids 0\.\.1 in order"):
        Manifest.model_validate({**good, "categories": [{"id": 1, "name": "a"}, {"id": 0, "name": "b"}]})
    with pytest.raises(ValidationError, match="repeats the name 'a'"):
        Manifest.model_validate({**good, "categories": [{"id": 0, "name": "a"}, {"id": 1, "name": "a"}]})
    with pytest.raises(ValidationError, match="must not climb out"):
        Manifest.model_validate({**good, "splits": {"t": "../t.jsonl"}})
    with pytest.raises(ValidationError, match="Extra inputs"):
        Manifest.model_validate({**good, "categorys": []})
    with pytest.raises(ValidationError, match="'annonorm'"):
        Manifest.model_validate({**good, "format": "coco"})


@given(category_names().flatmap(lambda names: st.tuples(st.just(names), records(names, sizes=False))))
def test_any_drawn_record_survives_write_then_read(drawn: tuple[list[str], dict[str, Any]]) -> None:
    names, record = drawn
    line = encode_record(record)
    parsed = Record.model_validate_json(line, context={"categories": frozenset(names)})
    assert parsed.to_json_dict() == json.loads(line)
    assert encode_record(parsed.to_json_dict()) == line
    assert json.loads(line)["boxes"] == [{k: v for k, v in b.items() if v is not None} for b in record["boxes"]]


def _break_corners(record: dict[str, Any]) -> str:
    box = record["boxes"][0]
    box["x1"], box["x2"] = box["x2"] + 1.0, box["x1"]
    return "is smaller than x1"


def _break_count(record: dict[str, Any]) -> str:
    name = record["boxes"][0]["name"]
    record["counts"][name] = sum(b["name"] == name for b in record["boxes"]) - 1
    return f"counts['{name}'] is"


def _break_name(record: dict[str, Any]) -> str:
    record["boxes"][0]["name"] = "not-a-category!"
    return "'not-a-category!' is not a category of the manifest"


def _break_size(record: dict[str, Any]) -> str:
    record["width"] = 0
    return "greater than 0"


def _break_key(record: dict[str, Any]) -> str:
    record["colour"] = "red"
    return "Extra inputs are not permitted"


def _break_mask(record: dict[str, Any]) -> str:
    record["mask"] = "../outside.png"
    return "must not climb out"


def _break_negative(record: dict[str, Any]) -> str:
    record["boxes"][0]["y1"] = -1.0
    return "greater than or equal to 0"


RULE_BREAKERS = [_break_corners, _break_count, _break_name, _break_size, _break_key, _break_mask, _break_negative]


@given(
    category_names().flatmap(lambda names: st.tuples(st.just(names), records(names, max_boxes=4))),
    st.sampled_from(RULE_BREAKERS),
)
def test_a_record_broken_by_one_rule_fails_with_that_rules_message(
    drawn: tuple[list[str], dict[str, Any]], breaker: Any
) -> None:
    names, record = drawn
    if not record["boxes"]:
        record = {**record, "boxes": [{"name": names[0], "x1": 1.0, "y1": 1.0, "x2": 2.0, "y2": 2.0}]}
        record["counts"] = {**record["counts"], names[0]: record["counts"].get(names[0], 0) + 1}
        record["labels"] = list(dict.fromkeys([*record["labels"], names[0]]))
    assert validate(record, frozenset(names))  # valid before the break
    fragment = breaker(record)
    assert fragment in messages(record, frozenset(names))
