"""A pool smaller than the load (as deployment.md suggests with PgBouncer) answers 503, not 500."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from starlette.requests import Request

from tablesync.server import Table, WriteEvent, create_app

V3 = {"ZUMO-API-VERSION": "3.0.0"}


def test_pool_exhaustion_is_a_retryable_503(
    tmp_path: Path, running_server: Callable[..., str]
) -> None:
    engine = sa.create_engine(
        f"sqlite:///{tmp_path / 'pool.db'}", pool_size=1, max_overflow=0, pool_timeout=0.5
    )
    entered, gate = threading.Event(), threading.Event()

    def hold(_request: Request, _event: WriteEvent) -> None:
        entered.set()
        gate.wait(30)

    base = running_server(app=create_app(engine, [Table("t", before_commit=hold)]))
    answers: list[Any] = []
    holder = threading.Thread(
        target=lambda: answers.append(
            httpx.post(f"{base}/tables/t", json={"id": "a"}, headers=V3, timeout=60)
        )
    )
    holder.start()
    try:
        assert entered.wait(30), "the first write never reached its hook"
        busy = httpx.get(f"{base}/tables/t", headers=V3, timeout=60)
    finally:
        gate.set()
        holder.join(60)
        engine.dispose()
    assert busy.status_code == 503, busy.text
    assert busy.headers["Retry-After"] == "1"
    assert answers[0].status_code == 201
