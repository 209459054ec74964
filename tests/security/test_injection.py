"""An injection corpus against every place a caller's text reaches SQL, on SQLite and PostgreSQL.

SQL in filters, order-by, select, ids (URL and body), table names and stored values: nothing
changes (the database's tables and Alice's rows are compared), nothing leaks to Mallory, and
every answer is a 2xx or a 4xx, never a 5xx. Payload text sent as data comes back verbatim.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from tablesync.server import create_app

from .conftest import NOTES, all_rows, auth, bearer

CORPUS = [
    "'; DROP TABLE notes; --",
    "' OR '1'='1",
    "' or 1 eq 1 or text eq '",
    "1 OR 1=1",
    "x') OR ('1'='1",
    '" OR ""="',
    "1; SELECT pg_sleep(5)--",
    "' UNION SELECT key, table_name FROM tablesync_idempotency --",
    "owner) or (1 eq 1",
    "%27%20OR%201%3D1",
    "\\' OR 1=1 --",
    "'||(SELECT version())||'",
    "') ; DELETE FROM notes; --",
    "id eq 'a1' or owner ne 'mallory'",
    "text eq 'x' or true",
    "owner; DROP TABLE notes",
    "n desc, (SELECT 1)",
    "id asc; DELETE FROM notes",
    "*, (select owner from notes)",
    "$filter=owner ne ''",
    "\x00' OR 1=1",
    "tablesync_clock",
    'notes"; DROP TABLE notes; --',
    "ñ' OR 'ü'='ü",
    "/**/OR/**/1=1",
    "' AND SLEEP(5) AND '",
]
ALICE_TEXT = "alice-secret-text"


@pytest.fixture(
    scope="module",
    params=[pytest.param("sqlite", id="sqlite"), pytest.param("postgres", id="postgres")],
)
def env(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, sa.Engine]]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('inject') / 'i.db'}"
    else:
        url = request.getfixturevalue("postgres_database_factory")()
    app = create_app(url, tables=[NOTES], auth=auth())
    with TestClient(app) as client:
        for n in range(3):
            body = {"id": f"a{n + 1}", "text": ALICE_TEXT, "n": n}
            assert (
                client.post("/tables/notes", json=body, headers=bearer("alice")).status_code == 201
            )
        mine = {"id": "m1", "text": "mallory", "n": 50}
        assert client.post("/tables/notes", json=mine, headers=bearer("mallory")).status_code == 201
        yield client, app.state.tablesync.schema.engine


def _state(client: TestClient, engine: sa.Engine) -> tuple[Any, ...]:
    rows = all_rows(client, bearer("root", roles=("admin",)))
    alice = [row for row in rows if row["owner"] == "alice"]
    tables = sorted(sa.inspect(engine).get_table_names())
    return tuple(tables), alice


def _check(response: Any, *, allowed: tuple[int, ...]) -> None:
    assert response.status_code in allowed, (response.status_code, response.text[:300])
    assert ALICE_TEXT not in response.text
    if response.status_code == 200 and "items" in response.text:
        body = response.json()
        items = body["items"] if isinstance(body, dict) else body
        assert all(item.get("owner") in (None, "mallory") for item in items)


MALLORY = bearer("mallory")


def _filter_whole(c: TestClient, p: str) -> Any:
    return c.get("/tables/notes", params={"$filter": p, "$count": "true"}, headers=MALLORY)


def _filter_raw_literal(c: TestClient, p: str) -> Any:
    return c.get("/tables/notes", params={"$filter": f"id eq '{p}'"}, headers=MALLORY)


def _orderby(c: TestClient, p: str) -> Any:
    return c.get("/tables/notes", params={"$orderby": p}, headers=MALLORY)


def _select(c: TestClient, p: str) -> Any:
    return c.get("/tables/notes", params={"$select": p}, headers=MALLORY)


def _skip_top(c: TestClient, p: str) -> Any:
    return c.get("/tables/notes", params={"$skip": p, "$top": p}, headers=MALLORY)


def _url_id(c: TestClient, p: str) -> Any:
    path = f"/tables/notes/{quote(p, safe='')}"
    for method in ("GET", "PATCH", "DELETE"):
        body = {"text": "x"} if method == "PATCH" else None
        response = c.request(method, path, json=body, headers=MALLORY)
        _check(response, allowed=(400, 404))
    return response


def _table_name(c: TestClient, p: str) -> Any:
    for method in ("GET", "POST"):
        body = {"text": "x"} if method == "POST" else None
        response = c.request(method, f"/tables/{quote(p, safe='')}", json=body, headers=MALLORY)
        _check(response, allowed=(400, 404))
    return response


CONTEXTS: list[Any] = [
    pytest.param(_filter_whole, (200, 400), id="filter"),
    pytest.param(_filter_raw_literal, (200, 400), id="filter-raw-literal"),
    pytest.param(_orderby, (200, 400), id="orderby"),
    pytest.param(_select, (200, 400), id="select"),
    pytest.param(_skip_top, (400,), id="skip-top"),
    pytest.param(_url_id, (400, 404), id="url-id"),
    pytest.param(_table_name, (400, 404), id="table-name"),
]


@pytest.mark.parametrize(("send", "allowed"), CONTEXTS)
def test_corpus_changes_and_leaks_nothing(
    env: tuple[TestClient, sa.Engine],
    send: Callable[[TestClient, str], Any],
    allowed: tuple[int, ...],
) -> None:
    client, engine = env
    before = _state(client, engine)
    for payload in CORPUS:
        _check(send(client, payload), allowed=allowed)
    assert _state(client, engine) == before


def test_corpus_as_data_round_trips_verbatim(env: tuple[TestClient, sa.Engine]) -> None:
    """Payloads stored as values and ids are data: read back exactly, matched exactly."""
    client, engine = env
    before = _state(client, engine)
    for n, payload in enumerate(CORPUS):
        item_id = f"inj-{n}"
        response = client.post(
            "/tables/notes", json={"id": item_id, "text": payload}, headers=MALLORY
        )
        if "\x00" in payload and response.status_code == 400:
            continue  # PostgreSQL text cannot hold NUL: refused cleanly
        assert response.status_code == 201, response.text
        assert response.json()["text"] == payload
        literal = payload.replace("'", "''")
        found = client.get(
            "/tables/notes", params={"$filter": f"text eq '{literal}'"}, headers=MALLORY
        )
        assert [item["id"] for item in found.json()["items"]] == [item_id]
    for payload in CORPUS:
        response = client.post("/tables/notes", json={"id": payload}, headers=MALLORY)
        _check(response, allowed=(201, 400))
        if response.status_code == 201:
            read = client.get(f"/tables/notes/{quote(payload, safe='')}", headers=MALLORY)
            assert read.status_code == 200
            assert read.json()["id"] == payload
    assert _state(client, engine) == before
