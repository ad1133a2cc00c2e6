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
    """Run ``action``: the one place where errors become one line on stderr and an exit code.

    An AnnonormError exits with its own code; an interrupt (SIGINT, SIGTERM, SIGHUP) with 128 + the
    signal's number ("annonorm: interrupted"); an OSError says its path and reason, and any other
    exception is one "internal error" line, both exit 2. Tracebacks only with ``annonorm --debug``.
    """
    import os
    import signal

    try:
        return action()
    except (typer.Exit, typer.Abort, typer.TyperException):
        raise
    except AnnonormError as error:
        if os.environ.get("ANNONORM_DEBUG"):
            import traceback

            traceback.print_exc()
        raise _fail(error, output) from None
    except KeyboardInterrupt as interrupt:
        typer.echo("annonorm: interrupted", err=True)
        raise typer.Exit(128 + int(getattr(interrupt, "signum", signal.SIGINT))) from None
    except Exception as error:
        debug = bool(os.environ.get("ANNONORM_DEBUG"))
        if debug:
            import traceback

            traceback.print_exc()
        if isinstance(error, OSError):
            message = " ".join(str(error.strerror or error).split())
            file = os.fsdecode(error.filename) if isinstance(error.filename, (str, bytes)) else None
            line = f"annonorm: error: {file}: {message}" if file else f"annonorm: error: {message}"
        else:
            file = None
            message = " ".join(f"{type(error).__name__}: {error}".split())
            hint = "" if debug else " (run with --debug for the traceback)"
            line = f"annonorm: internal error: {message}{hint}"
        if output is OutputFormat.json:
            kind = type(error).__name__ if isinstance(error, OSError) else "InternalError"
            payload = {"error": kind, "file": file, "location": None, "image": None, "message": message}
            typer.echo(json.dumps({**payload, "exit_code": 2}), err=True)
        else:
            typer.echo(line, err=True)
        raise typer.Exit(2) from None


class _Bar:
    """The progress callback handed to the library: called with records done, told the total once known."""

    def __init__(self, bar: Any, task: Any) -> None:
        self._bar = bar
        self._task = task

    def __call__(self, records: int) -> None:
        self._bar.advance(self._task, records)

    def set_total(self, total: int) -> None:
        """The number of records the work will reach (turns the counter into a bar with an ETA)."""
        self._bar.update(self._task, total=total)


@contextmanager
def _progress(description: str, quiet: bool) -> Iterator[_Bar | None]:
    """A progress bar on a terminal (a counter until the total is known); nothing when piped or ``--quiet``."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("records"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        yield _Bar(bar, bar.add_task(description, total=None))


# ------------------------------------------------------------------------------------------ convert / export

_COMMON_READ_HELP = "Directory where images are, when it cannot be found from SOURCE."
_CLASSES_HELP = (
    "The classes and their order (so the integer labels): a file (one name per line, or a data.yaml) or A,B,C. "
    "Every class found must be listed; listed classes without instances are kept."
)
_CLASSES_OPTION = Annotated[str | None, typer.Option("--classes", help=_CLASSES_HELP)]


def _option_annotation(option: Any) -> Any:
    """The Typer annotation of one converter option."""
    flag = option.flag
    if option.type is bool:
        # Tri-state: neither flag typed means "not given" (None), so a preset or the data decides.
        positive = f"--{option.name.replace('_', '-')}"
        negative = f"--no-{option.name.replace('_', '-')}"
        return Annotated[bool | None, typer.Option(f"{positive}/{negative}", help=option.help)]
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
    """One keyword per converter option; every default is None ("not given"), never the type's default."""
    return [_keyword(option.name, _option_annotation(option), None) for option in declared]


def _given(declared: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    return {o.name: kwargs[o.name] for o in declared if kwargs.get(o.name) not in (None, [])}


#: ``annonorm convert auto SOURCE``: the format is the first whose sniff recognizes SOURCE.
AUTO = "auto"


def _convert_command(format_name: str) -> Any:
    from annonorm import registry
    from annonorm.converters.base import Converter

    auto = format_name == AUTO
    converter = Converter if auto else _run(lambda: registry.get(format_name))
    if not auto and not converter.can_read():
        return None
    # A converter with a ``classes`` option of its own (YOLO) takes the common --classes through it.
    declares_classes = any(o.name == "classes" for o in converter.read_options)
    params = [
        inspect.Parameter(
            "source",
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            annotation=Annotated[Path, typer.Argument(help="The source annotations (file or directory).")],
        ),
        _keyword("out", Annotated[Path, typer.Option("--out", "-o", help="Output dataset directory.")], ...),
        _keyword("images", Annotated[Path | None, typer.Option(help=_COMMON_READ_HELP)], None),
        *([] if declares_classes else [_keyword("classes", _CLASSES_OPTION, None)]),
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
        chosen = format_name
        if auto:
            chosen = _run(lambda: registry.detect(kwargs["source"]), output)
            if not kwargs["quiet"] and output is OutputFormat.text:
                typer.echo(f"annonorm: {kwargs['source']} is in the {chosen} format", err=True)
        common = {} if declares_classes else {"classes": kwargs.get("classes")}
        quiet = kwargs["quiet"] or output is OutputFormat.json
        with _progress(f"converting {chosen}", quiet) as progress:
            result = _run(
                lambda: convert(
                    chosen,
                    kwargs["source"],
                    kwargs["out"],
                    images=kwargs["images"],
                    force=kwargs["force"],
                    on_error=OnError(kwargs["on_error"]).value,
                    name=kwargs["name"],
                    progress=progress,
                    **common,
                    **_given(converter.read_options, kwargs),
                ),
                output,
            )
        summary = {
            "out": str(result.out),
            "format": chosen,
            "detected": auto,
            "categories": len(result.manifest.categories),
            "splits": {s: vars(v) for s, v in result.splits.items()},
            "skipped": [e.to_dict() for e in result.skipped],
            "warnings": [vars(f) for f in result.warnings],
        }
        if output is OutputFormat.json:
            typer.echo(json.dumps(summary))
            raise typer.Exit(1 if result.skipped else 0)
        if not kwargs["quiet"]:
            for split, stats in result.splits.items():
                typer.echo(f"{split}: {stats.records} images, {stats.boxes} boxes, {stats.masks} masks")
            typer.echo(f"wrote {result.out} ({len(result.manifest.categories)} categories)")
        for finding in result.warnings:
            typer.echo(f"annonorm: warning: {finding}", err=True)
        for error in result.skipped:
            typer.echo(f"annonorm: skipped: {error}", err=True)
        if result.skipped:
            typer.echo(
                f"annonorm: {len(result.skipped)} broken images skipped; listed in {result.out / SKIPPED_REPORT}",
                err=True,
            )
            raise typer.Exit(1)

    summary = "Detect the format of SOURCE (each converter's sniff), then convert." if auto else converter.summary
    return _build_command(format_name, summary, params, body)


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
        _keyword("output", Annotated[OutputFormat, typer.Option("--format", help="Result as text or json.")], "text"),
        *_converter_options(converter.write_options),
    ]

    def body(**kwargs: Any) -> None:
        from annonorm.api import export

        output = OutputFormat(kwargs["output"])
        with _progress(f"exporting {format_name}", kwargs["quiet"] or output is OutputFormat.json) as progress:
            out = _run(
                lambda: export(
                    format_name,
                    kwargs["dataset"],
                    kwargs["out"],
                    force=kwargs["force"],
                    progress=progress,
                    **_given(converter.write_options, kwargs),
                ),
                output,
            )
        if output is OutputFormat.json:
            typer.echo(json.dumps({"out": str(out), "format": format_name}))
        elif not kwargs["quiet"]:
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

        return type(self).factory(_run(lambda: registry.canonical_name(cmd_name)))


class _ConvertGroup(_FormatGroup):
    factory = staticmethod(_convert_command)

    def list_commands(self, ctx: Any) -> list[str]:
        return [AUTO, *super().list_commands(ctx)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        return _convert_command(AUTO) if cmd_name.lower() == AUTO else super().get_command(ctx, cmd_name)


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


# ------------------------------------------------------------------------------------------ stats / preview / dvc


@app.command()
def stats(
    dataset: Annotated[Path, typer.Argument(help="The normalized dataset directory (or its annonorm.json).")],
    split: Annotated[list[str] | None, typer.Option(help="Only this split (repeatable).")] = None,
    output: Annotated[OutputFormat, typer.Option("--format", help="Tables as text, or json.")] = OutputFormat.text,
) -> None:
    """Per split: images, boxes, images without boxes, per-class counts, box sizes (COCO areas), aspect ratios."""
    from annonorm.stats import compute_stats, print_stats

    result = _run(lambda: compute_stats(dataset, split), output)
    if output is OutputFormat.json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        print_stats(result)


@app.command()
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

    result = _run(
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
        _run(lambda: render_class_histogram(compute_stats(dataset), stats_plot, force=force))
        typer.echo(f"wrote {stats_plot}")


dvc_app = typer.Typer(no_args_is_help=True, add_completion=False, help="Record conversions as DVC pipeline stages.")
app.add_typer(dvc_app, name="dvc")


@dvc_app.command("stage", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def dvc_stage(
    ctx: typer.Context,
    format_name: Annotated[str, typer.Argument(metavar="FORMAT", help="Source format (see annonorm formats).")],
    source: Annotated[Path, typer.Argument(help="The source annotations (file or directory).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output dataset directory: the stage's out.")],
    stage: Annotated[str | None, typer.Option(help="Stage name (default: annonorm-FORMAT-OUTNAME).")] = None,
) -> None:
    """Add or update the dvc.yaml stage running `annonorm convert FORMAT SOURCE -o OUT` (convert options after OUT)."""
    from annonorm import registry
    from annonorm.dvc import add_stage

    convert_command = _convert_command(format_name)
    if convert_command is None:
        raise _fail(AnnonormError(f"the {format_name!r} converter cannot read, so it cannot be a stage"))
    parsed = convert_command.make_context(f"annonorm dvc stage {format_name}", [str(source), "-o", str(out), *ctx.args])
    # Only what was typed (typer may vendor its own click, so the source is compared by name).
    typed = {k for k in parsed.params if getattr(parsed.get_parameter_source(k), "name", "") == "COMMANDLINE"}
    given = {k: v for k, v in parsed.params.items() if k in typed}
    declared = registry.get(format_name).read_options
    result = _run(
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


def _version(value: bool) -> None:
    if value:
        typer.echo(f"annonorm {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    version: Annotated[
        bool | None, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", help="Print the Python traceback of an error (for a bug report).")
    ] = False,
) -> None:
    """annonorm: one checked annotation format for computer-vision datasets."""
    import os

    from annonorm.fsutil import install_interrupt_handlers

    # SIGINT, SIGTERM, SIGHUP stop the workers, remove the temporary output and exit 130 / 143 / 129.
    ctx.call_on_close(install_interrupt_handlers())
    if debug:
        previous = os.environ.get("ANNONORM_DEBUG")
        os.environ["ANNONORM_DEBUG"] = "1"

        def restore() -> None:
            if previous is None:
                os.environ.pop("ANNONORM_DEBUG", None)
            else:
                os.environ["ANNONORM_DEBUG"] = previous

        ctx.call_on_close(restore)


def run() -> None:
    """The ``annonorm`` script: the Typer app, with what escapes a command worded by the same edge.

    Click would print "Aborted!" (exit 1) for an interrupt that lands outside :func:`_run` (while a
    command resolves or prints its result); here it is "annonorm: interrupted" with 128 + the signal.
    """

    def kinds(error: BaseException) -> set[str]:  # typer may vendor its own click: compare by class name
        return {kind.__name__ for kind in type(error).__mro__}

    def reraise(error: BaseException) -> None:
        raise error

    try:
        code = app(standalone_mode=False)
    except (Exception, KeyboardInterrupt) as error:
        found = kinds(error)
        if "Abort" in found:  # click turns KeyboardInterrupt (and our signal exception) into Abort
            typer.echo("annonorm: interrupted", err=True)
            sys.exit(128 + int(getattr(error.__context__, "signum", 2)))
        if "Exit" in found:
            sys.exit(int(getattr(error, "exit_code", 0)))
        if "ClickException" in found:
            show: Callable[[], None] = error.show  # type: ignore[union-attr]
            show()
            sys.exit(int(getattr(error, "exit_code", 2)))
        escaped = error
        try:  # escaped a command's own _run: worded by the same edge
            _run(lambda: reraise(escaped))
        except Exception as worded:
            sys.exit(int(getattr(worded, "exit_code", 2)))
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)
