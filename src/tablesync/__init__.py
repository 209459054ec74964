"""tablesync: offline data sync for Python.

A client SDK whose sync tables keep working without a network (a local SQLite store, an
ordered operation queue, push, pull and purge) and a server speaking the Azure Mobile Apps /
Datasync ``/tables`` protocol (v2 and v3). ``import tablesync`` loads the client only; the
server lives in ``tablesync.server`` (``pip install tablesync[server]``).
"""

from ._exceptions import AuthenticationError as AuthenticationError
from ._exceptions import ConflictError as ConflictError
from ._exceptions import NotFoundError as NotFoundError
from ._exceptions import ODataSyntaxError as ODataSyntaxError
from ._exceptions import PullFailedError as PullFailedError
from ._exceptions import PushAbortedError as PushAbortedError
from ._exceptions import PushFailedError as PushFailedError
from ._exceptions import QueryError as QueryError
from ._exceptions import QueueError as QueueError
from ._exceptions import ServerError as ServerError
from ._exceptions import StoreError as StoreError
from ._exceptions import TableSyncError as TableSyncError
from ._exceptions import TransportError as TransportError
from ._exceptions import UnsupportedQueryError as UnsupportedQueryError
from ._exceptions import UsageError as UsageError
from ._version import __version__ as __version__
from .client import AsyncClient as AsyncClient
from .client import Client as Client
from .client import ClientWins as ClientWins
from .client import ConflictResolver as ConflictResolver
from .client import EncryptedSQLiteStore as EncryptedSQLiteStore
from .client import PullResult as PullResult
from .client import PushResult as PushResult
from .client import PushStatus as PushStatus
from .client import RetryPolicy as RetryPolicy
from .client import ServerWins as ServerWins
from .client import SQLiteStore as SQLiteStore
from .client import SyncHandler as SyncHandler
from .client import SyncProgress as SyncProgress
from .client import TableOperationError as TableOperationError
from .odata import F as F
from .odata import Query as Query

__all__ = [
    "AsyncClient",
    "AuthenticationError",
    "Client",
    "ClientWins",
    "ConflictError",
    "ConflictResolver",
    "EncryptedSQLiteStore",
    "F",
    "NotFoundError",
    "ODataSyntaxError",
    "PullFailedError",
    "PullResult",
    "PushAbortedError",
    "PushFailedError",
    "PushResult",
    "PushStatus",
    "Query",
    "QueryError",
    "QueueError",
    "RetryPolicy",
    "SQLiteStore",
    "ServerError",
    "ServerWins",
    "StoreError",
    "SyncHandler",
    "SyncProgress",
    "TableOperationError",
    "TableSyncError",
    "TransportError",
    "UnsupportedQueryError",
    "UsageError",
    "__version__",
]
