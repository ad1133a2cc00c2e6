"""What the output-safety tests share: real ``annonorm`` processes, generated COCO sources, small file systems.

Real processes, real signals, real file systems: a test that needs what this machine cannot give (a
``mount`` when not root, ``chattr`` on a file system without attributes) is skipped with the reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

ANNONORM = [sys.executable, "-m", "annonorm"]


def run(
    args: list[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python -m annonorm ARGS`` to completion."""
    return subprocess.run(
        [*ANNONORM, *args],
        cwd=cwd,
        env=None if env is None else {**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_one_line(stderr: str, fragment: str) -> str:
    """stderr is one ``annonorm:`` line (warnings aside) holding ``fragment``, and no traceback; return it."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith("annonorm: warning:")]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("annonorm: "), stderr
    assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]


def snapshot(root: Path) -> dict[str, Any]:
    """Every entry under ``root``: file bytes, link targets, directories (byte-for-byte comparisons)."""
    state: dict[str, Any] = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if path.is_symlink():
            state[relative] = ("link", os.readlink(path))
        elif path.is_dir():
            state[relative] = ("dir",)
        else:
            state[relative] = path.read_bytes()
    return state


def leftovers(out: Path) -> list[str]:
    """What annonorm keeps beside ``out`` while it works (temporaries, moved-aside copies, the lock)."""
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


# ---------------------------------------------------------------------------------------------- sources


def coco_document(images: int, *, per_image: int = 4, width: int = 320, height: int = 240, tag: int = 0) -> dict:
    """A COCO instances document; each object is a polygon, so converting renders mask PNGs (in workers)."""
    annotations = []
    for index in range(images * per_image):
        image = index // per_image
        x, y = 5 + (index % 7) * 30, 5 + (index % 5) * 30
        annotations.append(
            {
                "id": index + 1,
                "image_id": image,
                "category_id": 1 + index % 2,
                "bbox": [x, y, 25 + tag, 20],
                "area": 500.0,
                "iscrowd": 0,
                "segmentation": [[x, y, x + 25 + tag, y, x + 25 + tag, y + 20, x, y + 20]],
            }
        )
    return {
        "images": [{"id": i, "file_name": f"img{i:05d}.jpg", "width": width, "height": height} for i in range(images)],
        "categories": [{"id": 1, "name": "thing"}, {"id": 2, "name": "other"}],
        "annotations": annotations,
    }


def write_coco(path: Path, images: int, **kwargs: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(coco_document(images, **kwargs)))
    return path


def previous_output(source: Path, out: Path) -> dict[str, Any]:
    """Convert ``source`` into ``out`` in this process (the output a later run must keep); its snapshot."""
    from annonorm.api import convert

    convert("coco", source, out)
    return snapshot(out)


# ---------------------------------------------------------------------------------------------- processes


def children(pid: int) -> list[int]:
    """Living (not zombie) processes below ``pid``."""
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        try:
            found = psutil.Process(pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        return [p.pid for p in found if alive(p.pid)]
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            state = _stat(int(entry.name))
            if state is not None and state[0] != "Z":
                parents[int(entry.name)] = state[1]
    found_pids, queue = [], [pid]
    while queue:
        current = queue.pop()
        for child, parent in parents.items():
            if parent == current:
                found_pids.append(child)
                queue.append(child)
    return found_pids


def _stat(pid: int) -> tuple[str, int] | None:
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2 :].split()
    return fields[0].decode(), int(fields[1])


def alive(pid: int) -> bool:
    state = _stat(pid)
    if state is not None:
        return state[0] != "Z"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not Path("/proc/self").is_dir()


def tagged(tag: str) -> list[int]:
    """Living processes whose environment carries ``ANNONORM_TEST_TAG=tag`` (a run and every process it started)."""
    needle = f"ANNONORM_TEST_TAG={tag}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environment = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environment.split(b"\0") and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def wait_for(condition: Any, timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


# ---------------------------------------------------------------------------------------------- file systems


@contextlib.contextmanager
def tmpfs(path: Path, size: str, *, read_only: bool = False) -> Iterator[Path]:
    """A fresh tmpfs of ``size`` mounted at ``path`` (skips the test where mounting is not allowed)."""
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    except OSError as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True, check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


@contextlib.contextmanager
def read_only_directory(path: Path) -> Iterator[str]:
    """Make ``path`` refuse new entries; yield the expected reason.

    As root a mode bit stops nothing, so the directory is made immutable (``chattr +i``); as another
    user, ``chmod 555`` is enough.
    """
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0o555)
        try:
            yield "Permission denied"
        finally:
            path.chmod(mode)
        return
    try:
        done = subprocess.run(["chattr", "+i", str(path)], capture_output=True)
    except OSError as exc:
        pytest.skip(f"chattr is not available here: {exc}")
    if done.returncode != 0:
        pytest.skip(f"chattr +i is not available here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield "Operation not permitted"
    finally:
        subprocess.run(["chattr", "-i", str(path)], capture_output=True, check=False)
