"""The server over real sockets: uvicorn on 127.0.0.1, driven with httpx."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import httpx
import pytest
import zstandard

from tablesync.protocol import loads

V3 = {"ZUMO-API-VERSION": "3.0.0"}
V2 = {"ZUMO-API-VERSION": "2.0.0"}


@pytest.fixture
def base_url(running_server: Any, tmp_path: Path) -> str:
    from tablesync.server import Table

    url: str = running_server(
        database=f"sqlite:///{tmp_path / 'e2e.db'}",
        tables=[Table("notes", columns={"text": "string", "n": "integer"}, page_size=10)],
    )
    return url


def _client_port(response: httpx.Response) -> int:
    stream = response.extensions["network_stream"]
    port: int = stream.get_extra_info("client_addr")[1]
    return port


def test_crud_over_a_kept_alive_connection(base_url: str) -> None:
    with httpx.Client(base_url=base_url, headers=V3, timeout=10) as http:
        created = http.post("/tables/notes", json={"id": "a", "text": "hello"})
        assert created.status_code == 201
        assert created.headers["location"] == f"{base_url}/tables/notes/a"
        etag = created.headers["etag"]
        updated = http.put("/tables/notes/a", json={"text": "bye"}, headers={"If-Match": etag})
        assert updated.status_code == 200 and updated.json()["text"] == "bye"
        stale = http.put("/tables/notes/a", json={"text": "x"}, headers={"If-Match": etag})
        assert stale.status_code == 412 and stale.headers["etag"] == updated.headers["etag"]
        assert http.delete("/tables/notes/a").status_code == 204
        assert http.get("/tables/notes/a").status_code == 410
        ports = {_client_port(r) for r in (created, updated, stale)}
        assert len(ports) == 1, "every request should reuse one keep-alive connection"


def test_paging_follows_next_links_and_v2_link_headers(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=10) as http:
        for n in range(25):
            http.post("/tables/notes", json={"id": f"n{n:02d}", "n": n}, headers=V3)
        seen: list[str] = []
        url: str | None = "/tables/notes"
        while url is not None:
            page = http.get(url, headers=V3).json()
            seen += [item["id"] for item in page["items"]]
            url = page["nextLink"]
            assert url is None or url.startswith(base_url)
        assert seen == [f"n{n:02d}" for n in range(25)]
        v2_seen: list[str] = []
        link: str | None = "/tables/notes?$top=23"
        while link is not None:
            response = http.get(link, headers=V2)
            v2_seen += [item["id"] for item in response.json()]
            header = response.headers.get("link")
            link = header.removesuffix("; rel=next") if header else None
            assert header is None or not header.startswith("<")
        assert v2_seen == [f"n{n:02d}" for n in range(23)]


def test_gzip_responses_and_gzip_request_bodies(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=10) as http:
        body = gzip.compress(b'{"id": "g", "text": "' + b"z" * 5000 + b'"}')
        headers = {**V3, "Content-Encoding": "gzip", "Content-Type": "application/json"}
        created = http.post("/tables/notes", content=body, headers=headers)
        assert created.status_code == 201 and len(created.json()["text"]) == 5000
        with http.stream("GET", "/tables/notes/g", headers={**V3, "Accept-Encoding": "gzip"}) as r:
            raw = b"".join(r.iter_raw())
        assert r.headers["content-encoding"] == "gzip"
        assert loads(gzip.decompress(raw))["id"] == "g"
        # The gzip header's XFL byte says which level compressed it: 4 is the fastest (1),
        # chosen for CPU (a pull page costs 7x more CPU to compress at 9 for 20% less data).
        assert raw[:2] == b"\x1f\x8b" and raw[8] == 4


def test_zstd_responses_for_clients_that_accept_them(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=10) as http:
        created = http.post("/tables/notes", json={"id": "z", "text": "q" * 5000}, headers=V3)
        assert created.status_code == 201
        # What tablesync's client asks for (client/_http.py).
        headers = {**V3, "Accept-Encoding": "zstd, gzip"}
        with http.stream("GET", "/tables/notes/z", headers=headers) as r:
            raw = b"".join(r.iter_raw())
    assert r.headers["content-encoding"] == "zstd"
    assert len(raw) < 200
    assert loads(zstandard.ZstdDecompressor().decompress(raw))["text"] == "q" * 5000


def test_health_and_openapi(base_url: str) -> None:
    assert httpx.get(f"{base_url}/health").json() == {"status": "ok"}
    assert httpx.get(f"{base_url}/health/ready").status_code == 200
    document = httpx.get(f"{base_url}/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    assert "/tables/notes/{id}" in document["paths"]


def test_in_memory_database_serves_concurrent_requests(running_server: Any) -> None:
    import threading

    from tablesync.server import Table

    base = running_server(database="sqlite://", tables=[Table("notes", columns={"n": "integer"})])
    statuses: list[int] = []

    def write(worker: int) -> None:
        with httpx.Client(base_url=base, headers=V3, timeout=20) as http:
            for n in range(10):
                response = http.post("/tables/notes", json={"id": f"{worker}-{n}", "n": n})
                statuses.append(response.status_code)
                statuses.append(http.get("/tables/notes?$count=true").status_code)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(set(statuses)) == [200, 201] and len(statuses) == 80
    assert httpx.get(f"{base}/tables/notes?$count=true", headers=V3).json()["count"] == 40
