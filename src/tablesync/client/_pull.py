"""Pull, written once as a sans-I/O flow (see ``_flows`` for the driving contract).

An incremental pull asks for ``updatedAt ge <token>`` ordered by ``updatedAt``; a full pull
walks every page with tombstones. Each page is applied in one store transaction together with
the delta token it earns.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._exceptions import PullFailedError, PushFailedError, UnsupportedQueryError, UsageError
from ..protocol import ApiVersion, format_datetime, parse_datetime
from ..protocol.dates import EPOCH
from ._conflicts import SyncHandler
from ._context import delta_token_key
from ._flows import Flow, push_flow
from ._http import Page, RequestBuilder, check_table_name, parse_page
from ._paging import PageCursor, QueryParams, include_deleted_param, query_params
from ._progress import ProgressCallback, SyncPhase, SyncProgress, report
from ._results import PullResult, PushResult

if TYPE_CHECKING:
    from ..odata import Query
    from ._context import SyncContext


def pull_required_push(
    context: SyncContext,
    builder: RequestBuilder,
    handler: SyncHandler,
    table: str,
    progress: ProgressCallback | None,
) -> Flow[PushResult | None]:
    """The implicit push before a pull: the whole context, if ``table`` has pending ops."""
    if not context.pending_count(table):
        return None
    try:
        return (yield from push_flow(context, builder, handler, progress=progress))
    except PushFailedError as exc:
        raise PullFailedError(
            f"pulling {table!r} needs its pending operations pushed first, and the push failed: "
            f"{exc}"
        ) from exc


# -- pull ------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Tally:
    pages: int = 0
    received: int = 0
    upserted: int = 0
    deleted: int = 0
    skipped: int = 0

    def add(self, page: Page, applied: Any) -> None:
        self.pages += 1
        self.received += len(page.items) + page.skipped
        self.upserted += applied.upserted
        self.deleted += applied.deleted
        self.skipped += applied.skipped + page.skipped

    def result(self, table: str, query_id: str | None, push: PushResult | None) -> PullResult:
        return PullResult(
            table,
            query_id,
            self.pages,
            self.received,
            self.upserted,
            self.deleted,
            self.skipped,
            push,
        )


@dataclass(frozen=True, slots=True)
class PullSpec:
    """What to pull: the table, the user's query, the incremental query id, the page size."""

    table: str
    query: Query | None = None
    query_id: str | None = None
    page_size: int = 50


def pull_flow(
    context: SyncContext,
    builder: RequestBuilder,
    handler: SyncHandler,
    spec: PullSpec,
    progress: ProgressCallback | None = None,
) -> Flow[PullResult]:
    """Pull ``spec.table`` into the store: incremental with a query id, else everything.

    Pending operations of the table are pushed first (the whole context); a failed push fails
    the pull with ``PullFailedError``. Each page is applied in one store transaction together
    with the delta token it earns, so an interrupted pull resumes where it stopped.
    """
    params = _checked_pull_params(spec, builder.api_version)
    push = yield from pull_required_push(context, builder, handler, spec.table, progress)
    tally = _Tally()
    if spec.query_id is None:
        yield from _full_pull(context, builder, spec, params, tally, progress)
    else:
        yield from _incremental_pull(context, builder, spec, params, tally, progress)
    result = tally.result(spec.table, spec.query_id, push)
    handler.on_pull_complete(result)
    return result


def _checked_pull_params(spec: PullSpec, version: ApiVersion) -> QueryParams:
    check_table_name(spec.table)
    if spec.page_size < 1:
        raise UsageError(f"page_size must be at least 1, not {spec.page_size}")
    if spec.query_id is not None:
        check_query_id(spec.query_id)
    params = query_params(spec.query, version)
    if params.get("$select") is not None:
        raise UnsupportedQueryError("a pull cannot use $select: the store keeps whole items")
    if spec.query_id is not None and (
        params.skip or params.top is not None or params.get("$orderby") is not None
    ):
        raise UnsupportedQueryError(
            "an incremental pull (query_id given) orders and pages by itself: "
            "remove order_by, skip and top from its query"
        )
    return params


def check_query_id(query_id: str) -> str:
    """A query id names a delta token: non-empty, under 255 characters, without ``|``."""
    if not isinstance(query_id, str) or not query_id or len(query_id) >= 255 or "|" in query_id:
        raise UnsupportedQueryError(
            f"invalid query_id {query_id!r}: use 1 to 254 characters, without '|'"
        )
    return query_id


def _apply(
    context: SyncContext,
    spec: PullSpec,
    page: Page,
    tally: _Tally,
    progress: ProgressCallback | None,
    token: tuple[str, str] | None = None,
) -> None:
    applied = context.apply_pulled_page(spec.table, page.items, delta_token=token)
    tally.add(page, applied)
    report(progress, SyncProgress(SyncPhase.PULL, spec.table, tally.received, None))


def _full_pull(
    context: SyncContext,
    builder: RequestBuilder,
    spec: PullSpec,
    params: QueryParams,
    tally: _Tally,
    progress: ProgressCallback | None,
) -> Flow[None]:
    # Tombstones come too, so rows deleted on the server disappear locally.
    plain = [*params.without("__includedeleted"), include_deleted_param(builder.api_version)]
    cursor = PageCursor(
        builder,
        spec.table,
        plain,
        page_size=spec.page_size,
        skip=params.skip,
        top=params.top,
        until_empty=True,
    )
    while (request := cursor.request()) is not None:
        page = parse_page((yield request))
        _apply(context, spec, page, tally, progress)
        cursor.advance(page)


def _incremental_pull(
    context: SyncContext,
    builder: RequestBuilder,
    spec: PullSpec,
    params: QueryParams,
    tally: _Tally,
    progress: ProgressCallback | None,
) -> Flow[None]:
    """``updatedAt ge <token>`` ordered by ``updatedAt``, re-based when the maximum grows.

    When a page does not raise the maximum ``updatedAt`` (every row shares one timestamp),
    ``$skip`` moves past it instead, so ties never repeat endlessly nor get lost, even
    against servers whose timestamps are not unique. The stored token is the largest
    ``updatedAt`` applied: with ``ge``, rows sharing it are fetched again, never skipped.
    """
    assert spec.query_id is not None
    key = delta_token_key(spec.table, spec.query_id)
    stored = context.get_delta_token(spec.table, spec.query_id)
    bound = _parse_token(stored)
    skip, previous, jumped = 0, None, False
    at_bound: set[str] = set()  # ids read at the bound since the last re-base
    while True:
        request = builder.build(
            "GET",
            builder.table_url(spec.table),
            params=incremental_params(params, builder.api_version, bound, skip, spec.page_size),
            query=True,
        )
        page = parse_page((yield request))
        if not page.items and not page.skipped:
            tally.pages += 1
            return
        newest = max((_updated_at(item) for item in page.items), default=bound)
        grew = newest > bound
        previous = _check_progress(spec.table, previous, bound, skip, page)
        jumped = jumped or (skip > 0 and _moved(page, at_bound, bound))
        token = (key, format_datetime(newest)) if grew and not jumped else None
        _apply(context, spec, page, tally, progress, token)
        at_bound = set() if grew else at_bound | {item["id"] for item in page.items}
        bound, skip = (newest, 0) if grew else (bound, skip + len(page.items) + page.skipped)


def _moved(page: Page, at_bound: set[str], bound: dt.datetime) -> bool:
    """Whether a ``$skip`` page shows a row read at the bound again, updated since.

    ``$skip`` steps over the rows read at the bound. When one of them was updated between
    the requests it left the front of the order, so the skip also stepped over a row never
    read (for example one written just before that update). The caller then keeps the
    stored token for the rest of the pull, and the next pull reads from the bound again
    (harmless: stores upsert). Found by tests/scaleout/test_stress.py.
    """
    return any(item["id"] in at_bound and _updated_at(item) > bound for item in page.items)


_PageKey = tuple[dt.datetime, list[tuple[str, Any]]]


def _check_progress(
    table: str, previous: _PageKey | None, bound: dt.datetime, skip: int, page: Page
) -> _PageKey:
    """Refuse to loop when a server ignores ``$skip``: the same page again at a larger skip."""
    # The same ids in new versions is progress (rows updated meanwhile), not a repeat.
    ids = [(item["id"], item.get("updatedAt")) for item in page.items]
    if skip and previous is not None and previous == (bound, ids):
        raise PullFailedError(
            f"the server sent the same page of {table!r} again for $skip={skip}: it seems to "
            "ignore $skip, so the pull cannot move past rows that share one updatedAt"
        )
    return bound, ids


def _parse_token(value: str | None) -> dt.datetime:
    if not value:
        return EPOCH
    try:
        return parse_datetime(value)
    except ValueError:
        return EPOCH  # an unreadable token costs one full re-download, nothing worse


def _updated_at(item: Mapping[str, Any]) -> dt.datetime:
    value = item.get("updatedAt")
    if isinstance(value, str):
        try:
            return parse_datetime(value)
        except ValueError:
            pass
    return EPOCH  # as the official clients do: a row without a usable stamp counts as epoch


def incremental_params(
    params: QueryParams, version: ApiVersion, bound: dt.datetime, skip: int, top: int
) -> list[tuple[str, str]]:
    """The parameters of one incremental page."""
    condition = f"updatedAt ge {datetime_literal(bound, version)}"
    user_filter = params.get("$filter")
    text = f"({user_filter}) and ({condition})" if user_filter else condition
    rest = params.without("$filter", "$orderby", "__includedeleted")
    return [
        ("$filter", text),
        ("$orderby", "updatedAt"),
        ("$skip", str(skip)),
        ("$top", str(top)),
        include_deleted_param(version),
        *rest,
    ]


def datetime_literal(value: dt.datetime, version: ApiVersion) -> str:
    """A date/time literal of each OData dialect, at millisecond precision in UTC."""
    text = format_datetime(value)
    if version is ApiVersion.V2:
        return f"datetimeoffset'{text}'"
    return f"cast({text},Edm.DateTimeOffset)"


def sync_flow(
    context: SyncContext,
    builder: RequestBuilder,
    handler: SyncHandler,
    specs: list[PullSpec],
    progress: ProgressCallback | None = None,
) -> Flow[list[PullResult]]:
    """Push the whole queue (if anything is queued), then pull each table in turn."""
    if context.pending_count():
        yield from push_flow(context, builder, handler, progress=progress)
    results = []
    for spec in specs:
        results.append((yield from pull_flow(context, builder, handler, spec, progress)))
    return results
