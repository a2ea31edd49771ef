"""The benchmark scripts still run (tiny sizes; the figures are in docs/benchmarks.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
from conftest import ENGINES, ROOT

sys.path.insert(0, str(ROOT / "bench"))
from servers import PGBOUNCER

pytestmark = pytest.mark.slow  # every test here starts the bench scripts


def _dsn(db_params: dict[str, Any]) -> list[str]:
    if db_params["engine"] == "sqlite":
        return ["--engine", "sqlite"]
    from psycopg.conninfo import make_conninfo

    keys = ("host", "port", "user", "dbname", "password")
    dsn = make_conninfo(
        **{k: db_params[k] for k in keys if k in db_params},
        options=f"-c search_path={db_params['schema']}",
    )
    return ["--engine", "postgres", "--dsn", dsn]


def _run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "ignore", str(ROOT / "bench" / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_all_benchmarks_run(db_params: dict[str, Any]) -> None:
    done = _run("all.py", "--quick", *_dsn(db_params))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = done.stdout.split("## Summary")[1]
    for figure in [
        "sync per step, ratio",
        "sync per step at step 2,100",
        "buffered: caller's time",
        "buffered: throughput",
        "one run into a DataFrame",
        "bytes per metric value",
        "narrow: 25,000-value step",
        "metrics_long mmlu_% mean",
        "import sqltrack",
        "gc",
        "lightning: SqltrackLogger's fit over no logger's",
        "ui: runs endpoint, 50 runs (ms)",
        "ui: 2 curves of 3000 steps at 1000 points (ms)",
        "ui load: viewer requests failed, 3 viewers",
        "import mlflow {engine}: sqltrack's writes (values/s)",  # mlflow is in the test extra
    ]:
        figure = figure.format(engine=db_params["engine"])
        assert f"| {figure}" in summary, figure
    lab = "| lab: buffered run, writer / owner"  # (PostgreSQL only: SQLite has no roles)
    assert (lab in summary) == (db_params["engine"] == "postgres")


def test_stress_runs(engine: str) -> None:
    done = _run("stress.py", "--engine", engine, "--processes", "3", "--rows", "20")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "jobs failed 0; acknowledged 60; lost 0 before sync, 0 after; doubled 0" in done.stdout


# CI-sized versions of the cluster figures in the README (bench/stress.py, full size):
# more jobs than the server takes, PgBouncer, restarts of both, an outage.
SCENARIOS = {
    "crowd-sync-postgres-restart": [
        "--processes", "60", "--max-connections", "15", "--rows", "60",
        "--step-seconds", "0.02", "--restart-postgres", "3",
    ],
    "crowd-buffered-pgbouncer-restarts": [
        "--processes", "60", "--max-connections", "15", "--pgbouncer", "--pool-size", "5",
        "--buffered", "--rows", "60", "--step-seconds", "0.02",
        "--restart-pgbouncer", "3", "--restart-postgres", "5",
    ],
    "crowd-sync-pgbouncer": [
        "--processes", "60", "--max-connections", "15", "--pgbouncer", "--pool-size", "5",
        "--rows", "60", "--step-seconds", "0.02",
    ],
    "outage": [
        "--processes", "12", "--max-connections", "15", "--rows", "100",
        "--step-seconds", "0.05", "--outage-at", "2", "--outage", "6",
    ],
}  # fmt: skip


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_stress_cluster_scenarios(scenario: str) -> None:
    if "postgres" not in ENGINES:
        pytest.skip("these scenarios need PostgreSQL (SQLTRACK_TEST_ENGINES)")
    args = SCENARIOS[scenario]
    if "--pgbouncer" in args and not os.path.exists(PGBOUNCER):
        reason = "PgBouncer is not installed (Debian package pgbouncer; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    done = _run("stress.py", *args)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "jobs failed 0;" in done.stdout and "doubled 0;" in done.stdout
    assert ", 0 after;" in done.stdout  # nothing lost once the spools are pushed
    if "--restart-postgres" in args or "--outage" in args:
        assert "events: none" not in done.stdout  # the restart or outage did happen
