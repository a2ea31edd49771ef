"""Database URLs (url=, SQLTRACK_URL, the config key url) and passwords that never show."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from sqltrack import Client, ConfigError, ConnectionFailed, Experiment
from sqltrack._db.engines import redact

SECRET = "S3cretPW!"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            f"postgresql://alice:{SECRET}@/experiments?host=/some/dir",
            {"user": "alice", "password": SECRET, "dbname": "experiments", "host": "/some/dir"},
        ),
        (
            "postgres://bob@db.lab:6432/runs?sslmode=require&application_name=x",
            {"user": "bob", "host": "db.lab", "port": "6432", "dbname": "runs",
             "sslmode": "require", "application_name": "x"},
        ),
        (
            f"postgresql://carol:{quote('p@ss/w:rd', safe='')}@[::1]:5433/d",
            {"user": "carol", "password": "p@ss/w:rd", "host": "::1", "port": "5433"},
        ),
        ("postgresql://h1:5432,h2:5433/d", {"host": "h1,h2", "port": "5432,5433"}),
        ("sqlite:///relative/runs.db", {"engine": "sqlite", "dbpath": "relative/runs.db"}),
        ("sqlite:////abs/runs%20x.db", {"engine": "sqlite", "dbpath": "/abs/runs x.db"}),
    ],
)  # fmt: skip
def test_every_url_form(url: str, expected: dict[str, Any]) -> None:
    params = Client({}, url=url).engine.params
    assert {k: str(params[k]) for k in expected} == expected
    assert "url" not in params and "password" not in repr(Client({}, url=url))


def test_separate_parameters_override_the_url_and_defaults_do_not(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("USER", "root")  # the default user must not beat the URL's
    url = "postgresql://alice@h/experiments"
    params = Client({}, url=url, port=6000, dbname="other").engine.params
    assert (params["user"], params["dbname"], params["port"]) == ("alice", "other", 6000)
    # a password given separately (say, in the environment) completes a URL in a file
    conf = tmp_path / "sqltrack.conf"
    conf.write_text(f"url={url}\nschema=proj\n")
    monkeypatch.setenv("SQLTRACK_DSN_PASSWORD", SECRET)
    params = Client(conf).engine.params
    assert (params["user"], params["password"], params["schema"]) == ("alice", SECRET, "proj")
    # a URL at a higher level names the database anew: the file's host and dbname go
    conf.write_text("host=old\ndbname=old\nschema=proj\n")
    monkeypatch.setenv("SQLTRACK_URL", "postgres://bob@new/newdb")
    params = Client(conf).engine.params
    assert (params["host"], params["dbname"], params["user"]) == ("new", "newdb", "bob")
    assert params["schema"] == "proj"  # its other options stay
    monkeypatch.setenv("SQLTRACK_URL", "sqlite:///lab.db")
    with pytest.raises(ConfigError, match="unknown SQLite parameter 'password'"):
        Client(conf)  # the password, given beside the URL, does not fit it
    monkeypatch.delenv("SQLTRACK_DSN_PASSWORD")
    conf.write_text("host=old\ndbname=old\ntimeout=5\n")  # (SQLite has no schema)
    params = Client(conf).engine.params
    assert (params["dbpath"], params["timeout"], "host" in params) == ("lab.db", "5", False)


def test_conninfo_and_a_dbname_that_holds_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER", "root")
    uri = f"postgresql://alice:{SECRET}@/experiments?host=/some/dir"
    for client in (Client({}, conninfo=uri), Client({}, dbname=uri)):
        p = client.engine.params
        assert (p["user"], p["dbname"], p["host"]) == ("alice", "experiments", "/some/dir")
    p = Client({}, dbname=f"host=h dbname=d password={SECRET}").engine.params
    assert (p["host"], p["dbname"], p["password"]) == ("h", "d", SECRET)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"url": f"mysql://a:{SECRET}@h/d"}, "invalid url"),
        ({"url": f"postgresql://a:{SECRET}@h/d", "engine": "sqlite"}, "is for postgres"),
        ({"url": f"postgresql://a:{SECRET}@h/d?nonsense=1"}, "invalid PostgreSQL url"),
        ({"conninfo": f"host=h password={SECRET} broken"}, "invalid PostgreSQL conninfo"),
        ({"url": "sqlite://runs.db"}, "invalid SQLite url"),
        ({"url": "sqlite:///runs.db?mode=ro"}, "invalid SQLite url"),
    ],
)
def test_a_bad_url_is_one_clear_line_without_the_password(
    params: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        Client({}, **params)
    assert SECRET not in str(info.value) and "\n" not in str(info.value)


def _sources(tmp_path: Path) -> dict[str, Any]:
    """Every way a password can be given, each for an unreachable server."""
    where = "host=127.0.0.1 port=1"
    url = f"postgresql://alice:{quote(SECRET)}@127.0.0.1:1/db"
    conf = tmp_path / "secret.conf"
    conf.write_text(f"host=127.0.0.1\nport=1\npassword={SECRET}\n")
    os.chmod(conf, 0o600)
    return {
        "url": ({}, {"url": url}),
        "SQLTRACK_URL": ({"SQLTRACK_URL": url}, {}),
        "conninfo": ({}, {"conninfo": f"{where} password={SECRET}"}),
        "dbname holding a conninfo": ({}, {"dbname": f"{where} dbname=db password={SECRET}"}),
        "SQLTRACK_DSN_PASSWORD": (
            {"SQLTRACK_DSN_PASSWORD": SECRET},
            {"host": "127.0.0.1", "port": 1},
        ),
        "config file": ({}, {"config": str(conf)}),
    }


@pytest.mark.parametrize(
    "source",
    ["url", "SQLTRACK_URL", "conninfo", "dbname holding a conninfo", "SQLTRACK_DSN_PASSWORD",
     "config file"],
)  # fmt: skip
def test_a_password_never_shows(
    source: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Not in repr or str of the client, not in a log line, not in the error."""
    env, params = _sources(tmp_path)[source]
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    config = params.pop("config", {})
    client = Client(config, **params, connect_timeout=1)
    assert client.engine.params["password"] == SECRET  # it is there, to be used
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ConnectionFailed) as info:
        Experiment(client, name="x")
    shown = [repr(client), str(client), str(info.value), repr(info.value), caplog.text]
    assert "127.0.0.1" in str(info.value)
    assert not [text for text in shown if SECRET in text or quote(SECRET) in text]


def test_redact() -> None:
    r = "<redacted>"
    assert redact(f"postgresql://a:{SECRET}@h/d and x") == f"postgresql://a:{r}@h/d and x"
    assert redact(f"host=h password={SECRET} port=1") == f"host=h password={r} port=1"
    assert redact(f"password = '{SECRET} x' port=1") == f"password = {r} port=1"
    assert redact("postgresql://a@h/d") == "postgresql://a@h/d"
    hook = "https://hooks.example/x?sig=abc&token=t0k&page=2"
    assert redact(hook) == f"https://hooks.example/x?sig={r}&token={r}&page=2"
