"""The offline spool: where a tracked run's writes wait while the database cannot be reached.

When the background writer of ``track()`` cannot write for :attr:`MetricsBuffer.spool_after
<sqltrack._live.buffer.MetricsBuffer.spool_after>` seconds (no server, a full server, a
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

A spool is input like any other, checked before anything is written: it is pushed only
if it and its directory belong to the user pushing it and no one else may write them
(see :func:`~sqltrack._base.files.untrusted_because`; ``trust_others=True``, ``sqltrack sync
--trust-others``, overrides it for files you have looked at), and only into a run of the
experiment it names. Each entry is validated as ``add_metrics`` validates its arguments
(names, values, kinds, step, progress; a status; times no later than now plus
:data:`CLOCK_SKEW`); an entry that is not valid, or that the database refuses for good,
is set aside (:mod:`sqltrack._live.setaside`) and never blocks the entries after it. Spool
files are readable by their owner only.
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .._base import process as _process
from .._base.calls import Row
from .._base.files import PRIVATE_MODE, private_folder, untrusted_because
from .._db.client import Client
from .._db.engines import LOCAL_ENGINE
from .._write.runs import check_status
from .._write.store import write_rows
from .._write.summaries import catch_up
from ..errors import DatabaseError, InvalidValue, NotFound, SchemaError, SQLTrackError
from .places import new_stem, spool_dir, target_key
from .setaside import SUFFIX as SET_ASIDE_SUFFIX
from .setaside import SetAside
from .spool_entries import entry_json, entry_text, parse_entry, row_data

try:
    import fcntl
except ImportError:  # Windows: one process per spool file is up to the user
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("sqltrack")
SUFFIX = ".spool"
_FORMATS = ("1", "2")  # 2: names the run's experiment
_FORMAT = "2"
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
_EXPERIMENT_OF = "SELECT experiment_id FROM runs WHERE id = :id"
_APPEND = "INSERT INTO spool_entries (kind, data) VALUES (:kind, :data)"
_META = "SELECT key, value FROM spool_meta"
_ADD_META = "INSERT INTO spool_meta VALUES (:k, :v)"
_NEXT = "SELECT seq, kind, data FROM spool_entries ORDER BY seq LIMIT :n"
_DONE = "DELETE FROM spool_entries WHERE seq <= :seq"
_COUNT = "SELECT count(*) FROM spool_entries"
_PUSH_ENTRIES = 64  # entries per transaction while pushing


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
        Spool(path, trust_others=True).close()
    except Exception:
        return False
    return True


def _open(path: Path) -> Client:
    # a rollback journal: safe on network filesystems, and one writer per file anyway
    return Client.of(
        engine=LOCAL_ENGINE, dbpath=str(path), journal_mode="delete", synchronous="full"
    )


class SpoolBusy(SQLTrackError):
    """Another process has the spool file: the job that writes it is still running."""


class UntrustedSpool(SQLTrackError):
    """A spool file that sqltrack must not push: someone else owns it or may write it or
    its directory, or its run belongs to another experiment than the spool says."""


class Spool:
    """One spool file. :meth:`create` makes a new one for a run; ``Spool(path)`` opens one.

    :param trust_others: open it even if another user owns it or may write it or its
        directory (see :func:`untrusted_because`)
    :raises UntrustedSpool: the file may not be trusted
    """

    def __init__(self, path: str | os.PathLike[str], trust_others: bool = False) -> None:
        self.path = Path(path)
        self._lock: Any = None
        if not self.path.is_file():
            raise SQLTrackError(f"no spool file {self.path}")
        reason = None if trust_others else untrusted_because(self.path)
        if reason is not None:
            raise UntrustedSpool(
                f"{self.path} is not pushed: {reason} (sqltrack sync --trust-others pushes "
                "files you have checked)"
            )
        self._client = _open(self.path)
        try:
            meta = dict(self._client.query(_META))
        except SchemaError:
            raise SQLTrackError(f"{self.path} is not a spool file") from None
        if meta.get("format") not in _FORMATS:
            raise SQLTrackError(f"{self.path} is not a spool file of this sqltrack version")
        try:
            #: the run the entries belong to
            self.run_id = int(meta["run_id"])
            #: the experiment of that run (None: not recorded, a spool of format 1)
            self.experiment_id = int(meta["experiment_id"]) if meta.get("experiment_id") else None
        except (KeyError, ValueError):
            raise SQLTrackError(f"{self.path} is not a valid spool file (its run)") from None
        #: the database they are meant for, as sqltrack describes it (no password)
        self.target = meta.get("target", "")
        self.target_key = meta.get("target_key", "")
        #: entries written by :meth:`push` so far
        self.pushed = 0
        #: where entries that cannot be pushed are set aside (see :mod:`sqltrack._live.setaside`)
        self.set_aside = SetAside(
            self.path.with_name(self.path.name[: -len(SUFFIX)] + SET_ASIDE_SUFFIX), self.run_id
        )

    @classmethod
    def create(cls, client: Client, run_id: int, experiment_id: int | None = None) -> Spool:
        """A new, empty spool file for ``run_id`` (of ``experiment_id``) of ``client``'s
        database, readable by its owner only."""
        path = private_folder(spool_dir()) / f"{new_stem(client, run_id)}{SUFFIX}"
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE))
        spool = _open(path)
        with spool:
            spool.executescript(_SCHEMA)
            meta = {
                "format": _FORMAT,
                "run_id": str(run_id),
                "experiment_id": "" if experiment_id is None else str(experiment_id),
                "target": f"{client.engine.label} {client.engine.describe()}",
                "target_key": target_key(client),
                "created": datetime.now().astimezone().isoformat(),
                "host": socket.gethostname(),
                "pid": str(_process.pid),
            }
            for key, value in meta.items():
                spool.query(_ADD_META, {"k": key, "v": value})
        created = cls(path)
        created.lock()
        return created

    def __repr__(self) -> str:
        return f"<sqltrack.Spool run {self.run_id} {self.path}>"

    # -- appending -------------------------------------------------------------------------

    def append(self, rows: list[Row], events: list[tuple[str, Any]]) -> None:
        """Append rows, then ``("updated", datetime)`` / ``("state", (status, datetime))``
        events, in one transaction: committed when this returns."""
        entries: list[tuple[str, Any]] = [("rows", [list(r) for r in rows])] if rows else []
        for kind, value in events:
            if kind == "state":
                entries.append((kind, [check_status(value[0]), *value[1:]]))
            else:
                entries.append((kind, value))
        with self._client:
            for kind, data in entries:
                self._client.query(_APPEND, {"kind": kind, "data": entry_json(data)})

    def pending(self) -> int:
        """How many entries wait to be pushed."""
        return int(self._client.query(_COUNT)[0][0])

    # -- pushing -----------------------------------------------------------------------------

    def lock(self) -> bool:
        """Take the file for this process, without waiting; False if another has it.

        The process that writes a spool keeps it locked until it has pushed and removed
        it, so ``sqltrack sync`` never pushes (or removes) the spool of a running job."""
        if self._lock is not None:
            return True
        fd = os.open(self._lock_path(), os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE_MODE)
        f = os.fdopen(fd, "a")
        if fcntl is not None:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                f.close()
                return False
        self._lock = f
        return True

    def _lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def unlock(self) -> None:
        """Let other processes push the file (closing it releases the lock)."""
        f, self._lock = self._lock, None
        if f is not None:
            f.close()

    def push(self, client: Client, within: float | None = None) -> int:
        """Write every entry to ``client``'s database, in order; return how many were
        written (the others were set aside, :attr:`set_aside`).

        Each group of entries is one operation, retried as any other (for at most
        ``within`` seconds, if given); a transient error is raised, and what was not
        pushed stays in the spool. An entry that is not valid, or that the database
        refuses for good, is set aside; so is a row that no longer fits its column.

        :raises SpoolBusy: another process has the file (see :meth:`lock`)
        :raises NotFound: the run was deleted
        :raises UntrustedSpool: the run belongs to another experiment than the spool's
        """
        if not self.lock():
            raise SpoolBusy(f"{self.path} is in use by another process (a running job?)")
        pushed = 0
        checked = False
        while self.path.exists():  # (removed by the process that had it before us)
            entries = self._client.query(_NEXT, {"n": _PUSH_ENTRIES})
            if not entries:
                break
            if not checked:
                client.run_operation(self._check_run, client, within=within)
                checked = True
            try:
                refused = client.run_operation(self._apply, client, entries, within=within)
            except (DatabaseError, InvalidValue):  # one entry the database refuses: alone
                refused = []
                for entry in entries:
                    try:
                        refused += client.run_operation(self._apply, client, [entry], within=within)
                    except (DatabaseError, InvalidValue) as e:
                        refused.append(("entry", entry_text(entry), e))
            for kind, data, error in refused:
                self.set_aside.add(kind, data, error)
            with self._client:
                self._client.query(_DONE, {"seq": entries[-1][0]})
            pushed += len(entries) - sum(1 for r in refused if r[0] == "entry")
            self.pushed = pushed
        if pushed:
            try:
                client.run_operation(catch_up, client, self.run_id, within=within)
            except Exception as e:  # what was pushed is in: only the summary lags
                if not client.is_transient(e):
                    raise
                log.warning("sqltrack: run %s: summary not updated: %s", self.run_id, e)
        return pushed

    def _check_run(self, client: Client) -> None:
        """The run must exist, and be of the experiment the spool names."""
        found = client.query(_EXPERIMENT_OF, {"id": self.run_id})
        if not found:
            raise NotFound(f"run {self.run_id} does not exist (deleted?)")
        if self.experiment_id is not None and int(found[0][0]) != self.experiment_id:
            raise UntrustedSpool(
                f"{self.path} is not pushed: it is for run {self.run_id} of experiment "
                f"{self.experiment_id}, but that run belongs to experiment {found[0][0]}"
            )

    def _apply(self, client: Client, entries: list[Any]) -> list[tuple[str, Any, Any]]:
        """Write entries in one transaction; return what is to be set aside (written to
        the set-aside file only once this committed: the operation may be retried)."""
        run_id = self.run_id
        refused: list[tuple[str, Any, Any]] = []
        now = datetime.now(timezone.utc)
        with client as conn:
            for entry in entries:
                try:
                    kind, value = parse_entry(entry, now, refused)
                except InvalidValue as e:
                    refused.append(("entry", entry_text(entry), e))
                    continue
                if kind == "rows":
                    for row, error in write_rows(client, conn, run_id, value):
                        refused.append(("rows", row_data(row), error))
                    continue
                if kind == "state":
                    status, started, updated = value
                    params = {"id": run_id, "status": status, "started": _time(client, started)}
                    sql = _SET_STATE
                else:
                    params, updated, sql = {"id": run_id}, value, _SET_UPDATED
                params["updated"] = _time(client, updated)
                client.query(sql, params)
        return refused

    def remove(self) -> None:
        """Delete the (pushed) spool file and its lock file, then unlock."""
        self._client.discard()
        for path in (self.path, self._lock_path()):
            try:
                path.unlink()
            except FileNotFoundError:
                pass
        self.unlock()

    def close(self) -> None:
        """Close the file and unlock it (the entries stay for a later push)."""
        self._client.discard()
        self.unlock()


def _time(client: Client, when: datetime | None) -> Any:
    return None if when is None else client.engine.adapt_datetime(when)
