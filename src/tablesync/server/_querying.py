"""``GET /tables/{table}``: filtering, ordering, paging, counts and both response shapes."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
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
from ._loop_reads import LoopReads
from ._paging import Keyset, QueryOptions, keyset_order, link_url, next_page
from ._query import compile_filter, compile_order_by
from ._replies import Reply
from ._schema import SYSTEM_COLUMNS, TableState
from ._service import TableService
from ._shapes import Shape, named, shape_of

#: A statement and the values of its named parameters (the request's own values).
Statement = tuple[sa.Select[Any], dict[str, Any]]
# The parameters of a kept page statement (see ``repo.kept``).
_SKIP, _LIMIT, _AFTER_STAMP, _AFTER_ID = "ts_skip", "ts_limit", "ts_after_stamp", "ts_after_id"


@dataclass(frozen=True, slots=True)
class PageQuery:
    """One page query, resolved: its statements, and what its answer needs besides their rows.

    Built without I/O (:func:`plan_query`), so that its statements can run on a worker
    thread's connection (:func:`run_query`) or be awaited on the event loop
    (:func:`query_on_loop`).
    """

    state: TableState
    version: ApiVersion
    options: QueryOptions
    select: tuple[str, ...]
    take: int
    json_page: page_json.JsonSelect | None
    view: ColumnElement[bool]
    #: The filter: its shape (values bound by name), or itself, or ``None``.
    filter: Shape | _Same | None
    #: The values of the filter's shape.
    filter_values: Mapping[str, Any]
    hide_deleted: bool
    dialect: str

    def rows(self, *, as_json: bool = True) -> Statement:
        """The page's rows, one more than it holds (is there a next page?).

        ``as_json`` (when ``json_page`` is set): each row is the item's JSON text and whether
        its times are canonical (``_page_json``); else the table's columns.
        """
        options = self.options
        after = options.after
        directions = None if after is None else keyset_order(options.order_by)
        statement, values = repo.kept(
            _page_statement, self.view, self.state.table, self.json_page if as_json else None,
            self.filter, _Same(options.order_by), self.hide_deleted, directions, self.dialect,
        )  # fmt: skip
        values.update(self.filter_values)
        values.update({_SKIP: options.skip, _LIMIT: self.take + 1})
        if after is not None:
            values[_AFTER_STAMP] = stamp_datetime(after.updated_ms)
            values[_AFTER_ID] = after.item_id
        return statement, values

    def count(self) -> Statement | None:
        """The count of matching rows, when asked for.

        Paging is ignored, the keyset position included (protocol.md §4.4).
        """
        if not self.options.count:
            return None
        statement, values = repo.kept(
            _count_statement, self.view, self.state.table, self.filter, self.hide_deleted
        )
        values.update(self.filter_values)
        return statement, values


@functools.lru_cache(maxsize=repo.KEPT_STATEMENTS)
def _page_statement(
    view: ColumnElement[bool],
    table: sa.Table,
    json_page: page_json.JsonSelect | None,
    filter_key: Shape | _Same | None,
    order_by: _Same,
    hide_deleted: bool,
    keyset: tuple[bool, bool] | None,
    dialect: str,
) -> sa.Select[Any]:
    where = _where(table, filter_key, hide_deleted)
    if keyset is not None:
        where.append(_after(table, keyset))
    return repo.page_statement(
        table, view, where, _order_by(table, order_by.value),  # type: ignore[arg-type]
        skip=sa.bindparam(_SKIP, type_=sa.Integer()),
        limit=sa.bindparam(_LIMIT, type_=sa.Integer()),
        dialect=dialect,
        columns=None if json_page is None else json_page.columns,
        source=None if json_page is None else json_page.source,
    )  # fmt: skip


@functools.lru_cache(maxsize=repo.KEPT_STATEMENTS)
def _count_statement(
    view: ColumnElement[bool], table: sa.Table, filter_key: Shape | _Same | None, hide_deleted: bool
) -> sa.Select[Any]:
    where = _where(table, filter_key, hide_deleted)
    return repo.count_statement(table, view, where)


def plan_query(
    service: TableService,
    request: Request,
    state: TableState,
    version: ApiVersion,
    options: QueryOptions,
    *,
    include_deleted: bool,
) -> PageQuery:
    """The page query ``options`` ask of ``state``, as the caller may see it (400s raised)."""
    dialect = service.schema.engine.dialect
    select = _resolve_select(state, options.select)
    filter_key, filter_values = _filter_key(options.filter, state.table)
    return PageQuery(
        state=state,
        version=version,
        options=options,
        select=select,
        take=_page_rows(state, version, options, include_deleted),
        json_page=None if select else _json_page(state, version, dialect),
        view=service.view(request, state),
        filter=filter_key,
        filter_values=filter_values,
        hide_deleted=not include_deleted and state.config.soft_delete,
        dialect=dialect.name,
    )


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
    plan = plan_query(service, request, state, version, options, include_deleted=include_deleted)
    as_json = plan.json_page is not None
    with service.schema.reader.connect() as conn:
        if as_json:
            rows = repo.fetch_raw(conn, *plan.rows())
            if not page_json.all_canonical(rows):
                as_json = False  # render_rows reformats the times
        if not as_json:
            rows = list(conn.execute(*plan.rows(as_json=False)).all())
        counting = plan.count()
        count = None if counting is None else int(conn.execute(*counting).scalar_one())
    return answer_query(plan, request, rows, count, as_json=as_json, path_only=path_only)


async def query_on_loop(
    reads: LoopReads,
    service: TableService,
    request: Request,
    key: str,
    version: ApiVersion,
    options: QueryOptions,
    *,
    include_deleted: bool,
    path_only: bool,
) -> Reply | None:
    """:func:`run_query`'s answer, its statements awaited on the event loop (``_loop_reads``).

    ``None`` when this query needs a worker thread: a table whose columns may have changed
    (the registry is read first), a page rendered in Python, or a statement ``reads`` cannot
    run. A JSON page's rows need no result processing; PostgreSQL's are always canonical.
    """
    state = service.fixed_state(key)
    if state is None:
        return None
    plan = plan_query(service, request, state, version, options, include_deleted=include_deleted)
    if plan.json_page is None:
        return None
    counting = plan.count()
    statements = [plan.rows()] if counting is None else [plan.rows(), counting]
    results = await reads.fetch(statements)
    if results is None:
        return None
    count = None if counting is None else int(results[1][0][0])
    return answer_query(plan, request, results[0], count, as_json=True, path_only=path_only)


def answer_query(
    plan: PageQuery,
    request: Request,
    rows: Sequence[Any],
    count: int | None,
    *,
    as_json: bool,
    path_only: bool,
) -> Reply:
    """The reply to ``plan`` from its rows (JSON rows when ``as_json``) and its count."""
    options, take = plan.options, plan.take
    more = len(rows) > take
    rows = rows[:take]
    following = next_page(options, len(rows), more)
    link = None
    if following is not None:
        after = None
        if keyset_order(options.order_by) is not None and rows:
            last = page_json.last_item(rows) if as_json else rows[-1]._mapping
            after = _last_position(last)
        link = link_url(request, options, *following, path_only=path_only, after=after)
    if as_json:
        items: Items = page_json.items_fragment(rows)
    else:
        items = render_rows(plan.state, rows, plan.version, plan.select)
    return _page_reply(items, count, link, plan.version, options)


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


def _after(table: sa.Table, directions: tuple[bool, bool]) -> ColumnElement[bool]:
    """Rows after a keyset position, in the (updatedAt, id) order: one range on the sync index.

    The position is two parameters, given when the statement runs.
    """
    updated_desc, id_desc = directions
    updated, item_id = table.c.updatedAt, table.c.id
    stamp = sa.bindparam(_AFTER_STAMP, type_=updated.type)
    after_id = sa.bindparam(_AFTER_ID, type_=item_id.type)
    from_stamp = updated <= stamp if updated_desc else updated >= stamp
    past_stamp = updated < stamp if updated_desc else updated > stamp
    past_id = item_id < after_id if id_desc else item_id > after_id
    # The redundant bound is the index range's start; the OR only filters rows within it.
    return sa.and_(from_stamp, sa.or_(past_stamp, past_id))


def _last_position(values: Mapping[Any, Any]) -> Keyset:
    updated = values["updatedAt"]  # wire or stored text on SQLite (see repo.page_statement)
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


def _filter_key(
    expr: Expr | None, table: sa.Table
) -> tuple[Shape | _Same | None, Mapping[str, Any]]:
    """The key a statement holding the filter ``expr`` is kept by, and the values it binds.

    A filter is kept by its shape (``_shapes``), else by the very same compiled filter.
    """
    if expr is None:
        return None, {}
    return _cached_filter_key(_Same(expr), table)


def _where(
    table: sa.Table, filter_key: Shape | _Same | None, hide_deleted: bool
) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if isinstance(filter_key, Shape):
        sql = named(filter_key)
        assert sql is not None  # shape_of made sure
        where.append(sql)
    elif filter_key is not None:
        where.append(filter_key.value)  # type: ignore[arg-type]
    if hide_deleted:
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


@functools.lru_cache(maxsize=_COMPILED_CACHE_SIZE)
def _cached_filter_key(key: _Same, table: sa.Table) -> tuple[Shape | _Same, Mapping[str, Any]]:
    # Kept beside the compiled filter: a repeated text (a pull's next links) finds its
    # shape and values without keying and hashing the filter again. The values are shared
    # by every request of the text, hence read-only.
    sql = _compiled_filter(key.value, table)  # type: ignore[arg-type]
    shaped = shape_of(sql)
    if shaped is None:
        return _Same(sql), MappingProxyType({})
    shape, values = shaped
    return shape, MappingProxyType(values)


def _order_by(table: sa.Table, terms: tuple[OrderBy, ...]) -> list[ColumnElement[Any]]:
    return list(_cached_order_by(_Same(terms), table))


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
