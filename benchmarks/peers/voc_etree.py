"""Raw-parse floor for VOC: stdlib ElementTree over every ``Annotations/*.xml``, boxes grouped per file.

One process, no validation, no safety (defusedxml) and no split lists: what reading the XML costs.
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def main(root: str) -> None:
    """Parse, group, print counts."""
    groups: dict[str, list[tuple[str, list[float]]]] = {}
    for path in sorted((Path(root) / "Annotations").glob("*.xml")):
        tree = ET.parse(path).getroot()
        boxes = []
        for obj in tree.iter("object"):
            box = obj.find("bndbox")
            if box is not None:
                corners = [float(box.findtext(k, "nan")) for k in ("xmin", "ymin", "xmax", "ymax")]
                boxes.append((obj.findtext("name", ""), corners))
        groups[tree.findtext("filename", path.stem)] = boxes
    print(json.dumps({"images": len(groups), "boxes": sum(len(g) for g in groups.values())}))


if __name__ == "__main__":
    main(sys.argv[1])
