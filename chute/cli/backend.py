"""The CLI's remote backend: workflow commands through a chute server's REST API.

When ``CHUTE_SERVER`` is set (with ``CHUTE_TOKEN``), :func:`remote` returns a
:class:`chute.server.client.ServerClient` and the commands in :mod:`chute.cli.workflows`
hand over to the functions here instead of opening the local store. Output and exit codes
match the local commands: a 4xx from the server arrives as a :class:`chute.errors.UserError`
(exit 2, one message); a server that cannot be reached, or that answers 5xx, prints one
message and exits 1 (the request may be fine; the server or the network is not).
``submit --wait`` polls the server; it never starts a controller in this process.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import typer

from chute.errors import NotFoundError, SpecError, StoreError, UserError

TERMINAL = ("Succeeded", "Failed", "Error")
POLL_SECONDS = 0.5


def remote():
    """A client of the configured server, or None to work on the local store."""
    from chute.config import load_settings
    from chute.server.client import client_from_settings

    return client_from_settings(load_settings())


@contextlib.contextmanager
def session(client) -> Iterator[Any]:
    """Use ``client`` for one command: close it after, and turn transport failures and
    server errors into one message and exit 1 (user errors pass through as exit 2)."""
    import httpx

    url = str(client.http.base_url).removesuffix("/api/v1/").removesuffix("/api/v1")
    try:
        yield client
    except httpx.TransportError as exc:
        typer.echo(f"error: cannot reach the chute server at {url} (CHUTE_SERVER): "
                   f"{exc or type(exc).__name__}", err=True)
        raise typer.Exit(1) from None
    except StoreError as exc:
        typer.echo(f"error: {url}: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        client.close()


def _seconds(stamp: str | None) -> float | None:
    if not stamp:
        return None
    return datetime.fromisoformat(stamp).timestamp()  # 3.11 reads the Z suffix


def wait_phase(client, name: str) -> str:
    """Poll the server until run ``name`` finishes; return its phase."""
    while True:
        phase = (client.get_run(name).get("status") or {}).get("phase") or "Pending"
        if phase in TERMINAL:
            return phase
        time.sleep(POLL_SECONDS)


def submit(client, file: str, docs: list, overrides: dict[str, str], block: bool,
           watch: bool, output: str | None, idempotency_key: str | None = None) -> None:
    """``chute submit`` against the server: templates in the file first, then each Workflow."""
    from chute.spec.loader import to_dict
    from chute.spec.models import ClusterWorkflowTemplate, Workflow, WorkflowTemplate

    workflows = [d for d in docs if isinstance(d, Workflow)]
    if not workflows:
        raise SpecError("no Workflow in the file", file)
    for d in docs:
        if isinstance(d, WorkflowTemplate | ClusterWorkflowTemplate):
            client.request("POST", "/workflow-templates", json={"template": to_dict(d)})
    names: list[str] = []
    for wf in workflows:
        doc = client.submit(to_dict(wf), parameters=overrides, idempotency_key=idempotency_key)
        names.append(doc["metadata"]["name"])
        typer.echo(names[-1])
    if not block:
        return
    phases = [wait_phase(client, n) for n in names]
    if watch or output:
        for n in names:
            print_get(client, n, output)
    if any(p != "Succeeded" for p in phases):
        raise typer.Exit(1)


def wait(client, name: str) -> None:
    """``chute wait`` against the server: poll until it finishes; exit 1 unless Succeeded."""
    phase = wait_phase(client, name)
    typer.echo(f"{name} {phase}")
    if phase != "Succeeded":
        raise typer.Exit(1)


def control(client, action: str, name: str, values: dict[str, str] | None = None) -> str:
    """suspend/resume/stop/terminate/retry/resubmit; returns the run name to show.
    ``values`` (resume only): the suspend steps' output parameters, checked by the server."""
    if action not in _actions(client):
        raise UserError(f"{action}: the server at CHUTE_SERVER does not support this action")
    if values:
        return client.resume(name, values)["metadata"]["name"]
    return client.action(name, action)["metadata"]["name"]


def _actions(client) -> list[str]:
    return client.request("GET", "/run-actions")["actions"]


def list_runs(client, output: str | None, phases: list[str] | None) -> None:
    """``chute list`` against the server, newest first, every page."""
    from chute.cli.workflows import _duration

    rows: list[dict[str, Any]] = []
    while True:
        page = client.request("GET", "/runs", params={
            "limit": 1000, "offset": len(rows),
            **({"phase": ",".join(phases)} if phases else {})})
        rows += page["items"]
        if not page["items"] or len(rows) >= page["total"]:
            break
    if output == "name":
        for r in rows:
            typer.echo(r["name"])
        return
    if output == "json":
        keys = ("name", "uid", "phase", "createdAt", "startedAt", "finishedAt")
        typer.echo(json.dumps([{k: r.get(k) for k in keys} for r in rows], indent=2))
        return
    typer.echo(f"{'NAME':<40} {'STATUS':<10} {'AGE':<8} {'DURATION':<8} MESSAGE")
    for r in rows:
        typer.echo(f"{r['name']:<40} {r['phase']:<10} {_duration(r['createdAt'], None):<8} "
                   f"{_duration(r.get('startedAt'), r.get('finishedAt')):<8} "
                   f"{r.get('message') or ''}")


def print_get(client, name: str, output: str | None) -> None:
    """``chute get`` against the server: Argo's shape with -o json|yaml, else the tree."""
    from chute.cli.workflows import PHASE_SYMBOL, _duration

    doc = client.get_run(name)
    if output in ("json", "yaml"):
        doc.get("status", {}).pop("progress", None)  # a server-only extra, not Argo's
        if output == "json":
            typer.echo(json.dumps(doc, indent=2))
        else:
            import yaml

            typer.echo(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
        return
    meta, status = doc["metadata"], doc.get("status") or {}
    if output == "name":
        typer.echo(meta["name"])
        return
    typer.echo(f"Name:        {meta['name']}")
    typer.echo(f"Status:      {status.get('phase')}")
    if status.get("message"):
        typer.echo(f"Message:     {status['message']}")
    typer.echo(f"Duration:    "
               f"{_duration(_seconds(status.get('startedAt')), _seconds(status.get('finishedAt')))}")
    if status.get("storedParameters"):
        typer.echo("Parameters:")
        for k, v in status["storedParameters"].items():
            typer.echo(f"  {k}: {v}")
    if (status.get("outputs") or {}).get("parameters"):
        typer.echo("Outputs:")
        for p in status["outputs"]["parameters"]:
            typer.echo(f"  {p['name']}: {p.get('value')}")
    typer.echo("")
    typer.echo(f"{'STEP':<50} {'TEMPLATE':<24} {'DURATION':<9} MESSAGE")
    nodes: dict[str, dict] = status.get("nodes") or {}
    children = {c for n in nodes.values() for c in n.get("children") or []}

    def show(n: dict, depth: int) -> None:
        label = f"{'  ' * depth}{PHASE_SYMBOL.get(n.get('phase'), '?')} {n.get('displayName')}"
        took = _duration(_seconds(n.get("startedAt")), _seconds(n.get("finishedAt")))
        typer.echo(f"{label:<50} {(n.get('templateName') or ''):<24} {took:<9} "
                   f"{n.get('message') or ''}")
        for c in n.get("children") or []:
            if c in nodes:
                show(nodes[c], depth + 1)

    for n in nodes.values():
        if n["id"] not in children:
            show(n, 0)


def logs(client, name: str, node: str | None, follow: bool, timestamps: bool) -> None:
    """``chute logs`` against the server; ``node`` may be a node id, name or display name.

    As locally, lines carry a ``step:`` prefix only when several steps are shown (with
    ``--follow`` on a whole run the server decides, and prefixes them)."""
    node_id = None
    if node or not follow:
        nodes = (client.get_run(name).get("status") or {}).get("nodes") or {}
        pods = [n for n in nodes.values() if n.get("type") == "Pod"]
        if node:
            pods = [n for n in pods if node in (n["id"], n.get("name"), n.get("displayName"))]
            if not pods:
                raise NotFoundError(f"workflow {name!r} has no step {node!r}")
        if len(pods) == 1 or node:
            node_id = pods[0]["id"]
    for line in client.logs(name, node_id, follow=follow, timestamps=timestamps):
        typer.echo(line)


def template_create(client, docs: list) -> None:
    """``chute template create`` against the server."""
    from chute.spec.loader import to_dict
    from chute.spec.models import ClusterWorkflowTemplate, WorkflowTemplate

    for d in docs:
        if isinstance(d, WorkflowTemplate | ClusterWorkflowTemplate):
            client.request("POST", "/workflow-templates", json={"template": to_dict(d)})
            typer.echo(f"{d.kind}/{d.metadata.name} created")


def delete(client, name: str) -> None:
    """``chute delete`` against the server."""
    client.delete_run(name)
    typer.echo(f'Workflow "{name}" deleted')
