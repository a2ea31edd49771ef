"""What the dashboard's JSON API answers (sqltrack._read.dashboard, curves), on both engines."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

import pytest

from sqltrack import Client, Experiment, InvalidValue, NotFound, Run, delete_runs, read_metrics
from sqltrack._read.curves import run_curves
from sqltrack._read.dashboard import (
    _json_texts,
    experiments,
    metric_names,
    parse_arg_filters,
    run_page,
    runs,
    system_curves,
)

HOSTILE = "<img src=x onerror=alert(1)></script>"


@pytest.fixture
def sweep(client: Client) -> list[Run]:
    """Four runs of lr x seed: a wide ``loss`` and a narrow ``eval/acc``, 3,000 steps."""
    exp = Experiment(client, name=HOSTILE)
    made = []
    for i in range(4):
        run = exp.get_run().set_args({"lr": [0.1, 0.01][i % 2], "seed": i}).add_tags("base")
        with run.track(buffered=True):
            rows = [(s, {"loss": 1 / (s + 1) + i, "eval/acc": s / 3000}) for s in range(3000)]
            for step, values in rows:
                run.add_metrics(values, step=step)
        made.append(run)
    made[0].add_tags(HOSTILE)
    return made


def test_experiments_count_the_runs_that_are_not_deleted(client: Client, sweep: list[Run]) -> None:
    Experiment(client, name="empty")
    delete_runs(client, [sweep[3].id])
    found = {e["name"]: e["runs"] for e in experiments(client)}
    assert found == {HOSTILE: 3, "empty": 0}


def test_runs_carry_args_tags_and_summaries_and_filter(client: Client, sweep: list[Run]) -> None:
    listed = runs(client, HOSTILE)
    assert [r["id"] for r in listed["runs"]] == sorted(r.id for r in sweep)
    assert set(listed["metrics"]) == {"loss", "eval/acc"}
    first = listed["runs"][0]
    assert first["args"] == {"lr": 0.1, "seed": 0}
    assert first["tags"] == sorted(["base", HOSTILE]) and first["status"] == "COMPLETED"
    assert first["summaries"]["loss"] == {"min": pytest.approx(1 / 3000), "max": 1.0,
                                          "last": pytest.approx(1 / 3000)}  # fmt: skip
    assert first["summaries"]["eval/acc"]["last"] == pytest.approx(2999 / 3000)
    assert first["duration"] is not None and first["duration"] > 0  # seconds, not rounded away
    assert {r["id"] for r in runs(client, HOSTILE, args={"lr": 0.01})["runs"]} == {
        sweep[1].id, sweep[3].id
    }  # fmt: skip
    assert [r["id"] for r in runs(client, HOSTILE, tags=[HOSTILE])["runs"]] == [sweep[0].id]
    assert runs(client, HOSTILE, status=["RUNNING"])["runs"] == []
    only = runs(client, HOSTILE, metrics=["loss"])
    assert only["metrics"] == ["loss"] and set(only["runs"][0]["summaries"]) == {"loss"}
    with pytest.raises(NotFound, match="experiment 'nope' does not exist"):
        runs(client, "nope")
    with pytest.raises(InvalidValue, match="status"):
        runs(client, HOSTILE, status=["SLEEPING"])


def test_arg_filters_read_json_values_and_else_text() -> None:
    assert parse_arg_filters(["lr=0.1", "opt=adam", "deep=true", "name=\"1\"", "eq=a=b"]) == {
        "lr": 0.1, "opt": "adam", "deep": True, "name": "1", "eq": "a=b"
    }  # fmt: skip
    for bad in ("lr", "=1"):
        with pytest.raises(InvalidValue, match="key=value"):
            parse_arg_filters([bad])


def test_json_columns_are_decoded_together_and_a_bad_row_cannot_shift_the_others() -> None:
    texts = ['{"lr": 0.1}', None, '{"b": [1, 2]}', "[]"]
    assert _json_texts(texts) == [{"lr": 0.1}, None, {"b": [1, 2]}, []]
    assert _json_texts([]) == []
    # a hand-written SQLite row holding two values, or none, would move every later
    # run's args: each is then decoded alone, and one that is no JSON value reads as null
    assert _json_texts(['{"a": 1}', "1, 2", '{"c": 3}']) == [{"a": 1}, None, {"c": 3}]
    assert _json_texts(['{"a": 1}', "{", '{"c": 3}']) == [{"a": 1}, None, {"c": 3}]


def test_metric_search_matches_text_not_patterns(client: Client) -> None:
    run = Experiment(client, name="e").get_run()
    with run.track():
        run.add_metrics({"a_b": 1.0, "axb": 2.0, "val/loss": 3.0, "Top 1": 4.0}, step=0)
    assert metric_names(client, "e", "A_B") == ["a_b"]  # _ is no wildcard; case ignored
    assert metric_names(client, "e", "%") == [] and metric_names(client, "e", "!") == []
    assert metric_names(client, "e", "p 1") == ["Top 1"]
    assert sorted(metric_names(client, "e")) == ["Top 1", "a_b", "axb", "val/loss"]
    assert len(metric_names(client, "e", limit=2)) == 2
    with pytest.raises(InvalidValue, match="limit"):
        metric_names(client, "e", limit=0)


def _check_sampled(
    curve: dict[str, list[Any]], steps: list[int], values: list[float], n: int
) -> None:
    assert len(curve["step"]) <= n
    assert curve["step"] == sorted(curve["step"])
    assert curve["step"][-1] == steps[-1] and curve["value"][-1] == pytest.approx(values[-1])
    assert max(curve["value"]) == pytest.approx(max(values))
    assert min(curve["value"]) == pytest.approx(min(values))
    logged = dict(zip(steps, values, strict=True))
    for step, value in zip(curve["step"], curve["value"], strict=True):
        assert logged[step] == pytest.approx(value)  # each point as it was logged


@pytest.mark.parametrize("name", ["loss", "val/loss"], ids=["wide", "narrow"])
def test_curves_keep_spikes_and_the_last_point_in_at_most_n_points(
    client: Client, name: str
) -> None:
    run = Experiment(client, name="e").get_run()
    steps = list(range(0, 20_000, 2))
    values = [math.sin(s / 500) for s in steps]
    values[1234], values[4321] = 50.0, -50.0  # one step each: a spike and a dip
    with run.track(buffered=True):
        for step, value in zip(steps, values, strict=True):
            run.add_metrics({name: value}, step=step)
    for n in (3, 4, 100, 1001):
        _check_sampled(run_curves(client, run.id, [name], n)[name], steps, values, n)
    everything = run_curves(client, run.id, [name], 10_000)[name]
    assert everything == {"step": steps, "value": pytest.approx(values)}  # as many as logged


def test_curves_after_a_step_are_the_new_points_and_both_storages_are_one_curve(
    client: Client,
) -> None:
    run = Experiment(client, name="e").get_run()
    with run.track():
        for step in range(10):
            run.add_metrics({"loss": float(step)}, step=step)
        # (text in the same name goes to the narrow storage: left out of the curve)
        run.add_metrics({"loss": float(10)}, step=10)
    assert run_curves(client, run.id, ["loss"], after=7)["loss"] == {
        "step": [8, 9, 10], "value": [8.0, 9.0, 10.0]
    }  # fmt: skip
    assert run_curves(client, run.id, ["loss"], after=10)["loss"] == {"step": [], "value": []}
    assert run_curves(client, run.id, ["never"]) == {"never": {"step": [], "value": []}}


def test_curves_leave_out_what_is_no_finite_number(client: Client) -> None:
    run = Experiment(client, name="e").get_run()
    with run.track():
        run.add_metrics({"x": 1.0, "note": "text", "big": 2**62}, step=0)
        if client.engine.stores_nan:
            run.add_metrics({"x": math.nan}, step=1)
        run.add_metrics({"x": math.inf}, step=2)
        run.add_metrics({"x": 3.0, "note": "more", "big": 1}, step=3)
    found = run_curves(client, run.id, ["x", "note", "big"])
    assert found["x"] == {"step": [0, 3], "value": [1.0, 3.0]}
    assert found["note"] == {"step": [], "value": []}
    assert found["big"]["step"] == [0, 3] and found["big"]["value"] == [float(2**62), 1.0]
    # the runs list: an infinite summary is null (JSON has no infinity), the rest kept
    (listed,) = runs(client, "e", metrics=["x"])["runs"]
    assert listed["summaries"]["x"] == {"min": 1.0, "max": None, "last": 3.0}


def test_curves_refuse_bad_input(client: Client, sweep: list[Run]) -> None:
    run_id = sweep[0].id
    for points in (2, 100_001, 1.5, True, "10"):
        with pytest.raises(InvalidValue, match="points must be an integer from 3 to 100000"):
            run_curves(client, run_id, ["loss"], points)  # type: ignore[arg-type]
    with pytest.raises(InvalidValue, match="names"):
        run_curves(client, run_id, "loss")
    with pytest.raises(InvalidValue, match="after"):
        run_curves(client, run_id, ["loss"], after="3")  # type: ignore[arg-type]
    with pytest.raises(NotFound, match="run 42 does not exist"):
        run_curves(client, 42, ["loss"])
    with pytest.raises(InvalidValue, match="run id"):
        run_curves(client, -1, ["loss"])


def test_a_short_curve_is_every_point_as_read_back(client: Client, sweep: list[Run]) -> None:
    curve = run_curves(client, sweep[1].id, ["loss"], 5000)["loss"]
    _, rows = read_metrics(client, sweep[1].id, ["loss"])
    assert curve["step"] == [r[1] for r in rows]
    assert curve["value"] == [r[3] for r in rows]


def test_the_run_page_has_what_a_run_holds(client: Client, sweep: list[Run]) -> None:
    run = sweep[0]
    run.set_code({"commit": "0" * 40, "dirty": True, "diff": "+ " + HOSTILE})
    run.set_comment(HOSTILE)
    run.log_artifact(
        "s3://bucket/ckpt", name="ckpt", kind="checkpoint", step=2999, metadata={"k": 1}
    )
    sweep[1].use_artifact("ckpt", 1)
    run.add_link("derived_from", sweep[1].id)
    run.log_sample(5, "a prompt", {"clip": 0.3})
    client.query(
        "INSERT INTO system_metrics (run_id, time, name, value) VALUES (:r, :t, 'rss_bytes', 7)",
        {"r": run.id, "t": client.engine.adapt_datetime(datetime.now(timezone.utc))},
    )
    page = run_page(client, run.id)
    assert page["id"] == run.id and page["experiment"] == HOSTILE and page["comment"] == HOSTILE
    assert page["args"] == {"lr": 0.1, "seed": 0} and page["status"] == "COMPLETED"
    assert page["code"]["diff"] == "+ " + HOSTILE
    [artifact] = page["artifacts"]
    assert (artifact["name"], artifact["version"], artifact["kind"], artifact["step"]) == (
        "ckpt", 1, "checkpoint", 2999
    )  # fmt: skip
    assert artifact["uri"] == "s3://bucket/ckpt" and artifact["metadata"] == {"k": 1}
    assert run_page(client, sweep[1].id)["used"][0]["name"] == "ckpt"
    assert page["links"] == [{"direction": "to", "kind": "derived_from", "run": sweep[1].id}]
    assert run_page(client, sweep[1].id)["links"][0]["direction"] == "from"
    [sample] = page["samples"]
    assert sample["step"] == 5 and sample["conditioning"] == "a prompt"
    assert sample["output"] == {"clip": 0.3}
    assert {m["name"]: m["count"] for m in page["metrics"]} == {"loss": 3000, "eval/acc": 3000}
    assert page["system"] == ["rss_bytes"]
    assert system_curves(client, run.id)["rss_bytes"]["value"] == [7.0]
    delete_runs(client, [run.id])
    with pytest.raises(NotFound, match=f"run {run.id} does not exist"):
        run_page(client, run.id)
