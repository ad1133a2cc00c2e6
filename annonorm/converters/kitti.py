"""KITTI object labels (2D boxes with the 3D fields) and KITTI instance PNGs.

A ``label_2/<stem>.txt`` line is 15 space-separated values, 16 for detections (the score last)::

    type truncated occluded alpha left top right bottom height width length x y z rotation_y [score]

``type`` is the class (``Car``, ``Pedestrian``, ... ``DontCare`` for regions to ignore), the box is in image
pixels (x1 = left, y1 = top, x2 = right, y2 = bottom, as written), ``truncated`` a fraction 0..1, ``occluded``
0..3, ``alpha`` the observation angle, then the 3D box: dimensions (m), location in camera coordinates (m) and
the rotation about the camera's y axis. Each line becomes a box with the attributes ``truncated``,
``occluded``, ``alpha``, ``dimensions`` [h, w, l], ``location`` [x, y, z] and ``rotation_y``, as written
(KITTI's -1 / -1000 / -10 "not set" values too); a ``DontCare`` box also gets ``ignore: true``. A score in
0..1 is the box's ``score``; any other score (raw detector output) the attribute ``score``.

Instance PNGs (``instance/<stem>.png``, 16-bit, pixel = class id * 256 + instance id, the class ids of
Cityscapes): read in a folder without ``label_2/``. Each (class, instance > 0) value is an object: a box
(its pixels' hull, pixel edges) named by the Cityscapes class, and the record's instance mask (annonorm's
``instance`` convention: k = the k-th box, 0 background), the objects in increasing pixel value. Pixels of
instance 0 are a class without instances ("stuff"): background in the mask, the class in the record's
``labels``.

Layouts (SOURCE is the dataset folder): ``training/`` and ``testing/`` (splits ``train`` and ``test``; any
other folder keeps its name), each with ``label_2/`` or ``instance/`` beside ``image_2/``; or ``label_2/``
beside ``image_2/`` in SOURCE (one split, ``--split``, default train). The image is found by stem, its size
read from its header. Record images are paths below SOURCE (``training/image_2/000001.png``), or below
``--images DIR`` (tried as ``DIR/<split>/``, then ``DIR``).

The writer puts ``<folder>/label_2/<stem>.txt`` per record (``training`` for train, ``testing`` for test),
a box's attributes where it has them, KITTI's "not set" values where not (truncated 0, occluded 0, alpha -10,
dimensions -1, location -1000, rotation_y -10), and the score column when a box has a score. Masks, other
attributes and image-level labels have no place in label files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from annonorm.converters.base import Capabilities, Converter, Option, ReadContext, ReadResult, make_record
from annonorm.errors import AnnonormError, InvalidDataError, ParseError
from annonorm.geometry import box_float32_problem, round_coord
from annonorm.images import read_image_size
from annonorm.io import DatasetWriter, NormalizedSource, read_text
from annonorm.masks import MAX_8BIT_INSTANCES
from annonorm.sources.classlists import read_class_list
from annonorm.sources.images import images_by_stem, list_dir
from annonorm.sources.segmentation import mask_size_problem, read_index_png

__all__ = ["KittiConverter", "box_to_kitti_line", "instance_png_to_objects", "kitti_line_to_box"]

# ---------------------------------------------------------------------------------------------- constants

LABEL_DIR, IMAGE_DIR, INSTANCE_DIR = "label_2", "image_2", "instance"
#: KITTI's split folders and annonorm's split names.
SPLIT_FOLDERS = {"training": "train", "testing": "test"}
DEFAULT_SPLIT = "train"
DONT_CARE = "DontCare"
#: The attribute names of the columns after the box, and the "not set" values KITTI writes for them.
NOT_SET: dict[str, Any] = {
    "truncated": 0.0,
    "occluded": 0,
    "alpha": -10.0,
    "dimensions": [-1.0, -1.0, -1.0],
    "location": [-1000.0, -1000.0, -1000.0],
    "rotation_y": -10.0,
}
EXPECTED = (
    "expected 15 values 'type truncated occluded alpha left top right bottom h w l x y z rotation_y' (16 with a score)"
)
#: Cityscapes' label ids (KITTI's semantic and instance PNGs use them).
CITYSCAPES = (
    "unlabeled", "ego vehicle", "rectification border", "out of roi", "static", "dynamic", "ground", "road",
    "sidewalk", "parking", "rail track", "building", "wall", "fence", "guard rail", "bridge", "tunnel", "pole",
    "polegroup", "traffic light", "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car",
    "truck", "bus", "caravan", "trailer", "train", "motorcycle", "bicycle",
)  # fmt: skip

# ---------------------------------------------------------------------------------------------- sniff


def _folders(root: Path) -> list[tuple[str | None, Path]]:
    """``(split folder or None, folder holding label_2/ or instance/)`` of the layouts above."""
    if any((root / d).is_dir() for d in (LABEL_DIR, INSTANCE_DIR)) and (root / IMAGE_DIR).is_dir():
        return [(None, root)]
    return [
        (e.name, Path(e.path))
        for e in list_dir(root)
        if e.is_dir() and any((Path(e.path) / d).is_dir() for d in (LABEL_DIR, INSTANCE_DIR))
    ]


def _sniff(source: Path) -> bool:
    try:
        return source.is_dir() and bool(_folders(source))
    except (OSError, AnnonormError):
        return False


# ------------------------------------------------------------------------------------ mapping kitti -> annonorm


def kitti_line_to_box(*, tokens: Sequence[str]) -> dict[str, Any]:
    """The box of one label line's 15 or 16 tokens; :class:`ValueError` says what is wrong."""
    if len(tokens) not in (15, 16):
        raise ValueError(f"{EXPECTED}, found {len(tokens)} values")
    try:
        values = [float(t) for t in tokens[1:]]
    except ValueError:
        raise ValueError(f"{EXPECTED}; found a value that is not a number in {' '.join(tokens[1:])}") from None
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{EXPECTED}; the values must be finite numbers, found {' '.join(tokens[1:])}")
    truncated, occluded, alpha, x1, y1, x2, y2, h, w, length, x, y, z, rotation = values[:14]
    if not occluded.is_integer():
        raise ValueError(f"expected an occlusion state 0, 1, 2 or 3 (-1 for DontCare), found {tokens[2]!r}")
    if x2 < x1 or y2 < y1:
        raise ValueError(f"expected left <= right and top <= bottom, found {' '.join(tokens[4:8])}")
    if problem := box_float32_problem(x1, y1, x2, y2):
        raise ValueError(f"{EXPECTED}; {problem}, found {' '.join(tokens[4:8])}")
    attributes: dict[str, Any] = {
        "truncated": truncated,
        "occluded": int(occluded),
        "alpha": alpha,
        "dimensions": [h, w, length],
        "location": [x, y, z],
        "rotation_y": rotation,
    }
    box: dict[str, Any] = {
        "name": tokens[0],
        **dict(zip(("x1", "y1", "x2", "y2"), map(round_coord, (x1, y1, x2, y2)), strict=True)),
    }
    if len(values) == 15:
        if 0 <= values[14] <= 1:
            box["score"] = round_coord(values[14])
        else:
            attributes["score"] = values[14]
    if tokens[0] == DONT_CARE:
        attributes["ignore"] = True
    box["attributes"] = attributes
    return box


def instance_png_to_objects(*, values: np.ndarray) -> tuple[list[dict[str, Any]], list[str], np.ndarray]:
    """The boxes, the "stuff" labels and the annonorm instance mask of a KITTI instance PNG's pixel values."""
    boxes, stuff = [], []
    mask = np.zeros(values.shape, dtype=np.uint16)
    for value in np.unique(values).tolist():
        semantic, instance = divmod(int(value), 256)
        name = CITYSCAPES[semantic] if semantic < len(CITYSCAPES) else str(semantic)
        if instance == 0:
            if semantic:
                stuff.append(name)
            continue
        rows, cols = np.nonzero(values == value)
        boxes.append({"name": name, "x1": float(cols.min()), "y1": float(rows.min()),
                      "x2": float(cols.max() + 1), "y2": float(rows.max() + 1)})  # fmt: skip
        mask[values == value] = len(boxes)
    return boxes, stuff, mask.astype(np.uint8) if len(boxes) <= MAX_8BIT_INSTANCES else mask


# ------------------------------------------------------------------------------------ mapping annonorm -> kitti


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def box_to_kitti_line(*, box: Mapping[str, Any]) -> str:
    """One KITTI label line of a box (KITTI's "not set" values for the attributes it lacks)."""
    attributes = {**NOT_SET, **{k: v for k, v in (box.get("attributes") or {}).items() if k in NOT_SET}}
    values = [attributes["truncated"], attributes["occluded"], attributes["alpha"]]
    values += [box[k] for k in ("x1", "y1", "x2", "y2")]
    values += [*attributes["dimensions"], *attributes["location"], attributes["rotation_y"]]
    score = box.get("score", (box.get("attributes") or {}).get("score"))
    values += [score] if score is not None else []
    return " ".join([box["name"], *(_number(float(v)) for v in values)])


# ---------------------------------------------------------------------------------------------- layout


def _source_files(source: Path, options: Mapping[str, Any]) -> list[Path]:
    return [folder / d for _, folder in _folders(source) for d in (LABEL_DIR, INSTANCE_DIR) if (folder / d).is_dir()]


def _image_finder(
    ctx: ReadContext, source: Path, folder: str | None, split: str
) -> tuple[Path, list[tuple[str, dict[str, str]]]]:
    root = ctx.images or source
    if ctx.images is not None:
        places = [f"{split}/", ""] if (ctx.images / split).is_dir() else [""]
    else:
        places = [f"{folder}/{IMAGE_DIR}/" if folder else f"{IMAGE_DIR}/"]
    return root, [(prefix, images_by_stem(root / prefix)) for prefix in places]


# ---------------------------------------------------------------------------------------------- read


def _label_record(path: Path, image: str, size: tuple[int, int] | None) -> dict[str, Any]:
    boxes = []
    for number, line in enumerate(read_text(path, "KITTI label file").splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) not in (15, 16):
            raise ParseError(f"{EXPECTED}, found {len(tokens)} values", file=path, location=f"line {number}")
        try:
            boxes.append(kitti_line_to_box(tokens=tokens))
        except ValueError as exc:
            raise InvalidDataError(str(exc), file=path, location=f"line {number}") from None
    width, height = size if size is not None else (None, None)
    return make_record(image=image, width=width, height=height, boxes=boxes)


def _instance_record(
    path: Path, image: str, size: tuple[int, int] | None, writer: DatasetWriter, target: str
) -> dict[str, Any]:
    from PIL import Image

    values = read_index_png(path, {}, what="KITTI instance PNG")
    problem = None if size is None else mask_size_problem(mask=(values.shape[1], values.shape[0]), image=size)
    if problem is not None:
        raise InvalidDataError(problem, file=path)
    boxes, stuff, mask = instance_png_to_objects(values=values)
    Image.fromarray(mask).save(writer.mask_file(target), format="PNG")
    writer.mask_kind = "instance"
    width, height = size if size is not None else (values.shape[1], values.shape[0])
    return make_record(image=image, width=width, height=height, boxes=boxes, labels=stuff, mask=target)


def _read(source: Path, ctx: ReadContext) -> ReadResult:
    writer = ctx.sink
    folders = _folders(source) if source.is_dir() else []
    if not folders:
        raise ParseError(
            f"no KITTI labels here: expected [training/]{LABEL_DIR}/ or {INSTANCE_DIR}/ beside {IMAGE_DIR}/",
            file=source,
        )
    for path in _source_files(source, ctx.options):
        writer.add_source_file(path)
    root = source
    for folder, where in folders:
        split = SPLIT_FOLDERS.get(folder, folder) if folder else ctx.options.get("split") or DEFAULT_SPLIT
        writer.declare_split(split)
        root, indexes = _image_finder(ctx, source, folder, split)
        labels = where / LABEL_DIR
        kind, directory = ("labels", labels) if labels.is_dir() else ("instances", where / INSTANCE_DIR)
        suffix = ".txt" if kind == "labels" else ".png"
        files = [Path(e.path) for e in list_dir(directory) if e.name.endswith(suffix)]
        writer.expect(len(files))
        for path in files:
            stem = path.name[: -len(suffix)]
            found = next((prefix + index[stem] for prefix, index in indexes if stem in index), None)
            image = found or indexes[0][0] + stem + ".png"
            try:
                size = read_image_size(root / found) if found is not None else None
                if kind == "labels":
                    record = _label_record(path, image, size)
                else:
                    record = _instance_record(path, image, size, writer, f"masks/{split}/{stem}.png")
            except AnnonormError as error:
                error.image = error.image or image
                writer.problem(error)
                continue
            for box in record["boxes"]:
                writer.category(box["name"])
            for name in record["labels"]:
                writer.category(name)
            writer.add(split, record)
    return ReadResult(name=source.resolve().name or "kitti", image_root=root)


# ---------------------------------------------------------------------------------------------- write


def _write(dataset: NormalizedSource, out: Path, options: Mapping[str, Any]) -> None:
    bad = [n for n in dataset.manifest.category_names if not n or any(c.isspace() for c in n)]
    if bad:
        raise InvalidDataError(
            f"class {bad[0]!r} has a space or is empty; a KITTI line holds the type as one word",
            file=dataset.root / "annonorm.json",
            location="categories",
        )
    folders = {name: folder for folder, name in SPLIT_FOLDERS.items()}
    for split in dataset.manifest.splits:
        labels = out / folders.get(split, split) / LABEL_DIR
        labels.mkdir(parents=True, exist_ok=True)
        written: dict[str, str] = {}
        for index, record in enumerate(dataset.records(split), start=1):
            stem = PurePosixPath(record["image"]).stem
            if stem in written:
                raise InvalidDataError(
                    f"images {written[stem]!r} and {record['image']!r} would share {LABEL_DIR}/{stem}.txt; "
                    "KITTI pairs an image and its label file by stem",
                    file=dataset.split_path(split),
                    location=f"record {index}",
                )
            written[stem] = record["image"]
            lines = [box_to_kitti_line(box=box) for box in record["boxes"]]
            (labels / f"{stem}.txt").write_text("".join(f"{line}\n" for line in lines), encoding="utf-8", newline="")


# ---------------------------------------------------------------------------------------------- the converter


class KittiConverter(Converter):
    """KITTI 2D object labels (with the 3D fields as attributes) and instance PNGs; labels both ways."""

    name = "kitti"
    summary = "KITTI label_2/*.txt object labels (15 columns, 16 with score) and instance/*.png masks"
    read_options = (
        Option("classes", "The classes and their order (a class list file or A,B,C); unlisted classes follow"),
        Option("split", "The split of a label_2/ folder in SOURCE itself (default train)"),
    )
    capabilities = Capabilities(
        needs_image_files=True,
        image_folders=False,
        scores=True,
        reserved_attributes=frozenset({*NOT_SET, "ignore", "score"}),
        added_attributes=frozenset(NOT_SET),
    )

    @classmethod
    def sniff(cls, source: Path) -> bool:
        return _sniff(source)

    @classmethod
    def source_files(cls, source: Path, options: Mapping[str, Any]) -> list[Path]:
        return _source_files(source, options)

    def read(self, source: Path, ctx: ReadContext) -> ReadResult:
        if ctx.options.get("classes") is not None:
            for name in read_class_list(str(ctx.options["classes"])).names:
                ctx.sink.category(name)
        return _read(source, ctx)

    def write(self, dataset: NormalizedSource, out: Path, *, options: Mapping[str, Any]) -> None:
        _write(dataset, out, options)
