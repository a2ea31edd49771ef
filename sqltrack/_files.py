"""sqltrack's own local files (spools, set-aside values): where they live, what they are
called, how they are created (readable by their owner only), and whether a file found
there may be trusted.

A spool directory may be shared (``$SQLTRACK_SPOOL_DIR`` on a cluster's scratch space),
so a file in it may have been put there by someone else: :func:`untrusted_because` says
why sqltrack should not act on it (another owner, a directory others can write).
"""

from __future__ import annotations

import hashlib
import os
import socket
import stat
import time
from pathlib import Path
from typing import TYPE_CHECKING

from . import _process

if TYPE_CHECKING:
    from .client import Client

#: the mode of files sqltrack creates that hold run data (spools, set-aside values,
#: SQLite databases, reports): readable and writable by their owner only
PRIVATE_MODE = 0o600


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


def private_folder(folder: Path) -> Path:
    """Create ``folder`` (and its parents) if missing, the last one for its owner only."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


def append_private(path: Path, text: str) -> None:
    """Append ``text`` to ``path``, creating it readable by its owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE_MODE)
    with os.fdopen(fd, "a", encoding="utf-8") as f:
        f.write(text)


def write_private(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path``: a new file is readable by its owner only; a file that
    exists keeps the mode its owner gave it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def untrusted_because(path: Path) -> str | None:
    """Why a file found in a spool directory must not be acted on, or None if it may:
    it must be a regular file (not a link) of the user running sqltrack that no one else
    may write, in a directory of that user that no one else may write."""
    me = os.geteuid() if hasattr(os, "geteuid") else None
    try:
        info = os.lstat(path)
        folder = os.stat(path.parent)
    except OSError as e:
        return f"cannot read it ({e.strerror})"
    if not stat.S_ISREG(info.st_mode):
        return "it is not a regular file"
    if me is None:  # Windows: no owners to compare
        return None
    if info.st_uid != me:
        return f"it belongs to {_user(info.st_uid)}, not to {_user(me)}"
    if info.st_mode & 0o022:
        return "other users may write it"
    if folder.st_uid != me:
        return f"its directory belongs to {_user(folder.st_uid)}, not to {_user(me)}"
    if folder.st_mode & 0o022:
        return "other users may write its directory"
    return None


def _user(uid: int) -> str:
    try:
        import pwd

        return f"user {pwd.getpwuid(uid).pw_name!r}"
    except (ImportError, KeyError):
        return f"uid {uid}"
