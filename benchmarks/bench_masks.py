"""Benchmark: ``annonorm convert coco --masks png`` against a one-process pycocotools loop, same run.

On a COCO instances file of ``--images`` images made by ``generate.py`` (polygons of 10-30 points,
10 % of objects in two parts, 1 % crowd annotations as uncompressed RLE; cached in
``benchmarks/data/coco-N`` with the stamp ``run.py`` uses), as whole processes through
``peers/measure.py`` (median of ``--runs`` after one warm-up):

* annonorm: ``annonorm convert coco FILE -o OUT --masks png --force --quiet`` (the records, the JSONL
  and one instance PNG per image, masks drawn in their boxes on the engine's pool);
* annonorm ``--workers 1``: the same in one process, to separate the pool's share from the drawing's;
* pycocotools loop (``peers/masks_pycocotools.py``): ``json.load``, then per image every annotation's
  full-image mask (``frPyObjects``/``merge``/``decode``, as ``COCO.annToMask``), painted into the
  instance canvas, saved with Pillow's PNG defaults.

After the runs, a sample of the masks (``--check``) is compared pixel for pixel between the two outputs,
and the PNG bytes of both are summed (the size cost of annonorm's faster zlib settings).

    python benchmarks/bench_masks.py --images 10000 --runs 3

Never run as a test. Prints a Markdown table; the machine may be shared, so the ratio of the same run is
the figure to read.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import generate  # noqa: E402  (a sibling script, not a package)

DATA = HERE / "data"
PEERS = HERE / "peers"
#: annonorm must be at least this many times faster than the pycocotools loop (issue 18).
TARGET_SPEEDUP = 3.0


@dataclass
class Row:
    """One tool's runs: wall times, peak RSS (largest single process), its output's counts."""

    label: str
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)  # user + system seconds of the whole process tree
    peak_mb: float = 0.0
    error: str = ""

    @property
    def median(self) -> float:
        """Median wall time in seconds."""
        return statistics.median(self.walls)


def coco_source(images: int, seed: int) -> Path:
    """The generated COCO file of ``images`` images (made once, shared with ``run.py``'s cache)."""
    root = DATA / f"coco-{images}"
    stamp = root / "generated.json"
    key = f"v{generate.GENERATOR_VERSION} seed {seed} images {images}"
    if not (stamp.exists() and json.loads(stamp.read_text()).get("key") == key):
        started = time.perf_counter()
        counts = generate.write_coco_tree(root, images, seed=seed)
        stamp.write_text(json.dumps({"key": key, "counts": counts}))
        print(f"  generated {root.name} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return generate.coco_file(root)


def measure(label: str, command: list[str], out: Path, runs: int, timeout: float) -> Row:
    """One warm-up and ``runs`` timed runs of ``command``, each a fresh process; a failure ends the series.

    ``out``, the command's output, is removed before each run (untimed): every tool writes its masks
    into nothing, and annonorm's ``--force`` does not spend the run deleting the last run's thousands of files.
    """
    row = Row(label)
    wrapper = [sys.executable, str(PEERS / "measure.py"), "--timeout", str(timeout), "--"]
    for run in range(runs + 1):
        shutil.rmtree(out, ignore_errors=True)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run([*wrapper, *command], capture_output=True, text=True, check=False)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        result = json.loads(done.stdout)
        if result["killed"] or result["returncode"] != 0:
            tail = (result["stderr"].strip().splitlines() or [""])[-1][:300]
            row.error = result["killed"] or f"exit {result['returncode']}: {tail}"
            return row
        if run:
            row.walls.append(result["wall_s"])
            # measure.py waited for the command's processes, so their times are in its own, and in ours.
            row.cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
            row.peak_mb = max(row.peak_mb, result["peak_rss_mb"])
        print(f"    {label}: {result['wall_s']:.2f} s{'' if run else ' (warm-up)'}", file=sys.stderr)
    return row


def compare_masks(ours: Path, theirs: Path, sample: int) -> tuple[int, int, list[str]]:
    """Masks compared (an evenly spread sample), masks in each output, and the names that differ."""
    import numpy as np
    from PIL import Image

    names = sorted(path.name for path in theirs.iterdir())
    mine = {path.name: path for path in ours.rglob("*.png")}
    if names != sorted(mine):
        return 0, len(mine), [f"the outputs name {len(mine)} and {len(names)} masks, not the same files"]
    step = max(1, len(names) // max(1, sample))
    differing = []
    checked = 0
    for name in names[::step]:
        with Image.open(mine[name]) as a, Image.open(theirs / name) as b:
            if not np.array_equal(np.asarray(a), np.asarray(b)):
                differing.append(name)
        checked += 1
    return checked, len(names), differing


def folder_bytes(folder: Path) -> int:
    """Summed size of the PNG files under ``folder``."""
    return sum(path.stat().st_size for path in folder.rglob("*.png"))


def table(rows: list[Row], reference: Row) -> list[str]:
    """Markdown rows: tool, runs, median wall time, spread, CPU time, peak RSS, speed-up over ``reference``."""
    lines = [
        "| tool | runs | median s | min–max s | CPU s (median) | peak RSS MB | speed-up × pycocotools loop |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        if not row.walls:
            lines.append(f"| {row.label} | — | **{row.error or 'not run'}** | | | | |")
            continue
        speedup = f"{reference.median / row.median:.2f}" if reference.walls else ""
        lines.append(
            f"| {row.label} | {len(row.walls)} | {row.median:.2f} | {min(row.walls):.2f}–{max(row.walls):.2f} | "
            f"{statistics.median(row.cpus):.2f} | {row.peak_mb:,.0f} | {speedup} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    """Generate (once), measure, compare, print the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=generate.DEFAULT_SEED)
    parser.add_argument("--check", type=int, default=500, help="masks compared pixel for pixel")
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--no-single", action="store_true", help="skip the annonorm --workers 1 row")
    args = parser.parse_args(argv)
    source = coco_source(args.images, args.seed)
    out = DATA / f"out-masks-{args.images}"
    peer_out = DATA / f"out-masks-pycocotools-{args.images}"
    annonorm = [sys.executable, "-m", "annonorm", "convert", "coco", str(source), "-o", str(out)]
    annonorm += ["--masks", "png", "--force", "--quiet"]
    print(f"masks: {source}", file=sys.stderr)
    rows = [measure("annonorm convert coco --masks png", annonorm, out, args.runs, args.timeout)]
    if not args.no_single:
        rows.append(
            measure("annonorm … --masks png --workers 1", [*annonorm, "--workers", "1"], out, args.runs, args.timeout)
        )
    peer = [sys.executable, str(PEERS / "masks_pycocotools.py"), str(source), str(peer_out)]
    reference = measure("pycocotools loop (one process, Pillow PNG)", peer, peer_out, args.runs, args.timeout)
    rows.append(reference)
    ours = rows[0]
    lines = [
        f"## `--masks png` on {args.images:,} COCO images",
        "",
        f"- Machine: `{platform.platform()}`, {os.cpu_count()} cores, load average "
        f"{' / '.join(f'{v:.2f}' for v in os.getloadavg())} (shared: read the ratio, not the seconds)",
        "",
        *table(rows, reference),
        "",
    ]
    if ours.walls and reference.walls:
        speedup = reference.median / ours.median
        verdict = "meets" if speedup >= TARGET_SPEEDUP else "MISSES"
        lines.append(f"- annonorm is {speedup:.2f}× the loop's speed ({verdict} the ≥ {TARGET_SPEEDUP:g}× target).")
        checked, total, differing = compare_masks(out / "masks", peer_out, args.check)
        same = "all identical" if not differing else f"**{len(differing)} differ**: {', '.join(differing[:5])}"
        lines.append(f"- Pixels: {checked:,} of {total:,} masks compared with the loop's, {same}.")
        ours_bytes, theirs_bytes = folder_bytes(out / "masks"), folder_bytes(peer_out)
        lines.append(
            f"- PNG bytes: annonorm {ours_bytes / 1e6:,.1f} MB, Pillow defaults {theirs_bytes / 1e6:,.1f} MB "
            f"({ours_bytes / theirs_bytes:.2f}×)."
        )
    print("\n".join(lines))
    return 0 if all(row.walls for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
