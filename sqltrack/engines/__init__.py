"""The database engines, by the name of the ``engine`` configuration key.

``base`` says what every engine offers; ``postgres`` and ``sqlite`` override what differs.
An engine's module is imported when the first client of that engine is created, so
``import sqltrack`` does not import psycopg.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from .base import Engine, first_line, quote_identifier

__all__ = [
    "DEFAULT_ENGINE",
    "ENGINE_NAMES",
    "LOCAL_ENGINE",
    "Engine",
    "first_line",
    "get_engine",
    "quote_identifier",
]

#: the engine used when the configuration names none
DEFAULT_ENGINE = "postgres"
#: the engine of sqltrack's own local files (the offline spool)
LOCAL_ENGINE = "sqlite"
#: the valid values of the ``engine`` configuration key (each a module of this package)
ENGINE_NAMES = ("postgres", "sqlite")


def get_engine(params: Mapping[str, Any]) -> Engine:
    """Return the engine for ``params['engine']`` (default :data:`DEFAULT_ENGINE`).

    :raises ConfigError: the engine name is unknown, or a parameter is invalid.
    """
    name = str(params.get("engine", DEFAULT_ENGINE)).lower()
    if name not in ENGINE_NAMES:
        raise ConfigError(f"unknown engine {name!r}; choose one of: {', '.join(ENGINE_NAMES)}")
    module = importlib.import_module(f"{__name__}.{name}")
    engine: Engine = module.ENGINE({**params, "engine": name})
    return engine
