"""File-system rules every reader and writer shares: what may be opened, and one wording of why not.

An input is opened only when it is a regular file (after following symlinks): a FIFO would block
forever, ``/dev/zero`` or ``/dev/urandom`` never end, a socket or a directory cannot be read as a
file. Such inputs are refused before any byte is read, with the path named (exit 2).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import IO

from annonorm.errors import ParseError

__all__ = ["open_regular", "read_regular_bytes", "require_regular_file"]


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def require_regular_file(path: Path, what: str = "file") -> Path:
    """Return ``path`` when it is (or links to) a regular file; else a :class:`ParseError` naming it."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise ParseError(f"{what} does not exist", file=path) from None
    except OSError as exc:
        raise ParseError(f"cannot read the {what}: {exc.strerror}", file=path) from None
    if not stat.S_ISREG(mode):
        kind = _kind(mode)
        detail = "" if kind == "not a regular file" else f" ({kind})"
        raise ParseError(f"the {what} is not a regular file{detail}", file=path)
    return path


def open_regular(path: Path, what: str = "file") -> IO[bytes]:
    """Open a regular file for binary reading, refusing anything else before reading (see the module doc).

    The check is repeated on the opened descriptor, so a path swapped for a FIFO between the check
    and the open is still refused (``O_NONBLOCK`` keeps the open itself from blocking on a FIFO).
    """
    require_regular_file(path, what)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        descriptor = os.open(path, flags)
    except OSError as exc:
        raise ParseError(f"cannot read the {what}: {exc.strerror}", file=path) from None
    try:
        mode = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(mode):
            raise ParseError(f"the {what} is not a regular file ({_kind(mode)})", file=path)
        if hasattr(os, "set_blocking"):
            os.set_blocking(descriptor, True)
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def read_regular_bytes(path: Path, what: str = "file") -> bytes:
    """The whole content of a regular file (see :func:`open_regular`)."""
    with open_regular(path, what) as stream:
        try:
            return stream.read()
        except OSError as exc:
            raise ParseError(f"cannot read the {what}: {exc.strerror}", file=path) from None
