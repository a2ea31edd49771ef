"""Deleting, restoring and collecting runs (sqltrack.lifecycle), on both engines."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from conftest import cli_options, q

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
    st.delete_runs(client, [run.id])
    q(client, "UPDATE runs SET time_deleted = ?", client.engine.adapt_datetime(
        datetime.now(timezone.utc) - timedelta(days=1)))  # fmt: skip
    assert st.gc_deleted(client, deleted_before=60, batch=4) == [run.id]
    assert q(client, "SELECT count(*) FROM metrics") == [(0,)]


def test_cli_delete_restore_gc(
    client: Client, sweep: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    options = cli_options(client)
    assert main(["delete", "--status", "FAILED", "--dry-run", *options]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "would be deleted: 3 runs"
    assert len(st.find_runs(client)) == 4
    assert main(["delete", str(sweep["bad1"].id), *options]) == 0
    assert capsys.readouterr().out.splitlines() == ["deleted: 1 runs", str(sweep["bad1"].id)]
    assert main(["restore", "--experiment", "sweep", *options]) == 0
    assert capsys.readouterr().out.splitlines() == ["restored: 1 runs", str(sweep["bad1"].id)]
    assert main(["gc", "--deleted-before", "0", "--dry-run", *options]) == 0
    assert capsys.readouterr().out.splitlines() == ["would remove: 0 runs"]
    assert main(["delete", *options]) == 1  # neither runs nor filters
    assert "give run ids or filters" in capsys.readouterr().err


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
