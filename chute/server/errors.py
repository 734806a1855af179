"""How the API answers errors: always ``{"error": {"code", "message", "path"?}}``.

User errors (:class:`chute.errors.UserError`) map to their ``http_status`` (400, 404,
409); bad request input to 422 naming each offending field; anything unexpected to a bare
500 whose body says nothing about the cause (the traceback goes to the server log only).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from chute.errors import SpecError, UserError

log = logging.getLogger("chute.server")

_STATUS_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 409: "conflict", 413: "too_large", 415: "unsupported_media",
    422: "invalid_request",
}


def error_body(code: str, message: str, path: str | None = None, **extra: Any) -> dict:
    """The JSON body of an error response."""
    err: dict[str, Any] = {"code": code, "message": message}
    if path:
        err["path"] = path
    err.update(extra)
    return {"error": err}


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that give every error the same JSON shape."""

    @app.exception_handler(UserError)
    async def _user_error(_request: Request, exc: UserError) -> JSONResponse:
        extra: dict[str, Any] = {}
        path = None
        if isinstance(exc, SpecError):
            extra["issues"] = [{"path": i.path, "message": i.message} for i in exc.issues]
            path = exc.issues[0].path if exc.issues else None
        status = int(getattr(exc, "http_status", 400))
        return JSONResponse(error_body(exc.code, str(exc), path, **extra), status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        issues = [
            {"path": _loc(tuple(e.get("loc", ()))), "message": str(e.get("msg", "invalid"))}
            for e in exc.errors()
        ]
        message = "; ".join(f"{i['path']}: {i['message']}" for i in issues) or "invalid request"
        first = issues[0]["path"] if issues else None
        return JSONResponse(
            error_body("invalid_request", message, first, issues=issues), status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return JSONResponse(
            error_body(code, message), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.error("internal error on %s %s: %s", request.method, request.url.path,
                  type(exc).__name__, exc_info=exc)
        return JSONResponse(error_body("internal", "internal server error"), status_code=500)
