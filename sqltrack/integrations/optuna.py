"""Optuna: :class:`SqltrackCallback`, a callback for ``study.optimize``: the study is an
experiment, each finished trial a run.

Example::

    from sqltrack.integrations.optuna import SqltrackCallback

    study = optuna.create_study(study_name="lr-search")
    study.optimize(objective, n_trials=20, callbacks=[SqltrackCallback()])

- The experiment is ``experiment=`` (a name or id) if given, else the study's name
  (``study.study_name``; not ``$SQLTRACK_EXPERIMENT_NAME``).
- Optuna calls the callback after each trial; it then writes that trial as a new run
  (never ``$SQLTRACK_RUN_ID``): ``trial.params`` as args; the objective value as the
  metric ``metric_name`` (default ``"value"``; a list of names for the values of a
  multi-objective study, else ``value_0``, ``value_1``...) at the step of the last
  intermediate value (0 without any); each intermediate value (``trial.report``) as
  ``intermediate_value`` at its step; ``optuna_study`` and ``optuna_trial`` (its number)
  and the trial's ``user_attrs`` (``optuna_user_attrs``) in the run's extras;
  ``time_started`` from ``trial.datetime_start``.
- The run's status is the trial's state: COMPLETE → COMPLETED, PRUNED → CANCELLED (with
  the value Optuna gives a pruned trial: its last intermediate value), FAIL → FAILED.
  A trial fails this way when its exception is in ``optimize(catch=...)``; any other
  exception leaves ``optimize`` before Optuna calls a callback, and that trial has no
  run.
- With ``n_jobs > 1``, trials are written one at a time.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime, timezone
from types import TracebackType
from typing import Any, Literal

import optuna

from .._base.names import check_metric_name
from .._db.client import Client
from .._live.run import Run
from ..errors import InvalidValue
from ._plain import jsonable
from ._session import Session, log

#: Optuna's finished trial states and the run statuses they end in
STATUSES = {"COMPLETE": "COMPLETED", "PRUNED": "CANCELLED", "FAIL": "FAILED"}

#: the name of the intermediate values (``trial.report(value, step)``)
INTERMEDIATE = "intermediate_value"


class SqltrackCallback:
    """Write each finished trial of an Optuna study as a sqltrack run.

    :param experiment: the experiment's name or id (default: the study's name)
    :param client: default ``Client()`` (environment and config file), made at the first
        trial
    :param env: record the environment of each run (secrets redacted)
    :param code: record the git state of the code in each run
    :param metric_name: the objective value's metric name, or the names of a
        multi-objective study's values
    :raises InvalidValue: a bad argument, at once
    """

    def __init__(
        self,
        experiment: int | str | None = None,
        client: Client | None = None,
        env: bool = True,
        code: bool = True,
        metric_name: str | Sequence[str] = "value",
    ) -> None:
        # the checks of every trial's session, made now (the study's name stands in)
        Session(client, "study" if experiment is None else experiment, None, from_env=False)
        self._experiment = experiment
        self._client = client
        self._env, self._code = env, code
        self._names = _metric_names(metric_name)
        self._lock = threading.Lock()  # n_jobs > 1: Optuna calls from its threads
        self._last: Session | None = None

    @property
    def run(self) -> Run:
        """The :class:`~sqltrack.Run` of the trial written last.

        :raises InvalidValue: no trial has been written yet
        """
        if self._last is None:
            raise InvalidValue("no trial has been written yet")
        return self._last.run

    def __call__(self, study: optuna.study.Study, trial: optuna.trial.FrozenTrial) -> None:
        """Write ``trial`` (finished) of ``study`` as a new run."""
        with self._lock:
            self._write(study, trial)

    def _write(self, study: optuna.study.Study, trial: optuna.trial.FrozenTrial) -> None:
        if self._client is None:
            self._client = Client()  # one for all trials
        experiment = study.study_name if self._experiment is None else self._experiment
        session = Session(
            self._client, experiment, None, env=self._env, code=self._code, from_env=False
        )
        self._last = session
        try:
            run = session.run
            if trial.datetime_start is not None:
                run.set_started(_aware(trial.datetime_start))
            extras: dict[str, Any] = {
                "optuna_study": study.study_name,
                "optuna_trial": trial.number,
            }
            if trial.user_attrs:
                extras["optuna_user_attrs"] = trial.user_attrs
            run.add_extras(jsonable(extras))
            session.args(trial.params)
            intermediate = trial.intermediate_values
            for step, value in sorted(intermediate.items()):
                session.log({INTERMEDIATE: value}, step)
            if trial.values:
                session.log(self._values(trial.values), max(intermediate, default=0))
        finally:  # the trial's state, whatever became of the rest
            session.finish(STATUSES.get(trial.state.name, "FAILED"))

    def _values(self, values: Sequence[float]) -> dict[str, float]:
        names = self._names
        if len(values) == 1 and len(names) == 1:
            return {names[0]: values[0]}
        if len(names) != len(values):
            if len(names) > 1:
                log.warning(
                    "sqltrack: %d metric names for %d objective values: value_0... instead",
                    len(names),
                    len(values),
                )
                names = ["value"]
            names = [f"{names[0]}_{i}" for i in range(len(values))]
        return dict(zip(names, values, strict=True))

    # -- as a with block ----------------------------------------------------------------

    def __enter__(self) -> SqltrackCallback:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        """Nothing is left to end: each trial's run ended as it was written (and a trial
        whose exception leaves ``optimize`` has none)."""
        return False


def _metric_names(metric_name: str | Sequence[str]) -> list[str]:
    if isinstance(metric_name, str):
        names = [metric_name]
    elif isinstance(metric_name, Sequence):
        names = list(metric_name)
    else:
        raise InvalidValue(f"metric_name must be a name or a list of names, not {metric_name!r}")
    if not names or not all(isinstance(n, str) and n for n in names):
        raise InvalidValue(f"metric_name must be a name or a list of names, not {metric_name!r}")
    for name in names:
        try:
            check_metric_name(name)
        except InvalidValue as e:
            raise InvalidValue(f"metric_name: {e}") from None
    if len(set(names)) != len(names) or INTERMEDIATE in names:
        raise InvalidValue(f"metric_name: the names must differ, and from {INTERMEDIATE!r}")
    return names


def _aware(dt: datetime) -> datetime:
    """Optuna's (naive, local) time as an aware one."""
    return dt if dt.tzinfo is not None else dt.astimezone(timezone.utc)
