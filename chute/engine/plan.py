"""The immutable plan of a run: the workflow's templates (plain Argo JSON), the stored
templates it references, its global parameters and identity.

The engine works on the JSON shape of the spec (what ``chute.spec.loader.to_dict`` gives):
substitution of ``{{...}}`` is a walk over strings, and a 10,000-item loop does not build
10,000 pydantic models. The spec models validated the resource at submit time.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from chute.errors import NotFoundError, ParameterError, SpecError, UnsupportedError

#: Looks up a stored template resource (as a dict) by kind and name; None if missing.
TemplateLookup = Callable[[str, str], "dict[str, Any] | None"]

#: Template fields that select the kind; templateDefaults never supplies them.
KIND_FIELDS = ("container", "script", "dag", "steps", "suspend", "resource", "http",
               "containerSet", "data", "plugin")


class TemplateScope(NamedTuple):
    """Where template names resolve: the workflow itself or a stored (Cluster)WorkflowTemplate.
    (A named tuple: it is hashed to resolve every step's template, in C.)"""

    kind: str  # "Workflow", "WorkflowTemplate" or "ClusterWorkflowTemplate"
    name: str


@dataclass
class Plan:
    """Everything fixed about a run before it starts."""

    name: str
    uid: str
    namespace: str
    created_at: float
    spec: dict[str, Any]  # the effective WorkflowSpec (workflowTemplateRef merged in)
    parameters: dict[str, str]  # global parameters after -p overrides
    templates: dict[TemplateScope, dict[str, dict[str, Any]]]  # scope -> name -> template
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    steps_root: Path = Path("/tmp/chute-steps")
    logs_root: Path = Path("/tmp/chute-logs")

    @property
    def root_scope(self) -> TemplateScope:
        """The scope of the workflow's own templates."""
        return TemplateScope("Workflow", self.name)

    @property
    def entrypoint(self) -> str:
        """Name of the template the workflow starts with."""
        ep = self.spec.get("entrypoint")
        if not ep:
            raise SpecError("spec.entrypoint: required")
        return ep

    @functools.cached_property
    def parallelism(self) -> int | None:
        """Workflow-level limit on pods running at once (read for every pod launched)."""
        p = self.spec.get("parallelism")
        return int(p) if p else None

    def resolve(self, call: Mapping[str, Any], scope: TemplateScope) -> tuple[dict[str, Any], TemplateScope]:
        """The template a step/task calls (``template``, ``templateRef`` or ``inline``)."""
        if call.get("inline") is not None:
            return call["inline"], scope
        ref = call.get("templateRef")
        if ref:
            kind = "ClusterWorkflowTemplate" if ref.get("clusterScope") else "WorkflowTemplate"
            target = TemplateScope(kind, ref.get("name") or "")
            tmpl = self.templates.get(target, {}).get(ref.get("template") or "")
            if tmpl is None:
                raise NotFoundError(
                    f"template {ref.get('template')!r} not found in {kind} {target.name!r}")
            return tmpl, target
        name = call.get("template")
        tmpl = self.templates.get(scope, {}).get(name or "")
        if tmpl is None:
            raise NotFoundError(f"template {name!r} not found")
        return tmpl, scope


def _apply_defaults(templates: list[dict[str, Any]], defaults: dict[str, Any] | None) -> list[dict]:
    """Argo's templateDefaults: each template's own fields win over the defaults."""
    if not defaults:
        return templates
    base = {k: v for k, v in defaults.items() if k not in KIND_FIELDS and k != "name"}
    return [{**copy.deepcopy(base), **t} for t in templates]


def _refs_in(value: Any, out: set[tuple[str, str]]) -> None:
    """Collect (kind, name) of every templateRef inside ``value``. (A walk over the dicts
    and lists only, with a stack: a call per string was most of it, for every task.)"""
    stack = [value]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            ref = value.get("templateRef")
            if isinstance(ref, dict) and ref.get("name"):
                kind = ("ClusterWorkflowTemplate" if ref.get("clusterScope")
                        else "WorkflowTemplate")
                out.add((kind, ref["name"]))
            items = value.values()
        elif isinstance(value, list):
            items = value
        else:
            continue
        for v in items:
            if isinstance(v, dict | list):
                stack.append(v)


def merge_workflow_template(spec: dict[str, Any], lookup: TemplateLookup) -> dict[str, Any]:
    """Merge a stored template into a spec that has ``workflowTemplateRef`` (the
    workflow's own fields win; arguments merge by parameter name)."""
    ref = spec.get("workflowTemplateRef")
    if not ref:
        return spec
    kind = "ClusterWorkflowTemplate" if ref.get("clusterScope") else "WorkflowTemplate"
    stored = lookup(kind, ref.get("name") or "")
    if stored is None:
        raise NotFoundError(f"spec.workflowTemplateRef: {kind} {ref.get('name')!r} not found")
    base = copy.deepcopy(stored.get("spec") or {})
    own = {k: v for k, v in spec.items() if k != "workflowTemplateRef"}
    merged = {**base, **{k: v for k, v in own.items() if k != "arguments"}}
    params: dict[str, dict] = {}
    for p in (base.get("arguments") or {}).get("parameters") or []:
        params[p["name"]] = dict(p)
    for p in (own.get("arguments") or {}).get("parameters") or []:
        params[p["name"]] = {**params.get(p["name"], {}), **p}
    args = dict(base.get("arguments") or {})
    args.update({k: v for k, v in (own.get("arguments") or {}).items() if k != "parameters"})
    if params:
        args["parameters"] = list(params.values())
    if args:
        merged["arguments"] = args
    return merged


def resolve_global_parameters(spec: dict[str, Any], overrides: Mapping[str, str]) -> dict[str, str]:
    """Workflow arguments with ``-p`` overrides applied; enums and unknown names checked."""
    declared = {p["name"]: p for p in (spec.get("arguments") or {}).get("parameters") or []}
    for name in overrides:
        if name not in declared:
            known = ", ".join(declared) or "none"
            raise ParameterError(
                f"parameter {name!r} is not declared in spec.arguments.parameters "
                f"(declared: {known})")
    values: dict[str, str] = {}
    for i, (name, p) in enumerate(declared.items()):
        if name in overrides:
            value = overrides[name]
        elif p.get("value") is not None:
            value = p["value"]
        elif (p.get("valueFrom") or {}).get("default") is not None:
            value = p["valueFrom"]["default"]
        elif p.get("default") is not None:
            value = p["default"]
        elif p.get("valueFrom"):
            raise UnsupportedError(
                f"not supported locally: valueFrom at spec.arguments.parameters[{i}] ({name})")
        else:
            raise ParameterError(f"parameter {name!r} has no value: give it with -p {name}=VALUE")
        enum = p.get("enum")
        if enum and value not in enum:
            raise ParameterError(
                f"parameter {name!r}: value {value!r} is not one of {', '.join(map(str, enum))}")
        values[name] = str(value)
    return values


def build_plan(
    resource: dict[str, Any],
    *,
    uid: str,
    created_at: float,
    overrides: Mapping[str, str] | None = None,
    lookup: TemplateLookup | None = None,
    steps_root: Path | None = None,
    logs_root: Path | None = None,
) -> Plan:
    """Build the plan of a Workflow resource (a dict in Argo's JSON shape)."""
    lookup = lookup or (lambda kind, name: None)
    meta = resource.get("metadata") or {}
    name = meta.get("name") or ""
    spec = merge_workflow_template(dict(resource.get("spec") or {}), lookup)
    defaults = spec.get("templateDefaults")
    templates: dict[TemplateScope, dict[str, dict]] = {
        TemplateScope("Workflow", name): {
            t["name"]: t for t in _apply_defaults(list(spec.get("templates") or []), defaults)}
    }
    # Load every stored template reachable through templateRef, transitively.
    pending: set[tuple[str, str]] = set()
    _refs_in(spec.get("templates") or [], pending)
    seen: set[tuple[str, str]] = set()
    while pending:
        kind, ref_name = pending.pop()
        if (kind, ref_name) in seen:
            continue
        seen.add((kind, ref_name))
        stored = lookup(kind, ref_name)
        if stored is None:
            raise NotFoundError(f"templateRef: {kind} {ref_name!r} not found "
                                f"(create it with `chute template create FILE`)")
        sspec = stored.get("spec") or {}
        tmpls = _apply_defaults(list(sspec.get("templates") or []), sspec.get("templateDefaults"))
        templates[TemplateScope(kind, ref_name)] = {t["name"]: t for t in tmpls}
        _refs_in(tmpls, pending)
    params = resolve_global_parameters(spec, overrides or {})
    return Plan(
        name=name, uid=uid, namespace=meta.get("namespace") or "default",
        created_at=created_at, spec=spec, parameters=params, templates=templates,
        labels=dict(meta.get("labels") or {}), annotations=dict(meta.get("annotations") or {}),
        steps_root=steps_root or Path("/tmp/chute-steps"),
        logs_root=logs_root or Path("/tmp/chute-logs"),
    )
