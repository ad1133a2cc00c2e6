"""DVC integration: conversions as pipeline stages, datasets at a revision, stale sources.

Three independent pieces:

* :func:`add_stage` writes (or updates) a stage in ``dvc.yaml`` whose command is the matching
  ``annonorm convert``, whose deps are the source *annotation* files (never the images) and whose
  out is the normalized dataset, so ``dvc repro`` re-normalizes only when the annotations change.
* :func:`open_revision` materializes a normalized dataset as it was at a git/DVC revision (its
  manifest, split files and masks, read through :class:`dvc.fs.DVCFileSystem`, from the DVC cache
  or a remote) into a local cache directory and returns that directory, so a training run can
  name the exact data version it used.
* :func:`stale_sources` compares the source digests a manifest recorded with the files on disk
  (no DVC needed; the check is :func:`annonorm.provenance.check_sources`, kept here under its
  annonorm 0.1 name).

dvc itself is an optional dependency (``pip install 'annonorm[dvc]'``), imported only inside
:func:`open_revision`. Stage writing needs ruamel.yaml, which dvc depends on and which keeps the
comments and the order of an existing ``dvc.yaml`` when it is rewritten.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import posixpath
import shlex
import shutil
import string
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from annonorm.errors import AnnonormError, MissingDependency, ParseError, UsageError
from annonorm.fsutil import atomic_file, user_cache_root
from annonorm.io import iter_lines, manifest_path, read_manifest
from annonorm.provenance import StaleSource, check_sources
from annonorm.schemas.manifest import MANIFEST_FILE

__all__ = [
    "OPERATIONS",
    "Stage",
    "StaleSource",
    "add_operation_stage",
    "add_stage",
    "default_cache_dir",
    "find_repo_root",
    "open_revision",
    "source_files",
    "stage_name_for",
    "stale_sources",
]

DVC_FILE = "dvc.yaml"
#: DVC refuses stage names with punctuation other than these.
_STAGE_NAME_KEEP = frozenset(string.ascii_letters + string.digits + "_-")
#: Written beside a materialized revision: which repository, revision and commit it came from.
REVISION_FILE = ".annonorm-revision.json"


# ---------------------------------------------------------------------------------------------- source files


def source_files(format: str, source: Path, options: Mapping[str, Any]) -> list[Path]:
    """The annotation files (or directories) that converting ``source`` reads: never the images.

    The converter answers (:meth:`~annonorm.converters.base.Converter.source_files`, whose default
    is the whole ``source``); files named by path-typed options (``--classes``) are added.
    """
    from annonorm import registry

    converter = registry.get(format)
    with registry.blame(format):
        found = [Path(p) for p in converter.source_files(source, options)]
    for option in converter.read_options:
        value = options.get(option.name)
        if option.type is Path and value is not None:
            found += [Path(v) for v in value] if option.multiple else [Path(value)]
    return list(dict.fromkeys(found))


# ---------------------------------------------------------------------------------------------- stages


@dataclass(frozen=True)
class Stage:
    """A stage as written to ``dvc.yaml`` (paths relative to the file's directory)."""

    name: str
    cmd: str
    deps: list[str]
    outs: list[str]
    dvc_file: Path
    created: bool


def find_repo_root(start: Path | None = None) -> Path:
    """The nearest directory at or above ``start`` (default: the working directory) holding ``.dvc/``."""
    here = Path(os.path.abspath(start or Path.cwd()))
    for candidate in (here, *here.parents):
        if (candidate / ".dvc").is_dir():
            return candidate
    raise UsageError(
        "not inside a DVC repository (no .dvc/ here or above); run `git init && dvc init` first", file=here
    )


def stage_name_for(format: str, out: Path) -> str:
    """The default stage name ``annonorm-<format>-<out name>``, with characters DVC refuses replaced by ``-``."""
    raw = f"annonorm-{format}-{Path(os.path.abspath(out)).name}"
    return "".join(c if c in _STAGE_NAME_KEEP else "-" for c in raw)


def _relative_to(path: Path, root: Path, what: str) -> str:
    """``path`` relative to ``root``, posix-style; refuse a path outside the repository."""
    absolute = Path(os.path.abspath(path))
    try:
        return absolute.relative_to(root).as_posix() or "."
    except ValueError:
        raise UsageError(
            f"the {what} is outside the DVC repository {root}; a stage must name paths inside it", file=path
        ) from None


def _option_arguments(declared: Sequence[Any], given: Mapping[str, Any], relative: Callable[[Path], str]) -> list[str]:
    """Command-line arguments of the converter options that were given, in declaration order."""
    arguments: list[str] = []
    for option in declared:
        value = given.get(option.name)
        if value is None or value == ():
            continue
        if option.type is bool:
            arguments.append(option.flag if value else f"--no-{option.name.replace('_', '-')}")
            continue
        for item in value if option.multiple else (value,):
            arguments += [option.flag, relative(Path(item)) if option.type is Path else str(item)]
    return arguments


def _overlaps(first: str, second: str) -> bool:
    a, b = PurePosixPath(first), PurePosixPath(second)
    return a == b or a in b.parents or b in a.parents


def add_stage(
    format: str,
    source: str | Path,
    out: str | Path,
    *,
    options: Mapping[str, Any] | None = None,
    images: str | Path | None = None,
    classes: str | None = None,
    on_error: str | None = None,
    dataset_name: str | None = None,
    stage_name: str | None = None,
    repo: str | Path | None = None,
) -> Stage:
    """Add (or update) the ``dvc.yaml`` stage that runs ``annonorm convert FORMAT SOURCE -o OUT``.

    ``options`` are the converter's read options (as for :func:`annonorm.convert`); they are
    checked and written into the command. The command uses paths relative to the repository
    root (where DVC runs it) and ``--force``, so ``dvc repro`` can replace its previous output.
    Other stages and comments of ``dvc.yaml`` are kept; an existing stage of the same name keeps
    its extra keys (``desc``, ``meta``, ...) and gets the new command, deps and outs.
    """
    from annonorm import registry

    converter = registry.get(format)
    if not converter.can_read():
        raise UsageError(f"the {format!r} converter can only write, so it cannot be a conversion stage")
    given = {k: v for k, v in (options or {}).items() if v is not None and v != ()}
    # --classes is one option for every converter (some declare it themselves): written once, its file a dep.
    declared_classes = given.pop("classes", None)
    classes = classes if classes is not None else declared_classes
    resolved = converter.resolve_options(converter.read_options, given)
    given = {name: resolved[name] for name in given}
    root = find_repo_root(Path(repo) if repo is not None else None)
    source_path = Path(source)
    if not source_path.exists():
        raise ParseError("source does not exist", file=source_path)
    if images is not None and not Path(images).is_dir():
        raise ParseError("image directory does not exist", file=images)

    def relative(path: Path, what: str = "option path") -> str:
        return _relative_to(path, root, what)

    out_rel = relative(Path(out), "output")
    deps = [relative(p, "source") for p in source_files(format, source_path, resolved)]
    classes_file = Path(classes) if classes is not None and Path(classes).is_file() else None
    if classes_file is not None:  # a class list file is a dependency too; a literal A,B,C is not
        deps.append(relative(classes_file, "class list"))
    clash = next((d for d in deps if _overlaps(d, out_rel)), None)
    if clash is not None:
        raise UsageError(f"the output {out_rel} overlaps the stage's dependency {clash}", file=out)
    command = ["annonorm", "convert", format, relative(source_path, "source"), "-o", out_rel]
    if images is not None:
        command += ["--images", relative(Path(images), "image directory")]
    if classes is not None:
        command += ["--classes", relative(classes_file, "class list") if classes_file is not None else classes]
    if on_error is not None:
        command += ["--on-error", on_error]
    if dataset_name is not None:
        command += ["--name", dataset_name]
    command += _option_arguments(converter.read_options, given, relative)
    command += ["--force", "--quiet"]
    name = stage_name or stage_name_for(format, Path(out))
    if not name or not set(name) <= _STAGE_NAME_KEEP:
        raise UsageError(f"stage name {name!r} may hold only letters, digits, '_' and '-' (DVC's rule)")
    dvc_file = root / DVC_FILE
    created = _write_stage(dvc_file, name, shlex.join(command), deps, [out_rel])
    return Stage(name=name, cmd=shlex.join(command), deps=deps, outs=[out_rel], dvc_file=dvc_file, created=created)


#: The dataset operations a stage can run (``annonorm dvc stage merge|split|filter|remap``).
OPERATIONS = ("merge", "split", "filter", "remap")


def add_operation_stage(
    operation: str,
    datasets: Sequence[str | Path],
    out: str | Path,
    *,
    arguments: Sequence[str] = (),
    class_map: str | Path | None = None,
    stage_name: str | None = None,
    repo: str | Path | None = None,
) -> Stage:
    """Add (or update) the stage running ``annonorm OPERATION DATASET... -o OUT [--map MAP] ARGUMENTS``.

    Its deps are the input datasets and the class map file, its out the new dataset. ``arguments``
    are the operation's other options as typed (``--ratios train=0.8,val=0.2 --seed 1``), passed on.
    """
    if operation not in OPERATIONS:
        raise UsageError(f"unknown operation {operation!r}; expected one of {', '.join(OPERATIONS)}")
    if not datasets or (operation != "merge" and len(datasets) != 1):
        raise UsageError(f"{operation} takes {'two or more datasets' if operation == 'merge' else 'one dataset'}")
    root = find_repo_root(Path(repo) if repo is not None else None)
    for dataset in datasets:
        if not Path(dataset).exists():
            raise ParseError("input dataset does not exist", file=dataset)
    if class_map is not None and not Path(class_map).is_file():
        raise ParseError("class map file does not exist", file=class_map)
    out_rel = _relative_to(Path(out), root, "output")
    deps = [_relative_to(Path(d), root, "input dataset") for d in datasets]
    command = ["annonorm", operation, *deps, "-o", out_rel]
    if class_map is not None:
        deps.append(_relative_to(Path(class_map), root, "class map"))
        command += ["--map", deps[-1]]
    clash = next((d for d in deps if _overlaps(d, out_rel)), None)
    if clash is not None:
        raise UsageError(f"the output {out_rel} overlaps the stage's dependency {clash}", file=out)
    command += [*arguments, "--force", "--quiet"]
    name = stage_name or stage_name_for(operation, Path(out))
    if not name or not set(name) <= _STAGE_NAME_KEEP:
        raise UsageError(f"stage name {name!r} may hold only letters, digits, '_' and '-' (DVC's rule)")
    dvc_file = root / DVC_FILE
    created = _write_stage(dvc_file, name, shlex.join(command), deps, [out_rel])
    return Stage(name=name, cmd=shlex.join(command), deps=deps, outs=[out_rel], dvc_file=dvc_file, created=created)


def _write_stage(dvc_file: Path, name: str, cmd: str, deps: list[str], outs: list[str]) -> bool:
    """Put the stage into ``dvc_file`` (round-trip YAML: comments and order kept); True when it is new."""
    try:
        from ruamel.yaml import YAML
        from ruamel.yaml.comments import CommentedMap, CommentedSeq
        from ruamel.yaml.error import YAMLError
    except ImportError:
        raise MissingDependency("ruamel.yaml", "dvc", "writing dvc.yaml") from None

    yaml = YAML(typ="rt")
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096  # one command per line, never folded
    document: Any = None
    if dvc_file.is_file():
        try:
            document = yaml.load(dvc_file.read_text(encoding="utf-8"))
        except (YAMLError, UnicodeDecodeError) as exc:
            raise ParseError(f"not valid YAML ({exc})", file=dvc_file) from None
    if document is None:
        document = CommentedMap()
    if not isinstance(document, dict):
        raise ParseError("expected a mapping with a 'stages' key", file=dvc_file)
    stages = document.setdefault("stages", CommentedMap())
    if not isinstance(stages, dict):
        raise ParseError("expected 'stages' to be a mapping of stage names", file=dvc_file, location="stages")
    entry = stages.get(name)
    created = entry is None
    if created:
        entry = stages[name] = CommentedMap()
    elif not isinstance(entry, dict):
        raise ParseError("expected the stage to be a mapping", file=dvc_file, location=f"stages.{name}")
    entry["cmd"] = cmd
    entry["deps"] = CommentedSeq(deps)
    entry["outs"] = CommentedSeq(outs)
    buffer = io.StringIO()
    yaml.dump(document, buffer)
    with atomic_file(dvc_file) as temporary:  # nothing left behind when the write fails
        temporary.write_text(buffer.getvalue(), encoding="utf-8")
    return created


# ---------------------------------------------------------------------------------------------- revisions


def default_cache_dir() -> Path:
    """Where revisions are materialized: ``revisions/`` under :func:`annonorm.fsutil.user_cache_root`."""
    return user_cache_root() / "revisions"


def _import_dvc() -> tuple[Any, tuple[type[BaseException], ...], type[BaseException]]:
    """DVCFileSystem, the exceptions it raises for an unreadable revision, and its unknown-revision error."""
    try:
        from dvc.exceptions import DvcException
        from dvc.fs import DVCFileSystem
        from dvc.scm import RevError
        from dvc_data.index.index import DataIndexError
    except ImportError:
        raise MissingDependency("dvc", "dvc", "opening a dataset at a revision") from None
    return DVCFileSystem, (DvcException, DataIndexError, OSError), RevError


def _mask_top_dirs(directory: Path, split_files: Sequence[str]) -> list[str]:
    """The first path components of the masks the records reference (``masks`` for ``masks/a.png``)."""
    tops: dict[str, None] = {}
    for relative in split_files:
        for _, line in iter_lines(directory / relative):
            if b'"mask"' not in line:
                continue
            try:
                mask = json.loads(line).get("mask")
            except (ValueError, AttributeError):
                continue  # validate reports it; a preview copy does not need to
            if isinstance(mask, str) and mask:
                tops[mask.split("/", 1)[0]] = None
    return list(tops)


def _safe_target(directory: Path, relative: str) -> Path:
    target = Path(os.path.abspath(directory / relative))
    if target != directory and directory not in target.parents:
        raise UsageError(f"path {relative!r} in the dataset leaves its directory")
    return target


def open_revision(
    path: str | Path,
    *,
    rev: str | None = None,
    repo: str | Path | None = None,
    remote: str | None = None,
    remote_config: Mapping[str, Any] | None = None,
    masks: bool = True,
    image_root: str | Path | None = None,
    cache_dir: str | Path | None = None,
) -> Path:
    """Materialize the normalized dataset at ``path`` as of git/DVC revision ``rev``; return its local directory.

    ``path`` is the dataset directory (or its ``annonorm.json``) relative to the repository root.
    ``repo`` is a local repository or a git URL (default: the repository of the working
    directory); ``rev`` any git revision (tag, branch, commit; default: the working tree).
    ``remote`` / ``remote_config`` name the DVC remote to fetch from when the data is not in the
    local DVC cache (a fresh clone). The manifest, the split files and (with ``masks``) the mask
    files are copied; images are not, since they are usually not part of a dataset version.

    The copied manifest's ``image_root`` is rewritten to an absolute path: ``image_root`` if
    given, else the dataset's image root in the working tree of a local ``repo``. For a remote
    URL it stays as recorded, so pass ``image_root`` (or the loader's own) there.

    A revision is materialized once per commit under ``cache_dir`` (default
    :func:`default_cache_dir`); the working tree (``rev=None``) is copied afresh each time.
    ``annonorm.open(path, split, rev=..., repo=...)`` (:func:`annonorm.api.open_at_revision`) calls
    this and returns a :class:`~annonorm.dataset.NormalizedDataset` over the directory.
    """
    dvc_filesystem, dvc_errors, rev_error = _import_dvc()
    repo_text = os.fspath(repo) if repo is not None else None
    local_root = Path(os.path.abspath(repo_text or ".")) if repo_text is None or Path(repo_text).is_dir() else None
    inner = Path(path)
    if inner.is_absolute() and local_root is not None:
        inner = Path(_relative_to(inner, local_root, "dataset"))
    dataset = inner.as_posix().strip("/") or "."
    if dataset.endswith(MANIFEST_FILE):
        dataset = posixpath.dirname(dataset) or "."
    label = f"{repo_text or '.'}@{rev or 'workspace'}:{dataset}"
    try:
        filesystem = dvc_filesystem(
            repo=repo_text, rev=rev, remote=remote, remote_config=dict(remote_config) if remote_config else None
        )
        scm = filesystem.repo.scm
        commit = scm.resolve_rev(rev) if rev is not None else None  # not get_rev(): that is HEAD
        if local_root is not None:
            local_root = Path(scm.root_dir)
    except rev_error:
        raise UsageError(f"unknown revision {rev!r}", file=repo_text or ".") from None
    except dvc_errors as exc:
        raise ParseError(f"cannot open the repository: {exc}", file=repo_text or ".") from None

    rebase_to = Path(os.path.abspath(image_root)) if image_root is not None else None
    key_parts = [str(local_root or repo_text), commit or uuid.uuid4().hex, dataset, str(masks), str(rebase_to)]
    key = hashlib.sha256("\0".join(key_parts).encode()).hexdigest()[:20]
    cache = Path(os.path.abspath(cache_dir)) if cache_dir is not None else default_cache_dir()
    final = cache / key
    if commit is not None and (final / MANIFEST_FILE).is_file():
        return final
    cache.mkdir(parents=True, exist_ok=True)
    temporary = cache / f".{key}.{os.getpid()}-{uuid.uuid4().hex[:8]}"
    temporary.mkdir()
    try:
        _materialize(filesystem, dataset, temporary, label, masks, dvc_errors)
        _rebase_image_root(temporary, rebase_to, local_root, dataset)
        info = {"repo": str(local_root or repo_text), "rev": rev, "commit": commit, "path": dataset}
        (temporary / REVISION_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        if final.exists() and commit is None:
            shutil.rmtree(final)  # the working tree may have changed since the last copy
        if not final.exists():
            temporary.rename(final)  # else another process materialized the same commit meanwhile
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return final


def _materialize(
    filesystem: Any, dataset: str, directory: Path, label: str, masks: bool, dvc_errors: tuple[type[BaseException], ...]
) -> None:
    """Copy the manifest, the split files and the mask directories of ``dataset`` into ``directory``."""

    def fetch(relative: str, recursive: bool = False) -> None:
        source = posixpath.normpath(posixpath.join(dataset, relative))
        target = _safe_target(directory, relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            if recursive and filesystem.isdir(source):
                filesystem.get(source, str(target), recursive=True)
            else:
                filesystem.get_file(source, str(target))
        except FileNotFoundError:
            raise ParseError(f"{relative} is missing at this revision", file=label) from None
        except dvc_errors as exc:
            raise ParseError(f"cannot fetch {relative}: {exc}", file=label) from None

    try:
        fetch(MANIFEST_FILE)
    except ParseError:
        raise ParseError(f"no {MANIFEST_FILE} at this revision; expected a normalized dataset", file=label) from None
    try:
        manifest = read_manifest(directory)
    except AnnonormError as exc:
        raise type(exc)(exc.message, file=f"{label}/{MANIFEST_FILE}", location=exc.location) from None
    split_files = list(manifest.splits.values())
    for relative in split_files:
        fetch(relative)
    if masks and manifest.mask_kind is not None:
        for top in _mask_top_dirs(directory, split_files):
            fetch(top, recursive=True)


def _rebase_image_root(directory: Path, rebase_to: Path | None, local_root: Path | None, dataset: str) -> None:
    """Point the copied manifest's ``image_root`` at real images (the copy lives elsewhere)."""
    file = directory / MANIFEST_FILE
    data = json.loads(file.read_text(encoding="utf-8"))
    recorded = str(data.get("image_root", "."))
    if rebase_to is not None:
        target = rebase_to
    elif Path(recorded).is_absolute() or local_root is None:
        return
    else:
        target = Path(os.path.normpath(local_root / dataset / recorded))
    data["image_root"] = target.as_posix()
    file.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------------------------- staleness


def stale_sources(dataset: str | Path) -> list[StaleSource]:
    """The manifest's ``source.files`` whose current digest differs from the recorded one, or that are missing.

    Relative recorded paths are looked up against the dataset directory, then the working directory;
    an unchanged file is not read again (:mod:`annonorm.provenance`). An empty list means every
    recorded source is unchanged (or none was recorded).
    """
    file = manifest_path(Path(dataset))
    return check_sources(read_manifest(file), file.parent)
