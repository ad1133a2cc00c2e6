"""Raw-parse floor for a TensorFlow-layout CSV: stdlib ``csv`` reader, boxes grouped per file name."""

from __future__ import annotations

import csv
import json
import sys


def main(path: str) -> None:
    """Read, group, print counts."""
    groups: dict[str, list[tuple[str, float, float, float, float]]] = {}
    with open(path, newline="", encoding="utf-8") as f:
        rows = csv.reader(f)
        next(rows)
        for name, _w, _h, label, x1, y1, x2, y2 in rows:
            groups.setdefault(name, []).append((label, float(x1), float(y1), float(x2), float(y2)))
    print(json.dumps({"images": len(groups), "boxes": sum(len(g) for g in groups.values())}))


if __name__ == "__main__":
    main(sys.argv[1])
