"""Fuzzing the WIDER Face, SA-1B and Open Images readers: any input converts or fails with one AnnonormError.

An AnnonormError names a file, is one line, and leaves no output behind; anything else (a KeyError, a
TypeError, a crash in pycocotools) is a bug the fuzzer reports.
"""

from __future__ import annotations

import csv
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from annonorm.api import convert
from annonorm.errors import AnnonormError
from annonorm.io import open_dataset


def _outcome(name: str, build: Callable[[Path], None]) -> list[dict[str, Any]] | None:
    """The records of converting what ``build`` puts in ``src``, or None after a well-formed error."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build(root / "src")
        try:
            convert(name, root / "src", root / "out")
        except AnnonormError as error:
            assert error.file is not None and "\n" not in str(error)
            assert not (root / "out").exists()
            return None
        dataset = open_dataset(root / "out")
        return [r for split in dataset.manifest.splits for r in dataset.records(split)]


number = st.one_of(
    st.sampled_from(["0", "1", "2", "-1", "nan", "inf", "1e308", "0.5", "x", "0--Parade/a.jpg", "../a.jpg"]),
    st.integers(-3, 40).map(str),
)
gt_text = st.lists(st.lists(number, min_size=0, max_size=11).map(" ".join), max_size=8).map("\n".join)


@settings(max_examples=80, deadline=None)
@given(text=gt_text)
def test_any_widerface_ground_truth_converts_or_is_one_error(text: str) -> None:
    def build(src: Path) -> None:
        (src / "wider_face_split").mkdir(parents=True)
        (src / "wider_face_split" / "wider_face_train_bbx_gt.txt").write_text(text)

    records = _outcome("widerface", build)
    if records is not None:
        assert all(b["name"] == "face" for r in records for b in r["boxes"])


json_value = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 20), st.floats(allow_nan=False), st.text(max_size=4)),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=8,
)
annotation = st.fixed_dictionaries(
    {
        "segmentation": st.one_of(
            json_value,
            st.fixed_dictionaries(
                {
                    "size": st.one_of(st.just([2, 3]), st.lists(st.integers(-1, 4), max_size=3)),
                    "counts": st.one_of(st.text(max_size=6), st.lists(st.integers(-1, 6), max_size=4)),
                }
            ),
        ),
        "bbox": st.one_of(st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=5), json_value),
    },
    optional={"id": json_value, "area": json_value, "predicted_iou": json_value, "point_coords": json_value},
)
document = st.fixed_dictionaries(
    {
        "image": st.one_of(
            json_value,
            st.fixed_dictionaries(
                {
                    "image_id": st.integers(0, 3),
                    "width": st.integers(-1, 4),
                    "height": st.integers(-1, 4),
                    "file_name": st.sampled_from(["a.jpg", "../a.jpg", "", "/etc/passwd", "d/a.jpg"]),
                }
            ),
        ),
        "annotations": st.one_of(st.lists(annotation, max_size=3), json_value),
    }
)


@settings(max_examples=80, deadline=None)
@given(doc=document)
def test_any_sa1b_document_converts_or_is_one_error(doc: dict[str, Any]) -> None:
    def build(src: Path) -> None:
        src.mkdir()
        (src / "a.json").write_text(json.dumps(doc))

    records = _outcome("sa1b", build)
    if records is not None:
        (record,) = records
        assert len(record["boxes"]) == len(doc["annotations"])


HEADER = "ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside"
cell = st.one_of(st.sampled_from(["a", "/m/0", "/m/9", "0", "1", "-1", "0.5", "nan", "", "..", "x,y", '"']), number)
bbox_table = st.lists(st.lists(cell, min_size=0, max_size=14).map(",".join), max_size=4).map("\n".join)


@settings(max_examples=80, deadline=None)
@given(rows=bbox_table, header=st.booleans())
def test_any_openimages_box_table_converts_or_is_one_error(rows: str, header: bool) -> None:
    def build(src: Path) -> None:
        (src / "annotations").mkdir(parents=True)
        (src / "images" / "train").mkdir(parents=True)
        Image.new("RGB", (8, 6)).save(src / "images" / "train" / "a.jpg")
        (src / "annotations" / "class-descriptions.csv").write_text("/m/0,cat\n")
        (src / "annotations" / "train-annotations-bbox.csv").write_text((HEADER + "\n" if header else "") + rows)

    records = _outcome("openimages", build)
    if records is not None:  # then the table had its header and every data row is one box
        data = [r for r in csv.reader(rows.splitlines()) if any(c.strip() for c in r)]
        assert header and sum(len(r["boxes"]) for r in records) == len(data)
