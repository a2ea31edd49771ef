"""A run's curves, downsampled in SQL so that what a chart shows is what was logged.

:func:`run_curves` returns at most ``points`` points per metric, however many steps the
run has: the steps are cut into equal buckets, and each bucket keeps its smallest and
its largest value (at their own steps), so that a spike survives; the last point is
always kept. The database does the work (window functions, on both engines): only the
points a chart draws cross the wire. ``after`` asks only for the steps past one already
seen, which is how a live chart fetches what is new.

A long curve is read from the run's metric blocks (:mod:`sqltrack._write.blocks`, schema
v012) and the values after its last block: the buckets are then whole blocks, so each
keeps the same extremes as from every value, from about 1/128 of the rows.

Both storages are read (the wide ``metrics`` table and the narrow ``metric_points``); a
metric in both is one curve. Numbers only: NaN, infinities, text and times are left out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .._db.client import Client, operation
from .._db.engines.base import quote_identifier
from .._write import blocks
from .._write import points as narrow
from .._write.metrics import known_columns
from .._write.rows import check_id
from ..errors import InvalidValue, NotFound

#: the most points a curve may ask for
MAX_POINTS = 100_000

# {source}: the points of one metric as (step, progress, value), sqltrack's own text.
# With more than :points of them: per bucket of steps, the first step of its smallest
# and of its largest value, and the last point; else every point. (Window aggregates over
# the buckets, which follow the steps: the engines' planners join no table to itself.)
_SAMPLED = """
WITH pts AS ({source}),
span AS (SELECT min(step) AS lo, max(step) AS hi, count(*) AS n FROM pts),
bucketed AS (
    SELECT pts.step, pts.progress, pts.value,
        (pts.step - span.lo) * :buckets / (span.hi - span.lo + 1) AS bucket
    FROM pts, span WHERE span.n > :points
),
extremes AS (
    SELECT step, value, bucket,
        min(value) OVER (PARTITION BY bucket) AS low, max(value) OVER (PARTITION BY bucket) AS high
    FROM bucketed
),
latest AS (
    SELECT step, value FROM pts WHERE step = (SELECT hi FROM span)
    ORDER BY progress DESC LIMIT 1
)
SELECT step, value, 0 AS progress FROM (
    SELECT min(step) AS step, value FROM extremes
    WHERE value = low OR value = high GROUP BY bucket, value
    UNION SELECT step, value FROM latest WHERE (SELECT n FROM span) > :points
) sampled
UNION ALL
SELECT step, value, progress FROM pts WHERE (SELECT n FROM span) <= :points
ORDER BY step, progress
"""
# one metric's numbers in the wide table ({column} quoted and checked; {number} leaves
# NaN out where a float column can hold it)
_WIDE = (
    "SELECT step, progress, {column} AS value FROM metrics "
    "WHERE run_id = :run AND step > :after AND {column} IS NOT NULL{number}"
)
# the same in the narrow storage (NaN left out: ``'NaN'`` is text to SQLite, where no
# number equals it, and the float NaN to PostgreSQL)
_NARROW = (
    "SELECT p.step, p.progress, p.value FROM metric_points p "
    "JOIN metric_names mn ON mn.id = p.name_id "
    "WHERE p.run_id = :run AND mn.name = :name AND p.step > :after "
    "AND p.value IS NOT NULL AND p.value <> 'NaN' AND (p.kind IS NULL OR p.kind = 'int')"
)
_EXISTS = "SELECT id FROM runs WHERE id = :run"
# the progress logged with each of a curve's steps ({source}: the metric's values, {steps}:
# the steps of the curve); a step logged at several progresses gives the largest
_PROGRESS = "SELECT step, max(progress) FROM ({source}) src WHERE {steps} GROUP BY step"
# A long run's curve from its blocks (schema v012), with the values after the metric's last
# block, {source}, taken raw (each as a block of one value). Buckets are whole blocks
# (:origin a block's first step, the width a multiple of :size), so a bucket's extremes
# are those of its blocks: the same points as from every value. The last point is kept.
# (k: the numbers as BIGINT, as a driver may send small ones as SMALLINT.)
_ROLLED = """
WITH k AS (SELECT CAST(:size AS BIGINT) AS size, CAST(:origin AS BIGINT) AS origin,
    CAST(:buckets AS BIGINT) AS buckets),
cand AS (
    SELECT block * (SELECT size FROM k) AS first, min, min_step, max, max_step, last,
        last_step, last_progress
    FROM metric_blocks WHERE run_id = :run AND metric = :name
    UNION ALL SELECT step, value, step, value, step, value, step, progress FROM ({source}) raw
    WHERE step > :s OR (step = :s AND progress > :p)
),
span AS (SELECT max(last_step) AS hi FROM cand),
bucketed AS (
    SELECT cand.*, (cand.first - k.origin)
        / (k.size * ((span.hi - k.origin) / (k.size * k.buckets) + 1)) AS bucket
    FROM cand, span, k
),
extremes AS (
    SELECT bucketed.*, min(min) OVER (PARTITION BY bucket) AS low,
        max(max) OVER (PARTITION BY bucket) AS high
    FROM bucketed
),
latest AS (
    SELECT last_step AS step, last AS value FROM cand WHERE last_step = (SELECT hi FROM span)
    ORDER BY last_progress DESC LIMIT 1
)
SELECT step, value, 0 AS progress FROM (
    SELECT min(min_step) AS step, low AS value FROM extremes WHERE min = low GROUP BY bucket, low
    UNION SELECT min(max_step), high FROM extremes WHERE max = high GROUP BY bucket, high
    UNION SELECT step, value FROM latest
) sampled
ORDER BY step
"""
# per metric with blocks: how many values they hold, the first block, where the last ends
_PLAN = (
    "SELECT b.metric, t.n, t.first, b.last_step, b.last_progress FROM metric_blocks b "
    "JOIN (SELECT metric, sum(count) AS n, min(block) AS first, max(block) AS block "
    "FROM metric_blocks WHERE run_id = :run AND {names} GROUP BY metric) t "
    "ON t.metric = b.metric AND t.block = b.block WHERE b.run_id = :run"
)


def check_points(points: Any) -> int:
    """``points`` if it is a sensible number of points per curve, else InvalidValue."""
    if not isinstance(points, int) or isinstance(points, bool) or not 3 <= points <= MAX_POINTS:
        raise InvalidValue(f"points must be an integer from 3 to {MAX_POINTS}, got {points!r}")
    return points


@operation
def run_curves(
    client: Client,
    run_id: int,
    names: Sequence[str],
    points: int = 1000,
    after: int | None = None,
    progress: bool = False,
) -> dict[str, dict[str, list[Any]]]:
    """The curves of ``names`` of run ``run_id``: ``{name: {"step": [...], "value": [...]}}``,
    at most ``points`` points each (see the module's text), ordered by step.

    Example::

        curves = run_curves(client, run.id, ["train_loss"], points=500)

    :param after: only the steps after this one (a live chart's last step)
    :param progress: each curve also has ``"progress"``: the progress logged with each
        of its steps (for a chart against progress, e.g. epochs)
    :raises NotFound: no such run
    :raises InvalidValue: a bad ``points`` or name; a name the run never logged gives an
        empty curve
    """
    run_id = check_id(run_id, "run")
    points = check_points(points)
    if isinstance(names, str) or not all(isinstance(n, str) and n for n in names):
        raise InvalidValue("names must be a list of metric names")
    if after is not None and (not isinstance(after, int) or isinstance(after, bool)):
        raise InvalidValue(f"after must be a step (an integer), got {after!r}")
    if not isinstance(progress, bool):
        raise InvalidValue(f"progress must be True or False, got {progress!r}")
    wanted = list(dict.fromkeys(names))
    with client as conn:
        if not client.query(_EXISTS, {"run": run_id}):
            raise NotFound(f"run {run_id} does not exist")
        kinds = known_columns(client, conn, ())
        stored = narrow.narrow_names(client, wanted) if narrow.available(client) else {}
        params = {"run": run_id, "after": -(2**62) if after is None else after}
        params.update(points=points, buckets=(points - 1) // 2)
        plans = _plans(client, run_id, wanted, points) if after is None else {}
        curves = {}
        for name in wanted:
            sources = []
            if kinds.get(name) in ("int", "float"):
                number = " AND {0} <> 'NaN'" if kinds[name] == "float" else ""
                column = quote_identifier(name)
                sources.append(_WIDE.format(column=column, number=number.format(column)))
            if name in stored:
                sources.append(_NARROW)
            steps: list[Any] = []
            values: list[Any] = []
            if sources:
                source = " UNION ALL ".join(sources)
                query, named = _SAMPLED.format(source=source), {**params, "name": name}
                if name in plans:  # long enough for its blocks to do
                    query = _ROLLED.format(source=source)
                    named.update(plans[name])
                for step, value, _ in client.query(query, named):
                    if math.isfinite(value):  # (JSON has no infinities)
                        steps.append(step)
                        values.append(float(value))
            curves[name] = {"step": steps, "value": values}
            if progress:
                found = _progress(client, source, params, name, steps) if sources else []
                curves[name]["progress"] = found
    return curves


def _progress(
    client: Client, source: str, params: dict[str, Any], name: str, steps: list[Any]
) -> list[float]:
    """The progress of each of ``steps`` of metric ``name`` in ``source`` (its rows)."""
    if not steps:
        return []
    engine = client.engine
    query = _PROGRESS.format(source=source, steps=engine.in_array("src.step", "steps"))
    found = dict(client.query(query, {**params, "name": name, "steps": engine.adapt_array(steps)}))
    return [float(found.get(step, 0.0)) for step in steps]


def _plans(client: Client, run_id: int, names: list[str], points: int) -> dict[str, Any]:
    """The parameters of :data:`_ROLLED` for each metric of ``names`` whose blocks span
    enough steps for whole blocks to make at least half the buckets a chart of ``points``
    asks for (a shorter curve is read raw: its buckets would be narrower than a block)."""
    if not names or not blocks.available(client):
        return {}
    engine = client.engine
    buckets = (points - 1) // 2
    found = client.query(
        _PLAN.format(names=engine.in_array("metric", "names")),
        {"run": run_id, "names": engine.adapt_array(names)},
    )
    plans = {}
    for name, count, first, last_step, last_progress in found:
        origin = int(first) * blocks.SIZE
        if int(count) > points and 2 * (last_step - origin) >= buckets * blocks.SIZE:
            plans[name] = {
                "origin": origin, "size": blocks.SIZE, "s": int(last_step),
                "p": float(last_progress), "after": int(last_step) - 1,
            }  # fmt: skip
    return plans
