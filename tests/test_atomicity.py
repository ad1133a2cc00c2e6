"""An interrupted conversion leaves either no output or the complete previous one, never a partial dataset."""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from annonorm import fsutil
from annonorm.errors import OutputExistsError, UsageError
from annonorm.fsutil import (
    Interrupted,
    OutputError,
    atomic_file,
    atomic_output,
    check_overlap,
    install_interrupt_handlers,
)
from annonorm.validation import validate_dataset

IMAGES = 15_000


def write_coco(path: Path, images: int, offset: int = 0) -> Path:
    data = {
        "images": [{"id": i, "file_name": f"{i}.jpg", "width": 64, "height": 48} for i in range(images)],
        "categories": [{"id": 1, "name": "thing"}, {"id": 3, "name": "other"}],
        "annotations": [
            {
                "id": i,
                "image_id": i % images,
                "category_id": 1 + 2 * (i % 2),
                "bbox": [1, 2, 3 + offset, 4],
                "iscrowd": 0,
            }
            for i in range(images * 2)
        ],
    }
    path.write_text(json.dumps(data))
    return path


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def convert(source: Path, out: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "annonorm", "convert", "coco", str(source), "-o", str(out), "--force", "-q"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.parametrize("previous", [False, True], ids=["fresh", "replacing"])
def test_sigkill_at_any_point_leaves_nothing_or_the_previous_dataset(tmp_path: Path, previous: bool) -> None:
    source = write_coco(tmp_path / "big.json", IMAGES)
    out = tmp_path / "out"
    before: dict[str, bytes] | None = None
    if previous:
        small = write_coco(tmp_path / "small.json", 5, 1)
        assert convert(small, out).wait() == 0
        before = snapshot(out)
    # A full run, timed, tells where "several points" of the conversion are on this machine.
    started = time.perf_counter()
    finished = tmp_path / "finished"
    assert convert(source, finished).wait() == 0
    duration = time.perf_counter() - started
    complete = snapshot(finished)
    outcomes = set()
    for fraction in (0.1, 0.3, 0.5, 0.7, 0.85, 0.95):
        process = convert(source, out)
        time.sleep(duration * fraction)
        process.send_signal(signal.SIGKILL)
        process.wait()
        if not out.exists():
            assert not previous, "the previous dataset vanished"
            outcomes.add("nothing")
            continue
        state = snapshot(out)
        if state == before:
            outcomes.add("previous")
        else:
            assert state == complete, f"partial dataset after SIGKILL at {fraction:.0%}"
            assert validate_dataset(out).valid
            outcomes.add("complete")
            # the next kill must again leave this complete dataset or a new complete one
            before = state
        leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")]
        assert all(".annonorm-" in name for name in leftovers)  # only hidden temporaries, cleaned next run
    assert outcomes & {"nothing", "previous"}, f"no kill landed mid-conversion: {outcomes}"
    # a later run cleans the killed runs' temporaries
    assert convert(source, out).wait() == 0
    assert snapshot(out) == complete
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]
    assert os.listdir(out)


# ---------------------------------------------------------------------------------------------- atomic_output


def test_replacing_uses_an_atomic_exchange_so_the_output_never_disappears(tmp_path: Path) -> None:
    """With ``renameat2(RENAME_EXCHANGE)`` a reader polling OUT always finds a complete output."""
    out = tmp_path / "out"
    probe = tmp_path / "probe-a"
    probe.mkdir()
    (tmp_path / "probe-b").mkdir()
    if not fsutil._renameat2(probe, tmp_path / "probe-b", fsutil._RENAME_EXCHANGE):
        pytest.skip("no atomic exchange on this platform or file system")
    with atomic_output(out) as temporary:
        (temporary / "annonorm.json").write_text("0")
    missing: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            if not (out / "annonorm.json").is_file():
                missing.append(1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for round_ in range(1, 40):
            with atomic_output(out, force=True) as temporary:
                (temporary / "annonorm.json").write_text(str(round_))
                identity = temporary.stat().st_ino
            assert out.stat().st_ino == identity
    finally:
        stop.set()
        watcher.join()
    assert not missing, "the output was missing during a replacement"
    assert (out / "annonorm.json").read_text() == "39"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")] == []


def test_without_exchange_two_renames_replace_the_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fsutil, "_renameat2", lambda *args: False)
    out = tmp_path / "out"
    with atomic_output(out) as temporary:
        (temporary / "annonorm.json").write_text("old")
    with atomic_output(out, force=True) as temporary:
        (temporary / "annonorm.json").write_text("new")
    assert (out / "annonorm.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_failed_second_rename_puts_the_previous_output_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fsutil, "_renameat2", lambda *args: False)
    out = tmp_path / "out"
    with atomic_output(out) as temporary:
        (temporary / "annonorm.json").write_text("old")
    rename = os.rename

    def failing_rename(source: Any, target: Any) -> None:
        if Path(target) == out and ".annonorm-" in Path(source).name and "-old" not in Path(source).name:
            raise OSError(errno.EIO, "Input/output error")
        rename(source, target)

    monkeypatch.setattr(os, "rename", failing_rename)
    failure = "cannot move the output into place: Input/output error"
    with pytest.raises(OutputError, match=failure), atomic_output(out, force=True) as temporary:
        (temporary / "annonorm.json").write_text("new")
    assert (out / "annonorm.json").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_moved_aside_output_of_a_dead_run_is_put_back_when_out_is_missing(tmp_path: Path) -> None:
    aside = tmp_path / ".out.annonorm-999999999-old1234abcd"
    aside.mkdir()
    (aside / "annonorm.json").write_text("previous")
    with pytest.raises(OutputExistsError), atomic_output(tmp_path / "out"):
        pass
    assert (tmp_path / "out" / "annonorm.json").read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_moved_aside_output_is_deleted_when_its_replacement_completed(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "annonorm.json").write_text("new")
    for name in (
        ".out.annonorm-999999999-old1234abcd",
        ".out.annonorm-999999998-del99aa",
        ".out.annonorm-999999997-ab",
    ):
        (tmp_path / name).mkdir()
    with atomic_output(tmp_path / "out", force=True) as temporary:
        (temporary / "annonorm.json").write_text("newer")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_leftovers_of_a_living_process_are_kept(tmp_path: Path) -> None:
    alive = tmp_path / f".out.annonorm-{os.getppid()}-deadbeef"
    alive.mkdir()
    with atomic_output(tmp_path / "out"):
        pass
    assert alive.is_dir()


def test_a_second_writer_of_the_same_output_is_refused_at_once(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with atomic_output(out) as temporary:
        assert (tmp_path / ".out.annonorm-lock").is_file()
        for force in (False, True):
            refused = pytest.raises(OutputError, match=f"^another annonorm run is writing {re.escape(str(out))}$")
            with refused, atomic_output(out, force=force):
                pass
        (temporary / "annonorm.json").write_text("{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # the lock is gone too
    with pytest.raises(RuntimeError), atomic_output(out, force=True):
        raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_an_output_name_near_the_limit_keeps_its_helper_names_within_it(tmp_path: Path) -> None:
    out = tmp_path / ("n" * 250)
    with atomic_output(out) as temporary:
        assert len(temporary.name) <= 255
        (temporary / "annonorm.json").write_text("{}")
    with atomic_output(out, force=True) as temporary:
        (temporary / "annonorm.json").write_text("[]")
    assert (out / "annonorm.json").read_text() == "[]"
    assert [p.name for p in tmp_path.iterdir()] == [out.name]


def test_write_failures_inside_the_output_are_said_of_the_output(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(OutputError) as caught, atomic_output(out) as temporary:
        raise OSError(errno.ENOSPC, "No space left on device", str(temporary / "train.jsonl"))
    assert str(caught.value) == f"{out}: cannot write train.jsonl in the output: No space left on device"
    with pytest.raises(OutputError) as caught, atomic_output(out):
        raise OSError(errno.ENOSPC, "No space left on device")  # a buffered write names no file
    assert str(caught.value) == f"{out}: cannot write the output: No space left on device"
    with pytest.raises(PermissionError), atomic_output(out):  # an input's problem stays the input's
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "source.json"))
    assert list(tmp_path.iterdir()) == []


def test_overlap_check_takes_optional_and_nested_inputs(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    check_overlap(tmp_path / "out", [None, (tmp_path / "a", None), tmp_path / "missing"])
    for target in (tmp_path / "a", tmp_path / "a" / "b" / "c", tmp_path):
        with pytest.raises(UsageError, match="overlaps input"):
            check_overlap(target, [None, [str(tmp_path / "a" / "b")]])
    check_overlap(tmp_path / "ab", [tmp_path / "a"])  # a sibling whose name starts alike


def test_an_interrupt_during_the_move_into_place_waits_for_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    with atomic_output(out) as temporary:
        (temporary / "annonorm.json").write_text("old")
    move = fsutil._move_into_place

    def interrupted_move(temporary: Path, target: Path) -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # arrives while the output moves: handled once it is in place
        time.sleep(0.05)
        move(temporary, target)

    monkeypatch.setattr(fsutil, "_move_into_place", interrupted_move)
    restore = install_interrupt_handlers()
    try:
        with pytest.raises(Interrupted) as caught, atomic_output(out, force=True) as temporary:
            (temporary / "annonorm.json").write_text("new")
    finally:
        restore()
    assert caught.value.signum == signal.SIGTERM and caught.value.exit_code == 143
    assert (out / "annonorm.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_an_interrupt_during_the_work_removes_the_temporary_directory(tmp_path: Path) -> None:
    out = tmp_path / "out"
    restore = install_interrupt_handlers()
    try:
        with pytest.raises(Interrupted) as caught, atomic_output(out) as temporary:
            (temporary / "half").write_text("partial")
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(1)
    finally:
        restore()
    assert caught.value.exit_code == 129
    assert list(tmp_path.iterdir()) == []


def test_atomic_file_replaces_a_file_in_one_rename_and_refuses_what_it_must_not_touch(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "preview.png"
    with atomic_file(target) as temporary:
        assert temporary.suffix == ".png" and temporary.parent == target.parent
        temporary.write_bytes(b"one")
    with atomic_file(target) as temporary:
        temporary.write_bytes(b"two")
    assert target.read_bytes() == b"two"
    with pytest.raises(RuntimeError), atomic_file(target) as temporary:
        temporary.write_bytes(b"half")
        raise RuntimeError("boom")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["preview.png"]
    with pytest.raises(OutputError, match="is a directory"), atomic_file(tmp_path / "sub"):
        pass
    with pytest.raises(UsageError, match="overlaps input"), atomic_file(target, inputs=[target.parent]):
        pass
    with pytest.raises(OutputError) as caught, atomic_file(tmp_path / "new" / "p.png"):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert str(caught.value) == f"{tmp_path / 'new' / 'p.png'}: cannot write the output: No space left on device"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub"]  # the parent made for it is gone
