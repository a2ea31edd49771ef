"""A small training script tracked with sqltrack.

It trains a one-parameter linear model with SGD (no ML libraries needed), logging its
arguments, environment and per-step metrics, then reads the run back with plain SQL.

    export SQLTRACK_DSN_ENGINE=sqlite SQLTRACK_DSN_DBPATH=example.db
    sqltrack setup
    python examples/train.py --lr 0.05 --epochs 3

On a Slurm cluster the same script resumes its run when the job is requeued: it uses
``$SLURM_JOB_ID`` as the run id when that is set.
"""

from __future__ import annotations

import argparse
import os
import random

import sqltrack as st


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lr", type=float, default=0.05, help="learning rate")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps-per-epoch", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--experiment", default="linear-regression")
    args = parser.parse_args()

    client = st.Client()  # configured by SQLTRACK_DSN_* variables or ./sqltrack.conf
    experiment = st.Experiment(client, name=args.experiment).add_tags("example")
    run = experiment.get_run("SLURM_JOB_ID" if "SLURM_JOB_ID" in os.environ else None)
    run.set_args(args).set_env().add_tags(f"lr={args.lr}")

    rng = random.Random(args.seed)
    data = [(x, 3.0 * x + rng.gauss(0, 0.1)) for x in (rng.uniform(-1, 1) for _ in range(256))]
    weight = 0.0
    with run.track():  # RUNNING now; COMPLETED, FAILED or CANCELLED when the block ends
        step = 0
        for epoch in range(args.epochs):
            for i in range(args.steps_per_epoch):
                x, y = data[step % len(data)]
                error = weight * x - y
                weight -= args.lr * 2 * error * x
                run.add_metrics(
                    {"train_loss": error * error, "weight": weight},
                    step=step,
                    progress=epoch + (i + 1) / args.steps_per_epoch,
                )
                step += 1
            val_loss = sum((weight * x - y) ** 2 for x, y in data) / len(data)
            run.add_metrics(
                {"val_loss": val_loss, "epoch": epoch}, step=step - 1, progress=epoch + 1.0
            )
            print(f"epoch {epoch}: val_loss={val_loss:.4f} weight={weight:.3f}")

    # Everything is plain SQL now; client.query takes :name placeholders on both engines,
    # and sqltrack.json_value reads a JSON column the same way on both.
    status, args = client.query("SELECT status, args FROM runs WHERE id = :id", {"id": run.id})[0]
    rows = client.query(
        "SELECT step, val_loss FROM metrics WHERE run_id = :id AND val_loss IS NOT NULL "
        "ORDER BY step",
        {"id": run.id},
    )
    print(f"run {run.id} of experiment {experiment.id}: {status}, lr {st.json_value(args)['lr']}")
    for step, val_loss in rows:
        print(f"  step {step:4d}  val_loss {val_loss:.4f}")


if __name__ == "__main__":
    main()
