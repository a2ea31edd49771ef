"""Merging a whole sqltrack SQLite database into another database: ``sqltrack sync FILE.db``.

For a job that ran with ``engine=sqlite`` on a node without network (or a laptop): its
database file is merged into the lab's database (PostgreSQL, or another SQLite file).

- **Experiments** are matched by name; missing ones are created with their comment and
  tags.
- **Runs** are matched by ``uid`` (a random id every run gets, schema version 2), else,
  for an explicit run id (1 … 9,999,999,999, e.g. a Slurm job id), by that id if the
  run there is of an experiment of the same name and, where both runs recorded
  ``SLURM_CLUSTER_NAME`` in their env, of the same cluster: the same job. An explicit id
  taken by another experiment's (or cluster's) run is a **conflict**: nothing is
  overwritten, the file's run is created with a new generated id, and the result says
  so. A run that is not there yet is created, keeping an explicit id and getting a new
  generated id otherwise (generated ids of two databases collide). A run that is there
  takes the file's status, times, comment, tags, args, env and extras unless its own
  ``time_updated`` is newer.
- **Metrics**: the file is input like any other: a column whose name is not a valid
  metric name (:mod:`sqltrack._base.names`: uppercase, too long, not an identifier) is left
  out, and the result names it; the others are checked as ``add_metrics`` checks its
  arguments. Missing columns are created with the file's types; rows are upserted
  (only the values a row holds: NULLs never overwrite values the target has). A value
  that does not fit the target's column is left out and counted.
- **Links** between runs and between experiments are kept, with the new ids.

Merging is idempotent: running it again finds every run by its uid and adds nothing.
The file is upgraded to the current schema first (that gives its runs their uids).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any

from .._base.calls import Row, validate
from .._base.names import KEY_COLUMNS, check_metric_name
from .._base.values import json_dumps
from .._db.client import Client
from .._db.engines import LOCAL_ENGINE
from .._db.engines.base import quote_identifier
from .._db.schema import setup
from .._write import points
from .._write.metrics import known_columns
from .._write.runs import MAX_EXPLICIT_RUN_ID
from .._write.store import write_rows
from .._write.summaries import available, refresh_summaries
from ..errors import InvalidMetricName, InvalidValue, SchemaError, SQLTrackError

_ROWS_PER_TRANSACTION = 5000
_RUN_FIELDS = ("status", "time_created", "time_started", "time_updated", "comment")
_RUN_JSON = ("tags", "args", "env", "extras")
# a file without this table is not a sqltrack database
_IS_SQLTRACK = "SELECT count(*) FROM sqltrack_scripts"
_SELECT_EXPERIMENTS = "SELECT id, name, comment, tags, time_created FROM experiments ORDER BY id"
_EXPERIMENT_ID = "SELECT id FROM experiments WHERE name = :name"
_INSERT_EXPERIMENT = (  # no row: created by someone else meanwhile
    "INSERT INTO experiments (name, comment, tags, time_created) "
    "VALUES (:name, :comment, :tags, :created) ON CONFLICT (name) DO NOTHING "
    "RETURNING id"
)
_EXPERIMENT_NAMES = "SELECT id, name FROM experiments"
_SELECT_RUNS = (
    "SELECT id, experiment_id, uid, status, time_created, time_started, time_updated, "
    "comment, tags, args, env, extras FROM runs ORDER BY id"
)
_FIND_BY_UID = "SELECT id, time_updated FROM runs WHERE uid = :uid"
_FIND_BY_ID = (
    "SELECT r.id, r.time_updated, e.name, r.env FROM runs r "
    "JOIN experiments e ON e.id = r.experiment_id WHERE r.id = :id"
)
_CLUSTER = "SLURM_CLUSTER_NAME"
# the target's run as _same_run compares it: the fields of _SELECT_RUNS from status on
_RUN_NOW = (
    "SELECT status, time_created, time_started, time_updated, comment, tags, args, env, extras "
    "FROM runs WHERE id = :id"
)
_RUN_KINDS = (None, "datetime", "datetime", "datetime", None, "json", "json", "json", "json")
_SETS = ", ".join(f"{c} = :{c}" for c in (*_RUN_FIELDS, *_RUN_JSON))
_UPDATE_RUN = f"UPDATE runs SET {_SETS} WHERE id = :target"  # noqa: S608 (fixed names)
_INSERT_COLUMNS = ("experiment_id", "uid", *_RUN_FIELDS, *_RUN_JSON)
# {columns}: _INSERT_COLUMNS (with id first for an explicit id), {marks}: their :name
# placeholders (sqltrack's own text)
_INSERT_RUN = "INSERT INTO runs ({columns}) VALUES ({marks}) RETURNING id"
# {table}: experiment_links or run_links (fixed names)
_SELECT_LINKS = "SELECT from_id, kind, to_id FROM {table}"
_INSERT_LINK = (
    "INSERT INTO {table} (from_id, kind, to_id) "
    "VALUES (:from_id, :kind, :to_id) ON CONFLICT DO NOTHING"
)
# {columns}: step, progress and the checked metric columns, quoted (sqltrack's own text)
_SOURCE_ROWS = "SELECT {columns} FROM metrics WHERE run_id = :id ORDER BY step, progress"
# the target's rows in a batch's range of steps; {columns} as in _SOURCE_ROWS
_TARGET_ROWS = (
    "SELECT {columns} FROM metrics WHERE run_id = :run AND step >= :low AND step <= :high"
)


def _insert_run(explicit_id: bool) -> str:
    columns = ("id", *_INSERT_COLUMNS) if explicit_id else _INSERT_COLUMNS
    marks = ", ".join(f":{c}" for c in columns)
    return _INSERT_RUN.format(columns=", ".join(columns), marks=marks)


@dataclass
class MergeResult:
    """What merging one database file did."""

    path: Path
    experiments_created: int = 0
    runs_created: int = 0
    runs_updated: int = 0
    #: runs the target had with exactly the file's fields already
    runs_unchanged: int = 0
    #: runs the target had with a newer time_updated: their fields were left alone
    runs_kept: int = 0
    #: metric rows written: new, or with a value the target did not have
    rows: int = 0
    #: metric rows the target had already, every value the same
    rows_unchanged: int = 0
    rows_left_out: int = 0
    #: source run id -> target run id
    run_ids: dict[int, int] = field(default_factory=dict)
    #: metric columns of the file that were left out, with why
    columns_left_out: dict[str, str] = field(default_factory=dict)
    #: runs whose explicit id was another run's in the target: each merged with a new id
    conflicts: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        moved = {s: t for s, t in self.run_ids.items() if s != t}
        renumbered = f"; {len(moved)} run ids renumbered" if moved else ""
        left_out = f", {self.rows_left_out} left out" if self.rows_left_out else ""
        lines = [
            f"merged: {self.path} ({self.experiments_created} experiments and "
            f"{self.runs_created} runs new, {self.runs_updated} runs updated, "
            f"{self.runs_unchanged} unchanged, {self.runs_kept} kept; {self.rows} metric rows "
            f"new or changed, {self.rows_unchanged} unchanged{left_out}{renumbered})"
        ]
        lines += [f"  conflict: {c}" for c in self.conflicts]
        lines += [f"  left out: column {n!r}: {why}" for n, why in self.columns_left_out.items()]
        return "\n".join(lines)


def merge_database(target: Client, path: str | os.PathLike[str]) -> MergeResult:
    """Merge the sqltrack SQLite database at ``path`` into ``target``'s database.

    :raises SchemaError: ``path`` is not a sqltrack database, or the target has no schema
    """
    path = Path(path)
    if not path.is_file():
        raise SQLTrackError(f"no such file: {path}")
    mine = target.engine.params.get("dbpath") if target.engine.name == LOCAL_ENGINE else None
    if mine is not None and os.path.exists(mine) and os.path.samefile(mine, path):
        raise SQLTrackError(f"{path} is the database sync writes to: there is nothing to merge")
    source = Client.of(engine=LOCAL_ENGINE, dbpath=str(path))
    try:
        source.query(_IS_SQLTRACK)
    except SchemaError:
        raise SchemaError(f"{path} is not a sqltrack database (no sqltrack_scripts)") from None
    setup(source)  # the uids of schema version 2
    result = MergeResult(path)
    experiments = _merge_experiments(source, target, result)
    names = dict(source.query(_EXPERIMENT_NAMES))
    _merge_runs(source, target, experiments, names, result)
    _merge_links(source, target, "experiment_links", experiments)
    _merge_links(source, target, "run_links", result.run_ids)
    _merge_metrics(source, target, result)
    if result.run_ids and available(target):
        refresh_summaries(target, *sorted(set(result.run_ids.values())))
    return result


def _merge_experiments(source: Client, target: Client, result: MergeResult) -> dict[int, int]:
    ids = {}
    for source_id, name, comment, tags, created in source.query(_SELECT_EXPERIMENTS):
        with target:
            rows = target.query(_EXPERIMENT_ID, {"name": name})
            if rows:
                ids[source_id] = int(rows[0][0])
                continue
            params = {
                "name": name,
                "comment": comment,
                "tags": json_dumps(source.engine.python_value(tags, "json"), "tags"),
                "created": _time(source, target, created),
            }
            rows = target.query(_INSERT_EXPERIMENT, params)
            if rows:
                result.experiments_created += 1
            else:  # created by someone else meanwhile
                rows = target.query(_EXPERIMENT_ID, params)
            ids[source_id] = int(rows[0][0])
    return ids


def _time(source: Client, target: Client, value: Any) -> Any:
    dt = source.engine.python_value(value, "datetime")
    return None if dt is None else target.engine.adapt_datetime(dt)


def _merge_runs(
    source: Client,
    target: Client,
    experiments: dict[int, int],
    names: dict[int, str],
    result: MergeResult,
) -> None:
    for row in source.query(_SELECT_RUNS):
        source_id, experiment_id, uid = row[0], row[1], row[2]
        values = dict(zip(("status", *_RUN_FIELDS[1:]), row[3:8], strict=True))
        for column in _RUN_FIELDS[1:4]:
            values[column] = _time(source, target, values[column])
        json_values = zip(_RUN_JSON, row[8:], strict=True)
        decoded = {c: source.engine.python_value(v, "json") for c, v in json_values}
        for column, value in decoded.items():
            values[column] = None if value is None else json_dumps(value, column)
        updated = source.engine.python_value(row[6], "datetime")
        explicit = source_id <= MAX_EXPLICIT_RUN_ID
        conflict = ""
        with target:
            found = target.query(_FIND_BY_UID, {"uid": uid})
            if not found and explicit:
                found = target.query(_FIND_BY_ID, {"id": source_id})
                if found:
                    conflict = _other_job(target, found[0], names[experiment_id], decoded)
                if conflict:  # a new generated id: nothing of the other run changes
                    found, explicit = [], False
            if found:
                target_id = int(found[0][0])
                theirs = target.engine.python_value(found[0][1], "datetime")
                if theirs is None or (updated is not None and updated >= theirs):
                    if _same_run(source, target, row, target_id):
                        result.runs_unchanged += 1
                    else:
                        target.query(_UPDATE_RUN, {**values, "target": target_id})
                        result.runs_updated += 1
                else:
                    result.runs_kept += 1
            else:
                sql = _insert_run(explicit_id=explicit)
                params = {**values, "id": source_id, "uid": uid}
                params["experiment_id"] = experiments[experiment_id]
                target_id = int(target.query(sql, params)[0][0])
                result.runs_created += 1
                if conflict:
                    note = f"run {source_id}: {conflict}; merged as run {target_id}"
                    result.conflicts.append(note)
        result.run_ids[source_id] = target_id


def _same_run(source: Client, target: Client, row: Any, target_id: int) -> bool:
    """Whether the target's run has the file's fields already (as values, not as text)."""
    current = target.query(_RUN_NOW, {"id": target_id})[0]
    mine = [source.engine.python_value(v, k) for v, k in zip(row[3:], _RUN_KINDS, strict=True)]
    theirs = [target.engine.python_value(v, k) for v, k in zip(current, _RUN_KINDS, strict=True)]
    return mine == theirs


def _other_job(target: Client, theirs: Any, experiment: str, decoded: dict[str, Any]) -> str:
    """Why the target's run of the same explicit id is another job ("": the same one)."""
    if theirs[2] != experiment:
        return f"the id is taken by a run of experiment {theirs[2]!r}, not {experiment!r}"
    their_env = target.engine.python_value(theirs[3], "json") or {}
    our_env = decoded.get("env") or {}
    mine, other = our_env.get(_CLUSTER), their_env.get(_CLUSTER)
    if mine is not None and other is not None and mine != other:
        return f"the id is taken by a run of cluster {other!r}, not {mine!r}"
    return ""


def _merge_links(source: Client, target: Client, table: str, ids: dict[int, int]) -> None:
    links = source.query(_SELECT_LINKS.format(table=table))
    insert = _INSERT_LINK.format(table=table)
    with target:
        for from_id, kind, to_id in links:
            target.query(insert, {"from_id": ids[from_id], "kind": kind, "to_id": ids[to_id]})


def _merge_metrics(source: Client, target: Client, result: MergeResult) -> None:
    with source as conn:
        cur = conn.cursor()
        try:
            found = source.engine.metric_columns(cur)
        finally:
            cur.close()
    columns = {}
    for name, kind in found.items():
        if name in KEY_COLUMNS:
            continue
        try:
            check_metric_name(name)  # a name from a file is input like any other
        except InvalidMetricName as e:
            result.columns_left_out[name] = str(e).partition(": ")[2] or str(e)
            continue
        if kind is None:
            result.columns_left_out[name] = "its type is none that sqltrack writes"
            continue
        columns[name] = kind
    names = tuple(columns)
    kinds = tuple(columns.values())
    selected = ", ".join(map(quote_identifier, ("step", "progress", *names)))
    query = _SOURCE_ROWS.format(columns=selected)
    convert = source.engine.python_value
    for source_id, target_id in result.run_ids.items():
        with source.cursor() as cur:  # streamed: memory stays flat for long runs
            cur.execute(source.engine.sql(query), {"id": source_id})
            while chunk := cur.fetchmany(_ROWS_PER_TRANSACTION):
                batch: list[Row] = []
                for row in chunk:
                    metrics = {
                        names[i]: convert(row[2 + i], kinds[i])
                        for i in range(len(names))
                        if row[2 + i] is not None
                    }
                    try:  # checked as add_metrics checks its arguments
                        checked = validate(metrics, row[0], row[1]) if metrics else None
                    except InvalidValue:
                        result.rows_left_out += 1
                        continue
                    if checked is not None:
                        batch.append(checked)
                batch = _changed(target, target_id, batch, result)
                if batch:
                    _write(target, target_id, batch, result)
    if points.available(source):
        for source_id, target_id in result.run_ids.items():
            _merge_points(source, target, source_id, target_id, result)


def _merge_points(
    source: Client, target: Client, source_id: int, target_id: int, result: MergeResult
) -> None:
    """Merge a run's values of the file's narrow storage: per (step, progress) a call
    of the names there, checked as add_metrics checks its arguments (the target stores
    each value where it would store a call's)."""
    batch: list[Row] = []
    rows = points.read_points(source, [source_id])
    for (step, progress), group in groupby(rows, key=itemgetter(1, 2)):
        metrics = {}
        for *_, name, value in group:
            try:
                check_metric_name(name)  # a name from a file is input like any other
            except InvalidMetricName as e:
                result.columns_left_out[name] = str(e).partition(": ")[2] or str(e)
                continue
            metrics[name] = value
        try:
            checked = validate(metrics, step, progress) if metrics else None
        except InvalidValue:
            result.rows_left_out += 1
            continue
        if checked is not None:
            batch.append(checked)
        if len(batch) >= _ROWS_PER_TRANSACTION:
            _flush_points(target, target_id, batch, result)
            batch = []
    if batch:
        _flush_points(target, target_id, batch, result)


def _flush_points(target: Client, run_id: int, batch: list[Row], result: MergeResult) -> None:
    """Write the calls of ``batch`` the target lacks (:func:`_changed`)."""
    batch = _changed(target, run_id, batch, result)
    if batch:
        _write(target, run_id, batch, result)


def _changed(target: Client, run_id: int, batch: list[Row], result: MergeResult) -> list[Row]:
    """The rows of ``batch`` that the target lacks, or holds with another value (one read
    of the target's rows at those steps): what a second merge would write is nothing."""
    if not batch:
        return batch
    with target as conn:
        columns = known_columns(target, conn, ())
    names = {n for row in batch for n in row[0]}
    present = sorted(n for n in names if n in columns)
    steps = [row[3] for row in batch]
    had: dict[tuple[Any, Any], dict[str, Any]] = {}
    if present:
        selected = ", ".join(map(quote_identifier, ("step", "progress", *present)))
        query = _TARGET_ROWS.format(columns=selected)
        convert = target.engine.python_value
        params = {"run": run_id, "low": min(steps), "high": max(steps)}
        had = {
            (r[0], r[1]): {n: convert(v, columns[n]) for n, v in zip(present, r[2:], strict=True)}
            for r in target.query(query, params)
        }
    if points.available(target):  # the target's narrow values of these names (they win)
        low, high = min(steps), max(steps)
        for _, step, progress, name, value in points.read_points(
            target, [run_id], sorted(names), ordered=False
        ):
            if low <= step <= high:
                had.setdefault((step, progress), {})[name] = value
    changed = []
    for row in batch:
        there = had.get((row[3], row[4]))
        if there is None or any(there.get(n) != v for n, v in zip(row[0], row[1], strict=True)):
            changed.append(row)
    result.rows_unchanged += len(batch) - len(changed)
    return changed


def _write(target: Client, run_id: int, batch: list[Row], result: MergeResult) -> None:
    def write() -> list[Any]:
        with target as conn:
            return write_rows(target, conn, run_id, batch)

    errors = target.run_operation(write)
    result.rows += len(batch) - len(errors)
    result.rows_left_out += len(errors)
