"""The ``annonorm`` command line (Typer): a few lines per command, the library does the work.

Domain errors are caught once, at the edge (:func:`_run`), printed as one line on stderr, and
turned into the exit code they carry: 0 success, 1 invalid data, 2 bad usage or unreadable input.
``convert FORMAT`` and ``export FORMAT`` are built per converter, lazily, from the options each
converter declares, so ``annonorm convert csv --help`` lists the CSV options and a third-party
plugin gets its own subcommand without annonorm knowing it.
"""

from __future__ import annotations

import inspect
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from typer.core import TyperGroup

from annonorm import __version__
from annonorm.errors import AnnonormError

T = TypeVar("T")

app = typer.Typer(
    name="annonorm",
    help="Normalize computer-vision annotations (COCO, Pascal VOC, CSV, YOLO, plugins) into one checked format.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class OutputFormat(str, Enum):
    """How a command prints its result."""

    text = "text"
    json = "json"


class OnError(str, Enum):
    """What a converter does with an image whose annotations are broken."""

    fail = "fail"
    skip = "skip"


def _fail(error: AnnonormError, output: OutputFormat = OutputFormat.text) -> typer.Exit:
    if output is OutputFormat.json:
        typer.echo(json.dumps(error.to_dict()), err=True)
    else:
        typer.echo(f"annonorm: error: {error}", err=True)
    return typer.Exit(error.exit_code)


def _run(action: Callable[[], T], output: OutputFormat = OutputFormat.text) -> T:
    """Run ``action``; turn an AnnonormError into one line on stderr and its exit code."""
    try:
        return action()
    except AnnonormError as error:
        raise _fail(error, output) from None
    except KeyboardInterrupt:
        typer.echo("annonorm: interrupted; nothing was written", err=True)
        raise typer.Exit(130) from None


@contextmanager
def _progress(description: str, quiet: bool) -> Iterator[Callable[[int], None] | None]:
    """A live record counter on a terminal; nothing when piped or with ``--quiet``."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.completed:,} records"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=None)
        yield lambda n: bar.advance(task, n)


# ------------------------------------------------------------------------------------------ convert / export

_COMMON_READ_HELP = "Directory where images are, when it cannot be found from SOURCE."


def _option_annotation(option: Any) -> Any:
    """The Typer annotation of one converter option."""
    flag = option.flag
    if option.type is bool:
        positive = f"--{option.name.replace('_', '-')}"
        negative = f"--no-{option.name.replace('_', '-')}"
        return Annotated[bool, typer.Option(f"{positive}/{negative}", help=option.help)]
    if option.multiple:
        return Annotated[list[str] | None, typer.Option(flag, help=option.help)]
    help_text = option.help + (f" One of: {', '.join(option.choices)}." if option.choices else "")
    return Annotated[str | None, typer.Option(flag, help=help_text)]


def _build_command(name: str, summary: str, params: list[inspect.Parameter], body: Callable[..., None]) -> Any:
    def command(**kwargs: Any) -> None:
        body(**kwargs)

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    single = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    single.command(name=name, help=summary)(command)
    return typer.main.get_command(single)


def _keyword(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default)


def _converter_options(declared: tuple[Any, ...]) -> list[inspect.Parameter]:
    params = []
    for option in declared:
        default = option.default if option.type is bool else None
        params.append(_keyword(option.name, _option_annotation(option), bool(default) if option.type is bool else None))
    return params


def _given(declared: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    return {o.name: kwargs[o.name] for o in declared if kwargs.get(o.name) not in (None, [])}


def _convert_command(format_name: str) -> Any:
    from annonorm import registry

    converter = _run(lambda: registry.get(format_name))
    if not converter.can_read():
        return None
    params = [
        inspect.Parameter(
            "source",
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            annotation=Annotated[Path, typer.Argument(help="The source annotations (file or directory).")],
        ),
        _keyword("out", Annotated[Path, typer.Option("--out", "-o", help="Output dataset directory.")], ...),
        _keyword("images", Annotated[Path | None, typer.Option(help=_COMMON_READ_HELP)], None),
        _keyword("force", Annotated[bool, typer.Option(help="Replace an existing output.")], False),
        _keyword("on_error", Annotated[OnError, typer.Option(help="fail, or skip broken images.")], OnError.fail),
        _keyword("name", Annotated[str | None, typer.Option(help="Dataset name (default: from SOURCE).")], None),
        _keyword("quiet", Annotated[bool, typer.Option("--quiet", "-q", help="No progress, no summary.")], False),
        _keyword("output", Annotated[OutputFormat, typer.Option("--format", help="Summary as text or json.")], "text"),
        *_converter_options(converter.read_options),
    ]

    def body(**kwargs: Any) -> None:
        from annonorm.api import SKIPPED_REPORT, convert

        output = OutputFormat(kwargs["output"])
        with _progress(f"converting {format_name}", kwargs["quiet"]) as progress:
            result = _run(
                lambda: convert(
                    format_name,
                    kwargs["source"],
                    kwargs["out"],
                    images=kwargs["images"],
                    force=kwargs["force"],
                    on_error=OnError(kwargs["on_error"]).value,
                    name=kwargs["name"],
                    progress=progress,
                    **_given(converter.read_options, kwargs),
                ),
                output,
            )
        summary = {
            "out": str(result.out),
            "format": format_name,
            "categories": len(result.manifest.categories),
            "splits": {s: vars(v) for s, v in result.splits.items()},
            "skipped": [e.to_dict() for e in result.skipped],
        }
        if output is OutputFormat.json:
            typer.echo(json.dumps(summary))
        elif not kwargs["quiet"]:
            for split, stats in result.splits.items():
                typer.echo(f"{split}: {stats.records} images, {stats.boxes} boxes, {stats.masks} masks")
            typer.echo(f"wrote {result.out} ({len(result.manifest.categories)} categories)")
        for error in result.skipped:
            typer.echo(f"annonorm: skipped: {error}", err=True)
        if result.skipped:
            typer.echo(
                f"annonorm: {len(result.skipped)} broken images skipped; listed in {result.out / SKIPPED_REPORT}",
                err=True,
            )
            raise typer.Exit(1)

    return _build_command(format_name, converter.summary, params, body)


def _export_command(format_name: str) -> Any:
    from annonorm import registry

    converter = _run(lambda: registry.get(format_name))
    if not converter.can_write():
        return None
    params = [
        inspect.Parameter(
            "dataset",
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            annotation=Annotated[Path, typer.Argument(help="The normalized dataset directory.")],
        ),
        _keyword("out", Annotated[Path, typer.Option("--out", "-o", help="Output directory.")], ...),
        _keyword("force", Annotated[bool, typer.Option(help="Replace an existing output.")], False),
        _keyword("quiet", Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing on success.")], False),
        *_converter_options(converter.write_options),
    ]

    def body(**kwargs: Any) -> None:
        from annonorm.api import export

        out = _run(
            lambda: export(
                format_name,
                kwargs["dataset"],
                kwargs["out"],
                force=kwargs["force"],
                **_given(converter.write_options, kwargs),
            )
        )
        if not kwargs["quiet"]:
            typer.echo(f"wrote {out}")

    return _build_command(format_name, converter.summary, params, body)


class _FormatGroup(TyperGroup):
    """A group with one subcommand per installed converter, built only when asked for."""

    factory: Callable[[str], Any]

    def list_commands(self, ctx: Any) -> list[str]:
        from annonorm import registry

        return [name for name in _run(registry.names) if self.get_command(ctx, name) is not None]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        from annonorm import registry

        if cmd_name not in _run(registry.names):
            return None
        return type(self).factory(cmd_name)


class _ConvertGroup(_FormatGroup):
    factory = staticmethod(_convert_command)


class _ExportGroup(_FormatGroup):
    factory = staticmethod(_export_command)


app.add_typer(
    typer.Typer(cls=_ConvertGroup, no_args_is_help=True, add_completion=False),
    name="convert",
    help="Convert source annotations into a normalized dataset: annonorm convert FORMAT SOURCE -o OUT.",
)
app.add_typer(
    typer.Typer(cls=_ExportGroup, no_args_is_help=True, add_completion=False),
    name="export",
    help="Write a normalized dataset in another format: annonorm export FORMAT DATASET -o OUT.",
)


# ------------------------------------------------------------------------------------------ validate


@app.command()
def validate(
    dataset: Annotated[Path, typer.Argument(help="Dataset directory, its annonorm.json, or a bare .jsonl split.")],
    strict: Annotated[bool, typer.Option(help="Treat warnings (boxes leaving the image...) as errors.")] = False,
    check_images: Annotated[
        bool, typer.Option(help="Check that images and masks exist, open, and have the recorded size.")
    ] = False,
    output: Annotated[OutputFormat, typer.Option("--format", help="Report as text or json.")] = OutputFormat.text,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only problems.")] = False,
) -> None:
    """Check a normalized dataset against every rule of the format. Exit 0 valid, 1 invalid, 2 unreadable."""
    from annonorm.validation import validate_dataset

    report = _run(lambda: validate_dataset(dataset, strict=strict, check_images=check_images), output)
    if output is OutputFormat.json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        for finding in report.findings:
            typer.echo(str(finding))
        if not quiet or not report.valid:
            records = sum(s.records + s.invalid for s in report.splits.values())
            boxes = sum(s.boxes for s in report.splits.values())
            verdict = "valid" if report.valid else "INVALID"
            typer.echo(
                f"{verdict}: {records} records, {boxes} boxes in {len(report.splits)} splits; "
                f"{len(report.errors)} errors, {len(report.warnings)} warnings"
            )
    raise typer.Exit(0 if report.valid else 1)


# ------------------------------------------------------------------------------------------ formats / schema


@app.command()
def formats(
    output: Annotated[OutputFormat, typer.Option("--format", help="List as text or json.")] = OutputFormat.text,
) -> None:
    """List the installed converters, what they can do, and their options."""
    from annonorm import registry

    listing: list[dict[str, Any]] = []
    for name in _run(registry.names):
        try:
            converter = registry.get(name)
        except AnnonormError as error:
            listing.append({"name": name, "error": str(error)})
            continue
        listing.append(
            {
                "name": name,
                "summary": converter.summary,
                "read": converter.can_read(),
                "write": converter.can_write(),
                "read_options": [{"flag": o.flag, "help": o.help} for o in converter.read_options],
                "write_options": [{"flag": o.flag, "help": o.help} for o in converter.write_options],
            }
        )
    if output is OutputFormat.json:
        typer.echo(json.dumps(listing, indent=2))
        return
    for entry in listing:
        if "error" in entry:
            typer.echo(f"{entry['name']:<8} unavailable: {entry['error']}")
            continue
        modes = "/".join(m for m in ("read", "write") if entry[m])
        typer.echo(f"{entry['name']:<8} {modes:<10} {entry['summary']}")
        for kind in ("read_options", "write_options"):
            for opt in entry[kind]:
                typer.echo(f"    {kind.split('_')[0]:<5} {opt['flag']:<18} {opt['help']}")


@app.command()
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


def _version(value: bool) -> None:
    if value:
        typer.echo(f"annonorm {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool | None, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = None,
) -> None:
    """annonorm: one checked annotation format for computer-vision datasets."""
