"""``annonorm validate``: every rule of the format, checked in one streaming pass.

Findings carry a stable snake_case ``code`` (like Pydantic's error types), a severity, and where
they are (file, line, key). Hard rules of the format are errors; data-quality findings (a box that
leaves the image, an empty box, an unknown image size) are warnings, errors with ``strict``.

A split whose boxes all look normalized (within 0..1) or percent (within 0..100) while its images
are much larger gets ``boxes_look_normalized`` (see :func:`_unit_finding`). What the loader's arrays
cannot hold (sides beyond int32, ids and counts beyond int64, coordinates and areas beyond float32)
is ``number_out_of_range``, and with ``check_images`` a mask pixel value that names no box or class
is ``mask_value_unknown``: a dataset this module calls valid loads.

Leakage: an image path in two splits is ``image_in_several_splits`` (a warning, an error with
``strict``); with ``check_images`` the image files are also hashed (SHA-256, streamed, in the same
pass that opens them), so the same content under two paths in two splits is found too.

Split files and the manifest are opened only when they are regular files (a FIFO, a device or a
directory is refused before reading, exit 2: :mod:`annonorm.fsutil`).

Speed: lines go through :class:`annonorm.fastcheck.RecordChecker` (msgspec typed decode plus the
cross-field rules); only the lines it rejects are re-validated with the Pydantic models, which
word the messages. So the models stay the single source of truth and a million records take
seconds.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgspec
import numpy as np
from pydantic import ValidationError

from annonorm.engine import Execution, Executor, LocalExecutor
from annonorm.errors import AnnonormError, ParseError
from annonorm.fastcheck import CheckedRecord, RecordChecker, SplitImages, leaks, values_at
from annonorm.fastcheck import stable_key as _stable_key
from annonorm.fsutil import open_regular, require_regular_file
from annonorm.imagecheck import ImageBatch, Job, check_batch
from annonorm.io import UNDECODABLE, format_validation_error, iter_lines, manifest_path, read_manifest
from annonorm.provenance import check_sources as check_sources_of
from annonorm.records import V2_RULE_CODES, keypoints_outside, polygon_outside
from annonorm.schemas.manifest import MANIFEST_FILE, Manifest
from annonorm.schemas.record import Record
from annonorm.schemas.types import OUT_OF_RANGE

__all__ = ["CheckedPart", "Finding", "Report", "SplitStats", "check_part", "validate", "validate_dataset"]

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    """One problem: a stable ``code``, its severity, where it is and what is wrong."""

    code: str
    severity: Severity
    message: str
    file: str | None = None
    line: int | None = None
    key: str | None = None

    def location_text(self) -> str:
        """``file:line: key`` (the parts that are known)."""
        parts = [self.file or "", str(self.line) if self.line is not None else ""]
        where = ":".join(p for p in parts if p)
        return f"{where}: {self.key}" if self.key else where

    def __str__(self) -> str:
        return f"{self.location_text()}: {self.severity}: {self.message} [{self.code}]"


@dataclass
class SplitStats:
    """Counts seen while validating one split."""

    records: int = 0
    boxes: int = 0
    invalid: int = 0


@dataclass
class Report:
    """Everything :func:`validate_dataset` found."""

    dataset: str
    strict: bool = False
    findings: list[Finding] = field(default_factory=list)
    splits: dict[str, SplitStats] = field(default_factory=dict)

    def add(self, code: str, severity: Severity, message: str, **where: Any) -> None:
        """Record a finding (a warning becomes an error under ``strict``)."""
        if severity == "warning" and self.strict:
            severity = "error"
        self.findings.append(Finding(code, severity, message, **where))

    @property
    def errors(self) -> list[Finding]:
        """The findings that make the dataset invalid."""
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        """The findings that do not."""
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def valid(self) -> bool:
        """No error was found."""
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready report (``annonorm validate --format json``)."""
        return {
            "dataset": self.dataset,
            "valid": self.valid,
            "strict": self.strict,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "splits": {name: asdict(stats) for name, stats in self.splits.items()},
            "findings": [asdict(f) for f in self.findings],
        }


def validate(dataset: str | Path, *, strict: bool = False, check_images: bool = False) -> Report:
    """Validate a normalized dataset (directory or manifest) or a bare JSONL split file."""
    return validate_dataset(Path(dataset), strict=strict, check_images=check_images)


def validate_dataset(
    dataset: Path,
    *,
    strict: bool = False,
    check_images: bool = False,
    check_sources: bool = True,
    workers: int | None = None,
    checked: Mapping[str, Sequence[CheckedPart]] | None = None,
    execution: Execution | None = None,
    executor: Executor | None = None,
) -> Report:
    """Check the manifest, every record of every split, and the cross-record rules.

    With ``check_sources`` the source files the manifest names are checked against their recorded
    digests (:func:`annonorm.provenance.check_sources`: an unchanged file is not read again): a
    dataset whose sources changed since the conversion (or are gone) gets a ``source_changed`` /
    ``source_missing`` warning.

    Split files of :data:`PARALLEL_MIN_BYTES` or more (``execution.min_parallel`` when set) are checked
    by ``workers`` processes (else ``execution.workers``; the engine's policy: None or 0 = one per core,
    1 = this process only), each a byte range; the report is the same as a single process would write.
    ``checked`` holds, per split, the :class:`CheckedPart` s a converter's processes made of what
    they wrote; a split they cover exactly is not read again.

    ``executor`` runs the parallel work (byte ranges, image checks): by default a
    :class:`~annonorm.engine.LocalExecutor` of ``execution``; a :class:`~annonorm.ray.RayExecutor`
    runs it on a Ray cluster. The report is the same whichever runs it.

    Raises :class:`~annonorm.errors.ParseError` when the input cannot be read at all (no manifest,
    not JSON, a split file that is missing or holds no JSON); everything else is a finding.
    """
    dataset = Path(dataset)
    execution = execution or Execution()
    if workers is not None:
        execution = dataclasses.replace(execution, workers=workers)
    executor = executor or LocalExecutor(execution)
    report = Report(dataset=str(dataset), strict=strict)
    bare_split = dataset.name != MANIFEST_FILE and dataset.suffix in {".jsonl", ".ndjson"}
    if os.path.lexists(dataset) and not dataset.is_dir():
        # Before anything reads it: a FIFO would block, /dev/zero never ends (stat does neither).
        require_regular_file(dataset, "split file" if bare_split else "manifest")
    if bare_split and dataset.is_file():
        _validate_split(
            report,
            "split",
            dataset,
            categories=None,
            manifest=None,
            image_root=None,
            check_images=False,
            executor=executor,
        )
        return report
    try:
        manifest = read_manifest(dataset)
    except ParseError:
        raise
    except AnnonormError as exc:
        report.add("manifest_invalid", "error", exc.message, file=exc.file, key=exc.location)
        return report
    root = manifest_path(dataset).parent
    if check_sources:
        for stale in check_sources_of(manifest, root):
            report.add(
                f"source_{stale.status}",
                "warning",
                stale.message,
                file=str(manifest_path(dataset)),
                key=f"source.files.{stale.index}",
            )
    image_root = root / manifest.image_root
    if check_images and not image_root.is_dir():
        report.add(
            "image_root_missing",
            "error",
            f"image_root {manifest.image_root!r} is not a directory",
            file=str(manifest_path(dataset)),
            key="image_root",
        )
        check_images = False
    images = []
    for split, relative in manifest.splits.items():
        seen = _validate_split(
            report,
            split,
            root / relative,
            categories=manifest.category_names,
            manifest=manifest,
            image_root=image_root,
            check_images=check_images,
            digests=len(manifest.splits) > 1,
            dataset_root=root,
            executor=executor,
            checked=(checked or {}).get(split),
        )
        images.append(seen)
    for split_images, number, message in leaks(images):
        report.add("image_in_several_splits", "warning", message, file=str(split_images.path), line=number, key="image")
    return report


#: Split files at least this large are checked by several processes, one byte range each.
PARALLEL_MIN_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class _Chunk:
    """A byte range of a split file and what checking it needs (sent to a worker process)."""

    path: Path
    start: int
    end: int
    categories: list[str] | None
    manifest: Manifest | None
    image_root: Path | None
    dataset_root: Path | None
    check_images: bool
    strict: bool
    #: Python's str hash is salted per process: a spawned worker needs a key that is stable across processes.
    stable_keys: bool = False


@dataclass
class _ChunkResult:
    """What a byte range holds: findings and keys, line numbers counted from the range's first line."""

    findings: list[Finding]
    lines: int
    nonblank: int
    records: int
    boxes: int
    invalid: int
    image_keys: list[int]
    image_lines: list[int]
    id_keys: list[int]
    id_lines: list[int]
    #: The largest box coordinate of the range while it is at most :data:`PERCENT_TOP` (``inf`` once one is larger).
    box_top: float = 0.0
    #: The smallest image side of the range's records with a known size (``None``: no such record).
    min_side: int | None = None
    #: Whether the keys are :func:`_stable_key` s (else Python's salted ``hash``).
    stable_keys: bool = False
    #: With ``check_images``: the files of each valid record to check (:mod:`annonorm.imagecheck`).
    image_jobs: list[Job] = field(default_factory=list)


#: ``boxes_look_normalized``: a split needs this many boxes before its coordinates are judged.
UNIT_MIN_BOXES = 5
#: ... and every image at least this many pixels on each side, for boxes within 0..1 (normalized).
NORMALIZED_MIN_SIDE = 32
#: Boxes within 0..100 look like percentages when every image is at least 4 times larger (400 px a side)
#: and the largest coordinate is beyond :data:`PERCENT_MIN_TOP` (percentages of real objects spread over
#: the image; boxes between 1 and 10 fit neither reading, so nothing is guessed).
PERCENT_TOP = 100.0
PERCENT_MIN_SIDE = 4 * 100
PERCENT_MIN_TOP = 10.0


def _check_chunk(chunk: _Chunk) -> _ChunkResult:
    """Check every record of one byte range (the per-record rules; duplicates are found by the caller)."""
    report = Report(dataset="", strict=chunk.strict)
    key = _stable_key if chunk.stable_keys else hash  # equal keys are only candidates, compared exactly later
    manifest = chunk.manifest
    # Without a manifest (a part check, a bare split file) the number of a box's keypoints is not checked.
    keypoints = manifest.keypoint_counts if manifest is not None else None
    checker = RecordChecker(chunk.categories, keypoints)
    check = checker.check
    context: dict[str, Any] | None = None
    if chunk.categories is not None:
        context = {"categories": frozenset(chunk.categories)}
        if keypoints is not None:
            context["keypoints"] = keypoints
    file = str(chunk.path)
    mask_kind_missing = manifest is not None and manifest.mask_kind is None
    images_ok = chunk.check_images and chunk.image_root is not None and chunk.dataset_root is not None
    image_keys: list[int] = []
    image_lines: list[int] = []
    id_keys: list[int] = []
    id_lines: list[int] = []
    number = nonblank = records = boxes = invalid = 0
    # For boxes_look_normalized: followed only while every box is within 0..100 (real pixels end it at once).
    box_top = 0.0
    min_side: int | None = None
    jobs: list[Job] = []
    with open_regular(chunk.path, "split file") as stream:
        stream.seek(chunk.start)
        position = chunk.start
        while position < chunk.end:
            line = stream.readline()
            if not line:
                break
            position += len(line)
            number += 1
            if not line.strip():
                continue
            nonblank += 1
            checked = check(line)
            if checked is None:
                invalid += 1
                _explain(report, line, file, number, context)
                continue
            record, suspicious = checked
            records += 1
            boxes += len(record.boxes)
            image_keys.append(key(record.image))
            image_lines.append(number)
            if record.id is not None:
                id_keys.append(key(record.id))
                id_lines.append(number)
            if box_top <= PERCENT_TOP:
                if record.boxes:
                    top = max(max(box.x2, box.y2) for box in record.boxes)
                    box_top = top if top > box_top else box_top
                    if box_top > PERCENT_TOP:
                        box_top = math.inf
                if record.width is not None and record.height is not None:
                    side = min(record.width, record.height)
                    min_side = side if min_side is None or side < min_side else min_side
            if suspicious or record.width is None:
                _quality(report, record, file, number)
            if record.mask is not None and mask_kind_missing:
                report.add(
                    "mask_kind_missing",
                    "error",
                    "record has a mask but the manifest sets no mask_kind",
                    file=file,
                    line=number,
                    key="mask",
                )
            if images_ok:
                jobs.append((number, record.image, record.width, record.height, record.mask, len(record.boxes)))
    return _ChunkResult(
        report.findings,
        number,
        nonblank,
        records,
        boxes,
        invalid,
        image_keys,
        image_lines,
        id_keys,
        id_lines,
        box_top,
        min_side,
        chunk.stable_keys,
        jobs,
    )


@dataclass
class CheckedPart:
    """The per-record check of one part of a split file, made by the process that wrote the part.

    A converter that builds a split in several processes has each check its own part while it is
    still in the page cache, so that validating the whole output before it is renamed into place
    does not read the split again. The validator uses parts only when they cover the split file
    byte for byte and were checked as it would check them (same categories, no image or strict
    checks, no mask without a ``mask_kind``).
    """

    file: str
    size: int
    categories: tuple[str, ...]
    masks: int
    result: _ChunkResult

    def findings_in(self, split_file: Path) -> _ChunkResult:
        """The check, its findings naming the split file instead of the part."""
        findings = [
            dataclasses.replace(f, file=str(split_file)) if f.file == self.file else f for f in self.result.findings
        ]
        return dataclasses.replace(self.result, findings=findings)


def check_part(path: Path, categories: Sequence[str], *, masks: int) -> CheckedPart:
    """Check ``path``, a part of a split this process wrote holding ``masks`` records with a mask."""
    size = path.stat().st_size
    # Processes forked from one parent share its hash secret, so Python's fast hash is a valid key.
    stable = not LocalExecutor().forks()
    chunk = _Chunk(path, 0, size, list(categories), None, None, None, False, False, stable_keys=stable)
    return CheckedPart(str(path), size, tuple(categories), masks, _check_chunk(chunk))


def _covers(
    parts: Sequence[CheckedPart],
    path: Path,
    categories: list[str] | None,
    manifest: Manifest | None,
    *,
    check_images: bool,
    strict: bool,
) -> bool:
    """Whether ``parts`` were checked as :func:`_validate_split` would check ``path`` and cover all of it."""
    if check_images or strict or categories is None or manifest is None:
        return False
    if manifest.mask_kind is None and any(part.masks for part in parts):
        return False
    if manifest.keypoint_counts:  # a part is checked without the categories' keypoint names
        return False
    same_names = all(part.categories == tuple(categories) for part in parts)
    return same_names and sum(part.size for part in parts) == path.stat().st_size


def _validate_split(
    report: Report,
    split: str,
    path: Path,
    *,
    categories: list[str] | None,
    manifest: Manifest | None,
    image_root: Path | None,
    check_images: bool,
    digests: bool = False,
    dataset_root: Path | None = None,
    executor: Executor | None = None,
    checked: Sequence[CheckedPart] | None = None,
) -> SplitImages:
    """Check one split file into ``report``; return its image keys (and with ``check_images`` and
    ``digests``, the SHA-256 of the images that opened) for the cross-split rules."""
    if not os.path.lexists(path):
        raise ParseError("split file is missing", file=path)
    require_regular_file(path, "split file")
    if checked and _covers(checked, path, categories, manifest, check_images=check_images, strict=report.strict):
        return _merge_split(report, split, path, [part.findings_in(path) for part in checked])
    executor = executor or LocalExecutor()
    parts = executor.execution.pool_size(path.stat().st_size, PARALLEL_MIN_BYTES)
    # Forked workers share this process's hash secret, so Python's fast hash is a valid key there.
    stable = parts > 1 and not executor.forks()
    chunks = [
        _Chunk(path, start, end, categories, manifest, image_root, dataset_root, check_images, report.strict, stable)
        for start, end in (executor.byte_ranges(path, parts) if parts > 1 else [(0, path.stat().st_size)])
    ]
    checked_chunks = executor.map(_check_chunk, ((None, c) for c in chunks), processes=len(chunks), window=len(chunks))
    results = [result for _, result in checked_chunks if result is not None]
    if not (check_images and image_root is not None and dataset_root is not None and manifest is not None):
        return _merge_split(report, split, path, results)
    roots = ImageBatch(str(image_root), str(dataset_root), manifest.mask_kind, len(manifest.categories), [], digests)
    lines, hashes = _check_image_files(path, results, roots, executor)
    seen = _merge_split(report, split, path, results)
    seen.digests = np.frombuffer(bytes(hashes), dtype=np.uint8).reshape(-1, 32)
    seen.digest_lines = np.array(lines, dtype=np.int64)
    return seen


#: ``check_images``: records per unit of work sent to a worker (enough to outweigh the unit's own cost) ...
IMAGE_BATCH = 512
#: ... and the number of images from which the checks go parallel (a pool costs more than a few headers).
IMAGES_PARALLEL_MIN = 1024


def _check_image_files(
    path: Path, results: list[_ChunkResult], roots: ImageBatch, executor: Executor
) -> tuple[list[int], bytearray]:
    """Check the image (and mask) files of every valid record, in batches over the executor's workers.

    Each problem becomes an error of its byte range's findings (lines counted from the range, like
    the others), so the split's findings stay in file order. Returns the lines and SHA-256 of the
    images that opened (with ``roots.digests``).
    """
    total = sum(len(result.image_jobs) for result in results)
    processes = executor.execution.pool_size(total, IMAGES_PARALLEL_MIN)
    size = IMAGE_BATCH if processes > 1 else max(total, 1)
    units = (
        ((number, offset), dataclasses.replace(roots, jobs=result.image_jobs[start : start + size]))
        for number, (result, offset) in enumerate(zip(results, _offsets(results), strict=True))
        for start in range(0, len(result.image_jobs), size)
    )
    lines: list[int] = []
    digests = bytearray()
    for (number, offset), found in executor.map(check_batch, units, processes=processes, window=4 * processes):
        assert found is not None
        result = results[number]
        for line, code, message, key in found.problems:
            result.findings.append(Finding(code, "error", message, str(path), line, key))
        lines.extend(line + offset for line in found.lines)
        digests += found.digests
    return lines, digests


def _offsets(results: list[_ChunkResult]) -> list[int]:
    """The line offset of each consecutive byte range's first line."""
    offsets = [0]
    for result in results[:-1]:
        offsets.append(offsets[-1] + result.lines)
    return offsets


def _merge_split(report: Report, split: str, path: Path, results: list[_ChunkResult]) -> SplitImages:
    """Add the checks of a split's consecutive byte ranges to ``report``, and the cross-record rules."""
    stats = report.splits[split] = SplitStats()
    first_finding = len(report.findings)
    offset = nonblank = 0
    image_keys: list[np.ndarray] = []
    image_lines: list[np.ndarray] = []
    id_keys: list[np.ndarray] = []
    id_lines: list[np.ndarray] = []
    box_top = 0.0
    sides = []
    for result in results:
        report.findings.extend(
            f if f.line is None else dataclasses.replace(f, line=f.line + offset) for f in result.findings
        )
        image_keys.append(np.array(result.image_keys, dtype=np.int64))
        image_lines.append(np.array(result.image_lines, dtype=np.int64) + offset)
        id_keys.append(np.array(result.id_keys, dtype=np.int64))
        id_lines.append(np.array(result.id_lines, dtype=np.int64) + offset)
        offset += result.lines
        nonblank += result.nonblank
        stats.records += result.records
        stats.boxes += result.boxes
        stats.invalid += result.invalid
        box_top = max(box_top, result.box_top)
        if result.min_side is not None:
            sides.append(result.min_side)
    _unit_finding(report, path, stats.boxes, box_top, min(sides, default=None))
    keys, lines = np.concatenate(image_keys), np.concatenate(image_lines)
    _report_duplicates(report, path, keys, lines, "image")
    _report_duplicates(report, path, np.concatenate(id_keys), np.concatenate(id_lines), "id")
    # Keep the split's findings in file order whatever process found them.
    report.findings[first_finding:] = sorted(report.findings[first_finding:], key=lambda f: f.line or 0)
    if nonblank == 0:
        report.add("split_empty", "warning", "split has no record", file=str(path))
    elif stats.records == 0 and stats.invalid == nonblank and _nothing_is_json(path):
        raise ParseError("no line of this split file is a JSON object; expected JSON Lines", file=path)
    stable = frozenset(result.stable_keys for result in results)
    no_digests = np.zeros((0, 32), dtype=np.uint8)  # filled by _add_digests with check_images
    return SplitImages(split, path, keys, lines, stable, no_digests, np.zeros(0, dtype=np.int64))


def _unit_finding(report: Report, path: Path, boxes: int, top: float, min_side: int | None) -> None:
    """``boxes_look_normalized`` when a split's boxes look like fractions or percentages, not pixels.

    ``top`` is the largest coordinate of the split's boxes, ``min_side`` the smallest side of its
    images of known size. Normalized: at least :data:`UNIT_MIN_BOXES` boxes, every one within 0..1
    (and not all empty at the origin), every image at least :data:`NORMALIZED_MIN_SIDE` px a side.
    Percent: every box within 0..100 and one beyond :data:`PERCENT_MIN_TOP`, every image at least 4
    times larger (:data:`PERCENT_MIN_SIDE` px a side). A split without a known image size is not judged.
    """
    if boxes < UNIT_MIN_BOXES or min_side is None or not 0 < top <= PERCENT_TOP:
        return
    if top <= 1.0 and min_side >= NORMALIZED_MIN_SIDE:
        bound, seen = "0..1", "normalized (0..1)"
        fix = (
            "convert with the format's normalized option (csv: --normalized, or a preset that sets it), "
            "or multiply them by the image width and height"
        )
    elif top > PERCENT_MIN_TOP and min_side >= PERCENT_MIN_SIDE:
        bound, seen = "0..100", "like percentages of the image side (0..100)"
        fix = "convert with the format's option for percent coordinates, or multiply them by width/100 and height/100"
    else:
        return
    report.add(
        "boxes_look_normalized",
        "warning",
        f"all {boxes} boxes lie within {bound} while every image is at least {min_side} px on each side: "
        f"boxes are absolute pixels; these look {seen}: {fix}",
        file=str(path),
        key="boxes",
    )


def _report_duplicates(report: Report, path: Path, keys: np.ndarray, lines: np.ndarray, field_name: str) -> None:
    """Report every record whose image (or id) an earlier record of the split already has.

    Keys are 64-bit hashes, so equal keys are only candidates: their lines are read again and
    compared exactly (this happens only when the split does repeat something).
    """
    if len(keys) < 2:
        return
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    repeated = sorted_keys[1:] == sorted_keys[:-1]
    if not repeated.any():
        return
    candidate = np.zeros(len(keys), dtype=bool)
    candidate[order[1:][repeated]] = True
    candidate[order[:-1][repeated]] = True
    values = values_at(path, set(lines[candidate].tolist()), field_name)
    first_line: dict[tuple[str, Any], int] = {}
    for number in sorted(values):
        value = values[number]
        first = first_line.setdefault((type(value).__name__, value), number)
        if first == number:
            continue
        if field_name == "image":
            message = f"image {value!r} is already the record of line {first}; expected each image once per split"
            report.add("duplicate_image", "error", message, file=str(path), line=number, key="image")
        else:
            message = f"id {value!r} is already used by line {first}"
            report.add("duplicate_id", "error", message, file=str(path), line=number, key="id")


def _nothing_is_json(path: Path) -> bool:
    """Whether no line of ``path`` decodes as a JSON object (garbage, binary, truncated)."""
    for _, line in iter_lines(path):
        try:
            if isinstance(msgspec.json.decode(line), dict):
                return False
        except msgspec.ValidationError:  # JSON with a number beyond float64 (1e400): still JSON
            return False
        except UNDECODABLE:
            continue
    return True


#: Pydantic error types of a number the loader cannot hold (``finite_number``: a JSON number such as
#: ``1e400`` that overflows float64).
_OUT_OF_RANGE_TYPES = frozenset({OUT_OF_RANGE, "finite_number"})


def _explain(report: Report, line: bytes, file: str, number: int, context: dict[str, Any] | None) -> None:
    """Word why ``line`` is invalid, with the Pydantic models (the source of truth)."""
    try:
        data = msgspec.json.decode(line)
    except msgspec.ValidationError:
        # Valid JSON holding a number beyond float64 (``1e400``, "Number out of range"): the models word it.
        data = {}
    except UNDECODABLE as exc:
        report.add("json_invalid", "error", f"not valid JSON ({exc})", file=file, line=number)
        return
    if not isinstance(data, dict):
        report.add(
            "record_not_object", "error", f"expected a JSON object, found {type(data).__name__}", file=file, line=number
        )
        return
    try:
        Record.model_validate_json(line, context=context)
    except ValidationError as exc:
        for (key, message), item in zip(format_validation_error(exc), exc.errors(include_url=False), strict=True):
            kind = item["type"]
            code = OUT_OF_RANGE if kind in _OUT_OF_RANGE_TYPES else kind if kind in V2_RULE_CODES else "record_invalid"
            if item["type"] == "finite_number":
                message = "number beyond float64's range (such as 1e400); expected a finite number"
            report.add(code, "error", message, file=file, line=number, key=key)
        return
    # The fast check and the models disagree: a bug, reported rather than hidden.
    report.add("checker_disagrees", "error", "fast check rejected a record the models accept", file=file, line=number)


def _quality(report: Report, record: CheckedRecord, file: str, number: int) -> None:
    width, height = record.width, record.height
    if width is None or height is None:
        report.add(
            "size_unknown",
            "warning",
            "width/height unknown; box-in-image checks skipped",
            file=file,
            line=number,
            key="width",
        )
        width = height = None
    for index, box in enumerate(record.boxes):
        if width is not None and height is not None and (box.x2 > width or box.y2 > height):
            report.add(
                "box_outside_image",
                "warning",
                f"box ({box.x1}, {box.y1}, {box.x2}, {box.y2}) leaves the {width}x{height} image",
                file=file,
                line=number,
                key=f"boxes.{index}",
            )
        if box.x1 == box.x2 or box.y1 == box.y2:
            report.add(
                "box_degenerate",
                "warning",
                f"box ({box.x1}, {box.y1}, {box.x2}, {box.y2}) has zero width or height",
                file=file,
                line=number,
                key=f"boxes.{index}",
            )
        if width is None or height is None:
            continue
        if box.polygon is not None and polygon_outside(box.polygon, width, height):
            report.add(
                "polygon_outside_image",
                "warning",
                f"a point of the polygon lies outside the {width}x{height} image",
                file=file,
                line=number,
                key=f"boxes.{index}.polygon",
            )
        if box.keypoints is not None and keypoints_outside(box.keypoints, width, height):
            report.add(
                "keypoint_outside_image",
                "warning",
                f"a labeled keypoint lies outside the {width}x{height} image",
                file=file,
                line=number,
                key=f"boxes.{index}.keypoints",
            )
