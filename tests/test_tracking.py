"""Tracking a run: start, stop, track(), the heartbeat, synchronous metrics; on both engines."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

import pytest
from conftest import q, run_row, run_time

from sqltrack import Client, InvalidValue, NotFound, Run


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
        buffer = run._buffer
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
