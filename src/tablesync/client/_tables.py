"""Table handles: online tables (every call is a request) and sync tables (local first).

The request logic of online tables is written once, as small flows; ``Table`` and
``AsyncTable`` (and ``SyncTable`` / ``AsyncSyncTable``) are a deliberate mirror of thin
shells that hand those flows to their client's driver.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import httpx

from .._exceptions import ServerError, UsageError
from ..protocol import ApiVersion, new_id, strip_system_properties
from ._flows import Flow
from ._http import (
    Page,
    RequestBuilder,
    check,
    check_item_id,
    item_from_response,
    parse_page,
)
from ._paging import PageCursor, as_query, count_param, include_deleted_param, query_params
from ._progress import ProgressCallback
from ._pull import PullSpec, pull_flow
from ._results import PullResult
from ._store import Operation

if TYPE_CHECKING:
    from ..odata import Query
    from ._async_client import AsyncClient
    from ._client import BaseClient, Client


# -- online request flows ----------------------------------------------------------------------


def _item_id_of(item_or_id: Mapping[str, Any] | str) -> tuple[str, str | None]:
    if isinstance(item_or_id, str):
        return check_item_id(item_or_id), None
    if not isinstance(item_or_id, Mapping):
        raise UsageError(f"expected an item (dict) or an id, not {type(item_or_id).__name__}")
    version = item_or_id.get("version")
    return check_item_id(item_or_id.get("id")), version if isinstance(version, str) else None


def _checked_item(item: Mapping[str, Any], *, needs_id: bool) -> dict[str, Any]:
    if not isinstance(item, Mapping):
        raise UsageError(f"an item must be a mapping (dict), not {type(item).__name__}")
    if needs_id or item.get("id") is not None:
        check_item_id(item.get("id"))
    return dict(item)


def insert_flow(
    builder: RequestBuilder, table: str, item: Mapping[str, Any]
) -> Flow[dict[str, Any]]:
    """POST a new item; the server's stored copy is returned."""
    body = strip_system_properties(_checked_item(item, needs_id=False))
    request = builder.build("POST", builder.table_url(table), json=body, idempotency_key=new_id())
    return item_from_response(check((yield request)))


def get_flow(
    builder: RequestBuilder, table: str, item_id: str, *, include_deleted: bool = False
) -> Flow[dict[str, Any]]:
    """GET one item (``NotFoundError`` when missing or deleted)."""
    params = [include_deleted_param(builder.api_version)] if include_deleted else None
    url = builder.item_url(table, check_item_id(item_id))
    return item_from_response(check((yield builder.build("GET", url, params=params))))


def update_flow(
    builder: RequestBuilder, table: str, item: Mapping[str, Any], *, force: bool = False
) -> Flow[dict[str, Any]]:
    """Replace (v3 PUT) or merge (v2 PATCH) an item, conditional on its ``version``."""
    data = _checked_item(item, needs_id=True)
    version = None if force else data.get("version")
    url = builder.item_url(table, data["id"])
    if builder.api_version is ApiVersion.V2:
        method, body = "PATCH", strip_system_properties(data)
    else:
        method, body = "PUT", strip_system_properties(data, keep_version=not force)
    request = builder.build(
        method,
        url,
        json=body,
        version=version if isinstance(version, str) else None,
        idempotency_key=new_id(),
    )
    return item_from_response(check((yield request)))


def delete_flow(
    builder: RequestBuilder, table: str, item_or_id: Mapping[str, Any] | str
) -> Flow[None]:
    """DELETE an item; an item's ``version`` makes it conditional."""
    item_id, version = _item_id_of(item_or_id)
    url = builder.item_url(table, item_id)
    check((yield builder.build("DELETE", url, version=version, idempotency_key=new_id())))


def undelete_flow(
    builder: RequestBuilder, table: str, item_or_id: Mapping[str, Any] | str
) -> Flow[dict[str, Any]]:
    """Restore a soft-deleted item: v2 ``POST /tables/t/{id}``, v3 PATCH ``deleted: false``."""
    item_id, version = _item_id_of(item_or_id)
    url = builder.item_url(table, item_id)
    key = new_id()
    if builder.api_version is ApiVersion.V2:
        request = builder.build("POST", url, version=version, idempotency_key=key)
    else:
        body = {"deleted": False}
        request = builder.build("PATCH", url, json=body, version=version, idempotency_key=key)
    return item_from_response(check((yield request)))


def count_flow(builder: RequestBuilder, table: str, query: Query | str | None) -> Flow[int]:
    """How many items match ``query``'s filter, counted by the server."""
    params = query_params(query, builder.api_version)
    wire = [*params.params, count_param(builder.api_version), ("$top", "1")]
    url = builder.table_url(table)
    response = yield builder.build("GET", url, params=wire, query=True)
    page = parse_page(response)
    if page.count is None:
        raise ServerError(
            f"GET {url} did not return a count", status_code=response.status_code, body=None
        )
    return page.count


def page_flow(request: httpx.Request) -> Flow[Page]:
    """Send one prepared query request and read its page."""
    return parse_page((yield request))


def _cursor(client: BaseClient, table: str, query: Query | str | None) -> PageCursor:
    params = query_params(query, client.api_version)
    return PageCursor(
        client._builder,
        table,
        params.params,
        page_size=client.page_size,
        skip=params.skip,
        top=params.top,
    )


# -- online tables --------------------------------------------------------------------------


class Table:
    """An online table: each call is one request (or one per page, for queries).

    Get one from :meth:`Client.table`.
    """

    def __init__(self, client: Client, name: str) -> None:
        self._client = client
        self.name = name

    def __repr__(self) -> str:
        return f"<Table {self.name!r}>"

    def insert(self, item: Mapping[str, Any]) -> dict[str, Any]:
        """Insert ``item``; returns the server's copy (``ConflictError`` if the id exists)."""
        return self._client._run(insert_flow(self._client._builder, self.name, item))

    def get(self, item_id: str, *, include_deleted: bool = False) -> dict[str, Any]:
        """The item with ``item_id`` (``NotFoundError`` if missing or deleted)."""
        flow = get_flow(self._client._builder, self.name, item_id, include_deleted=include_deleted)
        return self._client._run(flow)

    def update(self, item: Mapping[str, Any], *, force: bool = False) -> dict[str, Any]:
        """Update ``item``; its ``version`` guards against lost updates unless ``force``."""
        return self._client._run(update_flow(self._client._builder, self.name, item, force=force))

    def delete(self, item_or_id: Mapping[str, Any] | str) -> None:
        """Delete an item (conditional on the version of an item passed in)."""
        self._client._run(delete_flow(self._client._builder, self.name, item_or_id))

    def undelete(self, item_or_id: Mapping[str, Any] | str) -> dict[str, Any]:
        """Restore a soft-deleted item; returns the server's copy."""
        return self._client._run(undelete_flow(self._client._builder, self.name, item_or_id))

    def count(self, query: Query | str | None = None) -> int:
        """How many items match ``query``'s filter."""
        return self._client._run(count_flow(self._client._builder, self.name, query))

    def query(self, query: Query | str | None = None) -> Iterator[dict[str, Any]]:
        """Every item matching ``query``, fetched page by page as the iteration goes."""
        cursor = _cursor(self._client, self.name, query)
        while (request := cursor.request()) is not None:
            page = self._client._run(page_flow(request))
            cursor.advance(page)
            yield from page.items


class AsyncTable:
    """The async mirror of :class:`Table`; get one from :meth:`AsyncClient.table`."""

    def __init__(self, client: AsyncClient, name: str) -> None:
        self._client = client
        self.name = name

    def __repr__(self) -> str:
        return f"<AsyncTable {self.name!r}>"

    async def insert(self, item: Mapping[str, Any]) -> dict[str, Any]:
        """Insert ``item``; returns the server's copy (``ConflictError`` if the id exists)."""
        return await self._client._run(insert_flow(self._client._builder, self.name, item))

    async def get(self, item_id: str, *, include_deleted: bool = False) -> dict[str, Any]:
        """The item with ``item_id`` (``NotFoundError`` if missing or deleted)."""
        flow = get_flow(self._client._builder, self.name, item_id, include_deleted=include_deleted)
        return await self._client._run(flow)

    async def update(self, item: Mapping[str, Any], *, force: bool = False) -> dict[str, Any]:
        """Update ``item``; its ``version`` guards against lost updates unless ``force``."""
        flow = update_flow(self._client._builder, self.name, item, force=force)
        return await self._client._run(flow)

    async def delete(self, item_or_id: Mapping[str, Any] | str) -> None:
        """Delete an item (conditional on the version of an item passed in)."""
        await self._client._run(delete_flow(self._client._builder, self.name, item_or_id))

    async def undelete(self, item_or_id: Mapping[str, Any] | str) -> dict[str, Any]:
        """Restore a soft-deleted item; returns the server's copy."""
        return await self._client._run(undelete_flow(self._client._builder, self.name, item_or_id))

    async def count(self, query: Query | str | None = None) -> int:
        """How many items match ``query``'s filter."""
        return await self._client._run(count_flow(self._client._builder, self.name, query))

    async def query(self, query: Query | str | None = None) -> AsyncIterator[dict[str, Any]]:
        """Every item matching ``query``, fetched page by page as the iteration goes."""
        cursor = _cursor(self._client, self.name, query)
        while (request := cursor.request()) is not None:
            page = await self._client._run(page_flow(request))
            cursor.advance(page)
            for item in page.items:
                yield item


# -- sync tables ------------------------------------------------------------------------------


def _local_id(item_or_id: Mapping[str, Any] | str) -> str:
    return _item_id_of(item_or_id)[0]


C = TypeVar("C", bound="BaseClient")


class _SyncTableBase(Generic[C]):
    def __init__(self, client: C, name: str) -> None:
        self._client = client
        self.name = name

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    @property
    def pending_operations(self) -> list[Operation]:
        """The queued operations of this table, in queue order."""
        return self._client.context.pending_operations(self.name)

    def _pull_flow(
        self,
        query: Query | str | None,
        query_id: str | None,
        page_size: int | None,
        progress: ProgressCallback | None,
    ) -> Flow[PullResult]:
        spec = PullSpec(
            self.name, as_query(query), query_id, page_size or self._client.pull_page_size
        )
        client = self._client
        return pull_flow(client.context, client._builder, client.handler, spec, progress)


class SyncTable(_SyncTableBase["Client"]):
    """A table kept in the local store: writes are local and queued; pull and push sync them.

    Get one from :meth:`Client.sync_table`.
    """

    def insert(self, item: Mapping[str, Any]) -> dict[str, Any]:
        """Insert locally and queue the insert; an ``id`` is generated when missing."""
        return self._client.context.insert(self.name, item)

    def update(self, item: Mapping[str, Any]) -> dict[str, Any]:
        """Update (or create) the local row and queue the update."""
        return self._client.context.update(self.name, item)

    def delete(self, item_or_id: Mapping[str, Any] | str) -> None:
        """Delete the local row and queue the delete."""
        self._client.context.delete(self.name, _local_id(item_or_id))

    def get(self, item_id: str) -> dict[str, Any] | None:
        """The local item, or ``None``."""
        return self._client.context.get(self.name, item_id)

    def query(self, query: Query | str | None = None) -> list[dict[str, Any]]:
        """Local items matching ``query``."""
        return self._client.context.query(self.name, as_query(query))

    def count(self, query: Query | str | None = None) -> int:
        """How many local items match ``query``'s filter."""
        return self._client.context.count(self.name, as_query(query))

    def pull(
        self,
        query: Query | str | None = None,
        query_id: str | None = None,
        *,
        page_size: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> PullResult:
        """Bring the server's items into the store (incremental when ``query_id`` is given).

        Pending operations of this table are pushed first.

        Raises:
            PullFailedError: the implicit push failed (chaining its ``PushFailedError``).
            UnsupportedQueryError: the query has ``$select``, or ordering/paging with a
                ``query_id``.
        """
        return self._client._run_exclusive(self._pull_flow(query, query_id, page_size, progress))

    def purge(
        self, query: Query | str | None = None, query_id: str | None = None, *, force: bool = False
    ) -> int:
        """Delete local rows (all, or those matching ``query``) and reset ``query_id``'s token.

        Raises:
            QueueError: the table has pending operations and ``force`` is false (or the purge
                is filtered).
        """
        return self._client.context.purge(
            self.name, as_query(query), query_id=query_id, force=force
        )


class AsyncSyncTable(_SyncTableBase["AsyncClient"]):
    """The async mirror of :class:`SyncTable`.

    Local calls run inline: they are short SQLite transactions (see ``docs/client.md``).
    """

    async def insert(self, item: Mapping[str, Any]) -> dict[str, Any]:
        """Insert locally and queue the insert; an ``id`` is generated when missing."""
        return self._client.context.insert(self.name, item)

    async def update(self, item: Mapping[str, Any]) -> dict[str, Any]:
        """Update (or create) the local row and queue the update."""
        return self._client.context.update(self.name, item)

    async def delete(self, item_or_id: Mapping[str, Any] | str) -> None:
        """Delete the local row and queue the delete."""
        self._client.context.delete(self.name, _local_id(item_or_id))

    async def get(self, item_id: str) -> dict[str, Any] | None:
        """The local item, or ``None``."""
        return self._client.context.get(self.name, item_id)

    async def query(self, query: Query | str | None = None) -> list[dict[str, Any]]:
        """Local items matching ``query``."""
        return self._client.context.query(self.name, as_query(query))

    async def count(self, query: Query | str | None = None) -> int:
        """How many local items match ``query``'s filter."""
        return self._client.context.count(self.name, as_query(query))

    async def pull(
        self,
        query: Query | str | None = None,
        query_id: str | None = None,
        *,
        page_size: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> PullResult:
        """Bring the server's items into the store; see :meth:`SyncTable.pull`."""
        flow = self._pull_flow(query, query_id, page_size, progress)
        return await self._client._run_exclusive(flow)

    async def purge(
        self, query: Query | str | None = None, query_id: str | None = None, *, force: bool = False
    ) -> int:
        """Delete local rows and reset ``query_id``'s token; see :meth:`SyncTable.purge`."""
        return self._client.context.purge(
            self.name, as_query(query), query_id=query_id, force=force
        )
