"""annonorm.torch with a real DataLoader: worker processes, shuffling, the detection collate, samplers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from torch.utils.data import DataLoader  # noqa: E402
from torch.utils.data.distributed import DistributedSampler  # noqa: E402

from annonorm import torch as annonorm_torch  # noqa: E402
from annonorm.dataset import NormalizedDataset  # noqa: E402
from annonorm.errors import MissingDependency  # noqa: E402
from annonorm.testing import write_dataset  # noqa: E402

CATEGORIES = ["cat", "dog"]
RECORDS = 12


def _records() -> list[dict[str, Any]]:
    records = []
    for k in range(RECORDS):
        width, height = 24 + k, 16 + (k % 3)
        boxes = [
            {"name": CATEGORIES[j % 2], "x1": 6.0 * j, "y1": 1.0, "x2": 6.0 * j + 5, "y2": 9.5} for j in range(k % 4)
        ]
        counts: dict[str, int] = {}
        for box in boxes:
            counts[box["name"]] = counts.get(box["name"], 0) + 1
        record = {"image": f"img/{k:02d}.{'png' if k % 2 else 'jpg'}", "width": width, "height": height}
        records.append({**record, "labels": list(counts), "counts": counts, "boxes": boxes, "id": 1000 + k})
    return records


@pytest.fixture(scope="module", autouse=True)
def user_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep the index cache of these tests out of the real user cache directory."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ANNONORM_CACHE_DIR", str(tmp_path_factory.mktemp("user-cache")))
        yield


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("torch") / "ds"
    records = _records()
    for record in records:
        record["mask"] = f"masks/{record['id']}.png"
    write_dataset(directory, CATEGORIES, {"train": records}, mask_kind="instance")
    (directory / "img").mkdir()
    (directory / "masks").mkdir()
    for record in records:
        size = (record["width"], record["height"])
        Image.new("RGB", size, (record["id"] % 256, 10, 20)).save(directory / record["image"])
        pixels = np.zeros(size[::-1], np.uint8)
        for k, box in enumerate(record["boxes"], start=1):
            pixels[int(box["y1"]) : int(box["y2"]), int(box["x1"]) : int(box["x2"])] = k
        Image.fromarray(pixels, "L").save(directory / record["mask"])
    return directory


def test_dataloader_with_workers_shuffle_and_collate(dataset_dir: Path) -> None:
    ds = NormalizedDataset(dataset_dir, "train")
    torch.manual_seed(0)
    loader = DataLoader(ds, batch_size=5, shuffle=True, num_workers=2, collate_fn=annonorm_torch.collate_fn)
    seen: list[int] = []
    for images, targets in loader:
        assert isinstance(images, list) and isinstance(targets, list) and len(images) == len(targets)
        for image, target in zip(images, targets, strict=True):
            record = _records()[target["image_id"] - 1000]
            assert image.dtype == torch.uint8 and tuple(image.shape) == (3, record["height"], record["width"])
            assert target["boxes"].dtype == torch.float32 and target["labels"].dtype == torch.int64
            expected = [[b["x1"], b["y1"], b["x2"], b["y2"]] for b in record["boxes"]]
            assert target["boxes"].tolist() == expected
            assert target["labels"].tolist() == [CATEGORIES.index(b["name"]) for b in record["boxes"]]
            assert target["iscrowd"].dtype == torch.int64 and target["area"].dtype == torch.float32
            assert target["counts"] == record["counts"]
            seen.append(target["image_id"])
    assert sorted(seen) == list(range(1000, 1000 + RECORDS))
    assert seen != sorted(seen)  # shuffled (fixed seed)


def test_dataloader_with_masks_and_to_tensor(dataset_dir: Path) -> None:
    ds = NormalizedDataset(dataset_dir, "train", masks=True, to_tensor=True)
    loader = DataLoader(ds, batch_size=4, num_workers=2, collate_fn=annonorm_torch.collate_fn)
    for images, targets in loader:
        for image, target in zip(images, targets, strict=True):
            masks = target["masks"]
            assert masks.dtype == torch.uint8 and masks.shape == (len(target["boxes"]), *image.shape[1:])
            for plane, box in zip(masks, target["boxes"].tolist(), strict=True):
                x1, y1, x2, y2 = (int(v) for v in box)
                assert int(plane.sum()) == (x2 - x1) * (y2 - y1)  # every pixel of the drawn rectangle


def test_distributed_sampler_ranks_cover_the_dataset_once(dataset_dir: Path) -> None:
    ds = NormalizedDataset(dataset_dir, "train", load_images=False)
    assert len(ds) % 2 == 0  # DistributedSampler pads an odd length by repeating indices
    per_rank = []
    for rank in range(2):
        sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=3)
        sampler.set_epoch(1)
        loader = DataLoader(ds, batch_size=3, sampler=sampler, collate_fn=annonorm_torch.collate_fn)
        per_rank.append([t["image_id"] for _, targets in loader for t in targets])
    assert len(per_rank[0]) == len(per_rank[1]) == len(ds) // 2
    assert sorted(per_rank[0] + per_rank[1]) == list(range(1000, 1000 + RECORDS))


def test_collate_keeps_paths_and_batch_order(dataset_dir: Path) -> None:
    ds = NormalizedDataset(dataset_dir, "train", load_images=False)
    images, targets = annonorm_torch.collate_fn([ds[3], ds[0]])
    assert images == [str(dataset_dir / "img" / "03.png"), str(dataset_dir / "img" / "00.jpg")]
    assert [t["image_id"] for t in targets] == [1003, 1000]
    assert isinstance(targets[0]["boxes"], torch.Tensor) and targets[1]["boxes"].shape == (0, 4)


def test_to_tensors_shares_values_and_reads_the_canvas(dataset_dir: Path) -> None:
    ds = NormalizedDataset(dataset_dir, "train")
    image, target = ds[3]
    tensor_image, tensors = annonorm_torch.to_tensors(image, target, wrap=False)
    assert tensor_image.shape == (3, 16, 27)
    assert tensor_image[:, 0, 0].tolist() == list(image.getpixel((0, 0)))
    assert torch.equal(tensors["boxes"], torch.from_numpy(target["boxes"]))
    grey = annonorm_torch.image_to_tensor(Image.new("L", (5, 4), 7), wrap=False)
    assert grey.shape == (1, 4, 5) and int(grey[0, 0, 0]) == 7
    with pytest.raises(TypeError):
        annonorm_torch.image_to_tensor("not an image", wrap=False)


def test_without_torchvision_tensors_are_plain(dataset_dir: Path) -> None:
    if annonorm_torch.has_tv_tensors():
        pytest.skip("torchvision is installed")
    image, target = NormalizedDataset(dataset_dir, "train", to_tensor=True)[1]
    assert type(image) is torch.Tensor and type(target["boxes"]) is torch.Tensor
    with pytest.raises(MissingDependency, match="torchvision"):
        annonorm_torch.target_to_tensors(target, wrap=True)


def test_tv_tensors_move_boxes_and_masks_with_the_image(dataset_dir: Path) -> None:
    pytest.importorskip("torchvision")
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    flip = v2.RandomHorizontalFlip(p=1.0)
    ds = NormalizedDataset(dataset_dir, "train", masks=True, to_tensor=True, transforms=flip)
    plain = NormalizedDataset(dataset_dir, "train", masks=True, to_tensor=True)
    image, target = ds[3]
    original_image, original = plain[3]
    assert isinstance(image, tv_tensors.Image) and isinstance(target["boxes"], tv_tensors.BoundingBoxes)
    assert isinstance(target["masks"], tv_tensors.Mask)
    width = original_image.shape[-1]
    expected = original["boxes"].clone()
    expected[:, [0, 2]] = width - original["boxes"][:, [2, 0]]
    assert torch.equal(target["boxes"].as_subclass(torch.Tensor), expected.as_subclass(torch.Tensor))
    assert torch.equal(target["masks"], original["masks"].flip(-1))
    assert torch.equal(image, original_image.flip(-1))
