"""The library entry points behind the command line: convert, export, validate."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from annonorm import __version__, registry
from annonorm.errors import AnnonormError, InvalidDataError, ParseError, UsageError
from annonorm.io import DatasetWriter, SplitSummary, atomic_output, open_dataset
from annonorm.schemas.manifest import Manifest, Source, SourceFile

if TYPE_CHECKING:
    from annonorm.validation import Finding

__all__ = ["ConvertResult", "convert", "export"]

Progress = Callable[[int], None]

#: File in the output directory listing the images that ``on_error="skip"`` left out.
SKIPPED_REPORT = "skipped.jsonl"


@dataclass
class ConvertResult:
    """What a conversion wrote."""

    out: Path
    manifest: Manifest
    splits: dict[str, SplitSummary]
    skipped: list[AnnonormError] = field(default_factory=list)
    #: Data-quality warnings the validator found in the output (boxes leaving the image, unknown sizes...).
    warnings: list[Finding] = field(default_factory=list)


def _relative_to(path: Path, out: Path) -> str:
    """``path`` relative to the output directory, so the dataset can move together with its sources."""
    path = Path(os.path.abspath(path))
    try:
        return Path(os.path.relpath(path, out)).as_posix()
    except ValueError:  # another drive on Windows
        return path.as_posix()


def convert(
    format: str,
    source: str | Path,
    out: str | Path,
    *,
    images: str | Path | None = None,
    force: bool = False,
    on_error: str = "fail",
    name: str | None = None,
    progress: Progress | None = None,
    **options: Any,
) -> ConvertResult:
    """Convert ``source`` (in ``format``) into a normalized dataset at ``out``.

    The output is written to a temporary directory, validated, and renamed into place: on any
    error nothing is left at ``out`` (or the previous dataset stays untouched). ``format="auto"``
    picks the first converter whose sniff recognizes ``source``.
    """
    if format == "auto":
        format = registry.detect(Path(source))
    converter_class = registry.get(format)
    if not converter_class.can_read():
        raise UsageError(f"the {format!r} converter can only write, not read")
    resolved = converter_class.resolve_options(converter_class.read_options, options)
    source_path = Path(source)
    if not source_path.exists():
        raise ParseError("source does not exist", file=source_path)
    images_path = Path(images) if images is not None else None
    if images_path is not None and not images_path.is_dir():
        raise ParseError("image directory does not exist", file=images_path)
    out_path = Path(os.path.abspath(out))
    with atomic_output(out_path, force=force) as temporary:  # refuses an existing output before any work
        writer = DatasetWriter(temporary, on_error=on_error, progress=progress)
        try:
            with _collector_paused():
                info = converter_class().read(source_path, writer, images=images_path, options=resolved)
        finally:
            writer.close()
        if not writer.summary and writer.skipped:
            raise InvalidDataError(
                f"every image is broken ({len(writer.skipped)} skipped), nothing to write; first: {writer.skipped[0]}",
                file=source_path,
            )
        if not writer.summary:
            raise InvalidDataError("the source holds no image to convert", file=source_path)
        manifest = Manifest(
            name=name or info.name,
            categories=writer.categories,
            splits={split: f"{split}.jsonl" for split in writer.summary},
            image_root=_relative_to(info.image_root, out_path),
            mask_kind=writer.mask_kind,
            source=Source(
                format=format,
                files=[
                    SourceFile(path=_relative_to(p, out_path), sha256=digest) for p, digest in writer.source_hashes()
                ],
                converter=f"annonorm {__version__}",
                options=_jsonable({o.name: resolved[o.name] for o in converter_class.read_options if o.affects_output}),
            ),
            attributes=info.attributes,
        )
        writer.write_manifest(manifest)
        if writer.skipped:
            _write_skipped_report(temporary / SKIPPED_REPORT, writer.skipped)
        warnings = _refuse_invalid_output(temporary, format, writer.checked_parts)
    return ConvertResult(
        out=out_path,
        manifest=manifest,
        splits=writer.summary,
        skipped=writer.skipped,
        warnings=[_moved(finding, temporary, out_path) for finding in warnings],
    )


def _moved(finding: Finding, temporary: Path, out: Path) -> Finding:
    """The finding with its file named where the output now is, not in the temporary directory."""
    if finding.file is None:
        return finding
    return dataclasses.replace(finding, file=finding.file.replace(str(temporary), str(out), 1))


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a reader runs.

    Readers build millions of short-lived dicts and lists beside a large decoded source that lives
    for the whole run; each full collection walks all of it and, at COCO train2017 scale, costs
    more than the parsing. Decoded annotations hold no reference cycles, so nothing is lost: the
    collector runs again (and catches up) when the reader returns.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _write_skipped_report(path: Path, skipped: list[AnnonormError]) -> None:
    """One JSON line per image that ``--on-error skip`` left out, beside the dataset it belongs to."""
    with path.open("w", encoding="utf-8") as stream:
        for error in skipped:
            stream.write(json.dumps(error.to_dict()) + "\n")


def _jsonable(options: dict[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else str(v) if isinstance(v, Path) else v) for k, v in options.items()}


def _refuse_invalid_output(directory: Path, format: str, checked: Mapping[str, Sequence[Any]]) -> list[Finding]:
    """A converter must never leave an invalid dataset behind: validate before the rename.

    Returns the warnings, which the caller reports (paths named inside the temporary directory are
    rewritten to the final output by the caller).
    """
    from annonorm.validation import validate_dataset

    report = validate_dataset(directory, check_sources=False, checked=checked)
    if report.errors:
        first = report.errors[0]
        raise InvalidDataError(
            f"the {format} source converts into invalid records ({len(report.errors)} problems); "
            f"first: {first.location_text()}: {first.message}",
        )
    return report.warnings


def export(
    format: str,
    dataset: str | Path,
    out: str | Path,
    *,
    force: bool = False,
    **options: Any,
) -> Path:
    """Write the normalized dataset at ``dataset`` in ``format`` to ``out`` (atomically)."""
    from annonorm.validation import validate_dataset

    converter_class = registry.get(format)
    if not converter_class.can_write():
        raise UsageError(f"the {format!r} converter can only read, not write")
    resolved = converter_class.resolve_options(converter_class.write_options, options)
    source = open_dataset(Path(dataset))
    report = validate_dataset(source.root)
    if report.errors:
        first = report.errors[0]
        raise InvalidDataError(
            f"dataset is invalid ({len(report.errors)} problems; run annonorm validate); "
            f"first: {first.location_text()}: {first.message}"
        )
    out_path = Path(os.path.abspath(out))
    with atomic_output(out_path, force=force) as temporary:
        converter_class().write(source, temporary, options=resolved)
    return out_path
