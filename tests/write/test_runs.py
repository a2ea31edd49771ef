"""Runs and run_* functions, on both engines."""

from __future__ import annotations

import argparse
import re
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from conftest import ROOT, json_column, q, run_row, run_time

import sqltrack as st
from sqltrack import Client, Experiment, InvalidValue, NotFound, Run
from sqltrack._base.secrets import REDACTED
from sqltrack._db.schema import sql_dir
from sqltrack._write.runs import FIRST_GENERATED_RUN_ID, MAX_EXPLICIT_RUN_ID, RUN_STATUSES

# -- creation --------------------------------------------------------------------------


def test_generated_ids_never_collide_with_explicit_ones(client: Client, exp: Experiment) -> None:
    explicit = Run(client, exp.id, run_id=FIRST_GENERATED_RUN_ID - 1)
    generated = [Run(client, exp.id).id for _ in range(3)]
    assert generated == list(range(FIRST_GENERATED_RUN_ID, FIRST_GENERATED_RUN_ID + 3))
    assert explicit.id == MAX_EXPLICIT_RUN_ID
    with pytest.raises(InvalidValue, match="explicit run ids must be at most 9999999999"):
        Run(client, exp.id, run_id=FIRST_GENERATED_RUN_ID + 100)
    assert Run(client, run_id=generated[0]).id == generated[0]  # existing ones are fine


def test_new_run_defaults(client: Client, run: Run, exp: Experiment) -> None:
    assert run.experiment_id == exp.id
    status, started, updated, comment, args, env, extras = run_row(
        client, run.id, "status, time_started, time_updated, comment, args, env, extras"
    )
    assert (status, started, updated, comment, args, env, extras) == (
        "PENDING",
        None,
        None,
        None,
        None,
        None,
        None,
    )
    created = run_time(client, run.id, "time_created")
    assert created is not None and created.tzinfo is not None
    assert abs(datetime.now(timezone.utc) - created) < timedelta(minutes=1)


def test_explicit_id_is_created_then_resumed(client: Client, exp: Experiment) -> None:
    run = Run(client, exp.id, run_id=123)
    assert run.id == 123
    run.set_comment("first")
    again = Run(client, exp.id, 123)
    assert again.id == 123
    assert run_row(client, 123, "comment") == ("first",)
    assert Run(client, run_id=123).experiment_id == exp.id
    assert q(client, "SELECT count(*) FROM runs") == [(1,)]


def test_run_id_from_environment_variable(
    client: Client, exp: Experiment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    assert Run(client, exp.id, run_id="SLURM_JOB_ID").id == 4242
    assert Run(client, exp.id, run_id="4243").id == 4243  # digits are an id
    monkeypatch.delenv("SLURM_JOB_ID")
    with pytest.raises(InvalidValue, match="environment variable SLURM_JOB_ID is not set"):
        Run(client, exp.id, run_id="SLURM_JOB_ID")
    monkeypatch.setenv("SLURM_JOB_ID", "12_3")
    with pytest.raises(InvalidValue, match="not a positive integer"):
        Run(client, exp.id, run_id="SLURM_JOB_ID")
    with pytest.raises(InvalidValue, match="'12abc' is neither a number nor the name of an"):
        Run(client, exp.id, run_id="12abc")


def test_creation_errors(client: Client, exp: Experiment) -> None:
    with pytest.raises(NotFound, match="run 77 does not exist; give an experiment"):
        Run(client, run_id=77)
    with pytest.raises(NotFound, match="experiment 999 does not exist"):
        Run(client, 999)
    with pytest.raises(NotFound, match="experiment 999 does not exist"):
        Run(client, 999, 5)
    with pytest.raises(InvalidValue, match="give an experiment_id"):
        Run(client)
    other = Experiment(client, name="other")
    Run(client, exp.id, 5)
    with pytest.raises(InvalidValue, match="run 5 belongs to experiment"):
        Run(client, other.id, 5)
    for bad in (0, -1, True, 1.5, 2**63):  # (2**63: past the database's BIGINT)
        with pytest.raises(InvalidValue, match="positive integer"):
            Run(client, exp.id, bad)  # type: ignore[arg-type]
    assert q(client, "SELECT id FROM runs") == [(5,)]


# -- simple columns --------------------------------------------------------------------


def test_status(client: Client, run: Run) -> None:
    for status in st.RUN_STATUSES:
        run.set_status(status)
        assert run_row(client, run.id, "status") == (status,)
    st.run_set_status(client, run.id, "preempted")  # any case
    assert run_row(client, run.id, "status") == ("PREEMPTED",)
    with pytest.raises(InvalidValue, match="unknown run status 'DONE'"):
        run.set_status("DONE")
    with pytest.raises(NotFound):
        st.run_set_status(client, 999, "RUNNING")


def test_comment(client: Client, run: Run) -> None:
    assert run.set_comment('it\'s; a "comment" ✓') is run
    assert run_row(client, run.id, "comment") == ('it\'s; a "comment" ✓',)
    st.run_set_comment(client, run.id, None)
    assert run_row(client, run.id, "comment") == (None,)
    with pytest.raises(InvalidValue, match="NUL"):
        run.set_comment("a\x00b")


@pytest.mark.parametrize("column", ["created", "started", "updated"])
def test_timestamps(client: Client, run: Run, column: str) -> None:
    setter = getattr(st, f"run_set_{column}")
    before = datetime.now(timezone.utc)
    setter(client, run.id)  # 'auto' = now
    auto = run_time(client, run.id, f"time_{column}")
    assert auto is not None and before - timedelta(seconds=1) <= auto <= datetime.now(timezone.utc)
    fixed = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=timezone(timedelta(hours=2)))
    getattr(run, f"set_{column}")(fixed)
    assert run_time(client, run.id, f"time_{column}") == fixed
    setter(client, run.id, None)  # None: do nothing
    assert run_time(client, run.id, f"time_{column}") == fixed
    with pytest.raises(InvalidValue, match="timezone-aware"):
        setter(client, run.id, datetime(2024, 1, 1))
    with pytest.raises(InvalidValue, match="expected 'auto'"):
        setter(client, run.id, "now")


# -- tags and links --------------------------------------------------------------------


def test_tags(client: Client, run: Run) -> None:
    run.set_tags("a", "b").add_tags("c").remove_tags("a")
    assert set(json_column(client, "runs", "tags", run.id)) == {"b", "c"}
    st.run_add_tags(client, run.id, "d")
    st.run_remove_tags(client, run.id, "b")
    st.run_set_tags(client, run.id, "x", "y")
    assert set(json_column(client, "runs", "tags", run.id)) == {"x", "y"}


def test_links(client: Client, exp: Experiment) -> None:
    a, b = exp.get_run(), exp.get_run()
    a.add_link("resumes", b.id)
    st.run_add_link(client, b.id, "parent", a.id)
    assert sorted(q(client, "SELECT from_id, kind, to_id FROM run_links")) == sorted(
        [(a.id, "resumes", b.id), (b.id, "parent", a.id)]
    )
    a.remove_link("resumes", b.id)
    st.run_remove_link(client, b.id, "parent", a.id)
    assert q(client, "SELECT count(*) FROM run_links") == [(0,)]
    with pytest.raises(NotFound):
        a.add_link("resumes", 12345)


# -- args, env, extras -----------------------------------------------------------------


def test_args(client: Client, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    run.set_args({"lr": 0.1, "layers": [1, 2], "nested": {"a": None}})
    run.add_args({"bs": 32, "lr": 0.2})
    assert json_column(client, "runs", "args", run.id) == {
        "lr": 0.2,
        "layers": [1, 2],
        "nested": {"a": None},
        "bs": 32,
    }
    run.remove_args("layers", "missing")
    st.run_remove_args(client, run.id, "nested")
    assert json_column(client, "runs", "args", run.id) == {"lr": 0.2, "bs": 32}
    run.add_args(None)  # nothing
    assert json_column(client, "runs", "args", run.id) == {"lr": 0.2, "bs": 32}
    st.run_set_args(client, run.id, argparse.Namespace(epochs=3, name="x"))
    assert json_column(client, "runs", "args", run.id) == {"epochs": 3, "name": "x"}
    monkeypatch.setattr("sys.argv", ["train.py", "--lr", "0.5", "--amp"])
    run.add_args()  # 'auto'
    assert json_column(client, "runs", "args", run.id) == {
        "epochs": 3,
        "name": "x",
        "lr": 0.5,
        "amp": True,
    }
    monkeypatch.setattr("sys.argv", ["train.py"])
    run.set_args()  # 'auto' detects nothing: leaves args alone
    assert json_column(client, "runs", "args", run.id)["lr"] == 0.5
    run.set_args(None)
    assert run_row(client, run.id, "args") == (None,)


def test_env(client: Client, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_JOB_ID", "99")
    monkeypatch.setenv("WANDB_API_KEY", "abc123secret")
    monkeypatch.setenv("DATABASE_URL", "postgresql://me:pw123@db/x")
    run.set_env()
    env = json_column(client, "runs", "env", run.id)
    assert env["SLURM_JOB_ID"] == "99"
    assert env["WANDB_API_KEY"] == REDACTED
    assert env["DATABASE_URL"] == f"postgresql://me:{REDACTED}@db/x"
    stored = str(q(client, "SELECT env FROM runs WHERE id = ?", run.id)[0][0])
    assert "abc123secret" not in stored and "pw123" not in stored
    st.run_set_env(client, run.id, {"A": "1", "MY_TOKEN": "t"})  # explicit dicts too
    st.run_add_env(client, run.id, {"B": "2"})
    run.remove_env("A")
    assert json_column(client, "runs", "env", run.id) == {"MY_TOKEN": REDACTED, "B": "2"}
    run.set_env(None)
    assert run_row(client, run.id, "env") == (None,)


def test_extras(client: Client, run: Run) -> None:
    run.set_extras({"git": "abc", "gpu": {"name": "A100", "count": 4}})
    st.run_add_extras(client, run.id, {"host": "node1"})
    run.add_extras({"git": "def"})
    assert json_column(client, "runs", "extras", run.id) == {
        "git": "def",
        "gpu": {"name": "A100", "count": 4},
        "host": "node1",
    }
    run.remove_extras("gpu")
    st.run_remove_extras(client, run.id, "host")
    assert json_column(client, "runs", "extras", run.id) == {"git": "def"}
    st.run_set_extras(client, run.id, None)
    assert run_row(client, run.id, "extras") == (None,)
    with pytest.raises(InvalidValue, match="extras cannot be 'auto'"):
        run.set_extras("auto")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"x": float("nan")}, "nan cannot be stored in JSON"),
        ({"x": float("inf")}, "inf cannot be stored in JSON"),
        ({"x": object()}, "values of type object cannot be stored"),
        ({1: "x"}, "keys must be str"),
        ({"x": "a\x00b"}, "NUL"),
        ([1, 2], "extras must be a dict or None, got list"),
    ],
)
def test_json_values_that_cannot_round_trip_are_refused(
    client: Client, run: Run, bad: Any, match: str
) -> None:
    run.set_extras({"keep": 1})
    with pytest.raises(InvalidValue, match=match):
        run.add_extras(bad)
    with pytest.raises(InvalidValue):
        run.set_extras(bad)
    assert json_column(client, "runs", "extras", run.id) == {"keep": 1}  # unchanged


def test_json_conversions(client: Client, run: Run) -> None:
    from pathlib import Path

    run.set_extras({"path": Path("/data/x"), "tuple": (1, 2), "when": datetime(2024, 1, 2)})
    assert json_column(client, "runs", "extras", run.id) == {
        "path": "/data/x",
        "tuple": [1, 2],
        "when": "2024-01-02T00:00:00",
    }


def test_functions_on_missing_run(client: Client) -> None:
    for call in (
        lambda: st.run_set_args(client, 999, {"a": 1}),
        lambda: st.run_add_args(client, 999, {"a": 1}),
        lambda: st.run_remove_env(client, 999, "a"),
        lambda: st.run_add_extras(client, 999, {"a": 1}),
        lambda: st.run_set_created(client, 999),
        lambda: st.run_add_metrics(client, 999, {"loss": 1.0}),
    ):
        with pytest.raises(NotFound, match="run 999 does not exist"):
            call()


# -- lifecycle -------------------------------------------------------------------------


def test_module_functions_directly(client: Client, run: Run) -> None:
    """Each run_* function on its own (the Run methods above delegate to them)."""
    st.run_set_args(client, run.id, {"a": 1, "b": 2})
    st.run_add_args(client, run.id, {"c": 3})
    st.run_remove_args(client, run.id, "a")
    st.run_set_env(client, run.id, {"X": "1", "Y": "2"})
    st.run_add_env(client, run.id, {"Z": "3"})
    st.run_remove_env(client, run.id, "X")
    st.run_set_extras(client, run.id, {"e": 1, "f": 2})
    st.run_add_extras(client, run.id, {"g": 3})
    st.run_remove_extras(client, run.id, "f")
    assert json_column(client, "runs", "args", run.id) == {"b": 2, "c": 3}
    assert json_column(client, "runs", "env", run.id) == {"Y": "2", "Z": "3"}
    assert json_column(client, "runs", "extras", run.id) == {"e": 1, "g": 3}
    run.add_env({"W": "4"})
    assert json_column(client, "runs", "env", run.id) == {"Y": "2", "Z": "3", "W": "4"}


def test_statuses_are_written_once_and_checked_against_the_schema(client: Client, run: Run) -> None:
    """RUN_STATUSES is the one list in Python; the released schema scripts (which may never
    be edited) and docs/tracking.md must say the same."""
    for engine in ("postgres", "sqlite"):
        script = (sql_dir() / engine / "v001_base.sql").read_text()
        assert set(re.findall(r"'([A-Z_]+)'", script)) == set(RUN_STATUSES), engine
    tracking = (ROOT / "docs" / "tracking.md").read_text()
    listed = re.search(r"\*\*Statuses\*\* are Slurm's job states: `([A-Z_ \n]+)`", tracking)
    assert listed is not None and listed.group(1).split() == list(RUN_STATUSES)
    for status in RUN_STATUSES:  # and the database takes each of them
        st.run_set_status(client, run.id, status)
        assert q(client, "SELECT status FROM runs WHERE id = ?", run.id) == [(status,)]


def test_a_retry_after_a_lost_commit_answer_creates_no_second_run(
    client: Client, engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server committed the new run but the answer never came (a restart, a pooler):
    the retried operation finds the run by the uid it made before the first try."""
    if engine != "postgres":
        pytest.skip("SQLite has no server connection to lose: nothing is retried")
    import psycopg

    exp = Experiment(client, name="lost-answer")
    engine_class = type(client.engine)
    connect = engine_class.connect
    lost = {"left": 1}

    class AnswerLost:
        def __init__(self, conn: Any) -> None:
            self._conn = conn

        def __getattr__(self, name: str) -> Any:
            return getattr(self._conn, name)

        def commit(self) -> None:
            self._conn.commit()
            if lost["left"]:
                lost["left"] -= 1
                self._conn.close()
                raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(engine_class, "connect", lambda self: AnswerLost(connect(self)))
    run = exp.get_run()
    assert lost["left"] == 0  # the answer was lost once
    assert q(client, "SELECT id FROM runs") == [(run.id,)]


def test_runs_are_created_on_a_database_set_up_before_uids(
    empty_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database at schema version 1 (no runs.uid) still gets new runs."""
    from sqltrack._db import schema

    builtin = schema.builtin_scripts
    monkeypatch.setattr(schema, "builtin_scripts", lambda engine: builtin(engine)[:1])
    st.setup(empty_client)
    run = Experiment(empty_client, name="old").get_run()
    assert q(empty_client, "SELECT id FROM runs") == [(run.id,)]
    monkeypatch.undo()
    st.setup(empty_client)  # the upgrade gives the existing run a uid
    assert q(empty_client, "SELECT count(*) FROM runs WHERE uid IS NOT NULL") == [(1,)]


def test_a_run_id_of_digits_means_the_same_run_everywhere(client: Client, exp: Any) -> None:
    """Run(client, exp, "42") made run 42 while run_add_tags(client, "42", ...) refused the
    same id: a string of digits is that id, for the handle and its twins alike (names of
    environment variables cannot start with a digit)."""
    run = Run(client, exp.id, "42")
    assert run.id == 42
    st.run_add_tags(client, "42", "x")
    st.run_set_comment(client, " 42 ", "padded")
    assert q(client, "SELECT comment FROM runs WHERE id = 42") == [("padded",)]
    for bad in ("4.2", "-42", "٤٢", "42x", ""):
        with pytest.raises(InvalidValue):
            st.run_add_tags(client, bad, "x")
