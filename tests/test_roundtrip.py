"""One round-trip property over every installed converter that reads and writes, driven by its capabilities.

For a dataset ``r`` drawn with :func:`annonorm.testing.datasets` and narrowed to what the format's
writer accepts (:func:`fit`): ``read(write(r)) == project(r)``, where :func:`project` keeps what the
converter's :class:`~annonorm.converters.base.Capabilities` say survives, and
``write(read(write(r))) == write(r)`` byte for byte. The machinery is :mod:`annonorm.testing`
(:func:`~annonorm.testing.check_round_trip`), so a plugin gets the same test in its own suite by
declaring its capabilities (docs/plugins.md).
"""

from __future__ import annotations

import pytest

from annonorm import registry
from annonorm.converters.base import make_record
from annonorm.testing import DatasetSpec, check_round_trip, round_trip


def _readers_and_writers() -> list[str]:
    names = []
    for name in registry.names():
        try:
            converter = registry.get(name)
        except Exception:  # a plugin that cannot load is `annonorm formats`' business, not this property's
            continue
        if converter.can_read() and converter.can_write():
            names.append(name)
    return names


#: Converters whose rewrite is known not to be byte-stable in every drawn case, with why.
REWRITE_NOT_STABLE = {
    # Boxes touching the edge are written so the reader never clips them (stable, tested below); what remains
    # is images of a few pixels, where 6-decimal pixels are as coarse as 6-decimal fractions.
    "yolo": "on images a few pixels wide a box's 6-decimal corners are as coarse as its 6-decimal fractions",
}


@pytest.mark.parametrize("name", _readers_and_writers())
def test_every_converter_round_trips_within_its_capabilities(name: str) -> None:
    check_round_trip(name, rewrite=name not in REWRITE_NOT_STABLE)


def test_yolo_rewrite_of_a_box_at_the_image_edge_is_byte_stable() -> None:
    """The example the property found: 149/228 and its half round so that x1 lands below 0 on read."""
    record = make_record(
        image="a.jpg", width=228, height=1, boxes=[{"name": "0", "x1": 0, "y1": 0, "x2": 149, "y2": 0}]
    )
    round_trip("yolo", DatasetSpec(categories=["0"], splits={"train": [record]}), rewrite=True)
