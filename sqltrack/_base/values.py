"""Turning Python values into what the database stores, strictly.

JSON columns (tags, args, env, extras) hold what ``json`` can represent without loss.
Tuples and sets become lists, ``pathlib.Path`` and enums their string or value, dates
ISO 8601 text, NumPy/PyTorch scalars (anything with ``.item()``) plain numbers. NaN,
infinity, NUL characters, non-string keys and other types raise
:class:`~sqltrack.errors.InvalidValue` naming the offending key, so nothing is stored
differently than given without you knowing.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Mapping
from datetime import date, datetime, timezone
from pathlib import PurePath
from typing import Any, Literal

from ..errors import InvalidValue

Auto = Literal["auto"]


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: the largest magnitude up to which every int is exact as a float (a double)
EXACT_FLOAT_INT = 2**53


def check_step(value: Any, where: str) -> int:
    """A step: an integer (not a bool) that fits in 64 bits, as both engines store it."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidValue(f"{where} must be an integer, got {value!r}")
    if not INT64_MIN <= value <= INT64_MAX:
        raise InvalidValue(f"{where} {value} does not fit in 64 bits")
    return value


def check_text(value: str, where: str) -> str:
    """Refuse text that no database stores as given: NUL characters (PostgreSQL rejects
    them, SQLite cuts the text there) and lone surrogates (not encodable as UTF-8)."""
    if "\x00" in value:
        raise InvalidValue(f"{where}: text cannot contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidValue(f"{where}: text is not valid Unicode (a lone surrogate?)") from None
    return value


def _plain(value: Any, where: str) -> Any:
    """Return ``value`` as plain JSON types, or raise InvalidValue naming ``where``."""
    if isinstance(value, str):
        return check_text(value, where)
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidValue(f"{where}: {value} cannot be stored in JSON")
        return value
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidValue(f"{where}: keys must be str, not {type(key).__name__} ({key!r})")
            out[check_text(key, where)] = _plain(item, f"{where}[{key!r}]")
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [_plain(item, f"{where}[{i}]") for i, item in enumerate(items)]
    if isinstance(value, PurePath):
        return _plain(str(value), where)
    if isinstance(value, enum.Enum):
        return _plain(value.value, where)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if hasattr(value, "tolist") or hasattr(value, "item"):
        try:
            converted = value.tolist() if hasattr(value, "tolist") else value.item()
        except Exception:
            converted = value
        if converted is not value:
            return _plain(converted, where)
    raise InvalidValue(f"{where}: values of type {type(value).__name__} cannot be stored as JSON")


def json_dumps(value: Any, where: str) -> str:
    """Serialize ``value`` for a JSON column; see the module doc for what is accepted."""
    try:
        return json.dumps(_plain(value, where), ensure_ascii=False, allow_nan=False)
    except RecursionError:
        raise InvalidValue(f"{where}: the value is nested too deeply") from None


def json_value(value: Any) -> Any:
    """A JSON column as read by ``client.execute``/``client.query``, as Python, the same on
    both engines: psycopg decodes ``jsonb`` itself (a dict), sqlite3 returns the text,
    decoded here. For sqltrack's JSON columns (tags, args, env, extras: an object or NULL).

    Example::

        (args,) = client.query("SELECT args FROM runs WHERE id = :id", {"id": run.id})[0]
        lr = sqltrack.json_value(args)["lr"]
    """
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def timestamp(dt: Auto | datetime | None, where: str) -> datetime | None:
    """``'auto'`` → now (UTC); aware datetime → itself; ``None`` → ``None``.

    :raises InvalidValue: a naive datetime or anything else.
    """
    if dt is None:
        return None
    if isinstance(dt, str) and dt == "auto":
        return datetime.now(timezone.utc)
    if isinstance(dt, datetime):
        if dt.tzinfo is None or dt.tzinfo.utcoffset(dt) is None:
            raise InvalidValue(f"{where}: datetime must be timezone-aware, got {dt!r}")
        return dt
    raise InvalidValue(f"{where}: expected 'auto', a timezone-aware datetime or None, got {dt!r}")
