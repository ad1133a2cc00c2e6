"""YOLO (Darknet / Ultralytics) text labels: one ``.txt`` per image, ``class cx cy w h`` per line.

Darknet introduced the format; Ultralytics keeps it. Each image ``images/<split>/x.jpg`` has a label
file ``labels/<split>/x.txt`` (same relative path, ``images`` -> ``labels``, extension ``.txt``),
one object per line: a 0-based class index, then the box centre and size as fractions (0..1) of
the image width and height. An image without a label file, or with an empty one, has no object.
Class names live in ``classes.txt`` / ``obj.names`` (one per line, line k = class k) or in the
``names:`` of an Ultralytics ``data.yaml``. Converting the fractions to pixels needs the image
size, which the format does not store: it is read from each image file's header.

Layouts read (SOURCE is the dataset directory, its ``data.yaml`` or its ``obj.data``):

- ``images/<split>/`` + ``labels/<split>/`` (Ultralytics), each sub-directory of ``labels/`` a split;
- flat ``images/`` + ``labels/`` (label files directly in ``labels/``): one split, ``--split`` (train);
  Datumaro's ``Images/`` + ``Annotations/`` likewise;
- ``<split>/images/`` + ``<split>/labels/`` (Roboflow's YOLO export);
- Darknet (CVAT, Datumaro): ``obj.data`` (``key = value``) names the class list (``names``) and one
  image list per split (every key but ``classes``, ``names``, ``backup``, ``eval``, ``results``); a
  label file sits beside its image. Darknet resolves these paths against its own working directory,
  so they carry prefixes that are not on disk (``data/obj_train_data/1.jpg``): leading folders are
  dropped until the rest exists under SOURCE.

A folder with none of these layouts, or with no label file at all, is refused with "no YOLO
annotations here", never read as an empty dataset. Every input file (label files, class lists,
``obj.data`` and its lists) is opened only when it is a regular file: a FIFO or a link to
``/dev/zero`` named ``x.txt`` is refused by name; a folder that cannot be listed is an error.

``--images DIR`` says where the images are when they are not beside the labels; an image is looked
up as ``DIR/<split>/<path>``, ``DIR/<split>/images/<path>`` then ``DIR/<path>``, with any common
image extension. The classes come from ``--classes`` (a class list file or ``A,B,C``), else the
``data.yaml`` given as SOURCE or the ``names`` of ``obj.data``, else ``data.yaml``/``dataset.yaml``,
``classes.txt`` or ``obj.names`` in SOURCE or ``SOURCE/labels``. The ``data.yaml`` is read by a
small parser that understands only ``names:`` as a flow list (``[a, 'b c']``), a block list
(``- a``), or a block or flow mapping of indices (``0: a``); no PyYAML is needed. Its ``train:`` /
``val:`` paths are not followed: the layouts above are.

A label line with more than 5 numbers and an odd count is an Ultralytics segmentation polygon
(``class x1 y1 x2 y2 ...``): its box is the polygon's bounding box. Values must be fractions in
0..1 (as Ultralytics checks them); corners that a box centre and size put outside the image are
clipped to it, as Ultralytics does when it loads labels.

The writer produces what an Ultralytics trainer reads: ``labels/<split>/<path>.txt`` (an empty
file for an image without boxes) for the image ``images/<split>/<path>``, ``classes.txt``, and a
``data.yaml`` with ``train:`` and ``val:`` always (a dataset without a validation split names its
train split for both, and says so in a comment), ``test:`` when there is a test split, ``names`` as
a mapping ``{0: name, ...}``, and no ``path:`` (see :func:`_iter_data_yaml`). ``<path>`` is the
record's image path without a leading ``<split>/`` folder and without anything up to its last
``images/`` folder (:func:`export_image_path`). Fractions are written at 6 decimals. Images are not
copied unless ``--images symlink`` or ``--images copy``. YOLO has no place for image-level labels
without a box, counts beyond the boxes, attributes or masks: they are not written; records need a
known size.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from annonorm.converters.base import Capabilities, Converter, Option, ReadContext, ReadResult, make_record
from annonorm.errors import AnnonormError, InvalidDataError, ParseError
from annonorm.fsutil import require_regular_file
from annonorm.geometry import corners_to_cxcywh, cxcywh_to_corners, normalize, round_coord, scale
from annonorm.images import read_image_size
from annonorm.io import DatasetWriter, NormalizedSource, read_text
from annonorm.sources.classlists import class_list_file, find_class_list, read_class_list
from annonorm.sources.images import IMAGE_SUFFIXES, find_image, list_dir, walk_files

__all__ = [
    "YoloConverter",
    "box_to_yolo_line",
    "darknet_data_to_entries",
    "export_image_path",
    "yolo_line_to_box",
]

# ---------------------------------------------------------------------------------------------- constants

CLASS_FILES = ("classes.txt", "obj.names")
YAML_FILES = ("data.yaml", "dataset.yaml", "data.yml")
#: Darknet's dataset file (CVAT and Datumaro write it too): ``key = value`` lines naming the class list and split lists.
DARKNET_DATA = "obj.data"
#: ``obj.data`` keys that are not splits (Darknet's own); every other key names a split's image list.
DARKNET_KEYS = frozenset({"classes", "names", "backup", "eval", "results"})
#: A label folder and its image folder: Ultralytics' labels/ + images/; Datumaro's Annotations/ + Images/.
FOLDER_PAIRS = (("labels", "images"), ("Annotations", "Images"))
DEFAULT_SPLIT = "train"
#: Split names an Ultralytics ``val:`` key is written for, in order of preference.
VAL_SPLITS = ("val", "valid", "validation")
#: Fractions are written with this many decimals.
DECIMALS = 6
#: A fraction may leave 0..1 by this much (rounding in the exporting tool) before it is an error.
FRACTION_SLACK = 1e-6
NOT_YOLO = "no YOLO annotations here"
EXPECTED_LAYOUT = (
    "expected labels/<split>/*.txt, labels/*.txt, <split>/labels/*.txt or a Darknet obj.data with its image lists"
)

# ---------------------------------------------------------------------------------------------- sniff


def _has_labels(root: Path) -> bool:
    if (root / FOLDER_PAIRS[0][0]).is_dir() or (root / DARKNET_DATA).is_file():
        return True
    return any((Path(e.path) / "labels").is_dir() for e in list_dir(root) if e.is_dir())


def _sniff(source: Path) -> bool:
    """A ``data.yaml``; a directory with ``labels/`` (or ``<split>/labels/``) and a class list; ``obj.data``."""
    try:
        if source.is_file():
            return source.name in YAML_FILES
        if not source.is_dir() or not _has_labels(source):
            return False
        names = (*CLASS_FILES, *YAML_FILES, DARKNET_DATA)
        return any((d / n).is_file() for d in (source, source / "labels") for n in names)
    except (OSError, AnnonormError):
        return False


# ------------------------------------------------------------------------------------ mapping yolo -> annonorm


def yolo_line_to_box(*, values: Sequence[float], width: int, height: int) -> tuple[float, float, float, float]:
    """Absolute corners ``(x1, y1, x2, y2)`` of a YOLO line's numbers (after the class index).

    ``values`` is ``cx cy w h`` or a polygon ``x1 y1 x2 y2 ...``, fractions of the image side.
    Raises :class:`ValueError` when a value is not a fraction in 0..1.
    """
    if any(not (-FRACTION_SLACK <= v <= 1 + FRACTION_SLACK) for v in values):
        raise ValueError("expected fractions of the image side in 0..1")
    if len(values) == 4:
        cx, cy, w, h = values
        left, top, right, bottom = cxcywh_to_corners(cx, cy, w, h)  # centre and size
    else:
        xs, ys = values[0::2], values[1::2]  # segmentation polygon: its bounding box
        left, top, right, bottom = min(xs), min(ys), max(xs), max(ys)
    # Corners outside the image are clipped to it (Ultralytics does the same on load).
    left, right = min(max(left, 0.0), 1.0), min(max(right, 0.0), 1.0)
    top, bottom = min(max(top, 0.0), 1.0), min(max(bottom, 0.0), 1.0)
    # Fractions of the image side: x by the width, y by the height.
    x1, y1, x2, y2 = scale(left, top, right, bottom, width, height)
    return round_coord(x1), round_coord(y1), round_coord(x2), round_coord(y2)


def darknet_data_to_entries(*, text: str) -> dict[str, tuple[int, str]]:
    """The ``key = value`` entries of a Darknet ``obj.data`` (with their line numbers).

    Raises :class:`ValueError` naming the line when a line is not ``key = value``.
    """
    entries: dict[str, tuple[int, str]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        body = line.split("#", 1)[0].strip()
        if not body:
            continue
        key, sep, value = body.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"line {number}: expected 'key = value', found {body!r}")
        entries[key.strip()] = (number, value.strip())
    return entries


# ------------------------------------------------------------------------------------ mapping annonorm -> yolo


def box_to_yolo_line(*, class_id: int, box: Mapping[str, Any], width: int, height: int) -> str:
    """One YOLO label line (``class cx cy w h`` as 6-decimal fractions) for an absolute-corner box."""
    x1, y1, x2, y2 = (float(box[k]) for k in ("x1", "y1", "x2", "y2"))
    # Centre and size, divided by the image side: x by the width, y by the height.
    cx, cy, w, h = normalize(*corners_to_cxcywh(x1, y1, x2, y2), width, height)
    x_units, w_units = _inside_units(cx, w)
    y_units, h_units = _inside_units(cy, h)
    return f"{class_id} " + " ".join(_fraction(units) for units in (x_units, y_units, w_units, h_units))


def _inside_units(centre: float, size: float) -> tuple[int, int]:
    """Centre and size in units of the last written decimal, the centre moved by at most one unit so that
    the written box does not leave 0..1: rounding the two apart can put a box that touches the edge a
    hair outside it, which the reader clips, and the next write would then differ (not byte-stable)."""
    one = 10**DECIMALS
    # round(v, DECIMALS) first: the units are exactly the digits the plain rounding rule writes.
    centre_units, size_units = round(round(centre, DECIMALS) * one), round(round(size, DECIMALS) * one)
    centre_units = max(centre_units, -(-size_units // 2))  # centre - size/2 >= 0
    centre_units = min(centre_units, (2 * one - size_units) // 2)  # centre + size/2 <= 1
    return centre_units, size_units


def _fraction(units: int) -> str:
    """A fraction written with :data:`DECIMALS` decimals from its integer units (exact, no float rounding)."""
    sign = "-" if units < 0 else ""
    whole, rest = divmod(abs(units), 10**DECIMALS)
    return f"{sign}{whole}.{rest:0{DECIMALS}d}"


def _yaml_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a valid double-quoted YAML scalar


def export_image_path(*, image: str, split: str) -> str:
    """Where a record's image goes below ``images/<split>/`` (its label: the same path below ``labels/<split>/``).

    The record's path loses a leading ``<split>/`` folder (a YOLO or Roboflow tree read back keeps one,
    and ``images/train/train/...`` would follow) and everything up to its last ``images/`` folder:
    Ultralytics finds an image's label by replacing the last ``/images/`` of its path with ``/labels/``,
    so an ``images`` folder below ``images/<split>/`` would send it looking in the wrong place.
    """
    parts = list(PurePosixPath(image.replace("\\", "/")).parts)
    if len(parts) > 1 and parts[0] == split:
        parts = parts[1:]
    folders = parts[:-1]
    if "images" in folders:
        parts = parts[len(folders) - folders[::-1].index("images") :]
    return "/".join(parts)


def _label_path(image: str) -> str:
    return PurePosixPath(image).with_suffix(".txt").as_posix()


# ---------------------------------------------------------------------------------------------- layout


def _label_files(directory: Path) -> dict[str, Path]:
    """The label files under ``directory`` by relative path without suffix, of any kind (refused when read)."""
    return walk_files(directory, {".txt"}, any_kind=True, skip=CLASS_FILES)


def _folder_pair(root: Path) -> tuple[Path, Path] | None:
    """The label folder of ``root`` and its image folder (``labels/`` + ``images/``, ``Annotations/`` + ``Images/``)."""
    for labels, images in FOLDER_PAIRS:
        if (root / labels).is_dir():
            image_dir = next((root / n for n in (images, *(i for _, i in FOLDER_PAIRS)) if (root / n).is_dir()), None)
            return root / labels, image_dir or root / images
    return None


def _darknet_relative(root: Path, text: str) -> str | None:
    """A path written in a Darknet file, as a path below ``root`` that exists (None if none does).

    Darknet resolves these paths against its own working directory, so they usually carry a prefix
    that is not on disk (``data/obj_train_data/1.jpg``): leading folders are dropped until the rest
    exists below ``root``. A path climbing with ``..`` is never followed.
    """
    parts = [part for part in PurePosixPath(text.strip().replace("\\", "/")).parts if part not in ("/", ".")]
    if not parts or ".." in parts:
        return None
    for start in range(len(parts)):
        candidate = "/".join(parts[start:])
        if os.path.lexists(root / candidate):
            return candidate
    return None


@dataclass(frozen=True)
class _Split:
    """One split of a YOLO tree: its label directory (or Darknet list) and where its images may be."""

    name: str
    labels: Path
    #: Prefixes (relative to the image root, ending in "/" or empty) under which images are looked up.
    prefixes: tuple[str, ...] = ("",)
    #: A Darknet split list (one image path per line) instead of a label directory.
    listed: bool = False


@dataclass
class _Layout:
    root: Path
    image_root: Path
    splits: list[_Split]
    #: The class list the layout itself names (``names =`` of a Darknet ``obj.data``).
    names_file: Path | None = None
    #: Layout files (``obj.data``, split lists) whose hashes go into the manifest.
    files: list[Path] = field(default_factory=list)


def _darknet_layout(root: Path, config: Path, images: Path | None) -> _Layout:
    """Darknet / CVAT / Datumaro: ``obj.data`` naming ``obj.names`` and one image list per split."""
    try:
        entries = darknet_data_to_entries(text=read_text(config, "obj.data"))
    except ValueError as exc:
        raise ParseError(str(exc).partition(": ")[2], file=config, location=str(exc).partition(":")[0]) from None
    layout = _Layout(root, images if images is not None else root, [], files=[config])
    if "names" in entries:
        found = _darknet_relative(root, entries["names"][1])
        layout.names_file = root / found if found is not None else None
    for key, (number, value) in entries.items():
        if key in DARKNET_KEYS:
            continue
        found = _darknet_relative(root, value)
        if found is None:
            raise ParseError(
                f"split {key!r} names the image list {value!r}, which is not under {root}",
                file=config,
                location=f"line {number}",
            )
        layout.splits.append(_Split(key, root / found, listed=True))
        layout.files.append(root / found)
    if not layout.splits:
        raise ParseError(f"{NOT_YOLO}: obj.data names no split list (train = ..., valid = ...)", file=config)
    return layout


def _find_layout(root: Path, images: Path | None, split_option: str | None) -> _Layout:
    """Work out the layout (see the module docstring); a folder with none of them is not YOLO."""
    if os.path.lexists(root / DARKNET_DATA):
        layout = _darknet_layout(root, root / DARKNET_DATA, images)
    elif (pair := _folder_pair(root)) is not None:
        labels, image_dir = pair
        flat = any(e.name.endswith(".txt") and e.name not in CLASS_FILES and not e.is_dir() for e in list_dir(labels))
        if flat:
            splits = [_Split(split_option or DEFAULT_SPLIT, labels, ("",))]
        else:
            splits = [
                _Split(e.name, Path(e.path), (f"{e.name}/", f"{e.name}/images/", ""))
                for e in list_dir(labels)
                if e.is_dir()
            ]
        if not splits:
            raise ParseError(f"{NOT_YOLO}: no label file (*.txt) in {labels} ({EXPECTED_LAYOUT})", file=root)
        layout = _Layout(root, images if images is not None else image_dir, splits)
    else:
        splits = [
            _Split(e.name, Path(e.path) / "labels", (f"{e.name}/images/", f"{e.name}/", ""))
            for e in list_dir(root)
            if e.is_dir() and (Path(e.path) / "labels").is_dir()
        ]
        if not splits:
            raise ParseError(f"{NOT_YOLO}: no label folder ({EXPECTED_LAYOUT})", file=root)
        layout = _Layout(root, images if images is not None else root, splits)
    flat = len(layout.splits) == 1 and layout.splits[0].prefixes == ("",) and not layout.splits[0].listed
    if split_option is not None and not flat:
        found = [s.name for s in layout.splits]
        layout.splits = [s for s in layout.splits if s.name == split_option]
        if not layout.splits:
            raise ParseError(f"no split {split_option!r} here; the splits are {', '.join(found) or 'none'}", file=root)
    return layout


def _load_names(root: Path, option: str | None, first: Path | None) -> tuple[list[str], Path | None]:
    """The class names the label files' ids index, and the file they came from (None for ``A,B,C``).

    The source's own list wins: ``first`` (the ``data.yaml`` given as SOURCE, or the ``names`` of
    ``obj.data``), else the first of ``data.yaml``, ``classes.txt``, ``obj.names`` in SOURCE or
    ``SOURCE/labels``. Only a source without one takes ``--classes`` (a class list file or names
    ``A,B,C``) as that list: where the source has its list, ``--classes`` orders the categories
    (through the writer) and never renames the ids the label files were written with.
    """
    found = first if first is not None else find_class_list((root, root / "labels"), (*YAML_FILES, *CLASS_FILES))
    if found is not None:
        return class_list_file(found).names, found
    if option is not None:
        listed = read_class_list(option)
        return listed.names, listed.file
    raise ParseError(
        f"no class list: expected {', '.join(CLASS_FILES)} or data.yaml with names (or pass --classes)",
        file=root,
    )


def _source_files(source: Path, options: Mapping[str, Any]) -> list[Path]:
    """The label folders, the ``data.yaml``/``obj.data`` given, the class list unless ``--classes`` names one."""
    root = source.parent if source.is_file() else source
    found = [source] if source.is_file() else []
    if (root / "labels").is_dir():
        found.append(root / "labels")  # the class list may live in here too
    else:
        found += [d / "labels" for d in sorted(root.iterdir()) if (d / "labels").is_dir()]
    if options.get("classes") is None and not source.is_file():
        found += [root / n for n in (*YAML_FILES, *CLASS_FILES) if (root / n).is_file()][:1]
    return found


# ---------------------------------------------------------------------------------------------- reading


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


def _folder_entries(
    split: _Split, labels: Mapping[str, Path], image_root: Path, writer: DatasetWriter
) -> dict[str, Path | None]:
    """Image path (relative to the image root) -> its label file, for a split with a label folder.

    ``labels`` are the split's label files by relative path without suffix (:func:`_label_files`).
    """
    entries: dict[str, Path | None] = {}
    for stem, label_file in sorted(labels.items()):
        image = find_image(image_root, split.prefixes, stem)
        if image is None:
            writer.problem(
                InvalidDataError(
                    f"no image for this label file: looked for {stem}.{{jpg,png,...}} under {image_root} "
                    f"(prefixes {', '.join(repr(p) for p in split.prefixes)}); pass --images DIR",
                    file=label_file,
                    image=stem,
                )
            )
        elif image in entries:
            writer.problem(
                InvalidDataError(
                    f"image {image} already has the label file {entries[image]}", file=label_file, image=image
                )
            )
        else:
            entries[image] = label_file
    image_dir = next(
        (image_root / p for p in split.prefixes if p and (image_root / p).is_dir()),
        image_root if split.prefixes == ("",) else None,
    )
    if image_dir is not None:
        # An image without a label file is an image without objects.
        for path in walk_files(image_dir, IMAGE_SUFFIXES, any_kind=False, skip=CLASS_FILES).values():
            entries.setdefault(path.relative_to(image_root).as_posix(), None)
    return dict(sorted(entries.items()))


def _listed_entries(split: _Split, layout: _Layout, writer: DatasetWriter) -> dict[str, Path | None]:
    """Image path -> its label file, for a Darknet split list: the label sits beside the image (or in the
    ``labels`` folder that replaces the path's last ``images`` folder); an image without one has no object."""
    entries: dict[str, Path | None] = {}
    for number, line in enumerate(read_text(split.labels, "image list").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        image = _darknet_relative(layout.image_root, line)
        if image is None:
            writer.problem(
                InvalidDataError(
                    f"lists {line.strip()!r}, which is not an image under {layout.image_root}",
                    file=split.labels,
                    location=f"line {number}",
                    image=line.strip(),
                )
            )
            continue
        parts = list(PurePosixPath(image).with_suffix(".txt").parts)
        candidates = ["/".join(parts)]
        if "images" in parts[:-1]:
            last = len(parts) - 2 - parts[-2::-1].index("images")
            candidates.append("/".join([*parts[:last], "labels", *parts[last + 1 :]]))
        label = next(
            (base / c for c in candidates for base in (layout.root, layout.image_root) if os.path.lexists(base / c)),
            None,
        )
        entries.setdefault(image, label)
    return entries


def _add_records(
    split: str, entries: Mapping[str, Path | None], image_root: Path, names: Sequence[str], writer: DatasetWriter
) -> None:
    """One record per image, in ``entries`` order; a broken image goes to ``writer.problem`` naming it."""
    for image, label in entries.items():
        try:
            require_regular_file(image_root / image, "image")
            size = read_image_size(image_root / image)
            if size is None:
                raise InvalidDataError(
                    "the image size is needed to convert YOLO fractions, but the image header cannot be read",
                    file=image_root / image,
                )
            boxes = _parse_label_file(label, names, *size) if label is not None else []
        except AnnonormError as error:
            if error.image is None:
                error.image = image
            writer.problem(error)
            continue
        writer.add(split, make_record(image=image, width=size[0], height=size[1], boxes=boxes))


def _read(source: Path, ctx: ReadContext) -> ReadResult:
    """Read a YOLO tree (its directory, its ``data.yaml`` or its ``obj.data``) into ``ctx.sink``."""
    writer, images, options = ctx.sink, ctx.images, ctx.options
    given_file = not source.is_dir()  # a data.yaml or obj.data (refused below unless a regular file)
    root = source.parent if given_file else source
    layout = _find_layout(root, images, options.get("split"))
    listed = source if given_file and source.name != DARKNET_DATA else layout.names_file
    # Label files first: a tree without any is not YOLO (before "no class list" and per-image problems).
    labels = {s.name: _label_files(s.labels) for s in layout.splits if not s.listed}
    if labels and not any(labels.values()) and all(not s.listed for s in layout.splits):
        folders = ", ".join(str(s.labels) for s in layout.splits)
        raise ParseError(f"{NOT_YOLO}: no label file (*.txt) in {folders} ({EXPECTED_LAYOUT})", file=root)
    option = options.get("classes")
    names, names_file = _load_names(root, str(option) if option is not None else None, listed)
    for index, name in enumerate(names):
        writer.category(name, source_id=index)
    for path in [*([names_file] if names_file is not None else []), *layout.files]:
        writer.add_source_file(path)
    for split in layout.splits:
        writer.declare_split(split.name)
        if split.listed:
            entries = _listed_entries(split, layout, writer)
        else:
            writer.expect(len(labels[split.name]))
            entries = _folder_entries(split, labels[split.name], layout.image_root, writer)
        _add_records(split.name, entries, layout.image_root, names, writer)
    return ReadResult(name=root.resolve().name or "yolo", image_root=layout.image_root)


# ---------------------------------------------------------------------------------------------- writing


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
    written: dict[str, str] = {}
    for index, record in enumerate(dataset.records(split)):
        where = f"{split_file.name} record {index + 1}"
        placed = export_image_path(image=record["image"], split=split)
        relative = _label_path(placed)
        if relative in written:
            raise InvalidDataError(
                f"images {written[relative]!r} and {record['image']!r} of split {split!r} would share "
                f"labels/{split}/{relative}; YOLO pairs an image and its label file by name",
                file=split_file,
                location=f"record {index + 1}",
            )
        written[relative] = record["image"]
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
            _place_image(dataset.image_path(record["image"]), out / "images" / split / placed, images, where)


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


def _iter_data_yaml(names: Sequence[str], splits: Sequence[str], images_placed: bool) -> Iterator[str]:
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
    yield f"nc: {len(names)}\n"
    yield "names:\n"
    for index, name in enumerate(names):
        yield f"  {index}: {_yaml_string(name)}\n"


def _write(dataset: NormalizedSource, out: Path, options: Mapping[str, Any]) -> None:
    """Write ``labels/<split>/``, ``classes.txt`` and an Ultralytics ``data.yaml`` (and images when asked)."""
    names = dataset.manifest.category_names
    if any("\n" in n or "\r" in n or n != n.strip() for n in names):
        raise InvalidDataError(
            "a class name has a line break or surrounding spaces; classes.txt cannot hold it",
            file=dataset.root / "annonorm.json",
            location="categories",
        )
    ids = {name: index for index, name in enumerate(names)}
    splits = list(dataset.manifest.splits)
    images = options.get("images") or "none"
    for split in splits:
        _write_split(dataset, split, out, ids, images)
    (out / "classes.txt").write_text("".join(f"{n}\n" for n in names), encoding="utf-8", newline="")
    data_yaml = "".join(_iter_data_yaml(names, splits, images != "none"))
    (out / "data.yaml").write_text(data_yaml, encoding="utf-8", newline="")


# ---------------------------------------------------------------------------------------------- the converter


class YoloConverter(Converter):
    """YOLO label folders (Darknet / Ultralytics / Roboflow layouts), both ways."""

    name = "yolo"
    summary = "YOLO txt labels (class cx cy w h, normalized) with classes.txt / obj.names / data.yaml / obj.data"
    read_options = (
        Option(
            "classes",
            "The classes and their order (a classes.txt, obj.names or data.yaml file, or names A,B,C); the label "
            "files' indices index SOURCE's own list when it has one, else this one",
        ),
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
    capabilities = Capabilities(fraction_decimals=DECIMALS, needs_image_files=True, category_order=True)

    @classmethod
    def sniff(cls, source: Path) -> bool:
        return _sniff(source)

    @classmethod
    def source_files(cls, source: Path, options: Mapping[str, Any]) -> list[Path]:
        return _source_files(source, options)

    def read(self, source: Path, ctx: ReadContext) -> ReadResult:
        return _read(source, ctx)

    def write(self, dataset: NormalizedSource, out: Path, *, options: Mapping[str, Any]) -> None:
        _write(dataset, out, options)
