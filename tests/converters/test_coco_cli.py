"""``annonorm convert coco`` / ``export coco`` through the command line: what is not COCO, what is not a
file, what ``--on-error skip`` names, which image names survive, and options left off the command line.

Expected values are written out here or computed from the source JSON, never by the converter.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from peer import PEER_DATA
from PIL import Image
from pycocotools import mask as mask_utils
from typer.testing import CliRunner

import annonorm.api
import annonorm.converters.coco as coco
from annonorm.cli import app
from annonorm.engine import Execution

runner = CliRunner()
VOC_FOLDER = Path(PEER_DATA or ".") / "voc_dataset" / "voc_dataset1"


def _write(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _records(dataset: Path, split: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (dataset / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()]


def _convert(*arguments: str) -> Any:
    return runner.invoke(app, ["convert", "coco", *arguments])


def _one_line_error(result: Any, code: int) -> str:
    assert result.exit_code == code, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


CATEGORIES = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]


# ------------------------------------------------------------------------------------ not COCO at all


@pytest.mark.skipif(not VOC_FOLDER.is_dir(), reason="peer data is missing (../shared/peer_data)")
def test_a_voc_folder_is_no_coco_annotations_not_an_empty_dataset(tmp_path: Path) -> None:
    line = _one_line_error(_convert(str(VOC_FOLDER), "-o", str(tmp_path / "out")), 2)
    assert "no COCO annotations here: expected annotations/instances_<split>.json" in line
    assert "Pascal VOC" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("content", "found"),
    [
        ({"foo": 1, "bar": []}, "found an object with the keys bar, foo"),
        ({}, "found an empty object"),
        ([1, 2, 3], "found an array of 3"),
        ("a string", 'found "a string"'),
        ({"version": "5.0", "shapes": [], "imagePath": "a.jpg"}, "(a LabelMe file?)"),
    ],
)
def test_json_that_is_not_a_coco_document_is_refused_saying_what_coco_is(
    tmp_path: Path, content: Any, found: str
) -> None:
    source = _write(tmp_path / "src" / "data.json", content)
    line = _one_line_error(_convert(str(source), "-o", str(tmp_path / "out")), 2)
    assert 'no COCO annotations here: expected a JSON object with an "images" array' in line
    assert found in line
    assert not (tmp_path / "out").exists()


def test_a_coco_file_without_any_image_is_refused(tmp_path: Path) -> None:
    source = _write(tmp_path / "src" / "instances_val.json", {"images": [], "annotations": [], "categories": []})
    line = _one_line_error(_convert(str(source), "-o", str(tmp_path / "out")), 2)
    assert 'no COCO annotations here: expected at least one entry in "images"' in line
    assert not (tmp_path / "out").exists()


RESULTS = [
    {"image_id": 1, "category_id": 1, "bbox": [1.0, 2.0, 3.0, 4.0], "score": 0.9},
    {"image_id": 1, "category_id": 2, "bbox": [5.0, 5.0, 2.0, 2.0], "score": 0.4},
]


def test_a_coco_results_list_is_named_and_pointed_at_the_coco_results_converter(tmp_path: Path) -> None:
    source = _write(tmp_path / "src" / "detections.json", RESULTS)
    line = _one_line_error(_convert(str(source), "-o", str(tmp_path / "out")), 2)
    assert "this is a COCO results list (2 entries" in line
    assert "annonorm convert coco-results FILE --gt INSTANCES.json" in line
    assert "not supported yet" not in line
    directory = _one_line_error(_convert(str(tmp_path / "src"), "-o", str(tmp_path / "out")), 2)
    assert "no COCO annotations here" in directory
    assert f"detections.json is a COCO results list: annonorm convert coco-results {source} --gt" in directory
    assert "not supported yet" not in directory
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------ not a regular file

_CONVERT = [sys.executable, "-m", "annonorm", "convert", "coco"]


def _subprocess(source: Path, out: Path) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(
        [*_CONVERT, str(source), "-o", str(out)], capture_output=True, text=True, timeout=60, env=environment
    )


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
@pytest.mark.parametrize("through_symlink", [False, True])
def test_a_fifo_as_the_coco_json_is_refused_before_reading(tmp_path: Path, through_symlink: bool) -> None:
    """Nobody writes into the FIFO: a reader that opened it would block, and the timeout would fire."""
    fifo = tmp_path / "instances_train.json"
    os.mkfifo(fifo)
    source = fifo
    if through_symlink:
        source = tmp_path / "link" / "instances_train.json"
        source.parent.mkdir()
        source.symlink_to(fifo)
    done = _subprocess(source, tmp_path / "out")
    assert done.returncode == 2, done.stderr
    assert "not a regular file (a FIFO)" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero here")
def test_dev_zero_through_a_symlink_is_refused_before_reading(tmp_path: Path) -> None:
    source = tmp_path / "src" / "instances_train.json"
    source.parent.mkdir()
    source.symlink_to("/dev/zero")
    done = _subprocess(source, tmp_path / "out")
    assert done.returncode == 2, done.stderr
    assert "not a regular file (a character device)" in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_or_folder_in_a_coco_layout_is_refused_naming_it(tmp_path: Path) -> None:
    layout = tmp_path / "src"
    (layout / "annotations").mkdir(parents=True)
    os.mkfifo(layout / "annotations" / "instances_train.json")
    done = _subprocess(layout, tmp_path / "out")
    assert done.returncode == 2, done.stderr
    assert "instances_train.json: the COCO JSON file is not a regular file (a FIFO)" in done.stderr
    (layout / "annotations" / "instances_train.json").unlink()
    (layout / "annotations" / "instances_train.json").mkdir()
    line = _one_line_error(_convert(str(layout), "-o", str(tmp_path / "out")), 2)
    assert "instances_train.json: the COCO JSON file is not a regular file (a directory)" in line


def test_a_socket_as_the_coco_json_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(str(path))
    except OSError:  # a path too long for a socket name
        pytest.skip("cannot bind a socket here")
    try:
        line = _one_line_error(_convert(str(path), "-o", str(tmp_path / "out")), 2)
    finally:
        server.close()
    assert "not a regular file (a socket)" in line


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_an_image_that_is_a_fifo_is_refused_when_its_size_must_be_read(tmp_path: Path) -> None:
    """Without width/height the image header is read: a FIFO there is refused, naming the image."""
    source = _write(
        tmp_path / "src" / "instances_train.json",
        {"images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"}], "categories": CATEGORIES},
    )
    os.mkfifo(source.parent / "a.jpg")
    Image.new("RGB", (7, 5)).save(source.parent / "b.jpg")
    done = subprocess.run(
        [*_CONVERT, str(source), "-o", str(tmp_path / "out"), "--on-error", "skip"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert done.returncode == 1, done.stderr
    assert "the image is not a regular file (a FIFO)" in done.stderr
    skipped = [json.loads(line) for line in (tmp_path / "out" / "skipped.jsonl").read_text().splitlines()]
    assert [(entry["image"], entry["location"]) for entry in skipped] == [("a.jpg", "images[0].file_name")]
    assert [(r["image"], r["width"], r["height"]) for r in _records(tmp_path / "out", "train")] == [("b.jpg", 7, 5)]


# ------------------------------------------------------------------------------------ skipped.jsonl


def _broken_document(images: int) -> dict[str, Any]:
    """``images`` good images with a polygon each, and one of each broken kind, at known places."""
    entries = [{"id": i, "file_name": f"img{i}.jpg", "width": 30, "height": 20} for i in range(images)]
    annotations = [
        {"id": i + 1, "image_id": i, "category_id": 1, "bbox": [1, 1, 5, 5], "segmentation": [[1, 1, 6, 1, 6, 6]]}
        for i in range(images)
    ]
    entries += [
        {"id": 100, "file_name": "wrong-category.jpg", "width": 30, "height": 20},
        {"id": 101, "file_name": "negative-box.jpg", "width": 30, "height": 20},
        {"id": 102, "file_name": "bad-polygon.jpg", "width": 30, "height": 20},
        {"id": 103, "file_name": "../outside.jpg", "width": 30, "height": 20},
        {"id": 104, "file_name": "zero-size.jpg", "width": 0, "height": 20},
    ]
    annotations += [
        {"id": 1001, "image_id": 100, "category_id": 9, "bbox": [1, 1, 2, 2]},
        {"id": 1002, "image_id": 101, "category_id": 1, "bbox": [1, 1, -2, 2]},
        {"id": 1003, "image_id": 102, "category_id": 2, "bbox": [1, 1, 2, 2], "segmentation": [[1, 2, "x", 4, 5, 6]]},
    ]
    return {"images": entries, "annotations": annotations, "categories": CATEGORIES}


@pytest.mark.parametrize(
    "arguments",
    [[], ["--workers", "2"], ["--no-masks"], ["--no-masks", "--workers", "2"]],
    ids=["inline", "mask-pool", "no-masks", "forked-records"],
)
def test_skipped_jsonl_names_the_image_of_every_entry(
    tmp_path: Path, arguments: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    good = 70  # enough masks for the render pool (coco.POOL_MIN_MASKS)
    # The forked record builders, without masks: every strategy goes parallel from 10 units.
    monkeypatch.setattr(
        annonorm.api, "convert", functools.partial(annonorm.api.convert, execution=Execution(min_parallel=10))
    )
    document = _broken_document(good)
    source = _write(tmp_path / "src" / "instances_train.json", document)
    result = _convert(str(source), "-o", str(tmp_path / "out"), "--on-error", "skip", *arguments)
    assert result.exit_code == 1, result.output
    skipped = [json.loads(line) for line in (tmp_path / "out" / "skipped.jsonl").read_text().splitlines()]
    expected = {
        ("wrong-category.jpg", f"annotations[{good}].category_id"),
        ("negative-box.jpg", f"annotations[{good + 1}].bbox"),
        ("../outside.jpg", f"images[{good + 3}].file_name"),
        ("zero-size.jpg", f"images[{good + 4}]"),
    }
    if "--no-masks" not in arguments:  # the polygon is read only when masks are drawn
        expected.add(("bad-polygon.jpg", f"annotations[{good + 2}].segmentation"))
    assert {(entry["image"], entry["location"]) for entry in skipped} == expected
    assert all(entry["file"] == str(source) for entry in skipped)
    kept = {record["image"] for record in _records(tmp_path / "out", "train")}
    assert kept == {f"img{i}.jpg" for i in range(good)} | ({"bad-polygon.jpg"} if "--no-masks" in arguments else set())


# ------------------------------------------------------------------------------------ odd image names

ODD_NAMES = [
    "new\nline.jpg",
    "emoji 😀🚗.jpg",
    "cafe\u0301 e\u0301te\u0301.jpg",  # combining acute accents, not precomposed
    "café été.jpg",  # precomposed: a different name from the one above
    "-rf.jpg",
    "--help",
    "sub/-dash/--x.png",
    "...",
    "....jpg",
    "..a.jpg",
    "x" * 251 + ".jpg",  # the mask's name would be 1 byte too long for the file system without shortening
    "deep/" + "y" * 254,  # a folder name at the limit, a file name without extension
]


def _odd_document(names: list[str]) -> dict[str, Any]:
    images = [{"id": i + 1, "file_name": name, "width": 40, "height": 30} for i, name in enumerate(names)]
    annotations = [
        {
            "id": 10 * (i + 1),
            "image_id": i + 1,
            "category_id": 1 + i % 2,
            "bbox": [i, 2, 10, 8],
            "iscrowd": 0,
            "area": 40.0,
            "segmentation": [[i, 2, i + 10, 2, i + 10, 10, i, 10]],
        }
        for i in range(len(names))
    ]
    return {"images": images, "annotations": annotations, "categories": CATEGORIES}


def test_odd_image_names_survive_convert_and_export_coco(tmp_path: Path) -> None:
    document = _odd_document(ODD_NAMES)
    source = _write(tmp_path / "src" / "instances_train.json", document)
    first = _convert(str(source), "-o", str(tmp_path / "ds"), "--masks", "png")
    assert first.exit_code == 0, first.output
    records = _records(tmp_path / "ds", "train")
    assert [r["image"] for r in records] == ODD_NAMES
    for record, annotation in zip(records, document["annotations"], strict=True):
        mask_file = tmp_path / "ds" / record["mask"]
        assert mask_file.is_file() and all(len(part.encode()) <= 255 for part in mask_file.parts)
        with Image.open(mask_file) as image:
            painted = np.asarray(image) == 1
        polygon = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(annotation["segmentation"], 30, 40)))
        assert np.array_equal(painted, polygon.astype(bool))
    assert len({r["mask"] for r in records}) == len(records)
    validated = runner.invoke(app, ["validate", str(tmp_path / "ds")])
    assert validated.exit_code == 0, validated.output
    exported = runner.invoke(app, ["export", "coco", str(tmp_path / "ds"), "-o", str(tmp_path / "back")])
    assert exported.exit_code == 0, exported.output
    back = json.loads((tmp_path / "back" / "annotations" / "instances_train.json").read_text(encoding="utf-8"))
    assert [image["file_name"] for image in back["images"]] == ODD_NAMES
    assert [image["id"] for image in back["images"]] == [image["id"] for image in document["images"]]
    for annotation, original in zip(back["annotations"], document["annotations"], strict=True):
        assert annotation["bbox"] == original["bbox"]
        decoded = mask_utils.decode(
            {"size": annotation["segmentation"]["size"], "counts": annotation["segmentation"]["counts"].encode()}
        )
        expected = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(original["segmentation"], 30, 40)))
        assert np.array_equal(decoded, expected)
    again = _convert(str(tmp_path / "back" / "annotations" / "instances_train.json"), "-o", str(tmp_path / "again"))
    assert again.exit_code == 0, again.output
    assert [r["image"] for r in _records(tmp_path / "again", "train")] == ODD_NAMES


REFUSED_NAMES = [
    (".", "names a folder, not an image file"),
    ("a/.", "names a folder, not an image file"),
    ("sub/", "names a folder, not an image file"),
    ("..", "must not climb out of its directory"),
    ("a/../../escape.jpg", "must not climb out of its directory"),
    ("/etc/passwd", "must be relative"),
    ("trailing-newline.jpg\n", "without surrounding spaces"),
    (" leading-space.jpg", "without surrounding spaces"),
    ("", "non-empty"),
]


@pytest.mark.parametrize(("name", "message"), REFUSED_NAMES)
def test_a_name_that_cannot_be_an_image_path_is_refused_naming_the_image(
    tmp_path: Path, name: str, message: str
) -> None:
    source = _write(tmp_path / "src" / "instances_train.json", _odd_document(["fine.jpg", name]))
    line = _one_line_error(_convert(str(source), "-o", str(tmp_path / "out")), 2)
    assert f"{source}:images[1].file_name:" in line
    assert message in line
    assert not (tmp_path / "out").exists()
    skipping = _convert(str(source), "-o", str(tmp_path / "out"), "--on-error", "skip")
    assert skipping.exit_code == 1, skipping.output
    (entry,) = [json.loads(line) for line in (tmp_path / "out" / "skipped.jsonl").read_text().splitlines()]
    assert (entry["image"], entry["location"]) == (name, "images[1].file_name")
    assert [r["image"] for r in _records(tmp_path / "out", "train")] == ["fine.jpg"]


# ------------------------------------------------------------------------------------ options left off


def test_an_option_left_off_the_command_line_is_not_given(tmp_path: Path) -> None:
    """No --masks/--no-masks: polygons are kept (the converter's own default), as with the Python API."""
    from annonorm.api import convert

    document = _odd_document(["a.jpg", "b.jpg"])
    source = _write(tmp_path / "src" / "instances_train.json", document)
    plain = _convert(str(source), "-o", str(tmp_path / "cli"))
    assert plain.exit_code == 0, plain.output
    convert("coco", source, tmp_path / "api")
    rings = [[float(v) for v in a["segmentation"][0]] for a in document["annotations"]]
    assert [r["boxes"][0]["polygon"] for r in _records(tmp_path / "cli", "train")] == [[ring] for ring in rings]
    assert all("mask" not in r for r in _records(tmp_path / "cli", "train"))
    assert (tmp_path / "cli" / "train.jsonl").read_bytes() == (tmp_path / "api" / "train.jsonl").read_bytes()
    png = _convert(str(source), "-o", str(tmp_path / "png"), "--masks", "png")
    assert png.exit_code == 0, png.output
    assert [r["mask"] for r in _records(tmp_path / "png", "train")] == ["masks/train/a.png", "masks/train/b.png"]
    for flags in (["--no-masks"], ["--masks", "none"]):
        off = _convert(str(source), "-o", str(tmp_path / "off"), *flags, "--force")
        assert off.exit_code == 0, off.output
        assert all("mask" not in r and "polygon" not in r["boxes"][0] for r in _records(tmp_path / "off", "train"))
        assert not (tmp_path / "off" / "masks").exists()
    bad = _convert(str(source), "-o", str(tmp_path / "bad"), "--masks", "raster")
    assert bad.exit_code == 2 and "expected one of vector, png, none" in bad.output


@pytest.mark.parametrize("options", [{}, {"masks": None}, {"masks": None, "workers": None}])
def test_the_reader_takes_an_option_not_given_as_its_default(tmp_path: Path, options: dict[str, Any]) -> None:
    """The CLI passes options the user did not type as None (or not at all): the vectors are still kept."""
    from annonorm.converters.base import ReadContext
    from annonorm.io import DatasetWriter

    source = _write(tmp_path / "src" / "instances_train.json", _odd_document(["a.jpg"]))
    (tmp_path / "out").mkdir()
    writer = DatasetWriter(tmp_path / "out")
    try:
        coco.CocoConverter().read(source, ReadContext(options=options, sink=writer, images=None))
    finally:
        writer.close()
    assert writer.mask_kind is None
    (record,) = _records(tmp_path / "out", "train")
    assert record["boxes"][0]["polygon"] == [[0.0, 2.0, 10.0, 2.0, 10.0, 10.0, 0.0, 10.0]] and "mask" not in record


# ------------------------------------------------------------------------------------ --no-masks, an alias


def test_no_masks_is_an_alias_of_masks_none_without_a_negated_twin(tmp_path: Path) -> None:
    """``--no-masks`` writes what ``--masks none`` writes; the help offers no ``--no-no-masks``, which is refused."""
    source = _write(
        tmp_path / "instances_train.json",
        {
            "images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}],
            "annotations": [
                {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4], "segmentation": [[1, 1, 5, 1, 5, 5]]}
            ],
            "categories": CATEGORIES,
        },
    )
    alias = _convert(str(source), "-o", str(tmp_path / "alias"), "--no-masks", "--quiet")
    spelled = _convert(str(source), "-o", str(tmp_path / "none"), "--masks", "none", "--quiet")
    vectors = _convert(str(source), "-o", str(tmp_path / "vector"), "--quiet")
    assert alias.exit_code == spelled.exit_code == vectors.exit_code == 0, alias.output + spelled.output
    assert (tmp_path / "alias" / "train.jsonl").read_bytes() == (tmp_path / "none" / "train.jsonl").read_bytes()
    assert "polygon" not in _records(tmp_path / "alias", "train")[0]["boxes"][0]
    assert "polygon" in _records(tmp_path / "vector", "train")[0]["boxes"][0]
    help_text = _convert("--help").output
    assert "--no-masks" in help_text and "--no-no-masks" not in help_text
    refused = _convert(str(source), "-o", str(tmp_path / "twin"), "--no-no-masks")
    assert refused.exit_code == 2 and not (tmp_path / "twin").exists()
