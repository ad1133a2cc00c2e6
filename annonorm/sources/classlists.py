"""Class lists: the files and strings that name a dataset's classes, in order.

One reader for every form a user or a format hands annonorm: ``A,B,C`` on the command line, one
name per line (``classes.txt``, Darknet's ``obj.names``; line k names class k; ``#`` starts a
comment line), an Ultralytics ``data.yaml``'s ``names`` (a list or an index mapping), a
Datumaro ``dataset_meta.json`` (``{"labels": [...]}``) or a JSON list or ``{"0": name}`` mapping,
and a ``code,name`` CSV (Open Images' class descriptions: the code is the source's id).

The ``data.yaml`` reader handles the subset of YAML that such files use (block and flow
collections, quoted scalars, comments): PyYAML is not a dependency of the base install.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from annonorm.errors import ParseError, UsageError
from annonorm.fsutil import read_regular_bytes

__all__ = ["ClassList", "class_list_file", "data_yaml_to_names", "find_class_list", "read_class_list"]

#: Suffixes of class list files: ``--classes labels.txt`` that does not exist is an error, not a class name.
LIST_SUFFIXES = frozenset({".txt", ".names", ".yaml", ".yml", ".json", ".csv", ".pbtxt"})
#: First-row cells that make a ``code,name`` CSV's first row a header (Open Images writes LabelName,DisplayName).
_CSV_HEADER_CELLS = frozenset({"labelname", "code", "id", "label", "class"})


@dataclass
class ClassList:
    """Class names in order; where the source names classes by code, code -> name and name -> code."""

    names: list[str]
    codes: dict[str, str] = field(default_factory=dict)
    source_ids: dict[str, str] = field(default_factory=dict)
    #: The file the list came from (``None`` for names given inline).
    file: Path | None = None


def _unquote(text: str) -> str:
    """A YAML scalar without its quotes and trailing comment."""
    text = text.strip()
    if text.startswith('"'):
        end = 1
        while end < len(text) and text[end] != '"':
            end += 2 if text[end] == "\\" else 1
        return str(json.loads(text[: end + 1]))
    if text.startswith("'"):
        end = 1
        while end < len(text):
            if text[end] == "'" and text[end + 1 : end + 2] == "'":
                end += 2
            elif text[end] == "'":
                break
            else:
                end += 1
        return text[1:end].replace("''", "'")
    comment = text.find(" #")
    return (text[:comment] if comment >= 0 else text).strip()


def _split_flow(text: str) -> list[str]:
    """Split the inside of a YAML flow collection at top-level commas, respecting quotes."""
    parts: list[str] = []
    current: list[str] = []
    quote = ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == ",":
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return [p for p in parts if p.strip()]


def data_yaml_to_names(*, text: str) -> list[str]:
    """Class names from the ``names:`` of an Ultralytics ``data.yaml`` (list or index mapping).

    Raises :class:`ValueError` (its message says which line) when ``names`` is missing or malformed.
    """
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("names:")), None)
    if start is None:
        raise ValueError("no top-level 'names:' key")
    value = lines[start][len("names:") :].strip()
    items: list[tuple[str | None, str]] = []
    if value.startswith(("[", "{")):
        closing = "]" if value[0] == "[" else "}"
        flow, index = value, start
        while _unquote(flow).rstrip()[-1:] != closing and index + 1 < len(lines):
            index += 1
            flow += " " + lines[index].strip()
        body = _unquote(flow).strip()
        if not body.endswith(closing):
            raise ValueError(f"line {start + 1}: names: {value[0]} is never closed")
        for part in _split_flow(body[1:-1]):
            key, sep, rest = part.partition(":") if closing == "}" else (None, "", part)
            items.append((key.strip() if sep and key is not None else None, rest))
    elif value and not value.startswith("#"):
        raise ValueError(f"line {start + 1}: expected a list or mapping after names:, found {value!r}")
    else:
        for number in range(start + 1, len(lines)):
            line = lines[number]
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if not line[0].isspace() and not line.startswith("-"):
                break
            entry = line.strip()
            if entry.startswith("- ") or entry == "-":
                items.append((None, entry[1:]))
            elif ":" in entry:
                key, _, rest = entry.partition(":")
                items.append((key.strip(), rest))
            else:
                raise ValueError(f"line {number + 1}: expected '- name' or 'index: name', found {entry!r}")
    names = [_unquote(raw) for _, raw in items]
    keys = [key for key, _ in items]
    if all(key is not None for key in keys):
        try:
            order = [int(_unquote(key)) for key in keys if key is not None]
        except ValueError:
            raise ValueError(f"line {start + 1}: names: keys must be class indices 0, 1, ...") from None
        if sorted(order) != list(range(len(order))):
            raise ValueError(f"line {start + 1}: names: indices must be 0..{len(order) - 1}, found {sorted(order)}")
        names = [name for _, name in sorted(zip(order, names, strict=True))]
    elif any(key is not None for key in keys):
        raise ValueError(f"line {start + 1}: names: mixes list items and index keys")
    if not names or not all(names):
        raise ValueError(f"line {start + 1}: names: is empty or holds an empty name")
    return names


def _json_pairs(path: Path, text: str) -> list[tuple[str, str]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(f"not valid JSON ({exc.msg})", file=path, location=f"line {exc.lineno}") from None
    if isinstance(data, dict) and ("labels" in data or "label_names" in data):
        data = data.get("labels", data.get("label_names"))  # Datumaro's dataset_meta.json
    if isinstance(data, dict) and all(str(key).isdigit() for key in data):
        data = [data[key] for key in sorted(data, key=int)]
    if not isinstance(data, list) or not all(isinstance(name, str) and name.strip() for name in data):
        raise ParseError('expected {"labels": ["name", ...]}, a list of class names or {"0": name}', file=path)
    return [(name.strip(), name.strip()) for name in data]


def _csv_pairs(path: Path, text: str) -> list[tuple[str, str]]:
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    pairs = []
    for number, cells in enumerate(csv.reader(io.StringIO(text), dialect), start=1):
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) < 2 or not cells[0].strip() or not cells[1].strip():
            raise ParseError("expected two cells: a class code and its name", file=path, location=f"row {number}")
        if number == 1 and cells[0].strip().lower() in _CSV_HEADER_CELLS:
            continue
        pairs.append((cells[0].strip(), cells[1].strip()))
    return pairs


def class_list_file(path: Path) -> ClassList:
    """Read a class list file (see the module docstring for the forms); errors name the file."""
    try:
        text = read_regular_bytes(path, "class list").decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ParseError("the class list is not UTF-8 text", file=path) from None
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        try:
            pairs = [(name, name) for name in data_yaml_to_names(text=text)]
        except ValueError as exc:
            raise ParseError(str(exc), file=path, location="names") from None
    elif suffix == ".json":
        pairs = _json_pairs(path, text)
    elif suffix == ".csv":
        pairs = _csv_pairs(path, text)
    else:  # line k names class k
        lines = (line.strip() for line in text.splitlines())
        pairs = [(line, line) for line in lines if line and not line.startswith("#")]
    classes = _collect(pairs, str(path), file=path)
    classes.file = path
    return classes


def find_class_list(directories: Sequence[Path], names: Sequence[str]) -> Path | None:
    """The first ``<directory>/<name>`` that exists (as any kind of entry: reading it checks it), directories
    first, then names in order; ``None`` when there is none."""
    return next((d / n for d in directories for n in names if os.path.lexists(d / n)), None)


def _collect(pairs: Sequence[tuple[str, str]], where: str, file: Path | None = None) -> ClassList:
    classes = ClassList(names=[])
    for position, (code, name) in enumerate(pairs):
        if name in classes.codes.values():
            message = f"class {name!r} is listed twice"
            if file is not None:
                raise ParseError(message, file=file, location=f"entry {position + 1}")
            raise UsageError(f"{where}: {message}")
        classes.names.append(name)
        classes.codes[code] = name
        if code != name:
            classes.source_ids[name] = code
    if not classes.names:
        if file is not None:
            raise ParseError("the class list is empty; expected class names, one per line", file=file)
        raise UsageError(f"{where}: expected class names")
    return classes


def read_class_list(spec: str | os.PathLike[str] | Sequence[str]) -> ClassList:
    """The classes of ``--classes``: a class list file, ``"A,B,C"``, or a sequence of names.

    A string that names no file is a comma-separated list, unless it looks like a file name
    (a path separator, or a class-list suffix such as ``.txt``): then the missing file is the error.
    """
    if isinstance(spec, (str, os.PathLike)):
        text = os.fspath(spec)
        if os.path.lexists(text):
            return class_list_file(Path(text))
        looks_like_file = "," not in text and (any(c in text for c in "/\\") or Path(text).suffix in LIST_SUFFIXES)
        if isinstance(spec, os.PathLike) or looks_like_file:
            raise UsageError(f"--classes: no such class list file {text!r} (or give names as A,B,C)")
        names = [part.strip() for part in text.split(",")]
        where = f"--classes {text!r}"
    else:
        names = [str(name).strip() for name in spec]
        where = "classes"
    if any(not name for name in names):
        raise UsageError(f"{where}: expected class names A,B,C with no empty name")
    return _collect([(name, name) for name in names], where)
