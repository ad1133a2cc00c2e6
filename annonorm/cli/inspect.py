"""Commands that look at a dataset or at annonorm itself: validate, stats, preview, formats, schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from annonorm.cli._edge import OutputFormat, guard
from annonorm.cli.convert import Engine

if TYPE_CHECKING:
    from annonorm.registry import FormatInfo
    from annonorm.validation import Report


def validate(
    dataset: Annotated[Path, typer.Argument(help="Dataset directory, its annonorm.json, or a bare .jsonl split.")],
    strict: Annotated[bool, typer.Option(help="Treat warnings (boxes leaving the image...) as errors.")] = False,
    check_images: Annotated[
        bool,
        typer.Option(
            help="Check that images and masks exist, open, and have the recorded size; hash the images "
            "(SHA-256) to find the same picture under two paths in two splits."
        ),
    ] = False,
    output: Annotated[OutputFormat, typer.Option("--format", help="Report as text or json.")] = OutputFormat.text,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only problems.")] = False,
    engine: Annotated[
        Engine,
        typer.Option(
            help="Where the work runs: local processes, or tasks on a Ray cluster (RAY_ADDRESS, else a local one; "
            "the ray extra). The report is the same."
        ),
    ] = Engine.local,
    workers: Annotated[
        int | None, typer.Option(min=0, help="Processes (default: one per core; 1: this process only).")
    ] = None,
) -> None:
    """Check a normalized dataset against every rule of the format. Exit 0 valid, 1 invalid, 2 unreadable.

    An image in two splits (leakage) is a warning, image_in_several_splits (an error with --strict).
    """
    report = guard(lambda: _validate(dataset, strict, check_images, engine.value, workers), output)
    if output is OutputFormat.json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        for finding in report.findings:
            typer.echo(str(finding))
        if not quiet or not report.valid:
            typer.echo(verdict(report))
    raise typer.Exit(0 if report.valid else 1)


def _validate(dataset: Path, strict: bool, check_images: bool, engine: str, workers: int | None) -> Report:
    """Validate on the executor of ``engine`` (built as ``annonorm convert --engine`` builds it)."""
    from annonorm.api import open_executor
    from annonorm.engine import Execution
    from annonorm.validation import validate_dataset

    execution = Execution(workers=workers)
    with open_executor(engine, execution) as executor:
        return validate_dataset(dataset, strict=strict, check_images=check_images, executor=executor)


def verdict(report: Report) -> str:
    """The one-line summary of a validation report."""
    records = sum(s.records + s.invalid for s in report.splits.values())
    boxes = sum(s.boxes for s in report.splits.values())
    return (
        f"{'valid' if report.valid else 'INVALID'}: {records} records, {boxes} boxes in {len(report.splits)} splits; "
        f"{len(report.errors)} errors, {len(report.warnings)} warnings"
    )


def formats(
    output: Annotated[OutputFormat, typer.Option("--format", help="List as text or json.")] = OutputFormat.text,
) -> None:
    """List the installed converters, what they can do, and their options."""
    from annonorm import registry

    described = guard(registry.describe)
    if output is OutputFormat.json:
        typer.echo(json.dumps([_format_entry(info) for info in described], indent=2))
        return
    for info in described:
        if info.error is not None:
            typer.echo(f"{info.name:<8} unavailable: {info.error}")
            continue
        modes = "/".join(mode for mode, can in (("read", info.read), ("write", info.write)) if can)
        typer.echo(f"{info.name:<8} {modes:<10} {info.summary}")
        for kind, options in (("read", info.read_options), ("write", info.write_options)):
            for option in options:
                typer.echo(f"    {kind:<5} {option.flag:<18} {option.help}")


def _format_entry(info: FormatInfo) -> dict[str, Any]:
    """One converter in ``annonorm formats --format json``."""
    if info.error is not None:
        return {"name": info.name, "error": info.error}
    return {
        "name": info.name,
        "summary": info.summary,
        "read": info.read,
        "write": info.write,
        "read_options": [{"flag": o.flag, "help": o.help} for o in info.read_options],
        "write_options": [{"flag": o.flag, "help": o.help} for o in info.write_options],
    }


def schema(
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to write the JSON Schema files into.")] = Path(
        "schemas"
    ),
) -> None:
    """Write the JSON Schema files generated from the Pydantic models."""
    from annonorm.schemas import json_schemas

    out.mkdir(parents=True, exist_ok=True)
    for file_name, document in json_schemas().items():
        (out / file_name).write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        typer.echo(f"wrote {out / file_name}")


def stats(
    dataset: Annotated[Path, typer.Argument(help="The normalized dataset directory (or its annonorm.json).")],
    split: Annotated[list[str] | None, typer.Option(help="Only this split (repeatable).")] = None,
    output: Annotated[OutputFormat, typer.Option("--format", help="Tables as text, or json.")] = OutputFormat.text,
) -> None:
    """Per split: images, boxes, images without boxes, per-class counts, box sizes (COCO areas), aspect ratios.

    Also the dataset's content fingerprint (SHA-256 of its categories and split files), for experiment logs.
    """
    from annonorm.stats import compute_stats, print_stats

    result = guard(lambda: compute_stats(dataset, split), output)
    if output is OutputFormat.json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        print_stats(result)


def preview(
    dataset: Annotated[Path, typer.Argument(help="The normalized dataset directory (or its annonorm.json).")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Image file to write: .png, .jpg or .jpeg (the suffix chooses).")
    ],
    split: Annotated[str | None, typer.Option(help="Split to show (default: the first).")] = None,
    count: Annotated[int, typer.Option(help="Show the first N records of the split.")] = 16,
    index: Annotated[list[int] | None, typer.Option(help="Show the record at this index (repeatable).")] = None,
    masks: Annotated[bool, typer.Option(help="Blend each record's mask over its image.")] = False,
    tile: Annotated[int, typer.Option(help="Tile size in pixels.")] = 256,
    columns: Annotated[int | None, typer.Option(help="Tiles per row (default: a square grid).")] = None,
    image_root: Annotated[Path | None, typer.Option(help="Resolve images here, not at the manifest's.")] = None,
    stats_plot: Annotated[Path | None, typer.Option(help="Also draw a per-class box histogram PNG.")] = None,
    labels: Annotated[
        bool, typer.Option("--labels/--no-labels", help="Write each box's class name on it (--no-labels: boxes only).")
    ] = True,
    force: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
) -> None:
    """Draw images with their boxes, class names and masks into one PNG, to check a conversion at a glance."""
    from annonorm.preview import render_class_histogram, render_preview
    from annonorm.stats import compute_stats

    result = guard(
        lambda: render_preview(
            dataset,
            out,
            split=split,
            count=count,
            indices=index,
            masks=masks,
            tile_size=tile,
            columns=columns,
            image_root=image_root,
            labels=labels,
            force=force,
        )
    )
    for drawn in result.tiles:
        if drawn.note:
            typer.echo(f"annonorm: #{drawn.index} {drawn.image}: {drawn.note}", err=True)
    typer.echo(f"wrote {result.path} ({len(result.tiles)} records of split {result.split})")
    if stats_plot is not None:
        guard(lambda: render_class_histogram(compute_stats(dataset), stats_plot, force=force))
        typer.echo(f"wrote {stats_plot}")
