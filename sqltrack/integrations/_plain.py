"""What an integration is given, made plain: its arguments checked at once, a
framework's values as numbers, its hyperparameters as JSON, its metric names as names
sqltrack takes."""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

from .._live.handles import ids_from_env
from .._write.experiments import check_name
from .._write.rows import check_id
from ..errors import InvalidValue

#: a framework's nested hyperparameters are kept as they are, down to this depth
MAX_DEPTH = 20
#: the text of a value that is not JSON (a module, a class) is cut to this length
MAX_TEXT = 1000


def experiment_of(experiment: int | str | None) -> tuple[int | None, str | None]:
    """``(id, name)`` of the experiment given, or of ``$SQLTRACK_EXPERIMENT_NAME`` /
    ``$SQLTRACK_EXPERIMENT_ID`` (as :func:`~sqltrack.run_from_env` reads them); raises
    at once when there is none or it is not valid."""
    if experiment is None:
        number, name, _ = ids_from_env()
        if number is None and name is None:
            raise InvalidValue(
                "no experiment: pass experiment= (a name or id) or set SQLTRACK_EXPERIMENT_NAME"
            )
        return number, name
    if isinstance(experiment, int) and not isinstance(experiment, bool):
        return check_id(experiment, "experiment"), None
    if isinstance(experiment, str):
        return None, check_name(experiment)
    raise InvalidValue(f"experiment must be a name or an id, not {experiment!r}")


def flag(value: Any, name: str) -> bool:
    """A True/False argument, or InvalidValue."""
    if not isinstance(value, bool):
        raise InvalidValue(f"{name} must be True or False, not {value!r}")
    return value


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
