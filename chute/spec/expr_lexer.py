"""Tokenizer for the expr-lang subset that Argo evaluates in ``{{= ... }}`` tags.

The token set follows expr-lang (github.com/expr-lang/expr, ``parser/lexer``): numbers
(decimal, ``0x``/``0o``/``0b``, underscores, floats with exponent), strings in double or
single quotes with Go escapes, back-quoted raw strings, identifiers, the word operators
(``and or not in matches contains startsWith endsWith``), the closure pointers ``#``,
``#index`` and ``#acc``, ``//`` and ``/* */`` comments, and punctuation.

Only this module turns source text into tokens; nothing here evaluates anything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from chute.errors import ExpressionError

MAX_SOURCE = 4096  # bytes of expression source we agree to look at (RELIABILITY.md §3.3)

# Longest first so that "**" wins over "*", "?." over "?", and so on.
_PUNCT = (
    "...", "??", "?.", "..", "==", "!=", "<=", ">=", "&&", "||", "**",
    "!", "<", ">", "+", "-", "*", "/", "%", "^", "?", ":", ".", ",", "|",
    "(", ")", "[", "]", "{", "}",
)
_PUNCT_BY_FIRST: dict[str, tuple[str, ...]] = {}
for _p in _PUNCT:
    _PUNCT_BY_FIRST[_p[0]] = (*_PUNCT_BY_FIRST.get(_p[0], ()), _p)
WORD_OPERATORS = frozenset({"and", "or", "not", "in", "matches", "contains", "startsWith", "endsWith"})

_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
            "\\": "\\", "'": "'", '"': '"', "`": "`"}


@dataclass(frozen=True, slots=True)
class Token:
    """One token: kind is num, str, ident, op, ptr or eof; pos is the 0-based offset."""

    kind: str
    value: object
    pos: int


def _err(msg: str, pos: int) -> ExpressionError:
    return ExpressionError(f"{msg} (at offset {pos})")


def tokenize(source: str) -> list[Token]:
    """Split expression source into tokens, or raise ExpressionError naming the offset."""
    if not isinstance(source, str):
        raise ExpressionError("expression must be a string")
    if len(source.encode("utf-8", "surrogatepass")) > MAX_SOURCE:
        raise ExpressionError(f"expression longer than {MAX_SOURCE} bytes")
    out: list[Token] = []
    i, n = 0, len(source)
    while i < n:
        c = source[i]
        if c.isspace():
            i += 1
            continue
        if source.startswith("//", i):
            j = source.find("\n", i)
            i = n if j < 0 else j + 1
            continue
        if source.startswith("/*", i):
            j = source.find("*/", i + 2)
            if j < 0:
                raise _err("unclosed comment", i)
            i = j + 2
            continue
        if c.isdigit():
            i = _number(source, i, out)
            continue
        if c in "\"'":
            i = _quoted(source, i, out)
            continue
        if c == "`":
            j = source.find("`", i + 1)
            if j < 0:
                raise _err("unclosed raw string", i)
            out.append(Token("str", source[i + 1:j], i))
            i = j + 1
            continue
        if c == "#":
            j = i + 1
            while j < n and (source[j].isalnum() or source[j] == "_"):
                j += 1
            out.append(Token("ptr", source[i:j], i))
            i = j
            continue
        if c.isalpha() or c == "_" or c == "$":
            j = i + 1
            while j < n and (source[j].isalnum() or source[j] in "_$"):
                j += 1
            word = source[i:j]
            out.append(Token("op" if word in WORD_OPERATORS else "ident", word, i))
            i = j
            continue
        for p in _PUNCT_BY_FIRST.get(c, ()):
            if source.startswith(p, i):
                out.append(Token("op", p, i))
                i += len(p)
                break
        else:
            raise _err(f"unexpected character {c!r}", i)
    out.append(Token("eof", None, n))
    return out


def _number(s: str, i: int, out: list[Token]) -> int:
    start, n = i, len(s)
    if s.startswith(("0x", "0X", "0o", "0O", "0b", "0B"), i):
        base = {"x": 16, "o": 8, "b": 2}[s[i + 1].lower()]
        j = i + 2
        while j < n and (s[j].isalnum() or s[j] == "_"):
            j += 1
        try:
            value: int | float = int(s[i + 2:j].replace("_", ""), base)
        except ValueError:
            raise _err(f"invalid number {s[start:j]!r}", start) from None
        out.append(Token("num", _check_int(value, start), start))
        return j
    j = i
    while j < n and (s[j].isdigit() or s[j] == "_"):
        j += 1
    is_float = False
    # "1..3" is a range, so a dot counts only when a digit follows it
    if j < n and s[j] == "." and j + 1 < n and s[j + 1].isdigit():
        is_float = True
        j += 1
        while j < n and (s[j].isdigit() or s[j] == "_"):
            j += 1
    if j < n and s[j] in "eE":
        k = j + 1
        if k < n and s[k] in "+-":
            k += 1
        if k < n and s[k].isdigit():
            is_float = True
            j = k
            while j < n and s[j].isdigit():
                j += 1
    text = s[start:j].replace("_", "")
    if j < n and (s[j].isalpha() or s[j] == "_"):
        raise _err(f"invalid number {s[start:j + 1]!r}", start)
    try:
        value = float(text) if is_float else int(text, 10)
    except ValueError:
        raise _err(f"invalid number {text!r}", start) from None
    if is_float:
        if not math.isfinite(value):
            raise _err(f"number out of range {text!r}", start)
    else:
        value = _check_int(value, start)
    out.append(Token("num", value, start))
    return j


def _check_int(value: int, pos: int) -> int:
    if value >= 2**63:
        raise _err("integer literal out of int64 range", pos)
    return value


def _quoted(s: str, i: int, out: list[Token]) -> int:
    quote, start, n = s[i], i, len(s)
    buf: list[str] = []
    i += 1
    while i < n:
        c = s[i]
        if c == quote:
            out.append(Token("str", "".join(buf), start))
            return i + 1
        if c == "\\":
            if i + 1 >= n:
                break
            e = s[i + 1]
            if e in _ESCAPES:
                buf.append(_ESCAPES[e])
                i += 2
                continue
            width = {"x": 2, "u": 4, "U": 8}.get(e)
            if width:
                digits = s[i + 2:i + 2 + width]
                try:
                    if len(digits) != width:
                        raise ValueError
                    buf.append(chr(int(digits, 16)))
                except ValueError:
                    raise _err("invalid escape in string", i) from None
                i += 2 + width
                continue
            if e in "01234567":
                digits = s[i + 1:i + 4]
                try:
                    buf.append(chr(int(digits, 8)))
                except ValueError:
                    raise _err("invalid escape in string", i) from None
                i += 4
                continue
            raise _err(f"invalid escape \\{e} in string", i)
        buf.append(c)
        i += 1
    raise _err("unclosed string literal", start)
