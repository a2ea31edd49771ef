"""The cost of a lab's rules (schema v011: row-level security), a writer against the owner.

The same work done by the schema's owner (whom the policies do not apply to) and by a
lab member made a writer with ``sqltrack grant`` (each of whose rows the server checks),
alternating in chunks in one process, on one server:

- sync: ``run.add_metrics`` of 10 float metrics in ``track()``, a commit per step
  (the columns made by the owner first: a member adds none);
- buffered: ``track(buffered=True)`` of that many steps, to the end of ``stop``
  (the writer's COPY goes through a temporary table for the member);
- reads: ``runs_dataframe`` of an experiment of ``--runs`` runs with summaries, and
  ``SELECT * FROM run_overview`` (the summary view), as a reader and as the owner.

    python bench/bench_lab.py --engine postgres
    python bench/bench_lab.py --engine postgres --dsn postgresql://...  # a superuser's

PostgreSQL only (SQLite has no roles: with ``--engine sqlite`` it says so and stops).
Targets: writes within 5 % of the owner's, reads within 10 %. Also what the rules cost
everyone (the owner too): the owner's runs with the triggers of the value tables off
against on (no target).
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable

from common import NAMES, open_databases, record

import sqltrack as st
from sqltrack._admin.grants import grant


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--steps", type=int, default=3000, help="sync steps for each side")
    parser.add_argument("--buffered", type=int, default=20000, help="buffered steps per run")
    parser.add_argument("--rounds", type=int, default=5, help="buffered runs and reads per side")
    parser.add_argument("--runs", type=int, default=200, help="runs the reads read")
    parser.add_argument("--chunk", type=int, default=250)
    parser.add_argument("--dsn")
    args = parser.parse_args()
    if args.engine != "postgres":
        print("bench_lab: PostgreSQL only (SQLite has no roles: its file mode is its permission)")
        return

    owner, raw, _ = open_databases(args.engine, args.dsn)
    tag = uuid.uuid4().hex[:8]
    roles = {"writer": f"bench_writer_{tag}", "reader": f"bench_reader_{tag}"}
    for level, role in roles.items():
        raw.execute(f'CREATE ROLE "{role}" LOGIN')
        raw.commit()
        grant(owner, role, level, say=lambda line: None)
    params = owner.engine.params
    writer = st.Client({}, **{**params, "user": roles["writer"]})
    reader = st.Client({}, **{**params, "user": roles["reader"]})
    with owner:
        for name in NAMES:  # the lab's columns, made by the owner (a member adds none)
            owner.execute(f"ALTER TABLE metrics ADD COLUMN {name} DOUBLE PRECISION")

    # sync: a commit per step, chunks in turn
    runs = {who: st.Experiment(c, name="bench-lab").get_run() for who, c in
            (("owner", owner), ("writer", writer))}  # fmt: skip
    times: dict[str, list[float]] = {"owner": [], "writer": []}
    clock = time.perf_counter
    with runs["owner"].track(), runs["writer"].track():  # (each holds its connection)
        for start in range(0, args.steps, args.chunk):
            turn = list(runs.items())
            for who, run in turn if start // args.chunk % 2 else turn[::-1]:  # (in turns)
                for step in range(start, min(start + args.chunk, args.steps)):
                    metrics = {n: step * 0.001 + i for i, n in enumerate(NAMES)}
                    t0 = clock()
                    run.add_metrics(metrics, step=step)
                    times[who].append(clock() - t0)
    sync = statistics.median(times["writer"]) / statistics.median(times["owner"])

    # buffered: whole runs, in turns
    def buffered(client: st.Client) -> float:
        run = st.Experiment(client, name="bench-lab").get_run()
        t0 = clock()
        with run.track(buffered=True):
            for step in range(args.buffered):
                run.add_metrics({n: step * 0.001 + i for i, n in enumerate(NAMES)}, step=step)
        return clock() - t0

    spent = paired(lambda: buffered(owner), lambda: buffered(writer), args.rounds)
    buffered_ratio = statistics.median(w / o for o, w in spent)

    # reads: an experiment of runs with summaries, as a reader and as the owner
    for i in range(args.runs):
        run = st.Experiment(owner, name="bench-lab-read").get_run()
        with run.track():
            run.add_metrics({n: float(i) for n in NAMES}, step=0)
            run.add_metrics({n: float(i) / 2 for n in NAMES}, step=1)

    def frame(client: st.Client) -> float:
        t0 = clock()
        st.runs_dataframe(client, "bench-lab-read")
        return clock() - t0

    def overview(client: st.Client) -> float:
        t0 = clock()
        client.query("SELECT * FROM run_overview")
        return clock() - t0

    # what the rules cost everyone: the owner's runs with the value tables' triggers off
    def triggers(on: bool) -> None:
        with owner:
            for table in ("metrics", "metric_points"):
                for trigger in ("sqltrack_inserted", "sqltrack_updated", "sqltrack_deleted"):
                    owner.execute(
                        f"ALTER TABLE {table} {'EN' if on else 'DIS'}ABLE TRIGGER {trigger}"
                    )

    def sync_run(client: st.Client) -> float:
        run = st.Experiment(client, name="bench-lab").get_run()
        spent = []
        with run.track():
            for step in range(args.chunk * 2):
                t0 = clock()
                run.add_metrics({n: step * 0.001 + i for i, n in enumerate(NAMES)}, step=step)
                spent.append(clock() - t0)
        return statistics.median(spent)

    def without(measure: Callable[[], float]) -> float:
        triggers(False)
        try:
            return measure()
        finally:
            triggers(True)

    plain_sync = paired(
        lambda: without(lambda: sync_run(owner)), lambda: sync_run(owner), args.rounds
    )
    plain_buffered = paired(
        lambda: without(lambda: buffered(owner)), lambda: buffered(owner), args.rounds
    )
    rules_sync = statistics.median(b / a for a, b in plain_sync)
    rules_buffered = statistics.median(b / a for a, b in plain_buffered)

    frames = paired(lambda: frame(owner), lambda: frame(reader), args.rounds * 3)
    views = paired(lambda: overview(owner), lambda: overview(reader), args.rounds * 3)
    frame_ratio = statistics.median(r / o for o, r in frames)
    view_ratio = statistics.median(r / o for o, r in views)

    print("PostgreSQL, a writer (row-level security) against the schema's owner, same server:")
    o_us, w_us = (statistics.median(times[w]) * 1e6 for w in ("owner", "writer"))
    print(f"  sync, {args.steps} steps of {len(NAMES)} floats, commit per step: owner "
          f"{o_us:.1f} us/step, writer {w_us:.1f}: ratio {sync:.3f} (target <= 1.05)")  # fmt: skip
    o_s, w_s = (statistics.median(pair[i] for pair in spent) for i in (0, 1))
    print(f"  buffered, {args.buffered} steps to the end of stop, {args.rounds} runs each: "
          f"owner {o_s:.3f} s, writer {w_s:.3f} s: ratio {buffered_ratio:.3f} "
          "(target <= 1.05)")  # fmt: skip
    print(f"  runs_dataframe of {args.runs} runs, as a reader: ratio {frame_ratio:.3f} "
          f"(target <= 1.10); run_overview: ratio {view_ratio:.3f} (target <= 1.10)")  # fmt: skip
    print(f"  the rules for everyone (the owner, the value tables' triggers on / off): sync "
          f"{rules_sync:.3f}, buffered {rules_buffered:.3f}")  # fmt: skip
    record("lab: sync per step, writer / owner", sync, "<= 1.05")
    record("lab: the rules' triggers, owner's sync step, on / off", rules_sync)
    record("lab: the rules' triggers, owner's buffered run, on / off", rules_buffered)
    record("lab: buffered run, writer / owner", buffered_ratio, "<= 1.05")
    record("lab: runs_dataframe, reader / owner", frame_ratio, "<= 1.1")
    record("lab: run_overview, reader / owner", view_ratio, "<= 1.1")
    for role in roles.values():
        raw.execute(f'DROP OWNED BY "{role}"')
        raw.execute(f'DROP ROLE "{role}"')
        raw.commit()
    raw.close()


def paired(
    a: Callable[[], float], b: Callable[[], float], rounds: int
) -> list[tuple[float, float]]:
    """``rounds`` pairs of timings of ``a`` and ``b``, the order swapped every round."""
    pairs = []
    for r in range(rounds):
        if r % 2:
            tb, ta = b(), a()
        else:
            ta, tb = a(), b()
        pairs.append((ta, tb))
    return pairs


if __name__ == "__main__":
    main()
