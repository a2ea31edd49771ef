"""Hugging Face Transformers: :class:`SqltrackCallback`, a ``transformers.TrainerCallback``.

Example::

    from sqltrack.integrations.transformers import SqltrackCallback

    trainer = Trainer(model, training_args, train_dataset=train, eval_dataset=test,
                      callbacks=[SqltrackCallback(experiment="bert-sst2")])
    trainer.train()

(``report_to`` names only the integrations that live inside transformers; pass
``report_to="none"`` to keep the others out.)

- ``on_train_begin``: the ``TrainingArguments`` (``to_dict()``, tokens masked by
  transformers) become the run's args, the model's config under ``model_config``.
- ``on_log``: every log (training, evaluation, the final summary) at
  ``state.global_step``, with the names the Trainer gives them (``loss``, ``eval_loss``,
  ``learning_rate``, ``epoch`` …); values that are not numbers are left out.
- ``on_save``: the checkpoint folder ``checkpoint-<step>`` as an artifact of kind
  ``checkpoint`` at that step (an evaluation at the same step pairs with it in
  :func:`~sqltrack.best_checkpoint`).
- ``on_train_end``: COMPLETED. ``Trainer.train`` has no hook for an exception: a run still
  open when the interpreter exits ends FAILED (CANCELLED after Ctrl-C); used as a
  ``with`` block, the callback ends it FAILED at once.
- Only where ``state.is_world_process_zero``: one run for a distributed training.
"""

from __future__ import annotations

import os
from typing import Any

from transformers import TrainerCallback

from .._db.client import Client
from .._live.run import Run
from ._plain import flag
from ._session import EndsWithBlock, Session


class SqltrackCallback(TrainerCallback, EndsWithBlock):
    """Log a ``Trainer``'s training to a sqltrack run.

    :param experiment: the experiment's name or id (default ``$SQLTRACK_EXPERIMENT_NAME``)
    :param run_id: None for a new run (or ``$SQLTRACK_RUN_ID``), an id, or the name of a
        variable holding one (``"SLURM_JOB_ID"``: a requeued job resumes its run)
    :param client: default ``Client()`` (environment and config file)
    :param env: record the environment (secrets redacted)
    :param code: record the git state of the code
    :param checkpoints: log each checkpoint folder as an artifact
    """

    def __init__(
        self,
        experiment: int | str | None = None,
        run_id: int | str | None = None,
        client: Client | None = None,
        env: bool = True,
        code: bool = True,
        checkpoints: bool = True,
    ) -> None:
        self._session = Session(client, experiment, run_id, env=env, code=code)
        self._checkpoints = flag(checkpoints, "checkpoints")

    @property
    def run(self) -> Run:
        """The :class:`~sqltrack.Run` this callback writes (on the main process)."""
        return self._session.run

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        self._session.begin(fresh=True)  # a later train(): a run of its own
        params = dict(args.to_dict())
        config = getattr(kwargs.get("model"), "config", None)
        if config is not None and hasattr(config, "to_dict"):
            params["model_config"] = config.to_dict()
        self._session.args(params)

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any
    ) -> None:
        if state.is_world_process_zero and logs:
            self._session.log(logs, state.global_step)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not (self._checkpoints and state.is_world_process_zero):
            return
        folder = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        if os.path.isdir(folder):
            metadata = {"epoch": state.epoch} if state.epoch is not None else {}
            self._session.artifact(folder, state.global_step, metadata)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            self._session.finish("COMPLETED")
