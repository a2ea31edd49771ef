"""Checking a metrics call without a database (sqltrack._base.calls)."""

from __future__ import annotations

import math
import warnings
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pytest

from sqltrack import InvalidMetricName, InvalidValue, SQLTrackWarning
from sqltrack._base.calls import validate
from sqltrack._db.engines.postgres import PostgresEngine
from sqltrack._db.engines.sqlite import SQLiteEngine
from sqltrack._write.metrics import fit_row


def test_validate_gives_names_values_kinds_step_progress() -> None:
    when = datetime(2025, 1, 1, tzinfo=timezone.utc)
    row = validate({"f": 0.5, "i": np.int64(3), "b": True, "s": "x", "t": when, "n": None}, 7, 1)
    assert row == (
        ("f", "i", "b", "s", "t", "n"),
        (0.5, 3, True, "x", when, None),
        ("float", "int", "bool", "str", "datetime", None),
        7,
        1.0,
    )
    assert type(row[1][1]) is int  # unwrapped from NumPy
    assert validate({}, 0, 0.0) is None


@pytest.mark.parametrize(
    "metrics, step, progress, error, message",
    [
        ([("a", 1.0)], 0, 0.0, InvalidValue, "metrics must be a dict"),
        ({"a": 1.0}, 1.5, 0.0, InvalidValue, "step must be an integer"),
        ({"a": 1.0}, 0, math.nan, InvalidValue, "progress must be a finite number"),
        ({"lo;ss": 1.0}, 0, 0.0, InvalidMetricName, "try 'lo_ss'"),
        ({"a": 2**63}, 0, 0.0, InvalidValue, "does not fit in 64 bits"),
        ({"a": [1.0]}, 0, 0.0, InvalidValue, "values of type list cannot be stored"),
        ({"a": np.zeros(2)}, 0, 0.0, InvalidValue, r"ndarray.item\(\) failed"),
        ({"a": datetime(2025, 1, 1)}, 0, 0.0, InvalidValue, "must be timezone-aware"),
    ],
)
def test_validate_refuses_bad_input(
    metrics: Any, step: Any, progress: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        validate(metrics, step, progress)


def test_fit_row_converts_or_refuses() -> None:
    row = validate({"f": 3, "new": 1.0}, 0, 0.0)
    assert row is not None
    assert fit_row(PostgresEngine({}), {"f": "float"}, row) == [3.0, 1.0]
    assert type(fit_row(PostgresEngine({}), {"f": "float"}, row)[0]) is float
    with pytest.raises(InvalidValue, match="column is of type str, got a int value 3"):
        fit_row(PostgresEngine({}), {"f": "str"}, row)
    empty = validate({"n": None}, 0, 0.0)
    assert empty is not None
    with pytest.raises(InvalidValue, match="cannot create a column from None"):
        fit_row(PostgresEngine({}), {}, empty)


def test_fit_row_warns_where_nan_is_not_kept() -> None:
    row = validate({"f": math.nan}, 0, 0.0)
    assert row is not None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit_row(PostgresEngine({}), {"f": "float"}, row)  # kept: no warning
    with pytest.warns(SQLTrackWarning, match="metric 'f': SQLite stores NaN as NULL"):
        fit_row(SQLiteEngine({}), {"f": "float"}, row)


def test_a_step_past_64_bits_is_refused_at_once() -> None:
    """A Python int step takes the fast path; it is still checked for its range (it
    used to reach the database, and fail in the background writer)."""
    with pytest.raises(InvalidValue, match="does not fit in 64 bits"):
        validate({"loss": 1.0}, 2**70, 0.0)
    assert validate({"loss": 1.0}, 2**63 - 1, 0.0) is not None
