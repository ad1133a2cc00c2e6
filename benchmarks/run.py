"""Benchmark runner: annonorm against its peers and a raw-parse floor, as whole processes; one Markdown report.

Sections (``--only``, comma-separated; default all):

* ``coco``: read a COCO instances file and group boxes per image. annonorm runs
  ``annonorm convert coco FILE -o OUT --no-masks --force --quiet`` (which also writes the normalized JSONL),
  then the default ``--masks vector`` (polygons and crowd RLE into the records), held to 1.5x the
  ``--no-masks`` time of the same run and a peak RSS under 1.5 GB;
  the floor is a msgspec typed decode + grouping (``peers/coco_msgspec.py``); peers (``--peers``) run in
  their own virtualenv ``benchmarks/.peers-venv``: pycocotools ``COCO()``, globox, orjson, Datumaro,
  supervision (dense masks: only at ``--supervision-images`` images, reported as skipped at full scale).
* ``voc``: ``annonorm convert voc`` on ``--voc-images`` XML files, against a stdlib ElementTree floor.
* ``csv``: ``annonorm convert csv --preset tensorflow`` on ``--csv-rows`` rows, against a stdlib csv floor,
  polars (read + group + write NDJSON) and pyarrow (read + group) in the peers venv.
* ``validate``: ``benchmarks/bench_validate.py`` (annonorm validate vs msgspec vs Pydantic), its table.
* ``loader``: ``benchmarks/bench_loader.py`` when it exists, its table.
* ``masks``, ``check-images``, ``formats``: ``bench_masks.py`` (``--masks png`` vs a pycocotools loop),
  ``bench_check_images.py`` (vs a Pillow header loop), ``bench_formats.py`` (YOLO, LabelMe, CVAT, Label
  Studio... vs a stdlib loop), their tables.

Every figure is the median of ``--runs`` runs after one warm-up run (tools in ``--single-run`` run once,
without warm-up), each run a fresh process started through ``peers/measure.py``, which reports wall time
and peak RSS (``getrusage(RUSAGE_CHILDREN)``). Each tool's image and box counts are printed beside its
time so that equivalent work can be checked. Data is generated once into ``benchmarks/data/`` (git-ignored)
by ``generate.py`` and reused while the generator version and size match.

    python benchmarks/run.py --setup-peers                       # once: create benchmarks/.peers-venv
    python benchmarks/run.py --scale val2017 --only coco,voc,csv  # quick
    python benchmarks/run.py --scale train2017 --peers pycocotools,globox,orjson,datumaro,supervision

Never run as a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import generate  # noqa: E402  (a sibling script, not a package)

DATA = HERE / "data"
PEERS = HERE / "peers"
PEERS_VENV = HERE / ".peers-venv"
PEER_PACKAGES = ("msgspec", "orjson", "pycocotools", "globox", "supervision", "datumaro", "polars", "pyarrow")
ALL_PEERS = ("pycocotools", "globox", "orjson", "datumaro", "supervision")
SECTIONS = ("coco", "voc", "csv", "validate", "loader", "masks", "check-images", "formats")
#: Sections that are a script of their own, run with ``--runs`` and a size: (title, script, option, args field).
SCRIPT_SECTIONS = {
    "masks": ("COCO --masks png against a one-process pycocotools loop", "bench_masks.py", "--images", "mask_images"),
    "check-images": (
        "validate --check-images against a bare Pillow loop",
        "bench_check_images.py",
        "--images",
        "check_images",
    ),
    "formats": (
        "labeling-tool readers against a one-process stdlib loop",
        "bench_formats.py",
        "--images",
        "format_images",
    ),
}
#: ``--masks vector`` (the default) may take this many times the ``--no-masks`` time of the same run ...
VECTOR_TIME_LIMIT = 1.5
#: ... with a peak resident memory below this (issue 14, item 10).
VECTOR_PEAK_LIMIT_MB = 1536
#: Issue 18: the CSV engine within 1.5x of polars read + group + write on 5M rows, peak memory under 1 GB.
CSV_POLARS_LIMIT = 1.5
CSV_PEAK_LIMIT_MB = 1024
SCALES = {"train2017": generate.TRAIN2017_IMAGES, "val2017": generate.VAL2017_IMAGES}
#: supervision renders one dense boolean mask per object (H x W bytes): ~300 KB per box.
SUPERVISION_BYTES_PER_BOX = 640 * 480


# ------------------------------------------------------------------------------------------ measuring


@dataclass
class Measurement:
    """The runs of one command: wall times, largest peak RSS, the tool's own stdout, or why it failed."""

    label: str
    walls: list[float] = field(default_factory=list)
    peak_mb: float = 0.0
    output: str = ""
    error: str = ""
    single: bool = False
    #: False for a row at another scale than the section's floor (supervision's small run): no ratios.
    comparable: bool = True

    @property
    def median(self) -> float:
        """Median wall seconds (nan when it never succeeded)."""
        return statistics.median(self.walls) if self.walls else float("nan")

    def counts(self) -> dict[str, Any]:
        """The last JSON object the tool printed (its image and box counts), or {}."""
        for line in reversed(self.output.strip().splitlines()):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
        return {}


def measure(
    label: str,
    command: list[str],
    *,
    runs: int,
    single: bool = False,
    timeout: float = 3600.0,
    limit_mb: float = 0.0,
    after: Any = None,
) -> Measurement:
    """Run ``command`` (one warm-up + ``runs``, or once when ``single``) and collect the figures.

    A failing or killed run ends the series: the failure is reported, not raised. ``after`` (optional) is
    called after each successful run and returns the stdout to keep (annonorm prints nothing with --quiet,
    so its counts are read from its output).
    """
    result = Measurement(label, single=single)
    wrapper = [sys.executable, str(PEERS / "measure.py"), "--timeout", str(timeout), "--limit-mb", str(limit_mb)]
    plan = [False] if single else [True] + [False] * runs
    for warm_up in plan:
        done = subprocess.run([*wrapper, "--", *command], capture_output=True, text=True, check=False)
        try:
            run = json.loads(done.stdout)
        except ValueError:
            result.error = f"measure.py failed: {done.stderr.strip()[-500:]}"
            return result
        if run["killed"] or run["returncode"] != 0:
            tail = (run["stderr"].strip().splitlines() or [""])[-1][:300]
            result.error = run["killed"] or f"exit {run['returncode']}: {tail}"
            result.peak_mb = max(result.peak_mb, run["peak_rss_mb"], run["tree_peak_mb"])
            return result
        result.output = after() if after is not None else run["stdout"]
        if not warm_up:
            result.walls.append(run["wall_s"])
            result.peak_mb = max(result.peak_mb, run["peak_rss_mb"])
        print(f"    {label}: {run['wall_s']:.2f} s, {run['peak_rss_mb']:.0f} MB{' (warm-up)' if warm_up else ''}")
    return result


def dataset_counts(directory: Path) -> str:
    """Images and boxes of a normalized dataset, as the JSON line the peer scripts print."""
    decoder = msgspec.json.Decoder(dict[str, Any])
    images = boxes = 0
    for split in sorted(directory.glob("*.jsonl")):
        with split.open("rb") as f:
            for line in f:
                images += 1
                boxes += len(decoder.decode(line).get("boxes", ()))
    return json.dumps({"images": images, "boxes": boxes})


def annonorm_command(fmt: str, source: Path, out: Path, *options: str) -> list[str]:
    """``annonorm convert FMT SOURCE -o OUT --force --quiet OPTIONS`` through this interpreter."""
    return [
        sys.executable,
        "-m",
        "annonorm",
        "convert",
        fmt,
        str(source),
        "-o",
        str(out),
        "--force",
        "--quiet",
        *options,
    ]


# ------------------------------------------------------------------------------------------ reporting


def fmt_seconds(value: float) -> str:
    """Seconds with 2 decimals below 100, or '—'."""
    if value != value:
        return "—"
    return f"{value:.2f}" if value < 100 else f"{value:.0f}"


def comparison_table(rows: list[Measurement], *, baseline: Measurement | None, ours: Measurement | None) -> list[str]:
    """Markdown rows: tool, runs, median, spread, peak RSS, ratios to the floor and to annonorm, counts."""
    lines = [
        "| tool | runs | median s | min–max s | peak RSS MB | time × floor | time ÷ annonorm | images | boxes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        counts = row.counts()
        images = f"{counts['images']:,}" if "images" in counts else ""
        boxes = f"{counts['boxes']:,}" if "boxes" in counts else ""
        if not row.walls:
            reason = row.error or "not run"
            peak = f"{row.peak_mb:.0f}" if row.peak_mb else "—"
            lines.append(f"| {row.label} | — | **{reason}** | | {peak} | | | | |")
            continue
        spread = f"{min(row.walls):.2f}–{max(row.walls):.2f}" if len(row.walls) > 1 else ""
        floor = f"{row.median / baseline.median:.2f}" if baseline and baseline.walls and row.comparable else ""
        versus = f"{row.median / ours.median:.2f}" if ours and ours.walls and row.comparable else ""
        runs = "1 (no warm-up)" if row.single else str(len(row.walls))
        lines.append(
            f"| {row.label} | {runs} | {fmt_seconds(row.median)} | {spread} | {row.peak_mb:,.0f} | {floor} | "
            f"{versus} | {images} | {boxes} |"
        )
    return lines


def machine_lines(note: str) -> list[str]:
    """Machine, interpreter, cores, RAM, load average (other work on the machine shows there)."""
    memory = ""
    try:
        with open("/proc/meminfo") as f:
            total_kb = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
        memory = f"{total_kb / 2**20:.1f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        memory = "RAM unknown"
    load = " / ".join(f"{v:.2f}" for v in os.getloadavg())
    lines = [
        f"- Machine: `{platform.platform()}`, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, {memory}",
        f"- Python: {platform.python_implementation()} {platform.python_version()} (annonorm: `{sys.executable}`)",
        f"- Load average when the report was written (1/5/15 min): {load}",
    ]
    if note:
        lines.append(f"- Note: {note}")
    return lines


def versions(python: Path) -> str:
    """Installed versions of the peer packages in the peers venv, one line."""
    code = (
        "import importlib.metadata as m\n"
        f"for p in {list(PEER_PACKAGES)!r}:\n"
        "    try: print(p, m.version(p))\n"
        "    except m.PackageNotFoundError: print(p, 'missing')\n"
    )
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)
    return ", ".join(done.stdout.strip().splitlines())


# ------------------------------------------------------------------------------------------ sections


def ensure(stamp: Path, key: str, make: Any) -> dict[str, Any]:
    """Run ``make()`` unless ``stamp`` holds ``key``; returns the generator's counts."""
    if stamp.exists():
        saved = json.loads(stamp.read_text())
        if saved.get("key") == key:
            return dict(saved["counts"])
    started = time.perf_counter()
    counts = make()
    stamp.write_text(json.dumps({"key": key, "counts": counts}))
    print(f"  generated {stamp.parent.name} in {time.perf_counter() - started:.0f} s")
    return dict(counts)


def describe(counts: dict[str, Any]) -> str:
    """'118,287 images, 860,001 boxes, 449 MB' from a generator's counts."""
    parts = [f"{counts['images']:,} images", f"{counts['annotations']:,} boxes"]
    if "crowd" in counts:
        parts.append(f"{counts['crowd']:,} crowd RLE")
    parts.append(f"{counts['bytes'] / 1e6:,.0f} MB")
    return ", ".join(parts)


def section_coco(args: argparse.Namespace, images: int) -> list[str]:
    """COCO: floor, annonorm, peers on one generated instances file."""
    root = DATA / f"coco-{images}"
    key = f"v{generate.GENERATOR_VERSION} seed {args.seed} images {images}"
    counts = ensure(root / "generated.json", key, lambda: generate.write_coco_tree(root, images, seed=args.seed))
    source = generate.coco_file(root)
    out = DATA / f"out-coco-{images}"
    peers_python = PEERS_VENV / "bin" / "python"
    print(f"coco: {source}")
    rows: list[Measurement] = []
    baseline = measure(
        "msgspec typed decode + group (floor)",
        [sys.executable, str(PEERS / "coco_msgspec.py"), str(source)],
        runs=args.runs,
    )
    rows.append(baseline)
    ours = measure(
        "annonorm convert coco --no-masks",
        annonorm_command("coco", source, out, "--no-masks"),
        runs=args.runs,
        timeout=args.timeout,
        after=lambda: dataset_counts(out),
    )
    rows.append(ours)
    vectors = measure(
        "annonorm convert coco (--masks vector, the default)",
        annonorm_command("coco", source, out),
        runs=args.runs,
        timeout=args.timeout,
        after=lambda: dataset_counts(out),
    )
    rows.append(vectors)
    notes: list[str] = []
    if vectors.walls and ours.walls:
        ratio = vectors.median / ours.median
        verdict = "within" if ratio <= VECTOR_TIME_LIMIT and vectors.peak_mb < VECTOR_PEAK_LIMIT_MB else "OUTSIDE"
        notes.append(
            f"Polygons and crowd RLE kept as vectors: {ratio:.2f}× the `--no-masks` time of this run, peak RSS "
            f"{vectors.peak_mb:,.0f} MB ({verdict} the targets: ≤ {VECTOR_TIME_LIMIT}× and < "
            f"{VECTOR_PEAK_LIMIT_MB:,} MB)."
        )
    for peer in args.peers:
        if not peers_python.exists():
            rows.append(Measurement(peer, error="peers venv missing (run with --setup-peers)"))
            continue
        script = str(PEERS / f"coco_{peer}.py")
        if peer == "supervision":
            expected_gb = counts["annotations"] * SUPERVISION_BYTES_PER_BOX / 1e9
            if args.supervision_images < images:
                rows.append(
                    Measurement(
                        "supervision DetectionDataset.from_coco",
                        error=f"skipped at this scale: dense masks ≈ {expected_gb:,.0f} GB (see below)",
                    )
                )
                small = _supervision_small(args)
                if small is not None:
                    rows.append(small[0])
                    notes.append(small[1])
                continue
        label = {
            "pycocotools": "pycocotools COCO()",
            "globox": "globox AnnotationSet.from_coco",
            "orjson": "orjson loads + group",
            "datumaro": "Datumaro import_from coco_instances",
            "supervision": "supervision DetectionDataset.from_coco",
        }[peer]
        rows.append(
            measure(
                label,
                [str(peers_python), script, str(source)],
                runs=args.runs,
                single=peer in args.single_run,
                timeout=args.timeout,
                limit_mb=args.limit_mb,
            )
        )
    shutil.rmtree(out, ignore_errors=True)
    lines = [
        f"### COCO: read the instances file and group boxes per image ({describe(counts)})",
        "",
        *comparison_table(rows, baseline=baseline, ours=ours),
        "",
    ]
    if ours.walls and baseline.walls:
        others = [f"{r.label.split()[0]} {r.median / ours.median:.1f}×" for r in rows[3:] if r.walls and r.comparable]
        lines.append(
            f"annonorm takes {ours.median / baseline.median:.1f}× the raw-parse floor's time"
            + (f"; each peer's time as a multiple of annonorm's: {', '.join(others)}." if others else ".")
        )
    lines.extend(notes)
    if peers_python.exists() and args.peers:
        lines.append(f"\nPeer versions: {versions(peers_python)}.")
    return lines


def _supervision_small(args: argparse.Namespace) -> tuple[Measurement, str] | None:
    """supervision on a small COCO file (its masks are dense), with the floor and annonorm beside it."""
    images = args.supervision_images
    if images <= 0:
        return None
    root = DATA / f"coco-{images}"
    key = f"v{generate.GENERATOR_VERSION} seed {args.seed} images {images}"
    ensure(root / "generated.json", key, lambda: generate.write_coco_tree(root, images, seed=args.seed))
    source = generate.coco_file(root)
    row = measure(
        f"supervision DetectionDataset.from_coco ({images:,} images)",
        [str(PEERS_VENV / "bin" / "python"), str(PEERS / "coco_supervision.py"), str(source)],
        runs=args.runs,
        timeout=args.timeout,
        limit_mb=args.limit_mb,
    )
    row.comparable = False
    out = DATA / f"out-coco-{images}"
    ours = measure(
        f"annonorm ({images:,} images)",
        annonorm_command("coco", source, out, "--no-masks"),
        runs=args.runs,
        after=lambda: dataset_counts(out),
    )
    shutil.rmtree(out, ignore_errors=True)
    note = (
        f"\nsupervision loads a dense boolean mask (H×W bytes) per object whenever segmentation is present, with "
        f"no option to skip it, so it is measured on the first {images:,} images of the same data: "
        f"{fmt_seconds(row.median) if row.walls else row.error} s and {row.peak_mb:,.0f} MB, against "
        f"{fmt_seconds(ours.median)} s and {ours.peak_mb:,.0f} MB for annonorm on those images "
        f"({row.median / ours.median:.0f}× the time)."
        if row.walls and ours.walls
        else f"\nsupervision on {images:,} images: {row.error or 'failed'}."
    )
    return row, note


def section_voc(args: argparse.Namespace) -> list[str]:
    """VOC: annonorm convert voc throughput against stdlib ElementTree floors, 1 and 2 processes (the base)."""
    images = args.voc_images
    root = DATA / f"voc-{images}"
    key = f"v{generate.GENERATOR_VERSION} seed {args.seed} images {images}"
    counts = ensure(root / "generated.json", key, lambda: generate.write_voc(root, images, seed=args.seed))
    out = DATA / f"out-voc-{images}"
    print(f"voc: {root}")
    floor = measure(
        "stdlib ElementTree parse + group (floor, 1 process)",
        [sys.executable, str(PEERS / "voc_etree.py"), str(root)],
        runs=args.runs,
    )
    floor_2 = measure(
        "stdlib ElementTree parse + group (floor, 2 processes)",
        [sys.executable, str(PEERS / "voc_etree.py"), str(root), "--processes", "2"],
        runs=args.runs,
    )
    ours = measure(
        "annonorm convert voc --masks none",
        annonorm_command("voc", root, out, "--masks", "none"),
        runs=args.runs,
        timeout=args.timeout,
        after=lambda: dataset_counts(out),
    )
    shutil.rmtree(out, ignore_errors=True)
    return [
        f"### VOC: {describe(counts)} of XML (Annotations/ + ImageSets/Main train/val)",
        "",
        *throughput_table([floor, floor_2, ours], baseline=floor_2),
    ]


def section_csv(args: argparse.Namespace) -> list[str]:
    """CSV: annonorm convert csv --preset tensorflow throughput against a stdlib csv floor."""
    rows = args.csv_rows
    path = DATA / f"csv-{rows}" / "train_labels.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    key = f"v{generate.GENERATOR_VERSION} seed {args.seed} rows {rows}"
    counts = ensure(path.parent / "generated.json", key, lambda: generate.write_csv(path, rows, seed=args.seed))
    out = DATA / f"out-csv-{rows}"
    print(f"csv: {path}")
    floor = measure(
        "stdlib csv reader + group (floor)",
        [sys.executable, str(PEERS / "csv_stdlib.py"), str(path)],
        runs=args.runs,
    )
    peers_python = PEERS_VENV / "bin" / "python"
    peer_out = DATA / f"out-csv-{rows}-polars.ndjson"
    peers = [
        measure(label, [str(peers_python), str(PEERS / script), str(path), *extra], runs=args.runs)
        if peers_python.exists()
        else Measurement(label, error="peers venv missing (run with --setup-peers)")
        for label, script, extra in (
            ("polars read_csv + group_by + write_ndjson", "csv_polars.py", [str(peer_out)]),
            ("pyarrow read_csv + group_by (no writer)", "csv_pyarrow.py", []),
        )
    ]
    peer_out.unlink(missing_ok=True)
    ours = measure(
        "annonorm convert csv --preset tensorflow",
        annonorm_command("csv", path, out, "--preset", "tensorflow"),
        runs=args.runs,
        timeout=args.timeout,
        after=lambda: dataset_counts(out),
    )
    shutil.rmtree(out, ignore_errors=True)
    notes = []
    polars = peers[0]
    if polars.walls and ours.walls:
        ratio = ours.median / polars.median
        verdict = "within" if ratio <= CSV_POLARS_LIMIT and ours.peak_mb < CSV_PEAK_LIMIT_MB else "OUTSIDE"
        notes = [
            "",
            f"annonorm: {ratio:.2f}× polars' time in this run, peak RSS {ours.peak_mb:,.0f} MB ({verdict} the "
            f"targets: ≤ {CSV_POLARS_LIMIT}× polars and < {CSV_PEAK_LIMIT_MB:,} MB).",
        ]
    return [
        f"### CSV (TensorFlow layout, one row per box): {counts['annotations']:,} rows, "
        f"{counts['images']:,} images, {counts['bytes'] / 1e6:,.0f} MB",
        "",
        *throughput_table([floor, *peers, ours], baseline=polars if polars.walls else floor),
        *notes,
    ]


def throughput_table(rows: list[Measurement], *, baseline: Measurement) -> list[str]:
    """Markdown rows with throughput in boxes/s and images/s beside the comparison columns."""
    lines = [
        "| tool | runs | median s | min–max s | peak RSS MB | images/s | boxes/s | time × floor | images | boxes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        counts = row.counts()
        if not row.walls:
            lines.append(f"| {row.label} | — | **{row.error or 'not run'}** | | | | | | | |")
            continue
        images, boxes = counts.get("images", 0), counts.get("boxes", 0)
        spread = f"{min(row.walls):.2f}–{max(row.walls):.2f}" if len(row.walls) > 1 else ""
        floor = f"{row.median / baseline.median:.2f}" if baseline.walls else ""
        lines.append(
            f"| {row.label} | {len(row.walls)} | {fmt_seconds(row.median)} | {spread} | {row.peak_mb:,.0f} | "
            f"{images / row.median:,.0f} | {boxes / row.median:,.0f} | {floor} | {images:,} | {boxes:,} |"
        )
    return lines


def run_script(title: str, command: list[str], *, timeout: float) -> list[str]:
    """Run another benchmark script and include its printed output."""
    print(f"{title}: {' '.join(command)}")
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        return [f"### {title}", "", f"**timed out after {timeout:.0f} s**"]
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        return [f"### {title}", "", f"**failed (exit {done.returncode})**:", "", "```", tail, "```"]
    text = done.stdout.strip()
    body = text if "|---" in text else f"```\n{text}\n```"
    shown = " ".join(c if not c.startswith("/") else os.path.relpath(c, HERE.parent) for c in command)
    return [f"### {title}", "", f"`{shown}`", "", body]


# ------------------------------------------------------------------------------------------ main


def setup_peers() -> None:
    """Create benchmarks/.peers-venv and install the peer packages, one at a time (a failure is reported)."""
    if not (PEERS_VENV / "bin" / "python").exists():
        subprocess.run(["python3", "-m", "venv", str(PEERS_VENV)], check=True)
    pip = [str(PEERS_VENV / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=False)
    for package in PEER_PACKAGES:
        done = subprocess.run([*pip, package], capture_output=True, text=True, check=False)
        status = "ok" if done.returncode == 0 else f"FAILED: {done.stderr.strip().splitlines()[-1:]}"
        print(f"  pip install {package}: {status}")
    print(f"peers: {versions(PEERS_VENV / 'bin' / 'python')}")


def parse_scale(text: str) -> int:
    """``train2017``, ``val2017`` or a number of images."""
    if text in SCALES:
        return SCALES[text]
    try:
        value = int(text.replace("_", "").replace(",", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected train2017, val2017 or a number of images, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("the number of images must be positive")
    return value


def parse_list(choices: tuple[str, ...]) -> Any:
    """An argparse type: a comma-separated subset of ``choices`` ('all', 'none' allowed)."""

    def parse(text: str) -> list[str]:
        if text == "all":
            return list(choices)
        if text in ("", "none"):
            return []
        items = [item.strip() for item in text.split(",") if item.strip()]
        unknown = [item for item in items if item not in choices]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {unknown}; choose among {', '.join(choices)}")
        return items

    return parse


def main(argv: list[str] | None = None) -> int:
    """Parse options, run the chosen sections, print and write the report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setup-peers", action="store_true", help="create benchmarks/.peers-venv and exit")
    parser.add_argument("--only", type=parse_list(SECTIONS), default=list(SECTIONS), help="sections to run")
    parser.add_argument("--scale", type=parse_scale, default=generate.TRAIN2017_IMAGES, help="COCO images")
    parser.add_argument("--runs", type=int, default=3, help="measured runs per tool, after one warm-up")
    parser.add_argument(
        "--peers",
        type=parse_list(ALL_PEERS),
        default=["pycocotools", "globox", "orjson"],
        help=f"COCO peers ({', '.join(ALL_PEERS)}, all, none); default pycocotools,globox,orjson",
    )
    parser.add_argument(
        "--single-run", type=parse_list(ALL_PEERS), default=["datumaro"], help="peers run once, without warm-up"
    )
    parser.add_argument("--supervision-images", type=int, default=1000, help="supervision's smaller scale")
    parser.add_argument("--voc-images", type=int, default=20_000)
    parser.add_argument("--csv-rows", type=int, default=1_000_000)
    parser.add_argument("--validate-records", type=int, default=1_000_000)
    parser.add_argument("--mask-images", type=int, default=10_000, help="images of the masks section")
    parser.add_argument("--check-images", type=int, default=20_000, help="images of the check-images section")
    parser.add_argument("--format-images", type=int, default=20_000, help="images per format of the formats section")
    parser.add_argument("--limit-mb", type=float, default=12_000, help="kill a peer above this RSS (shared machine)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per run")
    parser.add_argument("--seed", type=int, default=generate.DEFAULT_SEED)
    parser.add_argument("--note", default="", help="a line for the report (e.g. other work running)")
    parser.add_argument("--report", type=Path, default=HERE / "results.md")
    args = parser.parse_args(argv)

    if args.setup_peers:
        setup_peers()
        return 0
    DATA.mkdir(exist_ok=True)
    started = time.perf_counter()
    runs_text = f"median of {args.runs} runs after one warm-up"
    body: list[str] = []
    if "coco" in args.only:
        body += [*section_coco(args, args.scale), ""]
    if "voc" in args.only:
        body += [*section_voc(args), ""]
    if "csv" in args.only:
        body += [*section_csv(args), ""]
    validate_script = HERE / "bench_validate.py"
    if "validate" in args.only:
        body += run_script(
            "annonorm validate",
            [
                sys.executable,
                str(validate_script),
                "--records",
                str(args.validate_records),
                "--runs",
                str(args.runs),
            ],
            timeout=args.timeout * 4,
        )
        body.append("")
    loader_script = HERE / "bench_loader.py"
    if "loader" in args.only:
        if loader_script.exists():
            body += run_script(
                "NormalizedDataset (loader)",
                [sys.executable, str(loader_script), "--runs", str(args.runs)],
                timeout=args.timeout * 4,
            )
        else:
            body += ["### NormalizedDataset (loader)", "", "benchmarks/bench_loader.py does not exist yet: skipped."]
        body.append("")
    for section, (title, script, option, field_name) in SCRIPT_SECTIONS.items():
        if section in args.only:
            command = [
                sys.executable,
                str(HERE / script),
                option,
                str(getattr(args, field_name)),
                "--runs",
                str(args.runs),
            ]
            body += [*run_script(title, command, timeout=args.timeout * 8), ""]
    header = [
        "# annonorm benchmarks",
        "",
        *machine_lines(args.note),
        f"- Method: whole processes, {runs_text} (tools marked '1' ran once); wall time from the parent, peak "
        "RSS = `getrusage(RUSAGE_CHILDREN).ru_maxrss` of a wrapper process (the largest single process of the "
        "tool's tree); 'time × floor' = median ÷ the raw-parse floor's median; 'time ÷ annonorm' > 1 means "
        "slower than annonorm.",
        f"- Command: `python benchmarks/run.py {shlex.join(argv if argv is not None else sys.argv[1:])}` "
        f"({time.perf_counter() - started:.0f} s in all)",
        "",
    ]
    report = "\n".join(header + body).rstrip() + "\n"
    print()
    print(report)
    args.report.write_text(report, encoding="utf-8")
    print(f"written to {args.report}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
