"""sources/jsondoc: typed JSON decoding with JSON-path errors, the lenient fallback, columns and joins."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec import UNSET, UnsetType

from annonorm.errors import ParseError
from annonorm.sources.jsondoc import (
    JsonProblem,
    TypedJson,
    column,
    describe_json,
    first_repeat,
    json_value_at,
    positions,
    present_fields,
    validation_problem,
)

FILE = Path("doc.json")


class Item(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, gc=False):
    id: int
    size: int | UnsetType = UNSET


class Doc(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    items: list[Item]
    others: list[Item] = []
    note: Any = UNSET


def _typed(**kwargs: Any) -> TypedJson[Doc]:
    return TypedJson(Doc, items={"items": Item, "others": Item}, what="TOY", **kwargs)


def test_a_well_formed_document_decodes_strictly_without_extras() -> None:
    decoded = _typed().decode(b'\xef\xbb\xbf{"items": [{"id": 1, "size": 2}], "note": "n"}', file=FILE)
    assert decoded.document.items == [Item(id=1, size=2)]
    assert decoded.extras is None and decoded.top_extras == {}


def test_unknown_keys_are_decoded_leniently_and_collected_per_item() -> None:
    raw = json.dumps({"items": [{"id": 1, "colour": "red"}, {"id": 2}], "note": 1, "extra": [1]}).encode()
    decoded = _typed().decode(raw, file=FILE)
    assert [item.id for item in decoded.document.items] == [1, 2]
    assert isinstance(decoded.document, Doc)  # the lenient variant is a subclass: readers see one type
    assert decoded.document.others == []  # defaults survive the lenient variant
    assert decoded.extras == {"items": [{"colour": "red"}, {}]}
    assert decoded.top_extras == {"note": 1, "extra": [1]}


@pytest.mark.parametrize(
    ("raw", "location", "fragment"),
    [
        (b'{"items": [{"id": 1}, {"id": "7"}]}', "items[1].id", 'expected int, got "7"'),
        (b'{"items": {"id": 1}}', "items", "expected array, got an object"),
        (b'{"items": [{"size": 1}]}', "items[0]", "missing required field id"),
        (b'{"items": [{"id": 1, "size": [1, 2, 3]}], "x": 1}', "items[0].size", "got an array of 3"),
    ],
)
def test_refused_values_name_the_json_path_and_what_was_found(raw: bytes, location: str, fragment: str) -> None:
    with pytest.raises(ParseError) as caught:
        _typed().decode(raw, file=FILE)
    assert caught.value.location == location
    assert fragment in caught.value.message
    assert caught.value.file == str(FILE)


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"", "not valid JSON"),
        (b'{"items": [', "not valid JSON"),
        (b'{"items": [{"id": 1}], "note": "caf\xe9"}', "not valid JSON"),
        (b'{"items": [], "note": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "not valid JSON for TOY: nested too"),
    ],
)
def test_broken_json_is_one_parse_error(raw: bytes, fragment: str) -> None:
    with pytest.raises(ParseError, match=fragment):
        _typed().decode(raw, file=FILE)


def test_refuse_and_reword_hooks_word_the_format_s_own_problems() -> None:
    seen: list[Any] = []

    def refuse(raw: bytes, document: Any) -> str | None:
        seen.append(document)
        return "a list, not a TOY document" if isinstance(document, list) else None

    def reword(problem: JsonProblem) -> str | None:
        return f"sizes are whole numbers ({problem.path})" if problem.path.endswith(".size") else None

    typed = _typed(refuse=refuse, reword=reword)
    with pytest.raises(ParseError, match="a list, not a TOY document"):
        typed.decode(b"[1, 2]", file=FILE)
    with pytest.raises(ParseError, match=r"sizes are whole numbers \(items\[0\]\.size\)"):
        typed.decode(b'{"items": [{"id": 1, "size": 1.5}]}', file=FILE)
    with pytest.raises(ParseError, match="expected int"):
        typed.decode(b'{"items": [{"id": 1.5}]}', file=FILE)
    assert seen[0] == [1, 2]
    with pytest.raises(ParseError):  # broken after the refused value: the hook sees UNSET, not an exception
        typed.decode(b'{"items": 5, ', file=FILE)
    assert seen[-1] is UNSET


def test_validation_problem_and_value_lookup() -> None:
    document = {"items": [{"id": 1}, {"id": "x" * 50}]}
    assert json_value_at(document, ".items[1].id") == "x" * 50
    assert json_value_at(document, ".items[5].id") is UNSET
    assert describe_json("x" * 50) == '"' + "x" * 36 + "..."
    assert describe_json([1, 2]) == "an array of 2" and describe_json({}) == "an object"
    try:
        msgspec.json.decode(json.dumps(document).encode(), type=Doc)
    except msgspec.ValidationError as exc:
        problem = validation_problem(document, exc)
    assert problem.path == "items[1].id"
    assert problem.message.startswith("expected int, got ") and problem.found == "x" * 50


_SCALARS = st.one_of(st.integers(-(2**70), 2**70), st.booleans(), st.floats(allow_nan=False), st.text(max_size=3))


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.lists(st.integers(-(2**70), 2**70)), st.lists(st.floats(allow_nan=False)), st.lists(_SCALARS)))
def test_a_column_gives_back_exactly_its_values_and_their_types(values: list[Any]) -> None:
    back = column(values).tolist()
    assert back == values
    assert [type(v) for v in back] == [type(v) for v in values]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(-50, 50), unique=True),
    st.lists(st.integers(-60, 60)),
    st.booleans(),
)
def test_positions_join_like_a_dict_lookup(ids: list[int], keys: list[int], as_strings: bool) -> None:
    key_values: list[Any] = [str(k) for k in keys] if as_strings else keys
    id_values: list[Any] = [str(i) for i in ids] if as_strings else ids
    where = {value: index for index, value in enumerate(id_values)}
    found = positions(column(key_values), column(id_values)).tolist()
    assert found == [where.get(key, -1) for key in key_values]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.integers(0, 8), st.sampled_from(["a", "b"]), st.just(UNSET))))
def test_first_repeat_is_the_first_value_seen_before(values: list[Any]) -> None:
    expected = None
    for index, value in enumerate(values):
        earlier = [i for i in range(index) if values[i] is not UNSET and values[i] == value and value is not UNSET]
        if earlier:
            expected = (index, earlier[0])
            break
    assert first_repeat(column(values)) == expected


def test_present_fields_leaves_out_unset_and_named_fields() -> None:
    assert present_fields(Item(id=3), frozenset()) == {"id": 3}
    assert present_fields(Item(id=3, size=4), frozenset({"id"})) == {"size": 4}
    assert np.asarray(column([])).shape == (0,)
