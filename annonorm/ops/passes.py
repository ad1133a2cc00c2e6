"""The line pass under ``split``, ``filter`` and ``remap``: input lines routed to output splits, in parallel.

The input split files are cut into byte ranges on line boundaries (:meth:`Executor.byte_ranges`), the
ranges dealt in order to the engine's processes (:meth:`Executor.parts`, forked from this one). A process
reads its ranges, hands every record line to the operation's :data:`Route`, writes what it returns into
one part file per output split, and checks each part with the validator's part check
(:func:`annonorm.validation.check_part`, the sink's :class:`~annonorm.sink.PartCheck`) while the part is
still in the page cache. This process appends the parts in order (:meth:`DatasetWriter.append_part`), so
the output is byte for byte what one process writes, and the validation of the whole output before it
is renamed into place reads none of it again (it takes the parts' checks). A line the operation leaves
unchanged is copied as it is: nothing is decoded into dicts or encoded again.

A route raises an :class:`~annonorm.errors.AnnonormError` without a file for a bad line: the pass adds
the split file and the line number. A part that fails in a worker is built again here, in its turn, so
its error comes as one process meets it.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from annonorm.engine import Execution, Executor, LocalExecutor
from annonorm.errors import AnnonormError, InvalidDataError, ParseError
from annonorm.fsutil import open_regular
from annonorm.io import UNDECODABLE, NormalizedSource, open_split
from annonorm.records import canonical_record
from annonorm.sink import DatasetWriter, SplitSummary

__all__ = [
    "PARALLEL_MIN_BYTES",
    "Listing",
    "Range",
    "Route",
    "cut",
    "decode_record",
    "executor_for",
    "lines",
    "run_pass",
    "where",
]

#: Inputs at least this large (all split files together) are read by several processes.
PARALLEL_MIN_BYTES = 32 * 1024 * 1024

_JSON_DECODER = msgspec.json.Decoder()

#: What an operation does with one record line: ``route(input split, line, position)`` gives
#: ``(output split, line to write, whether it has a mask)``, or ``None`` to leave the record out.
#: ``position`` is the record's index over all ranges in input order (see :attr:`Range.first`).
Route = Callable[[str, bytes, int], "tuple[str, bytes, bool] | None"]


@dataclass(frozen=True)
class Range:
    """A byte range of an input split file, on line boundaries, and the position of its first record."""

    split: str
    path: Path
    start: int
    end: int
    #: The index of the range's first record over the whole input (0 where the route does not use it).
    first: int = 0


def executor_for(
    execution: Execution | None, sources: Sequence[NormalizedSource], splits: Sequence[str]
) -> tuple[Executor, int]:
    """The engine and the number of processes for reading ``splits`` of ``sources`` (1: this process only)."""
    executor = LocalExecutor(execution or Execution())
    size = sum(source.split_path(split).stat().st_size for source in sources for split in splits)
    processes = executor.execution.pool_size(size, PARALLEL_MIN_BYTES)
    if processes > 1 and not executor.forks():
        processes = 1  # the parts share this process's memory (the route, its arrays): fork only
    return executor, processes


def cut(source: NormalizedSource, splits: Sequence[str], executor: Executor, processes: int) -> list[Range]:
    """The byte ranges of ``splits`` of ``source``, in input order, ``processes`` per split file."""
    ranges: list[Range] = []
    for split in splits:
        path = source.split_path(split)
        open_split(path).close()  # a missing or special file is worded before any range is cut
        pieces = executor.byte_ranges(path, processes) if processes > 1 else [(0, path.stat().st_size)]
        ranges.extend(Range(split, path, start, end) for start, end in pieces)
    return ranges


def where(error: AnnonormError, path: Path, start: int, number: int) -> AnnonormError:
    """``error`` naming ``path`` and the line (``number``, counted from the line at byte ``start``)."""
    if error.file is not None:
        return error
    before = 0
    with open_regular(path, "split file") as stream:
        remaining = start
        while remaining > 0:
            block = stream.read(min(remaining, 1 << 20))
            if not block:
                break
            before += block.count(b"\n")
            remaining -= len(block)
    return type(error)(error.message, file=path, location=f"line {before + number}", image=error.image)


def decode_record(line: bytes) -> dict[str, Any]:
    """One line as a canonical record dict; not JSON or malformed is an error without a place (the pass adds it)."""
    try:
        data = _JSON_DECODER.decode(line)
    except UNDECODABLE as exc:
        raise ParseError(f"not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ParseError("expected a JSON object")
    try:
        return canonical_record(data)
    except (KeyError, TypeError, AttributeError, ValueError):
        raise InvalidDataError("record is malformed; run annonorm validate") from None


def lines(piece: Range) -> Iterator[tuple[int, bytes]]:
    """``(line number from the range's start, line)`` of each non-blank line of ``piece``."""
    with open_regular(piece.path, "split file") as stream:
        stream.seek(piece.start)
        offset = piece.start
        for number, line in enumerate(stream, start=1):
            if offset >= piece.end:
                break
            offset += len(line)
            if not line.isspace():
                yield number, line


Built = dict[str, tuple[Path, SplitSummary, Any]]


#: What a pass writes beside each output split, per line written (``split``'s ``<split>.txt``): ``listing(line)``.
Listing = Callable[[bytes], bytes]


def _build(
    pieces: Sequence[Range],
    route: Route,
    directory: Path,
    targets: Sequence[str],
    categories: Sequence[str],
    listing: Listing | None,
) -> Built:
    """Route ``pieces`` into one part file per target in ``directory``, each checked; what to append."""
    from annonorm.validation import check_part

    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir()
    paths = {target: directory / f"{target}.jsonl" for target in targets}
    streams = {target: path.open("wb", buffering=1 << 20) for target, path in paths.items()}
    listed = {target: (directory / f"{target}.txt").open("wb", buffering=1 << 20) for target in targets if listing}
    records = dict.fromkeys(targets, 0)
    masks = dict.fromkeys(targets, 0)
    try:
        for piece in pieces:
            position = piece.first
            for number, line in lines(piece):
                try:
                    routed = route(piece.split, line, position)
                except AnnonormError as exc:
                    raise where(exc, piece.path, piece.start, number) from None
                position += 1
                if routed is None:
                    continue
                target, data, mask = routed
                streams[target].write(data if data.endswith(b"\n") else data + b"\n")
                if listing is not None:
                    listed[target].write(listing(data))
                records[target] += 1
                if mask:
                    masks[target] += 1
    finally:
        for stream in (*streams.values(), *listed.values()):
            stream.close()
    built: Built = {}
    for target, path in paths.items():
        checked = check_part(path, categories, masks=masks[target])
        built[target] = (path, SplitSummary(records[target], checked.result.boxes, masks[target]), checked)
    return built


def run_pass(
    writer: DatasetWriter,
    ranges: Sequence[Range],
    route: Route,
    targets: Sequence[str],
    *,
    executor: Executor,
    processes: int,
    progress: Callable[[int], None] | None = None,
    listing: Listing | None = None,
) -> None:
    """Write ``ranges`` routed by ``route`` into ``writer``'s splits ``targets`` (declared here), checked.

    The ranges are dealt to ``processes`` parts in order; ``writer``'s categories must be declared.
    With ``listing``, ``OUT/<target>.txt`` gets ``listing(line)`` for each line written to the target.
    """
    for target in targets:
        writer.declare_split(target)
    categories = [category["name"] for category in writer.categories]
    count = max(1, min(processes, len(ranges)))
    groups = [list(ranges[len(ranges) * k // count : len(ranges) * (k + 1) // count]) for k in range(count)]
    directories = [writer.directory / f".part-{k}" for k in range(count)]

    lists = {target: (writer.directory / f"{target}.txt").open("wb") for target in targets if listing}

    def build(k: int) -> Built:
        return _build(groups[k], route, directories[k], targets, categories, listing)

    def append(k: int, built: Built) -> None:
        for target in targets:
            path, summary, checked = built[target]
            writer.append_part(target, path, summary, checked)
            if listing is not None:
                with (directories[k] / f"{target}.txt").open("rb") as part:
                    shutil.copyfileobj(part, lists[target], 1 << 20)
            if progress is not None and summary.records:
                progress(summary.records)
        shutil.rmtree(directories[k], ignore_errors=True)

    try:
        if count == 1:
            append(0, build(0))
            return
        for k, built in executor.parts(build, count, redo=lambda k: append(k, build(k))):
            append(k, built)
    finally:
        for stream in lists.values():
            stream.close()
        for directory in directories:
            shutil.rmtree(directory, ignore_errors=True)
