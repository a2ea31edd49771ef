"""MLflow's runs, read through MLflow's own client (``pip install mlflow``): a SQL store
(``sqlite:///mlflow.db``, ``postgresql://…``), a tracking server (``http://…``) or an
old ``./mlruns`` file store, wherever MLflow itself can still read it.

Each active run of each experiment (or of the experiments named) becomes a run of the
sqltrack experiment of the same name, keyed by MLflow's run id. docs/import.md has the
mapping.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from .._base.secrets import redact_text
from .._db.client import Client
from ..errors import ConnectionFailed, InvalidValue, SQLTrackError
from .model import (
    ImportResult,
    Point,
    ProgressHook,
    SourceArtifact,
    SourceRun,
    epoch_time,
    first_line,
)
from .target import import_runs

SOURCE = "mlflow"
#: MLflow's run statuses, as sqltrack's
STATUSES = {
    "FINISHED": "COMPLETED",
    "FAILED": "FAILED",
    "KILLED": "CANCELLED",
    "RUNNING": "RUNNING",
    "SCHEDULED": "PENDING",
}
_SYSTEM = "mlflow."  # the prefix of the tags MLflow sets itself
_NOTE = "mlflow.note.content"
_NAME = "mlflow.runName"
_PARENT = "mlflow.parentRunId"
_PAGE = 1000
_INT = re.compile(r"-?(0|[1-9]\d*)\Z")  # as Python writes an int: no + or leading 0


def _mlflow() -> Any:
    try:
        import mlflow
    except ImportError as e:
        message = f"importing from MLflow needs mlflow ({e}): pip install mlflow"
        raise SQLTrackError(message) from None
    return mlflow


def import_mlflow(
    client: Client,
    tracking_uri: str,
    experiments: Sequence[str] = (),
    dry_run: bool = False,
    progress: ProgressHook | None = None,
) -> ImportResult:
    """Import the runs of an MLflow tracking URI into ``client``'s database; a run
    imported before is left as it is (see docs/import.md for what goes where).

    Example::

        result = import_mlflow(client, "sqlite:///mlflow.db", experiments=["resnet"])
        print(result)  # imported from mlflow sqlite:///mlflow.db: 12 runs new (0 imported …

    :param tracking_uri: what ``mlflow.set_tracking_uri`` takes: ``sqlite:///mlflow.db``,
        ``postgresql://…``, ``http://host:5000``, a ``./mlruns`` folder
    :param experiments: the names of the experiments to import (default: all)
    :param dry_run: write nothing; the result says what would be imported
    :param progress: called with (runs done, runs in all) after each run
    :raises InvalidValue: an experiment named is not there
    :raises SQLTrackError: mlflow is not installed
    """
    with warnings.catch_warnings():  # MLflow's own deprecations (SQLAlchemy's): not the user's
        warnings.simplefilter("ignore", DeprecationWarning)
        runs = read_mlflow(tracking_uri, experiments)
        for run in runs:  # (the histories are read while the runs are written)
            run.points = _quiet(run.points, tracking_uri)
            run.artifacts = _quiet(run.artifacts, tracking_uri)
    result = ImportResult(SOURCE, redact_text(tracking_uri), dry_run)
    return import_runs(client, runs, result, progress)


def _quiet(read: Callable[[], Iterable[Any]], uri: str) -> Callable[[], list[Any]]:
    """``read`` without MLflow's deprecation warnings, its errors as sqltrack's."""

    def quiet() -> list[Any]:
        with warnings.catch_warnings(), mlflow_errors(uri):
            warnings.simplefilter("ignore", DeprecationWarning)
            return list(read())

    return quiet


@contextmanager
def mlflow_errors(uri: str) -> Iterator[None]:
    """MLflow's errors as one line each: a store it cannot reach (its client retries a
    server for minutes first) as ConnectionFailed, any other as SQLTrackError."""
    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import OperationalError

    where = redact_text(uri)
    try:
        yield
    except OperationalError as e:  # (SQLAlchemy's, under a SQL store: no server there)
        raise ConnectionFailed(f"MLflow cannot reach {where}: {first_line(e.orig or e)}") from None
    except MlflowException as e:
        text = first_line(e)
        if "Max retries exceeded" in str(e) or "ConnectionError" in str(e):
            raise ConnectionFailed(f"MLflow cannot reach {where}: {text}") from None
        raise SQLTrackError(f"MLflow cannot read {where}: {text}") from None


def _check_local(uri: str) -> None:
    """A local store that is not there is an error (MLflow would create an empty one)."""
    if uri.startswith("sqlite:///"):
        path = uri.removeprefix("sqlite:///").split("?")[0]
        if path and path != ":memory:" and not os.path.isfile(path):
            raise InvalidValue(f"no such MLflow store: {path} (from {uri})")
    elif uri.startswith("file:") or "://" not in uri:
        path = uri.removeprefix("file://").removeprefix("file:")
        if not os.path.isdir(path):
            hint = f" (a SQLite store is sqlite:///{path})" if os.path.isfile(path) else ""
            raise InvalidValue(f"no such MLflow folder: {path}{hint}")


def read_mlflow(uri: str, experiments: Sequence[str] = ()) -> list[SourceRun]:
    """The runs of the MLflow tracking URI ``uri`` (all experiments, or the ones named).

    :raises InvalidValue: an experiment named is not there
    """
    mlflow = _mlflow()
    from mlflow.entities import ViewType

    _check_local(uri)
    with mlflow_errors(uri):
        client = mlflow.MlflowClient(tracking_uri=uri)
        found = client.search_experiments(view_type=ViewType.ACTIVE_ONLY)
        return _runs(client, found, uri, experiments)


def _runs(client: Any, found: list[Any], uri: str, experiments: Sequence[str]) -> list[SourceRun]:
    if experiments:
        names = {e.name for e in found}
        missing = [n for n in experiments if n not in names]
        if missing:
            named = ", ".join(map(repr, missing))
            raise InvalidValue(f"no MLflow experiment named {named} in {redact_text(uri)}")
        found = [e for e in found if e.name in experiments]
    where = redact_text(uri)
    runs = []
    for experiment in sorted(found, key=lambda e: (len(e.experiment_id), e.experiment_id)):
        token = None
        while True:
            page = client.search_runs(
                [experiment.experiment_id], max_results=_PAGE, page_token=token,
                order_by=["attributes.start_time ASC"],
            )  # fmt: skip
            runs += [_run(client, experiment, run, where) for run in page]
            token = page.token
            if not token:
                break
    return runs


def _run(client: Any, experiment: Any, run: Any, where: str) -> SourceRun:
    info, data = run.info, run.data
    system = {k: v for k, v in data.tags.items() if k.startswith(_SYSTEM)}
    user = {k: v for k, v in data.tags.items() if not k.startswith(_SYSTEM)}
    source = SourceRun(
        source=SOURCE,
        key=info.run_id,
        experiment=experiment.name,
        status=STATUSES.get(info.status, "RUNNING"),
        started=_time(info.start_time),
        ended=_time(info.end_time),
        comment=system.get(_NOTE) or info.run_name or None,
        tags=[f"{k}={v}" if v else k for k, v in sorted(user.items())],
        args={k: param_value(v) for k, v in sorted(data.params.items())},
        extras={
            "tracking_uri": where,
            "experiment_id": experiment.experiment_id,
            "run_name": info.run_name,
            "artifact_uri": info.artifact_uri,
            "tags": system,
        },
        parent=system.get(_PARENT),
    )
    source.points = lambda: _points(client, info.run_id, sorted(data.metrics))
    source.artifacts = lambda: list(_artifacts(client, info, source.skipped))
    return source


def param_value(text: str) -> Any:
    """An MLflow param (always text) as the value it was logged as, where that is sure:
    ints, finite floats and ``True``/``False``; any other text stays text."""
    if _INT.match(text):
        return int(text)
    if text in ("True", "False"):
        return text == "True"
    try:
        value = float(text)
    except ValueError:
        return text
    return value if math.isfinite(value) and repr(value) == text else text


def _time(ms: int | None) -> datetime | None:
    return None if ms is None else epoch_time(ms / 1000)


def _points(client: Any, run_id: str, names: list[str]) -> Iterator[Point]:
    for name in names:
        history = client.get_metric_history(run_id, name)
        for m in sorted(history, key=lambda m: (m.step, m.timestamp)):
            yield name, m.step, m.value, m.timestamp / 1000


def _artifacts(client: Any, info: Any, skipped: list[str]) -> Iterator[SourceArtifact]:
    from mlflow.exceptions import MlflowException

    folders = [None]
    base = (info.artifact_uri or "").rstrip("/")
    while folders:
        folder = folders.pop()
        try:
            listed = client.list_artifacts(info.run_id, folder)
        except (MlflowException, OSError) as e:  # a store this machine cannot read
            skipped.append(f"the artifacts of MLflow run {info.run_id}: {first_line(e)}")
            return
        for entry in listed:
            if entry.is_dir:
                folders.append(entry.path)
            else:
                yield SourceArtifact(f"{base}/{entry.path}", entry.path, entry.file_size)
