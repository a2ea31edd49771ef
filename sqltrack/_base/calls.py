"""What one metrics call may hold, checked without a database.

:func:`validate` turns ``add_metrics``' arguments into a :data:`Row`: names checked once
per set of names (:mod:`sqltrack._base.names`), each value unwrapped and given its kind
(``bool``, ``int``, ``float``, ``str``, ``datetime``; see :mod:`sqltrack._write.metrics` for the
column types), step and progress checked. (Fitting the values to the columns that exist
is the write path's: :func:`sqltrack._write.metrics.fit_row`.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any

from ..errors import InvalidValue, warn
from .names import check_metric_name
from .values import check_text

_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1


class _DefaultStep(int):
    """The step of an ``add_metrics`` call that gave none: 0, told apart from an explicit
    ``step=0`` by identity (``step is DEFAULT_STEP``)."""

    def __repr__(self) -> str:
        return "0"


#: the default ``step`` of ``add_metrics`` (0, as the API reference has it)
DEFAULT_STEP: int = _DefaultStep(0)


def _kind(value: Any, name: str) -> tuple[Any, str | None]:
    """Return ``(value, kind)`` with scalars unwrapped; kind None for None."""
    if type(value) is float:  # the common case first
        return value, "float"
    if value is None:
        return None, None
    if isinstance(value, bool):
        return value, "bool"
    if isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            raise InvalidValue(f"metric {name!r}: integer {value} does not fit in 64 bits")
        return value, "int"
    if isinstance(value, float):
        return value, "float"
    if isinstance(value, str):
        return check_text(value, f"metric {name!r}"), "str"
    if isinstance(value, datetime):
        if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
            raise InvalidValue(f"metric {name!r}: datetime must be timezone-aware")
        return value, "datetime"
    item = getattr(value, "item", None)
    if callable(item):
        try:
            scalar = item()
        except Exception as e:  # e.g. an array with more than one element
            raise InvalidValue(
                f"metric {name!r}: {type(value).__name__}.item() failed: {e}"
            ) from None
        if scalar is not value and not hasattr(scalar, "item"):
            return _kind(scalar, name)
    raise InvalidValue(
        f"metric {name!r}: values of type {type(value).__name__} cannot be stored; "
        "use bool, int, float, str, an aware datetime, or a scalar with .item()"
    )


Row = tuple[tuple[str, ...], tuple[Any, ...], tuple["str | None", ...], int, float]
"""A validated call: metric names, values, their kinds, step, progress."""


@lru_cache(maxsize=1024)  # a training loop logs the same names every step
def _checked_names(names: tuple[str, ...]) -> tuple[tuple[type, ...], tuple[str, ...]]:
    """Check the names (once); return the value types and kinds of an all-float call."""
    for name in names:
        check_metric_name(name)
    return (float,) * len(names), ("float",) * len(names)


_NUMBER_KINDS = {float: "float", int: "int"}


@lru_cache(maxsize=1024)
def _number_kinds(types: tuple[type, ...]) -> tuple[tuple[str, ...], tuple[int, ...]] | None:
    """The kinds of a call whose values are exactly floats and ints (a framework's loss
    and its epoch), and where its ints are; None for any other call."""
    if not all(t in _NUMBER_KINDS for t in types):
        return None
    ints = tuple(i for i, t in enumerate(types) if t is int)
    return tuple(_NUMBER_KINDS[t] for t in types), ints


def _step(step: Any) -> int:
    value, kind = _kind(step, "step")
    if kind != "int":
        raise InvalidValue(f"step must be an integer, got {step!r}")
    return value  # type: ignore[no-any-return]


def _progress(progress: Any) -> float:
    value, kind = _kind(progress, "progress")
    if kind not in ("int", "float") or not math.isfinite(value):
        raise InvalidValue(f"progress must be a finite number, got {progress!r}")
    return float(value)


def validate(metrics: Mapping[str, Any], step: int, progress: float) -> Row | None:
    """Check a call's names and values (no database needed); None if there are no metrics."""
    if type(metrics) is not dict and not isinstance(metrics, Mapping):
        raise InvalidValue(f"metrics must be a dict of name -> value, not {type(metrics).__name__}")
    if type(step) is not int or not _INT_MIN <= step <= _INT_MAX:  # (a 64-bit int passes)
        step = 0 if step is DEFAULT_STEP else _step(step)
    if type(progress) is not float or progress - progress != 0.0:  # not a finite float
        progress = _progress(progress)
    names = tuple(metrics)
    if not names:
        return None
    float_types, float_kinds = _checked_names(names)
    values = tuple(metrics.values())
    types = tuple(map(type, values))
    if types == float_types:  # the common case: all floats
        return names, values, float_kinds, step, progress
    numbers = _number_kinds(types)  # the next: floats and ints (bool is not int here)
    if numbers is not None and all(_INT_MIN <= values[i] <= _INT_MAX for i in numbers[1]):
        return names, values, numbers[0], step, progress
    values, kinds = zip(*[_kind(metrics[name], name) for name in names], strict=True)
    return names, values, kinds, step, progress


class UnsteppedCalls:
    """A run's calls of ``add_metrics`` without ``step``: they all log at step 0, so a loop
    that gives none keeps only its last values. :meth:`note` warns, once, when such a
    call replaces a value that one before it logged at the same step and progress."""

    __slots__ = ("_at", "_names", "watching")

    def __init__(self) -> None:
        self._at: tuple[int, float] | None = None
        self._names: set[str] = set()
        #: False once it has warned
        self.watching = True

    def note(self, row: Row, run_id: int) -> None:
        at, names = (row[3], row[4]), set(row[0])
        if at == self._at:
            again = sorted(names & self._names)
            if again:
                self.watching = False
                warn(
                    f"run {run_id}: add_metrics without step= logged {', '.join(again)} "
                    f"again at step {at[0]}, progress {at[1]:g}, replacing the value logged "
                    "there before (a run keeps one row per step and progress); pass step= "
                    "(e.g. the iteration) to keep every value"
                )
                return
            names |= self._names
        self._at, self._names = at, names
