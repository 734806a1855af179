"""Workflow commands in the Argo CLI's shape: ``submit``, ``list``, ``get``, ``logs``,
``delete``, plus ``template create`` (``controller`` is :mod:`chute.cli.controller`).

With ``CHUTE_SERVER`` set, the commands go through that server's REST API
(:mod:`chute.cli.backend`) and never open the local store. With no server, ``submit --wait`` runs an embedded controller in this process (it holds
the new workflow's lease from the moment the row is written); if a standalone controller
is running, ``--wait`` just watches. ``--wait`` exits 0 only if the workflow Succeeded.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from chute.cli import backend
from chute.config import load_settings
from chute.errors import NotFoundError, SpecError, UserError

PHASE_SYMBOL = {"Succeeded": "✔", "Failed": "✖", "Error": "⚠", "Running": "●",
                "Pending": "◷", "Skipped": "○", "Omitted": "○"}


def lease_ttl() -> float:
    """Seconds a controller's lease lasts without a heartbeat (``CHUTE_LEASE_TTL``)."""
    import os

    return float(os.environ.get("CHUTE_LEASE_TTL") or 15)


def _store():
    from chute.store.db import open_store

    settings = load_settings().ensure()
    return open_store(settings), settings


def _params(values: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values or []:
        if "=" not in v:
            raise UserError(f"-p {v!r}: expected NAME=VALUE")
        k, _, val = v.partition("=")
        out[k.strip()] = val
    return out


def _duration(start: float | None, end: float | None) -> str:
    if not start:
        return ""
    secs = int((end or time.time()) - start)
    if secs < 60:
        return f"{secs}s"
    if secs < 3600:
        return f"{secs // 60}m{secs % 60}s"
    return f"{secs // 3600}h{(secs % 3600) // 60}m"


def run_embedded(store, settings, uids: list[str], owner: str, timeout: float | None = None) -> None:
    """Drive ``uids`` to completion with a controller in this process."""
    from chute.engine.controller import Controller
    from chute.executors.python import PythonExecutor

    executor = PythonExecutor().start()
    ctl = Controller(store, settings, executor, owner=owner, lease_ttl=lease_ttl())
    try:
        ctl.run_until_done(uids, timeout=timeout)
    finally:
        ctl.close()
        executor.close()


def _wait_watching(store, uid: str) -> str:
    from chute.store import queries as q

    while True:
        with store.read() as s:
            row = q.get_workflow(s, uid)
            if row.phase in ("Succeeded", "Failed", "Error"):
                return row.phase
        time.sleep(0.5)


def submit_cmd(
    file: Annotated[str, typer.Argument(help="Workflow YAML/JSON file ('-' for stdin)")],
    parameter: Annotated[list[str] | None, typer.Option("-p", "--parameter",
                                                        help="NAME=VALUE")] = None,
    wait: Annotated[bool, typer.Option("--wait", "-w", help="wait until it finishes")] = False,
    watch: Annotated[bool, typer.Option("--watch", help="wait and print the tree")] = False,
    output: Annotated[str | None, typer.Option("-o", "--output", help="name|json|yaml")] = None,
    idempotency_key: Annotated[str | None, typer.Option(
        "--idempotency-key", help="submitting again with this key returns the run it "
        "created (a different workflow or parameters under the same key is an error)",
    )] = None,
) -> None:
    """Submit a workflow; prints its name. With --wait, exit 0 only if it Succeeded."""
    from chute.engine.controller import _owner_id
    from chute.engine.submit import store_template, submit_once
    from chute.spec.loader import load_documents, load_file
    from chute.spec.models import ClusterWorkflowTemplate, Workflow, WorkflowTemplate
    from chute.store import leases

    docs = load_documents(sys.stdin.buffer.read(), "<stdin>") if file == "-" else load_file(file)
    if client := backend.remote():  # CHUTE_SERVER: the server runs it; we only poll
        with backend.session(client):
            return backend.submit(client, file, docs, _params(parameter), wait or watch,
                                  watch, output, idempotency_key)
    store, settings = _store()
    # templates in the same file are stored first (Argo's examples ship them together)
    for d in docs:
        if isinstance(d, WorkflowTemplate | ClusterWorkflowTemplate):
            store_template(store, d)
    workflows = [d for d in docs if isinstance(d, Workflow)]
    if not workflows:
        raise SpecError("no Workflow in the file", file)
    if idempotency_key is not None and len(workflows) > 1:
        raise UserError(f"--idempotency-key: {file} has {len(workflows)} Workflows; "
                        "submit them one per key")
    overrides = _params(parameter)
    block = wait or watch
    with store.read() as s:
        standalone = leases.lease_holder(s, "controller", time.time()) is not None
    owner = _owner_id() if block and not standalone else None
    submitted = [submit_once(store, wf, overrides, owner=owner, source=file,
                             lease_ttl=lease_ttl(), idempotency_key=idempotency_key)
                 for wf in workflows]
    rows = [row for row, _ in submitted]
    for row in rows:
        typer.echo(row.name)
    if not block:
        return
    created = [r.uid for r, new in submitted if new]
    if owner and created:
        run_embedded(store, settings, created, owner)
    # a replayed submission's run belongs to whoever drives it: wait (adopting it if free)
    phases = [_wait_watching(store, r.uid) if new else _wait_adopting(store, settings, r.uid)
              for r, new in submitted]
    if watch or output:
        for r in rows:
            _print_get(store, r.name, output)
    if any(p != "Succeeded" for p in phases):
        raise typer.Exit(1)


def wait_cmd(name: Annotated[str, typer.Argument(help="workflow name")]) -> None:
    """Wait for a workflow to finish; exit 0 only if it Succeeded. With no controller
    running it, this process adopts it (once its earlier controller's lease expired)."""
    from chute.store import queries as q

    if client := backend.remote():
        with backend.session(client):
            return backend.wait(client, name)
    from chute.engine.state_format import check_replayable

    store, settings = _store()
    with store.read() as s:
        row = q.get_workflow(s, name)
        uid = row.uid
    if row.phase not in ("Succeeded", "Failed", "Error"):  # no controller will finish it
        check_replayable(row.name, row.state_format)
    phase = _wait_adopting(store, settings, uid)
    typer.echo(f"{name} {phase}")
    if phase != "Succeeded":
        raise typer.Exit(1)


def _wait_adopting(store, settings, uid: str) -> str:
    """Wait for a workflow to finish, driving it here whenever no controller holds it;
    its final phase."""
    from chute.engine.controller import Controller, _owner_id
    from chute.executors.python import PythonExecutor
    from chute.store import leases
    from chute.store import queries as q

    while True:
        now = time.time()
        with store.read() as s:
            row = q.get_workflow(s, uid)
            standalone = leases.lease_holder(s, "controller", now) is not None
        if row.phase in ("Succeeded", "Failed", "Error"):
            break
        free = row.lease_owner is None or (row.lease_expires_at or 0) < now
        if free and not standalone:
            executor = PythonExecutor().start()
            ctl = Controller(store, settings, executor, owner=_owner_id(), lease_ttl=lease_ttl())
            try:
                if ctl.adopt(uid):
                    ctl.run_until_done([uid])
            finally:
                ctl.close()
                executor.close()
            continue
        time.sleep(0.5)
    return row.phase


def _control(action: str):
    def cmd(name: Annotated[str, typer.Argument(help="workflow name")]) -> None:
        from chute.engine import control

        if client := backend.remote():
            with backend.session(client):
                backend.control(client, action, name)
        else:
            _local(control, action, name)
        done = {"suspend": "suspended", "resume": "resumed", "stop": "stopped",
                "terminate": "terminated"}[action]
        typer.echo(f"workflow {name} {done}")

    def _local(control, action: str, name: str) -> None:
        store, _ = _store()
        if action == "suspend":
            control.suspend(store, name)
        elif action == "resume":
            control.resume(store, name)
        else:
            control.stop(store, name, terminate=action == "terminate")

    cmd.__doc__ = {
        "suspend": "Suspend a workflow: running steps finish, no new ones start.",
        "resume": "Resume a suspended workflow and its suspend steps.",
        "stop": "Stop a workflow: kill its running steps; exit handlers still run.",
        "terminate": "Terminate a workflow: kill its running steps; no exit handlers.",
    }[action]
    return cmd


def resume_cmd(
    name: Annotated[str, typer.Argument(help="workflow name")],
    parameter: Annotated[list[str] | None, typer.Option(
        "-p", "--parameter",
        help="name=value for a suspend step's output parameter (valueFrom.supplied)")] = None,
) -> None:
    """Resume a suspended workflow and its suspend steps (supplying their outputs)."""
    from chute.engine import control

    values = _params(parameter)
    if client := backend.remote():
        with backend.session(client):
            backend.control(client, "resume", name, values)
    else:
        store, _ = _store()
        control.resume(store, name, values)
    typer.echo(f"workflow {name} resumed")


def retry_cmd(
    name: Annotated[str, typer.Argument(help="workflow name")],
    wait: Annotated[bool, typer.Option("--wait", "-w")] = False,
) -> None:
    """Re-run the failed and errored steps of a workflow, keeping the succeeded ones;
    its exit handlers run again after them."""
    from chute.engine import control

    if client := backend.remote():
        with backend.session(client):
            backend.control(client, "retry", name)
    else:
        store, _ = _store()
        control.retry(store, name)
    typer.echo(name)
    if wait:
        wait_cmd(name)


def resubmit_cmd(
    name: Annotated[str, typer.Argument(help="workflow name")],
    wait: Annotated[bool, typer.Option("--wait", "-w")] = False,
) -> None:
    """Submit the same spec and parameters again, as a new workflow."""
    from chute.engine import control

    if client := backend.remote():
        with backend.session(client):
            new_name = backend.control(client, "resubmit", name)
    else:
        store, _ = _store()
        new_name = control.resubmit(store, name).name
    typer.echo(new_name)
    if wait:
        wait_cmd(new_name)


def list_cmd(
    output: Annotated[str | None, typer.Option("-o", "--output", help="name|json")] = None,
    running: Annotated[bool, typer.Option("--running")] = False,
    completed: Annotated[bool, typer.Option("--completed")] = False,
) -> None:
    """List workflows, newest first."""
    from chute.store import queries as q

    phases = ["Pending", "Running"] if running else (
        ["Succeeded", "Failed", "Error"] if completed else None)
    if client := backend.remote():
        with backend.session(client):
            return backend.list_runs(client, output, phases)
    store, _ = _store()
    with store.read() as s:
        rows = q.list_workflows(s, phases)
    if output == "name":
        for r in rows:
            typer.echo(r.name)
        return
    if output == "json":
        typer.echo(json.dumps([{"name": r.name, "uid": r.uid, "phase": r.phase,
                                "createdAt": r.created_at, "startedAt": r.started_at,
                                "finishedAt": r.finished_at} for r in rows], indent=2))
        return
    typer.echo(f"{'NAME':<40} {'STATUS':<10} {'AGE':<8} {'DURATION':<8} MESSAGE")
    for r in rows:
        typer.echo(f"{r.name:<40} {r.phase:<10} {_duration(r.created_at, None):<8} "
                   f"{_duration(r.started_at, r.finished_at):<8} {r.message or ''}")


def _print_get(store, name: str, output: str | None) -> None:
    from chute.engine.lineage import lineage_lines, workflow_lineage
    from chute.engine.status import workflow_status
    from chute.store import queries as q

    with store.read() as s:
        row = q.get_workflow(s, name)
        nodes = q.nodes_of(s, row.uid)
        lineage = workflow_lineage(s, row.uid)  # output artifacts -> consumers (lineage)
    if output in ("json", "yaml"):
        doc = workflow_status(row, nodes)
        if output == "json":
            typer.echo(json.dumps(doc, indent=2))
        else:
            import yaml

            typer.echo(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
        return
    if output == "name":
        typer.echo(row.name)
        return
    typer.echo(f"Name:        {row.name}")
    typer.echo(f"Status:      {row.phase}")
    if row.message:
        typer.echo(f"Message:     {row.message}")
    typer.echo(f"Duration:    {_duration(row.started_at, row.finished_at)}")
    if row.arguments:
        typer.echo("Parameters:")
        for k, v in row.arguments.items():
            typer.echo(f"  {k}: {v}")
    if row.outputs and row.outputs.get("parameters"):
        typer.echo("Outputs:")
        for p in row.outputs["parameters"]:
            typer.echo(f"  {p['name']}: {p.get('value')}")
    typer.echo("")
    typer.echo(f"{'STEP':<50} {'TEMPLATE':<24} {'DURATION':<9} MESSAGE")
    kids: dict[str | None, list] = {}
    for n in nodes:
        kids.setdefault(n.parent_id, []).append(n)

    def show(n, depth: int) -> None:
        hide = n.type in ("StepGroup", "TaskGroup") and False
        if not hide:
            label = f"{'  ' * depth}{PHASE_SYMBOL.get(n.phase, '?')} {n.display_name}"
            typer.echo(f"{label:<50} {(n.template_name or ''):<24} "
                       f"{_duration(n.started_at, n.finished_at):<9} {n.message or ''}")
            for line in lineage_lines(lineage, n.node_id, row.name, "  " * (depth + 1)):
                typer.echo(line)
        for c in kids.get(n.node_id, []):
            show(c, depth + 1)

    for top in kids.get(None, []):
        show(top, 0)


def get_cmd(
    name: Annotated[str, typer.Argument(help="workflow name")],
    output: Annotated[str | None, typer.Option("-o", "--output", help="json|yaml|name")] = None,
) -> None:
    """Show a workflow: a tree of its nodes, or Argo's JSON/YAML shape with -o."""
    if client := backend.remote():
        with backend.session(client):
            return backend.print_get(client, name, output)
    store, _ = _store()
    _print_get(store, name, output)


def logs_cmd(
    name: Annotated[str, typer.Argument(help="workflow name")],
    node: Annotated[str | None, typer.Argument(help="node id, name or display name")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f")] = False,
    timestamps: Annotated[bool, typer.Option("--timestamps")] = False,
) -> None:
    """Print the logs of a workflow's steps (or one step's)."""
    from chute.store import queries as q

    if client := backend.remote():
        with backend.session(client):
            return backend.logs(client, name, node, follow, timestamps)
    store, settings = _store()
    with store.read() as s:
        row = q.get_workflow(s, name)
        nodes = [n for n in q.nodes_of(s, row.uid) if n.type == "Pod"]
    if node:
        nodes = [n for n in nodes if node in (n.node_id, n.name, n.display_name)]
        if not nodes:
            raise NotFoundError(f"workflow {name!r} has no step {node!r}")
    prefix = len(nodes) > 1
    offsets: dict[str, int] = {}

    def dump() -> None:
        for n in nodes:
            path = settings.logs_dir / row.uid / f"{n.node_id}.log"
            try:
                with open(path, encoding="utf-8", errors="replace") as f:
                    f.seek(offsets.get(n.node_id, 0))
                    data = f.read()
                    offsets[n.node_id] = f.tell()
            except FileNotFoundError:
                continue
            for line in data.splitlines():
                parts = line.split(" ", 2)
                text = line if timestamps or len(parts) < 3 else parts[2]
                typer.echo(f"{n.display_name}: {text}" if prefix else text)

    dump()
    while follow:
        with store.read() as s:
            done = q.get_workflow(s, name).phase in ("Succeeded", "Failed", "Error")
        time.sleep(0.3)
        dump()
        if done:
            break


def delete_cmd(name: Annotated[str, typer.Argument(help="workflow name")]) -> None:
    """Delete a workflow, its nodes, journal and logs."""
    import shutil

    from chute.store import queries as q

    if client := backend.remote():
        with backend.session(client):
            return backend.delete(client, name)
    store, settings = _store()
    with store.write() as s:
        row = q.get_workflow(s, name)
        uid = row.uid
        q.delete_workflow(s, uid)
    shutil.rmtree(settings.logs_dir / uid, ignore_errors=True)
    shutil.rmtree(settings.steps_dir / uid, ignore_errors=True)
    typer.echo(f'Workflow "{name}" deleted')


def template_create_cmd(files: Annotated[list[Path], typer.Argument(help="template files")]) -> None:
    """Store WorkflowTemplates / ClusterWorkflowTemplates for templateRef."""
    from chute.engine.submit import store_template
    from chute.spec.loader import load_file
    from chute.spec.models import ClusterWorkflowTemplate, WorkflowTemplate

    if client := backend.remote():
        with backend.session(client):
            return backend.template_create(client, [d for f in files for d in load_file(f)])
    store, _ = _store()
    for f in files:
        for d in load_file(f):
            if isinstance(d, WorkflowTemplate | ClusterWorkflowTemplate):
                typer.echo(f"{d.kind}/{store_template(store, d)} created")


def register(app: typer.Typer) -> None:
    """Add the workflow commands to the ``chute`` app."""
    app.command("submit")(submit_cmd)
    app.command("list")(list_cmd)
    app.command("wait")(wait_cmd)
    for action in ("suspend", "stop", "terminate"):
        app.command(action)(_control(action))
    app.command("resume")(resume_cmd)
    app.command("retry")(retry_cmd)
    app.command("resubmit")(resubmit_cmd)
    app.command("get")(get_cmd)
    app.command("logs")(logs_cmd)
    app.command("delete")(delete_cmd)
    tmpl = typer.Typer(help="WorkflowTemplates used by templateRef and workflowTemplateRef.",
                       no_args_is_help=True)
    tmpl.command("create")(template_create_cmd)
    app.add_typer(tmpl, name="template")
