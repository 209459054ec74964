"""``AsyncClient``: the asyncio/trio mirror of ``Client``, driving the same flows."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.abc
import httpx

from .._exceptions import TransportError
from ..protocol import ApiVersion
from ._client import DEFAULT_TIMEOUT, AuthArg, BaseClient
from ._conflicts import ResolveFunction, SyncHandler
from ._flows import Flow, Prefetch
from ._http import check_table_name, unbind_stream
from ._progress import ProgressCallback
from ._results import PullResult, PushResult
from ._retry import FetchToken, RetryPolicy, Sleep
from ._store import LocalStore
from ._tables import AsyncSyncTable, AsyncTable

if TYPE_CHECKING:
    from typing import Self

T = TypeVar("T")


class AsyncClient(BaseClient):
    """The asynchronous tablesync client: same methods as :class:`Client`, awaited.

    ```python
    from tablesync import AsyncClient, SQLiteStore

    async with AsyncClient("https://example.org", store=SQLiteStore("app.db")) as client:
        todo = client.sync_table("todoitem")
        await todo.insert({"text": "milk"})
        await client.push()
        await todo.pull(query_id="all")
    ```

    Local store calls run inline on the event loop: they are short SQLite transactions.
    ``auth`` may also be an async callable returning a token. Other arguments are those of
    :class:`Client`, with ``http`` an ``httpx.AsyncClient``.
    """

    def __init__(
        self,
        url: str,
        *,
        store: LocalStore | None = None,
        api_version: str | ApiVersion = "3.0.0",
        http: httpx.AsyncClient | None = None,
        auth: AuthArg = None,
        token_header: str = "Authorization",
        conflict_handler: SyncHandler | ResolveFunction | None = None,
        retry: RetryPolicy | bool = True,
        page_size: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(
            url,
            store=store,
            api_version=api_version,
            auth=auth,
            token_header=token_header,
            conflict_handler=conflict_handler,
            retry=retry,
            page_size=page_size,
            headers=headers,
        )
        self._owns_http = http is None
        self._http = http if http is not None else httpx.AsyncClient(timeout=DEFAULT_TIMEOUT)
        # One push or pull at a time: two walking the same queue would send operations twice.
        self._sync_lock = anyio.Lock()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client if this client made it. The store stays open (it is yours)."""
        if not self._closed and self._owns_http:
            await self._http.aclose()
        self._closed = True

    def table(self, name: str) -> AsyncTable:
        """An online table: every call is a request."""
        return AsyncTable(self, check_table_name(name))

    def sync_table(self, name: str) -> AsyncSyncTable:
        """A table kept in the local store, synced by push and pull."""
        self.context  # noqa: B018  -- fail now, not at first use, without a store
        return AsyncSyncTable(self, check_table_name(name))

    async def push(
        self, *, tables: Sequence[str] | None = None, progress: ProgressCallback | None = None
    ) -> PushResult:
        """Send the queued operations; see :meth:`Client.push`."""
        return await self._run_exclusive(self._push_flow(tables, progress))

    async def sync(
        self, *tables: str, query_id: str = "all", progress: ProgressCallback | None = None
    ) -> list[PullResult]:
        """Push the whole queue, then pull each of ``tables``; see :meth:`Client.sync`."""
        return await self._run_exclusive(self._sync_flow(tables, query_id, progress))

    # -- the driver ----------------------------------------------------------------------------
    async def _run(self, flow: Flow[T]) -> T:
        """Drive a sans-I/O flow: send what it yields, throw transport failures into it.

        A :class:`Prefetch` is sent by a task of this call; the flow resumes once the request
        is on the wire (its body written, or its outcome known), so the server works on page
        N+1 while the flow stores page N inline. Its outcome is handed in when the flow yields
        that request. The task is cancelled if the flow stops first.
        """
        failure: Exception | None = None
        async with anyio.create_task_group() as tasks:
            try:
                return await self._drive(flow, tasks)
            except Exception as exc:
                # Raised outside the task group, so callers see it as is, not in an ExceptionGroup.
                failure = exc
            finally:
                tasks.cancel_scope.cancel()  # a prefetch nobody will read
                flow.close()
        assert failure is not None
        raise failure

    async def _drive(self, flow: Flow[T], tasks: anyio.abc.TaskGroup) -> T:
        ahead: _Ahead | None = None
        try:
            step = next(flow)
            while True:
                if isinstance(step, Prefetch):
                    if ahead is not None:
                        raise RuntimeError("a flow prefetched a second request before the first")
                    ahead = _Ahead(step.request)
                    tasks.start_soon(ahead.fetch, self._send)
                    await ahead.sent.wait()
                    step = next(flow)
                    continue
                try:
                    if ahead is not None and ahead.request is step:
                        fetched, ahead = ahead, None
                        response = await fetched.outcome()
                    else:
                        response = await self._send(step)
                except TransportError as exc:
                    step = flow.throw(exc)
                else:
                    step = flow.send(response)
        except StopIteration as done:
            result: T = done.value
            return result

    async def _run_exclusive(self, flow: Flow[T]) -> T:
        """Drive a push or pull flow, one at a time per client."""
        async with self._sync_lock:
            return await self._run(flow)

    async def _send(self, request: httpx.Request) -> httpx.Response:
        steps = self._steps(request)
        try:
            step = next(steps)
            while True:
                if isinstance(step, Sleep):
                    await anyio.sleep(step.seconds)
                    step = steps.send(None)
                elif isinstance(step, FetchToken):
                    step = steps.send(await self._fetch_token(step.refresh))
                else:
                    try:
                        response = await self._http.send(step.request, auth=self._auth_arg())
                    except httpx.RequestError as exc:
                        step = steps.throw(exc)
                    else:
                        step = steps.send(unbind_stream(response))
        except StopIteration as done:
            final: httpx.Response = done.value
            return final

    async def _fetch_token(self, refresh: bool) -> str:
        cached = self._cached_token(refresh)
        if cached is not None:
            return cached
        assert self._token_provider is not None
        token = self._token_provider(refresh=refresh)
        if inspect.isawaitable(token):
            token = await token
        return self._keep_token(token)


class _Ahead:
    """One prefetched request: ``sent`` once it is on the wire, ``done`` once answered."""

    def __init__(self, request: httpx.Request) -> None:
        self.request = request
        self.sent = anyio.Event()
        self.done = anyio.Event()
        self._response: httpx.Response | None = None
        self._error: Exception | None = None
        earlier = request.extensions.get("trace")

        async def trace(name: str, info: dict[str, Any]) -> None:
            # httpcore reports each step of the exchange; once the body is written the server
            # has the request, and the flow may block the loop storing a page meanwhile.
            if name.endswith("send_request_body.complete"):
                self.sent.set()
            if earlier is not None:
                await earlier(name, info)

        request.extensions["trace"] = trace

    async def fetch(self, send: Callable[[httpx.Request], Awaitable[httpx.Response]]) -> None:
        try:
            self._response = await send(self.request)
        except Exception as exc:  # handed to the flow when it asks for the response
            self._error = exc
        finally:
            self.sent.set()
            self.done.set()

    async def outcome(self) -> httpx.Response:
        """The response, handed out once.

        This object is in a reference cycle (its request's trace calls back into it): the
        response must not wait for the cyclic GC with it.
        """
        await self.done.wait()
        if self._error is not None:
            raise self._error
        response, self._response = self._response, None
        assert response is not None
        return response
