"""Where a run's local files (spools, set-aside values) live and what they are called.

The spool directory may be shared (``$SQLTRACK_SPOOL_DIR`` on a cluster's scratch
space), so a file in it may have been put there by someone else: see
:func:`sqltrack._base.files.untrusted_because`.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .._base import process as _process

if TYPE_CHECKING:
    from .._db.client import Client


def spool_dir() -> Path:
    """The directory of spool files: ``$SQLTRACK_SPOOL_DIR``, else
    ``$XDG_CACHE_HOME/sqltrack/spool``, else ``~/.cache/sqltrack/spool``."""
    given = os.environ.get("SQLTRACK_SPOOL_DIR")
    if given:
        return Path(given).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "sqltrack" / "spool"


def target_key(client: Client) -> str:
    """A short stable name for the database ``client`` writes to (never its password)."""
    identity = f"{client.engine.name} {client.engine.identity()}"
    return hashlib.sha256(identity.encode()).hexdigest()[:10]


def new_stem(client: Client, run_id: int) -> str:
    """A new file name (without suffix) for a file of ``run_id`` in :func:`spool_dir`:
    ``<target>-run-<id>-<host>-<pid>-<ns>``, unique per process and call."""
    host = socket.gethostname().split(".")[0] or "host"
    return f"{target_key(client)}-run-{run_id}-{host}-{_process.pid}-{time.time_ns()}"
