"""Reading back what was tracked: stale runs, and metrics as rows or a pandas DataFrame.

Plain SQL works as well (the schema is public); these functions are the fast, safe way
to load whole runs: one query, binary transfer where the driver has it, columns checked
against the table and quoted.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from .._base.names import KEY_COLUMNS
from .._db.client import Client, operation
from .._db.engines.base import quote_identifier
from .._write import points
from .._write.metrics import known_columns
from .._write.rows import check_experiment, check_id, deleted_condition
from .._write.runs import db_time
from ..errors import InvalidValue, NotFound

if TYPE_CHECKING:
    import pandas

# {visible}: sqltrack's own condition leaving deleted runs out
_STALE_RUNS = (
    "SELECT runs.id FROM runs JOIN experiments ON experiments.id = runs.experiment_id "
    "WHERE (runs.status = 'RUNNING' "
    "OR (runs.status = 'PENDING' AND runs.time_updated IS NOT NULL)) AND {visible} "
    "AND COALESCE(runs.time_updated, runs.time_started, runs.time_created) < :cutoff "
    "AND (CAST(:experiment_id AS BIGINT) IS NULL OR runs.experiment_id = :experiment_id) "
    "ORDER BY COALESCE(runs.time_updated, runs.time_started, runs.time_created), runs.id"
)
_READ_METRICS = "SELECT {columns} FROM metrics WHERE {condition} ORDER BY 1, 2, 3"
_EXISTING = "SELECT id FROM runs WHERE {}"


@operation
def stale_runs(
    client: Client, older_than: float | timedelta = 600, experiment_id: int | None = None
) -> list[int]:
    """Ids of runs that are ``RUNNING``, or ``PENDING`` but logged something (a run that
    logs without ``track()`` or ``start()`` keeps its first status), and have not been
    updated for ``older_than`` (deleted runs left out).

    A job killed with SIGKILL (out of memory, node failure, a time limit without grace)
    cannot record a status, so its run stays ``RUNNING``. While a run logs metrics its
    ``time_updated`` is refreshed; a run silent for longer than its logging interval is
    probably dead. The same in psql::

        SELECT id FROM runs WHERE (status = 'RUNNING'
            OR (status = 'PENDING' AND time_updated IS NOT NULL))
          AND COALESCE(time_updated, time_started, time_created) < now() - interval '10 minutes';

    :param older_than: seconds, or a ``timedelta``
    :param experiment_id: only runs of this experiment
    :return: the run ids, oldest update first
    """
    seconds = older_than.total_seconds() if isinstance(older_than, timedelta) else older_than
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
        raise InvalidValue(
            f"older_than must be a non-negative number of seconds, got {older_than!r}"
        )
    if experiment_id is not None:
        check_experiment(client, experiment_id)
    cutoff = db_time(client, datetime.now(timezone.utc) - timedelta(seconds=seconds), "cutoff")
    query = _STALE_RUNS.format(visible=deleted_condition(client, False))
    rows = client.query(query, {"cutoff": cutoff, "experiment_id": experiment_id})
    return [int(r[0]) for r in rows]


def _run_ids(run_ids: int | Iterable[int]) -> list[int]:
    ids = [run_ids] if isinstance(run_ids, int) else list(run_ids)
    if not ids:
        raise InvalidValue("give at least one run id")
    return [check_id(i, "run") for i in ids]


@operation
def read_metrics(
    client: Client, run_ids: int | Iterable[int], columns: Sequence[str] | None = None
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Return the metrics of one or several runs as ``(column_names, rows)``.

    Rows are ordered by run, step and progress. The first columns are always
    ``run_id, step, progress``.

    Example::

        names, rows = read_metrics(client, run.id, ["train_loss"])

    :param run_ids: a run id or several
    :param columns: metrics to read (default: those that hold at least one value for
        these runs; other experiments' metrics in the shared table are left out)
    :raises InvalidValue: a metric that neither storage has
    :raises NotFound: a run that does not exist

    Both storages are read (see the docs' "Where a metric is stored"): a metric kept
    in the narrow ``metric_points`` is a column here like any other, its values as
    logged; where a key has a value in both, the narrow one is the latest.
    """
    ids = _run_ids(run_ids)
    engine = client.engine
    params = {"ids": engine.adapt_array(ids)}
    with client as conn:
        found = {r[0] for r in client.query(_EXISTING.format(engine.in_array("id", "ids")), params)}
        missing = [i for i in ids if i not in found]
        if missing:
            which = ", ".join(map(str, missing))
            raise NotFound(f"run {which} does not exist" if len(missing) == 1 else
                           f"runs {which} do not exist")  # fmt: skip
        known = known_columns(client, conn, tuple(columns or ()))
        if columns is None:
            wanted = [c for c in known if c not in KEY_COLUMNS]
            narrow: list[str] | None = None  # whatever the runs have there
        else:
            asked = list(dict.fromkeys(c for c in columns if c not in KEY_COLUMNS))
            wanted = [c for c in asked if c in known]
            stored = set(points.narrow_names(client, asked)) if points.available(client) else set()
            unknown = [c for c in asked if c not in known and c not in stored]
            if unknown:
                raise InvalidValue(f"no such metric: {', '.join(map(repr, unknown))}")
            narrow = [c for c in asked if c in stored]
        names = ["run_id", "step", "progress", *wanted]
        query = _READ_METRICS.format(
            columns=", ".join(map(quote_identifier, names)),
            condition=engine.in_array("run_id", "ids"),
        )
        cur = engine.bulk_cursor(conn)
        try:
            cur.execute(engine.sql(query), params)
            rows = cur.fetchall()
        finally:
            cur.close()
        values = []
        if narrow is None or narrow:
            values = points.read_points(client, ids, narrow, ordered=False)
    if values or narrow:  # (asked for: a column even without values)
        names, rows = _with_narrow(names, rows, values, None if columns is None else asked)
    return (names, rows) if columns is not None else _without_empty_columns(names, rows)


def _with_narrow(
    names: list[str],
    rows: list[tuple[Any, ...]],
    values: list[tuple[Any, ...]],
    asked: list[str] | None,
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The wide ``rows`` with the narrow ``values`` ``(run_id, step, progress, name,
    value)`` as columns (a narrow value replaces a wide one of its key), ordered by key;
    the columns in the order ``asked`` (else the wide ones, then the narrow ones sorted
    by name)."""
    metrics = names[3:]
    seen = set(metrics)
    metrics += sorted({v[3] for v in values} - seen)
    if asked is not None:  # (each known to be in one storage or the other)
        metrics = asked
    where = {m: 3 + i for i, m in enumerate(metrics)}
    width = 3 + len(metrics)
    wide_at = [where.get(m) for m in names[3:]]
    merged: dict[tuple[Any, Any, Any], list[Any]] = {}
    for row in rows:
        line = [*row[:3], *([None] * (width - 3))]
        for value, at in zip(row[3:], wide_at, strict=True):
            if at is not None:
                line[at] = value
        merged[row[0], row[1], row[2]] = line
    for run_id, step, progress, name, value in values:
        key = (run_id, step, progress)
        found = merged.get(key)
        if found is None:
            found = merged[key] = [run_id, step, progress, *([None] * (width - 3))]
        found[where[name]] = value
    ordered = sorted(merged.items(), key=itemgetter(0))
    return ["run_id", "step", "progress", *metrics], [tuple(line) for _, line in ordered]


def _without_empty_columns(
    names: list[str], rows: list[tuple[Any, ...]]
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Leave out the metric columns that hold no value in ``rows`` (the metrics table is
    shared: other experiments' metrics are NULL here). A column with a value in its first
    row is kept without looking further, so the common case costs nothing per row."""
    if not rows:
        return names[:3], rows
    first = rows[0]
    keep = [
        i
        for i in range(len(names))
        if i < 3 or first[i] is not None or any(row[i] is not None for row in rows)
    ]
    if len(keep) == len(names):
        return names, rows
    return [names[i] for i in keep], list(map(itemgetter(*keep), rows))


def metrics_dataframe(
    client: Client, run_ids: int | Iterable[int], columns: Sequence[str] | None = None
) -> pandas.DataFrame:
    """Like :func:`read_metrics`, as a ``pandas.DataFrame`` (pandas is an optional extra).

    Example::

        df = metrics_dataframe(client, [run_a, run_b], ["val_loss"])
        df.pivot(index="step", columns="run_id", values="val_loss").plot()
    """
    try:
        import pandas
    except ImportError:
        raise ImportError(
            "metrics_dataframe needs pandas: pip install 'sqltrack[pandas]'"
        ) from None
    names, rows = read_metrics(client, run_ids, columns)
    return pandas.DataFrame.from_records(rows, columns=names)
