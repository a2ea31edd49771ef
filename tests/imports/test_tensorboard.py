"""Importing TensorBoard logs: event files written by PyTorch's SummaryWriter (scalars,
add_hparams, nested run folders), imported and compared with what was logged; on both
engines."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import cli_options, need
from sources import counts, history, imported

from sqltrack import Client
from sqltrack._import.from_tensorboard import import_tensorboard
from sqltrack.cli import main
from sqltrack.errors import InvalidValue

need("tensorboard")
np = need("numpy")
tensorboard_writer = need("torch.utils.tensorboard")

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning")]

LOSS = [1 / (s + 1) for s in range(10)]


def f32(value: float) -> float:
    return float(np.float32(value))  # what an event file holds


@pytest.fixture(scope="module")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two runs: ``cifar/resnet`` (scalars, a mixed-case tag, a tag sqltrack refuses and
    add_hparams) and ``cifar/sweep/small`` (a tag logged twice at a step)."""
    root = tmp_path_factory.mktemp("tb") / "cifar"
    writer = tensorboard_writer.SummaryWriter(str(root / "resnet"))
    for step, loss in enumerate(LOSS):
        writer.add_scalar("loss", loss, step)
        writer.add_scalar("Acc/train", step / 10, step)
    writer.add_scalar("loss (val)", 0.5, 9)
    writer.add_hparams({"lr": 0.1, "opt": "adam", "layers": 3}, {"hparam/final": 0.25})
    writer.close()
    small = tensorboard_writer.SummaryWriter(str(root / "sweep" / "small"))
    small.add_scalar("loss", 2.0, 0)
    small.add_scalar("loss", 1.0, 0)
    small.add_scalar("loss", 0.5, 5)
    small.close()
    return root


def test_scalars_and_hparams_as_logged(client: Client, logdir: Path) -> None:
    result = import_tensorboard(client, logdir)
    assert (result.runs_new, result.experiments_created) == (2, 1)
    assert [why[:20] for why in result.skipped] == ["metric 'loss (val)':"]
    runs = {r["comment"]: r for r in imported(client).values()}
    assert set(runs) == {"resnet", "sweep/small"}
    resnet, small = runs["resnet"], runs["sweep/small"]
    assert resnet["experiment"] == small["experiment"] == "cifar"
    assert resnet["status"] == "COMPLETED"
    # add_hparams' own folder belongs to the run above it
    assert resnet["args"] == {"lr": 0.1, "opt": "adam", "layers": 3}
    assert [(s, v) for s, _, v in history(client, resnet["id"], "loss")] == [
        (s, f32(v)) for s, v in enumerate(LOSS)
    ]
    assert [v for _, _, v in history(client, resnet["id"], "Acc/train")] == [
        f32(s / 10) for s in range(10)
    ]
    assert history(client, resnet["id"], "hparam/final") == [(0, 0.0, 0.25)]
    assert history(client, small["id"], "loss") == [(0, 0.0, 2.0), (0, 1.0, 1.0), (5, 0.0, 0.5)]
    walls = [v for _, _, v in history(client, resnet["id"], "wall_time")]
    # each step's time is when it was logged (its earliest value: add_hparams' metric,
    # logged at step 0 at the end, does not move step 0 to the end)
    assert len(walls) == 10 and walls == sorted(walls)
    assert resnet["started"].timestamp() == pytest.approx(walls[0], abs=1e-3)
    assert resnet["updated"].timestamp() > walls[-1]  # (add_hparams came last)
    assert resnet["imported"]["run"] == "resnet" and resnet["imported"]["id"].startswith(
        "events.out.tfevents."
    )


def test_a_second_import_adds_nothing_even_moved(
    client: Client, logdir: Path, tmp_path: Path
) -> None:
    import_tensorboard(client, logdir)
    before = counts(client)
    moved = tmp_path / "elsewhere"
    shutil.copytree(logdir, moved)
    again = import_tensorboard(client, moved, experiment="cifar")
    assert (again.runs_new, again.runs_found) == (0, 2)
    assert counts(client) == before


def test_the_command_and_a_dry_run(
    client: Client, logdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    options = cli_options(client)
    assert main(["import", "tensorboard", *options, str(logdir), "--dry-run"]) == 0
    assert capsys.readouterr().out.startswith(f"would import from tensorboard {logdir}: 2 runs new")
    assert counts(client)["runs"] == 0
    assert main(["import", "tensorboard", *options, str(logdir), "--experiment", "tb"]) == 0
    assert "2 runs new (0 imported before), 1 experiment new" in capsys.readouterr().out
    assert {r["experiment"] for r in imported(client).values()} == {"tb"}


@pytest.mark.parametrize("make", [lambda p: p / "missing", lambda p: p])
def test_a_folder_without_logs_is_an_error(client: Client, tmp_path: Path, make: Any) -> None:
    with pytest.raises(InvalidValue, match="no such folder|holds no TensorBoard event files"):
        import_tensorboard(client, make(tmp_path))


def test_a_progress_bar_on_a_terminal_only(
    client: Client, logdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a terminal the command draws a bar on stderr, ending at every run done; in a
    pipe (as here, and in CI logs) it prints nothing there."""
    import io
    import sys

    from sqltrack.cli.imports import _progress

    assert _progress() is None  # (pytest's stderr is no terminal)

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    import_tensorboard(client, logdir, progress=_progress())
    drawn = terminal.getvalue()
    assert drawn.endswith("] 2/2 runs\n") and "#" * 30 in drawn
