"""``sqltrack artifacts``: listing artifacts, verifying that their files are unchanged."""

from __future__ import annotations

import argparse
from typing import Any

from .._db.client import Client
from .._write.artifacts import find_artifacts, verify_artifacts
from .._write.rows import check_runs
from ._common import print_rows

_COLUMNS = ("id", "name", "version", "kind", "run_id", "step", "uri", "size", "sha256")


def register(commands: Any, connection: Any, output: Any) -> None:
    cmd = commands.add_parser(
        "artifacts",
        parents=[connection, output],
        help="list artifacts, or verify that their local files are unchanged",
        description="list (default): the artifacts that match --run, --name and --kind. "
        "verify: hash every local file again and report each one missing or changed "
        "(exit status 1 if any); URLs and artifacts without a checksum are left unchecked.",
    )
    cmd.add_argument("action", nargs="?", choices=["list", "verify"], default="list")
    cmd.add_argument("--run", type=int, metavar="RUN", help="logged by this run")
    cmd.add_argument("--name", help="of this name")
    cmd.add_argument("--kind", help="of this kind (list only)")
    cmd.set_defaults(handler=_artifacts)


def _artifacts(client: Client, args: argparse.Namespace) -> int:
    if args.action == "list":
        found = find_artifacts(client, args.run, args.name, args.kind)
        rows = [tuple(getattr(a, c) for c in _COLUMNS) for a in found]
        if not rows and args.run is not None:  # (artifacts outlive their run's gc)
            check_runs(client, [args.run])
        print_rows(_COLUMNS, rows, args.format)
        return 0
    results = verify_artifacts(client, args.run, args.name)
    if not results and args.run is not None:
        check_runs(client, [args.run])
    problems = [r for r in results if r[1] in ("missing", "changed")]
    shown = [(outcome, a.name, a.version, a.uri) for a, outcome in results if outcome != "ok"]
    print_rows(("outcome", "name", "version", "uri"), shown, args.format)
    if args.format == "table":
        counts = {o: sum(1 for _, x in results if x == o) for o in ("ok", "missing", "changed")}
        print(
            f"{len(results)} artifacts: {counts['ok']} ok, {counts['missing']} missing, "
            f"{counts['changed']} changed, {len(results) - sum(counts.values())} unchecked"
        )
    return 1 if problems else 0
