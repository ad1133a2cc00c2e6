"""Raw-parse floor for VOC: stdlib ElementTree over every ``Annotations/*.xml``, boxes grouped per file.

No validation, no safety (entity refusals) and no split lists: what reading the XML costs. ``--processes N``
splits the sorted files into N contiguous slices parsed by a process pool (the floor for a reader that
spreads files over the cores); the groups are merged in file order.
"""

from __future__ import annotations

import argparse
import json
import xml.etree.ElementTree as ET
from multiprocessing import Pool
from pathlib import Path

Group = dict[str, list[tuple[str, list[float]]]]


def parse(paths: list[Path]) -> Group:
    """Parse ``paths``, one group of (name, corners) per file, keyed by ``<filename>``."""
    groups: Group = {}
    for path in paths:
        tree = ET.parse(path).getroot()
        boxes = []
        for obj in tree.iter("object"):
            box = obj.find("bndbox")
            if box is not None:
                corners = [float(box.findtext(k, "nan")) for k in ("xmin", "ymin", "xmax", "ymax")]
                boxes.append((obj.findtext("name", ""), corners))
        groups[tree.findtext("filename", path.stem)] = boxes
    return groups


def main(root: str, processes: int) -> None:
    """Parse, group, print counts."""
    paths = sorted((Path(root) / "Annotations").glob("*.xml"))
    if processes <= 1:
        groups = parse(paths)
    else:
        size = -(-len(paths) // processes)
        with Pool(processes) as pool:
            groups = {}
            for part in pool.map(parse, [paths[i : i + size] for i in range(0, len(paths), size)]):
                groups.update(part)
    print(json.dumps({"images": len(groups), "boxes": sum(len(g) for g in groups.values())}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("root")
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args()
    main(args.root, args.processes)
