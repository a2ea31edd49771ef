"""Finding runs: by experiment, status, tags, arguments, or any condition of your own.

:func:`find_runs` is one statement on ``runs`` joined with ``experiments``: its filters
are combined with AND; the values are always parameters, never part of the SQL text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ._rows import check_id
from .client import Client, operation
from .errors import InvalidValue
from .handles import Run
from .runs import check_status
from .values import json_dumps

__all__ = ["OVERVIEW_COLUMNS", "find_runs", "run_overview"]

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
