"""sqltrack inside the training frameworks: a logger or callback per framework.

Each module is imported by name, never by ``import sqltrack``, which needs none of the
frameworks:

- :mod:`sqltrack.integrations.lightning`: ``SqltrackLogger``, a Lightning ``Logger``
- :mod:`sqltrack.integrations.transformers`: ``SqltrackCallback`` for HF ``Trainer``
- :mod:`sqltrack.integrations.keras`: ``SqltrackCallback`` for Keras 3 ``fit``
- :mod:`sqltrack.integrations.optuna`: ``SqltrackCallback`` for ``study.optimize``
- :mod:`sqltrack.integrations.xgboost`: ``SqltrackCallback`` for ``xgboost.train``
- :mod:`sqltrack.integrations.lightgbm`: ``SqltrackCallback`` for ``lightgbm.train``

All of them take ``client=None`` (a :class:`~sqltrack.Client` from the environment and
config file) and ``experiment=`` (a name or id; default ``$SQLTRACK_EXPERIMENT_NAME`` or
``$SQLTRACK_EXPERIMENT_ID``, as :func:`~sqltrack.run_from_env`; Optuna's default is the
study's name), all but Optuna's (a run per trial) ``run_id=None`` (a new run; an id, or
the name of a variable that holds one, e.g. ``"SLURM_JOB_ID"``), and write metrics
buffered (:meth:`Run.start(buffered=True) <sqltrack.Run.start>`), so the training loop
never waits for the database. One page per framework: docs/integrations/.
"""
