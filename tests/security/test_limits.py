"""Hostile input limits: bodies, $top, filter length and depth, $orderby terms, ids, CORS, timeouts.

Each limit is probed just inside (accepted) and just outside (a 4xx with the JSON error body).
"""

from __future__ import annotations

import datetime as dt
import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from tablesync.server import Access, Table, create_app

from .conftest import NOTES, auth, bearer, serve

LIMIT = 4096
CATS = Table("cats", columns={"name": "string", "n": "integer"}, max_top=50, access=Access.public())


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    db = tmp_path_factory.mktemp("limits") / "l.db"
    app = create_app(
        f"sqlite:///{db}", tables=[CATS, NOTES], auth=auth(), max_body_bytes=LIMIT,
        cors_origins=["https://app.example"],
    )  # fmt: skip
    with TestClient(app) as c:
        yield c


H = {"ZUMO-API-VERSION": "3.0.0"}


def _rows(client: TestClient) -> Any:
    return client.get("/tables/cats", params={"__includedeleted": "true"}, headers=H).json()


def _post(client: TestClient, content: bytes, **headers: str) -> Any:
    return client.post(
        "/tables/cats", content=content,
        headers={**H, "Content-Type": "application/json", **headers},
    )  # fmt: skip


def test_body_size_limit(client: TestClient) -> None:
    before = _rows(client)
    filler = LIMIT - len(b'{"name":""}')
    assert _post(client, b'{"name":"' + b"x" * filler + b'"}').status_code == 201
    too_big = b'{"name":"' + b"x" * (filler + 1) + b'"}'
    assert _post(client, too_big).status_code == 413
    bomb = gzip.compress(b'{"name":"' + b"x" * 3_000_000 + b'"}')
    assert len(bomb) < LIMIT
    response = _post(client, bomb, **{"Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert response.json()["status"] == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the stream is counted
        yield b'{"name":"'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}'

    streamed = client.post(
        "/tables/cats", content=chunks(), headers={**H, "Content-Type": "application/json"}
    )
    assert streamed.status_code == 413
    assert len(_rows(client)["items"]) == len(before["items"]) + 1


QUERY_LIMITS = [
    pytest.param({"$top": "50"}, 200, id="top-at-max"),
    pytest.param({"$top": "51"}, 400, id="top-above-max"),
    pytest.param({"$top": "-1"}, 400, id="top-negative"),
    pytest.param({"$top": "9" * 40}, 400, id="top-huge"),
    pytest.param({"$skip": "9" * 40}, 400, id="skip-huge"),
    pytest.param({"$filter": "n eq " + "1" * 3000}, 400, id="filter-huge-number"),
    pytest.param({"$filter": "name eq '" + "a" * 4000 + "'"}, 200, id="filter-long-ok"),
    pytest.param({"$filter": "name eq '" + "a" * 5000 + "'"}, 400, id="filter-too-long"),
    pytest.param({"$filter": "(" * 30 + "n eq 1" + ")" * 30}, 200, id="nesting-ok"),
    pytest.param({"$filter": "(" * 40 + "n eq 1" + ")" * 40}, 400, id="nesting-too-deep"),
    pytest.param({"$filter": "not " * 40 + "(n eq 1)"}, 400, id="not-chain"),
    pytest.param({"$filter": " or ".join(["n eq 1"] * 300)}, 200, id="wide-or"),
    pytest.param({"$filter": "n add " * 200 + "1 eq 1"}, 400, id="deep-arithmetic"),
    pytest.param({"$orderby": ",".join(["n"] * 16)}, 200, id="orderby-16"),
    pytest.param({"$orderby": ",".join(["n"] * 17)}, 400, id="orderby-17"),
    pytest.param({"$select": ",".join(["name"] * 500)}, 200, id="select-repeated"),
    pytest.param({"$select": "name,nope"}, 400, id="select-unknown"),
]


@pytest.mark.parametrize(("params", "status"), QUERY_LIMITS)
def test_query_limits(client: TestClient, params: dict[str, str], status: int) -> None:
    response = client.get("/tables/cats", params=params, headers=H)
    assert response.status_code == status, response.text[:300]
    if status == 400:
        assert response.json()["status"] == 400
        assert len(response.text) < 6000  # the error does not echo huge input back whole


ID_CASES = [
    pytest.param("a" * 255, 201, 200, id="id-255"),
    pytest.param("a" * 256, 400, 400, id="id-256"),
    pytest.param("a/b", 400, 400, id="slash"),
    pytest.param("a\x00b", 400, 400, id="nul"),
    # The HTTP client resolves the dot segment itself: /tables/cats/.. is /tables/ (no route).
    pytest.param("..", 400, 404, id="dotdot"),
    pytest.param("a'b", 201, 200, id="quote-is-data"),
]


@pytest.mark.parametrize(("item_id", "status", "read_status"), ID_CASES)
def test_id_limits_in_body_and_url(
    client: TestClient, item_id: str, status: int, read_status: int
) -> None:
    response = client.post("/tables/cats", json={"id": item_id}, headers=H)
    assert response.status_code == status, response.text[:200]
    from urllib.parse import quote

    read = client.get(f"/tables/cats/{quote(item_id, safe='')}", headers=H)
    assert read.status_code == read_status


def test_cors_preflight_and_exposed_headers(client: TestClient) -> None:
    origin = {"Origin": "https://app.example"}
    preflight = client.options(
        "/tables/notes",
        headers={
            **origin,
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "authorization,zumo-api-version,if-match",
        },
    )
    # The preflight carries no credentials and must not be refused for it.
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    assert "PATCH" in preflight.headers["access-control-allow-methods"]
    response = client.get("/tables/notes", params={"$top": "1"}, headers={**bearer("x"), **origin})
    exposed = {
        h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")
    }
    assert {"etag", "link"} <= exposed
    stranger = client.get("/tables/cats", headers={**H, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in stranger.headers


def _slow_view(request: Any, table: sa.Table) -> Any:
    if request.headers.get("x-test-slow"):
        return sa.literal_column("(SELECT true FROM pg_sleep(2))")
    return sa.true()


def test_postgres_statement_timeout_answers_503_and_frees_the_connection(
    postgres_url: str,
) -> None:
    table = Table("slow", columns={"name": "string"}, view=_slow_view)
    app = create_app(postgres_url, tables=[table], statement_timeout=dt.timedelta(milliseconds=200))
    with TestClient(app) as client:
        engine = app.state.tablesync.schema.engine
        with engine.connect() as conn:
            assert conn.execute(sa.text("SHOW statement_timeout")).scalar_one() == "200ms"
        started = dt.datetime.now()
        response = client.get("/tables/slow", headers={**H, "x-test-slow": "1"})
        assert response.status_code == 503
        assert response.headers["Retry-After"]
        assert dt.datetime.now() - started < dt.timedelta(seconds=1.9)
        # The pool is healthy afterwards.
        for _ in range(3):
            assert client.get("/tables/slow", headers=H).status_code == 200


def _slow_sqlite_view(request: Any, table: sa.Table) -> Any:
    if request.headers.get("x-test-slow"):
        # Counts to 50 million: seconds of SQLite work, no sleep the deadline could miss.
        slow = "(WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50000000)"
        return sa.literal_column(f"{slow} SELECT max(i) > 0 FROM n)")
    return sa.true()


def test_sqlite_statement_timeout_answers_503_and_frees_the_loop(tmp_path: Path) -> None:
    table = Table("slow", columns={"name": "string"}, view=_slow_sqlite_view)
    app = create_app(
        f"sqlite:///{tmp_path / 's.db'}", tables=[table],
        statement_timeout=dt.timedelta(milliseconds=200),
    )  # fmt: skip
    with TestClient(app) as client:
        # A row to filter: SQLite skips the condition of an empty table.
        assert client.post("/tables/slow", json={"name": "a"}, headers=H).status_code == 201
        started = dt.datetime.now()
        response = client.get("/tables/slow", headers={**H, "x-test-slow": "1"})
        assert response.status_code == 503
        assert response.headers["Retry-After"]
        assert dt.datetime.now() - started < dt.timedelta(seconds=1.5)
        # Later statements on the same connections get their own time.
        for _ in range(3):
            assert client.get("/tables/slow", headers=H).status_code == 200
        assert client.post("/tables/slow", json={"name": "b"}, headers=H).status_code == 201


def test_a_slow_body_is_cut_off_with_408(tmp_path: Path) -> None:
    """A client trickling its body is answered 408 at the body timeout, over real HTTP."""
    import time

    import httpx

    app = create_app(
        f"sqlite:///{tmp_path / 'slow.db'}", tables=[CATS],
        body_timeout=dt.timedelta(milliseconds=300),
    )  # fmt: skip

    def trickle() -> Iterator[bytes]:
        yield b'{"name":"'
        for _ in range(20):  # at most 2 s: long past the timeout
            time.sleep(0.1)
            yield b"z"
        yield b'"}'

    started = time.monotonic()
    with serve(app, graceful_s=1) as url, httpx.Client(base_url=url, timeout=10) as http:
        try:
            response = http.post(
                "/tables/cats", content=trickle(), headers={**H, "Content-Type": "application/json"}
            )
        except httpx.HTTPError:
            response = None  # the server may close the connection before the upload ends
        if response is not None:
            assert response.status_code == 408
            assert response.json()["status"] == 408
        assert time.monotonic() - started < 5
        assert http.get("/tables/cats", headers=H).json()["items"] == []
        ok = http.post("/tables/cats", json={"name": "fast"}, headers=H)
        assert ok.status_code == 201
