"""The ``annonorm query`` command: SQL over a dataset's views (DuckDB, :mod:`annonorm.sql`)."""

from __future__ import annotations

import csv
import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from annonorm.cli._edge import OutputFormat, guard


class QueryFormat(str, Enum):
    """How ``annonorm query`` prints its rows."""

    text = "text"
    json = "json"
    csv = "csv"


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value)


def query(
    dataset: Annotated[Path, typer.Argument(help="A normalized dataset, or a Parquet export of one.")],
    sql: Annotated[str, typer.Argument(help="SQL over the views images, boxes, labels, categories.")],
    output: Annotated[
        QueryFormat, typer.Option("--format", help="Rows as a text table, json or csv.")
    ] = QueryFormat.text,
) -> None:
    """Run SQL over a dataset: views images, boxes (one row per box), labels, categories (DuckDB)."""
    from annonorm.sql import query as run_query

    edge = OutputFormat.json if output is QueryFormat.json else OutputFormat.text
    columns, rows = guard(lambda: run_query(dataset, sql), edge)
    if output is QueryFormat.json:
        typer.echo(json.dumps([dict(zip(columns, map(_jsonable, row), strict=True)) for row in rows], indent=2))
    elif output is QueryFormat.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([json.dumps(_jsonable(v)) if isinstance(v, (dict, list)) else v for v in row])
    else:
        cells = [columns, *([_text(v) for v in row] for row in rows)]
        widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
        for line in cells:
            typer.echo("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(_jsonable(value))
    return str(value)
