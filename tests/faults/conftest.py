"""Fixtures of the fault-proxy tests: tablesync's server behind a :class:`FaultProxy`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.faults.proxy import FaultProxy

TODO_COLUMNS: dict[str, Any] = {"text": "string", "n": "integer", "done": "boolean"}


@pytest.fixture
def server_url(running_server: Callable[..., str], tmp_path: Path) -> str:
    """tablesync's server (uvicorn, SQLite file) with one table ``todoitem``."""
    from tablesync.server import Table

    return running_server(
        database=f"sqlite:///{tmp_path / 'server.db'}",
        tables=[Table("todoitem", columns=TODO_COLUMNS)],
    )


@pytest.fixture
def proxy(server_url: str) -> Iterator[FaultProxy]:
    """A fault proxy in front of ``server_url``."""
    url = httpx.URL(server_url)
    with FaultProxy(url.host, url.port or 80) as running:
        yield running


def v3(**extra: Any) -> dict[str, str]:
    """Headers of a v3 request."""
    return {"ZUMO-API-VERSION": "3.0.0", **extra}
