"""XGBoost: :class:`SqltrackCallback`, an ``xgboost.callback.TrainingCallback`` for
``xgboost.train``, ``xgboost.cv`` and the scikit-learn estimators' ``callbacks=``.

Example::

    from sqltrack.integrations.xgboost import SqltrackCallback

    with SqltrackCallback(experiment="higgs", params=params) as cb:
        booster = xgboost.train(params, dtrain, 100, evals=[(dvalid, "valid")], callbacks=[cb])

- After each iteration, every evaluation result of that iteration (each data set of
  ``evals``, each metric) is logged at ``step=iteration`` (XGBoost's count of this
  training's rounds, from 0, also after ``xgb_model=``: the index in ``evals_result``),
  named as XGBoost prints them: ``valid-rmse``; under ``xgboost.cv``, ``test-rmse-mean``
  and ``test-rmse-std``, as the columns of its result.
- ``params`` (the dict given to ``xgboost.train``; XGBoost does not hand it to a
  callback) is added to the run's args before training.
- ``after_training`` (early stopping included) ends the run COMPLETED. XGBoost has no
  hook for a training that raises: used as a ``with`` block, the callback ends the run
  FAILED (CANCELLED after Ctrl-C) there; otherwise at the interpreter's exit.
- Put it before an ``EarlyStopping`` in ``callbacks``: XGBoost calls no further callback
  of the iteration where one says stop (``early_stopping_rounds=`` adds its own last).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import xgboost

from .._db.client import Client
from .._live.run import Run
from ..errors import InvalidValue
from ._session import EndsWithBlock, Session


class SqltrackCallback(xgboost.callback.TrainingCallback, EndsWithBlock):
    """Log an XGBoost training to a sqltrack run.

    :param experiment: the experiment's name or id (default ``$SQLTRACK_EXPERIMENT_NAME``)
    :param run_id: None for a new run (or ``$SQLTRACK_RUN_ID``), an id, or the name of a
        variable holding one (``"SLURM_JOB_ID"``)
    :param client: default ``Client()`` (environment and config file)
    :param env: record the environment (secrets redacted)
    :param code: record the git state of the code
    :param params: the training's parameters, added to the run's args before training
    :raises InvalidValue: a bad argument, at once
    """

    def __init__(
        self,
        experiment: int | str | None = None,
        run_id: int | str | None = None,
        client: Client | None = None,
        env: bool = True,
        code: bool = True,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self._session = Session(client, experiment, run_id, env=env, code=code)
        if params is not None and not isinstance(params, Mapping):
            raise InvalidValue(f"params must be a mapping, not {type(params).__name__}")
        self._params = params

    @property
    def run(self) -> Run:
        """The :class:`~sqltrack.Run` this callback writes (created at first use)."""
        return self._session.run

    # -- what XGBoost calls -------------------------------------------------------------

    def before_training(self, model: Any) -> Any:
        """Start the run (again, for a later training); add ``params`` to its args."""
        self._session.begin(fresh=True)  # a later training: a run of its own
        if self._params:
            self._session.args(self._params)
        return model

    def after_iteration(self, model: Any, epoch: int, evals_log: Mapping[str, Any]) -> bool:
        """Log this iteration's evaluation results at ``step=epoch``; never stops it."""
        metrics: dict[str, Any] = {}
        for data, results in evals_log.items():
            for metric, history in results.items():
                if not history:
                    continue
                last = history[-1]
                if isinstance(last, tuple):  # xgboost.cv: (mean, std) over the folds
                    metrics[f"{data}-{metric}-mean"], metrics[f"{data}-{metric}-std"] = last
                else:
                    metrics[f"{data}-{metric}"] = last
        self._session.log(metrics, epoch)
        return False

    def after_training(self, model: Any) -> Any:
        """End the run COMPLETED."""
        self._session.finish("COMPLETED")
        return model
