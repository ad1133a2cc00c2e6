"""Issue 17 scale benchmark: source -> normalized -> Parquet, a DuckDB GROUP BY, Ray with 1 and 2 workers.

    python benchmarks/bench_scale.py --scale train2017    # COCO-like, 118,287 images, ~7.3 boxes/image
    python benchmarks/bench_scale.py --scale openimages   # Open Images-like CSV, 1.7M images, 14.6M boxes
    python benchmarks/bench_scale.py --images 2000        # quick (COCO-like; --source openimages for the CSV)

Every step is a whole ``annonorm`` process run under ``peers/measure.py`` (the wrapper ``run.py`` uses): wall
seconds, that process's own peak RSS (``getrusage(RUSAGE_CHILDREN)`` of a fresh wrapper, so never a maximum
carried over from an earlier step), the summed RSS of its process tree (Ray's raylet and workers included),
records/s (records = images) and the exit code. Steps, per scale:

1. the source -> normalized: ``convert coco FILE --no-masks`` or ``convert openimages DIR`` (the box CSV,
   ``class-descriptions-boxable.csv`` and ``images.meta``, the sizes table Open Images ships);
2. ``export parquet``; 3. ``query ... "SELECT name, count(*) FROM boxes GROUP BY name"`` over the JSONL and
   over the Parquet export (the counts are checked against the boxes in the JSONL); 4. ``validate`` and
   ``stats``, the one-process comparison paths;
5. ``convert sa1b`` of a generated SA-1B-style folder (per-image JSON, ~100 RLE masks per image): one
   process (``--workers 1``), the local process pool, and ``--engine ray`` on a local cluster of 1 and of 2
   CPUs (``RAY_OVERRIDE_RESOURCES``); each output's JSONL is compared byte for byte with the one-process one;
6. a projection of a cluster on SA-1B from the measured per-worker rate, labelled as a projection.

Sources are generated once under ``benchmarks/data/`` (git-ignored) and reused while their key matches;
outputs go to a temporary directory that is removed at the end. A failing step ends the run with exit 1 and
its stderr tail, after printing the rows measured so far. Never run as a test.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import generate  # noqa: E402  (sibling scripts, not a package)
import run  # noqa: E402

DATA = HERE / "data"
MEASURE = HERE / "peers" / "measure.py"
QUERY = "SELECT name, count(*) FROM boxes GROUP BY name"
CLI = (sys.executable, "-m", "annonorm")

# Open Images V6/V7 train: 1,743,042 images and 14,610,229 boxes of 600 boxable classes; the box table's columns.
OPENIMAGES_IMAGES = 1_700_000
OPENIMAGES_BOXES = 14_600_000
OPENIMAGES_CLASSES = 600
OPENIMAGES_MAX_BOXES = 300
OPENIMAGES_COLUMNS = ("ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,"
                      "IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside")  # fmt: skip
#: Share of boxes with each flag set (IsOccluded ... IsInside), and of flags left unknown (-1).
OPENIMAGES_FLAG_SHARES = (0.62, 0.32, 0.06, 0.05, 0.01)
OPENIMAGES_UNKNOWN_FLAG = 0.01
OPENIMAGES_SOURCES = (("xclick", 0.7), ("activemil", 0.3))
OPENIMAGES_VERSION = 1

# SA-1B: 11M images of ~1500 x 2250 pixels, 1.1B class-agnostic masks (~100 per image).
SA1B_IMAGES = 11_000_000
SA1B_MASKS = 1_100_000_000
SA1B_MEAN_MASKS = 100
SA1B_VERSION = 1

SCALES = {"train2017": ("coco", generate.TRAIN2017_IMAGES), "openimages": ("openimages", OPENIMAGES_IMAGES)}


# ------------------------------------------------------------------------------------- Open Images source


def _hex_id(index: np.ndarray) -> list[str]:
    """Open Images-like 16-hex-digit ImageIDs, distinct for distinct indices (an odd multiplier mod 2**64)."""
    mixed = index.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    return [f"{int(value):016x}" for value in mixed]


def _mid(k: int) -> str:
    """A Freebase-like machine id (``/m/0...``) for class ``k``."""
    digits = "0123456789bcdfghjklmnpqrstvwxyz_"
    text = ""
    while True:
        k, rest = divmod(k, len(digits))
        text = digits[rest] + text
        if k == 0:
            return f"/m/0{text:0>4}"


def write_openimages(root: Path, images: int, seed: int = generate.DEFAULT_SEED) -> dict[str, int]:
    """An Open Images-style folder: ``annotations/train-annotations-bbox.csv`` (boxes as fractions, the five
    flags), ``class-descriptions-boxable.csv`` and ``images.meta``; 600 classes of Zipf-like frequency."""
    folder = root / "annotations"
    folder.mkdir(parents=True, exist_ok=True)
    mids = [_mid(k) for k in range(OPENIMAGES_CLASSES)]
    with (folder / "class-descriptions-boxable.csv").open("w", encoding="utf-8") as out:
        out.writelines(f"{mid},Category {k}\n" for k, mid in enumerate(mids))
    weights = 1.0 / np.arange(1, OPENIMAGES_CLASSES + 1)
    weights /= weights.sum()
    extra_mean = OPENIMAGES_BOXES / OPENIMAGES_IMAGES - 1
    sources = [name for name, _ in OPENIMAGES_SOURCES]
    source_shares = [share for _, share in OPENIMAGES_SOURCES]
    boxes = 0
    with (folder / "train-annotations-bbox.csv").open("w", encoding="utf-8") as table, \
            (folder / "images.meta").open("w", encoding="utf-8") as meta:  # fmt: skip
        table.write(OPENIMAGES_COLUMNS + "\n")
        for first in range(0, images, generate.BLOCK * 16):
            count = min(generate.BLOCK * 16, images - first)
            rng = np.random.default_rng([seed, first])
            ids = _hex_id(np.arange(first, first + count))
            heights = rng.choice([683, 768, 576, 1024, 680], count, p=[0.5, 0.2, 0.1, 0.1, 0.1])
            portrait = rng.random(count) < 0.25
            widths = np.where(portrait, heights, 1024)
            heights = np.where(portrait, 1024, heights)
            meta.writelines(f"{i} {h} {w}\n" for i, h, w in zip(ids, heights.tolist(), widths.tolist(), strict=True))
            per_image = np.minimum(
                1 + rng.negative_binomial(1.2, 1.2 / (1.2 + extra_mean), count), OPENIMAGES_MAX_BOXES
            )
            owner = np.repeat(np.arange(count), per_image)
            n = len(owner)
            side = np.exp(rng.uniform(math.log(0.02), math.log(1.0), (2, n)))
            low = rng.random((2, n)) * (1 - side)
            corners = np.round(np.stack([low[0], low[0] + side[0], low[1], low[1] + side[1]]), 6)
            flags = (rng.random((5, n)) < np.array(OPENIMAGES_FLAG_SHARES)[:, None]).astype(np.int8)
            flags[rng.random((5, n)) < OPENIMAGES_UNKNOWN_FLAG] = -1
            labels = rng.choice(OPENIMAGES_CLASSES, n, p=weights).tolist()
            source = rng.choice(len(sources), n, p=source_shares).tolist()
            cells = zip(owner.tolist(), source, labels, *corners.tolist(), *flags.tolist(), strict=True)
            table.writelines(
                f"{ids[o]},{sources[s]},{mids[c]},1,{x1:.6f},{x2:.6f},{y1:.6f},{y2:.6f},{f1},{f2},{f3},{f4},{f5}\n"
                for o, s, c, x1, x2, y1, y2, f1, f2, f3, f4, f5 in cells
            )
            boxes += n
    size = sum(path.stat().st_size for path in folder.iterdir())
    return {"images": images, "annotations": boxes, "bytes": size}


# ------------------------------------------------------------------------------------------ SA-1B source


def _column_runs(rng: np.random.Generator, box: tuple[int, int, int, int], width: int, height: int) -> list[int]:
    """Uncompressed COCO RLE (column-major, zeros first) of a blob filling the box, one run per column."""
    left, top, w, h = box
    tops = top + rng.integers(0, max(1, h // 4), w)
    bottoms = np.maximum(top + h - rng.integers(0, max(1, h // 4), w), tops + 1)
    counts = np.empty(2 * w + 1, dtype=np.int64)
    counts[0] = left * height + tops[0]
    counts[1::2] = bottoms - tops
    counts[2:-1:2] = height - bottoms[:-1] + tops[1:]
    counts[-1] = height - bottoms[-1] + (width - left - w) * height
    return counts.tolist()


def write_sa1b(
    root: Path, images: int, seed: int = generate.DEFAULT_SEED, mean_masks: int = SA1B_MEAN_MASKS
) -> dict[str, int]:
    """A folder of SA-1B-style ``sa_<n>.json``: 1500 x 2250 images (a quarter in landscape), ``mean_masks``
    masks each on average (SA-1B: ~100) with a compressed COCO RLE, ``bbox``, ``area``, ``predicted_iou``,
    ``stability_score``, ``point_coords`` and ``crop_box``. No image files (SA-1B's JSON holds the size)."""
    from pycocotools import mask as mask_utils

    root.mkdir(parents=True, exist_ok=True)
    encode = msgspec.json.Encoder().encode
    masks = size = 0
    for n in range(images):
        rng = np.random.default_rng([seed, 11, n])
        width, height = (2250, 1500) if rng.random() < 0.25 else (1500, 2250)
        annotations = []
        for k in range(int(rng.poisson(mean_masks - 1)) + 1):
            scales = np.exp(rng.uniform(math.log(0.005), math.log(0.5), 2))
            w, h = max(2, int(width * scales[0])), max(2, int(height * scales[1]))
            left, top = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
            runs = _column_runs(rng, (left, top, w, h), width, height)
            rle = mask_utils.frPyObjects({"counts": runs, "size": [height, width]}, height, width)
            annotations.append(
                {
                    "bbox": [left, top, w, h],
                    "area": int(sum(runs[1::2])),
                    "segmentation": {"size": [height, width], "counts": rle["counts"].decode("ascii")},
                    "predicted_iou": round(float(rng.uniform(0.8, 1.0)), 6),
                    "point_coords": [[round(left + w / 2, 3), round(top + h / 2, 3)]],
                    "crop_box": [0, 0, width, height],
                    "id": n * 1000 + k,
                    "stability_score": round(float(rng.uniform(0.85, 1.0)), 6),
                }
            )
        document = {
            "image": {"image_id": n + 1, "width": width, "height": height, "file_name": f"sa_{n + 1}.jpg"},
            "annotations": annotations,
        }
        raw = encode(document)
        (root / f"sa_{n + 1}.json").write_bytes(raw)
        masks += len(annotations)
        size += len(raw)
    return {"images": images, "annotations": masks, "bytes": size}


# ------------------------------------------------------------------------------------------ measuring


class StepFailed(Exception):
    """A step exited non-zero, was killed, or gave a wrong answer."""


@dataclass
class Row:
    """One measured step."""

    step: str
    seconds: float
    peak_mb: float
    tree_mb: float
    records: int
    exit: int
    note: str = ""

    @property
    def rate(self) -> float:
        """Records per second."""
        return self.records / self.seconds if self.seconds > 0 else math.nan

    def markdown(self) -> str:
        """The row as a Markdown table line (no rate for a failed step)."""
        rate = "—" if self.exit != 0 else f"{self.rate:,.0f}" if self.rate >= 100 else f"{self.rate:.1f}"
        return (f"| {self.step} | {self.seconds:.2f} | {self.peak_mb:,.0f} | {self.tree_mb:,.0f} | "
                f"{rate} | {self.exit} | {self.note} |")  # fmt: skip


HEADER = ("| step | seconds | peak RSS MB | tree RSS MB | records/s | exit | check |\n"
          "|---|---:|---:|---:|---:|---:|---|")  # fmt: skip


class Bench:
    """Runs steps under ``measure.py`` and keeps the rows; Ray processes left behind are reported and ended."""

    def __init__(self, work: Path, ray_tmp: Path, *, timeout: float, limit_mb: float) -> None:
        self.work, self.ray_tmp = work, ray_tmp
        self.timeout, self.limit_mb = timeout, limit_mb
        self.rows: list[Row] = []

    def step(
        self,
        label: str,
        argv: list[str],
        *,
        records: int,
        env: dict[str, str] | None = None,
        check: Callable[[Path], str] | None = None,
    ) -> Row:
        """Run ``argv`` (stdout to a file, passed to ``check``, which returns a note or raises StepFailed)."""
        stdout = self.work / f"step-{len(self.rows)}.out"
        shell = ["sh", "-c", 'out="$1"; shift; exec "$@" >"$out"', "sh", str(stdout), *argv]
        wrapper = [sys.executable, str(MEASURE), "--timeout", str(self.timeout), "--limit-mb", str(self.limit_mb)]
        print(f"  {label} ...", file=sys.stderr, flush=True)
        done = subprocess.run([*wrapper, "--", *shell], capture_output=True, text=True, check=False,
                              env={**_base_env(self.ray_tmp), **(env or {})})  # fmt: skip
        try:
            result: dict[str, Any] = json.loads(done.stdout)
        except ValueError:
            raise StepFailed(f"{label}: measure.py failed: {done.stderr.strip()[-2000:]}") from None
        leftovers = self.end_leftover_ray()
        row = Row(label, result["wall_s"], result["peak_rss_mb"], result["tree_peak_mb"], records, result["returncode"])
        self.rows.append(row)
        if result["killed"] or result["returncode"] != 0:
            row.note = result["killed"] or "failed"
            raise StepFailed(f"{label}: {row.note} (exit {row.exit})\n  $ {' '.join(argv)}\n{result['stderr'][-2000:]}")
        if leftovers:
            row.note = f"{leftovers} Ray processes left running, ended; "
        if check is not None:
            try:
                row.note += check(stdout)
            except StepFailed:
                row.note += "**wrong answer**"
                raise
        print(f"    {row.seconds:.2f} s, {row.peak_mb:.0f} MB, {row.rate:,.0f} records/s", file=sys.stderr)
        return row

    def end_leftover_ray(self) -> int:
        """End (by pid) the processes of this run's Ray sessions still alive after their driver ended."""
        marker = str(self.ray_tmp).encode()
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid():
                try:
                    if marker in (entry / "cmdline").read_bytes():
                        pids.append(int(entry.name))
                except OSError:
                    continue
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        return len(pids)


def _base_env(ray_tmp: Path) -> dict[str, str]:
    """The steps' environment: Ray sessions under ``ray_tmp`` (found and ended by path), a local cluster."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_OVERRIDE_RESOURCES")}
    return env | {"RAY_TMPDIR": str(ray_tmp), "RAY_USAGE_STATS_ENABLED": "0"}


def counts_of(dataset: Path) -> dict[str, int]:
    """Images and boxes of a normalized dataset, counted from its JSONL."""
    return dict(json.loads(run.dataset_counts(dataset)))


def query_check(boxes: int) -> Callable[[Path], str]:
    """Check that the GROUP BY's counts (CSV output) sum to the dataset's boxes."""

    def check(stdout: Path) -> str:
        with stdout.open(encoding="utf-8", newline="") as stream:
            rows = list(csv.reader(stream))[1:]
        total = sum(int(row[1]) for row in rows)
        if total != boxes:
            raise StepFailed(f"the GROUP BY counts sum to {total:,}, the JSONL holds {boxes:,} boxes")
        return f"{len(rows)} names, {total:,} boxes"

    return check


def same_jsonl(reference: Path, other: Path) -> str:
    """'byte-identical' when every split JSONL of the two datasets has the same bytes; else StepFailed."""
    names = sorted(p.name for p in reference.glob("*.jsonl"))
    if names != sorted(p.name for p in other.glob("*.jsonl")):
        raise StepFailed(f"{other}: splits {names} differ")
    for name in names:
        if subprocess.run(["cmp", "-s", str(reference / name), str(other / name)], check=False).returncode:
            raise StepFailed(f"{other / name} differs from the one-process {reference / name}")
    return "JSONL byte-identical to one process"


# ------------------------------------------------------------------------------------------ the steps


def source_step(bench: Bench, kind: str, images: int, seed: int) -> tuple[Path, dict[str, int]]:
    """Generate (cached) and convert the scale's source; returns the dataset and its counts."""
    if kind == "coco":
        root = DATA / f"coco-{images}"
        key = f"v{generate.GENERATOR_VERSION} seed {seed} images {images}"
        generated = run.ensure(root / "generated.json", key, lambda: generate.write_coco_tree(root, images, seed=seed))
        argv = [*CLI, "convert", "coco", str(generate.coco_file(root)), "--no-masks"]
    else:
        root = DATA / f"openimages-{images}"
        key = f"v{OPENIMAGES_VERSION} seed {seed} images {images}"
        root.mkdir(parents=True, exist_ok=True)
        generated = run.ensure(root / "generated.json", key, lambda: write_openimages(root, images, seed))
        argv = [*CLI, "convert", "openimages", str(root)]
    print(f"{kind}: {run.describe(generated)} in {root}", file=sys.stderr)
    dataset = bench.work / "normalized"
    bench.step(f"convert {kind} -> normalized", [*argv, "-o", str(dataset), "--force", "--quiet"], records=images)
    counts = counts_of(dataset)
    bench.rows[-1].note = f"{counts['images']:,} images, {counts['boxes']:,} boxes"
    if counts != {"images": generated["images"], "boxes": generated["annotations"]}:
        bench.rows[-1].note += " (**not the source's**)"
        raise StepFailed(f"the conversion holds {counts}, the source {generated}")
    return dataset, counts


def dataset_steps(bench: Bench, dataset: Path, counts: dict[str, int]) -> None:
    """Parquet export, the GROUP BY over JSONL and Parquet, validate and stats."""
    images = counts["images"]
    parquet = bench.work / "parquet"
    bench.step("export parquet", [*CLI, "export", "parquet", str(dataset), "-o", str(parquet), "--force", "-q"],
               records=images)  # fmt: skip
    group_by = query_check(counts["boxes"])
    bench.step("query GROUP BY name (JSONL)", [*CLI, "query", str(dataset), QUERY, "--format", "csv"],
               records=images, check=group_by)  # fmt: skip
    bench.step("query GROUP BY name (Parquet)", [*CLI, "query", str(parquet), QUERY, "--format", "csv"],
               records=images, check=group_by)  # fmt: skip
    bench.step("validate (one-process path)", [*CLI, "validate", str(dataset), "-q"], records=images)
    bench.step("stats (one-process path)", [*CLI, "stats", str(dataset), "--format", "json"], records=images)


@dataclass
class RayRates:
    """Measured SA-1B-style conversion rates (images/s) and the set's masks per image."""

    one_worker: float
    two_workers: float
    masks_per_image: float


def ray_steps(bench: Bench, images: int, seed: int) -> RayRates:
    """SA-1B-style conversion: one process, the local pool, Ray on 1 and 2 CPUs; outputs compared."""
    root = DATA / f"sa1b-{images}"
    key = f"v{SA1B_VERSION} seed {seed} images {images}"
    generated = run.ensure(root / "generated.json", key, lambda: write_sa1b(root / "sa", images, seed))
    print(f"sa1b: {run.describe(generated)} in {root}", file=sys.stderr)
    source = root / "sa"

    def convert(out: str, *options: str) -> list[str]:
        return [*CLI, "convert", "sa1b", str(source), "-o", str(bench.work / out), "--force", "--quiet", *options]

    reference = bench.work / "sa1b-one"
    bench.step("sa1b convert, one process (--workers 1)", convert("sa1b-one", "--workers", "1"), records=images)
    counts = counts_of(reference)
    bench.rows[-1].note = f"{counts['images']:,} images, {counts['boxes']:,} masks"
    if counts != {"images": generated["images"], "boxes": generated["annotations"]}:
        bench.rows[-1].note += " (**not the source's**)"
        raise StepFailed(f"the SA-1B conversion holds {counts}, the source {generated}")
    # --workers 2 in every parallel run: the engine's map stays in this process at 1 worker; the cluster's
    # CPU count is what bounds how many tasks run at once.
    bench.step("sa1b convert, local pool (--workers 2)", convert("sa1b-pool", "--workers", "2"), records=images,
               check=lambda _: same_jsonl(reference, bench.work / "sa1b-pool"))  # fmt: skip
    rates = []
    for cpus in (1, 2):
        out = f"sa1b-ray{cpus}"
        row = bench.step(
            f"sa1b convert --engine ray, {cpus} worker{'s' * (cpus > 1)} (local cluster of {cpus} CPU)",
            convert(out, "--engine", "ray", "--workers", "2"),
            records=images,
            env={"RAY_OVERRIDE_RESOURCES": json.dumps({"CPU": cpus})},
            check=lambda _, out=out: same_jsonl(reference, bench.work / out),  # type: ignore[misc]
        )
        rates.append(row.rate)
        shutil.rmtree(bench.work / out, ignore_errors=True)
    return RayRates(rates[0], rates[1], counts["boxes"] / max(counts["images"], 1))


def projection(rates: RayRates, nodes: int, cores: int) -> list[str]:
    """The SA-1B cluster projection, its formula and assumptions."""
    efficiency = min(1.0, rates.two_workers / (2 * rates.one_worker)) if rates.one_worker > 0 else math.nan
    workers = nodes * cores
    seconds = SA1B_IMAGES / (workers * rates.one_worker * efficiency)
    mask_seconds = SA1B_MASKS / (workers * rates.one_worker * rates.masks_per_image * efficiency)
    return [
        "### Projection (a projection, not a measurement)",
        "",
        f"SA-1B ({SA1B_IMAGES:,} images, {SA1B_MASKS:,} masks) on {nodes} nodes × {cores} cores = {workers} Ray "
        "workers (assumption: one task per core, cores as fast as this machine's, the source on storage that keeps "
        "up, and the one driver able to take and write the results).",
        "",
        "    hours = images / (nodes × cores × r1 × e) / 3600",
        "",
        f"r1 = {rates.one_worker:,.1f} images/s, the measured rate of Ray with 1 worker; e = r2 / (2 × r1) = "
        f"{efficiency:.2f} (capped at 1), the scaling efficiency measured from 1 to 2 workers on this 2-core "
        f"machine (r2 = {rates.two_workers:,.1f} images/s), applied to every worker.",
        "",
        f"**Projected: {seconds / 3600:,.1f} hours** by images; {mask_seconds / 3600:,.1f} hours by masks "
        f"(the generated set has {rates.masks_per_image:.0f} masks/image, SA-1B {SA1B_MASKS / SA1B_IMAGES:.0f}). "
        "One driver takes every result in order and writes one JSONL, so beyond its own rate more nodes add "
        "nothing: this is a lower bound on the time.",
    ]


# ------------------------------------------------------------------------------------------ the report


def machine_line() -> str:
    """Python, cores, load average."""
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return f"Python {sys.version.split()[0]}, {os.cpu_count()} cores, load average {load} at the start."


def report(title: str, rows: list[Row], extra: list[str]) -> str:
    """The Markdown of a run."""
    lines = [f"## {title}", "", machine_line(), "", HEADER, *(row.markdown() for row in rows), "", *extra]
    notes = ("peak RSS: the largest single process of the step (`getrusage(RUSAGE_CHILDREN)` in a fresh "
             "`peers/measure.py`); tree RSS: the summed RSS of the step's process tree, polled every 0.1 s "
             "(Ray's raylet and workers included); records = images.")  # fmt: skip
    return "\n".join([*lines, "", notes, ""])


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, generate the sources, run the steps, print (and write) the tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    size = parser.add_mutually_exclusive_group(required=True)
    size.add_argument("--scale", choices=tuple(SCALES), help="train2017 (COCO) or openimages (CSV)")
    size.add_argument("--images", type=int, help="a quick run at this many images")
    parser.add_argument("--source", choices=("coco", "openimages"), default="coco", help="with --images")
    parser.add_argument("--sa1b-images", type=int, help="SA-1B-style images for the Ray rows (5000; quick: 600)")
    parser.add_argument("--no-ray", action="store_true", help="skip the SA-1B / Ray rows and the projection")
    parser.add_argument("--nodes", type=int, default=10, help="projection: cluster nodes")
    parser.add_argument("--cores-per-node", type=int, default=32, help="projection: Ray workers per node")
    parser.add_argument("--seed", type=int, default=generate.DEFAULT_SEED)
    parser.add_argument("--work", type=Path, help="where outputs go (default: a new temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the outputs")
    parser.add_argument("--timeout", type=float, default=7200.0, help="seconds per step")
    parser.add_argument("--limit-mb", type=float, default=0.0, help="kill a step whose tree passes this RSS")
    parser.add_argument("--report", type=Path, help="write the Markdown here too")
    args = parser.parse_args(argv)
    kind, images = SCALES[args.scale] if args.scale else (args.source, args.images)
    sa1b_images = args.sa1b_images or (5000 if args.scale else 600)
    work = Path(tempfile.mkdtemp(prefix="bench-scale-", dir=args.work))
    ray_tmp = Path(tempfile.mkdtemp(prefix="bsr-", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    bench = Bench(work, ray_tmp, timeout=args.timeout, limit_mb=args.limit_mb)
    title = f"Scale benchmark: {args.scale or f'{images:,} images'} ({kind})"
    extra: list[str] = []
    failure = ""
    try:
        dataset, counts = source_step(bench, kind, images, args.seed)
        dataset_steps(bench, dataset, counts)
        if not args.no_ray:
            rates = ray_steps(bench, sa1b_images, args.seed)
            extra = projection(rates, args.nodes, args.cores_per_node)
    except StepFailed as exc:
        failure = str(exc)
        extra = ["**FAILED**: " + failure.splitlines()[0]]
    finally:
        bench.end_leftover_ray()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    text = report(title, bench.rows, extra)
    print(text)
    if args.report:
        args.report.write_text(text, encoding="utf-8")
    if failure:
        print(failure, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
