"""Benchmark: ``annonorm validate`` on a generated dataset of N records (default 1,000,000, 7 boxes each).

Compares, in the same run and as whole processes (median of --runs after one warm-up):
  * baseline: a bare msgspec typed decode of every line (no rule checked),
  * annonorm: ``annonorm validate DATASET`` (fast check + cross-record rules + quality warnings),
  * pydantic: ``Record.model_validate_json`` line by line (on --pydantic-lines lines, rate extrapolated).

    python benchmarks/bench_validate.py --records 1000000

Never run as a test. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import msgspec

HERE = Path(__file__).resolve().parent
CATEGORIES = [f"class_{i:02d}" for i in range(80)]

BASELINE = """
import sys, msgspec
from typing import Any
class Box(msgspec.Struct):
    name: str
    x1: float
    y1: float
    x2: float
    y2: float
    attributes: dict[str, Any] | None = None
class Record(msgspec.Struct):
    image: str
    width: int | None = None
    height: int | None = None
    labels: list[str] = []
    counts: dict[str, int] = {}
    boxes: list[Box] = []
    mask: str | None = None
    id: int | str | None = None
    attributes: dict[str, Any] | None = None
decode = msgspec.json.Decoder(Record).decode
n = 0
with open(sys.argv[1], "rb") as f:
    for line in f:
        decode(line)
        n += 1
print(n)
"""

PYDANTIC = """
import sys, itertools
from annonorm.schemas import Record
limit = int(sys.argv[2])
names = frozenset(sys.argv[3].split(","))
with open(sys.argv[1], "rb") as f:
    for line in itertools.islice(f, limit):
        Record.model_validate_json(line, context={"categories": names})
"""


def generate(directory: Path, records: int, boxes_per_record: int, seed: int = 0) -> Path:
    """Write a deterministic normalized dataset (one split) unless it already exists."""
    split = directory / "train.jsonl"
    manifest = directory / "annonorm.json"
    if manifest.exists() and split.exists():
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    encoder = msgspec.json.Encoder()
    with split.open("wb") as out:
        for index in range(records):
            width, height = rng.choice([(640, 480), (640, 427), (500, 375), (800, 600)])
            boxes = []
            counts: dict[str, int] = {}
            for _ in range(boxes_per_record):
                name = rng.choice(CATEGORIES)
                x1 = round(rng.uniform(0, width - 20), 2)
                y1 = round(rng.uniform(0, height - 20), 2)
                x2 = round(rng.uniform(x1 + 1, width), 2)
                y2 = round(rng.uniform(y1 + 1, height), 2)
                boxes.append({"name": name, "x1": x1, "y1": y1, "x2": x2, "y2": y2})
                counts[name] = counts.get(name, 0) + 1
            record = {
                "image": f"{index:012d}.jpg",
                "width": width,
                "height": height,
                "labels": list(counts),
                "counts": counts,
                "boxes": boxes,
                "id": index,
            }
            out.write(encoder.encode(record) + b"\n")
    manifest.write_text(
        json.dumps(
            {
                "format": "annonorm",
                "version": 1,
                "name": "bench",
                "categories": [{"id": i, "name": n} for i, n in enumerate(CATEGORIES)],
                "splits": {"train": "train.jsonl"},
            }
        )
    )
    return directory


def timed(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one whole process."""
    wrapped = [sys.executable, "-c", _RUSAGE, *command]
    start = time.perf_counter()
    done = subprocess.run(wrapped, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise SystemExit(f"{command} failed: {done.stderr[-2000:]}")
    peak_kb = int(done.stderr.strip().splitlines()[-1])
    return elapsed, peak_kb / 1024


_RUSAGE = """
import resource, subprocess, sys
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=False)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)
"""


def median_run(command: list[str], runs: int) -> tuple[float, float]:
    timed(command)  # warm-up (page cache, imports)
    results = [timed(command) for _ in range(runs)]
    return statistics.median(r[0] for r in results), max(r[1] for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--boxes", type=int, default=7)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pydantic-lines", type=int, default=100_000)
    parser.add_argument("--data", type=Path, default=HERE / "data")
    args = parser.parse_args()

    dataset = generate(args.data / f"validate-{args.records}x{args.boxes}", args.records, args.boxes)
    split = dataset / "train.jsonl"
    annonorm = [sys.executable, "-m", "annonorm", "validate", str(dataset), "--quiet"]
    baseline = [sys.executable, "-c", BASELINE, str(split)]
    pydantic_lines = min(args.pydantic_lines, args.records)
    pydantic = [sys.executable, "-c", PYDANTIC, str(split), str(pydantic_lines), ",".join(CATEGORIES)]

    base_s, base_mb = median_run(baseline, args.runs)
    ours_s, ours_mb = median_run(annonorm, args.runs)
    pyd_s, pyd_mb = median_run(pydantic, args.runs)
    pyd_rate = pydantic_lines / pyd_s
    size_mb = split.stat().st_size / 1e6

    python = f"{platform.python_implementation()} {platform.python_version()}"
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, {python}")
    print(f"Data: {args.records:,} records x {args.boxes} boxes, {size_mb:.0f} MB JSONL; median of {args.runs} runs")
    print()
    print("| tool | wall s | records/s | peak RSS MB | ratio to baseline |")
    print("|---|---:|---:|---:|---:|")
    print(f"| msgspec typed decode (baseline) | {base_s:.2f} | {args.records / base_s:,.0f} | {base_mb:.0f} | 1.00 |")
    print(
        f"| annonorm validate | {ours_s:.2f} | {args.records / ours_s:,.0f} | {ours_mb:.0f} | {ours_s / base_s:.2f} |"
    )
    extrapolated = args.records / pyd_rate
    print(
        f"| pydantic model_validate_json per line ({pydantic_lines:,} lines, extrapolated) | {extrapolated:.2f} | "
        f"{pyd_rate:,.0f} | {pyd_mb:.0f} | {extrapolated / base_s:.2f} |"
    )
    print()
    print(f"annonorm validate is {extrapolated / ours_s:.1f}x faster than Pydantic line by line.")


if __name__ == "__main__":
    main()
