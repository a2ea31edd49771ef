"""The narrow storage of metrics (schema v010): ``metric_points``, one row per run,
metric, step and progress, beside the wide ``metrics`` table; the names in
``metric_names``, once each.

A value is stored as a number where a number says it exactly, with its kind where that
is not a float, and its exact text where the number cannot hold it:

==================  =====================  ==========  ===========================
logged              ``value``              ``kind``    ``exact``
==================  =====================  ==========  ===========================
a float             the float (NaN kept    NULL        NULL
                    on PostgreSQL)
an int              the int as a float     ``int``     the digits if past 2**53
a bool              1.0 or 0.0             ``bool``    NULL
a str               NULL                   ``str``     the text
an aware datetime   seconds since 1970     ``datetime`` ISO 8601 text (UTC)
None                NULL                   NULL        NULL
==================  =====================  ==========  ===========================

and read back as logged (:func:`decode`). The view ``metrics_long`` shows both storages
in long form (``run_id, step, progress, metric, value, text``);
:mod:`sqltrack._db.long_view` rewrites it when the wide table gains a column.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from itertools import chain
from typing import Any

from .._base.values import EXACT_FLOAT_INT
from .._db.client import Client
from .._db.engines.base import Engine
from .._db.schema import METRIC_POINTS, applied

_COLUMNS = ("run_id", "name_id", "step", "progress", "value", "kind", "exact")
_KINDS = ("int", "int", "int", "float", "float", "str", "str")
_UPSERT = (
    "INSERT INTO metric_points (run_id, name_id, step, progress, value, kind, exact) "
    "VALUES {values} ON CONFLICT (run_id, name_id, step, progress) DO UPDATE SET "
    "value = excluded.value, kind = excluded.kind, exact = excluded.exact"
)
_MARKS = "(:p0, :p1, :p2, :p3, :p4, :p5, :p6)"
# {names}: the engine's "name is one of :names" condition
_NAMES_OF = "SELECT name, id FROM metric_names WHERE {names}"
# {names}: the engine's rows of :names; sorted, so that two writers adding the same
# names take their index locks in the same order (no deadlock); "WHERE true" lets
# SQLite parse the ON CONFLICT of an INSERT ... SELECT
_ADD_NAMES = (
    "INSERT INTO metric_names (name) SELECT value FROM ({names}) AS new WHERE true "
    "ORDER BY value ON CONFLICT (name) DO NOTHING"
)
# {condition}: run ids (and names) chosen with the engine's array conditions
_READ = (
    "SELECT p.run_id, p.step, p.progress, n.name, p.value, p.kind, p.exact "
    "FROM metric_points p JOIN metric_names n ON n.id = p.name_id WHERE {condition}"
)
_IN_ORDER = " ORDER BY p.run_id, p.step, p.progress"
_MIN_COPY = 32  # fewer points than this are upserted: a COPY that fails costs a round trip
_MAX_ROWS = 128  # points per multi-row statement where the engine prefers them
_CHUNK = 10_000  # names per statement that looks them up or adds them


def available(client: Client) -> bool:
    """Whether the database has the narrow storage (schema version 10)."""
    return applied(client, METRIC_POINTS)


def encode(value: Any, kind: str | None) -> tuple[Any, str | None, str | None]:
    """``(value, kind, exact)`` of a checked value of this kind, as the table stores it."""
    if kind is None or kind == "float":
        return value, None, None
    if kind == "int":
        return float(value), "int", None if abs(value) <= EXACT_FLOAT_INT else str(value)
    if kind == "bool":
        return 1.0 if value else 0.0, "bool", None
    if kind == "str":
        return None, "str", value
    utc = value.astimezone(timezone.utc)
    return utc.timestamp(), "datetime", utc.isoformat()


def decode(value: Any, kind: str | None, exact: str | None) -> Any:
    """A stored value as it was logged."""
    if kind is None:
        return None if value is None else float(value)
    if kind == "int":
        return int(exact) if exact is not None else int(value)
    if kind == "bool":
        return bool(value)
    if kind == "str":
        return exact
    return datetime.fromisoformat(exact) if exact is not None else None


def name_ids(
    client: Client, names: Iterable[str], known: dict[str, int], looked_up: bool = False
) -> dict[str, int]:
    """The ids of metric names in ``metric_names``, adding those that are missing;
    ``known`` (the client's cache, :class:`~sqltrack._write.metrics.MetricsTable`) is
    consulted and filled.

    :param looked_up: the names missing from ``known`` were just looked up and not found
        (the statement that adds them still takes a name someone else just added)
    """
    wanted = list(dict.fromkeys(names))
    missing = [n for n in wanted if n not in known]
    if missing:
        if not looked_up:
            known.update(narrow_names(client, missing))
        new = sorted(n for n in missing if n not in known)
        if new:
            engine = client.engine
            statement = _ADD_NAMES.format(names=engine.array_rows("names"))
            for i in range(0, len(new), _CHUNK):
                client.query(statement, {"names": engine.adapt_array(new[i : i + _CHUNK])})
            known.update(narrow_names(client, new))
    return {n: known[n] for n in wanted}


def narrow_names(client: Client, names: Sequence[str]) -> dict[str, int]:
    """Which of ``names`` are in ``metric_names`` already (name -> id); no query for none."""
    engine = client.engine
    query = _NAMES_OF.format(names=engine.in_array("name", "names"))
    found: dict[str, int] = {}
    for start in range(0, len(names), _CHUNK):
        chunk = {"names": engine.adapt_array(list(names[start : start + _CHUNK]))}
        found.update((str(name), int(id_)) for name, id_ in client.query(query, chunk))
    return found


def write_points(client: Client, conn: Any, points: list[tuple[Any, ...]]) -> None:
    """Write points ``(run_id, name_id, step, progress, value, kind, exact)``: new ones in
    bulk where the engine can (binary COPY), else upserts, several per statement."""
    if not points:
        return
    engine = client.engine
    if len(points) >= _MIN_COPY and engine.copy_rows(
        conn, "metric_points", _COLUMNS, _KINDS, points
    ):
        return
    max_rows = engine.max_params(conn) // len(_COLUMNS) if len(points) > 1 else 0
    if max_rows > 1:
        i, n = 0, len(points)
        while i < n:
            size = 1 << (min(_MAX_ROWS, max_rows, n - i).bit_length() - 1)
            statement = _upsert(engine, size)
            conn.execute(statement, list(chain.from_iterable(points[i : i + size])))
            i += size
        return
    cur = conn.cursor()
    try:
        cur.executemany(_upsert(engine, 1), points)
    finally:
        cur.close()


def _upsert(engine: Engine, rows: int) -> str:
    return engine.positional(_UPSERT.format(values=", ".join([_MARKS] * rows)))


def read_points(
    client: Client,
    run_ids: Sequence[int],
    names: Sequence[str] | None = None,
    ordered: bool = True,
) -> list[tuple[Any, ...]]:
    """``(run_id, step, progress, name, value)`` of the runs' narrow values (of ``names``
    only, if given), values as logged, ordered by run, step and progress (unless not
    ``ordered``: a caller that sorts anyway saves the database a sort)."""
    if not run_ids or not available(client):
        return []
    engine = client.engine
    condition = engine.in_array("p.run_id", "runs")
    params: dict[str, Any] = {"runs": engine.adapt_array(list(run_ids))}
    if names is not None:
        condition += " AND " + engine.in_array("n.name", "names")
        params["names"] = engine.adapt_array(list(names))
    rows = client.query(_READ.format(condition=condition) + (_IN_ORDER if ordered else ""), params)
    # (a float, the common case, is its value)
    return [(*r[:4], r[4] if r[5] is None else decode(r[4], r[5], r[6])) for r in rows]
