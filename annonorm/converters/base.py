"""The converter contract: what a format plugin is, and what annonorm expects of it.

A converter is one class in one module that knows one annotation format. It is registered under a
name in the ``annonorm.converters`` entry-point group (built-ins too, see :mod:`annonorm.registry`)::

    [project.entry-points."annonorm.converters"]
    myformat = "my_package.myformat:MyConverter"

A converter subclasses :class:`Converter` and provides, in this order inside its module:
constants, :meth:`Converter.sniff`, the mappings, :meth:`Converter.source_files`, :meth:`Converter.read`,
:meth:`Converter.write`; the class itself (its options and :class:`Capabilities`) comes last.
``docs/plugins.md`` is a complete small plugin.

Reading
    ``read(source, ctx)`` streams the source into ``ctx.sink`` (a :class:`~annonorm.sink.DatasetWriter`)
    and returns a :class:`ReadResult`. ``ctx`` is a :class:`ReadContext`: the resolved options
    (``ctx.options``), the sink, the source registry (``ctx.sources``: the files named with
    ``ctx.sink.add_source_file`` are hashed into the manifest's provenance), the image folder the
    user named (``ctx.images``, or ``None``: find it from ``source``) and the engine
    (``ctx.executor``). The reader declares categories (``sink.category(name, source_id)``) in the
    source's order, adds one canonical record dict per image (``sink.add(split, record)``, built
    with :func:`make_record`), writes masks where ``sink.mask_file(...)`` says and names the
    annotation files it read. It holds no more in memory than the format forces it to. Every
    source convention (COCO ``[x, y, w, h]``, VOC 1-based corners, normalized coordinates) is
    converted here, never later.

    A plugin written for annonorm 0.1, ``read(source, writer, *, images, options)``, keeps working:
    annonorm tells the two apart by the method's signature (:meth:`Converter.reads_v1`).

Writing
    ``write(dataset, out, options=...)`` writes an already validated normalized dataset into the
    empty directory ``out`` (annonorm renames it into place afterwards, atomically).

Source files
    ``source_files(source, options)`` names what a read of ``source`` depends on, never the images:
    the dependencies of a ``dvc stage``. The default is ``[source]``.

Errors
    Bad input raises an :class:`~annonorm.errors.AnnonormError` subclass that names the file, the
    place in it and what was expected: :class:`~annonorm.errors.ParseError` when the file cannot be
    read as the format, :class:`~annonorm.errors.InvalidDataError` when it reads but breaks a rule.
    A problem confined to one image is passed to ``sink.problem(error)`` instead, which raises or,
    with ``--on-error skip``, records it and lets the reader go on with the next image. Never let a
    ``KeyError``/``TypeError`` from malformed input escape: any exception of a converter that is
    neither an ``AnnonormError`` nor an ``OSError`` is reported as a bug of that converter, one line
    naming it and the distribution that installed it (:class:`annonorm.registry.PluginError`, exit 2).

    "This is not my format" is :class:`~annonorm.errors.FormatNotDetected` (what ``sniff`` answers
    with ``False``); a missing optional dependency is :class:`~annonorm.errors.MissingDependency`.
    Format detection skips only those two.

Options
    ``read_options`` / ``write_options`` declare :class:`Option` s, once: they become command-line
    options (``--column image=filename``, ``--no-masks``), keyword options of :func:`annonorm.convert`
    and :func:`annonorm.export`, and the argv of a ``dvc stage``. The rule of
    :meth:`Converter.resolve_options`: **an option not given is None** (a repeatable one the empty
    tuple), so the reader, a preset or the data decides, unless the option declares a ``default``,
    which is then what "not given" means and what the manifest records. Declare a default only when
    it is the one meaning of "not given" (COCO ``masks=True``, CSV ``preset="auto"``); never one that
    would override what a preset or the data says (CSV ``box_format``, ``normalized``, ``split``).

Capabilities
    ``capabilities`` (a :class:`Capabilities`) says what of a record survives a write -> read round
    trip through the format. One parametrized property test (``tests/test_roundtrip.py``) checks
    every installed converter that reads and writes against its declaration:
    ``read(write(r)) == project(r)`` and ``write(read(write(r))) == write(r)`` byte for byte.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from annonorm.engine import Executor, LocalExecutor
from annonorm.errors import UsageError
from annonorm.io import DatasetWriter, NormalizedSource
from annonorm.records import make_record

if TYPE_CHECKING:
    from annonorm.provenance import SourceRegistry

__all__ = ["Capabilities", "Converter", "Option", "ReadContext", "ReadResult", "make_record", "workers_option"]

_OPTION_TYPES = (str, int, float, bool, Path)


@dataclass(frozen=True)
class Option:
    """One option of a converter.

    ``name`` is a Python identifier (``no_masks`` is spelled ``--no-masks`` on the command line).
    A ``bool`` option with default ``True`` named ``masks`` is turned off with ``--no-masks``; one
    whose name says a negation already (``no_masks``, an alias of ``masks=none``) has no negated form.
    ``multiple`` options are repeatable and arrive as a tuple. ``default`` is what "not given"
    means; without one, an option not given is ``None`` (see the module docstring).
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
        if self.default is not None and (self.multiple or self._convert_one(self.default) != self.default):
            raise TypeError(f"option {self.name}: the default {self.default!r} is not one of its values")

    @property
    def flag(self) -> str:
        """The command-line spelling, e.g. ``--box-format``."""
        return "--" + self.name.replace("_", "-")

    @property
    def negatable(self) -> bool:
        """Whether the command line offers ``--no-<flag>`` too: a ``bool`` option not itself named ``no_...``."""
        return self.type is bool and not self.name.startswith("no_")

    @property
    def not_given(self) -> Any:
        """What the option is when not given: its declared default, else None (a repeatable one: ``()``)."""
        return () if self.multiple else self.default

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


def workers_option(work: str) -> Option:
    """The ``--workers N`` option, with the one meaning it has everywhere (DESIGN §4): N processes,
    0 = one per core (the default: not given), 1 = this process only. ``work`` says what they do."""
    return Option(
        "workers",
        f"Processes that {work}: N, 0 = one per core (default), 1 = this process only, nothing forks",
        type=int,
        affects_output=False,
    )


@dataclass
class ReadResult:
    """What a reader tells annonorm besides the records: dataset name, image root, dataset-level fields."""

    name: str
    image_root: Path
    attributes: dict[str, Any] | None = None


@dataclass(frozen=True)
class ReadContext:
    """Everything a reader gets besides its source (see the module docstring)."""

    #: The resolved read options (:meth:`Converter.resolve_options`): every declared name is present.
    options: Mapping[str, Any]
    #: Where the records, categories, masks and source names go.
    sink: DatasetWriter
    #: The image folder the user named (``--images``), or None: find it from the source.
    images: Path | None = None
    #: The engine the reader runs its parallel strategies on (:class:`annonorm.engine.Executor`):
    #: ``executor.execution`` holds ``--workers`` (None or 0: one per core, 1: this process only).
    executor: Executor = field(default_factory=LocalExecutor)

    @property
    def workers(self) -> int:
        """How many processes the reader may use (the engine's worker policy, resolved: at least 1)."""
        return self.executor.execution.processes

    @property
    def sources(self) -> SourceRegistry:
        """The source registry: what ``sink.add_source_file`` named, hashed for the manifest's provenance."""
        return self.sink.sources


@dataclass(frozen=True)
class Capabilities:
    """What of a record survives a write -> read round trip through a format.

    The round-trip property test draws datasets narrowed by these (nothing the writer must refuse)
    and compares what is read back with the drawn records projected onto what survives.
    """

    #: Free-form box attributes survive.
    box_attributes: bool = False
    #: Free-form record (image) attributes survive.
    image_attributes: bool = False
    #: Attribute names the format uses for fields of its own: they are not free-form.
    reserved_attributes: frozenset[str] = frozenset()
    #: Attributes the format writes on every box or record (COCO ``area``, VOC ``pose``): read back, not compared.
    added_attributes: frozenset[str] = frozenset()
    #: Counts beyond the boxes (crowd counts) survive.
    counts_only: bool = False
    #: Image-level labels (a class present without a box) survive.
    image_labels: bool = False
    #: The order of a record's labels survives (else only which labels there are).
    label_order: bool = True
    #: Record ids survive.
    ids: bool = False
    #: The reader gives each record an id of its own (VOC: the file's stem), not compared.
    reader_ids: bool = False
    #: Records of unknown image size (``width``/``height`` None) survive; else the writer needs sizes.
    unknown_sizes: bool = False
    #: Coordinates are whole pixels.
    integer_pixels: bool = False
    #: Boxes of zero width or height survive.
    empty_boxes: bool = True
    #: Image paths keep their folders (``train/a.jpg``); False: the format names images by file name alone.
    image_folders: bool = True
    #: None: coordinates come back exactly; N: they are stored as fractions of the image side with N decimals.
    fraction_decimals: int | None = None
    #: Reading needs the image files (to learn their sizes).
    needs_image_files: bool = False
    #: The categories and their order (unused ones too) survive without a class list (``--classes``).
    category_order: bool = False
    #: Box ``polygon`` rings survive (format version 2).
    polygons: bool = False
    #: Box ``rle`` masks survive.
    rle: bool = False
    #: Oriented boxes (``obb``) survive.
    obb: bool = False
    #: Box ``keypoints`` and the categories' keypoint names and skeletons survive.
    keypoints: bool = False
    #: Box ``score`` s (predictions) survive.
    scores: bool = False
    #: A box with a polygon is read back as the polygon's hull: the format keeps the outline, not a rectangle
    #: of its own (LabelMe, CVAT, Label Studio); the round trip compares the hull.
    shape_boxes: bool = False


class Converter:
    """Base class of every format plugin. See the module docstring for the contract."""

    #: Registry name, e.g. ``"coco"``.
    name: ClassVar[str] = ""
    #: One line saying what the format is.
    summary: ClassVar[str] = ""
    read_options: ClassVar[tuple[Option, ...]] = ()
    write_options: ClassVar[tuple[Option, ...]] = ()
    #: What survives a write -> read round trip (read by the round-trip property test).
    capabilities: ClassVar[Capabilities] = Capabilities()

    @classmethod
    def can_read(cls) -> bool:
        """Whether this converter implements :meth:`read`."""
        return cls.read is not Converter.read

    @classmethod
    def can_write(cls) -> bool:
        """Whether this converter implements :meth:`write`."""
        return cls.write is not Converter.write

    @classmethod
    def reads_v1(cls) -> bool:
        """Whether :meth:`read` is annonorm 0.1's ``read(source, writer, *, images, options)``."""
        parameters = list(inspect.signature(cls.read).parameters.values())[1:]  # after self
        keywords = {p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY}
        positional = [p.name for p in parameters if p.kind is not inspect.Parameter.KEYWORD_ONLY]
        return bool(keywords & {"images", "options"}) or positional[1:2] == ["writer"]

    @classmethod
    def sniff(cls, source: Path) -> bool:
        """Cheaply tell whether ``source`` looks like this format (a prefix of a file, a directory layout)."""
        return False

    @classmethod
    def source_files(cls, source: Path, options: Mapping[str, Any]) -> list[Path]:
        """The annotation files (or directories) a read of ``source`` depends on, never the images."""
        return [source]

    def read(self, source: Path, ctx: ReadContext) -> ReadResult:
        """Stream ``source`` into ``ctx.sink``."""
        raise NotImplementedError(f"the {self.name} converter cannot read")

    def write(self, dataset: NormalizedSource, out: Path, *, options: Mapping[str, Any]) -> None:
        """Write ``dataset`` in this format into the empty directory ``out``."""
        raise NotImplementedError(f"the {self.name} converter cannot write")

    @classmethod
    def resolve_options(cls, declared: Sequence[Option], given: Mapping[str, Any]) -> dict[str, Any]:
        """Check ``given`` against ``declared`` and convert types; an option not given is :attr:`Option.not_given`.

        ``None`` counts as not given. Unknown names are a usage error.
        """
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
                resolved[option.name] = option.not_given
        return resolved
