"""The ``sqltrack`` command line interface."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from . import __version__
from .client import Client
from .engines import DEFAULT_ENGINE, ENGINE_NAMES, first_line
from .errors import InvalidValue, SQLTrackError
from .merge import merge_database
from .plot import plot_curves
from .read import stale_runs
from .schema import setup
from .search import (
    OVERVIEW_COLUMNS,
    SUMMARY_COLUMNS,
    compare_runs,
    metric_summary,
    run_overview,
    summarize,
)
from .spool import is_spool, spool_dir, spool_files, sync_spools

__all__ = ["main"]


def _connection_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group(
        "connection",
        "Options take priority over SQLTRACK_DSN_<PARAM> environment variables, "
        "which take priority over the config file.",
    )
    group.add_argument(
        "-c",
        "--config",
        metavar="PATH",
        help="config file (default: $SQLTRACK_CONFIG_PATH, else ./sqltrack.conf)",
    )
    group.add_argument(
        "-e", "--engine", choices=ENGINE_NAMES, help=f"database engine (default: {DEFAULT_ENGINE})"
    )
    group.add_argument("-u", "--user", help="PostgreSQL user (default: $USER)")
    group.add_argument("-a", "--host", help="PostgreSQL host name, address or socket directory")
    group.add_argument("-p", "--port", help="PostgreSQL port")
    group.add_argument("-d", "--dbname", help="PostgreSQL database (default: the user name)")
    group.add_argument("-s", "--schema", help="PostgreSQL schema (created if missing)")
    group.add_argument("--dbpath", help="SQLite database file (default: sqltrack.db)")
    return parent


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sqltrack", description="Track machine-learning experiments in a SQL database."
    )
    parser.add_argument("--version", action="version", version=f"sqltrack {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    setup_cmd = commands.add_parser(
        "setup",
        parents=[_connection_options()],
        help="create or upgrade the database schema",
        description="Apply sqltrack's schema scripts, then the given SCRIPTs, in order. "
        "Each script is applied once per database; scripts applied before are skipped.",
    )
    setup_cmd.add_argument(
        "scripts",
        nargs="*",
        metavar="SCRIPT",
        help="your own .sql scripts to apply after sqltrack's",
    )
    sync_cmd = commands.add_parser(
        "sync",
        parents=[_connection_options()],
        help="push spooled writes, or merge a SQLite database, into the database",
        description="Push spool files (what jobs wrote while the database was unreachable) "
        "into the database, in order, and remove them; merge sqltrack SQLite databases "
        "(jobs that ran with engine=sqlite) into it. Without FILEs: every spool file in "
        "$SQLTRACK_SPOOL_DIR (default ~/.cache/sqltrack/spool) that is meant for this "
        "database. The spool of a job that is still running is skipped: the job pushes "
        "it itself. Running it twice adds nothing.",
    )
    sync_cmd.add_argument(
        "files", nargs="*", metavar="FILE", help="spool files or sqltrack SQLite databases"
    )
    sync_cmd.add_argument(
        "--all",
        action="store_true",
        help="without FILEs: every spool file in the spool directory, whatever connection "
        "it was recorded for (e.g. jobs that went through PgBouncer while you connect "
        "directly)",
    )
    runs_cmd = commands.add_parser(
        "runs",
        parents=[_connection_options(), _output_options()],
        help="list runs, filtered like sqltrack.find_runs",
        description="List runs: id, experiment, status, times, tags. Filters combine "
        "with AND; --status and --tag may be repeated (any status, all tags).",
    )
    runs_cmd.add_argument("--experiment", metavar="NAME_OR_ID", help="an experiment")
    runs_cmd.add_argument("--status", action="append", help="a status (repeatable)")
    runs_cmd.add_argument("--tag", action="append", help="a tag the run has (repeatable)")
    runs_cmd.add_argument(
        "--arg",
        action="append",
        metavar="NAME=VALUE",
        help="an argument the run was given (repeatable); VALUE is read as JSON if it "
        "can be (--arg lr=0.1, --arg opt=adam)",
    )
    stale_cmd = commands.add_parser(
        "stale",
        parents=[_connection_options(), _output_options()],
        help="list runs that are RUNNING but silent (killed without a trace)",
        description="Runs whose status is RUNNING and whose time_updated is older than "
        "--older-than seconds: jobs killed by SIGKILL, the OOM killer or a node failure.",
    )
    stale_cmd.add_argument("--older-than", type=float, default=600.0, metavar="SECONDS")
    show_cmd = commands.add_parser(
        "show",
        parents=[_connection_options(), _output_options()],
        help="show one run: its fields, args, env, extras and a summary of its metrics",
        description="A run's fields, args, env and extras (one per line), then per numeric "
        "metric: count, last value, min and max with their steps.",
    )
    show_cmd.add_argument("run", type=int, metavar="RUN")
    summarize_cmd = commands.add_parser(
        "summarize",
        parents=[_connection_options(), _output_options()],
        help="the sweep view: statistics of a metric per group of runs with equal args",
        description="Per group of runs of EXPERIMENT with equal --group-by arguments: how "
        "many runs, mean, std, min and max of one value per run (--metric name:min, "
        "name:max or name:last) and the best run.",
    )
    summarize_cmd.add_argument("experiment", metavar="EXPERIMENT", help="name or id")
    summarize_cmd.add_argument("--metric", default="val_loss:min", help="default: val_loss:min")
    summarize_cmd.add_argument("--group-by", default="", metavar="ARG,ARG", help="arguments")
    summarize_cmd.add_argument("--over", metavar="ARG", help="the argument varied in a group")
    plot_cmd = commands.add_parser(
        "plot",
        parents=[_connection_options()],
        help="draw learning curves of runs into an image (needs sqltrack[plot])",
        description="One line per RUN of --metric against --x, into -o FILE (.png, .svg, "
        ".pdf). Needs matplotlib: pip install 'sqltrack[plot]'.",
    )
    plot_cmd.add_argument("runs", nargs="+", type=int, metavar="RUN")
    plot_cmd.add_argument("--metric", required=True)
    plot_cmd.add_argument("--x", choices=["step", "progress"], default="step")
    plot_cmd.add_argument("-o", "--output", default="curves.png", metavar="FILE")
    compare_cmd = commands.add_parser(
        "compare",
        parents=[_connection_options(), _output_options()],
        help="show what differs between runs: fields, args, env, extras",
        description="One row per field whose values differ between the runs (every field "
        "with --all): status, times, comment, tags, then args.<name>, env.<name>, "
        "extras.<name>.",
    )
    compare_cmd.add_argument("runs", nargs="+", type=int, metavar="RUN")
    compare_cmd.add_argument("--all", action="store_true", help="every field, also equal ones")
    stale_cmd.add_argument("--experiment", type=int, metavar="ID", help="only this experiment")
    return parser


def _output_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--format", choices=["table", "csv", "json"], default="table", help="default: table"
    )
    return parent


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 on success, 1 on errors)."""
    args = _parser().parse_args(argv)
    params = {
        k: getattr(args, k)
        for k in ("engine", "user", "host", "port", "dbname", "schema", "dbpath")
    }
    try:
        client = Client(args.config, **params)
    except SQLTrackError as e:
        return _error(e)
    handled: tuple[type[BaseException], ...] = (
        SQLTrackError,
        OSError,
        *client.engine.driver_errors,
    )
    try:
        if args.command == "sync":
            return _sync(client, args.files, args.all)
        if args.command == "runs":
            return _runs(client, args)
        if args.command == "stale":
            return _stale(client, args)
        if args.command == "show":
            fields = compare_runs(client, args.run, args.run, everything=True)
            _print_rows(["field", "value"], [row[:2] for row in fields], args.format)
            if args.format == "table":
                print()
            _print_rows(SUMMARY_COLUMNS, metric_summary(client, args.run), args.format)
            return 0
        if args.command == "summarize":
            experiment = int(args.experiment) if args.experiment.isdigit() else args.experiment
            keys = [k for k in args.group_by.split(",") if k]
            rows = summarize(client, experiment, args.metric, keys, args.over)
            columns = [*keys, "n", "mean", "std", "min", "max", "best_run"]
            _print_rows(columns, rows, args.format)
            return 0
        if args.command == "plot":
            points = plot_curves(client, args.runs, args.metric, args.output, args.x)
            print(f"{args.output}: {len(args.runs)} runs, {points} points of {args.metric}")
            return 0
        if args.command == "compare":
            rows = compare_runs(client, *args.runs, everything=args.all)
            _print_rows(["field", *(f"run {r}" for r in args.runs)], rows, args.format)
            return 0
        print(f"database: {client.engine.label} {client.engine.describe()}", flush=True)
        results = setup(
            client,
            *args.scripts,
            report=lambda r: print(
                f"{'applied' if r.applied else 'already applied'}: {r.name}", flush=True
            ),
        )
        if not any(r.applied for r in results):
            print("nothing to do: the schema is up to date", flush=True)
    except handled as e:
        return _error(e)
    return 0


def _sync(client: Client, files: list[str], every: bool) -> int:
    databases = [f for f in files if not is_spool(f)]
    if files:
        spools: list[Any] | None = [f for f in files if f not in databases]
    else:
        spools = spool_files() if every else None
    results = sync_spools(client, spools)
    failed = False
    for result in results:
        failed = failed or result.outcome == "failed"
        print(result, file=sys.stderr if result.outcome == "failed" else sys.stdout, flush=True)
    for database in databases:
        try:
            print(merge_database(client, database), flush=True)
        except Exception as e:
            failed = True
            print(f"failed: {database} ({first_line(e)})", file=sys.stderr, flush=True)
    if not files and not results:
        print(f"nothing to push: no spool files for this database in {spool_dir()}")
    return 1 if failed else 0


def _runs(client: Client, args: argparse.Namespace) -> int:
    experiment = args.experiment
    if experiment is not None and experiment.isdigit():
        experiment = int(experiment)
    wanted_args = None
    if args.arg:
        wanted_args = {}
        for item in args.arg:
            name, sep, value = item.partition("=")
            if not sep or not name:
                raise InvalidValue(f"--arg {item!r}: give NAME=VALUE")
            wanted_args[name] = _json_or_text(value)
    rows = run_overview(
        client, experiment=experiment, status=args.status, tags=args.tag, args=wanted_args
    )
    _print_rows(OVERVIEW_COLUMNS, rows, args.format)
    return 0


def _stale(client: Client, args: argparse.Namespace) -> int:
    ids = stale_runs(client, args.older_than, args.experiment)
    engine = client.engine
    rows = []
    if ids:
        where = (engine.in_array("runs.id", "ids"), {"ids": engine.adapt_array(ids)})
        rows = run_overview(client, where=where)
    _print_rows(OVERVIEW_COLUMNS, rows, args.format)
    return 0


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _cell(value: Any, short: bool = False) -> Any:
    if short and isinstance(value, float):
        return f"{value:.6g}"  # a table is for reading; CSV and JSON keep every digit
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, list):
        return ",".join(map(str, value))
    return "" if value is None else value


def _print_rows(columns: Sequence[str], rows: list[tuple[Any, ...]], fmt: str) -> None:
    """Rows as an aligned table, CSV or JSON (a list of objects) on stdout."""
    if fmt == "json":
        records = [
            {
                c: v.isoformat() if isinstance(v, datetime) else v
                for c, v in zip(columns, row, strict=True)
            }
            for row in rows
        ]
        print(json.dumps(records, indent=1))
        return
    cells = [[str(_cell(v, short=fmt == "table")) for v in row] for row in rows]
    if fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(cells)
        return
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    for line in [list(columns), *cells]:
        print("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())


def _error(exc: BaseException) -> int:
    """Print an error as one line (drivers add hints and context lines); return 1."""
    text = str(exc).strip()
    print(
        f"sqltrack: error: {text.splitlines()[0] if text else type(exc).__name__}", file=sys.stderr
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
