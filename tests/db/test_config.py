"""Configuration: kwargs > SQLTRACK_DSN_* env > config (dict or file) > defaults."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import sqltrack as st
from sqltrack import Client, ConfigError
from sqltrack._db.config import load_config


def test_defaults_postgres(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER", "alice")
    assert load_config({}) == {}  # the engine adds its defaults
    params = Client({}).engine.params
    assert params["engine"] == "postgres"
    assert (params["user"], params["dbname"]) == ("alice", "alice")


def test_defaults_sqlite() -> None:
    assert load_config({}, engine="sqlite") == {"engine": "sqlite"}
    assert Client({}, engine="sqlite").engine.params["dbpath"] == "sqltrack.db"


def test_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    conf = tmp_path / "my.conf"
    conf.write_text("host=filehost\nport=1111\ndbname=filedb\nuser=fileuser\n")
    monkeypatch.setenv("SQLTRACK_DSN_PORT", "2222")
    monkeypatch.setenv("SQLTRACK_DSN_DBNAME", "envdb")
    params = load_config(conf, dbname="kwdb")
    assert params["host"] == "filehost"  # only in the file
    assert params["port"] == "2222"  # env beats file
    assert params["dbname"] == "kwdb"  # kwargs beat env
    assert params["user"] == "fileuser"  # file beats the $USER default


def test_default_file_and_config_path_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    Path("sqltrack.conf").write_text("engine=sqlite\ndbpath=from_cwd.db\n")
    assert load_config()["dbpath"] == "from_cwd.db"
    other = tmp_path / "other.conf"
    other.write_text("engine=sqlite\ndbpath=from_var.db\n")
    monkeypatch.setenv("SQLTRACK_CONFIG_PATH", str(other))
    assert load_config()["dbpath"] == "from_var.db"  # the variable beats ./sqltrack.conf
    assert "dbpath" not in load_config({"engine": "sqlite"})  # a dict beats both


def test_file_accepts_env_spelling_and_dotenv_syntax(tmp_path: Path) -> None:
    conf = tmp_path / "c.conf"
    conf.write_text(
        "# a comment\nexport SQLTRACK_DSN_HOST=db.example.org\nDBNAME='quoted name'\n"
        'options="-c statement_timeout=5000"\n'
    )
    params = load_config(conf)
    assert params["host"] == "db.example.org"
    assert params["dbname"] == "quoted name"
    assert params["options"] == "-c statement_timeout=5000"


def test_empty_values_are_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SQLTRACK_DSN_HOST", "")
    assert "host" not in load_config({"port": None})


@pytest.mark.parametrize("how", ["argument", "variable"])
def test_missing_named_config_file_is_an_error(how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if how == "variable":
        monkeypatch.setenv("SQLTRACK_CONFIG_PATH", "/nonexistent/sqltrack.conf")
        config: Any = None
    else:
        config = "/nonexistent/sqltrack.conf"
    with pytest.raises(ConfigError, match="config file not found: /nonexistent/sqltrack.conf"):
        Client(config)


def test_unknown_engine() -> None:
    with pytest.raises(ConfigError, match="unknown engine 'mysql'"):
        Client({}, engine="mysql")
    with pytest.raises(ValueError):  # ConfigError is a ValueError too
        Client({}, engine="oracle")


def test_invalid_schema_name() -> None:
    with pytest.raises(ConfigError, match="invalid schema name"):
        Client({}, schema='x"; DROP TABLE runs; --')


def test_password_not_in_repr_and_readable_file_warns(tmp_path: Path) -> None:
    conf = tmp_path / "secret.conf"
    conf.write_text("password=hunter2\nhost=h\n")
    os.chmod(conf, 0o644)
    with pytest.warns(UserWarning, match="readable by other users") as record:
        client = Client(conf)
    assert record[0].filename == __file__  # the caller's line, not sqltrack's
    assert "hunter2" not in repr(client)
    assert "hunter2" not in client.engine.describe()
    os.chmod(conf, 0o600)
    Client(conf)  # no warning: filterwarnings=error would fail the test


def test_client_connects_with_config_from_file(db_params: dict[str, Any]) -> None:
    """The same parameters work from a config file and from environment variables."""
    Path("sqltrack.conf").write_text("".join(f"{k}={v}\n" for k, v in db_params.items()))
    os.chmod("sqltrack.conf", 0o600)
    assert Client().execute("SELECT 1") == [(1,)]


def test_client_connects_with_config_from_env(
    db_params: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in db_params.items():
        monkeypatch.setenv(f"SQLTRACK_DSN_{key.upper()}", str(value))
    assert Client().execute("SELECT 2") == [(2,)]


@pytest.mark.parametrize(
    ("params", "env", "message"),
    [
        ({"engine": "sqlite"}, {"SQLTRACK_DSN_DB_PATH": "t.db"}, "did you mean 'dbpath'"),
        ({"engine": "sqlite", "host": "x"}, {}, "'host'; SQLite takes busy_timeout, dbpath"),
        ({"engine": "sqlite", "journalmode": "wal"}, {}, "did you mean 'journal_mode'"),
        ({"hots": "db.lab"}, {}, "unknown PostgreSQL parameter 'hots'; did you mean 'host'"),
        ({"engine": "postgres", "sslmod": "require"}, {}, "did you mean 'sslmode'"),
        ({"reconect_timeout": "5"}, {}, "did you mean 'reconnect_timeout'"),
    ],
)  # fmt: skip
def test_an_unknown_parameter_is_an_error_with_a_suggestion(
    params: dict[str, str], env: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match=message):
        Client({}, **params)


def test_client_of_takes_exactly_its_parameters(monkeypatch: pytest.MonkeyPatch) -> None:
    """No environment, no config file: how sqltrack opens its own second connections."""
    monkeypatch.setenv("SQLTRACK_DSN_HOST", "from-env")
    Path("sqltrack.conf").write_text("dbname=from-file\n")
    params = Client.of(engine="postgres", user="u").engine.params
    assert "host" not in params and params["dbname"] == "u"
    assert Client.of(engine="sqlite", dbpath="a.db").engine.params["dbpath"] == "a.db"


def test_a_forgotten_configuration_fails_at_once_with_one_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing says where the database is and no server listens on the default socket:
    one line that says how to give one, not ten seconds of retries."""
    import time

    from sqltrack import ConnectionFailed, Experiment

    for name in ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGSERVICE"):
        monkeypatch.delenv(name, raising=False)
    import socket

    for folder in ("/var/run/postgresql", "/tmp"):
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(f"{folder}/.s.PGSQL.5432")
            except OSError:
                continue  # no server there (a stale socket file refuses)
        pytest.skip(f"a PostgreSQL server listens on this machine's default socket in {folder}")
    start = time.monotonic()
    with pytest.raises(ConnectionFailed, match="no database configured") as info:
        Experiment(Client(), name="x")
    assert time.monotonic() - start < 2
    assert "SQLTRACK_URL" in str(info.value) and "\n" not in str(info.value)
    assert "retrying" not in caplog.text


def test_a_dbpath_without_an_engine_means_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Client(dbpath=…)`` or ``SQLTRACK_DSN_DBPATH`` alone named a SQLite file, but the
    default engine made it "no database configured, and no PostgreSQL server"."""
    path = tmp_path / "runs.db"
    assert Client({}, dbpath=str(path)).engine.name == "sqlite"
    monkeypatch.setenv("SQLTRACK_DSN_DBPATH", str(path))
    client = Client({})
    assert client.engine.name == "sqlite"
    st.setup(client)
    assert path.is_file()
    with pytest.raises(ConfigError, match="dbpath .* and host .* are both given: say which"):
        Client({}, host="db.lab")
    assert Client({}, engine="postgres", host="db.lab").engine.name == "postgres"


def test_a_dbpath_may_start_with_a_tilde(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    client = Client({}, engine="sqlite", dbpath="~/runs.db")
    assert client.engine.params["dbpath"] == str(tmp_path / "runs.db")
    st.setup(client)
    assert (tmp_path / "runs.db").is_file() and not Path("~").exists()
