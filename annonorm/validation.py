"""``annonorm validate``: every rule of the format, checked in one streaming pass.

Findings carry a stable snake_case ``code`` (like Pydantic's error types), a severity, and where
they are (file, line, key). Hard rules of the format are errors; data-quality findings (a box that
leaves the image, an empty box, an unknown image size) are warnings, errors with ``strict``.

Speed: lines go through :class:`annonorm.fastcheck.RecordChecker` (msgspec typed decode plus the
cross-field rules); only the lines it rejects are re-validated with the Pydantic models, which
word the messages. So the models stay the single source of truth and a million records take
seconds.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgspec
from pydantic import ValidationError

from annonorm.errors import AnnonormError, ParseError
from annonorm.fastcheck import CheckedRecord, RecordChecker
from annonorm.io import UNDECODABLE, format_validation_error, iter_lines, manifest_path, read_manifest
from annonorm.schemas.manifest import MANIFEST_FILE, Manifest
from annonorm.schemas.record import Record

__all__ = ["Finding", "Report", "SplitStats", "validate", "validate_dataset"]

Severity = Literal["error", "warning"]

#: Warnings that ``strict`` turns into errors (all of them, today).
QUALITY_CODES = ("box_outside_image", "box_degenerate", "size_unknown", "split_empty")


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
    dataset: Path, *, strict: bool = False, check_images: bool = False, check_sources: bool = True
) -> Report:
    """Check the manifest, every record of every split, and the cross-record rules.

    With ``check_sources`` the source files the manifest names are hashed again: a dataset whose
    sources changed since the conversion (or are gone) gets a ``source_changed`` /
    ``source_missing`` warning.

    Raises :class:`~annonorm.errors.ParseError` when the input cannot be read at all (no manifest,
    not JSON, a split file that is missing or holds no JSON); everything else is a finding.
    """
    dataset = Path(dataset)
    report = Report(dataset=str(dataset), strict=strict)
    if dataset.is_file() and dataset.name != MANIFEST_FILE and dataset.suffix in {".jsonl", ".ndjson"}:
        _validate_split(report, "split", dataset, categories=None, manifest=None, image_root=None, check_images=False)
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
        from annonorm.dvc import stale_sources

        for stale in stale_sources(root):
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
    for split, relative in manifest.splits.items():
        _validate_split(
            report,
            split,
            root / relative,
            categories=manifest.category_names,
            manifest=manifest,
            image_root=image_root,
            check_images=check_images,
            dataset_root=root,
        )
    return report


def _validate_split(
    report: Report,
    split: str,
    path: Path,
    *,
    categories: list[str] | None,
    manifest: Manifest | None,
    image_root: Path | None,
    check_images: bool,
    dataset_root: Path | None = None,
) -> None:
    stats = report.splits[split] = SplitStats()
    checker = RecordChecker(categories)
    context = {"categories": frozenset(categories)} if categories is not None else None
    file = str(path)
    images_seen: dict[str, int] = {}
    ids_seen: dict[int | str, int] = {}
    lines = 0
    check = checker.check
    add_image = images_seen.setdefault
    records = boxes = 0
    for number, line in _checked_lines(path):
        lines += 1
        checked = check(line)
        if checked is None:
            stats.invalid += 1
            _explain(report, line, file, number, context)
            continue
        record, suspicious = checked
        records += 1
        boxes += len(record.boxes)
        first = add_image(record.image, number)
        if first != number:
            report.add(
                "duplicate_image",
                "error",
                f"image {record.image!r} is already the record of line {first}; expected each image once per split",
                file=file,
                line=number,
                key="image",
            )
        if record.id is not None:
            first_id = ids_seen.setdefault(record.id, number)
            if first_id != number:
                report.add(
                    "duplicate_id",
                    "error",
                    f"id {record.id!r} is already used by line {first_id}",
                    file=file,
                    line=number,
                    key="id",
                )
        if suspicious or record.width is None:
            _quality(report, record, file, number)
        if record.mask is not None and manifest is not None and manifest.mask_kind is None:
            report.add(
                "mask_kind_missing",
                "error",
                "record has a mask but the manifest sets no mask_kind",
                file=file,
                line=number,
                key="mask",
            )
        if check_images and image_root is not None and dataset_root is not None:
            _check_files(report, record, file, number, image_root, dataset_root, manifest)
    stats.records, stats.boxes = records, boxes
    if lines == 0:
        report.add("split_empty", "warning", "split has no record", file=file)
    elif records == 0 and stats.invalid == lines and _nothing_is_json(path):
        raise ParseError("no line of this split file is a JSON object; expected JSON Lines", file=path)


def _checked_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    if not path.is_file():
        raise ParseError("split file is missing or not a file", file=path)
    return iter_lines(path)


def _nothing_is_json(path: Path) -> bool:
    """Whether no line of ``path`` decodes as a JSON object (garbage, binary, truncated)."""
    for _, line in iter_lines(path):
        try:
            if isinstance(msgspec.json.decode(line), dict):
                return False
        except UNDECODABLE:
            continue
    return True


def _explain(report: Report, line: bytes, file: str, number: int, context: dict[str, Any] | None) -> None:
    """Word why ``line`` is invalid, with the Pydantic models (the source of truth)."""
    try:
        data = msgspec.json.decode(line)
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
        for key, message in format_validation_error(exc):
            report.add("record_invalid", "error", message, file=file, line=number, key=key)
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


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def _check_files(
    report: Report,
    record: CheckedRecord,
    file: str,
    number: int,
    image_root: Path,
    dataset_root: Path,
    manifest: Manifest | None,
) -> None:
    """Check that the image (and mask) exist, open, stay inside their roots and have the recorded size."""
    from PIL import Image, UnidentifiedImageError

    image_path = image_root / record.image
    where = {"file": file, "line": number}
    if not image_path.is_file():
        report.add("image_missing", "error", f"image {image_path} does not exist", key="image", **where)
        return
    if not _inside(image_path, image_root):
        report.add(
            "image_outside_root", "error", f"image {image_path} resolves outside image_root", key="image", **where
        )
        return
    try:
        with Image.open(image_path) as image:  # reads the header only
            size = image.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        report.add("image_unreadable", "error", f"image {image_path} cannot be opened: {exc}", key="image", **where)
        return
    if record.width is not None and size != (record.width, record.height):
        report.add(
            "image_size_mismatch",
            "error",
            f"image is {size[0]}x{size[1]} but the record says {record.width}x{record.height}",
            key="width",
            **where,
        )
    if record.mask is not None:
        _check_mask(report, record, dataset_root, size, manifest, where)


def _check_mask(
    report: Report,
    record: CheckedRecord,
    dataset_root: Path,
    image_size: tuple[int, int],
    manifest: Manifest | None,
    where: dict[str, Any],
) -> None:
    from PIL import Image, UnidentifiedImageError

    assert record.mask is not None
    mask_path = dataset_root / record.mask
    if not mask_path.is_file():
        report.add("mask_missing", "error", f"mask {mask_path} does not exist", key="mask", **where)
        return
    if not _inside(mask_path, dataset_root):
        report.add(
            "mask_outside_dataset", "error", f"mask {mask_path} resolves outside the dataset", key="mask", **where
        )
        return
    try:
        with Image.open(mask_path) as mask:
            size, mode = mask.size, mask.mode
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        report.add("mask_unreadable", "error", f"mask {mask_path} cannot be opened: {exc}", key="mask", **where)
        return
    if size != image_size:
        report.add(
            "mask_size_mismatch",
            "error",
            f"mask is {size[0]}x{size[1]} but its image is {image_size[0]}x{image_size[1]}",
            key="mask",
            **where,
        )
    wide = mode in {"I;16", "I;16B", "I;16L", "I"}
    eight_bit = mode in {"L", "P"}
    needs_wide = manifest is not None and manifest.mask_kind == "instance" and len(record.boxes) > 254
    if not (wide or eight_bit):
        report.add("mask_mode", "error", f"mask mode {mode} is not a single-channel 8- or 16-bit", key="mask", **where)
    elif wide and not needs_wide:
        report.add(
            "mask_depth",
            "error",
            f"16-bit mask where 8-bit is expected ({len(record.boxes)} boxes, mask_kind "
            f"{manifest.mask_kind if manifest else None})",
            key="mask",
            **where,
        )
    elif eight_bit and needs_wide:
        report.add("mask_depth", "error", f"8-bit mask cannot index {len(record.boxes)} instances", key="mask", **where)


def default_workers() -> int:
    """Cores available to this process."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
