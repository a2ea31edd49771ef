"""W&B runs logged offline (``WANDB_MODE=offline``): the ``run-<id>.wandb`` file of each
``wandb/offline-run-*`` folder, read without network.

A ``.wandb`` file is W&B's transaction log: W&B's own protobuf records (``Record`` of
``wandb.proto``, ``pip install wandb``) in LevelDB's log framing (32 KiB blocks of
checksummed chunks). W&B 0.29+ reads and writes it in its compiled ``wandb-core``, which
offers no reader to call; so the framing is read here (:func:`records`: every chunk's
CRC checked, a torn tail, as a job killed mid-write leaves, ends the file), and each
record is parsed by W&B's ``Record``.

- The run record gives the id, project (the experiment), name, notes, tags, group and
  start time; config records (and the run's) give the args, ``_wandb`` left out.
- Every history row is a row of metrics at its ``_step``, with ``_timestamp`` as its wall
  time; a logged dict's values are named ``outer.inner``; W&B's media (images,
  histograms, tables) and other values that are not numbers, booleans or text are left
  out and counted.
- The summary (replayed from its deltas) is kept in ``extras["imported"]["summary"]``.
- The exit record's code: 0 COMPLETED, another FAILED; no exit record (the job died, or
  runs still) leaves the run RUNNING, as found.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from .._db.client import Client
from ..errors import InvalidValue, SQLTrackError
from .model import (
    ImportResult,
    Point,
    ProgressHook,
    SourceRun,
    checked_path,
    epoch_time,
    first_line,
)
from .target import import_runs

SOURCE = "wandb"
_MAGIC = b":W&B" + struct.pack("<HB", 0xBEE1, 0)  # the file's header: ident, magic, version
_BLOCK = 32 * 1024
_CHUNK = struct.Struct("<IHB")  # crc32, length, type
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4
_HIDDEN = ("_step", "_timestamp", "_runtime")
_DEFAULT_PROJECT = "uncategorized"  # W&B's project for runs that name none


def import_wandb(
    client: Client,
    paths: Sequence[str | os.PathLike[str]],
    experiment: str | None = None,
    dry_run: bool = False,
    progress: ProgressHook | None = None,
) -> ImportResult:
    """Import W&B offline runs: ``.wandb`` files, or folders searched for them (a
    ``wandb/`` folder, ``offline-run-*`` folders); a run imported before is left as it
    is (see docs/import.md).

    Example::

        import_wandb(client, ["wandb/"])

    :param experiment: the sqltrack experiment of the runs (default: each run's project)
    :param dry_run: write nothing; the result says what would be imported
    :param progress: called with (runs done, runs in all) after each run
    :raises InvalidValue: a path that does not exist, or no ``.wandb`` file found
    :raises SQLTrackError: wandb is not installed
    """
    runs, skipped = read_wandb(paths, experiment)
    result = ImportResult(SOURCE, " ".join(map(str, paths)), dry_run)
    result.skipped.update(skipped)
    return import_runs(client, runs, result, progress)


def _record_type() -> Any:
    try:
        from wandb.proto import wandb_internal_pb2
    except ImportError as e:
        raise SQLTrackError(f"importing W&B runs needs wandb ({e}): pip install wandb") from None
    return wandb_internal_pb2.Record  # type: ignore[attr-defined]


def read_wandb(
    paths: Sequence[str | os.PathLike[str]], experiment: str | None = None
) -> tuple[list[SourceRun], list[str]]:
    """The runs of the ``.wandb`` files at ``paths``, and the files left out, with why."""
    record_type = _record_type()
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files += sorted(path.rglob("*.wandb"))
        else:
            raise InvalidValue(f"no such file or folder: {path}")
    if not files:
        raise InvalidValue(f"no .wandb files in {', '.join(map(str, paths))}")
    from google.protobuf.message import DecodeError

    unreadable = (ValueError, OSError, RecursionError, OverflowError, DecodeError)
    runs, skipped = [], []
    for file in dict.fromkeys(checked_path(f) for f in files):
        try:
            run = _read(file, record_type, experiment)
        except unreadable as e:  # not W&B's, or broken: the other files go on
            skipped.append(f"{file}: {first_line(e)}")
            continue
        if run is None:
            skipped.append(f"{file}: no run in it (the job died before W&B wrote one)")
        else:
            runs.append(run)
    return runs, skipped


def records(stream: BinaryIO) -> Iterator[bytes]:
    """The records of a W&B transaction log, each as its protobuf bytes."""
    if stream.read(len(_MAGIC)) != _MAGIC:
        raise ValueError("not a W&B transaction log (.wandb) file")
    offset, parts = len(_MAGIC), []
    while True:
        room = _BLOCK - offset % _BLOCK
        if room < _CHUNK.size:  # a block's zero padding
            if len(stream.read(room)) < room:
                return
            offset += room
            continue
        header = stream.read(_CHUNK.size)
        if len(header) < _CHUNK.size:
            return
        crc, length, kind = _CHUNK.unpack(header)
        data = stream.read(length)
        if kind not in (_FULL, _FIRST, _MIDDLE, _LAST) or len(data) < length:
            return  # the end of what was written (a torn tail)
        if zlib.crc32(data, zlib.crc32(bytes([kind]))) != crc:
            return
        offset += _CHUNK.size + length
        parts.append(data)
        if kind in (_FULL, _LAST):
            yield b"".join(parts)
            parts = []


def _read(file: Path, record_type: Any, experiment: str | None) -> SourceRun | None:
    run: dict[str, Any] = {}
    config: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    last_time = None  # the latest history row's _timestamp
    exit_code = runtime = None
    with file.open("rb") as stream:
        for data in records(stream):
            record = record_type.FromString(data)
            kind = record.WhichOneof("record_type")
            if kind == "run":  # sent again whole when its name, tags or notes change
                r = record.run
                t = r.start_time
                start = epoch_time(t.seconds + t.nanos / 1e9) if r.HasField("start_time") else None
                run = {
                    "id": r.run_id, "project": r.project, "entity": r.entity,
                    "name": r.display_name, "notes": r.notes, "tags": list(r.tags),
                    "group": r.run_group, "job_type": r.job_type, "start": start,
                }  # fmt: skip
                _apply(config, r.config)
            elif kind == "config":
                _apply(config, record.config)
            elif kind == "summary":
                _apply(summary, record.summary)
            elif kind == "history":  # (its values are read when the run is written)
                for item in record.history.item:
                    if _keys(item) == ["_timestamp"]:
                        when = epoch_time(_value(item))
                        last_time = when if last_time is None or when is None else max(
                            last_time, when
                        )  # fmt: skip
            elif kind == "exit":
                exit_code, runtime = record.exit.exit_code, record.exit.runtime
    if not run.get("id"):
        return None
    config.pop("_wandb", None)
    summary.pop("_wandb", None)
    started = run["start"]
    ended = None
    if exit_code is not None and started is not None:
        ended = epoch_time(started.timestamp() + (runtime or 0))
    if last_time is not None and (ended is None or last_time > ended):
        ended = last_time
    project = run["project"] or _DEFAULT_PROJECT
    source = SourceRun(
        source=SOURCE,
        key=f"{project}/{run['id']}",
        experiment=experiment or project,
        status="RUNNING" if exit_code is None else "COMPLETED" if exit_code == 0 else "FAILED",
        started=started,
        ended=ended,
        comment=run["notes"] or run["name"] or None,
        tags=[t for t in run["tags"] if t],
        args=config,
        extras={
            "file": str(file),
            **{k: run[k] or None for k in ("project", "entity", "name", "group", "job_type")},
            "exit_code": exit_code,
            "summary": summary,
        },
    )
    source.points = lambda: _points(file, record_type, source.skipped)
    return source


def _keys(item: Any) -> list[str]:
    """An item's key: ``key`` (W&B's Python writer) or ``nested_key`` (wandb-core's)."""
    return [item.key] if item.key else list(item.nested_key)


def _value(item: Any) -> Any:
    return json.loads(item.value_json) if item.value_json else None


def _set(into: dict[str, Any], items: Any) -> None:
    """Items of nested keys (wandb-core splits a logged dict into one item per leaf) as
    nested dicts in ``into``."""
    for item in items:
        *path, last = _keys(item)
        node = into
        for key in path:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        node[last] = _value(item)


def _apply(into: dict[str, Any], record: Any) -> None:
    """A config or summary record's updates, then its removals, on ``into``."""
    _set(into, record.update)
    for item in record.remove:
        *path, last = _keys(item)
        node = into
        for key in path:
            inner = node.get(key)
            node = inner if isinstance(inner, dict) else {}
        node.pop(last, None)


def _points(file: Path, record_type: Any, skipped: list[str]) -> Iterator[Point]:
    """The values of every history row of ``file``, read again (so that an import holds
    one run's values at a time)."""
    from google.protobuf.message import DecodeError

    try:
        with file.open("rb") as stream:
            for data in records(stream):
                record = record_type.FromString(data)
                if record.WhichOneof("record_type") == "history":
                    row: dict[str, Any] = {}
                    _set(row, record.history.item)
                    yield from _row_points(row, record.history.step.num)
    except (ValueError, OSError, RecursionError, OverflowError, DecodeError) as e:
        skipped.append(f"{file}: the rest of its history: {first_line(e)}")


def _row_points(row: dict[str, Any], default_step: int) -> Iterator[Point]:
    step = row.get("_step", default_step)
    if not isinstance(step, int) or isinstance(step, bool):
        return
    when = epoch_time(row.get("_timestamp"))
    wall = None if when is None else when.timestamp()
    for name, value in _flat(row):
        if name not in _HIDDEN:
            yield name, step, value, wall


def _flat(row: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """A history row's values by name: a logged dict's as ``outer.inner``; W&B's media
    (a dict with a ``_type``: images, histograms, tables) whole, which sqltrack leaves out."""
    for key, value in row.items():
        if isinstance(value, dict) and "_type" not in value:
            yield from _flat(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value
