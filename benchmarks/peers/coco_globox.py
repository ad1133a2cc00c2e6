"""globox: ``AnnotationSet.from_coco(file)``, which builds one Annotation (boxes) per image."""

from __future__ import annotations

import json
import sys

from globox import AnnotationSet


def main(path: str) -> None:
    """Load (already grouped per image), print counts."""
    annotations = AnnotationSet.from_coco(path)
    groups = {a.image_id: [(b.label, b.ltrb) for b in a.boxes] for a in annotations}
    print(json.dumps({"images": len(groups), "boxes": sum(len(g) for g in groups.values())}))


if __name__ == "__main__":
    main(sys.argv[1])
