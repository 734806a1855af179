"""``retryStrategy``: a Retry node whose children are the attempts ``name(0)``,
``name(1)``, ... as in Argo. ``limit`` counts retries (so at most ``limit + 1`` attempts);
the policy and ``expression`` are checked after every attempt; ``backoff`` delays the next
one. ``{{retries}}`` is the attempt number inside the template."""

from __future__ import annotations

from collections import ChainMap
from typing import Any

from chute.engine import phases as P
from chute.engine.durations import parse_duration
from chute.engine.frame import Frame
from chute.engine.nodes import Node, node_id
from chute.engine.state import RunState
from chute.engine.vars import input_vars, substitute
from chute.errors import ChuteError
from chute.spec import expr
from chute.spec.models.base import as_int

TRANSIENT_HINTS = ("connection reset", "connection refused", "timeout", "timed out",
                   "temporarily unavailable", "supervisor lost", "too many requests")


def is_transient(message: str | None) -> bool:
    """Whether an attempt's message names a transient error (Argo's ``IsTransientErr``:
    connection resets, timeouts, a lost supervisor standing in for a deleted pod)."""
    text = (message or "").lower()
    return any(h in text for h in TRANSIENT_HINTS)


def policy_allows(policy: str, phase: str, message: str) -> bool:
    """Whether ``retryPolicy`` retries an attempt that ended in ``phase``."""
    if phase == P.SUCCEEDED:
        return False
    if policy == "Always":
        return phase in P.FAILED_OR_ERROR
    if policy == "OnError":
        return phase == P.ERROR
    if policy == "OnTransientError":  # Argo: Failed or Error, if the message is transient
        return phase in P.FAILED_OR_ERROR and is_transient(message)
    return phase == P.FAILED  # OnFailure, Argo's default


class RetryFrame(Frame):
    """Runs attempts of one call until one succeeds or the strategy says stop."""

    def __init__(self, st: RunState, *, name, display, call, tmpl, scope, boundary_id, parent,
                 owner):
        self.st, self.call, self.tmpl, self.scope = st, call, tmpl, scope
        self.name, self.display, self.boundary_id = name, display, boundary_id
        self.strategy: dict[str, Any] = tmpl.get("retryStrategy") or {}
        limit = self.strategy.get("limit")
        self.limit = as_int(limit) if limit not in (None, "") else None
        policy = self.strategy.get("retryPolicy")
        if not policy:
            policy = "Always" if self.strategy.get("expression") else "OnFailure"
        self.policy = policy
        self.node = st.add_node(name, display, P.RETRY, template_name=tmpl.get("name"),
                                boundary_id=boundary_id, parent=parent, owner=owner)
        st.transition(self.node, P.RUNNING)
        self.attempt = 0
        self.first_start = st.now
        self._launch()

    def _launch(self) -> None:
        i = self.attempt
        self.st.execute(name=f"{self.name}({i})", display=f"{self.display}({i})",
                        call=self.call, scope=self.scope, boundary_id=self.boundary_id,
                        parent=self.node, owner=self, retry_attempt=i)

    def child_done(self, st: RunState, child: Node) -> None:
        if child.phase in P.FAILED_OR_ERROR and self._ran_before(self.attempt + 1):
            # replay after a restart: the next attempt ran already, so the strategy said
            # retry then; re-deciding now (a stop since, a backoff clock restarted) would
            # change a recorded history
            self.attempt += 1
            self._launch()
            return
        if child.phase == P.SUCCEEDED or child.phase not in P.FAILED_OR_ERROR or st.stopping:
            self._end(child)
            return
        if self.limit is not None and self.attempt >= self.limit:
            self._end(child, "No more retries left")
            return
        if not policy_allows(self.policy, child.phase, child.message or ""):
            self._end(child)
            return
        if self.strategy.get("expression"):
            env = {
                "lastRetry.exitCode": str(child.exit_code if child.exit_code is not None else -1),
                "lastRetry.status": child.phase,
                "lastRetry.duration": str(int((child.finished_at or st.now)
                                              - (child.started_at or st.now))),
                "lastRetry.message": child.message or "",
            }
            source = substitute(self.strategy["expression"],
                                ChainMap(input_vars(child.inputs or {}), st.globals))
            try:
                ok = bool(expr.evaluate(source, env))
            except ChuteError:
                ok = False
            if not ok:
                self._end(child)
                return
        delay = self._delay()
        if delay is None:
            self._end(child, "Max duration limit exceeded")
            return
        self.attempt += 1
        if delay <= 0:
            self._launch()
        else:
            st.at(st.now + delay, self._launch)

    def _ran_before(self, i: int) -> bool:
        """Whether attempt ``i`` started before a restart (recorded, past Pending)."""
        rec = self.st.recorded.get(node_id(self.st.plan.name, f"{self.name}({i})"))
        return rec is not None and rec.phase != P.PENDING

    def _delay(self) -> float | None:
        backoff = self.strategy.get("backoff") or {}
        if not backoff.get("duration"):
            return 0.0
        base = parse_duration(str(backoff["duration"]))
        factor = float(backoff.get("factor") or 1)
        delay = base * (factor ** self.attempt)
        if backoff.get("cap"):
            delay = min(delay, parse_duration(str(backoff["cap"])))
        if backoff.get("maxDuration"):
            limit = parse_duration(str(backoff["maxDuration"]))
            if self.st.now + delay - self.first_start > limit:
                return None
        return delay

    def _end(self, last: Node, note: str | None = None) -> None:
        self.node.outputs = dict(last.outputs or {})
        self.node.exit_code = last.exit_code
        self.node.cached = last.cached
        if last.phase == P.SUCCEEDED:
            self.st._apply_globals(self.node)
        message = last.message
        if note and last.phase in P.FAILED_OR_ERROR:
            message = f"{note}: {last.message}" if last.message else note
        self.node.inputs = dict(last.inputs or {})
        self.st.finish(self.node, last.phase if last.phase != P.OMITTED else P.SKIPPED, message)
