"""pycocotools: ``COCO(file)`` (json load + index), then boxes grouped per image from its index."""

from __future__ import annotations

import contextlib
import io
import json
import sys

from pycocotools.coco import COCO


def main(path: str) -> None:
    """Load, group, print counts."""
    with contextlib.redirect_stdout(io.StringIO()):  # COCO() prints progress lines
        coco = COCO(path)
    names = {k: c["name"] for k, c in coco.cats.items()}
    groups = {i: [(names[a["category_id"]], a["bbox"]) for a in coco.imgToAnns[i]] for i in coco.imgs}
    print(json.dumps({"images": len(groups), "boxes": sum(len(g) for g in groups.values())}))


if __name__ == "__main__":
    main(sys.argv[1])
