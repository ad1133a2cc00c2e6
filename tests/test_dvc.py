"""DVC integration, against real git and dvc in temporary repositories (no network).

The DVC tests are skipped when dvc is not installed (``pip install -e '.[dvc,test]'``); the
stale-source tests need no dvc.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from annonorm.api import convert
from annonorm.dvc import add_stage, open_revision, source_files, stage_name_for, stale_sources
from annonorm.errors import AnnonormError, ParseError, UsageError
from annonorm.io import open_dataset
from annonorm.testing import write_dataset

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
BIN = Path(sys.executable).parent


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture
def hermetic_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Environment shared by the subprocesses and the in-process dvc API: nothing global is touched."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "gitconfig").write_text("[user]\n\tname = annonorm tests\n\temail = tests@annonorm.invalid\n")
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    # DVC shares a site cache between processes; a stale entry from another test answers "up to date".
    monkeypatch.setenv("DVC_SITE_CACHE_DIR", str(tmp_path / "dvc-site-cache"))
    monkeypatch.setenv("DVC_GLOBAL_CONFIG_DIR", str(home / "dvc-global"))
    monkeypatch.setenv("DVC_SYSTEM_CONFIG_DIR", str(home / "dvc-system"))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / "gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("ANNONORM_CACHE_DIR", str(tmp_path / "annonorm-cache"))
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    return tmp_path


@pytest.fixture
def dvc_repo(hermetic_env: Path) -> Path:
    """A git + DVC repository with a local remote whose config is committed."""
    pytest.importorskip("dvc")
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = hermetic_env / "repo"
    repo.mkdir()
    _run(["git", "init", "-q", "-b", "main"], repo)
    _run(["dvc", "init", "-q"], repo)
    _run(["dvc", "remote", "add", "-d", "store", str(hermetic_env / "remote")], repo)
    # Committed before any data version is tagged: `dvc push --all-tags` reads each tag's config.
    _run(["git", "add", "-A"], repo)
    _run(["git", "commit", "-q", "-m", "dvc init"], repo)
    return repo


# ---------------------------------------------------------------------------------------------- stages


def _stage_entry(repo: Path, name: str) -> dict[str, Any]:
    from ruamel.yaml import YAML

    return dict(YAML(typ="safe").load((repo / "dvc.yaml").read_text())["stages"][name])


def test_repro_runs_the_stage_then_skips_it_until_an_annotation_changes(dvc_repo: Path) -> None:
    shutil.copytree(SAMPLE / "coco", dvc_repo / "src" / "coco")
    stage = add_stage("coco", dvc_repo / "src/coco", dvc_repo / "data/coco", options={"masks": "none"}, repo=dvc_repo)

    entry = _stage_entry(dvc_repo, "annonorm-coco-coco")
    assert entry["deps"] == ["src/coco/annotations/instances_train.json", "src/coco/annotations/instances_val.json"]
    assert entry["outs"] == ["data/coco"]
    assert entry["cmd"] == "annonorm convert coco src/coco -o data/coco --masks none --force --quiet"
    assert stage.created and stage.name == "annonorm-coco-coco"

    first = _run(["dvc", "repro"], dvc_repo)
    assert "Running stage 'annonorm-coco-coco'" in first.stdout
    manifest = json.loads((dvc_repo / "data/coco/annonorm.json").read_text())
    assert manifest["source"]["options"]["masks"] == "none"
    assert not (dvc_repo / "data/coco/masks").exists()
    written = (dvc_repo / "data/coco/train.jsonl").read_bytes()

    second = _run(["dvc", "repro"], dvc_repo)
    assert "Running stage" not in second.stdout
    assert "didn't change, skipping" in second.stdout

    # An image is not a dependency: touching one changes nothing.
    image = next((dvc_repo / "src/coco/images/train").iterdir())
    image.write_bytes(image.read_bytes() + b"\0")
    assert "Running stage" not in _run(["dvc", "repro"], dvc_repo).stdout

    # An annotation is: drop the first image's annotations and the stage runs again.
    annotations = dvc_repo / "src/coco/annotations/instances_train.json"
    document = json.loads(annotations.read_text())
    first_image = document["images"][0]["id"]
    document["annotations"] = [a for a in document["annotations"] if a["image_id"] != first_image]
    annotations.write_text(json.dumps(document))
    third = _run(["dvc", "repro"], dvc_repo)
    assert "Running stage 'annonorm-coco-coco'" in third.stdout
    rewritten = (dvc_repo / "data/coco/train.jsonl").read_bytes()
    assert rewritten != written
    assert json.loads(rewritten.splitlines()[0])["boxes"] == []


def test_stage_command_from_the_cli_in_a_subdirectory(dvc_repo: Path) -> None:
    shutil.copytree(SAMPLE / "csv", dvc_repo / "src" / "csv")
    (dvc_repo / "src" / "classes.txt").write_text("circle\nsquare\ntriangle\n")
    _run(
        [
            "annonorm",
            "dvc",
            "stage",
            "csv",
            "csv/annotations.csv",
            "-o",
            "../data/shapes",
            "--classes",
            "classes.txt",
            "--split",
            "val",
        ],
        dvc_repo / "src",
    )
    entry = _stage_entry(dvc_repo, "annonorm-csv-shapes")
    assert entry["deps"] == ["src/csv/annotations.csv", "src/classes.txt"]
    assert entry["cmd"] == (
        "annonorm convert csv src/csv/annotations.csv -o data/shapes --classes src/classes.txt --split val "
        "--force --quiet"
    )
    _run(["dvc", "repro"], dvc_repo)
    dataset = open_dataset(dvc_repo / "data/shapes")
    assert list(dataset.manifest.splits) == ["val"]
    assert dataset.manifest.category_names == ["circle", "square", "triangle"]


def test_add_stage_keeps_other_stages_and_comments_and_updates_its_own(hermetic_env: Path) -> None:
    pytest.importorskip("ruamel.yaml")
    repo = hermetic_env / "repo"
    (repo / ".dvc").mkdir(parents=True)
    shutil.copytree(SAMPLE / "voc", repo / "voc")
    (repo / "dvc.yaml").write_text(
        "# pipeline of the project\nstages:\n  train:\n    cmd: python train.py  # keep me\n    deps:\n    - data\n"
    )
    add_stage("voc", repo / "voc", repo / "data/voc", repo=repo)
    add_stage("voc", repo / "voc", repo / "data/voc", options={"masks": "semantic"}, repo=repo)

    text = (repo / "dvc.yaml").read_text()
    assert text.startswith("# pipeline of the project\n")
    assert "python train.py  # keep me" in text
    entry = _stage_entry(repo, "annonorm-voc-voc")
    assert entry["cmd"] == "annonorm convert voc voc -o data/voc --masks semantic --force --quiet"
    assert entry["deps"] == ["voc/Annotations", "voc/ImageSets", "voc/labelmap.txt", "voc/SegmentationClass"]
    assert text.count("annonorm-voc-voc:") == 1


def test_voc_source_files_follow_the_masks_option() -> None:
    root = SAMPLE / "voc"
    base = [root / "Annotations", root / "ImageSets", root / "labelmap.txt"]
    assert source_files("voc", root, {"masks": "auto"}) == [*base, root / "SegmentationObject"]
    assert source_files("voc", root, {"masks": "semantic"}) == [*base, root / "SegmentationClass"]
    assert source_files("voc", root, {"masks": "none"}) == base
    assert source_files("coco", SAMPLE / "coco/annotations/instances_val.json", {}) == [
        SAMPLE / "coco/annotations/instances_val.json"
    ]


def test_stage_names_are_what_dvc_accepts() -> None:
    assert stage_name_for("coco", Path("out/val 2017.v1")) == "annonorm-coco-val-2017-v1"


def test_add_stage_refuses_what_cannot_work(hermetic_env: Path) -> None:
    pytest.importorskip("ruamel.yaml")
    repo = hermetic_env / "repo"
    (repo / ".dvc").mkdir(parents=True)
    shutil.copytree(SAMPLE / "coco", repo / "coco")
    shutil.copytree(SAMPLE / "voc", repo / "voc")
    with pytest.raises(UsageError, match="outside the DVC repository"):
        add_stage("coco", repo / "coco", hermetic_env / "elsewhere", repo=repo)
    with pytest.raises(UsageError, match="overlaps the stage's dependency voc/Annotations"):
        add_stage("voc", repo / "voc", repo / "voc/Annotations/out", repo=repo)
    with pytest.raises(UsageError, match="no option 'colour'"):
        add_stage("coco", repo / "coco", repo / "out", options={"colour": "red"}, repo=repo)
    with pytest.raises(UsageError, match="not inside a DVC repository"):
        add_stage("coco", repo / "coco", repo / "out", repo=hermetic_env)
    with pytest.raises(ParseError, match="source does not exist"):
        add_stage("coco", repo / "nothing", repo / "out", repo=repo)
    (repo / "dvc.yaml").write_text("stages: [a, b]\n")
    with pytest.raises(ParseError, match="'stages' to be a mapping") as caught:
        add_stage("coco", repo / "coco", repo / "out", repo=repo)
    assert caught.value.file == str(repo / "dvc.yaml")
    assert not (repo / "out").exists()


# ---------------------------------------------------------------------------------------------- revisions


def _version(categories: list[str], boxes: int, image_prefix: str) -> dict[str, list[dict[str, Any]]]:
    records = []
    for index in range(3):
        box_list = [
            {"name": categories[k % len(categories)], "x1": 1.0 + k, "y1": 2.0, "x2": 10.0 + k, "y2": 12.5}
            for k in range(boxes)
        ]
        record = {"image": f"{image_prefix}{index}.jpg", "width": 32, "height": 24, "boxes": box_list}
        record["mask"] = f"masks/{image_prefix}{index}.png"
        records.append(record)
    return {"train": records[:2], "val": records[2:]}


def _write_version(dataset: Path, categories: list[str], splits: dict[str, list[dict[str, Any]]]) -> None:
    from PIL import Image

    from annonorm.converters.base import make_record

    shutil.rmtree(dataset, ignore_errors=True)
    canonical = {s: [make_record(**r) for r in records] for s, records in splits.items()}
    write_dataset(dataset, categories, canonical, image_root="../images", mask_kind="instance")
    for records in canonical.values():
        for record in records:
            mask = dataset / record["mask"]
            mask.parent.mkdir(parents=True, exist_ok=True)
            Image.new("L", (32, 24), len(record["boxes"])).save(mask)


def _records(dataset: Path) -> dict[str, list[dict[str, Any]]]:
    source = open_dataset(dataset)
    return {split: list(source.records(split)) for split in source.manifest.splits}


def test_two_tagged_versions_read_back_from_a_clone_through_the_remote(dvc_repo: Path, tmp_path: Path) -> None:
    from PIL import Image

    dataset = dvc_repo / "data" / "shapes"
    versions = {
        "v1": (["cat", "dog"], _version(["cat", "dog"], 1, "a")),
        "v2": (["cat", "dog", "bird"], _version(["bird", "dog"], 3, "b")),
    }
    expected = {}
    for tag, (categories, splits) in versions.items():
        _write_version(dataset, categories, splits)
        expected[tag] = (_records(dataset), (dataset / splits["train"][0]["mask"]).read_bytes())
        _run(["dvc", "add", "-q", "data/shapes"], dvc_repo)
        _run(["git", "add", "data/shapes.dvc", "data/.gitignore"], dvc_repo)
        _run(["git", "commit", "-q", "-m", f"data {tag}"], dvc_repo)
        _run(["git", "tag", tag], dvc_repo)
    _run(["dvc", "push", "-q", "--all-tags"], dvc_repo)
    clone = tmp_path / "clone"
    _run(["git", "clone", "-q", str(dvc_repo), str(clone)], tmp_path)
    assert not (clone / "data/shapes").exists()  # nothing checked out: all data must come from the remote
    (clone / "data/images").mkdir(parents=True)

    for tag, (categories, _) in versions.items():
        local = open_revision("data/shapes", rev=tag, repo=clone, remote="store")
        assert _records(local) == expected[tag][0]
        manifest = open_dataset(local).manifest
        assert manifest.category_names == categories
        mask_name = versions[tag][1]["train"][0]["mask"]
        assert (local / mask_name).read_bytes() == expected[tag][1]
        with Image.open(local / mask_name) as mask:
            assert mask.getpixel((0, 0)) == len(versions[tag][1]["train"][0]["boxes"])
        # Images are not versioned with the dataset: they are found in the clone's working tree.
        assert Path(manifest.image_root) == clone / "data" / "images"
        revision = json.loads((local / ".annonorm-revision.json").read_text())
        assert revision["rev"] == tag and len(revision["commit"]) == 40

    # The same commit is materialized once; the original repository (its own DVC cache) agrees.
    assert open_revision("data/shapes", rev="v1", repo=clone, remote="store") == open_revision(
        "data/shapes", rev="v1", repo=clone, remote="store"
    )
    assert _records(open_revision("data/shapes/annonorm.json", rev="v2", repo=dvc_repo)) == expected["v2"][0]


def test_open_revision_names_what_is_wrong(dvc_repo: Path) -> None:
    with pytest.raises(UsageError, match="unknown revision 'v9'"):
        open_revision("data/shapes", rev="v9", repo=dvc_repo)
    with pytest.raises(ParseError, match=r"no annonorm\.json at this revision") as caught:
        open_revision("data/none", rev="main", repo=dvc_repo)
    assert caught.value.file is not None and "main:data/none" in caught.value.file


def test_a_loader_reads_the_materialized_revision(dvc_repo: Path) -> None:
    import annonorm
    from annonorm.dataset import NormalizedDataset

    dataset = dvc_repo / "data" / "shapes"
    _write_version(dataset, ["cat", "dog"], _version(["cat", "dog"], 2, "a"))
    _run(["dvc", "add", "-q", "data/shapes"], dvc_repo)
    _run(["git", "add", "data/shapes.dvc", "data/.gitignore"], dvc_repo)
    _run(["git", "commit", "-q", "-m", "data"], dvc_repo)
    shutil.rmtree(dataset)  # only the DVC cache holds it now
    loaded = annonorm.open("data/shapes", "train", rev="HEAD", repo=dvc_repo, load_images=False)
    assert isinstance(loaded, NormalizedDataset)
    assert len(loaded) == 2
    _, target = loaded[1]
    assert target["boxes"].shape == (2, 4)
    # annonorm.load is the same entry; masks=True materializes the masks too.
    with_masks = annonorm.load("data/shapes", "train", rev="HEAD", repo=dvc_repo, load_images=False, masks=True)
    assert with_masks[1][1]["masks"].shape == (2, 24, 32)
    # The loader itself opens local directories only (it never reaches dvc).
    with pytest.raises(UsageError, match=r"annonorm\.open\(path, split, rev=\.\.\., repo=\.\.\.\)"):
        NormalizedDataset("data/shapes", "train", rev="HEAD", repo=dvc_repo)  # type: ignore[arg-type]


def _status_is_clean(repo: Path) -> None:
    """``dvc status`` reports nothing and ``git status --porcelain`` is empty."""
    assert json.loads(_run(["dvc", "status", "--json"], repo).stdout or "{}") == {}
    assert _run(["git", "status", "--porcelain", "--ignored=no", "--untracked-files=all"], repo).stdout == ""


def test_opening_and_reading_a_tracked_dataset_leaves_dvc_and_git_clean(
    dvc_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loader's index cache lives in the user's cache directory, never in a DVC-tracked dataset."""
    import annonorm
    from annonorm.dataset import NormalizedDataset

    # The default place, not an explicit ANNONORM_CACHE_DIR: $XDG_CACHE_HOME/annonorm (outside the repository).
    monkeypatch.delenv("ANNONORM_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(dvc_repo.parent / "xdg-cache"))
    from PIL import Image

    dataset = dvc_repo / "data" / "shapes"
    splits = _version(["cat", "dog"], 2, "a")
    _write_version(dataset, ["cat", "dog"], splits)
    images = dvc_repo / "data" / "images"
    images.mkdir(parents=True)
    for record in (*splits["train"], *splits["val"]):
        Image.new("RGB", (32, 24), "red").save(images / record["image"])
    _run(["dvc", "add", "-q", "data/shapes", "data/images"], dvc_repo)
    _run(["git", "add", "-A"], dvc_repo)
    _run(["git", "commit", "-q", "-m", "data"], dvc_repo)
    _status_is_clean(dvc_repo)

    for _ in range(2):  # the first open builds the index, the second maps the cached one
        opened = NormalizedDataset(dataset, masks=True)
        assert opened.split == "train" and len(opened) == 2
        for position in range(len(opened)):
            image, target = opened[position]
            assert image.size == (32, 24) and target["masks"].shape == (2, 24, 32)
        _status_is_clean(dvc_repo)
    assert opened.index_source == "cache"
    assert list((dvc_repo.parent / "xdg-cache" / "annonorm").glob("index-v*/*.idx"))
    for split in ("train", "val"):
        assert len(NormalizedDataset(dataset, split, load_images=False)) == len(splits[split])
    _status_is_clean(dvc_repo)

    # Opening the committed revision (materialized in the user's cache) leaves the repository clean too.
    monkeypatch.chdir(dvc_repo)
    at_head = annonorm.open("data/shapes", "val", rev="HEAD", masks=True)
    assert at_head[0][1]["masks"].shape == (2, 24, 32)
    _status_is_clean(dvc_repo)


# ---------------------------------------------------------------------------------------------- staleness


def test_stale_sources_reports_changed_and_missing_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    shutil.copytree(SAMPLE / "coco", tmp_path / "coco")
    convert("coco", Path("coco"), Path("out"), masks=False)
    assert stale_sources(tmp_path / "out") == []

    val = tmp_path / "coco/annotations/instances_val.json"
    val.write_bytes(val.read_bytes().replace(b'"shape"', b'"form"', 1))
    (tmp_path / "coco/annotations/instances_train.json").unlink()
    found = {Path(s.path).name: s for s in stale_sources(tmp_path / "out")}
    assert {name: s.status for name, s in found.items()} == {
        "instances_train.json": "missing",
        "instances_val.json": "changed",
    }
    assert found["instances_val.json"].current is not None
    assert found["instances_val.json"].recorded != found["instances_val.json"].current
    assert "changed since the conversion" in found["instances_val.json"].message


def test_stale_sources_of_a_dataset_without_provenance_is_empty(tmp_path: Path) -> None:
    write_dataset(tmp_path / "ds", ["a"], {"train": []})
    assert stale_sources(tmp_path / "ds") == []
    with pytest.raises(AnnonormError):
        stale_sources(tmp_path / "nothing")


def test_revisions_share_the_user_cache_directory_with_the_loader_index(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """One rule for the user cache: revisions go to ``revisions/`` under it, wherever it is configured."""
    from annonorm.dvc import default_cache_dir
    from annonorm.fsutil import user_cache_root

    monkeypatch.setenv("ANNONORM_CACHE_DIR", str(tmp_path / "configured"))
    assert default_cache_dir() == tmp_path / "configured" / "revisions"
    monkeypatch.delenv("ANNONORM_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == user_cache_root() / "revisions"
    assert default_cache_dir().is_relative_to(tmp_path / "xdg")


def test_a_merge_stage_from_the_cli_reruns_when_an_input_or_the_map_changes(dvc_repo: Path) -> None:
    """``annonorm dvc stage merge A B -o OUT --map MAP``: deps are both datasets and the map; `dvc repro` merges."""
    from annonorm.converters.base import make_record

    for name, category in (("a", "cat"), ("b", "kitty")):
        box = {"name": category, "x1": 1.0, "y1": 1.0, "x2": 4.0, "y2": 4.0}
        record = make_record(image=f"{name}.png", width=8, height=8, boxes=[box])
        write_dataset(dvc_repo / "data" / name, [category], {"train": [record]})
    (dvc_repo / "map.json").write_text('{"kitty": "cat"}')
    _run(["annonorm", "dvc", "stage", "merge", "data/a", "data/b", "-o", "data/ab", "--map", "map.json"], dvc_repo)
    entry = _stage_entry(dvc_repo, "annonorm-merge-ab")
    assert entry["deps"] == ["data/a", "data/b", "map.json"]
    assert entry["cmd"].startswith("annonorm merge data/a data/b -o data/ab --map map.json")
    _run(["dvc", "repro"], dvc_repo)
    merged = open_dataset(dvc_repo / "data" / "ab")
    assert merged.manifest.category_names == ["cat"]
    assert sorted(r["image"] for r in merged.records("train")) == ["a/a.png", "b/b.png"]
    assert {b["name"] for r in merged.records("train") for b in r["boxes"]} == {"cat"}
    assert "Running stage" not in _run(["dvc", "repro"], dvc_repo).stdout
    (dvc_repo / "map.json").write_text('{"kitty": "cat" }')
    assert "Running stage" in _run(["dvc", "repro"], dvc_repo).stdout
