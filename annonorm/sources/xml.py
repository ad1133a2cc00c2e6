"""Defused XML for readers: a whole file or a stream of its elements, one wording for every refusal.

Every XML input goes through defusedxml with entity declarations and external references refused, so a
billion-laughs or XXE file is a :class:`~annonorm.errors.ParseError` that says what it declares, never
expanded, and nothing outside the file is read. A document type declaration alone is allowed (tools
write ``<!DOCTYPE annotation>``). Files are opened only when they are regular files (a FIFO named
``a.xml`` would block forever), and a file that is not well-formed names its line and column.

:func:`parse_xml` reads a small file whole (a VOC annotation); :func:`iter_elements` streams a large
one (a CVAT export of a gigabyte), each wanted element complete when it is handed out and dropped
from the tree afterwards, so memory stays flat. :func:`root_tag` is the cheap look at a file's first
element that sniffing needs. :func:`element_to_value` / :func:`append_value` map elements without a
schema to JSON values and back (text typed by :func:`text_to_value`), and :func:`xml_bytes` is the
one serialization writers use.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import defusedxml
import defusedxml.ElementTree as SafeET

from annonorm.errors import AnnonormError, InvalidDataError, ParseError
from annonorm.fsutil import open_regular, read_regular_bytes

__all__ = [
    "append_value",
    "child_number",
    "element_to_value",
    "is_xml_name",
    "iter_elements",
    "parse_xml",
    "root_tag",
    "text_to_value",
    "value_text",
    "xml_bytes",
]

#: How much of a file :func:`root_tag` looks at.
SNIFF_BYTES = 4096
_DEFUSED = {"forbid_dtd": False, "forbid_entities": True, "forbid_external": True}
_INT_TEXT = re.compile(r"-?(0|[1-9][0-9]*)")
_FLOAT_TEXT = re.compile(r"-?[0-9]+\.[0-9]+([eE][-+]?[0-9]+)?")
_XML_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_ROOT_TAG = re.compile(rb"<([A-Za-z_][\w.:-]*)")
_PROLOG = re.compile(rb"<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^>\[]*(\[.*?\])?\s*>", re.DOTALL)


def _refusal(exc: Exception, *, file: str | Path, purpose: str) -> ParseError | None:
    """The ParseError for what defusedxml or expat raised, or None for any other exception."""
    if isinstance(exc, defusedxml.EntitiesForbidden):
        kind = f"external entity {exc.sysid!r}" if exc.sysid else "entity"
        return ParseError(
            f"refused: the XML declares {kind} {exc.name!r} (entity expansion and external entities are "
            f"not allowed; {purpose} need neither)",
            file=file,
        )
    if isinstance(exc, defusedxml.ExternalReferenceForbidden):
        return ParseError(
            f"refused: the XML references the external resource {exc.sysid!r}; external references are not allowed",
            file=file,
        )
    if isinstance(exc, ET.ParseError):
        line, column = exc.position
        return ParseError(f"not well-formed XML ({exc})", file=file, location=f"line {line}, column {column}")
    return None


def parse_xml(path: Path, *, what: str = "XML file", purpose: str = "annotations") -> ET.Element:
    """The root element of the regular file ``path``, parsed whole with defusedxml.

    ``what`` names the file in errors (``"annotation XML"``), ``purpose`` what needs no entities
    (``"VOC annotations"``). Every refusal is a :class:`~annonorm.errors.ParseError` saying why.
    """
    data = read_regular_bytes(path, what)
    try:
        root: ET.Element = SafeET.fromstring(data, **_DEFUSED)
    except (defusedxml.DefusedXmlException, ET.ParseError) as exc:
        raise _refusal(exc, file=path, purpose=purpose) or ParseError(str(exc), file=path) from None
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
        events = SafeET.iterparse(stream, events=("start", "end"), **_DEFUSED)
        parents: list[ET.Element] = []
        while True:
            try:
                event, element = next(events)
            except StopIteration:
                return
            except OSError as exc:
                raise ParseError(f"cannot read the {what}: {exc.strerror}", file=path) from None
            except (defusedxml.DefusedXmlException, ET.ParseError) as exc:
                raise _refusal(exc, file=path, purpose=purpose) or ParseError(str(exc), file=path) from None
            if event == "start":
                parents.append(element)
                continue
            parents.pop()
            if element.tag in tags:
                yield element
                element.clear()
                if parents:
                    parents[-1].remove(element)


def root_tag(path: Path, what: str = "XML file") -> str | None:
    """The name of the first element of ``path``, from its first bytes (None when unreadable or not a regular file)."""
    try:
        with open_regular(path, what) as stream:
            prefix = stream.read(SNIFF_BYTES)
    except (OSError, AnnonormError):
        return None
    match = _ROOT_TAG.search(_PROLOG.sub(b"", prefix))
    return match.group(1).decode("ascii", "replace") if match else None


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


def is_xml_name(name: str) -> bool:
    """Whether ``name`` can be an element's tag."""
    return _XML_NAME.fullmatch(name) is not None


def xml_bytes(root: ET.Element) -> bytes:
    """``root`` as UTF-8 text, indented two spaces, with a final newline and no XML declaration."""
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="unicode").encode("utf-8") + b"\n"
