"""The reentrant :class:`Client`: one connection and one transaction per ``with`` stack."""

from __future__ import annotations

import functools
import logging
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from .._base import process as _process
from ..errors import (
    ConnectionFailed,
    ConnectionLost,
    LockTimeout,
    PermissionDenied,
    SchemaError,
    SQLTrackError,
)
from .config import load_config
from .engines import get_engine
from .engines.base import BUSY, LOST, PERMANENT, POOLER, RETRIED, Engine, first_line
from .retries import announced, retry_window, unprepare

log = logging.getLogger("sqltrack")
_MAX_BACKOFF = 2.0  # seconds between two attempts, at most (before jitter)
F = TypeVar("F", bound=Callable[..., Any])

# Connections inherited through fork() are parked here and never used or closed in the
# child: closing one would end the parent's session on the shared socket (psycopg itself
# already skips that when such a connection is garbage-collected after a fork).
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

    A client is not thread-safe: give each thread its own. After ``fork()`` the child
    never touches the parent's connection; it opens its own when it needs one.

    sqltrack's own modules use a few more members, documented each: :meth:`query`,
    :meth:`hold`, :meth:`release`, :meth:`run_operation`, :meth:`discard`, :attr:`in_block`,
    :attr:`in_user_block`, :attr:`metrics_cache` and :attr:`schema_cache`.

    :param config: config dict, or path of a config file (see :mod:`sqltrack._db.config`).
    :param kwargs: connection parameters; they take priority over everything else.
    :raises ConfigError: unknown engine, invalid parameter, or a named config file is missing.
    """

    def __init__(
        self, config: Mapping[str, Any] | str | os.PathLike[str] | None = None, **kwargs: Any
    ) -> None:
        self._setup(get_engine(load_config(config, **kwargs)))

    @classmethod
    def of(cls, **params: Any) -> Client:
        """A client of exactly these parameters: no config file, no ``SQLTRACK_*``
        environment variables (what sqltrack uses for its own second connections).

        Example::

            spare = Client.of(**client.engine.params)
        """
        client = cls.__new__(cls)
        client._setup(get_engine({k: v for k, v in params.items() if v is not None}))
        return client

    def _setup(self, engine: Engine) -> None:
        self.engine: Engine = engine
        self._conn: Any = None
        self._depth = 0
        self._held = 0
        self._pid = _process.pid
        self._ever_connected = False
        self._in_operation = False
        self._in_user_block = False  # the running operation is inside a user's block
        #: what :mod:`sqltrack._write.metrics` knows of the metrics table (its columns), or None
        #: when unknown: forgotten whenever a transaction that may have added columns is
        #: rolled back or a connection is lost
        self.metrics_cache: Any = None
        #: the schema scripts applied to the database, as :func:`sqltrack._db.schema.applied`
        #: first read them (None: not read yet); :func:`~sqltrack.setup` renews it
        self.schema_cache: frozenset[str] | None = None

    def __repr__(self) -> str:
        state = "connected" if self._conn is not None else "not connected"
        return f"<sqltrack.Client {self.engine.name} {self.engine.describe()} ({state})>"

    # -- connection management -------------------------------------------------------

    def _connection(self) -> Any:
        if self._pid != _process.pid:  # forked: never touch the parent's connection
            if self._conn is not None:
                _inherited.append(self._conn)
            self._conn, self._depth, self._held, self._pid = None, 0, 0, _process.pid
        if self._conn is None:
            if self._in_operation or self._depth:
                self._conn = self.engine.connect()  # the operation retries, or nobody may
            else:  # connecting has no side effects: retried as an operation's would be
                self._conn = self.run_operation(self.engine.connect)
            self._ever_connected = True
        return self._conn

    def _close(self) -> None:
        """Close the connection (nothing is committed)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def __enter__(self) -> Any:
        conn = self._connection()
        self._depth += 1
        return conn

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._pid != _process.pid:
            return
        # never below 0: a forked child may leave a block it inherited from its parent
        self._depth = max(0, self._depth - 1)
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
        self.metrics_cache = None  # columns added in the transaction are gone
        try:
            self._conn.rollback()
        except Exception:
            self._close()

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Keep the connection open across outermost blocks (each still commits at its end).

        ``run.track()`` holds its client's connection while the run logs fast; see
        :meth:`release`.
        """
        self._held += 1
        try:
            yield
        finally:
            self._held -= 1
            if not self._held and not self._depth and self._pid == _process.pid:
                self._close()

    def run_operation(
        self, fn: Callable[..., Any], *args: Any, within: float | None = None, **kwargs: Any
    ) -> Any:
        """Call ``fn(*args, **kwargs)`` as one sqltrack operation; see :func:`operation`.

        Nested in another operation it is simply called (the outer one retries).

        :param within: retry for at most this many seconds (the engine's windows are the
            limit otherwise); how ``track()`` hands a step over to its background writer
            instead of making the training loop wait
        """
        if self._in_operation:  # nested in another operation: that one retries
            return fn(*args, **kwargs)
        in_user_block = self._depth > 0
        started = time.monotonic()
        delay = 0.05
        warned = False
        self._in_operation = True
        self._in_user_block = in_user_block
        try:
            while True:
                try:
                    return fn(*args, **kwargs)
                except Exception as e:
                    kind = self.engine.classify(e)
                    if kind is None or kind not in RETRIED:
                        if kind == PERMANENT and not isinstance(e, SQLTrackError):
                            raise self.engine.refused(e) from e
                        raise
                    at_once = kind == POOLER and unprepare(self.engine, e)
                    window = retry_window(self.engine, e, kind, self._ever_connected)
                    if within is not None:
                        window = min(window, within)
                    reason = first_line(e)
                    where = self.engine.describe()
                    if in_user_block:
                        if kind != LOST:
                            raise  # the block's transaction is gone; the error says why
                        raise ConnectionLost(
                            f"lost the connection to {where} inside a `with client:` block; "
                            f"its uncommitted work is gone and cannot be replayed ({reason})"
                        ) from e
                    self.discard()
                    now = time.monotonic()
                    deadline = started + window
                    if now >= deadline:
                        if isinstance(e, ConnectionFailed) and not self._ever_connected:
                            raise  # never connected: the connect error says it best
                        if kind != LOST and kind != BUSY:
                            raise  # (a deadlock, a full disk): its own error says it best
                        raise ConnectionLost(
                            f"lost the connection to {where} and could not reconnect within "
                            f"{window:g} s ({reason})"
                        ) from e
                    if at_once:
                        continue
                    # one line per outage, not one per attempt; a full server once per process
                    busy = kind == BUSY
                    if not warned and not (busy and announced(where)):
                        log.warning(
                            "sqltrack: %s %s (%s); retrying for up to %g s",
                            "cannot reach" if kind in (LOST, BUSY) else "trouble at",
                            where,
                            reason,
                            window,
                        )
                    warned = True
                    # jittered exponential backoff: jobs that failed together retry apart
                    time.sleep(min(delay * random.uniform(0.5, 1.0), deadline - now))
                    delay = min(delay * 2, _MAX_BACKOFF)
        finally:
            self._in_operation = self._in_user_block = False

    def is_transient(self, exc: BaseException) -> bool:
        """Whether ``exc`` is trouble that heals (decided by the engine from the driver's
        error codes, :meth:`Engine.classify`): a connection that failed or broke, a full
        server, a deadlock, a lock held too long (:class:`LockTimeout`), a full disk, a
        failover. Everything else is permanent: retrying it cannot help. ``track()``
        hands a step that met a transient error to its background writer, which spools
        it if the trouble lasts."""
        if isinstance(exc, LockTimeout):
            return True
        return self.engine.classify(exc) in RETRIED

    def commit_one(self, statement: str, params: Sequence[Any]) -> bool:
        """Execute one idempotent statement (in the driver's style) and commit it, on the
        connection held (:meth:`hold`) outside any block and operation: a fast run's steady
        state, without an operation's machinery. False if that is not the state, or after
        rolling back a failure: the caller then goes the general way (retries, errors)."""
        conn = self._conn
        if conn is None or self._depth or self._in_operation or not self._held:
            return False
        if self._pid != _process.pid:
            return False
        try:
            self.engine.execute_committed(conn, statement, params)
        except Exception as e:
            if self.engine.classify(e) == POOLER and unprepare(self.engine, e):
                self.discard()  # (prepared statements belong to the connection)
            else:
                self._rollback_quietly()
            return False
        return True

    def release(self) -> None:
        """Give a server connection back: close it unless a block is open, even while it
        is held (see :meth:`hold`); the next block connects again. Does nothing where
        connections are not scarce (``engine.scarce_connections``: SQLite keeps its
        file open). How a tracked run that logs slowly frees its slot between steps."""
        if (
            self._depth == 0
            and self._conn is not None
            and self._pid == _process.pid
            and self.engine.scarce_connections
        ):
            self._close()

    def discard(self) -> None:
        """Drop the connection without committing (it may be broken); the next block
        connects anew."""
        self.metrics_cache = None
        try:
            self._close()
        except Exception:
            self._conn = None

    @property
    def connected(self) -> bool:
        """Whether this client currently holds an open connection."""
        return self._conn is not None and self._pid == _process.pid

    @property
    def in_block(self) -> bool:
        """Whether a ``with client:`` block (sqltrack's or a user's) is open right now."""
        return self._depth > 0 and self.connected

    @property
    def in_user_block(self) -> bool:
        """Whether the running operation was called inside a ``with client:`` block: its
        transaction is then not sqltrack's to end."""
        return self._in_user_block

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
        self.metrics_cache = None
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

    def query(self, query: str, params: Mapping[str, Any] | None = None) -> list[Any]:
        """Execute ``query``, written with ``:name`` placeholders, on either engine.

        Example::

            rows = client.query("SELECT id FROM runs WHERE status = :status",
                                {"status": "RUNNING"})

        :return: the rows as a list of tuples; an empty list for statements without rows.
        :raises SchemaError: a table is missing (``sqltrack setup`` was not run).
        """
        with self.cursor() as cur:
            try:
                cur.execute(self.engine.sql(query), params or {})
            except Exception as e:
                if self.engine.is_missing_table(e):
                    refused = self.engine.schema_refused(cur.connection)
                    if refused is not None:
                        raise PermissionDenied(refused) from e
                    raise SchemaError(
                        f"the sqltrack tables are missing in {self.engine.describe()}: "
                        f"run `sqltrack setup` first ({str(e).splitlines()[0]})"
                    ) from e
                raise
            return cur.fetchall() if cur.description else []


def operation(fn: F) -> F:
    """Make ``fn`` (whose first argument is a Client, or has a ``.client``) one operation.

    Outside a ``with client:`` block a lost connection is replaced and the whole
    operation retried, for up to ``reconnect_timeout`` seconds (sqltrack's writes are
    idempotent: upserts, set-this-value updates, and inserts that look for the key of
    their call first); a server that is full ("too many
    clients") is retried for up to ``busy_timeout`` seconds, with jittered exponential
    backoff and one warning line. Inside a block, where the transaction
    cannot be replayed, :class:`ConnectionLost` is raised at once.
    """

    @functools.wraps(fn)
    def wrapper(target: Any, *args: Any, **kwargs: Any) -> Any:
        client = target if isinstance(target, Client) else target.client
        return client.run_operation(fn, target, *args, **kwargs)

    return wrapper  # type: ignore[return-value]
