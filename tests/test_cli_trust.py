"""What a new user hit on third-party data: options not given, class lists, forgotten image folders,
unknown format names, JSON that is only JSON. Each case goes through the command line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from annonorm.api import convert, export
from annonorm.cli import app
from annonorm.errors import ParseError, UsageError
from annonorm.sources.classlists import read_class_list
from annonorm.testing import write_dataset

runner = CliRunner()
SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
CLASSES = ["zebra", "apple", "moth", "kite"]


def _shapes_dataset(tmp_path: Path, count: int = 100) -> Path:
    """``count`` images (real JPEG files) with 1-3 boxes each over 3 of the 4 CLASSES (kite has no instance)."""
    images = tmp_path / "images"
    images.mkdir()
    records = []
    for index in range(count):
        width, height = 64 + index % 7, 48 + index % 5
        Image.new("RGB", (width, height), (index % 255, 40, 90)).save(images / f"img{index:03d}.jpg")
        boxes = [
            {"name": CLASSES[(index + k) % 3], "x1": 2 + k, "y1": 3 + k, "x2": 20 + 3 * k, "y2": 30 + k}
            for k in range(1 + index % 3)
        ]
        records.append({"image": f"img{index:03d}.jpg", "width": width, "height": height, "boxes": boxes})
    dataset = write_dataset(tmp_path / "ds", ["moth", "zebra", "apple"], {"train": records})
    manifest = json.loads((dataset / "annonorm.json").read_text())
    manifest["image_root"] = "../images"
    (dataset / "annonorm.json").write_text(json.dumps(manifest))
    return dataset


def _labels_by_image(dataset: Path) -> dict[str, list[int]]:
    """Image file name -> the integer labels of its boxes, computed from the files (not the converter)."""
    manifest = json.loads((dataset / "annonorm.json").read_text())
    ids = {c["name"]: c["id"] for c in manifest["categories"]}
    out: dict[str, list[int]] = {}
    for file_name in manifest["splits"].values():
        for line in (dataset / file_name).read_text().splitlines():
            record = json.loads(line)
            key = Path(record["image"]).name
            out[key] = sorted(ids[box["name"]] for box in record["boxes"])
    return out


def test_the_same_images_from_four_formats_get_the_same_label_ids_with_classes(tmp_path: Path) -> None:
    dataset = _shapes_dataset(tmp_path)
    class_file = tmp_path / "classes.txt"
    class_file.write_text("# the project's class list\n" + "\n".join(CLASSES) + "\n")
    images = tmp_path / "images"
    results = {}
    for format_name in ("coco", "voc", "yolo", "csv"):
        exported = export(format_name, dataset, tmp_path / f"as-{format_name}")
        out = tmp_path / f"back-{format_name}"
        arguments = [format_name, str(exported), "--images", str(images), "--classes", str(class_file)]
        done = runner.invoke(app, ["convert", *arguments, "-o", str(out)])
        assert done.exit_code == 0, (format_name, done.output)
        manifest = json.loads((out / "annonorm.json").read_text())
        assert [c["name"] for c in manifest["categories"]] == CLASSES  # listed order, kite kept without instances
        assert [c["id"] for c in manifest["categories"]] == [0, 1, 2, 3]
        results[format_name] = _labels_by_image(out)
    expected = {
        Path(r["image"]).name: sorted(CLASSES.index(b["name"]) for b in r["boxes"])
        for r in map(json.loads, (dataset / "train.jsonl").read_text().splitlines())
    }
    for format_name, labels in results.items():
        assert labels == expected, format_name


def test_classes_given_inline_fix_the_order_and_missing_ones_fail_naming_them(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = runner.invoke(app, ["convert", "coco", str(SAMPLE / "coco"), "-o", str(out), "--classes", "circle,square"])
    assert done.exit_code == 1
    assert "does not list: triangle" in done.output
    assert not out.exists()
    done = runner.invoke(
        app, ["convert", "coco", str(SAMPLE / "coco"), "-o", str(out), "--classes", "triangle, circle,square"]
    )
    assert done.exit_code == 0, done.output
    categories = json.loads((out / "annonorm.json").read_text())["categories"]
    assert [(c["id"], c["name"]) for c in categories] == [(0, "triangle"), (1, "circle"), (2, "square")]
    source = json.loads((SAMPLE / "coco/annotations/instances_train.json").read_text())["categories"]
    assert {c["name"]: c["source_id"] for c in categories} == {c["name"]: c["id"] for c in source}


def test_class_list_files_and_bad_lists(tmp_path: Path) -> None:
    yaml_file = tmp_path / "data.yaml"
    yaml_file.write_text("train: images\nnames:\n  0: b\n  1: a\n")
    assert read_class_list(yaml_file).names == ["b", "a"]
    meta = tmp_path / "dataset_meta.json"
    meta.write_text(json.dumps({"labels": ["car", "bike"]}))
    assert read_class_list(meta).names == ["car", "bike"]
    codes = tmp_path / "classes.csv"
    codes.write_text("LabelName,DisplayName\n/m/01,Car\n/m/02,Bike\n")
    listed = read_class_list(codes)
    assert listed.names == ["Car", "Bike"] and listed.codes == {"/m/01": "Car", "/m/02": "Bike"}
    assert read_class_list("x, y").names == ["x", "y"]
    with pytest.raises(UsageError, match="listed twice"):
        read_class_list("x,y,x")
    with pytest.raises(UsageError, match="no such class list file"):
        read_class_list("missing.txt")
    with pytest.raises(UsageError, match="no empty name"):
        read_class_list("x,,y")
    repeated = tmp_path / "twice.txt"
    repeated.write_text("a\nb\na\n")
    with pytest.raises(ParseError, match="listed twice"):
        read_class_list(repeated)


def test_dvc_stage_records_a_class_list_file_as_a_dependency(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("ruamel.yaml")
    repo = tmp_path / "repo"
    shutil.copytree(SAMPLE / "coco", repo / "coco")
    (repo / ".dvc").mkdir()
    monkeypatch.chdir(repo)
    (repo / "classes.txt").write_text("triangle\ncircle\nsquare\n")
    done = runner.invoke(
        app,
        ["dvc", "stage", "coco", str(repo / "coco"), "-o", str(repo / "out"), "--classes", str(repo / "classes.txt")],
    )
    assert done.exit_code == 0, done.output
    assert "--classes classes.txt" in done.output
    assert "classes.txt" in (repo / "dvc.yaml").read_text().split("deps:")[1]


# ---------------------------------------------------------------------------------------------- forgotten images


def test_a_forgotten_image_folder_is_a_warning_naming_the_root(tmp_path: Path) -> None:
    annotations = tmp_path / "annotations"
    shutil.copytree(SAMPLE / "coco" / "annotations", annotations)
    out = tmp_path / "out"
    done = runner.invoke(app, ["convert", "coco", str(annotations), "-o", str(out)])
    assert done.exit_code == 0, done.output
    assert "[images_not_found]" in done.output
    assert "name the image folder with --images DIR" in done.output
    as_json = runner.invoke(app, ["convert", "coco", str(annotations), "-o", str(out), "--force", "--format", "json"])
    assert as_json.exit_code == 0
    summary = json.loads(as_json.stdout)
    assert {w["code"] for w in summary["warnings"]} == {"images_not_found"}
    with_images = runner.invoke(
        app,
        ["convert", "coco", str(annotations), "-o", str(out), "--force", "--images", str(SAMPLE / "coco/images")],
    )
    assert with_images.exit_code == 0
    assert "images_not_found" not in with_images.output


def test_some_missing_images_are_counted(tmp_path: Path) -> None:
    images = tmp_path / "images"
    shutil.copytree(SAMPLE / "coco" / "images", images)
    removed = sorted(images.glob("train/*"))[0]
    removed.unlink()
    out = tmp_path / "out"
    done = runner.invoke(
        app, ["convert", "coco", str(SAMPLE / "coco" / "annotations"), "--images", str(images), "-o", str(out)]
    )
    assert done.exit_code == 0, done.output
    train_images = len(json.loads((SAMPLE / "coco/annotations/instances_train.json").read_text())["images"])
    assert f"1 of {train_images} sampled images of split train are missing" in done.output


# ---------------------------------------------------------------------------------------------- names and JSON


def test_unknown_format_names_are_listed_and_names_are_case_insensitive(tmp_path: Path) -> None:
    done = runner.invoke(app, ["convert", "foo", str(SAMPLE / "coco"), "-o", str(tmp_path / "x")])
    assert done.exit_code == 2
    assert "unknown format 'foo'; installed: coco, voc, csv, yolo" in done.output
    done = runner.invoke(app, ["convert", "COCO", str(SAMPLE / "coco"), "-o", str(tmp_path / "x")])
    assert done.exit_code == 0, done.output
    assert json.loads((tmp_path / "x" / "annonorm.json").read_text())["source"]["format"] == "coco"
    done = runner.invoke(app, ["export", "Yolo", str(tmp_path / "x"), "-o", str(tmp_path / "y")])
    assert done.exit_code == 0, done.output


def test_convert_auto_names_shapes_it_cannot_read_yet(tmp_path: Path) -> None:
    """A results list needs its ground truth, which auto cannot guess: the error names the command that reads it."""
    results = tmp_path / "detections.json"
    results.write_text(json.dumps([{"image_id": 1, "category_id": 2, "bbox": [1, 2, 3, 4], "score": 0.9}]))
    done = runner.invoke(app, ["convert", "auto", str(results), "-o", str(tmp_path / "never")])
    assert done.exit_code == 2
    assert "tried coco, voc, csv, yolo" in done.output
    assert "it looks like a COCO results (detections) list" in done.output
    assert "read it with annonorm convert coco-results FILE --gt INSTANCES.json" in done.output
    assert "cannot read yet" not in done.output
    assert not (tmp_path / "never").exists()


def test_convert_auto_reads_a_labelme_file_now_that_a_converter_reads_it(tmp_path: Path) -> None:
    """The LabelMe shape that used to be only named is now read: auto detection hands it to the labelme converter."""
    labelme = tmp_path / "frame.json"
    labelme.write_text(
        json.dumps(
            {
                "version": "5.0",
                "shapes": [],
                "imagePath": "frame.jpg",
                "imageData": None,
                "imageHeight": 4,
                "imageWidth": 6,
            }
        )
    )
    done = runner.invoke(app, ["convert", "auto", str(labelme), "-o", str(tmp_path / "out")])
    assert done.exit_code == 0, done.output
    assert "is in the labelme format" in done.output
    assert json.loads((tmp_path / "out" / "annonorm.json").read_text())["source"]["format"] == "labelme"


def test_format_json_writes_nothing_but_json(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", "from annonorm.cli import app; app()", "convert", "auto", str(SAMPLE / "coco"),
         "-o", str(tmp_path / "out"), "--format", "json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["format"] == "coco" and summary["detected"] is True
    assert done.stderr == ""


def test_boolean_options_not_typed_reach_the_converter_as_not_given(tmp_path: Path) -> None:
    """The CLI must not turn an untyped yes/no option into False: compare it with the Python API."""
    from annonorm import registry

    for name in registry.names():
        converter = registry.get(name)
        command = _command(name)
        for option in converter.read_options:
            parameter = next(p for p in command.params if p.name == option.name)
            assert parameter.default is None, (name, option.name)
    cli_out, api_out = tmp_path / "cli", tmp_path / "api"
    assert runner.invoke(app, ["convert", "coco", str(SAMPLE / "coco"), "-o", str(cli_out)]).exit_code == 0
    convert("coco", SAMPLE / "coco", api_out)
    for split in ("train", "val"):
        assert (cli_out / f"{split}.jsonl").read_bytes() == (api_out / f"{split}.jsonl").read_bytes()


def _command(name: str) -> object:
    from annonorm.cli.convert import convert_command

    return convert_command(name)


class _Recorder:
    def __init__(self) -> None:
        self.total: int | None = None
        self.done = 0

    def __call__(self, records: int) -> None:
        self.done += records

    def set_total(self, total: int) -> None:
        self.total = total


def test_export_reports_progress_against_a_known_total(tmp_path: Path) -> None:
    dataset = _shapes_dataset(tmp_path, count=600)
    recorder = _Recorder()
    export("coco", dataset, tmp_path / "coco", progress=recorder)
    lines = (dataset / "train.jsonl").read_bytes().count(b"\n")
    assert lines == 600
    # The COCO writer streams the split more than once; each pass grows the total, so the bar never overflows.
    assert recorder.total is not None and recorder.total % lines == 0
    assert recorder.done == recorder.total


@pytest.mark.parametrize("format_name", ["coco", "voc", "yolo"])
def test_convert_tells_the_progress_bar_its_total(tmp_path: Path, format_name: str) -> None:
    dataset = _shapes_dataset(tmp_path, count=30)
    exported = export(format_name, dataset, tmp_path / "exported")
    recorder = _Recorder()
    convert(format_name, exported, tmp_path / "back", images=tmp_path / "images", progress=recorder)
    assert recorder.total == 30
    assert recorder.done == 30
