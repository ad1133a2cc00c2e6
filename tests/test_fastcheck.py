"""The bulk fast check and the Pydantic models accept exactly the same records."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from annonorm.fastcheck import RecordChecker
from annonorm.schemas import Record
from annonorm.testing import category_names, records

ODD_NAMES = ["", "dog", " car", "../x", "/abs", "a/../../b", "C:\\x"]
KEYS = ["image", "width", "height", "labels", "counts", "boxes", "mask", "id", "attributes", "extra"]
BOX_KEYS = ["name", "x1", "y1", "x2", "y2", "attributes", "extra"]


def odd_values(names: list[str]) -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-3, 300),
        st.floats(-3, 300, allow_nan=False, allow_infinity=False),
        st.sampled_from(names + ODD_NAMES),
    )
    return st.one_of(
        scalars,
        st.lists(scalars, max_size=3),
        st.dictionaries(st.sampled_from(names + ODD_NAMES), scalars, max_size=2),
        st.lists(st.dictionaries(st.sampled_from([*names, "dog"]), st.integers(-1, 4), max_size=2), max_size=2),
    )


@st.composite
def perturbed_records(draw: st.DrawFn) -> tuple[list[str], dict[str, Any]]:
    """A valid record, then up to three random edits: wrong types, odd names, unknown keys, swapped corners."""
    names = draw(category_names(max_size=3))
    record = draw(records(names, sizes=False, max_boxes=3))
    for _ in range(draw(st.integers(0, 3))):
        edit = draw(st.sampled_from(["set", "delete", "box_set", "box_swap", "shorthand"]))
        if edit == "set":
            record[draw(st.sampled_from(KEYS))] = draw(odd_values(names))
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
    return names, record


def models_accept(line: bytes, categories: frozenset[str] | None) -> bool:
    try:
        Record.model_validate_json(line, context={"categories": categories} if categories is not None else None)
    except ValidationError:
        return False
    return True


@given(perturbed_records(), st.booleans())
def test_fast_check_and_models_agree(drawn: tuple[list[str], dict[str, Any]], with_manifest: bool) -> None:
    names, record = drawn
    categories = frozenset(names) if with_manifest else None
    line = json.dumps(record).encode()
    fast = RecordChecker(categories).check(line) is not None
    assert fast == models_accept(line, categories), line


@given(category_names().flatmap(lambda n: st.tuples(st.just(n), records(n, sizes=False))))
def test_every_drawn_record_passes_the_fast_check(drawn: tuple[list[str], dict[str, Any]]) -> None:
    names, record = drawn
    assert RecordChecker(frozenset(names)).check(json.dumps(record).encode()) is not None


def test_checker_with_empty_category_table_refuses_every_name() -> None:
    checker = RecordChecker([])
    assert checker.check(b'{"image": "a.jpg"}') is not None
    assert checker.check(b'{"image": "a.jpg", "labels": ["x"]}') is None
