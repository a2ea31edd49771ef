"""What a source module hands the importer: runs as sqltrack sees them, and what an
import did.

A source turns each run of its tool into a :class:`SourceRun`: its fields already in
sqltrack's terms (a status of sqltrack's, aware datetimes, args and tags), its metric
values and its artifacts read when the run is written (:attr:`SourceRun.points`,
:attr:`SourceRun.artifacts`: a run imported before is never read again; MLflow's and
W&B's histories are read one run at a time), its artifacts as references.
"""

from __future__ import annotations

import math
import os
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import InvalidValue

#: the namespace of imported runs' uids (a fixed, random UUID): a run's uid is
#: ``uuid5(IMPORT_NAMESPACE, "<source>:<its id there>")``
IMPORT_NAMESPACE = uuid.UUID("5b0d6d8e-7a43-4f0c-9a51-2f1f6c1e8b57")

#: one metric value: (name, step, value, wall time in seconds since the epoch or None)
Point = tuple[str, int, Any, "float | None"]


@dataclass
class SourceArtifact:
    """A file a run logged, kept where it is: sqltrack records its URI, not its bytes."""

    uri: str
    name: str
    size: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class SourceRun:
    """One run of another tool, in sqltrack's terms."""

    source: str  #: the tool: ``mlflow``, ``wandb``, ``tensorboard``, ``trackio``
    key: str  #: the run's id in its tool (unique there): what makes its uid
    experiment: str
    status: str = "COMPLETED"
    created: datetime | None = None
    started: datetime | None = None
    ended: datetime | None = None
    comment: str | None = None
    tags: list[str] = field(default_factory=list)
    args: dict[str, Any] = field(default_factory=dict)
    #: what the tool knows that has no column of its own, kept under ``extras["imported"]``
    extras: dict[str, Any] = field(default_factory=dict)
    #: the run's metric values, in the order the tool logged them (read when written)
    points: Callable[[], Iterable[Point]] = lambda: ()
    #: the run's artifacts (listed when the run is written: a run imported before is
    #: never listed again)
    artifacts: Callable[[], list[SourceArtifact]] = list
    parent: str | None = None  #: the key of the run this one is nested in
    #: what was left out of the run while reading it, with why
    skipped: list[str] = field(default_factory=list)

    @property
    def uid(self) -> str:
        """The run's uid in sqltrack: the same for every import of the same run."""
        return run_uid(self.source, self.key)


def run_uid(source: str, key: str) -> str:
    """The uid of the run ``key`` of ``source`` (32 hex digits, as sqltrack's uids)."""
    return uuid.uuid5(IMPORT_NAMESPACE, f"{source}:{key}").hex


@dataclass
class ImportResult:
    """What one import did (or, for a dry run, would do)."""

    source: str
    location: str
    dry_run: bool = False
    experiments_created: int = 0
    runs_new: int = 0
    #: runs found in the database already (imported before): left as they are
    runs_found: int = 0
    values: int = 0
    artifacts: int = 0
    links: int = 0
    #: what was left out, with why: reason -> how many times
    skipped: Counter[str] = field(default_factory=Counter)
    #: the source's run key -> sqltrack run id (runs new and found; a dry run: found only)
    run_ids: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        verb = "would import" if self.dry_run else "imported"
        new = "experiment" if self.experiments_created == 1 else "experiments"
        lines = [
            f"{verb} from {self.source} {self.location}: {self.runs_new} runs new "
            f"({self.runs_found} imported before), {self.experiments_created} {new} new, "
            f"{self.values} metric values, {self.artifacts} artifacts, {self.links} links; "
            f"{sum(self.skipped.values())} skipped"
        ]
        lines += [f"  skipped {n}x: {why}" for why, n in sorted(self.skipped.items())]
        return "\n".join(lines)


ProgressHook = Callable[[int, int], None]  #: (runs done, runs in all)


def epoch_time(seconds: Any) -> datetime | None:
    """Seconds since the epoch as an aware datetime; None for what is no time (not a
    number, not finite, out of datetime's range), as a file may hold anything."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        return None
    try:
        return datetime.fromtimestamp(seconds, timezone.utc)
    except (ValueError, OverflowError, OSError):
        return None


def json_safe(value: Any) -> Any:
    """A source's JSON value as sqltrack's JSON columns take it: NaN and infinities as
    their text (``"nan"``, ``"inf"``), keys as text."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def checked_path(path: str | os.PathLike[str]) -> Path:
    """``path`` made absolute, links followed; InvalidValue for a loop of links."""
    try:
        return Path(path).expanduser().resolve()
    except (RuntimeError, OSError) as e:  # (Python 3.10-3.12 raise RuntimeError for loops)
        raise InvalidValue(f"{path}: {e}") from None


def first_line(error: BaseException) -> str:
    """An exception's message as one short line (its type when it has none)."""
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__
