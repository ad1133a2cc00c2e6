"""The CSV converter through the command line: presets, empty or foreign sources, skip reports, odd files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from typer.testing import CliRunner

from annonorm.api import convert
from annonorm.cli import app
from annonorm.converters.csvtable import PRESETS

runner = CliRunner()


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def image(path: Path, width: int, height: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height)).save(path)


def cli(*args: str | Path) -> Any:
    return runner.invoke(app, [str(a) for a in args])


def records(out: Path, split: str = "train") -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / f"{split}.jsonl").read_text().splitlines()]


def boxes(record: dict[str, Any]) -> list[tuple[str, float, float, float, float]]:
    return [(b["name"], b["x1"], b["y1"], b["x2"], b["y2"]) for b in record["boxes"]]


# ---------------------------------------------------------------------------------------------- presets


@dataclass
class PresetCase:
    """A small CSV in a preset's layout, its images (name -> size), and what each record must hold."""

    csv: str
    images: dict[str, tuple[int, int]]
    # image -> (width, height, labels, boxes as (name, x1, y1, x2, y2)), computed by hand
    expected: dict[str, tuple[int, int, list[str], list[tuple[str, float, float, float, float]]]]
    name: str = "t.csv"
    options: list[str] = field(default_factory=list)


PRESET_CASES: dict[str, PresetCase] = {
    "tensorflow": PresetCase(
        "filename,width,height,class,xmin,ymin,xmax,ymax\na.png,40,30,cat,1,2,11.5,12\na.png,40,30,dog,0,0,40,30\n",
        {"a.png": (40, 30)},
        {"a.png": (40, 30, ["cat", "dog"], [("cat", 1, 2, 11.5, 12), ("dog", 0, 0, 40, 30)])},
    ),
    "vott": PresetCase(
        "image,xmin,ymin,xmax,ymax,label\na.png,1,2,11.5,12,cat\nb.png,3,3,4,4,dog\n",
        {"a.png": (40, 30), "b.png": (8, 6)},
        {"a.png": (40, 30, ["cat"], [("cat", 1, 2, 11.5, 12)]), "b.png": (8, 6, ["dog"], [("dog", 3, 3, 4, 4)])},
        name="val-export.csv",
    ),
    "kaggle-det": PresetCase(
        # Kaggle's x1,y1,w,h: top-left corner plus size.
        "image_name,label_name,x1,y1,w,h\na.png,cat,1,2,10.5,10\n",
        {"a.png": (40, 30)},
        {"a.png": (40, 30, ["cat"], [("cat", 1, 2, 11.5, 12)])},
    ),
    "kaggle-cls": PresetCase(
        "image_name,label_name\na.png,cat\nb.png,dog\na.png,dog\n",
        {"a.png": (40, 30), "b.png": (8, 6)},
        {"a.png": (40, 30, ["cat", "dog"], []), "b.png": (8, 6, ["dog"], [])},
    ),
    "roboflow-multiclass": PresetCase(
        "filename,cat,dog\na.png,1,0\nb.png,1,1\n",
        {"a.png": (40, 30), "b.png": (8, 6)},
        {"a.png": (40, 30, ["cat"], []), "b.png": (8, 6, ["cat", "dog"], [])},
        name="_classes.csv",
    ),
    "open-images": PresetCase(
        # Fractions of the image side; images named by id, without an extension; confidence 0 = absent.
        "ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax\n"
        "a,xclick,/m/cat,1,0.25,0.5,0.1,0.9\n"
        "a,xclick,/m/dog,1,0,1,0.5,1\n"
        "b,xclick,/m/dog,0,0.5,0.75,0.5,0.75\n",
        {"a.jpg": (200, 100), "b.jpg": (8, 4)},
        {
            "a.jpg": (200, 100, ["/m/cat", "/m/dog"], [("/m/cat", 50, 10, 100, 90), ("/m/dog", 0, 50, 200, 100)]),
            "b.jpg": (8, 4, [], []),
        },
        name="oidv6-train-annotations-bbox.csv",
    ),
}


def test_every_preset_has_a_case() -> None:
    assert set(PRESET_CASES) == set(PRESETS)


def _cli_and_api(tmp_path: Path, case: PresetCase, preset: str, *options: str) -> tuple[Path, Path]:
    for name, (width, height) in case.images.items():
        image(tmp_path / "src" / name, width, height)
    source = write(tmp_path / "src" / case.name, case.csv)
    result = cli("convert", "csv", source, "-o", tmp_path / "cli", "--preset", preset, *options)
    assert result.exit_code == 0, result.output
    kwargs: dict[str, Any] = {}
    for flag in options:  # --normalized / --no-normalized, the only options these tests type
        kwargs["normalized"] = not flag.startswith("--no-")
    convert("csv", source, tmp_path / "api", preset=preset, **kwargs)
    return tmp_path / "cli", tmp_path / "api"


def _split_files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("*.jsonl"))}


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_each_preset_gives_the_same_dataset_through_the_cli_and_the_api(tmp_path: Path, preset: str) -> None:
    case = PRESET_CASES[preset]
    by_cli, by_api = _cli_and_api(tmp_path, case, preset)
    assert _split_files(by_cli) == _split_files(by_api)
    assert len(_split_files(by_cli)) == 1
    manifest = json.loads((by_cli / "annonorm.json").read_text())
    assert manifest == json.loads((by_api / "annonorm.json").read_text())
    (split,) = manifest["splits"]
    got = {r["image"]: (r["width"], r["height"], r["labels"], boxes(r)) for r in records(by_cli, split)}
    assert got == case.expected


def test_a_typed_normalized_flag_wins_over_the_preset_through_the_cli(tmp_path: Path) -> None:
    case = PRESET_CASES["open-images"]
    by_cli, by_api = _cli_and_api(tmp_path, case, "open-images", "--no-normalized")
    assert _split_files(by_cli) == _split_files(by_api)
    first = records(by_cli)[0]
    assert boxes(first) == [("/m/cat", 0.25, 0.1, 0.5, 0.9), ("/m/dog", 0, 0.5, 1, 1)]  # kept as written


def test_a_typed_normalized_flag_scales_a_preset_that_is_in_pixels(tmp_path: Path) -> None:
    case = PresetCase(
        "filename,width,height,class,xmin,ymin,xmax,ymax\na.png,40,30,cat,0.25,0.5,0.5,1\n", {"a.png": (40, 30)}, {}
    )
    by_cli, by_api = _cli_and_api(tmp_path, case, "tensorflow", "--normalized")
    assert _split_files(by_cli) == _split_files(by_api)
    assert boxes(records(by_cli)[0]) == [("cat", 10, 15, 20, 30)]


# ---------------------------------------------------------------------------------------------- not this format


TF_HEADER = "filename,width,height,class,xmin,ymin,xmax,ymax\n"


@pytest.mark.parametrize(
    ("files", "source", "found"),
    [
        ({"t.csv": TF_HEADER}, "t.csv", "no row under the header (filename, width"),
        ({"t.csv": TF_HEADER + "\n\n"}, "t.csv", "no row under the header"),
        ({"t.csv": "\n \n"}, "t.csv", "the file holds no row"),
        ({"t.csv": '{"images": [], "annotations": []}\n'}, "t.csv", "starting with '{' (JSON or XML)"),
        ({"t.csv": "<annotation><object/></annotation>\n"}, "t.csv", "starting with '<'"),
        ({"t.csv": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"}, "t.csv", "line 1 is not UTF-8 (byte 0x89"),
        ({"t.csv": (TF_HEADER + "a.jpg,8,6,cat,1,1,3,3\n").encode("utf-16")}, "t.csv", "UTF-16 text (NUL bytes)"),
        ({"t.csv": "just,some\nwords,here\n"}, "t.csv", "cannot tell the columns from the first row (just, some)"),
        ({"d/readme.txt": "hello\n", "d/sub.csv/x": ""}, "d", "no .csv file in this directory"),
        ({"d/train.csv": TF_HEADER, "d/val.csv": TF_HEADER}, "d", "its 2 .csv files have no data row"),
    ],
    ids=[
        "header only",
        "header and blank rows",
        "blank",
        "json",
        "xml",
        "png",
        "utf-16",
        "unknown columns",
        "folder without csv",
        "folder of headers",
    ],
)
def test_a_source_without_csv_annotations_exits_2_naming_it(
    tmp_path: Path, files: dict[str, str | bytes], source: str, found: str
) -> None:
    for name, text in files.items():
        write(tmp_path / name, text)
    result = cli("convert", "csv", tmp_path / source, "-o", tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert "no CSV annotations here: " in result.stderr
    assert found in result.stderr
    assert str(tmp_path / source) in result.stderr  # the file is named
    assert "expected " in result.stderr.split("no CSV annotations here: ")[1]
    assert not (tmp_path / "out").exists()
    assert "Traceback" not in result.output


def test_one_header_only_file_beside_a_file_with_rows_is_an_empty_split_not_an_error(tmp_path: Path) -> None:
    write(tmp_path / "d" / "train.csv", TF_HEADER + "a.jpg,10,10,cat,1,2,3,4\n")
    write(tmp_path / "d" / "val.csv", TF_HEADER)
    result = cli("convert", "csv", tmp_path / "d", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert [r["image"] for r in records(tmp_path / "out")] == ["a.jpg"]


# ---------------------------------------------------------------------------------------------- skipped report


def test_skip_report_names_the_source_image_of_every_problem(tmp_path: Path) -> None:
    # Rows of b are scattered (the two-pass reader), c's size changes between rows, d has a bad split name,
    # 000e is an Open Images style id without extension, and a is described again by another file.
    body = (
        "a.jpg,10,10,cat,1,2,3,4,train\n"
        "b.jpg,10,10,cat,1,x,3,4,train\n"
        "c.jpg,10,10,cat,1,2,3,4,train\n"
        "b.jpg,10,10,cat,1,2,3,4,train\n"
        "c.jpg,20,10,cat,1,2,3,4,train\n"
        "d.jpg,10,10,cat,1,2,3,4,no/split\n"
        "000e,10,10,cat,3,2,1,4,train\n"
        "f.jpg,10,10,cat,1,2,3,4,train\n"
    )
    header = TF_HEADER.replace("\n", ",part\n")
    write(tmp_path / "d" / "1.csv", header + body)
    write(tmp_path / "d" / "2.csv", header + "./a.jpg,10,10,dog,1,2,3,4,train\n")
    result = cli(
        "convert",
        "csv",
        tmp_path / "d",
        "-o",
        tmp_path / "out",
        "--on-error",
        "skip",
        "--preset",
        "tensorflow",
        "--column",
        "split=part",
    )
    assert result.exit_code == 1, result.output
    lines = [json.loads(line) for line in (tmp_path / "out" / "skipped.jsonl").read_text().splitlines()]
    assert [(line["image"], line["file"], line["location"]) for line in lines] == [
        ("b.jpg", str(tmp_path / "d" / "1.csv"), "row 3, column 'ymin'"),
        ("c.jpg", str(tmp_path / "d" / "1.csv"), "row 6, column 'width'"),
        ("d.jpg", str(tmp_path / "d" / "1.csv"), "row 7, column 'part'"),
        ("000e", str(tmp_path / "d" / "1.csv"), "row 8, column 'xmin'"),
        ("./a.jpg", str(tmp_path / "d" / "2.csv"), "row 2"),
    ]
    assert all(line["message"] for line in lines)
    assert [r["image"] for r in records(tmp_path / "out")] == ["a.jpg", "f.jpg"]


def test_skip_report_names_the_image_on_the_streaming_path(tmp_path: Path) -> None:
    # Every image's rows adjacent: one pass, column by column until a bad block.
    body = "".join(f"{i}.jpg,10,10,cat,1,2,3,4\n" for i in range(30)) + "bad.jpg,10,10,cat,1,2,3,nan\n"
    write(tmp_path / "t.csv", TF_HEADER + body)
    result = cli("convert", "csv", tmp_path / "t.csv", "-o", tmp_path / "out", "--on-error", "skip")
    assert result.exit_code == 1, result.output
    (line,) = [json.loads(x) for x in (tmp_path / "out" / "skipped.jsonl").read_text().splitlines()]
    assert (line["image"], line["location"]) == ("bad.jpg", "row 32, column 'ymax'")


# ---------------------------------------------------------------------------------------------- odd files


def _subprocess_convert(source: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "annonorm", "convert", "csv", str(source), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_a_fifo_as_the_csv_source_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "t.csv")
    done = _subprocess_convert(tmp_path / "t.csv", tmp_path / "out")
    assert done.returncode == 2, done.stderr
    assert "not a regular file" in done.stderr and str(tmp_path / "t.csv") in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_a_fifo_inside_a_csv_folder_is_refused_without_blocking(tmp_path: Path) -> None:
    write(tmp_path / "d" / "a.csv", TF_HEADER + "a.jpg,10,10,cat,1,2,3,4\n")
    os.mkfifo(tmp_path / "d" / "b.csv")
    done = _subprocess_convert(tmp_path / "d", tmp_path / "out")
    assert done.returncode == 2, done.stderr
    assert "not a regular file" in done.stderr and str(tmp_path / "d" / "b.csv") in done.stderr


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
def test_a_symlink_to_dev_zero_as_the_csv_source_is_refused(tmp_path: Path) -> None:
    (tmp_path / "t.csv").symlink_to("/dev/zero")
    done = _subprocess_convert(tmp_path / "t.csv", tmp_path / "out")  # a reader of /dev/zero would never end
    assert done.returncode == 2, done.stderr
    assert "not a regular file" in done.stderr and str(tmp_path / "t.csv") in done.stderr


# ---------------------------------------------------------------------------------------------- decimal commas


def test_decimal_commas_with_semicolons_read_open_images_fractions(tmp_path: Path) -> None:
    image(tmp_path / "a.jpg", 81, 50)
    source = write(
        tmp_path / "boxes.csv",
        "ImageID;Source;LabelName;Confidence;XMin;XMax;YMin;YMax\na;xclick;/m/cat;1;0,3580246914;0,5;0,1;1\n",
    )
    result = cli("convert", "csv", source, "-o", tmp_path / "out", "--preset", "open-images", "--decimal", ",")
    assert result.exit_code == 0, result.output
    (record,) = records(tmp_path / "out")
    # 0.3580246914 * 81 = 29.0000000034 -> 29.0 at 6 decimals; 0.5 * 81; 0.1 * 50; 1 * 50.
    assert boxes(record) == [("/m/cat", 29.0, 5.0, 40.5, 50.0)]
    convert("csv", source, tmp_path / "api", preset="open-images", decimal=",")
    assert _split_files(tmp_path / "api") == _split_files(tmp_path / "out")


def test_decimal_commas_in_quoted_cells_of_a_comma_table(tmp_path: Path) -> None:
    source = write(tmp_path / "t.csv", TF_HEADER + 'a.jpg,40,30,cat,"1,5",2,"11,25","1,2e1"\n')
    result = cli("convert", "csv", source, "-o", tmp_path / "out", "--decimal", ",")
    assert result.exit_code == 0, result.output
    assert boxes(records(tmp_path / "out")[0]) == [("cat", 1.5, 2.0, 11.25, 12.0)]


def test_decimal_commas_in_a_headerless_table_mapped_by_index(tmp_path: Path) -> None:
    # The first row's number cells read as numbers, so it is data, not a header.
    source = write(tmp_path / "t.csv", "a.jpg;cat;0,5;1;2,5;3\nb.jpg;dog;1;1;2;2\n")
    columns = [f"--column={role}={i}" for i, role in enumerate(["image", "label", "x1", "y1", "x2", "y2"])]
    result = cli("convert", "csv", source, "-o", tmp_path / "out", "--decimal", ",", *columns)
    assert result.exit_code == 0, result.output
    assert [boxes(r) for r in records(tmp_path / "out")] == [[("cat", 0.5, 1, 2.5, 3)], [("dog", 1, 1, 2, 2)]]


def test_decimal_commas_in_a_bbox_cell(tmp_path: Path) -> None:
    source = write(tmp_path / "t.csv", 'image_name,label_name,bbox\na.jpg,cat,"[0,5; 1; 2,5; 3]"\n')
    result = cli("convert", "csv", source, "-o", tmp_path / "out", "--decimal", ",")
    assert result.exit_code == 0, result.output
    assert boxes(records(tmp_path / "out")[0]) == [("cat", 0.5, 1, 2.5, 3)]


@pytest.mark.parametrize(
    ("text", "options", "message"),
    [
        (
            TF_HEADER.replace(",", ";") + "a.jpg;40;30;cat;0,35;1;2;3\n",
            [],
            "expected a number, found '0,35' (use --decimal , for decimal commas)",
        ),
        (
            TF_HEADER.replace(",", ";") + "a.jpg;40,0;30;cat;1;1;2;3\n",
            [],
            "found '40,0' (use --decimal , for decimal commas)",
        ),
        (
            'image_name,label_name,bbox\na.jpg,cat,"0,5 1 2,5 3"\n',
            [],
            "found 6 in the bbox cell '0,5 1 2,5 3' (use --decimal",
        ),
        (
            TF_HEADER.replace(",", ";") + "a.jpg;40;30;cat;0.35;1;2;3\n",
            ["--decimal", ","],
            "found '0.35' (--decimal , is given: expected a decimal comma)",
        ),
        (
            TF_HEADER.replace(",", ";") + "a.jpg;40;30;cat;1.000,5;1;2;3\n",
            ["--decimal", ","],
            "expected a number, found '1.000,5'",
        ),
    ],
)
def test_a_number_in_the_other_decimal_mark_is_refused_with_a_hint(
    tmp_path: Path, text: str, options: list[str], message: str
) -> None:
    source = write(tmp_path / "t.csv", text)
    result = cli("convert", "csv", source, "-o", tmp_path / "out", *options)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert f"{source}:row 2, column " in result.stderr


def test_decimal_option_refuses_other_marks(tmp_path: Path) -> None:
    source = write(tmp_path / "t.csv", TF_HEADER + "a.jpg,40,30,cat,1,1,2,3\n")
    result = cli("convert", "csv", source, "-o", tmp_path / "out", "--decimal", "'")
    assert result.exit_code == 2
    assert "expected one of ., ," in result.stderr
