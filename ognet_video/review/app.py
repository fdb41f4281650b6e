"""The review page's web server: a Starlette app over an ``Index`` of runs (and a ``LiveBoard`` under
``watch --review-port``), run by uvicorn in a daemon thread.

Safety, since the page serves camera footage and writes labels:

* events are named by the opaque ``eid`` of the index and files come only from the index, so no part of a URL
  ever reaches the file system (an unknown eid, ``..`` included, is 404);
* bound to this machine (127.0.0.1, localhost, ::1) it answers only requests addressed to such a name, so a web
  page elsewhere cannot reach it by pointing a DNS name at 127.0.0.1; bound beyond it, every POST needs the
  token printed with the URL (the page sends it as ``X-Review-Token``);
* a POST must be ``application/json``, which a page of another origin cannot send without the server's
  consent (CORS), so a site open in the same browser cannot label events.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import secrets
import socket
import threading
import time
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from ognet_video.errors import UserError
from ognet_video.review.feedback import LABELS, append_label
from ognet_video.review.index import Index
from ognet_video.review.live import LiveBoard

STATIC = Path(__file__).parent / "static"
LOCAL = ("127.0.0.1", "localhost", "::1")
TOKEN_HEADER = "x-review-token"
MEDIA = {"clip": "video/mp4", "source": "video/mp4"}
IMAGES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}


def _error(code: int, text: str) -> JSONResponse:
    return JSONResponse({"error": text}, status_code=code)


class _LocalOnly:
    """Refuses (403) requests whose Host is not a loopback name: DNS rebinding protection for a local server."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
            name = host[1 : host.find("]")] if host.startswith("[") else host.split(":")[0]
            if name.lower() not in LOCAL:
                await _error(403, "this server answers requests to 127.0.0.1 or localhost only")(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(runs: list[Path], board: LiveBoard | None = None, token: str | None = None,
               local: bool = True) -> Starlette:  # fmt: skip
    """The review app over ``runs``. ``token``: required on every POST; ``local``: answer loopback names only."""
    index = Index(runs)
    stopping = threading.Event()

    def entry(request: Request) -> Any:
        eid = request.path_params["eid"]
        e = index.get(eid)
        if e is None:  # a page may ask before its first listing (or after a restart)
            index.refresh()
            e = index.get(eid)
        return e

    def events(request: Request) -> Response:
        q = request.query_params
        try:
            min_score = float(q["min_score"]) if q.get("min_score") else None
            limit = int(q.get("limit") or 500)
        except ValueError:
            return _error(400, "min_score must be a number and limit a whole number")
        index.refresh()
        found = index.query(q.get("camera") or None, q.get("day") or None, min_score, q.get("kind") or None,
                            q.get("run") or None, q.get("label") or None)  # fmt: skip
        return JSONResponse({"events": found[: max(0, limit)], "total": len(found), **index.facets(),
                             "live": board is not None, "labels": list(LABELS)})  # fmt: skip

    def file_route(name: str) -> Any:
        def serve(request: Request) -> Response:
            e = entry(request)
            path = e.file(name) if e is not None else None
            if path is None:
                return _error(404, f"no {name} for this event")
            kind = MEDIA.get(name) or IMAGES.get(path.suffix.lower(), "application/octet-stream")
            return FileResponse(path, media_type=kind)

        return serve

    def timeline(request: Request) -> Response:
        e = entry(request)
        data = index.timeline(e.eid) if e is not None else None
        return JSONResponse(data) if data is not None else _error(404, "no such event")

    async def feedback(request: Request) -> Response:
        given = request.headers.get(TOKEN_HEADER, "").encode()
        if token is not None and not hmac.compare_digest(given, token.encode()):
            return _error(403, "a missing or wrong token: open the URL printed with ?token=...")
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            return _error(415, 'send JSON: {"label": "normal" | "real"}')
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "the body is not JSON")
        label = body.get("label") if isinstance(body, dict) else None
        if label not in LABELS:
            return _error(400, f"label must be one of {', '.join(LABELS)}")
        e = await asyncio.to_thread(entry, request)
        if e is None:
            return _error(404, "no such event")
        if e.kind != "anomaly":
            return _error(400, "only anomaly events take a label")
        rec = await asyncio.to_thread(append_label, e.folder, e.id, label)
        return JSONResponse({"eid": e.eid, "id": e.id, "label": rec.label, "time": rec.time})

    def live(request: Request) -> Response:
        return JSONResponse(board.state()) if board is not None else _error(404, "no live board (watch --review-port)")

    def live_frame(request: Request) -> Response:
        jpeg = board.frame(request.path_params["camera"]) if board is not None else None
        if jpeg is None:
            return _error(404, "no frame of that camera yet")
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    async def live_stream(request: Request) -> Response:
        if board is None:
            return _error(404, "no live board (watch --review-port)")
        q = board.subscribe()

        async def messages() -> Any:
            try:
                yield "retry: 2000\n\n"  # sent at once: the subscription is in place
                quiet = 0.0
                while not stopping.is_set():
                    try:
                        msg = await asyncio.wait_for(q.get(), 0.5)
                    except asyncio.TimeoutError:
                        quiet += 0.5
                        if quiet >= 15:  # a comment now and then: a closed page is noticed, proxies keep it open
                            quiet = 0.0
                            yield ": ping\n\n"
                        continue
                    quiet = 0.0
                    yield f"data: {json.dumps(msg)}\n\n"
            finally:
                board.unsubscribe(q)

        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(messages(), media_type="text/event-stream", headers=headers)

    def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"})

    routes = [
        Route("/", page),
        Route("/api/events", events),
        Route("/api/events/{eid}/snapshot", file_route("snapshot")),
        Route("/api/events/{eid}/clip", file_route("clip")),
        Route("/api/events/{eid}/source", file_route("source")),
        Route("/api/events/{eid}/timeline", timeline),
        Route("/api/events/{eid}/feedback", feedback, methods=["POST"]),
        Route("/api/live", live),
        Route("/api/live/stream", live_stream),
        Route("/api/live/{camera}/frame.jpg", live_frame),
        Mount("/static", StaticFiles(directory=STATIC)),
    ]
    app = Starlette(routes=routes)
    app.state.index, app.state.board, app.state.stopping = index, board, stopping
    if local:
        app.add_middleware(_LocalOnly)
    return app


class ReviewServer:
    """A running review server: ``url`` (with ``?token=`` when POSTs need one), ``port``, ``stop()``."""

    def __init__(self, app: Starlette, server: Any, thread: threading.Thread, host: str, port: int,
                 token: str | None) -> None:  # fmt: skip
        self.app, self._server, self._thread = app, server, thread
        self.host, self.port, self.token = host, port, token
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> None:
        """Until the server stops (or ``timeout`` seconds)."""
        self._thread.join(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Ends the live streams and the server; returns once it stopped (or after ``timeout`` seconds)."""
        self.app.state.stopping.set()
        self._server.should_exit = True
        self._thread.join(timeout)


def start_server(runs: list[Path], host: str = "127.0.0.1", port: int = 8765, board: LiveBoard | None = None,
                 token: str | None = None) -> ReviewServer:  # fmt: skip
    """Serve the review page over ``runs`` from a daemon thread; port 0 takes any free port. Beyond this machine
    POSTs need a token: ``token``, else a random one (in the returned ``url``); a token given is always asked."""
    import uvicorn

    local = host.strip("[]").lower() in LOCAL
    if token is None and not local:
        token = secrets.token_urlsafe(18)
    app = create_app(runs, board, token, local=local)
    try:
        info = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, _, _, _, addr = info[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
    except OSError as exc:
        raise UserError(f"--host {host} --port {port}: cannot listen there ({exc.strerror or exc}); check the "
                        "address and that the port is free (--port 0 takes any free one)") from None  # fmt: skip
    bound = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                            timeout_graceful_shutdown=2)  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="review", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    if not server.started:
        server.should_exit = True
        sock.close()
        raise UserError(f"the review server on {host}:{bound} did not start")
    return ReviewServer(app, server, thread, host, bound, token)
