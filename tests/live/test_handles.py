"""The handles Run and Experiment, run_from_env, and their parity with the functions."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

import sqltrack as st
from sqltrack import Client, Experiment, InvalidValue, NotFound


def test_run_from_env(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidValue, match="SQLTRACK_EXPERIMENT_NAME or SQLTRACK_EXPERIMENT_ID"):
        st.run_from_env(client)
    monkeypatch.setenv("SQLTRACK_EXPERIMENT_NAME", "cluster")
    first = st.run_from_env(client)
    second = st.run_from_env(client)
    assert first.experiment_id == second.experiment_id and first.id != second.id
    monkeypatch.setenv("SQLTRACK_RUN_ID", "31337")
    resumed = st.run_from_env(client)
    assert (resumed.id, resumed.experiment_id) == (31337, first.experiment_id)
    assert st.run_from_env(client).id == 31337  # a requeued job finds its run again
    monkeypatch.delenv("SQLTRACK_EXPERIMENT_NAME")
    monkeypatch.setenv("SQLTRACK_EXPERIMENT_ID", str(first.experiment_id))
    assert st.run_from_env(client).id == 31337
    monkeypatch.setenv("SQLTRACK_EXPERIMENT_ID", "abc")
    with pytest.raises(InvalidValue, match="SQLTRACK_EXPERIMENT_ID is 'abc'"):
        st.run_from_env(client)
    monkeypatch.setenv("SQLTRACK_EXPERIMENT_ID", "999")
    with pytest.raises(NotFound):
        st.run_from_env(client)


def test_get_run(client: Client) -> None:
    exp = Experiment(client, name="e")
    run = exp.get_run()
    assert run.experiment_id == exp.id
    assert exp.get_run(run.id).id == run.id
    assert exp.get_run(55).id == 55


# Run methods that take more than their function, on purpose: ``updated`` is the
# heartbeat of a tracked run (run_add_metrics leaves time_updated alone).
EXTRA_PARAMETERS = {("run", "add_metrics"): ["updated"]}


def _twins() -> list[tuple[str, str, Any, Any]]:
    """Every run_*/experiment_* function of the public API with its handle method."""
    pairs = []
    for name in st.__all__:
        for prefix, handle in (("run_", st.Run), ("experiment_", st.Experiment)):
            if name.startswith(prefix) and name != "run_from_env":
                method = name[len(prefix) :]
                assert hasattr(handle, method), f"{handle.__name__} has no {method}()"
                pairs.append((prefix[:-1], method, getattr(st, name), getattr(handle, method)))
    return pairs


def _parameters(fn: Any, drop: int) -> list[tuple[str, Any, Any, Any]]:
    params = list(inspect.signature(fn, eval_str=True).parameters.values())[drop:]
    return [(p.name, p.kind, p.default, p.annotation) for p in params]


@pytest.mark.parametrize("what, method, function, bound", _twins(), ids=lambda x: str(x))
def test_each_function_and_its_method_take_the_same_parameters(
    what: str, method: str, function: Any, bound: Any
) -> None:
    ours = _parameters(function, 2)  # (client, run_id) or (client, from_id)
    theirs = _parameters(bound, 1)  # (self)
    extra = EXTRA_PARAMETERS.get((what, method), [])
    theirs = [p for p in theirs if p[0] not in extra]
    assert ours == theirs, f"{what}_{method} and its method differ"


def test_the_parity_check_sees_a_drift() -> None:
    def run_remove_args(client: Client, run_id: int, *args: str) -> None: ...

    def remove_args(self: Any, *args: str | dict[str, Any]) -> None: ...

    assert _parameters(run_remove_args, 2) != _parameters(remove_args, 1)


def test_every_handle_method_has_a_twin_or_is_lifecycle() -> None:
    # Run.of is a constructor, not a method with a function twin
    lifecycle = {"add_metrics", "flush", "start", "stop", "track", "get_run", "of"}
    twins = {(what, method) for what, method, _, _ in _twins()}
    for what, handle in (("run", st.Run), ("experiment", st.Experiment)):
        for method in vars(handle) | vars(handle.__mro__[1]):
            if method.startswith("_") or method in lifecycle:
                continue
            if not callable(getattr(handle, method)):  # settings such as heartbeat_seconds
                continue
            assert (what, method) in twins, f"{handle.__name__}.{method} has no function twin"
