"""Parse ``$filter``, ``$orderby`` and ``$select`` text of both protocol dialects into the AST.

A recursive-descent parser with the OData operator precedence, loosest first::

    or  <  and  <  eq ne gt ge lt le  <  add sub  <  mul div mod  <  not, -  <  in  <  primary

``and``/``or`` chains are built balanced (see :func:`~tablesync.odata.ast.balanced`); the other
binary operators associate to the left. Operator and keyword names are case-insensitive,
property names are kept as written. Every error is an :class:`ODataSyntaxError` that says what
was expected and carries the 0-based position where it went wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .._exceptions import ODataSyntaxError
from ._casts import cast_literal
from ._lexer import OPERATOR_WORDS, Token, TokenKind, tokenize
from .ast import _IDENTIFIER as _SELECT_NAME  # the one identifier rule Member enforces
from .ast import (
    FUNCTIONS,
    Binary,
    BinaryOp,
    Call,
    Expr,
    In,
    Literal,
    Member,
    OrderBy,
    Unary,
    UnaryOp,
    balanced,
)

__all__ = ["parse_filter", "parse_orderby", "parse_select"]

_COMPARISON = {op.value: op for op in BinaryOp if op.is_comparison}
_ADDITIVE = {"add": BinaryOp.ADD, "sub": BinaryOp.SUB}
_MULTIPLICATIVE = {"mul": BinaryOp.MUL, "div": BinaryOp.DIV, "mod": BinaryOp.MOD}
_EXPECTED_OPERATOR = "an operator (eq, ne, gt, ge, lt, le, and, or, add, sub, mul, div, mod, in)"
_EXPECTED_VALUE = "a value (a property, a literal, a function call or '(')"


@dataclass(frozen=True, slots=True)
class _Node:
    """A parsed expression with its tree height, so depth limits cost nothing to check."""

    expr: Expr
    height: int


def parse_filter(text: str, *, max_length: int = 4096, max_depth: int = 32) -> Expr:
    """Parse a ``$filter`` expression (v2 and v3 dialects alike) into an :data:`Expr`.

    ``substringof('x', f)`` becomes ``Call('contains', (f, 'x'))``; ``datetime'…'``,
    ``datetimeoffset'…'`` and ``cast(…,Edm.DateTimeOffset)`` become datetime literals.

    Args:
        text: the expression, already percent-decoded.
        max_length: the longest text accepted, in characters.
        max_depth: the deepest expression tree (and parenthesis nesting) accepted.

    Raises:
        ODataSyntaxError: when the text is malformed, too long or nested too deeply.
    """
    parser = _Parser(text, max_length=max_length, max_depth=max_depth)
    node = parser.expression(0)
    parser.expect_end()
    return node.expr


def parse_orderby(text: str, *, max_terms: int = 16) -> tuple[OrderBy, ...]:
    """Parse an ``$orderby`` list such as ``title desc, year`` (expressions are allowed).

    Raises:
        ODataSyntaxError: when the text is malformed or has more than ``max_terms`` terms.
    """
    parser = _Parser(text)
    terms: list[OrderBy] = []
    while True:
        start = parser.peek()
        if len(terms) == max_terms:
            raise parser.error(f"too many $orderby terms (at most {max_terms})", start)
        expr = parser.expression(0).expr
        descending = parser.direction()
        terms.append(OrderBy(expr, descending=descending))
        if not parser.accept(TokenKind.COMMA):
            break
    parser.expect_end()
    return tuple(terms)


def parse_select(text: str) -> tuple[str, ...]:
    """Parse a ``$select`` list of property names; ``*`` or an empty text selects everything.

    Repeated names are kept once, in their first position.

    Raises:
        ODataSyntaxError: when a name is malformed.
    """
    if text.strip() in ("", "*"):
        return ()
    names: list[str] = []
    position = 0
    for part in text.split(","):
        name = part.strip()
        if not _SELECT_NAME.fullmatch(name):
            where = position + len(part) - len(part.lstrip())
            raise ODataSyntaxError(
                f"expected a property name in $select, found {name!r}", text=text, position=where
            )
        if name not in names:
            names.append(name)
        position += len(part) + 1
    return tuple(names)


class _Parser:
    def __init__(self, text: str, *, max_length: int = 4096, max_depth: int = 32) -> None:
        if not isinstance(text, str):
            raise ODataSyntaxError(f"expected text, got {type(text).__name__}")
        if len(text) > max_length:
            message = f"the expression is longer than {max_length} characters"
            raise ODataSyntaxError(message, text=text, position=max_length)
        self.text = text
        self.max_depth = max_depth
        self.tokens = tokenize(text)
        self.index = 0
        if self.tokens[0].kind is TokenKind.END:
            raise self.error("expected an expression, found an empty text", self.tokens[0])

    # -- token helpers -------------------------------------------------------------------

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.index + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        token = self.peek()
        self.index += 1
        return token

    def accept(self, kind: TokenKind) -> bool:
        if self.peek().kind is kind:
            self.index += 1
            return True
        return False

    def expect(self, kind: TokenKind, context: str) -> Token:
        token = self.peek()
        if token.kind is not kind:
            raise self.error(f"expected {kind.value} {context}, found {token.describe()}", token)
        return self.advance()

    def expect_end(self) -> None:
        token = self.peek()
        if token.kind is not TokenKind.END:
            raise self.error(f"expected {_EXPECTED_OPERATOR}, found {token.describe()}", token)

    def error(self, message: str, token: Token) -> ODataSyntaxError:
        return ODataSyntaxError(message, text=self.text, position=token.position)

    def word(self, words: dict[str, BinaryOp]) -> BinaryOp | None:
        token = self.peek()
        if token.kind is TokenKind.NAME:
            return words.get(token.text.lower())
        return None

    def is_word(self, word: str, token: Token | None = None) -> bool:
        token = token or self.peek()
        return token.kind is TokenKind.NAME and token.text.lower() == word

    def direction(self) -> bool:
        if self.is_word("desc"):
            self.advance()
            return True
        if self.is_word("asc"):
            self.advance()
        return False

    # -- depth -----------------------------------------------------------------------------

    def check_depth(self, depth: int, token: Token) -> None:
        if depth > self.max_depth:
            message = f"the expression is nested too deeply (more than {self.max_depth} levels)"
            raise self.error(message, token)

    def node(self, expr: Expr, height: int, token: Token) -> _Node:
        self.check_depth(height, token)
        return _Node(expr, height)

    # -- grammar -------------------------------------------------------------------------

    def expression(self, depth: int) -> _Node:
        """``or`` chain: the loosest level."""
        return self.chain(BinaryOp.OR, depth, self.conjunction)

    def conjunction(self, depth: int) -> _Node:
        return self.chain(BinaryOp.AND, depth, self.comparison)

    def chain(self, op: BinaryOp, depth: int, operand: Callable[[int], _Node]) -> _Node:
        first = self.peek()
        items = [operand(depth)]
        while self.is_word(op.value):
            self.advance()
            items.append(operand(depth))
        if len(items) == 1:
            return items[0]
        # A balanced tree of n leaves is ceil(log2 n) levels above its deepest leaf.
        height = max(item.height for item in items) + (len(items) - 1).bit_length()
        return self.node(balanced(op, [item.expr for item in items]), height, first)

    def comparison(self, depth: int) -> _Node:
        return self.left_assoc(_COMPARISON, depth, self.additive)

    def additive(self, depth: int) -> _Node:
        return self.left_assoc(_ADDITIVE, depth, self.multiplicative)

    def multiplicative(self, depth: int) -> _Node:
        return self.left_assoc(_MULTIPLICATIVE, depth, self.unary)

    def left_assoc(
        self, words: dict[str, BinaryOp], depth: int, operand: Callable[[int], _Node]
    ) -> _Node:
        left = operand(depth)
        while (op := self.word(words)) is not None:
            token = self.advance()
            right = operand(depth)
            height = 1 + max(left.height, right.height)
            left = self.node(Binary(op, left.expr, right.expr), height, token)
        return left

    def unary(self, depth: int) -> _Node:
        token = self.peek()
        if self.is_word("not") or token.kind is TokenKind.MINUS:
            self.check_depth(depth + 1, token)
            self.advance()
            op = UnaryOp.NOT if token.kind is TokenKind.NAME else UnaryOp.NEG
            operand = self.unary(depth + 1)
            return self.node(Unary(op, operand.expr), operand.height + 1, token)
        return self.postfix(depth)

    def postfix(self, depth: int) -> _Node:
        operand = self.primary(depth)
        if not self.is_word("in"):
            return operand
        token = self.advance()
        open_paren = self.expect(TokenKind.LPAREN, "after 'in'")
        values = self.arguments(depth, open_paren, "the 'in' list")
        if not values:
            raise self.error("expected at least one value in the 'in' list", open_paren)
        height = 1 + max(operand.height, *(value.height for value in values))
        return self.node(In(operand.expr, tuple(v.expr for v in values)), height, token)

    def primary(self, depth: int) -> _Node:
        token = self.peek()
        if token.kind is TokenKind.LITERAL:
            self.advance()
            assert token.literal is not None
            return _Node(token.literal, 1)
        if token.kind is TokenKind.LPAREN:
            self.check_depth(depth + 1, token)
            self.advance()
            inner = self.expression(depth + 1)
            self.expect(TokenKind.RPAREN, f"to close the '(' at position {token.position}")
            return inner
        if token.kind is TokenKind.NAME:
            return self.name(depth, token)
        raise self.error(f"expected {_EXPECTED_VALUE}, found {token.describe()}", token)

    def name(self, depth: int, token: Token) -> _Node:
        if self.peek(1).kind is TokenKind.LPAREN:
            return self.call(depth, token)
        if token.text.lower() in OPERATOR_WORDS:
            raise self.error(
                f"expected {_EXPECTED_VALUE}, found the operator {token.text!r}", token
            )
        if "." in token.text:
            raise self.error(
                f"qualified names such as {token.text!r} are only allowed in cast()", token
            )
        self.advance()
        return _Node(Member(token.text), 1)

    def call(self, depth: int, name_token: Token) -> _Node:
        self.check_depth(depth + 1, name_token)
        name = name_token.text.lower()
        if name == "cast":
            return self.cast(depth, name_token)
        if name not in FUNCTIONS and name != "substringof":
            raise self.error(f"unknown function {name_token.text!r}", name_token)
        self.advance()
        open_paren = self.advance()
        args = self.arguments(depth, open_paren, f"the arguments of {name}()")
        exprs = tuple(arg.expr for arg in args)
        height = 1 + max((arg.height for arg in args), default=0)
        if name == "substringof":
            # v2 substringof(needle, haystack) is v3 contains(haystack, needle).
            self.check_arity(name_token, "substringof", len(exprs), 2, 2)
            return self.node(Call("contains", (exprs[1], exprs[0])), height, name_token)
        spec = FUNCTIONS[name]
        self.check_arity(name_token, name, len(exprs), spec.min_args, spec.max_args)
        return self.node(Call(name, exprs), height, name_token)

    def check_arity(self, token: Token, name: str, count: int, low: int, high: int) -> None:
        if not low <= count <= high:
            wanted = f"{low}" if low == high else f"{low} or {high}"
            plural = "" if high == 1 else "s"
            raise self.error(f"{name}() takes {wanted} argument{plural}, got {count}", token)

    def arguments(self, depth: int, open_paren: Token, what: str) -> list[_Node]:
        args: list[_Node] = []
        if self.accept(TokenKind.RPAREN):
            return args
        while True:
            args.append(self.expression(depth + 1))
            if self.accept(TokenKind.RPAREN):
                return args
            token = self.peek()
            if token.kind is not TokenKind.COMMA:
                message = f"expected ',' or ')' in {what} opened at position {open_paren.position}"
                raise self.error(f"{message}, found {token.describe()}", token)
            self.advance()

    def cast(self, depth: int, name_token: Token) -> _Node:
        self.advance()
        self.expect(TokenKind.LPAREN, "after 'cast'")
        value_token = self.peek()
        value = self.expression(depth + 1)
        self.expect(TokenKind.COMMA, "and a type name in cast(value, Edm.Type)")
        type_token = self.expect(TokenKind.NAME, "(a type such as Edm.DateTimeOffset) in cast()")
        self.expect(TokenKind.RPAREN, "to close cast(")
        if not isinstance(value.expr, Literal):
            raise self.error("cast() is supported only for literal values", value_token)
        try:
            return _Node(cast_literal(value.expr, type_token.text), 1)
        except ValueError as exc:
            raise self.error(str(exc), value_token) from None
