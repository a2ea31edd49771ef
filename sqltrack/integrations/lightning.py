"""Lightning: :class:`SqltrackLogger`, a ``lightning.pytorch.loggers.Logger``.

Example::

    from sqltrack.integrations.lightning import SqltrackLogger

    trainer = lightning.Trainer(logger=SqltrackLogger(experiment="mnist"), max_epochs=2)
    trainer.fit(model, data)

- ``name`` is the experiment, ``version`` the run id; ``log_metrics`` logs at Lightning's
  step, with names as Lightning writes them (``train/loss``); ``log_hyperparams`` adds the
  hyperparameters (a Namespace or a dict, nested kept) to the run's args.
- Each checkpoint a ``ModelCheckpoint`` saves is logged as an artifact of kind
  ``checkpoint`` at the step of the metrics logged last (a validation's), so that
  :func:`~sqltrack.best_checkpoint` pairs them; Lightning's ``global_step`` (one more) is
  in its metadata. ``last.ckpt`` is logged at a step where no other file was (else it
  holds the same weights, in a file the next save overwrites). A file that ``save_top_k``
  later deletes stays logged, as it was.
- ``finalize``: ``success`` → COMPLETED, ``failed`` → FAILED (CANCELLED after Ctrl-C or
  SIGTERM); Lightning's Slurm auto-requeue (``finished``) writes what is queued and sets
  REQUEUED, and the requeued job resumes the run with ``run_id="SLURM_JOB_ID"``.
- Rank zero only: in DDP one run is created and written; other ranks touch nothing.
  sqltrack installs no SIGTERM handler here: Lightning's own keeps working.
"""

from __future__ import annotations

import os
import sys
from argparse import Namespace
from typing import Any

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers.logger import Logger
from lightning.pytorch.utilities import rank_zero_only

from .._db.client import Client
from .._live.run import Run
from ..errors import InvalidValue
from ._plain import flag, scalar
from ._session import Session

#: Lightning's finalize statuses and the run statuses they end in ("finished", a requeue,
#: suspends the run instead)
STATUSES = {"success": "COMPLETED", "failed": "FAILED"}


class SqltrackLogger(Logger):
    """Log a Lightning fit to a sqltrack run.

    :param experiment: the experiment's name or id (default ``$SQLTRACK_EXPERIMENT_NAME``)
    :param run_id: None for a new run (or ``$SQLTRACK_RUN_ID``), an id, or the name of a
        variable holding one: ``"SLURM_JOB_ID"`` resumes the run after a requeue
    :param client: default ``Client()`` (environment and config file)
    :param save_dir: where Lightning puts checkpoints
        (``<save_dir>/<experiment>/version_<run id>/checkpoints``); default the trainer's
        ``default_root_dir`` (give one for LightningCLI, which needs ``trainer.log_dir``)
    :param env: record the environment (secrets redacted)
    :param code: record the git state of the code
    :param checkpoints: log each checkpoint file as an artifact
    """

    def __init__(
        self,
        experiment: int | str | None = None,
        run_id: int | str | None = None,
        client: Client | None = None,
        save_dir: str | os.PathLike[str] | None = None,
        env: bool = True,
        code: bool = True,
        checkpoints: bool = True,
    ) -> None:
        super().__init__()
        self._session = Session(client, experiment, run_id, env=env, code=code)
        if save_dir is not None and not isinstance(save_dir, (str, os.PathLike)):
            raise InvalidValue(f"save_dir must be a path, not {save_dir!r}")
        self._save_dir = None if save_dir is None else os.fspath(save_dir)
        self._checkpoints = flag(checkpoints, "checkpoints")
        self._checkpoint_step: int | None = None  # of the checkpoint logged last
        self._step = 0

    # -- what Lightning asks of a logger ----------------------------------------------------

    @property
    def name(self) -> str:
        return str(self._session.experiment)

    @property
    def version(self) -> int | None:
        """The run id (None on ranks other than zero, which never open the run)."""
        if _rank() > 0:
            return None
        return self._session.run.id

    @property
    def save_dir(self) -> str | None:
        return self._save_dir

    @property
    def log_dir(self) -> str | None:
        return self._save_dir

    @property
    @rank_zero_experiment
    def experiment(self) -> Run:
        """The :class:`~sqltrack.Run` (rank zero; a no-op stand-in on other ranks)."""
        return self._session.run

    @property
    @rank_zero_experiment
    def run(self) -> Run:
        """The :class:`~sqltrack.Run` this logger writes (rank zero; a no-op stand-in on
        other ranks, which never open a run)."""
        return self._session.run

    @rank_zero_only
    def log_hyperparams(
        self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any
    ) -> None:
        if isinstance(params, Namespace):
            params = vars(params)
        self._session.args(params)

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if step is not None:
            self._step = step
        self._session.log(metrics, self._step)

    @rank_zero_only
    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        """Log the file a ``ModelCheckpoint`` has just saved (Lightning calls this once per
        file) as an artifact of kind ``checkpoint``."""
        cb = checkpoint_callback
        path = getattr(cb, "_last_checkpoint_saved", None) or getattr(cb, "last_model_path", "")
        if not self._checkpoints or not path or not os.path.exists(path):
            return  # (a sharded checkpoint is a directory: logged as one)
        # at the step of the metrics logged last (a validation's, for a checkpoint that
        # monitors one), so that best_checkpoint pairs them; Lightning's count of optimizer
        # steps (one more) goes into the metadata
        step = self._step
        if os.path.abspath(path) == os.path.abspath(getattr(cb, "last_model_path", "") or "/"):
            if self._checkpoint_step == step:
                return  # last.ckpt: the weights just logged at this step, in a file reused
        metadata: dict[str, Any] = {"monitor": cb.monitor} if getattr(cb, "monitor", None) else {}
        global_step = getattr(cb, "_last_global_step_saved", None)
        if isinstance(global_step, int):
            metadata["global_step"] = global_step
        score = scalar(getattr(cb, "best_k_models", {}).get(path))
        if score is not None:
            metadata["score"] = float(score)
        self._session.artifact(path, step, metadata)
        self._checkpoint_step = step

    @rank_zero_only
    def save(self) -> None:
        """Nothing to do: the background writer writes as it goes."""

    @rank_zero_only
    def finalize(self, status: str) -> None:
        session = self._session
        if not session.opened:
            return
        if status == "finished":  # Slurm auto-requeue: the job ends; the next one resumes
            session.suspend("REQUEUED")
            return
        final = STATUSES.get(status, "CANCELLED")
        interrupted = sys.exc_info()[1]  # finalize("failed") runs inside Lightning's except
        if final == "FAILED" and _is_interruption(interrupted):
            final = "CANCELLED"
        if session.suspended is not None and final != "COMPLETED":
            final = session.suspended  # the SIGTERM that follows a requeue: still REQUEUED
        session.finish(final)


def _rank() -> int:
    """This process's global rank, as Lightning set it (0 without DDP)."""
    rank = getattr(rank_zero_only, "rank", 0)
    return rank if isinstance(rank, int) else 0


def _is_interruption(exc: BaseException | None) -> bool:
    """Ctrl-C, or Lightning's SIGTERM exception (a ``SystemExit``)."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    return isinstance(exc, (KeyboardInterrupt, SIGTERMException))
