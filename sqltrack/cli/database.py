"""``sqltrack setup``, ``grant``, ``psql`` and ``sync``: the database itself — its schema,
its roles, a shell on it, and what jobs left elsewhere pushed into it."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from typing import Any

from .._admin.grants import grant, grant_groups
from .._admin.merge import merge_database
from .._admin.sync import sync_spools
from .._db.client import Client
from .._db.engines.base import first_line
from .._db.schema import setup
from .._live.places import spool_dir
from .._live.spool import is_spool, spool_files
from ..errors import SQLTrackError


def register(commands: Any, connection: argparse.ArgumentParser) -> None:
    cmd = commands.add_parser(
        "setup",
        parents=[connection],
        help="create or upgrade the database schema",
        description="Apply sqltrack's schema scripts, then the given SCRIPTs, in order. "
        "Each script is applied once per database; scripts applied before are skipped.",
    )
    cmd.add_argument(
        "scripts",
        nargs="*",
        metavar="SCRIPT",
        help="your own .sql scripts to apply after sqltrack's",
    )
    cmd.set_defaults(handler=_setup)
    cmd = commands.add_parser(
        "grant",
        parents=[connection],
        help="give a role of the lab its sqltrack role (PostgreSQL)",
        description="Make ROLE (a login role that exists) a reader (reads everything), a "
        "writer (also creates experiments and runs, and writes to its own) or an admin "
        "(may change or delete anything), by membership in the group roles "
        "sqltrack_reader, sqltrack_writer and sqltrack_admin; --revoke takes every one "
        "away. It makes the group roles the first time and gives them their privileges "
        "on the schema's tables (without ROLE, only that: again after `sqltrack setup`). "
        "Run it as the schema's owner with CREATEROLE, or as a superuser. See docs/lab.md.",
    )
    cmd.add_argument("role", nargs="?", metavar="ROLE", help="the login role")
    level = cmd.add_mutually_exclusive_group()
    for name in ("reader", "writer", "admin"):
        level.add_argument(
            f"--{name}", dest="level", action="store_const", const=name, help=f"make it a {name}"
        )
    level.add_argument("--revoke", dest="level", action="store_const", const="revoke")
    cmd.set_defaults(handler=_grant)
    cmd = commands.add_parser(
        "psql",
        parents=[connection],
        help="open psql on the database (sqlite3 for SQLite), with the schema's search_path",
        description="Start psql connected as sqltrack connects: the same host, user, "
        "database and schema (search_path); the password, if any, is passed in PGPASSWORD. "
        "With engine=sqlite, the sqlite3 shell on the database file. Arguments after -- go "
        "to psql: sqltrack psql -- -c 'SELECT count(*) FROM runs'.",
    )
    cmd.add_argument("shell_args", nargs=argparse.REMAINDER, metavar="-- ARG")
    cmd.set_defaults(handler=_psql)
    cmd = commands.add_parser(
        "sync",
        parents=[connection],
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
    cmd.add_argument(
        "files", nargs="*", metavar="FILE", help="spool files or sqltrack SQLite databases"
    )
    cmd.add_argument(
        "--all",
        action="store_true",
        help="without FILEs: every spool file in the spool directory, whatever connection "
        "it was recorded for (e.g. jobs that went through PgBouncer while you connect "
        "directly)",
    )
    cmd.add_argument(
        "--trust-others",
        action="store_true",
        help="push spool files even if another user owns them or may write them or their "
        "directory (only files you have looked at: a spool writes to your runs)",
    )
    cmd.set_defaults(handler=_sync)


def _setup(client: Client, args: argparse.Namespace) -> int:
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
    return 0


def _grant(client: Client, args: argparse.Namespace) -> int:
    say = lambda line: print(line, flush=True)  # noqa: E731
    if args.role is None:
        if args.level is not None:
            raise SQLTrackError(f"--{args.level} needs a ROLE")
        grant_groups(client, say)
        return 0
    if args.level is None:
        raise SQLTrackError("give --reader, --writer, --admin or --revoke")
    grant(client, args.role, None if args.level == "revoke" else args.level, say)
    return 0


def _psql(client: Client, args: argparse.Namespace) -> int:
    argv, env = client.engine.shell()
    extra = args.shell_args
    argv += extra[1:] if extra[:1] == ["--"] else extra
    try:
        return subprocess.run(argv, env={**os.environ, **env}, check=False).returncode
    except FileNotFoundError:
        raise SQLTrackError(f"{argv[0]} is not installed (or not on PATH)") from None


def _sync(client: Client, args: argparse.Namespace) -> int:
    files: list[str] = args.files
    databases = [f for f in files if not is_spool(f)]
    if files:
        spools: list[Any] | None = [f for f in files if f not in databases]
    else:
        spools = spool_files() if args.all else None
    results = sync_spools(client, spools, trust_others=args.trust_others)
    failed = False
    for result in results:
        bad = result.outcome in ("failed", "refused")
        failed = failed or bad
        print(result, file=sys.stderr if bad else sys.stdout, flush=True)
    for database in databases:
        try:
            merged = merge_database(client, database)
        except Exception as e:
            failed = True
            print(f"failed: {database} ({first_line(e)})", file=sys.stderr, flush=True)
            continue
        print(merged, flush=True)
    if not files and not results:
        print(f"nothing to push: no spool files for this database in {spool_dir()}")
    return 1 if failed else 0
