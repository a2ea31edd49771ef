"""An experiment's report: the dashboard's page as one self-contained file (``sqltrack
report``).

The page is ``sqltrack ui``'s (``page/``: its script, styles and uPlot, inlined), and the
answers of the JSON API that it asks for are JSON inside the file: the runs table with
every run's args, tags and summaries, and each run's curves, downsampled as the
dashboard's (spikes kept, at most ``points`` points a curve). It makes no network
request, so it opens from a file anywhere (after ``scp``, from an e-mail); a strict
Content-Security-Policy in the file lets only its own scripts and styles run.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
from pathlib import Path
from typing import Any

from .._base.files import write_private
from .._db.client import Client, operation
from .._write.rows import check_id
from .._write.summaries import check_available
from ..errors import NotFound
from . import dashboard
from .curves import check_points, run_curves

PAGE = Path(__file__).with_name("page")
#: a report carries the curves of at most this many metric names (the most common)
MAX_METRICS = 10_000
# what the page's head loads from the server, which a report puts inside it instead
_STYLES = ("uPlot.min.css", "ui.css")
_SCRIPTS = ("uPlot.iife.min.js", "ui.js")


def _experiment(client: Client, experiment: int | str) -> tuple[int, str]:
    if isinstance(experiment, str):
        found = client.query("SELECT id, name FROM experiments WHERE name = :e", {"e": experiment})
    else:
        found = client.query(
            "SELECT id, name FROM experiments WHERE id = :e",
            {"e": check_id(experiment, "experiment")},
        )
    if not found:
        raise NotFound(f"experiment {experiment!r} does not exist")
    return int(found[0][0]), str(found[0][1])


@operation
def report_data(client: Client, experiment: int | str, points: int = 500) -> dict[str, Any]:
    """What the report shows, as the dashboard's API would answer it (docs/ui.md):
    ``config``, ``experiments`` (this one), ``metrics`` (its metric names, the most
    common first), ``runs`` (the answer of ``/api/runs``, with every metric's summary)
    and ``curves`` (``{run id: {metric: {"step": [...], "value": [...]}}}``, at most
    ``points`` points each, downsampled as ``/api/runs/{id}/metrics``).

    :raises NotFound: no such experiment
    :raises SchemaError: the database has no summaries (run ``sqltrack setup``)
    """
    points = check_points(points)
    check_available(client)
    experiment_id, name = _experiment(client, experiment)
    metrics = dashboard.metric_names(client, name, limit=MAX_METRICS)
    listed = dashboard.runs(client, name, metrics=metrics)
    del listed["now"]  # (a report does not refresh; the same data gives the same file)
    curves: dict[str, dict[str, dict[str, list[Any]]]] = {}
    for run in listed["runs"]:
        logged = [m for m in metrics if m in run["summaries"]]
        if logged:
            found = run_curves(client, run["id"], logged, points, progress=True)
            curves[str(run["id"])] = {m: c for m, c in found.items() if c["step"]}
    return {
        "config": {"experiment": name, "engine": client.engine.name, "report": True},
        "experiments": [{"id": experiment_id, "name": name, "runs": len(listed["runs"])}],
        "metrics": metrics,
        "runs": listed,
        "curves": curves,
    }


def write_report(
    client: Client, experiment: int | str, path: str | os.PathLike[str], points: int = 500
) -> int:
    """Write the report of ``experiment`` to ``path`` (one HTML file, no network needed).

    Example::

        write_report(client, "sweep", "report.html")

    The page holds run data: a new file is created readable and writable by its owner
    only (mode ``0600``); an existing file is overwritten and keeps the mode it had
    (``chmod`` a new report to share it).

    :param points: at most this many points per curve (3 to 100,000)
    :return: how many runs the report shows
    :raises NotFound: no such experiment
    """
    data = report_data(client, experiment, points)
    write_private(path, report_page(data))
    return len(data["runs"]["runs"])


def report_page(data: dict[str, Any]) -> str:
    """The dashboard's page with its styles, scripts and ``data`` inside, and a policy
    that lets only those run."""
    page = (PAGE / "index.html").read_text("utf-8")
    styles, scripts = [], []
    for name in _STYLES:
        styles.append((PAGE / name).read_text("utf-8"))
        page = _without(page, f'<link rel="stylesheet" href="static/{name}">\n')
    for name in _SCRIPTS:
        script = (PAGE / name).read_text("utf-8")
        if "</script" in script.lower() or "<!--" in script:
            raise RuntimeError(f"{name} would end its <script> element")
        scripts.append(script)
        page = _without(page, f'<script src="static/{name}" defer></script>\n')
    policy = (
        "default-src 'none'; "
        f"script-src {' '.join(_hash(s) for s in scripts)}; "
        f"style-src {' '.join(_hash(s) for s in styles)}; "
        "img-src data:; base-uri 'none'; form-action 'none'"
    )
    title = html.escape(data["config"]["experiment"]) + " - sqltrack report"
    head = f'<meta http-equiv="Content-Security-Policy" content="{policy}">\n' + "".join(
        f"<style>{style}</style>\n" for style in styles
    )
    page = _without(page, "<title>sqltrack</title>\n", f"<title>{title}</title>\n{head}")
    body = f'<script type="application/json" id="sqltrack-data">{_embedded_json(data)}</script>\n'
    body += "".join(f"<script>{script}</script>\n" for script in scripts)
    return _without(page, "</body>", body + "</body>")


def _without(page: str, tag: str, instead: str = "") -> str:
    """``page`` with ``tag`` (there once: the page is ours) replaced."""
    if page.count(tag) != 1:
        raise RuntimeError(f"the dashboard's page has changed: {tag.strip()!r} is not in it once")
    return page.replace(tag, instead)


def _hash(text: str) -> str:
    """The policy's source for an inline element with this text."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


# In a <script> element, "<", ">" and "&" could end it or switch the HTML parser into its
# "script data escaped" states ("<!--<script>" swallows the rest of the page); U+2028 and
# U+2029 end lines in older JavaScript. Outside strings JSON has none of them, and inside
# a string each may be written as a \uXXXX escape.
_SCRIPT_SAFE = str.maketrans({c: f"\\u{ord(c):04x}" for c in "<>&\u2028\u2029"})


def _embedded_json(data: Any) -> str:
    """``data`` as JSON text safe inside ``<script type="application/json">``: ASCII
    only, without ``<``, ``>``, ``&``, U+2028 or U+2029 (written ``\\u003c`` …), which
    ``JSON.parse`` and :func:`json.loads` read back as exactly ``data``."""
    text = json.dumps(data, separators=(",", ":"), allow_nan=False, ensure_ascii=True)
    return text.translate(_SCRIPT_SAFE)
