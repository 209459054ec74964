"""``Idempotency-Key``: a repeated write gets the first response, recorded with the write."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import httpx
import sqlalchemy as sa

from tablesync.server import Table

from .conftest import TODO_COLUMNS, V3


def _key(key: str) -> dict[str, str]:
    return {**V3, "Idempotency-Key": key}


def _count(client: Any) -> int:
    engine = client.app.state.tablesync.schema.engine
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM todo")).scalar_one())


def test_repeated_insert_returns_the_first_response(client: Any) -> None:
    first = client.post("/tables/todo", json={"id": "i", "text": "a"}, headers=_key("k1"))
    again = client.post("/tables/todo", json={"id": "i", "text": "a"}, headers=_key("k1"))
    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert again.headers["etag"] == first.headers["etag"]
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    assert _count(client) == 1


def test_repeated_update_and_delete_do_not_conflict_with_themselves(client: Any) -> None:
    created = client.post("/tables/todo", json={"id": "u", "text": "a"}, headers=V3)
    stale = {**_key("k2"), "If-Match": created.headers["etag"]}
    first = client.patch("/tables/todo/u", json={"text": "b"}, headers=stale)
    again = client.patch("/tables/todo/u", json={"text": "b"}, headers=stale)
    assert first.status_code == again.status_code == 200 and again.json() == first.json()
    deleted = client.delete("/tables/todo/u", headers=_key("k3"))
    repeated = client.delete("/tables/todo/u", headers=_key("k3"))
    assert deleted.status_code == repeated.status_code == 204


def test_a_key_reused_for_another_request_is_422(client: Any) -> None:
    client.post("/tables/todo", json={"id": "x1"}, headers=_key("same"))
    response = client.post("/tables/todo", json={"id": "x2"}, headers=_key("same"))
    assert response.status_code == 422 and "Idempotency-Key" in response.json()["error"]
    assert client.get("/tables/todo/x2", headers=V3).status_code == 404


def test_a_rejected_write_is_not_recorded(client: Any) -> None:
    created = client.post("/tables/todo", json={"id": "r", "text": "a"}, headers=V3)
    bad = {**_key("k4"), "If-Match": '"stale"'}
    assert client.patch("/tables/todo/r", json={"text": "b"}, headers=bad).status_code == 412
    good = {**_key("k4"), "If-Match": created.headers["etag"]}
    assert client.patch("/tables/todo/r", json={"text": "b"}, headers=good).status_code == 200


def test_invalid_keys_are_400(client: Any) -> None:
    for key in ("x" * 256, "tab\there"):
        response = client.post("/tables/todo", json={"id": "z"}, headers=_key(key))
        assert response.status_code == 400
    assert client.get("/tables/todo/z", headers=V3).status_code == 404


def test_expired_records_are_purged(make_client: Any) -> None:
    tables = [Table("todo", columns=TODO_COLUMNS)]
    first = make_client(tables, idempotency_ttl=dt.timedelta(0))
    first.post("/tables/todo", json={"id": "e1"}, headers=_key("old"))
    # A new process purges on its first keyed write; the TTL of 0 expires everything older.
    second = make_client(tables, idempotency_ttl=dt.timedelta(0))
    second.post("/tables/todo", json={"id": "e2"}, headers=_key("new"))
    engine = second.app.state.tablesync.schema.engine
    with engine.connect() as conn:
        keys = set(conn.execute(sa.text("SELECT key FROM tablesync_idempotency")).scalars())
    assert keys == {"new"}
    replay = second.post("/tables/todo", json={"id": "e1"}, headers=_key("old"))
    assert replay.status_code == 409


def test_concurrent_requests_with_one_key_all_get_the_first_response(
    running_server: Any, db_url: str
) -> None:
    base = running_server(database=db_url, tables=[Table("todo", columns=TODO_COLUMNS)])
    results: list[httpx.Response] = []

    def send() -> None:
        with httpx.Client(base_url=base, timeout=30) as http:
            body = {"id": "race", "text": "a"}
            results.append(http.post("/tables/todo", json=body, headers=_key("race-key")))

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 6
    assert {r.status_code for r in results} == {201}
    assert len({r.content for r in results}) == 1
