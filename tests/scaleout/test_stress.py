"""No missed changes: naive stamping loses rows under concurrent writers, the clock does not.

Three server processes share one database; their writes are transactions of random length
(the ``before_commit`` hook sleeps). Devices pull incrementally all the while, then once more;
each must then hold exactly the server's rows. The naive run must lose rows (proving the
detector sees losses); the strict run must lose none.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ._stress import Report, run_scenario

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def _database(engine: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if engine == "sqlite":
        return f"sqlite:///{tmp_path / 'stress.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def _run(
    engine: str,
    naive: bool,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    stress_servers: Callable[..., list[str]],
    *,
    rounds: int = 1,
) -> Report:
    """Up to ``rounds`` runs on the same servers (new devices each), until one loses a row."""
    servers = stress_servers(_database(engine, request, tmp_path), 3, naive=naive)
    for round_no in range(rounds):
        workdir = tmp_path / f"round{round_no}"
        workdir.mkdir()
        report = run_scenario(servers, workdir, seed=7 + round_no)
        assert not report.errors, report.errors
        assert report.writes > 20 and report.pulls > 0, report
        if report.lost:
            break
    return report


ENGINES = [pytest.param("sqlite", id="sqlite"), pytest.param("postgres", id="postgres")]


@pytest.mark.parametrize("engine", ENGINES)
def test_strict_clock_loses_nothing(
    engine: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    stress_servers: Callable[..., list[str]],
) -> None:
    report = _run(engine, False, request, tmp_path, stress_servers)
    print(f"strict {engine}: {report.writes} writes, {report.pulls} pulls, lost {report.lost}")
    assert report.pull_failures == 0
    assert report.missed == [set()] * 3
    assert report.stale == [set()] * 3
    assert report.server_rows > 0


@pytest.mark.parametrize("engine", ENGINES)
def test_naive_clock_loses_rows(
    engine: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    stress_servers: Callable[..., list[str]],
) -> None:
    # A loaded machine may, rarely, schedule one run without an overtaking commit: one retry.
    report = _run(engine, True, request, tmp_path, stress_servers, rounds=2)
    print(f"naive {engine}: {report.writes} writes, {report.pulls} pulls, lost {report.lost}")
    assert report.lost > 0, f"the naive clock lost nothing: the detector proves nothing {report}"
