"""The edge of the command line: where errors become one line on stderr and an exit code, and progress is drawn.

Every command calls the library through :func:`guard`; nothing else in the CLI catches an error.
Exit codes: 0 success, 1 invalid data, 2 bad usage or unreadable input, 128 + n for signal n.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from typing import Any, TypeVar

import typer

from annonorm.errors import AnnonormError

T = TypeVar("T")


class OutputFormat(str, Enum):
    """How a command prints its result."""

    text = "text"
    json = "json"


class OnError(str, Enum):
    """What a converter does with an image whose annotations are broken."""

    fail = "fail"
    skip = "skip"


def fail(error: AnnonormError, output: OutputFormat = OutputFormat.text) -> typer.Exit:
    """Print ``error`` as one line (or one JSON object) on stderr; the exit to raise, with its code."""
    if output is OutputFormat.json:
        typer.echo(json.dumps(error.to_dict()), err=True)
    else:
        typer.echo(f"annonorm: error: {error}", err=True)
    return typer.Exit(error.exit_code)


def guard(action: Callable[[], T], output: OutputFormat = OutputFormat.text) -> T:
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
        raise fail(error, output) from None
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


class ProgressBar:
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
def progress(description: str, quiet: bool) -> Iterator[ProgressBar | None]:
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
        yield ProgressBar(bar, bar.add_task(description, total=None))
