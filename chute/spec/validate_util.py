"""Small helpers the validator modules share: Argo's name rules, "did you mean", tag
detection, ``when`` syntax, and the checks of names, enums and retry strategies."""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from chute.errors import ExpressionError, Issue

if TYPE_CHECKING:
    from chute.spec.models import Parameter

#: Argo's name rules: template, step and task names (``workflowFieldNameFmt``), and
#: parameter and artifact names.
FIELD_NAME = re.compile(r"^[a-zA-Z0-9][-a-zA-Z0-9]*$")
PARAM_NAME = re.compile(r"^[-a-zA-Z0-9_]+$")
MAX_FIELD_NAME = 128
RETRY_POLICIES = ("Always", "OnFailure", "OnError", "OnTransientError")

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


def expression_problem(text: str) -> str | None:
    """Why ``text`` cannot be an expr-lang expression (hook and retry ``expression``,
    ``valueFrom.expression``, ``fromExpression``), or None when it parses. Simple tags
    are substituted first at run time, so each stands for an opaque name here."""
    if "{{=" in text:
        return None
    from chute.spec import expr

    try:
        expr.parse(_TAG.sub(" placeholder ", text))
    except ExpressionError as exc:
        return f"invalid expression {text if len(text) <= 80 else text[:77] + '...'!r}: {exc}"
    return None


def names_issues(items: list[Any] | None, path: str, what: str,
                 rule: re.Pattern[str]) -> list[Issue]:
    """Names of a list (parameters, artifacts, ...): present, well-formed, unique."""
    issues: list[Issue] = []
    first: dict[str, int] = {}
    for i, item in enumerate(items or []):
        name = item.name
        if not name:
            issues.append(Issue(f"{path}[{i}].name", f"{what} name is required"))
            continue
        if is_tagged(name):
            continue
        if not rule.match(name) or len(name) > MAX_FIELD_NAME:
            allowed = ("letters, digits, '-' and '_'" if rule is PARAM_NAME
                       else "letters, digits and '-', starting with a letter or digit")
            issues.append(Issue(f"{path}[{i}].name",
                                f"invalid {what} name {name!r}: use {allowed}"))
        if name in first:
            issues.append(Issue(f"{path}[{i}].name", f"duplicate {what} name {name!r} "
                                f"(also {path}[{first[name]}])"))
        else:
            first[name] = i
    return issues


def param_issues(params: list[Parameter] | None, path: str) -> list[Issue]:
    """Enum checks: a non-empty list that holds the value or default."""
    issues: list[Issue] = []
    for i, p in enumerate(params or []):
        if p.enum is None:
            continue
        if not p.enum:
            issues.append(Issue(f"{path}[{i}].enum", "enum must list at least one value"))
            continue
        for field in ("value", "default"):
            v = getattr(p, field)
            if v is not None and not is_tagged(v) and v not in p.enum:
                issues.append(Issue(f"{path}[{i}].{field}",
                                    f"{v!r} is not one of the enum values {p.enum}"))
    return issues


def retry_issues(rs: Any, path: str) -> list[Issue]:
    """A retryStrategy's policy is one Argo knows and its limit is a count."""
    issues: list[Issue] = []
    if rs.retryPolicy and rs.retryPolicy not in RETRY_POLICIES:
        issues.append(Issue(f"{path}.retryPolicy", f"{rs.retryPolicy!r} is not a retry "
                            f"policy; use one of {', '.join(RETRY_POLICIES)}"))
    if rs.limit is not None and not is_tagged(rs.limit):
        try:
            if int(rs.limit) < 0:
                raise ValueError
        except ValueError:
            issues.append(Issue(f"{path}.limit", f"limit must be a non-negative integer or a "
                                f"{{{{...}}}} variable, got {rs.limit!r}"))
    return issues
