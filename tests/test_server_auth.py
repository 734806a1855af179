"""S-1: every route of the server needs the token; login, sessions, CSRF, token storage."""

from __future__ import annotations

import json
import re
import time

from starlette.routing import Mount

pytest_plugins = ["tests.fixtures.server"]

PUBLIC = {("GET", "/healthz"), ("GET", "/login"), ("POST", "/login")}
# webhook deliveries: their credential is an HMAC signature, not the token (the route
# answers 401 itself; tests/test_triggers_webhook.py checks the signatures)
SIGNED = {("POST", "/webhooks/x1")}
UNAUTHORIZED = {"error": {"code": "unauthorized", "message": "authentication required"}}


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x1", path)


def _flat_routes(routes):
    """Routes with a path, descending into included routers (FastAPI >= 0.16x nests them)."""
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if callable(contexts):
            yield from contexts()
        else:
            yield route


def _route_table(app) -> list[tuple[str, str]]:
    """(method, concrete path) for every route of the app, generated from its router."""
    out = []
    for route in _flat_routes(app.routes):
        if isinstance(route, Mount):
            out.append(("GET", route.path + "/index.js"))
        elif getattr(route, "methods", None):
            for method in sorted(route.methods):
                if method != "HEAD":
                    out.append((method, _concrete(route.path)))
    return out


def _bad_credentials(server) -> list[dict[str, str]]:
    auth = server.app.state.ctx.auth
    expired = auth.new_session(now=time.time() - 30 * 24 * 3600)
    forged = f"{int(time.time()) + 3600}.abcd.{'0' * 64}"
    return [
        {},
        {"Authorization": "garbage"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer nothing"},
        {"Authorization": "Bearer " + "A" * 43},
        {"Authorization": f"Basic {server.token}"},
        {"Authorization": f"Bearer {server.token}x"},
        {"Cookie": f"chute_session={forged}"},
        {"Cookie": f"chute_session={expired}"},
        {"Cookie": "chute_session="},
    ]


def test_every_route_refuses_missing_or_bad_credentials(server, anon):
    table = _route_table(server.app)
    api_routes = [r for r in table if r[1].startswith("/api/v1/")]
    assert len(api_routes) >= 10, table  # the enumeration really found the API
    assert ("GET", "/metrics") in table
    checked = 0
    for method, path in table:
        if (method, path) in PUBLIC:
            continue
        for headers in _bad_credentials(server):
            resp = anon.request(method, path, headers=headers)
            assert resp.status_code == 401, (method, path, headers, resp.status_code)
            if (method, path) in SIGNED:  # unsigned: refused, whatever the token says
                assert resp.json()["error"]["code"] == "unauthorized"
                continue
            assert resp.json() == UNAUTHORIZED, (method, path)
            assert resp.headers["www-authenticate"].startswith("Bearer")
            checked += 1
    assert checked >= 10 * len(api_routes)


def test_unknown_paths_are_refused_too(anon):
    for path in ("/api/v1/nothing-here", "/api/v2/runs", "/static/../etc/passwd", "/x.js"):
        assert anon.get(path).status_code == 401


def test_valid_token_passes_every_route(server, api):
    for method, path in _route_table(server.app):
        if (method, path) in PUBLIC | SIGNED:
            continue
        resp = api.request(method, path)
        assert resp.status_code != 401, (method, path)


def test_healthz_is_public_and_says_nothing(anon):
    resp = anon.get("/healthz")
    assert resp.status_code == 200 and resp.json() == {"status": "ok"}


def test_browser_without_session_gets_the_login_page(anon):
    resp = anon.get("/runs/abc", headers={"Accept": "text/html"})
    assert resp.status_code == 401
    assert 'action="/login"' in resp.text
    assert "default-src 'self'" in resp.headers["content-security-policy"]


def test_login_sets_httponly_strict_cookie_and_session_works(server, anon):
    bad = anon.post("/login", data={"token": "wrong", "next": "/"}, follow_redirects=False)
    assert bad.status_code == 401 and "not valid" in bad.text
    assert "set-cookie" not in bad.headers
    ok = anon.post("/login", data={"token": server.token, "next": "/runs"},
                   follow_redirects=False)
    assert ok.status_code == 303 and ok.headers["location"] == "/runs"
    cookie = ok.headers["set-cookie"]
    assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower()
    assert server.token not in cookie
    assert anon.get("/api/v1/pipelines").status_code == 200  # the client keeps the cookie
    # a cookie session must send the CSRF header to change state
    body = {"name": "exp-a"}
    assert anon.post("/api/v1/experiments", json=body).status_code == 401
    resp = anon.post("/api/v1/experiments", json=body, headers={"X-Chute-CSRF": "1"})
    assert resp.status_code == 201


def test_login_refuses_open_redirects(server, anon):
    for target in ("//evil.example/x", "https://evil.example", "/\\evil.example"):
        resp = anon.post("/login", data={"token": server.token, "next": target},
                         follow_redirects=False)
        assert resp.headers["location"] == "/"


def test_token_is_stored_hashed_and_printed_only_once(server, chute_home):
    from chute.config import load_settings
    from chute.server.app import create_app

    stored = (chute_home / "server" / "token.sha256").read_text()
    assert server.token not in stored
    assert json.loads(stored)["sha256"]
    assert (chute_home / "server" / "token.sha256").stat().st_mode & 0o077 == 0
    again = create_app(load_settings())
    assert again.state.ctx.new_token is None
    assert again.state.ctx.auth.check_token(server.token)
    assert not again.state.ctx.auth.check_token(server.token[:-1])


def test_chute_token_env_wins(chute_home, monkeypatch):
    from chute.config import load_settings
    from chute.server.app import create_app

    monkeypatch.setenv("CHUTE_TOKEN", "from-the-environment-0123456789")
    app = create_app(load_settings())
    assert app.state.ctx.new_token is None
    assert app.state.ctx.auth.check_token("from-the-environment-0123456789")
    assert not (chute_home / "server" / "token.sha256").exists()


def test_openapi_declares_bearer_security(api):
    doc = api.get("/api/v1/openapi.json").json()
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert doc["security"] == [{"bearer": []}]
    assert doc["paths"]["/healthz"]["get"]["security"] == []
