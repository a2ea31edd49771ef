"""Artifacts: checkpoints, models, datasets and files that runs produce, versioned per name.

The bytes never go into the database: an artifact row holds a URI (an absolute path or a
URL) with the SHA-256 and size of the content, computed by streaming for local files
(constant memory, however large) and taken as given for remote ones. Versions are 1, 2,
3, … per name, without gaps or duplicates when many processes log one name at once.
A run that uses an artifact records it (``artifact_uses``): lineage is one query.
Schema version 4 (``sql/*/v004_artifacts.sql``).
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from .._base.digests import file_digest
from .._base.secrets import redact_text
from .._base.values import check_step, check_text, json_dumps
from .._db.client import Client, operation
from .._db.engines.base import quote_identifier
from .._db.schema import ARTIFACTS, CALL_UIDS, applied, require
from ..errors import InvalidValue, NotFound
from . import points
from .metrics import known_columns
from .rows import check_id, check_object

if TYPE_CHECKING:
    import pandas

KIND = re.compile(r"[a-z][a-z0-9_]*\Z")
_SHA256 = re.compile(r"[0-9a-f]{64}\Z")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_COLUMNS = "id, name, version, kind, run_id, step, uri, sha256, size, metadata, time_created"
_INSERT = (
    "INSERT INTO artifacts (name, version, kind, run_id, step, uri, sha256, size, metadata) "
    "VALUES (:name, :version, :kind, :run, :step, :uri, :sha256, :size, :metadata) "
    "RETURNING id, name, version, kind, run_id, step, uri, sha256, size, metadata, time_created"
)
_INSERT_KEYED = (  # schema version 8: with the call's key
    "INSERT INTO artifacts (name, version, kind, run_id, step, uri, sha256, size, metadata, uid) "
    "VALUES (:name, :version, :kind, :run, :step, :uri, :sha256, :size, :metadata, :uid) "
    "RETURNING id, name, version, kind, run_id, step, uri, sha256, size, metadata, time_created"
)
# the artifact an earlier try of this call made (schema version 8)
_BY_UID = f"SELECT {_COLUMNS} FROM artifacts WHERE uid = :uid"  # noqa: S608 (fixed names)
# the next version of a name
_NEXT = "SELECT COALESCE(max(version), 0) + 1 FROM artifacts WHERE name = :name"
# a failed insert (another process took the version) undoes itself, not the transaction
_SAVEPOINT = "SAVEPOINT sqltrack_artifact"
_ROLLBACK_TO = "ROLLBACK TO SAVEPOINT sqltrack_artifact"
_RELEASE = "RELEASE SAVEPOINT sqltrack_artifact"
_LATEST = f"SELECT {_COLUMNS} FROM artifacts WHERE name = :name ORDER BY version DESC LIMIT 1"  # noqa: S608
_VERSION = f"SELECT {_COLUMNS} FROM artifacts WHERE name = :name AND version = :version"  # noqa: S608
_USE = (
    "INSERT INTO artifact_uses (run_id, artifact_id) VALUES (:run, :artifact) "
    "ON CONFLICT (run_id, artifact_id) DO NOTHING"
)
# {column}: run_id, name or kind (a fixed name, also the parameter's)
_EQUALS = "{column} = :{column}"
# {columns}: _COLUMNS; {where}: _EQUALS conditions joined by AND, or TRUE (sqltrack's own text)
_FIND = "SELECT {columns} FROM artifacts WHERE {where} ORDER BY id"
# {column}: the metric's quoted, checked column; {float}: the engine's float column type
_NOT_NAN = " AND {column} <> CAST('NaN' AS {float})"
# the step of a run's best value: {column} as in _NOT_NAN, {no_nan}: _NOT_NAN or nothing,
# {order}: ASC or DESC (sqltrack's own text)
_BEST_STEP = (
    "SELECT step, {column} FROM metrics WHERE run_id = :run AND {column} IS NOT NULL{no_nan} "
    "ORDER BY {column} {order}, step LIMIT 1"
)
# the same in the narrow storage (schema v010); {no_nan}: the engine's condition or nothing
_BEST_NARROW_STEP = (
    "SELECT p.step, p.value FROM metric_points p JOIN metric_names n ON n.id = p.name_id "
    "WHERE p.run_id = :run AND n.name = :name AND p.value IS NOT NULL "
    "AND (p.kind IS NULL OR p.kind = 'int'){no_nan} ORDER BY p.value {order}, p.step LIMIT 1"
)
# the last checkpoint up to a step (the latest version at that step)
_CHECKPOINT = (
    f"SELECT {_COLUMNS} FROM artifacts WHERE run_id = :run AND kind = 'checkpoint' "  # noqa: S608
    "AND step <= :step ORDER BY step DESC, version DESC LIMIT 1"
)


class Artifact(NamedTuple):
    """One row of ``artifacts``."""

    id: int
    name: str
    version: int
    kind: str
    run_id: int | None
    step: int | None
    uri: str
    sha256: str | None
    size: int | None
    metadata: dict[str, Any]
    time_created: Any


def _artifact(client: Client, row: Any) -> Artifact:
    convert = client.engine.python_value
    return Artifact(
        int(row[0]),
        row[1],
        int(row[2]),
        row[3],
        None if row[4] is None else int(row[4]),
        None if row[5] is None else int(row[5]),
        row[6],
        row[7],
        None if row[8] is None else int(row[8]),
        convert(row[9], "json") or {},
        convert(row[10], "datetime"),
    )


def _check_schema(client: Client) -> None:
    require(client, ARTIFACTS, "artifacts need")


def _where(uri: str | os.PathLike[str]) -> tuple[str, Path | None]:
    """The URI to store, and the local path (None for a remote URI)."""
    text = os.fspath(uri)
    if text.startswith("file://"):
        text = text[len("file://") :]
    elif _SCHEME.match(text):
        return redact_text(text), None  # credentials in a URL are never stored
    path = Path(text).expanduser().resolve()
    if not path.exists():
        raise InvalidValue(f"no such file or directory: {text}")
    return str(path), path


def run_log_artifact(
    client: Client,
    run_id: int,
    uri: str | os.PathLike[str],
    name: str | None = None,
    kind: str = "file",
    step: int | None = None,
    metadata: Mapping[str, Any] | None = None,
    sha256: str | None = None,
    size: int | None = None,
    uid: str | None = None,
) -> Artifact:
    """Log an artifact of a run: the next version of ``name``.

    Example::

        torch.save(model.state_dict(), path)
        run.log_artifact(path, name="resnet50", kind="checkpoint", step=step)

    :param uri: a local file or directory (hashed here, stored as an absolute path), or a
        URL such as ``s3://bucket/key`` (stored without credentials; nothing is fetched)
    :param name: default: the file's or URL's last path segment
    :param kind: ``checkpoint``, ``model``, ``dataset``, ``file``, ``sample`` or another
        lowercase word
    :param step: the training step it belongs to (what :func:`best_checkpoint` looks at)
    :param sha256: the content's SHA-256 for a URL (for a local file it is computed)
    :param size: the content's size in bytes for a URL
    :param uid: a key for this call: a call with the key of an artifact logged before
        returns that artifact instead of logging another version. sqltrack makes one per
        call, so that its own retries (after a connection lost between the commit and
        its answer) never add a version; give your own to make your retries safe too.
    :raises InvalidValue: bad input, or a local path that does not exist
    :raises NotFound: the run does not exist
    """
    check_id(run_id, "run")
    if not isinstance(kind, str) or not KIND.match(kind):
        raise InvalidValue(
            f"artifact kind must be a lowercase word like 'checkpoint', got {kind!r}"
        )
    if step is not None:
        check_step(step, "artifact step")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise InvalidValue(f"artifact metadata: expected a dict, got {type(metadata).__name__}")
    meta = check_object(dict(metadata or {}), "artifact metadata")
    stored, path = _where(uri)
    if path is not None:
        if sha256 is not None or size is not None:
            raise InvalidValue("sha256 and size are computed for a local file: leave them out")
        sha256, size = file_digest(path)
    else:
        if sha256 is not None and (not isinstance(sha256, str) or not _SHA256.match(sha256)):
            raise InvalidValue(f"sha256 must be 64 lowercase hex digits, got {sha256!r}")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            raise InvalidValue(f"size must be a non-negative integer, got {size!r}")
    if name is None:
        name = stored.rstrip("/").rsplit("/", 1)[-1].split("?")[0]
    if not isinstance(name, str) or not name:
        raise InvalidValue(f"artifact name must be a non-empty string, got {name!r}")
    check_text(name, "artifact name")
    check_text(stored, "artifact uri")
    if uid is not None and (not isinstance(uid, str) or not uid):
        raise InvalidValue(f"uid must be a non-empty string, got {uid!r}")
    params = {
        "name": name,
        "kind": kind,
        "run": run_id,
        "step": step,
        "uri": stored,
        "sha256": sha256,
        "size": size,
        "metadata": json_dumps(meta, "artifact metadata"),
        "uid": uid or uuid.uuid4().hex,
    }
    return _insert_artifact(client, params)  # (the file was hashed once, before)


def record_artifact(
    client: Client,
    run_id: int,
    uri: str,
    name: str,
    size: int | None,
    metadata: Mapping[str, Any],
    uid: str,
) -> Artifact:
    """An artifact row for a file that stays where it is and is not read: another
    tracker's artifact that an import records (its URI as that tracker gave it, credentials
    redacted; its size if known; no checksum). ``uid`` as for :func:`run_log_artifact`."""
    for text, where in ((uri, "artifact uri"), (name, "artifact name")):
        if not isinstance(text, str) or not text:
            raise InvalidValue(f"{where} must be a non-empty string, got {text!r}")
        check_text(text, where)
    params = {
        "name": name,
        "kind": "file",
        "run": run_id,
        "step": None,
        "uri": redact_text(uri),
        "sha256": None,
        "size": size,
        "metadata": json_dumps(check_object(dict(metadata), "artifact metadata"), "artifact"),
        "uid": uid,
    }
    return _insert_artifact(client, params)


@operation
def _insert_artifact(client: Client, params: dict[str, Any]) -> Artifact:
    """The artifact row of :func:`run_log_artifact`: the one with ``params["uid"]`` if a
    try before this one made it, else a new one with the next version."""
    _check_schema(client)
    engine = client.engine
    run_id = params["run"]
    with client:
        insert = _INSERT
        if applied(client, CALL_UIDS):
            insert = _INSERT_KEYED
            made = client.query(_BY_UID, params)
            if made:
                return _artifact(client, made[0])
        while True:  # another process took the version: take the next one
            params["version"] = client.query(_NEXT, params)[0][0]
            client.query(_SAVEPOINT)
            try:
                row = client.query(insert, params)[0]
            except Exception as e:
                client.query(_ROLLBACK_TO)
                if engine.is_foreign_key_violation(e):
                    raise NotFound(f"run {run_id} does not exist") from None
                if not engine.is_unique_violation(e):
                    raise
                continue
            client.query(_RELEASE)
            return _artifact(client, row)


def _one(client: Client, name: str, version: int | None) -> Artifact | None:
    if not isinstance(name, str):
        raise InvalidValue(f"artifact name must be a string, got {name!r}")
    if version is None:
        query = _LATEST
    else:
        if isinstance(version, bool) or not isinstance(version, int):
            raise InvalidValue(f"artifact version must be an integer, got {version!r}")
        query = _VERSION
    _check_schema(client)
    rows = client.query(query, {"name": name, "version": version})
    return _artifact(client, rows[0]) if rows else None


@operation
def get_artifact(client: Client, name: str, version: int | None = None) -> Artifact:
    """An artifact by name and version (the latest when ``version`` is None).

    :raises NotFound: no such name or version
    """
    found = _one(client, name, version)
    if found is None:
        which = f"{name!r}" if version is None else f"{name!r} version {version}"
        raise NotFound(f"no artifact {which}")
    return found


@operation
def latest_artifact_version(client: Client, name: str) -> int:
    """The latest version of ``name``; -1 when there is no artifact of that name."""
    found = _one(client, name, None)
    return -1 if found is None else found.version


@operation
def artifact_exists(client: Client, name: str, version: int | None = None) -> bool:
    """Whether an artifact of that name (and version, if given) exists."""
    return _one(client, name, version) is not None


@operation
def run_use_artifact(
    client: Client, run_id: int, name: str, version: int | None = None
) -> Artifact:
    """Record that a run used an artifact (the latest version when ``version`` is None)
    and return it; recording it again changes nothing.

    :raises NotFound: no such artifact or run
    """
    check_id(run_id, "run")
    with client:
        artifact = get_artifact(client, name, version)
        try:
            client.query(_USE, {"run": run_id, "artifact": artifact.id})
        except Exception as e:
            if client.engine.is_foreign_key_violation(e):
                raise NotFound(f"run {run_id} does not exist") from None
            raise
    return artifact


@operation
def find_artifacts(
    client: Client, run_id: int | None = None, name: str | None = None, kind: str | None = None
) -> list[Artifact]:
    """Artifacts logged by a run, of a name, of a kind (all that match), by id."""
    conditions, params = [], {}
    for column, value in (("run_id", run_id), ("name", name), ("kind", kind)):
        if value is not None:
            conditions.append(_EQUALS.format(column=column))
            params[column] = value
    if run_id is not None:
        check_id(run_id, "run")
    _check_schema(client)
    where = " AND ".join(conditions) or "TRUE"
    query = _FIND.format(columns=_COLUMNS, where=where)
    rows = client.query(query, params)
    return [_artifact(client, r) for r in rows]


def artifacts_dataframe(
    client: Client, run_id: int | None = None, name: str | None = None, kind: str | None = None
) -> pandas.DataFrame:
    """:func:`find_artifacts` as a ``pandas.DataFrame`` (pandas is an optional extra)."""
    try:
        import pandas
    except ImportError:
        raise ImportError(
            "artifacts_dataframe needs pandas: pip install 'sqltrack[pandas]'"
        ) from None
    found = find_artifacts(client, run_id, name, kind)
    return pandas.DataFrame.from_records(found, columns=list(Artifact._fields))


@operation
def best_checkpoint(client: Client, run_id: int, metric: str = "val_loss:min") -> Artifact:
    """The checkpoint a run logged at the step where ``metric`` was best, or the last one
    before it (the latest version at that step).

    :param metric: ``name:min`` or ``name:max``
    :raises NotFound: the metric has no value, or no checkpoint was logged up to that step
    """
    check_id(run_id, "run")
    name, _, best = metric.partition(":")
    if best not in ("min", "max"):
        raise InvalidValue(f"metric {metric!r}: give name:min or name:max")
    with client as conn:
        kinds = known_columns(client, conn, (name,))
    narrow = points.available(client) and bool(points.narrow_names(client, [name]))
    if kinds.get(name) not in ("int", "float") and not narrow:
        raise InvalidValue(f"no such numeric metric: {name!r}")
    order = "ASC" if best == "min" else "DESC"
    engine = client.engine
    found: list[Any] = []  # (step, value) of the best value in each storage
    if kinds.get(name) in ("int", "float"):
        column = quote_identifier(name)
        no_nan = ""
        if kinds[name] == "float" and engine.stores_nan:  # NaN sorts above all numbers
            no_nan = _NOT_NAN.format(column=column, float=engine.column_types["float"])
        query = _BEST_STEP.format(column=column, no_nan=no_nan, order=order)
        found += client.query(query, {"run": run_id})
    if narrow:
        no_nan = _NOT_NAN.format(column="p.value", float="DOUBLE PRECISION")
        query = _BEST_NARROW_STEP.format(no_nan=no_nan if engine.stores_nan else "", order=order)
        found += client.query(query, {"run": run_id, "name": name})
    if not found:
        raise NotFound(f"run {run_id} has no value of {name!r}")
    sign = 1 if best == "min" else -1
    step = min(found, key=lambda row: (sign * row[1], row[0]))[0]
    _check_schema(client)
    rows = client.query(_CHECKPOINT, {"run": run_id, "step": step})
    if not rows:
        raise NotFound(f"run {run_id} logged no checkpoint up to step {step}")
    return _artifact(client, rows[0])


def verify_artifacts(
    client: Client, run_id: int | None = None, name: str | None = None
) -> list[tuple[Artifact, str]]:
    """Hash the local files of artifacts again: ``(artifact, outcome)`` each, outcome
    ``ok``, ``missing``, ``changed`` (content or size differs, or it is no longer a
    regular file: a device or a FIFO is never read), or ``unchecked`` (a URL, or no
    checksum recorded)."""
    results = []
    for artifact in find_artifacts(client, run_id, name):
        if artifact.sha256 is None or _SCHEME.match(artifact.uri):
            results.append((artifact, "unchecked"))
            continue
        try:
            digest = file_digest(artifact.uri)
        except InvalidValue:
            gone = not os.path.lexists(artifact.uri)
            results.append((artifact, "missing" if gone else "changed"))
            continue
        same = digest == (artifact.sha256, artifact.size)
        results.append((artifact, "ok" if same else "changed"))
    return results
