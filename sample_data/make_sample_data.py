"""Generate the tiny, deterministic sample dataset in ``sample_data/`` (COCO, Pascal VOC and CSV layouts).

Run ``python sample_data/make_sample_data.py`` to rewrite the committed files in place; ``main(out_dir)`` writes the
same tree elsewhere (the drift test in ``tests/test_sample_data.py`` does that and compares bytes).

Everything is drawn with one rasterizer (Pillow ``ImageDraw`` on an ``L`` image): each object's boolean pixel mask is
computed first, the RGB image is painted from those masks, and every box is the mask's tight pixel extent
``x1 = min col, y1 = min row, x2 = max col + 1, y2 = max row + 1`` (absolute pixels, exclusive right/bottom edge).
There is no randomness; encoders run with fixed settings and no timestamps, so reruns are byte-identical (given the
same Pillow / libjpeg / zlib builds).
"""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw
from pycocotools import mask as mask_utils

Mask = NDArray[np.bool_]
Box = tuple[int, int, int, int]  # x1, y1, x2, y2 (exclusive x2/y2)

CLASSES = ("square", "circle", "triangle")
COCO_CATEGORY_IDS = {"square": 1, "circle": 3, "triangle": 7}  # deliberately non-contiguous
VOC_CLASS_INDEX = {"square": 1, "circle": 2, "triangle": 3}  # 0 = background
JPEG_QUALITY = 85
DATE = "2024-01-01 00:00:00"


@dataclass(frozen=True)
class Part:
    """One drawn primitive: ``polygon`` (integer vertices) or ``ellipse`` (Pillow bounding box, inclusive)."""

    kind: str
    coords: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Obj:
    """One annotated object. Several parts only for the crowd annotation (a cluster of small circles)."""

    name: str
    parts: tuple[Part, ...]
    color: tuple[int, int, int]
    iscrowd: bool = False
    difficult: bool = False

    @property
    def n_items(self) -> int:
        """How many individual shapes this object stands for (a crowd counts each of its members)."""
        return len(self.parts)


@dataclass(frozen=True)
class SampleImage:
    stem: str
    ext: str  # "jpg" or "png" (COCO/CSV copies keep it; VOC JPEGImages always re-encode as JPEG)
    split: str
    width: int
    height: int
    background: str  # "plain", "vgrad", "hgrad", "dgrad"
    bg_colors: tuple[tuple[int, int, int], tuple[int, int, int]]
    objects: tuple[Obj, ...] = ()
    overlap: tuple[int, int] | None = None  # indexes of the one pair allowed to overlap (later one drawn on top)

    @property
    def file_name(self) -> str:
        return f"{self.stem}.{self.ext}"


@dataclass
class Rendered:
    spec: SampleImage
    pixels: NDArray[np.uint8]  # H x W x 3
    masks: list[Mask] = field(default_factory=list)  # full (amodal) mask per object, in draw order
    boxes: list[Box] = field(default_factory=list)


def rect(x1: int, y1: int, x2: int, y2: int) -> Part:
    return Part("polygon", ((x1, y1), (x2, y1), (x2, y2), (x1, y2)))


def tri(*pts: tuple[int, int]) -> Part:
    return Part("polygon", tuple(pts))


def ellipse(x1: int, y1: int, x2: int, y2: int) -> Part:
    return Part("ellipse", ((x1, y1), (x2, y2)))


RED, RED2 = (200, 40, 40), (170, 30, 90)
GREEN, GREEN2 = (40, 160, 60), (90, 170, 30)
BLUE, BLUE2 = (40, 60, 200), (30, 110, 180)

IMAGES: tuple[SampleImage, ...] = (
    SampleImage(
        "shapes_001", "jpg", "train", 96, 64, "vgrad", ((200, 220, 245), (250, 250, 250)),
        (
            Obj("square", (rect(8, 8, 28, 26),), RED),
            Obj("circle", (ellipse(38, 10, 60, 32),), GREEN),
            Obj("triangle", (tri((68, 52), (90, 52), (79, 34)),), BLUE),
        ),
    ),
    SampleImage(
        "shapes_002", "jpg", "train", 80, 80, "plain", ((240, 230, 210), (240, 230, 210)),
        (
            Obj("circle", (ellipse(6, 6, 30, 30),), GREEN),
            Obj("circle", (ellipse(44, 40, 72, 68),), GREEN2),  # same class twice in one image
            Obj("square", (rect(8, 46, 32, 70),), RED),
        ),
    ),
    SampleImage(
        "shapes_003", "png", "train", 96, 64, "hgrad", ((235, 235, 200), (200, 235, 235)),
        (
            Obj("square", (rect(10, 12, 44, 46),), RED2),
            Obj("circle", (ellipse(34, 30, 58, 54),), GREEN),  # drawn over the square's bottom-right corner
            Obj("triangle", (tri((66, 50), (88, 50), (88, 14)),), BLUE),
        ),
        overlap=(0, 1),
    ),
    SampleImage(
        "shapes_004", "jpg", "train", 80, 80, "dgrad", ((250, 240, 230), (215, 215, 240)),
        (
            Obj("square", (rect(50, 8, 70, 22),), RED),
            Obj(
                "circle",
                (ellipse(8, 40, 20, 52), ellipse(22, 44, 34, 56), ellipse(10, 58, 22, 70), ellipse(26, 60, 38, 72)),
                GREEN2,
                iscrowd=True,  # one COCO crowd annotation (uncompressed RLE) covering four small circles
            ),
            Obj("triangle", (tri((50, 70), (74, 70), (62, 40)),), BLUE2),
        ),
    ),
    SampleImage("shapes_005", "jpg", "val", 96, 64, "vgrad", ((250, 250, 250), (210, 210, 210))),  # no objects
    SampleImage(
        "shapes_006", "jpg", "val", 80, 80, "plain", ((225, 240, 225), (225, 240, 225)),
        (
            Obj("square", (rect(6, 6, 26, 20),), RED),
            Obj("circle", (ellipse(40, 6, 70, 36),), GREEN),
            Obj("triangle", (tri((8, 70), (34, 70), (21, 44)),), BLUE),
            Obj("triangle", (tri((56, 66), (64, 66), (60, 58)),), BLUE2, difficult=True),  # tiny: VOC difficult=1
        ),
    ),
)  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# Rendering


def background(spec: SampleImage) -> NDArray[np.uint8]:
    """Plain or linear-gradient background, integer arithmetic only."""
    h, w = spec.height, spec.width
    c0 = np.array(spec.bg_colors[0], dtype=np.int64)
    c1 = np.array(spec.bg_colors[1], dtype=np.int64)
    ys, xs = np.mgrid[0:h, 0:w]
    if spec.background == "plain":
        t_num, t_den = np.zeros((h, w), dtype=np.int64), 1
    elif spec.background == "vgrad":
        t_num, t_den = ys.astype(np.int64), h - 1
    elif spec.background == "hgrad":
        t_num, t_den = xs.astype(np.int64), w - 1
    elif spec.background == "dgrad":
        t_num, t_den = (xs + ys).astype(np.int64), w + h - 2
    else:
        raise ValueError(f"unknown background {spec.background!r}")
    img = c0 + (c1 - c0) * t_num[..., None] // t_den
    return img.astype(np.uint8)


def part_mask(part: Part, width: int, height: int) -> Mask:
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    if part.kind == "polygon":
        draw.polygon(list(part.coords), fill=255)
    elif part.kind == "ellipse":
        (x1, y1), (x2, y2) = part.coords
        draw.ellipse((x1, y1, x2, y2), fill=255)
    else:
        raise ValueError(f"unknown part kind {part.kind!r}")
    return np.asarray(canvas) > 0


def tight_box(mask: Mask) -> Box:
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        raise ValueError("empty mask")
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def render(spec: SampleImage) -> Rendered:
    out = Rendered(spec, background(spec))
    for obj in spec.objects:
        m = np.zeros((spec.height, spec.width), dtype=bool)
        for part in obj.parts:
            pm = part_mask(part, spec.width, spec.height)
            if (pm & m).any():
                raise AssertionError(f"{spec.stem}: parts of one {obj.name} overlap")
            m |= pm
        out.masks.append(m)
        out.boxes.append(tight_box(m))
        out.pixels[m] = obj.color
    # Sanity: only the declared pair overlaps, and the occluded one keeps its full extent where it is visible,
    # so SegmentationObject/SegmentationClass extents equal the boxes.
    for i in range(len(out.masks)):
        for j in range(i + 1, len(out.masks)):
            overlaps = bool((out.masks[i] & out.masks[j]).any())
            if overlaps != (spec.overlap == (i, j)):
                raise AssertionError(f"{spec.stem}: unexpected overlap state for objects {i} and {j}")
    inst = instance_map(out)
    for k in range(len(out.masks)):
        if tight_box(inst == k + 1) != out.boxes[k]:
            raise AssertionError(f"{spec.stem}: object {k} visible extent differs from its full extent")
    return out


def instance_map(r: Rendered) -> NDArray[np.uint8]:
    """Pixel = 1-based index of the top-most object (draw order = annotation order), 0 background."""
    inst = np.zeros((r.spec.height, r.spec.width), dtype=np.uint8)
    for k, m in enumerate(r.masks, start=1):
        inst[m] = k
    return inst


def class_map(r: Rendered) -> NDArray[np.uint8]:
    """Pixel = VOC class index of the top-most object, 0 background."""
    sem = np.zeros((r.spec.height, r.spec.width), dtype=np.uint8)
    for obj, m in zip(r.spec.objects, r.masks, strict=True):
        sem[m] = VOC_CLASS_INDEX[obj.name]
    return sem


# ---------------------------------------------------------------------------------------------------------------
# Encoding helpers


def encode_image(pixels: NDArray[np.uint8], fmt: str) -> bytes:
    buf = io.BytesIO()
    img = Image.fromarray(pixels, mode="RGB")
    if fmt == "jpg":
        img.save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    elif fmt == "png":
        img.save(buf, format="PNG", optimize=True)
    else:
        raise ValueError(fmt)
    return buf.getvalue()


def voc_palette() -> list[int]:
    """The standard Pascal VOC colour map (256 entries, flattened RGB)."""
    pal: list[int] = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


def encode_palette_png(index_map: NDArray[np.uint8]) -> bytes:
    img = Image.fromarray(index_map, mode="L").convert("P")
    img.putpalette(voc_palette())
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def uncompressed_rle(mask: Mask) -> dict[str, Any]:
    """COCO uncompressed RLE: column-major run lengths, starting with a (possibly empty) run of zeros."""
    flat = mask.flatten(order="F").astype(np.uint8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate(([0], change, [flat.size]))
    runs = np.diff(bounds).tolist()
    if flat[0] == 1:
        runs = [0, *runs]
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": [int(v) for v in runs]}


def compressed_rle(mask: Mask) -> dict[str, Any]:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def write(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)


def dump_coco_json(doc: dict[str, Any]) -> str:
    """Valid JSON, one image / annotation / category per line (readable diffs, still compact)."""
    lines = ["{"]
    keys = list(doc)
    for n, key in enumerate(keys):
        value = doc[key]
        tail = "," if n < len(keys) - 1 else ""
        if isinstance(value, list) and value:
            lines.append(f"  {json.dumps(key)}: [")
            lines += [f"    {json.dumps(item)}" + ("," if i < len(value) - 1 else "") for i, item in enumerate(value)]
            lines.append(f"  ]{tail}")
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(value)}{tail}")
    lines.append("}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------------------
# Writers


def write_coco(out: Path, rendered: list[Rendered], encoded: dict[str, bytes]) -> None:
    root = out / "coco"
    categories = [{"supercategory": "shape", "id": COCO_CATEGORY_IDS[c], "name": c} for c in CLASSES]
    ann_id = 0
    for split in ("train", "val"):
        images: list[dict[str, Any]] = []
        anns: list[dict[str, Any]] = []
        for image_id, r in enumerate(rendered, start=1):
            spec = r.spec
            if spec.split != split:
                continue
            write(root / "images" / split / spec.file_name, encoded[spec.stem])
            images.append(
                {
                    "id": image_id,
                    "file_name": spec.file_name,
                    "width": spec.width,
                    "height": spec.height,
                    "license": 1,
                    "date_captured": DATE,
                }
            )
            for obj, m, (x1, y1, x2, y2) in zip(spec.objects, r.masks, r.boxes, strict=True):
                ann_id += 1
                segmentation: Any
                if obj.iscrowd:
                    segmentation = uncompressed_rle(m)
                elif obj.name == "circle":
                    segmentation = compressed_rle(m)
                else:
                    (part,) = obj.parts
                    segmentation = [[float(v) for xy in part.coords for v in xy]]
                anns.append(
                    {
                        "id": ann_id,
                        "image_id": image_id,
                        "category_id": COCO_CATEGORY_IDS[obj.name],
                        "segmentation": segmentation,
                        "area": float(m.sum()),
                        "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                        "iscrowd": int(obj.iscrowd),
                    }
                )
        # Deliberately not grouped/sorted by image_id: a fixed shuffle (no RNG needed).
        anns.sort(key=lambda a: ((a["id"] * 7) % 13, a["id"]))
        doc = {
            "info": {
                "description": "annonorm sample shapes dataset",
                "version": "1.0",
                "year": 2024,
                "contributor": "annonorm",
                "date_created": "2024/01/01",
            },
            "licenses": [{"id": 1, "name": "CC0 1.0", "url": "https://creativecommons.org/publicdomain/zero/1.0/"}],
            "images": images,
            "annotations": anns,
            "categories": categories,
        }
        write(root / "annotations" / f"instances_{split}.json", dump_coco_json(doc))


def voc_xml(r: Rendered) -> str:
    spec = r.spec
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "JPEGImages"
    ET.SubElement(root, "filename").text = f"{spec.stem}.jpg"
    source = ET.SubElement(root, "source")
    ET.SubElement(source, "database").text = "annonorm sample shapes"
    size = ET.SubElement(root, "size")
    ET.SubElement(size, "width").text = str(spec.width)
    ET.SubElement(size, "height").text = str(spec.height)
    ET.SubElement(size, "depth").text = "3"
    ET.SubElement(root, "segmented").text = "1"
    for obj, (x1, y1, x2, y2) in zip(spec.objects, r.boxes, strict=True):
        o = ET.SubElement(root, "object")
        ET.SubElement(o, "name").text = obj.name
        ET.SubElement(o, "pose").text = "Unspecified"
        ET.SubElement(o, "truncated").text = "0"
        ET.SubElement(o, "difficult").text = str(int(obj.difficult))
        bb = ET.SubElement(o, "bndbox")
        # VOC: 1-based, inclusive corners.
        ET.SubElement(bb, "xmin").text = str(x1 + 1)
        ET.SubElement(bb, "ymin").text = str(y1 + 1)
        ET.SubElement(bb, "xmax").text = str(x2)
        ET.SubElement(bb, "ymax").text = str(y2)
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="unicode") + "\n"


def write_voc(out: Path, rendered: list[Rendered]) -> None:
    root = out / "voc"
    for r in rendered:
        stem = r.spec.stem
        write(root / "Annotations" / f"{stem}.xml", voc_xml(r))
        write(root / "JPEGImages" / f"{stem}.jpg", encode_image(r.pixels, "jpg"))
        write(root / "SegmentationClass" / f"{stem}.png", encode_palette_png(class_map(r)))
        write(root / "SegmentationObject" / f"{stem}.png", encode_palette_png(instance_map(r)))
    for split in ("train", "val"):
        stems = "".join(f"{r.spec.stem}\n" for r in rendered if r.spec.split == split)
        write(root / "ImageSets" / "Main" / f"{split}.txt", stems)
        write(root / "ImageSets" / "Segmentation" / f"{split}.txt", stems)
    pal = voc_palette()
    lines = ["# label:color_rgb:parts:actions"]
    for name, idx in [("background", 0), *VOC_CLASS_INDEX.items()]:
        lines.append(f"{name}:{pal[3 * idx]},{pal[3 * idx + 1]},{pal[3 * idx + 2]}::")
    write(root / "labelmap.txt", "\n".join(lines) + "\n")


def csv_text(rows: list[list[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerows(rows)
    return buf.getvalue()


def write_csv(out: Path, rendered: list[Rendered], encoded: dict[str, bytes]) -> None:
    root = out / "csv"
    # TensorFlow object-detection CSV: one row per box. An image with no boxes (shapes_005) cannot be expressed in
    # this layout, so it has no row here (its file is still under images/ and it appears in counts.csv).
    rows: list[list[Any]] = [["filename", "width", "height", "class", "xmin", "ymin", "xmax", "ymax"]]
    counts: list[list[Any]] = [["image", *CLASSES]]
    for r in rendered:
        spec = r.spec
        write(root / "images" / spec.file_name, encoded[spec.stem])
        for obj, (x1, y1, x2, y2) in zip(spec.objects, r.boxes, strict=True):
            rows.append([spec.file_name, spec.width, spec.height, obj.name, x1, y1, x2, y2])
        # Crowd-counting style: number of individual shapes per class (the crowd cluster counts each member).
        per_class = {c: sum(o.n_items for o in spec.objects if o.name == c) for c in CLASSES}
        counts.append([spec.file_name, *(per_class[c] for c in CLASSES)])
    write(root / "annotations.csv", csv_text(rows))
    write(root / "counts.csv", csv_text(counts))


def main(out: Path) -> None:
    rendered = [render(spec) for spec in IMAGES]
    encoded = {r.spec.stem: encode_image(r.pixels, r.spec.ext) for r in rendered}
    write_coco(out, rendered, encoded)
    write_voc(out, rendered)
    write_csv(out, rendered, encoded)


if __name__ == "__main__":
    main(Path(__file__).parent)
