"""The loader's public face: which split opens by itself, ``annonorm.torch`` without torch, ``dir(annonorm)``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import annonorm
from annonorm.dataset import NormalizedDataset, choose_split
from annonorm.errors import UsageError
from annonorm.testing import write_dataset

RECORD = {"image": "a.png", "width": 4, "height": 3, "labels": [], "counts": {}, "boxes": []}


@pytest.fixture(autouse=True)
def user_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    directory = tmp_path / "user-cache"
    monkeypatch.setenv("ANNONORM_CACHE_DIR", str(directory))
    yield directory


def _splits(directory: Path, *names: str) -> Path:
    """A dataset whose split ``name`` holds ``k + 1`` records, ``k`` its position in ``names``."""
    return write_dataset(directory, ["cat"], {name: [RECORD] * (k + 1) for k, name in enumerate(names)})


# ------------------------------------------------------------------------------------------ split choice


@pytest.mark.parametrize(
    ("names", "opened"),
    [(("val",), "val"), (("test",), "test"), (("train", "val"), "train"), (("val", "train", "test"), "train")],
)
def test_without_split_the_only_split_or_train_opens(tmp_path: Path, names: tuple[str, ...], opened: str) -> None:
    directory = _splits(tmp_path / "ds", *names)
    for dataset in (
        NormalizedDataset(directory, load_images=False),
        NormalizedDataset.open(directory, load_images=False),
        annonorm.load(directory, load_images=False),
        annonorm.open(directory, load_images=False),
    ):
        assert dataset.split == opened
        assert len(dataset) == names.index(opened) + 1


def test_several_splits_without_train_is_an_error_listing_them(tmp_path: Path) -> None:
    directory = _splits(tmp_path / "ds", "val", "test")
    for opener in (NormalizedDataset, annonorm.load):
        with pytest.raises(UsageError) as caught:
            opener(directory, load_images=False)
        assert caught.value.message == "dataset has splits val, test; name one with split=..."
        assert caught.value.exit_code == 2
        assert caught.value.file == str(directory / "annonorm.json")
    assert annonorm.load(directory, "test", load_images=False).split == "test"
    assert annonorm.load(directory, split="val", load_images=False).split == "val"


def test_a_named_split_that_does_not_exist_names_the_splits(tmp_path: Path) -> None:
    directory = _splits(tmp_path / "ds", "val", "test")
    with pytest.raises(UsageError, match="no split 'train'; this dataset has 'val', 'test'"):
        NormalizedDataset(directory, "train")


def test_choose_split_rules() -> None:
    assert choose_split(["a"], None) == "a"
    assert choose_split(["a", "train"], None) == "train"
    assert choose_split(["a", "b"], "b") == "b"
    with pytest.raises(UsageError, match=r"^dataset has splits a, b; name one with split=\.\.\.$"):
        choose_split(["a", "b"], None)


# ------------------------------------------------------------------------------------ opening at a revision


def test_annonorm_open_and_load_are_the_api_entry(tmp_path: Path) -> None:
    import annonorm.api

    assert annonorm.open is annonorm.load is annonorm.api.open_at_revision
    directory = _splits(tmp_path / "ds", "train", "val")
    opened = annonorm.api.open_at_revision(directory, "val", load_images=False)
    assert isinstance(opened, NormalizedDataset) and opened.split == "val" and len(opened) == 2


@pytest.mark.parametrize("keywords", [{"rev": "v1"}, {"repo": "."}, {"rev": "v1", "repo": ".", "remote": "store"}])
def test_the_dataset_itself_no_longer_opens_a_revision(tmp_path: Path, keywords: dict[str, str]) -> None:
    """``rev=`` moved to ``annonorm.open`` (in api), so the loader never reaches dvc."""
    directory = _splits(tmp_path / "ds", "train")
    with pytest.raises(UsageError, match=r"annonorm\.open\(path, split, rev=\.\.\., repo=\.\.\.\)"):
        NormalizedDataset(directory, **keywords)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=r"annonorm\.open\(path, split, rev="):
        NormalizedDataset.open(directory, **keywords)


# --------------------------------------------------------------------------------- annonorm.torch, no torch

_HIDE_TORCH = """
import importlib.abc, json, sys

mode = sys.argv[1]
if mode == "none":
    sys.modules["torch"] = None  # the usual way of hiding an installed package
else:
    class Blocker(importlib.abc.MetaPathFinder):  # as if torch were not installed at all
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None
    sys.meta_path.insert(0, Blocker())

from annonorm.errors import MissingDependency

results = {}
try:
    import annonorm.torch  # noqa: F401
except MissingDependency as exc:
    results["import"] = [type(exc).__name__, exc.message, exc.exit_code, exc.package, exc.extra]
try:
    from annonorm.torch import collate_fn  # noqa: F401
except MissingDependency as exc:
    results["from_import"] = exc.message

from annonorm import NormalizedDataset
try:
    NormalizedDataset(sys.argv[2], to_tensor=True)
except MissingDependency as exc:
    results["to_tensor"] = exc.message
NormalizedDataset(sys.argv[2], load_images=False)  # the numpy loader needs no torch
results["torch_loaded"] = "torch" in sys.modules and sys.modules["torch"] is not None
print(json.dumps(results))
"""


@pytest.mark.parametrize("mode", ["none", "blocked"])
def test_annonorm_torch_without_torch_says_what_to_install(tmp_path: Path, user_cache: Path, mode: str) -> None:
    directory = _splits(tmp_path / "ds", "train")
    done = subprocess.run(
        [sys.executable, "-c", _HIDE_TORCH, mode, str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "ANNONORM_CACHE_DIR": str(user_cache)},
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert results["import"] == [
        "MissingDependency",
        "annonorm.torch needs torch: pip install 'annonorm[torch]'",
        2,
        "torch",
        "torch",
    ]
    assert results["from_import"] == "annonorm.torch needs torch: pip install 'annonorm[torch]'"
    assert results["to_tensor"] == "to_tensor=True needs torch: pip install 'annonorm[torch]'"
    assert results["torch_loaded"] is False


# -------------------------------------------------------------------------------------------- dir(annonorm)


def test_dir_lists_the_public_api() -> None:
    listed = dir(annonorm)
    assert set(annonorm.__all__) <= set(listed)
    assert {"NormalizedDataset", "load", "open", "convert", "export", "validate", "AnnonormError"} <= set(listed)
    assert listed == sorted(listed)
    for name in listed:
        assert getattr(annonorm, name) is not None  # every name listed resolves


def test_dir_imports_nothing() -> None:
    code = (
        "import sys, annonorm; names = dir(annonorm); "
        "print(sorted(m for m in sys.modules if m.startswith(('annonorm.', 'torch', 'dvc'))), 'load' in names)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.split() == ["[]", "True"]
