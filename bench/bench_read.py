"""Reading a run back, and what a metric value costs on disk.

- read: one run of ``--steps`` steps x 10 float metrics into a pandas DataFrame with
  ``sqltrack.metrics_dataframe``, against the raw driver (a binary cursor on PostgreSQL)
  fetching the same rows plus ``DataFrame.from_records``, in the same process;
- storage: the metrics table with its primary-key index, per stored value.

    python bench/bench_read.py --engine postgres --steps 5000
    python bench/bench_read.py --engine sqlite --steps 5000
"""

from __future__ import annotations

import argparse
import statistics
import time

import pandas
from common import NAMES, open_databases, record

import sqltrack as st


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--dsn")
    args = parser.parse_args()

    client, raw, tmp = open_databases(args.engine, args.dsn)
    run = st.Experiment(client, name="bench").get_run()
    with run.track(buffered=True):
        for step in range(args.steps):
            run.add_metrics({n: step * 0.001 + i for i, n in enumerate(NAMES)}, step=step)

    columns = ", ".join(["run_id", "step", "progress", *NAMES])
    if args.engine == "postgres":
        query = f"SELECT {columns} FROM metrics WHERE run_id = %s ORDER BY 1, 2, 3"  # noqa: S608
    else:
        query = f"SELECT {columns} FROM metrics WHERE run_id = ? ORDER BY 1, 2, 3"  # noqa: S608

    def raw_read() -> pandas.DataFrame:
        cur = raw.cursor(binary=True) if args.engine == "postgres" else raw.cursor()
        cur.execute(query, (run.id,))
        rows = cur.fetchall()
        cur.close()
        return pandas.DataFrame.from_records(rows, columns=["run_id", "step", "progress", *NAMES])

    raw_times, ours = [], []
    with client:  # one connection for the repeated reads, like the raw side
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            expected = raw_read()
            t1 = time.perf_counter()
            frame = st.metrics_dataframe(client, run.id)
            t2 = time.perf_counter()
            raw_times.append(t1 - t0)
            ours.append(t2 - t1)
    assert frame.equals(expected), "both must read the same data"
    raw_ms, ours_ms = statistics.median(raw_times) * 1e3, statistics.median(ours) * 1e3
    print(f"{args.engine}, one run of {args.steps} steps x {len(NAMES)} metrics into a DataFrame:")
    print(
        f"  raw {'binary ' if args.engine == 'postgres' else ''}fetch + DataFrame  {raw_ms:.1f} ms"
    )
    print(
        f"  sqltrack.metrics_dataframe       {ours_ms:.1f} ms, ratio {ours_ms / raw_ms:.2f} "
        "(target <= 1.5)"
    )

    record("one run into a DataFrame, ratio to raw fetch + DataFrame", ours_ms / raw_ms, "<= 1.5")
    values = args.steps * len(NAMES)
    if args.engine == "postgres":
        raw.rollback()
        raw.autocommit = True  # VACUUM cannot run in a transaction
        raw.execute("VACUUM ANALYZE metrics")
        (size,) = raw.execute("SELECT pg_total_relation_size('metrics')").fetchone()
    else:
        client.execute("VACUUM")
        size = (tmp / "bench.db").stat().st_size
    print(
        f"  storage: {size:,} bytes for {values:,} values (table and primary key): "
        f"{size / values:.1f} bytes per value (target <= 20 on PostgreSQL)"
    )
    record("bytes per metric value", size / values, "<= 20" if args.engine == "postgres" else None)
    raw.close()


if __name__ == "__main__":
    main()
