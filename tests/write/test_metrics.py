"""Metrics with columns on demand, on both engines; metric name rules."""

from __future__ import annotations

import math
import warnings
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest
from conftest import metric_columns, metric_count, q

import sqltrack as st
from sqltrack import Client, InvalidValue, Run, SQLTrackWarning

COLUMN_TYPES = {
    "postgres": {
        "b": "boolean",
        "i": "double precision",  # a new numeric name takes ints and floats
        "f": "double precision",
        "s": "text",
        "t": "timestamp with time zone",
    },
    "sqlite": {"b": "BOOLEAN", "i": "REAL", "f": "REAL", "s": "TEXT", "t": "TIMESTAMP"},
}


def test_column_type_follows_the_value(client: Client, run: Run, engine: str) -> None:
    when = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    run.add_metrics({"b": True, "i": 3, "f": 0.25, "s": "text", "t": when}, step=1)
    columns = metric_columns(client)
    assert {k: columns[k] for k in "bifst"} == COLUMN_TYPES[engine]
    b, i, f, s, t = q(client, "SELECT b, i, f, s, t FROM metrics")[0]
    assert (bool(b), i, f, s) == (True, 3, 0.25, "text")
    assert (datetime.fromisoformat(t) if isinstance(t, str) else t) == when


def test_numpy_scalars(client: Client, run: Run) -> None:
    run.add_metrics(
        {"f32": np.float32(0.5), "i64": np.int64(7), "b": np.bool_(True), "arr": np.array([1.5])},
        step=1,
    )
    assert q(client, "SELECT f32, i64, arr FROM metrics") == [(0.5, 7, 1.5)]
    columns = metric_columns(client)
    assert columns["f32"].lower() in ("double precision", "real")
    with pytest.raises(InvalidValue, match=r"metric 'v': ndarray.item\(\) failed"):
        run.add_metrics({"v": np.array([1.0, 2.0])}, step=2)


def test_same_step_merges_into_one_row(client: Client, run: Run) -> None:
    run.add_metrics({"train_loss": 0.5}, step=10)
    run.add_metrics({"val_loss": 0.7}, step=10)
    run.add_metrics({"train_loss": 0.4}, step=10)  # replaces the value
    run.add_metrics({"train_loss": 0.3}, step=10, progress=0.5)  # another row
    rows = q(client, "SELECT step, progress, train_loss, val_loss FROM metrics ORDER BY progress")
    assert rows == [(10, 0.0, 0.4, 0.7), (10, 0.5, 0.3, None)]


def test_module_function(client: Client, run: Run) -> None:
    st.run_add_metrics(client, run.id, {"acc": 0.9}, step=3, progress=1.5)
    assert q(client, "SELECT run_id, step, progress, acc FROM metrics") == [(run.id, 3, 1.5, 0.9)]
    assert q(client, "SELECT time_updated FROM runs") == [(None,)]  # only Run.add_metrics sets it
    st.run_add_metrics(client, run.id, {})  # nothing to do
    assert metric_count(client) == 1


def test_run_add_metrics_sets_time_updated(client: Client, run: Run) -> None:
    run.add_metrics({"acc": 0.9})
    assert q(client, "SELECT time_updated FROM runs")[0][0] is not None
    fixed = datetime(2020, 1, 1, tzinfo=timezone.utc)
    run.add_metrics({"acc": 0.8}, step=1, updated=fixed)
    value = q(client, "SELECT time_updated FROM runs")[0][0]
    assert (datetime.fromisoformat(value) if isinstance(value, str) else value) == fixed


def test_values_that_do_not_fit_their_column_are_kept_as_logged(client: Client, run: Run) -> None:
    run.add_metrics({"f": 1.5, "s": "x", "b": False}, step=0)
    run.add_metrics({"f": 2}, step=1)  # int into a float column is fine
    assert q(client, "SELECT f FROM metrics WHERE step = 1") == [(2.0,)]
    for step, bad in enumerate(({"f": "x"}, {"s": 3}, {"b": 1}, {"b": 0.5}), start=5):
        run.add_metrics({"ok_new": 1, **bad}, step=step)  # (the narrow storage takes them)
    _, rows = st.read_metrics(client, run.id, ["f", "s", "b"])
    assert [r[1:] for r in rows] == [
        (0, 0.0, 1.5, "x", False),
        (1, 0.0, 2.0, None, None),
        (5, 0.0, "x", None, None),
        (6, 0.0, None, 3, None),
        (7, 0.0, None, None, 1),
        (8, 0.0, None, None, 0.5),
    ]
    assert metric_count(client) == 6 and "ok_new" in metric_columns(client)
    run.add_metrics({"f": None}, step=1)  # NULL into an existing column
    assert q(client, "SELECT f FROM metrics WHERE step = 1") == [(None,)]


def test_none_for_a_name_never_seen_stores_nothing(client: Client, run: Run) -> None:
    columns_before = metric_columns(client)
    run.add_metrics({"new": None}, step=1)
    assert metric_columns(client) == columns_before and metric_count(client) == 0
    assert q(client, "SELECT count(*) FROM metric_points") == [(0,)]


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"x": [1, 2]}, "values of type list cannot be stored"),
        ({"x": {"a": 1}}, "values of type dict cannot be stored"),
        ({"x": b"bytes"}, "values of type bytes cannot be stored"),
        ({"x": "a\x00b"}, "NUL"),
        ({"x": 2**70}, "does not fit in 64 bits"),
        ({"x": datetime(2024, 1, 1)}, "timezone-aware"),
    ],
)
def test_unsupported_values(client: Client, run: Run, bad: dict[str, Any], match: str) -> None:
    columns_before = metric_columns(client)
    with pytest.raises(InvalidValue, match=match):
        run.add_metrics(bad, step=1)
    assert metric_columns(client) == columns_before and metric_count(client) == 0


@pytest.mark.parametrize(
    "step, progress", [(1.5, 0.0), ("1", 0.0), (True, 0.0), (0, "x"), (0, float("nan"))]
)
def test_invalid_step_or_progress(run: Run, step: Any, progress: Any) -> None:
    with pytest.raises(InvalidValue, match="step|progress"):
        run.add_metrics({"x": 1}, step=step, progress=progress)


def test_nan_and_infinity(client: Client, run: Run, engine: str) -> None:
    run.add_metrics({"loss": 1.0}, step=0)
    run.add_metrics({"loss": float("inf")}, step=1)
    run.add_metrics({"loss": float("-inf")}, step=2)
    if engine == "sqlite":
        with pytest.warns(SQLTrackWarning, match="SQLite stores NaN as NULL"):
            run.add_metrics({"loss": float("nan")}, step=3)
    else:
        run.add_metrics({"loss": float("nan")}, step=3)
    values = [r[0] for r in q(client, "SELECT loss FROM metrics ORDER BY step")]
    assert values[:3] == [1.0, math.inf, -math.inf]
    assert values[3] is None if engine == "sqlite" else math.isnan(values[3])


@pytest.mark.parametrize("tracked", [False, True], ids=["plain", "in track()"])
def test_nan_warns_even_where_it_creates_the_column(
    client: Client, run: Run, engine: str, tracked: bool
) -> None:
    """On SQLite a NaN is stored as NULL with a warning, also when its column is new;
    the warning names the caller's line, not sqltrack's."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if tracked:
            with run.track():
                run.add_metrics({"fresh": float("nan")}, step=0)
        else:
            run.add_metrics({"fresh": float("nan")}, step=0)
    nan = [w for w in caught if issubclass(w.category, SQLTrackWarning)]
    if engine == "sqlite":
        assert [str(w.message) for w in nan] == ["metric 'fresh': SQLite stores NaN as NULL"]
        assert nan[0].filename == __file__
    else:
        assert nan == []
    value = q(client, "SELECT fresh FROM metrics")[0][0]
    assert value is None if engine == "sqlite" else math.isnan(value)


def test_missing_run(client: Client) -> None:
    with pytest.raises(st.NotFound, match="run 42 does not exist"):
        st.run_add_metrics(client, 42, {"loss": 1.0})


# -- names ---------------------------------------------------------------------------


def test_column_cache_sees_columns_added_elsewhere(
    client: Client, run: Run, db_params: dict[str, Any]
) -> None:
    run.add_metrics({"a": 1.0})
    other = Client(config={}, **db_params)
    Run(other, run_id=run.id).add_metrics({"b": 2}, step=1)  # another client adds a column
    run.add_metrics({"b": 3}, step=2)  # this client's cache does not know b yet
    assert q(client, "SELECT step, b FROM metrics ORDER BY step") == [(0, None), (1, 2), (2, 3)]


def test_failed_transaction_forgets_columns_it_added(client: Client, run: Run) -> None:
    with pytest.raises(RuntimeError), client:
        run.add_metrics({"rolled_back": 1.0}, step=0)
        raise RuntimeError
    assert "rolled_back" not in metric_columns(client)
    run.add_metrics({"rolled_back": 2.0}, step=0)  # the column is created again, not assumed
    assert q(client, "SELECT rolled_back FROM metrics") == [(2.0,)]


def test_metrics_over_time(client: Client, run: Run) -> None:
    start = datetime.now(timezone.utc)
    for step in range(20):
        run.add_metrics(
            {"loss": 1 / (step + 1), "wall_time": start + timedelta(seconds=step)},
            step=step,
            progress=step / 20,
        )
    assert metric_count(client) == 20
    assert q(client, "SELECT max(step), min(loss) FROM metrics") == [(19, 0.05)]
