"""A run's columns, tags, links, documents, artifacts and samples: the methods of
:class:`~sqltrack.Run` that delegate to their function twins (``run.add_tags("x")`` is
``run_add_tags(client, run.id, "x")``) through the run's
:class:`~sqltrack._live.delivery.Delivery`, which waits out an outage inside ``track()``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from .._base.values import Auto
from .._write.artifacts import Artifact, run_log_artifact, run_use_artifact
from .._write.provenance import run_set_code, run_set_hardware, run_set_packages
from .._write.run_json import (
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
from .._write.runs import (
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
from .._write.samples import run_log_sample
from .delivery import Delivery

Doc = Auto | Mapping[str, Any] | None
R = TypeVar("R", bound="RunColumns")


class RunColumns:
    """The delegating methods of :class:`~sqltrack.Run` (each returns the run, so calls
    chain, except ``log_*`` and ``use_artifact``)."""

    _delivery: Delivery

    # -- columns, tags, links, documents (each: its function twin) -------------------------

    def _call(self: R, fn: Callable[..., Any], *args: Any) -> R:
        self._delivery.wait_for(fn, *args)
        return self

    def set_status(self: R, status: str) -> R:
        """Set the run status. See :func:`~sqltrack.run_set_status`."""
        return self._call(run_set_status, status)

    def set_comment(self: R, comment: str | None) -> R:
        """Set the run comment."""
        return self._call(run_set_comment, comment)

    def set_created(self: R, dt: Auto | datetime | None = "auto") -> R:
        """Set time_created. See :func:`~sqltrack.run_set_created`."""
        return self._call(run_set_created, dt)

    def set_started(self: R, dt: Auto | datetime | None = "auto") -> R:
        """Set time_started. See :func:`~sqltrack.run_set_started`."""
        return self._call(run_set_started, dt)

    def set_updated(self: R, dt: Auto | datetime | None = "auto") -> R:
        """Set time_updated. See :func:`~sqltrack.run_set_updated`."""
        return self._call(run_set_updated, dt)

    def set_tags(self: R, *tags: str) -> R:
        """Set the run tags. See :func:`~sqltrack.run_set_tags`."""
        return self._call(run_set_tags, *tags)

    def add_tags(self: R, *tags: str) -> R:
        """Add tags to the run. See :func:`~sqltrack.run_add_tags`."""
        return self._call(run_add_tags, *tags)

    def remove_tags(self: R, *tags: str) -> R:
        """Remove tags from the run. See :func:`~sqltrack.run_remove_tags`."""
        return self._call(run_remove_tags, *tags)

    def add_link(self: R, kind: str, to_id: int) -> R:
        """Add a link of ``kind`` from this run to run ``to_id``."""
        return self._call(run_add_link, kind, to_id)

    def remove_link(self: R, kind: str, to_id: int) -> R:
        """Remove a link of ``kind`` from this run to run ``to_id``."""
        return self._call(run_remove_link, kind, to_id)

    def set_args(self: R, args: Doc | Any = "auto") -> R:
        """Set the run parameters. See :func:`~sqltrack.run_set_args`."""
        return self._call(run_set_args, args)

    def add_args(self: R, args: Doc | Any = "auto") -> R:
        """Add parameters to the run. See :func:`~sqltrack.run_add_args`."""
        return self._call(run_add_args, args)

    def remove_args(self: R, *args: str | Mapping[str, Any]) -> R:
        """Remove parameters from the run, by name (or the keys of a dict)."""
        return self._call(run_remove_args, *args)

    def set_env(self: R, env: Doc = "auto") -> R:
        """Set the run environment. See :func:`~sqltrack.run_set_env`."""
        return self._call(run_set_env, env)

    def add_env(self: R, env: Doc = "auto") -> R:
        """Add environment variables to the run. See :func:`~sqltrack.run_add_env`."""
        return self._call(run_add_env, env)

    def remove_env(self: R, *env: str | Mapping[str, Any]) -> R:
        """Remove environment variables from the run, by name (or the keys of a dict)."""
        return self._call(run_remove_env, *env)

    def set_extras(self: R, extras: Mapping[str, Any] | None = None) -> R:
        """Set the run extras. See :func:`~sqltrack.run_set_extras`."""
        return self._call(run_set_extras, extras)

    def add_extras(self: R, extras: Mapping[str, Any] | None = None) -> R:
        """Add extras to the run. See :func:`~sqltrack.run_add_extras`."""
        return self._call(run_add_extras, extras)

    def remove_extras(self: R, *extras: str | Mapping[str, Any]) -> R:
        """Remove extras from the run, by name (or the keys of a dict)."""
        return self._call(run_remove_extras, *extras)

    def set_code(self: R, code: Doc = "auto", diff: bool = True) -> R:
        """Record the git state of the code. See :func:`~sqltrack.run_set_code`."""
        return self._call(run_set_code, code, diff)

    def set_packages(self: R, packages: Doc = "auto") -> R:
        """Record the Python packages. See :func:`~sqltrack.run_set_packages`."""
        return self._call(run_set_packages, packages)

    def set_hardware(self: R, hardware: Doc = "auto") -> R:
        """Record the hardware. See :func:`~sqltrack.run_set_hardware`."""
        return self._call(run_set_hardware, hardware)

    # -- artifacts and samples ----------------------------------------------------------

    def log_artifact(
        self: R,
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
        :class:`~sqltrack.Artifact`. See :func:`~sqltrack.run_log_artifact`."""
        uid = uuid.uuid4().hex if uid is None else uid  # one key for every try
        args = (uri, name, kind, step, metadata, sha256, size, uid)
        return self._delivery.wait_for(run_log_artifact, *args)

    def log_sample(
        self: R,
        step: int,
        conditioning: Any,
        output: Any,
        kind: str | None = None,
        artifact: Artifact | int | None = None,
        uid: str | None = None,
    ) -> int:
        """Log a generated sample at a step with its conditioning; returns its id.
        See :func:`~sqltrack.run_log_sample`."""
        uid = uuid.uuid4().hex if uid is None else uid  # one key for every try
        return self._delivery.wait_for(
            run_log_sample, step, conditioning, output, kind, artifact, uid
        )

    def use_artifact(self: R, name: str, version: int | None = None) -> Artifact:
        """Record that this run used an artifact (the latest version by default) and
        return it. See :func:`~sqltrack.run_use_artifact`."""
        return self._delivery.wait_for(run_use_artifact, name, version)
