"""Metric blocks: per run, numeric metric and block of :data:`SIZE` steps, the count, the
smallest and largest value with their first steps, and the last value, in the table
``metric_blocks`` (schema version 12).

A chart of a long run reads these instead of every value (:mod:`sqltrack._read.curves`):
100,000 steps are 782 blocks. They are kept like the run summaries, and by the same
callers (:mod:`sqltrack._write.summaries`): a tracked run adds, at a heartbeat, the values
above each metric's last rolled-up ``(step, progress)``, merged into the block they fall
in, so the work grows with what was logged since; a rebuild (a requeued job, ``sqltrack
refresh``) forgets the run's blocks and rolls up every value. A reader takes the values
after a metric's last block raw, so blocks behind by a heartbeat still give every point.

Values as the summaries take them: integers as floats, NaN left out, both storages (a
metric in both is one set of blocks).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .._db.client import Client
from .._db.schema import BLOCKS, applied
from . import points
from .rollup import narrow_points, numeric_point, on_conflict, wide_columns, wide_values

#: steps per block (block = floor(step / SIZE)); fixed by schema version 12
SIZE = 128

# floor(step / SIZE) of {s}, the same on both engines (whose % and / truncate)
_BLOCK = f"(({{s}}) - ((({{s}}) % {SIZE}) + {SIZE}) % {SIZE}) / {SIZE}"

# per metric: the (step, progress) of its last value in a block
MARKS = """
SELECT b.metric, b.last_step, b.last_progress FROM metric_blocks b
JOIN (SELECT metric, max(block) AS block FROM metric_blocks WHERE run_id = :run
      GROUP BY metric) t ON t.metric = b.metric AND t.block = b.block
WHERE b.run_id = :run
"""
_FORGET = "DELETE FROM metric_blocks WHERE run_id = :run"

# {new}: (metric, step, progress, value, block) of the values to add. Per block: the count,
# the extremes with their first steps, the last value. Window aggregates, then one GROUP BY.
_ROLL = """
WITH new AS ({new}),
ranked AS (
    SELECT metric, step, progress, value, block,
        min(value) OVER (PARTITION BY metric, block) AS lo,
        max(value) OVER (PARTITION BY metric, block) AS hi,
        row_number() OVER (PARTITION BY metric, block ORDER BY step DESC, progress DESC) AS back
    FROM new
),
agg AS (
    SELECT metric, block, count(*) AS n, min(lo) AS lo,
        min(CASE WHEN value = lo THEN step END) AS lo_step, max(hi) AS hi,
        min(CASE WHEN value = hi THEN step END) AS hi_step,
        max(CASE WHEN back = 1 THEN value END) AS last,
        max(CASE WHEN back = 1 THEN step END) AS last_step,
        max(CASE WHEN back = 1 THEN progress END) AS last_progress
    FROM ranked GROUP BY metric, block
)
INSERT INTO metric_blocks
    (run_id, metric, block, count, min, min_step, max, max_step, last, last_step, last_progress)
SELECT CAST(:run AS BIGINT), metric, block, n, lo, lo_step, hi, hi_step, last, last_step,
    last_progress
FROM agg WHERE true
"""  # ("WHERE true": SQLite's INSERT ... SELECT ... ON CONFLICT needs it)
_ON_CONFLICT = on_conflict("metric_blocks", "run_id, metric, block")
_ROLL += _ON_CONFLICT
#: one block's stats (named parameters) merged into its row: how the buffered writer,
#: which does not read back what it wrote, keeps the blocks (sqltrack._write.batch_summary)
MERGE = """
INSERT INTO metric_blocks
    (run_id, metric, block, count, min, min_step, max, max_step, last, last_step, last_progress)
VALUES (:run, :metric, :block, :count, :min, :min_step, :max, :max_step, :last, :last_step,
    :last_progress)"""
MERGE += _ON_CONFLICT
# the new values of one wide column ({v} and {where}: from rollup.wide_values)
_WIDE = "SELECT CAST(:name AS TEXT) AS metric, m.step, m.progress, {v} AS value, {block} AS block "
_WIDE += "FROM metrics m WHERE {where}"
# the new numeric values of the narrow storage ({source}: from rollup.narrow_points), each
# above its metric's mark
_NARROW = """
SELECT n.name AS metric, p.step, p.progress, p.value, {block} AS block
FROM {source} LEFT JOIN ({marks}) k ON k.metric = n.name
WHERE {numeric} AND (k.metric IS NULL OR p.step > k.last_step
    OR (p.step = k.last_step AND p.progress > k.last_progress))
"""


def available(client: Client) -> bool:
    """Whether the database has ``metric_blocks`` (schema version 12)."""
    return applied(client, BLOCKS)


def block_of(column: str) -> str:
    """SQL for the block of the steps in ``column`` (a column reference, not data)."""
    return _BLOCK.format(s=column)


def update_blocks(
    client: Client, conn: Any, run_id: int, names: Iterable[str] | None, rebuild: bool = False
) -> None:
    """Roll up a run's values that are in no block yet, in the current transaction (see
    the module's text); nothing on a schema before version 12.

    :param names: the metrics to look at (with those rolled up before), in both storages;
        None: every numeric metric of the run
    :param rebuild: forget the run's blocks first and roll up every value again
    """
    if not available(client):
        return
    if rebuild:
        client.query(_FORGET, {"run": run_id})
        marks: dict[str, tuple[int, float]] = {}
    else:
        marks = {m: (s, p) for m, s, p in client.query(MARKS, {"run": run_id})}
    if points.available(client):  # (the narrow statement reads the marks before the wide)
        found = narrow_points(client, run_id, names, marks)
        if found is not None:
            source, params = found
            new = _NARROW.format(
                source=source, block=block_of("p.step"), marks=MARKS,
                numeric=numeric_point(client.engine),
            )  # fmt: skip
            client.query(_ROLL.format(new=new), params)
    for name, kind in wide_columns(client, conn, names, marks):
        value, where, params = wide_values(client.engine, run_id, name, kind, marks)
        new = _WIDE.format(v=value, block=block_of("m.step"), where=where)
        client.query(_ROLL.format(new=new), params)
