"""The parallel engine: how many processes a run uses, and the three ways it uses them.

A run is described by one :class:`Execution` value (``--workers``, the size thresholds, the GC policy),
built once by :mod:`annonorm.api` and handed to readers and the validator as an :class:`Executor`. The
engine's three operations are all any strategy needs:

* :meth:`Executor.map`: an ordered, bounded map of a stream of units over worker processes;
* :meth:`Executor.parts`: parts of a job run in processes forked from this one (they share its memory),
  their results taken in order; a part that fails is redone in this process, so its errors come as one
  process reports them;
* :meth:`Executor.byte_ranges`: a file cut into ranges on line boundaries.

Every strategy writes the same bytes as one process: the engine changes how the work is done, never
what it gives. :class:`LocalExecutor` is the process-pool implementation; another (Ray) implements the
same protocol.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any, Protocol, TypeVar

from annonorm.fsutil import open_regular

__all__ = ["Execution", "Executor", "LocalExecutor", "byte_ranges", "default_workers", "pool_context"]

T = TypeVar("T")
R = TypeVar("R")
K = TypeVar("K")


def default_workers() -> int:
    """Cores available to this process."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def pool_context(start: str | None = None) -> BaseContext:
    """``fork`` where it is safe (POSIX, one thread): it starts fast and needs no ``__main__`` guard;
    ``spawn`` otherwise, since a forked child of a threaded parent can deadlock. ``start`` forces a method."""
    if start is not None:
        return multiprocessing.get_context(start)
    method = "fork" if os.name == "posix" and threading.active_count() == 1 else "spawn"
    return multiprocessing.get_context(method)


@dataclass(frozen=True)
class Execution:
    """How a run does its work (never what it writes).

    ``workers``: processes (``--workers N``; None or 0 = one per core; 1 = this process only, nothing
    forks). ``min_parallel``: when set, the size from which every strategy goes parallel, in place of its
    own threshold (0 = always; tests use it to take each strategy). ``gc_paused``: pause Python's cyclic
    garbage collector while the run reads (see :meth:`running`). ``start``: the process start method
    (None: ``fork`` where safe, else ``spawn``).
    """

    workers: int | None = None
    min_parallel: int | None = None
    gc_paused: bool = True
    start: str | None = None

    @property
    def processes(self) -> int:
        """THE worker policy: ``workers`` when given, else one per core."""
        return self.workers if self.workers and self.workers > 0 else default_workers()

    def threshold(self, default: int) -> int:
        """The size from which a strategy goes parallel: ``min_parallel`` when set, else ``default``."""
        return default if self.min_parallel is None else self.min_parallel

    def pool_size(self, size: int, default_threshold: int, *, parent_busy: bool = False) -> int:
        """Processes for a job of ``size`` units (1: do it here). With ``parent_busy`` (this process
        has its own share of the work, e.g. encoding what the pool returns), an automatic count leaves
        it a core, and stays in this process below three cores."""
        if self.processes <= 1 or size < self.threshold(default_threshold):
            return 1
        if parent_busy and not (self.workers and self.workers > 0):
            cores = self.processes
            return 1 if cores < 3 else cores - 1
        return self.processes

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """The run's GC policy. Readers build millions of short-lived dicts and lists beside a large
        decoded source that lives for the whole run; each full collection walks all of it and, at COCO
        train2017 scale, costs more than the parsing. Decoded annotations hold no reference cycles, so
        nothing is lost: the collector runs again (and catches up) when the run ends."""
        enabled = gc.isenabled()
        if self.gc_paused:
            gc.disable()
        try:
            yield
        finally:
            if enabled:
                gc.enable()


class Executor(Protocol):
    """What a reader or the validator may ask of the engine (implemented locally and by Ray)."""

    execution: Execution

    def forks(self) -> bool:
        """Whether :meth:`parts` can run here (workers share this process's memory and hash secret)."""
        ...

    def map(
        self,
        fn: Callable[[T], R],
        units: Iterable[tuple[K, T | None]],
        *,
        processes: int,
        window: int,
        fresh: bool = False,
    ) -> Generator[tuple[K, R | None], None, None]:
        """``(tag, fn(unit))`` for each ``(tag, unit)`` in order, at most ``window`` units in flight over
        ``processes`` workers (1: here). The tag stays in this process; a ``None`` unit goes to no worker
        and gives ``None``. ``fresh``: workers that do not inherit this process (forkserver/spawn)."""
        ...

    def parts(
        self,
        build: Callable[[int], R | None],
        count: int,
        *,
        redo: Callable[[int], None],
        meanwhile: Callable[[], None] | None = None,
    ) -> Iterator[tuple[int, R]]:
        """``build(0..count-1)`` in forked processes, their results in order; ``meanwhile()`` runs here
        while they work. A part that raises (or gives ``None``) is ``redo(index)`` here, in its turn."""
        ...

    def byte_ranges(self, path: Path, parts: int) -> list[tuple[int, int]]:
        """``parts`` ranges of ``path`` covering it exactly, each starting and ending on a line boundary."""
        ...


#: The job forked parts run (set only while :meth:`LocalExecutor.parts` runs; children inherit it).
_FORKED_BUILD: Callable[[int], Any] | None = None


def _forked_part(index: int) -> Any:
    """In a forked child: the part ``index`` of the job its parent set."""
    assert _FORKED_BUILD is not None
    return _FORKED_BUILD(index)


def ordered_window(
    units: Iterable[tuple[K, T | None]],
    submit: Callable[[T], Any],
    result: Callable[[Any], R],
    cancel: Callable[[Any], Any],
    *,
    window: int,
) -> Generator[tuple[K, R | None], None, None]:
    """The ordered bounded map of every executor: ``(tag, result(submit(unit)))`` in unit order, at most
    ``window`` submitted and not yet taken; a ``None`` unit is submitted nowhere and gives ``None``.
    What is still pending when the caller stops (or an error ends it) is cancelled."""
    pending: deque[tuple[K, Any]] = deque()
    try:
        for tag, unit in units:
            pending.append((tag, submit(unit) if unit is not None else None))
            while len(pending) >= max(window, 1) or (pending and pending[0][1] is None):
                done, handle = pending.popleft()
                yield done, (result(handle) if handle is not None else None)
        while pending:
            done, handle = pending.popleft()
            yield done, (result(handle) if handle is not None else None)
    finally:
        for _, handle in pending:
            if handle is not None:
                cancel(handle)


class LocalExecutor:
    """:class:`Executor` over local process pools."""

    def __init__(self, execution: Execution | None = None) -> None:
        self.execution = execution or Execution()
        #: Fresh pools kept for the next map while the executor is open (``with executor:``), by size.
        self._pools: dict[tuple[int, bool], ProcessPoolExecutor] | None = None

    def __enter__(self) -> LocalExecutor:
        self._pools = {}
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the pools kept open for the run."""
        pools, self._pools = self._pools, None
        for pool in (pools or {}).values():
            pool.shutdown(cancel_futures=True)

    def _pool(self, processes: int, fresh: bool) -> tuple[ProcessPoolExecutor, bool]:
        """A pool of ``processes`` workers, and whether the caller owns it (must shut it down). Only
        fresh pools are kept: a kept pool's threads would make the next fork unsafe."""
        if self._pools is None or not fresh:
            return ProcessPoolExecutor(processes, mp_context=self._context(fresh)), True
        key = (processes, fresh)
        if key not in self._pools:
            self._pools[key] = ProcessPoolExecutor(processes, mp_context=self._context(fresh))
        return self._pools[key], False

    def forks(self) -> bool:
        return pool_context(self.execution.start).get_start_method() == "fork"

    def _context(self, fresh: bool) -> BaseContext:
        if fresh and self.execution.start is None:
            methods = multiprocessing.get_all_start_methods()
            return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        return pool_context(self.execution.start)

    def map(
        self,
        fn: Callable[[T], R],
        units: Iterable[tuple[K, T | None]],
        *,
        processes: int,
        window: int,
        fresh: bool = False,
    ) -> Generator[tuple[K, R | None], None, None]:
        if processes <= 1:
            for tag, unit in units:
                yield tag, (fn(unit) if unit is not None else None)
            return
        pool, owned = self._pool(processes, fresh)
        try:
            yield from ordered_window(
                units,
                lambda unit: pool.submit(fn, unit),
                lambda future: future.result(),
                lambda future: future.cancel(),
                window=window,
            )
        finally:
            if owned:
                pool.shutdown(cancel_futures=True)

    def parts(
        self,
        build: Callable[[int], R | None],
        count: int,
        *,
        redo: Callable[[int], None],
        meanwhile: Callable[[], None] | None = None,
    ) -> Iterator[tuple[int, R]]:
        global _FORKED_BUILD
        if not self.forks():
            raise RuntimeError("forked parts need the fork start method; ask forks() first")
        _FORKED_BUILD = build
        try:
            with ProcessPoolExecutor(count, mp_context=pool_context(self.execution.start)) as pool:
                futures = [pool.submit(_forked_part, index) for index in range(count)]
                if meanwhile is not None:
                    meanwhile()
                for index, future in enumerate(futures):  # each in its turn, while the later ones still run
                    try:
                        outcome = future.result()
                    except Exception:  # redone here, where its error comes as one process meets it
                        outcome = None
                    if outcome is None:
                        redo(index)
                    else:
                        yield index, outcome
        finally:
            _FORKED_BUILD = None

    def byte_ranges(self, path: Path, parts: int) -> list[tuple[int, int]]:
        return byte_ranges(path, parts)


def byte_ranges(path: Path, parts: int) -> list[tuple[int, int]]:
    """``parts`` ranges of ``path`` that start and end on line boundaries and cover it exactly."""
    size = path.stat().st_size
    cuts = [0]
    with open_regular(path, "split file") as stream:
        for part in range(1, parts):
            stream.seek(max(size * part // parts, cuts[-1]))
            stream.readline()  # to the start of the next line
            cuts.append(min(max(stream.tell(), cuts[-1]), size))
    cuts.append(size)
    return [(a, b) for a, b in itertools.pairwise(cuts) if b > a] or [(0, size)]
