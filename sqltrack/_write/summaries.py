"""Run summaries: per run and numeric metric, the count, the last value and the smallest
and largest with their steps, in the table ``run_summaries`` (schema version 3).

They make questions like "best val_loss per run" one short query on a small table
instead of a scan of ``metrics``. A tracked run keeps its own summary current
(:class:`Upkeep`): at a heartbeat it adds the values above each metric's last summarized
``(step, progress)``, so the work grows with what was logged since, not with the run's
length; at ``stop()`` it does the same, or rebuilds the summary if the run logged a step
below one it had logged before (a requeued job that resumed from a checkpoint). For runs
written by other means (``run_add_metrics``, SQL, an old version) :func:`refresh_summaries`
rebuilds summaries; ``sqltrack refresh`` calls it.

Integer metrics are summarized as floats; NaN is left out; booleans, text and times are
not summarized. Values of the narrow storage (schema v010) are summarized alike, all of a
run's metrics there in one statement; a metric with values in both storages has one
summary of both.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .._db.client import Client, operation
from .._db.schema import SUMMARIES, applied, require
from ..errors import InvalidValue
from . import blocks, points
from .batch_summary import ON_CONFLICT
from .rollup import narrow_points, numeric_point, wide_columns, wide_values
from .rows import check_experiment, check_runs, mine

_WATERMARKS = "SELECT metric, last_step, last_progress FROM run_summaries WHERE run_id = :run"
_FORGET = "DELETE FROM run_summaries WHERE run_id = :run"
# {v}: a quoted, checked metric column (as a float); {new}: the conditions of the values to
# add (the run, not NULL, not NaN, above the summary's last step). Values are parameters.
# One scan for the aggregates; the last value and the steps of the extremes are index
# lookups (the primary key is run_id, step, progress).
_UPDATE = """
WITH agg AS (SELECT count({v}) AS n, min({v}) AS lo, max({v}) AS hi FROM metrics m WHERE {new})
INSERT INTO run_summaries
    (run_id, metric, count, last, last_step, last_progress, min, min_step, max, max_step)
SELECT CAST(:run AS BIGINT), CAST(:name AS TEXT), n,
    (SELECT {v} FROM metrics m WHERE {new} ORDER BY m.step DESC, m.progress DESC LIMIT 1),
    (SELECT m.step FROM metrics m WHERE {new} ORDER BY m.step DESC, m.progress DESC LIMIT 1),
    (SELECT m.progress FROM metrics m WHERE {new}
     ORDER BY m.step DESC, m.progress DESC LIMIT 1),
    lo, (SELECT m.step FROM metrics m WHERE {new} AND {v} = agg.lo
         ORDER BY m.step, m.progress LIMIT 1),
    hi, (SELECT m.step FROM metrics m WHERE {new} AND {v} = agg.hi
         ORDER BY m.step, m.progress LIMIT 1)
FROM agg WHERE n > 0
"""
_UPDATE += ON_CONFLICT  # (it has no {} fields for the format() above)
# The same for the numeric metrics of the narrow storage (schema v010), all at once: the
# values above each metric's watermark grouped by metric; the last value and the steps of
# the extremes are index lookups (the primary key is run_id, name_id, step, progress).
# {source}: from sqltrack._write.rollup.narrow_points; {numeric}: the condition of a numeric value
# (without NaN on PostgreSQL). "WHERE true": SQLite's INSERT ... SELECT ... ON CONFLICT
# needs it.
_UPDATE_NARROW = """
WITH marks AS (SELECT metric, last_step, last_progress FROM run_summaries WHERE run_id = :run),
new AS (
    SELECT p.name_id, n.name AS metric, p.step, p.value
    FROM {source} LEFT JOIN marks k ON k.metric = n.name
    WHERE {numeric} AND (k.metric IS NULL OR p.step > k.last_step
        OR (p.step = k.last_step AND p.progress > k.last_progress))
),
agg AS (
    SELECT name_id, metric, count(*) AS n, min(value) AS lo, max(value) AS hi,
        min(step) AS first
    FROM new GROUP BY name_id, metric
)
INSERT INTO run_summaries
    (run_id, metric, count, last, last_step, last_progress, min, min_step, max, max_step)
SELECT CAST(:run AS BIGINT), metric, n,
    (SELECT p.value FROM metric_points p WHERE {point} ORDER BY p.step DESC, p.progress DESC
     LIMIT 1),
    (SELECT p.step FROM metric_points p WHERE {point} ORDER BY p.step DESC, p.progress DESC
     LIMIT 1),
    (SELECT p.progress FROM metric_points p WHERE {point}
     ORDER BY p.step DESC, p.progress DESC LIMIT 1),
    lo, (SELECT p.step FROM metric_points p WHERE {point} AND p.step >= agg.first
         AND p.value = agg.lo ORDER BY p.step, p.progress LIMIT 1),
    hi, (SELECT p.step FROM metric_points p WHERE {point} AND p.step >= agg.first
         AND p.value = agg.hi ORDER BY p.step, p.progress LIMIT 1)
FROM agg WHERE true
"""
_UPDATE_NARROW += ON_CONFLICT


def available(client: Client) -> bool:
    """Whether the database has ``run_summaries`` (schema version 3)."""
    return applied(client, SUMMARIES)


def check_available(client: Client) -> None:
    """Raise :class:`SchemaError` unless the database has ``run_summaries``."""
    require(client, SUMMARIES, "run summaries need")


def update_summary(
    client: Client, conn: Any, run_id: int, names: Iterable[str] | None, rebuild: bool = False
) -> None:
    """Add a run's values that are not in its summary yet (in the current transaction,
    after the run's row was locked or updated, so that two writers of one run take turns).

    :param names: the metrics to look at (with those already summarized); None: every
        numeric metric column
    :param rebuild: forget the summary first and summarize every value again
    """
    blocks.update_blocks(client, conn, run_id, names, rebuild=rebuild)  # (the same values)
    if rebuild:
        client.query(_FORGET, {"run": run_id})
        marks: dict[str, tuple[int, float]] = {}
    else:
        marks = {m: (s, p) for m, s, p in client.query(_WATERMARKS, {"run": run_id})}
    if points.available(client):  # first: the wide part moves the watermarks
        _update_narrow(client, run_id, names, marks)
    for name, kind in wide_columns(client, conn, names, marks):
        value, new, params = wide_values(client.engine, run_id, name, kind, marks)
        client.query(_UPDATE.format(v=value, new=new), params)


def _update_narrow(
    client: Client,
    run_id: int,
    names: Iterable[str] | None,
    marks: dict[str, tuple[int, float]],
) -> None:
    """:func:`update_summary` for the narrow storage: every metric of the run there, or
    those of ``names``, from the lowest of their watermarks on (one statement)."""
    found = narrow_points(client, run_id, names, marks)
    if found is not None:
        numeric = numeric_point(client.engine)
        point = f"p.run_id = :run AND p.name_id = agg.name_id AND {numeric}"
        source, params = found
        client.query(_UPDATE_NARROW.format(source=source, numeric=numeric, point=point), params)


@operation
def refresh_summaries(client: Client, *run_ids: int, experiment: int | str | None = None) -> int:
    """Rebuild the summaries and metric blocks of runs from their metrics: for runs
    written by other means than a tracked :class:`~sqltrack.Run` (``run_add_metrics``,
    SQL, a merge, an older sqltrack). Each run is one transaction.

    Example::

        refresh_summaries(client, experiment="sweep")  # or (client, 17, 18); or all runs

    :param run_ids: the runs; none (and no experiment): every run
    :param experiment: the runs of this experiment (a name or an id)
    :return: how many runs were refreshed (on a lab's server, runs of other roles are
        left alone: their creators, or an admin, refresh them)
    :raises SchemaError: the database has no ``run_summaries`` (run ``sqltrack setup``)
    :raises NotFound: a run or the experiment does not exist
    """
    ids = mine(client, "runs", refresh_targets(client, run_ids, experiment))[0]
    lock = client.engine.lock_row_sql("runs", "id")
    done = 0
    for run_id in ids:
        with client as conn:
            if client.query(lock, {"id": run_id}):  # a deleted run has nothing to refresh
                update_summary(client, conn, run_id, None, rebuild=True)
                done += 1
    return done


def refresh_targets(
    client: Client, run_ids: Iterable[int], experiment: int | str | None = None
) -> list[int]:
    """The runs :func:`refresh_summaries` is asked to refresh: these, the experiment's,
    or (neither given) every run; those of other roles on a lab's server included."""
    run_ids = list(run_ids)
    check_available(client)
    if experiment is not None and run_ids:
        raise InvalidValue("refresh: give run ids or an experiment, not both")
    ids = check_runs(client, run_ids) if run_ids else []
    if experiment is not None:
        check_experiment(client, experiment)
        column = "e.name" if isinstance(experiment, str) else "e.id"
        found = client.query(
            f"SELECT r.id FROM runs r JOIN experiments e ON e.id = r.experiment_id "  # noqa: S608
            f"WHERE {column} = :e ORDER BY r.id",
            {"e": experiment},
        )
        ids = [int(r[0]) for r in found]
    elif not ids:
        ids = [int(r[0]) for r in client.query("SELECT id FROM runs ORDER BY id")]
    return ids


def catch_up(client: Client, run_id: int) -> None:
    """Add a run's values that are not in its summary yet, in a transaction of its own
    (after a spool was pushed); nothing if the schema has no summaries."""
    with client as conn:
        if applied(client, SUMMARIES) and client.query(
            client.engine.lock_row_sql("runs", "id"), {"id": run_id}
        ):
            update_summary(client, conn, run_id, None)
