"""What routes depend on: the server context (settings, store, auth, controller)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from chute.config import Settings
from chute.server.auth import TokenAuth


@dataclass
class ServerContext:
    """What the routes need: settings, the open store, auth, and the controller if any."""

    settings: Settings
    store: Any
    auth: TokenAuth
    new_token: str | None = None
    controller: Any = None
    extras: dict[str, Any] = field(default_factory=dict)


def get_ctx(request: Request) -> ServerContext:
    """FastAPI dependency: the server context of the app handling this request."""
    return request.app.state.ctx
