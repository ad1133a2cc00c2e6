"""The converter contract: what a format plugin is, and what annonorm expects of it.

A converter is one class in one module that knows one annotation format. It is registered under a
name in the ``annonorm.converters`` entry-point group (built-ins too, see :mod:`annonorm.registry`)::

    [project.entry-points."annonorm.converters"]
    myformat = "my_package.myformat:MyConverter"

A converter subclasses :class:`Converter` and provides, in this order inside its module:
constants, :meth:`Converter.sniff`, :meth:`Converter.read`, :meth:`Converter.write`.

Reading
    ``read(source, writer, images=..., options=...)`` streams the source into a
    :class:`~annonorm.io.DatasetWriter`: it declares categories (``writer.category(name, source_id)``)
    in the source's order, adds one canonical record dict per image (``writer.add(split, record)``,
    build it with :func:`make_record`), writes masks where ``writer.mask_file(...)`` says, names the
    annotation files it read (``writer.add_source_file``), and returns a :class:`ReadResult`. It
    holds no more in memory than the format forces it to. Every source convention (COCO
    ``[x, y, w, h]``, VOC 1-based corners, normalized coordinates) is converted here, never later.

Writing
    ``write(dataset, out, options=...)`` writes an already validated normalized dataset into the
    empty directory ``out`` (annonorm renames it into place afterwards, atomically).

Errors
    Bad input raises an :class:`~annonorm.errors.AnnonormError` subclass that names the file, the
    place in it and what was expected: :class:`~annonorm.errors.ParseError` when the file cannot be
    read as the format, :class:`~annonorm.errors.InvalidDataError` when it reads but breaks a rule.
    A problem confined to one image is passed to ``writer.problem(error)`` instead, which raises or,
    with ``--on-error skip``, records it and lets the reader go on with the next image. Never let a
    ``KeyError``/``TypeError`` from malformed input escape.

    "This is not my format" is :class:`~annonorm.errors.FormatNotDetected` (what ``sniff`` answers
    with ``False``); a missing optional dependency is :class:`~annonorm.errors.MissingDependency`.
    Format detection skips only those two.

Options
    ``read_options`` / ``write_options`` declare :class:`Option` s; they become command-line options
    (``--column image=filename``, ``--no-masks``) and keyword options of :func:`annonorm.convert`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from annonorm.errors import UsageError
from annonorm.io import DatasetWriter, NormalizedSource

__all__ = ["Converter", "Option", "ReadResult", "make_record"]

_OPTION_TYPES = (str, int, float, bool, Path)


@dataclass(frozen=True)
class Option:
    """One option of a converter.

    ``name`` is a Python identifier (``no_masks`` is spelled ``--no-masks`` on the command line).
    A ``bool`` option with default ``True`` named ``masks`` is turned off with ``--no-masks``.
    ``multiple`` options are repeatable and arrive as a tuple.
    """

    name: str
    help: str
    type: type = str
    default: Any = None
    choices: tuple[str, ...] | None = None
    multiple: bool = False
    #: False for options that change how the work is done but not the output (``workers``); such
    #: options are not recorded in the manifest, so manifests do not differ between machines.
    affects_output: bool = True

    def __post_init__(self) -> None:
        if self.type not in _OPTION_TYPES:
            raise TypeError(f"option {self.name}: type must be one of {_OPTION_TYPES}")

    @property
    def flag(self) -> str:
        """The command-line spelling, e.g. ``--box-format``."""
        return "--" + self.name.replace("_", "-")

    def convert(self, value: Any) -> Any:
        """Turn a raw value (a string from the command line, or a Python value) into the option's type."""
        if self.multiple:
            values = [value] if isinstance(value, (str, Path)) or not isinstance(value, Iterable) else list(value)
            return tuple(self._convert_one(v) for v in values)
        return self._convert_one(value)

    def _convert_one(self, value: Any) -> Any:
        if value is None:
            return None
        if self.type is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off"}:
                return False
            raise UsageError(f"option {self.flag}: expected true or false, got {value!r}")
        try:
            converted = self.type(value)
        except (TypeError, ValueError):
            raise UsageError(f"option {self.flag}: expected {self.type.__name__}, got {value!r}") from None
        if self.choices is not None and converted not in self.choices:
            raise UsageError(f"option {self.flag}: expected one of {', '.join(self.choices)}, got {value!r}")
        return converted


@dataclass
class ReadResult:
    """What a reader tells annonorm besides the records: dataset name, image root, dataset-level fields."""

    name: str
    image_root: Path
    attributes: dict[str, Any] | None = None


class Converter:
    """Base class of every format plugin. See the module docstring for the contract."""

    #: Registry name, e.g. ``"coco"``.
    name: ClassVar[str] = ""
    #: One line saying what the format is.
    summary: ClassVar[str] = ""
    read_options: ClassVar[tuple[Option, ...]] = ()
    write_options: ClassVar[tuple[Option, ...]] = ()

    @classmethod
    def can_read(cls) -> bool:
        """Whether this converter implements :meth:`read`."""
        return cls.read is not Converter.read

    @classmethod
    def can_write(cls) -> bool:
        """Whether this converter implements :meth:`write`."""
        return cls.write is not Converter.write

    @classmethod
    def sniff(cls, source: Path) -> bool:
        """Cheaply tell whether ``source`` looks like this format (a prefix of a file, a directory layout)."""
        return False

    def read(
        self, source: Path, writer: DatasetWriter, *, images: Path | None, options: Mapping[str, Any]
    ) -> ReadResult:
        """Stream ``source`` into ``writer``."""
        raise NotImplementedError(f"the {self.name} converter cannot read")

    def write(self, dataset: NormalizedSource, out: Path, *, options: Mapping[str, Any]) -> None:
        """Write ``dataset`` in this format into the empty directory ``out``."""
        raise NotImplementedError(f"the {self.name} converter cannot write")

    @classmethod
    def resolve_options(cls, declared: Sequence[Option], given: Mapping[str, Any]) -> dict[str, Any]:
        """Check ``given`` against ``declared``; fill defaults; convert types. Unknown names are a usage error."""
        by_name = {option.name: option for option in declared}
        unknown = sorted(set(given) - set(by_name))
        if unknown:
            known = ", ".join(o.flag for o in declared) or "none"
            raise UsageError(f"the {cls.name} format has no option {unknown[0]!r} (its options: {known})")
        resolved = {}
        for option in declared:
            if option.name in given and given[option.name] is not None:
                resolved[option.name] = option.convert(given[option.name])
            else:
                resolved[option.name] = () if option.multiple and option.default is None else option.default
        return resolved


def make_record(
    *,
    image: str,
    width: int | None,
    height: int | None,
    boxes: Sequence[dict[str, Any]] = (),
    labels: Iterable[str] | None = None,
    counts: Mapping[str, int] | None = None,
    mask: str | None = None,
    id: int | str | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Build a canonical record dict.

    ``counts`` defaults to the number of boxes per class; when given, each class's count is raised
    to at least its number of boxes. ``labels`` defaults to the boxed and counted classes in
    first-seen order; given labels are kept in their order, boxed classes missing from them appended.
    """
    per_class: dict[str, int] = {}
    for box in boxes:
        per_class[box["name"]] = per_class.get(box["name"], 0) + 1
    if counts is not None:
        merged = dict(counts)
        for name, boxed in per_class.items():
            merged[name] = max(merged.get(name, 0), boxed)
        per_class = merged
    names = dict.fromkeys(labels or ())
    names.update((box["name"], None) for box in boxes)
    names.update((name, None) for name, count in per_class.items() if count > 0)
    record: dict[str, Any] = {"image": image, "width": width, "height": height, "labels": list(names)}
    record["counts"] = per_class
    record["boxes"] = list(boxes)
    if mask is not None:
        record["mask"] = mask
    if id is not None:
        record["id"] = id
    if attributes:
        record["attributes"] = dict(attributes)
    return record
