"""The local store contract: what the sync machinery needs from a place to keep data offline.

``SQLiteStore`` is the default implementation and ``EncryptedSQLiteStore`` (SQLCipher) the
second; anyone can plug in another by implementing :class:`LocalStore`. The store is the only
object that touches the database, so the sync logic (``SyncContext``, the push/pull/purge flows)
is written once against this protocol.

Every method is a short, blocking, local call. Callers group calls that must be all-or-nothing
inside ``with store.atomic():`` (a queue change with its item change; a pulled page with its
delta token); ``atomic`` blocks nest (savepoints) and roll back on any exception.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Collection, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ..odata import Query
    from ..odata.ast import Expr


class OperationKind(enum.IntEnum):
    """What a queued operation does on the server (numbered as the classic .NET client)."""

    INSERT = 0
    UPDATE = 1
    DELETE = 2


class OperationState(enum.IntEnum):
    """Where a queued operation is in its life."""

    PENDING = 0
    """Not yet sent, or reset by a resolution."""
    ATTEMPTED = 1
    """Sent at least once; the server may already have applied it."""
    FAILED = 2
    """The last attempt ended with an error recorded against it."""


@dataclass(frozen=True, slots=True)
class Operation:
    """One queued local change. There is at most one per (table, item id)."""

    id: str
    """Unique id (32 hex digits); also sent as the ``Idempotency-Key`` of its request."""
    sequence: int
    """Position in the queue; push walks operations in ascending sequence."""
    table: str
    item_id: str
    kind: OperationKind
    state: OperationState
    version: int
    """Counts edits of this operation; resolutions check it to avoid lost updates."""
    item: dict[str, Any] | None
    """The item snapshot: always kept for DELETE (the row is gone), else ``None``; push reads
    INSERT/UPDATE items from the store at push time."""
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class OperationError:
    """A failure recorded against an operation during a push."""

    operation_id: str
    operation_version: int
    kind: OperationKind
    table: str
    item_id: str
    status: int | None
    """HTTP status, or ``None`` when no response was had (e.g. the local row was missing)."""
    item: dict[str, Any] | None
    """The item as it was sent."""
    server_item: dict[str, Any] | None
    """The server's current item, when the response body was one (409/412)."""
    raw_result: str | None = None
    """The response body text."""
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class LocalStore(Protocol):
    """What a local store must provide. All names are tables' sync names (case-insensitive)."""

    # -- lifecycle and transactions -------------------------------------------------------
    def atomic(self) -> AbstractContextManager[None]:
        """A transaction; nests with savepoints; rolls back on any exception."""
        ...

    def close(self) -> None:
        """Release the database; later calls raise ``UsageError``."""
        ...

    # -- items ----------------------------------------------------------------------------
    def get_item(self, table: str, item_id: str) -> dict[str, Any] | None:
        """The stored item, or ``None``."""
        ...

    def query_items(self, table: str, query: Query | None = None) -> list[dict[str, Any]]:
        """Items matching ``query`` (filter, order_by, skip, top, select), evaluated locally."""
        ...

    def count_items(self, table: str, query: Query | None = None) -> int:
        """How many items match ``query``'s filter (ignoring skip/top)."""
        ...

    def upsert_items(self, table: str, items: Iterable[dict[str, Any]]) -> None:
        """Insert or replace whole items (each has an ``id``)."""
        ...

    def delete_items(self, table: str, item_ids: Iterable[str]) -> None:
        """Delete items by id; missing ids are ignored."""
        ...

    def delete_matching(self, table: str, filter: Expr | None = None) -> int:
        """Delete every item matching ``filter`` (all when ``None``); returns the count."""
        ...

    # -- the operation queue --------------------------------------------------------------
    def get_operation(self, table: str, item_id: str) -> Operation | None:
        """The queued operation for an item, if any."""
        ...

    def get_operation_by_id(self, operation_id: str) -> Operation | None:
        """The queued operation with this id, if it is still queued."""
        ...

    def add_operation(
        self, table: str, item_id: str, kind: OperationKind, item: dict[str, Any] | None
    ) -> Operation:
        """Append an operation (state PENDING, version 1) with the next sequence number."""
        ...

    def update_operation(self, operation: Operation) -> None:
        """Overwrite the stored operation that has ``operation.id`` with these values."""
        ...

    def delete_operation(self, operation_id: str, *, version: int | None = None) -> bool:
        """Remove an operation; with ``version``, only if it is still at that version."""
        ...

    def operations(
        self, *, tables: Sequence[str] | None = None, after_sequence: int = 0, limit: int = 1000
    ) -> list[Operation]:
        """Queued operations in sequence order, optionally for some tables only."""
        ...

    def count_operations(self, table: str | None = None) -> int:
        """How many operations are queued (for one table, or all)."""
        ...

    def delete_operations(self, table: str) -> int:
        """Drop every queued operation (and its errors) of a table; returns the count."""
        ...

    # -- push errors ----------------------------------------------------------------------
    def save_error(self, error: OperationError) -> None:
        """Record (or replace) the error of an operation."""
        ...

    def errors(self) -> list[OperationError]:
        """Every recorded error, in operation sequence order."""
        ...

    def delete_error(self, operation_id: str) -> None:
        """Forget the error of an operation."""
        ...

    # -- configuration and delta tokens ---------------------------------------------------
    def get_config(self, key: str) -> str | None:
        """A stored setting (delta tokens live here, keyed ``deltaToken|{table}|{query_id}``)."""
        ...

    def set_config(self, key: str, value: str) -> None:
        """Store a setting."""
        ...

    def delete_config(self, key: str) -> None:
        """Remove a setting."""
        ...


@runtime_checkable
class BulkLocalStore(LocalStore, Protocol):
    """A store that also writes many items and operations at once (optional, for speed).

    ``SyncContext.insert_many`` uses these when the store has them, and falls back to the
    one-at-a-time methods of :class:`LocalStore` otherwise.
    """

    def insert_items(self, table: str, items: Iterable[dict[str, Any]]) -> None:
        """Insert new items; raise ``StoreError`` (inserting none) if any id already exists."""
        ...

    def add_operations(
        self, table: str, entries: Sequence[tuple[str, OperationKind, dict[str, Any] | None]]
    ) -> None:
        """Append operations ``(item_id, kind, item)`` in order, as :meth:`add_operation` does."""
        ...

    def operations_for_items(self, table: str, item_ids: Iterable[str]) -> dict[str, Operation]:
        """The queued operations of the given items, keyed by item id (one query per chunk)."""
        ...


@runtime_checkable
class JsonPageStore(LocalStore, Protocol):
    """A store that writes a pulled page's items straight from the page's JSON text (optional).

    ``SyncContext.apply_pulled_page`` uses it when the store has it and the page is an
    ordinary one (every entry an object with a valid id), and falls back to
    :meth:`LocalStore.upsert_items` of the decoded items otherwise, or when this raises
    ``StoreError``. It spares decoding-free stores the encoding of each item again and one
    call per row (``SQLiteStore`` does the whole page in one statement).
    """

    def upsert_json_items(
        self, table: str, text: str, path: str, leave_out: Collection[str] = ()
    ) -> int:
        """Upsert the objects of the JSON array at ``path`` of ``text``, as they are.

        ``path`` is a SQLite JSON path (``"$"``, ``"$.items"``); objects whose ``id`` is in
        ``leave_out`` are not written. Objects sharing an id are written in array order (the
        last one stays). Returns how many objects were written; raises ``StoreError``
        (writing none) if it cannot.
        """
        ...
