"""How a tracked run keeps its summary (``run_summaries``) current at little cost.

:class:`Upkeep` sees every row a run logs, and at a heartbeat adds what was logged since
its last update (:func:`sqltrack._write.summaries.update_summary`, or the buffered
writer's own summary of what it wrote, :mod:`sqltrack._write.batch_summary`).
"""

from __future__ import annotations

import math
import time
from typing import Any

from .._base.calls import Row
from .._db.client import Client
from .._db.engines.base import first_line
from .._db.schema import SUMMARIES, applied
from .._write.batch_summary import BatchSummary
from .._write.summaries import update_summary
from ..errors import warn

# the highest (step, progress) a run's summary holds (a requeued job may log below it)
_HIGHEST = (
    "SELECT last_step, last_progress FROM run_summaries WHERE run_id = :run "
    "ORDER BY last_step DESC, last_progress DESC LIMIT 1"
)


class Upkeep:
    """How a tracked run keeps its summary current at little cost.

    :meth:`note` sees every logged row (a few comparisons); :meth:`due` says whether a
    heartbeat should also update the summary: at most once per ``share`` of the time
    the last update took (1/20: upkeep stays under 5 % of a run's time, however long the
    run is); :meth:`update` does it, in the heartbeat's transaction.
    """

    share = 20.0

    def __init__(self) -> None:
        self.names: set[tuple[str, ...]] = set()
        self.step: float = -math.inf  # the highest (step, progress) noted
        self.progress: float = -math.inf
        self.first: tuple[float, float] | None = None  # the first noted
        self.at_key: tuple[str, ...] = ()  # the names noted at the highest (step, progress)
        self.rebuild = False  # a step below an earlier one was logged
        self.resumed = False  # the summary of earlier processes was looked at
        self.available: bool | None = None  # whether the schema has run_summaries
        #: the buffered writer's summary of rows written (committed) since its last update
        self.pending = BatchSummary()
        #: the buffered writer's next update reads the rows back instead (its first one,
        #: and after a spool was pushed: rows it did not see may be there)
        self.read_back = True
        self._next = 0.0

    def note(self, row: Row) -> None:
        """Remember a row's names, and whether it went back below an earlier step or
        wrote a value again (then the summary is rebuilt at the end)."""
        names, step, progress = row[0], row[3], row[4]
        if self.first is None:
            self.first = (step, progress)
        if names not in self.names:
            self.names.add(names)
        if step > self.step or (step == self.step and progress > self.progress):
            self.step, self.progress, self.at_key = step, progress, names
        elif step == self.step and progress == self.progress:  # more metrics of that step
            if not self.rebuild and not set(self.at_key).isdisjoint(names):
                self.rebuild = True  # a value written again: counted once, the last kept
            self.at_key += names
        else:
            self.rebuild = True

    def due(self) -> bool:
        return time.monotonic() >= self._next

    def update(
        self,
        client: Client,
        conn: Any,
        run_id: int,
        final: bool = False,
        batch: BatchSummary | None = None,
    ) -> bool:
        """Update the summary, in the caller's transaction: rebuilt if a step went back
        and this is the end; else from :attr:`pending` and ``batch`` (the buffered
        writer's rows of this transaction) when they are all that is new; else by
        reading the new rows back (the synchronous path, ``batch`` None: cheap at its
        rate). Nothing if the schema has no summaries (an old schema).

        Never fails the run's writes: a permanent error is undone (a savepoint), said
        once, and ends the upkeep (``sqltrack refresh`` can redo it); a transient one
        (a lost connection, a deadlock) is raised, for the operation to retry.

        :return: whether the summary now holds every row written, ``batch`` included
            (then :meth:`written` after the commit forgets them)
        """
        if not self._has_table(client):
            return False
        started = time.monotonic()
        client.query("SAVEPOINT sqltrack_summary")
        try:
            if not self.resumed:  # a requeued job that logs again from its checkpoint's step
                found = client.query(_HIGHEST, {"run": run_id})
                self.rebuild |= bool(found and self.first is not None and self.first < found[0])
                self.resumed = True
            rebuild = final and self.rebuild
            names = {n for group in list(self.names) for n in group}
            if batch is not None and not (self.read_back or self.rebuild):
                merged = BatchSummary()
                merged.update(self.pending)
                merged.update(batch)
                merged.write(client, run_id)  # (and the metric blocks)
            else:
                update_summary(client, conn, run_id, names, rebuild=rebuild)  # and blocks
            client.query("RELEASE SAVEPOINT sqltrack_summary")
        except Exception as e:
            if client.is_transient(e):
                raise  # the operation retries the whole transaction
            client.query("ROLLBACK TO SAVEPOINT sqltrack_summary")
            self.available = False
            warn(f"run {run_id}: its summary is no longer kept current ({first_line(e)})")
            return False
        if rebuild:
            self.rebuild = False
        now = time.monotonic()
        self._next = now + (now - started) * (self.share - 1)
        return True

    def written(self, batch: BatchSummary, summarized: bool) -> None:
        """After the buffered writer's transaction committed: keep ``batch`` (the rows
        written after the last update) for the next update; if an update took the rest
        (``summarized``), forget that."""
        if summarized:
            self.pending = batch
            self.read_back = False
        else:
            self.pending.update(batch)

    def pushed(self) -> None:
        """After a spool was pushed: the next update reads the rows back."""
        self.pending = BatchSummary()
        self.read_back = True

    def _has_table(self, client: Client) -> bool:
        if self.available is None:
            self.available = applied(client, SUMMARIES)
        return self.available
