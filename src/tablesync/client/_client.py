"""``Client``: the synchronous client, and the configuration it shares with ``AsyncClient``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from .._exceptions import TransportError, UsageError
from ..protocol import ApiVersion
from ._conflicts import ResolveFunction, SyncHandler, make_handler
from ._context import SyncContext
from ._flows import Flow, Prefetch, push_flow
from ._http import RequestBuilder, check_table_name, parse_api_version_arg, unbind_stream
from ._prefetch import Prefetcher
from ._progress import ProgressCallback
from ._pull import PullSpec, sync_flow
from ._results import PullResult, PushResult
from ._retry import FetchToken, RetryPolicy, SendSteps, Sleep, TokenHeader, send_steps
from ._store import LocalStore, Operation
from ._tables import SyncTable, Table

if TYPE_CHECKING:
    from typing import Self

T = TypeVar("T")

#: A callable returning a bearer token; called with ``refresh=True`` after a 401.
TokenProvider = Callable[..., Any]
AuthArg = httpx.Auth | TokenProvider | None
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


def _retry_policy(retry: RetryPolicy | bool) -> RetryPolicy:
    if retry is True:
        return RetryPolicy()
    if retry is False:
        return RetryPolicy.disabled()
    if isinstance(retry, RetryPolicy):
        return retry
    raise UsageError(f"retry must be a RetryPolicy, True or False, not {retry!r}")


def pull_page_size(version: ApiVersion) -> int:
    """The default rows per page of a pull: v2 as the official v2 clients ask (50); v3 5,000.

    Each request costs about a millisecond on each side whatever its size (building, sending
    and reading it on the client, routing and querying on the server): at 100 rows a page
    that was most of a pull. Larger pages pull faster and hold a little more memory (a
    1,000,000-row pull peaks at about 45 MB of RSS at 1,000 rows a page, 57 MB at 3,000 and
    66 MB at 5,000; docs/benchmarks.md). tablesync's server accepts a ``$top`` up to 5,000
    by default (ASP.NET Datasync servers 128,000 or more); a server that pages below it is
    still read to the end, one request per page.
    """
    return 50 if version is ApiVersion.V2 else 5000


class BaseClient:
    """Configuration and sync logic shared by :class:`Client` and ``AsyncClient`` (no I/O)."""

    def __init__(
        self,
        url: str,
        *,
        store: LocalStore | None = None,
        api_version: str | ApiVersion = "3.0.0",
        auth: AuthArg = None,
        token_header: str = "Authorization",
        conflict_handler: SyncHandler | ResolveFunction | None = None,
        retry: RetryPolicy | bool = True,
        page_size: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        version = parse_api_version_arg(api_version)
        self._builder = RequestBuilder(url, version, headers)
        self._context = SyncContext(store) if store is not None else None
        self.handler = make_handler(conflict_handler)
        self.retry = _retry_policy(retry)
        if page_size is not None and (not isinstance(page_size, int) or page_size < 1):
            raise UsageError(f"page_size must be a positive integer, not {page_size!r}")
        self.page_size = page_size or (50 if version is ApiVersion.V2 else 100)
        self.pull_page_size = page_size or pull_page_size(version)
        self._http_auth = auth if isinstance(auth, httpx.Auth) else None
        if auth is not None and self._http_auth is None and not callable(auth):
            raise UsageError("auth must be an httpx.Auth or a callable returning a token")
        self._token_provider: TokenProvider | None = None if isinstance(auth, httpx.Auth) else auth
        self._token_header = TokenHeader(token_header) if self._token_provider else None
        self._token: str | None = None
        self._closed = False

    @property
    def url(self) -> str:
        """The service's base URL."""
        return str(self._builder.base_url)

    @property
    def api_version(self) -> ApiVersion:
        """The protocol version spoken (``ApiVersion.V2`` or ``ApiVersion.V3``)."""
        return self._builder.api_version

    @property
    def context(self) -> SyncContext:
        """The local side of sync (queue, store); ``UsageError`` without a store."""
        if self._closed:
            raise UsageError(f"this {type(self).__name__} is closed")
        if self._context is None:
            raise UsageError("this client has no local store: pass store=SQLiteStore(...)")
        return self._context

    @property
    def pending_operations(self) -> list[Operation]:
        """Every queued operation, all tables, in queue order."""
        return self.context.pending_operations()

    def _push_flow(
        self, tables: Sequence[str] | None, progress: ProgressCallback | None
    ) -> Flow[PushResult]:
        if isinstance(tables, str):
            tables = [tables]  # push(tables="todo") means that one table, not its letters
        names = None if tables is None else [check_table_name(name) for name in tables]
        return push_flow(self.context, self._builder, self.handler, tables=names, progress=progress)

    def _sync_flow(
        self, tables: Sequence[str], query_id: str, progress: ProgressCallback | None
    ) -> Flow[list[PullResult]]:
        specs = [PullSpec(check_table_name(t), None, query_id, self.pull_page_size) for t in tables]
        return sync_flow(self.context, self._builder, self.handler, specs, progress)

    def _steps(self, request: httpx.Request) -> SendSteps:
        if self._closed:
            raise UsageError(f"this {type(self).__name__} is closed")
        return send_steps(request, self.retry, self._token_header)

    def _auth_arg(self) -> Any:
        """The ``auth`` for ``httpx``'s ``send``: the given ``httpx.Auth``, else the default."""
        return self._http_auth if self._http_auth is not None else httpx.USE_CLIENT_DEFAULT

    def _cached_token(self, refresh: bool) -> str | None:
        """The cached token, unless a refresh is asked or none is cached."""
        return None if refresh else self._token

    def _keep_token(self, token: Any) -> str:
        if not isinstance(token, str) or not token:
            raise UsageError("the token provider must return a non-empty string")
        self._token = token
        return token


class Client(BaseClient):
    """The synchronous tablesync client.

    ```python
    from tablesync import Client, SQLiteStore

    with Client("https://example.org", store=SQLiteStore("app.db")) as client:
        todo = client.sync_table("todoitem")
        item = todo.insert({"text": "milk"})  # local, queued
        client.push()  # send the queue
        todo.pull(query_id="all")  # bring the server's changes
    ```

    Args:
        url: the service's base URL (tables live under ``<url>/tables/<name>``).
        store: the local store for sync tables; not needed for online tables only.
        api_version: ``"3.0.0"`` (Datasync) or ``"2.0.0"`` (Azure Mobile Apps).
        http: an ``httpx.Client`` to send with (tests pass ``TestClient(app)``); the caller
            closes it. By default the client makes and closes its own.
        auth: an ``httpx.Auth``, or a callable ``(refresh: bool) -> str`` giving a token (a
            pull may call either from the thread that fetches its next page).
        token_header: ``"Authorization"`` (sent as ``Bearer <token>``) or ``"X-ZUMO-AUTH"``.
        conflict_handler: a :class:`SyncHandler` (``ServerWins()``, ``ClientWins()``...) or a
            ``(local, server) -> item | None`` resolve function.
        retry: a :class:`RetryPolicy`, ``True`` for the default one, ``False`` for none.
        page_size: items per page of queries (default 50 for v2, 100 for v3) and of pulls
            (default 50 for v2, 5,000 for v3: see :func:`pull_page_size`).
        headers: extra headers sent with every request.
    """

    def __init__(
        self,
        url: str,
        *,
        store: LocalStore | None = None,
        api_version: str | ApiVersion = "3.0.0",
        http: httpx.Client | None = None,
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
        self._http = http if http is not None else httpx.Client(timeout=DEFAULT_TIMEOUT)
        # One push or pull at a time: two walking the same queue would send operations twice.
        self._sync_lock = threading.Lock()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP client if this client made it. The store stays open (it is yours)."""
        if not self._closed and self._owns_http:
            self._http.close()
        self._closed = True

    def table(self, name: str) -> Table:
        """An online table: every call is a request."""
        return Table(self, check_table_name(name))

    def sync_table(self, name: str) -> SyncTable:
        """A table kept in the local store, synced by push and pull."""
        self.context  # noqa: B018  -- fail now, not at first use, without a store
        return SyncTable(self, check_table_name(name))

    def push(
        self, *, tables: Sequence[str] | None = None, progress: ProgressCallback | None = None
    ) -> PushResult:
        """Send the queued operations (all tables, or ``tables``) in queue order.

        Raises:
            PushFailedError: operations are left (its ``result.errors`` can resolve them), or
                the push was cut short (``result.status``).
        """
        return self._run_exclusive(self._push_flow(tables, progress))

    def sync(
        self, *tables: str, query_id: str = "all", progress: ProgressCallback | None = None
    ) -> list[PullResult]:
        """Push the whole queue, then pull each of ``tables`` incrementally under ``query_id``.

        Raises:
            PushFailedError: the push failed; nothing was pulled.
        """
        return self._run_exclusive(self._sync_flow(tables, query_id, progress))

    # -- the driver ----------------------------------------------------------------------------
    def _run(self, flow: Flow[T]) -> T:
        """Drive a sans-I/O flow: send what it yields, throw transport failures into it.

        A :class:`Prefetch` is sent on a background thread while the flow goes on (a pull
        stores page N meanwhile), and so is the guess at the request after it (``_prefetch``);
        the flow's next request is that one, and its outcome is handed in as if it had been
        sent then. If the flow stops first (an error, an interrupt), the prefetched response
        is dropped unread by anyone.
        """
        ahead = Prefetcher(self._send)
        try:
            step = next(flow)
            while True:
                if isinstance(step, Prefetch):
                    ahead.start(step)
                    step = next(flow)
                    continue
                try:
                    response = ahead.response() if ahead.holds(step) else self._send(step)
                except TransportError as exc:
                    step = flow.throw(exc)
                else:
                    step = flow.send(response)
        except StopIteration as done:
            result: T = done.value
            return result
        finally:
            flow.close()
            ahead.close()

    def _run_exclusive(self, flow: Flow[T]) -> T:
        """Drive a push or pull flow, one at a time per client."""
        with self._sync_lock:
            return self._run(flow)

    def _send(self, request: httpx.Request) -> httpx.Response:
        steps = self._steps(request)
        try:
            step = next(steps)
            while True:
                if isinstance(step, Sleep):
                    time.sleep(step.seconds)
                    step = steps.send(None)
                elif isinstance(step, FetchToken):
                    step = steps.send(self._fetch_token(step.refresh))
                else:
                    try:
                        response = self._http.send(step.request, auth=self._auth_arg())
                    except httpx.RequestError as exc:
                        step = steps.throw(exc)
                    else:
                        step = steps.send(unbind_stream(response))
        except StopIteration as done:
            final: httpx.Response = done.value
            return final

    def _fetch_token(self, refresh: bool) -> str:
        cached = self._cached_token(refresh)
        if cached is not None:
            return cached
        assert self._token_provider is not None
        return self._keep_token(self._token_provider(refresh=refresh))
