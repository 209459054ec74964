"""Static type rules shared by the two compilers, so both reject the same queries.

Each rule takes the :class:`EdmType` of the operands and returns the type of the result, or
raises :class:`QueryError` with a message naming the operator and the operand types
(``'gt' cannot compare a string with an int``). ``NULL`` fits anywhere; ``ANY`` (a schemaless
value) fits anywhere and makes numeric results ``ANY``.
"""

from __future__ import annotations

from .._exceptions import QueryError
from .ast import FUNCTIONS, Binary, BinaryOp, Call, EdmType, Expr, In, Literal, Unary, UnaryOp

__all__ = [
    "MAX_COMPILED_DEPTH",
    "MAX_COMPILED_SIZE",
    "MAX_SQL_NESTING",
    "binary_type",
    "call_type",
    "check_complexity",
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
    if type_ is EdmType.NULL:
        return "null"
    if type_ is EdmType.ANY:
        return "a value of unknown type"
    article = "an" if type_.value[0] in "aeiou" else "a"
    return f"{article} {type_.value}"


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


#: The deepest tree the compilers accept (the parser's own default limit is far lower; this
#: bounds trees built in Python, whose depth nothing else limits).
MAX_COMPILED_DEPTH = 200
#: The largest SQL the compilers will write, counted in tree nodes after the repetitions that
#: ``in`` lists and ``endswith`` need.
MAX_COMPILED_SIZE = 50_000


#: How deeply the SQL may nest, in rough units of SQLite parser stack (whose fixed depth of
#: 100 entries is the tightest limit among the engines: past it SQLite fails with "parser
#: stack overflow"). The weights below were measured on both SQLite compilers.
MAX_SQL_NESTING = 56


#: What the databases say of a statement nested past their own limits, and PostgreSQL's
#: SQLSTATE for it. ``check_complexity`` refuses such filters by an estimate; a database
#: error that matches is the backstop (the fuzz tests once found a shape past the estimate).
_TOO_COMPLEX_MESSAGES = ("parser stack overflow", "expression tree is too large")
_STACK_DEPTH_EXCEEDED = "54001"


def is_too_complex_error(error: BaseException) -> bool:
    """Whether a database error says its statement was nested too deeply.

    The error is a driver's, or SQLAlchemy's around one. It is the request's fault, never
    worth retrying.
    """
    cause = getattr(error, "orig", None) or error
    if getattr(cause, "sqlstate", None) == _STACK_DEPTH_EXCEEDED:
        return True
    message = str(cause).lower()
    return any(text in message for text in _TOO_COMPLEX_MESSAGES)


def check_complexity(expr: Expr) -> None:
    """Refuse trees too deep to compile safely or whose SQL would be too large or too nested.

    The walk stops as soon as a limit is passed, so even a tree built in Python that shares
    subtrees (``t = t + t`` a hundred times) is refused quickly.

    Raises:
        QueryError: naming the limit that was exceeded.
    """
    size = 0
    stack: list[tuple[Expr, int, int, int, BinaryOp | None]] = [(expr, 1, 1, 0, None)]
    while stack:
        node, depth, weight, nesting, parent_op = stack.pop()
        size += weight
        # An and/or inside the same operator is flattened into one SQL list: no new level.
        same_chain = isinstance(node, Binary) and node.op.is_logical and node.op is parent_op
        nesting += 0 if same_chain else _nesting(node)
        if depth > MAX_COMPILED_DEPTH:
            raise QueryError(f"the filter is nested too deeply (more than {MAX_COMPILED_DEPTH})")
        if nesting > MAX_SQL_NESTING:
            raise QueryError("the filter nests functions too deeply for the database; simplify it")
        if size > MAX_COMPILED_SIZE:
            raise QueryError("the filter is too complex to run; simplify it")
        op = node.op if isinstance(node, Binary) else None
        for child, times in _children(node):
            stack.append((child, depth + 1, weight * times, nesting, op))


def _nesting(node: Expr) -> int:
    if isinstance(node, Call):
        return _CALL_NESTING.get(node.name, 2)
    if isinstance(node, Binary):
        if node.op is BinaryOp.MOD:
            return 5
        return 3 if node.op.is_comparison or node.op.is_logical else 2
    if isinstance(node, In):
        return 5
    if isinstance(node, Unary):
        return 2
    return 0


_CALL_NESTING = {
    "substring": 10,
    "replace": 7,
    "floor": 6,
    "ceiling": 6,
    "endswith": 8,
    **dict.fromkeys(("year", "month", "day", "hour", "minute", "second", "time"), 3),
}


#: (function, argument index) → how many times SQLite's SQL names that argument.
_CALL_REPEATS = {
    ("endswith", 0): 3,
    ("endswith", 1): 3,
    ("floor", 0): 3,
    ("ceiling", 0): 3,
    ("replace", 2): 2,
}


def _children(node: Expr) -> list[tuple[Expr, int]]:
    """Each child with how many times the compiled SQL names it.

    Some SQLite spellings name an argument more than once (``endswith``, ``floor``,
    ``ceiling``, ``replace``, a fractional ``mod``); an ``in`` list of expressions (not
    constants) names its operand once per value.
    """
    if isinstance(node, Unary):
        return [(node.operand, 1)]
    if isinstance(node, Binary):
        times = 2 if node.op is BinaryOp.MOD else 1
        return [(node.left, times), (node.right, times)]
    if isinstance(node, Call):
        return [(arg, _CALL_REPEATS.get((node.name, i), 1)) for i, arg in enumerate(node.args)]
    if isinstance(node, In):
        constants = all(isinstance(value, Literal) for value in node.values)
        operand_times = 1 if constants else len(node.values)
        return [(node.operand, operand_times), *((value, 1) for value in node.values)]
    return []
