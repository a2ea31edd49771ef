"""The sqltrack command line (sqltrack.cli): main() in-process and as a subprocess."""

from __future__ import annotations

import ast
import csv
import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import BUILTIN, ROOT, cli_options, env_for, q

import sqltrack as st
from sqltrack._read.compare import SUMMARY_COLUMNS
from sqltrack.cli import CLOSED_PIPE, main


def test_cli_main(
    db_params: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    options = cli_options(db_params)
    sqlite = db_params["engine"] == "sqlite"
    assert main(["setup", *options]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"database: {'SQLite dbpath=' if sqlite else 'PostgreSQL host='}")
    assert out[1:] == [f"applied: {name}" for name in BUILTIN]
    assert main(["setup", *options]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "nothing to do: the schema is up to date"
    bad = tmp_path / "bad.sql"
    bad.write_text("SELEC 1;")
    assert main(["setup", *options, str(bad)]) == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines()[1:] == [f"already applied: {name}" for name in BUILTIN]
    assert captured.err.startswith("sqltrack: error: script bad.sql failed: ")
    assert len(captured.err.strip().splitlines()) == 1


def test_cli_in_a_subprocess(db_params: dict[str, Any], tmp_path: Path) -> None:
    """`python -m sqltrack setup` configured by SQLTRACK_DSN_* variables, as a user runs it."""
    script = tmp_path / "views.sql"
    script.write_text("CREATE VIEW run_count AS SELECT count(*) AS n FROM runs;")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sqltrack", *args],
            env=env_for(db_params),
            capture_output=True,
            text=True,
            timeout=60,
        )

    done = cli("setup", str(script))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1:] == [f"applied: {n}" for n in [*BUILTIN, "views.sql"]]
    done = cli("setup", str(script))
    assert done.stdout.splitlines()[1:-1] == [
        f"already applied: {n}" for n in [*BUILTIN, "views.sql"]
    ]
    broken = tmp_path / "broken.sql"
    broken.write_text("CREATE TABLE broken (;")
    done = cli("setup", str(broken))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("sqltrack: error: script broken.sql failed:")
    done = cli("--help")
    assert done.returncode == 0 and "setup" in done.stdout
    done = cli("setup", "--help")
    assert done.returncode == 0 and "--schema" in done.stdout


def test_cli_reports_unknown_engine_without_traceback() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sqltrack", "setup", "-e", "mysql"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2  # argparse: invalid choice
    assert "Traceback" not in done.stderr


# what a terminal acts on: clear the screen, set the title, forge a line over the one
# above, return to the start, CSI as one C1 byte, DEL, and text reordered by bidi controls
_CONTROLS = "\x1b[2J|\x1b]0;title\x07|\x1b[1A\x1b[2Kforged|\rover|\x9b31m|\x7f|\t|\nline"
_BIDI = "\u202eevil\u202c|\u2066x\u2069|\u2028|\u2029"
_HOSTILE = f"{_CONTROLS}|{_BIDI}|café 漢字 🎉"  # ordinary Unicode stays as it is
_UNSAFE = {*map(chr, range(0x20)), *map(chr, range(0x7F, 0xA0))}
_UNSAFE |= set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_UNSAFE |= {"\u2028", "\u2029"}


def _safe_lines(out: str) -> list[str]:
    """The lines of ``out``, checked to hold no control character but their newlines."""
    assert out.endswith("\n")
    lines = out[:-1].split("\n")
    for line in lines:
        assert not _UNSAFE & set(line), repr(line)
    return lines


@pytest.fixture
def hostile_runs(client: st.Client) -> list[int]:
    """Two runs whose experiment name, tags, args and comment carry terminal controls."""
    exp = st.Experiment(client, name=f"exp {_HOSTILE}")
    ids = []
    for i in range(2):
        run = exp.get_run().add_tags(f"tag {_HOSTILE}", "plain").set_comment(f"c {_HOSTILE}")
        run.set_args({f"arg {_HOSTILE}": f"v{i} {_HOSTILE}", "nested": {_HOSTILE: [_HOSTILE]}})
        with run.track():
            run.add_metrics({"val_loss": 1.0 / (i + 1)}, step=0)
        ids.append(run.id)
    return ids


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_cli_output_shows_control_characters_escaped(
    client: st.Client, hostile_runs: list[int], fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    options = [*cli_options(client), "--format", fmt]
    a, b = hostile_runs
    outputs = {}
    for command in (
        ["runs"],
        ["show", str(a)],
        ["compare", str(a), str(b), "--all"],
        ["summarize", f"exp {_HOSTILE}", "--group-by", f"arg {_HOSTILE}"],
    ):
        assert main([*command, *options]) == 0, command
        outputs[command[0]] = capsys.readouterr().out
    lines = {name: _safe_lines(out) for name, out in outputs.items()}
    visible = _HOSTILE.translate({ord(c): repr(c)[1:-1] for c in _UNSAFE})
    assert visible.startswith("\\x1b[2J|\\x1b]0;title\\x07|\\x1b[1A\\x1b[2Kforged|\\rover|")
    assert visible.endswith("|\\x9b31m|\\x7f|\\t|\\nline|\\u202eevil\\u202c|\\u2066x\\u2069|"
                            "\\u2028|\\u2029|café 漢字 🎉")  # fmt: skip
    if fmt == "json":  # escapes that parse back to the original text
        runs = json.loads(outputs["runs"])
        assert [r["experiment"] for r in runs] == [f"exp {_HOSTILE}"] * 2
        assert runs[0]["tags"] == sorted([f"tag {_HOSTILE}", "plain"])
        fields, _ = json.JSONDecoder().raw_decode(outputs["show"])  # then the metrics
        shown = {r["field"]: r["value"] for r in fields}
        assert shown["comment"] == f"c {_HOSTILE}"
        assert shown[f"args.arg {_HOSTILE}"] == f"v0 {_HOSTILE}"
        assert shown["args.nested"] == {_HOSTILE: [_HOSTILE]}
        compared = {r["field"]: r for r in json.loads(outputs["compare"])}
        assert compared[f"args.arg {_HOSTILE}"][f"run {b}"] == f"v1 {_HOSTILE}"
        groups = json.loads(outputs["summarize"])
        assert {g[f"arg {_HOSTILE}"] for g in groups} == {f"v0 {_HOSTILE}", f"v1 {_HOSTILE}"}
        return
    if fmt == "csv":  # one line per row: the cells hold the visible escapes
        runs = list(csv.reader(lines["runs"]))
        assert len(runs) == 1 + 2
        assert [r[1] for r in runs[1:]] == [f"exp {visible}"] * 2
        assert runs[1][6] == f"plain,tag {visible}"
        end = lines["show"].index(",".join(SUMMARY_COLUMNS))  # then the metrics
        shown = dict(list(csv.reader(lines["show"][:end])))
        assert shown["comment"] == f"c {visible}"
        assert shown[f"args.arg {visible}"] == f"v0 {visible}"
        compared = {r[0]: r[1:] for r in csv.reader(lines["compare"])}
        assert compared[f"args.arg {visible}"] == [f"v0 {visible}", f"v1 {visible}"]
        assert {r[0] for r in list(csv.reader(lines["summarize"]))[1:]} == {
            f"v0 {visible}",
            f"v1 {visible}",
        }
        return
    assert len(lines["runs"]) == 1 + 2  # the header and one line per run, none forged
    assert all(f"exp {visible}" in line and f"tag {visible}" in line for line in lines["runs"][1:])
    assert any(line.startswith("comment") and f"c {visible}" in line for line in lines["show"])
    assert any(line.startswith(f"args.arg {visible}") for line in lines["compare"])
    assert len(lines["summarize"]) == 1 + 2 + 1 and f"arg {visible}" in lines["summarize"][0]


def test_cli_cells_keep_ordinary_text(capsys: pytest.CaptureFixture[str]) -> None:
    from sqltrack.cli._common import cell as _cell

    assert _cell("café 漢字 🎉 a\\b 'q' \"d\"") == "café 漢字 🎉 a\\b 'q' \"d\""
    assert _cell(["a\x1b", "b"]) == "a\\x1b,b"
    assert _cell({"k\x9b": "\u202e"}) == "{'k\\x9b': '\\u202e'}"
    assert _cell(0.123456789, short=True) == "0.123457" and _cell(None) == ""


_VERSION = re.compile(
    r"sqltrack (\S+) \(experiment tracking in PostgreSQL or SQLite; psycopg \d+\.\d+\S*, "
    r"SQLite \d+\.\d+\.\d+, Python \d+\.\d+\.\d+\S*\) from (\S.*)\n"
)


def test_version_says_which_sqltrack_this_is(capsys: pytest.CaptureFixture[str]) -> None:
    """Not the unrelated PyPI package `sqltrack` 0.1.x (PostgreSQL only): what it is,
    on what, and where from, on one line (argparse would wrap it)."""
    done = subprocess.run(
        [sys.executable, "-m", "sqltrack", "--version"],
        env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "40"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and done.stderr == ""
    found = _VERSION.fullmatch(done.stdout)
    assert found, done.stdout
    assert found.group(1) == st.__version__
    assert Path(found.group(2)) == ROOT / "sqltrack"
    assert f"Python {platform.python_version()})" in done.stdout
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0 and _VERSION.fullmatch(capsys.readouterr().out)


def test_the_version_has_one_place(monkeypatch: pytest.MonkeyPatch) -> None:
    """sqltrack._version is read by the package, by --version and by the wheel's build
    (pyproject: dynamic version), so an editable install never shows a stale one."""
    import importlib.metadata

    from sqltrack import _version
    from sqltrack.cli import version_text

    monkeypatch.setattr(_version, "__version__", "9.9.9")
    monkeypatch.setattr("sqltrack.cli.__version__", "9.9.9")
    assert version_text().startswith("sqltrack 9.9.9 (experiment tracking in ")
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject and 'path = "sqltrack/_version.py"' in pyproject

    def not_installed(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    assert "psycopg missing" in version_text()


def test_the_cli_imports_no_package_face() -> None:
    """The CLI takes its version from sqltrack._version, not from the package's face
    (which imports everything): `from . import __version__` made the house taller."""
    for path in (ROOT / "sqltrack" / "cli").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 2 and node.module is None:
                pytest.fail(f"{path.name} imports the package itself")


def test_rank_choices_are_summarize_s() -> None:
    from sqltrack._read.search import RANKS
    from sqltrack.cli import build_parser

    commands = next(a for a in build_parser()._actions if a.dest == "command")
    summarize = commands.choices["summarize"]  # type: ignore[index]
    [rank_by] = [a for a in summarize._actions if a.dest == "rank_by"]
    assert tuple(rank_by.choices or ()) == RANKS


@pytest.fixture
def many_runs(client: st.Client) -> list[int]:
    """3,000 runs: more output than a pipe holds (64 KiB on Linux) in every format."""
    exp = st.Experiment(client, name="a-sweep-with-a-long-name-" + "x" * 40)
    if client.engine.name == "postgres":
        q(client, "INSERT INTO runs (experiment_id, status) "
                  "SELECT ?, 'COMPLETED' FROM generate_series(1, 3000)", exp.id)  # fmt: skip
    else:
        q(client, "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 3000) "
                  "INSERT INTO runs (experiment_id, status) SELECT ?, 'COMPLETED' FROM g",
          exp.id)  # fmt: skip
    return [int(r[0]) for r in q(client, "SELECT id FROM runs ORDER BY id LIMIT 2")]


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_a_reader_that_stops_early_ends_the_output_quietly(
    client: st.Client, db_params: dict[str, Any], many_runs: list[int], fmt: str
) -> None:
    """`sqltrack runs | head -1`: the first line arrives, then the reader goes away; the
    command stops with no message, with the status of a tool that SIGPIPE ended."""
    child = subprocess.Popen(
        [sys.executable, "-m", "sqltrack", "runs", "--format", fmt],
        env=env_for(db_params),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None and child.stderr is not None
    first = child.stdout.readline()
    child.stdout.close()  # as head does after its lines
    with child.stderr:
        err = child.stderr.read()
    assert child.wait(timeout=60) == CLOSED_PIPE == 141
    assert err == b""
    assert first.startswith(b"[" if fmt == "json" else b"id")


@pytest.mark.parametrize(
    "command",
    [
        ["--version"],
        ["--help"],
        ["runs", "--help"],
        ["runs"],
        ["show", "RUN"],
        ["compare", "RUN", "RUN2"],
        ["summarize", "a-sweep-with-a-long-name-" + "x" * 40, "--metric", "m"],
        ["setup"],
        ["runs", "--format", "json"],
    ],
)
def test_every_command_is_quiet_on_a_closed_pipe(
    client: st.Client, db_params: dict[str, Any], many_runs: list[int], command: list[str]
) -> None:
    """The reader is gone before the command writes a byte (`sqltrack … | true`)."""
    first, second = many_runs
    st.Run(client, run_id=first).add_metrics({"m": 1.0}, step=0)
    argv = [{"RUN": str(first), "RUN2": str(second)}.get(a, a) for a in command]
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "sqltrack", *argv],
            env=env_for(db_params),
            stdout=write,
            stderr=subprocess.PIPE,
            timeout=60,
        )
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (CLOSED_PIPE, b""), done.stderr
