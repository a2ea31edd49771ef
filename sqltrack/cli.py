"""The ``sqltrack`` command line interface."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from . import __version__
from .client import Client
from .engines import DEFAULT_ENGINE, ENGINE_NAMES, first_line
from .errors import SQLTrackError
from .merge import merge_database
from .schema import setup
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
    return parser


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


def _error(exc: BaseException) -> int:
    """Print an error as one line (drivers add hints and context lines); return 1."""
    text = str(exc).strip()
    print(
        f"sqltrack: error: {text.splitlines()[0] if text else type(exc).__name__}", file=sys.stderr
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
