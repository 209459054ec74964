"""The tablesync client: sync tables, the local store, the operation queue, push, pull, purge."""

from ._async_client import AsyncClient as AsyncClient
from ._client import Client as Client
from ._conflicts import ClientWins as ClientWins
from ._conflicts import ConflictResolver as ConflictResolver
from ._conflicts import OperationOutcome as OperationOutcome
from ._conflicts import PushOperation as PushOperation
from ._conflicts import ServerWins as ServerWins
from ._conflicts import SyncHandler as SyncHandler
from ._context import SyncContext as SyncContext
from ._encrypted_store import EncryptedSQLiteStore as EncryptedSQLiteStore
from ._progress import SyncPhase as SyncPhase
from ._progress import SyncProgress as SyncProgress
from ._results import PullResult as PullResult
from ._results import PushResult as PushResult
from ._results import PushStatus as PushStatus
from ._results import TableOperationError as TableOperationError
from ._retry import RetryPolicy as RetryPolicy
from ._sqlite_store import SQLiteStore as SQLiteStore
from ._store import LocalStore as LocalStore
from ._store import Operation as Operation
from ._store import OperationError as OperationError
from ._store import OperationKind as OperationKind
from ._store import OperationState as OperationState
from ._tables import AsyncSyncTable as AsyncSyncTable
from ._tables import AsyncTable as AsyncTable
from ._tables import SyncTable as SyncTable
from ._tables import Table as Table

__all__ = [
    "AsyncClient",
    "AsyncSyncTable",
    "AsyncTable",
    "Client",
    "ClientWins",
    "ConflictResolver",
    "EncryptedSQLiteStore",
    "LocalStore",
    "Operation",
    "OperationError",
    "OperationKind",
    "OperationOutcome",
    "OperationState",
    "PullResult",
    "PushOperation",
    "PushResult",
    "PushStatus",
    "RetryPolicy",
    "SQLiteStore",
    "ServerWins",
    "SyncContext",
    "SyncHandler",
    "SyncPhase",
    "SyncProgress",
    "SyncTable",
    "Table",
    "TableOperationError",
]
