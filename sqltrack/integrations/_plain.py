"""What an integration is given, made plain: its arguments checked at once, a
framework's values as numbers, its hyperparameters as JSON, its metric names as names
sqltrack takes."""

from __future__ import annotations

import enum
import math
import os
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

from .._base.names import suggest_metric_name
from .._base.values import check_text
from ..errors import InvalidValue

#: a framework's nested hyperparameters are kept as they are, down to this depth
MAX_DEPTH = 20
#: the text of a value that is not JSON (a module, a class) is cut to this length
MAX_TEXT = 1000
_MAX_ID = 2**63 - 1


def experiment_of(experiment: int | str | None) -> tuple[int | None, str | None]:
    """``(id, name)`` of the experiment given, or of ``$SQLTRACK_EXPERIMENT_NAME`` /
    ``$SQLTRACK_EXPERIMENT_ID`` (as :func:`~sqltrack.run_from_env` reads them); raises
    at once when there is none or it is not valid."""
    if experiment is None:
        name = os.environ.get("SQLTRACK_EXPERIMENT_NAME") or None
        text = os.environ.get("SQLTRACK_EXPERIMENT_ID") or None
        if name is None and text is None:
            raise InvalidValue(
                "no experiment: pass experiment= (a name or id) or set SQLTRACK_EXPERIMENT_NAME"
            )
        if text is not None and not text.strip().isdigit():
            raise InvalidValue(f"SQLTRACK_EXPERIMENT_ID is {text!r}, not a positive integer")
        number = None if text is None else _id(int(text), "SQLTRACK_EXPERIMENT_ID")
        return number, None if name is None else _name(name)
    if isinstance(experiment, int) and not isinstance(experiment, bool):
        return _id(experiment, "experiment"), None
    if isinstance(experiment, str):
        return None, _name(experiment)
    raise InvalidValue(f"experiment must be a name or an id, not {experiment!r}")


def _id(number: int, what: str) -> int:
    if not 0 < number <= _MAX_ID:
        raise InvalidValue(f"{what} must be a positive 64-bit integer, not {number}")
    return number


def _name(name: str) -> str:
    if not name.strip():
        raise InvalidValue(f"experiment name must be a non-empty string, not {name!r}")
    return check_text(name, "experiment name")


def run_id_from_env() -> int | None:
    """``$SQLTRACK_RUN_ID``, as :func:`~sqltrack.run_from_env` reads it."""
    text = os.environ.get("SQLTRACK_RUN_ID") or None
    if text is None:
        return None
    if not text.strip().isdigit():
        raise InvalidValue(f"SQLTRACK_RUN_ID is {text!r}, not a positive integer")
    return _id(int(text), "SQLTRACK_RUN_ID")


def flag(value: Any, name: str) -> bool:
    """A True/False argument, or InvalidValue."""
    if not isinstance(value, bool):
        raise InvalidValue(f"{name} must be True or False, not {value!r}")
    return value


def metric_name(name: Any) -> str:
    """The name sqltrack logs a framework's metric under: itself, or where it has
    characters sqltrack refuses (XGBoost's ``ndcg@5``), the name the error would suggest
    (``ndcg_5``)."""
    return suggest_metric_name(str(name))


def scalar(value: Any) -> int | float | bool | None:
    """A number from a framework's value (a Python number, a 0-d tensor or array, a numpy
    scalar), or None when it is not one."""
    if isinstance(value, (bool, int, float)):
        return value
    item = getattr(value, "item", None)
    if callable(item):
        try:
            value = item()
        except Exception:  # more than one element, or a tensor that cannot say
            return None
        if isinstance(value, (bool, int, float)):
            return value
    return None


def jsonable(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON: mappings and sequences kept nested (a set sorted where it can
    be), numbers as they are, text without what no database stores (NUL, lone
    surrogates), tensors and numpy scalars unwrapped, paths and enums by value, a float
    that is not finite as its text, anything else as its ``str`` (cut to
    :data:`MAX_TEXT`)."""
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if depth >= MAX_DEPTH:
        return _str(value)
    if isinstance(value, Mapping):
        return {_text(str(k)): jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        try:
            value = sorted(value)
        except TypeError:  # of kinds that do not compare: in the set's order
            value = list(value)
    if isinstance(value, (list, tuple)):
        return [jsonable(v, depth + 1) for v in value]
    if isinstance(value, enum.Enum):
        return jsonable(value.value, depth + 1)
    if isinstance(value, PurePath):
        return _text(str(value))
    number = scalar(value)
    if number is not None:
        return jsonable(number, depth + 1)
    return _str(value)


def _text(text: str) -> str:
    return text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def _str(value: Any) -> str:
    try:
        text = str(value)
    except Exception:  # a __str__ that raises
        text = f"<{type(value).__name__}>"
    return _text(text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…")
