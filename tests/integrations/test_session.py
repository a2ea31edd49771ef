"""What every integration shares (sqltrack/integrations/_session.py), driven through the
Lightning logger's methods called directly, as Lightning would: nothing a framework hands
over raises into training, bad arguments raise before it, the run's end is recorded once
and survives what comes after it."""

from __future__ import annotations

import logging
import math
import signal
import subprocess
import sys
from typing import Any

import pytest
from conftest import env_for, json_column
from frameworks import need, only_run, series

import sqltrack as st

need("lightning")
import torch  # noqa: E402
from lightning.pytorch.utilities import rank_zero_only  # noqa: E402

from sqltrack.integrations.lightning import SqltrackLogger  # noqa: E402


def test_names_sqltrack_refuses_are_logged_under_the_suggested_name_with_one_warning(
    client: st.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "sqltrack")
    logger = SqltrackLogger(experiment="s", client=client, env=False, code=False)
    for step in range(3):  # XGBoost's and LightGBM's ranking metrics
        logger.log_metrics({"valid-ndcg@5": 0.5 + step, "train/loss": 1.0}, step=step)
    logger.finalize("success")
    run_id, status, _ = only_run(client, "s")
    assert status == "COMPLETED"
    assert series(client, run_id, "valid-ndcg_5") == {0: 0.5, 1: 1.5, 2: 2.5}
    assert caplog.text.count("'valid-ndcg@5' is logged as 'valid-ndcg_5'") == 1


def test_values_that_are_not_numbers_are_left_out_and_tensors_unwrapped(
    client: st.Client,
) -> None:
    logger = SqltrackLogger(experiment="s", client=client, env=False, code=False)
    metrics: dict[str, Any] = {
        "loss": torch.tensor(0.25), "acc": torch.tensor([0.1, 0.2]), "lr": "1e-3",
        "none": None, "n": torch.tensor(3), "nan": math.nan,
    }  # fmt: skip
    logger.log_metrics(metrics, step=0)
    logger.finalize("success")
    run_id = only_run(client, "s")[0]
    names, rows = st.read_metrics(client, run_id)
    (row,) = rows
    got = dict(zip(names, row, strict=True))
    assert got["loss"] == 0.25 and got["n"] == 3
    if client.engine.stores_nan:
        assert set(got) == {"run_id", "step", "progress", "loss", "n", "nan"}
        assert math.isnan(got["nan"])
    else:  # SQLite: left out (a warning says so), not the whole step with it
        assert set(got) == {"run_id", "step", "progress", "loss", "n"}


def test_hyperparameters_are_made_json_and_text_a_database_refuses_is_cleaned(
    client: st.Client,
) -> None:
    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no")

    logger = SqltrackLogger(experiment="s", client=client, env=False, code=False)
    logger.log_hyperparams({
        "nested": {"sizes": (4, 1), "act": None}, "nul": "a\x00b", "lone": "\ud800x",
        "tags": {"b", "a"}, "cls": torch.nn.Linear, "odd": Unprintable(),
        "big": "x" * 5000, "inf": math.inf, "t": torch.tensor(2.5),
        "module": torch.nn.Sequential(*[torch.nn.Linear(2, 2) for _ in range(100)]),
    })  # fmt: skip
    logger.finalize("success")
    _, status, args = only_run(client, "s")
    assert status == "COMPLETED"
    assert args["nested"] == {"sizes": [4, 1], "act": None}
    assert (args["nul"], args["lone"], args["tags"]) == ("ab", "?x", ["a", "b"])
    assert args["cls"] == "<class 'torch.nn.modules.linear.Linear'>"
    assert (args["odd"], args["inf"], args["t"]) == ("<Unprintable>", "inf", 2.5)
    assert args["big"] == "x" * 5000  # text is kept; a repr (megabytes, for a module) is cut
    assert len(args["module"]) == 1000 and args["module"].startswith("Sequential(")


def test_a_value_that_cannot_be_written_is_a_warning_and_the_rest_is_written(
    client: st.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "sqltrack")
    logger = SqltrackLogger(experiment="s", client=client, env=False, code=False)
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.log_metrics({"loss": 0.5}, step=2**70)  # a framework's step past 64 bits
    logger.log_metrics({"big": torch.tensor(2**64 - 1, dtype=torch.uint64)}, step=1)
    logger.log_metrics({"loss": 0.25}, step=2)
    logger.finalize("success")
    run_id, status, _ = only_run(client, "s")
    assert status == "COMPLETED" and series(client, run_id, "loss") == {0: 1.0, 2: 0.25}
    assert "does not fit in 64 bits (training goes on)" in caplog.text


def test_writes_after_the_end_leave_the_status_and_are_written(client: st.Client) -> None:
    """An evaluation after training (HF's trainer.evaluate(), Lightning's validate)."""
    logger = SqltrackLogger(experiment="s", client=client, env=False, code=False)
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize("success")
    logger.log_metrics({"eval_loss": 0.5}, step=1)
    logger.log_hyperparams({"later": True})
    run_id, status, args = only_run(client, "s")
    assert (status, args["later"]) == ("COMPLETED", True)
    assert series(client, run_id, "eval_loss") == {1: 0.5}
    _ = logger.version, logger.run  # reading them reopens nothing
    assert only_run(client, "s")[1] == "COMPLETED"


def test_a_requeue_stays_requeued_through_the_sigterm_that_follows(
    client: st.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    monkeypatch.setenv("SLURM_JOB_ID", "77")
    logger = SqltrackLogger(experiment="s", client=client, run_id="SLURM_JOB_ID")
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize("finished")  # SIGUSR1: Lightning saves, requeues
    assert only_run(client, "s")[:2] == (77, "REQUEUED")
    logger.log_metrics({"loss": 0.5}, step=1)  # the loop goes on until Slurm's SIGTERM
    try:
        raise SIGTERMException(signal.SIGTERM)
    except SIGTERMException:
        logger.finalize("failed")  # as Lightning calls it, inside its except block
    assert only_run(client, "s")[:2] == (77, "REQUEUED")
    assert series(client, 77, "loss") == {0: 1.0, 1: 0.5}


def test_other_ranks_open_no_run(client: st.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    logger = SqltrackLogger(experiment="s", client=client)
    logger.log_hyperparams({"lr": 0.1})
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.run.add_tags("x")  # the stand-in: does nothing
    assert logger.version is None and type(logger.experiment).__name__ == "_DummyExperiment"
    logger.finalize("success")
    assert client.query("SELECT count(*) FROM runs") == [(0,)]


@pytest.mark.parametrize(
    ("kwargs", "env", "message"),
    [
        (
            {"experiment": -3},
            {},
            "experiment id must be a positive integer \\(of 64 bits\\), got -3",
        ),
        ({"experiment": 2**70}, {}, "experiment id must be a positive integer \\(of 64 bits\\)"),
        ({"experiment": "   "}, {}, "experiment name must be a non-empty string"),
        ({"experiment": "a\x00b"}, {}, "NUL"),
        ({"experiment": 1.5}, {}, "experiment must be a name or an id, not 1.5"),
        ({"experiment": "s", "env": "yes"}, {}, "env must be True or False, not 'yes'"),
        ({"experiment": "s", "code": None}, {}, "code must be True or False"),
        ({"experiment": "s", "checkpoints": "no"}, {}, "checkpoints must be True or False"),
        ({"experiment": "s", "save_dir": 5}, {}, "save_dir must be a path, not 5"),
        ({"experiment": "s"}, {"SQLTRACK_RUN_ID": "abc"}, "SQLTRACK_RUN_ID is 'abc', not a"),
        ({}, {"SQLTRACK_EXPERIMENT_ID": "abc"}, "SQLTRACK_EXPERIMENT_ID is 'abc', not a"),
        ({}, {}, "no experiment: pass experiment="),
        ({"experiment": "s"}, {"SQLTRACK_DSN_DB_PATH": "x.db"}, "db_path"),
    ],
)
def test_bad_arguments_raise_one_line_before_training(
    kwargs: dict[str, Any], env: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SQLTRACK_DSN_ENGINE", "sqlite")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(st.SQLTrackError, match=message) as raised:
        SqltrackLogger(**kwargs)
    assert "\n" not in str(raised.value)


_UNSTOPPED = """
import sqltrack as st
client = st.Client()
run = st.Experiment(client, name="s").get_run()
run.start(terminated=None, buffered=True)
for step in range(500):
    run.add_metrics({"loss": 1.0 / (step + 1)}, step=step)
print(run.id)
"""


def test_a_run_started_buffered_and_never_stopped_loses_nothing_queued(
    client: st.Client, db_params: dict[str, Any]
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _UNSTOPPED], env=env_for(db_params), capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    run_id = int(done.stdout)
    assert len(series(client, run_id, "loss")) == 500  # written at the interpreter's exit
    assert only_run(client, "s")[1] == "RUNNING"  # the status is left as it was


def test_the_git_state_is_read_in_a_thread_and_recorded_once_read(
    client: st.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from sqltrack.integrations import _session

    release, asked = threading.Event(), []

    def slow_git() -> dict[str, Any]:  # git on a slow shared file system
        asked.append(threading.current_thread().name)
        release.wait(30)
        return {"commit": "c0ffee", "dirty": False}

    monkeypatch.setattr(_session, "code_state", slow_git)
    logger = SqltrackLogger(experiment="s", client=client, env=False)
    logger.log_metrics({"loss": 1.0}, step=0)  # the run opens; git has not answered
    assert asked == ["sqltrack-code"]  # not the training thread
    run_id = logger.run.id
    assert json_column(client, "runs", "code", run_id) is None  # and training did not wait for it
    release.set()
    logger._session._code_state.done.wait(5)  # type: ignore[union-attr]
    logger.log_metrics({"loss": 0.5}, step=1)  # the next step records it
    assert json_column(client, "runs", "code", run_id) == {"commit": "c0ffee", "dirty": False}
    logger.finalize("success")
    assert only_run(client, "s")[1] == "COMPLETED"


def test_a_run_that_ends_before_git_answered_gets_its_git_state_at_the_end(
    client: st.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from sqltrack.integrations import _session

    release = threading.Event()

    def slow_git() -> dict[str, Any]:
        release.wait(30)
        return {"commit": "beef"}

    monkeypatch.setattr(_session, "code_state", slow_git)
    logger = SqltrackLogger(experiment="s", client=client, env=False)
    logger.log_metrics({"loss": 1.0}, step=0)
    threading.Timer(0.2, release.set).start()
    logger.finalize("success")  # waits for git (at most CODE_WAIT seconds)
    run_id, status, _ = only_run(client, "s")
    assert status == "COMPLETED"
    assert json_column(client, "runs", "code", run_id) == {"commit": "beef"}
