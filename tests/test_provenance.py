"""Provenance (annonorm.provenance): file and directory digests, the source registry, staleness and its stamps."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import annonorm.provenance as provenance
from annonorm.fsutil import user_cache_root
from annonorm.provenance import SourceRegistry, check_sources, directory_digest, file_sha256, source_digest
from annonorm.schemas.manifest import MANIFEST_FILE, Manifest
from annonorm.sink import DatasetWriter
from annonorm.testing import write_dataset
from annonorm.validation import validate_dataset

# ---------------------------------------------------------------------------------------------- digests


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def _expected_digest(files: dict[str, bytes]) -> str:
    """The documented rule, written out: SHA-256 over sorted ``path NUL size NUL sha256 LF`` lines."""
    digest = hashlib.sha256(b"annonorm directory digest v1\n")
    for relative in sorted(files, key=os.fsencode):
        data = files[relative]
        digest.update(f"{relative}\0{len(data)}\0{hashlib.sha256(data).hexdigest()}\n".encode())
    return digest.hexdigest()


FILES = {"b.xml": b"<b/>", "a.xml": b"<annotation/>", "sub/c.xml": b"<c></c>", "sub/deeper/d.txt": b""}


def test_a_directory_digest_is_the_sha256_of_its_sorted_path_size_sha256_list(tmp_path: Path) -> None:
    root = _tree(tmp_path / "Annotations", FILES)
    assert directory_digest(root) == _expected_digest(FILES) == source_digest(root)
    # The same files written in another order, elsewhere: the same digest.
    other = _tree(tmp_path / "copy", dict(reversed(FILES.items())))
    assert directory_digest(other) == directory_digest(root)
    assert source_digest(root / "a.xml") == file_sha256(root / "a.xml") == hashlib.sha256(b"<annotation/>").hexdigest()


@pytest.mark.parametrize("change", ["content", "added", "removed", "renamed", "emptied"])
def test_any_change_under_a_directory_changes_its_digest(tmp_path: Path, change: str) -> None:
    root = _tree(tmp_path / "Annotations", FILES)
    before = directory_digest(root)
    if change == "content":
        (root / "sub/c.xml").write_bytes(b"<c>1</c>")
    elif change == "added":
        (root / "sub/deeper/e.xml").write_bytes(b"")
    elif change == "removed":
        (root / "sub/deeper/d.txt").unlink()
    elif change == "renamed":
        (root / "b.xml").rename(root / "bb.xml")
    else:
        (root / "a.xml").write_bytes(b"")
    assert directory_digest(root) != before


def test_a_directory_digest_counts_regular_files_only(tmp_path: Path) -> None:
    root = _tree(tmp_path / "Annotations", FILES)
    before = directory_digest(root)
    elsewhere = _tree(tmp_path / "elsewhere", {"x.xml": b"x"})
    (root / "linked-dir").symlink_to(elsewhere, target_is_directory=True)  # not followed: no loop can form
    (root / "loop").symlink_to(root, target_is_directory=True)
    os.mkfifo(root / "fifo")  # never opened: hashing it would block
    (root / "empty-dir").mkdir()
    assert directory_digest(root) == before
    (root / "linked.xml").symlink_to(elsewhere / "x.xml")  # a symlink to a file counts as the file
    assert directory_digest(root) == _expected_digest({**FILES, "linked.xml": b"x"})


def test_an_empty_directory_and_an_empty_file_have_different_digests(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty.xml").write_bytes(b"")
    assert source_digest(tmp_path / "empty") != source_digest(tmp_path / "empty.xml")


def test_the_registry_digests_files_and_directories_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(provenance, "BACKGROUND_HASH_BYTES", 8)
    root = _tree(tmp_path / "Annotations", FILES)
    large = tmp_path / "instances.json"
    large.write_bytes(b"{}" * 100)
    registry = SourceRegistry()
    for path in (large, root, root / "a.xml"):
        registry.add(path)
    assert registry._thread is not None  # the large file is hashed in the background
    assert registry.digests() == [
        (large, file_sha256(large)),
        (root, _expected_digest(FILES)),
        (root / "a.xml", file_sha256(root / "a.xml")),
    ]
    registry.finish()
    assert registry._thread is None


def test_a_writer_records_a_directory_source_as_one_digest(tmp_path: Path) -> None:
    root = _tree(tmp_path / "Annotations", FILES)
    writer = DatasetWriter(tmp_path / "out")
    writer.add_source_file(root)
    writer.add_source_file(root / "a.xml")
    writer.close()
    assert writer.source_files == [root, root / "a.xml"]
    assert writer.source_hashes() == [(root, _expected_digest(FILES)), (root / "a.xml", file_sha256(root / "a.xml"))]


# ---------------------------------------------------------------------------------------------- staleness


def _digest(path: Path) -> str:
    """A source's digest by the documented rules (not by the code under test)."""
    if not path.is_dir():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    files = {p.relative_to(path).as_posix(): p.read_bytes() for p in path.rglob("*") if p.is_file()}
    return _expected_digest(files)


def _with_sources(dataset: Path, sources: list[Path]) -> Manifest:
    """Record ``sources`` (with their current digests) in the dataset's manifest, as convert does."""
    file = dataset / MANIFEST_FILE
    data = json.loads(file.read_text())
    data["source"] = {
        "format": "test",
        "converter": "annonorm test",
        "files": [{"path": os.path.relpath(p, dataset), "sha256": _digest(p)} for p in sources],
    }
    file.write_text(json.dumps(data))
    return Manifest.model_validate(data)


@pytest.fixture(autouse=True)
def user_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user cache directory of this test's own (the stamps go there)."""
    directory = tmp_path / "user-cache"
    monkeypatch.setenv("ANNONORM_CACHE_DIR", str(directory))
    return directory


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Path]]:
    """The files provenance hashes, in order (its file_sha256 counted)."""
    calls: list[Path] = []
    real = provenance.file_sha256

    def counting(path: Path) -> str:
        calls.append(Path(path))
        return real(path)

    monkeypatch.setattr(provenance, "file_sha256", counting)
    yield calls


@pytest.fixture
def no_racy_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """Trust a stamp taken right after a change (the real window is 2 s: a test would wait for it)."""
    monkeypatch.setattr(provenance, "RACY_WINDOW_NS", 0)


def _dataset_with_sources(tmp_path: Path) -> tuple[Path, Path, Path, Manifest]:
    record = {"image": "a.jpg", "width": 10, "height": 10, "labels": ["a"]}
    dataset = write_dataset(tmp_path / "ds", ["a"], {"train": [record]})
    single = tmp_path / "src" / "instances.json"
    single.parent.mkdir()
    single.write_bytes(b'{"images": []}')
    folder = _tree(
        tmp_path / "src" / "Annotations", {f"{n:03d}.xml": b"<annotation>%d</annotation>" % n for n in range(20)}
    )
    return dataset, single, folder, _with_sources(dataset, [single, folder])


def _tick() -> None:
    time.sleep(0.05)  # past the file system clock's tick, so a change shows in the ctime


def _same_size_and_mtime(path: Path, data: bytes) -> None:
    """Rewrite ``path`` in place with ``data`` (as long as before), its mtime put back as it was."""
    before = path.stat()
    assert len(data) == before.st_size
    path.write_bytes(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)


def test_untouched_sources_are_not_hashed_again(tmp_path: Path, hashed: list[Path], no_racy_window: None) -> None:
    dataset, _single, _folder, manifest = _dataset_with_sources(tmp_path)
    assert check_sources(manifest, dataset) == []
    assert len(hashed) == 21  # the file and the directory's 20 files, once
    hashed.clear()
    assert check_sources(manifest, dataset) == []
    assert validate_dataset(dataset).findings == []
    assert hashed == []  # their stamps vouch for them
    stamps = list((user_cache_root() / provenance.STAMP_DIR).glob("*.json"))
    assert stamps and all(p.parent.stat().st_mode & 0o077 == 0 for p in stamps)  # a private directory


def test_a_file_changed_with_its_size_and_mtime_kept_is_stale(
    tmp_path: Path, hashed: list[Path], no_racy_window: None
) -> None:
    dataset, single, folder, manifest = _dataset_with_sources(tmp_path)
    assert check_sources(manifest, dataset) == []
    _tick()
    _same_size_and_mtime(single, b'{"images": {}}')
    _same_size_and_mtime(folder / "007.xml", b"<annotation>8</annotation>")
    hashed.clear()
    found = check_sources(manifest, dataset)
    assert [(s.index, s.status, s.directory) for s in found] == [(0, "changed", False), (1, "changed", True)]
    assert found[0].message.startswith(f"source file {manifest.source.files[0].path} changed since the conversion")
    assert found[1].message.startswith(f"source directory {manifest.source.files[1].path} changed since")
    assert [p.resolve() for p in hashed] == [single, folder / "007.xml"]  # only the files whose ctime moved
    report = validate_dataset(dataset)
    assert [(f.code, f.key) for f in report.findings] == [
        ("source_changed", "source.files.0"),
        ("source_changed", "source.files.1"),
    ]


def test_a_file_replaced_by_another_with_the_same_size_and_mtime_is_hashed_again(
    tmp_path: Path, hashed: list[Path], no_racy_window: None
) -> None:
    dataset, single, _folder, manifest = _dataset_with_sources(tmp_path)
    assert check_sources(manifest, dataset) == []
    _tick()
    before = single.stat()
    for data in (single.read_bytes(), b'{"images": {}}'):  # the same bytes, then other bytes of the same size
        replacement = single.with_name("replacement")
        replacement.write_bytes(data)
        os.utime(replacement, ns=(before.st_atime_ns, before.st_mtime_ns))
        os.replace(replacement, single)
        assert single.stat().st_ino != before.st_ino
        assert (single.stat().st_size, single.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
        hashed.clear()
        found = check_sources(manifest, dataset)
        assert [p.resolve() for p in hashed] == [single]
        before = single.stat()
        _tick()
    assert [(s.index, s.status) for s in found] == [(0, "changed")]


def test_a_stamp_taken_within_the_racy_window_is_not_trusted(tmp_path: Path, hashed: list[Path]) -> None:
    """A file changed in the same clock tick as its stamp could keep its whole state: such a stamp never counts."""
    dataset, _single, _folder, manifest = _dataset_with_sources(tmp_path)
    for _ in range(2):
        hashed.clear()
        assert check_sources(manifest, dataset) == []
        assert len(hashed) == 21
    assert not (user_cache_root() / provenance.STAMP_DIR).exists()  # nothing worth keeping


def test_a_broken_stamp_file_is_ignored(tmp_path: Path, hashed: list[Path], no_racy_window: None) -> None:
    dataset, _single, _folder, manifest = _dataset_with_sources(tmp_path)
    check_sources(manifest, dataset)
    stamp_file = provenance.SourceStamps.for_dataset(dataset).file
    assert stamp_file is not None and stamp_file.is_file()
    for content in (b"not json", b'{"version": 1, "stamps": {"x": [1]}}', b'{"version": 99, "stamps": {}}'):
        stamp_file.write_bytes(content)
        hashed.clear()
        assert check_sources(manifest, dataset) == []
        assert len(hashed) == 21
    stamp_file.unlink()
    os.mkfifo(stamp_file)  # never opened for reading (it would block)
    hashed.clear()
    assert check_sources(manifest, dataset) == []
    assert len(hashed) == 21


def test_without_stamps_every_source_is_hashed_and_nothing_is_written(
    tmp_path: Path, hashed: list[Path], no_racy_window: None
) -> None:
    dataset, _single, _folder, manifest = _dataset_with_sources(tmp_path)
    for _ in range(2):
        hashed.clear()
        assert check_sources(manifest, dataset, stamps=False) == []
        assert len(hashed) == 21
    assert not (user_cache_root() / provenance.STAMP_DIR).exists()


def test_a_missing_directory_source_is_reported_missing(tmp_path: Path) -> None:
    dataset, _single, folder, manifest = _dataset_with_sources(tmp_path)
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()
    found = check_sources(manifest, dataset)
    assert [(s.index, s.status) for s in found] == [(1, "missing")]
    assert found[0].message == (
        f"source file {manifest.source.files[1].path} is not found; cannot tell whether the dataset is up to date"
    )


def test_a_manifest_of_v0_1_reads_and_checks_as_before(tmp_path: Path) -> None:
    """Files only, each a sha256 of its bytes: the entries a 0.1 conversion wrote are what provenance checks."""
    dataset = write_dataset(tmp_path / "ds", ["a"], {"train": []})
    source = tmp_path / "instances_val.json"
    source.write_bytes(b'{"images": []}')
    file = dataset / MANIFEST_FILE
    data = json.loads(file.read_text())
    data["source"] = {
        "format": "coco",
        "files": [{"path": "../instances_val.json", "sha256": hashlib.sha256(b'{"images": []}').hexdigest()}],
        "converter": "annonorm 0.1.0",
    }
    file.write_text(json.dumps(data))
    manifest = Manifest.model_validate(data)
    assert check_sources(manifest, dataset) == []
    source.write_bytes(b'{"images": {}}')
    assert [(s.path, s.status, s.directory) for s in check_sources(manifest, dataset)] == [
        ("../instances_val.json", "changed", False)
    ]
