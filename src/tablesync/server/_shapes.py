"""A filter's shape: its SQL with every value a named parameter, shared by every request.

Clients send the same filter with other values (``year ge 1990``, ``year ge 2001``). A page
statement kept per filter *text* (``_repository.kept``) was rebuilt, keyed and compiled
again for each new value; with a few hundred values the kept statements and SQLAlchemy's
compiled cache turned over at every request, and the statements they dropped were garbage
for full collections that held the event loop for up to 80 ms (docs/benchmarks.md).

Two compiled filters have one shape when SQLAlchemy gives them one cache key: the key leaves
out the values of bound parameters and lists those parameters in a fixed order, which is how
SQLAlchemy itself shares one compiled statement between them. The first filter of a shape is
rebuilt with its ``n``-th parameter named ``ts_v<n>``; each request binds its own values by
those names.
"""

from __future__ import annotations

import functools
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import BindParameter, ColumnElement

#: Filter shapes kept (each with its named SQL).
SHAPES_KEPT = 512
_NAME = "ts_v{}"


class Shape:
    """A compiled filter, equal to every filter of its shape (its SQLAlchemy cache key)."""

    __slots__ = ("_hash", "key", "sql")

    def __init__(self, sql: ColumnElement[bool], key: Any) -> None:
        self.sql = sql
        self.key = key
        self._hash = hash(key)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return other is self or (isinstance(other, Shape) and other.key == self.key)


def shape_of(sql: ColumnElement[bool]) -> tuple[Shape, dict[str, Any]] | None:
    """``sql``'s shape and its values by parameter name; ``None`` when it has no shape.

    A filter has none when SQLAlchemy cannot key it, or when some value of it would stay
    in the shape's SQL (:func:`named`): its statement is then built for its request alone.
    """
    cache_key = sql._generate_cache_key()
    if cache_key is None:
        return None
    shape = Shape(sql, cache_key.key)
    if named(shape) is None:
        return None
    values = {_NAME.format(n): bp.effective_value for n, bp in enumerate(cache_key.bindparams)}
    return shape, values


@functools.lru_cache(maxsize=SHAPES_KEPT)
def named(shape: Shape) -> ColumnElement[bool] | None:
    """The SQL of ``shape`` (of the first filter seen of it) with its values named parameters.

    ``None`` when a value would survive the rewrite (a construct whose copy keeps its own
    parameters): binding by name would leave that value, the first request's, in every
    later request's statement.
    """
    cache_key = shape.sql._generate_cache_key()
    assert cache_key is not None
    params = cache_key.bindparams
    names = {id(bp): _NAME.format(n) for n, bp in enumerate(params)}

    renamed_params: dict[int, BindParameter[Any]] = {}

    def rename(element: visitors.ExternallyTraversible, **_: Any) -> BindParameter[Any] | None:
        if not isinstance(element, BindParameter) or id(element) not in names:
            return None
        if id(element) not in renamed_params:  # one parameter in several places stays one
            renamed_params[id(element)] = sa.bindparam(
                names[id(element)],
                type_=element.type,
                expanding=element.expanding,
                literal_execute=element.literal_execute,
                required=True,
            )
        return renamed_params[id(element)]

    renamed: ColumnElement[bool] = visitors.replacement_traverse(shape.sql, {}, rename)
    renamed_key = renamed._generate_cache_key()
    if renamed_key is None or [bp.key for bp in renamed_key.bindparams] != list(names.values()):
        return None
    return renamed
