"""Runs: ``run_*`` functions, :class:`Run` and :func:`run_from_env`.

Run ids: a run created with an explicit id (e.g. a Slurm job id) keeps it; explicit ids
must be between 1 and :data:`MAX_EXPLICIT_RUN_ID`. Runs created without an id get one
from :data:`FIRST_GENERATED_RUN_ID` upwards, so explicit and generated ids never collide.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

from . import _process, _rows, sigterm
from .args import as_dict, detect_args
from .buffer import MetricsBuffer, SetUpdated
from .client import Client, operation
from .env import detect_env, redact_env
from .errors import InvalidValue, NotFound, is_foreign_key_violation
from .experiments import get_or_create_experiment
from .metrics import run_add_metrics, validate
from .values import Auto, json_dumps, timestamp

__all__ = [
    "FIRST_GENERATED_RUN_ID",
    "MAX_EXPLICIT_RUN_ID",
    "RUN_STATUSES",
    "Run",
    "get_or_create_run",
    "run_add_args",
    "run_add_env",
    "run_add_extras",
    "run_add_link",
    "run_add_metrics",
    "run_add_tags",
    "run_from_env",
    "run_remove_args",
    "run_remove_env",
    "run_remove_extras",
    "run_remove_link",
    "run_remove_tags",
    "run_set_args",
    "run_set_comment",
    "run_set_created",
    "run_set_env",
    "run_set_extras",
    "run_set_started",
    "run_set_status",
    "run_set_tags",
    "run_set_updated",
    "stale_runs",
]

log = logging.getLogger("sqltrack")

MAX_EXPLICIT_RUN_ID = 9_999_999_999
FIRST_GENERATED_RUN_ID = MAX_EXPLICIT_RUN_ID + 1

#: The run states, the same as Slurm's job states.
RUN_STATUSES = (
    "BOOT_FAIL",
    "CANCELLED",
    "COMPLETED",
    "CONFIGURING",
    "COMPLETING",
    "DEADLINE",
    "FAILED",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "PENDING",
    "PREEMPTED",
    "RUNNING",
    "RESV_DEL_HOLD",
    "REQUEUE_FED",
    "REQUEUE_HOLD",
    "REQUEUED",
    "RESIZING",
    "REVOKED",
    "SIGNALING",
    "SPECIAL_EXIT",
    "STAGE_OUT",
    "STOPPED",
    "SUSPENDED",
    "TIMEOUT",
)

_T = "runs"


def _check_status(status: Any) -> str:
    if isinstance(status, str) and status.upper() in RUN_STATUSES:
        return status.upper()
    raise InvalidValue(f"unknown run status {status!r}; valid: {', '.join(RUN_STATUSES)}")


def _db_time(client: Client, dt: Auto | datetime | None, where: str) -> Any:
    value = timestamp(dt, where)
    return None if value is None else client.engine.adapt_datetime(value)


def resolve_run_id(run_id: int | str | None) -> int | None:
    """``None`` and ints pass; a string of digits is an id; another string names an
    environment variable that holds the id (e.g. ``"SLURM_JOB_ID"``)."""
    if run_id is None:
        return None
    if isinstance(run_id, str):
        text = run_id.strip()
        if not text.isdigit():
            if text not in os.environ:
                raise InvalidValue(f"run id: environment variable {text} is not set")
            value = os.environ[text].strip()
            if not value.isdigit():
                raise InvalidValue(f"run id: ${text} is {value!r}, not a positive integer")
            text = value
        run_id = int(text)
    return _rows.check_id(run_id, "run")


@operation
def get_or_create_run(
    client: Client, experiment_id: int | None = None, run_id: int | None = None
) -> tuple[int, int]:
    """Return ``(run_id, experiment_id)`` of an existing run, or create the run.

    - ``run_id`` None: a new run of ``experiment_id`` with a generated id.
    - ``run_id`` exists: that run; if ``experiment_id`` is given it must match.
    - ``run_id`` does not exist: created with that id in ``experiment_id`` (required);
      the id must be at most :data:`MAX_EXPLICIT_RUN_ID`. Safe when jobs race.

    :raises NotFound: the experiment does not exist, or the run does not and no
        experiment was given.
    :raises InvalidValue: the run belongs to another experiment, or the id is out of range.
    """
    if experiment_id is not None:
        _rows.check_id(experiment_id, "experiment")
    if run_id is not None:
        _rows.check_id(run_id, "run")
    with client:
        if run_id is not None:
            rows = client._query("SELECT experiment_id FROM runs WHERE id = :id", {"id": run_id})
            if rows:
                return run_id, _check_experiment(run_id, rows[0][0], experiment_id)
            if experiment_id is None:
                raise NotFound(f"run {run_id} does not exist; give an experiment to create it")
            if run_id > MAX_EXPLICIT_RUN_ID:
                raise InvalidValue(
                    f"run {run_id} does not exist and cannot be created: explicit run ids "
                    f"must be at most {MAX_EXPLICIT_RUN_ID} (larger ones are generated)"
                )
        elif experiment_id is None:
            raise InvalidValue("give an experiment_id to create a run")
        params = {
            "id": run_id,
            "experiment_id": experiment_id,
            "now": _db_time(client, "auto", "time_created"),
        }
        columns = (
            "experiment_id, time_created" if run_id is None else "id, experiment_id, time_created"
        )
        values = ":experiment_id, :now" if run_id is None else ":id, :experiment_id, :now"
        try:
            rows = client._query(
                f"INSERT INTO runs ({columns}) VALUES ({values}) "  # noqa: S608
                "ON CONFLICT (id) DO NOTHING RETURNING id, experiment_id",
                params,
            )
        except Exception as e:
            if is_foreign_key_violation(e):
                raise NotFound(f"experiment {experiment_id} does not exist") from None
            raise
        if not rows:  # another job created the same run id first
            rows = client._query("SELECT id, experiment_id FROM runs WHERE id = :id", params)
        return int(rows[0][0]), _check_experiment(rows[0][0], rows[0][1], experiment_id)


def _check_experiment(run_id: int, stored: int, wanted: int | None) -> int:
    if wanted is not None and stored != wanted:
        raise InvalidValue(f"run {run_id} belongs to experiment {stored}, not {wanted}")
    return int(stored)


# -- simple columns --------------------------------------------------------------------


@operation
def run_set_status(client: Client, run_id: int, status: str) -> None:
    """Set a run's status: one of :data:`RUN_STATUSES` (Slurm's job states, any case).

    :raises InvalidValue: unknown status.
    """
    _rows.set_column(client, _T, "status", run_id, _check_status(status))


@operation
def run_set_comment(client: Client, run_id: int, comment: str | None) -> None:
    """Set the comment for an existing run (``None`` clears it)."""
    _rows.set_comment(client, _T, run_id, comment)


def _set_time(client: Client, run_id: int, column: str, dt: Auto | datetime | None) -> None:
    value = _db_time(client, dt, column)
    if value is not None:
        _rows.set_column(client, _T, column, run_id, value)


@operation
def run_set_created(client: Client, run_id: int, dt: Auto | datetime | None = "auto") -> None:
    """Set ``time_created`` for an existing run.

    :param dt: ``'auto'`` (now), a timezone-aware datetime, or ``None`` (do nothing)
    """
    _set_time(client, run_id, "time_created", dt)


@operation
def run_set_started(client: Client, run_id: int, dt: Auto | datetime | None = "auto") -> None:
    """Set ``time_started`` for an existing run.

    :param dt: ``'auto'`` (now), a timezone-aware datetime, or ``None`` (do nothing)
    """
    _set_time(client, run_id, "time_started", dt)


@operation
def run_set_updated(client: Client, run_id: int, dt: Auto | datetime | None = "auto") -> None:
    """Set ``time_updated`` for an existing run.

    :param dt: ``'auto'`` (now), a timezone-aware datetime, or ``None`` (do nothing)
    """
    _set_time(client, run_id, "time_updated", dt)


# -- tags and links --------------------------------------------------------------------


@operation
def run_set_tags(client: Client, run_id: int, *tags: str) -> None:
    """Set the tags of an existing run (replacing all others)."""
    _rows.set_tags(client, _T, run_id, tags)


@operation
def run_add_tags(client: Client, run_id: int, *tags: str) -> None:
    """Add tags to an existing run."""
    _rows.add_tags(client, _T, run_id, tags)


@operation
def run_remove_tags(client: Client, run_id: int, *tags: str) -> None:
    """Remove tags from an existing run."""
    _rows.remove_tags(client, _T, run_id, tags)


@operation
def run_add_link(client: Client, from_id: int, kind: str, to_id: int) -> None:
    """Add a link of some ``kind`` (e.g. ``"resumes"``) between two runs.

    :raises NotFound: one of the runs does not exist.
    """
    _rows.add_link(client, _T, from_id, kind, to_id)


@operation
def run_remove_link(client: Client, from_id: int, kind: str, to_id: int) -> None:
    """Remove a link between two runs (a missing link is ignored)."""
    _rows.remove_link(client, _T, from_id, kind, to_id)


# -- args, env, extras -----------------------------------------------------------------


def _resolve(column: str, value: Any) -> dict[str, Any] | None:
    """'auto' → detected; dict/Namespace → dict; None → None. Env is always redacted."""
    if isinstance(value, str) and value == "auto":
        if column == "args":
            return detect_args()
        if column == "env":
            return detect_env()
        raise InvalidValue("extras cannot be 'auto'; pass a dict")
    if value is None:
        return None
    try:
        data = as_dict(value) if column == "args" else value
    except TypeError as e:
        raise InvalidValue(str(e)) from None
    if not isinstance(data, Mapping):
        allowed = "a dict or None" if column == "extras" else "'auto', a dict or None"
        raise InvalidValue(f"{column} must be {allowed}, got {type(value).__name__}")
    return redact_env(data) if column == "env" else dict(data)


def _set_object(client: Client, run_id: int, column: str, value: Any) -> None:
    data = _resolve(column, value)
    if column == "args" and isinstance(value, str) and not data:
        return  # 'auto' detected nothing: leave args alone
    text = None if data is None else json_dumps(data, f"run {run_id} {column}")
    _rows.set_column(client, _T, column, run_id, text)


def _add_object(client: Client, run_id: int, column: str, value: Any) -> None:
    data = _resolve(column, value)
    if not data:
        return
    new = _rows.check_object(data, f"run {run_id} {column}")
    _rows.change_json(client, _T, column, run_id, lambda cur: {**cur, **new})


def _remove_keys(client: Client, run_id: int, column: str, keys: tuple[Any, ...]) -> None:
    names: set[str] = set()
    for key in keys:
        if isinstance(key, Mapping):
            names.update(str(k) for k in key)
        elif isinstance(key, str):
            names.add(key)
        else:
            raise InvalidValue(f"names to remove from {column} must be str, got {key!r}")
    if names:
        _rows.change_json(
            client, _T, column, run_id, lambda cur: {k: v for k, v in cur.items() if k not in names}
        )


@operation
def run_set_args(
    client: Client, run_id: int, args: Auto | Mapping[str, Any] | Any | None = "auto"
) -> None:
    """Set run arguments. See :func:`sqltrack.args.detect_args` for ``'auto'``.

    Nothing is done if no arguments are detected in auto mode.

    :param args: ``'auto'`` (detect), a dict or ``argparse.Namespace``, or ``None`` (set NULL)
    """
    _set_object(client, run_id, "args", args)


@operation
def run_add_args(
    client: Client, run_id: int, args: Auto | Mapping[str, Any] | Any | None = "auto"
) -> None:
    """Add arguments to an existing run, replacing those of the same name.

    :param args: ``'auto'`` (detect), a dict or ``argparse.Namespace``, or ``None`` (do nothing)
    """
    _add_object(client, run_id, "args", args)


@operation
def run_remove_args(client: Client, run_id: int, *args: str) -> None:
    """Remove arguments (by name) from an existing run."""
    _remove_keys(client, run_id, "args", args)


@operation
def run_set_env(client: Client, run_id: int, env: Auto | Mapping[str, Any] | None = "auto") -> None:
    """Set the run environment; secrets are redacted (see :mod:`sqltrack.env`).

    :param env: ``'auto'`` (``os.environ``), a dict, or ``None`` (set NULL)
    """
    _set_object(client, run_id, "env", env)


@operation
def run_add_env(client: Client, run_id: int, env: Auto | Mapping[str, Any] | None = "auto") -> None:
    """Add environment variables to an existing run; secrets are redacted.

    :param env: ``'auto'`` (``os.environ``), a dict, or ``None`` (do nothing)
    """
    _add_object(client, run_id, "env", env)


@operation
def run_remove_env(client: Client, run_id: int, *env: str) -> None:
    """Remove environment variables (by name) from an existing run."""
    _remove_keys(client, run_id, "env", env)


@operation
def run_set_extras(client: Client, run_id: int, extras: Mapping[str, Any] | None = None) -> None:
    """Set run extras (any JSON object of your own).

    :param extras: a dict, or ``None`` (set NULL)
    """
    _set_object(client, run_id, "extras", extras)


@operation
def run_add_extras(client: Client, run_id: int, extras: Mapping[str, Any] | None = None) -> None:
    """Add extras to an existing run, replacing those of the same name.

    :param extras: a dict, or ``None`` (do nothing)
    """
    _add_object(client, run_id, "extras", extras)


@operation
def run_remove_extras(client: Client, run_id: int, *extras: str) -> None:
    """Remove extras (by name) from an existing run."""
    _remove_keys(client, run_id, "extras", extras)


# -- stale runs -----------------------------------------------------------------------


@operation
def stale_runs(
    client: Client, older_than: float | timedelta = 600, experiment_id: int | None = None
) -> list[int]:
    """Ids of runs that are ``RUNNING`` but have not been updated for ``older_than``.

    A job killed with SIGKILL (out of memory, node failure, a time limit without grace)
    cannot record a status, so its run stays ``RUNNING``. While a run is tracked, its
    ``time_updated`` is refreshed whenever it logs metrics; a run silent for longer than
    its logging interval is probably dead. The same in psql::

        SELECT id FROM runs WHERE status = 'RUNNING'
          AND COALESCE(time_updated, time_started, time_created) < now() - interval '10 minutes';

    :param older_than: seconds, or a ``timedelta``
    :param experiment_id: only runs of this experiment
    :return: the run ids, oldest update first
    """
    seconds = older_than.total_seconds() if isinstance(older_than, timedelta) else older_than
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
        raise InvalidValue(
            f"older_than must be a non-negative number of seconds, got {older_than!r}"
        )
    cutoff = _db_time(client, datetime.now(timezone.utc) - timedelta(seconds=seconds), "cutoff")
    rows = client._query(
        "SELECT id FROM runs WHERE status = 'RUNNING' "
        "AND COALESCE(time_updated, time_started, time_created) < :cutoff "
        "AND (CAST(:experiment_id AS BIGINT) IS NULL OR experiment_id = :experiment_id) "
        "ORDER BY COALESCE(time_updated, time_started, time_created), id",
        {"cutoff": cutoff, "experiment_id": experiment_id},
    )
    return [int(r[0]) for r in rows]


# -- from the environment --------------------------------------------------------------


@operation
def run_from_env(client: Client) -> Run:
    """Get the :class:`Run` defined by environment variables.

    The experiment comes from ``SQLTRACK_EXPERIMENT_NAME`` and/or
    ``SQLTRACK_EXPERIMENT_ID`` (at least one; by name it is created if missing). The run
    is ``SQLTRACK_RUN_ID`` if set (created with that id if missing, resumed if it
    exists), else a new run.

    :raises InvalidValue: neither experiment variable is set, or an id is not a number.
    """
    name = os.environ.get("SQLTRACK_EXPERIMENT_NAME") or None
    exp_text = os.environ.get("SQLTRACK_EXPERIMENT_ID") or None
    run_text = os.environ.get("SQLTRACK_RUN_ID") or None
    if name is None and exp_text is None:
        raise InvalidValue("set SQLTRACK_EXPERIMENT_NAME or SQLTRACK_EXPERIMENT_ID (or both)")
    experiment_id = None
    if exp_text is not None:
        if not exp_text.strip().isdigit():
            raise InvalidValue(f"SQLTRACK_EXPERIMENT_ID is {exp_text!r}, not a positive integer")
        experiment_id = int(exp_text)
    if run_text is not None and not run_text.strip().isdigit():
        raise InvalidValue(f"SQLTRACK_RUN_ID is {run_text!r}, not a positive integer")
    with client:
        experiment_id = get_or_create_experiment(client, experiment_id, name)
        return Run(client, experiment_id, None if run_text is None else int(run_text))


# -- the Run class ---------------------------------------------------------------------


class Run:
    """Helper class to manage runs.

    If ``run_id`` is None, a new run with an unused id is created. If it is an int,
    that run is used, or created with that id if it does not exist. If it is a string,
    the id is read from that environment variable (e.g. ``"SLURM_JOB_ID"``), so a
    requeued job resumes its run. See :func:`get_or_create_run`.

    All methods return ``self`` to allow chaining, e.g.
    ``Run(client, exp_id).set_comment("nice").add_tags("tag")``.

    :param client: the Client to use.
    :param experiment_id: id of the experiment; may be None if an existing run_id is given.
    :param run_id: id of the run, name of an environment variable holding it, or None.
    """

    #: ``add_metrics(updated="auto")`` refreshes ``time_updated`` at most this often
    #: (seconds): a heartbeat for :func:`stale_runs` that costs no extra statement per step.
    heartbeat_seconds: float = 5.0

    def __init__(
        self, client: Client, experiment_id: int | None = None, run_id: int | str | None = None
    ) -> None:
        self.client = client
        self.id, self.experiment_id = get_or_create_run(
            client, experiment_id, resolve_run_id(run_id)
        )
        self._last_heartbeat = -math.inf
        self._buffer: MetricsBuffer | None = None
        self._restore_sigterm: Any = None
        self._sigterm_received = False
        self._tracking = False

    def __repr__(self) -> str:
        return f"<sqltrack.Run {self.id} of experiment {self.experiment_id}>"

    def set_status(self, status: str) -> Run:
        """Set the run status. See :func:`run_set_status`."""
        run_set_status(self.client, self.id, status)
        return self

    def set_comment(self, comment: str | None) -> Run:
        """Set the run comment."""
        run_set_comment(self.client, self.id, comment)
        return self

    def set_created(self, dt: Auto | datetime | None = "auto") -> Run:
        """Set time_created for the run. See :func:`run_set_created`."""
        run_set_created(self.client, self.id, dt)
        return self

    def set_started(self, dt: Auto | datetime | None = "auto") -> Run:
        """Set time_started for the run. See :func:`run_set_started`."""
        run_set_started(self.client, self.id, dt)
        return self

    def set_updated(self, dt: Auto | datetime | None = "auto") -> Run:
        """Set time_updated for the run. See :func:`run_set_updated`."""
        run_set_updated(self.client, self.id, dt)
        return self

    def set_tags(self, *tags: str) -> Run:
        """Set the run tags. See :func:`run_set_tags`."""
        run_set_tags(self.client, self.id, *tags)
        return self

    def add_tags(self, *tags: str) -> Run:
        """Add tags to the run. See :func:`run_add_tags`."""
        run_add_tags(self.client, self.id, *tags)
        return self

    def remove_tags(self, *tags: str) -> Run:
        """Remove tags from the run. See :func:`run_remove_tags`."""
        run_remove_tags(self.client, self.id, *tags)
        return self

    def add_link(self, kind: str, to_id: int) -> Run:
        """Add a link of ``kind`` from this run to run ``to_id``."""
        run_add_link(self.client, self.id, kind, to_id)
        return self

    def remove_link(self, kind: str, to_id: int) -> Run:
        """Remove a link of ``kind`` from this run to run ``to_id``."""
        run_remove_link(self.client, self.id, kind, to_id)
        return self

    def set_args(self, args: Auto | Mapping[str, Any] | Any | None = "auto") -> Run:
        """Set the run parameters. See :func:`run_set_args`."""
        run_set_args(self.client, self.id, args)
        return self

    def add_args(self, args: Auto | Mapping[str, Any] | Any | None = "auto") -> Run:
        """Add parameters to the run. See :func:`run_add_args`."""
        run_add_args(self.client, self.id, args)
        return self

    def remove_args(self, *args: str | Mapping[str, Any]) -> Run:
        """Remove parameters from the run, by name (or the keys of a dict)."""
        run_remove_args(self.client, self.id, *args)  # type: ignore[arg-type]
        return self

    def set_env(self, env: Auto | Mapping[str, Any] | None = "auto") -> Run:
        """Set the run environment. See :func:`run_set_env`."""
        run_set_env(self.client, self.id, env)
        return self

    def add_env(self, env: Auto | Mapping[str, Any] | None = "auto") -> Run:
        """Add environment variables to the run. See :func:`run_add_env`."""
        run_add_env(self.client, self.id, env)
        return self

    def remove_env(self, *env: str | Mapping[str, Any]) -> Run:
        """Remove environment variables from the run, by name (or the keys of a dict)."""
        run_remove_env(self.client, self.id, *env)  # type: ignore[arg-type]
        return self

    def set_extras(self, extras: Mapping[str, Any] | None = None) -> Run:
        """Set the run extras. See :func:`run_set_extras`."""
        run_set_extras(self.client, self.id, extras)
        return self

    def add_extras(self, extras: Mapping[str, Any] | None = None) -> Run:
        """Add extras to the run. See :func:`run_add_extras`."""
        run_add_extras(self.client, self.id, extras)
        return self

    def remove_extras(self, *extras: str | Mapping[str, Any]) -> Run:
        """Remove extras from the run, by name (or the keys of a dict)."""
        run_remove_extras(self.client, self.id, *extras)  # type: ignore[arg-type]
        return self

    def add_metrics(
        self,
        metrics: Mapping[str, Any],
        step: int = 0,
        progress: float = 0.0,
        updated: Auto | datetime | None = "auto",
    ) -> Run:
        """Add metrics to the run and refresh its time_updated. See :func:`run_add_metrics`.

        In ``track(buffered=True)`` this only checks the names and values and queues the
        call; see :mod:`sqltrack.buffer`.

        :param updated: ``'auto'`` refreshes time_updated to now, at most every
            :attr:`heartbeat_seconds` (so most steps cost one statement); a datetime sets
            it; ``None`` leaves it alone
        """
        buffer = self._buffer
        if buffer is not None and buffer.pid == _process.pid:  # not in a forked child
            row = validate(metrics, step, progress)
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
        return self._add_metrics(metrics, step, progress, updated)

    def flush(self) -> Run:
        """Wait until buffered metrics are written (no-op when not buffered).

        :raises SQLTrackError: a background write failed (see :mod:`sqltrack.buffer`)
        """
        if self._buffer is not None and self._buffer.pid == _process.pid:
            self._buffer.flush()
        return self

    @operation
    def _add_metrics(
        self,
        metrics: Mapping[str, Any],
        step: int,
        progress: float,
        updated: Auto | datetime | None,
    ) -> Run:
        now = time.monotonic()
        if updated is None or (
            updated == "auto" and now - self._last_heartbeat < self.heartbeat_seconds
        ):
            # one statement; this method is the operation, so skip run_add_metrics' wrapper
            run_add_metrics.__wrapped__(self.client, self.id, metrics, step, progress)  # type: ignore[attr-defined]
            return self
        with self.client:
            run_add_metrics(self.client, self.id, metrics, step, progress)
            run_set_updated(self.client, self.id, updated)
        if updated == "auto":
            self._last_heartbeat = now
        return self

    # -- lifecycle -----------------------------------------------------------------------

    @operation
    def _set_state(
        self, status: str, started: Auto | datetime | None, updated: Auto | datetime | None
    ) -> None:
        client = self.client
        params = {
            "id": self.id,
            "status": _check_status(status),
            "started": _db_time(client, started, "time_started"),
            "updated": _db_time(client, updated, "time_updated"),
        }
        rows = client._query(
            "UPDATE runs SET status = :status, "
            "time_started = COALESCE(:started, time_started), "
            "time_updated = COALESCE(:updated, time_updated) "
            "WHERE id = :id RETURNING id",
            params,
        )
        if not rows:
            raise NotFound(f"run {self.id} does not exist")

    def start(
        self,
        terminated: str | None = "CANCELLED",
        started: Auto | datetime | None = "auto",
        updated: Auto | datetime | None = "auto",
    ) -> Run:
        """Start the run: status RUNNING, time_started and time_updated now (by default).

        Also installs a SIGTERM handler that records the ``terminated`` status (see
        :mod:`sqltrack.sigterm`); :meth:`stop` removes it.

        :param terminated: status to record on SIGTERM; ``None`` installs no handler
        :param started: what to do about time_started; see :func:`run_set_started`
        :param updated: what to do about time_updated; see :func:`run_set_updated`
        """
        if terminated is not None:
            _check_status(terminated)
        self._set_state("RUNNING", started, updated)
        self._sigterm_received = False
        if terminated is not None and self._restore_sigterm is None:
            self._restore_sigterm = sigterm.install(
                lambda: self._on_sigterm(terminated), raise_terminated=self._tracking
            )
        return self

    def stop(self, status: str = "COMPLETED", updated: Auto | datetime | None = "auto") -> Run:
        """Stop the run: set its status (COMPLETED by default) and time_updated (now).

        :param status: the final status
        :param updated: what to do about time_updated; see :func:`run_set_updated`
        """
        self._close_buffer()
        self._set_state(status, None, updated)
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
                if client.connected and client._depth > 0:
                    client.rollback()  # the failed block's work is rolled back anyway
                self._set_state(status, None, "auto")
                if client.connected and client._depth > 0:
                    client.commit()  # or the enclosing block would roll the status back
                return
            except Exception as e:
                if attempt:
                    log.warning(
                        "sqltrack: could not record status %s of run %s: %s", status, self.id, e
                    )
                else:
                    client._close()  # the connection may be broken: try a fresh one

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
    ) -> Iterator[Run]:
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
            _check_status(status)
        self._tracking = True
        try:
            # One connection for the whole run; each call still commits: psql sees every step.
            with self.client._keep_open():
                self.start(terminated, started, updated)
                if buffered:
                    self._buffer = MetricsBuffer(self.client, self.id, self.heartbeat_seconds)
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
