"""Through a real PgBouncer (the Debian package) in transaction pooling.

The fixture starts PgBouncer from the test with an ini file of its own, listening on the
loopback address, in front of a fresh database of the test server. It switches to an
unprivileged user when started as root (PgBouncer refuses to run as root). Where the
package is missing, these tests are skipped by name; under CI they fail instead.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ENGINES, env_for, pg_admin, pg_conninfo

import sqltrack as st
from sqltrack import Client, ConfigError

pytestmark = pytest.mark.slow  # each test starts a PgBouncer and real processes

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _unprivileged_user() -> str | None:
    """Who PgBouncer runs as when we are root: the test server's user, else nobody."""
    if os.geteuid() != 0:
        return None
    for name in ("embedded_postgres", "postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    return None


@pytest.fixture
def pgbouncer() -> Iterator[dict[str, Any]]:
    """Client parameters of a PgBouncer (pool_mode=transaction, 4 server connections)
    in front of a fresh database; the database is dropped afterwards."""
    if "postgres" not in ENGINES:
        pytest.skip("PgBouncer needs the PostgreSQL half of the suite (SQLTRACK_TEST_ENGINES)")
    if not os.path.exists(PGBOUNCER):
        reason = "PgBouncer is not installed (Debian package pgbouncer; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    server = pg_conninfo()
    dbname = f"bouncer_{uuid.uuid4().hex[:10]}"
    with pg_admin() as admin:
        admin.execute(f'CREATE DATABASE "{dbname}"')
    folder = Path(tempfile.mkdtemp(prefix="sqltrack-pgbouncer-"))
    user = _unprivileged_user()
    port = _free_port()
    target = " ".join(
        f"{k}={server[k]}" for k in ("host", "port", "user", "password") if server.get(k)
    )
    (folder / "users.txt").write_text(f'"{server["user"]}" ""\n')
    (folder / "pgbouncer.ini").write_text(
        f"[databases]\n{dbname} = {target} dbname={dbname}\n\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {folder}/users.txt\n"
        "pool_mode = transaction\ndefault_pool_size = 4\nmax_client_conn = 500\n"
        f"logfile = {folder}/pgbouncer.log\npidfile = {folder}/pgbouncer.pid\n"
    )
    if user is not None:
        shutil.chown(folder, user)
        for path in folder.iterdir():
            shutil.chown(path, user)
    command = [PGBOUNCER, *(["-u", user] if user else []), str(folder / "pgbouncer.ini")]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log = (folder / "pgbouncer.log").read_text(errors="replace")
                    pytest.fail(f"PgBouncer did not start: {log[-2000:]}")
                time.sleep(0.05)
        yield {
            "engine": "postgres",
            "host": "127.0.0.1",
            "port": port,
            "dbname": dbname,
            "user": server["user"],
            "pgbouncer": "true",
        }
    finally:
        process.terminate()
        process.wait(timeout=10)
        with pg_admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        shutil.rmtree(folder, ignore_errors=True)


JOB = """
import sys
import sqltrack as st
client = st.Client()
run = st.Experiment(client, name="bounced").get_run()
with run.track(buffered=sys.argv[1] == "buffered"):
    for step in range(int(sys.argv[2])):
        run.add_metrics({"loss": 1.0 / (step + 1), "step_again": step}, step=step)
print(run.id, flush=True)
"""


def test_many_jobs_through_transaction_pooling(pgbouncer: dict[str, Any]) -> None:
    """Sync and buffered jobs, 6x as many as PgBouncer's server connections, each past
    psycopg's prepare threshold: every job finishes with every row, exactly once."""
    st.setup(Client({}, **pgbouncer))
    jobs = [
        subprocess.Popen(
            [sys.executable, "-c", JOB, mode, "40"],
            env=env_for(pgbouncer),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for mode in ("sync", "buffered")
        for _ in range(12)
    ]
    results = [job.communicate(timeout=120) for job in jobs]
    for job, (_, err) in zip(jobs, results, strict=True):
        assert job.returncode == 0, err
    client = Client({}, **pgbouncer)
    assert client.execute("SELECT status, count(*) FROM runs GROUP BY status") == [
        ("COMPLETED", 24)
    ]
    rows = client.execute("SELECT count(*), count(DISTINCT (run_id, step)) FROM metrics")
    assert rows == [(24 * 40, 24 * 40)]


def test_prepared_statements_break_transaction_pooling(pgbouncer: dict[str, Any]) -> None:
    """Why pgbouncer=true matters: with psycopg's prepared statements, jobs that share
    PgBouncer's server connections fail (the failure of issue 9, reproduced)."""
    st.setup(Client({}, **pgbouncer))
    params = {**pgbouncer, "pgbouncer": "false"}
    jobs = [
        subprocess.Popen(
            [sys.executable, "-c", JOB, "sync", "40"],
            env={**env_for(params), "SQLTRACK_DSN_RECONNECT_TIMEOUT": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    errors = [job.communicate(timeout=120)[1] for job in jobs]
    assert any("prepared statement" in err for err in errors), errors


def test_schema_is_refused_behind_pgbouncer() -> None:
    with pytest.raises(ConfigError, match="ALTER ROLE alice SET search_path = proj"):
        Client({}, engine="postgres", user="alice", pgbouncer="yes", schema="proj")
    with pytest.raises(ConfigError, match="invalid pgbouncer 'maybe'"):
        Client({}, engine="postgres", pgbouncer="maybe")
    with pytest.raises(ConfigError, match="invalid prepare_threshold"):
        Client({}, engine="postgres", prepare_threshold="-2")
