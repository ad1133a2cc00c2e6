"""Hostile inputs of the Parquet layout and of `annonorm query` (issue 17), built with make_corpus's helpers."""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping

from hostile.make_corpus import OUT, Case, FileSpec, dataset, garbage, manifest


def _parquet(columns: Mapping[str, list[object]]) -> Callable[[], bytes]:
    def build() -> bytes:
        import pyarrow as pa
        import pyarrow.parquet as pq

        sink = io.BytesIO()
        pq.write_table(pa.table(dict(columns)), sink)
        return sink.getvalue()

    return build


def _export(part: FileSpec) -> dict[str, FileSpec]:
    return {"pq/annonorm.json": manifest(), "pq/train/part-00000.parquet": part}


def _case(name: str, args: tuple[str, ...], files: Mapping[str, FileSpec], exit_code: int, fragment: str) -> Case:
    return Case(name, "parquet", args, files, exit_code, fragment)


_CONVERT = ("convert", "parquet", "{root}/pq", "-o", OUT)

CASES: list[Case] = [
    _case("parquet_foreign_layout", _CONVERT, _export(_parquet({"file_name": ["a.png"]})), 2, "not annonorm's Parquet"),
    _case(
        "parquet_schema_mismatch",
        _CONVERT,
        _export(_parquet({"image": ["a.png"], "boxes": [None], "width": ["wide"]})),
        2,
        "schema mismatch",
    ),
    _case("parquet_not_parquet", _CONVERT, _export(garbage()), 2, "not a readable Parquet file"),
    _case("parquet_split_missing", _CONVERT, {"pq/annonorm.json": manifest(), "pq/x.txt": ""}, 2, "has no"),
    _case("query_sql_error", ("query", "{root}/ds", "SELEC 1"), dataset(), 2, "SQL error"),
    _case("query_unknown_column", ("query", "{root}/ds", "SELECT nope FROM boxes"), dataset(), 2, "nope"),
]
