"""Importing trackio: a project written by trackio itself (in a child process, offline),
imported and compared with what was logged; on both engines."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cli_options, need
from sources import counts, history, imported

from sqltrack import Client
from sqltrack._import.from_trackio import import_trackio
from sqltrack.cli import main
from sqltrack.errors import InvalidValue

need("trackio")

LOG = """
import trackio
trackio.init(project="cifar", name="resnet", config={"lr": 0.01, "layers": 3},
             auto_log_cpu=False)
for step in range(3):
    trackio.log({"loss": 1.0 / (step + 1), "acc": 0.5 + step / 10})
trackio.log({"loss": 0.05}, step=10)
trackio.log({"loss": float("inf")}, step=11)
trackio.finish()
trackio.init(project="cifar", name="resnet", config={"lr": 0.1}, auto_log_cpu=False)
trackio.log({"loss": 2.0}, step=0)
trackio.log({"loss": 1.5}, step=0)
trackio.finish()
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two runs of the same name (trackio allows it), one with an infinity, one that
    logged a step twice."""
    folder = tmp_path_factory.mktemp("trackio")
    env = {
        **os.environ, "TRACKIO_DIR": str(folder / "store"), "HF_HOME": str(folder / "hf"),
        "HF_HUB_OFFLINE": "1", "HOME": str(folder), "GRADIO_ANALYTICS_ENABLED": "False",
        "TRACKIO_STORAGE_MODE": "sqlite",
    }  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", LOG], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return folder / "store" / "cifar.db"


def test_runs_config_and_metrics_as_logged(client: Client, project: Path) -> None:
    result = import_trackio(client, project)
    assert (result.runs_new, result.experiments_created, sum(result.skipped.values())) == (2, 1, 0)
    runs = sorted(imported(client).values(), key=lambda r: r["started"])
    first, second = runs
    assert first["experiment"] == "cifar" and first["comment"] == second["comment"] == "resnet"
    assert (first["args"], second["args"]) == ({"lr": 0.01, "layers": 3}, {"lr": 0.1})
    assert first["status"] == "COMPLETED" and "username" in first["imported"]
    loss = [(s, v) for s, _, v in history(client, first["id"], "loss")]
    assert loss == [(0, 1.0), (1, 0.5), (2, 1 / 3), (10, 0.05), (11, float("inf"))]
    assert [v for _, _, v in history(client, first["id"], "acc")] == [0.5, 0.6, 0.7]
    assert history(client, second["id"], "loss") == [(0, 0.0, 2.0), (0, 1.0, 1.5)]
    walls = [v for _, _, v in history(client, first["id"], "wall_time")]
    assert len(walls) == 5 and walls == sorted(walls)
    assert first["started"].timestamp() == pytest.approx(walls[0], abs=1e-3)


def test_a_second_import_adds_nothing(client: Client, project: Path) -> None:
    import_trackio(client, project)
    before = counts(client)
    again = import_trackio(client, project)
    assert (again.runs_new, again.runs_found) == (0, 2) and counts(client) == before


def test_the_file_is_only_read(client: Client, project: Path, tmp_path: Path) -> None:
    copy = tmp_path / "cifar.db"
    copy.write_bytes(project.read_bytes())
    before = copy.read_bytes()
    assert import_trackio(client, copy, experiment="copy").runs_new == 2
    assert copy.read_bytes() == before


def test_not_a_trackio_file(client: Client, tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE metrics (x)").connection.commit()
    with pytest.raises(InvalidValue, match="is not a trackio project"):
        import_trackio(client, other)
    (tmp_path / "text.db").write_text("hello")
    with pytest.raises(InvalidValue, match="is not a trackio project"):
        import_trackio(client, tmp_path / "text.db")
    with pytest.raises(InvalidValue, match="no such file"):
        import_trackio(client, tmp_path / "missing.db")


def test_the_command(client: Client, project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    options = cli_options(client)
    assert main(["import", "trackio", *options, str(project), "--dry-run"]) == 0
    assert "would import from trackio" in capsys.readouterr().out and counts(client)["runs"] == 0
    assert main(["import", "trackio", *options, str(project)]) == 0
    assert "2 runs new (0 imported before), 1 experiment new" in capsys.readouterr().out
