"""The delimited-table engine (sources/tabular, sources/tabular_columns): dialects, blocks, cell typing."""

from __future__ import annotations

import csv
import io
from itertools import groupby, pairwise
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from annonorm.errors import ParseError
from annonorm.sources.tabular import Irregular, Rows, Table, iter_rows, looks_like_table, sniff_delimiter, whole_groups
from annonorm.sources.tabular_columns import (
    count_problem,
    decimal_hint,
    finite_number,
    group_sides,
    number_block,
    read_flag,
    read_side,
    side_problem,
)


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_sniff_delimiter_finds_the_cell_separator(delimiter: str) -> None:
    sample = "".join(delimiter.join(row) + "\n" for row in [["a", "b", "c"], ["1", "2", "3"], ["4", "5", "6"]])
    assert sniff_delimiter(sample) == delimiter


def test_a_real_separator_in_the_first_line_beats_space() -> None:
    assert sniff_delimiter("1.jpg, dog\n2.jpg, cat\n") == ","
    assert looks_like_table("a,b") and not looks_like_table('{"a": 1}') and not looks_like_table("word")


def test_iter_rows_names_the_row_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(b"\xef\xbb\xbfa,b\n1,2\n\xff,3\n")
    with pytest.raises(ParseError, match="line 3 is not UTF-8") as error:
        list(iter_rows(path, ","))
    assert error.value.location == "row 3"


def test_rows_are_checked_against_the_table_width(tmp_path: Path) -> None:
    table = Table(tmp_path / "t.csv", ",", ["a", "b", "c"], 3)
    assert table.check_row(2, ["x", "y", "z", ""], "error") == ["x", "y", "z"]  # a trailing delimiter
    assert table.check_row(2, ["x"], "pad") == ["x", "", ""]
    assert table.check_row(2, ["", ""], "error") is None
    with pytest.raises(ParseError, match="or pass --short-rows pad"):
        table.check_row(5, ["x"], "error")
    assert table.where(4, 1) == "row 4, column 'b'"


@given(st.lists(st.sampled_from("abcd"), max_size=30), st.lists(st.integers(1, 6), min_size=1, max_size=10))
def test_whole_groups_cuts_pieces_into_blocks_of_whole_groups(letters: list[str], sizes: list[int]) -> None:
    keys = [key for key, _ in groupby(letters)]  # adjacent groups, keys may repeat later
    runs = [key for key in keys for _ in range(2)]
    pieces, position = [], 0
    while position < len(runs):
        size = sizes[len(pieces) % len(sizes)]
        part = runs[position : position + size]
        pieces.append(Rows(list(range(position, position + len(part))), [list(part)], list(part)))
        position += len(part)
    blocks = list(whole_groups(pieces))
    assert [key for block in blocks for key in block.keys] == runs
    for before, after in pairwise(blocks):
        assert before.keys[-1] != after.keys[0]  # no group is cut between two blocks


def test_decimal_commas_and_their_hints() -> None:
    assert finite_number("0,35", ",") == 0.35
    with pytest.raises(ValueError, match="decimal mark is ','"):
        finite_number("1.5", ",")
    assert decimal_hint("0,5", ".") == " (use --decimal , for decimal commas)"
    assert decimal_hint("x,y", ".") == ""
    assert "expected a decimal comma" in decimal_hint("0.5", ",")


@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=20))
def test_number_block_reads_what_float_reads(values: list[float]) -> None:
    column = [repr(v) for v in values]
    block = number_block([column, column], [1, 0], float)
    assert block.shape == (2, len(values)) and block[0].tolist() == [float(c) for c in column]


def test_number_block_and_group_sides_leave_odd_cells_to_the_rows() -> None:
    with pytest.raises(Irregular):
        number_block([["1", ""]], [0], float)
    with pytest.raises(Irregular):
        number_block([["1", "inf"]], [0], float)
    assert group_sides(["640", "640", "20"], ["480", "480", "8"], [0, 2], float) == [(640, 480), (20, 8)]
    with pytest.raises(Irregular):
        group_sides(["640", "641"], ["480", "480"], [0], float)  # the size changes inside a group
    with pytest.raises(Irregular):
        group_sides(["0"], ["480"], [0], float)


def test_cell_readers_word_their_problems(tmp_path: Path) -> None:
    table = Table(tmp_path / "t.csv", ";", ["w", "h", "flag"], 3, decimal=",")
    assert read_side(table, ["640", "", "1"], 2, 0, "width") == 640
    assert read_side(table, ["640", "", "1"], 2, 1, "height") is None
    with pytest.raises(ParseError, match="positive whole number of pixels, found '640,5'") as error:
        read_side(table, ["640,5", "", ""], 7, 0, "width")
    assert error.value.location == "row 7, column 'w'"
    assert side_problem("10", "width", ".") is None and count_problem(2.0, "2") is None
    assert count_problem(-1.0, "-1") == "expected a count (a whole number >= 0), found '-1'"
    assert read_flag(table, ["", "", "0,5"], 2, 2) and not read_flag(table, ["", "", "no"], 2, 2)
    with pytest.raises(ParseError, match="one-hot"):
        read_flag(table, ["", "", "maybe"], 2, 2)


def test_iter_rows_reads_what_the_csv_module_reads(tmp_path: Path) -> None:
    text = 'a,b\n"x, y", 2\n\n3,"multi\nline"\n'
    path = tmp_path / "t.csv"
    path.write_text(text)
    expected = [[c.strip() for c in row] for row in csv.reader(io.StringIO(text), skipinitialspace=True)]
    assert [cells for _, cells in iter_rows(path, ",")] == expected
