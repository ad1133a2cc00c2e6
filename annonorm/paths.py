"""Path containment: whether a record's relative path stays below its root, lexically and once resolved.

A rule of the format (layer 0): a record names its image and mask by a path relative to a root
(``image_root``, the dataset directory); a path that leaves the root (absolute, a ``..``, a symlink
pointing out) is refused by whoever reads it. These functions decide; the caller words the error.
"""

from __future__ import annotations

import os
import stat

__all__ = ["is_inside", "lexically_inside", "resolve_below"]


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
