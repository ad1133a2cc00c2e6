"""The converter registry: a lazy name -> "module:Class" table plus the ``annonorm.converters`` entry points.

Built-in converters are declared in ``pyproject.toml`` under the same entry-point group that
third-party packages use, so both come through one door. :data:`BUILTIN` repeats them for a
source checkout that was never installed. Nothing is imported until a converter is asked for.
A plugin may not silently take a name that another converter already has. :func:`describe`
lists what each installed converter can do (``annonorm formats``).

A converter's own exception that is neither an :class:`~annonorm.errors.AnnonormError` nor an
``OSError`` is a bug in that converter: :func:`blame` turns it into a :class:`PluginError` naming
the converter and the distribution that installed it (:func:`distribution`).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING

from annonorm.errors import AnnonormError, FormatNotDetected, MissingDependency, UnknownFormatError, UsageError

if TYPE_CHECKING:
    from annonorm.converters.base import Converter, Option

GROUP = "annonorm.converters"

#: Built-in converters, as their entry points declare them.
BUILTIN: dict[str, str] = {
    "coco": "annonorm.converters.coco:CocoConverter",
    "voc": "annonorm.converters.voc:VocConverter",
    "csv": "annonorm.converters.csvtable:CsvConverter",
    "yolo": "annonorm.converters.yolo:YoloConverter",
}


class PluginError(AnnonormError):
    """A converter raised an exception of its own (not an AnnonormError): a bug in that plugin (exit 2).

    The original exception is the ``__cause__``; ``annonorm --debug`` prints its traceback.
    """

    def __init__(self, name: str, error: Exception) -> None:
        dist, version = distribution(name)
        what = " ".join(f"{type(error).__name__}: {error}".split())
        hint = "" if os.environ.get("ANNONORM_DEBUG") else " (run with --debug for the traceback)"
        super().__init__(f"the converter plugin {name!r} (distribution {dist} {version}) failed: {what}{hint}")
        self.plugin = name
        self.distribution = dist


@cache
def available() -> dict[str, str]:
    """Every installed converter: name -> ``"module:Class"`` target, built-ins first, then plugins by name."""
    table = dict(BUILTIN)
    for entry in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        existing = table.get(entry.name)
        if existing is not None and existing != entry.value:
            raise UsageError(
                f"two converters claim the name {entry.name!r}: {existing} and {entry.value}; "
                "uninstall one of the packages that provide them"
            )
        table[entry.name] = entry.value
    return table


def names() -> list[str]:
    """Names of the installed converters."""
    return list(available())


@cache
def get(name: str) -> type[Converter]:
    """Import and return the converter class registered as ``name``."""
    from annonorm.converters.base import Converter

    name = canonical_name(name)
    target = available()[name]
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or "a module"
        if missing == module_name or module_name.startswith(f"{missing}."):
            raise UsageError(f"the {name!r} converter's module {module_name} is not importable") from None
        raise MissingDependency(missing, name, f"the {name!r} converter") from None
    converter = getattr(module, attribute, None)
    if not (isinstance(converter, type) and issubclass(converter, Converter)):
        raise AnnonormError(f"{target} (converter {name!r}) is not an annonorm Converter subclass")
    return converter


def distribution(name: str) -> tuple[str, str]:
    """``(distribution, version)`` that installed the converter ``name``; the built-ins are annonorm's."""
    target = available().get(name)
    if target is not None and BUILTIN.get(name) == target:
        # The package is imported before any of its modules (so no import of annonorm's lazy API here).
        return "annonorm", str(getattr(sys.modules["annonorm"], "__version__", "(unknown)"))
    for entry in entry_points(group=GROUP, name=name):
        dist = getattr(entry, "dist", None)
        if entry.value == target and dist is not None:
            return dist.name, dist.version
    return "unknown", "(not installed)"


@contextlib.contextmanager
def blame(name: str) -> Iterator[None]:
    """Run a converter's code: an exception of its own becomes one :class:`PluginError` naming it.

    An :class:`~annonorm.errors.AnnonormError` (the contract's way to say what is wrong with the
    input) and an ``OSError`` (a file that cannot be read, worded by the command line) pass as they are.
    """
    try:
        yield
    except (AnnonormError, OSError):
        raise
    except Exception as error:
        raise PluginError(name, error) from error


def canonical_name(name: str) -> str:
    """The registered spelling of ``name`` (format names are case-insensitive); unknown names are an error."""
    table = available()
    if name in table:
        return name
    if name.lower() in table:
        return name.lower()
    raise UnknownFormatError(f"unknown format {name!r}; installed: {', '.join(table)}")


def detect(source: Path) -> str:
    """The name of the first installed converter whose ``sniff`` recognizes ``source``.

    Converters are asked in registry order (built-ins first). One whose dependencies are missing,
    or whose sniff says "not mine" (``False`` or :class:`FormatNotDetected`), is skipped. When none
    recognizes it, the error lists the formats tried and, for a shape that is known but not readable
    yet (a COCO results list, a LabelMe JSON file...), says what it is.
    """
    tried = []
    for name in names():
        try:
            converter = get(name)
            with blame(name):
                if converter.sniff(source):
                    return name
        except (FormatNotDetected, MissingDependency):
            pass
        tried.append(name)
    from annonorm.shapes import shape_hint

    hint = shape_hint(source)
    raise FormatNotDetected(
        f"no installed converter recognizes this (tried {', '.join(tried)}); {hint}"
        f"name the format: annonorm convert {'|'.join(names())} SOURCE ...",
        file=source,
    )


@dataclass(frozen=True)
class OptionInfo:
    """One declared option of a converter, as a user sees it."""

    flag: str
    help: str
    #: The values it accepts, when they are a fixed set.
    choices: tuple[str, ...] | None = None


@dataclass(frozen=True)
class FormatInfo:
    """What one installed converter is and can do (``annonorm formats``)."""

    name: str
    summary: str = ""
    read: bool = False
    write: bool = False
    read_options: tuple[OptionInfo, ...] = ()
    write_options: tuple[OptionInfo, ...] = ()
    #: Why the converter cannot be loaded (a missing dependency, a broken plugin); None when it can.
    error: str | None = None


def _options(declared: tuple[Option, ...]) -> tuple[OptionInfo, ...]:
    return tuple(OptionInfo(flag=o.flag, help=o.help, choices=o.choices) for o in declared)


def describe() -> list[FormatInfo]:
    """Every installed converter in registry order: its summary, whether it reads and writes, its options.

    A converter that cannot be loaded is listed with the reason in ``error`` rather than failing the listing.
    """
    described = []
    for name in names():
        try:
            converter = get(name)
        except AnnonormError as error:
            described.append(FormatInfo(name=name, error=str(error)))
            continue
        described.append(
            FormatInfo(
                name=name,
                summary=converter.summary,
                read=converter.can_read(),
                write=converter.can_write(),
                read_options=_options(converter.read_options),
                write_options=_options(converter.write_options),
            )
        )
    return described
