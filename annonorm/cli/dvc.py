"""``annonorm dvc``: record conversions as DVC pipeline stages."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from annonorm.cli._edge import OnError, fail, guard
from annonorm.cli.convert import convert_command
from annonorm.errors import AnnonormError

dvc_app = typer.Typer(no_args_is_help=True, add_completion=False, help="Record conversions as DVC pipeline stages.")


@dvc_app.command("stage", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def stage_command(
    ctx: typer.Context,
    format_name: Annotated[str, typer.Argument(metavar="FORMAT", help="Source format (see annonorm formats).")],
    source: Annotated[Path, typer.Argument(help="The source annotations (file or directory).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output dataset directory: the stage's out.")],
    stage: Annotated[str | None, typer.Option(help="Stage name (default: annonorm-FORMAT-OUTNAME).")] = None,
) -> None:
    """Add or update the dvc.yaml stage running `annonorm convert FORMAT SOURCE -o OUT` (convert options after OUT).

    FORMAT may also be an operation: `annonorm dvc stage merge A B -o OUT --map map.json`, `split`, `filter`,
    `remap` (the stage's deps are the input datasets and the map file).
    """
    from annonorm import registry
    from annonorm.dvc import OPERATIONS, add_stage

    if format_name.lower() in OPERATIONS:
        _operation_stage(format_name.lower(), source, out, list(ctx.args), stage)
        return
    command = convert_command(format_name)
    if command is None:
        raise fail(AnnonormError(f"the {format_name!r} converter cannot read, so it cannot be a stage"))
    # The convert options after OUT are parsed by the convert command itself, so they mean the same there.
    parsed = command.make_context(f"annonorm dvc stage {format_name}", [str(source), "-o", str(out), *ctx.args])
    # Only what was typed (typer may vendor its own click, so the source is compared by name).
    typed = {k for k in parsed.params if getattr(parsed.get_parameter_source(k), "name", "") == "COMMANDLINE"}
    given = {k: v for k, v in parsed.params.items() if k in typed}
    declared = registry.get(format_name).read_options
    result = guard(
        lambda: add_stage(
            format_name,
            source,
            out,
            options={o.name: given[o.name] for o in declared if o.name in given},
            images=given.get("images"),
            classes=given.get("classes"),
            on_error=OnError(given["on_error"]).value if "on_error" in given else None,
            dataset_name=given.get("name"),
            stage_name=stage,
        )
    )
    typer.echo(f"{'added' if result.created else 'updated'} stage {result.name} in {result.dvc_file}: {result.cmd}")


def _operation_stage(operation: str, source: Path, out: Path, args: list[str], stage: str | None) -> None:
    """``annonorm dvc stage merge|split|filter|remap DATASET... -o OUT [--map MAP] [options]``."""
    from annonorm.dvc import add_operation_stage

    datasets: list[str | Path] = [source]
    while args and not args[0].startswith("-"):  # merge's further datasets come before its options
        datasets.append(args.pop(0))
    class_map: str | None = None
    rest: list[str] = []
    while args:
        token = args.pop(0)
        if token == "--map" and args:
            class_map = args.pop(0)
        elif token.startswith("--map="):
            class_map = token.partition("=")[2]
        else:
            rest.append(token)
    result = guard(
        lambda: add_operation_stage(operation, datasets, out, arguments=rest, class_map=class_map, stage_name=stage)
    )
    typer.echo(f"{'added' if result.created else 'updated'} stage {result.name} in {result.dvc_file}: {result.cmd}")
