"""The ``sqltrack`` command line interface: :func:`main`.

Each module of this package describes a group of commands, each command's options
beside what it does (``register`` adds them to the parser, with the function that runs
them): :mod:`~sqltrack.cli.database` (setup, psql, sync), :mod:`~sqltrack.cli.runs` (runs,
stale, show, compare, summarize), :mod:`~sqltrack.cli.curves` (plot, report),
:mod:`~sqltrack.cli.admin` (delete, restore, gc, refresh, reconcile),
:mod:`~sqltrack.cli.artifacts`, :mod:`~sqltrack.cli.dashboard` (ui) and
:mod:`~sqltrack.cli.imports` (import).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._db.client import Client
from .._db.engines import LOCAL_ENGINE, get_engine
from .._version import __version__
from ..errors import SQLTrackError
from . import admin, artifacts, curves, dashboard, database, imports, runs
from ._common import CONNECTION, Parser, connection_options, error, output_options

__all__ = ["CLOSED_PIPE", "build_parser", "main", "version_text"]

#: the exit status when the reader of the output went away: 128 + SIGPIPE, what a shell
#: reports for a tool that SIGPIPE ended (``yes | head -1``). Not 0: not every row was
#: written, and ``set -o pipefail`` treats sqltrack as it treats any other tool.
CLOSED_PIPE = 141


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 on success, 1 on errors, 2 on bad
    usage, :data:`CLOSED_PIPE` when the output's reader went away: quietly, as Unix
    tools do, ``sqltrack runs | head -3``)."""
    try:
        try:
            return _main(argv)
        finally:
            sys.stdout.flush()  # what is still buffered meets a closed pipe here, not at exit
    except BrokenPipeError:
        try:  # the interpreter flushes stdout again at exit: let that go nowhere
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError):  # (stdout is no file: a test's capture)
            pass
        return CLOSED_PIPE


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        client = Client(args.config, **{k: getattr(args, k) for k in CONNECTION})
    except SQLTrackError as e:
        return error(e)
    handled: tuple[type[BaseException], ...] = (
        SQLTrackError,
        OSError,
        *client.engine.driver_errors,
    )
    try:
        status: int = args.handler(client, args)
        return status
    except BrokenPipeError:
        raise  # (an OSError, but no error: see main)
    except handled as e:
        return error(e)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command (each described in its module of this package)."""
    parser = Parser(
        prog="sqltrack", description="Track machine-learning experiments in a SQL database."
    )
    parser.add_argument(
        "--version", action=_Version, help="show which sqltrack this is, on what, and exit"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    connection, output = connection_options(), output_options()
    database.register(commands, connection)
    runs.register(commands, connection, output)
    curves.register(commands, connection)
    admin.register(commands, connection, output)
    artifacts.register(commands, connection, output)
    dashboard.register(commands, connection)
    imports.register(commands, connection)
    return parser


def version_text() -> str:
    """What ``sqltrack --version`` prints: one line that tells this sqltrack from the
    unrelated PyPI package of the same name (0.1.x, PostgreSQL only), with the versions
    of what it runs on and where it was imported from."""
    here = Path(__file__).resolve().parent.parent  # the package
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
        f"sqltrack {__version__} (experiment tracking in PostgreSQL or SQLite; {driver}, "
        f"{library}, Python {platform.python_version()}) from {here}"
    )


class _Version(argparse.Action):
    """``--version``: :func:`version_text`, made only when asked for, on one line
    (argparse's own action would wrap it to the terminal's width)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        print(version_text())
        parser.exit()


if __name__ == "__main__":
    sys.exit(main())
