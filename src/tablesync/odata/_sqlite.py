"""Compile the AST to a parameterized SQLite WHERE clause over the client's JSON item rows.

The local store keeps one row per item, ``(id TEXT PRIMARY KEY, data TEXT NOT NULL)``, with the
whole item as JSON in ``data``; datetimes inside are ``YYYY-MM-DDTHH:MM:SS.fffZ`` strings (which
sort in time order) and booleans are JSON ``true``/``false`` (``json_extract`` reads 1/0). A
property ``p`` is read as ``json_extract(data, '$."p"')``; property names are checked
identifiers, and every value travels as a ``?`` parameter.

The semantics are the server compiler's (``tablesync.server._query``): OData null rules,
0-based ``indexof``/``substring``, exact case-sensitive string tests without ``LIKE``, integer
``div``, null on division by zero, halves rounded away from zero, and datetime literals compared
as their formatted strings. Properties have no declared type here, so type errors are caught
only where literals make them certain (``year('x')``, ``'a' add 1``).
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._exceptions import QueryError, UnsupportedQueryError
from ..protocol.dates import format_datetime
from . import _typing as rules
from .ast import (
    Binary,
    BinaryOp,
    Call,
    EdmType,
    Expr,
    In,
    Literal,
    LiteralKind,
    Member,
    OrderBy,
    Unary,
    UnaryOp,
    chain_operands,
)

__all__ = ["compile_order_by", "compile_where", "member_sql"]

_INT32_MAX = 2**31 - 1
_ARITH = {BinaryOp.ADD: "+", BinaryOp.SUB: "-", BinaryOp.MUL: "*"}
_RELATIONAL = {BinaryOp.GT: ">", BinaryOp.GE: ">=", BinaryOp.LT: "<", BinaryOp.LE: "<="}
_STRFTIME = {"year": "%Y", "month": "%m", "day": "%d", "hour": "%H", "minute": "%M", "second": "%S"}
_KIND_TYPES = {kind: EdmType(kind.value) for kind in LiteralKind}


def compile_where(expr: Expr) -> tuple[str, list[Any]]:
    """Compile a filter to SQL text with ``?`` placeholders and its parameter values.

    Raises:
        QueryError: when literals make the filter certainly ill-typed (``year('x') eq 1``).
    """
    rules.check_complexity(expr)
    result = _visit(expr)
    rules.condition_type(result.type)
    condition = _condition(result)
    return condition.sql, list(condition.params)


def compile_order_by(terms: Sequence[OrderBy]) -> str:
    """Compile ``$orderby`` terms to the text of an SQLite ``ORDER BY`` list.

    SQLite sorts nulls first when ascending, as OData does. The text has no placeholders, so
    terms may hold numbers but not text, date or GUID literals.

    Raises:
        UnsupportedQueryError: for a term with a text, date or GUID literal.
    """
    parts: list[str] = []
    for term in terms:
        if isinstance(term.expr, Literal):
            continue  # a constant does not change the order
        rules.check_complexity(term.expr)
        sql = _visit(term.expr)
        value = _two_valued(sql) if sql.condition else sql
        parts.append(f"{_inline(value)} {'DESC' if term.descending else 'ASC'}")
    return ", ".join(parts)


def member_sql(name: str) -> str:
    """The SQL that reads property ``name`` of an item row."""
    Member(name)  # validates the name: only identifiers reach the SQL text
    if name == "id":
        return "id"
    return f"json_extract(data, '$.\"{name}\"')"


@dataclass(frozen=True, slots=True)
class _Frag:
    """A compiled node: SQL text, its parameters in order, and what the compiler needs."""

    sql: str
    type: EdmType
    params: tuple[Any, ...] = field(default=())
    literal: Literal | None = None
    condition: bool = False
    never_null: bool = False
    member: str | None = None
    """Set when the node reads a property of the item's JSON."""

    @property
    def is_null(self) -> bool:
        return self.literal is not None and self.literal.kind is LiteralKind.NULL


def _join(template: str, *parts: _Frag) -> tuple[str, tuple[Any, ...]]:
    """Fill ``{0}``, ``{1}`` ... with the parts' SQL; parameters follow in placeholder order."""
    params: list[Any] = []
    pieces: list[str] = []
    for text, index in _template_pieces(template):
        pieces.append(text)
        if index is not None:
            pieces.append(parts[index].sql)
            params.extend(parts[index].params)
    return "".join(pieces), tuple(params)


def _template_pieces(template: str) -> list[tuple[str, int | None]]:
    pieces: list[tuple[str, int | None]] = []
    rest = template
    while "{" in rest:
        head, _, tail = rest.partition("{")
        index, _, rest = tail.partition("}")
        pieces.append((head, int(index)))
    pieces.append((rest, None))
    return pieces


def _frag(template: str, type_: EdmType, *parts: _Frag) -> _Frag:
    sql, params = _join(template, *parts)
    return _Frag(sql, type_, params)


def _cond(template: str, *parts: _Frag, never_null: bool = False) -> _Frag:
    sql, params = _join(template, *parts)
    return _Frag(sql, EdmType.BOOL, params, condition=True, never_null=never_null)


# -- visiting ---------------------------------------------------------------------------------


def _visit(expr: Expr) -> _Frag:
    if isinstance(expr, Literal):
        return _literal(expr)
    if isinstance(expr, Member):
        return _member(expr.name)
    if isinstance(expr, Binary):
        return _binary(expr)
    if isinstance(expr, Unary):
        return _unary(expr)
    if isinstance(expr, Call):
        return _call(expr)
    return _in(expr)


def _literal(node: Literal) -> _Frag:
    if node.kind is LiteralKind.NULL:
        return _Frag("NULL", EdmType.NULL, literal=node)
    return _Frag("?", _KIND_TYPES[node.kind], (_param(node),), literal=node)


def _param(node: Literal) -> Any:
    value = node.value
    if node.kind is LiteralKind.DATETIME:
        return format_datetime(value)
    if node.kind is LiteralKind.TIME:
        return value.strftime("%H:%M:%S.") + f"{value.microsecond // 1000:03d}"
    if node.kind in (LiteralKind.DATE, LiteralKind.GUID):
        return str(value)
    if node.kind is LiteralKind.BOOL:
        return int(value)
    if isinstance(value, decimal.Decimal):
        return float(value)
    return value


def _member(name: str) -> _Frag:
    if name == "id":
        return _Frag(member_sql(name), EdmType.STRING)  # the key column: always text
    return _Frag(member_sql(name), EdmType.ANY, member=name)


def _condition(sql: _Frag) -> _Frag:
    """``sql`` as a WHERE condition (NULL counts as false there)."""
    if sql.condition:
        return sql
    if sql.literal is not None:
        return _cond("1" if sql.literal.value is True else "0", never_null=True)
    if sql.member is not None:
        # Only JSON true counts: json_extract reads true as 1, as it reads the number 1.
        return _cond(f"(json_type(data, '$.\"{sql.member}\"') IS 'true')", never_null=True)
    raise QueryError(f"a filter needs conditions (true or false), not {rules.describe(sql.type)}")


def _two_valued(sql: _Frag) -> _Frag:
    condition = _condition(sql)
    if condition.never_null:
        return condition
    return _cond("coalesce({0}, 0)", condition, never_null=True)


def _unary(node: Unary) -> _Frag:
    operand = _visit(node.operand)
    result = rules.unary_type(node.op, operand.type)
    if node.op is UnaryOp.NOT:
        return _cond("(NOT {0})", _two_valued(operand), never_null=True)
    return _frag("(- {0})", result, operand)


def _binary(node: Binary) -> _Frag:
    if node.op.is_logical:
        return _logical(node)
    left, right = _visit(node.left), _visit(node.right)
    result = rules.binary_type(node.op, left.type, right.type)
    if node.op.is_comparison:
        return _compare(node.op, left, right)
    if node.op in _ARITH:
        return _frag(f"({{0}} {_ARITH[node.op]} {{1}})", result, left, right)
    if node.op is BinaryOp.DIV:
        # Integer over integer truncates in SQLite as in OData; a fraction on either side
        # (a decimal literal or a real value) gives a real quotient.
        return _frag("({0} / NULLIF({1}, 0))", result, left, right)
    if left.type is EdmType.INT and right.type is EdmType.INT:
        return _frag("({0} % NULLIF({1}, 0))", result, left, right)
    # SQLite's % drops fractions (7.5 % 2 = 1): a - b * trunc(a / b) keeps them.
    template = "({0} - NULLIF({1}, 0) * CAST({0} * 1.0 / NULLIF({1}, 0) AS INTEGER))"
    return _frag(template, result, left, right)


def _logical(node: Binary) -> _Frag:
    operands = [_visit(item) for item in chain_operands(node, node.op)]
    for operand in operands:
        rules.binary_type(node.op, operand.type, EdmType.BOOL)
    conditions = [_condition(operand) for operand in operands]
    keyword = " AND " if node.op is BinaryOp.AND else " OR "
    template = "(" + keyword.join(f"{{{i}}}" for i in range(len(conditions))) + ")"
    never_null = all(condition.never_null for condition in conditions)
    return _cond(template, *conditions, never_null=never_null)


def _compare(op: BinaryOp, left: _Frag, right: _Frag) -> _Frag:
    if left.is_null or right.is_null:
        return _compare_null(op, left, right)
    left, right = _against(_comparable(left), right), _against(_comparable(right), left)
    if op is BinaryOp.EQ:
        if left.literal is not None or right.literal is not None:
            return _cond("({0} = {1})", left, right)
        return _cond("({0} IS {1})", left, right, never_null=True)
    if op is BinaryOp.NE:
        return _cond("({0} IS NOT {1})", left, right, never_null=True)
    return _cond(f"({{0}} {_RELATIONAL[op]} {{1}})", left, right)


def _comparable(sql: _Frag) -> _Frag:
    return _two_valued(sql) if sql.condition else sql


def _against(sql: _Frag, other: _Frag) -> _Frag:
    """Read a date literal as midnight UTC when it meets a stored value.

    Stored datetimes are ``…T00:00:00.000Z`` text; against ``date(...)`` a date stays a date.
    """
    literal = sql.literal
    if literal is None or literal.kind is not LiteralKind.DATE or other.type is not EdmType.ANY:
        return sql
    day = literal.value
    midnight = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    return _Frag("?", EdmType.DATETIME, (format_datetime(midnight),))


def _compare_null(op: BinaryOp, left: _Frag, right: _Frag) -> _Frag:
    other = right if left.is_null else left
    if op not in (BinaryOp.EQ, BinaryOp.NE):
        return _cond("0", never_null=True)  # ordering against null is false
    if other.is_null:
        return _cond("1" if op is BinaryOp.EQ else "0", never_null=True)
    test = "({0} IS NULL)" if op is BinaryOp.EQ else "({0} IS NOT NULL)"
    return _cond(test, _comparable(other), never_null=True)


def _in(node: In) -> _Frag:
    operand = _visit(node.operand)
    values = [_visit(value) for value in node.values]
    rules.in_type(operand.type, [value.type for value in values])
    if operand.is_null or any(value.literal is None for value in values):
        # Not a plain list of constants: "in" means "eq" to any of them, null rules and all.
        tests = [_compare(BinaryOp.EQ, operand, value) for value in values]
        template = "(" + " OR ".join(f"{{{i}}}" for i in range(len(tests))) + ")"
        return _cond(template, *tests)
    operand = _comparable(operand)
    present = [_against(value, operand) for value in values if not value.is_null]
    tests = []
    if present:
        slots = ", ".join(f"{{{i + 1}}}" for i in range(len(present)))
        tests.append(_cond(f"({{0}} IN ({slots}))", operand, *present))
    if len(present) < len(values):
        tests.append(_cond("({0} IS NULL)", operand, never_null=True))
    if len(tests) == 1:
        return tests[0]
    return _cond("({0} OR {1})", *tests)


# -- functions --------------------------------------------------------------------------------


def _call(node: Call) -> _Frag:
    args = [_visit(arg) for arg in node.args]
    result = rules.call_type(node.name, [arg.type for arg in args])
    if any(arg.is_null for arg in args):
        # Every canonical function of null is null, and then compares as the literal null
        # does (``contains(null, x) eq null`` is true), as on the server.
        return _Frag("NULL", result, literal=Literal(None, LiteralKind.NULL))
    return _CALLS[node.name](args, result)


def _template_call(
    template: str, *, condition: bool = False
) -> Callable[[list[_Frag], EdmType], _Frag]:
    def compile_(args: list[_Frag], result: EdmType) -> _Frag:
        if condition:
            return _cond(template, *args)
        return _frag(template, result, *args)

    return compile_


def _position(sql: _Frag, name: str, offset: int) -> _Frag:
    """A 0-based OData position or length plus ``offset``, never negative."""
    if sql.literal is not None and sql.literal.value is not None:
        value = sql.literal.value
        if not 0 <= value <= _INT32_MAX - offset:
            raise QueryError(f"the {name} of substring() must be between 0 and {_INT32_MAX - 1}")
        return _Frag("?", EdmType.INT, (value + offset,))
    return _frag(f"(max(min({{0}}, {_INT32_MAX - 1}), 0) + {offset})", EdmType.INT, sql)


def _substring(args: list[_Frag], result: EdmType) -> _Frag:
    start = _position(args[1], "start", 1)
    if len(args) == 2:
        return _frag("substr({0}, {1})", EdmType.STRING, args[0], start)
    length = _position(args[2], "length", 0)
    return _frag("substr({0}, {1}, {2})", EdmType.STRING, args[0], start, length)


def _rounding(template: str) -> Callable[[list[_Frag], EdmType], _Frag]:
    def compile_(args: list[_Frag], result: EdmType) -> _Frag:
        if args[0].type is EdmType.INT:
            return args[0]  # an integer is already whole
        return _frag(template, result, args[0])

    return compile_


_ENDSWITH = "(length({0}) >= length({1}) AND substr({0}, length({0}) - length({1}) + 1) = {1})"
# SQLCipher builds of SQLite lack floor()/ceil(): compute them from a truncating cast.
_FLOOR = "(CAST({0} AS INTEGER) - ({0} < CAST({0} AS INTEGER)))"
_CEILING = "(CAST({0} AS INTEGER) + ({0} > CAST({0} AS INTEGER)))"

_CALLS: dict[str, Callable[[list[_Frag], EdmType], _Frag]] = {
    "contains": _template_call("(instr({0}, {1}) > 0)", condition=True),
    "startswith": _template_call("(instr({0}, {1}) = 1)", condition=True),
    "endswith": _template_call(_ENDSWITH, condition=True),
    "tolower": _template_call("lower({0})"),
    "toupper": _template_call("upper({0})"),
    "trim": _template_call("trim({0})"),
    "length": _template_call("length({0})"),
    "indexof": _template_call("(instr({0}, {1}) - 1)"),
    "substring": _substring,
    "concat": _template_call("({0} || {1})"),
    # SQLite's replace(x, '', null) is x; OData (and PostgreSQL) say null.
    "replace": _template_call("replace({0}, {1} || substr({2}, 1, 0), {2})"),
    **{
        part: _template_call(f"CAST(strftime('{pattern}', {{0}}) AS INTEGER)")
        for part, pattern in _STRFTIME.items()
    },
    "date": _template_call("date({0})"),
    "time": _template_call("strftime('%H:%M:%f', {0})"),
    "round": _rounding("round({0})"),
    "floor": _rounding(_FLOOR),
    "ceiling": _rounding(_CEILING),
}


# -- ORDER BY without placeholders ------------------------------------------------------------


def _inline(sql: _Frag) -> str:
    """The SQL with its parameters written in: only numbers can be, and safely."""
    if not sql.params:
        return sql.sql
    pieces = sql.sql.split("?")
    text = pieces[0]
    for value, piece in zip(sql.params, pieces[1:], strict=True):
        text += _number_text(value) + piece
    return text


def _number_text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UnsupportedQueryError(
            "a local $orderby expression may contain numbers but not text, date or GUID literals"
        )
    # repr() of a Python number is plain digits: it cannot carry SQL.
    return repr(float(value)) if isinstance(value, float) else str(int(value))
