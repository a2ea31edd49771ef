"""An experiment's report: one self-contained HTML page (``sqltrack report``).

The page (``report_page.html``, plain JavaScript and SVG, no library) gets its data as
JSON inside the file: the runs with their args and summaries, and each run's curves
with at most ``points`` evenly spaced rows per run. It makes no network request, so it
opens from a file anywhere (after ``scp``, from an e-mail).
"""

from __future__ import annotations

import html
import json
import os
import re
from pathlib import Path
from typing import Any

from .._base.files import write_private
from .._db.client import Client, operation
from .._db.engines.base import quote_identifier
from .._write.metrics import known_columns
from .._write.points import available as has_narrow_storage
from .._write.rows import check_id, deleted_condition
from .._write.summaries import check_available
from ..errors import InvalidValue, NotFound
from .dashboard import plain
from .search import runs_dataframe_rows

_PAGE = Path(__file__).with_name("report_page.html")
# {visible}: sqltrack's own condition leaving deleted runs out
_METRICS = (
    "SELECT DISTINCT s.metric FROM run_summaries s JOIN runs ON runs.id = s.run_id "
    "JOIN experiments ON experiments.id = runs.experiment_id "
    "WHERE runs.experiment_id = :e AND {visible} ORDER BY s.metric"
)
# {columns} are quoted, checked metric columns; values are parameters
_CURVES = """
SELECT run_id, step, {columns} FROM (
    SELECT m.*, row_number() OVER (PARTITION BY m.run_id ORDER BY m.step, m.progress) AS rn,
        count(*) OVER (PARTITION BY m.run_id) AS n
    FROM metrics m JOIN runs ON runs.id = m.run_id
    JOIN experiments ON experiments.id = runs.experiment_id
    WHERE runs.experiment_id = :e AND {visible}
) sampled
WHERE (rn - 1) % ((n + :points - 1) / :points) = 0 OR rn = n
ORDER BY run_id, step, progress
"""

# The same of the metrics in the narrow storage (schema v010), per run and metric;
# {names}: the engine's "name is one of :names" condition
_NARROW_CURVES = """
SELECT run_id, name, step, value FROM (
    SELECT p.run_id, mn.name, p.step, p.progress, p.value,
        row_number() OVER (PARTITION BY p.run_id, p.name_id ORDER BY p.step, p.progress) AS rn,
        count(*) OVER (PARTITION BY p.run_id, p.name_id) AS total
    FROM metric_points p JOIN metric_names mn ON mn.id = p.name_id
    JOIN runs ON runs.id = p.run_id JOIN experiments ON experiments.id = runs.experiment_id
    WHERE runs.experiment_id = :e AND {visible} AND {names}
        AND p.value IS NOT NULL AND (p.kind IS NULL OR p.kind = 'int')
) sampled
WHERE (rn - 1) % ((total + :points - 1) / :points) = 0 OR rn = total
ORDER BY run_id, name, step, progress
"""


def _experiment_id(client: Client, experiment: int | str) -> tuple[int, str]:
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
    """What the report shows, as plain JSON data: ``experiment``, ``metrics``, ``args``,
    ``runs`` (one object per run: fields, ``args``, ``summaries``) and ``curves``
    (``{run id: {metric: [[step, value], …]}}``, at most ``points`` rows per run).

    :raises NotFound: no such experiment
    :raises SchemaError: the database has no summaries (run ``sqltrack setup``)
    """
    if not isinstance(points, int) or isinstance(points, bool) or points < 2:
        raise InvalidValue(f"points must be an integer of at least 2, got {points!r}")
    check_available(client)
    experiment_id, name = _experiment_id(client, experiment)
    visible = deleted_condition(client, False)
    query = _METRICS.format(visible=visible)
    metrics = [str(r[0]) for r in client.query(query, {"e": experiment_id})]
    summaries = [f"{m}:{a}" for m in metrics for a in ("min", "max", "last")]
    labels, rows = runs_dataframe_rows(client, summaries, experiment=experiment_id)
    runs = []
    arg_names = [label[5:] for label in labels if label.startswith("args.")]
    for row in rows:
        record = {label: plain(v) for label, v in zip(labels, row, strict=True)}
        runs.append(
            {
                "id": record["id"],
                "status": record["status"],
                "started": record["time_started"],
                "updated": record["time_updated"],
                "duration": record["duration"],
                "tags": record["tags"],
                "args": {a: record[f"args.{a}"] for a in arg_names},
                "summaries": {s: record[s] for s in summaries if record[s] is not None},
            }
        )
    curves: dict[str, dict[str, list[list[Any]]]] = {}
    with client as conn:
        kinds = known_columns(client, conn, ())
    wide = [m for m in metrics if kinds.get(m) in ("int", "float")]
    params = {"e": experiment_id, "points": points}
    if wide:
        columns = ", ".join(quote_identifier(m) for m in wide)
        query = _CURVES.format(columns=columns, visible=visible)
        for run_id, step, *values in client.query(query, params):
            run_curves = curves.setdefault(str(run_id), {})
            for metric, value in zip(wide, values, strict=True):
                value = plain(value)
                if value is not None and not isinstance(value, str):
                    run_curves.setdefault(metric, []).append([step, float(value)])
    if metrics and has_narrow_storage(client):
        engine = client.engine
        names = engine.in_array("mn.name", "names")
        query = _NARROW_CURVES.format(visible=visible, names=names)
        mixed = set()
        narrow = {**params, "names": engine.adapt_array(metrics)}
        for run_id, metric, step, value in client.query(query, narrow):
            value = plain(value)
            if value is not None:
                curve = curves.setdefault(str(run_id), {}).setdefault(metric, [])
                if curve and metric in kinds:
                    mixed.add((str(run_id), metric))
                curve.append([step, float(value)])
        for run_id, metric in mixed:  # values in both storages: one curve, by step
            curves[run_id][metric].sort(key=lambda point: point[0])
    return {
        "experiment": name,
        "metrics": metrics,
        "args": arg_names,
        "runs": runs,
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

    :param points: at most this many rows per run in the curves (evenly spaced)
    :return: how many runs the report shows
    :raises NotFound: no such experiment
    """
    data = report_data(client, experiment, points)
    title = html.escape(data["experiment"])
    parts = {"{{TITLE}}": title, "{{DATA}}": _embedded_json(data)}
    page = re.sub(r"\{\{(TITLE|DATA)\}\}", lambda m: parts[m[0]], _PAGE.read_text("utf-8"))
    write_private(path, page)
    return len(data["runs"])


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
