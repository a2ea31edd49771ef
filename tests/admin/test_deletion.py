"""Deleting, restoring and collecting runs (sqltrack._admin.deletion), on both engines."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from conftest import cli_options, q, tables

import sqltrack as st
from sqltrack import Client, Experiment, InvalidValue
from sqltrack.cli import main


@pytest.fixture
def sweep(client: Client) -> dict[str, Any]:
    exp = Experiment(client, name="sweep")
    runs = {}
    for name, status in (("ok", "COMPLETED"), ("bad1", "FAILED"), ("bad2", "FAILED")):
        run = exp.get_run().set_args({"name": name})
        with run.track():
            for step in range(30):
                run.add_metrics({"loss": 1 / (step + 1)}, step=step)
        run.set_status(status)
        runs[name] = run
    runs["kept"] = exp.get_run().add_tags("keep").set_status("FAILED")
    return runs


def _ids(runs: list[st.Run]) -> list[int]:
    return [r.id for r in runs]


def test_delete_hides_and_restore_brings_back_everything(client: Client, sweep: Any) -> None:
    bad = [sweep["bad1"].id, sweep["bad2"].id]
    before = q(client, "SELECT count(*) FROM metrics")
    assert st.delete_runs(client, experiment="sweep", status="FAILED", tags=None) == [
        *bad,
        sweep["kept"].id,
    ]
    assert _ids(st.find_runs(client)) == [sweep["ok"].id]  # hidden from the read side
    assert _ids(st.find_runs(client, deleted=True)) == [*bad, sweep["kept"].id]
    assert len(st.find_runs(client, deleted=None)) == 4
    assert [r[0] for r in q(client, "SELECT id FROM run_overview")] == [sweep["ok"].id]
    assert [r[-1] for r in st.summarize(client, "sweep", "loss:min")] == [sweep["ok"].id]
    assert st.delete_runs(client, [sweep["bad1"].id]) == []  # already deleted
    assert st.restore_runs(client, [sweep["bad1"].id]) == [sweep["bad1"].id]
    assert st.restore_runs(client, status="FAILED") == [sweep["bad2"].id, sweep["kept"].id]
    assert len(st.find_runs(client)) == 4
    assert q(client, "SELECT count(*) FROM metrics") == before  # nothing was lost


def _everything(client: Client) -> dict[str, list[Any]]:
    """Every row of every table, in a stable order."""
    return {t: sorted(map(repr, q(client, f"SELECT * FROM {t}"))) for t in sorted(tables(client))}


def test_delete_then_restore_changes_no_row_anywhere(
    client: Client, sweep: Any, tmp_path: Any
) -> None:
    run = sweep["bad1"]
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"weights")
    artifact = run.log_artifact(checkpoint, kind="checkpoint", step=29)
    run.log_sample(29, {"text": "a prompt"}, {"text": "an answer"})
    run.add_link("resumes", sweep["ok"].id)
    sweep["bad2"].use_artifact(artifact.name)
    with run.track(system_metrics=0.05):
        run.add_metrics({"loss": 0.01}, step=30)
        time.sleep(0.2)  # a few samples
    before = _everything(client)
    for table in ("metrics", "run_summaries", "artifacts", "artifact_uses", "samples",
                  "conditionings", "run_links", "system_metrics"):  # fmt: skip
        assert before[table], table  # each kind of row the run has is checked
    st.delete_runs(client, [run.id])
    st.delete_experiments(client, "sweep")
    assert _everything(client) != before  # (the check can see a change)
    st.restore_experiments(client, "sweep")
    st.restore_runs(client, [run.id])
    assert _everything(client) == before


def test_gc_removes_old_deleted_runs_in_batches_but_never_keep(client: Client, sweep: Any) -> None:
    st.delete_runs(client, status="FAILED")
    assert st.gc_deleted(client, deleted_before=3600) == []  # deleted just now
    old = client.engine.adapt_datetime(datetime.now(timezone.utc) - timedelta(days=40))
    q(client, "UPDATE runs SET time_deleted = ? WHERE time_deleted IS NOT NULL", old)
    assert st.gc_deleted(client, deleted_before=30 * 86400, dry_run=True) == [
        sweep["bad1"].id, sweep["bad2"].id
    ]  # fmt: skip
    removed = st.gc_deleted(client, deleted_before=30 * 86400, batch=7)  # 30 rows: 5 batches
    assert removed == [sweep["bad1"].id, sweep["bad2"].id]
    assert {r for (r,) in q(client, "SELECT DISTINCT run_id FROM metrics")} == {sweep["ok"].id}
    assert {r for (r,) in q(client, "SELECT id FROM runs")} == {sweep["ok"].id, sweep["kept"].id}
    assert q(client, "SELECT count(*) FROM run_summaries WHERE run_id = ?", sweep["bad1"].id) == [
        (0,)
    ]


def test_steps_that_repeat_are_collected_too(client: Client) -> None:
    run = Experiment(client, name="progress").get_run()
    for i in range(25):  # one step, many progress values: batches must still advance
        run.add_metrics({"loss": float(i)}, step=0, progress=i / 25)
    _aged(client, run, days=1)
    assert st.gc_deleted(client, deleted_before=60, batch=4) == [run.id]
    assert q(client, "SELECT count(*) FROM metrics") == [(0,)]


def _aged(client: Client, run: st.Run, days: int = 2) -> None:
    st.delete_runs(client, [run.id])
    when = client.engine.adapt_datetime(datetime.now(timezone.utc) - timedelta(days=days))
    q(client, "UPDATE runs SET time_deleted = ? WHERE id = ?", when, run.id)


def test_gc_commits_each_batch_so_an_interrupted_gc_resumes(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = Experiment(client, name="big").get_run()
    for step in range(30):
        run.add_metrics({"loss": float(step)}, step=step)
    _aged(client, run)
    deletes = 0
    real = client.query

    def killed_in_third_batch(sql: str, params: Any = None) -> Any:
        nonlocal deletes
        if sql.startswith("DELETE FROM metrics"):
            deletes += 1
            if deletes == 3:
                raise KeyboardInterrupt  # as a user's Ctrl-C would stop it
        return real(sql, params)

    monkeypatch.setattr(client, "query", killed_in_third_batch)
    with pytest.raises(KeyboardInterrupt):
        st.gc_deleted(client, deleted_before=60, batch=7)
    monkeypatch.undo()
    left = q(client, "SELECT step FROM metrics WHERE run_id = ? ORDER BY step", run.id)
    assert [s for (s,) in left] == list(range(14, 30))  # two batches of 7 committed
    assert st.gc_deleted(client, deleted_before=60, batch=7) == [run.id]
    assert q(client, "SELECT count(*) FROM metrics") == [(0,)]
    assert q(client, "SELECT count(*) FROM runs") == [(0,)]


def test_gc_refuses_to_run_in_one_long_transaction(client: Client) -> None:
    with client, pytest.raises(InvalidValue, match="outside a `with client:` block"):
        st.gc_deleted(client)


def test_deleting_an_experiment_deletes_its_runs_and_restoring_brings_back_only_those(
    client: Client, sweep: Any
) -> None:
    st.delete_runs(client, [sweep["bad1"].id])  # deleted on its own, before
    assert st.delete_experiments(client, "sweep") == [sweep["ok"].experiment_id]
    assert st.delete_experiments(client, ["sweep"]) == []  # already deleted
    assert st.find_runs(client) == []
    assert q(client, "SELECT count(*) FROM run_overview") == [(0,)]
    assert st.restore_experiments(client, sweep["ok"].experiment_id) == [sweep["ok"].experiment_id]
    assert _ids(st.find_runs(client)) == [sweep["ok"].id, sweep["bad2"].id, sweep["kept"].id]
    assert _ids(st.find_runs(client, deleted=True)) == [sweep["bad1"].id]


def test_a_deleted_experiment_used_again_is_back_without_its_deleted_runs(
    client: Client, sweep: Any
) -> None:
    st.delete_experiments(client, "sweep")
    with pytest.warns(st.SQLTrackWarning, match="'sweep' was deleted; used again, it is back"):
        new = Experiment(client, name="sweep").get_run()
    assert _ids(st.find_runs(client)) == [new.id]


def test_gc_removes_deleted_experiments_left_without_runs(client: Client, sweep: Any) -> None:
    other = Experiment(client, name="other")
    st.delete_experiments(client, ["sweep", other.id])
    old = client.engine.adapt_datetime(datetime.now(timezone.utc) - timedelta(days=40))
    q(client, "UPDATE runs SET time_deleted = ?", old)
    q(client, "UPDATE experiments SET time_deleted = ?", old)
    removed = st.gc_deleted(client)
    assert sweep["kept"].id not in removed and len(removed) == 3
    # "sweep" keeps its run tagged keep, so it stays (deleted); "other" had no run left
    assert q(client, "SELECT name FROM experiments") == [("sweep",)]


def test_deleted_runs_are_not_stale_and_not_in_the_report(client: Client, sweep: Any) -> None:
    from sqltrack._read.report import report_data

    hour_ago = datetime.now(timezone.utc) - timedelta(hours=1)
    stale = Experiment(client, name="sweep").get_run().start(terminated=None, updated=hour_ago)
    assert st.stale_runs(client, 60) == [stale.id]
    st.delete_runs(client, [stale.id, sweep["bad1"].id])
    assert st.stale_runs(client, 60) == []
    data = report_data(client, "sweep")
    listed = sorted(r["id"] for r in data["runs"]["runs"])
    assert listed == [sweep[k].id for k in ("ok", "bad2", "kept")]
    assert set(data["curves"]) == {str(sweep["ok"].id), str(sweep["bad2"].id)}


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda c: st.delete_experiments(c, []), InvalidValue, "at least one experiment"),
        (lambda c: st.delete_experiments(c, "nope"), st.NotFound, "'nope' does not exist"),
        (lambda c: st.restore_experiments(c, [1.5]), InvalidValue, "a name or an id"),
    ],
)
def test_bad_experiments(client: Client, call: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        call(client)


def test_cli_delete_restore_gc(
    client: Client, sweep: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    options = cli_options(client)
    assert main(["delete", "--status", "FAILED", "--dry-run", *options]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "would be deleted: 3 runs"
    assert len(st.find_runs(client)) == 4
    assert main(["delete", str(sweep["bad1"].id), *options]) == 0
    assert capsys.readouterr().out.splitlines() == ["deleted: 1 runs", str(sweep["bad1"].id)]
    assert main(["runs", "--format", "csv", *options]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1 + 3  # header, the others
    assert main(["runs", "--deleted", "--format", "csv", *options]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[1].startswith(f"{sweep['bad1'].id},")
    assert main(["restore", "--experiment", "sweep", *options]) == 0
    assert capsys.readouterr().out.splitlines() == ["restored: 1 runs", str(sweep["bad1"].id)]
    assert main(["gc", "--deleted-before", "0", "--dry-run", *options]) == 0
    assert capsys.readouterr().out.splitlines() == ["would remove: 0 runs"]
    assert main(["delete", *options]) == 1  # neither runs nor filters
    assert capsys.readouterr().err == (
        "sqltrack: error: give RUN ids or filters (--experiment, --status, --tag, --arg)\n"
    )
    assert main(["delete-experiment", "sweep", "--dry-run", *options]) == 0
    assert capsys.readouterr().out.splitlines() == ["would be deleted: 1 experiments",
                                                    str(sweep["ok"].experiment_id)]  # fmt: skip
    assert main(["delete-experiment", "sweep", *options]) == 0
    assert st.find_runs(client) == []
    assert main(["restore-experiment", str(sweep["ok"].experiment_id), *options]) == 0
    assert capsys.readouterr().out.splitlines()[-2] == "restored: 1 experiments"
    assert len(st.find_runs(client)) == 4
    assert main(["delete-experiment", "nope", *options]) == 1
    assert capsys.readouterr().err.strip() == "sqltrack: error: experiment 'nope' does not exist"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: st.delete_runs(c), "give run ids or filters"),
        (lambda c: st.delete_runs(c, [0]), "run id"),
        (lambda c: st.delete_runs(c, colour="red"), "unknown filter: colour"),
        (lambda c: st.gc_deleted(c, deleted_before=-1), "seconds >= 0"),
        (lambda c: st.gc_deleted(c, batch=0), "positive integer"),
        (lambda c: st.find_runs(c, deleted="yes"), "True, False or None"),
    ],
)
def test_bad_input(client: Client, call: Any, message: str) -> None:
    with pytest.raises(InvalidValue, match=message):
        call(client)


def test_a_batch_reads_a_big_run_in_index_order_whatever_the_statistics_say(
    client: Client,
) -> None:
    """Right after a run is written the table's statistics expect a few rows of it, and
    PostgreSQL planned gc's batch query as a scan and a sort of the whole run (0.3 s a
    batch at 2M rows). Inside gc's batch transaction it must read the primary key in
    order, on both engines."""
    from sqltrack._admin.deletion import BOUND

    run = Experiment(client, name="big").get_run()
    run.add_metrics({"loss": 0.0}, step=0)
    rows = 200_000
    if client.engine.name == "postgres":
        q(client, "ALTER TABLE metrics SET (autovacuum_enabled = false)")  # stats stay stale
        q(client, "INSERT INTO metrics (run_id, step, loss) "
                  "SELECT ?, g, 0.5 FROM generate_series(1, ?) g", run.id, rows)  # fmt: skip
    else:
        numbers = "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < ?) "
        q(client, numbers + "INSERT INTO metrics (run_id, step, loss) SELECT ?, i, 0.5 FROM g",
          rows, run.id)  # fmt: skip
    explain = "EXPLAIN " if client.engine.name == "postgres" else "EXPLAIN QUERY PLAN "
    query = explain + BOUND.format(after="")
    params = {"run": run.id, "n": 10_000}

    def plan() -> str:
        return " ".join(str(row) for row in client.query(query, params))

    with client:
        before = plan()
        hint = client.engine.index_order_sql()
        if hint is not None:
            client.query(hint)
        after = plan()
    if client.engine.name == "postgres":
        assert "Sort" in before  # what stale statistics made of it (the test can fail)
        assert "Index Only Scan" in after and "Sort" not in after
    else:
        assert "COVERING INDEX" in after and "TEMP B-TREE" not in after


def test_show_says_that_a_run_is_deleted(
    client: Client, sweep: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from conftest import run_time

    run, options = sweep["bad1"], cli_options(client)
    assert main(["show", str(run.id), *options]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["field", "value"] and "deleted" in lines  # empty: not deleted
    st.delete_runs(client, [run.id])
    when = run_time(client, run.id, "time_deleted").isoformat(sep=" ", timespec="seconds")
    assert main(["show", str(run.id), *options]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"run {run.id} was deleted at {when} (see sqltrack restore)"
    assert lines[1].split() == ["field", "value"] and ["deleted", *when.split()] in [
        line.split() for line in lines
    ]
    assert main(["show", str(run.id), "--format", "csv", *options]) == 0
    lines = capsys.readouterr().out.splitlines()  # CSV and JSON: the field only
    assert lines[0] == "field,value" and f"deleted,{when}" in lines
    rows = {r[0]: r[1:] for r in st.compare_runs(client, run.id, sweep["ok"].id)}
    assert rows["deleted"][1] is None and rows["deleted"][0].isoformat(sep=" ")[:19] == when[:19]
    st.restore_runs(client, [run.id])
    st.delete_experiments(client, "sweep")  # its runs are deleted with it
    assert main(["show", str(sweep["ok"].id), *options]) == 0
    assert capsys.readouterr().out.startswith(f"run {sweep['ok'].id} was deleted at ")
    assert main(["restore", *options]) == 1
    assert capsys.readouterr().err == (
        "sqltrack: error: give RUN ids or filters (--experiment, --status, --tag, --arg)\n"
    )
