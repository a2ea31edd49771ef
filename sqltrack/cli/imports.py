"""``sqltrack import SOURCE …``: another tracker's runs into this database (MLflow, W&B
offline runs, TensorBoard logs, trackio projects), each run once however often it runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from .._db.client import Client

_BAR = 30  # characters of the progress bar

# per source: the place it reads, help, description, what --experiment means
_SOURCES = {
    "mlflow": (
        "TRACKING_URI",
        "an MLflow tracking URI (sqlite:///mlflow.db, postgresql://…, http://…, ./mlruns)",
        "Import the runs of an MLflow tracking URI, read with MLflow's own client (pip "
        "install mlflow).",
        "only this experiment (repeat for more; default: all)",
    ),
    "tensorboard": (
        "LOGDIR",
        "a TensorBoard log directory (every folder with event files is a run)",
        "Import the scalars and hparams of every run folder under LOGDIR, read with "
        "TensorBoard's own event reader (pip install tensorboard).",
        "the runs' experiment (default: LOGDIR's name)",
    ),
    "wandb": (
        "PATH",
        "W&B offline runs (.wandb files, or folders such as wandb/ holding them)",
        "Import W&B runs logged offline (WANDB_MODE=offline), read from their .wandb "
        "files with W&B's own records (pip install wandb); no network.",
        "the runs' experiment (default: each run's project)",
    ),
    "trackio": (
        "PROJECT_DB",
        "a trackio project file (~/.cache/huggingface/trackio/PROJECT.db)",
        "Import the runs of a trackio project's SQLite file, opened read-only.",
        "the runs' experiment (default: the project)",
    ),
}  # fmt: skip


def register(commands: Any, connection: Any) -> None:
    cmd = commands.add_parser(
        "import",
        help="bring runs from MLflow, W&B offline runs, TensorBoard or trackio",
        description="Import another tracker's runs: each run keeps its source's id (as its "
        "uid), so a second import adds nothing and an interrupted one resumes. Prints a "
        "summary line (and a progress bar on a terminal). See docs/import.md.",
    )
    sources = cmd.add_subparsers(dest="source", metavar="SOURCE", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dry-run", action="store_true", help="read, write nothing, tell")
    for name, (place, summary, description, experiment) in _SOURCES.items():
        source = sources.add_parser(
            name, parents=[connection, common], help=summary, description=description
        )
        if name == "wandb":  # (files and folders, as many as given)
            source.add_argument("place", nargs="+", metavar=place)
        else:
            source.add_argument("place", metavar=place)
        if name == "mlflow":
            source.add_argument(
                "--experiment", action="append", default=[], metavar="NAME", help=experiment
            )
        else:
            source.add_argument("--experiment", metavar="NAME", help=experiment)
        source.set_defaults(handler=_import)


def _import(client: Client, args: argparse.Namespace) -> int:
    # (each source's module imports nothing of its tool until it reads)
    from .._import import from_mlflow, from_tensorboard, from_trackio, from_wandb

    functions = {
        "mlflow": from_mlflow.import_mlflow,
        "tensorboard": from_tensorboard.import_tensorboard,
        "wandb": from_wandb.import_wandb,
        "trackio": from_trackio.import_trackio,
    }
    function: Any = functions[args.source]
    print(function(client, args.place, args.experiment, args.dry_run, _progress()))
    return 0


def _progress() -> Any:
    """A progress bar on stderr when it is a terminal (redrawn at most 10 times a
    second), else nothing: pipes and logs get the summary line only."""
    if not sys.stderr.isatty():
        return None
    last = [0.0]

    def show(done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - last[0] < 0.1:
            return
        last[0] = now
        filled = _BAR * done // max(total, 1)
        bar = "#" * filled + "-" * (_BAR - filled)
        end = "\n" if done == total else ""
        print(f"\r  [{bar}] {done}/{total} runs", end=end, file=sys.stderr, flush=True)

    return show
