"""Comparing runs: what differs between them, field by field, and their summaries side
by side (``sqltrack compare``, ``sqltrack show``)."""

from __future__ import annotations

from typing import Any

from ._rows import check_id
from .client import Client, operation
from .errors import InvalidValue, NotFound
from .summaries import available

__all__ = ["compare_runs"]


_DETAILS = (
    "SELECT runs.id, experiments.name, runs.status, runs.time_created, runs.time_started, "
    "runs.time_updated, runs.comment, runs.tags, runs.args, runs.env, runs.extras FROM runs "
    "JOIN experiments ON experiments.id = runs.experiment_id WHERE {condition}"
)
_FIELDS = ("experiment", "status", "created", "started", "updated", "comment", "tags")


@operation
def compare_runs(
    client: Client, *run_ids: int, everything: bool = False, summaries: bool = True
) -> list[tuple[Any, ...]]:
    """What differs between runs: one row ``(field, value of each run…)`` per field whose
    values are not all equal (every field with ``everything=True``), in this order: the
    run's own fields, then ``args.<name>``, ``env.<name>``, ``extras.<name>`` (a missing
    key is None), then (unless ``summaries=False``) the summaries side by side:
    ``<metric>:min``, ``<metric>:max``, ``<metric>:last``.

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
    if summaries and available(client):  # side by side, after the fields
        found_summaries = client.query(
            "SELECT run_id, metric, min, max, last FROM run_summaries WHERE "  # noqa: S608
            f"{engine.in_array('run_id', 'ids')} ORDER BY metric",
            {"ids": engine.adapt_array(ids)},
        )
        by_run = {i: c for i, c in zip(ids, columns, strict=True)}
        metrics = []
        for run, metric, *values in found_summaries:
            metrics.append(metric)
            for aggregate, value in zip(("min", "max", "last"), values, strict=True):
                by_run[run][f"{metric}:{aggregate}"] = value
        names += [f"{m}:{a}" for m in dict.fromkeys(metrics) for a in ("min", "max", "last")]
    rows = []
    for name in names:
        values = [c.get(name) for c in columns]
        if everything or any(v != values[0] for v in values[1:]):
            rows.append((name, *values))
    return rows
