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

__all__ = [
    "AuthenticationError",
    "ConflictError",
    "NotFoundError",
    "ODataSyntaxError",
    "PullFailedError",
    "PushFailedError",
    "QueryError",
    "QueueError",
    "ServerError",
    "StoreError",
    "TableSyncError",
    "TransportError",
    "UnsupportedQueryError",
    "UsageError",
    "__version__",
]
