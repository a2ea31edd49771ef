"""The Lightning logger in real CPU fits, on both engines: metrics at Lightning's steps,
hyperparameters as args, checkpoints as artifacts, the final status, one run under DDP."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import env_for
from frameworks import need, only_run, series

import sqltrack as st

need("lightning")
import lightning as L  # noqa: E402
from lit_model import Regression, loaders  # noqa: E402

from sqltrack.integrations.lightning import SqltrackLogger  # noqa: E402

pytestmark = [
    # the frameworks' own deprecations of each other (Lightning of torch's), not ours
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:.*does not have many workers:UserWarning"),
    pytest.mark.filterwarnings("ignore:.*is smaller than the logging interval:UserWarning"),
]


def fit(logger: SqltrackLogger, tmp_path: Path, model: Regression, **kw: Any) -> L.Trainer:
    trainer = L.Trainer(
        max_epochs=2,
        logger=logger,
        accelerator="cpu",
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        callbacks=[
            L.pytorch.callbacks.ModelCheckpoint(monitor="val/loss", save_top_k=1, save_last=True)
        ],
        **kw,
    )
    train, val = loaders()
    trainer.fit(model, train, val)
    return trainer


def test_a_fit_ends_completed_with_its_metrics_args_and_checkpoints(
    client: st.Client, tmp_path: Path
) -> None:
    logger = SqltrackLogger(experiment="lit", client=client)
    fit(logger, tmp_path, Regression(lr=0.05, layers={"sizes": [4, 1], "act": None}))
    run_id, status, args = only_run(client, "lit")
    assert (status, logger.version, logger.run.id) == ("COMPLETED", run_id, run_id)
    assert args["lr"] == 0.05 and args["layers"] == {"sizes": [4, 1], "act": None}  # nested
    loss = series(client, run_id, "train/loss")  # the name as Lightning writes it
    assert sorted(loss) == list(range(16))  # 8 batches x 2 epochs, at Lightning's steps
    val = series(client, run_id, "val/loss")
    assert sorted(val) == [7, 15]  # after each epoch's last step
    assert series(client, run_id, "epoch") == {step: step // 8 for step in range(16)}
    checkpoints = st.find_artifacts(client, run_id, kind="checkpoint")
    # one per validation, at its step: the new best, or else last.ckpt
    improved = val[15] < val[7]
    assert [(a.name, a.step, a.metadata["global_step"]) for a in checkpoints] == [
        ("epoch=0-step=8.ckpt", 7, 8),
        ("epoch=1-step=16.ckpt" if improved else "last.ckpt", 15, 16),
    ]
    best = st.best_checkpoint(client, run_id, "val/loss:min")
    assert best.name == ("epoch=0-step=8.ckpt" if val[7] <= val[15] else "epoch=1-step=16.ckpt")
    assert Path(best.uri).is_file()  # save_top_k=1 deleted the other one
    assert best.metadata == {
        "monitor": "val/loss",
        "score": min(val.values()),
        "global_step": best.step + 1,
    }
    assert Path(best.uri).parent.parts[-3:] == ("lit", f"version_{run_id}", "checkpoints")
    assert only_run(client, "lit")[1] == "COMPLETED"  # reading version and run reopened nothing


def test_a_fit_that_raises_ends_failed(client: st.Client, tmp_path: Path) -> None:
    logger = SqltrackLogger(experiment="lit", client=client)
    with pytest.raises(RuntimeError, match="diverged"):
        fit(logger, tmp_path, Regression(fail_at=5))
    run_id, status, _ = only_run(client, "lit")
    assert status == "FAILED"
    assert sorted(series(client, run_id, "train/loss")) == [0, 1, 2, 3, 4]  # all before it


def test_bad_arguments_raise_before_training() -> None:
    with pytest.raises(st.InvalidValue, match="no experiment"):
        SqltrackLogger()
    with pytest.raises(st.InvalidValue, match="SLURM_JOB_ID is not set"):
        SqltrackLogger(experiment="lit", run_id="SLURM_JOB_ID")


def test_sigterm_is_lightnings_to_handle_and_the_run_ends_cancelled(
    client: st.Client, tmp_path: Path
) -> None:
    # the default action before: a Python handler left by another test would be chained
    # by Lightning (its "existing handlers"), and may end this process
    before = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    logger = SqltrackLogger(experiment="lit", client=client)
    try:
        with pytest.raises(SystemExit):  # Lightning's SIGTERMException, after its handler
            fit(logger, tmp_path, Regression(sigterm_at=3))
        after = signal.getsignal(signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, before)
    run_id, status, _ = only_run(client, "lit")
    assert status == "CANCELLED"
    assert sorted(series(client, run_id, "train/loss")) == [0, 1, 2, 3]
    assert after is signal.SIG_DFL  # nothing of sqltrack's left behind


def test_a_requeued_slurm_job_resumes_its_run(
    client: st.Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    first = SqltrackLogger(experiment="lit", client=client, run_id="SLURM_JOB_ID")
    first.log_metrics({"train/loss": 1.0}, step=0)
    first.finalize("finished")  # what Lightning's auto-requeue handler calls
    assert only_run(client, "lit")[:2] == (4242, "REQUEUED")
    second = SqltrackLogger(experiment="lit", client=client, run_id="SLURM_JOB_ID")
    second.log_metrics({"train/loss": 0.5}, step=1)
    second.finalize("success")
    assert only_run(client, "lit")[:2] == (4242, "COMPLETED")
    assert series(client, 4242, "train/loss") == {0: 1.0, 1: 0.5}


def test_fit_then_validate_writes_one_run_started_again(client: st.Client, tmp_path: Path) -> None:
    logger = SqltrackLogger(experiment="lit", client=client)
    trainer = fit(logger, tmp_path, Regression())
    run_id, status, _ = only_run(client, "lit")
    fitted = series(client, run_id, "val/loss")
    assert status == "COMPLETED" and sorted(fitted) == [7, 15]
    trainer.validate(trainer.lightning_module, loaders()[1], verbose=False)
    assert only_run(client, "lit")[:2] == (run_id, "COMPLETED")  # finalize("success") again
    validated = series(client, run_id, "val/loss")
    assert validated.keys() - fitted.keys() == {16}  # written after the restart


_DDP = """
import lightning as L, sys
sys.path[:0] = [{tests!r}]
from lit_model import Regression, loaders
from sqltrack.integrations.lightning import SqltrackLogger
trainer = L.Trainer(max_epochs=1, accelerator="cpu", devices=2, strategy="ddp",
                    logger=SqltrackLogger(experiment="ddp"), log_every_n_steps=1,
                    enable_progress_bar=False, enable_model_summary=False,
                    default_root_dir={root!r})
trainer.fit(Regression(), *loaders())
"""


@pytest.mark.slow
def test_ddp_on_two_processes_writes_one_run(
    client: st.Client, db_params: dict[str, Any], tmp_path: Path
) -> None:
    script = tmp_path / "ddp_fit.py"
    script.write_text(_DDP.format(tests=str(Path(__file__).parent), root=str(tmp_path)))
    env = {**env_for(db_params), "PYTHONWARNINGS": "ignore", "SQLTRACK_EXPERIMENT_NAME": "x"}
    done = subprocess.run(
        [sys.executable, str(script)], env=env, cwd=tmp_path, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "world_size: 2" in done.stderr or "MEMBER: 2/2" in done.stderr, done.stderr[-3000:]
    run_id, status, args = only_run(client, "ddp")  # rank 1 created nothing
    assert status == "COMPLETED" and args["lr"] == 0.05
    assert sorted(series(client, run_id, "train/loss")) == [0, 1, 2, 3]  # 64 rows / 2 ranks / 8
    assert len(client.query("SELECT id FROM runs")) == 1
