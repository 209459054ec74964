"""Response compression: zstd for clients that accept it, gzip for the others (_compression)."""

from __future__ import annotations

import gzip

import httpx
import pytest
import zstandard
from starlette.applications import Starlette
from starlette.responses import StreamingResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from tablesync.protocol import loads
from tablesync.server._compression import CompressionMiddleware, accepts

from .conftest import V3, MakeClient


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("zstd", True),
        ("gzip, deflate, br, zstd", True),
        ("ZSTD;q=0.5", True),
        ("zstd;q=0", False),
        ("zstd; q=0.000, gzip", False),
        ("gzip", False),
        ("zstdx, xzstd", False),
        ("", False),
    ],
)
def test_accepts_reads_names_and_zero_weights(header: str, expected: bool) -> None:
    assert accepts(header, "zstd") is expected


def _page_request(client: TestClient, encoding: str) -> httpx.Response:
    for n in range(40):
        created = client.post(
            "/tables/todo", json={"id": f"t{n:02d}", "text": "x" * 40}, headers=V3
        )
        assert created.status_code == 201
    return client.get("/tables/todo", headers={**V3, "Accept-Encoding": encoding})


@pytest.mark.parametrize(
    ("encoding", "coding"),
    [
        ("zstd, gzip", "zstd"),
        ("gzip, deflate, br", "gzip"),  # the official clients
        ("zstd;q=0, gzip", "gzip"),
        ("br", None),
        ("identity", None),
    ],
)
def test_each_client_gets_a_coding_it_accepts(
    make_client: MakeClient, encoding: str, coding: str | None
) -> None:
    client = make_client()
    response = _page_request(client, encoding)

    assert response.status_code == 200
    assert response.headers.get("content-encoding") == coding
    assert "Accept-Encoding" in response.headers["vary"]
    assert [item["id"] for item in response.json()["items"]] == [f"t{n:02d}" for n in range(40)]


def test_a_zstd_page_is_one_frame_that_records_its_size(make_client: MakeClient) -> None:
    client = make_client()
    plain = _page_request(client, "identity")
    with client.stream("GET", "/tables/todo", headers={**V3, "Accept-Encoding": "zstd"}) as raw:
        compressed = b"".join(raw.iter_raw())

    assert raw.headers["content-encoding"] == "zstd"
    assert int(raw.headers["content-length"]) == len(compressed) < len(plain.content) / 4
    frame = zstandard.get_frame_parameters(compressed)
    assert frame.content_size == len(plain.content)
    assert zstandard.ZstdDecompressor().decompress(compressed) == plain.content


def test_small_responses_are_sent_as_they_are(make_client: MakeClient) -> None:
    client = make_client()
    client.post("/tables/todo", json={"id": "s", "text": "short"}, headers=V3)
    response = client.get("/tables/todo/s", headers={**V3, "Accept-Encoding": "zstd"})

    assert response.status_code == 200
    assert "content-encoding" not in response.headers


def test_a_streamed_body_is_one_zstd_stream_flushed_chunk_by_chunk() -> None:
    chunks = [b'{"part": 1, "pad": "' + b"a" * 4000, b'", "part2": "' + b"b" * 4000 + b'"}']

    async def stream(_request: object) -> StreamingResponse:
        async def body():  # type: ignore[no-untyped-def]
            for chunk in chunks:
                yield chunk

        return StreamingResponse(body(), media_type="application/json")

    app = CompressionMiddleware(Starlette(routes=[Route("/s", stream)]))
    with TestClient(app).stream("GET", "/s", headers={"Accept-Encoding": "zstd"}) as response:
        raw = b"".join(response.iter_raw())

    assert response.headers["content-encoding"] == "zstd"
    assert "content-length" not in response.headers
    assert zstandard.ZstdDecompressor().decompressobj().decompress(raw) == b"".join(chunks)


def test_large_bodies_compress_on_a_thread_and_decode_the_same(make_client: MakeClient) -> None:
    client = make_client()
    for n in range(60):
        item = {"id": f"big{n:02d}", "text": f"{n:02d}" + "y" * 6000}
        assert client.post("/tables/todo", json=item, headers=V3).status_code == 201
    query = "/tables/todo?$top=60"
    zstd_page = client.get(query, headers={**V3, "Accept-Encoding": "zstd"})
    with client.stream("GET", query, headers={**V3, "Accept-Encoding": "gzip"}) as raw:
        gzip_body = gzip.decompress(b"".join(raw.iter_raw()))

    assert zstd_page.headers["content-encoding"] == "zstd"
    assert len(gzip_body) > 256 * 1024  # past THREAD_MINIMUM_SIZE
    assert zstd_page.content == gzip_body
    assert len(loads(gzip_body)["items"]) == 60
