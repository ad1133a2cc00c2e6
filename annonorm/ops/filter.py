"""``filter``: keep some classes, drop others, drop small boxes, empty images, or whole splits.

Boxes outside the selection are removed and labels and counts follow (a removed class loses its
count; a count kept stays >= its boxes). Categories are reduced to the kept ones, in their order,
and renumbered.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from annonorm.engine import Execution
from annonorm.errors import UsageError
from annonorm.ops.common import (
    KeepBox,
    OpResult,
    Progress,
    check_known,
    finish,
    image_root_from,
    input_files,
    open_input,
    output_dataset,
    provenance,
    refuse_mask_renumbering,
    relabel_route,
)
from annonorm.ops.passes import cut, executor_for, run_pass
from annonorm.ops.remap import declare_categories
from annonorm.schemas.manifest import Manifest

__all__ = ["filter_dataset"]


def _names(value: str | Iterable[str] | None) -> list[str] | None:
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    return [item.strip() for item in items if item.strip()]


def box_filter(min_area: float | None, min_side: float | None) -> KeepBox | None:
    """The box test of ``--min-area`` (``(x2 - x1) * (y2 - y1)`` px²) and ``--min-side`` (the shorter side, px)."""
    if min_area is None and min_side is None:
        return None
    area = float(min_area or 0.0)
    side = float(min_side or 0.0)

    def keep(x1: float, y1: float, x2: float, y2: float) -> bool:
        width = x2 - x1
        height = y2 - y1
        return width * height >= area and min(width, height) >= side

    return keep


def filter_dataset(
    dataset: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    classes: str | Iterable[str] | None = None,
    drop_classes: str | Iterable[str] | None = None,
    min_area: float | None = None,
    min_side: float | None = None,
    drop_empty: bool = False,
    splits: str | Sequence[str] | None = None,
    name: str | None = None,
    force: bool = False,
    progress: Progress | None = None,
    execution: Execution | None = None,
) -> OpResult:
    """Write the part of ``dataset`` the selection keeps (``annonorm.filter`` is this function too).

    ``classes`` keeps only these classes, ``drop_classes`` removes these (both ``A,B`` or a list);
    ``min_area`` / ``min_side`` remove smaller boxes; ``drop_empty`` leaves out records with no class
    left; ``splits`` keeps only these splits. Names no category has are an error listing them. A
    record the selection leaves as it is is copied byte for byte. ``execution``: how many processes
    read the input (the output is the same bytes whatever it is).
    """
    source = open_input(dataset, progress)
    manifest = source.manifest
    known = manifest.category_names
    keep = _names(classes)
    drop = _names(drop_classes)
    wanted_splits = _names(splits)
    for given, what in ((keep, "--classes"), (drop, "--drop-classes")):
        if given is not None:
            check_known(given, known, what, source.root)
    if wanted_splits is not None:
        missing = [s for s in wanted_splits if s not in manifest.splits]
        if missing or not wanted_splits:
            raise UsageError(
                f"--split names splits the dataset does not have: {', '.join(missing) or '(none)'}; "
                f"it has: {', '.join(manifest.splits)}",
                file=source.root,
            )
    for value, what in ((min_area, "--min-area"), (min_side, "--min-side")):
        if value is not None and not value >= 0:
            raise UsageError(f"{what} must be a number >= 0, not {value}")
    rename: dict[str, str | None] = {
        category: None
        for category in known
        if (keep is not None and category not in keep) or (drop is not None and category in drop)
    }
    keep_box = box_filter(min_area, min_side)
    chosen = [s for s in manifest.splits if wanted_splits is None or s in wanted_splits]
    out_path = Path(os.path.abspath(out))
    with output_dataset(out_path, force=force, inputs=[source.root]) as writer:
        kept = declare_categories(writer, manifest, rename, str(source.root))
        refuse_mask_renumbering(manifest, kept, "filter")
        executor, processes = executor_for(execution, [source], chosen)
        route = relabel_route(source, writer, rename, "filter", keep=keep_box, drop_empty=drop_empty)
        ranges = cut(source, chosen, executor, processes)
        run_pass(writer, ranges, route, chosen, executor=executor, processes=processes, progress=progress)
        options: dict[str, Any] = {
            "classes": keep,
            "drop_classes": drop,
            "min_area": min_area,
            "min_side": min_side,
            "drop_empty": drop_empty,
            "splits": wanted_splits,
        }
        result = Manifest(
            name=name or manifest.name,
            categories=writer.categories,
            splits={split: f"{split}.jsonl" for split in chosen},
            image_root=image_root_from(source, out_path),
            mask_kind=manifest.mask_kind,
            source=provenance("filter", input_files([source], out_path), {k: v for k, v in options.items() if v}),
            attributes=manifest.attributes,
        )
        return finish(writer, result, out_path, "filter")
