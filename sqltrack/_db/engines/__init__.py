"""The database engines, by the name of the ``engine`` configuration key.

``base`` says what every engine offers; ``postgres`` and ``sqlite`` override what differs.
An engine's module is imported when the first client of that engine is created, so
``import sqltrack`` does not import psycopg.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from ..._base.secrets import redact_text as redact
from ...errors import ConfigError
from .base import Engine

#: the engine used when the configuration names none
DEFAULT_ENGINE = "postgres"
#: the engine of sqltrack's own local files (the offline spool)
LOCAL_ENGINE = "sqlite"
#: the valid values of the ``engine`` configuration key (each a module of this package)
ENGINE_NAMES = ("postgres", "sqlite")
#: the engine of each URL scheme (``url`` parameter, ``SQLTRACK_URL``)
URL_SCHEMES = {"postgresql": "postgres", "postgres": "postgres", "sqlite": "sqlite"}


def get_engine(params: Mapping[str, Any]) -> Engine:
    """Return the engine for ``params['engine']`` (default :data:`DEFAULT_ENGINE`).

    :raises ConfigError: the engine name is unknown, or a parameter is invalid.
    """
    of_url = _engine_of_url(params.get("url"))
    name = str(params.get("engine", _engine_of_params(params) or of_url)).lower()
    if params.get("url") is not None and name != of_url:
        raise ConfigError(
            f"url {redact(str(params['url']))!r} is for {of_url}, but engine={name} was given"
        )
    if name not in ENGINE_NAMES:
        raise ConfigError(f"unknown engine {name!r}; choose one of: {', '.join(ENGINE_NAMES)}")
    module = importlib.import_module(f"{__name__}.{name}")
    engine: Engine = module.ENGINE({**params, "engine": name})
    return engine


# parameters that only PostgreSQL takes and that say where its database is
_POSTGRES_WHERE = ("host", "hostaddr", "port", "dbname", "service", "conninfo")


def _engine_of_params(params: Mapping[str, Any]) -> str | None:
    """The engine that parameters without ``engine`` or ``url`` mean: a ``dbpath`` is a
    SQLite file; with PostgreSQL's host or database as well, nobody can tell."""
    if "engine" in params or "url" in params or "dbpath" not in params:
        return None
    both = [k for k in _POSTGRES_WHERE if k in params]
    if both:
        raise ConfigError(
            f"dbpath (a SQLite file) and {', '.join(both)} (PostgreSQL) are both given: "
            "say which with engine=sqlite or engine=postgres (SQLTRACK_DSN_ENGINE)"
        )
    return "sqlite"


def _engine_of_url(url: Any) -> str:
    """The engine a ``url`` names by its scheme (the default engine without one)."""
    if url is None:
        return DEFAULT_ENGINE
    scheme = str(url).partition(":")[0].lower()
    if "://" not in str(url) or scheme not in URL_SCHEMES:
        raise ConfigError(
            f"invalid url {redact(str(url))!r}: give postgresql://…, postgres://… or sqlite:///path"
        )
    return URL_SCHEMES[scheme]
