"""Small helpers the validator modules share: "did you mean", tag detection, ``when``
syntax."""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable

from chute.errors import ExpressionError

_TAG = re.compile(r"\{\{.*?\}\}", re.DOTALL)


def did_you_mean(name: str, candidates: Iterable[str | None]) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate, or an empty string.

    A candidate that differs only in Unicode normalisation (``café`` written with a
    combining accent) is named as such: the two look the same but are not equal."""
    names = sorted({c for c in candidates if c})
    nfc = unicodedata.normalize("NFC", name)
    for c in names:
        if c != name and unicodedata.normalize("NFC", c) == nfc:
            return f" (did you mean {c!r}? they differ only in Unicode normalisation)"
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def is_tagged(text: object) -> bool:
    """True when ``text`` holds a ``{{...}}`` tag, so its value is only known at run time."""
    return isinstance(text, str) and "{{" in text


def when_problem(text: str) -> str | None:
    """Why ``text`` cannot be a ``when`` condition, or None when it parses.

    Only the grammar is checked: each ``{{...}}`` tag stands for an opaque word (tags are
    substituted before the condition is evaluated), so a value known only at run time
    raises no false alarm. A condition holding an expression tag is left to run time.
    """
    if "{{=" in text:
        return None
    from chute.spec import expr_when

    body = _TAG.sub(" placeholder ", text)
    try:
        parse = getattr(expr_when, "parse_when", None)
        if parse is not None:
            parse(body)
        else:  # expr_when keeps its parser private; it raises ExpressionError on bad input
            toks = expr_when._tokenize(body)
            if toks:
                expr_when._Parser(body, toks).parse()
    except ExpressionError as exc:
        msg = str(exc)
        shown = body if len(body) <= 200 else body[:200] + "..."
        prefix = f"invalid 'when' expression '{shown}': "
        detail = msg.removeprefix(prefix)
        return f"invalid when condition {text!r}: {detail}"
    return None
