"""``GET /tables/{table}``: filtering, ordering, paging, counts and both response shapes."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.elements import ColumnElement
from starlette.requests import Request

from ..odata.ast import Expr, Member, OrderBy
from ..protocol import ApiVersion, dumps, parse_datetime, to_millis
from . import _page_json as page_json
from . import _repository as repo
from ._errors import BadRequest, NotFound
from ._items import render_rows, stamp_datetime
from ._paging import Keyset, QueryOptions, keyset_order, link_url, next_page
from ._query import compile_filter, compile_order_by
from ._replies import Reply
from ._schema import SYSTEM_COLUMNS, TableState
from ._service import TableService


def run_query(
    service: TableService,
    request: Request,
    key: str,
    version: ApiVersion,
    options: QueryOptions,
    *,
    include_deleted: bool,
    path_only: bool,
) -> Reply:
    """Answer a query: v3 ``{"items","count","nextLink"}``; v2 a list or ``{"results","count"}``."""
    state = service.state(key)
    if state is None:
        if not service.schema.allows_new_tables:
            raise NotFound(f"The table {key!r} does not exist")
        return _page_reply([], 0 if options.count else None, None, version, options)
    select = _resolve_select(state, options.select)
    where = _where(state, options, include_deleted)
    order_by = _order_by(state, options.order_by)
    keyset = keyset_order(options.order_by)
    page_where = where if options.after is None else [*where, _after(state, options.after, keyset)]
    take = _page_rows(state, version, options, include_deleted)
    with service.schema.reader.connect() as conn:
        view = service.view(request, state)
        page = functools.partial(
            repo.query_rows, conn, state, view, page_where, order_by, skip=options.skip
        )
        json_page = None if select else _json_page(state, version, conn.dialect)
        if json_page is None:
            rows = page(limit=take + 1)
        else:
            rows = page(limit=take + 1, columns=json_page.columns, source=json_page.source)
            if not page_json.all_canonical(rows):
                json_page, rows = None, page(limit=take + 1)  # render_rows reformats the times
        # The count ignores paging, the keyset position included (protocol.md §4.4).
        count = repo.count_rows(conn, state, view, where) if options.count else None
    more = len(rows) > take
    rows = rows[:take]
    following = next_page(options, len(rows), more)
    link = None
    if following is not None:
        after = None
        if keyset is not None and rows:
            last = page_json.last_item(rows) if json_page else rows[-1]._mapping
            after = _last_position(last)
        link = link_url(request, options, *following, path_only=path_only, after=after)
    if json_page is not None:
        items: Items = page_json.items_fragment(rows)
    else:
        items = render_rows(state, rows, version, select)
    return _page_reply(items, count, link, version, options)


Items = list[dict[str, Any]] | orjson.Fragment


def _json_page(
    state: TableState, version: ApiVersion, dialect: Dialect
) -> page_json.JsonSelect | None:
    return page_json.page_select(state.table, tuple(state.kinds), version, dialect)


def _page_rows(
    state: TableState, version: ApiVersion, options: QueryOptions, include_deleted: bool
) -> int:
    """How many rows this page holds at most: the table's page size, or a sync pull's ``$top``.

    A sync pull (deleted rows included, ``$top`` given) gets all the rows it asks for, up to
    the table's ``max_top`` (``parse_options`` refused more): at 100 rows a page, the cost of
    each request was most of a pull's (docs/benchmarks.md, "Initial pull"). Plain queries keep
    the protocol's page size (§4.3).
    """
    page_size = state.config.page_size or (50 if version is ApiVersion.V2 else 100)
    if options.top is None:
        return page_size
    return options.top if include_deleted else min(options.top, page_size)


def _after(
    state: TableState, after: Keyset, directions: tuple[bool, bool] | None
) -> ColumnElement[bool]:
    """Rows after ``after`` in the (updatedAt, id) order: one range on the sync index."""
    assert directions is not None  # parse_options refuses a $skiptoken with another order
    updated_desc, id_desc = directions
    table, stamp = state.table, stamp_datetime(after.updated_ms)
    updated = table.c.updatedAt
    from_stamp = updated <= stamp if updated_desc else updated >= stamp
    past_stamp = updated < stamp if updated_desc else updated > stamp
    past_id = table.c.id < after.item_id if id_desc else table.c.id > after.item_id
    # The redundant bound is the index range's start; the OR only filters rows within it.
    return sa.and_(from_stamp, sa.or_(past_stamp, past_id))


def _last_position(values: Mapping[Any, Any]) -> Keyset:
    updated = values["updatedAt"]  # wire or stored text on SQLite (see repo.query_rows)
    stamp = parse_datetime(updated) if isinstance(updated, str) else updated
    return Keyset(to_millis(stamp), str(values["id"]))


def _page_reply(
    items: Items,
    count: int | None,
    link: str | None,
    version: ApiVersion,
    options: QueryOptions,
) -> Reply:
    if version is ApiVersion.V3:
        return Reply(200, dumps({"items": items, "count": count, "nextLink": link}))
    headers = {} if link is None else {"Link": f"{link}; rel=next"}
    body: Any = {"results": items, "count": count} if options.count else items
    return Reply(200, dumps(body), headers)


def _where(
    state: TableState, options: QueryOptions, include_deleted: bool
) -> list[ColumnElement[bool]]:
    table = state.table
    where: list[ColumnElement[bool]] = []
    if options.filter is not None:
        where.append(_compiled_filter(options.filter, table))
    if not include_deleted and state.config.soft_delete:
        where.append(table.c.deleted == sa.false())
    return where


# Compiled conditions and orderings, by the identity of the parsed tree (``_paging`` caches
# the tree of each text, so a repeated text brings the same object) and the table. Identity,
# not equality: equal trees can differ in what they render (``1.0m`` == ``1.00m``). The key
# holds the tree, so its id cannot be reused while the entry lives. SQLAlchemy elements are
# immutable and safe to share between threads; its own cache then finds the compiled SQL.
# A table that gains columns is a new ``sa.Table``, hence a new key.
_COMPILED_CACHE_SIZE = 512


class _Same:
    """A cache key equal only to a key for the very same object."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __hash__(self) -> int:
        return id(self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Same) and other.value is self.value


def _compiled_filter(expr: Expr, table: sa.Table) -> ColumnElement[bool]:
    return _cached_filter(_Same(expr), table)


@functools.lru_cache(maxsize=_COMPILED_CACHE_SIZE)
def _cached_filter(key: _Same, table: sa.Table) -> ColumnElement[bool]:
    return compile_filter(key.value, table)  # type: ignore[arg-type]


def _order_by(state: TableState, terms: tuple[OrderBy, ...]) -> list[ColumnElement[Any]]:
    return list(_cached_order_by(_Same(terms), state.table))


@functools.lru_cache(maxsize=_COMPILED_CACHE_SIZE)
def _cached_order_by(key: _Same, table: sa.Table) -> tuple[ColumnElement[Any], ...]:
    terms: tuple[OrderBy, ...] = key.value  # type: ignore[assignment]
    clauses = list(compile_order_by(terms, table)) if terms else []
    if not any(isinstance(term.expr, Member) and term.expr.name == "id" for term in terms):
        clauses.append(table.c.id.asc())
    return tuple(clauses)


def _resolve_select(state: TableState, names: tuple[str, ...]) -> tuple[str, ...]:
    resolved: list[str] = []
    for name in names:
        if name == "*":
            return ()
        system = next((col for col in SYSTEM_COLUMNS if col.lower() == name.lower()), None)
        column = system or state.column_for(name)
        if column is None:
            raise BadRequest(f"$select names an unknown field {name!r}")
        resolved.append(column)
    return tuple(resolved)
