"""Defused XML for readers: a whole file or a stream of its elements, one wording for every refusal.

Every XML input is first read up to its first element by a pyexpat "guard" with the handlers defusedxml
sets (entity declarations, unparsed entities and external references refused, parameter entities never
parsed); only a document that passes goes to the stdlib's C ElementTree parser, so there is no Python call
per element (defusedxml's own parser spent 47 % of a VOC conversion in Python handlers). A billion-laughs or
XXE file is a :class:`~annonorm.errors.ParseError` that says what it declares, never expanded, and nothing
outside the file is read. A document type declaration alone is allowed (tools
write ``<!DOCTYPE annotation>``). Files are opened only when they are regular files (a FIFO named
``a.xml`` would block forever), and a file that is not well-formed names its line and column.

:func:`parse_xml` reads a small file whole (a VOC annotation); :func:`iter_elements` streams a large
one (a CVAT export of a gigabyte), each wanted element complete when it is handed out and dropped
from the tree afterwards, so memory stays flat. :func:`root_tag` is the cheap look at a file's first
element that sniffing needs (:func:`xml_files` or :func:`xml_entries`, :func:`has_root` and
:func:`root_mismatch` for a folder of per-image files). :func:`element_to_value` / :func:`append_value`
map elements without a schema to JSON values and back (text typed by :func:`text_to_value`), :func:`named_values` /
:func:`append_named_values` a block of ``<name>``/``<value>`` pairs, and :func:`xml_bytes` is the
one serialization writers use. :func:`child_number` / :func:`child_numbers` read the numbers of child
elements.
"""

from __future__ import annotations

import math
import os
import pyexpat
import re
import xml.etree.ElementTree as ET
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from annonorm.errors import AnnonormError, InvalidDataError, ParseError
from annonorm.fsutil import open_regular, read_regular_bytes
from annonorm.sources.images import list_dir

__all__ = [
    "append_named_values",
    "append_value",
    "child_number",
    "child_numbers",
    "element_to_value",
    "has_root",
    "is_xml_name",
    "iter_elements",
    "named_values",
    "parse_xml",
    "root_mismatch",
    "root_tag",
    "text_to_value",
    "value_text",
    "xml_bytes",
    "xml_entries",
    "xml_files",
]

#: How much of a file :func:`root_tag` looks at.
SNIFF_BYTES = 4096
#: How much of a stream :func:`iter_elements` reads at a time.
_CHUNK = 1 << 16
_INT_TEXT = re.compile(r"-?(0|[1-9][0-9]*)")
_FLOAT_TEXT = re.compile(r"-?[0-9]+\.[0-9]+([eE][-+]?[0-9]+)?")
_XML_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_ROOT_TAG = re.compile(rb"<([A-Za-z_][\w.:-]*)")
_PROLOG = re.compile(rb"<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^>\[]*(\[.*?\])?\s*>", re.DOTALL)


class _Refused(Exception):
    """Raised inside a guard handler to stop expat; carries the refusal."""

    def __init__(self, error: ParseError) -> None:
        super().__init__(str(error))
        self.error = error


class _RootReached(Exception):
    """Raised by the guard at the first element: nothing can be declared after it."""


class _Guard:
    """A pyexpat parser that reads a document's prolog only, refusing what defusedxml refuses.

    Entity declarations (general, parameter, unparsed) and external references are refused; a document
    type declaration alone passes. Its only Python handlers are for those declarations and the first
    element, where it stops, so the elements are left to the C-accelerated ElementTree parser with no
    per-element Python cost: what the guard has not cleared (an error in the prolog) is never parsed.
    """

    def __init__(self, *, file: str | Path, purpose: str) -> None:
        self.file, self.purpose, self.cleared = file, purpose, False
        parser = pyexpat.ParserCreate()
        parser.SetParamEntityParsing(pyexpat.XML_PARAM_ENTITY_PARSING_NEVER)
        parser.EntityDeclHandler = self._entity
        parser.UnparsedEntityDeclHandler = self._unparsed
        parser.ExternalEntityRefHandler = self._external
        parser.StartElementHandler = self._root
        self.parser = parser

    def _entity(self, name: str, _param: bool, _value: str | None, _base: str | None, sysid: str | None,
                *_rest: str | None) -> None:  # fmt: skip
        kind = f"external entity {sysid!r}" if sysid else "entity"
        raise _Refused(ParseError(
            f"refused: the XML declares {kind} {name!r} (entity expansion and external entities are "
            f"not allowed; {self.purpose} need neither)",
            file=self.file,
        ))  # fmt: skip

    def _unparsed(self, name: str, base: str | None, sysid: str | None, *_rest: str | None) -> None:
        self._entity(name, False, None, base, sysid)

    def _external(self, _context: str, _base: str | None, sysid: str | None, _pubid: str | None) -> int:
        raise _Refused(ParseError(
            f"refused: the XML references the external resource {sysid!r}; external references are not allowed",
            file=self.file,
        ))  # fmt: skip

    def _root(self, _name: str, _attributes: Any) -> None:
        raise _RootReached

    def feed(self, data: bytes, *, final: bool = False) -> None:
        """Check the next bytes of the document (a no-op once its first element is reached)."""
        if self.cleared:
            return
        try:
            self.parser.Parse(data, final)
        except _RootReached:
            self.cleared = True
        except _Refused as refused:
            raise refused.error from None
        except pyexpat.ExpatError as exc:
            raise _not_well_formed(f"{pyexpat.ErrorString(exc.code)}: line {exc.lineno}, column {exc.offset}",
                                   (exc.lineno, exc.offset), file=self.file) from None  # fmt: skip


def _not_well_formed(message: str, position: tuple[int, int], *, file: str | Path) -> ParseError:
    line, column = position
    return ParseError(f"not well-formed XML ({message})", file=file, location=f"line {line}, column {column}")


def parse_xml(path: Path, *, what: str = "XML file", purpose: str = "annotations") -> ET.Element:
    """The root element of the regular file ``path``, parsed whole once its prolog is cleared (see the module).

    ``what`` names the file in errors (``"annotation XML"``), ``purpose`` what needs no entities
    (``"VOC annotations"``). Every refusal is a :class:`~annonorm.errors.ParseError` saying why.
    """
    data = read_regular_bytes(path, what)
    _Guard(file=path, purpose=purpose).feed(data, final=True)
    try:
        root: ET.Element = ET.fromstring(data)
    except ET.ParseError as exc:
        raise _not_well_formed(str(exc), exc.position, file=path) from None
    return root


def iter_elements(
    path: Path, tags: Collection[str], *, what: str = "XML file", purpose: str = "annotations"
) -> Iterator[ET.Element]:
    """The elements of ``path`` named one of ``tags``, in document order, each complete when handed out.

    The file is streamed: once the caller asks for the next element, the one handed out is cleared
    and removed from its parent, so a file of any size is read in the memory of one element. (An
    element named in ``tags`` that sits inside another one is therefore gone from it by the time the
    outer one is handed out.) Errors are worded as by :func:`parse_xml`, where the stream meets them.
    """
    with open_regular(path, what) as stream:
        guard = _Guard(file=path, purpose=purpose)
        pull: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(events=("start", "end"))
        parents: list[ET.Element] = []
        pending: list[ET.ParseError] = []
        done = False
        while not done:
            try:
                chunk = stream.read(_CHUNK)
            except OSError as exc:
                raise ParseError(f"cannot read the {what}: {exc.strerror}", file=path) from None
            done = not chunk
            # The guard sees every chunk before the tree builder does, so nothing it refuses is expanded.
            guard.feed(chunk, final=done)
            # A fault is queued after the events before it (close() raises it), so those come out first.
            try:
                if done:
                    pull.close()
                else:
                    pull.feed(chunk)
            except ET.ParseError as exc:
                pending.append(exc)
            events = pull.read_events()
            while True:
                try:
                    # Only start and end events are asked for: each carries an element.
                    event, element = cast("tuple[str, ET.Element]", next(events))
                except StopIteration:
                    break
                except ET.ParseError as exc:
                    raise _not_well_formed(str(exc), exc.position, file=path) from None
                if event == "start":
                    parents.append(element)
                    continue
                parents.pop()
                if element.tag in tags:
                    yield element
                    element.clear()
                    if parents:
                        parents[-1].remove(element)
            if pending:
                raise _not_well_formed(str(pending[0]), pending[0].position, file=path) from None


def root_tag(path: Path, what: str = "XML file") -> str | None:
    """The name of the first element of ``path``, from its first bytes (None when unreadable or not a regular file)."""
    try:
        with open_regular(path, what) as stream:
            prefix = stream.read(SNIFF_BYTES)
    except (OSError, AnnonormError):
        return None
    match = _ROOT_TAG.search(_PROLOG.sub(b"", prefix))
    return match.group(1).decode("ascii", "replace") if match else None


def xml_entries(directory: Path) -> list[os.DirEntry[str]]:
    """The ``*.xml`` entries of ``directory``, by name, whatever they are: a FIFO or a directory named ``x.xml``
    is then refused by name when read, instead of leaving its image out silently."""
    return [e for e in list_dir(directory) if e.name.lower().endswith(".xml")]


def xml_files(directory: Path) -> list[Path]:
    """The paths of :func:`xml_entries` (a ``Path`` costs a few microseconds: list the entries when a folder of
    many files needs few of them)."""
    return [Path(e.path) for e in xml_entries(directory)]


def has_root(files: Sequence[Path], tag: str, what: str = "XML file") -> bool:
    """Whether one of ``files`` starts with the element ``tag`` (see :func:`root_tag`)."""
    return any(root_tag(path, what) == tag for path in files)


def root_mismatch(files: Sequence[Path], tag: str, what: str = "XML file") -> str | None:
    """Why ``files`` are not files of ``<tag>`` (each one readable and rooted at another element), else None."""
    tags = [root_tag(path, what) for path in files]
    if not files or any(found is None or found == tag for found in tags):
        return None
    return f"{files[0].name} starts with <{tags[0]}>, expected <{tag}>"


def child_number(element: ET.Element | None, tag: str, *, file: str | Path, where: str) -> float:
    """The finite number in the child ``tag`` of ``element``; an :class:`InvalidDataError` at ``where/tag`` if not."""
    child = element.find(tag) if element is not None else None
    if child is None:
        raise InvalidDataError(f"missing <{tag}>; expected a number", file=file, location=f"{where}/{tag}")
    text = (child.text or "").strip()
    try:
        value = float(text)
    except ValueError:
        raise InvalidDataError(f"expected a number, found {text!r}", file=file, location=f"{where}/{tag}") from None
    if not math.isfinite(value):
        raise InvalidDataError(f"expected a finite number, found {text!r}", file=file, location=f"{where}/{tag}")
    return value


def child_numbers(element: ET.Element, tags: Sequence[str], *, file: str | Path, where: str) -> tuple[float, ...]:
    """:func:`child_number` of each of ``tags`` (``bndbox`` corners): the same values and the same errors.

    The usual case (every child there, each a finite number) costs one C-level lookup and one ``float``
    per tag; anything else is left to :func:`child_number`, which words the first problem.
    """
    try:
        # float() ignores the whitespace that child_number strips; a missing child (None) is a TypeError.
        values = tuple(map(float, map(element.findtext, tags)))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        values = ()
    # A sum of finite numbers can overflow: then child_number, which checks each, gives them all the same.
    if len(values) == len(tags) and math.isfinite(sum(values)):
        return values
    return tuple(child_number(element, tag, file=file, where=where) for tag in tags)


def text_to_value(*, text: str | None) -> Any:
    """Type the text of an element without a known type: ``true``/``false``, integers, floats, else the text."""
    value = (text or "").strip()
    if value in ("true", "false"):
        return value == "true"
    if _INT_TEXT.fullmatch(value):
        return int(value)
    if _FLOAT_TEXT.fullmatch(value):
        number = float(value)
        if math.isfinite(number):
            return number
    return value


def element_to_value(*, element: ET.Element) -> Any:
    """An element without a known meaning as JSON: text is typed, children become a dict (repeats a list)."""
    children = list(element)
    if not children:
        return text_to_value(text=element.text)
    out: dict[str, Any] = {}
    repeated: set[str] = set()
    for child in children:
        value = element_to_value(element=child)
        if child.tag in repeated:
            out[child.tag].append(value)
        elif child.tag in out:
            out[child.tag] = [out[child.tag], value]
            repeated.add(child.tag)
        else:
            out[child.tag] = value
    return out


def value_text(value: Any) -> str:
    """A scalar as element text: booleans as ``true``/``false`` (what :func:`text_to_value` reads back)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def append_value(parent: ET.Element, tag: str, value: Any) -> None:
    """Write a JSON value as elements under ``parent`` (the inverse of :func:`element_to_value`).

    Lists repeat the tag; ``None`` and keys that are no XML name (or start with ``xml``) are left out.
    """
    if value is None or not _XML_NAME.fullmatch(tag) or tag.lower().startswith("xml"):
        return
    if isinstance(value, list):
        for item in value:
            append_value(parent, tag, item)
    elif isinstance(value, dict):
        element = ET.SubElement(parent, tag)
        for key, item in value.items():
            append_value(element, key, item)
    else:
        ET.SubElement(parent, tag).text = value_text(value)


def named_values(element: ET.Element, item: str = "attribute") -> dict[str, Any]:
    """The ``<item><name>n</name><value>v</value></item>`` children of ``element`` (at any depth) as
    ``{n: v}``, values typed by :func:`text_to_value`; an item without a name is left out."""
    values: dict[str, Any] = {}
    for child in element.iter(item):
        key = (child.findtext("name") or "").strip()
        if key:
            values[key] = text_to_value(text=child.findtext("value"))
    return values


def append_named_values(parent: ET.Element, tag: str, values: Mapping[str, Any], item: str = "attribute") -> None:
    """Write ``values`` as ``<tag>`` of ``<item><name>/<value>`` pairs under ``parent`` (none when empty), the
    inverse of :func:`named_values`; values are written by :func:`value_text`."""
    if not values:
        return
    block = ET.SubElement(parent, tag)
    for key, value in values.items():
        pair = ET.SubElement(block, item)
        ET.SubElement(pair, "name").text = key
        ET.SubElement(pair, "value").text = value_text(value)


def is_xml_name(name: str) -> bool:
    """Whether ``name`` can be an element's tag."""
    return _XML_NAME.fullmatch(name) is not None


def xml_bytes(root: ET.Element) -> bytes:
    """``root`` as UTF-8 text, indented two spaces, with a final newline and no XML declaration."""
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="unicode").encode("utf-8") + b"\n"
