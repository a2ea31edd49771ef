"""How long an operation retries what heals, and what it says about it (once).

The :class:`~sqltrack._db.client.Client` retries an operation that met trouble an engine
classifies as healing (:meth:`~sqltrack._db.engines.base.Engine.classify`); these decide
for how long, and keep the warnings to one per outage, one per full server per process,
and one per client for a transaction pooler.
"""

from __future__ import annotations

import logging
import threading

from ..errors import ConnectionFailed
from .engines.base import BUSY, Engine, first_line

log = logging.getLogger("sqltrack")

# Databases found full ("too many clients") in this process: said once per process, not
# once per client (a job's own client and its background writer meet the same full server).
_announced_busy: set[str] = set()
_announce_lock = threading.Lock()


def announced(where: str) -> bool:
    """Whether a full server at ``where`` was already announced in this process (and
    mark it announced): checked and marked at once, two threads may meet it together."""
    with _announce_lock:
        seen = where in _announced_busy
        _announced_busy.add(where)
        return seen


def retry_window(engine: Engine, exc: BaseException, kind: str, ever_connected: bool) -> float:
    """For how many seconds an operation that failed with a retried ``exc`` of this
    ``kind`` (see :meth:`Engine.classify`) is worth retrying.

    A full server or pooler ("too many clients"), at any time: ``busy_timeout``.
    Before a first successful connection, no server at all (refused): ``connect_timeout``
    (it may be restarting). One that does not answer in time (a pooler waiting for its
    server) is transient, as one that is starting up. Anything else that heals (a lost
    connection, a server that is starting up, a deadlock, a lock, a full disk, a
    failover): ``reconnect_timeout``.
    """
    if kind == BUSY:
        return engine.busy_timeout
    if isinstance(exc, ConnectionFailed) and not ever_connected and exc.kind != "transient":
        connect = float(engine.params.get("connect_timeout", 10))
        return min(connect, engine.reconnect_timeout)
    return engine.reconnect_timeout


def unprepare(engine: Engine, exc: BaseException) -> bool:
    """A transaction pooler (PgBouncer) lost a prepared statement: prepare none from now
    on, said once per engine; True if that is new (then retry at once)."""
    if not engine.unprepare():
        return False
    log.warning(
        "sqltrack: %s looks like a transaction pooler (%s): using unprepared statements "
        "from now on (set pgbouncer=true to say so)",
        engine.describe(),
        first_line(exc),
    )
    return True
