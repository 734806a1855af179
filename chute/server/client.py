"""A small client of the chute server, for the CLI when ``CHUTE_SERVER`` is set.

``client_from_settings(settings)`` returns a :class:`ServerClient` (or None when no server
is configured). Errors come back as the same :class:`chute.errors.UserError` subclasses
the server raised (404 → NotFoundError, 409 → ConflictError, other 4xx → UserError), so
CLI commands handle local and remote failures alike. Tests pass an ``httpx`` transport
(``httpx.ASGITransport(app)``) to drive an in-process app.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx

from chute.config import Settings
from chute.errors import ConflictError, NotFoundError, StoreError, UserError


class ServerClient:
    """Calls the REST API of one chute server with its bearer token."""

    def __init__(self, base_url: str, token: str | None, *, transport=None,
                 timeout: float = 30.0):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=base_url.rstrip("/") + "/api/v1", headers=headers,
                                 transport=transport, timeout=timeout)

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()

    def __enter__(self) -> ServerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check(self, resp: httpx.Response) -> httpx.Response:
        if resp.status_code < 400:
            return resp
        try:
            err = resp.json().get("error", {})
            message = err.get("message") or resp.reason_phrase
        except ValueError:
            message = resp.reason_phrase
        if resp.status_code == 401:
            raise UserError(f"the server refused the token: {message} (set CHUTE_TOKEN)")
        if resp.status_code == 404:
            raise NotFoundError(message)
        if resp.status_code == 409:
            raise ConflictError(message)
        if resp.status_code < 500:
            raise UserError(message)
        raise StoreError(f"server error {resp.status_code}: {message}")

    def request(self, method: str, path: str, **kw: Any) -> Any:
        """Call ``/api/v1{path}`` and return the decoded JSON (None for 204)."""
        resp = self._check(self.http.request(method, path, **kw))
        return None if resp.status_code == 204 or not resp.content else resp.json()

    # -- runs ----------------------------------------------------------------------------

    def submit(self, workflow: dict[str, Any] | None = None, *, yaml: str | None = None,
               parameters: dict[str, str] | None = None, idempotency_key: str | None = None,
               **extra: Any) -> dict[str, Any]:
        """Submit a workflow (a resource dict or YAML text); returns the run in Argo's shape.
        With ``idempotency_key``, a replay returns the run the first request created."""
        body: dict[str, Any] = {"parameters": parameters or {}, **extra}
        if workflow is not None:
            body["workflow"] = workflow
        if yaml is not None:
            body["yaml"] = yaml
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key is not None else None
        return self.request("POST", "/runs", json=body, headers=headers)

    def list_runs(self, **filters: Any) -> list[dict[str, Any]]:
        """Runs matching ``filters`` (phase, experiment, pipeline, limit, offset)."""
        params = {k: v for k, v in filters.items() if v is not None}
        return self.request("GET", "/runs", params=params)["items"]

    def get_run(self, name: str) -> dict[str, Any]:
        """A run in Argo's Workflow shape (metadata, spec, status.nodes)."""
        return self.request("GET", f"/runs/{name}")

    def action(self, name: str, verb: str, **body: Any) -> dict[str, Any]:
        """suspend / resume / stop / terminate / retry / resubmit a run."""
        return self.request("PUT", f"/runs/{name}/{verb}", json=body or None)

    def resume(self, name: str, values: dict[str, str] | None = None) -> dict[str, Any]:
        """Resume a run, supplying its suspend steps' output parameters (name -> value)."""
        return self.action(name, "resume", **({"parameters": dict(values)} if values else {}))

    def delete_run(self, name: str) -> None:
        """Delete a run and its records."""
        self.request("DELETE", f"/runs/{name}")

    def logs(self, name: str, node: str | None = None, follow: bool = False,
             timestamps: bool = False) -> Iterator[str]:
        """Yield log lines of a run (or one node), following until it ends if asked."""
        params: dict[str, Any] = {"follow": str(follow).lower(),
                                  "timestamps": str(timestamps).lower()}
        if node:
            params["node"] = node
        with self.http.stream("GET", f"/runs/{name}/logs", params=params,
                              timeout=None if follow else 30.0) as resp:
            if resp.status_code >= 400:
                resp.read()
                self._check(resp)
            yield from resp.iter_lines()


def client_from_settings(settings: Settings, transport=None) -> ServerClient | None:
    """A client for ``settings.server_url`` (``CHUTE_SERVER``), or None if none is set."""
    if not settings.server_url:
        return None
    return ServerClient(settings.server_url, settings.token, transport=transport)
