"""Issue 17 benchmark: export parquet and a DuckDB GROUP BY over boxes, next to annonorm stats / validate.

    python benchmarks/bench_scale.py --images 118000 --boxes-per-image 7 --work /tmp/bench-scale

Each step runs as its own process (`/usr/bin/time`-style: wall time, peak RSS from resource.getrusage).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

QUERY = "SELECT name, count(*) FROM boxes GROUP BY name"


def generate(root: Path, images: int, per_image: int, seed: int = 0) -> Path:
    """A normalized dataset of ``images`` records with about ``per_image`` boxes each, written directly."""
    rng = random.Random(seed)
    names = [f"class{n}" for n in range(80)]
    root.mkdir(parents=True, exist_ok=True)
    with (root / "train.jsonl").open("w", encoding="utf-8") as out:
        for n in range(images):
            boxes = []
            for _ in range(rng.randint(0, 2 * per_image)):
                x, y = rng.uniform(0, 600), rng.uniform(0, 400)
                boxes.append(
                    {
                        "name": rng.choice(names),
                        "x1": round(x, 2),
                        "y1": round(y, 2),
                        "x2": round(x + rng.uniform(1, 40), 2),
                        "y2": round(y + rng.uniform(1, 40), 2),
                    }
                )
            counts: dict[str, int] = {}
            for box in boxes:
                counts[box["name"]] = counts.get(box["name"], 0) + 1
            out.write(
                json.dumps(
                    {
                        "image": f"{n:09d}.jpg",
                        "width": 640,
                        "height": 480,
                        "labels": list(counts),
                        "counts": counts,
                        "boxes": boxes,
                        "id": n,
                    },
                    separators=(",", ":"),
                )
                + "\n"
            )
    manifest = {
        "format": "annonorm",
        "version": 2,
        "name": "bench",
        "image_root": ".",
        "categories": [{"id": i, "name": c} for i, c in enumerate(names)],
        "splits": {"train": "train.jsonl"},
    }
    (root / "annonorm.json").write_text(json.dumps(manifest), encoding="utf-8")
    return root


def measure(label: str, argv: list[str]) -> dict[str, object]:
    """Run ``argv`` as a child process: wall seconds and the child's peak RSS in MB."""
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"step": label, "seconds": round(wall, 2), "peak_rss_mb_max_so_far": round(peak), "exit": done.returncode}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--boxes-per-image", type=int, default=7)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-scale"))
    args = parser.parse_args()
    ds = generate(args.work / "ds", args.images, args.boxes_per_image)
    cli = [sys.executable, "-m", "annonorm"]
    steps = [
        ("validate", [*cli, "validate", str(ds), "-q"]),
        ("stats", [*cli, "stats", str(ds), "--format", "json"]),
        ("export parquet", [*cli, "export", "parquet", str(ds), "-o", str(args.work / "pq"), "--force"]),
        ("query jsonl", [*cli, "query", str(ds), QUERY, "--format", "csv"]),
        ("query parquet", [*cli, "query", str(args.work / "pq"), QUERY, "--format", "csv"]),
    ]
    print(f"| step ({args.images} images) | seconds | peak RSS MB (max so far) | exit |\n|---|---|---|---|")
    for label, argv in steps:
        row = measure(label, argv)
        print(f"| {row['step']} | {row['seconds']} | {row['peak_rss_mb_max_so_far']} | {row['exit']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
