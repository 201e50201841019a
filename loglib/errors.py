"""Exceptions and warnings raised by loglib (factored out so every layer can import them)."""

from __future__ import annotations


class LoglibError(Exception):
    """Base class of every error loglib raises on purpose."""


class FormatError(LoglibError, ValueError):
    """The input is not in the format that was asked for, or no known format fits it.

    The message names the file, the line and what was tried.
    """


class TimezoneError(LoglibError, ValueError):
    """A timestamp cannot be placed in UTC: it is naive and no ``tz=`` was given, or its
    zone abbreviation is ambiguous or unknown."""


class ParseError(LoglibError, ValueError):
    """Raised by a reader called with ``strict=True`` when a line does not parse.

    Attributes ``file``, ``line`` and ``reason`` name the first bad line.
    """

    def __init__(self, message: str, *, file: str, line: int, reason: str) -> None:
        super().__init__(message)
        self.file = file
        self.line = line
        self.reason = reason


class NoDataError(LoglibError, ValueError):
    """The paths given match no file, or the files hold no entries at all."""


class LoglibWarning(UserWarning):
    """Base class of loglib's warnings."""


class RejectedLinesWarning(LoglibWarning):
    """Some input lines did not parse; ``loglib.rejects(frame)`` lists them with file and line."""
