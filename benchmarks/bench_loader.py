"""Benchmark of the loader's index at COCO train2017 scale (not a test; prints a table).

Generates (once, deterministically, into ``benchmarks/data/``, ignored by git) a normalized split of
118,287 records holding 860,001 boxes in 80 categories and the equivalent COCO instances JSON, then
reports, each as the median of several runs:

* cold open: index built from the JSONL and cached (cache removed before each run);
* warm open: cache hit (arrays memory-mapped, checked);
* ``ds[i]`` with ``load_images=False`` (target only, no image decode), per call;
* resident memory of 2 forked DataLoader workers (shuffle, batch 64, annonorm's collate) before and
  after one full metadata-only epoch, from ``/proc/<pid>/smaps_rollup`` (USS = private pages,
  PSS = proportional share), against the same loop over a list-of-dicts dataset built on
  pycocotools' ``COCO`` index (torchvision's ``CocoDetection`` pattern).

Run: ``.venv/bin/python benchmarks/bench_loader.py [--runs 3]``. Needs torch and pycocotools.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

RECORDS = 118_287
BOXES = 860_001
CATEGORIES = 80
SEED = 2017
DATA = Path(__file__).resolve().parent / "data" / "coco_scale"
GENERATOR_VERSION = "1"

TARGETS = {"warm_open_s": 0.3, "getitem_us": 20.0, "growth_ratio": 0.05}


# ---------------------------------------------------------------------------------------------- data


def generate(directory: Path = DATA) -> Path:
    """Write the normalized dataset and the COCO JSON (skipped when already there)."""
    stamp = directory / "generated.txt"
    if stamp.exists() and stamp.read_text() == GENERATOR_VERSION:
        return directory
    from annonorm.io import DatasetWriter
    from annonorm.schemas.manifest import Manifest

    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    rng = np.random.default_rng(SEED)
    names = [f"class_{k:02d}" for k in range(CATEGORIES)]
    per_image = rng.multinomial(BOXES, np.full(RECORDS, 1 / RECORDS))
    widths = rng.integers(200, 641, RECORDS)
    heights = rng.integers(200, 641, RECORDS)
    image_ids = np.sort(rng.choice(600_000, RECORDS, replace=False)) + 1
    writer = DatasetWriter(directory)
    for position, name in enumerate(names):
        writer.category(name, source_id=position + 1)
    coco_images: list[dict[str, Any]] = []
    coco_annotations: list[dict[str, Any]] = []
    annotation_id = 0
    for position in range(RECORDS):
        width, height, image_id = int(widths[position]), int(heights[position]), int(image_ids[position])
        count = int(per_image[position])
        x = np.round(rng.uniform(0, width - 10, count), 2)
        y = np.round(rng.uniform(0, height - 10, count), 2)
        w = np.round(rng.uniform(1, width - x), 2)
        h = np.round(rng.uniform(1, height - y), 2)
        crowd = rng.random(count) < 0.01
        classes = rng.integers(0, CATEGORIES, count)
        file_name = f"{image_id:012d}.jpg"
        coco_images.append({"id": image_id, "file_name": file_name, "width": width, "height": height})
        boxes = []
        counts: dict[str, int] = {}
        for k in range(count):
            annotation_id += 1
            name = names[int(classes[k])]
            area = round(float(w[k] * h[k]) * 0.7, 2)
            boxes.append(
                {
                    "name": name,
                    "x1": float(x[k]),
                    "y1": float(y[k]),
                    "x2": float(x[k] + w[k]),
                    "y2": float(y[k] + h[k]),
                    "attributes": {"iscrowd": bool(crowd[k]), "area": area, "id": annotation_id},
                }
            )
            counts[name] = counts.get(name, 0) + 1
            coco_annotations.append(
                {
                    "id": annotation_id,
                    "image_id": image_id,
                    "category_id": int(classes[k]) + 1,
                    "bbox": [float(x[k]), float(y[k]), float(w[k]), float(h[k])],
                    "area": area,
                    "iscrowd": int(crowd[k]),
                    "segmentation": [],
                }
            )
        record = {"image": file_name, "width": width, "height": height, "labels": list(counts), "counts": counts}
        writer.add("train", {**record, "boxes": boxes, "id": image_id})
    writer.close()
    writer.write_manifest(Manifest(name="coco-scale", categories=writer.categories, splits={"train": "train.jsonl"}))
    coco = {
        "images": coco_images,
        "annotations": coco_annotations,
        "categories": [{"id": k + 1, "name": name, "supercategory": "thing"} for k, name in enumerate(names)],
    }
    (directory / "instances_train.json").write_bytes(msgspec.json.encode(coco))
    stamp.write_text(GENERATOR_VERSION)
    return directory


# ------------------------------------------------------------------------------------- the baseline


class CocoListOfDicts:
    """torchvision's ``CocoDetection`` pattern, metadata only: pycocotools' dict index, targets built per item."""

    def __init__(self, annotation_file: Path) -> None:
        from pycocotools.coco import COCO

        with contextlib.redirect_stdout(io.StringIO()):
            self.coco = COCO(str(annotation_file))
        self.ids = sorted(self.coco.imgs.keys())

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[str, dict[str, Any]]:
        image_id = self.ids[index]
        info = self.coco.loadImgs(image_id)[0]
        annotations = self.coco.loadAnns(self.coco.getAnnIds(imgIds=image_id))
        boxes = np.array([a["bbox"] for a in annotations], dtype=np.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]  # COCO [x, y, w, h] -> xyxy
        target = {
            "boxes": boxes,
            "labels": np.array([a["category_id"] for a in annotations], dtype=np.int64),
            "image_id": image_id,
            "area": np.array([a["area"] for a in annotations], dtype=np.float32),
            "iscrowd": np.array([a["iscrowd"] for a in annotations], dtype=np.int64),
        }
        return info["file_name"], target


class EmptyTargets:
    """The floor: same length, no metadata at all. Its growth is the worker's own (Python, torch), not a dataset's."""

    def __len__(self) -> int:
        return RECORDS

    def __getitem__(self, index: int) -> tuple[str, dict[str, Any]]:
        return "", {}


# ---------------------------------------------------------------------------------------- measuring


def _smaps(pid: int) -> dict[str, int]:
    """Memory of a process in bytes, from ``/proc/<pid>/smaps_rollup``.

    ``uss``: pages only this process maps (private clean + dirty); ``dirty``: private dirty pages,
    i.e. memory this process wrote (copy-on-write copies of inherited pages included); ``pss``:
    proportional share; ``rss``: resident.
    """
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, _, rest = line.partition(":")
        fields[key] = int(rest.split()[0]) * 1024
    return {
        "uss": fields["Private_Clean"] + fields["Private_Dirty"],
        "dirty": fields["Private_Dirty"],
        "pss": fields["Pss"],
        "rss": fields["Rss"],
    }


def _worker_pids(queue: Any) -> Any:
    def init(_: int) -> None:
        queue.put(os.getpid())

    return init


def _as_list(batch: list[Any]) -> list[Any]:
    """Collate that keeps the samples as they are (numpy targets travel pickled, cheaply)."""
    return batch


def measure_workers(kind: str, freeze: bool, collate: str = "list") -> dict[str, Any]:
    """One metadata-only epoch through 2 forked workers; memory of the workers before and after.

    ``freeze`` calls :func:`gc.freeze` in the parent before the workers fork, so that a worker's
    garbage collector does not write into every inherited object (a known fork-worker trick).
    ``collate``: ``"list"`` keeps the numpy samples (pickled to the parent), ``"torch"`` uses
    :func:`annonorm.torch.collate_fn` (every array becomes a tensor shared through shared memory).
    """
    import gc
    import multiprocessing

    from torch.utils.data import DataLoader

    from annonorm import NormalizedDataset
    from annonorm.torch import collate_fn

    started = time.perf_counter()
    dataset: Any
    if kind == "annonorm":
        dataset = NormalizedDataset(DATA, "train", load_images=False)
    elif kind == "coco":
        dataset = CocoListOfDicts(DATA / "instances_train.json")
    else:
        dataset = EmptyTargets()
    open_seconds = time.perf_counter() - started
    main_rss = _smaps(os.getpid())["rss"]
    context = multiprocessing.get_context("fork")
    pids = context.SimpleQueue()
    if freeze:
        gc.freeze()
    loader = DataLoader(
        dataset,
        batch_size=64,
        shuffle=True,
        num_workers=2,
        collate_fn=collate_fn if collate == "torch" else _as_list,
        persistent_workers=True,
        multiprocessing_context=context,
        worker_init_fn=_worker_pids(pids),
    )
    iterator = iter(loader)
    seen = len(next(iterator)[0] if collate == "torch" else next(iterator))
    workers = [pids.get(), pids.get()]
    before = [_smaps(pid) for pid in workers]
    epoch_started = time.perf_counter()
    for batch in iterator:
        seen += len(batch[0] if collate == "torch" else batch)
    epoch_seconds = time.perf_counter() - epoch_started
    after = [_smaps(pid) for pid in workers]
    del iterator, loader
    if seen != len(dataset):
        raise RuntimeError(f"the epoch saw {seen} samples of {len(dataset)}")
    return {"open_s": open_seconds, "epoch_s": epoch_seconds, "main_rss": main_rss, "before": before, "after": after}


def _run_child(kind: str, freeze: bool, collate: str) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", kind, "--collate", collate, *(["--freeze"] if freeze else [])]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def _median_time(function: Any, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _growth(run: dict[str, Any], field: str) -> float:
    """Mean over the workers of a field's growth across the epoch, in MB."""
    return statistics.mean(a[field] - b[field] for a, b in zip(run["after"], run["before"], strict=True)) / 1e6


def _print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    for number, row in enumerate(rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if number == 0:
            print("  ".join("-" * width for width in widths))


def main() -> None:
    """Generate the data if needed, measure, print the table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (median reported)")
    parser.add_argument("--child", choices=("annonorm", "coco", "empty"), help=argparse.SUPPRESS)
    parser.add_argument("--freeze", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--collate",
        choices=("list", "torch"),
        default="list",
        help="worker epochs: keep numpy samples (list, default) or annonorm.torch.collate_fn (torch)",
    )
    arguments = parser.parse_args()
    if arguments.child:
        print(json.dumps(measure_workers(arguments.child, arguments.freeze, arguments.collate)))
        return

    from annonorm import NormalizedDataset

    # The index cache lives in the user cache directory: point it at a scratch place the cold runs can empty.
    cache_dir = DATA.parent / "loader-cache"
    os.environ["ANNONORM_CACHE_DIR"] = str(cache_dir)

    started = time.perf_counter()
    generate()
    print(f"data: {DATA} ({time.perf_counter() - started:.1f} s to make or find)", flush=True)
    split_mb = (DATA / "train.jsonl").stat().st_size / 1e6
    coco_mb = (DATA / "instances_train.json").stat().st_size / 1e6
    runs = arguments.runs
    many = max(runs, 5)

    def cold() -> None:
        shutil.rmtree(cache_dir, ignore_errors=True)
        NormalizedDataset(DATA, "train", load_images=False)

    cold_s = _median_time(cold, runs)
    warm_s = _median_time(lambda: NormalizedDataset(DATA, "train", load_images=False), many)
    dataset = NormalizedDataset(DATA, "train", load_images=False)
    if dataset.index_source != "cache":
        raise RuntimeError("the warm open did not hit the cache")
    order = np.random.default_rng(0).permutation(len(dataset))[:100_000].tolist()
    per_call = []
    for _ in range(many):
        started = time.perf_counter()
        for index in order:
            dataset[index]
        per_call.append((time.perf_counter() - started) / len(order) * 1e6)
    getitem_us = statistics.median(per_call)
    index_mb = dataset._index.nbytes / 1e6
    del dataset
    print(f"open and ds[i] measured; now {runs} x 6 worker epochs", flush=True)

    kinds = ("annonorm", "coco", "empty")
    results = {(kind, freeze): [] for kind in kinds for freeze in (False, True)}  # type: dict[tuple[str, bool], list[dict[str, Any]]]
    for _ in range(runs):
        for kind, freeze in results:
            results[kind, freeze].append(_run_child(kind, freeze, arguments.collate))

    def median(kind: str, freeze: bool, pick: Any) -> float:
        return statistics.median(pick(run) for run in results[kind, freeze])

    print(f"\n{RECORDS:,} records, {BOXES:,} boxes; medians of {runs} runs (warm open and ds[i]: {many})\n")
    _print_table(
        [
            ("measure", "annonorm", "target"),
            ("split file size (MB)", f"{split_mb:.0f}", ""),
            ("index arrays (MB)", f"{index_mb:.1f}", ""),
            ("cold open: index built and cached (s)", f"{cold_s:.2f}", ""),
            ("warm open: cache hit (s)", f"{warm_s:.4f}", f"< {TARGETS['warm_open_s']}"),
            ("ds[i], load_images=False (us)", f"{getitem_us:.1f}", f"< {TARGETS['getitem_us']:.0f}"),
        ]
    )
    print()
    rows: list[tuple[str, ...]] = [
        (
            f"2 workers, 1 epoch, {arguments.collate} collate",
            "annonorm",
            "COCO list-of-dicts",
            "empty (floor)",
            "annonorm / COCO",
            "target",
        )
    ]
    rows.append(
        (
            "open in the parent (s)",
            *(f"{median(k, False, lambda r: r['open_s']):.2f}" for k in kinds),
            "",
            "",
        )
    )
    rows.append(
        (
            "parent RSS after open (MB)",
            *(f"{median(k, False, lambda r: r['main_rss']) / 1e6:.0f}" for k in kinds),
            "",
            "",
        )
    )
    for freeze in (False, True):
        setting = "gc.freeze()" if freeze else "plain fork"
        rows.append(
            (f"epoch time, {setting} (s)", *(f"{median(k, freeze, lambda r: r['epoch_s']):.1f}" for k in kinds), "", "")
        )
        for field in ("uss", "dirty", "pss", "rss"):
            grown = [median(k, freeze, lambda r, f=field: _growth(r, f)) for k in kinds]
            # RSS hardly moves in either (copy-on-write turns resident shared pages private): no ratio for it.
            ratio = f"{grown[0] / grown[1] * 100:.1f} %" if grown[1] > 1 and field != "rss" else ""
            above_floor = grown[1] - grown[2]
            if ratio and above_floor > 0:
                ratio += f" ({max(grown[0] - grown[2], 0.0) / above_floor * 100:.1f} % above floor)"
            target = f"< {TARGETS['growth_ratio'] * 100:.0f} %" if field == "uss" else ""
            label = {"uss": "USS", "dirty": "private dirty", "pss": "PSS", "rss": "RSS"}[field]
            rows.append((f"  worker {label} growth, {setting} (MB)", *(f"{g:.1f}" for g in grown), ratio, target))
        rows.append(
            (
                f"  worker USS at epoch end, {setting} (MB)",
                *(
                    f"{median(k, freeze, lambda r: statistics.mean(a['uss'] for a in r['after'])) / 1e6:.0f}"
                    for k in kinds
                ),
                "",
                "",
            )
        )
    _print_table(rows)
    print(
        f"\nCOCO JSON: {coco_mb:.0f} MB. Growth = mean over the 2 workers of (after the epoch - after the first batch)."
    )


if __name__ == "__main__":
    main()
