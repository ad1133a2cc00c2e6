"""Image headers: sizes without decoding pixels."""

from __future__ import annotations

from pathlib import Path

__all__ = ["read_image_size"]


def read_image_size(path: Path) -> tuple[int, int] | None:
    """``(width, height)`` from the image file's header; ``None`` when missing or unreadable.

    imagesize parses JPEG/PNG/GIF/... headers in pure Python, much faster than opening the file
    with Pillow; Pillow's lazy open (header only, no pixel decoding) covers the formats it misses.
    """
    import imagesize

    try:
        width, height = imagesize.get(str(path))
    except (OSError, ValueError):
        width = height = -1
    if width > 0 and height > 0:
        return int(width), int(height)
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, UnidentifiedImageError, ValueError):
        return None
