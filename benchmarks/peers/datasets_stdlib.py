"""One-process floors for the dataset formats: parse every file, group objects per image, print counts.

``python datasets_stdlib.py FORMAT SOURCE [GT]`` prints ``{"images": n, "boxes": m}``. No validation, no safety
checks, no output written: what reading costs. Every reader but ``hf`` is the standard library alone:

- ``hf``: every ``*.parquet`` below SOURCE, read with ``pyarrow.parquet`` batch by batch and turned into one
  Python dict per image (``to_pylist``), its ``objects.bbox`` counted. Parquet cannot be read with the standard
  library (Thrift metadata, Snappy pages), so this one floor needs pyarrow (it runs in annonorm's venv).
- ``tfrecord``: every ``*.tfrecord*`` file, the record framing read with ``struct`` (length, data; both CRCs
  skipped), each ``tf.train.Example`` decoded by walking the protobuf wire format by hand (varints and length
  prefixes: Example.features = 1, Features.feature = 1 map entries {key = 1, value = 2}, Feature bytes_list = 1
  / float_list = 2 / int64_list = 3, packed or not) into ``{key: [values]}``; boxes: ``image/object/bbox/xmin``.
- ``kitti``: every ``*/label_2/*.txt``, one object per non-empty line.
- ``dota``: every ``labelTxt/*.txt`` below SOURCE, one object per line of 9+ values (the ``imagesource:`` and
  ``gsd:`` header lines skipped).
- ``openimages``: ``csv`` over ``annotations/*-annotations-bbox.csv`` grouped by ``ImageID``; the images are
  those of the image list (``image_ids_and_rotation.csv``) and of the box table.
- ``coco-results``: ``json.load`` of the results file SOURCE (predictions grouped by ``image_id``) and of the
  ground truth GT (its ``images``: one record per ground-truth image).
- ``coco`` (LVIS): ``json.load`` of one instances file, annotations grouped by ``image_id``.
- ``sa1b``: ``json.load`` of every ``*.json`` below SOURCE, one image per file, its ``annotations``.
- ``widerface``: every ``wider_face_split/wider_face_*_bbx_gt.txt``, block by block (path, count N, N rows; a
  count of 0 is followed by one dummy row).
"""

from __future__ import annotations

import csv
import json
import struct
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from labeling_stdlib import text_rows  # a sibling script: its folder is on sys.path when run


def hf(root: Path) -> tuple[int, int]:
    import pyarrow.parquet as pq  # the one non-stdlib reader: see the module docstring

    images = boxes = 0
    for path in sorted(root.rglob("*.parquet")):
        for batch in pq.ParquetFile(path).iter_batches():
            for row in batch.to_pylist():
                images += 1
                boxes += len((row.get("objects") or {}).get("bbox") or ())
    return images, boxes


# ------------------------------------------------------------------------------------------ tfrecord

_FLOAT = struct.Struct("<f")


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int, Any]]:
    """``(field number, wire type, value)`` of one message: ints for varint/fixed, bytes for length-delimited."""
    fields, at, end = [], 0, len(data)
    while at < end:
        tag, at = _varint(data, at)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, at = _varint(data, at)
        elif wire == 2:
            size, at = _varint(data, at)
            value, at = data[at : at + size], at + size
        elif wire == 5:
            value, at = data[at : at + 4], at + 4
        elif wire == 1:
            value, at = data[at : at + 8], at + 8
        else:
            raise ValueError(f"wire type {wire}")
        fields.append((number, wire, value))
    return fields


def _feature(data: bytes) -> list[Any]:
    values: list[Any] = []
    for kind, _, body in _fields(data):  # one of bytes_list = 1, float_list = 2, int64_list = 3
        for _, wire, value in _fields(body):
            if kind == 1:
                values.append(value)
            elif kind == 2:  # packed (one length-delimited run) or one fixed32 per value
                values.extend(v for (v,) in _FLOAT.iter_unpack(value))
            elif wire == 2:  # packed int64s
                at = 0
                while at < len(value):
                    number, at = _varint(value, at)
                    values.append(number)
            else:
                values.append(value)
    return values


def decode_example(data: bytes) -> dict[str, list[Any]]:
    """A ``tf.train.Example`` as ``{feature key: values}``."""
    example: dict[str, list[Any]] = {}
    for number, _, features in _fields(data):
        if number != 1:
            continue
        for _, _, entry in _fields(features):  # map<string, Feature> entries
            key, value = b"", b""
            for field, _, body in _fields(entry):
                if field == 1:
                    key = body
                elif field == 2:
                    value = body
            example[key.decode()] = _feature(value)
    return example


def tfrecord(root: Path) -> tuple[int, int]:
    images = boxes = 0
    for path in sorted(root.glob("*.tfrecord*")):
        with path.open("rb") as f:
            while header := f.read(12):  # uint64 length, uint32 masked CRC of it (not checked)
                (length,) = struct.unpack_from("<Q", header)
                data = f.read(length)
                f.read(4)  # the data's masked CRC (not checked)
                example = decode_example(data)
                images += 1
                boxes += len(example.get("image/object/bbox/xmin", ()))
    return images, boxes


# ------------------------------------------------------------------------------------------ text tables


def kitti(root: Path) -> tuple[int, int]:
    return text_rows(root.glob("*/label_2/*.txt"))


def dota(root: Path) -> tuple[int, int]:
    return text_rows(root.rglob("labelTxt/*.txt"), min_fields=9)  # the header rows (imagesource:, gsd:) have fewer


def openimages(root: Path) -> tuple[int, int]:
    folder = root / "annotations" if (root / "annotations").is_dir() else root
    per_image: dict[str, list[list[str]]] = {}
    for path in sorted(folder.glob("*image_ids_and_rotation.csv")):
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                per_image.setdefault(row["ImageID"], [])
    for path in sorted(folder.glob("*-annotations-bbox.csv")):
        with path.open(newline="") as f:
            rows = csv.reader(f)
            next(rows, None)
            for row in rows:
                per_image.setdefault(row[0], []).append(row)
    return len(per_image), sum(len(rows) for rows in per_image.values())


# ------------------------------------------------------------------------------------------ JSON


def coco_results(results: Path, gt: Path) -> tuple[int, int]:
    with results.open("rb") as f:
        predictions = json.load(f)
    with gt.open("rb") as f:
        images = json.load(f)["images"]
    per_image: dict[int, list[dict[str, Any]]] = {image["id"]: [] for image in images}
    for prediction in predictions:
        per_image[prediction["image_id"]].append(prediction)
    return len(per_image), sum(len(found) for found in per_image.values())


def coco(path: Path) -> tuple[int, int]:
    with path.open("rb") as f:
        document = json.load(f)
    per_image: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for annotation in document["annotations"]:
        per_image[annotation["image_id"]].append(annotation)
    return len(document["images"]), sum(len(found) for found in per_image.values())


def sa1b(root: Path) -> tuple[int, int]:
    images = boxes = 0
    for path in sorted(root.rglob("*.json")):
        with path.open("rb") as f:
            document = json.load(f)
        images += 1
        boxes += len(document.get("annotations", ()))
    return images, boxes


def widerface(root: Path) -> tuple[int, int]:
    per_image: dict[str, list[list[str]]] = {}
    for path in sorted((root / "wider_face_split").glob("wider_face_*_bbx_gt.txt")):
        split = path.name[len("wider_face_") : -len("_bbx_gt.txt")]
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        at = 0
        while at < len(lines):
            name, count = lines[at], int(lines[at + 1])
            per_image[f"WIDER_{split}/images/{name}"] = [row.split() for row in lines[at + 2 : at + 2 + count]]
            at += 2 + max(count, 1)
    return len(per_image), sum(len(rows) for rows in per_image.values())


READERS = {
    "hf": hf,
    "tfrecord": tfrecord,
    "kitti": kitti,
    "dota": dota,
    "openimages": openimages,
    "coco-results": coco_results,
    "coco": coco,
    "sa1b": sa1b,
    "widerface": widerface,
}

if __name__ == "__main__":
    found_images, found_boxes = READERS[sys.argv[1]](*(Path(arg) for arg in sys.argv[2:]))
    print(json.dumps({"images": found_images, "boxes": found_boxes}))
