"""The ``annonorm`` command line (Typer): a few lines per command, the library does the work.

Domain errors are caught once, at the edge (:func:`annonorm.cli._edge.guard`), printed as one line
on stderr, and turned into the exit code they carry: 0 success, 1 invalid data, 2 bad usage or
unreadable input. The commands live by subject: :mod:`~annonorm.cli.convert` (convert, export: one
subcommand per converter, built from the options it declares), :mod:`~annonorm.cli.inspect`
(validate, stats, preview, formats, schema), :mod:`~annonorm.cli.ops` (merge, split, filter, remap)
and :mod:`~annonorm.cli.dvc`. ``import annonorm`` never
imports this package; the ``annonorm`` script and ``python -m annonorm`` call :func:`run`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Annotated

import typer

from annonorm import __version__
from annonorm.cli import convert, dvc, inspect, ops, query
from annonorm.cli._edge import guard

__all__ = ["app", "run"]

app = typer.Typer(
    name="annonorm",
    help="Normalize computer-vision annotations (COCO, Pascal VOC, CSV, YOLO, plugins) into one checked format.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for _command in (inspect.validate, inspect.formats, inspect.schema, inspect.stats, inspect.preview):
    app.command()(_command)
for _operation in (ops.merge, ops.split, ops.remap):
    app.command()(_operation)
app.command("filter")(ops.filter_command)
app.command("query")(query.query)
app.add_typer(convert.convert_app, name="convert")
app.add_typer(convert.export_app, name="export")
app.add_typer(dvc.dvc_app, name="dvc")


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

    Click would print "Aborted!" (exit 1) for an interrupt that lands outside :func:`guard` (while a
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
        try:  # escaped a command's own guard: worded by the same edge
            guard(lambda: reraise(escaped))
        except Exception as worded:
            sys.exit(int(getattr(worded, "exit_code", 2)))
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)
