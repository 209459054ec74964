"""Conflict resolutions (protocol.md §7.6, NC semantics) with the operation-version check."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tablesync import QueueError, StoreError
from tablesync.client._context import SyncContext
from tablesync.client._store import OperationError, OperationKind, OperationState

SERVER = {"id": "a", "text": "server", "version": "v2", "updatedAt": "2024-02-02T00:00:00.000Z"}


def failed(context: SyncContext, kind: OperationKind) -> OperationError:
    """Queue an operation of ``kind`` on item ``a`` and fail it with a 412."""
    if kind is OperationKind.INSERT:
        context.insert("t", {"id": "a", "text": "local"})
    else:
        context.apply_pulled_page("t", [{**SERVER, "version": "v1", "text": "old"}])
        if kind is OperationKind.UPDATE:
            context.update("t", {"id": "a", "text": "local", "version": "v1"})
        else:
            context.delete("t", "a")
    op = context.mark_attempted(context.next_operation(0))  # type: ignore[arg-type]
    error = OperationError(op.id, op.version, op.kind, "t", "a", 412, {"id": "a"}, dict(SERVER))
    context.fail_operation(op, error)
    return error


KINDS = [
    pytest.param(OperationKind.INSERT, id="insert"),
    pytest.param(OperationKind.UPDATE, id="update"),
    pytest.param(OperationKind.DELETE, id="delete"),
]


@pytest.mark.parametrize("kind", KINDS)
def test_cancel_and_discard_drops_operation_error_and_row(
    context: SyncContext, kind: OperationKind
) -> None:
    error = failed(context, kind)
    context.cancel_and_discard(error)
    assert (context.pending_count(), context.errors(), context.get("t", "a")) == (0, [], None)


@pytest.mark.parametrize("kind", KINDS)
def test_cancel_and_update_stores_the_server_item(
    context: SyncContext, kind: OperationKind
) -> None:
    error = failed(context, kind)
    context.cancel_and_update(error, error.server_item)  # type: ignore[arg-type]
    assert (context.pending_count(), context.errors()) == (0, [])
    assert context.get("t", "a") == SERVER


def test_cancel_and_update_with_a_deleted_server_item_removes_the_row(
    context: SyncContext,
) -> None:
    error = failed(context, OperationKind.UPDATE)
    context.cancel_and_update(error, {**SERVER, "deleted": True})
    assert context.get("t", "a") is None and context.pending_count() == 0


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param(OperationKind.INSERT, id="insert"),
        pytest.param(OperationKind.UPDATE, id="update"),
    ],
)
def test_update_operation_requeues_with_the_merged_item(
    context: SyncContext, kind: OperationKind
) -> None:
    error = failed(context, kind)
    merged = {"id": "a", "text": "merged", "version": "v2"}
    context.update_operation(error, merged)
    (op,) = context.pending_operations()
    assert (op.kind, op.state, op.version, op.item) == (
        kind, OperationState.PENDING, error.operation_version + 1, None,
    )  # fmt: skip
    assert context.errors() == []
    assert context.get("t", "a") == merged


def test_update_operation_of_a_delete_stores_the_item_in_the_operation(
    context: SyncContext,
) -> None:
    error = failed(context, OperationKind.DELETE)
    context.update_operation(error, {"id": "a", "version": "v2"})
    (op,) = context.pending_operations()
    assert (op.kind, op.item) == (OperationKind.DELETE, {"id": "a", "version": "v2"})
    assert context.item_for_push(op) == {"id": "a", "version": "v2"}
    assert context.get("t", "a") is None


def test_update_operation_can_turn_a_refused_insert_into_an_update(
    context: SyncContext,
) -> None:
    error = failed(context, OperationKind.INSERT)
    context.update_operation(
        error, {"id": "a", "text": "mine", "version": "v2"}, kind=OperationKind.UPDATE
    )
    (op,) = context.pending_operations()
    assert op.kind is OperationKind.UPDATE


Resolution = Callable[[SyncContext, OperationError], None]
RESOLUTIONS = [
    pytest.param(lambda c, e: c.cancel_and_discard(e), id="cancel_and_discard"),
    pytest.param(lambda c, e: c.cancel_and_update(e, SERVER), id="cancel_and_update"),
    pytest.param(lambda c, e: c.update_operation(e, SERVER), id="update_operation"),
]


@pytest.mark.parametrize("resolve", RESOLUTIONS)
def test_a_resolution_after_a_local_edit_is_refused(
    context: SyncContext, resolve: Resolution
) -> None:
    error = failed(context, OperationKind.UPDATE)
    context.update("t", {"id": "a", "text": "edited after the push"})  # version + 1
    before = (context.pending_operations(), context.get("t", "a"))
    with pytest.raises(QueueError, match="has been updated or removed"):
        resolve(context, error)
    assert (context.pending_operations(), context.get("t", "a")) == before


@pytest.mark.parametrize("resolve", RESOLUTIONS)
def test_a_second_resolution_of_the_same_error_is_refused(
    context: SyncContext, resolve: Resolution
) -> None:
    error = failed(context, OperationKind.UPDATE)
    resolve(context, error)
    with pytest.raises(QueueError):
        resolve(context, error)


@pytest.mark.parametrize(
    "item",
    [
        pytest.param({"id": "other", "text": "x"}, id="other-id"),
        pytest.param(["a"], id="not-a-mapping"),
    ],
)
def test_a_resolution_item_must_be_the_same_item(context: SyncContext, item: Any) -> None:
    error = failed(context, OperationKind.UPDATE)
    with pytest.raises(StoreError):
        context.cancel_and_update(error, item)
    with pytest.raises(StoreError):
        context.update_operation(error, item)
    assert context.pending_count() == 1 and len(context.errors()) == 1


def test_a_resolution_item_without_an_id_gets_the_error_item_id(context: SyncContext) -> None:
    error = failed(context, OperationKind.UPDATE)
    context.cancel_and_update(error, {"text": "server"})
    assert context.get("t", "a") == {"text": "server", "id": "a"}
