"""Checks on the committed sample dataset in ``sample_data/`` (COCO, VOC and CSV views of the same six images)."""

from __future__ import annotations

import csv
import io
import json
import runpy
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image
from pycocotools import mask as mask_utils

ROOT = Path(__file__).resolve().parent.parent / "sample_data"
SCRIPT = ROOT / "make_sample_data.py"
GENERATED_DIRS = ("coco", "voc", "csv")
SPLITS = ("train", "val")
VOC_INDEX = {"square": 1, "circle": 2, "triangle": 3}

Box = tuple[int, int, int, int]


def tight_extent(mask: NDArray[Any]) -> Box:
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    assert rows.size, "empty mask"
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def xywh_to_xyxy(bbox: list[float]) -> Box:
    x, y, w, h = bbox
    assert all(float(v).is_integer() for v in bbox), bbox
    return int(x), int(y), int(x + w), int(y + h)


def load_coco(split: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((ROOT / "coco" / "annotations" / f"instances_{split}.json").read_text())
    return doc


def coco_boxes_by_stem() -> dict[str, list[tuple[str, Box]]]:
    """stem -> [(class name, xyxy box)] in annotation-id order (= drawing / XML / CSV order)."""
    out: dict[str, list[tuple[str, Box]]] = {}
    for split in SPLITS:
        doc = load_coco(split)
        cats = {c["id"]: c["name"] for c in doc["categories"]}
        names = {im["id"]: Path(im["file_name"]).stem for im in doc["images"]}
        for stem in names.values():
            out[stem] = []
        for ann in sorted(doc["annotations"], key=lambda a: a["id"]):
            out[names[ann["image_id"]]].append((cats[ann["category_id"]], xywh_to_xyxy(ann["bbox"])))
    return out


def generated_files(base: Path) -> dict[str, bytes]:
    return {
        p.relative_to(base).as_posix(): p.read_bytes()
        for d in GENERATED_DIRS
        for p in sorted((base / d).rglob("*"))
        if p.is_file()
    }


def test_committed_files_match_a_fresh_run(tmp_path: Path) -> None:
    main: Callable[[Path], None] = runpy.run_path(str(SCRIPT), run_name="make_sample_data")["main"]
    main(tmp_path)
    fresh = generated_files(tmp_path)
    committed = generated_files(ROOT)
    assert sorted(fresh) == sorted(committed), "file set drifted: run python sample_data/make_sample_data.py"
    changed = [name for name in fresh if not _same_content(name, fresh[name], committed[name])]
    assert not changed, f"files drifted from the generator: {changed} (run python sample_data/make_sample_data.py)"


def _same_content(name: str, fresh: bytes, committed: bytes) -> bool:
    """Text files byte for byte; images by their pixels, since another Pillow, zlib or libjpeg
    release may encode the same pixels into other bytes (JPEG: within a small tolerance)."""
    if fresh == committed:
        return True
    suffix = Path(name).suffix.lower()
    if suffix not in (".png", ".jpg"):
        return False
    with Image.open(io.BytesIO(fresh)) as a, Image.open(io.BytesIO(committed)) as b:
        if a.size != b.size or a.mode != b.mode:
            return False
        difference = np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16))
    return bool(difference.max() == 0) if suffix == ".png" else float(difference.mean()) < 2.0


def test_coco_structure() -> None:
    for split in SPLITS:
        doc = load_coco(split)
        assert {"info", "licenses", "images", "annotations", "categories"} <= set(doc)
        assert [(c["id"], c["name"], c["supercategory"]) for c in doc["categories"]] == [
            (1, "square", "shape"),
            (3, "circle", "shape"),
            (7, "triangle", "shape"),
        ]
        for im in doc["images"]:
            assert {"license", "date_captured"} <= set(im)
            assert (ROOT / "coco" / "images" / split / im["file_name"]).is_file()
            with Image.open(ROOT / "coco" / "images" / split / im["file_name"]) as img:
                assert img.size == (im["width"], im["height"])
                assert img.mode == "RGB"
    train = load_coco("train")
    image_ids = [a["image_id"] for a in train["annotations"]]
    assert image_ids != sorted(image_ids), "annotations are meant to be listed out of image order"
    assert len(train["images"]) == 4 and len(load_coco("val")["images"]) == 2
    crowd = [a for s in SPLITS for a in load_coco(s)["annotations"] if a["iscrowd"]]
    assert len(crowd) == 1 and isinstance(crowd[0]["segmentation"]["counts"], list)


@pytest.mark.parametrize("split", SPLITS)
def test_coco_segmentation_extents_match_bbox(split: str) -> None:
    """RLE masks (compressed and the crowd's uncompressed one): extent == bbox and pixel count == area, exactly.

    Polygons: the boxes come from Pillow's fill, which paints every pixel whose integer coordinate lies in the closed
    polygon, so the box is [min vertex, max vertex + 1). pycocotools treats a polygon as continuous coordinates
    (pixel i = [i, i+1)), so its decoded mask ends at max vertex: its right/bottom edges are exactly 1 px inside the
    box, its left/top edges agree or are 1 px inside (a vertex that is a lone tip, e.g. a triangle apex), and its
    pixel count is smaller than the stored area (which is Pillow's pixel count).
    """
    doc = load_coco(split)
    sizes = {im["id"]: (im["height"], im["width"]) for im in doc["images"]}
    for ann in doc["annotations"]:
        h, w = sizes[ann["image_id"]]
        seg = ann["segmentation"]
        box = xywh_to_xyxy(ann["bbox"])
        if isinstance(seg, list):
            rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
            decoded = mask_utils.decode(rle)
            x1, y1, x2, y2 = tight_extent(decoded)
            assert (x2, y2) == (box[2] - 1, box[3] - 1), ann["id"]
            assert 0 <= x1 - box[0] <= 1 and 0 <= y1 - box[1] <= 1, ann["id"]
            (poly,) = seg
            xs, ys = poly[0::2], poly[1::2]
            assert (min(xs), min(ys), max(xs) + 1, max(ys) + 1) == box, ann["id"]
            assert int(decoded.sum()) < ann["area"]
        else:
            assert seg["size"] == [h, w]
            if isinstance(seg["counts"], list):
                assert ann["iscrowd"] == 1
                assert sum(seg["counts"]) == h * w
                rle = mask_utils.frPyObjects(seg, h, w)
            else:
                rle = {"size": seg["size"], "counts": seg["counts"].encode("ascii")}
            decoded = mask_utils.decode(rle)
            assert tight_extent(decoded) == box, ann["id"]
            assert int(decoded.sum()) == ann["area"], ann["id"]


def test_voc_boxes_are_coco_boxes_plus_one() -> None:
    coco = coco_boxes_by_stem()
    voc_root = ROOT / "voc"
    stems = [line for s in SPLITS for line in (voc_root / "ImageSets" / "Main" / f"{s}.txt").read_text().split()]
    assert sorted(stems) == sorted(coco)
    for split in SPLITS:
        seg_split = (voc_root / "ImageSets" / "Segmentation" / f"{split}.txt").read_text()
        assert seg_split == (voc_root / "ImageSets" / "Main" / f"{split}.txt").read_text()
        coco_stems = {Path(im["file_name"]).stem for im in load_coco(split)["images"]}
        assert set(seg_split.split()) == coco_stems
    difficult = 0
    for stem in stems:
        root = ET.parse(voc_root / "Annotations" / f"{stem}.xml").getroot()
        width = int(root.findtext("size/width", ""))
        height = int(root.findtext("size/height", ""))
        with Image.open(voc_root / "JPEGImages" / f"{stem}.jpg") as img:
            assert img.size == (width, height)
        voc: list[tuple[str, Box]] = []
        for obj in root.iter("object"):
            bb = [int(obj.findtext(f"bndbox/{k}", "")) for k in ("xmin", "ymin", "xmax", "ymax")]
            voc.append((obj.findtext("name", ""), (bb[0], bb[1], bb[2], bb[3])))
            difficult += int(obj.findtext("difficult", ""))
        expected = [(name, (x1 + 1, y1 + 1, x2, y2)) for name, (x1, y1, x2, y2) in coco[stem]]
        assert voc == expected, stem

        # Segmentation PNGs: object k (1-based, XML order) covers exactly its box; class pixels carry VOC indexes.
        with Image.open(voc_root / "SegmentationObject" / f"{stem}.png") as img:
            assert img.mode == "P"
            inst = np.asarray(img)
        with Image.open(voc_root / "SegmentationClass" / f"{stem}.png") as img:
            assert img.mode == "P"
            sem = np.asarray(img)
        assert inst.shape == sem.shape == (height, width)
        assert int(inst.max()) == len(voc)
        for k, (name, (xmin, ymin, xmax, ymax)) in enumerate(voc, start=1):
            assert tight_extent(inst == k) == (xmin - 1, ymin - 1, xmax, ymax), (stem, k)
            assert set(np.unique(sem[inst == k]).tolist()) == {VOC_INDEX[name]}
        assert not sem[inst == 0].any()
    assert difficult == 1
    labelmap = (voc_root / "labelmap.txt").read_text().splitlines()
    assert labelmap[0] == "# label:color_rgb:parts:actions"
    assert labelmap[1:] == ["background:0,0,0::", "square:128,0,0::", "circle:0,128,0::", "triangle:128,128,0::"]


def test_csv_rows_are_coco_boxes() -> None:
    coco = coco_boxes_by_stem()
    with (ROOT / "csv" / "annotations.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["filename", "width", "height", "class", "xmin", "ymin", "xmax", "ymax"]
    from_csv: dict[str, list[tuple[str, Box]]] = {}
    for row in rows:
        stem = Path(row["filename"]).stem
        box = tuple(int(row[k]) for k in ("xmin", "ymin", "xmax", "ymax"))
        from_csv.setdefault(stem, []).append((row["class"], (box[0], box[1], box[2], box[3])))
        with Image.open(ROOT / "csv" / "images" / row["filename"]) as img:
            assert img.size == (int(row["width"]), int(row["height"]))
    assert from_csv == {stem: boxes for stem, boxes in coco.items() if boxes}  # images without boxes have no row

    with (ROOT / "csv" / "counts.csv").open(newline="") as f:
        counts = list(csv.DictReader(f))
    assert [Path(r["image"]).stem for r in counts] == sorted(coco)
    for r in counts:
        for cls in ("square", "circle", "triangle"):
            n_boxes = sum(1 for name, _ in coco[Path(r["image"]).stem] if name == cls)
            assert int(r[cls]) >= n_boxes  # equal except the crowd box, which stands for four circles
    assert sum(int(r["circle"]) for r in counts) == sum(name == "circle" for b in coco.values() for name, _ in b) + 3
