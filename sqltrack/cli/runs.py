"""``sqltrack runs``, ``stale``, ``show``, ``compare`` and ``summarize``: finding runs and
reading them side by side."""

from __future__ import annotations

import argparse
from typing import Any

from .._db.client import Client
from .._read.compare import SUMMARY_COLUMNS, compare_runs, metric_summary
from .._read.fetch import stale_runs
from .._read.search import (
    OVERVIEW_COLUMNS,
    RANKS,
    run_overview,
    run_table,
    summary_table,
)
from ._common import cell, filter_options, filters, name_or_id, print_rows


def register(commands: Any, connection: Any, output: Any) -> None:
    cmd = commands.add_parser(
        "runs",
        parents=[connection, output],
        help="list runs, filtered like sqltrack.find_runs, with their args and summaries",
        description="List runs: id, experiment, status, started, duration, tags, the args "
        "whose values differ between the listed runs, and summaries of their metrics (by "
        "default the last value of each metric most of them have, at most six). CSV and "
        "JSON also have the created and updated times. Filters combine with AND; --status "
        "and --tag may be repeated (any status, all tags). An experiment that does not "
        "exist is an error.",
    )
    filter_options(cmd)
    cmd.add_argument(
        "--deleted", action="store_true", help="only deleted runs (see sqltrack restore)"
    )
    cmd.add_argument(
        "--metric",
        action="append",
        metavar="NAME:AGG",
        help="a summary to show instead of the default ones (repeatable, or separated by "
        "commas): NAME:min, NAME:max, NAME:last or NAME:count",
    )
    cmd.add_argument(
        "--sort",
        metavar="COLUMN",
        help="order by a column (status, started, duration, ...), args.NAME or a summary "
        "NAME:AGG (shown if it was not), lowest first, missing values last (default: id)",
    )
    cmd.add_argument("-r", "--reverse", action="store_true", help="with --sort: highest first")
    cmd.set_defaults(handler=_runs)
    cmd = commands.add_parser(
        "stale",
        parents=[connection, output],
        help="list runs that are RUNNING but silent (killed without a trace)",
        description="Runs whose status is RUNNING (or PENDING, having logged something) "
        "and whose time_updated is older than --older-than seconds: jobs killed by "
        "SIGKILL, the OOM killer or a node failure.",
    )
    cmd.add_argument("--older-than", type=float, default=600.0, metavar="SECONDS")
    cmd.add_argument("--experiment", type=int, metavar="ID", help="only this experiment")
    cmd.set_defaults(handler=_stale)
    cmd = commands.add_parser(
        "show",
        parents=[connection, output],
        help="show one run: its fields, args, env, extras and a summary of its metrics",
        description="A run's fields (deleted: when it was, if it was), args, env and extras "
        "(one per line), then per numeric metric: count, last value, min and max with "
        "their steps.",
    )
    cmd.add_argument("run", type=int, metavar="RUN")
    cmd.set_defaults(handler=_show)
    cmd = commands.add_parser(
        "compare",
        parents=[connection, output],
        help="show what differs between runs: fields, args, env, extras",
        description="One row per field whose values differ between the runs (every field "
        "with --all): status, times, deleted, comment, tags, then args.<name>, env.<name>, "
        "extras.<name>, then the summaries of the metrics. Variables of the shell session "
        "(env._, OLDPWD, SHLVL, SSH_*, TMUX, ...: sqltrack._read.compare.SHELL_NOISE) are "
        "no difference unless --all.",
    )
    cmd.add_argument("runs", nargs="+", type=int, metavar="RUN")
    cmd.add_argument(
        "--all", action="store_true", help="every field, also equal ones and shell variables"
    )
    cmd.set_defaults(handler=_compare)
    cmd = commands.add_parser(
        "summarize",
        parents=[connection, output],
        help="the sweep view: statistics of a metric per group of runs with equal args",
        description="Per group of runs of EXPERIMENT with equal --group-by arguments: how "
        "many runs, mean, std, min and max of one value per run (--metric name:min, "
        "name:max or name:last) and the best run; groups ranked by --rank-by, best first "
        "(lowest first, highest for name:max).",
    )
    cmd.add_argument("experiment", metavar="EXPERIMENT", help="name or id")
    cmd.add_argument("--metric", default="val_loss:min", help="default: val_loss:min")
    cmd.add_argument("--group-by", default="", metavar="ARG,ARG", help="arguments")
    cmd.add_argument("--over", metavar="ARG", help="the argument varied in a group")
    cmd.add_argument(
        "--rank-by",
        choices=RANKS,
        default="mean",
        help="the statistic that ranks the groups (default: mean; best: the value of the "
        "group's best run; median adds a median column)",
    )
    cmd.set_defaults(handler=_summarize)


def _runs(client: Client, args: argparse.Namespace) -> int:
    """The runs with their args that differ and their summaries; a table leaves out the
    created and updated times (CSV and JSON have them), shows the duration (as 1h02m)
    after the start, and the tags after it."""
    metrics = None if args.metric is None else [m for i in args.metric for m in i.split(",") if m]
    columns, rows, left_out = run_table(
        client, metrics, args.sort, args.reverse, deleted=args.deleted, **filters(args)
    )
    if args.format == "table":
        at, first = columns.index("duration"), ["id", "experiment", "status", "started"]
        keep = [*map(columns.index, first), at, columns.index("tags"), *range(at + 1, len(columns))]
        rows = [tuple(_duration(r[i]) if i == at else r[i] for i in keep) for r in rows]
        columns = [columns[i] for i in keep]
    print_rows(columns, rows, args.format)
    if left_out and args.format == "table":
        more = ", ".join(left_out[:5]) + (", …" if len(left_out) > 5 else "")
        print(f"(and {len(left_out)} more metrics: {more}; choose with --metric NAME:AGG)")
    return 0


def _duration(seconds: float | None) -> str | None:
    """Seconds as a table shows them: 0.42s, 12.5s, 4m05s, 2h03m, 3d04h."""
    if seconds is None or seconds < 60:
        return None if seconds is None else f"{seconds:.{2 if seconds < 10 else 1}f}s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d{hours:02d}h"
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _stale(client: Client, args: argparse.Namespace) -> int:
    ids = stale_runs(client, args.older_than, args.experiment)
    engine = client.engine
    rows = []
    if ids:
        where = (engine.in_array("runs.id", "ids"), {"ids": engine.adapt_array(ids)})
        rows = run_overview(client, where=where)
    print_rows(OVERVIEW_COLUMNS, rows, args.format)
    return 0


def _show(client: Client, args: argparse.Namespace) -> int:
    fields = compare_runs(client, args.run, args.run, everything=True, summaries=False)
    deleted = dict(row[:2] for row in fields)["deleted"]
    if deleted is not None and args.format == "table":
        print(f"run {args.run} was deleted at {cell(deleted)} (see sqltrack restore)")
    print_rows(["field", "value"], [row[:2] for row in fields], args.format)
    if args.format == "table":
        print()
    print_rows(SUMMARY_COLUMNS, metric_summary(client, args.run), args.format)
    return 0


def _compare(client: Client, args: argparse.Namespace) -> int:
    rows = compare_runs(client, *args.runs, everything=args.all)
    print_rows(["field", *(f"run {r}" for r in args.runs)], rows, args.format)
    return 0


def _summarize(client: Client, args: argparse.Namespace) -> int:
    experiment = name_or_id(args.experiment)
    assert experiment is not None
    keys = [k for k in args.group_by.split(",") if k]
    summary = summary_table(client, experiment, args.metric, keys, args.over, args.rank_by)
    print_rows(*summary, args.format)
    if args.format == "table":
        stat = "the best run's" if args.rank_by == "best" else f"the {args.rank_by} of"
        order = "highest" if args.metric.endswith(":max") else "lowest"
        print(f"ranked by {stat} {args.metric} per group, {order} first (see --rank-by)")
    return 0
