"""LabelMe JSON (wkentaro/labelme, AnyLabeling, X-AnyLabeling): one JSON file per image, absolute pixel points.

Each file is ``{"version", "flags", "shapes", "imagePath", "imageData", "imageHeight", "imageWidth"}``;
``imagePath`` is relative to the JSON's own folder (Windows separators are read as ``/``), so a
file sits beside its image or in a folder of its own (``annotations/a.json`` -> ``../images/a.jpg``).
SOURCE is a folder (searched recursively for ``*.json``) or one JSON file. Each shape is
``{"label", "points": [[x, y], ...], "shape_type", "group_id", "flags", "description", "mask"}`` in
absolute pixels. What each ``shape_type`` becomes (one box per instance):

- ``polygon`` (>= 3 points; no ``shape_type``, as labelme 3 wrote it, is a polygon): a ``polygon``
  ring; the box is the rings' hull.
- ``rectangle``: the box (2 corners in either order; AnyLabeling's 4 corners too).
- ``oriented_rectangle`` (labelme) or ``rotation`` (X-AnyLabeling): 4 corners -> ``obb``, the box its hull.
- ``circle`` (centre, point on the circle): a 32-point polygon on the circle, the box its hull
  (written back as a polygon: LabelMe's circle is not kept as a circle).
- ``point``: a box of zero size at the point (written back as a point). Not a keypoint: LabelMe
  points carry no keypoint names nor skeleton.
- ``line`` / ``linestrip``: the box is the points' hull; the points are kept as the box attribute
  ``line`` / ``linestrip`` (a flat ``[x1, y1, ...]``), so they are written back.
- ``mask``: the base64 PNG is the mask of the region whose top-left corner is ``points[0]``; it
  becomes a COCO ``rle`` of the whole image (pycocotools), the box the region (clipped to the image).
  It needs the image size.

Shapes sharing ``(label, group_id)`` are one instance (as labelme2coco groups them): its rings are
those of its polygons, circles, rectangles and oriented rectangles, its masks are merged into one
``rle``, points and lines only widen its box; a lone oriented rectangle alone keeps its ``obb``. In an
instance with a mask, a single rectangle is not a ring but the box itself (the other shapes do not widen it).
``group_id`` becomes the box attribute ``group_id``; a non-empty ``description`` and shape ``flags``,
X-AnyLabeling's ``attributes`` (merged in), ``difficult`` when true, ``score`` (the box's score) and
any unknown key are kept; ``__ignore__`` shapes are dropped (as labelme2coco does). Image ``flags``
name classes (labelme's classification flags): each is a category, and the true ones image labels.
Unknown top-level keys become record attributes. ``imageData`` is never decoded, except for the
image size when the file has none and no image file is found.

Categories: ``labels.txt`` in SOURCE (labelme's own class list; ``__ignore__`` and ``_background_``
left out), then the labels in the order they are first seen. Splits: with ``--split`` one split;
else, when every JSON lies in a top-level folder named like a split (``train``, ``val``, ``test``...)
each such folder is a split, else one ``train`` split. Not read: MIT LabelMe XML (the "LabelMe" of
Datumaro and CVAT, ``Annotations/*.xml``), a different format.

The writer writes ``labels.txt`` and one JSON per record at ``<split>/<image path>.json`` (the image
path without a leading ``<split>/``, suffix ``.json``), whose ``imagePath`` points at ``OUT/<image
path>``, where ``--copy-images symlink|copy`` puts the images; ``imageData`` is null. Boxes become
a mask (``rle``: a PNG of the region covering the mask's own pixels and the box's whole pixels, so no
pixel is lost; plus a rectangle, the box, when the shapes' hull is not the box), an oriented rectangle
(``obb``), polygons (one per ring; several shapes grouped by ``group_id``), a line, a point (a box of
zero size) or a rectangle.
"""

from __future__ import annotations

import base64
import binascii
import functools
import io
import json
import math
import os
import posixpath
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import msgspec
import numpy as np
from msgspec import UNSET

from annonorm.converters.base import (
    Capabilities,
    Converter,
    Option,
    ReadContext,
    ReadResult,
    make_record,
    workers_option,
)
from annonorm.errors import AnnonormError, InvalidDataError, ParseError, UnsafePathError
from annonorm.fsutil import read_regular_bytes
from annonorm.geometry import obb_hull, round_coord, round_coords
from annonorm.images import read_image_size
from annonorm.io import NormalizedSource
from annonorm.paths import check_relative_path
from annonorm.records import score_problem
from annonorm.sources.classlists import class_list_file
from annonorm.sources.each import encoded_record, map_each
from annonorm.sources.images import find_image, list_dir, walk_files
from annonorm.sources.jsondoc import TypedJson, describe_json

__all__ = [
    "LabelmeConverter",
    "ShapeProblem",
    "box_to_labelme_shapes",
    "labelme_image_path",
    "labelme_shapes_to_boxes",
    "mask_png_to_rle",
    "record_to_labelme",
]

# ---------------------------------------------------------------------------------------------- constants

LABELS_FILE = "labels.txt"
IGNORE = "__ignore__"
BACKGROUND = "_background_"
#: Top-level folders read as splits (when every JSON lies in one of them).
SPLIT_FOLDERS = frozenset({"train", "val", "valid", "validation", "test", "dev"})
DEFAULT_SPLIT = "train"
#: The labelme release whose file layout the writer produces.
VERSION = "5.5.0"
#: Points of the polygon a circle becomes (a multiple of 4, so the hull is the circle's square).
CIRCLE_POINTS = 32
OBB_TYPES = ("oriented_rectangle", "rotation")
#: Shape type -> the numbers of points it may have (None: at least the first of the pair).
POINT_COUNTS: dict[str, tuple[int, int | None]] = {"polygon": (3, None), "rectangle": (2, 4)}
POINT_COUNTS |= {"oriented_rectangle": (4, 4), "rotation": (4, 4), "circle": (2, 2), "point": (1, 1)}
POINT_COUNTS |= {"line": (2, 2), "linestrip": (2, None), "mask": (2, 2)}
#: Box attributes that are shape fields of the format.
BOX_FIELDS = frozenset({"description", "flags", "group_id", "line", "linestrip"})
#: Top-level keys of the format (not record attributes).
TOP_KEYS = frozenset({"version", "flags", "shapes", "imagePath", "imageData", "imageHeight", "imageWidth"})
SNIFF_BYTES = 1 << 16
#: Files from which the reader spreads over the cores (below, forking costs more than it saves).
PARALLEL_MIN_FILES = 1000
NOT_LABELME = "not a LabelMe JSON file"


class _Shape(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, gc=False):
    label: str
    points: list[tuple[float, float]]
    shape_type: str | None = None
    group_id: int | None = None
    flags: dict[str, bool] | None = None
    description: str | None = None
    mask: str | None = None
    score: float | None = None  # X-AnyLabeling: a prediction's confidence
    attributes: dict[str, Any] | None = None  # X-AnyLabeling's free attributes
    difficult: Any = UNSET  # X-AnyLabeling
    kie_linking: Any = UNSET  # X-AnyLabeling


class _Document(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, gc=False):
    shapes: list[_Shape]
    imagePath: str
    version: str | None = None
    flags: dict[str, bool] | None = None
    imageData: msgspec.Raw = msgspec.Raw(b"null")  # never decoded unless the size is needed
    imageHeight: int | None = None
    imageWidth: int | None = None


def _refuse(raw: bytes, plain: Any) -> str | None:
    if plain is UNSET:
        return None
    if not isinstance(plain, dict):
        return f"{NOT_LABELME}: expected an object with shapes and imagePath, found {describe_json(plain)}"
    if "shapes" not in plain:
        return f"{NOT_LABELME}: it has no shapes; expected an object with shapes and imagePath"
    return None


_TYPED = TypedJson(_Document, items={"shapes": _Shape}, what="LabelMe", refuse=_refuse)

# ---------------------------------------------------------------------------------------------- sniff


def _looks_like_labelme(path: Path) -> bool:
    try:
        with path.open("rb") as stream:
            head = stream.read(SNIFF_BYTES)
    except OSError:
        return False
    return b'"shapes"' in head and (b'"imagePath"' in head or b'"shape_type"' in head)


def _sniff(source: Path) -> bool:
    """A ``.json`` (or a folder holding one, at its top or one level down) with ``shapes`` and ``imagePath``."""
    try:
        if source.is_file():
            return source.suffix.lower() == ".json" and _looks_like_labelme(source)
        if not source.is_dir():
            return False
        entries = list_dir(source)
        candidates = [Path(e.path) for e in entries if e.name.lower().endswith(".json") and e.is_file()]
        for folder in (Path(e.path) for e in entries if e.is_dir(follow_symlinks=False)):
            candidates += [Path(e.path) for e in list_dir(folder)[:50] if e.name.lower().endswith(".json")]
        return any(_looks_like_labelme(path) for path in candidates[:8])
    except (OSError, AnnonormError):
        return False


# ------------------------------------------------------------------------------------ mapping labelme -> annonorm


class ShapeProblem(ValueError):
    """A shape breaks a rule of the format: ``index`` is its place in ``shapes``."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index
        self.message = message


def labelme_image_path(*, image_path: str, folder: str) -> str | None:
    """The image's path below the source root, for ``imagePath`` of a JSON in ``folder`` (below the root).

    Windows separators are read as ``/``. ``None`` for an absolute path; :class:`ValueError` for a
    path that climbs out of the root (or holds a NUL).
    """
    posix = PureWindowsPath(image_path).as_posix() if "\\" in image_path else image_path
    if posix.startswith("/") or (len(posix) > 1 and posix[1] == ":"):
        return None
    joined = posixpath.normpath(posixpath.join(folder, posix))
    return check_relative_path(joined)


def mask_png_to_rle(*, data: str, left: int, top: int, width: int, height: int) -> tuple[dict[str, Any], list[int]]:
    """A base64 PNG mask of the region at ``(left, top)`` as a COCO RLE of the ``width`` x ``height`` image,
    and the region clipped to the image ``[x1, y1, x2, y2]``. :class:`ValueError` when it is no PNG or
    lies outside the image."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(base64.b64decode(data, validate=True))) as image:
            patch = np.asarray(image)
    except (binascii.Error, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ValueError(f"mask is not a base64 PNG ({exc})") from None
    patch = np.asarray(patch.any(axis=2) if patch.ndim == 3 else patch.astype(bool))
    x1, y1 = max(left, 0), max(top, 0)
    x2, y2 = min(left + patch.shape[1], width), min(top + patch.shape[0], height)
    if x1 >= x2 or y1 >= y2:
        raise ValueError(f"mask region at ({left}, {top}) lies outside the {width} x {height} image")
    strip = np.zeros((height, x2 - x1), dtype=bool)  # the columns the mask covers, whole height
    strip[y1:y2] = patch[y1 - top : y2 - top, x1 - left : x2 - left]
    padded = np.r_[False, strip.T.reshape(-1), False]  # column-major, as COCO counts pixels
    # Run boundaries come in pairs, so the runs (background first) always end with a background run.
    counts = np.diff(np.r_[0, np.flatnonzero(padded[1:] != padded[:-1]), padded.size - 2]).tolist()
    counts[0] += x1 * height  # the columns left and right of the mask are background
    counts[-1] += (width - x2) * height
    if counts[-1] == 0 and len(counts) > 1:  # pycocotools never ends with an empty run
        counts.pop()
    return _compress(counts, width, height), [x1, y1, x2, y2]


def _compress(counts: list[int], width: int, height: int) -> dict[str, Any]:
    from pycocotools import mask as mask_utils

    rle = mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width)
    return {"size": [height, width], "counts": rle["counts"].decode("ascii")}


def _circle_ring(points: list[float]) -> list[float]:
    cx, cy, px, py = points
    radius = math.hypot(px - cx, py - cy)
    ring: list[float] = []
    for step in range(CIRCLE_POINTS):
        angle = 2 * math.pi * step / CIRCLE_POINTS
        ring += [round_coord(cx + radius * math.cos(angle)), round_coord(cy + radius * math.sin(angle))]
    return ring


def _shape_attributes(shape: Mapping[str, Any]) -> dict[str, Any]:
    attributes = {k: v for k, v in (shape.get("extras") or {}).items() if v is not None}
    attributes |= {
        key: shape[key] for key in ("difficult", "kie_linking") if shape.get(key) not in (UNSET, None, False, [])
    }
    attributes.update(shape.get("attributes") or {})
    if shape.get("description"):
        attributes["description"] = shape["description"]
    if shape.get("flags"):
        attributes["flags"] = shape["flags"]
    if shape.get("group_id") is not None:
        attributes["group_id"] = shape["group_id"]
    return attributes


def _checked_points(index: int, kind: str, points: Sequence[Sequence[float]]) -> list[float]:
    if kind not in POINT_COUNTS:
        known = ", ".join(POINT_COUNTS)
        raise ShapeProblem(index, f"unknown shape_type {kind!r}; expected one of {known}")
    low, high = POINT_COUNTS[kind]
    if len(points) < low or (high is not None and len(points) not in (low, high)):
        wanted = f"at least {low}" if high is None else " or ".join(sorted({str(low), str(high)}))
        raise ShapeProblem(index, f"a {kind} has {len(points)} points; expected {wanted}")
    try:
        pairs = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError):
        pairs = np.empty(0)
    if pairs.ndim != 2 or pairs.shape[1] != 2:
        raise ShapeProblem(index, f"a {kind} has a point that is not a pair of numbers [x, y]")
    values = pairs.reshape(-1)
    if not np.isfinite(values).all():
        raise ShapeProblem(index, f"a {kind} has a point that is not a finite number")
    flat: list[float] = round_coords(values).tolist()
    return flat


def _instance(shapes: Sequence[Mapping[str, Any]], members: list[int], width: int | None, height: int | None) -> dict:
    alone = len(members) == 1
    xs: list[float] = []
    ys: list[float] = []
    rings: list[list[float]] = []
    rles: list[dict[str, Any]] = []
    obbs: list[list[float]] = []
    box: dict[str, Any] = {"name": shapes[members[0]]["label"]}
    attributes: dict[str, Any] = {}
    kinds = [shapes[index].get("shape_type") or "polygon" for index in members]
    framed = "mask" in kinds and kinds.count("rectangle") == 1  # the rectangle is the box, not a ring
    frame: tuple[float, float, float, float] | None = None
    for index in members:
        shape = shapes[index]
        kind = shape.get("shape_type") or "polygon"
        flat = _checked_points(index, kind, shape["points"])
        for key, value in _shape_attributes(shape).items():
            attributes.setdefault(key, value)
        if shape.get("score") is not None and "score" not in box:
            problem = score_problem(shape["score"])
            if problem is not None:
                raise ShapeProblem(index, problem[1])
            box["score"] = float(shape["score"])
        if kind == "mask":
            if width is None or height is None:
                raise ShapeProblem(index, "a mask needs the image size (imageWidth, imageHeight or the image file)")
            if not isinstance(shape.get("mask"), str):
                raise ShapeProblem(index, "a mask shape has no mask; expected a base64 PNG")
            left, top = round(min(flat[0::2])), round(min(flat[1::2]))
            try:
                rle, extent = mask_png_to_rle(data=shape["mask"], left=left, top=top, width=width, height=height)
            except ValueError as exc:
                raise ShapeProblem(index, str(exc)) from None
            rles.append(rle)
            flat = [float(v) for v in extent]
        elif kind == "circle":
            flat = _circle_ring(flat)
            rings.append(flat)
        elif kind == "rectangle" and framed:
            frame = obb_hull(flat)
        elif kind == "polygon" or (kind == "rectangle" and not alone):
            if kind == "rectangle":
                left, top, right, bottom = obb_hull(flat)
                flat = [left, top, right, top, right, bottom, left, bottom]
            rings.append(flat)
        elif kind in OBB_TYPES:
            obbs.append(flat)
        elif kind in ("line", "linestrip") and alone:
            attributes[kind] = flat
        xs += flat[0::2]
        ys += flat[1::2]
    hull = frame or (min(xs), min(ys), max(xs), max(ys))
    if len(obbs) == 1 and obb_hull(obbs[0]) == hull:  # the oriented box is the instance's extent: kept
        box["obb"] = obbs[0]
    else:
        rings += obbs
    box.update(x1=hull[0], y1=hull[1], x2=hull[2], y2=hull[3])
    if rings:
        box["polygon"] = rings
    if rles:
        box["rle"] = rles[0] if len(rles) == 1 else _merge(rles)
    if attributes:
        box["attributes"] = attributes
    return box


def _merge(rles: list[dict[str, Any]]) -> dict[str, Any]:
    from pycocotools import mask as mask_utils

    merged = mask_utils.merge([{"size": r["size"], "counts": r["counts"].encode("ascii")} for r in rles])
    return {"size": rles[0]["size"], "counts": merged["counts"].decode("ascii")}


def labelme_shapes_to_boxes(
    *, shapes: Sequence[Mapping[str, Any]], width: int | None, height: int | None
) -> list[dict[str, Any]]:
    """The boxes of one file's shapes (dicts with the shape's keys, unknown ones under ``extras``).

    Shapes sharing ``(label, group_id)`` are one box, in the order of their first shape;
    ``__ignore__`` shapes are dropped. Raises :class:`ShapeProblem` naming the shape that breaks a rule.
    """
    groups: dict[tuple[Any, ...], list[int]] = {}
    for index, shape in enumerate(shapes):
        if shape["label"] == IGNORE:
            continue
        if not shape["label"].strip():
            raise ShapeProblem(index, "a shape has an empty label; expected a class name")
        group = shape.get("group_id")
        groups.setdefault((shape["label"], group) if group is not None else (index,), []).append(index)
    return [_instance(shapes, members, width, height) for members in groups.values()]


# ------------------------------------------------------------------------------------ mapping annonorm -> labelme


def _shape(label: str, kind: str, flat: Sequence[float], group_id: int | None, fields: Mapping[str, Any]) -> dict:
    points = [[flat[i], flat[i + 1]] for i in range(0, len(flat), 2)]
    head = {"label": label, "points": points, "group_id": group_id, "description": fields["description"]}
    return {**head, "shape_type": kind, "flags": fields["flags"], "mask": None, **fields}  # labelme's key order


def _mask_png(rle: Mapping[str, Any], box: Mapping[str, Any]) -> tuple[list[float], str]:
    """The points (whole pixels, inclusive) and the base64 PNG of the region that covers both the RLE's
    own pixels (so none is lost) and the box's whole pixels (so an integer box is the region, as read)."""
    from PIL import Image
    from pycocotools import mask as mask_utils

    height, width = rle["size"]
    canvas = mask_utils.decode({"size": [height, width], "counts": rle["counts"].encode("ascii")})
    x1, y1 = min(max(math.floor(box["x1"]), 0), width - 1), min(max(math.floor(box["y1"]), 0), height - 1)
    x2, y2 = min(max(math.ceil(box["x2"]), x1 + 1), width), min(max(math.ceil(box["y2"]), y1 + 1), height)
    rows, columns = np.nonzero(canvas)
    if len(rows):
        x1, y1 = min(x1, int(columns.min())), min(y1, int(rows.min()))
        x2, y2 = max(x2, int(columns.max()) + 1), max(y2, int(rows.max()) + 1)
    stream = io.BytesIO()
    Image.fromarray(canvas[y1:y2, x1:x2].astype(bool)).save(stream, format="PNG")
    return [float(x1), float(y1), float(x2 - 1), float(y2 - 1)], base64.b64encode(stream.getvalue()).decode("ascii")


def box_to_labelme_shapes(*, box: Mapping[str, Any], group_id: int | None) -> list[dict[str, Any]]:
    """The shapes of one box (see the module docstring); ``group_id`` groups several (or is the box's own)."""
    attributes = dict(box.get("attributes") or {})
    fields: dict[str, Any] = {"description": "", "flags": {}}
    for key, ok in (("description", lambda v: isinstance(v, str)), ("flags", _is_flags)):
        if key in attributes and ok(attributes[key]):
            fields[key] = attributes.pop(key)
    if isinstance(attributes.get("group_id"), int) and not isinstance(attributes["group_id"], bool):
        del attributes["group_id"]  # the shapes' group_id (any other value stays a free attribute)
    lines = {k: attributes.pop(k) for k in ("line", "linestrip") if _is_line(k, attributes.get(k))}
    if box.get("score") is not None:
        fields["score"] = box["score"]
    if attributes:
        fields["attributes"] = attributes
    name, shapes = box["name"], []
    corners = [box["x1"], box["y1"], box["x2"], box["y2"]]
    if box.get("obb") is not None:
        shapes.append(_shape(name, "oriented_rectangle", box["obb"], group_id, fields))
    for ring in box.get("polygon") or ():
        shapes.append(_shape(name, "polygon", ring, group_id, fields))
    if box.get("rle") is not None:
        points, png = _mask_png(box["rle"], box)
        flat = [v for s in shapes for point in s["points"] for v in point] + [*points[:2], points[2] + 1, points[3] + 1]
        if list(obb_hull(flat)) != corners:  # the shapes' hull is not the box: a rectangle in the group frames it
            shapes.append(_shape(name, "rectangle", corners, group_id, fields))
        shapes.insert(0, {**_shape(name, "mask", points, group_id, fields), "mask": png})
    if shapes:
        return shapes
    if lines:
        ((kind, flat),) = list(lines.items())[:1]
        return [_shape(name, kind, flat, group_id, fields)]
    if corners[0] == corners[2] and corners[1] == corners[3]:
        return [_shape(name, "point", corners[:2], group_id, fields)]
    return [_shape(name, "rectangle", corners, group_id, fields)]


def _is_flags(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(v, bool) for v in value.values())


def _is_line(kind: str, value: Any) -> bool:
    if not isinstance(value, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return False
    return len(value) == 4 if kind == "line" else len(value) >= 4 and len(value) % 2 == 0


def record_to_labelme(*, record: Mapping[str, Any], image_path: str) -> dict[str, Any]:
    """One record as a LabelMe document whose ``imagePath`` is ``image_path``.

    A box drawn as several shapes without an integer ``group_id`` attribute gets a new one; two
    boxes of one class sharing a group id raise :class:`ValueError` (LabelMe would read one instance).
    """
    boxes = record.get("boxes") or []
    given = [b.get("attributes", {}).get("group_id") for b in boxes]
    ids = [g if isinstance(g, int) and not isinstance(g, bool) else None for g in given]
    fresh = max([g for g in ids if g is not None], default=0) + 1
    seen: dict[tuple[str, int], int] = {}
    shapes: list[dict[str, Any]] = []
    for number, (box, group) in enumerate(zip(boxes, ids, strict=True)):
        drawn = box_to_labelme_shapes(box=box, group_id=group)
        if group is None and len(drawn) > 1:
            group, fresh = fresh, fresh + 1
            drawn = [{**shape, "group_id": group} for shape in drawn]
        if group is not None:
            if (box["name"], group) in seen:
                first = seen[(box["name"], group)]
                raise ValueError(f"boxes {first} and {number} are both {box['name']!r} with group_id {group}")
            seen[(box["name"], group)] = number
        shapes += drawn
    boxed = {box["name"] for box in boxes}
    extra = {k: v for k, v in (record.get("attributes") or {}).items() if k not in TOP_KEYS}
    flags = {label: True for label in record.get("labels") or () if label not in boxed}
    head = {"version": VERSION, "flags": flags, "shapes": shapes, "imagePath": image_path, "imageData": None}
    return {**head, "imageHeight": record.get("height"), "imageWidth": record.get("width"), **extra}


# ---------------------------------------------------------------------------------------------- layout


def _json_files(source: Path) -> dict[str, Path]:
    """The LabelMe files of SOURCE by path below its root (``a.json``, ``train/b.json``), by name."""
    if not source.is_dir():
        return {source.name: source}
    found = walk_files(source, {".json"}, any_kind=True)
    return {f"{stem}{found[stem].suffix}": found[stem] for stem in sorted(found)}


def _splits(files: Sequence[str], split: str | None) -> dict[str, str]:
    if split is not None:
        return dict.fromkeys(files, split)
    tops = [name.split("/", 1)[0] if "/" in name else None for name in files]
    if all(top in SPLIT_FOLDERS for top in tops):
        return {name: str(top) for name, top in zip(files, tops, strict=True)}
    return dict.fromkeys(files, DEFAULT_SPLIT)


def _source_files(source: Path, options: Mapping[str, Any]) -> list[Path]:
    root = source if source.is_dir() else source.parent
    labels = [root / LABELS_FILE] if source.is_dir() and (root / LABELS_FILE).exists() else []
    return [*labels, *_json_files(source).values()]


# ---------------------------------------------------------------------------------------------- read


def _image_name(image_path: str, relative: str, file: Path, root: Path) -> str:
    folder = posixpath.dirname(relative)
    try:
        image = labelme_image_path(image_path=image_path, folder=folder)
    except ValueError as exc:
        raise UnsafePathError(f"imagePath {image_path!r}: {exc}", file=file, location="imagePath") from None
    if image is None:  # absolute: the file of that name beside the JSON, if there is one
        name = PureWindowsPath(image_path).name
        if name and (file.parent / name).is_file():
            return posixpath.join(folder, name)
        raise UnsafePathError(
            f"imagePath {image_path!r} is absolute and no {name!r} lies beside the file; expected a relative path",
            file=file,
            location="imagePath",
        )
    if image == "." or not image_path:
        found = find_image(root, [f"{folder}/" if folder else ""], PurePosixPath(relative).stem)
        if found is None:
            raise InvalidDataError("imagePath is empty and no image has the file's name", file=file)
        return found
    return image


def _embedded_size(raw: msgspec.Raw) -> tuple[int, int] | None:
    from PIL import Image

    try:
        data = msgspec.json.decode(raw)
        with Image.open(io.BytesIO(base64.b64decode(data, validate=True))) as image:
            return image.size
    except (msgspec.DecodeError, TypeError, binascii.Error, OSError, ValueError, Image.DecompressionBombError):
        return None


def _size(document: _Document, image: Path, file: Path) -> tuple[int | None, int | None]:
    width, height = document.imageWidth, document.imageHeight
    if width is not None and height is not None:
        if width <= 0 or height <= 0:
            message = f"the image size is {width} x {height}; expected imageWidth and imageHeight > 0"
            raise InvalidDataError(message, file=file, location="imageWidth" if width <= 0 else "imageHeight")
        return width, height
    size = read_image_size(image) if image.is_file() else None
    if size is None and bytes(document.imageData) != b"null":
        size = _embedded_size(document.imageData)
    return size if size is not None else (None, None)


def _file_record(item: tuple[str, Path], root: Path, image_root: Path) -> tuple[dict[str, Any], list[str]]:
    """The record of one file (``(path below the root, path)``), encoded for the parent (:func:`encoded_record`),
    and the class names it uses, in the order first seen (its boxes', then its image flags')."""
    relative, path = item
    try:
        decoded = _TYPED.decode(read_regular_bytes(path, "LabelMe file"), file=path)
        document = decoded.document
        image = _image_name(document.imagePath, relative, path, root)
        width, height = _size(document, image_root / image, path)
        extras = (decoded.extras or {}).get("shapes") or [{}] * len(document.shapes)
        shapes = [{**msgspec.structs.asdict(s), "extras": e} for s, e in zip(document.shapes, extras, strict=True)]
        try:
            boxes = labelme_shapes_to_boxes(shapes=shapes, width=width, height=height)
        except ShapeProblem as problem:
            raise InvalidDataError(problem.message, file=path, location=f"shapes[{problem.index}]") from None
        flags = {name: on for name, on in (document.flags or {}).items() if name != IGNORE}
        if any(not name.strip() for name in flags):
            raise InvalidDataError(
                "an image flag has an empty name; expected a class name", file=path, location="flags"
            )
        attributes = {k: v for k, v in decoded.top_extras.items() if k not in TOP_KEYS}
        labels = [name for name, on in flags.items() if on]
        record = make_record(image=image, width=width, height=height, boxes=boxes, labels=labels, attributes=attributes)
        return encoded_record(record), [*(box["name"] for box in boxes), *flags]
    except AnnonormError as error:
        error.image = error.image or relative
        raise


def _read(source: Path, ctx: ReadContext) -> ReadResult:
    sink = ctx.sink
    root = source if source.is_dir() else source.parent
    files = _json_files(source)
    if not files:
        raise ParseError(f"no LabelMe annotations here: no *.json file in {source}", file=source)
    if source.is_dir() and (root / LABELS_FILE).exists():
        sink.add_source_file(root / LABELS_FILE)
        for name in class_list_file(root / LABELS_FILE).names:
            if name not in (IGNORE, BACKGROUND):
                sink.category(name)
    image_root = ctx.images or root
    split_of = _splits(list(files), ctx.options.get("split"))
    for split in dict.fromkeys(split_of.values()):
        sink.declare_split(split)
    sink.expect(len(files))
    items = list(files.items())
    # Decoding and mapping is the larger share (the parent only writes): above the threshold every core reads.
    workers = ctx.executor.execution.pool_size(len(items), PARALLEL_MIN_FILES)
    read = functools.partial(_file_record, root=root, image_root=image_root)
    for (relative, path), outcome in zip(items, map_each(read, items, ctx.executor, workers=workers), strict=True):
        sink.add_source_file(path)
        if isinstance(outcome, AnnonormError):
            sink.problem(outcome)
            continue
        record, names = outcome
        for name in names:
            sink.category(name)
        sink.add(split_of[relative], record, canonical=True)
    return ReadResult(name=root.resolve().name or "labelme", image_root=image_root)


# ---------------------------------------------------------------------------------------------- write


def _export_paths(image: str, split: str) -> tuple[str, str]:
    """Where a record's JSON goes (``<split>/<image path>.json``) and its ``imagePath`` (to ``OUT/<image>``)."""
    rest = image[len(split) + 1 :] if image.startswith(f"{split}/") else image
    target = f"{split}/{PurePosixPath(rest).with_suffix('.json')}"
    return target, posixpath.relpath(image, posixpath.dirname(target))


def _write(dataset: NormalizedSource, out: Path, options: Mapping[str, Any]) -> None:
    manifest_file = dataset.root / "annonorm.json"
    names = dataset.manifest.category_names
    for name in names:
        if "\n" in name or "\r" in name or name != name.strip() or name in (IGNORE, BACKGROUND):
            message = f"class {name!r} cannot be a LabelMe label (labels.txt holds one plain name per line)"
            raise InvalidDataError(message, file=manifest_file, location="categories")
    (out / LABELS_FILE).write_text("".join(f"{n}\n" for n in (IGNORE, BACKGROUND, *names)), encoding="utf-8")
    copy = options.get("copy_images") or "none"
    for split in dataset.manifest.splits:
        written: dict[str, str] = {}
        for number, record in enumerate(dataset.records(split), start=1):
            where: dict[str, Any] = {"file": dataset.split_path(split), "location": f"line {number}"}
            target, image_path = _export_paths(record["image"], split)
            if target in written:
                message = f"images {written[target]!r} and {record['image']!r} would share the LabelMe file {target}"
                raise InvalidDataError(message, **where)
            written[target] = record["image"]
            try:
                document = record_to_labelme(record=record, image_path=image_path)
            except ValueError as exc:
                raise InvalidDataError(f"{exc}; LabelMe would read them as one instance", **where) from None
            (out / target).parent.mkdir(parents=True, exist_ok=True)
            text = json.dumps(document, ensure_ascii=False, indent=2) + "\n"
            (out / target).write_text(text, encoding="utf-8")
            if copy != "none":
                _place_image(dataset.image_path(record["image"]), out / record["image"], copy)


def _place_image(source: Path, target: Path, mode: str) -> None:
    if not source.is_file():
        raise InvalidDataError(f"image does not exist; cannot {mode} it", file=source)
    target.parent.mkdir(parents=True, exist_ok=True)
    if mode == "symlink":
        target.symlink_to(os.path.abspath(source))
    else:
        shutil.copyfile(source, target)


# ---------------------------------------------------------------------------------------------- the converter


class LabelmeConverter(Converter):
    """LabelMe / AnyLabeling / X-AnyLabeling JSON, one file per image, both ways."""

    name = "labelme"
    summary = "LabelMe JSON (labelme, AnyLabeling, X-AnyLabeling): one file per image, polygons, boxes, masks"
    read_options = (
        Option("split", "Put every file in this split (default: top-level train/val/test folders, else train)"),
        workers_option(f"read the files (a pool above {PARALLEL_MIN_FILES} files)"),
    )
    write_options = (
        Option(
            "copy_images",
            "Put the images where the files' imagePath points (OUT/<image path>): none, symlink or copy",
            default="none",
            choices=("none", "symlink", "copy"),
        ),
    )
    capabilities = Capabilities(
        box_attributes=True,
        image_attributes=True,
        reserved_attributes=BOX_FIELDS | TOP_KEYS,
        added_attributes=frozenset({"group_id"}),
        image_labels=True,
        label_order=False,
        unknown_sizes=True,
        category_order=True,
        polygons=True,
        rle=True,
        obb=True,
        scores=True,
        shape_boxes=True,
    )

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
