"""The hostile-input corpus: broken, malicious and borderline inputs, each with what annonorm must answer.

Every case is data: a name, a category, the command line (``{root}`` is the case's directory), the
files to create under it, the expected exit code and a fragment of the expected message. Small
hand-written files are committed in ``files/`` (an XML bomb, XXE, a truncated JSON, ragged CSVs);
everything else (images, masks, symlinks, binary garbage, large inputs) is generated here, at test
time, into a temporary directory. ``tests/test_hostile.py`` runs every case through the CLI.

To look at the corpus on disk::

    python tests/hostile/make_corpus.py /tmp/corpus        # one directory per case, plus cases.tsv
"""

from __future__ import annotations

import copy
import io
import json
import random
import re
import struct
import sys
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FILES = Path(__file__).resolve().parent / "files"

#: Where a case's output is written; the test asserts it is absent unless ``output`` says otherwise.
OUT = "{root}/out"


# ---------------------------------------------------------------------------------------------- file specs


@dataclass(frozen=True)
class Link:
    """A symbolic link to ``target`` (relative to the link's directory, or ``{root}``-absolute)."""

    target: str


@dataclass(frozen=True)
class Committed:
    """A file committed in ``tests/hostile/files/`` (``{root}`` in it is replaced)."""

    name: str


FileSpec = bytes | str | Link | Committed | Callable[[], bytes]


@dataclass(frozen=True)
class Case:
    """One hostile input and what annonorm must answer.

    ``output``: ``"none"`` (no output directory may appear), ``"created"`` (a valid dataset is
    written: exit 0, or ``--on-error skip``), or ``"kept"`` (an output existed before and must be
    left byte for byte as it was).
    """

    name: str
    category: str
    args: tuple[str, ...]
    files: Mapping[str, FileSpec]
    exit_code: int
    fragment: str
    output: str = "none"
    #: A second fragment that must *not* appear (a secret an XXE would leak, a Python exception name).
    absent: tuple[str, ...] = ()
    stdout_fragment: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def materialize(case: Case, root: Path) -> None:
    """Create the case's files under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "cwd").mkdir(exist_ok=True)  # the test runs the command from here: stray writes show up
    for relative, spec in case.files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(spec, Link):
            path.symlink_to(spec.target.replace("{root}", str(root)))
            continue
        if isinstance(spec, Committed):
            data = (FILES / spec.name).read_bytes().replace(b"{root}", str(root).encode())
        elif isinstance(spec, str):
            data = spec.replace("{root}", str(root)).encode("utf-8")
        elif isinstance(spec, bytes):
            data = spec
        else:
            data = spec()
        path.write_bytes(data)


def command(case: Case, root: Path) -> list[str]:
    """The case's arguments with ``{root}`` filled in."""
    return [arg.replace("{root}", str(root)) for arg in case.args]


# ---------------------------------------------------------------------------------------------- generators


def png(width: int = 8, height: int = 6, mode: str = "RGB", value: int = 0) -> Callable[[], bytes]:
    """A PNG of the given size and mode, filled with ``value``."""

    def make() -> bytes:
        from PIL import Image

        if mode == "I;16":
            import numpy as np

            image = Image.fromarray(np.full((height, width), value, dtype=np.uint16))
        else:
            image = Image.new(mode, (width, height), value if mode in ("L", "P") else (value, value, value))
        stream = io.BytesIO()
        image.save(stream, format="PNG")
        return stream.getvalue()

    return make


def jpeg(width: int = 8, height: int = 6) -> Callable[[], bytes]:
    """A small JPEG."""

    def make() -> bytes:
        from PIL import Image

        stream = io.BytesIO()
        Image.new("RGB", (width, height), (90, 120, 30)).save(stream, format="JPEG")
        return stream.getvalue()

    return make


def garbage(size: int = 4096, seed: int = 6) -> Callable[[], bytes]:
    """Deterministic random bytes (never valid UTF-8 JSON/XML/CSV/PNG)."""

    def make() -> bytes:
        return b"\xff\xfe\x00" + random.Random(seed).randbytes(size)

    return make


def pixel_bomb_png(width: int = 40_000, height: int = 40_000) -> Callable[[], bytes]:
    """A 100-byte PNG whose header claims ``width`` x ``height`` gray pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    def make() -> bytes:
        header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit gray, no interlace
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b"")
        )

    return make


def deep_json(depth: int = 100_000) -> Callable[[], bytes]:
    """``{"images": [[[[...]]]]}`` nested ``depth`` levels: a recursion bomb for naive parsers."""
    return lambda: b'{"images": ' + b"[" * depth + b"]" * depth + b"}"


def huge_csv_cell(size: int = 300_000) -> Callable[[], bytes]:
    """A CSV whose class cell is larger than the csv module's field limit (128 KiB)."""
    return lambda: b"filename,width,height,class,xmin,ymin,xmax,ymax\na.jpg,8,6," + b"x" * size + b",1,1,3,3\n"


def many_splits_bomb_json(count: int = 50_000) -> Callable[[], bytes]:
    """A COCO file with many annotations pointing at one unknown image (a flood of problems)."""

    def make() -> bytes:
        doc = coco_doc()
        doc["annotations"] = [
            {"id": i, "image_id": 999, "category_id": 1, "bbox": [1, 1, 2, 2]} for i in range(1, count + 1)
        ]
        return json.dumps(doc).encode()

    return make


# ---------------------------------------------------------------------------------------------- COCO helpers

_DELETE = object()


def coco_doc() -> dict[str, Any]:
    """A valid two-image COCO document, the base every COCO case breaks."""
    return {
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": 8, "height": 6},
            {"id": 2, "file_name": "b.jpg", "width": 8, "height": 6},
        ],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 2], "area": 4, "iscrowd": 0},
            {"id": 2, "image_id": 2, "category_id": 2, "bbox": [2, 1, 3, 2], "area": 6, "iscrowd": 0},
        ],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
    }


def coco(*edits: tuple[str, Any]) -> bytes:
    """The base COCO document with ``(json path, value)`` edits applied (``_DELETE`` removes the key)."""
    doc = copy.deepcopy(coco_doc())
    for path, value in edits:
        parts = [int(index) if index else key for key, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", path)]
        target: Any = doc
        for part in parts[:-1]:
            target = target[part]
        if value is _DELETE:
            del target[parts[-1]]
        else:
            target[parts[-1]] = value
    return json.dumps(doc).encode()


def coco_case(name: str, data: FileSpec, exit_code: int, fragment: str, **kwargs: Any) -> Case:
    """A ``convert coco`` case on ``{root}/src/instances_train.json``."""
    extra_args = tuple(kwargs.pop("args", ()))
    files = {"src/instances_train.json": data, **kwargs.pop("files", {})}
    args = ("convert", "coco", "{root}/src/instances_train.json", "-o", OUT, *extra_args)
    return Case(name, kwargs.pop("category", "coco"), args, files, exit_code, fragment, **kwargs)


# ---------------------------------------------------------------------------------------------- VOC helpers


def voc_xml(
    *,
    filename: str = "a.jpg",
    size: str | None = "<size><width>8</width><height>6</height><depth>3</depth></size>",
    objects: str = "<object><name>cat</name><bndbox><xmin>2</xmin><ymin>2</ymin><xmax>3</xmax><ymax>3</ymax></bndbox>"
    "</object>",
) -> str:
    """One VOC annotation XML."""
    return f"<annotation><filename>{filename}</filename>{size or ''}{objects}</annotation>"


def voc_object(xmin: str, ymin: str, xmax: str, ymax: str, name: str = "cat") -> str:
    """One ``<object>`` with the given corner texts."""
    return (
        f"<object><name>{name}</name><bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin>"
        f"<xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox></object>"
    )


def voc_case(name: str, files: Mapping[str, FileSpec], exit_code: int, fragment: str, **kwargs: Any) -> Case:
    """A ``convert voc`` case on the VOC root ``{root}/src`` (``Annotations/``, ``JPEGImages/``...)."""
    extra_args = tuple(kwargs.pop("args", ()))
    # "../x" puts a file beside the source (an "outside" directory that a hostile file points at).
    full = {(k[3:] if k.startswith("../") else f"src/{k}"): v for k, v in files.items()}
    return Case(
        name, "voc", ("convert", "voc", "{root}/src", "-o", OUT, *extra_args), full, exit_code, fragment, **kwargs
    )


# ---------------------------------------------------------------------------------------------- CSV helpers

CSV_HEADER = "filename,width,height,class,xmin,ymin,xmax,ymax\n"


def csv_case(name: str, data: FileSpec, exit_code: int, fragment: str, **kwargs: Any) -> Case:
    """A ``convert csv`` case on ``{root}/src/boxes.csv``."""
    extra_args = tuple(kwargs.pop("args", ()))
    files = {"src/boxes.csv": data, **kwargs.pop("files", {})}
    args = ("convert", "csv", "{root}/src/boxes.csv", "-o", OUT, *extra_args)
    return Case(name, "csv", args, files, exit_code, fragment, **kwargs)


# ---------------------------------------------------------------------------------------------- YOLO helpers


def yolo_case(name: str, files: Mapping[str, FileSpec], exit_code: int, fragment: str, **kwargs: Any) -> Case:
    """A ``convert yolo`` case on ``{root}/src`` (``classes.txt``, flat ``images/`` + ``labels/``)."""
    extra_args = tuple(kwargs.pop("args", ()))
    base: dict[str, FileSpec] = {"classes.txt": "cat\ndog\n", "images/a.png": png()}
    full = {f"src/{k}": v for k, v in {**base, **files}.items() if v is not None}
    return Case(
        name, "yolo", ("convert", "yolo", "{root}/src", "-o", OUT, *extra_args), full, exit_code, fragment, **kwargs
    )


# ---------------------------------------------------------------------------------------------- normalized datasets


def manifest(**changes: Any) -> str:
    """A valid manifest (one category ``cat``, split ``train``, images in ``images/``), with changes."""
    data: dict[str, Any] = {
        "format": "annonorm",
        "version": 1,
        "name": "hostile",
        "categories": [{"id": 0, "name": "cat"}],
        "splits": {"train": "train.jsonl"},
        "image_root": "images",
    }
    for key, value in changes.items():
        if value is _DELETE:
            data.pop(key, None)
        else:
            data[key] = value
    return json.dumps(data)


def record(**changes: Any) -> dict[str, Any]:
    """A valid record of an 8x6 image ``a.png`` with one ``cat`` box, with changes."""
    data: dict[str, Any] = {
        "image": "a.png",
        "width": 8,
        "height": 6,
        "labels": ["cat"],
        "counts": {"cat": 1},
        "boxes": [{"name": "cat", "x1": 1.0, "y1": 1.0, "x2": 3.0, "y2": 3.0}],
    }
    for key, value in changes.items():
        if value is _DELETE:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def jsonl(*records: Mapping[str, Any]) -> str:
    """Records as JSON Lines."""
    return "".join(json.dumps(r) + "\n" for r in records)


def dataset(
    train: FileSpec | None = None, manifest_text: FileSpec | None = None, **files: FileSpec
) -> dict[str, FileSpec]:
    """The files of a normalized dataset at ``{root}/ds`` (with ``images/a.png``), some of them replaced."""
    out: dict[str, FileSpec] = {
        "ds/annonorm.json": manifest() if manifest_text is None else manifest_text,
        "ds/train.jsonl": jsonl(record()) if train is None else train,
        "ds/images/a.png": png(),
    }
    out.update({f"ds/{k}": v for k, v in files.items()})
    return out


def validate_case(name: str, files: Mapping[str, FileSpec], exit_code: int, fragment: str, **kwargs: Any) -> Case:
    """A ``validate`` case on ``{root}/ds``."""
    extra_args = tuple(kwargs.pop("args", ()))
    return Case(name, "validate", ("validate", "{root}/ds", *extra_args), files, exit_code, fragment, **kwargs)


def export_case(
    name: str, fmt: str, files: Mapping[str, FileSpec], exit_code: int, fragment: str, **kwargs: Any
) -> Case:
    """An ``export FORMAT`` case from ``{root}/ds``."""
    extra_args = tuple(kwargs.pop("args", ()))
    return Case(
        name, "export", ("export", fmt, "{root}/ds", "-o", OUT, *extra_args), files, exit_code, fragment, **kwargs
    )


# ---------------------------------------------------------------------------------------------- the cases

_GOOD_BOX = voc_object("2", "2", "3", "3")

CASES: list[Case] = [
    # -------------------------------------------------------------------------------- COCO: unreadable
    coco_case("coco_empty_file", b"", 2, "not valid JSON"),
    coco_case("coco_binary_garbage", garbage(), 2, "not valid JSON"),
    coco_case("coco_truncated_json", Committed("coco_truncated.json"), 2, "not valid JSON"),
    coco_case("coco_top_level_array", b"[1, 2, 3]", 2, "found an array of 3"),
    coco_case("coco_images_is_object", coco(("images", {"id": 1})), 2, "images"),
    coco_case("coco_width_is_string", coco(("images[0].width", "8")), 2, "images[0].width"),
    coco_case("coco_image_missing_file_name", coco(("images[1].file_name", _DELETE)), 2, "file_name"),
    coco_case("coco_file_name_null", coco(("images[0].file_name", None)), 2, "images[0].file_name"),
    coco_case("coco_annotation_missing_image_id", coco(("annotations[1].image_id", _DELETE)), 2, "image_id"),
    coco_case("coco_bbox_null", coco(("annotations[0].bbox", None)), 2, "annotations[0].bbox"),
    coco_case("coco_bbox_three_numbers", coco(("annotations[0].bbox", [1, 2, 3])), 2, "expected 4 numbers"),
    coco_case("coco_bbox_string_value", coco(("annotations[1].bbox", [1, "2", 3, 4])), 2, "annotations[1].bbox[1]"),
    coco_case("coco_category_name_null", coco(("categories[1].name", None)), 2, "categories[1].name"),
    coco_case("coco_image_id_float", coco(("images[0].id", 1.5)), 2, "images[0].id"),
    coco_case(
        "coco_nan_literal",
        coco().replace(b'"bbox": [1, 1, 2, 2]', b'"bbox": [NaN, 1, 2, 2]'),
        2,
        "not valid JSON",
    ),
    coco_case("coco_deep_nesting_bomb", deep_json(), 2, "nested too deeply"),
    coco_case(
        "coco_deep_nesting_in_info",
        coco().replace(b'{"images"', b'{"info": ' + b"[" * 100_000 + b"]" * 100_000 + b', "images"'),
        2,
        "nested too deeply",
    ),
    coco_case(
        "coco_deep_nesting_in_segmentation",
        coco().replace(b'"area": 4', b'"segmentation": ' + b"[" * 100_000 + b"]" * 100_000 + b', "area": 4'),
        2,
        "nested too deeply",
    ),
    coco_case(
        "coco_non_utf8_file_name",
        coco().replace(b'"a.jpg"', b'"caf\xe9.jpg"'),
        2,
        "not valid JSON",
    ),
    coco_case(
        "coco_captions_task",
        b'{"images": [], "annotations": [{"id": 1, "image_id": 1, "caption": "a"}]}',
        2,
        "captions",
    ),
    Case(
        "coco_source_missing",
        "coco",
        ("convert", "coco", "{root}/src/nothing.json", "-o", OUT),
        {"src/other.json": coco()},
        2,
        "source does not exist",
    ),
    # -------------------------------------------------------------------------------- COCO: invalid data
    coco_case(
        "coco_infinity_in_bbox",
        coco().replace(b'"bbox": [2, 1, 3, 2]', b'"bbox": [2, 1, 1e999, 2]'),
        2,
        "annotations[1].bbox[2]",
    ),
    coco_case("coco_zero_width_image", coco(("images[0].width", 0)), 1, "width and height must be > 0"),
    coco_case("coco_negative_height_image", coco(("images[1].height", -6)), 1, "images[1]"),
    coco_case("coco_negative_box_width", coco(("annotations[0].bbox", [1, 1, -2, 2])), 1, "annotations[0].bbox"),
    coco_case("coco_negative_box_origin", coco(("annotations[0].bbox", [-5, 1, 2, 2])), 1, "x=-5"),
    coco_case("coco_unknown_image_id", coco(("annotations[1].image_id", 77)), 1, "annotations[1].image_id"),
    coco_case("coco_unknown_category_id", coco(("annotations[0].category_id", 9)), 1, "annotations[0].category_id"),
    coco_case("coco_duplicate_image_id", coco(("images[1].id", 1)), 1, "images[1].id"),
    coco_case("coco_duplicate_annotation_id", coco(("annotations[1].id", 1)), 1, "annotations[1].id"),
    coco_case("coco_duplicate_category_id", coco(("categories[1].id", 1)), 1, "categories[1].id"),
    coco_case("coco_empty_category_name", coco(("categories[0].name", "")), 1, "category name is empty"),
    coco_case(
        "coco_polygon_odd_count",
        coco(("annotations[0].segmentation", [[1, 1, 4, 1, 4]])),
        1,
        "annotations[0].segmentation",
    ),
    coco_case(
        "coco_rle_size_mismatch",
        coco(("annotations[0].segmentation", {"size": [60, 80], "counts": [4800]})),
        1,
        "differs from the image size",
    ),
    coco_case(
        "coco_rle_garbage_string",
        coco(("annotations[0].segmentation", {"size": [6, 8], "counts": "\u00ff\u00ff"})),
        1,
        "invalid character",
    ),
    coco_case(
        "coco_huge_image_with_polygon",
        coco(
            ("images[0].width", 200_000),
            ("images[0].height", 200_000),
            ("annotations[0].segmentation", [[1, 1, 9, 1, 9, 9]]),
        ),
        1,
        "too large to draw its mask",
        args=("--masks", "png"),
    ),
    coco_case("coco_annotation_flood_unknown_image", many_splits_bomb_json(), 1, "image_id 999"),
    coco_case(
        "coco_segmentation_needs_unknown_size",
        coco(
            ("images[0].width", _DELETE),
            ("images[0].height", _DELETE),
            ("annotations[0].segmentation", [[1, 1, 4, 1, 4, 4]]),
        ),
        1,
        "image size is unknown",
        args=("--masks", "png"),
        files={"src/a.jpg": b""},
    ),
    # -------------------------------------------------------------------------------- COCO: unsafe paths
    coco_case("coco_file_name_dotdot", coco(("images[0].file_name", "../../etc/passwd")), 2, "must not climb out"),
    coco_case("coco_file_name_absolute", coco(("images[1].file_name", "/etc/passwd")), 2, "must be relative"),
    coco_case(
        "coco_file_name_windows_drive", coco(("images[1].file_name", "C:\\Windows\\win.ini")), 2, "must be relative"
    ),
    # -------------------------------------------------------------------------------- COCO: accepted
    coco_case("coco_utf8_bom", b"\xef\xbb\xbf" + coco(), 0, "", output="created", stdout_fragment="2 images"),
    coco_case(
        "coco_box_far_outside_image",
        coco(("annotations[0].bbox", [500, 500, 20, 20])),
        0,
        "",
        output="created",
        stdout_fragment="2 boxes",
    ),
    coco_case(
        "coco_zero_byte_image_without_size",
        coco(("images[0].width", _DELETE), ("images[0].height", _DELETE)),
        0,
        "",
        output="created",
        files={"src/a.jpg": b"", "src/b.jpg": garbage(64)},
        stdout_fragment="2 images",
    ),
    # -------------------------------------------------------------------------------- COCO: --on-error skip
    coco_case(
        "coco_skip_writes_good_records",
        coco(("annotations[1].bbox", [1, 1, -3, 2])),
        1,
        "1 broken images skipped",
        args=("--on-error", "skip"),
        output="created",
        extra={"skipped": 1, "records": 1},
    ),
    coco_case(
        "coco_fail_is_the_default",
        coco(("annotations[1].bbox", [1, 1, -3, 2])),
        1,
        "annotations[1].bbox",
    ),
    # -------------------------------------------------------------------------------- output safety
    coco_case(
        "coco_output_exists_without_force",
        coco(),
        2,
        "already exists",
        files={"out/keep.txt": "previous run\n"},
        output="kept",
    ),
    coco_case(
        "coco_output_is_a_file_with_force",
        coco(),
        2,
        "not a directory",
        args=("--force",),
        files={"out": "I am a file\n"},
        output="kept",
    ),
    coco_case(
        "coco_bad_input_with_force_keeps_previous",
        coco(("annotations[0].bbox", [1, 1, -2, 2])),
        1,
        "annotations[0].bbox",
        args=("--force",),
        files={"out/annonorm.json": "{}", "out/train.jsonl": ""},
        output="kept",
    ),
    # -------------------------------------------------------------------------------- VOC
    voc_case("voc_billion_laughs", {"Annotations/a.xml": Committed("voc_billion_laughs.xml")}, 2, "refused"),
    voc_case(
        "voc_xxe_reads_local_file",
        {"Annotations/a.xml": Committed("voc_xxe_local_file.xml"), "../outside/secret.txt": "TOP-SECRET-TOKEN"},
        2,
        "refused",
        absent=("TOP-SECRET-TOKEN",),
    ),
    voc_case(
        "voc_external_dtd",
        # expat never loads an external DTD: the entity it would define stays undefined (nothing is read)
        {"Annotations/a.xml": Committed("voc_external_dtd.xml"), "../outside/evil.dtd": "<!ENTITY fromdtd 'x'>"},
        2,
        "undefined entity",
    ),
    voc_case(
        "voc_parameter_entity",
        {"Annotations/a.xml": Committed("voc_parameter_entity.xml"), "../outside/evil.dtd": "<!ENTITY x 'y'>"},
        2,
        "refused",
    ),
    voc_case("voc_truncated_xml", {"Annotations/a.xml": Committed("voc_truncated.xml")}, 2, "not well-formed"),
    voc_case("voc_empty_xml", {"Annotations/a.xml": b""}, 2, "not well-formed"),
    voc_case("voc_binary_garbage_xml", {"Annotations/a.xml": garbage()}, 2, "a.xml"),
    voc_case("voc_wrong_root_element", {"Annotations/a.xml": "<html><body/></html>"}, 2, "expected <annotation>"),
    voc_case(
        "voc_latin1_xml_without_declaration",
        {"Annotations/a.xml": voc_xml(objects=_GOOD_BOX).replace("cat", "caf\xe9").encode("latin-1")},
        2,
        "not well-formed",
    ),
    voc_case(
        "voc_missing_size_and_no_image",
        {"Annotations/a.xml": voc_xml(size=None)},
        0,
        "",
        output="created",
        stdout_fragment="1 images",
        extra={"record_without_size": True},
    ),
    voc_case(
        "voc_missing_size_zero_byte_image",
        {"Annotations/a.xml": voc_xml(size=None), "JPEGImages/a.jpg": b""},
        0,
        "",
        output="created",
        stdout_fragment="1 images",
        extra={"record_without_size": True},
    ),
    voc_case(
        "voc_negative_size",
        {"Annotations/a.xml": voc_xml(size="<size><width>-8</width><height>6</height></size>")},
        1,
        "size/width",
    ),
    voc_case(
        "voc_xmax_below_xmin",
        {"Annotations/a.xml": voc_xml(objects=voc_object("5", "2", "3", "4"))},
        1,
        "xmax (3) is smaller than xmin (5)",
    ),
    voc_case(
        "voc_coordinate_not_a_number",
        {"Annotations/a.xml": voc_xml(objects=voc_object("2", "two", "3", "4"))},
        1,
        "object[1]/bndbox/ymin",
    ),
    voc_case(
        "voc_coordinate_nan",
        {"Annotations/a.xml": voc_xml(objects=voc_object("2", "2", "nan", "4"))},
        1,
        "finite",
    ),
    voc_case(
        "voc_coordinate_infinity",
        {"Annotations/a.xml": voc_xml(objects=voc_object("2", "2", "3", "inf"))},
        1,
        "finite",
    ),
    voc_case(
        "voc_missing_bndbox",
        {"Annotations/a.xml": voc_xml(objects="<object><name>cat</name></object>")},
        1,
        "missing <bndbox>",
    ),
    voc_case(
        "voc_filename_dotdot",
        {"Annotations/a.xml": voc_xml(filename="../../../etc/passwd")},
        2,
        "must not climb out",
    ),
    voc_case("voc_filename_absolute", {"Annotations/a.xml": voc_xml(filename="/etc/shadow")}, 2, "must be relative"),
    voc_case(
        "voc_split_list_dotdot",
        {"Annotations/a.xml": voc_xml(), "ImageSets/Main/train.txt": "a\n../../secret\n"},
        2,
        "line 2",
    ),
    voc_case(
        "voc_split_list_unknown_stem",
        {"Annotations/a.xml": voc_xml(), "ImageSets/Main/train.txt": "a\nghost\n"},
        1,
        "'ghost'",
    ),
    voc_case(
        "voc_split_list_not_utf8",
        {"Annotations/a.xml": voc_xml(), "ImageSets/Main/train.txt": b"a\n\xff\xfe\n"},
        2,
        "not UTF-8",
    ),
    voc_case(
        "voc_box_far_outside_image",
        {"Annotations/a.xml": voc_xml(objects=voc_object("500", "500", "900", "900"))},
        0,
        "",
        output="created",
        stdout_fragment="1 boxes",
    ),
    voc_case(
        "voc_mask_size_differs_from_image",
        {
            "Annotations/a.xml": voc_xml(),
            "JPEGImages/a.jpg": jpeg(8, 6),
            "SegmentationObject/a.png": png(4, 4, "L", 1),
        },
        1,
        "mask is 4x4 but the image is 8x6",
    ),
    voc_case(
        "voc_semantic_mask_16bit_value",
        {
            "Annotations/a.xml": voc_xml(),
            "JPEGImages/a.jpg": jpeg(8, 6),
            "SegmentationClass/a.png": png(8, 6, "I;16", 1000),
        },
        1,
        "pixel value 1000",
    ),
    voc_case(
        "voc_instance_mask_names_missing_object",
        {
            "Annotations/a.xml": voc_xml(),
            "JPEGImages/a.jpg": jpeg(8, 6),
            "SegmentationObject/a.png": png(8, 6, "L", 7),
        },
        1,
        "pixel value 7 names no object",
    ),
    voc_case(
        "voc_corrupt_mask",
        {"Annotations/a.xml": voc_xml(), "SegmentationObject/a.png": garbage(300)},
        2,
        "cannot read the mask PNG",
    ),
    voc_case(
        "voc_mask_pixel_bomb",
        {"Annotations/a.xml": voc_xml(size=None), "SegmentationObject/a.png": pixel_bomb_png()},
        2,
        "cannot read the mask PNG",
    ),
    voc_case(
        "voc_zero_byte_mask",
        {"Annotations/a.xml": voc_xml(), "SegmentationObject/a.png": b""},
        2,
        "cannot read the mask PNG",
    ),
    voc_case(
        "voc_skip_writes_good_records",
        {
            "Annotations/a.xml": voc_xml(),
            "Annotations/b.xml": voc_xml(filename="b.jpg", objects=voc_object("5", "2", "3", "4")),
        },
        1,
        "1 broken images skipped",
        args=("--on-error", "skip"),
        output="created",
        extra={"skipped": 1, "records": 1},
    ),
    Case(
        "voc_source_is_a_file",
        "voc",
        ("convert", "voc", "{root}/src/Annotations/a.xml", "-o", OUT),
        {"src/Annotations/a.xml": voc_xml()},
        2,
        "expected the VOC root directory",
    ),
    # -------------------------------------------------------------------------------- CSV
    csv_case("csv_empty_file", b"", 2, "holds no row"),
    csv_case("csv_binary_garbage", garbage(), 2, "not UTF-8"),
    csv_case("csv_latin1_row", Committed("csv_latin1_row.csv"), 2, "row 3"),
    csv_case("csv_ragged_long_row", Committed("csv_ragged_long_row.csv"), 2, "row has 10 cells"),
    csv_case("csv_ragged_short_row", Committed("csv_ragged_short_row.csv"), 2, "--short-rows pad"),
    csv_case("csv_utf8_bom", Committed("csv_utf8_bom.csv"), 0, "", output="created", stdout_fragment="1 boxes"),
    csv_case(
        "csv_unknown_header",
        "picture,kind,left,top,right,bottom\na.jpg,cat,1,1,3,3\n",
        2,
        "cannot tell the columns",
    ),
    csv_case(
        "csv_unknown_mapped_column",
        CSV_HEADER + "a.jpg,8,6,cat,1,1,3,3\n",
        2,
        "'nope' is not in the header",
        args=("--column", "image=nope"),
    ),
    csv_case(
        "csv_extra_unknown_columns_ignored",
        "filename,width,height,class,xmin,ymin,xmax,ymax,score,notes\na.jpg,8,6,cat,1,1,3,3,0.9,hello\n",
        0,
        "",
        output="created",
        stdout_fragment="1 boxes",
    ),
    csv_case("csv_nan_coordinate", CSV_HEADER + "a.jpg,8,6,cat,nan,1,3,3\n", 2, "expected a number, found 'nan'"),
    csv_case("csv_infinite_coordinate", CSV_HEADER + "a.jpg,8,6,cat,1,1,inf,3\n", 2, "found 'inf'"),
    csv_case("csv_zero_width", CSV_HEADER + "a.jpg,0,6,cat,1,1,3,3\n", 2, "positive whole number"),
    csv_case("csv_negative_height", CSV_HEADER + "a.jpg,8,-6,cat,1,1,3,3\n", 2, "row 2, column 'height'"),
    csv_case("csv_box_x2_below_x1", CSV_HEADER + "a.jpg,8,6,cat,5,1,3,3\n", 1, "x1 <= x2"),
    csv_case("csv_box_negative_corner", CSV_HEADER + "a.jpg,8,6,cat,-1,1,3,3\n", 1, "non-negative corners"),
    csv_case("csv_image_dotdot", CSV_HEADER + "../../etc/passwd,8,6,cat,1,1,3,3\n", 2, "must not climb out"),
    csv_case("csv_image_absolute", CSV_HEADER + "/etc/passwd,8,6,cat,1,1,3,3\n", 2, "must be relative"),
    csv_case("csv_unclosed_quote", CSV_HEADER + 'a.jpg,8,6,"cat,1,1,3,3\n', 2, "boxes.csv"),
    csv_case(
        "csv_nul_bytes",
        CSV_HEADER.encode() + b"a.jpg,8,6,c\x00at,1,1,3,3\n",
        0,
        "",
        output="created",
        stdout_fragment="1 boxes",
    ),
    csv_case("csv_field_larger_than_limit", huge_csv_cell(), 2, "field larger than field limit"),
    csv_case("csv_header_only", CSV_HEADER, 2, "no CSV annotations here"),
    csv_case(
        "csv_box_far_outside_image",
        CSV_HEADER + "a.jpg,8,6,cat,100,100,300,300\n",
        0,
        "",
        output="created",
        stdout_fragment="1 boxes",
    ),
    csv_case(
        "csv_skip_writes_good_records",
        CSV_HEADER + "a.jpg,8,6,cat,1,1,3,3\nb.jpg,8,6,cat,5,1,3,3\nc.jpg,8,6,dog,1,1,2,2\n",
        1,
        "1 broken images skipped",
        args=("--on-error", "skip"),
        output="created",
        extra={"skipped": 1, "records": 2},
    ),
    csv_case(
        "csv_skip_with_every_row_broken",
        CSV_HEADER + "a.jpg,8,6,cat,5,1,3,3\nb.jpg,8,6,cat,-1,1,3,3\n",
        1,
        "every image is broken (2 skipped), nothing to write; first: ",
        args=("--on-error", "skip"),
    ),
    # -------------------------------------------------------------------------------- YOLO
    yolo_case("yolo_four_values", {"labels/a.txt": "0 0.5 0.5 0.2\n"}, 2, "found 4 values"),
    yolo_case("yolo_class_out_of_range", {"labels/a.txt": "7 0.5 0.5 0.2 0.2\n"}, 1, "class '7'"),
    yolo_case("yolo_class_superscript_digit", {"labels/a.txt": "\u00b2 0.5 0.5 0.2 0.2\n"}, 1, "line 1"),
    yolo_case("yolo_negative_class", {"labels/a.txt": "-1 0.5 0.5 0.2 0.2\n"}, 1, "class '-1'"),
    yolo_case("yolo_fraction_above_one", {"labels/a.txt": "0 0.5 0.5 3 0.2\n"}, 1, "0..1"),
    yolo_case("yolo_nan_value", {"labels/a.txt": "0 nan 0.5 0.2 0.2\n"}, 1, "finite"),
    yolo_case("yolo_negative_size", {"labels/a.txt": "0 0.5 0.5 -0.2 0.2\n"}, 1, "a.txt:line 1"),
    yolo_case("yolo_label_not_utf8", {"labels/a.txt": b"0 0.5 0.5 0.2 0.2\n\xff\n"}, 2, "not UTF-8"),
    yolo_case("yolo_binary_garbage_label", {"labels/a.txt": garbage()}, 2, "a.txt"),
    yolo_case(
        "yolo_label_bom",
        {"labels/a.txt": "\ufeff0 0.5 0.5 0.2 0.2\n"},
        0,
        "",
        output="created",
        stdout_fragment="1 boxes",
    ),
    yolo_case("yolo_no_class_list", {"classes.txt": None, "labels/a.txt": "0 0.5 0.5 0.2 0.2\n"}, 2, "no class list"),
    yolo_case(
        "yolo_empty_class_list",
        {"classes.txt": "\n\n", "labels/a.txt": "0 0.5 0.5 0.2 0.2\n"},
        2,
        "class list is empty",
    ),
    yolo_case("yolo_duplicate_class", {"classes.txt": "cat\ncat\n", "labels/a.txt": ""}, 2, "listed twice"),
    yolo_case("yolo_label_without_image", {"labels/zz.txt": "0 0.5 0.5 0.2 0.2\n"}, 1, "no image for this label"),
    yolo_case(
        "yolo_zero_byte_image", {"images/a.png": b"", "labels/a.txt": "0 0.5 0.5 0.2 0.2\n"}, 1, "cannot be read"
    ),
    yolo_case(
        "yolo_corrupt_image", {"images/a.png": garbage(200), "labels/a.txt": "0 0.5 0.5 0.2 0.2\n"}, 1, "cannot be read"
    ),
    yolo_case(
        "yolo_data_yaml_unclosed",
        {"classes.txt": None, "data.yaml": "names: [cat, dog\n", "labels/a.txt": ""},
        2,
        "never closed",
    ),
    yolo_case("yolo_no_label_folder", {"images/a.png": png()}, 2, "no label folder"),
    yolo_case(
        "yolo_symlink_loops_not_followed",
        {"labels/a.txt": "0 0.5 0.5 0.2 0.2\n", "labels/loop": Link(".."), "images/loop": Link("../images")},
        0,
        "",
        output="created",
        stdout_fragment="1 images, 1 boxes",
    ),
    yolo_case(
        "yolo_skip_writes_good_records",
        {"images/b.png": png(), "labels/a.txt": "0 0.5 0.5 0.2 0.2\n", "labels/b.txt": "9 0.5 0.5 0.2 0.2\n"},
        1,
        "1 broken images skipped",
        args=("--on-error", "skip"),
        output="created",
        extra={"skipped": 1, "records": 1},
    ),
    # -------------------------------------------------------------------------------- validate: unreadable
    validate_case("validate_no_manifest", {"ds/train.jsonl": jsonl(record())}, 2, "no annonorm.json here"),
    validate_case("validate_manifest_empty", dataset(manifest_text=b""), 2, "not valid JSON"),
    validate_case("validate_manifest_garbage", dataset(manifest_text=garbage()), 2, "not valid JSON"),
    validate_case("validate_manifest_array", dataset(manifest_text="[]"), 2, "expected a JSON object"),
    validate_case(
        "validate_manifest_not_annonorm", dataset(manifest_text='{"format": "coco"}'), 2, "not an annonorm manifest"
    ),
    validate_case("validate_split_file_missing", {"ds/annonorm.json": manifest()}, 2, "missing"),
    validate_case("validate_split_binary_garbage", dataset(train=garbage()), 2, "no line of this split"),
    validate_case(
        "validate_manifest_json_errors",
        dataset(manifest_text=b"\x00\x01"),
        2,
        '"exit_code": 2',
        args=("--format", "json"),
    ),
    # -------------------------------------------------------------------------------- validate: invalid
    validate_case(
        "validate_manifest_categories_missing", dataset(manifest_text=manifest(categories=_DELETE)), 1, "categories"
    ),
    validate_case(
        "validate_manifest_split_dotdot",
        dataset(manifest_text=manifest(splits={"train": "../../etc/passwd"})),
        1,
        "must not climb out",
    ),
    validate_case(
        "validate_manifest_split_absolute",
        dataset(manifest_text=manifest(splits={"train": "/etc/passwd"})),
        1,
        "must be relative",
    ),
    validate_case(
        "validate_manifest_duplicate_category",
        dataset(manifest_text=manifest(categories=[{"id": 0, "name": "cat"}, {"id": 1, "name": "cat"}])),
        1,
        "repeats the name",
    ),
    validate_case(
        "validate_truncated_line", dataset(train=jsonl(record()) + '{"image": "b.png", "wid'), 1, "train.jsonl:2"
    ),
    validate_case("validate_zero_width", dataset(train=jsonl(record(width=0))), 1, "width"),
    validate_case("validate_null_image", dataset(train=jsonl(record(image=None))), 1, "image"),
    validate_case(
        "validate_infinite_coordinate",
        dataset(train=jsonl(record(image="b.png")) + jsonl(record()).replace('"x2": 3.0', '"x2": 1e999')),
        1,
        "train.jsonl:2: boxes.0.x2: error: number beyond float64's range",
    ),
    validate_case(
        "validate_deep_nesting_line",
        dataset(train=jsonl(record()) + '{"image": ' + "[" * 100_000 + "]" * 100_000 + "}\n"),
        1,
        "train.jsonl:2: error: not valid JSON",
    ),
    validate_case(
        "validate_manifest_deep_nesting",
        dataset(manifest_text="[" * 100_000 + "]" * 100_000),
        2,
        "annonorm.json: not valid JSON",
    ),
    validate_case(
        "validate_manifest_bom",
        dataset(manifest_text=b"\xef\xbb\xbf" + manifest().encode()),
        2,
        "annonorm.json: not valid JSON",
    ),
    validate_case(
        "validate_box_inverted",
        dataset(train=jsonl(record(boxes=[{"name": "cat", "x1": 5.0, "y1": 1.0, "x2": 3.0, "y2": 3.0}]))),
        1,
        "expected x1 <= x2",
    ),
    validate_case(
        "validate_negative_coordinate",
        dataset(train=jsonl(record(boxes=[{"name": "cat", "x1": -1.0, "y1": 1.0, "x2": 3.0, "y2": 3.0}]))),
        1,
        "boxes.0.x1",
    ),
    validate_case(
        "validate_unknown_category",
        dataset(
            train=jsonl(
                record(
                    labels=["dog"],
                    counts={"dog": 1},
                    boxes=[{"name": "dog", "x1": 1.0, "y1": 1.0, "x2": 3.0, "y2": 3.0}],
                )
            )
        ),
        1,
        "not a category of the manifest",
    ),
    validate_case(
        "validate_duplicate_image", dataset(train=jsonl(record(), record())), 1, "already the record of line 1"
    ),
    validate_case(
        "validate_duplicate_id",
        dataset(train=jsonl(record(id=7), record(image="b.png", id=7))),
        1,
        "id 7 is already used by line 1",
    ),
    validate_case("validate_image_dotdot", dataset(train=jsonl(record(image="../../etc/passwd"))), 1, "climb out"),
    validate_case("validate_image_absolute", dataset(train=jsonl(record(image="/etc/passwd"))), 1, "must be relative"),
    validate_case("validate_mask_dotdot", dataset(train=jsonl(record(mask="../secret.png"))), 1, "climb out"),
    validate_case("validate_unknown_key", dataset(train=jsonl(record(boxs=[]))), 1, "boxs"),
    validate_case(
        "validate_non_utf8_line",
        dataset(train=jsonl(record()).encode() + b'{"image": "caf\xe9.png"}\n'),
        1,
        "train.jsonl:2",
    ),
    validate_case(
        "validate_bom_in_split",
        dataset(train=b"\xef\xbb\xbf" + jsonl(record(), record(image="b.png")).encode()),
        1,
        "train.jsonl:1: error: not valid JSON",
    ),
    validate_case(
        "validate_box_outside_image_warns",
        dataset(train=jsonl(record(boxes=[{"name": "cat", "x1": 1.0, "y1": 1.0, "x2": 300.0, "y2": 3.0}]))),
        0,
        "box_outside_image",
    ),
    validate_case(
        "validate_box_outside_image_strict",
        dataset(train=jsonl(record(boxes=[{"name": "cat", "x1": 1.0, "y1": 1.0, "x2": 300.0, "y2": 3.0}]))),
        1,
        "error: box (1.0, 1.0, 300.0, 3.0) leaves the 8x6 image",
        args=("--strict",),
    ),
    # -------------------------------------------------------------------------------- validate --check-images
    validate_case(
        "validate_zero_byte_image", dataset(**{"images/a.png": b""}), 1, "cannot be opened", args=("--check-images",)
    ),
    validate_case(
        "validate_corrupt_image",
        dataset(**{"images/a.png": garbage(500)}),
        1,
        "cannot be opened",
        args=("--check-images",),
    ),
    validate_case(
        "validate_image_pixel_bomb",
        dataset(**{"images/a.png": pixel_bomb_png()}),
        1,
        "cannot be opened",
        args=("--check-images",),
    ),
    validate_case(
        "validate_mask_pixel_bomb",
        dataset(
            manifest_text=manifest(mask_kind="instance"),
            train=jsonl(record(mask="masks/a.png")),
            **{"masks/a.png": pixel_bomb_png()},
        ),
        1,
        "cannot be opened",
        args=("--check-images",),
    ),
    validate_case(
        "validate_image_size_mismatch",
        dataset(**{"images/a.png": png(16, 16)}),
        1,
        "image is 16x16 but the record says 8x6",
        args=("--check-images",),
    ),
    validate_case(
        "validate_image_symlink_out_of_root",
        {**dataset(**{"images/a.png": Link("../../outside/a.png")}), "outside/a.png": png()},
        1,
        "resolves outside image_root",
        args=("--check-images",),
    ),
    validate_case(
        "validate_mask_16bit_where_8bit_expected",
        dataset(
            manifest_text=manifest(mask_kind="instance"),
            train=jsonl(record(mask="masks/a.png")),
            **{"masks/a.png": png(8, 6, "I;16", 1)},
        ),
        1,
        "16-bit mask where 8-bit is expected",
        args=("--check-images",),
    ),
    validate_case(
        "validate_mask_size_differs",
        dataset(
            manifest_text=manifest(mask_kind="instance"),
            train=jsonl(record(mask="masks/a.png")),
            **{"masks/a.png": png(4, 4, "L", 1)},
        ),
        1,
        "mask is 4x4 but its image is 8x6",
        args=("--check-images",),
    ),
    validate_case(
        "validate_mask_symlink_out_of_dataset",
        {
            **dataset(
                manifest_text=manifest(mask_kind="instance"),
                train=jsonl(record(mask="masks/a.png")),
                **{"masks/a.png": Link("../../outside/m.png")},
            ),
            "outside/m.png": png(8, 6, "L", 1),
        },
        1,
        "resolves outside the dataset",
        args=("--check-images",),
    ),
    validate_case(
        "validate_mask_rgb",
        dataset(
            manifest_text=manifest(mask_kind="instance"),
            train=jsonl(record(mask="masks/a.png")),
            **{"masks/a.png": png(8, 6, "RGB", 1)},
        ),
        1,
        "not a single-channel",
        args=("--check-images",),
    ),
    # -------------------------------------------------------------------------------- export
    export_case("export_no_dataset", "coco", {"ds/readme.txt": "not a dataset"}, 2, "no annonorm.json here"),
    export_case("export_invalid_dataset", "csv", dataset(train=jsonl(record(width=-3))), 1, "dataset is invalid"),
    export_case(
        "export_output_exists", "coco", {**dataset(), "out/keep.txt": "mine\n"}, 2, "already exists", output="kept"
    ),
    export_case(
        "export_coco_missing_mask",
        "coco",
        dataset(manifest_text=manifest(mask_kind="instance"), train=jsonl(record(mask="masks/a.png"))),
        1,
        "masks/a.png",
    ),
    export_case(
        "export_coco_corrupt_mask",
        "coco",
        dataset(
            manifest_text=manifest(mask_kind="instance"),
            train=jsonl(record(mask="masks/a.png")),
            **{"masks/a.png": garbage(100)},
        ),
        1,
        "masks/a.png",
    ),
    export_case(
        "export_coco_mask_pixel_bomb",
        "coco",
        dataset(
            manifest_text=manifest(mask_kind="instance"),
            train=jsonl(record(mask="masks/a.png")),
            **{"masks/a.png": pixel_bomb_png()},
        ),
        1,
        "cannot read the mask",
    ),
    export_case(
        "export_voc_mask_pixel_bomb",
        "voc",
        dataset(
            manifest_text=manifest(mask_kind="semantic"),
            train=jsonl(record(mask="masks/a.png")),
            **{"masks/a.png": pixel_bomb_png()},
        ),
        1,
        "cannot read the mask",
    ),
    export_case(
        "export_coco_rgb_mask",
        "coco",
        dataset(
            manifest_text=manifest(mask_kind="instance"),
            train=jsonl(record(mask="masks/a.png")),
            **{"masks/a.png": png(8, 6, "RGB", 1)},
        ),
        1,
        "expected a single-channel instance mask",
    ),
    export_case(
        "export_coco_mask_symlink_out_of_dataset",
        "coco",
        {
            **dataset(
                manifest_text=manifest(mask_kind="instance"),
                train=jsonl(record(mask="masks/a.png")),
                **{"masks/a.png": Link("../../outside/m.png")},
            ),
            "outside/m.png": png(8, 6, "L", 1),
        },
        2,
        "outside the dataset",
    ),
    export_case(
        "export_voc_missing_mask",
        "voc",
        dataset(manifest_text=manifest(mask_kind="instance"), train=jsonl(record(mask="masks/a.png"))),
        1,
        "cannot read the mask",
    ),
    export_case(
        "export_voc_corrupt_mask",
        "voc",
        dataset(
            manifest_text=manifest(mask_kind="semantic"),
            train=jsonl(record(mask="masks/a.png")),
            **{"masks/a.png": b""},
        ),
        1,
        "cannot read the mask",
    ),
    export_case(
        "export_voc_mask_symlink_out_of_dataset",
        "voc",
        {
            **dataset(
                manifest_text=manifest(mask_kind="instance"),
                train=jsonl(record(mask="masks/a.png")),
                **{"masks/a.png": Link("{root}/outside/m.png")},
            ),
            "outside/m.png": png(8, 6, "L", 1),
        },
        2,
        "resolves outside the dataset",
    ),
    export_case(
        "export_yolo_unknown_size",
        "yolo",
        dataset(train=jsonl(record(width=_DELETE, height=_DELETE))),
        1,
        "image size is unknown",
    ),
    export_case(
        "export_yolo_copy_missing_image",
        "yolo",
        dataset(train=jsonl(record(image="gone.png"))),
        1,
        "gone.png does not exist",
        args=("--images", "copy"),
    ),
    export_case(
        "export_yolo_copy_image_symlink_out_of_root",
        "yolo",
        {**dataset(**{"images/a.png": Link("../../outside/a.png")}), "outside/a.png": png()},
        2,
        "outside the image root",
        args=("--images", "copy"),
    ),
    export_case(
        "export_voc_copy_image_symlink_out_of_root",
        "voc",
        {**dataset(**{"images/a.png": Link("../../outside/a.png")}), "outside/a.png": png()},
        2,
        "outside the image root",
        args=("--copy-images",),
    ),
    export_case(
        "export_csv_class_with_newline",
        "csv",
        dataset(
            manifest_text=manifest(categories=[{"id": 0, "name": "ca\nt"}]),
            train=jsonl(
                record(
                    labels=["ca\nt"], counts={"ca\nt": 1}, boxes=[{"name": "ca\nt", "x1": 1, "y1": 1, "x2": 3, "y2": 3}]
                )
            ),
        ),
        1,
        "line break",
    ),
]


def format_cases() -> list[Case]:
    """The cases each format keeps in its own module beside this one (``cases_<format>.py``, a ``CASES`` list)."""
    import importlib

    found: list[Case] = []
    for path in sorted(Path(__file__).resolve().parent.glob("cases_*.py")):
        found.extend(importlib.import_module(f"hostile.{path.stem}").CASES)
    return found


if __name__ != "__main__":  # run as a script, main() below imports the module proper
    CASES.extend(format_cases())


def required_categories() -> dict[str, int]:
    """Number of cases per category."""
    counts: dict[str, int] = {}
    for case in CASES:
        counts[case.category] = counts.get(case.category, 0) + 1
    return counts


def main(argv: list[str]) -> int:
    """Write every case into ``argv[0]`` (one directory each) and an index ``cases.tsv``."""
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    target = Path(argv[0])
    lines = ["name\tcategory\texit\tfragment\tcommand"]
    for case in CASES:
        root = target / case.name
        materialize(case, root)
        lines.append(
            f"{case.name}\t{case.category}\t{case.exit_code}\t{case.fragment}\t{' '.join(command(case, root))}"
        )
    (target / "cases.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(CASES)} cases to {target}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from hostile.make_corpus import main as corpus_main  # the importable module, with the formats' cases

    raise SystemExit(corpus_main(sys.argv[1:]))
