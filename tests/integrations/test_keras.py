"""The Keras 3 callback in real CPU fits (torch backend), on both engines: batch and epoch
logs at a global batch step, as History has them, the fit's args, the final status."""

from __future__ import annotations

import os
from typing import Any

import pytest
from frameworks import need, only_run, series

import sqltrack as st

os.environ.setdefault("KERAS_BACKEND", "torch")
need("keras")
import keras  # noqa: E402
import numpy as np  # noqa: E402

from sqltrack.integrations.keras import SqltrackCallback  # noqa: E402

pytestmark = [
    # the frameworks' own deprecations (Keras' of numpy's __array__), not ours
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

#: 32 rows, a quarter for validation, batches of 8: 3 steps per epoch
X = np.linspace(0, 1, 128, dtype="float32").reshape(32, 4)
Y = X.sum(axis=1, keepdims=True)


def model() -> Any:
    net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    net.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="mse", metrics=["mae"])
    return net


def fit(net: Any, callbacks: list[Any], **kw: Any) -> Any:
    kw.setdefault("epochs", 2)
    return net.fit(X, Y, batch_size=8, validation_split=0.25, verbose=0, callbacks=callbacks, **kw)


class Diverge(keras.callbacks.Callback):  # type: ignore[misc]
    """Raises as the ``at``-th batch of the fit begins."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at, self.seen = at, 0

    def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
        if self.seen == self.at:
            raise RuntimeError("diverged")
        self.seen += 1


def test_a_fit_ends_completed_with_its_logs_at_global_steps_and_its_args(
    client: st.Client,
) -> None:
    cb = SqltrackCallback(experiment="keras", client=client)
    history = fit(model(), [cb]).history
    run_id, status, args = only_run(client, "keras")
    assert (status, cb.run.id) == ("COMPLETED", run_id)
    assert (args["epochs"], args["steps"]) == (2, 3)
    # (Keras names a second optimizer of the process adam_1: a name, not a type)
    assert args["optimizer"]["class"] == "Adam" and args["optimizer"]["name"].startswith("adam")
    assert args["optimizer"]["learning_rate"] == pytest.approx(0.01)
    loss = series(client, run_id, "loss")
    assert sorted(loss) == list(range(6))  # every batch, 3 per epoch, counted across epochs
    assert [loss[2], loss[5]] == pytest.approx(history["loss"])  # the epoch's at its end
    for name, steps in [("mae", range(6)), ("val_loss", [2, 5]), ("val_mae", [2, 5])]:
        logged = series(client, run_id, name)
        assert sorted(logged) == list(steps)  # validation: at the epochs' ends only
        assert [logged[2], logged[5]] == pytest.approx(history[name])
    assert series(client, run_id, "epoch") == {2: 0, 5: 1}


@pytest.mark.parametrize(("every", "steps"), [(2, [1, 2, 3, 5]), (0, [2, 5])])
def test_log_every_n_steps_thins_the_batch_logs_never_the_epochs(
    client: st.Client, every: int, steps: list[int]
) -> None:
    cb = SqltrackCallback(experiment="keras", client=client, log_every_n_steps=every)
    fit(model(), [cb])
    run_id, status, _ = only_run(client, "keras")
    assert status == "COMPLETED"
    assert sorted(series(client, run_id, "loss")) == steps


def test_a_second_fit_goes_on_counting_in_the_same_run(client: st.Client) -> None:
    cb = SqltrackCallback(experiment="keras", client=client, log_every_n_steps=0)
    net = model()
    fit(net, [cb])
    assert only_run(client, "keras")[1] == "COMPLETED"
    later = fit(net, [cb], initial_epoch=2, epochs=3).history
    run_id, status, _ = only_run(client, "keras")
    assert status == "COMPLETED"  # started again, and ended again
    val = series(client, run_id, "val_loss")
    assert sorted(val) == [2, 5, 8] and val[8] == pytest.approx(later["val_loss"][0])
    assert series(client, run_id, "epoch") == {2: 0, 5: 1, 8: 2}


def test_initial_epoch_starts_at_its_step(client: st.Client) -> None:
    cb = SqltrackCallback(experiment="keras", client=client)
    fit(model(), [cb], initial_epoch=1, epochs=2)
    run_id, _, _ = only_run(client, "keras")
    assert sorted(series(client, run_id, "loss")) == [3, 4, 5]


def test_a_fit_that_raises_in_a_with_block_ends_failed(client: st.Client) -> None:
    with pytest.raises(RuntimeError, match="diverged"):
        with SqltrackCallback(experiment="keras", client=client) as cb:
            fit(model(), [cb, Diverge(at=4)])
    run_id, status, _ = only_run(client, "keras")
    assert status == "FAILED"
    assert sorted(series(client, run_id, "loss")) == [0, 1, 2, 3]  # all before it
    assert sorted(series(client, run_id, "val_loss")) == [2]


def test_a_with_block_that_ends_normally_leaves_completed(client: st.Client) -> None:
    with SqltrackCallback(experiment="keras", client=client) as cb:
        fit(model(), [cb], epochs=1)
    assert only_run(client, "keras")[1] == "COMPLETED"


def test_bad_arguments_raise_before_training() -> None:
    with pytest.raises(st.InvalidValue, match="no experiment"):
        SqltrackCallback()
    with pytest.raises(st.InvalidValue, match="SLURM_JOB_ID is not set"):
        SqltrackCallback(experiment="keras", run_id="SLURM_JOB_ID")
    with pytest.raises(st.InvalidValue, match="client must be a sqltrack.Client"):
        SqltrackCallback(experiment="keras", client="sqlite:///x.db")  # type: ignore[arg-type]
    for every in (-1, 1.5, True):
        with pytest.raises(st.InvalidValue, match="log_every_n_steps"):
            SqltrackCallback(experiment="keras", log_every_n_steps=every)  # type: ignore[arg-type]
