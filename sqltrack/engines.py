"""What differs between PostgreSQL and SQLite, and nothing else.

SQL in sqltrack is written once, with ``:name`` placeholders (native to sqlite3), and
converted once per statement for psycopg. Everything engine-specific lives here:
connecting, placeholders, identifier quoting, column types, running a script, row locks
and the introspection of the ``metrics`` table.
"""

from __future__ import annotations

import random
import re
import sqlite3
import time
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

from .errors import ConfigError, ConnectionFailed, SQLTrackError

__all__ = ["ENGINES", "Engine", "PostgresEngine", "SQLiteEngine", "get_engine", "to_pyformat"]

# Column types of metrics by the kind of Python value that created them.
KINDS = ("bool", "int", "float", "str", "datetime")

_TOKEN = re.compile(
    r"""(?P<quoted>'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*|/\*.*?\*/)"""
    r"""|(?P<cast>::)|:(?P<name>[A-Za-z_]\w*)|(?P<percent>%)""",
    re.DOTALL,
)


@lru_cache(maxsize=512)
def to_pyformat(query: str) -> str:
    """Convert ``:name`` placeholders to psycopg's ``%(name)s``.

    Quoted text, comments and ``::`` casts are left alone; every literal ``%`` is doubled
    (psycopg reads ``%`` everywhere in a query that has parameters).
    """

    def repl(m: re.Match[str]) -> str:
        if m.group("quoted") is not None:
            return m.group("quoted").replace("%", "%%")
        if m.group("name") is not None:
            return f"%({m.group('name')})s"
        if m.group("percent") is not None:
            return "%%"
        return m.group(0)

    return _TOKEN.sub(repl, query)


def quote_identifier(name: str) -> str:
    """Quote an identifier by doubling ``"``, as both engines expect."""
    if "\x00" in name:
        raise ValueError("identifiers cannot contain NUL bytes")
    return '"' + name.replace('"', '""') + '"'


def split_sqlite_script(script: str) -> Iterator[str]:
    """Split a script into complete statements (aware of strings, comments, triggers)."""
    start = 0
    for i, char in enumerate(script):
        if char == ";" and sqlite3.complete_statement(script[start : i + 1]):
            statement = script[start : i + 1].strip()
            start = i + 1
            if statement.strip(";").strip():
                yield statement
    rest = script[start:].strip()
    if rest and not _only_comments(rest):
        yield rest


def _only_comments(text: str) -> bool:
    return not re.sub(r"--[^\n]*|/\*.*?\*/", "", text, flags=re.DOTALL).strip()


class Engine:
    """Base class: the behaviour both engines share."""

    name: str = ""
    #: the driver's positional placeholder
    placeholder: str = "?"
    #: column type per kind of metric value
    column_types: Mapping[str, str] = {}

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.params = dict(params)
        try:
            #: seconds to keep reconnecting after a lost connection (outside client blocks)
            self.reconnect_timeout = float(self.params.get("reconnect_timeout", 60))
        except ValueError:
            raise ConfigError(
                f"invalid reconnect_timeout {self.params['reconnect_timeout']!r}"
            ) from None

    def connect(self) -> Any:
        raise NotImplementedError

    def sql(self, query: str) -> str:
        """Return ``query`` in the driver's placeholder style."""
        return query

    def describe(self) -> str:
        """Where this engine connects to, for messages (never contains a password)."""
        raise NotImplementedError

    def adapt_datetime(self, dt: datetime) -> Any:
        return dt

    def lock_row_sql(self, table: str, column: str) -> str:
        """A statement (parameter ``:id``) that locks one row for the rest of the current
        transaction and returns ``column``; no row if it does not exist."""
        raise NotImplementedError

    def run_script(self, cursor: Any, script: str) -> None:
        raise NotImplementedError

    def begin(self, cursor: Any) -> None:
        """Make sure a transaction is open, so that DDL that follows is part of it."""

    def lock_setup(self, cursor: Any) -> None:
        """Serialize concurrent ``setup`` runs for the rest of the current transaction."""

    def metric_columns(self, cursor: Any) -> dict[str, str | None]:
        """Return ``{column: kind}`` for the metric columns (kind None when unknown)."""
        raise NotImplementedError

    def add_column_sql(self, name: str, kind: str) -> str:
        raise NotImplementedError

    def add_columns(self, cursor: Any, columns: Mapping[str, str], own_transaction: bool) -> None:
        """Add metric columns ``{name: kind}`` in the current transaction.

        :param own_transaction: the transaction is sqltrack's own (not a user's ``with
            client:`` block), so the engine may commit it early.
        """
        self.begin(cursor)
        for name, kind in columns.items():
            try:
                cursor.execute(self.add_column_sql(name, kind))
            except Exception as e:
                if not self.is_duplicate_column(e):  # SQLite: another process was first
                    raise

    def is_duplicate_column(self, exc: BaseException) -> bool:
        return False

    def is_connection_lost(self, exc: BaseException) -> bool:
        """Whether ``exc`` means the connection broke (so a retry on a new one may work)."""
        return False

    def column_limit_error(self, exc: BaseException) -> str | None:
        """If ``exc`` says the table has too many columns, a message naming the limit."""
        return None

    def max_params(self, conn: Any) -> int:
        """Parameters allowed in one multi-row INSERT; 0: write many rows with executemany."""
        return 0  # psycopg's executemany is already pipelined

    def table_exists(self, cursor: Any, table: str) -> bool:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


def _kind_of_type(declared: str) -> str | None:
    t = declared.upper()
    if "BOOL" in t:
        return "bool"
    if "INT" in t:
        return "int"
    if any(x in t for x in ("REAL", "FLOA", "DOUB", "NUMERIC", "DECIMAL")):
        return "float"
    if any(x in t for x in ("TIMESTAMP", "DATE")):
        return "datetime"
    if any(x in t for x in ("CHAR", "TEXT", "CLOB")):
        return "str"
    return None


class PostgresEngine(Engine):
    name = "postgres"
    placeholder = "%s"
    column_types = {
        "bool": "BOOLEAN",
        "int": "BIGINT",
        "float": "DOUBLE PRECISION",
        "str": "TEXT",
        "datetime": "TIMESTAMPTZ",
    }
    # parameters that are sqltrack's own, not libpq's
    _own = ("engine", "schema", "dbpath", "reconnect_timeout")

    def __init__(self, params: Mapping[str, Any]) -> None:
        super().__init__(params)
        schema = self.params.get("schema")
        if schema is not None:
            from .names import check_identifier

            check_identifier(schema, what="schema name", error=ConfigError)
        self.params.setdefault("connect_timeout", 10)
        self.params.setdefault("application_name", "sqltrack")  # visible in pg_stat_activity

    def connect_kwargs(self) -> dict[str, Any]:
        kwargs = {k: v for k, v in self.params.items() if k not in self._own}
        schema = self.params.get("schema")
        if schema is not None:
            # validated identifier: lowercase letters, digits, underscores only
            options = kwargs.get("options", "")
            kwargs["options"] = f"{options} -c search_path={schema}".strip()
        return kwargs

    def connect(self) -> Any:
        import psycopg

        try:
            return psycopg.connect(**self.connect_kwargs())
        except psycopg.OperationalError as e:
            error = ConnectionFailed(
                f"cannot connect to PostgreSQL at {self.describe()}: {_first_line(e)}"
            )
            text = str(e)
            if any(state in text for state in _TRANSIENT_SERVER_STATES):
                error.kind = "transient"
            elif any(reason in text for reason in _PERMANENT_REASONS):
                error.kind = "permanent"
            raise error from None
        except psycopg.ProgrammingError as e:
            raise ConfigError(f"invalid connection parameters: {_first_line(e)}") from None

    def sql(self, query: str) -> str:
        return to_pyformat(query)

    def is_connection_lost(self, exc: BaseException) -> bool:
        import psycopg

        if isinstance(exc, ConnectionFailed):
            return True
        if not isinstance(exc, psycopg.OperationalError):
            return False
        # no SQLSTATE: the client lost the server; class 08: connection exception;
        # 57P01-57P03: the server is shutting down, crashed or is starting up
        state = exc.sqlstate
        return state is None or state.startswith("08") or state in ("57P01", "57P02", "57P03")

    def describe(self) -> str:
        p = self.params
        host = p.get("host") or p.get("hostaddr") or "default socket"
        port = p.get("port", 5432)
        schema = f" schema={p['schema']}" if p.get("schema") else ""
        return f"host={host} port={port} dbname={p.get('dbname')} user={p.get('user')}{schema}"

    def column_limit_error(self, exc: BaseException) -> str | None:
        if getattr(exc, "sqlstate", None) == "54011":  # too_many_columns
            return (
                "the metrics table has reached PostgreSQL's limit of 1600 columns "
                "(dropped columns count too)"
            )
        return None

    def lock_row_sql(self, table: str, column: str) -> str:
        table, column = quote_identifier(table), quote_identifier(column)
        return f"SELECT {column} FROM {table} WHERE id = :id FOR UPDATE"  # noqa: S608

    def run_script(self, cursor: Any, script: str) -> None:
        # Without parameters psycopg sends the script as it is: several statements are fine.
        cursor.execute(script.encode())

    def lock_setup(self, cursor: Any) -> None:
        # Keyed on the configured schema: current_schema() is NULL while it does not exist,
        # and an advisory lock on NULL silently locks nothing.
        cursor.execute(
            "SELECT pg_advisory_xact_lock(hashtext('sqltrack.setup'), "
            "hashtext(COALESCE(%s, current_schema(), '')))",
            (self.params.get("schema"),),
        )

    def metric_columns(self, cursor: Any) -> dict[str, str | None]:
        cursor.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = 'metrics'"
        )
        return {name: _kind_of_type(dtype) for name, dtype in cursor.fetchall()}

    def add_column_sql(self, name: str, kind: str) -> str:
        column = quote_identifier(name)
        return f"ALTER TABLE metrics ADD COLUMN IF NOT EXISTS {column} {self.column_types[kind]}"

    #: how long one ALTER TABLE may wait for its lock before it steps back and retries
    ddl_lock_timeout = "500ms"
    #: how long to keep retrying before giving up
    ddl_retry_seconds = 120.0

    def add_columns(self, cursor: Any, columns: Mapping[str, str], own_transaction: bool) -> None:
        """ALTER TABLE waits for an exclusive lock, and every writer that comes after it
        queues behind it. So, in a transaction of its own, it waits at most
        ``ddl_lock_timeout``, then steps back (letting the queue drain) and retries.
        Inside a user's block it runs in that transaction and waits as long as needed."""
        if not own_transaction:
            return super().add_columns(cursor, columns, own_transaction)
        import psycopg

        conn = cursor.connection
        conn.commit()  # end sqltrack's transaction: it has only read the catalog so far
        deadline = time.monotonic() + self.ddl_retry_seconds
        delay = 0.02
        while True:
            try:
                cursor.execute(f"SET LOCAL lock_timeout = '{self.ddl_lock_timeout}'")
                for name, kind in columns.items():
                    cursor.execute(self.add_column_sql(name, kind))
                conn.commit()
                return
            except psycopg.errors.LockNotAvailable:
                conn.rollback()
                if time.monotonic() > deadline:
                    raise SQLTrackError(
                        f"could not add metric columns {', '.join(columns)}: the metrics table "
                        f"stayed locked for {self.ddl_retry_seconds:g} s (a long query or "
                        "transaction on it?)"
                    ) from None
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 1.0)

    def table_exists(self, cursor: Any, table: str) -> bool:
        cursor.execute(
            "SELECT 1 FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_name = %s",
            (table,),
        )
        return cursor.fetchone() is not None


class SQLiteEngine(Engine):
    """SQLite via the standard library.

    Connections use WAL journaling, ``synchronous=NORMAL``, enforced foreign keys and a
    busy timeout (parameters ``journal_mode``, ``synchronous``, ``timeout`` override them).
    Writes begin ``IMMEDIATE`` transactions, so two writers never deadlock on upgrade.
    """

    name = "sqlite"
    column_types = {
        "bool": "BOOLEAN",
        "int": "INTEGER",
        "float": "REAL",
        "str": "TEXT",
        "datetime": "TIMESTAMP",
    }
    _pragma_values = {
        "journal_mode": ("delete", "truncate", "persist", "memory", "wal", "off"),
        "synchronous": ("off", "normal", "full", "extra", "0", "1", "2", "3"),
    }

    def __init__(self, params: Mapping[str, Any]) -> None:
        super().__init__(params)
        for pragma, allowed in self._pragma_values.items():
            value = str(self.params.get(pragma, "wal" if pragma == "journal_mode" else "normal"))
            if value.lower() not in allowed:
                raise ConfigError(f"invalid {pragma} {value!r}; choose one of {allowed}")
            self.params[pragma] = value.lower()
        try:
            self.timeout = float(self.params.get("timeout", 30))
        except ValueError:
            raise ConfigError(f"invalid timeout {self.params['timeout']!r}") from None

    def connect(self) -> Any:
        if sqlite3.sqlite_version_info < (3, 35):
            raise ConfigError(f"sqltrack needs SQLite >= 3.35, this is {sqlite3.sqlite_version}")
        try:
            conn = sqlite3.connect(
                str(self.params["dbpath"]), timeout=self.timeout, isolation_level="IMMEDIATE"
            )
        except sqlite3.Error as e:
            error = ConnectionFailed(f"cannot open SQLite database {self.describe()}: {e}")
            error.kind = "permanent"
            raise error from None
        try:
            conn.execute(f"PRAGMA journal_mode = {self.params['journal_mode']}")
            conn.execute(f"PRAGMA synchronous = {self.params['synchronous']}")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as e:
            conn.close()
            raise ConnectionFailed(f"cannot open SQLite database {self.describe()}: {e}") from None
        return conn

    def describe(self) -> str:
        return f"dbpath={self.params['dbpath']}"

    def max_params(self, conn: Any) -> int:
        # sqlite3 releases the GIL around each row it steps: row by row (executemany), a
        # background writer waits for the GIL again after every row while the training
        # loop runs. One statement of many rows steps once, and costs less per row too.
        if hasattr(conn, "getlimit"):  # Python >= 3.11
            return int(conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))
        return 32766 if sqlite3.sqlite_version_info >= (3, 32) else 999

    def adapt_datetime(self, dt: datetime) -> Any:
        # UTC text sorts in time order and is understood by SQLite's date functions.
        return dt.astimezone(timezone.utc).isoformat(sep=" ")

    def lock_row_sql(self, table: str, column: str) -> str:
        # SQLite has no row locks: a no-op UPDATE takes the database write lock.
        table, column = quote_identifier(table), quote_identifier(column)
        return f"UPDATE {table} SET id = id WHERE id = :id RETURNING {column}"  # noqa: S608

    def begin(self, cursor: Any) -> None:
        # sqlite3 opens transactions implicitly only before INSERT/UPDATE/DELETE/REPLACE.
        if not cursor.connection.in_transaction:
            cursor.execute("BEGIN IMMEDIATE")

    def run_script(self, cursor: Any, script: str) -> None:
        # executescript() would COMMIT first; run statements one by one in our transaction.
        self.begin(cursor)
        for statement in split_sqlite_script(script):
            cursor.execute(statement)

    def lock_setup(self, cursor: Any) -> None:
        self.begin(cursor)  # the database write lock serializes setup

    def metric_columns(self, cursor: Any) -> dict[str, str | None]:
        cursor.execute("SELECT name, type FROM pragma_table_info('metrics')")
        return {name: _kind_of_type(dtype) for name, dtype in cursor.fetchall()}

    def add_column_sql(self, name: str, kind: str) -> str:
        # no IF NOT EXISTS in SQLite: a concurrent creator makes this fail, see is_duplicate_column
        return f"ALTER TABLE metrics ADD COLUMN {quote_identifier(name)} {self.column_types[kind]}"

    def is_duplicate_column(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.OperationalError) and "duplicate column" in str(exc)

    def column_limit_error(self, exc: BaseException) -> str | None:
        if isinstance(exc, sqlite3.OperationalError) and "too many columns" in str(exc):
            return "the metrics table has reached SQLite's limit of 2000 columns"
        return None

    def table_exists(self, cursor: Any, table: str) -> bool:
        cursor.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,))
        return cursor.fetchone() is not None


# What a server that is restarting answers (e.g. SQLSTATE 57P03): a retry will succeed.
_TRANSIENT_SERVER_STATES = (
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "the database system is not yet accepting connections",
)


# Configuration errors: retrying cannot help.
_PERMANENT_REASONS = (
    "authentication failed",
    "does not exist",  # database or role
    "no password supplied",
    "could not translate host name",
    "no pg_hba.conf entry",
    "invalid ",  # invalid connection option / sslmode value ...
)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


ENGINES: dict[str, type[Engine]] = {"postgres": PostgresEngine, "sqlite": SQLiteEngine}


def get_engine(params: Mapping[str, Any]) -> Engine:
    """Return the engine for ``params['engine']``.

    :raises ConfigError: the engine name is unknown.
    """
    name = str(params.get("engine", "postgres")).lower()
    try:
        cls = ENGINES[name]
    except KeyError:
        raise ConfigError(f"unknown engine {name!r}; choose one of: {', '.join(ENGINES)}") from None
    return cls(params)
