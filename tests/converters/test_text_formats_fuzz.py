"""Fuzzing the KITTI and DOTA readers: any label text converts or fails with one AnnonormError, nothing else."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from annonorm.api import convert
from annonorm.errors import AnnonormError
from annonorm.io import open_dataset

TARGETS = {"kitti": "annonorm.converters.kitti:KittiConverter", "dota": "annonorm.converters.dota:DotaConverter"}
#: Where each format's label and image go in a one-image tree.
LAYOUT = {"kitti": ("label_2/a.txt", "image_2/a.png"), "dota": ("labelTxt/a.txt", "images/a.png")}
token = st.one_of(
    st.sampled_from(["0", "1", "-1", "1e308", "nan", "inf", "-0", "Car", "DontCare", "gsd:0.5", "imagesource:x"]),
    st.floats(allow_nan=True).map(repr),
    st.text(min_size=1, max_size=4).filter(lambda t: t.split() == [t]),
)
label_text = st.lists(st.lists(token, min_size=0, max_size=17).map(" ".join), max_size=4).map("\n".join)


@pytest.mark.parametrize("name", list(TARGETS))
@settings(max_examples=60, deadline=None)
@given(text=label_text)
def test_any_label_text_converts_or_is_one_annonorm_error(name: str, text: str) -> None:
    label, image = LAYOUT[name]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for relative in (label, image):
            (root / "src" / relative).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 6)).save(root / "src" / image)
        (root / "src" / label).write_text(text, encoding="utf-8")
        try:
            convert(name, root / "src", root / "out")
        except AnnonormError as error:
            assert error.file is not None and "\n" not in str(error)
            assert not (root / "out").exists()
            return
        (record,) = open_dataset(root / "out").records("train")
        assert record["image"] == image
