"""Tracking a run: start, stop, track(), the heartbeat, synchronous metrics; on both engines."""

from __future__ import annotations

import json
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from conftest import metric_columns, pg_admin, q, refuse_step, run_row, run_time

import sqltrack as st
from sqltrack import (
    Client,
    ConnectionFailed,
    ConnectionLost,
    DatabaseError,
    Experiment,
    InvalidValue,
    NotFound,
    PermissionDenied,
    Run,
    SQLTrackWarning,
)
from sqltrack._live.spool import spool_dir, spool_files


def test_start_and_stop(client: Client, run: Run) -> None:
    assert run.start() is run
    status, started, updated = run_row(client, run.id, "status, time_started, time_updated")
    assert status == "RUNNING" and started is not None and updated is not None
    assert run.stop() is run
    assert run_row(client, run.id, "status") == ("COMPLETED",)
    run.start(started=None)
    assert run_row(client, run.id, "time_started") == (started,)  # None: kept
    run.stop("TIMEOUT", updated=None)
    assert run_row(client, run.id, "status, time_updated")[0] == "TIMEOUT"


def test_track_normal(client: Client, run: Run) -> None:
    with run.track() as tracked:
        assert tracked is run
        assert run_row(client, run.id, "status") == ("RUNNING",)
        run.add_metrics({"loss": 0.5}, step=1)
    assert run_row(client, run.id, "status") == ("COMPLETED",)
    assert q(client, "SELECT step, loss FROM metrics") == [(1, 0.5)]


@pytest.mark.parametrize(
    "error, status", [(ValueError, "FAILED"), (KeyboardInterrupt, "CANCELLED")]
)
def test_track_error(client: Client, run: Run, error: type[BaseException], status: str) -> None:
    with pytest.raises(error), run.track():
        run.add_metrics({"loss": 0.5}, step=1)
        raise error()
    assert run_row(client, run.id, "status") == (status,)
    assert q(client, "SELECT step, loss FROM metrics") == [(1, 0.5)]  # logged work is kept


def test_track_custom_statuses_and_outer_block(client: Client, run: Run) -> None:
    with pytest.raises(RuntimeError), client, run.track(exception="NODE_FAIL"):
        run.add_metrics({"loss": 0.5}, step=1)
        raise RuntimeError
    # the outer block rolled back the pending work, but the status was committed
    assert run_row(client, run.id, "status") == ("NODE_FAIL",)
    with run.track(normal="STOPPED"):
        pass
    assert run_row(client, run.id, "status") == ("STOPPED",)
    with pytest.raises(InvalidValue), run.track(normal="FINISHED"):
        pass


def test_track_holds_one_connection_and_commits_every_step(
    client: Client, run: Run, db_params: dict[str, Any]
) -> None:
    observer = Client({}, **db_params)
    with run.track():
        connection = client._conn
        for step in range(3):
            run.add_metrics({"loss": 1.0 / (step + 1)}, step=step)
            assert client._conn is connection  # no reconnect per step
            # committed at once: another connection sees the step
            assert q(observer, "SELECT count(*) FROM metrics") == [(step + 1,)]
    assert not client.connected  # closed when the run ends


def test_heartbeat_is_throttled(client: Client, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Run, "heartbeat_seconds", 3600.0)
    run.add_metrics({"loss": 1.0}, step=0)
    first = run_row(client, run.id, "time_updated")[0]
    assert first is not None
    run.add_metrics({"loss": 0.5}, step=1)
    assert run_row(client, run.id, "time_updated")[0] == first  # within the interval: no update
    fixed = datetime(2030, 1, 1, tzinfo=timezone.utc)
    run.add_metrics({"loss": 0.25}, step=2, updated=fixed)  # explicit: always written
    assert run_time(client, run.id, "time_updated") == fixed
    monkeypatch.setattr(Run, "heartbeat_seconds", 0.0)
    run.add_metrics({"loss": 0.2}, step=4, updated=None)  # None: left alone
    assert run_time(client, run.id, "time_updated") == fixed
    monkeypatch.setattr(Run, "heartbeat_seconds", 0.0)
    run.add_metrics({"loss": 0.1}, step=3)
    assert run_time(client, run.id, "time_updated") != fixed


def test_a_slow_loop_gives_its_server_connection_back(client: Client, run: Run) -> None:
    """Steps further apart than release_seconds: between them no connection is held on
    a server (SQLite keeps its file open); fast steps keep the connection."""
    keeps_slow = {"sqlite": True, "postgres": False}[client.engine.name]
    run.release_seconds = 5.0  # (a loaded machine may take 50 ms between two steps)
    with run.track():
        run.add_metrics({"loss": 1.0}, step=0)
        run.add_metrics({"loss": 1.0}, step=1)
        assert client.connected  # fast: held from start() on
        run.release_seconds = 0.05
        time.sleep(0.1)
        run.add_metrics({"loss": 1.0}, step=2)
        assert client.connected is keeps_slow
        run.release_seconds = 5.0
        run.add_metrics({"loss": 1.0}, step=3)  # connects again, and keeps it
        assert client.connected
    assert q(client, "SELECT count(*) FROM metrics WHERE run_id = ?", run.id) == [(4,)]


def test_the_buffered_writer_gives_its_connection_back_when_idle(client: Client, run: Run) -> None:
    keeps_idle = {"sqlite": True, "postgres": False}[client.engine.name]
    with run.track(buffered=True):
        buffer = run._delivery.buffer
        assert buffer is not None
        run.add_metrics({"loss": 1.0}, step=0)
        run.flush()
        deadline = time.monotonic() + 5
        while buffer._client.connected and not keeps_idle and time.monotonic() < deadline:
            time.sleep(0.01)
        assert buffer._client.connected is keeps_idle
        run.add_metrics({"loss": 2.0}, step=1)
    assert q(client, "SELECT count(*) FROM metrics WHERE run_id = ?", run.id) == [(2,)]


def test_a_run_deleted_while_it_logs_is_not_found(client: Client, run: Run) -> None:
    """The synchronous path's ready statement (used from the second step with the same
    names on) reports a missing run like the first step does."""
    with pytest.raises(NotFound, match=f"run {run.id} does not exist"), run.track():
        run.add_metrics({"loss": 1.0}, step=0)
        run.add_metrics({"loss": 0.5}, step=1)  # the ready statement, from here on
        q(client, "DELETE FROM runs WHERE id = ?", run.id)
        run.add_metrics({"loss": 0.25}, step=2)


# -- errors that retrying cannot fix ------------------------------------------------------


def _steps(client: Client, run: Run) -> list[int]:
    return [
        r[0] for r in q(client, "SELECT step FROM metrics WHERE run_id = ? ORDER BY step", run.id)
    ]


def test_a_permanent_error_raises_at_once_inside_track(client: Client, run: Run) -> None:
    """The database refuses a step for good: the call raises at once with one line
    naming the cause (not "did not answer", not handed over and spooled), and the run
    ends FAILED."""
    refuse_step(client, 3)
    started = time.monotonic()
    with pytest.raises(DatabaseError, match="this step is refused") as info, run.track():
        for step in range(6):
            run.add_metrics({"loss": 1.0 / (step + 1)}, step=step)
    assert time.monotonic() - started < run.handover_seconds  # never waited for
    assert "\n" not in str(info.value) and "not retried" in str(info.value)
    assert _steps(client, run) == [0, 1, 2]
    assert run_row(client, run.id, "status") == ("FAILED",)
    assert spool_files() == []


def test_a_refused_step_in_the_background_is_set_aside_and_the_rest_arrives(
    client: Client, run: Run, caplog: pytest.LogCaptureFixture
) -> None:
    refuse_step(client, 3)
    with run.track(buffered=True):
        for step in range(10):
            run.add_metrics({"loss": 1.0 / (step + 1)}, step=step)
    assert _steps(client, run) == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    assert run_row(client, run.id, "status") == ("COMPLETED",)
    assert spool_files() == []
    warnings = [r.getMessage() for r in caplog.records if "cannot be written" in r.getMessage()]
    assert len(warnings) == 1 and "this step is refused" in warnings[0]
    (kept,) = spool_dir().glob("*.refused.jsonl")
    assert str(kept) in warnings[0]
    (record,) = [json.loads(line) for line in kept.read_text().splitlines()]
    assert record["data"] == {"step": 3, "progress": 0.0, "metrics": {"loss": 0.25}}


def test_a_step_too_big_for_a_row(client: Client, run: Run, before_v010: None) -> None:
    """PostgreSQL before schema v010: 1,100 values in one step make a row too big for a
    page. Synchronous: one clear line at the call; buffered: set aside, every later step
    and the status arrive (before: spooled for ever, the run left RUNNING). Since v010
    such a step goes to the narrow storage (tests/write/test_narrow.py)."""
    if client.engine.name != "postgres":
        pytest.skip("SQLite has no row size limit below 1 GB")
    wide = {f"m{i:04d}": float(i) for i in range(1100)}
    with pytest.raises(DatabaseError, match="row is too big") as info, run.track():
        run.add_metrics({"loss": 1.0}, step=0)
        run.add_metrics(wide, step=1)
    assert "SQLSTATE 54000" in str(info.value)
    assert run_row(client, run.id, "status") == ("FAILED",)
    other = Run(client, run.experiment_id)
    with other.track(buffered=True):
        other.add_metrics({"loss": 1.0}, step=0)
        other.add_metrics(wide, step=1)
        other.add_metrics({"loss": 0.5}, step=2)
    assert _steps(client, other) == [0, 2]
    assert run_row(client, other.id, "status") == ("COMPLETED",)
    assert spool_files() == []


def test_a_role_that_may_not_add_columns_logs_new_names_narrow(
    client: Client, other_role: dict[str, Any]
) -> None:
    """A second member of the lab logs a new metric: only the table's owner may add a
    column ("must be owner of table metrics", which failed the run before), so the name
    goes to the narrow storage; a name that is a column already stays a column."""
    client.execute("ALTER TABLE metrics ADD COLUMN known DOUBLE PRECISION")
    bob = Client({}, **other_role)
    run = Experiment(bob, name="bobs").get_run()
    with run.track():
        run.add_metrics({"brand_new": 1.0, "known": 0.5}, step=0)
    buffered = Experiment(bob, name="bobs").get_run()
    with buffered.track(buffered=True):
        for step in range(50):  # (a batch the writer copies)
            buffered.add_metrics({"known": 1.0, "other_new": float(step)}, step=step)
    for r, steps in ((run, 1), (buffered, 50)):
        assert run_row(client, r.id, "status") == ("COMPLETED",)
        assert len(st.read_metrics(client, r.id)[1]) == steps
    assert "brand_new" not in metric_columns(client) and "other_new" not in metric_columns(client)
    narrow = q(client, "SELECT count(*) FROM metric_points")[0][0]
    assert narrow == 1 + 50


@pytest.mark.parametrize(
    "call",
    [
        "log_artifact_step",
        "log_sample_step",
        "artifact_name_nul",
        "artifact_uri_nul",
    ],
)
def test_bad_input_of_other_calls_raises_at_once_inside_track(
    client: Client, run: Run, tmp_path: Path, call: str
) -> None:
    """Each of these hung inside track() (retried without end as an outage)."""
    file = tmp_path / "weights.bin"
    file.write_bytes(b"w")
    calls = {
        "log_artifact_step": lambda: run.log_artifact(file, step=2**63),
        "log_sample_step": lambda: run.log_sample(2**63, "a prompt", {"x": 1}),
        "artifact_name_nul": lambda: run.log_artifact(file, name="a\x00b"),
        "artifact_uri_nul": lambda: run.log_artifact("s3://bucket/a\x00b"),
    }
    started = time.monotonic()
    with pytest.raises(InvalidValue), run.track():
        calls[call]()
    assert time.monotonic() - started < 2


def test_a_role_without_update_gets_one_line_at_once(
    client: Client, run: Run, other_role: dict[str, Any]
) -> None:
    with pg_admin() as conn:
        schema = client.engine.params["schema"]
        conn.execute(f'REVOKE UPDATE ON "{schema}".runs FROM "{other_role["user"]}"')
    bob = Client({}, **other_role)
    theirs = Run(bob, run.experiment_id, run.id)
    started = time.monotonic()
    with pytest.raises(PermissionDenied, match="permission denied for table runs"):
        theirs.add_tags("x")
    with pytest.raises(PermissionDenied), theirs.track():
        pass
    assert time.monotonic() - started < 2


def test_a_wait_inside_track_has_a_deadline(
    client: Client, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run's other calls wait out an outage inside track(), for ``wait_seconds``."""
    monkeypatch.setattr(Run, "wait_seconds", 0.5)
    monkeypatch.setattr(Run, "wait_pause_seconds", 0.1)

    def down(*args: Any) -> None:
        raise ConnectionFailed("no server")

    with run.track():
        monkeypatch.setattr("sqltrack._live.columns.run_add_tags", down)
        started = time.monotonic()
        with pytest.raises(ConnectionLost, match="did not take .* within 0.5 s"):
            run.add_tags("x")
        assert 0.5 <= time.monotonic() - started < 1.5


# -- the first hour: silent traps ----------------------------------------------------------


def test_calls_without_a_step_that_overwrite_each_other_warn_once(client: Client, run: Run) -> None:
    """add_metrics without step= five times left one row, holding the last value, without
    a word; the spec's default (0) stays, and a warning says what happened, once."""
    with pytest.warns(SQLTrackWarning, match=r"without step= logged loss again at step 0") as w:
        for i in range(5):
            run.add_metrics({"loss": float(i)})
    assert len(w) == 1
    assert q(client, "SELECT step, loss FROM metrics WHERE run_id = ?", run.id) == [(0, 4.0)]
    other = Run(client, run.experiment_id)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        other.add_metrics({"loss": 1.0})  # once: nothing replaced
        other.add_metrics({"acc": 0.5})  # other names at the same step: nothing replaced
        other.add_metrics({"loss": 1.0}, step=0)  # given a step: the user said so
        for step in range(3):
            other.add_metrics({"loss": 1.0}, step=step)


def test_stop_without_start_records_a_start(client: Client, run: Run) -> None:
    """stop() of a run that was never started recorded COMPLETED and no start time."""
    run.add_metrics({"loss": 1.0}, step=0)
    run.stop()
    created, started = run_row(client, run.id, "time_created, time_started")
    assert started is not None and started == created


def test_a_steady_step_is_one_statement(client: Client, run: Run) -> None:
    """Inside track(), once a step's names are known, a step is its upsert alone (SQLite:
    in autocommit mode, no BEGIN or COMMIT to parse; PostgreSQL: one execute and a
    commit): what keeps sqltrack within 1.4x of the raw driver (bench/bench_sync.py)."""
    if client.engine.name != "sqlite":
        pytest.skip("counted with SQLite's trace callback (PostgreSQL has the same path)")
    statements: list[str] = []
    with run.track():
        run.add_metrics({"loss": 1.0, "acc": 0.5}, step=0)  # learns the columns
        run.add_metrics({"loss": 1.0, "acc": 0.5}, step=1)
        conn = client._conn  # the connection the run holds
        conn.set_trace_callback(statements.append)
        for step in range(2, 12):
            run.add_metrics({"loss": 1.0 / step, "acc": 0.5}, step=step)
        conn.set_trace_callback(None)
    assert len(statements) == 10, statements
    assert all(s.startswith("INSERT INTO metrics") for s in statements), statements
    assert _steps(client, run) == list(range(12))
