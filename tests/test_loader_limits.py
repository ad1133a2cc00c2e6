"""What the loader's arrays cannot hold is refused with the place named, as ``annonorm validate`` refuses it.

The limits are the format's (``annonorm.schemas.types``: ``INT32_MAX``, ``INT64_MAX``, ``FLOAT32_MAX``):
sides int32, ids and counts int64, corners and areas float32. A value that breaks one never turns
into inf or wraps around inside the index.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from annonorm.dataset import NormalizedDataset
from annonorm.errors import InvalidDataError
from annonorm.schemas.types import FLOAT32_MAX, INT32_MAX, INT64_MAX
from annonorm.testing import write_dataset
from annonorm.validation import validate


@pytest.fixture(autouse=True)
def user_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    directory = tmp_path / "user-cache"
    monkeypatch.setenv("ANNONORM_CACHE_DIR", str(directory))
    yield directory


def _box(x2: str = "2", y2: str = "2", attributes: str = "") -> str:
    extra = f', "attributes": {{{attributes}}}' if attributes else ""
    return f'{{"name": "cat", "x1": 0, "y1": 0, "x2": {x2}, "y2": {y2}{extra}}}'


def _line(boxes: str = "", **fields: str) -> bytes:
    parts = ['"image": "a.png"', f'"boxes": [{boxes}]' if boxes else '"boxes": []']
    parts += [f'"{key}": {value}' for key, value in fields.items()]
    return ("{" + ", ".join(parts) + "}").encode()


CASES = {
    "corner beyond float32": (_line(_box(x2="1e39")), "line 1", "$.boxes[0].x2"),
    "box area beyond float32": (_line(_box(x2="3e38", y2="3e38")), "line 1: boxes[0]", "box area 9e+76"),
    "area attribute beyond float32": (
        _line(_box(attributes='"area": 1e39')),
        "line 1: boxes[0].attributes.area",
        "attributes.area is beyond float32",
    ),
    "area attribute a huge integer": (
        _line(_box(attributes='"area": 1' + "0" * 400)),
        "line 1: boxes[0].attributes.area",
        "attributes.area is beyond float32",
    ),
    "side beyond int32": (_line(width=str(INT32_MAX + 1), height="3"), "line 1", "$.width"),
    "id beyond int64": (_line(id=str(INT64_MAX + 1)), "line 1", "$.id"),
    "count beyond int64": (_line(counts=f'{{"cat": {INT64_MAX + 1}}}'), "line 1", "$.counts"),
}


def _write(directory: Path, line: bytes) -> Path:
    write_dataset(directory, ["cat"], {"train": []})
    (directory / "train.jsonl").write_bytes(line + b"\n")
    return directory


@pytest.mark.parametrize("case", CASES)
def test_what_the_arrays_cannot_hold_is_refused_with_the_place(tmp_path: Path, case: str) -> None:
    line, location, message = CASES[case]
    directory = _write(tmp_path / "ds", line)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy overflow warning reaches the user
        with pytest.raises(InvalidDataError) as caught:
            NormalizedDataset(directory, load_images=False)
    assert caught.value.location == location
    assert message in caught.value.message
    assert caught.value.file == str(directory / "train.jsonl")


@pytest.mark.parametrize("case", CASES)
def test_the_validator_refuses_what_the_loader_refuses(tmp_path: Path, case: str) -> None:
    directory = _write(tmp_path / "ds", CASES[case][0])
    assert not validate(directory).valid


def test_the_largest_values_the_arrays_hold_load(tmp_path: Path) -> None:
    big = repr(FLOAT32_MAX)
    line = _line(
        _box(x2=big, y2="1", attributes=f'"area": {big}'),
        width=str(INT32_MAX),
        height="1",
        id=str(INT64_MAX),
        counts=f'{{"cat": {INT64_MAX}}}',
    )
    directory = _write(tmp_path / "ds", line)
    target = NormalizedDataset(directory, load_images=False).target(0)
    assert np.isfinite(target["boxes"]).all() and target["boxes"][0, 2] == np.float32(FLOAT32_MAX)
    assert target["area"][0] == np.float32(FLOAT32_MAX)
    assert target["image_id"] == INT64_MAX and target["counts"] == {"cat": INT64_MAX}


def test_a_nul_in_a_path_is_refused_with_the_place(tmp_path: Path) -> None:
    directory = _write(tmp_path / "ds", b'{"image": "a\\u0000.png"}')
    with pytest.raises(InvalidDataError) as caught:
        NormalizedDataset(directory, load_images=False)
    assert (caught.value.location, caught.value.message) == ("line 1: image", "path must not contain a NUL character")


def test_a_semantic_mask_value_beyond_uint8_is_refused_not_wrapped(tmp_path: Path) -> None:
    directory = tmp_path / "ds"
    record = {"image": "a.png", "width": 4, "height": 3, "labels": [], "counts": {}, "boxes": [], "mask": "m.png"}
    write_dataset(directory, ["cat"], {"train": [record]}, mask_kind="semantic")
    Image.new("RGB", (4, 3)).save(directory / "a.png")
    pixels = np.full((3, 4), 1, np.uint16)
    pixels[0, 0] = 257  # as uint8 this would silently read as 1, category 0
    Image.fromarray(pixels).save(directory / "m.png")
    with pytest.raises(InvalidDataError, match=r"record 0: semantic mask .* holds values beyond 0\.\.255 \(1\.\.257\)"):
        NormalizedDataset(directory, masks=True)[0]
    pixels[0, 0] = 255  # void, in a 16-bit file: fine
    Image.fromarray(pixels).save(directory / "m.png")
    assert NormalizedDataset(directory, masks=True)[0][1]["mask"][0, 0] == 255
