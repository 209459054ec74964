"""Push, written once as a sans-I/O flow; the flow contract shared with ``_pull``.

A flow is a generator that yields the ``httpx.Request`` it needs sent and receives the
``httpx.Response`` (transport failures, after retries, are thrown into it as
``TransportError``). ``Client._run`` and ``AsyncClient._run`` drive the same flows, so push
and pull behave identically in both clients, and the tests drive them with scripted
responses and no network at all. The push follows protocol.md §7.

A flow may also yield :class:`Prefetch`: the driver starts sending its request in the
background and resumes the flow at once (with ``None``); the next thing the flow yields is
that same request, and the driver then hands in its response (or throws its failure in).
A pull uses this to fetch page N+1 while it stores page N.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from .._exceptions import (
    AuthenticationError,
    ConflictError,
    PushAbortedError,
    PushFailedError,
    QueueError,
    StoreError,
    TransportError,
    UsageError,
)
from ..protocol import (
    ApiVersion,
    dumps,
    parse_datetime,
    strip_system_properties,
)
from ._batching import (
    batch_entry,
    batch_request,
    batch_responses,
    batch_size,
    drive,
    note_batch_support,
    step_of,
)
from ._conflicts import OperationFlow, OperationOutcome, PushOperation, Sender, SyncHandler
from ._http import (
    RequestBuilder,
    as_item,
    decode_body,
    error_for_response,
)
from ._progress import ProgressCallback, SyncPhase, SyncProgress, report
from ._results import PushResult, PushStatus, TableOperationError
from ._store import Operation, OperationError, OperationKind

if TYPE_CHECKING:
    from ._context import SyncContext

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Prefetch:
    """Start sending ``request`` now; the flow yields it again when it wants the response.

    At most one prefetch is in flight: a flow yields the request itself before prefetching
    another, so no more than one page is ever held ahead of the one being stored (a driver
    following ``follow`` holds one more: the guess, sent but not yet asked for).
    """

    request: httpx.Request
    prepare: Callable[[httpx.Response], None] | None = None
    """Work the flow will do on the response anyway, which a driver may run as soon as the
    response arrives, where it was fetched (``Client``'s thread decodes the next page's JSON
    there while the flow stores the current page)."""
    follow: Callable[[httpx.Response], Prefetch | None] | None = None
    """A cheap guess, from this request's response alone, at the prefetch the flow will ask
    for next (``None``: no guess). A driver may send the guess as soon as the response
    arrives, before ``prepare`` and before the flow has read the response; it uses the
    guess's response only if the flow then prefetches the very same request, so a wrong guess
    costs a wasted request, never a wrong result. Runs on the driver's fetching thread: it
    must only read the response and values fixed when the prefetch was made."""


Flow = Generator[httpx.Request | Prefetch, httpx.Response, T]

_ABORTS: tuple[tuple[type[Exception], PushStatus], ...] = (
    (TransportError, PushStatus.CANCELLED_BY_NETWORK_ERROR),
    (AuthenticationError, PushStatus.CANCELLED_BY_AUTHENTICATION_ERROR),
    (StoreError, PushStatus.CANCELLED_BY_STORE_ERROR),
    (PushAbortedError, PushStatus.CANCELLED_BY_OPERATION),
)


def push_flow(
    context: SyncContext,
    builder: RequestBuilder,
    handler: SyncHandler,
    *,
    tables: list[str] | None = None,
    progress: ProgressCallback | None = None,
) -> Flow[PushResult]:
    """Push queued operations in queue order; raise ``PushFailedError`` if any is left.

    Per-operation failures are recorded and the push goes on; a transport error (after
    retries), a 401 (after a token refresh), a store error or a handler crash stops it with
    the current operation left queued, to be resumed by the next push. Against a server that
    advertises the batch extension, consecutive operations share one ``$batch`` request and
    each result is read as its single response would be (``_push_batch``).
    """
    total = _pending(context, tables)
    tally = _Tally(progress, total)
    status, cause = PushStatus.COMPLETE, None
    queue = _QueueReader(context, tables)
    report(progress, SyncProgress(SyncPhase.PUSH, None, 0, total))
    while True:
        try:
            ops = queue.take(batch_size(builder, handler))
            if not ops:
                break
            if len(ops) == 1:
                tally.done(ops[0], (yield from _push_one(context, builder, handler, ops[0])))
            else:
                handled = yield from _push_batch(context, builder, handler, ops, tally)
                queue.put_back(ops[handled:])
        except Exception as exc:
            status, cause = _abort_status(exc), exc
            break
    return _finish_push(context, handler, status, tally.completed, cause)


class _Tally:
    """Counts pushed operations and reports progress after each."""

    def __init__(self, progress: ProgressCallback | None, total: int) -> None:
        self.progress, self.total = progress, total
        self.completed = self.attempted = 0

    def done(self, op: Operation, ok: bool) -> None:
        self.completed += ok
        self.attempted += 1
        report(self.progress, SyncProgress(SyncPhase.PUSH, op.table, self.attempted, self.total))


class _QueueReader:
    """The queue in order, for one push; keeps what was read but not pushed yet.

    A batch stops at an operation that goes on its own (``_start_batch``); the operations
    read behind it are taken by the next rounds without reading the queue again, so a
    recovery that sends many operations alone costs no query per operation.
    """

    def __init__(self, context: SyncContext, tables: list[str] | None) -> None:
        self._context, self._tables = context, tables
        self._after = 0
        self._ahead: list[Operation] = []

    def take(self, limit: int) -> list[Operation]:
        """The next ``limit`` (or fewer) operations; empty when the queue is done."""
        if not self._ahead:
            self._ahead = _next_operations(self._context, self._after, self._tables, limit)
            if self._ahead:
                self._after = self._ahead[-1].sequence
        ops, self._ahead = self._ahead[:limit], self._ahead[limit:]
        return ops

    def put_back(self, ops: Sequence[Operation]) -> None:
        """Return operations taken but not pushed: the next ``take`` starts with them."""
        self._ahead = [*ops, *self._ahead]


def _next_operations(
    context: SyncContext, after: int, tables: list[str] | None, limit: int
) -> list[Operation]:
    if limit == 1:
        op = context.next_operation(after, tables)
        return [] if op is None else [op]
    # One query for a batch's operations, not one each.
    return context.next_operations(after, tables, limit)


def _pending(context: SyncContext, tables: list[str] | None) -> int:
    if tables is None:
        return context.pending_count()
    return sum(context.pending_count(table) for table in tables)


def _abort_status(exc: Exception) -> PushStatus:
    for kind, status in _ABORTS:
        if isinstance(exc, kind):
            return status
    return PushStatus.INTERNAL_ERROR


def _push_one(
    context: SyncContext, builder: RequestBuilder, handler: SyncHandler, op: Operation
) -> Generator[httpx.Request, httpx.Response, bool]:
    """Push one operation; True if the server took it, else False (error recorded)."""
    started = _start(context, builder, handler, op)
    if started is None:
        return False
    outcome = yield from started.flow
    return _settle(context, handler, started, outcome)


@dataclass(slots=True)
class _Started:
    """An operation marked ATTEMPTED, with its handler flow (not yet started)."""

    op: Operation
    item: dict[str, Any] | None
    flow: OperationFlow
    batchable: bool
    first: httpx.Request | None = None
    returned: Any = None
    sub: Any = None
    """Its first request as a batch entry; ``None`` if it goes on its own."""


def _start(
    context: SyncContext, builder: RequestBuilder, handler: SyncHandler, op: Operation
) -> _Started | None:
    """Mark ``op`` ATTEMPTED and wrap it in the handler; ``None`` if there is nothing to send."""
    item = context.item_for_push(op)
    if item is None and op.kind is not OperationKind.DELETE:
        # The row vanished under the queue (NC records this with no status).
        missing = {"id": op.item_id}
        context.fail_operation(op, _operation_error(op, missing, OperationOutcome(None)))
        return None
    earlier = context.earlier_attempts(op)
    try:
        op = context.mark_attempted(op, item if op.kind is not OperationKind.DELETE else None)
    except QueueError:
        return None  # a local change cancelled the operation since it was read: nothing to send
    send = operation_sender(builder, op, earlier)
    flow = handler.execute_operation(PushOperation(op, item), send)
    # An earlier attempt's answer was lost: its follow-up may resend, so it goes on its own.
    return _Started(op, item, flow, batchable=not earlier)


def _settle(context: SyncContext, handler: SyncHandler, started: _Started, outcome: Any) -> bool:
    if not isinstance(outcome, OperationOutcome):
        raise UsageError(
            f"{type(handler).__name__}.execute_operation returned {outcome!r}; it must return "
            "the OperationOutcome of `yield from send(...)`"
        )
    _record(context, started.op, started.item, outcome)
    return outcome.ok


def _push_batch(
    context: SyncContext,
    builder: RequestBuilder,
    handler: SyncHandler,
    ops: Sequence[Operation],
    tally: _Tally,
) -> Generator[httpx.Request, httpx.Response, int]:
    """Push consecutive operations, their first requests in one ``$batch`` where possible.

    Operations are marked ATTEMPTED and their first requests built, in queue order, up to
    the first one that cannot travel in the batch; the others go in one request, then that
    one on its own. Each operation, in order, gets its result and is recorded exactly as
    after a single request. Returns how many of ``ops`` were handled: the rest, not marked,
    wait for the next round. An abort leaves the operations not yet recorded queued; their
    idempotency keys make the resend safe.
    """
    started: list[_Started] = []
    recording = _StoreGroup(context)
    try:
        handled = _start_batch(context, builder, handler, ops, tally, started)
        answers = yield from _send_batch(builder, started)
        for entry, answer in zip(started, answers, strict=True):
            outcome = yield from _outcome(entry, answer, recording)
            recording.begin()
            tally.done(entry.op, _settle(context, handler, entry, outcome))
    finally:
        try:
            # Also on the way out of a failure: what was recorded is what the server answered.
            recording.commit()
        finally:
            for entry in started:
                entry.flow.close()
    return handled


def _start_batch(
    context: SyncContext,
    builder: RequestBuilder,
    handler: SyncHandler,
    ops: Sequence[Operation],
    tally: _Tally,
    started: list[_Started],
) -> int:
    """Mark the batch's operations ATTEMPTED in one store transaction; how many of ``ops``.

    Marking stops after the first operation that goes on its own. Marking the operations
    behind it too (sent only after it, and not at all if the push dies there) recorded
    their data as attempts that never left; a few failed pushes of an edited item then
    pushed its real lost attempt out of the kept list, and the server's row, written by
    that attempt, was reported as a conflict (tests/reliability/test_kill.py).
    """
    handled = 0
    # No request goes out inside this transaction.
    with context.store.atomic():
        for op in ops:
            handled += 1
            entry = _start(context, builder, handler, op)
            if entry is None:
                tally.done(op, False)
                continue
            _first_request(entry)
            if entry.batchable and entry.first is not None:
                entry.sub = batch_entry(builder, entry.op, entry.first)
            started.append(entry)
            if entry.sub is None:
                break
    return handled


def _outcome(
    entry: _Started, answer: httpx.Response | None, recording: _StoreGroup
) -> Generator[httpx.Request, httpx.Response, Any]:
    """The outcome of ``entry`` given its batch ``answer``.

    ``recording`` is committed first if the operation needs a request of its own (a
    follow-up, or its first request sent alone).
    """
    if entry.first is None:
        return entry.returned
    if answer is not None:
        step = step_of(entry.flow.send, answer)
        if not isinstance(step, httpx.Request):
            return step  # settled by the answer alone: the common case
        recording.commit()
        return (yield from drive(entry.flow, step))
    recording.commit()
    return (yield from drive(entry.flow, entry.first))


class _StoreGroup:
    """One store transaction around the recording of consecutive operations of a batch.

    Recording each operation in its own transaction cost two commits per pushed operation.
    The group is committed before any request goes out (a store transaction is never held
    across the network, where other code may want the store), and when the batch ends, also
    by a failure: the outcomes recorded before it are what the server answered. Each
    operation's own recording is a savepoint, so a store error undoes only that one; if the
    commit itself fails, the operations stay queued as ATTEMPTED and the next push sends them
    again with the same idempotency keys, so the server answers from its record.
    """

    def __init__(self, context: SyncContext) -> None:
        self._store = context.store
        self._open: ExitStack | None = None

    def begin(self) -> None:
        """Open the transaction unless it is open already."""
        if self._open is None:
            stack = ExitStack()
            stack.enter_context(self._store.atomic())
            self._open = stack

    def commit(self) -> None:
        """Commit what was recorded so far (nothing to do if nothing was)."""
        stack, self._open = self._open, None
        if stack is not None:
            stack.close()


def _first_request(entry: _Started) -> None:
    try:
        entry.first = next(entry.flow)
    except StopIteration as done:
        entry.returned = done.value  # the handler settled the operation without sending


def _send_batch(
    builder: RequestBuilder, started: Sequence[_Started]
) -> Generator[httpx.Request, httpx.Response, list[httpx.Response | None]]:
    """Send the batchable prefix of ``started`` in one request; the response each got."""
    entries: list[Any] = []
    for entry in started:
        if entry.sub is None:
            break  # the rest keep their order: sent one by one after the batch
        entries.append(entry.sub)
    alone: list[httpx.Response | None] = [None] * (len(started) - len(entries))
    if len(entries) < 2:
        return [None] * len(started)
    response = yield batch_request(builder, entries)
    if response.status_code == 401:
        raise error_for_response(response)
    firsts = [entry.first for entry in started[: len(entries)] if entry.first is not None]
    return batch_responses(builder, response, firsts) + alone


def _record(
    context: SyncContext, op: Operation, item: dict[str, Any] | None, outcome: OperationOutcome
) -> None:
    server_item = outcome.server_item
    if outcome.accept_server and server_item is not None:
        # "Server wins" goes through the same resolution a user would call, atomically.
        error = _operation_error(op, item, outcome)
        try:
            with context.store.atomic():
                context.fail_operation(op, error)
                context.cancel_and_update(error, server_item)  # a tombstone deletes the row
        except QueueError:
            # The item was edited locally during the push: that newer change stays queued
            # for the next push, which will meet the conflict again; keep this error visible.
            context.fail_operation(op, error)
    elif outcome.ok:
        keep = server_item if op.kind is not OperationKind.DELETE else None
        context.complete_operation(op, keep)
    else:
        context.fail_operation(op, _operation_error(op, item, outcome))


def _operation_error(
    op: Operation, item: dict[str, Any] | None, outcome: OperationOutcome
) -> OperationError:
    raw = None
    if outcome.error is not None and outcome.error.body is not None:
        body = outcome.error.body
        raw = body if isinstance(body, str) else dumps(body).decode()
    return OperationError(
        operation_id=op.id,
        operation_version=op.version,
        kind=op.kind,
        table=op.table,
        item_id=op.item_id,
        status=outcome.status,
        item=item,
        server_item=outcome.server_item,
        raw_result=raw,
    )


def _finish_push(
    context: SyncContext,
    handler: SyncHandler,
    status: PushStatus,
    completed: int,
    cause: Exception | None,
) -> PushResult:
    errors = [
        TableOperationError(error, context, context.store.get_operation_by_id(error.operation_id))
        for error in context.errors()
    ]
    handler.on_push_complete(PushResult(status, errors, completed))
    # Errors belong to this push: the failed operations stay queued and are retried by the
    # next push, so stale error rows would only confuse it (AMA issue #809).
    context.clear_errors()
    result = PushResult(status, [e for e in errors if not e.handled], completed)
    if result.ok:
        return result
    raise PushFailedError(_summary(result, cause), result=result) from cause


def _summary(result: PushResult, cause: Exception | None) -> str:
    parts = [f"push ended with status {result.status.name}"]
    if result.errors:
        parts.append(f"{len(result.errors)} operation(s) failed")
    if cause is not None:
        parts.append(str(cause) or type(cause).__name__)
    return "; ".join(parts)


# -- sending one operation -------------------------------------------------------------------


def operation_sender(
    builder: RequestBuilder, op: Operation, earlier: Sequence[Mapping[str, Any]] = ()
) -> Sender:
    """The ``send`` a handler calls: each call sends ``op`` once, as ``item``.

    ``earlier`` are the items of attempts of ``op`` whose answer was lost; a conflict whose
    server row is one of them is our own earlier write, and the item is sent again over it.
    """
    sends = 0
    followed = False

    def send(item: Mapping[str, Any] | None, *, kind: OperationKind | None = None) -> OperationFlow:
        nonlocal sends, followed
        kind = op.kind if kind is None else kind
        # The first request of an operation version is keyed by the op id, so a retry of a
        # lost response is answered from the server's record; a *different* request (a
        # handler's resend, an edited operation) needs a key of its own.
        key = op.id if (op.version, sends) == (1, 0) else f"{op.id}.{op.version}.{sends}"
        sends += 1
        body = dict(item) if item is not None else None
        request = _operation_request(builder, op, kind, body, key)
        response = yield request
        note_batch_support(builder, response)
        outcome = classify(response, kind, body)
        if _is_echo(outcome, kind):
            outcome = yield from _verify_echo(builder, op, body, outcome)
        server = outcome.server_item
        if not followed and server is not None and _landed_earlier(outcome, server, earlier):
            # An earlier attempt of this operation reached the server (its answer was lost)
            # and the item was edited since: send the newer data over the server's version.
            followed = True
            again = {**(body or {"id": op.item_id}), "version": server["version"]}
            next_kind = kind if kind is OperationKind.DELETE else OperationKind.UPDATE
            return (yield from send(again, kind=next_kind))
        return outcome

    return send


def _landed_earlier(
    outcome: OperationOutcome, server: Mapping[str, Any], earlier: Sequence[Mapping[str, Any]]
) -> bool:
    if not outcome.is_conflict or "version" not in server or server.get("deleted") is True:
        return False
    return any(_fields_match(sent, server) for sent in earlier)


def _is_echo(outcome: OperationOutcome, kind: OperationKind) -> bool:
    """A 409 to an insert whose body has no version: an echo of the request, not the row.

    The official Node server answers a duplicate insert so; the real row is still unknown.
    """
    item = outcome.server_item
    return kind is OperationKind.INSERT and outcome.status == 409 and "version" not in (item or {})


def _verify_echo(
    builder: RequestBuilder, op: Operation, sent: dict[str, Any] | None, echo: OperationOutcome
) -> Generator[httpx.Request, httpx.Response, OperationOutcome]:
    """Read the stored row after an echoing 409, and judge the insert against it.

    If the row is what the insert sent, this was our own earlier attempt (its response lost):
    a success. Otherwise a real conflict, reported with the real row (never the echo, which a
    "server wins" policy would otherwise store as the server's item).
    """
    response = yield builder.build("GET", builder.item_url(op.table, op.item_id))
    row = as_item(decode_body(response), response) if response.is_success else None
    if row is not None and "version" not in row:
        row = None
    if row is not None and _is_own_write(OperationKind.INSERT, 409, sent, row):
        return OperationOutcome(echo.status, row)
    if isinstance(echo.error, ConflictError):
        echo.error.server_item = row
    return replace(echo, server_item=row)


def _operation_request(
    builder: RequestBuilder,
    op: Operation,
    kind: OperationKind,
    item: dict[str, Any] | None,
    key: str,
) -> httpx.Request:
    version = (item or {}).get("version")
    version = version if isinstance(version, str) else None
    if kind is OperationKind.INSERT:
        body = strip_system_properties(item or {"id": op.item_id})
        url = builder.table_url(op.table)
        return builder.build("POST", url, json=body, idempotency_key=key)
    url = builder.item_url(op.table, op.item_id)
    if kind is OperationKind.DELETE:
        return builder.build("DELETE", url, version=version, idempotency_key=key)
    if builder.api_version is ApiVersion.V2:
        body = strip_system_properties(item or {})
        return builder.build("PATCH", url, json=body, version=version, idempotency_key=key)
    body = strip_system_properties(item or {}, keep_version=True)
    return builder.build("PUT", url, json=body, version=version, idempotency_key=key)


def classify(
    response: httpx.Response, kind: OperationKind, sent: Mapping[str, Any] | None
) -> OperationOutcome:
    """What a response to an operation means; raises ``AuthenticationError`` on 401."""
    status = response.status_code
    if response.is_success:
        item = as_item(decode_body(response), response)
        return OperationOutcome(status, item if kind is not OperationKind.DELETE else None)
    if kind is OperationKind.DELETE and status in (404, 410):
        return OperationOutcome(status)  # already gone: what the delete wanted
    error = error_for_response(response)
    if isinstance(error, AuthenticationError):
        raise error
    server_item = error.server_item if isinstance(error, ConflictError) else None
    if kind is OperationKind.DELETE and server_item is not None and server_item.get("deleted"):
        # The Node server answers 409/412 to deleting a row that is already soft-deleted.
        return OperationOutcome(status)
    if server_item is not None and _is_own_write(kind, status, sent, server_item):
        # Our earlier attempt was applied but its response was lost (a server without the
        # Idempotency-Key extension answers the retry with a conflict): it is a success.
        return OperationOutcome(status, server_item)
    return OperationOutcome(status, server_item, error)


def _is_own_write(
    kind: OperationKind, status: int, sent: Mapping[str, Any] | None, server: dict[str, Any]
) -> bool:
    expected = (kind is OperationKind.INSERT and status == 409) or (
        kind is OperationKind.UPDATE and status == 412
    )
    # A server entity carries a version; an echo of our own body (the Node server's 409)
    # does not, and proves nothing.
    if not expected or sent is None or "version" not in server or server.get("deleted") is True:
        return False
    return _fields_match(sent, server)


def _fields_match(sent: Mapping[str, Any], server: Mapping[str, Any]) -> bool:
    """Whether every field ``sent`` (system properties aside) has that value on ``server``."""
    fields = strip_system_properties(dict(sent))
    return all(key in server and same_value(value, server[key]) for key, value in fields.items())


def same_value(local: Any, remote: Any) -> bool:
    """Equality as the wire sees it: ``1 == 1.0``, and dates compared as instants."""
    if isinstance(local, bool) or isinstance(remote, bool):
        return local is remote
    if local == remote:
        return True
    if isinstance(local, str) and isinstance(remote, str):
        try:
            return parse_datetime(local) == parse_datetime(remote)
        except ValueError:
            return False
    return False
