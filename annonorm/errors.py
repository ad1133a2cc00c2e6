"""The annonorm error family.

Every problem that comes from the data or from how annonorm was called is raised as an
:class:`AnnonormError` (or a subclass). Each carries the file it concerns, the place inside
that file (a line number, a JSON path, an XML element, a CSV row) and a message that says what
was found and what was expected. The command line turns one into a single line of text and an
exit code; a Python caller catches :class:`AnnonormError` and never sees a bare ``KeyError``.

Exit codes: 1 the data is invalid, 2 bad usage or unreadable input.
"""

from __future__ import annotations

from pathlib import Path

EXIT_INVALID = 1
EXIT_UNREADABLE = 2


class AnnonormError(Exception):
    """Base of every error annonorm raises on purpose.

    ``file`` is the path concerned (or ``None``), ``location`` the place in it
    (``"line 12"``, ``"annotations[3].bbox"``, ``"row 7"``, ...), ``message`` the explanation.
    """

    exit_code: int = EXIT_UNREADABLE

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        location: str | None = None,
        image: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = str(file) if file is not None else None
        self.location = location
        #: The source's name of the image the problem concerns, where there is one (``skipped.jsonl`` lists it).
        self.image = image

    def __reduce__(self) -> tuple[object, ...]:
        # Keep file, location and image when an error crosses a process pool (pickling).
        return (_rebuild, (type(self), self.message, self.file, self.location, self.image))

    def __str__(self) -> str:
        where = ":".join(part for part in (self.file, self.location) if part)
        return f"{where}: {self.message}" if where else self.message

    def to_dict(self) -> dict[str, str | int | None]:
        """A JSON-ready description (used by ``--format json``)."""
        return {
            "error": type(self).__name__,
            "file": self.file,
            "location": self.location,
            "image": self.image,
            "message": self.message,
            "exit_code": self.exit_code,
        }


def _rebuild(
    kind: type[AnnonormError], message: str, file: str | None, location: str | None, image: str | None = None
) -> AnnonormError:
    error = AnnonormError.__new__(kind)
    AnnonormError.__init__(error, message, file=file, location=location, image=image)
    return error


class ParseError(AnnonormError):
    """An input file cannot be read as the format it should be in (exit 2)."""


class InvalidDataError(AnnonormError):
    """The input was read but breaks a rule of the format (exit 1)."""

    exit_code = EXIT_INVALID


class UnsafePathError(AnnonormError):
    """A path in the data points outside the directory it must stay in (exit 2)."""


class OutputExistsError(AnnonormError):
    """The output path exists and ``force`` was not given (exit 2)."""


class UsageError(AnnonormError):
    """annonorm was called with arguments that cannot work (exit 2)."""


class UnknownFormatError(UsageError):
    """No converter of that name is installed."""


class FormatNotDetected(AnnonormError):
    """A converter's sniff says the source is not its format (the dispatcher tries the next one)."""


class MissingDependency(AnnonormError, ImportError):
    """An optional dependency is needed; the message says what to ``pip install``.

    It is also an :class:`ImportError`, so ``try: import annonorm.torch except ImportError`` and
    ``pytest.importorskip`` keep working.
    """

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        super().__init__(f"{purpose} needs {package}: pip install 'annonorm[{extra}]'")
        self.package = package
        self.extra = extra
