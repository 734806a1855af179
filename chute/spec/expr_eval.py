"""Evaluator for the AST from :mod:`chute.spec.expr_parser`.

A whitelist walker: each node kind has one rule below, values are plain data (see
:mod:`chute.spec.expr_values`), member access works on dicts, lists and strings only, and
calls go only to :class:`~chute.spec.expr_values.Func` objects from our own tables. There is
no path from an expression to a Python attribute, import, file, socket or environment
variable.

Cost is bounded: every node visit and every closure iteration spends one step from a
budget and checks a deadline; strings and lists are size-checked as they are built; integer
arithmetic refuses int64 overflow and ``**`` refuses non-finite results.
"""

from __future__ import annotations

import datetime as _dt
import math
import time
from collections.abc import Mapping

from chute.errors import ExpressionError
from chute.spec import expr_regex
from chute.spec.expr_funcs import BUILTINS
from chute.spec.expr_sprig import go_format_time
from chute.spec.expr_values import (
    MAX_ITEMS,
    Func,
    GoDuration,
    GoTime,
    Namespace,
    Undefined,
    UndefinedVariableError,
    check_int,
    check_size,
    equal,
    go_sprint,
    is_number,
    tick,
    type_name,
)

MAX_STEPS = 200_000
DEADLINE_SECONDS = 0.015  # default when run() is called directly; expr.evaluate passes its own


class _Ctx:
    __slots__ = ("deadline", "env", "frames", "steps")

    def __init__(self, env: Mapping[str, object], deadline: float):
        self.env = env
        self.steps = MAX_STEPS
        self.deadline = deadline
        self.frames: list[list[object]] = []  # closure frames: [element, index, acc]

    def tick(self) -> None:
        self.steps -= 1
        if self.steps < 0:
            raise ExpressionError("expression too expensive (step budget exhausted)")
        if (self.steps & 63) == 0 and time.thread_time() > self.deadline:
            raise ExpressionError("expression took too long to evaluate")


def run(tree: tuple, env: Mapping[str, object], deadline: float | None = None) -> object:
    """Evaluate an AST against an environment of plain values."""
    ctx = _Ctx(env, deadline if deadline is not None else time.thread_time() + DEADLINE_SECONDS)
    return _eval(tree, ctx)


def _path(node: tuple) -> str:
    """The dotted name of a member chain, for messages ("tasks.a-b.outputs.result")."""
    kind = node[0]
    if kind == "name":
        return node[2]
    if kind == "ptr":
        return node[2]
    if kind == "member":
        key = node[3]
        base = _path(node[2])
        if key[0] == "lit":
            return f"{base}.{key[2]}"
        return f"{base}[...]"
    if kind == "call":
        return _path(node[2]) + "()"
    return "<expression>"


def _eval(node: tuple, ctx: _Ctx) -> object:
    ctx.tick()
    kind = node[0]
    if kind == "lit":
        return node[2]
    if kind == "name":
        name = node[2]
        if name in ctx.env:
            return ctx.env[name]
        if name in BUILTINS:
            return BUILTINS[name]
        raise UndefinedVariableError(name, f"unknown name '{name}' (at offset {node[1]})")
    if kind == "ptr":
        if not ctx.frames:
            raise ExpressionError(f"{node[2]} used outside of a closure")
        frame = ctx.frames[-1]
        return frame[{"#": 0, "#index": 1, "#acc": 2}[node[2]]]
    if kind == "member":
        return _member(node, ctx)
    if kind == "slice":
        return _slice(node, ctx)
    if kind == "call":
        return _call(node, ctx)
    if kind == "builtin":
        return _builtin(node, ctx)
    if kind == "unary":
        return _unary(node[2], _eval(node[3], ctx))
    if kind == "binary":
        return _binary(node, ctx)
    if kind == "cond":
        c = _eval(node[2], ctx)
        if not isinstance(c, bool):
            raise _type_error("?:", c, "a bool condition")
        return _eval(node[3] if c else node[4], ctx)
    if kind == "array":
        return check_size([_eval(x, ctx) for x in node[2]])
    if kind == "map":
        out: dict[str, object] = {}
        for k, v in node[2]:
            key = _eval(k, ctx)
            if not isinstance(key, str):
                key = go_sprint(key)
            out[key] = _eval(v, ctx)
        return out
    if kind == "closure":
        raise ExpressionError("a closure can only be an argument of a builtin such as filter or map")
    raise ExpressionError(f"unsupported expression node {kind}")


def _type_error(op: str, v: object, want: str) -> ExpressionError:
    if isinstance(v, Undefined):
        return v.fail()
    return ExpressionError(f"invalid operation: {op} needs {want}, got {type_name(v)}")


# -- member access -----------------------------------------------------------------------

_TIME_METHODS = {
    "Unix": lambda t: int(t.dt.timestamp()),
    "Year": lambda t: t.dt.year, "Month": lambda t: t.dt.month, "Day": lambda t: t.dt.day,
    "Hour": lambda t: t.dt.hour, "Minute": lambda t: t.dt.minute, "Second": lambda t: t.dt.second,
    "Format": lambda t, layout: _format_time(t, layout),
}
_DURATION_METHODS = {
    "Seconds": lambda d: d.ns / 1e9, "Minutes": lambda d: d.ns / 6e10, "Hours": lambda d: d.ns / 3.6e12,
    "Milliseconds": lambda d: d.ns // 1_000_000, "Nanoseconds": lambda d: d.ns,
    "String": lambda d: go_sprint(d),
}


def _format_time(t: GoTime, layout: object) -> str:
    if not isinstance(layout, str):
        raise ExpressionError("Format: layout must be a string")
    return go_format_time(layout, t.dt)


def fetch(base: object, key: object, path: str, optional: bool = False) -> object:
    """``base[key]`` / ``base.key`` on plain values, as expr-lang's runtime.Fetch."""
    if isinstance(base, Undefined):
        return Undefined(path)
    if base is None:
        if optional:
            return None
        raise ExpressionError(f"cannot fetch {go_sprint(key)} from nil ({path})")
    if isinstance(base, dict):
        if not isinstance(key, str):
            raise ExpressionError(f"cannot use {type_name(key)} as a map key ({path})")
        if key in base:
            return base[key]
        return Undefined(path)
    if isinstance(base, (list, str)):
        if type(key) is float and key.is_integer():
            key = int(key)
        if type(key) is not int:
            raise ExpressionError(f"cannot fetch {go_sprint(key)} from {type_name(base)} ({path})")
        n = len(base)
        i = key + n if key < 0 else key
        if not 0 <= i < n:
            raise ExpressionError(f"index out of range: {key} (array of length {n}) ({path})")
        return base[i]
    if isinstance(base, Namespace):
        fn = base.funcs.get(key) if isinstance(key, str) else None
        if fn is None:
            raise ExpressionError(f"unknown function {base.name}.{go_sprint(key)}")
        return fn
    methods = _TIME_METHODS if isinstance(base, GoTime) else _DURATION_METHODS if isinstance(base, GoDuration) else None
    if methods is not None and isinstance(key, str) and key in methods:
        bound = methods[key]
        return Func(f"{type_name(base)}.{key}", lambda *a, _b=base, _f=bound: _f(_b, *a))
    raise ExpressionError(f"cannot fetch {go_sprint(key)} from {type_name(base)} ({path})")


def _member(node: tuple, ctx: _Ctx) -> object:
    base = _eval(node[2], ctx)
    key = _eval(node[3], ctx)
    optional = node[4]
    if optional and (base is None or isinstance(base, Undefined)):
        return None
    return fetch(base, key, _path(node), optional)


def _slice(node: tuple, ctx: _Ctx) -> object:
    base = _eval(node[2], ctx)
    if isinstance(base, Undefined):
        raise base.fail()
    if not isinstance(base, (list, str)):
        raise ExpressionError(f"cannot slice {type_name(base)}")
    n = len(base)
    lo = 0 if node[3] is None else _eval(node[3], ctx)
    hi = n if node[4] is None else _eval(node[4], ctx)
    if type(lo) is not int or type(hi) is not int:
        raise ExpressionError("slice bounds must be integers")
    lo, hi = (lo + n if lo < 0 else lo), (hi + n if hi < 0 else hi)
    lo, hi = max(0, min(lo, n)), max(0, min(hi, n))
    return base[lo:hi] if lo <= hi else base[0:0]


# -- calls -------------------------------------------------------------------------------


def _call(node: tuple, ctx: _Ctx) -> object:
    callee = _eval(node[2], ctx)
    if isinstance(callee, Undefined):
        raise ExpressionError(f"unknown function {callee.path}")
    if not isinstance(callee, Func):
        raise ExpressionError(f"{_path(node[2])} is not a function")
    args = [_eval(a, ctx) for a in node[3]]
    for a in args:
        if isinstance(a, Undefined) and callee.name not in ("sprig.default", "sprig.empty", "sprig.coalesce"):
            raise a.fail()
    args = [None if isinstance(a, Undefined) else a for a in args]
    try:
        result = callee.fn(*args)
    except ExpressionError:
        raise
    except TypeError:
        raise ExpressionError(f"wrong number or type of arguments for {callee.name}") from None
    except (ValueError, ArithmeticError, IndexError, KeyError, AttributeError, RecursionError) as e:
        raise ExpressionError(f"{callee.name}: {str(e)[:200]}") from None
    except MemoryError:  # a size pre-check missed a case: still a typed, contained error
        raise ExpressionError(f"{callee.name}: result too large") from None
    # our functions return expression values already; a shallow check catches a slip without
    # walking (and paying for) a large result element by element
    if result is not None and type(result) not in _RESULT_TYPES:
        raise ExpressionError(f"{callee.name} returned an unsupported value")
    return check_size(result)


_RESULT_TYPES = frozenset({bool, int, float, str, list, dict, Func, Namespace, GoTime, GoDuration, Undefined})


def _closure_body(arg: tuple) -> tuple:
    if arg[0] != "closure":
        raise ExpressionError("expected a closure such as {# > 1}")
    return arg[2]


def _iterate(ctx: _Ctx, items: list, body: tuple):
    frame: list[object] = [None, 0, None]
    ctx.frames.append(frame)
    try:
        for i, item in enumerate(items):
            frame[0], frame[1] = item, i
            yield item, _eval(body, ctx)
    finally:
        ctx.frames.pop()


def _need_bool(v: object, name: str) -> bool:
    if not isinstance(v, bool):
        raise _type_error(name, v, "a bool predicate")
    return v


def _builtin(node: tuple, ctx: _Ctx) -> object:
    name, args = node[2], node[3]
    items = _eval(args[0], ctx)
    if isinstance(items, Undefined):
        raise items.fail()
    if isinstance(items, dict) and name in ("map", "filter", "all", "any", "none", "one", "count"):
        items = [items[k] for k in sorted(items)]
    if not isinstance(items, list):
        raise ExpressionError(f"{name}: expected an array, got {type_name(items)}")
    if len(args) < 2:
        if name == "count":
            return sum(1 for x in items if x is True)
        if name == "sum":
            return _sum(items)
        raise ExpressionError(f"{name}: needs a closure argument")
    body = _closure_body(args[1])
    if name == "map":
        return check_size([v for _, v in _iterate(ctx, items, body)])
    if name == "filter":
        return [x for x, v in _iterate(ctx, items, body) if _need_bool(v, name)]
    if name in ("all", "any", "none", "one", "count"):
        hits = 0
        for _, v in _iterate(ctx, items, body):
            hit = _need_bool(v, name)
            hits += hit
            if name == "all" and not hit:
                return False
            if name in ("any", "none") and hit:
                return name == "any"
        return {"all": True, "any": False, "none": True, "one": hits == 1, "count": hits}[name]
    if name == "sum":
        return _sum([v for _, v in _iterate(ctx, items, body)])
    if name in ("find", "findIndex"):
        for i, (x, v) in enumerate(_iterate(ctx, items, body)):
            if _need_bool(v, name):
                return x if name == "find" else i
        return None if name == "find" else -1
    if name in ("findLast", "findLastIndex"):
        found: tuple[int, object] | None = None
        for i, (x, v) in enumerate(_iterate(ctx, items, body)):
            if _need_bool(v, name):
                found = (i, x)
        if found is None:
            return None if name == "findLast" else -1
        return found[1] if name == "findLast" else found[0]
    if name == "groupBy":
        groups: dict[str, list] = {}
        for x, v in _iterate(ctx, items, body):
            groups.setdefault(v if isinstance(v, str) else go_sprint(v), []).append(x)
        return groups
    if name == "sortBy":
        order = _eval(args[2], ctx) if len(args) > 2 else "asc"
        keyed = list(_iterate(ctx, items, body))
        keys = [k for _, k in keyed]
        if not (all(is_number(k) for k in keys) or all(isinstance(k, str) for k in keys)):
            raise ExpressionError("sortBy: keys must all be numbers or all strings")
        keyed.sort(key=lambda p: p[1], reverse=order == "desc")  # type: ignore[arg-type,return-value]
        return [x for x, _ in keyed]
    if name == "reduce":
        if not items and len(args) < 3:
            raise ExpressionError("reduce: empty array and no initial value")
        frame: list[object] = [None, 0, _eval(args[2], ctx) if len(args) > 2 else items[0]]
        start = 0 if len(args) > 2 else 1
        ctx.frames.append(frame)
        try:
            for i in range(start, len(items)):
                frame[0], frame[1] = items[i], i
                frame[2] = _eval(body, ctx)
        finally:
            ctx.frames.pop()
        return frame[2]
    raise ExpressionError(f"unknown builtin {name}")


def _sum(items: list) -> object:
    total: object = 0
    for x in items:
        tick()
        total = _arith("+", total, x)
    return total


# -- operators ---------------------------------------------------------------------------


def _unary(op: str, v: object) -> object:
    if op in ("not", "!"):
        if not isinstance(v, bool):
            raise _type_error(op, v, "a bool")
        return not v
    if not is_number(v):
        raise _type_error(op, v, "a number")
    return check_int(-v) if (op == "-" and type(v) is int) else (-v if op == "-" else v)  # type: ignore[operator]


def _binary(node: tuple, ctx: _Ctx) -> object:
    op = node[2]
    if op in ("and", "&&", "or", "||"):
        left = _eval(node[3], ctx)
        if not isinstance(left, bool):
            raise _type_error(op, left, "bool operands")
        if (op in ("and", "&&")) != left:  # short circuit: false && x, true || x
            return left
        right = _eval(node[4], ctx)
        if not isinstance(right, bool):
            raise _type_error(op, right, "bool operands")
        return right
    if op == "??":
        left = _eval(node[3], ctx)
        if left is None or isinstance(left, Undefined):
            return _eval(node[4], ctx)
        return left
    a = _eval(node[3], ctx)
    b = _eval(node[4], ctx)
    if op == "==":
        return equal(a, b)
    if op == "!=":
        return not equal(a, b)
    for v in (a, b):
        if isinstance(v, Undefined):
            raise v.fail()
    if op in ("<", ">", "<=", ">="):
        return _compare(op, a, b)
    if op == "in":
        if isinstance(b, list):
            return any(equal(a, x) for x in b)
        if isinstance(b, dict):
            return isinstance(a, str) and a in b
        raise ExpressionError(f"invalid operation: in needs an array or map on the right, got {type_name(b)}")
    if op in ("contains", "startsWith", "endsWith", "matches"):
        if not isinstance(a, str) or not isinstance(b, str):
            raise ExpressionError(f"invalid operation: {op} needs strings, got {type_name(a)} and {type_name(b)}")
        if op == "contains":
            return b in a
        if op == "startsWith":
            return a.startswith(b)
        if op == "endsWith":
            return a.endswith(b)
        return expr_regex.search(b, a)
    if op == "..":
        if type(a) is not int or type(b) is not int:
            raise ExpressionError("invalid operation: .. needs integers")
        if b - a + 1 > MAX_ITEMS:
            raise ExpressionError(f"range longer than {MAX_ITEMS} elements")
        return check_size(list(range(a, b + 1)))
    return _arith(op, a, b)


def _compare(op: str, a: object, b: object) -> bool:
    ok = ((is_number(a) and is_number(b)) or (isinstance(a, str) and isinstance(b, str))
          or (isinstance(a, GoTime) and isinstance(b, GoTime))
          or (isinstance(a, GoDuration) and isinstance(b, GoDuration)))
    if not ok:
        raise ExpressionError(f"invalid operation: {op} (mismatched types {type_name(a)} and {type_name(b)})")
    if isinstance(a, GoTime):
        a, b = a.dt, b.dt  # type: ignore[union-attr]
    elif isinstance(a, GoDuration):
        a, b = a.ns, b.ns  # type: ignore[union-attr]
    if op == "<":
        return a < b  # type: ignore[operator]
    if op == ">":
        return a > b  # type: ignore[operator]
    if op == "<=":
        return a <= b  # type: ignore[operator]
    return a >= b  # type: ignore[operator]


def _arith(op: str, a: object, b: object) -> object:
    if is_number(a) and is_number(b):
        both_int = type(a) is int and type(b) is int
        if op == "+":
            return check_int(a + b) if both_int else float(a) + float(b)  # type: ignore[operator]
        if op == "-":
            return check_int(a - b) if both_int else float(a) - float(b)  # type: ignore[operator]
        if op == "*":
            return check_int(a * b) if both_int else _finite(float(a) * float(b))  # type: ignore[operator]
        if op == "/":
            if b == 0:
                raise ExpressionError("division by zero")
            return _finite(float(a) / float(b))  # type: ignore[arg-type]
        if op == "%":
            if not both_int:
                raise ExpressionError(f"invalid operation: % needs integers, got {type_name(a)} and {type_name(b)}")
            if b == 0:
                raise ExpressionError("integer divide by zero")
            r = abs(a) % abs(b)  # type: ignore[arg-type]
            return r if a >= 0 else -r  # type: ignore[operator]
        if op in ("**", "^"):
            try:
                return _finite(math.pow(float(a), float(b)))  # type: ignore[arg-type]
            except (OverflowError, ValueError):
                raise ExpressionError("exponent result out of range") from None
    if op == "+":
        if isinstance(a, str) and isinstance(b, str):
            if len(a) + len(b) > (1 << 20):
                raise ExpressionError("string longer than 1048576 characters")
            return a + b
        if isinstance(a, list) and isinstance(b, list):
            return check_size(a + b) if len(a) + len(b) <= MAX_ITEMS else check_size(a + b[:MAX_ITEMS])
        if isinstance(a, GoTime) and isinstance(b, GoDuration):
            return GoTime(a.dt + _td(b.ns))
        if isinstance(a, GoDuration) and isinstance(b, GoDuration):
            return GoDuration(check_int(a.ns + b.ns))
    if op == "-":
        if isinstance(a, GoTime) and isinstance(b, GoTime):
            delta = a.dt - b.dt
            return GoDuration(check_int((delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000))
        if isinstance(a, GoTime) and isinstance(b, GoDuration):
            return GoTime(a.dt - _td(b.ns))
        if isinstance(a, GoDuration) and isinstance(b, GoDuration):
            return GoDuration(check_int(a.ns - b.ns))
    raise ExpressionError(f"invalid operation: {type_name(a)} {op} {type_name(b)}")


def _td(ns: int):
    return _dt.timedelta(microseconds=ns // 1000)


def _finite(f: float) -> float:
    if not math.isfinite(f):
        raise ExpressionError("arithmetic result out of range")
    return f
