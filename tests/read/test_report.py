"""The report (`sqltrack report`): the dashboard's page as one file with its data, on both
engines; checked in a real headless Chromium (Debian's, driven by Playwright).

Without Chromium or Playwright the browser tests are skipped by name locally and fail
under CI (``.ci/run`` installs both).
"""

from __future__ import annotations

import html
import json
import math
import re
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import chromium, cli_options, sync_playwright

from sqltrack import Client, Experiment, InvalidValue, NotFound
from sqltrack._read.report import _embedded_json, report_data, write_report
from sqltrack.cli import main


@pytest.fixture
def sweep(client: Client) -> list[int]:
    """An experiment of six runs with args, two metrics and 1,000 steps each (one spike)."""
    exp = Experiment(client, name="sweep <1>")
    ids = []
    for i in range(6):
        run = exp.get_run().set_args(
            {"lr": [0.1, 0.01, 0.001][i % 3], "opt": ["sgd", "adam"][i % 2]}
        )
        with run.track(buffered=True):
            for step in range(1000):
                loss = math.exp(-step / (100 + 40 * i)) + (step == 555) * 5.0
                run.add_metrics({"val_loss": loss, "acc": 1 - loss}, step=step)
        ids.append(run.id)
    return ids


_DATA = re.compile(r'<script type="application/json" id="sqltrack-data">(.*?)</script>', re.S)


def _data(path: Path) -> Any:
    found = _DATA.search(path.read_text("utf-8"))
    assert found, "the page carries its data"
    return json.loads(found[1])


def test_the_report_is_one_file_with_the_dashboards_answers(
    client: Client, sweep: list[int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.html"
    options = [*cli_options(client), "-o", str(out), "--points", "100"]
    assert main(["report", "sweep <1>", *options]) == 0
    assert capsys.readouterr().out == f"{out}: 6 runs of sweep <1>\n"
    text = out.read_text("utf-8")
    # nothing is fetched: no src, no link but to the page itself; no URL but a namespace
    # and the licence's home page in uPlot's header
    assert not re.search(r"\bsrc\s*=", text)
    assert set(re.findall(r'\bhref="([^"]*)"', text)) == {"data:,", "#"}
    urls = set(re.findall(r"https?://[^\s\"')]+", text))
    assert urls == {"http://www.w3.org/2000/svg", "https://github.com/leeoniya/uPlot"}
    assert "<title>sweep &lt;1&gt; - sqltrack report</title>" in text
    data = _data(out)
    assert data["config"] == {"experiment": "sweep <1>", "engine": client.engine.name,
                              "report": True}  # fmt: skip
    assert data["experiments"] == [{"id": 1, "name": "sweep <1>", "runs": 6}]
    assert sorted(data["metrics"]) == ["acc", "val_loss"]
    runs = data["runs"]["runs"]
    assert [r["id"] for r in runs] == sweep
    first = runs[0]
    assert first["args"] == {"lr": 0.1, "opt": "sgd"} and first["status"] == "COMPLETED"
    assert first["summaries"]["val_loss"]["max"] == pytest.approx(5.0 + math.exp(-555 / 100))
    assert first["summaries"]["val_loss"]["last"] == pytest.approx(math.exp(-9.99))
    curve = data["curves"][str(sweep[0])]["val_loss"]
    assert 50 <= len(curve["step"]) <= 100  # downsampled as the dashboard's
    assert curve["step"][0] == 0 and curve["step"][-1] == 999 and curve["value"][0] == 1.0
    assert 555 in curve["step"]  # the spike survives
    assert curve["step"] == sorted(curve["step"])
    # every report of the same data is the same file (no time of writing inside)
    assert data == report_data(client, "sweep <1>", points=100)


def test_report_errors(client: Client, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "nope", *cli_options(client), "-o", str(tmp_path / "r.html")]) == 1
    assert "experiment 'nope' does not exist" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()
    with pytest.raises(NotFound):
        report_data(client, 12345)
    exp = Experiment(client, name="empty")  # no runs, no metrics: still a page
    empty = report_data(client, exp.id, points=10)
    assert empty["runs"]["runs"] == [] and empty["curves"] == {} and empty["metrics"] == []
    with pytest.raises(InvalidValue, match="points must be an integer from 3 to 100000"):
        report_data(client, exp.id, points=2)


@pytest.fixture
def browser() -> Iterator[Any]:
    path = chromium()
    with sync_playwright()() as playwright:
        launched = playwright.chromium.launch(executable_path=path, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


def _until(condition: Callable[[], bool], seconds: float = 10) -> None:
    """Wait for ``condition``, asked from here: the report's policy (no eval) refuses the
    expressions Playwright would evaluate in the page."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the page did not get there in time"
        time.sleep(0.05)


class Opened:
    """A report opened in Chromium, and everything its page said or asked for."""

    def __init__(self, browser: Any, path: Path) -> None:
        self.problems: list[str] = []
        self.requests: list[str] = []
        self.page = page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.on("console", lambda m: self.problems.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: self.problems.append(f"error: {e}"))
        page.on("dialog", lambda d: (self.problems.append("dialog: " + d.message), d.dismiss()))
        page.on("request", lambda r: self.requests.append(r.url))
        page.goto(path.as_uri())


def test_the_report_in_a_real_browser(
    client: Client, sweep: list[int], tmp_path: Path, browser: Any
) -> None:
    out = tmp_path / "report.html"
    assert main(["report", str(client.query("SELECT id FROM experiments")[0][0]),
                 *cli_options(client), "-o", str(out)]) == 0  # fmt: skip
    opened = Opened(browser, out)
    page = opened.page
    page.wait_for_selector("#runs tbody tr >> nth=5")
    rows = page.locator("#runs tbody tr")
    assert rows.count() == 6 and page.locator("#runs tbody tr.selected").count() == 5
    assert page.inner_text("#live") == "report of 6 runs"
    # the five runs with the lowest val_loss, drawn: uPlot's chart, a series per run
    chart = page.locator('.chart[data-metric="val_loss"]')
    chart.wait_for()
    assert int(chart.get_attribute("data-points") or 0) > 5 * 400
    assert chart.locator(".u-legend .u-series", has_text="run ").count() == 5
    assert page.locator("#parallel path").count() == 6  # every run, parallel coordinates
    # the dashboard's filters work on the data inside
    page.select_option("#status", "FAILED")
    page.wait_for_selector("#runs tbody tr", state="detached")
    page.select_option("#status", "")
    _until(lambda: rows.count() == 6)
    page.fill("#arg", "opt=adam")
    page.dispatch_event("#arg", "change")
    _until(lambda: rows.count() == 3)
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert opened.problems == []  # no error, no warning, nothing logged
    assert opened.requests == [out.as_uri()]  # the file itself, nothing else


def test_the_browser_check_would_see_a_broken_page(tmp_path: Path, browser: Any) -> None:
    """The console check above is worth something: a page with an error shows in it."""
    page = tmp_path / "broken.html"
    page.write_text("<html><body><script>undefinedFunction();</script></body></html>")
    opened = Opened(browser, page)
    opened.page.wait_for_load_state()
    assert any("undefinedFunction is not defined" in p for p in opened.problems)


# text that breaks out of a <script> element or becomes markup if a page lets it
_PAYLOADS = [
    "<!--<script>",
    "</script><b>x",
    "<img src=x onerror=alert(1)>",
    "&amp;",
    "a\u2028b\u2029c",
]
_HOSTILE = " ".join(_PAYLOADS)


@pytest.fixture
def hostile(client: Client) -> list[int]:
    """Two runs whose experiment name, tags, arg names and arg values are markup."""
    exp = Experiment(client, name=_HOSTILE)
    ids = []
    for i in range(2):
        run = exp.get_run().add_tags(*_PAYLOADS).set_args({p: p for p in _PAYLOADS} | {"i": i})
        with run.track(buffered=True):
            for step in range(5):
                run.add_metrics({"loss": 1 / (step + i + 1)}, step=step)
        ids.append(run.id)
    return ids


def test_the_embedded_data_cannot_end_its_script_element(
    client: Client, hostile: list[int], tmp_path: Path
) -> None:
    out = tmp_path / "report.html"
    assert write_report(client, _HOSTILE, out) == 2
    text = out.read_text("utf-8")
    found = _DATA.search(text)
    assert found
    payload = found[1]
    assert not set("<>&\u2028\u2029") & set(payload)
    assert payload.isascii()
    assert json.loads(payload) == report_data(client, _HOSTILE)  # read back exactly
    assert f"<title>{html.escape(_HOSTILE)} - sqltrack report</title>" in text
    # the page's own: its data, uPlot and its script
    assert text.count("<script") == 3 and text.count("</script>") == 3
    assert json.loads(_embedded_json({"<k>": "\u2028&"})) == {"<k>": "\u2028&"}


def test_only_the_pages_own_scripts_and_styles_may_run(
    client: Client, hostile: list[int], tmp_path: Path
) -> None:
    """The policy names each inline script and style by its hash: a script that data
    smuggled into the page would not run (the browser test shows that the page's do)."""
    out = tmp_path / "report.html"
    write_report(client, _HOSTILE, out)
    text = out.read_text("utf-8")
    policy = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)">', text)
    assert policy
    rules = dict(rule.strip().split(" ", 1) for rule in policy[1].split(";"))
    assert rules["default-src"] == "'none'"
    assert "unsafe" not in policy[1] and "'self'" not in policy[1]
    assert len(re.findall(r"'sha256-[A-Za-z0-9+/=]{44}'", rules["script-src"])) == 2
    assert len(re.findall(r"'sha256-[A-Za-z0-9+/=]{44}'", rules["style-src"])) == 2


def test_the_report_file_is_private_unless_it_was_shared(
    client: Client, hostile: list[int], tmp_path: Path
) -> None:
    out = tmp_path / "report.html"
    write_report(client, _HOSTILE, out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    shared = tmp_path / "shared.html"
    shared.write_text("old, longer than the report? " * 10_000)
    shared.chmod(0o644)
    write_report(client, _HOSTILE, shared)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o644  # the user's choice is kept
    assert shared.read_text("utf-8") == out.read_text("utf-8")  # truncated, rewritten


def test_hostile_text_stays_text_in_a_real_browser(
    client: Client, hostile: list[int], tmp_path: Path, browser: Any
) -> None:
    out = tmp_path / "report.html"
    assert main(["report", _HOSTILE, *cli_options(client), "-o", str(out)]) == 0
    opened = Opened(browser, out)
    page = opened.page
    page.wait_for_selector("#runs tbody tr >> nth=1")
    page.locator('.chart[data-metric="loss"]').wait_for()
    assert page.locator("img").count() == 0 and page.locator("b").count() == 0
    assert page.title() == _HOSTILE + " - sqltrack report"
    assert _HOSTILE in page.inner_text("#experiment")
    table = page.locator("#runs").text_content()
    for payload in _PAYLOADS:  # as text: the column headers, the cells of both runs
        assert table.count(payload) >= 1 + 2, payload
    assert page.locator("#parallel path").count() == 2
    assert opened.problems == []
