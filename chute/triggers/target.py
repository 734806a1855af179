"""What a trigger runs and with which parameters: the part every chute trigger resource
shares (webhook, data arrival, metric threshold), shaped as an Argo Events Sensor's
``argoWorkflow`` trigger.

A trigger's ``spec`` names a ``workflowTemplateRef`` (a stored (Cluster)WorkflowTemplate)
or an inline ``workflow`` resource, and ``parameters``: each takes its value from the
event at ``src.dataKey`` (a dotted path into ``{"header": ..., "body": ...}``; objects and
lists arrive as JSON text) or ``src.value`` when the key is absent. Nothing in an event is
ever evaluated. :func:`fire` submits through ``submit_once`` under the trigger's key for
the occasion, so one occasion makes one run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chute.engine.controller import store_lookup
from chute.engine.plan import build_plan
from chute.engine.submit import check_key, stored_templates, submit_once
from chute.errors import Issue, ParameterError, SpecError
from chute.secrets import check_secret_name
from chute.spec.loader import load_resource
from chute.spec.validate import validate
from chute.store.db import Store
from chute.store.models import WorkflowRow

API_VERSION = "chute.dev/v1alpha1"


class Strict(BaseModel):
    """Base of the trigger models: unknown fields are errors."""

    model_config = ConfigDict(extra="forbid")


class DataSource(Strict):
    """Where a parameter's value comes from (Argo Events' TriggerParameterSource)."""

    dataKey: str = Field(min_length=1, max_length=500)
    value: str | None = None  # the default when dataKey is absent


class TriggerParameter(Strict):
    """One workflow parameter taken from the event."""

    name: str = Field(min_length=1, max_length=253)
    src: DataSource


class TemplateRef(Strict):
    """The (Cluster)WorkflowTemplate a trigger runs."""

    name: str = Field(min_length=1, max_length=253)
    clusterScope: bool | None = None


class TargetSpec(Strict):
    """The workflow a trigger submits and the parameters it maps from the event."""

    workflowTemplateRef: TemplateRef | None = None
    workflow: dict[str, Any] | None = None
    parameters: list[TriggerParameter] = []


class Meta(Strict):
    """Name (and namespace) of a trigger; labels and annotations are kept."""

    name: str = Field(min_length=1, max_length=253)
    namespace: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


def parse_model(model: type[BaseModel], doc: Any, source: str | None = None) -> Any:
    """``doc`` validated as ``model`` (a trigger resource), or SpecError naming each bad
    field; checks what every trigger's spec must hold."""
    if not isinstance(doc, dict):
        raise SpecError(f"expected a {model.__name__} mapping", source)
    try:
        res = model.model_validate(doc)
    except ValidationError as exc:
        issues = [Issue(".".join(str(p) for p in e["loc"]), e["msg"])
                  for e in exc.errors(include_url=False)]
        raise SpecError(issues, source) from None
    check_secret_name(res.metadata.name)  # it is a URL path segment
    spec = res.spec
    if (spec.workflowTemplateRef is None) == (spec.workflow is None):
        raise SpecError(Issue("spec", "give exactly one of workflowTemplateRef or workflow"),
                        source)
    names = [p.name for p in spec.parameters]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise SpecError(Issue("spec.parameters", f"parameter {min(dup)!r} is given twice"),
                        source)
    return res


def workflow_of(spec: TargetSpec, name: str, label: str) -> dict[str, Any]:
    """The Workflow resource the trigger ``name`` submits (before its parameters),
    labelled ``label: name``; each submission gets a generated name."""
    if spec.workflow is not None:
        doc = json.loads(json.dumps(spec.workflow))
        meta = doc.setdefault("metadata", {})
        if not meta.get("name"):
            meta.setdefault("generateName", f"{name}-")
        else:  # a fixed name could run once only; each occasion needs its own
            meta["generateName"] = f"{meta.pop('name')}-"
    else:
        ref = spec.workflowTemplateRef
        assert ref is not None
        doc = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
               "metadata": {"generateName": f"{ref.name}-"},
               "spec": {"workflowTemplateRef": ref.model_dump(exclude_none=True)}}
    doc["metadata"]["labels"] = {**(doc["metadata"].get("labels") or {}), label: name}
    return doc


def check_target(store: Store, spec: TargetSpec, name: str, label: str,
                 source: str | None = None) -> None:
    """The trigger's workflow must validate and resolve (templates, parameter names) now."""
    wf = workflow_of(spec, name, label)
    issues = validate(load_resource(wf), "local", templates=stored_templates(store))
    if issues:
        raise SpecError([Issue(f"spec.workflow.{i.path}", i.message) for i in issues], source)
    build_plan(wf, uid="trigger-check", created_at=0.0,
               overrides={p.name: p.src.value or "" for p in spec.parameters},
               lookup=store_lookup(store))


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


def as_text(value: Any) -> str:
    """A parameter value: strings as they are, other scalars as JSON, the rest as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def parameters_from(spec: TargetSpec, event: Mapping[str, Any]) -> dict[str, str]:
    """The workflow parameters of ``event``; ParameterError naming an absent key."""
    out: dict[str, str] = {}
    for p in spec.parameters:
        try:
            out[p.name] = as_text(lookup(event, p.src.dataKey))
        except KeyError:
            if p.src.value is None:
                raise ParameterError(f"spec.parameters[{p.name}]: {p.src.dataKey!r} is not "
                                     "in the event and has no default value") from None
            out[p.name] = p.src.value
    return out


def fire(store: Store, spec: TargetSpec, name: str, label: str, event: Mapping[str, Any],
         key: str, source: str) -> tuple[WorkflowRow, bool]:
    """Submit the trigger's workflow for ``event`` under idempotency ``key``: (run, created)."""
    params = parameters_from(spec, event)
    wf = load_resource(workflow_of(spec, name, label))
    return submit_once(store, wf, params, idempotency_key=check_key(key), source=source)
