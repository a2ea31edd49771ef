"""One server for a whole lab: every run has an owner, anyone reads, only the owner (or
an admin) changes it, enforced by PostgreSQL's row-level security (schema v011). Real
login roles on the test server, given their sqltrack roles by ``sqltrack grant``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import cli_options, pg_admin, q, run_row

import sqltrack as st
from sqltrack import Client, Experiment, PermissionDenied, Run
from sqltrack.cli import main


@pytest.fixture
def lab(client: Client, capsys: pytest.CaptureFixture[str]) -> Iterator[dict[str, Client]]:
    """Clients of four new login roles: alice and bob (writers), carol (reader), dave
    (admin), each given its role by `sqltrack grant` run as the schema's owner."""
    if client.engine.name != "postgres":
        pytest.skip("SQLite has no roles: its file mode is its permission")
    # a column made by the owner: the lab's roles add none (their new names go narrow)
    client.execute("ALTER TABLE metrics ADD COLUMN train_loss DOUBLE PRECISION")
    tag = uuid.uuid4().hex[:8]
    levels = {"alice": "writer", "bob": "writer", "carol": "reader", "dave": "admin"}
    roles = {name: f"{name}_{tag}" for name in levels}
    with pg_admin() as conn:
        for role in roles.values():
            conn.execute(f'CREATE ROLE "{role}" LOGIN')
    for name, level in levels.items():
        assert main(["grant", *cli_options(client), roles[name], f"--{level}"]) == 0
    out = capsys.readouterr().out
    assert f"{roles['carol']}: reader" in out and f"{roles['dave']}: admin" in out
    yield {name: Client({}, **{**client.engine.params, "user": r}) for name, r in roles.items()}
    with pg_admin() as conn:
        for role in roles.values():
            conn.execute(f'DROP OWNED BY "{role}"')
            conn.execute(f'DROP ROLE "{role}"')


def _sql(client: Client, role: Client, statement: str, *params: Any) -> int:
    """Run plain SQL as ``role`` (as psql would); the number of rows it changed."""
    import psycopg

    p = role.engine.params
    with psycopg.connect(
        host=p["host"], port=p.get("port"), dbname=p["dbname"], user=p["user"],
        options=f"-c search_path={p['schema']}", autocommit=True,
    ) as conn:  # fmt: skip
        return conn.execute(statement, params).rowcount


def _alices_run(lab: dict[str, Client]) -> Run:
    run = Experiment(lab["alice"], name="alice-exp").get_run()
    with run.track():
        run.add_metrics({"train_loss": 0.5, "val/acc": 0.9}, step=0)
        run.add_tags("keep")
    return run


def test_every_row_records_the_role_that_made_it(client: Client, lab: dict[str, Client]) -> None:
    run = _alices_run(lab)
    alice = lab["alice"].engine.params["user"]
    assert run_row(client, run.id, "created_by, deleted_by") == (alice, None)
    assert q(client, "SELECT created_by FROM experiments WHERE id = ?", run.experiment_id) == [
        (alice,)
    ]
    # a caller cannot say who made a row, nor change it later
    bob = lab["bob"]
    _sql(client, bob, "INSERT INTO runs (experiment_id, created_by) VALUES (%s, %s)",
         run.experiment_id, alice)  # fmt: skip
    made = q(client, "SELECT created_by FROM runs WHERE id <> ?", run.id)
    assert made == [(bob.engine.params["user"],)]
    assert _sql(client, lab["alice"], "UPDATE runs SET created_by = 'x' WHERE id = %s", run.id) == 1
    assert run_row(client, run.id, "created_by") == (alice,)


def test_a_writer_changes_only_its_own_runs_through_the_api(
    client: Client, lab: dict[str, Client]
) -> None:
    run = _alices_run(lab)
    theirs = Run(lab["bob"], run.experiment_id, run.id)
    alice, bob = (lab[n].engine.params["user"] for n in ("alice", "bob"))
    for change in (
        lambda: theirs.set_status("FAILED"),
        lambda: theirs.add_tags("mine"),
        lambda: theirs.set_comment("mine"),
    ):
        with pytest.raises(PermissionDenied) as info:
            change()
        message = str(info.value)
        assert f"belongs to role {alice!r}" in message and repr(bob) in message
        assert "\n" not in message
    with pytest.raises(PermissionDenied, match="may write only to its own runs") as info:
        theirs.add_metrics({"train_loss": 999.0}, step=0)
    assert "\n" not in str(info.value)
    assert run_row(client, run.id, "status, tags") == ("COMPLETED", {"keep": True})
    names, rows = st.read_metrics(client, run.id, ["train_loss"])
    assert [r[names.index("train_loss")] for r in rows] == [0.5]
    # bob's own run, in alice's experiment, is his to write
    mine = Run(lab["bob"], run.experiment_id)
    with mine.track(buffered=True):
        for step in range(100):  # (batches the writer copies, through row-level security)
            mine.add_metrics({"train_loss": 1.0 / (step + 1), "val/acc": 0.5}, step=step)
    assert run_row(client, mine.id, "status, created_by") == ("COMPLETED", bob)
    assert len(st.read_metrics(client, mine.id)[1]) == 100


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE runs SET status = 'FAILED' WHERE id = %s",
        "UPDATE runs SET tags = '{}' WHERE id = %s",
        "DELETE FROM run_summaries WHERE run_id = %s",
        "DELETE FROM metric_blocks WHERE run_id = %s",
        "UPDATE metric_blocks SET max = 1e9 WHERE run_id = %s",
        "DELETE FROM runs WHERE id = %s",
        "DELETE FROM experiments WHERE id = (SELECT experiment_id FROM runs WHERE id = %s)",
        # the tables of values take COPY, so triggers keep the rule there: the statement fails
        "UPDATE metrics SET train_loss = 999 WHERE run_id = %s",
        "DELETE FROM metrics WHERE run_id = %s",
        "DELETE FROM metric_points WHERE run_id = %s",
        "UPDATE metric_points SET value = 0 WHERE run_id = %s",
    ],
)
def test_plain_sql_of_another_writer_changes_nothing(
    client: Client, lab: dict[str, Client], statement: str
) -> None:
    """As bob in psql: every statement on alice's rows affects no row, or fails."""
    import psycopg

    run = _alices_run(lab)
    st.refresh_summaries(lab["alice"], run.id)
    before = st.read_metrics(client, run.id)
    table = statement.split()[2 if statement.startswith("DELETE") else 1]
    blocks = q(client, "SELECT * FROM metric_blocks WHERE run_id = ? ORDER BY metric", run.id)
    assert len(blocks) == 2  # (what bob's statements on metric_blocks try to change)
    if table in ("metrics", "metric_points"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="its own runs"):
            _sql(client, lab["bob"], statement, run.id)
    else:
        assert _sql(client, lab["bob"], statement, run.id) == 0
    after = st.read_metrics(client, run.id)
    assert after == before and after[1][0][3:] == (0.5, 0.9)
    assert run_row(client, run.id, "status, tags") == ("COMPLETED", {"keep": True})
    assert q(client, "SELECT count(*) FROM run_summaries WHERE run_id = ?", run.id) == [(2,)]
    assert q(client, "SELECT * FROM metric_blocks WHERE run_id = ? ORDER BY metric", run.id) == (
        blocks
    )


def test_plain_sql_inserts_into_another_writers_run_fail(
    client: Client, lab: dict[str, Client]
) -> None:
    import psycopg

    run = _alices_run(lab)
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        _sql(client, lab["bob"], "INSERT INTO metrics (run_id, step, progress) VALUES (%s, 7, 0)",
             run.id)  # fmt: skip


def test_a_reader_reads_everything_and_writes_nothing(
    client: Client, lab: dict[str, Client]
) -> None:
    run = _alices_run(lab)
    carol = lab["carol"]
    names, rows = st.read_metrics(carol, run.id)
    assert len(rows) == 1 and "val/acc" in names
    assert len(st.runs_dataframe(carol, run.experiment_id)) == 1
    with pytest.raises(PermissionDenied, match="sqltrack grant") as info:
        Experiment(carol, name="carols")
    assert "\n" not in str(info.value) and "missing" not in str(info.value)


def test_an_admin_changes_and_deletes_anything(
    client: Client, lab: dict[str, Client], capsys: pytest.CaptureFixture[str]
) -> None:
    run = _alices_run(lab)
    dave = lab["dave"]
    Run(dave, run.experiment_id, run.id).add_tags("checked")
    assert main(["delete", *cli_options(dave), str(run.id)]) == 0
    assert run_row(client, run.id, "deleted_by") == (dave.engine.params["user"],)
    assert main(["restore", *cli_options(dave), str(run.id)]) == 0
    assert run_row(client, run.id, "deleted_by, created_by") == (
        None,
        lab["alice"].engine.params["user"],
    )
    capsys.readouterr()


def test_the_cli_of_another_writer_says_what_it_left_alone(
    client: Client, lab: dict[str, Client], capsys: pytest.CaptureFixture[str]
) -> None:
    """bob's `sqltrack delete` of alice's run printed `deleted: 1 runs` before; now the
    server leaves it alone, and the command says so; `gc` likewise."""
    run = _alices_run(lab)
    bobs = Experiment(lab["bob"], name="bob-exp").get_run()
    bob = cli_options(lab["bob"])
    assert main(["delete", *bob, str(run.id), str(bobs.id)]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == ["deleted: 1 runs", str(bobs.id)]
    assert err.startswith("left alone: 1 runs of other roles") and err.strip().endswith(str(run.id))
    assert run_row(client, run.id, "time_deleted") == (None,)
    assert st.delete_runs(lab["bob"], [run.id]).left_alone == [run.id]

    run.remove_tags("keep")  # (gc keeps runs tagged keep)
    st.delete_runs(lab["alice"], [run.id])
    assert main(["gc", *bob, "--deleted-before", "0s"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == ["removed: 1 runs", str(bobs.id)]
    assert err.startswith("left alone: 1 runs of other roles")
    assert q(client, "SELECT count(*) FROM runs WHERE id = ?", run.id) == [(1,)]
    assert main(["gc", *cli_options(lab["dave"]), "--deleted-before", "0s"]) == 0
    assert capsys.readouterr().out.splitlines() == ["removed: 1 runs", str(run.id)]
    assert q(client, "SELECT count(*) FROM runs WHERE id = ?", run.id) == [(0,)]


def test_refresh_by_another_writer_says_what_it_left_alone(
    client: Client, lab: dict[str, Client], capsys: pytest.CaptureFixture[str]
) -> None:
    run = _alices_run(lab)
    bobs = Experiment(lab["bob"], name="bob-exp").get_run()
    with bobs.track():
        bobs.add_metrics({"train_loss": 0.5}, step=0)
    assert main(["refresh", *cli_options(lab["bob"]), str(run.id), str(bobs.id)]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == "refreshed the summaries of 1 run"
    assert err.startswith("left alone: 1 runs of other roles") and str(run.id) in err


def test_the_schemas_owner_is_left_nothing_alone(client: Client, lab: dict[str, Client]) -> None:
    run = _alices_run(lab)
    deleted = st.delete_runs(client, [run.id])
    assert deleted == [run.id] and deleted.left_alone == []


def test_setup_by_a_lab_member_with_nothing_to_do_exits_0(
    lab: dict[str, Client], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["setup", *cli_options(lab["bob"])]) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_setup_by_a_lab_member_with_a_script_to_apply_names_the_owner(
    client: Client, lab: dict[str, Client], tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "views.sql"
    script.write_text("CREATE VIEW run_count AS SELECT count(*) AS n FROM runs;")
    assert main(["setup", *cli_options(lab["bob"]), str(script)]) == 1
    err = capsys.readouterr().err
    owner = client.engine.params["user"]
    assert f"needs setup by the schema's owner, role {owner!r}" in err
    assert repr(lab["bob"].engine.params["user"]) in err and len(err.strip().splitlines()) == 1


def test_revoke_takes_every_sqltrack_role_away(
    client: Client, lab: dict[str, Client], capsys: pytest.CaptureFixture[str]
) -> None:
    bob = lab["bob"]
    role = bob.engine.params["user"]
    assert main(["grant", *cli_options(client), role, "--revoke"]) == 0
    assert f"{role}: no sqltrack role" in capsys.readouterr().out
    with pytest.raises(PermissionDenied, match="sqltrack grant"):
        Experiment(Client({}, **bob.engine.params), name="after")


LAB_JOB = """
import os, sys, time
import sqltrack as st

steps, go, theirs = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
while not os.path.exists(go):  # start together
    time.sleep(0.001)
client = st.Client()
exp = st.Experiment(client, name="shared")      # one experiment for the whole lab
run = exp.get_run()
with run.track(buffered=True):
    for step in range(steps):
        run.add_metrics({"brand_new": float(step), f"col_{step % 4}": step}, step=step)
    try:
        st.Run(client, exp.id, theirs).add_tags("mine")  # another role's run
        print("tagged", file=sys.stderr)
    except st.PermissionDenied as e:
        assert "\\n" not in str(e)
print(run.id)
"""


def test_64_jobs_of_two_writers_at_once(
    client: Client, lab: dict[str, Client], tmp_path: Any
) -> None:
    """The concurrency test's 64 jobs, half of them alice's and half bob's: every job
    ends COMPLETED with its values (new names: narrow, as a member adds no column), and
    none may tag the other's run."""
    import subprocess
    import sys
    import time

    from conftest import env_for

    alices, bobs = (Experiment(lab[n], name="shared").get_run() for n in ("alice", "bob"))
    go = tmp_path / "go"
    jobs = []
    for i in range(64):
        who, theirs = ("alice", bobs) if i % 2 else ("bob", alices)
        jobs.append((who, subprocess.Popen(
            [sys.executable, "-c", LAB_JOB, "20", str(go), str(theirs.id)],
            env=env_for(lab[who].engine.params), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )))  # fmt: skip
    time.sleep(1.0 + 64 * 0.1)  # every interpreter imports sqltrack and waits
    go.touch()
    results = []
    for who, job in jobs:
        out, err = job.communicate(timeout=180)
        results.append((who, job.returncode, out, err))
    assert [r for r in results if r[1] != 0 or r[3].strip()] == []
    owners = {int(out): lab[who].engine.params["user"] for who, _, out, _ in results}
    assert len(owners) == 64
    rows = q(client, "SELECT id, status, created_by FROM runs WHERE id IN "
             f"({', '.join(map(str, owners))})")  # fmt: skip
    assert sorted(rows) == sorted((i, "COMPLETED", owner) for i, owner in owners.items())
    for run_id in owners:
        assert len(st.read_metrics(client, run_id)[1]) == 20
    assert run_row(client, alices.id, "tags") == ({},)


def test_grant_by_a_member_says_who_may_run_it(
    lab: dict[str, Client], capsys: pytest.CaptureFixture[str]
) -> None:
    carol = lab["carol"].engine.params["user"]
    assert main(["grant", *cli_options(lab["bob"]), carol, "--writer"]) == 1
    err = capsys.readouterr().err
    assert "the schema's owner with CREATEROLE, or a superuser" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
