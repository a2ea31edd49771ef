"""``sqltrack plot`` at the size issue 11 names: 50 runs x 10,000 steps into a PNG.

    python bench/bench_plot.py --engine postgres --runs 50 --steps 10000

Fills the runs with the buffered writer, then times ``plot_curves`` (reading the rows
and drawing) in this process: the median of three. Target: under 5 s.
"""

from __future__ import annotations

import argparse
import statistics
import time

from common import open_databases, record

import sqltrack as st
from sqltrack import plot_curves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--dsn")
    args = parser.parse_args()
    client, raw, tmp = open_databases(args.engine, args.dsn)
    raw.close()
    exp = st.Experiment(client, name="plot")
    ids = []
    for _ in range(args.runs):
        run = exp.get_run()
        with run.track(buffered=True):
            for step in range(args.steps):
                run.add_metrics({"val_loss": 1.0 / (step + 1)}, step=step)
        ids.append(run.id)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        points = plot_curves(client, ids, "val_loss", tmp / "curves.png")
        times.append(time.perf_counter() - t0)
    seconds = statistics.median(times)
    record("plot: runs x steps into a PNG (s)", seconds, "<= 5")
    print(
        f"{args.engine}: plot of {args.runs} runs x {args.steps} steps ({points:,} points): "
        f"median {seconds:.2f} s of 3 (target <= 5 s)"
    )


if __name__ == "__main__":
    main()
