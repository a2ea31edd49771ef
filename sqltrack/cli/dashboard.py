"""``sqltrack ui``: the live dashboard, served until Ctrl-C (needs ``sqltrack[ui]``)."""

from __future__ import annotations

import argparse
from typing import Any

from .._db.client import Client
from ..errors import ConfigError


def register(commands: Any, connection: Any) -> None:
    cmd = commands.add_parser(
        "ui",
        parents=[connection],
        conflict_handler="resolve",  # --host is the address to bind; the database's is -a
        help="serve a live dashboard of the database (needs sqltrack[ui])",
        description="A web page of experiments, runs, curves (live, while runs train), "
        "comparisons and each run's details, and the JSON API it reads (docs/ui.md). "
        "Read-only; it reads with this client's credentials. It binds 127.0.0.1 unless "
        "told otherwise: a --host reachable from elsewhere serves everything this client "
        "may read to whoever reaches it. Needs: pip install 'sqltrack[ui]'.",
    )
    cmd.add_argument("experiment", nargs="?", metavar="EXPERIMENT", help="the one to open on")
    cmd.add_argument(
        "--host",
        dest="bind",
        default="127.0.0.1",
        help="the address to bind (default 127.0.0.1; the database's host here is -a)",
    )
    cmd.add_argument(
        "--port",
        dest="bind_port",
        type=int,
        default=8000,
        help="the port to listen on (default 8000; the database's port here is -p)",
    )
    cmd.set_defaults(handler=_ui)


def _ui(client: Client, args: argparse.Namespace) -> int:
    if not 0 < args.bind_port < 65536:
        raise ConfigError(f"--port must be from 1 to 65535, got {args.bind_port}")
    try:
        from ..ui import serve
    except ImportError as e:
        raise ConfigError(
            f"sqltrack ui needs its extra: pip install 'sqltrack[ui]' ({e})"
        ) from None
    serve(client, host=args.bind, port=args.bind_port, experiment=args.experiment)
    return 0
