"""Finding runs: by experiment, status, tags, arguments, or any condition of your own.

:func:`find_runs` is one statement on ``runs`` joined with ``experiments``: its filters
are combined with AND; the values are always parameters, never part of the SQL text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ._rows import check_id
from .client import Client, operation
from .errors import InvalidValue, NotFound
from .handles import Run
from .metrics import known_columns
from .read import read_metrics
from .runs import check_status
from .values import json_dumps

__all__ = [
    "OVERVIEW_COLUMNS",
    "SUMMARY_COLUMNS",
    "compare_runs",
    "find_runs",
    "metric_summary",
    "run_overview",
]

_OVERVIEW = (
    "SELECT runs.id, experiments.name, runs.status, runs.time_created, runs.time_started, "
    "runs.time_updated, runs.tags FROM runs "
    "JOIN experiments ON experiments.id = runs.experiment_id WHERE {conditions} "
    "ORDER BY runs.id"
)
#: the columns of :func:`run_overview`
OVERVIEW_COLUMNS = ("id", "experiment", "status", "created", "started", "updated", "tags")
_FIND = (
    "SELECT runs.id, runs.experiment_id FROM runs "
    "JOIN experiments ON experiments.id = runs.experiment_id WHERE {conditions} "
    "ORDER BY runs.id"
)


def _texts(value: str | Iterable[str], what: str) -> list[str]:
    items = [value] if isinstance(value, str) else list(value)
    if not items or not all(isinstance(i, str) for i in items):
        raise InvalidValue(f"{what} must be a string or a non-empty list of strings")
    return items


def _conditions(
    client: Client,
    experiment: int | str | None,
    status: str | Iterable[str] | None,
    tags: str | Iterable[str] | None,
    args: Mapping[str, Any] | None,
    where: str | tuple[str, Mapping[str, Any]] | None,
) -> tuple[list[str], dict[str, Any]]:
    engine = client.engine
    conditions: list[str] = []
    params: dict[str, Any] = {}
    if experiment is not None:
        if isinstance(experiment, str):
            conditions.append("experiments.name = :_experiment")
        else:
            check_id(experiment, "experiment")
            conditions.append("runs.experiment_id = :_experiment")
        params["_experiment"] = experiment
    if status is not None:
        statuses = [check_status(s) for s in _texts(status, "status")]
        conditions.append(engine.in_array("CAST(runs.status AS TEXT)", "_status"))
        params["_status"] = engine.adapt_array(statuses)
    if tags is not None:
        for i, tag in enumerate(_texts(tags, "tags")):
            conditions.append(engine.json_has_key("runs.tags", f"_tag{i}"))
            params[f"_tag{i}"] = tag
    if args is not None:
        if not isinstance(args, Mapping) or not args:
            raise InvalidValue("args must be a non-empty dict, e.g. {'lr': 0.1}")
        conditions.append(f"runs.args IS NOT NULL AND {engine.json_contains('runs.args', '_args')}")
        params["_args"] = json_dumps(dict(args), "args")
    if where is not None:
        text, extra = (where, {}) if isinstance(where, str) else where
        if not isinstance(text, str) or not isinstance(extra, Mapping):
            raise InvalidValue("where must be a SQL condition, or (condition, {name: value})")
        if any(str(k).startswith("_") for k in extra):
            raise InvalidValue("where: parameter names starting with _ are sqltrack's own")
        conditions.append(f"({text})")
        params.update(extra)
    return conditions or ["TRUE"], params


@operation
def find_runs(
    client: Client,
    experiment: int | str | None = None,
    status: str | Iterable[str] | None = None,
    tags: str | Iterable[str] | None = None,
    args: Mapping[str, Any] | None = None,
    where: str | tuple[str, Mapping[str, Any]] | None = None,
) -> list[Run]:
    """The runs that match every filter given, ordered by id.

    Example::

        runs = find_runs(client, experiment="resnet-cifar", status="COMPLETED",
                         tags="baseline", args={"lr": 0.1},
                         where=("runs.time_started > :since", {"since": since}))

    :param experiment: an experiment's name or id
    :param status: a status, or several (any of them)
    :param tags: a tag, or several (all of them)
    :param args: ``{name: value}`` that the run's arguments contain (equal JSON values)
    :param where: a condition of your own on the columns of ``runs`` and ``experiments``
        (qualify them: ``runs.comment``), with ``:name`` placeholders and a dict of values
    :return: a :class:`~sqltrack.handles.Run` per run (made without further queries)
    :raises InvalidValue: a filter of the wrong type or an unknown status
    """
    conditions, params = _conditions(client, experiment, status, tags, args, where)
    query = _FIND.format(conditions=" AND ".join(conditions))
    return [Run.of(client, int(i), int(e)) for i, e in client.query(query, params)]


@operation
def run_overview(
    client: Client,
    experiment: int | str | None = None,
    status: str | Iterable[str] | None = None,
    tags: str | Iterable[str] | None = None,
    args: Mapping[str, Any] | None = None,
    where: str | tuple[str, Mapping[str, Any]] | None = None,
) -> list[tuple[Any, ...]]:
    """What ``sqltrack runs`` shows: one row per run that matches the filters of
    :func:`find_runs`, with :data:`OVERVIEW_COLUMNS` (times as aware datetimes, tags as
    a list)."""
    conditions, params = _conditions(client, experiment, status, tags, args, where)
    convert = client.engine.python_value
    rows = []
    for row in client.query(_OVERVIEW.format(conditions=" AND ".join(conditions)), params):
        times = [convert(t, "datetime") for t in row[3:6]]
        rows.append((*row[:3], *times, sorted(convert(row[6], "json") or {})))
    return rows


_DETAILS = (
    "SELECT runs.id, experiments.name, runs.status, runs.time_created, runs.time_started, "
    "runs.time_updated, runs.comment, runs.tags, runs.args, runs.env, runs.extras FROM runs "
    "JOIN experiments ON experiments.id = runs.experiment_id WHERE {condition}"
)
_FIELDS = ("experiment", "status", "created", "started", "updated", "comment", "tags")


@operation
def compare_runs(client: Client, *run_ids: int, everything: bool = False) -> list[tuple[Any, ...]]:
    """What differs between runs: one row ``(field, value of each run…)`` per field whose
    values are not all equal (every field with ``everything=True``), in this order: the
    run's own fields, then ``args.<name>``, ``env.<name>``, ``extras.<name>`` (a missing
    key is None).

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
    condition = engine.in_array("runs.id", "ids")
    found = {
        row[0]: row
        for row in client.query(
            _DETAILS.format(condition=condition), {"ids": engine.adapt_array(ids)}
        )
    }
    missing = [i for i in dict.fromkeys(ids) if i not in found]
    if missing:
        raise NotFound(f"run {', '.join(map(str, missing))} does not exist")
    columns: list[dict[str, Any]] = []
    for i in ids:
        row = found[i]
        fields = dict(zip(_FIELDS, row[1:8], strict=True))
        for name in ("created", "started", "updated"):
            fields[name] = convert(fields[name], "datetime")
        fields["tags"] = sorted(convert(fields["tags"], "json") or {})
        for prefix, value in zip(("args", "env", "extras"), row[8:], strict=True):
            for key, item in (convert(value, "json") or {}).items():
                fields[f"{prefix}.{key}"] = item
        columns.append(fields)
    names = list(_FIELDS) + sorted({k for c in columns for k in c} - set(_FIELDS))
    rows = []
    for name in names:
        values = [c.get(name) for c in columns]
        if everything or any(v != values[0] for v in values[1:]):
            rows.append((name, *values))
    return rows


#: the columns of :func:`metric_summary`
SUMMARY_COLUMNS = ("metric", "count", "last", "last_step", "min", "min_step", "max", "max_step")


def metric_summary(client: Client, run_id: int) -> list[tuple[Any, ...]]:
    """Per numeric metric of a run (:data:`SUMMARY_COLUMNS`): how many values, the last
    one (at the highest step and progress), the smallest and largest and their steps.
    Computed from the run's rows (one query); what ``sqltrack show`` prints.

    :raises NotFound: the run does not exist
    """
    names, rows = read_metrics(client, run_id)
    with client as conn:
        kinds = known_columns(client, conn, tuple(names[3:]))
    summary = []
    for i, name in enumerate(names[3:], start=3):
        if kinds.get(name) not in ("int", "float"):
            continue  # booleans (0/1 on SQLite), text and times are not summarized
        points = [(row[1], row[i]) for row in rows if row[i] is not None and row[i] == row[i]]
        if points:
            low = min(points, key=lambda p: p[1])
            high = max(points, key=lambda p: p[1])
            last = points[-1]
            summary.append((name, len(points), last[1], last[0], low[1], low[0], high[1], high[0]))
    return summary
