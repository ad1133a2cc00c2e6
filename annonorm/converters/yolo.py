"""YOLO (Darknet / Ultralytics) text labels: one ``.txt`` per image, ``class cx cy w h`` per line.

Darknet introduced the format; Ultralytics keeps it. Each image ``images/<split>/x.jpg`` has a label
file ``labels/<split>/x.txt`` (same relative path, ``images`` -> ``labels``, extension ``.txt``),
one object per line: a 0-based class index, then the box centre and size as fractions (0..1) of
the image width and height. An image without a label file, or with an empty one, has no object.
Class names live in ``classes.txt`` / ``obj.names`` (one per line, line k = class k) or in the
``names:`` of an Ultralytics ``data.yaml``. Converting the fractions to pixels needs the image
size, which the format does not store: it is read from each image file's header.

Layouts read (SOURCE is the dataset directory, or its ``data.yaml``):

- ``images/<split>/`` + ``labels/<split>/`` (Ultralytics), each sub-directory of ``labels/`` a split;
- flat ``images/`` + ``labels/`` (label files directly in ``labels/``): one split, ``--split`` (train);
- ``<split>/images/`` + ``<split>/labels/`` (Roboflow's YOLO export).

``--images DIR`` says where the images are when they are not beside the labels; an image is looked
up as ``DIR/<split>/<path>``, ``DIR/<split>/images/<path>`` then ``DIR/<path>``, with any common
image extension. The classes come from ``--classes``, else ``data.yaml``/``dataset.yaml``,
``classes.txt`` or ``obj.names`` in SOURCE or ``SOURCE/labels``. The ``data.yaml`` is read by a
small parser that understands only ``names:`` as a flow list (``[a, 'b c']``), a block list
(``- a``), or a block or flow mapping of indices (``0: a``); no PyYAML is needed. Its ``train:`` /
``val:`` paths are not followed: the layouts above are.

A label line with more than 5 numbers and an odd count is an Ultralytics segmentation polygon
(``class x1 y1 x2 y2 ...``): its box is the polygon's bounding box. Values must be fractions in
0..1 (as Ultralytics checks them); corners that a box centre and size put outside the image are
clipped to it, as Ultralytics does when it loads labels.

The writer produces ``labels/<split>/<image path>.txt`` (an empty file for an image without boxes),
``classes.txt`` and a ``data.yaml``, with fractions at 6 decimals. Images are not copied unless
``--images symlink`` or ``--images copy``. YOLO has no place for image-level labels without a box,
counts beyond the boxes, attributes or masks: they are not written; records need a known size.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from annonorm.converters.base import Converter, Option, ReadResult, make_record
from annonorm.converters.csvtable import IMAGE_EXTENSIONS
from annonorm.errors import AnnonormError, InvalidDataError, ParseError
from annonorm.images import read_image_size
from annonorm.io import DatasetWriter, NormalizedSource, read_text
from annonorm.schemas.types import round_coord

__all__ = ["YoloConverter", "box_to_yolo_line", "data_yaml_to_names", "yolo_line_to_box"]

# ---------------------------------------------------------------------------------------------- constants

CLASS_FILES = ("classes.txt", "obj.names")
YAML_FILES = ("data.yaml", "dataset.yaml", "data.yml")
DEFAULT_SPLIT = "train"
#: Fractions are written with this many decimals.
DECIMALS = 6
#: A fraction may leave 0..1 by this much (rounding in the exporting tool) before it is an error.
FRACTION_SLACK = 1e-6
_IMAGE_SUFFIXES = frozenset(e.lower() for e in IMAGE_EXTENSIONS)

# ---------------------------------------------------------------------------------------------- sniff


def _find_yaml(root: Path) -> Path | None:
    return next((root / n for n in YAML_FILES if (root / n).is_file()), None)


def _has_labels(root: Path) -> bool:
    if (root / "labels").is_dir():
        return True
    return any((d / "labels").is_dir() for d in root.iterdir() if d.is_dir())


# ---------------------------------------------------------------------------------------------- mapping functions


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


def yolo_line_to_box(*, values: Sequence[float], width: int, height: int) -> tuple[float, float, float, float]:
    """Absolute corners ``(x1, y1, x2, y2)`` of a YOLO line's numbers (after the class index).

    ``values`` is ``cx cy w h`` or a polygon ``x1 y1 x2 y2 ...``, fractions of the image side.
    Raises :class:`ValueError` when a value is not a fraction in 0..1.
    """
    if any(not (-FRACTION_SLACK <= v <= 1 + FRACTION_SLACK) for v in values):
        raise ValueError("expected fractions of the image side in 0..1")
    if len(values) == 4:
        cx, cy, w, h = values
        left, top, right, bottom = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2  # centre and size
    else:
        xs, ys = values[0::2], values[1::2]  # segmentation polygon: its bounding box
        left, top, right, bottom = min(xs), min(ys), max(xs), max(ys)
    # Corners outside the image are clipped to it (Ultralytics does the same on load).
    left, right = min(max(left, 0.0), 1.0), min(max(right, 0.0), 1.0)
    top, bottom = min(max(top, 0.0), 1.0), min(max(bottom, 0.0), 1.0)
    # Fractions of the image side: x by the width, y by the height.
    return (
        round_coord(left * width),
        round_coord(top * height),
        round_coord(right * width),
        round_coord(bottom * height),
    )


def box_to_yolo_line(*, class_id: int, box: Mapping[str, Any], width: int, height: int) -> str:
    """One YOLO label line (``class cx cy w h`` as 6-decimal fractions) for an absolute-corner box."""
    x1, y1, x2, y2 = (float(box[k]) for k in ("x1", "y1", "x2", "y2"))
    # Centre and size, divided by the image side: x by the width, y by the height.
    values = ((x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height)
    return f"{class_id} " + " ".join(f"{round(v, DECIMALS) + 0.0:.{DECIMALS}f}" for v in values)


# ---------------------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class _Split:
    """One split of a YOLO tree: its label directory and where its images may be."""

    name: str
    labels: Path
    #: Prefixes (relative to the image root, ending in "/" or empty) under which images are looked up.
    prefixes: tuple[str, ...]


def _load_names(root: Path, classes: Path | None) -> tuple[list[str], Path]:
    """The class names and the file they came from."""
    candidates: list[Path] = [classes] if classes is not None else []
    if classes is None:
        for directory in (root, root / "labels"):
            found = _find_yaml(directory)
            candidates += [found] if found else []
            candidates += [directory / n for n in CLASS_FILES if (directory / n).is_file()]
    if not candidates:
        raise ParseError(
            f"no class list: expected {', '.join(CLASS_FILES)} or data.yaml with names (or pass --classes)",
            file=root,
        )
    path = candidates[0]
    text = read_text(path, "class list")
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            return data_yaml_to_names(text=text), path
        except ValueError as exc:
            raise ParseError(str(exc), file=path, location="names") from None
    names = [line.strip() for line in text.splitlines() if line.strip()]  # line k names class k
    if not names:
        raise ParseError("the class list is empty; expected one class name per line", file=path)
    if len(set(names)) != len(names):
        duplicate = next(n for n in names if names.count(n) > 1)
        raise ParseError(f"class {duplicate!r} is listed twice", file=path)
    return names, path


def _splits(root: Path, split_option: str | None) -> list[_Split]:
    labels = root / "labels"
    if labels.is_dir():
        if any(p.suffix == ".txt" and p.name not in CLASS_FILES for p in labels.iterdir() if p.is_file()):
            return [_Split(split_option or DEFAULT_SPLIT, labels, ("",))]
        return [
            _Split(d.name, d, (f"{d.name}/", f"{d.name}/images/", ""))
            for d in sorted(labels.iterdir())
            if d.is_dir() and (split_option is None or d.name == split_option)
        ]
    return [
        _Split(d.name, d / "labels", (f"{d.name}/images/", f"{d.name}/", ""))
        for d in sorted(root.iterdir())
        if (d / "labels").is_dir() and (split_option is None or d.name == split_option)
    ]


def _stems(directory: Path, suffixes: frozenset[str]) -> dict[str, Path]:
    """Files under ``directory`` with one of ``suffixes``, by their relative path without suffix."""
    if not directory.is_dir():
        return {}
    found = {}
    for path in directory.rglob("*"):
        if path.suffix.lower() in suffixes and path.is_file() and path.name not in CLASS_FILES:
            found[path.relative_to(directory).with_suffix("").as_posix()] = path
    return found


def _find_image(image_root: Path, prefixes: Sequence[str], stem: str) -> str | None:
    for prefix in prefixes:
        base = image_root / (prefix + stem)
        for extension in IMAGE_EXTENSIONS:
            if base.with_name(base.name + extension).is_file():
                return prefix + stem + extension
    return None


def _parse_label_file(path: Path, names: Sequence[str], width: int, height: int) -> list[dict[str, Any]]:
    """The boxes of one label file; raises :class:`ParseError`/:class:`InvalidDataError` naming the line."""
    text = read_text(path, "label file")
    boxes = []
    for number, line in enumerate(text.splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        if not (len(tokens) == 5 or (len(tokens) >= 7 and len(tokens) % 2 == 1)):
            raise ParseError(
                f"expected 'class cx cy w h' (or a polygon 'class x1 y1 x2 y2 x3 y3 ...'), found {len(tokens)} values",
                file=path,
                location=f"line {number}",
            )
        # isdigit() alone accepts '²' and other digits int() refuses: the index must be ASCII digits.
        if not (tokens[0].isascii() and tokens[0].isdigit()) or int(tokens[0]) >= len(names):
            raise InvalidDataError(
                f"class {tokens[0]!r} is not an index 0..{len(names) - 1} of the class list",
                file=path,
                location=f"line {number}",
            )
        try:
            values = [float(t) for t in tokens[1:]]
            if not all(math.isfinite(v) for v in values):
                raise ValueError("expected finite numbers")
            x1, y1, x2, y2 = yolo_line_to_box(values=values, width=width, height=height)
        except ValueError as exc:
            raise InvalidDataError(
                f"{exc}, found {' '.join(tokens[1:])}", file=path, location=f"line {number}"
            ) from None
        boxes.append({"name": names[int(tokens[0])], "x1": x1, "y1": y1, "x2": x2, "y2": y2})
    return boxes


def _read_split(
    split: _Split, image_root: Path, names: Sequence[str], writer: DatasetWriter, image_dir: Path | None
) -> None:
    """Pair each label file with its image, add the split's images that have none, write sorted records."""
    writer.declare_split(split.name)
    entries: dict[str, Path | None] = {}  # image path (relative to the image root) -> its label file
    for stem, label_file in sorted(_stems(split.labels, frozenset({".txt"})).items()):
        image = _find_image(image_root, split.prefixes, stem)
        if image is None:
            writer.problem(
                InvalidDataError(
                    f"no image for this label file: looked for {stem}.{{jpg,png,...}} under {image_root} "
                    f"(prefixes {', '.join(repr(p) for p in split.prefixes)}); pass --images DIR",
                    file=label_file,
                )
            )
        elif image in entries:
            writer.problem(
                InvalidDataError(f"image {image} already has the label file {entries[image]}", file=label_file)
            )
        else:
            entries[image] = label_file
    if image_dir is not None:
        # An image without a label file is an image without objects.
        for path in _stems(image_dir, _IMAGE_SUFFIXES).values():
            entries.setdefault(path.relative_to(image_root).as_posix(), None)
    for image, label in sorted(entries.items()):
        try:
            size = read_image_size(image_root / image)
            if size is None:
                raise InvalidDataError(
                    "the image size is needed to convert YOLO fractions, but the image header cannot be read",
                    file=image_root / image,
                )
            boxes = _parse_label_file(label, names, *size) if label is not None else []
        except AnnonormError as error:
            writer.problem(error)
            continue
        writer.add(split.name, make_record(image=image, width=size[0], height=size[1], boxes=boxes))


# ---------------------------------------------------------------------------------------------- writing


def _yaml_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a valid double-quoted YAML scalar


def _label_path(image: str) -> str:
    return PurePosixPath(image).with_suffix(".txt").as_posix()


def _place_image(source: Path, target: Path, mode: str, where: str) -> None:
    if not source.is_file():
        raise InvalidDataError(f"image {source} does not exist; cannot {mode} it", location=where)
    target.parent.mkdir(parents=True, exist_ok=True)
    if mode == "symlink":
        target.symlink_to(os.path.abspath(source))
    else:
        shutil.copyfile(source, target)


def _write_split(dataset: NormalizedSource, split: str, out: Path, ids: Mapping[str, int], images: str) -> None:
    split_file = dataset.split_path(split)
    label_root = out / "labels" / split
    label_root.mkdir(parents=True, exist_ok=True)
    written: set[str] = set()
    for index, record in enumerate(dataset.records(split)):
        where = f"{split_file.name} record {index + 1}"
        relative = _label_path(record["image"])
        if relative in written:
            raise InvalidDataError(
                f"two images of split {split!r} share the label file {relative}; YOLO pairs them by name",
                file=split_file,
                location=f"record {index + 1}",
            )
        written.add(relative)
        width, height = record.get("width") or 0, record.get("height") or 0
        boxes = record.get("boxes") or ()
        if boxes and not (width and height):
            raise InvalidDataError(
                "the image size is unknown; YOLO stores fractions of it",
                file=split_file,
                location=f"record {index + 1}",
            )
        lines = [box_to_yolo_line(class_id=ids[b["name"]], box=b, width=width, height=height) for b in boxes]
        target = label_root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8", newline="")
        if images != "none":
            _place_image(dataset.image_path(record["image"]), out / "images" / split / record["image"], images, where)


def _iter_names_yaml(names: Sequence[str], splits: Sequence[str]) -> Iterator[str]:
    yield "# Written by annonorm. Paths are relative to this file's directory.\n"
    yield "path: .\n"
    for split in splits:
        yield f"{split}: images/{split}\n"
    yield f"nc: {len(names)}\n"
    yield "names:\n"
    for index, name in enumerate(names):
        yield f"  {index}: {_yaml_string(name)}\n"


# ---------------------------------------------------------------------------------------------- the converter


class YoloConverter(Converter):
    """YOLO label folders (Darknet / Ultralytics / Roboflow layouts), both ways."""

    name = "yolo"
    summary = "YOLO txt labels (class cx cy w h, normalized) with classes.txt / obj.names / data.yaml"
    read_options = (
        Option("classes", "Class list (classes.txt, obj.names or data.yaml) when not in SOURCE", type=Path),
        Option("split", "The split of a flat images/ + labels/ tree; for split trees, read only this split"),
    )
    write_options = (
        Option(
            "images",
            "Put the images beside the labels: none (labels only), symlink or copy",
            default="none",
            choices=("none", "symlink", "copy"),
        ),
    )

    @classmethod
    def sniff(cls, source: Path) -> bool:
        """A ``data.yaml``, or a directory with ``labels/`` (or ``<split>/labels/``) and a class list."""
        if source.is_file():
            return source.name in YAML_FILES
        if not source.is_dir() or not _has_labels(source):
            return False
        return any((d / n).is_file() for d in (source, source / "labels") for n in (*CLASS_FILES, *YAML_FILES))

    def read(
        self, source: Path, writer: DatasetWriter, *, images: Path | None, options: Mapping[str, Any]
    ) -> ReadResult:
        """Read a YOLO tree (its directory or its ``data.yaml``) into ``writer``."""
        root = source.parent if source.is_file() else source
        classes = Path(options["classes"]) if options.get("classes") is not None else None
        if source.is_file() and classes is None:
            classes = source
        names, names_file = _load_names(root, classes)
        for index, name in enumerate(names):
            writer.category(name, source_id=index)
        writer.add_source_file(names_file)
        splits = _splits(root, options.get("split"))
        if not splits:
            raise ParseError(
                "no label folder: expected labels/<split>/*.txt, labels/*.txt or <split>/labels/*.txt", file=root
            )
        roboflow = not (root / "labels").is_dir()
        image_root = images if images is not None else (root if roboflow else root / "images")
        for split in splits:
            image_dir = next(
                (image_root / p for p in split.prefixes if p and (image_root / p).is_dir()),
                image_root if split.prefixes == ("",) else None,
            )
            _read_split(split, image_root, names, writer, image_dir)
        return ReadResult(name=root.resolve().name or "yolo", image_root=image_root)

    def write(self, dataset: NormalizedSource, out: Path, *, options: Mapping[str, Any]) -> None:
        """Write ``labels/<split>/``, ``classes.txt`` and ``data.yaml`` (and images when asked)."""
        names = dataset.manifest.category_names
        if any("\n" in n or "\r" in n or n != n.strip() for n in names):
            raise InvalidDataError(
                "a class name has a line break or surrounding spaces; classes.txt cannot hold it",
                file=dataset.root / "annonorm.json",
                location="categories",
            )
        ids = {name: index for index, name in enumerate(names)}
        splits = list(dataset.manifest.splits)
        for split in splits:
            _write_split(dataset, split, out, ids, options.get("images") or "none")
        (out / "classes.txt").write_text("".join(f"{n}\n" for n in names), encoding="utf-8", newline="")
        (out / "data.yaml").write_text("".join(_iter_names_yaml(names, splits)), encoding="utf-8", newline="")
