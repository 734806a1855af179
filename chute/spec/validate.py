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
    Resource,
    Template,
    TemplateRef,
    WorkflowSpec,
    WorkflowStep,
    WorkflowTemplate,
    spec_of,
)
from chute.spec.validate_template import TemplateChecker
from chute.spec.validate_util import (
    FIELD_NAME,
    PARAM_NAME,
    did_you_mean,
    expression_problem,
    is_tagged,
    names_issues,
    param_issues,
    retry_issues,
)

RUNTIMES = ("local",)

MAX_OBJECT_NAME = 63
MAX_CRON_NAME = 52  # Argo appends "-<unix time>" to the workflows a CronWorkflow starts

POD_GC_STRATEGIES = ("OnPodCompletion", "OnPodSuccess", "OnWorkflowCompletion",
                     "OnWorkflowSuccess")
CONCURRENCY_POLICIES = ("Allow", "Forbid", "Replace")
GO_DURATION = re.compile(r"(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+")
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
            if text.startswith("@every "):  # robfig/cron's interval form, a Go duration
                ok = bool(GO_DURATION.fullmatch(text[len("@every "):].strip()))
            else:
                try:
                    ok = croniter.is_valid(text)
                except Exception:  # noqa: BLE001 - croniter raises assorted errors
                    ok = False
            if not ok:
                self.issues.append(Issue(path, f"cron schedule {sched!r} is malformed"))
        if spec.concurrencyPolicy and spec.concurrencyPolicy not in CONCURRENCY_POLICIES:
            self.issues.append(Issue("spec.concurrencyPolicy", (
                f"{spec.concurrencyPolicy!r} is not a concurrency policy; use one of "
                f"{', '.join(CONCURRENCY_POLICIES)}")))
        for path, text in (("spec.when", spec.when), ("spec.stopStrategy.expression",
                           spec.stopStrategy.expression if spec.stopStrategy else None)):
            problem = expression_problem(text) if text else None
            if problem:
                self.issues.append(Issue(path, problem))
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
        self.issues.extend(names_issues(tmpls, f"{b}.templates", "template", FIELD_NAME))
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
                found = self.template_by_name(entry, f"{b}.entrypoint")
                if found is not None and not self.library:
                    self._entry_inputs(found)
        elif not self.library and spec.workflowTemplateRef is None:
            self.add(f"{b}.entrypoint", "entrypoint is required")
        if spec.onExit and spec.workflowTemplateRef is None:
            self.template_by_name(spec.onExit, f"{b}.onExit")
        self.check_hooks(spec.hooks, f"{b}.hooks")
        if spec.podGC and spec.podGC.strategy and spec.podGC.strategy not in POD_GC_STRATEGIES:
            self.add(f"{b}.podGC.strategy", f"unknown podGC strategy {spec.podGC.strategy!r}; "
                     f"use one of {', '.join(POD_GC_STRATEGIES)}")
        if spec.retryStrategy:
            self.issues.extend(retry_issues(spec.retryStrategy, f"{b}.retryStrategy"))
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

    def _entry_inputs(self, entry: Template) -> None:
        """The entrypoint's inputs come from the workflow's arguments (their values may
        still be given at submit time, ``-p name=value``)."""
        args = self.spec.arguments
        given = {p.name for p in (args.parameters or [])} if args else set()
        for prm in (entry.inputs.parameters or []) if entry.inputs else []:
            if (prm.name in given or prm.value is not None or prm.default is not None
                    or prm.valueFrom is not None):
                continue
            self.add(f"{self.base}.arguments.parameters", f"missing argument {prm.name!r}: "
                     f"the entrypoint {entry.name!r} declares it without a default")

    def _library_names(self, cluster: bool | None) -> list[str]:
        kind = "ClusterWorkflowTemplate" if cluster else "WorkflowTemplate"
        return [k.split("/", 1)[1] for k in self.templates if k.startswith(kind + "/")]

    def _arguments(self) -> None:
        args = self.spec.arguments
        if args is None:
            return
        path = f"{self.base}.arguments"
        self.issues.extend(names_issues(args.parameters, f"{path}.parameters", "parameter",
                                        PARAM_NAME))
        self.issues.extend(names_issues(args.artifacts, f"{path}.artifacts", "artifact",
                                        PARAM_NAME))
        self.issues.extend(param_issues(args.parameters, f"{path}.parameters"))
        for i, p in enumerate(args.parameters or []):
            vf = p.valueFrom
            if vf is not None and (vf.path or vf.jsonPath or vf.jqFilter or vf.parameter
                                   or vf.expression):
                self.add(f"{path}.parameters[{i}].valueFrom", "a workflow argument's "
                         "valueFrom allows only default, configMapKeyRef, event and supplied")

    # -- references ----------------------------------------------------------------------

    def template_by_name(self, name: str, path: str) -> Template | None:
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
            return self.resolve_ref_quiet(call.templateRef)
        if call.template:
            if report:
                return self.template_by_name(call.template, f"{path}.template")
            return self.by_name.get(call.template)
        return None

    def resolve_ref_quiet(self, ref: TemplateRef) -> Template | None:
        lib = lookup_template(self.templates, ref.name, ref.clusterScope)
        return spec_of(lib).template(ref.template or "") if lib is not None else None

    def check_hooks(self, hooks: Mapping[str, Any] | None, path: str) -> None:
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
                self.template_by_name(hook.template, f"{hp}.template")
            else:
                self.add(hp, "hook calls no template: set template or templateRef")


__all__ = ["RUNTIMES", "SpecChecker", "check",
           "lookup_template", "template_index", "validate", "validate_all"]

