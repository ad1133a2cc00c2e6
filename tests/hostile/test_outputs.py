"""The output side, tried as a careful user would: overlapping paths, --force, failing disks, a second run.

- ``-o`` equal to an input, inside one or containing one (symlinks and bind mounts resolved) is refused
  with one line, exit 2, with or without ``--force``, and the input is left byte for byte;
- ``--force`` replaces only a previous annonorm output (a converted dataset, or an export: every
  export carries a marker its format's readers do not see), never an arbitrary folder;
- a parent that is a file, a read-only location, a full disk, a name too long: one line, exit 2,
  nothing left beside ``-o``, and with ``--force`` the previous output byte for byte (real processes
  on real small file systems where this machine allows mounting them);
- the command line's edge: an ``OSError`` is one worded line, anything unexpected one "internal error"
  line, the traceback only with ``--debug``;
- a second run to the same ``-o`` fails at once; a replacement killed between its two renames is put
  back by the next run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from annonorm.cli import app
from annonorm.fsutil import EXPORT_MARKER
from annonorm.testing import write_dataset
from annonorm.validation import validate_dataset
from hostile.runs import (
    ANNONORM,
    assert_one_line,
    leftovers,
    previous_output,
    read_only_directory,
    run,
    snapshot,
    tmpfs,
    wait_for,
    write_coco,
)

runner = CliRunner()
SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"


def cli(*args: str) -> tuple[int, str]:
    """Run the command line in this process: exit code and stderr."""
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, result.stderr


def coco_folder(root: Path) -> Path:
    """A COCO folder as COCO ships it: ``annotations/instances_train.json`` and an image folder."""
    write_coco(root / "annotations" / "instances_train.json", 2)
    (root / "images").mkdir()
    return root


def dataset(root: Path) -> Path:
    record = {
        "image": "a.jpg",
        "width": 10,
        "height": 10,
        "boxes": [{"name": "cat", "x1": 1, "y1": 1, "x2": 5, "y2": 5}],
    }
    return write_dataset(root, ["cat"], {"train": [record]})


def mark_as_output(directory: Path) -> None:
    """Make ``directory`` look like a previous annonorm output, so --force alone would let it be replaced."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / EXPORT_MARKER).write_text("annonorm export coco\n")


# ---------------------------------------------------------------------------------------------- overlaps


OVERLAPS = {
    # name: (arguments after "convert coco", with {src} a COCO folder and {file} its annotation file)
    "equal_to_the_source_folder": ("{src}", "-o", "{src}", "--force"),
    "an_existing_folder_inside_the_source": ("{src}", "-o", "{src}/annotations", "--force"),
    "a_new_folder_inside_the_source": ("{src}", "-o", "{src}/normalized"),
    "the_folder_containing_the_source": ("{src}", "-o", "{root}", "--force"),
    "equal_to_the_source_file": ("{file}", "-o", "{file}", "--force"),
    "the_folder_containing_the_source_file": ("{file}", "-o", "{src}/annotations", "--force"),
    "inside_the_image_folder": ("{file}", "--images", "{src}/images", "-o", "{src}/images/out"),
    "equal_to_the_image_folder": ("{file}", "--images", "{src}/images", "-o", "{src}/images", "--force"),
    "a_symlink_to_the_source": ("{src}", "-o", "{root}/link", "--force"),
    "inside_the_source_through_a_symlink": ("{src}", "-o", "{root}/link/out"),
}


@pytest.mark.parametrize("args", OVERLAPS.values(), ids=OVERLAPS.keys())
def test_output_overlapping_a_convert_input_is_refused_before_anything_is_written(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    root = tmp_path / "root"
    src = coco_folder(root / "src")
    (root / "link").symlink_to(src)
    for directory in (root, src / "annotations", src / "images"):
        mark_as_output(directory)  # --force alone would allow replacing them: the overlap rule must refuse
    fill = {"{src}": str(src), "{file}": str(src / "annotations" / "instances_train.json"), "{root}": str(root)}
    argv = list(args)
    for key, value in fill.items():
        argv = [arg.replace(key, value) for arg in argv]
    before = snapshot(tmp_path)
    code, stderr = cli("convert", "coco", *argv)
    assert code == 2
    line = assert_one_line(stderr, "overlaps input")
    assert line.endswith("; choose another -o")
    assert snapshot(tmp_path) == before, "something was written"


EXPORT_OVERLAPS = {
    "equal_to_the_dataset": ("{ds}", "--force"),
    "inside_the_dataset": ("{ds}/coco",),
    "containing_the_dataset": ("{root}", "--force"),
    "the_dataset_through_a_symlink": ("{root}/link", "--force"),
}


@pytest.mark.parametrize("args", EXPORT_OVERLAPS.values(), ids=EXPORT_OVERLAPS.keys())
def test_export_output_overlapping_the_dataset_is_refused(tmp_path: Path, args: tuple[str, ...]) -> None:
    root = tmp_path / "root"
    ds = dataset(root / "ds")
    mark_as_output(root)
    (root / "link").symlink_to(ds)
    argv = [arg.replace("{ds}", str(ds)).replace("{root}", str(root)) for arg in args]
    before = snapshot(tmp_path)
    code, stderr = cli("export", "coco", str(ds), "-o", *argv)
    assert code == 2
    assert_one_line(stderr, "overlaps input")
    assert snapshot(tmp_path) == before


def test_output_equal_to_the_class_list_file_is_refused(tmp_path: Path) -> None:
    from PIL import Image

    root = tmp_path / "yolo"
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    Image.new("RGB", (8, 6)).save(root / "images" / "train" / "a.png")
    (root / "labels" / "train" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    names = tmp_path / "names.txt"
    names.write_text("cat\n")
    before = snapshot(tmp_path)
    code, stderr = cli("convert", "yolo", str(root), "--classes", str(names), "-o", str(names), "--force")
    assert code == 2
    assert_one_line(stderr, f"overlaps input {names}")
    assert snapshot(tmp_path) == before


def test_output_on_a_bind_mount_of_the_source_is_refused(tmp_path: Path) -> None:
    """Two names, one directory: the overlap is found by identity (device and inode), not by name."""
    src = coco_folder(tmp_path / "src")
    alias = tmp_path / "alias"
    alias.mkdir()
    try:
        done = subprocess.run(["mount", "--bind", str(src), str(alias)], capture_output=True, check=False)
    except OSError as exc:
        pytest.skip(f"cannot bind-mount here: {exc}")
    if done.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {done.stderr.decode(errors='replace').strip()}")
    try:
        before = snapshot(src)
        code, stderr = cli("convert", "coco", str(src), "-o", str(alias / "out"))
        assert code == 2
        assert_one_line(stderr, "overlaps input")
        assert snapshot(src) == before
    finally:
        subprocess.run(["umount", str(alias)], capture_output=True, check=False)


# ---------------------------------------------------------------------------------------------- --force


@pytest.mark.parametrize("kind", ["folder", "symlink_to_an_output", "file"])
def test_force_replaces_nothing_that_is_not_an_annonorm_output(tmp_path: Path, kind: str) -> None:
    source = write_coco(tmp_path / "c.json", 2)
    out = tmp_path / "out"
    if kind == "folder":
        out.mkdir()
        (out / "thesis.tex").write_text("years of work\n")
    elif kind == "file":
        out.write_text("a file\n")
    else:
        previous_output(source, tmp_path / "real")
        out.symlink_to(tmp_path / "real")
    before = snapshot(tmp_path)
    code, stderr = cli("convert", "coco", str(source), "-o", str(out), "--force")
    assert code == 2
    assert_one_line(stderr, f"{out} exists and is not an annonorm output")
    assert stderr.rstrip().endswith("remove it yourself")
    assert snapshot(tmp_path) == before


def test_force_replaces_a_previous_conversion_and_a_previous_export(tmp_path: Path) -> None:
    source = write_coco(tmp_path / "c.json", 2)
    out = tmp_path / "out"
    previous_output(write_coco(tmp_path / "old.json", 1), out)
    assert cli("convert", "coco", str(source), "-o", str(out), "--force", "-q")[0] == 0
    assert validate_dataset(out).valid
    exported = tmp_path / "exported"
    assert cli("export", "coco", str(out), "-o", str(exported), "-q")[0] == 0
    assert (exported / EXPORT_MARKER).is_file()
    code, stderr = cli("export", "voc", str(out), "-o", str(exported), "--force", "-q")
    assert code == 0, stderr
    assert (exported / "Annotations").is_dir() and not (exported / "annotations").exists()
    assert leftovers(out) == leftovers(exported) == []


WRITERS = {"coco": (), "voc": (), "csv": (), "yolo": ("--images", str(SAMPLE / "coco" / "images"))}


@pytest.mark.parametrize("format_name", WRITERS)
def test_every_export_is_marked_and_its_format_still_reads_it(tmp_path: Path, format_name: str) -> None:
    normalized = tmp_path / "ds"
    assert cli("convert", "coco", str(SAMPLE / "coco"), "-o", str(normalized), "-q")[0] == 0
    exported = tmp_path / format_name
    code, stderr = cli("export", format_name, str(normalized), "-o", str(exported), "-q")
    assert code == 0, stderr
    assert (exported / EXPORT_MARKER).read_text() == f"annonorm export {format_name}\n"
    back = tmp_path / "back"
    code, stderr = cli("convert", format_name, str(exported), *WRITERS[format_name], "-o", str(back), "-q")
    assert code == 0, stderr

    def records(root: Path) -> int:
        return sum(s.records for s in validate_dataset(root).splits.values())

    assert records(back) == records(normalized) > 0


# ---------------------------------------------------------------------------------------------- failing disks


def test_a_parent_that_is_a_file_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    source = write_coco(tmp_path / "c.json", 2)
    (tmp_path / "plain").write_text("not a folder\n")
    before = snapshot(tmp_path)
    for out in (tmp_path / "plain" / "out", tmp_path / "plain" / "deeper" / "out"):
        code, stderr = cli("convert", "coco", str(source), "-o", str(out))
        assert code == 2
        assert_one_line(stderr, f"{tmp_path / 'plain'} is not a directory")
    assert snapshot(tmp_path) == before


def test_missing_parents_created_for_a_failed_run_are_removed(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"images": [], "annotations": [], "categories": []}')
    code, _ = cli("convert", "coco", str(broken), "-o", str(tmp_path / "a" / "b" / "out"))
    assert code != 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.json"]


def test_a_read_only_location_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    source = write_coco(tmp_path / "c.json", 2)
    with tmpfs(tmp_path / "mnt", "1m", read_only=True) as mount:
        done = run(["convert", "coco", str(source), "-o", str(mount / "out")])
        assert done.returncode == 2
        assert_one_line(done.stderr, "Read-only file system")
        assert list(mount.iterdir()) == []


def test_a_read_only_parent_keeps_the_previous_output(tmp_path: Path) -> None:
    parent = tmp_path / "parent"
    out = parent / "out"
    before = previous_output(write_coco(tmp_path / "old.json", 1), out)
    source = write_coco(tmp_path / "c.json", 3)
    with read_only_directory(parent) as reason:
        done = run(["convert", "coco", str(source), "-o", str(out), "--force"])
    assert done.returncode == 2
    assert_one_line(done.stderr, reason)
    assert snapshot(out) == before
    assert leftovers(out) == []


@pytest.mark.parametrize("previous", [False, True], ids=["fresh", "force_keeps_previous"])
def test_no_space_left_is_one_line_and_leaves_nothing(tmp_path: Path, previous: bool) -> None:
    source = write_coco(tmp_path / "big.json", 150)  # its dataset needs some 200 KB, the disk holds 64 KB
    with tmpfs(tmp_path / "mnt", "64k") as mount:
        out = mount / "out"
        before = previous_output(write_coco(tmp_path / "old.json", 1), out) if previous else None
        done = run(["convert", "coco", str(source), "-o", str(out), *(["--force"] if previous else [])])
        assert done.returncode == 2
        assert_one_line(done.stderr, f"{out}: cannot write the output: No space left on device")
        if before is None:
            assert list(mount.iterdir()) == []
        else:
            assert snapshot(out) == before
            assert [p.name for p in mount.iterdir()] == ["out"]


def test_an_output_name_too_long_for_the_file_system_is_refused_before_any_work(tmp_path: Path) -> None:
    source = write_coco(tmp_path / "c.json", 2)
    for out in (tmp_path / ("x" * 300), tmp_path / ("y" * 300) / "out"):
        code, stderr = cli("convert", "coco", str(source), "-o", str(out))
        assert code == 2
        assert_one_line(stderr, "file name in the output's path is too long (300 bytes")
    assert [p.name for p in tmp_path.iterdir()] == ["c.json"]


def test_a_file_name_inside_the_output_too_long_keeps_the_previous_output(tmp_path: Path) -> None:
    """Deep enough that OUT fits in PATH_MAX (4096 bytes) but a mask named after a long image name does not."""
    parent = tmp_path
    while len(str(parent)) < 3850:
        parent = parent / ("d" * 200)
    parent.mkdir(parents=True)
    out = parent / "out"
    before = previous_output(write_coco(tmp_path / "old.json", 1), out)
    document: dict[str, Any] = json.loads(write_coco(tmp_path / "c.json", 1).read_text())
    document["images"][0]["file_name"] = "n" * 200 + ".jpg"
    (tmp_path / "c.json").write_text(json.dumps(document))
    code, stderr = cli("convert", "coco", str(tmp_path / "c.json"), "-o", str(out), "--force", "--masks", "png")
    assert code == 2
    assert_one_line(stderr, "File name too long")
    assert snapshot(out) == before
    assert leftovers(out) == []


# ---------------------------------------------------------------------------------------------- the CLI edge


def failing(error: BaseException) -> Any:
    def convert(*args: Any, **kwargs: Any) -> Any:
        raise error

    return convert


@pytest.mark.parametrize("output", ["text", "json"])
def test_an_oserror_reaches_the_user_as_one_worded_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, output: str
) -> None:
    import annonorm.api

    monkeypatch.setattr(annonorm.api, "convert", failing(PermissionError(13, "Permission denied", "/data/x.json")))
    code, stderr = cli("convert", "coco", str(write_coco(tmp_path / "c.json", 1)), "-o", "out", "--format", output)
    assert code == 2
    if output == "text":
        assert stderr == "annonorm: error: /data/x.json: Permission denied\n"
    else:
        error = json.loads(stderr)
        assert error["error"] == "PermissionError" and error["file"] == "/data/x.json"
        assert error["message"] == "Permission denied" and error["exit_code"] == 2


def test_an_unexpected_exception_is_one_internal_error_line_and_debug_shows_the_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import annonorm.api

    monkeypatch.setattr(annonorm.api, "convert", failing(ZeroDivisionError("division by zero\nsecond line")))
    args = ("convert", "coco", str(write_coco(tmp_path / "c.json", 1)), "-o", str(tmp_path / "out"))
    code, stderr = cli(*args)
    assert code == 2
    assert stderr == (
        "annonorm: internal error: ZeroDivisionError: division by zero second line "
        "(run with --debug for the traceback)\n"
    )
    code, stderr = cli("--debug", *args)
    assert code == 2
    assert "Traceback (most recent call last)" in stderr and "raise error" in stderr
    assert stderr.splitlines()[-1] == "annonorm: internal error: ZeroDivisionError: division by zero second line"
    assert "ANNONORM_DEBUG" not in os.environ, "--debug outlived its command"


# ---------------------------------------------------------------------------------------------- concurrent runs


@pytest.mark.slow
def test_a_second_run_to_the_same_output_fails_at_once(tmp_path: Path) -> None:
    """The first run is frozen (SIGSTOP) while it holds the lock, so the second surely meets it."""
    out = tmp_path / "out"
    first = subprocess.Popen(
        [*ANNONORM, "convert", "coco", str(write_coco(tmp_path / "big.json", 150)), "-o", str(out), "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(lambda: len(leftovers(out)) == 2, what="the first run's lock and temporary directory")
        first.send_signal(signal.SIGSTOP)
        during = leftovers(out)
        assert ".out.annonorm-lock" in during
        small = write_coco(tmp_path / "small.json", 1)
        second = run(["convert", "coco", str(small), "-o", str(out), "--force"], timeout=60)
        assert second.returncode == 2
        assert_one_line(second.stderr, f"another annonorm run is writing {out}")
        assert leftovers(out) == during and not out.exists()
        first.send_signal(signal.SIGCONT)
        _, stderr = first.communicate(timeout=120)
    finally:
        first.send_signal(signal.SIGCONT)
        if first.poll() is None:
            first.kill()
        first.wait()
    assert first.returncode == 0, stderr.decode()
    assert validate_dataset(out).valid
    assert leftovers(out) == []


# ---------------------------------------------------------------------------------------------- recoverable rename

KILLED_BETWEEN_RENAMES = """
import os, signal, sys
import annonorm.fsutil as fsutil
from annonorm.api import convert

fsutil._renameat2 = lambda *args: False  # a platform without atomic exchange
rename = os.rename


def rename_then_die(source, target, *args, **kwargs):
    rename(source, target, *args, **kwargs)
    if "-old" in os.path.basename(target):  # the previous output is moved aside: die before the new one moves in
        os.kill(os.getpid(), signal.SIGKILL)


os.rename = rename_then_die
convert("coco", sys.argv[1], sys.argv[2], force=True)
"""


def test_a_replacement_killed_between_its_two_renames_is_put_back_by_the_next_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    before = previous_output(write_coco(tmp_path / "old.json", 1), out)
    source = write_coco(tmp_path / "c.json", 2)
    script = tmp_path / "killed.py"
    script.write_text(KILLED_BETWEEN_RENAMES)
    done = subprocess.run([sys.executable, str(script), str(source), str(out)], capture_output=True, check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert not out.exists()
    (aside,) = [name for name in leftovers(out) if "-old" in name]
    assert snapshot(tmp_path / aside) == before
    # the next run puts the previous output back, then refuses to replace it without --force
    code, stderr = cli("convert", "coco", str(source), "-o", str(out))
    assert code == 2
    assert_one_line(stderr, "already exists")
    assert snapshot(out) == before
    assert leftovers(out) == []
    assert cli("convert", "coco", str(source), "-o", str(out), "--force", "-q")[0] == 0
    assert snapshot(out) != before and validate_dataset(out).valid
