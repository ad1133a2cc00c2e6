"""YOLO (Darknet / Ultralytics) text labels: one ``.txt`` per image, one object per row, fractions of the image.

A row is a 0-based class index, then fractions (0..1) of the image side, x of the width, y of the height:

- detect ``class cx cy w h`` (centre and size); segment ``class x1 y1 x2 y2 x3 y3 ...`` (>= 3 points ->
  ``polygon``, the box its hull); OBB ``class x1 y1 ... x4 y4`` (4 corners in order -> ``obb``, the box its
  hull); pose ``class cx cy w h`` then ``kpt_shape`` [K, D] values per keypoint (``x y v``, or ``x y`` when D
  is 2: visible, unless ``0 0``, the unlabeled point); the categories get keypoint names ``"0"``..``"K-1"``
  and ``flip_idx`` is kept in the manifest's ``attributes``.
- The task is ``--task``, else ``pose`` when ``data.yaml`` has ``kpt_shape``, else taken from the first row
  that is not a box: 8 values -> obb (a 4-point polygon looks the same: pass ``--task segment``), else
  segment; a later polygon row that is not 4 corners is then an error that says so. Under ``--task detect``
  polygon and OBB rows give their hull only. A box row among polygon rows stays a box: Ultralytics would
  read it as a 2-point segment, which is no outline (ultralytics issue 14862); one row is one object.
- Values may leave 0..1 by 1% (Ultralytics' tolerance; CVAT writes OBB corners at y = -0.0098); every
  coordinate is then clipped to the image, as Ultralytics clips on load. CRLF and BOM files read alike.

An image's label is the image path with its last ``images/`` folder replaced by ``labels/`` and the suffix by
``.txt``, or the ``.txt`` beside it; an image without one has no objects. The size comes from the image header.
Layouts read (SOURCE is the dataset directory, its ``data.yaml`` or its ``obj.data``):

- ``images/<split>/`` + ``labels/<split>/``; flat ``images/`` + ``labels/`` (one split, ``--split``, default
  train); Datumaro's ``Images/`` + ``Annotations/``; Roboflow's ``<split>/images/`` + ``<split>/labels/``;
- an Ultralytics ``data.yaml`` (``path``, ``train``/``val``/``test``, each a folder, an image list ``.txt`` or
  an image, or a list of them; ``names`` a list or a mapping): the splits are its keys, unless it names the
  folders of a layout above, which is then read as such (its split names are the folders'). ``path`` is
  relative to the file (Ultralytics takes a relative one from its datasets folder: when it names no folder
  here, the file's folder is the root); a ``../x`` that does not exist is ``x`` (Roboflow's
  ``../valid/images``); a path leaving the root is refused. A data.yaml naming what is not on disk falls
  back to the folder layouts.
- Darknet (CVAT "YOLO 1.1", Datumaro): ``obj.data`` names ``obj.names`` and one image list per split;
  the lists' leading folders that are not on disk (``data/obj_train_data/1.jpg``) are dropped.

Roboflow's "YOLO OBB" export (``labelTxt/``: absolute corners and class names) is DOTA text, not Ultralytics
OBB, and is refused with that said. A folder with no layout or no label file is "no YOLO annotations here".
Inputs are opened only as regular files. ``--images DIR`` says where the images of a folder layout are.
Classes: ``--classes``, else the data.yaml or ``obj.data`` names, else ``data.yaml``/``classes.txt``/``obj.names``.

The writer produces what an Ultralytics trainer reads: ``labels/<split>/<path>.txt`` per image (empty without
boxes), ``classes.txt`` and a ``data.yaml`` with ``train:``/``val:`` always (val is train without a validation
split), ``test:``, ``names`` as a mapping, ``task:`` (read back by annonorm), ``kpt_shape`` and ``flip_idx``
for pose, no ``path:`` (see :func:`~annonorm.sources.classlists.data_yaml_text`). ``--task`` (default: pose when
categories have keypoints, else segment/obb when a box has a polygon/obb, else detect) picks the rows: segment writes a
box's polygon (several rings joined into one by zero-width bridges, as Ultralytics' COCO converter does),
else its obb, else its rectangle; obb its corners or its rectangle; pose all classes with one kpt_shape.
Fractions have 6 decimals. ``--images symlink|copy`` places the images. Attributes, masks, scores and
image-level labels have no place in YOLO and are not written; records need a known size.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from annonorm.converters.base import Capabilities, Converter, Option, ReadContext, ReadResult, make_record
from annonorm.errors import AnnonormError, InvalidDataError, ParseError
from annonorm.fsutil import require_regular_file
from annonorm.geometry import (
    corners_to_cxcywh,
    cxcywh_to_corners,
    fraction_points,
    normalize,
    obb_hull,
    polygon_hull,
    round_coord,
    scale,
)
from annonorm.images import read_image_size
from annonorm.io import DatasetWriter, NormalizedSource, read_text
from annonorm.sources.classlists import (
    class_list_file,
    data_yaml_fields,
    data_yaml_pose,
    data_yaml_text,
    find_class_list,
    read_class_list,
)
from annonorm.sources.images import list_dir, walk_files
from annonorm.sources.layouts import (
    existing_tail,
    files_by_image,
    listed_images,
    place_image,
    resolve_entry,
    swap_last_folder,
)
from annonorm.sources.layouts import key_value_entries as darknet_data_to_entries

__all__ = [
    "YoloConverter",
    "box_to_yolo_line",
    "box_to_yolo_row",
    "darknet_data_to_entries",
    "export_image_path",
    "row_kind",
    "yolo_line_to_box",
    "yolo_row_to_box",
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
#: Fractions are written with this many decimals.
DECIMALS = 6
#: A fraction may leave 0..1 by this much before it is an error: Ultralytics' own 1% tolerance (CVAT writes
#: OBB corners a hair outside the image, y = -0.0098).
FRACTION_SLACK = 0.01
#: The Ultralytics tasks that have label files, and what each row holds after the class index.
TASKS = ("detect", "segment", "obb", "pose")
NOT_YOLO = "no YOLO annotations here"
#: Split keys of an Ultralytics data.yaml, in the order their splits are written.
SPLIT_KEYS = ("train", "val", "test")
#: Roboflow's "YOLO OBB" export is DOTA text (absolute corners, the class by name) in labelTxt/ folders.
DOTA_HINT = (
    "; labelTxt/ folders hold DOTA text (absolute corners, class names): that is the DOTA format, "
    "not Ultralytics' normalized OBB rows"
)
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
    _check_fractions(values)
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


def _check_fractions(values: Sequence[float]) -> None:
    if any(not (-FRACTION_SLACK <= v <= 1 + FRACTION_SLACK) for v in values):
        raise ValueError("expected fractions of the image side in 0..1")


def row_kind(*, count: int, task: str | None, kpt_values: int | None = None) -> str | None:
    """What a label row of ``count`` numbers after the class index is under ``task`` (None: not decided yet):
    ``box``, ``polygon``, ``obb`` or ``pose``; None when the count fits no row of the task."""
    if task == "pose":
        return "pose" if kpt_values is not None and count == 4 + kpt_values else None
    if count == 4:
        return "box"
    if task == "obb":
        return "obb" if count == 8 else None
    return "polygon" if count >= 6 and count % 2 == 0 else None


def yolo_row_to_box(
    *, kind: str, values: Sequence[float], width: int, height: int, task: str | None = None, dims: int = 3
) -> dict[str, Any]:
    """The box fields (corners; ``polygon``, ``obb`` or ``keypoints``) of one label row's numbers after the
    class index. ``kind`` is :func:`row_kind`'s answer; ``dims`` the values per keypoint (``kpt_shape[1]``).
    Under ``task="detect"`` a polygon or oriented row keeps its hull only (as Ultralytics trains detect on it).

    Raises :class:`ValueError` when a coordinate is not a fraction in 0..1 or a visibility not 0, 1 or 2.
    """
    if kind in ("box", "pose"):
        tail = values[4:]
        _check_fractions([v for i, v in enumerate(tail) if i % dims < 2])
        x1, y1, x2, y2 = yolo_line_to_box(values=values[:4], width=width, height=height)
        box: dict[str, Any] = {"x1": x1, "y1": y1, "x2": x2, "y2": y2}
        if kind == "pose":
            box["keypoints"] = _keypoints(tail, dims, width, height)
        return box
    _check_fractions(values)
    points = fraction_points(values, width, height)
    x1, y1, x2, y2 = obb_hull(points) if kind == "obb" else polygon_hull([points])
    box = {"x1": x1, "y1": y1, "x2": x2, "y2": y2}
    if task != "detect":
        box[kind] = points if kind == "obb" else [points]
    return box


def _keypoints(values: Sequence[float], dims: int, width: int, height: int) -> list[list[float]]:
    """``x y [v]`` per keypoint -> ``[x, y, v]`` in pixels. Without a visibility (``kpt_shape [K, 2]``) a point
    is visible (2), unless it is ``0 0``: the "not labeled" of COCO, which Ultralytics' exporters write."""
    keypoints: list[list[float]] = []
    for start in range(0, len(values), dims):
        x, y = values[start], values[start + 1]
        visibility = values[start + 2] if dims == 3 else (0.0 if x == 0 and y == 0 else 2.0)
        if visibility not in (0.0, 1.0, 2.0):
            raise ValueError(f"expected a keypoint visibility 0, 1 or 2, found {visibility:g}")
        if visibility == 0:
            keypoints.append([0.0, 0.0, 0])  # the format's "not labeled" has no position
        else:
            px, py = fraction_points([x, y], width, height)
            keypoints.append([px, py, int(visibility)])
    return keypoints


# ------------------------------------------------------------------------------------ mapping annonorm -> yolo


def box_to_yolo_line(*, class_id: int, box: Mapping[str, Any], width: int, height: int) -> str:
    """One YOLO label line (``class cx cy w h`` as 6-decimal fractions) for an absolute-corner box."""
    x1, y1, x2, y2 = (float(box[k]) for k in ("x1", "y1", "x2", "y2"))
    # Centre and size, divided by the image side: x by the width, y by the height.
    cx, cy, w, h = normalize(*corners_to_cxcywh(x1, y1, x2, y2), width, height)
    x_units, w_units = _inside_units(cx, w)
    y_units, h_units = _inside_units(cy, h)
    return f"{class_id} " + " ".join(_fraction(units) for units in (x_units, y_units, w_units, h_units))


def box_to_yolo_row(
    *, task: str, class_id: int, box: Mapping[str, Any], width: int, height: int, keypoints: int = 0
) -> str:
    """One label row of ``task`` for a box: ``detect`` and ``pose`` (``keypoints`` points of ``x y v`` after
    the box; a box without keypoints gets ``0 0 0`` for each) from the corners, ``segment`` from the polygon
    (else the oriented box, else the rectangle), ``obb`` from the oriented box (else the rectangle)."""
    if task in ("detect", "pose"):
        line = box_to_yolo_line(class_id=class_id, box=box, width=width, height=height)
        if task == "detect":
            return line
        points = box.get("keypoints") or [[0.0, 0.0, 0]] * keypoints
        values = [
            _fraction_units(v, width if i % 2 == 0 else height) for x, y, _ in points for i, v in enumerate((x, y))
        ]
        cells = [f"{_fraction(values[2 * k])} {_fraction(values[2 * k + 1])} {int(p[2])}" for k, p in enumerate(points)]
        return " ".join([line, *cells])
    rectangle = [box["x1"], box["y1"], box["x2"], box["y1"], box["x2"], box["y2"], box["x1"], box["y2"]]
    if task == "segment":
        polygon = box.get("polygon")
        coords = _join_rings(polygon) if polygon else (box.get("obb") or rectangle)
    else:
        coords = box.get("obb") or rectangle
    units = (_fraction_units(float(v), width if i % 2 == 0 else height) for i, v in enumerate(coords))
    return f"{class_id} " + " ".join(_fraction(u) for u in units)


def _join_rings(rings: Sequence[Sequence[float]]) -> list[float]:
    """One YOLO polygon for several rings: each ring closed at its first point and the rings joined by
    zero-width bridges between their first points (walked out and back), so the filled area is their union.
    Ultralytics' own COCO converter joins the parts of an instance into one polygon for the same reason."""
    joined = [float(v) for v in rings[0]] + [float(rings[0][0]), float(rings[0][1])]
    for ring in rings[1:]:
        joined += [float(v) for v in ring] + [float(ring[0]), float(ring[1])]
    for ring in reversed(rings[1:-1]):
        joined += [float(ring[0]), float(ring[1])]
    return joined if len(rings) > 1 else [float(v) for v in rings[0]]


def _fraction_units(value: float, side: int) -> int:
    """A coordinate as a fraction of the image side in units of the last written decimal, inside 0..1."""
    one = 10**DECIMALS
    return min(max(round(round(value / side, DECIMALS) * one), 0), one)


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


@dataclass(frozen=True)
class _Split:
    """One split of a YOLO tree: its label directory (or Darknet list) and where its images may be."""

    name: str
    labels: Path
    #: Prefixes (relative to the image root, ending in "/" or empty) under which images are looked up.
    prefixes: tuple[str, ...] = ("",)
    #: A Darknet split list (one image path per line) instead of a label directory.
    listed: bool = False
    #: For a ``data.yaml`` split: its folders, image lists (``.txt``) and images (else ``(labels,)``).
    sources: tuple[Path, ...] = ()


@dataclass
class _Layout:
    root: Path
    image_root: Path
    splits: list[_Split]
    #: The class list the layout itself names (``names =`` of a Darknet ``obj.data``).
    names_file: Path | None = None
    #: Layout files (``obj.data``, split lists) whose hashes go into the manifest.
    files: list[Path] = field(default_factory=list)
    #: A ``data.yaml`` layout: images below ``images/`` are named without it (as the folder layouts name them).
    from_yaml: bool = False


def _darknet_layout(root: Path, config: Path, images: Path | None) -> _Layout:
    """Darknet / CVAT / Datumaro: ``obj.data`` naming ``obj.names`` and one image list per split."""
    try:
        entries = darknet_data_to_entries(text=read_text(config, "obj.data"))
    except ValueError as exc:
        raise ParseError(str(exc).partition(": ")[2], file=config, location=str(exc).partition(":")[0]) from None
    layout = _Layout(root, images if images is not None else root, [], files=[config])
    if "names" in entries:
        found = existing_tail(root, entries["names"][1])
        layout.names_file = root / found if found is not None else None
    for key, (number, value) in entries.items():
        if key in DARKNET_KEYS:
            continue
        found = existing_tail(root, value)
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


def _folder_layout(root: Path, images: Path | None, split_option: str | None) -> _Layout | None:
    """``labels/`` + ``images/`` (flat or split), ``Annotations/`` + ``Images/``, or ``<split>/labels``."""
    if (pair := _folder_pair(root)) is not None:
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
        return _Layout(root, images if images is not None else image_dir, splits)
    splits = [
        _Split(e.name, Path(e.path) / "labels", (f"{e.name}/images/", f"{e.name}/", ""))
        for e in list_dir(root)
        if e.is_dir() and (Path(e.path) / "labels").is_dir()
    ]
    return _Layout(root, images if images is not None else root, splits) if splits else None


def _yaml_layout(yaml_file: Path) -> _Layout | str | None:
    """The splits a ``data.yaml`` names (None: it names none; a string: why one names nothing on disk).

    Ultralytics' rules: ``path`` is the root (relative to the file's folder here; when it names no folder
    there, the file's folder: Ultralytics resolves a relative one against its own datasets folder); each of
    ``train``/``val``/``test`` is a folder, an image list ``.txt`` or an image, or a list of them, relative
    to the root; a ``../x`` that does not exist is tried as ``x`` (Roboflow writes ``../train/images``).
    """
    try:
        fields = data_yaml_fields(text=read_text(yaml_file, "data.yaml"))
    except ValueError as exc:
        raise ParseError(str(exc).partition(": ")[2], file=yaml_file, location=str(exc).partition(":")[0]) from None
    root = yaml_file.parent
    if isinstance(path := fields.get("path", (0, None))[1], str) and (root / path).is_dir():
        root = root / path
    layout = _Layout(root, root, [], files=[yaml_file], from_yaml=True)
    for key in SPLIT_KEYS:
        number, value = fields.get(key, (0, None))
        sources = []
        for text in [value] if isinstance(value, str) else value or []:
            found = resolve_entry(root, text, file=yaml_file, location=f"{key}, line {number}")
            if found is None:
                return f"{key}: {text!r} (line {number}) names nothing under {root}"
            sources.append(found)
        if sources:
            layout.splits.append(_Split(key, sources[0], listed=True, sources=tuple(sources)))
            layout.files += [p for p in sources if p.suffix == ".txt" and not p.is_dir()]
    return layout if layout.splits else None


def _find_layout(root: Path, images: Path | None, split_option: str | None, yaml_file: Path | None) -> _Layout:
    """Work out the layout (see the module docstring); a folder with none of them is not YOLO.

    A ``data.yaml`` whose splits are folders of a folder layout is read as that layout (its label files
    are the index: one without an image is reported); one naming image lists, images or other folders is
    read as Ultralytics reads it, image by image.
    """
    if os.path.lexists(root / DARKNET_DATA):
        layout = _darknet_layout(root, root / DARKNET_DATA, images)
    else:
        folders = _folder_layout(root, images, split_option)
        named = _yaml_layout(yaml_file) if yaml_file is not None else None
        if isinstance(named, _Layout) and folders is not None:
            image_dirs = {folders.image_root / p for s in folders.splits for p in s.prefixes}
            if all(p.is_dir() and p in image_dirs for s in named.splits for p in s.sources):
                named = None
        if isinstance(named, _Layout):
            layout = named
        elif folders is not None:
            layout = folders
        else:
            why = f"; data.yaml {named}" if isinstance(named, str) else ""
            hint = DOTA_HINT if any((Path(e.path) / "labelTxt").is_dir() for e in list_dir(root) if e.is_dir()) else ""
            raise ParseError(f"{NOT_YOLO}: no label folder ({EXPECTED_LAYOUT}){why}{hint}", file=root)
    flat = len(layout.splits) == 1 and layout.splits[0].prefixes == ("",) and not layout.splits[0].listed
    if split_option is not None and not flat:
        found = [s.name for s in layout.splits]
        layout.splits = [s for s in layout.splits if s.name == split_option]
        if not layout.splits:
            raise ParseError(f"no split {split_option!r} here; the splits are {', '.join(found) or 'none'}", file=root)
    return layout


def _yaml_task(yaml_file: Path | None) -> tuple[str | None, tuple[int, int, list[int] | None] | None]:
    """The ``task:`` annonorm writes into a ``data.yaml`` (None: not there), and its pose ``kpt_shape``/``flip_idx``."""
    if yaml_file is None:
        return None, None
    try:
        fields = data_yaml_fields(text=read_text(yaml_file, "data.yaml"))
        task = fields.get("task", (0, None))[1]
        return (task if task in TASKS else None), data_yaml_pose(fields)
    except ValueError as exc:
        raise ParseError(str(exc).partition(": ")[2], file=yaml_file, location=str(exc).partition(":")[0]) from None


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


@dataclass
class _Task:
    """The task the rows are read under: given (``--task``), ``pose`` from ``kpt_shape``, else taken from the
    first row that is not a box (8 values: ``obb``, else ``segment``) and held for the whole dataset."""

    name: str | None
    pose: tuple[int, int, list[int] | None] | None = None
    #: Where an undecided task was taken from (``file:line``), for the message when a later row disagrees.
    taken_at: str | None = None

    def expected(self) -> str:
        if self.name == "pose" and self.pose is not None:
            count, dims = self.pose[:2]
            return f"'class cx cy w h' and {count} keypoints of {dims} values (kpt_shape [{count}, {dims}])"
        if self.name == "obb":
            where = f", the task taken from {self.taken_at}; pass --task segment" if self.taken_at else ""
            return f"'class cx cy w h' or the 4 corners 'class x1 y1 x2 y2 x3 y3 x4 y4' (task obb{where})"
        return "'class cx cy w h' (or a polygon 'class x1 y1 x2 y2 x3 y3 ...')"


def _parse_label_file(path: Path, names: Sequence[str], width: int, height: int, task: _Task) -> list[dict[str, Any]]:
    """The boxes of one label file; raises :class:`ParseError`/:class:`InvalidDataError` naming the line."""
    text = read_text(path, "label file")
    boxes = []
    dims = task.pose[1] if task.pose is not None else 3
    kpt_values = task.pose[0] * dims if task.pose is not None else None
    for number, line in enumerate(text.splitlines(), start=1):
        tokens = line.split()  # CRLF files: the \r is whitespace
        if not tokens:
            continue
        kind = row_kind(count=len(tokens) - 1, task=task.name, kpt_values=kpt_values)
        if kind is None:
            raise ParseError(
                f"expected {task.expected()}, found {len(tokens)} values", file=path, location=f"line {number}"
            )
        if task.name is None and kind != "box":
            task.name, task.taken_at = ("obb" if len(tokens) == 9 else "segment"), f"{path}:line {number}"
            kind = "obb" if task.name == "obb" else kind
        elif task.name == "segment" and kind == "obb":
            kind = "polygon"
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
            box = yolo_row_to_box(kind=kind, values=values, width=width, height=height, task=task.name, dims=dims)
        except ValueError as exc:
            raise InvalidDataError(
                f"{exc}, found {' '.join(tokens[1:])}", file=path, location=f"line {number}"
            ) from None
        boxes.append({"name": names[int(tokens[0])], **box})
    return boxes


def _listed_entries(split: _Split, layout: _Layout, writer: DatasetWriter) -> dict[str, Path | None]:
    """Image path -> its label file, for a split listed image by image (a Darknet list, or the folders, lists
    and images of a ``data.yaml`` split): the label sits beside the image, or in the ``labels`` folder that
    replaces the path's last ``images`` folder (Ultralytics' rule); an image without one has no object."""
    entries: dict[str, Path | None] = {}
    for image in listed_images(split.sources or (split.labels,), layout.image_root, writer):
        beside, swapped = (
            PurePosixPath(image).with_suffix(".txt").as_posix(),
            swap_last_folder(image, "images", "labels", ".txt"),
        )
        candidates = [beside, *([swapped] if swapped is not None else [])]
        label = next(
            (base / c for c in candidates for base in (layout.root, layout.image_root) if os.path.lexists(base / c)),
            None,
        )
        entries.setdefault(image, label)
    return entries


def _add_records(
    split: str,
    entries: Mapping[str, Path | None],
    image_root: Path,
    names: Sequence[str],
    writer: DatasetWriter,
    task: _Task,
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
            boxes = _parse_label_file(label, names, *size, task) if label is not None else []
        except AnnonormError as error:
            if error.image is None:
                error.image = image
            writer.problem(error)
            continue
        writer.add(split, make_record(image=image, width=size[0], height=size[1], boxes=boxes))


def _split_entries(layout: _Layout, labels: Mapping[str, dict[str, Path]], writer: DatasetWriter) -> Iterator[Any]:
    """``(split, entries)`` per split. A ``data.yaml`` layout whose images all lie below ``images/`` takes that
    folder as its image root, so its records name images as the folder layouts do (``train/a.jpg``)."""
    if not layout.from_yaml:
        for split in layout.splits:
            writer.declare_split(split.name)
            if split.listed:
                yield split, _listed_entries(split, layout, writer)
            else:
                writer.expect(len(labels[split.name]))
                yield (
                    split,
                    files_by_image(labels[split.name], layout.image_root, split.prefixes, writer, skip=CLASS_FILES),
                )
        return
    for split in layout.splits:
        writer.declare_split(split.name)
    listed = [(split, _listed_entries(split, layout, writer)) for split in layout.splits]
    if all(image.startswith("images/") for _, entries in listed for image in entries):
        layout.image_root = layout.image_root / "images"
        listed = [(split, {image[7:]: label for image, label in entries.items()}) for split, entries in listed]
    yield from listed


def _read(source: Path, ctx: ReadContext) -> ReadResult:
    """Read a YOLO tree (its directory, its ``data.yaml`` or its ``obj.data``) into ``ctx.sink``."""
    writer, images, options = ctx.sink, ctx.images, ctx.options
    given_file = not source.is_dir()  # a data.yaml or obj.data (refused below unless a regular file)
    root = source.parent if given_file else source
    yaml_file = source if given_file and source.name != DARKNET_DATA else None
    if not given_file:
        yaml_file = next((root / n for n in YAML_FILES if (root / n).is_file()), None)
    layout = _find_layout(root, images, options.get("split"), yaml_file)
    listed = source if given_file and source.name != DARKNET_DATA else layout.names_file
    # Label files first: a tree without any is not YOLO (before "no class list" and per-image problems).
    labels = {s.name: _label_files(s.labels) for s in layout.splits if not s.listed}
    if labels and not any(labels.values()) and all(not s.listed for s in layout.splits):
        folders = ", ".join(str(s.labels) for s in layout.splits)
        raise ParseError(f"{NOT_YOLO}: no label file (*.txt) in {folders} ({EXPECTED_LAYOUT})", file=root)
    option = options.get("classes")
    names, names_file = _load_names(root, str(option) if option is not None else None, listed)
    yaml_task, pose = _yaml_task(yaml_file)
    task = _Task(options.get("task") or yaml_task, pose)
    if task.name is None and task.pose is not None:
        task.name = "pose"
    if task.name == "pose" and task.pose is None:
        raise ParseError("--task pose needs the kpt_shape of a data.yaml (kpt_shape: [K, 3])", file=root)
    keypoints = [str(k) for k in range(task.pose[0])] if task.name == "pose" and task.pose is not None else None
    for index, name in enumerate(names):
        writer.category(name, source_id=index, keypoints=keypoints)
    for path in [*([names_file] if names_file is not None else []), *layout.files]:
        writer.add_source_file(path)
    if yaml_file is not None and yaml_file not in (names_file, *layout.files):
        writer.add_source_file(yaml_file)  # kpt_shape, flip_idx
    for split, entries in _split_entries(layout, labels, writer):
        _add_records(split.name, entries, layout.image_root, names, writer, task)
    flip = task.pose[2] if task.name == "pose" and task.pose is not None else None
    attributes = {"flip_idx": flip} if flip is not None else None
    return ReadResult(name=root.resolve().name or "yolo", image_root=layout.image_root, attributes=attributes)


# ---------------------------------------------------------------------------------------------- writing


def _write_split(
    dataset: NormalizedSource, split: str, out: Path, ids: Mapping[str, int], images: str, task: str, keypoints: int
) -> None:
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
        lines = [
            box_to_yolo_row(task=task, class_id=ids[b["name"]], box=b, width=width, height=height, keypoints=keypoints)
            for b in boxes
        ]
        target = label_root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8", newline="")
        if images != "none":
            place_image(dataset.image_path(record["image"]), out / "images" / split / placed, images, where)


def _export_task(dataset: NormalizedSource, task: str | None) -> tuple[str, tuple[int, Any] | None]:
    """The task to write (see the ``task`` write option) and, for pose, the keypoint count and ``flip_idx``."""
    counts = dataset.manifest.keypoint_counts
    if task is None:
        task = "pose" if counts else "detect"
        found = (k for s in dataset.manifest.splits for r in dataset.records(s) for b in r["boxes"] for k in b)
        if task == "detect" and (key := next((k for k in found if k in ("polygon", "obb")), None)) is not None:
            task = "segment" if key == "polygon" else "obb"
    if task != "pose":
        return task, None
    if len(set(counts.values())) != 1:
        shown = ", ".join(f"{name} ({count})" for name, count in counts.items()) or "none"
        raise InvalidDataError(
            f"YOLO pose has one kpt_shape for every class; the categories with keypoints are {shown}",
            file=dataset.root / "annonorm.json",
            location="categories",
        )
    (count,) = set(counts.values())
    flip = (dataset.manifest.attributes or {}).get("flip_idx")
    valid = isinstance(flip, list) and sorted(v if isinstance(v, int) else -1 for v in flip) == list(range(count))
    return task, (count, flip if valid else None)


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
    task, pose = _export_task(dataset, options.get("task"))
    for split in splits:
        _write_split(dataset, split, out, ids, images, task, pose[0] if pose is not None else 0)
    (out / "classes.txt").write_text("".join(f"{n}\n" for n in names), encoding="utf-8", newline="")
    data_yaml = data_yaml_text(names=names, splits=splits, images_placed=images != "none", task=task, pose=pose)
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
        Option(
            "task",
            "What the rows hold: detect (boxes; polygon rows give their hull), segment, obb or pose; default: "
            "pose when data.yaml has kpt_shape, else taken from the first row that is not a box",
            choices=TASKS,
        ),
    )
    write_options = (
        Option(
            "images",
            "Put the images beside the labels: none (labels only), symlink or copy",
            default="none",
            choices=("none", "symlink", "copy"),
        ),
        Option(
            "task",
            "The rows to write: detect, segment (polygons), obb (4 corners) or pose (keypoints); default: pose "
            "when categories have keypoints, else segment or obb when boxes have polygons or oriented boxes",
            choices=TASKS,
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
