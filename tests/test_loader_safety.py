"""What the loader refuses to read: inputs that are not regular files, image paths leaving ``image_root``.

Cases that could block (a FIFO) or never end (``/dev/zero``) run in a process of their own with a
timeout, so a regression fails the test instead of hanging the suite.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from annonorm.dataset import NormalizedDataset, SkippedRecordWarning
from annonorm.errors import AnnonormError, ParseError, UnsafePathError
from annonorm.testing import write_dataset


@pytest.fixture(autouse=True)
def user_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    directory = tmp_path / "user-cache"
    monkeypatch.setenv("ANNONORM_CACHE_DIR", str(directory))
    yield directory


def _record(image: str, **extra: Any) -> dict[str, Any]:
    return {"image": image, "width": 4, "height": 3, "labels": [], "counts": {}, "boxes": [], **extra}


def _dataset(directory: Path, images: list[str], *, image_root: str = ".", **kwargs: Any) -> Path:
    write_dataset(directory, ["cat"], {"train": [_record(name) for name in images]}, image_root=image_root, **kwargs)
    for name in images:
        path = directory / image_root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 3), "green").save(path, format="PNG")
    return directory


def _run(code: str, *args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "ANNONORM_CACHE_DIR": str(cache)},
    )


# ---------------------------------------------------------------------------- manifest and split files

_OPEN_EACH = """
import json, sys
from annonorm import NormalizedDataset
from annonorm.errors import AnnonormError
for name, path in json.loads(sys.argv[1]):
    try:
        NormalizedDataset(path, load_images=False)
        found = None
    except AnnonormError as exc:
        found = [type(exc).__name__, str(exc), exc.exit_code]
    print(json.dumps([name, found]), flush=True)
"""


def _socket_at(path: Path) -> socket.socket:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    return server


def test_manifest_and_split_files_that_are_not_regular_files_are_refused_before_reading(
    user_cache: Path,
) -> None:
    # A short base directory: a unix socket path is limited to about 100 bytes.
    with tempfile.TemporaryDirectory(prefix="an-") as base_name:
        base = Path(base_name)
        cases: list[tuple[str, str]] = []
        sockets = []

        def case(name: str, make: Any, *, target: str = "train.jsonl", open_path: str = "") -> None:
            directory = _dataset(base / name, ["a.png"])
            (directory / target).unlink()
            make(directory / target)
            cases.append((name, str(directory / open_path) if open_path else str(directory)))

        case("split-fifo", os.mkfifo)
        case("split-link-to-fifo", lambda p: (os.mkfifo(p.with_name("pipe")), p.symlink_to("pipe")))
        case("split-directory", Path.mkdir)
        case("split-dev-zero", lambda p: p.symlink_to("/dev/zero"))
        case("split-dev-urandom", lambda p: p.symlink_to("/dev/urandom"))
        case("split-socket", lambda p: sockets.append(_socket_at(p)))
        case("manifest-fifo", os.mkfifo, target="annonorm.json")
        case("manifest-directory", Path.mkdir, target="annonorm.json")
        case("manifest-dev-zero", lambda p: p.symlink_to("/dev/zero"), target="annonorm.json")
        case("manifest-named-fifo", os.mkfifo, target="annonorm.json", open_path="annonorm.json")
        try:
            done = _run(_OPEN_EACH, json.dumps(cases), cache=user_cache)
        finally:
            for server in sockets:
                server.close()
    assert done.returncode == 0, done.stderr
    results = dict(json.loads(line) for line in done.stdout.splitlines())
    assert set(results) == {name for name, _ in cases}
    for name, found in results.items():
        assert found is not None, f"{name}: opened"
        kind, message, exit_code = found
        assert (kind, exit_code) == ("ParseError", 2), (name, message)
        assert "not a regular file" in message, (name, message)
    assert "(a FIFO)" in results["split-fifo"][1] and "train.jsonl" in results["split-fifo"][1]
    assert "(a character device)" in results["split-dev-zero"][1]
    assert "(a directory)" in results["manifest-directory"][1]
    assert "(a socket)" in results["split-socket"][1]


def test_a_split_file_symlink_loop_is_an_error_naming_it(tmp_path: Path) -> None:
    directory = _dataset(tmp_path / "ds", ["a.png"])
    (directory / "train.jsonl").unlink()
    (directory / "train.jsonl").symlink_to("train.jsonl")
    with pytest.raises(ParseError, match="symbolic links") as caught:
        NormalizedDataset(directory)
    assert caught.value.file == str(directory / "train.jsonl")


# ------------------------------------------------------------------------------------ image and mask files

_LOAD_EACH = """
import json, sys
from annonorm import NormalizedDataset
from annonorm.errors import AnnonormError
directory, allow = sys.argv[1], sys.argv[2] == "allow"
ds = NormalizedDataset(directory, allow_outside_root=allow, masks=True)
for position in range(len(ds)):
    try:
        ds[position]
        found = None
    except AnnonormError as exc:
        found = [type(exc).__name__, exc.message, exc.location]
    print(json.dumps(found), flush=True)
"""


def test_images_and_masks_that_are_not_regular_files_are_errors_naming_the_record(
    tmp_path: Path, user_cache: Path
) -> None:
    names = ["fifo.png", "dir.png", "zero.png", "ok.png", "maskfifo.png"]
    directory = tmp_path / "ds"
    records = [_record(name, mask="m/fifo.png" if name == "maskfifo.png" else None) for name in names]
    for record in records:
        if record["mask"] is None:
            del record["mask"]
    write_dataset(directory, ["cat"], {"train": records}, mask_kind="semantic")
    for name in names:
        Image.new("RGB", (4, 3)).save(directory / name, format="PNG")
    (directory / "fifo.png").unlink()
    os.mkfifo(directory / "fifo.png")
    (directory / "dir.png").unlink()
    (directory / "dir.png").mkdir()
    (directory / "zero.png").unlink()
    (directory / "zero.png").symlink_to("/dev/zero")
    (directory / "m").mkdir()
    os.mkfifo(directory / "m" / "fifo.png")
    done = _run(_LOAD_EACH, str(directory), "allow", cache=user_cache)
    assert done.returncode == 0, done.stderr
    fifo, folder, zero, ok, mask = (json.loads(line) for line in done.stdout.splitlines())
    assert fifo == [
        "ParseError",
        f"record 0: the image {directory / 'fifo.png'} is not a regular file (a FIFO)",
        "line 1",
    ]
    assert folder[0] == "ParseError" and "record 1:" in folder[1] and "(a directory)" in folder[1]
    assert zero[0] == "ParseError" and "record 2:" in zero[1] and "(a character device)" in zero[1]
    assert ok is None
    assert mask == [
        "ParseError",
        f"record 4: the mask {directory / 'm' / 'fifo.png'} is not a regular file (a FIFO)",
        "line 5",
    ]
    # without allow_outside_root, /dev/zero is not even looked at: it is outside the image root
    done = _run(_LOAD_EACH, str(directory), "deny", cache=user_cache)
    assert json.loads(done.stdout.splitlines()[2])[0] == "UnsafePathError"


def test_on_missing_skip_skips_a_fifo_image(tmp_path: Path) -> None:
    directory = _dataset(tmp_path / "ds", ["a.png", "b.png"])
    (directory / "a.png").unlink()
    os.mkfifo(directory / "a.png")
    ds = NormalizedDataset(directory, on_missing="skip")
    with pytest.warns(SkippedRecordWarning, match="not a regular file"):
        image, _ = ds[0]
    assert image.size == (4, 3)


@pytest.mark.parametrize("load_images", [True, False])
def test_symlink_loops_are_errors_naming_the_record(tmp_path: Path, load_images: bool) -> None:
    directory = _dataset(tmp_path / "ds", ["ok.png", "img/loop.png", "cycle/a.png"])
    (directory / "img" / "loop.png").unlink()
    (directory / "img" / "loop.png").symlink_to("loop.png")
    (directory / "cycle" / "a.png").unlink()
    (directory / "cycle").rmdir()
    (directory / "cycle").symlink_to("other")
    (directory / "other").symlink_to("cycle")
    ds = NormalizedDataset(directory, load_images=load_images)
    for position, relative in ((1, "img/loop.png"), (2, "cycle/a.png")):
        with pytest.raises(ParseError) as caught:
            ds[position]
        assert isinstance(caught.value, AnnonormError)
        assert caught.value.message == f"record {position}: image path {relative!r} is a symlink loop"
        assert caught.value.file == str(directory / "train.jsonl")
        assert caught.value.location == f"line {position + 1}"
        with pytest.raises(ParseError, match="symlink loop"):
            ds.image_path(position)


def test_a_mask_symlink_loop_is_an_error_naming_the_record(tmp_path: Path) -> None:
    directory = tmp_path / "ds"
    write_dataset(directory, ["cat"], {"train": [_record("a.png", mask="m.png")]}, mask_kind="semantic")
    Image.new("RGB", (4, 3)).save(directory / "a.png")
    (directory / "m.png").symlink_to("m.png")
    with pytest.raises(ParseError) as caught:
        NormalizedDataset(directory, masks=True)[0]
    assert caught.value.message == "record 0: mask path 'm.png' is a symlink loop"
    assert caught.value.location == "line 1"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_an_unreadable_image_is_an_error_naming_the_record(tmp_path: Path) -> None:
    directory = _dataset(tmp_path / "ds", ["a.png"])
    (directory / "a.png").chmod(0)
    try:
        with pytest.raises(ParseError) as caught:
            NormalizedDataset(directory)[0]
        assert caught.value.message == f"record 0: cannot read the image {directory / 'a.png'}: Permission denied"
    finally:
        (directory / "a.png").chmod(0o644)


def test_an_image_below_a_file_is_an_error_naming_the_record(tmp_path: Path) -> None:
    directory = _dataset(tmp_path / "ds", ["a.png"])
    write_dataset(directory, ["cat"], {"train": [_record("a.png/b.png")]})
    with pytest.raises(ParseError) as caught:
        NormalizedDataset(directory)[0]
    assert caught.value.message == f"record 0: cannot read the image {directory / 'a.png' / 'b.png'}: Not a directory"


# ------------------------------------------------------------------------------------ image_root containment


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory beside the dataset holding a real image."""
    directory = tmp_path / "outside"
    directory.mkdir()
    Image.new("RGB", (4, 3), "red").save(directory / "x.png")
    return directory


def _links(directory: Path, outside: Path) -> dict[str, str]:
    """Symlinks inside the image root ``directory / "images"``, each record path -> what it does."""
    images = directory / "images"
    (images / "file.png").symlink_to(outside / "x.png")  # absolute target, outside
    (images / "relative.png").symlink_to("../../outside/x.png")  # relative target, outside
    (images / "dir").symlink_to(outside)  # a directory link: dir/x.png is outside
    (images / "hop.png").symlink_to("inner.png")  # a chain: inside, then outside
    (images / "inner.png").symlink_to(outside / "x.png")
    (images / "dangling.png").symlink_to(outside / "missing.png")  # points outside, at nothing
    (images / "sub").mkdir()
    (images / "sub" / "up.png").symlink_to("../../../outside/x.png")
    (images / "stay.png").symlink_to("real/ok.png")  # stays inside: followed
    return {
        "file.png": "out",
        "relative.png": "out",
        "dir/x.png": "out",
        "hop.png": "out",
        "dangling.png": "out",
        "sub/up.png": "out",
        "stay.png": "in",
        "real/ok.png": "in",
    }


@pytest.mark.parametrize("load_images", [True, False])
def test_symlinks_inside_the_image_root_that_point_outside_are_refused(
    tmp_path: Path, outside: Path, load_images: bool
) -> None:
    directory = tmp_path / "ds"
    write_dataset(directory, ["cat"], {"train": []}, image_root="images")
    (directory / "images" / "real").mkdir(parents=True)
    Image.new("RGB", (4, 3), "blue").save(directory / "images" / "real" / "ok.png")
    links = _links(directory, outside)
    write_dataset(directory, ["cat"], {"train": [_record(name) for name in links]}, image_root="images")
    ds = NormalizedDataset(directory, load_images=load_images)
    for position, (name, where) in enumerate(links.items()):
        if where == "out":
            with pytest.raises(UnsafePathError) as caught:
                ds[position]
            assert caught.value.message == (
                f"record {position}: image path {name!r} resolves outside {directory / 'images'}; "
                "pass allow_outside_root=True to allow it"
            )
            assert caught.value.location == f"line {position + 1}"
            with pytest.raises(UnsafePathError):
                ds.image_path(position)
        else:
            image, _ = ds[position]
            if load_images:
                assert image.getpixel((0, 0)) == (0, 0, 255)
            else:
                assert image == str(directory / "images" / name)
            assert ds.image_path(position) == directory / "images" / "real" / "ok.png"
    allowed = NormalizedDataset(directory, allow_outside_root=True)
    for position, (name, _) in enumerate(links.items()):
        if name != "dangling.png":
            assert allowed[position][0].size == (4, 3)


def test_a_symlinked_image_root_is_the_root(tmp_path: Path) -> None:
    """The root itself may be a link (images mounted elsewhere): containment is judged below its target."""
    real = tmp_path / "mounted"
    real.mkdir()
    Image.new("RGB", (4, 3), "blue").save(real / "a.png")
    directory = tmp_path / "ds"
    write_dataset(directory, ["cat"], {"train": [_record("a.png")]}, image_root="images")
    (directory / "images").symlink_to(real)
    assert NormalizedDataset(directory)[0][0].size == (4, 3)
    assert NormalizedDataset(directory).image_path(0) == real / "a.png"


def test_a_mask_symlink_leaving_the_dataset_is_refused_even_when_images_may_leave(
    tmp_path: Path, outside: Path
) -> None:
    directory = tmp_path / "ds"
    write_dataset(directory, ["cat"], {"train": [_record("a.png", mask="m.png")]}, mask_kind="semantic")
    Image.new("RGB", (4, 3)).save(directory / "a.png")
    Image.new("L", (4, 3)).save(outside / "m.png")
    (directory / "m.png").symlink_to(outside / "m.png")
    with pytest.raises(UnsafePathError, match="outside the dataset directory"):
        NormalizedDataset(directory, masks=True, allow_outside_root=True)[0]
