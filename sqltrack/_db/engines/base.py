"""What every engine offers: the interface the rest of sqltrack talks to.

sqltrack's own SQL is written once, with ``:name`` placeholders, and each engine turns it
into its driver's style: :meth:`Engine.sql` for named parameters (a dict),
:meth:`Engine.positional` for positional ones (a tuple, on hot paths). Nothing outside
``sqltrack/engines/`` asks which engine it talks to: it asks the engine.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from ..._base.secrets import redact_text
from ...errors import ConfigError, ConnectionFailed, DatabaseError, PermissionDenied

#: Kinds of metric values; each engine maps them to a column type.
KINDS = ("bool", "int", "float", "str", "datetime")

# What a driver error means for a retry (Engine.classify): each engine decides it from
# its driver's error codes (PostgreSQL's SQLSTATE, SQLite's result codes), in one table.
#: the connection broke, or must be replaced (a failover): reconnect and retry
LOST = "lost"
#: the server (or a pooler) is full: retry, for up to ``busy_timeout``
BUSY = "busy"
#: the server could not do it now (a deadlock, a lock, a full disk): retry
TRANSIENT = "transient"
#: a transaction pooler lost a prepared statement: retry at once, unprepared
POOLER = "pooler"
#: retrying cannot fix it (bad data, a limit, a privilege, a syntax error): raise
PERMANENT = "permanent"
#: the kinds that an operation retries (within its deadline)
RETRIED = frozenset({LOST, BUSY, TRANSIENT, POOLER})

_TOKEN = re.compile(
    r"""(?P<quoted>'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*|/\*.*?\*/)"""
    r"""|(?P<cast>::)|:(?P<name>[A-Za-z_]\w*)|(?P<percent>%)""",
    re.DOTALL,
)


@lru_cache(maxsize=1024)
def convert_placeholders(query: str, named: str, positional: str, percent: str) -> str:
    """Rewrite ``:name`` placeholders outside quotes, comments and ``::`` casts.

    :param named: the replacement of ``:name``, with ``{}`` for the name (``""``: use
        ``positional`` instead)
    :param positional: the replacement of every ``:name`` when ``named`` is empty
    :param percent: what a literal ``%`` becomes (psycopg wants ``%%`` in a query with
        parameters), inside quoted text too
    """

    def repl(m: re.Match[str]) -> str:
        if m.group("quoted") is not None:
            return m.group("quoted").replace("%", percent)
        if m.group("name") is not None:
            return named.format(m.group("name")) if named else positional
        if m.group("percent") is not None:
            return percent
        return m.group(0)

    return _TOKEN.sub(repl, query)


def quote_identifier(name: str) -> str:
    """Quote an identifier by doubling ``"``, as both engines expect."""
    if "\x00" in name:
        raise ValueError("identifiers cannot contain NUL bytes")
    return '"' + name.replace('"', '""') + '"'


def first_line(exc: BaseException) -> str:
    """The first line of an error's message (drivers add hints and context lines)."""
    text = redact_text(str(exc).strip())
    return text.splitlines()[0] if text else type(exc).__name__


def kind_of_type(declared: str) -> str | None:
    """The kind of metric values a column of this declared SQL type holds."""
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


class Engine:
    """Base class: the behaviour both engines share, and what each must provide.

    :param params: the merged configuration (see :mod:`sqltrack._db.config`); the engine
        adds its defaults and keeps the result in :attr:`params`.
    :raises ConfigError: a parameter has an invalid value.
    """

    #: the ``engine`` configuration value that selects this engine
    name: str = ""
    #: the engine's name for people (in messages)
    label: str = ""
    #: column type per kind of metric value (see :data:`KINDS`)
    column_types: Mapping[str, str] = {}
    #: whether a float column keeps NaN (SQLite turns it into NULL)
    stores_nan: bool = True
    #: whether the database has roles, and the rows their owners (PostgreSQL; SQLite: a
    #: file's mode is its permission)
    has_roles: bool = False
    #: the most metric columns sqltrack gives the wide table; later names go to the
    #: narrow storage. Every row pays for every column (PostgreSQL: a bit of its null
    #: bitmap; SQLite: a byte of its header), so the budget keeps that cost small.
    column_budget: int = 250
    #: whether an open connection takes one of a server's limited slots, so that idle
    #: jobs should give theirs back
    scarce_connections: bool = False
    #: the driver's base exception classes (for the command line's error messages)
    driver_errors: tuple[type[BaseException], ...] = ()
    #: PostgreSQL's ``ALTER TABLE`` may wait this long for its lock before stepping back
    ddl_lock_timeout: str | None = None
    #: for how long a step-back-and-retry of ``ALTER TABLE`` is repeated
    ddl_retry_seconds: float = 120.0

    #: parameters every engine takes
    common_params = frozenset({"engine", "url", "reconnect_timeout", "busy_timeout"})

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.params = dict(params)
        #: whether connecting may create the database (SQLite: a new file); only
        #: :func:`~sqltrack.setup` sets it, so a read never leaves a file behind
        self.create_if_missing = False
        self._check_names()
        #: seconds to keep reconnecting after a lost connection (outside client blocks)
        self.reconnect_timeout = self._seconds("reconnect_timeout", 60)
        #: seconds to keep trying while the server answers that it is full
        self.busy_timeout = self._seconds("busy_timeout", 600)

    def known_params(self) -> frozenset[str]:
        """The parameter names this engine takes."""
        return self.common_params

    def _check_names(self) -> None:
        """A parameter this engine does not take is an error, with a suggestion."""
        known = self.known_params()
        for name in sorted(set(self.params) - known):
            close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.75)
            if close:
                hint = f"; did you mean {close[0]!r}?"
            elif len(known) <= 12:
                hint = f"; {self.label} takes {', '.join(sorted(known))}"
            else:
                hint = ""
            raise ConfigError(
                f"unknown {self.label} parameter {name!r}{hint} (parameters come from "
                "Client(...) arguments, SQLTRACK_DSN_* variables and the config file)"
            )

    def _seconds(self, param: str, default: float) -> float:
        value = self.params.get(param, default)
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            seconds = -1.0
        if not seconds >= 0:  # also NaN
            raise ConfigError(f"invalid {param} {value!r}: give a number of seconds >= 0")
        return seconds

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"

    # -- connecting -----------------------------------------------------------------------

    def connect(self) -> Any:
        """A new driver connection; :class:`~sqltrack.errors.ConnectionFailed` if not."""
        raise NotImplementedError

    def describe(self) -> str:
        """Where this engine connects to, for messages (never contains a password)."""
        raise NotImplementedError

    def shell(self) -> tuple[list[str], dict[str, str]]:
        """The interactive SQL shell on this database (``sqltrack psql``): its command
        line and the environment variables it needs (a password is passed only there)."""
        raise NotImplementedError

    def identity(self) -> str:
        """What tells this database apart from others, the same in every process that
        uses it (no password): :meth:`describe` unless that depends on the directory."""
        return self.describe()

    # -- statements -----------------------------------------------------------------------

    def sql(self, query: str) -> str:
        """``query`` (``:name`` placeholders) for named parameters (a dict)."""
        raise NotImplementedError

    def positional(self, query: str) -> str:
        """``query`` (``:name`` placeholders) for positional parameters (a sequence, in the
        order the placeholders appear)."""
        raise NotImplementedError

    def adapt_datetime(self, dt: datetime) -> Any:
        """An aware datetime as the driver should store it."""
        return dt

    def python_value(self, value: Any, kind: str | None) -> Any:
        """A value as the driver read it, as Python holds it: for ``kind`` ``"datetime"``
        an aware datetime, ``"bool"`` a bool, ``"json"`` the decoded JSON value; other
        kinds (and NULL) as they are."""
        return value

    def in_array(self, column: str, param: str) -> str:
        """A condition: ``column`` is one of the values of parameter ``:param``, given as
        :meth:`adapt_array` makes it."""
        raise NotImplementedError

    def adapt_array(self, values: Sequence[Any]) -> Any:
        """A list of values as one parameter, for :meth:`in_array`."""
        raise NotImplementedError

    def array_rows(self, param: str) -> str:
        """A ``SELECT`` of one column, ``value``: a row per value of parameter ``:param``,
        given as :meth:`adapt_array` makes it (text values)."""
        raise NotImplementedError

    def json_has_key(self, column: str, param: str) -> str:
        """A condition: the JSON object in ``column`` has the key given as ``:param``."""
        raise NotImplementedError

    def json_contains(self, column: str, param: str) -> str:
        """A condition: the JSON object in ``column`` holds every key of the JSON object
        given as text in ``:param``, with an equal value."""
        raise NotImplementedError

    def execute_committed(self, conn: Any, statement: str, params: Any) -> None:
        """Execute one statement outside any transaction and commit it (what a tracked
        run's steady step needs): by default ``execute`` then ``commit``."""
        conn.execute(statement, params)
        conn.commit()

    def bulk_cursor(self, conn: Any) -> Any:
        """A cursor for reading many rows at once (binary transfer where there is one)."""
        return conn.cursor()

    def max_params(self, conn: Any) -> int:
        """Parameters allowed in one multi-row INSERT; 0: write many rows with executemany."""
        return 0

    def copy_rows(
        self,
        conn: Any,
        table: str,
        columns: Sequence[str],
        kinds: Sequence[str | None],
        rows: list[Any],
    ) -> bool:
        """Append new rows of ``columns`` (values of these kinds) to ``table`` (one of
        sqltrack's) in bulk, if the engine has a faster way than INSERT; False: it has
        none, or one of the rows exists already (nothing was written then, and the
        transaction is still usable)."""
        return False

    def index_order_sql(self) -> str | None:
        """A statement that makes the rest of the current transaction read rows in index
        order rather than collect and sort them, whatever the table's statistics say (a
        batch that should read a few thousand rows must not read a whole run); None:
        the engine's planner does so anyway."""
        return None

    def patient_ddl_lock_timeout(self, cursor: Any) -> str | None:
        """A lock timeout for ``ALTER TABLE`` long enough that the server cancels an
        automatic vacuum in its way (None: the engine has no such thing)."""
        return None

    def lock_row_sql(self, table: str, column: str) -> str:
        """A statement (parameter ``:id``) that locks one row for the rest of the current
        transaction and returns ``column``; no row if it does not exist."""
        raise NotImplementedError

    # -- transactions and scripts -----------------------------------------------------------

    def begin(self, cursor: Any) -> None:
        """Make sure a transaction is open, so that DDL that follows is part of it."""

    def run_script(self, cursor: Any, script: str) -> None:
        """Run a script of several statements in the current transaction."""
        raise NotImplementedError

    def lock_setup(self, cursor: Any) -> None:
        """Serialize concurrent ``setup`` runs for the rest of the current transaction."""

    def prepare_setup(self, cursor: Any) -> None:
        """Create what must exist before the first script (PostgreSQL: the schema)."""

    # -- metric columns -----------------------------------------------------------------------

    def metric_columns(self, cursor: Any) -> dict[str, str | None]:
        """Return ``{column: kind}`` for the metric columns (kind None when unknown)."""
        raise NotImplementedError

    def schema_owner(self, cursor: Any) -> str | None:
        """The role that owns the schema sqltrack uses (who applies its scripts); None
        where there are no roles, or no such schema yet."""
        return None

    def schema_refused(self, conn: Any) -> str | None:
        """After a statement found no sqltrack table: why, if the role may not use the
        schema (the tables are there, hidden from it); None if they are really missing."""
        return None

    def may_add_columns(self, cursor: Any) -> bool:
        """Whether the connection's role may add columns to the metrics table."""
        return True

    def long_value(self, column: str, kind: str) -> tuple[str, str]:
        """The ``value`` (a number) and ``text`` of a quoted wide column of this kind, as
        the view ``metrics_long`` shows them."""
        raise NotImplementedError

    def replace_view(self, cursor: Any, name: str, select: str) -> None:
        """Make the view ``name`` (sqltrack's own) be ``select``, in the current
        transaction, with the same columns as before."""
        raise NotImplementedError

    def add_column_sql(self, name: str, kind: str) -> str:
        """``ALTER TABLE metrics ADD COLUMN`` for a validated name and a kind."""
        raise NotImplementedError

    def add_columns(
        self, cursor: Any, columns: Mapping[str, str], lock_timeout: str | None = None
    ) -> None:
        """Add metric columns ``{name: kind}`` in the current transaction.

        :param lock_timeout: give up (:meth:`is_lock_timeout`) when the table's lock is
            not granted within this time; None waits as long as the engine does.
        """
        self.begin(cursor)
        for name, kind in columns.items():
            try:
                cursor.execute(self.add_column_sql(name, kind))
            except Exception as e:
                if not self.is_duplicate_column(e):  # SQLite: another process was first
                    raise

    # -- recognising the driver's errors ----------------------------------------------------

    def classify(self, exc: BaseException) -> str | None:
        """What ``exc`` means for a retry: :data:`LOST`, :data:`BUSY`, :data:`TRANSIENT`,
        :data:`POOLER` or :data:`PERMANENT`; None if it is no error of the database
        (sqltrack's own errors about input, Python's)."""
        if isinstance(exc, ConnectionFailed):
            return {"permanent": PERMANENT, "busy": BUSY}.get(exc.kind, LOST)
        if isinstance(exc, self.driver_errors):
            return self.classify_driver_error(exc)
        return None

    def classify_driver_error(self, exc: BaseException) -> str:
        """:meth:`classify` for an error of the engine's driver (its error codes)."""
        return PERMANENT

    def error_code(self, exc: BaseException) -> str | None:
        """The driver's code of an error (a SQLSTATE, a result code name), if it has one."""
        return None

    def is_permission_error(self, exc: BaseException) -> bool:
        """Whether a permanent driver error says that a privilege is missing."""
        return False

    def unprepare(self) -> bool:
        """After a :data:`POOLER` error: stop preparing statements; True if that changed
        anything (the engines without prepared statements: never)."""
        return False

    def refused(self, exc: BaseException) -> DatabaseError:
        """The :class:`~sqltrack.errors.DatabaseError` that says, in one line, why the
        database refused a statement with ``exc`` (a permanent driver error)."""
        code = self.error_code(exc)
        cls = PermissionDenied if self.is_permission_error(exc) else DatabaseError
        detail = f" ({code})" if code else ""
        return cls(f"{self.label} refused it: {first_line(exc)}{detail}; not retried", code)

    def is_connection_lost(self, exc: BaseException) -> bool:
        """Whether ``exc`` means the connection broke (so a retry on a new one may work)."""
        return self.classify(exc) == LOST

    def is_duplicate_column(self, exc: BaseException) -> bool:
        """Whether ``exc`` says a column that was being added exists already."""
        return False

    def is_lock_timeout(self, exc: BaseException) -> bool:
        """Whether ``exc`` says a lock was not granted within the lock timeout."""
        return False

    def is_foreign_key_violation(self, exc: BaseException) -> bool:
        """Whether ``exc`` is a foreign key violation."""
        return False

    def is_unique_violation(self, exc: BaseException) -> bool:
        """Whether ``exc`` is a unique or primary key violation."""
        return False

    def is_missing_table(self, exc: BaseException) -> bool:
        """Whether ``exc`` says a table does not exist."""
        return False

    def column_limit_error(self, exc: BaseException) -> str | None:
        """If ``exc`` says the table has too many columns, a message naming the limit."""
        return None
