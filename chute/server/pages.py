"""The pages the server renders itself: the login form and the single-page app's shell.

Everything else the browser shows is drawn by the UI bundle (``ui/``, built into
``chute/server/static/``). Page responses carry a strict Content-Security-Policy: scripts
only from this origin, no framing.
"""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from chute.server.auth import SESSION_COOKIE, SESSION_TTL_SECONDS

STATIC_DIR = Path(__file__).with_name("static")
PAGE_CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)

_LOGIN = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>chute · sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{{font:15px system-ui,sans-serif;background:#f4f5f7;display:flex;height:100vh;
margin:0;align-items:center;justify-content:center}}
form{{background:#fff;padding:2rem;border-radius:8px;box-shadow:0 1px 4px #0002;width:22rem}}
h1{{margin:0 0 1rem;font-size:1.3rem}} input{{width:100%;box-sizing:border-box;padding:.5rem;
margin:.5rem 0 1rem;font:inherit}} button{{padding:.5rem 1.2rem;font:inherit;cursor:pointer}}
.err{{color:#b00020;margin:0 0 1rem}} small{{color:#555}}
</style></head><body>
<form method="post" action="/login" id="login">
<h1>chute</h1>{error}
<label for="token">API token</label>
<input id="token" name="token" type="password" autocomplete="current-password" autofocus>
<input type="hidden" name="next" value="{next}">
<button type="submit">Sign in</button>
<p><small>The token was printed when the server first started, or is CHUTE_TOKEN.</small></p>
</form></body></html>"""


def login_page(error: str = "", next_path: str = "/") -> bytes:
    """The login form as HTML bytes."""
    err = f'<p class="err" role="alert">{html.escape(error)}</p>' if error else ""
    return _LOGIN.format(error=err, next=html.escape(next_path)).encode()


def safe_next(value: str | None) -> str:
    """Only same-site relative paths are followed after login (no open redirect)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def build_pages_router() -> APIRouter:
    """Routes for /login, /logout and the app shell (index.html for every UI path)."""
    router = APIRouter(include_in_schema=False)

    @router.get("/login")
    async def get_login(next: str = "/") -> HTMLResponse:
        return HTMLResponse(login_page(next_path=safe_next(next)))

    @router.post("/login")
    async def post_login(
        request: Request, token: str = Form(""), next: str = Form("/")
    ) -> Response:
        auth = request.app.state.ctx.auth
        if not auth.check_token(token):
            return HTMLResponse(login_page("That token is not valid.", safe_next(next)), 401)
        resp = RedirectResponse(safe_next(next), status_code=303)
        resp.set_cookie(
            SESSION_COOKIE, auth.new_session(), max_age=SESSION_TTL_SECONDS, httponly=True,
            samesite="strict", secure=request.url.scheme == "https", path="/",
        )
        return resp

    @router.post("/logout")
    async def logout() -> Response:
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(SESSION_COOKIE, path="/")
        return resp

    return router


def mount_ui(app) -> None:
    """Serve the built UI: /assets/* as files, any other GET page as index.html."""
    index = STATIC_DIR / "index.html"
    assets = STATIC_DIR / "assets"
    if assets.is_dir():
        app.mount("/assets", StaticFiles(directory=assets), name="assets")

    @app.get("/{page:path}", include_in_schema=False)
    async def shell(page: str) -> Response:
        if page.startswith("api/"):
            return Response(
                b'{"error":{"code":"not_found","message":"no such API route"}}',
                status_code=404, media_type="application/json",
            )
        if not index.exists():
            return HTMLResponse(
                "<!doctype html><title>chute</title><p>The web UI is not built: run "
                "<code>make ui</code>. The API is at <a href='/api/v1/openapi.json'>"
                "/api/v1/openapi.json</a>.</p>", status_code=200,
            )
        return FileResponse(index, media_type="text/html")
