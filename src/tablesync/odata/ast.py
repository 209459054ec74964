"""The OData filter AST: small frozen value types shared by the parser, printer and compilers.

A parsed ``$filter`` is an :data:`Expr`, a tree of :class:`Literal`, :class:`Member`,
:class:`Unary`, :class:`Binary`, :class:`Call` and :class:`In` nodes. Both protocol dialects
parse into the same tree: ``substringof('x', f)`` (v2) becomes ``Call('contains', (f, 'x'))``
(v3), and ``datetimeoffset'…'`` and ``cast(…,Edm.DateTimeOffset)`` both become a
:class:`Literal` of kind :attr:`LiteralKind.DATETIME`, so compilers handle one form.

Operators live in one table each (:class:`BinaryOp`, :class:`UnaryOp`) and the canonical
functions in :data:`FUNCTIONS`, which records their arity and result type.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import math
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from .._exceptions import QueryError

__all__ = [
    "Binary",
    "BinaryOp",
    "Call",
    "EdmType",
    "Expr",
    "FUNCTIONS",
    "FunctionSpec",
    "In",
    "Literal",
    "LiteralKind",
    "Member",
    "OrderBy",
    "Unary",
    "UnaryOp",
    "balanced",
    "chain_operands",
]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class LiteralKind(enum.Enum):
    """The type of a :class:`Literal`, with the Python type of its value."""

    NULL = "null"
    """``null``; the value is ``None``."""
    BOOL = "bool"
    """``true`` / ``false``; a ``bool``."""
    INT = "int"
    """An integer such as ``42`` or ``42L``; an ``int``."""
    DECIMAL = "decimal"
    """A number with a fraction such as ``60.0`` or ``1.5m``; a ``decimal.Decimal``."""
    FLOAT = "float"
    """A double with an exponent or suffix such as ``1e3`` or ``1.5d``; a finite ``float``."""
    STRING = "string"
    """A quoted string; a ``str``."""
    DATETIME = "datetime"
    """A point in time; an aware UTC ``datetime`` truncated to milliseconds."""
    DATE = "date"
    """A calendar date (``Edm.Date``); a ``datetime.date``."""
    GUID = "guid"
    """A GUID (``guid'…'`` or ``Edm.Guid``); a ``uuid.UUID``."""
    TIME = "time"
    """A time of day (``Edm.TimeOfDay``); a naive ``datetime.time``."""


_VALUE_TYPES: dict[LiteralKind, tuple[type, ...]] = {
    LiteralKind.NULL: (type(None),),
    LiteralKind.BOOL: (bool,),
    LiteralKind.INT: (int,),
    LiteralKind.DECIMAL: (decimal.Decimal,),
    LiteralKind.FLOAT: (float,),
    LiteralKind.STRING: (str,),
    LiteralKind.DATETIME: (dt.datetime,),
    LiteralKind.DATE: (dt.date,),
    LiteralKind.GUID: (uuid.UUID,),
    LiteralKind.TIME: (dt.time,),
}


class EdmType(enum.Enum):
    """The static type of an expression, as far as the compilers need to know it."""

    NULL = "null"
    BOOL = "bool"
    INT = "int"
    DECIMAL = "decimal"
    FLOAT = "float"
    STRING = "string"
    DATETIME = "datetime"
    DATE = "date"
    GUID = "guid"
    TIME = "time"
    ANY = "any"
    """Unknown until run time (a JSON value, or a member of a schemaless local item)."""

    @property
    def is_numeric(self) -> bool:
        """Whether arithmetic applies to values of this type."""
        return self in (EdmType.INT, EdmType.DECIMAL, EdmType.FLOAT)


class UnaryOp(enum.Enum):
    """Prefix operators."""

    NOT = "not"
    """Logical negation."""
    NEG = "-"
    """Arithmetic negation."""


class BinaryOp(enum.Enum):
    """Infix operators, with their OData keyword as the value."""

    OR = "or"
    AND = "and"
    EQ = "eq"
    NE = "ne"
    GT = "gt"
    GE = "ge"
    LT = "lt"
    LE = "le"
    ADD = "add"
    SUB = "sub"
    MUL = "mul"
    DIV = "div"
    MOD = "mod"

    @property
    def precedence(self) -> int:
        """Binding strength: higher binds tighter (OData: or < and < compare < add < mul)."""
        return _PRECEDENCE[self]

    @property
    def is_logical(self) -> bool:
        """``and`` / ``or``."""
        return self in (BinaryOp.AND, BinaryOp.OR)

    @property
    def is_comparison(self) -> bool:
        """``eq ne gt ge lt le``."""
        return _PRECEDENCE[self] == COMPARISON_PRECEDENCE

    @property
    def is_arithmetic(self) -> bool:
        """``add sub mul div mod``."""
        return _PRECEDENCE[self] > COMPARISON_PRECEDENCE


#: The precedence of ``eq``, ``ne``, ``gt`` ... and of ``in``.
COMPARISON_PRECEDENCE = 3

_PRECEDENCE: dict[BinaryOp, int] = {
    BinaryOp.OR: 1,
    BinaryOp.AND: 2,
    **dict.fromkeys(
        (BinaryOp.EQ, BinaryOp.NE, BinaryOp.GT, BinaryOp.GE, BinaryOp.LT, BinaryOp.LE),
        COMPARISON_PRECEDENCE,
    ),
    BinaryOp.ADD: 4,
    BinaryOp.SUB: 4,
    BinaryOp.MUL: 5,
    BinaryOp.DIV: 5,
    BinaryOp.MOD: 5,
}


@dataclass(frozen=True, slots=True)
class Literal:
    """A constant value such as ``'PG'``, ``42``, ``null`` or a date.

    The constructor checks that ``value`` suits ``kind`` and normalises datetimes to aware UTC
    at millisecond precision (the protocol's precision), so equal instants compare equal.
    """

    value: Any
    """The Python value; its type depends on :attr:`kind`."""
    kind: LiteralKind
    """The literal's OData type."""

    def __post_init__(self) -> None:
        _check_literal(self)

    @classmethod
    def of(cls, value: Any) -> Literal:
        """Make a literal from a Python value, inferring its kind.

        Raises:
            QueryError: when the value has no OData literal form.
        """
        return cls(value, kind_of(value))


def kind_of(value: Any) -> LiteralKind:
    """The :class:`LiteralKind` of a Python value (``bool`` before ``int``, ``datetime`` first).

    Raises:
        QueryError: when the value has no OData literal form.
    """
    if value is None:
        return LiteralKind.NULL
    for kind, types in _VALUE_TYPES.items():
        # The dict order matters: bool is an int and datetime is a date.
        if kind is not LiteralKind.NULL and isinstance(value, types):
            return kind
    raise QueryError(f"{type(value).__name__} values cannot be used in a query: {value!r}")


def _check_literal(node: Literal) -> None:
    kind, value = node.kind, node.value
    if not isinstance(kind, LiteralKind):
        raise QueryError(f"literal kind must be a LiteralKind, not {kind!r}")
    if kind_of(value) is not kind:
        raise QueryError(f"{value!r} is not a valid {kind.value} literal")
    if kind is LiteralKind.FLOAT and not math.isfinite(value):
        raise QueryError(f"{value!r} is not a finite number")
    if kind is LiteralKind.DECIMAL and not value.is_finite():
        raise QueryError(f"{value!r} is not a finite number")
    if kind is LiteralKind.DATETIME:
        object.__setattr__(node, "value", _normalise_datetime(value))
    if kind is LiteralKind.TIME and value.tzinfo is not None:
        raise QueryError(f"a time-of-day literal has no time zone: {value!r}")


def _normalise_datetime(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        raise QueryError(f"datetime literals must be timezone-aware: {value!r}")
    value = value.astimezone(dt.UTC)
    return value.replace(microsecond=value.microsecond - value.microsecond % 1000)


@dataclass(frozen=True, slots=True)
class Member:
    """A reference to a property (column) of the item, such as ``title``."""

    name: str
    """The property name as written in the query."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _IDENTIFIER.fullmatch(self.name):
            raise QueryError(f"{self.name!r} is not a valid property name")


@dataclass(frozen=True, slots=True)
class Unary:
    """A prefix operator applied to one operand: ``not x`` or ``-x``."""

    op: UnaryOp
    """The operator."""
    operand: Expr
    """The expression it applies to."""


@dataclass(frozen=True, slots=True)
class Binary:
    """An infix operator applied to two operands, such as ``rating eq 'PG'``."""

    op: BinaryOp
    """The operator."""
    left: Expr
    """The left operand."""
    right: Expr
    """The right operand."""


@dataclass(frozen=True, slots=True)
class Call:
    """A canonical function call such as ``tolower(title)``; names are lower case."""

    name: str
    """The function name, one of :data:`FUNCTIONS`."""
    args: tuple[Expr, ...]
    """The arguments, in order."""

    def __post_init__(self) -> None:
        spec = FUNCTIONS.get(self.name)
        if spec is None:
            raise QueryError(f"unknown function {self.name!r}")
        if not isinstance(self.args, tuple):
            object.__setattr__(self, "args", tuple(self.args))
        if not spec.min_args <= len(self.args) <= spec.max_args:
            raise QueryError(f"{self.name}() takes {spec.arity_text}, got {len(self.args)}")


@dataclass(frozen=True, slots=True)
class In:
    """A membership test: ``rating in ('R', 'PG')``."""

    operand: Expr
    """The value tested."""
    values: tuple[Expr, ...]
    """The candidates; never empty."""

    def __post_init__(self) -> None:
        if not isinstance(self.values, tuple):
            object.__setattr__(self, "values", tuple(self.values))
        if not self.values:
            raise QueryError("'in' needs at least one value")


Expr: TypeAlias = Literal | Member | Unary | Binary | Call | In
"""Any filter expression node."""


@dataclass(frozen=True, slots=True, init=False)
class OrderBy:
    """One ``$orderby`` term: an expression (usually a member) and a direction."""

    expr: Expr
    """What to sort by; a plain string given to the constructor becomes a :class:`Member`."""
    descending: bool
    """Sort from the largest value down."""

    def __init__(self, expr: Expr | str, descending: bool = False) -> None:
        object.__setattr__(self, "expr", Member(expr) if isinstance(expr, str) else expr)
        object.__setattr__(self, "descending", bool(descending))


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """What the compilers need to know about a canonical function."""

    min_args: int
    """The fewest arguments it takes."""
    max_args: int
    """The most arguments it takes."""
    params: tuple[EdmType, ...]
    """The expected type of each argument (the last repeats for extra arguments)."""
    result: EdmType
    """The type it returns; ``ANY`` means "the type of its first argument"."""

    @property
    def arity_text(self) -> str:
        """``"1 argument"``, ``"2 or 3 arguments"`` ..."""
        if self.min_args == self.max_args:
            plural = "" if self.min_args == 1 else "s"
            return f"{self.min_args} argument{plural}"
        return f"{self.min_args} or {self.max_args} arguments"


def _spec(params: tuple[EdmType, ...], result: EdmType, optional: int = 0) -> FunctionSpec:
    return FunctionSpec(len(params) - optional, len(params), params, result)


_S, _I, _B, _T, _N = EdmType.STRING, EdmType.INT, EdmType.BOOL, EdmType.DATETIME, EdmType.FLOAT

#: The canonical functions tablesync supports, by (lower-case) name.
FUNCTIONS: dict[str, FunctionSpec] = {
    "contains": _spec((_S, _S), _B),
    "startswith": _spec((_S, _S), _B),
    "endswith": _spec((_S, _S), _B),
    "tolower": _spec((_S,), _S),
    "toupper": _spec((_S,), _S),
    "trim": _spec((_S,), _S),
    "length": _spec((_S,), _I),
    "indexof": _spec((_S, _S), _I),
    "substring": _spec((_S, _I, _I), _S, optional=1),
    "concat": _spec((_S, _S), _S),
    "replace": _spec((_S, _S, _S), _S),
    "year": _spec((_T,), _I),
    "month": _spec((_T,), _I),
    "day": _spec((_T,), _I),
    "hour": _spec((_T,), _I),
    "minute": _spec((_T,), _I),
    "second": _spec((_T,), _I),
    "date": _spec((_T,), EdmType.DATE),
    "time": _spec((_T,), EdmType.TIME),
    "round": _spec((_N,), EdmType.ANY),
    "floor": _spec((_N,), EdmType.ANY),
    "ceiling": _spec((_N,), EdmType.ANY),
}


def balanced(op: BinaryOp, operands: Sequence[Expr]) -> Expr:
    """Join ``operands`` with ``and``/``or`` into a balanced tree, flattening same-op chains.

    ``and`` and ``or`` are associative, so the shape does not change the meaning; a balanced
    shape keeps the tree shallow (a 500-term ``or`` list is 9 levels deep, not 500), which
    keeps recursion in the printer, the compilers and ``==`` safe. The parser and the builder
    both use it, so equal chains always have equal trees.

    Raises:
        QueryError: when ``op`` is not ``and``/``or`` or there are no operands.
    """
    if not op.is_logical:
        raise QueryError(f"only 'and' and 'or' chains can be balanced, not {op.value!r}")
    flat = [leaf for item in operands for leaf in chain_operands(item, op)]
    if not flat:
        raise QueryError(f"an '{op.value}' chain needs at least one operand")
    return _build_balanced(op, flat)


def _build_balanced(op: BinaryOp, flat: Sequence[Expr]) -> Expr:
    if len(flat) == 1:
        return flat[0]
    middle = (len(flat) + 1) // 2
    return Binary(op, _build_balanced(op, flat[:middle]), _build_balanced(op, flat[middle:]))


def chain_operands(expr: Expr, op: BinaryOp) -> list[Expr]:
    """The operands of a chain of ``op`` (``a or b or c`` → ``[a, b, c]``), in order."""
    result: list[Expr] = []
    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, Binary) and node.op is op:
            stack.extend((node.right, node.left))
        else:
            result.append(node)
    return result
