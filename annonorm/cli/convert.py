"""``annonorm convert FORMAT`` and ``annonorm export FORMAT``: one subcommand per installed converter.

The subcommands are built lazily from the options each converter declares, so
``annonorm convert csv --help`` lists the CSV options and a third-party plugin gets its own
subcommand without annonorm knowing it. Every declared option defaults to ``None`` ("not given"),
so a preset or the data decides, exactly as through ``annonorm.convert(**options)``.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from annonorm.cli._edge import OnError, OutputFormat, guard, progress

if TYPE_CHECKING:
    from annonorm.api import ConvertResult
    from annonorm.converters.base import Option

#: ``annonorm convert auto SOURCE``: the format is the first whose sniff recognizes SOURCE.
AUTO = "auto"

_IMAGES_HELP = "Directory where images are, when it cannot be found from SOURCE."
_ENGINE_HELP = (
    "Where the work runs: local processes, or tasks on a Ray cluster (RAY_ADDRESS, else a local one; "
    "the ray extra). The output is the same."
)
_CLASSES_HELP = (
    "The classes and their order (so the integer labels): a file (one name per line, or a data.yaml) or A,B,C. "
    "Every class found must be listed; listed classes without instances are kept."
)


class Engine(str, Enum):
    """``--engine``: where a run's units go."""

    local = "local"
    ray = "ray"


# ------------------------------------------------------------------------------------------ building a command


def _option_annotation(option: Option) -> Any:
    """The Typer annotation of one converter option."""
    if option.type is bool:
        # Tri-state: neither flag typed means "not given" (None), so a preset or the data decides.
        names = f"{option.flag}/--no-{option.flag[2:]}" if option.negatable else option.flag
        return Annotated[bool | None, typer.Option(names, help=option.help)]
    if option.multiple:
        return Annotated[list[str] | None, typer.Option(option.flag, help=option.help)]
    help_text = option.help + (f" One of: {', '.join(option.choices)}." if option.choices else "")
    return Annotated[str | None, typer.Option(option.flag, help=help_text)]


def _argument(name: str, help_text: str) -> inspect.Parameter:
    annotation = Annotated[Path, typer.Argument(help=help_text)]
    return inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=annotation)


def _keyword(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default)


def _declared(options: tuple[Option, ...]) -> list[inspect.Parameter]:
    """One keyword per converter option; every default is None ("not given"), never the type's default."""
    return [_keyword(option.name, _option_annotation(option), None) for option in options]


def _given(options: tuple[Option, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The declared options that were typed."""
    return {o.name: kwargs[o.name] for o in options if kwargs.get(o.name) not in (None, [])}


def _command(name: str, summary: str, params: list[inspect.Parameter], body: Callable[..., None]) -> Any:
    """A click command named ``name`` whose parameters are ``params``, calling ``body(**values)``."""

    def command(**kwargs: Any) -> None:
        body(**kwargs)

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    single = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    single.command(name=name, help=summary)(command)
    return typer.main.get_command(single)


def _common(quiet_help: str, format_help: str) -> list[inspect.Parameter]:
    """--force, --quiet and --format, worded for the command."""
    return [
        _keyword("force", Annotated[bool, typer.Option(help="Replace an existing output.")], False),
        _keyword("quiet", Annotated[bool, typer.Option("--quiet", "-q", help=quiet_help)], False),
        _keyword("output", Annotated[OutputFormat, typer.Option("--format", help=format_help)], "text"),
    ]


# ------------------------------------------------------------------------------------------ convert


def convert_command(format_name: str) -> Any:
    """``annonorm convert FORMAT`` (or ``auto``); None for a converter that cannot read."""
    from annonorm import registry
    from annonorm.converters.base import Converter

    auto = format_name == AUTO
    converter = Converter if auto else guard(lambda: registry.get(format_name))
    if not auto and not converter.can_read():
        return None
    # A converter with a ``classes`` option of its own (YOLO) takes the common --classes through it.
    declares_classes = any(o.name == "classes" for o in converter.read_options)
    classes = Annotated[str | None, typer.Option("--classes", help=_CLASSES_HELP)]
    force, quiet, output_format = _common("No progress, no summary.", "Summary as text or json.")
    params = [
        _argument("source", "The source annotations (file or directory)."),
        _keyword("out", Annotated[Path, typer.Option("--out", "-o", help="Output dataset directory.")], ...),
        _keyword("images", Annotated[Path | None, typer.Option(help=_IMAGES_HELP)], None),
        *([] if declares_classes else [_keyword("classes", classes, None)]),
        force,
        _keyword("on_error", Annotated[OnError, typer.Option(help="fail, or skip broken images.")], OnError.fail),
        _keyword("name", Annotated[str | None, typer.Option(help="Dataset name (default: from SOURCE).")], None),
        _keyword("engine", Annotated[Engine, typer.Option(help=_ENGINE_HELP)], Engine.local),
        quiet,
        output_format,
        *_declared(converter.read_options),
    ]

    def body(**kwargs: Any) -> None:
        from annonorm.api import convert

        output = OutputFormat(kwargs["output"])
        chosen = guard(lambda: registry.detect(kwargs["source"]), output) if auto else format_name
        if auto and not kwargs["quiet"] and output is OutputFormat.text:
            typer.echo(f"annonorm: {kwargs['source']} is in the {chosen} format", err=True)
        common = {} if declares_classes else {"classes": kwargs.get("classes")}
        options = {**common, **_given(converter.read_options, kwargs)}
        with progress(f"converting {chosen}", kwargs["quiet"] or output is OutputFormat.json) as bar:
            result = guard(
                lambda: convert(
                    chosen,
                    kwargs["source"],
                    kwargs["out"],
                    images=kwargs["images"],
                    force=kwargs["force"],
                    on_error=OnError(kwargs["on_error"]).value,
                    name=kwargs["name"],
                    progress=bar,
                    engine=Engine(kwargs["engine"]).value,
                    **options,
                ),
                output,
            )
        _print_converted(result, chosen, auto, output, kwargs["quiet"])

    summary = "Detect the format of SOURCE (each converter's sniff), then convert." if auto else converter.summary
    return _command(format_name, summary, params, body)


def convert_summary(result: ConvertResult, format_name: str, detected: bool) -> dict[str, Any]:
    """The JSON summary of a conversion (``annonorm convert ... --format json``)."""
    return {
        "out": str(result.out),
        "format": format_name,
        "detected": detected,
        "categories": len(result.manifest.categories),
        "splits": {split: vars(stats) for split, stats in result.splits.items()},
        "skipped": [error.to_dict() for error in result.skipped],
        "warnings": [vars(finding) for finding in result.warnings],
    }


def _print_converted(result: ConvertResult, name: str, detected: bool, output: OutputFormat, quiet: bool) -> None:
    """The summary on stdout, warnings and skipped images on stderr; exit 1 when images were skipped."""
    from annonorm.api import SKIPPED_REPORT

    if output is OutputFormat.json:
        typer.echo(json.dumps(convert_summary(result, name, detected)))
        raise typer.Exit(1 if result.skipped else 0)
    if not quiet:
        for split, stats in result.splits.items():
            typer.echo(f"{split}: {stats.records} images, {stats.boxes} boxes, {stats.masks} masks")
        typer.echo(f"wrote {result.out} ({len(result.manifest.categories)} categories)")
    for finding in result.warnings:
        typer.echo(f"annonorm: warning: {finding}", err=True)
    for error in result.skipped:
        typer.echo(f"annonorm: skipped: {error}", err=True)
    if result.skipped:
        report = result.out / SKIPPED_REPORT
        typer.echo(f"annonorm: {len(result.skipped)} broken images skipped; listed in {report}", err=True)
        raise typer.Exit(1)


# ------------------------------------------------------------------------------------------ export


def export_command(format_name: str) -> Any:
    """``annonorm export FORMAT``; None for a converter that cannot write."""
    from annonorm import registry

    converter = guard(lambda: registry.get(format_name))
    if not converter.can_write():
        return None
    params = [
        _argument("dataset", "The normalized dataset directory."),
        _keyword("out", Annotated[Path, typer.Option("--out", "-o", help="Output directory.")], ...),
        *_common("Print nothing on success.", "Result as text or json."),
        *_declared(converter.write_options),
    ]

    def body(**kwargs: Any) -> None:
        from annonorm.api import export

        output = OutputFormat(kwargs["output"])
        options = _given(converter.write_options, kwargs)
        with progress(f"exporting {format_name}", kwargs["quiet"] or output is OutputFormat.json) as bar:
            out = guard(
                lambda: export(
                    format_name, kwargs["dataset"], kwargs["out"], force=kwargs["force"], progress=bar, **options
                ),
                output,
            )
        if output is OutputFormat.json:
            typer.echo(json.dumps({"out": str(out), "format": format_name}))
        elif not kwargs["quiet"]:
            typer.echo(f"wrote {out}")

    return _command(format_name, converter.summary, params, body)


# ------------------------------------------------------------------------------------------ the two groups


class _FormatGroup(TyperGroup):
    """A group with one subcommand per installed converter, built only when asked for."""

    factory: Callable[[str], Any]

    def list_commands(self, ctx: Any) -> list[str]:
        from annonorm import registry

        return [name for name in guard(registry.names) if self.get_command(ctx, name) is not None]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        from annonorm import registry

        return type(self).factory(guard(lambda: registry.canonical_name(cmd_name)))


class _ConvertGroup(_FormatGroup):
    factory = staticmethod(convert_command)

    def list_commands(self, ctx: Any) -> list[str]:
        return [AUTO, *super().list_commands(ctx)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        return convert_command(AUTO) if cmd_name.lower() == AUTO else super().get_command(ctx, cmd_name)


class _ExportGroup(_FormatGroup):
    factory = staticmethod(export_command)


convert_app = typer.Typer(
    cls=_ConvertGroup,
    no_args_is_help=True,
    add_completion=False,
    help="Convert source annotations into a normalized dataset: annonorm convert FORMAT SOURCE -o OUT.",
)
export_app = typer.Typer(
    cls=_ExportGroup,
    no_args_is_help=True,
    add_completion=False,
    help="Write a normalized dataset in another format: annonorm export FORMAT DATASET -o OUT.",
)
