"""Merging a job's whole SQLite database into the lab's database (`sqltrack sync FILE.db`);
the target is each engine in turn."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from conftest import cli_options, json_column, metric_columns, q

import sqltrack as st
from sqltrack import Client, Experiment, Run, SchemaError
from sqltrack._admin.merge import merge_database
from sqltrack.cli import main

WHEN = datetime(2031, 2, 3, 4, 5, 6, tzinfo=timezone.utc)


@pytest.fixture
def node_db(tmp_path: Path) -> Path:
    """A job's SQLite database: two experiments, an explicit (Slurm) run id and two
    generated ones, links, tags, args, every kind of metric."""
    path = tmp_path / "node.db"
    source = Client({}, engine="sqlite", dbpath=str(path))
    st.setup(source)
    shared = Experiment(source, name="shared")
    only = Experiment(source, name="only-here").set_comment("from the node").add_tags("node")
    slurm = shared.get_run(run_id=4242).set_args({"lr": 0.1}).add_tags("keep")
    slurm.set_env({"HOST": "node17"}).set_extras({"git": "abc"})
    with slurm.track():
        for step in range(3):
            metrics = {"loss": 1.0 / (step + 1), "n": step, "flag": step % 2 == 0}
            slurm.add_metrics({**metrics, "note": f"s{step}", "t": WHEN}, step=step)
    first = shared.get_run()  # generated: collides with the target's first generated id
    first.add_metrics({"loss": 0.5, "src_only": 7}, step=0, progress=0.5)
    second = only.get_run().add_link("resumes", slurm.id)
    second.add_metrics({"loss": 0.25}, step=1)
    assert first.id == 10_000_000_000
    return path


def _runs(client: Client) -> dict[int, tuple[Any, ...]]:
    rows = q(client, "SELECT id, experiment_id, status FROM runs ORDER BY id")
    return {r[0]: r[1:] for r in rows}


def test_merge_keeps_explicit_ids_renumbers_generated_ones_and_is_idempotent(
    client: Client, node_db: Path
) -> None:
    shared = Experiment(client, name="shared")  # the lab's database had this already
    mine = shared.get_run()
    mine.add_metrics({"loss": 9.0}, step=0)
    assert mine.id == 10_000_000_000

    result = merge_database(client, node_db)
    assert (result.experiments_created, result.runs_created, result.runs_updated) == (1, 3, 0)
    assert result.rows == 5 and result.rows_left_out == 0
    assert result.run_ids[4242] == 4242  # the Slurm job keeps its id
    first, second = result.run_ids[10_000_000_000], result.run_ids[10_000_000_001]
    assert len({mine.id, first, second}) == 3  # generated ids never collide

    only = q(client, "SELECT id, comment FROM experiments WHERE name = 'only-here'")[0]
    assert only[1] == "from the node"
    assert json_column(client, "experiments", "tags", only[0]) == {"node": True}
    runs = _runs(client)
    assert runs[4242] == (shared.id, "COMPLETED") and runs[second] == (only[0], "PENDING")
    assert json_column(client, "runs", "args", 4242) == {"lr": 0.1}
    assert json_column(client, "runs", "env", 4242) == {"HOST": "node17"}
    assert json_column(client, "runs", "extras", 4242) == {"git": "abc"}
    assert json_column(client, "runs", "tags", 4242) == {"keep": True}
    assert q(client, "SELECT from_id, kind, to_id FROM run_links") == [(second, "resumes", 4242)]
    rows = q(client, "SELECT step, loss, n, flag, note, t FROM metrics WHERE run_id = 4242")
    assert [(r[0], r[1], r[2], bool(r[3]), r[4]) for r in rows] == [
        (s, 1.0 / (s + 1), s, s % 2 == 0, f"s{s}") for s in range(3)
    ]
    assert str(rows[0][5]).replace("T", " ").startswith("2031-02-03 04:05:06")
    assert q(client, "SELECT progress, src_only FROM metrics WHERE run_id = ?", first) == [(0.5, 7)]
    assert q(client, "SELECT loss FROM metrics WHERE run_id = ?", mine.id) == [(9.0,)]

    before = q(client, "SELECT run_id, step, progress, loss FROM metrics ORDER BY 1, 2, 3")
    again = merge_database(client, node_db)
    assert (again.experiments_created, again.runs_created) == (0, 0)
    assert again.run_ids == result.run_ids  # found by uid
    assert q(client, "SELECT run_id, step, progress, loss FROM metrics ORDER BY 1, 2, 3") == before
    assert _runs(client) == runs


def test_a_job_that_was_partly_in_the_target_is_completed_not_doubled(
    client: Client, node_db: Path
) -> None:
    """Run 4242 reached the server before the node lost its network: the merge finishes
    it without touching what the server had that the file does not."""
    exp = Experiment(client, name="shared")
    early = exp.get_run(run_id=4242)
    early.start(updated=datetime(2000, 1, 1, tzinfo=timezone.utc))
    early.add_metrics({"loss": 1.0, "server_only": 5.0}, step=0, updated=None)
    result = merge_database(client, node_db)
    assert result.run_ids[4242] == 4242 and result.runs_updated == 1
    assert _runs(client)[4242][1] == "COMPLETED"
    assert q(client, "SELECT count(*), max(server_only) FROM metrics WHERE run_id = 4242") == [
        (3, 5.0)  # the file's NULLs did not overwrite the server's value
    ]


def test_a_newer_run_in_the_target_keeps_its_fields(client: Client, node_db: Path) -> None:
    exp = Experiment(client, name="shared")
    exp.get_run(run_id=4242).start(updated=datetime(2099, 1, 1, tzinfo=timezone.utc))
    result = merge_database(client, node_db)
    assert result.runs_kept == 1
    assert _runs(client)[4242][1] == "RUNNING"
    assert q(client, "SELECT count(*) FROM metrics WHERE run_id = 4242") == [(3,)]


def test_sync_merges_a_database_file(
    client: Client, node_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    options = cli_options(client)
    assert main(["sync", *options, str(node_db)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"merged: {node_db} (2 experiments and 3 runs new")
    assert main(["sync", *options, str(node_db)]) == 0
    again = capsys.readouterr().out  # the same file again: it says that nothing changed
    assert "0 experiments and 0 runs new, 0 runs updated, 3 unchanged, 0 kept" in again
    assert "0 metric rows new or changed, 5 unchanged" in again


def test_a_second_merge_counts_only_what_changed(client: Client, node_db: Path) -> None:
    merge_database(client, node_db)
    source = Client({}, engine="sqlite", dbpath=str(node_db))
    Run(source, None, 4242).add_metrics({"loss": 0.125}, step=2)  # one value changed
    Run(source, None, 4242).add_metrics({"loss": 0.0625}, step=3)  # one row new
    result = merge_database(client, node_db)
    assert (result.rows, result.rows_unchanged) == (2, 4)
    assert (result.runs_updated, result.runs_unchanged) == (1, 2)  # time_updated moved


def test_a_database_is_not_merged_into_itself(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    client = Client({}, engine="sqlite", dbpath=str(path))
    st.setup(client)
    with pytest.raises(st.SQLTrackError, match="is the database sync writes to"):
        merge_database(client, path)
    (tmp_path / "link.db").symlink_to(path)
    with pytest.raises(st.SQLTrackError, match="is the database sync writes to"):
        merge_database(client, tmp_path / "link.db")


def test_what_is_not_a_sqltrack_database_is_refused(client: Client, tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(SchemaError, match="is not a sqltrack database"):
        merge_database(client, other)
    with pytest.raises(st.SQLTrackError, match="no such file"):
        merge_database(client, tmp_path / "missing.db")
    assert not (tmp_path / "missing.db").exists()


def test_an_older_database_gets_uids_first(client: Client, node_db: Path) -> None:
    """A file made before schema version 2 is upgraded (its runs get uids) and merged."""
    with sqlite3.connect(node_db) as conn:
        conn.execute("DROP TRIGGER runs_uid")
        conn.execute("DROP INDEX runs_uid_idx")
        conn.execute("ALTER TABLE runs DROP COLUMN uid")
        conn.execute("DELETE FROM sqltrack_scripts WHERE name LIKE '%v002%'")
    first = merge_database(client, node_db)
    again = merge_database(client, node_db)
    assert first.runs_created == 3 and again.runs_created == 0
    assert Run(client, run_id=4242).id == 4242


# -- a merged file is input like any other ---------------------------------------------------


def _add_column(path: Path, name: str, value: Any, run_id: int) -> None:
    """Give the file's metrics table a column of any name (what a crafted file holds)."""
    with sqlite3.connect(path) as conn:
        quoted = '"' + name.replace('"', '""') + '"'
        conn.execute(f"ALTER TABLE metrics ADD COLUMN {quoted} REAL")
        conn.execute(f"UPDATE metrics SET {quoted} = ? WHERE run_id = ?", (value, run_id))
    conn.close()


INJECTIONS = {
    "postgres": [
        "x || (SELECT string_agg(rolname, ',') FROM pg_roles)",
        "x || pg_read_file('/etc/passwd')",
    ],
    "sqlite": ["x || (SELECT group_concat(name) FROM sqlite_master)"],
}


def test_column_names_of_a_file_never_become_sql(
    client: Client, node_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file whose metrics table has columns named like SQL: they are left out and the
    command says which; nothing of the server (its roles, its files) is stored."""
    for name in INJECTIONS[client.engine.name]:
        _add_column(node_db, name, 1.0, 4242)
    before = set(metric_columns(client))
    assert main(["sync", *cli_options(client), str(node_db)]) == 0
    out = capsys.readouterr().out
    for name in INJECTIONS[client.engine.name]:
        assert f"left out: column {name!r}" in out
    assert set(metric_columns(client)) - before == {"loss", "n", "flag", "note", "t", "src_only"}
    for row in q(client, "SELECT * FROM metrics"):
        assert not any(isinstance(v, str) and ("postgres" in v or "root:" in v) for v in row)
    assert q(client, "SELECT count(*) FROM metrics WHERE run_id = 4242") == [(3,)]


def test_names_that_differ_in_case_or_are_long_are_merged_as_themselves(
    client: Client, node_db: Path
) -> None:
    """``Loss`` is another metric than ``loss`` (it would overwrite it in a SQLite
    column); two names longer than 63 bytes would land in one truncated PostgreSQL
    column: all three go to the narrow storage, each its own metric."""
    here = Experiment(client, name="shared").get_run(run_id=4242)  # the same job
    here.add_metrics({"loss": 5.0}, step=0)
    with sqlite3.connect(node_db) as conn:
        conn.execute('ALTER TABLE metrics RENAME COLUMN loss TO "Loss"')
    conn.close()
    _add_column(node_db, "a" * 70, 1.0, 4242)
    _add_column(node_db, "a" * 63 + "b" * 7, 2.0, 4242)
    result = merge_database(client, node_db)
    assert result.columns_left_out == {}
    rows = q(client, "SELECT step, loss FROM metrics WHERE run_id = 4242 ORDER BY step")
    assert rows == [(0, 5.0), (1, None), (2, None)]  # 'Loss' overwrote nothing
    assert not any(c.startswith("aaaa") for c in metric_columns(client))
    long = q(client, "SELECT metric, count(*) FROM metrics_long WHERE run_id = 4242 "
                     "GROUP BY metric ORDER BY metric")  # fmt: skip
    wanted = {"Loss", "loss", "a" * 70, "a" * 63 + "b" * 7}
    assert [r for r in long if r[0] in wanted] == [
        ("Loss", 3), ("a" * 70, 3), ("a" * 63 + "b" * 7, 3), ("loss", 1)
    ]  # fmt: skip
    stored = q(client, "SELECT count(*) FROM metric_points")
    again = merge_database(client, node_db)
    assert q(client, "SELECT count(*) FROM metric_points") == stored  # nothing doubled
    assert again.rows == 0  # nor anything written again
    assert again.columns_left_out == {}


def test_an_explicit_id_of_another_experiment_is_a_conflict(client: Client, node_db: Path) -> None:
    """Run 4242 of the file's experiment 'shared' never updates run 4242 of another
    experiment: the file's run gets a new id, the result says so, nothing is overwritten."""
    theirs = Experiment(client, name="case").get_run(run_id=4242).set_comment("mine")
    theirs.add_metrics({"loss": 7.0}, step=0)
    result = merge_database(client, node_db)
    assert result.runs_updated == 0
    moved = result.run_ids[4242]
    assert moved != 4242 and moved >= 10_000_000_000
    (conflict,) = result.conflicts
    assert "run 4242" in conflict and "'case'" in conflict and f"merged as run {moved}" in conflict
    assert q(client, "SELECT comment FROM runs WHERE id = 4242") == [("mine",)]
    assert q(client, "SELECT step, loss FROM metrics WHERE run_id = 4242") == [(0, 7.0)]
    assert q(client, "SELECT count(*) FROM metrics WHERE run_id = ?", moved) == [(3,)]
    again = merge_database(client, node_db)  # found by its uid now: no second copy
    assert again.run_ids[4242] == moved and again.runs_created == 0 and not again.conflicts


def test_slurm_ids_of_two_clusters_do_not_collide(client: Client, node_db: Path) -> None:
    here = Experiment(client, name="shared").get_run(run_id=4242)
    here.set_env({"SLURM_CLUSTER_NAME": "alpha"})
    with sqlite3.connect(node_db) as conn:
        conn.execute("""UPDATE runs SET env = '{"SLURM_CLUSTER_NAME": "beta"}' WHERE id = 4242""")
    conn.close()
    result = merge_database(client, node_db)
    (conflict,) = result.conflicts
    assert "cluster 'alpha', not 'beta'" in conflict
    assert result.run_ids[4242] != 4242
    assert json_column(client, "runs", "env", 4242) == {"SLURM_CLUSTER_NAME": "alpha"}


def test_a_files_narrow_values_are_merged_once(client: Client, tmp_path: Path) -> None:
    """Values of the file's narrow storage (names as frameworks write them, an int past
    2**53, a str for a float column) arrive as logged; a second merge writes nothing."""
    path = tmp_path / "narrow.db"
    source = Client({}, engine="sqlite", dbpath=str(path))
    st.setup(source)
    run = Experiment(source, name="narrow").get_run(run_id=777)
    with run.track():
        for step in range(3):
            run.add_metrics({"train/loss": 1.0 / (step + 1), "Loss": step, "x": 0.5}, step=step)
        run.add_metrics({"x": "text", "big": 2**60}, step=3)
    first = merge_database(client, path)
    assert first.rows >= 4
    _, rows = st.read_metrics(client, 777, ["train/loss", "Loss", "x", "big"])
    assert [r[1:] for r in rows] == [
        (0, 0.0, 1.0, 0, 0.5, None),
        (1, 0.0, 0.5, 1, 0.5, None),
        (2, 0.0, 1 / 3, 2, 0.5, None),
        (3, 0.0, None, None, "text", 2**60),
    ]
    again = merge_database(client, path)
    assert again.rows == 0 and again.rows_unchanged >= 4
