"""sqltrack: track machine-learning experiments in a plain SQL database.

Everything public is re-exported here; see the README for a tour.
"""

from __future__ import annotations

from .artifacts import (
    Artifact,
    artifact_exists,
    artifacts_dataframe,
    best_checkpoint,
    find_artifacts,
    get_artifact,
    latest_artifact_version,
    run_log_artifact,
    run_use_artifact,
)
from .client import Client
from .compare import compare_runs
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
from .experiments import (
    experiment_add_link,
    experiment_add_tags,
    experiment_remove_link,
    experiment_remove_tags,
    experiment_set_comment,
    experiment_set_name,
    experiment_set_tags,
)
from .handles import Experiment, Run, run_from_env
from .lifecycle import (
    delete_experiments,
    delete_runs,
    gc_deleted,
    restore_experiments,
    restore_runs,
)
from .metrics import run_add_metrics
from .read import metrics_dataframe, read_metrics, stale_runs
from .reconcile import reconcile
from .run_json import (
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
from .run_state import run_set_code, run_set_hardware, run_set_packages
from .runs import (
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
from .samples import run_log_sample
from .schema import setup
from .search import find_runs, runs_dataframe, summarize
from .summaries import refresh_summaries
from .values import json_value

__version__ = "0.2.0"

__all__ = [
    "RUN_STATUSES",
    "Artifact",
    "Client",
    "ConfigError",
    "ConnectionFailed",
    "ConnectionLost",
    "DatabaseError",
    "Experiment",
    "InvalidMetricName",
    "InvalidValue",
    "LockTimeout",
    "NotFound",
    "PermissionDenied",
    "Run",
    "SQLTrackError",
    "SQLTrackWarning",
    "SchemaError",
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
    "find_artifacts",
    "find_runs",
    "gc_deleted",
    "get_artifact",
    "json_value",
    "latest_artifact_version",
    "metrics_dataframe",
    "read_metrics",
    "reconcile",
    "refresh_summaries",
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
    "stale_runs",
    "summarize",
]
