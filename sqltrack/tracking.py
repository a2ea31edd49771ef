"""Tracking a run: start, stop, ``track()``, metrics while it runs, the final status.

:class:`Tracking` is the half of :class:`~sqltrack.handles.Run` that has state: the
heartbeat (``time_updated``), the buffered writer (:mod:`sqltrack.buffer`), the SIGTERM
handler (:mod:`sqltrack.sigterm`) and recording the final status however the run ends.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

from . import _process, sigterm
from .buffer import MetricsBuffer, SetUpdated
from .client import Client
from .metric_values import Row, validate
from .metrics import write_row
from .runs import check_status, run_set_updated, set_state
from .values import Auto, timestamp

__all__ = ["Tracking"]

log = logging.getLogger("sqltrack")
T = TypeVar("T", bound="Tracking")


class Tracking:
    """Start, stop and track a run, and log its metrics (the base of ``Run``).

    :param client: the Client to use
    :param run_id: the id of an existing run
    """

    #: ``add_metrics(updated="auto")`` refreshes ``time_updated`` at most this often
    #: (seconds): a heartbeat for :func:`~sqltrack.read.stale_runs` that costs no extra
    #: statement per step.
    heartbeat_seconds: float = 5.0
    #: inside ``track()`` the run holds its connection while steps come faster than this
    #: (seconds apart); after a slower step it gives the server connection back until
    #: the next step, so that many slow jobs need few connections (PostgreSQL only)
    release_seconds: float = 0.5

    def __init__(self, client: Client, run_id: int) -> None:
        self.client = client
        self.id = run_id
        self._last_heartbeat = -math.inf
        self._last_step = -math.inf
        self._buffer: MetricsBuffer | None = None
        self._restore_sigterm: Any = None
        self._sigterm_received = False
        self._tracking = False

    # -- metrics ------------------------------------------------------------------------

    def add_metrics(
        self: T,
        metrics: Mapping[str, Any],
        step: int = 0,
        progress: float = 0.0,
        updated: Auto | datetime | None = "auto",
    ) -> T:
        """Add metrics to the run and refresh its time_updated.
        See :func:`~sqltrack.metrics.run_add_metrics`.

        In ``track(buffered=True)`` this only checks the names and values and queues the
        call; see :mod:`sqltrack.buffer`.

        :param updated: ``'auto'`` refreshes time_updated to now, at most every
            :attr:`heartbeat_seconds` (so most steps cost one statement); a datetime sets
            it; ``None`` leaves it alone
        """
        row = validate(metrics, step, progress)
        buffer = self._buffer
        if buffer is not None and buffer.pid == _process.pid:  # not in a forked child
            explicit = None  # checked before anything is queued, like the metrics
            if updated == "auto":
                buffer.beat_wanted = True  # before the row: the writer reads it first
            elif updated is not None:
                explicit = SetUpdated(timestamp(updated, "time_updated"))  # type: ignore[arg-type]
            if row is not None:
                buffer.put(row)
            if explicit is not None:
                buffer.put(explicit)
            return self
        now = time.monotonic()
        gap, self._last_step = now - self._last_step, now
        if updated == "auto":
            if now - self._last_heartbeat < self.heartbeat_seconds:
                if row is not None:
                    self.client.run_operation(self._write, row, None)
            else:
                self.client.run_operation(self._write, row, updated)
                self._last_heartbeat = now
        else:
            if updated is not None:
                timestamp(updated, "time_updated")  # bad input: nothing is written
            self.client.run_operation(self._write, row, updated)
        if gap > self.release_seconds:
            self.client.release()  # a slow loop: the connection is not worth holding
        return self

    def _write(self, row: Row | None, updated: Auto | datetime | None) -> None:
        """One operation: the row, and time_updated unless ``updated`` is None."""
        client = self.client
        with client as conn:
            if row is not None:
                write_row(client, conn, self.id, row)
            if updated is not None:
                run_set_updated(client, self.id, updated)

    def flush(self: T) -> T:
        """Wait until buffered metrics are written (no-op when not buffered).

        :raises SQLTrackError: a background write failed (see :mod:`sqltrack.buffer`)
        """
        if self._buffer is not None and self._buffer.pid == _process.pid:
            self._buffer.flush()
        return self

    # -- lifecycle ------------------------------------------------------------------------

    def start(
        self: T,
        terminated: str | None = "CANCELLED",
        started: Auto | datetime | None = "auto",
        updated: Auto | datetime | None = "auto",
    ) -> T:
        """Start the run: status RUNNING, time_started and time_updated now (by default).

        Also installs a SIGTERM handler that records the ``terminated`` status (see
        :mod:`sqltrack.sigterm`); :meth:`stop` removes it.

        :param terminated: status to record on SIGTERM; ``None`` installs no handler
        :param started: what to do about time_started; see :func:`~sqltrack.runs.run_set_started`
        :param updated: what to do about time_updated; see :func:`~sqltrack.runs.run_set_updated`
        """
        if terminated is not None:
            check_status(terminated)
        set_state(self.client, self.id, "RUNNING", started, updated)
        self._last_step = time.monotonic()  # a loop that starts at once keeps the connection
        self._sigterm_received = False
        if terminated is not None and self._restore_sigterm is None:
            self._restore_sigterm = sigterm.install(
                lambda: self._on_sigterm(terminated), raise_terminated=self._tracking
            )
        return self

    def stop(self: T, status: str = "COMPLETED", updated: Auto | datetime | None = "auto") -> T:
        """Stop the run: set its status (COMPLETED by default) and time_updated (now).

        :param status: the final status
        :param updated: what to do about time_updated; see :func:`~sqltrack.runs.run_set_updated`
        """
        self._close_buffer()
        set_state(self.client, self.id, status, None, updated)
        self._uninstall_sigterm()
        return self

    def _close_buffer(self, quietly: bool = False) -> None:
        """Write what is buffered and stop the writer; raise (or log) its error."""
        buffer, self._buffer = self._buffer, None
        if buffer is None or buffer.pid != _process.pid:
            return
        try:
            buffer.close()
        except Exception as e:
            if not quietly:
                raise
            log.warning("sqltrack: buffered metrics of run %s: %s", self.id, e)

    def _uninstall_sigterm(self) -> None:
        restore, self._restore_sigterm = self._restore_sigterm, None
        if restore is not None:
            restore()

    def _on_sigterm(self, status: str) -> None:
        self._sigterm_received = True
        if not self._tracking:  # start() without track(): nobody else will record it
            self._record_final(status)

    def _record_final(self, status: str) -> None:
        """Record a final status after a failure, never raising (the original error wins)."""
        client = self.client
        for attempt in range(2):
            try:
                if client.in_block:
                    client.rollback()  # the failed block's work is rolled back anyway
                set_state(client, self.id, status, None, "auto")
                if client.in_block:
                    client.commit()  # or the enclosing block would roll the status back
                return
            except Exception as e:
                if attempt:
                    log.warning(
                        "sqltrack: could not record status %s of run %s: %s", status, self.id, e
                    )
                else:
                    client.discard()  # the connection may be broken: try a fresh one

    @contextmanager
    def track(
        self: T,
        normal: str = "COMPLETED",
        exception: str = "FAILED",
        interrupt: str = "CANCELLED",
        terminated: str = "CANCELLED",
        started: Auto | datetime | None = "auto",
        updated: Auto | datetime | None = "auto",
        buffered: bool = False,
    ) -> Iterator[T]:
        """A context manager that tracks the execution of the run.

        Equivalent to :meth:`start` before the block and :meth:`stop` after it, with the
        status chosen by how the block ends. On SIGTERM the process then ends as a
        terminated process would (exit status -15 / 143); see :mod:`sqltrack.sigterm`.

        Example::

            with run.track():
                for step in range(steps):
                    run.add_metrics({"loss": train_step()}, step=step)

        :param normal: status in case the run completes normally
        :param exception: status in case an exception occurs (re-raised)
        :param interrupt: status in case of Ctrl-C / SIGINT (KeyboardInterrupt, re-raised)
        :param terminated: status in case SIGTERM is received during the run
        :param started: what to do about time_started; see :func:`run_set_started`
        :param updated: what to do about time_updated; see :func:`run_set_updated`
        :param buffered: :meth:`add_metrics` only queues, a background thread writes
            batches (see :mod:`sqltrack.buffer`); everything queued is written before the
            status, however the block ends
        """
        for status in (normal, exception, interrupt, terminated):
            check_status(status)
        self._tracking = True
        try:
            # One connection while the run logs fast (see release_seconds); each call still
            # commits: psql sees every step.
            with self.client.hold():
                self.start(terminated, started, updated)
                if buffered:
                    self._buffer = MetricsBuffer(self.client, self.id, self.heartbeat_seconds)
                    # the writer has its own; this one is needed again at the end only
                    self.client.release()
                try:
                    yield self
                except sigterm.Terminated:
                    self._uninstall_sigterm()
                    self._close_buffer(quietly=True)
                    self._record_final(terminated)
                    sigterm.terminate()
                    raise  # only reached if terminate() is patched out
                except KeyboardInterrupt:
                    self._close_buffer(quietly=True)
                    self._record_final(terminated if self._sigterm_received else interrupt)
                    raise
                except BaseException:
                    self._close_buffer(quietly=True)
                    self._record_final(terminated if self._sigterm_received else exception)
                    raise
                else:
                    try:
                        self._close_buffer()
                    except BaseException:
                        self._record_final(exception)  # metrics were lost: not COMPLETED
                        raise
                    self.stop(terminated if self._sigterm_received else normal, updated)
        finally:
            self._tracking = False
            self._uninstall_sigterm()
            self._close_buffer(quietly=True)  # e.g. start() failed
