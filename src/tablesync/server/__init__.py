"""The tablesync server: the /tables protocol (v2 and v3) on SQLAlchemy (SQLite and PostgreSQL).

Example:
    ```python
    from tablesync.server import Table, create_app

    app = create_app(
        "sqlite:///tablesync.db",
        tables=[Table("todoitem", columns={"text": "string", "complete": "boolean"})],
    )
    ```
"""

from ._app import create_app as create_app
from ._config import COLUMN_TYPES as COLUMN_TYPES
from ._config import ServerConfig as ServerConfig
from ._config import Table as Table
from ._config import load_config as load_config
from ._purge import purge_tombstones as purge_tombstones
from ._types import UtcDateTime as UtcDateTime

__all__ = [
    "COLUMN_TYPES",
    "ServerConfig",
    "Table",
    "UtcDateTime",
    "create_app",
    "load_config",
    "purge_tombstones",
]
