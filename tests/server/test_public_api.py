"""The server's public surface: a curated, sorted ``__all__``; the client never loads it."""

from __future__ import annotations

import subprocess
import sys

import tablesync.server


def test_all_is_sorted_and_exported() -> None:
    names = tablesync.server.__all__
    assert list(names) == sorted(names)
    for name in names:
        assert getattr(tablesync.server, name) is not None
    assert {"create_app", "Table", "load_config", "purge_tombstones"} <= set(names)


def test_importing_tablesync_does_not_load_the_server_stack() -> None:
    code = (
        "import sys, tablesync; print(any(m in sys.modules for m in ('starlette', 'sqlalchemy')))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert output.stdout.strip() == "False"
