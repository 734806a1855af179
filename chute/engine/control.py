"""Requests to running workflows, written to the store for their controller to act on:
suspend, resume, stop, terminate (Argo's spec.suspend / spec.shutdown), and the reruns
retry (failed nodes, then the exit handlers) and resubmit (a fresh run of the same spec
and parameters)."""

from __future__ import annotations

import time
from collections import deque

from chute.engine import phases as P
from chute.engine.state_format import check_replayable
from chute.errors import ConflictError, ParameterError
from chute.spec.loader import load_resource
from chute.store import queries as q
from chute.store.db import Store
from chute.store.models import WorkflowRow

ACTIVE = (P.WF_PENDING, P.WF_RUNNING)


def _active(s, name: str) -> WorkflowRow:
    row = q.get_workflow(s, name)
    if row.phase not in ACTIVE:
        raise ConflictError(f"workflow {name!r} is {row.phase}, not running")
    return row


def suspend(store: Store, name: str) -> None:
    """No new steps start; running ones finish."""
    with store.write() as s:
        q.update_workflow(s, _active(s, name).uid, suspended=True)


def resume(store: Store, name: str, values: dict[str, str] | None = None) -> None:
    """Unsuspend the workflow and let its suspend nodes go on; their output parameters
    take ``values`` (name -> value, Argo's ``valueFrom.supplied``), else their default.
    A name that is no suspend template's supplied output parameter is a ParameterError
    (nothing is written)."""
    with store.write() as s:
        row = _active(s, name)
        if values:
            _check_supplied(store, row, values)
        q.update_workflow(s, row.uid, suspended=False, resumed_at=time.time(),
                          resume_values=dict(values or {}))


def _check_supplied(store: Store, row: WorkflowRow, values: dict[str, str]) -> None:
    """Every name in ``values`` must be an output parameter with ``valueFrom.supplied`` of
    a suspend template the workflow can reach (as ``argo node set`` requires)."""
    from chute.engine.controller import store_lookup
    from chute.engine.plan import build_plan

    plan = build_plan(row.spec, uid=row.uid, created_at=row.created_at,
                      overrides=dict(row.arguments or {}), lookup=store_lookup(store))
    supplied: set[str] = set()
    other: set[str] = set()
    for tmpl in _suspend_templates(list(plan.templates.values())):
        for p in (tmpl.get("outputs") or {}).get("parameters") or []:
            has = (p.get("valueFrom") or {}).get("supplied") is not None
            (supplied if has else other).add(p.get("name"))
    for key in values:
        if key in supplied:
            continue
        known = ", ".join(sorted(supplied)) or "none"
        why = "has no valueFrom.supplied" if key in other else "is not an output parameter of " \
            "any suspend template"
        raise ParameterError(f"resume parameter {key!r} {why} in workflow {row.name!r} "
                             f"(supplied at resume: {known})")


def _suspend_templates(value) -> list[dict]:
    """Every template dict with ``suspend`` inside ``value`` (inline ones included)."""
    found: list[dict] = []
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            if v.get("suspend") is not None:
                found.append(v)
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return found


def stop(store: Store, name: str, terminate: bool = False) -> None:
    """Stop (exit handlers run) or terminate (they do not); running steps are killed."""
    with store.write() as s:
        q.update_workflow(s, _active(s, name).uid,
                          shutdown="Terminate" if terminate else "Stop")


def retry(store: Store, name: str) -> WorkflowRow:
    """Run the failed and errored steps again, and then the exit handlers, keeping the
    succeeded steps (a succeeded step never runs twice; :func:`rerun_rows`). One write
    transaction: the reset nodes and the workflow back to Running commit together, and
    the workflow's controller replays the rest."""
    with store.write() as s:
        row = q.get_workflow(s, name)
        check_replayable(row.name, row.state_format)  # its nodes are rewritten below
        if row.phase not in (P.WF_FAILED, P.WF_ERROR):
            raise ConflictError(f"workflow {name!r} is {row.phase}; only a Failed or Error "
                                "workflow can be retried")
        again = rerun_rows([q.node_dict(n) for n in q.nodes_of(s, row.uid)])
        q.update_nodes(s, row.uid, again)
        q.update_workflow(s, row.uid, phase=P.WF_RUNNING, message=None, finished_at=None,
                          shutdown=None, lease_owner=None, lease_expires_at=None)
    return row


def rerun_rows(rows: list[dict]) -> list[dict]:
    """What ``retry`` writes: the nodes to run again, each back to Pending with a new
    attempt, so the replay runs it again and journals its transitions under new ids.
    ``rows`` are node dicts (``queries.node_dict``).

    As Argo's retry (``FormulateRetryWorkflow``): every node that did not succeed (failed,
    errored, omitted, skipped, or a DAG/steps/retry node around them) runs again; a
    Succeeded node, and whatever ran under it (the failed attempts of a retry that
    succeeded in the end), is never touched: a succeeded step never runs twice (R-7).

    Exit handlers run again after the retried run, whatever their first end, so that they
    see its ``{{workflow.status}}``: the workflow's ``onExit`` (node ``<workflow>.onExit``,
    which Argo's retry deletes) and the handler of every step that runs again
    (``<step>.onExit``, a child of the step's node), each with everything under it. A
    handler's own successes shelter what ran under them, as elsewhere, but not its step's:
    a failed handler of a succeeded step runs again like any failed node.
    """
    by_id = {d["node_id"]: d for d in rows}
    kids: dict[str, list[dict]] = {}
    tops = []
    for d in rows:
        parent = by_id.get(d.get("parent_id"))
        if parent is None:
            tops.append(d)
        else:
            kids.setdefault(parent["node_id"], []).append(d)
    # the root node is the one whose id is its name (Argo's node ids)
    wf_handlers = {f"{d['name']}.onExit" for d in tops if d["node_id"] == d["name"]}

    # top down, parent before child, without recursion (a 10,000-long chain is fine):
    # ``under`` is whether the node or one above it (up to its exit handler) succeeded,
    # ``forced`` whether it is part of an exit handler that runs again
    again_ids: set[str] = set()
    seen: set[str] = set()
    queue = deque((d, False, False) for d in tops)
    while queue:
        d, under, forced = queue.popleft()
        if d["node_id"] in seen:
            continue
        seen.add(d["node_id"])
        parent = by_id.get(d.get("parent_id"))
        if parent is None and d["name"] in wf_handlers:
            under, forced = False, True
        elif parent is not None and d["name"] == f"{parent['name']}.onExit":
            under, forced = False, parent["node_id"] in again_ids
        under = under or d["phase"] == P.SUCCEEDED
        if forced or not under:
            again_ids.add(d["node_id"])
        queue.extend((k, under, forced) for k in kids.get(d["node_id"], ()))

    again = []
    for d in rows:
        # a node whose parents loop (never seen from a top) runs again unless it succeeded
        if d["node_id"] not in again_ids and (d["node_id"] in seen or d["phase"] == P.SUCCEEDED):
            continue
        d = dict(d, phase=P.PENDING, attempt=(d.get("attempt") or 0) + 1, message=None,
                 started_at=None, finished_at=None)
        if d["type"] == P.POD:
            d.update(exit_code=None, outputs={})
        again.append(d)
    return again


def resubmit(store: Store, name: str, *, owner: str | None = None,
             lease_ttl: float = 15.0) -> WorkflowRow:
    """A fresh run of the same spec and parameters, named after the original."""
    from chute.engine.submit import submit

    with store.read() as s:
        row = q.get_workflow(s, name)
    doc = dict(row.spec)
    meta = {k: v for k, v in (doc.get("metadata") or {}).items()
            if k in ("namespace", "labels", "annotations")}
    meta["generateName"] = f"{row.name}-"
    doc["metadata"] = meta
    doc.pop("status", None)
    return submit(store, load_resource(doc), dict(row.arguments or {}), owner=owner,
                  lease_ttl=lease_ttl)
