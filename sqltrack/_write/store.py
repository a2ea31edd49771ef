"""Where each metric value goes: the wide ``metrics`` table or the narrow storage.

Every write path (a run's ``add_metrics``, the buffered writer, the spool, a merge)
comes through :func:`write_rows`. Once the database has the narrow storage (schema
v010, :mod:`sqltrack._write.points`), each value of a call goes, in this order:

1. to the **narrow storage**, if the name is there already (any run put it there);
2. to its **wide column**, if the name has one and the value fits it: the same kind, an
   int for a float column (up to 2**53, exact as a float), or None;
3. to a **new wide column**, if the name is a column name (:func:`~sqltrack._base.names.
   is_column_name`), the table has fewer metric columns than the engine's
   ``column_budget`` and the call brings at most :data:`WIDE_STEP` new column names; a
   new numeric name gets a float column, which takes ints and floats alike (an int past
   2**53 as a name's first value makes no column);
4. else to the **narrow storage**: names that are not identifiers (``train/loss``,
   ``Loss``), names past the budget, the names of a wide step (an eval harness's 2,000
   task metrics), and values that do not fit their column (a float for an old ``BIGINT``
   column, a str for a float column), which are read back as logged.

A key (run, step, progress) holds a name's value in one storage only: a value that
goes narrow for a name that is also a column empties the column at its key.

Before v010 only the wide table exists and a value that does not fit its column is
refused (:class:`~sqltrack.errors.InvalidValue`), as sqltrack 0.2 did.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .._base.calls import Row, validate
from .._base.names import KEY_COLUMNS, is_column_name
from .._base.values import EXACT_FLOAT_INT
from .._db.client import Client, operation
from .._db.engines.base import quote_identifier
from ..errors import InvalidValue, warn
from . import points
from .metrics import (
    MetricsTable,
    execute_plain,
    fits_column,
    new_column_kind,
    plain_upsert,
    raise_not_found,
    table_for,
    write_wide,
)

#: the most new names one call may bring into the wide table; a call with more (an eval
#: harness's step) puts its new names in the narrow storage
WIDE_STEP = 64

Collect = Callable[[tuple[str, ...], tuple["str | None", ...], list[Any], bool], None]
# a plan for the calls of one (names, kinds): positions that go wide, positions that go
# narrow, and positions of ints bound for float columns (narrow beyond 2**53); a
# position in neither is a None for a name stored nowhere yet (nothing to write)
Plan = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]
# {sets}: "column = NULL" for existing metric columns, quoted (sqltrack's own text)
_CLEAR = "UPDATE metrics SET {sets} WHERE run_id = :run AND step = :step AND progress = :progress"


def write_row(client: Client, conn: Any, run_id: int, row: Row) -> None:
    """Write one validated call (the synchronous path) in the current transaction.

    :raises InvalidValue: a value does not fit its column (before schema v010).
    :raises NotFound: the run does not exist.
    """
    upsert = plain_upsert(client, row)
    if upsert is not None:
        execute_plain(client, conn, upsert, run_id, row)
        return
    refused = write_rows(client, conn, run_id, [row])
    if refused:
        raise refused[0][1]


def write_rows(
    client: Client, conn: Any, run_id: int, rows: list[Row], collect: Collect | None = None
) -> list[tuple[Row, InvalidValue]]:
    """Write validated calls in order, each value where the module doc says. A call
    with a value the database cannot take (before v010: one that does not fit its
    column) is left out and returned with its error; every other call is written.

    A value that goes to the narrow storage for a name that is also a column empties
    that column at its key: a key has its value in one storage only.

    :param collect: given ``(names, kinds, parameters, no_nan)`` of each group of values
        written, as :func:`~sqltrack._write.metrics.write_wide` describes (a narrow
        value: a group of one name): the buffered writer's summaries
    """
    if not rows:
        return []
    if not points.available(client):
        return write_wide(client, conn, run_id, rows, collect)
    refused = _write_rows(client, conn, run_id, rows, collect)
    if refused:  # a column another writer made first, of another kind: narrow after all
        table = table_for(client, conn, ())
        _forget_routes(table, {n for row, _ in refused for n in row[0]})
        refused = _write_rows(client, conn, run_id, [row for row, _ in refused], collect)
    return refused


def _write_rows(
    client: Client, conn: Any, run_id: int, rows: list[Row], collect: Collect | None
) -> list[tuple[Row, InvalidValue]]:
    known = client.metrics_cache
    if known is not None:  # the buffered writer's common case: one call, repeated
        names, kinds = rows[0][0], rows[0][2]
        plan = known.routes.get((names, kinds))
        if plan is not None and all(r[0] == names and r[2] == kinds for r in rows):
            split = _split(known, rows, plan)
            if split is not None:
                wide_rows, narrow_items = split
                refused = write_wide(client, conn, run_id, wide_rows, collect) if wide_rows else []
                if narrow_items:
                    _write_narrow(client, conn, run_id, narrow_items, collect)
                return refused
    plans = _plans(client, conn, rows)
    table = table_for(client, conn, ())
    wide: list[Row] = []
    narrow: list[tuple[str, str | None, Any, int, float]] = []
    cleared: dict[tuple[str, ...], list[tuple[int, float]]] = {}
    for row in rows:
        names, values, kinds, step, progress = row
        to_wide, to_narrow, ints = plans[names, kinds]
        if ints and any(abs(values[i]) > EXACT_FLOAT_INT for i in ints):
            big = {i for i in ints if abs(values[i]) > EXACT_FLOAT_INT}
            to_narrow = (*to_narrow, *sorted(big))
            to_wide = tuple(i for i in to_wide if i not in big)
            _forget_routes(table, {names[i] for i in big})  # narrow from now on
        if not to_narrow and len(to_wide) == len(names):
            wide.append(row)
            continue
        if to_wide:
            wide.append(
                (
                    tuple(names[i] for i in to_wide),
                    tuple(values[i] for i in to_wide),
                    tuple(kinds[i] for i in to_wide),
                    step,
                    progress,
                )
            )
        narrow.extend((names[i], kinds[i], values[i], step, progress) for i in to_narrow)
        also_wide = tuple(names[i] for i in to_narrow if names[i] in table.columns)
        if also_wide:
            cleared.setdefault(also_wide, []).append((step, progress))
    refused = write_wide(client, conn, run_id, wide, collect) if wide else []
    if narrow:
        _write_narrow(client, conn, run_id, narrow, collect)
        for names, keys in cleared.items():
            _clear_wide(client, conn, run_id, names, keys)
    return refused


def _split(
    table: MetricsTable, rows: list[Row], plan: Plan
) -> tuple[list[Row], list[tuple[str, str | None, Any, int, float]]] | None:
    """The wide rows and narrow values of calls that all have the same names, kinds and
    ``plan``; None where the general path must decide: an int past 2**53 bound for a
    float column, or a narrow value of a name that is also a column (to be cleared)."""
    to_wide, to_narrow, ints = plan
    if ints and any(abs(row[1][i]) > EXACT_FLOAT_INT for row in rows for i in ints):
        return None
    names, kinds = rows[0][0], rows[0][2]
    if not to_narrow and len(to_wide) == len(names):
        return rows, []
    if any(names[i] in table.columns for i in to_narrow):
        return None
    wide: list[Row] = []
    if to_wide:
        wide_names, wide_kinds = tuple(names[i] for i in to_wide), tuple(kinds[i] for i in to_wide)
        wide = [
            (wide_names, tuple([row[1][i] for i in to_wide]), wide_kinds, row[3], row[4])
            for row in rows
        ]
    narrow = [(names[i], kinds[i], row[1][i], row[3], row[4]) for row in rows for i in to_narrow]
    return wide, narrow


def _forget_routes(table: MetricsTable, names: set[str]) -> None:
    """Forget the plans of calls with these names (now in the narrow storage)."""
    for key in [k for k in table.routes if not names.isdisjoint(k[0])]:
        del table.routes[key]
    for key in [k for k in table.plain if not names.isdisjoint(k[0])]:
        del table.plain[key]


def _clear_wide(
    client: Client, conn: Any, run_id: int, names: tuple[str, ...], keys: list[tuple[int, float]]
) -> None:
    """Empty these columns of the run's rows at these keys (their values are narrow now)."""
    # the names are existing columns (read from the database), quoted
    sets = ", ".join(f"{quote_identifier(n)} = NULL" for n in names)
    statement = client.engine.positional(_CLEAR.format(sets=sets))
    cur = conn.cursor()
    try:
        cur.executemany(statement, [(run_id, step, progress) for step, progress in keys])
    finally:
        cur.close()


def _plans(client: Client, conn: Any, rows: list[Row]) -> dict[tuple[Any, Any], Plan]:
    """The plan of every (names, kinds) of ``rows``, from the client's cache or made now
    (one lookup in ``metric_names`` of the names this client has not looked up yet)."""
    keys = dict.fromkeys((row[0], row[2]) for row in rows)
    table = client.metrics_cache
    routes = None if table is None else table.routes
    if routes is not None and all(map(routes.__contains__, keys)):
        return routes  # type: ignore[no-any-return]
    wanted = {n for names, _ in keys for n in names}
    table = table_for(client, conn, tuple(n for n in wanted if _unknown(table, n)))
    unchecked = [n for n in wanted if n not in table.checked]
    table.names.update(points.narrow_names(client, unchecked))
    table.checked.update(unchecked)
    # a new name whose first values include an int a float column cannot hold exactly
    big = {
        row[0][i]
        for row in rows
        for i, kind in enumerate(row[2])
        if kind == "int" and abs(row[1][i]) > EXACT_FLOAT_INT
    }
    budget = client.engine.column_budget - sum(1 for c in table.columns if c not in KEY_COLUMNS)
    if not table.widens:  # a role that does not own the table: new names go narrow
        budget = 0
    plans = {}
    # columns that earlier plans of these rows add: later calls see them as columns
    columns: dict[str, str | None] = table.columns
    for key in keys:
        plan = table.routes.get(key)
        if plan is None:
            plan = _plan(columns, table.names, *key, budget, big)
            names, kinds = key
            new = {  # (a new column's value is never None)
                names[i]: new_column_kind(str(kinds[i])) for i in plan[0] if names[i] not in columns
            }
            if new:
                columns = {**columns, **new}
                budget -= len(new)
            if len(plan[0]) + len(plan[1]) == len(names):  # (else: not for later calls)
                table.routes[key] = plan
        plans[key] = plan
    return plans


def _unknown(table: MetricsTable | None, name: str) -> bool:
    """Whether a name calls for reading the columns anew: neither a column, nor a name
    looked up in ``metric_names`` already (those are decided)."""
    return table is None or (name not in table.columns and name not in table.checked)


def _plan(
    columns: Mapping[str, str | None],
    narrow_known: Mapping[str, int],
    names: tuple[str, ...],
    kinds: tuple[str | None, ...],
    budget: int,
    big: set[str],
) -> Plan:
    new = [
        i
        for i, n in enumerate(names)
        if n not in columns
        and n not in narrow_known
        and kinds[i] is not None
        and n not in big
        and is_column_name(n)
    ]
    # new names that may become columns: all of them, or none (a wide step stays whole)
    may_widen = len(new) <= min(WIDE_STEP, budget)
    wide, narrow, ints = [], [], []
    for i, name in enumerate(names):
        kind = kinds[i]
        if name in narrow_known:
            narrow.append(i)  # a name with values there keeps them there
            continue
        if name in columns:
            column = columns[name]
            if fits_column(kind, column):
                wide.append(i)
                if kind == "int" and column == "float":
                    ints.append(i)
                continue
        else:
            if kind is None:
                continue  # nothing to store, and no column to make of it
            if may_widen and name not in big and is_column_name(name):
                wide.append(i)
                if kind == "int":
                    ints.append(i)  # a new numeric column is a float column
                continue
        narrow.append(i)
    return tuple(wide), tuple(narrow), tuple(ints)


def _write_narrow(
    client: Client,
    conn: Any,
    run_id: int,
    items: list[tuple[str, str | None, Any, int, float]],
    collect: Collect | None,
) -> None:
    """Write values to the narrow storage (the last value of a key wins)."""
    table = table_for(client, conn, ())
    # (the names the plans did not find were looked up by _plans in this call)
    ids = points.name_ids(client, (item[0] for item in items), table.names, looked_up=True)
    encode = points.encode
    rows = [
        (run_id, ids[n], s, p, v, None, None)
        if k == "float"
        else (run_id, ids[n], s, p, *encode(v, k))
        for n, k, v, s, p in items
    ]  # (a float is stored as it is: encode's common case, without the call)
    if not client.engine.stores_nan:
        for name in {item[0] for item in items if item[2] != item[2]}:  # (only NaN is not itself)
            warn(f"metric {name!r}: {client.engine.label} stores NaN as NULL")
    if len({row[1:4] for row in rows}) < len(rows):  # a key written twice: the last value wins
        latest: dict[tuple[int, int, float], tuple[Any, ...]] = {}
        for row in rows:
            latest.pop(row[1:4], None)  # (moved to the end: the order of the last call)
            latest[row[1:4]] = row
        rows = list(latest.values())
    try:
        points.write_points(client, conn, rows)
    except Exception as e:
        raise_not_found(client, e, run_id)
        raise
    if collect is not None:
        _collect_narrow(items, run_id, collect)


def _collect_narrow(
    items: list[tuple[str, str | None, Any, int, float]], run_id: int, collect: Collect
) -> None:
    """Hand the numeric narrow values to ``collect``, one group per name, in call order."""
    groups: dict[tuple[str, str], list[Any]] = {}
    for name, kind, value, step, progress in items:
        if kind in ("int", "float"):
            groups.setdefault((name, kind), []).append((run_id, step, progress, value))
    for (name, kind), params in groups.items():
        collect((name,), (kind,), params, False)


@operation
def run_add_metrics(
    client: Client, run_id: int, metrics: Mapping[str, Any], step: int = 0, progress: float = 0.0
) -> None:
    """Add metrics to a run: one row per ``(run_id, step, progress)``.

    A second call for the same ``(step, progress)`` merges its values into the row
    (values of the same metric are replaced). Either ``step`` or ``progress`` should
    change between calls, or earlier values are overwritten. Where each value is stored
    (a column of ``metrics`` or the narrow ``metric_points``) is sqltrack's choice, see
    the docs' "Where a metric is stored"; every reader sees both.

    Example::

        run_add_metrics(client, run_id, {"train_loss": 0.25, "eval/accuracy": 0.9}, step=100)

    :param client: the Client to use
    :param run_id: which existing run the metrics belong to
    :param metrics: ``{name: value}``; names of up to 250 letters, digits, ``_ / . -``
        and spaces; values bool, int, float, str, an aware datetime, None, or a scalar
        with ``.item()``
    :param step: the step (an integer, e.g. the iteration)
    :param progress: progress as a float (e.g. the epoch, or the fraction of training done)
    :raises InvalidMetricName: a name that is not a valid metric name (with a suggestion)
    :raises InvalidValue: a value of an unsupported type (or, before ``sqltrack setup``
        brought the schema to v010, one that does not fit its column)
    :raises NotFound: the run does not exist
    """
    row = validate(metrics, step, progress)
    if row is not None:
        with client as conn:
            write_row(client, conn, run_id, row)
