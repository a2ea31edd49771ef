"""What the run summaries (:mod:`sqltrack._write.summaries`, schema v003) and the metric
blocks (:mod:`sqltrack._write.blocks`, v012) share. Both keep, per group of a run's
numeric values, the count, the smallest and largest value with their first steps, and
the last value; both add only the values above a mark (the ``(step, progress)`` of the
last value rolled up); both merge new stats into a stored row by one rule
(:func:`on_conflict`), which the buffered writer's in-memory merge follows too
(:mod:`sqltrack._write.batch_summary`).

Numbers only: integers are taken as floats, NaN is left out.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .._base.names import KEY_COLUMNS
from .._db.client import Client
from .._db.engines.base import Engine, quote_identifier
from .metrics import MetricsTable, known_columns

#: the metric kinds rolled up
SUMMARIZED = ("int", "float")
_LOWEST_STEP = -(2**63)
# every point of the run (a rebuild, a catch-up)
_RUN_POINTS = "metric_points p JOIN metric_names n ON n.id = p.name_id AND p.run_id = :run"
# the points of some names from a step on ({names}: the engine's "n.name is one of
# :names"): a range of the primary key (run_id, name_id, step, progress) per name
_NAMED_POINTS = (
    "metric_names n JOIN metric_points p ON p.run_id = :run AND p.name_id = n.id "
    "AND p.step >= :floor AND {names}"
)


def on_conflict(table: str, key: str) -> str:
    """The ``ON CONFLICT`` clause that merges new stats (``excluded``) into ``table``'s row
    of ``key`` (both constants of this package, not data): counts add up, the smaller
    minimum and the larger maximum win (the earlier step on a tie), the last value is the
    one at the higher ``(step, progress)`` (the newer on a tie)."""
    newer = (
        f"(excluded.last_step > {table}.last_step OR (excluded.last_step = "
        f"{table}.last_step AND excluded.last_progress >= {table}.last_progress))"
    )
    return f"""
ON CONFLICT ({key}) DO UPDATE SET
    count = {table}.count + excluded.count,
    last = CASE WHEN {newer} THEN excluded.last ELSE {table}.last END,
    last_step = CASE WHEN {newer} THEN excluded.last_step ELSE {table}.last_step END,
    last_progress = CASE WHEN {newer}
        THEN excluded.last_progress ELSE {table}.last_progress END,
    min = CASE WHEN excluded.min < {table}.min THEN excluded.min ELSE {table}.min END,
    min_step = CASE WHEN excluded.min < {table}.min
        THEN excluded.min_step ELSE {table}.min_step END,
    max = CASE WHEN excluded.max > {table}.max THEN excluded.max ELSE {table}.max END,
    max_step = CASE WHEN excluded.max > {table}.max
        THEN excluded.max_step ELSE {table}.max_step END
"""


def wide_columns(
    client: Client, conn: Any, names: Iterable[str] | None, marks: dict[str, Any]
) -> list[tuple[str, str]]:
    """``(name, kind)`` of the numeric columns of ``metrics`` to look at: those of
    ``names`` and of ``marks`` (rolled up before), or every one for None."""
    columns = known_columns(client, conn, ())
    wanted = set(columns) - KEY_COLUMNS if names is None else {*names, *marks}
    kinds = ((n, columns.get(n)) for n in sorted(wanted))
    return [(n, kind) for n, kind in kinds if kind is not None and kind in SUMMARIZED]


def wide_values(
    engine: Engine, run_id: int, name: str, kind: str, marks: dict[str, tuple[int, float]]
) -> tuple[str, str, dict[str, Any]]:
    """The values of column ``name`` (of ``kind``) of the run to roll up: SQL for one as a
    float, the condition on ``metrics m`` (the run, not NULL, not NaN, above the column's
    mark) and its parameters (``:run``, ``:name``, the mark's ``:s`` and ``:p``)."""
    real = engine.column_types["float"]
    column = f"m.{quote_identifier(name)}"
    where = f"m.run_id = :run AND {column} IS NOT NULL"
    if kind == "float" and engine.stores_nan:
        where += f" AND {column} <> CAST('NaN' AS {real})"
    params: dict[str, Any] = {"run": run_id, "name": name}
    if name in marks:
        params["s"], params["p"] = marks[name]
        where += " AND m.step >= :s AND (m.step > :s OR m.progress > :p)"
    return f"CAST({column} AS {real})", where, params


def numeric_point(engine: Engine) -> str:
    """The condition of a numeric value of ``metric_points p`` (not NaN)."""
    numeric = "p.value IS NOT NULL AND (p.kind IS NULL OR p.kind = 'int')"
    if engine.stores_nan:
        numeric += " AND p.value <> CAST('NaN' AS DOUBLE PRECISION)"
    return numeric


def narrow_points(
    client: Client, run_id: int, names: Iterable[str] | None, marks: dict[str, tuple[int, float]]
) -> tuple[str, dict[str, Any]] | None:
    """Where the run's narrow values to roll up are read from (``metric_points p`` joined
    to ``metric_names n``) and its parameters: every metric of the run there (None), or
    those of ``names`` from the lowest of their marks on; None when there is nothing to
    read. Names this client knows to be columns without narrow values (a training run's
    heartbeat) cost no round trip: it writes every narrow value through its cache."""
    params: dict[str, Any] = {"run": run_id}
    if names is None:
        return _RUN_POINTS, params
    table: MetricsTable | None = client.metrics_cache
    if table is not None:
        names = [n for n in names if n in table.names or n not in table.columns]
    wanted = sorted(set(names))
    if not wanted:
        return None
    engine = client.engine
    params["names"] = engine.adapt_array(wanted)
    params["floor"] = min(marks[n][0] if n in marks else _LOWEST_STEP for n in wanted)
    return _NAMED_POINTS.format(names=engine.in_array("n.name", "names")), params
