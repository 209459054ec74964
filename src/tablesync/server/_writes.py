"""What a single write request and a ``$batch`` operation share before their service call.

The caller's identity, the API version, the verb rules, the scoped ``Idempotency-Key``, the
body read under a time limit, and the service call a method makes: ``_endpoints`` (one
request) and ``_batch`` (many operations) both use these, so an operation of a batch is
checked exactly as its single request would be.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Protocol

import anyio
import anyio.to_thread
from starlette.requests import Request

from ..protocol import ApiVersion
from ..protocol.headers import IDEMPOTENCY_HEADER
from ._access import Operation
from ._auth import Principal, principal_of
from ._errors import HTTPError, MethodNotAllowed
from ._idempotency import check_key
from ._replies import Reply
from ._request import api_version, read_body
from ._schema import TableState
from ._service import TableService, WriteBatch, WriteRequest

#: The access operation of each method on an item (an insert is a POST without an id).
OPERATIONS: dict[str, Operation] = {
    "GET": "read",
    "HEAD": "read",
    "PATCH": "update",
    "PUT": "update",
    "POST": "update",
    "DELETE": "delete",
}

_WRONG_VERB = {
    "PUT": "PUT is a protocol v3 verb; v2 clients update with PATCH",
    "POST": 'POST on an item (undelete) is a protocol v2 verb; v3 clients PATCH {"deleted": false}',
}


class RequestTimeout(HTTPError):
    """Raised when the request body arrives too slowly (408)."""

    status_code = 408


class WriteCall(Protocol):
    """A service write: the request, and the batch it is part of (``None``: on its own)."""

    def __call__(self, req: WriteRequest, batch: WriteBatch | None = None, /) -> Reply: ...


async def authenticate(service: TableService, request: Request) -> Principal | None:
    """Authenticate the caller (401 for invalid credentials); kept in the request state."""
    auth = service.settings.auth
    principal: Principal | None = None
    if auth is not None:
        if getattr(auth, "blocking", False):
            principal = await anyio.to_thread.run_sync(auth.authenticate, request)
        else:
            principal = auth.authenticate(request)
    request.state.principal = principal
    return principal


def request_version(service: TableService, request: Request, key: str) -> ApiVersion:
    """The request's API version, checked unless table ``key`` skips the check."""
    # Only the cached state: this runs on the event loop, which must not wait on the DB.
    state = service.schema.cached(key)
    skip = state.config.skip_version_check if state is not None else False
    return api_version(request, skip_check=skip)


async def read_limited_body(service: TableService, request: Request, max_bytes: int) -> bytes:
    """The request body (at most ``max_bytes``), or 408 if it arrives too slowly."""
    timeout = service.settings.body_timeout_s
    try:
        # A slow sender holds no thread or connection (this runs on the event loop), but
        # it must not hold the request open for ever either.
        # asyncio's own timeout: anyio's cancel scope cost about 3% of an insert's CPU.
        async with asyncio.timeout(timeout):
            return await read_body(request, max_bytes)
    except TimeoutError:
        raise RequestTimeout(f"The request body did not arrive within {timeout:g} s") from None


def runs_user_hooks(state: TableState | None) -> bool:
    """Whether writes to the table call the application's code, which may block."""
    if state is None:
        return False
    config = state.config
    hooks = (config.insert_hook, config.before_commit, config.after_commit)
    return callable(config.conflict_policy) or any(hook is not None for hook in hooks)


def write_action(service: TableService, method: str, item_id: str | None) -> WriteCall:
    """The service call a write of ``method`` makes (an insert when there is no item id)."""
    if item_id is None:
        return service.insert
    if method == "PATCH":
        return lambda req, batch=None: service.update(req, batch, replace_all=False)
    if method == "PUT":
        return lambda req, batch=None: service.update(req, batch, replace_all=True)
    return service.delete if method == "DELETE" else service.undelete


def check_verb(method: str, version: ApiVersion, item_id: str | None) -> None:
    """405 for an item write whose verb belongs to the other protocol version."""
    if (method == "PUT" and version is ApiVersion.V2) or (
        method == "POST" and item_id is not None and version is ApiVersion.V3
    ):
        raise MethodNotAllowed(_WRONG_VERB[method])


def idempotency_key(request: Request) -> str | None:
    """The request's ``Idempotency-Key``, checked and scoped to the caller."""
    return _scoped_key(request, check_key(request.headers.get(IDEMPOTENCY_HEADER)))


def _scoped_key(request: Request, key: str | None) -> str | None:
    """The idempotency key in the caller's own namespace.

    Keys are chosen by clients; without scoping, another user replaying a known key would be
    answered with the first user's stored response (their row).
    """
    principal = principal_of(request)
    if key is None or principal is None:
        return key
    scope = f"{principal.scheme}\x00{principal.user_id}\x00{key}".encode()
    return "u:" + hashlib.sha256(scope).hexdigest()
