"""The `gitexp ui` web server: a Starlette app over ui.views, served by uvicorn.

Why these parts: Starlette is a small, maintained ASGI toolkit (routing, requests, responses) with no
templating or ORM to carry; uvicorn is its standard server; Plotly.js (the `plotly` package ships
plotly.min.js) draws the charts offline. No HTTP parsing or chart rendering is written here.

Security (docs/ui.md): bound to 127.0.0.1 by default; any other host needs the token on every request
(query `token=`, header `X-Gitexp-Token`, or the cookie set when the page is opened with `?token=`). The Host
header must name the server (DNS rebinding). Every response carries a Content-Security-Policy and
`X-Content-Type-Options: nosniff`. POST (tags, note) needs the token in the X-Gitexp-Token header (never a
cookie: a cross-site form cannot set a header) and a same-origin request. Files are served only by (run, path
in that run), through gitexp.get.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from gitexp.errors import GitexpError, RunInProgress, RunNotFound
from gitexp.filter import FilterError
from gitexp.ui.views import IMAGE_TYPES, BadRequest, NotFound, Views, to_json_bytes

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

STATIC_DIR = Path(__file__).parent / "static"
STATIC_FILES = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8",
                "plotly.min.js": "text/javascript; charset=utf-8"}
# style-src 'unsafe-inline': Plotly sets inline styles. Scripts: only the app's own files, no eval (the parallel
# coordinates are drawn in SVG by app.js, not by Plotly's WebGL parcoords, which compiles code with Function()).
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; frame-ancestors 'none'; "
       "base-uri 'none'; form-action 'none'")
SVG_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:"
COOKIE = "gitexp_token"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_in_url(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def plotly_js() -> Path | None:
    """plotly.min.js of the installed plotly package (never a CDN), None when plotly is not installed."""
    try:
        import importlib.util

        spec = importlib.util.find_spec("plotly")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js"
    return path if path.is_file() else None


def static_path(name: str) -> Path | None:
    if name == "plotly.min.js":
        return plotly_js()
    if name not in STATIC_FILES and name != "index.html":
        return None
    path = STATIC_DIR / name
    return path if path.is_file() else None


class Guard:
    """Checks Host and the token before the app sees a request; adds the security headers to every response."""

    def __init__(self, app: ASGIApp, token: str, hosts: set[str] | None, token_always: bool) -> None:
        self.app = app
        self.token = token
        self.hosts = hosts  # the Host header values accepted (None: any, the token guards every request)
        self.token_always = token_always

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":  # none is served: refused before anything else sees it
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                         (b"cache-control", b"no-store")]
                if b"content-security-policy" not in names:
                    extra.append((b"content-security-policy", CSP.encode()))
                message["headers"] = list(message.get("headers", [])) + [h for h in extra if h[0] not in names]
            await send(message)

        host = headers.get("host", "")
        if self.hosts is not None and host.lower() not in self.hosts:
            await _error(400, f"unexpected Host header {host!r}: open the URL gitexp ui printed", scope, receive, secured)
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        given_header = headers.get("x-gitexp-token", "")
        given = given_header or (query.get("token") or [""])[0] or _cookie(headers.get("cookie", ""))
        if self.token_always and not _same(given, self.token):
            await _error(401, "this server needs its token: open the URL gitexp ui printed (with ?token=...)",
                         scope, receive, secured)
            return
        if scope["method"] not in ("GET", "HEAD"):
            if not _same(given_header, self.token):
                await _error(403, "changes need the X-Gitexp-Token header (the token of /api/session)", scope, receive, secured)
                return
            origin = headers.get("origin")
            site = headers.get("sec-fetch-site")
            if (origin is not None and origin.lower() != f"http://{host.lower()}") or site not in (None, "same-origin"):
                await _error(403, "cross-origin change refused", scope, receive, secured)
                return
        await self.app(scope, receive, secured)


def _same(given: str, token: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode("utf-8", "replace"), token.encode())


def _cookie(header: str) -> str:
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return value
    return ""


async def _error(status: int, message: str, scope: Scope, receive: Receive, send: Send) -> None:
    await JSONResponse({"error": message, "column": None}, status_code=status)(scope, receive, send)


def _json(data: bytes, status: int = 200) -> Response:
    return Response(data, status_code=status, media_type="application/json")


def _fail(exc: GitexpError) -> Response:
    status = 400
    column = None
    if isinstance(exc, (RunNotFound, NotFound)):
        status = 404
    elif isinstance(exc, RunInProgress):
        status = 409
    if isinstance(exc, (BadRequest, FilterError)):
        column = exc.column
    from gitexp.render import inert

    return _json(to_json_bytes({"error": inert(exc.message), "column": column}), status)


def _int(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer, not {raw!r}") from None


def _float(request: Request, name: str) -> float | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return float(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a number, not {raw!r}") from None


def _names(raw: str | None) -> list[str] | None:
    if raw is None:
        return None
    return [n for n in raw.split(",") if n]


def create_app(views: Views, token: str, hosts: set[str] | None, token_always: bool) -> ASGIApp:
    """The ASGI app: the routes below behind Guard."""

    def guarded(fn: Callable[[Request], Response]) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            try:
                with views.serving():
                    return fn(request)
            except GitexpError as exc:
                return _fail(exc)

        return endpoint

    def index(request: Request) -> Response:
        path = static_path("index.html")
        if path is None:
            return PlainTextResponse("gitexp ui: the front end (gitexp/ui/static/index.html) is missing", 500)
        response: Response = FileResponse(path, media_type="text/html; charset=utf-8")
        if _same(request.query_params.get("token", ""), token):
            response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/")
        return response

    def static(request: Request) -> Response:
        name = request.path_params["name"]
        path = static_path(name) if name in STATIC_FILES else None
        if path is None:
            hint = " (install plotly: pip install 'gitexp[ui]')" if name == "plotly.min.js" else ""
            return _json(to_json_bytes({"error": f"no static file {name!r}{hint}", "column": None}), 404)
        return FileResponse(path, media_type=STATIC_FILES[name])

    def session(request: Request) -> Response:
        return _json(to_json_bytes({"token": token, "repo": str(views.root), "version": views.version()}))

    def version(request: Request) -> Response:
        return _json(to_json_bytes({"version": views.version()}))

    def runs(request: Request) -> Response:
        q = request.query_params
        return _json(views.runs_json(q.get("where"), q.get("sort")))

    def run(request: Request) -> Response:
        return _json(to_json_bytes(views.detail(request.path_params["name"])))

    def series(request: Request) -> Response:
        q = request.query_params
        return _json(to_json_bytes(views.series(
            request.path_params["name"], _names(q.get("names")), q.get("x") or "step", _int(request, "points", 2000),
            _float(request, "xmin"), _float(request, "xmax"))))

    def logs(request: Request) -> Response:
        return _json(to_json_bytes(views.logs(request.path_params["name"], _int(request, "offset", 0))))

    def diff(request: Request) -> Response:
        return _json(to_json_bytes(views.diff(request.path_params["name"], request.query_params.get("against") or "base")))

    def file(request: Request) -> Response:
        path = request.query_params.get("path") or ""
        data, name = views.file(request.path_params["name"], path)
        suffix = Path(name).suffix.lower()
        kind = IMAGE_TYPES.get(suffix)
        download = request.query_params.get("download") == "1"
        headers = {}
        if kind is None or download:
            headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(name, safe='')}"
        if kind == "image/svg+xml":
            headers["Content-Security-Policy"] = SVG_CSP
        if isinstance(data, Path):  # a data object of the cache (verified): streamed, never read whole
            return FileResponse(data, media_type=kind or "application/octet-stream", headers=headers)
        return Response(data, media_type=kind or "application/octet-stream", headers=headers)

    def compare(request: Request) -> Response:
        return _json(to_json_bytes(views.compare(_names(request.query_params.get("runs")) or [])))

    def tree(request: Request) -> Response:
        return _json(to_json_bytes(views.tree(request.query_params.get("where"))))

    def groups(request: Request) -> Response:
        q = request.query_params
        return _json(to_json_bytes(views.groups(q.get("where"), q.get("by") or "config", q.get("metric") or None)))

    def export(request: Request) -> Response:
        q = request.query_params
        return Response(views.csv(q.get("where"), q.get("sort")), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": "attachment; filename=runs.csv"})

    async def body(request: Request) -> dict[str, Any]:
        raw = await request.body()
        if len(raw) > 1 << 20:
            raise BadRequest("request body too large")
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            raise BadRequest("the body must be a JSON object") from None
        if not isinstance(data, dict):
            raise BadRequest("the body must be a JSON object")
        return data

    def texts(data: dict[str, Any], key: str) -> list[str]:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise BadRequest(f"{key} must be a list of strings")
        return value

    async def tags(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        try:
            data = await body(request)
            add, remove = texts(data, "add"), texts(data, "remove")
            result = await run_in_threadpool(views.set_tags, request.path_params["name"], add, remove)
        except GitexpError as exc:
            return _fail(exc)
        return _json(to_json_bytes(result))

    async def note(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        try:
            data = await body(request)
            text = data.get("note")
            if not isinstance(text, str):
                raise BadRequest("note must be a string")
            result = await run_in_threadpool(views.set_note, request.path_params["name"], text)
        except GitexpError as exc:
            return _fail(exc)
        return _json(to_json_bytes(result))

    routes = [
        Route("/", index),
        Route("/static/{name}", static),
        Route("/api/session", guarded(session)),
        Route("/api/version", guarded(version)),
        Route("/api/runs", guarded(runs)),
        Route("/api/runs/{name}", guarded(run)),
        Route("/api/runs/{name}/series", guarded(series)),
        Route("/api/runs/{name}/logs", guarded(logs)),
        Route("/api/runs/{name}/diff", guarded(diff)),
        Route("/api/runs/{name}/file", guarded(file)),
        Route("/api/runs/{name}/tags", tags, methods=["POST"]),
        Route("/api/runs/{name}/note", note, methods=["POST"]),
        Route("/api/compare", guarded(compare)),
        Route("/api/tree", guarded(tree)),
        Route("/api/groups", guarded(groups)),
        Route("/api/export.csv", guarded(export)),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        return _json(to_json_bytes({"error": f"nothing at {request.url.path}", "column": None}), 404)

    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})
    return Guard(app, token, hosts, token_always)


def accepted_hosts(host: str, port: int) -> set[str] | None:
    """The Host header values a request may carry: the loopback names (and the bound address) with the port;
    None (any) when bound to every interface, where the token guards every request instead."""
    if host in ("0.0.0.0", "::", ""):
        return None
    names = {f"{n}:{port}" for n in LOOPBACK_NAMES} | {f"{host_in_url(host).lower()}:{port}"}
    return names


def serve(views: Views, host: str, port: int, token: str | None, open_browser: bool,
          announce: Callable[[str], None]) -> None:
    """Bind host:port (0: a free port), announce the URL, serve until interrupted."""
    import socket

    import uvicorn

    loopback = is_loopback(host)
    token = token or secrets.token_urlsafe(24)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise GitexpError(f"cannot listen on {host}:{port}: {exc.strerror or exc} (choose another --port or --host)") from None
    sock.listen(128)
    views.warm()
    bound = sock.getsockname()[1]
    app = create_app(views, token, accepted_hosts(host, bound), token_always=not loopback)
    url = f"http://{host_in_url(host)}:{bound}/" + ("" if loopback else f"?token={token}")
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", server_header=False)
    server = uvicorn.Server(config)
    announce(url)
    if open_browser:
        import webbrowser

        webbrowser.open(url)
    server.run(sockets=[sock])
