"""Fuzzing every reader: whatever the bytes or the structure, annonorm answers with an AnnonormError or a valid dataset.

Each property writes a drawn input into a fresh temporary directory, runs ``annonorm.api.convert``
(or ``validate_dataset`` / ``export`` for normalized datasets) and asserts that either it succeeds
and the output validates, or it raises an :class:`~annonorm.errors.AnnonormError` and no output (nor
a temporary directory) is left. Any other exception fails the test: that is a bug (a bare
``KeyError``/``ValueError`` escaping from deep inside).

The number of examples comes from the hypothesis profile (``tests/conftest.py``): ``ci`` and ``dev``
keep the whole file well under a minute; a longer search::

    HYPOTHESIS_PROFILE=long pytest tests/test_fuzz.py
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from annonorm.api import convert, export
from annonorm.errors import AnnonormError
from annonorm.validation import validate_dataset

FUZZ = settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@contextmanager
def workspace() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="annonorm-fuzz-") as directory:
        yield Path(directory)


def write_png(path: Path, size: tuple[int, int] = (8, 6)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (10, 20, 30)).save(path, format="PNG")


def convert_or_refuse(fmt: str, source: Path, out: Path, **options: Any) -> bool:
    """Convert; on refusal check that nothing was left. Return whether a dataset was written."""
    try:
        convert(fmt, source, out, **options)
    except AnnonormError as error:
        assert str(error)  # a message a person can read
        assert not out.exists(), "a refused conversion left an output"
        leftovers = [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.annonorm-")]
        assert not leftovers, leftovers
        return False
    report = validate_dataset(out)
    assert report.valid, [str(f) for f in report.errors]
    return True


# ---------------------------------------------------------------------------------------------- value strategies

#: JSON scalars, with the values that break naive readers: huge and negative numbers, floats that
#: overflow, empty and path-like strings, non-ASCII text.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 40),
    st.sampled_from([0, -1, 2**31, 2**63, -(2**63) - 1, 2**64]),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.sampled_from(["", "a.jpg", "../x.jpg", "/etc/passwd", "C:\\x", "cat", "\u00b2", "\ufeff", "nan", "1e999"]),
    st.text(max_size=6),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


def either(plausible: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A plausible value most of the time, anything JSON some of the time."""
    return st.one_of(plausible, plausible, json_values)


def maybe_keys(required: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """A dict whose every key is sometimes missing, and that sometimes carries an unknown key."""
    return st.fixed_dictionaries({}, optional={**required, "extra": json_values}) | st.fixed_dictionaries(required)


small = st.integers(-2, 12)
coordinates = st.lists(either(st.integers(-2, 12) | st.floats(-2, 12)), min_size=0, max_size=5)


# ---------------------------------------------------------------------------------------------- COCO


coco_images = maybe_keys(
    {
        "id": either(st.integers(0, 4)),
        "file_name": either(st.sampled_from(["a.png", "b.png", "sub/c.png", "../d.png"])),
        "width": either(small),
        "height": either(small),
    }
)
coco_segmentation = st.one_of(
    st.lists(st.lists(either(st.integers(0, 10)), max_size=8), max_size=2),
    st.fixed_dictionaries({"size": either(st.lists(small, max_size=3)), "counts": either(st.lists(small, max_size=6))}),
    st.fixed_dictionaries({"size": st.just([6, 8]), "counts": st.text(max_size=6)}),
)
coco_annotations = maybe_keys(
    {
        "id": either(st.integers(0, 4)),
        "image_id": either(st.integers(0, 4)),
        "category_id": either(st.integers(0, 3)),
        "bbox": either(coordinates),
        "segmentation": either(coco_segmentation),
        "iscrowd": either(st.integers(0, 1)),
        "area": either(st.floats(0, 50)),
    }
)
coco_categories = maybe_keys({"id": either(st.integers(0, 3)), "name": either(st.sampled_from(["cat", "dog", ""]))})
coco_documents = st.fixed_dictionaries(
    {},
    optional={
        "images": either(st.lists(coco_images, max_size=4)),
        "annotations": either(st.lists(coco_annotations, max_size=5)),
        "categories": either(st.lists(coco_categories, max_size=3)),
        "info": json_values,
    },
)


@FUZZ
@given(data=st.binary(max_size=600))
def test_coco_reader_on_arbitrary_bytes(data: bytes) -> None:
    with workspace() as root:
        (root / "instances_train.json").write_bytes(data)
        convert_or_refuse("coco", root / "instances_train.json", root / "out")


@FUZZ
@given(document=coco_documents, on_error=st.sampled_from(["fail", "skip"]))
def test_coco_reader_on_coco_shaped_json(document: dict[str, Any], on_error: str) -> None:
    with workspace() as root:
        write_png(root / "a.png")
        (root / "instances_train.json").write_text(json.dumps(document))
        convert_or_refuse("coco", root / "instances_train.json", root / "out", on_error=on_error, workers=1)


# ---------------------------------------------------------------------------------------------- VOC

xml_text = st.one_of(
    st.sampled_from(["1", "2", "7.5", "0", "-1", "nan", "inf", "1e309", "", " 3 ", "abc", "8", "6"]),
    st.integers(-5, 20).map(str),
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=6),
)


@st.composite
def voc_documents(draw: st.DrawFn) -> str:
    """An ``<annotation>`` with every part optional and every text drawn."""
    parts = []
    if draw(st.booleans()):
        parts.append(
            f"<filename>{escape(draw(st.sampled_from(['a.png', '../a.png', '/a.png', 'b.png', ''])))}</filename>"
        )
    if draw(st.booleans()):
        sides = "".join(
            f"<{tag}>{escape(draw(xml_text))}</{tag}>" for tag in ("width", "height") if draw(st.booleans())
        )
        parts.append(f"<size>{sides}<depth>3</depth></size>")
    for _ in range(draw(st.integers(0, 3))):
        fields = []
        if draw(st.booleans()):
            fields.append(f"<name>{escape(draw(st.sampled_from(['cat', 'dog', '', 'person']) | xml_text))}</name>")
        if draw(st.booleans()):
            corners = "".join(
                f"<{tag}>{escape(draw(xml_text))}</{tag}>"
                for tag in ("xmin", "ymin", "xmax", "ymax")
                if draw(st.integers(0, 5))
            )
            fields.append(f"<bndbox>{corners}</bndbox>")
        for tag in draw(st.lists(st.sampled_from(["difficult", "truncated", "pose", "point", "part", "actions"]))):
            fields.append(f"<{tag}>{escape(draw(xml_text))}</{tag}>")
        parts.append(f"<object>{''.join(fields)}</object>")
    root = draw(st.sampled_from(["annotation", "annotation", "annotation", "html"]))
    return f"<{root}>{''.join(parts)}</{root}>"


@FUZZ
@given(data=st.binary(max_size=600))
def test_voc_reader_on_arbitrary_bytes(data: bytes) -> None:
    with workspace() as root:
        (root / "voc" / "Annotations").mkdir(parents=True)
        (root / "voc" / "Annotations" / "a.xml").write_bytes(data)
        convert_or_refuse("voc", root / "voc", root / "out")


@FUZZ
@given(documents=st.lists(voc_documents(), min_size=1, max_size=3), on_error=st.sampled_from(["fail", "skip"]))
def test_voc_reader_on_voc_shaped_xml(documents: list[str], on_error: str) -> None:
    with workspace() as root:
        annotations = root / "voc" / "Annotations"
        annotations.mkdir(parents=True)
        write_png(root / "voc" / "JPEGImages" / "a.png")
        for index, document in enumerate(documents):
            (annotations / f"{'ab'[index % 2]}{index}.xml").write_text(document, encoding="utf-8")
        convert_or_refuse("voc", root / "voc", root / "out", on_error=on_error, workers=1)


# ---------------------------------------------------------------------------------------------- CSV

csv_cells = st.one_of(
    st.sampled_from(["a.png", "b.png", "../a.png", "/x.png", "cat", "dog", "", "8", "6", "0", "-1", "nan", "inf"]),
    st.integers(-3, 12).map(str),
    st.floats(-1, 12, allow_nan=False).map(str),
    st.text(max_size=5),
)
csv_headers = st.one_of(
    st.just(["filename", "width", "height", "class", "xmin", "ymin", "xmax", "ymax"]),
    st.just(["image", "xmin", "ymin", "xmax", "ymax", "label"]),
    st.lists(st.sampled_from(["filename", "image", "label", "x", "y", "w", "h", "junk"]), min_size=1, max_size=6),
)


@st.composite
def csv_tables(draw: st.DrawFn) -> bytes:
    """A CSV with a plausible (or not) header and rows of drawn cells, ragged now and then."""
    header = draw(csv_headers)
    stream = io.StringIO()
    writer = csv.writer(stream)
    writer.writerow(header)
    for _ in range(draw(st.integers(0, 4))):
        width = len(header) + draw(st.sampled_from([0, 0, 0, -1, 1]))
        writer.writerow([draw(csv_cells) for _ in range(max(width, 0))])
    return stream.getvalue().encode("utf-8", "surrogatepass")


@FUZZ
@given(data=st.binary(max_size=600))
def test_csv_reader_on_arbitrary_bytes(data: bytes) -> None:
    with workspace() as root:
        (root / "boxes.csv").write_bytes(data)
        convert_or_refuse("csv", root / "boxes.csv", root / "out")


@FUZZ
@given(table=csv_tables(), on_error=st.sampled_from(["fail", "skip"]), normalized=st.booleans())
def test_csv_reader_on_csv_shaped_tables(table: bytes, on_error: str, normalized: bool) -> None:
    with workspace() as root:
        write_png(root / "a.png")
        (root / "boxes.csv").write_bytes(table)
        options = {"normalized": True} if normalized else {}
        convert_or_refuse("csv", root / "boxes.csv", root / "out", on_error=on_error, **options)


# ---------------------------------------------------------------------------------------------- YOLO

yolo_tokens = st.one_of(
    st.sampled_from(["0", "1", "2", "0.5", "0.25", "1.0", "0", "-0.1", "nan", "inf", "1e999", "\u00b2", "x"]),
    st.floats(0, 1).map(lambda v: f"{v:.4f}"),
)
yolo_lines = st.lists(yolo_tokens, min_size=0, max_size=9).map(" ".join)


@FUZZ
@given(data=st.binary(max_size=400), classes=st.binary(max_size=60))
def test_yolo_reader_on_arbitrary_bytes(data: bytes, classes: bytes) -> None:
    with workspace() as root:
        write_png(root / "yolo" / "images" / "a.png")
        (root / "yolo" / "labels").mkdir(parents=True)
        (root / "yolo" / "labels" / "a.txt").write_bytes(data)
        (root / "yolo" / "classes.txt").write_bytes(classes)
        convert_or_refuse("yolo", root / "yolo", root / "out")


@FUZZ
@given(
    labels=st.lists(st.lists(yolo_lines, max_size=4).map("\n".join), min_size=1, max_size=3),
    classes=st.lists(st.sampled_from(["cat", "dog", "cat", " ", "bird"]), max_size=3),
    on_error=st.sampled_from(["fail", "skip"]),
)
def test_yolo_reader_on_yolo_shaped_labels(labels: list[str], classes: list[str], on_error: str) -> None:
    with workspace() as root:
        for index, text in enumerate(labels):
            if index % 2 == 0:
                write_png(root / "yolo" / "images" / f"i{index}.png")
            (root / "yolo" / "labels").mkdir(parents=True, exist_ok=True)
            (root / "yolo" / "labels" / f"i{index}.txt").write_text(text)
        (root / "yolo" / "classes.txt").write_text("\n".join(classes))
        convert_or_refuse("yolo", root / "yolo", root / "out", on_error=on_error)


@FUZZ
@given(data=st.binary(max_size=300), suffix=st.sampled_from([".txt", ".names", ".yaml", ".json", ".csv"]))
def test_class_list_reader_on_arbitrary_bytes(data: bytes, suffix: str) -> None:
    """``--classes FILE`` in every form it accepts: garbage is a worded error, never a traceback."""
    with workspace() as root:
        (root / "coco").mkdir()
        (root / "coco" / "instances_train.json").write_text(
            json.dumps({"images": [{"id": 1, "file_name": "a.png", "width": 8, "height": 6}], "annotations": [],
                        "categories": [{"id": 1, "name": "cat"}]})
        )  # fmt: skip
        class_file = root / f"classes{suffix}"
        class_file.write_bytes(data)
        convert_or_refuse("coco", root / "coco" / "instances_train.json", root / "out", classes=class_file)


@FUZZ
@given(
    obj_data=st.one_of(st.just(b"classes = 1\ntrain = train.txt\nnames = obj.names\n"), st.binary(max_size=200)),
    listing=st.one_of(st.just(b"obj_train_data/a.png\n"), st.binary(max_size=200)),
    label=st.one_of(st.just(b"0 0.5 0.5 0.25 0.25\n"), st.binary(max_size=100)),
)
def test_yolo_darknet_layout_on_arbitrary_bytes(obj_data: bytes, listing: bytes, label: bytes) -> None:
    """The Darknet layout (``obj.data`` naming ``obj.names`` and ``train.txt``), each file well formed or garbage."""
    with workspace() as root:
        tree = root / "darknet"
        write_png(tree / "obj_train_data" / "a.png")
        (tree / "obj_train_data" / "a.txt").write_bytes(label)
        (tree / "obj.names").write_text("cat\n")
        (tree / "train.txt").write_bytes(listing)
        (tree / "obj.data").write_bytes(obj_data)
        convert_or_refuse("yolo", tree, root / "out")


# ---------------------------------------------------------------------------------------------- normalized datasets

boxes = maybe_keys(
    {
        "name": either(st.sampled_from(["cat", "dog"])),
        "x1": either(st.floats(0, 10)),
        "y1": either(st.floats(0, 10)),
        "x2": either(st.floats(0, 10)),
        "y2": either(st.floats(0, 10)),
    }
)
records = maybe_keys(
    {
        "image": either(st.sampled_from(["a.png", "b.png", "../a.png"])),
        "width": either(st.integers(1, 12)),
        "height": either(st.integers(1, 12)),
        "labels": either(st.lists(st.sampled_from(["cat", "dog"]), max_size=2)),
        "counts": either(st.dictionaries(st.sampled_from(["cat", "dog"]), st.integers(0, 3))),
        "boxes": either(st.lists(boxes, max_size=3)),
        "id": either(st.integers(0, 3)),
    }
)


@FUZZ
@given(
    lines=st.lists(records.map(json.dumps) | st.binary(max_size=40).map(lambda b: b.decode("latin-1")), max_size=4),
    categories=st.lists(st.sampled_from(["cat", "dog", "bird"]), max_size=3, unique=True),
)
def test_validate_and_export_on_drawn_datasets(lines: list[str], categories: list[str]) -> None:
    """validate reports (or raises AnnonormError); a dataset it calls valid exports or is refused cleanly."""
    with workspace() as root:
        dataset = root / "ds"
        dataset.mkdir()
        write_png(dataset / "a.png")
        manifest = {
            "format": "annonorm",
            "version": 1,
            "name": "fuzz",
            "categories": [{"id": i, "name": n} for i, n in enumerate(categories)],
            "splits": {"train": "train.jsonl"},
        }
        (dataset / "annonorm.json").write_text(json.dumps(manifest))
        (dataset / "train.jsonl").write_bytes("".join(f"{line}\n" for line in lines).encode("utf-8", "replace"))
        with suppress(AnnonormError):
            validate_dataset(dataset, check_images=True)  # opens the image: must not raise anything else
        try:
            report = validate_dataset(dataset)  # what export checks before writing
        except AnnonormError:
            return
        for fmt in ("coco", "voc", "csv", "yolo"):
            out = root / f"out-{fmt}"
            try:
                export(fmt, dataset, out)
            except AnnonormError:
                assert not out.exists()
                continue
            assert report.valid, "export wrote a dataset that validate calls invalid"


@FUZZ
@given(data=st.binary(max_size=400), manifest=st.binary(max_size=200) | coco_documents.map(json.dumps).map(str.encode))
def test_validate_on_arbitrary_bytes(data: bytes, manifest: bytes) -> None:
    with workspace() as root:
        (root / "ds").mkdir()
        (root / "ds" / "annonorm.json").write_bytes(manifest)
        (root / "ds" / "train.jsonl").write_bytes(data)
        with suppress(AnnonormError):
            validate_dataset(root / "ds")
        with suppress(AnnonormError):
            validate_dataset(root / "ds" / "train.jsonl")
