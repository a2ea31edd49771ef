"""Buffered metrics (track(buffered=True)), on both engines."""

from __future__ import annotations

import json
import math
import os
import re
import sqlite3
import threading
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from conftest import pg_admin, q

from sqltrack import (
    Client,
    Experiment,
    InvalidMetricName,
    InvalidValue,
    NotFound,
    Run,
    SQLTrackWarning,
)
from sqltrack._db.engines.sqlite import SQLiteEngine
from sqltrack._live.buffer import MetricsBuffer


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
            run.add_metrics({"bad;name": 1.0})
        with pytest.raises(InvalidValue):
            run.add_metrics({"x": object()})
        with pytest.raises(InvalidValue, match="step"):
            run.add_metrics({"x": 1.0}, step=1.5)  # type: ignore[arg-type]


def test_a_bad_updated_argument_queues_nothing(client: Client, run: Run) -> None:
    with run.track(buffered=True):
        with pytest.raises(InvalidValue, match="timezone-aware"):
            run.add_metrics({"loss": 1.0}, step=0, updated=datetime(2030, 1, 1))  # naive
    assert _count(client, run) == 0  # as without buffering: rejected before any write


def test_background_error_is_raised_once_and_rows_kept(
    client: Client, run: Run, before_v010: None
) -> None:
    with run.track(buffered=True):
        run.add_metrics({"x": 1.0}, step=0)
        run.add_metrics({"x": "text"}, step=1)  # does not fit the float column
        run.add_metrics({"x": 3.0}, step=2)
        with pytest.raises(InvalidValue, match="column is of type float.*was kept in (.*)") as e:
            run.flush()
        run.add_metrics({"x": 4.0}, step=3)  # reported once: the buffer goes on
    assert q(client, "SELECT step, x FROM metrics ORDER BY step") == [(0, 1.0), (2, 3.0), (3, 4.0)]
    assert q(client, "SELECT status FROM runs") == [("COMPLETED",)]
    kept = re.search(r"was kept in (\S+) instead", str(e.value))
    assert kept, "the message names the file"
    (record,) = [json.loads(line) for line in Path(kept[1]).read_text().splitlines()]
    assert record["data"] == {"step": 1, "progress": 0.0, "metrics": {"x": "text"}}
    assert record["kind"] == "rows" and "column is of type float" in record["error"]
    assert Path(kept[1]).stat().st_mode & 0o777 == 0o600


def test_error_at_the_end_fails_the_run(client: Client, run: Run, before_v010: None) -> None:
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
            assert run._delivery.buffer is not None
            waiting = len(run._delivery.buffer._items)
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


def test_a_full_batch_is_written_without_waiting(
    client: Client, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(MetricsBuffer, "flush_seconds", 60.0)  # only a full batch writes
    monkeypatch.setattr(MetricsBuffer, "batch_rows", 10)
    with run.track(buffered=True):
        for batch in range(3):  # the writer is woken again for each later batch
            for step in range(10 * batch, 10 * batch + 10):
                run.add_metrics({"loss": 1.0}, step=step)
            deadline = time.monotonic() + 10
            while _count(client, run) < 10 * (batch + 1):
                assert time.monotonic() < deadline, f"batch {batch} was not written"
                time.sleep(0.01)


def test_repeated_keys_and_conversions_within_one_batch(
    client: Client, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Calls with the same names are written together (on SQLite many rows per INSERT):
    a later call for the same step still wins, ints still go into float columns, and a
    NaN among them is handled as in a single call."""
    monkeypatch.setattr(MetricsBuffer, "flush_seconds", 60.0)
    with warnings.catch_warnings(record=True) as caught:  # the writer thread's too
        warnings.simplefilter("always")
        with run.track(buffered=True):
            run.add_metrics({"loss": 0.0, "n": 0}, step=0)
            run.flush()  # loss is a float column, n an integer one
            for i in range(300):  # steps 0..99, three times each
                run.add_metrics({"loss": float(i), "n": i}, step=i % 100)
            run.add_metrics({"loss": 7, "n": 1}, step=500)  # an int for the float column
            run.add_metrics({"loss": math.nan, "n": 2}, step=501)
            run.add_metrics({"loss": 8.0, "n": 3}, step=502)
            run.add_metrics({"x": 0.0}, step=600)
            run.flush()  # x is a float column
            for step in range(601, 611):  # all floats: the fastest way, a NaN among them
                run.add_metrics({"x": math.nan if step == 605 else 1.0}, step=step)
    rows = q(client, "SELECT step, loss, n FROM metrics WHERE step < 600 ORDER BY step")
    assert rows[:100] == [(s, float(s + 200), s + 200) for s in range(100)]
    assert rows[100] == (500, 7.0, 1)
    assert type(rows[100][1]) is float
    assert rows[101][0] == 501 and (rows[101][1] is None or math.isnan(rows[101][1]))
    assert rows[102] == (502, 8.0, 3)
    xs = q(client, "SELECT x FROM metrics WHERE step > 600 ORDER BY step")
    assert [x for (x,) in xs if x == 1.0] == [1.0] * 9
    assert xs[4][0] is None or math.isnan(xs[4][0])
    nan_warnings = [w for w in caught if issubclass(w.category, SQLTrackWarning)]
    assert len(nan_warnings) == 2 * (client.engine.name == "sqlite")  # stored as NULL there


def test_wide_rows_respect_the_limit_on_parameters(
    client: Client, run: Run, db_params: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many rows per statement, but never more parameters than the engine allows (on
    SQLite set to 999 here, the default before SQLite 3.32)."""
    if db_params["engine"] == "sqlite":
        if not hasattr(sqlite3.Connection, "setlimit"):
            pytest.skip("sqlite3.Connection.setlimit needs Python 3.11")
        connect = SQLiteEngine.connect

        def limited(self: SQLiteEngine) -> Any:
            conn = connect(self)
            conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)
            return conn

        monkeypatch.setattr(SQLiteEngine, "connect", limited)
    names = [f"m{i}" for i in range(100)]  # 103 parameters per row: 9 rows fit in 999
    # columns of a table that has them already (more than sqltrack adds by itself)
    added = "".join(f"ALTER TABLE metrics ADD COLUMN {n} REAL;" for n in names)
    client.executescript(added) if db_params["engine"] == "sqlite" else client.execute(added)
    client.metrics_cache = None
    with run.track(buffered=True):
        for step in range(50):
            run.add_metrics({n: step * 1000 + i for i, n in enumerate(names)}, step=step)
    assert _count(client, run) == 50
    assert q(client, "SELECT sum(m99) FROM metrics") == [(sum(s * 1000 + 99 for s in range(50)),)]


def test_time_updated_follows_the_updated_argument(
    client: Client, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As without buffering: an explicit time is written, None leaves time_updated
    alone, 'auto' refreshes it (at most every heartbeat_seconds)."""
    monkeypatch.setattr(MetricsBuffer, "flush_seconds", 60.0)

    def updated() -> Any:
        return q(client, "SELECT time_updated FROM runs WHERE id = ?", run.id)[0][0]

    fixed = datetime(2030, 1, 1, tzinfo=timezone.utc)
    with run.track(buffered=True):
        started = updated()
        for step in range(5):
            run.add_metrics({"loss": 1.0}, step=step, updated=None)
        run.flush()
        assert updated() == started  # no heartbeat for calls that asked for none
        for step in range(5, 10):
            run.add_metrics({"loss": 1.0}, step=step, updated=fixed)
        run.flush()
        assert str(updated()).startswith("2030-01-01")  # not overwritten by a heartbeat
        run.add_metrics({"loss": 1.0}, step=10)
        run.flush()
        assert not str(updated()).startswith("2030")


def test_bulk_rows_of_every_kind(client: Client, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    """Big batches take the engine's bulk path (binary COPY on PostgreSQL) for every
    column kind; a batch whose steps exist already falls back to upserts and merges."""
    monkeypatch.setattr(MetricsBuffer, "flush_seconds", 60.0)
    engine = type(client.engine)
    copy_rows = engine.copy_rows
    outcomes: list[bool] = []

    def spy(self: Any, *args: Any) -> bool:
        outcomes.append(copy_rows(self, *args))
        return outcomes[-1]

    monkeypatch.setattr(engine, "copy_rows", spy)
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    with run.track(buffered=True):
        run.add_metrics({"f": 0.5, "i": 1, "b": True, "s": "x", "t": when}, step=-1)
        run.flush()  # the columns exist now
        for step in range(100):
            run.add_metrics({"f": step / 2, "i": step, "b": step % 2 == 0, "s": f"s{step}",
                             "t": when}, step=step)  # fmt: skip
        run.flush()
        for step in range(100):  # the same steps again, another metric: merged
            run.add_metrics({"g": float(step)}, step=step)
    assert outcomes[0] is (client.engine.name == "postgres")  # bulk path on PostgreSQL
    assert outcomes[-1] is False  # the steps existed: upserted
    rows = q(client, "SELECT step, f, i, b, s, g FROM metrics WHERE step >= 0 ORDER BY step")
    assert [(r[0], r[1], r[2], bool(r[3]), r[4], r[5]) for r in rows] == [
        (s, s / 2, s, s % 2 == 0, f"s{s}", float(s)) for s in range(100)
    ]
    t = q(client, "SELECT t FROM metrics WHERE step = 99")[0][0]
    assert str(t).replace("T", " ").startswith("2030-01-02 03:04:05")
