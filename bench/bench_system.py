"""System metrics: what the sampler thread costs a synchronous training loop.

    python bench/bench_system.py --engine postgres --seconds 4 --rounds 12

Rounds of ``--seconds`` of logging (3 metrics per step, each step committed), each round
a new tracked run, without and with ``track(system_metrics=1)`` (one sample per second:
CPU, memory; no GPU here), in ABBA order (the second of a pair ran measurably slower on
SQLite whichever it was). Prints two figures:

- **the sampler's share**: the time its thread spends measuring and writing (wall time
  of ``measure`` and of writing the samples, timed on that thread), as a share of the
  rounds with it. The loop cannot lose more to it than that (plus a thread switch per
  sample), whatever the noise of the machine. Target: < 1 %.
- the median time per step with and without the sampler, their ratio, and the range of
  the ratios of single pairs: the end-to-end view, but pairs on this machine differ by
  up to ±10 % among themselves, so it cannot show a 1 % cost either way.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from common import open_databases, record

import sqltrack as st
from sqltrack._live.system_metrics import SystemSampler

_busy: list[float] = []  # seconds the sampler's thread spent measuring or writing


def _timed(method: Any) -> Any:
    def wrapper(self: SystemSampler, *args: Any) -> Any:
        t = time.perf_counter()
        try:
            return method(self, *args)
        finally:
            _busy.append(time.perf_counter() - t)

    return wrapper


SystemSampler.measure = _timed(SystemSampler.measure)  # type: ignore[method-assign]
SystemSampler._flush = _timed(SystemSampler._flush)  # type: ignore[method-assign]


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
    shares = []
    for i in range(args.rounds):  # ABBA: the order of a pair does not favor either
        for sampled in (True, False) if (i % 2 == 1) != args.reverse else (False, True):
            run = exp.get_run()
            steps = 0
            _busy.clear()
            t0 = time.perf_counter()
            with run.track(system_metrics=args.interval if sampled else None):
                while time.perf_counter() - t0 < args.seconds:
                    run.add_metrics({"loss": 1 / (steps + 1), "acc": 0.5, "lr": 0.1}, steps)
                    steps += 1
                elapsed = time.perf_counter() - t0
            per_step[sampled].append(elapsed / steps * 1e6)
            if sampled:  # (its last write, as the run ends, included)
                shares.append(sum(_busy) / (time.perf_counter() - t0))
    without, with_ = statistics.median(per_step[False]), statistics.median(per_step[True])
    pairs = [a / b for a, b in zip(per_step[True], per_step[False], strict=True)]
    share = max(shares)
    record("system metrics: the sampler's share of a run's time (most of any round)", share,
           "< 0.01")  # fmt: skip
    record("system metrics: time per synchronous step, with / without", with_ / without)
    samples = client.query("SELECT count(*) FROM system_metrics")[0][0]
    print(
        f"{args.engine}: the sampler's thread measured and wrote for {100 * share:.3f} % of "
        f"a round at most (median {100 * statistics.median(shares):.3f} %; target < 1 %)"
    )
    print(
        f"{args.engine}: {without:.1f} us/step without, {with_:.1f} with system metrics every "
        f"{args.interval:g} s (ratio {with_ / without:.3f}; single pairs "
        f"{min(pairs):.3f}-{max(pairs):.3f}; medians of {args.rounds} rounds of "
        f"{args.seconds:g} s; {samples} values sampled)"
    )


if __name__ == "__main__":
    main()
