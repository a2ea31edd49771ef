"""Tracking a run: start, stop, ``track()``, metrics while it runs, the final status.

:class:`Tracking` is the half of :class:`~sqltrack.handles.Run` that has state: the
heartbeat (``time_updated``), the buffered writer (:mod:`sqltrack.buffer`), the SIGTERM
handler (:mod:`sqltrack.sigterm`) and recording the final status however the run ends.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

from . import _process, sigterm
from .buffer import MetricsBuffer
from .client import Client
from .engines import first_line
from .errors import ConnectionLost
from .metric_values import DEFAULT_STEP, Row, UnsteppedCalls, validate
from .metrics import write_row
from .queued import SetState, SetUpdated
from .runs import check_status, run_set_updated, set_state
from .spool import Spool, spool_files
from .summaries import Upkeep
from .system_metrics import SystemSampler, sampling_interval
from .values import Auto, timestamp

__all__ = ["Tracking"]

log = logging.getLogger("sqltrack")
T = TypeVar("T", bound="Tracking")
R = TypeVar("R")


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
    #: inside ``track()`` a step or status that the database has not taken after this
    #: many seconds (no server, a full one, a restart) is handed to a background writer
    #: (:mod:`sqltrack.buffer`), which spools it if it must; the run goes on buffered
    handover_seconds: float = 2.0
    #: keep the run's summary (``run_summaries``) current while it runs and at its end
    #: (:mod:`sqltrack.summaries`); False saves the buffered writer about 0.5 µs per step
    #: of 10 metrics, and leaves the summary to ``sqltrack refresh``
    keep_summary: bool = True
    #: inside ``track()`` any other call of the run (tags, args, an artifact, a sample)
    #: that meets an outage waits for the database instead of failing the job, trying
    #: again after pauses that grow up to this many seconds
    wait_pause_seconds: float = 30.0
    #: ... for at most this many seconds; then it raises
    #: :class:`~sqltrack.errors.ConnectionLost` (every retry has a deadline)
    wait_seconds: float = 3600.0

    def __init__(self, client: Client, run_id: int, experiment_id: int | None = None) -> None:
        self.client = client
        self.id = run_id
        #: the run's experiment (None: not known to this handle)
        self.experiment_id = experiment_id
        self._within: float | None = None  # handover_seconds inside track()
        self._last_heartbeat = -math.inf
        self._last_step = -math.inf
        self._buffer: MetricsBuffer | None = None
        self._restore_sigterm: Any = None
        self._sigterm_received = False
        self._tracking = False
        self._upkeep = Upkeep()  # keeps the run's summary current (sqltrack.summaries)
        self._unstepped = UnsteppedCalls()  # warns when calls without step= overwrite

    # -- metrics ------------------------------------------------------------------------

    def add_metrics(
        self: T,
        metrics: Mapping[str, Any],
        step: int = DEFAULT_STEP,
        progress: float = 0.0,
        updated: Auto | datetime | None = "auto",
    ) -> T:
        """Add metrics to the run and refresh its time_updated.
        See :func:`~sqltrack.metrics.run_add_metrics`.

        Without ``step`` a call logs at step 0: a warning says so (once per run) when
        such calls replace each other's values (:class:`~sqltrack.metric_values.UnsteppedCalls`).

        In ``track(buffered=True)`` this only checks the names and values and queues the
        call; see :mod:`sqltrack.buffer`.

        :param updated: ``'auto'`` refreshes time_updated to now, at most every
            :attr:`heartbeat_seconds` (so most steps cost one statement); a datetime sets
            it; ``None`` leaves it alone
        """
        row = validate(metrics, step, progress)
        if step is DEFAULT_STEP and row is not None and self._unstepped.watching:
            self._unstepped.note(row, self.id)
        if row is not None and self.keep_summary:
            self._upkeep.note(row)
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
        run_operation, within = self.client.run_operation, self._within
        try:
            if updated == "auto":
                if now - self._last_heartbeat < self.heartbeat_seconds:
                    if row is not None:
                        run_operation(self._write, row, None, within=within)
                else:
                    run_operation(self._write, row, updated, within=within)
                    self._last_heartbeat = now
            else:
                if updated is not None:
                    timestamp(updated, "time_updated")  # bad input: nothing is written
                run_operation(self._write, row, updated, within=within)
        except Exception as e:
            if not self._may_hand_over(e):
                raise
            self._hand_over(e)
            return self.add_metrics(metrics, step, progress, updated)  # buffered now
        if gap > self.release_seconds:
            self.client.release()  # a slow loop: the connection is not worth holding
        return self

    def _tracked(self, fn: Callable[..., R], *args: Any) -> R:
        """``fn(client, run id, *args)``, one of the run's operations. Inside ``track()``
        an outage does not end the job: the call is tried again until the database takes
        it (the loop waits; metrics logged meanwhile by other threads go on buffered).
        Only there: elsewhere a caller may prefer the error to a wait."""
        pause, waited = 1.0, False
        deadline = time.monotonic() + self.wait_seconds
        while True:
            try:
                result = fn(self.client, self.id, *args)
            except Exception as e:
                if not self._may_hand_over(e):
                    raise
                where = self.client.engine.describe()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ConnectionLost(
                        f"run {self.id}: {where} did not take {fn.__name__} within "
                        f"{self.wait_seconds:g} s ({first_line(e)})"
                    ) from e
                if not waited:
                    log.warning(
                        "sqltrack: run %s: %s did not answer (%s); %s waits for it",
                        self.id, where, first_line(e), fn.__name__,
                    )  # fmt: skip
                waited = True
                time.sleep(min(pause, left))
                pause = min(2 * pause, self.wait_pause_seconds)
                continue
            if waited:
                log.warning("sqltrack: run %s: %s done after the wait", self.id, fn.__name__)
            return result

    def _may_hand_over(self, exc: BaseException) -> bool:
        """Whether a failed write is an outage met inside ``track()`` (outside a user's
        ``with client:`` block): then a step or status goes to a background writer, and
        the run's other calls wait (:meth:`_tracked`), instead of raising."""
        return (
            self._within is not None and not self.client.in_block and self.client.is_transient(exc)
        )

    def _hand_over(self, reason: BaseException) -> MetricsBuffer:
        """Go on buffered, with a writer that spools until the database answers again."""
        self.client.discard()
        log.warning(
            "sqltrack: run %s: %s did not answer within %g s (%s); the run goes on buffered",
            self.id,
            self.client.engine.describe(),
            self.handover_seconds,
            first_line(reason),
        )
        self._buffer = self._new_buffer(offline=True)
        return self._buffer

    def _new_buffer(self, offline: bool) -> MetricsBuffer:
        return MetricsBuffer(
            self.client,
            self.id,
            self.heartbeat_seconds,
            offline,
            None if not self.keep_summary else self._upkeep,
            self.experiment_id,
        )

    def _write(self, row: Row | None, updated: Auto | datetime | None) -> None:
        """One operation: the row, and time_updated unless ``updated`` is None."""
        client = self.client
        with client as conn:
            if row is not None:
                write_row(client, conn, self.id, row)
            if updated is not None:
                run_set_updated(client, self.id, updated)  # locks the run's row
                if self.keep_summary and self._upkeep.due():
                    self._upkeep.update(client, conn, self.id)

    def _finish(
        self, status: str, started: Auto | datetime | None, updated: Auto | datetime | None
    ) -> None:
        """One operation: the run's status and times, and its summary brought up to date."""
        client = self.client
        with client as conn:
            set_state(client, self.id, status, started, updated)
            if self.keep_summary:
                self._upkeep.update(client, conn, self.id, final=True)

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
        try:
            self.client.run_operation(
                set_state, self.client, self.id, "RUNNING", started, updated, within=self._within
            )
        except Exception as e:
            if not self._may_hand_over(e):
                raise
            state = SetState(
                "RUNNING", timestamp(started, "time_started"), timestamp(updated, "time_updated")
            )
            self._hand_over(e).put(state)
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
        check_status(status)
        buffer = self._live_buffer()
        if buffer is None:
            try:
                self.client.run_operation(self._finish, status, None, updated, within=self._within)
            except Exception as e:
                if not self._may_hand_over(e):
                    raise
                buffer = self._hand_over(e)
        if buffer is not None:  # after the metrics queued before it
            buffer.put(SetState(status, None, timestamp(updated, "time_updated")), check=False)
            self._close_buffer()
        self._uninstall_sigterm()
        return self

    def _live_buffer(self) -> MetricsBuffer | None:
        buffer = self._buffer
        return buffer if buffer is not None and buffer.pid == _process.pid else None

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
        buffer = self._live_buffer()
        for attempt in range(2):
            if buffer is not None:  # after the metrics queued before it, or spooled
                buffer.put(SetState(status, None, timestamp("auto", "time_updated")), check=False)
                self._close_buffer(quietly=True)
                return
            try:
                if client.in_block:
                    client.rollback()  # the failed block's work is rolled back anyway
                client.run_operation(self._finish, status, None, "auto")
                if client.in_block:
                    client.commit()  # or the enclosing block would roll the status back
                return
            except Exception as e:
                if self._may_hand_over(e):
                    buffer = self._hand_over(e)
                elif attempt:
                    log.warning(
                        "sqltrack: could not record status %s of run %s: %s", status, self.id, e
                    )
                else:
                    client.discard()  # the connection may be broken: try a fresh one

    def _push_leftovers(self) -> None:
        """Push what earlier processes of this run left in the spool (a requeued job),
        before this one writes anything; never raises."""
        for path in spool_files(self.client, self.id):
            try:
                spool = Spool(path)
                if spool.lock():
                    pushed = spool.push(self.client, within=self.handover_seconds)
                    spool.remove()
                    log.warning(
                        "sqltrack: run %s: %d entries left in %s written", self.id, pushed, path
                    )
            except Exception as e:
                log.warning("sqltrack: run %s: could not push %s: %s", self.id, path, e)

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
        system_metrics: float | None = None,
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
        :param system_metrics: sample CPU, memory and GPU use every this many seconds into
            ``system_metrics`` (see :mod:`sqltrack.system_metrics`); default
            ``$SQLTRACK_SYSTEM_METRICS``, else off
        """
        for status in (normal, exception, interrupt, terminated):
            check_status(status)
        system_metrics = sampling_interval(system_metrics)
        sampler = None
        self._tracking = True
        self._within = self.handover_seconds
        self._push_leftovers()
        try:
            # One connection while the run logs fast (see release_seconds); each call still
            # commits: psql sees every step.
            with self.client.hold():
                self.start(terminated, started, updated)
                if system_metrics:
                    sampler = SystemSampler(self.client, self.id, system_metrics).start()
                if buffered:
                    if self._buffer is None:  # (start() may have handed over already)
                        self._buffer = self._new_buffer(offline=False)
                    # the writer has its own; this one is needed again at the end only
                    self.client.release()
                try:
                    yield self
                except sigterm.Terminated:
                    self._uninstall_sigterm()
                    self._record_final(terminated)
                    sigterm.terminate()
                    raise  # only reached if terminate() is patched out
                except KeyboardInterrupt:
                    self._record_final(terminated if self._sigterm_received else interrupt)
                    raise
                except BaseException:
                    self._record_final(terminated if self._sigterm_received else exception)
                    raise
                else:
                    try:
                        self.stop(terminated if self._sigterm_received else normal, updated)
                    except BaseException:
                        self._record_final(exception)  # metrics were lost: not COMPLETED
                        raise
        finally:
            if sampler is not None:
                sampler.stop()
            self._tracking = False
            self._within = None
            self._uninstall_sigterm()
            self._close_buffer(quietly=True)  # e.g. start() failed
