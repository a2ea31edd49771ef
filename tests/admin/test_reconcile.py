"""Final states from Slurm (sqltrack._admin.reconcile, `sqltrack reconcile`), with a fake sacct
that prints what `sacct -X --noheader --parsable2 --format=JobIDRaw,JobID,State,End`
prints; on both engines."""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from conftest import cli_options, q

import sqltrack as st
from sqltrack import Client, Experiment, SQLTrackError
from sqltrack.cli import main

FAKE_SACCT = """#!{python}
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_SACCT_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
jobs = json.load(open(os.environ["FAKE_SACCT_JOBS"]))
for job_id in args[args.index("-j") + 1].split(","):
    for line in jobs.get(job_id, []):
        print(line)
"""

# what sacct prints for each raw job id (JobIDRaw|JobID|State|End)
JOBS = {
    "101": ["101|101|TIMEOUT|2026-11-20T10:00:00"],
    "102": ["102|102|OUT_OF_MEMORY|2026-11-20T11:00:00"],
    "103": ["103|103|NODE_FAIL|2026-11-20T12:00:00"],
    "104": ["104|104|PREEMPTED|2026-11-20T13:00:00"],
    "105": ["105|105|CANCELLED by 4242|2026-11-20T14:00:00"],
    "106": ["106|106|FAILED|2026-11-20T15:00:00"],
    "107": ["107|107|COMPLETED|2026-11-20T16:00:00"],
    "108": ["108|108|RUNNING|Unknown"],  # still running: left alone
    "109": ["109|109|COMPLETED|2026-11-20T17:00:00"],  # wrote its own status
    "1240": ["1240|1234_7|TIMEOUT|2026-11-20T18:00:00"],  # an array task
    "111": ["111|111|REQUEUED|Unknown"],  # requeued: not final
    "112": ["112|112|BOOT_FAIL|None"],  # no end time
    "201": ["201|201|TIMEOUT|2026-11-20T19:00:00"],  # of another experiment
}


@pytest.fixture
def sacct(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "sacct"
    script.write_text(FAKE_SACCT.format(python=sys.executable))
    script.chmod(0o755)
    (tmp_path / "jobs.json").write_text(json.dumps(JOBS))
    monkeypatch.setenv("FAKE_SACCT_JOBS", str(tmp_path / "jobs.json"))
    monkeypatch.setenv("FAKE_SACCT_LOG", str(tmp_path / "sacct.log"))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return tmp_path / "sacct.log"


def _runs(client: Client) -> dict[int, st.Run]:
    exp = Experiment(client, name="sweep")
    long_ago = datetime.now(timezone.utc) - timedelta(hours=3)
    runs = {}
    for job in [*(int(j) for j in JOBS if j != "201"), 113]:
        run = exp.get_run(run_id=job).start(terminated=None, started=long_ago, updated=long_ago)
        runs[job] = run
    runs[109].stop("COMPLETED", updated=long_ago)  # the job recorded its end itself
    exp.get_run().start(terminated=None, updated=long_ago)  # a generated id: not a job
    return runs


def _status(client: Client, run_id: int) -> str:
    return str(q(client, "SELECT status FROM runs WHERE id = ?", run_id)[0][0])


def test_every_final_state_is_recorded_once(client: Client, sacct: Path) -> None:
    _runs(client)
    changed = st.reconcile(client)
    assert {r.run_id: r.new for r in changed} == {
        101: "TIMEOUT", 102: "OUT_OF_MEMORY", 103: "NODE_FAIL", 104: "PREEMPTED",
        105: "CANCELLED", 106: "FAILED", 107: "COMPLETED", 1240: "TIMEOUT", 112: "BOOT_FAIL",
    }  # fmt: skip
    assert all(r.old == "RUNNING" for r in changed)
    for run_id, new in ((101, "TIMEOUT"), (1240, "TIMEOUT"), (108, "RUNNING"), (111, "RUNNING")):
        assert _status(client, run_id) == new
    assert _status(client, 109) == "COMPLETED"  # its own, never overridden
    assert _status(client, 113) == "RUNNING"  # sacct does not know it
    ended = q(client, "SELECT time_updated FROM runs WHERE id = ?", 101)[0][0]
    expected = datetime.fromisoformat("2026-11-20T10:00:00").astimezone(timezone.utc)
    assert client.engine.python_value(ended, "datetime") == expected  # sacct's End
    asked = [json.loads(line) for line in sacct.read_text().splitlines()]
    assert len(asked) == 1 and "--parsable2" in asked[0]
    job_ids = asked[0][asked[0].index("-j") + 1].split(",")
    assert "109" not in job_ids and all(int(j) <= 9_999_999_999 for j in job_ids)
    assert st.reconcile(client) == []  # again: nothing changes


def test_dry_run_recent_runs_and_one_experiment(
    client: Client, sacct: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _runs(client)
    long_ago = datetime.now(timezone.utc) - timedelta(hours=3)
    Experiment(client, name="other").get_run(run_id=201).start(terminated=None, updated=long_ago)
    assert main(["reconcile", "--dry-run", "--experiment", "sweep", *cli_options(client)]) == 0
    out = capsys.readouterr().out
    assert "would change 9 runs" in out and "OUT_OF_MEMORY" in out
    assert _status(client, 102) == "RUNNING"  # a dry run
    assert st.reconcile(client, older_than=5 * 3600) == []  # silent 3 h only: not yet
    assert main(["reconcile", "--older-than", "1h", *cli_options(client)]) == 0
    assert "changed 10 runs" in capsys.readouterr().out  # the other experiment's too
    assert _status(client, 102) == "OUT_OF_MEMORY"


def test_without_sacct_one_line(
    client: Client, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SQLTrackError, match="sacct is not on PATH"):
        st.reconcile(client)
    assert main(["reconcile", *cli_options(client)]) == 1
    assert capsys.readouterr().err == (
        "sqltrack: error: sacct is not on PATH: reconcile needs Slurm's accounting\n"
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"older_than": -1}, "seconds"),
        ({"older_than": "1h"}, "seconds"),
        ({"experiment": 3}, "a name"),
    ],
)
def test_bad_input(client: Client, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(st.InvalidValue, match=message):
        st.reconcile(client, **kwargs)


def test_a_bad_age_on_the_command_line(client: Client, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reconcile", "--older-than", "soon", *cli_options(client)]) == 1
    assert "give an age like 600, 90s, 10m, 2h or 1d" in capsys.readouterr().err


def test_deleted_runs_are_reconciled_too(client: Client, sacct: Path) -> None:
    """A deleted run keeps its true state for the day it is restored."""
    runs = _runs(client)
    st.delete_runs(client, [101])
    assert 101 in {r.run_id for r in st.reconcile(client)}
    st.restore_runs(client, [101])
    assert runs[101].id == 101 and _status(client, 101) == "TIMEOUT"
