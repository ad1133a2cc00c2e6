"""TFRecord (issue 15, item 2): the CRC32C and Example codec, the peer exports end to end, writing, shards, errors.

Per-image box counts of the peer files are taken from the peer README and, independently of the converter's
decoder, from the raw bytes: the packed ``image/object/bbox/xmin`` float list's byte length over 4.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import imagesize
import pytest
from peer import PEER_DATA
from typer.testing import CliRunner

from annonorm.api import convert, export
from annonorm.cli import app
from annonorm.converters.base import make_record
from annonorm.converters.tfrecord import example_to_record, label_map_text, parse_label_map, record_to_example
from annonorm.errors import AnnonormError, ParseError
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
    iter_records,
)
from annonorm.testing import write_dataset
from annonorm.validation import validate

runner = CliRunner()

TF_OD = PEER_DATA / "tf_detection_api_dataset"
ROBOFLOW = PEER_DATA / "roboflow_dataset" / "tfrecord"
#: The peer README's inventory: image -> boxes.
README_COUNTS = {
    TF_OD: {"1.jpg": 3, "2.jpg": 1, "3.jpg": 0},
    ROBOFLOW: {"train_001.jpg": 1, "train_002.jpg": 1, "val_001.jpg": 2},
}


def raw_counts(folder: Path) -> dict[str, int]:
    """image/filename -> number of xmin floats, from the bytes: each framed record (8-byte length, 4-byte CRC,
    data, 4-byte CRC), then in its data the xmin key, the Feature's and FloatList's lengths, the packed length."""
    counts = {}
    for path in folder.rglob("*.tfrecord"):
        data = path.read_bytes()
        position = 0
        while position < len(data):
            (length,) = struct.unpack_from("<Q", data, position)
            body = data[position + 12 : position + 12 + length]
            position += 16 + length
            name = re.search(rb"image/filename\x12.\n.\n.([\w.]+)", body, re.S)
            xmin = re.search(rb"image/object/bbox/xmin\x12.\x12.\n(.)", body, re.S)
            assert name is not None
            counts[name.group(1).decode()] = xmin.group(1)[0] // 4 if xmin else 0
    return counts


# ---------------------------------------------------------------------------------------------- codec


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"123456789", 0xE3069283),  # the CRC-32C check value
        (bytes(32), 0x8A9136AA),  # RFC 3720 B.4 test vectors
        (b"\xff" * 32, 0x62A8AB43),
        (bytes(range(32)), 0x46DD794E),
        (bytes(range(31, -1, -1)), 0x113FDB5C),
    ],
)
def test_crc32c_matches_the_published_vectors(data: bytes, expected: int) -> None:
    assert crc32c(data) == expected


def test_an_example_encodes_and_decodes_with_packed_and_unpacked_numbers() -> None:
    features = {"a": (BYTES, [b"x", b""]), "b": (FLOATS, [0.5, 0.25]), "c": (INTS, [1, -3, 2**40])}
    assert decode_example(encode_example(features)) == features
    # Unpacked int64 values (one varint field each) read the same as packed: Feature int64_list = 3.
    int64_list = b"\x08\x01\x08\x02"
    feature = b"\x1a" + bytes([len(int64_list)]) + int64_list
    entry = b"\x0a\x01c\x12" + bytes([len(feature)]) + feature
    example = b"\x0a" + bytes([len(entry) + 2]) + b"\x0a" + bytes([len(entry)]) + entry
    assert decode_example(example) == {"c": (INTS, [1, 2])}


def test_a_wrong_wire_type_is_a_proto_error_with_its_offset() -> None:
    with pytest.raises(ProtoError, match=r"wire type 0, expected 2 \(at byte 0"):
        decode_example(b"\x08\x01")
    with pytest.raises(ProtoError, match="past the end"):
        decode_example(b"\x0a\x05\x0a")


def test_the_framing_names_the_byte_of_a_corrupt_or_truncated_record(tmp_path: Path) -> None:
    first, second = frame_record(b"one"), frame_record(b"two")
    path = tmp_path / "a.tfrecord"
    path.write_bytes(first + second)
    assert [offset for offset, _ in iter_records(path)] == [0, len(first)]
    path.write_bytes(first + second[:-1] + b"\x00")
    with pytest.raises(ParseError, match="data's CRC32C") as info:
        list(iter_records(path))
    assert info.value.location == f"byte {len(first)}"
    path.write_bytes(first + second[:10])
    with pytest.raises(ParseError, match="truncated record"):
        list(iter_records(path))


def test_the_label_map_text_format_reads_comments_quotes_and_display_names() -> None:
    text = "# classes\nitem {\n  name: \"/m/01\"\n  id: 1\n  display_name: 'it\\'s'\n}\nitem { id: 2 name: 'dog' }\n"
    assert parse_label_map(text=text, file="x") == [(1, "/m/01", "it's"), (2, "dog", None)]
    assert parse_label_map(text=label_map_text(classes=[(1, "a'b"), (7, "c")]), file="x") == [
        (1, "a'b", None),
        (7, "c", None),
    ]
    with pytest.raises(ParseError, match="line 1"):
        parse_label_map(text="item { name: 'x' }", file="x")


def test_a_record_maps_to_an_example_and_back() -> None:
    record = make_record(
        image="d/a.png",
        width=200,
        height=100,
        boxes=[{"name": "cat", "x1": 20.0, "y1": 10.0, "x2": 100.0, "y2": 50.0, "attributes": {"difficult": True}}],
        id=7,
    )
    example = decode_example(record_to_example(record=record, label_ids={"cat": 3}))
    assert example["image/object/class/label"] == (INTS, [3])
    assert example["image/format"] == (BYTES, [b"png"])
    back, encoded = example_to_record(features=example, classes={3: "cat"}, index=0)
    assert back == record and encoded == b""


# ---------------------------------------------------------------------------------------------- peer data


@pytest.mark.parametrize("source", [TF_OD, ROBOFLOW], ids=["tf_detection_api", "roboflow"])
def test_peer_exports_convert_with_the_source_counts(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    convert("tfrecord", source, out)
    assert validate(out).valid
    dataset = open_dataset(out)
    got = {r["image"]: len(r["boxes"]) for split in dataset.manifest.splits for r in dataset.records(split)}
    assert got == README_COUNTS[source] == raw_counts(source)


def test_the_tf_od_labels_come_from_the_label_map_and_label_0_is_kept(tmp_path: Path) -> None:
    convert("tfrecord", TF_OD, tmp_path / "out")
    dataset = open_dataset(tmp_path / "out")
    assert dataset.manifest.category_names[:10] == [f"label_{k}" for k in range(10)]
    assert [c.source_id for c in dataset.manifest.categories[:10]] == list(range(1, 11))
    (train,) = dataset.records("train")
    # label 0 (TF's background) with an empty class text is kept, named by its id.
    assert [b["name"] for b in train["boxes"]] == ["label_2", "label_3", "0"]
    # 16x16 image, xmin 0.125 xmax 0.375 ymin 0.25 ymax 0.5 -> corners in pixels.
    assert train["boxes"][2] | {"name": "0"} == {"name": "0", "x1": 2.0, "y1": 4.0, "x2": 6.0, "y2": 8.0}
    assert sorted(dataset.manifest.splits) == ["test", "train", "val"]


def test_embedded_images_are_extracted_under_the_output(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["convert", "tfrecord", str(TF_OD), "-o", str(out), "--extract-images", "images"])
    assert result.exit_code == 0, result.output
    sizes = {p.name: imagesize.get(str(p)) for p in (out / "images").iterdir()}
    assert sizes == {"1.jpg": (16, 16), "2.jpg": (8, 8), "3.jpg": (4, 5)}


# ---------------------------------------------------------------------------------------------- writing


def test_export_writes_the_label_map_ids_and_embeds_images(tmp_path: Path) -> None:
    convert("tfrecord", TF_OD, tmp_path / "ds")
    (tmp_path / "images").mkdir()
    jpegs = {}
    for _, data in iter_records(TF_OD / "train.tfrecord"):
        features = decode_example(data)
        jpegs[features["image/filename"][1][0].decode()] = features["image/encoded"][1][0]
    for name, data in jpegs.items():
        (tmp_path / "images" / name).write_bytes(data)
    manifest = json.loads((tmp_path / "ds" / "annonorm.json").read_text())
    manifest["image_root"], manifest["splits"] = "../images", {"train": "train.jsonl"}
    (tmp_path / "ds" / "annonorm.json").write_text(json.dumps(manifest))
    export("tfrecord", tmp_path / "ds", tmp_path / "tf", embed_images=True)
    items = parse_label_map(text=(tmp_path / "tf" / "label_map.pbtxt").read_text(), file="x")
    assert items[:10] == [(k + 1, f"label_{k}", None) for k in range(10)]
    ((_, data),) = iter_records(tmp_path / "tf" / "train.tfrecord")
    assert decode_example(data)["image/encoded"] == (BYTES, [jpegs["1.jpg"]])
    assert decode_example(data)["image/object/class/label"] == (INTS, [3, 4, 11])  # "0" is the 11th category
    convert("tfrecord", tmp_path / "tf", tmp_path / "back")
    back = open_dataset(tmp_path / "back")
    assert [len(r["boxes"]) for r in back.records("train")] == [3]
    assert back.manifest.category_names == open_dataset(tmp_path / "ds").manifest.category_names


def test_the_image_root_of_extracted_images_is_inside_the_output(tmp_path: Path) -> None:
    convert("tfrecord", TF_OD, tmp_path / "out", extract_images="images")
    assert json.loads((tmp_path / "out" / "annonorm.json").read_text())["image_root"] == "images"


def test_an_unknown_image_size_cannot_be_written(tmp_path: Path) -> None:
    write_dataset(tmp_path / "ds", ["a"], {"train": [make_record(image="a.jpg", width=None, height=None)]})
    with pytest.raises(AnnonormError, match="image size is unknown"):
        export("tfrecord", tmp_path / "ds", tmp_path / "tf")


def _shard(path: Path, images: list[str]) -> None:
    path.write_bytes(
        b"".join(frame_record(encode_example({"image/filename": (BYTES, [name.encode()])})) for name in images)
    )


def test_shards_are_one_split_in_shard_order_and_a_missing_shard_is_an_error(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _shard(src / "train.tfrecord-00001-of-00002", ["c.jpg"])
    _shard(src / "train.tfrecord-00000-of-00002", ["a.jpg", "b.jpg"])
    convert("tfrecord", src, tmp_path / "out")
    assert [r["image"] for r in open_dataset(tmp_path / "out").records("train")] == ["a.jpg", "b.jpg", "c.jpg"]
    (src / "train.tfrecord-00001-of-00002").unlink()
    result = runner.invoke(app, ["convert", "tfrecord", str(src), "-o", str(tmp_path / "again")])
    assert result.exit_code == 2
    assert "incomplete shard set: expected 2 shards, missing [1]" in result.output


def test_a_corrupt_crc_is_one_line_with_the_file_and_byte(tmp_path: Path) -> None:
    data = bytearray((TF_OD / "train.tfrecord").read_bytes())
    data[40] ^= 0xFF
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.tfrecord").write_bytes(bytes(data))
    result = runner.invoke(app, ["convert", "tfrecord", str(tmp_path / "src"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "train.tfrecord:byte 0: corrupt record: the data's CRC32C does not match" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


def test_a_filename_climbing_out_of_the_extract_folder_is_refused(tmp_path: Path) -> None:
    example = {"image/filename": (BYTES, [b"../evil.jpg"]), "image/encoded": (BYTES, [b"\xff\xd8"])}
    (tmp_path / "a.tfrecord").write_bytes(frame_record(encode_example(example)))
    result = runner.invoke(
        app, ["convert", "tfrecord", str(tmp_path / "a.tfrecord"), "-o", str(tmp_path / "o"), "--extract-images", "im"]
    )
    assert result.exit_code != 0
    assert "must not climb out" in result.output
    assert not (tmp_path / "evil.jpg").exists() and not (tmp_path / "o").exists()


def test_the_manifest_records_the_source_files(tmp_path: Path) -> None:
    convert("tfrecord", ROBOFLOW, tmp_path / "out")
    manifest = json.loads((tmp_path / "out" / "annonorm.json").read_text())
    names = sorted(Path(f["path"]).name for f in manifest["source"]["files"])
    assert names == ["label_map.pbtxt", "label_map.pbtxt", "train.tfrecord", "val.tfrecord"]
