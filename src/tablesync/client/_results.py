"""What a push or a pull reports: status, per-operation errors and their resolutions."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._store import Operation, OperationError, OperationKind

if TYPE_CHECKING:
    from ._context import SyncContext


class PushStatus(enum.IntEnum):
    """How a push ended (numbered as the official clients' ``PushStatus``)."""

    COMPLETE = 0
    """Every operation was attempted (some may have failed with an error)."""
    CANCELLED_BY_NETWORK_ERROR = 1
    """The server could not be reached (after retries); the rest of the queue waits."""
    CANCELLED_BY_AUTHENTICATION_ERROR = 2
    """The server answered 401 even after a token refresh."""
    CANCELLED_BY_STORE_ERROR = 3
    """The local store failed."""
    CANCELLED_BY_TOKEN = 4
    """The push was cancelled by the caller."""
    CANCELLED_BY_OPERATION = 5
    """A sync handler aborted the push."""
    INTERNAL_ERROR = 2**31 - 1
    """A sync handler (or tablesync itself) raised an unexpected exception."""


class TableOperationError:
    """A failed push operation, with the methods that resolve it.

    Each resolution checks that the operation was not edited since it failed (else
    ``QueueError``) and marks the error handled, so a handler's ``on_push_complete`` that
    resolves every error makes the push succeed.
    """

    def __init__(
        self, error: OperationError, context: SyncContext, operation: Operation | None = None
    ) -> None:
        self.error = error
        self.operation = operation
        self.handled = False
        self._context = context

    def __repr__(self) -> str:
        return (
            f"<TableOperationError {self.kind.name} {self.table}/{self.item_id} "
            f"status={self.status} handled={self.handled}>"
        )

    @property
    def status(self) -> int | None:
        """HTTP status, or ``None`` when the operation failed before any response."""
        return self.error.status

    @property
    def kind(self) -> OperationKind:
        """The kind of the failed operation."""
        return self.error.kind

    @property
    def table(self) -> str:
        """The table of the item."""
        return self.error.table

    @property
    def item_id(self) -> str:
        """The id of the item."""
        return self.error.item_id

    @property
    def item(self) -> dict[str, Any] | None:
        """The item as it was sent."""
        return self.error.item

    @property
    def server_item(self) -> dict[str, Any] | None:
        """The server's current item (409/412 bodies), if it sent one."""
        return self.error.server_item

    @property
    def raw_result(self) -> str | None:
        """The response body text."""
        return self.error.raw_result

    @property
    def is_conflict(self) -> bool:
        """True for a version conflict (409 or 412)."""
        return self.status in (409, 412)

    def cancel_and_discard(self) -> None:
        """Drop the operation and the local row (the server's state is kept as it is)."""
        self._context.cancel_and_discard(self.error)
        self.handled = True

    def cancel_and_update(self, item: Mapping[str, Any]) -> None:
        """Drop the operation and store ``item`` locally as server data ("server wins")."""
        self._context.cancel_and_update(self.error, item)
        self.handled = True

    def update_operation(self, item: Mapping[str, Any]) -> None:
        """Keep the operation, with ``item`` (usually carrying the server's version) to send."""
        self._context.update_operation(self.error, item)
        self.handled = True


@dataclass(frozen=True, slots=True)
class PushResult:
    """How a push ended."""

    status: PushStatus
    errors: list[TableOperationError] = field(default_factory=list)
    """The errors no handler resolved (all errors, when passed to ``on_push_complete``)."""
    completed: int = 0
    """Operations the server accepted (and that left the queue)."""

    @property
    def ok(self) -> bool:
        """True when the push completed and no error is left."""
        return self.status is PushStatus.COMPLETE and not self.errors


@dataclass(frozen=True, slots=True)
class PullResult:
    """What a pull of one table did."""

    table: str
    query_id: str | None
    """The incremental query id, or ``None`` for a full pull."""
    pages: int = 0
    """Pages received (the final empty page included)."""
    received: int = 0
    """Items received, tombstones included."""
    upserted: int = 0
    deleted: int = 0
    skipped: int = 0
    """Items left alone because the item has a pending local operation (or had no id)."""
    push: PushResult | None = None
    """The implicit push that ran first, if the table had pending operations."""
