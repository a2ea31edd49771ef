"""The XGBoost callback in real CPU trainings, on both engines: every evaluation result
at its iteration, named as XGBoost prints it, as evals_result has it; params as args;
the final status."""

from __future__ import annotations

from typing import Any

import pytest
from frameworks import need, only_run, series

import sqltrack as st

need("xgboost")
import numpy as np  # noqa: E402
import xgboost as xgb  # noqa: E402

from sqltrack.integrations.xgboost import SqltrackCallback  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

PARAMS = {"max_depth": 2, "eta": 0.3, "eval_metric": ["rmse", "mae"], "nthread": 1}
NAMES = ["train-rmse", "train-mae", "valid-rmse", "valid-mae"]


def data(seed: int = 0, noise: bool = False) -> tuple[Any, Any]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(80, 4))
    y = x @ np.array([1.0, -2.0, 0.5, 0.0])
    valid_y = rng.normal(size=20) if noise else y[60:]  # noise: validation gets worse
    return xgb.DMatrix(x[:60], label=y[:60]), xgb.DMatrix(x[60:], label=valid_y)


def train(cb: SqltrackCallback, rounds: int = 5, **kw: Any) -> tuple[Any, dict[str, Any]]:
    dtrain, dvalid = data(noise=kw.pop("noise", False))
    recorded: dict[str, Any] = {}
    callbacks = [cb, *kw.pop("callbacks", [])]
    booster = xgb.train(
        PARAMS, dtrain, rounds, evals=[(dtrain, "train"), (dvalid, "valid")],
        evals_result=recorded, verbose_eval=False, callbacks=callbacks, **kw,
    )  # fmt: skip
    return booster, recorded


def test_a_training_ends_completed_with_every_result_at_its_iteration(
    client: st.Client,
) -> None:
    cb = SqltrackCallback(experiment="xgb", client=client, params=PARAMS)
    _, recorded = train(cb)
    run_id, status, args = only_run(client, "xgb")
    assert (status, cb.run.id) == ("COMPLETED", run_id)
    assert args == PARAMS  # the list of metrics kept a list
    for name in NAMES:
        data_name, metric = name.split("-")
        assert series(client, run_id, name) == dict(enumerate(recorded[data_name][metric]))


def test_without_params_there_are_no_args(client: st.Client) -> None:
    train(SqltrackCallback(experiment="xgb", client=client), rounds=2)
    _, status, args = only_run(client, "xgb")
    assert (status, args) == ("COMPLETED", {})


def test_early_stopping_ends_completed_with_the_iteration_that_stopped(
    client: st.Client,
) -> None:
    cb = SqltrackCallback(experiment="xgb", client=client)
    stop = xgb.callback.EarlyStopping(rounds=2, data_name="valid", metric_name="rmse")
    booster, recorded = train(cb, rounds=50, noise=True, callbacks=[stop])
    rounds = booster.num_boosted_rounds()
    assert rounds < 50  # it stopped early
    run_id, status, _ = only_run(client, "xgb")
    assert status == "COMPLETED"
    assert series(client, run_id, "valid-rmse") == dict(enumerate(recorded["valid"]["rmse"]))
    assert sorted(series(client, run_id, "valid-rmse")) == list(range(rounds))


def test_going_on_from_a_model_counts_from_zero_as_xgboost_does(client: st.Client) -> None:
    first, _ = train(SqltrackCallback(experiment="xgb", client=client), rounds=3)
    cb = SqltrackCallback(experiment="xgb2", client=client)
    _, recorded = train(cb, rounds=2, xgb_model=first)
    run_id, _, _ = only_run(client, "xgb2")
    assert series(client, run_id, "valid-rmse") == dict(enumerate(recorded["valid"]["rmse"]))
    assert first.num_boosted_rounds() == 3 and len(recorded["valid"]["rmse"]) == 2


def test_cv_logs_means_and_standard_deviations(client: st.Client) -> None:
    cb = SqltrackCallback(experiment="xgb", client=client)
    dtrain, _ = data()
    result = xgb.cv(
        PARAMS, dtrain, 4, nfold=3, as_pandas=False, callbacks=[cb], seed=0, verbose_eval=False
    )
    run_id, status, _ = only_run(client, "xgb")
    assert status == "COMPLETED"
    assert sorted(result) == sorted(
        f"{d}-{m}-{s}" for d in ("train", "test") for m in ("rmse", "mae") for s in ("mean", "std")
    )
    for name, values in result.items():  # the columns of xgboost.cv's result
        assert series(client, run_id, name) == dict(enumerate(values))


def test_a_training_that_raises_in_a_with_block_ends_failed(client: st.Client) -> None:
    calls = []

    def metric(predt: Any, dmatrix: Any) -> tuple[str, float]:
        calls.append(1)
        if len(calls) == 2 * 3 + 1:  # two data sets: iteration 3's first evaluation
            raise RuntimeError("diverged")
        return "mine", 0.5

    with pytest.raises(RuntimeError, match="diverged"):
        with SqltrackCallback(experiment="xgb", client=client) as cb:
            train(cb, rounds=10, custom_metric=metric)
    run_id, status, _ = only_run(client, "xgb")
    assert status == "FAILED"
    assert series(client, run_id, "valid-mine") == {0: 0.5, 1: 0.5, 2: 0.5}  # all before it
    assert sorted(series(client, run_id, "train-rmse")) == [0, 1, 2]


def test_bad_arguments_raise_before_training() -> None:
    with pytest.raises(st.InvalidValue, match="no experiment"):
        SqltrackCallback()
    with pytest.raises(st.InvalidValue, match="SLURM_JOB_ID is not set"):
        SqltrackCallback(experiment="xgb", run_id="SLURM_JOB_ID")
    with pytest.raises(st.InvalidValue, match="params must be a mapping"):
        SqltrackCallback(experiment="xgb", params=[("eta", 0.3)])  # type: ignore[arg-type]
