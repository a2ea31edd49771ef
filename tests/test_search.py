"""Finding runs (sqltrack.find_runs, `sqltrack runs`), on both engines."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from conftest import cli_options, q

import sqltrack as st
from sqltrack import Client, Experiment, InvalidValue
from sqltrack.cli import main


@pytest.fixture
def lab(client: Client) -> dict[str, Any]:
    """Two experiments; runs with statuses, tags and args of several JSON types."""
    a, b = Experiment(client, name="sweep"), Experiment(client, name="other")
    runs = {
        "r1": a.get_run().set_args({"lr": 0.1, "bs": 32, "opt": "adam"}).add_tags("baseline"),
        "r2": a.get_run().set_args({"lr": 0.01, "bs": 32, "amp": True}).add_tags("baseline", "x"),
        "r3": a.get_run().set_args({"lr": 0.1, "bs": 64, "layers": [2, 4]}),
        "r4": b.get_run().set_args({"lr": 0.1}).add_tags("baseline"),
        "r5": a.get_run(),  # no args, no tags
    }
    runs["r1"].start(terminated=None).stop()
    runs["r2"].start(terminated=None)
    runs["r3"].start(terminated=None).stop("FAILED")
    return {"a": a, "b": b, **runs}


def _ids(runs: list[st.Run]) -> list[int]:
    return [r.id for r in runs]


def test_each_filter_and_their_combination(client: Client, lab: dict[str, Any]) -> None:
    r1, r2, r3, r4, r5 = (lab[f"r{i}"].id for i in range(1, 6))
    find = st.find_runs
    assert _ids(find(client)) == [r1, r2, r3, r4, r5]
    assert _ids(find(client, experiment="sweep")) == [r1, r2, r3, r5]
    assert _ids(find(client, experiment=lab["b"].id)) == [r4]
    assert _ids(find(client, status="completed")) == [r1]  # any case, as everywhere
    assert _ids(find(client, status=["FAILED", "RUNNING"])) == [r2, r3]
    assert _ids(find(client, tags="baseline")) == [r1, r2, r4]
    assert _ids(find(client, tags=["baseline", "x"])) == [r2]  # all of them
    assert _ids(find(client, args={"lr": 0.1})) == [r1, r3, r4]
    assert _ids(find(client, args={"lr": 0.1, "bs": 64})) == [r3]
    assert _ids(find(client, args={"opt": "adam"})) == [r1]
    assert _ids(find(client, args={"amp": True})) == [r2]
    assert _ids(find(client, args={"layers": [2, 4]})) == [r3]
    assert _ids(find(client, args={"bs": "32"})) == []  # a string is not a number
    assert _ids(find(client, experiment="sweep", tags="baseline", args={"bs": 32})) == [r1, r2]
    since = datetime(2000, 1, 1, tzinfo=timezone.utc)
    mine = find(
        client,
        experiment="sweep",
        where=("runs.time_started > :since AND runs.id <> :not", {"since": since, "not": r2}),
    )
    assert _ids(mine) == [r1, r3]
    assert find(client, experiment="nope") == []


def test_found_runs_are_handles(client: Client, lab: dict[str, Any]) -> None:
    [run] = st.find_runs(client, args={"opt": "adam"})
    assert run.experiment_id == lab["a"].id
    run.add_tags("found")  # a working handle
    (tags,) = q(client, "SELECT tags FROM runs WHERE id = ?", run.id)[0]
    assert st.json_value(tags) == {"baseline": True, "found": True}


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"status": "DONE"}, "status"),
        ({"status": []}, "status must be"),
        ({"tags": [1]}, "tags must be"),
        ({"args": {}}, "args must be a non-empty dict"),
        ({"args": ["lr"]}, "args must be a non-empty dict"),
        ({"experiment": 0}, "experiment id"),
        ({"where": ("runs.id = :_x", {"_x": 1})}, "starting with _"),
    ],
)
def test_bad_filters_are_clear_errors(
    client: Client, filters: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidValue, match=message):
        st.find_runs(client, **filters)


def test_values_are_parameters_never_sql(client: Client, lab: dict[str, Any]) -> None:
    evil = "x'; DROP TABLE runs; --"
    assert st.find_runs(client, experiment=evil, tags=evil, args={evil: evil}) == []
    assert q(client, "SELECT count(*) FROM runs") == [(5,)]


def test_sqltrack_runs_and_stale(
    client: Client, lab: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    import csv
    import json

    r1, r2 = lab["r1"].id, lab["r2"].id
    opts = cli_options(client)
    args = ["--experiment", "sweep", "--tag", "baseline", "--format", "csv"]
    assert main(["runs", *opts, *args]) == 0
    table = list(csv.reader(capsys.readouterr().out.splitlines()))
    assert table[0] == ["id", "experiment", "status", "created", "started", "updated", "tags"]
    assert [(int(r[0]), r[1], r[2], r[6]) for r in table[1:]] == [
        (r1, "sweep", "COMPLETED", "baseline"),
        (r2, "sweep", "RUNNING", "baseline,x"),
    ]
    assert main(["runs", *opts, "--arg", "lr=0.1", "--arg", "opt=adam", "--format", "json"]) == 0
    [record] = json.loads(capsys.readouterr().out)
    assert record["id"] == r1 and record["started"].startswith("20")
    assert main(["runs", *opts, "--status", "failed"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["id", "experiment", "status", "created", "started", "updated",
                                "tags"] and len(lines) == 2  # fmt: skip
    assert lines[1].split()[:3] == [str(lab["r3"].id), "sweep", "FAILED"]
    assert main(["runs", *opts, "--arg", "lr"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == "sqltrack: error: --arg 'lr': give NAME=VALUE"
    assert main(["stale", *opts, "--older-than", "0", "--format", "json"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == [r2]
    assert main(["stale", *opts, "--format", "csv"]) == 0  # none older than 10 minutes
    assert capsys.readouterr().out.splitlines()[1:] == []


def test_compare_runs_shows_what_differs(
    client: Client, lab: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    r1, r3 = lab["r1"], lab["r3"]
    r1.set_env({"HOST": "node1", "CUDA": "12"})
    r3.set_env({"HOST": "node2", "CUDA": "12"}).set_extras({"git": "abc"})
    rows = {row[0]: row[1:] for row in st.compare_runs(client, r1.id, r3.id)}
    assert rows["status"] == ("COMPLETED", "FAILED")
    assert rows["args.bs"] == (32, 64)
    assert rows["args.opt"] == ("adam", None)  # a missing key is None
    assert rows["args.layers"] == (None, [2, 4])
    assert rows["env.HOST"] == ("node1", "node2")
    assert rows["extras.git"] == (None, "abc")
    assert rows["tags"] == (["baseline"], [])
    assert "args.lr" not in rows and "env.CUDA" not in rows and "experiment" not in rows
    everything = {row[0] for row in st.compare_runs(client, r1.id, r3.id, everything=True)}
    assert {"args.lr", "env.CUDA", "experiment"} <= everything
    for run, losses in ((r1, [0.5, 0.2, 0.3]), (r3, [0.6, 0.2])):  # then summaries
        with run.track():
            for step, loss in enumerate(losses):
                run.add_metrics({"loss": loss}, step=step)
    rows = {row[0]: row[1:] for row in st.compare_runs(client, r1.id, r3.id)}
    assert rows["loss:max"] == (0.5, 0.6) and rows["loss:last"] == (0.3, 0.2)
    assert "loss:min" not in rows  # equal: not a difference
    assert list(rows)[-2:] == ["loss:max", "loss:last"]  # after the fields
    with pytest.raises(InvalidValue, match="at least two runs"):
        st.compare_runs(client, r1.id)
    with pytest.raises(st.NotFound, match="run 777 does not exist"):
        st.compare_runs(client, r1.id, 777)
    assert (
        main(
            [
                "compare",
                *cli_options(client),
                str(r1.id),
                str(r3.id),
                "--format",
                "csv",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"field,run {r1.id},run {r3.id}"
    assert "args.bs,32,64" in out and "env.HOST,node1,node2" in out


def test_metric_summary_and_sqltrack_show(
    client: Client, lab: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    run = lab["r1"]
    for step, loss in enumerate([0.9, 0.4, 0.6, float("nan")]):
        metrics = {"loss": loss, "ok": step % 2 == 0, "note": f"s{step}"}
        if client.engine.name == "sqlite" and loss != loss:
            metrics["loss"] = None  # SQLite has no NaN (it would warn)
        run.add_metrics(metrics, step=step)
    run.add_metrics({"acc": 0.5}, step=10)
    summary = {row[0]: row[1:] for row in st.search.metric_summary(client, run.id)}
    assert summary["loss"] == (3, 0.6, 2, 0.4, 1, 0.9, 0)  # NaN and NULL are no values
    assert summary["acc"] == (1, 0.5, 10, 0.5, 10, 0.5, 10)
    assert set(summary) == {"loss", "acc"}  # booleans and text are not summarized
    assert main(["show", *cli_options(client), str(run.id), "--format", "csv"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "field,value" and "status,COMPLETED" in out and "args.opt,adam" in out
    assert "loss,3,0.6,2,0.4,1,0.9,0" in out
    assert main(["show", *cli_options(client), "777"]) == 1
    assert capsys.readouterr().err.strip() == "sqltrack: error: run 777 does not exist"


def test_summarize_is_the_sweep_view(client: Client, capsys: pytest.CaptureFixture[str]) -> None:
    exp = Experiment(client, name="grid")
    losses = {(0.1, 0): [0.5, 0.3], (0.1, 1): [0.4, 0.35], (0.01, 0): [0.9, 0.8], (0.01, 1): [0.6]}
    ids = {}
    for (lr, seed), values in losses.items():
        run = exp.get_run().set_args({"lr": lr, "seed": seed})
        with run.track():  # (summarized at the end)
            for step, value in enumerate(values):
                run.add_metrics({"val_loss": value}, step=step)
        ids[(lr, seed)] = run.id
    exp.get_run().set_args({"lr": 0.1})  # no seed, no metric: left out
    rows = st.summarize(client, "grid", "val_loss:min", group_by=["lr"], over="seed")
    assert [(r[0], r[1]) for r in rows] == [(0.1, 2), (0.01, 2)]  # best group first
    _, _, mean, std, low, high, best = rows[0]
    assert mean == pytest.approx(0.325) and std == pytest.approx(0.0353553, rel=1e-4)
    assert (low, high, best) == (0.3, 0.35, ids[(0.1, 0)])
    last = st.summarize(client, exp.id, "val_loss:last", group_by=("lr", "seed"))
    assert [r[:3] for r in last] == [(0.1, 0, 1), (0.1, 1, 1), (0.01, 1, 1), (0.01, 0, 1)]
    assert last[0][4] is None  # no std for one run
    assert [r[-1] for r in st.summarize(client, "grid", "val_loss:max")] == [ids[(0.01, 0)]]
    with pytest.raises(InvalidValue, match="name:min, name:max, name:last or name:count"):
        st.summarize(client, "grid", "val_loss:median")
    with pytest.raises(InvalidValue, match="no such metric column"):
        st.summarize(client, "grid", "nope:min")
    assert main(["summarize", *cli_options(client), "grid", "--metric", "val_loss:min",
                 "--group-by", "lr", "--over", "seed", "--format", "csv"]) == 0  # fmt: skip
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "lr,n,mean,std,min,max,best_run"
    assert out[1].startswith("0.1,2,0.3249") and out[1].endswith(f",0.3,0.35,{ids[(0.1, 0)]}")


def test_sqltrack_plot_draws_curves(
    client: Client, tmp_path: Any, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    exp = Experiment(client, name="curves")
    runs = [exp.get_run(), exp.get_run()]
    for i, run in enumerate(runs):
        for step in range(20):
            run.add_metrics({"val_loss": 1.0 / (step + 1 + i)}, step=step, progress=step / 20)
    out = tmp_path / "curves.png"
    ids = [str(r.id) for r in runs]
    assert (
        main(
            [
                "plot",
                *cli_options(client),
                *ids,
                "--metric",
                "val_loss",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.strip() == f"{out}: 2 runs, 40 points of val_loss"
    png = out.read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000  # lines, labels, a legend
    svg = tmp_path / "curves.svg"
    assert main(["plot", *cli_options(client), ids[0], "--metric", "val_loss", "--x",
                 "progress", "-o", str(svg)]) == 0  # fmt: skip
    assert "<svg" in svg.read_text()
    assert main(["plot", *cli_options(client), ids[0], "--metric", "nope", "-o", str(out)]) == 1
    assert "no such metric column: 'nope'" in capsys.readouterr().err
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    assert main(["plot", *cli_options(client), ids[0], "--metric", "val_loss"]) == 1
    assert "pip install 'sqltrack[plot]'" in capsys.readouterr().err
