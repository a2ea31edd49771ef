"""``sqltrack delete``, ``restore``, ``delete-experiment``, ``restore-experiment``, ``gc``,
``refresh`` and ``reconcile``: changing what the database holds about runs."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .._admin.deletion import (
    Changed,
    delete_experiments,
    delete_runs,
    gc_deleted,
    restore_experiments,
    restore_runs,
)
from .._admin.reconcile import Reconciled, reconcile
from .._db.client import Client
from .._write.rows import mine
from .._write.summaries import refresh_summaries, refresh_targets
from ..errors import InvalidValue
from ._common import filter_options, filters, name_or_id, plural, print_rows, seconds


def register(commands: Any, connection: Any, output: Any) -> None:
    for name, what in (("delete", "delete runs (reversibly: see restore, gc)"),
                       ("restore", "restore deleted runs")):  # fmt: skip
        cmd = commands.add_parser(
            name,
            parents=[connection],
            help=what,
            description=f"{what[0].upper()}{what[1:]}: the RUNs given and the runs that "
            "match the filters (as for sqltrack runs; at least one of them). A RUN or "
            "experiment that does not exist is an error. Prints the ids.",
        )
        cmd.add_argument("runs", nargs="*", type=int, metavar="RUN")
        filter_options(cmd)
        cmd.add_argument("--dry-run", action="store_true", help="show, change nothing")
        cmd.set_defaults(handler=_delete_or_restore)
    for name, what in (("delete-experiment", "delete experiments and their runs (reversibly)"),
                       ("restore-experiment", "restore experiments and the runs deleted with "
                        "them")):  # fmt: skip
        cmd = commands.add_parser(
            name,
            parents=[connection],
            help=what,
            description=f"{what[0].upper()}{what[1:]}. Prints the ids.",
        )
        cmd.add_argument("experiments", nargs="+", metavar="NAME_OR_ID")
        cmd.add_argument("--dry-run", action="store_true", help="show, change nothing")
        cmd.set_defaults(handler=_experiments)
    cmd = commands.add_parser(
        "gc",
        parents=[connection],
        help="remove runs deleted long ago for good (never those tagged keep)",
        description="Remove runs deleted more than --deleted-before ago, with their metrics "
        "(in batches of --batch rows, each its own short transaction), then experiments "
        "deleted as long ago and left without runs; runs tagged keep are never removed.",
    )
    cmd.add_argument("--deleted-before", default="30d", metavar="AGE", help="default 30d")
    cmd.add_argument("--batch", type=int, default=10_000, metavar="ROWS")
    cmd.add_argument("--dry-run", action="store_true", help="show, change nothing")
    cmd.set_defaults(handler=_gc)
    cmd = commands.add_parser(
        "refresh",
        parents=[connection],
        help="rebuild run summaries from the metrics (runs written by other means)",
        description="Rebuild the run_summaries and metric_blocks of RUNs, of the runs of "
        "--experiment, or of every run. Tracked runs keep both current themselves; this is "
        "for runs written with run_add_metrics, SQL or an older sqltrack.",
    )
    cmd.add_argument("runs", nargs="*", type=int, metavar="RUN")
    cmd.add_argument("--experiment", metavar="NAME_OR_ID", help="an experiment's runs")
    cmd.set_defaults(handler=_refresh)
    cmd = commands.add_parser(
        "reconcile",
        parents=[connection, output],
        help="set the final state Slurm recorded on runs still RUNNING or PENDING",
        description="Ask sacct about runs still RUNNING or PENDING whose ids are Slurm job "
        "ids, silent for --older-than, and record the state Slurm recorded (TIMEOUT, "
        "OUT_OF_MEMORY, NODE_FAIL, PREEMPTED, CANCELLED, FAILED, COMPLETED, ...) and the "
        "end time. A status the job wrote itself is never changed; twice changes nothing.",
    )
    cmd.add_argument("--experiment", metavar="NAME", help="only this experiment")
    cmd.add_argument(
        "--older-than", default="10m", metavar="AGE", help="e.g. 600, 90s, 10m, 2h, 1d (10m)"
    )
    cmd.add_argument("--dry-run", action="store_true", help="show, change nothing")
    cmd.set_defaults(handler=_reconcile)


def _list(ids: Changed, what: str, dry_run: bool, verb: str) -> int:
    print(f"{'would be ' if dry_run else ''}{verb}: {len(ids)} {what}")
    for row_id in ids:
        print(row_id)
    _left_alone(ids, what)
    return 0


def _left_alone(ids: Changed, what: str) -> None:
    """Say which of the rows chosen belong to other roles (a lab's server), on stderr."""
    if ids.left_alone:
        print(
            f"left alone: {len(ids.left_alone)} {what} of other roles (only the role that "
            f"created one, or a member of sqltrack_admin, may change it; see docs/lab.md): "
            f"{', '.join(map(str, ids.left_alone))}",
            file=sys.stderr,
        )


def _delete_or_restore(client: Client, args: argparse.Namespace) -> int:
    given = filters(args)
    if not args.runs and not any(v is not None for v in given.values()):
        raise InvalidValue("give RUN ids or filters (--experiment, --status, --tag, --arg)")
    act = delete_runs if args.command == "delete" else restore_runs
    ids = act(client, args.runs, args.dry_run, **given)
    return _list(ids, "runs", args.dry_run, f"{args.command}d")


def _experiments(client: Client, args: argparse.Namespace) -> int:
    restore = args.command == "restore-experiment"
    given = [name_or_id(e) for e in args.experiments]
    change = restore_experiments if restore else delete_experiments
    ids = change(client, given, args.dry_run)  # type: ignore[arg-type]
    return _list(ids, "experiments", args.dry_run, "restored" if restore else "deleted")


def _gc(client: Client, args: argparse.Namespace) -> int:
    ids = gc_deleted(client, seconds(args.deleted_before), args.batch, args.dry_run)
    print(f"{'would remove' if args.dry_run else 'removed'}: {len(ids)} runs")
    for run_id in ids:
        print(run_id)
    _left_alone(ids, "runs")
    return 0


def _refresh(client: Client, args: argparse.Namespace) -> int:
    chosen = refresh_targets(client, args.runs, name_or_id(args.experiment))
    ids = Changed(*mine(client, "runs", chosen))
    done = refresh_summaries(client, *ids) if ids else 0  # (no ids at all: every run)
    print(f"refreshed the summaries of {plural(done, 'run')}")
    _left_alone(ids, "runs")
    return 0


def _reconcile(client: Client, args: argparse.Namespace) -> int:
    found = reconcile(client, args.experiment, seconds(args.older_than), args.dry_run)
    print_rows(Reconciled._fields, [tuple(r) for r in found], args.format)
    if args.format == "table":
        print(f"{'would change' if args.dry_run else 'changed'} {plural(len(found), 'run')}")
    return 0
