"""Summaries of rows as they are written: how the buffered writer keeps a run's summary
without reading back what it wrote.

Reading a run's new rows back costs about as much as writing them; at hundreds of
thousands of steps per second that would halve the buffered writer's throughput. So the
writer hands each group of rows it wrote (:func:`sqltrack._write.store.write_rows`'s
``collect``) to a :class:`BatchSummary`, which reduces them with C-level builtins
(``zip``, ``sum``, ``min``, ``max``, ``index``), and merges the result into
``run_summaries`` at a heartbeat: counts add up, the smaller minimum and larger maximum
win (the earlier step on a tie), the last value is the one at the higher step. The same
per block of steps goes into ``metric_blocks`` (:mod:`sqltrack._write.blocks`), merged alike.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

from .._db.client import Client
from .blocks import MERGE as MERGE_BLOCK
from .blocks import SIZE, available
from .rollup import SUMMARIZED, on_conflict

#: how new values join a run's summary (sqltrack._write.rollup.on_conflict)
ON_CONFLICT = on_conflict("run_summaries", "run_id, metric")
_MERGE = (
    """
INSERT INTO run_summaries
    (run_id, metric, count, last, last_step, last_progress, min, min_step, max, max_step)
VALUES (:run, :metric, :count, :last, :last_step, :last_progress, :min, :min_step, :max,
    :max_step)"""
    + ON_CONFLICT
)

# [count, last, last_step, last_progress, min, min_step, max, max_step]; a step of an
# extreme may still be the (values, steps) columns of the batch that has it (found when
# written: one lookup per update, not one per batch)
Stats = list[Any]


class BatchSummary:
    """Per metric, the summary of the rows given to :meth:`add`, in the order written."""

    __slots__ = ("blocks", "stats")

    def __init__(self) -> None:
        self.stats: dict[str, Stats] = {}
        #: per (metric, block of steps): the same, for ``metric_blocks`` (steps as found)
        self.blocks: dict[tuple[str, int], Stats] = {}

    def __bool__(self) -> bool:
        return bool(self.stats)

    def clear(self) -> None:
        """Forget what was summarized (it was written)."""
        self.stats.clear()
        self.blocks.clear()

    def add(
        self,
        names: tuple[str, ...],
        kinds: tuple[str | None, ...],
        params: list[Any],
        no_nan: bool = False,
    ) -> None:
        """Summarize a group of rows written together: ``(run_id, step, progress,
        *values)`` each, in call order (the steps go up, or the run is rebuilt instead).

        :param no_nan: the values are known to hold no NaN and no None
        """
        columns = list(zip(*params, strict=False))  # (all of one length: one group)
        steps, progresses = columns[1], columns[2]
        for j, name in enumerate(names):
            if kinds[j] not in SUMMARIZED:
                continue
            values = columns[3 + j]
            clean = no_nan
            if not clean:
                try:
                    total = sum(values)
                    clean = total == total  # no None, no NaN (nor inf - inf): all in C
                except TypeError:
                    clean = False
            if clean:  # the steps of the extremes are looked up once, when written
                self._add_blocks(name, steps, progresses, values)
                low, high = min(values), max(values)
                where = (values, steps)
                _merge(
                    self.stats,
                    name,
                    [len(values), values[-1], steps[-1], progresses[-1], low, where, high, where],
                )
                continue
            kept = [i for i, v in enumerate(values) if v is not None and v == v]
            if not kept:
                continue
            self._add_blocks(
                name,
                [steps[i] for i in kept],
                [progresses[i] for i in kept],
                [values[i] for i in kept],
            )
            n, i_last = len(kept), kept[-1]
            i_low = min(kept, key=values.__getitem__)  # the first of equal values
            i_high = max(kept, key=values.__getitem__)
            low, high = values[i_low], values[i_high]
            _merge(
                self.stats,
                name,
                [
                    n,
                    values[i_last],
                    steps[i_last],
                    progresses[i_last],
                    low,
                    steps[i_low],
                    high,
                    steps[i_high],
                ],
            )

    def _add_blocks(self, name: str, steps: Any, progresses: Any, values: Any) -> None:
        """Per block of :data:`SIZE` steps, the stats of the values there (the steps go
        up: a block is a slice, its extremes found by C builtins)."""
        i, n, into = 0, len(steps), self.blocks
        while i < n:
            block = steps[i] // SIZE
            end = max(bisect_left(steps, (block + 1) * SIZE, i), i + 1)
            chunk = values[i:end]
            low, high = min(chunk), max(chunk)
            _merge(
                into,
                (name, block),
                [end - i, values[end - 1], steps[end - 1], progresses[end - 1],
                 low, steps[i + chunk.index(low)], high, steps[i + chunk.index(high)]],
            )  # fmt: skip
            i = end

    def update(self, other: BatchSummary) -> None:
        """Add what ``other`` summarized (rows written after this one's)."""
        for name, stats in other.stats.items():
            _merge(self.stats, name, list(stats))
        for key, stats in other.blocks.items():
            _merge(self.blocks, key, list(stats))

    def write(self, client: Client, run_id: int) -> None:
        """Merge into the run's summary and its metric blocks (in the current
        transaction; the blocks only where the schema has them)."""
        if self.blocks and available(client):
            rows = [
                {"run": run_id, "metric": name, "block": block, "count": b[0],
                 "last": float(b[1]), "last_step": b[2], "last_progress": float(b[3]),
                 "min": float(b[4]), "min_step": b[5], "max": float(b[6]), "max_step": b[7]}
                for (name, block), b in self.blocks.items()
            ]  # fmt: skip
            with client.cursor() as cur:
                cur.executemany(client.engine.sql(MERGE_BLOCK), rows)
        for name, s in self.stats.items():
            for i in (5, 7):  # (values, steps) of the batch that has the extreme: its step
                if type(s[i]) is tuple:
                    values, steps = s[i]
                    s[i] = steps[values.index(s[i - 1])]
            client.query(
                _MERGE,
                {
                    "run": run_id,
                    "metric": name,
                    "count": s[0],
                    "last": float(s[1]),
                    "last_step": s[2],
                    "last_progress": float(s[3]),
                    "min": float(s[4]),
                    "min_step": s[5],
                    "max": float(s[6]),
                    "max_step": s[7],
                },
            )


def _merge(into: dict[Any, Stats], key: Any, new: Stats) -> None:
    """Merge the stats of later values (``new``, steps as found) into those of ``key``,
    by the rule the database merges by (sqltrack._write.rollup.on_conflict)."""
    old = into.get(key)
    if old is None:
        into[key] = new
        return
    old[0] += new[0]
    if (new[2], new[3]) >= (old[2], old[3]):
        old[1:4] = new[1:4]
    if new[4] < old[4]:
        old[4:6] = new[4:6]
    if new[6] > old[6]:
        old[6:8] = new[6:8]
