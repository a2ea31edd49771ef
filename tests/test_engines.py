"""The engines: placeholders, scripts, configuration, recognising driver errors."""

from __future__ import annotations

from pathlib import Path

import pytest

import sqltrack as st
from sqltrack import Client, ConfigError, SQLTrackWarning
from sqltrack.engines import get_engine
from sqltrack.engines import sqlite as sqlite_engine
from sqltrack.engines.postgres import PostgresEngine
from sqltrack.engines.sqlite import SQLiteEngine, network_filesystem, split_sqlite_script


@pytest.mark.parametrize(
    "query, expected",
    [
        ("SELECT :a, :b_2", "SELECT %(a)s, %(b_2)s"),
        ("SELECT x::text FROM t WHERE y = :y", "SELECT x::text FROM t WHERE y = %(y)s"),
        ("SELECT ':not' || \":nor\" FROM t", "SELECT ':not' || \":nor\" FROM t"),
        ("SELECT 5 % 2, '100%' -- 50% :c\n", "SELECT 5 %% 2, '100%%' -- 50%% :c\n"),
        ("SELECT 'it''s :x'", "SELECT 'it''s :x'"),
    ],
)
def test_to_pyformat(query: str, expected: str) -> None:
    assert PostgresEngine({}).sql(query) == expected


def test_split_sqlite_script() -> None:
    script = """
    -- a comment; with a semicolon
    CREATE TABLE a (x TEXT DEFAULT ';');
    CREATE TRIGGER t AFTER INSERT ON a BEGIN
        UPDATE a SET x = 'y;z';
    END;
    /* trailing comment */
    """
    statements = list(split_sqlite_script(script))
    assert len(statements) == 2
    assert statements[1].rstrip().endswith("END;")


def test_positional_placeholders() -> None:
    query = "SELECT :a, ':b', x::text, :a FROM t WHERE y LIKE '5%'"
    assert PostgresEngine({}).positional(query) == (
        "SELECT %s, ':b', x::text, %s FROM t WHERE y LIKE '5%%'"
    )
    assert (
        SQLiteEngine({}).positional(query) == "SELECT ?, ':b', x::text, ? FROM t WHERE y LIKE '5%'"
    )


def test_unknown_engine_and_bad_parameters_are_config_errors() -> None:
    with pytest.raises(
        ConfigError, match="unknown engine 'mysql'; choose one of: postgres, sqlite"
    ):
        get_engine({"engine": "mysql"})
    with pytest.raises(ConfigError, match="invalid journal_mode"):
        get_engine({"engine": "sqlite", "journal_mode": "wal; DROP TABLE runs"})
    with pytest.raises(ConfigError, match="invalid schema name"):
        get_engine({"engine": "postgres", "schema": "a; b"})
    with pytest.raises(ConfigError, match="invalid reconnect_timeout"):
        get_engine({"engine": "sqlite", "reconnect_timeout": "soon"})


def test_each_engine_adds_its_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER", "bob")
    assert get_engine({}).name == "postgres"
    pg = get_engine({"engine": "POSTGRES"}).params
    assert (pg["engine"], pg["user"], pg["dbname"]) == ("postgres", "bob", "bob")
    assert get_engine({"engine": "sqlite"}).params["dbpath"] == "sqltrack.db"


def test_driver_errors_are_recognised_by_class(client: Client) -> None:
    """Each engine tells its driver's errors apart; a foreign error is none of them."""
    engine = client.engine
    statements = {
        "foreign key": (
            "INSERT INTO runs (experiment_id, time_created) "
            "VALUES (424242, '2025-01-01 00:00:00+00:00')"
        ),
        "unique": "INSERT INTO experiments (id, name) VALUES (1, 'a'), (2, 'a')",
        "missing table": "SELECT * FROM no_such_table",
    }
    checks = {
        "foreign key": engine.is_foreign_key_violation,
        "unique": engine.is_unique_violation,
        "missing table": engine.is_missing_table,
    }
    for what, statement in statements.items():
        with pytest.raises(engine.driver_errors) as info:
            client.execute(statement)
        assert [w for w, check in checks.items() if check(info.value)] == [what]
        assert not engine.is_connection_lost(info.value)
    other = ValueError("FOREIGN KEY constraint failed; UNIQUE; no such table")
    assert not any(check(other) for check in checks.values())


def test_in_array_selects_the_given_values(client: Client) -> None:
    engine = client.engine
    for name in ("a", "b", "c"):
        st.Experiment(client, name=name)
    query = f"SELECT name FROM experiments WHERE {engine.in_array('id', 'ids')} ORDER BY name"
    ids = [row[0] for row in client.query("SELECT id FROM experiments WHERE name <> 'b'")]
    assert client.query(query, {"ids": engine.adapt_array(ids)}) == [("a",), ("c",)]


MOUNTS = """\
/dev/sda1 / ext4 rw 0 0
nas:/export/home /home nfs4 rw,relatime 0 0
/dev/sdb1 /home/alice/local\\040disk ext4 rw 0 0
mds@tcp:/lustre /scratch lustre rw 0 0
gluster:/vol /data fuse.glusterfs rw 0 0
"""


@pytest.mark.parametrize(
    "folder, fstype",
    [
        ("/home/alice/runs", "nfs4"),
        ("/home/alice/local disk/runs", None),  # a local disk mounted inside the NFS home
        ("/scratch/x", "lustre"),
        ("/data", "fuse.glusterfs"),
        ("/homework", None),  # a prefix of the name, not a folder inside /home
        ("/tmp", None),
    ],
)
def test_network_filesystems_are_recognised(
    tmp_path: Path, folder: str, fstype: str | None
) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text(MOUNTS)
    assert network_filesystem(Path(folder), str(mounts)) == fstype
    assert network_filesystem(Path(folder), str(tmp_path / "none")) is None


def test_wal_on_a_network_filesystem(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The default falls back to a rollback journal with a warning; WAL asked for is refused."""
    monkeypatch.setattr(sqlite_engine, "network_filesystem", lambda folder: "nfs4")
    client = Client({}, engine="sqlite", dbpath=str(tmp_path / "x.db"))
    with pytest.warns(SQLTrackWarning, match="nfs4 network filesystem: using journal_mode=delete"):
        assert client.execute("PRAGMA journal_mode") == [("delete",)]
    with pytest.raises(ConfigError, match="journal_mode=wal is unsafe .* nfs4"):
        Client({}, engine="sqlite", dbpath=str(tmp_path / "y.db"), journal_mode="wal").execute(
            "SELECT 1"
        )
    local = Client({}, engine="sqlite", dbpath=str(tmp_path / "z.db"), journal_mode="delete")
    assert local.execute("PRAGMA journal_mode") == [("delete",)]  # no warning when chosen
    monkeypatch.setattr(sqlite_engine, "network_filesystem", lambda folder: None)
    assert Client({}, engine="sqlite", dbpath=str(tmp_path / "w.db")).execute(
        "PRAGMA journal_mode"
    ) == [("wal",)]
