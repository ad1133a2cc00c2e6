"""Per-file readers on the engine: one outcome per item, in item order, a bad item's error in its place.

A reader whose source is many small files (one XML or JSON per image) turns each item into a record in a
worker and reports a bad one without stopping the others: :func:`map_each` runs ``fn`` over the items on the
engine's ordered map, in chunks when it uses processes (one unit per item otherwise, so a ``fail`` run
stops at the first bad item without reading ahead), and hands back, per item, ``fn``'s result or the
:class:`~annonorm.errors.AnnonormError` it raised (errors pickle with their file, place and image).
A worker hands a record back as :func:`encoded_record` makes it, so that the parent, which writes every
record in turn, has only the record's frame to encode.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any, TypeVar

import msgspec

from annonorm.engine import Executor
from annonorm.errors import AnnonormError
from annonorm.records import canonical_box

__all__ = ["CHUNK_SIZE", "encoded_record", "map_each"]

T = TypeVar("T")
R = TypeVar("R")

#: Items per unit of work when processes run them (a unit's pickling cost spread over this many).
CHUNK_SIZE = 128
_BOX_ENCODER = msgspec.json.Encoder()


def encoded_record(record: dict[str, Any]) -> dict[str, Any]:
    """A record from :func:`~annonorm.records.make_record` as :func:`annonorm.sink.encode_record` writes it,
    each box already JSON text (:class:`msgspec.Raw`): the worker does the rounding and encoding, the parent
    adds it with ``canonical=True`` (only the record's frame is encoded there) and a box pickles as one bytes
    object. ``labels`` still names the classes of the boxes."""
    out = {key: value for key, value in record.items() if value is not None}
    out["boxes"] = [msgspec.Raw(_BOX_ENCODER.encode(canonical_box(box))) for box in record["boxes"]]
    return out


def _outcome(fn: Callable[[T], R], item: T) -> R | AnnonormError:
    try:
        return fn(item)
    except AnnonormError as error:
        return error


def _run_chunk(items: Sequence[T], fn: Callable[[T], R]) -> list[R | AnnonormError]:
    return [_outcome(fn, item) for item in items]


def map_each(
    fn: Callable[[T], R],
    items: Sequence[T],
    executor: Executor,
    *,
    workers: int,
    chunk_size: int = CHUNK_SIZE,
    fresh: bool | None = None,
) -> Iterator[R | AnnonormError]:
    """``fn(item)`` (or the :class:`AnnonormError` it raised) for each of ``items``, in order, over ``workers``
    processes of ``executor`` (1: here, one by one). ``fn`` must pickle (a module-level function or a
    :func:`functools.partial` of one) when ``workers > 1``; ``fresh`` as in :meth:`Executor.map`, and by
    default only while this process runs other threads (a progress bar's, a hashing thread)."""
    if fresh is None:
        # Forked workers start at once; fresh ones (forkserver) import annonorm first, about a second of
        # CPU each, but forking a process that runs threads is unsafe.
        fresh = threading.active_count() > 1
    size = chunk_size if workers > 1 else 1
    chunks = ((None, items[start : start + size]) for start in range(0, len(items), size))
    run = partial(_run_chunk, fn=fn)
    with contextlib.closing(executor.map(run, chunks, processes=workers, window=2 * workers, fresh=fresh)) as done:
        for _, outcome in done:
            yield from outcome or ()
