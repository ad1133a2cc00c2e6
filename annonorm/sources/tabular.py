"""The delimited-table engine: dialect sniffing, decoding, chunked parsing and the ways a table is taken.

A table of annotations has one row per box or per image; the rows of one image are grouped by its
key cell. This module reads such a table for a format's mapping (the CSV converter's) and knows
nothing of roles or presets:

* the dialect: the delimiter sniffed (:func:`sniff_delimiter`, ``csv.Sniffer`` over the first
  :data:`SNIFF_BYTES` among ``, ; tab | space``), a UTF-8 byte order mark dropped, bytes that are not
  UTF-8 a :class:`~annonorm.errors.ParseError` naming the row (:func:`iter_rows`);
* the shape: the header, the width every row must have (:meth:`Table.check_row`);
* the strategies of :class:`TableStream`, which all give what the two-pass reader gives:
  streaming when every image's rows are adjacent (a scan proves it first), blocks of whole images cut
  from :data:`Strategy.chunk_bytes` chunks with ``str.split`` when the file has no quote character
  (:func:`simple_lines`), else by ``csv.reader``; a large file in two halves, the second in a
  forked process (:meth:`TableStream.stream_halves`); two passes when an image's rows are scattered,
  the second folding each image's rows into one run.

Whichever strategy, the format's one mapping (:class:`GroupMapping`) sees blocks of whole images.
Number cells, decimal commas and whole columns are typed by :mod:`annonorm.sources.tabular_columns`.
"""

from __future__ import annotations

import csv
import io
import shutil
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from heapq import heappop, heappush
from itertools import chain, compress, groupby, islice, repeat
from operator import itemgetter, ne
from pathlib import Path
from typing import IO, NoReturn, Protocol

from annonorm.engine import Executor
from annonorm.errors import AnnonormError, ParseError, UsageError
from annonorm.fsutil import open_regular, require_regular_file
from annonorm.sink import DatasetWriter, SplitSummary

__all__ = [
    "EXPECTED_TABLE",
    "NOT_A_TABLE",
    "GroupMapping",
    "Irregular",
    "Output",
    "Rows",
    "Strategy",
    "Table",
    "TableStream",
    "iter_rows",
    "looks_like_table",
    "open_dialect",
    "read_sample",
    "simple_lines",
    "sniff_delimiter",
    "table_files",
    "text_chunks",
]

# ---------------------------------------------------------------------------------------------- constants

SNIFF_BYTES = 16 * 1024
SNIFF_DELIMITERS = ",;\t| "
#: How a source that holds no table of annotations is refused, and what was expected instead.
NOT_A_TABLE = "no CSV annotations here: "
EXPECTED_TABLE = "expected a delimited table, one row per box or image (e.g. filename,class,xmin,ymin,xmax,ymax)"


@dataclass(frozen=True)
class Strategy:
    """How a :class:`TableStream` takes a table (never what it gives): tests take every strategy with it.

    ``streaming``: stream adjacent rows in one pass (else always two passes). ``columnar``: hand the
    mapping blocks of many groups (else one group at a time: the scalar call of the same mapping).
    ``chunk_bytes``: bytes decoded and split at a time, small enough for a block's cells to stay in the
    CPU cache (64 KiB ran 1.5x faster than 1 MiB), large enough to amortise the per-block work.
    ``block_rows``: rows per block when ``csv.reader`` splits them (files with quote characters).
    ``parallel_min_bytes``: files at least this large are streamed in two halves by two processes
    (``Execution.min_parallel`` overrides it).
    """

    streaming: bool = True
    columnar: bool = True
    chunk_bytes: int = 64 * 1024
    block_rows: int = 2048
    parallel_min_bytes: int = 8 << 20


# ---------------------------------------------------------------------------------------------- sniff


def looks_like_table(line: str) -> bool:
    """Whether a first line splits into at least two cells (and is no JSON or XML)."""
    if not line.strip() or line.lstrip()[:1] in ("{", "[", "<"):
        return False
    return any(len([c for c in line.split(d) if c.strip()]) >= 2 for d in SNIFF_DELIMITERS if d != " ") or (
        len(line.split()) >= 2
    )


def sniff_delimiter(sample: str) -> str:
    """The delimiter of a CSV sample (``csv.Sniffer`` among ``, ; tab | space``), ``,`` when it cannot tell."""
    lines = [line for line in sample.splitlines() if line.strip()]
    if not lines:
        return ","
    try:
        delimiter = csv.Sniffer().sniff("\n".join(lines[:50]), delimiters=SNIFF_DELIMITERS).delimiter
    except csv.Error:
        # One column, or too few rows for the Sniffer's statistics: take the first candidate present.
        first = lines[0]
        delimiter = next((d for d in SNIFF_DELIMITERS if d in first), ",")
    if delimiter == " " and any(d in lines[0] for d in ",;\t|"):
        # "1.jpg, dog" sniffs as space-separated; a real separator in the first line wins.
        delimiter = next(d for d in ",;\t|" if d in lines[0])
    return delimiter


def read_sample(path: Path) -> str:
    """The first :data:`SNIFF_BYTES` of a table, cut at a line end, decoded leniently (for sniffing)."""
    with open_regular(path, "CSV file") as stream:
        try:
            raw = stream.read(SNIFF_BYTES)
        except OSError as exc:
            raise ParseError(f"cannot read the CSV file: {exc.strerror}", file=path) from None
    if len(raw) == SNIFF_BYTES and b"\n" in raw:
        raw = raw[: raw.rindex(b"\n") + 1]  # the sniffer must not see a cut line
    return raw.decode("utf-8-sig", errors="replace")


def table_files(source: Path, *, checked: bool = True) -> list[Path]:
    """The table ``source``, or the ``.csv`` files of a directory, each a regular file (a FIFO or a device
    named ``x.csv`` is refused); ``checked=False`` (provenance) lists them without a check or an error."""
    if not source.is_dir():
        files = [source]
    elif not checked:
        return sorted(p for p in source.iterdir() if p.suffix.lower() == ".csv" and p.is_file())
    else:
        files = sorted(p for p in source.iterdir() if p.suffix.lower() == ".csv" and not p.is_dir())
        if not files:
            message = "no .csv file in this directory; expected a CSV file or a folder of them"
            raise ParseError(f"{NOT_A_TABLE}{message}", file=source)
    for path in files if checked else ():
        require_regular_file(path, "CSV file")
    return files


# ---------------------------------------------------------------------------------------------- rows of a file


class _DecodeFailure(Exception):
    def __init__(self, line: int, error: UnicodeDecodeError) -> None:
        super().__init__(str(error))
        self.line = line
        self.error = error


def _decoded_lines(stream: IO[bytes]) -> Iterator[str]:
    for number, raw in enumerate(stream, start=1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]  # UTF-8 byte order mark (Excel writes one)
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _DecodeFailure(number, exc) from None


def iter_rows(path: Path, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(row number, stripped cells)``, 1-based, counting every row (the header and blank ones)."""
    stream = open_regular(path, "CSV file")
    row = 0
    with stream:
        reader = csv.reader(_decoded_lines(stream), delimiter=delimiter, quotechar='"', skipinitialspace=True)
        try:
            for cells in reader:
                row += 1
                yield row, [cell.strip() for cell in cells]
        except _DecodeFailure as exc:
            raise ParseError(
                f"{NOT_A_TABLE if exc.line == 1 else ''}line {exc.line} is not UTF-8 (byte "
                f"{exc.error.object[exc.error.start]:#04x} at offset {exc.error.start}); expected a UTF-8 text file",
                file=path,
                location=f"row {row + 1}",
            ) from None
        except csv.Error as exc:
            raise ParseError(f"not valid CSV: {exc}", file=path, location=f"row {row + 1}") from None


def open_dialect(path: Path, delimiter: str | None) -> tuple[str, str, list[list[str]]]:
    """The sniffing sample, the delimiter (``delimiter``, ``\\t`` for tab, else sniffed) and the first two
    rows that are not blank of a table; a file that is no table (binary, JSON, XML, no row) is a ParseError."""
    sample = read_sample(path)
    first_line = next((line for line in sample.splitlines() if line.strip()), "")
    if "\x00" in first_line or first_line.lstrip()[:1] in ("{", "[", "<"):
        shape = (
            "binary data or UTF-16 text (NUL bytes), not UTF-8 text"
            if "\x00" in first_line
            else f"a line starting with {first_line.lstrip()[:1]!r} (JSON or XML)"
        )
        raise ParseError(f"{NOT_A_TABLE}the file holds {shape}; {EXPECTED_TABLE}", file=path, location="row 1")
    delimiter = delimiter or sniff_delimiter(sample)
    if delimiter == "\\t":
        delimiter = "\t"
    if len(delimiter) != 1:
        raise UsageError(f"--delimiter {delimiter!r}: expected one character")
    first = first_rows(path, delimiter)
    if not first:
        raise ParseError(f"{NOT_A_TABLE}the file holds no row; {EXPECTED_TABLE}", file=path)
    return sample, delimiter, first


def first_rows(path: Path, delimiter: str) -> list[list[str]]:
    """The first two rows that are not blank."""
    rows = []
    for _, cells in iter_rows(path, delimiter):
        if any(cells):
            rows.append(cells)
        if len(rows) == 2:
            break
    return rows


def text_chunks(
    path: Path, start: int = 0, stop: int | None = None, line: int = 1, *, chunk_bytes: int = 64 * 1024
) -> Iterator[tuple[int, str]]:
    """Yield ``(number of its first line, text)`` for runs of whole lines of about ``chunk_bytes``.

    The streaming reader's source: one decode per chunk instead of one per line. Bytes ``start`` to
    ``stop`` are read (a line starts at ``start``, numbered ``line``). The byte order mark is dropped
    as :func:`iter_rows` drops it; bytes that are not UTF-8 raise ``UnicodeDecodeError`` (the
    caller has :func:`iter_rows` name the row).
    """
    with open_regular(path, "CSV file") as stream:
        if start == 0 and stream.read(3) != b"\xef\xbb\xbf":
            stream.seek(0)  # no UTF-8 byte order mark (Excel writes one)
        elif start:
            stream.seek(start)
        position, rest = stream.tell(), b""
        while True:
            more = stream.read(chunk_bytes if stop is None else min(chunk_bytes, stop - position))
            position += len(more)
            buffer = rest + more
            if not buffer:
                return
            cut = buffer.rfind(b"\n") + 1 if more else len(buffer)  # at the end, the last line has no newline
            if cut:
                text = buffer[:cut].decode("utf-8")
                yield line, text
                line += text.count("\n")
            rest = buffer[cut:]  # a line longer than a chunk stays here until its end is read


def simple_lines(text: str, delimiter: str) -> list[str] | None:
    """The lines of a chunk when ``str.split`` cuts each into the cells ``csv.reader`` would; else ``None``.

    That holds without quote characters (no quoted field, no field spanning lines), without NUL,
    with a delimiter other than space (``skipinitialspace`` merges runs of spaces), with no
    carriage return but in CRLF endings (a lone one is a csv error) and with no line longer than
    the csv module's field size limit (which it refuses).
    """
    if delimiter == " " or '"' in text or "\x00" in text:
        return None
    if "\r" in text:
        text = text.replace("\r\n", "\n")
        if "\r" in text:
            return None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the chunk's last line ending, not a blank line
    if lines and max(map(len, lines)) > csv.field_size_limit():
        return None
    return lines


@dataclass
class Table:
    """One delimited file: its dialect, header and width (the number of cells a row has)."""

    path: Path
    delimiter: str
    header: list[str] | None
    width: int
    decimal: str = "."  # the decimal mark of number cells

    def column_name(self, index: int) -> str:
        """How messages name a column: its header name, else its 0-based index."""
        if self.header is not None and index < len(self.header) and self.header[index]:
            return repr(self.header[index])
        return str(index)

    def where(self, row: int, index: int | None = None) -> str:
        """``row N`` or ``row N, column C``."""
        return f"row {row}" if index is None else f"row {row}, column {self.column_name(index)}"

    def data_rows(self, short_rows: str) -> Iterator[tuple[int, list[str]]]:
        """Data rows (header skipped, blank rows dropped), checked against the table's width."""
        for number, cells in iter_rows(self.path, self.delimiter):
            if self.header is not None and number == 1:
                continue
            checked = self.check_row(number, cells, short_rows)
            if checked is not None:
                yield number, checked

    def check_row(self, number: int, cells: list[str], short_rows: str) -> list[str] | None:
        """A data row's stripped cells cut or padded to the table's width; ``None`` for a blank row."""
        if not any(cells):
            return None
        if len(cells) > self.width:
            if any(cells[self.width :]):
                raise ParseError(
                    f"row has {len(cells)} cells but the {'header' if self.header else 'first row'} "
                    f"has {self.width}; expected the same number in every row",
                    file=self.path,
                    location=f"row {number}",
                )
            return cells[: self.width]  # a trailing delimiter
        if len(cells) < self.width:
            if short_rows != "pad":
                raise ParseError(
                    f"row has {len(cells)} cells but the {'header' if self.header else 'first row'} "
                    f"has {self.width}; expected the same number in every row (or pass --short-rows pad)",
                    file=self.path,
                    location=f"row {number}",
                )
            return cells + [""] * (self.width - len(cells))
        return cells


# ---------------------------------------------------------------------------------------------- blocks of rows


@dataclass
class Rows:
    """Consecutive data rows of one file, column by column: the streaming reader's unit of work."""

    numbers: list[int]  # the row numbers
    columns: list[list[str]]  # the cells as split, stripped or not, one list per column
    keys: list[str]  # the stripped key (image) cells; "" on a blank row (or an empty key cell)

    def __len__(self) -> int:
        return len(self.keys)

    def part(self, start: int, stop: int) -> Rows:
        """Rows ``start`` to ``stop`` (excluded)."""
        return Rows(self.numbers[start:stop], [c[start:stop] for c in self.columns], self.keys[start:stop])

    @staticmethod
    def join(parts: Sequence[Rows]) -> Rows:
        """The rows of ``parts``, in order."""
        if len(parts) == 1:
            return parts[0]
        return Rows(
            list(chain.from_iterable(p.numbers for p in parts)),
            [list(chain.from_iterable(column)) for column in zip(*(p.columns for p in parts), strict=True)],
            list(chain.from_iterable(p.keys for p in parts)),
        )

    def pick(self, indices: Sequence[int]) -> Rows:
        """The rows at ``indices``, in that order."""
        return Rows(
            [self.numbers[i] for i in indices],
            [[column[i] for i in indices] for column in self.columns],
            [self.keys[i] for i in indices],
        )


def last_group_start(keys: list[str], open_key: str) -> tuple[int | None, str]:
    """Where the rows of the last key of ``keys`` start, and that key.

    ``None`` when every row goes on with the key ``open_key`` (or is blank): that group may go on
    in the next rows too. Blank rows just before the last group go with it.
    """
    last = ""
    start = len(keys)
    while start:
        key = keys[start - 1]
        if key:
            if not last:
                last = key
            elif key != last:
                break
        start -= 1
    if start == 0 and last in ("", open_key):
        return None, open_key
    return start, last


def adjacent(keys: Iterable[str]) -> bool:
    """Whether the rows of each key are consecutive (a key seen again after another is not)."""
    seen: set[str] = set()
    for key, _ in groupby(keys):
        if key in seen:
            return False
        seen.add(key)
    return True


def whole_groups(pieces: Iterable[Rows]) -> Iterator[Rows]:
    """Regroup pieces into blocks of whole groups (a group's rows may straddle two pieces)."""
    carry: list[Rows] = []  # the rows of the last group seen, which may go on
    open_key = ""
    for piece in pieces:
        start, open_key = last_group_start(piece.keys, open_key)
        if start is None:
            carry.append(piece)
            continue
        if carry or start:
            yield Rows.join([*carry, piece.part(0, start)])
        carry = [piece.part(start, len(piece))]
    if carry:
        yield Rows.join(carry)


# ---------------------------------------------------------------------------------------------- the engine


class Irregular(Exception):
    """Raised by a fast column typer, having done nothing, for a column whose cells need typing one by one."""


class _NotSimple(Exception):
    """A chunk that ``str.split`` would cut otherwise than ``csv.reader``."""


class _GiveUp(Exception):
    """A forked half met something its parent must report in order: the parent reads that half again."""


@dataclass
class Output:
    """Where a table's records go, shared by the engine and the mapping (a forked half swaps the writer)."""

    writer: DatasetWriter
    #: Every image given so far, in every file of the source: image -> (file, split).
    emitted: dict[str, tuple[str, str]] = field(default_factory=dict)


class GroupMapping(Protocol):
    """A format's mapping of a table's rows to records: THE mapping, one block of whole groups at a time.

    A block holds whole groups (an image's rows), each one run of rows, in file order, with no blank
    row and no empty key cell; a group whose rows are scattered in the file is folded into one run
    first. The mapping writes the records, declares categories through :meth:`TableStream.declare`
    and reports a group's problem through :meth:`TableStream.problem` (its later rows are ignored).
    """

    def map_block(self, block: Rows, stream: TableStream) -> None:
        """Convert a block of whole groups, reporting through ``stream``."""
        ...


@dataclass
class _Half:
    """What a forked process streamed: its splits (in first-seen order), categories and images."""

    splits: list[tuple[str, SplitSummary]]
    categories: list[str]
    images: list[tuple[str, tuple[str, str]]]  # image -> (file, split), as Output.emitted


def _stream_part(stream: TableStream, offset: int, line: int, directory: Path) -> _Half | None:
    """In a forked process: stream bytes ``offset`` on into ``directory``; ``None`` when it gave up."""
    directory.mkdir()
    writer = stream.output.writer = DatasetWriter(directory)  # its own sink; the parent's stays untouched
    stream.forked = True
    known = len(stream.output.emitted)
    try:
        stream.stream(stream.simple_pieces(offset, None, line))
    except Exception:  # anything at all: the parent streams this half itself and meets it in order
        return None
    finally:
        writer.close()
    return _Half(
        splits=list(writer.summary.items()),
        categories=[category["name"] for category in writer.categories],
        images=list(islice(stream.output.emitted.items(), known, None)),
    )


def group_runs(keys: Sequence[str]) -> tuple[list[int], list[int]]:
    """Where each run of equal keys starts and ends (excluded)."""
    starts = [0, *compress(range(1, len(keys)), map(ne, keys[1:], keys[:-1]))]
    return starts, [*starts[1:], len(keys)]


class TableStream:
    """Streams one :class:`Table` through a :class:`GroupMapping` into an :class:`Output`.

    Two strategies give the same records, categories and errors:

    * streaming, when every group's rows are adjacent (exporters write them so; a scan of the key
      column proves it first): one pass, rows taken in blocks of whole groups. A file without quote
      characters is cut with ``str.split`` (it splits as ``csv.reader`` would there, several times
      faster); otherwise ``csv.reader`` reads it.
    * two passes, when the rows of a group are scattered: pass 1 remembers the last row of each
      group, pass 2 folds each group's rows into one run and maps the groups in first-seen order as
      soon as the first one's last row has been read. Categories and problems are held back until
      no earlier row can give one, so they come in the order of the rows that give them.

    The two-pass reader reports a problem of the file (bytes that are not UTF-8, bad CSV, a ragged
    row, an empty key cell) before any group's own problem, wherever both are. The streaming reader
    keeps that order: when it meets either, it runs pass 1 (:meth:`last_rows`), which raises the
    first problem of the file if there is one.
    """

    def __init__(
        self,
        table: Table,
        key_column: int,
        mapping: GroupMapping,
        output: Output,
        *,
        short_rows: str,
        executor: Executor,
        strategy: Strategy,
    ) -> None:
        self.table = table
        self.key_column = key_column
        self.mapping = mapping
        self.output = output
        self.short_rows = short_rows
        self.executor = executor
        self.strategy = strategy
        self.single_pass = False
        self.forked = False  # streaming the second half of the file in a forked process
        self.claimed: set[str] = set()  # keys whose rows have been read (streaming)
        # Two passes: (row, phase, order, category or problem) held back; "now" is the row just read.
        self.held: list[tuple[int, int, int, str | AnnonormError]] | None = None
        self.now = 0

    def run(self) -> None:
        """Read the table: in one pass when each group's rows are adjacent, else in two."""
        layout = self._layout() if self.strategy.streaming else None
        if layout is None:
            self._run_two_passes()
        else:
            self._run_streaming(layout)

    # -- reporting -----------------------------------------------------------------------------

    def file_problem(self) -> NoReturn:
        """Raise the first problem of the file, as pass 1 names it."""
        if self.forked:
            raise _GiveUp
        self.last_rows()
        self.file_changed()

    def file_changed(self) -> NoReturn:
        """Raise: the file is not what the scan read."""
        raise ParseError("the file changed while it was being read; expected it to stay as it is", file=self.table.path)

    def declare(self, firsts: Iterable[tuple[int, str]]) -> None:
        """Declare categories, each with the row number that first names it (in row order)."""
        if self.held is None:
            category = self.output.writer.category
            for _, name in firsts:
                category(name)
        else:
            for number, name in firsts:
                heappush(self.held, (number, 0, len(self.held), name))

    def problem(self, error: AnnonormError, key: str, number: int | None = None) -> None:
        """Report a problem of the group the source names ``key``, met at row ``number`` (``None``: once
        the group's rows are all read). When it would stop the conversion (``--on-error fail``) while
        streaming, a problem of the file anywhere in it is raised instead, as the two-pass reader does."""
        if error.image is None:
            error.image = key
        if self.forked:
            raise _GiveUp  # the parent reads this half again and reports it in order
        if self.held is not None:
            place = (self.now, 1) if number is None else (number, 0)
            heappush(self.held, (*place, len(self.held), error))
            return
        if self.single_pass and self.output.writer.on_error != "skip":
            self.last_rows()
        self.output.writer.problem(error)

    def _release(self, before: int | None) -> None:
        """Pass on the categories and problems held back from rows before ``before`` (all: ``None``)."""
        held, writer = self.held, self.output.writer
        assert held is not None
        while held and (before is None or held[0][0] < before):
            thing = heappop(held)[3]
            if isinstance(thing, str):
                writer.category(thing)
            else:
                writer.problem(thing)

    def map_groups(self, block: Rows) -> None:
        """Hand a block of whole groups to the mapping (one group at a time without ``Strategy.columnar``)."""
        if self.strategy.columnar:
            self.mapping.map_block(block, self)
            return
        for start, end in zip(*group_runs(block.keys), strict=True):
            self.mapping.map_block(block.part(start, end), self)

    def last_rows(self) -> dict[str, int]:
        """Pass 1: the last row of each group (memory grows with the number of groups only).

        It raises the first problem of the file (as a whole) that there is.
        """
        last: dict[str, int] = {}
        for number, cells in self.table.data_rows(self.short_rows):
            key = cells[self.key_column]
            if not key:
                raise ParseError(
                    "the image cell is empty; expected an image path",
                    file=self.table.path,
                    location=self.table.where(number, self.key_column),
                )
            last[key] = number
        return last

    def _run_two_passes(self) -> None:
        """Pass 2: fold each group's rows; map the groups in first-seen order once the first is complete."""
        last = self.last_rows()
        self.held = []
        pending: dict[str, list[tuple[int, list[str]]]] = {}
        for number, cells in self.table.data_rows(self.short_rows):
            key = cells[self.key_column]
            rows = pending.get(key)
            if rows is None:
                rows = pending[key] = []
            rows.append((number, cells))
            if last[key] != number or next(iter(pending)) != key:
                continue
            self.now = number
            done: list[tuple[int, list[str]]] = []
            while pending:
                head = next(iter(pending))
                if pending[head][-1][0] != last[head]:
                    break
                done += pending.pop(head)
            columns = [list(column) for column in zip(*(cells for _, cells in done), strict=True)]
            self.map_groups(Rows([n for n, _ in done], columns, columns[self.key_column]))
            self._release(next(iter(pending.values()))[0][0] if pending else None)
        self._release(None)

    # -- streaming -----------------------------------------------------------------------------

    def _layout(self) -> str | None:
        """How to stream the file when each group's rows are adjacent: ``"simple"`` (``str.split``) or
        ``"csv"`` (``csv.reader``); ``None`` when they are not, or when the scan meets a problem
        (the two-pass reader names it)."""
        try:
            return "simple" if adjacent(chain.from_iterable(self._simple_keys())) else None
        except _NotSimple:
            pass
        except (ParseError, OSError, UnicodeDecodeError, IndexError):
            return None
        table = self.table
        try:
            with (
                open_regular(table.path, "CSV file") as raw,
                io.TextIOWrapper(raw, encoding="utf-8-sig", newline="\n") as text,
            ):
                # The dialect of iter_rows; newline="\n" cuts lines where iterating over bytes does.
                rows = csv.reader(text, delimiter=table.delimiter, quotechar='"', skipinitialspace=True)
                if table.header is not None:
                    next(rows, None)
                cells = map(itemgetter(self.key_column), filter(None, rows))  # IndexError on a short row
                return "csv" if adjacent(filter(None, map(str.strip, cells))) else None
        except (OSError, UnicodeDecodeError, IndexError, csv.Error):
            return None

    def _chunks(self, start: int = 0, stop: int | None = None, line: int = 1) -> Iterator[tuple[int, str]]:
        return text_chunks(self.table.path, start, stop, line, chunk_bytes=self.strategy.chunk_bytes)

    def _simple_keys(self) -> Iterator[Iterable[str]]:
        """Per chunk of the file, the stripped non-empty key cells; :class:`_NotSimple` at a chunk
        that ``str.split`` would cut otherwise than ``csv.reader``."""
        table = self.table
        delimiter, column = table.delimiter, self.key_column
        for first, text in self._chunks():
            lines = simple_lines(text, delimiter)
            if lines is None:
                raise _NotSimple
            if first == 1 and table.header is not None:
                lines = lines[1:]
            if column == 0:
                cells = map(itemgetter(0), map(str.partition, lines, repeat(delimiter)))
            else:  # a row without that cell raises IndexError
                cells = map(
                    itemgetter(column), map(str.split, filter(None, lines), repeat(delimiter), repeat(column + 1))
                )
            yield filter(None, map(str.strip, cells))

    def _run_streaming(self, layout: str) -> None:
        """Read the rows in one pass, a block of whole groups at a time (a large file in two halves,
        the second in a forked process, when there are cores for it)."""
        self.single_pass = True
        if layout == "csv":
            self.stream(self._csv_pieces())
            return
        middle = self._middle()
        if middle is not None:
            self.output.writer.finish_hashing()  # no thread may run when the process forks
        if middle is None or not self.executor.forks():
            self.stream(self.simple_pieces())
        else:
            self.stream_halves(*middle)

    def stream(self, pieces: Iterable[Rows]) -> None:
        """Read ``pieces`` in blocks of whole groups (blank rows dropped; an empty key is a file problem)."""
        claimed = self.claimed
        for block in whole_groups(pieces):
            keys = block.keys
            if "" in keys:
                keep = [i for i, key in enumerate(keys) if key]
                if len(keep) < len(keys) and any(
                    cell.strip() for i, key in enumerate(keys) if not key for cell in (c[i] for c in block.columns)
                ):
                    self.file_problem()  # a row with cells but no key
                block = block.pick(keep)
                if not keep:
                    continue
            fresh = dict.fromkeys(block.keys)
            runs = 1 + sum(map(ne, block.keys[1:], block.keys[:-1]))
            if runs != len(fresh) or not claimed.isdisjoint(fresh):
                self.file_changed()  # the scan found each group's rows adjacent
            claimed.update(fresh)
            self.map_groups(block)

    def simple_pieces(self, start: int = 0, stop: int | None = None, line: int = 1) -> Iterator[Rows]:
        """The data rows of bytes ``start`` to ``stop`` (from line ``line``), a chunk at a time, cut
        with ``str.split`` (the file has no quote character)."""
        table = self.table
        delimiter, width, column = table.delimiter, table.width, self.key_column
        try:
            for first, text in self._chunks(start, stop, line):
                lines = simple_lines(text, delimiter)
                if lines is None:
                    self.file_changed()
                if first == 1 and table.header is not None:
                    lines, first = lines[1:], 2
                if not lines:
                    continue
                if set(map(str.count, lines, repeat(delimiter))) == {width - 1}:
                    # Every line has the table's width: cut them all at once and take every width-th cell.
                    cells = delimiter.join(lines).split(delimiter)
                    columns = [cells[i::width] for i in range(width)]
                    yield Rows(list(range(first, first + len(lines))), columns, list(map(str.strip, columns[column])))
                    continue
                numbers, rows = [], []
                for number, text in enumerate(lines, start=first):
                    checked = table.check_row(number, [cell.strip() for cell in text.split(delimiter)], self.short_rows)
                    if checked is not None:
                        numbers.append(number)
                        rows.append(checked)
                if rows:
                    columns = [list(cells) for cells in zip(*rows, strict=True)]
                    yield Rows(numbers, columns, columns[column])
        except (ParseError, UnicodeDecodeError):
            self.file_problem()

    def _middle(self) -> tuple[int, int] | None:
        """Where to cut a large file in two: the byte offset and line number of the first row of the
        first group that starts after the middle; ``None`` for a small file (or a strange middle)."""
        path = self.table.path
        size = path.stat().st_size
        if self.executor.execution.pool_size(size, self.strategy.parallel_min_bytes) <= 1:
            return None  # a small file, or --workers 1
        with open_regular(path, "CSV file") as stream:
            stream.seek(size // 2)
            stream.readline()  # the end of the line the middle falls in
            first = ""
            while True:
                offset = stream.tell()
                raw = stream.readline()
                if not raw:
                    return None  # the last group runs to the end
                try:
                    key = raw.decode("utf-8").split(self.table.delimiter)[self.key_column].strip()
                except (UnicodeDecodeError, IndexError):
                    return None  # a row the two-pass reader will name
                if key and not first:
                    first = key
                elif key and key != first:
                    break
            stream.seek(0)
            lines = 1
            while stream.tell() < offset:
                lines += stream.read(min(1 << 20, offset - stream.tell())).count(b"\n")
        return offset, lines

    def stream_halves(self, offset: int, line: int) -> None:
        """Stream bytes ``offset`` on in a forked process while this one streams the first half.

        The second half's records go to a part file; they are appended to the split files, its
        categories declared and its images noted after the first half, so the output is byte for
        byte that of one process. If the second half meets anything but plain rows (a problem, a
        file problem, an image the first half already has), this process streams it again itself,
        so problems are reported as one process reports them.
        """
        writer = self.output.writer
        directory = writer.directory / f".part-{uuid.uuid4().hex[:8]}"

        def second_half(_: int) -> _Half | None:
            return _stream_part(self, offset, line, directory)

        def redo(_: int) -> None:
            self.stream(self.simple_pieces(offset, None, line))

        def first_half() -> None:
            self.stream(self.simple_pieces(0, offset, 1))

        try:
            for _, second in self.executor.parts(second_half, 1, redo=redo, meanwhile=first_half):
                if any(image in self.output.emitted for image, _ in second.images):
                    redo(0)  # an image the first half has too: only one process can tell how it goes on
                    continue
                for name in second.categories:
                    writer.category(name)
                self.output.emitted.update(second.images)
                for split, summary in second.splits:
                    writer.append_part(split, directory / f"{split}.jsonl", summary)
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    def _csv_pieces(self) -> Iterator[Rows]:
        """The data rows, :attr:`Strategy.block_rows` at a time, read by ``csv.reader``."""
        rows = self.table.data_rows(self.short_rows)
        try:
            while batch := list(islice(rows, self.strategy.block_rows)):
                columns = [list(cells) for cells in zip(*(cells for _, cells in batch), strict=True)]
                yield Rows([number for number, _ in batch], columns, columns[self.key_column])
        except ParseError:
            self.file_problem()
