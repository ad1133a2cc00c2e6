"""Peer for a TensorFlow-layout CSV: pyarrow's multi-threaded reader, boxes grouped per file name.

pyarrow has no NDJSON writer: the grouped table (per image its size and lists of classes and corners) is
what it builds, and the counts are printed. Run in the peers venv (``pyarrow``).
"""

from __future__ import annotations

import json
import sys

import pyarrow.csv as pcsv


def main(path: str) -> None:
    """Read, group, print counts."""
    table = pcsv.read_csv(path)
    aggregations = [("width", "first"), ("height", "first")]
    aggregations += [(column, "list") for column in ("class", "xmin", "ymin", "xmax", "ymax")]
    grouped = table.group_by("filename", use_threads=False).aggregate(aggregations)
    print(json.dumps({"images": grouped.num_rows, "boxes": table.num_rows}))


if __name__ == "__main__":
    main(sys.argv[1])
