"""pycocotools, one process: every image's instance mask PNG drawn the ``annToMask`` way, encoded by Pillow.

    python masks_pycocotools.py INSTANCES.json OUT_DIR

For each image with at least one segmentation (annotations in file order, as annonorm numbers an
image's boxes): each annotation's mask at full image size (``frPyObjects`` of its polygons or RLE,
``merge``, ``decode``: what ``COCO.annToMask`` does), painted with its 1-based index into one canvas
(a later box covers an earlier one; ``uint8`` up to 254 boxes, ``uint16`` above: annonorm's instance
PNG), saved with Pillow's PNG defaults to ``OUT_DIR/<file name>.png``. Prints the counts as JSON.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

#: An instance mask is 8-bit up to this many boxes (as annonorm's).
MAX_8BIT_INSTANCES = 254


def full_image_mask(segmentation: Any, height: int, width: int) -> np.ndarray:
    """One annotation's pixels at full image size, as ``COCO.annToMask`` computes them."""
    if isinstance(segmentation, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation["counts"], list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = segmentation
    return mask_utils.decode(rle)


def main(source: str, out: str) -> None:
    """Load the file, draw and save every mask, print the counts."""
    with open(source, encoding="utf-8") as f:
        document = json.load(f)
    per_image: dict[int, list[Any]] = {image["id"]: [] for image in document["images"]}
    for annotation in document["annotations"]:
        per_image[annotation["image_id"]].append(annotation.get("segmentation"))
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    masks = pixels = 0
    for image in document["images"]:
        segmentations = per_image[image["id"]]
        if not any(segmentations):
            continue
        height, width = image["height"], image["width"]
        dtype = np.uint8 if len(segmentations) <= MAX_8BIT_INSTANCES else np.uint16
        canvas = np.zeros((height, width), dtype=dtype)
        for index, segmentation in enumerate(segmentations, start=1):
            if segmentation:
                canvas[full_image_mask(segmentation, height, width) > 0] = index
        Image.fromarray(canvas).save(folder / Path(image["file_name"]).with_suffix(".png").name)
        masks += 1
        pixels += int(np.count_nonzero(canvas))
    print(json.dumps({"images": len(document["images"]), "masks": masks, "mask_pixels": pixels}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
