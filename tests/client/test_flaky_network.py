"""Sync over a network that drops requests and responses: nothing is lost or applied twice."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import httpx
import pytest

from tablesync import (
    Client,
    PullFailedError,
    PushFailedError,
    RetryPolicy,
    SQLiteStore,
    TransportError,
)
from tests._testclient import TestClient


class Flaky(httpx.BaseTransport):
    """Loses a request before the server sees it, or its response after the server applied it."""

    def __init__(self, inner: httpx.BaseTransport, seed: int, rate: float) -> None:
        self.inner, self.random, self.rate = inner, random.Random(seed), rate
        self.dropped = self.lost = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        roll = self.random.random()
        if roll < self.rate / 2:
            self.dropped += 1
            raise httpx.ConnectError("dropped", request=request)
        response = self.inner.handle_request(request)
        if roll < self.rate:
            self.lost += 1
            response.read()
            raise httpx.ReadTimeout("response lost", request=request)
        return response


@pytest.mark.slow
@pytest.mark.parametrize(
    "version", [pytest.param("2.0.0", id="v2"), pytest.param("3.0.0", id="v3")]
)
@pytest.mark.parametrize("seed", [pytest.param(1, id="seed1"), pytest.param(7, id="seed7")])
def test_every_change_lands_once_over_a_flaky_network(
    tmp_path: Path, version: str, seed: int
) -> None:
    from tablesync.server import Table, create_app

    app = create_app(
        f"sqlite:///{tmp_path / 'server.db'}",
        [Table("todoitem", columns={"text": "string", "n": "integer"}, page_size=7)],
    )
    policy = RetryPolicy(max_attempts=3, backoff_base=0, jitter=False)
    with (
        TestClient(app) as base,
        SQLiteStore(tmp_path / "a.db") as sa,
        SQLiteStore(tmp_path / "b.db") as sb,
    ):
        flaky = Flaky(base._transport, seed, rate=0.3)
        http = httpx.Client(transport=flaky)
        # page_size: pulls ask for the server's page, not their default 1,000 (every row at once).
        a = Client(
            "http://testserver", store=sa, http=http, api_version=version, retry=policy, page_size=7
        )
        b = Client("http://testserver", store=sb, http=base, api_version=version)
        todo = a.sync_table("todoitem")
        rng = random.Random(seed)
        expected: dict[str, Any] = {}
        for n in range(40):
            item = todo.insert({"text": f"t{n}", "n": n})
            expected[item["id"]] = n
            if rng.random() < 0.3 and n:
                victim = rng.choice(sorted(expected))
                if expected[victim] is not None and victim != item["id"]:
                    row = todo.get(victim)
                    todo.update({**row, "n": row["n"] + 1000})
                    expected[victim] += 1000
            if n % 10 == 9:
                _push_until_done(a)
        _push_until_done(a)

        for _ in range(30):  # pulls may also meet the flaky network: retry them whole
            try:
                todo.pull(query_id="all")
                break
            except (TransportError, PullFailedError):
                continue
        else:
            pytest.fail("the pull did not get through 30 attempts")
        server_rows = list(b.table("todoitem").query())
        assert {r["id"]: r["n"] for r in server_rows} == expected  # none lost, none doubled
        assert {r["id"]: r["n"] for r in todo.query()} == expected
        assert flaky.dropped and flaky.lost  # the network really was flaky


def _push_until_done(client: Client) -> None:
    for _ in range(30):
        try:
            client.push()
            return
        except PushFailedError:
            continue
    pytest.fail("the push did not get through 30 attempts")
