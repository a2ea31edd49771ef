"""PostgreSQL through psycopg 3: the only module of sqltrack that imports psycopg.

It is imported when the first PostgreSQL client is created, not with ``import sqltrack``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from psycopg import conninfo
from psycopg import errors as pg_errors

from ..._base.names import check_identifier
from ...errors import ConfigError, ConnectionFailed, DatabaseError
from ..config import default_user
from . import postgres_roles as roles
from .base import (
    LOST,
    PERMANENT,
    Engine,
    convert_placeholders,
    first_line,
    kind_of_type,
    quote_identifier,
)
from .postgres_codes import (
    BUSY_REASONS,
    PERMANENT_REASONS,
    SQLSTATE_KINDS,
    TRANSIENT_SERVER_STATES,
)

# Parameters and libpq variables that say where the database is.
_WHERE = {"url", "conninfo", "host", "hostaddr", "port", "dbname", "user", "service"}
_LIBPQ_WHERE = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGSERVICE")
_NOT_CONFIGURED = (
    "no database configured, and no PostgreSQL server on the default socket: give one with "
    "SQLTRACK_URL (e.g. sqlite:///runs.db or postgresql://user@host/dbname), "
    "SQLTRACK_DSN_* variables, a ./sqltrack.conf file or Client(...) arguments"
)

# Binary COPY types of the metric column kinds.
_COPY_TYPES = {
    "float": "float8",
    "int": "int8",
    "bool": "bool",
    "str": "text",
    "datetime": "timestamptz",
}

_METRIC_COLUMNS = (
    "SELECT column_name, data_type FROM information_schema.columns "
    "WHERE table_schema = current_schema() AND table_name = 'metrics'"
)
# Keyed on the configured schema: current_schema() is NULL while it does not exist, and
# an advisory lock on NULL silently locks nothing.
_LOCK_SETUP = (
    "SELECT pg_advisory_xact_lock(hashtext('sqltrack.setup'), "
    "hashtext(COALESCE(:schema, current_schema(), '')))"
)


class PostgresEngine(Engine):
    """PostgreSQL: any libpq parameter, plus sqltrack's own:

    - ``schema``: sets the ``search_path`` (a startup option);
    - ``pgbouncer``: ``true`` when connecting through PgBouncer in transaction (or
      statement) pooling: no prepared statements (psycopg's ``prepare_threshold=None``),
      and ``schema`` is refused, since PgBouncer cannot pass startup options on;
    - ``prepare_threshold``: psycopg's, an integer or ``none`` (default 5; ``none``
      with ``pgbouncer=true``).

    Defaults: ``user`` is ``$USER``, ``dbname`` the user, ``connect_timeout`` 10 s,
    ``application_name`` ``sqltrack`` (visible in ``pg_stat_activity``).
    """

    name = "postgres"
    label = "PostgreSQL"
    column_types = {
        "bool": "BOOLEAN",
        "int": "BIGINT",
        "float": "DOUBLE PRECISION",
        "str": "TEXT",
        "datetime": "TIMESTAMPTZ",
    }
    driver_errors = (psycopg.Error,)
    scarce_connections = True
    has_roles = True
    ddl_lock_timeout = "500ms"
    # parameters that are sqltrack's own, not libpq's
    _own = (
        "engine",
        "schema",
        "dbpath",
        "reconnect_timeout",
        "busy_timeout",
        "pgbouncer",
        "prepare_threshold",
    )

    def known_params(self) -> frozenset[str]:
        return self.common_params | _libpq_keywords() | frozenset(self._own)

    def __init__(self, params: Mapping[str, Any]) -> None:
        #: nothing says where the database is: no parameter, no libpq variable
        self.unconfigured = not (_WHERE & set(params)) and not any(
            os.environ.get(name) for name in _LIBPQ_WHERE
        )
        super().__init__(_expand_urls(params))
        self._patient_timeout: str | None = None  # see patient_ddl_lock_timeout
        #: False once COPY was refused (row-level security a lab put on the table)
        self._copy_allowed = True
        schema = self.params.get("schema")
        if schema is not None:
            check_identifier(schema, what="schema name", error=ConfigError)
        self.pgbouncer = _flag(self.params.get("pgbouncer", False), "pgbouncer")
        if self.pgbouncer and schema is not None:
            raise ConfigError(
                f"schema={schema} cannot be used with pgbouncer=true: PgBouncer does not pass "
                "the search_path option on to the server. Set it for the role instead "
                f"(ALTER ROLE {self.params.get('user') or default_user()} SET search_path = "
                f"{schema}), or use a database of its own"
            )
        #: psycopg's prepare_threshold (None: never prepare statements)
        self.prepare_threshold = _threshold(
            self.params.get("prepare_threshold", None if self.pgbouncer else 5)
        )
        self.params.setdefault("user", default_user())
        self.params.setdefault("dbname", self.params["user"])
        self.params.setdefault("connect_timeout", 10)
        self.params.setdefault("application_name", "sqltrack")

    def connect_kwargs(self) -> dict[str, Any]:
        """The keyword arguments for ``psycopg.connect``."""
        kwargs = {k: v for k, v in self.params.items() if k not in self._own}
        kwargs["prepare_threshold"] = self.prepare_threshold
        schema = self.params.get("schema")
        if schema is not None:
            # validated identifier: lowercase letters, digits, underscores only
            options = kwargs.get("options", "")
            kwargs["options"] = f"{options} -c search_path={schema}".strip()
        return kwargs

    def connect(self) -> Any:
        try:
            return psycopg.connect(**self.connect_kwargs())
        except psycopg.OperationalError as e:
            error = ConnectionFailed(
                f"cannot connect to PostgreSQL at {self.describe()}: {first_line(e)}"
            )
            text = str(e).lower()  # the reasons below are lowercase
            if self.unconfigured and ("no such file" in text or "connection refused" in text):
                error = ConnectionFailed(_NOT_CONFIGURED)
                error.kind = "permanent"  # nobody will start a server there for us
            elif any(state in text for state in TRANSIENT_SERVER_STATES):
                error.kind = "transient"
            elif any(reason in text for reason in BUSY_REASONS):
                error.kind = "busy"
            elif any(reason in text for reason in PERMANENT_REASONS):
                error.kind = "permanent"
            raise error from None
        except psycopg.ProgrammingError as e:
            raise ConfigError(f"invalid connection parameters: {first_line(e)}") from None

    def shell(self) -> tuple[list[str], dict[str, str]]:
        kwargs = self.connect_kwargs()
        kwargs.pop("prepare_threshold", None)
        kwargs["application_name"] = "psql (sqltrack)"
        env = {}
        password = kwargs.pop("password", None)
        if password is not None:  # not on the command line, where `ps` shows it
            env["PGPASSWORD"] = str(password)
        return ["psql", conninfo.make_conninfo(**kwargs)], env

    def describe(self) -> str:
        p = self.params
        host = p.get("host") or p.get("hostaddr") or "default socket"
        port = p.get("port", 5432)
        schema = f" schema={p['schema']}" if p.get("schema") else ""
        return f"host={host} port={port} dbname={p.get('dbname')} user={p.get('user')}{schema}"

    # -- statements -----------------------------------------------------------------------

    def sql(self, query: str) -> str:
        return convert_placeholders(query, "%({})s", "", "%%")

    def positional(self, query: str) -> str:
        return convert_placeholders(query, "", "%s", "%%")

    def in_array(self, column: str, param: str) -> str:
        # column and param are sqltrack's own names, never a caller's
        return f"{column} = ANY(:{param})"

    def adapt_array(self, values: Sequence[Any]) -> Any:
        return list(values)

    def array_rows(self, param: str) -> str:
        return f"SELECT unnest(CAST(:{param} AS TEXT[])) AS value"

    def json_has_key(self, column: str, param: str) -> str:
        # the operator, not jsonb_exists(): only the operator can use the GIN index
        return f"{column} ? CAST(:{param} AS TEXT)"

    def json_contains(self, column: str, param: str) -> str:
        return f"{column} @> CAST(:{param} AS jsonb)"

    def bulk_cursor(self, conn: Any) -> Any:
        return conn.cursor(binary=True)

    def copy_rows(
        self,
        conn: Any,
        table: str,
        columns: Sequence[str],
        kinds: Sequence[str | None],
        rows: list[Any],
    ) -> bool:
        # Binary COPY: no statement per row, no text formatting. A row that exists
        # already (a metric added to a step later, a batch replayed after a lost commit)
        # violates the primary key: then the savepoint undoes the COPY and the caller
        # upserts instead.
        types = [_COPY_TYPES.get(kind) for kind in kinds]  # type: ignore[arg-type]
        if None in types:
            return False
        if not self._copy_allowed:
            return False
        quoted = ", ".join(map(quote_identifier, columns))
        statement = f"COPY {quote_identifier(table)} ({quoted}) FROM STDIN (FORMAT BINARY)"
        try:
            with conn.transaction(), conn.cursor() as cur, cur.copy(statement) as copy:
                copy.set_types(types)
                for row in rows:
                    copy.write_row(row)
        except pg_errors.UniqueViolation:
            return False
        except pg_errors.FeatureNotSupported:  # row-level security on the table (a lab's own)
            self._copy_allowed = False
            return False
        return True

    def index_order_sql(self) -> str | None:
        # Stale statistics (a run grown to millions of rows since the last ANALYZE) make
        # the planner expect a few rows and choose a bitmap scan and a sort of all of them.
        return (
            "SELECT set_config('enable_bitmapscan', 'off', true), "
            "set_config('enable_sort', 'off', true), set_config('enable_seqscan', 'off', true)"
        )

    def patient_ddl_lock_timeout(self, cursor: Any) -> str | None:
        # The server cancels an autovacuum that blocks a lock request only once the
        # request has waited deadlock_timeout; a shorter wait never gets past a vacuum
        # of a big metrics table (after a gc, say), which may take minutes.
        if self._patient_timeout is None:
            cursor.execute("SELECT setting FROM pg_settings WHERE name = 'deadlock_timeout'")
            row = cursor.fetchone()
            milliseconds = int(row[0]) if row else 1000
            self._patient_timeout = f"{milliseconds + 300}ms"
        return self._patient_timeout

    def lock_row_sql(self, table: str, column: str) -> str:
        table, column = quote_identifier(table), quote_identifier(column)
        return f"SELECT {column} FROM {table} WHERE id = :id FOR UPDATE"  # noqa: S608

    # -- transactions and scripts -----------------------------------------------------------

    def run_script(self, cursor: Any, script: str) -> None:
        # Without parameters psycopg sends the script as it is: several statements are fine.
        cursor.execute(script.encode())

    def lock_setup(self, cursor: Any) -> None:
        cursor.execute(self.sql(_LOCK_SETUP), {"schema": self.params.get("schema")})

    def prepare_setup(self, cursor: Any) -> None:
        schema = self.params.get("schema")
        if schema is not None:
            self.lock_setup(cursor)  # concurrent CREATE SCHEMAs would collide
            cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(schema)}")

    # -- metric columns -----------------------------------------------------------------------

    def metric_columns(self, cursor: Any) -> dict[str, str | None]:
        cursor.execute(_METRIC_COLUMNS)
        return {name: kind_of_type(dtype) for name, dtype in cursor.fetchall()}

    def schema_owner(self, cursor: Any) -> str | None:
        return roles.schema_owner(cursor, self.params.get("schema"))

    def schema_refused(self, conn: Any) -> str | None:
        return roles.schema_refused(
            conn, self.params.get("schema"), self.params.get("user"), self.describe()
        )

    def may_add_columns(self, cursor: Any) -> bool:
        return roles.may_add_columns(cursor)

    def long_value(self, column: str, kind: str) -> tuple[str, str]:
        none = "CAST(NULL AS DOUBLE PRECISION)"
        return {
            "float": (column, "CAST(NULL AS TEXT)"),
            "int": (f"CAST({column} AS DOUBLE PRECISION)", "CAST(NULL AS TEXT)"),
            "bool": (f"CAST({column} AS INT)::DOUBLE PRECISION", "CAST(NULL AS TEXT)"),
            "str": (none, column),
            "datetime": (  # the text as the narrow storage has it: ISO 8601 in UTC
                f"CAST(EXTRACT(EPOCH FROM {column}) AS DOUBLE PRECISION)",
                f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')",
            ),
        }[kind]

    def replace_view(self, cursor: Any, name: str, select: str) -> None:
        # the view's columns keep their names and types: OR REPLACE keeps its grants
        cursor.execute(f"CREATE OR REPLACE VIEW {quote_identifier(name)} AS {select}")

    def add_column_sql(self, name: str, kind: str) -> str:
        column = quote_identifier(name)
        return f"ALTER TABLE metrics ADD COLUMN IF NOT EXISTS {column} {self.column_types[kind]}"

    def add_columns(
        self, cursor: Any, columns: Mapping[str, str], lock_timeout: str | None = None
    ) -> None:
        if lock_timeout is not None:
            # SET LOCAL takes no parameters; the value is this class's own constant
            cursor.execute(f"SET LOCAL lock_timeout = {quote_literal(lock_timeout)}")
        for name, kind in columns.items():
            cursor.execute(self.add_column_sql(name, kind))

    # -- recognising the driver's errors ----------------------------------------------------

    def classify_driver_error(self, exc: BaseException) -> str:
        state = getattr(exc, "sqlstate", None)
        if state is None:
            # OperationalError: the client lost the server; InternalError: it lost step
            # with it (e.g. "received 2 results from command 'COMMIT'" when PgBouncer's
            # server restarts mid-transaction). Others (DataError of a NUL byte, a wrong
            # number of parameters) are the client's own checks.
            lost = isinstance(exc, (psycopg.OperationalError, psycopg.InternalError))
            return LOST if lost else PERMANENT
        return SQLSTATE_KINDS.get(state) or SQLSTATE_KINDS.get(state[:2]) or PERMANENT

    def error_code(self, exc: BaseException) -> str | None:
        state = getattr(exc, "sqlstate", None)
        return None if state is None else f"SQLSTATE {state}"

    def is_permission_error(self, exc: BaseException) -> bool:
        return isinstance(exc, pg_errors.InsufficientPrivilege)

    def refused(self, exc: BaseException) -> DatabaseError:
        return roles.refused(exc, super().refused(exc), self.params.get("user"))

    def unprepare(self) -> bool:
        """After an error of a transaction pooler (:data:`POOLER`): prepare no statements
        from now on (psycopg's ``prepare_threshold=None``, as ``pgbouncer=true`` does);
        True the first time, when it was on."""
        was_on = self.prepare_threshold is not None
        self.prepare_threshold = None
        self.params["prepare_threshold"] = "none"  # for the clients made from these params
        return was_on

    def is_lock_timeout(self, exc: BaseException) -> bool:
        return isinstance(exc, pg_errors.LockNotAvailable)

    def is_foreign_key_violation(self, exc: BaseException) -> bool:
        return isinstance(exc, pg_errors.ForeignKeyViolation)

    def is_unique_violation(self, exc: BaseException) -> bool:
        return isinstance(exc, pg_errors.UniqueViolation)

    def is_missing_table(self, exc: BaseException) -> bool:
        return isinstance(exc, pg_errors.UndefinedTable)

    def column_limit_error(self, exc: BaseException) -> str | None:
        if isinstance(exc, pg_errors.TooManyColumns):
            return (
                "the metrics table has reached PostgreSQL's limit of 1600 columns "
                "(dropped columns count too)"
            )
        return None


@functools.lru_cache(maxsize=1)
def _libpq_keywords() -> frozenset[str]:
    """Every connection parameter this libpq knows."""
    return frozenset(option.keyword.decode() for option in psycopg.pq.Conninfo.get_defaults())


def _is_conninfo(value: Any) -> bool:
    """Whether a dbname is really a connection string, as libpq would read it."""
    text = str(value)
    return "=" in text or text.startswith(("postgresql://", "postgres://"))


def _expand_urls(params: Mapping[str, Any]) -> dict[str, Any]:
    """``url``, ``conninfo`` and a ``dbname`` that holds a connection string, taken apart
    into parameters; parameters given separately win over their parts."""
    given = dict(params)
    parts: dict[str, Any] = {}
    for key in ("url", "conninfo", "dbname"):
        value = given.get(key)
        if value is None or (key == "dbname" and not _is_conninfo(value)):
            continue
        del given[key]
        try:
            parsed = conninfo.conninfo_to_dict(str(value))
        except psycopg.ProgrammingError as e:
            raise ConfigError(f"invalid PostgreSQL {key}: {first_line(e)}") from None
        parts.update((k, v) for k, v in parsed.items() if v is not None and v != "")
    return {**parts, **given}


def _flag(value: Any, name: str) -> bool:
    """A boolean parameter: a bool, or true/false, yes/no, on/off, 1/0 in any case."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise ConfigError(f"invalid {name} {value!r}: give true or false")


def _threshold(value: Any) -> int | None:
    """psycopg's prepare_threshold: a whole number >= 0, or None (never prepare)."""
    if value is None or str(value).strip().lower() in ("none", "null", ""):
        return None
    try:
        number = int(str(value).strip())
    except ValueError:
        number = -1
    if number < 0:
        raise ConfigError(f"invalid prepare_threshold {value!r}: give a number >= 0 or none")
    return number


def quote_literal(text: str) -> str:
    """A SQL string literal (for the few statements that take no parameters)."""
    return "'" + text.replace("'", "''") + "'"


ENGINE = PostgresEngine
