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
  the runs table drawn, and from navigation to a link of the ``--curves`` runs and
  ``loss`` to its chart drawn (with the table), in a new browser context each time.

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


# in the page: the time from navigation to the frame after the runs table has its rows
# (the 100 in and around view, of 10,000: "table") and after the chart of loss has its
# points too ("charts"): a mutation observer notes when each holds, the next animation
# frame is when it is painted
_MARKS = """
window.__painted = {};
const rows = %d, expected = %d;
const note = (name) => {
  if (window.__painted[name] !== undefined) return;
  window.__painted[name] = null;
  requestAnimationFrame(() => { window.__painted[name] = performance.now(); });
};
new MutationObserver(() => {
  if (document.querySelectorAll("#runs tbody tr").length < rows) return;
  note("table");
  const chart = document.querySelector('.chart[data-metric="loss"]');
  if (chart && Number(chart.dataset.points) >= expected) note("charts");
}).observe(document, { subtree: true, childList: true, attributes: true });
"""


def first_paint(
    base: str, ids: list[int], rows: int, expected: int, repeat: int
) -> dict[str, float]:
    """ms from navigation to the runs table painted (its first ``rows`` rows), and from
    navigation to a link of the runs ``ids`` and metric ``loss``
    (``#…&runs=…&metrics=loss``) painted with its chart (``expected`` points) and the
    table: in a new browser context each time (no cache), the first time in a
    just-started browser ("cold") and the median of ``repeat`` more (times the page
    notes itself: see :data:`_MARKS`)."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "first paint needs Chromium (apt-get install chromium)"
    link = urllib.parse.urlencode(
        {"experiment": "sweep", "runs": ",".join(map(str, ids)), "metrics": "loss"}
    )

    def open_page(browser: Any, url: str, name: str) -> float:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.add_init_script(_MARKS % (rows, expected))
        page.goto(url)
        deadline = time.monotonic() + 120  # (polled: the page's policy allows no eval)
        while not page.evaluate(f"() => window.__painted.{name}"):
            assert time.monotonic() < deadline, f"{name} not painted: {page.url}"
            time.sleep(0.02)
        took = float(page.evaluate(f"() => window.__painted.{name}"))
        context.close()
        return took

    found = {}
    with sync_playwright() as p:
        for name, url in (("table", base + "#experiment=sweep"), ("charts", f"{base}#{link}")):
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            found[f"{name} cold"] = open_page(browser, url, name)
            found[name] = statistics.median(open_page(browser, url, name) for _ in range(repeat))
            browser.close()
    return found


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
        expected = sum(
            len(fetch(f"{base}api/runs/{i}/metrics?names=loss&points=1000")["metrics"]["loss"]["step"])
            for i in ids[: args.curves]
        )  # fmt: skip
        rows = min(100, args.runs)  # (the table holds the 100 rows in and around view)
        paint = first_paint(base, ids[: args.curves], rows, expected, max(1, args.repeat // 2))
        print(f"  first paint: runs table {paint['table']:.0f} ms (in a just-started browser "
              f"{paint['table cold']:.0f}), a link to {args.curves} curves with the table "
              f"{paint['charts']:.0f} ms ({paint['charts cold']:.0f}), target <= 1000")  # fmt: skip
        record("ui: first paint of the runs table (ms)", paint["table"], "<= 1000")
        record(
            f"ui: first paint of a link to {args.curves} curves (ms)", paint["charts"], "<= 1000"
        )
        record("ui: first paint of the runs table, just-started browser (ms)", paint["table cold"])
        record(f"ui: first paint of {args.curves} curves, just-started browser (ms)",
               paint["charts cold"])  # fmt: skip
    server.should_exit = True
    thread.join(10)


if __name__ == "__main__":
    main()
