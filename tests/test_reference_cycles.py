"""Reading leaves no reference cycle per image.

A conversion runs with the collector paused (:meth:`annonorm.engine.Execution.running`), so an object
cycle made per image is never freed until the run ends: memory grows with the source. (It did: the
LabelMe reader kept every file's bytes alive through a stored exception's traceback, 2 GB on 20k
files.) For every converter that reads and writes, a dataset of a few images and one of many are
written in its format and read back with the collector off; the garbage a collection then finds
must not grow with the number of images.
"""

from __future__ import annotations

import gc
import tempfile
from pathlib import Path

import pytest

from annonorm import registry
from annonorm.api import convert
from annonorm.converters.base import make_record
from annonorm.testing import DatasetSpec, fit, write_in_format
from tests.test_roundtrip import _readers_and_writers

FEW, MANY = 4, 40


def _spec(count: int) -> DatasetSpec:
    """``count`` images with a box each, carrying the v2 fields and attributes a format may keep."""
    records = []
    for index in range(count):
        box = {"name": "cat", "x1": 2.0, "y1": 3.0, "x2": 30.0, "y2": 20.0, "attributes": {"occluded": True}}
        box["polygon"] = [[2.0, 3.0, 30.0, 3.0, 30.0, 20.0, 2.0, 20.0]]
        record = make_record(image=f"img_{index:03d}.jpg", width=64, height=48, boxes=[box], labels=["dog"])
        record["id"] = index + 1
        record["attributes"] = {"source": "test"}
        records.append(record)
    return DatasetSpec(categories=["cat", "dog"], splits={"train": records})


def _garbage_after_reading(name: str, count: int) -> int:
    caps = registry.get(name).capabilities
    spec = fit(_spec(count), caps)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        images = write_in_format(name, spec, root)
        classes = None if caps.category_order else spec.categories
        gc.collect()
        gc.disable()
        try:
            convert(name, root / "written", root / "back", classes=classes, images=images)
            return gc.collect()
        finally:
            gc.enable()


@pytest.mark.parametrize("name", _readers_and_writers())
def test_reading_makes_no_reference_cycle_per_image(name: str) -> None:
    few, many = _garbage_after_reading(name, FEW), _garbage_after_reading(name, MANY)
    assert many - few < MANY - FEW, f"{name}: {few} unreachable objects after {FEW} images, {many} after {MANY}"
