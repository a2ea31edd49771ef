"""Keras 3: :class:`SqltrackCallback`, a ``keras.callbacks.Callback`` for ``model.fit``
(any backend).

Example::

    from sqltrack.integrations.keras import SqltrackCallback

    with SqltrackCallback(experiment="mnist") as cb:
        model.fit(x, y, epochs=2, validation_split=0.2, callbacks=[cb])

- The step is a global batch counter: batch ``b`` of epoch ``e`` is step
  ``e * steps + b`` (it goes on counting across further ``fit`` calls of the same
  callback, and a ``fit(initial_epoch=k)`` starts at ``k * steps``).
- Each ``log_every_n_steps``-th batch (default every one; 0: none) logs the batch's logs
  (Keras' running means over the epoch: ``loss``, ``mae``...) at its step; each epoch's
  end logs the epoch's logs (``val_`` ones included, as in ``History``) and ``epoch`` at
  the step of its last batch, where the running means are the epoch's values.
- ``on_train_begin`` adds ``epochs``, ``steps`` (per epoch) and the optimizer's config
  (``optimizer``: its ``class`` and ``get_config()``) to the run's args.
- ``on_train_end`` (early stopping included) ends the run COMPLETED. Keras has no hook
  for a ``fit`` that raises: used as a ``with`` block, the callback ends the run FAILED
  (CANCELLED after Ctrl-C) there; otherwise at the interpreter's exit.
"""

from __future__ import annotations

import logging
from typing import Any

import keras

from .._db.client import Client
from .._live.run import Run
from ..errors import InvalidValue
from ._session import EndsWithBlock, Session

log = logging.getLogger("sqltrack")


class SqltrackCallback(keras.callbacks.Callback, EndsWithBlock):  # type: ignore[misc]
    """Log a Keras ``fit`` to a sqltrack run.

    :param experiment: the experiment's name or id (default ``$SQLTRACK_EXPERIMENT_NAME``)
    :param run_id: None for a new run (or ``$SQLTRACK_RUN_ID``), an id, or the name of a
        variable holding one (``"SLURM_JOB_ID"``)
    :param client: default ``Client()`` (environment and config file)
    :param env: record the environment (secrets redacted)
    :param code: record the git state of the code
    :param log_every_n_steps: log the batch logs every this many batches (1: each one;
        0: epochs only)
    :raises InvalidValue: a bad argument, at once
    """

    def __init__(
        self,
        experiment: int | str | None = None,
        run_id: int | str | None = None,
        client: Client | None = None,
        env: bool = True,
        code: bool = True,
        log_every_n_steps: int = 1,
    ) -> None:
        super().__init__()
        self._session = Session(client, experiment, run_id, env=env, code=code)
        if (
            isinstance(log_every_n_steps, bool)
            or not isinstance(log_every_n_steps, int)
            or log_every_n_steps < 0
        ):
            raise InvalidValue(f"log_every_n_steps must be an int >= 0, not {log_every_n_steps!r}")
        self._every = log_every_n_steps
        self._batches = 0  # batches done, in all fits: the next batch's step

    @property
    def run(self) -> Run:
        """The :class:`~sqltrack.Run` this callback writes (created at first use)."""
        return self._session.run

    # -- what Keras calls ---------------------------------------------------------------

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        """Add ``epochs``, ``steps`` and the optimizer's config to the run's args."""
        params = self.params or {}
        args: dict[str, Any] = {k: params[k] for k in ("epochs", "steps") if k in params}
        optimizer = _optimizer_config(self.model)
        if optimizer:
            args["optimizer"] = optimizer
        self._session.begin()  # started (again, for a later fit: the steps go on)
        self._session.args(args)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        steps = (self.params or {}).get("steps")
        if self._batches == 0 and epoch > 0 and isinstance(steps, int):
            self._batches = epoch * steps  # fit(initial_epoch=epoch): where it left off

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        step = self._batches
        self._batches += 1
        if logs and self._every and (step + 1) % self._every == 0:
            self._session.log(logs, step)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """The epoch's logs (``val_`` included) and ``epoch``, at its last batch's step."""
        self._session.log({**(logs or {}), "epoch": epoch}, max(self._batches - 1, 0))

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self._session.finish("COMPLETED")


def _optimizer_config(model: Any) -> dict[str, Any] | None:
    """The optimizer's class and config, or None (no optimizer, or one whose config
    cannot be read: the training goes on without it)."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return None
    try:
        config = dict(optimizer.get_config())
    except Exception as e:  # a custom optimizer's get_config: worth a warning, no more
        log.warning("sqltrack: the optimizer's config is left out: %s", e)
        return None
    return {"class": type(optimizer).__name__, **config}
