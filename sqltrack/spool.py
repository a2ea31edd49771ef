"""The offline spool: where a tracked run's writes wait while the database cannot be reached.

When the background writer of ``track()`` cannot write for :attr:`MetricsBuffer.spool_after
<sqltrack.buffer.MetricsBuffer.spool_after>` seconds (no server, a full server, a
restart, a full disk on the server), it appends what it holds to a **spool file** and the
job goes on. The writer pushes the spool to the database as soon as it answers again, in
order, and removes the file; whatever is left when the job ends (or dies) is pushed by
the next ``track()`` of the same run or by ``sqltrack sync``.

A spool file is a small SQLite database of its own, one per run and process, in
:func:`spool_dir` (``$SQLTRACK_SPOOL_DIR``, else ``$XDG_CACHE_HOME/sqltrack/spool``, else
``~/.cache/sqltrack/spool``), named ``<target>-run-<id>-<host>-<pid>.spool`` where
``<target>`` is a short hash of the database it is meant for (no password in it). It
holds ``entries`` in the order they were made:

- ``rows``: a batch of metric rows (as ``add_metrics`` calls);
- ``updated``: a run's ``time_updated`` (heartbeats are recorded with their time);
- ``state``: a status with its ``time_started`` and ``time_updated`` (e.g. the final
  ``COMPLETED``).

Pushing is idempotent: metric rows are upserts, and a time or status is only written if
it is not older than what the run has (a spool pushed late never undoes a newer state).
An entry is deleted from the spool after the database committed it, so a push that is
interrupted is simply repeated. One process pushes a file at a time (a lock file beside
it).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from . import _process
from .client import Client
from .engines import LOCAL_ENGINE, first_line
from .errors import InvalidValue, SchemaError, SQLTrackError
from .metric_values import Row
from .metrics import write_rows
from .runs import check_status
from .summaries import catch_up

try:
    import fcntl
except ImportError:  # Windows: one process per spool file is up to the user
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "Spool",
    "SpoolBusy",
    "SyncResult",
    "is_spool",
    "spool_dir",
    "spool_files",
    "sync_spools",
    "target_key",
]

log = logging.getLogger("sqltrack")
SUFFIX = ".spool"
_FORMAT = "1"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS spool_entries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('rows', 'updated', 'state')),
    data TEXT NOT NULL
);
"""
_SET_UPDATED = (
    "UPDATE runs SET time_updated = :updated WHERE id = :id "
    "AND (time_updated IS NULL OR time_updated <= :updated) RETURNING id"
)
_SET_STATE = (
    "UPDATE runs SET status = :status, time_started = COALESCE(:started, time_started), "
    "time_updated = COALESCE(:updated, time_updated) WHERE id = :id "
    "AND (time_updated IS NULL OR time_updated <= COALESCE(:updated, time_updated)) "
    "RETURNING id"
)
_APPEND = "INSERT INTO spool_entries (kind, data) VALUES (:kind, :data)"
_PUSH_ENTRIES = 64  # entries per transaction while pushing


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


def spool_files(client: Client | None = None, run_id: int | None = None) -> list[Path]:
    """Spool files in :func:`spool_dir`, oldest first; only those meant for ``client``'s
    database and for ``run_id`` when given."""
    prefix = f"{target_key(client)}-" if client is not None else ""
    middle = f"-run-{run_id}-" if run_id is not None else "-run-"
    try:
        found = [
            p
            for p in spool_dir().iterdir()
            if p.name.startswith(prefix) and middle in p.name and p.name.endswith(SUFFIX)
        ]
    except FileNotFoundError:
        return []
    return sorted(found, key=lambda p: (p.stat().st_mtime, p.name))


def is_spool(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a spool file (not, say, a whole sqltrack SQLite database)."""
    try:
        Spool(path).close()
    except Exception:
        return False
    return True


def _open(path: Path) -> Client:
    # a rollback journal: safe on network filesystems, and one writer per file anyway
    return Client.of(
        engine=LOCAL_ENGINE, dbpath=str(path), journal_mode="delete", synchronous="full"
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} in a spooled row")


class SpoolBusy(SQLTrackError):
    """Another process has the spool file: the job that writes it is still running."""


class Spool:
    """One spool file. :meth:`create` makes a new one for a run; ``Spool(path)`` opens one."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._client = _open(self.path)
        self._lock: Any = None
        if not self.path.is_file():
            raise SQLTrackError(f"no spool file {self.path}")
        try:
            meta = dict(self._client.query("SELECT key, value FROM spool_meta"))
        except SchemaError:
            raise SQLTrackError(f"{self.path} is not a spool file") from None
        if meta.get("format") != _FORMAT:
            raise SQLTrackError(f"{self.path} is not a spool file of this sqltrack version")
        #: the run the entries belong to
        self.run_id = int(meta["run_id"])
        #: the database they are meant for, as sqltrack describes it (no password)
        self.target = meta["target"]
        self.target_key = meta["target_key"]

    @classmethod
    def create(cls, client: Client, run_id: int) -> Spool:
        """A new, empty spool file for ``run_id`` of ``client``'s database."""
        folder = spool_dir()
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = target_key(client)
        host = socket.gethostname().split(".")[0] or "host"
        path = folder / f"{key}-run-{run_id}-{host}-{_process.pid}-{time.time_ns()}{SUFFIX}"
        spool = _open(path)
        with spool:
            spool.executescript(_SCHEMA)
            meta = {
                "format": _FORMAT,
                "run_id": str(run_id),
                "target": f"{client.engine.label} {client.engine.describe()}",
                "target_key": key,
                "created": datetime.now().astimezone().isoformat(),
                "host": socket.gethostname(),
                "pid": str(_process.pid),
            }
            for key, value in meta.items():
                spool.query("INSERT INTO spool_meta VALUES (:k, :v)", {"k": key, "v": value})
        created = cls(path)
        created.lock()
        return created

    def __repr__(self) -> str:
        return f"<sqltrack.Spool run {self.run_id} {self.path}>"

    # -- appending -------------------------------------------------------------------------

    def _append(self, entries: list[tuple[str, Any]]) -> None:
        params = [
            {"kind": kind, "data": json.dumps(data, default=_json_default)}
            for kind, data in entries
        ]
        with self._client:
            for p in params:
                self._client.query(_APPEND, p)

    def append(self, rows: list[Row], events: list[tuple[str, Any]]) -> None:
        """Append rows, then ``("updated", datetime)`` / ``("state", (status, datetime))``
        events, in one transaction: committed when this returns."""
        entries: list[tuple[str, Any]] = [("rows", [list(r) for r in rows])] if rows else []
        for kind, value in events:
            if kind == "state":
                entries.append((kind, [check_status(value[0]), *value[1:]]))
            else:
                entries.append((kind, value))
        if entries:
            self._append(entries)

    def pending(self) -> int:
        """How many entries wait to be pushed."""
        return int(self._client.query("SELECT count(*) FROM spool_entries")[0][0])

    # -- pushing -----------------------------------------------------------------------------

    def lock(self) -> bool:
        """Take the file for this process, without waiting; False if another has it.

        The process that writes a spool keeps it locked until it has pushed and removed
        it, so ``sqltrack sync`` never pushes (or removes) the spool of a running job."""
        if self._lock is not None:
            return True
        f = open(self.path.with_name(self.path.name + ".lock"), "a")
        if fcntl is not None:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                f.close()
                return False
        self._lock = f
        return True

    def unlock(self) -> None:
        """Let other processes push the file (closing it releases the lock)."""
        f, self._lock = self._lock, None
        if f is not None:
            f.close()

    def push(self, client: Client, within: float | None = None) -> int:
        """Write every entry to ``client``'s database, in order; return how many.

        Each group of entries is one operation, retried as any other (for at most
        ``within`` seconds, if given); an error is raised, and what was not pushed stays
        in the spool. A row that no longer fits its column is left out with a warning.

        :raises SpoolBusy: another process has the file (see :meth:`lock`)
        :raises NotFound: the run was deleted
        """
        if not self.lock():
            raise SpoolBusy(f"{self.path} is in use by another process (a running job?)")
        pushed = 0
        while self.path.exists():  # (removed by the process that had it before us)
            entries = self._client.query(
                "SELECT seq, kind, data FROM spool_entries ORDER BY seq LIMIT :n",
                {"n": _PUSH_ENTRIES},
            )
            if not entries:
                break
            client.run_operation(self._apply, client, entries, within=within)
            with self._client:
                self._client.query(
                    "DELETE FROM spool_entries WHERE seq <= :seq", {"seq": entries[-1][0]}
                )
            pushed += len(entries)
        if pushed:
            try:
                client.run_operation(catch_up, client, self.run_id, within=within)
            except Exception as e:  # what was pushed is in: only the summary lags
                if not client.is_outage(e):
                    raise
                log.warning("sqltrack: run %s: summary not updated: %s", self.run_id, e)
        return pushed

    def _apply(self, client: Client, entries: list[Any]) -> None:
        run_id = self.run_id
        with client as conn:
            for _, kind, data in entries:
                value = json.loads(data)
                if kind == "rows":
                    for error in write_rows(client, conn, run_id, [_row(r) for r in value]):
                        log.warning("sqltrack: %s: %s; the row was left out", self.path, error)
                    continue
                if kind == "state":
                    status, started, updated = value
                    params = {"id": run_id, "status": status, "started": _time(client, started)}
                    sql = _SET_STATE
                else:
                    params, updated, sql = {"id": run_id}, value, _SET_UPDATED
                params["updated"] = _time(client, updated)
                client.query(sql, params)

    def remove(self) -> None:
        """Delete the (pushed) spool file and its lock file, then unlock."""
        self._client.discard()
        for path in (self.path, self.path.with_name(self.path.name + ".lock")):
            try:
                path.unlink()
            except FileNotFoundError:
                pass
        self.unlock()

    def close(self) -> None:
        """Close the file and unlock it (the entries stay for a later push)."""
        self._client.discard()
        self.unlock()


def _time(client: Client, text: str | None) -> Any:
    return None if text is None else client.engine.adapt_datetime(datetime.fromisoformat(text))


def _row(data: list[Any]) -> Row:
    names, values, kinds, step, progress = data
    values = [
        datetime.fromisoformat(v) if k == "datetime" and v is not None else v
        for v, k in zip(values, kinds, strict=True)
    ]
    if not all(isinstance(n, str) for n in names):
        raise InvalidValue("a spooled row has a metric name that is not text")
    return tuple(names), tuple(values), tuple(kinds), int(step), float(progress)


@dataclass(frozen=True)
class SyncResult:
    """What ``sqltrack sync`` did with one file."""

    path: Path
    #: ``"pushed"``, ``"busy"`` (a running job has it) or ``"failed"``
    outcome: str
    run_id: int | None = None
    entries: int = 0
    message: str = ""

    def __str__(self) -> str:
        return f"{self.outcome}: {self.path}" + (f" ({self.message})" if self.message else "")


def sync_spools(
    client: Client, paths: Sequence[str | os.PathLike[str]] | None = None
) -> list[SyncResult]:
    """Push spool files into ``client``'s database and remove them: ``paths``, or every
    spool in :func:`spool_dir` meant for that database. A spool that a running job
    still has is skipped (``busy``): the job pushes it itself. Never raises for one file;
    each outcome says what happened."""
    results = []
    for path in [Path(p) for p in paths] if paths is not None else spool_files(client):
        try:
            spool = Spool(path)
        except Exception as e:  # not a spool, not a database at all...
            results.append(SyncResult(path, "failed", message=first_line(e)))
            continue
        note = "" if spool.target_key == target_key(client) else f"; recorded for {spool.target}"
        try:
            pushed = spool.push(client)
        except SpoolBusy:
            spool.close()
            results.append(SyncResult(path, "busy", spool.run_id, message="a running job has it"))
            continue
        except Exception as e:
            spool.close()
            results.append(SyncResult(path, "failed", spool.run_id, message=first_line(e) + note))
            continue
        spool.remove()
        message = f"{pushed} entries of run {spool.run_id}{note}"
        results.append(SyncResult(path, "pushed", spool.run_id, pushed, message))
    return results
