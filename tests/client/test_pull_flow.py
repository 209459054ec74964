"""The pull flow against a scripted server: paging forms, ties in updatedAt, tokens."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tablesync import PullFailedError, Query, SQLiteStore, UnsupportedQueryError
from tablesync.client import SyncHandler, SyncProgress
from tablesync.client._context import SyncContext
from tablesync.client._pull import PullSpec, pull_flow
from tablesync.protocol import ApiVersion, parse_datetime

from .conftest import builder, drive, drive_raising, reply

V2, V3 = ApiVersion.V2, ApiVersion.V3
_BOUND = re.compile(r"updatedAt ge (?:datetimeoffset'([^']+)'|cast\(([^,]+),Edm\.DateTimeOffset\))")


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
        rows = sorted(
            self.rows,
            key=lambda r: (r["updatedAt"], r["id"]) if params.get("$orderby") else r["id"],
        )
        match = _BOUND.search(params.get("$filter", ""))
        if match:
            bound = parse_datetime(match[1] or match[2])
            rows = [r for r in rows if parse_datetime(r["updatedAt"]) >= bound]
        if not any(k.lower() == "__includedeleted" for k in params):
            rows = [r for r in rows if not r.get("deleted")]
        skip = int(params.get("$skip", 0))
        top = int(params.get("$top", 10_000))
        page = rows[skip : skip + min(top, self.page_size)]
        more = skip + len(page) < len(rows) and len(page) < top
        return self.respond(request, page, more, skip + len(page), top - len(page))

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
    # pages r0-2, r2-4, r4-6, r6: each re-base re-reads the boundary row (ge)
    assert result.upserted == 10 and result.query_id == "all"
    assert context.get_delta_token("todo", "all") == stamp(7)
    first = server.requests[0].url.params
    literal = (
        "datetimeoffset'1970-01-01T00:00:00.000Z'"
        if version is V2
        else "cast(1970-01-01T00:00:00.000Z,Edm.DateTimeOffset)"
    )
    assert first["$filter"] == f"updatedAt ge {literal}"
    assert (first["$orderby"], first["$skip"], first["$top"]) == ("updatedAt", "0", "3")
    assert first["__includeDeleted" if version is V2 else "__includedeleted"] == "true"
    assert (
        server.requests[-1]
        .url.params["$filter"]
        .endswith(f"{stamp(7)}'" if version is V2 else f"{stamp(7)},Edm.DateTimeOffset)")
    )


def test_the_next_incremental_pull_starts_from_the_token(context: SyncContext) -> None:
    server = Rows(rows(5))
    pull(context, server, query_id="all", page_size=10)
    server.rows.extend(rows(2, start=5))
    server.requests.clear()

    result = pull(context, server, query_id="all", page_size=10).result

    assert stamp(5) in server.requests[0].url.params["$filter"]
    assert len(local_ids(context)) == 7
    # r004..r006, then r006 once more: ``ge`` re-reads the boundary row after each re-base,
    # the price of never losing a row that shares its timestamp.
    assert result.upserted == 4


def test_rows_sharing_one_timestamp_are_all_fetched_and_the_pull_ends(context: SyncContext) -> None:
    # A server whose stamps are not unique, with pages smaller than asked: skip-on-equal.
    server = Rows(rows(12, same_stamp=True), page_size=5)

    pull(context, server, query_id="all", page_size=5)

    assert len(local_ids(context)) == 12
    skips = [int(r.url.params["$skip"]) for r in server.requests]
    # re-base on the first page (the bound grew from epoch), then skip forward over the tie
    assert skips == [0, 0, 5, 10, 12]


def test_ties_at_a_page_boundary_are_not_lost(context: SyncContext) -> None:
    tied = [{**row, "updatedAt": stamp(50)} for row in rows(6, start=3)]
    later = [{**row, "updatedAt": stamp(60 + i)} for i, row in enumerate(rows(2, start=20))]
    data = rows(3) + tied + later
    server = Rows(data, page_size=4)

    pull(context, server, query_id="all", page_size=4)

    assert len(local_ids(context)) == len(data)
    assert context.get_delta_token("todo", "all") == stamp(61)


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
    assert context.get_delta_token("todo", "all") == stamp(2)


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
    """A broken server: every request gets the first page, whatever ``$skip`` says."""

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        page = self.rows[: int(request.url.params.get("$top", 100))]
        return reply(request, 200, {"items": page, "count": None, "nextLink": None})


def test_a_server_ignoring_skip_fails_the_pull_instead_of_looping(context: SyncContext) -> None:
    server = IgnoresSkip(rows(10, same_stamp=True))
    flow = pull_flow(context, builder(), SyncHandler(), PullSpec("todo", None, "all", 4))
    error, requests = drive_raising(flow, server)
    assert isinstance(error, PullFailedError) and "ignore $skip" in str(error)
    assert len(requests) == 3  # the re-base, then one skip that came back unchanged


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
        # Bounded: each request either raises the bound or moves $skip past fresh rows.
        assert len(server.requests) <= 2 * len(data) + 2
        if data:
            assert context.get_delta_token("todo", "all") == stamp(max(stamps))
