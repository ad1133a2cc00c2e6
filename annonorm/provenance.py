"""Provenance: the sources a dataset was converted from, their digests, and whether they changed since.

A conversion records in the manifest's ``source.files`` every annotation file (or directory) its
reader named, each with a digest:

* a file: the SHA-256 of its bytes (:func:`file_sha256`), as annonorm 0.1 records it;
* a directory: :func:`directory_digest`, the SHA-256 of the sorted list of (relative path, size,
  SHA-256) of the regular files under it, so thousands of XML files can be one entry. The entry is
  the same ``{"path", "sha256"}`` object as a file's; it is a directory's when its path is a
  directory on disk. Every existing manifest reads and checks as before (an annonorm 0.1 that meets
  a directory entry reports it as a missing source; nothing fails).

:class:`SourceRegistry` is what a reader names its sources into (``writer.add_source_file``): a
large file is hashed in a background thread while the reader goes on (hashlib releases the
interpreter lock, so on a second core the hash of a 400 MB COCO file costs no wall time).

:func:`check_sources` compares the recorded digests with the sources as they are now (``annonorm
validate``). So that a dataset of 20,000 VOC files is not rehashed on every run, a digest is
remembered in a small stamp file in the user cache directory (one per dataset, keyed by each
source's absolute path) together with the file's device, inode, size, mtime_ns and ctime_ns. A
file is hashed again unless all five match, and a stamp is trusted only when it was taken more than
:data:`RACY_WINDOW_NS` after the file's last change (git's "racy clean" rule: a file system's clock
ticks coarsely). Size and mtime alone are never trusted: an edit that restores both still changes
the ctime, a file replaced by another the inode. Whoever can write the cache directory could plant a
false stamp; it is created private (0700).
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from annonorm.errors import ParseError
from annonorm.fsutil import file_state, make_private_directory, read_regular_bytes, user_cache_root
from annonorm.schemas.manifest import MANIFEST_FILE, Manifest

__all__ = [
    "RACY_WINDOW_NS",
    "SourceRegistry",
    "SourceStamps",
    "StaleSource",
    "check_sources",
    "directory_digest",
    "file_sha256",
    "source_digest",
]

logger = logging.getLogger(__name__)

#: Source files at least this large are hashed in a background thread while the reader works.
BACKGROUND_HASH_BYTES = 4 * 1024 * 1024
#: A stamp is trusted only when taken this long after the file's last change (coarse file systems tick in 2 s).
RACY_WINDOW_NS = 2_000_000_000
#: Where the stamps live under :func:`user_cache_root` (the number is the stamp file layout's version).
STAMP_DIR = "sources-v1"
#: What a directory digest starts with, so it never equals the SHA-256 of a file's bytes by construction.
_DIRECTORY_TAG = b"annonorm directory digest v1\n"

#: A file's digest given its path and its ``os.stat`` result (the stamp cache answers without reading).
FileDigest = Callable[[str, os.stat_result], str]


# ---------------------------------------------------------------------------------------------- digests


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _hash_file(path: str, info: os.stat_result) -> str:
    return file_sha256(path)


def _regular_files(directory: str | os.PathLike[str]) -> list[tuple[bytes, str, os.stat_result]]:
    """``(relative path, path, stat)`` of the regular files under ``directory``, sorted by relative path.

    A symlink to a file counts as the file; subdirectories are walked, symlinks to directories are not
    (no loop can form); FIFOs, devices and sockets are left out (hashing them would block or never end).
    """
    found = []
    pending: list[tuple[str, bytes]] = [(os.fspath(directory), b"")]
    while pending:
        current, prefix = pending.pop()
        with os.scandir(current) as entries:
            for entry in entries:
                relative = prefix + os.fsencode(entry.name)
                if entry.is_dir(follow_symlinks=False):
                    pending.append((entry.path, relative + b"/"))
                elif entry.is_file():
                    found.append((relative, entry.path, entry.stat()))
    found.sort(key=lambda item: item[0])
    return found


def directory_digest(directory: str | os.PathLike[str], file_digest: FileDigest | None = None) -> str:
    """The digest of a directory: SHA-256 over the sorted (relative path, size, SHA-256) of its regular files.

    ``file_digest`` gives a file's SHA-256 (default: :func:`file_sha256`; :meth:`SourceStamps.sha256`
    answers from its stamps). Each file is one ``path NUL size NUL sha256 LF`` line, the path as the
    file system's bytes with ``/`` between components (a path holds no NUL, so the list is unambiguous).
    """
    one = file_digest or _hash_file
    digest = hashlib.sha256(_DIRECTORY_TAG)
    for relative, path, info in _regular_files(directory):
        digest.update(b"%s\0%d\0%s\n" % (relative, info.st_size, one(path, info).encode("ascii")))
    return digest.hexdigest()


def source_digest(path: Path) -> str:
    """What the manifest records for a source: :func:`directory_digest` of a directory, else :func:`file_sha256`."""
    return directory_digest(path) if path.is_dir() else file_sha256(path)


# ---------------------------------------------------------------------------------------------- registry


@dataclass
class SourceRegistry:
    """The sources a reader names, in order, hashed while it works (see the module docstring)."""

    paths: list[Path] = field(default_factory=list)
    _pending: list[Future[str] | None] = field(default_factory=list)
    _thread: ThreadPoolExecutor | None = None

    def add(self, path: Path) -> None:
        """Name a source file or directory; a large file starts hashing in the background at once."""
        self.paths.append(path)
        try:
            info = path.stat()
            large = not stat.S_ISDIR(info.st_mode) and info.st_size >= BACKGROUND_HASH_BYTES
        except OSError:
            large = False
        if not large:  # thousands of small files (VOC XML) are cheaper hashed at the end, in this thread
            self._pending.append(None)
            return
        if self._thread is None:
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="annonorm-sha256")
        self._pending.append(self._thread.submit(file_sha256, path))

    def digests(self) -> list[tuple[Path, str]]:
        """``(path, digest)`` of every source named, in order (waits for the hashing)."""
        try:
            return [
                (path, source_digest(path) if future is None else future.result())
                for path, future in zip(self.paths, self._pending, strict=True)
            ]
        except OSError as exc:
            raise ParseError(f"cannot read a source file to hash it: {exc.strerror}", file=exc.filename) from None

    def finish(self) -> None:
        """Wait for the background hashes and stop their thread (before forking: fork with threads is unsafe)."""
        if self._thread is not None:
            self._thread.shutdown(wait=True)
            self._thread = None


# ---------------------------------------------------------------------------------------------- stamps


class _Stamp(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    """A file's state when its SHA-256 was taken."""

    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int
    sha256: str
    verified_ns: int


class _StampFile(msgspec.Struct, forbid_unknown_fields=True):
    version: int
    stamps: dict[str, _Stamp]


_STAMP_VERSION = 1


def _trustworthy(verified_ns: int, mtime_ns: int, ctime_ns: int) -> bool:
    return verified_ns > max(mtime_ns, ctime_ns) + RACY_WINDOW_NS


def _vouches(stamp: _Stamp, identity: tuple[int, ...]) -> bool:
    """Whether the stamp describes the file of ``identity`` as it is now, taken late enough to be sure of it."""
    same = (stamp.device, stamp.inode, stamp.size, stamp.mtime_ns, stamp.ctime_ns) == identity
    return same and _trustworthy(stamp.verified_ns, stamp.mtime_ns, stamp.ctime_ns)


def _key(path: str | os.PathLike[str]) -> str:
    return os.fsencode(os.path.abspath(path)).decode("utf-8", "backslashreplace")


class SourceStamps:
    """SHA-256 of source files, remembered with each file's state in one stamp file (see the module docstring).

    ``file`` ``None`` keeps nothing: every file is hashed. :meth:`save` writes what this run looked up
    (stamps of sources no longer named are dropped); a stamp file that cannot be read or written is
    ignored (the next run hashes again).
    """

    def __init__(self, file: Path | None) -> None:
        self.file = file
        self._known = self._load() if file is not None else {}
        self._used: dict[str, _Stamp] = {}
        self._changed = False

    @classmethod
    def for_dataset(cls, root: Path) -> SourceStamps:
        """The stamps of the dataset at ``root``, in :func:`user_cache_root`."""
        name = hashlib.sha256(os.fsencode(os.path.abspath(root / MANIFEST_FILE))).hexdigest()[:32]
        return cls(user_cache_root() / STAMP_DIR / f"{name}.json")

    def _load(self) -> dict[str, _Stamp]:
        assert self.file is not None
        if not os.path.lexists(self.file):
            return {}
        try:
            loaded = msgspec.json.decode(read_regular_bytes(self.file, "source stamp file"), type=_StampFile)
        except (ParseError, msgspec.DecodeError) as exc:
            logger.info("source stamps %s are unusable (%s); hashing the sources again", self.file, exc)
            return {}
        return loaded.stamps if loaded.version == _STAMP_VERSION else {}

    def sha256(self, path: str | os.PathLike[str], info: os.stat_result | None = None) -> str:
        """The SHA-256 of ``path`` (``info``: its ``os.stat``, if known): from its stamp when that vouches for it."""
        info = os.stat(path) if info is None else info
        key, identity = _key(path), file_state(info)
        stamp = self._known.get(key)
        if stamp is not None and _vouches(stamp, identity):
            self._used[key] = stamp
            return stamp.sha256
        started = time.time_ns()
        digest = file_sha256(path)
        if _trustworthy(started, info.st_mtime_ns, info.st_ctime_ns) and _unchanged(path, identity):
            self._used[key] = _Stamp(*identity, sha256=digest, verified_ns=started)
            self._changed = True
        return digest

    def save(self) -> None:
        """Write the stamps this run used (best effort), when they differ from the ones read."""
        if self.file is None or (not self._changed and self._used.keys() == self._known.keys()):
            return
        data = msgspec.json.encode(_StampFile(_STAMP_VERSION, self._used))
        try:
            _replace_atomically(self.file, data)
        except OSError as exc:
            logger.info("cannot write the source stamps %s (%s)", self.file, exc)


def _unchanged(path: str | os.PathLike[str], identity: tuple[int, ...]) -> bool:
    """Whether ``path`` is still the file of ``identity`` (it did not change while it was hashed)."""
    try:
        return file_state(os.stat(path)) == identity
    except OSError:
        return False


def _replace_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` beside ``path`` and rename it over ``path`` (a concurrent reader sees old or new)."""
    make_private_directory(path.parent)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------------------------- staleness


@dataclass(frozen=True)
class StaleSource:
    """A source whose digest no longer matches the one the manifest recorded (or that is gone)."""

    index: int
    path: str
    recorded: str
    current: str | None
    resolved: Path | None
    #: The source is a directory (its digest is :func:`directory_digest`).
    directory: bool = False

    @property
    def status(self) -> str:
        """``changed`` or ``missing``."""
        return "missing" if self.current is None else "changed"

    @property
    def message(self) -> str:
        """One line for a validation report."""
        if self.current is None:
            return f"source file {self.path} is not found; cannot tell whether the dataset is up to date"
        what, digest = ("source directory", "digest") if self.directory else ("source file", "sha256")
        return (
            f"{what} {self.path} changed since the conversion ({digest} {self.current[:12]}, "
            f"recorded {self.recorded[:12]}); re-run annonorm convert (or dvc repro)"
        )


#: The errors ``Path.is_file`` answers ``False`` for (any other one is raised, as it is there).
_NOT_THERE = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP})


def _candidates(recorded: str, root: Path) -> Iterator[str]:
    # Relative to the dataset (portable), else to the working directory (what convert records today).
    if os.path.isabs(recorded):
        yield recorded
        return
    yield os.path.join(root, recorded)
    yield os.path.join(os.getcwd(), recorded)


def _resolve_source(recorded: str, root: Path) -> tuple[str, os.stat_result] | None:
    """The source a recorded path names: the first candidate that is a file, else the first that is a directory.

    Plain strings, no ``Path``: this runs once per recorded file, 20,000 times for a VOC dataset.
    """
    directory = None
    for path in _candidates(recorded, root):
        try:
            info = os.stat(path)
        except OSError as exc:
            if exc.errno not in _NOT_THERE:
                raise
            continue
        except ValueError:  # a NUL in the path
            continue
        if stat.S_ISREG(info.st_mode):
            return path, info
        if directory is None and stat.S_ISDIR(info.st_mode):
            directory = path, info
    return directory


def check_sources(manifest: Manifest, root: Path, *, stamps: bool = True) -> list[StaleSource]:
    """The manifest's ``source.files`` whose current digest differs from the recorded one, or that are missing.

    ``root`` is the dataset directory. Relative recorded paths are looked up against it, then the
    working directory. With ``stamps`` unchanged files are not read again (see the module docstring).
    An empty list means every recorded source is unchanged (or none was recorded).
    """
    if manifest.source is None:
        return []
    cache = SourceStamps.for_dataset(root) if stamps else SourceStamps(None)
    found = []
    for index, entry in enumerate(manifest.source.files):
        resolved = _resolve_source(entry.path, root)
        path, directory, current = None, False, None
        if resolved is not None:
            path, info = resolved
            directory = stat.S_ISDIR(info.st_mode)
            current = directory_digest(path, cache.sha256) if directory else cache.sha256(path, info)
        if current != entry.sha256:
            where = Path(path) if path is not None else None
            found.append(StaleSource(index, entry.path, entry.sha256, current, where, directory))
    cache.save()
    return found
