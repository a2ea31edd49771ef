"""The report page (`sqltrack report`), on both engines; checked in a real headless Chromium.

Chromium comes from Debian's package (``.ci/run`` installs it). Without it the browser
test is skipped by name locally and fails under CI.
"""

from __future__ import annotations

import html
import itertools
import json
import math
import re
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import chromium, cli_options

from sqltrack import Client, Experiment, InvalidValue, NotFound
from sqltrack._read.report import _embedded_json, report_data, write_report
from sqltrack.cli import main

_CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # (as root)
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def sweep(client: Client) -> list[int]:
    """An experiment of six runs with args, two metrics and 1,000 steps each."""
    exp = Experiment(client, name="sweep <1>")
    ids = []
    for i in range(6):
        run = exp.get_run().set_args(
            {"lr": [0.1, 0.01, 0.001][i % 3], "opt": ["sgd", "adam"][i % 2]}
        )
        with run.track(buffered=True):
            for step in range(1000):
                loss = math.exp(-step / (100 + 40 * i))
                run.add_metrics({"val_loss": loss, "acc": 1 - loss}, step=step)
        ids.append(run.id)
    return ids


def _data(path: Path) -> Any:
    text = path.read_text("utf-8")
    found = re.search(r'<script type="application/json" id="data">(.*?)</script>', text, re.S)
    assert found, "the page carries its data"
    return json.loads(found[1])


def test_the_report_is_one_file_with_its_data(
    client: Client, sweep: list[int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.html"
    options = [*cli_options(client), "-o", str(out), "--points", "100"]
    assert main(["report", "sweep <1>", *options]) == 0
    assert capsys.readouterr().out == f"{out}: 6 runs of sweep <1>\n"
    text = out.read_text("utf-8")
    # nothing is fetched: no src or href, no URL but the SVG namespace (a name, no request)
    assert not re.search(r"\b(src|href)\s*=", text)
    assert set(re.findall(r"https?://[^\s\"']+", text)) == {"http://www.w3.org/2000/svg"}
    assert "<title>sweep &lt;1&gt; - sqltrack report</title>" in text
    data = _data(out)
    assert data["experiment"] == "sweep <1>"
    assert data["metrics"] == ["acc", "val_loss"]
    assert data["args"] == ["lr", "opt"]
    assert [r["id"] for r in data["runs"]] == sweep
    first = data["runs"][0]
    assert first["args"] == {"lr": 0.1, "opt": "sgd"} and first["status"] == "COMPLETED"
    assert first["summaries"]["val_loss:max"] == 1.0
    assert first["summaries"]["val_loss:last"] == pytest.approx(math.exp(-9.99))
    curve = data["curves"][str(sweep[0])]["val_loss"]
    assert 90 <= len(curve) <= 101  # evenly spaced rows, and the last one
    assert curve[0] == [0, 1.0] and curve[-1][0] == 999
    steps = [p[0] for p in curve]
    assert steps == sorted(steps) and len({b - a for a, b in itertools.pairwise(steps)}) <= 2


def test_report_errors(client: Client, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "nope", *cli_options(client), "-o", str(tmp_path / "r.html")]) == 1
    assert "experiment 'nope' does not exist" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()
    with pytest.raises(NotFound):
        report_data(client, 12345)
    exp = Experiment(client, name="empty")  # no runs, no metrics: still a page
    assert report_data(client, exp.id, points=10)["runs"] == []
    with pytest.raises(InvalidValue, match="points must be an integer of at least 2"):
        report_data(client, exp.id, points=1)


def _browse(page: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        chromium(),
        *_CHROMIUM_FLAGS,
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
        "--window-size=1000,1400",
        *args,
        page.as_uri(),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


def test_the_report_in_a_real_browser(client: Client, sweep: list[int], tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    assert main(["report", str(client.query("SELECT id FROM experiments")[0][0]),
                 *cli_options(client), "-o", str(out)]) == 0  # fmt: skip
    dom = _browse(out, tmp_path, "--dump-dom")
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []  # no error, no warning, nothing logged
    assert dom.stdout.count("<tr") == 1 + 6  # the header and every run
    assert dom.stdout.count('class="selected"') == 5  # the five best runs, drawn
    assert dom.stdout.count('stroke-width="1.5"') == 5  # their learning curves
    assert dom.stdout.count('stroke-opacity="0.7"') == 6  # every run in parallel coordinates
    shot = tmp_path / "shot.png"
    _browse(out, tmp_path, f"--screenshot={shot}")
    image = pytest.importorskip("matplotlib.image", reason="the test extra has matplotlib")
    pixels = image.imread(str(shot))[:, :, :3]
    assert pixels.shape[:2] == (1400, 1000)
    colored = (pixels.max(axis=2) - pixels.min(axis=2)) > 0.2  # curves and lines, not gray
    assert colored.mean() > 0.002, "the screenshot shows no curves"
    assert (pixels < 0.5).mean() > 0.005, "the screenshot shows no text"


def test_the_browser_check_would_see_a_broken_page(tmp_path: Path) -> None:
    """The console check above is worth something: a page with an error shows in it."""
    page = tmp_path / "broken.html"
    page.write_text("<html><body><script>undefinedFunction();</script></body></html>")
    result = _browse(page, tmp_path, "--dump-dom")
    assert any("Uncaught ReferenceError" in line for line in result.stderr.splitlines())


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
    found = re.search(r'<script type="application/json" id="data">(.*?)</script>', text, re.S)
    assert found
    payload = found[1]
    assert not set("<>&\u2028\u2029") & set(payload)
    assert payload.isascii()
    assert json.loads(payload) == report_data(client, _HOSTILE)  # read back exactly
    assert f"<title>{html.escape(_HOSTILE)} - sqltrack report</title>" in text
    assert text.count("<script") == 2 and text.count("</script>") == 2  # the page's own
    assert json.loads(_embedded_json({"<k>": "\u2028&"})) == {"<k>": "\u2028&"}


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
    client: Client, hostile: list[int], tmp_path: Path
) -> None:
    out = tmp_path / "report.html"
    assert main(["report", _HOSTILE, *cli_options(client), "-o", str(out)]) == 0
    dom = _browse(out, tmp_path, "--dump-dom")
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []
    body = dom.stdout[dom.stdout.index("<body") : dom.stdout.index('<script type="application')]
    assert body.count("<tr") == 1 + 2  # the header and both runs
    assert body.count('class="selected"') == 2 and body.count('stroke-width="1.5"') == 2
    assert body.count('stroke-opacity="0.7"') == 2  # parallel coordinates, arg axes
    assert "<img" not in dom.stdout and "<b>" not in dom.stdout and "<b " not in dom.stdout
    for payload in _PAYLOADS:  # as text: the title, tags, headers, cells and SVG labels
        shown = html.escape(payload, quote=False)
        assert body.count(shown) >= 2 + 2 + 2, payload
    assert f'<h1 id="title">{html.escape(_HOSTILE, quote=False)}</h1>' in body
