"""``sqltrack import mlflow`` at a lab's scale: ``--runs`` MLflow runs x ``--steps`` steps x
3 metrics (needs mlflow), against MLflow's own read of the same histories.

The store is a SQLite store (``sqlite:///``) filled by MLflow's client (one ``log_batch``
per run). Three figures, each in metric values per second:

- MLflow's read: every run (``search_runs``) and every metric's history
  (``get_metric_history``), through MLflow's client: the bound of any import through it;
- the import: ``import_mlflow`` into a fresh database, MLflow's read included;
- sqltrack's side alone: the same runs, their histories read beforehand, written.

    python bench/bench_import_mlflow.py --engine postgres
    python bench/bench_import_mlflow.py --engine sqlite --runs 100
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

from common import open_databases, record

from sqltrack._import.from_mlflow import SOURCE, import_mlflow, read_mlflow
from sqltrack._import.model import ImportResult
from sqltrack._import.target import import_runs

METRICS = ("loss", "val_loss", "acc")


def fill(uri: str, runs: int, steps: int) -> None:
    import mlflow
    from mlflow.entities import Metric, Param

    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("sweep")
    now = int(time.time() * 1000)
    for i in range(runs):
        run = client.create_run(experiment, run_name=f"run-{i}")
        metrics = [
            Metric(name, 1.0 / (step + 1) + i / runs, now + step, step)
            for step in range(steps)
            for name in METRICS
        ]
        params = [Param("lr", str(0.1 / (i + 1))), Param("seed", str(i % 5))]
        for start in range(0, len(metrics), 1000):  # MLflow's limit per batch
            client.log_batch(run.info.run_id, metrics[start : start + 1000], params=params)
            params = []
        client.set_terminated(run.info.run_id)


def mlflow_read(uri: str) -> int:
    """Every value, as MLflow's client reads it: how many."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    values = 0
    for experiment in client.search_experiments():
        token = None
        while True:
            ids = [experiment.experiment_id]
            page = client.search_runs(ids, max_results=1000, page_token=token)
            for run in page:
                for name in run.data.metrics:
                    values += len(client.get_metric_history(run.info.run_id, name))
            token = page.token
            if not token:
                break
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--dsn")
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # MLflow's deprecations (SQLAlchemy's) while it logs
    folder = Path(tempfile.mkdtemp(prefix="sqltrack-bench-mlflow-"))
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    t0 = time.perf_counter()
    fill(uri, args.runs, args.steps)
    total = args.runs * args.steps * len(METRICS)
    print(f"MLflow store: {args.runs} runs x {args.steps} steps x 3 metrics = {total:,} values, "
          f"logged in {time.perf_counter() - t0:.0f} s")  # fmt: skip

    t0 = time.perf_counter()
    assert mlflow_read(uri) == total
    read_s = time.perf_counter() - t0

    client, _, _ = open_databases(args.engine, args.dsn)
    t0 = time.perf_counter()
    result = import_mlflow(client, uri)
    import_s = time.perf_counter() - t0
    assert result.values == total and result.runs_new == args.runs, result

    other, _, _ = open_databases(args.engine, args.dsn)
    runs = read_mlflow(uri)
    for run in runs:
        points = list(run.points())
        run.points = lambda points=points: points  # type: ignore[misc]
    t0 = time.perf_counter()
    written = import_runs(other, runs, ImportResult(SOURCE, uri))
    write_s = time.perf_counter() - t0
    assert written.values == total

    again = import_mlflow(client, uri)
    assert again.runs_new == 0 and again.runs_found == args.runs
    rate = {name: total / s for name, s in
            (("read", read_s), ("import", import_s), ("write", write_s))}  # fmt: skip
    print(f"  MLflow's client reads the histories   {rate['read']:>9,.0f} values/s "
          f"({read_s:.1f} s)")  # fmt: skip
    print(f"  sqltrack import mlflow (that read in) {rate['import']:>9,.0f} values/s "
          f"({import_s:.1f} s; {import_s / read_s:.2f}x MLflow's read)")  # fmt: skip
    print(f"  sqltrack's side alone (the writes)    {rate['write']:>9,.0f} values/s "
          f"({write_s:.1f} s; target >= 50,000)")  # fmt: skip
    record(f"import mlflow {args.engine}: MLflow's own read (values/s)", rate["read"])
    record(f"import mlflow {args.engine}: the import (values/s)", rate["import"])
    record(f"import mlflow {args.engine}: sqltrack's writes (values/s)", rate["write"], ">= 50000")


if __name__ == "__main__":
    main()
