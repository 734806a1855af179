"""Memoization (Argo's ``memoize``) inside the state machine.

A Pod node whose template has ``memoize`` (or the SDK's local-only cache annotation)
looks up its key before launching: a hit takes the stored outputs and the node succeeds
at once (``cached``); a miss remembers the key, and when the pod succeeds its outputs
become a cache write the controller commits with the run's other decisions. The store is
read through an injected :data:`CacheLookup`, like the clock, so the state machine stays
free of IO.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from chute.engine import phases as P
from chute.engine.durations import parse_duration
from chute.engine.nodes import Node
from chute.engine.vars import substitute
from chute.errors import ChuteError
from chute.spec.annotations import LOCAL_CACHE_KEY, LOCAL_CACHE_NAME

if TYPE_CHECKING:
    from chute.engine.state import RunState

#: ``memoize`` lookups: (cache name, key, max age in seconds or None) -> outputs or None.
#: Injected, like the clock; the store answers it (read only).
CacheLookup = Callable[[str, str, float | None], "dict[str, Any] | None"]


class Memo:
    """The memoize keys of one run's pods, the results it memoized, and the cache
    writes not yet drained."""

    def __init__(self, cache: CacheLookup | None):
        self.cache = cache
        self.keys: dict[str, tuple[str, str]] = {}  # pod id -> (cache name, key)
        # results this run memoized: a later step with the same key hits them even before
        # the controller has committed them to the store's cache
        self.results: dict[str, tuple[float, dict[str, Any]]] = {}
        self.writes: list[dict[str, Any]] = []

    def hit(self, st: RunState, node: Node, memo: Mapping[str, Any], ctx: Mapping[str, str],
            lookup: bool = True) -> bool:
        """``memoize``: take the outputs of an earlier run with the same key (not older
        than ``maxAge``) and finish ``node`` with them; on a miss, remember to store ours
        when the pod succeeds. Without ``lookup`` only the latter."""
        try:
            key = substitute(str(memo.get("key") or ""), ctx, strict=True)
            max_age = parse_duration(memo["maxAge"]) if memo.get("maxAge") else None
        except ChuteError as exc:
            if lookup:
                st.finish(node, P.ERROR, f"memoize: {exc}")
            return lookup
        key += artifact_fingerprint(node.inputs)
        name = ((memo.get("cache") or {}).get("configMap") or {}).get("name") or "default"
        self.keys[node.id] = (name, key)
        if not lookup:
            return False
        found = self._own(f"{name}/{key}", max_age, st.now)
        if found is None and self.cache:
            found = self.cache(name, key, max_age)
        if found is None:
            return False
        node.outputs = dict(found)
        node.cached = True
        st._apply_globals(node)
        st.finish(node, P.SUCCEEDED, f"cache hit: {key}")
        return True

    def record(self, st: RunState, node: Node, outputs: dict[str, Any]) -> None:
        """A pod succeeded: if it had a memoize key, store its outputs under it."""
        if node.id not in self.keys:
            return
        name, key = self.keys[node.id]
        self.results[f"{name}/{key}"] = (st.now, outputs)
        self.writes.append({"key": f"{name}/{key}", "workflow_uid": st.plan.uid,
                            "node_id": node.id, "outputs": outputs, "created_at": st.now})

    def drain(self) -> list[dict[str, Any]]:
        """Take the cache writes made since the last drain."""
        writes, self.writes = self.writes, []
        return writes

    def _own(self, key: str, max_age: float | None, now: float) -> dict[str, Any] | None:
        at, outputs = self.results.get(key, (None, None))
        if at is None or (max_age is not None and now - at > max_age):
            return None
        return outputs


def memoize_of(tmpl: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """A template's ``memoize``, or the SDK's local-only cache key as one; None if neither."""
    return tmpl.get("memoize") or local_cache(tmpl)


def local_cache(tmpl: Mapping[str, Any]) -> dict[str, Any] | None:
    """The SDK's local-only cache key of a step that reads artifacts, as a ``memoize``."""
    key = (((tmpl.get("metadata") or {}).get("annotations") or {}).get(LOCAL_CACHE_KEY))
    if not key:
        return None
    return {"key": key, "cache": {"configMap": {"name": LOCAL_CACHE_NAME}}}


def artifact_fingerprint(inputs: Mapping[str, Any] | None) -> str:
    """A memoize key suffix naming the content of the node's input artifacts.

    Argo's key is whatever the spec says; locally chute also keys on what each input
    artifact holds (the producer's content digest, or the location and data given inline),
    so a changed input artifact misses the cache (RELIABILITY L-5). Empty without inputs.
    """
    arts = (inputs or {}).get("artifacts") or []
    if not arts:
        return ""
    parts = []
    for art in arts:
        src = art.get("from")
        if src:
            try:
                parts.append([art.get("name"), json.loads(src).get("digest")])
            except (ValueError, TypeError, AttributeError):
                parts.append([art.get("name"), src])
        else:
            parts.append([art.get("name"), {k: v for k, v in art.items() if k != "path"}])
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return "-a" + hashlib.sha256(blob).hexdigest()[:20]
