"""Variables and substitution: the ``{{...}}`` scope of a node, built from the run's
globals, a template's inputs and the outputs of earlier steps and tasks.

Substitution itself is :func:`chute.spec.templating.substitute` (one pass; values are data,
never re-scanned). This module only decides *which* names are visible where.
"""

from __future__ import annotations

import functools
import json
from collections import ChainMap
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from chute.engine.nodes import Node
from chute.engine.phases import FAILED_OR_ERROR, POD, SUCCEEDED, TASK_GROUP
from chute.spec import templating

_last_second: list = [None, ""]  # the second formatted last, and its text


def rfc3339(ts: float | None) -> str | None:
    """Epoch seconds as Argo's RFC 3339 UTC timestamp."""
    if ts is None:
        return None
    # every finished step's node variables carry two timestamps, mostly of the same
    # second as the step before: strftime was ~4 % of a chain step's controller CPU
    second = int(ts // 1)
    last = _last_second
    if last[0] != second:
        last[1] = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        last[0] = second
    return last[1]


#: texts longer than this are looked for tags once (see :func:`tagless`)
LONG_TEXT = 512


@functools.lru_cache(maxsize=256)
def tagless(text: str) -> bool:
    """Whether a long text has no ``{{``, remembered per text. A script's ``source`` is
    the same string for every pod of its template (an SDK step's is ~11 KB), and
    CPython looks for a two-character needle one character at a time: ~30 us for each
    pod, against one hash of the text (kept in the string) and a dict look-up."""
    return "{{" not in text


def substitute(text: str, ctx: Mapping[str, str], strict: bool = False) -> str:
    """Replace ``{{...}}`` tags in ``text`` (fast path when there is none). Tags that cannot
    be resolved yet stay as written (Argo's allowUnresolved) unless ``strict``."""
    if tagless(text) if len(text) > LONG_TEXT else "{{" not in text:
        return text
    return templating.substitute(text, ctx, strict=strict)


def has_tags(value: Any) -> bool:
    """Whether any string inside a JSON value (dict keys included, as
    :func:`substitute_all` substitutes them) holds ``{{``."""
    # loops, not any() over generators: every task's call is looked at once (a chain's)
    if isinstance(value, str):
        return not tagless(value) if len(value) > LONG_TEXT else "{{" in value
    if isinstance(value, dict):
        for k, v in value.items():
            if has_tags(k) or has_tags(v):
                return True
        return False
    if isinstance(value, list | tuple):
        for v in value:
            if has_tags(v):
                return True
    return False


def substitute_all(value: Any, ctx: Mapping[str, str], strict: bool = False) -> Any:
    """Substitute every string inside a JSON value (dicts, lists, strings)."""
    return templating.substitute_all(value, ctx, strict=strict)


def unresolved(text: str) -> bool:
    """Whether ``text`` still holds a ``{{...}}`` tag."""
    return "{{" in text and templating.has_tags(text)


class Globals(dict):
    """The run's global variables (``workflow.*``). A value that changes as the run goes
    on and is costly to keep current (``workflow.failures``) is *live*: computed when a
    substitution reads it, so it is never rebuilt on every change of the run. Reads go
    through ``[]`` or :meth:`get` (as :class:`~collections.ChainMap` and the templating
    do); setting a live name makes it a plain value again."""

    def __init__(self, values: Mapping[str, str]):
        super().__init__(values)
        self._live: dict[str, Callable[[], str]] = {}

    def live(self, name: str, compute: Callable[[], str]) -> None:
        """Make ``name`` a value computed when read."""
        self._live[name] = compute
        dict.__setitem__(self, name, "")  # present for ``in`` and key listings

    def __setitem__(self, name: str, value: str) -> None:
        self._live.pop(name, None)
        dict.__setitem__(self, name, value)

    def __getitem__(self, name: str) -> str:
        compute = self._live.get(name)
        return compute() if compute is not None else dict.__getitem__(self, name)

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return self[name] if name in self else default  # noqa: SIM401 - self.get is this

    def items(self):  # type: ignore[override]
        return [(k, self[k]) for k in self]

    def values(self):  # type: ignore[override]
        return [self[k] for k in self]


class Failures:
    """``workflow.failures``: Argo's JSON list of the failed and errored nodes so far (pod
    nodes here), kept as the nodes fail and serialized only when read and changed since."""

    def __init__(self) -> None:
        self._nodes: list[Node] = []
        self._text: str | None = "[]"

    def note(self, node: Node) -> None:
        """A node reached ``node.phase``: remember it if it is a failed pod."""
        if node.type == POD and node.phase in FAILED_OR_ERROR:
            self._nodes.append(node)
            self._text = None

    def __len__(self) -> int:
        return len(self._nodes)

    def __call__(self) -> str:
        if self._text is None:
            # read the nodes now, not when they failed: their end time and message are
            # filled in after the transition
            self._text = json.dumps([
                {"displayName": n.display_name, "message": n.message or "",
                 "templateName": n.template_name or "", "phase": n.phase,
                 "podName": n.id, "finishedAt": rfc3339(n.finished_at)} for n in self._nodes])
        return self._text


def global_vars(plan) -> dict[str, str]:
    """The workflow-wide variables (``workflow.*``)."""
    g = {
        "workflow.name": plan.name,
        "workflow.namespace": plan.namespace,
        "workflow.uid": plan.uid,
        "workflow.creationTimestamp": rfc3339(plan.created_at) or "",
        "workflow.serviceAccountName": plan.spec.get("serviceAccountName") or "default",
        "workflow.mainEntrypoint": plan.spec.get("entrypoint") or "",
        "workflow.priority": str(plan.spec.get("priority") or 0),
        "workflow.parameters": json.dumps(
            [{"name": k, "value": v} for k, v in plan.parameters.items()]),
        "workflow.parameters.json": json.dumps(
            [{"name": k, "value": v} for k, v in plan.parameters.items()]),
        "workflow.labels.json": json.dumps(plan.labels),
        "workflow.annotations.json": json.dumps(plan.annotations),
    }
    dt = datetime.fromtimestamp(plan.created_at, UTC)
    for ch in "YmdHMSyjaAbBcIpUwWxXZz":  # Argo's strftime variants
        try:
            g[f"workflow.creationTimestamp.{ch}"] = dt.strftime(f"%{ch}")
        except ValueError:
            pass
    g["workflow.creationTimestamp.s"] = str(int(plan.created_at))
    g["workflow.creationTimestamp.RFC3339"] = g["workflow.creationTimestamp"]
    for k, v in plan.parameters.items():
        g[f"workflow.parameters.{k}"] = v
    for k, v in plan.labels.items():
        g[f"workflow.labels.{k}"] = str(v)
    for k, v in plan.annotations.items():
        g[f"workflow.annotations.{k}"] = str(v)
    return g


def input_vars(inputs: Mapping[str, Any]) -> dict[str, str]:
    """``inputs.parameters.X`` (and the JSON list ``inputs.parameters``) of a node."""
    if not inputs:  # a template without inputs (most steps of a chain)
        return {"inputs.parameters": "[]"}
    params = inputs.get("parameters") or []
    out = {f"inputs.parameters.{p['name']}": p.get("value", "") for p in params}
    out["inputs.parameters"] = json.dumps(params) if params else "[]"
    for a in inputs.get("artifacts") or []:
        if a.get("path"):
            out[f"inputs.artifacts.{a['name']}.path"] = a["path"]
        if a.get("from"):
            out[f"inputs.artifacts.{a['name']}"] = a["from"]
    return out


def node_vars(prefix: str, node: Node, out: dict[str, str] | None = None) -> dict[str, str]:
    """What ``steps.X.*`` / ``tasks.X.*`` expose about one finished node (set in ``out``,
    a scope's own dict, if given: no dict made and copied per decided task)."""
    if out is None:
        out = {}
    out[f"{prefix}.id"] = node.id
    out[f"{prefix}.ip"] = "127.0.0.1"
    out[f"{prefix}.status"] = node.phase
    if node.started_at is not None:
        out[f"{prefix}.startedAt"] = rfc3339(node.started_at) or ""
    if node.finished_at is not None:
        out[f"{prefix}.finishedAt"] = rfc3339(node.finished_at) or ""
    outs = node.outputs or {}
    if node.exit_code is not None:
        out[f"{prefix}.exitCode"] = str(node.exit_code)
    elif outs.get("exitCode") is not None:
        out[f"{prefix}.exitCode"] = str(outs["exitCode"])
    if outs.get("result") is not None:
        out[f"{prefix}.outputs.result"] = outs["result"]
    params = outs.get("parameters") or []
    for p in params:
        if p.get("value") is not None:
            out[f"{prefix}.outputs.parameters.{p['name']}"] = p["value"]
    if params:
        out[f"{prefix}.outputs.parameters"] = json.dumps(
            {p["name"]: p.get("value") for p in params})
    for a in outs.get("artifacts") or []:
        out[f"{prefix}.outputs.artifacts.{a['name']}"] = json.dumps(a)
        if a.get("path"):
            out[f"{prefix}.outputs.artifacts.{a['name']}.path"] = a["path"]
    return out


def _parse_item(text: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return text


def aggregate_vars(prefix: str, children: Iterable[Node]) -> dict[str, str]:
    """Outputs of a loop, as Argo aggregates them: JSON lists over succeeded children."""
    params_list: list[dict[str, str]] = []
    per_param: dict[str, list[str]] = {}
    results: list[Any] = []
    for child in children:
        if child.phase != SUCCEEDED:
            continue
        outs = child.outputs or {}
        ps = outs.get("parameters") or []
        if ps:
            params_list.append({p["name"]: p.get("value") for p in ps})
            for p in ps:
                per_param.setdefault(p["name"], []).append(p.get("value"))
        if outs.get("result") is not None:
            results.append(_parse_item(outs["result"]))
    out = {
        f"{prefix}.outputs.result": json.dumps(results),
        f"{prefix}.outputs.parameters": json.dumps(params_list),
    }
    for name, values in per_param.items():
        out[f"{prefix}.outputs.parameters.{name}"] = json.dumps(values)
    return out


def group_vars(prefix: str, group: Node, children: list[Node]) -> dict[str, str]:
    """Variables of a step or task that looped (the group node plus aggregated outputs)."""
    out = {f"{prefix}.id": group.id, f"{prefix}.status": group.phase}
    out.update(aggregate_vars(prefix, children))
    return out


def layered(*maps: Mapping[str, str]) -> ChainMap:
    """A read view over several scopes, first wins."""
    return ChainMap(*maps)


def is_group(node: Node) -> bool:
    """Whether a node is a loop's TaskGroup."""
    return node.type == TASK_GROUP
