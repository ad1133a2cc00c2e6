"""Box formats and rounding exist once (annonorm.geometry): a scalar call is a one-row call, bit for bit."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from annonorm import geometry
from annonorm.geometry import (
    corners_to_cxcywh,
    corners_to_one_based,
    corners_to_xywh,
    cxcywh_to_corners,
    normalize,
    one_based_to_corners,
    round_coord,
    round_coords,
    scale,
    to_corners,
    xywh_to_corners,
)

#: Values at a tie of the sixth decimal, where ``rint(x * 1e6)`` and ``round(x, 6)`` may part.
TIES = st.integers(0, 10**10).map(lambda k: (k + 0.5) / 1e6)
COORDS = st.one_of(
    st.floats(-1e12, 1e12, allow_nan=False, allow_infinity=False),
    st.floats(allow_nan=False, allow_infinity=False),
    TIES,
    st.sampled_from([0.0, -0.0, 2.5e-6, 5e-7, 0.0078125, 1e300, 379.09000000000003]),
)


@given(st.lists(COORDS, max_size=50))
def test_round_coords_is_round_coord_element_for_element(values: list[float]) -> None:
    rounded = round_coords(values).tolist()
    expected = [round_coord(v) for v in values]
    assert rounded == expected
    assert all(math.copysign(1.0, r) == math.copysign(1.0, e) for r, e in zip(rounded, expected, strict=True))


def test_round_coords_keeps_non_finite_and_shape() -> None:
    out = round_coords(np.array([[math.inf, -math.inf], [math.nan, -0.0]]))
    assert out.shape == (2, 2)
    assert out[0].tolist() == [math.inf, -math.inf] and math.isnan(out[1, 0])
    assert math.copysign(1.0, out[1, 1]) == 1.0  # -0.0 becomes 0.0


FINITE = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
CONVERSIONS = [xywh_to_corners, corners_to_xywh, cxcywh_to_corners, corners_to_cxcywh]


@pytest.mark.parametrize("convert", CONVERSIONS)
@given(rows=arrays(np.float64, st.tuples(st.integers(0, 8), st.just(4)), elements=FINITE))
def test_a_scalar_call_is_a_one_row_call(convert, rows: np.ndarray) -> None:
    columns = np.stack(convert(*rows.T), axis=1) if len(rows) else np.empty((0, 4))
    for row, converted in zip(rows.tolist(), columns.tolist(), strict=True):
        assert list(convert(*row)) == converted  # the same IEEE operations: equal bit for bit


@given(st.tuples(FINITE, FINITE, FINITE, FINITE))
def test_formats_round_trip(box: tuple[float, float, float, float]) -> None:
    x1, y1, x2, y2 = box
    for there, back in ((corners_to_xywh, xywh_to_corners), (corners_to_cxcywh, cxcywh_to_corners)):
        assert all(math.isclose(a, b, abs_tol=1e-6) for a, b in zip(back(*there(x1, y1, x2, y2)), box, strict=True))
    assert to_corners("xyxy", *box) == box
    assert to_corners("xywh", *box) == xywh_to_corners(*box)
    assert to_corners("cxcywh", *box) == cxcywh_to_corners(*box)


def test_unknown_box_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown box format 'ltrb'"):
        to_corners("ltrb", 0.0, 0.0, 1.0, 1.0)
    assert set(geometry.BOX_FORMATS) == {"xyxy", "xywh", "cxcywh"}


def test_normalized_scales_x_by_width_and_y_by_height() -> None:
    assert scale(0.5, 0.25, 1.0, 1.0, 640, 480) == (320.0, 120.0, 640.0, 480.0)
    assert normalize(320.0, 120.0, 640.0, 480.0, 640, 480) == (0.5, 0.25, 1.0, 1.0)
    widths, heights = np.array([10.0, 20.0]), np.array([1.0, 2.0])
    columns = scale(np.array([0.5, 0.5]), np.array([0.5, 0.5]), np.ones(2), np.ones(2), widths, heights)
    assert np.stack(columns, axis=1).tolist() == [[5.0, 0.5, 10.0, 1.0], [10.0, 1.0, 20.0, 2.0]]


def test_voc_grid() -> None:
    assert one_based_to_corners(1, 1, 10, 20) == (0.0, 0.0, 10.0, 20.0)
    assert one_based_to_corners(0, 0, 5, 5) == (0.0, 0.0, 5.0, 5.0)  # 0-based tools: clamped
    assert corners_to_one_based(0.0, 0.0, 10.0, 20.0) == (1, 1, 10, 20)
    assert corners_to_one_based(3.0, 3.0, 3.0, 3.0) == (4, 4, 4, 4)  # widened to one pixel
