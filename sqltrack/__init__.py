"""sqltrack: track machine-learning experiments in a plain SQL database.

Everything public is re-exported here; see the README for a tour.
"""

from __future__ import annotations

from ._admin.deletion import (
    delete_experiments,
    delete_runs,
    gc_deleted,
    restore_experiments,
    restore_runs,
)
from ._admin.merge import MergeResult, merge_database
from ._admin.reconcile import reconcile
from ._admin.sync import SyncResult, sync_spools
from ._base.digests import file_digest
from ._base.values import json_value
from ._db.client import Client
from ._db.schema import setup
from ._import.from_mlflow import import_mlflow
from ._import.from_tensorboard import import_tensorboard
from ._import.from_trackio import import_trackio
from ._import.from_wandb import import_wandb
from ._import.model import ImportResult
from ._live.handles import Experiment, find_runs, run_from_env
from ._live.places import spool_dir
from ._live.run import Run
from ._live.spool import spool_files
from ._read.compare import compare_runs, metric_summary
from ._read.fetch import metrics_dataframe, read_metrics, stale_runs
from ._read.plot import plot_curves
from ._read.report import report_data, write_report
from ._read.search import runs_dataframe, summarize
from ._version import __version__
from ._write.artifacts import (
    Artifact,
    artifact_exists,
    artifacts_dataframe,
    best_checkpoint,
    find_artifacts,
    get_artifact,
    latest_artifact_version,
    run_log_artifact,
    run_use_artifact,
    verify_artifacts,
)
from ._write.experiments import (
    experiment_add_link,
    experiment_add_tags,
    experiment_remove_link,
    experiment_remove_tags,
    experiment_set_comment,
    experiment_set_name,
    experiment_set_tags,
)
from ._write.provenance import run_set_code, run_set_hardware, run_set_packages
from ._write.run_json import (
    run_add_args,
    run_add_env,
    run_add_extras,
    run_remove_args,
    run_remove_env,
    run_remove_extras,
    run_set_args,
    run_set_env,
    run_set_extras,
)
from ._write.runs import (
    RUN_STATUSES,
    run_add_link,
    run_add_tags,
    run_remove_link,
    run_remove_tags,
    run_set_comment,
    run_set_created,
    run_set_started,
    run_set_status,
    run_set_tags,
    run_set_updated,
)
from ._write.samples import run_log_sample
from ._write.store import run_add_metrics
from ._write.summaries import refresh_summaries
from .errors import (
    ConfigError,
    ConnectionFailed,
    ConnectionLost,
    DatabaseError,
    InvalidMetricName,
    InvalidValue,
    LockTimeout,
    NotFound,
    PermissionDenied,
    SchemaError,
    SQLTrackError,
    SQLTrackWarning,
)

__all__ = [
    "RUN_STATUSES",
    "Artifact",
    "Client",
    "ConfigError",
    "ConnectionFailed",
    "ConnectionLost",
    "DatabaseError",
    "Experiment",
    "ImportResult",
    "InvalidMetricName",
    "InvalidValue",
    "LockTimeout",
    "MergeResult",
    "NotFound",
    "PermissionDenied",
    "Run",
    "SQLTrackError",
    "SQLTrackWarning",
    "SchemaError",
    "SyncResult",
    "__version__",
    "artifact_exists",
    "artifacts_dataframe",
    "best_checkpoint",
    "compare_runs",
    "delete_experiments",
    "delete_runs",
    "experiment_add_link",
    "experiment_add_tags",
    "experiment_remove_link",
    "experiment_remove_tags",
    "experiment_set_comment",
    "experiment_set_name",
    "experiment_set_tags",
    "file_digest",
    "find_artifacts",
    "find_runs",
    "gc_deleted",
    "get_artifact",
    "import_mlflow",
    "import_tensorboard",
    "import_trackio",
    "import_wandb",
    "json_value",
    "latest_artifact_version",
    "merge_database",
    "metric_summary",
    "metrics_dataframe",
    "plot_curves",
    "read_metrics",
    "reconcile",
    "refresh_summaries",
    "report_data",
    "restore_experiments",
    "restore_runs",
    "run_add_args",
    "run_add_env",
    "run_add_extras",
    "run_add_link",
    "run_add_metrics",
    "run_add_tags",
    "run_from_env",
    "run_log_artifact",
    "run_log_sample",
    "run_remove_args",
    "run_remove_env",
    "run_remove_extras",
    "run_remove_link",
    "run_remove_tags",
    "run_set_args",
    "run_set_code",
    "run_set_comment",
    "run_set_created",
    "run_set_env",
    "run_set_extras",
    "run_set_hardware",
    "run_set_packages",
    "run_set_started",
    "run_set_status",
    "run_set_tags",
    "run_set_updated",
    "run_use_artifact",
    "runs_dataframe",
    "setup",
    "spool_dir",
    "spool_files",
    "stale_runs",
    "summarize",
    "sync_spools",
    "verify_artifacts",
    "write_report",
]
