"""``sqltrack plot`` and ``report``: learning curves into an image, an experiment into
one HTML page."""

from __future__ import annotations

import argparse
from typing import Any

from .._db.client import Client
from .._read.plot import metric_names, plot_curves
from .._read.report import write_report
from ._common import name_or_id, plural


def register(commands: Any, connection: Any) -> None:
    cmd = commands.add_parser(
        "plot",
        parents=[connection],
        help="draw learning curves of runs into an image (needs sqltrack[plot])",
        description="One panel per --metric, one line per RUN against --x, into -o FILE "
        "(its suffix picks the format: .png, .svg, .pdf, or any other matplotlib writes). "
        "Titled by the experiments and metrics; the legend names each run by the args "
        "that differ between the runs. Needs matplotlib: pip install 'sqltrack[plot]'.",
    )
    cmd.add_argument("runs", nargs="+", type=int, metavar="RUN")
    cmd.add_argument(
        "--metric",
        action="append",
        required=True,
        metavar="NAME[,NAME]",
        help="a metric to plot (repeatable, or separated by commas): one panel each",
    )
    cmd.add_argument("--x", choices=["step", "progress"], default="step")
    cmd.add_argument("--log-x", action="store_true", help="a logarithmic x axis")
    cmd.add_argument("--log-y", action="store_true", help="logarithmic y axes")
    cmd.add_argument("-o", "--output", default="curves.png", metavar="FILE")
    cmd.set_defaults(handler=_plot)
    cmd = commands.add_parser(
        "report",
        parents=[connection],
        help="write an experiment's report: one self-contained HTML page",
        description="One HTML file with the runs of EXPERIMENT: sqltrack ui's page with its "
        "data inside (the runs table with args and summaries, charts of the runs you tick "
        "with hover, zoom, smoothing and grouping, the compare view and parallel "
        "coordinates). It needs no network: open it anywhere, e.g. after scp.",
    )
    cmd.add_argument("experiment", metavar="EXPERIMENT", help="name or id")
    cmd.add_argument("-o", "--output", default="report.html", metavar="FILE")
    cmd.add_argument(
        "--points",
        type=int,
        default=500,
        metavar="N",
        help="points per curve at most (3 to 100000; each bucket of steps keeps its "
        "smallest and largest value, as in sqltrack ui; default 500)",
    )
    cmd.set_defaults(handler=_report)


def _plot(client: Client, args: argparse.Namespace) -> int:
    points = plot_curves(client, args.runs, args.metric, args.output, args.x,
                         log_x=args.log_x, log_y=args.log_y)  # fmt: skip
    metrics = ", ".join(metric_names(args.metric))
    print(f"{args.output}: {plural(len(set(args.runs)), 'run')}, {points} points of {metrics}")
    return 0


def _report(client: Client, args: argparse.Namespace) -> int:
    experiment = name_or_id(args.experiment)
    assert experiment is not None
    runs = write_report(client, experiment, args.output, points=args.points)
    print(f"{args.output}: {runs} runs of {args.experiment}")
    return 0
