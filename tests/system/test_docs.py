"""The docs are tests: every Python and SQL snippet of the README and docs/ runs, on both
engines.

Python snippets of one file run in order in one namespace (a later snippet may use what
an earlier one made), with ``st.Client()`` configured for the engine through
``SQLTRACK_URL``. SQL snippets run statement by statement on a database that holds a
small experiment (``resnet-cifar``, runs with ``lr`` args, ``train_loss`` and
``val_loss`` metrics, an evaluation step of ``mmlu_task*_acc`` metrics in the narrow
storage, a ``baseline`` tag): a block marked ```` ```sql ```` runs on both
engines, ```` ```sql postgres ```` and ```` ```sql sqlite ```` on theirs only, and so do
```` ```python ````, ```` ```python postgres ```` and ```` ```python sqlite ```` blocks. The
shared SQL questions of docs/schema.md also run in DuckDB on a SQLite file, with SQLite's
answers.
Snippets run under the suite's ``filterwarnings = error``: a snippet that warns fails.
Shell, text and ini blocks are not run here (CI runs the README's two commands itself).
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, duckdb_problem, duckdb_with_sqlite, same_rows

import sqltrack as st

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
_FENCE = re.compile(r"^```([\w ]*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def section(path: Path, heading: str) -> str:
    """The text of ``path`` under ``heading`` (a whole line, e.g. ``"## Questions in SQL"``),
    up to the next heading of the same or a higher level (outside code blocks, where a
    line may start with ``#`` too), or the end of the file."""
    lines = path.read_text().splitlines(keepends=True)
    start = lines.index(heading + "\n")
    level, fenced = len(heading.split(" ")[0]), False
    for n in range(start + 1, len(lines)):
        fenced ^= lines[n].startswith("```")
        marks = lines[n].split(" ")[0]
        if not fenced and marks and set(marks) == {"#"} and len(marks) <= level:
            return "".join(lines[start:n])
    return "".join(lines[start:])


def _snippets(path: Path, kind: str) -> list[tuple[int, str, str]]:
    """``(line, info, code)`` of the blocks of ``path`` whose info string starts with kind."""
    text = path.read_text()
    found = []
    for match in _FENCE.finditer(text):
        info = match.group(1).strip()
        if info.split(" ")[0] == kind:
            found.append((text.count("\n", 0, match.start()) + 1, info, match.group(2)))
    return found


def _runs_on(info: str, engine: str) -> bool:
    """Whether a block runs on ``engine``: one without an engine after its kind on both,
    one marked with engines (```` ```sql postgres ````, ```` ```python sqlite ````) on those."""
    only = info.split(" ")[1:]
    return not only or engine in only


def test_the_docs_have_snippets() -> None:
    """A guard for the extraction itself: it finds the README's snippets."""
    readme = ROOT / "README.md"
    assert len(_snippets(readme, "python")) >= 5
    assert len(_snippets(readme, "sql")) >= 2


def _url(db_params: dict[str, Any]) -> str:
    if db_params["engine"] == "sqlite":
        return f"sqlite:///{db_params['dbpath']}"
    from urllib.parse import quote, urlencode

    p = db_params
    auth = quote(p["user"]) + (f":{quote(p['password'])}" if p.get("password") else "")
    query = urlencode({k: p[k] for k in ("host", "port") if k in p})
    return f"postgresql://{auth}@/{quote(p['dbname'])}?{query}"


@pytest.mark.parametrize("doc", [p for p in DOCS if _snippets(p, "python")], ids=lambda p: p.name)
def test_python_snippets_run(
    doc: Path, db_params: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    _run_python_snippets(doc, db_params, monkeypatch)


def _run_python_snippets(
    doc: Path, db_params: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run the doc's Python snippets for the engine of ``db_params`` in one namespace;
    fail naming the first that raises or warns (warnings are errors in this suite). A
    snippet that uses DuckDB fails without it under CI and is left out elsewhere."""
    engine = db_params["engine"]
    params = {k: v for k, v in db_params.items() if k != "schema"}
    if "schema" in db_params:  # the test server's schema, for whatever the snippet connects
        params["options"] = f"-c search_path={db_params['schema']}"
        monkeypatch.setenv("PGOPTIONS", params["options"])
    monkeypatch.setenv("SQLTRACK_URL", _url(db_params))
    monkeypatch.setenv("SQLTRACK_EXPERIMENT_NAME", "resnet-cifar")
    monkeypatch.setattr("sys.argv", ["train.py", "--lr", "0.1"])
    st.setup(st.Client())
    namespace: dict[str, Any] = {"__name__": "__doc__"}
    left_out = []
    for line, info, code in _snippets(doc, "python"):
        if not _runs_on(info, engine):
            continue
        if "import duckdb" in code and (problem := duckdb_problem()):
            if os.environ.get("CI"):
                pytest.fail(f"the snippet at {doc.name}:{line} needs DuckDB: {problem}")
            left_out.append(f"{doc.name}:{line} ({problem})")
            continue
        try:
            with warnings.catch_warnings():
                if doc.parent.name == "integrations":  # a framework's warnings are its own
                    warnings.filterwarnings("ignore")
                    warnings.filterwarnings("error", category=st.SQLTrackWarning)
                exec(compile(code, f"{doc.name}:{line}", "exec"), namespace)
        except Exception as e:
            pytest.fail(f"the snippet at {doc.name}:{line} failed: {type(e).__name__}: {e}")
    if left_out:
        pytest.skip(f"the other snippets ran; not run without DuckDB: {'; '.join(left_out)}")


def test_a_snippet_that_warns_fails(
    db_params: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A warning fails the docs test: pandas' read_sql_query on a psycopg connection
    warns (pandas supports SQLAlchemy connectables and sqlite3 connections only), so a
    README snippet that does so fails on PostgreSQL; with sqlite3 it runs."""
    doc = tmp_path / "pandas.md"
    doc.write_text(
        "```python\nimport pandas as pd\nimport sqltrack\n\nclient = sqltrack.Client()\n"
        "with client as conn:\n    runs = pd.read_sql_query('SELECT id FROM runs', conn)\n```\n"
    )
    if db_params["engine"] == "postgres":
        with pytest.raises(
            pytest.fail.Exception, match=r"pandas.md:1 failed: UserWarning.*SQLAlchemy"
        ):
            _run_python_snippets(doc, db_params, monkeypatch)
    else:
        _run_python_snippets(doc, db_params, monkeypatch)


def test_the_docs_name_read_sql_only_with_its_warning() -> None:
    """Where the text of the README or of docs/ names pandas' read_sql functions, it says
    that they warn with a psycopg connection (what works without a warning is in
    docs/schema.md, "Questions in SQL")."""
    for doc in DOCS:
        for paragraph in re.split(r"\n\s*\n", _FENCE.sub("", doc.read_text())):
            if "read_sql" in paragraph:
                assert "warn" in paragraph, (
                    f"{doc.name}: read_sql without its warning: {paragraph!r}"
                )


def _seed(client: st.Client) -> None:
    """What the SQL snippets ask about, so that each question has an answer: an
    experiment of runs with lr, losses and tags; one diverged and was best early; one
    tagged run is RUNNING but silent for two hours (killed without a trace)."""
    from datetime import datetime, timedelta, timezone

    exp = st.Experiment(client, name="resnet-cifar")
    for i, lr in enumerate([0.1, 0.01, 0.001]):
        run = exp.get_run(run_id=12345 + i).set_args({"lr": lr}).add_tags("baseline")
        with run.track():
            for step in range(5):
                loss = 1.0 / (step + 1) + lr
                run.add_metrics({"train_loss": loss, "val_loss": loss + 0.1}, step=step)
            # an evaluation harness's step: too many new names for the wide table
            run.add_metrics({f"mmlu_task{t}_acc": (t % 7) / 7 + lr for t in range(100)}, step=5)
    diverged = exp.get_run().set_args({"lr": 1.0})
    with diverged.track():
        for step, loss in enumerate([0.4, 0.5, 0.9, 3.0]):
            diverged.add_metrics({"train_loss": loss, "val_loss": loss + 0.1}, step=step)
    st.Run(client, run_id=12345).log_artifact(
        "s3://bucket/ckpt", name="resnet-ckpt", kind="checkpoint", step=4
    )
    diverged.use_artifact("resnet-ckpt", 1)
    st.Run(client, run_id=12345).log_sample(4, "a cat on a skateboard", {"clip_score": 0.3})
    st.Run(client, run_id=12345).set_code({"commit": "0" * 40, "dirty": True})
    client.query(
        "INSERT INTO system_metrics (run_id, time, name, value) VALUES (12345, :t, 'rss_bytes', 1)",
        {"t": client.engine.adapt_datetime(datetime.now(timezone.utc))},
    )
    silent = exp.get_run().add_tags("baseline").start(terminated=None)
    silent.set_updated(datetime.now(timezone.utc) - timedelta(hours=2))


def _statements(code: str) -> list[str]:
    lines = [line for line in code.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


@pytest.mark.parametrize("doc", [p for p in DOCS if _snippets(p, "sql")], ids=lambda p: p.name)
def test_sql_snippets_run(doc: Path, client: st.Client) -> None:
    engine = client.engine.name
    _seed(client)
    ran = 0
    for line, info, code in _snippets(doc, "sql"):
        if not _runs_on(info, engine):
            continue
        for statement in _statements(code):
            try:
                rows = client.execute(statement)
            except Exception as e:
                pytest.fail(f"{doc.name}:{line} on {engine}: {statement!r} failed: {e}")
            if statement.upper().startswith("SELECT"):  # each question has an answer
                assert rows, f"{doc.name}:{line} on {engine}: {statement!r} found nothing"
            ran += 1
    assert ran, f"no SQL snippet of {doc.name} runs on {engine}"


def _shared_questions() -> list[str]:
    """The statements of "Questions in SQL" in docs/schema.md that both engines share (the
    blocks marked ```` ```sql ```` without an engine)."""
    questions = section(ROOT / "docs" / "schema.md", "## Questions in SQL")
    blocks = [m.group(2) for m in _FENCE.finditer(questions) if m.group(1).strip() == "sql"]
    return [statement for code in blocks for statement in _statements(code)]


def test_duckdb_answers_the_shared_questions_as_sqlite_does(tmp_path: Path) -> None:
    """Each question of "Questions in SQL" that both engines share runs in DuckDB on the
    SQLite file (attached with DuckDB's sqlite extension) and gives SQLite's answer."""
    duck = duckdb_with_sqlite()
    path = tmp_path / "runs.db"
    client = st.Client(config={}, engine="sqlite", dbpath=str(path))
    st.setup(client)
    _seed(client)
    # best at step 2 of 0..5: in the first half, whatever the division of last_step
    halfway = st.Experiment(client, name="resnet-cifar").get_run().set_args({"lr": 0.05})
    with halfway.track():
        for step, loss in enumerate([0.9, 0.7, 0.2, 0.5, 0.6, 0.8]):
            halfway.add_metrics({"train_loss": loss, "val_loss": loss}, step=step)
    questions = _shared_questions()
    assert len(questions) >= 6, "the shared questions of docs/schema.md are found"
    try:
        duck.execute(f"ATTACH '{path}' AS runs (TYPE sqlite, READ_ONLY)")
        duck.execute("USE runs")
        for statement in questions:
            expected = client.execute(statement)
            assert expected, f"{statement!r} found nothing on SQLite"
            try:
                got = duck.execute(statement).fetchall()
            except Exception as e:
                pytest.fail(f"DuckDB cannot run {statement!r}: {type(e).__name__}: {e}")
            ordered = "ORDER BY" in statement.upper()
            # duration: julianday() has millisecond resolution; the SQLite inside DuckDB
            # (3.38) truncates fractions of a millisecond, Python's (3.40 here) rounds them
            assert same_rows(got, expected, ordered, abs_tol=0.0025), (
                f"{statement!r}: DuckDB {got!r}, SQLite {expected!r}"
            )
    finally:
        duck.close()


def test_the_bundled_example_runs(db_params: dict[str, Any], tmp_path: Path) -> None:
    """examples/train.py, the README's first command, on each engine."""
    import subprocess
    import sys

    from conftest import env_for

    env = env_for(db_params)
    done = subprocess.run(
        [sys.executable, "-m", "sqltrack", "setup"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "train.py"), "--lr", "0.05", "--epochs", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert ": COMPLETED, lr 0.05" in done.stdout and "val_loss" in done.stdout
    assert done.stderr == ""  # no warning on the way


@pytest.mark.parametrize("doc", ["README.md", "docs/configuration.md"])
def test_the_setup_transcript_is_what_setup_prints(
    doc: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's tour (in short) and docs/configuration.md (in full) show `sqltrack
    setup` run twice: each command, run here, prints exactly its lines ("…" stands for
    any lines)."""
    from sqltrack.cli import main

    blocks = [code for _, _, code in _snippets(ROOT / doc, "text")]
    (transcript,) = [b for b in blocks if b.startswith("$ sqltrack setup --engine sqlite")]
    monkeypatch.chdir(tmp_path)
    commands = re.split(r"^\$ sqltrack ", transcript, flags=re.MULTILINE)[1:]
    assert len(commands) == 2
    for command in commands:
        argv, _, shown = command.partition("\n")
        assert main(argv.split()) == 0
        printed = capsys.readouterr().out
        pattern = "".join(
            ".*\n" if line == "…" else re.escape(line) + "\n" for line in shown.splitlines()
        )
        assert re.fullmatch(pattern, printed, re.DOTALL), printed
