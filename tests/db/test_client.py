"""The reentrant Client, on both engines."""

from __future__ import annotations

from typing import Any

import pytest

from sqltrack import Client, ConfigError, ConnectionFailed, SchemaError

P = {"sqlite": "?", "postgres": "%s"}  # the driver's own placeholder


def _count(client: Client) -> int:
    other = Client(config={}, **client.engine.params)  # a second, independent connection
    return int(other.execute("SELECT count(*) FROM t")[0][0])


@pytest.fixture
def table(empty_client: Client) -> Client:
    empty_client.execute("CREATE TABLE t (x INTEGER)")
    return empty_client


def test_execute_returns_rows(table: Client, engine: str) -> None:
    assert table.execute(f"INSERT INTO t (x) VALUES ({P[engine]})", (1,)) == []
    table.executemany(f"INSERT INTO t (x) VALUES ({P[engine]})", [(2,), (3,)])
    assert table.execute("SELECT x FROM t ORDER BY x") == [(1,), (2,), (3,)]
    assert table.execute(f"SELECT x FROM t WHERE x > {P[engine]}", [1]) == [(2,), (3,)]
    assert not table.connected  # each call connected and closed


def test_nested_blocks_share_one_connection_and_commit_once(table: Client, engine: str) -> None:
    with table as conn:
        table.execute(f"INSERT INTO t (x) VALUES ({P[engine]})", (1,))
        with table as inner:
            assert inner is conn
            with table.cursor() as cur:
                assert cur.connection is conn
                cur.execute(f"INSERT INTO t (x) VALUES ({P[engine]})", (2,))
        assert _count(table) == 0  # nothing committed before the outermost block ends
        assert table.connected
    assert not table.connected
    assert _count(table) == 2


def test_outermost_block_rolls_back_on_error(table: Client, engine: str) -> None:
    with pytest.raises(ZeroDivisionError), table:
        table.execute(f"INSERT INTO t (x) VALUES ({P[engine]})", (1,))
        with table:
            table.execute(f"INSERT INTO t (x) VALUES ({P[engine]})", (2,))
        1 / 0  # noqa: B018
    assert not table.connected
    assert _count(table) == 0


def test_commit_and_rollback_inside_a_block(table: Client, engine: str) -> None:
    with table:
        table.execute(f"INSERT INTO t (x) VALUES ({P[engine]})", (1,))
        table.commit()
        table.execute(f"INSERT INTO t (x) VALUES ({P[engine]})", (2,))
        table.rollback()
    assert table.execute("SELECT x FROM t") == [(1,)]


def test_commit_and_rollback_need_a_connection(empty_client: Client) -> None:
    with pytest.raises(RuntimeError, match="not connected"):
        empty_client.commit()
    with pytest.raises(RuntimeError, match="not connected"):
        empty_client.rollback()


def test_executescript_is_one_transaction(table: Client) -> None:
    table.executescript("INSERT INTO t (x) VALUES (1); INSERT INTO t (x) VALUES (2);")
    assert _count(table) == 2
    with pytest.raises(Exception, match="(?i)no_such_table|does not exist|no such table"):
        table.executescript("INSERT INTO t (x) VALUES (3); INSERT INTO no_such_table VALUES (4);")
    assert _count(table) == 2  # the first statement was rolled back too
    assert not table.connected


def test_executescript_inside_a_block_does_not_commit(table: Client) -> None:
    with table:
        table.executescript("INSERT INTO t (x) VALUES (1);")
        table.rollback()
    assert _count(table) == 0


def test_unreachable_database_is_a_clear_error(engine: str, tmp_path: Any) -> None:
    if engine == "sqlite":
        client = Client({}, engine="sqlite", dbpath=str(tmp_path / "no" / "such" / "dir.db"))
        expected = f"nor its directory {tmp_path / 'no' / 'such'}"
    else:
        client = Client(
            {},
            host=str(tmp_path),
            port=5999,
            dbname="nodb",
            user="nobody",
            password="s3cret-pw",
            connect_timeout=2,
        )
        expected = f"host={tmp_path} port=5999 dbname=nodb"
    with pytest.raises(ConnectionFailed) as info:
        client.execute("SELECT 1")
    assert expected in str(info.value)
    assert "s3cret-pw" not in str(info.value)
    assert not client.connected


def test_repr_never_shows_the_password(db_params: dict[str, Any]) -> None:
    if db_params["engine"] == "sqlite":  # SQLite takes no password: an error without it
        with pytest.raises(ConfigError, match="unknown SQLite parameter 'password'") as info:
            Client({}, **db_params, password="p4ss-w0rd")
        assert "p4ss-w0rd" not in str(info.value)
        return
    client = Client({}, **db_params, password="p4ss-w0rd")
    assert "p4ss-w0rd" not in repr(client)
    assert client.engine.name in repr(client)


def test_query_takes_named_placeholders_on_either_engine(client: Client) -> None:
    client.query(
        "INSERT INTO experiments (name, time_created) VALUES (:name, :now)",
        {
            "name": "it's 100% :not_a_parameter",
            "now": "2025-01-01 00:00:00+00:00",
        },
    )
    rows = client.query("SELECT name FROM experiments WHERE name LIKE :p", {"p": "it%"})
    assert rows == [("it's 100% :not_a_parameter",)]
    assert client.query("UPDATE experiments SET comment = 'x'") == []  # no rows: []


def test_query_before_setup_is_a_schema_error(empty_client: Client) -> None:
    with pytest.raises(SchemaError, match="run `sqltrack setup` first"):
        empty_client.query("SELECT id FROM runs")


def test_hold_keeps_one_connection_across_blocks(client: Client) -> None:
    assert not client.in_block
    with client.hold():
        with client as first:
            assert client.in_block
        assert client.connected and not client.in_block  # committed, still open
        with client as second:
            assert second is first
    assert not client.connected


def test_discard_drops_the_connection_without_committing(client: Client) -> None:
    with client.hold():
        with client:
            client.query(
                "INSERT INTO experiments (name, time_created) VALUES ('gone', :now)",
                {"now": "2025-01-01 00:00:00+00:00"},
            )
            client.discard()
        assert not client.connected
    assert client.query("SELECT count(*) FROM experiments") == [(0,)]
