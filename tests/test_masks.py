"""One image's masks decoded together: every segmentation of an image in one pass, pixel for pixel pycocotools'.

The reference is pycocotools used the plain way on the full canvas (``frPyObjects`` + ``merge`` +
``decode`` for each segmentation, painted with its 1-based index, a later one over an earlier one),
computed here without annonorm's code.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pycocotools import mask as mask_utils

from annonorm import masks
from annonorm.errors import InvalidDataError
from annonorm.geometry import rle_string_runs


def _pycocotools_mask(segmentation: Any, height: int, width: int) -> np.ndarray:
    """One segmentation on the full canvas, as ``COCO.annToMask`` draws it."""
    if isinstance(segmentation, list):
        # A 4-number polygon is two points: repeated first point (pycocotools would take it for a box).
        polygons = [ring + ring[:2] if len(ring) == 4 else ring for ring in segmentation]
        rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    elif isinstance(segmentation["counts"], list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = {"size": segmentation["size"], "counts": segmentation["counts"].encode("ascii")}
    return mask_utils.decode(rle).astype(bool)


def _painted(segmentations: list[Any], height: int, width: int) -> np.ndarray:
    dtype = np.uint8 if len(segmentations) <= masks.MAX_8BIT_INSTANCES else np.uint16
    canvas = np.zeros((height, width), dtype=dtype)
    for index, segmentation in enumerate(segmentations, start=1):
        if segmentation:
            canvas[_pycocotools_mask(segmentation, height, width)] = index
    return canvas


def _ring(draw: st.DrawFn, height: int, width: int) -> list[float]:
    """A star-shaped ring around a point that may lie outside the canvas, 2 decimals or any float."""
    x, y = draw(st.floats(-6, width + 6)), draw(st.floats(-6, height + 6))
    radius = draw(st.floats(0.3, max(width, height)))
    points = draw(st.integers(2, 12))  # 2 points: a 4-number polygon, which pycocotools would take for a box
    decimals = draw(st.sampled_from([2, None]))
    ring: list[float] = []
    for point in range(points):
        angle = 2 * math.pi * point / points + draw(st.floats(0, 0.4))
        scale = radius * draw(st.floats(0.4, 1.0))
        for value in (x + scale * math.cos(angle), y + scale * math.sin(angle)):
            ring.append(value if decimals is None else round(value, decimals))
    return ring


@st.composite
def _image(draw: st.DrawFn) -> tuple[int, int, list[Any]]:
    """One image's segmentations: polygons of one or several parts, RLE (list or string counts), none, empty."""
    height, width = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    segmentations: list[Any] = []
    for _ in range(draw(st.integers(0, 10))):
        kind = draw(st.sampled_from(["polygon", "polygon", "parts", "list rle", "string rle", "none", "empty"]))
        if kind in ("polygon", "parts"):
            parts = 1 if kind == "polygon" else draw(st.integers(2, 3))
            segmentations.append([_ring(draw, height, width) for _ in range(parts)])
        elif kind in ("list rle", "string rle"):
            seed = draw(st.integers(0, 2**32 - 1))
            share = draw(st.sampled_from([0.0, 0.05, 0.5, 1.0]))
            pixels = (np.random.default_rng(seed).random((height, width)) < share).astype(np.uint8)
            encoded = mask_utils.encode(np.asfortranarray(pixels))
            if kind == "string rle":
                segmentations.append({"size": [height, width], "counts": encoded["counts"].decode("ascii")})
            else:  # the same runs uncompressed, as COCO ships crowds
                runs = rle_string_runs(encoded["counts"]).tolist()
                assert sum(runs) == height * width
                segmentations.append({"size": [height, width], "counts": runs})
        else:
            segmentations.append(None if kind == "none" else [])
    return height, width, segmentations


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=_image())
def test_an_images_windows_decoded_together_paint_what_pycocotools_paints(case: tuple[int, int, list[Any]]) -> None:
    height, width, segmentations = case
    expected = _painted(segmentations, height, width)
    assert np.array_equal(masks.render_instance_mask(segmentations=segmentations, height=height, width=width), expected)
    windows = masks.instance_windows(segmentations, height, width)
    # One window per segmentation with pixels, in order, each exactly that segmentation's box.
    drawn = [k for k, segmentation in enumerate(segmentations, 1) if segmentation and np.any(expected == k)]
    assert [k for k, _ in windows] == sorted(k for k, _ in windows)
    for k, window in windows:
        alone = _pycocotools_mask(segmentations[k - 1], height, width)
        columns = np.flatnonzero(alone.any(axis=0))
        assert (window.x, window.x + window.pixels.shape[1] - 1) == (columns.min(), columns.max())
        box = np.zeros_like(alone)
        box[window.y : window.y + window.pixels.shape[0], window.x : window.x + window.pixels.shape[1]] = window.pixels
        assert np.array_equal(box, alone)
    assert set(drawn) <= {k for k, _ in windows}
    assert {k for k, _ in windows} == {
        k for k, s in enumerate(segmentations, 1) if s and _pycocotools_mask(s, height, width).any()
    }


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=_image())
def test_the_png_of_an_image_is_the_pycocotools_composed_mask(
    case: tuple[int, int, list[Any]], tmp_path_factory: Any
) -> None:
    height, width, segmentations = case
    path = Path(tmp_path_factory.mktemp("png")) / "m.png"
    windows = masks.instance_windows(segmentations, height, width)
    masks.write_instance_mask_png(path, windows=windows, height=height, width=width, instances=len(segmentations))
    with Image.open(path) as image:
        assert np.array_equal(np.asarray(image), _painted(segmentations, height, width))


@settings(max_examples=100, deadline=None)
@given(
    height=st.integers(1, 60),
    width=st.integers(1, 60),
    seeds=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=6),
)
def test_strings_decoded_together_are_each_strings_runs(height: int, width: int, seeds: list[int]) -> None:
    """The batch decoder of pycocotools' strings agrees with the one-string rule, string by string."""
    strings = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        pixels = (rng.random((height, width)) < rng.choice([0.0, 0.1, 0.5, 0.95])).astype(np.uint8)
        strings.append(mask_utils.encode(np.asfortranarray(pixels))["counts"])
    flat, lengths = masks._pycocotools_strings_runs(strings)
    pieces = np.split(flat, np.cumsum(lengths)[:-1])
    assert len(pieces) == len(strings)
    for piece, string in zip(pieces, strings, strict=True):
        assert piece.tolist() == rle_string_runs(string).tolist()


def test_many_instances_one_image_paint_a_16_bit_mask_like_pycocotools() -> None:
    height, width = 50, 70
    rng = np.random.default_rng(3)
    segmentations: list[Any] = []
    for _ in range(300):
        x, y = rng.uniform(-3, width), rng.uniform(-3, height)
        segmentations.append([[x, y, x + 7.5, y + 1, x + 3, y + 6.5], [x + 1, y + 1, x + 4, y + 1, x + 2, y + 3]])
    expected = _painted(segmentations, height, width)
    assert expected.dtype == np.uint16 and expected.max() > 255
    assert np.array_equal(masks.render_instance_mask(segmentations=segmentations, height=height, width=width), expected)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ([[1, 2, True, 4, 5, 6]], "polygon [0]: expected a list of numbers"),
        ([[1, 2, 3, 4, 5]], "polygon [0]: expected an even count"),
        ([[1, 2, 3, 4, 10**400, 6]], "polygon [0]: coordinates must be finite"),
        ({"size": [5, 5], "counts": [3, 4]}, "RLE counts cover 7 pixels"),
        ("nonsense", "expected a list of polygons or an RLE object, got str"),
    ],
)
def test_a_bad_segmentation_among_good_ones_is_named_by_its_place(bad: Any, message: str) -> None:
    good = [[0.5, 0.5, 4.0, 0.5, 2.0, 4.0]]
    with pytest.raises(InvalidDataError) as raised:
        masks.instance_windows([good, None, good, bad, good], 5, 5)
    assert raised.value.location == "3"
    assert message in raised.value.message
