"""Names for annotation shapes annonorm recognizes but has no converter for (yet).

``annonorm convert auto`` asks every installed converter first; when none claims the source,
:func:`recognise_shape` looks at a bounded prefix of it (never the whole file) so the error can
say "this is a COCO results list" instead of only "unknown format". A shape that an installed
converter reads once it is told more than ``auto`` knows (a results list needs its ground truth) is named
with the command that reads it (:func:`shape_hint`).
"""

from __future__ import annotations

import codecs
import re
import stat
from pathlib import Path

__all__ = ["COCO_RESULTS", "PREFIX_BYTES", "READ_WITH", "is_coco_results", "recognise_shape", "shape_hint"]

#: How much of a file is looked at.
PREFIX_BYTES = 64 * 1024

_ARRAY_OF_OBJECTS = re.compile(rb"^\s*\[\s*\{")
COCO_RESULTS = "a COCO results (detections) list"
#: Shapes a converter reads given what ``convert auto`` cannot guess, and the command that reads them.
READ_WITH = {COCO_RESULTS: "annonorm convert coco-results FILE --gt INSTANCES.json"}


def is_coco_results(prefix: bytes) -> bool:
    """Whether the first bytes of a JSON file are a COCO results (detections) list.

    That is an array of ``{image_id, category_id, bbox | segmentation, score}`` objects, what a model
    evaluated with pycocotools writes, with no ``images`` or ``categories``. ``prefix`` is the start of
    the file (:data:`PREFIX_BYTES` of it suffice; a UTF-8 byte order mark is allowed).
    """
    head = prefix.removeprefix(codecs.BOM_UTF8)
    return (
        _ARRAY_OF_OBJECTS.match(head) is not None
        and b'"image_id"' in head
        and b'"category_id"' in head
        and (b'"bbox"' in head or b'"segmentation"' in head)
    )


# (what it is, pattern over the first bytes of a JSON file); the first match wins.
_JSON_SHAPES: tuple[tuple[str, re.Pattern[bytes]], ...] = (
    ("a LabelMe JSON file", re.compile(rb'"shapes"\s*:\s*\[.*"imagePath"|"imagePath".*"shapes"\s*:', re.S)),
    ("a Label Studio JSON export", re.compile(rb'^\s*\[\s*\{.*"(annotations|completions)"\s*:\s*\[.*"data"', re.S)),
    ("a CreateML JSON file", re.compile(rb'^\s*\[\s*\{\s*"image"\s*:.*"coordinates"', re.S)),
    ("a VoTT JSON export", re.compile(rb'"assets"\s*:\s*\{.*"regions"', re.S)),
    ("an SA-1B per-image JSON file", re.compile(rb'"annotations"\s*:\s*\[.*"segmentation"\s*:\s*\{.*"counts"', re.S)),
)
_SUFFIX_SHAPES = {
    ".tfrecord": "a TFRecord file",
    ".record": "a TFRecord file",
    ".parquet": "a Parquet file",
    ".xml": "an XML file that is not Pascal VOC",
}
_FOLDER_SHAPES = (
    ("label_2", "a KITTI object-label folder"),
    ("labelTxt", "a DOTA folder"),
    ("gtFine", "a Cityscapes folder"),
)


def _prefix(path: Path) -> bytes:
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            return b""
        with path.open("rb") as stream:
            return stream.read(PREFIX_BYTES)
    except OSError:
        return b""


def _file_shape(path: Path) -> str | None:
    prefix = _prefix(path)
    if is_coco_results(prefix):
        return COCO_RESULTS
    if prefix.lstrip().startswith((b"{", b"[")):
        for what, pattern in _JSON_SHAPES:
            if pattern.search(prefix):
                return what
    if b"<annotations>" in prefix and b"<version>" in prefix:
        return "a CVAT for images/video XML file"
    return _SUFFIX_SHAPES.get(path.suffix.lower())


def recognise_shape(source: Path) -> str | None:
    """What ``source`` looks like (``"a COCO results (detections) list"``), or ``None`` when unknown."""
    try:
        if source.is_file():
            return _file_shape(source)
        if not source.is_dir():
            return None
        for folder, what in _FOLDER_SHAPES:
            if any(any(source.glob(pattern + folder)) for pattern in ("", "*/", "*/*/")):  # bounded depth
                return what
        for child in sorted(source.iterdir())[:200]:
            if child.is_file():
                shape = _file_shape(child)
                if shape is not None and child.suffix.lower() != ".xml":
                    return f"a folder holding {shape} ({child.name})"
    except OSError:
        return None
    return None


def shape_hint(source: Path) -> str:
    """The clause ``convert auto`` adds to "no installed converter recognizes this", or ``""``.

    ``it looks like a COCO results (detections) list: read it with annonorm convert coco-results FILE --gt
    INSTANCES.json; `` for a shape a converter reads with more to go on, ``it looks like X, which annonorm
    cannot read yet; `` for one no converter reads.
    """
    known = recognise_shape(source)
    if known is None:
        return ""
    command = next((command for shape, command in READ_WITH.items() if shape in known), None)  # a folder's too
    if command is not None:
        return f"it looks like {known}: read it with {command}; "
    return f"it looks like {known}, which annonorm cannot read yet; "
