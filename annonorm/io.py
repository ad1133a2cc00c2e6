"""Reading a normalized dataset: the manifest, JSONL split files.

Split files are streamed line by line; nothing holds a whole split in memory. Writing one is the
sink's (:mod:`annonorm.sink`: :class:`DatasetWriter`, :func:`encode_record`), source hashing is
provenance's (:mod:`annonorm.provenance`: :func:`file_sha256`); both are importable from here too,
as plugins written against annonorm 0.1 do. Every output (a converted dataset, an export) is
written into a temporary directory beside its target and renamed into place at the end
(:func:`atomic_output`), so an interrupted run leaves either no output or the previous one.
:func:`fingerprint` is a dataset's content hash (``annonorm stats``, ``NormalizedDataset.fingerprint``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import msgspec
from pydantic import ValidationError

from annonorm.errors import InvalidDataError, ParseError
from annonorm.fsutil import atomic_output, check_output_free, open_regular, read_regular_bytes, require_regular_file
from annonorm.paths import contained as _contained
from annonorm.provenance import file_sha256
from annonorm.records import canonical_record
from annonorm.schemas.manifest import MANIFEST_FILE, Manifest
from annonorm.sink import DatasetWriter, SplitSummary, encode_record

__all__ = [
    "DatasetWriter",
    "NormalizedSource",
    "SplitSummary",
    "atomic_output",
    "canonical_record",
    "check_output_free",
    "encode_record",
    "file_sha256",
    "fingerprint",
    "format_validation_error",
    "iter_lines",
    "open_dataset",
    "open_split",
    "read_manifest",
    "read_text",
]

_JSON_DECODER = msgspec.json.Decoder()
#: What msgspec raises for bytes that are not JSON: besides DecodeError, invalid UTF-8 inside a string
#: surfaces as UnicodeDecodeError and nesting deeper than its limit as RecursionError.
UNDECODABLE = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)


def format_validation_error(error: ValidationError) -> list[tuple[str, str]]:
    """Pydantic's errors as ``(key path, message)`` pairs a person can read."""
    pairs = []
    for item in error.errors(include_url=False):
        key = ".".join(str(part) for part in item["loc"]) or "<root>"
        message = item["msg"].removeprefix("Value error, ")
        pairs.append((key, message))
    return pairs


def manifest_path(dataset: Path) -> Path:
    """The manifest file of a dataset given as its directory or as the manifest itself."""
    return dataset if dataset.name == MANIFEST_FILE or dataset.is_file() else dataset / MANIFEST_FILE


def read_manifest(dataset: Path) -> Manifest:
    """Read and check ``annonorm.json``; raise :class:`ParseError` or :class:`InvalidDataError` naming the key."""
    path = manifest_path(dataset)
    if path != dataset and os.path.lexists(dataset) and not dataset.is_dir():
        require_regular_file(dataset, "manifest")  # a FIFO or a device named as the dataset
    try:
        os.stat(path)
    except FileNotFoundError:
        raise ParseError(f"no {MANIFEST_FILE} here; expected a normalized dataset directory", file=path) from None
    except OSError:
        pass  # worded below
    # Only a regular file is read: a FIFO would block, /dev/zero never ends (exit 2 before reading).
    raw = read_regular_bytes(path, "manifest")
    try:
        data = _JSON_DECODER.decode(raw)
    except UNDECODABLE as exc:
        raise ParseError(f"not valid JSON ({exc})", file=path) from None
    if not isinstance(data, dict):
        raise ParseError(f"expected a JSON object, found {type(data).__name__}", file=path)
    if data.get("format") != "annonorm":
        raise ParseError('this is not an annonorm manifest: expected "format": "annonorm"', file=path)
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        key, message = format_validation_error(exc)[0]
        raise InvalidDataError(message, file=path, location=key) from None


def read_text(path: Path, what: str = "") -> str:
    """A small UTF-8 text file (a byte order mark is dropped); unreadable or non-UTF-8 is a :class:`ParseError`."""
    subject = f"the {what}" if what else "the file"
    try:
        # Only a regular file: a FIFO, a device or a directory is refused before reading.
        return read_regular_bytes(path, what or "file").decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ParseError(f"{subject} is not UTF-8 text", file=path) from None


def open_split(path: Path) -> IO[bytes]:
    """A split file opened for reading; missing, unreadable or not a regular file is a :class:`ParseError`.

    A FIFO, a device or a directory is refused before any byte is read (see :mod:`annonorm.fsutil`).
    """
    try:
        os.stat(path)
    except FileNotFoundError:
        raise ParseError("split file is missing", file=path) from None
    except OSError:
        pass  # worded by open_regular
    return open_regular(path, "split file")


def iter_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """Yield ``(line number, line bytes)`` of a JSONL file, 1-based, skipping blank lines."""
    with open_split(path) as stream:
        for number, line in enumerate(stream, start=1):
            if line.strip():
                yield number, line


@dataclass(frozen=True)
class NormalizedSource:
    """A normalized dataset on disk, opened for reading (by exporters, stats, preview)."""

    root: Path
    manifest: Manifest
    #: Called with the number of records streamed so far by :meth:`records` (an export's progress bar).
    #: A writer that streams a split again (COCO's writer makes several passes) grows the bar's total.
    progress: Any = None
    _passes: dict[str, int] = field(default_factory=dict, compare=False, repr=False)
    _total: list[int] = field(default_factory=list, compare=False, repr=False)

    def split_path(self, split: str) -> Path:
        """The JSONL file of a split."""
        return self.root / self.manifest.splits[split]

    def image_root(self) -> Path:
        """The directory record image paths resolve against."""
        return (self.root / self.manifest.image_root).resolve()

    def image_path(self, relative: str) -> Path:
        """A record's image file; :class:`UnsafePathError` if it resolves (symlinks too) outside the image root."""
        return _contained(self.image_root(), relative, "the image root")

    def mask_path(self, relative: str) -> Path:
        """A record's mask file; :class:`UnsafePathError` if it resolves (symlinks too) outside the dataset."""
        return _contained(self.root.resolve(), relative, "the dataset")

    def records(self, split: str) -> Iterator[dict[str, Any]]:
        """Stream a split's records as canonical dicts. Validate the dataset first: this trusts it."""
        path = self.split_path(split)
        pending = 0
        if self.progress is not None:
            self._count_pass(split)
        for number, line in iter_lines(path):
            if self.progress is not None:
                pending += 1
                if pending == PROGRESS_STEP:
                    self.progress(pending)
                    pending = 0
            try:
                data = _JSON_DECODER.decode(line)
            except UNDECODABLE as exc:
                raise ParseError(f"not valid JSON ({exc})", file=path, location=f"line {number}") from None
            if not isinstance(data, dict):
                raise ParseError("expected a JSON object", file=path, location=f"line {number}")
            try:
                record = canonical_record(data)
            except (KeyError, TypeError, AttributeError, ValueError):
                raise InvalidDataError(
                    "record is malformed; run annonorm validate", file=path, location=f"line {number}"
                ) from None
            yield record
        if pending:
            self.progress(pending)

    def count_records(self, split: str | None = None) -> int:
        """The number of records of ``split`` (default: all splits), by counted lines: a progress bar's total."""
        total = 0
        for name in [split] if split is not None else self.manifest.splits:
            with open_split(self.split_path(name)) as stream:
                for block in iter(lambda: stream.read(1 << 20), b""):
                    total += block.count(b"\n")
        return total

    def set_progress_total(self) -> None:
        """Tell the progress display the number of records to stream (once per export, before writing)."""
        set_total = getattr(self.progress, "set_total", None)
        if set_total is not None:
            self._total[:] = [self.count_records()]
            set_total(self._total[0])

    def _count_pass(self, split: str) -> None:
        passes = self._passes[split] = self._passes.get(split, 0) + 1
        set_total = getattr(self.progress, "set_total", None)
        if passes > 1 and set_total is not None and self._total:
            self._total[0] += self.count_records(split)
            set_total(self._total[0])


#: Records between two progress reports of :meth:`NormalizedSource.records`.
PROGRESS_STEP = 256


def open_dataset(path: Path) -> NormalizedSource:
    """Open a normalized dataset (its directory or its manifest file)."""
    manifest_file = manifest_path(path)
    return NormalizedSource(root=manifest_file.parent, manifest=read_manifest(manifest_file))


#: The first bytes hashed by :func:`fingerprint`: a new scheme gets a new tag, so old and new never collide.
FINGERPRINT_TAG = b"annonorm-fingerprint-1\n"


def fingerprint(dataset_dir: str | os.PathLike[str]) -> str:
    """The content fingerprint of a normalized dataset: a SHA-256, as 64 hex digits.

    Hashed: the manifest's categories as canonical JSON (sorted keys, no spacing, absent fields
    left out), then each split, in name order, as its name and its file's bytes, each part
    length-prefixed so no two datasets run together into the same stream. Not hashed: the folder's
    path, file names and times, the dataset name, ``image_root`` and the provenance, so moving,
    copying or touching a dataset keeps its fingerprint and changing one byte of a record changes it.
    Split files are streamed; a missing or unreadable one is a :class:`ParseError`.
    """
    source = open_dataset(Path(dataset_dir))
    digest = hashlib.sha256(FINGERPRINT_TAG)

    def part(data: bytes) -> None:
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)

    categories = [category.model_dump(mode="json", exclude_none=True) for category in source.manifest.categories]
    part(json.dumps(categories, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    for split in sorted(source.manifest.splits):
        part(split.encode("utf-8"))
        path = source.split_path(split)
        with open_split(path) as stream:
            size = os.fstat(stream.fileno()).st_size
            digest.update(size.to_bytes(8, "big"))
            read = 0
            try:
                for block in iter(lambda: stream.read(1 << 20), b""):
                    digest.update(block)
                    read += len(block)
            except OSError as exc:
                raise ParseError(f"cannot read the split file: {exc.strerror}", file=path) from None
        if read != size:  # the file changed while it was read: the length prefix would not frame it
            raise ParseError("split file changed while it was read; try again", file=path)
    return digest.hexdigest()
