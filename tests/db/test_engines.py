"""The engines: placeholders, scripts, configuration, recognising driver errors."""

from __future__ import annotations

from pathlib import Path

import pytest

import sqltrack as st
from sqltrack import Client, ConfigError, SQLTrackWarning
from sqltrack._db.engines import get_engine
from sqltrack._db.engines import sqlite as sqlite_engine
from sqltrack._db.engines.postgres import PostgresEngine
from sqltrack._db.engines.sqlite import SQLiteEngine, network_filesystem, split_sqlite_script


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
    for name in ("x.db", "y.db", "z.db", "w.db"):
        (tmp_path / name).touch()  # (only setup creates a database)
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


# -- transient or permanent: one table per engine, a test per row -----------------------

#: (SQLSTATE, what it is, what sqltrack does): every row of SQLSTATE_KINDS and samples of
#: the classes that are permanent
POSTGRES_ERRORS = [
    ("08006", "connection_failure", "lost"),
    ("08P01", "protocol_violation (PgBouncer's own errors)", "lost"),
    ("08001", "sqlclient_unable_to_establish_sqlconnection", "lost"),
    ("57P01", "admin_shutdown", "lost"),
    ("57P02", "crash_shutdown", "lost"),
    ("57P03", "cannot_connect_now", "lost"),
    ("57P05", "idle_session_timeout", "lost"),
    ("25006", "read_only_sql_transaction (a failover)", "lost"),
    ("53300", "too_many_connections", "busy"),
    ("53100", "disk_full", "transient"),
    ("53200", "out_of_memory", "transient"),
    ("53400", "configuration_limit_exceeded", "transient"),
    ("40001", "serialization_failure", "transient"),
    ("40P01", "deadlock_detected", "transient"),
    ("55P03", "lock_not_available", "transient"),
    ("42P05", "duplicate_prepared_statement (a transaction pooler)", "pooler"),
    ("26000", "invalid_sql_statement_name (a transaction pooler)", "pooler"),
    ("22003", "numeric_value_out_of_range", "permanent"),
    ("22P02", "invalid_text_representation", "permanent"),
    ("22021", "character_not_in_repertoire", "permanent"),
    ("23505", "unique_violation", "permanent"),
    ("23503", "foreign_key_violation", "permanent"),
    ("42501", "insufficient_privilege (permission denied, must be owner)", "permanent"),
    ("42601", "syntax_error", "permanent"),
    ("42P01", "undefined_table", "permanent"),
    ("42703", "undefined_column", "permanent"),
    ("54000", "program_limit_exceeded (row is too big)", "permanent"),
    ("54011", "too_many_columns", "permanent"),
    ("0A000", "feature_not_supported", "permanent"),
    ("57014", "query_canceled", "permanent"),
    ("57P04", "database_dropped", "permanent"),
    ("P0001", "raise_exception", "permanent"),
    ("XX000", "internal_error", "permanent"),
]


@pytest.mark.parametrize(
    "sqlstate, what, kind", POSTGRES_ERRORS, ids=[r[0] for r in POSTGRES_ERRORS]
)
def test_postgres_errors_by_sqlstate(sqlstate: str, what: str, kind: str) -> None:
    from psycopg import errors

    error = errors.lookup(sqlstate)(what)
    assert error.sqlstate == sqlstate
    assert PostgresEngine({}).classify(error) == kind


def test_every_postgres_row_is_tested() -> None:
    from sqltrack._db.engines.postgres_codes import SQLSTATE_KINDS

    tested = {state: kind for state, _, kind in POSTGRES_ERRORS}
    for state, kind in SQLSTATE_KINDS.items():
        if len(state) == 5:
            assert tested[state] == kind, state
        else:  # a class: at least one code of it is in the table
            assert any(s.startswith(state) and k == kind for s, k in tested.items()), state


def test_postgres_errors_without_sqlstate() -> None:
    import psycopg

    engine = PostgresEngine({})
    assert engine.classify(psycopg.OperationalError("server closed the connection")) == "lost"
    assert engine.classify(psycopg.InternalError("received 2 results from 'COMMIT'")) == "lost"
    nul = psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
    assert engine.classify(nul) == "permanent"
    assert engine.classify(psycopg.ProgrammingError("the query has 2 placeholders")) == "permanent"
    assert engine.classify(ValueError("not a driver error")) is None
    assert engine.classify(st.InvalidValue("sqltrack's own")) is None
    for kind, expected in [("permanent", "permanent"), ("busy", "busy"), ("unavailable", "lost")]:
        failed = st.ConnectionFailed("cannot connect")
        failed.kind = kind
        assert engine.classify(failed) == expected


#: (result code, message of Python < 3.11, kind)
SQLITE_ERRORS = [
    (5, "database is locked", "transient"),  # SQLITE_BUSY
    (517, "database is locked", "transient"),  # SQLITE_BUSY_SNAPSHOT (extended)
    (6, "database table is locked", "transient"),  # SQLITE_LOCKED
    (7, "out of memory", "transient"),  # SQLITE_NOMEM
    (10, "disk I/O error", "transient"),  # SQLITE_IOERR
    (266, "disk I/O error", "transient"),  # SQLITE_IOERR_READ (extended)
    (13, "database or disk is full", "transient"),  # SQLITE_FULL
    (15, "locking protocol", "transient"),  # SQLITE_PROTOCOL
    (1, "too many columns on metrics", "permanent"),  # SQLITE_ERROR
    (1, "no such table: runs", "permanent"),
    (8, "attempt to write a readonly database", "permanent"),  # SQLITE_READONLY
    (11, "database disk image is malformed", "permanent"),  # SQLITE_CORRUPT
    (14, "unable to open database file", "permanent"),  # SQLITE_CANTOPEN
    (18, "string or blob too big", "permanent"),  # SQLITE_TOOBIG
    (19, "UNIQUE constraint failed: experiments.name", "permanent"),  # SQLITE_CONSTRAINT
    (20, "datatype mismatch", "permanent"),  # SQLITE_MISMATCH
]


@pytest.mark.parametrize(
    "code, message, kind", SQLITE_ERRORS, ids=[f"{r[0]}" for r in SQLITE_ERRORS]
)
def test_sqlite_errors_by_result_code(code: int, message: str, kind: str) -> None:
    import sqlite3

    engine = SQLiteEngine({})
    error = sqlite3.OperationalError(message)
    assert engine.classify(error) == kind  # by its message (Python 3.10)
    error.sqlite_errorcode = code  # type: ignore[attr-defined]
    assert engine.classify(error) == kind  # by its code (Python >= 3.11)


def test_real_errors_are_classified(client: Client) -> None:
    """Errors the server itself raises, on both engines: a lock held by another
    connection is transient; a value out of range, a missing table, a syntax error
    are permanent."""
    engine = client.engine
    permanent = [
        "SELECT * FROM no_such_table",
        "SELEC 1",
        "INSERT INTO experiments (id, name) VALUES (1, 'a'), (2, 'a')",
    ]
    if engine.name == "postgres":
        permanent.append("SELECT CAST(99999999999 AS INTEGER)")
    for statement in permanent:
        with pytest.raises(engine.driver_errors) as info:
            client.execute(statement)
        assert engine.classify(info.value) == "permanent", statement
    holder = Client.of(**engine.params)
    with holder:
        holder.execute("UPDATE experiments SET name = name")  # holds a write lock
        waiter = Client.of(**{**engine.params, "busy_timeout": 0})
        with pytest.raises(engine.driver_errors) as info, waiter.cursor() as cur:
            if engine.name == "postgres":
                cur.execute("SET lock_timeout = '50ms'")
                cur.execute("LOCK TABLE experiments IN EXCLUSIVE MODE")
            else:
                cur.connection.execute("PRAGMA busy_timeout = 50")
                cur.execute("BEGIN IMMEDIATE")
        assert engine.classify(info.value) == "transient"


def test_a_new_sqlite_database_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    """It holds run data (args, env): 0600 when sqltrack creates it, journal and WAL
    files alike; a file the user made keeps the mode they gave it."""
    new = tmp_path / "new.db"
    st.setup(Client({}, engine="sqlite", dbpath=str(new)))
    assert new.stat().st_mode & 0o777 == 0o600
    shared = tmp_path / "shared.db"
    shared.touch(mode=0o640)
    shared.chmod(0o640)
    st.setup(Client({}, engine="sqlite", dbpath=str(shared)))
    assert shared.stat().st_mode & 0o777 == 0o640


def test_a_read_never_creates_a_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A read command run from another directory with a relative dbpath created an empty
    file there and then advised `sqltrack setup` (which would set up the wrong file)."""
    from sqltrack.cli import main

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    for command in (["runs"], ["stale"], ["show", "1"], ["summarize", "exp"]):
        assert main([*command, "--engine", "sqlite", "--dbpath", "runs.db"]) == 1
        err = capsys.readouterr().err
        assert f"there is no SQLite database at {elsewhere / 'runs.db'}" in err, err
        assert len(err.splitlines()) == 1
    assert list(elsewhere.iterdir()) == []
    missing = tmp_path / "no" / "such" / "runs.db"
    assert main(["setup", "--engine", "sqlite", "--dbpath", str(missing)]) == 1
    err = capsys.readouterr().err
    assert f"the directory {missing.parent} does not exist" in err
