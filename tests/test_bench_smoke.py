"""The benchmark scripts still run (tiny sizes; the figures are in docs/benchmarks.md)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from conftest import ROOT


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


@pytest.mark.parametrize(
    "script, args, expect",
    [
        ("bench_sync.py", ["--steps", "60", "--chunk", "20", "--long", "2100"], "normalized"),
        ("bench_buffered.py", ["--steps", "300"], "of raw"),
        ("bench_read.py", ["--steps", "100", "--repeat", "2"], "bytes per value"),
        ("stress.py", ["--processes", "3", "--rows", "20"], "lost 0, doubled 0"),
    ],
)
def test_bench_script_runs(
    db_params: dict[str, Any], script: str, args: list[str], expect: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-W", "ignore", str(ROOT / "bench" / script), *args, *_dsn(db_params)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert expect in done.stdout
