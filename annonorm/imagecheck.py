"""The file half of ``annonorm validate --check-images``: image and mask files, checked in batches.

The validator collects one :data:`Job` per valid record (its line, image path, recorded size, mask and
box count) and hands :class:`ImageBatch` es of them to the engine's :meth:`~annonorm.engine.Executor.map`,
so header reads spread over the cores (or a Ray cluster). Each image costs what a bare header loop
costs plus an ``lstat``: containment is decided from the real path of the image's folder (resolved
once per folder) unless the image itself is a symbolic link, and only Pillow's lazy open runs (header
only, the same reader the loader decodes with, so a file this module accepts loads).

The leakage rule's SHA-256 is computed only when asked (``digests``: the dataset has several splits),
in the same open as the header: a small file is read once, in one call, and Pillow reads its header
from those bytes; a large one is hashed streamed, then its header read. One split hashes nothing.

Problems come back as plain :data:`Problem` tuples (all errors); the validator words them into findings.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from annonorm.errors import ParseError
from annonorm.fsutil import open_regular

__all__ = [
    "BatchResult",
    "ImageBatch",
    "Job",
    "Problem",
    "check_batch",
    "mask_values_problem",
]

#: One record to check: ``(line, image, width, height, mask, boxes)``.
Job = tuple[int, str, int | None, int | None, str | None, int]
#: One problem found: ``(line, code, message, key)``; every one is an error.
Problem = tuple[int, str, str, str]

_WIDE_MODES = frozenset({"I;16", "I;16B", "I;16L", "I"})
_EIGHT_BIT_MODES = frozenset({"L", "P"})


@dataclass(frozen=True)
class ImageBatch:
    """Consecutive records of one split whose files are checked by one worker."""

    image_root: str
    dataset_root: str
    #: The manifest's ``mask_kind`` and number of categories (for a mask's pixel values).
    mask_kind: str | None
    categories: int
    jobs: list[Job]
    #: Hash each image that opens (SHA-256, for the leakage rule).
    digests: bool = False


@dataclass
class BatchResult:
    """What a batch found, and with ``digests`` each image that opened: its line and SHA-256 (32 bytes each)."""

    problems: list[Problem] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    digests: bytearray = field(default_factory=bytearray)


#: Files up to this size are read in one call and hashed whole; larger ones are hashed in blocks.
WHOLE_READ = 16 << 20


def check_batch(batch: ImageBatch) -> BatchResult:
    """Check that each job's image (and mask) exists, opens, stays inside its root and has the recorded size."""
    from PIL import Image, UnidentifiedImageError

    result = BatchResult()
    problems = result.problems
    root = batch.image_root
    real_root = os.path.realpath(root)
    prefix = real_root.rstrip(os.sep) + os.sep
    folders: dict[str, str] = {}
    for line, image, width, height, mask, boxes in batch.jobs:
        path = os.path.join(root, image)
        try:
            status = os.lstat(path)
            if stat.S_ISLNK(status.st_mode):
                status = os.stat(path)  # a link to nothing is a missing image
                real = os.path.realpath(path)
            else:
                folder, name = os.path.split(path)
                if name in ("", ".", ".."):
                    real = os.path.realpath(path)
                else:
                    real_folder = folders.get(folder)
                    if real_folder is None:
                        real_folder = folders[folder] = os.path.realpath(folder)
                    real = os.path.join(real_folder, name)
        except OSError:
            problems.append((line, "image_missing", f"image {Path(root) / image} does not exist", "image"))
            continue
        if real != real_root and not real.startswith(prefix):
            message = f"image {Path(root) / image} resolves outside image_root"
            problems.append((line, "image_outside_root", message, "image"))
            continue
        opened = _fast_open(path, batch.digests)
        try:
            size, digest = opened if opened is not None else _careful_open(path, batch.digests)
        except ParseError as exc:  # a FIFO, a device, a directory: refused before reading
            problems.append((line, "image_unreadable", f"image {Path(root) / image}: {exc.message}", "image"))
            continue
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
            message = f"image {Path(root) / image} cannot be opened: {exc}"
            problems.append((line, "image_unreadable", message, "image"))
            continue
        if digest is not None:
            result.lines.append(line)
            result.digests += digest
        if width is not None and size != (width, height):
            message = f"image is {size[0]}x{size[1]} but the record says {width}x{height}"
            problems.append((line, "image_size_mismatch", message, "width"))
        if mask is not None:
            problems.extend((line, code, text, "mask") for code, text in _mask_problems(batch, mask, boxes, size))
    return result


#: ``O_NONBLOCK``: a path swapped for a FIFO after the ``lstat`` does not block the open (the fstat refuses it).
_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


def _fast_open(path: str, digests: bool) -> tuple[tuple[int, int], bytes | None] | None:
    """The image's size (and SHA-256 with ``digests``) the way a bare header loop gets it; ``None`` for
    anything unusual (not a regular file, too large to read whole, unreadable), which :func:`_careful_open`
    then meets and words."""
    from PIL import Image, UnidentifiedImageError

    try:
        descriptor = os.open(path, _FLAGS)
    except OSError:
        return None
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode) or (digests and status.st_size > WHOLE_READ):
            return None
        if not digests:
            with os.fdopen(descriptor, "rb", closefd=False) as stream, Image.open(stream) as image:
                return image.size, None
        data = os.read(descriptor, status.st_size + 1)
        while more := os.read(descriptor, 1 << 20):  # a file that grew meanwhile
            data += more
        with Image.open(io.BytesIO(data)) as image:
            return image.size, hashlib.sha256(data).digest()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None
    finally:
        os.close(descriptor)


def _careful_open(path: str, digests: bool) -> tuple[tuple[int, int], bytes | None]:
    """:func:`_fast_open` for any file: refuses what is not a regular file, hashes streamed, reads the header."""
    from PIL import Image, UnidentifiedImageError

    with open_regular(Path(path), "image") as stream:
        digest = None
        if digests:
            hashed = hashlib.sha256()
            for block in iter(lambda: stream.read(1 << 20), b""):
                hashed.update(block)
            digest = hashed.digest()
            stream.seek(0)
        try:
            with Image.open(stream) as image:  # the header only
                return image.size, digest
        except UnidentifiedImageError:  # its text names the descriptor, which differs from run to run
            raise UnidentifiedImageError("cannot identify image file (no format Pillow reads)") from None


def _mask_problems(batch: ImageBatch, mask: str, boxes: int, image_size: tuple[int, int]) -> list[tuple[str, str]]:
    """``(code, message)`` for the mask file: inside the dataset, the image's size, its bit depth, its pixel values."""
    from PIL import Image, UnidentifiedImageError

    dataset_root = Path(batch.dataset_root)
    mask_path = dataset_root / mask
    if not mask_path.exists():
        return [("mask_missing", f"mask {mask_path} does not exist")]
    try:
        mask_path.resolve().relative_to(dataset_root.resolve())
    except ValueError:
        return [("mask_outside_dataset", f"mask {mask_path} resolves outside the dataset")]
    pixels: np.ndarray | None = None
    try:
        with open_regular(mask_path, "mask") as stream, Image.open(stream) as opened:
            size, mode = opened.size, opened.mode
            if mode in _WIDE_MODES or mode in _EIGHT_BIT_MODES:
                pixels = np.asarray(opened)  # decodes: the values are checked below
    except ParseError as exc:
        return [("mask_unreadable", f"mask {mask_path}: {exc.message}")]
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        return [("mask_unreadable", f"mask {mask_path} cannot be opened: {exc}")]
    found: list[tuple[str, str]] = []
    if size != image_size:
        found.append(
            (
                "mask_size_mismatch",
                f"mask is {size[0]}x{size[1]} but its image is {image_size[0]}x{image_size[1]}",
            )
        )
    wide = mode in _WIDE_MODES
    eight_bit = mode in _EIGHT_BIT_MODES
    needs_wide = batch.mask_kind == "instance" and boxes > 254
    if not (wide or eight_bit):
        found.append(("mask_mode", f"mask mode {mode} is not a single-channel 8- or 16-bit"))
    elif wide and not needs_wide:
        found.append(
            (
                "mask_depth",
                f"16-bit mask where 8-bit is expected ({boxes} boxes, mask_kind {batch.mask_kind})",
            )
        )
    elif eight_bit and needs_wide:
        found.append(("mask_depth", f"8-bit mask cannot index {boxes} instances"))
    if pixels is not None and batch.mask_kind is not None:
        problem = mask_values_problem(pixels, batch.mask_kind, boxes, batch.categories, wide)
        if problem is not None:
            found.append(("mask_value_unknown", f"mask {mask_path}: {problem}"))
    return found


def mask_values_problem(pixels: np.ndarray, mask_kind: str, boxes: int, categories: int, wide: bool) -> str | None:
    """What is wrong with a mask's pixel values (``None`` when each names a box or class, or is void).

    Instance masks: ``k`` in 1..``boxes`` is the k-th box, 0 background, 255 (8-bit) or 65535
    (16-bit) void. Semantic masks: category id + 1 in 1..``categories``, 0 background, 255 void.
    """
    if mask_kind == "instance":
        top, void = boxes, 65535 if wide else 255
        rule = f"the record has {boxes} boxes (instance mask: 1..{boxes} a box, 0 background, {void} void)"
        noun = "box"
    else:
        top, void = categories, 255
        rule = f"the manifest has {categories} categories (semantic mask: category id + 1, 0 background, 255 void)"
        noun = "class"
    if pixels.size == 0 or (int(pixels.max()) <= top and int(pixels.min()) >= 0):
        return None
    bad = pixels[((pixels > top) | (pixels < 0)) & (pixels != void)]
    if not bad.size:
        return None
    values = np.unique(bad).tolist()
    shown = ", ".join(map(str, values[:5])) + (", ..." if len(values) > 5 else "")
    if len(values) == 1:
        return f"pixel value {shown} names no {noun}: {rule}"
    return f"pixel values {shown} name no {noun}: {rule}"
