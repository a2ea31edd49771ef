"""Detect a script's command-line arguments.

:func:`detect_args` turns ``sys.argv[1:]`` into a dict, the way most training scripts'
options read:

- ``--name value`` and ``--name=value`` → ``{"name": value}``; ``-n value`` likewise;
- dashes inside names become underscores, as argparse does: ``--learning-rate`` → ``learning_rate``;
- an option followed by another option or by nothing is a flag: ``--amp`` → ``{"amp": True}``;
- an option followed by several values collects them: ``--layers 2 4 8`` → ``[2, 4, 8]``;
- an option given twice collects its values in a list, in order;
- values that read as integers (``-3``), finite floats (``0.1``, ``1e-3``) or
  ``true``/``false`` (any case) become those; everything else stays a string, including
  ``nan``, ``1e400``, ``0x10`` and ``007`` (leading zeros are kept: it may be an id);
- a negative number after an option is its value: ``--offset -3`` → ``-3``;
- arguments before the first option and everything after ``--`` go to ``"_positional"``.

Pass an ``argparse.Namespace`` or a dict to store exactly what your parser produced.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["POSITIONAL", "as_dict", "detect_args", "parse_value"]

POSITIONAL = "_positional"
_INT = re.compile(r"[+-]?(0|[1-9][0-9]*)\Z")
_FLOAT = re.compile(r"[+-]?(([0-9]+\.[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+)\Z")
_OPTION = re.compile(r"--?[A-Za-z_][\w.-]*\Z")


def parse_value(text: str) -> Any:
    """``"3"`` → 3, ``"0.1"`` → 0.1, ``"true"`` → True; anything else stays the string."""
    if _INT.match(text):
        return int(text)
    if _FLOAT.match(text):
        value = float(text)
        if math.isfinite(value):
            return value
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def detect_args(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse command-line arguments (default ``sys.argv[1:]``) into a dict; see the module doc."""
    argv = list(sys.argv[1:] if argv is None else argv)
    result: dict[str, Any] = {}
    positional: list[Any] = []
    name: str | None = None
    values: list[Any] = []

    def finish() -> None:
        if name is None:
            return
        value: Any = True if not values else values[0] if len(values) == 1 else list(values)
        if name in result:
            previous = result[name]
            result[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            result[name] = value

    for i, token in enumerate(argv):
        if token == "--":
            positional.extend(parse_value(t) for t in argv[i + 1 :])
            break
        key, sep, inline = token.partition("=")
        if _OPTION.match(key):
            finish()
            name, values = key.lstrip("-").replace("-", "_"), []
            if sep:
                values.append(parse_value(inline))
                finish()
                name = None
        elif name is None:
            positional.append(parse_value(token))
        else:
            values.append(parse_value(token))
    finish()
    if positional:
        result[POSITIONAL] = positional
    return result


def as_dict(args: Any) -> dict[str, Any]:
    """Accept a dict or an ``argparse.Namespace`` (anything with ``vars()``) as arguments."""
    if isinstance(args, Mapping):
        return dict(args)
    if isinstance(args, argparse.Namespace) or hasattr(args, "__dict__"):
        return dict(vars(args))
    raise TypeError(f"args must be 'auto', a dict, an argparse.Namespace or None, not {args!r}")
