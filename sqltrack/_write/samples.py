"""Generated samples with their conditioning: what a generative model produced at a step
(its checkpoint), for which input (a prompt, a class label: any JSON value).

A conditioning is stored once per distinct content (``conditionings``, keyed by the
SHA-256 of its canonical JSON, with its JSON type), so "every output for this prompt
across the checkpoints of a run" is one short query. A sample may point at an artifact
(an image file logged with :func:`~sqltrack.run_log_artifact`).
Schema version 4.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from .._base.values import check_step, json_dumps
from .._db.client import Client, operation
from .._db.schema import ARTIFACTS, CALL_UIDS, applied, require
from ..errors import InvalidValue, NotFound
from .artifacts import KIND, Artifact
from .rows import check_id

_TYPES = {str: "text", bool: "boolean", dict: "object", list: "array"}  # else a number
_INSERT_CONDITIONING = (
    "INSERT INTO conditionings (sha256, type, content) VALUES (:sha256, :type, :content) "
    "ON CONFLICT (sha256) DO NOTHING RETURNING id"
)
_INSERT_SAMPLE = (
    "INSERT INTO samples (run_id, step, conditioning_id, kind, output, artifact_id) "
    "VALUES (:run, :step, :conditioning, :kind, :output, :artifact) RETURNING id"
)
_INSERT_KEYED = (  # schema version 8: with the call's key
    "INSERT INTO samples (run_id, step, conditioning_id, kind, output, artifact_id, uid) "
    "VALUES (:run, :step, :conditioning, :kind, :output, :artifact, :uid) RETURNING id"
)


def conditioning_key(conditioning: Any) -> tuple[str, str, str]:
    """``(sha256, type, canonical JSON)`` of a conditioning: the SHA-256 of its JSON with
    sorted keys and no spaces, so equal content is stored once however it was written.

    :raises InvalidValue: not a JSON value, or null
    """
    if conditioning is None:
        raise InvalidValue("conditioning must be a JSON value (None: use no conditioning)")
    value = json.loads(json_dumps(conditioning, "conditioning"))  # checked and plain
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    kind = _TYPES.get(type(value), "number")
    return hashlib.sha256(canonical.encode()).hexdigest(), kind, canonical


def run_log_sample(
    client: Client,
    run_id: int,
    step: int,
    conditioning: Any,
    output: Any,
    kind: str | None = None,
    artifact: Artifact | int | None = None,
    uid: str | None = None,
) -> int:
    """Log a generated sample of a run at a step; returns its id.

    Example::

        image = run.log_artifact(path, kind="sample", step=step)
        run.log_sample(step, "a cat on a skateboard", {"clip_score": 0.31}, kind="image",
                       artifact=image)

    :param conditioning: what the sample was generated from (any JSON value), stored once
        per distinct content; None for an unconditional sample
    :param output: the output as a JSON value (text, scores), or None if only a file
    :param kind: a lowercase word such as ``image`` or ``text``
    :param artifact: the output's file: an :class:`~sqltrack.Artifact` or its id
    :param uid: a key for this call: a call with the key of a sample logged before returns
        its id instead of logging another (sqltrack makes one per call, so that its own
        retries never double a sample)
    :raises InvalidValue: bad input; :class:`NotFound`: no such run or artifact
    """
    check_id(run_id, "run")
    check_step(step, "sample step")
    if kind is not None and (not isinstance(kind, str) or not KIND.match(kind)):
        raise InvalidValue(f"sample kind must be a lowercase word (image, text, …), got {kind!r}")
    artifact_id = artifact.id if isinstance(artifact, Artifact) else artifact
    if artifact_id is not None:
        check_id(artifact_id, "artifact")
    key = None if conditioning is None else conditioning_key(conditioning)
    output_json = None if output is None else json_dumps(output, "sample output")
    if uid is not None and (not isinstance(uid, str) or not uid):
        raise InvalidValue(f"uid must be a non-empty string, got {uid!r}")
    sample = {"run": run_id, "step": step, "kind": kind, "output": output_json,
              "artifact": artifact_id, "uid": uid or uuid.uuid4().hex}  # fmt: skip
    return _insert_sample(client, key, sample)


@operation
def _insert_sample(client: Client, key: tuple[str, str, str] | None, sample: dict[str, Any]) -> int:
    """The sample row of :func:`run_log_sample`: the one with ``sample["uid"]`` if a try
    before this one made it, else a new one."""
    require(client, ARTIFACTS, "samples need")
    run_id, artifact_id = sample["run"], sample["artifact"]
    with client:
        insert = _INSERT_SAMPLE
        if applied(client, CALL_UIDS):
            insert = _INSERT_KEYED
            made = client.query("SELECT id FROM samples WHERE uid = :uid", sample)
            if made:
                return int(made[0][0])
        conditioning_id = None
        if key is not None:
            params = {"sha256": key[0], "type": key[1], "content": key[2]}
            found = client.query(_INSERT_CONDITIONING, params) or client.query(
                "SELECT id FROM conditionings WHERE sha256 = :sha256", params
            )
            conditioning_id = int(found[0][0])
        try:
            row = client.query(insert, {**sample, "conditioning": conditioning_id})
        except Exception as e:
            if client.engine.is_foreign_key_violation(e):
                raise NotFound(f"run {run_id} or artifact {artifact_id} does not exist") from None
            raise
    return int(row[0][0])
