"""Process pools: how many workers, and how to start them safely."""

from __future__ import annotations

import multiprocessing
import os
import threading
from multiprocessing.context import BaseContext

__all__ = ["default_workers", "pool_context"]


def default_workers() -> int:
    """Cores available to this process."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def pool_context() -> BaseContext:
    """``fork`` where it is safe (POSIX, one thread): it starts fast and needs no ``__main__`` guard;
    ``spawn`` otherwise, since a forked child of a threaded parent can deadlock."""
    method = "fork" if os.name == "posix" and threading.active_count() == 1 else "spawn"
    return multiprocessing.get_context(method)
