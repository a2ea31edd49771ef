"""A Lightning fit logged by sqltrack's Lightning logger (needs torch and lightning).

    export SQLTRACK_DSN_ENGINE=sqlite SQLTRACK_DSN_DBPATH=example.db
    sqltrack setup
    python examples/lightning_fit.py --epochs 3

On a Slurm cluster the run id is ``$SLURM_JOB_ID`` when that is set, so with Lightning's
auto-requeue a requeued job resumes its run.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

import sqltrack as st
from sqltrack.integrations.lightning import SqltrackLogger


class MLP(L.LightningModule):
    def __init__(self, lr: float, hidden: int) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(8, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1)
        )

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val/loss", torch.nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--experiment", default="lightning-mlp")
    args = parser.parse_args()

    torch.manual_seed(0)
    x = torch.randn(512, 8)
    y = (x[:, :4].sum(dim=1) - x[:, 4:].sum(dim=1)).unsqueeze(1)
    train = DataLoader(TensorDataset(x[:448], y[:448]), batch_size=32, shuffle=True)
    val = DataLoader(TensorDataset(x[448:], y[448:]), batch_size=64)

    run_id = "SLURM_JOB_ID" if os.environ.get("SLURM_JOB_ID") else None
    logger = SqltrackLogger(experiment=args.experiment, run_id=run_id)
    trainer = L.Trainer(
        logger=logger,
        max_epochs=args.epochs,
        accelerator="cpu",
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[L.pytorch.callbacks.ModelCheckpoint(monitor="val/loss")],
    )
    trainer.fit(MLP(args.lr, args.hidden), train, val)

    client = st.Client()
    best = st.best_checkpoint(client, logger.version, "val/loss:min")
    (status,) = client.query("SELECT status FROM runs WHERE id = :id", {"id": logger.version})[0]
    print(f"run {logger.version}: {status}; best val/loss at step {best.step}: {best.uri}")


if __name__ == "__main__":
    main()
