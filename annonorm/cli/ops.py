"""Commands that operate on normalized datasets: merge, split, filter, remap (the library: :mod:`annonorm.ops`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from annonorm.cli._edge import OutputFormat, guard, progress

if TYPE_CHECKING:
    from annonorm.engine import Execution
    from annonorm.ops import OpResult

_OUT = typer.Option("--out", "-o", help="Output dataset directory (written atomically; never an input).")
_FORCE_HELP = "Replace an existing output."
_WORKERS = typer.Option(help="Processes reading the input: N, 0 = one per core (the output is the same bytes).")
_MAP_HELP = 'Class map: a JSON object {"old": "new" | null} (null drops the class) or a two-column CSV old,new.'


def _execution(workers: int) -> Execution:
    """The engine settings of ``--workers`` (negative is bad usage)."""
    from annonorm.engine import Execution
    from annonorm.errors import UsageError

    if workers < 0:
        raise UsageError(f"--workers must be 0 (one per core) or more, not {workers}")
    return Execution(workers=workers or None)


def _run(what: str, quiet: bool, output: OutputFormat, operation: Callable[[Any], OpResult]) -> None:
    """Run ``operation(progress_bar)`` under a progress bar, errors caught at the edge, then report it."""
    with progress(what, quiet) as bar:
        result = guard(lambda: operation(bar), output)
    _report(result, output)


def _report(result: OpResult, output: OutputFormat) -> None:
    """Print what was written (and the validator's warnings on stderr)."""
    for finding in result.warnings:
        typer.echo(f"annonorm: warning: {finding}", err=True)
    if output is OutputFormat.json:
        payload = {
            "out": str(result.out),
            "records": result.records,
            "categories": result.manifest.category_names,
            "warnings": [str(finding) for finding in result.warnings],
        }
        typer.echo(json.dumps(payload, indent=2))
        return
    counts = ", ".join(f"{split} {number}" for split, number in result.records.items())
    typer.echo(f"wrote {result.out}: {counts} records, {len(result.manifest.categories)} categories")


def merge(
    datasets: Annotated[list[Path], typer.Argument(help="Two or more normalized datasets.")],
    out: Annotated[Path, _OUT],
    class_map: Annotated[Path | None, typer.Option("--map", help=_MAP_HELP)] = None,
    on_duplicate: Annotated[
        str, typer.Option(help="The same image twice in a split: error, first (keep it), rename (keep both).")
    ] = "error",
    name: Annotated[str | None, typer.Option(help="Name of the merged dataset.")] = None,
    force: Annotated[bool, typer.Option(help=_FORCE_HELP)] = False,
    output: Annotated[OutputFormat, typer.Option("--format", help="Report as text or json.")] = OutputFormat.text,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Merge datasets: classes unified by name (after --map), splits by name, image paths under a common root.

    Example: annonorm merge data/coco data/voc -o data/both --map classes.json
    """
    from annonorm.ops import merge as run

    _run(
        "merging",
        quiet,
        output,
        lambda bar: run(
            datasets, out, class_map=class_map, on_duplicate=on_duplicate, name=name, force=force, progress=bar
        ),
    )


def split(
    dataset: Annotated[Path, typer.Argument(help="The normalized dataset to cut.")],
    out: Annotated[Path, _OUT],
    ratios: Annotated[str, typer.Option(help="Split names and ratios summing to 1: train=0.8,val=0.1,test=0.1.")],
    stratify: Annotated[
        bool, typer.Option(help="Multilabel iterative stratification on each image's classes.")
    ] = False,
    group_by: Annotated[
        str | None, typer.Option(help="Keep a group in one split: folder (the image's directory) or attribute:NAME.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same bytes.")] = 0,
    from_split: Annotated[
        list[str] | None, typer.Option("--from", help="Take the images of this split only (repeatable).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Name of the new dataset.")] = None,
    workers: Annotated[int, _WORKERS] = 0,
    force: Annotated[bool, typer.Option(help=_FORCE_HELP)] = False,
    output: Annotated[OutputFormat, typer.Option("--format", help="Report as text or json.")] = OutputFormat.text,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Cut a dataset into new splits (every image in exactly one); writes OUT/<split>.txt lists too.

    Example: annonorm split data/both -o data/cut --ratios train=0.8,val=0.1,test=0.1 --stratify --seed 1
    """
    from annonorm.ops import split as run

    _run(
        "splitting",
        quiet,
        output,
        lambda bar: run(
            dataset,
            out,
            ratios=ratios,
            stratify=stratify,
            group_by=group_by,
            seed=seed,
            from_split=from_split or None,
            name=name,
            force=force,
            progress=bar,
            execution=_execution(workers),
        ),
    )


def filter_command(
    dataset: Annotated[Path, typer.Argument(help="The normalized dataset to filter.")],
    out: Annotated[Path, _OUT],
    classes: Annotated[str | None, typer.Option(help="Keep only these classes: A,B.")] = None,
    drop_classes: Annotated[str | None, typer.Option(help="Remove these classes: C,D.")] = None,
    min_area: Annotated[float | None, typer.Option(help="Remove boxes of (x2-x1)*(y2-y1) below this, px².")] = None,
    min_side: Annotated[float | None, typer.Option(help="Remove boxes whose shorter side is below this, px.")] = None,
    drop_empty: Annotated[bool, typer.Option(help="Leave out images with no class left.")] = False,
    split: Annotated[list[str] | None, typer.Option(help="Keep only this split (repeatable).")] = None,
    name: Annotated[str | None, typer.Option(help="Name of the new dataset.")] = None,
    workers: Annotated[int, _WORKERS] = 0,
    force: Annotated[bool, typer.Option(help=_FORCE_HELP)] = False,
    output: Annotated[OutputFormat, typer.Option("--format", help="Report as text or json.")] = OutputFormat.text,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Keep part of a dataset: classes, box sizes, non-empty images, splits; labels and counts follow.

    Example: annonorm filter data/coco -o data/people --classes person --min-area 256 --drop-empty
    """
    from annonorm.ops import filter_dataset

    _run(
        "filtering",
        quiet,
        output,
        lambda bar: filter_dataset(
            dataset,
            out,
            classes=classes,
            drop_classes=drop_classes,
            min_area=min_area,
            min_side=min_side,
            drop_empty=drop_empty,
            splits=split or None,
            name=name,
            force=force,
            progress=bar,
            execution=_execution(workers),
        ),
    )


def remap(
    dataset: Annotated[Path, typer.Argument(help="The normalized dataset to relabel.")],
    out: Annotated[Path, _OUT],
    class_map: Annotated[Path, typer.Option("--map", help=_MAP_HELP)],
    name: Annotated[str | None, typer.Option(help="Name of the new dataset.")] = None,
    workers: Annotated[int, _WORKERS] = 0,
    force: Annotated[bool, typer.Option(help=_FORCE_HELP)] = False,
    output: Annotated[OutputFormat, typer.Option("--format", help="Report as text or json.")] = OutputFormat.text,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Rename, merge (several names to one, counts summed) and drop (null) classes.

    Example: annonorm remap data/coco -o data/coco-vehicles --map map.json   (map.json: {"car": "vehicle", "truck":
    "vehicle", "person": null})
    """
    from annonorm.ops import remap as run

    _run(
        "remapping",
        quiet,
        output,
        lambda bar: run(dataset, out, class_map, name=name, force=force, progress=bar, execution=_execution(workers)),
    )
