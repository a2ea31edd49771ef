"""A run's JSON columns: its arguments, environment and extras.

``args`` and ``env`` are redacted before they are stored, whether detected (``'auto'``)
or given: see :mod:`sqltrack._base.secrets`. ``extras`` are stored as given.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._base.secrets import detect_env, redact_args, redact_env
from .._base.values import Auto, json_dumps
from .._db.client import Client, operation
from ..args import as_dict, detect_args
from ..errors import InvalidValue
from . import rows as _rows

_T = "runs"


def _resolve(column: str, value: Any) -> dict[str, Any] | None:
    """'auto' → detected; dict/Namespace → dict; None → None. Args and env are always
    redacted (see :mod:`sqltrack._base.secrets`)."""
    if isinstance(value, str) and value == "auto":
        if column == "args":
            return redact_args(detect_args())
        if column == "env":
            return detect_env()
        raise InvalidValue("extras cannot be 'auto'; pass a dict")
    if value is None:
        return None
    try:
        data = as_dict(value) if column == "args" else value
    except TypeError as e:
        raise InvalidValue(str(e)) from None
    if not isinstance(data, Mapping):
        allowed = "a dict or None" if column == "extras" else "'auto', a dict or None"
        raise InvalidValue(f"{column} must be {allowed}, got {type(value).__name__}")
    if column == "env":
        return redact_env(data)
    return redact_args(data) if column == "args" else dict(data)


def _set_object(client: Client, run_id: int, column: str, value: Any) -> None:
    data = _resolve(column, value)
    if column == "args" and isinstance(value, str) and not data:
        return  # 'auto' detected nothing: leave args alone
    text = None if data is None else json_dumps(data, f"run {run_id} {column}")
    _rows.set_column(client, _T, column, run_id, text)


def _add_object(client: Client, run_id: int, column: str, value: Any) -> None:
    data = _resolve(column, value)
    if not data:
        return
    new = _rows.check_object(data, f"run {run_id} {column}")
    _rows.change_json(client, _T, column, run_id, lambda cur: {**cur, **new})


def _remove_keys(client: Client, run_id: int, column: str, keys: tuple[Any, ...]) -> None:
    names: set[str] = set()
    for key in keys:
        if isinstance(key, Mapping):
            names.update(str(k) for k in key)
        elif isinstance(key, str):
            names.add(key)
        else:
            raise InvalidValue(f"names to remove from {column} must be str, got {key!r}")
    if names:
        _rows.change_json(
            client, _T, column, run_id, lambda cur: {k: v for k, v in cur.items() if k not in names}
        )


@operation
def run_set_args(
    client: Client, run_id: int, args: Auto | Mapping[str, Any] | Any | None = "auto"
) -> None:
    """Set run arguments. See :func:`sqltrack.args.detect_args` for ``'auto'``.

    Nothing is done if no arguments are detected in auto mode.

    :param args: ``'auto'`` (detect), a dict or ``argparse.Namespace``, or ``None`` (set NULL)
    """
    _set_object(client, run_id, "args", args)


@operation
def run_add_args(
    client: Client, run_id: int, args: Auto | Mapping[str, Any] | Any | None = "auto"
) -> None:
    """Add arguments to an existing run, replacing those of the same name.

    :param args: ``'auto'`` (detect), a dict or ``argparse.Namespace``, or ``None`` (do nothing)
    """
    _add_object(client, run_id, "args", args)


@operation
def run_remove_args(client: Client, run_id: int, *args: str | Mapping[str, Any]) -> None:
    """Remove arguments from an existing run, by name (or the keys of a dict)."""
    _remove_keys(client, run_id, "args", args)


@operation
def run_set_env(client: Client, run_id: int, env: Auto | Mapping[str, Any] | None = "auto") -> None:
    """Set the run environment; secrets are redacted (see :mod:`sqltrack._base.secrets`).

    :param env: ``'auto'`` (``os.environ``), a dict, or ``None`` (set NULL)
    """
    _set_object(client, run_id, "env", env)


@operation
def run_add_env(client: Client, run_id: int, env: Auto | Mapping[str, Any] | None = "auto") -> None:
    """Add environment variables to an existing run; secrets are redacted.

    :param env: ``'auto'`` (``os.environ``), a dict, or ``None`` (do nothing)
    """
    _add_object(client, run_id, "env", env)


@operation
def run_remove_env(client: Client, run_id: int, *env: str | Mapping[str, Any]) -> None:
    """Remove environment variables from an existing run, by name (or the keys of a dict)."""
    _remove_keys(client, run_id, "env", env)


@operation
def run_set_extras(client: Client, run_id: int, extras: Mapping[str, Any] | None = None) -> None:
    """Set run extras (any JSON object of your own).

    :param extras: a dict, or ``None`` (set NULL)
    """
    _set_object(client, run_id, "extras", extras)


@operation
def run_add_extras(client: Client, run_id: int, extras: Mapping[str, Any] | None = None) -> None:
    """Add extras to an existing run, replacing those of the same name.

    :param extras: a dict, or ``None`` (do nothing)
    """
    _add_object(client, run_id, "extras", extras)


@operation
def run_remove_extras(client: Client, run_id: int, *extras: str | Mapping[str, Any]) -> None:
    """Remove extras from an existing run, by name (or the keys of a dict)."""
    _remove_keys(client, run_id, "extras", extras)
