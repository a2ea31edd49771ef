"""Deleting, restoring and collecting runs: ``sqltrack delete``, ``restore``, ``gc``.

Deleting a run only sets its ``time_deleted`` (schema version 7): the read side leaves
it out, and :func:`restore_runs` brings it back with everything it had. Deleting an
experiment deletes its runs with it, at the same time, so that restoring the experiment
restores those runs and not the ones deleted before on their own. :func:`gc_deleted`
removes runs deleted long enough ago for good, their metrics in bounded batches (each
batch its own short transaction, so writers of other runs never wait long, and the
client's memory stays flat), then deleted experiments left without runs; runs tagged
``keep`` are never collected.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

from .._db.client import Client, operation
from .._db.schema import DELETION, require
from .._read.search import select_runs
from .._write import points
from .._write.rows import check_id, check_runs, mine
from .._write.runs import db_time
from ..errors import InvalidValue, NotFound

_FILTERS = ("experiment", "status", "tags", "args", "where")
_EXPERIMENT_BY_NAME = "SELECT id, time_deleted FROM experiments WHERE name = :e"
_EXPERIMENT_BY_ID = "SELECT id, time_deleted FROM experiments WHERE id = :e"
# {ids} in the next four statements: the engine's "column is one of :ids" (sqltrack's
# own text). Runs by id or of experiments; those deleted before keep their time
_DELETE_RUNS = "UPDATE runs SET time_deleted = :now WHERE {ids} AND time_deleted IS NULL"
_RESTORE_RUNS = "UPDATE runs SET time_deleted = NULL WHERE {ids}"
_RESTORE_RUNS_OF = (  # the runs deleted with their experiment: at the same time
    "UPDATE runs SET time_deleted = NULL WHERE {ids} AND time_deleted = "
    "(SELECT e.time_deleted FROM experiments e WHERE e.id = runs.experiment_id)"
)
_SET_EXPERIMENTS = "UPDATE experiments SET time_deleted = :now WHERE {ids}"
# the runs gc removes; {keep}: the engine's "tags has the key :keep" (sqltrack's own text)
_DOOMED = (
    "SELECT id FROM runs WHERE time_deleted IS NOT NULL AND time_deleted < :cutoff "
    "AND NOT ({keep}) ORDER BY id"
)
# {name}: swept or low, the prefix of the key's two parameters
_FROM_KEY = " AND (step, progress) >= (:{name}_step, :{name}_progress)"
#: the key ``:n`` rows on of a run's metrics ({after}: where the scan starts, or nothing)
BOUND = (
    "SELECT step, progress FROM metrics WHERE run_id = :run{after} "
    "ORDER BY step, progress LIMIT 1 OFFSET :n"
)
_BELOW = " AND (step, progress) < (:step, :progress)"  # up to the bound, not including it
# a batch of a run's metrics: {after}: _FROM_KEY's condition or nothing, {below}: _BELOW
# or nothing (sqltrack's own text)
_DELETE_METRICS = "DELETE FROM metrics WHERE run_id = :run{after}{below}"
# a batch of a run's values in the narrow storage (schema v010), in key order
_DELETE_POINTS = (
    "DELETE FROM metric_points WHERE run_id = :run AND (name_id, step, progress) IN "
    "(SELECT name_id, step, progress FROM metric_points WHERE run_id = :run "
    "ORDER BY name_id, step, progress LIMIT :n)"
)
_HAS_POINTS = "SELECT 1 FROM metric_points WHERE run_id = :run LIMIT 1"
_DELETE_SYSTEM_METRICS = "DELETE FROM system_metrics WHERE run_id = :run"
_DELETE_RUN = "DELETE FROM runs WHERE id = :run"  # its links, summaries, samples, uses with it
_GC_EXPERIMENTS = (
    "DELETE FROM experiments WHERE time_deleted < :cutoff "
    "AND NOT EXISTS (SELECT 1 FROM runs WHERE runs.experiment_id = experiments.id)"
)


def _check_schema(client: Client) -> None:
    require(client, DELETION, "deleting runs needs")


def _chosen(client: Client, run_ids: Iterable[int], deleted: bool, filters: Any) -> list[int]:
    ids = [check_id(i, "run") for i in run_ids]
    unknown = set(filters) - set(_FILTERS)
    if unknown:
        raise InvalidValue(f"unknown filter: {', '.join(sorted(unknown))}")
    given = {k: v for k, v in filters.items() if v is not None}
    if not ids and not given:
        raise InvalidValue("give run ids or filters (experiment, status, tags, args, where)")
    _check_schema(client)
    if ids:
        check_runs(client, ids)  # a run already deleted (or not) exists
        engine = client.engine
        given["where"] = (engine.in_array("runs.id", "_ids"), {})
        extra = {"_ids": engine.adapt_array(ids)}
    else:
        extra = {}
    rows = select_runs(client, "runs.id", extra=extra, deleted=deleted, **given)
    return [int(r[0]) for r in rows]


class Changed(list[int]):
    """The ids changed (or that would be, with ``dry_run``), in order: a list. Its
    ``left_alone``: the ids chosen that other roles created, which this role may not
    change (one server for a lab, docs/lab.md); empty on SQLite."""

    def __init__(self, ids: Iterable[int] = (), left_alone: Iterable[int] = ()) -> None:
        super().__init__(ids)
        self.left_alone = list(left_alone)


def _mine(client: Client, table: str, ids: list[int]) -> Changed:
    """``ids``: those this role may change, and the others as ``left_alone``."""
    return Changed(*mine(client, table, ids))


@operation
def delete_runs(
    client: Client, run_ids: Iterable[int] = (), dry_run: bool = False, **filters: Any
) -> Changed:
    """Delete runs (reversibly): the given ids and/or the runs that match the filters of
    :func:`~sqltrack.find_runs`; returns the ids deleted now (a :class:`Changed`: its
    ``left_alone`` are the runs of other roles, on a lab's server, that this role may
    not delete).

    Example::

        delete_runs(client, experiment="sweep", status=["FAILED", "CANCELLED"])

    :raises InvalidValue: neither ids nor filters (deleting every run takes ``where="TRUE"``)
    :raises NotFound: a run id or an experiment that does not exist
    """
    ids = _mine(client, "runs", _chosen(client, run_ids, False, filters))
    if ids and not dry_run:
        now = db_time(client, "auto", "time_deleted")
        engine = client.engine
        query = _DELETE_RUNS.format(ids=engine.in_array("id", "ids"))
        client.query(query, {"now": now, "ids": engine.adapt_array(ids)})
    return ids


@operation
def restore_runs(
    client: Client, run_ids: Iterable[int] = (), dry_run: bool = False, **filters: Any
) -> Changed:
    """Restore deleted runs (the given ids and/or the deleted runs that match the
    filters); returns their ids. Nothing of theirs was lost."""
    ids = _mine(client, "runs", _chosen(client, run_ids, True, filters))
    if ids and not dry_run:
        engine = client.engine
        query = _RESTORE_RUNS.format(ids=engine.in_array("id", "ids"))
        client.query(query, {"ids": engine.adapt_array(ids)})
    return ids


def _experiments(client: Client, experiments: int | str | Iterable[int | str]) -> list[Any]:
    """``(id, time_deleted)`` of each experiment given by name or id, in the order given."""
    items = [experiments] if isinstance(experiments, (int, str)) else list(experiments)
    if not items:
        raise InvalidValue("give at least one experiment (a name or an id)")
    found = []
    for item in items:
        if isinstance(item, str):
            rows = client.query(_EXPERIMENT_BY_NAME, {"e": item})
        elif isinstance(item, int) and not isinstance(item, bool):
            rows = client.query(_EXPERIMENT_BY_ID, {"e": check_id(item, "experiment")})
        else:
            raise InvalidValue(f"an experiment is a name or an id, got {item!r}")
        if not rows:
            raise NotFound(f"experiment {item!r} does not exist")
        if rows[0] not in found:
            found.append(rows[0])
    return found


@operation
def delete_experiments(
    client: Client, experiments: int | str | Iterable[int | str], dry_run: bool = False
) -> Changed:
    """Delete experiments (reversibly), given by name or id, and their runs with them;
    returns the ids of the experiments deleted now (those deleted before stay as they are).

    Example::

        delete_experiments(client, ["sweep-old", "debug"])

    Using a deleted experiment again (``Experiment(client, name="debug")``) brings it
    back, without its deleted runs.

    :raises NotFound: an experiment that does not exist
    """
    return _mark_experiments(client, experiments, dry_run, delete=True)


@operation
def restore_experiments(
    client: Client, experiments: int | str | Iterable[int | str], dry_run: bool = False
) -> Changed:
    """Restore deleted experiments, given by name or id, with the runs deleted with them
    (runs deleted before, on their own, stay deleted); returns the ids restored now."""
    return _mark_experiments(client, experiments, dry_run, delete=False)


def _mark_experiments(client: Client, experiments: Any, dry_run: bool, delete: bool) -> Changed:
    """Set (``delete``) or clear the experiments' ``time_deleted`` and their runs'; the
    ids of the experiments changed (or that would be, with ``dry_run``)."""
    _check_schema(client)
    found = _experiments(client, experiments)
    ids = _mine(
        client, "experiments", [int(i) for i, deleted in found if (deleted is None) == delete]
    )
    if ids and not dry_run:
        engine = client.engine
        now = db_time(client, "auto", "time_deleted") if delete else None
        runs = _DELETE_RUNS if delete else _RESTORE_RUNS_OF
        params = {"now": now, "ids": engine.adapt_array(ids)}
        with client:  # the runs first: restoring compares them with the experiment's time
            client.query(runs.format(ids=engine.in_array("experiment_id", "ids")), params)
            client.query(_SET_EXPERIMENTS.format(ids=engine.in_array("id", "ids")), params)
    return ids


@operation
def gc_deleted(
    client: Client, deleted_before: float = 30 * 86400, batch: int = 10_000, dry_run: bool = False
) -> Changed:
    """Remove for good the runs deleted more than ``deleted_before`` seconds ago, except
    those tagged ``keep``: their metrics in batches of ``batch`` rows, each in its own
    transaction and followed by a rest as long as it took, then the run (its links,
    summaries, samples and uses with it, its values of the narrow storage in batches too;
    its artifacts stay, without a run); then the
    experiments deleted as long ago that have no run left. Returns the run ids removed.

    :raises InvalidValue: called inside a ``with client:`` block (one transaction for
        all batches would hold what it deleted, and writers behind it, to the end)
    """
    if (
        isinstance(deleted_before, bool)
        or not isinstance(deleted_before, (int, float))
        or (deleted_before < 0)
    ):
        raise InvalidValue(f"deleted_before must be seconds >= 0, got {deleted_before!r}")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise InvalidValue(f"batch must be a positive integer, got {batch!r}")
    if client.in_block:
        raise InvalidValue("gc_deleted commits batch by batch, so that writers never wait "
                           "long: call it outside a `with client:` block")  # fmt: skip
    _check_schema(client)
    engine = client.engine
    cutoff = db_time(
        client, datetime.now(timezone.utc) - timedelta(seconds=deleted_before), "cutoff"
    )
    keep = engine.json_has_key("tags", "keep")  # sqltrack's own text
    query = _DOOMED.format(keep=keep)
    doomed = _mine(
        client, "runs", [int(r[0]) for r in client.query(query, {"cutoff": cutoff, "keep": "keep"})]
    )
    if dry_run:
        return doomed
    narrow = points.available(client)
    for run_id in doomed:
        _delete_metrics(client, run_id, batch)
        if narrow:
            _delete_points(client, run_id, batch)
        with client:
            client.query(_DELETE_SYSTEM_METRICS, {"run": run_id})
            client.query(_DELETE_RUN, {"run": run_id})
    with client:
        client.query(_GC_EXPERIMENTS, {"cutoff": cutoff})
    return doomed


def _delete_metrics(client: Client, run_id: int, batch: int) -> None:
    """Delete a run's metric rows, ``batch`` rows per transaction, in key order.

    A batch deletes from ``low`` (where the last one ended) up to the key ``batch`` rows
    further, found by a scan that starts at the last batch's rows, now deleted: on
    PostgreSQL their index entries stay until a vacuum, and a scan that meets them marks
    them dead, so the final ``DELETE FROM runs`` (whose cascade looks for the run's
    metrics) skips them instead of visiting millions of deleted rows while it holds
    ``metrics``. Each scan starts near its rows: one from the start of the run would
    cost n * n / batch for n rows.

    After each batch it rests as long as the batch took: the database is never busy with
    the gc more than half the time, and on SQLite, whose writers poll for the one write
    lock, a writer finds it free (back-to-back batches would starve them).
    """
    low: tuple[Any, Any] | None = None  # where this batch starts
    swept: tuple[Any, Any] | None = None  # where the last batch started
    prefer_index = client.engine.index_order_sql()
    while True:
        args: dict[str, Any] = {"run": run_id, "n": batch}
        scan_from = _from_key("swept", swept, args)
        delete_from = _from_key("low", low, args)
        started = time.monotonic()
        with client:
            if prefer_index is not None:
                client.query(prefer_index)
            bound = client.query(BOUND.format(after=scan_from), args)
            below = ""
            if bound:  # the `batch` rows below the bound (keys are unique)
                below = _BELOW
                args.update(step=bound[0][0], progress=bound[0][1])
            client.query(_DELETE_METRICS.format(after=delete_from, below=below), args)
        if not bound:
            return
        swept, low = low, bound[0]
        time.sleep(time.monotonic() - started)


def _delete_points(client: Client, run_id: int, batch: int) -> None:
    """Delete a run's values of the narrow storage, ``batch`` rows per transaction, each
    followed by a rest as long as it took (as :func:`_delete_metrics`)."""
    args = {"run": run_id, "n": batch}
    while True:
        started = time.monotonic()
        with client:
            client.query(_DELETE_POINTS, args)
            if not client.query(_HAS_POINTS, args):
                return
        time.sleep(time.monotonic() - started)


def _from_key(name: str, key: tuple[Any, Any] | None, args: dict[str, Any]) -> str:
    """The condition "(step, progress) from ``key`` on" (nothing if None), its values
    added to ``args`` as ``<name>_step`` and ``<name>_progress``."""
    if key is None:
        return ""
    args[f"{name}_step"], args[f"{name}_progress"] = key
    return _FROM_KEY.format(name=name)
