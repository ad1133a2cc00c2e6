"""Before/after on a noisy machine: two annonorm checkouts and the raw-parse floors, interleaved round by round.

``run.py`` runs each tool's repetitions back to back, so a machine whose speed drifts over minutes (a
shared VM: the same conversion here took 3.4 s and 4.8 s ten minutes apart) can put the drift into one
tool's median and not another's. This script runs one round at a time (floor, before, after for COCO
``--no-masks``, VOC and CSV), computes each round's ratios to that round's floor, and reports the medians
of the per-round ratios, with the min–max over rounds. The data is ``run.py``'s (generate it first with
``run.py --scale train2017``)::

    python benchmarks/compare_revisions.py --before /work/v01/.venv/bin/python --rounds 5 --report before-after.md

``--before`` and ``--after`` are the interpreters of the two checkouts' virtualenvs (``--after``
defaults to this one). Never run as a test.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
PEERS = HERE / "peers"


def sections() -> dict[str, tuple[list[str], list[str]]]:
    """Per section: the floor's command and annonorm's arguments (after ``-m annonorm``), on run.py's data."""
    coco = next(iter(sorted(DATA.glob("coco-*/annotations/instances_*.json"))))
    voc = next(iter(sorted(DATA.glob("voc-*"))))
    csv = next(iter(sorted(DATA.glob("csv-*/*.csv"))))
    return {
        "COCO --no-masks": (
            [sys.executable, str(PEERS / "coco_msgspec.py"), str(coco)],
            ["convert", "coco", str(coco), "--no-masks"],
        ),
        "VOC": (
            [sys.executable, str(PEERS / "voc_etree.py"), str(voc)],
            ["convert", "voc", str(voc), "--masks", "none"],
        ),
        "CSV": (
            [sys.executable, str(PEERS / "csv_stdlib.py"), str(csv)],
            ["convert", "csv", str(csv), "--preset", "tensorflow"],
        ),
    }


def timed(command: list[str]) -> float:
    """Wall seconds of one whole process; a failure stops the comparison."""
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="python of the 'before' checkout's virtualenv")
    parser.add_argument("--after", default=sys.executable, help="python of the 'after' checkout (default: this one)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", default="", help="comma-separated section names (default: all)")
    parser.add_argument("--report", type=Path, help="also write the Markdown table here")
    args = parser.parse_args()
    chosen = {
        name: commands
        for name, commands in sections().items()
        if not args.only or any(part.strip().lower() in name.lower() for part in args.only.split(","))
    }
    walls: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for round_number in range(args.rounds + 1):  # round 0 warms the page cache and is not kept
            for name, (floor, arguments) in chosen.items():
                for who, command in (
                    ("floor", floor),
                    ("before", [args.before, "-m", "annonorm", *arguments]),
                    ("after", [args.after, "-m", "annonorm", *arguments]),
                ):
                    if who != "floor":
                        command = [*command, "-o", f"{scratch}/out", "--force", "--quiet"]
                    wall = timed(command)
                    if round_number:
                        walls.setdefault((name, who), []).append(wall)
            print(f"round {round_number} done", file=sys.stderr)
    lines = [
        f"Interleaved rounds: {args.rounds} (after one warm-up); ratios are per round, to that round's floor.",
        "",
        "| section | floor s | before s | after s | before × floor | after × floor | after ÷ before |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in chosen:
        floor, before, after = (walls[(name, who)] for who in ("floor", "before", "after"))
        before_ratio = [b / f for b, f in zip(before, floor, strict=True)]
        after_ratio = [a / f for a, f in zip(after, floor, strict=True)]
        change = [a / b for a, b in zip(after, before, strict=True)]

        def shown(values: list[float]) -> str:
            return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"

        lines.append(
            f"| {name} | {statistics.median(floor):.2f} | {statistics.median(before):.2f} | "
            f"{statistics.median(after):.2f} | {shown(before_ratio)} | {shown(after_ratio)} | {shown(change)} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.report is not None:
        args.report.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
