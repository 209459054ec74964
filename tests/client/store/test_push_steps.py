"""The store side of push: walking the queue, attempts, completion (with edits made meanwhile)
and failures."""

from __future__ import annotations

import pytest

from tablesync import QueueError
from tablesync.client._context import SyncContext
from tablesync.client._store import Operation, OperationError, OperationKind, OperationState

SERVER = {"id": "a", "text": "server", "version": "v2", "updatedAt": "2024-02-02T00:00:00.000Z",
          "createdAt": "2024-01-01T00:00:00.000Z", "deleted": False}  # fmt: skip


def error_for(op: Operation, status: int = 412) -> OperationError:
    return OperationError(op.id, op.version, op.kind, op.table, op.item_id, status,
                          {"id": op.item_id}, dict(SERVER), '{"id":"a"}')  # fmt: skip


def walk(context: SyncContext, tables: list[str] | None = None) -> list[str]:
    seen, sequence = [], 0
    while (op := context.next_operation(sequence, tables)) is not None:
        seen.append(op.item_id)
        sequence = op.sequence
    return seen


def test_next_operation_walks_the_queue_in_order_and_by_table(context: SyncContext) -> None:
    context.insert("b", {"id": "1"})
    context.insert("a", {"id": "2"})
    context.insert("b", {"id": "3"})
    assert walk(context) == ["1", "2", "3"]
    assert walk(context, ["B"]) == ["1", "3"]
    assert walk(context, []) == []


def test_operation_queued_during_a_walk_comes_after_it(context: SyncContext) -> None:
    context.insert("t", {"id": "1"})
    context.insert("t", {"id": "2"})
    first = context.next_operation(0)
    assert first is not None
    context.complete_operation(context.mark_attempted(first), None)
    context.insert("t", {"id": "1-again"})  # never reuses the sequence number of "1"
    assert walk(context) == ["2", "1-again"]


def test_item_for_push_reads_the_current_row(context: SyncContext) -> None:
    context.insert("t", {"id": "a", "text": "v1"})
    context.update("t", {"id": "a", "text": "v2"})
    op = context.next_operation(0)
    assert op is not None and context.item_for_push(op) == {"id": "a", "text": "v2"}
    context.store.delete_items("t", ["a"])
    assert context.item_for_push(op) is None


def test_mark_attempted_persists_the_state(context: SyncContext) -> None:
    context.insert("t", {"id": "a"})
    op = context.next_operation(0)
    assert op is not None
    attempted = context.mark_attempted(op)
    assert attempted.state is OperationState.ATTEMPTED
    assert context.store.get_operation_by_id(op.id).state is OperationState.ATTEMPTED  # type: ignore[union-attr]


def test_mark_attempted_of_a_cancelled_operation_raises(context: SyncContext) -> None:
    context.insert("t", {"id": "a"})
    op = context.next_operation(0)
    assert op is not None
    context.delete("t", "a")  # insert + delete: both cancelled
    with pytest.raises(QueueError, match="no longer queued"):
        context.mark_attempted(op)


def test_complete_insert_dequeues_and_stores_the_server_copy(context: SyncContext) -> None:
    context.insert("t", {"id": "a", "text": "local"})
    op = context.mark_attempted(context.next_operation(0))  # type: ignore[arg-type]
    context.complete_operation(op, dict(SERVER))
    assert context.pending_count() == 0
    assert context.get("t", "a") == SERVER


def test_complete_delete_dequeues_without_writing_a_row(context: SyncContext) -> None:
    context.apply_pulled_page("t", [SERVER])
    context.delete("t", "a")
    op = context.mark_attempted(context.next_operation(0))  # type: ignore[arg-type]
    context.complete_operation(op, None)
    assert context.pending_count() == 0
    assert context.get("t", "a") is None


def test_complete_forgets_the_operation_error(context: SyncContext) -> None:
    context.insert("t", {"id": "a"})
    op = context.mark_attempted(context.next_operation(0))  # type: ignore[arg-type]
    context.fail_operation(op, error_for(op, 500))
    context.complete_operation(op, dict(SERVER))
    assert context.errors() == []


def test_edit_during_an_insert_push_keeps_it_queued_as_an_update(context: SyncContext) -> None:
    context.insert("t", {"id": "a", "text": "local"})
    op = context.mark_attempted(context.next_operation(0))  # type: ignore[arg-type]
    context.update("t", {"id": "a", "text": "edited meanwhile"})
    context.complete_operation(op, dict(SERVER))
    (queued,) = context.pending_operations()
    assert (queued.id, queued.kind, queued.state) == (
        op.id, OperationKind.UPDATE, OperationState.PENDING,
    )  # fmt: skip
    # The local edit wins; only the server's stamps are copied in (for the next If-Match).
    assert context.get("t", "a") == {
        "id": "a", "text": "edited meanwhile", "version": "v2",
        "updatedAt": "2024-02-02T00:00:00.000Z", "createdAt": "2024-01-01T00:00:00.000Z",
    }  # fmt: skip


def test_edit_before_mark_attempted_is_not_lost(context: SyncContext) -> None:
    context.insert("t", {"id": "a", "text": "v1"})
    op = context.next_operation(0)
    assert op is not None
    sent = context.item_for_push(op)
    context.update("t", {"id": "a", "text": "v2"})  # lands between the read and the attempt
    attempted = context.mark_attempted(op)
    context.complete_operation(attempted, {**SERVER, "text": sent["text"]})  # type: ignore[index]
    assert context.pending_count() == 1
    assert context.get("t", "a")["text"] == "v2"  # type: ignore[index]


def test_update_replaced_by_a_delete_during_its_push_gets_the_server_version(
    context: SyncContext,
) -> None:
    context.apply_pulled_page("t", [{**SERVER, "version": "v1"}])
    context.update("t", {"id": "a", "text": "edit", "version": "v1"})
    op = context.mark_attempted(context.next_operation(0))  # type: ignore[arg-type]
    context.delete("t", "a")
    context.complete_operation(op, dict(SERVER))
    (queued,) = context.pending_operations()
    assert queued.kind is OperationKind.DELETE
    assert queued.item is not None and queued.item["version"] == "v2"


def test_fail_operation_sets_failed_and_records_the_error(context: SyncContext) -> None:
    context.insert("t", {"id": "a"})
    context.insert("t", {"id": "b"})
    ops = context.pending_operations()
    for op in reversed(ops):
        context.fail_operation(context.mark_attempted(op), error_for(op))
    assert [e.item_id for e in context.errors()] == ["a", "b"]  # in queue order
    error = context.errors()[0]
    assert (error.status, error.server_item, error.raw_result) == (412, SERVER, '{"id":"a"}')
    assert all(op.state is OperationState.FAILED for op in context.pending_operations())
    context.clear_errors()
    assert context.errors() == []
    assert context.pending_count() == 2  # the operations stay queued


def test_save_error_replaces_the_previous_error_of_an_operation(context: SyncContext) -> None:
    context.insert("t", {"id": "a"})
    op = context.next_operation(0)
    assert op is not None
    context.fail_operation(op, error_for(op, 500))
    context.fail_operation(op, error_for(op, 409))
    assert [e.status for e in context.errors()] == [409]


def test_complete_with_a_deleted_server_item_removes_the_row(context: SyncContext) -> None:
    context.apply_pulled_page("t", [SERVER])
    context.update("t", {"id": "a", "text": "edit", "version": "v2"})
    op = context.mark_attempted(context.next_operation(0))  # type: ignore[arg-type]
    context.complete_operation(op, {**SERVER, "deleted": True})
    assert context.pending_count() == 0
    assert context.get("t", "a") is None
