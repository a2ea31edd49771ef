"""Run summaries at lab size: questions on the summary view, runs_dataframe, and upkeep.

    python bench/bench_summaries.py --engine postgres --runs 1000 --steps 10000

1. Fills ``--runs`` runs x ``--steps`` steps x 3 metrics with tracked, buffered runs
   (which keep their summaries), then times three questions, median of 5, on the
   summary view and, for comparison, on ``metrics`` (median of 3). Target: < 20 ms each.
2. Adds runs up to ``--frame-runs`` (3 steps each) and times ``runs_dataframe`` with
   three summaries, median of 3. Target: < 1 s for 10,000 runs.
3. Upkeep on the synchronous per-step path: two runs log alternately in chunks for
   ``--seconds`` each with the default heartbeat; one keeps its summary, the other
   does not. Prints the time per step of each, their ratio, and the share of the first
   run's time spent updating its summary. Target: <= 5 %.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from typing import Any

from common import open_databases, record

import sqltrack as st
from sqltrack._live.upkeep import Upkeep

QUESTIONS = {
    "best val_loss per run of one experiment": (
        "SELECT o.id, s.min FROM run_overview o JOIN run_summaries s "
        "ON s.run_id = o.id AND s.metric = 'val_loss' "
        "WHERE o.experiment = 'bench' ORDER BY s.min",
        "SELECT r.id, min(m.val_loss) AS best FROM runs r "
        "JOIN experiments e ON e.id = r.experiment_id JOIN metrics m ON m.run_id = r.id "
        "WHERE e.name = 'bench' GROUP BY r.id ORDER BY best",
    ),
    "last step reached per run": (
        "SELECT id, last_step FROM run_overview WHERE experiment = 'bench'",
        "SELECT r.id, max(m.step) FROM runs r JOIN experiments e ON e.id = r.experiment_id "
        "JOIN metrics m ON m.run_id = r.id WHERE e.name = 'bench' GROUP BY r.id",
    ),
    "final val_loss of the best completed runs of the last day": (
        "SELECT o.id, s.last FROM run_overview o JOIN run_summaries s "
        "ON s.run_id = o.id AND s.metric = 'val_loss' WHERE o.status = 'COMPLETED' "
        "AND o.time_started > {day_ago} ORDER BY s.min LIMIT 10",
        "SELECT r.id, (SELECT m2.val_loss FROM metrics m2 WHERE m2.run_id = r.id "
        "ORDER BY m2.step DESC LIMIT 1) FROM runs r JOIN metrics m ON m.run_id = r.id "
        "WHERE r.status = 'COMPLETED' AND r.time_started > {day_ago} "
        "GROUP BY r.id ORDER BY min(m.val_loss) LIMIT 10",
    ),
}
DAY_AGO = {
    "postgres": "now() - interval '1 day'",
    "sqlite": "strftime('%Y-%m-%d %H:%M:%f+00:00', 'now', '-1 day')",
}


def _timed(fn: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def fill(client: st.Client, runs: int, steps: int) -> None:
    exp = st.Experiment(client, name="bench")
    t0 = time.perf_counter()
    for i in range(runs):
        run = exp.get_run().set_args({"lr": 10 ** -(i % 4), "seed": i})
        with run.track(buffered=True):
            for step in range(steps):
                loss = math.exp(-step / (2000 + i)) + 0.01 * math.sin(step + i)
                run.add_metrics({"loss": loss, "val_loss": loss * 1.1, "acc": 1 - loss}, step)
    rate = runs * steps / (time.perf_counter() - t0)
    print(f"filled {runs:,} runs x {steps:,} steps x 3 metrics ({rate:,.0f} steps/s)")


def questions(client: st.Client, engine: str) -> None:
    for name, (fast, scan) in QUESTIONS.items():
        fast, scan = (q.format(day_ago=DAY_AGO[engine]) for q in (fast, scan))
        with client as conn:
            rows = len(conn.execute(fast).fetchall())
            summary_ms = _timed(lambda f=fast: conn.execute(f).fetchall(), 5) * 1000
            scan_ms = _timed(lambda s=scan: conn.execute(s).fetchall(), 3) * 1000
        record(f"question on the summary view: {name} (ms)", summary_ms, "<= 20")
        print(
            f"  {name}: {summary_ms:.1f} ms on the view ({rows} rows); "
            f"{scan_ms:.0f} ms scanning metrics"
        )


def frame(client: st.Client, runs: int) -> None:
    exp = st.Experiment(client, name="frame")
    have = len(st.find_runs(client))
    for i in range(max(0, runs - have)):
        run = exp.get_run().set_args({"lr": 0.1, "bs": 32, "seed": i})
        with run.track():
            for step in range(3):
                run.add_metrics({"loss": 1 / (step + 1), "val_loss": 1.0, "acc": 0.5}, step)
    summaries = ("val_loss:min", "acc:last", "loss:last")
    seconds = _timed(lambda: st.runs_dataframe(client, summaries=summaries), 3)
    df = st.runs_dataframe(client, summaries=summaries)
    record("runs_dataframe of every run with 3 summaries (s)", seconds, "<= 1")
    print(f"  runs_dataframe: {len(df):,} runs x {len(df.columns)} columns in {seconds:.3f} s")


def upkeep(client: st.Client, seconds: float, chunk: int = 200) -> None:
    exp = st.Experiment(client, name="upkeep")
    plain, kept = exp.get_run(), exp.get_run()  # (on SQLite the higher id appends faster)
    spent = [0.0]
    update = Upkeep.update

    def timed_update(self: Upkeep, *args: Any, **kwargs: Any) -> None:
        t0 = time.perf_counter()
        try:
            update(self, *args, **kwargs)
        finally:
            if self is kept._delivery.upkeep:
                spent[0] += time.perf_counter() - t0

    Upkeep.update = timed_update  # type: ignore[method-assign]
    plain._delivery.upkeep.available = False  # this run keeps no summary
    totals = {"kept": 0.0, "plain": 0.0}
    steps = {"kept": 0, "plain": 0}
    with kept.track(), plain.track():
        step = 0
        order = [("kept", kept), ("plain", plain)]
        while totals["kept"] < seconds:
            order.reverse()  # neither always goes first
            for name, run in order:
                t0 = time.perf_counter()
                for s in range(step, step + chunk):
                    run.add_metrics({"loss": 1 / (s + 1), "val_loss": 0.5, "acc": s % 7}, s)
                totals[name] += time.perf_counter() - t0
                steps[name] += chunk
            step += chunk
    Upkeep.update = update  # type: ignore[method-assign]
    per = {k: totals[k] / steps[k] * 1e6 for k in totals}
    share = spent[0] / totals["kept"]
    record("summary upkeep: share of a synchronous run's time", share, "<= 0.05")
    print(
        f"  upkeep: {per['kept']:.1f} us/step with summaries, {per['plain']:.1f} without "
        f"(ratio {per['kept'] / per['plain']:.3f}); {share:.2%} of the time in summary "
        f"updates over {steps['kept']:,} steps"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--frame-runs", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=30.0, help="upkeep: per run")
    parser.add_argument("--only-upkeep", action="store_true", help="skip parts 1 and 2")
    parser.add_argument("--dsn")
    args = parser.parse_args()
    client, raw, _ = open_databases(args.engine, args.dsn)
    raw.close()
    print(f"{args.engine}:")
    if args.only_upkeep:
        upkeep(client, args.seconds)
        return
    fill(client, args.runs, args.steps)
    if args.engine == "postgres":
        with client as conn:
            conn.execute("ANALYZE")
    questions(client, args.engine)
    frame(client, args.frame_runs)
    upkeep(client, args.seconds)


if __name__ == "__main__":
    main()
