"""Runs: their ids, statuses and the ``run_*`` functions.

A run's args, env and extras have theirs in :mod:`sqltrack._write.run_json`.

The :class:`~sqltrack.Run` handle is built on these; tracking a run (start, stop,
``track()``) lives in :mod:`sqltrack._live.run`.

Run ids: a run created with an explicit id (e.g. a Slurm job id) keeps it; explicit ids
must be between 1 and :data:`MAX_EXPLICIT_RUN_ID`. Runs created without an id get one
from :data:`FIRST_GENERATED_RUN_ID` upwards, so explicit and generated ids never collide.
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime
from typing import Any

from .._base.values import Auto, timestamp
from .._db.client import Client, operation
from .._db.schema import RUN_UIDS, applied
from ..errors import InvalidValue, NotFound
from . import rows as _rows

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

_EXPERIMENT_OF = "SELECT experiment_id FROM runs WHERE id = :id"
_CREATE = (
    "INSERT INTO runs (experiment_id, time_created) VALUES (:experiment_id, :now) "
    "ON CONFLICT (id) DO NOTHING RETURNING id, experiment_id"
)
_CREATE_WITH_ID = (
    "INSERT INTO runs (id, experiment_id, time_created) VALUES (:id, :experiment_id, :now) "
    "ON CONFLICT (id) DO NOTHING RETURNING id, experiment_id"
)
_CREATE_WITH_UID = (
    "INSERT INTO runs (experiment_id, time_created, uid) VALUES (:experiment_id, :now, :uid) "
    "ON CONFLICT (id) DO NOTHING RETURNING id, experiment_id"
)
_CREATED_AS = "SELECT id, experiment_id FROM runs WHERE uid = :uid"
_IDS_OF = "SELECT id, experiment_id FROM runs WHERE id = :id"
# A run that gets any status but PENDING has started: if it never said when (stop()
# without start()), its time_created is the best guess there is.
_SET_STATE = (
    "UPDATE runs SET status = :status, "
    "time_started = COALESCE(:started, time_started, "
    "CASE WHEN :fill_start THEN time_created END), "
    "time_updated = COALESCE(:updated, time_updated) "
    "WHERE id = :id RETURNING id"
)


def check_status(status: Any) -> str:
    """A status of :data:`RUN_STATUSES` in upper case; :class:`InvalidValue` if unknown."""
    if isinstance(status, str) and status.upper() in RUN_STATUSES:
        return status.upper()
    raise InvalidValue(f"unknown run status {status!r}; valid: {', '.join(RUN_STATUSES)}")


def db_time(client: Client, dt: Auto | datetime | None, where: str) -> Any:
    """A timestamp argument (``'auto'``, aware datetime, None) as the engine stores it."""
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
            if not text.isidentifier():
                raise InvalidValue(
                    f"run id {run_id!r} is neither a number nor the name of an environment variable"
                )
            if text not in os.environ:
                raise InvalidValue(f"run id: environment variable {text} is not set")
            value = os.environ[text].strip()
            if not value.isdigit():
                raise InvalidValue(f"run id: ${text} is {value!r}, not a positive integer")
            text = value
        run_id = int(text)
    return _rows.check_id(run_id, "run")


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
    # One operation, retried as a whole after a lost connection. A new run gets its uid
    # here, before the first try: a retry after a commit whose answer was lost finds
    # the run it made instead of making a second one.
    uid = uuid.uuid4().hex
    return client.run_operation(_get_or_create_run, client, experiment_id, run_id, uid)  # type: ignore[no-any-return]


def _get_or_create_run(
    client: Client, experiment_id: int | None, run_id: int | None, uid: str
) -> tuple[int, int]:
    if experiment_id is not None:
        _rows.check_id(experiment_id, "experiment")
    if run_id is not None:
        _rows.check_id(run_id, "run")
    with client:
        if run_id is not None:
            rows = client.query(_EXPERIMENT_OF, {"id": run_id})
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
            "now": db_time(client, "auto", "time_created"),
            "uid": uid,
        }
        if run_id is None:
            if applied(client, RUN_UIDS):
                rows = client.query(_CREATED_AS, params)  # made by an earlier try?
                if rows:
                    return int(rows[0][0]), int(rows[0][1])
                create = _CREATE_WITH_UID
            else:  # a database set up before runs had uids: `sqltrack setup` adds them
                create = _CREATE
        else:
            create = _CREATE_WITH_ID
        try:
            rows = client.query(create, params)
        except Exception as e:
            if client.engine.is_foreign_key_violation(e):
                raise NotFound(f"experiment {experiment_id} does not exist") from None
            raise
        if not rows:  # another job created the same run id first
            rows = client.query(_IDS_OF, params)
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
    _rows.set_column(client, _T, "status", run_id, check_status(status))


@operation
def run_set_comment(client: Client, run_id: int, comment: str | None) -> None:
    """Set the comment for an existing run (``None`` clears it)."""
    _rows.set_comment(client, _T, run_id, comment)


def _set_time(client: Client, run_id: int, column: str, dt: Auto | datetime | None) -> None:
    value = db_time(client, dt, column)
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


@operation
def record_status(
    client: Client,
    run_id: int,
    status: str,
    started: Auto | datetime | None,
    updated: Auto | datetime | None,
) -> None:
    """Set a run's status, and its time_started and time_updated unless None, at once.
    A run given a status other than ``PENDING`` that has no time_started gets its
    time_created as such (``stop()`` without ``start()``).

    :raises NotFound: the run does not exist.
    """
    params = {
        "id": run_id,
        "status": check_status(status),
        "started": db_time(client, started, "time_started"),
        "updated": db_time(client, updated, "time_updated"),
        "fill_start": check_status(status) != "PENDING",
    }
    if not client.query(_SET_STATE, params):
        raise _rows.absent(client, "runs", run_id)
