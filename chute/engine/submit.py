"""Submitting a workflow: validate, refuse what the local runtime cannot honour, check
parameters, then write the workflow row — all or nothing."""

from __future__ import annotations

import secrets
import string
import time
import uuid
from collections.abc import Mapping
from typing import Any

from chute.engine.controller import store_lookup
from chute.engine.crashpoints import crash_point
from chute.engine.plan import build_plan
from chute.engine.state_format import STATE_FORMAT
from chute.errors import SpecError, UserError
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


def submit(store: Store, resource: Workflow, overrides: Mapping[str, str] | None = None, *,
           owner: str | None = None, lease_ttl: float = 15.0, source: str | None = None,
           labels: Mapping[str, str] | None = None) -> WorkflowRow:
    """Create a Pending workflow from ``resource``; raise a UserError and write nothing if
    it is invalid, asks for what the local runtime cannot do, or has bad parameters.
    With ``owner`` the new workflow's lease is taken at once (an embedded controller)."""
    if not isinstance(resource, Workflow):
        raise SpecError(f"can only submit a Workflow, not a {resource.kind}", source)
    issues = validate(resource, "local", templates=stored_templates(store))
    if issues:
        raise SpecError(issues, source)
    doc = to_dict(resource)
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
    )
    with store.write() as s:
        q.create_workflow(s, row)
    crash_point("submit.created")
    return row
