"""Functions callable from ``{{= ... }}`` expressions: expr-lang builtins, Argo's own
(``asInt``, ``asFloat``, ``jsonpath``, ``toJson``) and the ``sprig`` table.

Argo builds the table in ``util/expr/env/env.go``: sprig's GenericFuncMap minus ``env`` and
``expandenv``. We go further and leave out everything that touches the host (environment,
DNS via ``getHostByName``, files, randomness, crypto key generation). Every function here
works on plain values only and checks sizes, so a call can neither escape nor blow up.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import json
import math
import re

from chute.errors import ExpressionError
from chute.spec import expr_jsonpath
from chute.spec.expr_values import (
    MAX_ITEMS,
    MAX_STRING,
    Func,
    GoDuration,
    GoTime,
    Undefined,
    check_int,
    check_size,
    current_time,
    equal,
    from_python,
    go_json,
    go_sprint,
    is_number,
    joined,
    tick,
    type_name,
)

# -- conversions as Go and expr-lang do them ---------------------------------------------

_ATOI = re.compile(r"[+-]?\d+")


def _fail(msg: str) -> ExpressionError:
    return ExpressionError(msg)


def _need_str(v: object, fn: str) -> str:
    if isinstance(v, Undefined):
        raise v.fail()
    if not isinstance(v, str):
        raise _fail(f"{fn}: expected a string, got {type_name(v)}")
    return v


def _need_list(v: object, fn: str) -> list:
    if isinstance(v, Undefined):
        raise v.fail()
    if not isinstance(v, list):
        raise _fail(f"{fn}: expected an array, got {type_name(v)}")
    return v


def _need_int(v: object, fn: str) -> int:
    if type(v) is int:
        return v
    if type(v) is float and v.is_integer():
        return int(v)
    raise _fail(f"{fn}: expected an integer, got {type_name(v)}")


def to_int(x: object) -> int:
    """expr-lang ``int()`` (Argo's ``asInt``): floats truncate, strings must be decimal."""
    if isinstance(x, Undefined):
        raise x.fail()
    if type(x) is int:
        return x
    if type(x) is float:
        if not math.isfinite(x):
            raise _fail(f"invalid operation: int({go_sprint(x)})")
        return check_int(int(x))
    if isinstance(x, str):
        if not _ATOI.fullmatch(x):
            raise _fail(f"invalid operation: int({x[:50]})")
        return check_int(int(x))
    raise _fail(f"invalid operation: int({type_name(x)})")



def to_float(x: object) -> float:
    """expr-lang ``float()`` (Argo's ``asFloat``): strings parse as strconv.ParseFloat."""
    if isinstance(x, Undefined):
        raise x.fail()
    if is_number(x):
        return float(x)  # type: ignore[arg-type]
    if isinstance(x, str):
        # strconv.ParseFloat: no surrounding space and no underscores (Python allows both)
        if not x or x != x.strip() or "_" in x:
            raise _fail(f"invalid operation: float({x[:50]})")
        try:
            return float(x)
        except ValueError:
            raise _fail(f"invalid operation: float({x[:50]})") from None
    raise _fail(f"invalid operation: float({type_name(x)})")


def _sprig_int(v: object) -> int:
    """sprig's toInt64 (spf13/cast): lenient, anything unparsable is 0."""
    if isinstance(v, Undefined) or v is None:
        return 0
    if v is True:
        return 1
    if v is False:
        return 0
    if type(v) is int:
        return v
    if type(v) is float:
        return check_int(int(v)) if math.isfinite(v) else 0
    if isinstance(v, str):
        s = v.strip()
        if re.fullmatch(r"[+-]?\d+\.0*", s):  # cast trims a zero decimal part
            s = s.split(".")[0]
        try:
            return check_int(int(s, 0))
        except ValueError:
            return 0
    return 0


def _sprig_float(v: object) -> float:
    if isinstance(v, Undefined) or v is None:
        return 0.0
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    if is_number(v):
        return float(v)  # type: ignore[arg-type]
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return 0.0
    return 0.0


def empty(v: object) -> bool:
    """sprig ``empty``: nil, false, 0, "" and empty collections are empty."""
    if v is None or isinstance(v, Undefined) or v is False:
        return True
    if is_number(v):
        return v == 0
    if isinstance(v, (str, list, dict)):
        return len(v) == 0
    return False


# -- expr-lang builtins ------------------------------------------------------------------


def _len(x: object) -> int:
    if isinstance(x, (str, list, dict)):
        return len(x)
    if isinstance(x, Undefined):
        raise x.fail()
    raise _fail(f"invalid argument for len (type {type_name(x)})")


def _abs(x: object) -> object:
    if is_number(x):
        return abs(x)  # type: ignore[arg-type]
    raise _fail(f"invalid argument for abs (type {type_name(x)})")


def _rounding(fn, name):
    def run(x: object) -> float:
        if is_number(x):
            return float(fn(x))
        raise _fail(f"invalid argument for {name} (type {type_name(x)})")
    return run


def _go_round(x: float) -> float:
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


def _minmax(name: str, pick, *args: object) -> object:
    best: object = None
    flat: list[object] = []
    for a in args:
        if isinstance(a, list):
            flat.extend(a)
        else:
            flat.append(a)
    for v in flat:
        tick()
        if not is_number(v):
            if len(args) == 1 and not isinstance(args[0], list):
                return args[0]
            raise _fail(f"invalid argument for {name} (type {type_name(v)})")
        if best is None or pick(v, best):
            best = v
    return best


def _split(s: object, sep: object, n: object = -1) -> list[str]:
    s, sep = _need_str(s, "split"), _need_str(sep, "split")
    n = _need_int(n, "split")
    if n == 0:
        return []
    if sep == "":
        parts = list(s)
    else:
        parts = s.split(sep, n - 1) if n > 0 else s.split(sep)
    return check_size(parts)  # type: ignore[return-value]


def _repeat(s: object, n: object) -> str:
    s, n = _need_str(s, "repeat"), _need_int(n, "repeat")
    if n < 0:
        raise _fail("repeat: negative count")
    if len(s) * n > MAX_STRING:
        raise _fail(f"repeat: result longer than {MAX_STRING} characters")
    return s * n


def _join(xs: object, sep: object = "") -> str:
    items = _need_list(xs, "join")
    return joined(_need_str(sep, "join"), [_need_str(x, "join") for x in items], "join")


def _first(xs: object) -> object:
    return xs[0] if isinstance(xs, list) and xs else None


def _last(xs: object) -> object:
    return xs[-1] if isinstance(xs, list) and xs else None


def _get(x: object, key: object) -> object:
    if isinstance(x, dict) and isinstance(key, str):
        return x.get(key)
    if isinstance(x, list) and type(key) is int and -len(x) <= key < len(x):
        return x[key]
    return None


def _keys(m: object) -> list:
    if not isinstance(m, dict):
        raise _fail(f"keys: expected a map, got {type_name(m)}")
    return sorted(m)


def _values(m: object) -> list:
    if not isinstance(m, dict):
        raise _fail(f"values: expected a map, got {type_name(m)}")
    return [m[k] for k in sorted(m)]


def _from_json(s: object) -> object:
    text = _need_str(s, "fromJSON")
    try:
        return from_python(json.loads(text, parse_int=float))
    except (ValueError, RecursionError) as e:
        raise _fail(f"fromJSON: invalid JSON: {e}") from None


def _b64dec(s: object, fn: str = "fromBase64") -> str:
    try:
        return base64.b64decode(_need_str(s, fn), validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        raise _fail(f"{fn}: illegal base64 data") from None


def _now() -> GoTime:
    return GoTime(current_time())


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


def parse_duration(s: object) -> GoDuration:
    """time.ParseDuration: "1h30m", "-1.5s", "300ms"."""
    text = _need_str(s, "duration")
    body = text.lstrip("+-")
    sign = -1 if text.startswith("-") else 1
    if body == "0":
        return GoDuration(0)
    pos, total = 0, 0.0
    while pos < len(body):
        m = _DURATION_PART.match(body, pos)
        if not m:
            raise _fail(f"invalid duration {text!r}")
        total += float(m.group(1)) * _UNIT_NS[m.group(2)]
        pos = m.end()
    if not body:
        raise _fail(f"invalid duration {text!r}")
    return GoDuration(sign * check_int(int(total)))


def _date(s: object, layout: object = None) -> GoTime:
    text = _need_str(s, "date")
    try:
        dt = _dt.datetime.fromisoformat(text)
    except ValueError:
        raise _fail(f"date: cannot parse {text!r}") from None
    return GoTime(dt if dt.tzinfo else dt.replace(tzinfo=_dt.UTC))


def _type(x: object) -> str:
    return type_name(x)


def _string(x: object) -> str:
    if isinstance(x, Undefined):
        raise x.fail()
    return check_size(go_sprint(x))  # type: ignore[return-value]


def _trim(s: object, chars: object = None) -> str:
    return _need_str(s, "trim").strip(None if chars is None else _need_str(chars, "trim"))


def _index_of(s: object, sub: object) -> int:
    return _need_str(s, "indexOf").find(_need_str(sub, "indexOf"))


def _last_index_of(s: object, sub: object) -> int:
    return _need_str(s, "lastIndexOf").rfind(_need_str(sub, "lastIndexOf"))


def _replace(s: object, old: object, new: object) -> str:
    s, old, new = _need_str(s, "replace"), _need_str(old, "replace"), _need_str(new, "replace")
    if old and s.count(old) * max(len(new) - len(old), 0) + len(s) > MAX_STRING:
        raise _fail("replace: result too long")
    return s.replace(old, new)


def _uniq(xs: object) -> list:
    out: list = []
    seen: set[tuple[type, object]] = set()
    for x in _need_list(xs, "uniq"):
        tick()
        if isinstance(x, (list, dict)):  # unhashable: compare with what we kept (rare)
            if not any(equal(x, y) for y in out):
                out.append(x)
            continue
        key = (type(x), x)
        if key not in seen:
            seen.add(key)
            out.append(x)
    return out


def _flatten(xs: object) -> list:
    out: list = []

    def rec(v: list, depth: int) -> None:
        if depth > 64:
            raise _fail("flatten: nested too deeply")
        for x in v:
            if isinstance(x, list):
                rec(x, depth + 1)
            else:
                out.append(x)
                if len(out) > MAX_ITEMS:
                    raise _fail("flatten: result too long")

    rec(_need_list(xs, "flatten"), 0)
    return out


def _concat(*xs: object) -> list:
    out: list = []
    for x in xs:
        out.extend(_need_list(x, "concat"))
        check_size(out)
    return out


BUILTINS: dict[str, Func] = {name: Func(name, fn) for name, fn in {
    "len": _len, "type": _type, "abs": _abs,
    "ceil": _rounding(math.ceil, "ceil"), "floor": _rounding(math.floor, "floor"),
    "round": _rounding(_go_round, "round"),
    "int": to_int, "float": to_float, "string": _string,
    "trim": _trim,
    "trimPrefix": lambda s, p=" ": _need_str(s, "trimPrefix").removeprefix(_need_str(p, "trimPrefix")),
    "trimSuffix": lambda s, p=" ": _need_str(s, "trimSuffix").removesuffix(_need_str(p, "trimSuffix")),
    "upper": lambda s: _need_str(s, "upper").upper(), "lower": lambda s: _need_str(s, "lower").lower(),
    "split": _split, "replace": _replace, "repeat": _repeat,
    "indexOf": _index_of, "lastIndexOf": _last_index_of,
    "hasPrefix": lambda s, p: _need_str(s, "hasPrefix").startswith(_need_str(p, "hasPrefix")),
    "hasSuffix": lambda s, p: _need_str(s, "hasSuffix").endswith(_need_str(p, "hasSuffix")),
    "join": _join, "keys": _keys, "values": _values, "first": _first, "last": _last, "get": _get,
    "max": lambda *a: _minmax("max", lambda x, y: x > y, *a),
    "min": lambda *a: _minmax("min", lambda x, y: x < y, *a),
    "toJSON": lambda v: check_size(go_json(v, indent="  ")), "fromJSON": _from_json,
    "toBase64": lambda s: base64.b64encode(_need_str(s, "toBase64").encode()).decode(),
    "fromBase64": _b64dec,
    "now": _now, "duration": parse_duration, "date": _date,
    "uniq": _uniq, "flatten": _flatten, "concat": _concat,
    "reverse": lambda xs: list(reversed(_need_list(xs, "reverse"))),
}.items()}


# -- Argo's additions --------------------------------------------------------------------


def _jsonpath(json_text: object, path: object) -> object:
    doc = expr_jsonpath.loads(_need_str(json_text, "jsonpath"))
    return expr_jsonpath.query(_need_str(path, "jsonpath"), doc)


ARGO_FUNCS: dict[str, Func] = {
    "asInt": Func("asInt", to_int),
    "asFloat": Func("asFloat", to_float),
    "jsonpath": Func("jsonpath", _jsonpath),
    "toJson": Func("toJson", lambda v: check_size(go_json(v))),
}

# sprig is bound separately: see chute.spec.expr_sprig
__all__ = ["ARGO_FUNCS", "BUILTINS", "empty", "parse_duration", "to_float", "to_int"]
