"""SIGINT, SIGTERM and SIGHUP in the middle of a conversion, sent to a real ``annonorm`` process.

The conversion renders mask PNGs in two forked worker processes; each signal is sent once those workers
run. Whatever the signal: exit 128 + its number with the one line "annonorm: interrupted", the previous
output byte for byte (or no output), no temporary directory or lock beside it, and no process of the
run left (the pipes to the caller close, so ``communicate`` returns; no process carries the run's tag).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from hostile.runs import (
    ANNONORM,
    alive,
    children,
    kill_all,
    leftovers,
    previous_output,
    run,
    snapshot,
    tagged,
    wait_for,
    write_coco,
)

pytestmark = pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="process checks read /proc")

#: Large enough that mask rendering lasts well beyond the moment its workers start, small enough to write fast.
BIG_IMAGES = 800


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("signal-sources")
    return write_coco(root / "big.json", BIG_IMAGES), write_coco(root / "small.json", 3, tag=1)


def start(source: Path, out: Path, tag: str, *, session: bool) -> subprocess.Popen[bytes]:
    command = [
        *ANNONORM,
        "convert",
        "coco",
        str(source),
        "-o",
        str(out),
        "--force",
        "-q",
        "--workers",
        "2",
        "--masks",
        "png",
    ]
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "ANNONORM_TEST_TAG": tag},
        start_new_session=session,
    )


CASES = [
    # name, signal, exit code, a previous output to keep, sent to the whole process group (a terminal's ^C)
    ("sigint", signal.SIGINT, 130, True, False),
    ("sigterm", signal.SIGTERM, 143, True, False),
    ("sighup", signal.SIGHUP, 129, True, False),
    ("sigint_to_the_group_fresh", signal.SIGINT, 130, False, True),
]


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "code", "previous", "group"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_signal_mid_conversion_stops_everything_and_keeps_the_previous_output(
    sources: tuple[Path, Path], tmp_path: Path, signum: int, code: int, previous: bool, group: bool
) -> None:
    big, small = sources
    out = tmp_path / "out"
    before = previous_output(small, out) if previous else None
    tag = uuid.uuid4().hex
    process = start(big, out, tag, session=group)
    try:
        wait_for(lambda: len(children(process.pid)) >= 2 or process.poll() is not None, what="the worker processes")
        assert process.poll() is None, "the conversion ended before its workers started; make BIG_IMAGES larger"
        workers = children(process.pid)
        time.sleep(0.2)
        if group:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)
        # Returns only once every process holding the run's stdout and stderr has closed them.
        stdout, stderr = process.communicate(timeout=30)
    finally:
        kill_all(tagged(tag))
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == code, stderr.decode()
    assert stderr.decode().strip() == "annonorm: interrupted"
    assert stdout == b""
    assert not tagged(tag), "a process of the interrupted run is still running"
    assert not [pid for pid in workers if alive(pid)], "a worker process outlived the run"
    if before is None:
        assert not out.exists()
    else:
        assert snapshot(out) == before, "the previous output changed"
    assert leftovers(out) == [], "a temporary directory or the lock was left beside the output"


#: A converter whose workers each sleep for ten minutes: an interrupt that waited for them would time out.
SLOW_CONVERTER = """
import sys, time
from concurrent.futures import ProcessPoolExecutor
import multiprocessing


def nap(seconds):
    time.sleep(seconds)
    return seconds


def slow_read(source, writer, **kwargs):
    context = multiprocessing.get_context(sys.argv[1])
    with ProcessPoolExecutor(2, mp_context=context) as pool:
        list(pool.map(nap, [600, 600]))


if __name__ == "__main__":
    import annonorm.converters.coco as coco
    from annonorm.cli import app

    coco.read_coco = slow_read
    app(prog_name="annonorm", args=sys.argv[2:])
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("method", "signum"),
    [("fork", signal.SIGTERM), ("forkserver", signal.SIGINT), ("spawn", signal.SIGHUP)],
    ids=["fork-sigterm", "forkserver-sigint", "spawn-sighup"],
)
def test_workers_busy_with_long_tasks_are_stopped_at_once(
    sources: tuple[Path, Path], tmp_path: Path, method: str, signum: int
) -> None:
    """A pool's shutdown waits for its running tasks: the interrupt stops the workers first, whatever started them."""
    _, small = sources
    out = tmp_path / "out"
    before = previous_output(small, out)
    script = tmp_path / "slow_annonorm.py"
    script.write_text(SLOW_CONVERTER)
    tag = uuid.uuid4().hex
    command = [
        ANNONORM[0],
        str(script),
        method,
        "convert",
        "coco",
        str(small),
        "-o",
        str(out),
        "--force",
        "-q",
        "--masks",
        "png",
    ]
    env = {**os.environ, "ANNONORM_TEST_TAG": tag}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        # fork: 2 workers; forkserver: the server and 2 workers; spawn: 2 workers and the resource tracker
        expected = 2 if method == "fork" else 3
        wait_for(lambda: len(children(process.pid)) >= expected or process.poll() is not None, what="the workers")
        assert process.poll() is None
        started = time.monotonic()
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=30)
        took = time.monotonic() - started
    finally:
        kill_all(tagged(tag))
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 128 + signum, stderr.decode()
    assert stderr.decode().strip() == "annonorm: interrupted"
    assert took < 10, f"the run took {took:.1f} s to stop"
    assert not tagged(tag), "a worker outlived the interrupted run"
    assert snapshot(out) == before
    assert leftovers(out) == []


@pytest.mark.slow
def test_sigkill_takes_the_forked_workers_along_and_blocks_no_later_run(
    sources: tuple[Path, Path], tmp_path: Path
) -> None:
    """No handler runs on SIGKILL: the workers die with their parent (Linux parent-death signal), so no
    orphan keeps rendering or holds the output's lock, and the next run cleans up and succeeds."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the parent-death signal is Linux's")
    big, small = sources
    out = tmp_path / "out"
    before = previous_output(small, out)
    tag = uuid.uuid4().hex
    process = start(big, out, tag, session=False)
    try:
        wait_for(lambda: len(children(process.pid)) >= 2 or process.poll() is not None, what="the worker processes")
        assert process.poll() is None
        process.kill()
        process.communicate(timeout=30)
        wait_for(lambda: not tagged(tag), timeout=10, what="the workers to die with their parent")
    finally:
        kill_all(tagged(tag))
    assert snapshot(out) == before
    done = run(["convert", "coco", str(small), "-o", str(out), "--force", "-q", "--masks", "png"])
    assert done.returncode == 0, done.stderr
    assert leftovers(out) == []
