"""The LightGBM callback in real CPU trainings, on both engines: every evaluation result
at its iteration, as record_evaluation has it; params as args; the final status, after
early stopping too (in a with block, and at the interpreter's exit)."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import run_python
from frameworks import need, only_run, series

import sqltrack as st

need("lightgbm")
import lightgbm as lgb  # noqa: E402
import numpy as np  # noqa: E402

from sqltrack.integrations.lightgbm import SqltrackCallback  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

PARAMS = {
    "objective": "regression",
    "metric": ["l2", "l1"],
    "num_leaves": 4,
    "min_data_in_leaf": 5,
    "verbose": -1,
    "num_threads": 1,
}
NAMES = ["train-l2", "train-l1", "valid-l2", "valid-l1"]


def data(noise: bool = False) -> tuple[Any, Any]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 4))
    y = x @ np.array([1.0, -2.0, 0.5, 0.0])
    valid_y = rng.normal(size=20) if noise else y[60:]  # noise: validation gets worse
    train_set = lgb.Dataset(x[:60], y[:60])
    return train_set, lgb.Dataset(x[60:], valid_y, reference=train_set)


def train(cb: SqltrackCallback, rounds: int = 5, **kw: Any) -> tuple[Any, dict[str, Any]]:
    dtrain, dvalid = data(noise=kw.pop("noise", False))
    recorded: dict[str, Any] = {}
    callbacks = [lgb.record_evaluation(recorded), *kw.pop("callbacks", []), cb]
    booster = lgb.train(
        dict(PARAMS), dtrain, rounds, valid_sets=[dtrain, dvalid], valid_names=["train", "valid"],
        callbacks=callbacks, **kw,
    )  # fmt: skip
    return booster, recorded


def assert_as_recorded(client: st.Client, run_id: int, recorded: dict[str, Any]) -> None:
    for name in NAMES:
        data_name, metric = name.split("-")
        assert series(client, run_id, name) == dict(enumerate(recorded[data_name][metric]))


def test_a_training_ends_completed_with_every_result_at_its_iteration(
    client: st.Client,
) -> None:
    cb = SqltrackCallback(experiment="lgb", client=client)
    _, recorded = train(cb)
    run_id, status, args = only_run(client, "lgb")
    assert (status, cb.run.id) == ("COMPLETED", run_id)
    assert args == {**PARAMS, "num_iterations": 5}  # LightGBM's params, at the first call
    assert_as_recorded(client, run_id, recorded)
    assert sorted(series(client, run_id, "valid-l2")) == list(range(5))


def test_early_stopping_in_a_with_block_ends_completed(client: st.Client) -> None:
    with SqltrackCallback(experiment="lgb", client=client) as cb:
        booster, recorded = train(cb, rounds=50, noise=True, callbacks=[lgb.early_stopping(2)])
        assert only_run(client, "lgb")[1] == "RUNNING"  # LightGBM called nothing after it
    assert 0 < booster.best_iteration < 10  # it stopped early
    run_id, status, _ = only_run(client, "lgb")
    assert status == "COMPLETED"
    assert_as_recorded(client, run_id, recorded)  # the iteration where it stopped included
    assert len(recorded["valid"]["l2"]) == booster.best_iteration + 2


def test_the_callback_runs_before_early_stopping_wherever_it_is_listed(
    client: st.Client,
) -> None:
    stop = lgb.early_stopping(2, verbose=False)
    dtrain, dvalid = data(noise=True)
    recorded: dict[str, Any] = {}
    with SqltrackCallback(experiment="lgb", client=client) as cb:
        lgb.train(
            dict(PARAMS), dtrain, 50, valid_sets=[dvalid], valid_names=["valid"],
            callbacks=[stop, cb, lgb.record_evaluation(recorded)],
        )  # fmt: skip
    run_id, _, _ = only_run(client, "lgb")
    assert len(recorded["valid"]["l2"]) < 50
    assert series(client, run_id, "valid-l2") == dict(enumerate(recorded["valid"]["l2"]))


_SCRIPT = """
import lightgbm as lgb, numpy as np, sys
from sqltrack.integrations.lightgbm import SqltrackCallback
rng = np.random.default_rng(0)
x = rng.normal(size=(80, 4))
dtrain = lgb.Dataset(x[:60], x[:60, 0])
dvalid = lgb.Dataset(x[60:], rng.normal(size=20), reference=dtrain)

def metric(preds, data):
    if sys.argv[1] == "raise" and len(calls) == 3:
        raise RuntimeError("diverged")
    calls.append(1)
    return "mine", 0.5, False

calls = []
cb = SqltrackCallback(experiment="lgb", env=False, code=False)
params = {"verbose": -1, "num_leaves": 4, "min_data_in_leaf": 5}
if sys.argv[1] == "twice":  # a first training to its end: the run ends, then starts again
    lgb.train(params, dtrain, 3, valid_sets=[dvalid], valid_names=["valid"], feval=metric,
              callbacks=[cb])
stop = [] if sys.argv[1] == "raise" else [lgb.early_stopping(2, verbose=False)]
booster = lgb.train(params, dtrain, 50, valid_sets=[dvalid], valid_names=["valid"],
                    feval=metric, callbacks=[cb, *stop])
print(booster.best_iteration, cb.run.id)
"""


@pytest.mark.parametrize(
    ("how", "status"), [("stop", "COMPLETED"), ("twice", "COMPLETED"), ("raise", "FAILED")]
)
def test_without_a_with_block_the_run_ends_at_exit(
    client: st.Client, db_params: dict[str, Any], how: str, status: str
) -> None:
    done = run_python(_SCRIPT, db_params, how)
    assert (done.returncode == 0) == (how != "raise"), done.stderr[-2000:]
    assert ("RuntimeError: diverged" in done.stderr) == (how == "raise")
    runs = client.query("SELECT id, status FROM runs ORDER BY id")
    if how == "twice":  # a later training with the same callback: a run of its own
        (first, done_first), runs = runs[0], runs[1:]
        assert done_first == "COMPLETED" and sorted(series(client, first, "valid-mine")) == [
            0, 1, 2,
        ]  # fmt: skip
    ((run_id, final),) = runs
    assert final == status  # early stopping: the booster says so; else the exception
    steps = sorted(series(client, run_id, "valid-mine"))
    if how != "raise":  # "mine" never improves: stopped 2 iterations after its best
        best = int(done.stdout.split()[0])
        assert best == 1 and steps == [0, 1, 2]
    else:
        assert steps == [0, 1, 2]  # all before it


def test_cv_logs_means_and_standard_deviations(client: st.Client) -> None:
    cb = SqltrackCallback(experiment="lgb", client=client)
    dtrain, _ = data()
    result = lgb.cv(dict(PARAMS), dtrain, 4, nfold=3, stratified=False, callbacks=[cb], seed=0)
    run_id, status, _ = only_run(client, "lgb")
    assert status == "COMPLETED"
    assert sorted(result) == sorted(
        f"valid {m}-{s}" for m in ("l1", "l2") for s in ("mean", "stdv")
    )
    for key, values in result.items():  # lightgbm.cv's "valid l2-mean"
        assert series(client, run_id, key.replace(" ", "-")) == dict(enumerate(values))


def test_a_training_that_raises_in_a_with_block_ends_failed(client: st.Client) -> None:
    calls = []

    def metric(preds: Any, data: Any) -> tuple[str, float, bool]:
        calls.append(1)
        if len(calls) == 2 * 3 + 1:  # two data sets: iteration 3's first evaluation
            raise RuntimeError("diverged")
        return "mine", 0.5, False

    with pytest.raises(RuntimeError, match="diverged"):
        with SqltrackCallback(experiment="lgb", client=client) as cb:
            train(cb, rounds=10, feval=metric)
    run_id, status, _ = only_run(client, "lgb")
    assert status == "FAILED"
    assert series(client, run_id, "valid-mine") == {0: 0.5, 1: 0.5, 2: 0.5}  # all before it
    assert sorted(series(client, run_id, "train-l2")) == [0, 1, 2]


def test_bad_arguments_raise_before_training() -> None:
    with pytest.raises(st.InvalidValue, match="no experiment"):
        SqltrackCallback()
    with pytest.raises(st.InvalidValue, match="SLURM_JOB_ID is not set"):
        SqltrackCallback(experiment="lgb", run_id="SLURM_JOB_ID")
    with pytest.raises(st.InvalidValue, match="experiment must be a name or an id"):
        SqltrackCallback(experiment=1.5)  # type: ignore[arg-type]
