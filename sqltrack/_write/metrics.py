"""The wide metrics table: one row per (run, step, progress), one column per metric.

A column is created the first time a name that may be one is logged
(:mod:`sqltrack._write.store` decides which names do; the others go to the narrow
storage, :mod:`sqltrack._write.points`). Its type follows the value: numbers (ints and
floats alike) make a ``DOUBLE PRECISION`` (SQLite ``REAL``) column, which holds ints up
to 2**53 exactly; ``bool`` a ``BOOLEAN``, ``str`` a ``TEXT``, an aware ``datetime`` a
``TIMESTAMPTZ`` (SQLite: UTC ISO text) column; ``x`` with ``x.item()`` as ``x.item()``.
Columns made by an older sqltrack keep their types (``BIGINT`` for ints). ``None``
stores NULL in an existing column.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from functools import lru_cache
from itertools import chain, groupby
from operator import itemgetter
from typing import Any

from .._base.calls import Row
from .._base.names import check_identifier, is_column_name, suggest_name
from .._base.values import EXACT_FLOAT_INT
from .._db.client import Client
from .._db.engines.base import Engine, quote_identifier
from .._db.long_view import refresh_long_view
from ..errors import InvalidMetricName, InvalidValue, LockTimeout, NotFound, SchemaError, warn
from . import points

_UPSERT = (
    "INSERT INTO metrics (run_id, step, progress, {columns}) VALUES {values} "
    "ON CONFLICT (run_id, step, progress) DO UPDATE SET {updates}"
)
_MAX_ROWS = 128  # rows per multi-row statement; more gains nothing measurable
_KEYS = ("run_id", "step", "progress")
_KEY_KINDS = ("int", "int", "float")
# how calls of one (names, kinds) are written as they are: (upsert, check NaN, positions
# of ints in float columns)
Plain = tuple[str, bool, tuple[int, ...]]
_MIN_COPY = 32  # fewer rows than this are upserted: a COPY that fails costs a round trip


@lru_cache(maxsize=1024)
def upsert_sql(names: tuple[str, ...], rows: int = 1) -> str:
    """The upsert of ``rows`` rows for these (validated) metric names.

    Parameters are the run id, step, progress and one value per name, in that order,
    for each row: positional, see :meth:`~sqltrack._db.engines.base.Engine.positional`. The
    placeholders are numbered (``:p0, :p1, …``), never made of names: a name is only
    ever SQL text as a quoted identifier.
    """
    marks = ", ".join(f":p{i}" for i in range(3 + len(names)))
    return _UPSERT.format(
        columns=", ".join(map(quote_identifier, names)),
        values=", ".join([f"({marks})"] * rows),
        updates=", ".join(f"{quote_identifier(n)} = excluded.{quote_identifier(n)}" for n in names),
    )


def new_column_kind(kind: str) -> str:
    """The kind of the column a new name gets from a value of this kind: a float column
    for numbers, which takes ints and floats alike."""
    return "float" if kind == "int" else kind


def fits_column(kind: str | None, column_kind: str | None) -> bool:
    """Whether a value of this kind is stored in a column of that kind as it is (an int
    in a float column too: it is exact up to 2**53, see :func:`fit_row`)."""
    return (
        kind is None
        or column_kind is None
        or kind == column_kind
        or (kind == "int" and column_kind == "float")
    )


def _fit(value: Any, kind: str | None, column_kind: str | None, name: str) -> Any:
    """Check that a value fits an existing column, converting int to float where needed."""
    if kind is None or column_kind is None or kind == column_kind:
        return value
    if kind == "int" and column_kind == "float" and abs(value) <= EXACT_FLOAT_INT:
        return float(value)
    raise InvalidValue(
        f"metric {name!r}: column is of type {column_kind}, got a {kind} value {value!r}"
    )


def fit_row(engine: Engine, columns: Mapping[str, str | None], row: Row) -> list[Any]:
    """The row's values as the columns store them; raises if one does not fit."""
    names, row_values, kinds, _, _ = row
    values = list(row_values)
    for i, name in enumerate(names):
        kind, value = kinds[i], values[i]
        if name not in columns and kind is None:
            raise InvalidValue(
                f"metric {name!r}: cannot create a column from None; log a value first"
            )
        column_kind = columns[name] if name in columns else new_column_kind(kind)  # type: ignore[arg-type]
        if kind != column_kind:
            values[i] = value = _fit(value, kind, column_kind, name)
        if kind == "datetime":
            values[i] = engine.adapt_datetime(value)
        elif kind == "float" and value != value and not engine.stores_nan:
            warn(f"metric {name!r}: {engine.label} stores NaN as NULL")
    return values


class MetricsTable:
    """What a client knows of the metrics tables (``client.metrics_cache``).

    :attr columns: ``{column: kind}`` of the metric columns
    :attr plain: for calls whose values are stored as they are in columns that exist:
        ``(names, kinds) -> (one-row upsert in the driver's style, check NaN, positions
        of ints in float columns)``
    :attr names: names of the narrow storage known to be in ``metric_names``: ``{name: id}``
    :attr checked: names looked up in ``metric_names`` (found there or not)
    :attr routes: where the values of calls of ``(names, kinds)`` go
        (:mod:`sqltrack._write.store`)
    :attr widens: whether this client's role may add columns (own the table); a role
        that may not puts new names in the narrow storage
    """

    __slots__ = ("checked", "columns", "names", "plain", "routes", "widens")

    def __init__(
        self,
        columns: dict[str, str | None],
        names: dict[str, int] | None = None,
        checked: set[str] | None = None,
    ):
        self.columns = columns
        self.plain: dict[tuple[tuple[str, ...], tuple[str | None, ...]], Plain] = {}
        self.names: dict[str, int] = {} if names is None else names
        self.routes: dict[tuple[tuple[str, ...], tuple[str | None, ...]], Any] = {}
        self.checked: set[str] = set() if checked is None else checked
        self.widens = True


def _after_adding(client: Client, cursor: Any, missing: Mapping[str, str]) -> dict[str, str | None]:
    """After new columns (in their transaction): ``metrics_long`` shows them too (schema
    v010); return the kinds the table has for them (another writer may have made one
    first, of another kind). One read of the columns serves both."""
    columns = client.engine.metric_columns(cursor)
    if points.available(client):
        refresh_long_view(client.engine, cursor, columns)
    return {name: columns.get(name, kind) for name, kind in missing.items()}


def table_for(client: Client, conn: Any, names: tuple[str, ...]) -> MetricsTable:
    """The client's knowledge of the tables, the columns read anew if one of ``names`` is
    missing from them."""
    table: MetricsTable | None = client.metrics_cache
    if table is None or not all(map(table.columns.__contains__, names)):
        cur = conn.cursor()
        try:
            columns = client.engine.metric_columns(cur)
            widens = client.engine.may_add_columns(cur) if table is None else table.widens
        finally:
            cur.close()
        known = (None, None) if table is None else (table.names, table.checked)
        table = client.metrics_cache = MetricsTable(columns, *known)
        table.widens = widens
    if not table.columns:
        raise SchemaError(
            f"the metrics table is missing in {client.engine.describe()}: "
            "run `sqltrack setup` first"
        )
    return table


def known_columns(client: Client, conn: Any, names: tuple[str, ...]) -> dict[str, str | None]:
    """The metric columns ``{name: kind}``, from the client's cache unless one of
    ``names`` is missing from it."""
    return table_for(client, conn, names).columns


def _plain_entry(
    engine: Engine, table: MetricsTable, names: tuple[str, ...], kinds: tuple[str | None, ...]
) -> Plain | None:
    """How calls of these names and kinds are written as they are, if they can be (else
    None): their columns exist with the calls' kinds (or float for an int) and need no
    adapting (datetime); where NaN is not kept, numbers are checked for it (so a call
    with text or times goes the slow way there)."""
    key = (names, kinds)
    entry = table.plain.get(key)
    if entry is not None:
        return entry
    columns = tuple(map(table.columns.get, names))
    if None in columns or None in kinds or "datetime" in columns:
        return None
    ints = []
    for i, (kind, column) in enumerate(zip(kinds, columns, strict=True)):
        if kind == "int" and column == "float":
            ints.append(i)
        elif kind != column:
            return None
    check_nan = not engine.stores_nan and "float" in columns
    if check_nan and ("str" in columns or "datetime" in columns):
        return None
    entry = table.plain[key] = (engine.positional(upsert_sql(names)), check_nan, tuple(ints))
    return entry


def plain_upsert(client: Client, row: Row) -> str | None:
    """The upsert (in the driver's style) that writes ``row`` as it is, if the client
    knows one (:func:`_plain_entry`) and the row's values need no check. None: the row
    needs the general path (:func:`sqltrack._write.store.write_rows`)."""
    table: MetricsTable | None = client.metrics_cache
    entry = None if table is None else table.plain.get((row[0], row[2]))
    if entry is None:
        return None
    upsert, check_nan, ints = entry
    values = row[1]
    if check_nan and (total := sum(values)) != total:  # NaN where NaN is not kept
        return None
    if ints and any(abs(values[i]) > EXACT_FLOAT_INT for i in ints):
        return None
    return upsert


def execute_plain(client: Client, conn: Any, upsert: str, run_id: int, row: Row) -> None:
    """Execute :func:`plain_upsert`'s statement for ``row`` of run ``run_id``."""
    try:
        conn.execute(upsert, (run_id, row[3], row[4], *row[1]))
    except Exception as e:
        raise_not_found(client, e, run_id)
        raise


def write_wide(
    client: Client,
    conn: Any,
    run_id: int,
    rows: list[Row],
    collect: Callable[[tuple[str, ...], tuple[str | None, ...], list[Any], bool], None]
    | None = None,
) -> list[tuple[Row, InvalidValue]]:
    """Write validated calls into the wide table, in order (consecutive calls with the
    same names together), adding the columns that are missing. A row that does not fit
    its columns is left out and returned with its error; every other row is written.

    :param collect: called with ``(names, kinds, parameters, no_nan)`` of each group of
        rows written (``(run_id, step, progress, *values)`` each; ``no_nan``: known to
        hold no NaN or NULL): how the buffered writer keeps a run's summary without
        reading the rows back
    """
    engine = client.engine
    refused: list[tuple[Row, InvalidValue]] = []
    for names, group in groupby(rows, key=itemgetter(0)):
        table = table_for(client, conn, names)
        batch = list(group)
        params = _plain_params(engine, table, run_id, names, batch)
        # as they are, on an engine that keeps no NaN: _plain_params found none
        no_nan = params is not None and not engine.stores_nan
        if params is None:  # some rows need converting or new columns: row by row
            params = []
            for row in batch:
                try:
                    values = fit_row(engine, table.columns, row)
                except InvalidValue as e:
                    refused.append((row, e))
                    continue
                missing = {
                    n: new_column_kind(k)
                    for n, k in zip(names, row[2], strict=True)
                    if n not in table.columns and k is not None
                }
                if missing:
                    made = _add_columns(client, conn, missing)
                    table.columns.update(made)
                    if made != missing:  # another writer made one first, of another kind
                        try:
                            values = fit_row(engine, table.columns, row)
                        except InvalidValue as e:
                            refused.append((row, e))
                            continue
                params.append((run_id, row[3], row[4], *values))
        if not params:
            continue
        try:
            kinds = tuple(map(table.columns.get, names))
            copied = len(params) >= _MIN_COPY and engine.copy_rows(
                conn, "metrics", (*_KEYS, *names), (*_KEY_KINDS, *kinds), params
            )
            if not copied:
                _execute_rows(engine, conn, names, params)
        except Exception as e:
            raise_not_found(client, e, run_id)
            raise
        if collect is not None:
            collect(names, kinds, params, no_nan)
    return refused


def raise_not_found(client: Client, exc: Exception, run_id: int) -> None:
    if client.engine.is_foreign_key_violation(exc):
        raise NotFound(f"run {run_id} does not exist") from None


def _plain_params(
    engine: Engine, table: MetricsTable, run_id: int, names: tuple[str, ...], rows: list[Row]
) -> list[tuple[Any, ...]] | None:
    """The rows' parameters if all of them store as they are (the common case), else None.
    Checked for the whole batch at once, in C where possible."""
    kinds = rows[0][2]
    entry = _plain_entry(engine, table, names, kinds)
    if entry is None:
        return None
    _, check_nan, ints = entry
    if list(map(itemgetter(2), rows)).count(kinds) != len(rows):
        return None
    if check_nan:
        total = sum(chain.from_iterable(map(itemgetter(1), rows)))
        if total != total:  # a NaN somewhere (or inf - inf): let the slow path look
            return None
    if ints:  # as floats (the COPY sends float8), exact up to 2**53
        params = []
        for row in rows:
            values = list(row[1])
            for i in ints:
                if abs(values[i]) > EXACT_FLOAT_INT:
                    return None
                values[i] = float(values[i])
            params.append((run_id, row[3], row[4], *values))
        return params
    return [(run_id, row[3], row[4], *row[1]) for row in rows]


def _execute_rows(engine: Engine, conn: Any, names: tuple[str, ...], params: list[Any]) -> None:
    """One upsert per row; where the engine prefers it, several rows per statement."""
    max_rows = engine.max_params(conn) // (3 + len(names)) if len(params) > 1 else 0
    if max_rows > 1:
        # statements of 128, 64, ..., 1 rows: few distinct texts, all in the driver's cache
        i, n = 0, len(params)
        while i < n:
            size = 1 << (min(_MAX_ROWS, max_rows, n - i).bit_length() - 1)
            flat = list(chain.from_iterable(params[i : i + size]))
            conn.execute(engine.positional(upsert_sql(names, size)), flat)
            i += size
    elif len(params) == 1:
        conn.execute(engine.positional(upsert_sql(names)), params[0])
    else:
        cur = conn.cursor()
        try:
            cur.executemany(engine.positional(upsert_sql(names)), params)
        finally:
            cur.close()


def _add_columns(client: Client, conn: Any, missing: Mapping[str, str]) -> dict[str, str | None]:
    """Add metric columns; return their kinds as the table has them (another writer may
    have made one of them first, of another kind).

    ``ALTER TABLE`` waits for an exclusive lock, and every writer that comes after it
    queues behind it. So where the engine has a lock timeout for it and the transaction
    is sqltrack's own, the columns are added in a short transaction of their own that
    waits at most ``engine.ddl_lock_timeout``, then steps back (letting the queue drain)
    and retries, for up to ``engine.ddl_retry_seconds``; every second try waits a little
    longer than the server's ``deadlock_timeout``, after which PostgreSQL cancels an
    automatic vacuum in the way (one would otherwise hold the columns off for as long as
    it runs). Inside a user's block they are added in that transaction, which waits as
    long as needed.
    """
    for name in missing:  # however the row came (a spool, a merged file): never unchecked
        if not is_column_name(name):
            raise InvalidMetricName(
                f"metric {name!r} cannot be a column of the metrics table (a lowercase "
                "identifier); `sqltrack setup` adds the storage that takes any metric name "
                f"(schema v010), or try {suggest_name(name)!r}"
            )
        check_identifier(name, what="metric column name")
    engine = client.engine
    cur = conn.cursor()
    try:
        if client.in_user_block or engine.ddl_lock_timeout is None:
            engine.add_columns(cur, missing)
            return _after_adding(client, cur, missing)
        patient = engine.patient_ddl_lock_timeout(cur) or engine.ddl_lock_timeout
        client.commit()  # sqltrack's own transaction: it has written nothing here yet
        deadline = time.monotonic() + engine.ddl_retry_seconds
        delay = 0.02
        tries = 0
        while True:
            timeout = patient if tries % 2 else engine.ddl_lock_timeout
            tries += 1
            try:
                engine.add_columns(cur, missing, lock_timeout=timeout)
                made = _after_adding(client, cur, missing)
                client.commit()
                return made
            except Exception as e:
                if not engine.is_lock_timeout(e):
                    raise
                conn.rollback()
            if time.monotonic() > deadline:
                raise LockTimeout(
                    f"could not add metric columns {', '.join(missing)}: the metrics table "
                    f"stayed locked for {engine.ddl_retry_seconds:g} s (a long query or "
                    "transaction on it?)"
                )
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 1.0)
    except Exception as e:
        limit = engine.column_limit_error(e)
        if limit is not None:
            raise InvalidValue(f"cannot add metrics {', '.join(missing)}: {limit}") from None
        raise
    finally:
        cur.close()
