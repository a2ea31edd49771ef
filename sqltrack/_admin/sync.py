"""``sqltrack sync`` of spool files: pushing what jobs left in the spool directory.

What a job could not write while the database was unreachable waits in its spool file
(:mod:`sqltrack._live.spool`); the next ``track()`` of the run pushes it, or
:func:`sync_spools` does, for every spool meant for the configured database. A whole
SQLite database of a job is merged by :mod:`sqltrack._admin.merge` instead.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .._db.client import Client
from .._db.engines.base import first_line
from .._live.places import target_key
from .._live.spool import Spool, SpoolBusy, UntrustedSpool, spool_files


@dataclass(frozen=True)
class SyncResult:
    """What ``sqltrack sync`` did with one file."""

    path: Path
    #: ``"pushed"``, ``"busy"`` (a running job has it), ``"refused"`` (not to be
    #: trusted) or ``"failed"``
    outcome: str
    run_id: int | None = None
    #: entries written
    entries: int = 0
    #: why it was not pushed, or for which database it was recorded
    message: str = ""
    #: entries set aside (in :attr:`set_aside_path`): not valid, or refused for good
    set_aside: int = 0
    #: entries still in the spool (a push that stopped part of the way)
    kept: int = 0
    set_aside_path: Path | None = None

    def __str__(self) -> str:
        parts = [self.message] if self.message else []
        if self.run_id is not None and self.outcome != "busy":
            counts = f"{self.entries} entries of run {self.run_id} pushed"
            if self.set_aside:
                counts += f", {self.set_aside} set aside in {self.set_aside_path}"
            if self.kept:
                counts += f", {self.kept} kept in the spool"
            parts.append(counts)
        return f"{self.outcome}: {self.path}" + (f" ({'; '.join(parts)})" if parts else "")


def sync_spools(
    client: Client,
    paths: Sequence[str | os.PathLike[str]] | None = None,
    trust_others: bool = False,
) -> list[SyncResult]:
    """Push spool files into ``client``'s database and remove them: ``paths``, or every
    spool in :func:`spool_dir` meant for that database. A spool that a running job
    still has is skipped (``busy``): the job pushes it itself; one that another user
    owns or may write is ``refused`` unless ``trust_others``. Never raises for one file;
    each outcome says what happened."""
    results = []
    for path in [Path(p) for p in paths] if paths is not None else spool_files(client):
        try:
            spool = Spool(path, trust_others=trust_others)
        except Exception as e:  # not to be trusted, not a spool, not a database at all...
            outcome = "refused" if isinstance(e, UntrustedSpool) else "failed"
            results.append(SyncResult(path, outcome, message=first_line(e)))
            continue
        note = "" if spool.target_key == target_key(client) else f"recorded for {spool.target}"
        outcome, message = "pushed", note
        try:
            spool.push(client)
        except SpoolBusy:
            outcome, message = "busy", "a running job has it"
        except Exception as e:
            outcome = "refused" if isinstance(e, UntrustedSpool) else "failed"
            message = "; ".join(filter(None, (first_line(e), note)))
        kept = 0 if outcome == "busy" else spool.pending()
        if outcome == "pushed":
            spool.remove()
        else:
            spool.close()
        aside = spool.set_aside
        results.append(
            SyncResult(
                path, outcome, spool.run_id, spool.pushed, message, aside.count, kept, aside.path
            )
        )
    return results
