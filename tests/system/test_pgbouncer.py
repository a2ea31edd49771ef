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
from sqltrack._live.spool import spool_files

pytestmark = pytest.mark.slow  # each test starts a PgBouncer and real processes

sys.path.insert(0, str(ROOT / "bench"))
from servers import PGBOUNCER, PgBouncer  # noqa: E402


def _need_pgbouncer() -> None:
    """Skip (fail under CI) where the test cannot start a PgBouncer, saying why."""
    if "postgres" not in ENGINES:
        pytest.skip("PgBouncer needs the PostgreSQL half of the suite (SQLTRACK_TEST_ENGINES)")
    if not os.path.exists(PGBOUNCER):
        reason = "PgBouncer is not installed (Debian package pgbouncer; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(params=["transaction"])
def pgbouncer(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """Client parameters of a PgBouncer (pool_mode=transaction unless parametrized
    otherwise, 4 server connections) in front of a fresh database; the database is
    dropped afterwards."""
    _need_pgbouncer()
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


def test_a_transaction_pooler_is_recognised_by_its_errors(pgbouncer: dict[str, Any]) -> None:
    """Without pgbouncer=true, psycopg's prepared statements meet other clients' on
    PgBouncer's shared server connections (42P05, 26000): sqltrack switches to
    unprepared statements at once, retries, and says so once per job. Every job
    finishes with every row; nothing is left to sync (before: 8 % of the rows were
    spooled, and `sqltrack sync` failed on every spool with the same error)."""
    defaults = {k: v for k, v in pgbouncer.items() if k != "pgbouncer"}
    st.setup(Client({}, **pgbouncer))
    jobs = [
        subprocess.Popen(
            [sys.executable, "-c", JOB, mode, "60"],
            env=env_for(defaults),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for mode in ("sync", "buffered")
        for _ in range(6)
    ]
    results = [job.communicate(timeout=120) for job in jobs]
    for job, (_, err) in zip(jobs, results, strict=True):
        assert job.returncode == 0, err
        assert err.count("looks like a transaction pooler") <= 1, err
        assert "did not answer" not in err and "spool" not in err, err
    assert any("looks like a transaction pooler" in err for _, err in results)
    client = Client({}, **pgbouncer)
    assert client.execute("SELECT status, count(*) FROM runs GROUP BY status") == [
        ("COMPLETED", len(jobs))
    ]
    rows = client.execute("SELECT count(*), count(DISTINCT (run_id, step)) FROM metrics")
    assert rows == [(len(jobs) * 60, len(jobs) * 60)]
    assert spool_files() == []


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


LAB_JOB = """
import sys
import sqltrack as st
client = st.Client()
run = st.Experiment(client, name="lab").get_run()
with run.track(buffered=sys.argv[1] == "buffered"):
    for step in range(40):
        run.add_metrics({"loss": 1.0 / (step + 1), "train/acc": 0.5}, step=step)
    try:
        st.Run(client, run.experiment_id, int(sys.argv[2])).add_tags("mine")
        print("tagged another role's run", file=sys.stderr)
    except st.PermissionDenied:
        pass
print(run.id, flush=True)
"""


def test_a_labs_roles_through_one_pgbouncer_each_own_their_runs() -> None:
    """PgBouncer with an entry per role (each a pool of its own), transaction pooling:
    every job's runs belong to the role it connected as, and row-level security, which
    needs no session state, holds through the pooler."""
    _need_pgbouncer()
    from sqltrack._admin.grants import grant

    tag = uuid.uuid4().hex[:8]
    dbname, roles = f"lab_{tag}", {"alice": f"alice_{tag}", "bob": f"bob_{tag}"}
    server = pg_conninfo()
    with pg_admin() as admin:
        admin.execute(f'CREATE DATABASE "{dbname}"')
        for role in roles.values():
            admin.execute(f'CREATE ROLE "{role}" LOGIN')
    owner = Client({}, engine="postgres", **{**server, "dbname": dbname})
    st.setup(owner)
    for role in roles.values():
        grant(owner, role, "writer", say=lambda line: None)
    bouncer = PgBouncer(server, dbname, pool_size=2, users=tuple(roles.values()))
    try:
        through = {n: {**bouncer.params, "user": r} for n, r in roles.items()}
        first = {
            n: st.Experiment(Client({}, **p), name="lab").get_run() for n, p in through.items()
        }
        other = {"alice": first["bob"].id, "bob": first["alice"].id}
        jobs = [
            (name, subprocess.Popen(
                [sys.executable, "-c", LAB_JOB, mode, str(other[name])], env=env_for(params),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            ))
            for name, params in through.items()
            for mode in ("sync", "buffered", "sync", "buffered")
        ]  # fmt: skip
        made = {}
        for name, job in jobs:
            out, err = job.communicate(timeout=120)
            assert job.returncode == 0 and not err.strip(), err
            made[int(out)] = roles[name]
        rows = owner.execute("SELECT id, created_by, status FROM runs WHERE tags = '{}'")
        got = {int(i): (who, status) for i, who, status in rows if int(i) in made}
        assert got == {i: (role, "COMPLETED") for i, role in made.items()}
        points = owner.execute("SELECT run_id, count(*) FROM metrics_long GROUP BY run_id")
        assert {int(r): n for r, n in points if int(r) in made} == {i: 80 for i in made}
    finally:
        bouncer.cleanup()
        with pg_admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
            for role in roles.values():
                admin.execute(f'DROP ROLE IF EXISTS "{role}"')
