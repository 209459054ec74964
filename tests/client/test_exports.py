"""The public surface of the client: curated, sorted, and light to import."""

from __future__ import annotations

import subprocess
import sys

import pytest

import tablesync
import tablesync.client

CLIENT_NAMES = [
    "AsyncClient",
    "Client",
    "ClientWins",
    "ConflictResolver",
    "PullResult",
    "PushResult",
    "PushStatus",
    "RetryPolicy",
    "SQLiteStore",
    "ServerWins",
    "SyncHandler",
    "SyncProgress",
    "TableOperationError",
]


@pytest.mark.parametrize(
    "module", [pytest.param(tablesync, id="tablesync"), pytest.param(tablesync.client, id="client")]
)
def test_all_is_sorted_and_importable(module: object) -> None:
    names = list(module.__all__)  # type: ignore[attr-defined]
    assert names == sorted(names, key=lambda n: (n.startswith("__"), n))
    for name in names:
        assert getattr(module, name) is not None


@pytest.mark.parametrize("name", CLIENT_NAMES)
def test_the_client_surface_is_at_the_root(name: str) -> None:
    assert name in tablesync.__all__
    assert getattr(tablesync, name) is getattr(tablesync.client, name)


def test_importing_the_client_does_not_load_the_server_stack() -> None:
    code = (
        "import sys, tablesync; "
        "print(sorted(m for m in ('starlette', 'sqlalchemy', 'uvicorn') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
