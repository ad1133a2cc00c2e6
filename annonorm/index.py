"""The loader's index: a split decoded into a few numpy arrays, checked, and cached by content.

:func:`~annonorm.index_build.build_index` decodes a split in one streaming pass into flat numpy
arrays (see :mod:`annonorm.index_build`); :func:`check_index` checks them. No Python object per
record survives, so forked DataLoader workers share every page of it (a list of dicts is copied
through reference-count writes). The arrays hold what the format allows (:mod:`annonorm.schemas.types`).

:func:`open_index` caches it: one file per split content (the SHA-256 of the split's bytes and of
the category names and keypoint counts) under ``index-v3/`` in the user's cache directory (:func:`cache_root`), never
in the dataset; memory-mapped read-only, written atomically (beside it, then renamed). A stamp per
split path (size, mtime_ns, ctime_ns, inode, device, taken after git's "racy clean" window) spares
the hashing. Every open checks the file (layout, a CRC-32 per array, :func:`check_index`); one that
fails, or is not a regular file, is rebuilt with a logged warning. See docs/loader.md ("The index,
its cache and memory"). :class:`~annonorm.dataset.NormalizedDataset` is the dataset over this index.
"""

from __future__ import annotations

import hashlib
import logging
import math
import mmap
import os
import re
import struct
import tempfile
import time
import warnings
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NamedTuple

import msgspec
import numpy as np

from annonorm.errors import AnnonormError, ParseError
from annonorm.fsutil import (
    file_state,
    make_private_directory,
    open_regular,
    process_alive,
    read_regular_bytes,
    require_regular_file,
    user_cache_root,
)
from annonorm.index_build import ARRAYS as _ARRAYS
from annonorm.index_build import BOX_OFFSETS, OFFSETS, VISIBILITIES, build_index, categories_sha256

__all__ = [
    "INDEX_VERSION",
    "SplitIndex",
    "build_index",
    "cache_root",
    "check_index",
    "open_index",
    "write_cache",
]

logger = logging.getLogger(__name__)

#: Version of the on-disk index layout; the cache lives under ``index-v<version>``, other versions are ignored.
INDEX_VERSION = 3
#: A file's stamp is trusted only when taken this long after its last change (coarse file systems tick in 2 s).
_RACY_WINDOW_NS = 2_000_000_000
# --------------------------------------------------------------------------------------------- index


def _utf8_table_problem(name: str, data: np.ndarray, offsets: np.ndarray) -> str | None:
    try:
        str(np.ascontiguousarray(data).data, "utf-8")
    except UnicodeDecodeError:
        return f"{name} is not UTF-8"
    starts = offsets[:-1]
    starts = starts[starts < len(data)]
    if len(starts) and bool(((data[starts] & 0xC0) == 0x80).any()):
        return f"{name} is cut inside a character"
    if len(data) and bool((data == 0).any()):
        return f"{name} holds a NUL byte"
    return None


def check_index(arrays: Mapping[str, np.ndarray], categories: int) -> str | None:
    """What is wrong with a set of index arrays (``None`` when they are consistent).

    Checks every dtype and shape; that each offsets array starts at 0, never decreases and ends at
    the length of the array it indexes; that category ids are in ``range(categories)``; that boxes
    are finite, >= 0 and ordered, areas finite and >= 0, sides >= 0 (both 0 or both set), iscrowd
    0/1, counts >= 0, line numbers increasing; and that the path tables are UTF-8 without NUL, each
    path starting on a character boundary and image paths non-empty: what :class:`NormalizedDataset`
    relies on to never index out of bounds or return what a split file cannot hold.
    """
    for name, (dtype, trailing) in _ARRAYS.items():
        value = arrays.get(name)
        if value is None:
            return f"{name} is missing"
        if value.dtype != np.dtype(dtype) or value.ndim != 1 + len(trailing) or value.shape[1:] != trailing:
            return f"{name} is {value.dtype}{list(value.shape)}, expected {dtype} with trailing shape {trailing}"
    records = len(arrays["image_ids"])
    if len(arrays["sizes"]) != records or len(arrays["lines"]) != records:
        return "sizes and lines must have one row per record"
    boxes = len(arrays["box_labels"])
    if len(arrays["boxes"]) != boxes or len(arrays["box_area"]) != boxes or len(arrays["box_iscrowd"]) != boxes:
        return "the box arrays differ in length"
    if len(arrays["count_values"]) != len(arrays["count_ids"]):
        return "count_values and count_ids differ in length"
    for name, indexed in OFFSETS.items():
        offsets = arrays[name]
        if len(offsets) != records + 1 or offsets[0] != 0 or offsets[-1] != len(arrays[indexed]):
            return f"{name} does not span {indexed}"
        if records and bool((offsets[1:] < offsets[:-1]).any()):
            return f"{name} decreases"
    for name in ("box_labels", "label_ids", "count_ids"):
        ids = arrays[name]
        if len(ids) and (int(ids.min()) < 0 or int(ids.max()) >= categories):
            return f"{name} holds a category id outside 0..{categories - 1}"
    corners = arrays["boxes"]
    if boxes:
        if not bool(np.isfinite(corners).all()) or bool((corners < 0).any()):
            return "boxes holds a coordinate that is not a finite number >= 0"
        if bool(((corners[:, 2] < corners[:, 0]) | (corners[:, 3] < corners[:, 1])).any()):
            return "boxes holds corners out of order"
        area = arrays["box_area"]
        if not bool(np.isfinite(area).all()) or bool((area < 0).any()):
            return "box_area holds an area that is not a finite number >= 0"
        if int(arrays["box_iscrowd"].max()) > 1:
            return "box_iscrowd holds a value other than 0 and 1"
    if len(arrays["count_values"]) and int(arrays["count_values"].min()) < 0:
        return "count_values holds a negative count"
    if records:
        sizes = arrays["sizes"]
        if int(sizes.min()) < 0 or bool(((sizes[:, 0] == 0) != (sizes[:, 1] == 0)).any()):
            return "sizes holds a negative side, or one side without the other"
        lines = arrays["lines"]
        if int(lines[0]) < 1 or bool((lines[1:] <= lines[:-1]).any()):
            return "lines are not increasing line numbers"
        if bool((arrays["image_offsets"][1:] == arrays["image_offsets"][:-1]).any()):
            return "an image path is empty"
    for table in ("image", "mask"):
        problem = _utf8_table_problem(f"{table}_bytes", arrays[f"{table}_bytes"], arrays[f"{table}_offsets"])
        if problem is not None:
            return problem
    return _extras_problem(arrays, boxes)


def _spans(offsets: np.ndarray, length: int) -> bool:
    return bool(offsets[0] == 0 and offsets[-1] == length and not (offsets[1:] < offsets[:-1]).any())


def _extras_problem(arrays: Mapping[str, np.ndarray], boxes: int) -> str | None:
    """What is wrong with the format-version-2 arrays: each group empty, or spanning every box and consistent."""
    for name, (indexed, others) in BOX_OFFSETS.items():
        offsets = arrays[name]
        if not len(offsets):
            if any(len(arrays[other]) for other in (indexed, *others)):
                return f"{name} is empty but {indexed} is not"
            continue
        length = len(arrays[indexed]) - 1 if name == "box_rings" else len(arrays[indexed])
        if len(offsets) != boxes + 1 or not _spans(offsets, length):
            return f"{name} does not span {indexed}"
    rings = arrays["ring_offsets"]
    if len(arrays["box_rings"]):
        if not _spans(rings, len(arrays["polygon_coords"])):
            return "ring_offsets does not span polygon_coords"
        lengths = np.diff(rings)
        if bool(((lengths < 6) | (lengths % 2 != 0)).any()):
            return "ring_offsets holds a ring of fewer than 3 points or an odd number of coordinates"
        if not bool(np.isfinite(arrays["polygon_coords"]).all()):
            return "polygon_coords holds a coordinate that is not finite"
    if len(arrays["rle_offsets"]):
        sizes = arrays["rle_sizes"]
        if len(sizes) != boxes or bool((sizes < 0).any()):
            return "rle_sizes must have one row of sides >= 0 per box"
        has_rle = np.diff(arrays["rle_offsets"]) > 0
        if bool((has_rle != (sizes[:, 0] > 0)).any()) or bool(((sizes[:, 0] > 0) != (sizes[:, 1] > 0)).any()):
            return "rle_sizes and rle_offsets disagree on which boxes have a mask"
        data = arrays["rle_bytes"]
        if len(data) and bool(((data < 48) | (data > 111)).any()):
            return "rle_bytes holds a character outside an RLE string's"
    if len(arrays["keypoint_offsets"]):
        points = arrays["keypoints"]
        if not bool(np.isfinite(points).all()) or not bool(np.isin(points[:, 2], VISIBILITIES).all()):
            return "keypoints holds a coordinate that is not finite or a visibility other than 0, 1 and 2"
    scores = arrays["box_score"]
    if len(scores) and (len(scores) != boxes or bool((scores < 0).any() | (scores > 1).any())):
        return "box_score must have one score in [0, 1] (or NaN) per box"
    return None


class _Expected(NamedTuple):
    """What an index file must have been built from."""

    split_sha256: str
    split_size: int
    categories_sha256: str
    categories: int


class SplitIndex:
    """The index arrays of one split, in memory or memory-mapped from a cache file.

    Pickles small when backed by a cache file (a spawned worker maps the same file again), with its
    arrays when it lives in memory only.
    """

    def __init__(
        self,
        arrays: Mapping[str, np.ndarray],
        location: Path | None = None,
        identity: tuple[int, ...] | None = None,
        expected: _Expected | None = None,
    ) -> None:
        self.arrays = dict(arrays)
        for value in self.arrays.values():
            value.setflags(write=False)  # as read-only as a memory map: targets copy what they return
        #: The cache file the arrays are mapped from, its identity when checked, and what it was built from.
        self.location = location
        self.identity = identity
        self.expected = expected
        # Each array is also a plain attribute (``index.boxes``): the loader's hot path reads them so.
        self.__dict__.update((name, self.arrays[name]) for name in _ARRAYS)

    if TYPE_CHECKING:

        def __getattr__(self, name: str) -> np.ndarray: ...  # the arrays of _ARRAYS, set in __init__

    def __len__(self) -> int:
        return len(self.image_ids)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        if self.location is not None and self.expected is not None:
            return (_reopen_index, (str(self.location), self.identity, tuple(self.expected)))
        return (SplitIndex, (self.arrays,))

    @property
    def nbytes(self) -> int:
        """Total size of the arrays."""
        return sum(value.nbytes for value in self.arrays.values())


def _reopen_index(location: str, identity: tuple[int, ...] | None, expected: tuple[Any, ...]) -> SplitIndex:
    """Unpickle a cache-backed index: map the file again (checked again unless it is the very file checked)."""
    found, problem = _map_index(Path(location), _Expected(*expected), trusted=identity)
    if found is None:
        raise AnnonormError(
            f"the index cache changed or vanished since the dataset was opened ({problem or 'gone'}); "
            "open the dataset again",
            file=location,
        )
    return found


# ------------------------------------------------------------------------------------- the cache file
#
# One file per split content: a 32-byte prefix (magic, layout version, CRC-32 and length of the
# header), the header (JSON: what the index was built from, and each array's dtype, shape, offset
# and CRC-32), then the arrays, each at a 64-byte aligned offset from the end of the header.

_MAGIC = b"annonorm-index\n\x00"
_PREFIX = struct.Struct("<16sIIQ")
_ALIGN = 64
_LEFTOVER = re.compile(r"\.(\d+)-\w+\.tmp$")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class _Layout(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    dtype: str
    shape: list[int]
    offset: int
    crc32: int


class _Header(msgspec.Struct, forbid_unknown_fields=True):
    split_sha256: str
    split_size: int
    categories_sha256: str
    categories: int
    records: int
    boxes: int
    arrays: dict[str, _Layout]


def _aligned(position: int) -> int:
    return -(-position // _ALIGN) * _ALIGN


def _remove_leftovers(directory: Path) -> None:
    """Delete the temporary files of cache writers that died (their pid is in the name)."""
    for leftover in directory.glob(".*.tmp"):
        match = _LEFTOVER.search(leftover.name)
        if match and int(match[1]) != os.getpid() and not process_alive(int(match[1])):
            leftover.unlink(missing_ok=True)


def _replace_atomically(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write a file beside ``path`` and rename it over ``path``; raises ``OSError`` when that cannot be done."""
    make_private_directory(path.parent)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as stream:
            write(stream)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_cache(path: Path, arrays: Mapping[str, np.ndarray], expected: _Expected) -> None:
    """Write the index arrays as the cache file ``path`` (atomically: a temporary file, then a rename).

    Raises ``OSError`` when the place is not writable. A concurrent writer of the same content may
    rename last; its file is equivalent.
    """
    layout: dict[str, _Layout] = {}
    blocks: list[tuple[int, memoryview]] = []
    end = 0
    for name, (dtype, _) in _ARRAYS.items():
        value = np.ascontiguousarray(arrays[name], dtype=dtype)
        data = value.reshape(-1).view(np.uint8).data
        layout[name] = _Layout(value.dtype.str, list(value.shape), end, zlib.crc32(data))
        blocks.append((end, data))
        end = _aligned(end + len(data))
    header = msgspec.json.encode(
        _Header(**expected._asdict(), records=len(arrays["image_ids"]), boxes=len(arrays["box_labels"]), arrays=layout)
    )
    start = _aligned(_PREFIX.size + len(header))

    def write(stream: IO[bytes]) -> None:
        stream.write(_PREFIX.pack(_MAGIC, INDEX_VERSION, zlib.crc32(header), len(header)))
        stream.write(header)
        for offset, data in blocks:
            stream.seek(start + offset)
            stream.write(data)
        stream.truncate(start + end)

    if path.parent.is_dir():
        _remove_leftovers(path.parent)
    _replace_atomically(path, write)


def _map_index(
    path: Path, expected: _Expected, trusted: tuple[int, ...] | None = None
) -> tuple[SplitIndex | None, str | None]:
    """Map a cache file and check it: ``(index, None)``, ``(None, what is wrong)``, or ``(None, None)`` if absent.

    ``trusted``: the identity of a file already checked; the same file (same inode, size, mtime and
    ctime: never written in place) is mapped without checking its contents again.
    """
    if not os.path.lexists(path):
        return None, None
    try:
        stream = open_regular(path, "index cache file")  # a FIFO or a device is refused, never read
    except ParseError as exc:
        return None, exc.message
    with stream:
        info = os.fstat(stream.fileno())
        if info.st_size < _PREFIX.size:
            return None, "shorter than its header"
        try:
            buffer = mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as exc:
            return None, f"cannot be mapped ({exc})"
    identity = file_state(info)
    check = identity != trusted
    magic, version, header_crc, header_length = _PREFIX.unpack_from(buffer, 0)
    if magic != _MAGIC:
        return None, "not an annonorm index file"
    if version != INDEX_VERSION:
        return None, f"layout version {version}, expected {INDEX_VERSION}"
    header_end = _PREFIX.size + header_length
    if header_end > len(buffer):
        return None, "its header is truncated"
    header_bytes = buffer[_PREFIX.size : header_end]
    if zlib.crc32(header_bytes) != header_crc:
        return None, "its header fails its checksum"
    try:
        header = msgspec.json.decode(header_bytes, type=_Header)
    except msgspec.DecodeError as exc:
        return None, f"its header is unreadable ({exc})"
    built_from = _Expected(header.split_sha256, header.split_size, header.categories_sha256, header.categories)
    if built_from != expected:
        return None, "it was built from another split content or other categories"
    if set(header.arrays) != set(_ARRAYS):
        return None, "its arrays are not the index's arrays"
    start = _aligned(header_end)
    arrays: dict[str, np.ndarray] = {}
    for name, (dtype, trailing) in _ARRAYS.items():
        entry = header.arrays[name]
        kind = np.dtype(dtype)
        if entry.dtype != kind.str or len(entry.shape) != 1 + len(trailing) or tuple(entry.shape[1:]) != trailing:
            return None, f"{name} is {entry.dtype}{entry.shape}, expected {dtype} with trailing shape {trailing}"
        count = math.prod(entry.shape)
        begin = start + entry.offset
        if (
            min(entry.shape) < 0
            or entry.offset < 0
            or entry.offset % _ALIGN
            or begin + count * kind.itemsize > len(buffer)
        ):
            return None, f"{name} lies outside the file"
        if check and zlib.crc32(memoryview(buffer)[begin : begin + count * kind.itemsize]) != entry.crc32:
            return None, f"{name} fails its checksum"
        if count:
            arrays[name] = np.frombuffer(buffer, dtype=kind, count=count, offset=begin).reshape(entry.shape)
        else:
            arrays[name] = np.empty(entry.shape, dtype=kind)
            arrays[name].setflags(write=False)
    if check:
        problem = check_index(arrays, expected.categories)
        if problem is None and (len(arrays["image_ids"]), len(arrays["box_labels"])) != (header.records, header.boxes):
            problem = "its record or box count differs from its header"
        if problem is not None:
            return None, problem
    return SplitIndex(arrays, location=path, identity=identity, expected=expected), None


# -------------------------------------------------------------------------------------- cache: where, when


class _Stamp(msgspec.Struct, forbid_unknown_fields=True):
    """A split file's state when its content hash was taken."""

    split: str
    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int
    device: int
    sha256: str
    verified_ns: int


def cache_root(cache: bool | str | os.PathLike[str] = True) -> Path | None:
    """The directory the index cache lives under (``index-v3/`` inside): the user's, the one given, or none.

    ``cache=True``: :func:`user_cache_root`; a path: that directory; ``False``: ``None`` (the index
    is built in memory on every open).
    """
    if cache is False:
        return None
    return user_cache_root() if cache is True else Path(cache)


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open_regular(path, "split file") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_stamp(path: Path, split: str) -> _Stamp | None:
    if not os.path.lexists(path):
        return None
    try:
        stamp = msgspec.json.decode(read_regular_bytes(path, "index stamp"), type=_Stamp)
    except (ParseError, msgspec.DecodeError) as exc:
        logger.info("index stamp %s is unusable (%s); hashing the split again", path, exc)
        return None
    return stamp if stamp.split == split and _SHA256.fullmatch(stamp.sha256) else None


def _vouches(stamp: _Stamp, info: os.stat_result) -> bool:
    """Whether the stamp describes the split file as it is now, taken late enough to be sure of it."""
    same = (stamp.device, stamp.inode, stamp.size, stamp.mtime_ns, stamp.ctime_ns) == file_state(info)
    return same and stamp.verified_ns > max(stamp.mtime_ns, stamp.ctime_ns) + _RACY_WINDOW_NS


def _write_stamp(path: Path, split: str, info: os.stat_result, sha: str, verified_ns: int) -> None:
    device, inode, size, mtime_ns, ctime_ns = file_state(info)
    stamp = _Stamp(split, size, mtime_ns, ctime_ns, inode, device, sha, verified_ns)

    def write(stream: IO[bytes]) -> None:
        stream.write(msgspec.json.encode(stamp))

    try:
        _replace_atomically(path, write)
    except OSError as exc:  # best effort: the next open hashes again
        logger.info("cannot write the index stamp %s (%s)", path, exc)


def _currentfile_state(path: Path) -> tuple[int, ...] | None:
    try:
        return file_state(os.stat(path))
    except OSError:
        return None


def _index_file(directory: Path, split_sha: str, categories_sha: str) -> Path:
    return directory / f"{split_sha[:32]}-{categories_sha[:16]}.idx"


def _split_info(split_path: Path) -> os.stat_result:
    require_regular_file(split_path, "split file")
    try:
        return os.stat(split_path)
    except OSError as exc:
        raise ParseError(f"cannot read the split file: {exc.strerror}", file=split_path) from None


def open_index(
    split_path: Path,
    categories: Sequence[str],
    cache: bool | str | os.PathLike[str] = True,
    keypoint_counts: Mapping[str, int] | None = None,
) -> tuple[SplitIndex, str]:
    """The index of a split: from a checked cache file, else built (and cached where possible).

    Returns the index and how it was obtained: ``"cache"``, ``"built"`` (and cached) or ``"memory"``
    (built, no cache written). See the module docstring for where the cache lives and how it is checked.
    ``keypoint_counts``: as :func:`build_index` takes it (it is part of the cache key).
    """
    info = _split_info(split_path)
    root = cache_root(cache)
    if root is None:
        return SplitIndex(build_index(split_path, categories, keypoint_counts)[0]), "memory"
    directory = root / f"index-v{INDEX_VERSION}"
    split = os.path.abspath(split_path)
    stamp_file = directory / "stamps" / f"{hashlib.sha256(os.fsencode(split)).hexdigest()[:32]}.json"
    stamp = _read_stamp(stamp_file, split)
    if stamp is not None and _vouches(stamp, info):
        sha = stamp.sha256
    else:
        started = time.time_ns()
        sha = _hash_file(split_path)
        if _currentfile_state(split_path) == file_state(info):  # unchanged while it was hashed
            _write_stamp(stamp_file, split, info, sha, started)
    categories_sha = categories_sha256(categories, keypoint_counts)
    found, problem = _map_index(
        _index_file(directory, sha, categories_sha), _Expected(sha, info.st_size, categories_sha, len(categories))
    )
    if found is not None:
        return found, "cache"
    if problem is not None:
        logger.warning(
            "index cache %s is damaged (%s); rebuilding it", _index_file(directory, sha, categories_sha), problem
        )
    started = time.time_ns()
    arrays, built_sha = build_index(split_path, categories, keypoint_counts)
    if _currentfile_state(split_path) != file_state(info):
        logger.warning("%s changed while it was indexed; not caching the index", split_path)
        return SplitIndex(arrays), "memory"
    if built_sha != sha:  # the file changed in a way its stat did not show: what was indexed counts
        _write_stamp(stamp_file, split, info, built_sha, started)
        sha = built_sha
    if stamp is not None and stamp.sha256 != sha:  # the split changed: its previous content's index goes
        for previous in directory.glob(f"{stamp.sha256[:32]}-*.idx"):
            previous.unlink(missing_ok=True)
    expected = _Expected(sha, info.st_size, categories_sha, len(categories))
    index_file = _index_file(directory, sha, categories_sha)
    try:
        write_cache(index_file, arrays, expected)
    except OSError as exc:
        warnings.warn(
            f"no writable place for the index cache of {split_path} (tried {directory}: {exc.strerror or exc}); "
            "the index is rebuilt on every open",
            stacklevel=3,
        )
        return SplitIndex(arrays), "memory"
    mapped, problem = _map_index(index_file, expected)
    if mapped is None:
        logger.warning("index cache %s cannot be read back (%s); keeping the index in memory", index_file, problem)
        return SplitIndex(arrays), "memory"
    return mapped, "built"
