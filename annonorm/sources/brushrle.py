"""Label Studio's brush run-length code (from thi.ng's rle-pack): boolean masks to and from its bytes.

A Label Studio ``brushlabels`` result stores the RGBA canvas of the image as a bit stream, most
significant bit first: 32 bits the number of values (``height * width * 4``), 5 bits the word size - 1,
four 4-bit run-length sizes - 1; then chunks: 1 bit "repeat", 2 bits choosing one of the four
run-length sizes, that many bits ``n``; a repeat chunk is one word for ``n + 1`` values, else ``n + 1``
words follow. The stream is padded with zero bits to a whole byte. A pixel is in the mask where its
alpha is >= :data:`ALPHA_THRESHOLD`; :func:`mask_to_ls_rle` writes a painted pixel as 255 in all four
channels (as Label Studio's converter does) and the rest as 0. :func:`ls_rle_to_coco_rle` and
:func:`coco_rle_to_ls_rle` go between it and COCO's compressed RLE (pycocotools' string).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from annonorm.masks import coco_rle_string_runs, instance_mask_to_coco_rle

__all__ = [
    "ALPHA_THRESHOLD",
    "MAX_MASK_PIXELS",
    "coco_rle_to_ls_rle",
    "coco_rle_to_mask",
    "ls_rle_to_coco_rle",
    "ls_rle_to_mask",
    "mask_bounds",
    "mask_to_ls_rle",
]

#: Brush masks larger than this many pixels are refused before decoding (a 32-bit count would allocate GBs).
MAX_MASK_PIXELS = 1 << 28
#: A pixel belongs to a brush mask where its alpha is at least this (strokes are antialiased at the edge).
ALPHA_THRESHOLD = 128
#: The run-length sizes (bits) the encoder declares: a chunk counts up to 2**16 values.
RUN_SIZES = (4, 8, 12, 16)
WORD_BITS = 8


def ls_rle_to_mask(*, rle: Sequence[int], height: int, width: int) -> np.ndarray:
    """A Label Studio brush ``rle`` as a boolean ``height`` x ``width`` mask (alpha >= :data:`ALPHA_THRESHOLD`).

    Raises :class:`ValueError` for a stream that is truncated, overruns or counts another size.
    """
    if height * width > MAX_MASK_PIXELS:
        raise ValueError(f"a {width}x{height} brush mask is larger than {MAX_MASK_PIXELS} pixels")
    if any(not 0 <= b <= 255 for b in rle):
        raise ValueError("expected bytes (integers 0..255)")
    data = bytes(rle)
    bits = format(int.from_bytes(data, "big"), f"0{len(data) * 8}b") if data else ""
    position = 0

    def read(size: int) -> int:
        nonlocal position
        if position + size > len(bits):
            raise ValueError("the run-length code is truncated")
        position += size
        return int(bits[position - size : position], 2)

    total = read(32)
    if total != height * width * 4:
        raise ValueError(f"it codes {total} values; expected {height}x{width} RGBA = {height * width * 4}")
    word = read(5) + 1
    run_sizes = [read(4) + 1 for _ in range(4)]
    values = np.zeros(total, dtype=np.uint8 if word <= 8 else np.uint32)
    weights = 1 << np.arange(word - 1, -1, -1, dtype=np.uint64)
    index = 0
    while index < total:
        repeat = read(1)
        end = index + 1 + read(run_sizes[read(2)])
        if end > total:
            raise ValueError(f"a run passes the end of the {total} values")
        if repeat:
            values[index:end] = min(read(word), np.iinfo(values.dtype).max)
        else:
            count = end - index
            read(count * word)  # advances and checks the length; the words are decoded together below
            chunk = np.frombuffer(bits[position - count * word : position].encode(), dtype=np.uint8) - 48
            words = chunk.reshape(count, word).astype(np.uint64) @ weights
            values[index:end] = np.minimum(words, np.iinfo(values.dtype).max)
        index = end
    return values.reshape(height, width, 4)[:, :, 3] >= ALPHA_THRESHOLD


def mask_to_ls_rle(*, mask: np.ndarray) -> list[int]:
    """A boolean ``height`` x ``width`` mask as Label Studio brush ``rle`` bytes (the inverse of
    :func:`ls_rle_to_mask`): every run of equal values is one repeat chunk (split at 2**16 values)."""
    height, width = mask.shape
    if height * width > MAX_MASK_PIXELS:
        raise ValueError(f"a {width}x{height} brush mask is larger than {MAX_MASK_PIXELS} pixels")
    # Each pixel is 4 equal values, so the runs of values are the runs of pixels, 4 times as long.
    flat = np.asarray(mask, dtype=bool).reshape(-1)
    starts = np.flatnonzero(np.r_[True, flat[1:] != flat[:-1]]) if flat.size else np.zeros(0, dtype=np.int64)
    lengths = np.diff(np.r_[starts, flat.size]) * 4
    head = [format(flat.size * 4, "032b"), format(WORD_BITS - 1, "05b")]
    head += [format(size - 1, "04b") for size in RUN_SIZES]
    chunks: list[str] = []
    longest = 1 << RUN_SIZES[-1]
    for start, length in zip(starts.tolist(), lengths.tolist(), strict=True):
        word = format(255 if flat[start] else 0, f"0{WORD_BITS}b")
        while length:
            count = min(length, longest)
            choice = next(i for i, size in enumerate(RUN_SIZES) if count <= 1 << size)
            size = RUN_SIZES[choice]
            chunks.append(f"1{choice:02b}{count - 1:0{size}b}{word}")
            length -= count
    bits = "".join(head + chunks)
    bits += "0" * (-len(bits) % 8)
    return list(int(bits, 2).to_bytes(len(bits) // 8, "big"))


def coco_rle_to_mask(*, rle: Mapping[str, Any]) -> np.ndarray:
    """A compressed COCO ``rle`` (``size`` ``[height, width]``, column-major runs, background first) as a
    boolean mask. Raises :class:`ValueError` when its runs do not cover ``size``."""
    height, width = (int(v) for v in rle["size"])
    runs = coco_rle_string_runs(counts=rle["counts"])
    flat = np.repeat(np.arange(len(runs)) % 2 == 1, runs)
    if flat.size != height * width:
        raise ValueError(f"the rle counts {flat.size} pixels; expected {height}x{width} = {height * width}")
    return flat.reshape(width, height).T


def mask_bounds(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    """The pixel-edge bounding box ``(x1, y1, x2, y2)`` of a mask's pixels, None when it has none."""
    rows, columns = np.nonzero(mask)
    if not len(rows):
        return None
    return float(columns.min()), float(rows.min()), float(columns.max() + 1), float(rows.max() + 1)


def ls_rle_to_coco_rle(*, rle: Sequence[int], height: int, width: int) -> tuple[dict[str, Any], np.ndarray]:
    """A brush ``rle`` as the COCO ``rle`` pycocotools' ``encode`` makes of the same pixels (an empty mask
    too), and the boolean mask. Raises :class:`ValueError` as :func:`ls_rle_to_mask` does."""
    mask = ls_rle_to_mask(rle=rle, height=height, width=width)
    coco = instance_mask_to_coco_rle(mask=mask.astype(np.uint8), index=1)
    if coco is None:  # pycocotools' code of an empty mask: one run of the whole image
        from pycocotools import mask as mask_utils

        empty = mask_utils.encode(np.zeros((height, width), dtype=np.uint8, order="F"))
        coco = {"size": [height, width], "counts": empty["counts"].decode("ascii")}
    return coco, mask


def coco_rle_to_ls_rle(*, rle: Mapping[str, Any]) -> list[int]:
    """A COCO ``rle`` as brush ``rle`` bytes of its ``size``."""
    return mask_to_ls_rle(mask=coco_rle_to_mask(rle=rle))
