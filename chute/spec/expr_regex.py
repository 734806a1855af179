"""Regular expressions for expressions, only through RE2 (linear time, so no ReDoS).

Go's ``regexp`` is RE2 too, so patterns mean the same as in Argo.
"""

from __future__ import annotations

import functools

import re2

from chute.errors import ExpressionError
from chute.spec.expr_values import MAX_STRING

MAX_PATTERN = 1024  # characters in one pattern


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
        raise ExpressionError(f"invalid regular expression {pattern!r}: {e}") from None


def search(pattern: object, text: object) -> bool:
    """Go's regexp.MatchString: true when the pattern matches anywhere in text."""
    if not isinstance(text, str):
        raise ExpressionError("a regular expression can only match a string")
    if len(text) > MAX_STRING:
        raise ExpressionError("string too long to match")
    return compile_regex(pattern).search(text) is not None
