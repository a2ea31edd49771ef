"""True final states from Slurm's accounting: ``sqltrack reconcile``.

A job killed by the OOM killer, a time limit, a node failure or SIGKILL after the grace
period cannot record its status: its run stays ``RUNNING``. :func:`reconcile` asks
``sacct`` about runs still ``RUNNING`` or ``PENDING`` whose ids are Slurm job ids (run
ids up to :data:`~sqltrack._write.runs.MAX_EXPLICIT_RUN_ID`) and records the final state Slurm
recorded, with its end time. A status the job wrote itself is never overridden (only
``RUNNING``/``PENDING`` rows are updated, checked again in the ``UPDATE``); running it
twice changes nothing. Array tasks are matched by their raw job id (``JobIDRaw``, which
is what ``$SLURM_JOB_ID`` holds in a task); for a requeued job ``sacct`` reports its
latest record.
"""

from __future__ import annotations

import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from typing import NamedTuple

from .._db.client import Client, operation
from .._write.rows import check_experiment
from .._write.runs import MAX_EXPLICIT_RUN_ID, db_time
from ..errors import InvalidValue, SQLTrackError

#: Slurm's final job states, each a run status of the same name
SLURM_FINAL_STATES = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "TIMEOUT",
    }
)
_CANDIDATES = (
    "SELECT r.id, r.status FROM runs r JOIN experiments e ON e.id = r.experiment_id "
    "WHERE r.status IN ('RUNNING', 'PENDING') AND r.id <= :max_id "
    "AND COALESCE(r.time_updated, r.time_started, r.time_created) < :cutoff "
    "AND (CAST(:experiment AS TEXT) IS NULL OR e.name = :experiment) ORDER BY r.id"
)
_SET_FINAL = (
    "UPDATE runs SET status = :status, time_updated = COALESCE(:ended, time_updated) "
    "WHERE id = :id AND status IN ('RUNNING', 'PENDING') RETURNING id"
)
_BATCH = 500  # job ids per sacct call


class Reconciled(NamedTuple):
    """A run :func:`reconcile` set (or would set): its old and new status and end time."""

    run_id: int
    old: str
    new: str
    ended: datetime | None


def _sacct(command: str, job_ids: list[int]) -> dict[int, tuple[str, datetime | None]]:
    """``{job id: (state, end time)}`` from ``sacct --parsable2``, final states only."""
    found: dict[int, tuple[str, datetime | None]] = {}
    for i in range(0, len(job_ids), _BATCH):
        ids = ",".join(map(str, job_ids[i : i + _BATCH]))
        done = subprocess.run(
            [command, "-X", "--noheader", "--parsable2", "--format=JobIDRaw,JobID,State,End",
             "-j", ids],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )  # fmt: skip
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or ["no message"])[0]
            raise SQLTrackError(f"sacct failed (exit status {done.returncode}): {reason}")
        for line in done.stdout.splitlines():
            fields = line.split("|")
            if len(fields) < 4 or not fields[0].isdigit():
                continue
            state = fields[2].split()[0] if fields[2].strip() else ""  # "CANCELLED by 123"
            if state not in SLURM_FINAL_STATES:
                continue  # still pending, running, requeued ...
            found[int(fields[0])] = (state, _end_time(fields[3]))
    return found


def _end_time(text: str) -> datetime | None:
    """sacct's End (``2026-11-22T10:15:30``, the cluster's local time), aware; None for
    ``Unknown``/``None``."""
    try:
        return datetime.fromisoformat(text.strip()).astimezone(timezone.utc)
    except ValueError:
        return None


@operation
def reconcile(
    client: Client,
    experiment: str | None = None,
    older_than: float = 600.0,
    dry_run: bool = False,
    sacct: str = "sacct",
) -> list[Reconciled]:
    """Set the final state Slurm recorded on runs still ``RUNNING`` or ``PENDING``.

    Deleted runs are reconciled too: a run restored later then has its true state.

    Example::

        for run_id, old, new, ended in reconcile(client, experiment="sweep"):
            print(run_id, old, "->", new)

    :param experiment: only the runs of this experiment (a name)
    :param older_than: only runs silent for this many seconds (a live job's heartbeat
        keeps its run newer)
    :param dry_run: report, change nothing
    :param sacct: the command to run
    :return: what was (or, with ``dry_run``, would be) changed, by run id
    :raises SQLTrackError: ``sacct`` is not on PATH, or failed
    :raises NotFound: the experiment does not exist
    """
    if isinstance(older_than, bool) or not isinstance(older_than, (int, float)) or older_than < 0:
        raise InvalidValue(f"older_than must be seconds (a number >= 0), got {older_than!r}")
    if experiment is not None and not isinstance(experiment, str):
        raise InvalidValue(f"experiment must be a name, got {experiment!r}")
    if experiment is not None:
        check_experiment(client, experiment)
    if shutil.which(sacct) is None:
        raise SQLTrackError(f"{sacct} is not on PATH: reconcile needs Slurm's accounting")
    cutoff = db_time(client, datetime.now(timezone.utc) - timedelta(seconds=older_than), "cutoff")
    params = {"max_id": MAX_EXPLICIT_RUN_ID, "cutoff": cutoff, "experiment": experiment}
    candidates = {int(i): s for i, s in client.query(_CANDIDATES, params)}
    if not candidates:
        return []
    states = _sacct(sacct, sorted(candidates))
    changed = []
    for run_id in sorted(states):
        state, ended = states[run_id]
        if not dry_run:
            end = None if ended is None else db_time(client, ended, "end")
            done = client.query(_SET_FINAL, {"id": run_id, "status": state, "ended": end})
            if not done:
                continue  # the job wrote its own status meanwhile
        changed.append(Reconciled(run_id, candidates[run_id], state, ended))
    return changed
