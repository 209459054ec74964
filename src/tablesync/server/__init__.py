"""The tablesync server: the /tables protocol (v2 and v3) on SQLAlchemy (SQLite and PostgreSQL).

Example:
    ```python
    from tablesync.server import Table, create_app

    app = create_app(
        "sqlite:///tablesync.db",
        tables=[Table("todoitem", columns={"text": "string", "complete": "boolean"})],
    )
    ```

Behaviour where the official servers differ (protocol.md §3, §13), and what tablesync does:

- System properties are server-owned: ``createdAt``/``updatedAt`` sent by a client are ignored
  on every write (insert, PATCH and PUT alike; clients echo them back routinely), and so is
  ``version`` except as a v2 precondition: a v2 body ``version`` without ``If-Match`` that
  differs from the stored one gives 409. ``deleted: true`` in a write body is a 400 (use
  DELETE); PATCH ``{"deleted": false}`` undeletes; PUT undeletes only with
  ``__includedeleted=true`` (AMA clients send ``deleted: false`` in every PUT).
- DELETE answers 204 for v2 and v3 (as the .NET servers do).
- ``$select`` in v3 returns the selected fields plus ``id``; v2 always adds every system
  property (as the v2 .NET server does).
- Unknown fields are a 400 unless the table has a dynamic schema; new tables and columns of a
  dynamic schema take their type from the first non-null JSON value (strings shaped exactly
  like a protocol timestamp become ``datetime`` columns; a field that is only ever null gets
  no column).
- ``updatedAt`` comes from one clock per table, taken inside the writing transaction: unique
  and strictly increasing per table (docs/architecture.md).
- Queries ordered by ``updatedAt`` page by keyset: their next links carry an opaque
  ``$skiptoken`` (the last row's updatedAt and id) instead of ``$skip``, so deep pages stay
  cheap; ``$skip`` sent by a client still works (docs/architecture.md).
- Conflict policies apply to 409/412 on PATCH/PUT and, except merge callables, on DELETE.
- Purge old tombstones with ``purge_tombstones`` (or ``tablesync purge-tombstones``): a client
  offline for longer than the retention never learns about those deletions.
"""

from ._access import Access as Access
from ._app import create_app as create_app
from ._auth import AnyAuth as AnyAuth
from ._auth import ApiKeyAuth as ApiKeyAuth
from ._auth import Authenticator as Authenticator
from ._auth import Forbidden as Forbidden
from ._auth import JWTAuth as JWTAuth
from ._auth import Principal as Principal
from ._auth import Unauthorized as Unauthorized
from ._auth import principal_of as principal_of
from ._config import COLUMN_TYPES as COLUMN_TYPES
from ._config import ServerConfig as ServerConfig
from ._config import Table as Table
from ._config import WriteEvent as WriteEvent
from ._config import load_config as load_config
from ._purge import purge_tombstones as purge_tombstones
from ._types import UtcDateTime as UtcDateTime

__all__ = [
    "Access",
    "AnyAuth",
    "ApiKeyAuth",
    "Authenticator",
    "COLUMN_TYPES",
    "Forbidden",
    "JWTAuth",
    "Principal",
    "ServerConfig",
    "Table",
    "Unauthorized",
    "UtcDateTime",
    "WriteEvent",
    "create_app",
    "load_config",
    "principal_of",
    "purge_tombstones",
]
