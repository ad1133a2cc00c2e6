"""Ray Data glue: a normalized dataset as a ``ray.data.Dataset``, and the engine on a Ray cluster.

This is the only annonorm module that imports ray (``pip install 'annonorm[ray]'``), and only when a
function here is called; without ray they raise :class:`~annonorm.errors.MissingDependency`.

* :func:`read_dataset` reads a split's records: from its Parquet export (``OUT/<split>/part-*.parquet``,
  ``annonorm export parquet``) when present, else from the JSONL, one row per image;
* :func:`iter_torch_batches` turns those rows into annonorm's detection batches ``(images, targets)``
  (:func:`annonorm.torch.collate_fn`), e.g. inside a Ray Train worker on ``get_dataset_shard("train")``;
* :class:`RayExecutor` is the engine's :class:`~annonorm.engine.Executor` over Ray tasks
  (``annonorm convert ... --engine ray``): each unit is a task, the driver takes the results in unit
  order and writes them, so the output is byte for byte the one of one process.

The cluster is ``RAY_ADDRESS`` when set (``ray start --head`` on one node, ``ray start --address``
on the others), else a local one started with ``ray.init(num_cpus=...)``.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Callable, Generator, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
import numpy as np

from annonorm.engine import Execution, byte_ranges, ordered_window
from annonorm.errors import MissingDependency, ParseError, UsageError

if TYPE_CHECKING:
    import ray.data

__all__ = ["RayExecutor", "connect", "iter_torch_batches", "read_dataset"]

T = TypeVar("T")
R = TypeVar("R")
K = TypeVar("K")


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise MissingDependency("ray", "ray", "annonorm.ray (--engine ray)") from None
    return ray


def connect(num_cpus: int | None = None) -> Any:
    """The Ray module, connected: to the running session, else ``RAY_ADDRESS``, else a new local cluster
    of ``num_cpus`` CPUs (None: all). A cluster that cannot be reached is a :class:`UsageError` (exit 2)."""
    ray = _ray()
    if ray.is_initialized():
        return ray
    address = os.environ.get("RAY_ADDRESS")
    try:
        if address:
            _reachable(address)
            ray.init(address=address, log_to_driver=False, configure_logging=False)
        else:
            ray.init(num_cpus=num_cpus, log_to_driver=False, configure_logging=False, include_dashboard=False)
    except (OSError, RuntimeError, ValueError) as exc:
        where = f"RAY_ADDRESS={address}" if address else "a local Ray cluster"
        detail = " ".join(str(exc).split())[:200]
        raise UsageError(f"cannot reach {where} ({detail})") from None
    return ray


def _reachable(address: str) -> None:
    """Fail fast on a ``host:port`` nobody listens on (``ray.init`` would retry for minutes)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto", a URL of another kind: left to ray.init
    with socket.create_connection((host, int(port)), timeout=5):
        pass


# ---------------------------------------------------------------------------------------------- reading


def _split_files(path: Path, split: str | None) -> tuple[Path, str, Path]:
    """The dataset root, the chosen split and its JSONL file."""
    from annonorm.dataset import choose_split
    from annonorm.io import manifest_path, read_manifest

    manifest = read_manifest(path)
    root = manifest_path(path).parent
    chosen = choose_split(list(manifest.splits), split, root)
    return root, chosen, root / manifest.splits[chosen]


def _decode_line(row: dict[str, Any]) -> dict[str, Any]:
    """One JSONL line as the record's fields; the JSON-valued ones (``attributes``) stay JSON text so
    every block has the same Arrow types whatever the values are."""
    record: dict[str, Any] = msgspec.json.decode(row["text"])
    if "attributes" in record:
        record["attributes"] = msgspec.json.encode(record["attributes"]).decode()
    for box in record.get("boxes") or ():
        if "attributes" in box:
            box["attributes"] = msgspec.json.encode(box["attributes"]).decode()
    return record


def read_dataset(path: str | Path, split: str | None = None) -> ray.data.Dataset:
    """A split of a normalized dataset as a ``ray.data.Dataset``, one row per image (lazy, streamed).

    ``path`` is the dataset directory (or its manifest); ``split`` may be left out when there is one.
    The rows are read from the split's Parquet export (``<dataset>/<split>/part-*.parquet``) when it is
    there, with the layout's columns (DESIGN.md §7); else from the JSONL, with the record's fields
    (``attributes`` as JSON text, as in the Parquet layout).
    """
    ray = connect()
    root, chosen, jsonl = _split_files(Path(path), split)
    from annonorm.columnar import _pyarrow, check_schema, part_files

    parts = part_files(root / chosen)
    if parts:
        pq = _pyarrow().parquet
        for part in parts:
            check_schema(pq.read_schema(part), part)
        return ray.data.read_parquet([str(p) for p in parts])
    if not jsonl.is_file():
        raise ParseError("split file is missing", file=jsonl)
    return ray.data.read_text(str(jsonl)).map(_decode_line)


# ---------------------------------------------------------------------------------------------- batches


def _sample(
    row: dict[str, Any], labels: dict[str, int], image_root: Path | None, load_images: bool
) -> tuple[Any, dict[str, Any]]:
    """A row as annonorm's ``(image, target)``: the image (its path, or loaded), boxes xyxy, labels."""
    boxes = [b for b in (row.get("boxes") or []) if b is not None]
    names = [str(b["name"]) for b in boxes]
    unknown = [n for n in names if n not in labels]
    if unknown:
        raise ParseError(f"box class {unknown[0]!r} is not among the categories given", location=str(row["image"]))
    image: Any = str(image_root / row["image"]) if image_root is not None else row["image"]
    if load_images:
        from PIL import Image

        with Image.open(image) as opened:
            image = opened.convert("RGB")
    target = {
        "boxes": np.array([[b["x1"], b["y1"], b["x2"], b["y2"]] for b in boxes], dtype=np.float32).reshape(-1, 4),
        "labels": np.array([labels[n] for n in names], dtype=np.int64),
        "names": names,
        "image": row["image"],
    }
    return image, target


def iter_torch_batches(
    ds: ray.data.Dataset,
    *,
    categories: Iterable[str] | None = None,
    batch_size: int = 8,
    image_root: str | Path | None = None,
    load_images: bool = False,
    drop_last: bool = False,
) -> Iterator[tuple[list[Any], list[dict[str, Any]]]]:
    """Batches of ``ds`` (from :func:`read_dataset`, or a Ray Train shard) as annonorm's detection
    batches: ``(images, targets)`` from :func:`annonorm.torch.collate_fn`, targets holding ``boxes``
    float32 ``(N, 4)`` xyxy, ``labels`` int64 (the index in ``categories``, the manifest's order),
    ``names`` and ``image``. Images are paths (under ``image_root`` when given) unless ``load_images``.
    Without ``categories``, labels number the classes in the order they are first met.
    """
    from annonorm.torch import collate_fn

    labels: dict[str, int] = {n: i for i, n in enumerate(categories)} if categories is not None else {}
    learn = categories is None
    root = Path(image_root) if image_root is not None else None
    batches: Iterable[Any] = ds.iter_batches(batch_size=batch_size, batch_format="pyarrow", drop_last=drop_last)
    for batch in batches:
        samples = []
        for row in batch.to_pylist():
            if learn:
                for box in row.get("boxes") or []:
                    labels.setdefault(str(box["name"]), len(labels))
            samples.append(_sample(row, labels, root, load_images))
        yield collate_fn(samples)


# ---------------------------------------------------------------------------------------------- engine


def _apply(fn: Callable[[Any], Any], unit: Any) -> Any:
    """In a Ray task: one unit of the engine's map."""
    return fn(unit)


class RayExecutor:
    """:class:`~annonorm.engine.Executor` over Ray tasks. ``map`` runs each unit as a task; the driver
    takes the results in unit order (at most ``window`` in flight). Tasks share no memory with the
    driver, so :meth:`forks` is False and readers take their non-forking paths; ``workers`` (when not
    given) is the cluster's CPU count."""

    def __init__(self, execution: Execution | None = None, *, num_cpus: int | None = None) -> None:
        self._ray = connect(num_cpus)
        execution = execution or Execution()
        if not (execution.workers and execution.workers > 0):
            cpus = int(self._ray.cluster_resources().get("CPU", 1))
            execution = dataclasses.replace(execution, workers=max(cpus, 1))
        self.execution = execution
        self._task: Any = None

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to stop: the cluster outlives the run (a local one stops with this process)."""

    def forks(self) -> bool:
        return False

    def _remote(self) -> Any:
        if self._task is None:
            self._task = self._ray.remote(_apply)
        return self._task

    def map(
        self,
        fn: Callable[[T], R],
        units: Iterable[tuple[K, T | None]],
        *,
        processes: int,
        window: int,
        fresh: bool = False,
    ) -> Generator[tuple[K, R | None], None, None]:
        if processes <= 1:
            for tag, unit in units:
                yield tag, (fn(unit) if unit is not None else None)
            return
        ray, task = self._ray, self._remote()
        shared = ray.put(fn)  # once in the object store, not once per task
        yield from ordered_window(
            units,
            lambda unit: task.remote(shared, unit),
            lambda ref: _result(ray, ref),
            ray.cancel,
            window=window,
        )

    def parts(
        self,
        build: Callable[[int], R | None],
        count: int,
        *,
        redo: Callable[[int], None],
        meanwhile: Callable[[], None] | None = None,
    ) -> Iterator[tuple[int, R]]:
        raise RuntimeError("forked parts need the fork start method; ask forks() first")

    def byte_ranges(self, path: Path, parts: int) -> list[tuple[int, int]]:
        return byte_ranges(path, parts)


def _result(ray: Any, ref: Any) -> Any:
    """A task's result; the unit's own error (an AnnonormError, a bug) is raised as itself."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = exc.as_instanceof_cause()
        original = getattr(exc, "cause", None)
        raise (original if isinstance(original, BaseException) else cause) from None
