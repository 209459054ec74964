"""The README's demo command runs end to end: a real server process and two clients converge."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_offline_demo_converges(tmp_path: Path) -> None:
    demo = ROOT / "docs" / "examples" / "offline_demo.py"
    done = subprocess.run(
        [sys.executable, str(demo), "--workdir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "CANCELLED_BY_NETWORK_ERROR" in done.stdout  # the offline push kept its queue
    assert "conflict 412" in done.stdout
    assert "devices identical: True" in done.stdout
    assert (tmp_path / "demo" / "server.db").exists()
