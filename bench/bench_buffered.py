"""Buffered logging: the caller's cost per add_metrics, and sustained throughput.

- caller: the time ``run.add_metrics(...)`` takes in ``track(buffered=True)`` (10 float
  metrics), while the writer thread works in the background;
- throughput: steps per second from the first ``add_metrics`` until everything is
  committed, against the raw driver's ``executemany`` of the same rows into the same
  table (batches of 1000, commit per batch), in the same process. Targets: at least as
  fast as raw on PostgreSQL (where the writer uses binary COPY), 40 % of it on SQLite
  (whose raw INSERT has no upsert, no validation, no queue and no run summary to pay
  for); also measured with ``Run.keep_summary = False``.

    python bench/bench_buffered.py --engine postgres --steps 100000
    python bench/bench_buffered.py --engine sqlite --steps 100000
"""

from __future__ import annotations

import argparse
import statistics
import time

from common import NAMES, open_databases, record

import sqltrack as st


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--dsn")
    args = parser.parse_args()

    client, raw, _ = open_databases(args.engine, args.dsn)
    mark = "?" if args.engine == "sqlite" else "%s"
    exp = st.Experiment(client, name="bench")
    warm = exp.get_run()
    warm.add_metrics({n: 0.0 for n in NAMES})  # create the columns
    baseline_run = exp.get_run()

    insert = (
        f"INSERT INTO metrics (run_id, step, progress, {', '.join(NAMES)}) "  # noqa: S608
        f"VALUES ({', '.join([mark] * (3 + len(NAMES)))})"
    )
    t0 = time.perf_counter()
    for start in range(0, args.steps, 1000):
        rows = [
            (baseline_run.id, step, 0.0, *[step * 0.001 + i for i in range(len(NAMES))])
            for step in range(start, min(start + 1000, args.steps))
        ]
        cur = raw.cursor()
        cur.executemany(insert, rows)
        cur.close()
        raw.commit()
    raw_rate = args.steps / (time.perf_counter() - t0)

    clock = time.perf_counter

    def log(keep_summary: bool) -> tuple[float, list[float]]:
        run = exp.get_run()
        run.keep_summary = keep_summary
        calls: list[float] = []
        t0 = clock()
        with run.track(buffered=True):
            for step in range(args.steps):
                metrics = {n: step * 0.001 + i for i, n in enumerate(NAMES)}
                t1 = clock()
                run.add_metrics(metrics, step=step)
                calls.append(clock() - t1)
        rate = args.steps / (clock() - t0)
        stored = len(st.read_metrics(client, run.id, [])[1])
        assert stored == args.steps, (stored, args.steps)
        return rate, calls

    ours_rate, calls = log(keep_summary=True)
    bare_rate, _ = log(keep_summary=False)

    median_us = statistics.median(calls) * 1e6
    record("buffered: caller's time per add_metrics, median (us)", median_us, "<= 10")
    # SQLite: 0.5 before run summaries; keeping them from what is written costs ~0.5 us
    # per step of 10 metrics (Run.keep_summary = False saves it)
    target = ">= 1.0" if args.engine == "postgres" else ">= 0.4"
    record("buffered: throughput, share of raw executemany", ours_rate / raw_rate, target)
    record("buffered: throughput without summaries, share of raw", bare_rate / raw_rate)
    print(f"{args.engine}, {args.steps} steps of {len(NAMES)} float metrics, buffered:")
    print(
        f"  caller time per add_metrics: median {statistics.median(calls) * 1e6:.1f} us, "
        f"p99 {sorted(calls)[int(len(calls) * 0.99)] * 1e6:.1f} us (target median <= 10 us)"
    )
    print(f"  raw executemany, batches of 1000: {raw_rate:,.0f} steps/s")
    print(
        f"  sqltrack buffered, until committed: {ours_rate:,.0f} steps/s, "
        f"{ours_rate / raw_rate:.0%} of raw (target {target}); without keeping the "
        f"run's summary {bare_rate:,.0f} steps/s, {bare_rate / raw_rate:.0%}"
    )
    raw.close()


if __name__ == "__main__":
    main()
