"""``GET /tables/{table}/{id}`` awaited on the event loop (``_loop_reads``).

The answer of :meth:`TableService.read`, from one statement whose rows need no result
processing: the database writes the item's JSON (as for a page, ``_page_json``), and the
statement adds what the preconditions and headers read (version, deleted, updatedAt).
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement
from starlette.requests import Request

from ..protocol import ApiVersion
from . import _page_json as page_json
from . import _repository as repo
from ._loop_reads import LoopReads
from ._replies import Reply, entity_headers
from ._service import TableService, read_status

_ID = "ts_id"


@functools.lru_cache(maxsize=repo.KEPT_STATEMENTS)
def _item_statement(
    view: ColumnElement[bool], table: sa.Table, json_item: page_json.JsonSelect
) -> sa.Select[Any]:
    """An item's JSON (as a page writes it) and the columns its headers read.

    The id is a parameter, given when the statement runs.
    """
    item_text = json_item.columns[page_json.ITEM]
    return (
        sa.select(item_text, table.c.version, table.c.deleted, table.c.updatedAt)
        .select_from(json_item.source)
        .where(table.c.id == sa.bindparam(_ID, type_=table.c.id.type), view)
    )


async def read_on_loop(
    reads: LoopReads,
    service: TableService,
    request: Request,
    key: str,
    item_id: str,
    version: ApiVersion,
    pre: repo.Preconditions,
    include_deleted: bool,
) -> Reply | None:
    """:meth:`TableService.read`'s answer; ``None`` when it needs a worker thread.

    As for a page (``_querying.query_on_loop``): a table whose columns may change, or one
    whose items the database cannot write as JSON, takes the thread.
    """
    state = service.fixed_state(key)
    if state is None:
        return None
    dialect = service.schema.engine.dialect
    json_item = page_json.page_select(state.table, tuple(state.kinds), version, dialect)
    if json_item is None:
        return None
    view = service.view(request, state)
    statement, values = repo.kept(_item_statement, view, state.table, json_item)
    results = await reads.fetch([(statement, {**values, _ID: item_id})])
    if results is None:
        return None
    row: dict[str, Any] | None = None
    if results[0]:
        item, row_version, deleted, updated = results[0][0]
        # psycopg gives the time in the session's time zone; the headers are written in UTC.
        updated = updated.astimezone(dt.UTC)
        row = {"id": item_id, "version": row_version, "deleted": deleted, "updatedAt": updated}
    status = read_status(row, version, pre, include_deleted)
    assert row is not None  # read_status raised otherwise
    headers = entity_headers(status, row, version, request, state)
    if status == 304:
        return Reply(304, None, headers)
    return Reply(status, item.encode(), headers)
