"""System metrics: what the sampler thread costs a synchronous training loop.

    python bench/bench_system.py --engine postgres --seconds 5 --rounds 4

Rounds of ``--seconds`` of logging (3 metrics per step, each step committed), each round
a new tracked run, without and with ``track(system_metrics=1)`` (one sample per second:
CPU, memory; no GPU here), in ABBA order (the second of a pair ran measurably slower on
SQLite whichever it was). Prints the median time per step of each and their
ratio. Target: <= 1.01.
"""

from __future__ import annotations

import argparse
import statistics
import time

from common import open_databases, record

import sqltrack as st


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--reverse", action="store_true", help="with the sampler first")
    parser.add_argument("--dsn")
    args = parser.parse_args()
    client, raw, _ = open_databases(args.engine, args.dsn)
    raw.close()
    exp = st.Experiment(client, name="system")
    per_step: dict[bool, list[float]] = {False: [], True: []}
    for i in range(args.rounds):  # ABBA: the order of a pair does not favor either
        for sampled in (True, False) if (i % 2 == 1) != args.reverse else (False, True):
            run = exp.get_run()
            steps = 0
            with run.track(system_metrics=args.interval if sampled else None):
                t0 = time.perf_counter()
                while time.perf_counter() - t0 < args.seconds:
                    run.add_metrics({"loss": 1 / (steps + 1), "acc": 0.5, "lr": 0.1}, steps)
                    steps += 1
                elapsed = time.perf_counter() - t0
            per_step[sampled].append(elapsed / steps * 1e6)
    without, with_ = statistics.median(per_step[False]), statistics.median(per_step[True])
    record("system metrics: time per synchronous step, with / without", with_ / without, "<= 1.01")
    samples = client.query("SELECT count(*) FROM system_metrics")[0][0]
    print(
        f"{args.engine}: {without:.1f} us/step without, {with_:.1f} with system metrics every "
        f"{args.interval:g} s (ratio {with_ / without:.3f}, medians of {args.rounds} rounds of "
        f"{args.seconds:g} s; {samples} values sampled)"
    )


if __name__ == "__main__":
    main()
