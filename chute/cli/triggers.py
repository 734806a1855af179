"""``chute cron ...`` (as ``argo cron``: create, update, list, get, delete, suspend,
resume), ``chute webhook ...`` (WebhookTriggers) and ``chute trigger ...`` (DataTriggers
and MetricTriggers): create, list, get, delete.

The schedules run in the controller (``chute controller``, or ``chute server``'s embedded
one); these commands only edit what is stored. With ``CHUTE_SERVER`` set they go through
that server's REST API instead of the local store.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from chute.cli import backend
from chute.errors import SpecError, UserError

Output = Annotated[str | None, typer.Option("-o", "--output", help="name|json|yaml")]


def _read_documents(file: Path) -> list[Any]:
    """The YAML/JSON documents in ``file``; a file that cannot be read is a UserError."""
    from chute.spec.loader import parse_documents

    try:
        text = file.read_bytes()
    except OSError as exc:
        raise UserError(f"{file}: {exc.strerror or exc}") from None
    return parse_documents(text, str(file))


def _delete(route: str, local: Callable[[], None]) -> None:
    """DELETE ``route`` on the server when CHUTE_SERVER is set, else ``local()``."""
    if client := backend.remote():
        with backend.session(client):
            client.request("DELETE", route)
    else:
        local()


def _store():
    from chute.cli.workflows import _store as open_local

    return open_local()


def _dump(doc: Any, output: str | None) -> None:
    if output == "json":
        typer.echo(json.dumps(doc, indent=2))
    else:
        import yaml

        typer.echo(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True).rstrip())


def _age(stamp: str | None) -> str:
    from chute.cli.workflows import _duration

    if not stamp:
        return "N/A"
    from datetime import datetime

    return _duration(datetime.fromisoformat(stamp).timestamp(), None) or "0s"


def _until(stamp: str | None) -> str:
    if not stamp:
        return "N/A"
    from datetime import datetime

    secs = int(datetime.fromisoformat(stamp).timestamp() - time.time())
    return f"in {secs}s" if secs < 120 else f"in {secs // 60}m"


def _check_output(output: str | None, allowed: tuple[str, ...]) -> None:
    if output is not None and output not in allowed:
        raise UserError(f"-o {output!r}: expected one of {', '.join(allowed)}")


# -- cron -------------------------------------------------------------------------------

def _print_cron(view: dict[str, Any], output: str | None) -> None:
    if output in ("json", "yaml"):
        return _dump(view, output)
    meta, spec, status = view["metadata"], view["spec"], view["status"]
    if output == "name":
        return typer.echo(meta["name"])
    schedules = spec.get("schedules") or [spec.get("schedule")]
    rows = [("Name", meta["name"]), ("Namespace", meta.get("namespace", "default")),
            ("Created", meta.get("creationTimestamp")), ("Schedules", ", ".join(schedules)),
            ("Timezone", spec.get("timezone") or "(machine local)"),
            ("Suspended", str(bool(spec.get("suspend"))).lower()),
            ("StartingDeadlineSeconds", spec.get("startingDeadlineSeconds", "")),
            ("ConcurrencyPolicy", spec.get("concurrencyPolicy") or "Allow"),
            ("CatchUp", (meta.get("annotations") or {}).get("chute.dev/catch-up", "")),
            ("LastScheduledTime", status.get("lastScheduledTime", "")),
            ("NextScheduledTime", status.get("nextScheduledTime", "")),
            ("Active Workflows", ", ".join(a["name"] for a in status.get("active", [])))]
    for k, v in rows:
        if v not in ("", None):
            typer.echo(f"{k + ':':<31}{v}")
    for c in status.get("conditions") or []:
        typer.echo(f"{'Conditions:':<31}{c['type']}: {c['message']}")


def _cron_docs(files: list[Path]) -> list[tuple[str, Any]]:
    from chute.spec.loader import load_file
    from chute.spec.models import CronWorkflow

    docs = [(str(f), d) for f in files for d in load_file(f)]
    if not docs:
        raise SpecError("no CronWorkflow in the file(s)", ", ".join(map(str, files)))
    for source, d in docs:
        if not isinstance(d, CronWorkflow):
            raise SpecError(f"expected a CronWorkflow, not a {d.kind}", source)
    return docs


def _cron_write(files: list[Path], output: str | None, replace: bool) -> None:
    from chute.spec.loader import to_dict

    _check_output(output, ("name", "json", "yaml"))
    docs = _cron_docs(files)
    if client := backend.remote():
        with backend.session(client):
            for _, d in docs:
                body = {"cronWorkflow": to_dict(d)}
                got = (client.request("PUT", f"/cron-workflows/{d.metadata.name}", json=body)
                       if replace else client.request("POST", "/cron-workflows", json=body))
                _print_cron(got, output)
        return
    from chute.triggers import crons

    store, _ = _store()
    for source, d in docs:
        row = (crons.update if replace else crons.create)(store, d, source=source)
        with store.read() as s:
            _print_cron(crons.view(s, crons.get(s, row.name)), output)


def cron_create(files: Annotated[list[Path], typer.Argument(help="CronWorkflow files")],
                output: Output = None) -> None:
    """Create CronWorkflows from files (the controller runs their schedules)."""
    _cron_write(files, output, replace=False)


def cron_update(files: Annotated[list[Path], typer.Argument(help="CronWorkflow files")],
                output: Output = None) -> None:
    """Replace stored CronWorkflows (a new schedule starts from now: nothing missed)."""
    _cron_write(files, output, replace=True)


def _views(names: list[str] | None = None) -> list[dict[str, Any]]:
    """Views of the named CronWorkflows (every one when ``names`` is None)."""
    if client := backend.remote():
        with backend.session(client):
            if names is None:
                names = [i["name"] for i in client.request("GET", "/cron-workflows")["items"]]
            return [client.request("GET", f"/cron-workflows/{n}") for n in names]
    from chute.triggers import crons

    store, _ = _store()
    with store.read() as s:
        rows = crons.list_all(s) if names is None else [crons.get(s, n) for n in names]
        return [crons.view(s, r) for r in rows]


def cron_list(output: Output = None) -> None:
    """List CronWorkflows: name, age, last run, next run, schedules, suspended."""
    _check_output(output, ("name", "json"))
    views = _views()
    if output == "name":
        for v in views:
            typer.echo(v["metadata"]["name"])
        return
    if output == "json":
        from chute.server.routes_cron import summary

        return typer.echo(json.dumps([summary(v) for v in views], indent=2))
    typer.echo(f"{'NAME':<30} {'AGE':<8} {'LAST RUN':<9} {'NEXT RUN':<9} {'SCHEDULES':<20} "
               f"{'TIMEZONE':<16} SUSPENDED")
    for v in views:
        spec, status = v["spec"], v["status"]
        sched = ",".join(spec.get("schedules") or [spec.get("schedule")])
        typer.echo(f"{v['metadata']['name']:<30} {_age(v['metadata'].get('creationTimestamp')):<8} "
                   f"{_age(status.get('lastScheduledTime')):<9} "
                   f"{_until(status.get('nextScheduledTime')):<9} {sched:<20} "
                   f"{spec.get('timezone') or '':<16} {str(bool(spec.get('suspend'))).lower()}")


def cron_get(name: Annotated[str, typer.Argument(help="CronWorkflow name")],
             output: Output = None) -> None:
    """Show a CronWorkflow: schedules, policy, last and next scheduled time, active runs."""
    _check_output(output, ("name", "json", "yaml"))
    _print_cron(_views([name])[0], output)


def _cron_each(names: list[str], verb: str) -> None:
    if client := backend.remote():
        with backend.session(client):
            for n in names:
                if verb == "delete":
                    client.request("DELETE", f"/cron-workflows/{n}")
                else:
                    client.request("PUT", f"/cron-workflows/{n}/{verb}")
                typer.echo(f"CronWorkflow '{n}' {verb}{'d' if verb != 'suspend' else 'ed'}")
        return
    from chute.triggers import crons

    store, _ = _store()
    for n in names:
        if verb == "delete":
            crons.delete(store, n)
        else:
            crons.set_suspended(store, n, verb == "suspend")
        typer.echo(f"CronWorkflow '{n}' {verb}{'d' if verb != 'suspend' else 'ed'}")


def cron_delete(names: Annotated[list[str], typer.Argument(help="CronWorkflow names")]) -> None:
    """Delete CronWorkflows (the runs they created stay)."""
    _cron_each(names, "delete")


def cron_suspend(names: Annotated[list[str], typer.Argument(help="CronWorkflow names")]) -> None:
    """Suspend CronWorkflows: their slots are skipped until resumed."""
    _cron_each(names, "suspend")


def cron_resume(names: Annotated[list[str], typer.Argument(help="CronWorkflow names")]) -> None:
    """Resume suspended CronWorkflows (slots skipped meanwhile are not run)."""
    _cron_each(names, "resume")


# -- webhook ----------------------------------------------------------------------------

def webhook_create(file: Annotated[Path, typer.Argument(help="WebhookTrigger YAML file")],
                   output: Output = None) -> None:
    """Create a WebhookTrigger; deliveries go to POST /webhooks/NAME on the server."""
    _check_output(output, ("name", "json", "yaml"))
    docs = _read_documents(file)
    if client := backend.remote():
        with backend.session(client):
            for d in docs:
                _print_hook(client.request("POST", "/webhooks", json={"webhook": d}), output)
        return
    from chute.secrets import SecretStore
    from chute.triggers import webhook

    store, settings = _store()
    for d in docs:
        t = webhook.create(store, d, source=str(file), secrets=SecretStore(settings.secrets_dir))
        row = webhook.get(store, t.metadata.name)
        _print_hook({**row.spec, "url": f"/webhooks/{row.name}"}, output)


def _print_hook(doc: dict[str, Any], output: str | None) -> None:
    if output in ("json", "yaml"):
        return _dump(doc, output)
    if output == "name":
        return typer.echo(doc["metadata"]["name"])
    spec = doc["spec"]
    runs = (f"WorkflowTemplate/{spec['workflowTemplateRef']['name']}"
            if spec.get("workflowTemplateRef") else "inline workflow")
    typer.echo(f"{'Name:':<12}{doc['metadata']['name']}")
    typer.echo(f"{'URL:':<12}POST {doc['url']}")
    typer.echo(f"{'Secret:':<12}{spec['webhookSecret']['name']}/{spec['webhookSecret']['key']}")
    typer.echo(f"{'Events:':<12}{', '.join(spec.get('events') or ['(all)'])}")
    typer.echo(f"{'Runs:':<12}{runs}")
    for p in spec.get("parameters") or []:
        typer.echo(f"{'Parameter:':<12}{p['name']} <- {p['src']['dataKey']}")


def _hooks(name: str | None = None) -> list[dict[str, Any]]:
    if client := backend.remote():
        with backend.session(client):
            if name is not None:
                return [client.request("GET", f"/webhooks/{name}")]
            return client.request("GET", "/webhooks")["items"]
    from chute.triggers import webhook

    store, _ = _store()
    rows = [webhook.get(store, name)] if name is not None else webhook.list_all(store)
    return [{**r.spec, "url": f"/webhooks/{r.name}"} for r in rows]


def webhook_list(output: Output = None) -> None:
    """List WebhookTriggers."""
    _check_output(output, ("name", "json"))
    hooks = _hooks()
    if output == "json":
        return typer.echo(json.dumps(hooks, indent=2))
    if output != "name":
        typer.echo(f"{'NAME':<30} {'RUNS':<36} URL")
    for h in hooks:
        if output == "name":
            typer.echo(h["metadata"]["name"])
            continue
        ref = h["spec"].get("workflowTemplateRef")
        runs = f"WorkflowTemplate/{ref['name']}" if ref else "inline workflow"
        typer.echo(f"{h['metadata']['name']:<30} {runs:<36} POST {h['url']}")


def webhook_get(name: Annotated[str, typer.Argument(help="webhook name")],
                output: Output = None) -> None:
    """Show a WebhookTrigger."""
    _check_output(output, ("name", "json", "yaml"))
    _print_hook(_hooks(name)[0], output)


def webhook_delete(name: Annotated[str, typer.Argument(help="webhook name")]) -> None:
    """Delete a WebhookTrigger (its runs stay)."""
    from chute.triggers import webhook

    _delete(f"/webhooks/{name}", lambda: webhook.delete(_store()[0], name))
    typer.echo(f"WebhookTrigger '{name}' deleted")


# -- trigger (data arrival, metric threshold) ---------------------------------------------

def trigger_create(file: Annotated[Path, typer.Argument(help="DataTrigger/MetricTrigger file")],
                   output: Output = None) -> None:
    """Create a DataTrigger or MetricTrigger (the controller polls it)."""
    _check_output(output, ("name", "json", "yaml"))
    docs = _read_documents(file)
    if client := backend.remote():
        with backend.session(client):
            for d in docs:
                _print_trigger(client.request("POST", "/triggers", json={"trigger": d}), output)
        return
    from chute.triggers import polling

    store, _ = _store()
    for d in docs:
        t = polling.create(store, d, source=str(file))
        _print_trigger(polling.view(polling.get(store, t.metadata.name)), output)


def _print_trigger(doc: dict[str, Any], output: str | None) -> None:
    if output in ("json", "yaml"):
        return _dump(doc, output)
    if output == "name":
        return typer.echo(doc["metadata"]["name"])
    spec, status = doc["spec"], doc.get("status") or {}
    if doc["kind"] == "DataTrigger":
        s3 = spec.get("s3") or {}
        where = spec.get("path") or f"s3://{s3.get('bucket')}/{s3.get('keyPrefix', '')}"
        what = f"new files in {where}" + (f" matching {spec['pathRegexp']}"
                                          if spec.get("pathRegexp") else "")
    else:
        what = f"metric {spec['metric']} where {spec['condition']}"
    ref = spec.get("workflowTemplateRef")
    typer.echo(f"{'Name:':<12}{doc['metadata']['name']}")
    typer.echo(f"{'Kind:':<12}{doc['kind']}")
    typer.echo(f"{'When:':<12}{what}")
    typer.echo(f"{'Runs:':<12}{'WorkflowTemplate/' + ref['name'] if ref else 'inline workflow'}")
    if status.get("message"):
        typer.echo(f"{'Message:':<12}{status['message']}")


def _triggers(name: str | None = None) -> list[dict[str, Any]]:
    if client := backend.remote():
        with backend.session(client):
            if name is not None:
                return [client.request("GET", f"/triggers/{name}")]
            return client.request("GET", "/triggers")["items"]
    from chute.triggers import polling

    store, _ = _store()
    rows = [polling.get(store, name)] if name is not None else polling.list_all(store)
    return [polling.view(r) for r in rows]


def trigger_list(output: Output = None) -> None:
    """List DataTriggers and MetricTriggers."""
    _check_output(output, ("name", "json"))
    found = _triggers()
    if output == "json":
        return typer.echo(json.dumps(found, indent=2))
    if output != "name":
        typer.echo(f"{'NAME':<30} {'KIND':<14} MESSAGE")
    for t in found:
        if output == "name":
            typer.echo(t["metadata"]["name"])
        else:
            typer.echo(f"{t['metadata']['name']:<30} {t['kind']:<14} "
                       f"{t['status'].get('message') or ''}")


def trigger_get(name: Annotated[str, typer.Argument(help="trigger name")],
                output: Output = None) -> None:
    """Show a DataTrigger or MetricTrigger."""
    _check_output(output, ("name", "json", "yaml"))
    _print_trigger(_triggers(name)[0], output)


def trigger_delete(name: Annotated[str, typer.Argument(help="trigger name")]) -> None:
    """Delete a DataTrigger or MetricTrigger (its runs stay)."""
    from chute.triggers import polling

    _delete(f"/triggers/{name}", lambda: polling.delete(_store()[0], name))
    typer.echo(f"trigger '{name}' deleted")


def register(app: typer.Typer) -> None:
    """Add ``chute cron ...`` and ``chute webhook ...`` to the app."""
    cron = typer.Typer(help="CronWorkflows: workflows started on a schedule by the "
                            "controller.", no_args_is_help=True)
    for name, fn in (("create", cron_create), ("update", cron_update), ("list", cron_list),
                     ("get", cron_get),
                     ("delete", cron_delete), ("suspend", cron_suspend),
                     ("resume", cron_resume)):
        cron.command(name)(fn)
    app.add_typer(cron, name="cron")
    hook = typer.Typer(help="WebhookTriggers: HMAC-signed deliveries to the server start "
                            "workflows.", no_args_is_help=True)
    for name, fn in (("create", webhook_create), ("list", webhook_list),
                     ("get", webhook_get), ("delete", webhook_delete)):
        hook.command(name)(fn)
    app.add_typer(hook, name="webhook")
    trig = typer.Typer(help="DataTriggers (new files) and MetricTriggers (a reported metric "
                            "meets a condition) start workflows.", no_args_is_help=True)
    for name, fn in (("create", trigger_create), ("list", trigger_list),
                     ("get", trigger_get), ("delete", trigger_delete)):
        trig.command(name)(fn)
    app.add_typer(trig, name="trigger")
