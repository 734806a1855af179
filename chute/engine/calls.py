"""Preparing a step or task to run: substitution, loop expansion, ``when``, ``continueOn``."""

from __future__ import annotations

import re
from collections import ChainMap
from collections.abc import Iterator, Mapping
from typing import Any

from chute.engine.loops import has_loop, loop_values, make_item
from chute.engine.phases import ERROR, FAILED
from chute.engine.vars import has_tags, substitute_all
from chute.spec.expr import evaluate_when

LOOP_KEYS = ("withItems", "withParam", "withSequence")
# substituted later: an inline template sees its own inputs; a lifecycle hook's arguments
# are resolved when it runs (they see the node it guards and the run as it is then)
_LATER = ("inline", "hooks")
_SPECIAL = (*LOOP_KEYS, *_LATER)
# A whole argument value that is one output reference still unresolved (its producer was
# skipped or omitted and had no default): Argo drops the argument so the input's default
# applies.
_LONE_OUTPUT_REF = re.compile(r"^\{\{\s*(tasks|steps)\.[^{}]+\.outputs\.[^{}]+\}\}$")


# id(call) -> (call, the keys whose values hold a tag, or None if a key itself holds one,
# whether the call has neither a tag nor a loop nor a key set apart: see plain_call)
_TAGGED: dict[int, tuple[Mapping[str, Any], frozenset[str] | None, bool]] = {}
_TAGGED_MAX = 4096


def _tagged(call: Mapping[str, Any]) -> tuple[Mapping[str, Any], frozenset[str] | None, bool]:
    """The keys of a step's or task's call whose values hold a ``{{`` tag (None: a key
    does; the whole call is substituted then), and whether the call is as substituted
    already. Remembered per call: a call is the spec's dict, the same for every item of
    a loop and every instance of its template, and kept (pinned) so that its id stays its
    own while remembered."""
    hit = _TAGGED.get(id(call))
    if hit is not None and hit[0] is call:
        return hit
    if len(_TAGGED) >= _TAGGED_MAX:  # calls of runs long gone: start afresh
        _TAGGED.clear()
    tagged: set[str] | None = set()
    for k, v in call.items():  # (a str looked at here: has_tags' first case, inline)
        if "{{" in k if type(k) is str else has_tags(k):
            tagged = None
            break
        if "{{" in v if type(v) is str else has_tags(v):
            tagged.add(k)
    keys = None if tagged is None else frozenset(tagged)
    plain = keys == frozenset() and not any(k in call for k in _SPECIAL)
    hit = _TAGGED[id(call)] = (call, keys, plain)
    return hit


def _tagged_keys(call: Mapping[str, Any]) -> frozenset[str] | None:
    """The keys of a call whose values hold a tag (see :func:`_tagged`)."""
    return _tagged(call)[1]


def _substitute_call(base: dict[str, Any], tagged: frozenset[str] | None,
                     ctx: Mapping[str, str]) -> dict[str, Any]:
    """``substitute_all(base, ctx)``, walking only the values that hold a tag: the others
    are the spec's own (shared, never changed; a chain's tasks hold none, a loop item's
    only its arguments)."""
    if tagged is None:
        return substitute_all(base, ctx)
    return {k: substitute_all(v, ctx) if k in tagged else v for k, v in base.items()}


def _prepare(sub: dict[str, Any]) -> dict[str, Any]:
    args = sub.get("arguments")
    if args and args.get("parameters"):
        kept = [p for p in args["parameters"]
                if not (isinstance(p.get("value"), str) and _LONE_OUTPUT_REF.match(p["value"]))]
        if len(kept) != len(args["parameters"]):
            sub["arguments"] = {**args, "parameters": kept}
    return sub


def plain_call(call: Mapping[str, Any], ctx: Mapping[str, str]) -> dict[str, Any]:
    """The substituted call of a step or task without a loop: what :func:`expand`
    yields for it. A call without a tag (a chain's tasks) is a copy of itself."""
    if _tagged(call)[2]:
        return dict(call)
    return next(expand(call, ctx))[1]


def expand(call: Mapping[str, Any], ctx: Mapping[str, str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(name suffix, substituted call)``: one for a plain call, one per loop item
    (suffix ``(i:label)``). ``inline`` templates are not substituted with the caller's
    scope: they see their own inputs, like any template; ``hooks`` only get the loop's
    ``item`` here (the exit hook's arguments are resolved when it runs, in
    :meth:`chute.engine.frame.Frame.hook_vars`)."""
    inline = call.get("inline")
    hooks = call.get("hooks")
    base = {k: v for k, v in call.items() if k not in LOOP_KEYS and k not in _LATER}
    tagged = _tagged_keys(call)
    if not has_loop(call):
        sub = _substitute_call(base, tagged, ctx)
        if inline is not None:
            sub["inline"] = inline
        if hooks is not None:
            sub["hooks"] = hooks
        yield "", _prepare(sub)
        return
    loop = substitute_all({k: call[k] for k in LOOP_KEYS if call.get(k) is not None}, ctx)
    for i, value in enumerate(loop_values(loop) or []):
        item = make_item(i, value)
        sub = _substitute_call(base, tagged, ChainMap(item.vars, ctx))
        if inline is not None:
            sub["inline"] = inline
        if hooks is not None:  # the item now, everything else when a hook runs
            sub["hooks"] = substitute_all(hooks, item.vars)
        yield f"({i}:{item.label})", _prepare(sub)


def should_run(sub: Mapping[str, Any]) -> bool:
    """Evaluate the (substituted) ``when``; no condition means run."""
    when = sub.get("when")
    if when is None or str(when).strip() == "":
        return True
    return evaluate_when(str(when))


def continues_on(call: Mapping[str, Any], phase: str) -> bool:
    """Whether ``continueOn`` lets the workflow go on after this phase."""
    co = call.get("continueOn") or {}
    return bool((phase == FAILED and co.get("failed")) or (phase == ERROR and co.get("error")))
