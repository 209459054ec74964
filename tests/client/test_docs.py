"""Every ``python`` block of docs/client.md runs, top to bottom, in one namespace."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "client.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def test_the_client_guide_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    blocks = BLOCK.findall(DOC.read_text())
    assert len(blocks) >= 10
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": "docs_client"}
    for number, code in enumerate(blocks, 1):
        try:
            exec(compile(code, f"{DOC.name}[block {number}]", "exec"), namespace)
        except Exception as exc:  # pragma: no cover - the message names the failing block
            raise AssertionError(f"docs/client.md block {number} failed: {exc!r}") from exc
    printed = capsys.readouterr().out
    assert "COMPLETE 2" in printed
    assert "412 toast rye bread" in printed
    from tablesync import SQLiteStore

    with SQLiteStore(tmp_path / "laptop.db") as laptop:  # the clients are closed by now
        assert laptop.get_item("todoitem", namespace["first"]["id"])["text"] == "toast"
