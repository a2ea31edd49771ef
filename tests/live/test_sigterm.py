"""SIGTERM and Ctrl-C delivered to real child processes that track a run, on both engines."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from typing import Any

import pytest
from conftest import env_for, q

from sqltrack import Client, Experiment

CHILD = """
import os, signal, sys, time
import sqltrack as st

mode, run_id = sys.argv[1], int(sys.argv[2])
client = st.Client()
run = st.Run(client, run_id=run_id)
if mode == "chained":
    def mine(signum, frame):
        # os.write, not print: the signal may interrupt a print() (reentrant I/O fails)
        os.write(1, b"my handler ran\\n")
        sys.exit(3)
    signal.signal(signal.SIGTERM, mine)
if mode == "buffered":
    from sqltrack._live.buffer import MetricsBuffer
    MetricsBuffer.flush_seconds = 60.0  # only the flush on SIGTERM can write these rows
    with run.track(buffered=True):
        for step in range(50):
            run.add_metrics({"loss": 1.0 / (step + 1)}, step=step)
        print("ready", flush=True)
        while True:
            time.sleep(0.01)
if mode == "start":
    run.start(terminated="PREEMPTED")
    run.add_metrics({"loss": 1.0}, step=0)
    print("ready", flush=True)
    while True:
        time.sleep(0.01)
with run.track(terminated="PREEMPTED" if mode == "preempted" else "CANCELLED"):
    run.add_metrics({"loss": 1.0}, step=0)
    print("ready", flush=True)
    step = 1
    while True:
        if mode == "busy":  # the signal lands while the database is being written
            run.add_metrics({"loss": 1.0 / step}, step=step)
            step += 1
        else:
            time.sleep(0.01)
"""


def _start(db_params: dict[str, Any], mode: str, run_id: int) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, mode, str(run_id)],
        env=env_for(db_params),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    if line != "ready\n":
        child.kill()
        raise AssertionError(f"child did not start: {line!r} {child.communicate()[1]}")
    return child


def _status(client: Client, run_id: int) -> str:
    return str(q(client, "SELECT status FROM runs WHERE id = ?", run_id)[0][0])


@pytest.fixture
def run_id(client: Client) -> int:
    return Experiment(client, name="signals").get_run().id


@pytest.mark.parametrize(
    "mode, status", [("plain", "CANCELLED"), ("preempted", "PREEMPTED"), ("start", "PREEMPTED")]
)
def test_sigterm_records_status_and_exits_as_terminated(
    client: Client, db_params: dict[str, Any], run_id: int, mode: str, status: str
) -> None:
    child = _start(db_params, mode, run_id)
    assert _status(client, run_id) == "RUNNING"
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGTERM, err
    assert _status(client, run_id) == status
    assert "Traceback" not in err


def test_sigterm_while_writing(client: Client, db_params: dict[str, Any], run_id: int) -> None:
    child = _start(db_params, "busy", run_id)
    time.sleep(0.3)  # let it log a few steps
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGTERM, err
    assert _status(client, run_id) == "CANCELLED"
    steps = [
        r[0] for r in q(client, "SELECT step FROM metrics WHERE run_id = ? ORDER BY step", run_id)
    ]
    assert len(steps) > 1 and steps == list(range(len(steps)))  # no gaps, no half rows


def test_sigterm_chains_to_the_previous_handler(
    client: Client, db_params: dict[str, Any], run_id: int
) -> None:
    child = _start(db_params, "chained", run_id)
    child.send_signal(signal.SIGTERM)
    out, err = child.communicate(timeout=30)
    assert "my handler ran" in out, (child.returncode, err)
    assert child.returncode == 3, err  # the application's handler decided how to exit
    assert _status(client, run_id) == "CANCELLED"


def test_ctrl_c(client: Client, db_params: dict[str, Any], run_id: int) -> None:
    child = _start(db_params, "plain", run_id)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGINT, err  # Python re-raises SIGINT at exit
    assert "KeyboardInterrupt" in err
    assert _status(client, run_id) == "CANCELLED"


def test_handler_is_removed_after_track(client: Client, run_id: int) -> None:
    from sqltrack import Run

    before = signal.getsignal(signal.SIGTERM)
    run = Run(client, run_id=run_id)
    with run.track():
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before
    run.start()
    assert signal.getsignal(signal.SIGTERM) is not before
    run.stop()
    assert signal.getsignal(signal.SIGTERM) is before


def test_sigterm_flushes_buffered_metrics_first(
    client: Client, db_params: dict[str, Any], run_id: int
) -> None:
    child = _start(db_params, "buffered", run_id)
    assert q(client, "SELECT count(*) FROM metrics") == [(0,)]  # all still queued
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGTERM, err
    assert q(client, "SELECT count(*) FROM metrics WHERE run_id = ?", run_id) == [(50,)]
    assert _status(client, run_id) == "CANCELLED"
