"""The loader's index cache: where it lives, when it is fresh, and that it is checked, never trusted.

Every damaged cache must be rebuilt and give the same targets as an index built from the split file.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

import annonorm.index as loader
from annonorm.dataset import NormalizedDataset
from annonorm.errors import AnnonormError, InvalidDataError
from annonorm.index import write_cache
from annonorm.testing import write_dataset

CATEGORIES = ["cat", "dog", "bird"]
KEYPOINTS = {"cat": ["nose", "tail"]}


def _rle(height: int, width: int) -> dict[str, Any]:
    """A compressed COCO RLE of a small rectangle, made by pycocotools itself."""
    pixels = np.zeros((height, width), dtype=np.uint8, order="F")
    pixels[2:9, 3:11] = 1
    encoded = mask_utils.encode(pixels)
    return {"size": [height, width], "counts": encoded["counts"].decode("ascii")}


def _box(name: str, x1: float, y1: float, x2: float, y2: float, **attributes: Any) -> dict[str, Any]:
    box: dict[str, Any] = {"name": name, "x1": x1, "y1": y1, "x2": x2, "y2": y2}
    return {**box, "attributes": attributes} if attributes else box


RECORDS: list[dict[str, Any]] = [
    {
        "image": "img/a.png",
        "width": 40,
        "height": 30,
        "labels": ["cat", "dog"],
        "counts": {"cat": 1, "dog": 1},
        "boxes": [
            {
                **_box("cat", 1.5, 2.0, 10.25, 12.0, iscrowd=True, area=33.5),
                "rle": _rle(30, 40),
                "keypoints": [[2.0, 3.0, 2], [0.0, 0.0, 0]],
                "score": 0.75,
            },
            {
                **_box("dog", 0, 0, 4, 5),
                "polygon": [[0.0, 0.0, 4.0, 0.0, 4.0, 5.0], [0.5, 1, 1, 1, 1, 2]],
                "score": 1.0,
            },
        ],
        "mask": "masks/a.png",
        "id": 101,
    },
    {
        "image": "img/été.png",  # a non-ASCII path: the string table holds multi-byte characters
        "width": 40,
        "height": 30,
        "labels": ["bird", "cat"],
        "counts": {"bird": 1, "cat": 4},
        "boxes": [{**_box("bird", 3, 4, 30, 20), "score": 0.0}],
        "id": "b-image",
    },
    {"image": "img/c.png", "width": 16, "height": 8, "labels": ["dog"], "counts": {"dog": 2}, "boxes": [], "id": 7},
]


@pytest.fixture(autouse=True)
def user_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    directory = tmp_path / "user-cache"
    monkeypatch.setenv("ANNONORM_CACHE_DIR", str(directory))
    yield directory


def _dataset(directory: Path, records: list[dict[str, Any]] = RECORDS) -> Path:
    write_dataset(directory, CATEGORIES, {"train": records}, mask_kind="instance", keypoints=KEYPOINTS)
    for record in records:
        path = directory / record["image"]
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (record["width"], record["height"]), "red").save(path)
    return directory


def _index_files(user_cache: Path) -> list[Path]:
    return sorted((user_cache / f"index-v{loader.INDEX_VERSION}").glob("*.idx"))


def _the_index_file(user_cache: Path) -> Path:
    (found,) = _index_files(user_cache)
    return found


def _targets(ds: NormalizedDataset) -> list[dict[str, Any]]:
    out = []
    for position in range(len(ds)):
        target = ds.target(position)
        out.append({k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in target.items()})
        out[-1]["image"] = ds[position][0]
        out[-1]["line"] = ds.record_line(position)
    return out


def _reference(directory: Path) -> list[dict[str, Any]]:
    return _targets(NormalizedDataset(directory, "train", load_images=False, cache=False))


def _tree(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every entry below ``root``: (mode, size, mtime_ns); any write into the tree changes it."""
    found = {".": (root.stat().st_mode, 0, root.stat().st_mtime_ns)}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        found[str(path.relative_to(root))] = (info.st_mode, info.st_size, info.st_mtime_ns)
    return found


# ------------------------------------------------------------------------------------------------ where


def test_the_cache_lives_in_the_user_cache_and_opening_never_writes_into_the_dataset(
    tmp_path: Path, user_cache: Path
) -> None:
    directory = _dataset(tmp_path / "ds")
    before = _tree(directory)
    built = NormalizedDataset(directory, load_images=False)
    assert built.index_source == "built"
    assert _index_files(user_cache) and list((user_cache / "index-v3" / "stamps").glob("*.json"))
    cached = NormalizedDataset(directory, load_images=False)
    assert cached.index_source == "cache"
    assert _targets(cached) == _targets(built) == _reference(directory)
    for position in range(len(cached)):
        cached.image_path(position)
    assert _tree(directory) == before


def test_a_read_only_dataset_gets_a_cache(tmp_path: Path, user_cache: Path) -> None:
    directory = _dataset(tmp_path / "ds")
    directory.chmod(0o555)
    try:
        assert NormalizedDataset(directory, load_images=False).index_source == "built"
        assert NormalizedDataset(directory, load_images=False).index_source == "cache"
    finally:
        directory.chmod(0o755)


def test_the_cache_directory_is_private(tmp_path: Path, user_cache: Path) -> None:
    NormalizedDataset(_dataset(tmp_path / "ds"), load_images=False)
    assert (user_cache / "index-v3").stat().st_mode & 0o077 == 0
    assert _the_index_file(user_cache).stat().st_mode & 0o077 == 0


def test_cache_false_and_an_explicit_cache_directory(tmp_path: Path, user_cache: Path) -> None:
    directory = _dataset(tmp_path / "ds")
    assert NormalizedDataset(directory, cache=False).index_source == "memory"
    assert not user_cache.exists()
    chosen = tmp_path / "chosen"
    assert NormalizedDataset(directory, cache=chosen).index_source == "built"
    assert NormalizedDataset(directory, cache=str(chosen)).index_source == "cache"
    assert list((chosen / "index-v3").glob("*.idx")) and not user_cache.exists()


def test_cache_local_keeps_the_index_beside_the_split_files(tmp_path: Path, user_cache: Path) -> None:
    directory = _dataset(tmp_path / "ds")
    built = NormalizedDataset(directory, load_images=False, cache="local")
    assert built.index_source == "built" and _targets(built) == _reference(directory)
    assert NormalizedDataset(directory, load_images=False, cache="local").index_source == "cache"
    assert list((directory / ".annonorm-cache" / "index-v3").glob("*.idx")) and not user_cache.exists()


def test_no_writable_cache_keeps_the_index_in_memory(tmp_path: Path, user_cache: Path) -> None:
    directory = _dataset(tmp_path / "ds")
    user_cache.write_bytes(b"")  # a file where the cache directory should be
    with pytest.warns(UserWarning, match="no writable place"):
        ds = NormalizedDataset(directory, load_images=False)
    assert ds.index_source == "memory" and _targets(ds) == _reference(directory)
    assert not ds._index.boxes.flags.writeable
    restored = pickle.loads(pickle.dumps(ds))
    assert _targets(restored) == _reference(directory)


# ------------------------------------------------------------------------------------------- freshness


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Record every hashing of a split file (the freshness check that reads the whole file)."""
    calls: list[Path] = []
    real = loader._hash_file

    def spy(path: Path) -> str:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(loader, "_hash_file", spy)
    return calls


@pytest.fixture
def no_racy_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """Trust a stamp at once (the real window is 2 s after the file's last change)."""
    monkeypatch.setattr(loader, "_RACY_WINDOW_NS", -(10**12))


def test_a_stamp_spares_the_hash_only_when_size_mtime_ctime_and_inode_all_match(
    tmp_path: Path, hashes: list[Path], no_racy_window: None
) -> None:
    directory = _dataset(tmp_path / "ds")
    split = directory / "train.jsonl"
    assert NormalizedDataset(directory, load_images=False).index_source == "built"
    assert len(hashes) == 1
    assert NormalizedDataset(directory, load_images=False).index_source == "cache"
    assert len(hashes) == 1  # the stamp vouched for the file: not read again

    # the same size and the same mtime, other bytes: the ctime tells
    info = split.stat()
    split.write_bytes(split.read_bytes().replace(b'"id":101', b'"id":909'))
    os.utime(split, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert split.stat().st_size == info.st_size and split.stat().st_mtime_ns == info.st_mtime_ns
    ds = NormalizedDataset(directory, load_images=False)
    assert ds.index_source == "built" and ds.target(0)["image_id"] == 909
    assert len(hashes) == 2


def test_a_replaced_file_with_the_same_size_and_mtime_is_seen(tmp_path: Path, no_racy_window: None) -> None:
    directory = _dataset(tmp_path / "ds")
    split = directory / "train.jsonl"
    NormalizedDataset(directory, load_images=False)
    info = split.stat()
    other = directory / "other.jsonl"
    other.write_bytes(split.read_bytes().replace(b'"id":101', b'"id":202'))
    os.utime(other, ns=(info.st_atime_ns, info.st_mtime_ns))
    os.replace(other, split)
    ds = NormalizedDataset(directory, load_images=False)
    assert ds.index_source == "built" and ds.target(0)["image_id"] == 202


def test_a_recent_change_is_hashed_again_racy_clean(tmp_path: Path, hashes: list[Path]) -> None:
    directory = _dataset(tmp_path / "ds")
    NormalizedDataset(directory, load_images=False)
    assert NormalizedDataset(directory, load_images=False).index_source == "cache"
    assert len(hashes) == 2  # the file changed less than 2 s ago: its stamp is not trusted yet


def test_an_appended_split_is_rebuilt_and_the_old_index_removed(tmp_path: Path, user_cache: Path) -> None:
    directory = _dataset(tmp_path / "ds")
    NormalizedDataset(directory, load_images=False)
    first = _the_index_file(user_cache)
    with (directory / "train.jsonl").open("ab") as stream:
        stream.write(b'{"image": "img/a.png", "id": 55}\n')
    ds = NormalizedDataset(directory, load_images=False)
    assert ds.index_source == "built" and len(ds) == 4 and ds[3][1]["image_id"] == 55
    assert _the_index_file(user_cache) != first  # one index per content, the stale one gone


def test_a_touched_split_is_hashed_and_its_index_reused(tmp_path: Path, hashes: list[Path]) -> None:
    directory = _dataset(tmp_path / "ds")
    NormalizedDataset(directory, load_images=False)
    os.utime(directory / "train.jsonl", ns=(10**18, 10**18))
    assert NormalizedDataset(directory, load_images=False).index_source == "cache"
    assert len(hashes) == 2


def test_copies_of_a_split_share_one_index(tmp_path: Path, user_cache: Path) -> None:
    directory = _dataset(tmp_path / "ds")
    NormalizedDataset(directory, load_images=False)
    shutil.copytree(directory, tmp_path / "copy")
    copy = NormalizedDataset(tmp_path / "copy", load_images=False)
    assert copy.index_source == "cache" and len(_index_files(user_cache)) == 1
    assert copy[0][0] == str(tmp_path / "copy" / "img" / "a.png")


def test_a_category_change_invalidates_the_cache(tmp_path: Path) -> None:
    directory = _dataset(tmp_path / "ds")
    NormalizedDataset(directory, load_images=False)
    manifest = json.loads((directory / "annonorm.json").read_bytes())
    manifest["categories"] = [
        {"id": k, "name": n, **({"keypoints": KEYPOINTS[n]} if n in KEYPOINTS else {})}
        for k, n in enumerate(["bird", "dog", "cat"])
    ]
    (directory / "annonorm.json").write_text(json.dumps(manifest))
    ds = NormalizedDataset(directory, load_images=False)
    assert ds.index_source == "built" and ds.target(0)["labels"].tolist() == [2, 1]


def test_a_keypoint_names_change_invalidates_the_cache(tmp_path: Path) -> None:
    directory = _dataset(tmp_path / "ds")
    assert NormalizedDataset(directory, load_images=False).target(0)["keypoints"].shape == (2, 2, 3)
    manifest = json.loads((directory / "annonorm.json").read_bytes())
    manifest["categories"][0]["keypoints"] = ["nose", "tail", "ear"]
    (directory / "annonorm.json").write_text(json.dumps(manifest))
    with pytest.raises(InvalidDataError, match=r"boxes\[0\]\.keypoints: 2 keypoints where the category names 3"):
        NormalizedDataset(directory, load_images=False)  # the cached index was checked against 2 names


# --------------------------------------------------------------------------------- damage: the file itself

_PREFIX = struct.Struct("<16sIIQ")


def _layout(path: Path) -> tuple[int, dict[str, Any], int]:
    """The cache file's header length, header, and where its arrays start (the layout in dataset.py)."""
    data = path.read_bytes()
    _, _, _, length = _PREFIX.unpack_from(data)
    header = json.loads(data[_PREFIX.size : _PREFIX.size + length])
    return length, header, -(-(_PREFIX.size + length) // 64) * 64


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x5A
    path.write_bytes(bytes(data))


PARTS = ["magic", "layout version", "header checksum", "header length", "header", *loader._ARRAYS]


@pytest.mark.parametrize("part", PARTS)
def test_a_corrupt_byte_in_any_part_of_the_cache_file_rebuilds_it(
    tmp_path: Path, user_cache: Path, caplog: pytest.LogCaptureFixture, part: str
) -> None:
    directory = _dataset(tmp_path / "ds")
    NormalizedDataset(directory, load_images=False)
    cache = _the_index_file(user_cache)
    length, header, start = _layout(cache)
    offsets = {"magic": 3, "layout version": 16, "header checksum": 20, "header length": 24}
    if part in offsets:
        _flip(cache, offsets[part])
    elif part == "header":
        _flip(cache, _PREFIX.size + length // 2)
    else:
        dtype, shape, offset, _ = header["arrays"][part]
        assert np.prod(shape) > 0, "the test dataset must fill every array"
        _flip(cache, start + offset + int(np.prod(shape) * np.dtype(dtype).itemsize) - 1)
    with caplog.at_level(logging.WARNING, logger="annonorm.index"):
        ds = NormalizedDataset(directory, load_images=False)
    assert ds.index_source == "built"
    assert "rebuilding" in caplog.text
    assert _targets(ds) == _reference(directory)
    assert NormalizedDataset(directory, load_images=False).index_source == "cache"


@pytest.mark.parametrize("damage", ["truncated", "empty", "header cut", "garbage", "older layout"])
def test_a_truncated_or_foreign_cache_file_is_rebuilt(tmp_path: Path, user_cache: Path, damage: str) -> None:
    directory = _dataset(tmp_path / "ds")
    NormalizedDataset(directory, load_images=False)
    cache = _the_index_file(user_cache)
    data = cache.read_bytes()
    if damage == "truncated":
        cache.write_bytes(data[:-100])
    elif damage == "empty":
        cache.write_bytes(b"")
    elif damage == "header cut":
        cache.write_bytes(data[:40])
    elif damage == "garbage":
        cache.write_bytes(os.urandom(len(data)))
    else:
        cache.write_bytes(data[:16] + struct.pack("<I", 1) + data[20:])
    ds = NormalizedDataset(directory, load_images=False)
    assert ds.index_source == "built" and _targets(ds) == _reference(directory)


# ------------------------------------------------------------------------- damage: consistent checksums


def _forge(ds: NormalizedDataset, path: Path, change: str) -> None:
    """Rewrite the cache file with one array made wrong, through the real writer (checksums all right)."""
    arrays = {name: np.array(value) for name, value in ds._index.arrays.items()}
    if change == "decreasing offsets":
        arrays["box_offsets"] = np.array([0, 2, 1, 3], np.int64)
    elif change == "offsets past the end":
        arrays["label_offsets"][-1] += 5
    elif change == "label out of range":
        arrays["box_labels"][2] = 7
    elif change == "negative count id":
        arrays["count_ids"][0] = -1
    elif change == "NaN box":
        arrays["boxes"][1, 2] = np.nan
    elif change == "infinite box":
        arrays["boxes"][0, 3] = np.inf
    elif change == "negative coordinate":
        arrays["boxes"][0, 0] = -1
    elif change == "corners out of order":
        arrays["boxes"][0, 0] = 100
    elif change == "infinite area":
        arrays["box_area"][0] = np.inf
    elif change == "iscrowd 2":
        arrays["box_iscrowd"][0] = 2
    elif change == "negative side":
        arrays["sizes"][1, 0] = -40
    elif change == "one side only":
        arrays["sizes"][1, 1] = 0
    elif change == "lines not increasing":
        arrays["lines"][2] = 1
    elif change == "not UTF-8":
        arrays["image_bytes"][arrays["image_offsets"][1] + 5] = 0xFF
    elif change == "cut inside a character":
        arrays["image_offsets"][2] = arrays["image_offsets"][1] + 5  # "img/é" cut after the é's first byte
    elif change == "NUL in a path":
        arrays["mask_bytes"][0] = 0
    elif change == "empty image path":
        arrays["image_offsets"][1] = 0
    elif change == "wrong dtype":
        arrays["boxes"] = arrays["boxes"].astype(np.float64)
    elif change == "wrong shape":
        arrays["sizes"] = arrays["sizes"].reshape(-1)
    else:
        raise AssertionError(change)
    originals = dict(loader._ARRAYS)
    if change in ("wrong dtype", "wrong shape"):  # the writer follows the layout table: give it the forged one
        name = "boxes" if change == "wrong dtype" else "sizes"
        loader._ARRAYS[name] = (str(arrays[name].dtype), arrays[name].shape[1:])
    try:
        assert ds._index.expected is not None
        write_cache(path, arrays, ds._index.expected)
    finally:
        loader._ARRAYS.clear()
        loader._ARRAYS.update(originals)


FORGERIES = [
    "decreasing offsets",
    "offsets past the end",
    "label out of range",
    "negative count id",
    "NaN box",
    "infinite box",
    "negative coordinate",
    "corners out of order",
    "infinite area",
    "iscrowd 2",
    "negative side",
    "one side only",
    "lines not increasing",
    "not UTF-8",
    "cut inside a character",
    "NUL in a path",
    "empty image path",
    "wrong dtype",
    "wrong shape",
]


@pytest.mark.parametrize("change", FORGERIES)
def test_a_cache_with_good_checksums_but_wrong_contents_is_rebuilt(
    tmp_path: Path, user_cache: Path, caplog: pytest.LogCaptureFixture, change: str
) -> None:
    directory = _dataset(tmp_path / "ds")
    ds = NormalizedDataset(directory, load_images=False)
    cache = _the_index_file(user_cache)
    _forge(ds, cache, change)
    with caplog.at_level(logging.WARNING, logger="annonorm.index"):
        rebuilt = NormalizedDataset(directory, load_images=False)
    assert rebuilt.index_source == "built", change
    assert "is damaged" in caplog.text
    assert _targets(rebuilt) == _reference(directory)


def test_check_index_words_each_forgery(tmp_path: Path) -> None:
    ds = NormalizedDataset(_dataset(tmp_path / "ds"), load_images=False)
    assert loader.check_index(ds._index.arrays, len(CATEGORIES)) is None
    arrays = {name: np.array(value) for name, value in ds._index.arrays.items()}
    arrays["boxes"][1, 2] = np.nan
    assert loader.check_index(arrays, 3) == "boxes holds a coordinate that is not a finite number >= 0"
    arrays = {name: np.array(value) for name, value in ds._index.arrays.items()}
    arrays["image_offsets"][2] = arrays["image_offsets"][1] + 5
    assert loader.check_index(arrays, 3) == "image_bytes is cut inside a character"


# ------------------------------------------------------------------------------- damage: not a regular file

_OPEN_TWICE = """
import json, logging, sys
logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
from annonorm import NormalizedDataset
ds = NormalizedDataset(sys.argv[1], load_images=False)
print(json.dumps([ds.index_source, len(ds), ds.target(0)["image_id"]]))
"""


def _open_twice_elsewhere(directory: Path, user_cache: Path) -> subprocess.CompletedProcess[str]:
    """Open the dataset twice in a process of its own: a read of a FIFO would block it, not the suite."""
    return subprocess.run(
        [sys.executable, "-c", _OPEN_TWICE, str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "ANNONORM_CACHE_DIR": str(user_cache)},
    )


@pytest.mark.parametrize("kind", ["fifo", "directory", "symlink to /dev/zero", "symlink loop", "dangling symlink"])
def test_a_cache_file_that_is_not_a_regular_file_is_never_read(tmp_path: Path, user_cache: Path, kind: str) -> None:
    directory = _dataset(tmp_path / "ds")
    NormalizedDataset(directory, load_images=False)
    cache = _the_index_file(user_cache)
    cache.unlink()
    if kind == "fifo":
        os.mkfifo(cache)
    elif kind == "directory":
        cache.mkdir()
    elif kind == "symlink to /dev/zero":
        cache.symlink_to("/dev/zero")
    elif kind == "symlink loop":
        cache.symlink_to(cache.name)
    else:
        cache.symlink_to(tmp_path / "nowhere")
    done = _open_twice_elsewhere(directory, user_cache)
    assert done.returncode == 0, done.stderr
    source, records, first_id = json.loads(done.stdout)
    assert (records, first_id) == (3, 101)
    if kind == "directory":  # nothing can be renamed over a directory: the index stays in memory
        assert source == "memory" and "no writable place" in done.stderr
    else:
        assert source == "built" and "rebuilding" in done.stderr
        assert cache.is_file() and not cache.is_symlink()
    if kind in ("fifo", "symlink to /dev/zero"):
        assert "not a regular file" in done.stderr


def test_a_stamp_that_is_not_a_regular_file_is_ignored(tmp_path: Path, user_cache: Path) -> None:
    directory = _dataset(tmp_path / "ds")
    NormalizedDataset(directory, load_images=False)
    (stamp,) = (user_cache / "index-v3" / "stamps").glob("*.json")
    stamp.unlink()
    os.mkfifo(stamp)
    done = _open_twice_elsewhere(directory, user_cache)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0] == "cache"
    assert stamp.is_file()


# ------------------------------------------------------------------------------------- writers, pickling


def test_leftovers_of_dead_writers_are_removed(tmp_path: Path, user_cache: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    directory = _dataset(tmp_path / "ds")
    index = user_cache / "index-v3"
    index.mkdir(parents=True)
    leftover = index / f".x.idx.{int(dead.stdout)}-abc123.tmp"
    mine = index / f".x.idx.{os.getpid()}-abc123.tmp"
    leftover.write_bytes(b"half")
    mine.write_bytes(b"in progress")
    NormalizedDataset(directory, load_images=False)
    assert sorted(index.glob(".*.tmp")) == [mine]


def test_a_pickled_index_maps_the_checked_file_again(tmp_path: Path, user_cache: Path) -> None:
    directory = _dataset(tmp_path / "ds")
    ds = NormalizedDataset(directory, load_images=False)
    payload = pickle.dumps(ds)
    assert len(payload) < 4000
    assert _targets(pickle.loads(payload)) == _reference(directory)

    # an equivalent rebuild by another process (a new file): checked again, then used
    cache = _the_index_file(user_cache)
    assert ds._index.expected is not None
    write_cache(cache, ds._index.arrays, ds._index.expected)
    assert _targets(pickle.loads(payload)) == _reference(directory)

    # a damaged one, or none: the unpickling worker is told to open the dataset again
    _, header, start = _layout(cache)
    _flip(cache, start + header["arrays"]["boxes"][2])
    with pytest.raises(AnnonormError, match="open the dataset again"):
        pickle.loads(payload)
    cache.unlink()
    with pytest.raises(AnnonormError, match="open the dataset again"):
        pickle.loads(payload)
