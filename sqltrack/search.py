"""Finding runs: by experiment, status, tags, arguments, or any condition of your own.

:func:`find_runs` is one statement on ``runs`` joined with ``experiments``: its filters
are combined with AND; the values are always parameters, never part of the SQL text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from ._rows import check_id
from .client import Client, operation
from .engines import quote_identifier
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
    "summarize",
]

# {columns} and {conditions} are sqltrack's own text; values are parameters
_SELECT_RUNS = (
    "SELECT {columns} FROM runs JOIN experiments ON experiments.id = runs.experiment_id "
    "WHERE {conditions} ORDER BY runs.id"
)
_OVERVIEW = (
    "runs.id, experiments.name, runs.status, runs.time_created, runs.time_started, "
    "runs.time_updated, runs.tags"
)
#: the columns of :func:`run_overview`
OVERVIEW_COLUMNS = ("id", "experiment", "status", "created", "started", "updated", "tags")


def _texts(value: str | Iterable[str], what: str) -> list[str]:
    items = [value] if isinstance(value, str) else list(value)
    if not items or not all(isinstance(i, str) for i in items):
        raise InvalidValue(f"{what} must be a string or a non-empty list of strings")
    return items


def _select(
    client: Client,
    columns: str,
    experiment: int | str | None = None,
    status: str | Iterable[str] | None = None,
    tags: str | Iterable[str] | None = None,
    args: Mapping[str, Any] | None = None,
    where: str | tuple[str, Mapping[str, Any]] | None = None,
) -> list[Any]:
    """``columns`` of the runs that match the filters of :func:`find_runs`, by id."""
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
    query = _SELECT_RUNS.format(columns=columns, conditions=" AND ".join(conditions) or "TRUE")
    return client.query(query, params)


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
    found = _select(client, "runs.id, runs.experiment_id", experiment, status, tags, args, where)
    return [Run.of(client, int(i), int(e)) for i, e in found]


@operation
def run_overview(client: Client, **filters: Any) -> list[tuple[Any, ...]]:
    """What ``sqltrack runs`` shows: one row per run that matches ``filters`` (those of
    :func:`find_runs`), with :data:`OVERVIEW_COLUMNS` (times as aware datetimes, tags as
    a list)."""
    convert = client.engine.python_value
    rows = []
    for row in _select(client, _OVERVIEW, **filters):
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


#: how :func:`summarize` reads one run's value of a metric
_AGGREGATES = ("min", "max", "last")


def _per_run(client: Client, experiment: int | str, metric: str) -> dict[int, tuple[Any, Any]]:
    """``{run_id: (value, args)}`` for the runs of an experiment that have the metric."""
    name, _, aggregate = metric.partition(":")
    aggregate = aggregate or "last"
    if aggregate not in _AGGREGATES:
        raise InvalidValue(f"metric {metric!r}: give name:min, name:max or name:last")
    with client as conn:
        if name not in known_columns(client, conn, (name,)):
            raise InvalidValue(f"no such metric column: {name!r}")
    # a column the table has, quoted; an aggregate from the fixed list: no caller's text
    column = quote_identifier(name)
    some = "FROM metrics m WHERE m.run_id = runs.id"
    if aggregate == "last":
        order = "ORDER BY m.step DESC, m.progress DESC LIMIT 1"
        value = f"(SELECT m.{column} {some} AND m.{column} IS NOT NULL {order})"
    else:
        value = f"(SELECT {aggregate}(m.{column}) {some})"
    where = "experiments.name = :e" if isinstance(experiment, str) else "runs.experiment_id = :e"
    query = (
        f"SELECT runs.id, {value}, runs.args FROM runs "  # noqa: S608 (a checked column name)
        f"JOIN experiments ON experiments.id = runs.experiment_id WHERE {where} ORDER BY runs.id"
    )
    convert = client.engine.python_value
    return {
        int(run): (v, convert(args, "json") or {})
        for run, v, args in client.query(query, {"e": experiment})
        if v is not None and v == v  # runs without the metric (or NaN) are left out
    }


@operation
def summarize(
    client: Client,
    experiment: int | str,
    metric: str = "val_loss:min",
    group_by: Iterable[str] = (),
    over: str | None = None,
) -> list[tuple[Any, ...]]:
    """The sweep view: per group of runs with equal ``group_by`` arguments, statistics of
    one value per run: ``(*group values, n, mean, std, min, max, best run id)``.

    Example::

        for lr, bs, n, mean, std, low, high, best in summarize(
            client, "sweep", metric="val_loss:min", group_by=("lr", "bs"), over="seed"
        ):
            ...

    :param metric: ``name:min``, ``name:max`` or ``name:last`` (the value at the highest
        step): how each run's value is read; the best run of a group has the smallest
        value, or the largest for ``:max``
    :param group_by: argument names; a run without one of them is its own group (None)
    :param over: the argument that varies within a group (say ``seed``): runs without it
        are left out
    :return: groups ordered by their best value; std is None for a group of one run
    """
    keys = list(group_by)
    if not all(isinstance(k, str) for k in keys) or (
        over is not None and not isinstance(over, str)
    ):
        raise InvalidValue("group_by and over take argument names")
    largest = metric.endswith(":max")
    groups: dict[tuple[Any, ...], list[tuple[float, int]]] = {}
    for run, (value, args) in _per_run(client, experiment, metric).items():
        if over is not None and over not in args:
            continue
        key = tuple(json_dumps(args.get(k), "group") for k in keys)
        groups.setdefault(key, []).append((float(value), run))
    rows = []
    for key, members in groups.items():
        values = [v for v, _ in members]
        n = len(values)
        mean = sum(values) / n
        std = (sum((v - mean) ** 2 for v in values) / (n - 1)) ** 0.5 if n > 1 else None
        best = (max if largest else min)(members)
        group = [json.loads(k) for k in key]
        rows.append((*group, n, mean, std, min(values), max(values), best[1]))
    rows.sort(key=lambda r: r[len(keys) + 4 if largest else len(keys) + 3], reverse=largest)
    return rows
