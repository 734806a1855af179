"""Semantic validation of Argo resources: the checks Argo's validator makes, all at once.

The models (:mod:`chute.spec.models`) hold the structure; this module checks what a type
cannot say: the entrypoint and every template reference exist, names are unique and
well-formed, each template has exactly one kind, DAG dependencies name real tasks and have
no cycle, ``depends`` expressions parse, ``{{...}}`` tags are well-formed and name
variables that exist (:mod:`chute.spec.validate_vars`), CronWorkflow schedules parse. With
``runtime="local"`` it also reports what the local runtime cannot honour
(:mod:`chute.spec.validate_local`).

Unlike Argo, which stops at the first problem, every problem is collected, each with the
dotted path of its place (``spec.templates[2].dag.tasks[1].dependencies[0]``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from chute.errors import Issue, SpecError, UnsupportedError
from chute.spec.models import (
    ClusterWorkflowTemplate,
    CronWorkflow,
    DAGTask,
    Parameter,
    Resource,
    Template,
    TemplateRef,
    WorkflowSpec,
    WorkflowStep,
    WorkflowTemplate,
    spec_of,
)
from chute.spec.validate_util import did_you_mean, is_tagged

RUNTIMES = ("local",)

#: Argo's name rules: template, step and task names (``workflowFieldNameFmt``), and
#: parameter and artifact names.
FIELD_NAME = re.compile(r"^[a-zA-Z0-9][-a-zA-Z0-9]*$")
PARAM_NAME = re.compile(r"^[-a-zA-Z0-9_]+$")
MAX_FIELD_NAME = 128
MAX_OBJECT_NAME = 63
MAX_CRON_NAME = 52  # Argo appends "-<unix time>" to the workflows a CronWorkflow starts

RETRY_POLICIES = ("Always", "OnFailure", "OnError", "OnTransientError")
POD_GC_STRATEGIES = ("OnPodCompletion", "OnPodSuccess", "OnWorkflowCompletion",
                     "OnWorkflowSuccess")
CONCURRENCY_POLICIES = ("Allow", "Forbid", "Replace")
LEAF_KINDS = ("container", "script", "resource", "suspend", "http", "containerSet", "data",
              "plugin")
EXIT_HOOK = "exit"

Templates = Mapping[str, Resource]


def validate(resource: Resource, runtime: str | None = None, *,
             templates: Templates | None = None, strict: bool = False) -> list[Issue]:
    """Every semantic problem of ``resource`` (empty when it is valid).

    ``templates`` maps names to the WorkflowTemplates and ClusterWorkflowTemplates that
    ``templateRef`` and ``workflowTemplateRef`` may name (keys ``name`` or
    ``"ClusterWorkflowTemplate/name"``); a reference to one not given is only an error
    when ``strict``. ``runtime="local"`` adds what the local runtime cannot honour.
    """
    if runtime is not None and runtime not in RUNTIMES:
        raise UnsupportedError(f"unknown runtime {runtime!r}; known: {', '.join(RUNTIMES)}")
    issues = _ResourceChecker(resource, templates or {}, strict).run()
    if runtime == "local":
        from chute.spec.validate_local import local_issues

        issues.extend(local_issues(resource))
    return _dedupe(issues)


def check(resource: Resource, runtime: str | None = None, *,
          templates: Templates | None = None, strict: bool = False,
          source: str | None = None) -> None:
    """Raise :class:`SpecError` listing every problem of ``resource``, if it has any."""
    issues = validate(resource, runtime, templates=templates, strict=strict)
    if issues:
        raise SpecError(issues, source)


def validate_all(resources: list[Resource], runtime: str | None = None, *,
                 templates: Templates | None = None, strict: bool = False) -> list[Issue]:
    """Validate the documents of one file together: its WorkflowTemplates resolve
    references of the others. Paths are prefixed ``document N:`` when there are several."""
    known: dict[str, Resource] = dict(templates or {})
    known.update(template_index(resources))
    issues: list[Issue] = []
    for i, res in enumerate(resources):
        for issue in validate(res, runtime, templates=known, strict=strict):
            if len(resources) > 1:
                path = f"document {i + 1}: {issue.path}" if issue.path else f"document {i + 1}"
                issue = Issue(path, issue.message)
            issues.append(issue)
    return issues


def template_index(resources: Iterable[Resource]) -> dict[str, Resource]:
    """The ``templates`` mapping for :func:`validate` built from loaded resources."""
    out: dict[str, Resource] = {}
    for res in resources:
        if isinstance(res, ClusterWorkflowTemplate):
            out[f"ClusterWorkflowTemplate/{res.name}"] = res
            out.setdefault(res.name, res)
        elif isinstance(res, WorkflowTemplate):
            out[f"WorkflowTemplate/{res.name}"] = res
            out[res.name] = res
    return out


def lookup_template(templates: Templates, name: str | None,
                    cluster: bool | None) -> Resource | None:
    """The WorkflowTemplate (or ClusterWorkflowTemplate when ``cluster``) called ``name``."""
    if not name:
        return None
    kind = "ClusterWorkflowTemplate" if cluster else "WorkflowTemplate"
    found = templates.get(f"{kind}/{name}")
    if found is None:
        found = templates.get(name)
        wanted = ClusterWorkflowTemplate if cluster else WorkflowTemplate
        if found is not None and type(found) is not wanted:
            return None
    return found


def _dedupe(issues: list[Issue]) -> list[Issue]:
    seen: set[tuple[str, str]] = set()
    out = []
    for i in issues:
        if (i.path, i.message) not in seen:
            seen.add((i.path, i.message))
            out.append(i)
    return out


def _names_issues(items: list[Any] | None, path: str, what: str,
                  rule: re.Pattern[str]) -> list[Issue]:
    """Names of a list (parameters, artifacts, ...): present, well-formed, unique."""
    issues: list[Issue] = []
    first: dict[str, int] = {}
    for i, item in enumerate(items or []):
        name = item.name
        if not name:
            issues.append(Issue(f"{path}[{i}].name", f"{what} name is required"))
            continue
        if is_tagged(name):
            continue
        if not rule.match(name) or len(name) > MAX_FIELD_NAME:
            allowed = ("letters, digits, '-' and '_'" if rule is PARAM_NAME
                       else "letters, digits and '-', starting with a letter or digit")
            issues.append(Issue(f"{path}[{i}].name",
                                f"invalid {what} name {name!r}: use {allowed}"))
        if name in first:
            issues.append(Issue(f"{path}[{i}].name", f"duplicate {what} name {name!r} "
                                f"(also {path}[{first[name]}])"))
        else:
            first[name] = i
    return issues


def _param_issues(params: list[Parameter] | None, path: str) -> list[Issue]:
    """Enum checks: a non-empty list that holds the value or default."""
    issues: list[Issue] = []
    for i, p in enumerate(params or []):
        if p.enum is None:
            continue
        if not p.enum:
            issues.append(Issue(f"{path}[{i}].enum", "enum must list at least one value"))
            continue
        for field in ("value", "default"):
            v = getattr(p, field)
            if v is not None and not is_tagged(v) and v not in p.enum:
                issues.append(Issue(f"{path}[{i}].{field}",
                                    f"{v!r} is not one of the enum values {p.enum}"))
    return issues


class _ResourceChecker:
    """Checks one resource: metadata, the spec inside it, a CronWorkflow's schedule."""

    def __init__(self, resource: Resource, templates: Templates, strict: bool):
        self.res = resource
        self.templates = templates
        self.strict = strict
        self.issues: list[Issue] = []

    def run(self) -> list[Issue]:
        res = self.res
        limit = MAX_CRON_NAME if isinstance(res, CronWorkflow) else MAX_OBJECT_NAME
        if res.metadata.name and len(res.metadata.name) > limit:
            self.issues.append(Issue("metadata.name", f"name is {len(res.metadata.name)} "
                                     f"characters long; the limit is {limit}"))
        base = "spec"
        if isinstance(res, CronWorkflow):
            self._cron()
            base = "spec.workflowSpec"
        is_library = isinstance(res, WorkflowTemplate | ClusterWorkflowTemplate)
        SpecChecker(self, spec_of(res), base, library=is_library).run()
        return self.issues

    def _cron(self) -> None:
        from croniter import croniter

        spec = self.res.spec
        if spec.schedule and spec.schedules:
            self.issues.append(Issue("spec.schedules",
                                     "set schedule or schedules, not both"))
        schedules = ([("spec.schedule", spec.schedule)] if spec.schedule else []) + [
            (f"spec.schedules[{i}]", s) for i, s in enumerate(spec.schedules or [])]
        if not schedules:
            self.issues.append(Issue("spec.schedules", "a CronWorkflow needs a schedule"))
        for path, sched in schedules:
            text = re.sub(r"^(CRON_TZ|TZ)=\S+\s+", "", sched.strip())
            try:
                ok = croniter.is_valid(text)
            except Exception:  # noqa: BLE001 - croniter raises assorted errors on odd input
                ok = False
            if not ok:
                self.issues.append(Issue(path, f"cron schedule {sched!r} is malformed"))
        if spec.concurrencyPolicy and spec.concurrencyPolicy not in CONCURRENCY_POLICIES:
            self.issues.append(Issue("spec.concurrencyPolicy", (
                f"{spec.concurrencyPolicy!r} is not a concurrency policy; use one of "
                f"{', '.join(CONCURRENCY_POLICIES)}")))
        if spec.startingDeadlineSeconds is not None and spec.startingDeadlineSeconds < 0:
            self.issues.append(Issue("spec.startingDeadlineSeconds", "must not be negative"))
        if spec.timezone:
            from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

            try:
                ZoneInfo(spec.timezone)
            except (ZoneInfoNotFoundError, ValueError, OSError):
                self.issues.append(Issue("spec.timezone",
                                         f"unknown time zone {spec.timezone!r}"))


class SpecChecker:
    """Checks one WorkflowSpec: templates, references, DAGs, steps, then variables."""

    def __init__(self, parent: _ResourceChecker, spec: WorkflowSpec, base: str, *,
                 library: bool):
        self.parent = parent
        self.res = parent.res
        self.spec = spec
        self.base = base
        self.library = library  # a WorkflowTemplate: arguments may come from the caller
        self.issues = parent.issues
        self.templates = parent.templates
        self.strict = parent.strict
        self.by_name: dict[str, Template] = {}
        self.ref_spec: WorkflowSpec | None = None  # spec of workflowTemplateRef, if found

    def add(self, path: str, message: str) -> None:
        self.issues.append(Issue(path, message))

    # -- the spec as a whole -------------------------------------------------------------

    def run(self) -> None:
        spec, b = self.spec, self.base
        tmpls = spec.templates or []
        self.issues.extend(_names_issues(tmpls, f"{b}.templates", "template", FIELD_NAME))
        for t in tmpls:
            if t.name and t.name not in self.by_name:
                self.by_name[t.name] = t
        self._workflow_template_ref()
        self._arguments()
        entry = spec.entrypoint
        if not entry and self.ref_spec is not None:
            entry = self.ref_spec.entrypoint
        if entry:
            if spec.workflowTemplateRef is None:
                self._template_name(entry, f"{b}.entrypoint")
        elif not self.library and spec.workflowTemplateRef is None:
            self.add(f"{b}.entrypoint", "entrypoint is required")
        if spec.onExit and spec.workflowTemplateRef is None:
            self._template_name(spec.onExit, f"{b}.onExit")
        self._hooks(spec.hooks, f"{b}.hooks")
        if spec.podGC and spec.podGC.strategy and spec.podGC.strategy not in POD_GC_STRATEGIES:
            self.add(f"{b}.podGC.strategy", f"unknown podGC strategy {spec.podGC.strategy!r}; "
                     f"use one of {', '.join(POD_GC_STRATEGIES)}")
        if spec.retryStrategy:
            self._retry(spec.retryStrategy, f"{b}.retryStrategy")
        for i, t in enumerate(tmpls):
            TemplateChecker(self, t, f"{b}.templates[{i}]").run()
        from chute.spec.validate_vars import variable_issues

        self.issues.extend(variable_issues(self))

    def _workflow_template_ref(self) -> None:
        ref = self.spec.workflowTemplateRef
        if ref is None:
            return
        path = f"{self.base}.workflowTemplateRef"
        if self.spec.templates:
            self.add(f"{self.base}.templates", "a workflow with a workflowTemplateRef "
                     "must not define templates")
        if not ref.name:
            self.add(f"{path}.name", "the name of the WorkflowTemplate is required")
            return
        found = lookup_template(self.templates, ref.name, ref.clusterScope)
        if found is None:
            if self.strict:
                kind = "ClusterWorkflowTemplate" if ref.clusterScope else "WorkflowTemplate"
                self.add(f"{path}.name", f"unknown {kind} {ref.name!r}"
                         + did_you_mean(ref.name, self._library_names(ref.clusterScope)))
            return
        self.ref_spec = spec_of(found)
        if not self.spec.entrypoint and not self.ref_spec.entrypoint:
            self.add(f"{self.base}.entrypoint", f"entrypoint is required (neither this "
                     f"workflow nor WorkflowTemplate {ref.name!r} sets one)")
        elif self.spec.entrypoint and self.ref_spec.template(self.spec.entrypoint) is None:
            self.add(f"{self.base}.entrypoint", f"template {self.spec.entrypoint!r} not found "
                     f"in WorkflowTemplate {ref.name!r}" + did_you_mean(
                         self.spec.entrypoint, [t.name for t in self.ref_spec.templates or []]))

    def _library_names(self, cluster: bool | None) -> list[str]:
        kind = "ClusterWorkflowTemplate" if cluster else "WorkflowTemplate"
        return [k.split("/", 1)[1] for k in self.templates if k.startswith(kind + "/")]

    def _arguments(self) -> None:
        args = self.spec.arguments
        if args is None:
            return
        path = f"{self.base}.arguments"
        self.issues.extend(_names_issues(args.parameters, f"{path}.parameters", "parameter",
                                         PARAM_NAME))
        self.issues.extend(_names_issues(args.artifacts, f"{path}.artifacts", "artifact",
                                         PARAM_NAME))
        self.issues.extend(_param_issues(args.parameters, f"{path}.parameters"))
        for i, p in enumerate(args.parameters or []):
            vf = p.valueFrom
            if vf is not None and (vf.path or vf.jsonPath or vf.jqFilter or vf.parameter
                                   or vf.expression):
                self.add(f"{path}.parameters[{i}].valueFrom", "a workflow argument's "
                         "valueFrom allows only default, configMapKeyRef, event and supplied")

    def _retry(self, rs: Any, path: str) -> None:
        if rs.retryPolicy and rs.retryPolicy not in RETRY_POLICIES:
            self.add(f"{path}.retryPolicy", f"{rs.retryPolicy!r} is not a retry policy; use "
                     f"one of {', '.join(RETRY_POLICIES)}")
        if rs.limit is not None and not is_tagged(rs.limit):
            try:
                if int(rs.limit) < 0:
                    raise ValueError
            except ValueError:
                self.add(f"{path}.limit", f"limit must be a non-negative integer or a "
                         f"{{{{...}}}} variable, got {rs.limit!r}")

    # -- references ----------------------------------------------------------------------

    def _template_name(self, name: str, path: str) -> Template | None:
        """The local template ``name``, reporting it when unknown."""
        if is_tagged(name):
            return None
        found = self.by_name.get(name)
        if found is None:
            self.add(path, f"unknown template {name!r}" + did_you_mean(name, self.by_name))
        return found

    def template_ref(self, ref: TemplateRef, path: str) -> Template | None:
        """The template a ``templateRef`` names, reporting what is wrong with the reference."""
        if not ref.name:
            self.add(f"{path}.name", "the name of the WorkflowTemplate is required")
        if not ref.template:
            self.add(f"{path}.template", "the name of the template is required")
        if not ref.name or not ref.template or is_tagged(ref.name) or is_tagged(ref.template):
            return None
        lib = lookup_template(self.templates, ref.name, ref.clusterScope)
        kind = "ClusterWorkflowTemplate" if ref.clusterScope else "WorkflowTemplate"
        if lib is None:
            if self.strict:
                self.add(f"{path}.name", f"unknown {kind} {ref.name!r}"
                         + did_you_mean(ref.name, self._library_names(ref.clusterScope)))
            return None
        tmpl = spec_of(lib).template(ref.template)
        if tmpl is None:
            names = [t.name for t in spec_of(lib).templates or [] if t.name]
            self.add(f"{path}.template", f"template {ref.template!r} not found in {kind} "
                     f"{ref.name!r}" + did_you_mean(ref.template, names))
        return tmpl

    def resolve_call(self, call: WorkflowStep | DAGTask, path: str,
                     report: bool = True) -> Template | None:
        """The template a step or task calls (None when unknown or not resolvable)."""
        given = [f for f in ("template", "templateRef", "inline") if getattr(call, f)]
        if report and len(given) > 1:
            self.add(path, f"set only one of template, templateRef and inline "
                     f"(got {', '.join(given)})")
        if report and not given:
            self.add(path, "calls no template: set template, templateRef or inline")
        if call.inline is not None:
            return call.inline
        if call.templateRef is not None:
            if report:
                return self.template_ref(call.templateRef, f"{path}.templateRef")
            return self._resolve_ref_quiet(call.templateRef)
        if call.template:
            if report:
                return self._template_name(call.template, f"{path}.template")
            return self.by_name.get(call.template)
        return None

    def _resolve_ref_quiet(self, ref: TemplateRef) -> Template | None:
        lib = lookup_template(self.templates, ref.name, ref.clusterScope)
        return spec_of(lib).template(ref.template or "") if lib is not None else None

    def _hooks(self, hooks: Mapping[str, Any] | None, path: str) -> None:
        for name, hook in (hooks or {}).items():
            hp = f"{path}.{name}"
            if name != EXIT_HOOK and not hook.expression:
                self.add(f"{hp}.expression", f"hook {name!r} needs an expression "
                         f"(only the {EXIT_HOOK!r} hook runs without one)")
            if hook.template and hook.templateRef:
                self.add(hp, "set template or templateRef, not both")
            elif hook.templateRef is not None:
                self.template_ref(hook.templateRef, f"{hp}.templateRef")
            elif hook.template:
                self._template_name(hook.template, f"{hp}.template")
            else:
                self.add(hp, "hook calls no template: set template or templateRef")


class TemplateChecker:
    """Checks one template: kind, inputs/outputs, and its steps or DAG."""

    def __init__(self, spec: SpecChecker, tmpl: Template, path: str):
        self.sc = spec
        self.t = tmpl
        self.path = path

    def add(self, path: str, message: str) -> None:
        self.sc.add(path, message)

    def run(self) -> None:
        t, p = self.t, self.path
        kinds = t.kinds
        if not kinds:
            self.add(p, "template has no kind: set one of container, script, dag, steps, "
                     "suspend, resource, http, containerSet, data, plugin")
        elif len(kinds) > 1:
            self.add(p, f"template sets several kinds ({', '.join(kinds)}); choose one")
        kind = kinds[0] if kinds else None
        leaf = kind in LEAF_KINDS
        self._io(leaf, kind)
        if t.retryStrategy:
            self.sc._retry(t.retryStrategy, f"{p}.retryStrategy")
        if kind in ("steps", "dag"):
            if t.activeDeadlineSeconds is not None:
                self.add(f"{p}.activeDeadlineSeconds",
                         "activeDeadlineSeconds is only valid on leaf templates "
                         "(container, script, resource, ...)")
            if t.timeout:
                self.add(f"{p}.timeout", f"a {kind} template does not support timeout")
        elif kind is not None and t.parallelism is not None:
            self.add(f"{p}.parallelism", "parallelism is only valid on steps and dag templates")
        if t.timeout and re.fullmatch(r"\s*-?\d+\s*", t.timeout):
            self.add(f"{p}.timeout", f"timeout {t.timeout!r} needs a unit (e.g. '{t.timeout}s')")
        if t.activeDeadlineSeconds is not None and not is_tagged(t.activeDeadlineSeconds):
            try:
                if int(t.activeDeadlineSeconds) < 0:
                    raise ValueError
            except ValueError:
                self.add(f"{p}.activeDeadlineSeconds", "activeDeadlineSeconds must be a "
                         "positive integer or a {{...}} variable")
        if kind == "container" and t.container is not None and not t.container.image:
            defaults = self.sc.spec.templateDefaults
            if not (defaults and defaults.container and defaults.container.image):
                self.add(f"{p}.container.image", "image is required")
        if kind == "containerSet" and t.containerSet is not None:
            self._container_set()
        if kind == "resource" and t.resource is not None:
            self._resource()
        if kind == "steps":
            self._steps()
        elif kind == "dag":
            from chute.spec.validate_dag import check_dag

            check_dag(self)

    def _io(self, leaf: bool, kind: str | None) -> None:
        t, p = self.t, self.path
        ins, outs = t.inputs, t.outputs
        if ins is not None:
            self.sc.issues.extend(_names_issues(ins.parameters, f"{p}.inputs.parameters",
                                                "parameter", PARAM_NAME))
            self.sc.issues.extend(_names_issues(ins.artifacts, f"{p}.inputs.artifacts",
                                                "artifact", PARAM_NAME))
            self.sc.issues.extend(_param_issues(ins.parameters, f"{p}.inputs.parameters"))
            for i, a in enumerate(ins.artifacts or []):
                ap = f"{p}.inputs.artifacts[{i}]"
                if a.from_:
                    self.add(f"{ap}.from", "'from' is not valid in inputs (use it in arguments)")
                if a.path and not leaf and kind is not None:
                    self.add(f"{ap}.path", "path is only valid in container and script "
                             "templates")
                if a.git is not None and not a.git.repo:
                    self.add(f"{ap}.git.repo", "git.repo is required")
        if outs is None:
            return
        self.sc.issues.extend(_names_issues(outs.parameters, f"{p}.outputs.parameters",
                                            "parameter", PARAM_NAME))
        self.sc.issues.extend(_names_issues(outs.artifacts, f"{p}.outputs.artifacts",
                                            "artifact", PARAM_NAME))
        for i, a in enumerate(outs.artifacts or []):
            if a.path and not leaf and kind is not None:
                self.add(f"{p}.outputs.artifacts[{i}].path",
                         "path is only valid in container and script templates")
        for i, prm in enumerate(outs.parameters or []):
            pp = f"{p}.outputs.parameters[{i}]"
            vf = prm.valueFrom
            if vf is not None and prm.value is not None:
                self.add(pp, "set value or valueFrom, not both")
                continue
            if prm.value is not None:
                continue
            if vf is None:
                self.add(pp, f"output parameter {prm.name!r} needs value or valueFrom")
                continue
            sources = [f for f in ("path", "jqFilter", "jsonPath", "parameter", "expression",
                                   "supplied", "configMapKeyRef", "event")
                       if getattr(vf, f) not in (None, "")]
            if not sources and vf.default is None:
                self.add(f"{pp}.valueFrom", "valueFrom names no source: set one of path, "
                         "jqFilter, jsonPath, parameter, expression, supplied")
            elif len(sources) > 1:
                self.add(f"{pp}.valueFrom", f"valueFrom sets several sources "
                         f"({', '.join(sources)}); choose one")
            if kind in ("container", "script", "containerSet") and not vf.path and (
                    sources and sources != ["supplied"]):
                self.add(f"{pp}.valueFrom.path", f"path is required for an output parameter "
                         f"of a {kind} template")
            elif kind in ("dag", "steps") and not (vf.parameter or vf.expression
                                                   or vf.supplied is not None):
                self.add(f"{pp}.valueFrom", f"parameter or expression is required for an "
                         f"output parameter of a {kind} template")
            elif kind == "resource" and not (vf.jqFilter or vf.jsonPath or vf.supplied):
                self.add(f"{pp}.valueFrom", "jqFilter or jsonPath is required for an output "
                         "parameter of a resource template")
            if kind in ("dag", "steps") and vf.parameter and vf.expression:
                self.add(f"{pp}.valueFrom", "set parameter or expression, not both")

    def _container_set(self) -> None:
        cs, p = self.t.containerSet, f"{self.path}.containerSet"
        names = {c.name for c in cs.containers}
        self.sc.issues.extend(_names_issues(cs.containers, f"{p}.containers", "container",
                                            FIELD_NAME))
        for i, c in enumerate(cs.containers):
            for j, dep in enumerate(c.dependencies or []):
                if dep not in names:
                    self.add(f"{p}.containers[{i}].dependencies[{j}]",
                             f"unknown container {dep!r}" + did_you_mean(dep, names))
        t = self.t
        needs_main = bool((t.inputs and t.inputs.artifacts) or (t.outputs and (
            t.outputs.parameters or t.outputs.artifacts)))
        if needs_main and "main" not in names:
            self.add(f"{p}.containers", "a container set with inputs or outputs needs a "
                     "container named 'main'")

    def _resource(self) -> None:
        r, p = self.t.resource, f"{self.path}.resource"
        actions = ("get", "create", "apply", "delete", "replace", "patch")
        if not is_tagged(r.action) and r.action not in actions:
            self.add(f"{p}.action", f"action {r.action!r} is not one of {', '.join(actions)}")
        if r.action not in ("get", "delete"):
            if not r.manifest and r.manifestFrom is None:
                self.add(p, "set manifest or manifestFrom")
            elif r.manifest and r.manifestFrom is not None:
                self.add(p, "set manifest or manifestFrom, not both")

    def _call_common(self, call: WorkflowStep | DAGTask, path: str) -> Template | None:
        """What steps and tasks share: the template called, loops, arguments, hooks."""
        tmpl = self.sc.resolve_call(call, path)
        if call.inline is not None:
            TemplateChecker(self.sc, call.inline, f"{path}.inline").run()
        loops = [f for f in ("withItems", "withParam", "withSequence")
                 if getattr(call, f) not in (None, "")]
        if len(loops) > 1:
            self.add(path, f"set only one of withItems, withParam and withSequence "
                     f"(got {', '.join(loops)})")
        seq = call.withSequence
        if seq is not None:
            if seq.count is not None and seq.end is not None:
                self.add(f"{path}.withSequence", "set count or end, not both")
            for f in ("count", "start", "end"):
                v = getattr(seq, f)
                if v is not None and not is_tagged(v):
                    try:
                        int(v)
                    except ValueError:
                        self.add(f"{path}.withSequence.{f}",
                                 f"{f} must be an integer, got {v!r}")
        if call.onExit:
            self.sc._template_name(call.onExit, f"{path}.onExit")
        self.sc._hooks(call.hooks, f"{path}.hooks")
        args = call.arguments
        if args is not None:
            ap = f"{path}.arguments"
            self.sc.issues.extend(_names_issues(args.parameters, f"{ap}.parameters",
                                                "parameter", PARAM_NAME))
            self.sc.issues.extend(_names_issues(args.artifacts, f"{ap}.artifacts",
                                                "artifact", PARAM_NAME))
            self.sc.issues.extend(_param_issues(args.parameters, f"{ap}.parameters"))
            for i, prm in enumerate(args.parameters or []):
                if prm.value is None and prm.valueFrom is None:
                    self.add(f"{ap}.parameters[{i}]",
                             f"argument {prm.name!r} needs value or valueFrom")
            for i, art in enumerate(args.artifacts or []):
                if art.from_ and art.fromExpression:
                    self.add(f"{ap}.artifacts[{i}]", "set from or fromExpression, not both")
                elif not (art.from_ or art.fromExpression or art.location_kind
                          or (art.s3 and art.s3.key)):
                    self.add(f"{ap}.artifacts[{i}]", f"artifact argument {art.name!r} needs "
                             "from, fromExpression or a location")
        if tmpl is not None:
            self._arguments_match(call, tmpl, path)
        return tmpl

    def _arguments_match(self, call: WorkflowStep | DAGTask, tmpl: Template,
                         path: str) -> None:
        """Arguments name inputs of the called template; required inputs are given."""
        given = {p.name for p in (call.arguments.parameters or [])} if call.arguments else set()
        for prm in (tmpl.inputs.parameters or []) if tmpl.inputs else []:
            if prm.name in given or prm.value is not None or prm.default is not None:
                continue
            if prm.valueFrom is not None:
                continue
            self.add(f"{path}.arguments", f"missing argument {prm.name!r}: the template "
                     f"{tmpl.name or '(inline)'!r} declares it without a default")
        arts = {a.name for a in (call.arguments.artifacts or [])} if call.arguments else set()
        for art in (tmpl.inputs.artifacts or []) if tmpl.inputs else []:
            if (art.name in arts or art.optional or art.location_kind or art.from_
                    or (art.s3 is not None)):
                continue
            self.add(f"{path}.arguments", f"missing artifact argument {art.name!r}: the "
                     f"template {tmpl.name or '(inline)'!r} declares it without a location")

    def _steps(self) -> None:
        p = self.path
        first: dict[str, str] = {}
        for i, group in enumerate(self.t.steps or []):
            for j, step in enumerate(group):
                sp = f"{p}.steps[{i}][{j}]"
                if not step.name:
                    self.add(f"{sp}.name", "step name is required")
                elif not is_tagged(step.name):
                    if not FIELD_NAME.match(step.name) or len(step.name) > MAX_FIELD_NAME:
                        self.add(f"{sp}.name", f"invalid step name {step.name!r}: use letters,"
                                 " digits and '-', starting with a letter or digit")
                    if step.name in first:
                        self.add(f"{sp}.name", f"duplicate step name {step.name!r} "
                                 f"(also {first[step.name]})")
                    else:
                        first[step.name] = sp
                self._call_common(step, sp)
                if step.when:
                    check_when(self.sc, step.when, f"{sp}.when")


def check_when(sc: SpecChecker, text: str, path: str) -> None:
    """Report a ``when`` whose grammar is wrong (tags stand in as opaque values)."""
    from chute.spec.validate_util import when_problem

    problem = when_problem(text)
    if problem:
        sc.add(path, problem)


__all__ = ["LEAF_KINDS", "RUNTIMES", "SpecChecker", "TemplateChecker", "check",
           "lookup_template", "template_index", "validate", "validate_all"]

