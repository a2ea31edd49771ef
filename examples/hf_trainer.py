"""A Hugging Face Trainer run logged by sqltrack's callback (needs torch, transformers
and accelerate). The model is a 2-layer BERT of hidden size 32 built from a config:
nothing is downloaded.

    export SQLTRACK_DSN_ENGINE=sqlite SQLTRACK_DSN_DBPATH=example.db
    sqltrack setup
    python examples/hf_trainer.py --steps 40
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

import sqltrack as st
from sqltrack.integrations.transformers import SqltrackCallback


class Parity(torch.utils.data.Dataset):
    """Token sequences labelled by whether their first token is even."""

    def __init__(self, n: int, seed: int) -> None:
        self.ids = torch.randint(1, 100, (n, 16), generator=torch.Generator().manual_seed(seed))

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ids = self.ids[i]
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids[0] % 2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--experiment", default="tiny-bert")
    parser.add_argument("--output-dir", default=None, help="default: a temporary folder")
    args = parser.parse_args()

    config = BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=37, max_position_embeddings=32, num_labels=2,
    )  # fmt: skip
    output_dir = args.output_dir or tempfile.mkdtemp(prefix="tiny-bert-")
    training = TrainingArguments(
        output_dir=output_dir, max_steps=args.steps, learning_rate=args.lr,
        per_device_train_batch_size=16, logging_steps=5, eval_strategy="steps",
        eval_steps=args.steps // 2, save_steps=args.steps // 2, report_to="none",
        use_cpu=True, disable_tqdm=True,
    )  # fmt: skip
    callback = SqltrackCallback(experiment=args.experiment)
    trainer = Trainer(
        model=BertForSequenceClassification(config), args=training,
        train_dataset=Parity(512, 0), eval_dataset=Parity(64, 1), callbacks=[callback],
    )  # fmt: skip
    trainer.train()

    client = st.Client()
    run_id = callback.run.id
    best = st.best_checkpoint(client, run_id, "eval_loss:min")
    (status,) = client.query("SELECT status FROM runs WHERE id = :id", {"id": run_id})[0]
    print(f"run {run_id}: {status}; best eval_loss at step {best.step}: {best.uri}")


if __name__ == "__main__":
    main()
