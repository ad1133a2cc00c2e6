"""Raw-parse baseline: msgspec typed decode of a COCO file, then boxes grouped per image.

The floor for any COCO reader in Python: only the fields needed to group boxes are typed, the rest
(segmentation included) is skipped by the decoder. Prints ``{"images": N, "boxes": M}``.
"""

from __future__ import annotations

import json
import sys

import msgspec


class Image(msgspec.Struct):
    id: int
    file_name: str
    width: int
    height: int


class Annotation(msgspec.Struct):
    image_id: int
    category_id: int
    bbox: tuple[float, float, float, float]


class Category(msgspec.Struct):
    id: int
    name: str


class Document(msgspec.Struct):
    images: list[Image]
    annotations: list[Annotation]
    categories: list[Category]


def main(path: str) -> None:
    """Decode, group, print counts."""
    with open(path, "rb") as f:
        document = msgspec.json.decode(f.read(), type=Document)
    names = {c.id: c.name for c in document.categories}
    groups: dict[int, list[tuple[str, tuple[float, float, float, float]]]] = {i.id: [] for i in document.images}
    for a in document.annotations:
        groups[a.image_id].append((names[a.category_id], a.bbox))
    print(json.dumps({"images": len(groups), "boxes": sum(len(g) for g in groups.values())}))


if __name__ == "__main__":
    main(sys.argv[1])
