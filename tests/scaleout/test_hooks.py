"""The write hooks: ``before_commit`` runs inside the transaction, ``after_commit`` after it."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from starlette.exceptions import HTTPException
from starlette.requests import Request

from tablesync.server import Table, WriteEvent, create_app
from tests._testclient import TestClient

V3 = {"ZUMO-API-VERSION": "3.0.0"}
V2 = {"ZUMO-API-VERSION": "2.0.0"}
Hook = Callable[[Request, WriteEvent], None]


@pytest.fixture
def serve(tmp_path: Path, keep_open: Any) -> Callable[..., TestClient]:
    """Factory: a TestClient for table ``notes`` with the given hooks, on a SQLite file."""

    def make(**hooks: Hook | None) -> TestClient:
        table = Table("notes", columns={"text": "string"}, **hooks)  # type: ignore[arg-type]
        app = create_app(f"sqlite:///{tmp_path / 'hooks.db'}", [table])
        client: TestClient = keep_open(TestClient(app, raise_server_exceptions=False))
        return client

    return make


def _stored(tmp_path: Path) -> dict[str, str | None]:
    with sqlite3.connect(tmp_path / "hooks.db") as conn:
        return dict(conn.execute("SELECT id, text FROM notes").fetchall())


def test_hooks_see_every_kind_of_write_in_order(serve: Callable[..., TestClient]) -> None:
    calls: list[tuple[str, str, str, str, object]] = []

    def before(_request: Request, event: WriteEvent) -> None:
        text = event.item["text"] if event.item is not None else None
        calls.append(("before", event.table, event.operation, event.item_id, text))

    def after(_request: Request, event: WriteEvent) -> None:
        calls.append(("after", event.table, event.operation, event.item_id, None))

    http = serve(before_commit=before, after_commit=after)
    assert (
        http.post("/tables/notes", json={"id": "a", "text": "one"}, headers=V3).status_code == 201
    )
    assert http.patch("/tables/notes/a", json={"text": "two"}, headers=V3).status_code == 200
    assert http.delete("/tables/notes/a", headers=V3).status_code == 204
    assert http.post("/tables/notes/a", headers=V2).status_code == 201  # v2 undelete
    assert calls == [
        ("before", "notes", "insert", "a", "one"),
        ("after", "notes", "insert", "a", None),
        ("before", "notes", "update", "a", "two"),
        ("after", "notes", "update", "a", None),
        ("before", "notes", "delete", "a", None),
        ("after", "notes", "delete", "a", None),
        ("before", "notes", "undelete", "a", "two"),
        ("after", "notes", "undelete", "a", None),
    ]


def test_no_hook_runs_for_a_write_that_did_not_happen(serve: Callable[..., TestClient]) -> None:
    calls: list[str] = []
    http = serve(
        before_commit=lambda _r, e: calls.append(f"before {e.item_id}"),
        after_commit=lambda _r, e: calls.append(f"after {e.item_id}"),
    )
    assert http.post("/tables/notes", json={"id": "a"}, headers=V3).status_code == 201
    assert http.post("/tables/notes", json={"id": "a"}, headers=V3).status_code == 409
    assert http.patch("/tables/notes/zz", json={"text": "x"}, headers=V3).status_code == 404
    assert calls == ["before a", "after a"]


@pytest.mark.parametrize(
    ("error", "status"),
    [
        pytest.param(HTTPException(403, "not now"), 403, id="http-exception"),
        pytest.param(ValueError("boom"), 500, id="unexpected"),
    ],
)
def test_a_failing_before_commit_hook_stores_nothing(
    serve: Callable[..., TestClient], tmp_path: Path, error: Exception, status: int
) -> None:
    def refuse(_request: Request, event: WriteEvent) -> None:
        if event.item_id == "no":
            raise error

    http = serve(before_commit=refuse)
    assert http.post("/tables/notes", json={"id": "yes"}, headers=V3).status_code == 201
    response = http.post("/tables/notes", json={"id": "no", "text": "x"}, headers=V3)
    assert response.status_code == status
    assert "boom" not in response.text  # internals never leak into a 500
    assert http.patch("/tables/notes/yes", json={"text": "t"}, headers=V3).status_code == 200
    assert _stored(tmp_path) == {"yes": "t"}


def test_after_commit_sees_the_committed_row_and_its_errors_are_only_logged(
    serve: Callable[..., TestClient], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[dict[str, str | None]] = []

    def after(_request: Request, _event: WriteEvent) -> None:
        seen.append(_stored(tmp_path))  # another connection: the write must be committed
        raise RuntimeError("notification service down")

    http = serve(after_commit=after)
    with caplog.at_level(logging.ERROR, logger="tablesync.server"):
        response = http.post("/tables/notes", json={"id": "a", "text": "x"}, headers=V3)
    assert response.status_code == 201 and response.json()["text"] == "x"
    assert seen == [{"a": "x"}]
    assert "after_commit hook failed" in caplog.text
