"""sources.xml: defused parsing of a whole file or a stream, one refusal wording, sniffing, schema-less values."""

from __future__ import annotations

import os
import threading
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from annonorm.errors import InvalidDataError, ParseError
from annonorm.sources.xml import (
    append_value,
    child_number,
    element_to_value,
    is_xml_name,
    iter_elements,
    parse_xml,
    root_tag,
    text_to_value,
    value_text,
    xml_bytes,
)

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE annotations [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
]>
<annotations><image>&lol2;</image></annotations>
"""
XXE = """<?xml version="1.0"?>
<!DOCTYPE annotations [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<annotations><image>&xxe;</image></annotations>
"""


def write(tmp_path: Path, text: str, name: str = "a.xml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "words"),
    [(BILLION_LAUGHS, "declares entity 'lol'"), (XXE, "external entity 'file:///etc/passwd' 'xxe'")],
)
def test_entities_are_refused_by_both_readers_in_the_same_words(tmp_path: Path, text: str, words: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ParseError) as whole:
        parse_xml(path, purpose="CVAT annotations")
    with pytest.raises(ParseError) as streamed:
        list(iter_elements(path, {"image"}, purpose="CVAT annotations"))
    assert whole.value.message.startswith("refused: ") and words in whole.value.message
    assert "CVAT annotations need neither" in whole.value.message
    assert (
        (whole.value.message, whole.value.file)
        == (streamed.value.message, streamed.value.file)
        == (
            whole.value.message,
            str(path),
        )
    )


def test_a_doctype_without_entities_is_read(tmp_path: Path) -> None:
    path = write(tmp_path, '<?xml version="1.0"?>\n<!DOCTYPE annotation>\n<annotation><a>1</a></annotation>\n')
    assert parse_xml(path).findtext("a") == "1"
    assert root_tag(path) == "annotation"


def test_not_well_formed_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "<annotations>\n<image/>\n<image>\n</annotations>\n")
    with pytest.raises(ParseError, match="not well-formed") as whole:
        parse_xml(path)
    assert whole.value.location == "line 4, column 2"
    seen = []
    with pytest.raises(ParseError) as streamed:
        for element in iter_elements(path, {"image"}):
            seen.append(element.tag)
    assert seen == ["image"]  # the elements before the fault come first, as a stream meets them
    assert streamed.value.location == whole.value.location


def test_an_empty_file_is_not_well_formed(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match="not well-formed"):
        parse_xml(write(tmp_path, ""))


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "a.xml"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []

    def attempt() -> None:
        for read in (lambda: parse_xml(fifo), lambda: list(iter_elements(fifo, {"x"}))):
            try:
                read()
            except ParseError as exc:
                outcome.append(exc)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(5)
    assert not thread.is_alive(), "reading a FIFO blocked"
    assert len(outcome) == 2 and all("not a regular file" in str(e) for e in outcome)
    assert root_tag(fifo) is None


def test_iter_elements_streams_complete_elements_and_drops_them(tmp_path: Path) -> None:
    images = "".join(f'<image id="{i}"><box label="b{i}"/><box label="c{i}"/></image>' for i in range(50))
    path = write(tmp_path, f"<annotations><version>1.1</version><meta><task/></meta>{images}</annotations>")
    handed: list[ET.Element] = []
    labels = []
    for element in iter_elements(path, {"image"}):
        # complete when handed out: every child is there
        labels.append([box.get("label") for box in element.findall("box")])
        handed.append(element)
    assert labels == [[f"b{i}", f"c{i}"] for i in range(50)]
    # each one was cleared once the next was asked for: the tree never holds the whole file
    assert all(len(element) == 0 and not element.attrib for element in handed)


def test_iter_elements_finds_nested_tags_in_document_order(tmp_path: Path) -> None:
    path = write(tmp_path, "<a><track id='1'><box frame='0'/><box frame='1'/></track><tag/></a>")
    assert [e.tag for e in iter_elements(path, {"box", "tag"})] == ["box", "box", "tag"]


def test_root_tag_skips_the_prolog(tmp_path: Path) -> None:
    path = write(tmp_path, '<?xml version="1.0"?>\n<!-- <fake> -->\n<!DOCTYPE x [<!ELEMENT x ANY>]>\n<annotations/>')
    assert root_tag(path) == "annotations"
    assert root_tag(tmp_path / "missing.xml") is None
    assert root_tag(write(tmp_path, "no markup", "b.xml")) is None


def test_child_number_names_the_place() -> None:
    element = ET.fromstring("<size><width> 12.5 </width><height>abc</height><depth>inf</depth></size>")
    assert child_number(element, "width", file="f", where="size") == 12.5
    for tag, words in (("height", "expected a number, found 'abc'"), ("depth", "finite"), ("none", "missing <none>")):
        with pytest.raises(InvalidDataError, match=words) as caught:
            child_number(element, tag, file="f", where="size")
        assert (caught.value.file, caught.value.location) == ("f", f"size/{tag}")


def test_text_typing() -> None:
    assert text_to_value(text=" 12 ") == 12
    assert text_to_value(text="-0.5") == -0.5
    assert text_to_value(text="true") is True
    assert text_to_value(text="007") == "007"
    assert text_to_value(text="Unspecified") == "Unspecified"
    assert text_to_value(text=None) == ""


def test_append_value_leaves_out_what_no_element_can_hold() -> None:
    root = ET.Element("r")
    for key, value in (("ok", 1), ("xmlns", 2), ("XMLfoo", 3), ("bad key", 4), ("1st", 5), ("none", None)):
        append_value(root, key, value)
    assert [child.tag for child in root] == ["ok"]
    assert is_xml_name("a.b-c_1") and not is_xml_name("-a")
    assert value_text(True) == "true" and value_text(2.5) == "2.5"


KEYS = st.from_regex(r"[a-w][a-z0-9_]{0,6}", fullmatch=True)  # no "xml..." prefix: such keys are left out
LEAVES = st.one_of(
    st.integers(-(10**6), 10**6),
    st.booleans(),
    # text typed back as text: no 't' (never "true") and never "false"
    st.text(alphabet="abcdefghijklmnopqrsuvwxyz", min_size=1, max_size=8).filter(lambda text: text != "false"),
    st.floats(-1e6, 1e6, allow_nan=False).filter(lambda f: "e" not in repr(f) and not f.is_integer()),
)
VALUES = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.dictionaries(KEYS, inner, min_size=1, max_size=4),
        st.lists(st.dictionaries(KEYS, inner, min_size=1, max_size=3), min_size=2, max_size=3),
    ),
    max_leaves=12,
)


@given(st.dictionaries(KEYS, VALUES, min_size=1, max_size=4))
def test_values_survive_elements_and_serialization(value: dict[str, Any]) -> None:
    root = ET.Element("root")
    for key, item in value.items():
        append_value(root, key, item)
    assert element_to_value(element=root) == value
    text = xml_bytes(root)
    assert text.endswith(b"\n") and not text.startswith(b"<?xml")
    assert element_to_value(element=ET.fromstring(text)) == value
