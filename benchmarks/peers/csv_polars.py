"""Peer for a TensorFlow-layout CSV: polars reads it, groups the boxes per file name and writes NDJSON.

What a user could write instead of a converter: one line per image with its size and a list of boxes, no
checks. Run in the peers venv (``polars``); the output goes to ``OUT`` (a file, removed by the caller).
"""

from __future__ import annotations

import json
import sys

import polars as pl


def main(path: str, out: str) -> None:
    """Read, group (first-row order), write NDJSON, print counts."""
    table = pl.read_csv(path)
    boxes = pl.struct(name="class", x1="xmin", y1="ymin", x2="xmax", y2="ymax")
    grouped = table.group_by("filename", maintain_order=True).agg(
        pl.first("width"), pl.first("height"), boxes.alias("boxes")
    )
    grouped.write_ndjson(out)
    print(json.dumps({"images": grouped.height, "boxes": table.height}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
