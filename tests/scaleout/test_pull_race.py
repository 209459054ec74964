"""A pull must not step over a row when the row at its bound is updated between two pages.

The client pulls ``updatedAt ge T`` and, after a page that did not move the bound, uses
``$skip`` to step over the rows read at T. If such a row is updated between the two requests,
it leaves the front of the order and the skip steps over the next row instead, one the pull
never read (here ``late``, written just before that update). The stress test found this; here
it is reproduced exactly by writing from an httpx response hook between the client's pages.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx

from tablesync import Client, SQLiteStore
from tablesync.server import Table

V3 = {"ZUMO-API-VERSION": "3.0.0"}


def test_rows_written_around_the_bound_during_a_pull_are_not_lost(
    tmp_path: Path, running_server: Callable[..., str]
) -> None:
    base = running_server(database=f"sqlite:///{tmp_path / 'race.db'}", tables=[Table("t")])
    writer = httpx.Client(base_url=base, headers=V3, timeout=30)
    first = writer.post("/tables/t", json={"id": "a"}).json()
    fired: list[str] = []

    def interleave(response: httpx.Response) -> None:
        params = response.request.url.params
        at_bound = first["updatedAt"] in params.get("$filter", "")
        if at_bound and params.get("$skip") == "0" and not fired:
            fired.append(str(response.request.url))
            assert writer.post("/tables/t", json={"id": "late"}).status_code == 201
            assert writer.patch("/tables/t/a", json={}).status_code == 200

    http = httpx.Client(event_hooks={"response": [interleave]}, timeout=30)
    store = SQLiteStore(tmp_path / "device.db")
    client = Client(base, store=store, http=http)
    try:
        table = client.sync_table("t")
        table.pull(query_id="all")
        assert fired, "the writes were never interleaved with the pull"
        table.pull(query_id="all")
        local = {row["id"]: row["version"] for row in table.query()}
        server = {item["id"]: item["version"] for item in writer.get("/tables/t").json()["items"]}
        assert local == server and set(local) == {"a", "late"}
    finally:
        client.close()
        store.close()
        http.close()
        writer.close()
