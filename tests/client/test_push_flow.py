"""The push flow against scripted responses: every classification of protocol.md §7."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tablesync import (
    AuthenticationError,
    PushFailedError,
    PushStatus,
    StoreError,
    TransportError,
)
from tablesync.client import (
    ClientWins,
    ConflictResolver,
    OperationKind,
    OperationState,
    ServerWins,
    SyncHandler,
    SyncProgress,
)
from tablesync.client._context import SyncContext
from tablesync.client._flows import push_flow, same_value
from tablesync.protocol import ApiVersion

from .conftest import builder, drive, drive_raising, reply

V2, V3 = ApiVersion.V2, ApiVersion.V3
SERVER_STAMP = {"updatedAt": "2024-05-01T10:00:00.000Z", "deleted": False}


def body_of(request: httpx.Request) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(request.content)
    return data


def echo(version: str = "v-server", status: int = 201) -> Any:
    """A server that stores whatever it is sent, stamping a new version."""

    def respond(request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE":
            return reply(request, 204)
        item = {**body_of(request), **SERVER_STAMP, "version": version}
        return reply(request, status if request.method == "POST" else 200, item)

    return respond


def push(context: SyncContext, respond: Any, version: ApiVersion = V3, **kwargs: Any) -> Any:
    return drive(
        push_flow(context, builder(version), kwargs.pop("handler", SyncHandler()), **kwargs),
        respond,
    )


def push_failing(
    context: SyncContext, respond: Any, version: ApiVersion = V3, **kwargs: Any
) -> Any:
    flow = push_flow(context, builder(version), kwargs.pop("handler", SyncHandler()), **kwargs)
    error, requests = drive_raising(flow, respond)
    assert isinstance(error, PushFailedError), error
    return error, requests


# -- requests per kind and version ------------------------------------------------------------


@pytest.mark.parametrize("version", [pytest.param(V2, id="v2"), pytest.param(V3, id="v3")])
def test_insert_posts_the_item_without_system_properties(
    context: SyncContext, version: ApiVersion
) -> None:
    item = context.insert("todo", {"id": "a", "text": "milk", "version": "stale", "createdAt": "x"})
    op = context.pending_operations()[0]

    driven = push(context, echo("v1"), version)

    (request,) = driven.requests
    assert (request.method, request.url.path) == ("POST", "/tables/todo")
    assert body_of(request) == {"id": "a", "text": "milk"}
    assert request.headers["Idempotency-Key"] == op.id
    assert request.headers["ZUMO-API-VERSION"] == f"{version.value}.0.0"
    assert driven.result.ok and driven.result.completed == 1
    assert context.pending_count() == 0
    assert context.get("todo", item["id"]) == {
        "id": "a",
        "text": "milk",
        **SERVER_STAMP,
        "version": "v1",
    }


def test_v2_update_patches_without_system_properties_and_if_match(context: SyncContext) -> None:
    context.store.upsert_items("todo", [{"id": "a", "text": "old", "version": "v1"}])
    context.update(
        "todo", {"id": "a", "text": "new", "version": "v1", "updatedAt": "2020-01-01T00:00:00Z"}
    )

    driven = push(context, echo("v2"), V2)

    (request,) = driven.requests
    assert (request.method, request.url.path) == ("PATCH", "/tables/todo/a")
    assert request.headers["If-Match"] == '"v1"'
    assert body_of(request) == {"id": "a", "text": "new"}
    assert context.get("todo", "a")["version"] == "v2"


def test_v3_update_puts_with_version_and_if_match(context: SyncContext) -> None:
    context.update("todo", {"id": "a", "text": "new", "version": "v1"})

    driven = push(context, echo("v2"), V3)

    (request,) = driven.requests
    assert request.method == "PUT"
    assert request.headers["If-Match"] == '"v1"'
    assert body_of(request) == {"id": "a", "text": "new", "version": "v1"}


def test_item_ids_are_percent_encoded_once(context: SyncContext) -> None:
    context.update("todo", {"id": "a:b c", "text": "x"})
    driven = push(context, echo(), V3)
    assert driven.requests[0].url.raw_path == b"/tables/todo/a%3Ab%20c"


@pytest.mark.parametrize(
    "status",
    [
        pytest.param(204, id="204"),
        pytest.param(200, id="200-node"),
        pytest.param(404, id="404-gone"),
        pytest.param(410, id="410-soft-deleted"),
    ],
)
def test_delete_succeeds_on_2xx_and_when_already_gone(context: SyncContext, status: int) -> None:
    context.store.upsert_items("todo", [{"id": "a", "text": "x", "version": "v7"}])
    context.delete("todo", "a")

    driven = push(
        context,
        lambda r: reply(
            r, status, {"id": "a", "deleted": True, "version": "v8"} if status == 200 else None
        ),
    )

    (request,) = driven.requests
    assert (request.method, request.headers["If-Match"]) == ("DELETE", '"v7"')
    assert driven.result.ok
    assert context.pending_count() == 0 and context.get("todo", "a") is None


@pytest.mark.parametrize("status", [pytest.param(409, id="409"), pytest.param(412, id="412")])
def test_deleting_a_row_already_deleted_on_the_server_is_success(
    context: SyncContext, status: int
) -> None:
    context.store.upsert_items("todo", [{"id": "a", "version": "v1"}])
    context.delete("todo", "a")
    tombstone = {"id": "a", "deleted": True, "version": "v2"}
    assert push(context, lambda r: reply(r, status, tombstone)).result.ok
    assert context.pending_count() == 0


def test_the_etag_header_wins_over_the_body_version(context: SyncContext) -> None:
    context.insert("todo", {"id": "a"})
    push(
        context,
        lambda r: reply(r, 201, {"id": "a", "version": "body"}, headers={"ETag": '"header"'}),
    )
    assert context.get("todo", "a")["version"] == "header"


# -- failures that are recorded and skipped ---------------------------------------------------


def conflict_server(server_item: dict[str, Any], status: int = 412) -> Any:
    def respond(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/b") or body_of_or_none(request).get("id") == "b":
            return echo()(request)
        return reply(request, status, server_item)

    return respond


def body_of_or_none(request: httpx.Request) -> dict[str, Any]:
    return body_of(request) if request.content else {}


def test_a_conflict_is_recorded_and_the_push_goes_on(context: SyncContext) -> None:
    context.update("todo", {"id": "a", "text": "mine", "version": "v1"})
    context.update("todo", {"id": "b", "text": "other"})
    server = {"id": "a", "text": "theirs", "version": "v9", **SERVER_STAMP}

    error, requests = push_failing(context, conflict_server(server))

    assert [r.url.path for r in requests] == ["/tables/todo/a", "/tables/todo/b"]
    result = error.result
    assert result.status is PushStatus.COMPLETE and result.completed == 1
    (failure,) = result.errors
    assert (failure.status, failure.kind, failure.item_id) == (412, OperationKind.UPDATE, "a")
    assert failure.server_item == server
    assert failure.item == {"id": "a", "text": "mine", "version": "v1"}
    assert failure.is_conflict
    assert failure.operation is not None and failure.operation.item_id == "a"
    (left,) = context.pending_operations()
    assert (left.item_id, left.state) == ("a", OperationState.FAILED)
    assert context.errors() == []  # errors belong to one push; the operation stays queued


def test_server_wins_resolution_after_the_push(context: SyncContext) -> None:
    context.update("todo", {"id": "a", "text": "mine", "version": "v1"})
    server = {"id": "a", "text": "theirs", "version": "v9", **SERVER_STAMP}
    error, _ = push_failing(context, conflict_server(server))

    error.result.errors[0].cancel_and_update(error.result.errors[0].server_item)

    assert context.pending_count() == 0
    assert context.get("todo", "a") == server


def test_update_operation_resolution_resends_on_the_next_push(context: SyncContext) -> None:
    context.update("todo", {"id": "a", "text": "mine", "version": "v1"})
    server = {"id": "a", "text": "theirs", "version": "v9", **SERVER_STAMP}
    error, _ = push_failing(context, conflict_server(server))
    failure = error.result.errors[0]

    failure.update_operation({**failure.item, "version": failure.server_item["version"]})
    driven = push(context, echo("v10"))

    assert driven.requests[0].headers["If-Match"] == '"v9"'
    assert (
        driven.requests[0].headers["Idempotency-Key"] != error.result.errors[0].error.operation_id
    )
    assert context.get("todo", "a")["text"] == "mine" and context.pending_count() == 0


def test_cancel_and_discard_drops_the_local_row(context: SyncContext) -> None:
    context.update("todo", {"id": "a", "text": "mine"})
    error, _ = push_failing(context, lambda r: reply(r, 400, {"status": 400, "error": "bad"}))
    failure = error.result.errors[0]
    assert (failure.status, failure.server_item, failure.raw_result) == (
        400,
        None,
        '{"status":400,"error":"bad"}',
    )

    failure.cancel_and_discard()

    assert context.pending_count() == 0 and context.get("todo", "a") is None


def test_a_missing_local_row_is_an_error_without_status(context: SyncContext) -> None:
    context.update("todo", {"id": "a", "text": "mine"})
    context.store.delete_items("todo", ["a"])  # vanished under the queue

    error, requests = push_failing(context, echo())

    assert requests == []
    (failure,) = error.result.errors
    assert (failure.status, failure.item) == (None, {"id": "a"})


def test_on_push_complete_can_resolve_every_error(context: SyncContext) -> None:
    class Resolve(SyncHandler):
        def __init__(self) -> None:
            self.seen: list[int | None] = []

        def on_push_complete(self, result: Any) -> None:
            for failure in result.errors:
                self.seen.append(failure.status)
                failure.cancel_and_update(failure.server_item)

    context.update("todo", {"id": "a", "text": "mine", "version": "v1"})
    server = {"id": "a", "text": "theirs", "version": "v9"}
    handler = Resolve()

    driven = push(context, conflict_server(server), handler=handler)

    assert handler.seen == [412]
    assert driven.result.ok and context.get("todo", "a") == server


# -- failures that abort the push ----------------------------------------------------------


def test_a_transport_error_aborts_and_the_next_push_resumes(context: SyncContext) -> None:
    for key in "abc":
        context.update("todo", {"id": key, "text": key})

    def flaky(request: httpx.Request) -> httpx.Response | Exception:
        if request.url.path.endswith("/b"):
            return TransportError("connection refused")
        return echo()(request)

    error, requests = push_failing(context, flaky)

    assert [r.url.path[-1] for r in requests] == ["a", "b"]
    assert error.result.status is PushStatus.CANCELLED_BY_NETWORK_ERROR
    assert error.result.errors == [] and isinstance(error.__cause__, TransportError)
    assert [op.item_id for op in context.pending_operations()] == ["b", "c"]

    driven = push(context, echo())
    assert [r.url.path[-1] for r in driven.requests] == ["b", "c"]
    assert context.pending_count() == 0


def test_a_401_aborts_with_authentication_status(context: SyncContext) -> None:
    context.update("todo", {"id": "a"})
    context.update("todo", {"id": "b"})

    error, requests = push_failing(context, lambda r: reply(r, 401, {"error": "no"}))

    assert len(requests) == 1
    assert error.result.status is PushStatus.CANCELLED_BY_AUTHENTICATION_ERROR
    assert isinstance(error.__cause__, AuthenticationError)
    assert context.pending_count() == 2


def test_a_store_error_aborts_with_store_status(
    context: SyncContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    context.update("todo", {"id": "a"})

    def broken(op: Any) -> Any:
        raise StoreError("disk full")

    monkeypatch.setattr(context, "item_for_push", broken)
    error, requests = push_failing(context, echo())

    assert requests == [] and error.result.status is PushStatus.CANCELLED_BY_STORE_ERROR
    assert context.pending_count() == 1


def test_a_crashing_handler_aborts_with_internal_error(context: SyncContext) -> None:
    class Broken(SyncHandler):
        def execute_operation(self, operation: Any, send: Any) -> Any:
            yield from send(operation.item)
            raise KeyError("bug")

    context.update("todo", {"id": "a"})
    error, _ = push_failing(context, echo(), handler=Broken())

    assert error.result.status is PushStatus.INTERNAL_ERROR
    assert isinstance(error.__cause__, KeyError)
    assert context.pending_count() == 1


# -- lost responses against servers without Idempotency-Key ------------------------------------


def test_a_409_on_insert_carrying_our_own_item_is_success(context: SyncContext) -> None:
    context.insert("todo", {"id": "a", "text": "milk", "n": 1, "when": "2024-01-01T00:00:00Z"})
    mine = {
        "id": "a",
        "text": "milk",
        "n": 1.0,
        "when": "2024-01-01T00:00:00.000Z",
        "version": "v1",
        **SERVER_STAMP,
    }

    driven = push(context, lambda r: reply(r, 409, mine))

    assert driven.result.ok
    assert context.pending_count() == 0 and context.get("todo", "a")["version"] == "v1"


def test_a_412_on_update_carrying_our_own_item_is_success(context: SyncContext) -> None:
    context.update("todo", {"id": "a", "text": "milk", "version": "v1"})
    mine = {"id": "a", "text": "milk", "version": "v2", **SERVER_STAMP}

    driven = push(context, lambda r: reply(r, 412, mine))

    assert driven.result.ok and context.get("todo", "a")["version"] == "v2"


@pytest.mark.parametrize(
    "server",
    [
        pytest.param({"id": "a", "text": "milk"}, id="echo-without-version-node"),
        pytest.param({"id": "a", "text": "bread", "version": "v1"}, id="different-data"),
        pytest.param({"id": "a", "text": "milk", "version": "v1", "deleted": True}, id="tombstone"),
    ],
)
def test_a_409_that_is_not_our_write_stays_a_conflict(
    context: SyncContext, server: dict[str, Any]
) -> None:
    context.insert("todo", {"id": "a", "text": "milk"})
    error, _ = push_failing(context, lambda r: reply(r, 409, server))
    assert error.result.errors[0].status == 409


@pytest.mark.parametrize(
    ("local", "remote", "same"),
    [
        pytest.param(1, 1.0, True, id="int-float"),
        pytest.param(True, 1, False, id="bool-is-not-int"),
        pytest.param("2024-01-01T00:00:00Z", "2024-01-01T00:00:00.000+00:00", True, id="dates"),
        pytest.param("a", "b", False, id="strings"),
        pytest.param(None, None, True, id="nulls"),
        pytest.param([1], [1], True, id="lists"),
    ],
)
def test_same_value(local: Any, remote: Any, same: bool) -> None:
    assert same_value(local, remote) is same


# -- conflict policies --------------------------------------------------------------------------


def test_server_wins_keeps_the_server_item(context: SyncContext) -> None:
    context.update("todo", {"id": "a", "text": "mine", "version": "v1"})
    server = {"id": "a", "text": "theirs", "version": "v9", **SERVER_STAMP}

    driven = push(context, conflict_server(server), handler=ServerWins())

    assert driven.result.ok and context.pending_count() == 0
    assert context.get("todo", "a") == server


def test_server_wins_on_a_deleted_server_item_removes_the_row(context: SyncContext) -> None:
    context.update("todo", {"id": "a", "text": "mine", "version": "v1"})
    server = {"id": "a", "text": "theirs", "version": "v9", "deleted": True}
    push(context, conflict_server(server), handler=ServerWins())
    assert context.get("todo", "a") is None and context.pending_count() == 0


def test_client_wins_resends_over_the_server_version(context: SyncContext) -> None:
    context.update("todo", {"id": "a", "text": "mine", "version": "v1"})
    server = {"id": "a", "text": "theirs", "version": "v9"}

    def respond(request: httpx.Request) -> httpx.Response:
        if request.headers.get("If-Match") == '"v9"':
            return echo("v10")(request)
        return reply(request, 412, server)

    driven = push(context, respond, handler=ClientWins())

    first, second = driven.requests
    assert second.headers["If-Match"] == '"v9"'
    assert first.headers["Idempotency-Key"] != second.headers["Idempotency-Key"]
    assert driven.result.ok
    assert (
        context.get("todo", "a")["text"] == "mine" and context.get("todo", "a")["version"] == "v10"
    )


def test_client_wins_turns_a_conflicting_insert_into_an_update(context: SyncContext) -> None:
    context.insert("todo", {"id": "a", "text": "mine"})
    server = {"id": "a", "text": "theirs", "version": "v9"}

    def respond(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return reply(request, 409, server)
        return echo("v10")(request)

    driven = push(context, respond, handler=ClientWins())

    assert [r.method for r in driven.requests] == ["POST", "PUT"]
    assert body_of(driven.requests[1]) == {"id": "a", "text": "mine", "version": "v9"}
    assert driven.result.ok and context.get("todo", "a")["version"] == "v10"


def test_client_wins_gives_up_after_one_retry(context: SyncContext) -> None:
    context.update("todo", {"id": "a", "text": "mine", "version": "v1"})
    error, requests = push_failing(
        context,
        lambda r: reply(r, 412, {"id": "a", "text": "x", "version": "v9"}),
        handler=ClientWins(),
    )
    assert len(requests) == 2 and error.result.errors[0].status == 412


def test_a_resolver_merges_and_sends_the_merge(context: SyncContext) -> None:
    context.update("todo", {"id": "a", "text": "mine", "done": False, "version": "v1"})
    server = {"id": "a", "text": "theirs", "done": True, "version": "v9"}
    calls: list[tuple[Any, Any]] = []

    def merge(local: Any, remote: Any) -> Any:
        calls.append((local, remote))
        return {**remote, "text": local["text"]}

    def respond(request: httpx.Request) -> httpx.Response:
        if request.headers.get("If-Match") == '"v9"':
            return echo("v10")(request)
        return reply(request, 412, server)

    driven = push(context, respond, handler=ConflictResolver(merge))

    assert calls == [({"id": "a", "text": "mine", "done": False, "version": "v1"}, server)]
    assert body_of(driven.requests[1]) == {"id": "a", "text": "mine", "done": True, "version": "v9"}
    assert context.get("todo", "a")["text"] == "mine" and context.get("todo", "a")["done"] is True


def test_a_resolver_returning_none_keeps_the_server_item(context: SyncContext) -> None:
    context.update("todo", {"id": "a", "text": "mine", "version": "v1"})
    server = {"id": "a", "text": "theirs", "version": "v9"}
    driven = push(
        context, conflict_server(server), handler=ConflictResolver(lambda local, remote: None)
    )
    assert driven.result.ok and context.get("todo", "a") == server


def test_a_resolver_gets_none_as_local_for_a_delete(context: SyncContext) -> None:
    context.store.upsert_items("todo", [{"id": "a", "text": "x", "version": "v1"}])
    context.delete("todo", "a")
    server = {"id": "a", "text": "theirs", "version": "v9"}
    seen: list[Any] = []

    push(
        context,
        conflict_server(server),
        handler=ConflictResolver(lambda local, remote: seen.append(local)),
    )

    assert seen == [None]
    assert context.get("todo", "a") == server  # the server's edit survives the local delete


# -- progress -----------------------------------------------------------------------------------


def test_progress_counts_operations(context: SyncContext) -> None:
    for key in "ab":
        context.update("todo", {"id": key})
    reports: list[SyncProgress] = []

    push(context, echo(), progress=reports.append)

    assert [(p.table, p.done, p.total) for p in reports] == [
        (None, 0, 2),
        ("todo", 1, 2),
        ("todo", 2, 2),
    ]


def test_push_of_some_tables_leaves_the_others(context: SyncContext) -> None:
    context.update("todo", {"id": "a"})
    context.update("notes", {"id": "n"})
    driven = push(context, echo(), tables=["notes"])
    assert [r.url.path for r in driven.requests] == ["/tables/notes/n"]
    assert [op.table for op in context.pending_operations()] == ["todo"]


def test_a_handler_that_forgets_to_return_the_outcome_stops_the_push(context: SyncContext) -> None:
    from tablesync import UsageError

    class Forgetful(SyncHandler):
        def execute_operation(self, operation: Any, send: Any) -> Any:
            yield from send(operation.item)

    context.update("todo", {"id": "a"})
    error, _ = push_failing(context, echo(), handler=Forgetful())
    assert error.result.status is PushStatus.INTERNAL_ERROR
    assert isinstance(error.__cause__, UsageError) and "OperationOutcome" in str(error.__cause__)


def test_a_handler_class_instead_of_an_instance_is_refused() -> None:
    from tablesync import Client, UsageError

    with pytest.raises(UsageError, match="instance"):
        Client("http://server", conflict_handler=ServerWins)  # type: ignore[arg-type]


def test_server_wins_does_not_abort_when_the_item_was_edited_during_the_push(
    context: SyncContext,
) -> None:
    context.update("todo", {"id": "a", "text": "mine", "version": "v1"})
    context.update("todo", {"id": "b", "text": "next"})
    server = {"id": "a", "text": "theirs", "version": "v9"}

    def respond(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/a"):
            context.update("todo", {"id": "a", "text": "edited meanwhile", "version": "v1"})
            return reply(request, 412, server)
        return echo()(request)

    error, requests = push_failing(context, respond, handler=ServerWins())

    assert error.result.status is PushStatus.COMPLETE and len(requests) == 2
    assert [e.item_id for e in error.result.errors] == ["a"]
    assert context.get("todo", "a")["text"] == "edited meanwhile"
    assert [op.item_id for op in context.pending_operations()] == ["a"]


def test_a_handler_can_abort_the_push(context: SyncContext) -> None:
    from tablesync import PushAbortedError

    class Abort(SyncHandler):
        def execute_operation(self, operation: Any, send: Any) -> Any:
            if operation.item_id == "b":
                raise PushAbortedError("the user went offline")
            return (yield from send(operation.item))

    for key in "abc":
        context.update("todo", {"id": key})
    error, requests = push_failing(context, echo(), handler=Abort())

    assert [r.url.path[-1] for r in requests] == ["a"]
    assert error.result.status is PushStatus.CANCELLED_BY_OPERATION
    assert [op.item_id for op in context.pending_operations()] == ["b", "c"]
