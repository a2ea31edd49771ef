"""The handles Run and Experiment, run_from_env, and their parity with the functions."""

from __future__ import annotations

import pytest

import sqltrack as st
from sqltrack import Client, Experiment, InvalidValue, NotFound, Run


@pytest.fixture
def exp(client: Client) -> Experiment:
    return Experiment(client, name="exp")


@pytest.fixture
def run(exp: Experiment) -> Run:
    return exp.get_run()


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
