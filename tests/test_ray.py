"""The Ray tests (tests/ray_cases.py), each run against a real local Ray cluster in a pytest process of its own.

A process that has started Ray keeps gRPC threads after ``ray.shutdown()``; processes it forks afterwards fail.
So the Ray cases never share a process with the tests of the engine's forked workers.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ray")

HERE = Path(__file__).resolve().parent


def test_the_ray_cases_pass_on_a_local_cluster_in_their_own_process() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(HERE / "ray_cases.py")],
        capture_output=True,
        text=True,
        check=False,
        cwd=HERE.parent,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert " passed" in done.stdout and "failed" not in done.stdout, done.stdout[-3000:]
