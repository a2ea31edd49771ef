"""The handles: :class:`Experiment`, :class:`Run` and :func:`run_from_env`.

A handle holds a client and an id and delegates each method to its module-level twin
(``run.add_tags("x")`` is ``run_add_tags(client, run.id, "x")``), so every statement
exists once, in :mod:`sqltrack.experiments`, :mod:`sqltrack.runs` or
:mod:`sqltrack.metrics`; inside ``track()`` a run's calls wait out an outage
(``Tracking._tracked``). A run's lifecycle comes from :class:`~sqltrack.tracking.Tracking`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from .artifacts import Artifact, run_log_artifact, run_use_artifact
from .client import Client, operation
from .errors import InvalidValue
from .experiments import (
    experiment_add_link,
    experiment_add_tags,
    experiment_remove_link,
    experiment_remove_tags,
    experiment_set_comment,
    experiment_set_name,
    experiment_set_tags,
    get_or_create_experiment,
)
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
    get_or_create_run,
    resolve_run_id,
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
from .tracking import Tracking
from .values import Auto

__all__ = ["Experiment", "Run", "run_from_env"]


class Run(Tracking):
    """Helper class to manage runs.

    If ``run_id`` is None, a new run with an unused id is created. If it is an int,
    that run is used, or created with that id if it does not exist. If it is a string,
    the id is read from that environment variable (e.g. ``"SLURM_JOB_ID"``), so a
    requeued job resumes its run. See :func:`~sqltrack.runs.get_or_create_run`.

    All methods return ``self`` to allow chaining, e.g.
    ``Run(client, exp_id).set_comment("nice").add_tags("tag")``. Starting, stopping,
    tracking and logging metrics are described in :class:`~sqltrack.tracking.Tracking`.

    :param client: the Client to use.
    :param experiment_id: id of the experiment; may be None if an existing run_id is given.
    :param run_id: id of the run, name of an environment variable holding it, or None.
    """

    def __init__(
        self, client: Client, experiment_id: int | None = None, run_id: int | str | None = None
    ) -> None:
        run, experiment = get_or_create_run(client, experiment_id, resolve_run_id(run_id))
        super().__init__(client, run, experiment)

    @classmethod
    def of(cls, client: Client, run_id: int, experiment_id: int) -> Run:
        """The handle of a run known to exist, made without a query (what
        :func:`~sqltrack.search.find_runs` returns)."""
        run = cls.__new__(cls)
        Tracking.__init__(run, client, run_id, experiment_id)
        return run

    def __repr__(self) -> str:
        return f"<sqltrack.Run {self.id} of experiment {self.experiment_id}>"

    def set_status(self, status: str) -> Run:
        """Set the run status. See :func:`run_set_status`."""
        self._tracked(run_set_status, status)
        return self

    def set_comment(self, comment: str | None) -> Run:
        """Set the run comment."""
        self._tracked(run_set_comment, comment)
        return self

    def set_created(self, dt: Auto | datetime | None = "auto") -> Run:
        """Set time_created for the run. See :func:`run_set_created`."""
        self._tracked(run_set_created, dt)
        return self

    def set_started(self, dt: Auto | datetime | None = "auto") -> Run:
        """Set time_started for the run. See :func:`run_set_started`."""
        self._tracked(run_set_started, dt)
        return self

    def set_updated(self, dt: Auto | datetime | None = "auto") -> Run:
        """Set time_updated for the run. See :func:`run_set_updated`."""
        self._tracked(run_set_updated, dt)
        return self

    def set_tags(self, *tags: str) -> Run:
        """Set the run tags. See :func:`run_set_tags`."""
        self._tracked(run_set_tags, *tags)
        return self

    def add_tags(self, *tags: str) -> Run:
        """Add tags to the run. See :func:`run_add_tags`."""
        self._tracked(run_add_tags, *tags)
        return self

    def remove_tags(self, *tags: str) -> Run:
        """Remove tags from the run. See :func:`run_remove_tags`."""
        self._tracked(run_remove_tags, *tags)
        return self

    def add_link(self, kind: str, to_id: int) -> Run:
        """Add a link of ``kind`` from this run to run ``to_id``."""
        self._tracked(run_add_link, kind, to_id)
        return self

    def remove_link(self, kind: str, to_id: int) -> Run:
        """Remove a link of ``kind`` from this run to run ``to_id``."""
        self._tracked(run_remove_link, kind, to_id)
        return self

    def set_args(self, args: Auto | Mapping[str, Any] | Any | None = "auto") -> Run:
        """Set the run parameters. See :func:`run_set_args`."""
        self._tracked(run_set_args, args)
        return self

    def add_args(self, args: Auto | Mapping[str, Any] | Any | None = "auto") -> Run:
        """Add parameters to the run. See :func:`run_add_args`."""
        self._tracked(run_add_args, args)
        return self

    def remove_args(self, *args: str | Mapping[str, Any]) -> Run:
        """Remove parameters from the run, by name (or the keys of a dict)."""
        self._tracked(run_remove_args, *args)
        return self

    def set_env(self, env: Auto | Mapping[str, Any] | None = "auto") -> Run:
        """Set the run environment. See :func:`run_set_env`."""
        self._tracked(run_set_env, env)
        return self

    def add_env(self, env: Auto | Mapping[str, Any] | None = "auto") -> Run:
        """Add environment variables to the run. See :func:`run_add_env`."""
        self._tracked(run_add_env, env)
        return self

    def remove_env(self, *env: str | Mapping[str, Any]) -> Run:
        """Remove environment variables from the run, by name (or the keys of a dict)."""
        self._tracked(run_remove_env, *env)
        return self

    def set_extras(self, extras: Mapping[str, Any] | None = None) -> Run:
        """Set the run extras. See :func:`run_set_extras`."""
        self._tracked(run_set_extras, extras)
        return self

    def add_extras(self, extras: Mapping[str, Any] | None = None) -> Run:
        """Add extras to the run. See :func:`run_add_extras`."""
        self._tracked(run_add_extras, extras)
        return self

    def remove_extras(self, *extras: str | Mapping[str, Any]) -> Run:
        """Remove extras from the run, by name (or the keys of a dict)."""
        self._tracked(run_remove_extras, *extras)
        return self

    def set_code(self, code: Auto | Mapping[str, Any] | None = "auto", diff: bool = True) -> Run:
        """Record the git state of the code. See :func:`~sqltrack.run_state.run_set_code`."""
        self._tracked(run_set_code, code, diff)
        return self

    def set_packages(self, packages: Auto | Mapping[str, Any] | None = "auto") -> Run:
        """Record the Python packages. See :func:`~sqltrack.run_state.run_set_packages`."""
        self._tracked(run_set_packages, packages)
        return self

    def set_hardware(self, hardware: Auto | Mapping[str, Any] | None = "auto") -> Run:
        """Record the hardware. See :func:`~sqltrack.run_state.run_set_hardware`."""
        self._tracked(run_set_hardware, hardware)
        return self

    # -- artifacts ------------------------------------------------------------------------

    def log_artifact(
        self,
        uri: str | os.PathLike[str],
        name: str | None = None,
        kind: str = "file",
        step: int | None = None,
        metadata: Mapping[str, Any] | None = None,
        sha256: str | None = None,
        size: int | None = None,
        uid: str | None = None,
    ) -> Artifact:
        """Log a file, directory or URL as the next version of ``name``; returns the
        :class:`~sqltrack.artifacts.Artifact`. See :func:`run_log_artifact`."""
        uid = uuid.uuid4().hex if uid is None else uid  # one key for every try
        args = (uri, name, kind, step, metadata, sha256, size, uid)
        return self._tracked(run_log_artifact, *args)

    def log_sample(
        self,
        step: int,
        conditioning: Any,
        output: Any,
        kind: str | None = None,
        artifact: Artifact | int | None = None,
        uid: str | None = None,
    ) -> int:
        """Log a generated sample at a step with its conditioning; returns its id.
        See :func:`~sqltrack.samples.run_log_sample`."""
        uid = uuid.uuid4().hex if uid is None else uid  # one key for every try
        args = (step, conditioning, output, kind, artifact, uid)
        return self._tracked(run_log_sample, *args)

    def use_artifact(self, name: str, version: int | None = None) -> Artifact:
        """Record that this run used an artifact (the latest version by default) and
        return it. See :func:`run_use_artifact`."""
        return self._tracked(run_use_artifact, name, version)


class Experiment:
    """Helper class to create experiments, as well as runs for experiments.

    All methods except :meth:`get_run` return ``self`` to allow chaining, e.g.
    ``Experiment(client, name="resnet").set_comment("nice").add_tags("baseline")``.

    :param client: the Client to use.
    :param experiment_id: id of the experiment; may be None if name is given.
    :param name: name of the experiment; created if no experiment has this name.
        May be None if experiment_id is given. See :func:`get_or_create_experiment`.
    """

    def __init__(
        self, client: Client, experiment_id: int | None = None, name: str | None = None
    ) -> None:
        self.client = client
        self.id: int = get_or_create_experiment(client, experiment_id, name)

    def __repr__(self) -> str:
        return f"<sqltrack.Experiment {self.id}>"

    def set_name(self, name: str) -> Experiment:
        """Set the experiment name."""
        experiment_set_name(self.client, self.id, name)
        return self

    def set_comment(self, comment: str | None) -> Experiment:
        """Set the experiment comment."""
        experiment_set_comment(self.client, self.id, comment)
        return self

    def set_tags(self, *tags: str) -> Experiment:
        """Set tags of the experiment."""
        experiment_set_tags(self.client, self.id, *tags)
        return self

    def add_tags(self, *tags: str) -> Experiment:
        """Add tags to the experiment."""
        experiment_add_tags(self.client, self.id, *tags)
        return self

    def remove_tags(self, *tags: str) -> Experiment:
        """Remove tags from the experiment."""
        experiment_remove_tags(self.client, self.id, *tags)
        return self

    def add_link(self, kind: str, to_id: int) -> Experiment:
        """Add a link of ``kind`` from this experiment to experiment ``to_id``."""
        experiment_add_link(self.client, self.id, kind, to_id)
        return self

    def remove_link(self, kind: str, to_id: int) -> Experiment:
        """Remove a link of ``kind`` from this experiment to experiment ``to_id``."""
        experiment_remove_link(self.client, self.id, kind, to_id)
        return self

    def get_run(self, run_id: int | str | None = None) -> Run:
        """Get a :class:`Run` of this experiment; see :class:`Run` for ``run_id``."""
        return Run(self.client, self.id, run_id)


@operation
def run_from_env(client: Client) -> Run:
    """Get the :class:`Run` defined by environment variables.

    The experiment comes from ``SQLTRACK_EXPERIMENT_NAME`` and/or
    ``SQLTRACK_EXPERIMENT_ID`` (at least one; by name it is created if missing). The run
    is ``SQLTRACK_RUN_ID`` if set (created with that id if missing, resumed if it
    exists), else a new run.

    :raises InvalidValue: neither experiment variable is set, or an id is not a number.
    """
    name = os.environ.get("SQLTRACK_EXPERIMENT_NAME") or None
    exp_text = os.environ.get("SQLTRACK_EXPERIMENT_ID") or None
    run_text = os.environ.get("SQLTRACK_RUN_ID") or None
    if name is None and exp_text is None:
        raise InvalidValue("set SQLTRACK_EXPERIMENT_NAME or SQLTRACK_EXPERIMENT_ID (or both)")
    experiment_id = None
    if exp_text is not None:
        if not exp_text.strip().isdigit():
            raise InvalidValue(f"SQLTRACK_EXPERIMENT_ID is {exp_text!r}, not a positive integer")
        experiment_id = int(exp_text)
    if run_text is not None and not run_text.strip().isdigit():
        raise InvalidValue(f"SQLTRACK_RUN_ID is {run_text!r}, not a positive integer")
    with client:
        experiment_id = get_or_create_experiment(client, experiment_id, name)
        return Run(client, experiment_id, None if run_text is None else int(run_text))
