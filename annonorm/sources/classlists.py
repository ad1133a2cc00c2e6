"""Class lists: the files and strings that name a dataset's classes, in order.

One reader for every form a user or a format hands annonorm: ``A,B,C`` on the command line, one
name per line (``classes.txt``, Darknet's ``obj.names``; line k names class k; ``#`` starts a
comment line), an Ultralytics ``data.yaml``'s ``names`` (a list or an index mapping), a
Datumaro ``dataset_meta.json`` (``{"labels": [...]}``) or a JSON list or ``{"0": name}`` mapping,
and a ``code,name`` CSV (Open Images' class descriptions: the code is the source's id). A Datumaro/CVAT
``labelmap.txt`` (``name:r,g,b:parts:actions`` lines, ``#`` comments; Pascal VOC roots and CVAT's
segmentation-mask export) is read by :func:`read_labelmap` and written by :func:`labelmap_text`.

The ``data.yaml`` reader handles the subset of YAML that such files use (block and flow
collections, quoted scalars, comments): PyYAML is not a dependency of the base install.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from annonorm.errors import InvalidDataError, ParseError, UsageError
from annonorm.fsutil import read_regular_bytes
from annonorm.schemas.manifest import Category

__all__ = [
    "BACKGROUND",
    "IGNORED",
    "ClassList",
    "class_list_file",
    "data_yaml_fields",
    "data_yaml_pose",
    "data_yaml_to_names",
    "find_class_list",
    "labelmap_line_to_entry",
    "labelmap_palette",
    "labelmap_text",
    "read_class_list",
    "read_labelmap",
]

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


def data_yaml_fields(*, text: str) -> dict[str, tuple[int, str | list[str]]]:
    """The top-level keys of a ``data.yaml`` other than ``names`` (see :func:`data_yaml_to_names`), with their
    1-based line numbers: a scalar (``path: .``), a flow list (``kpt_shape: [17, 3]``) or a block list
    (``train:`` then ``- a.txt`` lines) of scalars. A key with nested mappings or no value is skipped.

    Raises :class:`ValueError` (its message says which line) when a flow list is never closed.
    """
    lines = text.splitlines()
    fields: dict[str, tuple[int, str | list[str]]] = {}
    for number, line in enumerate(lines):
        if not line or line[0].isspace() or line[0] in "#-" or ":" not in line:
            continue
        key, _, rest = line.partition(":")
        key = _unquote(key)
        value = _unquote(rest)
        if key == "names" or key in fields:
            continue
        if rest.strip().startswith("["):
            flow, index = rest.strip(), number
            while _unquote(flow).rstrip()[-1:] != "]" and index + 1 < len(lines):
                index += 1
                flow += " " + lines[index].strip()
            body = _unquote(flow).strip()
            if not body.endswith("]"):
                raise ValueError(f"line {number + 1}: {key}: [ is never closed")
            fields[key] = (number + 1, [_unquote(part) for part in _split_flow(body[1:-1])])
        elif value:
            fields[key] = (number + 1, value)
        else:
            items: list[str] = []
            for item in lines[number + 1 :]:
                entry = item.strip()
                if not entry or entry.startswith("#"):
                    continue
                if not entry.startswith("-"):
                    break
                items.append(_unquote(entry[1:]))
            if items:
                fields[key] = (number + 1, items)
    return fields


def data_yaml_pose(fields: Mapping[str, tuple[int, str | list[str]]]) -> tuple[int, int, list[int] | None] | None:
    """``(K, D, flip_idx)`` of an Ultralytics pose ``data.yaml``'s :func:`data_yaml_fields`: ``kpt_shape: [K, D]``
    (K keypoints of D = 2 or 3 values) and the optional ``flip_idx`` (the keypoint each one becomes when the
    image is mirrored: a reordering of 0..K-1). None without ``kpt_shape``. Raises :class:`ValueError`
    naming the line when one is malformed."""
    if "kpt_shape" not in fields:
        return None
    number, value = fields["kpt_shape"]
    shape = _integers(value)
    if shape is None or len(shape) != 2 or shape[0] < 1 or shape[1] not in (2, 3):
        raise ValueError(f"line {number}: kpt_shape: expected [K, 2] or [K, 3], found {value!r}")
    if "flip_idx" not in fields:
        return shape[0], shape[1], None
    number, value = fields["flip_idx"]
    flip = _integers(value)
    if flip is None or sorted(flip) != list(range(shape[0])):
        raise ValueError(f"line {number}: flip_idx: expected a reordering of 0..{shape[0] - 1}, found {value!r}")
    return shape[0], shape[1], flip


def _integers(value: str | list[str]) -> list[int] | None:
    if not isinstance(value, list) or not all(v.strip().isascii() and v.strip().isdigit() for v in value):
        return None
    return [int(v) for v in value]


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


# ---------------------------------------------------------------------------------------------- data.yaml written

#: The split names Ultralytics' ``val`` key may stand for, in order of preference.
VAL_SPLITS = ("val", "valid", "validation")


def _ultralytics_splits(splits: Sequence[str]) -> dict[str, str]:
    """The Ultralytics keys (``train``, ``val``, ``test``) and the split each one names.

    ``train`` and ``val`` are always there (Ultralytics requires both): without a validation split
    (``val``, ``valid``, ``validation``) ``val`` names the train split.
    """
    val = next((s for s in VAL_SPLITS if s in splits), None)
    test = "test" if "test" in splits else None
    train = "train" if "train" in splits else next((s for s in splits if s not in (val, test)), splits[0])
    keys = {"train": train, "val": val if val is not None and val != train else train}
    if test is not None and test not in keys.values():
        keys["test"] = test
    return keys


def data_yaml_text(
    *, names: Sequence[str], splits: Sequence[str], images_placed: bool, task: str, pose: tuple[int, Any] | None
) -> str:
    """An Ultralytics ``data.yaml`` for ``labels/<split>`` + ``images/<split>`` (``pose``: keypoint count, flip_idx)."""
    return "".join(_data_yaml_lines(names, splits, images_placed, task, pose))


def _data_yaml_lines(
    names: Sequence[str], splits: Sequence[str], images_placed: bool, task: str, pose: tuple[int, Any] | None
) -> Iterator[str]:
    # No `path:` key, on purpose. Ultralytics takes the dataset root from `path:` when there is one and
    # resolves a relative one against the working directory (else its datasets_dir), so `path: .` works only
    # when training is started from this folder; an absolute path breaks when the folder is moved or copied.
    # Without `path:` the root is the folder of this data.yaml itself, wherever it is.
    keys = _ultralytics_splits(splits)
    yield "# Written by annonorm for Ultralytics YOLO. No 'path:' on purpose: the dataset root is this file's\n"
    yield "# folder, and train/val/test are relative to it.\n"
    if not images_placed:
        yield "# The images were not exported (--images none): put them in images/<split>/ beside labels/<split>/.\n"
    for key, split in keys.items():
        note = ""
        if key == "val" and split == keys["train"]:
            one = len(splits) == 1
            note = "  # one split only: val is the train split" if one else "  # no validation split: val is train"
        yield f"{key}: images/{split}{note}\n"
    others = [s for s in splits if s not in keys.values()]
    if others:
        yield f"# Splits without an Ultralytics key (labels/<split>, images/<split>): {', '.join(others)}\n"
    yield f"task: {task}  # read by annonorm; Ultralytics takes the task from the model\n"
    if pose is not None:
        yield f"kpt_shape: [{pose[0]}, 3]\n"
        if pose[1] is not None:
            yield f"flip_idx: [{', '.join(str(i) for i in pose[1])}]\n"
    yield f"nc: {len(names)}\n"
    yield "names:\n"
    for index, name in enumerate(names):
        yield f"  {index}: {json.dumps(name, ensure_ascii=False)}\n"


# ---------------------------------------------------------------------------------------------- labelmap.txt

#: The labelmap names of index 0 (background) and of the void label (mask value 255), as Datumaro writes them:
#: they are not categories.
BACKGROUND, IGNORED = "background", "ignored"
#: Labelmap indices from this one on have no colour of an 8-bit mask (255 is void).
_VOID = 255


def labelmap_line_to_entry(*, line: str, file: str, number: int) -> dict[str, Any] | None:
    """One ``name:r,g,b:parts:actions`` line of a labelmap (``None`` for blanks and comments)."""
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    fields = text.split(":")
    if len(fields) > 4:
        raise ParseError(
            f"expected name:r,g,b:parts:actions, found {len(fields)} fields", file=file, location=f"line {number}"
        )
    fields += [""] * (4 - len(fields))
    name, color_text, parts_text, actions_text = (f.strip() for f in fields)
    if not name:
        raise ParseError("empty class name; expected name:r,g,b:parts:actions", file=file, location=f"line {number}")
    entry: dict[str, Any] = {"name": name}
    if color_text:
        channels = color_text.split(",")
        if len(channels) != 3 or not all(c.strip().isdigit() and int(c) <= 255 for c in channels):
            raise ParseError(
                f"color {color_text!r} is not r,g,b with values 0..255", file=file, location=f"line {number}"
            )
        entry["color"] = [int(c) for c in channels]
    for key, value in (("parts", parts_text), ("actions", actions_text)):
        items = [item.strip() for item in value.split(",") if item.strip()]
        if items:
            entry[key] = items
    return entry


def read_labelmap(path: Path) -> list[dict[str, Any]]:
    """The entries of a ``labelmap.txt``, in order: ``{"name", "color"?, "parts"?, "actions"?}`` (entry k is mask
    index k). A line that is not ``name:r,g,b:parts:actions`` is a :class:`ParseError`, a name given twice an
    :class:`InvalidDataError`, each naming the file and line."""
    try:
        lines = read_regular_bytes(path, "labelmap").decode("utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise ParseError(f"the labelmap is not UTF-8 text ({exc.reason})", file=path) from None
    entries = []
    seen: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        entry = labelmap_line_to_entry(line=line, file=str(path), number=number)
        if entry is None:
            continue
        if entry["name"] in seen:
            where = f"line {number}"
            raise InvalidDataError(
                f"class {entry['name']!r} is already on line {seen[entry['name']]}", file=path, location=where
            )
        seen[entry["name"]] = number
        entries.append(entry)
    return entries


def labelmap_palette(
    categories: Sequence[Category], palette: Sequence[tuple[int, int, int]]
) -> list[tuple[int, int, int]]:
    """``palette`` with each category's own labelmap ``color`` attribute (as :func:`read_labelmap` gave it) at
    its labelmap index, ``id + 1``."""
    colors = list(palette)
    for category in categories:
        color = (category.attributes or {}).get("color")
        if isinstance(color, list) and category.id + 1 < _VOID:
            channels = [c for c in color if isinstance(c, int) and 0 <= c <= 255]
            if len(channels) == len(color) == 3:
                colors[category.id + 1] = (channels[0], channels[1], channels[2])
    return colors


def labelmap_text(categories: Sequence[Category], palette: Sequence[tuple[int, int, int]]) -> str:
    """The ``labelmap.txt`` text: background first, then the categories in id order (index = id + 1), each in
    its ``palette`` colour with its ``parts`` and ``actions`` attributes."""
    lines = ["# label:color_rgb:parts:actions", f"{BACKGROUND}:0,0,0::"]
    for category in categories:
        if category.name in (BACKGROUND, IGNORED):
            continue  # reserved labelmap names; boxes of such a class come back from the annotations
        red, green, blue = palette[category.id + 1] if category.id + 1 < _VOID else palette[0]
        attributes = category.attributes or {}
        parts, actions = (attributes.get(key) for key in ("parts", "actions"))
        parts_text = ",".join(map(str, parts)) if isinstance(parts, list) else ""
        actions_text = ",".join(map(str, actions)) if isinstance(actions, list) else ""
        lines.append(f"{category.name}:{red},{green},{blue}:{parts_text}:{actions_text}")
    return "\n".join(lines) + "\n"
