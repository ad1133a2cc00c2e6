"""sources.xml: defused parsing of a whole file or a stream, one refusal wording, sniffing, schema-less values."""

from __future__ import annotations

import os
import tempfile
import threading
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from annonorm.errors import InvalidDataError, ParseError
from annonorm.sources.xml import (
    append_named_values,
    append_value,
    child_number,
    child_numbers,
    element_to_value,
    has_root,
    is_xml_name,
    iter_elements,
    named_values,
    parse_xml,
    root_mismatch,
    root_tag,
    text_to_value,
    value_text,
    xml_bytes,
    xml_files,
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


_NUMBER_TEXTS = st.one_of(
    st.none(),  # the child is missing
    st.floats().map(repr),
    st.integers(-(10**400), 10**400).map(str),  # beyond a float: inf
    st.sampled_from(["", " 7 ", "\t-3.5\n", "1_0", "nan", "-inf", "1e308", "abc", "0x10", "\u2003 4", "\x1c5"]),
    st.text(max_size=4),
)


@given(texts=st.lists(_NUMBER_TEXTS, min_size=1, max_size=4))
def test_child_numbers_give_what_child_number_gives_each(texts: list[str | None]) -> None:
    element = ET.Element("bndbox")
    tags = [f"c{index}" for index in range(len(texts))]
    for tag, text in zip(tags, texts, strict=True):
        if text is not None:
            ET.SubElement(element, tag).text = text
    expected: list[float] | InvalidDataError = []
    try:
        expected = [child_number(element, tag, file="f", where="box") for tag in tags]
    except InvalidDataError as error:
        expected = error
    if isinstance(expected, InvalidDataError):
        with pytest.raises(InvalidDataError) as caught:
            child_numbers(element, tags, file="f", where="box")
        assert (str(caught.value), caught.value.location) == (str(expected), expected.location)
    else:
        assert list(child_numbers(element, tags, file="f", where="box")) == expected


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


def test_xml_files_lists_every_xml_entry_and_root_checks_name_the_first_file(tmp_path: Path) -> None:
    (tmp_path / "a.xml").write_text("<annotation/>")
    (tmp_path / "B.XML").write_text("<?xml version='1.0'?><!-- c --><annotation/>")
    (tmp_path / "dir.xml").mkdir()  # listed by name, refused when read
    (tmp_path / "note.txt").write_text("<annotation/>")
    files = xml_files(tmp_path)
    assert sorted(p.name for p in files) == ["B.XML", "a.xml", "dir.xml"]
    assert has_root(files, "annotation") and not has_root(files, "annotations")
    assert root_mismatch(files, "annotation") is None
    others = [tmp_path / "x.xml"]
    others[0].write_text("<coco/>")
    assert root_mismatch(others, "annotation") == "x.xml starts with <coco>, expected <annotation>"
    assert root_mismatch([], "annotation") is None  # nothing to judge
    assert root_mismatch([*others, tmp_path / "dir.xml"], "annotation") is None  # an unreadable one: not judged


_NAMES = st.from_regex(r"[a-z][a-z0-9_ ]{0,8}", fullmatch=True).map(str.strip).filter(bool)
_WORDS = st.text("abc xyz", min_size=1).map(str.strip).filter(lambda t: t not in ("", "true", "false"))
_SCALARS = st.one_of(st.booleans(), st.integers(-(10**6), 10**6), _WORDS)


@given(st.dictionaries(_NAMES, _SCALARS))
def test_named_values_read_back_what_append_named_values_writes(values: dict[str, Any]) -> None:
    parent = ET.Element("object")
    append_named_values(parent, "attributes", values)
    block = parent.find("attributes")
    assert (block is None) == (not values)
    assert named_values(ET.fromstring(xml_bytes(parent))) == values


def test_named_values_skip_nameless_pairs_and_type_the_text() -> None:
    element = ET.fromstring(
        "<attributes><attribute><name> a </name><value>1</value></attribute>"
        "<attribute><value>lost</value></attribute><attribute><name>b</name><value>true</value></attribute>"
        "<attribute><name>c</name></attribute></attributes>"
    )
    assert named_values(element) == {"a": 1, "b": True, "c": ""}


@pytest.mark.parametrize(
    ("declaration", "words"),
    [
        ('<!ENTITY % remote SYSTEM "file:///etc/passwd"> %remote;', "external entity 'file:///etc/passwd' 'remote'"),
        ('<!ENTITY pic SYSTEM "a.gif" NDATA gif>', "external entity 'a.gif' 'pic'"),
    ],
)
def test_parameter_and_unparsed_entities_are_refused(tmp_path: Path, declaration: str, words: str) -> None:
    path = write(tmp_path, f"<!DOCTYPE a [{declaration}]><a/>")
    for read in (lambda: parse_xml(path), lambda: list(iter_elements(path, {"a"}))):
        with pytest.raises(ParseError) as refused:
            read()
        assert words in str(refused.value) and "\n" not in str(refused.value)


def test_a_refusal_past_the_first_chunk_stops_the_stream_before_any_element(tmp_path: Path) -> None:
    # A comment longer than a read puts the declaration in a later chunk, split across the boundary.
    padding = "x" * (1 << 16)
    path = write(tmp_path, f'<?xml version="1.0"?><!--{padding}--><!DOCTYPE a [<!ENTITY e "v">]><a><b>&e;</b></a>')
    seen: list[str] = []
    with pytest.raises(ParseError, match="declares entity 'e'"):
        for element in iter_elements(path, {"b"}):
            seen.append(element.tag)
    assert seen == []


_TAGS = st.sampled_from(["a", "b", "object", "name"])
_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=8)


@st.composite
def _trees(draw: st.DrawFn, depth: int = 0) -> ET.Element:
    element = ET.Element(draw(_TAGS), {"k": draw(_TEXT)} if draw(st.booleans()) else {})
    element.text = draw(_TEXT) or None
    if depth < 3:
        for _ in range(draw(st.integers(0, 3))):
            element.append(draw(_trees(depth=depth + 1)))
    return element


def _shape(element: ET.Element) -> tuple[Any, ...]:
    return (element.tag, element.attrib, (element.text or "").strip(), [_shape(child) for child in element])


@given(tree=_trees(), encoding=st.sampled_from(["utf-8", "utf-16", "latin-1"]))
def test_the_guarded_parsers_read_what_elementtree_reads(tree: ET.Element, encoding: str) -> None:
    """Any document without declarations reads as the plain stdlib parser reads it, whole and streamed."""
    text = f'<?xml version="1.0" encoding="{encoding}"?>\n<!DOCTYPE x>\n' + ET.tostring(tree, encoding="unicode")
    document = text.encode(encoding, "replace")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "a.xml"
        path.write_bytes(document)
        expected = ET.fromstring(document)
        assert _shape(parse_xml(path)) == _shape(expected)
        streamed = [element.tag for element in iter_elements(path, {expected.tag})]
        assert streamed[-1] == expected.tag
        assert len(streamed) == sum(1 for element in expected.iter(expected.tag))
