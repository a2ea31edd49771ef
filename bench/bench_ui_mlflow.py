"""The dashboard's API against MLflow's tracking server on the same data (needs mlflow).

The same sweep in both: ``--runs`` runs with three params and three metrics (loss,
val_loss, acc), ``--curves`` of them with ``--steps`` steps of ``loss``. sqltrack's is
bench_ui's (SQLite or PostgreSQL, served by uvicorn); MLflow's is a SQLite store
(``sqlite:///``) served by ``mlflow server``. The answers compared, each until its body
is read:

- the runs table: ``GET /api/runs?experiment=sweep`` against MLflow's
  ``POST /api/2.0/mlflow/runs/search`` for the experiment (every page, 50,000 a page:
  the fewest requests MLflow allows);
- the curves of ``--curves`` runs: ``/api/runs/{id}/metrics?names=loss&points=1000``
  against ``GET /api/2.0/mlflow/metrics/get-history`` (every page), which answers every
  step: MLflow has no downsampling, so that is what its UI reads too.

MLflow is not a dependency: give an interpreter that has it (``--mlflow-python``; see
docs/benchmarks.md). MLflow's client takes minutes to log 10,000 runs and 2 million
steps, so the store is filled the way its own rows look: one run and one curve of 1,000
steps logged by MLflow's client, then copied in SQL (new run ids; the curve's steps
continued), and read back through MLflow's server, which checks the counts.

    python bench/bench_ui_mlflow.py --mlflow-python /tmp/benchvenv/bin/python
    python bench/bench_ui_mlflow.py --mlflow-python /tmp/benchvenv/bin/python --engine postgres
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()


# -- the child, in MLflow's interpreter: the store ----------------------------------------


def populate_mlflow(path: Path, runs: int, curves: int, steps: int) -> None:
    """MLflow's store at ``path``: its rows as MLflow's client writes them, copied."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{path}")
    experiment = client.create_experiment("sweep", artifact_location=str(path.parent / "art"))
    short = client.create_run(experiment).info.run_id
    metrics = [Metric(k, 0.5, 0, 99) for k in ("loss", "val_loss", "acc")]
    params = [Param("lr", "0.1"), Param("seed", "3"), Param("width", "64")]
    client.log_batch(short, metrics=metrics, params=params, tags=[RunTag("sweep", "")])
    client.set_terminated(short)
    long = client.create_run(experiment).info.run_id
    client.log_batch(long, params=params, tags=[RunTag("sweep", "")])
    logged = min(steps, 1000)
    client.log_batch(long, metrics=[Metric("loss", 1 / (s + 1), 0, s) for s in range(logged)])
    client.log_batch(long, metrics=[Metric(k, 0.5, 0, 99) for k in ("val_loss", "acc")])
    client.set_terminated(long)
    db = sqlite3.connect(path)
    tables = [
        name
        for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if any(col[1] == "run_uuid" for col in db.execute(f'PRAGMA table_info("{name}")'))
    ]
    copies = [(long, uuid.uuid4().hex) for _ in range(curves - 1)]
    copies += [(short, uuid.uuid4().hex) for _ in range(runs - curves - 1)]
    for table in tables:  # (MLflow's own table and column names, quoted)
        columns = [col[1] for col in db.execute(f'PRAGMA table_info("{table}")')]
        fresh = [c for c in columns if c == "run_uuid" or (table == "runs" and c == "name")]
        picked = ", ".join("?" if c in fresh else f'"{c}"' for c in columns)
        names = ", ".join(f'"{c}"' for c in columns)
        statement = (  # (names from MLflow's schema, quoted; values as parameters)
            f'INSERT INTO "{table}" ({names}) '  # noqa: S608
            f'SELECT {picked} FROM "{table}" WHERE run_uuid = ?'
        )
        rows = [
            (*(new if c == "run_uuid" else f"run-{new[:12]}" for c in fresh), old)
            for old, new in copies
        ]
        db.executemany(statement, rows)
    long_runs = [long] + [new for old, new in copies if old == long]
    db.executemany(  # each curve's steps continued past the 1,000 MLflow logged
        "WITH RECURSIVE s(n) AS (SELECT 1000 UNION ALL SELECT n + 1 FROM s WHERE n + 1 < ?) "
        "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
        "SELECT 'loss', 1.0 / (n + 1), 0, ?, n, 0 FROM s WHERE n < ?",
        [(steps, run, steps) for run in long_runs],
    )
    db.executemany(
        "UPDATE latest_metrics SET step = ?, value = ? WHERE key = 'loss' AND run_uuid = ?",
        [(steps - 1, 1 / steps, run) for run in long_runs],
    )
    db.commit()
    print(json.dumps({"experiment": experiment, "curves": long_runs}))


# -- the parent: both servers, the same questions -----------------------------------------


def post(url: str, body: dict[str, Any]) -> Any:
    data = json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=600) as response:
        return json.loads(response.read())


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=600) as response:
        return json.loads(response.read())


def mlflow_runs(base: str, experiment: str) -> int:
    """Every run of the experiment through ``runs/search``, page after page."""
    found, token = 0, None
    while True:
        body: dict[str, Any] = {"experiment_ids": [experiment], "max_results": 50_000}
        if token:
            body["page_token"] = token
        answer = post(base + "api/2.0/mlflow/runs/search", body)
        found += len(answer.get("runs", []))
        token = answer.get("next_page_token")
        if not token:
            return found


def mlflow_history(base: str, run_id: str) -> int:
    """Every step of the run's ``loss`` through ``metrics/get-history``."""
    found, token = 0, None
    while True:
        query = {"run_id": run_id, "metric_key": "loss", "max_results": 25_000}
        if token:
            query["page_token"] = token
        answer = get(base + "api/2.0/mlflow/metrics/get-history?" + urllib.parse.urlencode(query))
        found += len(answer.get("metrics", []))
        token = answer.get("next_page_token")
        if not token:
            return found


def mlflow_server(python: str, store: Path) -> tuple[str, subprocess.Popen[bytes]]:
    mlflow = Path(python).with_name("mlflow")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [str(mlflow), "server", "--backend-store-uri", f"sqlite:///{store}",
               "--default-artifact-root", str(store.parent / "art"), "--host", "127.0.0.1",
               "--port", str(port), "--workers", "1"]  # fmt: skip
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(base + "health", timeout=5).read()
            return base, server
        except OSError:
            assert time.monotonic() < deadline and server.poll() is None, "mlflow did not start"
            time.sleep(0.3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["postgres", "sqlite"], default="sqlite")
    parser.add_argument("--dsn")
    parser.add_argument("--mlflow-python", default=sys.executable)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--curves", type=int, default=20)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--populate", metavar="STORE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.populate:
        populate_mlflow(Path(args.populate), args.runs, args.curves, args.steps)
        return 0
    from bench_ui import answer, populate, serve, timed
    from common import open_databases, record

    found = subprocess.run([args.mlflow_python, "-c", "import mlflow"], capture_output=True)
    if found.returncode != 0:
        print(f"left out: {args.mlflow_python} cannot import mlflow (see --mlflow-python)")
        return 0
    client, raw, tmp = open_databases(args.engine, args.dsn)
    ids = populate(client, raw, args.engine, args.runs, args.curves, args.steps)
    base, uvicorn_server, thread = serve(client)
    store = tmp / "mlflow" / "mlflow.db"
    store.parent.mkdir()
    t0 = time.perf_counter()
    child = [args.mlflow_python, str(HERE), "--populate", str(store), "--runs", str(args.runs),
             "--curves", str(args.curves), "--steps", str(args.steps)]  # fmt: skip
    made = subprocess.run(child, capture_output=True, text=True, check=True)
    mlflow = json.loads(made.stdout.strip().splitlines()[-1])
    print(
        f"MLflow's store: {args.runs} runs, {args.curves} x {args.steps} steps, "
        f"made in {time.perf_counter() - t0:.0f} s"
    )
    ml_base, ml_server = mlflow_server(args.mlflow_python, store)
    try:
        assert mlflow_runs(ml_base, mlflow["experiment"]) == args.runs
        assert all(mlflow_history(ml_base, r) == args.steps for r in mlflow["curves"][:1])
        ml_runs = timed(lambda: mlflow_runs(ml_base, mlflow["experiment"]), args.repeat)
        ml_curves = timed(
            lambda: [mlflow_history(ml_base, r) for r in mlflow["curves"]], args.repeat
        )
        query = urllib.parse.urlencode({"experiment": "sweep"})
        ours_runs = timed(lambda: answer(f"{base}api/runs?{query}"), args.repeat)
        curve = f"{base}api/runs/{{}}/metrics?names=loss&points=1000"
        ours_curves = timed(
            lambda: [answer(curve.format(i)) for i in ids[: args.curves]], args.repeat
        )
    finally:
        ml_server.terminate()
        ml_server.wait(30)
        uvicorn_server.should_exit = True
        thread.join(10)
        shutil.rmtree(store.parent, ignore_errors=True)
    print(
        f"  the runs table, {args.runs} runs: sqltrack {ours_runs:.0f} ms, MLflow "
        f"runs/search {ml_runs:.0f} ms: {ml_runs / ours_runs:.1f}x (target >= 10)"
    )
    print(
        f"  {args.curves} curves of {args.steps} steps: sqltrack at 1,000 points "
        f"{ours_curves:.0f} ms, MLflow get-history {ml_curves:.0f} ms: "
        f"{ml_curves / ours_curves:.1f}x (target >= 10)"
    )
    record(f"ui vs MLflow: runs table, {args.runs} runs, MLflow / sqltrack", ml_runs / ours_runs,
           ">= 10")  # fmt: skip
    record(f"ui vs MLflow: {args.curves} curves, MLflow / sqltrack", ml_curves / ours_curves,
           ">= 10")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
