"""What every integration shares: the run it writes, opened at its first use and started
buffered, and its end recorded once, never raising into training.

A framework calls its logger or callback from inside its own loop; nothing there may end
the job. So bad arguments (and a bad configuration) raise when the integration is made,
before training starts; the database must answer when the run is opened (its first use,
as training starts: the run gets its id then). From then on nothing raises into the
training: metrics go through the background writer (which spools through outages), the
run's other calls wait for the database (:meth:`~sqltrack._live.delivery.Delivery.wait_for`),
and what cannot be written is a warning (once per kind of problem) instead of an error.
"""

from __future__ import annotations

import atexit
import logging
import sys
import threading
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Literal, TypeVar

from .._base.names import check_metric_name, suggest_metric_name
from .._db.client import Client
from .._live.handles import Experiment, ids_from_env
from .._live.run import Run
from .._write.provenance import code_state
from .._write.runs import check_status, resolve_run_id
from ..errors import InvalidMetricName, InvalidValue, SQLTrackError
from ._plain import experiment_of, flag, jsonable, scalar

log = logging.getLogger("sqltrack")

#: at most this many different problems are warned about per run (then it goes quiet)
MAX_WARNINGS = 20
#: at the run's end, wait at most this many seconds for the git state still being read
CODE_WAIT = 30.0


class Session:
    """The run of one integration.

    :param client: the client, or None for ``Client()`` (environment and config file)
    :param experiment: a name (created if missing) or an id; see :func:`experiment_of`
    :param run_id: None (a new run, or ``$SQLTRACK_RUN_ID``), an id, or the name of an
        environment variable that holds one (``"SLURM_JOB_ID"``: a requeued job resumes)
    :param env: record the environment (:meth:`Run.set_env`, secrets redacted)
    :param code: record the git state of the code (:meth:`Run.set_code`; read by git in a
        thread from the moment the integration is made, so training does not wait for it)
    :param from_env: ``run_id=None`` means ``$SQLTRACK_RUN_ID`` when it is set (False: a
        new run each time, e.g. one per Optuna trial)

    A run still open when the interpreter exits (training raised, and the framework has
    no hook that says so) ends FAILED, or CANCELLED after Ctrl-C; :meth:`end` ends it at
    once, for an integration used as a ``with`` block. Writes after the end (an
    evaluation after training) go straight to the database and leave the status alone.
    """

    def __init__(
        self,
        client: Client | None,
        experiment: int | str | None,
        run_id: int | str | None,
        env: bool = True,
        code: bool = True,
        from_env: bool = True,
    ) -> None:
        if client is not None and not isinstance(client, Client):
            raise InvalidValue(f"client must be a sqltrack.Client, not {type(client).__name__}")
        if run_id is None and from_env:
            run_id = ids_from_env()[2]
        self.run_id = resolve_run_id(run_id)  # bad input raises here, before training
        self.experiment_id, self.experiment_name = experiment_of(experiment)
        self._env, self._code = flag(env, "env"), flag(code, "code")
        self.client = Client() if client is None else client  # a bad config raises now
        # git takes tens of milliseconds: read in a thread from now on, written once read
        self._code_state = _InThread(code_state) if self._code else None
        self._code_due = False  # the run opened last has no code state yet
        self._stores_nan = self.client.engine.stores_nan
        self._run: Run | None = None
        #: the status the run ended with, while it is ended
        self.finished: str | None = None
        #: the status a job being requeued left, while it is (:meth:`suspend`)
        self.suspended: str | None = None
        #: the status of a run still open at exit, when an integration knows better than
        #: FAILED (LightGBM's early stopping ends training with no call): a function
        #: returning a status, or None for the default
        self.exit_status: Callable[[], str | None] | None = None
        self._names: dict[str, str] = {}  # a framework's metric name -> the one logged
        self._warned: set[str] = set()

    @property
    def experiment(self) -> str:
        """The experiment's name, or its id as text."""
        return self.experiment_name or str(self.experiment_id)

    @property
    def run(self) -> Run:
        """The run, created (or resumed) and started at the first use."""
        if self._run is None:
            client = self.client
            experiment_id = Experiment(client, self.experiment_id, self.experiment_name).id
            run = Run(client, experiment_id, self.run_id)
            # no SIGTERM handler: the framework's own (Lightning's requeue) keeps working
            run.start(terminated=None, buffered=True)
            self._run = run
            atexit.register(self._at_exit)
            _watch_uncaught()
            if self._env:
                self._quietly(run.set_env, "auto")
            self._code_due = self._code_state is not None
            self._write_code()
        return self._run

    @property
    def opened(self) -> bool:
        return self._run is not None

    def begin(self, fresh: bool = False) -> Run:
        """A training begins: the run, opened; after :meth:`finish`, started again, or with
        ``fresh`` (a later ``train()`` with the same callback) a new run, unless the run's
        id was given (then it is that run again)."""
        if self._run is not None and self.finished is not None:
            self.finished = None
            if fresh and self.run_id is None:
                self._run = None
            else:
                self._run.start(terminated=None, started=None, buffered=True)
                atexit.register(self._at_exit)
        if self.suspended is not None:
            self.suspended = None
            atexit.register(self._at_exit)
        return self.run

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        """Log the numbers among ``metrics`` at ``step`` (tensors and numpy scalars
        unwrapped; other values, e.g. strings a framework reports, left out, and NaN
        where the engine stores none: SQLite)."""
        # (a framework calls this every step: the common case, floats, costs least)
        names, stores_nan = self._names, self._stores_nan
        values = {}
        for name, value in metrics.items():
            if type(value) is not float:
                value = scalar(value)
                if value is None:
                    continue
            if value != value and not stores_nan:
                self.warn(f"{self.client.engine.describe()} stores no NaN: left out")
                continue
            values[names.get(name) or self._name(name)] = value
        if values:
            run = self.run  # a database that does not answer as training starts raises
            try:
                run.add_metrics(values, step=step if type(step) is int else int(step))
            except SQLTrackError as e:
                self.warn(e)
            if self._code_due:
                self._write_code()

    def args(self, params: Mapping[str, Any]) -> None:
        """Add ``params`` to the run's args, nested as they are, made JSON."""
        plain = jsonable(params)
        if plain:
            self._quietly(self.run.add_args, plain)

    def artifact(self, path: str, step: int | None, metadata: Mapping[str, Any]) -> None:
        """Log the checkpoint at ``path`` (hashed here)."""
        self._quietly(self.run.log_artifact, path, None, "checkpoint", step, jsonable(metadata))

    def finish(self, status: str) -> None:
        """Stop the run with ``status`` (once; later calls do nothing): everything queued
        is written first; FAILED instead of COMPLETED if metrics were lost on the way.
        Never raises: the training is over, a problem is a warning."""
        check_status(status)
        if self.finished is not None or self._run is None:
            return
        self._write_code(CODE_WAIT)
        self.finished, self.suspended = status, None
        atexit.unregister(self._at_exit)
        try:
            self._run.stop(status)
        except SQLTrackError as e:
            self.warn(e)
            if status == "COMPLETED":
                self.finished = "FAILED"
                self._quietly(self._run.set_status, "FAILED")

    def suspend(self, status: str) -> None:
        """Record ``status`` (REQUEUED) after what is queued and leave the run open for
        the job's next process: an exit now is no failure. Lightning calls this from a
        signal handler: the status goes through the background writer, which has it
        written, or spooled, within seconds even in an outage. Never raises."""
        check_status(status)
        if self._run is None or self.finished is not None:
            return
        self._write_code(CODE_WAIT)
        atexit.unregister(self._at_exit)
        self.suspended = status
        try:
            self._run._delivery.record(status, None, "auto")  # queued after the metrics
            self._run.flush()
        except SQLTrackError as e:
            self.warn(e)

    def end(self, exc: BaseException | None) -> None:
        """Finish as a block ends: COMPLETED, FAILED after an exception, CANCELLED after
        Ctrl-C (:meth:`finish`)."""
        self.finish(ending_status(exc))

    def warn(self, problem: BaseException | str) -> None:
        """A warning in sqltrack's log, once per kind of problem (at most
        :data:`MAX_WARNINGS`): what training goes on without."""
        text = str(problem).split("\n", 1)[0]
        key = text[:80]
        if key in self._warned or len(self._warned) >= MAX_WARNINGS:
            return
        self._warned.add(key)
        where = f"run {self._run.id}" if self._run is not None else "an integration"
        log.warning("sqltrack: %s: %s (training goes on)", where, text)

    def _name(self, name: Any) -> str:
        """The name ``name`` is logged under (remembered): itself if sqltrack takes it."""
        try:
            logged = check_metric_name(name)
        except InvalidMetricName:
            logged = suggest_metric_name(str(name))  # XGBoost's ndcg@5: ndcg_5
            self.warn(f"metric {str(name)[:60]!r} is logged as {logged!r}")
        if type(name) is str:
            self._names[name] = logged
        return logged

    def _write_code(self, wait: float = 0.0) -> None:
        """Record the git state in the run, once it has been read (waiting at most
        ``wait`` seconds for it); a run opened since the last time gets it too."""
        later = self._code_state
        if not self._code_due or later is None or self._run is None:
            return
        if later.done.wait(wait):
            self._code_due = False
            self._quietly(self._run.set_code, later.value)

    def _at_exit(self) -> None:
        status = self.exit_status() if self.exit_status is not None else None
        if status is None:
            status = ending_status(_uncaught[0]) if _uncaught else "FAILED"
        self.finish(status)

    def _quietly(self, fn: Callable[..., Any], *args: Any) -> None:
        """A call that training goes on without: a problem is a warning."""
        try:
            fn(*args)
        except SQLTrackError as e:
            self.warn(e)


class _InThread:
    """The value of ``fn()``, computed in a daemon thread started now (None if it
    raised); :attr:`done` is set once it is there."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.value: Any = None
        self.done = threading.Event()
        threading.Thread(target=self._run, args=(fn,), name="sqltrack-code", daemon=True).start()

    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            self.value = fn()
        except Exception:  # (code_state never raises: this is for the unforeseen)
            self.value = None
        finally:
            self.done.set()


B = TypeVar("B", bound="EndsWithBlock")


class EndsWithBlock:
    """Makes an integration a ``with`` block that ends its run as the block ends: FAILED
    when it raised (CANCELLED after Ctrl-C), else COMPLETED (unless the framework's own
    end came first). For frameworks with no hook that says training raised."""

    _session: Session

    def __enter__(self: B) -> B:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Literal[False]:
        self._session.end(exc)
        return False


def ending_status(exc: BaseException | None) -> str:
    """The status of a run whose training ended with ``exc`` (None: normally)."""
    if exc is None:
        return "COMPLETED"
    return "CANCELLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"


#: the exception that ended the interpreter, if one did (for a run still open at exit)
_uncaught: list[BaseException] = []


def _watch_uncaught() -> None:
    """Note the exception that ends the interpreter (chained before the hook there was),
    once a run is open: the hook is installed at most once."""
    previous = sys.excepthook
    if getattr(previous, "sqltrack", False):
        return

    def hook(kind: type[BaseException], exc: BaseException, tb: Any) -> None:
        _uncaught[:] = [exc]
        previous(kind, exc, tb)

    hook.sqltrack = True  # type: ignore[attr-defined]
    sys.excepthook = hook
