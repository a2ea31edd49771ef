"""A run: :class:`Run`, the handle a training job logs through. Its column methods
(:mod:`sqltrack._live.columns`) delegate to their twins (``run.add_tags("x")`` is
``run_add_tags(client, run.id, "x")``): every statement exists once, in
:mod:`sqltrack._write`. Its lifecycle (``start``,
``stop``, ``track()``, metrics with a heartbeat, the final status) is here; how its writes
get through trouble is its :class:`~sqltrack._live.delivery.Delivery`.
"""

from __future__ import annotations

import atexit
import math
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from .._base import process
from .._base.calls import DEFAULT_STEP, UnsteppedCalls, validate
from .._base.values import Auto, timestamp
from .._db.client import Client
from .._write.runs import check_status, get_or_create_run, resolve_run_id
from . import sigterm
from .columns import RunColumns
from .delivery import Delivery
from .queued import QueuedUpdate
from .system_metrics import SystemSampler, sampling_interval


class Run(RunColumns):
    """A run of an experiment: its columns, its metrics, its lifecycle.

    If ``run_id`` is None, a new run with an unused id is created. If it is an int (or a
    string of digits), that run is used, or created with that id if it does not exist.
    Another string names the environment variable that holds the id (e.g.
    ``"SLURM_JOB_ID"``), so a requeued job resumes its run. See
    :func:`~sqltrack._write.runs.get_or_create_run`. Every method but ``log_*`` and
    ``use_artifact`` returns ``self``, so calls chain.

    :param client: the Client to use
    :param experiment_id: id of the experiment; may be None if an existing run_id is given
    :param run_id: id of the run, name of an environment variable holding it, or None
    """

    #: ``add_metrics(updated="auto")`` refreshes ``time_updated`` at most this often
    #: (seconds): a heartbeat for :func:`~sqltrack.stale_runs` that costs no extra
    #: statement per step.
    heartbeat_seconds: float = 5.0
    #: inside ``track()`` the run holds its connection while steps come faster than this
    #: (seconds apart); after a slower step it gives the server connection back until
    #: the next step, so that many slow jobs need few connections (PostgreSQL only)
    release_seconds: float = 0.5
    #: inside ``track()`` a step or status that the database has not taken after this
    #: many seconds (no server, a full one, a restart) is handed to a background writer
    #: (:mod:`sqltrack._live.buffer`), which spools it if it must; the run goes on buffered
    handover_seconds: float = 2.0
    #: keep the run's summary (``run_summaries``) and metric blocks (``metric_blocks``,
    #: what charts of long runs read) current while it runs and at its end
    #: (:mod:`sqltrack._live.upkeep`); False saves the buffered writer 2-5 µs per
    #: step of 10 metrics, and leaves both to ``sqltrack refresh``
    keep_summary: bool = True
    #: inside ``track()`` any other call of the run (tags, args, an artifact, a sample)
    #: that meets an outage waits for the database instead of failing the job, trying
    #: again after pauses that grow up to this many seconds
    wait_pause_seconds: float = 30.0
    #: ... for at most this many seconds; then it raises
    #: :class:`~sqltrack.ConnectionLost` (every retry has a deadline)
    wait_seconds: float = 3600.0

    def __init__(
        self, client: Client, experiment_id: int | None = None, run_id: int | str | None = None
    ) -> None:
        found, experiment = get_or_create_run(client, experiment_id, resolve_run_id(run_id))
        self._setup(client, found, experiment)

    @classmethod
    def of(cls, client: Client, run_id: int, experiment_id: int) -> Run:
        """The handle of a run known to exist, made without a query (what
        :func:`~sqltrack.find_runs` returns)."""
        run = cls.__new__(cls)
        run._setup(client, run_id, experiment_id)
        return run

    def _setup(self, client: Client, run_id: int, experiment_id: int) -> None:
        self.client = client
        self.id = run_id
        self.experiment_id = experiment_id
        self._delivery = Delivery(self)
        self._last_step = -math.inf
        self._restore_sigterm: Any = None
        self._sigterm_received = False
        self._tracking = False
        self._buffered_start = False  # start(buffered=True) outside track()
        self._unstepped = UnsteppedCalls()  # warns when calls without step= overwrite

    def __repr__(self) -> str:
        return f"<sqltrack.Run {self.id} of experiment {self.experiment_id}>"

    # -- metrics ------------------------------------------------------------------------

    def add_metrics(
        self,
        metrics: Mapping[str, Any],
        step: int = DEFAULT_STEP,
        progress: float = 0.0,
        updated: Auto | datetime | None = "auto",
    ) -> Run:
        """Add metrics to the run and refresh its time_updated; see
        :func:`~sqltrack.run_add_metrics`. Without ``step`` a call logs at step 0, and a
        warning says so (once) when such calls replace each other's values. In
        ``track(buffered=True)`` this only checks the call and queues it.

        :param updated: ``'auto'`` refreshes time_updated to now, at most every
            :attr:`heartbeat_seconds` (so most steps cost one statement); a datetime sets
            it; ``None`` leaves it alone
        """
        row = validate(metrics, step, progress)
        if step is DEFAULT_STEP and row is not None and self._unstepped.watching:
            self._unstepped.note(row, self.id)
        delivery = self._delivery
        if row is not None and self.keep_summary:
            delivery.upkeep.note(row)
        buffer = delivery.buffer
        if buffer is not None and buffer.pid == process.pid:  # not in a forked child
            explicit = None  # checked before anything is queued, like the metrics
            if updated == "auto":
                buffer.beat_wanted = True  # before the row: the writer reads it first
            elif updated is not None:
                explicit = QueuedUpdate(timestamp(updated, "time_updated"))  # type: ignore[arg-type]
            if row is not None:
                buffer.put(row)
            if explicit is not None:
                buffer.put(explicit)
            return self
        now = time.monotonic()
        gap, self._last_step = now - self._last_step, now
        run_operation, within = self.client.run_operation, delivery.within
        try:
            if updated == "auto":
                if now - delivery.last_heartbeat < self.heartbeat_seconds:
                    if row is not None:
                        if gap <= self.release_seconds and delivery.write_plain(row):
                            return self  # the steady state: one statement, one commit
                        run_operation(delivery.write, row, None, within=within)
                else:
                    run_operation(delivery.write, row, updated, within=within)
                    delivery.last_heartbeat = now
            else:
                if updated is not None:
                    timestamp(updated, "time_updated")  # bad input: nothing is written
                run_operation(delivery.write, row, updated, within=within)
        except Exception as e:
            if not delivery.may_hand_over(e):
                raise
            delivery.hand_over(e)
            return self.add_metrics(metrics, step, progress, updated)  # buffered now
        if gap > self.release_seconds:
            self.client.release()  # a slow loop: the connection is not worth holding
        return self

    def flush(self) -> Run:
        """Wait until buffered metrics are written (no-op when not buffered).

        :raises SQLTrackError: a background write failed (see :mod:`sqltrack._live.buffer`)
        """
        buffer = self._delivery.live_buffer()
        if buffer is not None:
            buffer.flush()
        return self

    # -- lifecycle ------------------------------------------------------------------------

    def start(
        self,
        terminated: str | None = "CANCELLED",
        started: Auto | datetime | None = "auto",
        updated: Auto | datetime | None = "auto",
        buffered: bool = False,
    ) -> Run:
        """Start the run: status RUNNING, time_started and time_updated now (by default),
        and a SIGTERM handler that records ``terminated`` (None: none; see
        :mod:`sqltrack._live.sigterm`); :meth:`stop` removes it. ``started`` and
        ``updated``: see :func:`~sqltrack.run_set_started`.

        :param buffered: until :meth:`stop`, the run behaves as inside
            ``track(buffered=True)``: :meth:`add_metrics` only queues, a background thread
            writes, and trouble with the database never raises (a step or status is
            handed over, other calls wait for it); for a framework's callbacks, where no
            ``with`` block can hold a training loop (:mod:`sqltrack.integrations`). What
            is queued is written at the interpreter's exit if ``stop()`` never came (the
            status is then left as it is)
        """
        if terminated is not None:
            check_status(terminated)
        delivery = self._delivery
        if buffered and not self._tracking:
            if not self._buffered_start:  # what is queued is written even without stop()
                atexit.register(delivery.close_buffer, quietly=True)
            self._buffered_start = True
            delivery.within = self.handover_seconds
            delivery.push_leftovers()
        try:
            delivery.record("RUNNING", started, updated)
        except BaseException:
            if buffered and not self._tracking:  # not started: not buffered either
                self._buffered_start, delivery.within = False, None
                atexit.unregister(delivery.close_buffer)
            raise
        if buffered and delivery.buffer is None:  # (record() may have handed over already)
            delivery.buffer = delivery.new_buffer(offline=False)
        self._last_step = time.monotonic()  # a loop that starts at once keeps the connection
        self._sigterm_received = False
        if terminated is not None and self._restore_sigterm is None:
            self._restore_sigterm = sigterm.install(
                lambda: self._on_sigterm(terminated), raise_terminated=self._tracking
            )
        return self

    def stop(self, status: str = "COMPLETED", updated: Auto | datetime | None = "auto") -> Run:
        """Stop the run: set its status (COMPLETED by default) and time_updated (now);
        ``updated``: see :func:`~sqltrack.run_set_updated`."""
        check_status(status)
        try:
            self._delivery.record(status, None, updated, final=True)
        finally:
            self._uninstall_sigterm()
            if self._buffered_start:
                self._buffered_start = False
                self._delivery.within = None
                self._delivery.close_buffer(quietly=True)
                atexit.unregister(self._delivery.close_buffer)
        return self

    def _uninstall_sigterm(self) -> None:
        restore, self._restore_sigterm = self._restore_sigterm, None
        if restore is not None:
            restore()

    def _on_sigterm(self, status: str) -> None:
        self._sigterm_received = True
        if not self._tracking:  # start() without track(): nobody else will record it
            self._delivery.record_final(status)

    @contextmanager
    def track(
        self,
        normal: str = "COMPLETED",
        exception: str = "FAILED",
        interrupt: str = "CANCELLED",
        terminated: str = "CANCELLED",
        started: Auto | datetime | None = "auto",
        updated: Auto | datetime | None = "auto",
        buffered: bool = False,
        system_metrics: float | None = None,
    ) -> Iterator[Run]:
        """:meth:`start` before the block and :meth:`stop` after it, with the status
        chosen by how it ends: ``normal``, ``exception`` (re-raised), ``interrupt``
        (Ctrl-C), ``terminated`` (SIGTERM: the process then ends as a terminated one
        would, exit status -15 / 143; see :mod:`sqltrack._live.sigterm`).

        Example::

            with run.track():
                for step in range(steps):
                    run.add_metrics({"loss": train_step()}, step=step)

        :param buffered: :meth:`add_metrics` only queues, a background thread writes
            batches (:mod:`sqltrack._live.buffer`); everything queued is written before
            the status, however the block ends
        :param system_metrics: sample CPU, memory and GPU use every this many seconds into
            ``system_metrics`` (:mod:`sqltrack._live.system_metrics`); default
            ``$SQLTRACK_SYSTEM_METRICS``, else off
        """
        for status in (normal, exception, interrupt, terminated):
            check_status(status)
        system_metrics = sampling_interval(system_metrics)
        sampler = None
        delivery = self._delivery
        self._tracking = True
        delivery.within = self.handover_seconds
        delivery.push_leftovers()
        final = delivery.record_final
        try:
            # One connection while the run logs fast (see release_seconds); each call still
            # commits: psql sees every step.
            with self.client.hold():
                self.start(terminated, started, updated, buffered=buffered)
                if system_metrics:
                    sampler = SystemSampler(self.client, self.id, system_metrics).start()
                if buffered:  # the writer has its own; this one is needed at the end only
                    self.client.release()
                try:
                    yield self
                except sigterm.Terminated:
                    self._uninstall_sigterm()
                    final(terminated)
                    sigterm.terminate()
                    raise  # only reached if terminate() is patched out
                except KeyboardInterrupt:
                    final(terminated if self._sigterm_received else interrupt)
                    raise
                except BaseException:
                    final(terminated if self._sigterm_received else exception)
                    raise
                else:
                    try:
                        self.stop(terminated if self._sigterm_received else normal, updated)
                    except BaseException:
                        final(exception)  # metrics were lost: not COMPLETED
                        raise
        finally:
            if sampler is not None:
                sampler.stop()
            self._tracking = False
            delivery.within = None
            self._uninstall_sigterm()
            delivery.close_buffer(quietly=True)  # e.g. start() failed
