"""What the background writer of a run is handed besides rows (:mod:`sqltrack._live.buffer`):
an explicit ``time_updated`` and a status, written in call order with the rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class QueuedUpdate:
    """A queued explicit ``time_updated`` (``add_metrics(..., updated=datetime)``)."""

    when: datetime


@dataclass(frozen=True)
class QueuedStatus:
    """A queued status change, with its ``time_started`` and ``time_updated`` (None:
    leave it alone)."""

    status: str
    started: datetime | None
    when: datetime | None
