"""Box formats and coordinate rounding: the one place a source convention becomes annonorm's corners.

A rule of the format (layer 0). annonorm boxes are absolute pixel corners ``x1, y1, x2, y2``
rounded to :data:`COORD_DECIMALS` decimals (:func:`round_coord`). Sources spell boxes otherwise;
the conversions below are written once over four coordinate *columns*: each argument is a Python
float (one box) or a numpy array (one value per box, a column of a table), and the same
arithmetic runs on both, so the scalar call of a converter's per-line reader and the vectorized
call of its columnar reader are one implementation (IEEE float64 either way, bit for bit).

- ``xyxy``: corners, as they are (CSV exports, TFRecord, annonorm itself);
- ``xywh``: top-left corner plus width and height (COCO ``bbox``, VoTT, many CSVs);
- ``cxcywh``: centre plus width and height (YOLO, some CSVs);
- normalized: fractions of the image side (YOLO, Open Images): x by the width, y by the height;
- VOC's 1-based inclusive integer corners (:func:`one_based_to_corners`).

Format version 2 adds the axis-aligned hull of a polygon's rings (:func:`polygon_hull`) and of an
oriented box's four corners (:func:`obb_hull`), both on numpy rows too, and the reading of a
compressed COCO RLE string (:func:`rle_string_runs`), the rule that says whether an ``rle`` decodes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "BOX_FORMATS",
    "COORD_DECIMALS",
    "FLOAT32_MAX",
    "box_float32_problem",
    "corners_to_cxcywh",
    "corners_to_one_based",
    "corners_to_xywh",
    "cxcywh_to_corners",
    "normalize",
    "obb_hull",
    "one_based_to_corners",
    "polygon_hull",
    "rle_string_runs",
    "round_coord",
    "round_coords",
    "scale",
    "to_corners",
    "xywh_to_corners",
]

#: Decimal places kept for coordinates: ``x + w`` artifacts such as 379.09000000000003 never reach a file.
COORD_DECIMALS = 6
#: The largest coordinate or box area the loader can hold (float32: ``numpy.finfo(numpy.float32).max``).
FLOAT32_MAX = 3.4028234663852886e38
#: The box formats :func:`to_corners` reads.
BOX_FORMATS = ("xyxy", "xywh", "cxcywh")

#: A coordinate column: a float (one box) or a numpy array (one value per box).
C = Any

_SCALE = 10.0**COORD_DECIMALS
#: Beyond this (in units of 10**-6), a float64 has no bits left for the sixth decimal: :func:`round_coords`
#: hands such values to :func:`round_coord` rather than trust ``rint(x * 1e6)``.
_EXACT_LIMIT = 2.0**40
#: How close to a tie (``...5`` at the seventh decimal) ``x * 1e6`` may come before the tie is decided exactly.
_TIE_MARGIN = 1e-3


def box_float32_problem(x1: float, y1: float, x2: float, y2: float) -> str | None:
    """Why a box's corners or area would not fit float32 (the loader's type; NaN never does), or ``None``."""
    if not all(abs(v) <= FLOAT32_MAX for v in (x1, y1, x2, y2)):
        return f"the corners must be finite numbers of magnitude at most {FLOAT32_MAX:g}"
    if abs((x2 - x1) * (y2 - y1)) > FLOAT32_MAX:
        return f"the box's area must be at most {FLOAT32_MAX:g}"
    return None


def round_coord(value: float) -> float:
    """Round a coordinate to the format's precision (and turn ``-0.0`` into ``0.0``): THE rounding rule."""
    return round(value, COORD_DECIMALS) + 0.0


def round_coords(values: Any) -> np.ndarray:
    """:func:`round_coord` of every element of an array (a new float64 array of the same shape), vectorized.

    ``rint(x * 1e6) / 1e6`` is the double nearest to the 6-decimal value ``round`` picks unless
    ``x * 1e6`` lies within a hair of a tie or beyond float64's integer precision; those elements
    (rare: none in a million typical coordinates) are rounded by :func:`round_coord` itself, so the
    result equals ``round_coord`` element for element.
    """
    array = np.array(values, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = array * _SCALE
        whole = np.rint(scaled)
        unsure = ~(np.abs(scaled - whole) < 0.5 - _TIE_MARGIN) | ~(np.abs(scaled) < _EXACT_LIMIT)
        rounded = np.divide(whole, _SCALE, out=whole)
        rounded += 0.0  # turns -0.0 into 0.0
    if unsure.any():
        flat, source = rounded.reshape(-1), array.reshape(-1)
        for position in np.flatnonzero(unsure.reshape(-1)).tolist():
            value = float(source[position])
            flat[position] = round_coord(value) if math.isfinite(value) else value
    return rounded


def xywh_to_corners(x: C, y: C, width: C, height: C) -> tuple[C, C, C, C]:
    """Top-left corner plus size (COCO ``bbox``) -> corners."""
    return x, y, x + width, y + height


def corners_to_xywh(x1: C, y1: C, x2: C, y2: C) -> tuple[C, C, C, C]:
    """Corners -> top-left corner plus size (COCO ``bbox``)."""
    return x1, y1, x2 - x1, y2 - y1


def cxcywh_to_corners(cx: C, cy: C, width: C, height: C) -> tuple[C, C, C, C]:
    """Centre plus size (YOLO) -> corners."""
    return cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2


def corners_to_cxcywh(x1: C, y1: C, x2: C, y2: C) -> tuple[C, C, C, C]:
    """Corners -> centre plus size (YOLO)."""
    return (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1


def to_corners(box_format: str, a: C, b: C, c: C, d: C) -> tuple[C, C, C, C]:
    """Four values in ``box_format`` (one of :data:`BOX_FORMATS`) -> corners; :class:`ValueError` for another."""
    if box_format == "xywh":
        return xywh_to_corners(a, b, c, d)
    if box_format == "cxcywh":
        return cxcywh_to_corners(a, b, c, d)
    if box_format == "xyxy":
        return a, b, c, d  # corners as they are: no 1-based shift
    raise ValueError(f"unknown box format {box_format!r}")


def scale(x1: C, y1: C, x2: C, y2: C, width: Any, height: Any) -> tuple[C, C, C, C]:
    """Normalized (fractions of the image side) -> pixels: x by the width, y by the height."""
    return x1 * width, y1 * height, x2 * width, y2 * height


def normalize(x1: C, y1: C, x2: C, y2: C, width: Any, height: Any) -> tuple[C, C, C, C]:
    """Pixels -> fractions of the image side: x by the width, y by the height (the inverse of :func:`scale`)."""
    return x1 / width, y1 / height, x2 / width, y2 / height


def one_based_to_corners(xmin: float, ymin: float, xmax: float, ymax: float) -> tuple[float, float, float, float]:
    """VOC's 1-based inclusive corners as continuous corners ``(x1, y1, x2, y2)`` (one box).

    Pixel column ``xmin - 1`` (0-based) is the first one covered and column ``xmax - 1`` the last,
    so the box's right edge is at ``xmax``. A 0 (written by 0-based tools) is clamped.
    """
    return max(xmin - 1.0, 0.0), max(ymin - 1.0, 0.0), float(xmax), float(ymax)


def corners_to_one_based(x1: float, y1: float, x2: float, y2: float) -> tuple[int, int, int, int]:
    """Corners on VOC's 1-based inclusive integer grid ``(xmin, ymin, xmax, ymax)`` (one box).

    The inverse of :func:`one_based_to_corners`, rounded to whole pixels; a box narrower than one
    pixel (which the grid cannot hold: ``xmax >= xmin``) is widened to one pixel.
    """
    xmin, ymin = round(x1) + 1, round(y1) + 1
    return xmin, ymin, max(round(x2), xmin), max(round(y2), ymin)


def obb_hull(corners: Any) -> tuple[C, C, C, C]:
    """The axis-aligned hull ``(x1, y1, x2, y2)`` of an oriented box's 4 corners ``[x1, y1, ..., x4, y4]``.

    ``corners`` is one box (a sequence of 8 numbers: floats come back) or an ``(N, 8)`` array (one
    row per box: four columns come back).
    """
    array = np.asarray(corners, dtype=np.float64)
    xs, ys = array[..., 0::2], array[..., 1::2]
    hull = xs.min(axis=-1), ys.min(axis=-1), xs.max(axis=-1), ys.max(axis=-1)
    if array.ndim == 1:
        return float(hull[0]), float(hull[1]), float(hull[2]), float(hull[3])
    return hull


def polygon_hull(rings: Any) -> tuple[C, C, C, C]:
    """The axis-aligned hull ``(x1, y1, x2, y2)`` of a polygon's rings (each a flat ``[x1, y1, x2, y2, ...]``).

    ``rings`` is one polygon (a list of rings: floats come back) or a 2-D array whose rows are rings
    of one length each (the hull of each row: four columns come back).
    """
    if isinstance(rings, np.ndarray) and rings.ndim == 2:
        return obb_hull(rings)  # the same arithmetic: the extremes of the even and the odd columns
    flat = np.concatenate([np.asarray(ring, dtype=np.float64) for ring in rings])
    return obb_hull(flat)


def rle_string_runs(counts: str | bytes) -> np.ndarray:
    """The run lengths (int64) of a compressed COCO RLE string, read as pycocotools' ``rleFrString`` reads them.

    The string stores each run length in 5-bit groups, least significant first, as characters offset
    by 48; bit 0x20 says another group follows and bit 0x10 of the last group is the sign. From the
    third run on, the value is stored as a difference to the run two places before. Decoded at numpy
    speed. Raises :class:`ValueError` for a string that is not one (pycocotools would read garbage,
    or beyond its buffer).
    """
    if isinstance(counts, str):
        try:
            data = counts.encode("ascii")
        except UnicodeEncodeError as exc:
            raise ValueError(f"RLE counts string holds the invalid character {exc.object[exc.start]!r}") from None
    else:
        data = bytes(counts)
    chunks = np.frombuffer(data, dtype=np.uint8).astype(np.int64) - 48
    invalid = (chunks < 0) | (chunks >= 64)
    if invalid.any():
        raise ValueError(f"RLE counts string holds the invalid character {chr(data[int(np.argmax(invalid))])!r}")
    if not len(chunks):
        return np.zeros(0, dtype=np.int64)
    more = (chunks & 0x20) != 0
    if more[-1]:
        raise ValueError("RLE counts string ends in the middle of a number")
    ends = np.flatnonzero(~more)
    starts = np.r_[0, ends[:-1] + 1]
    lengths = ends - starts + 1
    if lengths.max() > 7:  # 35 bits: pycocotools holds run lengths in 32
        raise ValueError("RLE counts string holds a number too large for a run length")
    shifts = 5 * (np.arange(len(chunks)) - np.repeat(starts, lengths))
    values = np.add.reduceat((chunks & 0x1F) << shifts, starts)
    values = np.where((chunks[ends] & 0x10) != 0, values - (np.int64(1) << (5 * lengths)), values)
    runs = values.copy()
    runs[1::2] = np.cumsum(values[1::2])
    runs[2::2] = np.cumsum(values[2::2])
    if (runs < 0).any():
        raise ValueError("RLE counts string decodes to a negative run length")
    if (runs >= 1 << 32).any():
        raise ValueError("RLE counts string decodes to a run length beyond 32 bits")
    return runs


def fraction_points(values: Sequence[float], width: int, height: int) -> list[float]:
    """Fractions ``x y x y ...`` as pixels: each clipped to 0..1, x by the width, y by the height, rounded by
    :func:`round_coords` (a polygon row's dozens of numbers rounded one by one cost half a reader's time)."""
    sides = np.resize(np.array([width, height], dtype=np.float64), len(values))
    return round_coords(np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0) * sides).tolist()
