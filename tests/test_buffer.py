"""Buffered metrics (track(buffered=True)), on both engines."""

from __future__ import annotations

import os
import threading
import time
import warnings
from typing import Any

import pytest
from conftest import pg_admin, q

from sqltrack import Client, Experiment, InvalidMetricName, InvalidValue, NotFound, Run
from sqltrack.buffer import MetricsBuffer


@pytest.fixture
def run(client: Client) -> Run:
    return Experiment(client, name="buffered").get_run()


def _count(client: Client, run: Run) -> int:
    return int(q(client, "SELECT count(*) FROM metrics WHERE run_id = ?", run.id)[0][0])


def test_everything_is_written_in_order(
    client: Client, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(MetricsBuffer, "flush_seconds", 60.0)  # only flushes write
    with run.track(buffered=True):
        for step in range(500):
            run.add_metrics({"loss": 1.0 / (step + 1), "acc": step}, step=step)
        # the same key three times, with other names in between: the last value wins
        run.add_metrics({"a": 1.0}, step=1000)
        run.add_metrics({"a": 2.0, "b": 3.0}, step=1000)
        run.add_metrics({"a": 4.0}, step=1000)
        assert _count(client, run) == 0  # still queued
    assert _count(client, run) == 501
    assert q(client, "SELECT a, b FROM metrics WHERE step = 1000") == [(4.0, 3.0)]
    assert q(client, "SELECT sum(acc) FROM metrics WHERE step < 500") == [(sum(range(500)),)]
    assert q(client, "SELECT status FROM runs WHERE id = ?", run.id) == [("COMPLETED",)]
    assert q(client, "SELECT time_updated FROM runs WHERE id = ?", run.id)[0][0] is not None


def test_flush_makes_rows_visible(
    client: Client, run: Run, db_params: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(MetricsBuffer, "flush_seconds", 60.0)
    observer = Client({}, **db_params)
    with run.track(buffered=True):
        for step in range(10):
            run.add_metrics({"loss": 1.0}, step=step)
        assert run.flush() is run
        assert _count(observer, run) == 10


def test_writes_within_flush_seconds(
    client: Client, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(MetricsBuffer, "flush_seconds", 0.05)
    with run.track(buffered=True):
        run.add_metrics({"loss": 1.0}, step=0)
        deadline = time.monotonic() + 10
        while _count(client, run) == 0:
            assert time.monotonic() < deadline
            time.sleep(0.01)


def test_validation_errors_are_immediate(run: Run) -> None:
    with run.track(buffered=True):
        with pytest.raises(InvalidMetricName):
            run.add_metrics({"Bad Name": 1.0})
        with pytest.raises(InvalidValue):
            run.add_metrics({"x": object()})
        with pytest.raises(InvalidValue, match="step"):
            run.add_metrics({"x": 1.0}, step=1.5)  # type: ignore[arg-type]


def test_background_error_is_raised_once_and_rows_kept(client: Client, run: Run) -> None:
    with run.track(buffered=True):
        run.add_metrics({"x": 1.0}, step=0)
        run.add_metrics({"x": "text"}, step=1)  # does not fit the float column
        run.add_metrics({"x": 3.0}, step=2)
        with pytest.raises(InvalidValue, match="column is of type float.*the row was left out"):
            run.flush()
        run.add_metrics({"x": 4.0}, step=3)  # reported once: the buffer goes on
    assert q(client, "SELECT step, x FROM metrics ORDER BY step") == [(0, 1.0), (2, 3.0), (3, 4.0)]
    assert q(client, "SELECT status FROM runs") == [("COMPLETED",)]


def test_error_at_the_end_fails_the_run(client: Client, run: Run) -> None:
    with pytest.raises(InvalidValue), run.track(buffered=True):
        run.add_metrics({"x": 1.0}, step=0)
        run.add_metrics({"x": "text"}, step=1)
    assert q(client, "SELECT status FROM runs") == [("FAILED",)]
    assert q(client, "SELECT step FROM metrics") == [(0,)]


def test_exception_flushes_then_fails(
    client: Client, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(MetricsBuffer, "flush_seconds", 60.0)
    with pytest.raises(ZeroDivisionError), run.track(buffered=True):
        for step in range(20):
            run.add_metrics({"loss": 1.0}, step=step)
        1 / 0  # noqa: B018
    assert _count(client, run) == 20
    assert q(client, "SELECT status FROM runs") == [("FAILED",)]


def test_deleted_run_is_reported(client: Client, run: Run, db_params: dict[str, Any]) -> None:
    other = Client({}, **db_params)
    with pytest.raises(NotFound), run.track(buffered=True):
        run.add_metrics({"loss": 1.0}, step=0)
        run.flush()
        q(other, "DELETE FROM runs WHERE id = ?", run.id)
        run.add_metrics({"loss": 2.0}, step=1)
        run.flush()


def test_back_pressure(
    client: Client, run: Run, db_params: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the database is locked the queue fills up and add_metrics waits; memory
    stays bounded and nothing is lost."""
    monkeypatch.setattr(MetricsBuffer, "max_pending", 5)
    monkeypatch.setattr(MetricsBuffer, "batch_rows", 2)
    with run.track(buffered=True):
        run.add_metrics({"loss": 1.0}, step=0)
        run.flush()  # the column exists now
        if db_params["engine"] == "sqlite":
            import sqlite3

            locker: Any = sqlite3.connect(db_params["dbpath"], isolation_level=None)
            locker.execute("BEGIN EXCLUSIVE")
        else:
            locker = pg_admin()
            locker.autocommit = False
            locker.execute(f'SET search_path TO "{db_params["schema"]}"')
            locker.execute("LOCK TABLE metrics IN ACCESS EXCLUSIVE MODE")
        done = threading.Event()

        def produce() -> None:
            for step in range(1, 40):
                run.add_metrics({"loss": 1.0}, step=step)
            done.set()

        producer = threading.Thread(target=produce)
        try:
            producer.start()
            time.sleep(0.5)
            blocked = not done.is_set()
            assert run._buffer is not None
            waiting = len(run._buffer._items)
        finally:
            if db_params["engine"] == "postgres":
                locker.rollback()
            else:
                locker.execute("ROLLBACK")
            locker.close()
        producer.join(30)
        assert blocked  # the queue was full and add_metrics waited
        assert waiting <= 5 + 1  # bounded (one more may be on its way in)
        assert done.is_set()
    assert _count(client, run) == 40


def test_forked_child_writes_synchronously(client: Client, run: Run) -> None:
    with run.track(buffered=True):
        run.add_metrics({"loss": 1.0}, step=0)
        run.flush()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:
            code = 1
            try:
                run.add_metrics({"loss": 2.0}, step=1)  # the writer thread is the parent's
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert q(client, "SELECT step FROM metrics ORDER BY step") == [(0,), (1,)]
