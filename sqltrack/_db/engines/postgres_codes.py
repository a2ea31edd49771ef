"""What PostgreSQL's answers mean for a retry: the SQLSTATE table, and the texts of the
errors libpq reports while connecting (before a SQLSTATE is available). Data only; the
engine (:mod:`sqltrack._db.engines.postgres`) reads it."""

from __future__ import annotations

from .base import BUSY, LOST, POOLER, TRANSIENT

# What a server that is restarting answers while a connection is being made; libpq
# reports it as text only (e.g. SQLSTATE 57P03 is not available before the connection).
TRANSIENT_SERVER_STATES = (
    # no answer within connect_timeout: a server or pooler that is there but slow, e.g.
    # PgBouncer holding every login for server_login_retry (15 s) after its server restarted
    "timeout expired",
    "pgbouncer cannot connect to server",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "the database system is not yet accepting connections",
)

# A full server (SQLSTATE 53300 too_many_connections, reported as text while connecting)
# or a full PgBouncer (max_client_conn): a retry a little later will get a slot.
BUSY_REASONS = (
    "too many clients already",
    "remaining connection slots are reserved",
    "too many connections for",  # ... role "x" / database "y" (CONNECTION LIMIT)
    "no more connections allowed",  # PgBouncer: max_client_conn
    # a local socket whose listen queue is full: more jobs connect at once than the
    # server accepts (connect() says EAGAIN on a Unix socket where TCP would wait)
    "resource temporarily unavailable",
)

# Configuration errors while connecting: retrying cannot help.
PERMANENT_REASONS = (
    "authentication failed",
    "does not exist",  # database or role
    "no password supplied",
    "could not translate host name",
    "no pg_hba.conf entry",
    "invalid ",  # invalid connection option / sslmode value ...
)

# What each SQLSTATE means for a retry: the full code first, then its class (the first
# two characters); every other SQLSTATE is permanent: data exceptions (22), integrity
# (23), syntax and access rules (42, "permission denied" and "must be owner" among them),
# program limits (54: "row is too big"), ... Tested row by row (tests/test_engines.py).
SQLSTATE_KINDS = {
    "08": LOST,  # connection exception (PgBouncer reports its own troubles as 08P01)
    "57P01": LOST,  # admin_shutdown: the server is shutting down
    "57P02": LOST,  # crash_shutdown
    "57P03": LOST,  # cannot_connect_now: starting up
    "57P05": LOST,  # idle_session_timeout: the server closed the session
    "25006": LOST,  # read_only_sql_transaction: a standby after a failover; reconnect
    "53300": BUSY,  # too_many_connections
    "53": TRANSIENT,  # insufficient resources: disk full, out of memory
    "40001": TRANSIENT,  # serialization_failure
    "40P01": TRANSIENT,  # deadlock_detected
    "55P03": TRANSIENT,  # lock_not_available (lock_timeout)
    "42P05": POOLER,  # duplicate_prepared_statement: a transaction pooler's other client's
    "26000": POOLER,  # invalid_sql_statement_name: a prepared statement of another server
}
