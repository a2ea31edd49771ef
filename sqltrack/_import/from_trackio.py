"""trackio projects: the SQLite file trackio keeps per project (``<project>.db`` in
``TRACKIO_DIR``, by default ``~/.cache/huggingface/trackio``), read with sqlite3 in
read-only mode (trackio's own reader finds projects by name in its folder and opens
them for writing; this file may be a copy, or another user's). No text of the file ever
becomes SQL.

- A run is a ``run_id`` of the file (older files: a ``run_name``); its config row gives
  the args (trackio's own ``_Username``, ``_Created``, ``_Group`` go to extras), its name
  the comment.
- Each ``metrics`` row (one ``trackio.log`` call) is a row of metrics at its step, its
  ``timestamp`` the wall time; trackio's ``"NaN"``/``"Infinity"`` text is the float.
- trackio records no status: a run is COMPLETED. Its system metrics (no step) are not
  imported, nor its alerts, traces and artifacts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from .._db.client import Client
from ..errors import InvalidValue
from .model import ImportResult, Point, ProgressHook, SourceRun, checked_path
from .target import import_runs

SOURCE = "trackio"
_SPECIAL = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}
_COLUMNS = "SELECT name FROM pragma_table_info(:table)"
# by the column that names a run: run_id (trackio 0.4+) or, in older files, run_name
_LOGGED = {
    "run_id": "SELECT run_id, run_name, step, timestamp, metrics FROM metrics ORDER BY id",
    "run_name": "SELECT run_name, run_name, step, timestamp, metrics FROM metrics ORDER BY id",
}
_CONFIGS = {
    "run_id": "SELECT run_id, config, created_at FROM configs",
    "run_name": "SELECT run_name, config, created_at FROM configs",
}


def import_trackio(
    client: Client,
    path: str | os.PathLike[str],
    experiment: str | None = None,
    dry_run: bool = False,
    progress: ProgressHook | None = None,
) -> ImportResult:
    """Import the runs of a trackio project file; a run imported before is left as it is
    (see docs/import.md).

    Example::

        import_trackio(client, "~/.cache/huggingface/trackio/cifar.db")

    :param experiment: the sqltrack experiment of the runs (default: the project's name,
        the file's stem)
    :param dry_run: write nothing; the result says what would be imported
    :param progress: called with (runs done, runs in all) after each run
    :raises InvalidValue: no such file, or not a trackio project
    """
    runs = read_trackio(path, experiment)
    result = ImportResult(SOURCE, str(path), dry_run)
    return import_runs(client, runs, result, progress)


def read_trackio(path: str | os.PathLike[str], experiment: str | None = None) -> list[SourceRun]:
    """The runs of the trackio project file at ``path``."""
    file = checked_path(path)
    if not file.is_file():
        raise InvalidValue(f"no such file: {path}")
    project = file.stem
    from .._db.engines.sqlite import read_foreign  # (the one module that imports sqlite3)

    try:
        metric_columns, config_columns = (
            {row[0] for row in rows}
            for rows in read_foreign(
                file, [(_COLUMNS, {"table": t}) for t in ("metrics", "configs")]
            )
        )
        if not {"run_name", "step", "timestamp", "metrics"} <= metric_columns:
            raise InvalidValue("no metrics table of trackio's")
        key = "run_id" if "run_id" in metric_columns else "run_name"
        queries: list[tuple[str, dict[str, Any]]] = [(_LOGGED[key], {})]
        if {"run_name", "config", "created_at"} <= config_columns:
            queries.append((_CONFIGS[key], {}))
        logged, *config_rows = read_foreign(file, queries)
    except InvalidValue as e:
        raise InvalidValue(
            f"{path} is not a trackio project: {str(e).removeprefix(f'{file}: ')}"
        ) from None
    configs = {}
    bad_configs = set()
    for run, config, created in (config_rows or [[]])[0]:
        value = _json(config)
        if value is None:
            bad_configs.add(run)
        configs[run] = (value or {}, created)
    rows: dict[Any, list[tuple[Any, ...]]] = {}
    names = {}
    for run, name, step, stamp, values in logged:
        rows.setdefault(run, []).append((step, stamp, values))
        names[run] = name
    runs = []
    for run in sorted(set(rows) | set(configs), key=lambda r: _first(rows.get(r), configs.get(r))):
        config, created = configs.get(run, ({}, None))
        logged = rows.get(run, [])
        times = [t for t in (_time(stamp) for _, stamp, _ in logged) if t is not None]
        own = {k: v for k, v in config.items() if not k.startswith("_")}
        theirs = {k[1:].lower(): v for k, v in config.items() if k.startswith("_")}
        name = names.get(run)
        source = SourceRun(
            source=SOURCE,
            key=f"{project}/{run}",
            experiment=experiment or project,
            created=_time(created),
            started=min(times, default=None) or _time(created),
            ended=max(times, default=None),
            comment=None if name is None else str(name),
            args=own,
            extras={"file": str(file), "project": project, "name": name, **theirs},
        )
        source.points = lambda logged=logged, skipped=source.skipped: _points(logged, skipped)  # type: ignore[misc]
        if run in bad_configs:
            source.skipped.append("a run's config that is no JSON object")
        runs.append(source)
    return runs


def _first(logged: list[Any] | None, config: Any) -> str:
    stamps = [stamp for _, stamp, _ in logged or ()] + [config[1] if config else None]
    return min((s for s in stamps if isinstance(s, str)), default="")


def _json(data: Any) -> dict[str, Any] | None:
    """A JSON object of the file (its ``"NaN"``/``"Infinity"`` text as floats), or None
    for anything else: not JSON, not an object, nested too deeply."""
    if data is None:
        return {}
    try:
        value = json.loads(data)
    except (ValueError, TypeError, RecursionError):  # (UnicodeDecodeError is a ValueError)
        return None
    if not isinstance(value, dict):
        return None
    return {k: _SPECIAL.get(v, v) if isinstance(v, str) else v for k, v in value.items()}


def _time(stamp: Any) -> datetime | None:
    if not isinstance(stamp, str):
        return None
    try:
        when = datetime.fromisoformat(stamp)
    except ValueError:  # (an ISO time, as trackio writes; anything else is no time)
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _points(logged: list[tuple[Any, ...]], skipped: list[str]) -> Iterator[Point]:
    for step, stamp, data in logged:
        values = _json(data)
        if values is None:
            skipped.append("a metrics row that is no JSON object")
            continue
        if isinstance(step, bool) or not isinstance(step, int):
            skipped.append(f"a metrics row whose step is no integer ({type(step).__name__})")
            continue
        when = _time(stamp)
        wall = None if when is None else when.timestamp()
        for name, value in values.items():
            yield name, step, value, wall
