"""Learning curves as an image: ``sqltrack plot`` (needs ``sqltrack[plot]``: matplotlib).

matplotlib is imported when a curve is drawn, never with ``import sqltrack``.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .._db.client import Client
from .._write.rows import check_id
from ..errors import ConfigError, InvalidValue
from .fetch import read_metrics

_X = ("step", "progress")
_INFO = (  # {ids}: the engine's "runs.id is one of :ids"
    "SELECT runs.id, experiments.name, runs.args FROM runs "
    "JOIN experiments ON experiments.id = runs.experiment_id WHERE {ids}"
)
_STYLES = ("-", "--", ":", "-.")  # after the ten colours, the next line style


def metric_names(metric: str | Sequence[str]) -> list[str]:
    """``"a,b"``, ``["a", "b,c"]``: the metric names, in order, each once."""
    items = [metric] if isinstance(metric, str) else list(metric)
    if not all(isinstance(m, str) for m in items):
        raise InvalidValue("metric must be a name, names separated by commas, or a list")
    names = [n.strip() for m in items for n in m.split(",") if n.strip()]
    if not names:
        raise InvalidValue("give at least one metric to plot")
    return list(dict.fromkeys(names))


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= 24 else text[:23] + "…"


def curve_labels(args: Mapping[int, Mapping[str, Any]]) -> dict[int, str]:
    """A legend label per run: the arguments whose values differ between the runs
    (``lr=0.1, seed=2``), or ``run <id>`` when none does; the run id is added to a label
    that two runs would share."""
    names = sorted({k for a in args.values() for k in a})
    differ = [
        k for k in names if len({json.dumps(a.get(k), sort_keys=True) for a in args.values()}) > 1
    ]
    labels = {
        run: ", ".join(f"{k}={_text(a[k])}" for k in differ if k in a) or f"run {run}"
        for run, a in args.items()
    }
    shared = [label for label in labels.values() if list(labels.values()).count(label) > 1]
    return {r: f"{v} (run {r})" if v in shared and v != f"run {r}" else v
            for r, v in labels.items()}  # fmt: skip


def plot_curves(
    client: Client,
    run_ids: Sequence[int],
    metric: str | Sequence[str],
    path: str | os.PathLike[str],
    x: str = "step",
    log_x: bool = False,
    log_y: bool = False,
) -> int:
    """Draw each metric against ``x`` (``step`` or ``progress``) for each run into an
    image file: one panel per metric (``metric``: a name, names separated by commas, or
    a list), stacked on a shared x axis; one line per run, of the same colour in every
    panel, labelled by the arguments that differ between the runs (:func:`curve_labels`);
    titled by the experiments and metrics. The file's suffix picks the format: any that
    matplotlib writes (``.png``, ``.svg``, ``.pdf`` …). ``log_x``, ``log_y``: logarithmic
    axes (values <= 0 are left out).

    :return: how many points were drawn, of all metrics
    :raises ConfigError: matplotlib is missing (``pip install 'sqltrack[plot]'``)
    :raises InvalidValue: an unknown metric, x axis or image format; :class:`NotFound`:
        a missing run
    """
    metrics = metric_names(metric)
    if x not in _X:
        raise InvalidValue(f"x must be one of {', '.join(_X)} (no time is stored per step)")
    ids = list(dict.fromkeys(check_id(i, "run") for i in run_ids))
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, no display needed
        from matplotlib import pyplot
    except ImportError:
        raise ConfigError("drawing curves needs matplotlib: pip install 'sqltrack[plot]'") from None
    names, rows = read_metrics(client, ids, metrics)
    engine = client.engine
    info = client.query(
        _INFO.format(ids=engine.in_array("runs.id", "ids")), {"ids": engine.adapt_array(ids)}
    )
    experiments = {int(r[0]): str(r[1]) for r in info}
    labels = curve_labels({int(r[0]): engine.python_value(r[2], "json") or {} for r in info})
    size = (8, 2 + 3 * len(metrics))
    figure, panels = pyplot.subplots(
        len(metrics), 1, sharex=True, squeeze=False, figsize=size, layout="constrained"
    )
    points = 0
    try:
        _check_format(path, figure.canvas.get_supported_filetypes())
        axis = names.index(x)
        by_run: dict[int, list[Any]] = {}
        for row in rows:
            by_run.setdefault(row[0], []).append(row)
        for ax, name in zip(panels[:, 0], metrics, strict=True):
            column = names.index(name)
            for i, run_id in enumerate(ids):
                curve = [
                    (r[axis], r[column]) for r in by_run.get(run_id, ()) if r[column] is not None
                ]
                points += len(curve)
                ax.plot(
                    [p[0] for p in curve],
                    [p[1] for p in curve],
                    color=f"C{i % 10}",
                    linestyle=_STYLES[i // 10 % len(_STYLES)],
                    marker="o" if len(curve) < 50 else None,  # a few points: show each one
                    label=labels[run_id],
                )
            ax.set_ylabel(name)
            ax.set_xscale("log" if log_x else "linear")
            ax.set_yscale("log" if log_y else "linear")
        panels[-1, 0].set_xlabel(x)
        panels[0, 0].legend(fontsize="small")
        title = ", ".join(dict.fromkeys(experiments[i] for i in ids))
        figure.suptitle(f"{title}: {', '.join(metrics)}")
        with warnings.catch_warnings():  # a log axis without a positive value: empty
            warnings.simplefilter("ignore")
            figure.savefig(path)
    finally:
        pyplot.close(figure)
    return points


def _check_format(path: str | os.PathLike[str], formats: Mapping[str, str]) -> None:
    """Raise :class:`InvalidValue` unless the file's suffix names a format of ``formats``
    (matplotlib would add ``.png`` to a name without one, or refuse it with a traceback)."""
    suffix = Path(path).suffix[1:].lower()
    if suffix not in formats:
        known = ", ".join(f".{f}" for f in sorted(formats))
        what = f"unknown image format {suffix!r}" if suffix else "no image format (no suffix)"
        raise InvalidValue(f"{os.fspath(path)}: {what}; matplotlib writes {known}")
