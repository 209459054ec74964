"""Static type rules shared by the two compilers, so both reject the same queries.

Each rule takes the :class:`EdmType` of the operands and returns the type of the result, or
raises :class:`QueryError` with a message naming the operator and the operand types
(``'gt' cannot compare a string with an int``). ``NULL`` fits anywhere; ``ANY`` (a schemaless
value) fits anywhere and makes numeric results ``ANY``.
"""

from __future__ import annotations

from .._exceptions import QueryError
from .ast import FUNCTIONS, BinaryOp, EdmType, UnaryOp

__all__ = [
    "binary_type",
    "call_type",
    "comparable",
    "condition_type",
    "describe",
    "in_type",
    "unary_type",
]

_FLEXIBLE = (EdmType.NULL, EdmType.ANY)
_DATE_LIKE = (EdmType.DATETIME, EdmType.DATE)
# Families whose members compare with each other. Strings compare with dates and GUIDs
# because both are often kept as text (the client store, string ids): the compilers convert.
_FAMILIES: tuple[frozenset[EdmType], ...] = (
    frozenset({EdmType.INT, EdmType.DECIMAL, EdmType.FLOAT}),
    frozenset({EdmType.STRING, EdmType.DATETIME, EdmType.DATE}),
    frozenset({EdmType.STRING, EdmType.GUID}),
    frozenset({EdmType.DATETIME, EdmType.DATE}),
    frozenset({EdmType.BOOL}),
    frozenset({EdmType.TIME}),
    frozenset({EdmType.STRING}),
)


def describe(type_: EdmType) -> str:
    """``"a string"``, ``"an int"`` ... for error messages."""
    article = "an" if type_.value[0] in "aeiou" else "a"
    return "null" if type_ is EdmType.NULL else f"{article} {type_.value}"


def comparable(left: EdmType, right: EdmType) -> bool:
    """Whether ``eq``/``gt``/``in`` ... may compare values of these two types."""
    if left in _FLEXIBLE or right in _FLEXIBLE or left is right:
        return True
    return any(left in family and right in family for family in _FAMILIES)


def binary_type(op: BinaryOp, left: EdmType, right: EdmType) -> EdmType:
    """The result type of ``left op right``."""
    if op.is_logical:
        for side in (left, right):
            _require_condition(op.value, side)
        return EdmType.BOOL
    if op.is_comparison:
        if not comparable(left, right):
            raise QueryError(f"'{op.value}' cannot compare {describe(left)} with {describe(right)}")
        return EdmType.BOOL
    for side in (left, right):
        if not (side.is_numeric or side in _FLEXIBLE):
            raise QueryError(f"'{op.value}' needs numbers, not {describe(side)}")
    return numeric_result(left, right)


def numeric_result(left: EdmType, right: EdmType) -> EdmType:
    """The type of arithmetic on two numeric (or flexible) types."""
    types = {left, right}
    for candidate in (EdmType.ANY, EdmType.FLOAT, EdmType.DECIMAL, EdmType.INT):
        if candidate in types:
            return candidate
    return EdmType.NULL


def unary_type(op: UnaryOp, operand: EdmType) -> EdmType:
    """The result type of ``not x`` or ``-x``."""
    if op is UnaryOp.NOT:
        _require_condition("not", operand)
        return EdmType.BOOL
    if not (operand.is_numeric or operand in _FLEXIBLE):
        raise QueryError(f"'-' needs a number, not {describe(operand)}")
    return operand


def in_type(operand: EdmType, values: list[EdmType]) -> EdmType:
    """The result type of ``x in (...)``."""
    for value in values:
        if not comparable(operand, value):
            raise QueryError(f"'in' cannot compare {describe(operand)} with {describe(value)}")
    return EdmType.BOOL


def call_type(name: str, args: list[EdmType]) -> EdmType:
    """The result type of a canonical function call."""
    spec = FUNCTIONS[name]
    for index, arg in enumerate(args):
        expected = spec.params[min(index, len(spec.params) - 1)]
        if not _fits(expected, arg):
            raise QueryError(
                f"argument {index + 1} of {name}() must be {describe(expected)}, "
                f"not {describe(arg)}"
            )
    if spec.result is EdmType.ANY:
        # round/floor/ceiling keep the type of their argument.
        return args[0] if args[0] is not EdmType.NULL else EdmType.DECIMAL
    return spec.result


def condition_type(type_: EdmType) -> None:
    """Check that a whole ``$filter`` is a condition."""
    if type_ not in (EdmType.BOOL, EdmType.ANY):
        raise QueryError(f"a filter must be a condition (true or false), not {describe(type_)}")


def _fits(expected: EdmType, actual: EdmType) -> bool:
    if actual in _FLEXIBLE or actual is expected:
        return True
    if expected is EdmType.FLOAT:
        return actual.is_numeric
    if expected is EdmType.DATETIME:
        return actual in _DATE_LIKE
    return False


def _require_condition(operator: str, type_: EdmType) -> None:
    if type_ not in (EdmType.BOOL, EdmType.ANY, EdmType.NULL):
        raise QueryError(f"'{operator}' needs conditions (true or false), not {describe(type_)}")
