"""Writing a source's runs: each in one transaction, keyed by its uid, so that importing
twice adds nothing and an interrupted import resumes.

For each :class:`~sqltrack._import.model.SourceRun`, in order:

1. a run of the same uid is there already (imported before, by anyone): it is left as
   it is and counted as found;
2. else its experiment is found by name (created if missing), and the run is inserted
   with its fields, its metric values written where :mod:`sqltrack._write.store` puts
   any value, its artifacts recorded (their URIs and sizes: nothing is copied or read)
   and its summary built from the values as they are written. Runs are written in
   transactions of about :data:`_BATCH_ROWS` rows: a failure rolls back the runs of its
   transaction whole, and the next import writes them again.

Metric values are keyed as sqltrack keys them, ``(step, progress)``: a name's first value
at a step has progress 0, a second value at the same step (MLflow's ``log_metric``
without a step logs every value at step 0) progress 1, and so on. Where the source has
wall times, each row also gets a ``wall_time`` metric (seconds since the epoch, the
earliest of its values': when the step was logged), unless the run logged a
``wall_time`` of its own. A name that is
no valid metric name, or a value of a type sqltrack does not store, is left out and
counted with why. Links to parent runs are added last, when every run has its id.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from .._base.calls import Row, validate
from .._base.names import check_metric_name
from .._base.values import check_text, json_dumps
from .._db.client import Client, operation
from .._write.artifacts import record_artifact
from .._write.batch_summary import BatchSummary
from .._write.blocks import update_blocks
from .._write.experiments import check_name, get_or_create_experiment
from .._write.rows import check_tags
from .._write.runs import check_status, run_add_link
from .._write.store import write_rows
from .._write.summaries import available as summaries_available
from ..errors import InvalidMetricName, InvalidValue
from .model import (
    ImportResult,
    Point,
    ProgressHook,
    SourceArtifact,
    SourceRun,
    json_safe,
    run_uid,
)

#: the metric that holds each row's wall time, where the source has one
WALL_TIME = "wall_time"
#: the link from a nested run to the run it is nested in (MLflow's parent runs)
PARENT_LINK = "parent"

#: about how many rows (metric rows and runs) one transaction writes: few commits, and
#: an interrupted import loses little
_BATCH_ROWS = 20_000

_FIND = "SELECT id FROM runs WHERE uid = :uid"
_LINKED = "SELECT 1 FROM run_links WHERE from_id = :child AND kind = :kind AND to_id = :parent"

#: a run ready to write: the run, its row's parameters, its metric rows, its artifacts
Prepared = tuple[SourceRun, dict[str, Any], list[Row], list[SourceArtifact]]
_EXPERIMENT = "SELECT id FROM experiments WHERE name = :name"
_INSERT = (
    "INSERT INTO runs (experiment_id, uid, status, time_created, time_started, time_updated, "
    "comment, tags, args, extras) VALUES (:experiment, :uid, :status, :created, :started, "
    ":updated, :comment, :tags, :args, :extras) RETURNING id"
)


def import_runs(
    client: Client,
    runs: Iterable[SourceRun],
    result: ImportResult,
    progress: ProgressHook | None = None,
) -> ImportResult:
    """Write ``runs`` (see the module's text) and return ``result`` with what was done;
    with ``result.dry_run`` nothing is written and ``result`` says what would be."""
    todo = list(runs)
    experiments: dict[str, int | None] = {}
    parents: list[tuple[str, str]] = []  # (run, parent) keys: links there should be
    batch: list[Prepared] = []
    size = 0
    seen: set[str] = set()  # (a source that lists a run twice: the first is the one)
    new: set[str] = set()  # the keys of the runs this import writes (or would)
    with client.hold():  # one connection for the whole import
        for done, run in enumerate(todo):
            entry = _new_run(client, run, seen, experiments, result)
            result.skipped.update(run.skipped)  # (what reading it left out, too)
            if entry is not None:
                new.add(run.key)
                if not result.dry_run:
                    batch.append(entry)
                    size += len(entry[2]) + 1
                if size >= _BATCH_ROWS:
                    _write(client, batch, result)
                    batch, size = [], 0
            if run.parent is not None and (entry is not None or run.key in result.run_ids):
                parents.append((run.key, run.parent))
            if progress is not None and (not batch or done + 1 == len(todo)):
                progress(done + 1, len(todo))
        if batch:
            _write(client, batch, result)
        _link_parents(client, parents, new, result)
    return result


def _new_run(
    client: Client,
    run: SourceRun,
    seen: set[str],
    experiments: dict[str, int | None],
    result: ImportResult,
) -> Prepared | None:
    """The run to write, prepared; None for a run imported before, one its source lists
    twice, or one that sqltrack cannot take (counted as skipped, with why: it never
    blocks the runs after it)."""
    if run.uid in seen:
        result.skipped[f"{run.source} run {run.key[:80]}: listed twice, the first kept"] += 1
        return None
    seen.add(run.uid)
    with client:
        found = client.query(_FIND, {"uid": run.uid})
    if found:
        result.runs_found += 1
        result.run_ids[run.key] = int(found[0][0])
        return None
    try:
        return _prepare(client, run, experiments, result)
    except InvalidValue as e:
        result.skipped[f"{run.source} run {run.key[:80]}: {e}"] += 1
        return None


def _experiment(client: Client, name: str, result: ImportResult) -> int | None:
    check_name(name)
    with client:
        found = client.query(_EXPERIMENT, {"name": name})
    if found:
        return int(found[0][0])
    result.experiments_created += 1
    return None if result.dry_run else get_or_create_experiment(client, name=name)


def _prepare(
    client: Client, run: SourceRun, experiments: dict[str, int | None], result: ImportResult
) -> Prepared:
    """The run with its row, metric rows and artifacts, checked (and counted in
    ``result``).

    :raises InvalidValue: a field of the run that sqltrack cannot store (nothing is
        counted then)
    """
    where = f"{run.source} run {run.key[:80]}"
    tags = json_dumps(dict.fromkeys(check_tags(run.tags, f"{where} tags"), True), "tags")
    if run.comment is not None:
        check_text(run.comment, f"{where} comment")
    args = json_dumps(json_safe(run.args), f"{where} args")
    extras = json_dumps(json_safe({"imported": _origin(run)}), f"{where} extras")
    if run.experiment not in experiments:
        experiments[run.experiment] = _experiment(client, run.experiment, result)
    rows, values = metric_rows(run.points(), result)
    artifacts = run.artifacts()
    result.values += values
    result.artifacts += len(artifacts)
    result.runs_new += 1
    created = run.created or run.started or datetime.now(timezone.utc)
    params = {
        "experiment": experiments[run.experiment],
        "uid": run.uid,
        "status": check_status(run.status),
        "created": client.engine.adapt_datetime(created),
        "started": None if run.started is None else client.engine.adapt_datetime(run.started),
        "updated": client.engine.adapt_datetime(run.ended or run.started or created),
        "comment": run.comment,
        "tags": tags,
        "args": args,
        "extras": extras,
    }
    return run, params, rows, artifacts


def _write(client: Client, batch: list[Prepared], result: ImportResult) -> None:
    """Write runs in one transaction, new metric columns included: each run is there
    whole, or (the transaction failed) not at all, and the next import writes it."""
    with client:
        ids = _insert(client, batch, result)
    for (run, *_), run_id in zip(batch, ids, strict=True):
        result.run_ids[run.key] = run_id


@operation
def _insert(client: Client, batch: list[Prepared], result: ImportResult) -> list[int]:
    ids = []
    with client as conn:
        summarize = summaries_available(client)
        for run, params, rows, artifacts in batch:
            run_id = int(client.query(_INSERT, params)[0][0])
            summary = BatchSummary()
            refused = write_rows(client, conn, run_id, rows, summary.add if summarize else None)
            for row, error in refused:
                result.skipped[f"a value the database refused: {error}"] += len(row[0])
            for artifact in artifacts:
                record_artifact(
                    client, run_id, artifact.uri, artifact.name, artifact.size,
                    artifact.metadata, f"{run.uid}:{artifact.uri}",
                )  # fmt: skip
            summary.write(client, run_id)
            update_blocks(client, conn, run_id, None)  # (what a chart of it reads)
            ids.append(run_id)
    return ids


def _origin(run: SourceRun) -> dict[str, Any]:
    """Where the run came from, for ``extras["imported"]``: the source, its id there and
    what the source knows of it that has no column."""
    return {"source": run.source, "id": run.key, **run.extras}


def metric_rows(points: Iterable[Point], result: ImportResult) -> tuple[list[Row], int]:
    """The validated rows of a run's points, ordered by (step, progress), and how many
    of the points they hold (see the module's text for the keys and ``wall_time``)."""
    names: dict[str, bool] = {}  # name -> whether it is valid
    counts: dict[tuple[str, int], int] = {}  # (name, step) -> values seen
    keyed: dict[tuple[int, int], dict[str, Any]] = {}
    times: dict[tuple[int, int], float] = {}
    for name, step, value, wall in points:
        valid = names.get(name)
        if valid is None:
            valid = names[name] = _valid_name(name, result)
        if not valid:
            continue
        nth = counts.get((name, step), 0)
        counts[name, step] = nth + 1
        key = (step, nth)
        keyed.setdefault(key, {})[name] = value
        if wall is not None and wall < times.get(key, float("inf")):
            times[key] = wall
    rows, values = [], 0
    own_time = names.get(WALL_TIME, False)
    for (step, nth), metrics in sorted(keyed.items()):
        given = len(metrics)
        if not own_time and (step, nth) in times:
            metrics[WALL_TIME] = times[step, nth]
        try:
            row = validate(metrics, step, float(nth))
        except InvalidValue:
            row, given = _valid_values(metrics, step, nth, result)
            given -= row is not None and not own_time and (step, nth) in times
        if row is not None:
            rows.append(row)
            values += given
    return rows, values


def _valid_name(name: str, result: ImportResult) -> bool:
    try:
        check_metric_name(name)
    except InvalidMetricName as e:
        result.skipped[f"metric {name[:60]!r}: {str(e).partition(': ')[2] or e}"] += 1
        return False
    return True


def _valid_values(
    metrics: dict[str, Any], step: int, nth: int, result: ImportResult
) -> tuple[Row | None, int]:
    """The row of the values that sqltrack stores; the others counted as skipped."""
    kept = {}
    for name, value in metrics.items():
        try:
            validate({name: value}, step, float(nth))
        except InvalidValue as e:
            why = str(e) if isinstance(value, (bool, int, float, str)) else (
                f"values of type {type(value).__name__}"
            )  # fmt: skip
            result.skipped[f"metric {name[:60]!r}: {why[:200]}"] += 1
        else:
            kept[name] = value
    return (validate(kept, step, float(nth)) if kept else None), len(kept)


def _link_parents(
    client: Client, parents: list[tuple[str, str]], new: set[str], result: ImportResult
) -> None:
    """Link each nested run to its parent, imported now or before, where the link is not
    there yet: the links an interrupted import did not make are made by the next one. A
    dry run counts the links it would make."""
    for key, parent in parents:
        parent_id = result.run_ids.get(parent)
        if parent_id is None:  # imported before, by another import
            with client:
                found = client.query(_FIND, {"uid": run_uid(result.source, parent)})
            parent_id = int(found[0][0]) if found else None
        child_id = result.run_ids.get(key)
        if parent_id is None and not (result.dry_run and parent in new):
            result.skipped[f"a link to parent run {parent[:80]}: it was not imported"] += 1
            continue
        if parent_id is not None and child_id is not None:
            link = {"child": child_id, "kind": PARENT_LINK, "parent": parent_id}
            with client:
                if client.query(_LINKED, link):
                    continue
        if not result.dry_run and child_id is not None and parent_id is not None:
            run_add_link(client, child_id, PARENT_LINK, parent_id)
        result.links += 1
