"""What every dataset operation needs: opening inputs, the class map file, relabeling a record, the output.

An operation reads one or more normalized datasets and writes a new one through :func:`output_dataset`:
a temporary directory beside ``OUT`` (:func:`annonorm.fsutil.atomic_output`), a
:class:`~annonorm.sink.DatasetWriter`, the manifest last, and the whole output validated before it is
renamed into place, so a failed operation leaves nothing behind and inputs are never written to.
``split``, ``filter`` and ``remap`` write through the line pass (:mod:`annonorm.ops.passes`: parallel,
unchanged lines copied as they are, each part checked as it is written, so the validation reads no
split again); ``merge`` streams records as dicts (:meth:`annonorm.io.NormalizedSource.records`).
:func:`relabel_route` is the pass's route of ``filter`` and ``remap``.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
from msgspec import UNSET, UnsetType

from annonorm.errors import InvalidDataError, ParseError, UsageError
from annonorm.fsutil import atomic_output, read_regular_bytes
from annonorm.io import UNDECODABLE, NormalizedSource, open_dataset
from annonorm.ops.passes import Route, decode_record
from annonorm.provenance import file_sha256
from annonorm.schemas.manifest import MANIFEST_FILE, Manifest, Source, SourceFile
from annonorm.sink import DatasetWriter, encode_record

if TYPE_CHECKING:
    from annonorm.validation import Finding

__all__ = [
    "ClassMap",
    "OpResult",
    "category_fields",
    "check_known",
    "open_input",
    "output_dataset",
    "read_class_map",
    "relabel",
    "relabel_route",
    "unique_id",
]

#: Old class name -> new name, or ``None`` to drop the class.
ClassMap = dict[str, str | None]
Progress = Callable[[int], None]


@dataclass
class OpResult:
    """What an operation wrote: the output directory, its manifest, records per split, the validator's warnings."""

    out: Path
    manifest: Manifest
    records: dict[str, int]
    warnings: list[Finding] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------- inputs


def open_input(path: str | os.PathLike[str], progress: Progress | None = None) -> NormalizedSource:
    """Open a normalized dataset to read; a missing one is a :class:`ParseError` naming it."""
    location = Path(path)
    if not location.exists():
        raise ParseError("input dataset does not exist", file=location)
    source = open_dataset(location)
    if progress is not None:
        source = NormalizedSource(root=source.root, manifest=source.manifest, progress=progress)
    return source


def read_class_map(path: str | os.PathLike[str]) -> ClassMap:
    """Read a class map: a JSON object ``{"old": "new" | null}``, or a two-column CSV ``old,new`` (empty new: drop).

    A CSV may have a header row ``old,new`` (or ``from,to``, ``source,target``). Anything else is a
    :class:`ParseError` naming the file and the place.
    """
    file = Path(path)
    if not file.exists():
        raise ParseError("class map file does not exist", file=file)
    raw = read_regular_bytes(file, "class map")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ParseError("the class map is not UTF-8 text", file=file) from None
    if text.lstrip().startswith(("{", "[")) or file.suffix.lower() == ".json":
        return _json_map(text, file)
    return _csv_map(text, file)


def _json_map(text: str, file: Path) -> ClassMap:
    try:
        data = msgspec.json.decode(text.encode())
    except msgspec.DecodeError as exc:
        raise ParseError(f"not valid JSON ({exc})", file=file) from None
    if not isinstance(data, dict):
        raise ParseError(f'expected a JSON object {{"old": "new" | null}}, found {type(data).__name__}', file=file)
    for old, new in data.items():
        if not old or (new is not None and (not isinstance(new, str) or not new)):
            raise ParseError("expected a non-empty class name or null", file=file, location=f"[{old!r}]")
    return dict(data)


_CSV_HEADERS = ({"old", "new"}, {"from", "to"}, {"source", "target"})


def _csv_map(text: str, file: Path) -> ClassMap:
    mapping: ClassMap = {}
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != 2:
            raise ParseError(f"expected two columns old,new; found {len(row)}", file=file, location=f"row {number}")
        old, new = (cell.strip() for cell in row)
        if number == 1 and {old.lower(), new.lower()} in _CSV_HEADERS:
            continue
        if not old:
            raise ParseError("the old class name is empty", file=file, location=f"row {number}")
        if old in mapping:
            raise ParseError(f"class {old!r} is mapped twice", file=file, location=f"row {number}")
        mapping[old] = new or None
    if not mapping:
        raise ParseError("the class map names no class", file=file)
    return mapping


def check_known(names: Iterable[str], known: Iterable[str], what: str, file: str | Path | None) -> None:
    """Refuse class names that no input category has: one :class:`UsageError` listing all of them."""
    have = set(known)
    unknown = [name for name in dict.fromkeys(names) if name not in have]
    if unknown:
        raise UsageError(
            f"{what} names {len(unknown)} classes no input has: {', '.join(unknown)}; "
            f"known: {', '.join(sorted(have)) or '(none)'}",
            file=file,
        )


# ---------------------------------------------------------------------------------------------- records


def relabel(
    record: dict[str, Any], rename: Mapping[str, str | None], keep_box: Callable[[dict[str, Any]], bool] | None = None
) -> int:
    """Rename, merge and drop classes of ``record`` in place; return how many boxes were removed.

    ``rename`` maps old names to new ones (``None``: drop; a name it does not hold stays). Boxes of a
    dropped class, and boxes ``keep_box`` refuses, are removed; counts of names merged into one are
    summed; a removed box lowers its class's count by one, so a count stays >= its boxes (a count
    reaching 0 that way goes, with its label). Key order and the v2 fields of kept boxes are untouched.
    """
    boxes = record.get("boxes") or []
    kept: list[dict[str, Any]] = []
    removed: dict[str, int] = {}
    for box in boxes:
        old = box["name"]
        new = rename.get(old, old)
        if new is None:
            continue
        if keep_box is not None and not keep_box(box):
            removed[new] = removed.get(new, 0) + 1
            continue
        if new != old:
            box = dict(box)
            box["name"] = new  # an existing key: its position is kept
        kept.append(box)
    gone = len(boxes) - len(kept)
    if "counts" in record:
        counts: dict[str, int] = {}
        for old, number in record["counts"].items():
            new = rename.get(old, old)
            if new is not None:
                counts[new] = counts.get(new, 0) + number
        zeroed = set()
        for name, number in removed.items():
            if name in counts:
                counts[name] = max(counts[name] - number, 0)
                if counts[name] == 0:
                    del counts[name]
                    zeroed.add(name)
        record["counts"] = counts
    else:
        zeroed = set(removed)
    labels = record.get("labels") or []
    new_labels = dict.fromkeys(new for old in labels if (new := rename.get(old, old)) is not None)
    for name in zeroed:
        new_labels.pop(name, None)
    record["labels"] = list(new_labels)
    if "boxes" in record:
        record["boxes"] = kept
    return gone


def id_key(identifier: Any) -> tuple[str, Any]:
    """A record id as a set member: ``1`` and ``"1"`` stay different ids."""
    return (type(identifier).__name__, identifier)


def unique_id(record: dict[str, Any], ids: set[Any]) -> None:
    """Keep the record's id when the split has not used it yet, else move it to ``attributes.merged_id``."""
    identifier = record.get("id")
    if identifier is None:
        return
    key = id_key(identifier)
    if key not in ids:
        ids.add(key)
        return
    move_id(record)


def move_id(record: dict[str, Any]) -> None:
    """Move the record's id to ``attributes.merged_id`` (an id the split already uses)."""
    identifier = record.pop("id")
    attributes = record.setdefault("attributes", {})
    attributes.setdefault("merged_id", identifier)


def category_fields(manifest: Manifest) -> dict[str, dict[str, Any]]:
    """Category name -> the keyword arguments of :meth:`DatasetWriter.category` that re-declare it."""
    fields: dict[str, dict[str, Any]] = {}
    for category in manifest.categories:
        fields[category.name] = {
            "source_id": category.source_id,
            "attributes": category.attributes,
            "supercategory": category.supercategory,
            "keypoints": category.keypoints,
            "skeleton": category.skeleton,
        }
    return fields


def input_files(sources: Sequence[NormalizedSource], out: Path) -> list[SourceFile]:
    """The inputs' manifests and split files with their digests (``annonorm validate`` notices a changed input)."""
    files = []
    for source in sources:
        for file in (source.root / MANIFEST_FILE, *(source.split_path(s) for s in source.manifest.splits)):
            files.append(SourceFile(path=os.path.relpath(os.path.abspath(file), out), sha256=file_sha256(file)))
    return files


def image_root_from(source: NormalizedSource, out: Path) -> str:
    """The input's image root as the output's manifest must write it (relative to ``out`` unless absolute)."""
    recorded = source.manifest.image_root
    if os.path.isabs(recorded):
        return recorded
    return Path(os.path.relpath(os.path.abspath(source.root / recorded), out)).as_posix()


def provenance(operation: str, files: list[SourceFile], options: dict[str, Any]) -> Source:
    """The manifest's ``source`` of an operation: its name, the input files, annonorm's version, the options."""
    # The package's version, read without importing the package: its __init__ names the layer-5 api.
    version = sys.modules["annonorm"].__version__
    return Source(format=operation, files=files, converter=f"annonorm {version}", options=options)


class _SizedBox(msgspec.Struct, gc=False):
    name: str
    x1: float
    y1: float
    x2: float
    y2: float


class _Classes(msgspec.Struct, gc=False):
    """What decides whether relabeling changes a record (the rest of the line is skipped by the decoder)."""

    labels: list[str] | str | UnsetType = UNSET
    counts: dict[str, Any] | list[Any] | UnsetType = UNSET
    boxes: list[_SizedBox] = []
    mask: Any = None


_CLASSES_DECODER = msgspec.json.Decoder(_Classes)

#: ``keep(x1, y1, x2, y2)``: whether a box of these corners stays (``filter``'s ``--min-area``, ``--min-side``).
KeepBox = Callable[[float, float, float, float], bool]


def _touches(record: _Classes, changing: frozenset[str]) -> bool:
    """Whether a box, a label or a count of ``record`` names a class in ``changing``."""
    if any(box.name in changing for box in record.boxes):
        return True
    labels = record.labels
    if isinstance(labels, str):
        if labels in changing:
            return True
    elif not isinstance(labels, UnsetType) and not changing.isdisjoint(labels):
        return True
    counts = record.counts
    if isinstance(counts, dict):
        return not changing.isdisjoint(counts)
    if isinstance(counts, UnsetType):
        return False
    return any(not isinstance(item, dict) or not changing.isdisjoint(item) for item in counts)


def _unchanged(line: bytes, changing: frozenset[str], keep: KeepBox | None, drop_empty: bool) -> bool:
    """Whether :func:`relabel` would leave the record of ``line`` as it is (``False`` when unsure)."""
    try:
        record = _CLASSES_DECODER.decode(line)
    except (msgspec.DecodeError, msgspec.ValidationError, *UNDECODABLE):
        return False  # the full path decides (or words the error)
    if record.mask is not None:
        return False  # its mask file comes along
    boxes = record.boxes
    labels = record.labels
    if changing and _touches(record, changing):
        return False
    if keep is not None and not all(keep(box.x1, box.y1, box.x2, box.y2) for box in boxes):
        return False
    return not (drop_empty and not boxes and (isinstance(labels, UnsetType) or not labels))


def relabel_route(
    source: NormalizedSource,
    writer: DatasetWriter,
    rename: Mapping[str, str | None],
    operation: str,
    *,
    keep: KeepBox | None = None,
    drop_empty: bool = False,
) -> Route:
    """The line pass route of ``remap`` and ``filter``: each record to its own split, relabeled.

    A record relabeling leaves as it is (no class it has changes, every box kept, no mask) is
    copied as its line; the others are decoded, relabeled (:func:`relabel`), and encoded again.
    """
    changing = frozenset(old for old, new in rename.items() if new != old)
    instance = source.manifest.mask_kind == "instance"
    keep_box = None if keep is None else (lambda box: keep(box["x1"], box["y1"], box["x2"], box["y2"]))

    def route(split: str, line: bytes, _: int) -> tuple[str, bytes, bool] | None:
        if _unchanged(line, changing, keep, drop_empty):
            return split, line, False
        record = decode_record(line)
        removed = relabel(record, rename, keep_box)
        if drop_empty and not record["labels"] and not record.get("boxes"):
            return None
        if record.get("mask"):
            check_instance_mask(instance, removed, record, operation)
            copy_mask(source, writer, record["mask"])
        return split, encode_record(record), bool(record.get("mask"))

    return route


# ---------------------------------------------------------------------------------------------- masks


def copy_mask(source: NormalizedSource, writer: DatasetWriter, relative: str, target: str | None = None) -> None:
    """Bring a record's mask file into the output (a hard link where possible, else a copy)."""
    origin = source.mask_path(relative)
    destination = writer.mask_file(target or relative)
    if destination.exists():
        return
    try:
        os.link(origin, destination)
    except FileExistsError:
        return  # another process of the pass brought it (copying onto its link would truncate the input)
    except OSError:
        shutil.copyfile(origin, destination)


def refuse_mask_renumbering(manifest: Manifest, kept: Sequence[str], operation: str) -> None:
    """A semantic mask's pixels are category ids + 1: an operation that renumbers ids cannot keep it valid."""
    if manifest.mask_kind == "semantic" and list(kept) != manifest.category_names[: len(kept)]:
        raise UsageError(
            f"{operation} would renumber the categories of a dataset with semantic masks, whose pixel values "
            "are category ids; rewriting mask PNGs is not supported: keep the categories in their order"
        )


def check_instance_mask(instance: bool, removed: int, record: dict[str, Any], operation: str) -> None:
    """An instance mask's pixel k is the record's k-th box: removing a box would point pixels at the wrong one."""
    if instance and removed:
        raise InvalidDataError(
            f"{operation} would remove {removed} boxes of {record['image']}, whose instance mask numbers its "
            "boxes; rewriting mask PNGs is not supported: keep its classes or drop the mask first"
        )


# ---------------------------------------------------------------------------------------------- output


@contextmanager
def output_dataset(out: str | os.PathLike[str], *, force: bool, inputs: Iterable[Any]) -> Iterator[DatasetWriter]:
    """A :class:`DatasetWriter` into a temporary directory beside ``out``, renamed into place when the block ends.

    The block writes the records and calls :func:`finish` (manifest, validation). On any error the
    temporary directory is removed and ``out`` is left as it was.
    """
    target = Path(os.path.abspath(out))
    with atomic_output(target, force=force, inputs=list(inputs)) as temporary:
        writer = DatasetWriter(temporary)
        try:
            yield writer
        finally:
            writer.close()


def finish(writer: DatasetWriter, manifest: Manifest, out: Path, operation: str) -> OpResult:
    """Write the manifest and validate the whole output before it is renamed into place; the result."""
    from annonorm.validation import validate_dataset

    writer.close()
    writer.write_manifest(manifest)
    # The splits a line pass wrote were checked part by part as they were written: not read again here.
    report = validate_dataset(writer.directory, check_sources=False, checked=writer.checked_parts or None)
    if report.errors:
        first = report.errors[0]
        raise InvalidDataError(
            f"{operation} would write an invalid dataset ({len(report.errors)} problems; run annonorm validate "
            f"on the inputs); first: {first.location_text()}: {first.message}"
        )
    warnings = [_moved(finding, writer.directory, out) for finding in report.warnings]
    records = {split: summary.records for split, summary in writer.summary.items()}
    return OpResult(out=out, manifest=manifest, records=records, warnings=warnings)


def _moved(finding: Finding, temporary: Path, out: Path) -> Finding:
    import dataclasses

    if finding.file is None:
        return finding
    return dataclasses.replace(finding, file=finding.file.replace(str(temporary), str(out), 1))
