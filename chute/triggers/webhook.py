"""Webhook triggers: an HMAC-signed HTTP delivery submits a workflow, once per delivery.

A ``WebhookTrigger`` is what an Argo Events user writes as a GitHub/webhook EventSource
plus a Sensor with one ``argoWorkflow`` trigger, folded into one small resource::

    apiVersion: chute.dev/v1alpha1
    kind: WebhookTrigger
    metadata: {name: github-push}
    spec:
      webhookSecret: {name: github, key: secret}  # a chute secret, as the EventSource's
      events: [push]                 # X-GitHub-Event values that trigger (default: all)
      workflowTemplateRef: {name: build}          # or  workflow: {<a Workflow resource>}
      parameters:                    # as a Sensor's trigger parameters: src.dataKey
      - name: ref                    #   -> this workflow parameter
        src: {dataKey: body.ref, value: refs/heads/main}   # value: used when absent

A delivery is ``POST /webhooks/<name>`` (no bearer token: the signature is the
credential). It must carry ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw
body under the secret>`` (GitHub's header; compared in constant time; else 401 and
nothing happens) and a delivery id, ``X-GitHub-Delivery`` or ``X-Chute-Delivery``, which
becomes the idempotency key ``webhook:<name>:<id>``: the same delivery sent again, even
five times at once, makes one run (RELIABILITY D-3). GitHub's ``ping`` event, and events
not in ``events``, are acknowledged and make no run.

``dataKey`` is a dotted path into the event ``{"header": {...}, "body": {...}}`` (Argo
Events' event data): ``body.repository.full_name``, ``body.commits.0.id``,
``header.X-GitHub-Event`` (header names in any case). Objects and lists arrive as JSON
text, other values as text. Nothing in a payload is ever evaluated.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import parse_qs

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select

from chute.engine.controller import store_lookup
from chute.engine.plan import build_plan
from chute.engine.submit import check_key, submit_once
from chute.errors import (
    ConflictError,
    Issue,
    NotFoundError,
    ParameterError,
    SpecError,
    UserError,
)
from chute.secrets import SecretStore, check_secret_name
from chute.spec.loader import load_resource
from chute.store.db import Store
from chute.store.models import WorkflowRow
from chute.store.models_triggers import WebhookRow

API_VERSION = "chute.dev/v1alpha1"
KIND = "WebhookTrigger"
SIGNATURE_HEADER = "x-hub-signature-256"
DELIVERY_HEADERS = ("x-github-delivery", "x-chute-delivery")
EVENT_HEADER = "x-github-event"
WEBHOOK_LABEL = "chute.dev/webhook"
MISSING = "X-Hub-Signature-256: missing, or not sha256=<hex digest>"
MISMATCH = "X-Hub-Signature-256: the signature does not match the body"


class SignatureError(UserError):
    """A delivery whose signature is missing or wrong (HTTP 401)."""

    http_status = 401
    code = "unauthorized"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SecretRef(_Model):
    """A key of a chute secret (``chute secret create``)."""

    name: str
    key: str


class DataSource(_Model):
    """Where a parameter's value comes from in the event (Argo Events' TriggerParameterSource)."""

    dataKey: str = Field(min_length=1, max_length=500)
    value: str | None = None  # the default when dataKey is absent


class TriggerParameter(_Model):
    """One workflow parameter taken from the delivery."""

    name: str = Field(min_length=1, max_length=253)
    src: DataSource


class TemplateRef(_Model):
    """The (Cluster)WorkflowTemplate a delivery runs."""

    name: str = Field(min_length=1, max_length=253)
    clusterScope: bool | None = None


class WebhookTriggerSpec(_Model):
    """What a delivery must prove and what it runs."""

    webhookSecret: SecretRef
    events: list[str] | None = None
    workflowTemplateRef: TemplateRef | None = None
    workflow: dict[str, Any] | None = None
    parameters: list[TriggerParameter] = []


class Meta(_Model):
    """Name (and namespace) of a WebhookTrigger; labels and annotations are kept."""

    name: str = Field(min_length=1, max_length=253)
    namespace: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class WebhookTrigger(_Model):
    """A webhook trigger resource."""

    apiVersion: Literal["chute.dev/v1alpha1"]
    kind: Literal["WebhookTrigger"]
    metadata: Meta
    spec: WebhookTriggerSpec


def parse(doc: Any, source: str | None = None) -> WebhookTrigger:
    """A WebhookTrigger from parsed YAML/JSON, or SpecError naming each bad field."""
    if not isinstance(doc, dict):
        raise SpecError("expected a WebhookTrigger mapping", source)
    try:
        res = WebhookTrigger.model_validate(doc)
    except ValidationError as exc:
        issues = [Issue(".".join(str(p) for p in e["loc"]), e["msg"])
                  for e in exc.errors(include_url=False)]
        raise SpecError(issues, source) from None
    check_secret_name(res.metadata.name)  # it is a URL path segment
    if (res.spec.workflowTemplateRef is None) == (res.spec.workflow is None):
        raise SpecError(Issue("spec", "give exactly one of workflowTemplateRef or workflow"),
                        source)
    names = [p.name for p in res.spec.parameters]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise SpecError(Issue("spec.parameters", f"parameter {min(dup)!r} is given "
                                                 "twice"), source)
    return res


def workflow_of(trigger: WebhookTrigger) -> dict[str, Any]:
    """The Workflow resource a delivery submits (before its parameters)."""
    spec, name = trigger.spec, trigger.metadata.name
    if spec.workflow is not None:
        doc = json.loads(json.dumps(spec.workflow))
        meta = doc.setdefault("metadata", {})
        if not meta.get("name"):
            meta.setdefault("generateName", f"{name}-")
        else:  # a fixed name could run once only; each delivery needs its own
            meta["generateName"] = f"{meta.pop('name')}-"
    else:
        ref = spec.workflowTemplateRef
        assert ref is not None
        doc = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
               "metadata": {"generateName": f"{ref.name}-"},
               "spec": {"workflowTemplateRef": ref.model_dump(exclude_none=True)}}
    doc["metadata"]["labels"] = {**(doc["metadata"].get("labels") or {}), WEBHOOK_LABEL: name}
    return doc


def create(store: Store, doc: Any, *, source: str | None = None,
           secrets: SecretStore | None = None) -> WebhookTrigger:
    """Check and store a WebhookTrigger; ConflictError if the name is taken. Its workflow
    must resolve with its parameters now, and its secret must exist."""
    trigger = parse(doc, source)
    wf = workflow_of(trigger)
    resource = load_resource(wf)
    from chute.engine.submit import stored_templates
    from chute.spec.validate import validate

    issues = validate(resource, "local", templates=stored_templates(store))
    if issues:
        raise SpecError([Issue(f"spec.workflow.{i.path}", i.message) for i in issues], source)
    build_plan(wf, uid="webhook-check", created_at=0.0,
               overrides={p.name: p.src.value or "" for p in trigger.spec.parameters},
               lookup=store_lookup(store))
    (secrets or SecretStore()).get_bytes(trigger.spec.webhookSecret.name,
                                         trigger.spec.webhookSecret.key)
    stored = trigger.model_dump(mode="json", exclude_none=True)
    with store.write() as s:
        if s.get(WebhookRow, trigger.metadata.name) is not None:
            raise ConflictError(f"webhook {trigger.metadata.name!r} already exists")
        s.add(WebhookRow(name=trigger.metadata.name,
                         namespace=trigger.metadata.namespace or "default",
                         spec=stored, created_at=time.time()))
    return trigger


def get(store: Store, name: str) -> WebhookRow:
    """The stored webhook ``name``, or NotFoundError."""
    with store.read() as s:
        row = s.get(WebhookRow, name)
    if row is None:
        raise NotFoundError(f"webhook {name!r} not found")
    return row


def list_all(store: Store) -> list[WebhookRow]:
    """Every stored webhook, by name."""
    with store.read() as s:
        return list(s.scalars(select(WebhookRow).order_by(WebhookRow.name)))


def delete(store: Store, name: str) -> None:
    """Delete webhook ``name`` (its runs stay)."""
    with store.write() as s:
        row = s.get(WebhookRow, name)
        if row is None:
            raise NotFoundError(f"webhook {name!r} not found")
        s.delete(row)


def signature(secret: bytes, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value of ``body`` under ``secret``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, header: str | None) -> None:
    """SignatureError unless ``header`` is the body's HMAC-SHA256 (constant time)."""
    if not header or not header.startswith("sha256="):
        raise SignatureError(MISSING)
    if not hmac.compare_digest(signature(secret, body).encode(), header.strip().encode()):
        raise SignatureError(MISMATCH)


def lookup(event: Mapping[str, Any], key: str) -> Any:
    """The value at dotted ``key`` in ``event``, or KeyError (no evaluation, ever)."""
    cur: Any = event
    for i, part in enumerate(key.split(".")):
        if isinstance(cur, Mapping):
            if part in cur:
                cur = cur[part]
            elif i == 1 and key.startswith("header."):  # header names ignore case
                match = [v for k, v in cur.items() if k.lower() == part.lower()]
                if not match:
                    raise KeyError(key)
                cur = match[0]
            else:
                raise KeyError(key)
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            raise KeyError(key)
    return cur


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _body(headers: Mapping[str, str], raw: bytes) -> Any:
    ctype = headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if ctype == "application/x-www-form-urlencoded":  # GitHub's other content type
            form = parse_qs(raw.decode("utf-8"), strict_parsing=False)
            return json.loads(form["payload"][0]) if "payload" in form else {
                k: v[0] for k, v in form.items()}
        return json.loads(raw) if raw.strip() else {}
    except (ValueError, UnicodeDecodeError, KeyError):
        raise UserError("body: not valid JSON (or a form with a JSON 'payload')") from None


def deliver(store: Store, name: str, headers: Mapping[str, str], raw: bytes, *,
            secrets: SecretStore | None = None) -> tuple[WorkflowRow | None, bool, str]:
    """Handle one delivery to webhook ``name``: (run, created, why no run). ``headers``
    are lower-cased names. Raises SignatureError (401) before reading anything else when
    the signature is wrong; a replayed delivery id returns its run with created False."""
    header = headers.get(SIGNATURE_HEADER)
    if not header or not header.startswith("sha256="):
        raise SignatureError(MISSING)
    try:
        row = get(store, name)
    except NotFoundError:
        # 401 as for a wrong signature, with the same message: an unsigned caller learns
        # nothing about which webhooks exist
        raise SignatureError(MISMATCH) from None
    trigger = WebhookTrigger.model_validate(row.spec)
    ref = trigger.spec.webhookSecret
    verify((secrets or SecretStore()).get_bytes(ref.name, ref.key), raw, header)
    event_type = headers.get(EVENT_HEADER)
    if event_type == "ping":
        return None, False, "ping"
    if trigger.spec.events and event_type not in trigger.spec.events:
        return None, False, f"event {event_type!r} is not in spec.events"
    delivery = next((headers[h] for h in DELIVERY_HEADERS if headers.get(h)), None)
    if not delivery:
        raise UserError("X-GitHub-Delivery (or X-Chute-Delivery): a delivery id is required")
    key = check_key(f"webhook:{name}:{delivery.strip()}")
    event = {"header": dict(headers), "body": _body(headers, raw)}
    params: dict[str, str] = {}
    for p in trigger.spec.parameters:
        try:
            params[p.name] = _text(lookup(event, p.src.dataKey))
        except KeyError:
            if p.src.value is None:
                raise ParameterError(f"spec.parameters[{p.name}]: {p.src.dataKey!r} is not "
                                     "in the delivery and has no default value") from None
            params[p.name] = p.src.value
    wf = load_resource(workflow_of(trigger))
    run, created = submit_once(store, wf, params, idempotency_key=key,
                               source=f"webhook/{name}")
    return run, created, ""
