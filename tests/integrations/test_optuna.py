"""The Optuna callback in real studies, on both engines: the study an experiment, each
finished trial a run with its params, values, intermediate values, state and times."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from conftest import run_time
from frameworks import need, series

import sqltrack as st

need("optuna")
import optuna  # noqa: E402

from sqltrack.integrations.optuna import SqltrackCallback  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

optuna.logging.set_verbosity(optuna.logging.WARNING)


def objective(trial: optuna.Trial) -> float:
    """Trial 1 is pruned after two reports, trial 2 fails after one; the others complete
    after three."""
    x = trial.suggest_float("x", -2.0, 2.0)
    layers = trial.suggest_int("layers", 1, 3)
    trial.set_user_attr("note", f"trial {trial.number}")
    for step in range(3):
        trial.report(x**2 + step, step * 10)
        if trial.number == 1 and step == 1:
            raise optuna.TrialPruned()
        if trial.number == 2:
            raise ValueError("diverged")
    return x**2 + layers


def runs_of(client: st.Client, experiment: str) -> dict[int, tuple[int, str, dict[str, Any]]]:
    """``{trial number: (run id, status, args)}`` of an experiment's runs."""
    return {number: run[:3] for number, run in trial_runs(client, experiment).items()}


def trial_runs(client: st.Client, experiment: str) -> dict[int, tuple[Any, ...]]:
    """``{trial number: (run id, status, args, extras)}`` of an experiment's runs."""
    rows = client.query(
        "SELECT runs.id, runs.status, runs.args, runs.extras FROM runs JOIN experiments"
        " ON experiments.id = runs.experiment_id WHERE experiments.name = :name",
        {"name": experiment},
    )
    found = {}
    for run_id, status, args, extras in rows:
        extras = st.json_value(extras)
        found[extras["optuna_trial"]] = (run_id, status, st.json_value(args) or {}, extras)
    assert len(found) == len(rows), "one run per trial"
    return found


def test_each_trial_is_a_run_of_the_study(client: st.Client) -> None:
    study = optuna.create_study(study_name="search", sampler=optuna.samplers.RandomSampler(0))
    cb = SqltrackCallback(client=client, env=False, code=False)
    before = datetime.now().astimezone()
    study.optimize(objective, n_trials=4, callbacks=[cb], catch=(ValueError,))
    trials = study.trials
    runs = trial_runs(client, "search")  # the study's name
    assert sorted(runs) == [0, 1, 2, 3]
    assert {n: runs[n][1] for n in runs} == {
        0: "COMPLETED", 1: "CANCELLED", 2: "FAILED", 3: "COMPLETED"
    }  # fmt: skip
    assert cb.run.id == runs[3][0]  # the one written last
    for trial in trials:
        run_id, _, args, extras = runs[trial.number]
        assert args == trial.params  # {"x": ..., "layers": ...}
        assert series(client, run_id, "intermediate_value") == trial.intermediate_values
        started = run_time(client, run_id, "time_started")
        assert started == trial.datetime_start.astimezone()  # Optuna's, not the callback's
        assert before <= started < run_time(client, run_id, "time_updated")
        assert extras == {
            "optuna_study": "search",
            "optuna_trial": trial.number,
            "optuna_user_attrs": {"note": f"trial {trial.number}"},
        }
    value = {n: series(client, runs[n][0], "value") for n in runs}
    # at the last report's step; a pruned trial has Optuna's value for it (its last
    # report); a failed one has none
    assert value == {
        0: {20: trials[0].value},
        1: {10: trials[1].value},
        2: {},
        3: {20: trials[3].value},
    }
    assert trials[1].value == trials[1].intermediate_values[10]


def test_experiment_and_metric_name_given(client: st.Client) -> None:
    study = optuna.create_study(study_name="ignored")
    cb = SqltrackCallback(experiment="hpo", client=client, metric_name="loss", code=False)
    study.optimize(lambda t: t.suggest_float("lr", 0.1, 0.2), n_trials=2, callbacks=[cb])
    runs = trial_runs(client, "hpo")
    assert [run[1] for run in runs.values()] == ["COMPLETED", "COMPLETED"]
    for trial in study.trials:
        run_id, _, _, extras = runs[trial.number]
        assert series(client, run_id, "loss") == {0: trial.value}  # no reports: step 0
        assert extras["optuna_study"] == "ignored"
    assert not trial_runs(client, "ignored")


@pytest.mark.parametrize(
    ("names", "expected"),
    [(["loss", "size"], ["loss", "size"]), ("value", ["value_0", "value_1"])],
)
def test_a_multi_objective_study_logs_each_value(
    client: st.Client, names: Any, expected: list[str]
) -> None:
    study = optuna.create_study(study_name="multi", directions=["minimize", "maximize"])
    cb = SqltrackCallback(client=client, metric_name=names, env=False, code=False)

    def two(trial: optuna.Trial) -> tuple[float, float]:
        x = trial.suggest_float("x", 0, 1)
        return x, 1 - x

    study.optimize(two, n_trials=2, callbacks=[cb])
    for trial in study.trials:
        run_id = runs_of(client, "multi")[trial.number][0]
        for name, value in zip(expected, trial.values, strict=True):
            assert series(client, run_id, name) == {0: value}


def test_a_trial_whose_exception_leaves_optimize_has_no_run(client: st.Client) -> None:
    study = optuna.create_study(study_name="search")
    cb = SqltrackCallback(client=client, env=False, code=False)
    with pytest.raises(ValueError, match="diverged"):
        with cb:
            study.optimize(objective, n_trials=4, callbacks=[cb])  # no catch=
    assert [t.state.name for t in study.trials] == ["COMPLETE", "PRUNED", "FAIL"]
    runs = runs_of(client, "search")
    assert {n: status for n, (_, status, _) in runs.items()} == {0: "COMPLETED", 1: "CANCELLED"}


def test_parallel_trials_are_each_written(client: st.Client) -> None:
    study = optuna.create_study(study_name="parallel")
    cb = SqltrackCallback(client=client, env=False, code=False)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=6, n_jobs=3, callbacks=[cb])
    runs = runs_of(client, "parallel")
    assert sorted(runs) == list(range(6))
    assert {status for _, status, _ in runs.values()} == {"COMPLETED"}
    assert {n: a["x"] for n, (_, _, a) in runs.items()} == {
        t.number: t.params["x"] for t in study.trials
    }


def test_bad_arguments_raise_before_the_study() -> None:
    with pytest.raises(st.InvalidValue, match="experiment name must be a non-empty string"):
        SqltrackCallback(experiment="")
    with pytest.raises(
        st.InvalidValue, match="experiment id must be a positive integer \\(of 64 bits\\)"
    ):
        SqltrackCallback(experiment=-3)
    with pytest.raises(st.InvalidValue, match="client must be a sqltrack.Client"):
        SqltrackCallback(client="sqlite:///x.db")  # type: ignore[arg-type]
    for bad in ([], ["a", ""], 3, ["a", "a"], "intermediate_value", "bad:name"):
        with pytest.raises(st.InvalidValue, match="metric_name"):
            SqltrackCallback(metric_name=bad)
    with pytest.raises(st.InvalidValue, match="no trial has been written yet"):
        _ = SqltrackCallback().run
