"""Values that expressions compute with, and how Go would print them.

Expressions see only plain data: ``None`` (nil), ``bool``, ``int`` (int64 range),
``float``, ``str``, ``list``, ``dict`` with string keys, plus the few wrapper types below.
No Python object is ever reachable from an expression, so there is no attribute to walk.

Printing mirrors Go, because that is what Argo inserts into the spec: ``go_json`` is
``encoding/json.Marshal`` (sorted keys, no spaces, ``<>&`` escaped, floats without a
trailing ``.0``) and ``go_sprint`` is ``fmt.Sprintf("%v", x)``.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as _dt
import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from chute.errors import ExpressionError

MAX_STRING = 1 << 20  # characters in any intermediate string
MAX_ITEMS = 1 << 17  # elements in any intermediate list or map (about 1 MiB of pointers)
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


MAX_ALLOCATED = 64 << 20  # characters/elements one evaluation may build in total


class _Budget(threading.local):
    deadline: float | None = None
    count: int = 0
    allocated: int = 0


_BUDGET = _Budget()


@contextlib.contextmanager
def deadline_scope(deadline: float):
    """Make :func:`tick` enforce ``deadline`` on this thread. The deadline is a
    ``time.thread_time()`` value (CPU time of this thread), so that preemption on a busy
    machine cannot fail a cheap expression."""
    previous = _BUDGET.deadline
    if previous is None:
        _BUDGET.allocated = 0  # the outermost scope starts a fresh allocation budget
    _BUDGET.deadline = deadline if previous is None else min(previous, deadline)
    try:
        yield
    finally:
        _BUDGET.deadline = previous


def tick(weight: int = 1) -> None:
    """Count units of work; every 256 units, raise if the evaluation's deadline passed.
    Helpers that loop over data (JSON printing, conversions, jsonpath, regex matches) call
    this so that no single function call can outlive the 50 ms promise; a heavy step (a
    large string built) passes a large weight so the deadline is checked at once."""
    _BUDGET.count += weight
    if _BUDGET.count >= 256:
        _BUDGET.count = 0
        if _BUDGET.deadline is not None and time.thread_time() > _BUDGET.deadline:
            raise ExpressionError("expression took too long to evaluate")


_CLOCK: contextvars.ContextVar[Callable[[], _dt.datetime] | None] = contextvars.ContextVar(
    "chute_expr_clock", default=None)


def current_time() -> _dt.datetime:
    """The time ``now()`` sees: the injected clock (see :func:`use_clock`) or, without one,
    the system clock in UTC."""
    clock = _CLOCK.get()
    now = clock() if clock is not None else _dt.datetime.now(_dt.UTC)
    return now if now.tzinfo else now.replace(tzinfo=_dt.UTC)


@contextlib.contextmanager
def use_clock(clock: Callable[[], _dt.datetime]):
    """Inject the clock expressions read (``now()``, ``sprig.now``, ``sprig.date``), e.g.
    the engine's own clock, so that evaluation is reproducible."""
    token = _CLOCK.set(clock)
    try:
        yield
    finally:
        _CLOCK.reset(token)


class UndefinedVariableError(ExpressionError):
    """An expression used a variable that is not defined; ``name`` is its dotted path."""

    def __init__(self, name: str, message: str | None = None):
        self.name = name
        super().__init__(message or f"undefined variable '{name}'")


@dataclass(frozen=True, slots=True, repr=False)
class Undefined:
    """A missing map member: behaves as nil for ``??`` and ``== nil``, an error otherwise."""

    path: str

    def __repr__(self) -> str:
        return f"Undefined({self.path!r})"

    def fail(self) -> UndefinedVariableError:
        return UndefinedVariableError(self.path)


@dataclass(frozen=True, slots=True, repr=False)
class Func:
    """A function an expression may call: a name (for messages) and our own callable."""

    name: str
    fn: Callable[..., object]

    def __repr__(self) -> str:
        return f"<func {self.name}>"


@dataclass(frozen=True, slots=True, repr=False)
class Namespace:
    """A read-only table of functions such as ``sprig``; members are looked up by name."""

    name: str
    funcs: dict[str, Func]

    def __repr__(self) -> str:
        return f"<namespace {self.name}>"


@dataclass(frozen=True, slots=True, repr=False)
class GoTime:
    """A point in time (Go ``time.Time``); ``now() - t`` gives a :class:`GoDuration`."""

    dt: _dt.datetime

    def __repr__(self) -> str:
        return f"GoTime({self.dt.isoformat()})"


@dataclass(frozen=True, slots=True, repr=False)
class GoDuration:
    """A duration in nanoseconds (Go ``time.Duration``)."""

    ns: int

    def __repr__(self) -> str:
        return f"GoDuration({self.ns})"


def is_number(v: object) -> bool:
    """True for int and float, but not bool (Python counts bool as int; Go does not)."""
    return (type(v) is int) or (type(v) is float)


def check_int(v: int) -> int:
    """Refuse integers outside int64, where Go would silently wrap."""
    if v < INT64_MIN or v > INT64_MAX:
        raise ExpressionError("integer overflow (outside int64)")
    return v


def check_size(v: object) -> object:
    """Refuse strings over MAX_STRING characters and lists/maps over MAX_ITEMS elements, and
    charge the size to the evaluation's allocation and time budgets."""
    if isinstance(v, (str, list, dict)):
        n = len(v)
        if isinstance(v, str):
            if n > MAX_STRING:
                raise ExpressionError(f"string longer than {MAX_STRING} characters")
        elif n > MAX_ITEMS:
            raise ExpressionError(f"list or map longer than {MAX_ITEMS} elements")
        if n > 1024:
            _charge(n)
    return v


def joined(sep: str, parts: list[str], fn: str) -> str:
    """``sep.join(parts)``, refused before it is built if it would pass MAX_STRING."""
    total = len(sep) * max(len(parts) - 1, 0)
    for p in parts:
        total += len(p)
        if total > MAX_STRING:
            break
    if total > MAX_STRING:
        raise ExpressionError(f"{fn}: result longer than {MAX_STRING} characters")
    return check_size(sep.join(parts))  # type: ignore[return-value]


def _charge(n: int) -> None:
    if _BUDGET.deadline is None:
        return  # outside an evaluation (building the environment)
    _BUDGET.allocated += n
    if _BUDGET.allocated > MAX_ALLOCATED:
        raise ExpressionError(f"expression builds more than {MAX_ALLOCATED} characters or elements in all")
    tick(n >> 8)


def type_name(v: object) -> str:
    """The expr-lang name of a value's type, for messages and the ``type`` builtin."""
    if v is None or isinstance(v, Undefined):
        return "nil"
    return {bool: "bool", int: "int", float: "float", str: "string", list: "array",
            dict: "map", Func: "func", Namespace: "map", GoTime: "time.Time",
            GoDuration: "time.Duration"}.get(type(v), "unknown")


def from_python(v: object, depth: int = 0) -> object:
    """Bring a value from the caller's environment into expression values (copying nothing
    it does not have to); datetimes become GoTime, tuples become lists, other objects are
    refused so that no Python object can leak into an expression."""
    tick()
    if v is None or type(v) in (bool, str, float):
        return v
    if type(v) is int:
        return check_int(v)
    if isinstance(v, (Func, Namespace, GoTime, GoDuration, Undefined)):
        return v
    if depth > 64:
        raise ExpressionError("environment nested too deeply")
    if isinstance(v, dict):
        return {str(k): from_python(x, depth + 1) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [from_python(x, depth + 1) for x in v]
    if isinstance(v, _dt.datetime):
        return GoTime(v if v.tzinfo else v.replace(tzinfo=_dt.UTC))
    if isinstance(v, _dt.timedelta):
        return GoDuration(int(v / _dt.timedelta(microseconds=1)) * 1000)
    if isinstance(v, str):  # str subclasses
        return str(v)
    raise ExpressionError(f"unsupported value of type {type(v).__name__} in expression environment")


def equal(a: object, b: object) -> bool:
    """expr-lang equality: numbers compare by value across int/float, nil equals nil,
    other values only equal values of the same kind."""
    tick()
    if isinstance(a, Undefined):
        a = None
    if isinstance(b, Undefined):
        b = None
    if is_number(a) and is_number(b):
        return a == b
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b))  # type: ignore[arg-type]
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)  # type: ignore[union-attr,index]
    if isinstance(a, (Func, Namespace)):
        return a is b
    return a == b


# -- printing like Go -------------------------------------------------------------------


def go_float(f: float) -> str:
    """Print a float64 as encoding/json does: shortest digits, exponent only outside
    [1e-6, 1e21), and no trailing ".0"."""
    if not math.isfinite(f):
        raise ExpressionError("cannot print NaN or infinity")
    a = abs(f)
    r = repr(f)
    if a == 0 or 1e-6 <= a < 1e21:
        if "e" in r:
            r = format(Decimal(r), "f")
        return r.removesuffix(".0")
    mant, _, exp = r.partition("e")
    mant = mant.removesuffix(".0")
    sign = "-" if exp.startswith("-") else "+"
    return f"{mant}e{sign}{exp.lstrip('+-').lstrip('0') or '0'}"


def go_sprint_float(f: float) -> str:
    """fmt's %v for float64: like 'g' with the shortest representation, exponent at 1e21."""
    if math.isnan(f):
        return "NaN"
    if f in (math.inf, -math.inf):
        return "+Inf" if f > 0 else "-Inf"
    a = abs(f)
    if a != 0 and (a < 1e-4 or a >= 1e21):
        r = repr(f)
        if "e" not in r:
            r = f"{f:e}"
        mant, _, exp = r.partition("e")
        mant = mant.removesuffix(".0")
        sign = exp[0] if exp[0] in "+-" else "+"
        digits = exp.lstrip("+-").lstrip("0").rjust(2, "0")
        return f"{mant}e{sign}{digits}"
    return go_float(f)


def _json_escape(s: str) -> str:
    out = json.dumps(s, ensure_ascii=False)
    return (out.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def go_json(v: object, indent: str | None = None, _level: int = 0) -> str:
    """encoding/json.Marshal (or MarshalIndent when indent is given) of a value."""
    tick()
    if _level > 200:
        raise ExpressionError("value nested too deeply to print")
    if v is None or isinstance(v, Undefined):
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if type(v) is int:
        return str(v)
    if type(v) is float:
        return go_float(v)
    if isinstance(v, str):
        return _json_escape(v)
    if isinstance(v, GoTime):
        return _json_escape(format_rfc3339(v.dt))
    if isinstance(v, GoDuration):
        return str(v.ns)
    if isinstance(v, (list, dict)):
        items: list[str]
        if isinstance(v, list):
            items = [go_json(x, indent, _level + 1) for x in v]
            open_, close = "[", "]"
        else:
            sep = ": " if indent is not None else ":"
            items = [_json_escape(k) + sep + go_json(v[k], indent, _level + 1) for k in sorted(v)]
            open_, close = "{", "}"
        if not items:
            return open_ + close
        if indent is None:
            return open_ + ",".join(items) + close
        pad = "\n" + indent * (_level + 1)
        return open_ + pad + ("," + pad).join(items) + "\n" + indent * _level + close
    raise ExpressionError(f"cannot convert {type_name(v)} to JSON")


def go_sprint(v: object) -> str:
    """fmt.Sprintf("%v", v) for expression values."""
    tick()
    if v is None or isinstance(v, Undefined):
        return "<nil>"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if type(v) is float:
        return go_sprint_float(v)
    if type(v) is int or isinstance(v, str):
        return str(v)
    if isinstance(v, list):
        return "[" + " ".join(go_sprint(x) for x in v) + "]"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{go_sprint(v[k])}" for k in sorted(v)) + "]"
    if isinstance(v, GoTime):
        return v.dt.strftime("%Y-%m-%d %H:%M:%S.%f %z")
    if isinstance(v, GoDuration):
        return format_duration(v.ns)
    return f"<{type_name(v)}>"


def format_rfc3339(dt: _dt.datetime) -> str:
    """time.RFC3339 formatting ("Z" for UTC)."""
    s = dt.isoformat(timespec="seconds")
    return s.replace("+00:00", "Z")


def format_duration(ns: int) -> str:
    """time.Duration.String(): "1h2m3.5s", "150ms", "0s"."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{_trim(ns / 1_000)}µs"
    if ns < 1_000_000_000:
        return f"{sign}{_trim(ns / 1_000_000)}ms"
    h, rem = divmod(ns, 3_600_000_000_000)
    m, rem = divmod(rem, 60_000_000_000)
    s = _trim(rem / 1_000_000_000)
    out = ""
    if h:
        out += f"{h}h"
    if h or m:
        out += f"{m}m"
    return f"{sign}{out}{s}s"


def _trim(x: float) -> str:
    r = repr(round(x, 9))
    return r.removesuffix(".0")
