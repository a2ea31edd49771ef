"""Several OS processes against one database at the same moment, on both engines."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import env_for, json_column, pg_admin, q

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
    assert lines.count("applied: sqltrack/v001_base.sql") == 1
    assert lines.count("applied: user.sql") == 1
    assert lines.count("already applied: user.sql") == SETUP_PROCESSES - 1
    assert q(empty_client, "SELECT count(*) FROM sqltrack_scripts") == [(2,)]
    if new_schema:
        with pg_admin() as conn:
            conn.execute(f'DROP SCHEMA "{db_params["schema"]}" CASCADE')
