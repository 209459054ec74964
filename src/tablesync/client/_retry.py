"""Retries with backoff and bearer-token refresh, written once as a sans-I/O step machine.

:func:`send_steps` decides *what* to do around one request (send it, sleep, fetch a token);
the two drivers (``Client`` and ``AsyncClient``) only carry the steps out, with ``time.sleep``
or ``anyio.sleep``. So the retry rules cannot drift apart between the sync and async clients.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import random
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from .._exceptions import TransportError

#: httpx failures worth another try: the request may never have reached the server, or its
#: response was lost. Retrying writes is safe because every push request carries an
#: ``Idempotency-Key`` (and the push recognises its own write in a conflict body).
RETRYABLE_ERRORS: tuple[type[httpx.RequestError], ...] = (
    httpx.ConnectError,
    httpx.TimeoutException,
    httpx.RemoteProtocolError,
    httpx.ReadError,
    httpx.WriteError,
)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How requests are retried after transport errors and transient statuses.

    Example:
        >>> RetryPolicy(max_attempts=3, backoff_base=0.5).delay(attempt=2, jitter=False)
        1.0
    """

    max_attempts: int = 5
    """Attempts per request in total, the first included; 1 disables retries."""
    backoff_base: float = 0.2
    """Seconds before the second attempt; each further attempt doubles it."""
    backoff_max: float = 10.0
    """Upper bound of one backoff sleep."""
    jitter: bool = True
    """Randomise each sleep in [delay/2, delay] so that many clients do not retry in step."""
    retry_statuses: frozenset[int] = field(default=frozenset({429, 502, 503, 504}))
    """Response statuses that are retried (honouring ``Retry-After``)."""
    retry_after_max: float = 60.0
    """A server's ``Retry-After`` is obeyed up to this many seconds."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.backoff_base < 0 or self.backoff_max < 0 or self.retry_after_max < 0:
            raise ValueError("backoff_base, backoff_max and retry_after_max must not be negative")
        # Accept any iterable of ints from callers while keeping the dataclass hashable.
        object.__setattr__(self, "retry_statuses", frozenset(self.retry_statuses))

    @classmethod
    def disabled(cls) -> RetryPolicy:
        """A policy that never retries."""
        return cls(max_attempts=1)

    def delay(self, attempt: int, *, jitter: bool | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        delay = float(min(self.backoff_max, self.backoff_base * (2 ** (attempt - 1))))
        if self.jitter if jitter is None else jitter:
            delay = delay / 2 + random.random() * delay / 2
        return delay

    def delay_for(self, attempt: int, response: httpx.Response | None) -> float:
        """The wait before the next attempt: ``Retry-After`` when the server sent one."""
        if response is not None:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if retry_after is not None:
                return min(retry_after, self.retry_after_max)
        return self.delay(attempt)

    def with_statuses(self, statuses: Iterable[int]) -> RetryPolicy:
        """A copy retrying ``statuses`` instead."""
        return RetryPolicy(
            self.max_attempts,
            self.backoff_base,
            self.backoff_max,
            self.jitter,
            frozenset(statuses),
            self.retry_after_max,
        )


def parse_retry_after(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` value (delta-seconds or an HTTP date), else ``None``."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    now = now or dt.datetime.now(dt.UTC)
    return max(0.0, (when - now).total_seconds())


@dataclass(frozen=True, slots=True)
class TokenHeader:
    """Where a provider's token goes: ``Authorization: Bearer <t>`` or ``X-ZUMO-AUTH: <t>``."""

    name: str = "Authorization"

    def apply(self, request: httpx.Request, token: str) -> None:
        """Set the header on ``request``."""
        if self.name.lower() == "authorization":
            request.headers[self.name] = f"Bearer {token}"
        else:
            request.headers[self.name] = token


@dataclass(frozen=True, slots=True)
class Send:
    """Step: send this request and resume with its response (or throw the httpx error in)."""

    request: httpx.Request


@dataclass(frozen=True, slots=True)
class Sleep:
    """Step: wait this many seconds, then resume with ``None``."""

    seconds: float


@dataclass(frozen=True, slots=True)
class FetchToken:
    """Step: resume with a token from the provider (a fresh one when ``refresh``)."""

    refresh: bool


Step = Send | Sleep | FetchToken
SendSteps = Generator[Step, Any, httpx.Response]


def send_steps(
    request: httpx.Request, policy: RetryPolicy, token_header: TokenHeader | None = None
) -> SendSteps:
    """The steps to send ``request`` once, with retries and one token refresh on 401.

    Returns the final response (which may still be an error status). Raises
    :class:`~tablesync.TransportError` once transport failures exhaust the policy.
    """
    if token_header is not None:
        token_header.apply(request, (yield FetchToken(refresh=False)))
    attempt, refreshed = 1, False
    while True:
        try:
            response: httpx.Response = yield Send(request)
        except httpx.RequestError as exc:
            if not isinstance(exc, RETRYABLE_ERRORS) or attempt >= policy.max_attempts:
                raise _transport_error(request, exc, attempt) from exc
            yield Sleep(policy.delay_for(attempt, None))
            attempt += 1
            continue
        if response.status_code == 401 and token_header is not None and not refreshed:
            # The cached token may have expired: ask for a fresh one, once.
            refreshed = True
            token_header.apply(request, (yield FetchToken(refresh=True)))
            continue
        if response.status_code in policy.retry_statuses and attempt < policy.max_attempts:
            yield Sleep(policy.delay_for(attempt, response))
            attempt += 1
            continue
        return response


def _transport_error(request: httpx.Request, exc: Exception, attempts: int) -> TransportError:
    tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
    detail = str(exc) or type(exc).__name__
    return TransportError(f"{request.method} {request.url} failed after {tries}: {detail}")
