"""Graphs for the UI: the static DAG of a spec before it runs, and parameter descriptions.

The static graph expands the entrypoint: a DAG template's tasks (edges from
``dependencies`` and the task names in ``depends``), a steps template's groups (each
step depends on the whole previous group), nested DAG/steps templates inlined (bounded
depth, so a recursive template draws as one node). Loops (``withItems``/``withParam``/
``withSequence``) and conditions (``when``) are marked on the node so the UI can show
them before there are runs.
"""

from __future__ import annotations

import re
from typing import Any

MAX_DEPTH = 8
MAX_NODES = 5000
_TASK_NAME = re.compile(r"[A-Za-z0-9_-]+(?=\.|\b)")
_DEPENDS_KEYWORDS = {"Succeeded", "Failed", "Errored", "Skipped", "Omitted", "Daemoned",
                     "AnySucceeded", "AllFailed"}


def _depends_names(expr: str) -> list[str]:
    names = []
    for tok in re.findall(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", expr):
        name = tok.split(".")[0]
        if name not in _DEPENDS_KEYWORDS and name not in names:
            names.append(name)
    return names


def static_graph(spec: dict[str, Any]) -> dict[str, Any]:
    """``{"nodes": [{id, label, template, kind, loop, when}], "edges": [[from, to]]}``."""
    body = spec.get("spec", {})
    templates = {t.get("name"): t for t in body.get("templates", []) or []}
    nodes: list[dict[str, Any]] = []
    edges: list[list[str]] = []

    def kind_of(t: dict[str, Any] | None) -> str:
        if not t:
            return "ref"
        for k in ("dag", "steps", "container", "script", "suspend", "resource", "http",
                  "containerSet", "data"):
            if t.get(k) is not None:
                return k
        return "unknown"

    def add(node_id: str, label: str, tmpl: str | None, item: dict[str, Any]) -> None:
        loop = next((k for k in ("withItems", "withParam", "withSequence") if item.get(k)), None)
        nodes.append({"id": node_id, "label": label, "template": tmpl,
                      "kind": kind_of(templates.get(tmpl)), "loop": loop,
                      "when": item.get("when")})

    def expand(tmpl_name: str, prefix: str, depth: int) -> tuple[list[str], list[str]]:
        """Draw one template; return (entry node ids, exit node ids)."""
        t = templates.get(tmpl_name)
        kind = kind_of(t)
        if len(nodes) >= MAX_NODES or depth >= MAX_DEPTH or kind not in ("dag", "steps"):
            return [prefix], [prefix]
        if kind == "dag":
            tasks = t["dag"].get("tasks", []) or []
            spans: dict[str, tuple[list[str], list[str]]] = {}
            deps: dict[str, list[str]] = {}
            for task in tasks:
                tid = f"{prefix}.{task['name']}" if prefix else task["name"]
                add(tid, task["name"], task.get("template"), task)
                spans[task["name"]] = expand(task.get("template"), tid, depth + 1) \
                    if kind_of(templates.get(task.get("template"))) in ("dag", "steps") \
                    else ([tid], [tid])
                d = list(task.get("dependencies") or [])
                if task.get("depends"):
                    d += _depends_names(task["depends"])
                deps[task["name"]] = [x for x in d if x != task["name"]]
            has_dependents = set()
            for name, ds in deps.items():
                for d in ds:
                    if d in spans:
                        has_dependents.add(d)
                        for a in spans[d][1]:
                            for b in [f"{prefix}.{name}" if prefix else name]:
                                edges.append([a, b])
            for name, (entries, _) in spans.items():
                own = f"{prefix}.{name}" if prefix else name
                for e in entries:
                    if e != own:
                        edges.append([own, e])
            roots = [f"{prefix}.{n}" if prefix else n for n in spans if not deps[n]]
            leaves = [x for n, s in spans.items() if n not in has_dependents for x in s[1]]
            return roots or [prefix], leaves or [prefix]
        previous: list[str] = []
        first: list[str] = []
        for gi, group in enumerate(t["steps"] or []):
            current: list[str] = []
            for step in group or []:
                sid = f"{prefix}.{step['name']}" if prefix else step["name"]
                add(sid, step["name"], step.get("template"), step)
                entries, exits = expand(step.get("template"), sid, depth + 1) \
                    if kind_of(templates.get(step.get("template"))) in ("dag", "steps") \
                    else ([sid], [sid])
                for e in entries:
                    if e != sid:
                        edges.append([sid, e])
                for p in previous:
                    edges.append([p, sid])
                current.extend(exits)
                if gi == 0:
                    first.append(sid)
            previous = current or previous
        return first or [prefix], previous or [prefix]

    entry = body.get("entrypoint") or (next(iter(templates)) if templates else None)
    exits: list[str] = []
    if entry:
        if kind_of(templates.get(entry)) in ("dag", "steps"):
            exits = expand(entry, "", 0)[1]
        else:
            add(entry, entry, entry, {})
            exits = [entry]
    on_exit = body.get("onExit")
    if on_exit:
        # the exit handler runs after everything else, whatever happened
        add("onExit", f"onExit: {on_exit}", on_exit, {})
        edges.extend([e, "onExit"] for e in exits if e)
    seen: set[tuple[str, str]] = set()
    ids = {n["id"] for n in nodes}
    unique = []
    for a, b in edges:
        if a in ids and b in ids and a != b and (a, b) not in seen:
            seen.add((a, b))
            unique.append([a, b])
    return {"nodes": nodes, "edges": unique}


def _infer_type(value: Any) -> str:
    if value is None:
        return "string"
    s = str(value)
    if s.lower() in ("true", "false"):
        return "boolean"
    try:
        int(s)
        return "integer"
    except ValueError:
        pass
    try:
        float(s)
        return "number"
    except ValueError:
        return "string"


def parameters_of(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The workflow's parameters as the UI form needs them: name, default, type, enum.

    Types come from the ``chute.dev/parameter-types`` annotation the SDK writes (a JSON
    object name → type) when present, else are inferred from the default value.
    """
    import json

    meta = spec.get("metadata") or {}
    declared: dict[str, str] = {}
    raw = (meta.get("annotations") or {}).get("chute.dev/parameter-types")
    if raw:
        try:
            declared = {str(k): str(v) for k, v in json.loads(raw).items()}
        except (ValueError, AttributeError):
            declared = {}
    params = ((spec.get("spec") or {}).get("arguments") or {}).get("parameters") or []
    out = []
    for p in params:
        default = p.get("value", p.get("default"))
        out.append({
            "name": p.get("name"),
            "default": None if default is None else str(default),
            "type": declared.get(p.get("name"), _infer_type(default)),
            "enum": [str(e) for e in p.get("enum") or []] or None,
            "description": p.get("description"),
        })
    return out
