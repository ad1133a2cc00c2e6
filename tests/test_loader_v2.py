"""The loader over format-version-2 datasets: masks from polygons and RLE, keypoints, scores; v1 unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from annonorm.dataset import NormalizedDataset
from annonorm.errors import InvalidDataError
from annonorm.testing import write_dataset

CATEGORIES = ["person", "car"]
KEYPOINTS = {"person": ["nose", "left_eye", "right_eye"]}
WIDTH, HEIGHT = 48, 32


def _rle_of(pixels: np.ndarray) -> dict[str, Any]:
    encoded = mask_utils.encode(np.asfortranarray(pixels.astype(np.uint8)))
    return {"size": [int(encoded["size"][0]), int(encoded["size"][1])], "counts": encoded["counts"].decode("ascii")}


CROWD = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
CROWD[5:20, 30:44] = 1
CROWD[25:30, 2:6] = 1
POLYGON = [[3.2, 4.7, 20.1, 3.3, 18.5, 25.9, 5.5, 22.0], [22.0, 2.0, 28.5, 2.5, 25.0, 9.75]]
RECORDS: list[dict[str, Any]] = [
    {
        "image": "a.png",
        "width": WIDTH,
        "height": HEIGHT,
        "boxes": [
            {
                "name": "person",
                "x1": 3.2,
                "y1": 2.0,
                "x2": 28.5,
                "y2": 25.9,
                "polygon": POLYGON,
                "keypoints": [[10.0, 8.0, 2], [12.5, 7.0, 1], [0.0, 0.0, 0]],
                "score": 0.9,
            },
            {"name": "car", "x1": 2, "y1": 5, "x2": 44, "y2": 30, "rle": _rle_of(CROWD), "score": 0.25},
            {"name": "car", "x1": 0, "y1": 0, "x2": 1, "y2": 1, "score": 0.5},
        ],
    },
    {"image": "b.png", "width": 8, "height": 6, "boxes": []},
]


def _dataset(root: Path) -> Path:
    return write_dataset(root, CATEGORIES, {"train": RECORDS}, keypoints=KEYPOINTS)


def test_masks_from_polygons_and_rle_equal_pycocotools(tmp_path: Path) -> None:
    ds = NormalizedDataset(_dataset(tmp_path / "ds"), load_images=False, masks=True, cache=False)
    masks = ds[0][1]["masks"]
    assert masks.dtype == np.uint8 and masks.shape == (3, HEIGHT, WIDTH)
    expected_polygon = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(POLYGON, HEIGHT, WIDTH)))
    assert expected_polygon.sum() > 100  # the rings really cover pixels
    np.testing.assert_array_equal(masks[0], expected_polygon)
    np.testing.assert_array_equal(masks[1], CROWD)
    assert not masks[2].any()  # a box with neither polygon nor rle: an empty plane
    assert ds[1][1]["masks"].shape == (0, 6, 8)


def test_keypoints_and_scores(tmp_path: Path) -> None:
    target = NormalizedDataset(_dataset(tmp_path / "ds"), load_images=False, cache=False).target(0)
    keypoints = target["keypoints"]
    assert keypoints.dtype == np.float32 and keypoints.shape == (3, 3, 3)
    assert keypoints[0].tolist() == [[10.0, 8.0, 2.0], [12.5, 7.0, 1.0], [0.0, 0.0, 0.0]]
    assert not keypoints[1:].any()  # cars have no keypoints: zeros, v = 0
    assert target["scores"].dtype == np.float32
    np.testing.assert_allclose(target["scores"], [0.9, 0.25, 0.5], rtol=1e-6)
    assert "masks" not in target


def test_cached_index_serves_the_same_targets(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "ds")
    built = NormalizedDataset(root, load_images=False, masks=True, cache=tmp_path / "cache")
    cached = NormalizedDataset(root, load_images=False, masks=True, cache=tmp_path / "cache")
    assert (built.index_source, cached.index_source) == ("built", "cache")
    for position in range(len(built)):
        one, two = built[position][1], cached[position][1]
        assert one.keys() == two.keys()
        for key in one:
            np.testing.assert_array_equal(np.asarray(one[key]), np.asarray(two[key]))


def test_a_v1_dataset_is_unchanged(tmp_path: Path) -> None:
    records = [
        {"image": "a.png", "width": 4, "height": 3, "boxes": [{"name": "car", "x1": 0, "y1": 0, "x2": 2, "y2": 1}]}
    ]
    root = write_dataset(tmp_path / "ds", CATEGORIES, {"train": records})
    ds = NormalizedDataset(root, load_images=False, cache=False)
    target = ds.target(0)
    assert set(target) == {"boxes", "labels", "image_id", "area", "iscrowd", "counts", "names"}
    assert target["boxes"].tolist() == [[0.0, 0.0, 2.0, 1.0]] and target["area"].tolist() == [2.0]
    assert all(
        len(ds._index.arrays[name]) == 0 for name in ("box_rings", "rle_offsets", "keypoint_offsets", "box_score")
    )


def test_wrong_keypoint_count_is_refused_with_its_place(tmp_path: Path) -> None:
    records = [
        {"image": "a.png", "boxes": [{"name": "person", "x1": 0, "y1": 0, "x2": 2, "y2": 1, "keypoints": [[1, 1, 2]]}]}
    ]
    root = write_dataset(tmp_path / "ds", CATEGORIES, {"train": [dict(r) for r in records]}, keypoints=KEYPOINTS)
    with pytest.raises(
        InvalidDataError, match=r"line 1: boxes\[0\]\.keypoints: 1 keypoints where the category names 3"
    ):
        NormalizedDataset(root, load_images=False, cache=False)


def test_polygons_without_a_size_need_one(tmp_path: Path) -> None:
    box = {"name": "car", "x1": 0, "y1": 0, "x2": 2, "y2": 2, "polygon": [[0, 0, 2, 0, 2, 2]]}
    root = write_dataset(tmp_path / "ds", CATEGORIES, {"train": [{"image": "a.png", "boxes": [box]}]})
    ds = NormalizedDataset(root, load_images=False, masks=True, cache=False)
    with pytest.raises(InvalidDataError, match="gives no width and height"):
        ds[0]


def test_dataloader_with_two_workers_over_a_v2_dataset(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from annonorm.torch import collate_fn

    ds = NormalizedDataset(_dataset(tmp_path / "ds"), load_images=False, masks=True, cache=tmp_path / "cache")
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2, collate_fn=collate_fn)
    ((images, targets),) = list(loader)
    assert images == [str(ds.root / "a.png"), str(ds.root / "b.png")]
    expected = ds[0][1]
    assert isinstance(targets[0]["masks"], torch.Tensor) and targets[0]["masks"].shape == (3, HEIGHT, WIDTH)
    assert torch.equal(targets[0]["masks"], torch.from_numpy(expected["masks"]))
    assert targets[0]["keypoints"].shape == (3, 3, 3) and targets[1]["keypoints"].shape == (0, 3, 3)
    assert torch.equal(targets[0]["scores"], torch.from_numpy(expected["scores"]))
