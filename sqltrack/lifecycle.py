"""Deleting, restoring and collecting runs: ``sqltrack delete``, ``restore``, ``gc``.

Deleting a run only sets its ``time_deleted`` (schema version 7): the read side leaves
it out, and :func:`restore_runs` brings it back with everything it had. :func:`gc_deleted`
removes runs deleted long enough ago for good, their metrics in bounded batches (each
batch its own short transaction, so writers of other runs never wait long, and the
client's memory stays flat); runs tagged ``keep`` are never collected.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

from ._rows import check_id
from .client import Client, operation
from .errors import InvalidValue, SchemaError
from .runs import db_time
from .search import _APPLIED, DELETED_SCRIPT, _select

__all__ = ["delete_runs", "gc_deleted", "restore_runs"]

_FILTERS = ("experiment", "status", "tags", "args", "where")


def _check_schema(client: Client) -> None:
    if not client.query(_APPLIED, {"name": DELETED_SCRIPT}):
        raise SchemaError(f"deleting runs needs the schema script {DELETED_SCRIPT}: "
                          "run `sqltrack setup`")  # fmt: skip


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
        engine = client.engine
        given["where"] = (engine.in_array("runs.id", "_ids"), {})
        extra = {"_ids": engine.adapt_array(ids)}
    else:
        extra = {}
    rows = _select(client, "runs.id", extra=extra, deleted=deleted, **given)
    return [int(r[0]) for r in rows]


@operation
def delete_runs(
    client: Client, run_ids: Iterable[int] = (), dry_run: bool = False, **filters: Any
) -> list[int]:
    """Delete runs (reversibly): the given ids and/or the runs that match the filters of
    :func:`~sqltrack.search.find_runs`; returns the ids deleted now.

    Example::

        delete_runs(client, experiment="sweep", status=["FAILED", "CANCELLED"])

    :raises InvalidValue: neither ids nor filters (deleting every run takes ``where="TRUE"``)
    """
    ids = _chosen(client, run_ids, False, filters)
    if ids and not dry_run:
        now = db_time(client, "auto", "time_deleted")
        engine = client.engine
        client.query(
            f"UPDATE runs SET time_deleted = :now WHERE {engine.in_array('id', 'ids')} "  # noqa: S608
            "AND time_deleted IS NULL",
            {"now": now, "ids": engine.adapt_array(ids)},
        )
    return ids


@operation
def restore_runs(
    client: Client, run_ids: Iterable[int] = (), dry_run: bool = False, **filters: Any
) -> list[int]:
    """Restore deleted runs (the given ids and/or the deleted runs that match the
    filters); returns their ids. Nothing of theirs was lost."""
    ids = _chosen(client, run_ids, True, filters)
    if ids and not dry_run:
        engine = client.engine
        client.query(
            f"UPDATE runs SET time_deleted = NULL WHERE {engine.in_array('id', 'ids')}",  # noqa: S608
            {"ids": engine.adapt_array(ids)},
        )
    return ids


@operation
def gc_deleted(
    client: Client, deleted_before: float = 30 * 86400, batch: int = 10_000, dry_run: bool = False
) -> list[int]:
    """Remove for good the runs deleted more than ``deleted_before`` seconds ago, except
    those tagged ``keep``: their metrics in batches of about ``batch`` rows, each in its
    own transaction, then the run (its links, summaries, samples and uses with it; its
    artifacts stay, without a run). Returns the ids removed.
    """
    if (
        isinstance(deleted_before, bool)
        or not isinstance(deleted_before, (int, float))
        or (deleted_before < 0)
    ):
        raise InvalidValue(f"deleted_before must be seconds >= 0, got {deleted_before!r}")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise InvalidValue(f"batch must be a positive integer, got {batch!r}")
    _check_schema(client)
    engine = client.engine
    cutoff = db_time(
        client, datetime.now(timezone.utc) - timedelta(seconds=deleted_before), "cutoff"
    )
    keep = engine.json_has_key("tags", "keep")  # sqltrack's own text
    query = "SELECT id FROM runs WHERE time_deleted IS NOT NULL AND time_deleted < :cutoff "
    query += f"AND NOT ({keep}) ORDER BY id"
    doomed = [int(r[0]) for r in client.query(query, {"cutoff": cutoff, "keep": "keep"})]
    if dry_run:
        return doomed
    for run_id in doomed:
        while True:  # metrics in batches: short transactions, flat memory
            with client:
                bound = client.query(
                    "SELECT step, progress FROM metrics WHERE run_id = :run "
                    "ORDER BY step, progress LIMIT 1 OFFSET :n",
                    {"run": run_id, "n": batch},
                )
                if not bound:
                    client.query("DELETE FROM metrics WHERE run_id = :run", {"run": run_id})
                    break
                client.query(  # the `batch` rows below the bound (keys are unique)
                    "DELETE FROM metrics WHERE run_id = :run AND "
                    "(step < :step OR (step = :step AND progress < :progress))",
                    {"run": run_id, "step": bound[0][0], "progress": bound[0][1]},
                )
        with client:
            client.query("DELETE FROM system_metrics WHERE run_id = :run", {"run": run_id})
            client.query("DELETE FROM runs WHERE id = :run", {"run": run_id})
    return doomed
