"""What differs between PostgreSQL and SQLite, and nothing else.

SQL in sqltrack is written once, with ``:name`` placeholders (native to sqlite3), and
converted once per statement for psycopg. Everything engine-specific lives here:
connecting, placeholders, identifier quoting, column types, running a script, row locks
and the introspection of the ``metrics`` table.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

from .errors import ConfigError, ConnectionFailed

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
    #: column type per kind of metric value
    column_types: Mapping[str, str] = {}

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.params = dict(params)

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

    def is_duplicate_column(self, exc: BaseException) -> bool:
        return False

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
    column_types = {
        "bool": "BOOLEAN",
        "int": "BIGINT",
        "float": "DOUBLE PRECISION",
        "str": "TEXT",
        "datetime": "TIMESTAMPTZ",
    }
    # parameters that are sqltrack's own, not libpq's
    _own = ("engine", "schema", "dbpath")

    def __init__(self, params: Mapping[str, Any]) -> None:
        super().__init__(params)
        schema = self.params.get("schema")
        if schema is not None:
            from .names import check_identifier

            check_identifier(schema, what="schema name", error=ConfigError)
        self.params.setdefault("connect_timeout", 10)

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
            raise ConnectionFailed(
                f"cannot connect to PostgreSQL at {self.describe()}: {_first_line(e)}"
            ) from None
        except psycopg.ProgrammingError as e:
            raise ConfigError(f"invalid connection parameters: {_first_line(e)}") from None

    def sql(self, query: str) -> str:
        return to_pyformat(query)

    def describe(self) -> str:
        p = self.params
        host = p.get("host") or p.get("hostaddr") or "default socket"
        port = p.get("port", 5432)
        schema = f" schema={p['schema']}" if p.get("schema") else ""
        return f"host={host} port={port} dbname={p.get('dbname')} user={p.get('user')}{schema}"

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
            raise ConnectionFailed(f"cannot open SQLite database {self.describe()}: {e}") from None
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

    def table_exists(self, cursor: Any, table: str) -> bool:
        cursor.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,))
        return cursor.fetchone() is not None


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
