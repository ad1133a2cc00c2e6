"""supervision: ``DetectionDataset.from_coco(images_dir, file)``: per-image Detections (boxes grouped).

Since supervision loads a dense boolean mask (N x H x W) for every image whose annotations carry a
segmentation, its memory grows with image area times boxes; there is no option to skip them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import supervision as sv


def main(path: str) -> None:
    """Load, print counts (boxes are already grouped per image)."""
    dataset = sv.DetectionDataset.from_coco(str(Path(path).parent), path, force_masks=False)
    detections = [dataset.annotations[image] for image in dataset.image_paths]
    print(json.dumps({"images": len(detections), "boxes": sum(len(d) for d in detections)}))


if __name__ == "__main__":
    main(sys.argv[1])
