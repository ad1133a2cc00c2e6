"""annonorm.preview, checked by pixels: outlines in the class color where the record says, images untouched inside."""

from __future__ import annotations

import itertools
import math
import os
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from annonorm.cli import app
from annonorm.converters.base import make_record
from annonorm.errors import InvalidDataError, UsageError
from annonorm.preview import MISSING_FILL, class_color, render_class_histogram, render_preview
from annonorm.stats import compute_stats
from annonorm.testing import write_dataset

FILL = (40, 90, 200)
CATEGORIES = ["a", "b"]


def _box(name: str, x1: float, y1: float, x2: float, y2: float) -> dict[str, Any]:
    return {"name": name, "x1": x1, "y1": y1, "x2": x2, "y2": y2}


def _dataset(
    root: Path, records: list[dict[str, Any]], *, images: dict[str, Image.Image | bytes], mask_kind: str | None = None
) -> Path:
    for name, content in images.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            content.save(path)
    return write_dataset(root, CATEGORIES, {"train": records}, mask_kind=mask_kind)


def _pixel(image: Image.Image, x: int, y: int) -> tuple[int, int, int]:
    value = image.getpixel((x, y))
    assert isinstance(value, tuple)
    return value[0], value[1], value[2]


def _two_boxes() -> list[dict[str, Any]]:
    return [_box("b", 20, 10, 120, 80), _box("a", 140, 40, 190, 95)]


def test_outlines_carry_the_class_color_exactly_on_the_box_edges(tmp_path: Path) -> None:
    record = make_record(image="img.png", width=200, height=100, boxes=_two_boxes())
    dataset = _dataset(tmp_path / "ds", [record], images={"img.png": Image.new("RGB", (200, 100), FILL)})
    result = render_preview(dataset, tmp_path / "p.png", tile_size=200)  # 200 px wide image: scale 1
    tile = result.tiles[0]
    assert (tile.scale_x, tile.scale_y) == (1.0, 1.0)
    with Image.open(result.path) as sheet:
        sheet = sheet.convert("RGB")
        x, y = tile.x, tile.y
        assert _pixel(sheet, x, y + 99) == FILL and _pixel(sheet, x - 1, y + 99) != FILL  # the image starts here
        b, a = class_color(1), class_color(0)
        assert _pixel(sheet, x + 20, y + 50) == b  # left edge at x1
        assert _pixel(sheet, x + 119, y + 50) == b  # right edge: the last pixel before x2
        assert _pixel(sheet, x + 70, y + 79) == b  # bottom edge
        assert _pixel(sheet, x + 19, y + 50) == FILL  # just outside stays the image
        assert _pixel(sheet, x + 120, y + 50) == FILL
        assert _pixel(sheet, x + 70, y + 45) == FILL  # well inside stays the image
        assert _pixel(sheet, x + 140, y + 70) == a
        assert _pixel(sheet, x + 165, y + 94) == a
        assert _pixel(sheet, x + 165, y + 70) == FILL
    assert result.tiles[0].note is None


def test_boxes_follow_the_image_when_it_is_scaled(tmp_path: Path) -> None:
    record = make_record(image="img.png", width=200, height=100, boxes=_two_boxes())
    dataset = _dataset(tmp_path / "ds", [record], images={"img.png": Image.new("RGB", (200, 100), FILL)})
    result = render_preview(dataset, tmp_path / "p.png", tile_size=100)
    tile = result.tiles[0]
    assert (tile.scale_x, tile.scale_y) == (0.5, 0.5)
    with Image.open(result.path) as sheet:
        sheet = sheet.convert("RGB")
        x, y, b = tile.x, tile.y, class_color(1)
        assert _pixel(sheet, x + 10, y + 25) == b  # x1 = 20 -> 10
        assert _pixel(sheet, x + 59, y + 25) == b  # x2 = 120 -> 60, last pixel 59
        assert _pixel(sheet, x + 9, y + 25) == FILL
        assert _pixel(sheet, x + 60, y + 25) == FILL
        assert _pixel(sheet, x + 35, y + 25) == FILL


@settings(max_examples=25, deadline=None)
@given(
    width=st.integers(40, 400),
    height=st.integers(40, 400),
    corner=st.tuples(st.floats(0, 0.5), st.floats(0, 0.5)),
    extent=st.tuples(st.floats(0.3, 0.5), st.floats(0.3, 0.5)),
    category=st.sampled_from(CATEGORIES),
)
def test_any_box_is_outlined_at_its_corners(
    width: int, height: int, corner: tuple[float, float], extent: tuple[float, float], category: str
) -> None:
    x1, y1 = round(corner[0] * width, 2), round(corner[1] * height, 2)
    x2, y2 = round(x1 + extent[0] * width, 2), round(y1 + extent[1] * height, 2)
    record = make_record(image="img.png", width=width, height=height, boxes=[_box(category, x1, y1, x2, y2)])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        dataset = _dataset(root / "ds", [record], images={"img.png": Image.new("RGB", (width, height), FILL)})
        result = render_preview(dataset, root / "p.png", tile_size=160)
        with Image.open(result.path) as sheet:
            sheet = sheet.convert("RGB")
    tile = result.tiles[0]
    color = class_color(CATEGORIES.index(category))
    left, right = math.floor(x1 * tile.scale_x), math.ceil(x2 * tile.scale_x) - 1
    top, bottom = math.floor(y1 * tile.scale_y), math.ceil(y2 * tile.scale_y) - 1
    assert _pixel(sheet, tile.x + right, tile.y + bottom) == color
    assert _pixel(sheet, tile.x + left, tile.y + bottom) == color
    assert _pixel(sheet, tile.x + (left + right) // 2, tile.y + bottom) == color
    assert _pixel(sheet, tile.x + right, tile.y + (top + bottom) // 2) == color
    if top >= 20 and right - left >= 10 and bottom - top >= 10:  # the name tag sits above the box, not inside
        assert _pixel(sheet, tile.x + (left + right) // 2, tile.y + (top + bottom) // 2) == FILL


def test_missing_and_broken_images_become_grey_tiles_with_their_boxes(tmp_path: Path) -> None:
    records = [
        make_record(image="gone.png", width=200, height=100, boxes=_two_boxes()),
        make_record(image="broken.jpg", width=200, height=100),
    ]
    dataset = _dataset(tmp_path / "ds", records, images={"broken.jpg": b"not a jpeg at all"})
    result = render_preview(dataset, tmp_path / "p.png", tile_size=200)
    assert [t.note for t in result.tiles] == ["image missing", "image unreadable (UnidentifiedImageError)"]
    with Image.open(result.path) as sheet:
        sheet = sheet.convert("RGB")
        gone, broken = result.tiles
        assert _pixel(sheet, gone.x + 20, gone.y + 50) == class_color(1)
        assert _pixel(sheet, gone.x + 70, gone.y + 30) == MISSING_FILL
        assert _pixel(sheet, broken.x + 2, broken.y + 2) == MISSING_FILL


def _blend(base: tuple[int, int, int], color: tuple[int, int, int], alpha: int) -> tuple[int, ...]:
    return tuple(round(b + (c - b) * alpha / 255) for b, c in zip(base, color, strict=True))


def _close(got: tuple[int, int, int], expected: tuple[int, ...]) -> bool:
    return all(abs(g - e) <= 2 for g, e in zip(got, expected, strict=True))


@pytest.mark.parametrize("kind", ["instance", "semantic"])
def test_masks_tint_their_pixels_in_the_class_color(tmp_path: Path, kind: str) -> None:
    mask = Image.new("L", (200, 100), 0)
    first, second = (1, 2) if kind == "instance" else (2, 1)  # instance: box number; semantic: category id + 1
    mask.paste(first, (30, 20, 60, 50))
    mask.paste(second, (150, 50, 180, 90))
    mask.paste(255, (0, 0, 6, 6))
    record = make_record(image="img.png", width=200, height=100, boxes=_two_boxes(), mask="masks/img.png")
    dataset = _dataset(
        tmp_path / "ds",
        [record],
        images={"img.png": Image.new("RGB", (200, 100), FILL), "masks/img.png": mask},
        mask_kind=kind,
    )
    plain = render_preview(dataset, tmp_path / "plain.png", tile_size=200)
    result = render_preview(dataset, tmp_path / "p.png", tile_size=200, masks=True)
    with Image.open(result.path) as sheet, Image.open(plain.path) as unmasked:
        sheet, unmasked = sheet.convert("RGB"), unmasked.convert("RGB")
        x, y = result.tiles[0].x, result.tiles[0].y
        assert _close(_pixel(sheet, x + 45, y + 35), _blend(FILL, class_color(1), 115))
        assert _close(_pixel(sheet, x + 165, y + 70), _blend(FILL, class_color(0), 115))
        assert _close(_pixel(sheet, x + 2, y + 2), _blend(FILL, (255, 255, 255), 90))  # void
        assert _pixel(sheet, x + 100, y + 60) == FILL  # background untouched
        assert _pixel(unmasked, x + 45, y + 35) == FILL  # and nothing without --masks


def test_colors_are_stable_across_processes_and_distinct() -> None:
    colors = [class_color(i) for i in range(16)]
    code = "from annonorm.preview import class_color; print([class_color(i) for i in range(16)])"
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        printed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
        assert printed.stdout.strip() == str(colors)
    assert min(math.dist(p, q) for p, q in itertools.combinations(colors, 2)) > 40


def test_records_are_chosen_by_count_or_index(tmp_path: Path) -> None:
    records = [make_record(image=f"{i}.png", width=20, height=20) for i in range(5)]
    dataset = _dataset(tmp_path / "ds", records, images={f"{i}.png": Image.new("RGB", (20, 20)) for i in range(5)})
    assert [t.index for t in render_preview(dataset, tmp_path / "p.png", count=3).tiles] == [0, 1, 2]
    chosen = render_preview(dataset, tmp_path / "p.png", indices=[4, 1], force=True)
    assert [(t.index, t.image) for t in chosen.tiles] == [(4, "4.png"), (1, "1.png")]
    with pytest.raises(UsageError, match="index 7 is out of range: split 'train' has 5 records"):
        render_preview(dataset, tmp_path / "p.png", indices=[1, 7], force=True)
    with pytest.raises(UsageError, match="no split 'val'"):
        render_preview(dataset, tmp_path / "p.png", split="val", force=True)
    with pytest.raises(UsageError, match="no masks"):
        render_preview(dataset, tmp_path / "p.png", masks=True, force=True)


def _longest_run(image: Image.Image, color: tuple[int, int, int]) -> int:
    """The longest horizontal run of ``color`` pixels: a bar's length."""
    best = 0
    for row in np.all(np.asarray(image) == color, axis=2):
        run = 0
        for hit in row:
            run = run + 1 if hit else 0
            best = max(best, run)
    return best


def test_class_histogram_bars_are_proportional(tmp_path: Path) -> None:
    records = [
        make_record(image="1.png", width=50, height=50, boxes=[_box("a", 0, 0, 5, 5)] * 4 + [_box("b", 0, 0, 5, 5)] * 2)
    ]
    dataset = write_dataset(tmp_path / "ds", CATEGORIES, {"train": records})
    path = render_class_histogram(compute_stats(dataset), tmp_path / "h.png")
    with Image.open(path) as chart:
        chart = chart.convert("RGB")
        a, b = _longest_run(chart, class_color(0)), _longest_run(chart, class_color(1))
    assert a == 2 * b


def test_cli_writes_the_preview_and_the_histogram(tmp_path: Path) -> None:
    records = [make_record(image="img.png", width=200, height=100, boxes=_two_boxes())]
    records.append(make_record(image="gone.png", width=10, height=10))
    dataset = _dataset(tmp_path / "ds", records, images={"img.png": Image.new("RGB", (200, 100), FILL)})
    arguments = ["preview", str(dataset), "-o", str(tmp_path / "p.png"), "--index", "1", "--index", "0"]
    result = CliRunner().invoke(app, [*arguments, "--stats-plot", str(tmp_path / "h.png")])
    assert result.exit_code == 0, result.output
    assert "#1 gone.png: image missing" in result.output
    for name in ("p.png", "h.png"):
        with Image.open(tmp_path / name) as image:
            assert image.format == "PNG"
    bad = CliRunner().invoke(app, ["preview", str(dataset), "-o", str(tmp_path / "q.png"), "--index", "9"])
    assert bad.exit_code == 2
    assert "out of range" in bad.output
    assert not (tmp_path / "q.png").exists()


def test_a_malformed_record_or_mask_is_named_not_a_crash(tmp_path: Path) -> None:
    record = make_record(image="img.png", width=20, height=10, mask="masks/img.png")
    dataset = _dataset(
        tmp_path / "ds",
        [record],
        images={"img.png": Image.new("RGB", (20, 10), FILL), "masks/img.png": Image.new("RGB", (20, 10))},
        mask_kind="instance",
    )
    assert render_preview(dataset, tmp_path / "p.png", masks=True).tiles[0].note == "mask is not single-channel (RGB)"
    with (dataset / "train.jsonl").open("a") as stream:
        stream.write('{"image": "x.png", "width": 5, "height": 5, "boxes": [{"x1": 0}]}\n')
    with pytest.raises(InvalidDataError, match="record is malformed") as caught:
        render_preview(dataset, tmp_path / "p.png", force=True)
    assert caught.value.location == "line 2"


def test_a_decompression_bomb_is_a_tile_note(tmp_path: Path) -> None:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 40000, 40000, 8, 2, 0, 0, 0)  # claims 1.6 gigapixels
    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    record = make_record(image="bomb.png", width=40000, height=40000, boxes=[_box("a", 0, 0, 20000, 20000)])
    dataset = _dataset(tmp_path / "ds", [record], images={"bomb.png": bomb})
    result = render_preview(dataset, tmp_path / "p.png", tile_size=100)
    assert result.tiles[0].note == "image unreadable (DecompressionBombError)"
    with Image.open(result.path) as sheet:
        assert _pixel(sheet.convert("RGB"), result.tiles[0].x, result.tiles[0].y + 25) == class_color(0)
