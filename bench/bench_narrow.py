"""Any metric a lab logs: the narrow storage at the sizes of a lab (docs/metrics.md).

    python bench/bench_narrow.py --engine postgres
    python bench/bench_narrow.py --engine sqlite --harnesses 5 --names 200   # smaller

1. A lab of names: ``--harnesses`` evaluation runs of ``--names`` task metrics each, all
   distinct (50 x 2,000 = 100,000 names), each one step of a tracked run, then one run of
   ``--wide`` values in one step (25,000): failed jobs, spooled values, the time of the
   wide step and of reading it back into a DataFrame (targets <= 1 s).
2. The training curve does not pay: a 3-metric run of ``--steps`` steps, bytes per value
   of ``metrics`` in a fresh database, and in one whose wide table is at its column
   budget (the run's names among its columns) with ``--others`` other names in all
   (target <= 1.5x). Also: the same run with names new to a full table (narrow).
3. ``metrics_long``: the mean of every ``mmlu_%`` metric per run for ``--long-runs``
   runs x 2,000 names (target < 100 ms on PostgreSQL).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

from common import open_databases, record

import sqltrack as st
from sqltrack._live.spool import spool_files

TRAIN = ("train_loss", "val_loss", "lr")


def size_of(client: st.Client, raw: Any, engine: str, tmp: Any) -> int:
    """Bytes of the metrics tables (table and indexes), after a vacuum."""
    if engine == "postgres":
        raw.rollback()
        raw.autocommit = True  # VACUUM cannot run in a transaction
        raw.execute("VACUUM ANALYZE metrics")
        raw.execute("VACUUM ANALYZE metric_points")
        row = raw.execute(
            "SELECT pg_total_relation_size('metrics') + pg_total_relation_size('metric_points')"
        ).fetchone()
        return int(row[0])
    client.execute("VACUUM")
    return int((tmp / "bench.db").stat().st_size)


def train(client: st.Client, names: tuple[str, ...], steps: int) -> None:
    run = st.Experiment(client, name="train").get_run()
    with run.track():
        for step in range(steps):
            run.add_metrics({n: 1.0 / (step + 1) + i for i, n in enumerate(names)}, step=step)


def per_value(args: argparse.Namespace, crowded: bool, names: tuple[str, ...]) -> float:
    """Bytes per value of a 3-metric run of ``names``, in a fresh database or a crowded
    one (the wide table at its budget, ``--others`` names in all)."""
    client, raw, tmp = open_databases(args.engine, args.dsn)
    if crowded:
        budget = client.engine.column_budget
        others = st.Experiment(client, name="others").get_run()
        others.add_metrics({n: 0.0 for n in TRAIN}, step=0)  # common names, created early
        plain = [f"other_{i}" for i in range(budget - len(TRAIN))]
        for start in range(0, len(plain), 10):  # projects of ten names each
            others.add_metrics({n: 1.0 for n in plain[start : start + 10]}, step=start + 1)
        rest = args.others - budget
        ev = st.Experiment(client, name="evals").get_run()
        for start in range(0, rest, 2000):
            count = min(2000, rest - start)
            ev.add_metrics({f"eval_{start + i}_acc": 0.5 for i in range(count)}, step=start)
        with client as conn:
            cur = conn.cursor()
            columns = len(client.engine.metric_columns(cur))
            cur.close()
        assert columns - 3 == budget, (columns, budget)  # (run_id, step, progress)
    before = size_of(client, raw, args.engine, tmp)
    train(client, names, args.steps)
    after = size_of(client, raw, args.engine, tmp)
    raw.close()
    return (after - before) / (args.steps * len(names))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--dsn")
    parser.add_argument("--harnesses", type=int, default=50)
    parser.add_argument("--names", type=int, default=2000)
    parser.add_argument("--wide", type=int, default=25000)
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--others", type=int, default=6000)
    parser.add_argument("--long-runs", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    # 1. a lab of names
    client, raw, _ = open_databases(args.engine, args.dsn)
    step_times = []
    failed = 0
    for h in range(args.harnesses):
        run = st.Experiment(client, name="harness").get_run()
        metrics = {f"h{h}_task{i}_acc_norm": (i % 100) / 100 for i in range(args.names)}
        try:
            with run.track():
                t0 = time.perf_counter()
                run.add_metrics(metrics, step=0)
                step_times.append(time.perf_counter() - t0)
        except Exception as e:
            failed += 1
            print(f"  harness {h} failed: {e}")
    wide = st.Experiment(client, name="wide").get_run()
    values = {f"probe/{i}": float(i) for i in range(args.wide)}
    wide_times, read_times = [], []
    for step in range(args.repeat):
        with wide.track():
            t0 = time.perf_counter()
            wide.add_metrics(values, step=step)
            wide_times.append(time.perf_counter() - t0)
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        frame = st.metrics_dataframe(client, wide.id)
        read_times.append(time.perf_counter() - t0)
    assert frame.shape == (args.repeat, 3 + args.wide), frame.shape
    stored = client.execute("SELECT count(*) FROM metric_points")[0][0]
    names = client.execute("SELECT count(*) FROM metric_names")[0][0]
    spooled = len(spool_files())
    expected = args.harnesses * args.names + args.repeat * args.wide
    lost = expected - stored
    wide_s, read_s = statistics.median(wide_times), statistics.median(read_times)
    print(f"{args.engine}: {args.harnesses} harness runs x {args.names} names, then "
          f"{args.wide:,} values in one step:")  # fmt: skip
    print(f"  distinct names {names:,}; failed runs {failed}; spool files {spooled}; "
          f"values lost {lost}")  # fmt: skip
    print(f"  a harness step of {args.names:,} new names: median "
          f"{statistics.median(step_times) * 1e3:.0f} ms")  # fmt: skip
    print(f"  the {args.wide:,}-value step: {wide_s * 1e3:.0f} ms (target <= 1000); into a "
          f"DataFrame: {read_s * 1e3:.0f} ms (target <= 1000)")  # fmt: skip
    record("narrow: failed runs + spooled + lost values", failed + spooled + lost, "<= 0")
    record("narrow: 25,000-value step, seconds", wide_s, "<= 1")
    record("narrow: 25,000-value step into a DataFrame, seconds", read_s, "<= 1")

    # 3. metrics_long
    runs = []
    for r in range(args.long_runs):
        run = st.Experiment(client, name="mmlu").get_run()
        run.add_metrics({f"mmlu_task{i}_acc": ((i + r) % 50) / 50 for i in range(2000)}, step=0)
        runs.append(run.id)
    if args.engine == "postgres":
        raw.rollback()
        raw.autocommit = True
        raw.execute("VACUUM ANALYZE metric_points")
        raw.execute("VACUUM ANALYZE metric_names")
    query = (
        "SELECT run_id, avg(value) FROM metrics_long WHERE metric LIKE 'mmlu_%' "
        "GROUP BY run_id ORDER BY run_id"
    )
    long_times = []
    for _ in range(max(3, args.repeat)):
        t0 = time.perf_counter()
        rows = client.execute(query)
        long_times.append(time.perf_counter() - t0)
    assert [r[0] for r in rows] == runs
    long_ms = statistics.median(long_times) * 1e3
    print(f"  metrics_long, mean of mmlu_% per run, {args.long_runs} runs x 2,000 names: "
          f"{long_ms:.1f} ms (target < 100 on PostgreSQL)")  # fmt: skip
    record("metrics_long mmlu_% mean per run, ms", long_ms,
           "< 100" if args.engine == "postgres" else None)  # fmt: skip
    raw.close()

    # 2. the training curve does not pay
    fresh = per_value(args, False, TRAIN)
    crowded = per_value(args, True, TRAIN)
    new_names = per_value(args, True, ("new_loss", "new_acc", "new_lr"))
    ratio = crowded / fresh if fresh > 0 else 0.0  # (tiny --steps: under a page of SQLite)
    print(f"  a 3-metric run of {args.steps:,} steps: {fresh:.1f} B/value in a fresh database, "
          f"{crowded:.1f} B/value with the wide table at its budget and {args.others:,} "
          f"names in all: {ratio:.2f}x (target <= 1.5)")  # fmt: skip
    print(f"  the same run with names new to the full table (narrow): {new_names:.1f} B/value")
    record("bytes per value of a 3-metric run among 6,000 names, times fresh", ratio,
           "<= 1.5")  # fmt: skip
    record("narrow bytes per value", new_names)
    return 0


if __name__ == "__main__":
    sys.exit(main())
