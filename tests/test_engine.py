"""The parallel engine: one worker policy, the ordered bounded map, forked parts, byte ranges, the GC policy."""

from __future__ import annotations

import gc
import json
import multiprocessing.process
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annonorm.api import convert
from annonorm.engine import Execution, LocalExecutor, byte_ranges, default_workers
from annonorm.validation import validate_dataset

# ------------------------------------------------------------------------------------------- worker policy


def test_the_worker_policy_is_one_rule() -> None:
    cores = default_workers()
    assert Execution().processes == Execution(workers=0).processes == cores  # 0 or not given: one per core
    assert Execution(workers=1).processes == 1
    assert Execution(workers=5).processes == 5
    # Below a strategy's threshold, or with one worker, the work stays in this process.
    assert Execution(workers=4).pool_size(99, 100) == 1
    assert Execution(workers=4).pool_size(100, 100) == 4
    assert Execution(workers=1).pool_size(10**9, 0) == 1
    assert Execution(workers=4, min_parallel=0).pool_size(1, 10**9) == 4  # min_parallel replaces every threshold
    # A busy parent: an explicit count is kept; an automatic one leaves the parent a core.
    assert Execution(workers=4).pool_size(100, 1, parent_busy=True) == 4
    assert Execution().pool_size(100, 1, parent_busy=True) == (1 if cores < 3 else cores - 1)


def test_the_gc_pause_is_a_policy_of_the_run() -> None:
    assert gc.isenabled()
    with Execution().running():
        assert not gc.isenabled()
    assert gc.isenabled()
    with Execution(gc_paused=False).running():
        assert gc.isenabled()
    assert gc.isenabled()


# ------------------------------------------------------------------------------------------- ordered map


def _square(value: int) -> int:
    return value * value


def _fail_in_child(index: int) -> str | None:
    if os.getpid() == _PARENT:
        raise AssertionError("a part must run in a forked child")
    if index == 1:
        raise ValueError("the child's error")
    return None if index == 3 else f"part {index}"


_PARENT = os.getpid()


@pytest.mark.parametrize("processes", [1, 2, 3])
@pytest.mark.parametrize("window", [1, 2, 5])
def test_the_map_keeps_order_and_at_most_window_units_in_flight(processes: int, window: int) -> None:
    pulled: list[int] = []

    def units() -> Iterator[tuple[int, int | None]]:
        for value in range(40):
            pulled.append(value)
            yield value, (None if value % 7 == 0 else value)

    results = []
    for tag, result in LocalExecutor().map(_square, units(), processes=processes, window=window):
        # Units taken but not given back: what is in flight (inline, only the one at hand).
        assert len(pulled) - len(results) <= (window if processes > 1 else 1)
        results.append((tag, result))
    assert results == [(v, None if v % 7 == 0 else v * v) for v in range(40)]


def test_a_failed_part_is_redone_here_in_its_turn() -> None:
    executor = LocalExecutor(Execution(workers=4))
    if not executor.forks():
        pytest.skip("forked parts need fork")
    order: list[Any] = []
    redo = lambda index: order.append(("redone here", index, os.getpid() == _PARENT))  # noqa: E731
    for index, result in executor.parts(_fail_in_child, 5, redo=redo, meanwhile=lambda: order.append("meanwhile")):
        order.append((index, result))
    assert order == [
        "meanwhile",
        (0, "part 0"),
        ("redone here", 1, True),  # it raised in its child
        (2, "part 2"),
        ("redone here", 3, True),  # it gave up (None)
        (4, "part 4"),
    ]


def test_a_failed_part_raises_the_error_one_process_raises() -> None:
    executor = LocalExecutor(Execution(workers=2))
    if not executor.forks():
        pytest.skip("forked parts need fork")

    def redo(index: int) -> None:
        raise ValueError(f"part {index}, as one process meets it")

    taken = []
    with pytest.raises(ValueError, match="part 1, as one process meets it"):
        for index, result in executor.parts(_fail_in_child, 3, redo=redo):
            taken.append((index, result))
    assert taken == [(0, "part 0")]  # the parts before it, and none after


# ------------------------------------------------------------------------------------------- byte ranges


@settings(max_examples=60, deadline=None)
@given(
    lines=st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")), max_size=40), parts=st.integers(1, 9)
)
def test_byte_ranges_cover_the_file_exactly_on_line_boundaries(
    tmp_path_factory: pytest.TempPathFactory, lines: list[bytes], parts: int
) -> None:
    path = tmp_path_factory.mktemp("ranges") / "split.jsonl"
    data = b"\n".join(lines) + (b"\n" if lines else b"")
    path.write_bytes(data)
    ranges = byte_ranges(path, parts)
    assert 1 <= len(ranges) <= parts
    assert b"".join(data[a:b] for a, b in ranges) == data
    assert all(a < b for a, b in ranges) or ranges == [(0, 0)]
    assert all(data[b - 1 : b] == b"\n" for _, b in ranges[:-1])  # every cut follows a newline


# ------------------------------------------------------------------------------------- strategies and --workers 1


def _coco(path: Path, images: int) -> Path:
    document = {
        "images": [{"id": i, "file_name": f"{i}.jpg", "width": 40, "height": 30} for i in range(images)],
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
        "annotations": [
            {
                "id": n,
                "image_id": n % images,
                "category_id": 1 + n % 2,
                "bbox": [1, 2, 5 + n % 7, 6],
                "segmentation": [[1, 2, 6, 2, 6, 8, 1, 8]],
                "area": 30.0,
                "iscrowd": 0,
            }
            for n in range(3 * images)
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))
    return path


def _csv(path: Path, images: int) -> Path:
    rows = [f"{i}.jpg,40,30,{'ab'[n % 2]},1,2,{5 + n},9" for i in range(images) for n in range(3)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("filename,width,height,class,xmin,ymin,xmax,ymax\n" + "\n".join(rows) + "\n")
    return path


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


SOURCES = {
    "coco masks": ("coco", _coco, {}),
    "coco boxes": ("coco", _coco, {"masks": False}),
    "csv": ("csv", _csv, {"preset": "tensorflow"}),
}


@pytest.mark.parametrize("source", SOURCES)
def test_every_strategy_writes_the_same_bytes(tmp_path: Path, source: str) -> None:
    format, make, options = SOURCES[source]
    path = make(tmp_path / "src" / ("instances_train.json" if format == "coco" else "train.csv"), 90)
    trees = []
    for number, execution in enumerate(
        [Execution(workers=1), Execution(workers=2, min_parallel=0), Execution(workers=3, min_parallel=0), Execution()]
    ):
        result = convert(format, path, tmp_path / f"out{number}", execution=execution, **options)
        trees.append(_tree(result.out))
    assert trees[0] == trees[1] == trees[2] == trees[3]


@pytest.mark.parametrize("source", SOURCES)
def test_one_worker_never_forks_not_even_for_the_output_check(
    tmp_path: Path, source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    format, make, options = SOURCES[source]
    path = make(tmp_path / "src" / ("instances_train.json" if format == "coco" else "train.csv"), 90)

    def no_process(self: Any) -> None:
        raise AssertionError(f"--workers 1 started a process: {self}")

    monkeypatch.setattr(multiprocessing.process.BaseProcess, "start", no_process)
    everything_parallel = Execution(min_parallel=0)  # every threshold passed: only --workers 1 keeps it here
    result = convert(format, path, tmp_path / "out", workers=1, execution=everything_parallel, **options)
    assert result.splits["train"].records == 90
    assert validate_dataset(result.out, execution=Execution(workers=1, min_parallel=0)).valid
