"""Through a real PgBouncer (the Debian package) in transaction pooling.

The fixture starts PgBouncer from the test with an ini file of its own, listening on the
loopback address, in front of a fresh database of the test server. It switches to an
unprivileged user when started as root (PgBouncer refuses to run as root). Where the
package is missing, these tests are skipped by name; under CI they fail instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import ENGINES, ROOT, env_for, pg_admin, pg_conninfo

import sqltrack as st
from sqltrack import Client, ConfigError

pytestmark = pytest.mark.slow  # each test starts a PgBouncer and real processes

sys.path.insert(0, str(ROOT / "bench"))
from servers import PGBOUNCER, PgBouncer  # noqa: E402


@pytest.fixture(params=["transaction"])
def pgbouncer(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """Client parameters of a PgBouncer (pool_mode=transaction unless parametrized
    otherwise, 4 server connections) in front of a fresh database; the database is
    dropped afterwards."""
    if "postgres" not in ENGINES:
        pytest.skip("PgBouncer needs the PostgreSQL half of the suite (SQLTRACK_TEST_ENGINES)")
    if not os.path.exists(PGBOUNCER):
        reason = "PgBouncer is not installed (Debian package pgbouncer; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    dbname = f"bouncer_{uuid.uuid4().hex[:10]}"
    with pg_admin() as admin:
        admin.execute(f'CREATE DATABASE "{dbname}"')
    try:
        bouncer = PgBouncer(pg_conninfo(), dbname, pool_size=4, pool_mode=request.param)
    except RuntimeError as e:
        pytest.fail(str(e))
    try:
        yield bouncer.params
    finally:
        bouncer.cleanup()
        with pg_admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


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


def _all_jobs_finish(params: dict[str, Any], per_mode: int) -> None:
    """Start ``per_mode`` sync and as many buffered jobs of 40 steps through ``params``;
    each finishes with every row, exactly once."""
    st.setup(Client({}, **params))
    jobs = [
        subprocess.Popen(
            [sys.executable, "-c", JOB, mode, "40"],
            env=env_for(params),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for mode in ("sync", "buffered")
        for _ in range(per_mode)
    ]
    results = [job.communicate(timeout=120) for job in jobs]
    for job, (_, err) in zip(jobs, results, strict=True):
        assert job.returncode == 0, err
    client = Client({}, **params)
    assert client.execute("SELECT status, count(*) FROM runs GROUP BY status") == [
        ("COMPLETED", len(jobs))
    ]
    rows = client.execute("SELECT count(*), count(DISTINCT (run_id, step)) FROM metrics")
    assert rows == [(len(jobs) * 40, len(jobs) * 40)]


def test_many_jobs_through_transaction_pooling(pgbouncer: dict[str, Any]) -> None:
    """Sync and buffered jobs, 6x as many as PgBouncer's server connections, each past
    psycopg's prepare threshold."""
    _all_jobs_finish(pgbouncer, 12)


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


@pytest.mark.parametrize("pgbouncer", ["session"], indirect=True)
def test_session_pooling_needs_no_setting(pgbouncer: dict[str, Any]) -> None:
    """Session pooling: prepared statements are fine (pgbouncer=false); jobs beyond the
    pool's 4 server connections wait for one and all finish."""
    _all_jobs_finish({**pgbouncer, "pgbouncer": "false"}, 5)
