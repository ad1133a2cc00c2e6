"""Benchmark: start-up, ``annonorm --help`` and a one-image conversion, next to the interpreter's own floors.

Issue 18 asks that start-up stays: ``annonorm --help`` under 0.3 s and a one-image COCO conversion under 0.5 s.
Each command is a whole process (wall time from ``time.perf_counter`` around ``subprocess.run``), the commands
interleaved round by round so a change in the machine's speed hits them all, medians of ``--runs`` after a warm-up:

The warm-up run caches bytecode; ``PYTHONDONTWRITEBYTECODE`` is dropped from the environment.

  * ``python -c pass``: the interpreter alone;
  * ``python -c "import numpy, pydantic, typer, msgspec"``: the base libraries any conversion needs (a floor
    no code of annonorm's can go under);
  * ``annonorm --help``;
  * ``annonorm convert coco one.json --images DIR -o OUT --force -q``: one image (a real 32x24 JPEG), one box,
    the output validated as every conversion is.

    python benchmarks/bench_startup.py --runs 15

Never run as a test. Prints a Markdown table; ratios are to the base-libraries floor of the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# A user's installed package has its bytecode cached; PYTHONDONTWRITEBYTECODE (set in some shells and CI images)
# would make every run compile annonorm's modules from source, so the runs go without it.
ENVIRONMENT = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
TARGETS = {"annonorm --help": 0.3, "annonorm convert coco (one image)": 0.5}


def one_image_source(root: Path) -> tuple[Path, Path]:
    """A COCO file with one image and one box, and the folder holding that image."""
    from PIL import Image

    images = root / "images"
    images.mkdir()
    Image.new("RGB", (32, 24), (120, 80, 40)).save(images / "a.jpg")
    document = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 32, "height": 24}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 3, 10, 8], "area": 80, "iscrowd": 0}],
        "categories": [{"id": 1, "name": "thing"}],
    }
    source = root / "one.json"
    source.write_text(json.dumps(document))
    return source, images


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=ENVIRONMENT)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()[-600:]}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args(argv)
    python = sys.executable
    with tempfile.TemporaryDirectory(prefix="annonorm-startup-") as tmp:
        source, images = one_image_source(Path(tmp))
        out = Path(tmp) / "out"
        commands = {
            "python -c pass": [python, "-c", "pass"],
            "import numpy, pydantic, typer, msgspec (floor)": [
                python,
                "-c",
                "import numpy, pydantic, typer, msgspec",
            ],
            "annonorm --help": [python, "-m", "annonorm", "--help"],
            "annonorm convert coco (one image)": [
                python,
                *("-m", "annonorm", "convert", "coco", str(source), "--images", str(images)),
                *("-o", str(out), "--force", "-q"),
            ],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for command in commands.values():  # warm-up: page cache, .pyc files
            timed(command)
        for _ in range(args.runs):
            for name, command in commands.items():
                times[name].append(timed(command))
    floor = statistics.median(times["import numpy, pydantic, typer, msgspec (floor)"])
    print(f"Start-up, medians of {args.runs} interleaved runs (whole processes, wall seconds)\n")
    print("| command | median s | min–max s | × floor | target |")
    print("|---|---:|---:|---:|---|")
    for name, values in times.items():
        target = TARGETS.get(name)
        median = statistics.median(values)
        verdict = "" if target is None else f"< {target} s: {'met' if median < target else 'missed'}"
        print(f"| {name} | {median:.3f} | {min(values):.3f}–{max(values):.3f} | {median / floor:.2f} | {verdict} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
