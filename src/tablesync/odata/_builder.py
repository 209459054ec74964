"""A Python-operator builder for filters: ``(F.rating == "PG") & (F.year > 2000)``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NoReturn

from .._exceptions import QueryError
from .ast import (
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

__all__ = ["F", "Term"]

_EXPR_TYPES = (Literal, Member, Unary, Binary, Call, In)


def as_expr(value: Any) -> Expr:
    """Turn a :class:`Term`, an AST node or a plain Python value into an :data:`Expr`.

    Raises:
        QueryError: when the value has no OData form.
    """
    if isinstance(value, Term):
        return value.expr
    if isinstance(value, _EXPR_TYPES):
        return value
    return Literal.of(value)


class Term:
    """An expression under construction; Python operators build bigger ones.

    Comparisons (``==``, ``!=``, ``<`` ...) give conditions; ``&``, ``|`` and ``~`` combine
    them (Python's ``and``/``or``/``not`` cannot be overloaded, so a :class:`Term` refuses to
    be used as a ``bool``). ``+ - * / %`` are OData ``add sub mul div mod``. ``== None``
    tests for null.
    """

    __slots__ = ("expr",)
    __hash__ = None  # type: ignore[assignment]  # == builds an expression, so no hashing

    def __init__(self, expr: Expr) -> None:
        self.expr: Expr = expr
        """The AST node built so far."""

    def __repr__(self) -> str:
        return f"Term({self.expr!r})"

    def __bool__(self) -> NoReturn:
        raise TypeError("use & | ~ to combine conditions, not and / or / not")

    def _binary(self, op: BinaryOp, other: Any, *, reflected: bool = False) -> Term:
        left, right = self.expr, as_expr(other)
        if reflected:
            left, right = right, left
        return Term(Binary(op, left, right))

    def __eq__(self, other: object) -> Term:  # type: ignore[override]
        return self._binary(BinaryOp.EQ, other)

    def __ne__(self, other: object) -> Term:  # type: ignore[override]
        return self._binary(BinaryOp.NE, other)

    def __gt__(self, other: Any) -> Term:
        return self._binary(BinaryOp.GT, other)

    def __ge__(self, other: Any) -> Term:
        return self._binary(BinaryOp.GE, other)

    def __lt__(self, other: Any) -> Term:
        return self._binary(BinaryOp.LT, other)

    def __le__(self, other: Any) -> Term:
        return self._binary(BinaryOp.LE, other)

    def __and__(self, other: Any) -> Term:
        return Term(balanced(BinaryOp.AND, [self.expr, as_expr(other)]))

    def __rand__(self, other: Any) -> Term:
        return Term(balanced(BinaryOp.AND, [as_expr(other), self.expr]))

    def __or__(self, other: Any) -> Term:
        return Term(balanced(BinaryOp.OR, [self.expr, as_expr(other)]))

    def __ror__(self, other: Any) -> Term:
        return Term(balanced(BinaryOp.OR, [as_expr(other), self.expr]))

    def __invert__(self) -> Term:
        return Term(Unary(UnaryOp.NOT, self.expr))

    def __neg__(self) -> Term:
        return Term(Unary(UnaryOp.NEG, self.expr))

    def __add__(self, other: Any) -> Term:
        return self._binary(BinaryOp.ADD, other)

    def __radd__(self, other: Any) -> Term:
        return self._binary(BinaryOp.ADD, other, reflected=True)

    def __sub__(self, other: Any) -> Term:
        return self._binary(BinaryOp.SUB, other)

    def __rsub__(self, other: Any) -> Term:
        return self._binary(BinaryOp.SUB, other, reflected=True)

    def __mul__(self, other: Any) -> Term:
        return self._binary(BinaryOp.MUL, other)

    def __rmul__(self, other: Any) -> Term:
        return self._binary(BinaryOp.MUL, other, reflected=True)

    def __truediv__(self, other: Any) -> Term:
        return self._binary(BinaryOp.DIV, other)

    def __rtruediv__(self, other: Any) -> Term:
        return self._binary(BinaryOp.DIV, other, reflected=True)

    def __mod__(self, other: Any) -> Term:
        return self._binary(BinaryOp.MOD, other)

    def __rmod__(self, other: Any) -> Term:
        return self._binary(BinaryOp.MOD, other, reflected=True)

    def _call(self, name: str, *args: Any) -> Term:
        return Term(Call(name, (self.expr, *(as_expr(arg) for arg in args))))

    def contains(self, text: Any) -> Term:
        """``contains(self, text)`` (``substringof`` in v2)."""
        return self._call("contains", text)

    def startswith(self, prefix: Any) -> Term:
        """``startswith(self, prefix)``."""
        return self._call("startswith", prefix)

    def endswith(self, suffix: Any) -> Term:
        """``endswith(self, suffix)``."""
        return self._call("endswith", suffix)

    def tolower(self) -> Term:
        """``tolower(self)``."""
        return self._call("tolower")

    def toupper(self) -> Term:
        """``toupper(self)``."""
        return self._call("toupper")

    def trim(self) -> Term:
        """``trim(self)``."""
        return self._call("trim")

    def length(self) -> Term:
        """``length(self)``."""
        return self._call("length")

    def indexof(self, text: Any) -> Term:
        """``indexof(self, text)``: the 0-based position of ``text``, or -1."""
        return self._call("indexof", text)

    def substring(self, start: Any, length: Any = None) -> Term:
        """``substring(self, start[, length])`` with a 0-based ``start``."""
        if length is None:
            return self._call("substring", start)
        return self._call("substring", start, length)

    def concat(self, other: Any) -> Term:
        """``concat(self, other)``."""
        return self._call("concat", other)

    def replace(self, find: Any, replacement: Any) -> Term:
        """``replace(self, find, replacement)``."""
        return self._call("replace", find, replacement)

    def year(self) -> Term:
        """``year(self)`` (UTC)."""
        return self._call("year")

    def month(self) -> Term:
        """``month(self)`` (UTC)."""
        return self._call("month")

    def day(self) -> Term:
        """``day(self)`` (UTC)."""
        return self._call("day")

    def hour(self) -> Term:
        """``hour(self)`` (UTC)."""
        return self._call("hour")

    def minute(self) -> Term:
        """``minute(self)``."""
        return self._call("minute")

    def second(self) -> Term:
        """``second(self)``."""
        return self._call("second")

    def date(self) -> Term:
        """``date(self)``: the UTC calendar date."""
        return self._call("date")

    def time(self) -> Term:
        """``time(self)``: the UTC time of day."""
        return self._call("time")

    def round(self) -> Term:
        """``round(self)``: halves round away from zero."""
        return self._call("round")

    def floor(self) -> Term:
        """``floor(self)``."""
        return self._call("floor")

    def ceiling(self) -> Term:
        """``ceiling(self)``."""
        return self._call("ceiling")

    def in_(self, values: Iterable[Any]) -> Term:
        """``self in (v1, v2, ...)``.

        Raises:
            QueryError: when ``values`` is empty or a single string (a likely mistake).
        """
        if isinstance(values, str | bytes):
            raise QueryError("in_() takes a list of values, not a single string")
        return Term(In(self.expr, tuple(as_expr(value) for value in values)))

    def asc(self) -> OrderBy:
        """An ascending ``$orderby`` term."""
        return OrderBy(self.expr)

    def desc(self) -> OrderBy:
        """A descending ``$orderby`` term."""
        return OrderBy(self.expr, descending=True)


class _FieldFactory:
    """``F.name`` and ``F("name")`` make a member reference."""

    __slots__ = ()

    def __call__(self, name: str) -> Term:
        return Term(Member(name))

    def __getattr__(self, name: str) -> Term:
        if name.startswith("__"):
            raise AttributeError(name)
        return Term(Member(name))

    def __repr__(self) -> str:
        return "F"


F = _FieldFactory()
"""The entry point of the builder: ``F.rating == "PG"``, ``F("year") > 2000``."""
