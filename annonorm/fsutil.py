"""File-system rules every reader and writer shares: what may be opened, how outputs are written, and why not.

Inputs. An input is opened only when it is a regular file (after following symlinks): a FIFO would
block forever, ``/dev/zero`` or ``/dev/urandom`` never end, a socket or a directory cannot be read
as a file. Such inputs are refused before any byte is read, with the path named (exit 2).

Outputs (:func:`atomic_output`). Every output directory is written into a temporary directory beside
it and moved into place at the end, so a failed, killed or interrupted run leaves no output or the
previous one, byte for byte:

- the output never overlaps an input: equal to, inside or containing one (symlinks resolved) is
  refused before anything is written, with or without ``force``;
- ``force`` replaces only a previous annonorm output: a directory holding an ``annonorm.json`` or the
  :data:`EXPORT_MARKER` every export writes; anything else is left to the user;
- a lock beside the output (``.OUT.annonorm-lock``, ``flock``) makes a second run to the same output
  fail at once instead of racing the first;
- the previous output is replaced by an atomic exchange (Linux ``renameat2(RENAME_EXCHANGE)``) where
  the platform has one, else by two renames; a later run that finds the moved-aside previous output of
  a dead run and no output puts it back;
- failures on the output side (a parent that is a file, a read-only location, a full disk, a name the
  file system refuses) are one :class:`OutputError` naming the output.

Interrupts. The command line installs :func:`install_interrupt_handlers`: SIGINT, SIGTERM and SIGHUP
stop every worker process this one started and raise :class:`Interrupted` (exit 128 + the signal),
which unwinds through :func:`atomic_output` like any error; the moves into place and the removal of a
temporary directory finish before an interrupt is let through.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import os
import re
import shutil
import signal
import stat
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import FrameType
from typing import IO, Any

from annonorm.errors import OutputExistsError, ParseError, UsageError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, runs are not serialized
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "EXPORT_MARKER",
    "Interrupted",
    "OutputError",
    "atomic_file",
    "atomic_output",
    "check_output_free",
    "check_overlap",
    "deferred_interrupts",
    "file_state",
    "install_interrupt_handlers",
    "is_annonorm_output",
    "make_private_directory",
    "open_regular",
    "process_alive",
    "read_regular_bytes",
    "require_regular_file",
    "stop_workers",
    "user_cache_root",
]

#: Written into every export's output directory, so ``--force`` can tell it is an annonorm output.
#: A hidden file without extension: the exported formats' readers (file lists by suffix, Parquet
#: datasets skipping dot files) do not see it.
EXPORT_MARKER = ".annonorm-export"
MANIFEST_NAME = "annonorm.json"  # the manifest's file name (schemas.manifest.MANIFEST_FILE), kept here: layer 1
#: Room kept in a file name for the suffixes of the temporary, moved-aside and lock names.
_SUFFIX_ROOM = 40
_DEFAULT_NAME_MAX = 255


class OutputError(UsageError):
    """The output cannot be written where it was asked for (exit 2)."""


# ---------------------------------------------------------------------------------------------- inputs


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


# ---------------------------------------------------------------------------------------------- interrupts

#: The signals that stop a command cleanly (where the platform has them).
INTERRUPT_SIGNALS: tuple[int, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class Interrupted(KeyboardInterrupt):
    """A run stopped by a signal; a :class:`KeyboardInterrupt`, so ``except Exception`` does not swallow it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """What a shell reports for a process killed by this signal: 128 + its number."""
        return 128 + self.signum


class _InterruptState:
    """Who installed the handlers, and an interrupt held back while a critical step finishes."""

    owner: int | None = None
    depth = 0
    pending: int | None = None


_interrupts = _InterruptState()
#: Descriptors of the output locks this process holds (closed in a forked child: see :func:`_in_forked_child`).
_held_locks: set[int] = set()
_fork_hook: list[bool] = []
_libc_handle: list[Any] = []
_PR_SET_PDEATHSIG = 1


def _libc() -> Any:
    """The C library (Linux), loaded once; ``None`` elsewhere."""
    if not _libc_handle:
        handle = None
        if sys.platform.startswith("linux"):
            try:
                handle = ctypes.CDLL(None, use_errno=True)
            except OSError:
                handle = None
        _libc_handle.append(handle)
    return _libc_handle[0]


def _watch_forks() -> None:
    """Register :func:`_in_forked_child` once (POSIX); load the C library before any fork needs it."""
    _libc()
    if not _fork_hook and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_in_forked_child)
        _fork_hook.append(True)


def _in_forked_child() -> None:
    """In every forked child: let go of the output locks; and when forked by the command line, die with it.

    A forked worker shares its parent's lock (``flock`` belongs to the open file, which the child
    inherits): were the parent killed, an orphan would keep the lock and refuse every later run. Its
    copy is closed; the parent's lock holds. Under the command line (interrupt handlers installed)
    the child also asks Linux for SIGKILL when its parent dies (``PR_SET_PDEATHSIG``), so even a
    SIGKILL of annonorm leaves no worker running. Pools fork only from a single-threaded parent
    (``engine.pool_context``), so the forking thread is the one that lives as long as the process.
    """
    for descriptor in list(_held_locks):
        with contextlib.suppress(OSError):
            os.close(descriptor)
    _held_locks.clear()
    parent = _interrupts.owner
    if parent is None or os.getppid() != parent or not sys.platform.startswith("linux"):
        return
    libc = _libc()
    if libc is None or not hasattr(libc, "prctl"):
        return
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the request was in place
        os._exit(128 + signal.SIGKILL)


def install_interrupt_handlers() -> Callable[[], None]:
    """Handle SIGINT, SIGTERM and SIGHUP as :class:`Interrupted`; return a function restoring the previous handlers.

    A signal the caller ignores (``nohup``, a background job's SIGINT) stays ignored. Only the main
    thread can install handlers; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous: dict[int, Any] = {}
    for signum in INTERRUPT_SIGNALS:
        handler = signal.getsignal(signum)
        if handler is signal.SIG_IGN:
            continue
        previous[signum] = handler
        signal.signal(signum, _on_signal)
    _interrupts.owner = os.getpid()
    _watch_forks()

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        _interrupts.owner = None
        _interrupts.pending = None

    return restore


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if os.getpid() != _interrupts.owner:
        # A forked worker inherited the handler: it holds nothing to clean up (its parent removes the
        # temporary directory), and a worker that raised would report the exception and keep working.
        os._exit(128 + signum)
    if _interrupts.depth:
        _interrupts.pending = signum
        return
    stop_workers()
    raise Interrupted(signum)


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold an interrupt back until the block ends (a move into place, a clean-up), then raise it."""
    _interrupts.depth += 1
    try:
        yield
    except BaseException as error:
        _interrupts.depth -= 1
        if _interrupts.depth == 0 and _interrupts.pending is not None:
            signum, _interrupts.pending = _interrupts.pending, None
            if not isinstance(error, Interrupted):
                stop_workers()
                raise Interrupted(signum) from error
        raise
    _interrupts.depth -= 1
    if _interrupts.depth == 0 and _interrupts.pending is not None:
        signum, _interrupts.pending = _interrupts.pending, None
        stop_workers()
        raise Interrupted(signum)


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """``(state, parent pid)`` of a process from ``/proc``, ``None`` when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stream:
            data = stream.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2 :].split()
    return fields[0].decode(), int(fields[1])


def _descendants(root: int) -> list[int]:
    """Every living process below ``root`` (children first found, then theirs), from ``/proc``."""
    if not os.path.isdir("/proc/self"):
        import multiprocessing

        return [child.pid for child in multiprocessing.active_children() if child.pid is not None]
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        info = _proc_stat(int(entry.name))
        if info is not None and info[0] != "Z":
            children.setdefault(info[1], []).append(int(entry.name))
    found: list[int] = []
    queue = [root]
    while queue:
        for child in children.get(queue.pop(), ()):
            found.append(child)
            queue.append(child)
    return found


def _is_resource_tracker(pid: int) -> bool:
    # multiprocessing's resource tracker ignores SIGINT/SIGTERM and exits by itself once this process
    # is gone; killing it only makes it complain about leaked semaphores.
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as stream:
            return b"resource_tracker" in stream.read()
    except OSError:
        return False


def _running(pid: int) -> bool:
    info = _proc_stat(pid)
    if info is not None:
        return info[0] != "Z"
    if os.path.isdir("/proc/self"):
        return False
    return process_alive(pid)


def stop_workers(grace: float = 0.5) -> None:
    """Stop every process this one started, and theirs: SIGTERM, then SIGKILL after ``grace`` seconds.

    Called on an interrupt before it unwinds, so a process pool's shutdown does not wait for its
    workers to finish their tasks, and no orphan keeps running (or keeps the caller's pipes open).
    Children are not reaped here: their pool still joins them.
    """
    pids = [pid for pid in _descendants(os.getpid()) if not _is_resource_tracker(pid)]
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.01)
        alive = [pid for pid in alive if _running(pid)]
    for pid in alive:
        with contextlib.suppress(OSError):
            os.kill(pid, getattr(signal, "SIGKILL", signal.SIGTERM))


# ---------------------------------------------------------------------------------------------- output checks


def _identity(path: str) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _lineage(path: str) -> Iterator[str]:
    """``path`` and each of its parents, up to the root."""
    while True:
        yield path
        parent = os.path.dirname(path)
        if parent == path:
            return
        path = parent


def _within(inner: str, outer: str) -> bool:
    """Whether resolved ``inner`` is ``outer`` or below it (by name, and by identity for bind mounts)."""
    if inner == outer or inner.startswith(outer.rstrip(os.sep) + os.sep):
        return True
    wanted = _identity(outer)
    return wanted is not None and any(_identity(p) == wanted for p in _lineage(inner))


def _flatten(inputs: Iterable[Any]) -> Iterator[str | os.PathLike[str]]:
    for item in inputs:
        if item is None:
            continue
        if isinstance(item, (str, os.PathLike)):
            yield item
        elif isinstance(item, Iterable):
            yield from _flatten(item)


def check_overlap(target: str | os.PathLike[str], inputs: Iterable[Any]) -> None:
    """Refuse an output equal to, inside or containing an existing input (symlinks resolved) (exit 2).

    ``inputs`` holds paths (``None`` and nested tuples are allowed, so a caller can pass optional
    inputs as they come); an input that does not exist cannot be overwritten and is skipped.
    """
    resolved_target = os.path.realpath(target)
    for item in _flatten(inputs):
        if not os.path.lexists(item):
            continue
        resolved = os.path.realpath(item)
        if _within(resolved_target, resolved) or _within(resolved, resolved_target):
            raise UsageError(f"output {os.fspath(target)} overlaps input {os.fspath(item)}; choose another -o")


def is_annonorm_output(path: Path) -> bool:
    """Whether ``path`` is a directory annonorm wrote: it holds an ``annonorm.json`` or the export marker."""
    try:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            return False
    except OSError:
        return False
    for name in (MANIFEST_NAME, EXPORT_MARKER):
        try:
            if stat.S_ISREG(os.lstat(path / name).st_mode):
                return True
        except OSError:
            continue
    return False


def check_output_free(target: Path, force: bool) -> None:
    """Refuse early when ``target`` exists and ``force`` is not given, or is no annonorm output to replace."""
    target = Path(target)
    if not (target.exists() or target.is_symlink()):
        return
    if not force:
        raise OutputExistsError("output already exists; pass --force to replace it", file=target)
    if is_annonorm_output(target):
        return
    if target.is_symlink():
        detail = " (it is a symbolic link)"
    elif not target.is_dir():
        detail = " (it is not a directory)"
    else:
        detail = ""
    raise OutputError(f"{target} exists and is not an annonorm output{detail}; remove it yourself")


def _name_max(directory: Path) -> int:
    try:
        return int(os.pathconf(directory, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return _DEFAULT_NAME_MAX


def _stem(target: Path) -> str:
    """The prefix of the names annonorm keeps beside ``target`` (``.OUT``, shortened if OUT's name is long)."""
    raw = os.fsencode(target.name)
    if len(raw) + 1 + _SUFFIX_ROOM <= _DEFAULT_NAME_MAX:
        return "." + target.name
    digest = hashlib.sha256(raw).hexdigest()[:16]
    short = raw[: _DEFAULT_NAME_MAX - 2 * _SUFFIX_ROOM - len(digest)].decode(errors="ignore")
    return f".{short}~{digest}"


def _leftover_pattern(target: Path) -> re.Pattern[str]:
    return re.compile(re.escape(_stem(target)) + r"\.annonorm-(?P<pid>\d+)-(?P<kind>old|del|)[0-9a-f]+(\.\w+)?")


def _aside_name(target: Path, kind: str = "", suffix: str = "") -> Path:
    """A name beside ``target`` for a temporary (``kind=""``), moved-aside (``old``) or doomed (``del``) tree."""
    return target.parent / f"{_stem(target)}.annonorm-{os.getpid()}-{kind}{uuid.uuid4().hex[:8]}{suffix}"


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (this process counts as alive); leftovers of dead ones may be removed."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def _remove_stale_temporaries(target: Path) -> None:
    """Clean up after earlier runs that died beside ``target`` (killed, power lost).

    Temporary directories of dead runs are deleted. A previous output that a dead run had moved aside
    (between the two renames of a replacement without atomic exchange) is put back when ``target``
    is missing; when ``target`` exists, the replacement had completed and the moved-aside copy goes.
    """
    pattern = _leftover_pattern(target)
    asides: list[Path] = []
    garbage: list[Path] = []
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None or process_alive(int(match["pid"])):
            continue
        (asides if match["kind"] == "old" else garbage).append(Path(entry.path))
    if asides and not (target.exists() or target.is_symlink()):
        asides.sort(key=lambda p: p.lstat().st_mtime_ns, reverse=True)
        os.rename(asides.pop(0), target)
    for path in [*asides, *garbage]:
        _remove(path)


# ---------------------------------------------------------------------------------------------- renames

_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2
_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP}
_renameat2_function: list[Any] = []  # [] not looked up yet, [None] unavailable, [function]


def _renameat2(source: Path, target: Path, flags: int) -> bool:
    """``renameat2(2)`` with ``flags``: ``True`` when done, ``False`` when the platform or file system lacks it."""
    if not _renameat2_function:
        function = getattr(_libc(), "renameat2", None)  # glibc 2.28, musl 1.2.2
        if function is not None:
            function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
            function.restype = ctypes.c_int
        _renameat2_function.append(function)
    function = _renameat2_function[0]
    if function is None:
        return False
    if function(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target), flags) == 0:
        return True
    code = ctypes.get_errno()
    if code in _UNSUPPORTED:
        return False
    raise OSError(code, os.strerror(code), str(source), None, str(target))


def _move_into_place(temporary: Path, target: Path) -> None:
    """Put the finished ``temporary`` at ``target``, replacing a previous output (see the module doc)."""
    if not (target.exists() or target.is_symlink()):
        if not _renameat2(temporary, target, _RENAME_NOREPLACE):
            os.rename(temporary, target)
        return
    if _renameat2(temporary, target, _RENAME_EXCHANGE):
        shutil.rmtree(temporary, ignore_errors=True)  # now the previous output
        return
    aside = _aside_name(target, "old")
    os.rename(target, aside)
    try:
        os.rename(temporary, target)
    except BaseException:
        os.rename(aside, target)
        raise
    doomed = _aside_name(target, "del")  # never deleted under the "old" name: that one is put back
    try:
        os.rename(aside, doomed)
    except OSError:
        doomed = aside
    shutil.rmtree(doomed, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- the lock


class _OutputLock:
    """An exclusive ``flock`` on ``.OUT.annonorm-lock`` beside the output, removed when released."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.path = target.parent / f"{_stem(target)}.annonorm-lock"
        self.descriptor: int | None = None
        self.pid = os.getpid()

    def acquire(self) -> None:
        if fcntl is None:
            return
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
        for _ in range(20):
            try:
                descriptor = os.open(self.path, flags, 0o644)
            except OSError as exc:
                raise OutputError(f"cannot write the output: {exc.strerror}", file=self.target) from None
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(descriptor)
                raise OutputError(f"another annonorm run is writing {self.target}") from None
            except OSError:  # a file system without locks: go on unlocked rather than refuse
                self._hold(descriptor)
                return
            try:
                same = os.path.samestat(os.fstat(descriptor), os.lstat(self.path))
            except OSError:
                same = False
            if same:
                self._hold(descriptor)
                return
            os.close(descriptor)  # the run that held it removed the file meanwhile: lock the new one
        raise OutputError("cannot lock the output: its lock file keeps changing", file=self.target)

    def _hold(self, descriptor: int) -> None:
        self.descriptor = descriptor
        _held_locks.add(descriptor)
        _watch_forks()

    def release(self) -> None:
        if self.descriptor is None or os.getpid() != self.pid:  # a forked child never releases its parent's lock
            return
        _held_locks.discard(self.descriptor)
        # Removed while still held: a run that opened the old file before sees it gone and retries.
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        os.close(self.descriptor)
        self.descriptor = None


# ---------------------------------------------------------------------------------------------- atomic output

#: errno values of a failed write that concern the output even when the error names no file.
_OUTPUT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO}


def _make_parents(target: Path) -> list[Path]:
    """Create the missing parents of ``target``; return them (outermost first), to remove on failure."""
    missing: list[Path] = []
    parent = target.parent
    while not parent.exists() and not parent.is_symlink() and parent != parent.parent:
        missing.append(parent)
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"cannot create the output: {parent} is not a directory", file=target)
    created: list[Path] = []
    for directory in reversed(missing):
        try:
            directory.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            _remove_parents(created)
            raise OutputError(f"cannot create the output's folder {directory}: {exc.strerror}", file=target) from None
        created.append(directory)
    return created


def _remove_parents(created: list[Path]) -> None:
    for directory in reversed(created):
        with contextlib.suppress(OSError):
            directory.rmdir()


def _check_name(target: Path) -> None:
    """A name the file system cannot hold is refused before any work, not at the final rename."""
    existing = next((p for p in target.parents if os.path.isdir(p)), Path(target.anchor or "/"))
    limit = _name_max(existing)
    for part in target.relative_to(existing).parts:
        length = len(os.fsencode(part))
        if length > limit:
            raise OutputError(
                f"a file name in the output's path is too long ({length} bytes; this file system allows {limit})",
                file=target,
            )


def _reworded(error: OSError, temporary: Path, target: Path) -> OutputError | None:
    """A write failure inside the temporary directory, said of the output; ``None`` if it is not one."""
    for name in (error.filename, error.filename2):
        if not isinstance(name, (str, bytes, os.PathLike)):
            continue
        path = os.path.abspath(os.fsdecode(name))
        if _within(path, str(temporary)):
            relative = os.path.relpath(path, temporary)
            where = "the output" if relative == "." else f"{relative} in the output"
            return OutputError(f"cannot write {where}: {error.strerror}", file=target)
    if error.filename is None and error.errno in _OUTPUT_ERRNOS:
        return OutputError(f"cannot write the output: {error.strerror}", file=target)
    return None


@contextlib.contextmanager
def atomic_output(
    target: str | os.PathLike[str],
    *,
    force: bool = False,
    inputs: Iterable[Any] = (),
    export: str | None = None,
) -> Iterator[Path]:
    """Yield a fresh temporary directory beside ``target``; when the block succeeds, move it to ``target``.

    Before anything is written, ``target`` is checked against ``inputs`` (:func:`check_overlap`) and,
    when it exists, against ``force`` (:func:`check_output_free`), and the lock beside it is taken.
    On any exception (an interrupt included) the temporary directory is removed and ``target`` is
    left as it was. ``export`` names the format of an export: the :data:`EXPORT_MARKER` is written
    into the output so that a later ``force`` recognizes it.
    """
    target = Path(os.path.abspath(target))
    check_overlap(target, inputs)
    _check_name(target)
    check_output_free(target, force)
    created = _make_parents(target)
    lock = _OutputLock(target)
    try:
        lock.acquire()
        _remove_stale_temporaries(target)
        check_output_free(target, force)
        temporary = _aside_name(target)
        try:
            temporary.mkdir()
        except OSError as exc:
            raise OutputError(f"cannot write the output: {exc.strerror}", file=target) from None
        try:
            try:
                yield temporary
                if export is not None:
                    (temporary / EXPORT_MARKER).write_text(f"annonorm export {export}\n", encoding="utf-8")
            except OSError as exc:
                reworded = _reworded(exc, temporary, target)
                if reworded is None:
                    raise
                raise reworded from None
            check_output_free(target, force)
            with deferred_interrupts():
                try:
                    _move_into_place(temporary, target)
                except OSError as exc:
                    raise OutputError(f"cannot move the output into place: {exc.strerror}", file=target) from None
        except BaseException:
            with deferred_interrupts():
                shutil.rmtree(temporary, ignore_errors=True)
            raise
    except BaseException:
        lock.release()  # first: the lock file is in the parents to remove
        _remove_parents(created)
        raise
    finally:
        lock.release()


@contextlib.contextmanager
def atomic_file(target: str | os.PathLike[str], *, inputs: Iterable[Any] = ()) -> Iterator[Path]:
    """Yield a temporary file path beside ``target``; when the block succeeds, replace ``target`` with it.

    For one-file outputs (a preview PNG, a plot): ``target`` overlapping an input is refused (see
    :func:`check_overlap`), as is a ``target`` that is a directory; an existing file is replaced in
    one ``rename`` (readers see the old file or the new one). On failure nothing is left, and write
    failures are one :class:`OutputError` naming ``target``.
    """
    target = Path(os.path.abspath(target))
    check_overlap(target, inputs)
    _check_name(target)
    if os.path.isdir(target):
        raise OutputError("is a directory; name the file to write", file=target)
    created = _make_parents(target)
    _remove_stale_temporaries(target)
    suffix = target.suffix if re.fullmatch(r"\.\w{1,16}", target.suffix) else ""
    temporary = _aside_name(target, suffix=suffix)  # the same suffix: writers that pick a format by it
    try:
        try:
            yield temporary
            with deferred_interrupts():
                os.replace(temporary, target)
        except OSError as exc:
            reworded = _reworded(exc, temporary, target)
            if reworded is None and exc.filename is not None and _within(os.fsdecode(exc.filename), str(target)):
                reworded = OutputError(f"cannot write the output: {exc.strerror}", file=target)
            if reworded is None:
                raise
            raise reworded from None
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        _remove_parents(created)
        raise


def user_cache_root() -> Path:
    """The user's cache directory for annonorm: ``$ANNONORM_CACHE_DIR``, else the platform's.

    The platform's comes from platformdirs (a small, well-kept package that knows each system's rule):
    ``$XDG_CACHE_HOME/annonorm`` or ``~/.cache/annonorm`` on Linux, ``~/Library/Caches/annonorm`` on
    macOS, ``%LOCALAPPDATA%\\annonorm\\Cache`` on Windows.
    """
    configured = os.environ.get("ANNONORM_CACHE_DIR")
    if configured:
        return Path(configured)
    from platformdirs import user_cache_path

    return user_cache_path("annonorm", appauthor=False)


def file_state(info: os.stat_result) -> tuple[int, int, int, int, int]:
    """What tells one state of a file from another: device, inode, size, mtime_ns and ctime_ns.

    Size and mtime alone are never enough (an edit can keep both); the ctime changes with any edit
    and the inode with a replaced file. Stamps that spare a hash (the loader's index, the sources'
    staleness) compare all five.
    """
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def make_private_directory(directory: Path) -> None:
    """Create ``directory`` and its missing parents, each readable by its owner only (0700)."""
    missing = []
    while not os.path.lexists(directory):
        missing.append(directory)
        directory = directory.parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):  # a concurrent run made it
            path.mkdir(mode=0o700)
