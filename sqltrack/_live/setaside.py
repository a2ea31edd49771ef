"""Values the database refused for good, kept in a file instead of lost or retried forever.

A value that can never be written must neither block the values after it nor vanish:
the database refused it with a permanent error (a row too big, a missing privilege; see
:meth:`~sqltrack._db.engines.base.Engine.classify`), it does not fit its column, or it is a
spool entry that is not valid. The buffered writer of ``track()`` and the spool push
write everything else, and append such a value to a **set-aside file** in the spool
directory (:func:`~sqltrack._live.spool.spool_dir`), named like the run's spool files with the
suffix ``.refused.jsonl``; one warning names the file. Each line is one JSON object::

    {"time": "2026-12-01T08:00:00+00:00", "run_id": 42, "kind": "rows",
     "error": "PostgreSQL refused it: row is too big: ... (SQLSTATE 54000); not retried",
     "data": {"step": 3, "progress": 0.0, "metrics": {"loss": 0.25, ...}}}

``kind`` is ``rows`` (one ``add_metrics`` call), ``updated`` (a heartbeat's time),
``state`` (a status with its times) or ``entry`` (a spool entry as it was found: ``data``
is its text). The file is readable by its owner only. Nothing reads it back by itself:
once the cause is fixed, log what matters again from it.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .._base.files import append_private, private_folder
from .._db.engines.base import first_line

log = logging.getLogger("sqltrack")
SUFFIX = ".refused.jsonl"


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return repr(value)  # (never raise while keeping what could not be written)


class SetAside:
    """One set-aside file, created on its first value.

    :param path: the file (``….refused.jsonl``)
    :param run_id: the run its values belong to
    """

    def __init__(self, path: Path, run_id: int) -> None:
        self.path = path
        self.run_id = run_id
        #: how many values were set aside in this file by this object
        self.count = 0

    def add(self, kind: str, data: Any, error: BaseException | str) -> None:
        """Append one value that could not be written, with why; warn with the file's
        name the first time."""
        reason = error if isinstance(error, str) else first_line(error)
        record = {
            "time": datetime.now(timezone.utc).isoformat(),
            "run_id": self.run_id,
            "kind": kind,
            "error": reason,
            "data": data,
        }
        private_folder(self.path.parent)
        append_private(self.path, json.dumps(record, default=_plain) + "\n")
        self.count += 1
        if self.count == 1:
            log.warning(
                "sqltrack: run %s: a value cannot be written (%s); it is kept in %s, and "
                "everything else is written",
                self.run_id,
                reason,
                self.path,
            )

    def add_row(self, row: Any, error: BaseException | str) -> None:
        """Set aside one metrics call (a :data:`~sqltrack._base.calls.Row`)."""
        names, values, _, step, progress = row
        metrics = dict(zip(names, values, strict=True))
        self.add("rows", {"step": step, "progress": progress, "metrics": metrics}, error)
