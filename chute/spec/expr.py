"""Safe evaluation of Argo's expressions: ``when`` conditions and ``{{= ... }}`` tags.

Two languages, as in Argo:

* :func:`evaluate_when` — the govaluate grammar of ``when:``, evaluated after the
  ``{{...}}`` tags in it are substituted (see :mod:`chute.spec.expr_when` for the exact
  rules, e.g. bare words are strings: ``heads == heads`` is true).
* :func:`evaluate` — the expr-lang subset used in ``{{= ... }}`` tags,
  ``retryStrategy.expression``, hook and metric expressions (see
  :mod:`chute.spec.expr_parser` for the grammar and :mod:`chute.spec.expr_funcs` /
  :mod:`chute.spec.expr_sprig` for the functions).

The clock an expression reads (``now()``, ``sprig.now``, ``sprig.date``) can be injected
with :func:`use_clock`; without it, it is the system clock in UTC.

Neither uses Python's ``eval``/``compile``: both are parsers and tree walkers of our own
over plain data. Every call returns or raises :class:`~chute.errors.ExpressionError`
within 50 ms of CPU time: sources are capped at 4 KiB (a substituted ``when`` at 64 KiB),
trees at 64 levels and 1,000 nodes, strings at 1 MiB characters and lists at 131,072
elements, evaluation at a step budget and a 15 ms CPU deadline that helpers (JSON printing,
jsonpath, conversions) also observe, ``**`` at finite results, integers at int64, and regular
expressions run on RE2 with pattern size x text length capped. Evaluate off the
controller's main loop all the same. An undefined top-level name raises
:class:`UndefinedVariableError` (an ExpressionError) naming it; a missing *member* of a
map is nil-like (``a.missing ?? 'x'`` and ``a.missing == nil`` work, as in expr-lang) and
raises UndefinedVariableError naming the full path when used in any other way.

Argo builds the expression environment from its flat variable map
(``util/expr/env/env.go``): keys are split on dots into nested maps, so
``inputs.parameters.x`` is reachable as ``inputs.parameters.x`` and a name with a dash as
``inputs.parameters['my-param']`` or ``steps['flip-coin'].outputs.result``; where both
``a`` and ``a.b`` are keys, the less specific ``a`` is dropped. Added to it are ``asInt``,
``asFloat``, ``jsonpath``, ``toJson`` and ``sprig``. :func:`build_env` does the same.
"""

from __future__ import annotations

import bisect
import datetime as _dt
import functools
import time
from collections.abc import Iterable, Mapping
from typing import Any

from chute.errors import ExpressionError
from chute.spec import expr_eval, expr_parser
from chute.spec.expr_funcs import ARGO_FUNCS, BUILTINS
from chute.spec.expr_sprig import SPRIG
from chute.spec.expr_values import (
    Func,
    GoDuration,
    GoTime,
    Namespace,
    Undefined,
    UndefinedVariableError,
    deadline_scope,
    from_python,
    go_json,
    tick,
    use_clock,
)
from chute.spec.expr_when import evaluate_when

__all__ = [
    "ExpressionError",
    "UndefinedVariableError",
    "build_env",
    "evaluate",
    "evaluate_text",
    "evaluate_when",
    "format_result",
    "parse",
    "referenced_names",
    "use_clock",
]

# CPU time of the evaluating thread (time.thread_time): the promise is 50 ms; 15 ms leaves
# headroom for the work between two deadline checks, unwinding and printing, even when a
# busy machine slows everything down. CPU time, not wall time, so that preemption cannot
# fail a cheap expression (typical ones take well under 1 ms).
DEADLINE_SECONDS = 0.015


def parse(source: str) -> tuple:
    """Parse a ``{{= }}`` expression (raises ExpressionError with the offset)."""
    return expr_parser.parse(source)


def build_env(ctx: Mapping[str, Any]) -> dict[str, Any]:
    """Turn Argo's flat variable map into the nested expression environment, plus Argo's
    functions (``asInt``, ``asFloat``, ``jsonpath``, ``toJson``, ``sprig``)."""
    keys = sorted(ctx)
    # Argo drops a key that is a prefix of another ("a" when "a.b" exists)
    dropped = {k for k in keys if any(o.startswith(k + ".") for o in _neighbours(keys, k))}
    env: dict[str, Any] = {}
    for key in keys:
        if key in dropped:
            continue
        parts = key.split(".")
        node = env
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = from_python(ctx[key])
    env.update(ARGO_FUNCS)
    env["sprig"] = SPRIG
    return env


def _neighbours(keys: list[str], k: str) -> Iterable[str]:
    i = bisect.bisect_right(keys, k)
    while i < len(keys) and keys[i].startswith(k):
        yield keys[i]
        i += 1


def evaluate(source: str, env: Mapping[str, Any], *, deadline: float | None = None) -> Any:
    """Evaluate an expr-lang expression against ``env``.

    ``env`` may be nested already (``{"inputs": {"parameters": {...}}}``) or Argo's flat map
    (``{"inputs.parameters.x": "1"}``); flat keys are expanded as :func:`build_env` does.
    Returns plain Python values (None, bool, int, float, str, list, dict). A result that
    is a missing member raises UndefinedVariableError. ``deadline`` is a ``time.thread_time()``
    value (CPU time of this thread).
    """
    if deadline is None:
        deadline = time.thread_time() + DEADLINE_SECONDS
    with deadline_scope(deadline):
        try:
            tree = expr_parser.parse(source)
            prepared = _prepare(env)
            result = expr_eval.run(tree, prepared, deadline)
            if isinstance(result, Undefined):
                raise result.fail()
            return _to_plain(result)
        except RecursionError:
            # values an expression builds (reduce(..., [#acc])) can nest deeper than Python
            # recurses; the tree itself is capped at 64 levels
            raise ExpressionError("value nested too deeply") from None


def evaluate_text(source: str, env: Mapping[str, Any]) -> str:
    """Evaluate and print the result as Argo inserts it (see :func:`format_result`), both
    within one deadline."""
    deadline = time.thread_time() + DEADLINE_SECONDS
    with deadline_scope(deadline):
        value = evaluate(source, env, deadline=deadline)
        try:
            return format_result(value)
        except RecursionError:
            raise ExpressionError("value nested too deeply to print") from None


def _prepare(env: Mapping[str, Any]) -> Mapping[str, Any]:
    if getattr(env, "_chute_prepared", False):
        return env
    if any("." in k for k in env):
        return build_env(env)
    out = {k: from_python(v) for k, v in env.items()}
    for name, fn in ARGO_FUNCS.items():
        out.setdefault(name, fn)
    out.setdefault("sprig", SPRIG)
    return out


class PreparedEnv(dict):
    """An environment already built by :func:`build_env`; evaluate() uses it as it is."""

    _chute_prepared = True


def prepared_env(ctx: Mapping[str, Any]) -> PreparedEnv:
    """Build once, evaluate many times (templating does this per substitution)."""
    return PreparedEnv(build_env(ctx))


def _to_plain(v: Any) -> Any:
    if isinstance(v, (Func, Namespace)):
        raise ExpressionError("an expression cannot evaluate to a function")
    if isinstance(v, GoTime):
        return v.dt
    if isinstance(v, GoDuration):
        return _dt.timedelta(microseconds=v.ns / 1000)
    if isinstance(v, Undefined):
        return None  # a missing member inside a list or map is nil, as in expr-lang
    # scalars are copied inline rather than through a call each: results can hold 10^5 of them
    if isinstance(v, list):
        tick(1 + (len(v) >> 4))
        return [x if type(x) in _SCALARS else _to_plain(x) for x in v]
    if isinstance(v, dict):
        tick(1 + (len(v) >> 4))
        return {k: x if type(x) in _SCALARS else _to_plain(x) for k, x in v.items()}
    return v


_SCALARS = frozenset({type(None), bool, int, float, str})


def format_result(value: Any) -> str:
    """What Argo inserts for an expression result: strings as they are, anything else as
    Go's ``json.Marshal`` prints it (``20``, ``35.8``, ``true``, ``[3]``, ``{"a":1}``).
    A nil result is an error, as in Argo."""
    if value is None:
        raise ExpressionError("expression evaluated to nil")
    if isinstance(value, str):
        return value
    return go_json(from_python(value))


@functools.lru_cache(maxsize=1024)
def _referenced_names(source: str) -> frozenset[str]:
    names: set[str] = set()
    _collect(expr_parser.parse(source), names, 0)
    return frozenset(names)


def referenced_names(source: str) -> set[str]:
    """Best-effort set of dotted variable paths an expression reads
    (``inputs.parameters['a-b']`` gives ``inputs.parameters.a-b``). Function names,
    closure pointers and builtins are left out; raises ExpressionError if it does not parse."""
    return set(_referenced_names(source))


def _children(node: tuple) -> list[tuple]:
    out: list[tuple] = []
    for part in node[2:]:
        if isinstance(part, tuple) and part and isinstance(part[0], str):
            out.append(part)
        elif isinstance(part, list):
            for item in part:
                if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], tuple):
                    out.extend(item)
                elif isinstance(item, tuple):
                    out.append(item)
    return out


def _collect(node: tuple, names: set[str], depth: int) -> None:
    if depth > expr_parser.MAX_DEPTH * 4:
        return
    kind = node[0]
    if kind in ("name", "member"):
        base = node
        while base[0] == "member":
            if base[3][0] != "lit":
                _collect(base[3], names, depth + 1)
            base = base[2]
        if base[0] != "name":
            _collect(base, names, depth + 1)
            return
        path = _static_path(node)
        head = base[2]
        if path and not (head in ARGO_FUNCS or head == "sprig" or (head in BUILTINS and path == head)):
            names.add(path)
        return
    if kind == "call":
        callee = node[2]
        if callee[0] not in ("name", "member"):
            _collect(callee, names, depth + 1)
        elif callee[0] == "member":
            _collect(callee[2], names, depth + 1)  # a method's receiver, e.g. (now() - t).Seconds()
        for arg in node[3]:
            _collect(arg, names, depth + 1)
        return
    for child in _children(node):
        _collect(child, names, depth + 1)


def _static_path(node: tuple) -> str | None:
    parts: list[str] = []
    while node[0] == "member":
        key = node[3]
        if key[0] == "lit" and isinstance(key[2], str):
            parts.append(key[2])
        else:
            parts.clear()  # a dynamic index: keep only the static prefix
        node = node[2]
    if node[0] != "name":
        return None
    return ".".join([node[2], *reversed(parts)])
