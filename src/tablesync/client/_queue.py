"""The collapse rules of the operation queue, as one pure function.

There is at most one queued operation per (table, item id). When a new local write meets an
operation that is already queued for the same item, :func:`collapse` decides what happens. The
rules are those of the classic .NET client (protocol.md §6.2), chosen because they are proven
and keep the server's view of the item consistent:

========  =======================  ==============================  ==============================
existing  new INSERT               new UPDATE                      new DELETE
========  =======================  ==============================  ==============================
(none)    queue the insert         queue the update                queue the delete
INSERT    error                    keep the insert, version + 1    cancel both (error unless the
                                                                   insert is still PENDING)
UPDATE    error                    keep the update, version + 1    replace by the delete,
                                                                   version + 1
DELETE    error                    error                           error
========  =======================  ==============================  ==============================
"""

from __future__ import annotations

import enum

from .._exceptions import QueueError
from ._store import Operation, OperationKind, OperationState


class Collapse(enum.Enum):
    """What to do with the queue when a local write meets the item's queued operation."""

    QUEUE_NEW = "queue_new"
    """No operation was queued: queue the new one (version 1)."""
    KEEP_EXISTING = "keep_existing"
    """Keep the queued operation, bump its version; the new one is not queued.
    Push re-reads INSERT/UPDATE items from the store, so the new data is sent anyway."""
    CANCEL_BOTH = "cancel_both"
    """Remove the queued operation and do not queue the new one: nothing reaches the server."""
    REPLACE_WITH_NEW = "replace_with_new"
    """Remove the queued operation and queue the new one with the old version + 1."""


_KIND_NAMES = {
    OperationKind.INSERT: "an insert",
    OperationKind.UPDATE: "an update",
    OperationKind.DELETE: "a delete",
}


def collapse(existing: Operation | None, new_kind: OperationKind) -> Collapse:
    """Decide how a new local write of ``new_kind`` combines with the ``existing`` operation.

    Args:
        existing: the operation already queued for the same item, or ``None``.
        new_kind: what the new local write does.

    Returns:
        The decision; the caller applies it in the same transaction as the item change.

    Raises:
        QueueError: the combination is refused; nothing must be changed.
    """
    if existing is None:
        return Collapse.QUEUE_NEW
    if new_kind is OperationKind.INSERT or existing.kind is OperationKind.DELETE:
        raise QueueError(_already_queued(existing, new_kind))
    if new_kind is OperationKind.UPDATE:
        return Collapse.KEEP_EXISTING
    if existing.kind is OperationKind.UPDATE:
        return Collapse.REPLACE_WITH_NEW
    if existing.state is not OperationState.PENDING:
        raise QueueError(_attempted_insert(existing))
    return Collapse.CANCEL_BOTH


def _already_queued(existing: Operation, new_kind: OperationKind) -> str:
    what = _KIND_NAMES[new_kind].split(" ", 1)[1]
    return (
        f"Cannot {what} item {existing.item_id!r} of table {existing.table!r}: "
        f"{_KIND_NAMES[existing.kind]} operation on the item is already in the queue. "
        + _advice(existing.kind, new_kind)
    )


def _advice(existing: OperationKind, new_kind: OperationKind) -> str:
    if existing is OperationKind.DELETE:
        return "The item was deleted locally; push before writing it again."
    if new_kind is OperationKind.INSERT:
        return "The item already exists locally; use update() to change it."
    return "Push the queued change first."


def _attempted_insert(existing: Operation) -> str:
    state = existing.state.name.lower()
    return (
        f"Cannot delete item {existing.item_id!r} of table {existing.table!r}: its queued insert "
        f"is in an inconsistent state ({state}); it may already exist on the server. "
        "Push (and resolve any error of that insert) before deleting the item."
    )
