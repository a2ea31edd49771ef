"""Metrics: one row per (run, step, progress), one column per metric, created on demand.

The first time a metric name is seen, a column is added to ``metrics`` whose type follows
the Python value:

========================  ====================  ===========
Python value              PostgreSQL            SQLite
========================  ====================  ===========
``bool``                  ``BOOLEAN``           ``BOOLEAN``
``int``                   ``BIGINT``            ``INTEGER``
``float``                 ``DOUBLE PRECISION``  ``REAL``
``str``                   ``TEXT``              ``TEXT``
aware ``datetime``        ``TIMESTAMPTZ``       ``TIMESTAMP`` (UTC ISO text)
``x`` with ``x.item()``   as ``x.item()``       as ``x.item()``
========================  ====================  ===========

Later values must fit the column: an ``int`` is accepted by a float column, anything
else that differs raises :class:`~sqltrack.errors.InvalidValue` before anything is
written. ``None`` stores NULL in an existing column. Names must follow
:mod:`sqltrack.names`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from functools import lru_cache
from itertools import chain, groupby
from operator import itemgetter
from typing import Any

from .._base.calls import Row, validate
from .._base.names import check_metric_name
from .._db.client import Client, operation
from .._db.engines.base import Engine, quote_identifier
from ..errors import InvalidValue, LockTimeout, NotFound, SchemaError, warn

_UPSERT = (
    "INSERT INTO metrics (run_id, step, progress, {columns}) VALUES {values} "
    "ON CONFLICT (run_id, step, progress) DO UPDATE SET {updates}"
)
_MAX_ROWS = 128  # rows per multi-row statement; more gains nothing measurable
_MIN_COPY = 32  # fewer rows than this are upserted: a COPY that fails costs a round trip


@lru_cache(maxsize=1024)
def upsert_sql(names: tuple[str, ...], rows: int = 1) -> str:
    """The upsert of ``rows`` rows for these (validated) metric names.

    Parameters are the run id, step, progress and one value per name, in that order,
    for each row: positional, see :meth:`~sqltrack.engines.base.Engine.positional`. The
    placeholders are numbered (``:p0, :p1, …``), never made of names: a name is only
    ever SQL text as a quoted identifier.
    """
    marks = ", ".join(f":p{i}" for i in range(3 + len(names)))
    return _UPSERT.format(
        columns=", ".join(map(quote_identifier, names)),
        values=", ".join([f"({marks})"] * rows),
        updates=", ".join(f"{quote_identifier(n)} = excluded.{quote_identifier(n)}" for n in names),
    )


def _fit(value: Any, kind: str | None, column_kind: str | None, name: str) -> Any:
    """Check that a value fits an existing column, converting int to float where needed."""
    if kind is None or column_kind is None or kind == column_kind:
        return value
    if kind == "int" and column_kind == "float":
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
        column_kind = columns.get(name, kind)  # a new column: the value's own kind
        if kind != column_kind:
            values[i] = value = _fit(value, kind, column_kind, name)
        if kind == "datetime":
            values[i] = engine.adapt_datetime(value)
        elif kind == "float" and value != value and not engine.stores_nan:
            warn(f"metric {name!r}: {engine.label} stores NaN as NULL")
    return values


class MetricsTable:
    """What a client knows of the metrics table (``client.metrics_cache``).

    :attr columns: ``{column: kind}`` of the metric columns
    :attr plain: for sets of names whose columns exist and whose values are stored as
        they are: ``names -> (kinds, one-row upsert in the driver's style, check NaN)``
    """

    __slots__ = ("columns", "plain")

    def __init__(self, columns: dict[str, str | None]) -> None:
        self.columns = columns
        self.plain: dict[tuple[str, ...], tuple[tuple[str | None, ...], str, bool]] = {}


def _table(client: Client, conn: Any, names: tuple[str, ...]) -> MetricsTable:
    """The client's knowledge of the table, read anew if a name is missing from it."""
    table: MetricsTable | None = client.metrics_cache
    if table is None or not all(map(table.columns.__contains__, names)):
        cur = conn.cursor()
        try:
            table = client.metrics_cache = MetricsTable(client.engine.metric_columns(cur))
        finally:
            cur.close()
    if not table.columns:
        raise SchemaError(
            f"the metrics table is missing in {client.engine.describe()}: "
            "run `sqltrack setup` first"
        )
    return table


def known_columns(client: Client, conn: Any, names: tuple[str, ...]) -> dict[str, str | None]:
    """The metric columns ``{name: kind}``, from the client's cache unless one of
    ``names`` is missing from it."""
    return _table(client, conn, names).columns


def _plain_entry(
    engine: Engine, table: MetricsTable, names: tuple[str, ...]
) -> tuple[tuple[str | None, ...], str, bool] | None:
    """How rows of these names are written as they are, if they can be (else None):
    their columns exist and need no adapting (datetime); where NaN is not kept, floats
    are checked for it, so mixed kinds go the slow way."""
    entry = table.plain.get(names)
    if entry is not None:
        return entry
    kinds = tuple(map(table.columns.get, names))
    if None in kinds or "datetime" in kinds:
        return None
    check_nan = not engine.stores_nan and "float" in kinds
    if check_nan and kinds.count("float") != len(kinds):
        return None
    entry = table.plain[names] = (kinds, engine.positional(upsert_sql(names)), check_nan)
    return entry


def plain_upsert(client: Client, row: Row) -> str | None:
    """The upsert (in the driver's style) that writes ``row`` as it is, if the client
    knows one: its columns exist with the row's kinds, and no NaN where NaN is not kept.
    None: the row needs the general path (:func:`write_rows`)."""
    table: MetricsTable | None = client.metrics_cache
    entry = None if table is None else table.plain.get(row[0])
    if entry is None or entry[0] != row[2]:
        return None
    if entry[2] and (total := sum(row[1])) != total:  # NaN where NaN is not kept
        return None
    return entry[1]


def write_row(client: Client, conn: Any, run_id: int, row: Row) -> None:
    """Write one validated call (the synchronous path) in the current transaction.

    :raises InvalidValue: a value does not fit its column.
    :raises NotFound: the run does not exist.
    """
    upsert = plain_upsert(client, row)
    if upsert is not None:
        try:
            conn.execute(upsert, (run_id, row[3], row[4], *row[1]))
        except Exception as e:
            _raise_not_found(client, e, run_id)
            raise
        return
    refused = write_rows(client, conn, run_id, [row])
    if refused:
        raise refused[0][1]


def write_rows(
    client: Client,
    conn: Any,
    run_id: int,
    rows: list[Row],
    collect: Callable[[tuple[str, ...], tuple[str | None, ...], list[Any], bool], None]
    | None = None,
) -> list[tuple[Row, InvalidValue]]:
    """Write validated calls in order (consecutive calls with the same names together).
    A row that does not fit its columns is left out and returned with its error; every
    other row is written.

    :param collect: called with ``(names, kinds, parameters, no_nan)`` of each group of
        rows written (``(run_id, step, progress, *values)`` each; ``no_nan``: known to
        hold no NaN or NULL): how the buffered writer keeps a run's summary without
        reading the rows back
    """
    engine = client.engine
    refused: list[tuple[Row, InvalidValue]] = []
    for names, group in groupby(rows, key=itemgetter(0)):
        table = _table(client, conn, names)
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
                    n: k for n, k in zip(names, row[2], strict=True) if n not in table.columns
                }
                if missing:
                    _add_columns(client, conn, missing)  # type: ignore[arg-type]
                    table.columns.update(missing)
                params.append((run_id, row[3], row[4], *values))
        if not params:
            continue
        try:
            kinds = tuple(map(table.columns.get, names))
            if len(params) < _MIN_COPY or not engine.copy_rows(conn, names, kinds, params):
                _execute_rows(engine, conn, names, params)
        except Exception as e:
            _raise_not_found(client, e, run_id)
            raise
        if collect is not None:
            collect(names, kinds, params, no_nan)
    return refused


def _raise_not_found(client: Client, exc: Exception, run_id: int) -> None:
    if client.engine.is_foreign_key_violation(exc):
        raise NotFound(f"run {run_id} does not exist") from None


def _plain_params(
    engine: Engine, table: MetricsTable, run_id: int, names: tuple[str, ...], rows: list[Row]
) -> list[tuple[Any, ...]] | None:
    """The rows' parameters if all of them store as they are (the common case), else None.
    Checked for the whole batch at once, in C where possible."""
    entry = _plain_entry(engine, table, names)
    if entry is None:
        return None
    kinds, _, check_nan = entry
    if list(map(itemgetter(2), rows)).count(kinds) != len(rows):
        return None
    if check_nan:
        total = sum(chain.from_iterable(map(itemgetter(1), rows)))
        if total != total:  # a NaN somewhere (or inf - inf): let the slow path look
            return None
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


def _add_columns(client: Client, conn: Any, missing: Mapping[str, str]) -> None:
    """Add metric columns.

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
        check_metric_name(name)
    engine = client.engine
    cur = conn.cursor()
    try:
        if client.in_user_block or engine.ddl_lock_timeout is None:
            engine.add_columns(cur, missing)
            return
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
                client.commit()
                return
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


@operation
def run_add_metrics(
    client: Client, run_id: int, metrics: Mapping[str, Any], step: int = 0, progress: float = 0.0
) -> None:
    """Add metrics to a run: one row per ``(run_id, step, progress)``.

    A second call for the same ``(step, progress)`` merges its columns into the row
    (values of the same metric are replaced). Either ``step`` or ``progress`` should
    change between calls, or earlier values are overwritten.

    Example::

        run_add_metrics(client, run_id, {"train_loss": 0.25, "lr": 1e-3}, step=100)

    :param client: the Client to use
    :param run_id: which existing run the metrics belong to
    :param metrics: ``{name: value}``; names and values as described in :mod:`sqltrack.metrics`
    :param step: the step (an integer, e.g. the iteration)
    :param progress: progress as a float (e.g. the epoch, or the fraction of training done)
    :raises InvalidMetricName: a name that is not a valid column name (with a suggestion)
    :raises InvalidValue: a value of an unsupported type, or one that does not fit its column
    :raises NotFound: the run does not exist
    """
    row = validate(metrics, step, progress)
    if row is not None:
        with client as conn:
            write_row(client, conn, run_id, row)
