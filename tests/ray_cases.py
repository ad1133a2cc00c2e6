"""annonorm.ray and ``--engine ray`` on a real local Ray cluster (2 CPUs, started once for the module).

Run by tests/test_ray.py in a process of its own: a process that has started Ray keeps gRPC threads after
``ray.shutdown()``, and children it forks later fail (annonorm then redoes their parts in the parent, so
output stays right, but the engine's fork tests in the same pytest worker would not see their forks).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

ray = pytest.importorskip("ray")

from annonorm import api  # noqa: E402
from annonorm.cli import app  # noqa: E402
from annonorm.engine import Execution  # noqa: E402

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data"
runner = CliRunner()


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    """One local cluster for the whole module (start-up takes seconds)."""
    from annonorm.ray import connect

    previous = os.environ.pop("RAY_ADDRESS", None)
    # Workers import this module's helpers by name: put tests/ on their path.
    here = str(Path(__file__).resolve().parent)
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": here}})
    connect()  # reuses the session
    yield
    ray.shutdown()
    if previous is not None:
        os.environ["RAY_ADDRESS"] = previous


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _tasks_pids(executor: object) -> set[int]:
    from annonorm.ray import RayExecutor

    assert isinstance(executor, RayExecutor)
    out = executor.map(_pid, ((i, i) for i in range(8)), processes=2, window=4)
    return {pid for _, pid in out if pid is not None}


def _pid(_: int) -> int:
    return os.getpid()


def _square(n: int) -> int:
    return n * n


def test_map_runs_units_as_tasks_in_order(cluster: None) -> None:
    from annonorm.ray import RayExecutor

    executor = RayExecutor(Execution(workers=2))
    units = [(f"t{i}", (i if i % 3 else None)) for i in range(20)]
    got = list(executor.map(_square, units, processes=2, window=3))
    assert got == [(tag, (u * u if u is not None else None)) for tag, u in units]
    assert os.getpid() not in _tasks_pids(executor)  # the units really ran in Ray workers
    assert not executor.forks()


def test_default_workers_is_the_cluster_cpus(cluster: None) -> None:
    from annonorm.ray import RayExecutor

    assert RayExecutor().execution.workers == int(ray.cluster_resources()["CPU"]) == 2


def test_unit_error_comes_back_as_itself(cluster: None) -> None:
    from annonorm.errors import ParseError
    from annonorm.ray import RayExecutor

    def fail(n: int) -> int:
        raise ParseError(f"bad unit {n}", file=Path("x.xml"))

    with pytest.raises(ParseError, match="bad unit 0"):
        list(RayExecutor(Execution(workers=2)).map(fail, [(0, 0), (1, 1)], processes=2, window=2))


def test_voc_ray_equals_one_process_byte_for_byte(cluster: None, tmp_path: Path) -> None:
    # The reference is one process (workers=1); the Ray run is forced parallel (min_parallel=0).
    api.convert("voc", SAMPLE / "voc", tmp_path / "one", execution=Execution(workers=1))
    api.convert("voc", SAMPLE / "voc", tmp_path / "ray", engine="ray", execution=Execution(workers=2, min_parallel=0))
    one, distributed = _files(tmp_path / "one"), _files(tmp_path / "ray")
    assert any(name.startswith("masks/") for name in one)
    assert one == distributed


def test_yolo_ray_equals_one_process_byte_for_byte(cluster: None, tmp_path: Path) -> None:
    api.convert("voc", SAMPLE / "voc", tmp_path / "norm", execution=Execution(workers=1))
    api.export("yolo", tmp_path / "norm", tmp_path / "yolo")
    images = SAMPLE / "voc" / "JPEGImages"
    api.convert("yolo", tmp_path / "yolo", tmp_path / "one", images=images, execution=Execution(workers=1))
    args = ["convert", "yolo", str(tmp_path / "yolo"), "-o", str(tmp_path / "ray"), "--images", str(images)]
    result = runner.invoke(app, [*args, "--engine", "ray", "-q"])
    assert result.exit_code == 0, result.output
    assert _files(tmp_path / "one") == _files(tmp_path / "ray")


def test_read_dataset_and_torch_batches(cluster: None, tmp_path: Path) -> None:
    from annonorm.ray import iter_torch_batches, read_dataset

    api.convert("voc", SAMPLE / "voc", tmp_path / "norm", execution=Execution(workers=1))
    manifest = json.loads((tmp_path / "norm" / "annonorm.json").read_text())
    lines = [json.loads(line) for line in (tmp_path / "norm" / "train.jsonl").read_text().splitlines()]
    ds = read_dataset(tmp_path / "norm")
    assert ds.count() == len(lines)
    names = [c["name"] if isinstance(c, dict) else c for c in manifest["categories"]]
    seen = []
    for images, targets in iter_torch_batches(ds, categories=names, batch_size=2):
        assert len(images) == len(targets) <= 2
        for target in targets:
            seen.append(target["image"])
            record = next(r for r in lines if r["image"] == target["image"])
            boxes = record.get("boxes") or []
            assert target["boxes"].shape == (len(boxes), 4)
            assert target["labels"].tolist() == [names.index(b["name"]) for b in boxes]
            assert target["boxes"].tolist() == [[b["x1"], b["y1"], b["x2"], b["y2"]] for b in boxes]
    assert sorted(seen) == sorted(r["image"] for r in lines)


def test_unreachable_cluster_is_one_line_exit_2(tmp_path: Path) -> None:
    # Runs in a fresh interpreter: the module's cluster must not answer for RAY_ADDRESS.
    import subprocess
    import sys

    env = {**os.environ, "RAY_ADDRESS": "127.0.0.1:1"}
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "annonorm", "convert", "voc", str(SAMPLE / "voc"), "-o", str(out), "--engine", "ray"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("annonorm:")]
    assert len(errors) == 1 and "RAY_ADDRESS=127.0.0.1:1" in errors[0], done.stderr
    assert "Traceback" not in done.stderr
    assert not out.exists()


def test_validate_check_images_on_ray_gives_the_local_report(cluster: None, tmp_path: Path) -> None:
    from PIL import Image

    from annonorm.ray import RayExecutor
    from annonorm.testing import write_dataset
    from annonorm.validation import validate_dataset

    images = tmp_path / "images"
    images.mkdir()
    records = []
    for i in range(60):
        if i % 6 == 1:
            (images / f"{i}.png").write_bytes(b"not an image")
        elif i % 6 != 2:  # 2, 8, ...: missing
            Image.new("L", (20 if i % 6 else 21, 10), i).save(images / f"{i}.png")
        boxes = [{"name": "car", "x1": 1.0, "y1": 1.0, "x2": 5.0, "y2": 5.0}]
        records.append({"image": f"{i}.png", "width": 20, "height": 10, "labels": ["car"], "counts": {"car": 1}})
        records[-1]["boxes"] = boxes
    splits = {"train": records[:45], "val": [*records[45:], dict(records[3], image="3.png")]}
    root = write_dataset(tmp_path / "ds", ["car"], splits, image_root="../images")
    local = validate_dataset(root, check_images=True, workers=1)
    distributed = validate_dataset(root, check_images=True, executor=RayExecutor(Execution(workers=2, min_parallel=0)))
    assert distributed.to_dict() == local.to_dict()
    assert {f.code for f in local.findings} >= {"image_unreadable", "image_missing", "image_size_mismatch"}
    assert any(f.code == "image_in_several_splits" for f in local.findings)
    result = runner.invoke(app, ["validate", str(root), "--check-images", "--engine", "ray", "--format", "json"])
    assert result.exit_code == 1, result.output
    assert json.loads(result.output) == local.to_dict()


def test_validate_with_an_unreachable_cluster_is_one_line_exit_2(tmp_path: Path) -> None:
    import subprocess
    import sys

    env = {**os.environ, "RAY_ADDRESS": "127.0.0.1:1"}
    api.convert("voc", SAMPLE / "voc", tmp_path / "norm", execution=Execution(workers=1))
    done = subprocess.run(
        [sys.executable, "-m", "annonorm", "validate", str(tmp_path / "norm"), "--engine", "ray"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("annonorm:")]
    assert len(errors) == 1 and "RAY_ADDRESS=127.0.0.1:1" in errors[0], done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
