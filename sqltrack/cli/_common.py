"""What every command shares: the connection and output options, the parser that keeps
help out of a closed pipe, printing rows safely, one-line errors, reading ids and ages."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from .._db.engines import DEFAULT_ENGINE, ENGINE_NAMES
from ..errors import InvalidValue


class Parser(argparse.ArgumentParser):
    """argparse's parser, except that help written into a closed pipe is not silently
    dropped (argparse swallows the OSError): ``main`` ends quietly with the status of a
    closed pipe, as for any other output."""

    def _print_message(self, message: str, file: Any = None) -> None:
        file = file or sys.stderr
        if message and file is not None:
            try:
                file.write(message)
            except BrokenPipeError:
                raise
            except (AttributeError, OSError):
                pass


def connection_options() -> Parser:
    """The options every command that connects takes (``-e``, ``-u``, ``--dbpath`` …)."""
    parent = Parser(add_help=False)
    group = parent.add_argument_group(
        "connection",
        "Options take priority over SQLTRACK_DSN_<PARAM> environment variables, "
        "which take priority over the config file.",
    )
    group.add_argument(
        "-c",
        "--config",
        metavar="PATH",
        help="config file (default: $SQLTRACK_CONFIG_PATH, else ./sqltrack.conf)",
    )
    group.add_argument(
        "-e", "--engine", choices=ENGINE_NAMES, help=f"database engine (default: {DEFAULT_ENGINE})"
    )
    group.add_argument("-u", "--user", help="PostgreSQL user (default: $USER)")
    group.add_argument("-a", "--host", help="PostgreSQL host name, address or socket directory")
    group.add_argument("-p", "--port", help="PostgreSQL port")
    group.add_argument("-d", "--dbname", help="PostgreSQL database (default: the user name)")
    group.add_argument("-s", "--schema", help="PostgreSQL schema (created if missing)")
    group.add_argument("--dbpath", help="SQLite database file (default: sqltrack.db)")
    return parent


#: the options of :func:`connection_options`, as Client parameters
CONNECTION = ("engine", "user", "host", "port", "dbname", "schema", "dbpath")


def output_options() -> Parser:
    """``--format table|csv|json`` of the commands that print rows."""
    parent = Parser(add_help=False)
    parent.add_argument(
        "--format", choices=["table", "csv", "json"], default="table", help="default: table"
    )
    return parent


def filter_options(cmd: argparse.ArgumentParser) -> None:
    """``--experiment``, ``--status``, ``--tag``, ``--arg``: the filters of find_runs."""
    cmd.add_argument("--experiment", metavar="NAME_OR_ID", help="an experiment")
    cmd.add_argument("--status", action="append", help="a status (repeatable)")
    cmd.add_argument("--tag", action="append", help="a tag the run has (repeatable)")
    cmd.add_argument(
        "--arg",
        action="append",
        metavar="NAME=VALUE",
        help="an argument the run was given (repeatable); VALUE is read as JSON if it "
        "can be (--arg lr=0.1, --arg opt=adam)",
    )


def filters(args: argparse.Namespace) -> dict[str, Any]:
    """The find_runs filters of a command's --experiment, --status, --tag and --arg."""
    wanted_args = None
    if args.arg:
        wanted_args = {}
        for item in args.arg:
            name, sep, value = item.partition("=")
            if not sep or not name:
                raise InvalidValue(f"--arg {item!r}: give NAME=VALUE")
            wanted_args[name] = json_or_text(value)
    return {
        "experiment": name_or_id(args.experiment),
        "status": args.status,
        "tags": args.tag,
        "args": wanted_args,
    }


def name_or_id(text: str | None) -> int | str | None:
    """An experiment as the command line gives it: digits are an id, anything else a name."""
    if text is not None and text.isascii() and text.isdigit():
        return int(text)
    return text


def json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(text: str) -> float:
    """``600``, ``90s``, ``10m``, ``2h`` or ``1d`` as seconds."""
    number, unit = (text[:-1], text[-1]) if text[-1:] in _UNITS else (text, "s")
    try:
        value = float(number)
    except ValueError:
        raise InvalidValue(f"{text!r}: give an age like 600, 90s, 10m, 2h or 1d") from None
    return value * _UNITS[unit]


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"


# Characters a terminal acts on, or that make text look other than it is: C0 controls
# (tab and newline too: a cell cannot start a line of its own), DEL, C1 controls (0x9b
# is CSI), the Unicode bidi controls and the line and paragraph separators.
_BIDI = [0x61C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_UNSAFE = [*range(0x20), *range(0x7F, 0xA0), *_BIDI, 0x2028, 0x2029]
_VISIBLE = str.maketrans({c: repr(chr(c))[1:-1] for c in _UNSAFE})


def cell(value: Any, short: bool = False) -> str:
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


def print_rows(columns: Sequence[str], rows: list[tuple[Any, ...]], fmt: str) -> None:
    """Rows as an aligned table, CSV or JSON (a list of objects) on stdout.

    Names and values come from anyone's code, so no control character reaches the
    terminal as such: table and CSV cells show them escaped (see :func:`cell`; CSV
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
    cells = [[cell(v, short=fmt == "table") for v in row] for row in rows]
    columns = [cell(c) for c in columns]
    if fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(cells)
        return
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    for line in [list(columns), *cells]:
        print("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())


def error(exc: BaseException) -> int:
    """Print an error as one line (drivers add hints and context lines), control
    characters escaped (it may quote a name); return 1."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    print(f"sqltrack: error: {cell(line)}", file=sys.stderr)
    return 1
