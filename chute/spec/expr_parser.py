"""Parser for the expr-lang subset Argo uses in ``{{= ... }}`` tags.

Produces a small AST of tuples ``(kind, pos, *fields)`` that only
:mod:`chute.spec.expr_eval` walks. Precedences and associativity are expr-lang's
(``parser/operator/operator.go``): ``|`` 0, ``or ||`` 10, ``and &&`` 15, comparisons and
``in matches contains startsWith endsWith`` 20, ``..`` 25, ``+ -`` 30, ``* / %`` 60,
``** ^`` 100 (right associative), ``??`` 500; unary ``not !`` 50, ``- +`` 90; the ternary
``?:`` binds loosest. ``not in``, ``not matches`` etc. negate their operator.

Node kinds: lit, name, ptr, member, slice, call, builtin, closure, unary, binary, cond,
array, map. ``let`` declarations and ``if``/``else`` blocks of newer expr-lang are not
supported; method calls parse, but the evaluator only resolves the few whitelisted methods of
times and durations (``(now() - t).Seconds()``). The parser caps the tree at :data:`MAX_DEPTH` levels and
:data:`MAX_NODES` nodes so that no input can make evaluation expensive.
"""

from __future__ import annotations

from chute.errors import ExpressionError
from chute.spec.expr_lexer import Token, tokenize

MAX_DEPTH = 64
MAX_NODES = 1000

BINARY = {
    "|": (0, "L"), "or": (10, "L"), "||": (10, "L"), "and": (15, "L"), "&&": (15, "L"),
    "==": (20, "L"), "!=": (20, "L"), "<": (20, "L"), ">": (20, "L"), ">=": (20, "L"),
    "<=": (20, "L"), "in": (20, "L"), "matches": (20, "L"), "contains": (20, "L"),
    "startsWith": (20, "L"), "endsWith": (20, "L"), "..": (25, "L"), "+": (30, "L"),
    "-": (30, "L"), "*": (60, "L"), "/": (60, "L"), "%": (60, "L"), "**": (100, "R"),
    "^": (100, "R"), "??": (500, "L"),
}
UNARY = {"not": 50, "!": 50, "-": 90, "+": 90}
NEGATABLE = frozenset({"in", "matches", "contains", "startsWith", "endsWith"})

# Builtins whose second argument is a closure over `#` (expr-lang's predicate builtins).
PREDICATE_BUILTINS = frozenset({
    "all", "none", "any", "one", "filter", "map", "count", "sum", "find", "findIndex",
    "findLast", "findLastIndex", "groupBy", "sortBy", "reduce",
})


class _Parser:
    def __init__(self, source: str):
        self.source = source
        self.toks: list[Token] = tokenize(source)
        self.i = 0
        self.depth = 0
        self.nodes = 0
        self.closures = 0

    # -- helpers ---------------------------------------------------------------
    @property
    def cur(self) -> Token:
        return self.toks[self.i]

    def error(self, msg: str, tok: Token | None = None) -> ExpressionError:
        tok = tok or self.cur
        return ExpressionError(f"{msg} (at offset {tok.pos} in {self.source!r})"
                               if len(self.source) <= 200 else f"{msg} (at offset {tok.pos})")

    def is_op(self, *values: str) -> bool:
        t = self.cur
        return t.kind == "op" and t.value in values

    def expect(self, value: str) -> Token:
        if not self.is_op(value):
            got = "end of expression" if self.cur.kind == "eof" else repr(self.cur.value)
            raise self.error(f"expected {value!r}, got {got}")
        t = self.cur
        self.i += 1
        return t

    def node(self, *parts) -> tuple:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.error(f"expression has more than {MAX_NODES} nodes")
        return parts

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"expression nested deeper than {MAX_DEPTH} levels")

    # -- grammar ---------------------------------------------------------------
    def parse(self) -> tuple:
        if self.cur.kind == "eof":
            raise self.error("empty expression")
        tree = self.expression(0)
        if self.cur.kind != "eof":
            raise self.error(f"unexpected token {self.cur.value!r}")
        return tree

    def expression(self, min_prec: int) -> tuple:
        self.enter()
        try:
            left = self.unary()
            while True:
                t = self.cur
                if t.kind != "op":
                    break
                op = t.value
                negate = False
                if op == "not" and self.toks[self.i + 1].kind == "op" and self.toks[self.i + 1].value in NEGATABLE:
                    negate = True
                    op = self.toks[self.i + 1].value
                if op not in BINARY:
                    break
                prec, assoc = BINARY[op]
                if prec < min_prec:
                    break
                self.i += 2 if negate else 1
                if op == "|":
                    left = self.pipe(left, t)
                    continue
                right = self.expression(prec + 1 if assoc == "L" else prec)
                left = self.node("binary", t.pos, op, left, right)
                if negate:
                    left = self.node("unary", t.pos, "not", left)
            if min_prec == 0 and self.is_op("?"):
                q = self.cur
                self.i += 1
                then = self.expression(0)
                self.expect(":")
                other = self.expression(0)
                left = self.node("cond", q.pos, left, then, other)
            return left
        finally:
            self.depth -= 1

    def pipe(self, left: tuple, tok: Token) -> tuple:
        if self.cur.kind != "ident":
            raise self.error("expected a function call after |")
        name_tok = self.cur
        self.i += 1
        if not self.is_op("("):
            raise self.error("expected a function call after |")
        if name_tok.value in PREDICATE_BUILTINS:
            return self.builtin(name_tok, first=left)
        args = self.arguments()
        callee = self.node("name", name_tok.pos, name_tok.value)
        return self.node("call", tok.pos, callee, [left, *args])

    def unary(self) -> tuple:
        t = self.cur
        if t.kind == "op" and t.value in UNARY:
            self.i += 1
            self.enter()
            try:
                operand = self.expression(UNARY[t.value])
            finally:
                self.depth -= 1
            return self.node("unary", t.pos, t.value, operand)
        return self.postfix(self.primary())

    def primary(self) -> tuple:
        t = self.cur
        if t.kind == "num" or t.kind == "str":
            self.i += 1
            return self.node("lit", t.pos, t.value)
        if t.kind == "ptr":
            self.i += 1
            if self.closures == 0:
                raise self.error(f"{t.value} used outside of a closure", t)
            if t.value not in ("#", "#index", "#acc"):
                raise self.error(f"unknown pointer {t.value}", t)
            return self.node("ptr", t.pos, t.value)
        if t.kind == "ident":
            self.i += 1
            if t.value in ("true", "false"):
                return self.node("lit", t.pos, t.value == "true")
            if t.value == "nil":
                return self.node("lit", t.pos, None)
            if self.is_op("("):
                if t.value in PREDICATE_BUILTINS:
                    return self.builtin(t)
                args = self.arguments()
                return self.node("call", t.pos, self.node("name", t.pos, t.value), args)
            return self.node("name", t.pos, t.value)
        if t.kind == "op":
            if t.value == "(":
                self.i += 1
                inner = self.expression(0)
                self.expect(")")
                return inner
            if t.value == "[":
                return self.array()
            if t.value == "{":
                return self.mapping()
            if t.value == "." and self.closures > 0 and self.toks[self.i + 1].kind in ("ident", "op"):
                # `.field` inside a closure is `#.field`
                self.i += 1
                name = self.member_name()
                base = self.node("ptr", t.pos, "#")
                return self.node("member", t.pos, base, self.node("lit", t.pos, name), False)
        if t.kind == "eof":
            raise self.error("unexpected end of expression")
        raise self.error(f"unexpected token {t.value!r}")

    def member_name(self) -> str:
        t = self.cur
        if t.kind == "ident" or (t.kind == "op" and isinstance(t.value, str) and t.value.isalpha()):
            self.i += 1
            return t.value
        raise self.error("expected a field name after '.'")

    def postfix(self, node: tuple) -> tuple:
        while True:
            t = self.cur
            if t.kind != "op":
                return node
            if t.value in (".", "?."):
                optional = t.value == "?."
                self.i += 1
                if optional and self.is_op("["):
                    node = self.index(node, optional=True)
                    continue
                name = self.member_name()
                node = self.node("member", t.pos, node, self.node("lit", t.pos, name), optional)
                if self.is_op("("):
                    node = self.node("call", t.pos, node, self.arguments())
            elif t.value == "[":
                node = self.index(node, optional=False)
            elif t.value == "(" and node[0] in ("member", "call"):
                node = self.node("call", t.pos, node, self.arguments())
            else:
                return node

    def index(self, node: tuple, optional: bool) -> tuple:
        t = self.expect("[")
        self.enter()
        try:
            if self.is_op(":"):
                self.i += 1
                hi = None if self.is_op("]") else self.expression(0)
                self.expect("]")
                return self.node("slice", t.pos, node, None, hi)
            key = self.expression(0)
            if self.is_op(":"):
                self.i += 1
                hi = None if self.is_op("]") else self.expression(0)
                self.expect("]")
                return self.node("slice", t.pos, node, key, hi)
            self.expect("]")
            return self.node("member", t.pos, node, key, optional)
        finally:
            self.depth -= 1

    def arguments(self) -> list[tuple]:
        self.expect("(")
        args: list[tuple] = []
        while not self.is_op(")"):
            args.append(self.expression(0))
            if not self.is_op(")"):
                self.expect(",")
        self.expect(")")
        return args

    def builtin(self, name_tok: Token, first: tuple | None = None) -> tuple:
        self.expect("(")
        args: list[tuple] = []
        if first is not None:
            args.append(first)
            if not self.is_op(")"):
                args.append(self.closure())
        else:
            args.append(self.expression(0))
            if self.is_op(","):
                self.i += 1
                args.append(self.closure())
        if len(args) > 1:
            while self.is_op(","):
                self.i += 1
                if self.is_op(")"):
                    break
                args.append(self.expression(0))
        self.expect(")")
        return self.node("builtin", name_tok.pos, name_tok.value, args)

    def closure(self) -> tuple:
        t = self.cur
        braced = self.is_op("{")
        if braced:
            self.i += 1
        self.closures += 1
        try:
            body = self.expression(0)
        finally:
            self.closures -= 1
        if braced:
            self.expect("}")
        return self.node("closure", t.pos, body)

    def array(self) -> tuple:
        t = self.expect("[")
        self.enter()
        try:
            items: list[tuple] = []
            while not self.is_op("]"):
                items.append(self.expression(0))
                if not self.is_op("]"):
                    self.expect(",")
            self.expect("]")
            return self.node("array", t.pos, items)
        finally:
            self.depth -= 1

    def mapping(self) -> tuple:
        t = self.expect("{")
        self.enter()
        try:
            pairs: list[tuple[tuple, tuple]] = []
            while not self.is_op("}"):
                k = self.cur
                if k.kind in ("ident", "str") or (k.kind == "op" and str(k.value).isalpha()) or k.kind == "num":
                    self.i += 1
                    key = self.node("lit", k.pos, k.value)
                elif self.is_op("("):
                    self.i += 1
                    key = self.expression(0)
                    self.expect(")")
                else:
                    raise self.error("a map key must be a name, a string, a number or (expression)")
                self.expect(":")
                pairs.append((key, self.expression(0)))
                if not self.is_op("}"):
                    self.expect(",")
            self.expect("}")
            return self.node("map", t.pos, pairs)
        finally:
            self.depth -= 1


def parse(source: str) -> tuple:
    """Parse expression source into an AST, raising ExpressionError with the offset."""
    return _Parser(source).parse()
