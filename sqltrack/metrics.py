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

import math
import warnings
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from itertools import chain, groupby
from operator import itemgetter
from typing import Any

from .client import Client, operation
from .engines import quote_identifier
from .errors import InvalidValue, NotFound, SchemaError, SQLTrackWarning, is_foreign_key_violation
from .names import check_metric_name
from .values import check_text

__all__ = ["run_add_metrics"]

_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1


def _kind(value: Any, name: str) -> tuple[Any, str | None]:
    """Return ``(value, kind)`` with scalars unwrapped; kind None for None."""
    if type(value) is float:  # the common case first
        return value, "float"
    if value is None:
        return None, None
    if isinstance(value, bool):
        return value, "bool"
    if isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            raise InvalidValue(f"metric {name!r}: integer {value} does not fit in 64 bits")
        return value, "int"
    if isinstance(value, float):
        return value, "float"
    if isinstance(value, str):
        return check_text(value, f"metric {name!r}"), "str"
    if isinstance(value, datetime):
        if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
            raise InvalidValue(f"metric {name!r}: datetime must be timezone-aware")
        return value, "datetime"
    item = getattr(value, "item", None)
    if callable(item):
        try:
            scalar = item()
        except Exception as e:  # e.g. an array with more than one element
            raise InvalidValue(
                f"metric {name!r}: {type(value).__name__}.item() failed: {e}"
            ) from None
        if scalar is not value and not hasattr(scalar, "item"):
            return _kind(scalar, name)
    raise InvalidValue(
        f"metric {name!r}: values of type {type(value).__name__} cannot be stored; "
        "use bool, int, float, str, an aware datetime, or a scalar with .item()"
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


@lru_cache(maxsize=1024)
def _upsert_sql(mark: str, names: tuple[str, ...], rows: int = 1) -> str:
    """The upsert of ``rows`` rows for these metric names, with the driver's placeholder."""
    columns = ", ".join(quote_identifier(n) for n in names)
    values = ", ".join([f"({', '.join([mark] * (3 + len(names)))})"] * rows)
    updates = ", ".join(f"{quote_identifier(n)} = excluded.{quote_identifier(n)}" for n in names)
    return (
        f"INSERT INTO metrics (run_id, step, progress, {columns}) "  # noqa: S608
        f"VALUES {values} "
        f"ON CONFLICT (run_id, step, progress) DO UPDATE SET {updates}"
    )


def _known_columns(client: Client, conn: Any, names: tuple[str, ...]) -> dict[str, str | None]:
    """The metric columns, from the client's cache unless a name is missing from it."""
    columns = client._metric_columns
    if columns is None or not all(map(columns.__contains__, names)):
        cur = conn.cursor()
        try:
            columns = client._metric_columns = client.engine.metric_columns(cur)
        finally:
            cur.close()
    if not columns:
        raise SchemaError(
            f"the metrics table is missing in {client.engine.describe()}: "
            "run `sqltrack setup` first"
        )
    return columns


Row = tuple[tuple[str, ...], tuple[Any, ...], tuple["str | None", ...], int, float]
"""A validated call: metric names, values, their kinds, step, progress."""


@lru_cache(maxsize=1024)  # a training loop logs the same names every step
def _checked_names(names: tuple[str, ...]) -> tuple[tuple[type, ...], tuple[str, ...]]:
    """Check the names (once); return the value types and kinds of an all-float call."""
    for name in names:
        check_metric_name(name)
    return (float,) * len(names), ("float",) * len(names)


def _step(step: Any) -> int:
    value, kind = _kind(step, "step")
    if kind != "int":
        raise InvalidValue(f"step must be an integer, got {step!r}")
    return value  # type: ignore[no-any-return]


def _progress(progress: Any) -> float:
    value, kind = _kind(progress, "progress")
    if kind not in ("int", "float") or not math.isfinite(value):
        raise InvalidValue(f"progress must be a finite number, got {progress!r}")
    return float(value)


def validate(metrics: Mapping[str, Any], step: int, progress: float) -> Row | None:
    """Check a call's names and values (no database needed); None if there are no metrics."""
    if type(metrics) is not dict and not isinstance(metrics, Mapping):
        raise InvalidValue(f"metrics must be a dict of name -> value, not {type(metrics).__name__}")
    if type(step) is not int:
        step = _step(step)
    if type(progress) is not float or progress - progress != 0.0:  # not a finite float
        progress = _progress(progress)
    names = tuple(metrics)
    if not names:
        return None
    float_types, float_kinds = _checked_names(names)
    values = tuple(metrics.values())
    if tuple(map(type, values)) == float_types:  # the common case: all floats
        return names, values, float_kinds, step, progress
    values, kinds = zip(*[_kind(metrics[name], name) for name in names], strict=True)
    return names, values, kinds, step, progress


def _fit_row(engine: Any, columns: Mapping[str, str | None], row: Row) -> list[Any]:
    """The row's values as the columns store them; raises if one does not fit."""
    names, row_values, kinds, _, _ = row
    values = list(row_values)
    for i, name in enumerate(names):
        kind, value = kinds[i], values[i]
        if name not in columns:
            if kind is None:
                raise InvalidValue(
                    f"metric {name!r}: cannot create a column from None; log a value first"
                )
            continue
        if kind != columns[name]:
            values[i] = value = _fit(value, kind, columns[name], name)
        if kind == "datetime":
            values[i] = engine.adapt_datetime(value)
        elif kind == "float" and value != value and engine.name == "sqlite":  # NaN
            warnings.warn(
                f"metric {name!r}: SQLite stores NaN as NULL", SQLTrackWarning, stacklevel=4
            )
    return values


def _add_columns(
    client: Client, conn: Any, columns: dict[str, str | None], missing: dict[str, str]
) -> None:
    engine = client.engine
    cur = conn.cursor()
    try:
        engine.add_columns(cur, missing, own_transaction=not client._in_user_block)
    except Exception as e:
        limit = engine.column_limit_error(e)
        if limit is not None:
            raise InvalidValue(f"cannot add metrics {', '.join(missing)}: {limit}") from None
        raise
    finally:
        cur.close()
    columns.update(missing)


def write_rows(client: Client, conn: Any, run_id: int, rows: list[Row]) -> list[InvalidValue]:
    """Write validated calls in order (consecutive calls with the same names together).
    A row that does not fit its columns is left out and its error returned; every other
    row is written."""
    engine = client.engine
    errors: list[InvalidValue] = []
    for names, group in groupby(rows, key=itemgetter(0)):
        columns = _known_columns(client, conn, names)
        batch = list(group)
        params = _plain_params(engine, columns, run_id, names, batch)
        if params is None:  # some rows need converting or new columns: row by row
            params = []
            for row in batch:
                try:
                    values = _fit_row(engine, columns, row)
                except InvalidValue as e:
                    errors.append(e)
                    continue
                if not all(map(columns.__contains__, names)):  # new metrics: add columns
                    kinds = row[2]
                    missing = {n: k for n, k in zip(names, kinds, strict=True) if n not in columns}
                    _add_columns(client, conn, columns, missing)  # type: ignore[arg-type]
                params.append((run_id, row[3], row[4], *values))
        if not params:
            continue
        try:
            _execute_rows(engine, conn, names, params)
        except Exception as e:
            if is_foreign_key_violation(e):
                raise NotFound(f"run {run_id} does not exist") from None
            raise
    return errors


def _plain_params(
    engine: Any,
    columns: Mapping[str, str | None],
    run_id: int,
    names: tuple[str, ...],
    rows: list[Row],
) -> list[tuple[Any, ...]] | None:
    """The rows' parameters if all of them store as they are (the common case), else None.

    They do when the columns exist, need no adapting (datetime) and every row's kinds are
    exactly the columns'; on SQLite, floats must also not be NaN. Checked for the whole
    batch at once, in C where possible."""
    kinds = tuple(map(columns.get, names))
    if None in kinds or "datetime" in kinds:
        return None
    if list(map(itemgetter(2), rows)).count(kinds) != len(rows):
        return None
    if engine.name == "sqlite" and "float" in kinds:
        if kinds.count("float") != len(kinds):
            return None
        total = sum(chain.from_iterable(map(itemgetter(1), rows)))
        if total != total:  # a NaN somewhere (or inf - inf): let the slow path look
            return None
    return [(run_id, row[3], row[4], *row[1]) for row in rows]


_MAX_ROWS = 128  # rows per multi-row statement; more gains nothing measurable


def _execute_rows(engine: Any, conn: Any, names: tuple[str, ...], params: list[Any]) -> None:
    """One upsert per row; where the engine prefers it, several rows per statement."""
    mark = engine.placeholder
    max_rows = engine.max_params(conn) // (3 + len(names)) if len(params) > 1 else 0
    if max_rows > 1:
        # statements of 128, 64, ..., 1 rows: few distinct texts, all in the driver's cache
        i, n = 0, len(params)
        while i < n:
            size = 1 << (min(_MAX_ROWS, max_rows, n - i).bit_length() - 1)
            flat = list(chain.from_iterable(params[i : i + size]))
            conn.execute(_upsert_sql(mark, names, size), flat)
            i += size
    elif len(params) == 1:
        conn.execute(_upsert_sql(mark, names), params[0])
    else:
        cur = conn.cursor()
        try:
            cur.executemany(_upsert_sql(mark, names), params)
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
    if row is None:
        return
    with client as conn:
        errors = write_rows(client, conn, run_id, [row])
        if errors:
            raise errors[0]
