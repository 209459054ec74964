"""The collapse rules of protocol.md §6.2: the pure decision, then its effect on a real store."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

import pytest

from tablesync import QueueError, StoreError
from tablesync.client._context import SyncContext
from tablesync.client._queue import Collapse, collapse
from tablesync.client._store import Operation, OperationError, OperationKind, OperationState

INS, UPD, DEL = OperationKind.INSERT, OperationKind.UPDATE, OperationKind.DELETE
PENDING, ATTEMPTED, FAILED = OperationState.PENDING, OperationState.ATTEMPTED, OperationState.FAILED


def op(kind: OperationKind, state: OperationState = PENDING) -> Operation:
    return Operation(
        id="op1",
        sequence=1,
        table="todo",
        item_id="item1",
        kind=kind,
        state=state,
        version=3,
        item=None,
        created_at=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    )


@pytest.mark.parametrize(
    ("existing", "new", "expected"),
    [
        pytest.param(None, INS, Collapse.QUEUE_NEW, id="none+insert"),
        pytest.param(None, UPD, Collapse.QUEUE_NEW, id="none+update"),
        pytest.param(None, DEL, Collapse.QUEUE_NEW, id="none+delete"),
        pytest.param(op(INS), UPD, Collapse.KEEP_EXISTING, id="insert+update"),
        pytest.param(op(INS, ATTEMPTED), UPD, Collapse.KEEP_EXISTING, id="attempted-insert+update"),
        pytest.param(op(INS, FAILED), UPD, Collapse.KEEP_EXISTING, id="failed-insert+update"),
        pytest.param(op(INS), DEL, Collapse.CANCEL_BOTH, id="insert+delete"),
        pytest.param(op(UPD), UPD, Collapse.KEEP_EXISTING, id="update+update"),
        pytest.param(op(UPD, FAILED), UPD, Collapse.KEEP_EXISTING, id="failed-update+update"),
        pytest.param(op(UPD), DEL, Collapse.REPLACE_WITH_NEW, id="update+delete"),
        pytest.param(
            op(UPD, ATTEMPTED), DEL, Collapse.REPLACE_WITH_NEW, id="attempted-update+delete"
        ),
    ],
)
def test_allowed_cells(existing: Operation | None, new: OperationKind, expected: Collapse) -> None:
    assert collapse(existing, new) is expected


@pytest.mark.parametrize(
    ("existing", "new", "message"),
    [
        pytest.param(
            op(INS), INS, "an insert operation on the item is already", id="insert+insert"
        ),
        pytest.param(
            op(UPD), INS, "an update operation on the item is already", id="update+insert"
        ),
        pytest.param(op(DEL), INS, "a delete operation on the item is already", id="delete+insert"),
        pytest.param(op(DEL), UPD, "a delete operation on the item is already", id="delete+update"),
        pytest.param(op(DEL), DEL, "a delete operation on the item is already", id="delete+delete"),
        pytest.param(
            op(INS, ATTEMPTED), DEL, "inconsistent state (attempted)", id="attempted-insert+delete"
        ),
        pytest.param(
            op(INS, FAILED), DEL, "inconsistent state (failed)", id="failed-insert+delete"
        ),
    ],
)
def test_refused_cells(existing: Operation, new: OperationKind, message: str) -> None:
    with pytest.raises(QueueError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        collapse(existing, new)
    # A person can act on it: the item, the table and what to do are named.
    assert "'item1'" in str(info.value)
    assert "'todo'" in str(info.value)


# -- the same table, applied by SyncContext to a real store ----------------------------------
SERVER_ROW = {"id": "a", "text": "server", "version": "v1", "updatedAt": "2024-01-01T00:00:00.000Z"}


def queue_existing(context: SyncContext, kind: OperationKind) -> Operation:
    """Leave one queued operation of ``kind`` for item ``a``."""
    if kind is INS:
        context.insert("todo", {"id": "a", "text": "local"})
    else:
        context.apply_pulled_page("todo", [SERVER_ROW])
        if kind is UPD:
            context.update("todo", {**SERVER_ROW, "text": "edited"})
        else:
            context.delete("todo", "a")
    (existing,) = context.pending_operations()
    return existing


def write(context: SyncContext, kind: OperationKind) -> None:
    if kind is INS:
        context.insert("todo", {"id": "a", "text": "again"})
    elif kind is UPD:
        context.update("todo", {"id": "a", "text": "newer", "version": "v1"})
    else:
        context.delete("todo", "a")


def snapshot(context: SyncContext) -> tuple[Any, ...]:
    return (context.pending_operations(), context.get("todo", "a"), context.errors())


def test_insert_then_update_keeps_the_insert_with_the_new_data(context: SyncContext) -> None:
    first = queue_existing(context, INS)
    write(context, UPD)
    (queued,) = context.pending_operations()
    assert (queued.id, queued.kind, queued.version, queued.item) == (first.id, INS, 2, None)
    assert context.get("todo", "a") == {"id": "a", "text": "newer", "version": "v1"}


def test_insert_then_delete_cancels_both(context: SyncContext) -> None:
    queue_existing(context, INS)
    write(context, DEL)
    assert context.pending_operations() == []
    assert context.get("todo", "a") is None


@pytest.mark.parametrize(
    "state", [pytest.param(ATTEMPTED, id="attempted"), pytest.param(FAILED, id="failed")]
)
def test_delete_after_a_sent_insert_is_refused_and_changes_nothing(
    context: SyncContext, state: OperationState
) -> None:
    existing = queue_existing(context, INS)
    context.store.update_operation(replace(existing, state=state))
    before = snapshot(context)
    with pytest.raises(QueueError, match="may already exist on the server"):
        write(context, DEL)
    assert snapshot(context) == before


def test_update_then_update_keeps_one_update(context: SyncContext) -> None:
    first = queue_existing(context, UPD)
    write(context, UPD)
    (queued,) = context.pending_operations()
    assert (queued.id, queued.kind, queued.version) == (first.id, UPD, 2)
    assert context.get("todo", "a") == {"id": "a", "text": "newer", "version": "v1"}


def test_update_then_delete_becomes_a_delete_with_the_snapshot(context: SyncContext) -> None:
    first = queue_existing(context, UPD)
    write(context, DEL)
    (queued,) = context.pending_operations()
    assert queued.kind is DEL
    assert queued.version == first.version + 1
    assert queued.id != first.id and queued.sequence > first.sequence
    # The snapshot keeps the version (for If-Match) but no other system property.
    assert queued.item == {"id": "a", "text": "edited", "version": "v1"}
    assert context.get("todo", "a") is None


@pytest.mark.parametrize(
    ("existing", "new"),
    [
        pytest.param(INS, INS, id="insert+insert"),
        pytest.param(UPD, INS, id="update+insert"),
        pytest.param(DEL, INS, id="delete+insert"),
        pytest.param(DEL, UPD, id="delete+update"),
        pytest.param(DEL, DEL, id="delete+delete"),
    ],
)
def test_refused_writes_change_nothing(
    context: SyncContext, existing: OperationKind, new: OperationKind
) -> None:
    queue_existing(context, existing)
    before = snapshot(context)
    with pytest.raises(QueueError):
        write(context, new)
    assert snapshot(context) == before


@pytest.mark.parametrize(
    ("existing", "new"),
    [
        pytest.param(INS, UPD, id="insert+update"),
        pytest.param(UPD, UPD, id="update+update"),
        pytest.param(UPD, DEL, id="update+delete"),
        pytest.param(INS, DEL, id="insert+delete"),
    ],
)
def test_collapsing_forgets_the_stale_error(
    context: SyncContext, existing: OperationKind, new: OperationKind
) -> None:
    queued = queue_existing(context, existing)
    error = OperationError(queued.id, queued.version, queued.kind, "todo", "a", 500, None, None)
    context.store.save_error(error)  # state stays PENDING, as after a resolution
    assert len(context.errors()) == 1
    write(context, new)
    assert context.errors() == []


def test_insert_of_an_id_that_exists_locally_is_a_store_error(context: SyncContext) -> None:
    context.apply_pulled_page("todo", [SERVER_ROW])
    with pytest.raises(StoreError, match="already exists") as info:
        context.insert("todo", {"id": "a", "text": "dup"})
    assert not isinstance(info.value, QueueError)
    assert context.pending_operations() == []
    assert context.get("todo", "a") == SERVER_ROW
