"""Image files for readers: the folders a format's files sit in, an image found by its path or stem.

A label file often names its image only by stem (YOLO's ``x.txt`` for ``x.jpg``): :func:`find_image`
tries a few folder prefixes and the common image extensions, in order. :func:`walk_files` lists a
tree without following symlinked folders (a link to ``..`` would loop), and :func:`list_dir` lists
one folder by name, treating a folder that is not there as empty and one that cannot be listed as a
:class:`~annonorm.errors.ParseError` naming it. (Label PNGs of segmentation formats are
:mod:`annonorm.sources.segmentation`'s.)
"""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from pathlib import Path

from annonorm.errors import ParseError

__all__ = [
    "IMAGE_EXTENSIONS",
    "IMAGE_SUFFIXES",
    "find_image",
    "images_by_stem",
    "list_dir",
    "walk_files",
]

#: Image suffixes looked up for a stem, most usual first.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".JPG", ".JPEG", ".PNG")
#: The same suffixes, lower case, to recognize an image file by its name.
IMAGE_SUFFIXES = frozenset(e.lower() for e in IMAGE_EXTENSIONS)


def list_dir(directory: Path) -> list[os.DirEntry[str]]:
    """The entries of ``directory``, by name (none if it does not exist); an unlistable one is a ParseError."""
    try:
        with os.scandir(directory) as iterator:
            return sorted(iterator, key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise ParseError(f"cannot list the folder: {exc.strerror}", file=directory) from None


def walk_files(
    directory: Path, suffixes: Collection[str], *, any_kind: bool, skip: Collection[str] = ()
) -> dict[str, Path]:
    """Files under ``directory`` with one of ``suffixes`` (lower case), by relative path without suffix.

    Symlinked folders are not followed (a link to ``..`` would loop); names in ``skip`` are left out.
    With ``any_kind`` an entry is kept whatever it is (a FIFO or a link to ``/dev/zero`` named
    ``x.txt`` is then refused when read, by name, instead of being left out silently); without it,
    only regular files (and links to them) are kept.
    """
    found: dict[str, Path] = {}
    pending = [(directory, "")]
    while pending:
        folder, prefix = pending.pop()
        for entry in list_dir(folder):
            if entry.is_dir(follow_symlinks=False):
                pending.append((Path(entry.path), f"{prefix}{entry.name}/"))
                continue
            stem, dot, suffix = entry.name.rpartition(".")
            if not dot or not stem or f".{suffix.lower()}" not in suffixes or entry.name in skip:
                continue
            if any_kind or entry.is_file():
                found[prefix + stem] = Path(entry.path)
    return found


def find_image(root: Path, prefixes: Sequence[str], stem: str) -> str | None:
    """The path below ``root`` of the image ``<prefix><stem><extension>``, trying each prefix in order and
    each of :data:`IMAGE_EXTENSIONS` for it; ``None`` when no such regular file exists."""
    for prefix in prefixes:
        base = root / (prefix + stem)
        for extension in IMAGE_EXTENSIONS:
            if base.with_name(base.name + extension).is_file():
                return prefix + stem + extension
    return None


def images_by_stem(directory: Path) -> dict[str, str]:
    """Stem -> image file name for the entries of ``directory`` with an image suffix (any case).

    One listing for a folder of thousands of images, instead of a lookup per stem. Where a stem has
    several images, the extension earlier in :data:`IMAGE_EXTENSIONS` wins (``x.jpg`` over
    ``x.png``), and between spellings of one extension (``x.JPG``, ``x.jpg``) the first by name.
    Entries are kept whatever they are (a directory named ``x.jpg`` too): a caller that opens one checks it.
    """
    rank: dict[str, int] = {}
    for position, extension in enumerate(IMAGE_EXTENSIONS):
        rank.setdefault(extension.lower(), position)
    found: dict[str, tuple[int, str]] = {}
    for entry in list_dir(directory):
        stem, dot, suffix = entry.name.rpartition(".")
        position = rank.get(f"{dot}{suffix}".lower(), -1)
        if stem and position >= 0 and (stem not in found or position < found[stem][0]):
            found[stem] = (position, entry.name)
    return {stem: name for stem, (_, name) in found.items()}
