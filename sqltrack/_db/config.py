"""Resolve connection parameters. Pure functions: nothing here connects.

Precedence, highest first:

1. keyword arguments given to :class:`~sqltrack.Client`,
2. environment variables ``SQLTRACK_DSN_<PARAM>`` (e.g. ``SQLTRACK_DSN_USER``),
3. the config: a dict, or a file in dotenv syntax named by the ``config`` argument,
   else by ``$SQLTRACK_CONFIG_PATH``, else ``./sqltrack.conf`` if it exists,
4. the engine's defaults, which the engine adds (see :mod:`sqltrack._db.engines`).

A database URL (``url``: ``postgresql://user:password@host:port/dbname?param=value``,
``postgres://…``, ``sqlite:///relative.db``, ``sqlite:////absolute.db``; also
``SQLTRACK_URL``) names the engine and the database. Parameters given separately at the
same or a higher level override its parts (``SQLTRACK_DSN_PASSWORD`` with a URL in the
config file); a URL replaces what lower levels said about which database to use (engine,
host, port, dbname, user, password, dbpath), not their other options. ``conninfo`` (a
libpq connection string or URI) and a ``dbname`` that holds one are read the same way.

Keys in a config file are parameter names (``dbname=experiments``); the environment
variable spelling (``SQLTRACK_DSN_DBNAME=experiments``) is accepted there too, so one file
can serve both as config file and as a sourced shell env file. Keys are case-insensitive.
Values that are ``None`` or empty strings are dropped at every level.
"""

from __future__ import annotations

import getpass
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError, warn

ENV_PREFIX = "SQLTRACK_DSN_"
CONFIG_PATH_VAR = "SQLTRACK_CONFIG_PATH"
URL_VAR = "SQLTRACK_URL"
DEFAULT_CONFIG_FILE = "sqltrack.conf"


# What a URL says: given at one level, it replaces these from the levels below it.
_NAMES_THE_DATABASE = frozenset(
    {"engine", "url", "conninfo", "host", "hostaddr", "port", "dbname", "user", "password",
     "dbpath"}
)  # fmt: skip


def _normalize(params: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        if value is None or value == "":
            continue
        name = key.strip().lower()
        if name.startswith(ENV_PREFIX.lower()):
            name = name[len(ENV_PREFIX) :]
        out[name] = value
    return out


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a config file in dotenv syntax; a missing file is a :class:`ConfigError`.

    Warns when the file holds a password and can be read by other users.
    """
    from dotenv import dotenv_values

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    values = _normalize(dotenv_values(p))
    if _holds_password(values) and os.name == "posix":
        mode = p.stat().st_mode
        if mode & (stat.S_IRGRP | stat.S_IROTH):
            warn(
                f"config file {p} contains a password and is readable by other users; "
                f"run: chmod 600 {p}"
            )
    return values


def _holds_password(values: Mapping[str, Any]) -> bool:
    """A password, or a URL or conninfo with one in it."""
    if "password" in values:
        return True
    return any(
        re.search(r"://[^/@\s]*:[^@\s]*@|password\s*=", str(values.get(k, "")), re.IGNORECASE)
        for k in ("url", "conninfo", "dbname")
    )


def env_params(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Return the parameters given as ``SQLTRACK_DSN_<PARAM>`` environment variables, and
    ``SQLTRACK_URL`` as ``url``."""
    environ = os.environ if environ is None else environ
    params = {k: v for k, v in environ.items() if k.upper().startswith(ENV_PREFIX)}
    if environ.get(URL_VAR):
        params["url"] = environ[URL_VAR]
    return _normalize(params)


def _config_params(config: Mapping[str, Any] | str | os.PathLike[str] | None) -> dict[str, Any]:
    if isinstance(config, Mapping):
        return _normalize(config)
    if config is not None:
        return read_config_file(config)
    env_path = os.environ.get(CONFIG_PATH_VAR)
    if env_path:
        return read_config_file(env_path)
    if Path(DEFAULT_CONFIG_FILE).is_file():
        return read_config_file(DEFAULT_CONFIG_FILE)
    return {}


def default_user() -> str:
    """The Postgres user name used when none is configured: ``$USER``, else the login name."""
    return os.environ.get("USER") or getpass.getuser()


def load_config(
    config: Mapping[str, Any] | str | os.PathLike[str] | None = None, **kwargs: Any
) -> dict[str, Any]:
    """Merge config < environment < kwargs into one parameter dict.

    The engine named by ``engine`` checks the values and adds its defaults
    (:func:`sqltrack._db.engines.get_engine`).

    :param config: a dict of parameters, or the path of a config file; ``None`` looks
        for ``$SQLTRACK_CONFIG_PATH``, then ``./sqltrack.conf``.
    :param kwargs: parameters that take priority over everything else.
    :return: the parameters as given, names lower-case, empty values dropped.
    :raises ConfigError: a config file named explicitly does not exist.
    """
    merged: dict[str, Any] = {}
    for level in (_config_params(config), env_params(), _normalize(kwargs)):
        if "url" in level or "conninfo" in level:  # names the database anew
            merged = {k: v for k, v in merged.items() if k not in _NAMES_THE_DATABASE}
        merged.update(level)
    return merged
