"""Outages inside track(): hand-over, the offline spool, pushing it back, `sqltrack sync`.

The outage is injected (every new connection fails, connections in use break) so that
it happens at a chosen step on both engines; tests/test_reliability.py and
bench/stress.py stop a real PostgreSQL server instead.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from conftest import cli_options, expected, q, stored

import sqltrack as st
from sqltrack import (
    Client,
    ConnectionFailed,
    Experiment,
    InvalidValue,
    Run,
    SQLTrackWarning,
    spool_dir,
    spool_files,
    sync_spools,
)
from sqltrack import Run as Tracking  # the run's settings are its class attributes
from sqltrack._base.calls import validate
from sqltrack._live.buffer import MetricsBuffer
from sqltrack._live.queued import QueuedStatus
from sqltrack._live.spool import Spool
from sqltrack.cli import main


class Outage:
    """While ``on``, connecting fails and every connection in use breaks."""

    def __init__(self, client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
        self.on = False
        engine = type(client.engine)
        connect = engine.connect
        outage = self

        class Flaky:
            def __init__(self, conn: Any) -> None:
                self._conn = conn

            def __getattr__(self, name: str) -> Any:
                attr = getattr(self._conn, name)
                if outage.on and name in ("execute", "cursor", "commit", "transaction"):
                    raise ConnectionFailed("injected outage: the server closed the connection")
                return attr

        def flaky_connect(self: Any) -> Any:
            if str(self.params.get("dbpath", "")).endswith(".spool"):
                return connect(self)  # the spool is a local file: it stays
            if outage.on:
                raise ConnectionFailed("injected outage: connection refused")
            return Flaky(connect(self))

        monkeypatch.setattr(engine, "connect", flaky_connect)


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hand over, flush, spool and retry within a test's patience."""
    monkeypatch.setattr(Tracking, "handover_seconds", 0.1)
    monkeypatch.setattr(MetricsBuffer, "flush_seconds", 0.02)
    monkeypatch.setattr(MetricsBuffer, "spool_after", 0.1)
    monkeypatch.setattr(MetricsBuffer, "final_push_seconds", 0.2)
    monkeypatch.setattr(MetricsBuffer, "max_retry_seconds", 0.2)


@pytest.fixture
def run(client: Client) -> Run:
    return Experiment(client, name="outage").get_run()


def _steps(client: Client, run_id: int) -> list[int]:
    return [
        s for (s,) in q(client, "SELECT step FROM metrics WHERE run_id = ? ORDER BY step", run_id)
    ]


def _status(client: Client, run_id: int) -> str:
    return str(q(client, "SELECT status FROM runs WHERE id = ?", run_id)[0][0])


def _wait_for(condition: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.parametrize("buffered", [False, True], ids=["sync", "buffered"])
def test_an_outage_mid_run_loses_nothing(
    client: Client,
    run: Run,
    fast: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    buffered: bool,
) -> None:
    """The loop never sees the outage; its steps wait in the spool and arrive, in order,
    once the database is back; the run ends COMPLETED; the spool file is gone."""
    outage = Outage(client, monkeypatch)
    caplog.set_level(logging.WARNING, "sqltrack")
    with run.track(buffered=buffered):
        for step in range(40):
            if step == 10:
                outage.on = True
            run.add_metrics({"loss": 1.0 / (step + 1), "n": step}, step=step)
            if step == 20:  # the spool holds what the loop logged meanwhile
                _wait_for(lambda: any(spool_dir().glob("*.spool")))
            time.sleep(0.01)
        outage.on = False
        for step in range(40, 50):
            run.add_metrics({"loss": 1.0 / (step + 1), "n": step}, step=step)
    assert _steps(client, run.id) == list(range(50))
    assert q(client, "SELECT sum(n) FROM metrics") == [(sum(range(50)),)]
    assert stored(client, run.id) == expected(client, run.id)  # the summary too
    assert _status(client, run.id) == "COMPLETED"
    assert list(spool_dir().glob("*")) == []  # pushed and removed, lock file included
    text = caplog.text
    assert "injected outage" in text and ".spool" in text  # said once, with the file


def test_a_run_started_buffered_rides_out_an_outage_as_in_track(
    client: Client, run: Run, fast: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """start(buffered=True) … stop(), a framework's hooks (no with block): the same
    background writer and spool, and the run's other calls wait instead of raising."""
    outage = Outage(client, monkeypatch)
    run.start(terminated=None, buffered=True)
    for step in range(30):
        outage.on = 10 <= step < 20
        run.add_metrics({"loss": 1.0 / (step + 1), "n": step}, step=step)
        time.sleep(0.01)
    outage.on = True
    threading.Timer(0.3, setattr, (outage, "on", False)).start()
    run.add_tags("waited")  # waits for the database, as inside track()
    run.stop()
    assert _steps(client, run.id) == list(range(30))
    assert _status(client, run.id) == "COMPLETED"
    assert q(client, "SELECT tags FROM runs")[0][0] is not None
    assert list(spool_dir().glob("*")) == []
    # stopped: outside track() again, errors are the caller's
    assert run._delivery.within is None and run._delivery.buffer is None


def test_a_job_that_ends_offline_leaves_its_spool_for_sync(
    client: Client,
    run: Run,
    fast: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The job ends on time with the database still down; `sqltrack sync` pushes the
    rest later (status and times included); a second sync adds nothing."""
    outage = Outage(client, monkeypatch)
    with run.track():
        for step in range(20):
            if step == 5:
                outage.on = True
            run.add_metrics({"loss": float(step)}, step=step)
    ended = datetime.now(timezone.utc)
    outage.on = False
    assert _steps(client, run.id) == list(range(5))
    assert _status(client, run.id) == "RUNNING"
    [path] = spool_files(client, run.id)
    assert "sqltrack sync" in caplog.text and str(path) in caplog.text
    assert Spool(path).pending() > 0

    options = cli_options(client)
    assert main(["sync", *options]) == 0
    assert f"pushed: {path}" in capsys.readouterr().out
    assert _steps(client, run.id) == list(range(20))
    assert _status(client, run.id) == "COMPLETED"
    assert stored(client, run.id) == expected(client, run.id)  # summarized when pushed
    updated = q(client, "SELECT time_updated FROM runs WHERE id = ?", run.id)[0][0]
    assert abs(_as_datetime(updated) - ended) < timedelta(seconds=5)  # when it ended
    assert not path.exists()
    assert main(["sync", *options]) == 0
    assert "nothing to push" in capsys.readouterr().out
    assert _steps(client, run.id) == list(range(20))


def test_the_next_track_of_the_run_pushes_what_was_left(
    client: Client, run: Run, fast: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A requeued job: its first track() pushes the earlier process's spool first."""
    outage = Outage(client, monkeypatch)
    with run.track():
        run.add_metrics({"loss": 0.0}, step=0)
        outage.on = True
        run.add_metrics({"loss": 1.0}, step=1)
    outage.on = False
    assert _steps(client, run.id) == [0]
    again = Run(client, run_id=run.id)
    with again.track():
        assert _steps(client, run.id) == [0, 1]  # before the new process logs anything
        again.add_metrics({"loss": 2.0}, step=2)
    assert _steps(client, run.id) == [0, 1, 2]
    assert spool_files(client) == []
    assert stored(client, run.id) == expected(client, run.id)


def test_a_late_spool_never_undoes_a_newer_state(
    client: Client, run: Run, fast: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    outage = Outage(client, monkeypatch)
    with run.track():
        outage.on = True
    outage.on = False
    [path] = spool_files(client, run.id)
    time.sleep(0.01)
    run.start()  # the job was requeued meanwhile and is running again
    assert [r.outcome for r in sync_spools(client)] == ["pushed"]
    assert _status(client, run.id) == "RUNNING"
    assert not path.exists()


def test_bad_input_still_raises_during_an_outage(
    client: Client, run: Run, fast: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    outage = Outage(client, monkeypatch)
    with run.track():
        outage.on = True
        run.add_metrics({"loss": 1.0}, step=0)
        with pytest.raises(InvalidValue, match="step must be an integer"):
            run.add_metrics({"loss": 1.0}, step="three")  # type: ignore[arg-type]
        with pytest.raises(InvalidValue, match="cannot be stored"):
            run.add_metrics({"loss": object()}, step=1)
        outage.on = False
    assert _steps(client, run.id) == [0]


def test_every_kind_of_value_survives_the_spool(
    client: Client, run: Run, fast: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    outage = Outage(client, monkeypatch)
    when = datetime(2030, 5, 6, 7, 8, 9, 123456, tzinfo=timezone.utc)
    with run.track():
        run.add_metrics({"f": 0.5, "i": 1, "b": True, "s": "x", "t": when, "nan": 1.0}, step=0)
        outage.on = True
        run.add_metrics({"f": 1.5, "i": 2**62, "b": False, "s": "ü\n'\"", "t": when}, step=1)
        run.add_metrics({"f": None, "nan": math.nan, "new": 3}, step=2, progress=0.25)
    outage.on = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SQLTrackWarning)  # NaN on SQLite
        assert [r.outcome for r in sync_spools(client)] == ["pushed"]
    # (2**62 is past what a float column holds exactly: kept in the narrow storage)
    names = ["f", "i", "b", "s", "t", "nan", "new"]
    rows = [r[1:] for r in st.read_metrics(client, run.id, names)[1]]
    assert [(r[0], r[2], r[3], r[4] if r[4] is None else bool(r[4]), r[5]) for r in rows] == [
        (0, 0.5, 1, True, "x"),
        (1, 1.5, 2**62, False, "ü\n'\""),
        (2, None, None, None, None),
    ]
    assert type(rows[1][3]) is int and _as_datetime(rows[1][6]) == when
    assert rows[2][1] == 0.25 and rows[2][8] == 3
    assert rows[2][7] is None or math.isnan(rows[2][7])  # NULL on SQLite, as always


def test_sync_skips_the_spool_of_a_running_job(
    client: Client, run: Run, fast: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = Spool.create(client, run.id)  # locked by its writer, as in a running job
    spool.append([], [("state", ("FAILED", None, None))])
    [result] = sync_spools(client)
    assert result.outcome == "busy"
    assert _status(client, run.id) == "PENDING" and spool.path.exists()
    spool.close()  # the job ended
    assert [r.outcome for r in sync_spools(client)] == ["pushed"]
    assert _status(client, run.id) == "FAILED"


def test_sync_reports_files_it_cannot_use(
    client: Client, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    not_a_spool = tmp_path / "notes.txt"
    not_a_spool.write_text("hello")
    missing = tmp_path / "missing.spool"
    assert main(["sync", *cli_options(client), str(not_a_spool), str(missing)]) == 1
    err = capsys.readouterr().err
    assert f"failed: {not_a_spool}" in err and f"failed: {missing}" in err
    assert not missing.exists()  # never created by looking at it
    assert len(err.splitlines()) == 2


def test_spool_files_are_private(client: Client, run: Run) -> None:
    spool = Spool.create(client, run.id)
    assert oct(spool_dir().stat().st_mode & 0o777) == "0o700"
    assert f"-run-{run.id}-" in spool.path.name and str(os.getpid()) in spool.path.name
    spool.remove()
    assert not spool.path.exists()


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def test_a_status_is_never_older_than_a_heartbeat_written_before_it(
    client: Client, run: Run, fast: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer that is behind writes a heartbeat after the loop ended; the final status
    (timed when the loop ended) must still win when the spool is pushed."""
    outage = Outage(client, monkeypatch)
    outage.on = True
    buffer = MetricsBuffer(client, run.id, heartbeat_seconds=0.0, offline=True)
    ended = datetime.now(timezone.utc) - timedelta(seconds=5)
    buffer.beat_wanted = True
    buffer.put(validate({"loss": 1.0}, 0, 0.0))  # type: ignore[arg-type]
    buffer.flush()  # spooled, with a heartbeat timed now
    buffer.put(QueuedStatus("COMPLETED", None, ended))
    buffer.close()
    outage.on = False
    assert [r.outcome for r in sync_spools(client)] == ["pushed"]
    assert _status(client, run.id) == "COMPLETED"
    assert _steps(client, run.id) == [0]


def test_a_locked_metrics_table_never_reaches_the_loop(
    client: Client, run: Run, fast: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long transaction holds the metrics table while a new column is needed: the step
    is handed over, waits in the spool, and lands once the lock is gone."""
    if client.engine.name != "postgres":
        pytest.skip("SQLite adds columns under the writer's own database lock: no wait")
    import psycopg

    monkeypatch.setattr(type(client.engine), "ddl_retry_seconds", 0.3)
    p = client.engine.params
    blocker = psycopg.connect(
        **{k: p[k] for k in ("host", "port", "user", "dbname") if k in p},
        options=f"-c search_path={p['schema']}",
    )
    blocker.execute("SELECT count(*) FROM metrics")  # holds a lock until it commits
    try:
        with run.track():
            run.add_metrics({"loss": 1.0}, step=0)  # needs ALTER TABLE: waits, hands over
            assert run._delivery.buffer is not None
            blocker.commit()
            run.add_metrics({"loss": 0.5}, step=1)
    finally:
        blocker.close()
    assert _steps(client, run.id) == [0, 1]
    assert _status(client, run.id) == "COMPLETED"


def test_sync_all_pushes_spools_recorded_for_another_connection(
    client: Client, run: Run, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Jobs that went through PgBouncer record another target than a direct connection:
    plain `sqltrack sync` leaves their spools alone, `--all` pushes them."""
    elsewhere = Client({}, **{**client.engine.params, "dbpath": str(tmp_path / "other.db")})
    if client.engine.name == "postgres":
        elsewhere = Client({}, **{**client.engine.params, "port": 6432})  # "a PgBouncer"
    spool = Spool.create(elsewhere, run.id)
    spool.append([], [("state", ("FAILED", None, None))])
    spool.close()
    options = cli_options(client)
    assert main(["sync", *options]) == 0
    assert "nothing to push" in capsys.readouterr().out
    assert main(["sync", "--all", *options]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"pushed: {spool.path}") and "recorded for" in out
    assert _status(client, run.id) == "FAILED"


# -- a spool is input like any other -------------------------------------------------------


def _raw_spool(client: Client, run: Run, entries: list[tuple[str, Any]]) -> Path:
    """A spool file of ``run`` holding ``entries`` exactly as given (kind, JSON data):
    what a damaged file, an older version or someone else could have written."""
    import json
    import sqlite3

    spool = Spool.create(client, run.id, run.experiment_id)
    spool.close()
    with sqlite3.connect(spool.path) as conn:
        for kind, data in entries:
            text = data if isinstance(data, str) else json.dumps(data)
            conn.execute("INSERT INTO spool_entries (kind, data) VALUES (?, ?)", (kind, text))
    conn.close()
    return spool.path


def _row(names: list[str], values: list[Any], kinds: list[Any], step: int) -> list[Any]:
    return [names, values, kinds, step, 0.0]


def test_spool_files_are_readable_by_their_owner_only(client: Client, run: Run) -> None:
    spool = Spool.create(client, run.id, run.experiment_id)
    spool.append([validate({"loss": 1.0}, 0, 0.0)], [])  # type: ignore[list-item]
    for path in (spool.path, spool.path.with_name(spool.path.name + ".lock")):
        assert path.stat().st_mode & 0o777 == 0o600, path
    assert spool_dir().stat().st_mode & 0o777 == 0o700
    spool.close()


def test_a_bad_spool_entry_never_blocks_the_rest(
    client: Client, run: Run, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Entries that are not what sqltrack writes, or not valid as add_metrics arguments,
    are set aside (one warning names the file); every valid entry is pushed, and no
    column is added on a bad entry's word."""
    injection = {
        "postgres": "x + (SELECT count(*) FROM pg_roles)",
        "sqlite": "x + (SELECT count(*) FROM sqlite_master)",
    }[client.engine.name]
    path = _raw_spool(
        client,
        run,
        [
            ("rows", [_row(["loss"], [1.0], ["float"], 0)]),
            ("rows", [_row(["loss"], ["text"], ["float"], 1)]),  # a str under kind float
            ("rows", [_row([injection], [1.0], ["float"], 2), _row(["loss"], [0.7], ["float"], 5)]),
            ("rows", [_row(["Loss", "</script><b>x", "step "], [1.0, 2.0, 3.0], ["float"] * 3, 3)]),
            ("rows", "{not json"),
            ("rows", [[["loss"], [1.0]]]),  # not five fields
            ("rows", [_row(["loss"], [0.5], ["float"], 4)]),
            ("state", ["COMPLETED", None, datetime.now(timezone.utc).isoformat()]),
        ],
    )
    columns_before = set(known_columns_of(client))
    assert main(["sync", *cli_options(client)]) == 0
    out = capsys.readouterr().out
    assert f"pushed: {path}" in out
    assert "7 entries of run" in out and "5 set aside in" in out, out
    assert _steps(client, run.id) == [0, 4, 5]  # an entry's valid rows are written
    assert _status(client, run.id) == "COMPLETED"
    assert set(known_columns_of(client)) == columns_before | {"loss"}
    (kept,) = spool_dir().glob("*.refused.jsonl")
    assert kept.stat().st_mode & 0o777 == 0o600
    assert len(kept.read_text().splitlines()) == 5
    said = [r.getMessage() for r in caplog.records if str(kept) in r.getMessage()]
    assert len(said) == 1
    assert not path.exists()


def known_columns_of(client: Client) -> list[str]:
    from conftest import metric_columns

    return list(metric_columns(client))


def test_spooled_times_in_the_future_are_set_aside(client: Client, run: Run) -> None:
    """A status with time_updated 2099 would make every genuine later spool of the run
    look older: it is set aside; the entries after it are pushed."""
    soon = (datetime.now(timezone.utc) + timedelta(seconds=30)).isoformat()  # clock skew
    path = _raw_spool(
        client,
        run,
        [
            ("state", ["FAILED", None, "2099-01-01T00:00:00+00:00"]),
            ("updated", "2099-01-01T00:00:00+00:00"),
            ("state", ["RUNNING", None, soon]),
        ],
    )
    [result] = sync_spools(client, [path])
    assert (result.outcome, result.entries, result.set_aside) == ("pushed", 1, 2)
    assert _status(client, run.id) == "RUNNING"
    assert q(client, "SELECT time_updated FROM runs WHERE id = ?", run.id)[0][0] is not None


def test_a_spool_for_a_run_of_another_experiment_is_refused(client: Client, run: Run) -> None:
    other = Experiment(client, name="other").get_run()
    spool = Spool.create(client, other.id, run.experiment_id)  # names the wrong experiment
    spool.append([], [("state", ("FAILED", None, None))])
    spool.close()
    [result] = sync_spools(client)
    assert result.outcome == "refused" and "belongs to experiment" in result.message
    assert _status(client, other.id) == "PENDING"
    assert spool.path.exists()


def test_a_spool_others_may_write_is_refused(
    client: Client, run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    """A shared spool directory: a file there that someone else could have written (or
    written into) is not pushed without --trust-others, neither by sync nor by the next
    track() of the run."""
    path = _raw_spool(client, run, [("state", ["FAILED", None, None])])
    os.chmod(path, 0o666)
    assert main(["sync", *cli_options(client)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"refused: {path} (") and "other users may write it" in err
    assert len(err.splitlines()) == 1
    os.chmod(path, 0o600)
    os.chmod(path.parent, 0o777)
    with run.track():  # its leftovers are not pushed either
        pass
    assert path.exists() and _status(client, run.id) == "COMPLETED"
    assert main(["sync", *cli_options(client)]) == 1
    assert "other users may write its directory" in capsys.readouterr().err
    assert main(["sync", "--trust-others", *cli_options(client)]) == 0
    assert not path.exists()
    os.chmod(path.parent, 0o700)


def test_a_spool_of_another_user_is_refused(
    client: Client, run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    if os.geteuid() != 0:
        reason = "only root can give a file to another user (CI runs as root)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    path = _raw_spool(
        client,
        run,
        [("rows", [_row(["Loss"], [1.0], ["float"], 0)]), ("state", ["FAILED", None, None])],
    )
    os.chown(path, 65534, 65534)  # nobody's
    assert main(["sync", *cli_options(client)]) == 1
    err = capsys.readouterr().err
    assert f"refused: {path}" in err and "it belongs to" in err
    assert _status(client, run.id) == "PENDING"
    assert "Loss" not in known_columns_of(client)
