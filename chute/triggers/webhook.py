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

from chute.errors import ConflictError, NotFoundError, UserError
from chute.secrets import SecretStore
from chute.store.db import Store
from chute.store.models import WorkflowRow
from chute.store.models_triggers import WebhookRow
from chute.triggers import stored
from chute.triggers import target as T

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


class SecretRef(T.Strict):
    """A key of a chute secret (``chute secret create``)."""

    name: str
    key: str


class WebhookTriggerSpec(T.TargetSpec):
    """What a delivery must prove, which events count, and what it runs."""

    webhookSecret: SecretRef
    events: list[str] | None = None


class WebhookTrigger(T.Strict):
    """A webhook trigger resource."""

    apiVersion: Literal["chute.dev/v1alpha1"]
    kind: Literal["WebhookTrigger"]
    metadata: T.Meta
    spec: WebhookTriggerSpec


def parse(doc, source: str | None = None) -> WebhookTrigger:
    """A WebhookTrigger from parsed YAML/JSON, or SpecError naming each bad field."""
    return T.parse_model(WebhookTrigger, doc, source)


def create(store: Store, doc, *, source: str | None = None,
           secrets: SecretStore | None = None) -> WebhookTrigger:
    """Check and store a WebhookTrigger; ConflictError if the name is taken. Its workflow
    must resolve with its parameters now, and its secret must exist."""
    trigger = parse(doc, source)
    T.check_target(store, trigger.spec, trigger.metadata.name, WEBHOOK_LABEL, source)
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
    return stored.get(store, WebhookRow, name, "webhook")


def list_all(store: Store) -> list[WebhookRow]:
    """Every stored webhook, by name."""
    return stored.list_all(store, WebhookRow)


def delete(store: Store, name: str) -> None:
    """Delete webhook ``name`` (its runs stay)."""
    stored.delete(store, WebhookRow, name, "webhook")


def signature(secret: bytes, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value of ``body`` under ``secret``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, header: str | None) -> None:
    """SignatureError unless ``header`` is the body's HMAC-SHA256 (constant time)."""
    if not header or not header.startswith("sha256="):
        raise SignatureError(MISSING)
    if not hmac.compare_digest(signature(secret, body).encode(), header.strip().encode()):
        raise SignatureError(MISMATCH)


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
    event = {"header": dict(headers), "body": _body(headers, raw)}
    return (*T.fire(store, trigger.spec, name, WEBHOOK_LABEL, event,
                    f"webhook:{name}:{delivery.strip()}", f"webhook/{name}"), "")
