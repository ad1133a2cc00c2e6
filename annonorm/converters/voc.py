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

XML is parsed by :mod:`annonorm.sources.xml` (expat, C-accelerated): entity declarations and external references are
refused, so a billion-laughs or XXE file is a :class:`~annonorm.errors.ParseError`, never expanded. Every input
file (XML, split and class lists, labelmap, mask PNG) is opened only when it is a regular file: a
FIFO or a device named ``a.xml`` is refused, never read. A folder without VOC XML is refused with
"no VOC annotations here", never read as an empty dataset.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from annonorm.converters.base import (
    Capabilities,
    Converter,
    Option,
    ReadContext,
    ReadResult,
    make_record,
    workers_option,
)
from annonorm.errors import AnnonormError, InvalidDataError, ParseError, UnsafePathError, UsageError
from annonorm.fsutil import open_regular, read_regular_bytes
from annonorm.geometry import corners_to_one_based, one_based_to_corners
from annonorm.images import read_image_size
from annonorm.io import DatasetWriter, NormalizedSource
from annonorm.paths import check_relative_path
from annonorm.sources.classlists import BACKGROUND, IGNORED, labelmap_palette, labelmap_text, read_labelmap
from annonorm.sources.each import encoded_record, map_each
from annonorm.sources.images import images_by_stem, list_dir
from annonorm.sources.segmentation import (
    VOID,
    export_mask_png,
    label_png_to_mask,
    labelmap_lookups,
    palette_colors,
    voc_palette,
    write_mask_png,
)
from annonorm.sources.xml import (
    append_named_values,
    append_value,
    child_number,
    child_numbers,
    element_to_value,
    has_root,
    is_xml_name,
    named_values,
    parse_xml,
    root_mismatch,
    text_to_value,
    value_text,
    xml_bytes,
    xml_entries,
    xml_files,
)

__all__ = [
    "VOC_CLASSES", "VocConverter", "box_to_voc_corners", "box_to_voc_object", "record_to_voc_annotation",
    "voc_annotation_to_record", "voc_corners_problem", "voc_corners_to_box", "voc_image_name_problem",
    "voc_object_to_box", "voc_side_problem", "voc_split_name_problem", "voc_stem_problem",
]  # fmt: skip

# ---------------------------------------------------------------------------------------------- constants

#: The 20 VOC classes, in VOC index order (aeroplane = 1; 0 is background).
VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable", "dog",
    "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
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
#: What annotation XML is called in errors, and who needs no entities (see annonorm.sources.xml).
XML_WHAT, XML_PURPOSE = "annotation XML", "VOC annotations"
#: How many XML files (by name) sniffing and the "is this VOC at all" check look at.
SNIFF_FILES = 5
#: Below this many XML files a process pool costs more than it saves.
PARALLEL_MIN_FILES = 2000
#: Object children with a fixed meaning; every other child is kept generically.
FLAG_FIELDS = ("truncated", "occluded", "difficult")
_RECORD_KNOWN = frozenset({"filename", "size", "object"})
_CORNERS = ("xmin", "ymin", "xmax", "ymax")
_SPLIT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def _refuse(
    problem: str | None, *, file: str | Path | None, location: str | None = None, error: type = InvalidDataError
) -> None:
    """Raise ``error`` worded by a ``voc_*_problem`` function, when it found a problem."""
    if problem is not None:
        raise error(problem, file=file, location=location)


# ---------------------------------------------------------------------------------------------- sniff


def _not_voc(files: Sequence[Path]) -> str | None:
    """Why ``files`` are not VOC annotations (their first few all have another root element), else None."""
    reason = root_mismatch(files[:SNIFF_FILES], "annotation", XML_WHAT)
    return None if reason is None else f"{NOT_VOC}: {reason} ({EXPECTED_LAYOUT})"


def _has_voc_xml(directory: Path) -> bool:
    return has_root(xml_files(directory)[:SNIFF_FILES], "annotation", XML_WHAT)


def _sniff(source: Path) -> bool:
    try:
        if not source.is_dir():
            return False
        if any(_has_voc_xml(source / name) for name in ANNOTATION_DIRS) or _has_voc_xml(source):
            return True
        return any(_has_voc_xml(Path(e.path)) for e in list_dir(source) if e.is_dir())
    except AnnonormError:
        return False


# ------------------------------------------------------------------------------------ mapping voc -> annonorm


def voc_corners_to_box(*, xmin: float, ymin: float, xmax: float, ymax: float) -> tuple[float, float, float, float]:
    """VOC's 1-based inclusive corners as annonorm's continuous corners ``(x1, y1, x2, y2)``."""
    # VOC corners are 1-based and inclusive: pixel column xmin-1 (0-based) is the first one covered,
    # column xmax-1 the last, so its right edge is at xmax. A 0 (written by 0-based tools) is clamped.
    return one_based_to_corners(xmin, ymin, xmax, ymax)


def voc_corners_problem(*, xmin: float, ymin: float, xmax: float, ymax: float) -> str | None:
    """Why VOC corners are no box (a maximum below its minimum), or None."""
    if xmin <= xmax and ymin <= ymax:
        return None
    for axis, low, high in (("x", xmin, xmax), ("y", ymin, ymax)):
        if high < low:
            return f"{axis}max ({high:g}) is smaller than {axis}min ({low:g}); expected {axis}min <= {axis}max"
    return None


def voc_side_problem(*, value: float) -> str | None:
    """Why a ``<size>`` width or height is no image side (negative or fractional), or None."""
    if value < 0 or value != int(value):
        return f"expected a whole number of pixels >= 0, found {value:g}"
    return None


def _flag(text: str | None) -> Any:
    value = (text or "").strip()
    return value == "1" if value in ("0", "1") else text_to_value(text=value)


def _bndbox(element: ET.Element, *, file: str, where: str) -> tuple[float, float, float, float]:
    bndbox = element.find("bndbox")
    if bndbox is None:
        raise InvalidDataError(
            "missing <bndbox>; expected <bndbox> with xmin, ymin, xmax, ymax", file=file, location=f"{where}/bndbox"
        )
    xmin, ymin, xmax, ymax = child_numbers(bndbox, _CORNERS, file=file, where=f"{where}/bndbox")
    _refuse(voc_corners_problem(xmin=xmin, ymin=ymin, xmax=xmax, ymax=ymax), file=file, location=f"{where}/bndbox")
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
            px, py = child_numbers(child, ("x", "y"), file=file, where=f"{where}/point")
            attributes["point"] = {"x": px - 1.0, "y": py - 1.0}
        elif tag == "attributes":  # CVAT's free attributes, <attribute><name>n</name><value>v</value></attribute>
            attributes.update(named_values(child))
        else:
            attributes[tag] = element_to_value(element=child)
    if parts:
        attributes["parts"] = parts
    box: dict[str, Any] = {"name": name, "x1": x1, "y1": y1, "x2": x2, "y2": y2}
    if attributes:
        box["attributes"] = attributes
    return box


def _side(size: ET.Element | None, tag: str, *, file: str) -> int | None:
    if size is None or size.find(tag) is None:
        return None
    value = child_number(size, tag, file=file, where="size")
    _refuse(voc_side_problem(value=value), file=file, location=f"size/{tag}")
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
        attributes["depth"] = text_to_value(text=size.findtext("depth"))
    for child in root:
        if child.tag in _RECORD_KNOWN:
            continue
        if child.tag == "segmented":
            attributes[child.tag] = _flag(child.text)
        elif child.tag in ("folder", "path"):
            attributes[child.tag] = (child.text or "").strip()
        else:
            attributes[child.tag] = element_to_value(element=child)
    boxes = [voc_object_to_box(element=o, index=i, file=file) for i, o in enumerate(root.findall("object"), start=1)]
    return {"filename": filename, "width": width, "height": height, "boxes": boxes, "attributes": attributes}


# ------------------------------------------------------------------------------------ mapping annonorm -> voc


def box_to_voc_corners(*, x1: float, y1: float, x2: float, y2: float) -> tuple[int, int, int, int]:
    """annonorm corners on VOC's 1-based inclusive integer grid ``(xmin, ymin, xmax, ymax)``."""
    # The inverse of voc_corners_to_box, rounded to whole pixels. VOC cannot hold a box narrower
    # than one pixel (xmax >= xmin): a degenerate one is widened to one pixel.
    return corners_to_one_based(x1, y1, x2, y2)


def _flag_text(value: Any) -> str:
    return ("1" if value else "0") if isinstance(value, bool) else str(value)


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
            if is_xml_name(action):
                ET.SubElement(actions_element, action).text = _flag_text(value)
    point = attributes.pop("point", None)
    if isinstance(point, dict) and {"x", "y"} <= point.keys():
        point_element = ET.SubElement(element, "point")
        # Back to VOC's 1-based pixel index.
        ET.SubElement(point_element, "x").text = value_text(point["x"] + 1)
        ET.SubElement(point_element, "y").text = value_text(point["y"] + 1)
    scalars = {k: v for k, v in attributes.items() if isinstance(v, (str, int, float, bool))}
    append_named_values(element, "attributes", scalars)
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
        append_value(root, key, value)
    if record.get("width") is not None and record.get("height") is not None:
        size = ET.SubElement(root, "size")
        ET.SubElement(size, "width").text = str(record["width"])
        ET.SubElement(size, "height").text = str(record["height"])
        ET.SubElement(size, "depth").text = value_text(depth)
    ET.SubElement(root, "segmented").text = _flag_text(segmented)
    for box in record.get("boxes") or ():
        root.append(box_to_voc_object(box=box))
    return root


def voc_image_name_problem(*, image: str, stem: str) -> str | None:
    """Why ``image`` (of file stem ``stem``) cannot be listed in an ImageSets file, or None."""
    if not any(character.isspace() for character in stem):
        return None
    return (
        f"image name {image!r} holds whitespace, which VOC's ImageSets lists (one stem per line, "
        "whitespace-separated) cannot hold"
    )


# ---------------------------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class _Item:
    """One image to read: its stem, XML (None when only the image exists) and where it was listed; once the
    read has looked, the image found by stem and the mask (copied to ``mask_target`` unless already copied)."""

    stem: str
    xml: Path | None
    image_dir: Path
    image_prefix: str
    listed_in: Path | None = None
    line: int | None = None
    stem_image: str | None = None
    mask_source: Path | None = None
    mask_target: Path | None = None

    @property
    def image(self) -> str:
        """The image, as far as it is known without the XML (``skipped.jsonl`` names it)."""
        return self.image_prefix + (self.stem_image or self.stem)


@dataclass
class _Layout:
    root: Path
    image_root: Path
    #: split name -> its images, in list (else file) order
    splits: dict[str, list[_Item]]
    lists: list[Path]
    labelmap: Path | None
    segmentation: dict[str, Path]
    #: The classes that ``ImageSets/Main/<class>_<split>.txt`` name, sorted (empty without such lists).
    class_names: list[str] = field(default_factory=list)


def voc_stem_problem(*, stem: str) -> str | None:
    """Why ``stem`` (from a split list, or an exported image's name) cannot name a file of the root, or None."""
    if not stem or stem in (".", "..") or "/" in stem or "\\" in stem or "\x00" in stem:
        return f"{stem!r} is not a file stem; expected a name without '/' or '..'"
    return None


def voc_split_name_problem(*, name: str) -> str | None:
    """Why ``name`` cannot name a split file of the normalized dataset, or None."""
    if _SPLIT_NAME.fullmatch(name):
        return None
    return f"split name {name!r} cannot name a split file; expected letters, digits, '_', '.', '-'"


def _safe_stem(stem: str, *, file: str | Path, location: str | None = None) -> str:
    _refuse(voc_stem_problem(stem=stem), file=file, location=location, error=UnsafePathError)
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


def _split_lists(imagesets: Path) -> tuple[list[Path], list[str]]:
    """The pure split lists of ``ImageSets/Main`` (else ``ImageSets/Segmentation``), sorted by name, and the
    class names that the per-class lists ``ImageSets/Main/<class>_<split>.txt`` name, sorted."""
    pure: list[Path] = []
    classes: set[str] = set()
    for name in IMAGESET_DIRS:
        if pure:
            break
        # Every *.txt that is not a directory, whatever it is (see xml_files in annonorm.sources.xml).
        files = [Path(e.path) for e in list_dir(imagesets / name) if e.name.endswith(".txt") and not e.is_dir()]
        kinds = [(p, _list_is_class_list(p, {p.stem for p in files})) for p in files]
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


def _find_layout(source: Path, images: Path | None) -> _Layout:
    """Work out where annotations, images, split lists and masks are."""
    if not source.is_dir():
        raise ParseError("expected the VOC root directory (Annotations/, ImageSets/, JPEGImages/)", file=source)
    labelmap = source / LABELMAP if os.path.lexists(source / LABELMAP) else None
    segmentation = {kind: source / name for kind, name in SEGMENTATION_DIRS.items() if (source / name).is_dir()}
    candidates = [source / name for name in ANNOTATION_DIRS if (source / name).is_dir()] + [source]
    listed = ((folder, xml_entries(folder)) for folder in candidates)
    annotations, entries = next(((folder, entries) for folder, entries in listed if entries), (None, []))
    if annotations is None:
        return _per_split_layout(source, images, labelmap, segmentation)
    _refuse(_not_voc([Path(e.path) for e in entries[:SNIFF_FILES]]), file=source, error=ParseError)
    image_dir = images or next((source / n for n in IMAGE_DIRS if (source / n).is_dir()), None)
    if image_dir is None:  # XML next to the images, else the devkit's folder
        image_dir = source if annotations == source else source / IMAGE_DIRS[0]
    lists, class_names = _split_lists(source / "ImageSets")
    splits: dict[str, list[_Item]] = {}
    for path in lists:
        stems = ((n, _safe_stem(stem, file=path, location=f"line {n}")) for n, stem in _read_split_list(path))
        splits[path.stem] = [_Item(stem, annotations / f"{stem}.xml", image_dir, "", path, n) for n, stem in stems]
    if not lists:
        splits[DEFAULT_SPLIT] = [_Item(p.stem, p, image_dir, "") for p in map(Path, entries)]
    return _Layout(source, image_dir, splits, lists, labelmap, segmentation, class_names)


def _per_split_layout(
    source: Path, images: Path | None, labelmap: Path | None, segmentation: dict[str, Path]
) -> _Layout:
    """One directory per split, XML next to the images (Roboflow's VOC export)."""
    image_root = images if images is not None else source
    splits: dict[str, list[_Item]] = {}
    xml_seen: list[Path] = []
    for entry in list_dir(source):
        files = xml_files(Path(entry.path)) if entry.is_dir() else []
        if files:
            xml_seen += files[:SNIFF_FILES]
            items = [_Item(p.stem, p, image_root / entry.name, f"{entry.name}/") for p in files]
            splits[entry.name] = items
    if not splits:
        raise ParseError(f"{NOT_VOC}: no *.xml file found ({EXPECTED_LAYOUT})", file=source)
    _refuse(_not_voc(xml_seen), file=source, error=ParseError)
    return _Layout(source, image_root, splits, [], labelmap, segmentation, [])


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


def _source_files(source: Path, options: Mapping[str, Any]) -> list[Path]:
    annotations = next((source / n for n in ANNOTATION_DIRS if (source / n).is_dir()), None)
    if annotations is None:  # one XML file, or XML beside the images: only the whole source covers them
        return [source]
    found = [annotations, *(p for p in (source / "ImageSets", source / LABELMAP) if p.exists())]
    present = [kind for kind in ("instance", "semantic") if (source / SEGMENTATION_DIRS[kind]).is_dir()]
    kind = str(options.get("masks") or "auto")
    kind = next(iter(present), "none") if kind == "auto" else kind
    return found + ([source / SEGMENTATION_DIRS[kind]] if kind in present else [])


# ---------------------------------------------------------------------------------------------- read


@dataclass(frozen=True)
class _Context:
    """What every worker needs besides its tasks (pickled once per chunk)."""

    kind: str | None
    colors: dict[int, int]
    lut: tuple[int, ...]


def _xml_class_names(layout: _Layout) -> list[str]:
    """The classes the XML files use, sorted (a pre-pass, needed only when semantic masks index a table
    that only the XML can tell). A file that does not parse is left to the main pass to report."""
    names: set[str] = set()
    for xml in sorted({item.xml for items in layout.splits.values() for item in items if item.xml is not None}):
        with contextlib.suppress(AnnonormError):
            root = parse_xml(xml, what=XML_WHAT, purpose=XML_PURPOSE)
            names.update(name for name in ((o.findtext("name") or "").strip() for o in root.findall("object")) if name)
    return sorted(names)


def _declare_categories(writer: DatasetWriter, layout: _Layout, kind: str | None) -> _Context:
    """Declare the class table (see the module docstring); build the mask color lookups and index table.

    With a labelmap, mask index k is its k-th line; without one it is the k-th VOC class (the devkit's
    own numbering), whichever categories the dataset has.
    """
    palette = voc_palette()
    if layout.labelmap is not None:
        entries = read_labelmap(layout.labelmap)
        for index, entry in enumerate(entries):
            if entry["name"] not in (BACKGROUND, IGNORED):
                attributes: dict[str, Any] = {k: entry[k] for k in ("color", "parts", "actions") if k in entry}
                writer.category(entry["name"], source_id=index, attributes=attributes or None)
    else:
        for name in layout.class_names or (_xml_class_names(layout) if kind == "semantic" else []):
            writer.category(name)
        entries = [{"name": name, "color": list(palette[i])} for i, name in enumerate((BACKGROUND, *VOC_CLASSES))]
    # A VOC class the dataset does not have (None) has no mask value: a pixel of it is an error.
    class_colors, lut = labelmap_lookups(
        entries, lambda name: writer.category(name) if writer.has_category(name) else None, void_color=palette[VOID]
    )
    return _Context(kind=kind, colors=palette_colors(palette) if kind == "instance" else class_colors, lut=lut)


def _resolve_image(task: _Item, filename: str | None) -> str:
    """The record's image path: ``<filename>`` if that file exists, else the image found by stem."""
    if filename is not None:
        try:
            check_relative_path(filename)
        except ValueError as exc:
            raise UnsafePathError(str(exc), file=task.xml, location="filename") from None
        # The name the listing found by stem needs no stat: either branch returns it.
        if (
            filename == task.stem_image
            or task.stem_image is None
            or os.path.isfile(os.path.join(task.image_dir, filename))
        ):
            posix = filename.replace("\\", "/")  # a bare name (the usual case) is its own POSIX form
            return task.image_prefix + (PurePosixPath(posix).as_posix() if "/" in posix else posix)
    return task.image_prefix + (task.stem_image or f"{task.stem}.jpg")


def _read_task(task: _Item, context: _Context) -> dict[str, Any]:
    """Read one image: parse its XML, resolve image and size, copy its mask. An error names the image (its
    path once ``<filename>`` is read, else the image found by stem, else the stem)."""
    image = task.image
    try:
        root = None if task.xml is None else parse_xml(task.xml, what=XML_WHAT, purpose=XML_PURPOSE)
        image = _resolve_image(task, None if root is None else (root.findtext("filename") or "").strip() or None)
        empty: dict[str, Any] = {"width": None, "height": None, "boxes": [], "attributes": {}}  # listed, no XML
        parsed = empty if root is None else voc_annotation_to_record(root=root, file=str(task.xml))
        width, height, boxes = parsed["width"], parsed["height"], parsed["boxes"]
        if width is None:
            path = task.image_dir / image[len(task.image_prefix) :]
            # Only a regular file's header is read (a FIFO named a.jpg would block): else the size stays unknown.
            width, height = (read_image_size(path) if path.is_file() else None) or (None, None)
        mask = None if task.mask_source is None else f"masks/{task.stem}.png"
        if task.mask_source is not None and task.mask_target is not None:  # else an earlier split copied it
            size = None if width is None else (width, height)
            objects = len(boxes) if context.kind == "instance" else None
            values = label_png_to_mask(task.mask_source, context.colors, size=size, objects=objects,
                lut=context.lut, objects_are="the XML's objects", table="the labelmap or VOC classes")  # fmt: skip
            write_mask_png(values, task.mask_target)
        record = make_record(image=image, width=width, height=height, boxes=boxes, mask=mask, id=task.stem,
                             attributes=parsed["attributes"])  # fmt: skip
        return encoded_record(record)  # the parent only writes it
    except AnnonormError as error:
        if error.image is None:
            error.image = image
        raise


def _listing_error(
    item: _Item, index: Mapping[str, str], seen: dict[str, int | None], *, has_xml: bool
) -> InvalidDataError | None:
    """A stem listed twice, or listed with neither XML (``has_xml``) nor image; else None (and the stem is now seen)."""
    if item.stem in seen:
        return InvalidDataError(
            f"{item.stem!r} is listed again (first on line {seen[item.stem]}); expected each image once",
            file=item.listed_in or item.xml,
            location=f"line {item.line}" if item.line is not None else None,
            image=item.image_prefix + index.get(item.stem, item.stem),
        )
    seen[item.stem] = item.line
    if item.xml is not None and not has_xml and item.stem not in index:
        return InvalidDataError(
            f"lists {item.stem!r} but there is no {item.xml} and no image of that stem in {item.image_dir}",
            file=item.listed_in,
            location=f"line {item.line}",
            image=item.image_prefix + item.stem,
        )
    return None


def _read(source: Path, ctx: ReadContext) -> ReadResult:
    """Stream a VOC root into ``ctx.sink``: categories, one record per listed image, masks."""
    writer = ctx.sink
    layout = _find_layout(source, ctx.images)
    kind = _choose_masks(str(ctx.options.get("masks") or "auto"), layout)
    context = _declare_categories(writer, layout, kind)
    for path in [*([layout.labelmap] if layout.labelmap else []), *layout.lists]:
        writer.add_source_file(path)
    mask_dir = layout.segmentation.get(kind) if kind is not None else None
    masks = {e.name[:-4]: Path(e.path) for e in list_dir(mask_dir) if e.name.endswith(".png")} if mask_dir else {}
    writer.expect(sum(len(items) for items in layout.splits.values()))
    # Parsing is the larger share (the parent encodes and writes): above the threshold every core parses.
    unique_files = len({item.xml for items in layout.splits.values() for item in items})
    workers = ctx.executor.execution.pool_size(unique_files, PARALLEL_MIN_FILES + 1)
    image_index, read = functools.cache(images_by_stem), functools.partial(_read_task, context=context)
    found: set[str] = set()  # the classes the boxes use
    named: set[Path] = set()
    masks_written: set[str] = set()
    for split, items in layout.splits.items():
        where = items[0].listed_in if items else layout.root
        _refuse(voc_split_name_problem(name=split), file=where, error=UsageError)
        writer.declare_split(split)
        tasks: list[_Item] = []
        seen: dict[str, int | None] = {}
        for item in items:
            index = image_index(item.image_dir)
            xml = item.xml if item.xml is not None and os.path.lexists(item.xml) else None
            if (error := _listing_error(item, index, seen, has_xml=xml is not None)) is not None:
                writer.problem(error)
                continue
            mask = masks.get(item.stem)
            target = writer.mask_file(f"masks/{item.stem}.png") if mask and item.stem not in masks_written else None
            tasks.append(replace(item, xml=xml, stem_image=index.get(item.stem), mask_source=mask, mask_target=target))
        for task, outcome in zip(tasks, map_each(read, tasks, ctx.executor, workers=workers), strict=True):
            if isinstance(outcome, AnnonormError):
                writer.problem(outcome)
                continue
            found.update(outcome["labels"])  # the classes of its boxes (encoded: see encoded_record)
            if outcome.get("mask") is not None:
                writer.mask_kind = context.kind
                masks_written.add(task.stem)
            for named_file in (task.xml, task.mask_source):
                if named_file is not None and named_file not in named:
                    named.add(named_file)
                    writer.add_source_file(named_file)
            writer.add(split, outcome, canonical=True)
    # Classes the table does not hold (all of them without a labelmap or class lists), sorted by name.
    for name in sorted(found):
        writer.category(name)
    return ReadResult(name=source.resolve().name or "voc", image_root=layout.image_root)


# ---------------------------------------------------------------------------------------------- write


@dataclass
class _Export:
    """State of one VOC export: the mask kind and palette, and which stems are written, by which image."""

    out: Path
    dataset: NormalizedSource
    copy_images: bool
    kind: str | None
    palette: Sequence[tuple[int, int, int]]
    written: dict[str, tuple[str, str]] = field(default_factory=dict)


def _write_record(state: _Export, split: str, record: dict[str, Any]) -> str:
    """Write one record's XML (and mask, image); return its stem. A stem seen before is checked, not rewritten."""
    image = record["image"]
    split_file = str(state.dataset.split_path(split))
    path = PurePosixPath(image.replace("\\", "/"))
    stem = _safe_stem(path.stem, file=split_file, location="image")
    _refuse(voc_image_name_problem(image=image, stem=stem), file=split_file, location="image")
    xml = xml_bytes(record_to_voc_annotation(record=record, filename=path.name))
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
    if mask is not None and state.kind is not None:
        folder = state.out / SEGMENTATION_DIRS[state.kind]
        folder.mkdir(exist_ok=True)
        objects = len(record.get("boxes") or ()) if state.kind == "instance" else None
        export_mask_png(state.dataset.mask_path(mask), folder / f"{stem}.png", state.palette, objects=objects,
                        file=split_file, holder="VOC's 8-bit SegmentationObject PNG")  # fmt: skip
    if state.copy_images:
        target = state.out / IMAGE_DIRS[0]
        target.mkdir(exist_ok=True)
        source = state.dataset.image_path(image)
        try:
            shutil.copyfile(source, target / path.name)
        except OSError as exc:
            raise InvalidDataError(f"cannot copy image {source}: {exc.strerror}", file=split_file) from None
    return stem


def _write(dataset: NormalizedSource, out: Path, options: Mapping[str, Any]) -> None:
    """Write the VOC devkit layout: Annotations, ImageSets/Main (and Segmentation), labelmap, masks."""
    manifest, kind = dataset.manifest, dataset.manifest.mask_kind
    class_palette = labelmap_palette(manifest.categories, voc_palette())
    palette = voc_palette() if kind == "instance" else class_palette
    state = _Export(out, dataset, bool(options.get("copy_images")), kind, palette)
    (out / "Annotations").mkdir()
    (out / "ImageSets" / "Main").mkdir(parents=True)
    lists: dict[str, dict[str, list[str]]] = {"Main": {split: [] for split in manifest.splits}, "Segmentation": {}}
    for split in manifest.splits:
        for record in dataset.records(split):
            stem = _write_record(state, split, record)
            lists["Main"][split].append(stem)
            if record.get("mask") is not None:
                lists["Segmentation"].setdefault(split, []).append(stem)
    for folder, stems_of in lists.items():
        for split, stems in stems_of.items():
            (out / "ImageSets" / folder).mkdir(exist_ok=True)
            (out / "ImageSets" / folder / f"{split}.txt").write_text("".join(f"{s}\n" for s in stems), encoding="utf-8")
    (out / LABELMAP).write_text(labelmap_text(manifest.categories, class_palette), encoding="utf-8")


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
        return _sniff(source)

    @classmethod
    def source_files(cls, source: Path, options: Mapping[str, Any]) -> list[Path]:
        """``Annotations/``, ``ImageSets/``, ``labelmap.txt`` and the segmentation folder the masks option reads."""
        return _source_files(source, options)

    def read(self, source: Path, ctx: ReadContext) -> ReadResult:
        """Stream a VOC root into ``ctx.sink``: categories, one record per listed image, masks."""
        return _read(source, ctx)

    def write(self, dataset: NormalizedSource, out: Path, *, options: Mapping[str, Any]) -> None:
        """Write the VOC devkit layout: Annotations, ImageSets/Main (and Segmentation), labelmap, masks."""
        _write(dataset, out, options)
