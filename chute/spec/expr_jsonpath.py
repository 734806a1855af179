"""The small JSONPath dialect behind Argo's ``jsonpath(json, path)`` expression function.

Argo calls ``github.com/evilmonkeyinc/jsonpath``. Supported here: ``$``, ``.key``,
``['key']``, ``[n]`` (negative counts from the end), ``[n,m]``, ``[start:end:step]``,
``[*]`` / ``.*``, ``..key`` (recursive descent), and filters ``[?(...)]`` over ``@``
with ``== != < <= > >=``, ``&& || !``, parentheses, numbers, quoted strings,
``true false null`` and bare ``@.x`` (exists and is truthy).

A path made only of keys and single indexes returns that one value (an error if it is
missing); any other path returns the list of matches. JSON numbers are floats, as Go's
``encoding/json`` decodes them into ``any``.
"""

from __future__ import annotations

import json
import re

from chute.errors import ExpressionError
from chute.spec.expr_values import MAX_ITEMS, check_size, equal, is_number, tick

_MAX_NODES = 100_000  # visited values across one query (recursive descent can fan out)


def loads(text: str) -> object:
    """Decode JSON as Go does into ``any`` (numbers become float)."""
    if not isinstance(text, str):
        raise ExpressionError("jsonpath: first argument must be a JSON string")
    try:
        return json.loads(text, parse_int=float, parse_constant=_no_constant)
    except (ValueError, RecursionError) as e:
        raise ExpressionError(f"jsonpath: invalid JSON: {e}") from None


def _no_constant(name: str) -> object:
    raise ValueError(f"invalid JSON literal {name}")


def query(path: str, document: object) -> object:
    """Apply a JSONPath to a decoded document."""
    if not isinstance(path, str):
        raise ExpressionError("jsonpath: path must be a string")
    steps = _parse(path)
    current = [document]
    definite = True
    budget = [_MAX_NODES]
    for kind, arg in steps:
        nxt: list[object] = []
        for value in current:
            nxt.extend(_apply(kind, arg, value, definite, path, budget))
        if kind not in ("key", "index"):
            definite = False
        current = nxt
        if len(current) > MAX_ITEMS:
            raise ExpressionError("jsonpath: too many matches")
    if definite:
        return current[0]
    return check_size(current)


def _apply(kind: str, arg: object, value: object, definite: bool, path: str, budget: list[int]):
    tick()
    budget[0] -= 1
    if budget[0] < 0:
        raise ExpressionError("jsonpath: query too expensive")
    if kind == "key":
        if isinstance(value, dict) and arg in value:
            return [value[arg]]
        if definite:
            raise ExpressionError(f"jsonpath: key {arg!r} not found in {path!r}")
        return []
    if kind == "index":
        if isinstance(value, list) and -len(value) <= arg < len(value):  # type: ignore[operator]
            return [value[arg]]  # type: ignore[index]
        if definite:
            raise ExpressionError(f"jsonpath: index {arg} out of range in {path!r}")
        return []
    if kind == "indexes":
        if isinstance(value, list):
            return [value[i] for i in arg if -len(value) <= i < len(value)]  # type: ignore[union-attr]
        if isinstance(value, dict):
            return [value[k] for k in arg if k in value]  # type: ignore[union-attr]
        return []
    if kind == "slice":
        if not isinstance(value, list):
            return []
        start, end, step = arg  # type: ignore[misc]
        if step == 0:
            raise ExpressionError("jsonpath: slice step cannot be 0")
        return value[slice(start, end, step)]
    if kind == "wild":
        if isinstance(value, list):
            return list(value)
        if isinstance(value, dict):
            return [value[k] for k in sorted(value)]
        return []
    if kind == "descend":
        out: list[object] = []
        stack = [value]
        while stack:
            v = stack.pop()
            tick()
            budget[0] -= 1
            if budget[0] < 0:
                raise ExpressionError("jsonpath: query too expensive")
            if isinstance(v, dict):
                if arg == "*":
                    out.extend(v[k] for k in sorted(v))
                elif arg in v:
                    out.append(v[arg])
                stack.extend(v[k] for k in sorted(v, reverse=True))
            elif isinstance(v, list):
                if arg == "*":
                    out.extend(v)
                stack.extend(reversed(v))
        return out
    if kind == "filter":
        items = value if isinstance(value, list) else [value[k] for k in sorted(value)] if isinstance(value, dict) else []
        return [x for x in items if _truthy(_eval_filter(arg, x))]
    raise AssertionError(kind)


# -- path parsing ------------------------------------------------------------------------

_KEY = re.compile(r"[A-Za-z_$][\w$-]*|\*")
_INT = re.compile(r"-?\d+")


def _parse(path: str) -> list[tuple[str, object]]:
    if len(path) > 1024:
        raise ExpressionError("jsonpath: path too long")
    s = path.strip()
    if not s.startswith("$"):
        raise ExpressionError(f"jsonpath: path must start with '$': {path!r}")
    i, n = 1, len(s)
    steps: list[tuple[str, object]] = []
    while i < n:
        if s.startswith("..", i):
            i += 2
            m = _KEY.match(s, i)
            if not m:
                raise ExpressionError(f"jsonpath: expected a key after '..' in {path!r}")
            steps.append(("descend", m.group()))
            i = m.end()
        elif s[i] == ".":
            m = _KEY.match(s, i + 1)
            if not m:
                raise ExpressionError(f"jsonpath: expected a key after '.' in {path!r}")
            steps.append(("wild", None) if m.group() == "*" else ("key", m.group()))
            i = m.end()
        elif s[i] == "[":
            j = _matching_bracket(s, i, path)
            steps.append(_bracket(s[i + 1:j].strip(), path))
            i = j + 1
        else:
            raise ExpressionError(f"jsonpath: unexpected {s[i]!r} in {path!r}")
    return steps


def _matching_bracket(s: str, i: int, path: str) -> int:
    depth, quote = 0, ""
    for j in range(i, len(s)):
        c = s[j]
        if quote:
            if c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
        elif c == "[":
            depth += 1
        elif c == "]":
            depth -= 1
            if depth == 0:
                return j
    raise ExpressionError(f"jsonpath: unclosed '[' in {path!r}")


def _bracket(body: str, path: str) -> tuple[str, object]:
    if body == "*":
        return ("wild", None)
    if body.startswith("?"):
        f = body[1:].strip()
        if f.startswith("(") and f.endswith(")"):
            f = f[1:-1]
        return ("filter", _FilterParser(f, path).parse())
    if ":" in body and not body.startswith(("'", '"')):
        parts = [p.strip() for p in body.split(":")]
        if len(parts) > 3 or not all(p == "" or _INT.fullmatch(p) for p in parts):
            raise ExpressionError(f"jsonpath: bad slice [{body}] in {path!r}")
        vals = [int(p) if p else None for p in parts] + [None] * (3 - len(parts))
        return ("slice", (vals[0], vals[1], vals[2] if vals[2] is not None else 1))
    parts = [p.strip() for p in body.split(",")]
    keys: list[object] = []
    for p in parts:
        if _INT.fullmatch(p):
            keys.append(int(p))
        elif len(p) >= 2 and p[0] == p[-1] and p[0] in "'\"":
            keys.append(p[1:-1])
        else:
            raise ExpressionError(f"jsonpath: bad subscript [{body}] in {path!r}")
    if len(keys) == 1:
        return ("index", keys[0]) if isinstance(keys[0], int) else ("key", keys[0])
    return ("indexes", keys)


# -- filters -----------------------------------------------------------------------------

_FTOKEN = re.compile(r"""\s*(?:(@(?:\.[A-Za-z_$][\w$-]*|\[(?:'[^']*'|"[^"]*"|-?\d+)\])*)|(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)|('[^']*'|"[^"]*")|(==|!=|<=|>=|<|>|&&|\|\||!|\(|\))|(true|false|null))""")


class _FilterParser:
    def __init__(self, text: str, path: str):
        self.path = path
        self.toks: list[tuple[str, object]] = []
        i = 0
        text = text.rstrip()
        while i < len(text):
            m = _FTOKEN.match(text, i)
            if not m or m.end() == i:
                raise ExpressionError(f"jsonpath: cannot parse filter {text!r} in {path!r}")
            i = m.end()
            if m.group(1):
                self.toks.append(("at", _at_path(m.group(1))))
            elif m.group(2):
                self.toks.append(("lit", float(m.group(2))))
            elif m.group(3):
                self.toks.append(("lit", m.group(3)[1:-1]))
            elif m.group(4):
                self.toks.append(("op", m.group(4)))
            else:
                self.toks.append(("lit", {"true": True, "false": False, "null": None}[m.group(5)]))
        self.i = 0

    def peek(self) -> tuple[str, object] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def parse(self) -> tuple:
        node = self.or_()
        if self.peek() is not None:
            raise ExpressionError(f"jsonpath: unexpected {self.peek()[1]!r} in filter of {self.path!r}")  # type: ignore[index]
        return node

    def or_(self) -> tuple:
        left = self.and_()
        while self.peek() == ("op", "||"):
            self.i += 1
            left = ("or", left, self.and_())
        return left

    def and_(self) -> tuple:
        left = self.cmp()
        while self.peek() == ("op", "&&"):
            self.i += 1
            left = ("and", left, self.cmp())
        return left

    def cmp(self) -> tuple:
        left = self.atom()
        t = self.peek()
        if t and t[0] == "op" and t[1] in ("==", "!=", "<", "<=", ">", ">="):
            self.i += 1
            return ("cmp", t[1], left, self.atom())
        return left

    def atom(self) -> tuple:
        t = self.peek()
        if t is None:
            raise ExpressionError(f"jsonpath: incomplete filter in {self.path!r}")
        self.i += 1
        if t == ("op", "!"):
            return ("not", self.atom())
        if t == ("op", "("):
            node = self.or_()
            if self.peek() != ("op", ")"):
                raise ExpressionError(f"jsonpath: unclosed '(' in filter of {self.path!r}")
            self.i += 1
            return node
        if t[0] in ("at", "lit"):
            return t
        raise ExpressionError(f"jsonpath: unexpected {t[1]!r} in filter of {self.path!r}")


_MISSING = object()


def _at_path(text: str) -> list[object]:
    keys: list[object] = []
    for m in re.finditer(r"\.([A-Za-z_$][\w$-]*)|\[('[^']*'|\"[^\"]*\"|-?\d+)\]", text[1:]):
        if m.group(1):
            keys.append(m.group(1))
        else:
            g = m.group(2)
            keys.append(g[1:-1] if g[0] in "'\"" else int(g))
    return keys


def _eval_filter(node: tuple, item: object) -> object:
    tick()
    kind = node[0]
    if kind == "lit":
        return node[1]
    if kind == "at":
        v = item
        for k in node[1]:
            if isinstance(k, str) and isinstance(v, dict) and k in v or isinstance(k, int) and isinstance(v, list) and -len(v) <= k < len(v):
                v = v[k]
            else:
                return _MISSING
        return v
    if kind == "not":
        return not _truthy(_eval_filter(node[1], item))
    if kind == "and":
        return _truthy(_eval_filter(node[1], item)) and _truthy(_eval_filter(node[2], item))
    if kind == "or":
        return _truthy(_eval_filter(node[1], item)) or _truthy(_eval_filter(node[2], item))
    op, a, b = node[1], _eval_filter(node[2], item), _eval_filter(node[3], item)
    if a is _MISSING or b is _MISSING:
        return op == "!=" and not (a is _MISSING and b is _MISSING)
    if op == "==":
        return equal(a, b)
    if op == "!=":
        return not equal(a, b)
    if not ((is_number(a) and is_number(b)) or (isinstance(a, str) and isinstance(b, str))):
        return False
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]  # type: ignore[operator]


def _truthy(v: object) -> bool:
    if v is _MISSING or v is None or v is False:
        return False
    if v is True:
        return True
    if is_number(v):
        return v != 0
    if isinstance(v, (str, list, dict)):
        return len(v) > 0
    return True
