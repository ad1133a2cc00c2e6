"""Raster segmentation masks for readers and writers: indexed label PNGs, the VOC colour map, mask checks.

Formats that ship raster masks (Pascal VOC, Cityscapes, KITTI, ADE20K, CamVid, CVAT's mask export) store one
class or instance index per pixel, as palette indices, gray values, or colours of a class table. Here:

- :func:`read_index_png` reads such a PNG as an index array (colours looked up in a table built by
  :func:`semantic_lookups` or :func:`palette_colors`); :func:`write_palette_png` writes one back with a palette;
  :func:`read_mask_png` reads a normalized dataset's single-channel mask PNG for an exporter, and
  :func:`export_mask_png` turns it into a palette label PNG; :func:`write_mask_png` writes annonorm's own.
- :func:`voc_palette` is the 256-colour map that the VOC devkit defined and most segmentation tools reuse.
- :func:`label_png_to_mask` reads a source label PNG as annonorm's mask, checked against its image's size, through
  :func:`to_instance_mask` or :func:`to_semantic_mask`: source indices to annonorm's mask values (``mask_kind``
  instance: k = the k-th object, void 255, or 65535 in a 16-bit mask; semantic: category id + 1, 0 background,
  255 void), a pixel that names nothing refused with the words of the ``*_problem`` functions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from annonorm.errors import InvalidDataError, ParseError
from annonorm.fsutil import require_regular_file
from annonorm.masks import MAX_8BIT_INSTANCES
from annonorm.sources.classlists import BACKGROUND, IGNORED

__all__ = [
    "INDEX_MODES",
    "VOID",
    "VOID_16",
    "color_key",
    "export_mask_png",
    "instance_mask_problem",
    "label_png_to_mask",
    "labelmap_lookups",
    "mask_size_problem",
    "palette_colors",
    "read_index_png",
    "read_mask_png",
    "semantic_lookups",
    "semantic_mask_problem",
    "to_instance_mask",
    "to_semantic_mask",
    "voc_palette",
    "write_mask_png",
    "write_palette_png",
]

#: PNG modes whose pixels are indices already (palette, gray, 16- and 32-bit gray).
INDEX_MODES = frozenset({"P", "L", "I;16", "I;16L", "I;16B", "I"})
#: The void (ignore) value of an 8-bit mask, and of a 16-bit instance mask.
VOID, VOID_16 = 255, 65535
Color = tuple[int, int, int]


def voc_palette() -> list[Color]:
    """The 256-colour VOC map: index i's colour spreads i's bits over the high bits of R, G, B."""
    colors = []
    for index in range(256):
        red = green = blue = 0
        value = index
        for shift in range(7, -1, -1):
            red |= (value & 1) << shift
            green |= ((value >> 1) & 1) << shift
            blue |= ((value >> 2) & 1) << shift
            value >>= 3
        colors.append((red, green, blue))
    return colors


def color_key(red: int, green: int, blue: int) -> int:
    """One integer for an RGB colour (``r << 16 | g << 8 | b``), the key of the colour tables here."""
    return (red << 16) | (green << 8) | blue


def palette_colors(palette: Sequence[Color]) -> dict[int, int]:
    """Colour key -> index for a palette (an instance mask drawn in palette colours)."""
    return {color_key(*color): index for index, color in enumerate(palette)}


def semantic_lookups(
    values: Sequence[int], colors: Sequence[Sequence[int] | None], *, void_color: Color
) -> tuple[dict[int, int], tuple[int, ...]]:
    """The colour table and the index table of a class table whose entry i has mask value ``values[i]``
    (-1: a class the dataset lacks) and colour ``colors[i]`` (``None``: none). The colour table maps each
    colour to its first entry and ``void_color`` to :data:`VOID`; the index table (256 values) maps an index to
    its mask value, :data:`VOID` to itself unless an entry says otherwise, and every other index to -1."""
    lut = [-1] * 256
    lut[VOID] = VOID
    table: dict[int, int] = {}
    for index, (value, color) in enumerate(zip(values[:256], colors[:256], strict=True)):
        if color is not None:
            table.setdefault(color_key(*color), index)
        lut[index] = value
    table.setdefault(color_key(*void_color), VOID)
    return table, tuple(lut)


def labelmap_lookups(
    entries: Sequence[Mapping[str, Any]], category_id: Callable[[str], int | None], *, void_color: Color
) -> tuple[dict[int, int], tuple[int, ...]]:
    """:func:`semantic_lookups` for a label PNG indexed by a labelmap (entry i, ``{"name", "color"?}``, is index
    i; at most 256): ``background`` is 0, ``ignored`` :data:`VOID`, a category its id + 1, and a name that
    ``category_id`` does not know (None) -1, so that a pixel of it is refused."""
    names = [entry["name"] for entry in entries[:256]]
    ids = [None if name in (BACKGROUND, IGNORED) else category_id(name) for name in names]
    values = [
        0 if name == BACKGROUND else VOID if name == IGNORED else -1 if id_ is None else id_ + 1
        for name, id_ in zip(names, ids, strict=True)
    ]
    return semantic_lookups(values, [entry.get("color") for entry in entries[:256]], void_color=void_color)


def read_index_png(
    path: Path, colors: dict[int, int], *, what: str = "mask PNG", table: str = "the palette or labelmap"
) -> np.ndarray:
    """The index array (int64, height x width) of the label PNG ``path``.

    Palette and gray PNGs give their pixel values; an RGB(A) one gives, per pixel, ``colors[r << 16 |
    g << 8 | b]``. A colour not in ``colors`` (``table`` names it in the error) or another mode is an
    :class:`InvalidDataError`; a file that is no readable image (or a pixel bomb) a :class:`ParseError`.
    """
    from PIL import Image, UnidentifiedImageError

    require_regular_file(path, what)
    try:
        with Image.open(path) as image:
            if image.mode in INDEX_MODES:
                return np.asarray(image).astype(np.int64)
            if image.mode not in ("RGB", "RGBA"):
                raise InvalidDataError(f"mask mode {image.mode}; expected a palette, gray or RGB PNG", file=path)
            rgb = np.asarray(image.convert("RGB")).astype(np.int64)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ParseError(f"cannot read the {what}: {exc}", file=path) from None
    keys = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    unique, inverse = np.unique(keys, return_inverse=True)
    indices = np.empty(len(unique), dtype=np.int64)
    for position, key in enumerate(unique.tolist()):
        if key not in colors:
            raise InvalidDataError(f"color {(key >> 16, (key >> 8) & 255, key & 255)} is not in {table}", file=path)
        indices[position] = colors[key]
    return indices[inverse].reshape(keys.shape)


def read_mask_png(path: Path) -> np.ndarray:
    """The values (int64, height x width) of a normalized dataset's mask PNG, for an exporter.

    A file that cannot be read as an image (missing, truncated, a pixel bomb) or that has several channels is
    an :class:`InvalidDataError` naming it.
    """
    from PIL import Image

    try:
        with Image.open(path) as image:
            values = np.asarray(image).astype(np.int64)
    # missing, truncated, not an image (UnidentifiedImageError is an OSError), or a pixel bomb
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InvalidDataError(f"cannot read the mask: {exc}", file=path) from None
    if values.ndim != 2:
        raise InvalidDataError(f"mask has {values.shape[2]} channels; expected a single-channel mask", file=path)
    return values


def write_palette_png(values: np.ndarray, palette: Sequence[Color], path: Path) -> None:
    """Write 8-bit ``values`` as a palette PNG whose colours are ``palette`` (index i -> ``palette[i]``)."""
    from PIL import Image

    image = Image.fromarray(values.astype(np.uint8))
    image = image.convert("P") if image.mode != "P" else image
    image.putpalette([channel for color in palette for channel in color])
    image.save(path, format="PNG")


def write_mask_png(mask: np.ndarray, path: Path) -> None:
    """Write an annonorm mask (uint8, or uint16 for a large instance mask) as a plain ``L`` / ``I;16`` PNG."""
    from PIL import Image

    Image.fromarray(mask).save(path, format="PNG")


def export_mask_png(
    source: Path, target: Path, palette: Sequence[Color], *, objects: int | None, file: str, holder: str
) -> None:
    """Write a normalized dataset's mask PNG ``source`` as an 8-bit palette PNG at ``target``. An instance
    mask (``objects``: its record's boxes) has its 16-bit void (65535) back to :data:`VOID`; more objects
    than 8 bits hold is an :class:`InvalidDataError` naming ``file`` (``holder`` names the target kind)."""
    values = read_mask_png(source)
    if objects is not None:
        if objects > MAX_8BIT_INSTANCES:
            raise InvalidDataError(f"{objects} objects; {holder} holds at most {MAX_8BIT_INSTANCES}", file=file)
        values = np.where(values == VOID_16, VOID, values)
    write_palette_png(values, palette, target)


def mask_size_problem(*, mask: tuple[int, int], image: tuple[int, int]) -> str | None:
    """Why a mask of ``(width, height)`` cannot be the mask of an image of that size, or None."""
    if mask == image:
        return None
    return f"mask is {mask[0]}x{mask[1]} but the image is {image[0]}x{image[1]}; expected the same size"


def instance_mask_problem(
    *, values: Iterable[int], objects: int, void: int, objects_are: str = "the annotation's objects"
) -> str | None:
    """Why an instance mask with these pixel ``values`` does not fit an annotation of ``objects`` objects
    (``objects_are`` says where they are listed), or None."""
    bad = [int(v) for v in values if v < 0 or (v > objects and v != void)]
    if not bad:
        return None
    return f"pixel value {bad[0]} names no object; expected 0, 1..{objects} ({objects_are}) or {void} (void)"


def to_instance_mask(
    *, indices: np.ndarray, objects: int, file: str, objects_are: str = "the annotation's objects"
) -> np.ndarray:
    """Source instance indices (k = the k-th object, 255 or 65535 void) as an annonorm instance mask (uint8,
    or uint16 above 254 objects); a pixel naming no object is an :class:`InvalidDataError` naming ``file``."""
    void = VOID_16 if indices.max(initial=0) > VOID else VOID
    values = np.unique(indices).tolist()
    problem = instance_mask_problem(values=values, objects=objects, void=void, objects_are=objects_are)
    if problem is not None:
        raise InvalidDataError(problem, file=file)
    if objects <= MAX_8BIT_INSTANCES:
        return np.where(indices == void, VOID, indices).astype(np.uint8)
    return np.where(indices == void, VOID_16, indices).astype(np.uint16)


def semantic_mask_problem(*, values: Iterable[int], lut: Sequence[int], table: str = "the class table") -> str | None:
    """Why a semantic mask with these pixel ``values`` names a class that the index table ``lut`` (from
    :func:`semantic_lookups`; ``table`` names its source) lacks, or None."""
    bad = [int(v) for v in values if v < 0 or v >= len(lut) or lut[v] < 0]
    return f"pixel value {bad[0]} is not a class index of {table}" if bad else None


def to_semantic_mask(
    *, indices: np.ndarray, lut: Sequence[int], file: str, table: str = "the class table"
) -> np.ndarray:
    """Source class indices as an annonorm semantic mask (uint8: ``lut[i]``, id + 1, 0 background, 255 void);
    an index the table lacks is an :class:`InvalidDataError` naming ``file``."""
    problem = semantic_mask_problem(values=np.unique(indices).tolist(), lut=lut, table=table)
    if problem is not None:
        raise InvalidDataError(problem, file=file)
    return np.asarray(lut, dtype=np.int64)[indices].astype(np.uint8)


def label_png_to_mask(
    path: Path,
    colors: dict[int, int],
    *,
    size: tuple[int, int] | None,
    objects: int | None = None,
    lut: Sequence[int] = (),
    objects_are: str = "the annotation's objects",
    table: str = "the class table",
) -> np.ndarray:
    """A source label PNG as an annonorm mask: its indices (:func:`read_index_png` with ``colors``), checked
    against the image's ``(width, height)`` when known, then an instance mask of ``objects`` objects
    (:func:`to_instance_mask`) or, without ``objects``, a semantic one through ``lut`` (:func:`to_semantic_mask`)."""
    indices = read_index_png(path, colors)
    problem = None if size is None else mask_size_problem(mask=(indices.shape[1], indices.shape[0]), image=size)
    if problem is not None:
        raise InvalidDataError(problem, file=path)
    if objects is not None:
        return to_instance_mask(indices=indices, objects=objects, file=str(path), objects_are=objects_are)
    return to_semantic_mask(indices=indices, lut=lut, file=str(path), table=table)
