"""The experiment handle and the ways to a run: :class:`Experiment`,
:func:`run_from_env`, :func:`find_runs` (each makes :class:`~sqltrack.Run` handles).

A handle holds a client and an id and delegates each method to its module-level twin
(``experiment.add_tags("x")`` is ``experiment_add_tags(client, experiment.id, "x")``),
so every statement exists once, in :mod:`sqltrack._write`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from .._db.client import Client, operation
from .._read.search import find_run_ids
from .._write.experiments import (
    check_name,
    experiment_add_link,
    experiment_add_tags,
    experiment_remove_link,
    experiment_remove_tags,
    experiment_set_comment,
    experiment_set_name,
    experiment_set_tags,
    get_or_create_experiment,
)
from .._write.rows import check_id
from ..errors import InvalidValue
from .run import Run


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
    experiment_id, name, run_id = ids_from_env()
    if name is None and experiment_id is None:
        raise InvalidValue("set SQLTRACK_EXPERIMENT_NAME or SQLTRACK_EXPERIMENT_ID (or both)")
    with client:
        experiment_id = get_or_create_experiment(client, experiment_id, name)
        return Run(client, experiment_id, run_id)


def ids_from_env() -> tuple[int | None, str | None, int | None]:
    """``(experiment id, experiment name, run id)`` from ``SQLTRACK_EXPERIMENT_ID``,
    ``SQLTRACK_EXPERIMENT_NAME`` and ``SQLTRACK_RUN_ID``, None where one is not set
    (:func:`run_from_env`, and the integrations' defaults).

    :raises InvalidValue: an id that is not a positive integer, naming its variable
    """
    name = os.environ.get("SQLTRACK_EXPERIMENT_NAME") or None
    found = []
    for variable in ("SQLTRACK_EXPERIMENT_ID", "SQLTRACK_RUN_ID"):
        text = os.environ.get(variable) or None
        if text is not None and not (text.isascii() and text.strip().isdigit()):
            raise InvalidValue(f"{variable} is {text!r}, not a positive integer")
        found.append(None if text is None else check_id(text, variable))
    return found[0], None if name is None else check_name(name), found[1]


@operation
def find_runs(
    client: Client,
    experiment: int | str | None = None,
    status: str | Iterable[str] | None = None,
    tags: str | Iterable[str] | None = None,
    args: Mapping[str, Any] | None = None,
    where: str | tuple[str, Mapping[str, Any]] | None = None,
    deleted: bool | None = False,
) -> list[Run]:
    """The runs that match every filter given, ordered by id (deleted runs, and the runs of
    deleted experiments, left out unless ``deleted`` is True, only them, or None, all).

    Example::

        runs = find_runs(client, experiment="resnet-cifar", status="COMPLETED",
                         tags="baseline", args={"lr": 0.1},
                         where=("runs.time_started > :since", {"since": since}))

    :param experiment: an experiment's name or id
    :param status: a status, or several (any of them)
    :param tags: a tag, or several (all of them)
    :param args: ``{name: value}`` that the run's arguments contain (equal JSON values)
    :param where: a condition of your own on the columns of ``runs`` and ``experiments``
        (qualify them: ``runs.comment``), with ``:name`` placeholders and a dict of values
    :return: a :class:`~sqltrack.Run` per run (made without further queries)
    :raises InvalidValue: a filter of the wrong type or an unknown status
    :raises NotFound: ``experiment`` names no experiment (one without matching runs
        gives an empty list)
    """
    found = find_run_ids(
        client,
        experiment=experiment,
        status=status,
        tags=tags,
        args=args,
        where=where,
        deleted=deleted,
    )
    return [Run.of(client, run_id, experiment_id) for run_id, experiment_id in found]
