"""Learning curves as an image: ``sqltrack plot`` (needs ``sqltrack[plot]``: matplotlib).

matplotlib is imported when a curve is drawn, never with ``import sqltrack``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from .client import Client
from .errors import ConfigError, InvalidValue
from .read import read_metrics

__all__ = ["plot_curves"]

_X = ("step", "progress")


def plot_curves(
    client: Client,
    run_ids: Sequence[int],
    metric: str,
    path: str | os.PathLike[str],
    x: str = "step",
) -> int:
    """Draw ``metric`` against ``x`` (``step`` or ``progress``) for each run, one line per
    run, into an image file (its suffix picks the format: ``.png``, ``.svg``, ``.pdf``).

    :return: how many points were drawn
    :raises ConfigError: matplotlib is missing (``pip install 'sqltrack[plot]'``)
    :raises InvalidValue: an unknown metric or x axis; :class:`NotFound`: a missing run
    """
    if x not in _X:
        raise InvalidValue(f"x must be one of {', '.join(_X)} (no time is stored per step)")
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, no display needed
        from matplotlib import pyplot
    except ImportError:
        raise ConfigError("drawing curves needs matplotlib: pip install 'sqltrack[plot]'") from None
    names, rows = read_metrics(client, list(run_ids), [metric])
    column, axis = names.index(metric), names.index(x)
    figure, ax = pyplot.subplots(figsize=(8, 5))
    points = 0
    try:
        for run_id in dict.fromkeys(run_ids):
            curve = [(r[axis], r[column]) for r in rows if r[0] == run_id and r[column] is not None]
            points += len(curve)
            marker = "o" if len(curve) < 50 else None  # a few points: show each one
            xs, ys = [p[0] for p in curve], [p[1] for p in curve]
            ax.plot(xs, ys, marker=marker, label=f"run {run_id}")
        ax.set_xlabel(x)
        ax.set_ylabel(metric)
        ax.legend()
        figure.savefig(path)
    finally:
        pyplot.close(figure)
    return points
