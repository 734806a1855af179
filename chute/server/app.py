"""The FastAPI application: ``create_app(settings)`` assembles it; nothing at import time.

Layers: request schemas (``schemas``) → store and engine functions → routes (one module
per resource). Every route lives under ``/api/v1`` except ``/healthz``, ``/metrics``,
``/login`` and the UI pages; :class:`~chute.server.auth.AuthMiddleware` guards them all
but ``/healthz`` and ``/login``. With ``controller=True`` (what ``chute server`` does)
the engine's controller runs in a background thread of the same process.
"""

from __future__ import annotations

import logging
import threading
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse

from chute.config import Settings
from chute.server.auth import AuthMiddleware, load_auth
from chute.server.deps import ServerContext
from chute.server.errors import install_error_handlers
from chute.server.pages import PAGE_CSP, build_pages_router, login_page, mount_ui, safe_next

API_PREFIX = "/api/v1"
MAX_BODY_BYTES = 8 * 1024 * 1024  # a 4 MiB spec, as YAML in JSON or multipart, fits
ROUTE_MODULES = (
    "routes_pipelines",
    "routes_experiments",
    "routes_templates",
    "routes_cron",
    "routes_webhooks",
    "routes_triggers",
    "routes_runs",
    "routes_logs",
    "routes_artifacts",
    "sse",
    "routes_models",
)
log = logging.getLogger("chute.server")


class SecurityHeadersMiddleware:
    """Add nosniff, no-referrer and no-framing to every response; a CSP to pages."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                extra = [
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY"),
                ]
                for k, v in extra:
                    if k not in names:
                        headers.append((k, v))
                ctype = dict(headers).get(b"content-type", b"")
                if b"content-security-policy" not in names and ctype.startswith(b"text/html"):
                    headers.append((b"content-security-policy", PAGE_CSP.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyLimitMiddleware:
    """413 with the JSON error shape when Content-Length is over the limit, before any
    byte of the body is read; a chunked body that grows past it is cut off (the request
    ends as a client disconnect)."""

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            length = next((v for k, v in scope["headers"] if k == b"content-length"), b"0")
            if length.isdigit() and int(length) > self.limit:
                body = (b'{"error":{"code":"too_large","message":"request body larger than '
                        + str(self.limit).encode() + b' bytes"}}')
                await send({"type": "http.response.start", "status": 413,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
            seen = 0
            inner = receive

            async def receive():
                nonlocal seen
                message = await inner()
                if message["type"] == "http.request":
                    seen += len(message.get("body", b""))
                    if seen > self.limit:
                        return {"type": "http.disconnect"}
                return message

        await self.app(scope, receive, send)


def _api_routers() -> list[APIRouter]:
    """Every API router, in the order the OpenAPI document lists them."""
    import importlib

    return [importlib.import_module(f"chute.server.{name}").router for name in ROUTE_MODULES]


def _start_controller(ctx: ServerContext) -> None:
    """Run the engine's controller in a daemon thread, if the engine provides one."""
    try:
        from chute.server.controller import start_embedded
    except ImportError:  # pragma: no cover - engine not installed in this build
        log.warning("no engine controller available; runs will stay Pending")
        return
    ctx.controller = start_embedded(ctx.settings, ctx.store)


def _stop_controller(ctx: ServerContext) -> None:
    if ctx.controller is not None:
        ctx.controller.stop()


def create_app(settings: Settings, *, controller: bool = False, store: Any = None) -> FastAPI:
    """Build the server app for ``settings``.

    Opens (and migrates) the store unless one is given, loads or creates the API token
    (the new plaintext token, if any, is in ``app.state.ctx.new_token`` for the caller to
    print once), and with ``controller=True`` runs the engine's controller while the app
    is being served.
    """
    from chute.store.db import open_store

    settings.ensure()
    auth, new_token = load_auth(settings)
    ctx = ServerContext(settings=settings, store=store or open_store(settings), auth=auth,
                        new_token=new_token)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        if controller:
            _start_controller(ctx)
        try:
            yield
        finally:
            _stop_controller(ctx)
            ctx.extras.get("stop_event", threading.Event()).set()

    app = FastAPI(
        title="chute",
        version="1",
        description="chute server: pipelines, runs, experiments, artifacts and live events.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,  # Swagger UI would load scripts from a CDN; the UI is the client
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    ctx.extras["stop_event"] = threading.Event()
    install_error_handlers(app)

    @app.get("/healthz", tags=["health"], summary="Liveness (no authentication)")
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    from chute.server import metrics

    app.include_router(metrics.router)
    for router in _api_routers():
        app.include_router(router, prefix=API_PREFIX)
    from chute.server.routes_webhooks import hooks_router

    app.include_router(hooks_router)  # deliveries: signed, outside the token's realm
    app.include_router(build_pages_router())
    mount_ui(app)  # last: its catch-all GET must not shadow the API

    _add_security_scheme(app)
    app.add_middleware(BodyLimitMiddleware, limit=MAX_BODY_BYTES)
    app.add_middleware(AuthMiddleware, auth=auth,
                       login_page=lambda nxt: login_page(next_path=safe_next(nxt)))
    app.add_middleware(SecurityHeadersMiddleware)
    return app


def _add_security_scheme(app: FastAPI) -> None:
    """Declare the bearer token in the OpenAPI document (required on every operation)."""

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        from fastapi.openapi.utils import get_openapi

        schema = get_openapi(title=app.title, version=app.version,
                             description=app.description, routes=app.routes)
        schema.setdefault("components", {})["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer"}
        }
        schema["security"] = [{"bearer": []}]
        health = schema.get("paths", {}).get("/healthz", {}).get("get")
        if health is not None:
            health["security"] = []
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
