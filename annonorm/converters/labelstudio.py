"""Label Studio JSON export: a list of tasks, each an image with its annotations (and model predictions).

Origin: Label Studio (HumanSignal), "Export -> JSON": one array of tasks ``{"id", "data": {"image":
ref, ...}, "annotations": [{"completed_by", "was_cancelled", "ground_truth", "result": [...]}],
"predictions": [{"model_version", "score", "result": [...]}]}``. A region result has ``id``, ``type``,
``original_width`` / ``original_height`` and a ``value`` in **percent** (0..100) of that size: x by the
width, y by the height. What each result type becomes:

- ``rectanglelabels``: ``x, y`` the top-left corner, ``width, height`` the size; ``rotation`` (degrees,
  clockwise on screen, about the top-left corner, applied in pixels) gives the 4 corners as ``obb``
  (top-left, top-right, bottom-right, bottom-left), the box being their hull. A box leaving the image is refused.
- ``polygonlabels``: ``points`` ``[[x, y], ...]`` become a ``polygon`` ring, the box its hull; results
  of one region ``id`` and label are one instance with several rings (how the writer stores them).
- ``brushlabels``: ``rle``, Label Studio's bit-packed code of the RGBA canvas (:mod:`annonorm.sources.brushrle`;
  alpha >= 128 is in the mask), as a COCO ``rle`` (pycocotools' string), the box its bounding box; one whose
  ``parentID`` names a region before it (of its label) is that region's box's mask instead (and may be empty).
- ``keypointlabels``: a point named by its label, tied to its box by ``parentID`` or a ``relation``: the
  box's ``keypoints`` get ``[x, y, v]`` at the place of its name (``[0, 0, 0]`` elsewhere), ``v`` 2 or the
  value's ``visibility`` (annonorm's: 0 or 1). Names and order: the config's (``--config``) ``<KeyPointLabels
  name="keypoints:<class>">`` for that class, else its other ``<KeyPointLabels>``; keypoints need one.
- ``choices``: image-level labels. Other types (``textarea``, ``rating``, ``ellipselabels``...) are left out.
- A region with several labels is one box per label. A result's ``score`` (else its prediction's) is the
  box's ``score``, in 0..1.

``--annotations first`` (the default) takes per task the first annotation not ``was_cancelled``, one
marked ``ground_truth`` first; ``all`` every one not cancelled, each box with the attribute
``annotator`` (``completed_by``: e-mail or user id). ``--predictions`` reads ``predictions`` instead
(``annotator``: the ``model_version``). The older key ``completions`` is read as ``annotations``.

Images: ``data[<key>]`` (the config's ``<Image value="$key">``, else ``image``) is ``/data/upload/<n>/<8
hex>-<name>`` (the prefix Label Studio adds is dropped), ``/data/local-files/?d=<path>``,
``s3://bucket/<key>`` (and other buckets), ``http(s)://host/<path>`` or a relative path. With
``--images DIR`` it is matched to a file under DIR by its trailing path (``a/b/c.jpg``, ``b/c.jpg``), then
by name (a name found twice is refused); without, the record's image is that path. A reference climbing
out with ``..`` is refused. One record per task: ``id`` the task's, the other ``data`` fields its
attributes; the size from the results, else (no region) from the image header.

Categories: the classes of the config (``--config``, or ``label_config.xml`` in a SOURCE folder) in its
order (``<RectangleLabels>``, ``<PolygonLabels>``, ``<BrushLabels>``, ``<Labels>``, ``<Choices>``), a label
it does not name refused; without one, labels as first seen. SOURCE is an export file (one split,
``--split``, default ``train``) or a folder of ``<split>.json``.

The writer leaves that folder: ``<split>.json`` (rectangles, turned for a rectangular ``obb``, polygons; an
``rle`` as a brush, alone when the box is its bounding box, else tied to the box's shape by ``parentID``;
keypoints with ``v > 0`` tied by ``parentID``, one of ``v = 0`` where none is labeled; labels without a box as
``choices``, scores, original sizes; images as ``/data/local-files/?d=<path>``, record attributes as ``data``
fields) and a ``label_config.xml`` naming every class and each class's keypoints, for a Label Studio project.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote, unquote, urlsplit
from xml.etree import ElementTree as ET
from xml.sax.saxutils import quoteattr

import msgspec

from annonorm.converters.base import Capabilities, Converter, Option, ReadContext, ReadResult, make_record
from annonorm.errors import AnnonormError, InvalidDataError, ParseError, UnsafePathError, UsageError
from annonorm.fsutil import read_regular_bytes
from annonorm.geometry import round_coord
from annonorm.images import read_image_size
from annonorm.io import NormalizedSource
from annonorm.sources.brushrle import coco_rle_to_mask, ls_rle_to_coco_rle, ls_rle_to_mask, mask_bounds, mask_to_ls_rle
from annonorm.sources.images import IMAGE_SUFFIXES, list_dir, walk_files
from annonorm.sources.jsondoc import describe_json, strip_bom
from annonorm.sources.xml import parse_xml

__all__ = [
    "LabelConfig",
    "LabelstudioConverter",
    "box_to_ls_results",
    "image_reference_path",
    "label_config_to_xml",
    "ls_rle_to_mask",
    "mask_to_ls_rle",
    "parse_label_config",
    "percent_points_to_ring",
    "percent_rect_to_box",
    "rotated_corners",
]

# ---------------------------------------------------------------------------------------------- constants

CONFIG_FILE = "label_config.xml"
DEFAULT_SPLIT = "train"
DEFAULT_IMAGE_KEY = "image"
RECTANGLE, POLYGON, BRUSH, KEYPOINT = "rectanglelabels", "polygonlabels", "brushlabels", "keypointlabels"
CHOICES, RELATION = "choices", "relation"
REGION_TYPES = (RECTANGLE, POLYGON, BRUSH)
#: Config tags whose ``<Label>`` s (or ``<Choice>`` s) are classes; ``<KeyPointLabels>`` name keypoints.
CLASS_TAGS = frozenset({"rectanglelabels", "polygonlabels", "brushlabels", "labels", "choices"})
KEYPOINT_TAG = "keypointlabels"
#: A ``<KeyPointLabels>`` named ``keypoints:<class>`` names the keypoints of that class alone (annonorm's
#: writer makes one per class with keypoints); any other names the keypoints of every class.
CLASS_KEYPOINTS = "keypoints:"
#: The size (percent of the image width) of a written keypoint, as Label Studio draws it.
KEYPOINT_WIDTH = 0.5
#: Label Studio prefixes an uploaded file's name with 8 hex digits and a dash.
UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-(?=.)")
#: How far (percent) a value may pass 0..100 (float noise of the labeling tool) before it is an error.
PERCENT_SLACK = 1e-4
#: An ``obb`` whose sides are perpendicular within this (pixels) is written as a rotated rectangle.
RECTANGLE_TOLERANCE = 1e-6

_DECODER = msgspec.json.Decoder()
_ENCODER = msgspec.json.Encoder()

# ---------------------------------------------------------------------------------------------- sniff


def _sniff(source: Path) -> bool:
    """A ``.json`` file holding a list of tasks (``data`` plus ``annotations`` or ``predictions``),
    or a folder with ``label_config.xml`` and such files."""
    try:
        if source.is_dir():
            return (source / CONFIG_FILE).is_file() and any(_sniff(p) for p in sorted(source.glob("*.json"))[:3])
        if source.suffix.lower() != ".json" or not source.is_file():
            return False
        with source.open("rb") as stream:
            head = stream.read(1 << 16)
    except OSError:
        return False
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return text.startswith(b"[") and b'"data"' in head and (b'"annotations"' in head or b'"predictions"' in head)


# ------------------------------------------------------------------------------- mapping labelstudio -> annonorm


def rotated_corners(*, x: float, y: float, width: float, height: float, degrees: float) -> list[float]:
    """The 4 corners of a ``width`` x ``height`` rectangle at top-left ``(x, y)`` (pixels) turned by
    ``degrees`` clockwise on screen (y down) about that corner: top-left, top-right, bottom-right, bottom-left."""
    theta = math.radians(degrees)
    cos, sin = math.cos(theta), math.sin(theta)
    right = (x + width * cos, y + width * sin)  # the top edge, turned
    down = (-height * sin, height * cos)  # the left edge's direction, turned
    return [x, y, right[0], right[1], right[0] + down[0], right[1] + down[1], x + down[0], y + down[1]]


def percent_rect_to_box(
    *, value: Mapping[str, float], image_width: int, image_height: int
) -> tuple[tuple[float, float, float, float], list[float] | None]:
    """A ``rectanglelabels`` value (percent) as pixel corners ``(x1, y1, x2, y2)`` and, when rotated, its ``obb``.

    Raises :class:`ValueError` for values outside 0..100 or a negative size.
    """
    x, y, w, h = (float(value[k]) for k in ("x", "y", "width", "height"))
    if not all(-PERCENT_SLACK <= v <= 100 + PERCENT_SLACK for v in (x, y, w, h)):
        raise ValueError(f"expected x, y, width, height in 0..100 (percent), found {x}, {y}, {w}, {h}")
    rotation = float(value.get("rotation") or 0.0) % 360.0
    # Percent of the image side: x and width by the width, y and height by the height.
    px, pw = x * image_width / 100.0, w * image_width / 100.0
    py, ph = y * image_height / 100.0, h * image_height / 100.0
    if rotation == 0.0:
        if x + w > 100 + PERCENT_SLACK or y + h > 100 + PERCENT_SLACK:
            raise ValueError(f"the box leaves the image: x + width = {x + w}, y + height = {y + h} (percent)")
        return (px, py, px + pw, py + ph), None
    corners = [round_coord(v) for v in rotated_corners(x=px, y=py, width=pw, height=ph, degrees=rotation)]
    xs, ys = corners[0::2], corners[1::2]
    slack_x, slack_y = PERCENT_SLACK * image_width / 100.0, PERCENT_SLACK * image_height / 100.0
    if min(xs) < -slack_x or min(ys) < -slack_y or max(xs) > image_width + slack_x or max(ys) > image_height + slack_y:
        raise ValueError(f"the rotated box leaves the {image_width}x{image_height} image: corners {corners}")
    # Float noise within the slack is clamped onto the image edge (the box is the corners' hull).
    corners = [min(max(v, 0.0), float(image_width if i % 2 == 0 else image_height)) for i, v in enumerate(corners)]
    xs, ys = corners[0::2], corners[1::2]
    return (min(xs), min(ys), max(xs), max(ys)), corners


def percent_points_to_ring(*, points: Sequence[Sequence[float]], image_width: int, image_height: int) -> list[float]:
    """``polygonlabels`` points ``[[x, y], ...]`` (percent) as one flat ring in pixels, rounded.

    Raises :class:`ValueError` for fewer than 3 points, a point that is not two numbers, or one outside 0..100.
    """
    if len(points) < 3:
        raise ValueError(f"expected at least 3 points, found {len(points)}")
    ring: list[float] = []
    for index, point in enumerate(points):
        if len(point) != 2:
            raise ValueError(f"point {index}: expected [x, y], found {len(point)} values")
        px, py = float(point[0]), float(point[1])
        if not (-PERCENT_SLACK <= px <= 100 + PERCENT_SLACK and -PERCENT_SLACK <= py <= 100 + PERCENT_SLACK):
            raise ValueError(f"point {index}: expected x, y in 0..100 (percent), found {px}, {py}")
        ring += [round_coord(px * image_width / 100.0), round_coord(py * image_height / 100.0)]
    return ring


def image_reference_path(*, reference: str) -> str:
    """The path a task's image reference names: the ``d`` of a local file, an upload's name without Label
    Studio's prefix, a bucket key, a URL's path, a relative path as it is. Raises :class:`ValueError` for
    one that is empty or climbs out with ``..``."""
    text = reference.strip()
    parts = urlsplit(text)
    if text.startswith("/data/local-files/"):
        query = dict(p.partition("=")[::2] for p in parts.query.split("&"))
        path = unquote(query.get("d", ""))
    elif text.startswith("/data/upload/"):
        name = unquote(PurePosixPath(parts.path).name)
        path = UPLOAD_PREFIX.sub("", name)
    elif parts.scheme and parts.netloc:
        path = unquote(parts.path)  # s3://bucket/key, http(s)://host/path: the bucket or host is dropped
    else:
        path = text
    segments = [s for s in path.replace("\\", "/").split("/") if s not in ("", ".")]
    if ".." in segments:
        raise ValueError(f"image reference {reference!r} climbs out of its folder with '..'")
    if not segments:
        raise ValueError(f"image reference {reference!r} names no file")
    return "/".join(segments)


@dataclass(frozen=True)
class LabelConfig:
    """What annonorm reads of a labeling config: the image's data key, the classes and the keypoint names
    (``keypoints`` those of every class, ``class_keypoints`` those of one class, by class)."""

    image_key: str = DEFAULT_IMAGE_KEY
    classes: tuple[str, ...] = ()
    keypoints: tuple[str, ...] = ()
    class_keypoints: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def keypoints_of(self, name: str) -> tuple[str, ...]:
        """The keypoint names of the class ``name`` (its own, else the shared ones)."""
        return self.class_keypoints.get(name, self.keypoints)


def parse_label_config(*, root: ET.Element) -> LabelConfig:
    """The classes (config order, each once), keypoint names and image key of a parsed labeling config."""
    image_key = DEFAULT_IMAGE_KEY
    classes: dict[str, None] = {}
    keypoints: dict[str, None] = {}
    of_class: dict[str, dict[str, None]] = {}
    for element in root.iter():
        tag = str(element.tag).lower()
        if tag == "image" and (element.get("value") or "").startswith("$"):
            image_key = (element.get("value") or "")[1:]
        elif tag in CLASS_TAGS or tag == KEYPOINT_TAG:
            target = keypoints if tag == KEYPOINT_TAG else classes
            tag_name = element.get("name") or ""
            if tag == KEYPOINT_TAG and tag_name.startswith(CLASS_KEYPOINTS):
                target = of_class.setdefault(tag_name[len(CLASS_KEYPOINTS) :], {})
            for child in element:
                name = child.get("value")
                if str(child.tag).lower() in ("label", "choice") and name:
                    target.setdefault(name, None)
    by_class = {name: tuple(names) for name, names in of_class.items() if names}
    return LabelConfig(image_key, tuple(classes), tuple(keypoints), by_class)


# ------------------------------------------------------------------------------- mapping annonorm -> labelstudio


def _rectangle_of(obb: Sequence[float]) -> tuple[float, float, float, float, float] | None:
    """``(x, y, width, height, degrees)`` of an ``obb`` that is a rectangle (corners in turn), else None."""
    x1, y1, x2, y2, x3, y3, x4, y4 = obb
    if max(abs(x1 + x3 - x2 - x4), abs(y1 + y3 - y2 - y4)) > RECTANGLE_TOLERANCE * 1e3:
        return None  # the diagonals do not halve each other: not a parallelogram
    width, height = math.hypot(x2 - x1, y2 - y1), math.hypot(x4 - x1, y4 - y1)
    if abs((x2 - x1) * (x4 - x1) + (y2 - y1) * (y4 - y1)) > RECTANGLE_TOLERANCE * max(width * height, 1.0):
        return None
    degrees = math.degrees(math.atan2(y2 - y1, x2 - x1)) % 360.0
    return x1, y1, width, height, degrees


def _shape_results(box: Mapping[str, Any], common: Mapping[str, Any], width: int, height: int) -> list[dict]:
    """One ``polygonlabels`` per ring (sharing the region id), else a ``rectanglelabels`` (rotated for a
    rectangular ``obb``)."""
    if box.get("polygon"):
        results = []
        for ring in box["polygon"]:
            points = [[ring[i] * 100.0 / width, ring[i + 1] * 100.0 / height] for i in range(0, len(ring), 2)]
            value = {"points": points, "closed": True, POLYGON: [box["name"]]}
            results.append({**common, "from_name": "polygon", "to_name": "image", "type": POLYGON, "value": value})
        return results
    turned = _rectangle_of(box["obb"]) if box.get("obb") else None
    x, y, w, h, degrees = turned or (box["x1"], box["y1"], box["x2"] - box["x1"], box["y2"] - box["y1"], 0.0)
    # Width as percent of the image width; a turned height stays a length along y only before turning.
    value = {
        "x": x * 100.0 / width,
        "y": y * 100.0 / height,
        "width": w * 100.0 / width,
        "height": h * 100.0 / height,
        "rotation": degrees,
        RECTANGLE: [box["name"]],
    }
    return [{**common, "from_name": "label", "to_name": "image", "type": RECTANGLE, "value": value}]


def box_to_ls_results(
    *, box: Mapping[str, Any], region: str, width: int, height: int, keypoint_names: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """The results of one box, percent of ``width`` x ``height``: its polygon rings or rectangle (see
    :func:`_shape_results`); an ``rle`` as a ``brushlabels`` result, alone when the box is the mask's
    bounding box, else tied to the shape by ``parentID``; each keypoint with ``v > 0`` as a
    ``keypointlabels`` result (named from ``keypoint_names``) tied by ``parentID``, ``v = 1`` marked
    ``visibility: 1`` in its value."""
    common = {"id": region, "original_width": width, "original_height": height, "image_rotation": 0}
    score = {"score": box["score"]} if box.get("score") is not None else {}
    mask = coco_rle_to_mask(rle=box["rle"]) if box.get("rle") is not None else None
    corners = tuple(float(box[k]) for k in ("x1", "y1", "x2", "y2"))
    results: list[dict[str, Any]] = []
    if mask is None or box.get("polygon") or box.get("obb") or mask_bounds(mask) != corners:
        results = _shape_results(box, common, width, height)
    if mask is not None:
        tie = {"id": f"{region}-mask", "parentID": region} if results else {}
        value = {"format": "rle", "rle": mask_to_ls_rle(mask=mask), BRUSH: [box["name"]]}
        results.append({**common, **tie, "from_name": "brush", "to_name": "image", "type": BRUSH, "value": value})
    results = [{**r, **score} for r in results]
    points = list(zip(keypoint_names, box.get("keypoints") or (), strict=False))
    # Keypoints none of which is labeled are kept by their first, marked visibility 0.
    for slot, (name, point) in enumerate(points):
        if point[2] or (slot == 0 and not any(p[2] for _, p in points)):
            at: dict[str, Any] = {"x": point[0] * 100.0 / width, "y": point[1] * 100.0 / height}
            at |= {"width": KEYPOINT_WIDTH, **({"visibility": point[2]} if point[2] != 2 else {}), KEYPOINT: [name]}
            tie = {"id": f"{region}-kp{slot}", "parentID": region}
            kind = {"from_name": CLASS_KEYPOINTS + box["name"], "to_name": "image", "type": KEYPOINT}
            results.append({**common, **tie, **kind, "value": at})
    return results


def label_config_to_xml(*, classes: Sequence[str], keypoints: Mapping[str, Sequence[str]] | None = None) -> str:
    """A labeling config naming ``classes`` for rectangles, polygons, brushes and image-level choices, and
    per class of ``keypoints`` a ``<KeyPointLabels name="keypoints:<class>">`` of its keypoint names."""
    labels = "".join(f"    <Label value={quoteattr(name)}/>\n" for name in classes)
    choices = "".join(f"    <Choice value={quoteattr(name)}/>\n" for name in classes)
    points = ""
    for name, names in (keypoints or {}).items():
        listed = "".join(f"    <Label value={quoteattr(point)}/>\n" for point in names)
        tag = f'  <KeyPointLabels name={quoteattr(CLASS_KEYPOINTS + name)} toName="image">\n'
        points += f"{tag}{listed}  </KeyPointLabels>\n"
    return (
        "<View>\n"
        '  <Image name="image" value="$image"/>\n'
        f'  <RectangleLabels name="label" toName="image">\n{labels}  </RectangleLabels>\n'
        f'  <PolygonLabels name="polygon" toName="image">\n{labels}  </PolygonLabels>\n'
        f'  <BrushLabels name="brush" toName="image">\n{labels}  </BrushLabels>\n'
        f"{points}"
        f'  <Choices name="choice" toName="image" choice="multiple">\n{choices}  </Choices>\n'
        "</View>\n"
    )


# ---------------------------------------------------------------------------------------------- layout


def _export_files(source: Path, split: str | None) -> list[tuple[Path, str]]:
    """The export files of SOURCE and the split each one holds (a folder: one split per ``<split>.json``)."""
    if not source.is_dir():
        return [(source, split or DEFAULT_SPLIT)]
    found = [(Path(e.path), e.name[: -len(".json")]) for e in list_dir(source) if e.name.endswith(".json")]
    if split is not None:
        found = [(path, name) for path, name in found if name == split]
    if not found:
        wanted = f"{split}.json" if split is not None else "*.json"
        raise ParseError(
            f"no Label Studio export here: expected a JSON export file or a folder of {wanted}", file=source
        )
    return found


def _config_path(source: Path, options: Mapping[str, Any]) -> Path | None:
    if options.get("config") is not None:
        return Path(options["config"])
    beside = (source if source.is_dir() else source.parent) / CONFIG_FILE
    return beside if source.is_dir() and beside.is_file() else None


def _source_files(source: Path, options: Mapping[str, Any]) -> list[Path]:
    config = _config_path(source, options)
    files = [path for path, _ in _export_files(source, options.get("split"))]
    return [*files, *([config] if config is not None else [])]


class _ImageIndex:
    """The images under ``--images``, found by a reference's trailing path or, alone, by name."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.paths = {p.relative_to(root).as_posix() for p in walk_files(root, IMAGE_SUFFIXES, any_kind=False).values()}
        self.names: dict[str, list[str]] = {}
        for path in sorted(self.paths):
            self.names.setdefault(path.rpartition("/")[2], []).append(path)

    def find(self, path: str, aliases: Iterable[str] = ()) -> str:
        """The image below the root that ``path`` (or one of its ``aliases``: names) names; InvalidDataError if none."""
        parts = path.split("/")
        for start in range(len(parts) - 1):
            if "/".join(parts[start:]) in self.paths:
                return "/".join(parts[start:])
        for name in (parts[-1], *aliases):
            matches = self.names.get(name, [])
            if len(matches) > 1:
                shown = ", ".join(matches[:3])
                raise InvalidDataError(f"the image name {name!r} is ambiguous under {self.root}: {shown}")
            if matches:
                return matches[0]
        raise InvalidDataError(f"no image {path!r} under {self.root} (matched by its trailing path, then its name)")


# ---------------------------------------------------------------------------------------------- reading


def _typed(value: Any, kind: type | tuple[type, ...], expected: str, file: Path, where: str) -> Any:
    """``value`` when it is of ``kind`` (a bool is never a number); else a ParseError naming the JSON path."""
    if not isinstance(value, kind) or (
        isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,))
    ):
        raise ParseError(f"expected {expected}, found {describe_json(value)}", file=file, location=where)
    return value


def _number(value: Any, file: Path, where: str) -> float:
    number = float(_typed(value, (int, float), "a number", file, where))
    if not math.isfinite(number):
        raise InvalidDataError(f"expected a finite number, found {value}", file=file, location=where)
    return number


@dataclass
class _Reading:
    """What the reader of one export needs across its tasks."""

    options: Mapping[str, Any]
    config: LabelConfig | None
    images: _ImageIndex | None
    #: Classes in the order first seen (categories without a config).
    seen: dict[str, None] = field(default_factory=dict)
    #: Classes whose boxes carry keypoints (their categories get the config's keypoint names).
    with_keypoints: set[str] = field(default_factory=set)

    def use(self, name: Any, file: Path, where: str) -> str:
        """A label, checked against the config and remembered."""
        if not _typed(name, str, "a label string", file, where):
            raise InvalidDataError("expected a label, found an empty string", file=file, location=where)
        if self.config is not None and self.config.classes and name not in self.config.classes:
            raise InvalidDataError(f"label {name!r} is not a class of the labeling config", file=file, location=where)
        self.seen.setdefault(name, None)
        return str(name)


def _task_size(results: Sequence[tuple[str, dict[str, Any]]], file: Path) -> tuple[int, int] | None:
    """The ``original_width`` x ``original_height`` the task's results agree on (None if none says)."""
    sizes = set()
    for where, result in results:
        if "original_width" in result or "original_height" in result:
            w = _typed(result.get("original_width"), int, "original_width as a whole number", file, where)
            h = _typed(result.get("original_height"), int, "original_height as a whole number", file, where)
            if w <= 0 or h <= 0:
                raise InvalidDataError(f"expected a positive image size, found {w}x{h}", file=file, location=where)
            sizes.add((w, h))
    if len(sizes) > 1:
        shown = ", ".join(f"{w}x{h}" for w, h in sorted(sizes))
        raise InvalidDataError(f"the results disagree on the image size: {shown}", file=file, location=results[0][0])
    return next(iter(sizes), None)


def _region_boxes(
    kind: str, value: dict[str, Any], size: tuple[int, int], state: _Reading, file: Path, where: str, tied: bool
) -> list[dict[str, Any]]:
    """The boxes of one region result (one per label), geometry first, ``name`` from its labels (a ``tied``
    brush, which gives its mask to another region's box, may be empty)."""
    labels = _typed(value.get(kind), list, f"value.{kind} as an array of labels", file, where)
    if not labels:
        raise InvalidDataError(f"the region has no label (value.{kind} is empty)", file=file, location=where)
    names = [state.use(label, file, f"{where}.value.{kind}[{i}]") for i, label in enumerate(labels)]
    width, height = size
    geometry: dict[str, Any] = {}
    try:
        if kind == RECTANGLE:
            for key in ("x", "y", "width", "height", *(["rotation"] if "rotation" in value else [])):
                value[key] = _number(value.get(key), file, f"{where}.value.{key}")
            corners, obb = percent_rect_to_box(value=value, image_width=width, image_height=height)
            if obb is not None:
                geometry["obb"] = obb
        elif kind == POLYGON:
            points = _typed(value.get("points"), list, "value.points as an array of [x, y]", file, where)
            for i, point in enumerate(points):
                for j, v in enumerate(_typed(point, list, "[x, y]", file, f"{where}.value.points[{i}]")):
                    _number(v, file, f"{where}.value.points[{i}][{j}]")
            ring = percent_points_to_ring(points=points, image_width=width, image_height=height)
            geometry["polygon"] = [ring]
            corners = (min(ring[0::2]), min(ring[1::2]), max(ring[0::2]), max(ring[1::2]))
        else:
            rle = _typed(value.get("rle"), list, "value.rle as an array of bytes", file, where)
            for i, byte in enumerate(rle):
                _typed(byte, int, "a byte (0..255)", file, f"{where}.value.rle[{i}]")
            geometry["rle"], mask = ls_rle_to_coco_rle(rle=rle, height=height, width=width)
            corners = mask_bounds(mask) or (0.0, 0.0, 0.0, 0.0)
            if not (tied or mask.any()):
                raise ValueError("the brush mask is empty")
    except ValueError as exc:
        raise InvalidDataError(str(exc), file=file, location=f"{where}.value") from None
    x1, y1, x2, y2 = corners
    return [{"name": name, "x1": x1, "y1": y1, "x2": x2, "y2": y2, **geometry} for name in names]


def _result_score(result: dict[str, Any], fallback: Any, file: Path, where: str) -> float | None:
    score = result.get("score", fallback)
    if score is None:
        return None
    number = _number(score, file, f"{where}.score")
    if not 0.0 <= number <= 1.0:
        raise InvalidDataError(f"expected a score in 0..1, found {number}", file=file, location=f"{where}.score")
    return number


def _annotation_to_boxes(
    annotation: dict[str, Any], size: tuple[int, int] | None, state: _Reading, file: Path, where: str
) -> tuple[list[dict[str, Any]], list[str]]:
    """The boxes (keypoints tied in) and image labels of one annotation or prediction."""
    boxes: list[dict[str, Any]] = []
    labels: list[str] = []
    by_region: dict[str, int] = {}
    points: list[tuple[str, dict[str, Any], str]] = []
    relations: dict[str, list[str]] = {}
    fallback = annotation.get("score")
    results = _typed(annotation.get("result", []), list, "result as an array", file, f"{where}.result")
    for index, result in enumerate(results):
        at = f"{where}.result[{index}]"
        _typed(result, dict, "a result object", file, at)
        kind = result.get("type")
        region = str(result.get("id", f"#{index}"))
        if kind == RELATION:
            ends = [str(result.get(k)) for k in ("from_id", "to_id")]
            relations.setdefault(ends[0], []).append(ends[1])
            relations.setdefault(ends[1], []).append(ends[0])
            continue
        if kind not in (*REGION_TYPES, KEYPOINT, CHOICES):
            continue
        value = _typed(result.get("value"), dict, "value as an object", file, f"{at}.value")
        if kind == CHOICES:
            chosen = _typed(value.get("choices"), list, "value.choices as an array", file, f"{at}.value.choices")
            labels += [state.use(c, file, f"{at}.value.choices[{i}]") for i, c in enumerate(chosen)]
            continue
        if size is None:
            raise InvalidDataError("a region needs original_width and original_height", file=file, location=at)
        if kind == KEYPOINT:
            points.append((at, result, region))
            continue
        tied = by_region.get(str(result.get("parentID"))) if kind == BRUSH else None
        score = _result_score(result, fallback, file, at)
        new = _region_boxes(kind, value, size, state, file, at, tied is not None)
        if tied is not None:  # a brush tied by parentID to a region before it: that box's mask
            if [box["name"] for box in new] != [boxes[tied]["name"]] or "rle" in boxes[tied]:
                message = f"a brush tied by parentID gives its {boxes[tied]['name']!r} region one mask of that label"
                raise InvalidDataError(message, file=file, location=at)
            boxes[tied]["rle"] = new[0]["rle"]
            continue
        if kind == POLYGON and region in by_region and boxes[by_region[region]]["name"] == new[0]["name"]:
            _merge_ring(boxes[by_region[region]], new[0]["polygon"][0])  # one instance, several rings
            continue
        by_region.setdefault(region, len(boxes))
        boxes += [{**box, **({"score": score} if score is not None else {})} for box in new]
    for at, result, region in points:
        _tie_keypoint(result, region, boxes, by_region, relations, size or (1, 1), state, file, at)
    return boxes, labels


def _merge_ring(box: dict[str, Any], ring: list[float]) -> None:
    box["polygon"].append(ring)
    box["x1"], box["y1"] = min(box["x1"], *ring[0::2]), min(box["y1"], *ring[1::2])
    box["x2"], box["y2"] = max(box["x2"], *ring[0::2]), max(box["y2"], *ring[1::2])


def _tie_keypoint(
    result: dict[str, Any],
    region: str,
    boxes: list[dict[str, Any]],
    by_region: Mapping[str, int],
    relations: Mapping[str, Sequence[str]],
    size: tuple[int, int],
    state: _Reading,
    file: Path,
    where: str,
) -> None:
    """Place one ``keypointlabels`` point in the ``keypoints`` of the box its ``parentID`` or a relation
    names, at the place of its name among its class's keypoint names (``v`` 2, or the value's ``visibility``)."""
    value = _typed(result.get("value"), dict, "value as an object", file, f"{where}.value")
    labels = _typed(value.get(KEYPOINT), list, "value.keypointlabels as an array", file, f"{where}.value")
    name = _typed(labels[0] if len(labels) == 1 else None, str, "one keypoint label", file, f"{where}.value.{KEYPOINT}")
    parents = [str(result["parentID"])] if result.get("parentID") is not None else list(relations.get(region, ()))
    parent = next((by_region[p] for p in parents if p in by_region), None)
    place: dict[str, Any] = {"file": file, "location": where}
    if parent is None:
        raise InvalidDataError(f"keypoint {name!r} is tied to no box (by parentID or a relation)", **place)
    box = boxes[parent]
    names = state.config.keypoints_of(box["name"]) if state.config is not None else ()
    if not names:
        message = "keypointlabels need the labeling config for their names and order: --config label_config.xml"
        raise UsageError(message, **place)
    if name not in names:
        raise InvalidDataError(f"keypoint {name!r} is not one of {box['name']!r} in the labeling config", **place)
    x, y = (_number(value.get(k), file, f"{where}.value.{k}") for k in ("x", "y"))
    if not (-PERCENT_SLACK <= x <= 100 + PERCENT_SLACK and -PERCENT_SLACK <= y <= 100 + PERCENT_SLACK):
        raise InvalidDataError(f"expected x, y in 0..100 (percent), found {x}, {y}", **place)
    visibility = value.get("visibility", 2)
    if visibility not in (0, 1, 2) or isinstance(visibility, bool):
        raise InvalidDataError(f"expected visibility 0, 1 or 2, found {visibility!r}", **place)
    keypoints = box.setdefault("keypoints", [[0.0, 0.0, 0] for _ in names])
    slot = names.index(name)
    if keypoints[slot][2]:
        raise InvalidDataError(f"the box has keypoint {name!r} twice", **place)
    point = [round_coord(x * size[0] / 100.0), round_coord(y * size[1] / 100.0)] if visibility else [0.0, 0.0]
    keypoints[slot] = [*point, int(visibility)]
    state.with_keypoints.add(box["name"])


def _chosen(task: dict[str, Any], state: _Reading, file: Path, where: str) -> list[tuple[str, dict[str, Any]]]:
    """The annotations (or predictions) of a task that ``--annotations`` and ``--predictions`` select."""
    key = "annotations" if "annotations" in task else "completions"
    key = "predictions" if state.options.get("predictions") else key
    items = _typed(task.get(key) or [], list, f"{key} as an array", file, f"{where}.{key}")
    kept = []
    for index, item in enumerate(items):
        at = f"{where}.{key}[{index}]"
        _typed(item, dict, "an annotation object", file, at)
        if not item.get("was_cancelled"):
            kept.append((at, item))
    if state.options.get("annotations") == "all" or not kept:
        return kept
    return [next(((at, item) for at, item in kept if item.get("ground_truth") is True), kept[0])]


def _annotator(item: dict[str, Any], predictions: bool) -> Any:
    who = item.get("model_version") if predictions else item.get("completed_by")
    if isinstance(who, dict):
        who = who.get("email", who.get("id"))
    return who if isinstance(who, (str, int)) and not isinstance(who, bool) else None


def _task_to_record(task: Any, state: _Reading, file: Path, where: str) -> dict[str, Any]:
    """One task as a record (its chosen annotations' boxes and labels)."""
    _typed(task, dict, "a task object", file, where)
    data = _typed(task.get("data"), dict, "data as an object", file, f"{where}.data")
    key = state.config.image_key if state.config is not None else DEFAULT_IMAGE_KEY
    reference = _typed(data.get(key), str, f"data.{key} as an image reference", file, f"{where}.data.{key}")
    try:
        path = image_reference_path(reference=reference)
    except ValueError as exc:
        raise UnsafePathError(str(exc), file=file, location=f"{where}.data.{key}") from None
    if state.images is not None:
        alias = unquote(PurePosixPath(urlsplit(reference).path).name)
        try:
            path = state.images.find(path, [alias])
        except InvalidDataError as error:
            raise InvalidDataError(error.message, file=file, location=f"{where}.data.{key}") from None
    chosen = _chosen(task, state, file, where)
    results = []
    for at, item in chosen:
        listed = _typed(item.get("result", []), list, "result as an array", file, f"{at}.result")
        results += [
            (f"{at}.result[{i}]", _typed(r, dict, "a result object", file, f"{at}.result[{i}]"))
            for i, r in enumerate(listed)
        ]
    size = _task_size(results, file)
    if size is None and state.images is not None:
        size = read_image_size(state.images.root / path)
    boxes, labels = [], []
    for at, item in chosen:
        found, chosen_labels = _annotation_to_boxes(item, size, state, file, at)
        who = _annotator(item, bool(state.options.get("predictions")))
        if state.options.get("annotations") == "all" and who is not None:
            found = [{**box, "attributes": {"annotator": who}} for box in found]
        boxes += found
        labels += chosen_labels
    task_id = task.get("id")
    attributes = {k: v for k, v in data.items() if k != key}
    return make_record(
        image=path,
        width=size[0] if size else None,
        height=size[1] if size else None,
        boxes=boxes,
        labels=labels,
        id=task_id if isinstance(task_id, (int, str)) and not isinstance(task_id, bool) else None,
        attributes=attributes or None,
    )


def _image_of(task: Any) -> str | None:
    """The image reference of a task, for a problem's ``image`` (None when there is none)."""
    data = task.get("data") if isinstance(task, dict) else None
    image = data.get(DEFAULT_IMAGE_KEY) if isinstance(data, dict) else None
    return image if isinstance(image, str) else None


def _decode_export(path: Path) -> list[Any]:
    raw = read_regular_bytes(path, "Label Studio export")
    try:
        document = _DECODER.decode(strip_bom(raw))
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError) as exc:
        raise ParseError(f"not valid JSON ({exc})", file=path) from None
    if not isinstance(document, list):
        raise ParseError(
            f"expected a Label Studio export (an array of tasks), found {describe_json(document)}", file=path
        )
    return document


def _read_config(path: Path | None) -> LabelConfig | None:
    if path is None:
        return None
    return parse_label_config(root=parse_xml(path, what="labeling config", purpose="labeling configs"))


def _read(source: Path, ctx: ReadContext) -> ReadResult:
    """Read a Label Studio export (a file, or a folder of ``<split>.json``) into ``ctx.sink``."""
    sink, options = ctx.sink, ctx.options
    files = _export_files(source, options.get("split"))
    config_path = _config_path(source, options)
    config = _read_config(config_path)
    state = _Reading(options, config, _ImageIndex(ctx.images) if ctx.images is not None else None)
    splits: dict[str, list[dict[str, Any]]] = {}
    for path, split in files:
        sink.add_source_file(path)
        tasks = _decode_export(path)
        sink.expect(len(tasks))
        records, seen = splits.setdefault(split, []), dict[str, int]()
        for index, task in enumerate(tasks):
            try:
                record = _task_to_record(task, state, path, f"[{index}]")
                if record["image"] in seen:
                    raise InvalidDataError(
                        f"image {record['image']!r} is already task {seen[record['image']]}",
                        file=path,
                        location=f"[{index}]",
                    )
            except AnnonormError as error:
                error.image = error.image or _image_of(task)
                sink.problem(error)
                continue
            seen[record["image"]] = index
            records.append(record)
    if config_path is not None:
        sink.add_source_file(config_path)
    for name in [*(config.classes if config is not None else ()), *state.seen]:
        names = config.keypoints_of(name) if config is not None else ()
        own = config is not None and name in config.class_keypoints
        sink.category(name, keypoints=names if own or name in state.with_keypoints else None)
    for split, records in splits.items():
        sink.declare_split(split)
        for record in records:
            sink.add(split, record)
    root = source if source.is_dir() else source.parent
    return ReadResult(name=source.stem or "labelstudio", image_root=ctx.images if ctx.images is not None else root)


# ---------------------------------------------------------------------------------------------- writing


def _record_to_task(
    record: Mapping[str, Any], keypoints: Mapping[str, Sequence[str]], file: Path, where: str, annotation_id: int
) -> dict[str, Any]:
    width, height = record.get("width") or 0, record.get("height") or 0
    boxes = record.get("boxes") or ()
    if boxes and not (width and height):
        raise InvalidDataError(
            "the image size is unknown; Label Studio stores percent of it", file=file, location=where
        )
    results = []
    for index, box in enumerate(boxes):
        names = keypoints.get(box["name"], ())
        results += box_to_ls_results(box=box, region=f"r{index}", width=width, height=height, keypoint_names=names)
    boxed = {box["name"] for box in boxes}
    unboxed = [name for name in record.get("labels") or () if name not in boxed]
    if unboxed:
        sizes = {"original_width": width, "original_height": height} if width and height else {}
        kind = {"from_name": "choice", "to_name": "image", "type": CHOICES, "value": {"choices": unboxed}}
        results.append({"id": "choices", **sizes, **kind})
    data = {"image": "/data/local-files/?d=" + quote(record["image"], safe="/")}
    data.update({k: v for k, v in (record.get("attributes") or {}).items() if k != DEFAULT_IMAGE_KEY})
    task: dict[str, Any] = {"id": record["id"]} if isinstance(record.get("id"), int) else {}
    annotation = {"id": annotation_id, "result": results, "was_cancelled": False, "ground_truth": False}
    return {**task, "data": data, "annotations": [annotation]}


def _write(dataset: NormalizedSource, out: Path, options: Mapping[str, Any]) -> None:
    """Write ``<split>.json`` per split and a ``label_config.xml`` naming the classes."""
    keypoints = {c.name: list(c.keypoints) for c in dataset.manifest.categories if c.keypoints}
    for split in dataset.manifest.splits:
        split_file = dataset.split_path(split)
        records = enumerate(dataset.records(split), start=1)
        tasks = [_record_to_task(record, keypoints, split_file, f"record {n}", n) for n, record in records]
        (out / f"{split}.json").write_bytes(msgspec.json.format(_ENCODER.encode(tasks), indent=2) + b"\n")
    config = label_config_to_xml(classes=dataset.manifest.category_names, keypoints=keypoints)
    (out / CONFIG_FILE).write_text(config, encoding="utf-8", newline="")


# ---------------------------------------------------------------------------------------------- the converter


class LabelstudioConverter(Converter):
    """Label Studio JSON exports (rectangles, polygons, brushes, keypoints, choices), both ways."""

    name = "labelstudio"
    summary = "Label Studio JSON export (tasks with percent rectangles, polygons, brushes, keypoints, choices)"
    read_options = (
        Option(
            "config",
            "The labeling config (label_config.xml): classes in its order, keypoint names; default: the "
            "label_config.xml of a SOURCE folder",
            type=Path,
        ),
        Option(
            "annotations",
            "Which annotations of a task: first (the first not cancelled, a ground_truth one first) or all "
            "(each box with an annotator attribute)",
            default="first",
            choices=("first", "all"),
        ),
        Option(
            "predictions", "Read the tasks' predictions (boxes with a score) instead of their annotations", type=bool
        ),
        Option("split", "The split of an export file (default train); for a folder, read only this split"),
    )
    capabilities = Capabilities(
        image_attributes=True,
        reserved_attributes=frozenset({DEFAULT_IMAGE_KEY}),
        image_labels=True,
        label_order=False,
        ids=True,
        needs_image_files=True,
        category_order=True,
        scores=True,
        polygons=True,
        rle=True,
        keypoints=True,
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
