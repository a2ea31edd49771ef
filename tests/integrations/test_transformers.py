"""The HF Trainer callback in real CPU trainings of a tiny BERT built from a config
(nothing downloaded), on both engines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import env_for
from frameworks import need, only_run, series

import sqltrack as st

need("transformers")
need("accelerate")
import torch  # noqa: E402
from transformers import (  # noqa: E402
    BertConfig,
    BertForSequenceClassification,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from sqltrack.integrations.transformers import SqltrackCallback  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]


class Pairs(torch.utils.data.Dataset):
    """Token sequences labelled by whether their first token is even."""

    def __init__(self, n: int) -> None:
        g = torch.Generator().manual_seed(n)
        self.ids = torch.randint(1, 100, (n, 8), generator=g)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ids = self.ids[i]
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids[0] % 2}


def tiny_bert() -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=37, max_position_embeddings=16, num_labels=2,
    )  # fmt: skip
    return BertForSequenceClassification(config)


class Diverge(TrainerCallback):
    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == 5:
            raise RuntimeError("diverged")


def trainer(tmp_path: Path, callback: SqltrackCallback, *more: TrainerCallback) -> Trainer:
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"), max_steps=8, per_device_train_batch_size=4,
        learning_rate=1e-3, logging_steps=1, eval_strategy="steps", eval_steps=4,
        save_steps=4, report_to="none", use_cpu=True, disable_tqdm=True, seed=0,
    )  # fmt: skip
    return Trainer(
        model=tiny_bert(), args=args, train_dataset=Pairs(32), eval_dataset=Pairs(8),
        callbacks=[callback, *more],
    )  # fmt: skip


def test_a_training_ends_completed_with_logs_args_and_checkpoints(
    client: st.Client, tmp_path: Path
) -> None:
    callback = SqltrackCallback(experiment="bert", client=client)
    hf = trainer(tmp_path, callback)
    hf.train()
    run_id, status, args = only_run(client, "bert")
    assert status == "COMPLETED" and callback.run.id == run_id
    assert args["learning_rate"] == 1e-3 and args["max_steps"] == 8  # TrainingArguments
    assert (
        args["model_config"]["hidden_size"] == 32 and args["model_config"]["num_hidden_layers"] == 2
    )
    history = hf.state.log_history
    logged = {(h["step"], name): v for h in history for name, v in h.items() if name != "step"}
    loss = series(client, run_id, "loss")
    assert loss == {s: v for (s, n), v in logged.items() if n == "loss"}  # as the Trainer has them
    assert sorted(loss) == list(range(1, 9))
    assert sorted(series(client, run_id, "eval_loss")) == [4, 8]
    assert 8 in series(client, run_id, "train_runtime")  # the final summary, at the last step
    checkpoints = st.find_artifacts(client, run_id, kind="checkpoint")
    assert [(a.name, a.step) for a in checkpoints] == [("checkpoint-4", 4), ("checkpoint-8", 8)]
    assert all(Path(a.uri).is_dir() for a in checkpoints)
    best = st.best_checkpoint(client, run_id, "eval_loss:min")
    eval_loss = series(client, run_id, "eval_loss")
    assert best.step == min(eval_loss, key=lambda s: (eval_loss[s], s))


def test_an_evaluation_after_training_is_written_and_the_run_stays_completed(
    client: st.Client, tmp_path: Path
) -> None:
    callback = SqltrackCallback(experiment="bert", client=client)
    hf = trainer(tmp_path, callback)
    hf.train()
    hf.evaluate(Pairs(4), metric_key_prefix="test")  # the Trainer's on_log, after on_train_end
    run_id, status, _ = only_run(client, "bert")
    assert status == "COMPLETED"
    assert list(series(client, run_id, "test_loss")) == [8]


def test_a_second_train_with_the_same_callback_is_a_run_of_its_own(
    client: st.Client, tmp_path: Path
) -> None:
    callback = SqltrackCallback(experiment="bert", client=client)
    trainer(tmp_path, callback).train()
    first = callback.run.id
    trainer(tmp_path / "again", callback).train()
    rows = client.query("SELECT id, status FROM runs ORDER BY id")
    assert rows == [(first, "COMPLETED"), (callback.run.id, "COMPLETED")] and first != rows[1][0]


def test_a_training_that_raises_ends_failed_in_a_with_block(
    client: st.Client, tmp_path: Path
) -> None:
    with pytest.raises(RuntimeError, match="diverged"):
        with SqltrackCallback(experiment="bert", client=client) as callback:
            trainer(tmp_path, callback, Diverge()).train()
    run_id, status, _ = only_run(client, "bert")
    assert status == "FAILED"
    assert sorted(series(client, run_id, "loss")) == [1, 2, 3, 4]  # logged before step 5 ended


_SCRIPT = """
import sys
sys.path[:0] = [{tests!r}]
from pathlib import Path
from test_transformers import Diverge, trainer
from sqltrack.integrations.transformers import SqltrackCallback
trainer(Path({root!r}), SqltrackCallback(), Diverge()).train()
"""


@pytest.mark.slow
def test_a_run_left_open_by_an_uncaught_error_ends_failed_at_exit(
    client: st.Client, db_params: dict[str, Any], tmp_path: Path
) -> None:
    script = tmp_path / "train.py"
    script.write_text(_SCRIPT.format(tests=str(Path(__file__).parent), root=str(tmp_path)))
    env = {**env_for(db_params), "PYTHONWARNINGS": "ignore", "SQLTRACK_EXPERIMENT_NAME": "bert"}
    env["PYTHONPATH"] += f"{':'}{Path(__file__).parent.parent}"  # conftest, for the test module
    done = subprocess.run(
        [sys.executable, str(script)], env=env, cwd=tmp_path, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 1 and "RuntimeError: diverged" in done.stderr, done.stderr[-2000:]
    assert only_run(client, "bert")[1] == "FAILED"


def test_bad_arguments_raise_before_training() -> None:
    with pytest.raises(st.InvalidValue, match="no experiment"):
        SqltrackCallback()
    with pytest.raises(st.InvalidValue, match="client must be a sqltrack.Client"):
        SqltrackCallback(experiment="bert", client="postgresql://")  # type: ignore[arg-type]
