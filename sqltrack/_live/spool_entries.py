"""Spool entries as input: each checked as the call that made it was, before a push
writes anything (:mod:`sqltrack._live.spool`).

A spool file may be damaged, or come from an older or a foreign sqltrack: an entry is
taken only if it is exactly what sqltrack writes, with names, values and kinds that
``add_metrics`` would accept, a valid status, and times no later than now plus
:data:`CLOCK_SKEW`. Anything else raises :class:`~sqltrack.errors.InvalidValue`, and the
push sets the entry aside.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from .._base.calls import Row, validate
from .._write.runs import check_status
from ..errors import InvalidValue

#: a spooled time may be this much later than the clock of the process pushing it
#: (clocks of cluster nodes differ a little); a later one is refused
CLOCK_SKEW = timedelta(minutes=5)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} in a spooled row")


def entry_json(data: Any) -> str:
    """The text of a new entry's data (times as ISO text)."""
    return json.dumps(data, default=_json_default)


def entry_text(entry: Any) -> str:
    """The text of a spool entry ``(seq, kind, data)``, as it is kept when set aside."""
    return str(entry[2])


def row_data(row: Row) -> dict[str, Any]:
    """A metrics call as plain JSON data: ``{"step", "progress", "metrics"}``."""
    names, values, _, step, progress = row
    return {"step": step, "progress": progress, "metrics": dict(zip(names, values, strict=True))}


def _when(text: Any, now: datetime, what: str) -> datetime | None:
    """A spooled time: ISO text, aware, not later than now (plus :data:`CLOCK_SKEW`)."""
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise InvalidValue(f"{what} {text!r} is not a time") from None
    if when.tzinfo is None or when.tzinfo.utcoffset(when) is None:
        raise InvalidValue(f"{what} {text!r} has no time zone")
    if when > now + CLOCK_SKEW:
        raise InvalidValue(f"{what} {text} is in the future")
    return when


def parse_entry(entry: Any, now: datetime, refused: list[Any]) -> tuple[str, Any]:
    """A spool entry, validated as the call that made it was: ``("rows", [Row, ...])``,
    ``("updated", datetime)`` or ``("state", (status, started, updated))``.

    :param refused: where each row of a ``rows`` entry that is not valid goes, as
        ``("row", data, error)`` (the entry's other rows are still written)
    :raises InvalidValue: the entry is not what sqltrack writes
    """
    _, kind, text = entry
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        raise InvalidValue("a spool entry is not JSON") from None
    if kind == "updated":
        return kind, _when(value, now, "time_updated")
    if kind == "state":
        if not isinstance(value, list) or len(value) != 3:
            raise InvalidValue("a spooled status is not [status, started, updated]")
        status, started, updated = value
        status = check_status(status)
        return kind, (
            status,
            _when(started, now, "time_started"),
            _when(updated, now, "time_updated"),
        )
    if kind != "rows" or not isinstance(value, list):
        raise InvalidValue(f"a spool entry of kind {kind!r} is not what sqltrack writes")
    rows = []
    for data in value:
        try:
            row = _spooled_row(data)
        except InvalidValue as e:
            refused.append(("row", data, e))
            continue
        if row is not None:
            rows.append(row)
    return kind, rows


def _spooled_row(data: Any) -> Row | None:
    """One spooled metrics call, checked as ``add_metrics`` checks its arguments; its
    recorded kinds must be those of its values."""
    if not isinstance(data, list) or len(data) != 5:
        raise InvalidValue("a spooled row is not [names, values, kinds, step, progress]")
    names, values, kinds, step, progress = data
    if not (isinstance(names, list) and isinstance(values, list) and isinstance(kinds, list)):
        raise InvalidValue("a spooled row has no lists of names, values and kinds")
    if not len(names) == len(values) == len(kinds) or not all(isinstance(n, str) for n in names):
        raise InvalidValue("a spooled row has names and values that do not match")
    if len(set(names)) != len(names):
        raise InvalidValue("a spooled row names a metric twice")
    converted = []
    for value, kind in zip(values, kinds, strict=True):
        if kind == "datetime" and isinstance(value, str):
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                raise InvalidValue(f"a spooled time {value!r} is not a time") from None
        converted.append(value)
    row = validate(dict(zip(names, converted, strict=True)), step, progress)
    if row is not None and list(row[2]) != kinds:
        raise InvalidValue("a spooled row's values are not of the kinds it records")
    return row
