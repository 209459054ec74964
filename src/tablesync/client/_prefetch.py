"""``Client``'s fetching threads: a flow's :class:`Prefetch`, and the guess that follows it.

A pull's next request depends on the page before it (its keyset cursor), so pages are fetched
one after the other, and whatever the client does between receiving a page and sending the next
request delays every page. With ``Prefetch.follow`` the thread that receives a page sends the
guessed next request at once, before the page is decoded; the flow decodes and checks the page
meanwhile and, when it prefetches that same request, gets the response already on its way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import httpx

from ._flows import Prefetch

#: The flow's prefetch and one guess at most, each on a thread of its own.
_THREADS = 2


class _Fetch:
    """One request sent on a fetching thread; for a guess, whether the flow took it."""

    def __init__(self, request: httpx.Request) -> None:
        self.request = request
        self.future: Future[tuple[httpx.Response, _Fetch | None]] | None = None
        self._decided = threading.Event()
        self._taken = False

    def take(self) -> None:
        self._taken = True
        self._decided.set()

    def drop(self) -> None:
        self._decided.set()

    def taken(self) -> bool:
        """Wait for the flow's decision on this guess; True if it took it.

        A guess's own guess goes out only once it is taken, so the fetching never runs more
        than one page ahead of the prefetch the flow asked for.
        """
        self._decided.wait()
        return self._taken


class Prefetcher:
    """Sends a flow's prefetched requests (and their guesses) on background threads."""

    def __init__(self, send: Callable[[httpx.Request], httpx.Response]) -> None:
        self._send = send
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._closed = False
        self._ahead: _Fetch | None = None
        """The prefetch the flow asked for and has not read yet."""
        self._guess: _Fetch | None = None
        """A guess sent after the last response the flow read, not asked for (yet)."""
        self._guesses: set[_Fetch] = set()
        """Every guess not yet taken or dropped (released on close, so no thread waits on)."""

    def start(self, step: Prefetch) -> None:
        """Begin ``step``: take the guess if it is the same request, else send it now."""
        if self._ahead is not None:
            raise RuntimeError("a flow prefetched a second request before the first")
        guess, self._guess = self._guess, None
        if guess is not None and _same_request(guess.request, step.request):
            guess.request = step.request  # the flow yields its own object later
            self._settle(guess, take=True)
            self._ahead = guess
            return
        if guess is not None:
            self._settle(guess, take=False)
        fetch = _Fetch(step.request)
        fetch.take()
        if not self._submit(fetch, step):
            raise RuntimeError("the prefetching of this client was closed")
        self._ahead = fetch

    def holds(self, request: httpx.Request) -> bool:
        """Whether ``request`` is the prefetch in flight."""
        return self._ahead is not None and self._ahead.request is request

    def response(self) -> httpx.Response:
        """The prefetch's response (or its ``TransportError``, raised here)."""
        fetch, self._ahead = self._ahead, None
        assert fetch is not None and fetch.future is not None
        response, self._guess = fetch.future.result()
        return response

    def close(self) -> None:
        """Release every thread: guesses are dropped, requests in flight end unread."""
        with self._lock:
            self._closed = True
            guesses, self._guesses = self._guesses, set()
            pool, self._pool = self._pool, None
        for guess in guesses:
            guess.drop()
        if pool is not None:
            # Not waiting: an interrupted pull returns now; the threads end with their requests.
            pool.shutdown(wait=False, cancel_futures=True)

    def _settle(self, guess: _Fetch, *, take: bool) -> None:
        with self._lock:
            self._guesses.discard(guess)
        if take:
            guess.take()
        else:
            guess.drop()

    def _submit(self, fetch: _Fetch, step: Prefetch) -> bool:
        with self._lock:
            if self._closed:
                return False
            if self._pool is None:
                self._pool = ThreadPoolExecutor(_THREADS, thread_name_prefix="tablesync-prefetch")
            fetch.future = self._pool.submit(self._fetch, fetch, step)
            return True

    def _fetch(self, fetch: _Fetch, step: Prefetch) -> tuple[httpx.Response, _Fetch | None]:
        """Send, send the guess at the next request, then ``prepare`` (all on this thread)."""
        response = self._send(step.request)
        guess = self._follow(step, response) if fetch.taken() else None
        if step.prepare is not None:
            step.prepare(response)
        return response, guess

    def _follow(self, step: Prefetch, response: httpx.Response) -> _Fetch | None:
        if step.follow is None or not response.is_success:
            return None
        try:
            after = step.follow(response)
        except Exception:
            return None  # only a guess: the flow reads the page itself and says what it wants
        if after is None:
            return None
        guess = _Fetch(after.request)
        with self._lock:
            if self._closed:
                return None
            self._guesses.add(guess)
        return guess if self._submit(guess, after) else None


def _same_request(a: httpx.Request, b: httpx.Request) -> bool:
    return (
        a.method == b.method
        and a.url == b.url
        and a.headers.raw == b.headers.raw
        and a.content == b.content
    )
