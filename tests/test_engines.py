"""The engines: placeholders, scripts, configuration, recognising driver errors."""

from __future__ import annotations

import pytest

from sqltrack.engines.postgres import PostgresEngine
from sqltrack.engines.sqlite import split_sqlite_script


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
