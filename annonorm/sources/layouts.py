"""Dataset layouts that several formats share: image list files, written paths resolved on disk, placing images.

- An image list file names one image per line (Darknet's ``train.txt``, an Ultralytics ``train: train.txt``,
  many detection repositories' split files). The tools that wrote it resolve the lines against their own
  working directory, so a line usually carries a prefix that is not on disk (``data/obj_train_data/1.jpg``):
  :func:`existing_tail` drops leading folders until the rest exists below the dataset root. A line
  starting with ``./`` is relative to the list's own folder (Ultralytics' rule). ``#`` starts a comment line.
- :func:`resolve_entry`: a path a dataset file names (relative to a root, or absolute), with the leading
  ``../`` tried away when the path does not exist (exporters that wrote it relative to a sub-folder),
  refused when it resolves outside the root.
- :func:`swap_last_folder`: the path beside an image in a sibling tree (``images/a/x.jpg`` ->
  ``labels/a/x.txt``).
- :func:`files_by_image`: annotation files (one per image, by relative path without suffix) paired with their
  images below some prefixes, the images without a file added; :func:`listed_images`: the images of folders,
  image lists and single images.
- :func:`key_value_entries`: ``key = value`` lines (Darknet's ``obj.data``).
- :func:`place_image`: an exporter's copy or symbolic link of an image.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath

from annonorm.errors import InvalidDataError, ParseError
from annonorm.io import read_text
from annonorm.paths import is_inside
from annonorm.sink import DatasetWriter
from annonorm.sources.images import IMAGE_SUFFIXES, find_image, walk_files

__all__ = [
    "existing_tail",
    "files_by_image",
    "image_list_lines",
    "key_value_entries",
    "listed_images",
    "place_image",
    "resolve_entry",
    "swap_last_folder",
]


def existing_tail(root: Path, text: str) -> str | None:
    """A written path as a path below ``root`` that exists, leading folders dropped until one does (None if
    none does). A path climbing with ``..`` is never followed."""
    parts = [part for part in PurePosixPath(text.strip().replace("\\", "/")).parts if part not in ("/", ".")]
    if not parts or ".." in parts:
        return None
    for start in range(len(parts)):
        candidate = "/".join(parts[start:])
        if os.path.lexists(root / candidate):
            return candidate
    return None


def image_list_lines(path: Path, root: Path) -> Iterator[tuple[int, str, str | None]]:
    """``(line number, the line, its image below root or None)`` for each entry of an image list file."""
    for number, line in enumerate(read_text(path, "image list").splitlines(), start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        if entry.startswith("./"):
            local = Path(os.path.normpath(path.parent / entry[2:]))
            entry = local.relative_to(root).as_posix() if is_inside(str(local), str(root)) else entry
        yield number, line.strip(), existing_tail(root, entry)


def resolve_entry(root: Path, text: str, *, file: Path, location: str) -> Path | None:
    """The path ``text`` names below ``root`` (a leading ``../`` dropped when it does not exist as written),
    None when it names nothing; :class:`ParseError` naming ``file`` and ``location`` when it leaves ``root``."""
    tries = [text, text[3:]] if text.startswith("../") else [text]
    found = next((root / t for t in tries if os.path.lexists(root / t)), None)
    if found is not None and not is_inside(os.path.realpath(found), os.path.realpath(root)):
        raise ParseError(
            f"{text!r} leaves the dataset folder {root}; expected a path below it", file=file, location=location
        )
    return found


def swap_last_folder(path: str, old: str, new: str, suffix: str) -> str | None:
    """``path`` with its last ``old`` folder replaced by ``new`` and its suffix by ``suffix`` (None: no such folder)."""
    parts = list(PurePosixPath(path).with_suffix(suffix).parts)
    if old not in parts[:-1]:
        return None
    last = len(parts) - 2 - parts[-2::-1].index(old)
    return "/".join([*parts[:last], new, *parts[last + 1 :]])


def place_image(source: Path, target: Path, mode: str, where: str) -> None:
    """Put the image ``source`` at ``target`` as a copy (``mode="copy"``) or an absolute symbolic link."""
    if not source.is_file():
        raise InvalidDataError(f"image {source} does not exist; cannot {mode} it", location=where)
    target.parent.mkdir(parents=True, exist_ok=True)
    if mode == "symlink":
        target.symlink_to(os.path.abspath(source))
    else:
        shutil.copyfile(source, target)


def key_value_entries(*, text: str) -> dict[str, tuple[int, str]]:
    """The ``key = value`` entries of a text (``#`` comments), with their line numbers.

    Raises :class:`ValueError` naming the line when a line is not ``key = value``.
    """
    entries: dict[str, tuple[int, str]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        body = line.split("#", 1)[0].strip()
        if not body:
            continue
        key, sep, value = body.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"line {number}: expected 'key = value', found {body!r}")
        entries[key.strip()] = (number, value.strip())
    return entries


def files_by_image(
    files: Mapping[str, Path],
    image_root: Path,
    prefixes: Sequence[str],
    writer: DatasetWriter,
    *,
    skip: Collection[str] = (),
) -> dict[str, Path | None]:
    """Image path (relative to ``image_root``) -> its annotation file, sorted by image path.

    ``files`` are annotation files by relative path without suffix; each image is looked up below
    ``prefixes`` (:func:`~annonorm.sources.images.find_image`). A file without an image, or a second file
    for one image, goes to ``writer.problem``. The images below the first prefix folder (or the whole root
    for the prefix ``""`` alone) without a file are added with ``None``: images without objects.
    """
    entries: dict[str, Path | None] = {}
    for stem, file in sorted(files.items()):
        image = find_image(image_root, prefixes, stem)
        if image is None:
            shown = ", ".join(repr(p) for p in prefixes)
            message = f"no image for this label file: looked for {stem}.{{jpg,png,...}} under {image_root} "
            writer.problem(InvalidDataError(f"{message}(prefixes {shown}); pass --images DIR", file=file, image=stem))
        elif image in entries:
            writer.problem(
                InvalidDataError(f"image {image} already has the label file {entries[image]}", file=file, image=image)
            )
        else:
            entries[image] = file
    image_dir = next(
        (image_root / p for p in prefixes if p and (image_root / p).is_dir()),
        image_root if tuple(prefixes) == ("",) else None,
    )
    if image_dir is not None:
        for path in walk_files(image_dir, IMAGE_SUFFIXES, any_kind=False, skip=skip).values():
            entries.setdefault(path.relative_to(image_root).as_posix(), None)
    return dict(sorted(entries.items()))


def listed_images(sources: Sequence[Path], image_root: Path, writer: DatasetWriter) -> Iterator[str]:
    """The images (relative to ``image_root``) of folders (walked, sorted), image list files (in list order; a
    line naming no image goes to ``writer.problem``) and single images, in the order of ``sources``."""
    for source in sources:
        if source.is_dir():
            found = walk_files(source, IMAGE_SUFFIXES, any_kind=False)
            yield from sorted(p.relative_to(image_root).as_posix() for p in found.values())
        elif source.suffix.lower() in IMAGE_SUFFIXES:
            yield source.relative_to(image_root).as_posix()
        else:
            for number, line, image in image_list_lines(source, image_root):
                if image is None:
                    message = f"lists {line!r}, which is not an image under {image_root}"
                    writer.problem(InvalidDataError(message, file=source, location=f"line {number}", image=line))
                else:
                    yield image
