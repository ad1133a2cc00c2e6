"""``merge``: several normalized datasets into one.

Categories are unified by name after the class map, in first-seen order (input order, then each
input's category order), and renumbered; each input's own ``source_id`` s are kept in the manifest's
provenance (``source.options.inputs[k].source_ids``), beside its path, name and fingerprint. Splits
are merged by name. The output's ``image_root`` is the common parent of the inputs' image roots and
each record's image path is made relative to it. The same image (same resolved path) twice in one
split is an error (``on_duplicate="error"``), or only the first is kept (``"first"``), or both are
(``"rename"``: the later copy's path gets a ``./`` prefix per earlier one, a distinct string naming
the same file). A record id already used in the split is moved to ``attributes.merged_id``
(:func:`~annonorm.ops.common.unique_id`).
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from annonorm.errors import InvalidDataError, UsageError
from annonorm.io import NormalizedSource
from annonorm.ops.common import (
    ClassMap,
    OpResult,
    Progress,
    check_known,
    finish,
    input_files,
    open_input,
    output_dataset,
    provenance,
    relabel,
    unique_id,
)
from annonorm.ops.remap import declare_categories, load_map
from annonorm.schemas.manifest import Manifest

__all__ = ["ON_DUPLICATE", "merge"]

#: What ``merge`` does with the same image twice in a split.
ON_DUPLICATE = ("error", "first", "rename")


def _fingerprint(root: Path) -> str:
    from annonorm.io import fingerprint  # written beside this module by the fingerprint feature

    return str(fingerprint(root))


def _image_root(source: NormalizedSource) -> str:
    return os.path.normpath(os.path.abspath(source.root / source.manifest.image_root))


def merge(
    datasets: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    class_map: str | os.PathLike[str] | Mapping[str, str | None] | None = None,
    on_duplicate: str = "error",
    name: str | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> OpResult:
    """Merge ``datasets`` (two or more normalized datasets) into one at ``out``; see the module docstring."""
    if len(datasets) < 2:
        raise UsageError(f"merge needs two or more datasets, got {len(datasets)}")
    if on_duplicate not in ON_DUPLICATE:
        raise UsageError(f"on_duplicate must be one of {', '.join(ON_DUPLICATE)}, not {on_duplicate!r}")
    sources = [open_input(path, progress) for path in datasets]
    roots = [source.root.resolve() for source in sources]
    if len(set(roots)) != len(roots):
        raise UsageError("the same dataset is named twice", file=next(r for r in roots if roots.count(r) > 1))
    if any(source.manifest.mask_kind is not None for source in sources):
        raise UsageError("merging datasets with mask files is not supported yet; drop the masks or merge without")
    rename: ClassMap = {}
    map_file = None
    if class_map is not None:
        rename, map_file = load_map(class_map)
        check_known(rename, [n for s in sources for n in s.manifest.category_names], "the class map", map_file)
    image_roots = [_image_root(source) for source in sources]
    common = os.path.commonpath(image_roots)
    prefixes = [Path(os.path.relpath(root, common)).as_posix() for root in image_roots]
    out_path = Path(os.path.abspath(out))
    split_names = list(dict.fromkeys(split for source in sources for split in source.manifest.splits))
    with output_dataset(out_path, force=force, inputs=[*roots, *([map_file] if map_file else [])]) as writer:
        for source in sources:
            declare_categories(writer, source.manifest, rename, map_file or str(source.root))
        for split in split_names:
            writer.declare_split(split)
            seen: dict[str, int] = {}  # image path -> index of the input it came from
            ids: set[Any] = set()
            for index, source in enumerate(sources):
                if split not in source.manifest.splits:
                    continue
                for record in source.records(split):
                    relabel(record, rename)
                    image = _joined(prefixes[index], record["image"])
                    first = seen.get(image)
                    if first is not None:
                        if on_duplicate == "error":
                            raise InvalidDataError(
                                f"duplicate image {image} in {sources[first].root} and {source.root} "
                                f"(split {split}); pass --on-duplicate first or rename"
                            )
                        if on_duplicate == "first":
                            continue
                        copy = "./" + image
                        while copy in seen:
                            copy = "./" + copy
                        seen[copy] = index
                    else:
                        seen[image] = index
                        copy = image
                    record["image"] = copy
                    unique_id(record, ids)
                    writer.add(split, record)
        options: dict[str, Any] = {
            "inputs": [_described(source, out_path) for source in sources],
            "on_duplicate": on_duplicate,
        }
        if class_map is not None:
            options["map"] = map_file or dict(rename)
        manifest = Manifest(
            name=name or "+".join(source.manifest.name for source in sources),
            categories=[{k: v for k, v in c.items() if k != "source_id"} for c in writer.categories],
            splits={split: f"{split}.jsonl" for split in split_names},
            image_root=Path(os.path.relpath(common, out_path)).as_posix(),
            source=provenance("merge", input_files(sources, out_path), options),
        )
        return finish(writer, manifest, out_path, "merge")


def _joined(prefix: str, image: str) -> str:
    return image if prefix == "." else posixpath.join(prefix, image)


def _described(source: NormalizedSource, out: Path) -> dict[str, Any]:
    """One input in the merged manifest: where it is, its name and fingerprint, its categories' source ids."""
    return {
        "path": Path(os.path.relpath(source.root.resolve(), out)).as_posix(),
        "name": source.manifest.name,
        "fingerprint": _fingerprint(source.root),
        "source_ids": {c.name: c.source_id for c in source.manifest.categories if c.source_id is not None},
    }
