"""Throughput of the labeling-tool readers (YOLO, LabelMe, CVAT, Label Studio) next to one-process stdlib floors.

The data is one generated COCO tree (``generate.py``: boxes, polygons, crowd RLE) converted to annonorm once and
exported to each format by annonorm's own writers, so every reader sees the same images and objects. Images are
header-only PNGs of each record's size (YOLO and Label Studio need image files; nothing decodes pixels).
For each format: the floor (``peers/labeling_stdlib.py``: parse every file, group per image, print counts) and
``annonorm convert FORMAT`` (which also checks every object, writes the normalized JSONL atomically and validates
it), medians of ``--runs`` runs after a warm-up, as whole processes through ``peers/measure.py``.

    python benchmarks/bench_formats.py --images 20000 --runs 3 --report benchmarks/results-formats.md

Never run as a test.
"""

from __future__ import annotations

import argparse
import json
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import generate  # noqa: E402
import run  # noqa: E402

FORMATS = ("yolo", "labelme", "cvat", "labelstudio")
#: Export options per format (YOLO: polygon rows, images copied beside the labels, as a YOLO tree ships).
EXPORT_OPTIONS = {"yolo": ["--task", "segment", "--images", "copy"]}


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


def prepare(images: int, seed: int) -> tuple[Path, Path, dict[str, Path]]:
    """The normalized dataset, its fake image folder and one export per format (made once per size)."""
    base = run.DATA / f"labeling-{images}"
    stamp = base / "prepared.json"
    exports = {fmt: base / fmt for fmt in FORMATS}
    if stamp.exists() and json.loads(stamp.read_text()).get("key") == [generate.GENERATOR_VERSION, seed, images]:
        return base / "normalized", base / "images", exports
    shutil.rmtree(base, ignore_errors=True)
    coco_root = base / "coco"
    generate.write_coco_tree(coco_root, images, seed=seed)
    document = json.loads(generate.coco_file(coco_root).read_text())
    fake = base / "images"
    fake.mkdir(parents=True)
    for image in document["images"]:
        (fake / image["file_name"]).write_bytes(png_header(image["width"], image["height"]))
    normalized = base / "normalized"
    cli("convert", "coco", str(generate.coco_file(coco_root)), "--images", str(fake), "-o", str(normalized), "-q")
    for fmt, target in exports.items():
        cli("export", fmt, str(normalized), "-o", str(target), "-q", *EXPORT_OPTIONS.get(fmt, []))
    stamp.write_text(json.dumps({"key": [generate.GENERATOR_VERSION, seed, images]}))
    return normalized, fake, exports


def source_of(fmt: str, export: Path) -> Path:
    """What ``annonorm convert FMT`` is given: the tree, or the one file the exporter wrote."""
    if fmt in ("cvat", "labelstudio"):
        files = sorted(export.glob("*.xml" if fmt == "cvat" else "*.json"))
        return files[0] if len(files) == 1 else export
    return export


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=generate.DEFAULT_SEED)
    parser.add_argument("--only", default=",".join(FORMATS))
    parser.add_argument("--note", default="")
    parser.add_argument("--report", type=Path, default=HERE / "results-formats.md")
    args = parser.parse_args(argv)
    run.DATA.mkdir(exist_ok=True)
    _, fake, exports = prepare(args.images, args.seed)
    lines = [f"# Labeling-tool readers, {args.images:,} images", "", *run.machine_lines(args.note), ""]
    for fmt in args.only.split(","):
        source = source_of(fmt, exports[fmt])
        print(f"{fmt}: {source}")
        floor = run.measure(
            f"{fmt}: stdlib parse + group (floor, 1 process)",
            [sys.executable, str(run.PEERS / "labeling_stdlib.py"), fmt, str(exports[fmt])],
            runs=args.runs,
        )
        out = run.DATA / f"out-labeling-{fmt}"
        options = ["--images", str(fake)] if fmt == "labelstudio" else []
        ours = run.measure(
            f"annonorm convert {fmt}",
            run.annonorm_command(fmt, source, out, *options),
            runs=args.runs,
            after=lambda out=out: run.dataset_counts(out),
        )
        shutil.rmtree(out, ignore_errors=True)
        lines += [f"## {fmt}", "", *run.throughput_table([floor, ours], baseline=floor), ""]
    args.report.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    print(f"written to {args.report}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
