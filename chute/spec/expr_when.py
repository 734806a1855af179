"""Argo's ``when`` conditions: the govaluate grammar, evaluated after substitution.

Argo (``workflow/controller/steps.go`` ``shouldExecute``) parses the substituted text with
github.com/Knetic/govaluate, turns every *variable* token into a string literal, and
evaluates with no parameters. So ``heads == heads`` is ``"heads" == "heads"``. The
consequences mirrored here:

* a bare word is a string; ``true``/``false`` (lower case) are booleans, so
  ``true == true`` holds but ``True == true`` does not;
* a word with a dot (``v1.2``, ``a.b``) is a govaluate *accessor* and fails;
* words are letters, digits, ``_`` and ``.`` starting with a letter; ``my-value`` is
  ``my - value`` and fails (quote such values);
* numbers are float64 (``007 == 7``, ``0x1F``); quoted strings end at the next quote of
  either kind; a quoted ISO date becomes its Unix time;
* ``== !=`` compare any values (different types are unequal); ``< > <= >=`` need two
  numbers or two strings; ``=~ !~`` search with an RE2 regexp; ``&& || !`` need booleans and
  short-circuit; ``+`` concatenates when either side is a string; ``in`` tests membership in
  a parenthesised list ``(a, b)``; ``?:`` and ``??`` as in govaluate;
* an operator is the whole run of symbol characters, so ``a ==-1`` is an invalid token;
* the result must be a boolean, and an empty condition is true.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
import time

from chute.errors import ExpressionError
from chute.spec import expr_regex
from chute.spec.expr_values import deadline_scope, go_sprint_float

_PREFIX = {"-", "!", "~"}
_MODIFIERS = {"+", "-", "*", "/", "%", "**", "&", "|", "^", ">>", "<<"}
_LOGICAL = {"&&", "||"}
_COMPARATORS = {"==", "!=", ">", ">=", "<", "<=", "=~", "!~", "in"}
_TERNARY = {"?", ":", "??"}
_MAX_DEPTH = 64
# A `when` is data after substitution (a step result may sit in it), so it may be longer
# than a hand-written expression; scanning is linear, so 64 KiB stays far under 50 ms.
MAX_WHEN = 64 * 1024
_HEX = re.compile(r"[0-9a-fA-F]*")
_NUMBER = re.compile(r"[\d.]*")
_WORD = re.compile(r"(?:[\w.]+|\\.)*", re.DOTALL)  # letters, digits, "_", "." and \-escapes
_SYMBOL = re.compile(r"[^ \t\n\r\f\vA-Za-z0-9()\[\]'\"]*")  # ASCII classes: fast and linear  # govaluate counts "_" as a symbol character
_MAX_TOKENS = 1000
_STRING_BODY = re.compile(r"(?:[^'\"\\]+|\\.)*", re.DOTALL)  # up to the next quote of either kind
_UNESCAPE = re.compile(r"\\(.)", re.DOTALL)


def _err(when: str, msg: str) -> ExpressionError:
    shown = when if len(when) <= 200 else when[:200] + "..."
    hint = " (hint: try wrapping the affected expression in quotes (\"))" if msg.startswith("Invalid token") else ""
    return ExpressionError(f"invalid 'when' expression '{shown}': {msg}{hint}")




def _tokenize(when: str) -> list[tuple[str, object]]:
    toks: list[tuple[str, object]] = []
    i, n = 0, len(when)
    while i < n:
        c = when[i]
        if c.isspace():
            i += 1
            continue
        if len(toks) >= _MAX_TOKENS:
            raise _err(when, f"more than {_MAX_TOKENS} tokens")
        if c.isdecimal() or c == ".":  # Go unicode.IsDigit is category Nd, as isdecimal
            if when.startswith(("0x", "0X"), i):
                j = _HEX.match(when, i + 2).end()  # type: ignore[union-attr]
                try:
                    toks.append(("num", float(int(when[i + 2:j], 16))))
                except ValueError:
                    raise _err(when, f"Unable to parse hex value '{when[i + 2:j]}' to uint64") from None
                i = j
                continue
            j = _NUMBER.match(when, i).end()  # type: ignore[union-attr]
            text = when[i:j]
            try:
                toks.append(("num", float(text)))
            except ValueError:
                raise _err(when, f"Unable to parse numeric value '{text}' to float64") from None
            i = j
            continue
        if c == ",":
            toks.append(("sep", ","))
            i += 1
            continue
        if c == "[":
            j = when.find("]", i + 1)
            if j < 0:
                raise _err(when, "Unclosed parameter bracket")
            toks.append(("str", when[i + 1:j]))
            i = j + 1
            continue
        if c.isalpha():
            j = _WORD.match(when, i).end()  # type: ignore[union-attr]
            word = _UNESCAPE.sub(r"\1", when[i:j])
            i = j
            if word in ("true", "false"):
                toks.append(("bool", word == "true"))
            elif word in ("in", "IN"):
                toks.append(("op", "in"))
            elif "." in word:
                if word.endswith("."):
                    raise _err(when, f"Hanging accessor on token '{word}'")
                raise _err(when, f"No parameter '{word.split('.')[0]}' found (a bare word with a dot is a govaluate accessor; quote it)")
            else:
                toks.append(("str", word))  # Argo turns variables into strings
            continue
        if c in "'\"":
            j = _STRING_BODY.match(when, i + 1).end()  # type: ignore[union-attr]
            if j >= n or when[j] not in "'\"":
                raise _err(when, "Unclosed string literal")
            text = _UNESCAPE.sub(r"\1", when[i + 1:j])
            stamp = _parse_time(text)
            toks.append(("num", stamp) if stamp is not None else ("str", text))
            i = j + 1
            continue
        if c in "()":
            toks.append(("paren", c))
            i += 1
            continue
        j = _SYMBOL.match(when, i).end()  # type: ignore[union-attr]
        sym = when[i:j] or c
        i = max(j, i + 1)
        if sym in _PREFIX | _MODIFIERS | _LOGICAL | _COMPARATORS | _TERNARY:
            toks.append(("op", sym))
        else:
            raise _err(when, f"Invalid token: '{sym}'")
    return toks


def _parse_time(text: str) -> float | None:
    # govaluate tries a list of layouts (RFC 3339, "2006-01-02", "2006-01-02 15:04[:05]", ISO 8601);
    # datetime.fromisoformat covers those and, unlike strptime, imports nothing at run time.
    if len(text) < 10 or len(text) > 40 or not text[:4].isdigit() or text[4] != "-":
        return None
    try:
        dt = _dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=_dt.UTC)
    return float(int(dt.timestamp()))


class _Parser:
    """Recursive descent with govaluate's precedence, lowest first:
    ternary (?: ??) < || < && < comparators < bitwise (& | ^) < shifts < + - < * / % < ** < prefix."""

    def __init__(self, when: str, toks: list[tuple[str, object]]):
        self.when, self.toks, self.i, self.depth = when, toks, 0, 0

    def peek(self) -> tuple[str, object] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take_op(self, ops: set[str]) -> str | None:
        t = self.peek()
        if t and t[0] == "op" and t[1] in ops:
            self.i += 1
            return t[1]  # type: ignore[return-value]
        return None

    def parse(self) -> tuple:
        node = self.ternary()
        if self.i != len(self.toks):
            raise _err(self.when, f"unexpected token '{self.toks[self.i][1]}'")
        return node

    def ternary(self) -> tuple:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise _err(self.when, f"nested deeper than {_MAX_DEPTH} levels")
        try:
            cond = self.binary(0)
            if self.take_op({"??"}):
                return ("??", cond, self.ternary())
            if self.take_op({"?"}):
                then = self.ternary()
                if self.take_op({":"}):
                    return ("?:", cond, then, self.ternary())
                return ("?:", cond, then, ("lit", None))
            return cond
        finally:
            self.depth -= 1

    _LEVELS: tuple[set[str], ...] = ({"||"}, {"&&"}, _COMPARATORS, {"&", "|", "^"}, {"<<", ">>"}, {"+", "-"}, {"*", "/", "%"}, {"**"})

    def binary(self, level: int) -> tuple:
        if level == len(self._LEVELS):
            return self.prefix()
        left = self.binary(level + 1)
        while (op := self.take_op(self._LEVELS[level])) is not None:
            left = (op, left, self.binary(level + 1))
        return left

    def prefix(self) -> tuple:
        op = self.take_op(_PREFIX)
        if op is not None:
            self.depth += 1
            if self.depth > _MAX_DEPTH:
                raise _err(self.when, f"nested deeper than {_MAX_DEPTH} levels")
            try:
                return ("prefix" + op, self.prefix())
            finally:
                self.depth -= 1
        t = self.peek()
        if t is None:
            raise _err(self.when, "unexpected end of expression")
        self.i += 1
        if t[0] in ("num", "str", "bool"):
            return ("lit", t[1])
        if t == ("paren", "("):
            items = [self.ternary()]
            while self.peek() == ("sep", ","):
                self.i += 1
                items.append(self.ternary())
            if self.peek() != ("paren", ")"):
                raise _err(self.when, "Unbalanced parenthesis")
            self.i += 1
            return items[0] if len(items) == 1 else ("list", items)
        raise _err(self.when, f"unexpected token '{t[1]}'")


def _fmt(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return go_sprint_float(v)
    return str(v)


def _eval(node: tuple, when: str) -> object:
    kind = node[0]
    if kind == "lit":
        return node[1]
    if kind == "list":
        return [_eval(x, when) for x in node[1]]
    if kind.startswith("prefix"):
        v = _eval(node[1], when)
        op = kind[6:]
        if op == "!":
            if not isinstance(v, bool):
                raise _err(when, f"Value '{_fmt(v)}' cannot be used with the prefix '!'")
            return not v
        if not isinstance(v, float):
            raise _err(when, f"Value '{_fmt(v)}' cannot be used with the prefix '{op}'")
        return -v if op == "-" else float(~_to_int(v))
    op = kind
    left = _eval(node[1], when)
    if op in ("&&", "||"):
        if op == "&&" and left is False:
            return False
        if op == "||" and left is True:
            return True
        right = _eval(node[2], when)
        if not isinstance(left, bool) or not isinstance(right, bool):
            raise _err(when, f"Value '{_fmt(right if isinstance(left, bool) else left)}' cannot be used with the logical operator '{op}', it is not a bool")
        return right
    if op == "??":
        return left if left is not None else _eval(node[2], when)
    if op == "?:":
        if not isinstance(left, bool):
            raise _err(when, f"Value '{_fmt(left)}' cannot be used with the ternary operator '?', it is not a bool")
        return _eval(node[2] if left else node[3], when)
    right = _eval(node[2], when)
    if op == "==":
        return type(left) is type(right) and left == right
    if op == "!=":
        return not (type(left) is type(right) and left == right)
    if op in ("<", ">", "<=", ">="):
        if not ((isinstance(left, float) and isinstance(right, float)) or (isinstance(left, str) and isinstance(right, str))):
            raise _err(when, f"Value '{_fmt(left)}' cannot be used with the comparator '{op}', it is not a number")
        return {"<": left < right, ">": left > right, "<=": left <= right, ">=": left >= right}[op]  # type: ignore[operator]
    if op in ("=~", "!~"):
        if not isinstance(left, str) or not isinstance(right, str):
            raise _err(when, f"Value '{_fmt(left)}' cannot be used with the comparator '{op}', it is not a string")
        found = expr_regex.search(right, left)
        return found if op == "=~" else not found
    if op == "in":
        if not isinstance(right, list):
            raise _err(when, f"Value '{_fmt(right)}' cannot be used with the comparator 'in', it is not an array")
        return any(type(left) is type(x) and left == x for x in right)
    if op == "+" and (isinstance(left, str) or isinstance(right, str)):
        if isinstance(left, (list, bool)) or isinstance(right, (list, bool)) or left is None or right is None:
            raise _err(when, "Value cannot be used with the modifier '+'")
        return _fmt(left) + _fmt(right)
    if not isinstance(left, float) or not isinstance(right, float):
        bad = left if not isinstance(left, float) else right
        raise _err(when, f"Value '{_fmt(bad)}' cannot be used with the modifier '{op}', it is not a number")
    return _numeric(op, left, right, when)


def _to_int(f: float) -> int:
    if not math.isfinite(f):
        return 0
    return max(min(int(f), 2**63 - 1), -(2**63))


def _numeric(op: str, a: float, b: float, when: str) -> float:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        if b == 0:
            return math.nan if a == 0 or math.isnan(a) else math.copysign(math.inf, a) * math.copysign(1, b)
        return a / b
    if op == "%":
        return math.fmod(a, b) if b != 0 else math.nan
    if op == "**":
        try:
            return math.pow(a, b)
        except OverflowError:
            return math.inf
        except ValueError:
            return math.nan
    x, y = _to_int(a), _to_int(b)
    if op in ("<<", ">>"):
        if y < 0 or y > 63:
            raise _err(when, "shift count out of range")
        r = (x << y) if op == "<<" else (x >> y)
        r &= (1 << 64) - 1
        return float(r - (1 << 64) if r >= 1 << 63 else r)
    return float({"&": x & y, "|": x | y, "^": x ^ y}[op])


def evaluate_when(when: str) -> bool:
    """Evaluate an already substituted ``when`` condition the way Argo does."""
    if not isinstance(when, str):
        raise ExpressionError("a 'when' condition must be a string")
    if when == "":
        return True
    if len(when) > MAX_WHEN:
        raise ExpressionError(f"'when' condition longer than {MAX_WHEN} characters after substitution")
    with deadline_scope(time.thread_time() + 0.015):
        return _evaluate_when(when)


def _evaluate_when(when: str) -> bool:
    toks = _tokenize(when)
    if not toks:
        raise _err(when, "expected a boolean expression")
    result = _eval(_Parser(when, toks).parse(), when)
    if not isinstance(result, bool):
        raise ExpressionError(f"expected boolean evaluation for '{when}', got {_fmt(result)}")
    return result
