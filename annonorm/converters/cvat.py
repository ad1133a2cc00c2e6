"""CVAT XML 1.1: "CVAT for images" exports (read and written) and "CVAT for video" exports (read).

CVAT (cvat.ai) exports ``annotations.xml``, rooted at ``<annotations>``: ``<version>1.1</version>``, a
``<meta>`` with a ``<task>`` (task export) or a ``<project>`` with ``<tasks>`` (project export; images in
``images/<subset>/``, ids restarting per subset) and the ``<labels>`` (``<name>``, ``<attributes>`` with an
``input_type``: checkbox, radio, select, number, text), then the annotations, in absolute float pixels.
For images, ``<image id name width height [subset]>`` holds ``<box xtl ytl xbr ybr [rotation]>``
(degrees clockwise about the centre), ``<polygon|polyline|points points="x1,y1;x2,y2;...">``, ``<mask rle
left top width height>`` (run lengths, background first, row by row over the window) and ``<tag>``; each
with ``label``, ``occluded``, ``z_order``, ``group_id``, ``source`` and ``<attribute name>`` children. For
video, ``<track id label>`` holds keyframe shapes (``frame``, ``outside``, ``keyframe``) over the frames
``start_frame..stop_frame`` (``frame_filter`` ``step=N``), named ``frame_<6 digits>``, sized by ``<original_size>``.

Mapping: split = the image's ``subset``, else the task's, else ``--split``, else the XML file's stem
(``annotations``: ``default``). box -> corners; a rotated box -> ``obb`` (corners from the top-left,
clockwise; the box its hull) and attribute ``rotation``; polygon -> ``polygon``; polyline -> its hull and
attribute ``polyline``; points -> ``keypoints`` (``v`` = 2; the label's keypoints are named ``1..K`` for the
most points a shape of it has, shorter shapes padded with ``v`` = 0); mask -> a COCO ``rle`` with the window
as box; tag -> ``labels`` (after the boxed classes; its attributes in record ``attributes.tags``).
``occluded`` (if 1), ``z_order``/``group_id`` (if not 0), ``source`` and the ``<attribute>`` values (checkbox
-> bool, number -> int or float, else text) -> box ``attributes``. Coordinates below 0 are clipped to 0; an
empty ``label`` is the class ``--unlabeled``. A track gives a box per frame where it is visible, with
``track_id`` (``keyframe`` on keyframes): boxes and same-length point lists move linearly between keyframes,
as CVAT interpolates; an ``outside`` keyframe hides the track until the next; after the last keyframe a
visible track holds. Every frame of the task gets a record, but when the image folder holds ``frame_*``
files only those with an image or a visible shape. The XML is streamed, defused (no entity, no external
reference), each ``<image>``/``<track>`` dropped once read; a prescan learns keypoint counts and image counts.

The writer writes one ``<split>.xml`` task file per split (``<subset>`` = split; labels and attributes in
``<meta>``, ``input_type`` from the values: bools checkbox, numbers number, else text; image ids kept when a
split's ids are distinct non-negative integers). A box is a polygon per ring, else a mask (over its box when
that holds the mask), else a rotated box for an ``obb`` that is a rectangle (else a 4-point polygon), else its
visible keypoints as points, else its ``polyline``, else a box; labels without a box are tags. Scores are not
written. A rotated box comes back within 1e-6 px (CVAT stores centre, sides and angle, not corners).
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from annonorm import paths
from annonorm.converters.base import Capabilities, Converter, Option, ReadContext, ReadResult, make_record
from annonorm.errors import AnnonormError, InvalidDataError, ParseError, UnsafePathError
from annonorm.geometry import obb_hull, polygon_hull, round_coord
from annonorm.images import read_image_size
from annonorm.io import DatasetWriter, NormalizedSource
from annonorm.sources.images import images_by_stem, list_dir
from annonorm.sources.xml import iter_elements, root_tag

__all__ = [
    "CvatConverter",
    "Keyframe",
    "attribute_value",
    "box_to_cvat_shapes",
    "cvat_box_to_box",
    "cvat_mask_to_box",
    "cvat_points",
    "cvat_points_to_box",
    "frame_numbers",
    "interpolate_track",
    "obb_to_cvat_box",
    "rle_to_cvat_mask",
]

# ---------------------------------------------------------------------------------------------- constants

ROOT = "annotations"
VERSION = "1.1"
DEFAULT_SPLIT = "default"
#: The file name CVAT gives its export; as a split name it means "no subset".
EXPORT_STEM = "annotations"
UNLABELED = "unlabeled"
CVAT_CORNERS = ("xtl", "ytl", "xbr", "ybr")
CORNERS = ("x1", "y1", "x2", "y2")
SHAPES = ("box", "polygon", "polyline", "points", "mask")
#: Box attributes that are XML attributes of a shape (or its kind), not ``<attribute>`` children.
XML_ATTRIBUTES = ("occluded", "z_order", "group_id", "source")
RESERVED = frozenset({*XML_ATTRIBUTES, "polyline", "rotation", "track_id", "keyframe"})
#: Fewest points per shape kind.
MIN_POINTS = {"polygon": 3, "polyline": 2, "points": 1}
FRAME_NAME = "frame_{:06d}"
WHAT = "CVAT XML"
PURPOSE = "CVAT annotations"
_SPLIT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_INT = re.compile(r"-?[0-9]+")
#: How far (pixels) an ``obb`` may be from a rectangle to be written as a rotated box (its corners are rounded).
RECTANGLE_TOLERANCE = 1e-4
#: Decimals of a rotated box's corners and angle as written.
ROTATED_DECIMALS = 10
#: The largest mask window read (pixels): a short ``rle`` text can claim a window of any size.
MAX_MASK_PIXELS = 25_000_000
#: The most frames a video task may have.
MAX_FRAMES = 10_000_000

# ---------------------------------------------------------------------------------------------- sniff


def _sniff(source: Path) -> bool:
    """An ``.xml`` file rooted at ``<annotations>``, or a folder holding one."""
    try:
        return all(path.suffix.lower() == ".xml" and root_tag(path, WHAT) == ROOT for path in _xml_files(source))
    except (OSError, AnnonormError):
        return False


# ------------------------------------------------------------------------------------ mapping cvat -> annonorm


def cvat_points(*, text: str) -> list[float]:
    """``"x1,y1;x2,y2;..."`` as the flat list ``[x1, y1, x2, y2, ...]``; :class:`ValueError` when malformed."""
    flat: list[float] = []
    for pair in text.strip().split(";"):
        parts = pair.split(",")
        if len(parts) != 2:
            raise ValueError(f"expected 'x,y' pairs separated by ';', found {pair!r}")
        for part in parts:
            flat.append(_finite(part))
    return flat


def _pixel(value: float) -> float:
    """A coordinate rounded, and clipped at 0: CVAT lets shapes leave the image, annonorm holds no negative pixel."""
    return round_coord(max(value, 0.0))


def _finite(text: str) -> float:
    value = float(text)  # ValueError for text that is no number
    if not math.isfinite(value):
        raise ValueError(f"expected a finite number, found {text!r}")
    return value


def _turned(xtl: float, ytl: float, xbr: float, ybr: float, rotation: float) -> list[float]:
    """The corners of a box turned ``rotation`` degrees clockwise (y down) about its centre, from its top-left."""
    cx, cy = (xtl + xbr) / 2, (ytl + ybr) / 2
    cos, sin = math.cos(math.radians(rotation)), math.sin(math.radians(rotation))
    corners: list[float] = []
    for x, y in ((xtl, ytl), (xbr, ytl), (xbr, ybr), (xtl, ybr)):
        corners += [cx + (x - cx) * cos - (y - cy) * sin, cy + (x - cx) * sin + (y - cy) * cos]
    return corners


def cvat_box_to_box(*, xtl: float, ytl: float, xbr: float, ybr: float, rotation: float = 0.0) -> dict[str, Any]:
    """The corners of a CVAT box; a rotated one (degrees clockwise about its centre) adds its ``obb``."""
    if xbr < xtl or ybr < ytl:
        raise ValueError(f"expected xtl <= xbr and ytl <= ybr, found {xtl:g}, {ytl:g}, {xbr:g}, {ybr:g}")
    if rotation % 360 == 0 or (xtl == xbr and ytl == ybr):  # a point turns into itself
        return dict(zip(CORNERS, (_pixel(xtl), _pixel(ytl), _pixel(xbr), _pixel(ybr)), strict=True))
    corners = [_pixel(v) for v in _turned(xtl, ytl, xbr, ybr, rotation)]
    x1, y1, x2, y2 = obb_hull(corners)
    return {"x1": x1, "y1": y1, "x2": x2, "y2": y2, "obb": corners, "attributes": {"rotation": rotation}}


def cvat_points_to_box(*, kind: str, points: Sequence[float], keypoints: int = 0) -> dict[str, Any]:
    """The box of a polygon, polyline or points shape (flat points): its hull and its geometry field.

    ``keypoints`` is the label's number of keypoints (a points shape is padded to it with ``v`` = 0).
    """
    count = len(points) // 2
    if count < MIN_POINTS[kind]:
        raise ValueError(f"a {kind} needs at least {MIN_POINTS[kind]} points, found {count}")
    flat = [_pixel(v) for v in points]
    x1, y1, x2, y2 = polygon_hull([flat])
    box: dict[str, Any] = {"x1": x1, "y1": y1, "x2": x2, "y2": y2}
    if kind == "polygon":
        box["polygon"] = [flat]
    elif kind == "points":
        box["keypoints"] = [[flat[i], flat[i + 1], 2] for i in range(0, len(flat), 2)]
        box["keypoints"] += [[0.0, 0.0, 0]] * (keypoints - count)
    else:
        box["attributes"] = {"polyline": flat}
    return box


def cvat_mask_to_box(
    *, rle: Sequence[int], left: int, top: int, width: int, height: int, image_width: int, image_height: int
) -> dict[str, Any]:
    """A CVAT mask (runs over the window, background first, row by row) as its window box and a COCO ``rle``."""
    from pycocotools import mask as mask_utils

    if width < 1 or height < 1 or left < 0 or top < 0 or left + width > image_width or top + height > image_height:
        raise ValueError(
            f"the mask window {left},{top} {width}x{height} is not inside the {image_width}x{image_height} image"
        )
    if width * height > MAX_MASK_PIXELS:
        raise ValueError(f"the mask window of {width} x {height} pixels is larger than {MAX_MASK_PIXELS}; refused")
    if any(run < 0 for run in rle) or sum(rle) != width * height:
        raise ValueError(f"the runs cover {sum(rle)} pixels; expected {width} x {height} = {width * height}")
    values = np.zeros(len(rle), dtype=bool)
    values[1::2] = True
    window = np.repeat(values, np.asarray(rle, dtype=np.int64)).reshape(height, width)
    # The image's pixels in COCO's column-major order, never the whole image: its runs from the window's.
    columns, rows = np.nonzero(window.T)
    linear = (left + columns) * image_height + top + rows
    edges = np.zeros(0, dtype=np.int64)
    if len(linear):
        breaks = np.flatnonzero(np.diff(linear) != 1) + 1
        edges = np.column_stack([linear[np.r_[0, breaks]], linear[np.r_[breaks - 1, len(linear) - 1]] + 1])
    runs = np.diff(np.r_[0, edges.reshape(-1), image_width * image_height]).tolist()
    if runs[-1] == 0 and len(runs) > 1:
        runs.pop()  # pycocotools ends with the last run it saw, never an empty one
    counts = mask_utils.frPyObjects({"size": [image_height, image_width], "counts": runs}, image_height, image_width)
    counts = counts["counts"].decode("ascii")
    box = {"x1": float(left), "y1": float(top), "x2": float(left + width), "y2": float(top + height)}
    return {**box, "rle": {"size": [image_height, image_width], "counts": counts}}


def attribute_value(*, text: str | None, input_type: str | None) -> Any:
    """An ``<attribute>``'s text typed by its label's ``input_type``; :class:`ValueError` when it does not fit."""
    value = text or ""
    if input_type == "checkbox":
        if value.strip().lower() not in ("true", "false"):
            raise ValueError(f"expected true or false (checkbox), found {value!r}")
        return value.strip().lower() == "true"
    if input_type == "number":
        stripped = value.strip()
        if _INT.fullmatch(stripped):
            return int(stripped)
        try:
            return _finite(stripped)
        except ValueError:
            raise ValueError(f"expected a finite number, found {value!r}") from None
    return value


def frame_numbers(*, start: int, stop: int, frame_filter: str | None) -> list[int]:
    """The frame numbers of a video task: ``start..stop`` every ``step=N`` of ``frame_filter``."""
    match = re.fullmatch(r"\s*(step\s*=\s*([0-9]+))?\s*", frame_filter or "")
    step = max(int(match.group(2) or 1), 1) if match else 0
    if not step:
        raise ValueError(f"expected a frame_filter 'step=N', found {frame_filter!r}")
    if stop < start or (stop - start) // step >= MAX_FRAMES:
        raise ValueError(f"expected start_frame <= stop_frame, at most {MAX_FRAMES} frames, found {start}..{stop}")
    return list(range(start, stop + 1, step))


@dataclass
class Keyframe:
    """One keyframe shape of a track (or, from :func:`interpolate_track`, its shape on one frame)."""

    frame: int
    kind: str
    #: box: ``[xtl, ytl, xbr, ybr, rotation]``; the others: flat points.
    values: list[float]
    outside: bool = False
    keyframe: bool = True
    attributes: dict[str, Any] = field(default_factory=dict)


def interpolate_track(*, keys: Sequence[Keyframe], frames: Sequence[int]) -> dict[int, Keyframe]:
    """The track's shape on each of ``frames`` where it is visible, as CVAT interpolates it.

    ``keys`` are the keyframes in frame order. On a frame between two keyframes a box (corners and
    rotation) or a point list of the next one's length moves linearly; other shapes hold. A keyframe
    with ``outside`` hides the track until the next one; after the last one a visible track holds.
    """
    shown: dict[int, Keyframe] = {}
    position = 0
    for frame in frames:
        while position + 1 < len(keys) and keys[position + 1].frame <= frame:
            position += 1
        previous = keys[position] if keys and keys[position].frame <= frame else None
        if previous is None or previous.outside:
            continue
        following = keys[position + 1] if position + 1 < len(keys) else None
        if previous.frame == frame or following is None or len(following.values) != len(previous.values):
            values = previous.values
        else:
            t = (frame - previous.frame) / (following.frame - previous.frame)
            values = [a + (b - a) * t for a, b in zip(previous.values, following.values, strict=True)]
        keyframe = previous.frame == frame
        shown[frame] = Keyframe(frame, previous.kind, values, keyframe=keyframe, attributes=previous.attributes)
    return shown


# ------------------------------------------------------------------------------------ mapping annonorm -> cvat


def obb_to_cvat_box(
    *, obb: Sequence[float], rotation: float | None = None
) -> tuple[float, float, float, float, float] | None:
    """``(xtl, ytl, xbr, ybr, rotation)`` of an oriented box that is a rectangle listed from its top-left
    clockwise (what :func:`cvat_box_to_box` makes), at the angle ``rotation`` when that one describes it (the
    source's 30 rather than 29.99991 from rounded corners), else at its first side's; ``None`` for any other
    quadrilateral (within :data:`RECTANGLE_TOLERANCE`)."""
    x0, y0, x1, y1, x2, y2, x3, y3 = (float(v) for v in obb)
    cx, cy = (x0 + x1 + x2 + x3) / 4, (y0 + y1 + y2 + y3) / 4
    # The angle of the longer side (the shorter one's, a quarter turn back, is less sure after rounding).
    wide = math.hypot(x1 - x0, y1 - y0) >= math.hypot(x2 - x1, y2 - y1)
    side = math.atan2(y1 - y0, x1 - x0) if wide else math.atan2(y2 - y1, x2 - x1) - math.pi / 2
    for angle in ([] if rotation is None else [rotation]) + [math.degrees(side) % 360]:
        cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        width = (x1 - x0) * cos + (y1 - y0) * sin  # the sides along the turned axes
        height = -(x2 - x1) * sin + (y2 - y1) * cos
        box = (cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2, angle)
        error = max(abs(a - b) for a, b in zip(_turned(*box), obb, strict=True))
        if width >= 0 and height >= 0 and error <= RECTANGLE_TOLERANCE:
            return box
    return None


def rle_to_cvat_mask(*, rle: Mapping[str, Any], box: Sequence[float] = ()) -> dict[str, Any] | None:
    """A COCO ``rle`` as CVAT mask fields (``rle``, ``left``, ``top``, ``width``, ``height``) over the window of
    ``box`` (corners) where they are whole pixels holding every pixel of the mask (what the reader gives), else
    over the tight window of its pixels; ``None`` for an empty mask without such a box."""
    from pycocotools import mask as mask_utils

    pixels = mask_utils.decode({"size": list(rle["size"]), "counts": rle["counts"].encode("ascii")})
    rows, columns = np.nonzero(pixels)
    whole = len(box) == 4 and all(float(v).is_integer() for v in box)
    left, top, right, bottom = (int(v) for v in box) if whole else (0, 0, 0, 0)
    if not (0 <= left < right <= pixels.shape[1] and 0 <= top < bottom <= pixels.shape[0]) or (
        len(rows) and (rows.min() < top or rows.max() >= bottom or columns.min() < left or columns.max() >= right)
    ):
        if not len(rows):
            return None
        top, left, bottom, right = int(rows.min()), int(columns.min()), int(rows.max()) + 1, int(columns.max()) + 1
    window = pixels[top:bottom, left:right].reshape(-1)
    runs = np.diff(np.r_[0, np.flatnonzero(np.diff(window)) + 1, len(window)]).tolist()
    if window[0]:
        runs = [0, *runs]  # CVAT's runs start with the background
    window_fields = {"left": left, "top": top, "width": right - left, "height": bottom - top}
    return {"rle": ", ".join(str(r) for r in runs), **window_fields}


def _number_text(value: float, decimals: int = 6) -> str:
    """A coordinate as the shortest text of its ``decimals`` decimals (``12.5``, ``0``)."""
    text = f"{round(float(value), decimals) + 0.0:.{decimals}f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _points_text(flat: Sequence[float]) -> str:
    return ";".join(f"{_number_text(flat[i])},{_number_text(flat[i + 1])}" for i in range(0, len(flat), 2))


def _value_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def box_to_cvat_shapes(*, box: Mapping[str, Any]) -> list[tuple[str, dict[str, str]]]:
    """The CVAT shapes (tag, geometry XML attributes) that hold one annonorm box: one polygon per ring of a
    polygon, else a mask, else a (rotated) box or 4-point polygon for an ``obb``, else the visible keypoints
    as points, else the ``polyline`` attribute as a polyline, else a box."""
    if box.get("polygon"):
        return [("polygon", {"points": _points_text(ring)}) for ring in box["polygon"]]
    corners = [box[k] for k in CORNERS]
    if box.get("rle") and (mask := rle_to_cvat_mask(rle=box["rle"], box=corners)) is not None:
        return [("mask", {k: str(v) for k, v in mask.items()})]
    if box.get("obb"):
        given = (box.get("attributes") or {}).get("rotation")
        given = float(given) if isinstance(given, (int, float)) and math.isfinite(given) else None
        fitted = obb_to_cvat_box(obb=box["obb"], rotation=given)
        if fitted is None:
            return [("polygon", {"points": _points_text(box["obb"])})]
        # 10 decimals: the corners the reader computes from them round back to the same 6 decimals.
        fields = zip((*CVAT_CORNERS, "rotation"), fitted, strict=True)
        return [("box", {k: _number_text(v, ROTATED_DECIMALS) for k, v in fields})]
    visible = [p for p in box.get("keypoints") or () if p[2] > 0]
    if visible:
        return [("points", {"points": _points_text([v for x, y, _ in visible for v in (x, y)])})]
    polyline = (box.get("attributes") or {}).get("polyline")
    if isinstance(polyline, list) and len(polyline) >= 4 and len(polyline) % 2 == 0:
        return [("polyline", {"points": _points_text(polyline)})]
    return [("box", {k: _number_text(box[c]) for k, c in zip(CVAT_CORNERS, CORNERS, strict=True)})]


def input_type(kinds: Iterable[type]) -> str:
    """The ``input_type`` an attribute is declared with for the types of the values the boxes give it."""
    kinds = set(kinds)
    if kinds == {bool}:
        return "checkbox"
    if kinds and kinds <= {int, float}:
        return "number"
    return "text"


# ---------------------------------------------------------------------------------------------- layout


def _xml_files(source: Path) -> list[Path]:
    """The CVAT XML files of ``source``: the file itself, or the folder's ``*.xml`` rooted at ``<annotations>``."""
    if not source.is_dir():
        return [source]
    found = [Path(e.path) for e in list_dir(source) if e.name.lower().endswith(".xml") and not e.is_dir()]
    found = [path for path in found if root_tag(path, WHAT) == ROOT]
    if not found:
        raise ParseError(f"no CVAT XML here: expected annotations.xml or *.xml rooted at <{ROOT}>", file=source)
    return found


def _image_root(source: Path, images: Path | None) -> Path:
    """``--images``, else ``images/`` beside the XML (CVAT's export layout), else the XML's folder."""
    root = source if source.is_dir() else source.parent
    return images if images is not None else root / "images" if (root / "images").is_dir() else root


# ---------------------------------------------------------------------------------------------- reading


@dataclass
class _Meta:
    """What a file's ``<meta>`` says: labels (name -> attribute -> input_type), subset, frames, size."""

    labels: dict[str, dict[str, str]] = field(default_factory=dict)
    project: bool = False
    subset: str | None = None
    frames: list[int] | None = None
    size: tuple[int, int] | None = None
    #: Learnt by the prescan: the most points a ``points`` shape of a label has, and the number of images.
    points: dict[str, int] = field(default_factory=dict)
    images: int = 0


def _meta(element: ET.Element, file: Path) -> _Meta:
    meta = _Meta(project=element.find("project") is not None)
    for label in element.iter("label"):
        name = label.findtext("name") or ""
        if not name.strip():
            raise InvalidDataError("a <label> has no <name>; expected a class name", file=file, location="meta/labels")
        specs = label.iter("attribute")
        meta.labels[name] = {a.findtext("name") or "": (a.findtext("input_type") or "text").strip() for a in specs}
    task = element.find("task")
    if task is not None:
        meta.subset = (task.findtext("subset") or "").strip() or None
        start, stop = task.findtext("start_frame"), task.findtext("stop_frame")
        try:
            if task.findtext("mode") == "interpolation" and start is not None and stop is not None:
                meta.frames = frame_numbers(
                    start=int(start), stop=int(stop), frame_filter=task.findtext("frame_filter")
                )
            size = task.find("original_size")
            if size is not None:
                meta.size = int(size.findtext("width") or ""), int(size.findtext("height") or "")
        except ValueError as exc:
            why = f"expected whole frame numbers and sizes: {exc}"
            raise InvalidDataError(why, file=file, location="meta/task") from None
    return meta


def _prescan(file: Path, unlabeled: str) -> _Meta:
    if root_tag(file, WHAT) != ROOT:
        raise ParseError(f"not a CVAT XML export: expected the root element <{ROOT}>", file=file)
    meta: _Meta | None = None
    points: dict[str, int] = {}
    images = 0
    for element in iter_elements(file, ("meta", "image", "track"), what=WHAT, purpose=PURPOSE):
        if element.tag == "meta":
            meta = _meta(element, file)
            continue
        images += element.tag == "image"
        for shape in element.iter("points"):  # a track's shapes take the track's label
            label = (element if element.tag == "track" else shape).get("label") or unlabeled
            points[label] = max(points.get(label, 0), (shape.get("points") or "").count(";") + 1)
    if meta is None:
        raise ParseError("not a CVAT XML export: no <meta> with the labels", file=file)
    meta.points, meta.images = points, images
    return meta


@dataclass
class _Reader:
    """The state of a read: sink, image folder, options, keypoint counts (an image listed twice is the validator's)."""

    sink: DatasetWriter
    image_root: Path
    unlabeled: str
    split: str | None
    keypoints: dict[str, int]


def _split_name(text: str | None, file: Path, reader: _Reader, where: str) -> str:
    if text:
        name = text
    elif reader.split:
        name = reader.split
    else:
        name = DEFAULT_SPLIT if file.stem.lower() == EXPORT_STEM else file.stem
    if not _SPLIT_NAME.fullmatch(name):
        why = f"subset {name!r} cannot be a split name; expected letters, digits, '_', '.', '-' (pass --split)"
        raise InvalidDataError(why, file=file, location=where)
    return name


def _number(element: ET.Element, key: str, default: float | None = None) -> float:
    text = element.get(key)
    if text is None:
        if default is None:
            raise ValueError(f"missing {key}; expected a number")
        return default
    try:
        return _finite(text)
    except ValueError:
        raise ValueError(f"{key}: expected a finite number, found {text!r}") from None


def _whole(element: ET.Element, key: str, default: int | None = None, minimum: int = 0) -> int:
    text = element.get(key)
    if text is None and default is not None:
        return default
    if text is None or not _INT.fullmatch(text.strip()) or int(text) < minimum:
        raise ValueError(f"{key}: expected a whole number >= {minimum}, found {text!r}")
    return int(text)


def _flag(element: ET.Element, key: str) -> bool:
    text = (element.get(key) or "0").strip().lower()
    if text not in ("0", "1", "true", "false"):
        raise ValueError(f"{key}: expected 0 or 1, found {element.get(key)!r}")
    return text in ("1", "true")


def _label(element: ET.Element, meta: _Meta, reader: _Reader) -> str:
    label = element.get("label")
    if label is None:
        raise ValueError(f"<{element.tag}> has no label")
    if label == "":
        reader.sink.category(reader.unlabeled)
        return reader.unlabeled
    if label not in meta.labels:
        raise ValueError(f"label {label!r} is not one of the labels in <meta> ({', '.join(meta.labels)})")
    return label


def _attributes(element: ET.Element, specs: Mapping[str, str]) -> dict[str, Any]:
    """The ``<attribute>`` children typed by ``specs``, then occluded, z_order, group_id and source."""
    attributes: dict[str, Any] = {}
    for child in element.findall("attribute"):
        name = child.get("name") or ""
        try:
            attributes[name] = attribute_value(text=child.text, input_type=specs.get(name))
        except ValueError as exc:
            raise ValueError(f"attribute {name!r}: {exc}") from None
    if _flag(element, "occluded"):
        attributes["occluded"] = True
    for key in ("z_order", "group_id"):
        if element.get(key) is not None and (value := _whole(element, key, minimum=-(2**31))) != 0:
            attributes[key] = value
    if element.get("source") is not None:
        attributes["source"] = element.get("source")
    return attributes


def _values(element: ET.Element) -> list[float]:
    """A box's ``[xtl, ytl, xbr, ybr, rotation]``, or a shape's flat points."""
    if element.tag == "box":
        return [_number(element, k) for k in CVAT_CORNERS] + [_number(element, "rotation", 0.0)]
    return cvat_points(text=element.get("points") or "")


def _from_values(kind: str, values: list[float], label: str, reader: _Reader) -> dict[str, Any]:
    if kind == "box":
        xtl, ytl, xbr, ybr, rotation = values
        return cvat_box_to_box(xtl=xtl, ytl=ytl, xbr=xbr, ybr=ybr, rotation=rotation)
    return cvat_points_to_box(kind=kind, points=values, keypoints=reader.keypoints.get(label, 0))


def _geometry(element: ET.Element, label: str, reader: _Reader, size: tuple[int, int]) -> dict[str, Any]:
    if element.tag != "mask":
        return _from_values(element.tag, _values(element), label, reader)
    try:
        runs = [int(v) for v in (element.get("rle") or "").split(",")]
    except ValueError:
        raise ValueError(f"rle: expected whole numbers separated by ',', found {element.get('rle')!r}") from None
    window = {k: _whole(element, k, minimum=int(k in ("width", "height"))) for k in ("left", "top", "width", "height")}
    return cvat_mask_to_box(rle=runs, **window, image_width=size[0], image_height=size[1])


def _shape_to_box(element: ET.Element, meta: _Meta, reader: _Reader, size: tuple[int, int]) -> dict[str, Any]:
    label = _label(element, meta, reader)
    box = _geometry(element, label, reader, size)
    attributes = {**_attributes(element, meta.labels.get(label, {})), **box.pop("attributes", {})}
    return {"name": label, **box, **({"attributes": attributes} if attributes else {})}


def _image_record(element: ET.Element, meta: _Meta, file: Path, reader: _Reader) -> tuple[str, dict[str, Any]]:
    name = element.get("name") or ""
    where = f"<image id={element.get('id')!r} name={name!r}>"
    try:
        paths.check_relative_path(name)
    except ValueError as exc:
        raise UnsafePathError(f"{exc}; expected a path below the image folder", file=file, location=where) from None
    split = _split_name(element.get("subset") or meta.subset, file, reader, where)
    image = f"{element.get('subset')}/{name}" if meta.project and element.get("subset") else name
    try:
        width, height = _whole(element, "width", minimum=1), _whole(element, "height", minimum=1)
        identifier = _whole(element, "id")
    except ValueError as exc:
        raise InvalidDataError(str(exc), file=file, location=where, image=image) from None
    boxes, tags, tag_attributes = [], [], {}
    for index, child in enumerate(element):
        try:
            if child.tag in SHAPES:
                boxes.append(_shape_to_box(child, meta, reader, (width, height)))
            elif child.tag == "tag":
                label = _label(child, meta, reader)
                tags.append(label)
                if attributes := _attributes(child, meta.labels.get(label, {})):
                    tag_attributes[label] = attributes
            else:
                raise ValueError(f"<{child.tag}> is not read; expected {', '.join(SHAPES)} or tag")
        except ValueError as exc:
            where = f"{where} <{child.tag}> #{index}"
            raise InvalidDataError(str(exc), file=file, location=where, image=image) from None
    extra = {"tags": tag_attributes} if tag_attributes else None
    labels = [*dict.fromkeys([box["name"] for box in boxes] + tags)]  # the boxed classes first, as written back
    record = make_record(image=image, width=width, height=height, boxes=boxes, labels=labels, id=identifier)
    return split, {**record, "attributes": extra}


def _track_keys(element: ET.Element, meta: _Meta, file: Path, reader: _Reader) -> tuple[str, int, list[Keyframe]]:
    where = f"<track id={element.get('id')!r}>"
    keys: list[Keyframe] = []
    try:
        track = _whole(element, "id")
        label = _label(element, meta, reader)
        for child in element:
            if child.tag not in ("box", "polygon", "polyline", "points"):
                raise ValueError(f"<{child.tag}> in a track is not read; expected box, polygon, polyline or points")
            values, attributes = _values(child), {"track_id": track, **_attributes(child, meta.labels.get(label, {}))}
            keyframe = _flag(child, "keyframe") or child.get("keyframe") is None
            frame, outside = _whole(child, "frame"), _flag(child, "outside")
            keys.append(Keyframe(frame, child.tag, values, outside, keyframe, attributes))
    except ValueError as exc:
        raise InvalidDataError(str(exc), file=file, location=where) from None
    keys.sort(key=lambda key: key.frame)
    return label, track, keys


def _key_to_box(key: Keyframe, label: str, reader: _Reader) -> dict[str, Any]:
    geometry = _from_values(key.kind, key.values, label, reader)
    attributes = {**key.attributes, **geometry.pop("attributes", {}), **({"keyframe": True} if key.keyframe else {})}
    return {"name": label, **geometry, "attributes": attributes}


def _add_frames(tracks: list[tuple[str, int, list[Keyframe]]], meta: _Meta, file: Path, reader: _Reader) -> None:
    """One record per frame of a video export (see the module docstring for which frames)."""
    frames = set(meta.frames or ())
    for _, _, keys in tracks:
        frames |= {key.frame for key in keys}
    ordered = sorted(frames)
    per_frame: dict[int, list[dict[str, Any]]] = {}
    for label, track, keys in tracks:
        for frame, key in interpolate_track(keys=keys, frames=ordered).items():
            try:
                per_frame.setdefault(frame, []).append(_key_to_box(key, label, reader))
            except ValueError as exc:
                raise InvalidDataError(str(exc), file=file, location=f"<track id='{track}'> frame {frame}") from None
    on_disk = images_by_stem(reader.image_root) if reader.image_root.is_dir() else {}
    if any(stem.startswith("frame_") for stem in on_disk):
        ordered = [f for f in ordered if FRAME_NAME.format(f) in on_disk or f in per_frame]
    split = _split_name(meta.subset, file, reader, "meta/task/subset")
    reader.sink.expect(len(ordered))
    for frame in ordered:
        stem = FRAME_NAME.format(frame)
        image = on_disk.get(stem, f"{stem}.png")
        size = meta.size or read_image_size(reader.image_root / image)
        if size is None:
            why = "the frame's size is unknown: the meta has no <original_size> and there is no image file"
            reader.sink.problem(InvalidDataError(why, file=file, location=f"frame {frame}", image=image))
            continue
        boxes = per_frame.get(frame, [])
        reader.sink.add(split, make_record(image=image, width=size[0], height=size[1], boxes=boxes, id=frame))


def _read_file(file: Path, scan: _Meta, reader: _Reader) -> None:
    tracks: list[tuple[str, int, list[Keyframe]]] = []
    reader.sink.expect(scan.images)
    for element in iter_elements(file, ("image", "track"), what=WHAT, purpose=PURPOSE):
        try:
            if element.tag == "image":
                split, record = _image_record(element, scan, file, reader)
                reader.sink.add(split, record)
            else:
                tracks.append(_track_keys(element, scan, file, reader))
        except AnnonormError as error:
            reader.sink.problem(error)
    if tracks:
        if scan.images:
            raise ParseError("the file holds both <image> and <track> elements; expected one kind", file=file)
        _add_frames(tracks, scan, file, reader)


def _read(source: Path, ctx: ReadContext) -> ReadResult:
    files = _xml_files(source)
    unlabeled = ctx.options.get("unlabeled") or UNLABELED
    scans = [_prescan(file, unlabeled) for file in files]
    keypoints: dict[str, int] = {}
    for scan in scans:
        for label, count in scan.points.items():
            keypoints[label] = max(keypoints.get(label, 0), count)
    for label in [*(label for scan in scans for label in scan.labels), unlabeled]:
        if (count := keypoints.get(label, 0)) or label != unlabeled:  # the unlabeled class: when first used
            ctx.sink.category(label, keypoints=[str(i + 1) for i in range(count)] if count else None)
    image_root = _image_root(source, ctx.images)
    reader = _Reader(ctx.sink, image_root, unlabeled, ctx.options.get("split"), keypoints)
    for file, scan in zip(files, scans, strict=True):
        ctx.sink.add_source_file(file)
        _read_file(file, scan, reader)
    root = source if source.is_dir() else source.parent
    return ReadResult(name=root.resolve().name or "cvat", image_root=image_root)


# ---------------------------------------------------------------------------------------------- writing


#: What the writer's first pass learns: label -> attribute -> the types of its values; split -> whether its ids stay.
_Plan = tuple[dict[str, dict[str, set[type]]], dict[str, bool]]


def _plan(dataset: NormalizedSource) -> _Plan:
    kinds: dict[str, dict[str, set[type]]] = {c.name: {} for c in dataset.manifest.categories}
    ids_kept = {}
    for split in dataset.manifest.splits:
        ids: set[int] = set()
        for record in dataset.records(split):
            identifier: Any = record.get("id")
            if type(identifier) is int and identifier >= 0 and identifier not in ids:
                ids.add(identifier)
            else:
                ids_kept[split] = False
            tags = (record.get("attributes") or {}).get("tags")
            named = [(box["name"], box.get("attributes")) for box in record["boxes"]]
            for label, attributes in named + (list(tags.items()) if isinstance(tags, dict) else []):
                for name, value in attributes.items() if isinstance(attributes, dict) and label in kinds else ():
                    if name not in RESERVED and isinstance(value, (bool, int, float, str)):
                        kinds[label].setdefault(name, set()).add(type(value))
        ids_kept.setdefault(split, True)
    return kinds, ids_kept


def _meta_element(split: str, plan: _Plan) -> ET.Element:
    meta = ET.Element("meta")
    task = ET.SubElement(meta, "task")
    ET.SubElement(task, "name").text = split
    ET.SubElement(task, "mode").text = "annotation"
    ET.SubElement(task, "subset").text = split
    labels = ET.SubElement(task, "labels")
    for name, attributes in plan[0].items():
        label = ET.SubElement(labels, "label")
        ET.SubElement(label, "name").text = name
        specs = ET.SubElement(label, "attributes")
        for attribute, kinds in attributes.items():
            spec, kind = ET.SubElement(specs, "attribute"), input_type(kinds)
            default, values = ("false", "false\ntrue") if kind == "checkbox" else ("", "")
            fields = {"name": attribute, "mutable": "False", "input_type": kind, "default_value": default}
            for tag, text in {**fields, "values": values}.items():
                ET.SubElement(spec, tag).text = text
    return meta


def _shape_elements(parent: ET.Element, box: Mapping[str, Any]) -> None:
    attributes = box.get("attributes") or {}
    for kind, fields in box_to_cvat_shapes(box=box):
        shape = ET.SubElement(parent, kind, {"label": box["name"], **fields})
        shape.set("occluded", "1" if attributes.get("occluded") is True else "0")
        for key, expected in (("z_order", int), ("group_id", int), ("source", str)):
            if type(attributes.get(key)) is expected:  # another format's z_order "top" would not read back
                shape.set(key, str(attributes[key]))
        _attribute_elements(shape, attributes)


def _attribute_elements(parent: ET.Element, attributes: Mapping[str, Any]) -> None:
    for name, value in attributes.items():
        if name not in RESERVED and isinstance(value, (bool, int, float, str)):
            ET.SubElement(parent, "attribute", {"name": name}).text = _value_text(value)


def _image_element(record: Mapping[str, Any], identifier: int) -> ET.Element:
    fields = {"id": identifier, "name": record["image"], "width": record["width"], "height": record["height"]}
    element = ET.Element("image", {k: str(v) for k, v in fields.items()})
    for box in record["boxes"]:
        _shape_elements(element, box)
    boxed = {box["name"] for box in record["boxes"]}
    tag_attributes = (record.get("attributes") or {}).get("tags") or {}
    for label in record["labels"]:
        if label not in boxed:
            tag = ET.SubElement(element, "tag", {"label": label})
            attributes = tag_attributes.get(label)
            _attribute_elements(tag, attributes if isinstance(attributes, dict) else {})
    return element


def _write(dataset: NormalizedSource, out: Path, options: Mapping[str, Any]) -> None:
    plan = _plan(dataset)
    for split in dataset.manifest.splits:
        with (out / f"{split}.xml").open("w", encoding="utf-8") as stream:
            stream.write(f'<?xml version="1.0" encoding="utf-8"?>\n<{ROOT}>\n  <version>{VERSION}</version>\n')
            stream.write(_fragment(_meta_element(split, plan)))
            for position, record in enumerate(dataset.records(split)):
                identifier = record["id"] if plan[1][split] else position
                stream.write(_fragment(_image_element(record, identifier)))
            stream.write(f"</{ROOT}>\n")


def _fragment(element: ET.Element) -> str:
    """One top-level element as indented text (two spaces deeper than the root)."""
    ET.indent(element, space="  ", level=1)
    return "  " + ET.tostring(element, encoding="unicode").rstrip() + "\n"


# ---------------------------------------------------------------------------------------------- converter


class CvatConverter(Converter):
    """CVAT for images XML 1.1 (read and write) and CVAT for video XML 1.1 (read); see the module docstring."""

    name = "cvat"
    summary = "CVAT XML 1.1: for images (boxes, polygons, polylines, points, masks, tags) and for video (tracks)"
    read_options = (
        Option("split", "Split of the images whose image and task name no subset (default: the XML file's stem)"),
        Option("unlabeled", "Class of the shapes whose label is empty", default=UNLABELED),
    )
    # The reader ids records by the image id; tags become labels without a box, after the boxed ones.
    capabilities = Capabilities(
        reserved_attributes=RESERVED,
        image_labels=True,
        label_order=False,
        reader_ids=True,
        category_order=True,
    )

    @classmethod
    def sniff(cls, source: Path) -> bool:
        """An ``.xml`` file rooted at ``<annotations>``, or a folder with one."""
        return _sniff(source)

    @classmethod
    def source_files(cls, source: Path, options: Mapping[str, Any]) -> list[Path]:
        """The CVAT XML files read (never the images)."""
        return _xml_files(source)

    def read(self, source: Path, ctx: ReadContext) -> ReadResult:
        """Stream CVAT XML files into ``ctx.sink``: labels, one record per image or video frame."""
        return _read(source, ctx)

    def write(self, dataset: NormalizedSource, out: Path, *, options: Mapping[str, Any]) -> None:
        """Write one CVAT for images 1.1 task file ``<split>.xml`` per split."""
        _write(dataset, out, options)
