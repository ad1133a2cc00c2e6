"""Where ``annonorm preview`` writes: the format from the suffix, --force, directories, inputs, atomicity,
and --no-labels. Through the command line (CliRunner) and the library."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from typer.testing import CliRunner

from annonorm.cli import app
from annonorm.converters.base import make_record
from annonorm.errors import AnnonormError, OutputExistsError, UsageError
from annonorm.preview import class_color, render_preview
from annonorm.testing import write_dataset

FILL = (40, 90, 200)
runner = CliRunner()


def _dataset(root: Path) -> Path:
    """One 200 x 100 image with a box of class "b" (category 1) whose name tag sits above it."""
    root.mkdir(parents=True)
    Image.new("RGB", (200, 100), FILL).save(root / "img.png")
    boxes = [{"name": "b", "x1": 20, "y1": 40, "x2": 120, "y2": 80}]
    return write_dataset(
        root, ["a", "b"], {"train": [make_record(image="img.png", width=200, height=100, boxes=boxes)]}
    )


def _preview(*arguments: str) -> Any:
    return runner.invoke(app, ["preview", *arguments])


def _one_line_error(result: Any) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize(("name", "kind"), [("p.jpg", "JPEG"), ("p.JPEG", "JPEG"), ("p.png", "PNG")])
def test_the_suffix_chooses_the_format(tmp_path: Path, name: str, kind: str) -> None:
    dataset = _dataset(tmp_path / "ds")
    result = _preview(str(dataset), "-o", str(tmp_path / "out" / name))
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "out" / name) as image:
        assert image.format == kind
        assert image.mode == "RGB"
    assert _leftovers(tmp_path / "out") == []


@pytest.mark.parametrize("name", ["p.gif", "p.webp", "preview"])
def test_another_suffix_is_a_usage_error_and_writes_nothing(tmp_path: Path, name: str) -> None:
    dataset = _dataset(tmp_path / "ds")
    line = _one_line_error(_preview(str(dataset), "-o", str(tmp_path / name)))
    assert "expected .png, .jpg or .jpeg" in line
    assert not (tmp_path / name).exists()


def test_an_existing_file_is_replaced_only_with_force(tmp_path: Path) -> None:
    dataset = _dataset(tmp_path / "ds")
    out = tmp_path / "p.png"
    out.write_bytes(b"keep me")
    line = _one_line_error(_preview(str(dataset), "-o", str(out)))
    assert line.endswith("exists; pass --force to replace it")
    assert out.read_bytes() == b"keep me"
    forced = _preview(str(dataset), "-o", str(out), "--force")
    assert forced.exit_code == 0, forced.output
    with Image.open(out) as image:
        assert image.format == "PNG"
    assert _leftovers(tmp_path) == []


def test_a_directory_as_the_output_is_one_line_exit_2(tmp_path: Path) -> None:
    dataset = _dataset(tmp_path / "ds")
    (tmp_path / "folder.png").mkdir()
    for out in (tmp_path / "folder.png", tmp_path):
        for extra in ([], ["--force"]):
            line = _one_line_error(_preview(str(dataset), "-o", str(out), *extra))
            assert "is a directory" in line
    assert list((tmp_path / "folder.png").iterdir()) == []


def test_a_parent_that_is_a_file_is_one_line_exit_2(tmp_path: Path) -> None:
    dataset = _dataset(tmp_path / "ds")
    (tmp_path / "file").write_text("x")
    line = _one_line_error(_preview(str(dataset), "-o", str(tmp_path / "file" / "p.png")))
    assert "cannot write the preview" in line


def test_the_preview_never_writes_into_the_dataset_or_over_an_image(tmp_path: Path) -> None:
    dataset = _dataset(tmp_path / "ds")
    before = (dataset / "img.png").read_bytes()
    inside = _one_line_error(_preview(str(dataset), "-o", str(dataset / "preview.png")))
    assert "overlaps input" in inside
    assert not (dataset / "preview.png").exists()
    over = _one_line_error(_preview(str(dataset), "-o", str(dataset / "img.png"), "--force"))
    assert "overlaps input" in over
    assert (dataset / "img.png").read_bytes() == before


def test_an_image_of_an_image_root_outside_the_dataset_is_not_replaced(tmp_path: Path) -> None:
    dataset = _dataset(tmp_path / "ds")
    images = tmp_path / "images"
    images.mkdir()
    (dataset / "img.png").rename(images / "img.png")
    before = (images / "img.png").read_bytes()
    with pytest.raises(UsageError, match="is a file in the dataset's image folder"):
        render_preview(dataset, images / "img.png", image_root=images, force=True)
    assert (images / "img.png").read_bytes() == before


def test_no_labels_draws_the_boxes_without_their_names(tmp_path: Path) -> None:
    dataset = _dataset(tmp_path / "ds")
    labelled = render_preview(dataset, tmp_path / "with.png", tile_size=200)
    bare = _preview(str(dataset), "-o", str(tmp_path / "without.png"), "--tile", "200", "--no-labels")
    assert bare.exit_code == 0, bare.output
    tile, color = labelled.tiles[0], class_color(1)
    with Image.open(tmp_path / "with.png") as first, Image.open(tmp_path / "without.png") as second:
        with_labels, without = first.convert("RGB"), second.convert("RGB")
    assert with_labels.size == without.size
    tag = (tile.x + 24, tile.y + 40 - 4)  # inside the name tag, just above the box's top-left corner
    assert with_labels.getpixel(tag) == color
    assert without.getpixel(tag) == FILL
    for edge in ((tile.x + 20, tile.y + 60), (tile.x + 119, tile.y + 60), (tile.x + 70, tile.y + 79)):
        assert with_labels.getpixel(edge) == without.getpixel(edge) == color  # the outline is drawn either way


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = _dataset(tmp_path / "ds")
    out = tmp_path / "p.jpg"
    out.write_bytes(b"previous")

    def full_disk(self: Image.Image, fp: Any, format: str | None = None, **params: Any) -> None:
        fp.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Image.Image, "save", full_disk)
    with pytest.raises(AnnonormError, match="cannot write the preview: No space left on device"):
        render_preview(dataset, out, force=True)
    assert out.read_bytes() == b"previous"
    assert _leftovers(tmp_path) == []


def test_the_library_refuses_an_existing_file_before_drawing(tmp_path: Path) -> None:
    dataset = _dataset(tmp_path / "ds")
    (tmp_path / "p.jpeg").write_bytes(b"x")
    with pytest.raises(OutputExistsError, match="pass --force"):
        render_preview(dataset, tmp_path / "p.jpeg")
    result = render_preview(dataset, tmp_path / "p.jpeg", force=True, labels=False)
    with Image.open(result.path) as image:
        assert image.format == "JPEG"


def test_the_class_histogram_follows_the_same_output_rules(tmp_path: Path) -> None:
    dataset = _dataset(tmp_path / "ds")
    plot = tmp_path / "h.jpg"
    result = _preview(str(dataset), "-o", str(tmp_path / "p.png"), "--stats-plot", str(plot))
    assert result.exit_code == 0, result.output
    with Image.open(plot) as image:
        assert image.format == "JPEG"
    bad = _preview(str(dataset), "-o", str(tmp_path / "q.png"), "--stats-plot", str(tmp_path / "h.bmp"))
    assert bad.exit_code == 2, bad.output
    assert "expected .png, .jpg or .jpeg" in bad.output
