"""COCO masks at the cost of the masks: windowed decoding, the mask PNG writer, the export's RLE encoder.

Every property compares with pycocotools used the plain way (``frPyObjects`` + ``merge`` + ``decode``
on the full canvas, ``encode`` of the full binary mask), computed here without annonorm's code.
"""

from __future__ import annotations

import math
import struct
import tempfile
import zlib
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pycocotools import mask as mask_utils

import annonorm.masks as masks
from annonorm.errors import InvalidDataError
from annonorm.masks import (
    MaskWindow,
    coco_rle_string_runs,
    coco_segmentation_to_window,
    instance_mask_to_coco_rle,
    instance_mask_to_coco_rles,
    render_instance_mask,
    write_instance_mask_png,
)


def _reference(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    """pycocotools on the full canvas, as every COCO tool rasterizes polygons."""
    return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))).astype(bool)


def _on_canvas(window: MaskWindow | None, height: int, width: int) -> np.ndarray:
    canvas = np.zeros((height, width), dtype=bool)
    if window is not None:
        rows, columns = window.pixels.shape
        assert window.x >= 0 and window.y >= 0 and window.x + columns <= width and window.y + rows <= height
        canvas[window.y : window.y + rows, window.x : window.x + columns] = window.pixels
    return canvas


@st.composite
def _canvas_and_polygons(draw: st.DrawFn) -> tuple[int, int, list[list[float]]]:
    """A canvas and 1-3 polygons, free or snapped to the edges, often partly (or wholly) outside."""
    height, width = draw(st.integers(1, 48)), draw(st.integers(1, 48))
    decimals = draw(st.sampled_from([0, 1, 2, None]))  # None: any float

    def coordinate(limit: int) -> st.SearchStrategy[float]:
        anywhere = st.floats(-0.3 * limit - 3, 1.3 * limit + 3, allow_nan=False)
        edges = st.sampled_from([0.0, float(limit), float(limit) - 0.5, -0.5, 0.5, limit + 0.5])
        values = st.one_of(anywhere, edges)
        return values if decimals is None else values.map(lambda v: round(v, decimals))

    polygons = []
    for _ in range(draw(st.integers(1, 3))):
        points = draw(st.integers(3, 9))
        ring = []
        for _ in range(points):
            ring += [draw(coordinate(width)), draw(coordinate(height))]
        polygons.append(ring)
    return height, width, polygons


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=_canvas_and_polygons())
def test_a_polygon_decoded_in_its_window_is_pycocotools_full_canvas_mask(
    case: tuple[int, int, list[list[float]]],
) -> None:
    height, width, polygons = case
    window = coco_segmentation_to_window(segmentation=polygons, height=height, width=width)
    expected = _reference(polygons, height, width)
    assert np.array_equal(_on_canvas(window, height, width), expected)
    if window is not None:  # the window is the bounding box: every edge row and column holds a pixel
        pixels = window.pixels
        assert pixels[0].any() and pixels[-1].any() and pixels[:, 0].any() and pixels[:, -1].any()
    else:
        assert not expected.any()


def test_decimal_coordinates_where_translating_the_polygon_would_go_wrong() -> None:
    """pycocotools scales by 5 in floating point: 5 * 851.9 + 0.5 is 4260.0 but 5 * 151.9 + 0.5 < 760."""
    polygon = [780.2, 192.0, 844.0, 127.0, 851.9, 195.4, 827.4, 129.5, 837.3, 185.1, 822.4, 140.8, 853.7, 195.8]
    window = coco_segmentation_to_window(segmentation=[polygon], height=3000, width=3000)
    assert np.array_equal(_on_canvas(window, 3000, 3000), _reference([polygon], 3000, 3000))


@st.composite
def _binary_mask(draw: st.DrawFn) -> np.ndarray:
    height, width = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    kind = draw(st.sampled_from(["noise", "block", "full", "empty", "columns"]))
    mask = np.zeros((height, width), dtype=np.uint8)
    if kind == "noise":
        seed = draw(st.integers(0, 2**32 - 1))
        mask = (np.random.default_rng(seed).random((height, width)) < draw(st.floats(0, 1))).astype(np.uint8)
    elif kind == "block":
        y0, x0 = draw(st.integers(0, height - 1)), draw(st.integers(0, width - 1))
        mask[y0 : draw(st.integers(y0 + 1, height)), x0 : draw(st.integers(x0 + 1, width))] = 1
    elif kind == "full":
        mask[:] = 1
    elif kind == "columns":  # runs that go on from the bottom of one column into the next
        x0 = draw(st.integers(0, width - 1))
        mask[:, x0 : draw(st.integers(x0 + 1, width))] = 1
        mask[: draw(st.integers(0, height)), x0] = 0
    return mask


@settings(max_examples=300, deadline=None)
@given(mask=_binary_mask(), compressed=st.booleans())
def test_an_rle_decoded_in_its_window_is_pycocotools_decode(mask: np.ndarray, compressed: bool) -> None:
    height, width = mask.shape
    rle = mask_utils.encode(np.asfortranarray(mask))
    if compressed:
        segmentation: dict[str, Any] = {"size": [height, width], "counts": rle["counts"].decode("ascii")}
    else:  # the uncompressed form COCO ships its crowds in: runs along the columns, background first
        counts, current, length = [], 0, 0
        for value in mask.T.reshape(-1).tolist():
            if value != current:
                counts.append(length)
                current, length = value, 0
            length += 1
        counts.append(length)
        segmentation = {"size": [height, width], "counts": counts}
    window = coco_segmentation_to_window(segmentation=segmentation, height=height, width=width)
    assert np.array_equal(_on_canvas(window, height, width), mask_utils.decode(rle).astype(bool))
    assert int(coco_rle_string_runs(counts=rle["counts"]).sum()) == height * width


@pytest.mark.parametrize(
    ("counts", "message"),
    [
        ("0é", "invalid character"),
        ("0 ", "invalid character"),
        ("0`", "ends in the middle"),
        ("0ooooooo1", "too large"),
    ],
)
def test_malformed_rle_strings_are_refused(counts: str, message: str) -> None:
    with pytest.raises(InvalidDataError, match=message):
        coco_rle_string_runs(counts=counts)


@st.composite
def _instances(draw: st.DrawFn) -> tuple[int, int, list[Any]]:
    """Several segmentations of one image (polygons, RLEs, none), overlapping, in painting order."""
    height, width = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    segmentations: list[Any] = []
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["polygon", "polygon", "rle", "none"]))
        if kind == "none":
            segmentations.append(None)
        elif kind == "rle":
            seed = draw(st.integers(0, 2**32 - 1))
            mask = (np.random.default_rng(seed).random((height, width)) < 0.3).astype(np.uint8)
            counts = mask_utils.encode(np.asfortranarray(mask))["counts"].decode("ascii")
            segmentations.append({"size": [height, width], "counts": counts})
        else:
            x, y = draw(st.floats(-5, width + 5)), draw(st.floats(-5, height + 5))
            size = draw(st.floats(0.5, max(width, height)))
            points = draw(st.integers(3, 7))
            ring = []
            for point in range(points):
                angle = 2 * math.pi * point / points
                ring += [round(x + size * math.cos(angle), 2), round(y + size * math.sin(angle), 2)]
            segmentations.append([ring])
    return height, width, segmentations


def _painted_by_pycocotools(segmentations: list[Any], height: int, width: int, dtype: Any) -> np.ndarray:
    canvas = np.zeros((height, width), dtype=dtype)
    for index, segmentation in enumerate(segmentations, start=1):
        if segmentation is None:
            continue
        if isinstance(segmentation, list):
            decoded = _reference(segmentation, height, width)
        else:
            decoded = mask_utils.decode({"size": segmentation["size"], "counts": segmentation["counts"].encode()})
        canvas[decoded.astype(bool)] = index
    return canvas


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=_instances(), sparse=st.booleans(), piece=st.sampled_from([1, 3, 16, 4096]))
def test_the_mask_png_holds_exactly_the_instances_pycocotools_paints(
    case: tuple[int, int, list[Any]], sparse: bool, piece: int
) -> None:
    """Both ways of writing (the whole image, or only the windows' rows) read back as the painted mask."""
    height, width, segmentations = case
    expected = _painted_by_pycocotools(segmentations, height, width, np.uint8)
    assert np.array_equal(render_instance_mask(segmentations=segmentations, height=height, width=width), expected)
    windows = masks.instance_windows(segmentations, height, width)
    with (
        tempfile.TemporaryDirectory() as directory,
        mock.patch.object(masks, "SPARSE_PNG_BYTES", -1 if sparse else 1 << 40),
        mock.patch.object(masks, "_ZERO_PIECE", piece),
        mock.patch.object(masks, "_PNG_BAND_BYTES", 64),  # several bands even on a small image
    ):
        path = Path(directory) / "m.png"
        write_instance_mask_png(path, windows=windows, height=height, width=width, instances=len(segmentations))
        with Image.open(path) as image:
            assert image.mode == "L"
        assert np.array_equal(_read_png(path), expected)


def _read_png(path: Path) -> np.ndarray:
    """The pixels of a PNG, after checking every chunk's CRC and the zlib stream's own checksum.

    Pillow stops reading once it has the pixels, so a wrong Adler-32 at the end would go unnoticed.
    """
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, compressed = 8, bytearray()
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind, body = data[position + 4 : position + 8], data[position + 8 : position + 8 + length]
        assert struct.unpack(">I", data[position + 8 + length : position + 12 + length])[0] == zlib.crc32(kind + body)
        if kind == b"IDAT":
            compressed += body
        position += 12 + length
    decompressor = zlib.decompressobj()
    raw = decompressor.decompress(bytes(compressed))
    assert decompressor.eof and not decompressor.unused_data  # zlib checked the Adler-32
    with Image.open(path) as image:
        pixels = np.asarray(image)
    assert len(raw) == pixels.shape[0] * (1 + pixels.shape[1] * pixels.dtype.itemsize)
    return pixels


@pytest.mark.parametrize("sparse", [False, True])
def test_more_than_254_instances_write_a_16_bit_png_in_both_ways(tmp_path: Path, sparse: bool) -> None:
    height, width = 70, 90
    rng = np.random.default_rng(5)
    segmentations: list[Any] = []
    for _ in range(300):
        x, y = rng.uniform(-3, width), rng.uniform(-3, height)
        segmentations.append([[x, y, x + 6.5, y, x + 3, y + 5.5]])
    expected = _painted_by_pycocotools(segmentations, height, width, np.uint16)
    assert expected.max() > 255
    windows = masks.instance_windows(segmentations, height, width)
    with (
        mock.patch.object(masks, "SPARSE_PNG_BYTES", -1 if sparse else 1 << 40),
        mock.patch.object(masks, "_ZERO_PIECE", 8),
    ):
        write_instance_mask_png(tmp_path / "m.png", windows=windows, height=height, width=width, instances=300)
    assert np.array_equal(_read_png(tmp_path / "m.png"), expected)


def test_a_large_empty_or_sparse_mask_is_written_from_its_windows(tmp_path: Path) -> None:
    """5000 x 4000 pixels, one small polygon near a corner and one crossing an edge: exact, and a small file."""
    height, width = 4000, 5000
    segmentations = [[[4990.5, 3990.2, 5003.0, 3995.0, 4995.1, 4004.0]], None, [[10.2, 20.7, 60.9, 25.3, 30.4, 90.8]]]
    windows = masks.instance_windows(segmentations, height, width)
    write_instance_mask_png(tmp_path / "m.png", windows=windows, height=height, width=width, instances=3)
    assert (tmp_path / "m.png").stat().st_size < 100_000
    expected = _painted_by_pycocotools(segmentations, height, width, np.uint8)
    assert np.array_equal(_read_png(tmp_path / "m.png"), expected)
    write_instance_mask_png(tmp_path / "empty.png", windows=[], height=height, width=width, instances=0)
    empty = _read_png(tmp_path / "empty.png")
    assert empty.shape == (height, width) and not empty.any()


@st.composite
def _instance_mask(draw: st.DrawFn) -> tuple[np.ndarray, int]:
    height, width = draw(st.integers(1, 30)), draw(st.integers(1, 30))
    count = draw(st.integers(0, 300))
    seed = draw(st.integers(0, 2**32 - 1))
    dtype = np.uint8 if count <= 254 else np.uint16
    values = np.random.default_rng(seed).integers(0, count + 3, size=(height, width))  # values beyond count: no box
    return values.astype(dtype), count


@settings(max_examples=200, deadline=None)
@given(case=_instance_mask())
def test_the_export_encodes_each_instance_as_pycocotools_encode(case: tuple[np.ndarray, int]) -> None:
    mask, count = case
    encoded = instance_mask_to_coco_rles(mask=mask, count=count)
    assert len(encoded) == count
    for index, rle in enumerate(encoded, start=1):
        binary = mask == index
        if not binary.any():
            assert rle is None
            continue
        reference = mask_utils.encode(np.asfortranarray(binary, dtype=np.uint8))
        assert rle == {"size": list(mask.shape), "counts": reference["counts"].decode("ascii")}
        assert instance_mask_to_coco_rle(mask=mask, index=index) == rle
