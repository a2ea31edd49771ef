"""Exceptions raised by sqltrack.

Every error sqltrack raises on purpose derives from :class:`SQLTrackError`. Errors about
bad input also derive from the matching built-in (``ValueError``, ``LookupError``), so
code that already catches those keeps working.
"""

from __future__ import annotations

import os
import sys
import warnings

__all__ = [
    "ConfigError",
    "ConnectionFailed",
    "ConnectionLost",
    "DatabaseError",
    "InvalidMetricName",
    "InvalidValue",
    "LockTimeout",
    "NotFound",
    "PermissionDenied",
    "SQLTrackError",
    "SQLTrackWarning",
    "SchemaError",
]


class SQLTrackError(Exception):
    """Base class of all sqltrack errors."""


class ConfigError(SQLTrackError, ValueError):
    """The configuration is invalid: unknown engine, missing config file, bad parameter."""


class ConnectionFailed(SQLTrackError):
    """The database could not be reached. The message never contains a password."""

    #: ``"transient"``: the server answered that it is starting up or shutting down;
    #: ``"busy"``: the server (or a pooler) is full: too many clients;
    #: ``"permanent"``: a configuration error (authentication, unknown database, role or
    #: host), never worth retrying; ``"unavailable"``: no server answered.
    kind: str = "unavailable"


class ConnectionLost(ConnectionFailed):
    """The connection broke and the operation could not be completed.

    Outside a ``with client:`` block sqltrack reconnects and retries for up to
    ``reconnect_timeout`` seconds first. Inside one it raises this at once: the block's
    transaction is gone and cannot be replayed.
    """


class DatabaseError(SQLTrackError):
    """The database refused one of sqltrack's statements for a reason that retrying
    cannot fix: a value it cannot hold (``row is too big``), a limit, a missing
    privilege. Raised at the call that caused it, never retried, never spooled; the
    driver's error is its ``__cause__``.
    """

    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        #: the SQLSTATE of the driver's error (PostgreSQL), or SQLite's result code name
        #: (``SQLITE_TOOBIG``); None when the driver gave none
        self.sqlstate = sqlstate


class PermissionDenied(DatabaseError):
    """The database role lacks a privilege the statement needs (SQLSTATE 42501:
    ``permission denied``, ``must be owner``), or SQLite cannot write the file."""


class LockTimeout(SQLTrackError):
    """The database kept a lock sqltrack needs for too long (e.g. the metrics table,
    to add a column, while a long query or transaction holds it). Worth retrying later:
    inside ``track()`` it is treated like an outage."""


class SchemaError(SQLTrackError):
    """A schema script failed, or the database schema is missing or not as expected."""


class NotFound(SQLTrackError, LookupError):
    """An experiment or run that was referred to does not exist."""


class InvalidValue(SQLTrackError, ValueError):
    """A value cannot be stored: wrong type, NUL byte in text, NaN in JSON, naive datetime."""


class InvalidMetricName(InvalidValue):
    """A metric name is not usable as a column name; the message suggests one that is."""


class SQLTrackWarning(UserWarning):
    """Warnings about data that was stored differently than given (e.g. NaN on SQLite),
    or about the configuration (a readable file with a password, WAL on NFS)."""


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn(message: str) -> None:
    """Warn with :class:`SQLTrackWarning`, pointing at the first line outside sqltrack
    (the user's call), however deep inside sqltrack the cause was found."""
    frame = sys._getframe(1)
    level = 2  # the caller of warn()
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    warnings.warn(message, SQLTrackWarning, stacklevel=level)
