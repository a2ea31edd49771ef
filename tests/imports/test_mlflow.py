"""Importing MLflow: runs logged with mlflow itself into a SQLite store, imported, and
compared field by field with what MLflow's client reads back; on both engines."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from conftest import cli_options, need
from sources import counts, history, imported

from sqltrack import Client
from sqltrack._import import target
from sqltrack._import.from_mlflow import import_mlflow, param_value
from sqltrack.cli import main
from sqltrack.errors import InvalidValue

mlflow = need("mlflow")

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An MLflow SQLite store written by mlflow: a parent run with params, tags, a note,
    metrics at several steps (one logged twice without a step, one MLflow allows and
    sqltrack does not), an artifact and a nested run; a failed run and a killed one."""
    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    for name in ("vision", "nlp"):  # (artifacts in the test's folder, not ./mlruns)
        mlflow.create_experiment(name, artifact_location=(folder / name).as_uri())
    mlflow.set_experiment("vision")
    with mlflow.start_run(run_name="resnet") as parent:
        mlflow.log_params({"lr": 0.01, "layers": 3, "opt": "adam", "bn": True, "wd": "1e-4"})
        mlflow.set_tags({"team": "vision", "mlflow.note.content": "the <b>baseline</b>"})
        for step in range(5):
            mlflow.log_metrics({"loss": 1 / (step + 1), "val/acc": step / 10}, step=step)
        mlflow.log_metric("epoch_time", 1.5)
        mlflow.log_metric("epoch_time", 2.5)
        mlflow.log_metric("top:1", 0.9, step=4)
        (folder / "weights.txt").write_text("0.1 0.2")
        mlflow.log_artifact(str(folder / "weights.txt"), artifact_path="model")
        with mlflow.start_run(run_name="finetune", nested=True):
            mlflow.log_metric("loss", 0.05, step=7)
    try:
        with mlflow.start_run(run_name="crash"):
            mlflow.log_param("lr", 1.0)
            raise RuntimeError("diverged")
    except RuntimeError:
        pass
    mlflow.set_experiment("nlp")
    with mlflow.start_run(run_name="stopped"):
        mlflow.log_metric("loss", 3.0, step=0)
        mlflow.end_run(status="KILLED")
    mlflow.set_tracking_uri("")
    assert parent.info.run_id
    return uri


def mlflow_runs(uri: str) -> dict[str, Any]:
    reader = mlflow.MlflowClient(tracking_uri=uri)
    runs = {}
    for experiment in reader.search_experiments():
        for run in reader.search_runs([experiment.experiment_id]):
            histories = {
                name: [(m.step, m.value) for m in reader.get_metric_history(run.info.run_id, name)]
                for name in run.data.metrics
            }
            artifacts = [a for a in reader.list_artifacts(run.info.run_id, "model")]
            runs[run.info.run_id] = (experiment.name, run, histories, artifacts)
    return runs


def test_every_field_as_mlflow_reads_it(client: Client, store: str) -> None:
    result = import_mlflow(client, store)
    assert (result.runs_new, result.runs_found, result.experiments_created) == (4, 0, 2)
    assert result.links == 1 and result.artifacts == 1
    assert [(why[:15], n) for why, n in result.skipped.items()] == [("metric 'top:1':", 1)]
    ours = imported(client)
    theirs = mlflow_runs(store)
    assert set(ours) == set(theirs)
    statuses = {"FINISHED": "COMPLETED", "FAILED": "FAILED", "KILLED": "CANCELLED"}
    for run_id, (experiment, run, histories, artifacts) in theirs.items():
        mine = ours[run_id]
        assert mine["experiment"] == experiment
        assert mine["status"] == statuses[run.info.status]
        assert mine["args"] == {k: param_value(v) for k, v in run.data.params.items()}
        user = {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}
        assert mine["tags"] == sorted(f"{k}={v}" for k, v in user.items())
        system = {k: v for k, v in run.data.tags.items() if k.startswith("mlflow.")}
        assert mine["imported"]["tags"] == system
        assert mine["imported"]["run_name"] == run.info.run_name
        assert mine["comment"] == system.get("mlflow.note.content", run.info.run_name)
        started = datetime.fromtimestamp(run.info.start_time / 1000, timezone.utc)
        ended = datetime.fromtimestamp(run.info.end_time / 1000, timezone.utc)
        assert (mine["started"], mine["updated"]) == (started, ended)
        for name, logged in histories.items():
            if name == "top:1":
                continue
            back = history(client, mine["id"], name)
            assert [(s, v) for s, _, v in back] == sorted(logged)
        stored = client.query(
            "SELECT name, uri, size, sha256 FROM artifacts WHERE run_id = :r", {"r": mine["id"]}
        )
        base = run.info.artifact_uri
        assert sorted(stored) == sorted((a.path, f"{base}/{a.path}", a.file_size, None)
                                        for a in artifacts)  # fmt: skip
    parent = next(r for r in ours.values() if r["imported"]["run_name"] == "resnet")
    child = next(r for r in ours.values() if r["imported"]["run_name"] == "finetune")
    links = client.query("SELECT from_id, kind, to_id FROM run_links")
    assert [tuple(link) for link in links] == [(child["id"], "parent", parent["id"])]
    assert parent["args"] == {"lr": 0.01, "layers": 3, "opt": "adam", "bn": True, "wd": "1e-4"}
    # two values without a step: both kept, at progress 0 and 1 of step 0
    assert history(client, parent["id"], "epoch_time") == [(0, 0.0, 1.5), (0, 1.0, 2.5)]
    # each row's wall time, as MLflow's timestamps say
    times = [v for _, _, v in history(client, parent["id"], "wall_time")]
    assert all(abs(t - parent["started"].timestamp()) < 60 for t in times) and len(times) == 6
    # summaries are built: best loss is one short query
    best = client.query(
        "SELECT min FROM run_summaries WHERE run_id = :r AND metric = 'loss'",
        {"r": parent["id"]},
    )
    assert best == [(0.2,)]


def test_a_second_import_adds_nothing(client: Client, store: str) -> None:
    import_mlflow(client, store)
    before = counts(client)
    again = import_mlflow(client, store)
    assert (again.runs_new, again.runs_found, again.values, again.links) == (0, 4, 0, 0)
    assert "0 runs new (4 imported before)" in str(again)
    assert counts(client) == before


@pytest.mark.parametrize("per_transaction", [1, 10_000])
def test_an_interrupted_import_resumes(
    client: Client, store: str, monkeypatch: pytest.MonkeyPatch, per_transaction: int
) -> None:
    """The import fails at its third run. One run per transaction: the two before it
    stay; all in one: none does. Either way the failed one leaves nothing behind, and
    the next import writes the rest, with the link of the nested run."""
    real, calls = target.write_rows, []

    def failing(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 3:
            raise OSError("the disk went away")
        return real(*args, **kwargs)

    monkeypatch.setattr(target, "_BATCH_ROWS", per_transaction)
    monkeypatch.setattr(target, "write_rows", failing)
    with pytest.raises(OSError):
        import_mlflow(client, store)
    kept = 2 if per_transaction == 1 else 0
    assert counts(client)["runs"] == kept and counts(client)["run_links"] == 0
    monkeypatch.setattr(target, "write_rows", real)
    resumed = import_mlflow(client, store)
    assert (resumed.runs_new, resumed.runs_found, resumed.links) == (4 - kept, kept, 1)
    assert counts(client)["runs"] == 4 and counts(client)["artifacts"] == 1
    assert counts(client)["run_links"] == 1
    assert import_mlflow(client, store).links == 0


def test_a_link_missed_before_is_made(client: Client, store: str) -> None:
    """The nested run imported first, alone (its parent's experiment left out): no link
    yet; the next import of the parent makes it, once."""
    reader = mlflow.MlflowClient(tracking_uri=store)
    assert import_mlflow(client, store, experiments=["nlp"]).links == 0
    client.query("DELETE FROM runs")  # (as if the parent had failed to be written)
    for run_id in list(imported(client)):
        assert reader.get_run(run_id)
    assert import_mlflow(client, store).links == 1
    assert import_mlflow(client, store).links == 0
    assert counts(client)["run_links"] == 1


def test_a_dry_run_writes_nothing(client: Client, store: str) -> None:
    before = counts(client)
    result = import_mlflow(client, store, dry_run=True)
    assert counts(client) == before
    assert str(result).startswith("would import from mlflow")
    assert (result.runs_new, result.experiments_created, result.links) == (4, 2, 1)
    done = import_mlflow(client, store)
    assert (done.values, done.artifacts, done.links, done.skipped) == (
        result.values, result.artifacts, result.links, result.skipped
    )  # fmt: skip
    again = import_mlflow(client, store, dry_run=True)
    assert (again.runs_new, again.runs_found, again.links) == (0, 4, 0)


@pytest.mark.parametrize("uri, message", [
    ("sqlite:///{tmp}/typo.db", "no such MLflow store"),
    ("{tmp}/nowhere", "no such MLflow folder"),
    ("bogus://x", "MLflow cannot read bogus://x"),
])  # fmt: skip
def test_a_store_that_is_not_there(
    client: Client, tmp_path: Path, uri: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """An error of one line, and MLflow makes no empty store where a typo points."""
    folder = tmp_path / "sources"
    folder.mkdir()
    uri = uri.format(tmp=folder)
    assert main(["import", "mlflow", *cli_options(client), uri]) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert list(folder.iterdir()) == []


def test_only_the_experiments_named(client: Client, store: str) -> None:
    result = import_mlflow(client, store, experiments=["nlp"])
    assert result.runs_new == 1
    assert {r["experiment"] for r in imported(client).values()} == {"nlp"}
    with pytest.raises(InvalidValue, match="no MLflow experiment named 'audio'"):
        import_mlflow(client, store, experiments=["audio"])


def test_the_command(
    client: Client, store: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    options = cli_options(client)
    assert main(["import", "mlflow", *options, store, "--dry-run"]) == 0
    assert capsys.readouterr().out.startswith("would import from mlflow")
    assert main(["import", "mlflow", *options, store]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"imported from mlflow {store}: 4 runs new (0 imported before)")
    assert "skipped 1x: metric 'top:1'" in out
    assert main(["import", "mlflow", *options, store]) == 0
    assert "0 runs new (4 imported before)" in capsys.readouterr().out
    assert len(imported(client)) == 4


@pytest.mark.parametrize("text, value", [
    ("3", 3), ("-2", -2), ("0.01", 0.01), ("True", True), ("False", False), ("adam", "adam"),
    ("1e-4", "1e-4"), ("nan", "nan"), ("inf", "inf"), ("", ""), ("007", "007"), ("+3", "+3"),
    ("1.50", "1.50"), ("-0", -0),
])  # fmt: skip
def test_params_become_the_values_they_were(text: str, value: Any) -> None:
    assert param_value(text) == value and type(param_value(text)) is type(value)
