"""The pull flow against a scripted server: paging forms, ties in updatedAt, tokens."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tablesync import PullFailedError, Query, SQLiteStore, TransportError, UnsupportedQueryError
from tablesync.client import SyncHandler, SyncProgress
from tablesync.client._context import SyncContext
from tablesync.client._pull import PullSpec, _canonical_and_ordered, pull_flow
from tablesync.protocol import ApiVersion, parse_datetime

from .conftest import builder, drive, drive_raising, reply

V2, V3 = ApiVersion.V2, ApiVersion.V3
_STAMP = r"(?:datetimeoffset'([^']+)'|cast\(([^,]+),Edm\.DateTimeOffset\))"
_CONDITION = re.compile(rf"updatedAt (ge|gt|lt) {_STAMP}|id gt '((?:[^']|'')*)'")


def stamp_of(row: dict[str, Any]) -> dt.datetime:
    """The stored stamp: ``_us`` adds digits finer than the millisecond the server sends."""
    return parse_datetime(row["updatedAt"]) + dt.timedelta(microseconds=row.get("_us", 0))


def keyset_predicate(text: str) -> Callable[[dict[str, Any]], bool]:
    """Evaluate the three filter shapes an incremental pull sends (any user filter ignored).

    ``updatedAt ge T``; ``(updatedAt ge T) and ((updatedAt gt T) or (id gt 'L'))``; and the
    block ``(updatedAt ge S) and (updatedAt lt E) and (id gt 'L')``.
    """
    bounds: dict[str, dt.datetime] = {}
    after: str | None = None
    for match in _CONDITION.finditer(text):
        if match[1]:
            bounds[match[1]] = parse_datetime(match[2] or match[3])
        else:
            after = match[4].replace("''", "'")

    def keep(row: dict[str, Any]) -> bool:
        at, later = stamp_of(row), after is None or row["id"] > after
        if "lt" in bounds:
            return bounds["ge"] <= at < bounds["lt"] and later
        if "gt" in bounds:
            return at > bounds["gt"] or (at >= bounds["ge"] and later)
        return at >= bounds["ge"] if "ge" in bounds else True

    return keep


def stamp(n: int) -> str:
    return f"2024-01-01T00:00:{n // 1000:02d}.{n % 1000:03d}Z"


class Rows:
    """A scripted /tables server over a list of rows, answering the incremental queries.

    ``page_size`` caps each page whatever ``$top`` says; ``signal`` is how it says there is
    more: ``"nextLink"`` (v3 body), ``"link"`` (v2 header, as the Node server writes it:
    wrong host and path), or ``None`` (no signal at all).
    """

    def __init__(
        self,
        rows: list[dict[str, Any]],
        *,
        page_size: int = 1000,
        signal: str | None = None,
        version: ApiVersion = V3,
    ) -> None:
        self.rows = rows
        self.page_size = page_size
        self.signal = signal
        self.version = version
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        params = request.url.params
        order = params.get("$orderby", "")
        rows = sorted(
            self.rows,
            key=lambda r: (stamp_of(r), r["id"]) if order == "updatedAt,id" else r["id"],
        )
        keep = keyset_predicate(params.get("$filter", ""))
        rows = [r for r in rows if keep(r)]
        if not any(k.lower() == "__includedeleted" for k in params):
            rows = [r for r in rows if not r.get("deleted")]
        skip = int(params.get("$skip", 0))
        top = int(params.get("$top", 10_000))
        page = rows[skip : skip + min(top, self.page_size)]
        more = skip + len(page) < len(rows) and len(page) < top
        # Stamps finer than the millisecond are stored and compared, but sent truncated.
        sent = [{k: v for k, v in r.items() if k != "_us"} for r in page]
        return self.respond(request, sent, more, skip + len(page), top - len(page))

    def respond(
        self, request: httpx.Request, page: list[dict[str, Any]], more: bool, skip: int, top: int
    ) -> httpx.Response:
        rest = [(k, v) for k, v in request.url.params.multi_items() if k not in ("$skip", "$top")]
        query = str(httpx.QueryParams([*rest, ("$skip", str(skip)), ("$top", str(top))]))
        if self.version is V2:
            headers = (
                {"Link": f"http://server/?{query}; rel=next"}
                if more and self.signal == "link"
                else {}
            )
            return reply(request, 200, page, headers=headers)
        link = f"/tables/todo?{query}" if more and self.signal == "nextLink" else None
        return reply(request, 200, {"items": page, "count": None, "nextLink": link})


def rows(n: int, *, same_stamp: bool = False, start: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "id": f"r{i:03d}",
            "text": f"t{i}",
            "updatedAt": stamp(1 if same_stamp else i + 1),
            "version": f"v{i}",
            "deleted": False,
        }
        for i in range(start, start + n)
    ]


def pull(context: SyncContext, server: Any, version: ApiVersion = V3, **spec: Any) -> Any:
    progress = spec.pop("progress", None)
    flow = pull_flow(context, builder(version), SyncHandler(), PullSpec("todo", **spec), progress)
    return drive(flow, server)


def local_ids(context: SyncContext) -> list[str]:
    return sorted(item["id"] for item in context.query("todo"))


# -- incremental pulls ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", [pytest.param(V2, id="v2"), pytest.param(V3, id="v3")])
def test_incremental_pull_fetches_everything_and_stores_the_token(
    context: SyncContext, version: ApiVersion
) -> None:
    server = Rows(rows(7), version=version)

    result = pull(context, server, version, query_id="all", page_size=3).result

    assert local_ids(context) == [f"r{i:03d}" for i in range(7)]
    # pages r0-2, r3-5, r6, then an empty one: keyset paging reads each row once
    assert result.upserted == 7 and result.query_id == "all" and len(server.requests) == 4
    assert context.get_delta_token("todo", "all") == f"{stamp(7)} r006"

    def literal(text: str) -> str:
        return f"datetimeoffset'{text}'" if version is V2 else f"cast({text},Edm.DateTimeOffset)"

    first, second = (r.url.params for r in server.requests[:2])
    assert first["$filter"] == f"updatedAt ge {literal('1970-01-01T00:00:00.000Z')}"
    assert (first["$orderby"], first["$top"]) == ("updatedAt,id", "3")
    assert "$skip" not in first and "$skip" not in second
    assert first["__includeDeleted" if version is V2 else "__includedeleted"] == "true"
    after = literal(stamp(3))
    assert second["$filter"] == (
        f"(updatedAt ge {after}) and ((updatedAt gt {after}) or (id gt 'r002'))"
    )
    assert f"{stamp(7)}" in server.requests[-1].url.params["$filter"]
    assert "'r006'" in server.requests[-1].url.params["$filter"]


def test_the_next_incremental_pull_starts_from_the_token(context: SyncContext) -> None:
    server = Rows(rows(5))
    pull(context, server, query_id="all", page_size=10)
    server.rows.extend(rows(2, start=5))
    server.requests.clear()

    result = pull(context, server, query_id="all", page_size=10).result

    first = server.requests[0].url.params["$filter"]
    assert stamp(5) in first and "id gt 'r004'" in first
    assert len(local_ids(context)) == 7
    # Only r005 and r006: the cursor (updatedAt, id) excludes every row already read.
    assert result.upserted == 2 and len(server.requests) == 2


def test_rows_sharing_one_timestamp_are_all_fetched_and_the_pull_ends(context: SyncContext) -> None:
    # A server whose stamps are not unique, with pages smaller than asked: the id breaks ties.
    server = Rows(rows(12, same_stamp=True), page_size=5)

    result = pull(context, server, query_id="all", page_size=5).result

    assert len(local_ids(context)) == 12 and result.upserted == 12
    afters = [re.findall(r"id gt '(\w+)'", r.url.params["$filter"]) for r in server.requests]
    assert afters == [[], ["r004"], ["r009"], ["r011"]]
    assert context.get_delta_token("todo", "all") == f"{stamp(1)} r011"


def test_ties_at_a_page_boundary_are_not_lost(context: SyncContext) -> None:
    tied = [{**row, "updatedAt": stamp(50)} for row in rows(6, start=3)]
    later = [{**row, "updatedAt": stamp(60 + i)} for i, row in enumerate(rows(2, start=20))]
    data = rows(3) + tied + later
    server = Rows(data, page_size=4)

    pull(context, server, query_id="all", page_size=4)

    assert len(local_ids(context)) == len(data)
    assert context.get_delta_token("todo", "all") == f"{stamp(61)} r021"


def test_the_users_filter_is_combined_with_the_bound(context: SyncContext) -> None:
    server = Rows([])
    pull(context, server, query=Query("text eq 'x'"), query_id="q")
    assert server.requests[0].url.params["$filter"].startswith("(text eq 'x') and (updatedAt ge ")


def test_tombstones_delete_local_rows(context: SyncContext) -> None:
    context.store.upsert_items("todo", [{"id": "r000", "text": "old"}])
    server = Rows([{**rows(1)[0], "deleted": True}, *rows(1, start=1)])

    result = pull(context, server, query_id="all").result

    assert local_ids(context) == ["r001"] and result.deleted == 1


def test_rows_with_pending_operations_are_left_alone(context: SyncContext) -> None:
    context.update("todo", {"id": "r000", "text": "mine"})
    server = Rows(rows(2))
    handler_pushes: list[httpx.Request] = []

    def respond(request: httpx.Request) -> httpx.Response:
        if request.method != "GET":
            handler_pushes.append(request)
            return reply(request, 500, {"error": "down"})
        return server(request)

    error, _ = drive_raising(
        pull_flow(context, builder(), SyncHandler(), PullSpec("todo", query_id="all")), respond
    )

    assert isinstance(error, PullFailedError) and error.__cause__ is not None
    assert len(handler_pushes) == 1 and server.requests == []
    assert context.get("todo", "r000")["text"] == "mine"


def test_the_implicit_push_runs_first_when_the_table_is_dirty(context: SyncContext) -> None:
    context.insert("todo", {"id": "mine", "text": "x"})
    server = Rows(rows(1))
    methods: list[str] = []

    def respond(request: httpx.Request) -> httpx.Response:
        methods.append(request.method)
        if request.method == "POST":
            return reply(
                request, 201, {"id": "mine", "text": "x", "version": "v1", "updatedAt": stamp(9)}
            )
        return server(request)

    result = drive(
        pull_flow(context, builder(), SyncHandler(), PullSpec("todo", query_id="all")), respond
    ).result

    assert methods[0] == "POST" and result.push is not None and result.push.ok
    assert context.pending_count() == 0


def test_a_clean_table_does_not_push_other_tables(context: SyncContext) -> None:
    context.insert("other", {"id": "o"})
    server = Rows([])
    pull(context, server, query_id="all")
    assert all(r.method == "GET" for r in server.requests) and context.pending_count() == 1


@pytest.mark.parametrize(
    ("query", "query_id"),
    [
        pytest.param(Query(select=["id"]), None, id="select-full"),
        pytest.param(Query(select=["id"]), "q", id="select-incremental"),
        pytest.param(Query(order_by="text"), "q", id="orderby-incremental"),
        pytest.param(Query(top=5), "q", id="top-incremental"),
        pytest.param(Query(skip=5), "q", id="skip-incremental"),
        pytest.param(None, "a|b", id="pipe-in-query-id"),
        pytest.param(None, "x" * 255, id="query-id-too-long"),
        pytest.param(None, "", id="empty-query-id"),
    ],
)
def test_pulls_refuse_unsupported_queries(context: SyncContext, query: Any, query_id: Any) -> None:
    server = Rows([])
    with pytest.raises(UnsupportedQueryError):
        pull(context, server, query=query, query_id=query_id)
    assert server.requests == []


def test_a_broken_token_falls_back_to_a_full_download(context: SyncContext) -> None:
    context.set_delta_token("todo", "all", "garbage")
    server = Rows(rows(2))
    pull(context, server, query_id="all")
    assert "1970-01-01" in server.requests[0].url.params["$filter"]
    assert context.get_delta_token("todo", "all") == f"{stamp(2)} r001"


def test_progress_reports_items_received(context: SyncContext) -> None:
    reports: list[SyncProgress] = []
    pull(context, Rows(rows(5)), query_id="all", page_size=2, progress=reports.append)
    assert reports and reports[-1].done >= 5 and all(r.total is None for r in reports)
    assert [r.done for r in reports] == sorted(r.done for r in reports)


# -- full pulls (no query id): every paging form --------------------------------------------------


@pytest.mark.parametrize(
    ("version", "signal"),
    [
        pytest.param(V3, "nextLink", id="v3-nextlink-path"),
        pytest.param(V3, None, id="v3-no-signal-skip"),
        pytest.param(V2, "link", id="v2-node-link-rebased"),
        pytest.param(V2, None, id="v2-no-link-skip"),
    ],
)
def test_full_pull_reads_every_page(
    context: SyncContext, version: ApiVersion, signal: str | None
) -> None:
    server = Rows(rows(23), page_size=5, signal=signal, version=version)

    result = pull(context, server, version, page_size=10).result

    assert len(local_ids(context)) == 23 and result.query_id is None
    for request in server.requests:
        assert (request.url.host, request.url.port, request.url.path) == (
            "server",
            8080,
            "/tables/todo",
        )
    assert len(server.requests) <= 8


def test_full_pull_honours_the_users_skip_and_top(context: SyncContext) -> None:
    server = Rows(rows(30), page_size=4, signal="nextLink")
    pull(context, server, query=Query(skip=3, top=9), page_size=5)
    assert local_ids(context) == [f"r{i:03d}" for i in range(3, 12)]


def test_full_pull_asks_for_tombstones(context: SyncContext) -> None:
    server = Rows([])
    pull(context, server, V2)
    assert server.requests[0].url.params["__includeDeleted"] == "true"


class IgnoresSkip(Rows):
    """A broken server: every request gets the first page, whatever ``$skip`` or ``$filter``."""

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        page = self.rows[: int(request.url.params.get("$top", 100))]
        return reply(request, 200, {"items": page, "count": None, "nextLink": None})


def test_a_server_ignoring_the_filter_fails_the_pull_instead_of_looping(
    context: SyncContext,
) -> None:
    server = IgnoresSkip(rows(10, same_stamp=True))
    flow = pull_flow(context, builder(), SyncHandler(), PullSpec("todo", None, "all", 4))
    error, requests = drive_raising(flow, server)
    assert isinstance(error, PullFailedError) and "ignore the filter" in str(error)
    # the first page; the same again (no progress: read its millisecond by id); the block's
    # first page; the block's next page, unchanged
    assert len(requests) == 4


def test_a_full_pull_against_a_server_ignoring_skip_stops_with_an_error(
    context: SyncContext,
) -> None:
    from tablesync import ServerError

    flow = pull_flow(context, builder(), SyncHandler(), PullSpec("todo", page_size=4))
    error, requests = drive_raising(flow, IgnoresSkip(rows(10)))
    assert isinstance(error, ServerError) and len(requests) == 2


@settings(max_examples=60, deadline=None)
@given(
    stamps=st.lists(st.integers(min_value=1, max_value=6), min_size=0, max_size=40),
    server_page=st.integers(min_value=1, max_value=12),
    client_page=st.integers(min_value=1, max_value=12),
    signal=st.sampled_from([None, "nextLink"]),
)
def test_incremental_pulls_get_every_row_whatever_the_ties_and_page_sizes(
    stamps: list[int], server_page: int, client_page: int, signal: str | None
) -> None:
    data = [
        {"id": f"r{i:03d}", "text": "x", "updatedAt": stamp(s), "version": "v", "deleted": False}
        for i, s in enumerate(stamps)
    ]
    server = Rows(data, page_size=server_page, signal=signal)
    with SQLiteStore(":memory:") as store:
        context = SyncContext(store)
        pull(context, server, query_id="all", page_size=client_page)
        assert local_ids(context) == sorted(row["id"] for row in data)
        # Bounded: every request but the last (empty) one moves the cursor past fresh rows.
        assert len(server.requests) <= len(data) + 1
        if data:
            last = max(data, key=lambda r: (r["updatedAt"], r["id"]))
            assert context.get_delta_token("todo", "all") == f"{last['updatedAt']} {last['id']}"


# -- keyset paging: writes between pages, finer stamps, resumption --------------------------------


class WritesBetweenPages(Rows):
    """After answering the first page, updates and inserts more than a page of rows.

    Every write shares one new timestamp (non-unique stamps), as a bulk write would.
    """

    def __call__(self, request: httpx.Request) -> httpx.Response:
        response = super().__call__(request)
        if len(self.requests) == 1:
            now = stamp(500)
            for row in self.rows[:8]:  # among them rows the pull already read
                row.update(updatedAt=now, version=f"{row['version']}+", text="updated")
            self.rows.extend({**row, "updatedAt": now} for row in rows(7, start=40))
        return response


def test_rows_updated_between_page_requests_are_all_read(context: SyncContext) -> None:
    server = WritesBetweenPages(rows(20, same_stamp=True), page_size=5)

    pull(context, server, query_id="all", page_size=5)

    local = {item["id"]: (item["version"], item["text"]) for item in context.query("todo")}
    assert local == {row["id"]: (row["version"], row["text"]) for row in server.rows}
    assert len(local) == 27 and sum(text == "updated" for _, text in local.values()) == 8


def test_a_server_with_stamps_finer_than_the_millisecond_neither_loses_nor_loops(
    context: SyncContext,
) -> None:
    # 13 rows in one millisecond, ordered by hidden microseconds against their ids: the
    # cursor cannot move through them, so the pull reads that millisecond by id.
    fine = [{**row, "updatedAt": stamp(5), "_us": 999 - i} for i, row in enumerate(rows(13))]
    before = [{**r, "updatedAt": stamp(1 + i)} for i, r in enumerate(rows(3, start=50))]
    after = [{**r, "updatedAt": stamp(9)} for r in rows(2, start=60)]
    server = Rows([*before, *fine, *after], page_size=4)

    pull(context, server, query_id="all", page_size=4)

    assert local_ids(context) == sorted(row["id"] for row in server.rows)
    assert any(r.url.params["$orderby"] == "id" for r in server.requests)
    assert context.get_delta_token("todo", "all") == f"{stamp(9)} r061"
    assert len(server.requests) <= 20


def test_a_pull_that_dies_half_way_resumes_from_the_last_stored_page(context: SyncContext) -> None:
    server = Rows(rows(9, same_stamp=True), page_size=3)

    def dies_on_the_third_page(request: httpx.Request) -> httpx.Response:
        if len(server.requests) == 2:
            server.requests.append(request)
            return reply(request, 503, {"error": "gone"})
        return server(request)

    flow = pull_flow(context, builder(), SyncHandler(), PullSpec("todo", None, "all", 3))
    drive_raising(flow, dies_on_the_third_page)
    assert context.get_delta_token("todo", "all") == f"{stamp(1)} r005"
    server.requests.clear()

    result = pull(context, server, query_id="all", page_size=3).result

    assert "id gt 'r005'" in server.requests[0].url.params["$filter"]
    assert result.upserted == 3 and len(local_ids(context)) == 9


def test_a_token_of_an_older_version_still_loads(context: SyncContext) -> None:
    context.set_delta_token("todo", "all", stamp(3))  # the bare timestamp older versions stored
    server = Rows(rows(5))
    result = pull(context, server, query_id="all").result
    assert server.requests[0].url.params["$filter"].startswith("updatedAt ge ")
    assert result.upserted == 3  # r002 (stamped 3) to r004
    assert context.get_delta_token("todo", "all") == f"{stamp(5)} r004"


def test_ids_with_quotes_are_escaped_in_the_cursor(context: SyncContext) -> None:
    data = [{**row, "id": f"o'{row['id']}", "updatedAt": stamp(1)} for row in rows(4)]
    server = Rows(data, page_size=2)
    pull(context, server, query_id="all", page_size=2)
    assert "id gt 'o''r001'" in server.requests[1].url.params["$filter"]
    assert len(local_ids(context)) == 4


def test_the_cursor_moves_past_rows_with_a_pending_local_change(context: SyncContext) -> None:
    server = Rows(rows(6), page_size=3)

    def edits_locally_after_the_first_page(request: httpx.Request) -> httpx.Response:
        response = server(request)
        if len(server.requests) == 1:  # r004 gets a local change while the pull runs
            context.update("todo", {"id": "r004", "text": "mine"})
        return response

    flow = pull_flow(context, builder(), SyncHandler(), PullSpec("todo", None, "all", 3))
    result = drive(flow, edits_locally_after_the_first_page).result

    assert context.get("todo", "r004")["text"] == "mine" and result.skipped == 1
    assert context.get_delta_token("todo", "all") == f"{stamp(6)} r005"
    assert len(server.requests) == 3


@pytest.mark.parametrize(
    ("page", "message"),
    [
        pytest.param([{"text": "no id"}], "no usable rows", id="no-usable-rows"),
        pytest.param(
            [{**rows(1)[0], "updatedAt": None}], "without a valid updatedAt", id="no-stamp"
        ),
        pytest.param(
            [{**rows(1)[0], "updatedAt": "soon"}], "without a valid updatedAt", id="bad-stamp"
        ),
    ],
)
def test_a_page_without_a_cursor_fails_the_pull(
    context: SyncContext, page: list[dict[str, Any]], message: str
) -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        return reply(request, 200, {"items": page, "count": None, "nextLink": None})

    flow = pull_flow(context, builder(), SyncHandler(), PullSpec("todo", None, "all", 3))
    error, requests = drive_raising(flow, respond)
    assert isinstance(error, PullFailedError) and message in str(error)
    assert len(requests) == 1 and context.get_delta_token("todo", "all") is None


def test_a_server_ignoring_orderby_fails_the_pull_instead_of_losing_rows(
    context: SyncContext,
) -> None:
    # Returned by id, a page's last row is not the newest read: a cursor on it could pass
    # over r000, stamped later than r001 but not yet read once the page is capped.
    data = [{**row, "updatedAt": stamp(9 - i)} for i, row in enumerate(rows(4))]

    def by_id(request: httpx.Request) -> httpx.Response:
        return reply(request, 200, {"items": data[:3], "count": None, "nextLink": None})

    flow = pull_flow(context, builder(), SyncHandler(), PullSpec("todo", None, "all", 3))
    error, requests = drive_raising(flow, by_id)
    assert isinstance(error, PullFailedError) and "ignore $orderby" in str(error)
    assert len(requests) == 1 and context.query("todo") == []


@pytest.mark.parametrize(
    ("stamps", "ordered"),
    [
        # Text order is not time order once offsets differ: the pull compares instants.
        (["2024-01-01T01:00:00.000+01:00", "2024-01-01T00:30:00.000Z"], True),
        (["2024-01-01T00:30:00.000Z", "2024-01-01T01:00:00.000+01:00"], False),
        (["2024-01-01T00:00:00.5Z", "2024-01-01T00:00:00.25Z"], False),
        ([stamp(1), stamp(2), stamp(2)], True),
        ([stamp(2), stamp(1), stamp(3)], False),
    ],
)
def test_page_order_is_judged_by_time_whatever_the_stamp_form(
    context: SyncContext, stamps: list[str], ordered: bool
) -> None:
    data = [{**row, "updatedAt": at} for row, at in zip(rows(len(stamps)), stamps, strict=True)]

    def respond(request: httpx.Request) -> httpx.Response:
        page = [] if "id gt" in request.url.params["$filter"] else data
        return reply(request, 200, {"items": page, "count": None, "nextLink": None})

    flow = pull_flow(context, builder(), SyncHandler(), PullSpec("todo", None, "all", 10))
    if ordered:
        assert drive(flow, respond).result.upserted == len(stamps)
    else:
        error, _ = drive_raising(flow, respond)
        assert isinstance(error, PullFailedError) and "ignore $orderby" in str(error)


# -- prefetch: page N+1 travels while page N is stored ----------------------------------------


@pytest.mark.parametrize("query_id", [pytest.param("all", id="incremental"), None])
def test_the_next_page_is_asked_for_before_this_one_is_stored(
    context: SyncContext, query_id: str | None
) -> None:
    server = Rows(rows(10), page_size=3, signal="nextLink")
    stored_when_asked: list[int] = []

    def respond(request: httpx.Request) -> httpx.Response:
        stored_when_asked.append(len(local_ids(context)))
        return server(request)

    driven = pull(context, respond, query_id=query_id, page_size=3)

    # Pages of 3, 3, 3, 1, then the empty page that ends the walk. The request for page N+1
    # reaches the server while page N is still unstored: the store holds pages 1..N-1 then.
    assert stored_when_asked == [0, 0, 3, 6, 9]
    assert len(driven.requests) == 5
    assert local_ids(context) == [row["id"] for row in server.rows]


def test_each_token_is_stored_only_with_its_page(context: SyncContext) -> None:
    server = Rows(rows(7), page_size=3)
    tokens_when_asked: list[str | None] = []

    def respond(request: httpx.Request) -> httpx.Response:
        tokens_when_asked.append(context.get_delta_token("todo", "all"))
        return server(request)

    pull(context, respond, query_id="all", page_size=3)

    # The token of page N is committed with page N, after page N+1 was asked for.
    assert tokens_when_asked == [None, None, f"{stamp(3)} r002", f"{stamp(6)} r005"]
    assert context.get_delta_token("todo", "all") == f"{stamp(7)} r006"


def test_a_failed_fetch_of_the_next_page_surfaces_after_this_page_is_stored(
    context: SyncContext,
) -> None:
    server = Rows(rows(9), page_size=3)

    def third_fails(request: httpx.Request) -> httpx.Response | Exception:
        if len(server.requests) == 2:
            return TransportError("connection reset while page 2 was being stored")
        return server(request)

    flow = pull_flow(context, builder(), SyncHandler(), PullSpec("todo", None, "all", 3))
    error, requests = drive_raising(flow, third_fails)

    assert isinstance(error, TransportError)
    assert len(requests) == 3
    assert local_ids(context) == [f"r{i:03d}" for i in range(6)]
    assert context.get_delta_token("todo", "all") == f"{stamp(6)} r005"


_A, _B = "2024-01-02T03:04:05.678Z", "2024-01-02T03:04:05.679Z"


@pytest.mark.parametrize(
    ("texts", "fast"),
    [
        pytest.param([_A, _B], True, id="ordered"),
        pytest.param([_A, _A], True, id="equal"),
        pytest.param([_B, _A], False, id="out-of-order"),
        pytest.param([_A, None], False, id="missing"),
        pytest.param([_A, "2024-01-02T03:04:05.67Z"], False, id="short"),
        pytest.param([_A, "2024-01-02T03:04:05.678+00:00"], False, id="offset"),
        pytest.param([f"{_A}\n{_B}"], False, id="two-stamps-in-one-text"),
        pytest.param([_A, f"{_B}\n"], False, id="trailing-newline"),
    ],
)
def test_only_canonical_ordered_stamps_skip_parsing(texts: list[Any], fast: bool) -> None:
    assert _canonical_and_ordered(texts) is fast
