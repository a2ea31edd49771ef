"""The benchmark scripts still run (tiny sizes; the figures are in docs/benchmarks.md)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from conftest import ROOT

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
        "import sqltrack",
    ]:
        assert f"| {figure}" in summary, figure


def test_stress_runs(db_params: dict[str, Any]) -> None:
    done = _run("stress.py", "--processes", "3", "--rows", "20", *_dsn(db_params))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "lost 0, doubled 0" in done.stdout
