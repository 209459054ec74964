"""On PostgreSQL a keyset page is an index range on ``(updatedAt, id)``: no scan of earlier rows."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
import sqlalchemy as sa

from tablesync.server import Table, create_app
from tablesync.server._loop_reads import LoopReads
from tests._testclient import TestClient

V3 = {"ZUMO-API-VERSION": "3.0.0"}
ROWS = 20_000


def _seed(engine: sa.Engine, table: sa.Table) -> None:
    base = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    rows = [
        {
            "id": f"r{n:06d}",
            "createdAt": base,
            "updatedAt": base + dt.timedelta(milliseconds=n),
            "version": "v",
            "deleted": False,
        }
        for n in range(ROWS)
    ]
    with engine.begin() as conn:
        conn.execute(table.insert(), rows)
        conn.exec_driver_sql(f'ANALYZE "{table.name}"')


def test_deep_keyset_page_is_an_index_range(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(postgres_url, [Table("deep", page_size=50)])
    schema = app.state.tablesync.schema
    _seed(schema.engine, schema.get("deep").table)
    captured: list[tuple[str, Any]] = []
    # The page query is awaited on the event loop (``_loop_reads``): record what it sends.
    compile_query = LoopReads._query

    def capture(reads: LoopReads, statement: Any, values: Any) -> Any:
        query = compile_query(reads, statement, values)
        captured.append(query)
        return query

    with TestClient(app) as http:
        pull = "/tables/deep?$orderby=updatedAt&$skip=19900&$top=100"
        link = http.get(pull, headers=V3).json()["nextLink"]
        assert "$skiptoken=" in link and "$skip=" not in link
        monkeypatch.setattr(LoopReads, "_query", capture)
        page = http.get(link, headers=V3).json()
    assert [item["id"] for item in page["items"]] == [f"r{n:06d}" for n in range(19950, 20000)]
    ((statement, params),) = captured
    try:
        with schema.engine.connect() as conn:
            rows = conn.exec_driver_sql(f"EXPLAIN {statement}", params).all()
    finally:
        schema.engine.dispose()
    plan = "\n".join(row[0] for row in rows)
    assert "Index Scan" in plan and "_sync" in plan, plan
    assert 'Index Cond: ("updatedAt" >=' in plan, plan
    assert "Seq Scan" not in plan and "Sort" not in plan, plan
    offset = re.search(r"OFFSET %\((\w+)\)s", statement)
    assert offset is None or params[offset[1]] == 0, statement
