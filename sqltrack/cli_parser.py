"""The ``sqltrack`` command's options and help texts (argparse); no database here."""

from __future__ import annotations

import argparse
import importlib.metadata
import platform
import re
import sys
from pathlib import Path
from typing import Any

from .engines import DEFAULT_ENGINE, ENGINE_NAMES, LOCAL_ENGINE, get_engine

__all__ = ["build_parser", "version_text"]


def version_text() -> str:
    """What ``sqltrack --version`` prints: one line that tells this sqltrack from the
    unrelated PyPI package of the same name (0.1.x, PostgreSQL only), with the versions
    of what it runs on and where it was imported from."""
    here = Path(__file__).resolve().parent
    try:
        version = importlib.metadata.version("sqltrack")
    except importlib.metadata.PackageNotFoundError:  # a source tree on sys.path
        found = re.search(r'^__version__ = "(.+)"', (here / "__init__.py").read_text(), re.M)
        version = found.group(1) if found else "(version unknown)"
    try:
        driver = f"psycopg {importlib.metadata.version('psycopg')}"
    except importlib.metadata.PackageNotFoundError:
        driver = "psycopg missing"
    try:  # the SQLite library this Python links, asked through sqltrack's own engine
        conn = get_engine({"engine": LOCAL_ENGINE, "dbpath": ":memory:"}).connect()
        try:
            cursor = conn.cursor()
            cursor.execute("SELECT sqlite_version()")
            library = f"SQLite {cursor.fetchone()[0]}"
        finally:
            conn.close()
    except Exception:  # (a Python without sqlite3, or one too old)
        library = "SQLite unavailable"
    return (
        f"sqltrack {version} (experiment tracking in PostgreSQL or SQLite; {driver}, "
        f"{library}, Python {platform.python_version()}) from {here}"
    )


class _Parser(argparse.ArgumentParser):
    """argparse's parser, except that help written into a closed pipe is not silently
    dropped (argparse swallows the OSError): ``main`` ends quietly with the status of a
    closed pipe, as for any other output."""

    def _print_message(self, message: str, file: Any = None) -> None:
        file = file or sys.stderr
        if message and file is not None:
            try:
                file.write(message)
            except BrokenPipeError:
                raise
            except (AttributeError, OSError):
                pass


class _Version(argparse.Action):
    """``--version``: :func:`version_text`, made only when asked for, on one line
    (argparse's own action would wrap it to the terminal's width)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        print(version_text())
        parser.exit()


def _connection_options() -> _Parser:
    parent = _Parser(add_help=False)
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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sqltrack", description="Track machine-learning experiments in a SQL database."
    )
    parser.add_argument(
        "--version", action=_Version, help="show which sqltrack this is, on what, and exit"
    )
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
        "it itself. A spool is pushed only if it and its directory are yours and no one "
        "else may write them; entries that are not valid, or that the database refuses "
        "for good, are set aside in a .refused.jsonl file beside it. Running it twice "
        "adds nothing.",
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
    sync_cmd.add_argument(
        "--trust-others",
        action="store_true",
        help="push spool files even if another user owns them or may write them or their "
        "directory (only files you have looked at: a spool writes to your runs)",
    )
    runs_cmd = commands.add_parser(
        "runs",
        parents=[_connection_options(), _output_options()],
        help="list runs, filtered like sqltrack.find_runs, with their args and summaries",
        description="List runs: id, experiment, status, started, duration, tags, the args "
        "whose values differ between the listed runs, and summaries of their metrics (by "
        "default the last value of each metric most of them have, at most six). CSV and "
        "JSON also have the created and updated times. Filters combine with AND; --status "
        "and --tag may be repeated (any status, all tags). An experiment that does not "
        "exist is an error.",
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
    runs_cmd.add_argument(
        "--deleted", action="store_true", help="only deleted runs (see sqltrack restore)"
    )
    runs_cmd.add_argument(
        "--metric",
        action="append",
        metavar="NAME:AGG",
        help="a summary to show instead of the default ones (repeatable, or separated by "
        "commas): NAME:min, NAME:max, NAME:last or NAME:count",
    )
    runs_cmd.add_argument(
        "--sort",
        metavar="COLUMN",
        help="order by a column (status, started, duration, ...), args.NAME or a summary "
        "NAME:AGG (shown if it was not), lowest first, missing values last (default: id)",
    )
    runs_cmd.add_argument("-r", "--reverse", action="store_true", help="with --sort: highest first")
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
        description="A run's fields (deleted: when it was, if it was), args, env and extras "
        "(one per line), then per numeric metric: count, last value, min and max with "
        "their steps.",
    )
    show_cmd.add_argument("run", type=int, metavar="RUN")
    summarize_cmd = commands.add_parser(
        "summarize",
        parents=[_connection_options(), _output_options()],
        help="the sweep view: statistics of a metric per group of runs with equal args",
        description="Per group of runs of EXPERIMENT with equal --group-by arguments: how "
        "many runs, mean, std, min and max of one value per run (--metric name:min, "
        "name:max or name:last) and the best run; groups ranked by --rank-by, best first "
        "(lowest first, highest for name:max).",
    )
    summarize_cmd.add_argument("experiment", metavar="EXPERIMENT", help="name or id")
    summarize_cmd.add_argument("--metric", default="val_loss:min", help="default: val_loss:min")
    summarize_cmd.add_argument("--group-by", default="", metavar="ARG,ARG", help="arguments")
    summarize_cmd.add_argument("--over", metavar="ARG", help="the argument varied in a group")
    summarize_cmd.add_argument(
        "--rank-by",
        choices=("mean", "median", "min", "max", "best"),  # sqltrack.search.RANKS
        default="mean",
        help="the statistic that ranks the groups (default: mean; best: the value of the "
        "group's best run; median adds a median column)",
    )
    plot_cmd = commands.add_parser(
        "plot",
        parents=[_connection_options()],
        help="draw learning curves of runs into an image (needs sqltrack[plot])",
        description="One panel per --metric, one line per RUN against --x, into -o FILE "
        "(its suffix picks the format: .png, .svg, .pdf, or any other matplotlib writes). "
        "Titled by the experiments and metrics; the legend names each run by the args "
        "that differ between the runs. Needs matplotlib: pip install 'sqltrack[plot]'.",
    )
    plot_cmd.add_argument("runs", nargs="+", type=int, metavar="RUN")
    plot_cmd.add_argument(
        "--metric",
        action="append",
        required=True,
        metavar="NAME[,NAME]",
        help="a metric to plot (repeatable, or separated by commas): one panel each",
    )
    plot_cmd.add_argument("--x", choices=["step", "progress"], default="step")
    plot_cmd.add_argument("--log-x", action="store_true", help="a logarithmic x axis")
    plot_cmd.add_argument("--log-y", action="store_true", help="logarithmic y axes")
    plot_cmd.add_argument("-o", "--output", default="curves.png", metavar="FILE")
    compare_cmd = commands.add_parser(
        "compare",
        parents=[_connection_options(), _output_options()],
        help="show what differs between runs: fields, args, env, extras",
        description="One row per field whose values differ between the runs (every field "
        "with --all): status, times, deleted, comment, tags, then args.<name>, env.<name>, "
        "extras.<name>, then the summaries of the metrics. Variables of the shell session "
        "(env._, OLDPWD, SHLVL, SSH_*, TMUX, ...: sqltrack.compare.SHELL_NOISE) are no "
        "difference unless --all.",
    )
    compare_cmd.add_argument("runs", nargs="+", type=int, metavar="RUN")
    compare_cmd.add_argument(
        "--all", action="store_true", help="every field, also equal ones and shell variables"
    )
    stale_cmd.add_argument("--experiment", type=int, metavar="ID", help="only this experiment")
    refresh_cmd = commands.add_parser(
        "refresh",
        parents=[_connection_options()],
        help="rebuild run summaries from the metrics (runs written by other means)",
        description="Rebuild the run_summaries of RUNs, of the runs of --experiment, or of "
        "every run. Tracked runs keep their summaries current themselves; this is for runs "
        "written with run_add_metrics, SQL or an older sqltrack.",
    )
    refresh_cmd.add_argument("runs", nargs="*", type=int, metavar="RUN")
    refresh_cmd.add_argument("--experiment", metavar="NAME_OR_ID", help="an experiment's runs")
    psql_cmd = commands.add_parser(
        "psql",
        parents=[_connection_options()],
        help="open psql on the database (sqlite3 for SQLite), with the schema's search_path",
        description="Start psql connected as sqltrack connects: the same host, user, "
        "database and schema (search_path); the password, if any, is passed in PGPASSWORD. "
        "With engine=sqlite, the sqlite3 shell on the database file. Arguments after -- go "
        "to psql: sqltrack psql -- -c 'SELECT count(*) FROM runs'.",
    )
    psql_cmd.add_argument("shell_args", nargs=argparse.REMAINDER, metavar="-- ARG")
    report_cmd = commands.add_parser(
        "report",
        parents=[_connection_options()],
        help="write an experiment's report: one self-contained HTML page",
        description="One HTML file with the runs of EXPERIMENT (filter and sort them), their "
        "summaries, learning curves of selected runs and a parallel-coordinates view of "
        "args against a summary. It needs no network: open it anywhere, e.g. after scp.",
    )
    report_cmd.add_argument("experiment", metavar="EXPERIMENT", help="name or id")
    report_cmd.add_argument("-o", "--output", default="report.html", metavar="FILE")
    report_cmd.add_argument(
        "--points",
        type=int,
        default=500,
        metavar="N",
        help="points per curve at most (evenly spaced steps; default 500)",
    )
    for name, what in (("delete", "delete runs (reversibly: see restore, gc)"),
                       ("restore", "restore deleted runs")):  # fmt: skip
        cmd = commands.add_parser(
            name,
            parents=[_connection_options()],
            help=what,
            description=f"{what[0].upper()}{what[1:]}: the RUNs given and the runs that "
            "match the filters (as for sqltrack runs; at least one of them). A RUN or "
            "experiment that does not exist is an error. Prints the ids.",
        )
        cmd.add_argument("runs", nargs="*", type=int, metavar="RUN")
        cmd.add_argument("--experiment", metavar="NAME_OR_ID")
        cmd.add_argument("--status", action="append")
        cmd.add_argument("--tag", action="append")
        cmd.add_argument("--arg", action="append", metavar="NAME=VALUE")
        cmd.add_argument("--dry-run", action="store_true", help="show, change nothing")
    for name, what in (("delete-experiment", "delete experiments and their runs (reversibly)"),
                       ("restore-experiment", "restore experiments and the runs deleted with "
                        "them")):  # fmt: skip
        cmd = commands.add_parser(
            name,
            parents=[_connection_options()],
            help=what,
            description=f"{what[0].upper()}{what[1:]}. Prints the ids.",
        )
        cmd.add_argument("experiments", nargs="+", metavar="NAME_OR_ID")
        cmd.add_argument("--dry-run", action="store_true", help="show, change nothing")
    gc_cmd = commands.add_parser(
        "gc",
        parents=[_connection_options()],
        help="remove runs deleted long ago for good (never those tagged keep)",
        description="Remove runs deleted more than --deleted-before ago, with their metrics "
        "(in batches of --batch rows, each its own short transaction), then experiments "
        "deleted as long ago and left without runs; runs tagged keep are never removed.",
    )
    gc_cmd.add_argument("--deleted-before", default="30d", metavar="AGE", help="default 30d")
    gc_cmd.add_argument("--batch", type=int, default=10_000, metavar="ROWS")
    gc_cmd.add_argument("--dry-run", action="store_true", help="show, change nothing")
    reconcile_cmd = commands.add_parser(
        "reconcile",
        parents=[_connection_options(), _output_options()],
        help="set the final state Slurm recorded on runs still RUNNING or PENDING",
        description="Ask sacct about runs still RUNNING or PENDING whose ids are Slurm job "
        "ids, silent for --older-than, and record the state Slurm recorded (TIMEOUT, "
        "OUT_OF_MEMORY, NODE_FAIL, PREEMPTED, CANCELLED, FAILED, COMPLETED, ...) and the "
        "end time. A status the job wrote itself is never changed; twice changes nothing.",
    )
    reconcile_cmd.add_argument("--experiment", metavar="NAME", help="only this experiment")
    reconcile_cmd.add_argument(
        "--older-than", default="10m", metavar="AGE", help="e.g. 600, 90s, 10m, 2h, 1d (10m)"
    )
    reconcile_cmd.add_argument("--dry-run", action="store_true", help="show, change nothing")
    artifacts_cmd = commands.add_parser(
        "artifacts",
        parents=[_connection_options(), _output_options()],
        help="list artifacts, or verify that their local files are unchanged",
        description="list (default): the artifacts that match --run, --name and --kind. "
        "verify: hash every local file again and report each one missing or changed "
        "(exit status 1 if any); URLs and artifacts without a checksum are left unchecked.",
    )
    artifacts_cmd.add_argument("action", nargs="?", choices=["list", "verify"], default="list")
    artifacts_cmd.add_argument("--run", type=int, metavar="RUN", help="logged by this run")
    artifacts_cmd.add_argument("--name", help="of this name")
    artifacts_cmd.add_argument("--kind", help="of this kind (list only)")
    return parser


def _output_options() -> _Parser:
    parent = _Parser(add_help=False)
    parent.add_argument(
        "--format", choices=["table", "csv", "json"], default="table", help="default: table"
    )
    return parent
