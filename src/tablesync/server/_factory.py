"""An app factory configured by environment variables, for ``uvicorn --factory`` and workers.

``tablesync serve --workers N`` starts N uvicorn worker processes; each imports this module
and builds its own app (engine, pool) from the variables the parent process set.
"""

from __future__ import annotations

import os

from starlette.applications import Starlette

from .._exceptions import ServerConfigError
from ._app import create_app
from ._config import ServerConfig, load_config

DATABASE_VAR = "TABLESYNC_DATABASE"
CONFIG_VAR = "TABLESYNC_CONFIG"
DYNAMIC_VAR = "TABLESYNC_DYNAMIC_SCHEMA"


def app_from_environment() -> Starlette:
    """Build the app from ``TABLESYNC_DATABASE``, ``_CONFIG`` and ``_DYNAMIC_SCHEMA``."""
    config_path = os.environ.get(CONFIG_VAR)
    config = load_config(config_path) if config_path else ServerConfig()
    return create_app(
        os.environ.get(DATABASE_VAR) or None,
        dynamic_schema=_flag(os.environ.get(DYNAMIC_VAR)),
        config=config,
    )


def _flag(value: str | None) -> bool | None:
    if value is None or value == "":
        return None
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ServerConfigError(f"{DYNAMIC_VAR} must be true or false, got {value!r}")
