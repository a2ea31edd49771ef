"""Turning Python values into what the database stores (sqltrack._base.values); no database."""

from __future__ import annotations

import enum
import math
from datetime import date, datetime, timedelta, timezone
from pathlib import PurePosixPath
from typing import Any

import pytest

from sqltrack import InvalidValue
from sqltrack._base.values import check_text, json_dumps, json_value, timestamp


class Color(enum.Enum):
    RED = "red"


@pytest.mark.parametrize(
    "value, stored",
    [
        ({"a": (1, 2)}, '{"a": [1, 2]}'),
        ({"s": {3, 1}}, '{"s": [1, 3]}'),
        ({"p": PurePosixPath("/data/x")}, '{"p": "/data/x"}'),
        ({"c": Color.RED}, '{"c": "red"}'),
        ({"d": date(2025, 1, 2)}, '{"d": "2025-01-02"}'),
        ({"ü": "ö"}, '{"ü": "ö"}'),
    ],
)
def test_json_conversions(value: Any, stored: str) -> None:
    assert json_dumps(value, "x") == stored
    assert json_value(stored) == json_value(json_dumps(value, "x"))


@pytest.mark.parametrize(
    "value, message",
    [
        ({"lr": math.nan}, r"x\['lr'\]: nan cannot be stored in JSON"),
        ({"a": [1, math.inf]}, r"x\['a'\]\[1\]: inf cannot"),
        ({1: "a"}, "keys must be str, not int"),
        ({"a": object()}, "values of type object cannot be stored as JSON"),
        ({"a": "nul\x00"}, "NUL characters"),
    ],
)
def test_json_refuses_what_does_not_round_trip(value: Any, message: str) -> None:
    with pytest.raises(InvalidValue, match=message):
        json_dumps(value, "x")


def test_check_text() -> None:
    assert check_text("fine", "w") == "fine"
    with pytest.raises(InvalidValue, match="w: text is not valid Unicode"):
        check_text("\ud800", "w")


def test_timestamp() -> None:
    aware = datetime(2025, 1, 2, tzinfo=timezone(timedelta(hours=2)))
    assert timestamp(aware, "t") is aware
    assert timestamp(None, "t") is None
    now = timestamp("auto", "t")
    assert now is not None and now.tzinfo is timezone.utc
    with pytest.raises(InvalidValue, match="t: datetime must be timezone-aware"):
        timestamp(datetime(2025, 1, 2), "t")
    with pytest.raises(InvalidValue, match="t: expected 'auto'"):
        timestamp("now", "t")  # type: ignore[arg-type]
