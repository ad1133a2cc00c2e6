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
    """Add or update the dvc.yaml stage running `annonorm convert FORMAT SOURCE -o OUT` (convert options after OUT)."""
    from annonorm import registry
    from annonorm.dvc import add_stage

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
