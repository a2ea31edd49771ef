"""Create and migrate the schema from the versioned scripts in ``sql/<engine>/``.

Every script is applied at most once per database (per schema on PostgreSQL). Applied
scripts are recorded in the table ``sqltrack_scripts`` with a SHA-256 checksum of their
text. Each script runs in its own transaction together with its bookkeeping row, so a
failing script leaves nothing behind and is not recorded. Concurrent ``setup`` calls are
serialized (an advisory lock on PostgreSQL, the write lock on SQLite).

Built-in scripts are named ``vNNN_<what>.sql`` and recorded as ``sqltrack/vNNN_<what>.sql``.
User scripts are recorded by file name, so keep user script names unique.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..errors import SchemaError, SQLTrackError
from .client import Client
from .long_view import refresh_long_view

_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS sqltrack_scripts (
    name TEXT PRIMARY KEY,
    checksum TEXT NOT NULL,
    time_applied TEXT NOT NULL
)
"""
_CHECKSUM_OF = "SELECT checksum FROM sqltrack_scripts WHERE name = :name"
_APPLIED = "SELECT name FROM sqltrack_scripts"
_CHECKSUMS = "SELECT name, checksum FROM sqltrack_scripts"

# The built-in scripts that a feature asks for before it uses what they add (a database
# set up by an older sqltrack goes on working without them until `sqltrack setup`).
RUN_UIDS = "sqltrack/v002_run_uid.sql"  #: runs.uid
SUMMARIES = "sqltrack/v003_summaries.sql"  #: run_summaries, run_overview
ARTIFACTS = "sqltrack/v004_artifacts.sql"  #: artifacts, artifact_uses, samples
PROVENANCE = "sqltrack/v005_run_state.sql"  #: runs.code, packages, hardware
SYSTEM_METRICS = "sqltrack/v006_system_metrics.sql"  #: system_metrics
DELETION = "sqltrack/v007_deleted.sql"  #: runs.time_deleted, experiments.time_deleted
CALL_UIDS = "sqltrack/v008_call_uids.sql"  #: artifacts.uid, samples.uid
METRIC_POINTS = "sqltrack/v010_metric_points.sql"  #: metric_points, metric_names, metrics_long
OWNERS = "sqltrack/v011_owners.sql"  #: created_by, deleted_by; row-level security (PostgreSQL)
BLOCKS = "sqltrack/v012_metric_blocks.sql"  #: metric_blocks (what a chart of a long run reads)
_RECORD = (
    "INSERT INTO sqltrack_scripts (name, checksum, time_applied) VALUES (:name, :checksum, :now)"
)


@dataclass(frozen=True)
class ScriptResult:
    """What :func:`setup` did with one script."""

    name: str
    applied: bool  #: True if applied now, False if it had been applied before


def sql_dir() -> Path:
    """The folder of built-in scripts: inside the installed package, else the source tree."""
    package = Path(__file__).resolve().parent.parent  # sqltrack/
    for candidate in (package / "sql", package.parent / "sql"):
        if candidate.is_dir():
            return candidate
    raise SchemaError(f"sqltrack's schema scripts are missing (looked in {package}/sql)")


def builtin_scripts(engine: str) -> list[Path]:
    """The built-in scripts for ``engine``, in the order they must be applied."""
    return sorted((sql_dir() / engine).glob("v[0-9][0-9][0-9]_*.sql"))


def applied(client: Client, script: str) -> bool:
    """Whether ``script`` (one of the constants above, as recorded) has been applied to
    the client's database: what a feature asks before it uses a later table. Asked once
    per client (:attr:`Client.schema_cache`; :func:`setup` renews it), not on every read."""
    known = client.schema_cache
    if known is None:
        known = client.schema_cache = frozenset(row[0] for row in client.query(_APPLIED))
    return script in known


def require(client: Client, script: str, what: str) -> None:
    """Raise :class:`SchemaError` saying ``what`` needs ``script``, unless it was applied."""
    if not applied(client, script):
        raise SchemaError(
            f"{what} the schema script {script} in {client.engine.describe()}: run `sqltrack setup`"
        )


def _checksum(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def setup(
    client: Client,
    *scripts: str | os.PathLike[str],
    report: Callable[[ScriptResult], None] | None = None,
) -> list[ScriptResult]:
    """Apply the built-in schema scripts, then the given user scripts, each exactly once.

    Example::

        from sqltrack import Client, setup
        for result in setup(Client(), "my_views.sql"):
            print(result.name, "applied" if result.applied else "already applied")

    :param client: the Client to use; its ``schema`` (PostgreSQL) is created if missing.
    :param scripts: paths of user scripts, applied in the given order after the built-ins.
    :param report: called with each :class:`ScriptResult` as soon as it is known.
    :return: one :class:`ScriptResult` per script, in order.
    :raises SchemaError: a script failed (it is rolled back and not recorded), a user
        script is missing, or an applied script's text has changed since.
    """
    items: list[tuple[str, str]] = []
    for path in builtin_scripts(client.engine.name):
        items.append((f"sqltrack/{path.name}", path.read_text(encoding="utf-8")))
    for script in scripts:
        path = Path(script)
        try:
            items.append((path.name, path.read_text(encoding="utf-8")))
        except OSError as e:
            raise SchemaError(f"cannot read script {path}: {e.strerror}") from None
    names = [name for name, _ in items]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise SchemaError(f"two scripts have the same name: {', '.join(sorted(duplicates))}")

    client.schema_cache = None
    done = _checksums(client)
    if done is not None and all(done.get(name) == _checksum(text) for name, text in items):
        # nothing to do, and nothing asked of the role: a lab member's job script that
        # runs setup each time needs no privilege to create anything
        results = [ScriptResult(name, False) for name, _ in items]
        for result in results:
            if report is not None:
                report(result)
        return results
    owner = _owner(client) if done is not None else None
    client.engine.create_if_missing = True  # setup makes the database it sets up
    try:
        with client.cursor() as cur:
            client.engine.prepare_setup(cur)
    except Exception as e:
        if owner is None or not client.engine.is_permission_error(e):
            raise
        raise _not_the_owner(client, owner, "the schema", e) from e

    results = []
    try:
        for name, text in items:
            try:
                results.append(ScriptResult(name, _apply(client, name, text)))
            except Exception as e:
                cause = e.__cause__ if isinstance(e, SchemaError) else e
                if owner is None or cause is None or not client.engine.is_permission_error(cause):
                    raise
                raise _not_the_owner(client, owner, f"script {name}", cause) from cause
            if report is not None:
                report(results[-1])
        if any(r.applied for r in results) and applied(client, METRIC_POINTS):
            with client.cursor() as cur:  # a script may have added columns by hand
                refresh_long_view(client.engine, cur)
    finally:
        client.metrics_cache = None  # a script may have changed the metrics table
        client.schema_cache = None
    return results


def _owner(client: Client) -> str | None:
    """The role that owns the schema (None: no roles, or no schema yet)."""
    try:
        with client.cursor() as cur:
            return client.engine.schema_owner(cur)
    except SQLTrackError:
        return None


def _not_the_owner(client: Client, owner: str, what: str, exc: BaseException) -> SchemaError:
    role = client.engine.params.get("user") or "this role"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return SchemaError(
        f"{what} needs setup by the schema's owner, role {owner!r}; role {role!r} may not "
        f"change the schema ({first})"
    )


def _checksums(client: Client) -> dict[str, str] | None:
    """The scripts applied and their checksums; None if there is no record of any (or
    no database yet)."""
    try:
        return {str(name): str(checksum) for name, checksum in client.query(_CHECKSUMS)}
    except SQLTrackError:
        return None


def _apply(client: Client, name: str, text: str) -> bool:
    """Apply one script in its own transaction unless already applied; True if applied."""
    engine = client.engine
    with client.cursor() as cur:
        engine.lock_setup(cur)
        cur.execute(_BOOKKEEPING)
        cur.execute(engine.sql(_CHECKSUM_OF), {"name": name})
        row = cur.fetchone()
        if row is not None:
            if row[0] != _checksum(text):
                raise SchemaError(
                    f"script {name} was applied before and its text has changed since; "
                    "never edit an applied script, add a new one instead"
                )
            return False
        try:
            engine.run_script(cur, text)
            if name == METRIC_POINTS:  # the script's view knows none of the wide columns
                refresh_long_view(engine, cur)
        except Exception as e:
            message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise SchemaError(f"script {name} failed: {message}") from e
        cur.execute(
            engine.sql(_RECORD),
            {
                "name": name,
                "checksum": _checksum(text),
                "now": datetime.now(timezone.utc).isoformat(sep=" "),
            },
        )
    return True
