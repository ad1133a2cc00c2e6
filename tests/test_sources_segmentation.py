"""sources.segmentation: label PNGs read and written, the VOC colour map, source indices to annonorm masks."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from annonorm.errors import InvalidDataError, ParseError
from annonorm.sources.segmentation import (
    VOID,
    VOID_16,
    color_key,
    export_mask_png,
    instance_mask_problem,
    labelmap_lookups,
    mask_size_problem,
    palette_colors,
    read_index_png,
    read_mask_png,
    semantic_lookups,
    semantic_mask_problem,
    to_instance_mask,
    to_semantic_mask,
    voc_palette,
    write_mask_png,
    write_palette_png,
)

#: The words VOC's reader passes, so these tests pin the messages users see.
VOC_OBJECTS, VOC_TABLE = "the XML's objects", "the labelmap or VOC classes"


def test_read_index_png_reads_palette_gray_and_table_colors(tmp_path: Path) -> None:
    values = np.array([[0, 1, 2], [255, 1, 0]], dtype=np.uint8)
    palette = [(i, 255 - i, (7 * i) % 256) for i in range(256)]
    write_palette_png(values, palette, tmp_path / "p.png")
    with Image.open(tmp_path / "p.png") as image:
        assert image.mode == "P" and image.getpalette()[3:6] == [1, 254, 7]
    assert read_index_png(tmp_path / "p.png", {}).tolist() == values.tolist()
    Image.fromarray(values, mode="L").save(tmp_path / "l.png")
    assert read_index_png(tmp_path / "l.png", {}).tolist() == values.tolist()
    rgb = np.array([[[10, 20, 30], [0, 0, 0]]], dtype=np.uint8)
    Image.fromarray(rgb, mode="RGB").save(tmp_path / "rgb.png")
    table = {(10 << 16) | (20 << 8) | 30: 7, 0: 0}
    assert read_index_png(tmp_path / "rgb.png", table).tolist() == [[7, 0]]
    with pytest.raises(InvalidDataError, match=r"color \(10, 20, 30\) is not in the class table") as caught:
        read_index_png(tmp_path / "rgb.png", {0: 0}, table="the class table")
    assert caught.value.file == str(tmp_path / "rgb.png")


def test_read_index_png_refuses_what_is_no_label_png(tmp_path: Path) -> None:
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ParseError, match="cannot read the mask PNG"):
        read_index_png(tmp_path / "bad.png", {})
    Image.new("CMYK", (2, 2)).save(tmp_path / "cmyk.tif")
    with pytest.raises(InvalidDataError, match="mask mode CMYK"):
        read_index_png(tmp_path / "cmyk.tif", {})
    os.mkfifo(tmp_path / "fifo.png")
    with pytest.raises(ParseError, match="not a regular file"):
        read_index_png(tmp_path / "fifo.png", {}, what="label PNG")


def test_read_mask_png_reads_one_channel_and_names_what_it_refuses(tmp_path: Path) -> None:
    values = np.array([[0, 1], [65535, 2]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "wide.png")
    assert read_mask_png(tmp_path / "wide.png").tolist() == values.tolist()
    Image.new("RGB", (2, 2)).save(tmp_path / "rgb.png")
    with pytest.raises(InvalidDataError, match="mask has 3 channels; expected a single-channel mask") as caught:
        read_mask_png(tmp_path / "rgb.png")
    assert caught.value.file == str(tmp_path / "rgb.png")
    with pytest.raises(InvalidDataError, match="cannot read the mask"):
        read_mask_png(tmp_path / "missing.png")


def test_palette_matches_the_published_voc_colors() -> None:
    palette = voc_palette()
    # Colors from the VOC devkit documentation: aeroplane, person, tvmonitor, and the void boundary.
    assert (palette[0], palette[1], palette[15], palette[20], palette[255]) == (
        (0, 0, 0),
        (128, 0, 0),
        (192, 128, 128),
        (0, 64, 128),
        (224, 224, 192),
    )
    assert len(set(palette)) == 256
    assert palette_colors(palette)[color_key(192, 128, 128)] == 15


def test_palette_png_round_trips_through_the_colour_table(tmp_path: Path) -> None:
    palette = voc_palette()
    values = np.array([[0, 15, 255], [1, 20, 0]], dtype=np.uint8)
    write_palette_png(values, palette, tmp_path / "p.png")
    with Image.open(tmp_path / "p.png") as image:
        image.convert("RGB").save(tmp_path / "rgb.png")
    assert read_index_png(tmp_path / "rgb.png", palette_colors(palette)).tolist() == values.tolist()


def test_semantic_lookups_map_first_colours_void_and_unknown_indices() -> None:
    colors, lut = semantic_lookups([0, 3, -1, 3], [(0, 0, 0), (9, 9, 9), None, (9, 9, 9)], void_color=(1, 2, 3))
    assert colors == {0: 0, color_key(9, 9, 9): 1, color_key(1, 2, 3): VOID}
    assert len(lut) == 256 and lut[:5] == (0, 3, -1, 3, -1) and lut[VOID] == VOID
    assert set(lut[4:VOID]) == {-1}
    # An entry at index 255 says what 255 means; only 256 entries can be indices of an 8-bit mask.
    values = [1] * 300
    assert semantic_lookups(values, [None] * 300, void_color=(0, 0, 0))[1] == (1,) * 256


def test_instance_mask_mapping() -> None:
    indices = np.array([[0, 1, 2, 255]])
    assert to_instance_mask(indices=indices, objects=2, file="m").dtype == np.uint8
    wide = to_instance_mask(indices=indices, objects=300, file="m")
    assert wide.dtype == np.uint16 and wide.tolist() == [[0, 1, 2, 65535]]
    with pytest.raises(InvalidDataError, match="pixel value 2 names no object") as caught:
        to_instance_mask(indices=indices, objects=1, file="m", objects_are=VOC_OBJECTS)
    assert str(caught.value.message).endswith("expected 0, 1..1 (the XML's objects) or 255 (void)")
    sixteen = to_instance_mask(indices=np.array([[0, 3, VOID_16]]), objects=3, file="m")
    assert sixteen.dtype == np.uint8 and sixteen.tolist() == [[0, 3, VOID]]


def test_semantic_mask_mapping() -> None:
    lut = [-1] * 256
    lut[0], lut[3], lut[255] = 0, 1, 255
    out = to_semantic_mask(indices=np.array([[0, 3, 255]]), lut=lut, file="m")
    assert out.tolist() == [[0, 1, 255]]
    with pytest.raises(InvalidDataError, match="pixel value 4 is not a class index of the labelmap or VOC classes"):
        to_semantic_mask(indices=np.array([[4]]), lut=lut, file="m", table=VOC_TABLE)


def test_mask_size_problem_wording() -> None:
    assert mask_size_problem(mask=(4, 3), image=(4, 3)) is None
    assert mask_size_problem(mask=(4, 3), image=(3, 4)) == "mask is 4x3 but the image is 3x4; expected the same size"


@given(st.lists(st.integers(-2, 300), max_size=8), st.integers(0, 260), st.sampled_from([255, 65535]))
def test_instance_mask_problem_accepts_exactly_object_indices_and_void(
    values: list[int], objects: int, void: int
) -> None:
    problem = instance_mask_problem(values=values, objects=objects, void=void, objects_are=VOC_OBJECTS)
    allowed = set(range(objects + 1)) | {void}
    assert (problem is None) == all(v in allowed for v in values)


@given(st.lists(st.integers(-2, 300), max_size=8), st.lists(st.integers(-1, 20), min_size=1, max_size=256))
def test_semantic_mask_problem_accepts_exactly_indices_of_the_table(values: list[int], lut: list[int]) -> None:
    problem = semantic_mask_problem(values=values, lut=lut, table=VOC_TABLE)
    assert (problem is None) == all(0 <= v < len(lut) and lut[v] >= 0 for v in values)


def test_labelmap_lookups_index_background_void_categories_and_unknown_names() -> None:
    entries: list[dict[str, Any]] = [
        {"name": "background", "color": [0, 0, 0]},
        {"name": "cat", "color": [1, 2, 3]},
        {"name": "dog"},
        {"name": "ignored", "color": [9, 9, 9]},
        {"name": "emu", "color": [4, 5, 6]},
    ]
    ids = {"cat": 0, "emu": 1}
    colors, lut = labelmap_lookups(entries, ids.get, void_color=(224, 224, 192))
    assert lut[:5] == (0, 1, -1, VOID, 2) and lut[VOID] == VOID and set(lut[5:VOID]) == {-1}
    void = color_key(224, 224, 192)
    assert colors == {0: 0, color_key(1, 2, 3): 1, color_key(9, 9, 9): 3, color_key(4, 5, 6): 4, void: VOID}


def test_write_mask_png_keeps_values_and_depth(tmp_path: Path) -> None:
    for dtype, mode in ((np.uint8, "L"), (np.uint16, "I;16")):
        values = np.array([[0, 1], [300 if dtype is np.uint16 else 200, 255]], dtype=dtype)
        write_mask_png(values, tmp_path / "m.png")
        with Image.open(tmp_path / "m.png") as image:
            assert image.mode == mode
            assert np.array_equal(np.asarray(image).astype(np.int64), values.astype(np.int64))


def test_export_mask_png_maps_16_bit_void_and_refuses_too_many_objects(tmp_path: Path) -> None:
    palette = voc_palette()
    write_mask_png(np.array([[0, 2], [VOID_16, 1]], dtype=np.uint16), tmp_path / "instance.png")
    export_mask_png(tmp_path / "instance.png", tmp_path / "out.png", palette, objects=2, file="s.jsonl", holder="X")
    with Image.open(tmp_path / "out.png") as image:
        assert image.mode == "P" and image.getpalette()[:6] == [*palette[0], *palette[1]]
        assert np.asarray(image).tolist() == [[0, 2], [VOID, 1]]
    write_mask_png(np.array([[0, 3]], dtype=np.uint8), tmp_path / "semantic.png")
    export_mask_png(tmp_path / "semantic.png", tmp_path / "s.png", palette, objects=None, file="s.jsonl", holder="X")
    with Image.open(tmp_path / "s.png") as image:
        assert np.asarray(image).tolist() == [[0, 3]]
    with pytest.raises(InvalidDataError, match=r"300 objects; VOC.s PNG holds at most 254$") as caught:
        export_mask_png(
            tmp_path / "instance.png", tmp_path / "no.png", palette, objects=300, file="s", holder="VOC's PNG"
        )
    assert caught.value.file == "s" and not (tmp_path / "no.png").exists()
