"""Viewers of the live dashboard while jobs log: do the jobs notice, does a viewer fail?

``--jobs`` processes each track a buffered run of ``--steps`` steps, as a training job
does: a step is a fixed amount of CPU work (what takes ``--compute`` ms on the quiet machine,
measured first), the run's ``add_metrics`` (loss, acc), and a sleep to the end of
``--step`` ms (a GPU's wait). Viewers and the dashboard's server take CPU from the jobs,
which then take longer for the same work. The dashboard is ``sqltrack ui`` in a
process of its own, as a user runs it. Two phases on the same database: the jobs alone,
then the jobs again with ``--viewers`` viewers, each asking every 2 s what the page asks
while it follows a sweep: the runs that changed (``/api/runs?since=``) and the new
points of the loss of three running runs (``/metrics?after=``).

Figures: each job's median step time (its work and its logging, without the sleep),
phase two over phase one, as the median over jobs (target: at most 5 % more); how many
viewer requests failed (target: none); the viewers' answer times (p50, p95).

    python bench/bench_ui_load.py --engine postgres
    python bench/bench_ui_load.py --engine sqlite --jobs 4 --viewers 4 --steps 100  # quick
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from common import open_databases, record

HERE = Path(__file__).resolve()
CLIENT_ENV = "SQLTRACK_BENCH_CLIENT"
MARK = "BENCH-UI-LOAD "
REFRESH = 2.0  # seconds between a viewer's refreshes, as the page's


def job(args: argparse.Namespace) -> int:
    """One training job: its steps' times (work and logging), as JSON on one line."""
    import sqltrack as st

    client = st.Client({}, **json.loads(os.environ[CLIENT_ENV]))
    run = st.Experiment(client, name="load").get_run()
    step_seconds = args.step / 1e3
    times = []
    with run.track(buffered=True, system_metrics=None):
        for step in range(args.steps):
            t0 = time.perf_counter()
            work(args.work)  # the job's own: the same work each step, however long it takes
            run.add_metrics({"loss": 1 / (step + 1), "acc": step / args.steps}, step=step)
            took = time.perf_counter() - t0
            times.append(took)
            time.sleep(max(0.0, step_seconds - took))
    print(MARK + json.dumps({"run": run.id, "times": times}), flush=True)
    return 0


def work(n: int) -> int:
    """CPU work: ``n`` rounds of arithmetic."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def calibrated(milliseconds: float) -> int:
    """How many rounds of :func:`work` take ``milliseconds`` here, now (the best of 20)."""
    n = 10_000
    best = min(_timed_work(n) for _ in range(20))
    return max(1, round(n * milliseconds / 1e3 / best))


def _timed_work(n: int) -> float:
    t0 = time.perf_counter()
    work(n)
    return time.perf_counter() - t0


def cli_options(params: dict[str, Any]) -> list[str]:
    if params["engine"] == "sqlite":
        return ["--engine", "sqlite", "--dbpath", str(params["dbpath"])]
    options = ["--engine", "postgres", "-u", params["user"], "-a", params["host"]]
    options += ["-d", params["dbname"]] + (["-p", str(params["port"])] if "port" in params else [])
    return options + (["-s", params["schema"]] if "schema" in params else [])


def serve(params: dict[str, Any]) -> tuple[str, subprocess.Popen[bytes]]:
    """``sqltrack ui`` in a process of its own, on a free port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "sqltrack", "ui", "load", *cli_options(params)]
    server = subprocess.Popen([*command, "--port", str(port)], stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(base + "api/config").read()
            return base, server
        except OSError:
            assert time.monotonic() < deadline and server.poll() is None, "no sqltrack ui"
            time.sleep(0.1)


class Viewer(threading.Thread):
    """A page following the sweep: every 2 s what changed, and three curves' new points."""

    def __init__(self, base: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.base, self.stop = base, stop
        self.times: list[float] = []
        self.failed: list[str] = []
        self.last: dict[int, int] = {}  # run -> the last step it has

    def get(self, path: str, params: dict[str, Any]) -> Any:
        url = self.base + path + "?" + urllib.parse.urlencode(params)
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                body = json.loads(response.read())
        except Exception as e:  # (any failure counts: an error status, a refusal, a timeout)
            self.failed.append(f"{path}: {e}")
            return None
        self.times.append(time.perf_counter() - t0)
        return body

    def run(self) -> None:
        since = (datetime.now(timezone.utc) - timedelta(minutes=1)).isoformat()
        while not self.stop.wait(REFRESH * 0.05):
            tick = time.monotonic()
            changed = self.get("api/runs", {"experiment": "load", "since": since})
            if changed is not None:
                since = (datetime.fromisoformat(changed["now"]) - timedelta(minutes=1)).isoformat()
                running = [r["id"] for r in changed["runs"] if r["status"] == "RUNNING"]
                for run_id in running[:3]:
                    after = self.last.get(run_id)
                    params = {"names": "loss", "points": 1000}
                    got = self.get(f"api/runs/{run_id}/metrics", params | (
                        {} if after is None else {"after": after}
                    ))  # fmt: skip
                    if got and got["metrics"]["loss"]["step"]:
                        self.last[run_id] = got["metrics"]["loss"]["step"][-1]
            self.stop.wait(max(0.0, REFRESH - (time.monotonic() - tick)))


def phase(args: argparse.Namespace, env: dict[str, str], base: str, viewers: int) -> Any:
    """The jobs' step times (each job's median, s), and the viewers that watched them."""
    stop = threading.Event()
    watching = [Viewer(base, stop) for _ in range(viewers)]
    for viewer in watching:
        viewer.start()
    command = [sys.executable, str(HERE), "--job", "--steps", str(args.steps),
               "--work", str(args.work), "--step", str(args.step)]  # fmt: skip
    jobs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
            for _ in range(args.jobs)]  # fmt: skip
    medians = []
    for process in jobs:
        out, _ = process.communicate()
        assert process.returncode == 0, "a job failed"
        line = next(x for x in out.splitlines() if x.startswith(MARK))
        times = json.loads(line[len(MARK) :])["times"]
        medians.append(statistics.median(times[len(times) // 10 :]))  # (after starting)
    stop.set()
    for viewer in watching:
        viewer.join(60)
    return medians, watching


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--dsn")
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--viewers", type=int, default=20)
    parser.add_argument("--steps", type=int, default=600, help="steps per job")
    parser.add_argument("--step", type=float, default=50.0, help="ms a step takes in all")
    parser.add_argument("--compute", type=float, default=2.0, help="ms of CPU work a step")
    parser.add_argument("--rounds", type=int, default=1, help="phases of each kind, in turn")
    parser.add_argument("--job", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=int, help=argparse.SUPPRESS)  # (rounds of work)
    args = parser.parse_args()
    if args.job:
        return job(args)
    args.work = calibrated(args.compute)  # fixed work: slower when the cores are busy
    client, _, _ = open_databases(args.engine, args.dsn)
    params = dict(client.engine.params)
    env = {**os.environ, CLIENT_ENV: json.dumps(params)}
    import sqltrack as st

    st.Experiment(client, name="load")  # (the dashboard opens on it)
    base, server = serve(params)
    try:
        alone: list[float] = []
        watched: list[float] = []
        viewers: list[Viewer] = []
        for _ in range(args.rounds):
            alone += phase(args, env, base, 0)[0]
            medians, seen = phase(args, env, base, args.viewers)
            watched += medians
            viewers += seen
    finally:
        server.terminate()
        server.wait(30)
    before, after = statistics.median(alone), statistics.median(watched)
    change = 100 * (after / before - 1)
    times = sorted(t for v in viewers for t in v.times)
    failed = [f for v in viewers for f in v.failed]
    p50 = times[len(times) // 2] * 1e3 if times else float("nan")
    p95 = times[int(len(times) * 0.95)] * 1e3 if times else float("nan")
    print(f"{args.engine}: {args.jobs} jobs of {args.steps} steps ({args.compute:g} ms of work "
          f"in each {args.step:g} ms step), {args.rounds} round(s)")  # fmt: skip
    print(
        f"  a job's step (median of jobs' medians): alone {before * 1e3:.3f} ms, with "
        f"{args.viewers} viewers {after * 1e3:.3f} ms: {change:+.1f} % (target <= 5 %)"
    )
    print(
        f"  viewer requests: {len(times)} answered, {len(failed)} failed (target 0); "
        f"answer p50 {p50:.0f} ms, p95 {p95:.0f} ms"
    )
    for problem in failed[:5]:
        print("   ", problem)
    record(f"ui load: a job's step with {args.viewers} viewers, change (%)", change, "<= 5")
    record(f"ui load: viewer requests failed, {args.viewers} viewers", len(failed), "<= 0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
