"""The live dashboard at a lab's scale: its API through a real uvicorn, and first paint
in a real headless Chromium.

- runs: ``GET /api/runs?experiment=…`` of ``--runs`` runs with 3 summaries each (args,
  tags, summaries: what the runs table shows), until its body is read (the client's
  parse of the JSON is not timed); and with ``since=`` the 20 runs that changed last (the
  page's live refresh);
- curves: ``GET /api/runs/{id}/metrics?names=loss&points=1000`` of each of ``--curves``
  runs of ``--steps`` steps, one after the other (the page asks them at once: this is
  the slower way);
- first paint (with ``--browser``, needs Chromium and Playwright): from navigation to
  the runs table drawn, and to the charts of the ``--curves`` runs drawn.

The data is written with the raw driver (the benchmark times the reads, not the writes).

    python bench/bench_ui.py --engine postgres
    python bench/bench_ui.py --engine sqlite --browser
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import threading
import time
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone
from typing import Any

import uvicorn
from common import open_databases, record

import sqltrack as st
from sqltrack._write.blocks import update_blocks
from sqltrack.ui import create_app


def populate(
    client: st.Client, raw: Any, engine: str, runs: int, curves: int, steps: int
) -> list[int]:
    """``runs`` finished runs of experiment ``sweep`` with args, a tag and 3 summaries,
    their ids (runs 1 to ``curves`` with ``steps`` steps of ``loss`` in the wide table)."""
    exp_id = st.Experiment(client, name="sweep").id
    first = st.Experiment(client, name="sweep").get_run()
    with first.track():
        first.add_metrics({"loss": 1.0}, step=0)  # the column, made the way sqltrack makes it
    start = datetime(2026, 12, 1, tzinfo=timezone.utc)

    def sql(text: str) -> str:  # SQLite's placeholders, as the driver of the engine wants
        return text.replace("?", "%s").replace("JSON", "::jsonb") if engine == "postgres" else (
            text.replace("JSON", "")
        )  # fmt: skip

    def when(t: datetime) -> Any:
        return t if engine == "postgres" else t.isoformat(sep=" ", timespec="milliseconds")

    rows = []
    for i in range(1, runs):
        args = json.dumps({"lr": [0.1, 0.01, 0.001][i % 3], "seed": i % 5, "width": 64 + i % 7})
        rows.append((i, exp_id, "COMPLETED", when(start), when(start),
                     when(start + timedelta(seconds=60 + i)), args, '{"sweep": null}'))  # fmt: skip
    cur = raw.cursor()
    cur.executemany(
        sql(
            "INSERT INTO runs (id, experiment_id, status, time_created, time_started, "
            "time_updated, args, tags) VALUES (?, ?, ?, ?, ?, ?, ?JSON, ?JSON)"
        ),
        rows,
    )
    ids = [*range(1, runs), first.id]
    summaries = [
        (run_id, metric, 100, v, 99, 0.0, v / 2, 50, v * 2, 10)
        for n, run_id in enumerate(ids)
        for metric, v in (("loss", 1 / (n + 1)), ("val_loss", 2 / (n + 1)), ("acc", n / runs))
    ]
    cur.executemany(
        sql(
            "INSERT INTO run_summaries (run_id, metric, count, last, last_step, last_progress, "
            "min, min_step, max, max_step) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (run_id, metric) DO NOTHING"
        ),
        summaries,
    )
    for run_id in ids[:curves]:
        points = [(run_id, s, 0.0, 1 / (s + 1) + (s % 977 == 0) * 3.0) for s in range(1, steps)]
        cur.executemany(
            sql(
                "INSERT INTO metrics (run_id, step, progress, loss) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (run_id, step, progress) DO NOTHING"
            ),
            points,
        )
    raw.commit()
    return ids


def serve(client: st.Client) -> tuple[str, uvicorn.Server, threading.Thread]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(create_app(client), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    return f"http://127.0.0.1:{port}/", server, thread


def answer(url: str) -> bytes:
    """The body of ``url``'s answer (what the endpoint is timed by: its JSON, read)."""
    with urllib.request.urlopen(url) as response:
        return bytes(response.read())


def fetch(url: str) -> Any:
    return json.loads(answer(url))


def timed(fn: Any, repeat: int) -> float:
    """The median of ``repeat`` calls of ``fn``, in ms (after one untimed call)."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def first_paint(base: str, ids: list[int]) -> tuple[float, float]:
    """ms from navigation to the runs table drawn, and to the charts of runs ``ids``
    drawn (ticked one after the other, as a user does)."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "first paint needs Chromium (apt-get install chromium)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        t0 = time.perf_counter()
        page.goto(base + "#experiment=sweep")
        page.wait_for_selector("#runs tbody tr >> nth=499")
        table = time.perf_counter() - t0
        page.fill("#metric-search", "loss")
        page.press("#metric-search", "Enter")
        page.locator("#runs thead th", has_text="id").first.click()  # lowest ids first
        t1 = time.perf_counter()
        for run_id in ids:
            page.locator(f'#runs tbody tr[data-run="{run_id}"] input').check()
        chart = page.locator('.chart[data-metric="loss"]')
        deadline = time.monotonic() + 120
        while int(chart.get_attribute("data-points") or 0) < len(ids) * 900:
            drawn = chart.get_attribute("data-points") if chart.count() else None
            assert time.monotonic() < deadline, f"the charts were not drawn: {drawn} points"
            time.sleep(0.01)
        charts = time.perf_counter() - t1
        browser.close()
    return table * 1e3, charts * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--curves", type=int, default=20, help="runs with long curves")
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--browser", action="store_true", help="also first paint in Chromium")
    parser.add_argument("--dsn")
    args = parser.parse_args()

    client, raw, _ = open_databases(args.engine, args.dsn)
    t0 = time.perf_counter()
    ids = populate(client, raw, args.engine, args.runs, args.curves, args.steps)
    print(f"{args.engine}: {args.runs} runs, {args.curves} x {args.steps} steps written "
          f"in {time.perf_counter() - t0:.0f} s")  # fmt: skip

    def roll_up() -> None:  # what a tracked run keeps as it logs, for each run
        for run_id in ids[: args.curves]:
            with client as conn:
                update_blocks(client, conn, run_id, ["loss"])

    t0 = time.perf_counter()
    roll_up()  # (timed once: a second call would find nothing new)
    rollup_ms = (time.perf_counter() - t0) * 1000 / max(1, args.curves)
    print(f"  metric blocks of {args.steps} steps rolled up in {rollup_ms:.0f} ms per run")
    base, server, thread = serve(client)
    query = urllib.parse.urlencode({"experiment": "sweep"})
    listed = fetch(f"{base}api/runs?{query}")
    assert len(listed["runs"]) == args.runs and len(listed["runs"][5]["summaries"]) == 3
    runs_ms = timed(lambda: answer(f"{base}api/runs?{query}"), args.repeat)
    # the page's live refresh: the runs that changed in the last minute (about 20 here)
    since = datetime(2026, 12, 1, tzinfo=timezone.utc) + timedelta(seconds=40 + args.runs)
    changed = urllib.parse.urlencode({"experiment": "sweep", "since": since.isoformat()})
    assert 0 < len(fetch(f"{base}api/runs?{changed}")["runs"]) <= 21
    since_ms = timed(lambda: answer(f"{base}api/runs?{changed}"), args.repeat)

    def curves() -> None:
        for run_id in ids[: args.curves]:
            got = fetch(f"{base}api/runs/{run_id}/metrics?names=loss&points=1000")
            assert 0 < len(got["metrics"]["loss"]["step"]) <= 1000

    curves_ms = timed(curves, max(1, args.repeat // 2))
    client.execute("DELETE FROM metric_blocks")  # the same curves, read raw
    raw_ms = timed(curves, max(1, args.repeat // 5))
    roll_up()  # (again, for the first paint)
    print(f"  GET /api/runs ({args.runs} runs x 3 summaries)      {runs_ms:.0f} ms (target <= 300)")
    print(f"  GET /api/runs?since= (the 20 of them that changed)  {since_ms:.0f} ms")
    print(f"  {args.curves} curves of {args.steps} steps at 1,000 points  {curves_ms:.0f} ms "
          "(target <= 300)")  # fmt: skip
    record(f"ui: runs endpoint, {args.runs} runs (ms)", runs_ms, "<= 300")
    record(f"ui: runs endpoint, 20 changed of {args.runs} runs (ms)", since_ms)
    curves_figure = f"ui: {args.curves} curves of {args.steps} steps at 1000 points (ms)"
    record(curves_figure, curves_ms, "<= 300")
    print(f"  the same curves without metric blocks (every value read)  {raw_ms:.0f} ms")
    record(f"ui: the same {args.curves} curves without metric blocks (ms)", raw_ms)
    record(f"ui: metric blocks of one run of {args.steps} steps rolled up (ms)", rollup_ms)
    if args.browser:
        table_ms, charts_ms = first_paint(base, ids[: args.curves])
        print(f"  first paint: runs table {table_ms:.0f} ms, {args.curves} charts "
              f"{charts_ms:.0f} ms (target <= 1000 each)")  # fmt: skip
        record("ui: first paint of the runs table (ms)", table_ms, "<= 1000")
        record(f"ui: first paint of {args.curves} curves (ms)", charts_ms, "<= 1000")
    server.should_exit = True
    thread.join(10)


if __name__ == "__main__":
    main()
