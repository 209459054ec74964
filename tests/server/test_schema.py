"""Schema creation, configured columns added on restart, and the dynamic schema."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy as sa

from tablesync._exceptions import ServerConfigError
from tablesync.server import Table

from .conftest import V3


def test_dynamic_schema_creates_tables_and_typed_columns(make_client: Any) -> None:
    client = make_client([], dynamic_schema=True)
    empty = client.get("/tables/notes", headers=V3)
    assert empty.status_code == 200 and empty.json()["items"] == []
    body = {
        "id": "n1",
        "text": "hi",
        "count": 3,
        "price": 1.5,
        "done": False,
        "due": "2024-01-02T03:04:05.678Z",
        "meta": {"a": [1]},
        "nothing": None,
    }
    created = client.post("/tables/Notes", json=body, headers=V3)
    assert created.status_code == 201, created.text
    item = created.json()
    assert "nothing" not in item
    assert {k: item[k] for k in body if k != "nothing"} == {
        k: v for k, v in body.items() if k != "nothing"
    }
    wrong = client.post("/tables/notes", json={"id": "n2", "count": "three"}, headers=V3)
    assert wrong.status_code == 400
    same_column = client.patch("/tables/notes/n1", json={"TEXT": "case"}, headers=V3)
    assert same_column.status_code == 200 and same_column.json()["text"] == "case"
    document = client.get("/openapi.json").json()
    assert (
        document["components"]["schemas"]["Item_notes"]["properties"]["count"]["format"] == "int64"
    )


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("bad-name", id="dash"),
        pytest.param("1st", id="digit-first"),
        pytest.param("x" * 64, id="too-long"),
        pytest.param("has space", id="space"),
    ],
)
def test_dynamic_schema_rejects_unusable_field_names(make_client: Any, name: str) -> None:
    client = make_client([], dynamic_schema=True)
    response = client.post("/tables/notes", json={"id": "a", name: 1}, headers=V3)
    assert response.status_code == 400 and response.json()["status"] == 400


@pytest.mark.parametrize(
    "table",
    [pytest.param("tablesync_clock", id="reserved"), pytest.param("9lives", id="digit-first")],
)
def test_dynamic_schema_rejects_unusable_table_names(make_client: Any, table: str) -> None:
    client = make_client([], dynamic_schema=True)
    response = client.post(f"/tables/{table}", json={"id": "a"}, headers=V3)
    assert response.status_code in (400, 404)


def test_processes_sharing_a_database_agree_on_added_columns(make_client: Any, db_url: str) -> None:
    first = make_client([], dynamic_schema=True)
    second = make_client([], dynamic_schema=True)
    first.post("/tables/shared", json={"id": "a", "text": "one"}, headers=V3)
    assert second.get("/tables/shared/a", headers=V3).json()["text"] == "one"
    second.post("/tables/shared", json={"id": "b", "count": 2}, headers=V3)
    seen = first.get("/tables/shared/a", headers=V3).json()
    assert seen["count"] is None and seen["text"] == "one"
    assert first.get("/tables/shared/b", headers=V3).json()["count"] == 2
    assert (
        first.post("/tables/shared", json={"id": "c", "count": "x"}, headers=V3).status_code == 400
    )


def test_concurrent_additions_of_one_column_keep_every_row(make_client: Any) -> None:
    clients = [make_client([], dynamic_schema=True) for _ in range(3)]
    clients[0].post("/tables/race", json={"id": "seed", "text": "kept"}, headers=V3)
    statuses: list[int] = []

    def add(n: int) -> None:
        body = {"id": f"r{n}", "newcol": n}
        statuses.append(clients[n % 3].post("/tables/race", json=body, headers=V3).status_code)

    threads = [threading.Thread(target=add, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert statuses == [201] * 6
    items = clients[1].get("/tables/race", headers=V3).json()["items"]
    assert {i["id"]: i["newcol"] for i in items} == {"seed": None, **{f"r{n}": n for n in range(6)}}
    assert items[-1]["text"] == "kept"


def test_a_configured_column_added_later_keeps_existing_data(make_client: Any) -> None:
    before = make_client([Table("todo", columns={"text": "string"})])
    before.post("/tables/todo", json={"id": "old", "text": "kept"}, headers=V3)
    after = make_client([Table("todo", columns={"text": "string", "count": "integer"})])
    item = after.get("/tables/todo/old", headers=V3).json()
    assert item["text"] == "kept" and item["count"] is None
    assert after.patch("/tables/todo/old", json={"count": 5}, headers=V3).json()["count"] == 5


def test_a_configured_type_that_contradicts_the_stored_one_is_refused(make_client: Any) -> None:
    make_client([Table("todo", columns={"text": "string"})])
    with pytest.raises(ServerConfigError, match="stored as 'string' but configured as 'integer'"):
        make_client([Table("todo", columns={"text": "integer"})])


def test_schema_has_the_sync_index_and_the_clock_row(make_client: Any) -> None:
    client = make_client()
    engine = client.app.state.tablesync.schema.engine
    indexes = sa.inspect(engine).get_indexes("todo")
    assert any(index["column_names"] == ["updatedAt", "id"] for index in indexes)
    with engine.connect() as conn:
        clock = conn.execute(sa.text("SELECT table_name FROM tablesync_clock")).scalars().all()
    assert clock == ["todo"]


def test_a_per_user_table_gets_its_owner_index_and_an_older_one_gains_it(
    make_client: Any,
) -> None:
    """Each caller's pull reads through ``(owner, updatedAt, id)``; a table made before the
    index existed gains it at the next start, its rows kept."""
    from tablesync.server import Access, ApiKeyAuth

    columns: dict[str, Any] = {"text": "string", "owner": "string"}
    auth = ApiKeyAuth({"k-0123456789abcdef": "ann"})
    key = {**V3, "X-API-Key": "k-0123456789abcdef"}
    older = make_client([Table("notes", columns=columns)])  # no owner column: no owner index
    engine = older.app.state.tablesync.schema.engine

    def owner_indexes() -> list[list[str]]:
        indexes = sa.inspect(engine).get_indexes("notes")
        return [ix["column_names"] for ix in indexes if ix["column_names"][0] == "owner"]

    assert (
        older.post("/tables/notes", json={"id": "a", "owner": "ann"}, headers=V3).status_code == 201
    )
    assert owner_indexes() == []
    table = Table("notes", columns=columns, access=Access(owner_column="owner"))
    newer = make_client([table], auth=auth)
    assert owner_indexes() == [["owner", "updatedAt", "id"]]
    make_client([table], auth=auth)  # a second start finds it there
    assert owner_indexes() == [["owner", "updatedAt", "id"]]
    pull = "/tables/notes?$filter=updatedAt gt cast(2000-01-01T00:00:00Z,Edm.DateTimeOffset)"
    assert [item["id"] for item in newer.get(pull, headers=key).json()["items"]] == ["a"]
    if engine.dialect.name == "sqlite":  # the pull's plan (PostgreSQL's depends on its stats)
        with engine.connect() as conn:
            plan = conn.exec_driver_sql(
                'EXPLAIN QUERY PLAN SELECT id FROM notes WHERE owner = ? AND "updatedAt" > ? '
                'ORDER BY "updatedAt", id',
                ("ann", "2000-01-01T00:00:00.000Z"),
            ).all()
        assert "_owner (owner=? AND updatedAt>?)" in plan[0][-1], plan


def test_declared_indexes_are_created_at_start_up_also_on_an_existing_table(
    make_client: Any, tmp_path: Any
) -> None:
    from tablesync.server import load_config

    columns: dict[str, Any] = {"title": "string", "rating": "string", "year": "integer"}
    older = make_client([Table("movies", columns=columns)])
    body = {"id": "m1", "title": "Kept", "rating": "R", "year": 1999}
    assert older.post("/tables/movies", json=body, headers=V3).status_code == 201
    engine = older.app.state.tablesync.schema.engine

    def declared() -> list[list[str]]:
        indexes = sa.inspect(engine).get_indexes("movies")
        return sorted(ix["column_names"] for ix in indexes if ix["column_names"][0] != "updatedAt")

    assert declared() == []
    config = tmp_path / "app.toml"
    config.write_text(
        '[tables.movies]\nindexes = [["rating", "id"], ["year", "updatedAt"]]\n'
        '[tables.movies.columns]\ntitle = "string"\nrating = "string"\nyear = "integer"\n'
    )
    (table,) = load_config(config).tables
    assert table.indexes == (("rating", "id"), ("year", "updatedAt"))
    newer = make_client([table])
    assert declared() == [["rating", "id"], ["year", "updatedAt"]]
    make_client([table])  # a second start finds them there
    assert declared() == [["rating", "id"], ["year", "updatedAt"]]
    query = "/tables/movies?$filter=rating eq 'R'&$orderby=id"
    assert [item["title"] for item in newer.get(query, headers=V3).json()["items"]] == ["Kept"]
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            plan = conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN SELECT id FROM movies WHERE rating = ? ORDER BY id", ("R",)
            ).all()
        assert "INDEX ix_movies_" in plan[0][-1] and "(rating=?)" in plan[0][-1], plan


def test_non_dynamic_tables_refuse_unknown_fields(make_client: Any) -> None:
    client = make_client([Table("todo", columns={"text": "string"})])
    response = client.post("/tables/todo", json={"id": "u", "other": 1}, headers=V3)
    assert response.status_code == 400 and "other" in response.json()["error"]
    dynamic = make_client([Table("todo", columns={"text": "string"}, dynamic_schema=True)])
    assert dynamic.post("/tables/todo", json={"id": "u", "other": 1}, headers=V3).status_code == 201
