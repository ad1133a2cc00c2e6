"""Instance masks: COCO segmentations (polygons, RLE) rasterized in proportion to their pixels, PNG out.

The mask conventions are those of the format (``mask_kind: instance``: pixel value k is the k-th box
of the record, 1-based, 0 background; 8-bit PNG up to 254 boxes, 16-bit above). Polygons and
uncompressed RLE go through pycocotools only, so every reader and the loader draw the same pixels.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import math
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

from annonorm.errors import AnnonormError, InvalidDataError
from annonorm.fsutil import OutputError
from annonorm.geometry import rle_string_runs

if TYPE_CHECKING:
    from annonorm.engine import Executor
    from annonorm.sink import DatasetWriter

#: An instance mask is 8-bit up to this many boxes, 16-bit above (the type's maximum value means void).
MAX_8BIT_INSTANCES = 254
#: The most boxes a 16-bit instance mask can number.
MAX_16BIT_INSTANCES = 65534
#: The longest file or folder name most file systems hold, in bytes.
NAME_MAX_BYTES = 255
#: Errors of a file name the file system refuses (too long, not in its encoding).
NAME_ERRNOS = frozenset({errno.ENAMETOOLONG, errno.EILSEQ, errno.EINVAL})
_ANY = msgspec.json.Decoder()
_NUMBER_TYPES = frozenset({int, float})

__all__ = [
    "MAX_8BIT_INSTANCES",
    "MAX_16BIT_INSTANCES",
    "MaskJob",
    "MaskWindow",
    "coco_rle_string_runs",
    "coco_rle_string_total",
    "coco_runs_to_window",
    "coco_segmentation_to_rle",
    "coco_segmentation_to_window",
    "draw_instance_masks",
    "instance_mask_name",
    "instance_mask_to_coco_rle",
    "instance_mask_to_coco_rles",
    "instance_windows",
    "mask_name_error",
    "max_mask_pixels",
    "read_instance_mask",
    "render_instance_mask",
    "render_mask_job",
    "write_instance_mask_png",
]


# A mask costs what its pixels cost, not what the image costs. pycocotools turns a polygon into a
# full-image RLE (run lengths along the columns) in time proportional to the polygon's outline;
# only ``decode`` is proportional to the image. So every segmentation becomes that RLE (polygons,
# and uncompressed counts, through pycocotools only), and the RLE is decoded here into the window
# of its bounding box, all the segmentations of an image at once (one pycocotools call, one set of
# array operations: per segmentation, numpy's call overhead cost more than the pixels); the windows
# are composed into the PNG band by band, and bands no window touches are written from one
# compressed copy. Translating a polygon into its window before
# pycocotools rasterizes it would be cheaper still, but not exact: pycocotools scales coordinates
# by 5 in floating point, and ``5 * 851.9`` rounds differently from ``5 * (851.9 - 700)``.


def coco_rle_string_runs(*, counts: str | bytes) -> np.ndarray:
    """The run lengths of a compressed COCO RLE string (:func:`annonorm.geometry.rle_string_runs`).

    Raises :class:`InvalidDataError` for a string that is not one (pycocotools would read garbage).
    """
    try:
        return rle_string_runs(counts)
    except ValueError as exc:
        raise InvalidDataError(str(exc)) from None


def coco_rle_string_total(*, counts: str) -> int:
    """Number of pixels a compressed COCO RLE string covers (the sum of its run lengths)."""
    return int(coco_rle_string_runs(counts=counts).sum())


def _checked_polygons(segmentation: list[Any]) -> list[list[float]]:
    """Polygons as pycocotools takes them; a malformed one raises :class:`InvalidDataError`."""
    polygons = []
    for index, polygon in enumerate(segmentation):
        # The types of the values as a set: a bool is not a number here (``type(True)`` is ``bool``).
        if not isinstance(polygon, list) or not set(map(type, polygon)) <= _NUMBER_TYPES:
            raise InvalidDataError(f"polygon [{index}]: expected a list of numbers")
        if len(polygon) % 2 or len(polygon) < 4:
            raise InvalidDataError(f"polygon [{index}]: expected an even count of at least 4 numbers (x, y pairs)")
        try:
            finite = all(map(math.isfinite, polygon))
        except OverflowError:  # an integer beyond a float
            finite = False
        if not finite:
            raise InvalidDataError(f"polygon [{index}]: coordinates must be finite")
        # frPyObjects takes a 4-number list for a box: repeat the first point (a degenerate triangle).
        polygons.append([*polygon, polygon[0], polygon[1]] if len(polygon) == 4 else polygon)
    return polygons


def _checked_rle(segmentation: dict[str, Any], height: int, width: int) -> tuple[list[int] | str, np.ndarray | None]:
    """An RLE object's counts (checked against the image size) and, for a string, its runs."""
    size, counts = segmentation.get("size"), segmentation.get("counts")
    if (
        not isinstance(size, list)
        or len(size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in size)
    ):
        raise InvalidDataError("RLE size: expected [height, width]")
    if size != [height, width]:
        raise InvalidDataError(f"RLE size {size} differs from the image size [{height}, {width}]")
    if isinstance(counts, list):
        # Checked as an array: a crowd's counts run to thousands of numbers, and train2017 has 9,000 crowds.
        runs = np.array(counts, dtype=object if {type(v) for v in counts} - {int} else None)
        if runs.size and (runs.dtype.kind != "i" or runs.min() < 0):
            raise InvalidDataError("RLE counts: expected non-negative integers")
        if int(runs.sum()) != height * width:
            raise InvalidDataError(
                f"RLE counts cover {int(runs.sum())} pixels; expected height x width = {height * width}"
            )
        if runs.size and runs.max() >= 1 << 32:
            raise InvalidDataError("RLE counts: a run length beyond 32 bits")
        return counts, None
    if isinstance(counts, str):
        runs = coco_rle_string_runs(counts=counts)
        total = int(runs.sum())
        if total != height * width:
            raise InvalidDataError(f"RLE counts cover {total} pixels; expected height x width = {height * width}")
        return counts, runs
    raise InvalidDataError("RLE counts: expected a list of integers or a compressed string")


def coco_segmentation_to_rle(*, segmentation: Any, height: int, width: int) -> dict[str, Any] | None:
    """A COCO ``segmentation`` (polygons or RLE) -> one pycocotools RLE of the image size, or ``None`` if empty.

    Raises :class:`InvalidDataError` (without a file; the caller adds it) for a malformed value.
    """
    from pycocotools import mask as mask_utils

    if isinstance(segmentation, list):
        if not segmentation:
            return None
        polygons = _checked_polygons(segmentation)
        return dict(mask_utils.merge(mask_utils.frPyObjects(polygons, height, width)))
    if isinstance(segmentation, dict):
        counts, _ = _checked_rle(segmentation, height, width)
        if isinstance(counts, list):
            # Uncompressed ("list") counts, as COCO ships its crowds: pycocotools compresses them first.
            return dict(mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width))
        return {"size": [height, width], "counts": counts.encode("ascii")}
    raise InvalidDataError(f"expected a list of polygons or an RLE object, got {type(segmentation).__name__}")


@dataclass(frozen=True)
class MaskWindow:
    """One instance's pixels cut to their bounding box: ``pixels[r, c]`` is image pixel ``(x + c, y + r)``."""

    x: int
    y: int
    pixels: np.ndarray  # (rows, columns) bool


def coco_runs_to_window(*, runs: np.ndarray, height: int) -> MaskWindow | None:
    """Column-major COCO run lengths (background first) decoded into their bounding box, or ``None`` if empty.

    Pixel for pixel what ``pycocotools.mask.decode`` gives inside the box (and nothing outside it),
    at the cost of the box, not of the image. (One sequence of :func:`_runs_to_windows`.)
    """
    return _runs_to_windows(np.asarray(runs, dtype=np.int64), np.array([len(runs)]), height)[0]


def _runs_to_windows(runs: np.ndarray, lengths: np.ndarray, height: int) -> list[MaskWindow | None]:
    """The windows of several run-length sequences laid end to end (sequence i has ``lengths[i]`` runs).

    All sequences are decoded by one set of array operations, so an image's masks cost a few dozen
    numpy calls rather than a few dozen each. The windows are views into one buffer.
    """
    count = len(lengths)
    firsts = np.cumsum(lengths) - lengths  # each sequence's first run
    owner = np.repeat(np.arange(count), lengths)
    totals = np.cumsum(runs, dtype=np.int64)
    before = np.concatenate(([0], totals))[firsts]  # the pixels of the sequences before (an empty one too)
    ends = totals - before[owner]  # the end of each run inside its own sequence
    starts = ends - runs
    foreground = (np.arange(len(runs)) - firsts[owner]) % 2 == 1  # the odd runs of each sequence
    first, last, owner = starts[foreground], ends[foreground], owner[foreground]
    kept = last > first
    first, last, owner = first[kept], last[kept], owner[kept]
    windows: list[MaskWindow | None] = [None] * count
    if not len(first):
        return windows
    first_column, last_column = first // height, (last - 1) // height
    new_window = np.ones(len(owner), dtype=np.bool_)
    np.not_equal(owner[1:], owner[:-1], out=new_window[1:])
    opens = np.flatnonzero(new_window)  # each drawn sequence's first run
    closes = np.append(opens[1:], len(first)) - 1
    # Runs of a sequence follow each other: its first run has the leftmost column, its last the rightmost.
    x0, x1 = first_column[opens], last_column[closes]
    one_column = np.logical_and.reduceat(first_column == last_column, opens)
    # A run that goes on into the next column makes the box as tall as the image.
    y0 = np.where(one_column, np.minimum.reduceat(first % height, opens), 0)
    y1 = np.where(one_column, np.maximum.reduceat((last - 1) % height, opens), height - 1)
    rows, columns = y1 - y0 + 1, x1 - x0 + 1
    sizes = rows * columns
    offsets = np.cumsum(sizes) - sizes  # each window's place in the one buffer, column-major inside
    group = np.cumsum(new_window) - 1  # the window of each run
    # Cut each run into one piece per column it crosses.
    pieces = last_column - first_column + 1
    piece_run = np.repeat(np.arange(len(first)), pieces)
    column = first_column[piece_run] + (np.arange(len(piece_run)) - np.repeat(np.cumsum(pieces) - pieces, pieces))
    top = np.maximum(first[piece_run] - column * height, 0)
    bottom = np.minimum(last[piece_run] - column * height, height)
    window = group[piece_run]
    origin = offsets[window] + (column - x0[window]) * rows[window] - y0[window]  # buffer index of row 0
    # The pieces follow each other in the buffer (windows in order, column-major inside): the buffer is
    # the gaps and the pieces, one repeat of False/True by their lengths (a cumulative sum costs 10x more).
    piece_starts, piece_ends = origin + top, origin + bottom
    lengths_of = np.empty(2 * len(piece_starts) + 1, dtype=np.int64)
    lengths_of[0] = piece_starts[0]
    lengths_of[2:-1:2] = piece_starts[1:] - piece_ends[:-1]
    lengths_of[1::2] = piece_ends - piece_starts
    lengths_of[-1] = int(sizes.sum()) - int(piece_ends[-1])
    alternating = np.zeros(len(lengths_of), dtype=np.bool_)
    alternating[1::2] = True
    inside = np.repeat(alternating, lengths_of)
    for sequence, x, y, offset, size, height_, width_ in zip(
        owner[opens].tolist(),
        x0.tolist(),
        y0.tolist(),
        offsets.tolist(),
        sizes.tolist(),
        rows.tolist(),
        columns.tolist(),
        strict=True,
    ):
        windows[sequence] = MaskWindow(x, y, inside[offset : offset + size].reshape(width_, height_).T)
    return windows


def _pycocotools_strings(polygon_sets: Sequence[list[list[float]]], height: int, width: int) -> list[bytes]:
    """pycocotools' compressed RLE of each set of (checked) polygons: ``frPyObjects`` once for all, ``merge``
    for a set of several parts (one part's RLE is its own merge)."""
    from pycocotools import mask as mask_utils

    rles = mask_utils.frPyObjects([polygon for polygons in polygon_sets for polygon in polygons], height, width)
    strings, position = [], 0
    for polygons in polygon_sets:
        parts = rles[position : position + len(polygons)]
        strings.append(parts[0]["counts"] if len(parts) == 1 else mask_utils.merge(parts)["counts"])
        position += len(polygons)
    return strings


def _pycocotools_strings_runs(strings: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """The run lengths of several compressed RLE strings written by pycocotools, decoded at once.

    Returns the runs laid end to end and the number of runs of each string. The decoding is
    :func:`annonorm.geometry.rle_string_runs`' (5-bit groups, a difference to the run two places
    before from the third run on), per string; the strings come from pycocotools and are not checked.
    """
    data = b"".join(strings)
    if not data:
        return np.zeros(0, dtype=np.int64), np.zeros(len(strings), dtype=np.int64)
    chunks = np.frombuffer(data, dtype=np.uint8).astype(np.int64) - 48
    number_ends = np.flatnonzero((chunks & 0x20) == 0)
    number_starts = np.empty_like(number_ends)
    number_starts[0], number_starts[1:] = 0, number_ends[:-1] + 1
    chunk_counts = number_ends - number_starts + 1
    shifts = 5 * (np.arange(len(chunks)) - np.repeat(number_starts, chunk_counts))
    values = np.add.reduceat((chunks & 0x1F) << shifts, number_starts)
    values = np.where((chunks[number_ends] & 0x10) != 0, values - (np.int64(1) << (5 * chunk_counts)), values)
    string_ends = np.cumsum([len(string) for string in strings])
    lengths = np.diff(np.searchsorted(number_ends, string_ends), prepend=0)
    firsts = np.cumsum(lengths) - lengths
    place = np.arange(len(values)) - np.repeat(firsts, lengths)  # the number's index in its string
    runs = values.copy()
    for chained in (place % 2 == 1, (place % 2 == 0) & (place >= 2)):
        # A sum of the chained values of each parity, restarted at each string (its place 0 never chains).
        sums = np.cumsum(np.where(chained, values, 0))
        runs[chained] = (sums - np.repeat(sums[np.minimum(firsts, len(sums) - 1)], lengths))[chained]
    return runs, lengths


def coco_segmentation_to_window(*, segmentation: Any, height: int, width: int) -> MaskWindow | None:
    """A COCO ``segmentation`` as the :class:`MaskWindow` of its pixels (``None`` when it has none).

    The pixels are pycocotools' (``frPyObjects`` + ``merge`` + ``decode``) exactly. Raises
    :class:`InvalidDataError` (without a file; the caller adds it) for a malformed value.
    """
    try:
        windows = instance_windows([segmentation], height, width)
    except InvalidDataError as exc:
        raise InvalidDataError(exc.message) from None
    return windows[0][1] if windows else None


def instance_windows(segmentations: Sequence[Any], height: int, width: int) -> list[tuple[int, MaskWindow]]:
    """``(k, window)`` of segmentation k (1-based) for each one with pixels; errors located at the 0-based index.

    The pixels are :func:`coco_segmentation_to_window`'s; the image's polygons go through pycocotools
    in one call and every segmentation's runs are decoded together (:func:`_runs_to_windows`).
    """
    if len(segmentations) > MAX_16BIT_INSTANCES:
        raise InvalidDataError(f"{len(segmentations)} instances do not fit a 16-bit mask (at most 65534)")
    polygon_sets: list[list[list[float]]] = []
    polygon_owners: list[int] = []
    rle_runs: dict[int, np.ndarray] = {}
    for index, segmentation in enumerate(segmentations, start=1):
        try:
            if isinstance(segmentation, list):
                if segmentation:
                    polygon_sets.append(_checked_polygons(segmentation))
                    polygon_owners.append(index)
            elif isinstance(segmentation, dict):
                counts, runs = _checked_rle(segmentation, height, width)
                rle_runs[index] = np.asarray(counts, dtype=np.int64) if runs is None else runs
            elif segmentation is not None:
                kind = type(segmentation).__name__
                raise InvalidDataError(f"expected a list of polygons or an RLE object, got {kind}")
        except InvalidDataError as exc:
            raise InvalidDataError(exc.message, location=str(index - 1)) from None
    runs_of: dict[int, np.ndarray] = dict(rle_runs)
    if polygon_sets:
        flat, lengths = _pycocotools_strings_runs(_pycocotools_strings(polygon_sets, height, width))
        for owner, piece in zip(polygon_owners, np.split(flat, np.cumsum(lengths)[:-1]), strict=True):
            runs_of[owner] = piece
    if not runs_of:
        return []
    order = sorted(runs_of)
    sequences = [runs_of[index] for index in order]
    lengths = np.array([len(sequence) for sequence in sequences])
    windows = _runs_to_windows(np.concatenate(sequences), lengths, height)
    return [(index, window) for index, window in zip(order, windows, strict=True) if window is not None]


def _mask_dtype(instances: int) -> type[np.unsignedinteger[Any]]:
    return np.uint8 if instances <= MAX_8BIT_INSTANCES else np.uint16


def _paint(canvas: np.ndarray, top: int, index: int, window: MaskWindow) -> None:
    """Paint ``window``'s pixels with ``index`` into ``canvas``, whose row 0 is image row ``top``."""
    height, width = window.pixels.shape
    start, stop = max(window.y, top), min(window.y + height, top + canvas.shape[0])
    if start < stop:
        region = canvas[start - top : stop - top, window.x : window.x + width]
        # Painted in increasing ``index``, a later window covers an earlier one exactly where the
        # maximum takes it; the maximum runs several times faster than a boolean-mask assignment.
        np.maximum(region, window.pixels[start - window.y : stop - window.y] * canvas.dtype.type(index), out=region)


def render_instance_mask(*, segmentations: Sequence[Any], height: int, width: int) -> np.ndarray:
    """Paint segmentation k (1-based, in order; a later one covers an earlier one) with value k.

    ``None`` entries (boxes without segmentation) paint nothing. The array is ``uint8`` for up to 254
    instances and ``uint16`` above, so the dtype's maximum stays free for void. A malformed
    segmentation raises :class:`InvalidDataError` whose ``location`` is its 0-based index.
    """
    windows = instance_windows(segmentations, height, width)
    canvas = np.zeros((height, width), dtype=_mask_dtype(len(segmentations)))
    for index, window in windows:
        _paint(canvas, 0, index, window)
    return canvas


#: Masks of more bytes than this are written from their windows' rows only (smaller: the whole image at once).
SPARSE_PNG_BYTES = 1 << 22
#: Rows of a large mask composed at once (about a megabyte of pixels).
_PNG_BAND_BYTES = 1 << 20
#: Runs of zero bytes at least this long are written from compressed copies made once.
_ZERO_PIECE = 1 << 12
#: The largest such copy is ``_ZERO_PIECE << _ZERO_PIECE_STEPS`` bytes (1 MB), repeated as needed.
_ZERO_PIECE_STEPS = 8
#: Largest IDAT chunk written.
_PNG_CHUNK_BYTES = 1 << 24


def _png_chunk(kind: bytes, data: bytes | memoryview) -> bytes:
    return struct.pack(">I", len(data)) + kind + bytes(data) + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def _adler32_combine(first: int, second: int, second_length: int) -> int:
    """The Adler-32 of two byte strings one after the other, from their checksums (zlib's adler32_combine)."""
    base = 65521
    remainder = second_length % base
    a = ((first & 0xFFFF) + (second & 0xFFFF) + base - 1) % base
    b = ((first >> 16) + (second >> 16) + remainder * (first & 0xFFFF) + base - remainder) % base
    return (b << 16) | a


class _ScanlineStream:
    """The zlib stream of a PNG's filtered scanlines, in which long runs of zero bytes cost next to nothing.

    Bytes are compressed with zlib's run-length strategy (what mask rows need, and several times
    faster than the default). A run of zeros of ``_ZERO_PIECE`` bytes or more is written as copies of
    a few compressed all-zero pieces, each made once: a piece is compressed right after a zlib full
    flush and ends with one, so it refers to no earlier data and starts and ends byte-aligned, which
    makes the same bytes valid anywhere in the stream at a flush. The checksum is combined arithmetically.
    """

    def __init__(self) -> None:
        # With Z_RLE the level changes neither the time nor the bytes (zlib's deflate_rle ignores it). On
        # COCO-like masks (640x480, "up" filter) the default strategy takes 2.6x the time at level 6 and
        # makes 1.7x the bytes at level 1; the "none" and "sub" filters take as long as "up".
        self.compressor = zlib.compressobj(6, zlib.DEFLATED, -15, 9, zlib.Z_RLE)
        self.out = bytearray(b"\x78\x01")  # zlib header: deflate, 32 KB window
        self.adler = 1
        self.flushed = True
        self.zero = memoryview(bytes(_ZERO_PIECE))
        self.pieces: dict[int, tuple[bytes, int]] = {}

    def feed(self, data: bytes | memoryview) -> None:
        if len(data):
            self.out += self.compressor.compress(data)
            self.adler = zlib.adler32(data, self.adler)
            self.flushed = False

    def zeros(self, count: int) -> None:
        if count < _ZERO_PIECE:
            self.feed(self.zero[:count])
            return
        if not self.flushed:
            self.out += self.compressor.flush(zlib.Z_FULL_FLUSH)
            self.flushed = True
        pieces, rest = divmod(count, _ZERO_PIECE)
        largest, pieces = divmod(pieces, 1 << _ZERO_PIECE_STEPS)
        for _ in range(largest):
            self._piece(_ZERO_PIECE_STEPS)
        for step in range(_ZERO_PIECE_STEPS):
            if pieces >> step & 1:
                self._piece(step)
        self.feed(self.zero[:rest])

    def _piece(self, step: int) -> None:
        length = _ZERO_PIECE << step
        cached = self.pieces.get(step)
        if cached is None:  # made by this compressor, at a flush: its bytes are written now, like a copy later
            data = bytes(length)
            compressed = self.compressor.compress(data) + self.compressor.flush(zlib.Z_FULL_FLUSH)
            cached = self.pieces[step] = (compressed, zlib.adler32(data))
        self.out += cached[0]
        self.adler = _adler32_combine(self.adler, cached[1], length)

    def finish(self) -> bytearray:
        self.out += self.compressor.flush(zlib.Z_FINISH)
        self.out += struct.pack(">I", self.adler)
        return self.out


def _dense_scanlines(
    stream: _ScanlineStream, windows: Sequence[tuple[int, MaskWindow]], height: int, width: int, dtype: np.dtype[Any]
) -> None:
    """The whole image composed at once, every row with PNG's "up" filter (the difference to the row above)."""
    canvas = np.zeros((height, width), dtype=dtype)
    for index, window in windows:
        _paint(canvas, 0, index, window)
    data = canvas.view(np.uint8).reshape(height, -1)
    scanlines = np.empty((height, data.shape[1] + 1), dtype=np.uint8)
    scanlines[:, 0] = 2  # filter type "up"
    scanlines[0, 1:] = data[0]
    np.subtract(data[1:], data[:-1], out=scanlines[1:, 1:])  # uint8 arithmetic wraps, as PNG's filters do
    stream.feed(scanlines.data)


def _dirty_spans(windows: Sequence[tuple[int, MaskWindow]], height: int, width: int) -> np.ndarray:
    """``(row, first column, end column)`` rows, in image order, outside which a filtered row is all zeros.

    With the "up" filter a row differs from zero only where it or the row above has mask pixels: a
    window's columns on its own rows and on the row below it. Overlapping spans of a row are merged.
    """
    rows, firsts, ends = [], [], []
    for _, window in windows:
        covered = np.arange(window.y, min(window.y + window.pixels.shape[0] + 1, height))
        rows.append(covered)
        firsts.append(np.full(len(covered), window.x))
        ends.append(np.full(len(covered), window.x + window.pixels.shape[1]))
    row, first, end = np.concatenate(rows), np.concatenate(firsts), np.concatenate(ends)
    line = width + 1  # rows laid end to end with a gap, so that spans of two rows never merge
    starts = row * line + first
    order = np.argsort(starts, kind="stable")
    starts, stops = starts[order], (row * line + end)[order]
    opens = np.flatnonzero(np.r_[True, starts[1:] > np.maximum.accumulate(stops)[:-1]])
    merged_starts, merged_stops = starts[opens], np.maximum.reduceat(stops, opens)
    merged_rows = merged_starts // line
    return np.stack([merged_rows, merged_starts - merged_rows * line, merged_stops - merged_rows * line], axis=1)


def _sparse_scanlines(
    stream: _ScanlineStream, windows: Sequence[tuple[int, MaskWindow]], height: int, width: int, dtype: np.dtype[Any]
) -> None:
    """The image written from the windows' rows only: rows without mask pixels (filter "none") are zeros.

    Rows holding a span (:func:`_dirty_spans`) are stored with the "up" filter, composed band by
    band from the windows that touch the band; only their spans are filtered and compressed, the
    zeros between them go to :meth:`_ScanlineStream.zeros`. The cost follows the masks' rows.
    """
    item = dtype.itemsize
    stride = 1 + width * item
    band_rows = max(1, _PNG_BAND_BYTES // stride)
    touching: dict[int, list[int]] = {}
    for position, (_, window) in enumerate(windows):
        for band in range(window.y // band_rows, (window.y + window.pixels.shape[0] - 1) // band_rows + 1):
            touching.setdefault(band, []).append(position)
    spans = _dirty_spans(windows, height, width) if windows else np.zeros((0, 3), dtype=np.int64)
    written = 0  # bytes of the scanline stream so far
    current_row = -1
    # The last row of the band before, as bytes. A band skipped (no span) has only zeros, and so has
    # its last row: a row with pixels puts a span on the row below it, and the band below is not skipped.
    above = np.zeros(width * item, dtype=np.uint8)
    band_of = spans[:, 0] // band_rows
    for band in np.unique(band_of).tolist():
        top = band * band_rows
        pixels = np.zeros((min(band_rows, height - top), width), dtype=dtype)
        for position in touching.get(band, ()):
            _paint(pixels, top, *windows[position])
        data = pixels.view(np.uint8).reshape(pixels.shape[0], -1)
        for row, first, end in spans[band_of == band].tolist():
            start = row * stride
            if row != current_row:  # the row's filter byte: "up"
                stream.zeros(start - written)
                stream.feed(b"\x02")
                written, current_row = start + 1, row
            begin = start + 1 + first * item
            stream.zeros(begin - written)
            prior = data[row - top - 1] if row > top else above
            stream.feed(np.subtract(data[row - top, first * item : end * item], prior[first * item : end * item]).data)
            written = begin + (end - first) * item
        above[:] = data[-1]
    stream.zeros(height * stride - written)


def write_instance_mask_png(
    path: Path, *, windows: Sequence[tuple[int, MaskWindow]], height: int, width: int, instances: int
) -> None:
    """Write the instance mask of ``windows`` (``(k, window)`` in increasing k, as :func:`instance_windows`
    gives them; a later one covers an earlier one) as a grayscale PNG.

    8-bit for up to 254 instances, 16-bit above (as :func:`render_instance_mask`); pixel for pixel
    what that function paints. A mask of more than :data:`SPARSE_PNG_BYTES` is written from the
    rows its windows cover (:func:`_sparse_scanlines`), so its cost follows the masks, not the image.
    """
    dtype = np.dtype(_mask_dtype(instances)).newbyteorder(">")  # PNG samples are big-endian
    stream = _ScanlineStream()
    if height * width * dtype.itemsize > SPARSE_PNG_BYTES:
        _sparse_scanlines(stream, windows, height, width, dtype)
    else:
        _dense_scanlines(stream, windows, height, width, dtype)
    view = memoryview(stream.finish())
    header = struct.pack(">IIBBBBB", width, height, 8 * dtype.itemsize, 0, 0, 0, 0)  # grayscale, no interlace
    with path.open("wb") as out:
        out.write(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header))
        for offset in range(0, len(view), _PNG_CHUNK_BYTES):
            out.write(_png_chunk(b"IDAT", view[offset : offset + _PNG_CHUNK_BYTES]))
        out.write(_png_chunk(b"IEND", b""))


def _pixels_to_coco_rle(linear: np.ndarray, height: int, width: int) -> dict[str, Any]:
    """Sorted column-major pixel indices as a compressed COCO RLE, the string ``pycocotools.encode`` makes."""
    from pycocotools import mask as mask_utils

    breaks = np.flatnonzero(np.diff(linear) != 1) + 1
    starts = linear[np.r_[0, breaks]]
    ends = linear[np.r_[breaks - 1, len(linear) - 1]] + 1
    counts = np.empty(2 * len(starts) + 1, dtype=np.int64)
    counts[0] = starts[0]  # 0 when the first pixel is foreground, as pycocotools writes it
    counts[1::2] = ends - starts
    counts[2:-1:2] = starts[1:] - ends[:-1]
    counts[-1] = height * width - ends[-1]
    if counts[-1] == 0:  # pycocotools ends with the last run it saw, never with an empty one
        counts = counts[:-1]
    rle = mask_utils.frPyObjects({"size": [height, width], "counts": counts.tolist()}, height, width)
    return {"size": [height, width], "counts": rle["counts"].decode("ascii")}


def _window_to_coco_rle(mask: np.ndarray, index: int, box: tuple[int, int, int, int]) -> dict[str, Any]:
    """The pixels equal to ``index`` inside ``box`` (y0, y1, x0, x1, inclusive; none outside) as a COCO RLE."""
    y0, y1, x0, x1 = box
    height, width = (int(v) for v in mask.shape)
    inside = np.flatnonzero((mask[y0 : y1 + 1, x0 : x1 + 1] == index).T)  # column-major order, as COCO
    rows = y1 - y0 + 1
    return _pixels_to_coco_rle((x0 + inside // rows) * height + (y0 + inside % rows), height, width)


def instance_mask_to_coco_rle(*, mask: np.ndarray, index: int) -> dict[str, Any] | None:
    """The pixels equal to ``index`` as a compressed COCO RLE (string counts), or ``None`` when there are none."""
    rows, columns = np.nonzero(mask == index)
    if not len(rows):
        return None
    return _window_to_coco_rle(mask, index, (int(rows.min()), int(rows.max()), int(columns.min()), int(columns.max())))


def instance_mask_to_coco_rles(*, mask: np.ndarray, count: int) -> list[dict[str, Any] | None]:
    """:func:`instance_mask_to_coco_rle` of every index 1..count, from one pass over the mask.

    One scan finds the pixels of every instance (a stable sort of their values, a radix sort for
    8- and 16-bit masks); each instance is then encoded from its own bounding box.
    """
    flat = mask.reshape(-1)
    positions = np.flatnonzero(flat)
    values = flat[positions]
    order = np.argsort(values, kind="stable")
    values, positions = values[order], positions[order]
    rows, columns = np.divmod(positions, mask.shape[1])
    bounds = np.searchsorted(values, np.arange(1, count + 2)).tolist()
    rles: list[dict[str, Any] | None] = []
    for index in range(1, count + 1):
        low, high = bounds[index - 1], bounds[index]
        if low == high:
            rles.append(None)
            continue
        r, c = rows[low:high], columns[low:high]
        rles.append(_window_to_coco_rle(mask, index, (int(r.min()), int(r.max()), int(c.min()), int(c.max()))))
    return rles


# ------------------------------------------------------------------------- the instance-mask pipeline


def max_mask_pixels() -> int:
    """Pillow's decompression-bomb limit: a larger mask could not be read back, and would fill memory."""
    from PIL import Image

    return 2 * int(Image.MAX_IMAGE_PIXELS or 0) or 2**62


def _fitting_name(name: str, room: int) -> str:
    """``name``, or when it and ``room`` more bytes exceed a file name's limit, a prefix and a digest of it."""
    raw = name.encode("utf-8", errors="surrogatepass")
    if len(raw) + room <= NAME_MAX_BYTES:
        return name
    digest = hashlib.sha256(raw).hexdigest()[:16]
    prefix = raw[: NAME_MAX_BYTES - room - len(digest) - 1].decode("utf-8", errors="ignore")
    return f"{prefix}~{digest}"


def instance_mask_name(split: str, file_name: str, used: set[str]) -> str:
    """``masks/<split>/<file name without extension>.png``, unique among ``used`` (``a.2.png``...), which
    it joins; a folder or file name over :data:`NAME_MAX_BYTES` is shortened with a digest."""
    path = PurePosixPath(file_name.replace("\\", "/"))
    parts = (path.with_suffix("") if path.suffix else path).parts
    folders = [_fitting_name(part, 0) for part in parts[:-1]]
    number = 1
    while True:  # a.jpg and a.png in one directory: a.png, a.2.png
        ending = ".png" if number == 1 else f".{number}.png"
        candidate = "/".join(["masks", split, *folders, _fitting_name(parts[-1], len(ending)) + ending])
        if candidate not in used:
            used.add(candidate)
            return candidate
        number += 1


def mask_name_error(exc: OSError, file: Path, index: int, image: str) -> OutputError:
    """The error of a mask whose name the file system refuses (``index``: the image's place in the source)."""
    message = f"cannot write the mask of this image: the file system refuses its name ({exc.strerror})"
    return OutputError(message, file=file, location=f"images[{index}].file_name", image=image)


@dataclass
class MaskJob:
    """What a worker needs to draw one image's instance mask."""

    out: str
    height: int
    width: int
    segmentations: list[bytes | None]  # raw JSON of each box's segmentation, None for none
    locations: list[str]  # where each is in the source, for the error
    image: str  # the source's file name, for the error
    index: int  # the image's position in the source


def render_mask_job(job: MaskJob) -> AnnonormError | None:
    """Draw and write one mask; return the problem of a malformed segmentation or an impossible name."""
    try:
        values = [None if raw is None else _ANY.decode(raw) for raw in job.segmentations]
        windows = instance_windows(values, job.height, job.width)
    except InvalidDataError as exc:
        location = job.locations[int(exc.location)] if exc.location is not None else job.locations[0]
        return InvalidDataError(exc.message, location=location, image=job.image)
    try:
        write_instance_mask_png(
            Path(job.out), windows=windows, height=job.height, width=job.width, instances=len(job.segmentations)
        )
    except OSError as exc:
        if exc.errno not in NAME_ERRNOS:
            raise
        return mask_name_error(exc, Path(), job.index, job.image)
    return None


def draw_instance_masks(
    writer: DatasetWriter,
    executor: Executor,
    split: str,
    units: Iterable[tuple[dict[str, Any], MaskJob | None]],
    *,
    file: Path,
    size: int,
    pool_min: int,
) -> int:
    """Write ``split``'s records in order while their masks are drawn (here, or on the engine's ordered
    bounded map once ``size`` jobs reach ``pool_min``); a failed job's record is reported as a problem of
    ``file``. Return how many masks were written."""
    processes = executor.execution.pool_size(size, pool_min)
    written = 0
    pairs = ((unit, unit[1]) for unit in units)
    with contextlib.closing(
        executor.map(render_mask_job, pairs, processes=processes, window=4 * processes + 1)
    ) as drawn:
        for (record, job), failure in drawn:
            if failure is not None:
                failure.file = str(file)  # the worker does not know it
                writer.problem(failure)
                continue
            written += job is not None
            writer.add(split, record, canonical=True)
    return written


def read_instance_mask(path: Path) -> np.ndarray:
    """A single-channel mask PNG as an array; :class:`InvalidDataError` naming ``path`` when it is not one."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            mask = np.asarray(image)
    # missing, truncated, not an image (UnidentifiedImageError is an OSError), or a pixel bomb
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        message = f"cannot read the mask: {exc}; check it with annonorm validate --check-images"
        raise InvalidDataError(message, file=path) from None
    if mask.ndim != 2:
        raise InvalidDataError(f"mask has {mask.shape[2]} channels; expected a single-channel instance mask", file=path)
    return mask
