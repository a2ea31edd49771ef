"""The dashboard's web app: the page, its static files and the JSON API (docs/ui.md).

Safe by default: every route answers GET only (nothing writes); every response carries a
strict Content-Security-Policy (scripts, styles and requests from this origin only, no
inline script) and ``nosniff``; a server bound to a loopback address answers only
requests addressed to it by name (a web page elsewhere cannot rebind its own name to
127.0.0.1 and read the API). The database is read with the client's own credentials, so
a lab's roles apply (docs/lab.md). Errors are one line of JSON: ``{"error": "..."}``
with 400 (bad input), 403, 404 or 503 (the database did not answer).
"""

from __future__ import annotations

import contextlib
import queue
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._db.client import Client
from .._read import curves, dashboard
from ..errors import InvalidValue, NotFound, PermissionDenied, SQLTrackError

#: the page, its script, styles and uPlot: the read side's, which the report embeds too
STATIC = Path(dashboard.__file__).with_name("page")
#: what every response may load: only this origin's scripts, styles, images and API
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = [
    (b"content-security-policy", POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
#: points per curve unless asked (``?points=N``)
DEFAULT_POINTS = 1000
_LOOPBACK = ("127.0.0.1", "localhost")


class _Pool:
    """At most ``size`` clients of the same database, each used by one request at a time
    (a request's thread waits for one when all are busy). A request reads in one block
    of its client: one connection and one transaction, opened and closed in the
    request's own thread (SQLite's connections belong to the thread that made them);
    each client keeps what it learned of the schema from one request to the next."""

    def __init__(self, client: Client, size: int) -> None:
        self._free: queue.LifoQueue[Client] = queue.LifoQueue()
        for _ in range(size):
            self._free.put(Client.of(**client.engine.params))

    @contextlib.contextmanager
    def client(self) -> Iterator[Client]:
        pooled = self._free.get()
        try:
            with pooled:
                yield pooled
        finally:
            self._free.put(pooled)


class _Secured:
    """ASGI middleware: the security headers on every HTTP response; no caching of the API."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = scope["path"].startswith("/api/")

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", [])) + _HEADERS
                if api:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_secured)


class _JSON(JSONResponse):
    """JSON by orjson: a runs list of 10,000 runs (5 MB) in 20 ms instead of 140 (NaN
    would be null; the read side sends none)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def _error(status: int, problem: BaseException | str) -> JSONResponse:
    return _JSON({"error": str(problem).split("\n", 1)[0]}, status_code=status)


def _listed(request: Request, name: str) -> list[str]:
    """A query parameter given as ``a,b`` or repeated, as a list (empty items left out)."""
    return [
        item for value in request.query_params.getlist(name) for item in value.split(",") if item
    ]


def _integer(request: Request, name: str) -> int | None:
    """A query parameter that is an integer, if given."""
    text = request.query_params.get(name)
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise InvalidValue(f"{name} must be an integer, got {text!r}") from None


def create_app(
    client: Client,
    experiment: str | None = None,
    connections: int = 4,
    hosts: list[str] | None = None,
) -> Starlette:
    """The dashboard as an ASGI app reading the database of ``client``.

    :param experiment: the experiment the page opens on (default: the first by name)
    :param connections: at most this many requests read the database at once (each
        with a connection of its own while it reads)
    :param hosts: answer only requests addressed to these host names (400 for others);
        None: any
    """
    if not isinstance(client, Client):
        raise InvalidValue(f"client must be a sqltrack.Client, not {type(client).__name__}")
    if experiment is not None and not isinstance(experiment, str):
        raise InvalidValue(f"experiment must be a name, got {experiment!r}")
    if not isinstance(connections, int) or isinstance(connections, bool) or connections < 1:
        raise InvalidValue(f"connections must be a positive integer, got {connections!r}")
    pool = _Pool(client, connections)

    def api(read: Callable[[Client, Request], Any]) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            try:
                with pool.client() as pooled:
                    return _JSON(read(pooled, request))
            except InvalidValue as e:
                return _error(400, e)
            except PermissionDenied as e:
                return _error(403, e)
            except NotFound as e:
                return _error(404, e)
            except SQLTrackError as e:
                return _error(503, e)

        return endpoint

    def config(_: Client, request: Request) -> Any:
        return {"experiment": experiment, "engine": client.engine.name}

    def experiments(db: Client, request: Request) -> Any:
        return dashboard.experiments(db)

    def runs(db: Client, request: Request) -> Any:
        name = request.query_params.get("experiment")
        if not name:
            raise InvalidValue("give the experiment: /api/runs?experiment=NAME")
        args = dashboard.parse_arg_filters(request.query_params.getlist("arg"))
        metrics = _listed(request, "metrics") if "metrics" in request.query_params else None
        since = request.query_params.get("since")
        return dashboard.runs(
            db,
            name,
            _listed(request, "status"),
            _listed(request, "tag"),
            args,
            metrics,
            None if since is None else dashboard.parse_since(since),
            _integer(request, "newest"),
        )

    def metric_names(db: Client, request: Request) -> Any:
        name = request.query_params.get("experiment")
        if not name:
            raise InvalidValue("give the experiment: /api/metrics?experiment=NAME")
        match = request.query_params.get("q", "")
        limit = _integer(request, "limit")
        limit = dashboard.MAX_NAMES if limit is None else limit
        return {"metrics": dashboard.metric_names(db, name, match, limit)}

    def run(db: Client, request: Request) -> Any:
        return dashboard.run_page(db, request.path_params["run_id"])

    def run_metrics(db: Client, request: Request) -> Any:
        names = _listed(request, "names")
        if not names:
            raise InvalidValue("give the metrics: ?names=a,b")
        points = _integer(request, "points")
        points = DEFAULT_POINTS if points is None else points
        after = _integer(request, "after")
        run_id = request.path_params["run_id"]
        progress = request.query_params.get("progress", "")
        if progress not in ("", "0", "1", "true", "false"):
            raise InvalidValue(f"progress must be 1 or 0, got {progress!r}")
        found = curves.run_curves(db, run_id, names, points, after, progress in ("1", "true"))
        return {"metrics": found}

    def run_system(db: Client, request: Request) -> Any:
        points = _integer(request, "points")
        points = DEFAULT_POINTS if points is None else points
        return {"system": dashboard.system_curves(db, request.path_params["run_id"], points)}

    def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")

    routes = [
        Route("/", page, methods=["GET"]),
        Route("/api/config", api(config), methods=["GET"]),
        Route("/api/experiments", api(experiments), methods=["GET"]),
        Route("/api/runs", api(runs), methods=["GET"]),
        Route("/api/metrics", api(metric_names), methods=["GET"]),
        Route("/api/runs/{run_id:int}", api(run), methods=["GET"]),
        Route("/api/runs/{run_id:int}/metrics", api(run_metrics), methods=["GET"]),
        Route("/api/runs/{run_id:int}/system", api(run_system), methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC)),
    ]

    middleware = [Middleware(_Secured)]
    if hosts is not None:
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=hosts))
    app = Starlette(routes=routes, middleware=middleware)
    app.state.pool = pool
    return app


def serve(
    client: Client,
    host: str = "127.0.0.1",
    port: int = 8000,
    experiment: str | None = None,
    announce: Callable[[str], None] | None = print,
) -> None:
    """Serve the dashboard with uvicorn until interrupted (Ctrl-C).

    A loopback ``host`` (the default) answers only requests for ``127.0.0.1`` or
    ``localhost``; another host (``0.0.0.0``) serves anyone who can reach it,
    with the client's credentials: read-only, but everything the client may read.
    """
    import uvicorn

    app = create_app(client, experiment, hosts=list(_LOOPBACK) if host in _LOOPBACK else None)
    if announce is not None:
        shown = f"[{host}]" if ":" in host else host
        announce(f"sqltrack ui: http://{shown}:{port}/ (Ctrl-C stops it)")
    uvicorn.run(app, host=host, port=port, log_level="warning")
