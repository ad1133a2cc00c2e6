"""Run one command as a whole process; print JSON: wall seconds, peak RSS, exit code, output tails.

    python measure.py [--timeout S] [--limit-mb MB] -- COMMAND ...

Peak RSS is ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` taken in this wrapper after the command
ended: the largest resident set of any single process of the command's tree that was waited for (a pool
worker counts on its own, not added to its parent). The wrapper itself is a separate, small process, so
its own memory is not in the figure. With ``--limit-mb``, the command's tree (the command and its
descendants) is polled and killed when its summed RSS passes the limit, so that a peer that would take
the whole machine (supervision's dense masks) is reported as out of memory instead of swapping or being
killed by the kernel's OOM killer while others work here.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time

PAGE = os.sysconf("SC_PAGE_SIZE")


def _tree_rss_bytes(pid: int) -> int:
    """Summed resident memory of ``pid`` and its descendants (0 when gone)."""
    total = 0
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            with open(f"/proc/{current}/statm", "rb") as f:
                total += int(f.read().split()[1]) * PAGE
            with open(f"/proc/{current}/task/{current}/children", "rb") as f:
                stack.extend(int(child) for child in f.read().split())
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total


def main() -> int:
    """Parse arguments, run the command, print one JSON object."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--limit-mb", type=float, default=0.0, help="kill the tree above this summed RSS (0: none)")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, start_new_session=True)
        killed = ""
        tree_peak = 0
        while process.poll() is None:
            time.sleep(0.1)
            rss = _tree_rss_bytes(process.pid)
            tree_peak = max(tree_peak, rss)
            if args.limit_mb and rss > args.limit_mb * 2**20:
                killed = f"killed: memory above {args.limit_mb:.0f} MB"
            elif time.perf_counter() - start > args.timeout:
                killed = f"killed: timeout after {args.timeout:.0f} s"
            if killed:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                break
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        result = {
            "wall_s": wall,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            "tree_peak_mb": tree_peak / 2**20,
            "returncode": process.returncode,
            "killed": killed,
            "stdout": out.read()[-4000:].decode("utf-8", "replace"),
            "stderr": err.read()[-4000:].decode("utf-8", "replace"),
        }
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
