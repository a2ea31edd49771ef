"""The dashboard in a real headless Chromium (Debian's, driven by Playwright), against a
live server and a database that a job is writing to, on both engines.

Without Chromium or Playwright the test is skipped by name locally and fails under CI
(``.ci/run`` installs both).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import chromium, sync_playwright

from sqltrack import Client, Experiment, Run
from sqltrack._live.buffer import MetricsBuffer

HOSTILE = "<img src=x onerror=alert(1)></script>"


@pytest.fixture
def server(client: Client) -> Iterator[str]:
    """The dashboard served by uvicorn on a free port of 127.0.0.1, as a real user runs it."""
    import uvicorn

    from sqltrack.ui import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(client, hosts=["127.0.0.1"])
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    served = uvicorn.Server(config)
    thread = threading.Thread(target=served.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not served.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/"
    served.should_exit = True
    thread.join(30)


@pytest.fixture
def job(client: Client, monkeypatch: pytest.MonkeyPatch) -> Iterator[Run]:
    """Two finished seeds of lr 0.1, and a RUNNING run that logs a step every 50 ms
    (buffered: what a tracked job does) until the test ends."""
    exp = Experiment(client, name=HOSTILE)
    for seed in range(2):
        run = exp.get_run().set_args({"lr": 0.1, "seed": seed}).add_tags(HOSTILE)
        with run.track(buffered=True):
            for step in range(500):
                run.add_metrics(
                    {"loss": 1 / (step + 1) + seed / 10}, step=step, progress=step / 500
                )
    running = exp.get_run().set_args({"lr": 0.01, "seed": 0})
    running.log_artifact("s3://bucket/ckpt", name=HOSTILE, kind="checkpoint", step=0)
    stop = threading.Event()
    # the writer flushes five times a second (not once): a live view within the test's patience
    monkeypatch.setattr(MetricsBuffer, "flush_seconds", 0.2)

    def train() -> None:
        writer = Run(Client.of(**client.engine.params), running.experiment_id, running.id)
        with writer.track(buffered=True) as tracked:
            step = 0
            while not stop.is_set():
                tracked.add_metrics({"loss": 1 / (step + 1)}, step=step)
                step += 1
                time.sleep(0.05)

    thread = threading.Thread(target=train)
    thread.start()
    deadline = time.monotonic() + 30
    while (
        client.query("SELECT status FROM runs WHERE id = :r", {"r": running.id})[0][0] != "RUNNING"
    ):
        assert time.monotonic() < deadline, "the job did not start"
        time.sleep(0.05)
    yield running
    stop.set()
    thread.join(60)


def _until(condition: Callable[[], bool], seconds: float = 5) -> None:
    """Wait for ``condition``, asked from here: the page's policy (no eval) refuses the
    expressions Playwright would evaluate in it."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the page did not get there in time"
        time.sleep(0.05)


def test_the_dashboard_in_a_real_browser_while_a_job_trains(
    server: str, job: Run, tmp_path: Path
) -> None:
    browser_path = chromium()
    problems: list[str] = []
    with sync_playwright()() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("dialog", lambda d: (problems.append("dialog: " + d.message), d.dismiss()))
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(server)
            page.wait_for_selector("#runs tbody tr >> nth=2")
            # hostile names are text: in the select, the table's cells, nowhere as elements
            assert HOSTILE in page.inner_text("#experiment")
            assert page.locator("img").count() == 0
            assert page.locator("td", has_text=HOSTILE).count() == 2
            rows = page.locator("#runs tbody tr")
            running = page.locator(f'#runs tbody tr[data-run="{job.id}"]')
            assert running.locator(".status-RUNNING").inner_text() == "RUNNING"
            # filter: status, then back to any
            page.select_option("#status", "RUNNING")
            _until(lambda: rows.count() == 1)
            page.select_option("#status", "")
            _until(lambda: rows.count() == 3)
            # the running run's curve gains points without a reload
            running.locator("input").check()
            page.fill("#metric-search", "loss")
            page.press("#metric-search", "Enter")
            chart = page.locator('.chart[data-metric="loss"]')
            chart.wait_for()

            def points() -> int:
                return int(chart.get_attribute("data-points") or 0)

            _until(lambda: points() > 0)
            before = points()
            _until(lambda: points() > before, seconds=10)
            # grouping by an arg: a mean and a band of each group (lr=0.1 has two seeds)
            for row in range(3):
                rows.nth(row).locator("input").check()
            page.select_option("#group", "lr")
            chart.locator(".u-legend .u-series", has_text="lr=0.1 (2 runs)").wait_for()
            # against progress (the fixture's runs log it: step / 500)

            def largest_x() -> float:
                return float(page.evaluate(
                    "() => Math.max(...window.sqltrackUi.state.plots.get('loss').plot.data[0])"
                ))  # fmt: skip

            assert largest_x() >= 499
            page.select_option("#x", "progress")
            _until(lambda: largest_x() == 499 / 500)
            page.select_option("#x", "step")
            _until(lambda: largest_x() >= 499)
            assert page.locator("#compare-table").inner_text().count("run ") == 3
            # parallel coordinates: the args (lr, seed) and loss's minimum, a line per run
            assert page.input_value("#pc-summary") == "loss:min"
            assert page.locator("#parallel path").count() == 3
            assert page.locator("#parallel text", has_text="seed").count() == 1
            page.select_option("#pc-summary", "loss:last")
            assert page.locator("#parallel path title", has_text=f"run {job.id}:").count() == 1
            page.screenshot(path=str(tmp_path / "runs.png"), full_page=True)
            # the run page: its artifact (a hostile name, as text), its status live
            running.locator("a").click()
            page.wait_for_selector("#run-view h2")
            artifacts = page.locator('table[data-list="artifacts"]')
            assert (
                HOSTILE in artifacts.inner_text() and "s3://bucket/ckpt" in artifacts.inner_text()
            )
            assert page.locator("#run-status").inner_text() == "RUNNING"
            assert page.locator("img").count() == 0
            page.screenshot(path=str(tmp_path / "run.png"), full_page=True)
            page.go_back()
            page.wait_for_selector("#runs tbody tr")
            # the link keeps the ticked runs and the metric: opened anew, the same charts
            link = page.url
            assert "metrics=loss" in link and f"{job.id}" in link.partition("runs=")[2]
            again = browser.new_page(viewport={"width": 1280, "height": 1000})
            again.on("pageerror", lambda e: problems.append(str(e)))
            again.goto(link)
            again.locator(
                '.chart[data-metric="loss"] .u-legend .u-series', has_text="run"
            ).first.wait_for()
            assert again.locator("#runs tbody tr.selected").count() == 3
            assert again.locator(f'#runs tbody tr[data-run="{job.id}"] input').is_checked()
            assert again.locator(".chip", has_text="loss").count() == 1
            again.close()
            # a run made meanwhile joins the table, from an answer of what changed only
            Experiment(job.client, name=HOSTILE).get_run()
            _until(lambda: rows.count() == 4, seconds=10)
            assert any("since=" in url for url in requests)
        finally:
            browser.close()
    assert problems == []
    assert all(url.startswith(server) or url.startswith("data:") for url in requests), requests


def test_a_table_of_many_runs_draws_those_in_view_and_scrolls_to_all(
    client: Client, server: str
) -> None:
    """300 runs: the table holds about the rows in view, and scrolling to its end shows
    the first run (the table is as tall as all of them)."""
    exp = Experiment(client, name="many")
    ids = [exp.get_run().set_args({"i": i}).id for i in range(300)]
    with sync_playwright()() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            lists: list[str] = []
            page.on("request", lambda r: lists.append(r.url) if "/api/runs?" in r.url else None)
            page.goto(server + "#experiment=many")
            page.wait_for_selector(f'#runs tbody tr[data-run="{ids[-1]}"]')  # newest first
            assert page.inner_text("#count") == "300 runs"
            # the newest 500 are all 300 of them: the whole list is not asked again
            assert [u for u in lists if "since=" not in u] == [
                f"{server}api/runs?experiment=many&newest=500"
            ]
            assert 20 <= page.locator("#runs tbody tr").count() <= 100
            assert page.locator(f'#runs tbody tr[data-run="{ids[0]}"]').count() == 0
            page.locator("#table-wrap").evaluate("wrap => { wrap.scrollTop = wrap.scrollHeight; }")
            last = page.locator(f'#runs tbody tr[data-run="{ids[0]}"]')
            last.wait_for()
            assert last.is_visible()
            # sorted the other way, the first run is first again, at the top
            page.locator("#runs thead th", has_text="id").first.click()
            page.locator("#table-wrap").evaluate("wrap => { wrap.scrollTop = 0; }")
            page.locator(f'#runs tbody tr[data-run="{ids[0]}"]').wait_for()
        finally:
            browser.close()
