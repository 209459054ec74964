"""Pull, written once as a sans-I/O flow (see ``_flows`` for the driving contract).

An incremental pull pages by keyset over ``(updatedAt, id)`` from its delta token; a full
pull walks every page with tombstones. Each page is applied in one store transaction together with
the delta token it earns.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import httpx

from .._exceptions import PullFailedError, PushFailedError, UnsupportedQueryError, UsageError
from ..odata import Literal, to_odata
from ..protocol import ApiVersion, format_datetime, parse_datetime
from ..protocol.dates import EPOCH, truncate_millis
from ._conflicts import SyncHandler
from ._context import PageApplied, delta_token_key
from ._flows import Flow, Prefetch, push_flow
from ._http import (
    Page,
    RequestBuilder,
    check_table_name,
    parse_ahead,
    parse_page,
    values_of,
)
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

    def add(self, page: Page, applied: PageApplied) -> None:
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
    source = None if page.source is None or page.path is None else (page.source, page.path)
    applied = context.apply_pulled_page(spec.table, page.items, delta_token=token, source=source)
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
    request = cursor.request()
    while request is not None:
        page = parse_page((yield request))
        cursor.advance(page)
        request = cursor.request()
        if request is not None:
            yield Prefetch(request, parse_ahead)  # the next page travels while this is stored
        _apply(context, spec, page, tally, progress)


def _incremental_pull(
    context: SyncContext,
    builder: RequestBuilder,
    spec: PullSpec,
    params: QueryParams,
    tally: _Tally,
    progress: ProgressCallback | None,
) -> Flow[None]:
    """Keyset paging over ``(updatedAt, id)``, ending on an empty page.

    Each page asks for the rows after the cursor (the last row read), ordered by
    ``updatedAt,id``; no ``$skip`` and no next link, so rows sharing a timestamp, or written
    or updated between two requests, are never stepped over nor repeated endlessly. The
    cursor is the delta token, stored with the page that earned it.
    """
    assert spec.query_id is not None
    key = delta_token_key(spec.table, spec.query_id)
    cursor = PullCursor.parse(context.get_delta_token(spec.table, spec.query_id))
    block = False  # reading one millisecond by id (see _advance)
    url = builder.table_url(spec.table)

    def page_request(cursor: PullCursor, block: bool) -> httpx.Request:
        query = incremental_params(params, builder.api_version, cursor, block, spec.page_size)
        return builder.build("GET", url, params=query, query=True)

    def prefetch(cursor: PullCursor, block: bool) -> Prefetch:
        """The page after ``cursor``, with the guess at the page after that (``guess``)."""
        return Prefetch(page_request(cursor, block), parse_ahead, partial(guess, cursor, block))

    def guess(cursor: PullCursor, block: bool, response: httpx.Response) -> Prefetch | None:
        last = last_item_guess(response.content)
        if last is None:
            return None
        return prefetch(*_advance(spec.table, cursor, block, Page([last], None, None)))

    request = page_request(cursor, block)
    while True:
        page = parse_page((yield request))
        if not page.items:
            _check_usable(spec.table, page)
            if not block:
                tally.pages += 1
                return
            cursor, block = PullCursor(cursor.updated_at + _MILLISECOND), False
        else:
            cursor, block = _advance(spec.table, cursor, block, page)
        # The next page's query is known from this page alone: fetch it while this page is
        # stored. Its token is committed with the page that earned it, so a failure of the
        # next fetch (thrown in at its ``yield``) comes after this page is safely stored.
        ahead = prefetch(cursor, block)
        request = ahead.request
        yield ahead
        _apply(context, spec, page, tally, progress, (key, cursor.token()))


_MILLISECOND = dt.timedelta(milliseconds=1)
_ITEM_START = b'{"id":'
_TAIL_DECODER = json.JSONDecoder()


def last_item_guess(content: bytes) -> dict[str, Any] | None:
    """A guess at a page's last item, read from the end of its text alone (or ``None``).

    Decoding a whole page takes a while; the driver sends the next page's request on this
    guess meanwhile (``Prefetch.follow``). Servers that write each item's ``id`` first
    (tablesync's do) end the last item's text after the last ``{"id":``; anywhere else the
    guess is wrong or missing, and the request goes out once the page is read, as it would
    without a guess (the flow only uses a guessed request that equals its own).
    """
    start = content.rfind(_ITEM_START)
    if start < 0:
        return None
    try:
        item, _ = _TAIL_DECODER.raw_decode(content[start:].decode())
    except ValueError:
        return None
    return item if isinstance(item, dict) and isinstance(item.get("id"), str) else None


@dataclass(frozen=True, slots=True)
class PullCursor:
    """Where an incremental pull stands: every row up to ``(updated_at, last_id)`` was read.

    Stored as the delta token: ``"<updatedAt>"`` (rows from that millisecond on are still
    to read; the only form older versions stored) or ``"<updatedAt> <id>"`` (rows after
    that one, in ``updatedAt,id`` order). The timestamp is ISO 8601 at millisecond precision
    and has no space, so the id is everything after the first space.
    """

    updated_at: dt.datetime
    last_id: str | None = None

    @classmethod
    def parse(cls, token: str | None) -> PullCursor:
        """Read a stored token; an unreadable one restarts from the epoch (a re-download)."""
        stamp, _, last_id = (token or "").partition(" ")
        try:
            return cls(truncate_millis(parse_datetime(stamp)), last_id or None)
        except ValueError:
            return cls(EPOCH)

    def token(self) -> str:
        """The delta token text (see the class docstring)."""
        stamp = format_datetime(self.updated_at)
        return stamp if self.last_id is None else f"{stamp} {self.last_id}"

    def key(self) -> tuple[dt.datetime, str]:
        """For comparing cursors: no id sorts before every id."""
        return self.updated_at, self.last_id or ""


def _advance(table: str, cursor: PullCursor, block: bool, page: Page) -> tuple[PullCursor, bool]:
    """The cursor after a non-empty page, and whether the next page reads a block.

    A server that stamps finer than the millisecond it sends (SQL Server's datetimeoffset)
    orders one millisecond's rows by the hidden digits, and ``updatedAt gt T`` matches them
    all again: when more than a page of them share one millisecond the cursor cannot move.
    The pull then reads that millisecond alone, ordered by ``id`` (an exact keyset), and
    goes on from the next millisecond. Against millisecond servers this never happens.
    """
    last = page.items[-1]
    last_id = str(last["id"])
    if block:
        if last_id == cursor.last_id:
            raise PullFailedError(_IGNORED.format(table=table))
        return PullCursor(cursor.updated_at, last_id), True
    stamp = _ordered_last_stamp(table, page)
    if stamp is None:
        raise PullFailedError(
            f"the server sent a row of {table!r} without a valid updatedAt "
            f"({last.get('updatedAt')!r}): an incremental pull pages by it"
        )
    moved = PullCursor(truncate_millis(stamp), last_id)
    if moved.key() > cursor.key():
        return moved, False
    return PullCursor(cursor.updated_at), True


_IGNORED = (
    "the server sent the same rows of {table!r} again for a query asking for the rows after "
    "them: it seems to ignore the filter, so the pull cannot move on"
)


def _ordered_last_stamp(table: str, page: Page) -> dt.datetime | None:
    """The last row's ``updatedAt``, once the page is known to be in ``updatedAt`` order.

    The cursor is the last row only if the page came in that order. Stamps in the fixed-width
    UTC form tablesync's server sends sort as text exactly as in time, so a page of them in
    text order needs no parsing but the last; anything else is parsed and compared as time
    (rows without a readable stamp are left out of the comparison).
    """
    if _canonical_and_ordered(values_of(page.items, "updatedAt")):
        return _updated_at(page.items[-1])
    stamps = [_updated_at(item) for item in page.items]
    known = [stamp for stamp in stamps if stamp is not None]
    if any(later < earlier for earlier, later in pairwise(known)):
        raise PullFailedError(
            f"the server sent a page of {table!r} out of updatedAt order: it seems to ignore "
            "$orderby, so the pull cannot tell which rows it has read"
        )
    return stamps[-1]


# A canonical stamp with every digit made 0: the shape each stamp of a page must have.
_STAMP_SHAPE = b"0000-00-00T00:00:00.000Z"
_ZERO_DIGITS = bytes.maketrans(b"123456789", b"000000000")


def _canonical_and_ordered(texts: list[Any]) -> bool:
    """Whether every stamp is canonical text and they come in order (C-level checks only).

    Every stamp at once, one per line, its digits zeroed, against the shape repeated: one
    pass over the page's bytes instead of a regular expression (which cost a fifth of the
    pull's work on the flow's thread).
    """
    if set(map(type, texts)) != {str}:
        return False  # missing, null or not text: the general path tells which
    try:
        joined = "\n".join(texts).encode("ascii")
    except UnicodeEncodeError:
        return False
    shapes = _STAMP_SHAPE + b"\n"
    # Only ASCII digits were zeroed, so equal shapes mean canonical stamps, one per line.
    return joined.translate(_ZERO_DIGITS) == shapes * (len(texts) - 1) + _STAMP_SHAPE and (
        sorted(texts) == texts
    )


def _check_usable(table: str, page: Page) -> None:
    """A page of nothing but unreadable entries gives no cursor to move on from."""
    if page.skipped:
        raise PullFailedError(
            f"the server sent a page of {table!r} with no usable rows ({page.skipped} entries "
            "without an id): the pull cannot tell where it stands"
        )


def _updated_at(item: Mapping[str, Any]) -> dt.datetime | None:
    value = item.get("updatedAt")
    if isinstance(value, str):
        try:
            return parse_datetime(value)
        except ValueError:
            return None
    return None


def incremental_params(
    params: QueryParams, version: ApiVersion, cursor: PullCursor, block: bool, top: int
) -> list[tuple[str, str]]:
    """The parameters of one incremental page: the rows after ``cursor``."""
    condition = _block_filter(cursor, version) if block else _keyset_filter(cursor, version)
    user_filter = params.get("$filter")
    text = f"({user_filter}) and ({condition})" if user_filter else condition
    rest = params.without("$filter", "$orderby", "__includedeleted")
    return [
        ("$filter", text),
        ("$orderby", "id" if block else "updatedAt,id"),
        ("$top", str(top)),
        include_deleted_param(version),
        *rest,
    ]


def _keyset_filter(cursor: PullCursor, version: ApiVersion) -> str:
    # `ge` and `id gt` rather than `updatedAt eq T`: a server storing finer stamps never
    # matches `eq` on the millisecond, while `gt`/`ge` behave.
    at = f"updatedAt ge {_literal(cursor.updated_at, version)}"
    if cursor.last_id is None:
        return at
    after = f"updatedAt gt {_literal(cursor.updated_at, version)}"
    # ``T <= u and (u > T or id > L)``, i.e. ``u > T or (u >= T and id > L)`` with the range
    # first: a SQL server turns a leading ``updatedAt >= T`` into an index range on
    # ``(updatedAt, id)`` instead of scanning every earlier row for the OR.
    return f"({at}) and (({after}) or (id gt {_literal(cursor.last_id, version)}))"


def _block_filter(cursor: PullCursor, version: ApiVersion) -> str:
    start = _literal(cursor.updated_at, version)
    end = _literal(cursor.updated_at + _MILLISECOND, version)
    condition = f"(updatedAt ge {start}) and (updatedAt lt {end})"
    if cursor.last_id is None:
        return condition
    return f"{condition} and (id gt {_literal(cursor.last_id, version)})"


def _literal(value: str | dt.datetime, version: ApiVersion) -> str:
    """``value`` as an OData literal of ``version``'s dialect, by the query printer."""
    return to_odata(Literal.of(value), version)


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
