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

from .._base.names import KEY_COLUMNS
from .._db.client import Client
from .._db.engines.base import quote_identifier
from .._db.schema import BLOCKS, applied
from . import points
from .metrics import MetricsTable, known_columns

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
"""
_ON_CONFLICT = """
ON CONFLICT (run_id, metric, block) DO UPDATE SET
    count = metric_blocks.count + excluded.count,
    min = CASE WHEN excluded.min < metric_blocks.min THEN excluded.min ELSE metric_blocks.min END,
    min_step = CASE WHEN excluded.min < metric_blocks.min
        THEN excluded.min_step ELSE metric_blocks.min_step END,
    max = CASE WHEN excluded.max > metric_blocks.max THEN excluded.max ELSE metric_blocks.max END,
    max_step = CASE WHEN excluded.max > metric_blocks.max
        THEN excluded.max_step ELSE metric_blocks.max_step END,
    last = CASE WHEN {later} THEN excluded.last ELSE metric_blocks.last END,
    last_progress = CASE WHEN {later}
        THEN excluded.last_progress ELSE metric_blocks.last_progress END,
    last_step = CASE WHEN {later} THEN excluded.last_step ELSE metric_blocks.last_step END
"""
_ON_CONFLICT = _ON_CONFLICT.replace(
    "{later}",
    "(excluded.last_step > metric_blocks.last_step OR (excluded.last_step = "
    "metric_blocks.last_step AND excluded.last_progress > metric_blocks.last_progress))",
)
_ROLL += _ON_CONFLICT
#: one block's stats (named parameters) merged into its row: how the buffered writer,
#: which does not read back what it wrote, keeps the blocks (sqltrack._write.batch_summary)
MERGE = """
INSERT INTO metric_blocks
    (run_id, metric, block, count, min, min_step, max, max_step, last, last_step, last_progress)
VALUES (:run, :metric, :block, :count, :min, :min_step, :max, :max_step, :last, :last_step,
    :last_progress)"""
MERGE += _ON_CONFLICT
# the new values of one wide column ({v}: the checked, quoted column as a float; {where}:
# the run, not NULL, not NaN, above the metric's mark)
_WIDE = "SELECT CAST(:name AS TEXT) AS metric, m.step, m.progress, {v} AS value, {block} AS block "
_WIDE += "FROM metrics m WHERE {where}"
# the new numeric values of the narrow storage, each above its metric's mark
_NARROW = """
SELECT n.name AS metric, p.step, p.progress, p.value, {block} AS block
FROM metric_points p JOIN metric_names n ON n.id = p.name_id
LEFT JOIN ({marks}) k ON k.metric = n.name
WHERE p.run_id = :run AND {numeric} AND (k.metric IS NULL OR p.step > k.last_step
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

    :param names: the wide columns to look at (with those rolled up before); None: every
        numeric column. The narrow storage is looked at whole (one statement).
    :param rebuild: forget the run's blocks first and roll up every value again
    """
    if not available(client):
        return
    engine = client.engine
    params: dict[str, Any] = {"run": run_id}
    if rebuild:
        client.query(_FORGET, params)
        marks: dict[str, tuple[int, float]] = {}
    else:
        marks = {m: (s, p) for m, s, p in client.query(MARKS, params)}
    if points.available(client):  # (the narrow statement reads the marks before the wide)
        _roll_narrow(client, run_id, names)
    columns = known_columns(client, conn, ())
    wanted = set(columns) - KEY_COLUMNS if names is None else {*names, *marks}
    real = engine.column_types["float"]
    for name in sorted(n for n in wanted if columns.get(n) in ("int", "float")):
        column = f"m.{quote_identifier(name)}"
        where = f"m.run_id = :run AND {column} IS NOT NULL"
        if columns[name] == "float" and engine.stores_nan:
            where += f" AND {column} <> CAST('NaN' AS {real})"
        named = {**params, "name": name}
        if name in marks:
            named["s"], named["p"] = marks[name]
            where += " AND m.step >= :s AND (m.step > :s OR m.progress > :p)"
        new = _WIDE.format(v=f"CAST({column} AS {real})", block=block_of("m.step"), where=where)
        client.query(_ROLL.format(new=new), named)


def _roll_narrow(client: Client, run_id: int, names: Iterable[str] | None) -> None:
    """:func:`update_blocks` for the narrow storage: every metric of the run there, or
    those of ``names``; no round trip for names this client knows to be columns without
    narrow values (a training run's heartbeat), as the summaries do."""
    engine = client.engine
    numeric = "p.value IS NOT NULL AND (p.kind IS NULL OR p.kind = 'int')"
    if engine.stores_nan:
        numeric += " AND p.value <> CAST('NaN' AS DOUBLE PRECISION)"
    params: dict[str, Any] = {"run": run_id}
    if names is not None:
        table: MetricsTable | None = client.metrics_cache
        wanted = sorted(
            {n for n in names if table is None or n in table.names or n not in table.columns}
        )
        if not wanted:
            return
        numeric += " AND " + engine.in_array("n.name", "names")
        params["names"] = engine.adapt_array(wanted)
    new = _NARROW.format(block=block_of("p.step"), marks=MARKS, numeric=numeric)
    client.query(_ROLL.format(new=new), params)
