"""Pascal VOC: per-image XML annotations, split lists, and palette PNG segmentation.

Origin: the PASCAL Visual Object Classes challenge (2005-2012) devkit. A VOC root holds
``Annotations/<stem>.xml`` (one ``<annotation>`` per image: ``filename``, ``size``, ``segmented``,
``object`` s with ``name``, ``pose``, ``truncated``, ``occluded``, ``difficult``, ``bndbox``,
``part``, ``actions``, ``point``), ``ImageSets/Main/<split>.txt`` (one stem per line),
``JPEGImages/``, ``SegmentationClass/<stem>.png`` and ``SegmentationObject/<stem>.png``.

Conventions applied here (and undone by the writer):

* Coordinates. VOC corners are 1-based *inclusive* pixel indices: a box covering the 0-based
  pixel columns 0..9 is written ``xmin=1 xmax=10``. annonorm boxes are continuous corners, so
  ``x1 = xmin - 1, y1 = ymin - 1, x2 = xmax, y2 = ymax`` (the same box is ``x1=0 x2=10``).
  Float coordinates (some tools write them) go through the same formula. A ``0`` minimum (0-based
  tools such as Roboflow's export) would fall outside the image: it is clamped to ``0``. The
  writer rounds to the pixel grid: ``xmin = round(x1) + 1, xmax = round(x2)``.
* Splits. Every pure split list ``ImageSets/Main/<split>.txt`` (falling back to
  ``ImageSets/Segmentation/``) becomes a split; class lists ``<class>_<split>.txt`` (two columns)
  are not splits. ``#`` starts a comment. Overlapping lists (``train``, ``val``, ``trainval``) are
  all kept. A listed stem without XML but with an image is an image without objects; a stem with
  neither is an error naming the list and its line. Without split lists every XML file is one
  split named ``default`` (the name Datumaro uses), in sorted file order.
* Layouts. The devkit layout; relaxed layouts (``annotations/`` + ``images/``, or XML next to the
  images in one directory); and one directory per split holding XML next to images (Roboflow).
* Classes are the data's, never a built-in list. The category table is, in this order of
  preference: a Datumaro/CVAT ``labelmap.txt`` (``name:r,g,b:parts:actions`` lines, ``#``
  comments), in its order, each category's ``source_id`` its labelmap index; else the class names
  of the per-class lists ``ImageSets/Main/<class>_<split>.txt``, sorted by name; else the classes
  the XML files use, sorted by name. ``background`` (index 0) and ``ignored`` (the void label,
  255) are not categories. Classes found in the XML but not in a labelmap or class-list table are
  appended, sorted by name. (``--classes`` fixes the table instead; the dataset writer applies it.)
* Attributes. ``difficult``, ``truncated``, ``occluded`` (0/1 -> bool), ``pose``, ``actions``
  (name -> bool), ``part`` (a list of named boxes, converted like boxes), ``point`` (0-based) and
  CVAT's ``<attributes>`` go to the box attributes; ``segmented`` (bool), ``depth``, ``folder``,
  ``source``, ``owner`` and any other element of ``<annotation>`` to the record attributes.
  Values without a known type are typed from their text (``true``/``false``, integers, floats).
* Masks (option ``masks``). ``instance``: ``SegmentationObject`` pixel k is the k-th object of the
  XML, 255 void; ``semantic``: ``SegmentationClass`` pixel is the VOC class index, 0 background,
  255 void (without a labelmap, index k is the k-th of the 20 VOC classes, as the devkit defines
  it, and must be a class of the dataset). Palette (``P``), gray (``L``) and RGB PNGs (colors
  looked up in the VOC palette or the labelmap) are read, checked, and copied into the output's
  ``masks/`` as plain ``L`` PNGs (16-bit ``I;16`` for an instance mask of more than 254 objects,
  void 65535).

XML is parsed with defusedxml: entity declarations and external references are refused, so a
billion-laughs or XXE file is a :class:`~annonorm.errors.ParseError`, never expanded. Every input
file (XML, split and class lists, labelmap, mask PNG) is opened only when it is a regular file: a
FIFO or a device named ``a.xml`` is refused, never read. A folder without VOC XML is refused with
"no VOC annotations here", never read as an empty dataset.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

import defusedxml
import defusedxml.ElementTree as SafeET
import numpy as np

from annonorm.converters.base import (
    Capabilities,
    Converter,
    Option,
    ReadContext,
    ReadResult,
    make_record,
    workers_option,
)
from annonorm.engine import Executor
from annonorm.errors import AnnonormError, InvalidDataError, ParseError, UnsafePathError, UsageError
from annonorm.fsutil import open_regular, read_regular_bytes, require_regular_file
from annonorm.geometry import corners_to_one_based, one_based_to_corners
from annonorm.images import read_image_size
from annonorm.io import DatasetWriter, NormalizedSource
from annonorm.masks import MAX_8BIT_INSTANCES
from annonorm.paths import check_relative_path
from annonorm.schemas.manifest import Category

__all__ = [
    "VOC_CLASSES",
    "VocConverter",
    "box_to_voc_corners",
    "box_to_voc_object",
    "categories_to_labelmap",
    "labelmap_line_to_entry",
    "record_to_voc_annotation",
    "voc_annotation_to_record",
    "voc_corners_to_box",
    "voc_element_to_value",
    "voc_instance_mask_to_instance",
    "voc_object_to_box",
    "voc_palette",
    "voc_semantic_mask_to_semantic",
    "voc_text_to_value",
]

# ---------------------------------------------------------------------------------------------- constants

#: The 20 VOC classes, in VOC index order (aeroplane = 1; 0 is background).
VOC_CLASSES = (
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)
BACKGROUND = "background"
#: The labelmap name of VOC's void label (mask value 255), as Datumaro writes it.
IGNORED = "ignored"
VOID = 255
VOID_16 = 65535
DEFAULT_SPLIT = "default"
NOT_VOC = "no VOC annotations here"
EXPECTED_LAYOUT = (
    "expected Annotations/*.xml (or annotations/), *.xml next to the images, or one directory of *.xml per split, "
    "each rooted at <annotation>"
)
ANNOTATION_DIRS = ("Annotations", "annotations")
IMAGE_DIRS = ("JPEGImages", "images", "Images")
IMAGESET_DIRS = ("Main", "Segmentation")
LABELMAP = "labelmap.txt"
SEGMENTATION_DIRS = {"instance": "SegmentationObject", "semantic": "SegmentationClass"}
#: Image suffixes tried when looking an image up by stem, most usual first.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")
#: How many XML files (by name) sniffing and the "is this VOC at all" check look at.
SNIFF_FILES = 5
#: Below this many XML files a process pool costs more than it saves.
PARALLEL_MIN_FILES = 2000
CHUNK_SIZE = 128
#: Object children with a fixed meaning; every other child is kept generically.
FLAG_FIELDS = ("truncated", "occluded", "difficult")
_RECORD_KNOWN = frozenset({"filename", "size", "object"})
_CORNERS = ("xmin", "ymin", "xmax", "ymax")
_INT_TEXT = re.compile(r"-?(0|[1-9][0-9]*)")
_FLOAT_TEXT = re.compile(r"-?[0-9]+\.[0-9]+([eE][-+]?[0-9]+)?")
_XML_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_SPLIT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_ROOT_TAG = re.compile(rb"<([A-Za-z_][\w.:-]*)")
_PROLOG = re.compile(rb"<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^>\[]*(\[.*?\])?\s*>", re.DOTALL)


def voc_palette() -> list[tuple[int, int, int]]:
    """The 256-color VOC palette: index i's color spreads i's bits over the high bits of R, G, B."""
    colors = []
    for index in range(256):
        red = green = blue = 0
        value = index
        for shift in range(7, -1, -1):
            red |= (value & 1) << shift
            green |= ((value >> 1) & 1) << shift
            blue |= ((value >> 2) & 1) << shift
            value >>= 3
        colors.append((red, green, blue))
    return colors


# ---------------------------------------------------------------------------------------------- sniff


def _root_tag(path: Path) -> str | None:
    """The name of an XML file's first element, from its first 4 KiB (None if unreadable or not a regular file)."""
    try:
        with open_regular(path, "annotation XML") as stream:
            prefix = stream.read(4096)
    except (OSError, AnnonormError):
        return None
    match = _ROOT_TAG.search(_PROLOG.sub(b"", prefix))
    return match.group(1).decode("ascii", "replace") if match else None


def _entries(directory: Path) -> list[os.DirEntry[str]]:
    """The entries of ``directory`` (none when it does not exist); a folder that cannot be listed is a ParseError."""
    try:
        with os.scandir(directory) as iterator:
            return list(iterator)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise ParseError(f"cannot list the folder: {exc.strerror}", file=directory) from None


def _xml_files(directory: Path) -> list[Path]:
    """The ``*.xml`` entries of ``directory``, by name.

    Whatever they are: a FIFO, a device or a directory named ``x.xml`` is kept here, so that reading
    it refuses it by name instead of leaving the image out silently.
    """
    return sorted((Path(e.path) for e in _entries(directory) if e.name.lower().endswith(".xml")), key=lambda p: p.name)


def _not_voc_reason(files: Sequence[Path]) -> str | None:
    """Why ``files`` are not VOC annotations (their first few all have another root element), else None."""
    sample = files[:SNIFF_FILES]
    tags = [_root_tag(path) for path in sample]
    if not sample or any(tag is None or tag == "annotation" for tag in tags):
        return None
    return f"{sample[0].name} starts with <{tags[0]}>, expected <annotation>"


def _has_voc_xml(directory: Path) -> bool:
    return any(_root_tag(path) == "annotation" for path in _xml_files(directory)[:SNIFF_FILES])


def sniff_voc(source: Path) -> bool:
    """Whether ``source`` is a directory of VOC annotations (devkit, relaxed or per-split layout)."""
    try:
        if not source.is_dir():
            return False
        if any(_has_voc_xml(source / name) for name in ANNOTATION_DIRS) or _has_voc_xml(source):
            return True
        return any(_has_voc_xml(Path(e.path)) for e in sorted(_entries(source), key=lambda e: e.name) if e.is_dir())
    except AnnonormError:
        return False


# ---------------------------------------------------------------------------------------------- mapping


def voc_text_to_value(*, text: str | None) -> Any:
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


def _flag(text: str | None) -> Any:
    value = (text or "").strip()
    if value in ("0", "1"):
        return value == "1"
    return voc_text_to_value(text=value)


def voc_element_to_value(*, element: ET.Element) -> Any:
    """An element without a known meaning as JSON: text is typed, children become a dict (repeats a list)."""
    children = list(element)
    if not children:
        return voc_text_to_value(text=element.text)
    out: dict[str, Any] = {}
    repeated: set[str] = set()
    for child in children:
        value = voc_element_to_value(element=child)
        if child.tag in repeated:
            out[child.tag].append(value)
        elif child.tag in out:
            out[child.tag] = [out[child.tag], value]
            repeated.add(child.tag)
        else:
            out[child.tag] = value
    return out


def voc_corners_to_box(*, xmin: float, ymin: float, xmax: float, ymax: float) -> tuple[float, float, float, float]:
    """VOC's 1-based inclusive corners as annonorm's continuous corners ``(x1, y1, x2, y2)``."""
    # VOC corners are 1-based and inclusive: pixel column xmin-1 (0-based) is the first one covered,
    # column xmax-1 the last, so its right edge is at xmax. A 0 (written by 0-based tools) is clamped.
    return one_based_to_corners(xmin, ymin, xmax, ymax)


def box_to_voc_corners(*, x1: float, y1: float, x2: float, y2: float) -> tuple[int, int, int, int]:
    """annonorm corners on VOC's 1-based inclusive integer grid ``(xmin, ymin, xmax, ymax)``."""
    # The inverse of voc_corners_to_box, rounded to whole pixels. VOC cannot hold a box narrower
    # than one pixel (xmax >= xmin): a degenerate one is widened to one pixel.
    return corners_to_one_based(x1, y1, x2, y2)


def _number(element: ET.Element | None, tag: str, *, file: str, where: str) -> float:
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


def _bndbox(element: ET.Element, *, file: str, where: str) -> tuple[float, float, float, float]:
    bndbox = element.find("bndbox")
    if bndbox is None:
        raise InvalidDataError(
            "missing <bndbox>; expected <bndbox> with xmin, ymin, xmax, ymax", file=file, location=f"{where}/bndbox"
        )
    xmin, ymin, xmax, ymax = (_number(bndbox, tag, file=file, where=f"{where}/bndbox") for tag in _CORNERS)
    if xmax < xmin or ymax < ymin:
        axis = "x" if xmax < xmin else "y"
        low, high = (xmin, xmax) if axis == "x" else (ymin, ymax)
        raise InvalidDataError(
            f"{axis}max ({high:g}) is smaller than {axis}min ({low:g}); expected {axis}min <= {axis}max",
            file=file,
            location=f"{where}/bndbox",
        )
    return voc_corners_to_box(xmin=xmin, ymin=ymin, xmax=xmax, ymax=ymax)


def _name(element: ET.Element, *, file: str, where: str) -> str:
    text = (element.findtext("name") or "").strip()
    if not text:
        raise InvalidDataError("missing or empty <name>; expected a class name", file=file, location=f"{where}/name")
    return text


def voc_object_to_box(*, element: ET.Element, index: int, file: str) -> dict[str, Any]:
    """One ``<object>`` (the ``index``-th, 1-based as in XPath) as a box dict with its VOC attributes."""
    where = f"object[{index}]"
    name = _name(element, file=file, where=where)
    x1, y1, x2, y2 = _bndbox(element, file=file, where=where)
    attributes: dict[str, Any] = {}
    parts: list[dict[str, Any]] = []
    for child in element:
        tag = child.tag
        if tag in ("name", "bndbox"):
            continue
        if tag in FLAG_FIELDS:
            attributes[tag] = _flag(child.text)
        elif tag == "pose":
            attributes["pose"] = (child.text or "").strip()
        elif tag == "actions":
            attributes["actions"] = {action.tag: _flag(action.text) for action in child}
        elif tag == "part":
            part_where = f"{where}/part[{len(parts) + 1}]"
            px1, py1, px2, py2 = _bndbox(child, file=file, where=part_where)
            parts.append(
                {"name": _name(child, file=file, where=part_where), "x1": px1, "y1": py1, "x2": px2, "y2": py2}
            )
        elif tag == "point":
            # A VOC point is a 1-based pixel index, like the corners: 0-based here.
            px = _number(child, "x", file=file, where=f"{where}/point") - 1.0
            py = _number(child, "y", file=file, where=f"{where}/point") - 1.0
            attributes["point"] = {"x": px, "y": py}
        elif tag == "attributes":
            # CVAT writes free attributes as <attribute><name>n</name><value>v</value></attribute>.
            for attribute in child.iter("attribute"):
                key = (attribute.findtext("name") or "").strip()
                if key:
                    attributes[key] = voc_text_to_value(text=attribute.findtext("value"))
        else:
            attributes[tag] = voc_element_to_value(element=child)
    if parts:
        attributes["parts"] = parts
    box: dict[str, Any] = {"name": name, "x1": x1, "y1": y1, "x2": x2, "y2": y2}
    if attributes:
        box["attributes"] = attributes
    return box


def _side(size: ET.Element | None, tag: str, *, file: str) -> int | None:
    if size is None or size.find(tag) is None:
        return None
    value = _number(size, tag, file=file, where="size")
    if value < 0 or value != int(value):
        raise InvalidDataError(
            f"expected a whole number of pixels >= 0, found {value:g}", file=file, location=f"size/{tag}"
        )
    return int(value) or None  # 0 means "unknown" (tools write it when they never opened the image)


def voc_annotation_to_record(*, root: ET.Element, file: str) -> dict[str, Any]:
    """An ``<annotation>`` element as ``{"filename", "width", "height", "boxes", "attributes"}``."""
    if root.tag != "annotation":
        raise ParseError(f"root element is <{root.tag}>; expected <annotation>", file=file)
    filename = (root.findtext("filename") or "").strip() or None
    size = root.find("size")
    width, height = _side(size, "width", file=file), _side(size, "height", file=file)
    if width is None or height is None:
        width = height = None
    attributes: dict[str, Any] = {}
    if size is not None and size.find("depth") is not None:
        attributes["depth"] = voc_text_to_value(text=size.findtext("depth"))
    for child in root:
        if child.tag in _RECORD_KNOWN:
            continue
        if child.tag == "segmented":
            value = _flag(child.text)
        elif child.tag in ("folder", "path"):
            value = (child.text or "").strip()
        else:
            value = voc_element_to_value(element=child)
        attributes[child.tag] = value
    boxes = [voc_object_to_box(element=o, index=i, file=file) for i, o in enumerate(root.findall("object"), start=1)]
    return {"filename": filename, "width": width, "height": height, "boxes": boxes, "attributes": attributes}


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


def _mask_indices(path: Path, colors: Mapping[int, int]) -> np.ndarray:
    """A mask PNG as its index array (palette indices, gray values, or RGB colors looked up in ``colors``)."""
    from PIL import Image, UnidentifiedImageError

    require_regular_file(path, "mask PNG")
    try:
        with Image.open(path) as image:
            mode = image.mode
            if mode in ("P", "L", "I;16", "I;16L", "I;16B", "I"):
                return np.asarray(image).astype(np.int64)
            if mode not in ("RGB", "RGBA"):
                raise InvalidDataError(f"mask mode {mode}; expected a palette, gray or RGB PNG", file=path)
            rgb = np.asarray(image.convert("RGB")).astype(np.int64)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ParseError(f"cannot read the mask PNG: {exc}", file=path) from None
    keys = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    unique, inverse = np.unique(keys, return_inverse=True)
    indices = np.empty(len(unique), dtype=np.int64)
    for position, key in enumerate(unique.tolist()):
        index = colors.get(key)
        if index is None:
            color = (key >> 16, (key >> 8) & 255, key & 255)
            raise InvalidDataError(f"color {color} is not in the palette or labelmap", file=path)
        indices[position] = index
    return indices[inverse].reshape(keys.shape)


def voc_instance_mask_to_instance(*, indices: np.ndarray, objects: int, file: str) -> np.ndarray:
    """A SegmentationObject index array as an annonorm instance mask (uint8, or uint16 above 254 objects)."""
    void = VOID_16 if indices.max(initial=0) > VOID else VOID
    values = np.unique(indices)
    bad = [int(v) for v in values if v < 0 or (v > objects and v != void)]
    if bad:
        raise InvalidDataError(
            f"pixel value {bad[0]} names no object; expected 0, 1..{objects} (the XML's objects) or {void} (void)",
            file=file,
        )
    if objects <= MAX_8BIT_INSTANCES:
        return np.where(indices == void, VOID, indices).astype(np.uint8)
    return np.where(indices == void, VOID_16, indices).astype(np.uint16)


def voc_semantic_mask_to_semantic(*, indices: np.ndarray, lut: Sequence[int], file: str) -> np.ndarray:
    """A SegmentationClass index array as an annonorm semantic mask (id + 1, 0 background, 255 void).

    ``lut[i]`` is the annonorm value of VOC index ``i``, or -1 when ``i`` names no class.
    """
    table = np.asarray(lut, dtype=np.int64)
    values = np.unique(indices)
    bad = [int(v) for v in values if v < 0 or v >= len(table) or table[v] < 0]
    if bad:
        raise InvalidDataError(f"pixel value {bad[0]} is not a class index of the labelmap or VOC classes", file=file)
    return table[indices].astype(np.uint8)


# ---------------------------------------------------------------------------------------------- reader


@dataclass(frozen=True)
class _Item:
    """One image to read: its stem, XML (None when only the image exists) and where it was listed."""

    stem: str
    xml: Path | None
    image_dir: Path
    image_prefix: str
    listed_in: Path | None = None
    line: int | None = None


@dataclass
class _Split:
    name: str
    items: list[_Item] = field(default_factory=list)


@dataclass
class _Layout:
    root: Path
    image_root: Path
    splits: list[_Split]
    lists: list[Path]
    labelmap: Path | None
    segmentation: dict[str, Path]
    #: The classes that ``ImageSets/Main/<class>_<split>.txt`` name, sorted (empty without such lists).
    class_names: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Context:
    """What every worker needs besides its items (pickled once per chunk)."""

    kind: str | None
    colors: dict[int, int]
    lut: tuple[int, ...]


@dataclass(frozen=True)
class _Task:
    stem: str
    xml: str | None
    image_dir: str
    image_prefix: str
    stem_image: str | None
    mask_source: str | None
    mask_target: str | None
    mask_relative: str | None
    write_mask: bool


def _first_dir(root: Path, names: Iterable[str]) -> Path | None:
    return next((root / name for name in names if (root / name).is_dir()), None)


def _image_index(directory: Path) -> dict[str, str]:
    """Stem -> image file name in ``directory`` (the most usual suffix wins)."""
    rank = {suffix: position for position, suffix in enumerate(IMAGE_SUFFIXES)}
    found: dict[str, tuple[int, str]] = {}
    for entry in _entries(directory):
        stem, dot, suffix = entry.name.rpartition(".")
        position = rank.get(f"{dot}{suffix}".lower())
        if stem and position is not None and (stem not in found or position < found[stem][0]):
            found[stem] = (position, entry.name)
    return {stem: name for stem, (_, name) in found.items()}


def _safe_stem(stem: str, *, file: str | Path, location: str | None = None) -> str:
    if not stem or stem in (".", "..") or "/" in stem or "\\" in stem or "\x00" in stem:
        raise UnsafePathError(
            f"{stem!r} is not a file stem; expected a name without '/' or '..'", file=file, location=location
        )
    return stem


def _list_is_class_list(path: Path, names: set[str]) -> bool:
    """``<class>_<split>.txt`` (its suffix names another list), or a list whose first entry has two columns."""
    prefix, underscore, suffix = path.stem.rpartition("_")
    if underscore and prefix and suffix in names:
        return True
    with open_regular(path, "image set list") as stream:
        try:
            for raw in stream:
                tokens = raw.decode("utf-8", "replace").split("#", 1)[0].split()
                if tokens:
                    return len(tokens) == 2 and tokens[1] in ("-1", "0", "1")
        except OSError as exc:
            raise ParseError(f"cannot read the image set list: {exc.strerror}", file=path) from None
    return False


def _list_files(directory: Path) -> list[Path]:
    """The ``*.txt`` entries of an ``ImageSets`` folder that are not directories, by name (see :func:`_xml_files`)."""
    return sorted(
        (Path(e.path) for e in _entries(directory) if e.name.endswith(".txt") and not e.is_dir()),
        key=lambda p: p.name,
    )


def _split_lists(imagesets: Path) -> tuple[list[Path], list[str]]:
    """The pure split lists of ``ImageSets/Main`` (else ``ImageSets/Segmentation``), sorted by name, and the
    class names that the per-class lists ``ImageSets/Main/<class>_<split>.txt`` name, sorted."""
    pure: list[Path] = []
    classes: set[str] = set()
    for name in IMAGESET_DIRS:
        if pure:
            break
        files = _list_files(imagesets / name)
        stems = {p.stem for p in files}
        kinds = [(p, _list_is_class_list(p, stems)) for p in files]
        if name == IMAGESET_DIRS[0]:
            for path, is_class_list in kinds:
                prefix, underscore, _ = path.stem.rpartition("_")
                if is_class_list and underscore and prefix and prefix not in (BACKGROUND, IGNORED):
                    classes.add(prefix)
        pure = [p for p, is_class_list in kinds if not is_class_list]
    return pure, sorted(classes)


def _read_split_list(path: Path) -> Iterator[tuple[int, str]]:
    try:
        text = read_regular_bytes(path, "image set list").decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError(f"not UTF-8 text ({exc.reason})", file=path) from None
    for number, line in enumerate(text.splitlines(), start=1):
        tokens = line.split("#", 1)[0].split()
        if tokens:
            yield number, tokens[0]


def _exists(path: Path) -> bool:
    """Whether anything (a file, a FIFO, a dangling symlink...) is at ``path``: reading it decides if it is usable."""
    return os.path.lexists(path)


def _annotation_dir(source: Path) -> Path | None:
    """Where the XML files are: ``Annotations/`` (or ``annotations/``) holding XML, else ``source`` itself."""
    for name in ANNOTATION_DIRS:
        if (source / name).is_dir() and _xml_files(source / name):
            return source / name
    return source if _xml_files(source) else None


def _find_layout(source: Path, images: Path | None) -> _Layout:
    """Work out where annotations, images, split lists and masks are."""
    if not source.is_dir():
        raise ParseError("expected the VOC root directory (Annotations/, ImageSets/, JPEGImages/)", file=source)
    labelmap = source / LABELMAP if _exists(source / LABELMAP) else None
    segmentation = {kind: source / name for kind, name in SEGMENTATION_DIRS.items() if (source / name).is_dir()}
    annotations = _annotation_dir(source)
    if annotations is None:
        return _per_split_layout(source, images, labelmap, segmentation)
    reason = _not_voc_reason(_xml_files(annotations))
    if reason is not None:
        raise ParseError(f"{NOT_VOC}: {reason} ({EXPECTED_LAYOUT})", file=source)
    if images is not None:
        image_dir = images
    elif (found := _first_dir(source, IMAGE_DIRS)) is not None:
        image_dir = found
    elif annotations == source:
        image_dir = source  # XML next to the images
    else:
        image_dir = source / IMAGE_DIRS[0]
    lists, class_names = _split_lists(source / "ImageSets")
    splits = []
    if lists:
        for path in lists:
            split = _Split(path.stem)
            for number, stem in _read_split_list(path):
                xml = annotations / f"{_safe_stem(stem, file=path, location=f'line {number}')}.xml"
                split.items.append(_Item(stem, xml, image_dir, "", listed_in=path, line=number))
            splits.append(split)
    else:
        items = [_Item(p.stem, p, image_dir, "") for p in _xml_files(annotations)]
        splits.append(_Split(DEFAULT_SPLIT, items))
    return _Layout(source, image_dir, splits, lists, labelmap, segmentation, class_names)


def _per_split_layout(
    source: Path, images: Path | None, labelmap: Path | None, segmentation: dict[str, Path]
) -> _Layout:
    """One directory per split, XML next to the images (Roboflow's VOC export)."""
    image_root = images if images is not None else source
    splits = []
    xml_seen: list[Path] = []
    for entry in sorted(_entries(source), key=lambda e: e.name):
        if not entry.is_dir():
            continue
        child = Path(entry.path)
        xml_files = _xml_files(child)
        if not xml_files:
            continue
        xml_seen += xml_files[:SNIFF_FILES]
        image_dir = image_root / child.name
        splits.append(_Split(child.name, [_Item(p.stem, p, image_dir, f"{child.name}/") for p in xml_files]))
    if not splits:
        raise ParseError(f"{NOT_VOC}: no *.xml file found ({EXPECTED_LAYOUT})", file=source)
    reason = _not_voc_reason(xml_seen)
    if reason is not None:
        raise ParseError(f"{NOT_VOC}: {reason} ({EXPECTED_LAYOUT})", file=source)
    return _Layout(source, image_root, splits, [], labelmap, segmentation, [])


def _read_labelmap(path: Path) -> list[dict[str, Any]]:
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
            raise InvalidDataError(
                f"class {entry['name']!r} is already on line {seen[entry['name']]}",
                file=path,
                location=f"line {number}",
            )
        seen[entry["name"]] = number
        entries.append(entry)
    return entries


def _xml_class_names(layout: _Layout) -> list[str]:
    """The classes the XML files use, sorted (a pre-pass, needed only when semantic masks index a table
    that only the XML can tell). A file that does not parse is left to the main pass to report."""
    names: set[str] = set()
    for xml in sorted({item.xml for split in layout.splits for item in split.items if item.xml is not None}):
        if not _exists(xml):
            continue
        try:
            root = _parse_xml(str(xml))
        except AnnonormError:
            continue
        names.update(name for name in ((o.findtext("name") or "").strip() for o in root.findall("object")) if name)
    return sorted(names)


def _declare_categories(writer: DatasetWriter, layout: _Layout, kind: str | None) -> _Context:
    """Declare the class table (see the module docstring); build the mask color lookups and index table.

    With a labelmap, mask index k is its k-th line; without one it is the k-th VOC class (the devkit's
    own numbering), whichever categories the dataset has.
    """
    if layout.labelmap is not None:
        entries = _read_labelmap(layout.labelmap)
        for index, entry in enumerate(entries):
            if entry["name"] not in (BACKGROUND, IGNORED):
                attributes: dict[str, Any] = {k: entry[k] for k in ("color", "parts", "actions") if k in entry}
                writer.category(entry["name"], source_id=index, attributes=attributes or None)
        mask_entries = entries
    else:
        names = layout.class_names or (_xml_class_names(layout) if kind == "semantic" else [])
        for name in names:
            writer.category(name)
        mask_entries = _standard_entries()
    palette = voc_palette()
    lut = [-1] * 256
    lut[VOID] = VOID
    class_colors: dict[int, int] = {}
    for index, entry in enumerate(mask_entries):
        color = entry.get("color")
        if index < 256 and color is not None:
            class_colors.setdefault((color[0] << 16) | (color[1] << 8) | color[2], index)
        if entry["name"] == BACKGROUND:
            value = 0
        elif entry["name"] == IGNORED:
            value = VOID
        elif writer.has_category(entry["name"]):
            value = writer.category(entry["name"]) + 1
        else:
            value = -1  # a VOC class the dataset does not have: a pixel of it is an error
        if index < 256:
            lut[index] = value
    void_color = palette[VOID]
    class_colors.setdefault((void_color[0] << 16) | (void_color[1] << 8) | void_color[2], VOID)
    if kind == "instance":
        colors = {(r << 16) | (g << 8) | b: index for index, (r, g, b) in enumerate(palette)}
    else:
        colors = class_colors
    return _Context(kind=kind, colors=colors, lut=tuple(lut))


def _standard_entries() -> list[dict[str, Any]]:
    """The devkit's mask numbering (background, the 20 VOC classes): what mask indices mean without a labelmap."""
    palette = voc_palette()
    names = (BACKGROUND, *VOC_CLASSES)
    return [{"name": name, "color": list(palette[index])} for index, name in enumerate(names)]


def _parse_xml(path: str) -> ET.Element:
    """Parse with defusedxml; every refusal becomes a :class:`ParseError` saying why.

    The bytes are read first, from a regular file only (a FIFO named ``a.xml`` would block forever).
    """
    data = read_regular_bytes(Path(path), "annotation XML")
    try:
        root: ET.Element = SafeET.fromstring(data, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except defusedxml.EntitiesForbidden as exc:
        kind = f"external entity {exc.sysid!r}" if exc.sysid else "entity"
        raise ParseError(
            f"refused: the XML declares {kind} {exc.name!r} (entity expansion and external entities are "
            "not allowed; VOC annotations need neither)",
            file=path,
        ) from None
    except defusedxml.ExternalReferenceForbidden as exc:
        raise ParseError(
            f"refused: the XML references the external resource {exc.sysid!r}; external references are not allowed",
            file=path,
        ) from None
    except defusedxml.DTDForbidden:
        raise ParseError("refused: the XML has a document type declaration", file=path) from None
    except ET.ParseError as exc:
        line, column = exc.position
        raise ParseError(f"not well-formed XML ({exc})", file=path, location=f"line {line}, column {column}") from None
    return root


def _resolve_image(task: _Task, filename: str | None, xml: str) -> str:
    """The record's image path: ``<filename>`` if that file exists, else the image found by stem."""
    if filename is not None:
        try:
            check_relative_path(filename)
        except ValueError as exc:
            raise UnsafePathError(str(exc), file=xml, location="filename") from None
        if os.path.isfile(os.path.join(task.image_dir, filename)) or task.stem_image is None:
            return task.image_prefix + PurePosixPath(filename.replace("\\", "/")).as_posix()
    if task.stem_image is not None:
        return task.image_prefix + task.stem_image
    return f"{task.image_prefix}{task.stem}.jpg"


def _write_mask(task: _Task, context: _Context, objects: int, size: tuple[int, int] | None) -> bool:
    """Check and copy the task's mask; return whether the record references one."""
    from PIL import Image

    assert task.mask_source is not None and task.mask_target is not None
    if not task.write_mask:
        return True
    indices = _mask_indices(Path(task.mask_source), context.colors)
    if size is not None and (indices.shape[1], indices.shape[0]) != size:
        raise InvalidDataError(
            f"mask is {indices.shape[1]}x{indices.shape[0]} but the image is {size[0]}x{size[1]}; "
            "expected the same size",
            file=task.mask_source,
        )
    if context.kind == "instance":
        values = voc_instance_mask_to_instance(indices=indices, objects=objects, file=task.mask_source)
    else:
        values = voc_semantic_mask_to_semantic(indices=indices, lut=context.lut, file=task.mask_source)
    Image.fromarray(values).save(task.mask_target, format="PNG")
    return True


def _task_image(task: _Task) -> str:
    """The image a task is about, as far as it is known without its XML (``skipped.jsonl`` names it)."""
    return task.image_prefix + (task.stem_image or task.stem)


def _read_task(task: _Task, context: _Context) -> dict[str, Any]:
    """Read one image: parse its XML, resolve image and size, copy its mask; return the record dict.

    An error names the image (the record's image path once ``<filename>`` is read, else the image
    found by stem, else the stem).
    """
    image = _task_image(task)
    try:
        if task.xml is not None:
            root = _parse_xml(task.xml)
            filename = (root.findtext("filename") or "").strip() or None
            image = _resolve_image(task, filename, task.xml)
            parsed = voc_annotation_to_record(root=root, file=task.xml)
        else:
            parsed = {"width": None, "height": None, "boxes": [], "attributes": {}}
            image = task.image_prefix + (task.stem_image or f"{task.stem}.jpg")
        return _finish_task(task, context, parsed, image)
    except AnnonormError as error:
        if error.image is None:
            error.image = image
        raise


def _finish_task(task: _Task, context: _Context, parsed: dict[str, Any], image: str) -> dict[str, Any]:
    width, height = parsed["width"], parsed["height"]
    if width is None:
        relative = Path(task.image_dir) / image[len(task.image_prefix) :]
        # Only a regular file's header is read (a FIFO named a.jpg would block): else the size stays unknown.
        size = read_image_size(relative) if relative.is_file() else None
        if size is not None:
            width, height = size
    mask = None
    if task.mask_source is not None:
        known = (width, height) if width is not None and height is not None else None
        if _write_mask(task, context, len(parsed["boxes"]), known):
            mask = task.mask_relative
    return make_record(
        image=image,
        width=width,
        height=height,
        boxes=parsed["boxes"],
        mask=mask,
        id=task.stem,
        attributes=parsed["attributes"],
    )


_ERRORS: dict[str, type[AnnonormError]] = {
    cls.__name__: cls for cls in (AnnonormError, ParseError, InvalidDataError, UnsafePathError, UsageError)
}


def _read_chunk(tasks: Sequence[_Task], context: _Context) -> list[tuple[str, Any]]:
    """Read tasks in order; an error becomes a picklable ``("error", (class, message, file, location, image))``."""
    outcomes: list[tuple[str, Any]] = []
    for task in tasks:
        try:
            outcomes.append(("ok", _read_task(task, context)))
        except AnnonormError as exc:
            name = type(exc).__name__ if type(exc).__name__ in _ERRORS else "AnnonormError"
            outcomes.append(("error", (name, exc.message, exc.file, exc.location, exc.image or _task_image(task))))
    return outcomes


def _run(tasks: list[_Task], context: _Context, executor: Executor, workers: int) -> Iterator[tuple[str, Any]]:
    """Outcomes in task order: in this process, or on the engine's ordered map with a bounded number of
    chunks in flight (in fresh processes: forkserver, else spawn)."""
    if workers <= 1:
        for task in tasks:
            yield from _read_chunk([task], context)
        return
    chunks = ((None, tasks[start : start + CHUNK_SIZE]) for start in range(0, len(tasks), CHUNK_SIZE))
    outcomes = executor.map(
        partial(_read_chunk, context=context), chunks, processes=workers, window=2 * workers, fresh=True
    )
    with contextlib.closing(outcomes):
        for _, outcome in outcomes:
            yield from outcome or ()


def _choose_masks(option: str, layout: _Layout) -> str | None:
    if option == "none":
        return None
    if option == "auto":
        return next((kind for kind in ("instance", "semantic") if kind in layout.segmentation), None)
    if option not in layout.segmentation:
        raise UsageError(
            f"--masks {option} needs the {SEGMENTATION_DIRS[option]}/ directory, which is missing", file=layout.root
        )
    return option


# ---------------------------------------------------------------------------------------------- writer


def _text_of(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _flag_text(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _append_value(parent: ET.Element, tag: str, value: Any) -> None:
    """Write a JSON value as elements (the inverse of :func:`voc_element_to_value`); lists repeat the tag."""
    if value is None or not _XML_NAME.fullmatch(tag) or tag.lower().startswith("xml"):
        return
    if isinstance(value, list):
        for item in value:
            _append_value(parent, tag, item)
    elif isinstance(value, dict):
        element = ET.SubElement(parent, tag)
        for key, item in value.items():
            _append_value(element, key, item)
    else:
        ET.SubElement(parent, tag).text = _text_of(value)


def _append_bndbox(parent: ET.Element, box: Mapping[str, Any]) -> None:
    corners = box_to_voc_corners(x1=box["x1"], y1=box["y1"], x2=box["x2"], y2=box["y2"])
    bndbox = ET.SubElement(parent, "bndbox")
    for tag, value in zip(_CORNERS, corners, strict=True):
        ET.SubElement(bndbox, tag).text = str(value)


def box_to_voc_object(*, box: Mapping[str, Any]) -> ET.Element:
    """A box dict as an ``<object>`` element (VOC attributes in their elements, others in ``<attributes>``)."""
    attributes = dict(box.get("attributes") or {})
    element = ET.Element("object")
    ET.SubElement(element, "name").text = box["name"]
    ET.SubElement(element, "pose").text = str(attributes.pop("pose", "Unspecified"))
    for tag in FLAG_FIELDS:
        if tag in attributes or tag != "occluded":
            ET.SubElement(element, tag).text = _flag_text(attributes.pop(tag, False))
    _append_bndbox(element, box)
    for part in attributes.pop("parts", None) or []:
        if isinstance(part, dict) and {"name", "x1", "y1", "x2", "y2"} <= part.keys():
            part_element = ET.SubElement(element, "part")
            ET.SubElement(part_element, "name").text = str(part["name"])
            _append_bndbox(part_element, part)
    actions = attributes.pop("actions", None)
    if isinstance(actions, dict):
        actions_element = ET.SubElement(element, "actions")
        for action, value in actions.items():
            if _XML_NAME.fullmatch(action):
                ET.SubElement(actions_element, action).text = _flag_text(value)
    point = attributes.pop("point", None)
    if isinstance(point, dict) and {"x", "y"} <= point.keys():
        point_element = ET.SubElement(element, "point")
        # Back to VOC's 1-based pixel index.
        ET.SubElement(point_element, "x").text = _text_of(point["x"] + 1)
        ET.SubElement(point_element, "y").text = _text_of(point["y"] + 1)
    scalars = {k: v for k, v in attributes.items() if isinstance(v, (str, int, float, bool))}
    if scalars:
        block = ET.SubElement(element, "attributes")
        for key, value in scalars.items():
            attribute = ET.SubElement(block, "attribute")
            ET.SubElement(attribute, "name").text = key
            ET.SubElement(attribute, "value").text = _text_of(value)
    return element


def record_to_voc_annotation(*, record: Mapping[str, Any], filename: str) -> ET.Element:
    """A record as an ``<annotation>`` element, the inverse of :func:`voc_annotation_to_record`."""
    attributes = dict(record.get("attributes") or {})
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = str(attributes.pop("folder", IMAGE_DIRS[0]))
    ET.SubElement(root, "filename").text = filename
    depth = attributes.pop("depth", 3)
    segmented = attributes.pop("segmented", record.get("mask") is not None)
    for key in ("filename", "size", "object"):
        attributes.pop(key, None)
    for key, value in attributes.items():
        _append_value(root, key, value)
    if record.get("width") is not None and record.get("height") is not None:
        size = ET.SubElement(root, "size")
        ET.SubElement(size, "width").text = str(record["width"])
        ET.SubElement(size, "height").text = str(record["height"])
        ET.SubElement(size, "depth").text = _text_of(depth)
    ET.SubElement(root, "segmented").text = _flag_text(segmented)
    for box in record.get("boxes") or ():
        root.append(box_to_voc_object(box=box))
    return root


def categories_to_labelmap(*, categories: Sequence[Category], palette: Sequence[tuple[int, int, int]]) -> str:
    """The ``labelmap.txt`` text: background first, then the categories in id order (VOC index = id + 1)."""
    lines = ["# label:color_rgb:parts:actions", f"{BACKGROUND}:0,0,0::"]
    for category in categories:
        if category.name in (BACKGROUND, IGNORED):
            continue  # reserved labelmap names; boxes of such a class come back from the XML
        red, green, blue = palette[category.id + 1] if category.id + 1 < VOID else palette[0]
        attributes = category.attributes or {}
        parts, actions = (attributes.get(key) for key in ("parts", "actions"))
        parts_text = ",".join(map(str, parts)) if isinstance(parts, list) else ""
        actions_text = ",".join(map(str, actions)) if isinstance(actions, list) else ""
        lines.append(f"{category.name}:{red},{green},{blue}:{parts_text}:{actions_text}")
    return "\n".join(lines) + "\n"


def _xml_bytes(root: ET.Element) -> bytes:
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="unicode").encode("utf-8") + b"\n"


def _save_palette_png(values: np.ndarray, palette: Sequence[tuple[int, int, int]], path: Path) -> None:
    from PIL import Image

    image = Image.fromarray(values.astype(np.uint8))
    image = image.convert("P") if image.mode != "P" else image
    image.putpalette([channel for color in palette for channel in color])
    image.save(path, format="PNG")


def _export_mask(
    source: Path, target: Path, kind: str, boxes: int, palette: Sequence[tuple[int, int, int]], record_file: str
) -> None:
    from PIL import Image

    try:
        with Image.open(source) as image:
            values = np.asarray(image).astype(np.int64)
    # missing, truncated, not an image (UnidentifiedImageError is an OSError), or a pixel bomb
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InvalidDataError(f"cannot read the mask: {exc}", file=source) from None
    if values.ndim != 2:
        raise InvalidDataError(f"mask has {values.shape[2]} channels; expected a single-channel mask", file=source)
    if kind == "instance":
        if boxes > MAX_8BIT_INSTANCES:
            raise InvalidDataError(
                f"{boxes} objects; VOC's 8-bit SegmentationObject PNG holds at most {MAX_8BIT_INSTANCES}",
                file=record_file,
            )
        values = np.where(values == VOID_16, VOID, values)
    _save_palette_png(values, palette, target)


@dataclass
class _Export:
    """State of one VOC export: which stems are written, and by which image."""

    out: Path
    dataset: NormalizedSource
    copy_images: bool
    written: dict[str, tuple[str, str]] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------- converter


class VocConverter(Converter):
    """Pascal VOC XML annotations, split lists and segmentation PNGs (see the module docstring)."""

    name = "voc"
    summary = "Pascal VOC: Annotations/*.xml, ImageSets/Main splits, SegmentationClass/Object PNGs"
    read_options = (
        Option(
            "masks",
            "Which segmentation PNGs to copy: instance (SegmentationObject), semantic (SegmentationClass), "
            "none, or auto (the default: instance if present, else semantic)",
            choices=("auto", "instance", "semantic", "none"),
        ),
        workers_option(f"parse XML (a pool above {PARALLEL_MIN_FILES} files)"),
    )
    write_options = (Option("copy_images", "Copy the images into JPEGImages/ as well", type=bool, default=False),)
    # The writer fills pose, truncated, difficult (and folder, depth, segmented); the reader ids records by stem;
    # corners are 1-based inclusive pixels; files are named by stem.
    capabilities = Capabilities(
        added_attributes=frozenset({"pose", "truncated", "difficult", "folder", "depth", "segmented"}),
        reader_ids=True,
        integer_pixels=True,
        empty_boxes=False,
        image_folders=False,
        category_order=True,
    )

    @classmethod
    def sniff(cls, source: Path) -> bool:
        """A directory with ``Annotations/*.xml``, or ``*.xml`` (here or one level down) rooted at ``<annotation>``."""
        return sniff_voc(source)

    @classmethod
    def source_files(cls, source: Path, options: Mapping[str, Any]) -> list[Path]:
        """``Annotations/``, ``ImageSets/``, ``labelmap.txt`` and the segmentation folder the masks option reads."""
        annotations = next((source / n for n in ANNOTATION_DIRS if (source / n).is_dir()), None)
        if annotations is None:  # one XML file, or XML beside the images: only the whole source covers them
            return [source]
        found = [annotations, *(p for p in (source / "ImageSets", source / LABELMAP) if p.exists())]
        present = [kind for kind in ("instance", "semantic") if (source / SEGMENTATION_DIRS[kind]).is_dir()]
        kind = str(options.get("masks") or "auto")
        kind = next(iter(present), "none") if kind == "auto" else kind
        return found + ([source / SEGMENTATION_DIRS[kind]] if kind in present else [])

    def read(self, source: Path, ctx: ReadContext) -> ReadResult:
        """Stream a VOC root into ``ctx.sink``: categories, one record per listed image, masks."""
        writer, options = ctx.sink, ctx.options
        layout = _find_layout(source, ctx.images)
        kind = _choose_masks(str(options.get("masks") or "auto"), layout)
        context = _declare_categories(writer, layout, kind)
        for path in [*([layout.labelmap] if layout.labelmap else []), *layout.lists]:
            writer.add_source_file(path)
        mask_dir = layout.segmentation.get(kind) if kind is not None else None
        mask_stems = {e.name[:-4] for e in _entries(mask_dir) if e.name.endswith(".png")} if mask_dir else set()
        unique_files = len({item.xml for split in layout.splits for item in split.items})
        writer.expect(sum(len(split.items) for split in layout.splits))
        # The parent encodes and writes every record, about half the work: an automatic count leaves it a core.
        workers = ctx.executor.execution.pool_size(unique_files, PARALLEL_MIN_FILES + 1, parent_busy=True)
        found = self._read_splits(layout, writer, context, mask_dir, mask_stems, ctx.executor, workers)
        # Classes the table does not hold (all of them without a labelmap or class lists), sorted by name.
        for name in sorted(found):
            writer.category(name)
        return ReadResult(name=source.resolve().name or "voc", image_root=layout.image_root)

    def _read_splits(
        self,
        layout: _Layout,
        writer: DatasetWriter,
        context: _Context,
        mask_dir: Path | None,
        mask_stems: set[str],
        executor: Executor,
        workers: int,
    ) -> set[str]:
        """Add every split's records; return the class names their boxes use."""
        found: set[str] = set()
        image_indexes: dict[Path, dict[str, str]] = {}
        sources_named: set[str] = set()
        masks_written: set[str] = set()
        for split in layout.splits:
            if not _SPLIT_NAME.fullmatch(split.name):
                raise UsageError(
                    f"split name {split.name!r} cannot name a split file; expected letters, digits, '_', '.', '-'",
                    file=split.items[0].listed_in if split.items else layout.root,
                )
            writer.declare_split(split.name)
            tasks = []
            seen: dict[str, int | None] = {}
            for item in split.items:
                index = image_indexes.setdefault(item.image_dir, _image_index(item.image_dir))
                if not self._item_ok(item, index, seen, writer):
                    continue
                has_mask = item.stem in mask_stems and mask_dir is not None
                relative = f"masks/{item.stem}.png" if has_mask else None
                tasks.append(
                    _Task(
                        stem=item.stem,
                        xml=str(item.xml) if item.xml is not None and _exists(item.xml) else None,
                        image_dir=str(item.image_dir),
                        image_prefix=item.image_prefix,
                        stem_image=index.get(item.stem),
                        mask_source=str(mask_dir / f"{item.stem}.png") if has_mask and mask_dir else None,
                        mask_target=str(writer.mask_file(relative)) if relative else None,
                        mask_relative=relative,
                        write_mask=item.stem not in masks_written,
                    )
                )
            for task, (status, payload) in zip(tasks, _run(tasks, context, executor, workers), strict=True):
                if status == "error":
                    name, message, file, location, image = payload
                    writer.problem(_ERRORS[name](message, file=file, location=location, image=image))
                    continue
                found.update(box["name"] for box in payload["boxes"])
                if payload.get("mask") is not None:
                    writer.mask_kind = context.kind
                    masks_written.add(task.stem)
                for path in (task.xml, task.mask_source):
                    if path is not None and path not in sources_named:
                        sources_named.add(path)
                        writer.add_source_file(Path(path))
                writer.add(split.name, payload)
        return found

    @staticmethod
    def _item_ok(item: _Item, index: dict[str, str], seen: dict[str, int | None], writer: DatasetWriter) -> bool:
        """Refuse a stem listed twice, or listed with neither XML nor image (through ``writer.problem``)."""
        if item.stem in seen:
            where = f"line {item.line}" if item.line is not None else None
            writer.problem(
                InvalidDataError(
                    f"{item.stem!r} is listed again (first on line {seen[item.stem]}); expected each image once",
                    file=item.listed_in or item.xml,
                    location=where,
                    image=item.image_prefix + index.get(item.stem, item.stem),
                )
            )
            return False
        seen[item.stem] = item.line
        if item.xml is not None and not _exists(item.xml) and item.stem not in index:
            writer.problem(
                InvalidDataError(
                    f"lists {item.stem!r} but there is no {item.xml} and no image of that stem in {item.image_dir}",
                    file=item.listed_in,
                    location=f"line {item.line}",
                    image=item.image_prefix + item.stem,
                )
            )
            return False
        return True

    def write(self, dataset: NormalizedSource, out: Path, *, options: Mapping[str, Any]) -> None:
        """Write the VOC devkit layout: Annotations, ImageSets/Main (and Segmentation), labelmap, masks."""
        manifest = dataset.manifest
        state = _Export(out, dataset, bool(options.get("copy_images")))
        (out / "Annotations").mkdir()
        (out / "ImageSets" / "Main").mkdir(parents=True)
        palette = voc_palette()
        class_palette = list(palette)
        for category in manifest.categories:
            color = (category.attributes or {}).get("color")
            if isinstance(color, list) and category.id + 1 < VOID:
                channels = [c for c in color if isinstance(c, int) and 0 <= c <= 255]
                if len(channels) == len(color) == 3:
                    class_palette[category.id + 1] = (channels[0], channels[1], channels[2])
        kind = manifest.mask_kind
        mask_palette = palette if kind == "instance" else class_palette
        segmented_lists: dict[str, list[str]] = {}
        for split in manifest.splits:
            stems = []
            for record in dataset.records(split):
                stem = self._write_record(state, split, record, kind, mask_palette)
                stems.append(stem)
                if record.get("mask") is not None:
                    segmented_lists.setdefault(split, []).append(stem)
            (out / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{s}\n" for s in stems), encoding="utf-8")
        if segmented_lists:
            (out / "ImageSets" / "Segmentation").mkdir()
            for split, stems in segmented_lists.items():
                path = out / "ImageSets" / "Segmentation" / f"{split}.txt"
                path.write_text("".join(f"{s}\n" for s in stems), encoding="utf-8")
        labelmap = categories_to_labelmap(categories=manifest.categories, palette=class_palette)
        (out / LABELMAP).write_text(labelmap, encoding="utf-8")

    @staticmethod
    def _write_record(
        state: _Export, split: str, record: dict[str, Any], kind: str | None, palette: Sequence[tuple[int, int, int]]
    ) -> str:
        image = record["image"]
        split_file = str(state.dataset.split_path(split))
        path = PurePosixPath(image.replace("\\", "/"))
        stem = _safe_stem(path.stem, file=split_file, location="image")
        if any(character.isspace() for character in stem):
            raise InvalidDataError(
                f"image name {image!r} holds whitespace, which VOC's ImageSets lists (one stem per line, "
                "whitespace-separated) cannot hold",
                file=split_file,
                location="image",
            )
        xml = _xml_bytes(record_to_voc_annotation(record=record, filename=path.name))
        digest = hashlib.sha256(xml).hexdigest()
        previous = state.written.get(stem)
        if previous is not None:
            if previous != (image, digest):
                raise InvalidDataError(
                    f"images {previous[0]!r} and {image!r} share the stem {stem!r} (or one image has two "
                    "different records); VOC names every file by its stem",
                    file=split_file,
                )
            return stem
        state.written[stem] = (image, digest)
        (state.out / "Annotations" / f"{stem}.xml").write_bytes(xml)
        mask = record.get("mask")
        if mask is not None and kind is not None:
            folder = state.out / SEGMENTATION_DIRS[kind]
            folder.mkdir(exist_ok=True)
            boxes = len(record.get("boxes") or ())
            _export_mask(state.dataset.mask_path(mask), folder / f"{stem}.png", kind, boxes, palette, split_file)
        if state.copy_images:
            target = state.out / IMAGE_DIRS[0]
            target.mkdir(exist_ok=True)
            source = state.dataset.image_path(image)
            try:
                shutil.copyfile(source, target / path.name)
            except OSError as exc:
                raise InvalidDataError(f"cannot copy image {source}: {exc.strerror}", file=split_file) from None
        return stem
