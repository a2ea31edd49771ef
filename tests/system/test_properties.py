"""Property-based tests: any input either round-trips exactly or raises a sqltrack error,
and after an error the database is unchanged. On both engines."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from typing import Any

import pytest
from conftest import json_column, pg_admin, pg_server_log, q
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as s

import sqltrack as st
from sqltrack import Client, Experiment, InvalidValue, Run, SQLTrackError, sync_spools
from sqltrack._admin.merge import merge_database
from sqltrack._base.names import check_metric_name
from sqltrack._live.spool import Spool

pytestmark = pytest.mark.slow  # many generated cases each

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

SAMPLES = [
    "'",
    '"',
    ";",
    "--",
    "/*",
    "\\",
    "a'); DROP TABLE runs; --",
    "\x00",
    "\ud800",
    "ß",
    "名前",
    "🙂",
    " ",
    "%s",
    "%(x)s",
    ":name",
    "?",
    "$1",
]
short_text = s.one_of(s.text(max_size=20), s.sampled_from(SAMPLES))
# long strings only at the top level: nested in JSON they make inputs too large to shrink
hostile_text = s.one_of(short_text, s.text(min_size=1000, max_size=3000))
scalars = s.one_of(s.none(), s.booleans(), s.integers(), s.floats(), short_text)
json_values = s.recursive(
    scalars,
    lambda inner: s.one_of(
        s.lists(inner, max_size=4), s.dictionaries(short_text, inner, max_size=4)
    ),
    max_leaves=20,
)


def same_json(a: Any, b: Any) -> bool:
    """Equal as JSON: numbers compare by value (jsonb prints 1e300 as 1000…0, an int)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _snapshot(client: Client, run: Run) -> Any:
    rows = q(
        client, "SELECT status, comment, tags, args, env, extras FROM runs WHERE id = ?", run.id
    )
    metrics = q(client, "SELECT * FROM metrics ORDER BY step")
    with client.cursor() as cur:
        columns = sorted(client.engine.metric_columns(cur))
    return rows, metrics, columns


@SETTINGS
@given(extras=json_values)
def test_extras_round_trip_or_refuse(client: Client, extras: Any) -> None:
    run = Experiment(client, name="props").get_run()
    run.set_extras({"before": 1})
    before = _snapshot(client, run)
    try:
        run.set_extras({"value": extras})
    except InvalidValue:
        assert _snapshot(client, run) == before
        return
    assert same_json(json_column(client, "runs", "extras", run.id), {"value": extras})


@SETTINGS
@given(args=s.dictionaries(short_text, json_values, max_size=5))
def test_args_add_round_trip_or_refuse(client: Client, args: dict[str, Any]) -> None:
    run = Experiment(client, name="props").get_run()
    run.set_args({"kept": True})
    before = _snapshot(client, run)
    try:
        run.add_args(args)
    except InvalidValue:
        assert _snapshot(client, run) == before
        return
    assert same_json(json_column(client, "runs", "args", run.id), {"kept": True, **args})


@SETTINGS
@given(tags=s.lists(hostile_text, max_size=5), comment=s.one_of(s.none(), hostile_text))
def test_tags_and_comments(client: Client, tags: list[str], comment: str | None) -> None:
    run = Experiment(client, name="props").get_run().set_tags("old")
    before = _snapshot(client, run)
    try:
        run.add_tags(*tags)
    except InvalidValue:
        assert _snapshot(client, run) == before
    else:
        assert set(json_column(client, "runs", "tags", run.id)) == {"old", *tags}
    try:
        run.set_comment(comment)
    except InvalidValue:
        return
    assert q(client, "SELECT comment FROM runs WHERE id = ?", run.id) == [(comment,)]


@SETTINGS
@given(
    name=s.one_of(hostile_text, s.from_regex(r"[a-z_][a-z0-9_]{0,70}", fullmatch=True)),
    value=s.one_of(
        s.integers(-(2**63), 2**63 - 1), s.floats(allow_nan=False), hostile_text, s.booleans()
    ),
)
def test_metric_names_and_values(client: Client, name: str, value: Any) -> None:
    run = Experiment(client, name="props").get_run()
    run.add_metrics({"base": 1.0}, step=0)
    before = _snapshot(client, run)
    try:
        run.add_metrics({name: value}, step=1)
    except SQLTrackError:
        assert _snapshot(client, run) == before
        return
    check_metric_name(name)  # only valid names get through
    # wherever it went (a column, the narrow storage), it reads back as logged
    (stored,) = [r[3] for r in st.read_metrics(client, run.id, [name])[1] if r[1] == 1]
    if isinstance(value, bool):
        assert bool(stored) is value
    else:
        assert stored == value  # NaN is excluded here; see test_metrics for NaN


def test_deep_json(client: Client) -> None:
    run = Experiment(client, name="deep").get_run()
    deep: Any = "leaf"
    for _ in range(200):
        deep = {"a": [deep]}
    run.set_extras({"deep": deep})
    assert json_column(client, "runs", "extras", run.id) == {"deep": deep}
    deeper: Any = "leaf"
    for _ in range(100_000):
        deeper = [deeper]
    try:
        run.set_extras({"deeper": deeper})
    except InvalidValue as e:
        assert "nested too deeply" in str(e)
    assert json_column(client, "runs", "extras", run.id) == {"deep": deep}
    big = {f"k{i}": "x" * 100 for i in range(20_000)}  # 2 MB
    run.set_extras(big)
    assert json.dumps(json_column(client, "runs", "extras", run.id), sort_keys=True) == json.dumps(
        big, sort_keys=True
    )


# -- names and values from anywhere never become SQL -------------------------------------

#: what an attacker names a metric (in a call, a spool, a merged file); each contains
#: "canary", a word sqltrack's own SQL never has, and none is a valid metric name
CANARY_NAMES = [
    "x || (SELECT count(*) FROM canary)",
    "x + (SELECT max(v) FROM canary)",
    "x); DELETE FROM canary; --",
    'x" = 1; DROP TABLE canary; --',
    ":x || (SELECT v FROM canary)",
    "x, (SELECT v FROM canary)",
    "%(x)s; DELETE FROM canary",
    "?); DELETE FROM canary; --",
    "$1 || (SELECT v FROM canary)",
    "x */ DELETE FROM canary /*",
]
canary_names = s.one_of(
    s.sampled_from(CANARY_NAMES),
    s.builds(lambda a, b: f"{a}(canary){b}", short_text, short_text),
)


class CanaryWatch:
    """Whatever touches the table ``canary`` of the test's database, or a column of a
    merged file named like SQL: on PostgreSQL the server's own counters of the table
    and its statement log (``log_statement=all`` for sqltrack's connections); on
    SQLite an authorizer on every connection sqltrack opens."""

    def __init__(self, client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
        self.client = client
        self.touched: list[Any] = []
        client.execute("CREATE TABLE canary (v INTEGER)")
        client.execute("INSERT INTO canary VALUES (42)")
        if client.engine.name == "sqlite":
            from sqltrack._db.engines.sqlite import SQLiteEngine

            connect = SQLiteEngine.connect
            touched = self.touched

            def watched(engine: Any) -> Any:
                conn = connect(engine)

                def authorizer(action: int, arg1: Any, arg2: Any, db: Any, trigger: Any) -> int:
                    if "canary" in f"{arg1} {arg2}" and trigger is None:
                        touched.append((action, arg1, arg2))
                    return 0  # SQLITE_OK

                conn.set_authorizer(authorizer)
                return conn

            monkeypatch.setattr(SQLiteEngine, "connect", watched)
            self.log, self.offset = None, 0
        else:
            self.log = pg_server_log()
            self.offset = self.log.stat().st_size if self.log else 0
            self.baseline = self._counters()

    def _counters(self) -> tuple[int, ...]:
        with pg_admin() as conn:
            time.sleep(1.2)  # backends report their counters when they end or idle
            conn.execute("SELECT pg_stat_clear_snapshot()")
            schema = self.client.engine.params["schema"]
            row = conn.execute(
                "SELECT seq_scan, COALESCE(idx_scan, 0), n_tup_ins, n_tup_upd, n_tup_del "
                "FROM pg_stat_user_tables WHERE schemaname = %s AND relname = 'canary'",
                (schema,),
            ).fetchone()
            return tuple(row or ())

    def statements(self) -> list[str]:
        """The text of every statement the server logged since the watch began."""
        if self.log is None:
            return []
        with open(self.log, encoding="utf-8", errors="replace") as f:
            f.seek(self.offset)
            text = f.read()
        records = re.split(r"^\d{4}-\d\d-\d\d [\d:.]+ \w+ \[\d+\] ", text, flags=re.M)
        found = []
        for record in records:
            m = re.match(r"(LOG:\s+(statement|execute [^:]*):|STATEMENT:)\s(.*)", record, re.S)
            if m:
                found.append(m[3])
        return found

    def check(self) -> None:
        if self.client.engine.name == "sqlite":
            assert self.touched == [], self.touched
            with sqlite3.connect(self.client.engine.params["dbpath"]) as conn:  # not watched
                assert conn.execute("SELECT v FROM canary").fetchall() == [(42,)]
            conn.close()
            return
        assert self._counters() == self.baseline, "a statement touched the canary table"
        logged = self.statements()
        if self.log is not None:
            assert logged, "the statement log is read (or this check could never fail)"
        offenders = [t for t in logged if "canary" in t and "CREATE TABLE canary" not in t]
        assert offenders == [], offenders


@pytest.fixture
def watched(db_params: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    params = dict(db_params)
    if params["engine"] == "postgres":
        params["options"] = "-c log_statement=all"  # sqltrack's connections only
    client = Client({}, **params)
    st.setup(client)
    return CanaryWatch(client, monkeypatch)


@pytest.mark.parametrize("engine", ["postgres"], indirect=True)
def test_the_canary_watch_sees_a_touch(watched: CanaryWatch) -> None:
    """The watch can fail: a statement that reads the canary is seen (PostgreSQL)."""
    watched.client.execute("SELECT count(*) FROM canary")
    with pytest.raises(AssertionError):
        watched.check()


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_the_canary_watch_sees_a_touch_on_sqlite(watched: CanaryWatch) -> None:
    with watched.client as conn:
        conn.execute("SELECT count(*) FROM canary")
    with pytest.raises(AssertionError):
        watched.check()


def test_no_name_or_value_becomes_sql(
    watched: CanaryWatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Hostile names, values, tags and ids through add_metrics, a spool push and a merge:
    nothing touches the canary, no statement the server ran holds a name that is not a
    valid metric name, and every value arrives as a parameter."""
    client = watched.client

    @settings(max_examples=30, deadline=None, database=None)
    @given(
        name=canary_names,
        value=s.one_of(s.floats(allow_nan=False), s.integers(-(2**63), 2**63 - 1), short_text),
        tag=s.one_of(s.sampled_from(CANARY_NAMES), short_text),
        run_id=s.integers(1, 9_999_999_999),
    )
    def one(name: str, value: Any, tag: str, run_id: int) -> None:
        run = Experiment(client, name="canary-props").get_run(run_id=run_id)
        with pytest.raises(SQLTrackError):
            run.add_metrics({name: 1.0, "ok": value}, step=0)
        try:
            run.add_tags(tag).set_comment(tag)
            run.add_metrics({"ok_" + type(value).__name__: value}, step=1)
        except InvalidValue:
            pass  # (a NUL character, a lone surrogate: refused before any write)
        spool = Spool.create(client, run.id, run.experiment_id)
        spool.close()
        with sqlite3.connect(spool.path) as conn:
            data = json.dumps([[[name, "ok"], [1.0, 2.0], ["float", "float"], 2, 0.0]])
            conn.execute("INSERT INTO spool_entries (kind, data) VALUES ('rows', ?)", (data,))
        conn.close()
        [pushed] = sync_spools(client, [spool.path])
        assert (pushed.outcome, pushed.set_aside) == ("pushed", 1)
        # (SQLite's own column names cannot hold a NUL, nor sqlite3 a lone surrogate)
        if "\x00" not in name and not any("\ud800" <= c <= "\udfff" for c in name):
            path = tmp_path_factory.mktemp("node") / "node.db"
            node = Client({}, engine="sqlite", dbpath=str(path))
            st.setup(node)
            node_run = Experiment(node, name="canary-props").get_run(run_id=run_id)
            node_run.add_metrics({"ok": 3.0}, step=3)
            with sqlite3.connect(path) as conn:
                quoted = '"' + name.replace('"', '""') + '"'
                conn.execute(f"ALTER TABLE metrics ADD COLUMN {quoted} REAL")
                conn.execute(f"UPDATE metrics SET {quoted} = 7")
            conn.close()
            result = merge_database(client, path)
            assert name in result.columns_left_out
        if client.engine.name == "sqlite":
            watched.check()  # cheap here: at each example

    one()
    watched.check()
