"""sqltrack against MLflow's tracking API, in the same process (optional: needs mlflow).

Both write to SQLite files: MLflow's SQLAlchemy store (``sqlite:///``) and sqltrack's
schema. Per step 10 float metrics; then reading the run back and storage per value.

    pip install mlflow      # not a dependency of sqltrack
    python bench/bench_mlflow.py --steps 1000
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import NAMES, record

import sqltrack as st


def timed_steps(log: Callable[..., Any], steps: int) -> list[float]:
    """Log ``steps`` steps of the same metrics; the time of each call."""
    times = []
    for step in range(steps):
        metrics = {n: step * 0.001 + i for i, n in enumerate(NAMES)}
        t0 = time.perf_counter()
        log(metrics, step=step)
        times.append(time.perf_counter() - t0)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args()
    try:
        import mlflow
        from mlflow.tracking import MlflowClient
    except ImportError:
        print("mlflow is not installed: pip install mlflow (the comparison is optional)")
        return 0
    logging.getLogger("alembic").setLevel(logging.WARNING)
    tmp = Path(tempfile.mkdtemp(prefix="sqltrack-mlflow-"))

    mlflow.set_tracking_uri(f"sqlite:///{tmp / 'mlflow.db'}")
    mlflow.set_experiment("bench")
    with mlflow.start_run() as ml_run:
        ml_times = timed_steps(mlflow.log_metrics, args.steps)
    t0 = time.perf_counter()
    history = {n: MlflowClient().get_metric_history(ml_run.info.run_id, n) for n in NAMES}
    ml_read = time.perf_counter() - t0
    assert all(len(h) == args.steps for h in history.values())

    client = st.Client({}, engine="sqlite", dbpath=str(tmp / "sqltrack.db"))
    st.setup(client)
    run = st.Experiment(client, name="bench").get_run()
    with run.track():
        times = timed_steps(run.add_metrics, args.steps)
    t0 = time.perf_counter()
    _, rows = st.read_metrics(client, run.id)
    st_read = time.perf_counter() - t0
    assert len(rows) == args.steps

    values = args.steps * len(NAMES)
    ml_size = (tmp / "mlflow.db").stat().st_size
    client.execute("VACUUM")  # (so that the narrow run below is measured alone)
    st_size = (tmp / "sqltrack.db").stat().st_size

    # the same run with names that only the narrow storage takes (as Lightning writes them)
    narrow_names = [f"train/{n}" for n in NAMES]
    narrow = st.Experiment(client, name="bench").get_run()
    with narrow.track():
        for step in range(args.steps):
            narrow.add_metrics({n: step * 0.001 + i for i, n in enumerate(narrow_names)}, step=step)
    client.execute("VACUUM")
    narrow_size = (tmp / "sqltrack.db").stat().st_size - st_size
    t0 = time.perf_counter()
    _, rows = st.read_metrics(client, narrow.id)
    narrow_read = time.perf_counter() - t0
    assert len(rows) == args.steps and len(rows[0]) == 3 + len(NAMES)
    ml_us, st_us = statistics.median(ml_times) * 1e6, statistics.median(times) * 1e6
    print(f"SQLite files, {args.steps} steps of {len(NAMES)} float metrics:")
    print(
        f"  per step: mlflow.log_metrics {ml_us:.0f} us, sqltrack {st_us:.1f} us "
        f"({ml_us / st_us:.0f}x faster)"
    )
    print(
        f"  read the run back: MLflow get_metric_history x{len(NAMES)} {ml_read * 1e3:.1f} ms, "
        f"sqltrack read_metrics {st_read * 1e3:.1f} ms ({ml_read / st_read:.0f}x faster)"
    )
    print(
        f"  storage per value (whole database file): MLflow {ml_size / values:.0f} bytes, "
        f"sqltrack {st_size / values:.0f} bytes"
    )
    print(
        f"  narrow storage (names like train/{NAMES[0]}): {narrow_size / values:.0f} bytes per "
        f"value, {ml_size / narrow_size:.1f}x fewer than MLflow's (target >= 3); read back "
        f"in {narrow_read * 1e3:.1f} ms, {ml_read / narrow_read:.0f}x faster (target >= 10)"
    )
    record("MLflow log_metrics per step, times sqltrack's", ml_us / st_us)
    record("MLflow get_metric_history, times sqltrack's read_metrics", ml_read / st_read)
    record("MLflow bytes per value, times sqltrack's narrow storage", ml_size / narrow_size, ">= 3")
    record(
        "MLflow get_metric_history, times sqltrack's narrow read", ml_read / narrow_read, ">= 10"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
