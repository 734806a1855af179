"""Authentication: one bearer token for the API, exchanged for a session cookie by the UI.

The token comes from ``CHUTE_TOKEN`` or is generated at the first start of the server and
printed once; only its SHA-256 is kept on disk (``$CHUTE_HOME/server/token.sha256``), so a
copy of the home directory does not hand out access. The token is 32 random bytes, so a
plain hash is enough (no password stretching needed). Every comparison goes through
:func:`hmac.compare_digest`.

The UI logs in by posting the token to ``/login``; it gets an HttpOnly, SameSite=Strict
session cookie: ``<expiry>.<HMAC-SHA256(session key, expiry)>``, with the session key kept
beside the token hash. A cookie-authenticated request that changes state must also carry
the ``X-Chute-CSRF`` header, which a cross-site form cannot set.

:class:`AuthMiddleware` denies by default: every path except :data:`PUBLIC_PATHS` needs a
valid bearer token or session cookie, whether or not a route exists there, so a new route
is protected without anyone remembering to protect it. The one exception is a webhook
delivery (``POST /webhooks/<name>``), authenticated by its HMAC signature in its route.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from chute.config import Settings

SESSION_COOKIE = "chute_session"
CSRF_HEADER = "x-chute-csrf"
SESSION_TTL_SECONDS = 7 * 24 * 3600
# Paths served without credentials: health for probes, and the login page and its form.
PUBLIC_PATHS = frozenset({"/healthz", "/login"})
# Webhook deliveries (POST only) carry an HMAC signature instead of the token; the route
# verifies it (chute/server/routes_webhooks.py) before anything else happens.
WEBHOOK_DELIVERY_PREFIX = "/webhooks/"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True)
class TokenAuth:
    """Checks bearer tokens and session cookies against the server's one token."""

    token_hash: bytes
    session_key: bytes

    def check_token(self, token: str) -> bool:
        """Whether ``token`` is the server's token (constant time)."""
        if not token or len(token) > 512:
            return False
        return hmac.compare_digest(_digest(token), self.token_hash)

    def check_authorization(self, header: str) -> bool:
        """Whether an ``Authorization`` header value carries the right bearer token."""
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer":
            return False
        return self.check_token(value.strip())

    def new_session(self, now: float | None = None) -> str:
        """A fresh session cookie value, valid for :data:`SESSION_TTL_SECONDS`."""
        expires = int((now if now is not None else time.time()) + SESSION_TTL_SECONDS)
        nonce = secrets.token_hex(8)
        payload = f"{expires}.{nonce}"
        return f"{payload}.{self._sign(payload)}"

    def check_session(self, cookie: str, now: float | None = None) -> bool:
        """Whether a session cookie value is genuine and not expired."""
        parts = cookie.split(".")
        if len(parts) != 3 or not parts[0].isdigit():
            return False
        payload = f"{parts[0]}.{parts[1]}"
        if not hmac.compare_digest(self._sign(payload), parts[2]):
            return False
        return int(parts[0]) > (now if now is not None else time.time())

    def _sign(self, payload: str) -> str:
        return hmac.new(self.session_key, payload.encode(), hashlib.sha256).hexdigest()


def _write_private(path: Path, data: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(data)


def load_auth(settings: Settings) -> tuple[TokenAuth, str | None]:
    """The server's auth, and the plaintext token if it was generated just now (else None).

    ``CHUTE_TOKEN`` (``settings.token``) wins; otherwise the stored hash is used; otherwise
    a new token is generated, its hash stored, and the token returned to be printed once.
    """
    state = settings.home / "server"
    key_file = state / "session.key"
    if key_file.exists():
        session_key = bytes.fromhex(key_file.read_text().strip())
    else:
        session_key = secrets.token_bytes(32)
        _write_private(key_file, session_key.hex())
    if settings.token:
        return TokenAuth(_digest(settings.token), session_key), None
    token_file = state / "token.sha256"
    if token_file.exists():
        stored = json.loads(token_file.read_text())
        return TokenAuth(bytes.fromhex(stored["sha256"]), session_key), None
    token = secrets.token_urlsafe(32)
    _write_private(token_file, json.dumps({"sha256": _digest(token).hex()}))
    return TokenAuth(_digest(token), session_key), token


def _cookie(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"cookie":
            for part in value.decode("latin-1").split(";"):
                k, _, v = part.strip().partition("=")
                if k == SESSION_COOKIE:
                    return v
    return None


def authenticate(auth: TokenAuth, method: str, headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether a request with these raw ASGI headers is authenticated.

    A present ``Authorization`` header decides alone (a wrong token is refused even with a
    good cookie). Cookie sessions must add the CSRF header on state-changing methods.
    """
    authz = next((v for k, v in headers if k == b"authorization"), None)
    if authz is not None:
        return auth.check_authorization(authz.decode("latin-1"))
    cookie = _cookie(headers)
    if cookie is None or not auth.check_session(cookie):
        return False
    if method not in _SAFE_METHODS:
        return any(k == CSRF_HEADER.encode() for k, _ in headers)
    return True


UNAUTHORIZED_BODY = json.dumps(
    {"error": {"code": "unauthorized", "message": "authentication required"}}
).encode()


class AuthMiddleware:
    """ASGI middleware: refuse with 401 every request that is not authenticated.

    Public paths pass. Unauthenticated browser page loads (``Accept: text/html``) get the
    login page with status 401, so the UI needs no unauthenticated route of its own.
    """

    def __init__(self, app, auth: TokenAuth, login_page):
        self.app = app
        self.auth = auth
        self.login_page = login_page  # callable: next path -> HTML bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        delivery = scope["method"] == "POST" and path.startswith(WEBHOOK_DELIVERY_PREFIX)
        if path in PUBLIC_PATHS or delivery or authenticate(self.auth, scope["method"],
                                                              scope["headers"]):
            await self.app(scope, receive, send)
            return
        accept = next((v for k, v in scope["headers"] if k == b"accept"), b"")
        wants_page = (
            b"text/html" in accept and scope["method"] == "GET" and not path.startswith("/api/")
        )
        if wants_page:
            query = scope.get("query_string", b"").decode("latin-1")
            body = self.login_page(path + (f"?{query}" if query else ""))
        else:
            body = UNAUTHORIZED_BODY
        ctype = b"text/html; charset=utf-8" if wants_page else b"application/json"
        await send({
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", ctype),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", b'Bearer realm="chute"'),
                (b"cache-control", b"no-store"),
                (b"x-content-type-options", b"nosniff"),
            ],
        })
        await send({"type": "http.response.body", "body": body})
