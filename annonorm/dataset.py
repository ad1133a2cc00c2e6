"""The loader: a split of a normalized dataset as a map-style dataset of ``(image, target)``.

``target`` follows torchvision's detection convention (``boxes`` float32 ``(N, 4)`` xyxy in
pixels, ``labels`` int64 category ``id`` s, ``image_id``, ``area``, ``iscrowd``) plus the
record's ``counts`` and ``names`` (its classes present); with ``masks=True`` it also carries the
instance masks ``(N, H, W)`` uint8 (``masks``) or the semantic mask ``(H, W)`` uint8 (``mask``).
Without torch the values are numpy arrays and the image a PIL image; :mod:`annonorm.torch` turns
them into tensors (and torchvision ``tv_tensors``) and provides the detection collate function.

Memory design. Opening a split builds an index in one streaming pass over its JSONL file
(msgspec typed decoding, no per-box objects kept): a handful of numpy arrays (record offsets into
one flat box array, label ids, counts, image ids and sizes, and the image and mask paths as one
UTF-8 byte buffer plus offsets). No Python object per record survives opening, so forked
DataLoader workers share every page of the index instead of copying it through reference-count
writes (the copy-on-read growth of a list of dicts). The index is cached on disk as a directory of
``.npy`` files, memory-mapped read-only on the next open:

* where: ``<split file's directory>/.annonorm-cache/<split>/``; when that is not writable (a
  read-only or DVC-linked dataset) ``$ANNONORM_CACHE_DIR`` or ``$XDG_CACHE_HOME/annonorm`` or
  ``~/.cache/annonorm``, under a key of the split file's absolute path; when neither is writable
  the index lives in memory only;
* freshness: the cache records the split file's size, mtime (ns) and SHA-256 and the category
  names; a matching size and mtime is trusted only when the mtime predates the moment the hash was
  taken by more than the file system's timestamp granularity (git's "racy clean" rule), otherwise
  the file is hashed again; any difference rebuilds the cache;
* trust: a cache is never used blindly; dtypes, shapes, offsets and id ranges are checked on every
  open and a cache that fails is rebuilt;
* atomicity: a new cache is written into a temporary directory and renamed into place.

Safety. Image paths resolve against ``image_root`` and must stay inside it, symlinks included
(:class:`~annonorm.errors.UnsafePathError`), unless ``allow_outside_root=True``; mask paths must
stay inside the dataset directory (the format's contract) whatever that option says.
"""

from __future__ import annotations

import copy
import gc
import hashlib
import logging
import math
import operator
import os
import shutil
import time
import uuid
import warnings
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import chain
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import numpy as np
from msgspec import UNSET, Meta, UnsetType
from PIL import Image

from annonorm.errors import (
    AnnonormError,
    InvalidDataError,
    MissingDependency,
    ParseError,
    UnsafePathError,
    UsageError,
)
from annonorm.io import file_sha256, manifest_path, open_split, read_manifest
from annonorm.schemas.manifest import Manifest

__all__ = ["INDEX_VERSION", "NormalizedDataset", "SkippedRecordWarning", "SplitIndex", "build_index"]

logger = logging.getLogger(__name__)

#: Version of the on-disk index layout; a cache of another version is rebuilt.
INDEX_VERSION = 1
#: Name of the cache directory written beside the split files.
CACHE_DIR_NAME = ".annonorm-cache"
_META_FILE = "meta.json"
#: A file's mtime is trusted only when it is older than the hash by more than this (coarse file systems tick in 2 s).
_RACY_WINDOW_NS = 2_000_000_000
_INT64 = Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]
_SIDE = Annotated[int, Meta(gt=0, le=2**31 - 1)]
_COUNT = Annotated[int, Meta(ge=0, le=2**63 - 1)]
_COORD = Annotated[float, Meta(ge=0)]
_NAME = Annotated[str, Meta(min_length=1)]
_PATH = Annotated[str, Meta(min_length=1)]

# name -> (dtype, trailing shape); the first dimension is records (+1 for offsets), boxes, or a flat length.
_ARRAYS: dict[str, tuple[str, tuple[int, ...]]] = {
    "box_offsets": ("int64", ()),
    "boxes": ("float32", (4,)),
    "box_labels": ("int32", ()),
    "box_area": ("float32", ()),
    "box_iscrowd": ("uint8", ()),
    "label_offsets": ("int64", ()),
    "label_ids": ("int32", ()),
    "count_offsets": ("int64", ()),
    "count_ids": ("int32", ()),
    "count_values": ("int64", ()),
    "image_ids": ("int64", ()),
    "sizes": ("int32", (2,)),
    "lines": ("int64", ()),
    "image_offsets": ("int64", ()),
    "image_bytes": ("uint8", ()),
    "mask_offsets": ("int64", ()),
    "mask_bytes": ("uint8", ()),
}
# offsets array -> the flat array it indexes into
_OFFSETS = {
    "box_offsets": "box_labels",
    "label_offsets": "label_ids",
    "count_offsets": "count_ids",
    "image_offsets": "image_bytes",
    "mask_offsets": "mask_bytes",
}


class SkippedRecordWarning(UserWarning):
    """A record whose image or mask could not be loaded was skipped (``on_missing="skip"``)."""


# ------------------------------------------------------------------------------------------ decoding


class _BoxAttributes(msgspec.Struct, gc=False):
    """The box attributes the loader reads; other keys are skipped unread.

    Attributes are free-form in the format, so a value of another type is not an error here:
    see :func:`_crowd` and :func:`_area`.
    """

    iscrowd: Any = None
    area: Any = None


def _crowd(value: Any) -> int:
    """``iscrowd`` as 0/1: true or a non-zero number is 1, anything else (absent, a string...) 0."""
    return 1 if value is True or (type(value) in (int, float) and value != 0) else 0


def _area(value: Any) -> float:
    """The ``area`` attribute when it is a number >= 0, else NaN (the box's area is used)."""
    return float(value) if type(value) in (int, float) and value >= 0 else math.nan


class _Box(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    name: _NAME
    x1: _COORD
    y1: _COORD
    x2: _COORD
    y2: _COORD
    attributes: _BoxAttributes | None = None


class _Record(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    image: _PATH
    width: _SIDE | None = None
    height: _SIDE | None = None
    labels: _NAME | list[_NAME] | UnsetType = UNSET
    counts: dict[_NAME, _COUNT] | list[dict[_NAME, _COUNT]] | UnsetType = UNSET
    boxes: list[_Box] = []
    mask: _PATH | None = None
    id: _INT64 | str | None = None
    # Record attributes are not read by the loader: keep them as raw bytes, undecoded.
    attributes: msgspec.Raw = msgspec.Raw(b"null")


class _CacheMeta(msgspec.Struct, forbid_unknown_fields=True):
    version: int
    split_size: int
    split_mtime_ns: int
    split_sha256: str
    categories_sha256: str
    verified_ns: int
    records: int
    boxes: int


def _categories_sha256(categories: Sequence[str]) -> str:
    return hashlib.sha256(msgspec.json.encode(list(categories))).hexdigest()


def _as_numpy(values: array[Any] | bytearray, dtype: str) -> np.ndarray:
    if not len(values):
        return np.empty(0, dtype=dtype)
    return np.frombuffer(values, dtype=np.uint8 if isinstance(values, bytearray) else values.typecode).astype(dtype)


def _merge_counts(counts: list[dict[str, int]], file: Path, number: int) -> dict[str, int]:
    merged: dict[str, int] = {}
    for position, item in enumerate(counts):
        if len(item) != 1:
            raise InvalidDataError(
                "expected an object with exactly one class name key",
                file=file,
                location=f"line {number}: counts[{position}]",
            )
        ((name, value),) = item.items()
        if name in merged:
            raise InvalidDataError(
                f"class {name!r} is counted twice", file=file, location=f"line {number}: counts[{position}]"
            )
        merged[name] = value
    return merged


def _unknown(name: str, key: str, file: Path, number: int) -> InvalidDataError:
    return InvalidDataError(f"{name!r} is not a category of the manifest", file=file, location=f"line {number}: {key}")


def build_index(split_path: Path, categories: Sequence[str]) -> tuple[dict[str, np.ndarray], str]:
    """Read a split file in one streaming pass into the index arrays; return them and the file's SHA-256.

    Each line is decoded with msgspec into typed structs (unknown keys refused, types and ranges
    checked) and copied into flat arrays at once, so memory holds only the arrays being built. A
    line that is not a valid record raises :class:`ParseError` (not JSON) or
    :class:`InvalidDataError` naming the file, the line and the key. This is not the full
    validator (``annonorm validate`` is): it checks what the loader relies on.
    """
    decode = msgspec.json.Decoder(_Record).decode
    category_ids = {name: position for position, name in enumerate(categories)}
    digest = hashlib.sha256()
    coords: array[float] = array("d")
    box_labels: array[int] = array("i")
    areas: array[float] = array("d")
    crowd: array[int] = array("B")
    box_offsets: array[int] = array("q", [0])
    label_ids: array[int] = array("i")
    label_offsets: array[int] = array("q", [0])
    count_ids: array[int] = array("i")
    count_values: array[int] = array("q")
    count_offsets: array[int] = array("q", [0])
    image_ids: array[int] = array("q")
    sizes: array[int] = array("i")
    lines: array[int] = array("q")
    image_bytes = bytearray()
    image_offsets: array[int] = array("q", [0])
    mask_bytes = bytearray()
    mask_offsets: array[int] = array("q", [0])
    nan = math.nan
    name_of = operator.attrgetter("name")
    corners_of = operator.attrgetter("x1", "y1", "x2", "y2")
    attributes_of = operator.attrgetter("attributes")
    with open_split(split_path) as stream:
        for number, line in enumerate(stream, start=1):
            digest.update(line)
            if line.isspace():
                continue
            try:
                record = decode(line)
            except msgspec.ValidationError as exc:
                raise InvalidDataError(
                    f"not a valid record: {exc}", file=split_path, location=f"line {number}"
                ) from None
            except msgspec.DecodeError as exc:
                raise ParseError(f"not valid JSON ({exc})", file=split_path, location=f"line {number}") from None
            first_box = len(box_labels)
            record_boxes = record.boxes
            if record_boxes:
                try:
                    box_labels.extend(map(category_ids.__getitem__, map(name_of, record_boxes)))
                except KeyError:
                    position, name = next((k, b.name) for k, b in enumerate(record_boxes) if b.name not in category_ids)
                    raise _unknown(name, f"boxes[{position}].name", split_path, number) from None
                coords.extend(chain.from_iterable(map(corners_of, record_boxes)))
                for attributes in map(attributes_of, record_boxes):
                    if attributes is None:
                        areas.append(nan)
                        crowd.append(0)
                    else:
                        areas.append(_area(attributes.area))
                        crowd.append(_crowd(attributes.iscrowd))
            box_offsets.append(len(box_labels))

            counts = record.counts
            if isinstance(counts, UnsetType):
                # The seed format may leave counts out: one per box, in first-seen order.
                derived: dict[int, int] = {}
                for label in box_labels[first_box:]:
                    derived[label] = derived.get(label, 0) + 1
                count_ids.extend(derived)
                count_values.extend(derived.values())
                counted = derived
            else:
                if isinstance(counts, list):
                    counts = _merge_counts(counts, split_path, number)
                counted = {}
                for name, value in counts.items():
                    found = category_ids.get(name)
                    if found is None:
                        raise _unknown(name, f"counts.{name}", split_path, number)
                    counted[found] = value
                count_ids.extend(counted)
                count_values.extend(counted.values())
            count_offsets.append(len(count_ids))

            labels = record.labels
            if isinstance(labels, UnsetType):
                # Derived as the schema does: boxed classes, then counted ones, first-seen order.
                present = dict.fromkeys(box_labels[first_box:])
                present.update((label, None) for label, value in counted.items() if value > 0)
                label_ids.extend(present)
            else:
                for position, name in enumerate([labels] if isinstance(labels, str) else labels):
                    found = category_ids.get(name)
                    if found is None:
                        raise _unknown(name, f"labels[{position}]", split_path, number)
                    label_ids.append(found)
            label_offsets.append(len(label_ids))

            if (record.width is None) != (record.height is None):
                raise InvalidDataError(
                    "width and height must be given together (or both left out)",
                    file=split_path,
                    location=f"line {number}",
                )
            sizes.extend((record.width or 0, record.height or 0))
            identifier = record.id
            # image_id: the record's id when it is an integer, else the record's position in the split.
            image_ids.append(identifier if type(identifier) is int else len(lines))
            lines.append(number)
            image_bytes += record.image.encode("utf-8", "surrogatepass")
            image_offsets.append(len(image_bytes))
            if record.mask is not None:
                mask_bytes += record.mask.encode("utf-8", "surrogatepass")
            mask_offsets.append(len(mask_bytes))

    boxes = np.frombuffer(coords, dtype=np.float64).reshape(-1, 4) if len(coords) else np.empty((0, 4))
    offsets = _as_numpy(box_offsets, "int64")
    bad = np.flatnonzero((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1]))
    if bad.size:
        flat = int(bad[0])
        position = int(np.searchsorted(offsets, flat, side="right")) - 1
        x1, y1, x2, y2 = boxes[flat].tolist()
        raise InvalidDataError(
            f"corners out of order ({x1}, {y1}, {x2}, {y2}); expected x1 <= x2 and y1 <= y2",
            file=split_path,
            location=f"line {lines[position]}: boxes[{flat - int(offsets[position])}]",
        )
    area = np.frombuffer(areas, dtype=np.float64) if len(areas) else np.empty(0)
    # area: the source's own area (COCO: the segment's) when the box carries one, else the box's.
    area = np.where(np.isnan(area), (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), area)
    arrays = {
        "box_offsets": offsets,
        "boxes": boxes.astype(np.float32),
        "box_labels": _as_numpy(box_labels, "int32"),
        "box_area": area.astype(np.float32),
        "box_iscrowd": _as_numpy(crowd, "uint8"),
        "label_offsets": _as_numpy(label_offsets, "int64"),
        "label_ids": _as_numpy(label_ids, "int32"),
        "count_offsets": _as_numpy(count_offsets, "int64"),
        "count_ids": _as_numpy(count_ids, "int32"),
        "count_values": _as_numpy(count_values, "int64"),
        "image_ids": _as_numpy(image_ids, "int64"),
        "sizes": _as_numpy(sizes, "int32").reshape(-1, 2),
        "lines": _as_numpy(lines, "int64"),
        "image_offsets": _as_numpy(image_offsets, "int64"),
        "image_bytes": _as_numpy(image_bytes, "uint8"),
        "mask_offsets": _as_numpy(mask_offsets, "int64"),
        "mask_bytes": _as_numpy(mask_bytes, "uint8"),
    }
    return arrays, digest.hexdigest()


# --------------------------------------------------------------------------------------------- index


def check_index(arrays: Mapping[str, np.ndarray], categories: int) -> str | None:
    """What is wrong with a set of index arrays (``None`` when they are consistent).

    Checks every dtype and shape, that each offsets array starts at 0, never decreases and ends at
    the length of the array it indexes, and that category ids are in ``range(categories)``: what
    :class:`NormalizedDataset` relies on to never index out of bounds.
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
    for name, indexed in _OFFSETS.items():
        offsets = arrays[name]
        if len(offsets) != records + 1 or offsets[0] != 0 or offsets[-1] != len(arrays[indexed]):
            return f"{name} does not span {indexed}"
        if records and bool((offsets[1:] < offsets[:-1]).any()):
            return f"{name} decreases"
    for name in ("box_labels", "label_ids", "count_ids"):
        ids = arrays[name]
        if len(ids) and (int(ids.min()) < 0 or int(ids.max()) >= categories):
            return f"{name} holds a category id outside 0..{categories - 1}"
    if records and int(arrays["sizes"].min()) < 0:
        return "sizes holds a negative side"
    return None


class SplitIndex:
    """The index arrays of one split, in memory or memory-mapped from a cache directory.

    Pickles small when backed by a cache directory (a spawned worker maps the same files again),
    with its arrays when it lives in memory only.
    """

    def __init__(self, arrays: Mapping[str, np.ndarray], location: Path | None = None, meta: Any = None) -> None:
        self.arrays = dict(arrays)
        self.location = location
        self.meta: _CacheMeta | None = meta
        # Plain attribute access in __getitem__'s hot path.
        self.box_offsets = self.arrays["box_offsets"]
        self.boxes = self.arrays["boxes"]
        self.box_labels = self.arrays["box_labels"]
        self.box_area = self.arrays["box_area"]
        self.box_iscrowd = self.arrays["box_iscrowd"]
        self.label_offsets = self.arrays["label_offsets"]
        self.label_ids = self.arrays["label_ids"]
        self.count_offsets = self.arrays["count_offsets"]
        self.count_ids = self.arrays["count_ids"]
        self.count_values = self.arrays["count_values"]
        self.image_ids = self.arrays["image_ids"]
        self.sizes = self.arrays["sizes"]
        self.lines = self.arrays["lines"]
        self.image_offsets = self.arrays["image_offsets"]
        self.image_bytes = self.arrays["image_bytes"]
        self.mask_offsets = self.arrays["mask_offsets"]
        self.mask_bytes = self.arrays["mask_bytes"]

    def __len__(self) -> int:
        return len(self.image_ids)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        if self.location is not None and self.meta is not None:
            return (_reopen_index, (str(self.location), msgspec.json.encode(self.meta)))
        return (SplitIndex, (self.arrays,))

    @property
    def nbytes(self) -> int:
        """Total size of the arrays."""
        return sum(value.nbytes for value in self.arrays.values())


def _same_content(first: _CacheMeta, second: _CacheMeta) -> bool:
    return (first.version, first.split_sha256, first.categories_sha256, first.records, first.boxes) == (
        second.version,
        second.split_sha256,
        second.categories_sha256,
        second.records,
        second.boxes,
    )


def _reopen_index(location: str, meta_bytes: bytes) -> SplitIndex:
    """Unpickle a cache-backed index: map the cache files again, refusing a cache that changed since."""
    expected = msgspec.json.decode(meta_bytes, type=_CacheMeta)
    directory = Path(location)
    loaded = _load_arrays(directory, expected)
    if loaded is None:
        raise AnnonormError(
            "the index cache changed or vanished since the dataset was opened; open the dataset again",
            file=directory,
        )
    return loaded


def _read_meta(directory: Path) -> _CacheMeta | None:
    try:
        return msgspec.json.decode((directory / _META_FILE).read_bytes(), type=_CacheMeta)
    except (OSError, msgspec.DecodeError):
        return None


def _load_array(path: Path) -> np.ndarray:
    try:
        loaded = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError:
        # numpy cannot map a zero-length array: read it instead (it is empty).
        loaded = np.load(path, allow_pickle=False)
    # A plain ndarray view of the map: memmap's subclass overhead would cost on every slice.
    return np.asarray(loaded)


def _load_arrays(directory: Path, meta: _CacheMeta, categories: int | None = None) -> SplitIndex | None:
    """Map a cache directory's arrays and check them; ``None`` when it is absent, stale or broken."""
    found = _read_meta(directory)
    if found is None or not _same_content(found, meta):
        return None
    try:
        arrays = {name: _load_array(directory / f"{name}.npy") for name in _ARRAYS}
    except (OSError, ValueError, EOFError) as exc:
        logger.info("index cache %s is unreadable (%s); rebuilding", directory, exc)
        return None
    problem = check_index(arrays, categories if categories is not None else _max_category(arrays) + 1)
    if problem is None and (len(arrays["image_ids"]) != meta.records or len(arrays["box_labels"]) != meta.boxes):
        problem = "record or box count differs from its meta.json"
    if problem is not None:
        logger.info("index cache %s is inconsistent (%s); rebuilding", directory, problem)
        return None
    return SplitIndex(arrays, location=directory, meta=found)


def _max_category(arrays: Mapping[str, np.ndarray]) -> int:
    tops = [int(arrays[n].max()) for n in ("box_labels", "label_ids", "count_ids") if n in arrays and len(arrays[n])]
    return max(tops, default=0)


# --------------------------------------------------------------------------------------------- cache


def _user_cache_root() -> Path:
    configured = os.environ.get("ANNONORM_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "annonorm"


def cache_directories(split_path: Path, split: str, cache: bool | str | Path = True) -> list[Path]:
    """Where the index cache of a split may live, in order of preference.

    ``cache=True``: beside the split file, then the user cache directory; a path: only under that
    directory; ``False``: nowhere (the index is built in memory on every open).
    """
    if cache is False:
        return []
    key = hashlib.sha256(os.fsencode(os.path.abspath(split_path))).hexdigest()[:20]
    if cache is True:
        return [split_path.parent / CACHE_DIR_NAME / split, _user_cache_root() / "index" / key / split]
    return [Path(cache) / key / split]


def _fresh(directory: Path, split_path: Path, categories: Sequence[str], categories_sha: str) -> SplitIndex | None:
    """The cached index in ``directory`` if it matches the split file now on disk, else ``None``."""
    meta = _read_meta(directory)
    if meta is None or meta.version != INDEX_VERSION or meta.categories_sha256 != categories_sha:
        return None
    try:
        stat = split_path.stat()
    except OSError:
        return None
    if stat.st_size != meta.split_size:
        return None
    trusted = stat.st_mtime_ns == meta.split_mtime_ns and meta.split_mtime_ns + _RACY_WINDOW_NS < meta.verified_ns
    if not trusted:
        started = time.time_ns()
        if file_sha256(split_path) != meta.split_sha256:
            return None
        refreshed = msgspec.structs.replace(meta, split_mtime_ns=stat.st_mtime_ns, verified_ns=started)
        _refresh_meta(directory, refreshed)
        meta = refreshed
    return _load_arrays(directory, meta, len(categories))


def _refresh_meta(directory: Path, meta: _CacheMeta) -> None:
    """Record that the split file was re-hashed and found unchanged (best effort)."""
    temporary = directory / f".{_META_FILE}.{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        temporary.write_bytes(msgspec.json.encode(meta))
        os.replace(temporary, directory / _META_FILE)
    except OSError:
        temporary.unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _remove_leftovers(parent: Path, name: str) -> None:
    """Delete temporary directories of writers that died (their pid is in the name)."""
    for leftover in parent.glob(f".{name}.*-*-*"):
        pid_text = leftover.name.split(".")[-1].split("-")[1] if leftover.name.count("-") >= 2 else ""
        if pid_text.isdigit() and int(pid_text) != os.getpid() and not _pid_alive(int(pid_text)):
            shutil.rmtree(leftover, ignore_errors=True)


def write_cache(directory: Path, arrays: Mapping[str, np.ndarray], meta: _CacheMeta) -> None:
    """Write the index into ``directory`` atomically: a temporary directory beside it, then a rename.

    Raises ``OSError`` when the place is not writable. A concurrent writer of the same cache may win
    the rename; then its (equivalent) cache stays.
    """
    parent = directory.parent
    parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(parent, directory.name)
    token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    temporary = parent / f".{directory.name}.tmp-{token}"
    temporary.mkdir()
    try:
        for name in _ARRAYS:
            np.save(temporary / f"{name}.npy", arrays[name], allow_pickle=False)
        (temporary / _META_FILE).write_bytes(msgspec.json.encode(meta))
        if directory.exists():
            previous = parent / f".{directory.name}.old-{token}"
            try:
                directory.rename(previous)
            except FileNotFoundError:  # another process moved it first
                pass
            else:
                shutil.rmtree(previous, ignore_errors=True)
        try:
            temporary.rename(directory)
        except OSError:  # another process put its cache in place first
            shutil.rmtree(temporary, ignore_errors=True)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def open_index(
    split_path: Path, split: str, categories: Sequence[str], cache: bool | str | Path = True
) -> tuple[SplitIndex, str]:
    """The index of a split: from a fresh cache, else built (and cached where possible).

    Returns the index and how it was obtained: ``"cache"``, ``"built"`` (and cached) or ``"memory"``
    (built, no cache could be written).
    """
    categories_sha = _categories_sha256(categories)
    directories = cache_directories(split_path, split, cache)
    for directory in directories:
        found = _fresh(directory, split_path, categories, categories_sha)
        if found is not None:
            return found, "cache"
    try:
        before = split_path.stat()
    except FileNotFoundError:
        raise ParseError("split file is missing", file=split_path) from None
    except OSError as exc:
        raise ParseError(f"cannot read: {exc.strerror}", file=split_path) from None
    started = time.time_ns()
    arrays, sha = build_index(split_path, categories)
    after = split_path.stat()
    if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
        logger.warning("%s changed while it was indexed; not caching the index", split_path)
        return SplitIndex(arrays), "memory"
    meta = _CacheMeta(
        version=INDEX_VERSION,
        split_size=before.st_size,
        split_mtime_ns=before.st_mtime_ns,
        split_sha256=sha,
        categories_sha256=categories_sha,
        verified_ns=started,
        records=len(arrays["image_ids"]),
        boxes=len(arrays["box_labels"]),
    )
    for directory in directories:
        try:
            write_cache(directory, arrays, meta)
        except OSError as exc:
            logger.info("cannot write the index cache in %s (%s); trying the next place", directory, exc)
            continue
        mapped = _load_arrays(directory, meta, len(categories))
        if mapped is not None:
            return mapped, "built"
    if directories:
        warnings.warn(
            f"no writable place for the index cache of {split_path} (tried {', '.join(map(str, directories))}); "
            "the index is rebuilt on every open",
            stacklevel=3,
        )
    return SplitIndex(arrays), "memory"


# ------------------------------------------------------------------------------------------- dataset


def _lexically_inside(relative: str) -> bool:
    """Whether a record path stays under its root before any symlink is followed (cheap, no system call)."""
    if relative.startswith(("/", "\\")) or relative[1:2] == ":":
        return False
    return ".." not in relative or ".." not in relative.replace("\\", "/").split("/")


class NormalizedDataset:
    """One split of a normalized dataset, map-style: ``len(ds)``, ``ds[i] -> (image, target)``, ``ds[a:b]``.

    ``image`` is an RGB PIL image (or, with ``load_images=False``, the image's path as a string:
    no file is opened). ``target`` holds numpy arrays in torchvision's detection convention:

    ``boxes``
        float32 ``(N, 4)``, ``x1, y1, x2, y2`` in pixels.
    ``labels``
        int64 ``(N,)``, the category ``id`` of each box (``ds.categories[id]`` is its name).
    ``image_id``
        int: the record's ``id`` when it is an integer, else the record's position in the split.
    ``area``
        float32 ``(N,)``: the box attribute ``area`` when present (COCO's segment area), else the box's area.
    ``iscrowd``
        int64 ``(N,)``: the box attribute ``iscrowd`` as 0/1, 0 when absent.
    ``counts``
        dict class name -> count, as in the record.
    ``names``
        list of the classes present in the image (the record's ``labels``).
    ``masks`` (``masks=True``, instance masks)
        uint8 ``(N, H, W)``, one 0/1 plane per box; void pixels (255 / 65535 in the file) belong to none.
        A record without a mask file gets all-zero planes.
    ``mask`` (``masks=True``, semantic masks)
        uint8 ``(H, W)``: category id + 1, 0 background, 255 void; all 255 for a record without a mask file.

    Options: ``image_root`` overrides the manifest's; ``transforms(image, target) -> (image, target)``
    runs last; ``to_tensor=True`` (needs torch) converts image and target with
    :func:`annonorm.torch.to_tensors` first (torchvision ``tv_tensors`` when torchvision is installed,
    so ``transforms.v2`` moves boxes and masks with the image); ``allow_outside_root`` lets image
    paths leave ``image_root``; ``on_missing="skip"`` turns a missing, corrupt or wrongly sized image
    or mask into a :class:`SkippedRecordWarning` and returns the next loadable record instead (wrapping
    around), ``"raise"`` (default) raises :class:`~annonorm.errors.ParseError` /
    :class:`~annonorm.errors.InvalidDataError` naming the record; ``cache`` says where the index may
    be cached (see :func:`cache_directories`); ``rev``/``repo``/``remote`` open the dataset as of a
    git/DVC revision (``annonorm[dvc]``, see :func:`annonorm.dvc.open_revision`).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        split: str = "train",
        *,
        image_root: str | os.PathLike[str] | None = None,
        transforms: Callable[[Any, dict[str, Any]], tuple[Any, dict[str, Any]]] | None = None,
        load_images: bool = True,
        masks: bool = False,
        allow_outside_root: bool = False,
        on_missing: Literal["raise", "skip"] = "raise",
        to_tensor: bool = False,
        cache: bool | str | os.PathLike[str] = True,
        rev: str | None = None,
        repo: str | os.PathLike[str] | None = None,
        remote: str | None = None,
    ) -> None:
        if rev is not None or repo is not None:
            # A git/DVC revision: its manifest, splits and masks are materialized locally (annonorm[dvc]).
            from annonorm.dvc import open_revision

            path = open_revision(
                os.fspath(path), rev=rev, repo=None if repo is None else os.fspath(repo), remote=remote, masks=masks
            )
        self._process = os.getpid()  # see __getitem__: a DataLoader worker is another process
        manifest_file = manifest_path(Path(path))
        manifest = read_manifest(manifest_file)
        self.manifest: Manifest = manifest
        self.root = Path(os.path.abspath(manifest_file.parent))
        if split not in manifest.splits:
            raise UsageError(
                f"no split {split!r}; this dataset has {', '.join(map(repr, manifest.splits))}", file=manifest_file
            )
        if on_missing not in ("raise", "skip"):
            raise UsageError(f"on_missing must be 'raise' or 'skip', not {on_missing!r}")
        if masks and manifest.mask_kind is None:
            raise UsageError(
                "masks=True but the dataset has no masks (its manifest sets no mask_kind)", file=manifest_file
            )
        self.split = split
        self.split_path = self.root / manifest.splits[split]
        chosen_root = Path(image_root) if image_root is not None else self.root / manifest.image_root
        self.image_root = Path(os.path.abspath(chosen_root))
        self.categories: tuple[str, ...] = tuple(manifest.category_names)
        self.transforms = transforms
        self.load_images = load_images
        self.masks = masks
        self.allow_outside_root = allow_outside_root
        self.on_missing = on_missing
        self.to_tensor = to_tensor
        self._converter: Callable[..., tuple[Any, dict[str, Any]]] | None = None
        if to_tensor:
            try:
                from annonorm.torch import to_tensors
            except ImportError:
                raise MissingDependency("torch", "torch", "to_tensor=True") from None
            self._converter = to_tensors
        self._index, self.index_source = open_index(
            self.split_path, split, self.categories, cache if isinstance(cache, bool) else Path(cache)
        )
        self._positions: np.ndarray | None = None
        self._root_str = str(self.image_root)
        self._real_image_root = self.image_root.resolve()
        self._real_root = self.root.resolve()

    @classmethod
    def open(cls, path: str | os.PathLike[str], split: str = "train", **options: Any) -> NormalizedDataset:
        """Open a split (the same as the constructor).

        The place where other storages plug in: a dataset at a DVC revision (``rev=``, ``repo=``)
        will be resolved to a local directory here before the constructor runs.
        """
        return cls(path, split, **options)

    # ------------------------------------------------------------------ sequence protocol

    def __len__(self) -> int:
        return len(self._index) if self._positions is None else len(self._positions)

    def __repr__(self) -> str:
        return (
            f"NormalizedDataset({str(self.root)!r}, split={self.split!r}, records={len(self)}, "
            f"categories={len(self.categories)}, index={self.index_source})"
        )

    def _record_position(self, index: int) -> int:
        position = operator.index(index)
        size = len(self)
        if position < 0:
            position += size
        if not 0 <= position < size:
            raise IndexError(f"index {index} is out of range for a dataset of {size} records")
        return position if self._positions is None else int(self._positions[position])

    def __getitem__(self, index: int | slice) -> Any:
        if self._process != os.getpid():
            self._entered_worker()
        if isinstance(index, slice):
            return self.subset(range(len(self))[index])
        position = self._record_position(index)
        if self.on_missing == "skip":
            image, target = self._load_skipping(operator.index(index) % len(self))
        else:
            image, target = self._load(position)
        if self._converter is not None:
            image, target = self._converter(image, target, canvas_size=self._canvas(position, image))
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target

    def _entered_worker(self) -> None:
        """First item in a new process (a forked DataLoader worker): freeze what it inherited.

        Every object the parent had (torch's own, the user's) is shared copy-on-write with the
        worker until something writes to it, and the cyclic garbage collector writes to every object
        it walks. A collate function that makes many tensors triggers full collections, so a worker
        would slowly copy the parent's whole heap. ``gc.freeze()`` moves the inherited objects out of
        the collector's reach (in O(1)); they are still freed by reference counting.
        """
        gc.freeze()
        self._process = os.getpid()

    def _load_skipping(self, start: int) -> tuple[Any, dict[str, Any]]:
        size = len(self)
        for step in range(size):
            position = self._record_position((start + step) % size)
            try:
                return self._load(position)
            except UnsafePathError:
                raise
            except (ParseError, InvalidDataError) as exc:
                warnings.warn(f"{exc}; skipping this record", SkippedRecordWarning, stacklevel=3)
        raise ParseError("no record of this split has a loadable image", file=self.split_path)

    def subset(self, indices: Iterable[int] | np.ndarray) -> NormalizedDataset:
        """A dataset of the given records (positions in this dataset), sharing this one's index."""
        wanted = np.asarray(indices if isinstance(indices, np.ndarray | range) else list(indices), dtype=np.int64)
        if wanted.ndim != 1:
            raise UsageError(f"subset indices must be one-dimensional, got shape {wanted.shape}")
        size = len(self)
        if wanted.size and (int(wanted.min()) < -size or int(wanted.max()) >= size):
            raise IndexError(f"subset indices must lie in -{size}..{size - 1}")
        wanted = np.where(wanted < 0, wanted + size, wanted)
        chosen = copy.copy(self)
        chosen._positions = wanted if self._positions is None else self._positions[wanted]
        return chosen

    # ------------------------------------------------------------------ metadata

    def record_line(self, index: int) -> int:
        """The line of the split file that holds record ``index``."""
        return int(self._index.lines[self._record_position(index)])

    def _image_relative(self, position: int) -> str:
        ix = self._index
        start, end = ix.image_offsets[position : position + 2].tolist()
        return ix.image_bytes[start:end].tobytes().decode("utf-8", "surrogatepass")

    def _mask_relative(self, position: int) -> str | None:
        ix = self._index
        start, end = ix.mask_offsets[position : position + 2].tolist()
        if start == end:
            return None
        return ix.mask_bytes[start:end].tobytes().decode("utf-8", "surrogatepass")

    def _where(self, position: int) -> str:
        return f"line {int(self._index.lines[position])}"

    def target(self, index: int) -> dict[str, Any]:
        """The target of record ``index`` alone (no image or mask is read)."""
        return self._target(self._record_position(index))

    def _target(self, position: int) -> dict[str, Any]:
        ix = self._index
        start, end = ix.box_offsets[position : position + 2].tolist()
        names = self.categories
        counts_start, counts_end = ix.count_offsets[position : position + 2].tolist()
        labels_start, labels_end = ix.label_offsets[position : position + 2].tolist()
        image_id = ix.image_ids[position]
        return {
            "boxes": ix.boxes[start:end].copy(),
            "labels": ix.box_labels[start:end].astype(np.int64),
            "image_id": int(image_id),
            "area": ix.box_area[start:end].copy(),
            "iscrowd": ix.box_iscrowd[start:end].astype(np.int64),
            "counts": dict(
                zip(
                    [names[k] for k in ix.count_ids[counts_start:counts_end].tolist()],
                    ix.count_values[counts_start:counts_end].tolist(),
                    strict=True,
                )
            ),
            "names": [names[k] for k in ix.label_ids[labels_start:labels_end].tolist()],
        }

    def size(self, index: int) -> tuple[int, int] | None:
        """The record's ``(width, height)``, or ``None`` when the record does not say."""
        width, height = self._index.sizes[self._record_position(index)].tolist()
        return (width, height) if width else None

    def image_path(self, index: int) -> Path:
        """The checked, symlink-resolved path of record ``index``'s image."""
        position = self._record_position(index)
        return self._checked_image_path(position, self._image_relative(position))

    # ------------------------------------------------------------------ files

    def _unsafe(self, position: int, relative: str, root: Path, what: str) -> UnsafePathError:
        return UnsafePathError(
            f"record {position}: {what} path {relative!r} resolves outside {root}; "
            "pass allow_outside_root=True to allow it"
            if what == "image"
            else f"record {position}: {what} path {relative!r} resolves outside the dataset directory {root}",
            file=self.split_path,
            location=self._where(position),
        )

    def _checked_image_path(self, position: int, relative: str) -> Path:
        joined = self.image_root / relative
        if self.allow_outside_root:
            return joined
        resolved = joined.resolve()
        if not resolved.is_relative_to(self._real_image_root):
            raise self._unsafe(position, relative, self.image_root, "image")
        return resolved

    def _load(self, position: int) -> tuple[Any, dict[str, Any]]:
        target = self._target(position)
        relative = self._image_relative(position)
        if not self.allow_outside_root and not _lexically_inside(relative):
            raise self._unsafe(position, relative, self.image_root, "image")
        width, height = self._index.sizes[position].tolist()
        image: Any
        if self.load_images:
            image = self._read_image(position, relative, (width, height) if width else None)
            width, height = image.size
        else:
            image = os.path.join(self._root_str, relative)
        if self.masks:
            self._add_masks(position, target, (width, height) if width else None)
        return image, target

    def _read_image(self, position: int, relative: str, expected: tuple[int, int] | None) -> Image.Image:
        path = self._checked_image_path(position, relative)
        where = self._where(position)
        try:
            with Image.open(path) as opened:
                image = opened.convert("RGB")  # decodes now, so truncated files fail here
        except FileNotFoundError:
            raise ParseError(
                f"record {position}: image {path} is missing", file=self.split_path, location=where
            ) from None
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise ParseError(
                f"record {position}: image {path} cannot be decoded ({exc})", file=self.split_path, location=where
            ) from None
        if expected is not None and image.size != expected:
            raise InvalidDataError(
                f"record {position}: image {path} is {image.size[0]}x{image.size[1]} "
                f"but the record says {expected[0]}x{expected[1]}",
                file=self.split_path,
                location=where,
            )
        return image

    def _add_masks(self, position: int, target: dict[str, Any], size: tuple[int, int] | None) -> None:
        relative = self._mask_relative(position)
        instance = self.manifest.mask_kind == "instance"
        boxes = len(target["boxes"])
        if relative is None:
            width, height = size or (0, 0)
            if instance:
                target["masks"] = np.zeros((boxes, height, width), dtype=np.uint8)
            else:
                target["mask"] = np.full((height, width), 255, dtype=np.uint8)
            return
        where = self._where(position)
        joined = self.root / relative
        resolved = joined.resolve()
        if not _lexically_inside(relative) or not resolved.is_relative_to(self._real_root):
            raise self._unsafe(position, relative, self.root, "mask")
        try:
            with Image.open(resolved) as opened:
                pixels = np.asarray(opened)
        except FileNotFoundError:
            raise ParseError(
                f"record {position}: mask {resolved} is missing", file=self.split_path, location=where
            ) from None
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise ParseError(
                f"record {position}: mask {resolved} cannot be decoded ({exc})", file=self.split_path, location=where
            ) from None
        if pixels.ndim != 2:
            raise InvalidDataError(
                f"record {position}: mask {resolved} has {pixels.ndim} dimensions; expected one channel",
                file=self.split_path,
                location=where,
            )
        if size is not None and (pixels.shape[1], pixels.shape[0]) != size:
            raise InvalidDataError(
                f"record {position}: mask {resolved} is {pixels.shape[1]}x{pixels.shape[0]}, "
                f"the image {size[0]}x{size[1]}",
                file=self.split_path,
                location=where,
            )
        if instance:
            # Pixel value k marks the k-th box (1-based); 0 and the void value match no box.
            planes = pixels[None, :, :] == np.arange(1, boxes + 1, dtype=pixels.dtype)[:, None, None]
            target["masks"] = planes.view(np.uint8)
        else:
            target["mask"] = pixels.astype(np.uint8, copy=True)

    def _canvas(self, position: int, image: Any) -> tuple[int, int] | None:
        """``(height, width)`` of the record's image, for tensors that need a canvas size."""
        if isinstance(image, Image.Image):
            return image.height, image.width
        width, height = self._index.sizes[position].tolist()
        return (height, width) if width else None
