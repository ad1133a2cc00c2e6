"""Throughput of 13 format readers (issue 15) next to one-process floors that parse the same files.

Formats: the labeling tools (``yolo``, ``labelme``, ``cvat``, ``labelstudio``) and the datasets (``hf``,
``tfrecord``, ``kitti``, ``dota``, ``openimages``, ``coco-results``, ``lvis``, ``sa1b``, ``widerface``).

The data is one generated COCO tree (``generate.py``: boxes, polygons, crowd RLE; split ``train``) converted to
annonorm once. Every format with a writer is ``annonorm export FORMAT`` of that dataset, so those readers see
the same images and objects: YOLO (polygon rows, images copied), TFRecord (``--embed-images``), DOTA (images
copied), KITTI (header-only PNGs put in ``image_2/``), COCO results (read with ``--gt`` = the generated COCO
file), and KITTI and DOTA from a copy whose class names have ``-`` for spaces (``annonorm remap``: one-word
classes, as both formats need). The others are written here from the same data: ``lvis`` is an LVIS-style JSON
(the COCO file plus ``neg_category_ids`` / ``not_exhaustive_category_ids`` per image and ``frequency`` /
``synset`` / ``synonyms`` per category, no crowd annotations, as LVIS has none) read by ``annonorm convert
coco``; ``widerface`` is the real WIDER Face layout (``wider_face_split/wider_face_train_bbx_gt.txt``, one
header-only image per record in ``WIDER_train/images/<event>/``, every box a face with integer x y w h and six
flags). ``sa1b`` is ``bench_scale.write_sa1b`` at the same image count, with ``--sa1b-masks`` masks per image
on average (default 20; SA-1B has ~100, which makes the source ~5x bigger), a header-only ``sa_<n>.jpg``
beside each JSON. Images are header-only PNGs of each record's size (nothing decodes pixels).

For each format: the floor (``peers/labeling_stdlib.py`` or ``peers/datasets_stdlib.py``: parse every file,
group per image, print counts; no validation) and ``annonorm convert FORMAT`` (which also checks every object,
writes the normalized JSONL atomically and validates it), medians of ``--runs`` runs after a warm-up, as whole
processes through ``peers/measure.py``. The images and boxes annonorm wrote are compared with the floor's.
Sources are made once per size under ``benchmarks/data/formats-N/`` (each format on first use, cached by key).

    python benchmarks/bench_formats.py --images 20000 --runs 3 --report benchmarks/results-formats.md

Never run as a test.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_scale  # noqa: E402
import generate  # noqa: E402
import run  # noqa: E402

LABELING = ("yolo", "labelme", "cvat", "labelstudio")
DATASETS = ("hf", "tfrecord", "kitti", "dota", "openimages", "coco-results", "lvis", "sa1b", "widerface")
FORMATS = LABELING + DATASETS
#: The split of the generated data.
SPLIT = "train"
#: Bumped when a source below changes shape (the cache key).
SOURCES_VERSION = 1
#: Export options per format.
EXPORT_OPTIONS = {
    "yolo": ["--task", "segment", "--images", "copy"],
    "dota": ["--images", "copy"],
    "tfrecord": ["--embed-images"],
}
#: Formats exported from the copy with one-word class names.
ONE_WORD = ("kitti", "dota")
#: WIDER Face has 61 event folders.
WIDER_EVENTS = 61


@dataclass
class Prepared:
    """The generated data every source is made from."""

    base: Path
    coco: Path  # the generated COCO instances file
    normalized: Path
    one_word: Path  # the normalized dataset, class names with '-' for spaces
    fake: Path  # header-only images, flat
    images: int
    key: list[Any]


@dataclass
class Source:
    """What one format's floor and annonorm are given."""

    reader: str  # the annonorm converter
    path: Path
    options: list[str] = field(default_factory=list)
    floor: list[str] = field(default_factory=list)  # peer script and its arguments
    note: str = ""


def png_header(width: int, height: int) -> bytes:
    """A PNG signature, IHDR and IEND: enough for a header reader to tell the size (no pixel data)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def cli(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "annonorm", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"annonorm {' '.join(args)} failed: {done.stderr.strip()[-800:]}")


def records(dataset: Path) -> Iterator[dict[str, Any]]:
    """The records of a normalized dataset, split files in name order."""
    for split in sorted(dataset.glob("*.jsonl")):
        with split.open("rb") as f:
            for line in f:
                yield json.loads(line)


# ------------------------------------------------------------------------------------------ sources


def prepare(images: int, seed: int) -> Prepared:
    """The COCO file, its normalized dataset (and one-word copy) and the fake image folder (made once per key)."""
    base = run.DATA / f"formats-{images}"
    key = [generate.GENERATOR_VERSION, SOURCES_VERSION, seed, images, SPLIT]
    prepared = Prepared(base, generate.coco_file(base / "coco", SPLIT), base / "normalized", base / "one-word",
                        base / "images", images, key)  # fmt: skip
    stamp = base / "prepared.json"
    if stamp.exists() and json.loads(stamp.read_text()).get("key") == key:
        return prepared
    shutil.rmtree(base, ignore_errors=True)
    generate.write_coco_tree(base / "coco", images, seed=seed, split=SPLIT)
    document = json.loads(prepared.coco.read_text())
    prepared.fake.mkdir(parents=True)
    for image in document["images"]:
        (prepared.fake / image["file_name"]).write_bytes(png_header(image["width"], image["height"]))
    cli("convert", "coco", str(prepared.coco), "--images", str(prepared.fake), "-o", str(prepared.normalized), "-q")
    spaced = {c["name"]: c["name"].replace(" ", "-") for c in document["categories"] if " " in c["name"]}
    (base / "one-word.json").write_text(json.dumps(spaced))
    cli("remap", str(prepared.normalized), "-o", str(prepared.one_word), "--map", str(base / "one-word.json"), "-q")
    stamp.write_text(json.dumps({"key": key}))
    return prepared


def write_lvis(coco: Path, target: Path, seed: int) -> None:
    """An LVIS-style file of the COCO file: image labels, LVIS category fields, no crowd annotations."""
    import numpy as np

    document = json.loads(coco.read_text())
    rng = np.random.default_rng([seed, 15])
    ids = [c["id"] for c in document["categories"]]
    for k, category in enumerate(document["categories"]):
        category.update(frequency="fcr"[k % 3], synset=f"{category['name'].replace(' ', '_')}.n.01",
                        synonyms=[category["name"]], **{"def": f"a {category['name']}"})  # fmt: skip
    annotations = [a for a in document["annotations"] if not a["iscrowd"]]
    present: dict[int, set[int]] = {}
    for annotation in annotations:
        del annotation["iscrowd"]
        present.setdefault(annotation["image_id"], set()).add(annotation["category_id"])
    for image in document["images"]:
        here = sorted(present.get(image["id"], ()))
        absent = [i for i in ids if i not in here]
        image["neg_category_ids"] = sorted(int(i) for i in rng.choice(absent, size=min(3, len(absent)), replace=False))
        image["not_exhaustive_category_ids"] = here[:1] if rng.random() < 0.2 else []
    document["annotations"] = annotations
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(document))


def write_widerface(dataset: Path, root: Path) -> None:
    """WIDER Face's layout of the records: each box a face (integer x y w h inside the image, six flags)."""
    blocks: dict[str, list[str]] = {}
    for n, record in enumerate(records(dataset)):
        k = n % WIDER_EVENTS
        event = f"{k}--Event{k}"
        name = f"{event}/{k}_Event{k}_{Path(record['image']).stem}.jpg"
        width, height = record["width"], record["height"]
        image = root / f"WIDER_{SPLIT}" / "images" / name
        image.parent.mkdir(parents=True, exist_ok=True)
        image.write_bytes(png_header(width, height))
        rows = []
        for j, box in enumerate(record.get("boxes", ())):
            x, y = min(math.floor(box["x1"]), width - 1), min(math.floor(box["y1"]), height - 1)
            w = min(max(1, round(box["x2"] - x)), width - x)
            h = min(max(1, round(box["y2"] - y)), height - y)
            rows.append(f"{x} {y} {w} {h} {j % 3} {j // 3 % 2} {j // 6 % 2} 0 {j // 2 % 3} {j // 12 % 2} ")
        blocks[name] = [name, str(len(rows)), *(rows or ["0 0 0 0 0 0 0 0 0 0 "])]
    gt = root / "wider_face_split" / f"wider_face_{SPLIT}_bbx_gt.txt"
    gt.parent.mkdir(parents=True, exist_ok=True)
    gt.write_text("".join(line + "\n" for block in blocks.values() for line in block))


def write_sa1b(root: Path, images: int, seed: int, masks: int) -> None:
    """``bench_scale.write_sa1b`` with ``masks`` masks per image on average, a header-only image beside each JSON."""
    bench_scale.write_sa1b(root, images, seed, mean_masks=masks)
    for path in root.glob("sa_*.json"):
        image = json.loads(path.read_bytes())["image"]
        (root / image["file_name"]).write_bytes(png_header(image["width"], image["height"]))


def make_source(fmt: str, prep: Prepared, target: Path, seed: int, sa1b_masks: int) -> None:
    """Write format ``fmt``'s source to ``target``."""
    if fmt in LABELING or fmt in ("hf", "tfrecord", "openimages", "coco-results", "kitti", "dota"):
        dataset = prep.one_word if fmt in ONE_WORD else prep.normalized
        cli("export", fmt, str(dataset), "-o", str(target), "-q", *EXPORT_OPTIONS.get(fmt, []))
        if fmt == "kitti":  # KITTI finds each label's image by stem in image_2/ beside label_2/
            sizes = {Path(record["image"]).stem: (record["width"], record["height"]) for record in records(dataset)}
            for label in target.glob("*/label_2/*.txt"):
                (label.parent.parent / "image_2").mkdir(exist_ok=True)
                (label.parent.parent / "image_2" / f"{label.stem}.png").write_bytes(png_header(*sizes[label.stem]))
    elif fmt == "lvis":
        write_lvis(prep.coco, target / f"lvis_v1_{SPLIT}.json", seed)
    elif fmt == "widerface":
        write_widerface(prep.normalized, target)
    elif fmt == "sa1b":
        write_sa1b(target, prep.images, seed, sa1b_masks)
    else:
        raise SystemExit(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


def source_of(fmt: str, prep: Prepared, seed: int, sa1b_masks: int) -> Source:
    """Format ``fmt``'s source (made on first use and kept while its key matches) and how it is read."""
    target = prep.base / fmt
    key = [*prep.key, sa1b_masks, bench_scale.SA1B_VERSION] if fmt == "sa1b" else prep.key
    stamp = prep.base / f"prepared-{fmt}.json"
    if not (stamp.exists() and json.loads(stamp.read_text()).get("key") == key):
        shutil.rmtree(target, ignore_errors=True)
        make_source(fmt, prep, target, seed, sa1b_masks)
        stamp.write_text(json.dumps({"key": key}))
    fake = ["--images", str(prep.fake)]
    peer = str(run.PEERS / "datasets_stdlib.py")
    if fmt in LABELING:
        files = sorted(target.glob("*.xml" if fmt == "cvat" else "*.json")) if fmt in ("cvat", "labelstudio") else []
        path = files[0] if len(files) == 1 else target  # the one file the exporter wrote, else the tree
        floor = [str(run.PEERS / "labeling_stdlib.py"), fmt, str(target)]
        return Source(fmt, path, fake if fmt == "labelstudio" else [], floor)
    if fmt == "coco-results":
        (results,) = target.glob("results_*.json")
        return Source(fmt, results, ["--gt", str(prep.coco), *fake], [peer, fmt, str(results), str(prep.coco)])
    if fmt == "lvis":
        (lvis,) = target.glob("*.json")
        return Source("coco", lvis, fake, [peer, "coco", str(lvis)], "LVIS-style JSON read by `convert coco`")
    if fmt == "sa1b":
        return Source(fmt, target, [], [peer, fmt, str(target)], f"~{sa1b_masks} masks per image (SA-1B: ~100)")
    return Source(fmt, target, fake if fmt in ("hf", "tfrecord", "openimages") else [], [peer, fmt, str(target)])


# ------------------------------------------------------------------------------------------ measuring


def counts_check(floor: run.Measurement, ours: run.Measurement) -> str:
    """Whether annonorm wrote the images and boxes the floor counted."""
    if not floor.walls or not ours.walls:
        return "counts not compared (a run failed)"
    a, b = floor.counts(), ours.counts()
    pair = (a.get("images"), a.get("boxes"))
    if pair == (b.get("images"), b.get("boxes")):
        return f"counts agree ({pair[0]:,} images, {pair[1]:,} boxes)"
    return (f"**counts DIFFER**: floor {a.get('images')} images / {a.get('boxes')} boxes, "
            f"annonorm {b.get('images')} / {b.get('boxes')}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=generate.DEFAULT_SEED)
    parser.add_argument("--only", default=",".join(FORMATS), help=f"comma-separated, of: {','.join(FORMATS)}")
    parser.add_argument("--sa1b-masks", type=int, default=20, help="SA-1B masks per image on average")
    parser.add_argument("--note", default="")
    parser.add_argument("--report", type=Path, default=HERE / "results-formats.md")
    args = parser.parse_args(argv)
    chosen = [fmt.strip() for fmt in args.only.split(",") if fmt.strip()]
    unknown = [fmt for fmt in chosen if fmt not in FORMATS]
    if unknown:
        parser.error(f"unknown format(s) {', '.join(unknown)}; expected {', '.join(FORMATS)}")
    run.DATA.mkdir(exist_ok=True)
    prep = prepare(args.images, args.seed)
    lines = [f"# Format readers, {args.images:,} images", "", *run.machine_lines(args.note), ""]
    for fmt in chosen:
        source = source_of(fmt, prep, args.seed, args.sa1b_masks)
        print(f"{fmt}: {source.path}")
        peer = "labeling_stdlib" if fmt in LABELING else "datasets_stdlib"
        floor = run.measure(f"{fmt}: {peer} parse + group (floor, 1 process)", [sys.executable, *source.floor],
                            runs=args.runs)  # fmt: skip
        out = run.DATA / f"out-formats-{fmt}"
        ours = run.measure(
            f"annonorm convert {source.reader}",
            run.annonorm_command(source.reader, source.path, out, *source.options),
            runs=args.runs,
            after=lambda out=out: run.dataset_counts(out),
        )
        shutil.rmtree(out, ignore_errors=True)
        check = counts_check(floor, ours)
        print(f"    {check}")
        note = f" ({source.note})" if source.note else ""
        lines += [f"## {fmt}{note}", "", *run.throughput_table([floor, ours], baseline=floor), "", check, ""]
    args.report.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    print(f"written to {args.report}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
