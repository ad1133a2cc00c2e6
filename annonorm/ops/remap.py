"""``remap``: rename classes, merge several into one (boxes kept, counts summed), drop classes (``null``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from annonorm.engine import Execution
from annonorm.errors import InvalidDataError
from annonorm.ops.common import (
    ClassMap,
    OpResult,
    Progress,
    category_fields,
    check_known,
    finish,
    image_root_from,
    input_files,
    open_input,
    output_dataset,
    provenance,
    read_class_map,
    refuse_mask_renumbering,
    relabel_route,
)
from annonorm.ops.passes import cut, executor_for, run_pass
from annonorm.schemas.manifest import Manifest
from annonorm.sink import DatasetWriter

__all__ = ["declare_categories", "load_map", "remap"]


def load_map(class_map: str | os.PathLike[str] | Mapping[str, str | None]) -> tuple[ClassMap, str | None]:
    """The class map and the file it came from (``None`` for a mapping given in Python)."""
    if isinstance(class_map, Mapping):
        return dict(class_map), None
    return read_class_map(class_map), os.fspath(class_map)


def declare_categories(
    writer: DatasetWriter, manifest: Manifest, rename: Mapping[str, str | None], where: str
) -> list[str]:
    """Declare the categories ``rename`` leaves, in first-seen order (the first old category's fields kept).

    Two categories merged into one must agree on their keypoint names, else a box's keypoints would
    no longer match its category. Returns the new names in id order.
    """
    fields = category_fields(manifest)
    for category in manifest.categories:
        new = rename.get(category.name, category.name)
        if new is None:
            continue
        given = fields[category.name]
        known = writer.has_category(new)
        if known and writer.category_keypoints(new) != given["keypoints"]:
            raise InvalidDataError(
                f"class {category.name!r} is merged into {new!r} but their keypoint names differ "
                f"({given['keypoints']} vs {writer.category_keypoints(new)}); expected the same keypoints",
                file=where,
            )
        if known:
            continue
        # A merged category's source_id would clash with the one it joins: only the first keeps its own.
        writer.category(new, **given)
    return [c["name"] for c in writer.categories]


def remap(
    dataset: str | os.PathLike[str],
    out: str | os.PathLike[str],
    class_map: str | os.PathLike[str] | Mapping[str, str | None],
    *,
    name: str | None = None,
    force: bool = False,
    progress: Progress | None = None,
    execution: Execution | None = None,
) -> OpResult:
    """Write ``dataset`` with its classes renamed, merged and dropped as ``class_map`` says.

    ``class_map`` is a file (JSON object ``{"old": "new" | null}`` or a two-column CSV) or a mapping.
    A class it names that the dataset does not have is an error listing them all; classes it does
    not name stay as they are. Categories keep their first-seen order, ids are renumbered. A record
    whose classes do not change is copied byte for byte. ``execution``: how many processes read the
    input (the output is the same bytes whatever it is).
    """
    source = open_input(dataset, progress)
    rename, map_file = load_map(class_map)
    check_known(rename, source.manifest.category_names, "the class map", map_file)
    out_path = Path(os.path.abspath(out))
    inputs = [source.root, *([map_file] if map_file else [])]
    with output_dataset(out_path, force=force, inputs=inputs) as writer:
        kept = declare_categories(writer, source.manifest, rename, map_file or "the class map")
        refuse_mask_renumbering(source.manifest, kept, "remap")
        splits = list(source.manifest.splits)
        executor, processes = executor_for(execution, [source], splits)
        route = relabel_route(source, writer, rename, "remap")
        ranges = cut(source, splits, executor, processes)
        run_pass(writer, ranges, route, splits, executor=executor, processes=processes, progress=progress)
        options: dict[str, Any] = {"map": map_file or {k: v for k, v in rename.items()}}
        manifest = Manifest(
            name=name or source.manifest.name,
            categories=writer.categories,
            splits={split: f"{split}.jsonl" for split in source.manifest.splits},
            image_root=image_root_from(source, out_path),
            mask_kind=source.manifest.mask_kind,
            source=provenance("remap", input_files([source], out_path), options),
            attributes=source.manifest.attributes,
        )
        return finish(writer, manifest, out_path, "remap")
