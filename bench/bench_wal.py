"""What one step costs the PostgreSQL server: transactions, WAL bytes, table bytes.

The inputs of the paper estimate in docs/cluster.md: ``--jobs`` runs log ``--steps``
steps of 10 float metrics each, interleaved as concurrent jobs would (step s of every
run, then step s + 1 ...), once synchronously (a commit per step) and once buffered (one
flush per run per ``--batch`` steps). WAL is measured with ``pg_current_wal_lsn()``
around each phase (after a CHECKPOINT, so full-page images count as they would in
steady state right after one), table growth with ``pg_total_relation_size``.

    python bench/bench_wal.py --jobs 50 --steps 200
"""

from __future__ import annotations

import argparse

from common import NAMES, open_databases

import sqltrack as st


def _lsn(raw: object) -> int:
    return int(raw.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()[0])  # type: ignore[attr-defined]


def _size(raw: object) -> int:
    return int(raw.execute("SELECT pg_total_relation_size('metrics')").fetchone()[0])  # type: ignore[attr-defined]


def _xacts(raw: object) -> int:
    row = raw.execute(  # type: ignore[attr-defined]
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
    ).fetchone()
    return int(row[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=50, help="steps per buffered flush")
    parser.add_argument("--dsn")
    args = parser.parse_args()
    client, raw, _ = open_databases("postgres", args.dsn)
    raw.autocommit = True
    exp = st.Experiment(client, name="wal")
    warm = exp.get_run()
    warm.add_metrics({n: 0.0 for n in NAMES})  # the columns exist

    for mode in ("sync", "buffered"):
        runs = [exp.get_run() for _ in range(args.jobs)]
        raw.execute("CHECKPOINT")
        raw.execute("SELECT pg_stat_force_next_flush()")
        wal0, size0, tx0 = _lsn(raw), _size(raw), _xacts(raw)
        with client.hold():
            if mode == "sync":
                for step in range(args.steps):
                    for run in runs:
                        run.add_metrics({n: step * 0.5 for n in NAMES}, step=step, updated=None)
            else:
                for start in range(0, args.steps, args.batch):
                    for run in runs:
                        steps = range(start, min(start + args.batch, args.steps))
                        rows = [
                            (tuple(NAMES), tuple(s * 0.5 for _ in NAMES), ("float",) * 10, s, 0.0)
                            for s in steps
                        ]
                        _flush(client, run.id, rows)
        raw.execute("SELECT pg_stat_force_next_flush()")
        steps = args.jobs * args.steps
        wal, size, tx = _lsn(raw) - wal0, _size(raw) - size0, _xacts(raw) - tx0
        print(
            f"{mode}: {args.jobs} runs x {args.steps} steps of {len(NAMES)} floats: "
            f"{tx} transactions ({tx / steps:.3f} per step), WAL {wal / steps:.0f} B per step "
            f"({wal / max(tx, 1):.0f} B per transaction), metrics table + index "
            f"{size / steps:.0f} B per step"
        )


def _flush(client: st.Client, run_id: int, rows: list) -> None:  # type: ignore[type-arg]
    from sqltrack._write.store import write_rows

    with client as conn:
        write_rows(client, conn, run_id, rows)


if __name__ == "__main__":
    main()
