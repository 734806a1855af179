"""``{{...}}`` checks: every tag is well-formed, and every simple tag names a variable that
exists where it is used, as Argo's ``resolveAllVariables`` decides.

Scopes follow Argo's validator: a leaf template sees its inputs, ``outputs.*``,
``pod.name`` and the globals (``workflow.*``, ``workflow.status`` and ``workflow.failures``
anywhere, as Argo's validator has them); a step sees the steps before it, a DAG task
sees every task of its DAG, both see ``item`` when they loop, and a step with an exit
hook (``onExit`` or ``hooks.exit``) sees itself, for the hook's arguments. Tags outside Argo's checked
prefixes (``item``, ``steps.``, ``inputs.``, ``outputs.``, ``pod.``, ``workflow.``,
``tasks.``) are left alone, as Argo does (``{{retries}}``, ``{{lastRetry.exitCode}}``,
``{{node.name}}``, metric variables); ``{{=...}}`` expression tags are checked for syntax
only (by :func:`chute.spec.templating.check_tags`). The global variables are those of
Argo's docs/variables.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chute.errors import Issue
from chute.spec import templating
from chute.spec.models import DAGTask, Template, WorkflowStep
from chute.spec.validate_util import did_you_mean, expression_problem, is_tagged

if TYPE_CHECKING:
    from chute.spec.validate import SpecChecker

CHECKED_PREFIXES = ("item", "steps.", "inputs.", "outputs.", "pod.", "workflow.", "tasks.")
#: Globals every workflow has (docs/variables.md, "Global"/"Exit handler" sections).
WORKFLOW_GLOBALS = ("workflow.name", "workflow.namespace", "workflow.mainEntrypoint",
                    "workflow.serviceAccountName", "workflow.uid", "workflow.status",
                    "workflow.failures", "workflow.annotations", "workflow.annotations.json",
                    "workflow.labels", "workflow.labels.json")
#: Prefixes Argo resolves at run time (formats of creationTimestamp, the cron time, ...).
RUNTIME_PREFIXES = ("workflow.creationTimestamp", "workflow.scheduledTime",
                    "workflow.duration", "outputs.", "tasks.name", "steps.name", "node.name")
POD_KINDS = ("container", "script", "resource", "containerSet", "data")
OUTPUT_KINDS = ("container", "script", "data", "http", "plugin")


@dataclass
class Scope:
    """Names a tag may use: exact names and name prefixes, on top of a parent scope.

    A child scope (:meth:`child`) shares its parent instead of copying it, so a DAG of n
    tasks costs O(n), not O(n^2)."""

    names: set[str] = field(default_factory=set)
    prefixes: set[str] = field(default_factory=set)
    parent: Scope | None = None

    def child(self) -> Scope:
        return Scope(parent=self)

    def has(self, name: str) -> bool:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.names or any(name.startswith(p) for p in scope.prefixes):
                return True
            scope = scope.parent
        return False

    def all_names(self) -> set[str]:
        out: set[str] = set()
        scope: Scope | None = self
        while scope is not None:
            out |= scope.names
            scope = scope.parent
        return out


def walk_strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every string in dumped spec data with its dotted path (iterative: no recursion)."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        v, p = stack.pop()
        if isinstance(v, str):
            yield p, v
        elif isinstance(v, dict):
            for k, x in reversed(list(v.items())):
                if isinstance(k, str) and "{{" in k:
                    yield f"{p}.{k}" if p else k, k
                stack.append((x, f"{p}.{k}" if p else str(k)))
        elif isinstance(v, list):
            for i in range(len(v) - 1, -1, -1):
                stack.append((v[i], f"{p}[{i}]"))


def _dump(model: Any, exclude: set[str] | None = None) -> Any:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True, exclude=exclude)


def has_output(t: Template | None) -> bool:
    """Argo's ``HasOutput``: the template produces ``outputs.result`` and an exit code."""
    if t is None:
        return False
    if t.containerSet is not None:
        return any(c.name == "main" for c in t.containerSet.containers)
    return t.kind in OUTPUT_KINDS


def node_outputs(scope: Scope, prefix: str, tmpl: Template | None, *, loops: bool,
                 resolved: bool) -> None:
    """Add what ``{{steps.X.*}}`` / ``{{tasks.X.*}}`` may name for node X to ``scope``."""
    if not resolved:
        scope.prefixes.add(prefix + ".")  # template not known here: accept any attribute
        return
    for attr in ("id", "startedAt", "finishedAt", "hostNodeName", "status"):
        scope.names.add(f"{prefix}.{attr}")
    if tmpl is None:
        return
    if tmpl.daemon:
        scope.names.add(f"{prefix}.ip")
    if has_output(tmpl):
        scope.names.update({f"{prefix}.outputs.result", f"{prefix}.exitCode"})
    outs = tmpl.outputs
    for prm in (outs.parameters or []) if outs else []:
        scope.names.add(f"{prefix}.outputs.parameters.{prm.name}")
    for art in (outs.artifacts or []) if outs else []:
        scope.names.add(f"{prefix}.outputs.artifacts.{art.name}")
    if loops:
        scope.names.add(f"{prefix}.outputs.parameters")
        if tmpl.kind in ("script", "containerSet"):
            scope.names.update({f"{prefix}.outputs.result", f"{prefix}.exitCode"})


def has_exit_hook(call: WorkflowStep | DAGTask) -> bool:
    """Argo's ``HasExitHook``: ``onExit`` or an ``exit`` lifecycle hook."""
    return bool(call.onExit) or bool(call.hooks and "exit" in call.hooks)


def item_scope(scope: Scope, call: WorkflowStep | DAGTask) -> None:
    """``item`` (and ``item.key``) for a looping step or task."""
    if call.withItems:
        scope.names.add("item")  # the whole item, as JSON for a map or list
        for it in call.withItems:
            if isinstance(it, dict):
                scope.names.update(f"item.{k}" for k in it)
            elif isinstance(it, list):
                scope.names.update(f"item.[{i}]" for i in range(len(it)))
    elif call.withParam:
        scope.names.add("item")
        scope.prefixes.add("item.")
    elif call.withSequence is not None:
        scope.names.add("item")


class VariableChecker:
    """Walks one spec's templates with Argo's scopes, reporting unresolvable tags."""

    def __init__(self, sc: SpecChecker):
        self.sc = sc
        self.issues: list[Issue] = []
        self.malformed: set[str] = set()
        self.globals = self._globals()

    def run(self) -> list[Issue]:
        sc = self.sc
        data = _dump(sc.spec)
        for path, text in walk_strings(data, sc.base):
            if "{{" in text or "}}" in text:
                found = templating.check_tags(text, path)
                if found:
                    self.malformed.add(path)
                    self.issues.extend(found)
                    continue
            if path.endswith((".expression", ".fromExpression")):
                problem = expression_problem(text)
                if problem:
                    self.issues.append(Issue(path, problem))
        for i, t in enumerate(sc.spec.templates or []):
            self.template(t, f"{sc.base}.templates[{i}]")
        return self.issues

    # -- scopes --------------------------------------------------------------------------

    def _globals(self) -> Scope:
        sc, res = self.sc, self.sc.res
        g = Scope(set(WORKFLOW_GLOBALS), set(RUNTIME_PREFIXES))
        specs = [sc.spec] + ([sc.ref_spec] if sc.ref_spec is not None else [])
        params = [p for s in specs if s.arguments for p in s.arguments.parameters or []]
        if params:
            g.names.update({"workflow.parameters", "workflow.parameters.json"})
        g.names.update(f"workflow.parameters.{p.name}" for p in params)
        unresolved_ref = sc.spec.workflowTemplateRef is not None and sc.ref_spec is None
        if sc.library or unresolved_ref:
            # A WorkflowTemplate's parameters may come from the workflow that uses it.
            g.prefixes.add("workflow.parameters")
        if any(s.priority is not None for s in specs):
            g.names.add("workflow.priority")
        annotations = set(res.metadata.annotations or {})
        labels = set(res.metadata.labels or {})
        metas = [s.workflowMetadata for s in specs if s.workflowMetadata is not None]
        cron_meta = getattr(res.spec, "workflowMetadata", None) if res.kind == "CronWorkflow" \
            else None
        for m in metas + ([cron_meta] if cron_meta is not None else []):
            annotations.update(m.annotations or {})
            labels.update(m.labels or {})
            labels.update(getattr(m, "labelsFrom", None) or {})
        g.names.update(f"workflow.annotations.{k}" for k in annotations)
        g.names.update(f"workflow.labels.{k}" for k in labels)
        seen: set[int] = set()
        for s in specs:
            for t in s.templates or []:
                self._global_outputs(g, t, seen)
        if unresolved_ref:
            g.prefixes.update({"workflow.outputs.parameters.", "workflow.outputs.artifacts."})
        return g

    def _global_outputs(self, g: Scope, t: Template, seen: set[int] | None = None) -> None:
        """Add ``workflow.outputs.*`` for the globalNames of ``t`` and what it calls."""
        seen = set() if seen is None else seen
        if id(t) in seen:  # templates may call each other (recursion is legal in Argo)
            return
        seen.add(id(t))
        outs = t.outputs
        for kind, items in (("parameters", outs.parameters if outs else None),
                            ("artifacts", outs.artifacts if outs else None)):
            for x in items or []:
                if x.globalName:
                    if is_tagged(x.globalName):
                        g.prefixes.add(f"workflow.outputs.{kind}.")
                    else:
                        g.names.add(f"workflow.outputs.{kind}.{x.globalName}")
        calls = [step for group in t.steps or [] for step in group]
        calls += t.dag.tasks if t.dag else []
        for call in calls:
            if call.inline is not None:
                self._global_outputs(g, call.inline, seen)
            elif call.templateRef is not None:  # a library template's global outputs
                ref = self.sc.resolve_ref_quiet(call.templateRef)
                if ref is not None:
                    self._global_outputs(g, ref, seen)

    def template_scope(self, t: Template) -> Scope:
        s = self.globals.child()
        leaf = t.kind not in ("steps", "dag")
        ins = t.inputs
        if ins is not None:
            if ins.parameters:
                s.names.add("inputs.parameters")
            for p in ins.parameters or []:
                s.names.add(f"inputs.parameters.{p.name}")
            for a in ins.artifacts or []:
                s.names.add(f"inputs.artifacts.{a.name}")
                if leaf:
                    s.names.add(f"inputs.artifacts.{a.name}.path")
        if t.kind in POD_KINDS:
            s.names.add("pod.name")
        return s

    # -- walking -------------------------------------------------------------------------

    def template(self, t: Template, path: str) -> None:
        scope = self.template_scope(t)
        kind = t.kind
        if kind == "steps":
            self._steps(t, path, scope)
        elif kind == "dag":
            self._dag(t, path, scope)
        else:
            self.check(_dump(t), path, scope, t, None)

    def _call_template(self, call: WorkflowStep | DAGTask) -> tuple[Template | None, bool]:
        """The template a step or task calls, and whether it could be resolved."""
        if call.inline is not None:
            return call.inline, True
        tmpl = self.sc.resolve_call(call, "", report=False)
        return tmpl, tmpl is not None

    def _steps(self, t: Template, path: str, scope: Scope) -> None:
        names = [s.name for g in t.steps or [] for s in g if s.name]
        done: list[str] = []
        for i, group in enumerate(t.steps or []):
            for j, step in enumerate(group):
                sp = f"{path}.steps[{i}][{j}]"
                tmpl, resolved = self._call_template(step)
                s = scope.child()
                if step.name:
                    s.names.add(f"steps.{step.name}.status")
                    if has_exit_hook(step):  # the hook's arguments see the step it guards
                        node_outputs(s, f"steps.{step.name}", tmpl,
                                     loops=False, resolved=resolved)
                item_scope(s, step)
                if step.inline is not None:
                    if step.inline.inputs:
                        s.names.update(f"inputs.parameters.{p.name}"
                                       for p in step.inline.inputs.parameters or [])
                    self.template(step.inline, f"{sp}.inline")
                self.check(_dump(step, {"inline"}), sp, s, t, ("steps", names, done))
                if step.name:
                    loops = bool(step.withItems or step.withParam)
                    node_outputs(scope, f"steps.{step.name}", tmpl, loops=loops,
                                 resolved=resolved)
                    done.append(step.name)
        if t.outputs is not None:
            self.check(_dump(t.outputs), f"{path}.outputs", scope, t, ("steps", names, done))

    def _dag(self, t: Template, path: str, scope: Scope) -> None:
        tasks = t.dag.tasks
        names = [x.name for x in tasks if x.name]
        for task in tasks:
            if task.name:
                tmpl, resolved = self._call_template(task)
                node_outputs(scope, f"tasks.{task.name}", tmpl,
                             loops=bool(task.withItems or task.withParam), resolved=resolved)
        ctx = ("tasks", names, names)
        for i, task in enumerate(tasks):
            tp = f"{path}.dag.tasks[{i}]"
            s = scope.child()
            item_scope(s, task)
            if task.inline is not None:
                if task.inline.inputs:
                    s.names.update(f"inputs.parameters.{p.name}"
                                   for p in task.inline.inputs.parameters or [])
                self.template(task.inline, f"{tp}.inline")
            self.check(_dump(task, {"inline"}), tp, s, t, ctx)
        if t.dag.target:
            self.check(t.dag.target, f"{path}.dag.target", scope, t, ctx)
        if t.outputs is not None:
            self.check(_dump(t.outputs), f"{path}.outputs", scope, t, ctx)

    def check(self, data: Any, path: str, scope: Scope, tmpl: Template,
              nodes: tuple[str, list[str], list[str]] | None) -> None:
        """Report each simple tag in ``data`` that ``scope`` cannot resolve."""
        for p, text in walk_strings(data, path):
            if "{{" not in text or p in self.malformed:
                continue
            # Simple tags only: Argo does not resolve names inside {{=...}} expressions
            # statically (an expression may index maps built at run time).
            names = {t.name for t in templating.find_tags(text) if t.kind == "simple"}
            for name in sorted(names):
                if not name.startswith(CHECKED_PREFIXES) or scope.has(name):
                    continue
                self.issues.append(Issue(p, self.explain(name, scope, tmpl, nodes)))

    # -- messages ------------------------------------------------------------------------

    def explain(self, name: str, scope: Scope, tmpl: Template,
                nodes: tuple[str, list[str], list[str]] | None) -> str:
        """Why ``{{name}}`` does not resolve, in the user's terms."""
        tag = "{{" + name + "}}"
        parts = name.split(".")
        tname = repr(tmpl.name) if tmpl.name else "(inline)"
        if name.startswith("inputs.parameters."):
            declared = [p.name for p in (tmpl.inputs.parameters or [])] if tmpl.inputs else []
            return (f"unknown variable {tag}: template {tname} has no input parameter "
                    f"{'.'.join(parts[2:])!r}" + did_you_mean(parts[2], declared))
        if name.startswith("inputs.artifacts."):
            declared = [a.name for a in (tmpl.inputs.artifacts or [])] if tmpl.inputs else []
            if len(parts) > 3 and parts[2] in declared:
                return (f"unknown variable {tag}: artifact paths are only known in "
                        "container and script templates")
            return (f"unknown variable {tag}: template {tname} has no input artifact "
                    f"{parts[2] if len(parts) > 2 else ''!r}" + did_you_mean(
                        parts[2] if len(parts) > 2 else "", declared))
        if name.startswith("workflow.parameters."):
            known = [n.split(".", 2)[2] for n in self.globals.names
                     if n.startswith("workflow.parameters.") and n.count(".") >= 2]
            pname = name.split(".", 2)[2]
            return (f"unknown variable {tag}: the workflow has no argument {pname!r} in "
                    "spec.arguments.parameters" + did_you_mean(pname, known))
        if name.startswith("workflow."):
            known = [n for n in self.globals.names if n.startswith("workflow.")]
            return f"unknown variable {tag}" + did_you_mean(name, known)
        if name == "item" or name.startswith("item"):
            return (f"unknown variable {tag}: only a step or task with withItems, withParam "
                    "or withSequence has an item (and only the keys its items have)")
        for kind in ("steps", "tasks"):
            if not name.startswith(kind + "."):
                continue
            node = parts[1] if len(parts) > 1 else ""
            what = "step" if kind == "steps" else "task"
            if nodes is None or nodes[0] != kind:
                return (f"unknown variable {tag}: {kind}.* is only available inside a "
                        f"{'steps' if kind == 'steps' else 'dag'} template")
            _, all_names, done = nodes
            if node not in all_names:
                return (f"unknown variable {tag}: unknown {what} {node!r}"
                        + did_you_mean(node, all_names))
            if node not in done:
                return (f"unknown variable {tag}: step {node!r} has not run yet here "
                        "(only earlier steps can be referenced)")
            rest = ".".join(parts[2:])
            return (f"unknown variable {tag}: {what} {node!r} has no {rest!r} "
                    "(check the called template's outputs)")
        if name.startswith("pod."):
            return f"unknown variable {tag}: only pod.name exists, in pod templates"
        return f"unknown variable {tag}"


def variable_issues(sc: SpecChecker) -> list[Issue]:
    """Malformed tags anywhere in the spec, and unresolvable variables in its templates."""
    return VariableChecker(sc).run()
