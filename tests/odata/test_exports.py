"""The public surface of tablesync.odata: sorted __all__, importable names, light imports."""

from __future__ import annotations

import subprocess
import sys

import tablesync.odata


def test_all_is_sorted_and_importable() -> None:
    names = tablesync.odata.__all__
    assert names == sorted(names)
    for name in names:
        assert getattr(tablesync.odata, name) is not None


def test_the_query_language_does_not_import_the_server_stack() -> None:
    code = (
        "import sys, tablesync.odata; "
        "print(sorted(m for m in ('sqlalchemy', 'starlette', 'httpx') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "sqlalchemy" not in out.stdout and "starlette" not in out.stdout
