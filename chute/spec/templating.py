"""``{{...}}`` template tags, substituted the way Argo does (``util/template``).

A tag runs from ``{{`` to the *first* following ``}}`` (fasttemplate; tags do not nest).
``{{=expr}}`` — ``=`` immediately after the braces — is an expression tag; anything else
is a simple tag, looked up by name with surrounding white-space trimmed
(``{{ inputs.parameters.x }}``). An unclosed ``{{`` is an error, as in Argo
("cannot find end tag").

:func:`substitute` makes ONE pass over the text and writes each value as data: a value that
itself contains ``{{workflow.name}}`` comes out literally and is never scanned again
(CVE-2021-37914). Expression results are printed as Argo prints them: strings as they are,
anything else as JSON (``20``, ``[3]``, ``{"a":1}``).

With ``strict=False`` (Argo's ``allowUnresolved``) a tag that cannot be resolved yet is
left exactly as written, for a later phase to fill (an expression tag also when it reads a
variable that is not in the map yet, even if ``??`` could cover for it); with ``strict=True`` it raises
:class:`~chute.errors.ExpressionError` naming the variable.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from chute.errors import ExpressionError, Issue
from chute.spec import expr

__all__ = [
    "Tag",
    "check_tags",
    "find_tags",
    "has_tags",
    "referenced_variables",
    "substitute",
    "substitute_all",
]

PREFIX, SUFFIX = "{{", "}}"


@dataclass(frozen=True)
class Tag:
    """One ``{{...}}`` tag: its kind, the text inside (without the ``=`` of an expression
    tag), and its [start, end) offsets in the text including the braces."""

    kind: Literal["simple", "expression"]
    inner: str
    start: int
    end: int

    @property
    def name(self) -> str:
        """For a simple tag, the variable name it looks up (white-space trimmed)."""
        return self.inner.strip()


def _scan(text: str) -> tuple[list[Tag], int | None]:
    """All tags, plus the offset of an unclosed ``{{`` if there is one."""
    tags: list[Tag] = []
    i = 0
    while True:
        start = text.find(PREFIX, i)
        if start < 0:
            return tags, None
        stop = text.find(SUFFIX, start + 2)
        if stop < 0:
            return tags, start
        inner = text[start + 2:stop]
        if inner.startswith("="):
            tags.append(Tag("expression", inner[1:], start, stop + 2))
        else:
            tags.append(Tag("simple", inner, start, stop + 2))
        i = stop + 2


def has_tags(text: str) -> bool:
    """True if the text contains ``{{`` at all (cheap pre-check)."""
    return PREFIX in text


def find_tags(text: str) -> list[Tag]:
    """The tags in text, in order (an unclosed ``{{`` at the end is not a tag)."""
    return _scan(text)[0]


def check_tags(text: str, path: str) -> list[Issue]:
    """Problems with the tags in text: an unclosed ``{{``, an empty ``{{}}``, an
    expression tag whose expression does not parse."""
    tags, unclosed = _scan(text)
    issues: list[Issue] = []
    for tag in tags:
        if tag.kind == "simple" and not tag.name:
            issues.append(Issue(path, f"empty template tag '{{{{{tag.inner}}}}}' at offset {tag.start}"))
        elif tag.kind == "expression":
            if not tag.inner.strip():
                issues.append(Issue(path, f"empty expression tag '{{{{={tag.inner}}}}}' at offset {tag.start}"))
                continue
            try:
                expr.parse(tag.inner)
            except ExpressionError as e:
                issues.append(Issue(path, f"invalid expression in '{{{{={_short(tag.inner)}}}}}': {e}"))
    if unclosed is not None:
        issues.append(Issue(path, f"unclosed template tag: '{{{{' at offset {unclosed} has no matching '}}}}'"))
    return issues


def _short(s: str) -> str:
    return s if len(s) <= 80 else s[:77] + "..."


def referenced_variables(text: str) -> set[str]:
    """Variable names the text refers to: simple tag names, and (best effort) the dotted
    paths read by expression tags (``inputs.parameters['a-b']`` → ``inputs.parameters.a-b``).
    Expressions that do not parse contribute nothing (check_tags reports them)."""
    names: set[str] = set()
    for tag in find_tags(text):
        if tag.kind == "simple":
            if tag.name:
                names.add(tag.name)
        else:
            try:
                names |= expr.referenced_names(tag.inner)
            except ExpressionError:
                pass
    return names


class _Substituter:
    """One substitution context: the flat variable map and, built on first need, the
    expression environment (so many strings can share one build)."""

    def __init__(self, ctx: Mapping[str, Any], strict: bool):
        self.ctx = ctx
        self.strict = strict
        self._env: Mapping[str, Any] | None = None
        self._keys: list[str] | None = None

    @property
    def env(self) -> Mapping[str, Any]:
        if self._env is None:
            self._env = expr.prepared_env(self.ctx)
        return self._env

    def run(self, text: str) -> str:
        if PREFIX not in text:
            return text
        tags, unclosed = _scan(text)
        if unclosed is not None:
            raise ExpressionError(f"unclosed template tag: '{{{{' at offset {unclosed} has no matching '}}}}'"
                                  f" in {_short(text)!r}")
        out: list[str] = []
        pos = 0
        for tag in tags:
            out.append(text[pos:tag.start])
            out.append(self.simple(tag) if tag.kind == "simple" else self.expression(tag))
            pos = tag.end
        out.append(text[pos:])
        return "".join(out)

    def simple(self, tag: Tag) -> str:
        name = tag.name
        if name in self.ctx:
            return _as_text(name, self.ctx[name])
        # Argo's nested-tag rule: in "{{a {{b}}" the inner "{{b" may resolve on its own
        nested_at = tag.inner.rfind(PREFIX)
        if nested_at > 0:
            nested = tag.inner[nested_at + 2:]
            if nested in self.ctx and isinstance(self.ctx[nested], str):
                return PREFIX + tag.inner[:nested_at] + self.ctx[nested]
        if self.strict:
            raise expr.UndefinedVariableError(name, f"failed to resolve {{{{{tag.inner}}}}}")
        return PREFIX + tag.inner + SUFFIX

    def _present(self, path: str) -> bool:
        """Whether a dotted path an expression reads exists in the flat map: as a key, as the
        prefix of keys ("inputs.parameters"), or under a key holding structured data."""
        if path in self.ctx:
            return True
        if self._keys is None:
            self._keys = sorted(self.ctx)
        i = bisect.bisect_left(self._keys, path + ".")
        if i < len(self._keys) and self._keys[i].startswith(path + "."):
            return True
        parts = path.split(".")
        return any(".".join(parts[:n]) in self.ctx for n in range(1, len(parts)))

    def expression(self, tag: Tag) -> str:
        if not self.strict:
            # Argo leaves an expression for a later phase when it reads a variable that is not
            # there yet, rather than letting `??` or `== nil` decide on incomplete data.
            try:
                names = expr.referenced_names(tag.inner)
            except ExpressionError:
                return PREFIX + "=" + tag.inner + SUFFIX
            if not all(self._present(n) for n in names):
                return PREFIX + "=" + tag.inner + SUFFIX
        try:
            return expr.evaluate_text(tag.inner, self.env)
        except ExpressionError as e:
            if self.strict:
                if isinstance(e, expr.UndefinedVariableError):
                    raise expr.UndefinedVariableError(
                        e.name, f"failed to evaluate {{{{={_short(tag.inner)}}}}}: {e}") from None
                raise ExpressionError(f"failed to evaluate {{{{={_short(tag.inner)}}}}}: {e}") from None
            return PREFIX + "=" + tag.inner + SUFFIX


def _as_text(name: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        raise ExpressionError(f"variable '{name}' has no value")
    return expr.format_result(value)


def substitute(text: str, ctx: Mapping[str, Any], *, strict: bool = True) -> str:
    """Replace the ``{{...}}`` tags in text in one pass (values are never re-scanned).

    ``ctx`` is Argo's flat variable map (``{"inputs.parameters.x": "1", "item": "a"}``).
    With ``strict`` an unresolved tag raises ExpressionError (UndefinedVariableError for
    a missing name); without it the tag is left as written.
    """
    return _Substituter(ctx, strict).run(text)


def substitute_all(value: Any, ctx: Mapping[str, Any], *, strict: bool = True) -> Any:
    """Substitute through a JSON-like structure: every string, and every dict key (Argo
    substitutes the JSON text of a template, keys included). Other values are kept.
    Returns a new structure; the input is not modified."""
    sub = _Substituter(ctx, strict)

    def walk(v: Any, depth: int) -> Any:
        if depth > 200:
            raise ExpressionError("structure nested too deeply to substitute")
        if isinstance(v, str):
            return sub.run(v)
        if isinstance(v, dict):
            return {(sub.run(k) if isinstance(k, str) else k): walk(x, depth + 1) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x, depth + 1) for x in v]
        if isinstance(v, tuple):
            return tuple(walk(x, depth + 1) for x in v)
        return v

    return walk(value, 0)
