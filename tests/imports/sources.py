"""What the import tests share: the runs by their source's id, a metric's history back
from sqltrack, the tables' row counts (a tool is imported by conftest's ``need``)."""

from __future__ import annotations

from typing import Any

from sqltrack import Client, json_value, read_metrics


def imported(client: Client) -> dict[str, dict[str, Any]]:
    """Every run of the database by its source's id: its columns, args, tags and extras
    decoded."""
    rows = client.query(
        "SELECT r.id, e.name, r.status, r.comment, r.tags, r.args, r.extras, r.time_started, "
        "r.time_updated FROM runs r JOIN experiments e ON e.id = r.experiment_id"
    )
    runs = {}
    for run_id, experiment, status, comment, tags, args, extras, started, updated in rows:
        extras = json_value(extras) or {}
        runs[extras["imported"]["id"]] = {
            "id": run_id, "experiment": experiment, "status": status, "comment": comment,
            "tags": sorted(json_value(tags) or {}), "args": json_value(args) or {},
            "imported": extras["imported"],
            "started": client.engine.python_value(started, "datetime"),
            "updated": client.engine.python_value(updated, "datetime"),
        }  # fmt: skip
    return runs


def history(client: Client, run_id: int, name: str) -> list[tuple[int, float, Any]]:
    """``[(step, progress, value)]`` of one metric of a run, from either storage."""
    names, rows = read_metrics(client, run_id, [name])
    at = names.index(name)
    return [(row[1], row[2], row[at]) for row in rows if row[at] is not None]


def counts(client: Client) -> dict[str, int]:
    """How many rows the tables an import writes hold."""
    tables = ("experiments", "runs", "metrics", "artifacts", "run_links", "run_summaries")
    return {t: client.query(f"SELECT count(*) FROM {t}")[0][0] for t in tables}
