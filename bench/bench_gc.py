"""Collecting a big deleted run: writers of other runs never wait, client memory stays flat.

    python bench/bench_gc.py --engine postgres --rows 10000000
    python bench/bench_gc.py --engine postgres --rows 10000000 --new-column-every 2
    python bench/bench_gc.py --engine sqlite --rows 10000000

1. Fills one run with ``--rows`` metric rows (three float metrics, written server-side),
   deletes it, and dates its deletion two days back.
2. Starts a writer, an OS process of its own like a training job: a tracked run logging
   synchronously (each ``add_metrics`` its own commit) every 10 ms, timing every call.
   With ``--new-column-every S`` a second writer adds a new metric column every S
   seconds: ``ALTER TABLE`` waits for every transaction on ``metrics``, every writer
   after it queues behind it, and PostgreSQL's automatic vacuum (of the rows the gc
   deleted) gives way only after ``deadlock_timeout`` (1 s by default).
3. After ``--baseline`` seconds of writing alone, runs ``gc_deleted(deleted_before=1 day)``
   in a third process that reports its resident memory after connecting and its peak,
   and its longest statement; the writers go on for ``--after`` seconds after the gc
   (the server's automatic vacuum of the deleted rows comes then).

Prints each writer's waits before the gc and from its start to the end (median, 99th
percentile, longest), and the gc's time and memory growth. Targets: no call of a writer
takes 1 s or more from the gc's start on (with new columns: 1 s more than the server's
``deadlock_timeout``); memory growth < 100 MB. Exits 1 when a target is missed, a row of
a writer is missing, or a row of the deleted run is left.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from common import _connect, record

import sqltrack as st

WRITER = """
import json, os, sys, time
import sqltrack as st
stop, out, new_every = sys.argv[1], sys.argv[2], float(sys.argv[3])
client = st.Client()
run = st.Experiment(client, name="writer").get_run()
prefix = f"n{os.getpid()}_" if new_every else "w"
waits, names, step, added = [], [prefix + "0"], 0, time.monotonic()
with run.track():
    while not os.path.exists(stop):
        if new_every and time.monotonic() - added > new_every:
            names.append(f"{prefix}{len(names)}")  # a new column: ALTER TABLE metrics
            added = time.monotonic()
        t = time.perf_counter()
        run.add_metrics({n: float(step) for n in names}, step=step)
        waits.append((time.time(), time.perf_counter() - t, t))
        step += 1
        time.sleep(0.01)
json.dump({"run": run.id, "steps": step, "waits": waits}, open(out, "w"))
"""

GC = """
import json, sys, time
import sqltrack as st

def kib(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1])

client = st.Client()
st.find_runs(client, deleted=True)  # connected, the modules it needs imported
slowest = [0.0, ""]
query = client.query

def timed(sql, params=None):  # the longest statement: how long gc held a lock at most
    t = time.perf_counter()
    try:
        return query(sql, params)
    finally:
        if time.perf_counter() - t > slowest[0]:
            slowest[:] = [time.perf_counter() - t, " ".join(sql.split())[:60]]

client.query = timed
before = kib("VmRSS:")
t = time.time()
removed = st.gc_deleted(client, deleted_before=86400)
print(json.dumps({"removed": removed, "start": t, "end": time.time(), "slowest": slowest,
                  "rss_before_kib": before, "peak_kib": kib("VmHWM:")}))
"""


def _fill(engine: str, client: st.Client, raw: Any, rows: int) -> int:
    run = st.Experiment(client, name="doomed").get_run()
    run.add_metrics({"m0": 0.0, "m1": 0.0, "m2": 0.0}, step=0)
    if engine == "postgres":
        for low in range(1, rows, 1_000_000):
            high = min(rows - 1, low + 999_999)
            raw.execute(
                "INSERT INTO metrics (run_id, step, progress, m0, m1, m2) "
                "SELECT %s, g, 0, random(), random(), random() "
                "FROM generate_series(%s::bigint, %s::bigint) g",
                (run.id, low, high),
            )
            raw.commit()
    else:
        raw.execute(
            "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < ?) "
            "INSERT INTO metrics (run_id, step, progress, m0, m1, m2) "
            "SELECT ?, i, 0, random(), random(), random() FROM g",
            (rows - 1, run.id),
        )
        raw.commit()
    st.delete_runs(client, [run.id])
    two_days_ago = datetime.now(timezone.utc) - timedelta(days=2)
    with client:
        client.query(
            "UPDATE runs SET time_deleted = :t WHERE id = :run",
            {"t": client.engine.adapt_datetime(two_days_ago), "run": run.id},
        )
    return run.id


def _waits(waits: list[float]) -> str:
    if not waits:
        return "no steps"
    ms = sorted(w * 1000 for w in waits)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return (
        f"{len(ms)} steps, median {statistics.median(ms):.1f} ms, p99 {p99:.1f} ms, "
        f"longest {ms[-1]:.0f} ms"
    )


def _writer(env: dict[str, str], tmp: Path, name: str, new_every: float) -> Any:
    stop, out = tmp / "stop", tmp / f"{name}.json"
    command = [sys.executable, "-c", WRITER, str(stop), str(out), str(new_every)]
    return subprocess.Popen(command, env=env), out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--dsn", help="a PostgreSQL server to use instead of a throwaway one")
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--baseline", type=float, default=10.0, help="seconds before the gc")
    parser.add_argument("--after", type=float, default=60.0, help="seconds after the gc")
    parser.add_argument("--new-column-every", type=float, default=0, metavar="S",
                        help="a second writer adds a metric column every S seconds")  # fmt: skip
    opts = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="sqltrack-bench-gc-"))
    params, raw = _connect(opts.engine, opts.dsn, tmp)
    client = st.Client({}, **params)
    st.setup(client)
    t = time.monotonic()
    doomed = _fill(opts.engine, client, raw, opts.rows)
    print(f"{opts.engine}: filled run {doomed} with {opts.rows:,} rows "
          f"in {time.monotonic() - t:.0f} s")  # fmt: skip

    env = {k: v for k, v in os.environ.items() if not k.startswith("SQLTRACK_")}
    env.update({f"SQLTRACK_DSN_{k.upper()}": str(v) for k, v in params.items()})
    env["PYTHONPATH"] = os.pathsep.join([str(Path(st.__file__).parent.parent), *sys.path])
    writers = {"steady": _writer(env, tmp, "steady", 0)}
    limit = 1.0
    if opts.new_column_every:
        writers["new column"] = _writer(env, tmp, "new", opts.new_column_every)
        if opts.engine == "postgres":
            with client:
                (ms,) = client.query("SELECT setting FROM pg_settings "
                                     "WHERE name = 'deadlock_timeout'")[0]  # fmt: skip
            limit += int(ms) / 1000
    time.sleep(opts.baseline)
    gc = subprocess.run(
        [sys.executable, "-c", GC], env=env, capture_output=True, text=True, check=True
    )
    time.sleep(opts.after)
    (tmp / "stop").touch()
    result = json.loads(gc.stdout)
    growth_mb = (result["peak_kib"] - result["rss_before_kib"]) / 1024
    seconds = result["end"] - result["start"]
    print(f"gc: removed {result['removed']} ({opts.rows:,} rows) in {seconds:.1f} s "
          f"({opts.rows / seconds:,.0f} rows/s); memory growth {growth_mb:.1f} MB")  # fmt: skip
    slowest, text = result["slowest"]
    print(f"gc: its longest statement took {slowest * 1000:.0f} ms ({text}...)")
    ok = growth_mb < 100 and result["removed"] == [doomed]
    longest = 0.0
    for name, (process, out) in writers.items():
        process.wait(timeout=300)
        written = json.loads(out.read_text())
        calls = written["waits"]  # (time at its end, seconds it took, start)
        before = [w for at, w, _ in calls if at < result["start"]]
        since = [w for at, w, _ in calls if at >= result["start"]]
        longest = max(longest, *since)
        with client:
            kept = client.query("SELECT count(*) FROM metrics WHERE run_id = :r",
                                {"r": written["run"]})  # fmt: skip
        print(f"{name} writer before gc: {_waits(before)}")
        print(f"{name} writer since gc:  {_waits(since)}; {written['steps']} steps written, "
              f"{kept[0][0]} in the database")  # fmt: skip
        ok = ok and kept[0][0] == written["steps"]
    with client:
        left = client.query("SELECT count(*) FROM metrics WHERE run_id = :r", {"r": doomed})
    ok = ok and left[0][0] == 0 and longest < limit
    print(f"longest wait of a writer since the gc started: {longest:.3f} s (target < {limit:g})")
    what = "with new columns" if opts.new_column_every else "steady"
    record(f"gc {opts.engine}: longest wait of a {what} writer (s)", longest, f"< {limit:g}")
    record(f"gc {opts.engine}: client memory growth (MB)", growth_mb, "< 100")
    print("targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
