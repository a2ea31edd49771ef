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
- Errors: a write that fails in the background (a value that does not fit its column,
  the run deleted, the server gone for longer than ``reconnect_timeout``) is raised from
  the next ``add_metrics``, ``flush()`` or the end of ``track()``, once. A row that does
  not fit its column is left out; the rest of its batch is written.
- A lost connection is replaced and the batch retried, like any operation.
- Connections: the writer keeps its connection while batches come full; when it goes to
  sleep for a whole ``flush_seconds`` it closes it (on a server, where connections are
  scarce) and connects again for the next flush, so a job that logs slowly holds a
  server connection only for a few milliseconds per flush.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from . import _process
from .client import Client
from .errors import SQLTrackError
from .metric_values import Row
from .metrics import write_rows
from .runs import run_set_updated

__all__ = ["MetricsBuffer"]

_STOP = object()


@dataclass(frozen=True)
class SetUpdated:
    """A queued explicit ``time_updated`` (``add_metrics(..., updated=datetime)``)."""

    when: datetime


class MetricsBuffer:
    """The queue and writer thread of one run's buffered metrics."""

    #: write at least this often (seconds)
    flush_seconds: float = 1.0
    #: or as soon as this many calls are waiting
    batch_rows: int = 1000
    #: at most this many calls wait; then add_metrics blocks (back-pressure)
    max_pending: int = 100_000

    def __init__(self, client: Client, run_id: int, heartbeat_seconds: float) -> None:
        self.run_id = run_id
        self.pid = _process.pid
        self.heartbeat_seconds = heartbeat_seconds
        self._client = Client({}, **client.engine.params)  # a connection of its own
        # A deque: appending is atomic and cheap; the writer is woken only when a batch is
        # full (or by its timer), and the producer waits only when the queue is full.
        self._items: deque[Any] = deque()
        self._wakeup = threading.Event()
        self._space = threading.Condition()
        self._error: BaseException | None = None
        self._last_beat = -math.inf
        #: set by a call with ``updated='auto'``: refresh time_updated when it is due
        self.beat_wanted = False
        self._thread = threading.Thread(
            target=self._loop, name=f"sqltrack-writer-{run_id}", daemon=True
        )
        self._thread.start()

    def put(self, item: Row | SetUpdated) -> None:
        """Queue a validated call; raises a background error first, if there is one.

        Blocks while :attr:`max_pending` calls are waiting (back-pressure)."""
        if self._error is not None:
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
                        return
                    if len(self._items) < self.batch_rows:
                        # it sleeps a whole interval now: give the server connection back
                        self._client.release()
        except BaseException as e:  # never let the thread die silently
            self._error = e
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
            # Rows are tuples; anything else is a marker (flush, stop, SetUpdated): rare.
            if set(map(type, popped)) == {tuple}:
                batch, markers = popped, []
            else:
                batch = [i for i in popped if type(i) is tuple or type(i) is SetUpdated]
                markers = [i for i in popped if type(i) is not tuple]
            if batch:
                self._write(batch, any(type(m) is SetUpdated for m in markers), beat)
            with self._space:
                self._space.notify_all()
            for marker in markers:  # a flush waits for what was queued before it, at least
                if isinstance(marker, threading.Event):
                    marker.set()
            if any(marker is _STOP for marker in markers):
                return True
        return False

    def _write(self, batch: list[Any], updates: bool, beat: bool) -> None:
        client, run_id = self._client, self.run_id

        def write(client: Client) -> list[Any]:
            errors: list[Any]
            rows: list[Any]
            with client as conn:
                if not updates:
                    errors = write_rows(client, conn, run_id, batch)
                else:  # in call order around each explicit time_updated
                    errors, rows = [], []
                    for item in batch:
                        if type(item) is SetUpdated:
                            errors += write_rows(client, conn, run_id, rows)
                            rows = []
                            run_set_updated(client, run_id, item.when)
                        else:
                            rows.append(item)
                    errors += write_rows(client, conn, run_id, rows)
                now = time.monotonic()
                if beat and now - self._last_beat >= self.heartbeat_seconds:
                    run_set_updated(client, run_id)
                    self._last_beat = now
            return errors

        try:
            errors = client.run_operation(write, client)
        except BaseException as e:
            self._error = e
            return
        if errors:
            more = f" ({len(errors) - 1} more rows left out likewise)" if len(errors) > 1 else ""
            self._error = type(errors[0])(f"{errors[0]}; the row was left out{more}")
