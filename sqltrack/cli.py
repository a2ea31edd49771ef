"""The ``sqltrack`` command line interface."""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from .artifacts import find_artifacts, verify_artifacts
from .cli_parser import build_parser
from .client import Client
from .compare import check_runs, compare_runs
from .engines import first_line
from .errors import InvalidValue, SQLTrackError
from .lifecycle import (
    delete_experiments,
    delete_runs,
    gc_deleted,
    restore_experiments,
    restore_runs,
)
from .merge import merge_database
from .plot import metric_names, plot_curves
from .read import stale_runs
from .reconcile import Reconciled, reconcile
from .report import write_report
from .schema import setup
from .search import (
    OVERVIEW_COLUMNS,
    SUMMARY_COLUMNS,
    check_experiment,
    metric_summary,
    run_overview,
    run_table,
    summary_table,
)
from .spool import is_spool, spool_dir, spool_files, sync_spools
from .summaries import refresh_summaries

__all__ = ["main"]


#: the exit status when the reader of the output went away: 128 + SIGPIPE, what a shell
#: reports for a tool that SIGPIPE ended (``yes | head -1``). Not 0: not every row was
#: written, and ``set -o pipefail`` treats sqltrack as it treats any other tool.
CLOSED_PIPE = 141


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 on success, 1 on errors, 2 on bad
    usage, :data:`CLOSED_PIPE` when the output's reader went away: quietly, as Unix
    tools do, ``sqltrack runs | head -3``)."""
    try:
        try:
            return _main(argv)
        finally:
            sys.stdout.flush()  # what is still buffered meets a closed pipe here, not at exit
    except BrokenPipeError:
        try:  # the interpreter flushes stdout again at exit: let that go nowhere
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError):  # (stdout is no file: a test's capture)
            pass
        return CLOSED_PIPE


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    params = {
        k: getattr(args, k)
        for k in ("engine", "user", "host", "port", "dbname", "schema", "dbpath")
    }
    try:
        client = Client(args.config, **params)
    except SQLTrackError as e:
        return _error(e)
    handled: tuple[type[BaseException], ...] = (
        SQLTrackError,
        OSError,
        *client.engine.driver_errors,
    )
    try:
        if args.command == "sync":
            return _sync(client, args.files, args.all, args.trust_others)
        if args.command == "runs":
            return _runs(client, args)
        if args.command == "stale":
            return _stale(client, args)
        if args.command == "show":
            fields = compare_runs(client, args.run, args.run, everything=True, summaries=False)
            deleted = dict(row[:2] for row in fields)["deleted"]
            if deleted is not None and args.format == "table":
                print(f"run {args.run} was deleted at {_cell(deleted)} (see sqltrack restore)")
            _print_rows(["field", "value"], [row[:2] for row in fields], args.format)
            if args.format == "table":
                print()
            _print_rows(SUMMARY_COLUMNS, metric_summary(client, args.run), args.format)
            return 0
        if args.command == "summarize":
            experiment = int(args.experiment) if args.experiment.isdigit() else args.experiment
            keys = [k for k in args.group_by.split(",") if k]
            summary = summary_table(client, experiment, args.metric, keys, args.over, args.rank_by)
            _print_rows(*summary, args.format)
            if args.format == "table":
                stat = "the best run's" if args.rank_by == "best" else f"the {args.rank_by} of"
                order = "highest" if args.metric.endswith(":max") else "lowest"
                print(f"ranked by {stat} {args.metric} per group, {order} first (see --rank-by)")
            return 0
        if args.command == "plot":
            points = plot_curves(client, args.runs, args.metric, args.output, args.x,
                                 log_x=args.log_x, log_y=args.log_y)  # fmt: skip
            runs, metrics = len(set(args.runs)), ", ".join(metric_names(args.metric))
            print(f"{args.output}: {runs} run{'s' * (runs != 1)}, {points} points of {metrics}")
            return 0
        if args.command == "refresh":
            experiment = args.experiment
            if experiment is not None and experiment.isdigit():
                experiment = int(experiment)
            if experiment is None and args.runs:  # (refresh_summaries refuses both)
                check_runs(client, args.runs)
            elif experiment is not None and not args.runs:
                check_experiment(client, experiment)
            done = refresh_summaries(client, *args.runs, experiment=experiment)
            print(f"refreshed the summaries of {done} run{'s' * (done != 1)}")
            return 0
        if args.command == "psql":
            return _shell(client, args.shell_args)
        if args.command == "report":
            experiment = int(args.experiment) if args.experiment.isdigit() else args.experiment
            runs = write_report(client, experiment, args.output, points=args.points)
            print(f"{args.output}: {runs} runs of {args.experiment}")
            return 0
        if args.command in ("delete", "restore"):
            if not args.runs and not any(v is not None for v in _filters(args).values()):
                raise InvalidValue("give RUN ids or filters (--experiment, --status, --tag, --arg)")
            act = delete_runs if args.command == "delete" else restore_runs
            ids = act(client, args.runs, args.dry_run, **_filters(args))
            verb = {"delete": "deleted", "restore": "restored"}[args.command]
            print(f"{'would be ' if args.dry_run else ''}{verb}: {len(ids)} runs")
            for run_id in ids:
                print(run_id)
            return 0
        if args.command in ("delete-experiment", "restore-experiment"):
            restore = args.command == "restore-experiment"
            given = [int(e) if e.isdigit() else e for e in args.experiments]
            change = restore_experiments if restore else delete_experiments
            ids = change(client, given, args.dry_run)
            verb = "restored" if restore else "deleted"
            print(f"{'would be ' if args.dry_run else ''}{verb}: {len(ids)} experiments")
            for experiment_id in ids:
                print(experiment_id)
            return 0
        if args.command == "gc":
            ids = gc_deleted(client, _seconds(args.deleted_before), args.batch, args.dry_run)
            print(f"{'would remove' if args.dry_run else 'removed'}: {len(ids)} runs")
            for run_id in ids:
                print(run_id)
            return 0
        if args.command == "reconcile":
            if args.experiment is not None:
                check_experiment(client, args.experiment)
            found = reconcile(client, args.experiment, _seconds(args.older_than), args.dry_run)
            _print_rows(Reconciled._fields, [tuple(r) for r in found], args.format)
            if args.format == "table":
                verb = "would change" if args.dry_run else "changed"
                print(f"{verb} {len(found)} run{'s' * (len(found) != 1)}")
            return 0
        if args.command == "artifacts":
            return _artifacts(client, args)
        if args.command == "compare":
            rows = compare_runs(client, *args.runs, everything=args.all)
            _print_rows(["field", *(f"run {r}" for r in args.runs)], rows, args.format)
            return 0
        print(f"database: {client.engine.label} {client.engine.describe()}", flush=True)
        results = setup(
            client,
            *args.scripts,
            report=lambda r: print(
                f"{'applied' if r.applied else 'already applied'}: {r.name}", flush=True
            ),
        )
        if not any(r.applied for r in results):
            print("nothing to do: the schema is up to date", flush=True)
    except BrokenPipeError:
        raise  # (an OSError, but no error: see main)
    except handled as e:
        return _error(e)
    return 0


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _seconds(text: str) -> float:
    """``600``, ``90s``, ``10m``, ``2h`` or ``1d`` as seconds."""
    number, unit = (text[:-1], text[-1]) if text[-1:] in _UNITS else (text, "s")
    try:
        value = float(number)
    except ValueError:
        raise InvalidValue(f"{text!r}: give an age like 600, 90s, 10m, 2h or 1d") from None
    return value * _UNITS[unit]


_ARTIFACT_COLUMNS = ("id", "name", "version", "kind", "run_id", "step", "uri", "size", "sha256")


def _artifacts(client: Client, args: argparse.Namespace) -> int:
    if args.action == "list":
        found = find_artifacts(client, args.run, args.name, args.kind)
        rows = [tuple(getattr(a, c) for c in _ARTIFACT_COLUMNS) for a in found]
        if not rows and args.run is not None:  # (artifacts outlive their run's gc)
            check_runs(client, [args.run])
        _print_rows(_ARTIFACT_COLUMNS, rows, args.format)
        return 0
    results = verify_artifacts(client, args.run, args.name)
    if not results and args.run is not None:
        check_runs(client, [args.run])
    columns = ("outcome", "name", "version", "uri")
    problems = [r for r in results if r[1] in ("missing", "changed")]
    shown = [(outcome, a.name, a.version, a.uri) for a, outcome in results if outcome != "ok"]
    _print_rows(columns, shown, args.format)
    if args.format == "table":
        counts = {o: sum(1 for _, x in results if x == o) for o in ("ok", "missing", "changed")}
        print(
            f"{len(results)} artifacts: {counts['ok']} ok, {counts['missing']} missing, "
            f"{counts['changed']} changed, {len(results) - sum(counts.values())} unchecked"
        )
    return 1 if problems else 0


def _shell(client: Client, extra: list[str]) -> int:
    argv, env = client.engine.shell()
    argv += extra[1:] if extra[:1] == ["--"] else extra
    try:
        return subprocess.run(argv, env={**os.environ, **env}, check=False).returncode
    except FileNotFoundError:
        raise SQLTrackError(f"{argv[0]} is not installed (or not on PATH)") from None


def _sync(client: Client, files: list[str], every: bool, trust_others: bool) -> int:
    databases = [f for f in files if not is_spool(f)]
    if files:
        spools: list[Any] | None = [f for f in files if f not in databases]
    else:
        spools = spool_files() if every else None
    results = sync_spools(client, spools, trust_others=trust_others)
    failed = False
    for result in results:
        bad = result.outcome in ("failed", "refused")
        failed = failed or bad
        print(result, file=sys.stderr if bad else sys.stdout, flush=True)
    for database in databases:
        try:
            merged = merge_database(client, database)
        except Exception as e:
            failed = True
            print(f"failed: {database} ({first_line(e)})", file=sys.stderr, flush=True)
            continue
        print(merged, flush=True)
    if not files and not results:
        print(f"nothing to push: no spool files for this database in {spool_dir()}")
    return 1 if failed else 0


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    """The find_runs filters of a command's --experiment, --status, --tag and --arg."""
    experiment = args.experiment
    if experiment is not None and experiment.isdigit():
        experiment = int(experiment)
    wanted_args = None
    if args.arg:
        wanted_args = {}
        for item in args.arg:
            name, sep, value = item.partition("=")
            if not sep or not name:
                raise InvalidValue(f"--arg {item!r}: give NAME=VALUE")
            wanted_args[name] = _json_or_text(value)
    return {"experiment": experiment, "status": args.status, "tags": args.tag, "args": wanted_args}


def _runs(client: Client, args: argparse.Namespace) -> int:
    """The runs with their args that differ and their summaries; a table leaves out the
    created and updated times (CSV and JSON have them), shows the duration (as 1h02m)
    after the start, and the tags after it."""
    metrics = None if args.metric is None else [m for i in args.metric for m in i.split(",") if m]
    columns, rows, left_out = run_table(
        client, metrics, args.sort, args.reverse, deleted=args.deleted, **_filters(args)
    )
    if args.format == "table":
        at, first = columns.index("duration"), ["id", "experiment", "status", "started"]
        keep = [*map(columns.index, first), at, columns.index("tags"), *range(at + 1, len(columns))]
        rows = [tuple(_duration(r[i]) if i == at else r[i] for i in keep) for r in rows]
        columns = [columns[i] for i in keep]
    _print_rows(columns, rows, args.format)
    if left_out and args.format == "table":
        more = ", ".join(left_out[:5]) + (", …" if len(left_out) > 5 else "")
        print(f"(and {len(left_out)} more metrics: {more}; choose with --metric NAME:AGG)")
    return 0


def _duration(seconds: float | None) -> str | None:
    """Seconds as a table shows them: 0.42s, 12.5s, 4m05s, 2h03m, 3d04h."""
    if seconds is None or seconds < 60:
        return None if seconds is None else f"{seconds:.{2 if seconds < 10 else 1}f}s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d{hours:02d}h"
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _stale(client: Client, args: argparse.Namespace) -> int:
    if args.experiment is not None:
        check_experiment(client, args.experiment)
    ids = stale_runs(client, args.older_than, args.experiment)
    engine = client.engine
    rows = []
    if ids:
        where = (engine.in_array("runs.id", "ids"), {"ids": engine.adapt_array(ids)})
        rows = run_overview(client, where=where)
    _print_rows(OVERVIEW_COLUMNS, rows, args.format)
    return 0


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


# Characters a terminal acts on, or that make text look other than it is: C0 controls
# (tab and newline too: a cell cannot start a line of its own), DEL, C1 controls (0x9b
# is CSI), the Unicode bidi controls and the line and paragraph separators.
_BIDI = [0x61C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_UNSAFE = [*range(0x20), *range(0x7F, 0xA0), *_BIDI, 0x2028, 0x2029]
_VISIBLE = str.maketrans({c: repr(chr(c))[1:-1] for c in _UNSAFE})


def _cell(value: Any, short: bool = False) -> str:
    """A value as the text of a table or CSV cell, control characters made visible as
    Python writes them in a string (``\\x1b``, ``\\n``, ``\\u202e``)."""
    if short and isinstance(value, float):
        text = f"{value:.6g}"  # a table is for reading; CSV and JSON keep every digit
    elif isinstance(value, datetime):
        text = value.isoformat(sep=" ", timespec="seconds")
    elif isinstance(value, list):
        text = ",".join(map(str, value))
    else:
        text = "" if value is None else str(value)
    return text.translate(_VISIBLE)


def _print_rows(columns: Sequence[str], rows: list[tuple[Any, ...]], fmt: str) -> None:
    """Rows as an aligned table, CSV or JSON (a list of objects) on stdout.

    Names and values come from anyone's code, so no control character reaches the
    terminal as such: table and CSV cells show them escaped (see :func:`_cell`; CSV
    cells are that visible text, not the original), JSON writes them as ``\\u001b``
    escapes (as it does every non-ASCII character), which JSON parsers read back.
    """
    if fmt == "json":
        records = [
            {
                c: v.isoformat() if isinstance(v, datetime) else v
                for c, v in zip(columns, row, strict=True)
            }
            for row in rows
        ]
        print(json.dumps(records, indent=1, ensure_ascii=True))
        return
    cells = [[_cell(v, short=fmt == "table") for v in row] for row in rows]
    columns = [_cell(c) for c in columns]
    if fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(cells)
        return
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    for line in [list(columns), *cells]:
        print("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())


def _error(exc: BaseException) -> int:
    """Print an error as one line (drivers add hints and context lines), control
    characters escaped (it may quote a name); return 1."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    print(f"sqltrack: error: {_cell(line)}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
