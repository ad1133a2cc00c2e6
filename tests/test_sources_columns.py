"""sources/columns: rows joined to their groups by id, in group order, chunked; attributes and boxes per row."""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec import UNSET, UnsetType

from annonorm.sources.columns import AttributeColumns, Box, GroupedBoxes, Grouping, column, field_columns


class Row(msgspec.Struct, kw_only=True):
    group: int
    area: float | UnsetType = UNSET
    flag: int | UnsetType = UNSET


def _naive_groups(keys: list[Any], ids: list[Any]) -> tuple[list[list[int]], list[int]]:
    """Rows per group in file order, and the rows of no group: a dict walk, independent of numpy."""
    by_id: dict[Any, list[int]] = {group_id: [] for group_id in ids}
    orphans = []
    for row, key in enumerate(keys):
        by_id.get(key, orphans).append(row)
    return [by_id[group_id] for group_id in ids], orphans


group_ids = st.lists(st.integers(-5, 40), unique=True, max_size=12)


@settings(max_examples=200, deadline=None)
@given(group_ids, st.lists(st.integers(-5, 45), max_size=60), st.integers(1, 5), st.booleans())
def test_grouping_puts_rows_in_group_order_keeping_file_order(
    ids: list[int], keys: list[int], size: int, as_text: bool
) -> None:
    """Integer ids (sorted search) and string ids (dict) group alike, as a dict walk does."""
    if as_text:
        ids, keys = [f"i{v}" for v in ids], [f"i{v}" for v in keys]  # type: ignore[misc]
    expected, orphans = _naive_groups(keys, ids)
    grouping = Grouping(column(list(keys)), column(list(ids)))
    assert grouping.orphans == orphans
    assert grouping.order.tolist() == [row for rows in expected for row in rows]
    seen: list[int] = []
    for chunk in grouping.chunks(0, len(ids), size):
        assert chunk.stop - chunk.start <= size
        for group, low, high in chunk.groups():
            seen.append(group)
            assert grouping.order[low:high].tolist() == expected[group]
            assert set(grouping.owner[low:high].tolist()) <= {group}
    assert seen == list(range(len(ids)))
    assert grouping.occupied() == sum(1 for rows in expected if rows)
    flags = np.array([row % 3 == 0 for row in grouping.order.tolist()], dtype=bool)
    assert grouping.flagged(flags).tolist() == [any(row % 3 == 0 for row in rows) for rows in expected]


def test_a_part_of_the_groups_is_chunked_from_its_own_start() -> None:
    grouping = Grouping(column([2, 1, 2, 3]), column([1, 2, 3]))
    chunks = list(grouping.chunks(1, 3, 1))
    assert [(c.start, c.stop, c.first, c.last) for c in chunks] == [(1, 2, 1, 3), (2, 3, 3, 4)]
    assert grouping.take_list(["a", "b", "c", "d"]) == ["b", "a", "c", "d"]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 3),
            st.none() | st.floats(0, 100, allow_nan=False),
            st.none() | st.sampled_from([0, 1, 2]),
        ),
        max_size=30,
    ),
    st.booleans(),
)
def test_attribute_columns_give_each_row_only_the_fields_it_has(
    rows: list[tuple[int, float | None, int | None]], with_extras: bool
) -> None:
    items = [
        Row(group=g, **{k: v for k, v in (("area", area), ("flag", flag)) if v is not None}) for g, area, flag in rows
    ]
    extras = [{"extra": index} for index in range(len(items))] if with_extras else None
    grouping = Grouping(column([item.group for item in items]), column([0, 1, 2, 3]))
    attributes = AttributeColumns(field_columns(items, ("area", "flag"), flags=frozenset({"flag"})), grouping, extras)
    expected = []
    for row in grouping.order.tolist():
        item = items[row]
        entry: dict[str, Any] = {}
        if item.area is not UNSET:
            entry["area"] = item.area
        if item.flag is not UNSET:  # 0/1 in every row that has one: a boolean, else kept
            all_flags = [i.flag for i in items if i.flag is not UNSET]
            entry["flag"] = bool(item.flag) if all(f in (0, 1) for f in all_flags) else item.flag
        if with_extras:
            entry["extra"] = row
        expected.append(entry)
    assert attributes.dicts(0, len(items)) == expected
    assert bool(attributes) == (with_extras or any(expected))  # extras, even empty, are looked at


def test_grouped_boxes_count_boxed_rows_and_label_unboxed_ones() -> None:
    """Unboxed rows (image-level labels) add their class to labels only; the others are boxes, counted."""
    keys = [0, 1, 0, 1, 1]
    grouping = Grouping(column(keys), column([0, 1, 2]))
    classes = grouping.take(np.array([0, 1, 1, 0, 1]))
    corners = grouping.take(np.array([[0.0, 0.0, 1.0, 1.0]] * 5))
    boxed = grouping.take(np.array([True, False, True, True, True]))
    none = AttributeColumns({}, grouping, None)
    boxes = GroupedBoxes(grouping, classes, ["cat", "dog"], corners, boxed, none)
    (chunk,) = grouping.chunks(0, 3)
    built = boxes.build(chunk)
    groups = {group: built.group(group, low, high) for group, low, high in chunk.groups()}
    assert groups[0] == (
        [Box("cat", 0.0, 0.0, 1.0, 1.0), Box("dog", 0.0, 0.0, 1.0, 1.0)],
        ["cat", "dog"],
        {"cat": 1, "dog": 1},
    )
    own, labels, counts = groups[1]
    assert labels == ["dog", "cat"] and counts == {"cat": 1, "dog": 1} and [b.name for b in own] == ["cat", "dog"]
    assert groups[2] == ([], [], {})
    assert msgspec.json.encode(own[0]) == b'{"name":"cat","x1":0.0,"y1":0.0,"x2":1.0,"y2":1.0}'
