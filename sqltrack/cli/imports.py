"""``sqltrack import SOURCE …``: another tracker's runs into this database (MLflow, W&B
offline runs, TensorBoard logs, trackio projects), each run once however often it runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from .._db.client import Client
from .._import.model import ImportResult

_BAR = 30  # characters of the progress bar


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
    mlflow = sources.add_parser(
        "mlflow",
        parents=[connection, common],
        help="an MLflow tracking URI (sqlite:///mlflow.db, postgresql://…, http://…, ./mlruns)",
        description="Import the runs of an MLflow tracking URI, read with MLflow's own client "
        "(pip install mlflow).",
    )
    mlflow.add_argument("uri", metavar="TRACKING_URI")
    mlflow.add_argument(
        "--experiment", action="append", default=[], metavar="NAME",
        help="only this experiment (repeat for more; default: all)",
    )  # fmt: skip
    mlflow.set_defaults(handler=_mlflow)
    tensorboard = sources.add_parser(
        "tensorboard",
        parents=[connection, common],
        help="a TensorBoard log directory (every folder with event files is a run)",
        description="Import the scalars and hparams of every run folder under LOGDIR, read "
        "with TensorBoard's own event reader (pip install tensorboard).",
    )
    tensorboard.add_argument("logdir", metavar="LOGDIR")
    tensorboard.add_argument(
        "--experiment", metavar="NAME", help="the runs' experiment (default: LOGDIR's name)"
    )
    tensorboard.set_defaults(handler=_tensorboard)
    wandb = sources.add_parser(
        "wandb",
        parents=[connection, common],
        help="W&B offline runs (.wandb files, or folders such as wandb/ holding them)",
        description="Import W&B runs logged offline (WANDB_MODE=offline), read from their "
        ".wandb files with W&B's own records (pip install wandb); no network.",
    )
    wandb.add_argument("paths", nargs="+", metavar="PATH")
    wandb.add_argument(
        "--experiment", metavar="NAME", help="the runs' experiment (default: each run's project)"
    )
    wandb.set_defaults(handler=_wandb)
    trackio = sources.add_parser(
        "trackio",
        parents=[connection, common],
        help="a trackio project file (~/.cache/huggingface/trackio/PROJECT.db)",
        description="Import the runs of a trackio project's SQLite file, opened read-only.",
    )
    trackio.add_argument("path", metavar="PROJECT_DB")
    trackio.add_argument(
        "--experiment", metavar="NAME", help="the runs' experiment (default: the project)"
    )
    trackio.set_defaults(handler=_trackio)


def _mlflow(client: Client, args: argparse.Namespace) -> int:
    from .._import.from_mlflow import import_mlflow

    return _report(import_mlflow(client, args.uri, args.experiment, args.dry_run, _progress()))


def _tensorboard(client: Client, args: argparse.Namespace) -> int:
    from .._import.from_tensorboard import import_tensorboard

    result = import_tensorboard(client, args.logdir, args.experiment, args.dry_run, _progress())
    return _report(result)


def _wandb(client: Client, args: argparse.Namespace) -> int:
    from .._import.from_wandb import import_wandb

    return _report(import_wandb(client, args.paths, args.experiment, args.dry_run, _progress()))


def _trackio(client: Client, args: argparse.Namespace) -> int:
    from .._import.from_trackio import import_trackio

    return _report(import_trackio(client, args.path, args.experiment, args.dry_run, _progress()))


def _report(result: ImportResult) -> int:
    print(result)
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
