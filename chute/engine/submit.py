"""Submitting a workflow: validate, refuse what the local runtime cannot honour, check
parameters, then write the workflow row — all or nothing."""

from __future__ import annotations

import hashlib
import json
import secrets
import string
import time
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy.exc import IntegrityError

from chute.engine.controller import store_lookup
from chute.engine.crashpoints import crash_point
from chute.engine.plan import build_plan
from chute.engine.state_format import STATE_FORMAT
from chute.errors import ConflictError, SpecError, UserError
from chute.spec.loader import load_resource, to_dict
from chute.spec.models import ClusterWorkflowTemplate, Workflow, WorkflowTemplate
from chute.spec.validate import validate
from chute.store import queries as q
from chute.store.db import Store
from chute.store.models import WorkflowRow

_ALNUM = string.ascii_lowercase + string.digits


def stored_templates(store: Store) -> dict[str, Any]:
    """Stored templates as validate() wants them (``name`` / ``ClusterWorkflowTemplate/name``)."""
    out: dict[str, Any] = {}
    with store.read() as s:
        rows = q.list_templates(s)
        for row in rows:
            try:
                res = load_resource(row.spec)
            except UserError:
                continue
            key = row.name if row.kind == "WorkflowTemplate" else f"{row.kind}/{row.name}"
            out[key] = res
    return out


def store_template(store: Store, resource: WorkflowTemplate | ClusterWorkflowTemplate) -> str:
    """Validate and store (create or replace) a WorkflowTemplate; returns its name."""
    issues = validate(resource, "local", templates=stored_templates(store))
    if issues:
        raise SpecError(issues)
    with store.write() as s:
        q.put_template(s, resource.kind, resource.metadata.name or "",
                       resource.metadata.namespace or "default", to_dict(resource), time.time())
    return resource.metadata.name or ""


def request_digest(resource: Mapping[str, Any], overrides: Mapping[str, str] | None,
                   labels: Mapping[str, str] | None) -> str:
    """A digest of what a submission asks for: a replay under the same idempotency key
    must ask for exactly this again."""
    body = {"resource": resource, "parameters": dict(overrides or {}),
            "labels": dict(labels or {})}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def _replay(row: WorkflowRow, key: str, digest: str) -> WorkflowRow:
    if row.request_digest != digest:
        raise ConflictError(f"Idempotency-Key {key!r} was already used for run {row.name!r} "
                            "with a different request")
    return row


def check_key(key: str) -> str:
    """An idempotency key as given, or UserError: 1-255 printable ASCII characters."""
    if not (0 < len(key) <= 255) or not all(" " <= c <= "~" for c in key):
        raise UserError("Idempotency-Key: expected 1 to 255 printable ASCII characters")
    return key


def submit(store: Store, resource: Workflow, overrides: Mapping[str, str] | None = None, *,
           owner: str | None = None, lease_ttl: float = 15.0, source: str | None = None,
           labels: Mapping[str, str] | None = None,
           idempotency_key: str | None = None) -> WorkflowRow:
    """Create a Pending workflow from ``resource``; raise a UserError and write nothing if
    it is invalid, asks for what the local runtime cannot do, or has bad parameters.
    With ``owner`` the new workflow's lease is taken at once (an embedded controller).
    With ``idempotency_key``, see :func:`submit_once`."""
    return submit_once(store, resource, overrides, owner=owner, lease_ttl=lease_ttl,
                       source=source, labels=labels, idempotency_key=idempotency_key)[0]


def submit_once(store: Store, resource: Workflow, overrides: Mapping[str, str] | None = None,
                *, owner: str | None = None, lease_ttl: float = 15.0,
                source: str | None = None, labels: Mapping[str, str] | None = None,
                idempotency_key: str | None = None) -> tuple[WorkflowRow, bool]:
    """:func:`submit`, and whether the run was created. A submission whose
    ``idempotency_key`` was seen before creates nothing: it returns the run created then
    (``False``) if it asks for the same thing, else raises ConflictError naming the key.
    Concurrent submissions of one key create exactly one run (the key is unique in the
    store). Webhook deliveries and cron slots are to use their delivery id / slot as key."""
    if not isinstance(resource, Workflow):
        raise SpecError(f"can only submit a Workflow, not a {resource.kind}", source)
    issues = validate(resource, "local", templates=stored_templates(store))
    if issues:
        raise SpecError(issues, source)
    doc = to_dict(resource)
    key = check_key(idempotency_key) if idempotency_key is not None else None
    digest = request_digest(doc, overrides, labels) if key else None
    if key:
        with store.read() as s:
            seen = q.workflow_by_key(s, key)
        if seen is not None:
            return _replay(seen, key, digest), False
    meta = doc.setdefault("metadata", {})
    now = time.time()
    uid = str(uuid.uuid4())
    with store.read() as s:
        name = meta.get("name")
        if not name:
            prefix = meta.get("generateName") or "workflow-"
            for _ in range(20):
                name = prefix + "".join(secrets.choice(_ALNUM) for _ in range(5))
                if not q.name_exists(s, name):
                    break
        meta["name"] = name
        meta.pop("generateName", None)
    meta["uid"] = uid
    meta.setdefault("namespace", "default")
    # parameters, templateRefs and workflowTemplateRef must resolve before anything is written
    build_plan(doc, uid=uid, created_at=now, overrides=overrides or {},
               lookup=store_lookup(store))
    row = WorkflowRow(
        uid=uid, name=name, namespace=meta["namespace"], kind="Workflow", spec=doc,
        arguments=dict(overrides or {}), phase="Pending", created_at=now,
        suspended=bool(doc.get("spec", {}).get("suspend")),
        labels={**(meta.get("labels") or {}), **dict(labels or {})}, outputs={},
        lease_owner=owner, lease_expires_at=(now + lease_ttl) if owner else None,
        state_format=STATE_FORMAT,
        idempotency_key=key, request_digest=digest,
    )
    try:
        with store.write() as s:
            # inside the write transaction: on SQLite (BEGIN IMMEDIATE) this is exact
            seen = q.workflow_by_key(s, key) if key else None
            if seen is None:
                q.create_workflow(s, row)
    except (IntegrityError, ConflictError):
        # PostgreSQL: a concurrent submission committed the same key (or name) first,
        # caught by a unique index or, once it committed, by create_workflow's name check
        # (a cron slot's run has a fixed name)
        with store.read() as s:
            seen = q.workflow_by_key(s, key) if key else None
            if seen is None and q.name_exists(s, name):
                raise ConflictError(f"workflow {name!r} already exists") from None
        if seen is None:
            raise
    if seen is not None:
        return _replay(seen, key, digest), False
    crash_point("submit.created")
    return row, True
