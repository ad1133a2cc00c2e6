"""Typing the cells and columns of a delimited table: numbers, decimal commas, headers, column specs.

A number cell has a decimal point unless the table's decimal mark is ``,`` (``0,3580246914``, as a
European locale writes it): then a point is refused (it may be a thousands mark), and a cell that
reads only with the other mark says so in its error (:func:`decimal_hint`). Columns are named by a
header name (an exact match, else the one match ignoring case) or a 0-based index
(:func:`resolve_column`); a mapping of roles to columns comes from the reader's options and presets
(:func:`open_mapping`). The fast typers (:func:`number_block`, :func:`group_sides`) convert whole
columns of a block at once and raise :class:`~annonorm.sources.tabular.Irregular`, having done nothing,
when a cell needs a closer look; the careful typers (:func:`group_sizes`, :func:`number_cells`,
:func:`bbox_cells`, ...) then read it cell by cell, give the same values, and note each bad row's first
problem, worded by the ``*_problem`` functions, in :class:`Faults`.
"""

from __future__ import annotations

import csv
import errno
import math
import os
import re
import stat
from bisect import bisect_left
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain, compress
from operator import itemgetter, ne
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from annonorm.errors import AnnonormError, InvalidDataError, ParseError, UsageError
from annonorm.sources.images import IMAGE_EXTENSIONS, IMAGE_SUFFIXES
from annonorm.sources.tabular import NOT_A_TABLE, Irregular, Table, open_dialect

__all__ = [
    "ALL_OTHER_COLUMNS",
    "DECIMALS",
    "PARSE_NUMBER",
    "ColumnMapping",
    "Faults",
    "ImageFinder",
    "Preset",
    "Variant",
    "bbox_cell_to_values",
    "bbox_cells",
    "check_box_roles",
    "choose_variant",
    "count_cell",
    "count_problem",
    "decide_header",
    "decimal_hint",
    "find_table_image",
    "finite_number",
    "first_named",
    "flag_problem",
    "flag_value",
    "group_sides",
    "group_sizes",
    "header_named",
    "is_number",
    "nonpositive_rows",
    "number_block",
    "number_cells",
    "number_problem",
    "open_mapping",
    "parse_column_options",
    "read_flag",
    "read_side",
    "resolve_column",
    "resolve_extra_columns",
    "side_problem",
    "split_extra_columns",
]

#: Decimal marks of a table: a European locale writes ``0,35`` (with ``;`` cells, or quoted ``,`` ones).
DECIMALS = (".", ",")
DECIMAL_HINT = " (use --decimal , for decimal commas)"
#: A column spec meaning every column no role maps (``--count-columns '*'``).
ALL_OTHER_COLUMNS = "*"

# ---------------------------------------------------------------------------------------------- number cells


def _comma_float(text: str) -> float:
    """``float`` of a number with a decimal comma (``"0,35"``); one with a ``.`` (a thousands mark?) is refused."""
    if "." in text:
        raise ValueError(f"{text!r} has a '.' but the decimal mark is ','")
    return float(text.replace(",", "."))


#: The parser of one number cell, per decimal mark (``float`` ignores surrounding spaces, as stripping does).
PARSE_NUMBER: dict[str, Callable[[str], float]] = {".": float, ",": _comma_float}


def finite_number(text: str, decimal: str = ".") -> float:
    """The finite number a cell holds with the decimal mark ``decimal``; :class:`ValueError` otherwise."""
    value = PARSE_NUMBER[decimal](text)
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def is_number(text: str, decimal: str = ".") -> bool:
    """Whether a cell reads as a number (finite or not) with the decimal mark ``decimal``."""
    try:
        PARSE_NUMBER[decimal](text)
    except ValueError:
        return False
    return True


def decimal_hint(text: str, decimal: str, parse: Callable[[str, str], object] = finite_number) -> str:
    """For a cell that ``parse`` refuses with ``decimal`` but reads with the other mark, a hint that says
    so; else ``""``."""
    other = "," if decimal == "." else "."
    if other not in text:
        return ""
    try:
        parse(text, other)
    except ValueError:
        return ""
    return DECIMAL_HINT if other == "," else " (--decimal , is given: expected a decimal comma)"


def number_problem(text: str, decimal: str) -> str | None:
    """What is wrong with a number cell, or ``None``."""
    try:
        finite_number(text, decimal)
    except ValueError:
        return f"expected a number, found {text!r}" + decimal_hint(text, decimal)
    return None


def side_problem(text: str, role: str, decimal: str) -> str | None:
    """What is wrong with an image ``width``/``height`` cell (a positive whole number of pixels), or ``None``."""
    try:
        value = PARSE_NUMBER[decimal](text)
    except ValueError:
        value = math.nan
    if math.isfinite(value) and value > 0 and value == int(value):
        return None
    return f"expected the image {role} as a positive whole number of pixels, found {text!r}" + decimal_hint(
        text, decimal
    )


def count_problem(value: float, text: str) -> str | None:
    """What is wrong with a count (a whole number >= 0) read from ``text``, or ``None``."""
    if value < 0 or value != int(value):
        return f"expected a count (a whole number >= 0), found {text!r}"
    return None


def read_side(table: Table, cells: list[str], number: int, index: int | None, role: str) -> int | None:
    """An image side in pixels from a row's cell (``None`` when no column or an empty cell)."""
    if index is None or not cells[index]:
        return None
    problem = side_problem(cells[index], role, table.decimal)
    if problem is not None:
        raise ParseError(problem, file=table.path, location=table.where(number, index))
    return int(PARSE_NUMBER[table.decimal](cells[index]))


def flag_problem(text: str, decimal: str) -> str | None:
    """What is wrong with a one-hot cell (empty, 0/1 or another number, true/false, yes/no), or ``None``."""
    lowered = text.lower()
    if lowered in ("", "0", "0.0", "false", "no", "true", "yes") or is_number(lowered, decimal):
        return None
    return f"expected a one-hot cell (0/1, true/false), found {text!r}"


def flag_value(text: str, decimal: str) -> bool:
    """A one-hot cell (without a problem): empty, 0, false, no -> False; true, yes, another number -> True."""
    lowered = text.lower()
    if lowered in ("", "0", "0.0", "false", "no"):
        return False
    return lowered in ("true", "yes") or PARSE_NUMBER[decimal](lowered) != 0


def read_flag(table: Table, cells: list[str], number: int, index: int) -> bool:
    """A one-hot cell of a row (see :func:`flag_value`); a ParseError naming the row and column otherwise."""
    problem = flag_problem(cells[index], table.decimal)
    if problem is not None:
        raise ParseError(problem, file=table.path, location=table.where(number, index))
    return flag_value(cells[index], table.decimal)


# ---------------------------------------------------------------------------------------------- whole columns


def number_block(columns: Sequence[list[str]], indices: Sequence[int], parse: Callable[[str], float]) -> np.ndarray:
    """The finite numbers of columns ``indices``, one array row per column; :class:`Irregular` when a
    cell is empty, not a number (``float`` ignores no space that ``str.strip`` keeps) or not finite."""
    count = len(columns[indices[0]])
    try:
        cells = chain.from_iterable(columns[i] for i in indices)
        values = np.fromiter(map(parse, cells), np.float64, len(indices) * count).reshape(len(indices), count)
    except ValueError:
        raise Irregular from None
    if not np.isfinite(values).all():
        raise Irregular
    return values


def group_sides(
    widths: list[str], heights: list[str], starts: list[int], parse: Callable[[str], float]
) -> list[tuple[int, int]]:
    """Each group's size from its first row (``starts``); :class:`Irregular` when one is not a positive
    whole number or a later row of a group has other size cells."""
    sides = []
    first_rows = set(starts)
    for column in (widths, heights):
        if not first_rows.issuperset(compress(range(1, len(column)), map(ne, column[1:], column[:-1]))):
            raise Irregular  # a size cell differs from the row above inside a group: rows compare them
        try:
            values = [parse(column[start]) for start in starts]
        except ValueError:
            raise Irregular from None
        if not (all(map(float.is_integer, values)) and min(values) > 0):  # is_integer: finite too
            raise Irregular
        sides.append(list(map(int, values)))
    return list(zip(sides[0], sides[1], strict=True))


# ---------------------------------------------------------------------------------------------- column specs


def resolve_column(spec: str | int, header: list[str] | None, path: Path, role: str) -> int:
    """The index of the column ``spec`` names: a header name (exact, else the one match ignoring case)
    or a 0-based index."""
    if header is not None and isinstance(spec, str):
        if spec in header:
            return header.index(spec)
        folded = [h.lower() for h in header]
        if folded.count(spec.lower()) == 1:
            return folded.index(spec.lower())
    if isinstance(spec, int) or spec.isdigit():
        return int(spec)
    shown = ", ".join(header or ())
    raise ParseError(
        f"the {role} column {spec!r} is not in the header (columns: {shown})"
        if header is not None
        else f"the {role} column {spec!r} is a name but the file has no header row; use a 0-based index",
        file=path,
        location="row 1",
    )


def header_named(first: list[str], columns: Mapping[str, str | int], extra: Sequence[str]) -> bool:
    """Whether ``first`` holds every column that ``columns``/``extra`` name (ignoring case)."""
    folded = {c.lower() for c in first}
    names = [c for c in columns.values() if isinstance(c, str) and not c.isdigit()]
    names += [c for c in extra if c != ALL_OTHER_COLUMNS]
    return bool(names) and all(n.lower() in folded for n in names)


def decide_header(
    option: str, first: list[str], *, named: bool, numeric: Sequence[int], sample: str, decimal: str
) -> bool:
    """Whether the first row is a header: ``option`` yes/no, or for ``auto``: when columns are ``named``
    by header names; else when a ``numeric`` column's first cell is not a number; else when
    ``csv.Sniffer.has_header`` says so."""
    if option != "auto":
        return option == "yes"
    if named:
        return True
    if numeric:
        return any(i < len(first) and first[i] and not is_number(first[i], decimal) for i in numeric)
    try:
        return csv.Sniffer().has_header(sample)
    except csv.Error:
        return False


def split_extra_columns(values: Sequence[str]) -> list[tuple[str | None, str]]:
    """Specs of a column per class: ``COLUMN`` or ``CLASS=COLUMN``."""
    out: list[tuple[str | None, str]] = []
    for value in values:
        name, sep, column = value.partition("=")
        out.append((name.strip(), column.strip()) if sep else (None, value.strip()))
    return out


def resolve_extra_columns(
    path: Path,
    specs: Sequence[tuple[str | None, str]],
    header: list[str] | None,
    mapped: set[int],
    width: int,
    flag: str,
) -> list[tuple[str, int]]:
    """``(class, index)`` of each column per class; ``*`` is every column not in ``mapped``, by header name."""
    out: list[tuple[str, int]] = []
    for name, spec in specs:
        if spec == ALL_OTHER_COLUMNS:
            if header is None:
                raise UsageError(f"{path}: {flag} '*' takes class names from the header, but the file has none")
            out += [(h, i) for i, h in enumerate(header) if i not in mapped and h]
            continue
        index = resolve_column(spec, header, path, flag)
        if index >= width:
            raise ParseError(f"{flag} column {index} is beyond the {width} cells of a row", file=path, location="row 1")
        label = name or (header[index] if header is not None else None)
        if not label:
            raise UsageError(f"{path}: {flag} {spec!r} has no header name; write it as CLASS={spec}")
        out.append((label, index))
    return out


# ---------------------------------------------------------------------------------------------- column mappings


@dataclass(frozen=True)
class Variant:
    """One column layout of a preset: role -> header name (or index), and how to read it."""

    columns: Mapping[str, str | int]
    box_format: str | None = None
    normalized: bool = False
    label_columns: tuple[str, ...] = ()

    @property
    def by_name(self) -> bool:
        """Whether this layout needs a header (it names its columns)."""
        return any(isinstance(c, str) for c in self.columns.values()) or bool(self.label_columns)


@dataclass(frozen=True)
class Preset:
    """A named layout: the first variant whose columns the file has is used."""

    name: str
    summary: str
    variants: tuple[Variant, ...]


def parse_column_options(values: Iterable[str], roles: Sequence[str]) -> dict[str, str]:
    """The ``--column ROLE=COLUMN`` options as role -> column spec."""
    mapping: dict[str, str] = {}
    for value in values:
        role, sep, column = value.partition("=")
        role, column = role.strip(), column.strip()
        if not sep or not column:
            raise UsageError(f"--column {value!r}: expected ROLE=COLUMN, e.g. image=filename")
        if role not in roles:
            raise UsageError(f"--column {value!r}: unknown role {role!r}; expected one of {', '.join(roles)}")
        if role in mapping:
            raise UsageError(f"--column: role {role!r} is given twice")
        mapping[role] = column
    return mapping


def choose_variant(
    path: Path,
    presets: Mapping[str, Preset],
    preset_name: str,
    first: list[str],
    explicit: Mapping[str, str],
    extra_named: Sequence[str],
    header_option: str,
    box_roles: Container[str],
) -> Variant:
    """The variant of preset ``preset_name`` (``auto``: of any preset, by header names) that the first row
    fits; roles ``explicit`` maps are not needed (nor a box role, when it maps one)."""
    if preset_name == "auto":
        candidates = [v for p in presets.values() for v in p.variants if v.by_name]
    elif preset_name in presets:
        candidates = list(presets[preset_name].variants)
    else:
        raise UsageError(f"--preset {preset_name!r}: expected one of auto, none, {', '.join(presets)}")
    for variant in candidates:
        needed = {r: c for r, c in variant.columns.items() if r not in explicit}
        if any(r in box_roles for r in explicit):
            needed = {r: c for r, c in needed.items() if r not in box_roles}
        if variant.by_name:
            if header_option == "no":
                continue
            if header_named(first, needed, extra_named) or (not needed and header_option == "yes"):
                return variant
        elif (
            header_option != "yes"
            and not header_named(first, explicit, extra_named)
            and all(isinstance(c, int) and c < len(first) for c in needed.values())
        ):
            return variant
    shown = ", ".join(first)
    if preset_name == "auto":
        raise ParseError(
            f"{NOT_A_TABLE}cannot tell the columns from the first row ({shown}); expected the header of a known "
            f"layout ({', '.join(presets)}), or pass --preset or --column ROLE=COLUMN",
            file=path,
            location="row 1",
        )
    raise ParseError(
        f"the first row ({shown}) matches no layout of the {preset_name} preset; "
        f"expected one of: {'; '.join(', '.join(map(str, v.columns.values())) for v in candidates)}",
        file=path,
        location="row 1",
    )


def check_box_roles(
    path: Path, roles: Iterable[str], box_format: str | None, formats: Mapping[str, Sequence[str]]
) -> str | None:
    """The box format the mapped ``roles`` give (``bbox``: one cell in ``box_format``), ``None`` without a box."""
    box = {r for r in roles if r == "bbox" or any(r in names for names in formats.values())}
    if not box:
        return None
    if box == {"bbox"}:
        return box_format or "xyxy"
    if "bbox" in box:
        raise UsageError(f"{path}: map either a bbox column or separate coordinate columns, not both")
    matching = [name for name, names in formats.items() if box == set(names)]
    if not matching:
        raise UsageError(
            f"{path}: box columns {', '.join(sorted(box))} are incomplete; expected x1,y1,x2,y2 (xyxy), "
            "x,y,w,h (xywh) or cx,cy,w,h (cxcywh)"
        )
    if box_format is not None and box_format != matching[0]:
        raise UsageError(
            f"{path}: --box-format {box_format} needs columns {','.join(formats[box_format])}, "
            f"but {','.join(sorted(box))} are mapped"
        )
    return matching[0]


@dataclass
class ColumnMapping:
    """One table file's resolved column mapping: role -> column index, and how to read the box."""

    table: Table
    columns: dict[str, int]
    box_format: str | None
    normalized: bool
    count_columns: list[tuple[str, int]]
    label_columns: list[tuple[str, int]]
    default_split: str


def open_mapping(
    path: Path,
    options: Mapping[str, Any],
    presets: Mapping[str, Preset],
    roles: Sequence[str],
    box_formats: Mapping[str, Sequence[str]],
    numeric_roles: Container[str],
    default_split: str,
) -> ColumnMapping:
    """Sniff the dialect, decide the header and resolve the column mapping of one table file from the
    reader's options (``column``, ``preset``, ``header``, ``delimiter``, ``decimal``, ``box_format``,
    ``normalized``, ``count_columns``, ``label_columns``)."""
    box_roles = {"bbox", *(role for names in box_formats.values() for role in names)}
    sample, delimiter, first = open_dialect(path, options.get("delimiter"))
    decimal = options.get("decimal") or "."
    explicit = parse_column_options(options.get("column") or (), roles)
    count_specs = split_extra_columns(options.get("count_columns") or ())
    label_specs = split_extra_columns(options.get("label_columns") or ())
    preset_name = options.get("preset") or "auto"
    header_option = options.get("header") or "auto"

    columns: dict[str, str | int] = dict(explicit)
    box_format = options.get("box_format")
    normalized = options.get("normalized")
    extra_named = [c for _, c in count_specs + label_specs]
    if preset_name != "none" and (preset_name != "auto" or not (explicit or count_specs or label_specs)):
        variant = choose_variant(path, presets, preset_name, first[0], explicit, extra_named, header_option, box_roles)
        preset_columns = dict(variant.columns)
        if box_roles.intersection(explicit):
            preset_columns = {r: c for r, c in preset_columns.items() if r not in box_roles}
        columns = {**preset_columns, **explicit}
        if box_format is None and not box_roles.intersection(explicit):
            box_format = variant.box_format
        if normalized is None:
            normalized = variant.normalized
        if not label_specs and not count_specs:
            label_specs = [(None, c) for c in variant.label_columns]
    named = bool(extra_named) or any(isinstance(c, str) and not c.isdigit() for c in columns.values())
    numeric = [] if named else [int(c) for role, c in columns.items() if role in numeric_roles]
    has_header = decide_header(header_option, first[0], named=named, numeric=numeric, sample=sample, decimal=decimal)
    header = first[0] if has_header else None
    width = len(first[0])

    if "image" not in columns:
        raise UsageError(f"{path}: no image column; pass --column image=COLUMN or a --preset")
    resolved = {role: resolve_column(spec, header, path, role) for role, spec in columns.items()}
    for role, index in resolved.items():
        if index >= width:
            raise ParseError(
                f"the {role} column is index {index} but rows have {width} cells", file=path, location="row 1"
            )
    box_format = check_box_roles(path, resolved, box_format, box_formats)
    mapped = set(resolved.values())
    return ColumnMapping(
        table=Table(path, delimiter, header, len(header) if header is not None else width, decimal),
        columns=resolved,
        box_format=box_format,
        normalized=bool(normalized),
        count_columns=resolve_extra_columns(path, count_specs, header, mapped, width, "--count-columns"),
        label_columns=resolve_extra_columns(path, label_specs, header, mapped, width, "--label-columns"),
        default_split=default_split,
    )


# ---------------------------------------------------------------------------------------------- image cells

#: The errors ``Path.is_file`` reads as "no such file" (it raises the others, e.g. a denied search).
_ABSENT_ERRNOS = frozenset((errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP))


def find_table_image(root: Path, name: str, prefixes: Sequence[str]) -> str | None:
    """The path relative to ``root`` of the image a row names, trying each of ``prefixes`` in order and,
    for a name without an image suffix, each common image extension; ``None`` if absent."""
    for prefix in prefixes:
        candidate = prefix + name
        if (root / candidate).is_file():
            return candidate
        if PurePosixPath(name).suffix.lower() not in IMAGE_SUFFIXES:
            for extension in IMAGE_EXTENSIONS:
                if (root / (candidate + extension)).is_file():
                    return candidate + extension
    return None


def _stat_is(path: str, kind: int) -> bool:
    """``Path.is_file``/``is_dir`` on a string path: the same answers and the same errors, without ``Path``."""
    try:
        return stat.S_IFMT(os.stat(path).st_mode) == kind
    except OSError as exc:
        if exc.errno in _ABSENT_ERRNOS:
            return False
        raise
    except ValueError:
        return False


class ImageFinder:
    """:func:`find_table_image` with a fraction of its system calls, prefixes formatted per split.

    Each candidate is one ``stat`` of a string path (``Path`` objects cost more than the call), and
    whether a directory exists is asked once: the ``<split>/`` and ``images/`` candidates of a table
    kept beside its images cost no system call per image. Directories are looked at in the order
    :func:`find_table_image` looks at them, so it meets the same errors (a directory it may not search).
    """

    def __init__(self, root: Path, prefixes: Sequence[str]) -> None:
        self.root = root
        self.templates = prefixes  # "{split}" stands for the row's split
        self.base = os.path.join(str(root), "")
        self.directories: dict[str, bool] = {}  # relative directory -> whether it exists
        self.prefixes: dict[str, list[str]] = {}  # split -> its candidate prefixes

    def find(self, name: str, split: str) -> str | None:
        """What :func:`find_table_image` answers for ``name`` in ``split``."""
        prefixes = self.prefixes.get(split)
        if prefixes is None:
            prefixes = self.prefixes[split] = [prefix.format(split=split) for prefix in self.templates]
        if name.endswith(("/", "/.")):
            return find_table_image(self.root, name, prefixes)  # Path drops the trailing part, stat does not
        head, _, base = name.rpartition("/")
        dot = base.rfind(".")
        bare = not 0 < dot < len(base) - 1 or base[dot:].lower() not in IMAGE_SUFFIXES  # PurePath.suffix's rule
        directories = self.directories
        for prefix in prefixes:
            directory = prefix + head
            exists = directories.get(directory)
            if exists is None:
                exists = directories[directory] = _stat_is(self.base + directory, stat.S_IFDIR)
            if not exists:
                continue  # nothing is a file under a directory that is not there
            path = self.base + prefix + name
            if _stat_is(path, stat.S_IFREG):
                return prefix + name
            if bare:
                for extension in IMAGE_EXTENSIONS:
                    if _stat_is(path + extension, stat.S_IFREG):
                        return prefix + name + extension
        return None


# ---------------------------------------------------------------------------------------------- columns of a block


class Faults(dict[int, tuple[AnnonormError, bool]]):
    """The first problem of each bad row of a block: row index -> (error, whether the row named its
    classes before it). A mapping types a block step by step in the order a row is read, and the
    first step that finds a row bad words its problem; a group's first bad row drops the group."""

    def __init__(self, table: Table, numbers: Sequence[int]) -> None:
        super().__init__()
        self.table = table
        self.numbers = numbers
        self._cuts: list[int] | None = None

    def add(
        self, row: int, kind: type[AnnonormError], problem: str, column: int | None = None, named: bool = False
    ) -> None:
        """Note ``problem`` at row index ``row`` (``column`` names the cell) unless the row has one already."""
        if row not in self:
            where = self.table.where(self.numbers[row], column)
            self[row] = (kind(problem, file=self.table.path, location=where), named)
            self._cuts = None

    def first(self, start: int, end: int) -> int:
        """The first bad row of rows ``start`` to ``end`` (``end`` when there is none)."""
        if self._cuts is None:
            self._cuts = sorted(self)
        at = bisect_left(self._cuts, start)
        return self._cuts[at] if at < len(self._cuts) and self._cuts[at] < end else end


def _size_cells(columns: Sequence[list[str]], sides: tuple[int | None, int | None], row: int) -> tuple[str, str]:
    width, height = ("" if c is None else columns[c][row].strip() for c in sides)
    return width, height


def _row_sides(
    columns: Sequence[list[str]], sides: tuple[int | None, int | None], row: int, faults: Faults
) -> tuple[int | None, int | None]:
    """A row's width and height (``None`` when empty or unmapped); a bad cell is the row's fault."""
    values: list[int | None] = []
    decimal = faults.table.decimal
    for text, column, role in zip(_size_cells(columns, sides, row), sides, ("width", "height"), strict=True):
        problem = side_problem(text, role, decimal) if text else None
        if problem is not None:
            faults.add(row, ParseError, problem, column)
            return None, None
        values.append(int(PARSE_NUMBER[decimal](text)) if text else None)
    return values[0], values[1]


def group_sizes(
    columns: Sequence[list[str]],
    sides: tuple[int | None, int | None],
    starts: list[int],
    faults: Faults,
    fallback: Callable[[int], tuple[int, int] | None],
) -> list[tuple[int, int] | None]:
    """Each group's image size from the width and height columns ``sides``, else ``fallback(group)`` (the
    image's own header), and the faults of a first row with a bad size or of a later row giving another."""
    width, height = sides
    if width is None and height is None:
        return [None if start in faults else fallback(group) for group, start in enumerate(starts)]
    if width is not None and height is not None:
        try:  # every size a whole number, the same on every row of its group
            return list(group_sides(columns[width], columns[height], starts, PARSE_NUMBER[faults.table.decimal]))
        except Irregular:
            pass
    sizes: list[tuple[int, int] | None] = []
    for start in starts:
        given = None if start in faults else _row_sides(columns, sides, start, faults)
        if given is not None and start not in faults and (given[0] is None) != (given[1] is None):
            faults.add(start, InvalidDataError, "only one of width and height is given; expected both or neither")
        if given is not None and given[0] is not None and given[1] is not None:
            sizes.append((given[0], given[1]))
        else:
            sizes.append(None if start in faults else fallback(len(sizes)))
    group = 0
    changed = {
        row
        for c in sides
        if c is not None
        for row in compress(range(1, len(columns[c])), map(ne, columns[c][1:], columns[c][:-1]))
    }
    for row in sorted(changed.difference(starts)):
        while group + 1 < len(starts) and starts[group + 1] <= row:
            group += 1
        first, size = starts[group], sizes[group]
        texts = _size_cells(columns, sides, row)
        if first in faults or row in faults or texts == _size_cells(columns, sides, first) or not any(texts):
            continue
        given = _row_sides(columns, sides, row, faults)
        if row not in faults and size is not None and given != size:
            problem = f"image size {given[0]}x{given[1]} differs from {size[0]}x{size[1]} given on an earlier row"
            faults.add(row, InvalidDataError, problem, width)
    return sizes


def number_cells(
    columns: Sequence[list[str]], indices: Sequence[int], skip: Container[int], faults: Faults
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`number_block` cell by cell, one array row per column, and which rows hold numbers: a row
    whose cells are all empty holds none; one with an empty or bad cell is a fault (rows in ``skip``
    are not read)."""
    count, decimal = len(columns[indices[0]]), faults.table.decimal
    values = np.full((len(indices), count), math.nan)
    present = np.zeros(count, dtype=bool)
    for row in range(count):
        if row in skip or row in faults:
            continue
        pairs = [(index, columns[index][row].strip()) for index in indices]
        if not any(text for _, text in pairs):
            continue
        problems = [(index, "the box is incomplete: this coordinate is empty") for index, text in pairs if not text]
        problems = problems or [(index, p) for index, text in pairs if (p := number_problem(text, decimal))]
        if problems:
            faults.add(row, ParseError, problems[0][1], problems[0][0])
            continue
        values[:, row] = [finite_number(text, decimal) for _, text in pairs]
        present[row] = True
    return values, present


def bbox_cell_to_values(*, text: str, decimal: str = ".") -> tuple[float, float, float, float] | None:
    """Parse a cell holding 4 numbers (``"[0,1,1,2]"``, ``"1, 2, 3, 3"``, ``"0 0 1 1"``); ``None`` when empty.

    With ``decimal=","`` the numbers have decimal commas and are separated by ``;`` or spaces
    (``"0,1; 0,2; 0,5; 0,6"``). Raises :class:`ValueError` when the cell holds anything but 4 finite numbers.
    """
    inner = text.strip().strip("[]()").strip()
    if not inner:
        return None
    parts = [p for p in re.split(r"[,;\s]+" if decimal == "." else r"[;\s]+", inner) if p]
    if len(parts) != 4:
        raise ValueError(f"expected 4 numbers, found {len(parts)}")
    values = tuple(finite_number(p, decimal) for p in parts)
    return values[0], values[1], values[2], values[3]


def _bbox_values(text: str, decimal: str) -> object:  # for decimal_hint
    return bbox_cell_to_values(text=text, decimal=decimal)


def bbox_cells(cells: list[str], column: int, skip: Container[int], faults: Faults) -> tuple[np.ndarray, np.ndarray]:
    """The 4 numbers of each bbox cell (:func:`bbox_cell_to_values`), one array row per number, and which
    rows hold a box: an empty cell holds none, a bad one is its row's fault (rows in ``skip`` are not read)."""
    decimal = faults.table.decimal
    values = np.full((4, len(cells)), math.nan)
    present = np.zeros(len(cells), dtype=bool)
    for row, cell in enumerate(cells):
        if row in skip or row in faults:
            continue
        text = cell.strip()
        try:
            parsed = bbox_cell_to_values(text=text, decimal=decimal)
        except ValueError as exc:
            hint = decimal_hint(text, decimal, _bbox_values)
            faults.add(row, ParseError, f"{exc} in the bbox cell {text!r}{hint}", column)
            continue
        if parsed is not None:
            values[:, row], present[row] = parsed, True
    return values, present


def nonpositive_rows(cells: list[str], column: int, faults: Faults) -> set[int]:
    """Rows whose number cell is <= 0 (an empty cell is not); a cell that is no number is a fault."""
    rows = set()
    decimal = faults.table.decimal
    for row, cell in enumerate(cells):
        text = cell.strip()
        if not text or row in faults:
            continue
        problem = number_problem(text, decimal)
        if problem is not None:
            faults.add(row, ParseError, problem, column)
        elif finite_number(text, decimal) <= 0:
            rows.add(row)
    return rows


def count_cell(text: str, row: int, column: int, faults: Faults) -> int | None:
    """A count cell (a whole number >= 0); ``None``, the row's fault (after its classes), otherwise."""
    problem = number_problem(text, faults.table.decimal)
    if problem is not None:
        faults.add(row, ParseError, problem, column, named=True)
        return None
    value = finite_number(text, faults.table.decimal)
    problem = count_problem(value, text)
    if problem is not None:
        faults.add(row, InvalidDataError, problem, column, named=True)
        return None
    return int(value)


def first_named(named: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """``(row number, name)`` of each name's first row, in row order (``named`` is in group order)."""
    named.sort(key=itemgetter(0))  # folded groups interleave in the file; the sort is stable within a row
    firsts: dict[str, int] = {}
    for number, name in named:
        firsts.setdefault(name, number)
    return [(number, name) for name, number in firsts.items()]
