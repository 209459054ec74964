"""SQL constructs whose spelling differs between SQLite, PostgreSQL and MySQL.

Each is a small SQLAlchemy ``FunctionElement`` with a default rendering (SQLite's) and
per-dialect overrides, so the compiler in ``_query.py`` stays dialect-free. Every value still
travels as a bound parameter; only fixed SQL words are written here.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import operators
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.visitors import InternalTraversal

__all__ = [
    "arith",
    "ceiling",
    "char_length",
    "clamp",
    "date_part",
    "floor",
    "ordering",
    "replace",
    "round_half_away",
    "strpos",
    "utc_date",
    "utc_time",
]

_STRFTIME = {
    "year": "%Y",
    "month": "%m",
    "day": "%d",
    "hour": "%H",
    "minute": "%M",
    "second": "%S",
}


_STRING = InternalTraversal.dp_string
_BOOLEAN = InternalTraversal.dp_boolean


def _cached_with(*attributes: tuple[str, InternalTraversal]) -> list[tuple[str, Any]]:
    """A function's cache-key traversal, plus the attributes its SQL also depends on.

    SQLAlchemy reuses the SQL it compiled for any statement with the same cache key: an
    attribute left out of it would let ``a add b`` take the SQL of ``a sub b``. Included,
    the statements are compiled once per shape, not at every request.
    """
    return [*FunctionElement._traverse_internals, *attributes]


class _Function(FunctionElement[Any]):
    inherit_cache = True

    def sql_args(self, compiler: SQLCompiler, **kw: Any) -> list[str]:
        """The arguments' SQL, an operation among them in parentheses.

        The templates and compilers here place them beside operators (``0 - {1}``), where
        ``instr(a, b) - 1`` without its parentheses would lose its grouping. Columns,
        values and calls stay bare: parentheses at every level of a deep filter overflow
        SQLite's parser stack.
        """
        return [
            compiler.process(clause.self_group(against=operators.mul), **kw)
            for clause in self.clauses
        ]


def _template(function: type[_Function], template: str, *dialects: str) -> None:
    """Compile ``function`` on ``dialects`` (none: every other) as ``template``.

    ``{0}``, ``{1}``... in the template stand for the SQL of the function's arguments.
    """

    def render(element: _Function, compiler: SQLCompiler, **kw: Any) -> str:
        return template.format(*element.sql_args(compiler, **kw))

    compiles(function, *dialects)(render)


class strpos(_Function):
    """1-based position of ``needle`` in ``haystack``, 0 when absent (case-sensitive)."""

    inherit_cache = True

    type = sa.Integer()
    name = "strpos"


# Arguments: haystack, needle.
_template(strpos, "instr({0}, {1})")
_template(strpos, "strpos({0}, {1})", "postgresql")
# LOCATE ignores case under MySQL's default collations; BINARY makes it exact.
_template(strpos, "locate(BINARY {1}, BINARY {0})", "mysql", "mariadb")


class char_length(_Function):
    """Length in characters (MySQL's ``length`` counts bytes)."""

    inherit_cache = True

    type = sa.Integer()
    name = "char_length"


_template(char_length, "length({0})")
_template(char_length, "char_length({0})", "mysql", "mariadb")


class arith(_Function):
    """OData arithmetic: ``add sub mul div mod`` with OData's results on every engine.

    Division and remainder by zero give NULL instead of a database error. ``integer`` asks
    for OData's integer ``div`` (truncating toward zero). PostgreSQL computes in ``numeric``,
    so no overflow of ``bigint`` or ``double precision`` can raise a database error.
    """

    type = sa.Numeric()
    name = "arith"
    inherit_cache = True
    _traverse_internals = _cached_with(("symbol", _STRING), ("integer", _BOOLEAN))

    def __init__(self, symbol: str, left: Any, right: Any, *, integer: bool) -> None:
        super().__init__(left, right)
        self.symbol = symbol
        self.integer = integer


@compiles(arith)
def _arith_sqlite(element: arith, compiler: SQLCompiler, **kw: Any) -> str:
    left, right = element.sql_args(compiler, **kw)
    if element.symbol in "+-*":
        return f"({left} {element.symbol} {right})"
    divisor = f"NULLIF({right}, 0)"
    if element.integer:
        return f"({left} {element.symbol} {divisor})"
    if element.symbol == "/":
        return f"({left} * 1.0 / {divisor})"
    # SQLite's % turns fractions into integers first (7.5 % 2 = 1), so spell out
    # a - b * trunc(a / b); CAST(... AS INTEGER) truncates toward zero. (Naming the operands
    # twice doubles the SQL at each nesting: odata._typing.check_complexity bounds that.)
    return f"({left} - {divisor} * CAST({left} * 1.0 / {divisor} AS INTEGER))"


@compiles(arith, "postgresql")
def _arith_postgresql(element: arith, compiler: SQLCompiler, **kw: Any) -> str:
    left, right = (f"CAST({arg} AS NUMERIC)" for arg in element.sql_args(compiler, **kw))
    if element.symbol in "+-*":
        return f"({left} {element.symbol} {right})"
    divisor = f"NULLIF({right}, 0)"
    if element.symbol == "%":
        return f"mod({left}, {divisor})"
    quotient = f"({left} / {divisor})"
    return f"trunc{quotient}" if element.integer else quotient


@compiles(arith, "mysql")
@compiles(arith, "mariadb")
def _arith_mysql(element: arith, compiler: SQLCompiler, **kw: Any) -> str:
    left, right = element.sql_args(compiler, **kw)
    if element.symbol in "+-*":
        return f"({left} {element.symbol} {right})"
    divisor = f"NULLIF({right}, 0)"
    if element.symbol == "%":
        return f"mod({left}, {divisor})"
    return f"({left} {'DIV' if element.integer else '/'} {divisor})"


class floor(_Function):
    """The largest integer not above the argument."""

    inherit_cache = True

    type = sa.Numeric()
    name = "floor"


class ceiling(_Function):
    """The smallest integer not below the argument."""

    inherit_cache = True

    type = sa.Numeric()
    name = "ceiling"


# SQLite's floor() exists only when built with math functions (SQLCipher builds lack
# it), so compute it from a truncating cast.
_template(floor, "(CAST({0} AS INTEGER) - ({0} < CAST({0} AS INTEGER)))")
_template(ceiling, "(CAST({0} AS INTEGER) + ({0} > CAST({0} AS INTEGER)))")
_template(floor, "floor({0})", "postgresql", "mysql", "mariadb")
_template(ceiling, "ceiling({0})", "postgresql", "mysql", "mariadb")


class clamp(_Function):
    """``value`` limited to ``[0, 2**31 - 2]``, null staying null; for substring() positions.

    Each engine has a null-preserving two-argument max/min that names the value once.
    """

    type = sa.Integer()
    name = "clamp"
    inherit_cache = True


_template(clamp, "max(min({0}, 2147483646), 0)")
# GREATEST/LEAST ignore nulls; the numeric_larger/smaller functions behind them do not.
_template(
    clamp,
    "CAST(numeric_larger(numeric_smaller(CAST({0} AS NUMERIC), 2147483646), 0) AS INTEGER)",
    "postgresql",
)
_template(clamp, "GREATEST(LEAST({0}, 2147483646), 0)", "mysql", "mariadb")


class replace(_Function):
    """``replace(text, find, replacement)``, null if any argument is null."""

    type = sa.String()
    name = "replace"
    inherit_cache = True


# Arguments: text, find, replacement. SQLite's replace(x, '', null) is x: append '' (or
# null) to the pattern to propagate it.
_template(replace, "replace({0}, {1} || substr({2}, 1, 0), {2})")
_template(replace, "replace({0}, {1}, {2})", "postgresql", "mysql", "mariadb")


class round_half_away(_Function):
    """Round to an integer, halves away from zero (OData ``round``)."""

    inherit_cache = True

    type = sa.Numeric()
    name = "round_half_away"


_template(round_half_away, "round({0})")
# round(double precision) rounds halves to even on PostgreSQL; numeric rounds away.
_template(round_half_away, "round(CAST({0} AS NUMERIC))", "postgresql")


class _UtcFunction(_Function):
    """A function of one timestamp that PostgreSQL may first have to convert to UTC.

    ``utc`` says the value is a time-zone-aware timestamp that PostgreSQL must convert to UTC
    first (it would otherwise use the session's time zone).
    """

    inherit_cache = True
    _traverse_internals = _cached_with(("utc", _BOOLEAN))

    def __init__(self, value: Any, *, utc: bool) -> None:
        super().__init__(value)
        self.utc = utc


def _utc_value_postgresql(element: _UtcFunction, compiler: SQLCompiler, **kw: Any) -> str:
    """The SQL of ``element``'s timestamp argument, converted to UTC where it is zone-aware."""
    value = element.sql_args(compiler, **kw)[0]
    return f"({value} AT TIME ZONE 'UTC')" if element.utc else value


def _utc_template_postgresql(function: type[_UtcFunction], template: str) -> None:
    """Compile ``function`` on PostgreSQL as ``template`` of its timestamp read in UTC."""

    def render(element: _UtcFunction, compiler: SQLCompiler, **kw: Any) -> str:
        return template.format(_utc_value_postgresql(element, compiler, **kw))

    compiles(function, "postgresql")(render)


class date_part(_UtcFunction):
    """An integer part (year ... second) of a timestamp, read in UTC.

    Construct with ``date_part(field, value, utc=...)``.
    """

    type = sa.Integer()
    name = "date_part"
    inherit_cache = True
    _traverse_internals = _cached_with(("utc", _BOOLEAN), ("field", _STRING))

    def __init__(self, field: str, value: Any, *, utc: bool) -> None:
        super().__init__(value, utc=utc)
        self.field = field


@compiles(date_part)
def _date_part_sqlite(element: date_part, compiler: SQLCompiler, **kw: Any) -> str:
    value = element.sql_args(compiler, **kw)[0]
    return f"CAST(strftime('{_STRFTIME[element.field]}', {value}) AS INTEGER)"


@compiles(date_part, "postgresql")
def _date_part_postgresql(element: date_part, compiler: SQLCompiler, **kw: Any) -> str:
    value = _utc_value_postgresql(element, compiler, **kw)
    # EXTRACT(SECOND ...) includes the fraction: floor it, as OData's second() does.
    return f"CAST(floor(EXTRACT({element.field.upper()} FROM {value})) AS INTEGER)"


@compiles(date_part, "mysql")
@compiles(date_part, "mariadb")
def _date_part_mysql(element: date_part, compiler: SQLCompiler, **kw: Any) -> str:
    value = element.sql_args(compiler, **kw)[0]
    return f"EXTRACT({element.field.upper()} FROM {value})"


class utc_date(_UtcFunction):
    """The UTC calendar date of a timestamp."""

    type = sa.Date()
    name = "utc_date"
    inherit_cache = True


_template(utc_date, "date({0})")
_utc_template_postgresql(utc_date, "CAST({0} AS DATE)")


class utc_time(_UtcFunction):
    """The UTC time of day of a timestamp, comparable with a bound ``sa.Time`` value."""

    type = sa.Time()
    name = "utc_time"
    inherit_cache = True


# SQLAlchemy stores an SQLite TIME as HH:MM:SS.ffffff: build the same text.
_template(
    utc_time, "(strftime('%H:%M:%S', {0}) || '.' || substr(strftime('%f', {0}), 4, 3) || '000')"
)
_utc_template_postgresql(utc_time, "CAST({0} AS TIME)")
_template(utc_time, "TIME({0})", "mysql", "mariadb")


class ordering(_Function):
    """An ORDER BY term where nulls sort as the lowest value, as OData orders them.

    SQLite and MySQL already sort nulls first when ascending; PostgreSQL needs
    ``NULLS FIRST`` / ``NULLS LAST``.
    """

    type = sa.Integer()
    name = "ordering"
    inherit_cache = True
    _traverse_internals = _cached_with(("descending", _BOOLEAN))

    def __init__(self, value: Any, *, descending: bool) -> None:
        super().__init__(value)
        self.descending = descending


@compiles(ordering)
def _ordering_default(element: ordering, compiler: SQLCompiler, **kw: Any) -> str:
    value = element.sql_args(compiler, **kw)[0]
    return f"{value} {'DESC' if element.descending else 'ASC'}"


@compiles(ordering, "postgresql")
def _ordering_postgresql(element: ordering, compiler: SQLCompiler, **kw: Any) -> str:
    value = element.sql_args(compiler, **kw)[0]
    return f"{value} {'DESC NULLS LAST' if element.descending else 'ASC NULLS FIRST'}"
