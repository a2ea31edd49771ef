"""The sqltrack command line (sqltrack.cli): main() in-process and as a subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import BUILTIN, cli_options, env_for

from sqltrack.cli import main


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
