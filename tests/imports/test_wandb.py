"""Importing W&B offline runs: runs logged by wandb itself with WANDB_MODE=offline (in a
child process, as a job logs them), imported and compared with the config, summary and
history that were logged; on both engines."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cli_options, need
from sources import counts, history, imported

from sqltrack import Client
from sqltrack._import.from_wandb import import_wandb, records
from sqltrack.cli import main
from sqltrack.errors import InvalidValue

need("wandb")

# the diverged run logged a NaN, which SQLite stores as NULL (and says so)
pytestmark = [pytest.mark.filterwarnings("ignore:.*SQLite stores NaN as NULL")]

LOG = """
import wandb
run = wandb.init(project="cifar", name="resnet", notes="the baseline",
                 tags=["a", "b"], config={"lr": 0.01, "layers": 3, "opt": {"name": "adam"}})
for step in range(5):
    run.log({"loss": 1.0 / (step + 1), "train/acc": step / 10})
run.log({"loss": 0.05, "hist": wandb.Histogram([1, 2, 3])}, step=10)
run.summary["best"] = 0.05
run.finish()
crash = wandb.init(project="cifar", name="diverged", config={"lr": 1.0})
crash.log({"loss": float("nan")})
crash.log({"loss": 9.0})
crash.finish(exit_code=1)
"""
ENV = {
    "WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DISABLE_GIT": "true",
    "WANDB_DISABLE_CODE": "true", "WANDB_CONSOLE": "off", "WANDB__DISABLE_STATS": "true",
    "WANDB_ERROR_REPORTING": "false",
}  # fmt: skip


@pytest.fixture(scope="module")
def wandb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("wandb")
    env = {**os.environ, **ENV, "WANDB_DIR": str(folder), "HOME": str(folder)}
    done = subprocess.run(
        [sys.executable, "-c", LOG], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found = sorted((folder / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(found) == 2, found
    return folder / "wandb"


def test_config_summary_and_history_as_logged(client: Client, wandb_dir: Path) -> None:
    result = import_wandb(client, [wandb_dir])
    assert (result.runs_new, result.experiments_created) == (2, 1)
    assert list(result.skipped.items()) == [("metric 'hist': values of type dict", 1)]
    runs = {r["imported"]["name"]: r for r in imported(client).values()}
    resnet, crash = runs["resnet"], runs["diverged"]
    assert resnet["experiment"] == "cifar" and resnet["status"] == "COMPLETED"
    assert crash["status"] == "FAILED" and crash["args"] == {"lr": 1.0}
    assert resnet["args"] == {"lr": 0.01, "layers": 3, "opt": {"name": "adam"}}
    assert resnet["tags"] == ["a", "b"] and resnet["comment"] == "the baseline"
    assert resnet["imported"]["summary"]["best"] == 0.05
    assert resnet["imported"]["id"].startswith("cifar/")
    assert [(s, v) for s, _, v in history(client, resnet["id"], "loss")] == [
        (0, 1.0), (1, 0.5), (2, 1 / 3), (3, 0.25), (4, 0.2), (10, 0.05)
    ]  # fmt: skip
    assert [v for _, _, v in history(client, resnet["id"], "train/acc")] == [
        s / 10 for s in range(5)
    ]
    loss = history(client, crash["id"], "loss")
    assert loss[-1] == (1, 0.0, 9.0)
    if client.engine.name == "postgres":  # (SQLite stores NaN as NULL, and says so)
        assert len(loss) == 2 and loss[0][2] != loss[0][2]
    walls = [v for _, _, v in history(client, resnet["id"], "wall_time")]
    assert len(walls) == 6 and walls == sorted(walls)
    assert resnet["started"].timestamp() <= walls[0] <= walls[-1]
    assert walls[-1] == pytest.approx(resnet["updated"].timestamp(), abs=1e-3)  # (µs kept)


def test_a_second_import_adds_nothing(client: Client, wandb_dir: Path) -> None:
    files = sorted(wandb_dir.glob("offline-run-*/run-*.wandb"))
    import_wandb(client, files[:1])
    before = counts(client)
    again = import_wandb(client, [wandb_dir])
    assert (again.runs_new, again.runs_found) == (1, 1)
    assert counts(client)["runs"] == before["runs"] + 1
    assert import_wandb(client, [wandb_dir]).runs_new == 0


def test_a_torn_or_foreign_file(client: Client, wandb_dir: Path, tmp_path: Path) -> None:
    """A job killed mid-write leaves a torn tail: what came before it is read. A file of
    only the header (killed before W&B's first flush) or not W&B's is named, not fatal."""
    whole = sorted(wandb_dir.glob("offline-run-*/run-*.wandb"))[0].read_bytes()
    with open(sorted(wandb_dir.glob("offline-run-*/run-*.wandb"))[0], "rb") as f:
        assert len(list(records(f))) > 5
    torn = tmp_path / "torn.wandb"
    torn.write_bytes(whole[: len(whole) - 40])
    (tmp_path / "header.wandb").write_bytes(whole[:7])
    (tmp_path / "other.wandb").write_bytes(b"SQLite format 3\x00")
    result = import_wandb(client, [tmp_path])
    assert result.runs_new == 1
    reasons = sorted(result.skipped)
    assert any("header.wandb: no run in it" in r for r in reasons)
    assert any("other.wandb: not a W&B transaction log" in r for r in reasons)


def test_the_command(client: Client, wandb_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    options = cli_options(client)
    assert main(["import", "wandb", *options, str(wandb_dir), "--experiment", "w"]) == 0
    assert "2 runs new (0 imported before), 1 experiment new" in capsys.readouterr().out
    assert main(["import", "wandb", *options, str(wandb_dir / "nothing")]) == 1
    assert "no such file or folder" in capsys.readouterr().err


def test_a_folder_without_runs_is_an_error(client: Client, tmp_path: Path) -> None:
    with pytest.raises(InvalidValue, match="no .wandb files in"):
        import_wandb(client, [tmp_path])
