"""orjson: untyped decode of a COCO file into dicts, then boxes grouped per image."""

from __future__ import annotations

import json
import sys

import orjson


def main(path: str) -> None:
    """Decode, group, print counts."""
    with open(path, "rb") as f:
        document = orjson.loads(f.read())
    names = {c["id"]: c["name"] for c in document["categories"]}
    groups: dict[int, list[tuple[str, list[float]]]] = {i["id"]: [] for i in document["images"]}
    for a in document["annotations"]:
        groups[a["image_id"]].append((names[a["category_id"]], a["bbox"]))
    print(json.dumps({"images": len(groups), "boxes": sum(len(g) for g in groups.values())}))


if __name__ == "__main__":
    main(sys.argv[1])
