"""What the live dashboard (``sqltrack ui``) shows, as plain JSON data.

Each function answers one endpoint of the dashboard's JSON API (documented in
docs/ui.md) with dicts, lists, strings, numbers and None only: times as ISO text, JSON
columns decoded. They read only; values are parameters, and the deleted runs are left
out as everywhere on the read side. The curves are in :mod:`sqltrack._read.curves`.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from .._base.values import timestamp
from .._db.client import Client, operation
from .._write.rows import check_id, deleted_condition
from .._write.summaries import check_available
from ..errors import InvalidValue, NotFound
from .curves import check_points
from .search import select_runs

#: a runs list carries the summaries of at most this many metrics unless told which
DEFAULT_SUMMARIES = 50
#: a runs list of the newest runs holds at most this many
MAX_NEWEST = 10_000
#: a run page shows at most this many samples (the latest)
MAX_SAMPLES = 200
#: a metric search answers at most this many names
MAX_NAMES = 200

_JSON_COLUMNS = {"tags", "args", "env", "extras", "code", "packages", "hardware"}
_TIME_COLUMNS = {"time_created", "time_started", "time_updated", "time_deleted"}

# {visible}: sqltrack's own condition leaving deleted runs out
_EXPERIMENTS = """
SELECT experiments.id, experiments.name, count(runs.id)
FROM experiments LEFT JOIN runs ON runs.experiment_id = experiments.id AND {visible}
WHERE experiments.time_deleted IS NULL
GROUP BY experiments.id, experiments.name ORDER BY experiments.name
"""
# the metric names of an experiment's runs, most summarized first; {visible}, {match}
_METRIC_NAMES = """
SELECT s.metric FROM run_summaries s JOIN runs ON runs.id = s.run_id
JOIN experiments ON experiments.id = runs.experiment_id
WHERE experiments.name = :e AND {visible}{match}
GROUP BY s.metric ORDER BY count(*) DESC, s.metric LIMIT :limit
"""
_SUMMARIES = """
SELECT s.run_id, s.metric, s.min, s.max, s.last FROM run_summaries s
JOIN runs ON runs.id = s.run_id JOIN experiments ON experiments.id = runs.experiment_id
WHERE experiments.name = :e AND {visible} AND {metrics}{since}
"""
# a run changed since :since: its status, heartbeat or anything logged moves time_updated
_SINCE = "(runs.time_updated >= :since OR runs.time_created >= :since)"
# (the JSON columns as text, decoded here all at once: a driver decoding each is slower)
_RUN_COLUMNS = (
    "runs.id, runs.status, runs.time_created, runs.time_started, runs.time_updated, "
    "CAST(runs.tags AS TEXT), CAST(runs.args AS TEXT), runs.comment"
)
# {visible}: sqltrack's own condition leaving deleted runs out
_RUN = (
    "SELECT runs.*, experiments.name AS experiment FROM runs "
    "JOIN experiments ON experiments.id = runs.experiment_id WHERE runs.id = :run AND {visible}"
)
_LINKS = (
    "SELECT 'to', kind, to_id FROM run_links WHERE from_id = :run "
    "UNION ALL SELECT 'from', kind, from_id FROM run_links WHERE to_id = :run"
)
_ARTIFACTS = (
    "SELECT id, name, version, kind, step, uri, sha256, size, metadata, time_created "
    "FROM artifacts WHERE run_id = :run ORDER BY id"
)
_USED = (
    "SELECT a.id, a.name, a.version, a.kind, a.run_id, u.time_used FROM artifact_uses u "
    "JOIN artifacts a ON a.id = u.artifact_id WHERE u.run_id = :run ORDER BY u.time_used"
)
_SAMPLES = (
    "SELECT s.id, s.step, s.kind, s.output, s.artifact_id, c.type, c.content "
    "FROM samples s LEFT JOIN conditionings c ON c.id = s.conditioning_id "
    "WHERE s.run_id = :run ORDER BY s.step DESC, s.id DESC LIMIT :limit"
)
_RUN_SUMMARIES = (
    "SELECT metric, count, min, max, last, last_step FROM run_summaries "
    "WHERE run_id = :run ORDER BY metric"
)
_SYSTEM = """
SELECT name, time, value FROM (
    SELECT name, time, value,
        row_number() OVER (PARTITION BY name ORDER BY time) AS rn,
        count(*) OVER (PARTITION BY name) AS n
    FROM system_metrics WHERE run_id = :run
) sampled
WHERE (rn - 1) % ((n + :points - 1) / :points) = 0 OR rn = n
ORDER BY name, time
"""


def plain(value: Any) -> Any:
    """A JSON-safe value: times as ISO text, NaN and infinities as None, a UUID (a
    PostgreSQL ``uid``) as text."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


_INFINITIES = frozenset((math.inf, -math.inf))


def _finite(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


def _iso(value: Any) -> str | None:
    return None if value is None else str(value.isoformat())


def _check_count(value: Any, name: str, most: int) -> None:
    """InvalidValue unless ``value`` is an integer from 1 to ``most``."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= most:
        raise InvalidValue(f"{name} must be an integer from 1 to {most}, got {value!r}")


@operation
def experiments(client: Client) -> list[dict[str, Any]]:
    """``[{"id", "name", "runs"}]``: the experiments (not deleted), by name, with how
    many runs each has."""
    query = _EXPERIMENTS.format(visible=deleted_condition(client, False))
    return [{"id": i, "name": n, "runs": int(c)} for i, n, c in client.query(query)]


def parse_arg_filters(pairs: Sequence[str]) -> dict[str, Any]:
    """``["lr=0.1", "model=resnet"]`` as ``{"lr": 0.1, "model": "resnet"}``: a value that
    reads as JSON (a number, true, null, a quoted string) is that, else the text."""
    found: dict[str, Any] = {}
    for pair in pairs:
        key, equals, text = pair.partition("=")
        if not equals or not key:
            raise InvalidValue(f"arg filters are key=value, got {pair!r}")
        try:
            found[key] = json.loads(text)
        except ValueError:
            found[key] = text
    return found


@operation
def metric_names(
    client: Client, experiment: str, match: str = "", limit: int = MAX_NAMES
) -> list[str]:
    """The names of the metrics the runs of ``experiment`` have (those with a summary),
    the most common first: at most ``limit``, those containing ``match`` if given."""
    check_available(client)
    _check_count(limit, "limit", 10_000)
    params: dict[str, Any] = {"e": experiment, "limit": limit}
    condition = ""
    if match:  # (the text as a LIKE pattern of itself: its wildcards escaped)
        condition = " AND lower(s.metric) LIKE :match ESCAPE '!'"
        escaped = match.lower().replace("!", "!!").replace("%", "!%").replace("_", "!_")
        params["match"] = f"%{escaped}%"
    visible = deleted_condition(client, False)
    query = _METRIC_NAMES.format(visible=visible, match=condition)
    return [str(r[0]) for r in client.query(query, params)]


@operation
def runs(
    client: Client,
    experiment: str,
    status: Sequence[str] | None = None,
    tags: Sequence[str] | None = None,
    args: Mapping[str, Any] | None = None,
    metrics: Sequence[str] | None = None,
    since: datetime | None = None,
    newest: int | None = None,
) -> dict[str, Any]:
    """``{"experiment", "metrics", "now", "runs": [{id, status, created, started,
    updated, duration, tags, args, comment, summaries: {metric: {min, max, last}}}]}`` of
    the runs of ``experiment`` that match the filters (those of
    :func:`sqltrack.find_runs`), by id.

    :param metrics: the metrics whose summaries each run carries (default: the
        :data:`DEFAULT_SUMMARIES` most common of the experiment)
    :param since: only the runs created or updated at or after this time (an aware
        datetime): what changed since an earlier answer, whose ``now`` (this machine's
        clock, ISO text) is the time to ask from next. ``time_updated`` comes from the
        clocks of the machines that write: ask with a margin for their skew (the page
        takes a minute), and keep the newest copy of each run. A run deleted since is
        not in the answer: a full answer (without ``since``) leaves it out.
    :param newest: only this many of the runs that match, those of the highest ids (the
        page draws these first, then asks for all)
    :raises NotFound: no such experiment
    """
    if not isinstance(experiment, str):
        raise InvalidValue(f"experiment must be a name, got {experiment!r}")
    if newest is not None:
        _check_count(newest, "newest", MAX_NEWEST)
    now = datetime.now(timezone.utc)
    check_available(client)
    filters: dict[str, Any] = {"experiment": experiment}
    changed, after = "", {}
    if since is not None:
        after = {"since": client.engine.adapt_datetime(timestamp(since, "since"))}  # type: ignore[arg-type]
        filters["where"] = (_SINCE, after)
        changed = " AND " + _SINCE
    if status:
        filters["status"] = list(status)
    if tags:
        filters["tags"] = list(tags)
    if args:
        filters["args"] = dict(args)
    convert = client.engine.python_value
    with client:
        found = select_runs(client, _RUN_COLUMNS, **filters, newest=newest)
        if metrics is None:
            metrics = metric_names(client, experiment, limit=DEFAULT_SUMMARIES)
        tags_of = _json_texts([row[5] for row in found])
        args_of = _json_texts([row[6] for row in found])
        listed = []
        by_id = {}
        for (id_, status_, created, started, updated, _, _, comment), tags_, args_ in zip(
            found, tags_of, args_of, strict=True
        ):
            start, end = convert(started, "datetime"), convert(updated, "datetime")
            record = {
                "id": id_,
                "status": status_,
                "created": _iso(convert(created, "datetime")),
                "started": None if start is None else start.isoformat(),
                "updated": None if end is None else end.isoformat(),
                "duration": (end - start).total_seconds() if start and end else None,
                "tags": sorted(tags_) if isinstance(tags_, dict) else [],
                "args": args_ if isinstance(args_, dict) else {},
                "comment": comment,
                "summaries": {},
            }
            listed.append(record)
            by_id[id_] = record
        if metrics and listed:
            engine = client.engine
            query = _SUMMARIES.format(
                visible=deleted_condition(client, False),
                metrics=engine.in_array("s.metric", "metrics"),
                since=changed + (" AND s.run_id >= :first" if newest is not None else ""),
            )
            params = {"e": experiment, "metrics": engine.adapt_array(list(metrics)), **after}
            if newest is not None:
                params["first"] = listed[0]["id"]
            for run_id, metric, low, high, last in client.query(query, params):
                of = by_id.get(run_id)
                if of is not None:  # (no NaN is summarized; an infinity may be: JSON has none)
                    if not _INFINITIES.isdisjoint((low, high, last)):
                        low, high, last = _finite(low), _finite(high), _finite(last)
                    of["summaries"][metric] = {"min": low, "max": high, "last": last}
    return {
        "experiment": experiment,
        "metrics": list(metrics or []),
        "now": now.isoformat(),
        "runs": listed,
    }


def _json_texts(texts: list[str | None]) -> list[Any]:
    """JSON texts (None for NULL) decoded in one call, as one array: ten thousand calls
    take twice as long. A text that is not one JSON value (only a hand-written row can
    hold one) makes the array's length differ or fail: then each is decoded alone, and
    such a text reads as None (the run is still listed)."""
    joined = ",".join("null" if text is None else text for text in texts)
    try:
        values = json.loads(f"[{joined}]")
    except ValueError:
        values = None
    if isinstance(values, list) and len(values) == len(texts):
        return values
    return [_json_or_none(text) for text in texts]


def _json_or_none(text: str | None) -> Any:
    try:
        return None if text is None else json.loads(text)
    except ValueError:
        return None


def parse_since(text: str) -> datetime:
    """An ISO 8601 time with its zone (``2026-12-02T10:00:00+00:00``, or ``Z``)."""
    try:
        when = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        raise InvalidValue(f"since must be an ISO 8601 time, got {text[:60]!r}") from None
    if when.tzinfo is None:
        raise InvalidValue(f"since must have a time zone (+00:00 or Z), got {text[:60]!r}")
    return when


@operation
def run_page(client: Client, run_id: int) -> dict[str, Any]:
    """Everything about one run: its fields (``id``, ``experiment``, ``status``, times,
    ``tags``, ``args``, ``env``, ``code``, ``packages``, ``hardware``, ``extras``, …),
    ``links``, ``artifacts`` (logged, with versions and checksums), ``used`` (artifacts
    it used), ``samples`` (the latest :data:`MAX_SAMPLES`, with their conditioning),
    ``metrics`` (its summaries) and ``system`` (the names of its system metrics).

    :raises NotFound: no such run (or a deleted one)
    """
    run_id = check_id(run_id, "run")
    convert = client.engine.python_value
    params = {"run": run_id}
    with client as conn:
        cur = conn.cursor()
        try:
            query = _RUN.format(visible=deleted_condition(client, False))
            cur.execute(client.engine.sql(query), params)
            columns = [d[0] for d in cur.description]
            row = cur.fetchone()
        finally:
            cur.close()
        if row is None:
            raise NotFound(f"run {run_id} does not exist")
        page: dict[str, Any] = {}
        for column, value in zip(columns, row, strict=True):
            if column in _JSON_COLUMNS:
                value = convert(value, "json")
            elif column in _TIME_COLUMNS:
                value = convert(value, "datetime")
            page[column] = plain(value)
        page["tags"] = sorted(page.get("tags") or {})
        links = client.query(_LINKS, params)
        page["links"] = [{"direction": d, "kind": k, "run": r} for d, k, r in links]
        page["artifacts"] = [
            {
                "id": a[0], "name": a[1], "version": a[2], "kind": a[3], "step": a[4],
                "uri": a[5], "sha256": a[6], "size": a[7],
                "metadata": convert(a[8], "json"), "created": plain(convert(a[9], "datetime")),
            }
            for a in client.query(_ARTIFACTS, params)
        ]  # fmt: skip
        page["used"] = [
            {"id": a[0], "name": a[1], "version": a[2], "kind": a[3], "run": a[4],
             "used": plain(convert(a[5], "datetime"))}
            for a in client.query(_USED, params)
        ]  # fmt: skip
        page["samples"] = [
            {"id": s[0], "step": s[1], "kind": s[2], "output": convert(s[3], "json"),
             "artifact": s[4], "conditioning_type": s[5],
             "conditioning": convert(s[6], "json")}
            for s in client.query(_SAMPLES, {**params, "limit": MAX_SAMPLES})
        ]  # fmt: skip
        page["metrics"] = [
            {"name": m, "count": c, "min": plain(lo), "max": plain(hi), "last": plain(la),
             "last_step": st}
            for m, c, lo, hi, la, st in client.query(_RUN_SUMMARIES, params)
        ]  # fmt: skip
        system = client.query(
            "SELECT DISTINCT name FROM system_metrics WHERE run_id = :run", params
        )
        page["system"] = sorted(str(r[0]) for r in system)
    return page


@operation
def system_curves(client: Client, run_id: int, points: int = 1000) -> dict[str, Any]:
    """The run's system metrics ``{name: {"time": [ISO text…], "value": [...]}}``, at most
    ``points`` evenly spaced samples each (and the last)."""
    run_id, points = check_id(run_id, "run"), check_points(points)
    convert = client.engine.python_value
    curves: dict[str, dict[str, list[Any]]] = {}
    for name, time, value in client.query(_SYSTEM, {"run": run_id, "points": points}):
        curve = curves.setdefault(str(name), {"time": [], "value": []})
        curve["time"].append(plain(convert(time, "datetime")))
        curve["value"].append(plain(value))
    return curves
