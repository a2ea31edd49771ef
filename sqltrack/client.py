"""The reentrant :class:`Client`: one connection and one transaction per ``with`` stack."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from .config import load_config
from .engines import Engine, get_engine
from .errors import SchemaError

__all__ = ["Client"]

# Connections inherited through fork() are parked here and never closed or collected in
# the child: closing one would end the parent's session on the shared socket.
_inherited: list[Any] = []


class Client:
    """Creates and manages database connections (``psycopg.Connection`` or ``sqlite3.Connection``).

    Connection parameters come from keyword arguments, then ``SQLTRACK_DSN_<PARAM>``
    environment variables, then the config (a dict, or a dotenv-syntax file: ``config``,
    else ``$SQLTRACK_CONFIG_PATH``, else ``./sqltrack.conf``). ``engine`` is ``"postgres"``
    (default) or ``"sqlite"``. For SQLite only ``dbpath`` matters (default ``sqltrack.db``).
    For PostgreSQL any libpq parameter works (``host``, ``port``, ``user`` (default
    ``$USER``), ``dbname`` (default: the user), ``password`` …), plus ``schema``, which
    sets the ``search_path``.

    Use the client as a context manager to get the connection. Nested ``with`` blocks
    reuse the same connection and the same transaction: it is committed when the
    outermost block ends, and rolled back if that block raises. Outside any block each
    call connects, commits and closes, so an idle job holds no server connection.

    Example::

        client = Client(engine="sqlite", dbpath="experiments.db")
        with client as conn:           # connects
            with client.cursor() as cursor:   # same connection
                cursor.execute("SELECT count(*) FROM runs")
        # committed and closed here

    :param config: config dict, or path of a config file (see :mod:`sqltrack.config`).
    :param kwargs: connection parameters; they take priority over everything else.
    :raises ConfigError: unknown engine, invalid parameter, or a named config file is missing.
    """

    def __init__(
        self, config: Mapping[str, Any] | str | os.PathLike[str] | None = None, **kwargs: Any
    ) -> None:
        self.engine: Engine = get_engine(load_config(config, **kwargs))
        self._conn: Any = None
        self._depth = 0
        self._held = 0
        self._pid = os.getpid()
        #: metric column name -> kind, cached per client (see sqltrack.metrics)
        self._metric_columns: dict[str, str | None] | None = None

    def __repr__(self) -> str:
        state = "connected" if self._conn is not None else "not connected"
        return f"<sqltrack.Client {self.engine.name} {self.engine.describe()} ({state})>"

    # -- connection management -------------------------------------------------------

    def _connection(self) -> Any:
        if self._pid != os.getpid():  # forked: never touch the parent's connection
            if self._conn is not None:
                _inherited.append(self._conn)
            self._conn, self._depth, self._held, self._pid = None, 0, 0, os.getpid()
        if self._conn is None:
            self._conn = self.engine.connect()
        return self._conn

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def __enter__(self) -> Any:
        conn = self._connection()
        self._depth += 1
        return conn

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._pid != os.getpid():
            return
        self._depth -= 1
        if self._depth > 0 or self._conn is None:  # None: discarded by a failure path
            return
        try:
            if exc_type is None:
                self._conn.commit()
            else:
                self._rollback_quietly()
        finally:
            if not self._held:
                self._close()

    def _rollback_quietly(self) -> None:
        """Roll back without hiding the exception that is already on its way up."""
        self._metric_columns = None  # columns added in the transaction are gone
        try:
            self._conn.rollback()
        except Exception:
            self._close()

    @contextmanager
    def _keep_open(self) -> Iterator[None]:
        """Keep the connection open across outermost blocks (each still commits at its end)."""
        self._held += 1
        try:
            yield
        finally:
            self._held -= 1
            if not self._held and not self._depth and self._pid == os.getpid():
                self._close()

    @property
    def connected(self) -> bool:
        """Whether this client currently holds an open connection."""
        return self._conn is not None and self._pid == os.getpid()

    # -- the reference API -------------------------------------------------------------

    def commit(self) -> None:
        """Commit the current transaction. Raises ``RuntimeError`` when not connected."""
        if not self.connected:
            raise RuntimeError("cannot commit: the client is not connected")
        self._conn.commit()

    def rollback(self) -> None:
        """Roll back the current transaction. Raises ``RuntimeError`` when not connected."""
        if not self.connected:
            raise RuntimeError("cannot roll back: the client is not connected")
        self._metric_columns = None
        self._conn.rollback()

    @contextmanager
    def cursor(self) -> Iterator[Any]:
        """Connect if necessary and return a cursor; use it in a ``with`` statement.

        Example::

            with client.cursor() as cursor:
                cursor.execute("SELECT id, name FROM experiments")
                rows = cursor.fetchall()

        The block is a client block: outermost, it commits (or rolls back) and closes.
        """
        with self as conn:
            cur = conn.cursor()
            try:
                yield cur
            finally:
                cur.close()

    def execute(self, sql: str, parameters: Sequence[Any] | Mapping[str, Any] = ()) -> list[Any]:
        """Connect if necessary, execute ``sql`` and return the rows it produced.

        ``sql`` is passed to the driver as it is, so use its placeholders: ``%s`` or
        ``%(name)s`` for psycopg, ``?`` or ``:name`` for sqlite3.

        :return: the rows as a list of tuples; an empty list for statements without rows.
        """
        with self.cursor() as cur:
            if parameters:
                cur.execute(sql, parameters)
            else:
                cur.execute(sql)
            return cur.fetchall() if cur.description else []

    def executemany(self, sql: str, seq_of_parameters: Iterable[Any]) -> None:
        """Connect if necessary and call ``executemany`` with the given parameters."""
        with self.cursor() as cur:
            cur.executemany(sql, seq_of_parameters)

    def executescript(self, sql_script: str) -> None:
        """Connect if necessary and execute a script of several statements.

        Unlike ``sqlite3.executescript`` this never commits on its own: the script runs in
        the client's transaction, so it is rolled back as a whole if any statement fails.
        """
        with self.cursor() as cur:
            self.engine.run_script(cur, sql_script)

    # -- helpers for sqltrack's own SQL (":name" placeholders) --------------------------

    def _query(self, query: str, params: Mapping[str, Any] | None = None) -> list[Any]:
        """Run one of sqltrack's statements; missing tables become a :class:`SchemaError`."""
        with self.cursor() as cur:
            try:
                cur.execute(self.engine.sql(query), params or {})
            except Exception as e:
                _raise_if_missing_schema(e, self)
                raise
            return cur.fetchall() if cur.description else []


def _raise_if_missing_schema(exc: Exception, client: Client) -> None:
    text = str(exc)
    missing = (isinstance(exc, sqlite3.OperationalError) and "no such table" in text) or (
        type(exc).__name__ == "UndefinedTable"
    )
    if missing:
        raise SchemaError(
            f"the sqltrack tables are missing in {client.engine.describe()}: "
            f"run `sqltrack setup` first ({text.splitlines()[0]})"
        ) from exc
