"""The ``sprig.*`` functions available in ``{{= ... }}`` expressions.

Argo exposes Masterminds/sprig's GenericFuncMap (minus ``env`` and ``expandenv``). This is
the pure, data-only part of it, with sprig's argument order (``sprig.replace(old, new, s)``,
``sprig.trimPrefix(prefix, s)``) and its lenient conversions (``sprig.int("x")`` is 0).
Left out on purpose: ``env``, ``expandenv``, ``getHostByName`` (DNS), crypto key and
certificate generation, random strings and UUIDs, and ``now``-relative helpers other than
``now``/``date``. An unknown name raises ExpressionError.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import hashlib
import json
import math
import re

from chute.errors import ExpressionError
from chute.spec.expr_funcs import _need_list, _need_str, _sprig_float, _sprig_int, empty
from chute.spec.expr_regex import compile_for
from chute.spec.expr_values import (
    MAX_ITEMS,
    MAX_STRING,
    Func,
    GoTime,
    Namespace,
    check_int,
    check_size,
    current_time,
    from_python,
    go_json,
    go_sprint,
    joined,
    tick,
)


def _s(v: object) -> str:
    """sprig's strval: strings as they are, anything else printed with %v."""
    return v if isinstance(v, str) else go_sprint(v)


def _div(a: object, b: object) -> int:
    x, y = _sprig_int(a), _sprig_int(b)
    if y == 0:
        raise ExpressionError("sprig.div: integer divide by zero")
    q = abs(x) // abs(y)
    return q if (x >= 0) == (y >= 0) else -q


def _mod(a: object, b: object) -> int:
    x, y = _sprig_int(a), _sprig_int(b)
    if y == 0:
        raise ExpressionError("sprig.mod: integer divide by zero")
    r = abs(x) % abs(y)
    return r if x >= 0 else -r


def _mul(a: object, *rest: object) -> int:
    out = _sprig_int(a)
    for v in rest:
        out = check_int(out * _sprig_int(v))
    return out


def _repeat(count: object, s: object) -> str:
    n, text = _sprig_int(count), _need_str(s, "sprig.repeat")
    if n < 0 or n * len(text) > MAX_STRING:
        raise ExpressionError("sprig.repeat: result too long")
    return text * n


def _substr(start: object, end: object, s: object) -> str:
    text = _need_str(s, "sprig.substr")
    a, b = _sprig_int(start), _sprig_int(end)
    if a < 0:
        return text[:b] if b >= 0 else text
    if b < 0 or b > len(text):
        return text[a:]
    return text[a:b]


def _trunc(c: object, s: object) -> str:
    text, n = _need_str(s, "sprig.trunc"), _sprig_int(c)
    if n < 0 and len(text) + n > 0:
        return text[len(text) + n:]
    if n >= 0 and len(text) > n:
        return text[:n]
    return text


def _split(sep: object, s: object) -> dict[str, str]:
    text, sep_ = _need_str(s, "sprig.split"), _need_str(sep, "sprig.split")
    if (text.count(sep_) + 1 if sep_ else len(text)) > MAX_ITEMS:
        raise ExpressionError(f"sprig.split: more than {MAX_ITEMS} parts")
    parts = text.split(sep_) if sep_ else list(text)
    return {f"_{i}": p for i, p in enumerate(parts)}


def _split_list(sep: object, s: object) -> list[str]:
    text, sep_ = _need_str(s, "sprig.splitList"), _need_str(sep, "sprig.splitList")
    return check_size(text.split(sep_) if sep_ else list(text))  # type: ignore[return-value]


def _join(sep: object, xs: object) -> str:
    items = xs if isinstance(xs, list) else [xs]
    if len(items) > MAX_ITEMS:
        raise ExpressionError("sprig.join: list too long")
    return joined(_need_str(sep, "sprig.join"), [_s(x) for x in items if x is not None], "sprig.join")


def _default(d: object, *given: object) -> object:
    if not given or empty(given[0]):
        return d
    return given[0]


def _coalesce(*xs: object) -> object:
    for x in xs:
        if not empty(x):
            return x
    return None


def _b64dec(s: object) -> str:
    try:
        return base64.b64decode(_need_str(s, "sprig.b64dec"), validate=False).decode("utf-8", "replace")
    except (binascii.Error, ValueError) as e:
        return str(e)  # sprig returns the error text


def _b32dec(s: object) -> str:
    try:
        return base64.b32decode(_need_str(s, "sprig.b32dec")).decode("utf-8", "replace")
    except (binascii.Error, ValueError) as e:
        return str(e)


def _from_json(s: object) -> object:
    try:
        return from_python(json.loads(_need_str(s, "sprig.fromJson"), parse_int=float))
    except (ValueError, RecursionError):
        return {}


def _until(n: object) -> list[int]:
    count = _sprig_int(n)
    if abs(count) > MAX_ITEMS:
        raise ExpressionError("sprig.until: list too long")
    return list(range(count)) if count >= 0 else list(range(0, count, -1))


def _until_step(start: object, stop: object, step: object) -> list[int]:
    a, b, c = _sprig_int(start), _sprig_int(stop), _sprig_int(step)
    if c == 0 or (b - a) / c < 0:
        return []
    if abs((b - a) // c) > MAX_ITEMS:
        raise ExpressionError("sprig.untilStep: list too long")
    return list(range(a, b, c))


def _dict(*kv: object) -> dict[str, object]:
    out: dict[str, object] = {}
    for i in range(0, len(kv), 2):
        out[_s(kv[i])] = kv[i + 1] if i + 1 < len(kv) else ""
    return out


def _has_key(d: object, k: object) -> bool:
    return isinstance(d, dict) and _s(k) in d


def _matches(regex: object, s: object, fn: str):
    """Iterate RE2 matches, charging each to the evaluation's time budget."""
    text = _need_str(s, fn)
    for m in compile_for(regex, text).finditer(text):
        tick(16)
        yield m


def _regex_find_all(regex: object, s: object, n: object) -> list[str]:
    limit = _sprig_int(n)
    found: list[str] = []
    for m in _matches(regex, s, "sprig.regexFindAll"):
        if 0 <= limit <= len(found):
            break
        found.append(m.group(0))
        if len(found) > MAX_ITEMS:
            raise ExpressionError("sprig.regexFindAll: too many matches")
    return found


def _regex_find(regex: object, s: object) -> str:
    m = compile_for(regex, s).search(_need_str(s, "sprig.regexFind"))
    return m.group(0) if m else ""


def _regex_replace(regex: object, s: object, repl: object, literal: bool = False) -> str:
    """Go's ReplaceAllString ($1 / ${name} expand) or ReplaceAllLiteralString."""
    fn = "sprig.regexReplaceAllLiteral" if literal else "sprig.regexReplaceAll"
    text, template = _need_str(s, fn), _need_str(repl, fn)
    compiled = compile_for(regex, text)
    py_template = None if literal else _go_template_to_python(template, compiled.groups, compiled.groupindex)
    out: list[str] = []
    size, pos = 0, 0
    for m in _matches(regex, text, fn):
        piece = template if literal else m.expand(py_template)
        out.append(text[pos:m.start()])
        out.append(piece)
        size += m.start() - pos + len(piece)
        pos = m.end()
        if size > MAX_STRING:
            raise ExpressionError(f"{fn}: result longer than {MAX_STRING} characters")
    out.append(text[pos:])
    return check_size("".join(out))  # type: ignore[return-value]


def _regex_split(regex: object, s: object, n: object) -> list[str]:
    """Go's Regexp.Split(s, n): n < 0 all pieces, n == 0 none, n > 0 at most n pieces."""
    text, limit = _need_str(s, "sprig.regexSplit"), _sprig_int(n)
    if limit == 0:
        return []
    pieces: list[str] = []
    pos = 0
    for m in _matches(regex, text, "sprig.regexSplit"):
        if 0 < limit <= len(pieces) + 1:
            break
        if m.end() == 0 and m.start() == 0:
            continue  # Go skips an empty match at the very start
        pieces.append(text[pos:m.start()])
        pos = m.end()
        if len(pieces) > MAX_ITEMS:
            raise ExpressionError("sprig.regexSplit: too many pieces")
    pieces.append(text[pos:])
    return pieces


def _indent(n: object, s: object, fn: str, newline: bool) -> str:
    text, width = _need_str(s, fn), max(_sprig_int(n), 0)
    lines = text.count("\n") + 1
    if width * lines + len(text) + 1 > MAX_STRING:
        raise ExpressionError(f"{fn}: result longer than {MAX_STRING} characters")
    pad = " " * width
    out = pad + text.replace("\n", "\n" + pad)
    return "\n" + out if newline else out


def _replace(old: object, new: object, s: object) -> str:
    text, old_, new_ = _need_str(s, "sprig.replace"), _need_str(old, "sprig.replace"), _need_str(new, "sprig.replace")
    count = text.count(old_) if old_ else len(text) + 1
    if len(text) + count * (len(new_) - len(old_)) > MAX_STRING:
        raise ExpressionError(f"sprig.replace: result longer than {MAX_STRING} characters")
    return text.replace(old_, new_)


def _title(s: object, fn: str, upper: bool) -> str:
    text = _need_str(s, fn)
    if len(text) > 65536:
        raise ExpressionError(f"{fn}: input longer than 65536 characters")
    return " ".join((w[:1].upper() if upper else w[:1].lower()) + w[1:] for w in text.split(" "))


_GO_TEMPLATE = re.compile(r"\$\$|\$\{(\w+)\}|\$(\w+)|\\")


def _go_template_to_python(t: str, groups: int = 99, names: object = ()) -> str:
    """Go's Expand syntax ($1, ${name}, $$) in the spelling RE2's Python expand() takes;
    a group that does not exist expands to nothing, as in Go."""

    def convert(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        if m.group(0) == "\\":
            return "\\\\"
        ref = m.group(1) or m.group(2)
        known = (ref.isdigit() and int(ref) <= groups) or ref in names  # type: ignore[operator]
        return f"\\g<{ref}>" if known else ""

    return _GO_TEMPLATE.sub(convert, t)


_GO_LAYOUT = [  # longest first
    ("January", "%B"), ("Monday", "%A"), ("2006", "%Y"), ("-07:00", "%:z"), ("-0700", "%z"),
    ("Z07:00", "Z%:z"), ("Jan", "%b"), ("Mon", "%a"), ("MST", "%Z"), ("01", "%m"), ("02", "%d"),
    ("_2", "%e"), ("15", "%H"), ("03", "%I"), ("04", "%M"), ("05", "%S"), ("06", "%y"),
    ("PM", "%p"), ("pm", "%p"), (".000000", ".%f"), (".000", ".%f3"), ("1", "%-m"), ("2", "%-d"),
    ("3", "%-I"), ("4", "%-M"), ("5", "%-S"),
]


def go_format_time(layout: str, dt: _dt.datetime) -> str:
    """Format a time with a Go reference layout ("2006-01-02T15:04:05Z07:00")."""
    out, i = [], 0
    while i < len(layout):
        for token, code in _GO_LAYOUT:
            if layout.startswith(token, i):
                out.append(_strftime(code, dt))
                i += len(token)
                break
        else:
            out.append(layout[i])
            i += 1
    return "".join(out)


def _strftime(code: str, dt: _dt.datetime) -> str:
    if code == "%:z":
        z = dt.strftime("%z")
        return f"{z[:3]}:{z[3:]}" if z else ""
    if code == "Z%:z":
        return "Z" if dt.utcoffset() == _dt.timedelta(0) else _strftime("%:z", dt)
    if code == ".%f3":
        return "." + dt.strftime("%f")[:3]
    if code.startswith("%-"):
        return str(int(dt.strftime("%" + code[2:])))
    if code == "%e":
        return f"{dt.day:2d}"
    return dt.strftime(code)


def _small(text: str, fn: str, limit: int = 65536) -> str:
    """Refuse large inputs to functions that work character by character in Python."""
    if len(text) > limit:
        raise ExpressionError(f"{fn}: input longer than {limit} characters")
    return text


def _date(layout: object, when: object) -> str:
    fmt = _small(_need_str(layout, "sprig.date"), "sprig.date", 256)
    if isinstance(when, GoTime):
        dt = when.dt.astimezone()
    elif type(when) is int:
        dt = _dt.datetime.fromtimestamp(when).astimezone()
    else:
        # sprig formats time.Now() for any argument it does not understand (strings included)
        dt = current_time().astimezone()
    return go_format_time(fmt, dt)


def _round(x: object, places: object, point: object = 0.5) -> float:
    v, p = _sprig_float(x), _sprig_int(places)
    if abs(p) > 300:
        raise ExpressionError("sprig.round: too many places")
    scaled = v * 10**p
    r = math.floor(scaled) + (1 if scaled - math.floor(scaled) >= _sprig_float(point) else 0)
    return r / 10**p


def _minmax(pick, a: object, *rest: object) -> int:
    best = _sprig_int(a)
    for v in rest:
        best = pick(best, _sprig_int(v))
    return best


_FUNCS = {
    # strings
    "trim": lambda s: _need_str(s, "sprig.trim").strip(),
    "trimAll": lambda c, s: _need_str(s, "sprig.trimAll").strip(_need_str(c, "sprig.trimAll")),
    "trimPrefix": lambda p, s: _need_str(s, "sprig.trimPrefix").removeprefix(_need_str(p, "sprig.trimPrefix")),
    "trimSuffix": lambda p, s: _need_str(s, "sprig.trimSuffix").removesuffix(_need_str(p, "sprig.trimSuffix")),
    "upper": lambda s: _need_str(s, "sprig.upper").upper(),
    "lower": lambda s: _need_str(s, "sprig.lower").lower(),
    "title": lambda s: _title(s, "sprig.title", True),
    "untitle": lambda s: _title(s, "sprig.untitle", False),
    "repeat": _repeat, "substr": _substr, "trunc": _trunc,
    "nospace": lambda s: "".join(_need_str(s, "sprig.nospace").split()),
    "contains": lambda sub, s: _need_str(sub, "sprig.contains") in _need_str(s, "sprig.contains"),
    "hasPrefix": lambda p, s: _need_str(s, "sprig.hasPrefix").startswith(_need_str(p, "sprig.hasPrefix")),
    "hasSuffix": lambda p, s: _need_str(s, "sprig.hasSuffix").endswith(_need_str(p, "sprig.hasSuffix")),
    "quote": lambda *xs: joined(" ", [json.dumps(_s(x), ensure_ascii=False) for x in xs if x is not None], "sprig.quote"),
    "squote": lambda *xs: joined(" ", [f"'{_s(x)}'" for x in xs if x is not None], "sprig.squote"),
    "cat": lambda *xs: joined(" ", [_s(x) for x in xs if x is not None], "sprig.cat"),
    "replace": _replace,
    "indent": lambda n, s: _indent(n, s, "sprig.indent", False),
    "nindent": lambda n, s: _indent(n, s, "sprig.nindent", True),
    "split": _split, "splitList": _split_list, "join": _join,
    "toString": _s, "toStrings": lambda xs: [_s(x) for x in (xs if isinstance(xs, list) else [xs])],
    # numbers
    "atoi": lambda s: _atoi(s), "int": _sprig_int, "int64": _sprig_int, "float64": _sprig_float,
    "add": lambda *xs: check_int(sum(_sprig_int(x) for x in xs)),
    "add1": lambda x: check_int(_sprig_int(x) + 1),
    "sub": lambda a, b: check_int(_sprig_int(a) - _sprig_int(b)),
    "mul": _mul, "div": _div, "mod": _mod,
    "max": lambda a, *r: _minmax(max, a, *r), "min": lambda a, *r: _minmax(min, a, *r),
    "addf": lambda *xs: math.fsum(_sprig_float(x) for x in xs),
    "subf": lambda a, *r: _sprig_float(a) - math.fsum(_sprig_float(x) for x in r),
    "mulf": lambda a, *r: math.prod([_sprig_float(a), *(_sprig_float(x) for x in r)]),
    "floor": lambda x: float(math.floor(_sprig_float(x))), "ceil": lambda x: float(math.ceil(_sprig_float(x))),
    "round": _round,
    # defaults and flow
    "default": _default, "empty": empty, "coalesce": _coalesce,
    "ternary": lambda a, b, cond: a if cond is True else b,
    "toJson": lambda v: check_size(go_json(v)), "toRawJson": lambda v: check_size(go_json(v)),
    "toPrettyJson": lambda v: check_size(go_json(v, indent="  ")), "fromJson": _from_json,
    # encodings and hashes
    "b64enc": lambda s: base64.b64encode(_s(s).encode()).decode(), "b64dec": _b64dec,
    "b32enc": lambda s: base64.b32encode(_small(_s(s), "sprig.b32enc").encode()).decode(),
    "b32dec": lambda s: _b32dec(_small(_need_str(s, "sprig.b32dec"), "sprig.b32dec")),
    "sha1sum": lambda s: hashlib.sha1(_need_str(s, "sprig.sha1sum").encode()).hexdigest(),
    "sha256sum": lambda s: hashlib.sha256(_need_str(s, "sprig.sha256sum").encode()).hexdigest(),
    # lists and dicts
    "list": lambda *xs: list(xs), "first": lambda xs: _need_list(xs, "sprig.first")[0] if xs else None,
    "last": lambda xs: _need_list(xs, "sprig.last")[-1] if xs else None,
    "rest": lambda xs: _need_list(xs, "sprig.rest")[1:], "initial": lambda xs: _need_list(xs, "sprig.initial")[:-1],
    "append": lambda xs, v: check_size([*_need_list(xs, "sprig.append"), v]),
    "prepend": lambda xs, v: check_size([v, *_need_list(xs, "sprig.prepend")]),
    "concat": lambda *xs: check_size([y for x in xs for y in _need_list(x, "sprig.concat")]),
    "reverse": lambda xs: list(reversed(_need_list(xs, "sprig.reverse"))),
    "compact": lambda xs: [x for x in _need_list(xs, "sprig.compact") if not empty(x)],
    "has": lambda needle, xs: any(needle == x and type(needle) is type(x) for x in _need_list(xs, "sprig.has")),
    "sortAlpha": lambda xs: sorted(_s(x) for x in _need_list(xs, "sprig.sortAlpha")),
    "until": _until, "untilStep": _until_step,
    "dict": _dict, "get": lambda d, k: d.get(_s(k), "") if isinstance(d, dict) else "",
    "hasKey": _has_key, "keys": lambda *ds: [k for d in ds if isinstance(d, dict) for k in d],
    "values": lambda d: list(d.values()) if isinstance(d, dict) else [],
    "pick": lambda d, *ks: {k: d[k] for k in map(_s, ks) if isinstance(d, dict) and k in d},
    "omit": lambda d, *ks: {k: v for k, v in d.items() if k not in set(map(_s, ks))} if isinstance(d, dict) else {},
    # regular expressions (RE2)
    "regexMatch": lambda r, s: compile_for(r, s).search(_need_str(s, "sprig.regexMatch")) is not None,
    "regexFind": _regex_find, "regexFindAll": _regex_find_all, "regexReplaceAll": _regex_replace,
    "regexReplaceAllLiteral": lambda r, s, repl: _regex_replace(r, s, repl, literal=True),
    "regexSplit": _regex_split,
    # time
    "now": lambda: GoTime(current_time()), "date": _date,
    "unixEpoch": lambda t: str(int(t.dt.timestamp())) if isinstance(t, GoTime) else "0",
}


def _limit(parts: list, n: object) -> list:
    count = _sprig_int(n)
    return parts if count < 0 else parts[:count]


def _atoi(s: object) -> int:
    text = _need_str(s, "sprig.atoi")
    try:
        return check_int(int(text, 10)) if text.strip() == text and "_" not in text else 0
    except ValueError:
        return 0


SPRIG = Namespace("sprig", {name: Func(f"sprig.{name}", fn) for name, fn in _FUNCS.items()})

__all__ = ["SPRIG", "go_format_time"]
