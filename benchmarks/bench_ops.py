"""Time ``annonorm split|filter|remap`` against ``annonorm validate`` on the same generated dataset (issue 16).

Each command runs as a whole process (imports included), all of them in turn for a warm-up round and
then ``--runs`` rounds; the median of each and the peak RSS are printed. The dataset is
``bench_validate``'s generator (1M records by default, ``--records`` to change), written once under
``--data``. Every command uses its default worker count
(one process per core), as a user's run does. The machine should be otherwise idle: on a shared one,
say so beside the figures.

    python benchmarks/bench_ops.py --records 200000
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from bench_validate import CATEGORIES, generate, timed

ANNONORM = [sys.executable, "-m", "annonorm"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--boxes", type=int, default=3, help="boxes per record")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "annonorm-bench-ops")
    args = parser.parse_args()
    dataset = generate(args.data / f"ds-{args.records}", args.records, args.boxes)
    (args.data / "map.json").write_text(json.dumps({CATEGORIES[0]: CATEGORIES[1], CATEGORIES[2]: None}))
    out = args.data / "out"
    commands = {
        "validate": [*ANNONORM, "validate", str(dataset), "--quiet"],
        "split (random)": [*ANNONORM, "split", str(dataset), "-o", str(out), "--ratios", "train=0.8,val=0.1,test=0.1"],
        "split --stratify": [
            *ANNONORM,
            "split",
            str(dataset),
            "-o",
            str(out),
            "--ratios",
            "train=0.8,val=0.1,test=0.1",
            "--stratify",
        ],
        "filter": [
            *ANNONORM,
            "filter",
            str(dataset),
            "-o",
            str(out),
            "--drop-classes",
            CATEGORIES[3],
            "--min-area",
            "400",
            "--drop-empty",
        ],
        "remap": [*ANNONORM, "remap", str(dataset), "-o", str(out), "--map", str(args.data / "map.json")],
    }
    for label, command in commands.items():
        if label != "validate":
            commands[label] = [*command, "--force", "--quiet"]
    # Round robin (one warm-up round first): on a shared machine each command meets the same load.
    times: dict[str, list[float]] = {label: [] for label in commands}
    peaks: dict[str, float] = dict.fromkeys(commands, 0.0)
    for round_number in range(args.runs + 1):
        for label, command in commands.items():
            seconds, peak = timed(command)
            shutil.rmtree(out, ignore_errors=True)
            if round_number:
                times[label].append(seconds)
                peaks[label] = max(peaks[label], peak)
    baseline = statistics.median(times["validate"])
    print(f"{args.records} records, {args.boxes} boxes each; median of {args.runs} runs, run round robin")
    print(f"{'command':<18} {'seconds':>8} {'x validate':>10} {'peak MB':>8}")
    for label in commands:
        seconds = statistics.median(times[label])
        print(f"{label:<18} {seconds:8.2f} {seconds / baseline:10.2f} {peaks[label]:8.0f}")


if __name__ == "__main__":
    main()
