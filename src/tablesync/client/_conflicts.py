"""Sync handlers: hooks around each pushed operation, and the built-in conflict policies.

A handler's ``execute_operation`` is a generator, like the push itself: it calls
``yield from send(item)`` to send the operation (the client performs the I/O, sync or
async) and returns the :class:`OperationOutcome` that the push records. That keeps every
policy usable by both ``Client`` and ``AsyncClient``::

    class Logging(SyncHandler):
        def execute_operation(self, op, send):
            outcome = yield from send(op.item)
            print(op.kind.name, op.item_id, outcome.status)
            return outcome
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from .._exceptions import ServerError, UsageError
from ._results import PullResult, PushResult
from ._store import Operation, OperationKind


@dataclass(frozen=True, slots=True)
class PushOperation:
    """One queued operation as a handler sees it."""

    operation: Operation
    item: dict[str, Any] | None
    """The item that will be sent: the current local row, or the snapshot for a DELETE."""

    @property
    def kind(self) -> OperationKind:
        """INSERT, UPDATE or DELETE."""
        return self.operation.kind

    @property
    def table(self) -> str:
        """The table of the item."""
        return self.operation.table

    @property
    def item_id(self) -> str:
        """The id of the item."""
        return self.operation.item_id


@dataclass(frozen=True, slots=True)
class OperationOutcome:
    """What one send of an operation came to."""

    status: int | None
    """HTTP status of the last response."""
    server_item: dict[str, Any] | None = None
    """The item the server answered with (stored entity, or the current one on a conflict)."""
    error: ServerError | None = None
    """``None`` when the server accepted the operation."""
    accept_server: bool = False
    """Settle the operation by keeping ``server_item`` as the local row ("server wins")."""

    @property
    def ok(self) -> bool:
        """True when the server accepted the operation."""
        return self.error is None

    @property
    def is_conflict(self) -> bool:
        """True for a version conflict (409 or 412)."""
        return self.error is not None and self.status in (409, 412)


OperationFlow = Generator[httpx.Request, httpx.Response, OperationOutcome]


class Sender(Protocol):
    """Sends an operation with ``item`` (as ``kind``, defaulting to the operation's own)."""

    def __call__(
        self, item: Mapping[str, Any] | None, *, kind: OperationKind | None = None
    ) -> OperationFlow: ...


class SyncHandler:
    """The hooks of a push and a pull. Subclass it and override what you need.

    The default sends each operation as it is and resolves nothing, so conflicts end up
    in ``PushFailedError.result.errors``.
    """

    def execute_operation(self, operation: PushOperation, send: Sender) -> OperationFlow:
        """Wrap the sending of one operation; ``yield from send(item)`` sends it."""
        return (yield from send(operation.item))

    def on_push_complete(self, result: PushResult) -> None:
        """See every error of a finished push; resolve some with their methods."""

    def on_pull_complete(self, result: PullResult) -> None:
        """Told when a pull of one table finished."""


def _conflict_with_server(outcome: OperationOutcome) -> dict[str, Any] | None:
    if outcome.is_conflict and outcome.server_item is not None:
        return outcome.server_item
    return None


class ServerWins(SyncHandler):
    """On a conflict, keep the server's item locally and drop the local change."""

    def execute_operation(self, operation: PushOperation, send: Sender) -> OperationFlow:
        outcome = yield from send(operation.item)
        if _conflict_with_server(outcome) is not None:
            return dataclasses.replace(outcome, accept_server=True)
        return outcome


class ClientWins(SyncHandler):
    """On a conflict, send the local change again over the server's version (once).

    An insert whose id already exists on the server becomes an update; a delete is retried
    with the server's version.
    """

    def execute_operation(self, operation: PushOperation, send: Sender) -> OperationFlow:
        outcome = yield from send(operation.item)
        server = _conflict_with_server(outcome)
        if server is None or "version" not in server:
            return outcome
        local = dict(operation.item or {"id": operation.item_id})
        local["version"] = server["version"]
        if operation.kind is OperationKind.DELETE:
            return (yield from send(local))
        return (yield from send(local, kind=OperationKind.UPDATE))


ResolveFunction = Callable[[dict[str, Any] | None, dict[str, Any]], Mapping[str, Any] | None]
"""``(local, server) -> merged item`` or ``None`` to keep the server's item."""


class ConflictResolver(SyncHandler):
    """On a conflict, call ``resolve(local, server)`` and keep what it returns.

    ``local`` is the item as sent (``None`` for a delete). Returning ``None`` keeps the
    server's item; returning an item sends it as an update over the server's version (once)
    and stores the server's answer.

    Example:
        >>> def merge(local, server):
        ...     return {**server, "text": local["text"]} if local else None
        >>> handler = ConflictResolver(merge)
    """

    def __init__(self, resolve: ResolveFunction) -> None:
        if not callable(resolve):
            raise UsageError("ConflictResolver needs a callable (local, server) -> item | None")
        self.resolve = resolve

    def execute_operation(self, operation: PushOperation, send: Sender) -> OperationFlow:
        outcome = yield from send(operation.item)
        server = _conflict_with_server(outcome)
        if server is None:
            return outcome
        local = None if operation.kind is OperationKind.DELETE else operation.item
        merged = self.resolve(local, dict(server))
        if merged is None or "version" not in server:
            return dataclasses.replace(outcome, accept_server=True)
        item = {**merged, "id": operation.item_id, "version": server["version"]}
        retried = yield from send(item, kind=OperationKind.UPDATE)
        if retried.ok and operation.kind is OperationKind.DELETE:
            # The delete became an update: the server's answer is the new local row.
            return dataclasses.replace(retried, accept_server=True)
        return retried


def make_handler(handler: SyncHandler | ResolveFunction | None) -> SyncHandler:
    """The handler for ``Client(conflict_handler=...)``: a handler, a resolve function, or none."""
    if handler is None:
        return SyncHandler()
    if isinstance(handler, type):
        raise UsageError(f"conflict_handler wants an instance: {handler.__name__}(), not the class")
    if isinstance(handler, SyncHandler) or all(
        callable(getattr(handler, hook, None))
        for hook in ("execute_operation", "on_push_complete", "on_pull_complete")
    ):
        return handler  # type: ignore[return-value]
    if callable(handler):
        return ConflictResolver(handler)
    raise UsageError(f"conflict_handler must be a SyncHandler or a callable, not {handler!r}")
