"""``annonorm merge|split|filter|remap`` run for real through the CLI, and the bad inputs they refuse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from annonorm.cli import app
from annonorm.records import make_record
from annonorm.testing import write_dataset

runner = CliRunner()


def _box(name: str, side: float = 20.0) -> dict[str, object]:
    return {"name": name, "x1": 1.0, "y1": 1.0, "x2": 1.0 + side, "y2": 1.0 + side}


@pytest.fixture
def two(tmp_path: Path) -> tuple[Path, Path]:
    a = write_dataset(
        tmp_path / "a",
        ["cat", "dog"],
        {
            "train": [
                make_record(image=f"{i}.jpg", width=50, height=50, boxes=[_box("cat"), _box("dog", 2)], id=i)
                for i in range(12)
            ]
        },
        image_root="../img/a",
    )
    b = write_dataset(
        tmp_path / "b",
        ["kitty", "car"],
        {
            "train": [
                make_record(image=f"{i}.jpg", width=50, height=50, boxes=[_box("kitty"), _box("car")], id=i)
                for i in range(8)
            ],
            "val": [make_record(image="v.jpg", width=50, height=50, boxes=[_box("car")])],
        },
        image_root="../img/b",
    )
    return a, b


def _run(*args: str | Path) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def test_merge_with_a_csv_map_split_filter_remap(two: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = two
    (tmp_path / "map.csv").write_text("old,new\nkitty,cat\n")
    code, out, err = _run("merge", a, b, "-o", tmp_path / "m", "--map", tmp_path / "map.csv")
    assert code == 0, err
    manifest = json.loads((tmp_path / "m" / "annonorm.json").read_text())
    assert [c["name"] for c in manifest["categories"]] == ["cat", "dog", "car"]
    assert manifest["image_root"] == "../img"
    assert [i["path"] for i in manifest["source"]["options"]["inputs"]] == ["../a", "../b"]
    assert all(len(i["fingerprint"]) > 0 for i in manifest["source"]["options"]["inputs"])
    lines = (tmp_path / "m" / "train.jsonl").read_text().splitlines()
    assert len(lines) == 20 and json.loads(lines[12])["image"] == "b/0.jpg"
    assert "train 20, val 1" in out

    code, _, err = _run(
        "split",
        tmp_path / "m",
        "-o",
        tmp_path / "s",
        "--ratios",
        "train=0.8,val=0.1,test=0.1",
        "--stratify",
        "--seed",
        "4",
    )
    assert code == 0, err
    listed = [(tmp_path / "s" / f"{n}.txt").read_text().splitlines() for n in ("train", "val", "test")]
    assert sorted(line for lines in listed for line in lines) == sorted(
        [f"a/{i}.jpg" for i in range(12)] + [f"b/{i}.jpg" for i in range(8)] + ["b/v.jpg"]
    )
    options = json.loads((tmp_path / "s" / "annonorm.json").read_text())["source"]["options"]
    assert options["strategy"] == "stratified" and options["seed"] == 4

    code, _, err = _run(
        "filter",
        tmp_path / "m",
        "-o",
        tmp_path / "f",
        "--drop-classes",
        "car",
        "--min-area",
        "10",
        "--drop-empty",
        "--split",
        "train",
    )
    assert code == 0, err
    records = [json.loads(x) for x in (tmp_path / "f" / "train.jsonl").read_text().splitlines()]
    assert all(r["labels"] == ["cat"] and r["counts"] == {"cat": 1} for r in records)  # dog boxes are 2x2 px
    assert list(json.loads((tmp_path / "f" / "annonorm.json").read_text())["splits"]) == ["train"]

    (tmp_path / "map.json").write_text('{"cat": "animal", "dog": "animal", "car": null}')
    code, _, err = _run("remap", tmp_path / "m", "-o", tmp_path / "r", "--map", tmp_path / "map.json")
    assert code == 0, err
    first = json.loads((tmp_path / "r" / "train.jsonl").read_text().splitlines()[0])
    assert first["counts"] == {"animal": 2} and first["labels"] == ["animal"]


def _refused(code: int, err: str, out: Path, expected_code: int, fragment: str) -> None:
    assert code == expected_code, err
    assert fragment in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]


def test_bad_inputs_are_one_line_and_write_nothing(two: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = two
    out = tmp_path / "out"
    _refused(*_run("merge", a, tmp_path / "nope", "-o", out)[::2], out, 2, "input dataset does not exist")
    (tmp_path / "bad.json").write_text('{"zebra": "x", "cat": null, "yak": null}')
    _refused(*_run("remap", a, "-o", out, "--map", tmp_path / "bad.json")[::2], out, 2, "zebra, yak")
    _refused(*_run("split", a, "-o", out, "--ratios", "train=0.8,val=0.3")[::2], out, 2, "must sum to 1")
    _refused(
        *_run("split", b, "-o", out, "--ratios", "train=0.5,val=0.5", "--group-by", "attribute:x")[::2],
        out,
        1,
        "no attribute 'x'",
    )
    tiny = write_dataset(tmp_path / "tiny", ["cat"], {"t": [make_record(image="1.jpg", width=5, height=5)]})
    _refused(*_run("split", tiny, "-o", out, "--ratios", "train=0.5,val=0.5")[::2], out, 1, "would get no image")
    _refused(*_run("filter", a, "-o", out, "--classes", "cat,emu")[::2], out, 2, "emu")


def test_duplicate_images_error_first_rename(tmp_path: Path) -> None:
    records = [make_record(image="x.jpg", width=9, height=9, boxes=[_box("cat", 3)])]
    a = write_dataset(tmp_path / "a", ["cat"], {"train": records}, image_root="../img")
    b = write_dataset(tmp_path / "b", ["cat"], {"train": records}, image_root="../img")
    out = tmp_path / "out"
    _refused(*_run("merge", a, b, "-o", out)[::2], out, 1, "duplicate image x.jpg in")
    assert _run("merge", a, b, "-o", tmp_path / "first", "--on-duplicate", "first")[0] == 0
    assert len((tmp_path / "first" / "train.jsonl").read_text().splitlines()) == 1
    assert _run("merge", a, b, "-o", tmp_path / "both", "--on-duplicate", "rename")[0] == 0
    images = [json.loads(x)["image"] for x in (tmp_path / "both" / "train.jsonl").read_text().splitlines()]
    assert images == ["x.jpg", "./x.jpg"]


def test_help_has_examples() -> None:
    for command in ("merge", "split", "filter", "remap"):
        code, out, _ = _run(command, "--help")
        assert code == 0 and f"annonorm {command}" in out
