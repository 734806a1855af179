"""Regular expressions for expressions, only through RE2 (linear time, so no ReDoS).

Go's ``regexp`` is RE2 too, so patterns mean the same as in Argo.
"""

from __future__ import annotations

import functools

import re2

from chute.errors import ExpressionError
from chute.spec.expr_values import MAX_STRING

MAX_PATTERN = 1024  # characters in one pattern
# RE2 is linear, but when its DFA gives up it runs an NFA costing about
# program size x text length (~10 ns a unit here); capping the product keeps any one match
# near 20 ms. A 20-instruction pattern still searches 100,000 characters.
MAX_COST = 2_000_000


@functools.lru_cache(maxsize=256)
def _compile(pattern: str):
    options = re2.Options()
    options.max_mem = 8 << 20  # RE2 refuses patterns whose automaton would need more
    options.log_errors = False
    return re2.compile(pattern, options)


def compile_regex(pattern: object):
    """Compile a pattern with RE2, or raise ExpressionError."""
    if not isinstance(pattern, str):
        raise ExpressionError("a regular expression must be a string")
    if len(pattern) > MAX_PATTERN:
        raise ExpressionError(f"regular expression longer than {MAX_PATTERN} characters")
    try:
        return _compile(pattern)
    except re2.error as e:
        detail = e.args[0].decode("utf-8", "replace") if e.args and isinstance(e.args[0], bytes) else str(e)
        raise ExpressionError(f"invalid regular expression {pattern[:100]!r}: {detail}") from None


def compile_for(pattern: object, text: object):
    """Compile a pattern to run over text, refusing combinations too costly to finish fast."""
    regex = compile_regex(pattern)
    if isinstance(text, str):
        if len(text) > MAX_STRING:
            raise ExpressionError("string too long to match")
        if regex.programsize * max(len(text), 1) > MAX_COST:
            raise ExpressionError(
                f"regular expression too expensive: pattern size {regex.programsize} x text length "
                f"{len(text)} is over {MAX_COST}")
    return regex


def search(pattern: object, text: object) -> bool:
    """Go's regexp.MatchString: true when the pattern matches anywhere in text."""
    if not isinstance(text, str):
        raise ExpressionError("a regular expression can only match a string")
    return compile_for(pattern, text).search(text) is not None
