"""sources.classlists: the Datumaro/CVAT ``labelmap.txt`` read and written (the other class lists are tested with
the converters that read them)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from annonorm.errors import InvalidDataError, ParseError
from annonorm.schemas.manifest import Category
from annonorm.sources.classlists import (
    BACKGROUND,
    IGNORED,
    labelmap_line_to_entry,
    labelmap_palette,
    labelmap_text,
    read_labelmap,
)
from annonorm.sources.segmentation import voc_palette

#: Labelmap names hold no separator (':', ','), no '#' and nothing ``str.splitlines`` breaks at; they have no
#: blank ends and are not the reserved names.
_NOT_IN_NAMES = ":,#\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
NAMES = st.text(st.characters(codec="utf-8", exclude_characters=_NOT_IN_NAMES), min_size=1, max_size=8)
LABELMAP_NAMES = st.lists(
    NAMES.map(str.strip).filter(lambda n: bool(n) and n not in (BACKGROUND, IGNORED)), max_size=6, unique=True
)
COLOR = st.lists(st.integers(0, 255), min_size=3, max_size=3)


def test_labelmap_lines() -> None:
    assert labelmap_line_to_entry(line="# label:color_rgb:parts:actions", file="l", number=1) is None
    assert labelmap_line_to_entry(line="person:192,128,128:head,hand:jumping", file="l", number=2) == {
        "name": "person",
        "color": [192, 128, 128],
        "parts": ["head", "hand"],
        "actions": ["jumping"],
    }
    assert labelmap_line_to_entry(line="car", file="l", number=3) == {"name": "car"}
    with pytest.raises(ParseError) as caught:
        labelmap_line_to_entry(line="car:300,0,0::", file="l", number=4)
    assert caught.value.location == "line 4"
    with pytest.raises(ParseError, match="found 5 fields"):
        labelmap_line_to_entry(line="a:1,2,3:::", file="l", number=5)
    with pytest.raises(ParseError, match="empty class name"):
        labelmap_line_to_entry(line=":1,2,3::", file="l", number=6)


def test_read_labelmap_keeps_order_skips_comments_and_names_a_repeated_class(tmp_path: Path) -> None:
    path = tmp_path / "labelmap.txt"
    path.write_bytes("\ufeff# label:color_rgb:parts:actions\nbackground:0,0,0::\n\ncat:1,2,3::\ndog\n".encode())
    assert read_labelmap(path) == [
        {"name": "background", "color": [0, 0, 0]},
        {"name": "cat", "color": [1, 2, 3]},
        {"name": "dog"},
    ]
    path.write_text("cat\ndog\ncat:1,2,3::\n", encoding="utf-8")
    with pytest.raises(InvalidDataError, match="class 'cat' is already on line 1") as caught:
        read_labelmap(path)
    assert (caught.value.file, caught.value.location) == (str(path), "line 3")
    path.write_bytes(b"caf\xe9\n")
    with pytest.raises(ParseError, match="the labelmap is not UTF-8 text"):
        read_labelmap(path)


def test_labelmap_text_puts_background_first_and_skips_reserved_names() -> None:
    categories = [
        Category(id=0, name="cat", attributes={"parts": ["tail"], "actions": ["jumping", "running"]}),
        Category(id=1, name=IGNORED),
        Category(id=2, name="dog"),
    ]
    palette = voc_palette()
    assert labelmap_text(categories, palette) == (
        "# label:color_rgb:parts:actions\nbackground:0,0,0::\ncat:128,0,0:tail:jumping,running\ndog:128,128,0::\n"
    )


def test_labelmap_palette_takes_each_category_colour_at_its_index() -> None:
    categories = [
        Category(id=0, name="a", attributes={"color": [1, 2, 3]}),
        Category(id=1, name="b", attributes={"color": [1, 2]}),  # not a colour: the palette's stays
        Category(id=2, name="c"),
    ]
    base = voc_palette()
    colors = labelmap_palette(categories, base)
    assert colors[1] == (1, 2, 3) and colors[2] == base[2] and colors[3] == base[3]
    assert colors[4:] == base[4:] and base[1] == (128, 0, 0)  # the base palette is not changed


@given(LABELMAP_NAMES, st.data())
def test_labelmap_text_reads_back_as_the_categories(names: list[str], data: st.DataObject) -> None:
    colors = [data.draw(COLOR) for _ in names]
    categories = [
        Category(id=i, name=n, attributes={"color": c}) for i, (n, c) in enumerate(zip(names, colors, strict=True))
    ]
    text = labelmap_text(categories, labelmap_palette(categories, voc_palette()))
    entries = [labelmap_line_to_entry(line=line, file="l", number=n) for n, line in enumerate(text.splitlines(), 1)]
    read = [entry for entry in entries if entry is not None]
    assert read == [{"name": BACKGROUND, "color": [0, 0, 0]}] + [
        {"name": n, "color": c} for n, c in zip(names, colors, strict=True)
    ]
