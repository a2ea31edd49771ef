"""Comparing runs: what differs between them, field by field, and their summaries side
by side (``sqltrack compare``; ``sqltrack show`` with :func:`metric_summary`; the args
and summaries of ``sqltrack runs``)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from .._base.names import KEY_COLUMNS
from .._db.client import Client, operation
from .._db.engines.base import quote_identifier
from .._db.schema import DELETION, applied
from .._write import points
from .._write.metrics import known_columns
from .._write.rows import check_id, check_runs
from .._write.summaries import available, check_available
from ..errors import InvalidValue, NotFound

#: environment variables that describe the shell or terminal session a run was started
#: from, not the run: left out of :func:`compare_runs`'s differences (unless
#: ``everything``). ``PWD`` is not one of them: the working directory can pick the code
#: and data a run uses.
SHELL_NOISE = frozenset(
    {
        *("_", "OLDPWD", "SHLVL", "COLUMNS", "LINES"),  # the shell: last command, depth, size
        *("TERM_SESSION_ID", "ITERM_SESSION_ID", "SECURITYSESSIONID", "WINDOWID", "WINDOW"),
        *("STY", "TMUX", "TMUX_PANE", "KITTY_WINDOW_ID", "KITTY_PID", "WT_SESSION"),
        *("KONSOLE_DBUS_SESSION", "KONSOLE_DBUS_WINDOW", "VSCODE_GIT_IPC_HANDLE"),
        *("VSCODE_IPC_HOOK_CLI", "GPG_TTY", "XDG_SESSION_ID", "DBUS_SESSION_BUS_ADDRESS"),
        *("SSH_CLIENT", "SSH_CONNECTION", "SSH_TTY", "SSH_AUTH_SOCK"),  # the login
        *("INVOCATION_ID", "JOURNAL_STREAM"),  # systemd's, per service start
        *("SLURM_JOB_ID", "SLURM_JOBID", "SLURM_TASK_PID"),  # a new job's own id, always
    }
)

_DETAILS = (
    "SELECT runs.id, experiments.name, runs.status, runs.time_created, runs.time_started, "
    "runs.time_updated, {deleted}, runs.comment, runs.tags, runs.args, runs.env, runs.extras "
    "FROM runs JOIN experiments ON experiments.id = runs.experiment_id WHERE {condition}"
)
_DELETED = "COALESCE(runs.time_deleted, experiments.time_deleted)"
_FIELDS = ("experiment", "status", "created", "started", "updated", "deleted", "comment", "tags")
_TIMES = ("created", "started", "updated", "deleted")
_SUMMARIES = (  # {ids}: the engine's "run_id is one of :ids"
    "SELECT run_id, metric, count, last, min, max FROM run_summaries WHERE {ids} ORDER BY metric"
)


def differing(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """The keys, sorted, whose values are not all equal across ``records`` (a missing key
    is None): the args that tell runs apart."""
    keys = sorted({k for r in records for k in r})
    return [k for k in keys if any(r.get(k) != records[0].get(k) for r in records[1:])]


def sort_key(value: Any) -> tuple[int, Any]:
    """A sort key for values of any kind: numbers and times by value, the rest as text."""
    if isinstance(value, datetime):
        return (0, value.timestamp())
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, value)
    return (1, value if isinstance(value, str) else json.dumps(value, sort_keys=True))


def summaries_of(client: Client, run_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """``{run: {"<metric>:<count|last|min|max>": value}}``: the stored summaries of the
    runs, by metric name ({} for a run without any, or a schema without summaries)."""
    found: dict[int, dict[str, Any]] = {int(i): {} for i in run_ids}
    if not found or not available(client):
        return found
    engine = client.engine
    query = _SUMMARIES.format(ids=engine.in_array("run_id", "ids"))
    for run, metric, *values in client.query(query, {"ids": engine.adapt_array(list(found))}):
        for aggregate, value in zip(("count", "last", "min", "max"), values, strict=True):
            found[int(run)][f"{metric}:{aggregate}"] = value
    return found


@operation
def compare_runs(
    client: Client, *run_ids: int, everything: bool = False, summaries: bool = True
) -> list[tuple[Any, ...]]:
    """What differs between runs: one row ``(field, value of each run…)`` per field whose
    values are not all equal (every field with ``everything=True``), in this order: the
    run's own fields (``deleted``: when it, or its experiment, was deleted; None), then
    ``args.<name>``, ``env.<name>``, ``extras.<name>`` (a missing key is None), then
    (unless ``summaries=False``) the summaries side by side: ``<metric>:min``,
    ``<metric>:max``, ``<metric>:last``. The variables of :data:`SHELL_NOISE` (``env._``,
    ``env.OLDPWD``, ``env.SSH_TTY`` …) are no difference unless ``everything``.

    Example::

        for field, *values in compare_runs(client, a.id, b.id):
            print(field, *values)

    :raises InvalidValue: fewer than two runs
    :raises NotFound: a run that does not exist
    """
    if len(run_ids) < 2:
        raise InvalidValue("compare at least two runs")
    ids = [check_id(i, "run") for i in run_ids]
    engine = client.engine
    convert = engine.python_value
    query = _DETAILS.format(
        deleted=_DELETED if applied(client, DELETION) else "NULL",
        condition=engine.in_array("runs.id", "ids"),
    )
    found = {row[0]: row for row in client.query(query, {"ids": engine.adapt_array(ids)})}
    if any(i not in found for i in ids):
        check_runs(client, ids)  # names them
    columns: list[dict[str, Any]] = []
    for i in ids:
        row = found[i]
        fields = dict(zip(_FIELDS, row[1:9], strict=True))
        for name in _TIMES:
            fields[name] = convert(fields[name], "datetime")
        fields["tags"] = sorted(convert(fields["tags"], "json") or {})
        for prefix, value in zip(("args", "env", "extras"), row[9:], strict=True):
            for key, item in (convert(value, "json") or {}).items():
                fields[f"{prefix}.{key}"] = item
        columns.append(fields)
    names = list(_FIELDS) + sorted({k for c in columns for k in c} - set(_FIELDS))
    if not everything:
        names = [n for n in names if not (n.startswith("env.") and n[4:] in SHELL_NOISE)]
    if summaries:  # side by side, after the fields
        stored = summaries_of(client, ids)
        for column, i in zip(columns, ids, strict=True):
            column.update(stored[i])
        metrics = sorted({k.rpartition(":")[0] for s in stored.values() for k in s})
        names += [f"{m}:{a}" for m in metrics for a in ("min", "max", "last")]
    rows = []
    for name in names:
        values = [c.get(name) for c in columns]
        if everything or any(v != values[0] for v in values[1:]):
            rows.append((name, *values))
    return rows


#: the columns of :func:`metric_summary`
SUMMARY_COLUMNS = ("metric", "count", "last", "last_step", "min", "min_step", "max", "max_step")
_SUMMARY = (
    "SELECT metric, count, last, last_step, last_progress, min, min_step, max, max_step "
    "FROM run_summaries WHERE run_id = :run"
)


@operation
def metric_summary(client: Client, run_id: int) -> list[tuple[Any, ...]]:
    """Per numeric metric of a run (:data:`SUMMARY_COLUMNS`): how many values, the last
    one (at the highest step and progress), the smallest and largest and their steps;
    what ``sqltrack show`` prints. Exact even while the run is being written: its stored
    summary (:mod:`sqltrack._write.summaries`) plus the values logged since.

    :raises NotFound: the run does not exist
    :raises SchemaError: the database has no summaries yet (run ``sqltrack setup``)
    """
    check_available(client)
    if not client.query("SELECT 1 FROM runs WHERE id = :run", {"run": check_id(run_id, "run")}):
        raise NotFound(f"run {run_id} does not exist")
    stored = {r[0]: list(r[1:]) for r in client.query(_SUMMARY, {"run": run_id})}
    with client as conn:
        kinds = known_columns(client, conn, ())
    names = [n for n, k in kinds.items() if k in ("int", "float") and n not in KEY_COLUMNS]
    # the values above the lowest summarized step (the whole run if none is)
    low = min((s[2] for s in stored.values()), default=-(2**63))
    tail: dict[str, list[tuple[int, float, Any]]] = {}
    if names:
        columns = ", ".join(quote_identifier(n) for n in names)
        rows = client.query(
            f"SELECT step, progress, {columns} FROM metrics WHERE run_id = :run "  # noqa: S608
            "AND step >= :low ORDER BY step, progress",
            {"run": run_id, "low": low},
        )
        for i, name in enumerate(names, start=2):
            tail[name] = [(r[0], r[1], r[i]) for r in rows if r[i] is not None]
    ints = {n for n in names if kinds[n] == "int"}
    for _, step, progress, name, v in points.read_points(client, [run_id]):
        if step >= low and isinstance(v, (int, float)) and not isinstance(v, bool):
            tail.setdefault(name, []).append((step, progress, v))
            if isinstance(v, int) and name not in kinds:
                ints.add(name)
    for name, logged in tail.items():
        mark = (stored[name][2], stored[name][3]) if name in stored else None
        for step, progress, v in sorted(logged, key=lambda t: (t[0], t[1])):
            if v != v or (mark is not None and (step, progress) <= mark):
                continue
            if name not in stored:
                stored[name] = [0, v, step, progress, v, step, v, step]
            s = stored[name]
            s[0], s[1], s[2], s[3] = s[0] + 1, v, step, progress
            if v < s[4]:
                s[4], s[5] = v, step
            if v > s[6]:
                s[6], s[7] = v, step
    summary = []
    for name in sorted(stored):
        count, last, last_step, _, low_value, low_step, high, high_step = stored[name]
        values = [last, last_step, low_value, low_step, high, high_step]
        if name in ints and all(float(v).is_integer() for v in (last, low_value, high)):
            # summaries hold floats: shown as the integers they were
            values[0], values[2], values[4] = int(last), int(low_value), int(high)
        summary.append((name, int(count), *values))
    return summary
