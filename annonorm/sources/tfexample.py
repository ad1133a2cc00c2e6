"""TFRecord files and the ``tf.train.Example`` protocol buffer, read and written without TensorFlow.

A TFRecord file is a sequence of records, each framed as::

    uint64 length (little endian) | uint32 masked CRC32C of the 8 length bytes | data | uint32 masked CRC32C of data

The mask is TensorFlow's: ``((crc >> 15 | crc << 17) + 0xA282EAD8) mod 2**32``; CRC32C is the Castagnoli
polynomial (reflected 0x82F63B78), computed here with a 256-entry table (no native package is required).

A ``tf.train.Example`` is ``Example{features: Features = 1}``, ``Features{feature: map<string, Feature> = 1}``
(map entries are messages ``{key: string = 1, value: Feature = 2}``), and ``Feature`` is one of
``bytes_list = 1`` (``{value: repeated bytes = 1}``), ``float_list = 2`` (``{value: repeated float = 1}``) or
``int64_list = 3`` (``{value: repeated int64 = 1}``). Repeated numbers may be packed (one length-delimited
field) or not (one field per value); both are read, packed is written. Unknown fields are skipped, as protobuf
does; a known field with the wrong wire type, a length running past its message or a truncated varint is a
:class:`ProtoError` with the byte offset inside the record.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from annonorm.errors import ParseError
from annonorm.fsutil import open_regular

__all__ = [
    "BYTES",
    "FLOATS",
    "INTS",
    "ProtoError",
    "crc32c",
    "decode_example",
    "encode_example",
    "frame_record",
    "iter_records",
    "masked_crc",
]

#: The kinds of a ``Feature``, as :func:`decode_example` names them.
BYTES, FLOATS, INTS = "bytes", "float", "int64"
_KIND_FIELDS = {1: BYTES, 2: FLOATS, 3: INTS}
_FIELD_OF_KIND = {kind: number for number, kind in _KIND_FIELDS.items()}
_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5
_MASK_DELTA = 0xA282EAD8
_HEADER = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")
#: A record longer than this is refused before it is read (a corrupt length would otherwise allocate it).
MAX_RECORD_BYTES = 1 << 31


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE = _crc_table()
#: Inputs this long or longer are cut into lanes of this many bytes, all advanced at once with numpy.
_LANE = 256


def _crc_bytes(data: bytes, crc: int) -> int:
    """The raw (not inverted) CRC register after feeding ``data`` into ``crc``, one byte at a time."""
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc


@functools.cache
def _zeros_operator() -> tuple[tuple[int, ...], ...]:
    """What feeding ``_LANE`` zero bytes does to the register (a linear map), as four byte lookup tables."""
    columns = [_crc_bytes(bytes(_LANE), 1 << bit) for bit in range(32)]
    tables = []
    for part in range(4):
        table = []
        for value in range(256):
            image = 0
            for bit in range(8):
                if value >> bit & 1:
                    image ^= columns[part * 8 + bit]
            table.append(image)
        tables.append(tuple(table))
    return tuple(tables)


def _crc_lanes(data: bytes, crc: int) -> tuple[int, int]:
    """The register after the whole ``_LANE``-byte lanes of ``data``, and how many bytes they cover.

    The CRC is linear: ``crc(state, A + B) = zeros_len(B)(crc(state, A)) ^ crc(0, B)``. Every lane's CRC from 0
    is computed at once (numpy gathers), then the lanes are folded in order with the zero-bytes operator.
    """
    import numpy as np

    count = len(data) // _LANE
    lanes = np.frombuffer(data, dtype=np.uint8, count=count * _LANE).reshape(count, _LANE).T.copy()
    table = np.asarray(_TABLE, dtype=np.uint32)
    state = np.zeros(count, dtype=np.uint32)
    state[0] = crc
    for column in lanes:
        state = table[(state ^ column) & 0xFF] ^ (state >> 8)
    t0, t1, t2, t3 = _zeros_operator()
    values = state.tolist()
    register = values[0]
    for value in values[1:]:
        register = t0[register & 0xFF] ^ t1[register >> 8 & 0xFF] ^ t2[register >> 16 & 0xFF] ^ t3[register >> 24]
        register ^= value
    return register, count * _LANE


def crc32c(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """The CRC32C (Castagnoli) of ``data``, continuing from ``crc``."""
    data = bytes(data)
    register, done = crc ^ 0xFFFFFFFF, 0
    if len(data) >= 16 * _LANE:
        register, done = _crc_lanes(data, register)
    return _crc_bytes(data[done:], register) ^ 0xFFFFFFFF


def masked_crc(data: bytes | bytearray | memoryview) -> int:
    """TFRecord's masked CRC32C of ``data``."""
    crc = crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


# ---------------------------------------------------------------------------------------------- record framing


def _read_exactly(stream: IO[bytes], size: int, path: Path, offset: int, what: str) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise ParseError(
            f"truncated record: expected {size} bytes of {what}, found {len(data)}",
            file=path,
            location=f"byte {offset}",
        )
    return data


def iter_records(path: Path, *, check_crc: bool = True) -> Iterator[tuple[int, bytes]]:
    """``(byte offset, data)`` of each record of the TFRecord file ``path``.

    A bad length or data CRC, or a file ending inside a record, is a :class:`ParseError` naming the file and
    the byte offset of the record.
    """
    with open_regular(path, "TFRecord file") as stream:
        offset = 0
        while True:
            header = stream.read(_HEADER.size)
            if not header:
                return
            if len(header) != _HEADER.size:
                raise ParseError(
                    f"truncated record: expected a {_HEADER.size}-byte header, found {len(header)} bytes",
                    file=path,
                    location=f"byte {offset}",
                )
            length, length_crc = _HEADER.unpack(header)
            if check_crc and masked_crc(header[:8]) != length_crc:
                raise ParseError(
                    "corrupt record: the length's CRC32C does not match", file=path, location=f"byte {offset}"
                )
            if length > MAX_RECORD_BYTES:
                raise ParseError(
                    f"record length {length} is beyond any image record", file=path, location=f"byte {offset}"
                )
            data = _read_exactly(stream, length, path, offset, "data")
            (data_crc,) = _FOOTER.unpack(_read_exactly(stream, _FOOTER.size, path, offset, "the data CRC"))
            if check_crc and masked_crc(data) != data_crc:
                raise ParseError(
                    "corrupt record: the data's CRC32C does not match", file=path, location=f"byte {offset}"
                )
            yield offset, data
            offset += _HEADER.size + length + _FOOTER.size


def frame_record(data: bytes) -> bytes:
    """One record framed for a TFRecord file (length, its masked CRC, data, the data's masked CRC)."""
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc(length)) + data + struct.pack("<I", masked_crc(data))


# ---------------------------------------------------------------------------------------------- protobuf wire format


class ProtoError(ValueError):
    """A ``tf.train.Example`` that does not decode; ``offset`` is the byte inside the record."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"{message} (at byte {offset} of the record)")
        self.offset = offset


def _varint(data: bytes, position: int, end: int) -> tuple[int, int]:
    result = shift = 0
    start = position
    while True:
        if position >= end:
            raise ProtoError("truncated varint", start)
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7
        if shift >= 70:
            raise ProtoError("varint longer than 10 bytes", start)


def _fields(data: bytes, start: int, end: int) -> Iterator[tuple[int, int, int, Any]]:
    """``(field number, wire type, offset, value)``: an int for varints and fixed fields, ``(start, end)`` for
    length-delimited ones."""
    position = start
    while position < end:
        offset = position
        key, position = _varint(data, position, end)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == _VARINT:
            value, position = _varint(data, position, end)
        elif wire in (_FIXED64, _FIXED32):
            size = 8 if wire == _FIXED64 else 4
            if position + size > end:
                raise ProtoError(f"truncated {size * 8}-bit field {number}", offset)
            value = int.from_bytes(data[position : position + size], "little")
            position += size
        elif wire == _LENGTH:
            size, position = _varint(data, position, end)
            if position + size > end:
                raise ProtoError(f"field {number} claims {size} bytes, past the end of its message", offset)
            value = (position, position + size)
            position += size
        else:
            raise ProtoError(f"unsupported wire type {wire} of field {number}", offset)
        yield number, wire, offset, value


def _expect(wire: int, wanted: int, what: str, offset: int) -> None:
    if wire != wanted:
        raise ProtoError(f"{what} has wire type {wire}, expected {wanted}", offset)


def _int64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _list(data: bytes, kind: str, start: int, end: int) -> list[Any]:
    values: list[Any] = []
    for number, wire, offset, value in _fields(data, start, end):
        if number != 1:
            continue
        if kind == BYTES:
            _expect(wire, _LENGTH, "a bytes_list value", offset)
            values.append(data[value[0] : value[1]])
        elif kind == FLOATS and wire == _LENGTH:
            if (value[1] - value[0]) % 4:
                raise ProtoError("a packed float_list is not a multiple of 4 bytes", offset)
            values.extend(struct.unpack_from(f"<{(value[1] - value[0]) // 4}f", data, value[0]))
        elif kind == FLOATS:
            _expect(wire, _FIXED32, "a float_list value", offset)
            values.append(struct.unpack("<f", value.to_bytes(4, "little"))[0])
        elif wire == _LENGTH:
            position = value[0]
            while position < value[1]:
                number_value, position = _varint(data, position, value[1])
                values.append(_int64(number_value))
        else:
            _expect(wire, _VARINT, "an int64_list value", offset)
            values.append(_int64(value))
    return values


def _feature(data: bytes, start: int, end: int) -> tuple[str, list[Any]]:
    found: tuple[str, list[Any]] | None = None
    for number, wire, offset, value in _fields(data, start, end):
        if number in _KIND_FIELDS:
            _expect(wire, _LENGTH, "a Feature's list", offset)
            found = (_KIND_FIELDS[number], _list(data, _KIND_FIELDS[number], *value))
    return found if found is not None else (BYTES, [])


def decode_example(data: bytes) -> dict[str, tuple[str, list[Any]]]:
    """The features of a serialized ``tf.train.Example``: name -> (kind, values), kind one of
    :data:`BYTES`, :data:`FLOATS`, :data:`INTS`. Raises :class:`ProtoError`."""
    features: dict[str, tuple[str, list[Any]]] = {}
    for number, wire, offset, value in _fields(data, 0, len(data)):
        if number != 1:
            continue
        _expect(wire, _LENGTH, "Example.features", offset)
        for entry_number, entry_wire, entry_offset, entry in _fields(data, *value):
            if entry_number != 1:
                continue
            _expect(entry_wire, _LENGTH, "a feature map entry", entry_offset)
            key = b""
            feature: tuple[str, list[Any]] = (BYTES, [])
            for part_number, part_wire, part_offset, part in _fields(data, *entry):
                if part_number == 1:
                    _expect(part_wire, _LENGTH, "a feature name", part_offset)
                    key = data[part[0] : part[1]]
                elif part_number == 2:
                    _expect(part_wire, _LENGTH, "a Feature", part_offset)
                    feature = _feature(data, *part)
            try:
                features[key.decode("utf-8")] = feature
            except UnicodeDecodeError:
                raise ProtoError("a feature name is not UTF-8", entry_offset) from None
    return features


def _encode_varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _delimited(number: int, payload: bytes) -> bytes:
    return _encode_varint(number << 3 | _LENGTH) + _encode_varint(len(payload)) + payload


def _encode_list(kind: str, values: Sequence[Any]) -> bytes:
    if kind == BYTES:
        return b"".join(_delimited(1, bytes(v)) for v in values)
    if not values:
        return b""
    if kind == FLOATS:
        return _delimited(1, struct.pack(f"<{len(values)}f", *values))
    return _delimited(1, b"".join(_encode_varint(int(v)) for v in values))


def encode_example(
    features: Mapping[str, tuple[str, Sequence[Any]]] | Iterable[tuple[str, tuple[str, Sequence[Any]]]],
) -> bytes:
    """A serialized ``tf.train.Example`` of ``name -> (kind, values)``, in the given order (packed numbers)."""
    items = features.items() if isinstance(features, Mapping) else features
    entries = b""
    for name, (kind, values) in items:
        feature = _delimited(_FIELD_OF_KIND[kind], _encode_list(kind, values))
        entries += _delimited(1, _delimited(1, name.encode("utf-8")) + _delimited(2, feature))
    return _delimited(1, entries)
