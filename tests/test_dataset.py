"""NormalizedDataset: targets, images, masks, the array index and its cache, bad input, path safety."""

from __future__ import annotations

import gc
import multiprocessing
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from PIL import Image

from annonorm.dataset import NormalizedDataset, SkippedRecordWarning
from annonorm.errors import AnnonormError, InvalidDataError, ParseError, UnsafePathError, UsageError
from annonorm.index import check_index
from annonorm.testing import datasets, write_dataset

CATEGORIES = ["cat", "dog", "bird"]


def _box(name: str, x1: float, y1: float, x2: float, y2: float, **attributes: Any) -> dict[str, Any]:
    box: dict[str, Any] = {"name": name, "x1": x1, "y1": y1, "x2": x2, "y2": y2}
    if attributes:
        box["attributes"] = attributes
    return box


def _record(image: str, boxes: list[dict[str, Any]], size: tuple[int, int] = (40, 30), **extra: Any) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for box in boxes:
        counts[box["name"]] = counts.get(box["name"], 0) + 1
    counts.update(extra.pop("counts", {}))
    record = {"image": image, "width": size[0], "height": size[1], "labels": list(counts), "counts": counts}
    return {**record, "boxes": boxes, **extra}


def _draw(path: Path, size: tuple[int, int], color: str = "red", mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new(mode, size, color if mode == "RGB" else 128)
    image.save(path)


RECORDS = [
    _record(
        "img/a.png",
        [_box("cat", 1.5, 2.0, 10.25, 12.0, iscrowd=True, area=33.5, id=9), _box("dog", 0, 0, 4, 5)],
        id=101,
    ),
    _record("img/b.jpg", [_box("bird", 3, 4, 30, 20, iscrowd=0)], counts={"cat": 4}, id="b-image"),
    _record("img/c.png", [], size=(16, 8), counts={"dog": 2}, id=7),
]


def _dataset(directory: Path, records: list[dict[str, Any]] = RECORDS, **kwargs: Any) -> Path:
    write_dataset(directory, CATEGORIES, {"train": records}, **kwargs)
    for record in records:
        path = directory / record["image"]
        if not path.exists() and ".." not in record["image"]:
            _draw(path, (record["width"], record["height"]))
    return directory


def _write_lines(directory: Path, lines: list[bytes], split: str = "train") -> Path:
    write_dataset(directory, CATEGORIES, {split: []})
    (directory / f"{split}.jsonl").write_bytes(b"".join(line + b"\n" for line in lines))
    return directory / f"{split}.jsonl"


@pytest.fixture(autouse=True)
def user_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the user cache directory into the test's tmp dir (a cache shared by tests would hide builds)."""
    directory = tmp_path / "user-cache"
    monkeypatch.setenv("ANNONORM_CACHE_DIR", str(directory))
    return directory


# ------------------------------------------------------------------------------------------- targets


def test_targets_follow_torchvision_convention(tmp_path: Path) -> None:
    ds = NormalizedDataset(_dataset(tmp_path / "ds"), "train")
    assert len(ds) == len(RECORDS)
    for position, record in enumerate(RECORDS):
        image, target = ds[position]
        assert isinstance(image, Image.Image) and image.mode == "RGB"
        assert image.size == (record["width"], record["height"])
        expected_boxes = np.array([[b["x1"], b["y1"], b["x2"], b["y2"]] for b in record["boxes"]], np.float32)
        assert target["boxes"].dtype == np.float32 and target["boxes"].shape == (len(record["boxes"]), 4)
        np.testing.assert_array_equal(target["boxes"], expected_boxes.reshape(-1, 4))
        assert target["labels"].dtype == np.int64
        assert target["labels"].tolist() == [CATEGORIES.index(b["name"]) for b in record["boxes"]]
        assert target["counts"] == record["counts"]
        assert target["names"] == record["labels"]
    _, first = ds[0]
    assert first["image_id"] == 101
    # area: the attribute when given, else the box's own area
    np.testing.assert_allclose(first["area"], [33.5, 20.0])
    assert first["area"].dtype == np.float32
    assert first["iscrowd"].tolist() == [1, 0] and first["iscrowd"].dtype == np.int64
    _, second = ds[1]
    assert second["image_id"] == 1  # a string id: the record's position
    assert second["iscrowd"].tolist() == [0]
    assert ds[2][1]["image_id"] == 7
    assert ds.categories == tuple(CATEGORIES)


def test_returned_arrays_are_private_copies(tmp_path: Path) -> None:
    ds = NormalizedDataset(_dataset(tmp_path / "ds"), "train", load_images=False)
    _, target = ds[0]
    target["boxes"] += 100  # a transform may work in place
    assert ds[0][1]["boxes"][0, 0] == pytest.approx(1.5)
    assert not ds._index.boxes.flags.writeable


def test_seed_shorthand_and_derived_fields(tmp_path: Path) -> None:
    lines = [
        b'{"image": "a.png", "labels": "dog", "counts": [{"dog": 3}, {"cat": 0}]}',
        b'{"image": "b.png", "boxes": [{"name": "bird", "x1": 0, "y1": 0, "x2": 1, "y2": 1},'
        b' {"name": "cat", "x1": 0, "y1": 0, "x2": 2, "y2": 3}, {"name": "bird", "x1": 1, "y1": 1, "x2": 2, "y2": 2}]}',
    ]
    _write_lines(tmp_path / "ds", lines)
    ds = NormalizedDataset(tmp_path / "ds", "train", load_images=False)
    first, second = ds.target(0), ds.target(1)
    assert first["counts"] == {"dog": 3, "cat": 0} and first["names"] == ["dog"]
    assert second["counts"] == {"bird": 2, "cat": 1} and second["names"] == ["bird", "cat"]
    assert second["labels"].tolist() == [2, 0, 2]
    assert ds.size(0) is None


def test_free_form_area_and_iscrowd_values(tmp_path: Path) -> None:
    boxes = [
        _box("cat", 0, 0, 2, 3, iscrowd="yes", area="big"),
        _box("cat", 0, 0, 2, 3, iscrowd=1, area=5),
        _box("cat", 0, 0, 2, 3, iscrowd=False, area=True),
        _box("cat", 0, 0, 2, 3, iscrowd=0.0, area=-1),
    ]
    directory = _dataset(tmp_path / "ds", [_record("a.png", boxes)])
    target = NormalizedDataset(directory, "train", load_images=False).target(0)
    # attributes are free-form: only a true / non-zero iscrowd and a number >= 0 as area are used
    assert target["iscrowd"].tolist() == [0, 1, 0, 0]
    assert target["area"].tolist() == [6.0, 5.0, 6.0, 6.0]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=datasets(max_records=4))
def test_index_reproduces_every_record(spec: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = write_dataset(Path(tmp) / "ds", spec.categories, spec.splits)
        for split, records in spec.splits.items():
            # a cache per example: hypothesis repeats examples, and the cache is keyed by content
            built = NormalizedDataset(directory, split, load_images=False, cache=Path(tmp) / "cache")
            cached = NormalizedDataset(directory, split, load_images=False, cache=Path(tmp) / "cache")
            assert (built.index_source, cached.index_source) == ("built", "cache")
            assert len(cached) == len(records)
            for position, record in enumerate(records):
                target = cached.target(position)
                corners = [[b[k] for k in ("x1", "y1", "x2", "y2")] for b in record["boxes"]]
                np.testing.assert_array_equal(target["boxes"], np.array(corners, np.float32).reshape(-1, 4))
                assert [spec.categories[k] for k in target["labels"].tolist()] == [b["name"] for b in record["boxes"]]
                assert target["counts"] == record["counts"]
                assert target["names"] == record["labels"]
                assert target["image_id"] == (record["id"] if isinstance(record.get("id"), int) else position)
                image_path, _ = cached[position]
                assert image_path == os.path.join(directory, record["image"])


# -------------------------------------------------------------------------------------------- images


def test_load_images_false_returns_the_path_without_opening(tmp_path: Path) -> None:
    directory = _dataset(tmp_path / "ds")
    (directory / "img" / "a.png").unlink()
    image, target = NormalizedDataset(directory, "train", load_images=False)[0]
    assert image == str(directory / "img" / "a.png")
    assert len(target["boxes"]) == 2


def test_image_root_override(tmp_path: Path) -> None:
    directory = _dataset(tmp_path / "ds")
    elsewhere = tmp_path / "elsewhere"
    _draw(elsewhere / "img" / "a.png", (40, 30), color="blue")
    image, _ = NormalizedDataset(directory, "train", image_root=elsewhere)[0]
    assert image.getpixel((0, 0)) == (0, 0, 255)


def test_grayscale_images_come_back_rgb(tmp_path: Path) -> None:
    directory = _dataset(tmp_path / "ds")
    _draw(directory / "img" / "c.png", (16, 8), mode="L")
    image, _ = NormalizedDataset(directory, "train")[2]
    assert image.mode == "RGB" and image.getpixel((0, 0)) == (128, 128, 128)


def test_missing_image_names_record_and_path(tmp_path: Path) -> None:
    directory = _dataset(tmp_path / "ds")
    (directory / "img" / "b.jpg").unlink()
    ds = NormalizedDataset(directory, "train")
    with pytest.raises(ParseError) as caught:
        ds[1]
    assert caught.value.file == str(directory / "train.jsonl")
    assert caught.value.location == "line 2"
    assert "record 1" in caught.value.message and "img/b.jpg" in caught.value.message
    assert "does not exist" in caught.value.message


@pytest.mark.parametrize("content", [b"not an image at all", b"truncated"])
def test_corrupt_image_raises_parse_error(tmp_path: Path, content: bytes) -> None:
    directory = _dataset(tmp_path / "ds")
    path = directory / "img" / "b.jpg"
    if content == b"truncated":
        content = path.read_bytes()[: path.stat().st_size // 2]
    path.write_bytes(content)
    with pytest.raises(ParseError, match=r"record 1: image .*b\.jpg cannot be decoded"):
        NormalizedDataset(directory, "train")[1]


def test_image_of_another_size_than_the_record_says(tmp_path: Path) -> None:
    directory = _dataset(tmp_path / "ds")
    _draw(directory / "img" / "a.png", (41, 30))
    with pytest.raises(InvalidDataError, match="is 41x30 but the record says 40x30"):
        NormalizedDataset(directory, "train")[0]


def test_on_missing_skip_warns_and_returns_the_next_record(tmp_path: Path) -> None:
    directory = _dataset(tmp_path / "ds")
    (directory / "img" / "b.jpg").unlink()
    ds = NormalizedDataset(directory, "train", on_missing="skip")
    with pytest.warns(SkippedRecordWarning, match="record 1"):
        _, target = ds[1]
    assert target["image_id"] == 7  # record 2
    (directory / "img" / "c.png").unlink()
    with pytest.warns(SkippedRecordWarning):
        _, wrapped = ds[-1]  # records 2, then wraps to 0
    assert wrapped["image_id"] == 101


def test_on_missing_skip_gives_up_when_nothing_loads(tmp_path: Path) -> None:
    directory = _dataset(tmp_path / "ds")
    for name in ("a.png", "b.jpg", "c.png"):
        (directory / "img" / name).unlink()
    ds = NormalizedDataset(directory, "train", on_missing="skip")
    with pytest.warns(SkippedRecordWarning), pytest.raises(ParseError, match="no record"):
        ds[0]


# ------------------------------------------------------------------------------------------ path safety


def test_path_climbing_out_of_image_root_is_refused(tmp_path: Path) -> None:
    _draw(tmp_path / "outside.png", (40, 30))
    directory = _dataset(tmp_path / "ds", [_record("../outside.png", [])])
    for load_images in (True, False):
        with pytest.raises(UnsafePathError, match="outside") as caught:
            NormalizedDataset(directory, "train", load_images=load_images)[0]
        assert caught.value.location == "line 1"
    image, _ = NormalizedDataset(directory, "train", allow_outside_root=True)[0]
    assert image.size == (40, 30)


def test_symlink_out_of_image_root_is_refused(tmp_path: Path) -> None:
    _draw(tmp_path / "secret" / "x.png", (40, 30))
    directory = _dataset(tmp_path / "ds", [_record("img/link.png", [])])
    (directory / "img" / "link.png").unlink()
    (directory / "img" / "link.png").symlink_to(tmp_path / "secret" / "x.png")
    with pytest.raises(UnsafePathError):
        NormalizedDataset(directory, "train")[0]
    with pytest.raises(UnsafePathError):
        NormalizedDataset(directory, "train").image_path(0)
    assert NormalizedDataset(directory, "train", allow_outside_root=True)[0][0].size == (40, 30)


def test_unsafe_path_is_not_skipped(tmp_path: Path) -> None:
    directory = _dataset(tmp_path / "ds", [_record("/etc/hostname", [])])
    with pytest.raises(UnsafePathError):
        NormalizedDataset(directory, "train", on_missing="skip")[0]


# ------------------------------------------------------------------------------------------------ masks


def test_instance_masks_one_plane_per_box(tmp_path: Path) -> None:
    boxes = [_box("cat", 0, 0, 4, 4), _box("dog", 4, 0, 8, 4)]
    directory = _dataset(
        tmp_path / "ds", [_record("a.png", boxes, size=(8, 4), mask="masks/a.png")], mask_kind="instance"
    )
    pixels = np.zeros((4, 8), np.uint8)
    pixels[:, 0:3] = 1
    pixels[:, 5:8] = 2
    pixels[0, :] = 255  # void: no instance
    (directory / "masks").mkdir()
    Image.fromarray(pixels, "L").save(directory / "masks" / "a.png")
    _, target = NormalizedDataset(directory, "train", masks=True)[0]
    masks = target["masks"]
    assert masks.dtype == np.uint8 and masks.shape == (2, 4, 8)
    np.testing.assert_array_equal(masks[0], (pixels == 1).astype(np.uint8))
    np.testing.assert_array_equal(masks[1], (pixels == 2).astype(np.uint8))
    assert masks[:, 0, :].sum() == 0


def test_sixteen_bit_instance_masks(tmp_path: Path) -> None:
    boxes = [_box("cat", 0, 0, 1, 1)] * 300
    directory = _dataset(tmp_path / "ds", [_record("a.png", boxes, size=(20, 20), mask="m.png")], mask_kind="instance")
    pixels = np.arange(400, dtype=np.uint16).reshape(20, 20)
    Image.fromarray(pixels).save(directory / "m.png")
    _, target = NormalizedDataset(directory, "train", masks=True)[0]
    assert target["masks"].shape == (300, 20, 20)
    # pixel value 300 marks box 300, at flat position 300 = row 15, column 0
    assert target["masks"][299].sum() == 1 and target["masks"][299][15, 0] == 1


def test_semantic_mask_and_placeholders(tmp_path: Path) -> None:
    records = [
        _record("a.png", [_box("cat", 0, 0, 1, 1)], size=(6, 5), mask="masks/a.png"),
        _record("b.png", [_box("dog", 0, 0, 1, 1)], size=(6, 5)),
    ]
    directory = _dataset(tmp_path / "ds", records, mask_kind="semantic")
    pixels = np.full((5, 6), 2, np.uint8)
    pixels[0, 0] = 255
    (directory / "masks").mkdir()
    Image.fromarray(pixels, "L").save(directory / "masks" / "a.png")
    ds = NormalizedDataset(directory, "train", masks=True)
    np.testing.assert_array_equal(ds[0][1]["mask"], pixels)
    assert (ds[1][1]["mask"] == 255).all() and ds[1][1]["mask"].shape == (5, 6)


def test_mask_size_mismatch_and_escape(tmp_path: Path) -> None:
    records = [
        _record("a.png", [_box("cat", 0, 0, 1, 1)], size=(6, 5), mask="m.png"),
        _record("a.png", [], size=(6, 5), mask="../x.png"),
    ]
    directory = _dataset(tmp_path / "ds", records, mask_kind="instance")
    Image.new("L", (7, 5)).save(directory / "m.png")
    ds = NormalizedDataset(directory, "train", masks=True)
    with pytest.raises(InvalidDataError, match=r"mask .* is 7x5, the image 6x5"):
        ds[0]
    with pytest.raises(UnsafePathError, match="outside the dataset directory"):
        NormalizedDataset(directory, "train", masks=True, allow_outside_root=True)[1]


def test_masks_require_a_mask_kind(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no mask_kind"):
        NormalizedDataset(_dataset(tmp_path / "ds"), "train", masks=True)


# ------------------------------------------------------------------------------------ sequence protocol


def test_slicing_subset_and_negative_indices(tmp_path: Path) -> None:
    ds = NormalizedDataset(_dataset(tmp_path / "ds"), "train", load_images=False)
    ids = [target["image_id"] for _, target in (ds[i] for i in range(len(ds)))]
    assert ids == [101, 1, 7]
    assert [t["image_id"] for _, t in ds[1:]] == [1, 7]
    assert [t["image_id"] for _, t in ds[::-1]] == [7, 1, 101]
    assert [t["image_id"] for _, t in ds.subset([2, 0])] == [7, 101]
    assert [t["image_id"] for _, t in ds[1:].subset([-1])] == [7]
    assert ds[-1][1]["image_id"] == 7
    assert ds.record_line(2) == 3
    with pytest.raises(IndexError):
        ds[3]
    with pytest.raises(IndexError):
        ds.subset([5])
    assert [t["image_id"] for _, t in ds] == [101, 1, 7]  # the sequence protocol stops at IndexError


# ---------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("line", "error", "location", "message"),
    [
        (b'{"image": "a.png", "width": 4', ParseError, "line 2", "not valid JSON"),
        (b'{"image": "a.png", "colour": "red"}', InvalidDataError, "line 2", "colour"),
        (b'{"image": "a.png", "width": "4", "height": 3}', InvalidDataError, "line 2", "$.width"),
        (b'{"image": "a.png", "width": 4}', InvalidDataError, "line 2", "width and height"),
        (b"[1, 2]", InvalidDataError, "line 2", "object"),
        (
            b'{"image": "a.png", "boxes": [{"name": "cat", "x1": 0, "y1": 0, "x2": 1, "y2": 1},'
            b' {"name": "cat", "x1": 5, "y1": 0, "x2": 1, "y2": 1}]}',
            InvalidDataError,
            "line 2: boxes[1]",
            "expected x1 <= x2",
        ),
        (
            b'{"image": "a.png", "boxes": [{"name": "cow", "x1": 0, "y1": 0, "x2": 1, "y2": 1}]}',
            InvalidDataError,
            "line 2: boxes[0].name",
            "'cow' is not a category",
        ),
        (b'{"image": "a.png", "counts": {"cow": 1}}', InvalidDataError, "line 2: counts.cow", "not a category"),
        (b'{"image": "a.png", "labels": ["cat", "cow"]}', InvalidDataError, "line 2: labels[1]", "not a category"),
        (b'{"image": "a.png", "counts": [{"cat": 1, "dog": 2}]}', InvalidDataError, "line 2: counts[0]", "one class"),
        (b'{"image": "a.png", "id": 99999999999999999999}', InvalidDataError, "line 2", "$.id"),
    ],
)
def test_invalid_record_line_names_file_and_line(
    tmp_path: Path, line: bytes, error: type[AnnonormError], location: str, message: str
) -> None:
    split = _write_lines(tmp_path / "ds", [b'{"image": "ok.png"}', line])
    with pytest.raises(error) as caught:
        NormalizedDataset(tmp_path / "ds", "train")
    assert type(caught.value) is error
    assert caught.value.file == str(split)
    assert caught.value.location == location
    assert message in caught.value.message


def test_blank_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    _write_lines(tmp_path / "ds", [b'{"image": "a.png"}', b"", b"  ", b'{"image": "b.png"}'])
    ds = NormalizedDataset(tmp_path / "ds", "train", load_images=False)
    assert len(ds) == 2 and ds.record_line(1) == 4


def test_manifest_and_split_problems(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match=r"annonorm\.json"):
        NormalizedDataset(tmp_path, "train")
    directory = _dataset(tmp_path / "ds")
    with pytest.raises(UsageError, match="no split 'val'"):
        NormalizedDataset(directory, "val")
    with pytest.raises(UsageError, match="on_missing"):
        NormalizedDataset(directory, "train", on_missing="ignore")  # type: ignore[arg-type]
    (directory / "train.jsonl").unlink()
    with pytest.raises(ParseError, match="split file does not exist"):
        NormalizedDataset(directory, "train")


# ------------------------------------------------------------------------------- cache (more: test_loader_cache.py)


def test_check_index_reports_inconsistencies(tmp_path: Path) -> None:
    ds = NormalizedDataset(_dataset(tmp_path / "ds"), "train")
    arrays = dict(ds._index.arrays)
    assert check_index(arrays, len(CATEGORIES)) is None
    assert check_index(arrays, 1) == "box_labels holds a category id outside 0..0"
    arrays["mask_offsets"] = np.array([0, 0, 0], np.int64)
    assert check_index(arrays, len(CATEGORIES)) == "mask_offsets does not span mask_bytes"


def test_pickles_small_and_remaps_the_cache(tmp_path: Path) -> None:
    many = [_record(f"img/{k}.png", [_box("cat", 0, 0, 1, 1)] * 5, id=k) for k in range(2000)]
    directory = _dataset(tmp_path / "ds", many)
    for k in range(2000):
        (directory / "img" / f"{k}.png").unlink()
    ds = NormalizedDataset(directory, "train", load_images=False)
    payload = pickle.dumps(ds)
    assert len(payload) < 4000 < ds._index.nbytes  # the arrays stay in the cache files
    restored = pickle.loads(payload)
    assert restored[1999][1]["image_id"] == 1999
    assert not restored._index.boxes.flags.owndata


def test_importing_the_dataset_does_not_import_torch() -> None:
    code = "import sys, annonorm.dataset; print('torch' in sys.modules)"
    output = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert output.strip() == "False"


_FORKED_DATASET: NormalizedDataset | None = None


def _freeze_count_after_first_item() -> tuple[int, int]:
    assert _FORKED_DATASET is not None
    before = gc.get_freeze_count()
    _FORKED_DATASET[0]
    return before, gc.get_freeze_count()


def test_a_forked_worker_freezes_what_it_inherited(tmp_path: Path) -> None:
    """The first item a DataLoader worker loads moves the parent's objects out of the collector's walk."""
    global _FORKED_DATASET
    _FORKED_DATASET = NormalizedDataset(_dataset(tmp_path / "ds"), load_images=False)
    _FORKED_DATASET[0]
    assert gc.get_freeze_count() == 0  # the parent process is left alone
    try:
        with multiprocessing.get_context("fork").Pool(1) as pool:
            before, after = pool.apply(_freeze_count_after_first_item)
    finally:
        _FORKED_DATASET = None
    assert before == 0 and after > 0


def test_annonorm_load_and_open_are_the_dataset(tmp_path: Path) -> None:
    import annonorm

    root = _dataset(tmp_path / "ds")
    for opener in (annonorm.load, annonorm.open):
        dataset = opener(root, "train", load_images=False)
        assert isinstance(dataset, NormalizedDataset) and len(dataset) == len(RECORDS)
