"""docs/scale.md's Dask example runs, on a real Parquet export, with the real dask (issue 17).

The example runs in a Python process of its own: dask's threaded scheduler keeps its worker threads for the
life of the process, and annonorm never forks a process that has other threads (a forked child of a threaded
parent can deadlock), so the engine's fork tests in the same pytest worker would lose their forks.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from annonorm.api import export
from annonorm.converters.base import make_record
from annonorm.testing import write_dataset

dd = pytest.importorskip("dask.dataframe")
pytest.importorskip("pyarrow")

DOC = Path(__file__).resolve().parent.parent / "docs" / "scale.md"


def _dask_example() -> str:
    section = DOC.read_text(encoding="utf-8").split("## Dask", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "docs/scale.md has no Dask example"
    return match.group(1)


def test_the_dask_example_reads_the_export(tmp_path: Path) -> None:
    box = {"name": "car", "x1": 0.0, "y1": 0.0, "x2": 4.0, "y2": 4.0}
    splits = {
        "train": [
            make_record(image=f"t{n}.jpg", width=9, height=9, boxes=[box] * (51 if n == 0 else n)) for n in range(3)
        ],
        "val": [make_record(image="v.jpg", width=9, height=9, boxes=[box])],
    }
    write_dataset(tmp_path / "ds", ["car"], splits)
    (tmp_path / "data").mkdir()
    export("parquet", tmp_path / "ds", tmp_path / "data" / "coco-parquet")
    # The example as written, its print() calls captured as JSON lines on stdout.
    runner = "import json\nprint = lambda *args: __builtins__.print(json.dumps(args))\n" + _dask_example()
    done = subprocess.run([sys.executable, "-c", runner], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    per_split, crowded = json.loads(done.stdout.splitlines()[0])
    lines = {s: sum(1 for _ in (tmp_path / "ds" / f"{s}.jsonl").open()) for s in splits}
    assert per_split == lines
    assert crowded == sum(1 for line in (tmp_path / "ds" / "train.jsonl").open() if len(json.loads(line)["boxes"]) > 50)
