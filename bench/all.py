"""Every benchmark in docs/benchmarks.md for one engine, with one command, and a summary.

    python bench/all.py --engine postgres
    python bench/all.py --engine sqlite
    python bench/all.py --engine sqlite --quick     # tiny sizes: only checks that all run
    python bench/all.py --engine sqlite --only sync --only buffered   # some of them
    python bench/all.py --engine sqlite --mlflow-python /tmp/benchvenv/bin/python

Runs bench_sync, bench_buffered, bench_read, bench_plot, bench_summaries, bench_system,
bench_gc, bench_narrow, bench_lightning, bench_lab (PostgreSQL only), bench_ui,
bench_ui_load and bench_import,
each in a fresh interpreter with the sizes used in docs/benchmarks.md, bench_import_mlflow
when this interpreter has mlflow (the dev extra), and bench_mlflow
and bench_ui_mlflow when mlflow can be imported (by
``--mlflow-python``, e.g. a separate environment's interpreter; bench_lightning's fits then
run there too, with MLFlowLogger among the loggers, if it has lightning). Shows their output,
then a table of every figure against its target. On PostgreSQL one throwaway server (or
``--dsn``) serves all scripts, each in a schema of its own. Exits 1 if a target is missed
(except with ``--quick``, whose figures mean nothing).
"""

from __future__ import annotations

import argparse
import json
import operator
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import start_server

HERE = Path(__file__).resolve().parent

FULL = {
    "bench_sync.py": ["--steps", "5000", "--long", "50000"],
    "bench_buffered.py": ["--steps", "100000"],
    "bench_read.py": ["--steps", "5000"],
    "bench_plot.py": ["--runs", "50", "--steps", "10000"],
    "bench_summaries.py": ["--runs", "1000", "--steps", "10000", "--seconds", "30"],
    "bench_system.py": ["--seconds", "4", "--rounds", "12"],
    "bench_gc.py": ["--rows", "10000000", "--baseline", "5", "--after", "60"],
    "bench_narrow.py": [],  # its defaults: 100,000 names, a 25,000-value step, 6,000 names
    # a fresh interpreter per fit (~20 s with its imports here): 2 rounds of 4 fits take
    # about 3 min (4 min with MLFlowLogger); docs/benchmarks.md has 7 rounds
    "bench_lightning.py": ["--steps", "2000", "--rounds", "2"],
    "bench_lab.py": [],  # PostgreSQL only (it says so on SQLite): its defaults, ~2 min
    # 10,000 runs, 20 curves of 100,000 steps, first paint in Chromium: ~2 min
    "bench_ui.py": ["--browser"],
    # 20 jobs of 600 steps of 50 ms, alone then with 20 viewers: about 1.5 min
    "bench_ui_load.py": [],
}
# engine-independent: run once, without --engine
FULL_PLAIN = {"bench_hash.py": ["--gigabytes", "2"]}
QUICK_PLAIN = {"bench_hash.py": ["--gigabytes", "0.01", "--repeat", "1"]}
QUICK = {
    "bench_sync.py": ["--steps", "60", "--chunk", "20", "--long", "2100"],
    "bench_buffered.py": ["--steps", "300"],
    "bench_read.py": ["--steps", "100", "--repeat", "2"],
    "bench_plot.py": ["--runs", "2", "--steps", "50"],
    "bench_summaries.py": ["--runs", "3", "--steps", "50", "--frame-runs", "5", "--seconds", "0.5"],
    "bench_system.py": ["--seconds", "0.3", "--rounds", "2", "--interval", "0.1"],
    "bench_gc.py": ["--rows", "20000", "--baseline", "0.5", "--after", "0.5"],
    "bench_narrow.py": [
        "--harnesses", "2", "--names", "100", "--wide", "300", "--steps", "50",
        "--others", "300", "--long-runs", "2", "--repeat", "1",
    ],
    "bench_lightning.py": ["--quick"],
    "bench_lab.py": ["--steps", "40", "--chunk", "20", "--buffered", "200", "--rounds", "2",
                     "--runs", "3"],
    "bench_ui.py": ["--runs", "50", "--curves", "2", "--steps", "3000", "--repeat", "2"],
    "bench_ui_load.py": ["--jobs", "3", "--viewers", "3", "--steps", "60", "--step", "30"],
}  # fmt: skip


def met(value: float, target: str | None) -> str:
    if target is None:
        return ""
    op, bound = target.split()
    compare = {"<=": operator.le, ">=": operator.ge, "<": operator.lt}[op]
    return "yes" if compare(value, float(bound)) else "**NO**"


def importable(python: str, *modules: str) -> bool:
    """Whether ``python`` finds every one of ``modules`` (without importing them)."""
    code = "import importlib.util as u, sys; sys.exit(None in map(u.find_spec, sys.argv[1:]))"
    return subprocess.run([python, "-c", code, *modules], capture_output=True).returncode == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")
    parser.add_argument("--dsn", help="an existing PostgreSQL server to use")
    parser.add_argument("--mlflow-python", default=sys.executable)
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="run only bench_NAME.py (repeatable: sync, buffered, read, plot, summaries, "
        "system, gc, narrow, lightning, lab, ui, ui_load, ui_mlflow, import, hash, mlflow, "
        "import_mlflow)",
    )
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="sqltrack-bench-all-"))
    results = tmp / "results.jsonl"
    env = {**os.environ, "SQLTRACK_BENCH_RESULTS": str(results)}
    engine = ["--engine", args.engine]
    dsn = None
    if args.engine == "postgres":
        dsn = args.dsn or start_server(tmp).get_uri()
        engine += ["--dsn", dsn]
    sizes = QUICK if args.quick else FULL
    runs = [(sys.executable, script, [*size, *engine]) for script, size in sizes.items()]
    runs.append((sys.executable, "bench_import.py", ["--repeat", "3" if args.quick else "30"]))
    plain = QUICK_PLAIN if args.quick else FULL_PLAIN
    runs += [(sys.executable, script, size) for script, size in plain.items()]
    has_mlflow = importable(args.mlflow_python, "mlflow")
    if has_mlflow and importable(args.mlflow_python, "lightning"):  # MLFlowLogger, too
        runs = [
            (python, script, [*size, "--python", args.mlflow_python])
            if script == "bench_lightning.py"
            else (python, script, size)
            for python, script, size in runs
        ]
    if has_mlflow:
        runs.append(
            (args.mlflow_python, "bench_mlflow.py", ["--steps", "20" if args.quick else "1000"])
        )
        # the dashboard against MLflow's server: 10,000 runs, 5 curves of 100,000 steps
        # (MLflow reads each in about 15 s; the figure is a ratio per curve): about 6 min
        ui_sizes = ["--runs", "30", "--curves", "2", "--steps", "300", "--repeat", "1"]
        sizes = ui_sizes if args.quick else ["--curves", "5", "--repeat", "1"]
        mlflow = ["--mlflow-python", args.mlflow_python]
        runs.append((sys.executable, "bench_ui_mlflow.py", [*sizes, *engine, *mlflow]))

    if importable(sys.executable, "mlflow"):  # sqltrack import mlflow needs both in one
        size = ["--runs", "5", "--steps", "10"] if args.quick else []  # 1,000 x 100: ~4 min
        runs.append((sys.executable, "bench_import_mlflow.py", [*size, *engine]))

    if args.only:
        names = (n.removeprefix("bench_").removesuffix(".py") for n in args.only)
        wanted = {f"bench_{name}.py" for name in names}
        unknown = wanted - {script for _, script, _ in runs}
        if unknown:
            parser.error(f"no such benchmark: {', '.join(sorted(unknown))}")
        runs = [r for r in runs if r[1] in wanted]
    for python, script, script_args in runs:
        command = [python, "-W", "ignore", str(HERE / script), *script_args]
        shown = " ".join("DSN" if a == dsn else a for a in script_args)  # no password
        print(f"$ python bench/{script} {shown}", flush=True)
        done = subprocess.run(command, env=env)
        if done.returncode != 0:
            print(f"bench/{script} failed (exit status {done.returncode})")
            return 2
        print(flush=True)

    figures = [json.loads(line) for line in results.read_text().splitlines()]
    print(f"## Summary: {args.engine}{' (quick: not meaningful)' if args.quick else ''}\n")
    print("| figure | measured | target | met |")
    print("|---|---|---|---|")
    for f in figures:
        value, target = f["value"], f["target"]
        print(f"| {f['figure']} | {value:.2f} | {target or ''} | {met(value, target)} |")
    if not has_mlflow:
        print("\n(MLflow comparison skipped: mlflow is not importable by --mlflow-python)")
    missed = [f for f in figures if met(f["value"], f["target"]) == "**NO**"]
    return 1 if missed and not args.quick else 0


if __name__ == "__main__":
    sys.exit(main())
