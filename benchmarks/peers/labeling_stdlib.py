"""One-process stdlib floors for the labeling-tool formats: parse every file, group objects per image, print counts.

``python labeling_stdlib.py FORMAT SOURCE`` with FORMAT one of ``yolo`` (every ``labels/**/*.txt``, rows split),
``labelme`` (``json.load`` of every ``*.json``, shapes per file), ``cvat`` (ElementTree ``iterparse`` of one
XML file, the shapes of each ``<image>``) and ``labelstudio`` (``json.load`` of every ``*.json`` export, results
of each task's first annotation). No validation, no safety checks, no output written: what reading costs.
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path


def text_rows(paths: Iterable[Path], min_fields: int = 1) -> tuple[int, int]:
    """One image per text file, one object per row of at least ``min_fields`` fields (1: any non-blank row)."""
    images = boxes = 0
    for path in sorted(paths):
        rows = [line.split() for line in path.read_text().splitlines()]
        images += 1
        boxes += sum(1 for row in rows if len(row) >= min_fields)
    return images, boxes


def yolo(root: Path) -> tuple[int, int]:
    return text_rows(root.glob("labels/**/*.txt"))


def labelme(root: Path) -> tuple[int, int]:
    images = boxes = 0
    for path in sorted(root.rglob("*.json")):
        with path.open("rb") as f:
            document = json.load(f)
        images += 1
        boxes += len(
            {
                # shapes sharing (label, group_id) are one object; an ungrouped shape is one on its own
                (s.get("label"), ("group", s["group_id"]) if s.get("group_id") is not None else ("shape", i))
                for i, s in enumerate(document.get("shapes", []))
            }
        )
    return images, boxes


def cvat(root: Path) -> tuple[int, int]:
    images = boxes = 0
    for path in sorted(root.glob("*.xml")):
        for _, element in ET.iterparse(path):
            if element.tag == "image":
                images += 1
                boxes += sum(1 for child in element if child.tag in ("box", "polygon", "polyline", "points", "mask"))
                element.clear()
    return images, boxes


def labelstudio(root: Path) -> tuple[int, int]:
    images = boxes = 0
    for path in sorted(root.glob("*.json")):
        with path.open("rb") as f:
            tasks = json.load(f)
        for task in tasks:
            images += 1
            annotations = task.get("annotations") or [{}]
            results = annotations[0].get("result", [])
            # a result with a parentID (a crowd box's brush mask, keypoints) belongs to its parent's object
            boxes += len({r.get("id") for r in results if r.get("type") != "choices" and not r.get("parentID")})
    return images, boxes


if __name__ == "__main__":
    count = {"yolo": yolo, "labelme": labelme, "cvat": cvat, "labelstudio": labelstudio}[sys.argv[1]]
    found_images, found_boxes = count(Path(sys.argv[2]))
    print(json.dumps({"images": found_images, "boxes": found_boxes}))
