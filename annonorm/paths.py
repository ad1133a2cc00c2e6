"""Path containment: whether a record's relative path stays below its root, lexically and once resolved.

A rule of the format (layer 0): a record names its image and mask by a path relative to a root
(``image_root``, the dataset directory); a path that leaves the root (absolute, a ``..``, a symlink
pointing out) is refused by whoever reads it. :func:`check_relative_path` is the format's rule on
the string (the models, the fast check and the converters apply it); :func:`contained` refuses a
path that resolves outside its root; the other functions decide and the caller words the error.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from annonorm.errors import UnsafePathError

__all__ = ["check_relative_path", "contained", "is_inside", "lexically_inside", "resolve_below"]


def check_relative_path(value: str) -> str:
    """Refuse a path that is absolute, empty, or climbs out of its root with ``..``.

    Paths are written with forward slashes; a Windows drive (``C:``), a UNC or backslash-rooted
    path is refused too. Plain string tests: this runs once per record in bulk validation.
    """
    if not value or value.strip() != value:
        raise ValueError("path must be a non-empty string without surrounding spaces")
    if "\x00" in value:
        raise ValueError("path must not contain a NUL character")
    if value[0] in "/\\" or (len(value) > 1 and value[1] == ":" and value[0].isalpha()):
        raise ValueError(f"path {value!r} must be relative, not absolute")
    if ".." in value and ".." in value.replace("\\", "/").split("/"):
        raise ValueError(f"path {value!r} must not climb out of its directory with '..'")
    return value


def contained(root: Path, relative: str, what: str) -> Path:
    """``root / relative``; :class:`UnsafePathError` when it resolves (symlinks too) outside ``root`` (resolved).

    Records are checked to hold relative paths without ``..``, but a symlink can still point away:
    an exporter that copies or reads the file must not carry a file from elsewhere into its output.
    ``what`` names the root in the message (``"the image root"``).
    """
    path = root / relative
    if not path.resolve().is_relative_to(root):
        raise UnsafePathError(f"{relative!r} resolves outside {what} ({root}); refusing to read it", file=path)
    return path


def lexically_inside(relative: str) -> bool:
    """Whether a record path stays under its root before any symlink is followed (cheap, no system call)."""
    if relative.startswith(("/", "\\")) or relative[1:2] == ":":
        return False
    return ".." not in relative or ".." not in relative.replace("\\", "/").split("/")


def is_inside(path: str, root: str) -> bool:
    """Whether a resolved path is ``root`` or below it (both resolved)."""
    return path == root or path.startswith(root if root.endswith(os.sep) else root + os.sep)


def resolve_below(real_root: str, relative: str) -> str:
    """``realpath(real_root / relative)`` for a lexically inside ``relative``: one ``lstat`` per component.

    A component that does not exist ends the walk (the rest has no ``..`` and no symlink to follow);
    a symlink is resolved by ``os.path.realpath`` from there. A symlink loop, a component that
    cannot be searched and the like raise ``OSError``.
    """
    current = real_root if real_root.endswith(os.sep) else real_root + os.sep
    parts = relative.split("/")
    last = len(parts) - 1
    for position, part in enumerate(parts):
        if part in ("", "."):
            continue
        candidate = current + part
        try:
            mode = os.lstat(candidate).st_mode
        except (FileNotFoundError, NotADirectoryError):
            return os.path.join(candidate, *parts[position + 1 :])
        if stat.S_ISLNK(mode):
            target = os.path.join(candidate, *parts[position + 1 :])
            try:
                return os.path.realpath(target, strict=True)
            except (FileNotFoundError, NotADirectoryError):
                return os.path.realpath(target)  # a dangling link: where it points is what matters
        current = candidate if position == last else candidate + os.sep
    return current.rstrip(os.sep) or os.sep
