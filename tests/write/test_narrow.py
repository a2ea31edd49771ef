"""Any metric a lab logs: the narrow storage beside the wide table, on both engines.

One test per shape of the issue that brought the narrow storage (each failed before
it): an eval harness's wide step, more values in one step than a row holds, names as
frameworks write them, a metric typed otherwise by another project, and the row cost
of a training run in a table of many names.
"""

from __future__ import annotations

import math
import sys
from datetime import datetime, timezone
from typing import Any

import pytest
from conftest import env_for, metric_columns, q

import sqltrack as st
from sqltrack import Client, Experiment, InvalidMetricName

RUNS = """
import sys
import sqltrack as st
run = st.Experiment(st.Client(), name=sys.argv[1]).get_run()
with run.track():
    run.add_metrics({f"{sys.argv[1]}_task{i}_acc_norm": i / 2000 for i in range(2000)}, step=0)
    run.add_metrics({"train_loss": 0.5}, step=1)
print(run.id)
"""


def _narrow_count(client: Client) -> int:
    return int(q(client, "SELECT count(*) FROM metric_points")[0][0])


def test_two_eval_harnesses_of_2000_metrics_per_step_in_job_processes(
    client: Client, db_params: dict[str, Any]
) -> None:
    """Before: the first harness failed on SQLite (2,000 columns), the second on
    PostgreSQL (1,600), and then nobody could add a name."""
    import subprocess

    ids = []
    for harness in ("mmlu", "bbh"):
        done = subprocess.run(
            [sys.executable, "-c", RUNS, harness],
            env=env_for(db_params),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert "sqltrack:" not in done.stderr  # nothing retried, spooled or warned
        ids.append(int(done.stdout.split()[-1]))
    assert _narrow_count(client) == 4000
    assert len(metric_columns(client)) - 3 <= client.engine.column_budget
    names, rows = st.read_metrics(client, ids[1])
    assert len(names) == 3 + 2001 and len(rows) == 2
    assert rows[0][names.index("bbh_task17_acc_norm")] == 17 / 2000
    assert rows[1][names.index("train_loss")] == 0.5
    statuses = q(client, "SELECT status FROM runs ORDER BY id")
    assert statuses == [("COMPLETED",), ("COMPLETED",)]
    third = Experiment(client, name="later").get_run()
    third.add_metrics({"brand_new_metric": 1.0})  # the wide table still takes names
    assert "brand_new_metric" in metric_columns(client)


def test_1100_values_in_one_step_of_a_tracked_run(client: Client, tmp_path: Any) -> None:
    """Before (PostgreSQL): "row is too big"; the step, every later one and the status
    went to a spool that could never be pushed."""
    run = Experiment(client, name="wide").get_run()
    step = {f"probe_{i}": float(i) for i in range(1100)}
    with run.track():
        run.add_metrics(step, step=0)
        run.add_metrics({"loss": 0.25}, step=1)
    assert q(client, "SELECT status FROM runs WHERE id = ?", run.id) == [("COMPLETED",)]
    assert not list((tmp_path / "spool").glob("**/*.jsonl"))
    # nor do 1,100 columns of one run burden every row of the lab (SQLite: a byte each)
    assert len(metric_columns(client)) - 3 <= client.engine.column_budget
    df = st.metrics_dataframe(client, run.id)
    assert len(df) == 2 and df.loc[0, "probe_1099"] == 1099.0 and df.loc[1, "loss"] == 0.25


FRAMEWORK_NAMES = {
    "train/loss": 0.5,  # Lightning, HF Trainer
    "eval/accuracy": 0.75,
    "lr-Adam": 1e-3,  # Lightning's LearningRateMonitor
    "val.acc": 0.8,
    "Loss": 1.0,
    "loss": 2.0,  # another metric than Loss
    "epoch time s": 12.5,  # spaces inside are allowed
    "m" * 120: 3.0,
}


def test_names_as_frameworks_write_them_are_read_back_exactly(client: Client) -> None:
    """Before: InvalidMetricName ("try 'train_loss'"), Loss and loss one name, 63 bytes."""
    run = Experiment(client, name="names").get_run()
    run.add_metrics(FRAMEWORK_NAMES, step=3)
    names, rows = st.read_metrics(client, run.id)
    assert dict(zip(names[3:], rows[0][3:], strict=True)) == FRAMEWORK_NAMES
    names, rows = st.read_metrics(client, run.id, ["Loss", "train/loss"])
    assert names[3:] == ["Loss", "train/loss"] and rows == [(run.id, 3, 0.0, 1.0, 0.5)]
    long = q(client, "SELECT metric, value FROM metrics_long WHERE run_id = ?", run.id)
    assert dict(long) == FRAMEWORK_NAMES
    summary = {row[0]: row[2] for row in st.metric_summary(client, run.id)}
    assert summary["Loss"] == 1.0 and summary["train/loss"] == 0.5  # before its summary


@pytest.mark.parametrize(
    "name", ["", " loss", "loss ", "a" * 251, "loss;drop", "l\u00f6ss\n", "x'y"]
)  # fmt: skip
def test_names_beyond_the_rules_are_refused_at_once(run: Any, name: str) -> None:
    with pytest.raises(InvalidMetricName):
        run.add_metrics({name: 1.0})


def test_a_metric_typed_otherwise_by_another_project(client: Client) -> None:
    """Before: project B's job crashed ("column is of type int, got a float value")."""
    with client:  # project A's column, as sqltrack 0.2 made it for an int
        column_type = "BIGINT" if client.engine.name == "postgres" else "INTEGER"
        client.execute(f"ALTER TABLE metrics ADD COLUMN epoch {column_type}")
        client.execute(f"ALTER TABLE metrics ADD COLUMN note_score {column_type}")
    client.metrics_cache = None
    a = Experiment(client, name="project_a").get_run()
    a.add_metrics({"epoch": 1, "note_score": 4}, step=0)
    b = Experiment(client, name="project_b").get_run()
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    b.add_metrics({"epoch": 0.5, "note_score": "good"}, step=0)
    b.add_metrics({"epoch": 2**60 + 1, "note_score": when}, step=1)
    b.add_metrics({"epoch": 1.5, "note_score": True}, step=2)
    assert st.read_metrics(client, a.id)[1] == [(a.id, 0, 0.0, 1, 4)]
    _, rows = st.read_metrics(client, b.id, ["epoch", "note_score"])
    assert rows == [
        (b.id, 0, 0.0, 0.5, "good"),
        (b.id, 1, 0.0, 2**60 + 1, when),
        (b.id, 2, 0.0, 1.5, True),
    ]
    assert isinstance(rows[2][4], bool) and isinstance(rows[1][3], int)
    summary = {row[0]: row[1:] for row in st.metric_summary(client, b.id)}
    assert summary["epoch"][0] == 3  # ints and floats alike, wherever they are stored


def test_a_new_numeric_metric_takes_ints_and_floats(client: Client, run: Any) -> None:
    run.add_metrics({"epoch": 1}, step=0)  # an int first: the column is a float column
    run.add_metrics({"epoch": 1.5}, step=1)
    assert metric_columns(client)["epoch"].lower() in ("double precision", "real")
    assert _narrow_count(client) == 0
    assert [r[3] for r in st.read_metrics(client, run.id)[1]] == [1.0, 1.5]


def test_a_training_run_keeps_its_row_small_among_many_names(client: Client) -> None:
    """Before: a 3-metric run paid for 900 other columns in every row (80 B/value
    instead of 39). Past the column budget, other names go to the narrow storage."""
    train = Experiment(client, name="train").get_run()
    train.add_metrics({"loss": 1.0, "acc": 0.5, "lr": 0.1}, step=0)
    others = Experiment(client, name="others").get_run()
    for start in range(0, 900, 10):  # many projects, ten names each
        others.add_metrics({f"other_{i}": 1.0 for i in range(start, start + 10)}, step=start)
    columns = len(metric_columns(client)) - 3
    assert columns <= client.engine.column_budget
    assert _narrow_count(client) == 900 - (columns - 3)
    train.add_metrics({"loss": 0.5, "acc": 0.6, "lr": 0.1}, step=1)  # still wide
    assert _narrow_count(client) == 900 - (columns - 3)
    if client.engine.name == "postgres":  # the row itself, header and null bitmap
        size = q(client, "SELECT max(pg_column_size(m.*)) FROM metrics m WHERE run_id = ?",
                 train.id)[0][0]  # fmt: skip
        assert size <= 1.5 * (24 + 6 * 8), size


def test_metrics_long_answers_a_question_over_both_storages(client: Client) -> None:
    runs = [Experiment(client, name="eval").get_run() for _ in range(3)]
    for k, run in enumerate(runs):
        run.add_metrics({f"mmlu_task{i}_acc": (i + k) / 100 for i in range(100)}, step=0)
        run.add_metrics({"mmlu_avg": 0.5, "loss": 1.0}, step=1)  # wide columns
    rows = q(
        client,
        "SELECT run_id, avg(value) FROM metrics_long WHERE metric LIKE 'mmlu_%' "
        "GROUP BY run_id ORDER BY run_id",
    )
    expected = [(sum((i + k) / 100 for i in range(100)) + 0.5) / 101 for k in range(3)]
    assert [r[0] for r in rows] == [r.id for r in runs]
    assert all(math.isclose(r[1], e) for r, e in zip(rows, expected, strict=True))
    assert q(client, "SELECT count(*) FROM metrics_long WHERE metric = 'loss'") == [(3,)]


def test_every_reader_and_gc_see_the_narrow_storage(client: Client) -> None:
    exp = Experiment(client, name="readers")
    run = exp.get_run()
    with run.track():
        for step in range(5):
            run.add_metrics({"train/loss": 1.0 / (step + 1), "plain": float(step)}, step=step)
    assert st.summarize(client, "readers", "train/loss:min")[0][:2] == (1, 0.2)
    shown = {row[0]: row for row in st.metric_summary(client, run.id)}
    assert shown["train/loss"][1] == 5 and shown["train/loss"][2] == 0.2
    data = st.report_data(client, "readers")
    assert data["curves"][str(run.id)]["train/loss"]["value"] == [
        1.0, 0.5, 1 / 3, 0.25, 0.2
    ]  # fmt: skip
    st.delete_runs(client, [run.id])
    st.gc_deleted(client, deleted_before=0, batch=2)
    assert _narrow_count(client) == 0


def test_a_database_before_v010_works_until_setup_then_uses_the_narrow_storage(
    empty_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqltrack._db import schema

    scripts = schema.builtin_scripts
    monkeypatch.setattr(
        schema,
        "builtin_scripts",
        lambda engine: [p for p in scripts(engine) if p.name < "v010"],  # and none after
    )
    st.setup(empty_client)
    run = Experiment(empty_client, name="old").get_run()
    run.add_metrics({"s": "text", "f": 1.0}, step=0)
    with pytest.raises(st.InvalidValue, match="column is of type"):
        run.add_metrics({"f": "not a float"}, step=1)  # as before: refused, nothing lost
    with pytest.raises(InvalidMetricName, match="cannot be a column"):
        run.add_metrics({"train/loss": 1.0}, step=1)
    monkeypatch.setattr(schema, "builtin_scripts", scripts)
    applied = [r.name for r in st.setup(empty_client) if r.applied]
    assert applied == [
        "sqltrack/v010_metric_points.sql",
        "sqltrack/v011_owners.sql",
        "sqltrack/v012_metric_blocks.sql",
    ]
    run.add_metrics({"f": "not a float", "train/loss": 1.0}, step=1)
    long = q(empty_client, "SELECT step, metric, value, text FROM metrics_long ORDER BY 1, 2")
    assert long == [
        (0, "f", 1.0, None), (0, "s", None, "text"),
        (1, "f", None, "not a float"), (1, "train/loss", 1.0, None),
    ]  # fmt: skip


def test_a_key_has_its_value_in_one_storage_the_latest(client: Client, run: Any) -> None:
    """A value that does not fit its column goes narrow and empties the column at its
    key; later values of that name stay narrow: the latest value is the one read."""
    run.add_metrics({"acc": 0.5}, step=1)
    run.add_metrics({"acc": "bad"}, step=1)
    run.add_metrics({"acc": 0.9}, step=1)
    run.add_metrics({"acc": 0.7}, step=2)
    assert [r[3] for r in st.read_metrics(client, run.id)[1]] == [0.9, 0.7]
    assert q(client, "SELECT step, acc FROM metrics ORDER BY step") == [(1, None)]
    long = q(client, "SELECT step, value FROM metrics_long WHERE metric = 'acc' ORDER BY step")
    assert long == [(1, 0.9), (2, 0.7)]  # counted once each
    st.refresh_summaries(client, run.id)
    assert {r[0]: r[1:3] for r in st.metric_summary(client, run.id)}["acc"] == (2, 0.7)


def test_an_int_past_2_53_first_makes_no_column(client: Client, run: Any) -> None:
    run.add_metrics({"big": 2**60, "plain": 1.0}, step=2)
    run.add_metrics({"big": 3, "plain": 2.0}, step=3)
    run.add_metrics({"big": None}, step=4)
    assert "big" not in metric_columns(client) and "plain" in metric_columns(client)
    values = [r[3] for r in st.read_metrics(client, run.id, ["big"])[1]]
    assert values == [2**60, 3, None]


def test_names_that_cannot_be_columns_leave_room_for_those_that_can(client: Client) -> None:
    run = Experiment(client, name="room").get_run()
    plain = [f"n{i}" for i in range(min(client.engine.column_budget, 64) - 1)]
    run.add_metrics({**{n: 1.0 for n in plain}, "train/loss": 1.0, "Loss": 2.0}, step=0)
    assert set(plain) <= set(metric_columns(client))


def test_a_metric_asked_for_is_a_column_even_without_values(client: Client) -> None:
    a = Experiment(client, name="asked").get_run()
    b = Experiment(client, name="asked").get_run()
    a.add_metrics({"train/loss": 1.0, "lr": 0.1}, step=0)
    b.add_metrics({"lr": 0.2}, step=0)
    names, rows = st.read_metrics(client, b.id, ["lr", "train/loss"])
    assert names == ["run_id", "step", "progress", "lr", "train/loss"]
    assert rows == [(b.id, 0, 0.0, 0.2, None)]


def test_metrics_long_shows_columns_added_by_a_setup_script(client: Client, tmp_path: Any) -> None:
    script = tmp_path / "f1.sql"
    script.write_text("ALTER TABLE metrics ADD COLUMN f1 REAL;\n")
    st.setup(client, script)
    run = Experiment(client, name="f1").get_run()
    run.add_metrics({"f1": 0.5, "Loss": 1.0}, step=0)
    rows = q(client, "SELECT metric, value FROM metrics_long ORDER BY metric")
    assert rows == [("Loss", 1.0), ("f1", 0.5)]


def test_nan_in_the_narrow_storage_warns_where_it_is_not_kept(client: Client, run: Any) -> None:
    if client.engine.stores_nan:
        run.add_metrics({"Loss": math.nan}, step=0)
        assert math.isnan(st.read_metrics(client, run.id)[1][0][3])
        return
    with pytest.warns(st.SQLTrackWarning, match="stores NaN as NULL"):
        run.add_metrics({"Loss": math.nan}, step=0)


def test_a_column_another_writer_made_first_of_another_kind(
    client: Client, db_params: dict[str, Any]
) -> None:
    """Two projects first log one name at the same moment, one a str, one a float: the
    one whose column came second finds the other's kind and stores its value narrow
    (before: a permanent error on PostgreSQL, a str in a REAL column on SQLite)."""
    a = Experiment(client, name="a").get_run()
    a.add_metrics({"x": 1.0, "epoch": None}, step=0)  # this client knows epoch is no column
    other = Client({}, **db_params)
    Experiment(other, name="b").get_run().add_metrics({"epoch": "e1"}, step=0)
    a.add_metrics({"epoch": 0.5}, step=1)
    assert metric_columns(client)["epoch"].lower() == "text"
    assert [r[3] for r in st.read_metrics(client, a.id, ["epoch"])[1]] == [None, 0.5]


def test_a_column_made_by_another_writer_while_this_one_adds_it(
    client: Client, db_params: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The narrowest window: the other writer's column appears after this one read the
    columns and before its ALTER (PostgreSQL's ADD COLUMN IF NOT EXISTS then does
    nothing): the kinds read back after adding send the value narrow."""
    if client.engine.name == "sqlite":
        pytest.skip("SQLite: the writer holds the database's write lock from its read of the "
                    "columns to its ALTER, so no other writer can come between")  # fmt: skip
    run = Experiment(client, name="a").get_run()
    other = Experiment(Client({}, **db_params), name="b").get_run()
    add_columns = client.engine.add_columns

    def late(cursor: Any, columns: Any, lock_timeout: Any = None) -> None:
        other.add_metrics({"epoch": "e1"}, step=0)  # commits its TEXT column first
        add_columns(cursor, columns, lock_timeout)

    monkeypatch.setattr(client.engine, "add_columns", late)
    run.add_metrics({"epoch": 0.5}, step=1)
    assert metric_columns(client)["epoch"].lower() == "text"
    assert [r[3] for r in st.read_metrics(client, run.id, ["epoch"])[1]] == [0.5]


def test_a_wide_runs_summary_never_reads_the_narrow_storage(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The heartbeat of a training run whose names are all columns costs no query of
    metric_points; a run with narrow names has them summarized."""
    queries: list[str] = []
    query = client.query

    def recording(sql: str, params: Any = None) -> Any:
        queries.append(sql)
        return query(sql, params)

    monkeypatch.setattr(client, "query", recording)
    wide = Experiment(client, name="wide").get_run()
    with wide.track():
        for step in range(3):
            wide.add_metrics({"loss": 1.0 / (step + 1)}, step=step)
    assert not [q for q in queries if "metric_points" in q]
    narrow = Experiment(client, name="narrow").get_run()
    with narrow.track():
        for step in range(3):
            narrow.add_metrics({"train/loss": 1.0 / (step + 1)}, step=step)
    assert [q for q in queries if "metric_points" in q]
    summary = {r[0]: r[1:] for r in st.metric_summary(client, narrow.id)}
    assert summary["train/loss"][:2] == (3, 1 / 3)
    stored = q(client, "SELECT count FROM run_summaries WHERE metric = 'train/loss'")
    assert stored == [(3,)]  # summarized at the end of track(), not only by metric_summary


def test_a_frameworks_call_repeated_in_the_buffered_writers_batches(client: Client) -> None:
    """Lightning's every step: two names that go narrow and an int ``epoch`` that goes to a
    float column. The writer's later batches reuse the first one's plan; an int past
    2**53 and a narrow value of a name that is also a column still go where they must."""
    run = Experiment(client, name="framework").get_run()
    run.start(buffered=True)

    def steps(first: int, last: int, epoch: Any = 0, acc: Any = 0.25) -> None:
        for step in range(first, last):
            run.add_metrics({"train/loss": step / 100, "acc": acc, "epoch": epoch}, step=step)
        run.flush()

    steps(0, 10)  # the plan is made
    steps(10, 20)  # and reused
    run.add_metrics({"train/loss": 9.0, "acc": 0.25, "epoch": 0}, step=15)  # again: the last wins
    steps(20, 21, epoch=2**60)  # (no float holds it exactly)
    steps(21, 25)
    steps(21, 23, acc="text")  # replaced by values that go narrow: the column emptied there
    steps(23, 25, acc="text")  # and in a later batch, with that plan
    run.stop()

    names, rows = st.read_metrics(client, run.id, ["train/loss", "acc", "epoch"])
    got = {row[names.index("step")]: row[3:] for row in rows}
    assert sorted(got) == list(range(25))
    assert got[3] == (0.03, 0.25, 0.0)  # (epoch: a float column takes ints)
    assert got[15] == (9.0, 0.25, 0)
    assert got[20] == (0.2, 0.25, 2**60)
    assert [got[s][1] for s in range(21, 25)] == ["text"] * 4
    wide = dict(q(client, "SELECT step, acc FROM metrics WHERE run_id = ?", run.id))
    assert wide[19] == 0.25 and [wide.get(s) for s in range(21, 25)] == [None] * 4
    long = q(client, "SELECT count(*) FROM metrics_long WHERE run_id = ?", run.id)[0][0]
    assert long == 25 * 3  # each value once, in one storage
    # train/loss; epoch from 2**60 on (a name with narrow values keeps them there); texts
    assert _narrow_count(client) == 25 + 5 + 4
