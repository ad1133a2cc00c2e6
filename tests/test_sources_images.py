"""sources.images: folder listing, tree walking without following symlinked folders, image lookup by stem."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from annonorm.errors import ParseError
from annonorm.sources.images import (
    IMAGE_EXTENSIONS,
    IMAGE_SUFFIXES,
    find_image,
    images_by_stem,
    list_dir,
    walk_files,
)


def test_list_dir_sorts_by_name_and_treats_a_missing_folder_as_empty(tmp_path: Path) -> None:
    for name in ("b.txt", "a.txt", "c"):
        (tmp_path / name).touch()
    assert [e.name for e in list_dir(tmp_path)] == ["a.txt", "b.txt", "c"]
    assert list_dir(tmp_path / "missing") == []
    assert list_dir(tmp_path / "a.txt") == []  # not a folder


@pytest.mark.skipif(os.geteuid() == 0, reason="root lists any folder")
def test_list_dir_names_a_folder_it_cannot_list(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        with pytest.raises(ParseError, match="cannot list the folder") as caught:
            list_dir(locked)
        assert caught.value.file == locked
    finally:
        locked.chmod(0o755)


def test_walk_files_keys_by_relative_stem_and_skips_names(tmp_path: Path) -> None:
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    for name in ("a.txt", "sub/b.TXT", "sub/deeper/c.txt", "classes.txt", "d.xml", ".txt", "noext"):
        (tmp_path / name).touch()
    found = walk_files(tmp_path, {".txt"}, any_kind=True, skip={"classes.txt"})
    assert found == {
        "a": tmp_path / "a.txt",
        "sub/b": tmp_path / "sub" / "b.TXT",
        "sub/deeper/c": tmp_path / "sub" / "deeper" / "c.txt",
    }


def test_walk_files_does_not_follow_symlinked_folders(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").touch()
    (tmp_path / "loop").symlink_to(tmp_path, target_is_directory=True)
    assert walk_files(tmp_path, IMAGE_SUFFIXES, any_kind=False) == {"a": tmp_path / "a.jpg"}


def test_walk_files_keeps_special_files_only_when_asked(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "x.txt")
    (tmp_path / "y.txt").touch()
    assert set(walk_files(tmp_path, {".txt"}, any_kind=True)) == {"x", "y"}
    assert set(walk_files(tmp_path, {".txt"}, any_kind=False)) == {"y"}


def test_find_image_tries_prefixes_then_extensions_in_order(tmp_path: Path) -> None:
    (tmp_path / "train" / "images").mkdir(parents=True)
    (tmp_path / "train" / "images" / "x.png").touch()
    (tmp_path / "x.jpg").touch()
    assert find_image(tmp_path, ("train/", "train/images/", ""), "x") == "train/images/x.png"
    assert find_image(tmp_path, ("",), "x") == "x.jpg"
    (tmp_path / "x.jpeg").touch()
    assert find_image(tmp_path, ("",), "x") == "x.jpg"  # the most usual extension first
    assert find_image(tmp_path, ("",), "missing") is None


def test_find_image_wants_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "x.jpg").mkdir()
    assert find_image(tmp_path, ("",), "x") is None


def test_image_suffixes_are_the_extensions_in_lower_case() -> None:
    assert IMAGE_EXTENSIONS[0] == ".jpg"
    assert frozenset(e.lower() for e in IMAGE_EXTENSIONS) == IMAGE_SUFFIXES


def test_images_by_stem_prefers_the_usual_extension(tmp_path: Path) -> None:
    for name in ("a.png", "a.jpg", "b.PNG", "c.txt", "d.JPG", "d.jpg", ".jpg", "e.tiff", "e.gif"):
        (tmp_path / name).touch()
    assert images_by_stem(tmp_path) == {"a": "a.jpg", "b": "b.PNG", "d": "d.JPG", "e": "e.gif"}
    assert images_by_stem(tmp_path / "missing") == {}
