"""Typed JSON documents for readers: msgspec decoding with errors that name the JSON path, and extras kept.

A format that ships one JSON document (COCO, LabelMe, Label Studio, SA-1B) declares it as msgspec
structs that refuse unknown keys and decodes it with one :class:`TypedJson`: that is the fast path of
a well-formed file. When a file has unknown keys, it is decoded again with lenient variants of the
structs (made from them), and the unknown keys of every item of the listed arrays are collected as
*extras*, so that a reader can keep them as attributes. Whatever the structs refuse becomes one
:class:`~annonorm.errors.ParseError` naming the file, the JSON path (``images[3].width``) and what
was found there (``expected int, got "8"``).

The decoded items of an array become columns and join on ids at numpy speed: those helpers live in
:mod:`annonorm.sources.columns` (format-agnostic) and are re-exported here.
"""

from __future__ import annotations

import codecs
import re
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Generic, TypeVar

import msgspec
from msgspec import UNSET

from annonorm.errors import AnnonormError, ParseError
from annonorm.fsutil import open_regular
from annonorm.sources.columns import column, field_columns, first_repeat, flag_column, positions

__all__ = [
    "Decoded",
    "JsonProblem",
    "TypedJson",
    "column",
    "describe_json",
    "exact_numbers",
    "field_columns",
    "first_repeat",
    "flag_column",
    "fresh_ids",
    "is_empty_json",
    "json_head",
    "json_value_at",
    "positions",
    "present_fields",
    "strip_bom",
    "validation_problem",
    "write_json_array",
]

T = TypeVar("T")

_MSGSPEC_PATH = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_PATH_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_ANY = msgspec.json.Decoder()
_RAW_TOP = msgspec.json.Decoder(dict[str, msgspec.Raw])
_RAW_ITEMS = msgspec.json.Decoder(list[dict[str, msgspec.Raw]])
_JSON = msgspec.json.Encoder()


def strip_bom(raw: bytes) -> bytes:
    """``raw`` without a UTF-8 byte order mark: Windows tools write one, RFC 8259 lets a parser ignore it."""
    return raw.removeprefix(codecs.BOM_UTF8)


def describe_json(value: Any) -> str:
    """A short description of a decoded JSON value for an error: ``an array of 3``, ``an object``, ``"8"``."""
    if isinstance(value, list):
        return f"an array of {len(value)}"
    if isinstance(value, dict):
        return "an object"
    text = msgspec.json.encode(value).decode()
    return text if len(text) <= 40 else text[:37] + "..."


def json_value_at(document: Any, path: str) -> Any:
    """The value at a msgspec JSON path (``.images[0].width``) of a decoded document; ``UNSET`` if not there."""
    for key, index in _PATH_STEP.findall(path):
        try:
            document = document[key] if key else document[int(index)]
        except (KeyError, IndexError, TypeError):
            return UNSET
    return document


@dataclass(frozen=True)
class JsonProblem:
    """What a typed decode refused: where (``images[0].width``, ``""`` for the document) and why."""

    path: str
    #: msgspec's message, lower case, ending ``got <what was found>`` where a value was found.
    message: str
    #: The value found at ``path`` (``UNSET`` when there is none, e.g. a missing key).
    found: Any


def validation_problem(document: Any, error: msgspec.ValidationError) -> JsonProblem:
    """A msgspec validation error of ``document`` (decoded as plain JSON, or ``UNSET``) as a :class:`JsonProblem`."""
    match = _MSGSPEC_PATH.match(str(error))
    message = match.group("message") if match else str(error)
    path = (match.group("path") if match else None) or ""
    message = message.replace("`", "")
    message = message[:1].lower() + message[1:]
    found = UNSET if document is UNSET else json_value_at(document, path)
    if found is not UNSET and "object contains unknown field" not in message:
        message = f"{message.split(', got ')[0]}, got {describe_json(found)}"
    return JsonProblem(path.lstrip("."), message, found)


@dataclass
class Decoded(Generic[T]):
    """A decoded document and, when it had unknown keys, those keys."""

    document: T
    #: Per array of :attr:`TypedJson.items`: the unknown keys of each item, in order (``None``: none anywhere).
    extras: dict[str, list[dict[str, Any]]] | None = None
    #: Top-level keys that are none of the item arrays (``info``, ``licenses``, ...), decoded as plain JSON.
    top_extras: dict[str, Any] = field(default_factory=dict)


class TypedJson(Generic[T]):
    """How one format's JSON document decodes (see the module docstring).

    ``strict`` is the document struct, unknown keys refused; ``items`` maps each of its top-level
    arrays (fields typed ``list[Item]``) to the item struct, whose fields are the known keys: the
    lenient variant allows unknown keys there and at the top, and collects them. ``what`` names the
    document in errors (``COCO``). ``refuse``, given the bytes and the plain decoded document (``UNSET``
    when even that fails) of a file the strict structs refused, says why it is no such document at all
    (another format, an unsupported variant), else ``None``.
    ``reword`` rewords a :class:`JsonProblem` in the format's terms (``None``: keep it).
    """

    def __init__(
        self,
        strict: type[T],
        *,
        items: Mapping[str, type[msgspec.Struct]],
        what: str,
        refuse: Callable[[bytes, Any], str | None] | None = None,
        reword: Callable[[JsonProblem], str | None] | None = None,
    ) -> None:
        self.strict = msgspec.json.Decoder(strict)
        self.lenient = msgspec.json.Decoder(_lenient(strict, items))
        self.items = {key: frozenset(struct.__struct_fields__) for key, struct in items.items()}
        self.what = what
        self.refuse = refuse
        self.reword = reword

    def decode(self, raw: bytes, *, file: Path) -> Decoded[T]:
        """Decode ``raw`` (a byte order mark is ignored); a ParseError naming ``file`` and the place if it cannot."""
        raw = strip_bom(raw)
        try:
            return self._decode(raw, file)
        except UnicodeDecodeError as exc:  # msgspec raises it for invalid UTF-8 inside a string
            message = f"not valid JSON: a string is not UTF-8 ({exc.reason}: {exc.object!r})"
            raise ParseError(message, file=file) from None
        except RecursionError:
            message = f"not valid JSON for {self.what}: nested too deeply; expected arrays of flat objects"
            raise ParseError(message, file=file) from None

    def _decode(self, raw: bytes, file: Path) -> Decoded[T]:
        try:
            return Decoded(self.strict.decode(raw))
        except msgspec.ValidationError as exc:
            # Without its traceback: kept in a local, it would tie this frame (and ``raw``) into a
            # cycle that the run's paused collector never frees (see Execution.running).
            strict_error = exc.with_traceback(None)
        except msgspec.DecodeError as exc:
            raise ParseError(f"not valid JSON ({exc})", file=file) from None
        try:
            plain = _ANY.decode(raw)
        except msgspec.DecodeError:  # valid up to the refused value, broken after it
            plain = UNSET
        refused = self.refuse(raw, plain) if self.refuse is not None else None
        if refused is not None:
            raise ParseError(refused, file=file)
        if "unknown field" not in str(strict_error):
            raise self._problem(file, plain, strict_error) from None
        try:
            document = self.lenient.decode(raw)
        except msgspec.ValidationError as exc:
            raise self._problem(file, plain, exc) from None
        top = _RAW_TOP.decode(raw)
        extras = {key: _extras(top[key], core) for key, core in self.items.items() if key in top}
        top_extras = {key: _ANY.decode(value) for key, value in top.items() if key not in self.items}
        return Decoded(document, extras, top_extras)

    def _problem(self, file: Path, plain: Any, error: msgspec.ValidationError) -> ParseError:
        problem = validation_problem(plain, error)
        message = (self.reword(problem) if self.reword is not None else None) or problem.message
        return ParseError(message, file=file, location=problem.path or None)


def _lenient(strict: type[T], items: Mapping[str, type[msgspec.Struct]]) -> type[T]:
    """A subclass of ``strict`` (and of its ``items`` structs) that allows unknown keys."""
    lenient = {
        key: types.new_class(item.__name__, (item,), {"forbid_unknown_fields": False}) for key, item in items.items()
    }
    fields = {info.name: info for info in msgspec.structs.fields(strict)}  # type: ignore[arg-type]

    def body(namespace: dict[str, Any]) -> None:
        namespace["__annotations__"] = {key: list[item] for key, item in lenient.items()}  # type: ignore[valid-type]
        for key in lenient:
            default = fields[key]
            if default.default is not msgspec.NODEFAULT:
                namespace[key] = default.default
            elif default.default_factory is not msgspec.NODEFAULT:
                namespace[key] = msgspec.field(default_factory=default.default_factory)

    return types.new_class(strict.__name__, (strict,), {"forbid_unknown_fields": False}, body)


def present_fields(item: msgspec.Struct, leave_out: frozenset[str]) -> dict[str, Any]:
    """The fields of a decoded struct that the JSON had (not ``UNSET``), except those in ``leave_out``."""
    return {
        name: value
        for name in item.__struct_fields__
        if name not in leave_out and (value := getattr(item, name)) is not UNSET
    }


def _extras(items: msgspec.Raw, core: frozenset[str]) -> list[dict[str, Any]]:
    """The keys outside ``core`` of every object of a raw JSON array (already accepted by the lenient decode)."""
    return [{k: _ANY.decode(v) for k, v in item.items() if k not in core} for item in _RAW_ITEMS.decode(items)]


# ------------------------------------------------------------------------------- sniffing, columns, writing


def json_head(path: Path, size: int) -> bytes:
    """The first ``size`` bytes of a regular file, without a byte order mark or leading space (``b""``: unreadable)."""
    try:
        with open_regular(path, "JSON file") as stream:
            return stream.read(size).removeprefix(codecs.BOM_UTF8).lstrip()
    except (AnnonormError, OSError):
        return b""


#: A number the 6-decimal rounding changes, or a negative zero: written with an exponent, more than 6
#: decimals, or as -0 (a JSON text without one decodes to floats that are already canonical).
_LONG_FRACTION = re.compile(rb"\.\d{7}")
_NEGATIVE_ZERO = re.compile(rb"-0(?:\.0*)?(?![\d.])")


def exact_numbers(raw: bytes) -> bool:
    """Whether every number of a JSON text of numbers decodes to a coordinate the rounding leaves as it is."""
    if b"e" in raw or b"E" in raw or (b"-0" in raw and _NEGATIVE_ZERO.search(raw)):
        return False
    return _LONG_FRACTION.search(raw) is None


def is_empty_json(raw: bytes | msgspec.Raw) -> bool:
    """Whether raw JSON holds nothing (``[]``, ``[[]]``, ``{}``, ``null``, whitespace inside)."""
    return len(raw) < 32 and bytes(raw).translate(None, b" \t\r\n") in (b"[]", b"[[]]", b"{}", b"null")


def fresh_ids(values: Iterable[Any]) -> Iterator[int]:
    """Keep integer ids on first use; give every missing, non-integer or repeated one the next free integer."""
    items = list(values)
    used = [v for v in items if isinstance(v, int) and not isinstance(v, bool)]
    following = max(used, default=0) + 1
    seen: set[int] = set()
    for value in items:
        if isinstance(value, int) and not isinstance(value, bool) and value not in seen:
            seen.add(value)
            yield value
        else:
            yield following
            following += 1


def write_json_array(stream: IO[bytes], key: str, items: Iterable[Any], *, first: bool = False) -> None:
    """One ``"key": [...]`` member of a JSON object being streamed, one item per line (``first``: no comma)."""
    stream.write((b"" if first else b",\n") + _JSON.encode(key) + b": [")
    count = 0
    for count, item in enumerate(items, 1):
        stream.write((b"\n" if count == 1 else b",\n") + _JSON.encode(item))
    stream.write(b"\n]" if count else b"]")
