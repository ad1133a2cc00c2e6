"""Reading and writing a normalized dataset: the manifest, JSONL split files, atomic output.

Split files are streamed line by line; nothing holds a whole split in memory. Every output
(a converted dataset, an export) is written into a temporary directory beside its target and
renamed into place at the end, so an interrupted run leaves either no output or the previous one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import msgspec
from pydantic import ValidationError

from annonorm.errors import AnnonormError, InvalidDataError, ParseError, UnsafePathError
from annonorm.fsutil import atomic_output, check_output_free, open_regular, read_regular_bytes, require_regular_file
from annonorm.schemas.manifest import MANIFEST_FILE, Manifest
from annonorm.schemas.record import RECORD_KEYS
from annonorm.schemas.types import COORD_DECIMALS

__all__ = [
    "DatasetWriter",
    "NormalizedSource",
    "atomic_output",
    "canonical_record",
    "check_output_free",
    "encode_record",
    "file_sha256",
    "format_validation_error",
    "iter_lines",
    "open_dataset",
    "open_split",
    "read_manifest",
    "read_text",
]

_JSON_ENCODER = msgspec.json.Encoder()
#: Source files at least this large are hashed in a background thread while the reader works.
BACKGROUND_HASH_BYTES = 4 * 1024 * 1024
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


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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


def canonical_record(data: dict[str, Any]) -> dict[str, Any]:
    """Expand the seed's shorthand forms of an already-valid record (cheap, no model objects)."""
    data.setdefault("boxes", [])  # optional in the format (counts-only records); exporters index it
    labels = data.get("labels")
    counts = data.get("counts")
    if isinstance(labels, str):
        data["labels"] = [labels]
    if isinstance(counts, list):
        data["counts"] = {name: value for item in counts for name, value in item.items()}
    if "counts" not in data and data.get("boxes"):
        derived: dict[str, int] = {}
        for box in data["boxes"]:
            derived[box["name"]] = derived.get(box["name"], 0) + 1
        data["counts"] = derived
    if "labels" not in data:
        names = dict.fromkeys(box["name"] for box in data.get("boxes", ()))
        names.update((n, None) for n, c in data.get("counts", {}).items() if c > 0)
        data["labels"] = list(names)
    return data


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
            except (KeyError, TypeError, AttributeError):
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


def _contained(root: Path, relative: str, what: str) -> Path:
    # Records are checked to hold relative paths without "..", but a symlink can still point away:
    # an exporter that copies or reads the file must not carry a file from elsewhere into its output.
    path = root / relative
    if not path.resolve().is_relative_to(root):
        raise UnsafePathError(f"{relative!r} resolves outside {what} ({root}); refusing to read it", file=path)
    return path


def open_dataset(path: Path) -> NormalizedSource:
    """Open a normalized dataset (its directory or its manifest file)."""
    manifest_file = manifest_path(path)
    return NormalizedSource(root=manifest_file.parent, manifest=read_manifest(manifest_file))


# ---------------------------------------------------------------------------------------------- writing


def _clean_box(box: dict[str, Any]) -> dict[str, Any]:
    # Spelled out rather than looped: this runs once per box of every conversion.
    out = {
        "name": box["name"],
        "x1": round(float(box["x1"]), COORD_DECIMALS) + 0.0,
        "y1": round(float(box["y1"]), COORD_DECIMALS) + 0.0,
        "x2": round(float(box["x2"]), COORD_DECIMALS) + 0.0,
        "y2": round(float(box["y2"]), COORD_DECIMALS) + 0.0,
    }
    attributes = box.get("attributes")
    if attributes is not None:
        out["attributes"] = attributes
    return out


def encode_record(record: dict[str, Any]) -> bytes:
    """One record as a canonical JSON line: keys in format order, coordinates rounded, ``None`` left out."""
    out = {}
    for key in RECORD_KEYS:
        value = record.get(key)
        if value is None:
            continue
        if key == "boxes":
            value = [_clean_box(box) for box in value]
        out[key] = value
    return _JSON_ENCODER.encode(out) + b"\n"


@dataclass
class SplitSummary:
    """What was written to one split."""

    records: int = 0
    boxes: int = 0
    masks: int = 0


@dataclass
class DatasetWriter:
    """The sink a converter's reader writes into (inside an :func:`atomic_output` directory).

    A reader declares categories (:meth:`category`), adds records as plain dicts in the canonical
    shape (:meth:`add`), asks where to write masks (:meth:`mask_file`), names the source files it
    read (:meth:`add_source_file`) and reports per-record problems through :meth:`problem`, which
    raises in ``fail`` mode and collects them in ``skip`` mode.
    """

    directory: Path
    on_error: str = "fail"
    categories: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, SplitSummary] = field(default_factory=dict)
    skipped: list[AnnonormError] = field(default_factory=list)
    source_files: list[Path] = field(default_factory=list)
    mask_kind: str | None = None
    progress: Any = None
    _by_name: dict[str, int] = field(default_factory=dict)
    _streams: dict[str, IO[bytes]] = field(default_factory=dict)
    #: Per split, the checks the processes that wrote its parts made (:class:`annonorm.validation.CheckedPart`).
    checked_parts: dict[str, list[Any]] = field(default_factory=dict)
    _hasher: ThreadPoolExecutor | None = None
    _hashes: list[Future[str] | None] = field(default_factory=list)
    #: The user's class list (``--classes``): it fixes the categories and their order before the reader runs.
    class_list: list[str] | None = None
    #: Classes the reader declared that the class list does not name (the caller refuses those in use).
    unlisted: list[str] = field(default_factory=list)
    _sourced: set[str] = field(default_factory=set)
    _expected: int = 0

    def __post_init__(self) -> None:
        for name in self.class_list or ():
            self._by_name[name] = len(self.categories)
            self.categories.append({"id": len(self.categories), "name": name})

    def category(self, name: str, source_id: int | str | None = None, attributes: dict[str, Any] | None = None) -> int:
        """The contiguous id of ``name``, registering it (in first-seen order) when new.

        With a :attr:`class_list` the id is the class's place in that list; the first ``source_id``
        and ``attributes`` the reader gives a listed class are kept. A class the list does not name
        is registered after the listed ones and remembered in :attr:`unlisted`.
        """
        known = self._by_name.get(name)
        if known is not None:
            if self.class_list is not None and name not in self._sourced:
                self._sourced.add(name)
                listed = self.categories[known]
                if source_id is not None:
                    listed["source_id"] = source_id
                if attributes:
                    listed["attributes"] = attributes
            return known
        if self.class_list is not None:
            self.unlisted.append(name)
            self._sourced.add(name)
        index = len(self.categories)
        entry: dict[str, Any] = {"id": index, "name": name}
        if source_id is not None:
            entry["source_id"] = source_id
        if attributes:
            entry["attributes"] = attributes
        self.categories.append(entry)
        self._by_name[name] = index
        return index

    def has_category(self, name: str) -> bool:
        """Whether the reader has declared ``name`` (a class only the class list names does not count)."""
        return name in self._by_name and (self.class_list is None or name in self._sourced)

    def add(self, split: str, record: dict[str, Any], *, canonical: bool = False) -> None:
        """Append one record to ``split``.

        ``record`` is a dict in the canonical shape; :func:`encode_record` orders its keys, rounds
        coordinates and leaves out ``None``. A reader that already built it exactly so (keys in
        format order, coordinates rounded to 6 decimals, no ``None``) passes ``canonical=True`` to
        skip that work; the validation of the output before it is renamed into place still checks it.
        """
        data = _JSON_ENCODER.encode(record) + b"\n" if canonical else encode_record(record)
        self._write(split, data, 1, len(record.get("boxes") or ()), 1 if record.get("mask") else 0)

    def add_many(self, split: str, records: list[dict[str, Any]]) -> None:
        """Append records already in the canonical form (see :meth:`add`), encoded in one call."""
        if not records:
            return
        boxes = sum(len(record.get("boxes") or ()) for record in records)
        masks = sum(1 for record in records if record.get("mask"))
        self._write(split, _JSON_ENCODER.encode_lines(records), len(records), boxes, masks)

    def append_part(self, split: str, part: Path, summary: SplitSummary, checked: Any = None) -> None:
        """Append the encoded records another process wrote to ``part`` to ``split``, with their counts.

        ``checked`` is that process's :class:`annonorm.validation.CheckedPart` of ``part``, if it made one.
        """
        if checked is not None:
            self.checked_parts.setdefault(split, []).append(checked)
        with part.open("rb") as source:
            shutil.copyfileobj(source, self._stream(split), 1 << 20)
        self._count(split, summary.records, summary.boxes, summary.masks)

    def _write(self, split: str, data: bytes, records: int, boxes: int, masks: int) -> None:
        self._stream(split).write(data)
        self._count(split, records, boxes, masks)

    def _stream(self, split: str) -> IO[bytes]:
        return self._streams.get(split) or self._open_split(split)

    def _count(self, split: str, records: int, boxes: int, masks: int) -> None:
        summary = self.summary[split]
        summary.records += records
        summary.boxes += boxes
        summary.masks += masks
        if self.progress is not None:
            self.progress(records)

    def expect(self, records: int) -> None:
        """Tell the progress display that ``records`` more records are coming (a reader calls it once it knows,
        after decoding a file or listing a folder); the display shows a bar with an ETA from then on."""
        self._expected += records
        set_total = getattr(self.progress, "set_total", None)
        if set_total is not None:
            set_total(self._expected)

    def declare_split(self, split: str) -> None:
        """Make ``split`` exist even if it ends up with no record."""
        if split not in self._streams:
            self._open_split(split)

    def _open_split(self, split: str) -> IO[bytes]:
        stream = self._streams[split] = (self.directory / f"{split}.jsonl").open("wb", buffering=1 << 20)
        self.summary[split] = SplitSummary()
        return stream

    def mask_file(self, relative: str) -> Path:
        """Absolute path where the mask that records reference as ``relative`` is to be written."""
        path = self.directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def add_source_file(self, path: Path) -> None:
        """Name an annotation file that was read (its hash goes into the manifest).

        The file is hashed in a background thread while the reader goes on: hashlib releases the
        interpreter lock, so on a second core the hash of a 400 MB COCO file costs no wall time.
        """
        self.source_files.append(path)
        try:
            large = path.stat().st_size >= BACKGROUND_HASH_BYTES
        except OSError:
            large = False
        if not large:  # thousands of small files (VOC XML) are cheaper hashed at the end, in this thread
            self._hashes.append(None)
            return
        if self._hasher is None:
            self._hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="annonorm-sha256")
        self._hashes.append(self._hasher.submit(file_sha256, path))

    def source_hashes(self) -> list[tuple[Path, str]]:
        """``(path, sha256)`` of every source file named, in order (waits for the hashing)."""
        try:
            return [
                (path, file_sha256(path) if future is None else future.result())
                for path, future in zip(self.source_files, self._hashes, strict=True)
            ]
        except OSError as exc:
            raise ParseError(f"cannot read a source file to hash it: {exc.strerror}", file=exc.filename) from None

    def problem(self, error: AnnonormError) -> None:
        """Report a per-record problem: raise it (``fail``) or note it and go on (``skip``)."""
        if self.on_error != "skip":
            raise error
        self.skipped.append(error)

    def finish_hashing(self) -> None:
        """Wait for the source hashes and stop their thread (before forking: fork with threads is unsafe)."""
        if self._hasher is not None:
            self._hasher.shutdown(wait=True)
            self._hasher = None

    def close(self) -> None:
        """Close the split files and stop the hashing thread."""
        for stream in self._streams.values():
            stream.close()
        self.finish_hashing()

    def write_manifest(self, manifest: Manifest) -> None:
        """Write ``annonorm.json`` (last, once the splits are complete)."""
        data = manifest.model_dump(mode="json", exclude_none=True)
        (self.directory / MANIFEST_FILE).write_bytes(msgspec.json.format(_JSON_ENCODER.encode(data), indent=2) + b"\n")
