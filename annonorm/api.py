"""The library entry points behind the command line: convert, export, validate."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import msgspec

from annonorm import __version__, registry
from annonorm.converters.base import Converter, ReadContext, ReadResult
from annonorm.engine import Execution, Executor, LocalExecutor
from annonorm.errors import AnnonormError, InvalidDataError, ParseError, UsageError
from annonorm.io import DatasetWriter, SplitSummary, atomic_output, iter_lines, open_dataset
from annonorm.records import label_list
from annonorm.schemas.manifest import Manifest, Source, SourceFile
from annonorm.sources.classlists import read_class_list

if TYPE_CHECKING:
    from annonorm.dataset import NormalizedDataset
    from annonorm.validation import Finding

__all__ = ["ConvertResult", "convert", "export", "open_at_revision"]

Progress = Callable[[int], None]

#: File in the output directory listing the images that ``on_error="skip"`` left out.
SKIPPED_REPORT = "skipped.jsonl"

#: Where a conversion's units run (``--engine``): local processes, or tasks on a Ray cluster.
ENGINES = ("local", "ray")


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


def _relative_paths(paths: Iterable[Path], out: Path) -> list[str]:
    """:func:`_relative_to` of each of ``paths``, each folder resolved once (a VOC source lists 20,000 files
    of one folder, and ``relpath`` per file cost most of a second)."""
    folders: dict[str, str] = {}
    relative = []
    for path in paths:
        folder, name = os.path.split(os.fspath(path))
        if name in ("", ".", ".."):  # abspath would fold these into the folder
            relative.append(_relative_to(path, out))
            continue
        shown = folders.get(folder)
        if shown is None:
            shown = folders[folder] = _relative_to(Path(folder or "."), out)
        relative.append(name if shown == "." else f"{shown}/{name}")
    return relative


def convert(
    format: str,
    source: str | Path,
    out: str | Path,
    *,
    images: str | Path | None = None,
    classes: str | Path | Sequence[str] | None = None,
    force: bool = False,
    on_error: str = "fail",
    name: str | None = None,
    progress: Progress | None = None,
    execution: Execution | None = None,
    engine: str = "local",
    **options: Any,
) -> ConvertResult:
    """Convert ``source`` (in ``format``) into a normalized dataset at ``out``.

    The output is written to a temporary directory, validated, and renamed into place: on any
    error nothing is left at ``out`` (or the previous dataset stays untouched). ``format="auto"``
    picks the first converter whose sniff recognizes ``source``.

    ``classes`` fixes the categories and their order (and so the integer labels): a class list
    file (one name per line, or a ``data.yaml``), ``"A,B,C"``, or a sequence of names. Every class
    the source uses must be listed; listed classes without instances are kept.

    ``execution`` says how the run does its work (:class:`annonorm.engine.Execution`: processes,
    thresholds, GC policy); a ``workers`` option sets its ``workers``. ``engine`` runs the engine's units
    in local processes (``"local"``) or as tasks on a Ray cluster (``"ray"``, :mod:`annonorm.ray`: the
    cluster at ``RAY_ADDRESS``, else a local one). Neither changes the output.
    """
    if engine not in ENGINES:
        raise UsageError(f"unknown engine {engine!r}; expected one of {', '.join(ENGINES)}")
    if format == "auto":
        format = registry.detect(Path(source))
    converter_class = registry.get(format)
    format = converter_class.name or format
    if not converter_class.can_read():
        raise UsageError(f"the {format!r} converter can only write, not read")
    class_list = read_class_list(classes).names if classes is not None else None
    if class_list is not None and any(o.name == "classes" for o in converter_class.read_options):
        # A converter with a class-list option of its own (YOLO's ids index it, CSV maps codes) gets it too.
        options.setdefault("classes", str(classes) if isinstance(classes, (str, Path)) else ",".join(class_list))
    resolved = converter_class.resolve_options(converter_class.read_options, options)
    source_path = Path(source)
    if not source_path.exists():
        raise ParseError("source does not exist", file=source_path)
    images_path = Path(images) if images is not None else None
    if images_path is not None and not images_path.is_dir():
        raise ParseError("image directory does not exist", file=images_path)
    out_path = Path(os.path.abspath(out))
    workers = resolved.get("workers")
    execution = execution or Execution()
    if isinstance(workers, int):
        execution = dataclasses.replace(execution, workers=workers)
    path_options = (resolved[o.name] for o in converter_class.read_options if o.type is Path)
    class_file = classes if isinstance(classes, (str, Path)) else None
    inputs = (source_path, images_path, class_file, *path_options)
    # Refuses an existing output, or one overlapping an input, before any work.
    with atomic_output(out_path, force=force, inputs=inputs) as temporary:
        # The validator checks the parts a reader's processes write (the sink's part-check hook).
        from annonorm.validation import check_part

        writer = DatasetWriter(
            temporary, on_error=on_error, progress=progress, class_list=class_list, part_check=check_part
        )
        try:
            with execution.running(), registry.blame(format), _executor(engine, execution) as executor:
                info = _read(converter_class(), source_path, writer, images_path, resolved, executor)
        finally:
            writer.close()
        if writer.skipped and not any(summary.records for summary in writer.summary.values()):
            raise InvalidDataError(
                f"every image is broken ({len(writer.skipped)} skipped), nothing to write; first: {writer.skipped[0]}",
                file=source_path,
            )
        if not any(summary.records for summary in writer.summary.values()):
            raise ParseError(f"no {format} annotations here: the source holds no image to convert", file=source_path)
        if writer.unlisted:
            _refuse_unlisted_classes(writer, temporary)
        image_root = Path(info.image_root)
        if image_root.is_absolute() and image_root.is_relative_to(temporary):
            # Images the reader wrote into the output (--extract-images) live where the output is renamed to.
            image_root = out_path / image_root.relative_to(temporary)
        hashes = writer.source_hashes()
        paths = [path for path, _ in hashes]
        manifest = Manifest(
            name=name or info.name,
            categories=writer.categories,
            splits={split: f"{split}.jsonl" for split in writer.summary},
            image_root=_relative_to(image_root, out_path),
            mask_kind=writer.mask_kind,
            source=Source(
                format=format,
                files=[
                    SourceFile(path=shown, sha256=digest)
                    for shown, (_, digest) in zip(_relative_paths(paths, out_path), hashes, strict=True)
                ],
                converter=f"annonorm {__version__}",
                options=_jsonable({o.name: resolved[o.name] for o in converter_class.read_options if o.affects_output}),
            ),
            attributes=info.attributes,
        )
        writer.write_manifest(manifest)
        if writer.skipped:
            _write_skipped_report(temporary / SKIPPED_REPORT, writer.skipped)
        warnings = _refuse_invalid_output(temporary, format, writer.checked_parts, execution)
        warnings += _missing_images(temporary, manifest, writer.summary, out_path)
    return ConvertResult(
        out=out_path,
        manifest=manifest,
        splits=writer.summary,
        skipped=writer.skipped,
        warnings=[_moved(finding, temporary, out_path) for finding in warnings],
    )


def _executor(engine: str, execution: Execution) -> contextlib.AbstractContextManager[Executor]:
    """The executor of ``engine`` (``ray`` connects to its cluster here, before any work)."""
    if engine == "ray":
        from annonorm.ray import RayExecutor

        return RayExecutor(execution)
    return LocalExecutor(execution)


#: The executor helper for the other verbs that run on the engine (``annonorm validate --engine``).
open_executor = _executor


def _read(
    converter: Converter,
    source: Path,
    writer: DatasetWriter,
    images: Path | None,
    options: dict[str, Any],
    executor: Executor,
) -> ReadResult:
    """Call the reader: with a :class:`ReadContext`, or as annonorm 0.1 did for a plugin written for it."""
    if converter.reads_v1():
        # read(source, writer, *, images, options): the version 1 contract.
        return converter.read(source, writer, images=images, options=options)  # type: ignore[call-arg, arg-type]
    context = ReadContext(options=MappingProxyType(options), sink=writer, images=images, executor=executor)
    return converter.read(source, context)


class _UsedNames(msgspec.Struct):
    """The parts of a record that name classes (decoded alone to find which classes a split uses)."""

    labels: str | list[str] | None = None
    counts: dict[str, int] | list[dict[str, int]] | None = None
    boxes: list[dict[str, Any]] | None = None


def _refuse_unlisted_classes(writer: DatasetWriter, directory: Path) -> None:
    """Fail on classes the source uses that ``--classes`` does not list; drop the unused ones it declared.

    Unlisted classes are registered after the listed ones, so removing them shifts no listed id.
    """
    decoder = msgspec.json.Decoder(_UsedNames)
    unlisted = set(writer.unlisted)
    used: set[str] = set()
    for split in writer.summary:
        for _, line in iter_lines(directory / f"{split}.jsonl"):
            record = decoder.decode(line)
            names = list(label_list(record.labels) or ())
            counts = record.counts or {}
            names += [n for item in counts for n in item] if isinstance(counts, list) else list(counts)
            names += [box.get("name", "") for box in record.boxes or ()]
            used.update(unlisted.intersection(names))
    if used:
        missing = [name for name in writer.unlisted if name in used]
        raise InvalidDataError(
            f"the source uses {len(missing)} classes that --classes does not list: {', '.join(missing)}"
        )
    writer.categories[:] = [c for c in writer.categories if c["name"] not in unlisted]


#: The post-conversion image check looks at this many records at the start of each split, and as many at random.
IMAGE_SAMPLE = 20


def _sample_image_paths(split_file: Path, records: int) -> list[str]:
    """The image paths of the first :data:`IMAGE_SAMPLE` records and of about as many at random byte offsets."""
    decoder = msgspec.json.Decoder(_ImageOnly)
    lines: list[bytes] = []
    with split_file.open("rb") as stream:
        for _ in range(min(IMAGE_SAMPLE, records)):
            lines.append(stream.readline())
        if records > IMAGE_SAMPLE:
            size = split_file.stat().st_size
            chooser = random.Random(records)  # seeded: the same dataset gets the same sample
            for offset in sorted(chooser.randrange(size) for _ in range(IMAGE_SAMPLE)):
                stream.seek(offset)
                stream.readline()  # the rest of the line the offset fell into
                line = stream.readline()
                if line:
                    lines.append(line)
    return list(dict.fromkeys(decoder.decode(line).image for line in lines if line.strip()))


class _ImageOnly(msgspec.Struct):
    image: str


def _missing_images(
    directory: Path, manifest: Manifest, summary: Mapping[str, SplitSummary], out: Path
) -> list[Finding]:
    """A warning when a sample of the records' images does not resolve under the image root (headers only)."""
    from annonorm.images import read_image_size
    from annonorm.validation import Finding

    root = Path(os.path.normpath(out / manifest.image_root))
    findings = []
    for split, file_name in manifest.splits.items():
        records = summary[split].records if split in summary else 0
        sample = _sample_image_paths(directory / file_name, records) if records else []
        missing = [image for image in sample if read_image_size(root / image) is None]
        if not missing:
            continue
        if len(missing) == len(sample):
            message = (
                f"none of {len(sample)} sampled images of split {split} is under the image root {root} "
                f"(first: {missing[0]}); name the image folder with --images DIR"
            )
        else:
            message = (
                f"{len(missing)} of {len(sample)} sampled images of split {split} are missing or unreadable "
                f"under the image root {root} (first: {missing[0]})"
            )
        findings.append(Finding("images_not_found", "warning", message, file=str(out / file_name)))
    return findings


def _moved(finding: Finding, temporary: Path, out: Path) -> Finding:
    """The finding with its file named where the output now is, not in the temporary directory."""
    if finding.file is None:
        return finding
    return dataclasses.replace(finding, file=finding.file.replace(str(temporary), str(out), 1))


def _write_skipped_report(path: Path, skipped: list[AnnonormError]) -> None:
    """One JSON line per image that ``--on-error skip`` left out, beside the dataset it belongs to."""
    with path.open("w", encoding="utf-8") as stream:
        for error in skipped:
            stream.write(json.dumps(error.to_dict()) + "\n")


def _jsonable(options: dict[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else str(v) if isinstance(v, Path) else v) for k, v in options.items()}


def _refuse_invalid_output(
    directory: Path, format: str, checked: Mapping[str, Sequence[Any]], execution: Execution
) -> list[Finding]:
    """A converter must never leave an invalid dataset behind: validate before the rename.

    Returns the warnings, which the caller reports (paths named inside the temporary directory are
    rewritten to the final output by the caller).
    """
    from annonorm.validation import validate_dataset

    report = validate_dataset(directory, check_sources=False, checked=checked, execution=execution)
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
    progress: Progress | None = None,
    **options: Any,
) -> Path:
    """Write the normalized dataset at ``dataset`` in ``format`` to ``out`` (atomically).

    ``progress`` is called with the number of records written so far; when it has a ``set_total``
    method, that is called first with the number of records to export.
    """
    from annonorm.validation import validate_dataset

    converter_class = registry.get(format)
    format = converter_class.name or format
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
    if progress is not None:
        source = dataclasses.replace(source, progress=progress)
        source.set_progress_total()
    out_path = Path(os.path.abspath(out))
    path_options = (resolved[o.name] for o in converter_class.write_options if o.type is Path)
    inputs = (source.root, *path_options)
    with atomic_output(out_path, force=force, inputs=inputs, export=format) as temporary, registry.blame(format):
        converter_class().write(source, temporary, options=resolved)
    return out_path


def open_at_revision(
    path: str | os.PathLike[str],
    split: str | None = None,
    *,
    rev: str | None = None,
    repo: str | os.PathLike[str] | None = None,
    remote: str | None = None,
    **options: Any,
) -> NormalizedDataset:
    """Open a split of a normalized dataset, as of a git/DVC revision when ``rev`` or ``repo`` is given.

    This is ``annonorm.open`` / ``annonorm.load``. Without ``rev`` and ``repo`` it opens ``path`` as it
    is. With them (``annonorm[dvc]``), ``path`` is the dataset's place in the repository ``repo``
    (default: the working directory's) and ``rev`` a git revision (default: the working tree): its
    manifest, split files and (with ``masks=True``) masks are materialized in the user's cache by
    :func:`annonorm.dvc.open_revision`, fetched from ``remote`` when the local DVC cache lacks them,
    and the dataset opened over that copy. ``split`` and ``options`` are
    :class:`~annonorm.dataset.NormalizedDataset`'s.
    """
    from annonorm.dataset import NormalizedDataset

    if rev is not None or repo is not None:
        from annonorm.dvc import open_revision

        masks = bool(options.get("masks", False))
        local = open_revision(
            os.fspath(path), rev=rev, repo=None if repo is None else os.fspath(repo), remote=remote, masks=masks
        )
        return NormalizedDataset(local, split, **options)
    return NormalizedDataset(path, split, **options)  # remote= alone: nothing to fetch, as in v0.1
