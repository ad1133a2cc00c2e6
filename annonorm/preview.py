"""``annonorm preview``: a contact sheet of images with their boxes, class names and masks.

Made for one question: did the conversion put the boxes in the right place? Each tile shows one
record's image scaled to fit, its mask (optional) blended over it, every box outlined in its
class's color with the class name on a tag, and a caption (record index, image path, box count).
A missing or unreadable image becomes a grey tile with a note, its boxes still drawn at the
record's size, so a broken image root is visible rather than fatal.

The sheet is a PNG or a JPEG, as the output's suffix says (``.png``, ``.jpg``, ``.jpeg``). It is
written atomically (a temporary file beside it, renamed into place), never replaces an existing
file without ``force``, never a directory, and never a file of the dataset or of its image folder.

Colors are stable per category id (golden-ratio hues, never Python's per-process salted
``hash``), so the same class has the same color in every preview of every run. Everything is drawn
with Pillow and its built-in font: no matplotlib, no font download.

:func:`render_class_histogram` draws the per-class box (or image) counts of
:func:`annonorm.stats.compute_stats` as a bar chart, per split, in the same class colors.
"""

from __future__ import annotations

import colorsys
import contextlib
import math
import os
import stat
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

from annonorm.errors import OutputExistsError, UsageError
from annonorm.fsutil import OutputError, check_overlap
from annonorm.io import NormalizedSource, open_dataset
from annonorm.stats import DatasetStats, malformed, trusted_records

__all__ = ["IMAGE_FORMATS", "Preview", "Tile", "class_color", "render_class_histogram", "render_preview"]

#: Hue step between consecutive category ids: the golden ratio spreads any number of hues evenly.
GOLDEN_RATIO_CONJUGATE = 0.618033988749895
BACKGROUND = (24, 24, 24)
TILE_BACKGROUND = (44, 44, 44)
MISSING_FILL = (128, 128, 128)
TEXT = (232, 232, 232)
MUTED = (160, 160, 160)
#: Opacity (0-255) of a mask's class color over the image, and of void (ignore) pixels.
MASK_ALPHA = 115
VOID_ALPHA = 90
PADDING = 8
DEFAULT_COUNT = 16
DEFAULT_TILE = 256
#: Output suffix (lower case) -> Pillow format.
IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}
JPEG_QUALITY = 90


def class_color(category_id: int) -> tuple[int, int, int]:
    """The RGB color of a category id: the same in every run and process, neighbours far apart in hue."""
    hue = (0.11 + category_id * GOLDEN_RATIO_CONJUGATE) % 1.0
    value = 0.95 if (category_id // 8) % 2 == 0 else 0.72  # a second ring of darker hues after 8 classes
    red, green, blue = colorsys.hsv_to_rgb(hue, 0.85, value)
    return round(red * 255), round(green * 255), round(blue * 255)


def _text_color(fill: tuple[int, int, int]) -> tuple[int, int, int]:
    luminance = 0.299 * fill[0] + 0.587 * fill[1] + 0.114 * fill[2]
    return (0, 0, 0) if luminance > 140 else (255, 255, 255)


def _font(size: int) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: only the fixed bitmap font
        return ImageFont.load_default()


@dataclass(frozen=True)
class Tile:
    """Where one record landed on the sheet: its image's top-left corner and scale, and any problem."""

    index: int
    image: str
    x: int
    y: int
    scale_x: float
    scale_y: float
    note: str | None = None


@dataclass(frozen=True)
class Preview:
    """A written preview: its file, split, pixel size and tiles."""

    path: Path
    split: str
    size: tuple[int, int]
    tiles: list[Tile]


# ---------------------------------------------------------------------------------------------- output


def _output_format(out: Path, force: bool) -> str:
    """The Pillow format ``out`` asks for; refuse a directory, an unknown suffix, an existing file without force."""
    if out.is_dir():
        raise UsageError(f"{out} is a directory; expected an image file name ending in .png, .jpg or .jpeg")
    image_format = IMAGE_FORMATS.get(out.suffix.lower())
    if image_format is None:
        found = f"the suffix {out.suffix!r}" if out.suffix else "no suffix"
        raise UsageError(f"-o {out}: {found}; expected .png, .jpg or .jpeg (the suffix chooses the format)")
    if os.path.lexists(out):
        if not force:
            raise OutputExistsError("exists; pass --force to replace it", file=out)
        if not out.is_symlink() and not stat.S_ISREG(os.lstat(out).st_mode):
            raise OutputError(f"{out} exists and is not a regular file; remove it yourself")
    return image_format


def _check_inputs(out: Path, dataset: Path, image_root: Path) -> None:
    """The preview never writes into the dataset, nor over a file of its image folder (symlinks resolved)."""
    check_overlap(out, [dataset])
    resolved, root = os.path.realpath(out), os.path.realpath(image_root)
    if os.path.lexists(out) and os.path.commonpath([resolved, root]) == root:
        raise UsageError(f"output {out} is a file in the dataset's image folder {image_root}; choose another -o")


def _save(image: Image.Image, out: Path, image_format: str) -> None:
    """Write ``image`` to a temporary file beside ``out`` and rename it into place (nothing left on failure)."""
    parent = out.parent
    created: list[Path] = []
    try:
        missing = [p for p in (parent, *parent.parents) if not p.exists() and not p.is_symlink()]
        for directory in reversed(missing):
            directory.mkdir()
            created.append(directory)
        temporary = parent / f".annonorm-preview-{uuid.uuid4().hex[:12]}.tmp"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    except OSError as exc:
        for directory in reversed(created):
            with contextlib.suppress(OSError):
                directory.rmdir()
        raise OutputError(f"cannot write the preview: {exc.strerror}", file=out) from None
    try:
        with os.fdopen(descriptor, "wb") as stream:
            if image_format == "JPEG":
                image.convert("RGB").save(stream, format="JPEG", quality=JPEG_QUALITY)
            else:
                image.save(stream, format=image_format)
        os.replace(temporary, out)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        for directory in reversed(created):
            with contextlib.suppress(OSError):
                directory.rmdir()
        if isinstance(exc, OSError):
            raise OutputError(f"cannot write the preview: {exc.strerror}", file=out) from None
        raise


# ---------------------------------------------------------------------------------------------- selection


def _select(
    source: NormalizedSource, split: str, count: int, indices: Sequence[int] | None
) -> list[tuple[int, dict[str, Any]]]:
    """The records to show, as ``(index in split, record)``: the first ``count``, or those at ``indices``."""
    if indices:
        wanted = dict.fromkeys(indices)
        if min(wanted) < 0:
            raise UsageError(f"record index {min(wanted)} is negative; expected 0 or more")
        found: dict[int, dict[str, Any]] = {}
        total = 0
        for number, record in trusted_records(source, split):
            position, total = number - 1, number
            if position in wanted:
                found[position] = record
                if len(found) == len(wanted):
                    break
        missing = [i for i in wanted if i not in found]
        if missing:
            raise UsageError(
                f"record index {missing[0]} is out of range: split {split!r} has {total} records",
                file=source.split_path(split),
            )
        return [(i, found[i]) for i in wanted]
    if count < 1:
        raise UsageError(f"count must be at least 1, not {count}")
    chosen = []
    for number, record in trusted_records(source, split):
        if number > count:
            break
        chosen.append((number - 1, record))
    return chosen


# ---------------------------------------------------------------------------------------------- drawing


def _load_image(path: Path, root: Path, size: tuple[int, int]) -> tuple[Image.Image | None, str | None]:
    """The image at ``path`` resized to ``size``, or ``None`` and why not."""
    if os.path.commonpath([os.path.realpath(path), os.path.realpath(root)]) != os.path.realpath(root):
        return None, "image path leaves image_root"
    try:
        with Image.open(path) as opened:
            opened.draft("RGB", size)  # JPEG: decode at a reduced scale when the tile is small
            return opened.convert("RGB").resize(size, Image.Resampling.BILINEAR), None
    except FileNotFoundError:
        return None, "image missing"
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as exc:
        return None, f"image unreadable ({type(exc).__name__})"


def _mask_overlay(
    path: Path, size: tuple[int, int], kind: str | None, box_classes: Sequence[int]
) -> tuple[Image.Image | None, str | None]:
    """An RGBA layer coloring the mask's pixels by class (instance: box k's class; semantic: id + 1)."""
    try:
        with Image.open(path) as opened:
            mask = opened.resize(size, Image.Resampling.NEAREST)  # labels must not be interpolated
            values = np.asarray(mask)
    except FileNotFoundError:
        return None, "mask missing"
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as exc:
        return None, f"mask unreadable ({type(exc).__name__})"
    if values.ndim != 2:
        return None, f"mask is not single-channel ({mask.mode})"
    void = 65535 if values.dtype.itemsize > 1 else 255  # the dtype's maximum is void/ignore
    table = np.zeros((void + 1, 4), dtype=np.uint8)
    if kind == "semantic":
        for value in range(1, min(void, 4096)):
            table[value] = (*class_color(value - 1), MASK_ALPHA)  # pixel = category id + 1
    else:
        for position, category in enumerate(box_classes, start=1):  # pixel k = the k-th box, 1-based
            if position < void:
                table[position] = (*class_color(category), MASK_ALPHA)
    table[void] = (255, 255, 255, VOID_ALPHA)
    layer = table[np.clip(values.astype(np.int64), 0, void)]
    return Image.fromarray(layer, "RGBA"), None


def _box_pixels(box: dict[str, Any], scale_x: float, scale_y: float) -> tuple[int, int, int, int]:
    """A box's outline corners in tile pixels.

    annonorm corners are continuous edges (a box from x1=10 to x2=20 covers pixels 10..19);
    Pillow's rectangle corners are inclusive pixel positions, hence ``ceil(x2) - 1``.
    """
    left = math.floor(box["x1"] * scale_x)
    top = math.floor(box["y1"] * scale_y)
    right = max(left, math.ceil(box["x2"] * scale_x) - 1)
    bottom = max(top, math.ceil(box["y2"] * scale_y) - 1)
    return left, top, right, bottom


def _fit(text: str, font: Any, width: int, draw: ImageDraw.ImageDraw) -> str:
    """``text`` shortened from the left (paths end with the informative part) to fit ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength("…" + text, font=font) > width:
        text = text[1:]
    return "…" + text


class _Sheet:
    """The canvas and the drawing of tiles, captions and the legend."""

    def __init__(
        self, tile: int, columns: int, rows: int, title: str, legend: list[tuple[int, str]], labels: bool = True
    ) -> None:
        self.tile = tile
        self.labels = labels
        self.font = _font(max(10, tile // 20))
        probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
        self.line = int(probe.textbbox((0, 0), "Ag", font=self.font)[3]) + 3
        self.outline = max(1, round(tile / 128))
        self.cell_height = tile + 2 * self.line + PADDING
        width = PADDING + columns * (tile + PADDING)
        legend_rows = self._legend_layout(probe, legend, width)
        height = PADDING + self.line + PADDING + rows * self.cell_height + len(legend_rows) * self.line + PADDING
        self.image = Image.new("RGB", (width, height), BACKGROUND)
        self.draw = ImageDraw.Draw(self.image)
        self.draw.text(
            (PADDING, PADDING), _fit(title, self.font, width - 2 * PADDING, probe), fill=TEXT, font=self.font
        )
        self.top = PADDING + self.line + PADDING
        self.columns = columns
        legend_top = self.top + rows * self.cell_height
        for number, entries in enumerate(legend_rows):
            for x, category, name in entries:
                y = legend_top + number * self.line
                side = self.line - 5
                self.draw.rectangle((x, y + 1, x + side, y + side), fill=class_color(category))
                self.draw.text((x + side + 4, y), name, fill=TEXT, font=self.font)

    def _legend_layout(
        self, probe: ImageDraw.ImageDraw, legend: list[tuple[int, str]], width: int
    ) -> list[list[tuple[int, int, str]]]:
        rows: list[list[tuple[int, int, str]]] = [[]]
        x = PADDING
        for category, name in legend:
            needed = self.line + 4 + int(probe.textlength(name, font=self.font)) + 2 * PADDING
            if rows[-1] and x + needed > width:
                rows.append([])
                x = PADDING
            rows[-1].append((x, category, name))
            x += needed
        return rows if rows[0] else []

    def cell(self, position: int) -> tuple[int, int]:
        column, row = position % self.columns, position // self.columns
        return PADDING + column * (self.tile + PADDING), self.top + row * self.cell_height

    def place(
        self,
        position: int,
        index: int,
        record: dict[str, Any],
        picture: Image.Image | None,
        size: tuple[int, int],
        scale: tuple[float, float],
        overlay: Image.Image | None,
        box_classes: Sequence[int],
        names: Sequence[str],
        notes: list[str],
    ) -> Tile:
        cell_x, cell_y = self.cell(position)
        self.draw.rectangle((cell_x, cell_y, cell_x + self.tile - 1, cell_y + self.tile - 1), fill=TILE_BACKGROUND)
        x, y = cell_x + (self.tile - size[0]) // 2, cell_y + (self.tile - size[1]) // 2
        base = picture if picture is not None else Image.new("RGB", size, MISSING_FILL)
        if overlay is not None:
            base = Image.alpha_composite(base.convert("RGBA"), overlay).convert("RGB")
        self.image.paste(base, (x, y))
        if picture is None:
            self._centered_note(notes[0], x, y, size)
        tags = []
        for box, category in zip(record.get("boxes") or (), box_classes, strict=True):
            left, top, right, bottom = _box_pixels(box, *scale)
            color = class_color(category)
            self.draw.rectangle((x + left, y + top, x + right, y + bottom), outline=color, width=self.outline)
            if self.labels:
                tags.append((x + left, y + top, color, names[category]))
        for left, top, color, name in tags:  # tags after all outlines, so no outline crosses a name
            self._tag(name, left, top, color, y)
        caption = f"#{index} {record.get('image', '?')}"
        count = len(record.get("boxes") or ())
        detail = f"{count} box{'es' if count != 1 else ''}" + "".join(f" · {n}" for n in notes)
        limit = self.tile
        self.draw.text(
            (cell_x, cell_y + self.tile + 2), _fit(caption, self.font, limit, self.draw), fill=TEXT, font=self.font
        )
        self.draw.text(
            (cell_x, cell_y + self.tile + 2 + self.line),
            _fit(detail, self.font, limit, self.draw),
            fill=MUTED,
            font=self.font,
        )
        return Tile(index, str(record.get("image", "")), x, y, scale[0], scale[1], "; ".join(notes) or None)

    def _tag(self, name: str, left: int, top: int, color: tuple[int, int, int], image_top: int) -> None:
        """The class name on a filled tag, above the box's top-left corner (inside it at the image's top)."""
        text_width = int(self.draw.textlength(name, font=self.font))
        height = self.line - 1
        tag_top = top - height if top - height >= image_top else top
        self.draw.rectangle((left, tag_top, left + text_width + 4, tag_top + height - 1), fill=color)
        self.draw.text((left + 2, tag_top), name, fill=_text_color(color), font=self.font)

    def _centered_note(self, note: str, x: int, y: int, size: tuple[int, int]) -> None:
        text = _fit(note, self.font, max(size[0] - 4, 8), self.draw)
        width = self.draw.textlength(text, font=self.font)
        self.draw.text((x + (size[0] - width) / 2, y + (size[1] - self.line) / 2), text, fill=TEXT, font=self.font)


def _tile_geometry(record: dict[str, Any], image_path: Path, tile: int) -> tuple[tuple[int, int], tuple[float, float]]:
    """The drawn image size and the record-to-tile scale (record size, else the image header, else the boxes)."""
    width, height = record.get("width"), record.get("height")
    if not width or not height:
        try:
            with Image.open(image_path) as opened:
                width, height = opened.size
        except (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError):
            boxes = record.get("boxes") or ()
            width = max([b["x2"] for b in boxes] + [1.0])
            height = max([b["y2"] for b in boxes] + [1.0])
    factor = tile / max(width, height)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return size, (size[0] / width, size[1] / height)


def render_preview(
    dataset: str | Path,
    out: str | Path,
    *,
    split: str | None = None,
    count: int = DEFAULT_COUNT,
    indices: Sequence[int] | None = None,
    masks: bool = False,
    tile_size: int = DEFAULT_TILE,
    columns: int | None = None,
    image_root: str | Path | None = None,
    labels: bool = True,
    force: bool = False,
) -> Preview:
    """Draw the first ``count`` records of ``split`` (or those at ``indices``) into an image at ``out``.

    ``out`` ends in ``.png`` or ``.jpg``/``.jpeg``, which chooses the format; an existing file is
    replaced only with ``force``; a directory, a file of the dataset or of its image folder never.
    ``split`` defaults to the manifest's first split. ``masks`` blends each record's mask over
    its image. ``labels=False`` draws the boxes without their class names (the legend stays).
    ``image_root`` overrides the manifest's. Problems with single images or masks become notes on
    their tiles; a bad split, index, output or dataset raises an AnnonormError.
    """
    if not 16 <= tile_size <= 2048:
        raise UsageError(f"tile size must be between 16 and 2048 pixels, not {tile_size}")
    out_path = Path(out)
    image_format = _output_format(out_path, force)
    source = open_dataset(Path(dataset))
    root = Path(os.path.abspath(image_root)) if image_root is not None else source.image_root()
    _check_inputs(out_path, source.root, root)
    manifest = source.manifest
    chosen_split = split or next(iter(manifest.splits))
    if chosen_split not in manifest.splits:
        raise UsageError(
            f"no split {chosen_split!r}; this dataset has {', '.join(map(repr, manifest.splits))}", file=source.root
        )
    if masks and manifest.mask_kind is None:
        raise UsageError("--masks: this dataset has no masks (its manifest sets no mask_kind)", file=source.root)
    selected = _select(source, chosen_split, count, indices)
    names = list(manifest.category_names)
    ids = {name: position for position, name in enumerate(names)}
    shown: dict[int, None] = {}
    for index, record in selected:
        try:
            for box in record.get("boxes") or ():
                if box["name"] not in ids:  # not in the manifest (validate reports it): still drawn
                    ids[box["name"]] = len(names)
                    names.append(box["name"])
                shown[ids[box["name"]]] = None
        except (KeyError, TypeError, AttributeError) as exc:
            raise malformed(exc, source.split_path(chosen_split), index + 1) from None
    legend = [(category, names[category]) for category in sorted(shown)]
    columns = columns or max(1, math.ceil(math.sqrt(len(selected))))
    if columns < 1:
        raise UsageError(f"columns must be at least 1, not {columns}")
    rows = max(1, math.ceil(len(selected) / columns))
    title = f"{manifest.name} · split {chosen_split} · {len(selected)} records"
    sheet = _Sheet(tile_size, min(columns, max(1, len(selected))), rows, title, legend, labels)
    tiles = []
    for position, (index, record) in enumerate(selected):
        try:
            tiles.append(_draw_record(sheet, source, root, position, index, record, tile_size, masks, ids, names))
        except (KeyError, TypeError, AttributeError, ValueError) as exc:  # the preview trusts the data
            raise malformed(exc, source.split_path(chosen_split), index + 1) from None
    _save(sheet.image, out_path, image_format)
    return Preview(path=out_path, split=chosen_split, size=sheet.image.size, tiles=tiles)


def _draw_record(
    sheet: _Sheet,
    source: NormalizedSource,
    root: Path,
    position: int,
    index: int,
    record: dict[str, Any],
    tile_size: int,
    masks: bool,
    ids: dict[str, int],
    names: list[str],
) -> Tile:
    """Load one record's image (and mask) and place it on the sheet."""
    image_path = root / str(record.get("image", ""))
    size, scale = _tile_geometry(record, image_path, tile_size)
    picture, problem = _load_image(image_path, root, size)
    notes = [problem] if problem else []
    box_classes = [ids[box["name"]] for box in record.get("boxes") or ()]
    overlay = None
    if masks and record.get("mask"):
        kind = source.manifest.mask_kind
        overlay, mask_problem = _mask_overlay(source.root / record["mask"], size, kind, box_classes)
        notes += [mask_problem] if mask_problem else []
    return sheet.place(position, index, record, picture, size, scale, overlay, box_classes, names, notes)


# ---------------------------------------------------------------------------------------------- histogram


def render_class_histogram(stats: DatasetStats, out: str | Path, *, metric: str = "boxes", force: bool = False) -> Path:
    """Draw per-class ``boxes`` (or ``images``) counts as horizontal bars, one per split, into a PNG or JPEG.

    The output follows the rules of :func:`render_preview` (suffix, ``force``, atomic write).
    """
    if metric not in ("boxes", "images"):
        raise UsageError(f"metric must be 'boxes' or 'images', not {metric!r}")
    out_path = Path(out)
    image_format = _output_format(out_path, force)
    dataset = Path(stats.dataset)
    check_overlap(out_path, [dataset.parent if dataset.is_file() else dataset])
    font = _font(12)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line = int(probe.textbbox((0, 0), "Ag", font=font)[3]) + 4
    splits = list(stats.splits)
    names = list(dict.fromkeys([*stats.categories, *(c.name for s in stats.splits.values() for c in s.classes)]))
    values = {(split, c.name): getattr(c, metric) for split, s in stats.splits.items() for c in s.classes}
    largest = max([*values.values(), 1])
    name_width = int(max([probe.textlength(n, font=font) for n in names] + [40])) + line
    split_width = int(max([probe.textlength(s, font=font) for s in splits] + [20]))
    bar_max = 400
    number_width = int(probe.textlength(str(largest), font=font)) + PADDING
    left = PADDING + name_width + PADDING + split_width + PADDING
    width = left + bar_max + PADDING + number_width + PADDING
    group = len(splits) * line + PADDING
    height = PADDING + 2 * line + len(names) * group + PADDING
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.text((PADDING, PADDING), f"{stats.name}: {metric} per class", fill=TEXT, font=font)
    top = PADDING + 2 * line
    for category, name in enumerate(names):
        y = top + category * group
        color = class_color(category)
        draw.rectangle((PADDING, y + 3, PADDING + line - 8, y + line - 5), fill=color)
        draw.text((PADDING + line - 2, y), _fit(name, font, name_width - line, draw), fill=TEXT, font=font)
        for number, split in enumerate(splits):
            row = y + number * line
            value = values.get((split, name), 0)
            draw.text((PADDING + name_width + PADDING, row), split, fill=MUTED, font=font)
            length = round(bar_max * value / largest)
            if length:
                draw.rectangle((left, row + 2, left + length - 1, row + line - 3), fill=color)
            draw.text((left + length + 4, row), str(value), fill=TEXT, font=font)
    _save(image, out_path, image_format)
    return out_path
