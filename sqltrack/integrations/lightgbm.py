"""LightGBM: :class:`SqltrackCallback`, a callback for ``lightgbm.train``, ``lightgbm.cv``
and the scikit-learn estimators' ``fit(callbacks=...)``.

Example::

    from sqltrack.integrations.lightgbm import SqltrackCallback

    with SqltrackCallback(experiment="higgs") as cb:
        booster = lightgbm.train(params, dtrain, 100, valid_sets=[dvalid], callbacks=[cb])

- After each iteration, every evaluation result of that iteration (each data set of
  ``valid_sets``, each metric) is logged at ``step=iteration`` (from 0; after
  ``init_model=``, LightGBM goes on counting), named ``f"{data}-{metric}"``: ``valid-l2``;
  under ``lightgbm.cv``, ``valid-l2-mean`` and ``valid-l2-stdv``, as
  ``record_evaluation`` names them.
- The first iteration adds the training's parameters (LightGBM's ``params``, with
  ``num_iterations``) to the run's args.
- The last iteration ends the run COMPLETED. The callback's ``order`` is 25: after
  ``record_evaluation`` (20), before ``early_stopping`` (30), so the iteration where
  early stopping stops is logged; but then (``EarlyStopException``) no callback is called
  again, and the run ends as a ``with`` block ends (COMPLETED), or at the interpreter's
  exit: COMPLETED if the booster says it stopped early (``best_iteration`` set), else
  FAILED (the training raised).
- A training that raises: used as a ``with`` block, the callback ends the run FAILED
  (CANCELLED after Ctrl-C) there; otherwise at the interpreter's exit.
"""

from __future__ import annotations

from typing import Any

from .._db.client import Client
from .._live.run import Run
from ._session import EndsWithBlock, Session


class SqltrackCallback(EndsWithBlock):
    """Log a LightGBM training to a sqltrack run.

    :param experiment: the experiment's name or id (default ``$SQLTRACK_EXPERIMENT_NAME``)
    :param run_id: None for a new run (or ``$SQLTRACK_RUN_ID``), an id, or the name of a
        variable holding one (``"SLURM_JOB_ID"``)
    :param client: default ``Client()`` (environment and config file)
    :param env: record the environment (secrets redacted)
    :param code: record the git state of the code
    :raises InvalidValue: a bad argument, at once
    """

    #: LightGBM calls its callbacks by this, low first: after record_evaluation (20),
    #: before early_stopping (30), whose exception ends the iteration's calls
    order = 25
    #: called after each iteration, with its evaluation results
    before_iteration = False

    def __init__(
        self,
        experiment: int | str | None = None,
        run_id: int | str | None = None,
        client: Client | None = None,
        env: bool = True,
        code: bool = True,
    ) -> None:
        self._session = Session(client, experiment, run_id, env=env, code=code)
        self._model: Any = None  # the booster of a training not yet seen to its end

    @property
    def run(self) -> Run:
        """The :class:`~sqltrack.Run` this callback writes (created at first use)."""
        return self._session.run

    def __call__(self, env: Any) -> None:
        """Log the iteration's evaluation results (``env`` is LightGBM's
        ``CallbackEnv``); the first iteration adds the parameters, the last ends the run."""
        session = self._session
        if env.iteration == env.begin_iteration:
            session.begin(fresh=True)  # a later training: a run of its own
            session.exit_status = self._exit_status
            session.args(dict(env.params or {}))
        self._model = env.model
        metrics: dict[str, Any] = {}
        for result in env.evaluation_result_list or []:
            # an EvalResult (lightgbm >= 4.7) or a tuple: (data, metric, value, maximize[,
            # stdv]); cv() gives a mean and a standard deviation over the folds
            data, metric, value = result[0], result[1], result[2]
            stdv = result[4] if len(result) > 4 else None
            if stdv is None:
                metrics[f"{data}-{metric}"] = value
            else:
                metrics[f"{data}-{metric}-mean"] = value
                metrics[f"{data}-{metric}-stdv"] = stdv
        session.log(metrics, env.iteration)
        if env.iteration == env.end_iteration - 1:
            self._model = None
            session.finish("COMPLETED")

    def _exit_status(self) -> str | None:
        """A run open at exit: COMPLETED if early stopping ended it, else the session's
        default (FAILED, CANCELLED after Ctrl-C)."""
        model, self._model = self._model, None
        return "COMPLETED" if model is not None and _stopped_early(model) else None


def _stopped_early(model: Any) -> bool:
    """Whether LightGBM's loop ended at an ``EarlyStopException``: only then does it set
    the booster's ``best_iteration`` (0 before a ``train``, -1 before a ``cv``)."""
    best = getattr(model, "best_iteration", 0)
    return isinstance(best, int) and best > 0
