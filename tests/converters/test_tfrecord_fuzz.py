"""Properties of the TFRecord reader and the Example codec on drawn and damaged input.

- Drawn features (bytes, float and int64 lists, empty ones too) encode and decode to themselves.
- Drawn bytes given to the Example decoder either decode or raise :class:`ProtoError` (never another exception).
- A drawn TFRecord file (boxes as fractions of a drawn image size) reads into exactly the drawn boxes (computed
  here); the same file with one byte flipped, or cut at a drawn place, either converts into a valid dataset or
  fails with an :class:`~annonorm.errors.AnnonormError` naming a byte offset, and a failure leaves no output.
"""

from __future__ import annotations

import math
import random
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annonorm.api import convert
from annonorm.errors import AnnonormError
from annonorm.io import open_dataset
from annonorm.sources.tfexample import (
    BYTES,
    FLOATS,
    INTS,
    ProtoError,
    crc32c,
    decode_example,
    encode_example,
    frame_record,
)
from annonorm.validation import validate_dataset

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NAMES = ("cat", "dog")


_features = st.dictionaries(
    st.text(min_size=0, max_size=12),
    st.one_of(
        st.tuples(st.just(BYTES), st.lists(st.binary(max_size=20), max_size=4)),
        st.tuples(st.just(FLOATS), st.lists(st.floats(width=32, allow_nan=False), max_size=4)),
        st.tuples(st.just(INTS), st.lists(st.integers(-(2**63), 2**63 - 1), max_size=4)),
    ),
    max_size=5,
)


@SETTINGS
@given(_features)
def test_drawn_features_encode_and_decode_to_themselves(features: dict[str, tuple[str, list[Any]]]) -> None:
    decoded = decode_example(encode_example(features))
    # An empty list has no kind on the wire beyond its Feature field: the kind is kept, the values are [].
    assert decoded == features


def _bitwise_crc32c(data: bytes) -> int:
    """CRC32C by its definition, one bit at a time (reflected polynomial 0x82F63B78)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 12_000), st.integers(0, 2**32 - 1))
def test_the_lane_crc_equals_the_bitwise_definition(size: int, seed: int) -> None:
    data = random.Random(seed).randbytes(size)
    assert crc32c(data) == _bitwise_crc32c(data)
    cut = size // 3
    assert crc32c(data[cut:], crc32c(data[:cut])) == crc32c(data)


@SETTINGS
@given(st.binary(max_size=200))
def test_drawn_bytes_decode_or_raise_a_proto_error(data: bytes) -> None:
    try:
        decode_example(data)
    except ProtoError as error:
        assert 0 <= error.offset <= len(data)


@st.composite
def _images(draw: st.DrawFn) -> list[dict[str, Any]]:
    images = []
    for index in range(draw(st.integers(1, 3))):
        width, height = draw(st.integers(1, 500)), draw(st.integers(1, 500))
        boxes = []
        for _ in range(draw(st.integers(0, 4))):
            xs = sorted(draw(st.lists(st.floats(0, 1, width=32), min_size=2, max_size=2)))
            ys = sorted(draw(st.lists(st.floats(0, 1, width=32), min_size=2, max_size=2)))
            boxes.append({"name": draw(st.sampled_from(NAMES)), "x": xs, "y": ys})
        images.append({"image": f"img{index}.jpg", "width": width, "height": height, "boxes": boxes})
    return images


def _file(images: list[dict[str, Any]]) -> bytes:
    records = []
    for image in images:
        boxes = image["boxes"]
        features = {
            "image/filename": (BYTES, [image["image"].encode()]),
            "image/width": (INTS, [image["width"]]),
            "image/height": (INTS, [image["height"]]),
            "image/object/bbox/xmin": (FLOATS, [b["x"][0] for b in boxes]),
            "image/object/bbox/xmax": (FLOATS, [b["x"][1] for b in boxes]),
            "image/object/bbox/ymin": (FLOATS, [b["y"][0] for b in boxes]),
            "image/object/bbox/ymax": (FLOATS, [b["y"][1] for b in boxes]),
            "image/object/class/text": (BYTES, [b["name"].encode() for b in boxes]),
            "image/object/class/label": (INTS, [NAMES.index(b["name"]) + 1 for b in boxes]),
        }
        records.append(frame_record(encode_example(features)))
    return b"".join(records)


LABEL_MAP = "item { id: 1 name: 'cat' }\nitem { id: 2 name: 'dog' }\n"


@SETTINGS
@given(_images())
def test_a_drawn_file_reads_into_the_drawn_boxes(images: list[dict[str, Any]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        (src / "train.tfrecord").write_bytes(_file(images))
        (src / "label_map.pbtxt").write_text(LABEL_MAP)
        convert("tfrecord", src, Path(tmp) / "out")
        got = list(open_dataset(Path(tmp) / "out").records("train"))
    assert [r["image"] for r in got] == [i["image"] for i in images]
    for record, image in zip(got, images, strict=True):
        w, h = image["width"], image["height"]
        want = [(b["name"], b["x"][0] * w, b["y"][0] * h, b["x"][1] * w, b["y"][1] * h) for b in image["boxes"]]
        have = [(b["name"], b["x1"], b["y1"], b["x2"], b["y2"]) for b in record["boxes"]]
        assert [v[0] for v in have] == [v[0] for v in want]
        for mine, theirs in zip(have, want, strict=True):
            assert all(math.isclose(a, b, abs_tol=1e-6) for a, b in zip(mine[1:], theirs[1:], strict=True))


@SETTINGS
@given(_images(), st.data())
def test_a_damaged_file_converts_or_fails_with_an_annonorm_error(images: list[dict[str, Any]], data: Any) -> None:
    original = _file(images)
    content = bytearray(original)
    flipped = data.draw(st.booleans())
    if flipped:
        position = data.draw(st.integers(0, len(content) - 1))
        content[position] ^= data.draw(st.integers(1, 255))
    else:
        del content[data.draw(st.integers(0, len(content) - 1)) :]
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "src", Path(tmp) / "out"
        src.mkdir()
        (src / "train.tfrecord").write_bytes(bytes(content))
        try:
            convert("tfrecord", src, out)
        except AnnonormError as error:
            assert "byte" in str(error) or "no tfrecord annotations" in str(error)
            assert not out.exists()
            return
        assert validate_dataset(out).valid
        got = [r["image"] for r in open_dataset(out).records("train")]
    # CRC32C catches every error burst of up to 32 bits: only a file cut at a record boundary converts.
    assert not flipped
    assert got == [i["image"] for i in images[: len(got)]]
    assert len(content) == len(_file(images[: len(got)]))
