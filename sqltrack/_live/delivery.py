"""How a run's writes reach the database while its job runs: directly, handed over to
the background writer, or waited for.

A :class:`Delivery` belongs to one :class:`~sqltrack.Run` and takes its settings (the
run's class attributes: ``heartbeat_seconds``, ``handover_seconds``, ``keep_summary``,
``wait_seconds`` …) from it. Outside ``track()`` every write is one operation and its
errors are the caller's. Inside ``track()``:

- a step or a status that meets transient trouble (:meth:`Client.is_transient
  <sqltrack._db.client.Client.is_transient>`) for ``handover_seconds`` is handed to a
  background writer (:mod:`sqltrack._live.buffer`), which spools it if it must; the run
  goes on buffered (:meth:`hand_over`);
- the run's other calls (tags, an artifact, a sample) wait for the database, for at most
  ``wait_seconds`` (:meth:`wait_for`);
- the final status is recorded however the block ends, never raising (:meth:`record_final`);
- what earlier processes of the run left in its spool is pushed first (:meth:`push_leftovers`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from .._base import process
from .._base.calls import Row
from .._base.values import Auto, timestamp
from .._db.engines.base import first_line
from .._write.metrics import plain_upsert
from .._write.runs import record_status, run_set_updated
from .._write.store import write_row
from ..errors import ConnectionLost
from .buffer import MetricsBuffer
from .queued import QueuedStatus
from .spool import Spool, spool_files
from .upkeep import Upkeep

log = logging.getLogger("sqltrack")
R = TypeVar("R")


class Delivery:
    """The way to the database of one run's writes.

    :param run: the run (a :class:`~sqltrack.Run`): its client, id, experiment and settings
    """

    def __init__(self, run: Any) -> None:
        self.run = run
        self.client = run.client
        #: ``handover_seconds`` inside ``track()``, else None (errors are the caller's)
        self.within: float | None = None
        #: the background writer, while the run is buffered
        self.buffer: MetricsBuffer | None = None
        #: keeps the run's summary current (:mod:`sqltrack._live.upkeep`)
        self.upkeep = Upkeep()
        self.last_heartbeat = -math.inf

    # -- the synchronous path ------------------------------------------------------------

    def write(self, row: Row | None, updated: Auto | datetime | None) -> None:
        """One operation: the row, and time_updated unless ``updated`` is None."""
        client, run_id = self.client, self.run.id
        with client as conn:
            if row is not None:
                write_row(client, conn, run_id, row)
            if updated is not None:
                run_set_updated(client, run_id, updated)  # locks the run's row
                if self.run.keep_summary and self.upkeep.due():
                    self.upkeep.update(client, conn, run_id)

    def write_plain(self, row: Row) -> bool:
        """The row without an operation's machinery, where it can be (:meth:`Client.commit_one
        <sqltrack._db.client.Client.commit_one>`): True if it was written and committed."""
        upsert = plain_upsert(self.client, row)
        params = (self.run.id, row[3], row[4], *row[1])
        return upsert is not None and self.client.commit_one(upsert, params)

    def finish(
        self, status: str, started: Auto | datetime | None, updated: Auto | datetime | None
    ) -> None:
        """One operation: the run's status and times, and its summary brought up to date."""
        client, run_id = self.client, self.run.id
        with client as conn:
            record_status(client, run_id, status, started, updated)
            if self.run.keep_summary:
                self.upkeep.update(client, conn, run_id, final=True)

    def record(
        self,
        status: str,
        started: Auto | datetime | None,
        updated: Auto | datetime | None,
        final: bool = False,
    ) -> None:
        """The run's status and times (``final``: and its summary brought up to date, the
        background writer closed after what it holds): written, or inside ``track()``
        handed over when the database does not take them."""
        buffer = self.live_buffer()
        if buffer is None:
            fn = self.finish if final else self._running
            try:
                self.client.run_operation(fn, status, started, updated, within=self.within)
                return
            except Exception as e:
                if not self.may_hand_over(e):
                    raise
                buffer = self.hand_over(e)
        when = timestamp(updated, "time_updated")
        # after the metrics queued before it
        buffer.put(QueuedStatus(status, timestamp(started, "time_started"), when), check=False)
        if final:
            self.close_buffer()

    def _running(
        self, status: str, started: Auto | datetime | None, updated: Auto | datetime | None
    ) -> None:
        record_status(self.client, self.run.id, status, started, updated)

    # -- trouble ----------------------------------------------------------------------------

    def may_hand_over(self, exc: BaseException) -> bool:
        """Whether a failed write is transient trouble met inside ``track()`` (outside a
        user's ``with client:`` block): then a step or status goes to a background
        writer, and the run's other calls wait (:meth:`wait_for`), instead of raising."""
        client = self.client
        return self.within is not None and not client.in_block and client.is_transient(exc)

    def hand_over(self, reason: BaseException) -> MetricsBuffer:
        """Go on buffered, with a writer that spools until the database answers again."""
        self.client.discard()
        log.warning(
            "sqltrack: run %s: %s did not answer within %g s (%s); the run goes on buffered",
            self.run.id,
            self.client.engine.describe(),
            self.run.handover_seconds,
            first_line(reason),
        )
        self.buffer = self.new_buffer(offline=True)
        return self.buffer

    def new_buffer(self, offline: bool) -> MetricsBuffer:
        run = self.run
        upkeep = self.upkeep if run.keep_summary else None
        return MetricsBuffer(
            self.client, run.id, run.heartbeat_seconds, offline, upkeep, run.experiment_id
        )

    def live_buffer(self) -> MetricsBuffer | None:
        """The background writer, unless there is none or it is a parent's (after fork)."""
        buffer = self.buffer
        return buffer if buffer is not None and buffer.pid == process.pid else None

    def close_buffer(self, quietly: bool = False) -> None:
        """Write what is buffered and stop the writer; raise (or log) its error."""
        buffer, self.buffer = self.buffer, None
        if buffer is None or buffer.pid != process.pid:
            return
        try:
            buffer.close()
        except Exception as e:
            if not quietly:
                raise
            log.warning("sqltrack: buffered metrics of run %s: %s", self.run.id, e)

    def wait_for(self, fn: Callable[..., R], *args: Any) -> R:
        """``fn(client, run id, *args)``, one of the run's operations. Inside ``track()``
        transient trouble does not end the job: the call is tried again until the
        database takes it, for at most ``wait_seconds`` (the loop waits; metrics logged
        meanwhile by other threads go on buffered). Only there: elsewhere a caller may
        prefer the error to a wait."""
        run = self.run
        pause, waited = 1.0, False
        deadline = time.monotonic() + run.wait_seconds
        while True:
            try:
                result = fn(self.client, run.id, *args)
            except Exception as e:
                if not self.may_hand_over(e):
                    raise
                where = self.client.engine.describe()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ConnectionLost(
                        f"run {run.id}: {where} did not take {fn.__name__} within "
                        f"{run.wait_seconds:g} s ({first_line(e)})"
                    ) from e
                if not waited:
                    log.warning(
                        "sqltrack: run %s: %s did not answer (%s); %s waits for it",
                        run.id, where, first_line(e), fn.__name__,
                    )  # fmt: skip
                waited = True
                time.sleep(min(pause, left))
                pause = min(2 * pause, run.wait_pause_seconds)
                continue
            if waited:
                log.warning("sqltrack: run %s: %s done after the wait", run.id, fn.__name__)
            return result

    def record_final(self, status: str) -> None:
        """Record a final status after a failure, never raising (the original error wins)."""
        client = self.client
        buffer = self.live_buffer()
        for attempt in range(2):
            if buffer is not None:  # after the metrics queued before it, or spooled
                when = timestamp("auto", "time_updated")
                buffer.put(QueuedStatus(status, None, when), check=False)
                self.close_buffer(quietly=True)
                return
            try:
                if client.in_block:
                    client.rollback()  # the failed block's work is rolled back anyway
                client.run_operation(self.finish, status, None, "auto")
                if client.in_block:
                    client.commit()  # or the enclosing block would roll the status back
                return
            except Exception as e:
                if self.may_hand_over(e):
                    buffer = self.hand_over(e)
                elif attempt:
                    log.warning(
                        "sqltrack: could not record status %s of run %s: %s", status, self.run.id, e
                    )
                else:
                    client.discard()  # the connection may be broken: try a fresh one

    def push_leftovers(self) -> None:
        """Push what earlier processes of this run left in the spool (a requeued job),
        before this one writes anything; never raises."""
        run_id = self.run.id
        for path in spool_files(self.client, run_id):
            try:
                spool = Spool(path)
                if spool.lock():
                    pushed = spool.push(self.client, within=self.run.handover_seconds)
                    spool.remove()
                    log.warning(
                        "sqltrack: run %s: %d entries left in %s written", run_id, pushed, path
                    )
            except Exception as e:
                log.warning("sqltrack: run %s: could not push %s: %s", run_id, path, e)
