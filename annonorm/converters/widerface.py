"""WIDER Face (face detection): one ground-truth text file per split, images in event folders.

Layout (SOURCE is the dataset root, as the official archives unpack)::

    wider_face_split/wider_face_train_bbx_gt.txt     # also _val_; wider_face_test_filelist.txt (names only)
    WIDER_train/images/0--Parade/0_Parade_marchingband_1_849.jpg
    WIDER_val/images/...

A ground-truth file is a sequence of blocks: the image path below ``WIDER_<split>/images/``
(``<event>/<file>``), the number of faces N, then N rows ``x y w h blur expression illumination invalid
occlusion pose`` (top-left corner, width and height in pixels; the six flags are small integers: blur 0-2,
expression 0-1, illumination 0-1, invalid 0-1, occlusion 0-2, pose 0-1). A count of 0 is followed by one
dummy row of zeros, which is no face. A test file list has the image paths alone (images without boxes).

Every face is a box of the one category ``face``, x1 = x, y1 = y, x2 = x + w, y2 = y + h, with the six flags
as attributes; the event folder (``0--Parade``) is the record attribute ``event``. Record images are
``WIDER_<split>/images/<event>/<file>`` below SOURCE (or below ``--images DIR``: tried as
``DIR/WIDER_<split>/images/``, ``DIR/<split>/``, then ``DIR``); sizes come from the image headers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from annonorm.converters.base import Capabilities, Converter, ReadContext, ReadResult, make_record
from annonorm.errors import AnnonormError, InvalidDataError, ParseError, UnsafePathError
from annonorm.geometry import round_coord
from annonorm.images import read_image_size
from annonorm.io import read_text
from annonorm.paths import check_relative_path
from annonorm.sources.images import list_dir

__all__ = ["WiderfaceConverter", "widerface_row_problem", "widerface_row_to_box"]

# ---------------------------------------------------------------------------------------------- constants

SPLIT_DIR = "wider_face_split"
GT_FILE = re.compile(r"^wider_face_(?P<split>\w+?)_bbx_gt\.txt$")
LIST_FILE = re.compile(r"^wider_face_(?P<split>\w+?)_filelist\.txt$")
CATEGORY = "face"
#: The six flags of a face row, in their column order (after x y w h).
FLAGS = ("blur", "expression", "illumination", "invalid", "occlusion", "pose")
EXPECTED = "expected 'x y w h blur expression illumination invalid occlusion pose' (10 values)"

# ---------------------------------------------------------------------------------------------- sniff


def _split_files(root: Path) -> list[tuple[str, Path, bool]]:
    """``(split, file, has boxes)`` of the ground-truth files and test file lists, by file name."""
    found = []
    for entry in list_dir(root / SPLIT_DIR):
        gt, listed = GT_FILE.match(entry.name), LIST_FILE.match(entry.name)
        if gt:
            found.append((gt["split"], Path(entry.path), True))
        elif listed:
            found.append((listed["split"], Path(entry.path), False))
    splits_with_gt = {split for split, _, boxes in found if boxes}
    return [f for f in found if f[2] or f[0] not in splits_with_gt]  # a gt file wins over a list of its split


def _sniff(source: Path) -> bool:
    try:
        return source.is_dir() and bool(_split_files(source))
    except (OSError, AnnonormError):
        return False


# -------------------------------------------------------------------------------- mapping widerface -> annonorm


def widerface_row_problem(*, tokens: Sequence[str]) -> str | None:
    """What is wrong with one face row's tokens, or None."""
    if len(tokens) != 10:
        return f"{EXPECTED}, found {len(tokens)} values"
    try:
        values = [float(t) for t in tokens]
    except ValueError:
        return f"{EXPECTED}; a value is not a number in {' '.join(tokens)}"
    if not all(math.isfinite(v) for v in values):
        return f"{EXPECTED}; the values must be finite numbers, found {' '.join(tokens)}"
    if values[2] < 0 or values[3] < 0:
        return f"expected a width and height >= 0, found w={tokens[2]} h={tokens[3]}"
    if not all(v.is_integer() and v >= 0 for v in values[4:]):
        return f"expected the six flags as whole numbers >= 0, found {' '.join(tokens[4:])}"
    return None


def widerface_row_to_box(*, tokens: Sequence[str]) -> dict[str, Any]:
    """The ``face`` box of one row (checked by :func:`widerface_row_problem` first: ValueError otherwise)."""
    problem = widerface_row_problem(tokens=tokens)
    if problem is not None:
        raise ValueError(problem)
    x, y, w, h = (float(t) for t in tokens[:4])
    return {
        "name": CATEGORY,
        "x1": round_coord(x),
        "y1": round_coord(y),
        "x2": round_coord(x + w),
        "y2": round_coord(y + h),
        "attributes": {flag: int(float(t)) for flag, t in zip(FLAGS, tokens[4:], strict=True)},
    }


def _image_path(line: str, path: Path, number: int) -> str:
    name = line.strip().replace("\\", "/")
    try:
        return check_relative_path(name)
    except ValueError as exc:
        raise UnsafePathError(str(exc), file=path, location=f"line {number}") from None


def parse_gt(text: str, path: Path) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """``(image path, boxes)`` per block of a ground-truth file; a malformed block is an error naming its line."""
    lines = text.splitlines()
    at = 0
    while at < len(lines):
        if not lines[at].strip():
            at += 1
            continue
        image = _image_path(lines[at], path, at + 1)
        if at + 1 >= len(lines) or not lines[at + 1].strip():
            raise ParseError(f"expected the number of faces of {image!r}, found the end", file=path,
                             location=f"line {at + 2}")  # fmt: skip
        count_text = lines[at + 1].strip()
        if not (count_text.isascii() and count_text.isdigit()):
            raise ParseError(f"expected the number of faces of {image!r}, found {count_text!r}", file=path,
                             location=f"line {at + 2}")  # fmt: skip
        count, at = int(count_text), at + 2
        rows = max(count, 1) if count or _is_dummy(lines, at) else 0
        if at + rows > len(lines):
            raise ParseError(f"{image!r} has {count} faces but the file ends after {len(lines) - at} rows",
                             file=path, location=f"line {len(lines)}")  # fmt: skip
        boxes = []
        for number in range(at, at + (count and rows)):
            tokens = lines[number].split()
            problem = widerface_row_problem(tokens=tokens)
            if problem is not None:
                error = ParseError if len(tokens) != 10 else InvalidDataError
                raise error(problem, file=path, location=f"line {number + 1}", image=image)
            boxes.append(widerface_row_to_box(tokens=tokens))
        at += rows
        yield image, boxes


def _is_dummy(lines: Sequence[str], at: int) -> bool:
    """Whether the row after a count of 0 is the dummy row the official files put there."""
    return at < len(lines) and len(lines[at].split()) == 10


# ---------------------------------------------------------------------------------------------- layout


def _source_files(source: Path, options: Mapping[str, Any]) -> list[Path]:
    return [path for _, path, _ in _split_files(source)]


def _image_prefixes(source: Path, images: Path | None, split: str) -> tuple[Path, str]:
    """The image root and the prefix of this split's images below it."""
    if images is None:
        return source, f"WIDER_{split}/images/"
    for prefix in (f"WIDER_{split}/images/", f"{split}/"):
        if (images / prefix).is_dir():
            return images, prefix
    return images, ""


# ---------------------------------------------------------------------------------------------- read


def _read(source: Path, ctx: ReadContext) -> ReadResult:
    writer = ctx.sink
    files = _split_files(source) if source.is_dir() else []
    if not files:
        raise ParseError(
            f"no WIDER Face ground truth here: expected {SPLIT_DIR}/wider_face_<split>_bbx_gt.txt", file=source
        )
    writer.category(CATEGORY)
    root = ctx.images or source
    for split, path, has_boxes in files:
        writer.add_source_file(path)
        writer.declare_split(split)
        root, prefix = _image_prefixes(source, ctx.images, split)
        text = read_text(path, "WIDER Face ground truth")
        if not text.strip():
            raise ParseError(
                "no WIDER Face images in it: expected '<event>/<file>', the face count, the rows", file=path
            )
        if has_boxes:
            blocks: Iterator[tuple[str, list[dict[str, Any]]]] = parse_gt(text, path)
        else:
            blocks = ((_image_path(line, path, n), []) for n, line in enumerate(text.splitlines(), 1) if line.strip())
        for image, boxes in blocks:
            size = read_image_size(root / (prefix + image))
            width, height = size if size is not None else (None, None)
            event = image.split("/")[0] if "/" in image else None
            attributes = {"event": event} if event else None
            record = make_record(image=prefix + image, width=width, height=height, boxes=boxes, attributes=attributes)
            writer.add(split, record)
    return ReadResult(name=source.resolve().name or "widerface", image_root=root)


# ---------------------------------------------------------------------------------------------- the converter


class WiderfaceConverter(Converter):
    """WIDER Face ground truth (``wider_face_split/``) with the six face attributes; read only."""

    name = "widerface"
    summary = "WIDER Face wider_face_split/wider_face_<split>_bbx_gt.txt + WIDER_<split>/images/<event>/"
    capabilities = Capabilities(
        box_attributes=True, needs_image_files=True, reserved_attributes=frozenset({*FLAGS, "event"})
    )

    @classmethod
    def sniff(cls, source: Path) -> bool:
        return _sniff(source)

    @classmethod
    def source_files(cls, source: Path, options: Mapping[str, Any]) -> list[Path]:
        return _source_files(source, options)

    def read(self, source: Path, ctx: ReadContext) -> ReadResult:
        return _read(source, ctx)
