"""The one exception tree of tablesync, shared by the client, the server and the query language.

```
TableSyncError
├── TransportError               network failure, timeout, connection reset
├── ServerError                  the server answered with an error status
│   ├── ConflictError            409 / 412, carries the server's current item
│   ├── NotFoundError            404 / 410
│   └── AuthenticationError      401
├── QueryError                   a query the library cannot use
│   ├── ODataSyntaxError         malformed $filter / $orderby / $select (with .position)
│   ├── UnsupportedQueryError    well-formed but not allowed here
│   └── UnknownColumnError       names a property the table does not have
├── StoreError                   the local store failed or refused a write
│   └── QueueError               the operation queue refused a change (collapse rules)
├── PushFailedError              a push finished with operations left unresolved
├── PushAbortedError             a sync handler stopped a push
└── PullFailedError              a pull could not complete
UsageError (RuntimeError)        a programming mistake, such as using a closed client
```
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client._results import PushResult


class TableSyncError(Exception):
    """Raised for every failure that tablesync itself reports."""


class TransportError(TableSyncError):
    """Raised when the server could not be reached or the connection failed mid-request."""


class ServerError(TableSyncError):
    """Raised when the server answers with an error status.

    Attributes:
        status_code: the HTTP status of the response.
        body: the decoded JSON body, or the raw text when it was not JSON.
    """

    def __init__(self, message: str, *, status_code: int, body: Any = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body


class ConflictError(ServerError):
    """Raised on 409 (duplicate insert, stale version) or 412 (``If-Match`` mismatch).

    Attributes:
        server_item: the server's current copy of the item, when the server sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        body: Any = None,
        server_item: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, body=body)
        self.server_item = server_item


class NotFoundError(ServerError, LookupError):
    """Raised when the item or table does not exist (404), or was soft-deleted (410)."""


class AuthenticationError(ServerError):
    """Raised when the server refuses the credentials (401), after any refresh attempt."""


class QueryError(TableSyncError, ValueError):
    """Raised when a query cannot be used."""


class ODataSyntaxError(QueryError):
    """Raised when an OData expression is malformed.

    Attributes:
        text: the expression that failed to parse.
        position: the 0-based character offset where parsing failed.
    """

    def __init__(self, message: str, *, text: str = "", position: int = 0) -> None:
        where = f" at position {position}" if text else ""
        super().__init__(f"{message}{where}")
        self.text = text
        self.position = position


class UnsupportedQueryError(QueryError):
    """Raised when a query is well-formed but not allowed where it is used."""


class UnknownColumnError(QueryError, LookupError):
    """Raised when a query names a property (column) the table does not have."""


class StoreError(TableSyncError):
    """Raised when the local store fails or refuses a write."""


class QueueError(StoreError):
    """Raised when the operation queue refuses a change under the collapse rules."""


class PushFailedError(TableSyncError):
    """Raised when a push ends with operations it could not complete.

    Attributes:
        result: the push result, with its status and the per-operation errors left unhandled.
    """

    def __init__(self, message: str, *, result: PushResult) -> None:
        super().__init__(message)
        self.result = result


class PushAbortedError(TableSyncError):
    """Raised by a sync handler to stop a push; the current operation stays queued."""


class PullFailedError(TableSyncError):
    """Raised when a pull cannot complete, for example when its implicit push fails."""


class UsageError(RuntimeError):
    """Raised on a programming mistake, such as calling ``push()`` on a closed client."""


class ServerConfigError(UsageError, ValueError):
    """Raised when a server configuration (``create_app`` arguments or a TOML file) is invalid."""
