"""Datumaro: ``Dataset.import_from(file, "coco_instances")``, then one box per COCO annotation per item.

Datumaro turns each polygon part (and each RLE) into an annotation of its own; the parts of one COCO
annotation share its ``id``, so boxes are merged per id to count what the others count.
"""

from __future__ import annotations

import json
import logging
import sys

import datumaro as dm


def main(path: str) -> None:
    """Import, group, print counts."""
    logging.disable(logging.WARNING)
    dataset = dm.Dataset.import_from(path, "coco_instances")
    images = boxes = 0
    for item in dataset:
        merged: dict[int, tuple[float, float, float, float]] = {}
        for annotation in item.annotations:
            if not hasattr(annotation, "get_bbox"):
                continue
            x, y, w, h = annotation.get_bbox()
            if annotation.id in merged:
                a, b, c, d = merged[annotation.id]
                merged[annotation.id] = (min(a, x), min(b, y), max(c, x + w), max(d, y + h))
            else:
                merged[annotation.id] = (x, y, x + w, y + h)
        images += 1
        boxes += len(merged)
    print(json.dumps({"images": images, "boxes": boxes}))


if __name__ == "__main__":
    main(sys.argv[1])
