"""Finding runs: by experiment, status, tags, arguments, or any condition of your own.

:func:`find_runs` is one statement on ``runs`` joined with ``experiments``: its filters
are combined with AND; the values are always parameters, never part of the SQL text.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .._base.values import json_dumps
from .._db.client import Client, operation
from .._write import points
from .._write.metrics import known_columns
from .._write.rows import check_experiment, check_id, deleted_condition
from .._write.runs import check_status
from .._write.summaries import check_available
from ..errors import InvalidValue
from .compare import differing, sort_key, summaries_of

if TYPE_CHECKING:
    import pandas

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


def select_runs(
    client: Client,
    columns: str,
    experiment: int | str | None = None,
    status: str | Iterable[str] | None = None,
    tags: str | Iterable[str] | None = None,
    args: Mapping[str, Any] | None = None,
    where: str | tuple[str, Mapping[str, Any]] | None = None,
    extra: Mapping[str, Any] | None = None,
    deleted: bool | None = False,
    newest: int | None = None,
) -> list[Any]:
    """``columns`` of the runs that match the filters of :func:`sqltrack.find_runs`, by id
    (``extra``: sqltrack's own parameters of ``columns``; ``newest``: only this many, those
    of the highest ids)."""
    engine = client.engine
    conditions: list[str] = []
    params: dict[str, Any] = dict(extra or {})
    if deleted is not None:
        conditions.append(deleted_condition(client, deleted))
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
    if newest is not None:
        query += " DESC LIMIT :_newest"
        params["_newest"] = newest
    rows = client.query(query, params)
    if newest is not None:
        rows.reverse()
    if not rows and experiment is not None:  # no runs, or no such experiment?
        check_experiment(client, experiment)
    return rows


@operation
def find_run_ids(client: Client, **filters: Any) -> list[tuple[int, int]]:
    """``(run id, experiment id)`` of each run that matches ``filters`` (those of
    :func:`sqltrack.find_runs`, which makes them run handles), ordered by id."""
    found = select_runs(client, "runs.id, runs.experiment_id", **filters)
    return [(int(i), int(e)) for i, e in found]


@operation
def run_overview(client: Client, **filters: Any) -> list[tuple[Any, ...]]:
    """What ``sqltrack runs`` shows: one row per run that matches ``filters`` (those of
    :func:`sqltrack.find_runs`), with :data:`OVERVIEW_COLUMNS` (times as aware datetimes, tags as
    a list)."""
    convert = client.engine.python_value
    rows = []
    for row in select_runs(client, _OVERVIEW, **filters):
        times = [convert(t, "datetime") for t in row[3:6]]
        rows.append((*row[:3], *times, sorted(convert(row[6], "json") or {})))
    return rows


#: how many metrics :func:`run_table` shows unless told which
DEFAULT_METRICS = 6


@operation
def run_table(
    client: Client,
    metrics: Iterable[str] | None = None,
    sort: str | None = None,
    reverse: bool = False,
    **filters: Any,
) -> tuple[list[str], list[tuple[Any, ...]], list[str]]:
    """What ``sqltrack runs`` shows: ``(columns, rows, left out)`` of the runs that match
    ``filters`` (those of :func:`find_runs`): :data:`OVERVIEW_COLUMNS`, ``duration``
    (seconds, started to updated), ``args.<name>`` of each argument whose values differ
    between the runs, then the stored summaries ``metrics`` (``name:min|max|last|count``;
    default: ``name:last`` of the metrics most of the runs have, at most
    :data:`DEFAULT_METRICS`; the names of the others are left out). ``sort``: a column,
    ``args.<name>`` or a summary to order the rows by, lowest first (highest with
    ``reverse``), missing values last; by id otherwise."""
    convert = client.engine.python_value
    found = select_runs(client, f"{_OVERVIEW}, runs.args", **filters)
    stored = summaries_of(client, [int(r[0]) for r in found])
    wanted = [metrics] if isinstance(metrics, str) else [*(metrics or ())]
    left_out: list[str] = []
    if metrics is None:
        counts = Counter(k[:-5] for s in stored.values() for k in s if k.endswith(":last"))
        names = sorted(counts, key=lambda m: (-counts[m], m))
        wanted, left_out = [f"{m}:last" for m in names[:DEFAULT_METRICS]], names[DEFAULT_METRICS:]
    fixed = (*OVERVIEW_COLUMNS, "duration")
    if sort is not None and sort not in (*fixed, *wanted) and not sort.startswith("args."):
        try:  # a summary to sort by is shown
            _summary_value(sort, "_")
            _check_metrics(client, [sort])
        except InvalidValue as e:
            raise InvalidValue(
                f"sort {sort!r}: not a column, args.NAME or NAME:AGG ({e})"
            ) from None
        wanted.append(sort)
    for metric in wanted:
        _summary_value(metric, "_")  # checks the aggregate
    if wanted:
        _check_metrics(client, wanted)
    all_args = [convert(r[7], "json") or {} for r in found]
    names = differing(all_args)
    if sort is not None and sort.startswith("args.") and sort[5:] not in names:
        if not any(sort[5:] in a for a in all_args):
            raise InvalidValue(f"sort {sort!r}: no run has the argument {sort[5:]!r}")
        sort = None  # one value for all: the order stays
    keys = [m if ":" in m else f"{m}:last" for m in wanted]
    columns = [*fixed, *(f"args.{n}" for n in names), *wanted]
    rows = []
    for row, args, run in zip(found, all_args, stored.values(), strict=True):
        created, started, updated = (convert(t, "datetime") for t in row[3:6])
        duration = (updated - started).total_seconds() if started and updated else None
        head = (*row[:3], created, started, updated, sorted(convert(row[6], "json") or {}))
        rows.append((*head, duration, *(args.get(n) for n in names), *map(run.get, keys)))
    if sort is None:
        return columns, rows, left_out
    i = columns.index(sort)
    present = sorted((r for r in rows if r[i] is not None), key=lambda r: sort_key(r[i]),
                     reverse=reverse)  # fmt: skip
    return columns, present + [r for r in rows if r[i] is None], left_out


#: what :func:`summarize` and :func:`runs_dataframe` read of a run's summary
_AGGREGATES = ("min", "max", "last", "count")


def _check_metrics(client: Client, metrics: list[str]) -> None:
    """Raise :class:`InvalidValue` for a metric that neither storage knows (no column
    of ``metrics``, no name in ``metric_names``)."""
    names = list(dict.fromkeys(m.partition(":")[0] for m in metrics))
    with client as conn:
        known: set[str] = set(known_columns(client, conn, ()))
        missing = [n for n in names if n not in known]
        if missing:  # maybe added since the client last looked
            known.update(known_columns(client, conn, tuple(missing)))
            missing = [n for n in missing if n not in known]
        if missing and points.available(client):
            known.update(points.narrow_names(client, missing))
    for name in names:
        if name not in known:
            raise InvalidValue(f"no such metric: {name!r}")


def _summary_value(metric: str, param: str) -> str:
    """SQL of one value of a run's summary, ``name:min|max|last|count``; the metric's
    name goes to the parameter ``param``, the aggregate is one of a fixed list."""
    name, _, aggregate = metric.partition(":")
    if not name or (aggregate or "last") not in _AGGREGATES:
        raise InvalidValue(f"metric {metric!r}: give name:min, name:max, name:last or name:count")
    return (
        f"(SELECT s.{aggregate or 'last'} FROM run_summaries s "  # noqa: S608 (fixed list)
        f"WHERE s.run_id = runs.id AND s.metric = :{param})"
    )


def _per_run(client: Client, experiment: int | str, metric: str) -> dict[int, tuple[Any, Any]]:
    """``{run_id: (value, args)}`` for the runs of an experiment that have the metric."""
    check_available(client)
    value = _summary_value(metric, "_metric")
    check_experiment(client, experiment)  # (before the metric: `summarize typo` says so)
    _check_metrics(client, [metric])
    extra = {"_metric": metric.partition(":")[0]}
    convert = client.engine.python_value
    return {
        int(run): (v, convert(args, "json") or {})
        for run, v, args in select_runs(
            client, f"runs.id, {value}, runs.args", experiment=experiment, extra=extra
        )
        if v is not None  # runs without the metric are left out
    }


#: the statistics :func:`summarize` can rank groups by (``best``: the group's best run)
RANKS = ("mean", "median", "min", "max", "best")


def _groups(
    client: Client, experiment: int | str, metric: str, keys: list[str], over: str | None,
    rank_by: str,
) -> list[tuple[Any, ...]]:  # fmt: skip
    """:func:`summarize`'s rows with the median after the mean."""
    if not all(isinstance(k, str) for k in keys) or (
        over is not None and not isinstance(over, str)
    ):
        raise InvalidValue("group_by and over take argument names")
    if rank_by not in RANKS:
        raise InvalidValue(f"rank_by {rank_by!r}: give one of {', '.join(RANKS)}")
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
        stats = (mean, statistics.median(values), std, min(values), max(values))
        rows.append((*group, n, *stats, best[1]))
    column = {"mean": 1, "median": 2, "min": 4, "max": 5}.get(rank_by, 5 if largest else 4)
    rows.sort(key=lambda r: r[len(keys) + column], reverse=largest)  # ties: by run id
    return rows


def _drop(rows: list[tuple[Any, ...]], index: int) -> list[tuple[Any, ...]]:
    return [(*r[:index], *r[index + 1 :]) for r in rows]


@operation
def summary_table(
    client: Client,
    experiment: int | str,
    metric: str = "val_loss:min",
    group_by: Iterable[str] = (),
    over: str | None = None,
    rank_by: str = "mean",
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """What ``sqltrack summarize`` shows: the columns and rows of :func:`summarize`,
    with a ``median`` column after ``mean`` when ranked by the median."""
    keys = list(group_by)
    rows = _groups(client, experiment, metric, keys, over, rank_by)
    columns = [*keys, "n", "mean", "median", "std", "min", "max", "best_run"]
    if rank_by == "median":
        return columns, rows
    return [c for c in columns if c != "median"], _drop(rows, len(keys) + 2)


@operation
def summarize(
    client: Client,
    experiment: int | str,
    metric: str = "val_loss:min",
    group_by: Iterable[str] = (),
    over: str | None = None,
    rank_by: str = "mean",
) -> list[tuple[Any, ...]]:
    """The sweep view: per group of runs with equal ``group_by`` arguments, statistics of
    one value per run: ``(*group values, n, mean, std, min, max, best run id)``.

    Example::

        for lr, bs, n, mean, std, low, high, best in summarize(
            client, "sweep", metric="val_loss:min", group_by=("lr", "bs"), over="seed"
        ):
            ...

    :param metric: ``name:min``, ``name:max`` or ``name:last`` (the value at the highest
        step): how each run's value is read from its summary; the best run of a group
        has the smallest value, or the largest for ``:max``
    :param group_by: argument names; a run without one of them is its own group (None)
    :param over: the argument that varies within a group (say ``seed``): runs without it
        are left out
    :param rank_by: what orders the groups, best first (lowest first; highest for
        ``:max``): their ``mean`` (default), ``median``, ``min`` or ``max``, or ``best``,
        the value of their best run
    :return: groups, best first; std is None for a group of one run
    :raises NotFound: no such experiment
    """
    keys = list(group_by)
    return _drop(_groups(client, experiment, metric, keys, over, rank_by), len(keys) + 2)


@operation
def runs_dataframe_rows(
    client: Client, summaries: Iterable[str] = (), **filters: Any
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The labels and rows of :func:`runs_dataframe` (without pandas)."""
    wanted = [summaries] if isinstance(summaries, str) else list(summaries)
    if not all(isinstance(m, str) for m in wanted):
        raise InvalidValue("summaries must be strings like 'val_loss:min'")
    columns = [_OVERVIEW, "runs.args"]
    extra = {}
    for i, metric in enumerate(wanted):
        columns.append(_summary_value(metric, f"_m{i}"))
        extra[f"_m{i}"] = metric.partition(":")[0]
    if wanted:
        check_available(client)
        _check_metrics(client, wanted)
    found = select_runs(client, ", ".join(columns), extra=extra, **filters)
    convert = client.engine.python_value
    records, arg_names = [], {}
    for row in found:
        created, started, updated = (convert(t, "datetime") for t in row[3:6])
        run_args = convert(row[7], "json") or {}
        arg_names.update(dict.fromkeys(run_args))
        duration = (updated - started).total_seconds() if started and updated else None
        head = (row[0], row[1], row[2], created, started, updated, duration)
        records.append((head, sorted(convert(row[6], "json") or {}), run_args, row[8:]))
    names = sorted(arg_names)  # (PostgreSQL's jsonb keeps no order of its own)
    labels = ["id", "experiment", "status", "time_created", "time_started", "time_updated"]
    labels += ["duration", "tags", *(f"args.{n}" for n in names), *wanted]
    rows = [
        (*head, tags_, *(a.get(n) for n in names), *values) for head, tags_, a, values in records
    ]
    return labels, rows


def runs_dataframe(
    client: Client,
    experiment: int | str | None = None,
    status: str | Iterable[str] | None = None,
    tags: str | Iterable[str] | None = None,
    args: Mapping[str, Any] | None = None,
    where: str | tuple[str, Mapping[str, Any]] | None = None,
    summaries: Iterable[str] = (),
) -> pandas.DataFrame:
    """One row per run that matches the filters (those of :func:`find_runs`), as a
    ``pandas.DataFrame`` (pandas is an optional extra), read with one statement.

    Columns: ``id``, ``experiment``, ``status``, ``time_created``, ``time_started``,
    ``time_updated``, ``duration`` (seconds, started to updated), ``tags`` (a list), every
    argument as ``args.<name>`` (by name; missing: None or NaN), then each requested
    summary.

    Example::

        df = runs_dataframe(client, experiment="sweep", status="COMPLETED",
                            summaries=("val_loss:min", "val_acc:last"))
        df.groupby("args.lr")["val_loss:min"].mean()

    :param summaries: ``name:min``, ``name:max``, ``name:last`` or ``name:count`` of a
        metric, read from the runs' summaries (None where a run has no value)
    """
    try:
        import pandas
    except ImportError:
        raise ImportError("runs_dataframe needs pandas: pip install 'sqltrack[pandas]'") from None
    labels, rows = runs_dataframe_rows(
        client, summaries, experiment=experiment, status=status, tags=tags, args=args, where=where
    )
    return pandas.DataFrame.from_records(rows, columns=labels)
