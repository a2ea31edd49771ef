"""TensorBoard logs, read with TensorBoard's own event reader (``pip install
tensorboard``): every folder under a log directory that holds event files is a run.

- **Scalars**: each tag is a metric (``Loss/train`` stays ``Loss/train``), at its steps,
  with its wall times; TF2-style scalars (tensors of the scalars plugin) too.
- **Hyperparameters** (the hparams plugin: ``add_hparams``, ``hp.hparams``) are the args.
  PyTorch's ``SummaryWriter.add_hparams`` writes them into a subfolder of its own (named
  by the time): such a folder's hparams and scalars belong to the run folder above it.
- A run's key is the name of its first event file (``events.out.tfevents.<time>.<host>.
  <pid>…``: unique to the writer that made it, and the same wherever the folder is
  moved); its path under the log directory is its comment.
- TensorBoard records no status: a run is COMPLETED, unless the hparams plugin's session
  end says otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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

SOURCE = "tensorboard"
_EVENTS = "events.out.tfevents"
# the hparams plugin's session end statuses (api_pb2.Status), as sqltrack's
_ENDED = {1: "COMPLETED", 2: "FAILED", 3: "RUNNING"}


def import_tensorboard(
    client: Client,
    logdir: str | os.PathLike[str],
    experiment: str | None = None,
    dry_run: bool = False,
    progress: ProgressHook | None = None,
) -> ImportResult:
    """Import the runs of a TensorBoard log directory; a run imported before is left as
    it is (see docs/import.md).

    Example::

        import_tensorboard(client, "runs/", experiment="cifar")

    :param experiment: the sqltrack experiment of the runs (default: the folder's name)
    :param dry_run: write nothing; the result says what would be imported
    :param progress: called with (runs done, runs in all) after each run
    :raises InvalidValue: ``logdir`` is no folder, or holds no event files
    :raises SQLTrackError: tensorboard is not installed
    """
    runs, skipped = read_tensorboard(logdir, experiment)
    result = ImportResult(SOURCE, str(logdir), dry_run)
    result.skipped.update(skipped)
    return import_runs(client, runs, result, progress)


def _tensorboard() -> Any:
    try:
        from tensorboard.backend.event_processing import event_accumulator, io_wrapper
    except ImportError as e:
        raise SQLTrackError(
            f"importing TensorBoard logs needs tensorboard ({e}): pip install tensorboard"
        ) from None
    return event_accumulator, io_wrapper


def read_tensorboard(
    logdir: str | os.PathLike[str], experiment: str | None = None
) -> tuple[list[SourceRun], list[str]]:
    """The runs of ``logdir``, as the module's text says, and the folders left out, with
    why."""
    accumulator, io_wrapper = _tensorboard()
    root = checked_path(logdir)
    if not root.is_dir():
        raise InvalidValue(f"no such folder: {logdir}")
    found = io_wrapper.GetLogdirSubdirectories(str(root))
    folders = sorted({checked_path(d) for d in found})  # (once each: links may loop)
    if not folders:
        raise InvalidValue(f"{logdir} holds no TensorBoard event files")
    loaded, skipped = {}, []
    for folder in folders:
        try:
            loaded[folder] = _load(accumulator, folder)
        except _unreadable() as e:  # a broken or foreign file: the other folders go on
            skipped.append(f"{folder}: its event files cannot be read ({first_line(e)})")
    for folder, (scalars, hparams, _) in list(loaded.items()):
        if not scalars and hparams is None:  # (images only, or a file TensorBoard skipped)
            del loaded[folder]
            skipped.append(f"{folder}: no scalars or hparams in its event files")
    owners = {}  # a folder of add_hparams -> the run folder above it
    for folder, (_, hparams, _) in loaded.items():
        if hparams is not None and folder.parent in loaded:
            owners[folder] = folder.parent
    runs = []
    for folder in loaded:
        if folder in owners:
            continue
        parts = [folder, *(f for f, owner in owners.items() if owner == folder)]
        runs.append(_run(root, experiment or root.name, parts, loaded))
    return runs, skipped


def _unreadable() -> tuple[type[BaseException], ...]:
    """What TensorBoard's reader raises on a file that is broken or not its own."""
    from google.protobuf.message import DecodeError

    return (ValueError, OSError, OverflowError, RecursionError, MemoryError, DecodeError)


def _run(root: Path, experiment: str, parts: list[Path], loaded: dict[Path, Any]) -> SourceRun:
    folder = parts[0]
    args: dict[str, Any] = {}
    status = "COMPLETED"
    scalars: dict[str, list[tuple[int, float, float]]] = {}
    for part in parts:
        tags, hparams, ended = loaded[part]
        args.update(hparams or {})
        status = _ENDED.get(ended, status)
        for tag, values in tags.items():
            scalars.setdefault(tag, []).extend(values)
    times = [w for w in (epoch_time(t) for values in scalars.values() for _, t, _ in values) if w]
    first_file = min(p.name for p in folder.iterdir() if p.name.startswith(_EVENTS))
    relative = folder.relative_to(root).as_posix()
    return SourceRun(
        source=SOURCE,
        key=first_file,
        experiment=experiment,
        status=status,
        started=min(times, default=None),
        ended=max(times, default=None),
        comment=relative if relative != "." else root.name,
        args=args,
        extras={"logdir": str(root), "run": relative},
        points=lambda: _points(scalars),
    )


def _points(scalars: dict[str, list[tuple[int, float, float]]]) -> Iterator[Point]:
    for tag, values in scalars.items():
        for step, wall_time, value in values:
            yield tag, step, value, wall_time if epoch_time(wall_time) else None


Loaded = tuple[dict[str, Any], "dict[str, Any] | None", "int | None"]


def _load(accumulator: Any, folder: Path) -> Loaded:
    """A run folder's scalars ``{tag: [(step, wall time, value)]}``, its hparams (None:
    none logged) and its hparams session end status (None: none)."""
    from google.protobuf import json_format
    from tensorboard.plugins.hparams import metadata, plugin_data_pb2
    from tensorboard.util import tensor_util

    events = accumulator.EventAccumulator(
        str(folder),
        size_guidance={accumulator.SCALARS: 0, accumulator.TENSORS: 0},  # 0: keep every one
        purge_orphaned_data=False,
    )
    events.Reload()
    tags = events.Tags()
    scalars = {
        t: [(e.step, e.wall_time, e.value) for e in events.Scalars(t)] for t in tags["scalars"]
    }
    for tag in tags["tensors"]:  # TF2's scalars are tensors of the scalars plugin
        if events.SummaryMetadata(tag).plugin_data.plugin_name == "scalars":
            scalars[tag] = [
                (e.step, e.wall_time, float(tensor_util.make_ndarray(e.tensor_proto)))
                for e in events.Tensors(tag)
            ]
    try:
        content = events.PluginTagToContent(metadata.PLUGIN_NAME)
    except KeyError:  # no hparams in this folder
        return scalars, None, None
    hparams: dict[str, Any] | None = None
    ended = None
    for raw in content.values():
        data = plugin_data_pb2.HParamsPluginData.FromString(raw)
        kind = data.WhichOneof("data")
        if kind == "session_start_info":
            start = data.session_start_info.hparams
            hparams = {k: _value(json_format, v) for k, v in start.items()}
        elif kind == "session_end_info":
            ended = data.session_end_info.status
    return scalars, hparams, ended


def _value(json_format: Any, value: Any) -> Any:
    """A hyperparameter (a protobuf ``Value``) as Python; NaN as the float (which
    protobuf's own JSON refuses)."""
    kind = value.WhichOneof("kind")
    if kind in ("number_value", "string_value", "bool_value"):
        return getattr(value, kind)
    if kind in (None, "null_value"):
        return None
    try:
        return json_format.MessageToDict(value)
    except ValueError:  # (a NaN inside a list or struct)
        return str(value)
