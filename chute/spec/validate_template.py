"""Checks of one template: its kind, inputs and outputs, the calls its steps and tasks make
(template references, loops, arguments, hooks), and leaf-only or steps/dag-only fields.
DAG-specific checks are in :mod:`chute.spec.validate_dag`."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from chute.spec.models import DAGTask, Template, WorkflowStep
from chute.spec.validate_util import (
    FIELD_NAME,
    MAX_FIELD_NAME,
    PARAM_NAME,
    did_you_mean,
    is_tagged,
    names_issues,
    param_issues,
    retry_issues,
    when_problem,
)

if TYPE_CHECKING:
    from chute.spec.validate import SpecChecker

LEAF_KINDS = ("container", "script", "resource", "suspend", "http", "containerSet", "data",
              "plugin")


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
            self.sc.issues.extend(retry_issues(t.retryStrategy, f"{p}.retryStrategy"))
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
            self.sc.issues.extend(names_issues(ins.parameters, f"{p}.inputs.parameters",
                                               "parameter", PARAM_NAME))
            self.sc.issues.extend(names_issues(ins.artifacts, f"{p}.inputs.artifacts",
                                               "artifact", PARAM_NAME))
            self.sc.issues.extend(param_issues(ins.parameters, f"{p}.inputs.parameters"))
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
        self.sc.issues.extend(names_issues(outs.parameters, f"{p}.outputs.parameters",
                                           "parameter", PARAM_NAME))
        self.sc.issues.extend(names_issues(outs.artifacts, f"{p}.outputs.artifacts",
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
        self.sc.issues.extend(names_issues(cs.containers, f"{p}.containers", "container",
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
            self.sc.template_by_name(call.onExit, f"{path}.onExit")
        self.sc.check_hooks(call.hooks, f"{path}.hooks")
        args = call.arguments
        if args is not None:
            ap = f"{path}.arguments"
            self.sc.issues.extend(names_issues(args.parameters, f"{ap}.parameters",
                                               "parameter", PARAM_NAME))
            self.sc.issues.extend(names_issues(args.artifacts, f"{ap}.artifacts",
                                               "artifact", PARAM_NAME))
            self.sc.issues.extend(param_issues(args.parameters, f"{ap}.parameters"))
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
    problem = when_problem(text)
    if problem:
        sc.add(path, problem)
