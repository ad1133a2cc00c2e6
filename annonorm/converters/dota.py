"""DOTA (aerial images, oriented boxes): one ``labelTxt/<stem>.txt`` per image, one object per line.

An object line is ``x1 y1 x2 y2 x3 y3 x4 y4 class difficulty``: the four corners of an oriented box in absolute
pixels (in the order the annotator clicked them, DOTA's is clockwise from the top left), the class name (no
spaces; ``large-vehicle``) and ``difficulty`` (0 easy, 1 difficult; DOTA-v1.0 test files leave it out). Two
optional header lines come first: ``imagesource:GoogleEarth`` and ``gsd:0.146`` (metres per pixel, ``null`` when
unknown). Each object becomes a box with ``obb`` = its corners and x1..y2 = their axis-aligned hull, and the
attribute ``difficulty``; the header lines become the record attributes ``imagesource`` and ``gsd``.
An ``obb`` whose corners are exactly its hull's, clockwise from the top left (what the writer puts for a box
without ``obb``), is read as a plain box.

Layouts (SOURCE is the dataset folder): ``<split>/labelTxt/`` + ``<split>/images/`` (DOTA's ``train``/``val``;
Roboflow's "YOLO OBB" export, whose ``data.yaml`` gives the class order), or ``labelTxt/`` + ``images/`` (one
split, ``--split``, default train), or the ``labelTxt`` folder itself. An image is found by the label's stem;
its size comes from its header (unknown when no image is there: ``<stem>.png`` is named). Record images are
paths below SOURCE (``train/images/P0001.png``), or below ``--images DIR`` (tried as ``DIR/<split>/`` then
``DIR``) when given. Classes: ``--classes``, else the ``data.yaml`` names, then the rest in first-seen order.

The writer puts ``<split>/labelTxt/<stem>.txt`` per record (the header lines when the record has those
attributes; a box's ``obb`` or its rectangle; ``difficulty`` from the attribute, else 0) and, with
``--images symlink|copy``, ``<split>/images/<file>``. Other attributes, scores and masks have no place in DOTA.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from annonorm.converters.base import Capabilities, Converter, Option, ReadContext, ReadResult, make_record
from annonorm.errors import AnnonormError, InvalidDataError, ParseError
from annonorm.geometry import box_float32_problem, obb_hull, round_coord
from annonorm.images import read_image_size
from annonorm.io import NormalizedSource, read_text
from annonorm.sources.classlists import data_yaml_to_names, read_class_list
from annonorm.sources.images import images_by_stem, list_dir
from annonorm.sources.layouts import place_image

__all__ = ["DotaConverter", "box_to_dota_line", "dota_header_to_attribute", "dota_line_to_box"]

# ---------------------------------------------------------------------------------------------- constants

LABEL_DIR = "labelTxt"
IMAGE_DIR = "images"
DEFAULT_SPLIT = "train"
#: The header keys DOTA writes before the objects, and the record attributes they become.
HEADER_KEYS = ("imagesource", "gsd")
#: DOTA's images are PNGs: the name given when a label has no image beside it.
DEFAULT_SUFFIX = ".png"
EXPECTED = "expected 'x1 y1 x2 y2 x3 y3 x4 y4 class difficulty'"

# ---------------------------------------------------------------------------------------------- sniff


def _label_dirs(root: Path) -> list[tuple[str | None, Path]]:
    """``(split or None, labelTxt folder)`` of the layouts above, by split name."""
    if root.name == LABEL_DIR:
        return [(None, root)]
    if (root / LABEL_DIR).is_dir():
        return [(None, root / LABEL_DIR)]
    return [
        (e.name, Path(e.path) / LABEL_DIR) for e in list_dir(root) if e.is_dir() and (Path(e.path) / LABEL_DIR).is_dir()
    ]


def _sniff(source: Path) -> bool:
    try:
        return source.is_dir() and bool(_label_dirs(source))
    except (OSError, AnnonormError):
        return False


# ------------------------------------------------------------------------------------ mapping dota -> annonorm


def dota_header_to_attribute(*, line: str) -> tuple[str, Any] | None:
    """``("imagesource", "GoogleEarth")`` or ``("gsd", 0.146)`` for a header line, None for an object line.

    A ``gsd`` of ``null``/``None`` gives ``("gsd", None)``; one that is no finite number raises :class:`ValueError`.
    """
    key, colon, value = line.partition(":")
    if not colon or key.strip().lower() not in HEADER_KEYS:
        return None
    key, value = key.strip().lower(), value.strip()
    if key == "imagesource":
        return key, value
    if value.lower() in ("null", "none", ""):
        return key, None
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"expected a finite gsd, found {value!r}")
    return key, number


def dota_line_to_box(*, tokens: Sequence[str]) -> dict[str, Any]:
    """The box of one object line's tokens (8 corners, the class, the difficulty or not).

    Raises :class:`ValueError` with what was expected when a corner is not a finite number or the difficulty
    not a whole number >= 0.
    """
    try:
        corners = [float(t) for t in tokens[:8]]
    except ValueError:
        raise ValueError(f"{EXPECTED}; a corner is not a number in {' '.join(tokens[:8])}") from None
    if not all(math.isfinite(v) for v in corners):
        raise ValueError(f"{EXPECTED}; the corners must be finite numbers, found {' '.join(tokens[:8])}")
    obb = [round_coord(v) for v in corners]
    x1, y1, x2, y2 = (round_coord(v) for v in obb_hull(obb))
    if problem := box_float32_problem(x1, y1, x2, y2):
        raise ValueError(f"{EXPECTED}; {problem}, found {' '.join(tokens[:8])}")
    box: dict[str, Any] = {"name": tokens[8], "x1": x1, "y1": y1, "x2": x2, "y2": y2}
    if obb != _rectangle(x1, y1, x2, y2):
        box["obb"] = obb
    if len(tokens) == 10:
        if not (tokens[9].isascii() and tokens[9].isdigit()):
            raise ValueError(f"expected a difficulty 0 or 1, found {tokens[9]!r}")
        box["attributes"] = {"difficulty": int(tokens[9])}
    return box


def _rectangle(x1: float, y1: float, x2: float, y2: float) -> list[float]:
    """A box's corners clockwise from the top left (image y grows downwards)."""
    return [x1, y1, x2, y1, x2, y2, x1, y2]


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


# ------------------------------------------------------------------------------------ mapping annonorm -> dota


def box_to_dota_line(*, box: Mapping[str, Any]) -> str:
    """One DOTA object line: the box's ``obb`` (else its rectangle), its name and its difficulty (else 0)."""
    corners = box.get("obb") or _rectangle(*(float(box[k]) for k in ("x1", "y1", "x2", "y2")))
    difficulty = (box.get("attributes") or {}).get("difficulty", 0)
    return " ".join([*(_number(v) for v in corners), box["name"], str(int(difficulty))])


# ---------------------------------------------------------------------------------------------- layout


def _source_files(source: Path, options: Mapping[str, Any]) -> list[Path]:
    root = source.parent if source.name == LABEL_DIR else source
    yaml = [root / "data.yaml"] if (root / "data.yaml").is_file() else []
    return [*yaml, *(folder for _, folder in _label_dirs(source))]


def _class_order(root: Path, option: Any) -> list[str]:
    if option is not None:
        return read_class_list(str(option)).names
    yaml = root / "data.yaml"
    return data_yaml_to_names(text=read_text(yaml, "data.yaml")) if yaml.is_file() else []


# ---------------------------------------------------------------------------------------------- read


def _parse_label_file(path: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The boxes and header attributes of one label file; errors name the line."""
    boxes, attributes = [], {}
    for number, line in enumerate(read_text(path, "DOTA label file").splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        try:
            header = dota_header_to_attribute(line=line) if len(tokens) < 9 else None
            if header is not None:
                if header[1] is not None:
                    attributes[header[0]] = header[1]
                continue
            if len(tokens) not in (9, 10):
                raise ParseError(f"{EXPECTED}, found {len(tokens)} values", file=path, location=f"line {number}")
            boxes.append(dota_line_to_box(tokens=tokens))
        except ValueError as exc:
            raise InvalidDataError(str(exc), file=path, location=f"line {number}") from None
    return boxes, attributes


def _read(source: Path, ctx: ReadContext) -> ReadResult:
    writer = ctx.sink
    root = source.parent if source.name == LABEL_DIR else source
    folders = _label_dirs(source)
    if not source.is_dir() or not folders:
        raise ParseError(
            f"no DOTA annotations here: expected {LABEL_DIR}/ or <split>/{LABEL_DIR}/ folders", file=source
        )
    for name in _class_order(root, ctx.options.get("classes")):
        writer.category(name)
    for path in _source_files(source, ctx.options):
        writer.add_source_file(path)
    image_root = ctx.images or root
    for split_dir, labels in folders:
        split = split_dir or ctx.options.get("split") or DEFAULT_SPLIT
        writer.declare_split(split)
        if ctx.images is not None:
            places = [f"{split}/", ""] if (ctx.images / split).is_dir() else [""]
        else:
            places = [f"{split_dir}/{IMAGE_DIR}/" if split_dir else f"{IMAGE_DIR}/"]
        indexes = [(prefix, images_by_stem(image_root / prefix)) for prefix in places]
        files = [Path(e.path) for e in list_dir(labels) if e.name.endswith(".txt")]
        writer.expect(len(files))
        for path in files:
            stem = path.name[: -len(".txt")]
            found = next((prefix + index[stem] for prefix, index in indexes if stem in index), None)
            image = found or places[0] + stem + DEFAULT_SUFFIX
            try:
                boxes, attributes = _parse_label_file(path)
                size = read_image_size(image_root / found) if found is not None else None
            except AnnonormError as error:
                error.image = error.image or image
                writer.problem(error)
                continue
            for box in boxes:
                writer.category(box["name"])
            width, height = size if size is not None else (None, None)
            writer.add(split, make_record(image=image, width=width, height=height, boxes=boxes, attributes=attributes))
    return ReadResult(name=root.resolve().name or "dota", image_root=image_root)


# ---------------------------------------------------------------------------------------------- write


def _header(attributes: Mapping[str, Any]) -> list[str]:
    lines = []
    if isinstance(attributes.get("imagesource"), str) and "\n" not in attributes["imagesource"]:
        lines.append(f"imagesource:{attributes['imagesource']}")
    gsd = attributes.get("gsd")
    if isinstance(gsd, (int, float)) and not isinstance(gsd, bool) and math.isfinite(gsd):
        lines.append(f"gsd:{_number(gsd)}")
    return lines


def _write(dataset: NormalizedSource, out: Path, options: Mapping[str, Any]) -> None:
    bad = [n for n in dataset.manifest.category_names if not n or any(c.isspace() for c in n)]
    if bad:
        raise InvalidDataError(
            f"class {bad[0]!r} has a space or is empty; a DOTA line holds the class as one word",
            file=dataset.root / "annonorm.json",
            location="categories",
        )
    mode = options.get("images") or "none"
    for split in dataset.manifest.splits:
        labels = out / split / LABEL_DIR
        labels.mkdir(parents=True, exist_ok=True)
        written: dict[str, str] = {}
        for index, record in enumerate(dataset.records(split), start=1):
            name = PurePosixPath(record["image"]).name
            stem = PurePosixPath(name).stem
            if stem in written:
                raise InvalidDataError(
                    f"images {written[stem]!r} and {record['image']!r} would share {split}/{LABEL_DIR}/{stem}.txt; "
                    "DOTA pairs an image and its label file by stem",
                    file=dataset.split_path(split),
                    location=f"record {index}",
                )
            written[stem] = record["image"]
            lines = _header(record.get("attributes") or {}) + [box_to_dota_line(box=b) for b in record["boxes"]]
            (labels / f"{stem}.txt").write_text("".join(f"{line}\n" for line in lines), encoding="utf-8", newline="")
            if mode != "none":
                where = f"{dataset.split_path(split).name} record {index}"
                place_image(dataset.image_path(record["image"]), out / split / IMAGE_DIR / name, mode, where)


# ---------------------------------------------------------------------------------------------- the converter


class DotaConverter(Converter):
    """DOTA ``labelTxt`` oriented boxes (and Roboflow's "YOLO OBB" export), both ways."""

    name = "dota"
    summary = "DOTA labelTxt/*.txt oriented boxes (x1 y1 ... x4 y4 class difficulty), Roboflow YOLO OBB"
    read_options = (
        Option("classes", "The classes and their order (a class list file or A,B,C); unlisted classes follow"),
        Option("split", "The split of a flat labelTxt/ folder (default train)"),
    )
    write_options = (
        Option(
            "images",
            "Put the images beside the labels: none (labels only), symlink or copy",
            default="none",
            choices=("none", "symlink", "copy"),
        ),
    )
    # obb=False: an oriented box whose corners are its hull's, clockwise from the top left, reads back as a
    # plain box (the writer's rectangle); every other oriented box survives (tests/converters/test_dota.py).
    capabilities = Capabilities(
        needs_image_files=True,
        image_folders=False,
        reserved_attributes=frozenset({"difficulty", *HEADER_KEYS}),
        added_attributes=frozenset({"difficulty"}),
    )

    @classmethod
    def sniff(cls, source: Path) -> bool:
        return _sniff(source)

    @classmethod
    def source_files(cls, source: Path, options: Mapping[str, Any]) -> list[Path]:
        return _source_files(source, options)

    def read(self, source: Path, ctx: ReadContext) -> ReadResult:
        return _read(source, ctx)

    def write(self, dataset: NormalizedSource, out: Path, *, options: Mapping[str, Any]) -> None:
        _write(dataset, out, options)
