"""Every ``python`` block of docs/server.md runs, top to bottom, in one namespace.

``toml`` blocks whose first line is ``# file: NAME`` are written to NAME first, so the guide's
configuration examples are the files its Python blocks load.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "server.md"
PYTHON = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
TOML_FILE = re.compile(r"^```toml\n# file: (\S+)\n(.*?)^```", re.S | re.M)


def test_the_server_guide_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = DOC.read_text(encoding="utf-8")
    files = TOML_FILE.findall(text)
    assert [name for name, _ in files] == ["full.toml"]
    for name, body in files:
        (tmp_path / name).write_text(body, encoding="utf-8")
    blocks = PYTHON.findall(text)
    assert len(blocks) >= 15
    monkeypatch.chdir(tmp_path)
    for variable in ("TABLESYNC_JWT_SECRET", "TABLESYNC_API_KEYS"):
        # setenv records the original state, so the values the guide sets are undone after.
        monkeypatch.setenv(variable, "")
        monkeypatch.delenv(variable)
    namespace: dict[str, Any] = {"__name__": "docs_server"}
    try:
        for number, code in enumerate(blocks, 1):
            try:
                exec(compile(code, f"{DOC.name}[block {number}]", "exec"), namespace)
            except Exception as exc:  # pragma: no cover - the message names the failing block
                raise AssertionError(f"docs/server.md block {number} failed: {exc!r}") from exc
    finally:
        _close_clients(namespace)
    assert (tmp_path / "todo.db").exists() and (tmp_path / "full.db").exists()


def _close_clients(namespace: dict[str, Any]) -> None:
    """Close the TestClients the guide opened, so their engines and threads are released."""
    for value in namespace.values():
        if type(value).__name__ == "TestClient":
            value.close()
            engine = value.app.state.tablesync.schema.engine
            engine.dispose()


def _accepted_keys() -> list[object]:
    from tablesync.server._access import OPERATIONS
    from tablesync.server._auth_config import _JWT_KEYS, _KEY_KEYS
    from tablesync.server._config import _SERVER_KEYS, _TABLE_KEYS

    sections = {
        "[server]": _SERVER_KEYS,
        "[server.auth]": {*_JWT_KEYS, *_KEY_KEYS},
        "[tables.X]": _TABLE_KEYS,
        "[tables.X.access]": {*OPERATIONS, "owner_column", "admin_role"},
    }
    return [
        pytest.param(section, key, id=f"{section} {key}")
        for section, keys in sections.items()
        for key in sorted(keys)
    ]


@pytest.mark.parametrize(("section", "key"), _accepted_keys())
def test_every_config_key_is_in_the_key_table(section: str, key: str) -> None:
    rows = [line for line in DOC.read_text(encoding="utf-8").splitlines() if line.startswith("| `")]
    assert any(f"`{key}`" in row and f"`{section}`" in row for row in rows), (
        f"docs/server.md's key table does not list {key} under {section}"
    )
