"""What every integration shares: the run it writes, opened at its first write and started
buffered, its values made plain, and its end recorded once, never raising into training.

A framework calls its logger or callback from inside its own loop; nothing there may end
the job. So: bad arguments raise when the integration is made (before training starts);
once training runs, a run that cannot be opened or ended is a warning, metrics go through
the background writer (which spools through outages), and the run's other calls wait
for the database (:meth:`~sqltrack._live.delivery.Delivery.wait_for`).
"""

from __future__ import annotations

import atexit
import enum
import logging
import math
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import PurePath
from typing import Any

from .._db.client import Client
from .._live.handles import Experiment
from .._live.run import Run
from .._write.runs import check_status, resolve_run_id
from ..errors import InvalidValue, SQLTrackError

log = logging.getLogger("sqltrack")

#: a framework's nested hyperparameters are kept as they are, down to this depth
MAX_DEPTH = 20


def experiment_of(experiment: int | str | None) -> int | str:
    """``experiment`` as given, or from ``$SQLTRACK_EXPERIMENT_NAME`` /
    ``$SQLTRACK_EXPERIMENT_ID``; raises at once when there is none."""
    if experiment is None:
        name = os.environ.get("SQLTRACK_EXPERIMENT_NAME") or None
        number = (os.environ.get("SQLTRACK_EXPERIMENT_ID") or "").strip()
        if name is not None:
            return name
        if number.isdigit():
            return int(number)
        raise InvalidValue(
            "no experiment: pass experiment= (a name or id) or set SQLTRACK_EXPERIMENT_NAME"
        )
    if isinstance(experiment, bool) or not isinstance(experiment, (int, str)) or not experiment:
        raise InvalidValue(f"experiment must be a name or an id, not {experiment!r}")
    return experiment


class Session:
    """The run of one integration.

    :param client: the client, or None for ``Client()`` (environment and config file)
    :param experiment: a name (created if missing) or an id; see :func:`experiment_of`
    :param run_id: None (a new run, or ``$SQLTRACK_RUN_ID``), an id, or the name of an
        environment variable that holds one (``"SLURM_JOB_ID"``: a requeued job resumes)
    :param env: record the environment (:meth:`Run.set_env`, secrets redacted)
    :param code: record the git state of the code (:meth:`Run.set_code`)
    :param from_env: ``run_id=None`` means ``$SQLTRACK_RUN_ID`` when it is set (False: a
        new run each time, e.g. one per Optuna trial)

    A run still open when the interpreter exits (training raised, and the framework has
    no hook that says so) ends FAILED, or CANCELLED after Ctrl-C; :meth:`end` ends it at
    once, for an integration used as a ``with`` block.
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
            run_id = os.environ.get("SQLTRACK_RUN_ID") or None
        self.run_id = resolve_run_id(run_id)  # bad input raises here, before training
        self.experiment = experiment_of(experiment)
        self._client = client
        self._env, self._code = env, code
        self._run: Run | None = None
        self.finished: str | None = None
        self._suspended = False
        #: the status of a run still open at exit, when an integration knows better than
        #: FAILED (LightGBM's early stopping ends training with no call): a function
        #: returning a status, or None for the default
        self.exit_status: Callable[[], str | None] | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client()
        return self._client

    @property
    def run(self) -> Run:
        """The run, created (or resumed) and started at the first use."""
        if self._run is None:
            client, experiment = self.client, self.experiment
            if isinstance(experiment, int):
                experiment_id = Experiment(client, experiment_id=experiment).id
            else:
                experiment_id = Experiment(client, name=experiment).id
            run = Run(client, experiment_id, self.run_id)
            # no SIGTERM handler: the framework's own (Lightning's requeue) keeps working
            run.start(terminated=None, buffered=True)
            self._run = run
            atexit.register(self._at_exit)
            _watch_uncaught()
            if self._env:
                self._quietly(run.set_env, "auto")
            if self._code:
                self._quietly(run.set_code, "auto")
        return self._run

    def live(self) -> Run:
        """The run, to write to: after :meth:`finish` started again (a trainer's ``fit``
        then ``test``), after :meth:`suspend` open again."""
        run = self.run
        if self.finished is not None:
            self.finished = None
            run.start(terminated=None, started=None, buffered=True)
            atexit.register(self._at_exit)
        elif self._suspended:
            self._suspended = False
            atexit.register(self._at_exit)
        return run

    @property
    def opened(self) -> bool:
        return self._run is not None

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        """Log the numbers among ``metrics`` at ``step`` (tensors and numpy scalars
        unwrapped; other values, e.g. strings a framework reports, left out)."""
        values = {}
        for name, value in metrics.items():
            number = scalar(value)
            if number is not None:
                values[str(name)] = number
        if values:
            self.live().add_metrics(values, step=int(step))

    def args(self, params: Mapping[str, Any]) -> None:
        """Add ``params`` to the run's args, nested as they are, made JSON."""
        plain = jsonable(params)
        if plain:
            self.live().add_args(plain)

    def finish(self, status: str) -> None:
        """Stop the run with ``status`` (once; later calls do nothing): everything queued
        is written first. Never raises: the training is over, a problem is a warning."""
        check_status(status)
        if self.finished is not None or self._run is None:
            return
        self.finished = status
        atexit.unregister(self._at_exit)
        try:
            self._run.stop(status)
        except SQLTrackError as e:
            log.warning("sqltrack: run %s: %s", self._run.id, e)

    def suspend(self, status: str) -> None:
        """Write what is queued and set ``status`` (e.g. REQUEUED), leaving the run open
        for a later process of the job: an exit then is no failure. Never raises."""
        check_status(status)
        if self._run is None or self.finished is not None:
            return
        atexit.unregister(self._at_exit)
        self._suspended = True
        try:
            self._run.flush().set_status(status)
        except SQLTrackError as e:
            log.warning("sqltrack: run %s: %s", self._run.id, e)

    def end(self, exc: BaseException | None) -> None:
        """Finish as a block ends: COMPLETED, FAILED after an exception, CANCELLED after
        Ctrl-C (:meth:`finish`)."""
        self.finish(ending_status(exc))

    def _at_exit(self) -> None:
        status = self.exit_status() if self.exit_status is not None else None
        if status is None:
            status = ending_status(_uncaught[0]) if _uncaught else "FAILED"
        self.finish(status)

    def _quietly(self, fn: Any, *args: Any) -> None:
        """Provenance is worth a warning, not a failed training job."""
        try:
            fn(*args)
        except SQLTrackError as e:
            log.warning("sqltrack: run %s: %s", self.run_id, e)


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


def scalar(value: Any) -> int | float | bool | None:
    """A number from a framework's value (a Python number, a 0-d tensor or array, a numpy
    scalar), or None when it is not one."""
    if isinstance(value, (bool, int, float)):
        return value
    item = getattr(value, "item", None)
    if callable(item):
        try:
            value = item()
        except (ValueError, RuntimeError, TypeError):  # more than one element
            return None
        if isinstance(value, (bool, int, float)):
            return value
    return None


def jsonable(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON: mappings and sequences kept nested, numbers and strings as they
    are, tensors and numpy scalars unwrapped, paths and enums by value, a float that is not
    finite as its text, anything else as its ``str``."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if depth >= MAX_DEPTH:
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v, depth + 1) for v in value]
    if isinstance(value, enum.Enum):
        return jsonable(value.value, depth + 1)
    if isinstance(value, PurePath):
        return str(value)
    number = scalar(value)
    if number is not None:
        return jsonable(number, depth + 1)
    return str(value)
