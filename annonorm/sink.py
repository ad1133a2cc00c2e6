"""The sink a converter's reader writes into: categories, split streams, mask files, the error policy, progress.

A reader declares categories (:meth:`DatasetWriter.category`), adds records as plain dicts in the
canonical shape (:meth:`~DatasetWriter.add`), asks where to write masks
(:meth:`~DatasetWriter.mask_file`), names the source files it read
(:meth:`~DatasetWriter.add_source_file`, hashed by :class:`annonorm.provenance.SourceRegistry`) and
reports per-record problems through :meth:`~DatasetWriter.problem`, which raises in ``fail`` mode and
collects them in ``skip`` mode.

A reader that builds a split in several processes hands :meth:`~DatasetWriter.add_in_parts` a
function that writes a range of it; underneath, each process gets a :meth:`~DatasetWriter.part_writer`,
checks the part it wrote with :meth:`~DatasetWriter.check_part` while the part is still in
the page cache, and the parent appends parts in order (:meth:`~DatasetWriter.append_part`). The check
itself is the validator's: the caller (:func:`annonorm.convert`) injects it as :attr:`part_check`, so a
format never imports the validator. Without one, parts are not checked and the output is validated
in full before it is renamed into place.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

import msgspec

from annonorm.errors import AnnonormError
from annonorm.provenance import SourceRegistry
from annonorm.records import RECORD_KEYS, canonical_box
from annonorm.schemas.manifest import MANIFEST_FILE, Manifest

if TYPE_CHECKING:
    from annonorm.engine import Executor

__all__ = ["DatasetWriter", "PartCheck", "SplitSummary", "encode_record"]

_JSON_ENCODER = msgspec.json.Encoder()


class PartCheck(Protocol):
    """Checks one part of a split file, written by this process, as the validator would check it there.

    ``path`` holds ``masks`` records with a mask; ``categories`` are the dataset's class names in id
    order. What it returns goes to :meth:`DatasetWriter.append_part` in the parent and, from there, to
    the validation of the whole output (:func:`annonorm.validation.check_part` is the one in use).
    """

    def __call__(self, path: Path, categories: Sequence[str], *, masks: int) -> Any: ...


def encode_record(record: dict[str, Any]) -> bytes:
    """One record as a canonical JSON line: keys in format order, coordinates rounded, ``None`` left out."""
    out = {}
    for key in RECORD_KEYS:
        value = record.get(key)
        if value is None:
            continue
        if key == "boxes":
            value = [canonical_box(box) for box in value]
        out[key] = value
    return _JSON_ENCODER.encode(out) + b"\n"


def _category_fields(
    source_id: int | str | None,
    attributes: dict[str, Any] | None,
    supercategory: str | None,
    keypoints: Sequence[str] | None,
    skeleton: Sequence[Sequence[int]] | None,
) -> dict[str, Any]:
    """The optional manifest fields of a category, in manifest key order, the ones not given left out."""
    fields: dict[str, Any] = {}
    if source_id is not None:
        fields["source_id"] = source_id
    if supercategory is not None:
        fields["supercategory"] = supercategory
    if keypoints is not None:
        fields["keypoints"] = list(keypoints)
    if skeleton is not None:
        fields["skeleton"] = [list(pair) for pair in skeleton]
    if attributes:
        fields["attributes"] = attributes
    return fields


@dataclass
class SplitSummary:
    """What was written to one split."""

    records: int = 0
    boxes: int = 0
    masks: int = 0


@dataclass
class DatasetWriter:
    """The sink a converter's reader writes into (inside an :func:`~annonorm.fsutil.atomic_output` directory).

    See the module docstring for what a reader does with it.
    """

    directory: Path
    on_error: str = "fail"
    categories: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, SplitSummary] = field(default_factory=dict)
    skipped: list[AnnonormError] = field(default_factory=list)
    mask_kind: str | None = None
    progress: Any = None
    _by_name: dict[str, int] = field(default_factory=dict)
    _streams: dict[str, IO[bytes]] = field(default_factory=dict)
    #: Per split, the checks the processes that wrote its parts made (what :attr:`part_check` returned).
    checked_parts: dict[str, list[Any]] = field(default_factory=dict)
    #: The source files (or directories) the reader named, hashed for the manifest's provenance.
    sources: SourceRegistry = field(default_factory=SourceRegistry)
    #: The user's class list (``--classes``): it fixes the categories and their order before the reader runs.
    class_list: list[str] | None = None
    #: Classes the reader declared that the class list does not name (the caller refuses those in use).
    unlisted: list[str] = field(default_factory=list)
    _sourced: set[str] = field(default_factory=set)
    _expected: int = 0
    #: How a process checks the part of a split it wrote (injected by :func:`annonorm.convert`; ``None``: no check).
    part_check: PartCheck | None = None

    def __post_init__(self) -> None:
        for name in self.class_list or ():
            self._by_name[name] = len(self.categories)
            self.categories.append({"id": len(self.categories), "name": name})

    def category(
        self,
        name: str,
        source_id: int | str | None = None,
        attributes: dict[str, Any] | None = None,
        *,
        supercategory: str | None = None,
        keypoints: Sequence[str] | None = None,
        skeleton: Sequence[Sequence[int]] | None = None,
    ) -> int:
        """The contiguous id of ``name``, registering it (in first-seen order) when new.

        ``supercategory``, ``keypoints`` (the keypoint names, in the order a box's ``keypoints``
        lists them) and ``skeleton`` (pairs of keypoint indices) are the format-version-2 fields of a
        category. With a :attr:`class_list` the id is the class's place in that list; the first
        ``source_id``, ``attributes`` and v2 fields the reader gives a listed class are kept. A class
        the list does not name is registered after the listed ones and remembered in :attr:`unlisted`.
        """
        fields = _category_fields(source_id, attributes, supercategory, keypoints, skeleton)
        known = self._by_name.get(name)
        if known is not None:
            if self.class_list is not None and name not in self._sourced:
                self._sourced.add(name)
                self.categories[known].update(fields)
            return known
        if self.class_list is not None:
            self.unlisted.append(name)
            self._sourced.add(name)
        index = len(self.categories)
        self.categories.append({"id": index, "name": name, **fields})
        self._by_name[name] = index
        return index

    def category_keypoints(self, name: str) -> list[str] | None:
        """The keypoint names declared for category ``name`` (``None`` without any, or for an unknown name)."""
        known = self._by_name.get(name)
        return None if known is None else self.categories[known].get("keypoints")

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

    def part_writer(self, directory: Path) -> DatasetWriter:
        """A writer for a part of this output that another process builds in ``directory``.

        It has this writer's error policy and part check, and no categories, progress or sources of
        its own (the parent declares those).
        """
        return DatasetWriter(directory, on_error=self.on_error, part_check=self.part_check)

    def check_part(self, split: str, categories: Sequence[str]) -> Any:
        """The :attr:`part_check` of what this (part) writer wrote to ``split``; ``None`` without a check.

        ``categories`` are the whole dataset's class names in id order. Call it once the split is closed.
        """
        if self.part_check is None:
            return None
        path = self.directory / f"{split}.jsonl"
        return self.part_check(path, categories, masks=self.summary[split].masks)

    def append_part(self, split: str, part: Path, summary: SplitSummary, checked: Any = None) -> None:
        """Append the encoded records another process wrote to ``part`` to ``split``, with their counts.

        ``checked`` is that process's :meth:`check_part` of ``part``, if it made one.
        """
        if checked is not None:
            self.checked_parts.setdefault(split, []).append(checked)
        with part.open("rb") as source:
            shutil.copyfileobj(source, self._stream(split), 1 << 20)
        self._count(split, summary.records, summary.boxes, summary.masks)

    def add_in_parts(
        self, split: str, executor: Executor, count: int, workers: int, build: Callable[[DatasetWriter, int, int], None]
    ) -> bool:
        """Write ``split``'s ``count`` items in ``workers`` forked processes: ``build(writer, start, stop)``
        writes items ``start..stop`` into ``writer`` (a part writer there, this writer for a part redone).

        Each process writes and checks a part file (:meth:`check_part`) and the parts are appended in
        order; a part that fails is built again here, in its turn, so the split is byte for byte what one
        process writes. ``False`` (nothing written): the executor cannot fork.
        """
        if not executor.forks():
            return False
        bounds = [count * part // workers for part in range(workers + 1)]
        parts = [self.directory / f".part-{split}-{part}" for part in range(workers)]
        categories = [category["name"] for category in self.categories]

        def build_part(part: int) -> tuple[SplitSummary, list[AnnonormError], Any]:
            writer = self.part_writer(parts[part])
            parts[part].mkdir()
            writer.declare_split(split)
            try:
                build(writer, bounds[part], bounds[part + 1])
            finally:
                writer.close()
            return writer.summary[split], writer.skipped, writer.check_part(split, categories)

        def redo(part: int) -> None:
            build(self, bounds[part], bounds[part + 1])

        try:
            for part, (summary, skipped, checked) in executor.parts(build_part, workers, redo=redo):
                self.skipped.extend(skipped)
                self.append_part(split, parts[part] / f"{split}.jsonl", summary, checked)
        finally:
            for directory in parts:
                shutil.rmtree(directory, ignore_errors=True)
        return True

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

    @property
    def source_files(self) -> list[Path]:
        """The source files (or directories) named so far, in order."""
        return self.sources.paths

    def add_source_file(self, path: Path) -> None:
        """Name an annotation file (or a directory of them) that was read: its digest goes into the manifest.

        A large file is hashed in a background thread while the reader goes on; a directory gets one
        digest over its files (:func:`annonorm.provenance.directory_digest`).
        """
        self.sources.add(path)

    def source_hashes(self) -> list[tuple[Path, str]]:
        """``(path, digest)`` of every source named, in order (waits for the hashing)."""
        return self.sources.digests()

    def problem(self, error: AnnonormError) -> None:
        """Report a per-record problem: raise it (``fail``) or note it and go on (``skip``)."""
        if self.on_error != "skip":
            raise error
        self.skipped.append(error)

    def finish_hashing(self) -> None:
        """Wait for the source hashes and stop their thread (before forking: fork with threads is unsafe)."""
        self.sources.finish()

    def close(self) -> None:
        """Close the split files and stop the hashing thread."""
        for stream in self._streams.values():
            stream.close()
        self.finish_hashing()

    def write_manifest(self, manifest: Manifest) -> None:
        """Write ``annonorm.json`` (last, once the splits are complete)."""
        data = manifest.model_dump(mode="json", exclude_none=True)
        (self.directory / MANIFEST_FILE).write_bytes(msgspec.json.format(_JSON_ENCODER.encode(data), indent=2) + b"\n")
