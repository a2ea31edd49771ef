"""SQLite through the standard library's ``sqlite3``.

sqlite3 reports most errors as ``OperationalError`` with an English message, and names
constraint violations in ``sqlite_errorname`` (Python >= 3.11); the checks below use the
exception class first and its name or message only to tell the cases apart.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from ..._base.secrets import redact_text as redact
from ...errors import ConfigError, ConnectionFailed, InvalidValue, warn
from .base import PERMANENT, TRANSIENT, Engine, convert_placeholders, kind_of_type, quote_identifier

_URL_PREFIX = "sqlite:///"

_METRIC_COLUMNS = "SELECT name, type FROM pragma_table_info('metrics')"

# What each primary result code means for a retry; every other code is permanent
# (SQLITE_ERROR: syntax, a missing table, too many columns; SQLITE_CONSTRAINT;
# SQLITE_TOOBIG; SQLITE_READONLY: a file the user may not write; SQLITE_CORRUPT ...).
# Before Python 3.11 sqlite3 gives no code: the driver's message tells them apart.
RESULT_KINDS = {
    5: (TRANSIENT, "database is locked"),  # SQLITE_BUSY: another writer holds the lock
    6: (TRANSIENT, "database table is locked"),  # SQLITE_LOCKED
    7: (TRANSIENT, "out of memory"),  # SQLITE_NOMEM
    10: (TRANSIENT, "disk i/o error"),  # SQLITE_IOERR (NFS hiccups among them)
    13: (TRANSIENT, "database or disk is full"),  # SQLITE_FULL
    15: (TRANSIENT, "locking protocol"),  # SQLITE_PROTOCOL
}


class SQLiteEngine(Engine):
    """SQLite: ``dbpath`` (default ``sqltrack.db``).

    Connections use WAL journaling, ``synchronous=NORMAL``, enforced foreign keys and a
    busy timeout (parameters ``journal_mode``, ``synchronous``, ``timeout`` override them).
    Writes begin ``IMMEDIATE`` transactions, so two writers never deadlock on upgrade.
    """

    name = "sqlite"
    label = "SQLite"
    column_types = {
        "bool": "BOOLEAN",
        "int": "INTEGER",
        "float": "REAL",
        "str": "TEXT",
        "datetime": "TIMESTAMP",
    }
    stores_nan = False
    column_budget = 24  # a NULL costs a byte of every row's header (see docs/metrics.md)
    driver_errors = (sqlite3.Error,)
    _pragma_values = {
        "journal_mode": ("delete", "truncate", "persist", "memory", "wal", "off"),
        "synchronous": ("off", "normal", "full", "extra", "0", "1", "2", "3"),
    }

    def known_params(self) -> frozenset[str]:
        return self.common_params | {"dbpath", "journal_mode", "synchronous", "timeout"}

    def __init__(self, params: Mapping[str, Any]) -> None:
        super().__init__(params)
        url = self.params.pop("url", None)
        if url is not None:
            self.params.setdefault("dbpath", _dbpath_of_url(str(url)))
        self.params.setdefault("dbpath", "sqltrack.db")
        if not _in_memory(str(self.params["dbpath"])):
            self.params["dbpath"] = os.path.expanduser(str(self.params["dbpath"]))
        self._wal_asked = "journal_mode" in self.params
        self._journal_checked = False
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
        self._check_file()
        try:
            conn = sqlite3.connect(
                str(self.params["dbpath"]), timeout=self.timeout, isolation_level="IMMEDIATE"
            )
        except sqlite3.Error as e:
            error = ConnectionFailed(f"cannot open SQLite database {self.describe()}: {e}")
            error.kind = "permanent"
            raise error from None
        if not self._journal_checked:
            self._check_filesystem()
        try:
            # values checked against _pragma_values above
            conn.execute(f"PRAGMA journal_mode = {self.params['journal_mode']}")
            conn.execute(f"PRAGMA synchronous = {self.params['synchronous']}")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as e:
            conn.close()
            raise ConnectionFailed(f"cannot open SQLite database {self.describe()}: {e}") from None
        return conn

    def _check_file(self) -> None:
        """A database that is not there is created by ``setup`` only (a read in the wrong
        directory must not leave an empty file behind), readable by its owner only (it
        holds run data: args, env; journal and WAL files take its mode). A file that
        exists keeps the mode it has: ``chmod g+r`` it to share it."""
        dbpath = str(self.params["dbpath"])
        if _in_memory(dbpath) or os.path.exists(dbpath):
            return
        where = Path(dbpath).absolute()
        if not self.create_if_missing:
            missing = "" if where.parent.is_dir() else f" (nor its directory {where.parent})"
            raise _no_database(
                f"there is no SQLite database at {where}{missing}: run `sqltrack setup` to "
                "create one, or give the dbpath of yours (a relative one is relative to the "
                "working directory)"
            )
        if not where.parent.is_dir():
            raise _no_database(
                f"cannot create the SQLite database {where}: the directory {where.parent} "
                "does not exist"
            )
        try:
            os.close(os.open(dbpath, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass
        except OSError as e:
            raise _no_database(f"cannot create the SQLite database {where}: {e.strerror}") from None

    def _check_filesystem(self) -> None:
        """WAL keeps an index in shared memory, which hosts of a network filesystem do
        not share: refuse WAL asked for there; fall back from the default with a warning."""
        self._journal_checked = True
        if self.params["journal_mode"] != "wal":
            return
        fstype = network_filesystem(Path(str(self.params["dbpath"])).resolve().parent)
        if fstype is None:
            return
        if self._wal_asked:
            raise ConfigError(
                f"journal_mode=wal is unsafe for {self.describe()}: it is on a {fstype} "
                "network filesystem, where WAL's shared memory is not shared between "
                "hosts; use journal_mode=delete, or a database on a local disk"
            )
        warn(
            f"{self.describe()} is on a {fstype} network filesystem: using "
            "journal_mode=delete instead of WAL (set journal_mode to silence this)"
        )
        self.params["journal_mode"] = "delete"

    def shell(self) -> tuple[list[str], dict[str, str]]:
        return ["sqlite3", str(self.params["dbpath"])], {}

    def describe(self) -> str:
        return f"dbpath={self.params['dbpath']}"

    def identity(self) -> str:
        return f"dbpath={Path(self.params['dbpath']).resolve()}"

    # -- statements -----------------------------------------------------------------------

    def sql(self, query: str) -> str:
        return query  # sqlite3 reads :name itself

    def positional(self, query: str) -> str:
        return convert_placeholders(query, "", "?", "%")

    def adapt_datetime(self, dt: datetime) -> Any:
        # UTC text sorts in time order and is understood by SQLite's date functions.
        return dt.astimezone(timezone.utc).isoformat(sep=" ")

    def python_value(self, value: Any, kind: str | None) -> Any:
        if value is None:
            return None
        if kind == "datetime" and isinstance(value, str):
            dt = datetime.fromisoformat(value)
            return dt if dt.tzinfo is not None else dt.replace(tzinfo=timezone.utc)
        if kind == "bool" and isinstance(value, int):
            return bool(value)
        if kind == "json" and isinstance(value, str):
            return json.loads(value)
        return value

    def in_array(self, column: str, param: str) -> str:
        # column and param are sqltrack's own names, never a caller's
        return f"{column} IN (SELECT value FROM json_each(:{param}))"  # noqa: S608

    def adapt_array(self, values: Sequence[Any]) -> Any:
        return json.dumps(list(values))

    def array_rows(self, param: str) -> str:
        return f"SELECT value FROM json_each(:{param})"  # noqa: S608 (our own name)

    def json_has_key(self, column: str, param: str) -> str:
        # column and param are sqltrack's own names, never a caller's
        return f"EXISTS (SELECT 1 FROM json_each({column}) WHERE key = :{param})"  # noqa: S608

    def json_contains(self, column: str, param: str) -> str:
        # every key of the wanted object, with an equal value (compared as minified JSON);
        # column and param are sqltrack's own names, never a caller's
        want = f"json_each(:{param}) AS want"
        have = f"json_each({column}) AS have"
        same = "have.type = want.type AND json_quote(have.value) = json_quote(want.value)"
        return (
            f"NOT EXISTS (SELECT 1 FROM {want} WHERE NOT EXISTS ("  # noqa: S608
            f"SELECT 1 FROM {have} WHERE have.key = want.key AND {same}))"
        )

    def execute_committed(self, conn: Any, statement: str, params: Any) -> None:
        # One statement is its own transaction in autocommit mode: sqlite3 then neither
        # parses a BEGIN IMMEDIATE before it nor a COMMIT after it (~4 us of a ~15 us step).
        if conn.in_transaction:
            super().execute_committed(conn, statement, params)
            return
        conn.isolation_level = None
        try:
            conn.execute(statement, params)
        finally:
            conn.isolation_level = "IMMEDIATE"
        if conn.in_transaction:  # (a wrapped connection that kept its transaction)
            conn.commit()

    def max_params(self, conn: Any) -> int:
        # sqlite3 releases the GIL around each row it steps: row by row (executemany), a
        # background writer waits for the GIL again after every row while the training
        # loop runs. One statement of many rows steps once, and costs less per row too.
        if hasattr(conn, "getlimit"):  # Python >= 3.11
            return int(conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))
        return 32766 if sqlite3.sqlite_version_info >= (3, 32) else 999

    def lock_row_sql(self, table: str, column: str) -> str:
        # SQLite has no row locks: a no-op UPDATE takes the database write lock.
        table, column = quote_identifier(table), quote_identifier(column)
        return f"UPDATE {table} SET id = id WHERE id = :id RETURNING {column}"  # noqa: S608

    # -- transactions and scripts -----------------------------------------------------------

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

    # -- metric columns -----------------------------------------------------------------------

    def metric_columns(self, cursor: Any) -> dict[str, str | None]:
        cursor.execute(_METRIC_COLUMNS)
        return {name: kind_of_type(dtype) for name, dtype in cursor.fetchall()}

    def long_value(self, column: str, kind: str) -> tuple[str, str]:
        return {
            "float": (column, "NULL"),
            "int": (f"CAST({column} AS REAL)", "NULL"),
            "bool": (f"CASE WHEN {column} THEN 1.0 ELSE 0.0 END", "NULL"),
            "str": ("NULL", column),
            "datetime": (f"(julianday({column}) - 2440587.5) * 86400.0", column),
        }[kind]

    def replace_view(self, cursor: Any, name: str, select: str) -> None:
        self.begin(cursor)
        cursor.execute(f"DROP VIEW IF EXISTS {quote_identifier(name)}")
        cursor.execute(f"CREATE VIEW {quote_identifier(name)} AS {select}")

    def add_column_sql(self, name: str, kind: str) -> str:
        # no IF NOT EXISTS in SQLite: a concurrent creator makes this fail, see is_duplicate_column
        return f"ALTER TABLE metrics ADD COLUMN {quote_identifier(name)} {self.column_types[kind]}"

    # -- recognising the driver's errors ----------------------------------------------------

    def classify_driver_error(self, exc: BaseException) -> str:
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None:
            kind = RESULT_KINDS.get(code & 0xFF)
            return kind[0] if kind is not None else PERMANENT
        text = str(exc).lower()
        for retry, message in RESULT_KINDS.values():
            if message in text:
                return retry
        return PERMANENT

    def error_code(self, exc: BaseException) -> str | None:
        name = getattr(exc, "sqlite_errorname", None)
        return None if name is None else str(name)

    def is_permission_error(self, exc: BaseException) -> bool:
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None:
            return bool(code & 0xFF == 8)  # SQLITE_READONLY
        return "readonly database" in str(exc)

    def is_duplicate_column(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.OperationalError) and "duplicate column" in str(exc)

    def is_foreign_key_violation(self, exc: BaseException) -> bool:
        return _constraint(exc, "FOREIGNKEY", "FOREIGN KEY")

    def is_unique_violation(self, exc: BaseException) -> bool:
        return _constraint(exc, "UNIQUE", "UNIQUE") or _constraint(exc, "PRIMARYKEY", "UNIQUE")

    def is_missing_table(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.OperationalError) and "no such table" in str(exc)

    def column_limit_error(self, exc: BaseException) -> str | None:
        if isinstance(exc, sqlite3.OperationalError) and "too many columns" in str(exc):
            return "the metrics table has reached SQLite's limit of 2000 columns"
        return None


#: filesystem types (as in /proc/self/mounts) whose hosts do not share memory maps
NETWORK_FILESYSTEMS = frozenset(
    {"nfs", "nfs4", "lustre", "gpfs", "cifs", "smb3", "smbfs", "ceph", "glusterfs", "beegfs"}
)


def network_filesystem(folder: Path, mounts: str = "/proc/self/mounts") -> str | None:
    """The type of the network filesystem ``folder`` is on (the longest mount point that
    contains it), or None: a local one, or no mount table to read (not Linux)."""
    try:
        table = Path(mounts).read_text()
    except OSError:
        return None
    best, fstype = "", None
    for line in table.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = str(folder) == point or str(folder).startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, fstype = point, fields[2]
    if fstype is None:
        return None
    base = fstype.split(".")[-1]  # fuse.glusterfs, fuse.ceph ...
    return fstype if fstype in NETWORK_FILESYSTEMS or base in NETWORK_FILESYSTEMS else None


def read_foreign(path: Path, queries: Sequence[tuple[str, Mapping[str, Any]]]) -> list[list[Any]]:
    """The rows of ``queries`` on a SQLite file that is not sqltrack's (another tool's,
    an import's source), opened read-only: of a file in a folder this user cannot write
    to (the side files of WAL mode cannot be made there), as immutable.

    :raises InvalidValue: the file is no SQLite database, or a query fails on it
    """
    uri = f"file:{quote(str(path))}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=10)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError:
            conn.close()
            conn = sqlite3.connect(uri + "&immutable=1", uri=True)
        try:
            return [conn.execute(sql, dict(params)).fetchall() for sql, params in queries]
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        raise InvalidValue(f"{path}: {e}") from None


def _no_database(message: str) -> ConnectionFailed:
    error = ConnectionFailed(message)
    error.kind = "permanent"  # nobody will make the file for us
    return error


def _in_memory(dbpath: str) -> bool:
    return dbpath == ":memory:" or dbpath.startswith("file:")


def _constraint(exc: BaseException, errorname: str, message: str) -> bool:
    """An IntegrityError of this constraint: by ``sqlite_errorname`` (Python >= 3.11),
    else by its message."""
    if not isinstance(exc, sqlite3.IntegrityError):
        return False
    name = getattr(exc, "sqlite_errorname", None)
    if name is not None:
        return bool(name == f"SQLITE_CONSTRAINT_{errorname}")
    return message in str(exc)


def _dbpath_of_url(url: str) -> str:
    """``sqlite:///relative.db`` -> ``relative.db``; ``sqlite:////abs.db`` -> ``/abs.db``."""
    if not url.lower().startswith(_URL_PREFIX) or len(url) == len(_URL_PREFIX) or "?" in url:
        raise ConfigError(
            f"invalid SQLite url {redact(url)!r}: give sqlite:///relative/path.db or "
            "sqlite:////absolute/path.db"
        )
    return unquote(url[len(_URL_PREFIX) :])


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


ENGINE = SQLiteEngine
