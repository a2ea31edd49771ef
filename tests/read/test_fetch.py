"""Reading back: read_metrics, metrics_dataframe and stale_runs; on both engines."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

import sqltrack as st
from sqltrack import (
    Client,
    Experiment,
    InvalidValue,
    NotFound,
)


def test_read_metrics_and_dataframe(client: Client) -> None:
    exp = Experiment(client, name="read")
    a, b = exp.get_run(), exp.get_run()
    for step in range(3):
        a.add_metrics({"loss": 1.0 / (step + 1), "acc": step}, step=step)
    b.add_metrics({"loss": 9.0, "note": "x"}, step=0, progress=0.5)
    names, rows = st.read_metrics(client, a.id)
    assert names[:3] == ["run_id", "step", "progress"]
    assert set(names[3:]) == {"loss", "acc"}  # not b's "note": a has no value in it
    assert set(st.read_metrics(client, [a.id, b.id])[0][3:]) == {"loss", "acc", "note"}
    assert list(st.metrics_dataframe(client, b.id).columns)[3:] == ["loss", "note"]
    assert [r[1] for r in rows] == [0, 1, 2]
    names, rows = st.read_metrics(client, [b.id, a.id], ["loss"])
    assert names == ["run_id", "step", "progress", "loss"]
    assert rows == [
        (a.id, 0, 0.0, 1.0),
        (a.id, 1, 0.0, 0.5),
        (a.id, 2, 0.0, 1 / 3),
        (b.id, 0, 0.5, 9.0),
    ]
    df = st.metrics_dataframe(client, a.id, ["loss", "acc"])
    assert list(df.columns) == ["run_id", "step", "progress", "loss", "acc"]
    assert df["acc"].tolist() == [0, 1, 2] and len(df) == 3
    with pytest.raises(InvalidValue, match="no such metric: 'nope'"):
        st.read_metrics(client, a.id, ["nope"])
    with pytest.raises(InvalidValue, match="no such metric"):
        st.read_metrics(client, a.id, ['loss"; DROP TABLE runs; --'])
    with pytest.raises(InvalidValue, match="at least one run id"):
        st.read_metrics(client, [])
    with pytest.raises(NotFound, match="run 999 does not exist"):
        st.read_metrics(client, [a.id, 999])
    with pytest.raises(NotFound, match="runs 998, 999 do not exist"):
        st.metrics_dataframe(client, [998, 999])
    empty = exp.get_run()
    assert st.read_metrics(client, empty.id) == (["run_id", "step", "progress"], [])


def test_stale_runs(client: Client) -> None:
    exp = Experiment(client, name="stale")
    now = datetime.now(timezone.utc)
    old, fresh, done = (exp.get_run() for _ in range(3))
    old.start(terminated=None, updated=now - timedelta(hours=2))
    fresh.start(terminated=None)
    done.start(terminated=None).stop(updated=now - timedelta(hours=3))
    other_exp = Experiment(client, name="other")
    elsewhere = other_exp.get_run().start(terminated=None, updated=now - timedelta(hours=5))
    assert st.stale_runs(client, timedelta(hours=1)) == [elsewhere.id, old.id]
    assert st.stale_runs(client, 3600, experiment_id=exp.id) == [old.id]
    assert st.stale_runs(client, 0) == [elsewhere.id, old.id, fresh.id]
    assert st.stale_runs(client, timedelta(hours=6)) == []
    with pytest.raises(InvalidValue):
        st.stale_runs(client, -1)


def test_a_pending_run_that_logged_and_went_silent_is_stale(client: Client) -> None:
    """A run that logs without track() or start() stays PENDING: stale_runs never listed
    it. One that logged something (time_updated set) and went silent is listed now; a run
    that never logged is not (nothing tells it from one that waits to start)."""
    exp = Experiment(client, name="pending")
    now = datetime.now(timezone.utc)
    logged, waiting = exp.get_run(), exp.get_run()
    logged.add_metrics({"loss": 1.0}, step=0, updated=now - timedelta(hours=2))
    assert st.stale_runs(client, 3600) == [logged.id]
    assert waiting.id not in st.stale_runs(client, 0)
