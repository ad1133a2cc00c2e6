"""Hostile inputs of the TFRecord converter (issue 15, items 2 and 10): bad CRCs, truncated records, wrong wire
types, impossible lengths, missing shards and unsafe file names, built with make_corpus's helpers."""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from typing import Any

from hostile.make_corpus import OUT, Case, FileSpec, garbage

_CONVERT = ("convert", "tfrecord", "{root}/src", "-o", OUT)


def _example(**features: tuple[str, list[Any]]) -> bytes:
    from annonorm.sources.tfexample import encode_example

    return encode_example({name.replace("__", "/"): value for name, value in features.items()})


def _good(**features: tuple[str, list[Any]]) -> dict[str, tuple[str, list[Any]]]:
    base: dict[str, tuple[str, list[Any]]] = {
        "image__filename": ("bytes", [b"a.jpg"]),
        "image__width": ("int64", [10]),
        "image__height": ("int64", [10]),
    }
    return base | features


def _records(
    *payloads: Callable[[], bytes] | bytes, edit: Callable[[bytes], bytes] | None = None
) -> Callable[[], bytes]:
    def build() -> bytes:
        from annonorm.sources.tfexample import frame_record

        data = b"".join(frame_record(p() if callable(p) else p) for p in payloads)
        return edit(data) if edit is not None else data

    return build


def _flip(position: int) -> Callable[[bytes], bytes]:
    def edit(data: bytes) -> bytes:
        changed = bytearray(data)
        changed[position] ^= 0xFF
        return bytes(changed)

    return edit


def _huge_length() -> bytes:
    from annonorm.sources.tfexample import masked_crc

    length = struct.pack("<Q", 1 << 40)
    return length + struct.pack("<I", masked_crc(length)) + b"\x00" * 16


def _case(name: str, files: Mapping[str, FileSpec], exit_code: int, fragment: str, **kwargs: Any) -> Case:
    args = kwargs.pop("args", _CONVERT)
    return Case(name, "tfrecord", args, files, exit_code, fragment, absent=("Traceback",), **kwargs)


def _one(**features: tuple[str, list[Any]]) -> Callable[[], bytes]:
    return _records(lambda: _example(**_good(**features)))


CASES: list[Case] = [
    _case("tfrecord_bad_data_crc", {"src/a.tfrecord": _records(b"\x0a\x00", edit=_flip(13))}, 2, "data's CRC32C"),
    _case("tfrecord_bad_length_crc", {"src/a.tfrecord": _records(b"\x0a\x00", edit=_flip(9))}, 2, "length's CRC32C"),
    _case(
        "tfrecord_truncated_record",
        {"src/a.tfrecord": _records(b"\x0a\x00", b"\x0a\x00" * 20, edit=lambda d: d[:-7])},
        2,
        "byte 18: truncated record",
    ),
    _case("tfrecord_truncated_header", {"src/a.tfrecord": b"\x05\x00\x00"}, 2, "truncated record"),
    _case("tfrecord_impossible_length", {"src/a.tfrecord": _huge_length}, 2, "beyond any image record"),
    _case("tfrecord_garbage", {"src/a.tfrecord": garbage()}, 2, "CRC32C does not match"),
    _case("tfrecord_wrong_wire_type", {"src/a.tfrecord": _records(b"\x08\x01")}, 1, "wire type 0, expected 2"),
    _case("tfrecord_length_past_message", {"src/a.tfrecord": _records(b"\x0a\x7f\x0a")}, 1, "past the end"),
    _case(
        "tfrecord_floats_as_bytes",
        {"src/a.tfrecord": _one(image__object__bbox__xmin=("bytes", [b"0.1"]))},
        1,
        "as a float_list",
    ),
    _case(
        "tfrecord_bbox_lengths_differ",
        {
            "src/a.tfrecord": _one(
                image__object__bbox__xmin=("float", [0.1, 0.2]),
                image__object__bbox__xmax=("float", [0.5]),
                image__object__bbox__ymin=("float", [0.1, 0.2]),
                image__object__bbox__ymax=("float", [0.5, 0.6]),
            )
        },
        1,
        "different lengths",
    ),
    _case(
        "tfrecord_boxes_without_size",
        {
            "src/a.tfrecord": _records(
                lambda: _example(
                    image__filename=("bytes", [b"a.jpg"]),
                    **{f"image__object__bbox__{s}": ("float", [0.5]) for s in ("xmin", "xmax", "ymin", "ymax")},
                    image__object__class__text=("bytes", [b"cat"]),
                )
            )
        },
        1,
        "need image/width and image/height",
    ),
    _case(
        "tfrecord_missing_shard",
        {"src/train.tfrecord-00000-of-00003": _one(), "src/train.tfrecord-00002-of-00003": _one()},
        2,
        "missing [1]",
    ),
    _case(
        "tfrecord_bad_label_map",
        {"src/a.tfrecord": _one(), "src/label_map.pbtxt": "item {\n  name: 'cat'\n}\n"},
        2,
        "label_map.pbtxt:line 1: expected item { id: <integer>",
    ),
    _case(
        "tfrecord_extract_climbs_out",
        {"src/a.tfrecord": _one(image__filename=("bytes", [b"../../evil.jpg"]), image__encoded=("bytes", [b"x"]))},
        1,
        "must not climb out",
        args=(*_CONVERT, "--extract-images", "images"),
    ),
]
