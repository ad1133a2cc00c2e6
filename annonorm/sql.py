"""SQL over annotations with DuckDB (DESIGN.md §7): ``connect(dataset)`` and ``annonorm query``.

Views, over a JSONL dataset (read by DuckDB's own ``read_json``, no Python pass over the records) or
over a Parquet export (``annonorm export parquet``), out of core either way:

- ``images``: image, split, width, height, labels, counts, boxes, mask, id, id_text, attributes
- ``boxes``: one row per box: image, split, index (its place in the record), name, x1, y1, x2, y2,
  area, polygon, rle, obb, keypoints, score, attributes
- ``labels``: one row per label of an image: image, split, name, count
- ``categories``: id, name, source_id, supercategory

``id`` is an integer image id (``id_text`` a string one); attributes are JSON. duckdb is imported
here only, lazily (``annonorm[sql]``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from annonorm.columnar import part_files
from annonorm.errors import MissingDependency, ParseError, UsageError
from annonorm.io import open_dataset

if TYPE_CHECKING:
    import duckdb

__all__ = ["connect", "query"]

_BOX = (
    "STRUCT(name VARCHAR, x1 DOUBLE, y1 DOUBLE, x2 DOUBLE, y2 DOUBLE, polygon DOUBLE[][], "
    "rle STRUCT(size BIGINT[], counts VARCHAR), obb DOUBLE[], keypoints DOUBLE[][], score DOUBLE, attributes JSON)"
)
#: The JSONL's columns as DuckDB types (labels and counts as JSON: the seed's shorthand forms are allowed).
_JSONL_COLUMNS = {
    "image": "VARCHAR",
    "width": "BIGINT",
    "height": "BIGINT",
    "labels": "JSON",
    "counts": "JSON",
    "boxes": f"{_BOX}[]",
    "mask": "VARCHAR",
    "id": "JSON",
    "attributes": "JSON",
}
_JSONL_IMAGE = """
SELECT image, {split} AS split, width, height,
  CASE WHEN json_type(labels) = 'VARCHAR' THEN [labels ->> '$'] ELSE CAST(labels AS VARCHAR[]) END AS labels,
  CASE WHEN json_type(counts) = 'ARRAY'
       THEN CAST(json_merge_patch('{{}}', counts) AS MAP(VARCHAR, BIGINT))
       ELSE CAST(counts AS MAP(VARCHAR, BIGINT)) END AS counts,
  coalesce(boxes, []) AS boxes, mask,
  CASE WHEN json_type(id) IN ('BIGINT', 'UBIGINT') THEN CAST(id AS BIGINT) END AS id,
  CASE WHEN json_type(id) = 'VARCHAR' THEN id ->> '$' END AS id_text,
  attributes
FROM read_json({path}, format = 'newline_delimited', columns = {columns}, maximum_object_size = 268435456)
"""
_PARQUET_IMAGE = """
SELECT image, split, width, height, labels, counts, boxes, mask, id, id_text, CAST(attributes AS JSON) AS attributes
FROM read_parquet({paths})
"""
_BOXES = """
CREATE VIEW boxes AS
SELECT image, split, index, box.name AS name, box.x1 AS x1, box.y1 AS y1, box.x2 AS x2, box.y2 AS y2,
  (box.x2 - box.x1) * (box.y2 - box.y1) AS area, box.polygon AS polygon, box.rle AS rle, box.obb AS obb,
  box.keypoints AS keypoints, box.score AS score, CAST(box.attributes AS JSON) AS attributes
FROM (SELECT image, split, unnest(range(len(boxes))) AS index, unnest(boxes) AS box FROM images)
"""
_LABELS = """
CREATE VIEW labels AS
SELECT image, split, name, counts[name] AS count FROM (SELECT image, split, counts, unnest(labels) AS name FROM images)
"""


def _duckdb() -> Any:
    try:
        import duckdb
    except ImportError:
        raise MissingDependency("duckdb", "sql", "SQL over annotations") from None
    return duckdb


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def connect(dataset: str | Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the views ``images``, ``boxes``, ``labels``, ``categories``.

    ``dataset`` is a normalized dataset (JSONL splits) or a Parquet export of one; the views read it
    lazily, so a query streams the files and the dataset never has to fit in memory.
    """
    duckdb = _duckdb()
    source = open_dataset(Path(dataset))
    selects = []
    for split in source.manifest.splits:
        jsonl = source.split_path(split)
        parts = part_files(source.root / split)
        if parts and not jsonl.is_file():
            paths = "[" + ", ".join(_literal(str(p)) for p in parts) + "]"
            selects.append(_PARQUET_IMAGE.format(paths=paths))
        elif jsonl.is_file():
            columns = "{" + ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in _JSONL_COLUMNS.items()) + "}"
            selects.append(_JSONL_IMAGE.format(split=_literal(split), path=_literal(str(jsonl)), columns=columns))
        else:
            raise ParseError(f"split {split!r} has neither {jsonl.name} nor {split}/part-*.parquet", file=source.root)
    connection = duckdb.connect(":memory:")
    connection.execute("CREATE VIEW images AS " + " UNION ALL ".join(selects))
    connection.execute(_BOXES)
    connection.execute(_LABELS)
    connection.execute("CREATE TABLE categories (id BIGINT, name VARCHAR, source_id VARCHAR, supercategory VARCHAR)")
    rows = [
        (c.id, c.name, None if c.source_id is None else str(c.source_id), c.supercategory)
        for c in source.manifest.categories
    ]
    if rows:
        connection.executemany("INSERT INTO categories VALUES (?, ?, ?, ?)", rows)
    return connection


def query(dataset: str | Path, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run ``sql`` over ``dataset``'s views: the column names and the rows.

    A SQL error (syntax, unknown column, a value that does not convert) is a :class:`UsageError`, one line;
    a split file DuckDB cannot read is a :class:`ParseError`.
    """
    duckdb = _duckdb()
    connection = connect(dataset)
    try:
        result = connection.execute(sql)
        columns = [d[0] for d in result.description or ()]
        return columns, result.fetchall()
    except duckdb.IOException as exc:
        raise ParseError(f"cannot read the dataset: {_first_line(exc)}", file=str(dataset)) from None
    except duckdb.InvalidInputException as exc:
        raise ParseError(
            f"a split file does not read as JSONL records: {_first_line(exc)}", file=str(dataset)
        ) from None
    except duckdb.Error as exc:
        raise UsageError(f"SQL error: {_first_line(exc)}") from None
    finally:
        connection.close()


def _first_line(error: Exception) -> str:
    return " ".join(str(error).split("\n")[0].split())
