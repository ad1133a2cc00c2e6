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


def generate(directory: Path = DATA, records: int = RECORDS, boxes: int = BOXES, images: bool = False) -> Path:
    """Write the normalized dataset and the COCO JSON (skipped when already there).

    ``images``: also write each record's JPEG (a smooth gradient with noise, at the record's size) into
    ``images/``, the dataset's ``image_root``, for the loops that decode images.
    """
    stamp = directory / "generated.txt"
    version = (
        GENERATOR_VERSION
        if (records, boxes, images) == (RECORDS, BOXES, False)
        else (f"{GENERATOR_VERSION} {records} {boxes} {int(images)}")
    )
    if stamp.exists() and stamp.read_text() == version:
        return directory
    from annonorm.io import DatasetWriter
    from annonorm.schemas.manifest import Manifest

    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    rng = np.random.default_rng(SEED)
    names = [f"class_{k:02d}" for k in range(CATEGORIES)]
    per_image = rng.multinomial(boxes, np.full(records, 1 / records))
    widths = rng.integers(200, 641, records)
    heights = rng.integers(200, 641, records)
    image_ids = np.sort(rng.choice(600_000, records, replace=False)) + 1
    writer = DatasetWriter(directory)
    for position, name in enumerate(names):
        writer.category(name, source_id=position + 1)
    coco_images: list[dict[str, Any]] = []
    coco_annotations: list[dict[str, Any]] = []
    annotation_id = 0
    if images:
        from PIL import Image

        (directory / "images").mkdir()
    for position in range(records):
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
        if images:
            gradient = np.add.outer(np.arange(height) * 0.3, np.arange(width) * 0.2)
            noise = rng.integers(0, 40, (height, width, 3))
            pixels = (gradient[:, :, None] + noise + [0, 60, 120]).astype(np.uint8)
            Image.fromarray(pixels, "RGB").save(directory / "images" / file_name, quality=85)
        record = {"image": file_name, "width": width, "height": height, "labels": list(counts), "counts": counts}
        writer.add("train", {**record, "boxes": boxes, "id": image_id})
    writer.close()
    manifest = Manifest(
        name="coco-scale",
        categories=writer.categories,
        splits={"train": "train.jsonl"},
        image_root="images" if images else ".",
    )
    writer.write_manifest(manifest)
    coco = {
        "images": coco_images,
        "annotations": coco_annotations,
        "categories": [{"id": k + 1, "name": name, "supercategory": "thing"} for k, name in enumerate(names)],
    }
    (directory / "instances_train.json").write_bytes(msgspec.json.encode(coco))
    stamp.write_text(version)
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


class CocoPattern(CocoListOfDicts):
    """torchvision's ``CocoDetection`` pattern as a detection training loop feeds it: targets per item,
    as numpy arrays (``tensors=False``) or as tensors (``tensors=True``, what ``ConvertCocoPolysToMask``
    and ``transforms.v2`` hand on: one ``torch.as_tensor`` per field); with ``images``, the image is
    decoded (PIL, RGB) and handed on as an array or a uint8 ``(C, H, W)`` tensor.
    """

    def __init__(self, directory: Path, tensors: bool, images: bool) -> None:
        super().__init__(directory / "instances_train.json")
        self.images = directory / "images" if images else None
        self.tensors = tensors

    def __getitem__(self, index: int) -> tuple[Any, dict[str, Any]]:
        file_name, target = super().__getitem__(index)
        image: Any = file_name
        if self.images is not None:
            from PIL import Image

            with Image.open(self.images / file_name) as opened:
                image = np.array(opened.convert("RGB"))
        if self.tensors:
            import torch

            target = {key: torch.as_tensor(value) for key, value in target.items()}
            if self.images is not None:
                image = torch.from_numpy(image).permute(2, 0, 1)
        return image, target


class PerItem:
    """annonorm before batching: items fetched one by one (the dataset's ``__getitems__`` hidden)."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        return self.dataset[index]


def _zip_collate(batch: list[Any]) -> tuple[Any, ...]:
    """torchvision's detection references' collate: ``tuple(zip(*batch))``."""
    return tuple(zip(*batch, strict=True))


def _collate_per_item(batch: list[Any]) -> tuple[list[Any], list[dict[str, Any]]]:
    """annonorm's collate before batching: every array of every target its own tensor."""
    from annonorm.torch import image_to_tensor, target_to_tensors

    images = [image if isinstance(image, str) else image_to_tensor(image, wrap=False) for image, _ in batch]
    return images, [target_to_tensors(target, wrap=False) for _, target in batch]


#: Throughput loops: name -> what it is (the table's row label).
LOOPS = {
    "pattern-numpy": "torchvision pattern, numpy targets",
    "pattern-tensors": "torchvision pattern, tensor targets",
    "annonorm-before": "annonorm, per-item collate (before)",
    "annonorm": "annonorm.torch.collate_fn (batched)",
}


def measure_rate(loop: str, directory: Path, images: bool, batch_size: int = 64) -> dict[str, Any]:
    """Items per second of one shuffled epoch through 2 forked workers, after the first batch.

    Also the workers' USS growth over the epoch (after the first batch to the end), in bytes.
    """
    import multiprocessing

    from torch.utils.data import DataLoader

    from annonorm import NormalizedDataset
    from annonorm.torch import collate_fn

    dataset: Any
    collate: Any
    if loop.startswith("pattern"):
        dataset, collate = CocoPattern(directory, tensors=loop == "pattern-tensors", images=images), _zip_collate
    elif loop == "annonorm-before":
        dataset, collate = PerItem(NormalizedDataset(directory, "train", load_images=images)), _collate_per_item
    else:
        dataset, collate = NormalizedDataset(directory, "train", load_images=images), collate_fn
    context = multiprocessing.get_context("fork")
    pids = context.SimpleQueue()
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        num_workers=2,
        collate_fn=collate,
        persistent_workers=True,  # alive after the epoch, for the memory reading
        multiprocessing_context=context,
        worker_init_fn=_worker_pids(pids),
    )
    iterator = iter(loader)
    first = len(next(iterator)[1])
    workers = [pids.get(), pids.get()]
    before = [_smaps(pid) for pid in workers]
    started = time.perf_counter()
    seen = 0
    for _, targets in iterator:
        seen += len(targets)
        targets[0]["boxes"]  # the per-image view, as a training loop reads it
    seconds = time.perf_counter() - started
    after = [_smaps(pid) for pid in workers]
    if first + seen != len(dataset):
        raise RuntimeError(f"the epoch saw {first + seen} samples of {len(dataset)}")
    growth = statistics.mean(a["uss"] - b["uss"] for a, b in zip(after, before, strict=True))
    return {"rate": seen / seconds, "seconds": seconds, "uss_growth": growth}


def throughput(runs: int, records: int, image_records: int) -> None:
    """The throughput section: every loop, metadata only and with images, ``runs`` times each, medians."""
    metadata_dir = generate(DATA.parent / f"loader-{records}", records, round(records * BOXES / RECORDS))
    images_dir = generate(
        DATA.parent / f"loader-images-{image_records}", image_records, round(image_records * BOXES / RECORDS), True
    )
    print(f"throughput data: {metadata_dir}, {images_dir}; {runs} x {2 * len(LOOPS)} epochs", flush=True)
    results: dict[tuple[str, bool], list[dict[str, Any]]] = {(loop, i): [] for i in (False, True) for loop in LOOPS}
    for _ in range(runs):
        for loop, images in results:
            command = [
                sys.executable,
                __file__,
                "--rate-child",
                loop,
                "--data",
                str(images_dir if images else metadata_dir),
            ]
            output = subprocess.run(
                command + (["--images"] if images else []), check=True, capture_output=True, text=True
            )
            results[loop, images].append(json.loads(output.stdout.strip().splitlines()[-1]))

    def median(loop: str, images: bool, field: str) -> float:
        return statistics.median(run[field] for run in results[loop, images])

    print(
        f"\nDataLoader, 2 forked workers, shuffle, batch 64; items/s after the first batch, median of {runs}; "
        f"metadata only: {records:,} records; with images: {image_records:,} JPEGs (200-640 px a side)\n"
    )
    rows: list[tuple[str, ...]] = [
        (
            "loop",
            "metadata items/s",
            "x pattern (tensors)",
            "with images items/s",
            "x pattern (tensors)",
            "worker USS growth (MB)",
        )
    ]
    base = {images: median("pattern-tensors", images, "rate") for images in (False, True)}
    for loop, label in LOOPS.items():
        rates = [median(loop, images, "rate") for images in (False, True)]
        growth = max(median(loop, images, "uss_growth") for images in (False, True)) / 1e6
        rows.append(
            (
                label,
                f"{rates[0]:,.0f}",
                f"{rates[0] / base[False]:.1f}",
                f"{rates[1]:,.0f}",
                f"{rates[1] / base[True]:.2f}",
                f"{growth:.1f}",
            )
        )
    _print_table(rows)
    print("\nTargets: batched metadata >= 10x the pattern with tensors; with images >= 1x; worker memory flat.")


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
    parser.add_argument(
        "--section", choices=("memory", "throughput", "all"), default="all", help="which tables to measure"
    )
    parser.add_argument("--records", type=int, default=10_000, help="records of the metadata throughput epochs")
    parser.add_argument("--image-records", type=int, default=2_000, help="JPEGs of the with-images epochs")
    parser.add_argument("--rate-child", choices=tuple(LOOPS), help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--images", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.rate_child:
        print(json.dumps(measure_rate(arguments.rate_child, arguments.data, arguments.images)))
        return
    if arguments.section == "throughput":
        os.environ["ANNONORM_CACHE_DIR"] = str(DATA.parent / "loader-cache")
        throughput(arguments.runs, arguments.records, arguments.image_records)
        return
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
    if arguments.section == "all":
        print()
        throughput(runs, arguments.records, arguments.image_records)


if __name__ == "__main__":
    main()
