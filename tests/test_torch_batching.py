"""Batched targets through the DataLoader: ``NormalizedDataset.__getitems__`` and ``annonorm.torch.TargetBatch``.

A batch must leave a worker as a handful of tensors (one per field), and arrive as the per-image list
of target dicts that detection models take, equal to ``ds[i]`` item by item.
"""

from __future__ import annotations

import copy
import io
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from torch.utils.data import DataLoader, Subset  # noqa: E402

from annonorm.dataset import NormalizedDataset  # noqa: E402
from annonorm.testing import write_dataset  # noqa: E402
from annonorm.torch import TargetBatch, collate_fn  # noqa: E402

CATEGORIES = ["person", "car", "dog"]
KEYPOINTS = {"person": ["nose", "left_eye"]}
RECORDS = 40


def _records() -> list[dict[str, Any]]:
    """Records with 0..5 boxes, a few with keypoints, every box with a score."""
    rng = np.random.default_rng(7)
    records = []
    for k in range(RECORDS):
        boxes = []
        for j in range(int(rng.integers(0, 6))):
            name = CATEGORIES[int(rng.integers(0, 3))]
            x1, y1 = float(rng.integers(0, 30)), float(rng.integers(0, 20))
            box: dict[str, Any] = {"name": name, "x1": x1, "y1": y1, "x2": x1 + 5.5, "y2": y1 + 2.25 * (j + 1)}
            box["score"] = round(float(rng.random()), 3)
            if name == "person":
                box["keypoints"] = [[x1 + 1, y1 + 1, 2], [0.0, 0.0, 0]]
            if j == 1:
                box["attributes"] = {"iscrowd": True, "area": 3.5}
            boxes.append(box)
        counts: dict[str, int] = {}
        for box in boxes:
            counts[box["name"]] = counts.get(box["name"], 0) + 1
        counts.setdefault("dog", 1)  # a count without a box (crowd counting)
        record = {"image": f"img/{k:03d}.png", "width": 64, "height": 48, "labels": list(counts), "counts": counts}
        records.append({**record, "boxes": boxes, "id": 500 + k})
    return records


@pytest.fixture(scope="module", autouse=True)
def user_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep the index cache of these tests out of the real user cache directory."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ANNONORM_CACHE_DIR", str(tmp_path_factory.mktemp("user-cache")))
        yield


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(
        tmp_path_factory.mktemp("batching") / "ds", CATEGORIES, {"train": _records()}, keypoints=KEYPOINTS
    )


def _assert_same_target(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert list(got) == list(want)
    for key, value in want.items():
        if isinstance(value, np.ndarray):
            actual = got[key].numpy() if isinstance(got[key], torch.Tensor) else got[key]
            assert actual.dtype == value.dtype and actual.shape == value.shape, key
            np.testing.assert_array_equal(actual, value, err_msg=key)
        else:
            assert got[key] == value, key


class _TensorCounter(pickle.Pickler):
    """A pickler that counts the tensors it is asked to pickle (each one crosses a worker's pipe alone)."""

    def __init__(self) -> None:
        super().__init__(io.BytesIO(), protocol=pickle.HIGHEST_PROTOCOL)
        self.tensors = 0

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, torch.Tensor):
            self.tensors += 1
        return NotImplemented


def _tensors_pickled(value: Any) -> int:
    pickler = _TensorCounter()
    pickler.dump(value)
    return pickler.tensors


# ------------------------------------------------------------------------------------------ __getitems__


@settings(max_examples=60, deadline=None)
@given(indices=st.lists(st.integers(-RECORDS, RECORDS - 1), max_size=20))
def test_getitems_equals_getitem_one_by_one(dataset_dir: Path, indices: list[int]) -> None:
    ds = NormalizedDataset(dataset_dir, "train", load_images=False)
    batch = ds.__getitems__(indices)
    assert len(batch) == len(indices)
    for (path, target), index in zip(batch, indices, strict=True):
        want_path, want = ds[index]
        assert path == want_path
        _assert_same_target(target, want)


def test_getitems_on_a_subset_and_through_torch_subset(dataset_dir: Path) -> None:
    ds = NormalizedDataset(dataset_dir, "train", load_images=False)
    chosen = ds.subset([5, 3, 39, 0])
    for (_, target), position in zip(chosen.__getitems__([0, 1, 2, 3, -1]), [5, 3, 39, 0, 0], strict=True):
        _assert_same_target(target, ds[position][1])
    through_torch = Subset(ds, [7, 2])  # torch's Subset forwards __getitems__
    for (_, target), position in zip(through_torch.__getitems__([1, 0]), [2, 7], strict=True):
        _assert_same_target(target, ds[position][1])
    with pytest.raises(IndexError, match="out of range"):
        ds.__getitems__([0, RECORDS])


def test_getitems_runs_transforms_per_item(dataset_dir: Path) -> None:
    seen: list[int] = []

    def shift(image: Any, target: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        seen.append(target["image_id"])
        return image, {**target, "boxes": target["boxes"] + 1}

    ds = NormalizedDataset(dataset_dir, "train", load_images=False, transforms=shift)
    plain = NormalizedDataset(dataset_dir, "train", load_images=False)
    batch = ds.__getitems__([4, 9])
    assert seen == [504, 509]
    np.testing.assert_array_equal(batch[1][1]["boxes"], plain[9][1]["boxes"] + 1)


# ---------------------------------------------------------------------------------------------- TargetBatch


def test_a_batch_pickles_as_one_tensor_per_field(dataset_dir: Path) -> None:
    ds = NormalizedDataset(dataset_dir, "train", load_images=False)
    samples = ds.__getitems__(list(range(RECORDS)))
    _, targets = collate_fn(samples)
    array_fields = [key for key, value in samples[0][1].items() if isinstance(value, np.ndarray)]
    assert array_fields == ["boxes", "labels", "area", "iscrowd", "scores", "keypoints"]
    assert _tensors_pickled(targets) == len(array_fields)
    # The per-item form it replaces: every array of every target its own tensor.
    assert _tensors_pickled([dict(target) for target in targets]) == len(array_fields) * RECORDS
    restored = pickle.loads(pickle.dumps(targets))
    assert isinstance(restored, TargetBatch) and isinstance(restored, list)
    for got, (_, want) in zip(restored, samples, strict=True):
        _assert_same_target(got, want)


def test_offsets_and_packed_describe_the_views(dataset_dir: Path) -> None:
    ds = NormalizedDataset(dataset_dir, "train", load_images=False)
    _, targets = collate_fn([ds[i] for i in (3, 0, 8)])
    offsets, packed = targets.offsets["boxes"], targets.packed["boxes"]
    assert offsets.tolist()[0] == 0 and offsets.tolist()[-1] == len(packed)
    for k, target in enumerate(targets):
        assert torch.equal(packed[int(offsets[k]) : int(offsets[k + 1])], target["boxes"])


def test_a_changed_batch_pickles_as_it_is_now(dataset_dir: Path) -> None:
    ds = NormalizedDataset(dataset_dir, "train", load_images=False)
    _, targets = collate_fn([ds[i] for i in range(6)])
    targets[2]["boxes"] = torch.zeros((7, 4))
    targets[4]["boxes"] = targets[4]["boxes"][:1]  # a view of the packed tensor, but not the image's rows
    targets[0]["extra"] = torch.arange(3)
    del targets[5]
    targets.append({"boxes": torch.ones((1, 4)), "labels": torch.tensor([2]), "image_id": 9})
    restored = pickle.loads(pickle.dumps(targets))
    assert len(restored) == 6 and restored[5]["image_id"] == 9 and "area" not in restored[5]
    assert torch.equal(restored[2]["boxes"], torch.zeros((7, 4)))
    assert torch.equal(restored[4]["boxes"], targets[4]["boxes"]) and len(restored[4]["boxes"]) <= 1
    assert torch.equal(restored[0]["extra"], torch.arange(3))
    for got, want in zip(restored, targets, strict=True):
        assert list(got) == list(want)
        for key, value in want.items():
            assert torch.equal(got[key], value) if isinstance(value, torch.Tensor) else got[key] == value


def test_copy_and_to_keep_the_batch(dataset_dir: Path) -> None:
    ds = NormalizedDataset(dataset_dir, "train", load_images=False)
    samples = [ds[i] for i in (1, 2, 3)]
    _, targets = collate_fn(samples)
    for other in (copy.copy(targets), copy.deepcopy(targets), targets.to("cpu"), targets.to(torch.float64)):
        assert isinstance(other, TargetBatch) and len(other) == 3
        for got, (_, want) in zip(other, samples, strict=True):
            assert list(got) == list(want) and got["image_id"] == want["image_id"]
            np.testing.assert_array_equal(got["boxes"].numpy(), want["boxes"])
    assert targets.to(torch.float64)[1]["boxes"].dtype == torch.float64


@pytest.mark.skipif(not torch.accelerator.is_available(), reason="pinned memory needs an accelerator")
def test_pin_memory_pins_the_packed_tensors(dataset_dir: Path) -> None:
    ds = NormalizedDataset(dataset_dir, "train", load_images=False)
    _, targets = collate_fn([ds[i] for i in range(4)])
    pinned = targets.pin_memory()
    assert all(tensor.is_pinned() for tensor in pinned.packed.values())
    assert all(target["boxes"].is_pinned() for target in pinned)


array_shapes = st.tuples(st.integers(0, 4), st.integers(1, 3))


@st.composite
def _targets(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Targets that share some fields (packable) and differ in others (masks of their own size, extras)."""
    count = draw(st.integers(0, 6))
    targets = []
    for k in range(count):
        rows = draw(st.integers(0, 4))
        height = draw(st.integers(1, 3))
        target: dict[str, Any] = {
            "boxes": np.arange(rows * 4, dtype=np.float32).reshape(rows, 4) + k,
            "labels": np.full(rows, k, dtype=np.int64),
            "masks": np.ones((rows, height, 2), dtype=np.uint8),
            "image_id": k,
            "names": ["a"] * k,
        }
        if draw(st.booleans()):
            target["extra"] = np.zeros(draw(st.integers(0, 2)), dtype=np.int32)
        targets.append(target)
    return targets


@settings(max_examples=80, deadline=None)
@given(targets=_targets())
def test_target_batch_round_trips_any_targets(targets: list[dict[str, Any]]) -> None:
    batch = TargetBatch(targets)
    restored = pickle.loads(pickle.dumps(batch))
    for got_batch in (batch, restored):
        assert len(got_batch) == len(targets)
        for got, want in zip(got_batch, targets, strict=True):
            _assert_same_target(got, want)
    shared = {"boxes", "labels"} if targets else set()
    assert set(batch.packed) >= shared
    assert _tensors_pickled(batch) <= len(batch.packed) + sum(
        1 for target in targets for key in target if key not in batch.packed and isinstance(target[key], np.ndarray)
    )


# ------------------------------------------------------------------------------------------------ DataLoader


def test_dataloader_with_workers_delivers_packed_batches(dataset_dir: Path) -> None:
    ds = NormalizedDataset(dataset_dir, "train", load_images=False)
    torch.manual_seed(1)
    loader = DataLoader(ds, batch_size=8, shuffle=True, num_workers=2, collate_fn=collate_fn)
    seen = []
    for paths, targets in loader:
        assert isinstance(targets, TargetBatch) and isinstance(targets, list) and len(paths) == len(targets)
        storages = {target["boxes"].untyped_storage().data_ptr() for target in targets}
        assert len(storages) == 1  # every image's boxes are a view of the batch's one tensor
        for target in targets:
            position = target["image_id"] - 500
            _assert_same_target(target, ds[position][1])
            seen.append(position)
    assert sorted(seen) == list(range(RECORDS)) and seen != sorted(seen)
