"""Finding runs (sqltrack.find_runs, `sqltrack runs`), on both engines."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from conftest import cli_options, q

import sqltrack as st
from sqltrack import Client, Experiment, InvalidValue
from sqltrack._read import search
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
    assert find(client, experiment="other", status="FAILED") == []  # no such run: none


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
    assert st.find_runs(client, experiment="sweep", tags=evil, args={evil: evil}) == []
    with pytest.raises(st.NotFound, match="does not exist"):
        st.find_runs(client, experiment=evil)
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
    assert table[0] == ["id", "experiment", "status", "created", "started", "updated", "tags",
                        "duration", "args.amp", "args.lr", "args.opt"]  # fmt: skip
    assert [(int(r[0]), r[1], r[2], r[6], *r[8:]) for r in table[1:]] == [
        (r1, "sweep", "COMPLETED", "baseline", "", "0.1", "adam"),  # the args that differ
        (r2, "sweep", "RUNNING", "baseline,x", "True", "0.01", ""),
    ]
    assert main(["runs", *opts, "--arg", "lr=0.1", "--arg", "opt=adam", "--format", "json"]) == 0
    [record] = json.loads(capsys.readouterr().out)
    assert record["id"] == r1 and record["started"].startswith("20") and record["duration"] >= 0
    assert main(["runs", *opts, "--status", "failed"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["id", "experiment", "status", "started", "duration", "tags"]
    assert len(lines) == 2
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
    summary = {row[0]: row[1:] for row in st.metric_summary(client, run.id)}
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
    with pytest.raises(InvalidValue, match="no such metric"):
        st.summarize(client, "grid", "nope:min")
    assert main(["summarize", *cli_options(client), "grid", "--metric", "val_loss:min",
                 "--group-by", "lr", "--over", "seed", "--format", "csv"]) == 0  # fmt: skip
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "lr,n,mean,std,min,max,best_run"
    assert out[1].startswith("0.1,2,0.3249") and out[1].endswith(f",0.3,0.35,{ids[(0.1, 0)]}")


def test_an_experiment_that_does_not_exist_is_not_found(
    client: Client, lab: dict[str, Any]
) -> None:
    """An experiment filter that names no experiment is an error; one that matches no
    runs of an experiment that exists is an empty result."""
    for call in (
        lambda: st.find_runs(client, experiment="nosuch"),
        lambda: st.find_runs(client, experiment=999, status="FAILED"),
        lambda: search.run_overview(client, experiment="nosuch"),
        lambda: search.runs_dataframe_rows(client, experiment="nosuch"),
        lambda: st.summarize(client, "nosuch", "loss:min"),
        lambda: st.delete_runs(client, experiment="nosuch"),
    ):
        with pytest.raises(st.NotFound, match="experiment .*nosuch.* does not exist|999"):
            call()
    assert st.find_runs(client, experiment="other", tags="x") == []
    with pytest.raises(st.NotFound, match="runs 998, 999 do not exist"):
        st.delete_runs(client, [lab["r1"].id, 998, 999])
    st.delete_runs(client, [lab["r4"].id])
    assert st.find_runs(client, experiment="other") == []  # its one run is deleted
    assert st.delete_runs(client, [lab["r4"].id]) == []  # a deleted run exists


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["runs", "--experiment", "nosuch"], "experiment 'nosuch' does not exist"),
        (["runs", "--experiment", "999"], "experiment 999 does not exist"),
        (["runs", "--experiment", "nosuch", "--format", "csv"], "experiment 'nosuch'"),
        (["summarize", "nosuch"], "experiment 'nosuch' does not exist"),
        (["report", "nosuch"], "experiment 'nosuch' does not exist"),
        (["refresh", "99"], "run 99 does not exist"),
        (["refresh", "98", "99"], "runs 98, 99 do not exist"),
        (["refresh", "--experiment", "nosuch"], "experiment 'nosuch' does not exist"),
        (["stale", "--experiment", "999"], "experiment 999 does not exist"),
        (["reconcile", "--experiment", "nosuch"], "experiment 'nosuch' does not exist"),
        (["delete", "99"], "run 99 does not exist"),
        (["restore", "--experiment", "nosuch"], "experiment 'nosuch' does not exist"),
        (["artifacts", "--run", "99"], "run 99 does not exist"),
        (["show", "99"], "run 99 does not exist"),
        (["plot", "99", "--metric", "loss"], "run 99 does not exist"),
    ],
)
def test_a_name_or_id_that_does_not_exist_is_an_error_everywhere(
    client: Client,
    lab: dict[str, Any],
    command: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    lab["r1"].add_metrics({"loss": 1.0}, step=0)  # (a metric column for plot)
    assert main([*command, *cli_options(client)]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith(f"sqltrack: error: {message}")
    assert len(captured.err.splitlines()) == 1 and captured.out == ""


def test_what_exists_but_matches_nothing_is_empty(
    client: Client, lab: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    opts = cli_options(client)
    assert main(["runs", "--experiment", "other", "--status", "FAILED", *opts]) == 0
    assert capsys.readouterr().out.split() == ["id", "experiment", "status", "started",
                                               "duration", "tags"]  # fmt: skip
    assert main(["refresh", "--experiment", "other", *opts]) == 0
    assert capsys.readouterr().out == "refreshed the summaries of 1 run\n"
    assert main(["stale", "--experiment", str(lab["b"].id), "--format", "csv", *opts]) == 0
    assert capsys.readouterr().out.count("\n") == 1  # the header
    assert main(["artifacts", "--run", str(lab["r1"].id), "--format", "csv", *opts]) == 0
    assert capsys.readouterr().out.count("\n") == 1


def _grid(client: Client, values: dict[tuple[float, int], float]) -> dict[Any, int]:
    """Runs of "rank" with args lr and seed and one val_loss value each."""
    exp = Experiment(client, name="rank")
    ids = {}
    for (lr, seed), value in values.items():
        run = exp.get_run().set_args({"lr": lr, "seed": seed})
        with run.track():
            run.add_metrics({"val_loss": value, "val_acc": 1 - value}, step=0)
        ids[(lr, seed)] = run.id
    return ids


def test_summarize_ranks_groups_by_their_mean_or_what_you_choose(
    client: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    """lr=0.3 has the best run (0.1) but the worse mean (0.5 against 0.35)."""
    ids = _grid(client, {(0.3, 0): 0.1, (0.3, 1): 0.9, (0.05, 0): 0.3, (0.05, 1): 0.4,
                         (0.05, 2): 0.35})  # fmt: skip

    def order(metric: str = "val_loss:min", **kwargs: Any) -> list[Any]:
        return [r[0] for r in st.summarize(client, "rank", metric, ["lr"], "seed", **kwargs)]

    assert order() == order(rank_by="mean") == [0.05, 0.3]
    assert order(rank_by="median") == [0.05, 0.3]
    assert order(rank_by="best") == order(rank_by="min") == [0.3, 0.05]
    assert order(rank_by="max") == [0.05, 0.3]  # 0.4 against 0.9
    assert order("val_acc:max") == [0.05, 0.3]  # highest mean first: 0.65 against 0.5
    assert order("val_acc:max", rank_by="best") == [0.3, 0.05]  # 0.9
    [best, worse] = st.summarize(client, "rank", "val_loss:min", ["lr"])
    assert best[:2] == (0.05, 3) and best[-1] == ids[(0.05, 0)]  # the same rows as before
    assert len(best) == 1 + 6 and worse[2] == pytest.approx(0.5)
    with pytest.raises(InvalidValue, match="rank_by 'mode': give one of mean, median"):
        st.summarize(client, "rank", rank_by="mode")
    opts = [*cli_options(client), "rank", "--group-by", "lr", "--metric", "val_loss:min"]
    assert main(["summarize", *opts]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[1:3]] == ["0.05", "0.3"]
    assert lines[-1] == "ranked by the mean of val_loss:min per group, lowest first (see --rank-by)"
    assert main(["summarize", *opts, "--rank-by", "best"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[1:3]] == ["0.3", "0.05"]
    assert (
        lines[-1] == "ranked by the best run's val_loss:min per group, lowest first (see --rank-by)"
    )
    assert main(["summarize", *opts, "--rank-by", "median", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()  # CSV: the rows only, median shown
    assert lines[0] == "lr,n,mean,median,std,min,max,best_run" and len(lines) == 3
    rows = [[float(v) for v in line.split(",")[:4]] for line in lines[1:]]
    assert rows == [[0.05, 3, pytest.approx(0.35), 0.35], [0.3, 2, 0.5, 0.5]]
    assert main(["summarize", *opts[:-1], "val_acc:max", "--rank-by", "max"]) == 0
    out = capsys.readouterr().out
    assert out.endswith(
        "ranked by the max of val_acc:max per group, highest first (see --rank-by)\n"
    )


def test_compare_leaves_shell_noise_out_unless_all(
    client: Client, lab: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    from sqltrack._read.compare import SHELL_NOISE

    r1, r3 = lab["r1"], lab["r3"]
    noise = {"OLDPWD": "/home/a", "_": "/usr/bin/python", "SHLVL": "1", "SSH_TTY": "/dev/pts/1",
             "SSH_CONNECTION": "10.0.0.1 5 10.0.0.2 22", "TERM_SESSION_ID": "w0t0p0:1",
             "COLUMNS": "80", "WINDOWID": "1"}  # fmt: skip
    assert set(noise) <= SHELL_NOISE and "PWD" not in SHELL_NOISE
    r1.set_env({**noise, "PWD": "/src/a", "CUDA": "12"})
    r3.set_env({**{k: v + "x" for k, v in noise.items()}, "PWD": "/src/b", "CUDA": "12"})
    rows = {row[0] for row in st.compare_runs(client, r1.id, r3.id)}
    assert "env.PWD" in rows and not [r for r in rows if r[4:] in noise]  # (nor env.CUDA)
    everything = {row[0] for row in st.compare_runs(client, r1.id, r3.id, everything=True)}
    assert {f"env.{k}" for k in noise} <= everything
    assert main(["compare", *cli_options(client), str(r1.id), str(r3.id), "--format", "csv"]) == 0
    fields = [line.split(",")[0] for line in capsys.readouterr().out.splitlines()]
    assert "env.PWD" in fields and "env.OLDPWD" not in fields and "env._" not in fields
    assert main(["compare", *cli_options(client), str(r1.id), str(r3.id), "--all"]) == 0
    assert "env.OLDPWD" in capsys.readouterr().out


def test_sqltrack_runs_shows_the_args_that_differ_the_duration_and_summaries(
    client: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = _grid(client, {(0.3, 0): 0.1, (0.3, 1): 0.9, (0.05, 0): 0.3})
    a, b, c = ids.values()
    for run in (a, b, c):
        st.Run(client, run_id=run).add_args({"opt": "adam"})  # the same for all: no column
    st.Run(client, run_id=a).set_started(datetime(2026, 1, 1, tzinfo=timezone.utc))
    st.Run(client, run_id=a).set_updated(datetime(2026, 1, 1, 2, 3, tzinfo=timezone.utc))
    opts = [*cli_options(client), "--experiment", "rank"]
    assert main(["runs", *opts]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["id", "experiment", "status", "started", "duration", "tags",
                                "args.lr", "args.seed", "val_acc:last",
                                "val_loss:last"]  # fmt: skip
    assert lines[1].split()[:3] == [str(a), "rank", "COMPLETED"]
    assert lines[1].split()[5:] == ["2h03m", "0.3", "0", "0.9", "0.1"]  # started: 2 cells
    assert main(["runs", *opts, "--metric", "val_loss:min", "--sort", "val_loss:min", "-r"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[-3:] == ["args.lr", "args.seed", "val_loss:min"]
    assert [int(line.split()[0]) for line in lines[1:]] == [b, c, a]  # highest first
    assert main(["runs", *opts, "--sort", "args.lr", "--format", "csv"]) == 0
    table = list(csv_rows(capsys.readouterr().out))
    assert table[0][:8] == ["id", "experiment", "status", "created", "started", "updated",
                            "tags", "duration"]  # fmt: skip
    assert [int(r[0]) for r in table[1:]] == [c, a, b] and table[1][-1] == "0.3"
    assert float(table[2][7]) == 2 * 3600 + 180
    assert main(["runs", *opts, "--sort", "val_acc", "--metric", "val_loss:count"]) == 0
    lines = capsys.readouterr().out.splitlines()  # a summary sorted by is shown
    assert lines[0].split()[-2:] == ["val_loss:count", "val_acc"]
    assert [int(line.split()[0]) for line in lines[1:]] == [b, c, a]
    assert main(["runs", *opts, "--sort", "args.nope"]) == 1
    assert "no run has the argument 'nope'" in capsys.readouterr().err
    assert main(["runs", *opts, "--sort", "nope"]) == 1
    assert "sort 'nope': not a column, args.NAME or NAME:AGG" in capsys.readouterr().err
    run = st.Run(client, run_id=a)
    run.add_metrics({f"m{i}": float(i) for i in range(7)}, step=1)
    st.refresh_summaries(client, a)
    columns, _, left_out = search.run_table(client, experiment="rank")
    assert columns[-6:] == ["val_acc:last", "val_loss:last", "m0:last", "m1:last", "m2:last",
                            "m3:last"] and left_out == ["m4", "m5", "m6"]  # fmt: skip
    assert main(["runs", *opts]) == 0
    out = capsys.readouterr().out  # most runs have them first, then by name
    assert out.endswith("(and 3 more metrics: m4, m5, m6; choose with --metric NAME:AGG)\n")


def csv_rows(text: str) -> list[list[str]]:
    import csv

    return list(csv.reader(text.splitlines()))


def _finding_runs_transcripts() -> list[tuple[str, str]]:
    """``(command line, what it prints)`` of every ``$ sqltrack …`` in the text blocks of
    docs/reading.md (finding runs and the commands that read them) and of the README
    tour's "5. The command line"."""
    import re

    from conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    start = readme.index("\n### 5. The command line\n")
    tour = readme[start : readme.index("\n## ", start + 1)]
    sections = [(ROOT / "docs" / "reading.md").read_text(), tour]
    found = []
    blocks = [
        block
        for section in sections
        for block in re.findall(r"^```text\n(.*?)^```", section, re.MULTILINE | re.DOTALL)
    ]
    for block in blocks:
        for command in re.split(r"^\$ ", block, flags=re.MULTILINE)[1:]:
            line, _, shown = command.partition("\n")
            found.append((line.split("  #")[0].strip(), shown))
    return found


def test_the_finding_runs_transcripts_are_what_the_commands_print(
    client: Client, db_params: dict[str, Any], tmp_path: Any, monkeypatch: Any
) -> None:
    """After the example ran with two learning rates and two seeds each, every command
    of docs/reading.md and of the README's tour prints what they show: the same lines,
    times and durations aside ("…" stands for any lines; psql needs its shell, --version
    this machine)."""
    import re
    import shlex
    import subprocess
    import sys

    from conftest import ROOT, env_for

    for lr in ("0.05", "0.1"):
        for seed in ("0", "1"):
            done = subprocess.run(
                [sys.executable, str(ROOT / "examples" / "train.py"), "--lr", lr, "--seed", seed],
                env=env_for(db_params), capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
    monkeypatch.chdir(tmp_path)
    transcripts = _finding_runs_transcripts()
    assert len(transcripts) >= 10

    def normal(text: str) -> str:
        text = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\+00:00", "<time>", text)
        return re.sub(r"\b\d+\.\d\ds\b", "<dur>", text)

    for line, shown in transcripts:
        argv = shlex.split(line)
        assert argv[0] == "sqltrack", line
        if argv[1] == "psql":
            continue
        done = subprocess.run(
            [sys.executable, "-m", "sqltrack", *argv[1:]],
            env=env_for(db_params), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        printed = done.stdout + done.stderr
        if argv[1] == "--version":
            assert re.fullmatch(r"sqltrack \S+ \(experiment tracking in PostgreSQL or SQLite; "
                                r"[^)]*\) from \S.*\n", printed), printed  # fmt: skip
            assert shown.startswith(printed.split(";")[0])
            continue
        assert done.returncode == (1 if done.stderr else 0), printed
        pattern = "".join(
            ".*\n" if s == "…" else re.escape(s) + "\n" for s in normal(shown).splitlines()
        )
        assert re.fullmatch(pattern, normal(printed), re.DOTALL), f"$ {line}\n{printed}"


def test_the_docs_list_the_shell_noise() -> None:
    """docs/reading.md, where it says what `sqltrack compare` leaves out, names every
    variable of SHELL_NOISE."""
    from conftest import ROOT

    from sqltrack._read.compare import SHELL_NOISE

    text = (ROOT / "docs" / "reading.md").read_text()
    section = text[text.index("\n## Comparing runs: `sqltrack compare`\n") :]
    section = section[: section.index("\n## ", 1)]
    assert {n for n in SHELL_NOISE if f"`{n}`" not in section} == set()


def test_the_python_functions_refuse_what_does_not_exist(client: Client) -> None:
    """The command line refused unknown runs and experiments; the functions it calls
    returned nothing for them (refresh_summaries(client, 99) said it refreshed 0 runs)."""
    from sqltrack import NotFound, reconcile, refresh_summaries, stale_runs

    with pytest.raises(NotFound, match="run 99 does not exist"):
        refresh_summaries(client, 99)
    with pytest.raises(NotFound, match="experiment 'nosuch' does not exist"):
        refresh_summaries(client, experiment="nosuch")
    with pytest.raises(NotFound, match="experiment 999 does not exist"):
        stale_runs(client, 600, experiment_id=999)
    with pytest.raises(NotFound, match="experiment 'nosuch' does not exist"):
        reconcile(client, experiment="nosuch")
    exp = Experiment(client, name="there")
    assert refresh_summaries(client, experiment="there") == 0  # exists, has no runs
    assert stale_runs(client, 600, experiment_id=exp.id) == []
