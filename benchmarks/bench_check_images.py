"""Benchmark: ``annonorm validate --check-images`` against bare header loops, on N tiny real images.

Generates (once, in ``benchmarks/data/checkimages-N``) N small PNG/JPEG images (real files Pillow
opens, sizes varied so the headers differ) and a normalized dataset over them (two splits, 80/20,
one box per record, the recorded sizes right). Then, as whole processes in the same run (median of
--runs after one warm-up):

  * pillow: one process, ``Image.open(path).size`` for every image (the issue's "bare Pillow header loop");
  * imagesize: one process, ``imagesize.get(path)`` for every image;
  * annonorm: ``annonorm validate DATASET --check-images`` (every record rule, image headers, sizes,
    containment, and the cross-split content check), over the engine's processes.

    python benchmarks/bench_check_images.py --images 20000

Never run as a test. Prints a Markdown table; the machine may be shared, so times are ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

PILLOW_LOOP = """
import os, sys
from PIL import Image
n = 0
for entry in os.scandir(sys.argv[1]):
    with Image.open(entry.path) as image:
        image.size
    n += 1
print(n)
"""

IMAGESIZE_LOOP = """
import os, sys
import imagesize
n = 0
for entry in os.scandir(sys.argv[1]):
    imagesize.get(entry.path)
    n += 1
print(n)
"""


def generate(root: Path, images: int) -> Path:
    """The dataset directory (made once): ``images/`` with N tiny images, ``train``/``val`` splits over them."""
    from PIL import Image

    dataset = root / "dataset"
    if (dataset / "annonorm.json").is_file():
        return dataset
    folder = root / "images"
    folder.mkdir(parents=True, exist_ok=True)
    splits: dict[str, list[str]] = {"train": [], "val": []}
    for i in range(images):
        width, height = 16 + i % 17, 12 + i % 13
        name = f"img_{i:06d}.{'png' if i % 2 else 'jpg'}"
        Image.new("RGB", (width, height), (i % 251, i % 241, i % 239)).save(folder / name)
        record = {
            "image": name,
            "width": width,
            "height": height,
            "labels": ["thing"],
            "counts": {"thing": 1},
            "boxes": [{"name": "thing", "x1": 1.0, "y1": 1.0, "x2": 8.0, "y2": 8.0}],
        }
        splits["val" if i % 5 == 4 else "train"].append(json.dumps(record))
    dataset.mkdir(parents=True, exist_ok=True)
    for split, lines in splits.items():
        (dataset / f"{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    manifest = {
        "format": "annonorm",
        "version": 1,
        "name": f"checkimages-{images}",
        "categories": [{"id": 0, "name": "thing"}],
        "splits": {split: f"{split}.jsonl" for split in splits},
        "image_root": "../images",
    }
    (dataset / "annonorm.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return dataset


def _timed(argv: list[str], runs: int) -> tuple[float, str]:
    """Median wall time of ``argv`` over ``runs`` runs after one warm-up, and the last run's output."""
    out = ""
    times = []
    for attempt in range(runs + 1):
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=ROOT)
        elapsed = time.perf_counter() - start
        if done.returncode not in (0, 1):
            raise SystemExit(f"{argv[:4]} failed ({done.returncode}): {done.stderr[-2000:]}")
        out = done.stdout
        if attempt:
            times.append(elapsed)
    return statistics.median(times), out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None, help="annonorm --workers (default: one per core)")
    args = parser.parse_args(argv)
    root = HERE / "data" / f"checkimages-{args.images}"
    dataset = generate(root, args.images)
    python = sys.executable
    rows = []
    pillow, _ = _timed([python, "-c", PILLOW_LOOP, str(root / "images")], args.runs)
    rows.append(("Pillow `Image.open(p).size` loop, 1 process", pillow))
    sizes, _ = _timed([python, "-c", IMAGESIZE_LOOP, str(root / "images")], args.runs)
    rows.append(("imagesize loop, 1 process", sizes))
    command = [python, "-m", "annonorm", "validate", str(dataset), "--check-images", "--quiet"]
    annonorm, out = _timed(command + ([] if args.workers is None else ["--workers", str(args.workers)]), args.runs)
    rows.append(("`annonorm validate --check-images`", annonorm))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{args.images} images, {cores} cores ({platform.processor() or platform.machine()}), shared machine; ")
    print(f"median of {args.runs} after one warm-up; ratios to the Pillow loop of the same run.\n")
    print("| path | seconds | images/s | vs Pillow loop |")
    print("|---|---|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.3f} | {args.images / seconds:,.0f} | {seconds / pillow:.2f}x |")
    if out.strip():
        print(f"\nannonorm said: {out.strip().splitlines()[-1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
