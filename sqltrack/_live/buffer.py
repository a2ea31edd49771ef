"""Buffered metrics: ``add_metrics`` only enqueues; a background thread writes batches.

Used by ``run.track(buffered=True)``. The calling thread validates names and value types
(so those errors are still raised at once) and puts the call on a bounded queue. A writer
thread with its own connection takes up to :attr:`MetricsBuffer.batch_rows` calls or
whatever arrived within :attr:`MetricsBuffer.flush_seconds`, writes them in call order
(consecutive calls with the same metric names together: one ``executemany`` on
PostgreSQL, multi-row INSERTs on SQLite) in one transaction, refreshes the run's
``time_updated`` at most every ``heartbeat_seconds`` (if a call with ``updated='auto'``
came since the last refresh; an explicit ``updated`` is written in call order, ``None``
leaves it alone), and commits.

- Back-pressure: at most :attr:`MetricsBuffer.max_pending` calls wait in the queue; when
  the database is slower than the training loop, ``add_metrics`` blocks instead of
  growing memory.
- Errors about input (a value that does not fit its column, the run deleted) are raised
  from the next ``add_metrics``, ``flush()`` or the end of ``track()``, once. What the
  database refuses for good (a permanent error: a row too big, a missing privilege) is
  never retried: the batch is written call by call, and what does not fit or is refused
  again is set aside (:mod:`sqltrack._live.setaside`, one warning); everything else is written.
- Transient trouble never raises: a lost connection is replaced and the batch retried,
  like any operation, for up to :attr:`MetricsBuffer.spool_after` seconds; then the batch and
  everything after it go to the run's spool file (:mod:`sqltrack._live.spool`) and the job goes
  on. The writer tries the database again now and then (backing off up to
  :attr:`MetricsBuffer.max_retry_seconds`), pushes the spool in order as soon as it
  answers, and writes directly again. What is still spooled when the run ends is left
  for ``sqltrack sync`` (one warning line says where).
- Connections: the writer keeps its connection while batches come full; when it goes to
  sleep for a whole ``flush_seconds`` it closes it (on a server, where connections are
  scarce) and connects again for the next flush, so a job that logs slowly holds a
  server connection only for a few milliseconds per flush.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections import deque
from dataclasses import astuple
from datetime import datetime, timezone
from typing import Any

from .._base import process as _process
from .._base.calls import Row
from .._db.client import Client
from .._db.engines.base import first_line
from .._write.batch_summary import BatchSummary
from .._write.runs import record_status, run_set_updated
from .._write.store import write_rows
from ..errors import DatabaseError, InvalidValue, SQLTrackError
from .places import new_stem, spool_dir
from .queued import QueuedStatus, QueuedUpdate
from .setaside import SUFFIX, SetAside
from .spool import Spool, SpoolBusy
from .upkeep import Upkeep

log = logging.getLogger("sqltrack")

_STOP = object()


_WRITTEN = (tuple, QueuedUpdate, QueuedStatus)  # rows, and the markers written in call order


class MetricsBuffer:
    """The queue and writer thread of one run's buffered metrics."""

    #: write at least this often (seconds)
    flush_seconds: float = 1.0
    #: or as soon as this many calls are waiting
    batch_rows: int = 1000
    #: at most this many calls wait; then add_metrics blocks (back-pressure)
    max_pending: int = 100_000
    #: a write the database has not taken after this many seconds goes to the spool
    spool_after: float = 10.0
    #: while spooling, the database is tried again after 1 s, then less and less often,
    #: up to this many seconds apart (jittered, so that many jobs do not come at once)
    max_retry_seconds: float = 30.0
    #: at the end of the run, what is spooled is pushed if the database takes it within
    #: this many seconds; else it is left for ``sqltrack sync``
    final_push_seconds: float = 10.0

    def __init__(
        self,
        client: Client,
        run_id: int,
        heartbeat_seconds: float,
        offline: bool = False,
        upkeep: Upkeep | None = None,
        experiment_id: int | None = None,
    ) -> None:
        """:param offline: the database is known to be unreachable: spool at once
        :param upkeep: the run's summary upkeep, updated at heartbeats and after a status
        :param experiment_id: the run's experiment (recorded in a spool, checked when it
            is pushed)
        """
        self.run_id = run_id
        self.experiment_id = experiment_id
        self._upkeep = upkeep
        self.pid = _process.pid
        self.heartbeat_seconds = heartbeat_seconds
        self._client = Client.of(**client.engine.params)  # a connection of its own
        self._spool: Spool | None = None  # while the database cannot be reached
        #: where calls the database refused for good are kept (see sqltrack._live.setaside)
        self.set_aside = SetAside(spool_dir() / f"{new_stem(client, run_id)}{SUFFIX}", run_id)
        self._offline = offline
        self._reason: BaseException | None = None  # why it went offline
        self._retry_delay = 1.0
        self._next_try = time.monotonic() + self._retry_delay
        # A deque: appending is atomic and cheap; the writer is woken only when a batch is
        # full (or by its timer), and the producer waits only when the queue is full.
        self._items: deque[Any] = deque()
        self._wakeup = threading.Event()
        self._space = threading.Condition()
        self._error: BaseException | None = None
        self._last_beat = -math.inf
        self._latest: datetime | None = None  # the latest time_updated written or spooled
        #: set by a call with ``updated='auto'``: refresh time_updated when it is due
        self.beat_wanted = False
        self._thread = threading.Thread(
            target=self._loop, name=f"sqltrack-writer-{run_id}", daemon=True
        )
        self._thread.start()

    def put(self, item: Row | QueuedUpdate | QueuedStatus, check: bool = True) -> None:
        """Queue a validated call; raises a background error first, if there is one
        (unless ``check`` is false: the error then waits for :meth:`close`).

        Blocks while :attr:`max_pending` calls are waiting (back-pressure)."""
        if self._error is not None and check:
            self._raise()
        items = self._items
        if len(items) >= self.max_pending:
            with self._space:
                while len(items) >= self.max_pending and self._thread.is_alive():
                    self._wakeup.set()
                    self._space.wait(0.1)
        items.append(item)
        if len(items) >= self.batch_rows and not self._wakeup.is_set():
            self._wakeup.set()  # (setting it again would cost more than this call)

    def _signal(self, marker: Any) -> None:
        self._items.append(marker)
        self._wakeup.set()

    def flush(self) -> None:
        """Wait until everything queued so far is written and committed."""
        if self._thread.is_alive():
            done = threading.Event()
            self._signal(done)
            while not done.wait(0.1):
                if not self._thread.is_alive():
                    break
        self._raise()

    def close(self) -> None:
        """Write what is queued, stop the writer and raise its error, if any."""
        if self._thread.is_alive():
            self._signal(_STOP)
            self._thread.join()
        self._raise()

    def _raise(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            if isinstance(error, SQLTrackError):
                raise error
            raise SQLTrackError(
                f"writing buffered metrics of run {self.run_id} failed: {error}"
            ) from error

    # -- the writer thread ---------------------------------------------------------------

    def _loop(self) -> None:
        try:
            with self._client.hold():
                while True:
                    self._wakeup.wait(self.flush_seconds)
                    self._wakeup.clear()
                    if self._drain():
                        self._last_push()
                        return
                    if self._offline:  # also when nothing new came: push what waits
                        self._push()
                    if len(self._items) < self.batch_rows:
                        # it sleeps a whole interval now: give the server connection back
                        self._client.release()
        except BaseException as e:  # never let the thread die silently
            self._error = e
            if self._spool is not None:
                self._spool.close()
        finally:
            for item in self._items:  # nobody waits forever on a flush
                if isinstance(item, threading.Event):
                    item.set()
            with self._space:
                self._space.notify_all()

    def _drain(self) -> bool:
        """Write everything queued, in order, in batches; True when asked to stop."""
        items = self._items
        while items:
            # before taking the batch: a call that sets it after this is in a later batch
            beat, self.beat_wanted = self.beat_wanted, False
            popleft = items.popleft  # only this thread takes items: len() only grows
            popped = [popleft() for _ in range(min(len(items), self.batch_rows))]
            # Rows are tuples; anything else is a marker (flush, stop, QueuedUpdate): rare.
            if set(map(type, popped)) == {tuple}:
                batch, markers = popped, []
            else:
                batch = [i for i in popped if type(i) in _WRITTEN]
                markers = [i for i in popped if type(i) is not tuple]
            if batch:
                self._write(batch, any(type(m) in _WRITTEN for m in markers), beat)
            with self._space:
                self._space.notify_all()
            for marker in markers:  # a flush waits for what was queued before it, at least
                if isinstance(marker, threading.Event):
                    marker.set()
            if any(marker is _STOP for marker in markers):
                return True
        return False

    def _write(self, batch: list[Any], updates: bool, beat: bool) -> None:
        client, run_id, upkeep = self._client, self.run_id, self._upkeep
        if self._offline and not self._push():
            self._to_spool(batch, beat)
            return

        def write(client: Client) -> tuple[list[Any], BatchSummary | None, bool]:
            refused: list[Any]
            rows: list[Any]
            # what this attempt wrote, for the run's summary (not read back: see
            # sqltrack._write.batch_summary); summarized: an update took it in
            done = None if upkeep is None else BatchSummary()
            collect = None if done is None else done.add
            summarized = False
            with client as conn:
                if not updates:
                    refused = write_rows(client, conn, run_id, batch, collect)
                else:  # in call order around each explicit time_updated or status
                    refused, rows = [], []
                    for item in batch:
                        if type(item) is tuple:
                            rows.append(item)
                            continue
                        refused += write_rows(client, conn, run_id, rows, collect)
                        rows = []
                        if self._write_marker(conn, item, done):
                            summarized = True
                    refused += write_rows(client, conn, run_id, rows, collect)
                now = time.monotonic()
                if beat and now - self._last_beat >= self.heartbeat_seconds:
                    run_set_updated(client, run_id, self._noted(datetime.now(timezone.utc)))
                    self._last_beat = now
                    if upkeep is not None and done is not None and upkeep.due():
                        if upkeep.update(client, conn, run_id, batch=done):
                            summarized = True
                            done.clear()
            return refused, done, summarized

        try:
            refused, done, summarized = client.run_operation(write, client, within=self.spool_after)
        except Exception as e:
            if client.is_transient(e):
                self._go_offline(e, batch, beat)
            elif isinstance(e, (DatabaseError, InvalidValue)):
                self._salvage(batch, beat)  # refused for good: find what, write the rest
            else:
                self._error = e  # (the run was deleted: nothing of it can be written)
            return
        if upkeep is not None and done is not None:
            upkeep.written(done, summarized)
        self._keep_refused(refused)

    def _write_marker(self, conn: Any, item: QueuedUpdate | QueuedStatus, done: Any) -> bool:
        """Write an explicit time_updated or a status (in the caller's transaction); after a
        status, the summary; True if that update took in ``done`` (a BatchSummary)."""
        client, run_id, upkeep = self._client, self.run_id, self._upkeep
        if type(item) is QueuedUpdate:
            run_set_updated(client, run_id, self._noted(item.when))
            return False
        assert isinstance(item, QueuedStatus)
        record_status(client, run_id, item.status, item.started, self._status_time(item.when))
        if upkeep is not None and upkeep.update(client, conn, run_id, final=True, batch=done):
            if done is not None:
                done.clear()
            return True
        return False

    def _go_offline(self, reason: BaseException, batch: list[Any], beat: bool) -> None:
        self._offline, self._reason = True, reason
        self._schedule_retry()
        self._to_spool(batch, beat)

    def _salvage(self, batch: list[Any], beat: bool) -> None:
        """After the database refused a batch for good: each call in a transaction of its
        own, so that what it refuses again is set aside (:mod:`sqltrack._live.setaside`) and
        everything else, the status too, is written."""
        client = self._client
        refused: list[tuple[Any, InvalidValue]] = []
        for i, item in enumerate(batch):
            try:
                refused += client.run_operation(self._write_one, item, within=self.spool_after)
            except Exception as e:
                if client.is_transient(e):
                    self._go_offline(e, batch[i:], beat)
                    break
                if not isinstance(e, (DatabaseError, InvalidValue)):
                    self._error = e
                    break
                self._set_aside(item, e)
        if self._upkeep is not None:
            self._upkeep.pushed()  # rows written here were not summarized as they went
        self._keep_refused(refused)

    def _write_one(self, item: Any) -> list[tuple[Any, InvalidValue]]:
        with self._client as conn:
            if type(item) is tuple:
                return write_rows(self._client, conn, self.run_id, [item])
            self._write_marker(conn, item, None)
        return []

    def _keep_refused(self, refused: list[tuple[Any, InvalidValue]]) -> None:
        """Rows that did not fit their columns: set aside, and said by the next call."""
        for row, error in refused:
            self._set_aside(row, error)
        if refused:
            first = refused[0][1]
            more = f" ({len(refused) - 1} more rows likewise)" if len(refused) > 1 else ""
            self._error = type(first)(
                f"{first}; the row was kept in {self.set_aside.path} instead{more}"
            )

    def _set_aside(self, item: Any, error: BaseException) -> None:
        if type(item) is tuple:
            self.set_aside.add_row(item, error)
        else:  # a QueuedUpdate or a QueuedStatus: as the spool keeps them
            data = item.when if type(item) is QueuedUpdate else [*astuple(item)]
            self.set_aside.add("updated" if type(item) is QueuedUpdate else "state", data, error)

    def _noted(self, when: datetime | None) -> datetime | None:
        """``when``, noted as the latest time_updated this writer has written."""
        if when is not None and (self._latest is None or when > self._latest):
            self._latest = when
        return when

    def _status_time(self, when: datetime | None) -> datetime | None:
        """A status's time_updated: never older than one this writer wrote before it (a
        heartbeat written late), or the spool would take the status for a stale one."""
        if when is not None and self._latest is not None and when < self._latest:
            when = self._latest
        return self._noted(when)

    # -- offline ----------------------------------------------------------------------------

    def _to_spool(self, batch: list[Any], beat: bool) -> None:
        """Append a batch to the spool (created on first use), in call order."""
        rows: list[Any] = []
        events: list[tuple[str, Any]] = []
        spool = self._spool
        for item in batch:
            if type(item) is tuple:
                if events:  # keep the order: rows before the event, then the event
                    spool = self._append(spool, rows, events)
                    rows, events = [], []
                rows.append(item)
            elif type(item) is QueuedUpdate:
                events.append(("updated", self._noted(item.when)))
            else:
                when = self._status_time(item.when)
                events.append(("state", (item.status, item.started, when)))
        now = time.monotonic()
        if beat and now - self._last_beat >= self.heartbeat_seconds:
            events.append(("updated", self._noted(datetime.now(timezone.utc))))
            self._last_beat = now
        self._append(spool, rows, events)

    def _append(self, spool: Spool | None, rows: list[Any], events: list[Any]) -> Spool:
        if spool is None:
            spool = self._spool = Spool.create(self._client, self.run_id, self.experiment_id)
            reason = f" ({first_line(self._reason)})" if self._reason is not None else ""
            log.warning(
                "sqltrack: run %s: cannot write to %s%s; writing to %s meanwhile, and trying "
                "again in the background",
                self.run_id,
                self._client.engine.describe(),
                reason,
                spool.path,
            )
        spool.append(rows, events)
        return spool

    def _schedule_retry(self) -> None:
        self._next_try = time.monotonic() + self._retry_delay * random.uniform(0.5, 1.0)
        self._retry_delay = min(self._retry_delay * 2, self.max_retry_seconds)

    def _push(self, final: bool = False) -> bool:
        """Try the database (when due, or ``final``ly): push the spool; True when it is
        empty and the writer is back online."""
        if not final and time.monotonic() < self._next_try:
            return False
        spool = self._spool
        within = self.final_push_seconds if final else 0.0
        try:
            pushed = 0 if spool is None else spool.push(self._client, within=within)
        except SpoolBusy:
            self._schedule_retry()
            return False
        except Exception as e:
            self._client.discard()
            if not self._client.is_transient(e):
                self._error = e
            self._schedule_retry()
            return False
        if spool is not None:
            spool.remove()
            self._spool = None
            if self._upkeep is not None:
                self._upkeep.pushed()
            log.warning(
                "sqltrack: run %s: back online, %d spooled entries written", *[self.run_id, pushed]
            )
        self._offline = False
        self._retry_delay = 1.0
        return True

    def _last_push(self) -> None:
        """At the end of the run: a last try (for up to :attr:`final_push_seconds`), else
        leave the spool to ``sqltrack sync``."""
        if not self._offline or self._spool is None:
            return
        if not self._push(final=True):
            spool, self._spool = self._spool, None
            if spool is not None:
                pending = spool.pending()
                spool.close()
                log.warning(
                    "sqltrack: run %s ended while %s could not be reached; %d entries wait in "
                    "%s for the next track() of this run or `sqltrack sync`",
                    self.run_id,
                    self._client.engine.describe(),
                    pending,
                    spool.path,
                )
