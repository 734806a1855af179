"""Compile a ``@pipeline`` into an Argo ``Workflow`` or ``WorkflowTemplate``.

The output is plain Argo, runnable by chute's engine and by Argo on Kubernetes:

* the pipeline is the ``entrypoint`` DAG template (named after the pipeline); its
  parameters are ``spec.arguments.parameters`` and tasks read them as
  ``{{workflow.parameters.<name>}}``;
* each component becomes a ``script`` template (see :mod:`chute.dsl.script`): inputs as
  ``inputs.parameters`` (passed to the program in ``CHUTE_INPUT_<name>`` environment
  variables) and ``inputs.artifacts`` at ``/tmp/artifacts/inputs/<name>``; outputs as
  ``outputs.parameters`` with ``valueFrom.path`` ``/tmp/outputs/parameters/<name>`` and
  ``outputs.artifacts`` at ``/tmp/artifacts/outputs/<name>``. ``Metrics``,
  ``ClassificationMetrics``, ``HTML`` and ``Markdown`` artifacts are archived ``none`` so
  the stored object is the file itself. The template's pod annotation
  ``chute.dev/artifact-types`` maps each output artifact to its KFP schema title
  (``{"metrics": "system.Metrics"}``): that is how the engine tells metrics files apart;
* ``retries`` -> ``retryStrategy``, ``timeout`` -> ``activeDeadlineSeconds`` (both
  IntOrString in Argo's schema, so emitted as strings), ``cpu``/``memory`` -> resources;
* caching -> ``memoize`` with the ConfigMap cache ``chute-cache``, no ``maxAge``, and the key
  ``<component>-<code digest>-{{=sprig.sha256sum(toJson([inputs.parameters.a, ...]))}}``.
  Argo requires keys of letters, digits and ``-``, so the input values are hashed; the code
  digest (function source, runtime, image, packages, env) invalidates entries when the
  step changes. Steps that read input artifacts get no ``memoize``: on Argo a key cannot
  see an artifact's content, and a stale hit would be wrong. They carry the same key in the
  annotation ``chute.dev/cache-key`` instead, which only the local engine reads: it adds
  the input artifacts' content digests to the key. Steps without outputs are not cached
  (Argo caches outputs only);
* control flow as described in :mod:`chute.dsl.control`; how a task reads a channel, and
  how a value reaches a loop body, in :mod:`chute.dsl.references`.

Wiring errors are raised while the pipeline function runs; a cycle through ``.after()`` is
found here, and reported at the line of the ``.after()`` call that closed it.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from typing import Any

import yaml

from chute.dsl.channels import Channel
from chute.dsl.component import PipelineTask
from chute.dsl.context import Scope
from chute.dsl.control import ParallelFor
from chute.dsl.errors import PipelineError
from chute.dsl.pipeline import Pipeline
from chute.dsl.references import ChannelReferences, tag
from chute.dsl.script import ART_IN_DIR, ART_OUT_DIR, PARAM_OUT_DIR, build_source, code_digest
from chute.dsl.types import encode_constant
from chute.spec.annotations import LOCAL_CACHE_KEY, LOCAL_CACHE_NAME

API_VERSION = "argoproj.io/v1alpha1"
CACHE_CONFIGMAP = LOCAL_CACHE_NAME
INPUT_ENV_PREFIX = "CHUTE_INPUT_"
RAW_ARCHIVE = ("Metrics", "ClassificationMetrics", "HTML", "Markdown")
_TASK_REF = re.compile(r"\{\{tasks\.([A-Za-z0-9-]+)\.")


class _Compiler(ChannelReferences):
    def __init__(self, pipe: Pipeline, kind: str):
        self.pipe = pipe
        self.kind = kind
        self.b = pipe.build()
        self._tnames: set[str] = set()
        self.root_name = self._tname(pipe.name)
        self.dag_templates: list[dict[str, Any]] = []
        self.comp_templates: list[dict[str, Any]] = []
        self._comp_index: dict[tuple, str] = {}
        # Values a nested scope receives from its parent: scope -> {input name: channel}.
        self.passed: dict[int, dict[str, Channel]] = {}
        self.item_inputs: dict[int, dict[str, str | None]] = {}  # loop -> {name: item key}
        self.exports: dict[int, dict[str, Channel]] = {}  # loop -> {output name: channel}
        self.loop_templates: dict[int, list[dict[str, Any]]] = {}
        self.after_edges: dict[str, list[tuple[str, str]]] = {}  # node -> [(dep, location)]

    def _tname(self, base: str) -> str:
        name, n = base, 1
        while name in self._tnames:
            n += 1
            name = f"{base}-{n}"
        self._tnames.add(name)
        return name

    def component_template(self, task: PipelineTask) -> str:
        comp = task.component
        key = task.template_key()
        if key in self._comp_index:
            return self._comp_index[key]
        name = self._tname(comp.name)
        self._comp_index[key] = name
        spec = comp.spec
        tmpl: dict[str, Any] = {"name": name}
        art_types = {n: t.cls.schema_title for n, t in spec.output_artifacts.items()}
        annotations = {"chute.dev/component": comp.fn.__name__}
        if art_types:
            annotations["chute.dev/artifact-types"] = json.dumps(art_types, sort_keys=True)
        tmpl["metadata"] = {"annotations": annotations}
        inputs: dict[str, Any] = {}
        if spec.input_params:
            inputs["parameters"] = [
                {"name": i.name, **({"default": encode_constant(i.default)}
                                    if i.has_default else {})}
                for i in spec.input_params]
        if spec.input_artifacts:
            inputs["artifacts"] = [{"name": i.name, "path": f"{ART_IN_DIR}/{i.name}"}
                                   for i in spec.input_artifacts]
        if inputs:
            tmpl["inputs"] = inputs
        outputs: dict[str, Any] = {}
        if spec.outputs:
            outputs["parameters"] = [{"name": n, "valueFrom": {"path": f"{PARAM_OUT_DIR}/{n}"}}
                                     for n in spec.outputs]
        if spec.output_artifacts:
            outputs["artifacts"] = [
                {"name": n, "path": f"{ART_OUT_DIR}/{n}",
                 **({"archive": {"none": {}}} if t.cls.__name__ in RAW_ARCHIVE else {})}
                for n, t in spec.output_artifacts.items()]
        if outputs:
            tmpl["outputs"] = outputs
        if task.retry is not None:
            tmpl["retryStrategy"] = _retry(task.retry)
        if comp.timeout is not None:
            tmpl["activeDeadlineSeconds"] = str(int(comp.timeout))
        if task.cache and outputs and spec.input_artifacts:
            # Argo's key cannot see an artifact's content: cache locally only, where the
            # engine adds the input artifacts' digests to this key
            tmpl["metadata"]["annotations"][LOCAL_CACHE_KEY] = self._memoize(task)["key"]
        elif task.cache and outputs:
            tmpl["memoize"] = self._memoize(task)
        env = [{"name": INPUT_ENV_PREFIX + i.name,
                "value": tag(f"inputs.parameters.{i.name}")} for i in spec.input_params]
        env += [{"name": k, "value": v} for k, v in task.env.items()]
        env += [{"name": k, "valueFrom": {"secretKeyRef": {"name": s, "key": key_}}}
                for k, (s, key_) in comp.secrets.items()]
        script: dict[str, Any] = {"image": comp.image, "command": ["python3"]}
        if env:
            script["env"] = env
        resources = {k: v for k, v in (("cpu", task.cpu), ("memory", task.memory)) if v}
        if resources:
            script["resources"] = {"requests": dict(resources), "limits": dict(resources)}
        script["source"] = build_source(comp, task.reuse_worker)
        tmpl["script"] = script
        self.comp_templates.append(tmpl)
        return name

    def _memoize(self, task: PipelineTask) -> dict[str, Any]:
        comp = task.component
        key = f"{comp.name}-{code_digest(comp, task.env)}"
        params = [i.name for i in comp.spec.input_params]
        if params:
            values = ", ".join(f"inputs.parameters.{p}" for p in params)
            key += "-" + tag(f"=sprig.sha256sum(toJson([{values}]))")
        return {"key": key, "maxAge": "", "cache": {"configMap": {"name": CACHE_CONFIGMAP}}}

    def task_node(self, task: PipelineTask, scope: Scope) -> dict[str, Any]:
        node: dict[str, Any] = {"name": task.name, "template": self.component_template(task)}
        params, arts = [], []
        for name, value in task.arguments.items():
            if isinstance(value, Channel) and value.is_artifact:
                arts.append({"name": name, "from": self.ref(value, scope)})
            elif isinstance(value, Channel):
                params.append({"name": name, "value": self.ref(value, scope)})
            else:
                params.append({"name": name, "value": encode_constant(value)})
        args: dict[str, Any] = {}
        if params:
            args["parameters"] = params
        if arts:
            args["artifacts"] = arts
        if args:
            node["arguments"] = args
        when = self.when(task.guards, scope)
        if when:
            node["when"] = when
        return node

    def scope_nodes(self, scope: Scope) -> list[dict[str, Any]]:
        """The DAG tasks of one scope; nested loop bodies are compiled first."""
        out = []
        for item in scope.nodes:
            if item is self.b.exit_task:
                continue
            if isinstance(item, ParallelFor):
                out.append(self.loop_node(item, scope))
            else:
                out.append(self.task_node(item, scope))
                self._after(item)
        return out

    def _after(self, task: PipelineTask) -> None:
        for other, location in task.after_tasks:
            if other is self.b.exit_task:
                raise PipelineError(f"'{task.name}'.after() the exit task '{other.name}': the "
                                    "exit task runs when the workflow ends", location)
            dep: Any = other
            while not task.scope.within(dep.scope):  # lift to a scope enclosing the task
                dep = dep.scope.loop
            node: Any = task
            while node.scope is not dep.scope:
                node = node.scope.loop
            if node is dep:
                raise PipelineError(f"'{task.name}'.after('{other.name}'): a task cannot wait "
                                    "for the loop it runs in", location)
            self.after_edges.setdefault(node.name, []).append((dep.name, location))

    def loop_node(self, loop: ParallelFor, scope: Scope) -> dict[str, Any]:
        body_tasks = self.scope_nodes(loop.body)
        _finish_dependencies(body_tasks, self.after_edges)
        items_ref = None
        if isinstance(loop.items, Channel):
            items_ref = self.ref(loop.items, scope)
        body_name = loop.name if loop.parallelism is None else f"{loop.name}-iteration"
        body = {"name": self._tname(body_name), "dag": {"tasks": body_tasks}}
        passed = self.passed.get(id(loop.body), {})
        item_inputs = self.item_inputs.get(id(loop), {})
        body_inputs: dict[str, Any] = {}
        in_params = [{"name": n} for n in item_inputs]
        in_params += [{"name": n} for n, ch in passed.items() if not ch.is_artifact]
        in_arts = [{"name": n} for n, ch in passed.items() if ch.is_artifact]
        if in_params:
            body_inputs["parameters"] = in_params
        if in_arts:
            body_inputs["artifacts"] = in_arts
        if body_inputs:
            body["inputs"] = body_inputs
        outer_params = [{"name": n, "value": self.ref(ch, scope)}
                        for n, ch in passed.items() if not ch.is_artifact]
        outer_arts = [{"name": n, "from": self.ref(ch, scope)}
                      for n, ch in passed.items() if ch.is_artifact]
        item_args = [{"name": n, "value": tag(f"item.{k}" if k else "item")}
                     for n, k in item_inputs.items()]
        node: dict[str, Any] = {"name": loop.name}
        templates = [body]
        if loop.parallelism is None:
            node["template"] = body["name"]
            if items_ref is None:
                node["withItems"] = loop.items
            else:
                node["withParam"] = items_ref
            _set_args(node, item_args + outer_params, outer_arts)
        else:
            wrapper: dict[str, Any] = {"name": self._tname(loop.name),
                                       "parallelism": loop.parallelism}
            fwd_params = [{"name": p["name"], "value": tag(f"inputs.parameters.{p['name']}")}
                          for p in outer_params]
            fwd_arts = [{"name": a["name"], "from": tag(f"inputs.artifacts.{a['name']}")}
                        for a in outer_arts]
            inner: dict[str, Any] = {"name": "iteration", "template": body["name"]}
            w_inputs: dict[str, Any] = {}
            w_params = [{"name": p["name"]} for p in outer_params]
            if items_ref is None:
                inner["withItems"] = loop.items
            else:
                inner["withParam"] = tag("inputs.parameters.loop-items")
                w_params.append({"name": "loop-items"})
                outer_params = outer_params + [{"name": "loop-items", "value": items_ref}]
            if w_params:
                w_inputs["parameters"] = w_params
            if outer_arts:
                w_inputs["artifacts"] = [{"name": a["name"]} for a in outer_arts]
            if w_inputs:
                wrapper["inputs"] = w_inputs
            _set_args(inner, item_args + fwd_params, fwd_arts)
            wrapper["dag"] = {"tasks": [inner]}
            node["template"] = wrapper["name"]
            _set_args(node, outer_params, outer_arts)
            templates.insert(0, wrapper)
        when = self.when(loop.guards, scope)
        if when:
            node["when"] = when
        self.loop_templates[id(loop)] = templates
        self.dag_templates.extend(templates)
        return node

    def finish_loops(self) -> None:
        """Declare the outputs Collected() asked of each loop, now that all are known."""
        for loop in self.b.loops:
            exports = self.exports.get(id(loop))
            if not exports:
                continue
            templates = self.loop_templates[id(loop)]
            body = templates[-1]
            body["outputs"] = {"parameters": [
                {"name": n, "valueFrom": {"parameter": self.ref(ch, loop.body)}}
                for n, ch in exports.items()]}
            if len(templates) == 2:  # the parallelism wrapper passes the lists up
                templates[0]["outputs"] = {"parameters": [
                    {"name": n, "valueFrom": {
                        "parameter": tag(f"tasks.iteration.outputs.parameters.{n}")}}
                    for n in exports]}

    def exit_handler(self) -> str | None:
        task = self.b.exit_task
        if task is None:
            return None
        name = self._tname("on-exit")
        self.dag_templates.append({"name": name,
                                   "dag": {"tasks": [self.task_node(task, self.b.root)]}})
        return name

    def compile(self) -> dict[str, Any]:
        root_tasks = self.scope_nodes(self.b.root)
        _finish_dependencies(root_tasks, self.after_edges)
        self.finish_loops()
        on_exit = self.exit_handler()
        root = {"name": self.root_name, "dag": {"tasks": root_tasks}}
        pipe = self.pipe
        metadata: dict[str, Any] = ({"name": pipe.name} if self.kind == "WorkflowTemplate"
                                    else {"generateName": f"{pipe.name}-"})
        if pipe.description:
            metadata["annotations"] = {"workflows.argoproj.io/description": pipe.description}
        spec: dict[str, Any] = {"entrypoint": self.root_name}
        args = pipe.arguments()
        if args:
            spec["arguments"] = {"parameters": args}
        if on_exit:
            spec["onExit"] = on_exit
        spec["templates"] = [root, *self.dag_templates, *self.comp_templates]
        return {"apiVersion": API_VERSION, "kind": self.kind, "metadata": metadata,
                "spec": spec}


def _set_args(node: dict[str, Any], params: list, arts: list) -> None:
    args: dict[str, Any] = {}
    if params:
        args["parameters"] = params
    if arts:
        args["artifacts"] = arts
    if args:
        node["arguments"] = args


def _retry(policy: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"limit": str(policy.limit)}
    if policy.policy:
        out["retryPolicy"] = policy.policy
    backoff = {k: v for k, v in (("duration", policy.backoff_duration),
                                 ("factor", None if policy.backoff_factor is None
                                  else str(policy.backoff_factor)),
                                 ("maxDuration", policy.backoff_max_duration)) if v}
    if backoff:
        out["backoff"] = backoff
    return out


def _finish_dependencies(tasks: list[dict[str, Any]],
                         after: dict[str, list[tuple[str, str]]]) -> None:
    """Set each task's ``dependencies`` from the tasks it references and its ``.after()``;
    refuse cycles (only ``.after()`` can close one: references always point backwards)."""
    names = {t["name"] for t in tasks}
    deps: dict[str, list[str]] = {}
    for t in tasks:
        body = {k: v for k, v in t.items() if k not in ("name", "template")}
        found = set(_TASK_REF.findall(json.dumps(body)))
        found.update(d for d, _ in after.get(t["name"], []))
        found &= names
        found.discard(t["name"])
        deps[t["name"]] = sorted(found)
    _check_cycles(deps, after)
    for t in tasks:
        if deps[t["name"]]:
            t["dependencies"] = deps[t["name"]]


def _check_cycles(deps: dict[str, list[str]], after: dict[str, list[tuple[str, str]]]) -> None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for d in deps.get(n, []):
            if state.get(d) == 1:
                cycle = stack[stack.index(d):] + [d]
                location = None
                for a, b in itertools.pairwise(cycle):
                    for dep, loc in after.get(a, []):
                        if dep == b:
                            location = loc
                raise PipelineError("cycle through .after(): " + " -> ".join(cycle), location)
            if state.get(d) is None:
                visit(d)
        stack.pop()
        state[n] = 2

    for n in deps:
        if n not in state:
            visit(n)


def _resolve(pipeline_fn: Any) -> Pipeline:
    if isinstance(pipeline_fn, Pipeline):
        return pipeline_fn
    if callable(pipeline_fn):
        raise PipelineError(f"{getattr(pipeline_fn, '__name__', pipeline_fn)!r} is not a "
                            "@pipeline function")
    raise PipelineError(f"expected a @pipeline function, got {pipeline_fn!r}")


def compile_pipeline(pipeline_fn: Pipeline | Callable, *, kind: str = "Workflow") -> dict:
    """Compile a ``@pipeline`` to an Argo ``Workflow`` (or ``WorkflowTemplate``) dict."""
    if kind not in ("Workflow", "WorkflowTemplate"):
        raise PipelineError(f"kind must be Workflow or WorkflowTemplate, got {kind!r}")
    return _Compiler(_resolve(pipeline_fn), kind).compile()


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """Safe YAML dumper (libyaml when present) writing multi-line strings as literal blocks."""


def _str_representer(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str_representer)


def to_yaml(resource: dict) -> str:
    """Dump a compiled resource as YAML, keys in Argo's usual order."""
    return yaml.dump(resource, Dumper=_Dumper, sort_keys=False, width=100,
                     allow_unicode=True)


def compile_to_yaml(pipeline_fn: Pipeline | Callable, *, kind: str = "Workflow") -> str:
    """Compile a ``@pipeline`` to Argo YAML text."""
    return to_yaml(compile_pipeline(pipeline_fn, kind=kind))
