"""What the integration tests share: a framework is imported by name, or the test says
why it cannot run (and fails under CI, where every framework is installed)."""

from __future__ import annotations

from typing import Any

from conftest import need  # noqa: F401 (the tests import it from here)

from sqltrack import Client, json_value


def only_run(client: Client, experiment: str) -> tuple[int, str, dict[str, Any]]:
    """``(id, status, args)`` of the one run of ``experiment`` (fails if there are others)."""
    rows = client.query(
        "SELECT runs.id, runs.status, runs.args FROM runs JOIN experiments"
        " ON experiments.id = runs.experiment_id WHERE experiments.name = :name",
        {"name": experiment},
    )
    assert len(rows) == 1, f"{len(rows)} runs of {experiment}, not one"
    run_id, status, args = rows[0]
    return run_id, status, json_value(args) or {}


def series(client: Client, run_id: int, name: str) -> dict[int, Any]:
    """``{step: value}`` of one metric of a run (from either storage)."""
    from sqltrack import read_metrics

    names, rows = read_metrics(client, run_id, [name])
    at = names.index(name)
    return {row[1]: row[at] for row in rows if row[at] is not None}
