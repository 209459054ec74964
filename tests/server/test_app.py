"""App-level features: TOML config, OpenAPI, health, CORS, views and insert hooks, purging."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tablesync._exceptions import ServerConfigError
from tablesync.server import Table, create_app, load_config, purge_tombstones

from .conftest import TODO_COLUMNS, V3

CONFIG = """
[server]
dynamic_schema = false
max_body_bytes = 2048

[tables.Movies]
soft_delete = false
page_size = 7
conflict_policy = "server_wins"

[tables.Movies.columns]
title = "string"
year = "integer"
"""


def test_load_config_reads_tables_and_server_settings(tmp_path: Path) -> None:
    path = tmp_path / "tables.toml"
    path.write_text(CONFIG)
    config = load_config(path)
    (movies,) = config.tables
    assert movies.name == "Movies" and movies.columns == {"title": "string", "year": "integer"}
    assert (movies.soft_delete, movies.page_size, movies.conflict_policy) == (
        False,
        7,
        "server_wins",
    )
    assert config.max_body_bytes == 2048 and config.dynamic_schema is False


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("[tables.t]\nsoft_delet = true\n", "unknown key", id="typo"),
        pytest.param('[tables.t.columns]\nx = "text"\n', "unknown type", id="bad-type"),
        pytest.param("[tables.t]\npage_size = 0\n", "page_size", id="bad-page-size"),
        pytest.param('[tables.t]\nconflict_policy = "merge"\n', "conflict_policy", id="bad-policy"),
        pytest.param("[server]\ndatabase = 5\n", "database", id="bad-database"),
        pytest.param("[tables.t\n", "cannot read", id="not-toml"),
        pytest.param("[other]\n", "unknown section", id="unknown-section"),
    ],
)
def test_load_config_errors_are_clear(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ServerConfigError, match=message):
        load_config(path)


def test_a_config_drives_the_app(make_client: Any, tmp_path: Path) -> None:
    path = tmp_path / "tables.toml"
    path.write_text(CONFIG)
    client = make_client([], config=load_config(path))
    assert (
        client.post("/tables/movies", json={"id": "m", "title": "x"}, headers=V3).status_code == 201
    )
    assert client.delete("/tables/MOVIES/m", headers=V3).status_code == 204
    assert client.get("/tables/movies/m?__includedeleted=true", headers=V3).status_code == 404
    too_big = client.post("/tables/movies", json={"id": "b", "title": "x" * 3000}, headers=V3)
    assert too_big.status_code == 413


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"tables": [Table("a"), Table("A")]}, "configured twice", id="duplicate"),
        pytest.param({"database": "nosuchdb://x"}, "database URL", id="bad-url"),
        pytest.param({"max_body_bytes": 0}, "max_body_bytes", id="bad-limit"),
    ],
)
def test_create_app_rejects_bad_settings(
    tmp_path: Path, kwargs: dict[str, Any], message: str
) -> None:
    kwargs.setdefault("database", f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(ServerConfigError, match=message):
        create_app(**kwargs)


def test_table_rejects_bad_names_and_columns() -> None:
    with pytest.raises(ServerConfigError, match="invalid table name"):
        Table("tablesync_clock")
    with pytest.raises(ServerConfigError, match="invalid column name"):
        Table("t", columns={"updatedAt": "datetime"})


def test_openapi_describes_every_table_and_route(make_client: Any) -> None:
    client = make_client([Table("todo", columns=TODO_COLUMNS), Table("other")])
    document = client.get("/openapi.json").json()
    assert document["openapi"] == "3.1.0"
    assert set(document["paths"]) == {
        "/tables/todo",
        "/tables/todo/{id}",
        "/tables/other",
        "/tables/other/{id}",
        "/tables/$batch",
    }
    batch = document["paths"]["/tables/$batch"]["post"]["requestBody"]["content"]
    operations = batch["application/json"]["schema"]["properties"]["operations"]
    assert operations["maxItems"] == 100
    assert operations["items"]["properties"]["table"]["enum"] == ["todo", "other"]
    item = document["components"]["schemas"]["Item_todo"]
    assert item["properties"]["done"] == {"type": ["boolean", "null"]}
    assert item["additionalProperties"] is False
    assert set(document["paths"]["/tables/todo/{id}"]) == {"get", "patch", "put", "delete", "post"}
    names = {
        p["$ref"].rsplit("/", 1)[1] for p in document["paths"]["/tables/todo"]["get"]["parameters"]
    }
    assert {"ApiVersionHeader", "Filter", "Top", "Skip", "Count"} <= names


def test_health_and_readiness(client: Any, tmp_path: Path) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/health/ready").json() == {"status": "ok"}


def test_readiness_is_503_when_the_database_is_gone(make_client: Any, tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'gone.db'}")
    client = make_client(database=engine)
    engine.dispose()
    (tmp_path / "gone.db").unlink()
    (tmp_path / "gone.db").mkdir()  # a directory where the database was: connecting fails
    response = client.get("/health/ready")
    assert response.status_code == 503 and response.json()["status"] == 503
    assert client.get("/health").status_code == 200


def test_cors_exposes_the_protocol_headers(make_client: Any) -> None:
    client = make_client(cors_origins=["https://app.example"])
    headers = {**V3, "Origin": "https://app.example"}
    response = client.post("/tables/todo", json={"id": "c"}, headers=headers)
    assert response.headers["access-control-allow-origin"] == "https://app.example"
    exposed = {
        h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")
    }
    assert {"etag", "link", "location"} <= exposed
    preflight = client.options(
        "/tables/todo/c",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "PATCH"},
    )
    assert preflight.status_code == 200
    other = client.get("/tables/todo", headers={**V3, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_view_and_insert_hook_scope_every_statement(make_client: Any) -> None:
    def view(request: Any, table: sa.Table) -> Any:
        return table.c.text == request.headers.get("x-user", "")

    def stamp_owner(request: Any, values: dict[str, Any]) -> dict[str, Any]:
        return {**values, "text": request.headers.get("x-user", "")}

    client = make_client([Table("todo", columns=TODO_COLUMNS, view=view, insert_hook=stamp_owner)])
    alice, bob = {**V3, "X-User": "alice"}, {**V3, "X-User": "bob"}
    created = client.post("/tables/todo", json={"id": "a1", "text": "forged"}, headers=alice)
    assert created.status_code == 201 and created.json()["text"] == "alice"
    assert client.get("/tables/todo/a1", headers=bob).status_code == 404
    assert client.get("/tables/todo", headers=bob).json()["items"] == []
    assert client.patch("/tables/todo/a1", json={"count": 1}, headers=bob).status_code == 404
    assert client.delete("/tables/todo/a1", headers=bob).status_code == 404
    duplicate = client.post("/tables/todo", json={"id": "a1"}, headers=bob)
    assert duplicate.status_code == 400 and "not available" in duplicate.json()["error"]
    assert client.get("/tables/todo?$count=true", headers=alice).json()["count"] == 1


def test_purge_tombstones_keeps_recent_and_live_rows(make_client: Any) -> None:
    client = make_client()
    for n in range(4):
        client.post("/tables/todo", json={"id": f"p{n}"}, headers=V3)
    client.delete("/tables/todo/p0", headers=V3)
    client.delete("/tables/todo/p1", headers=V3)
    app = client.app
    assert purge_tombstones(app, "todo", dt.timedelta(hours=1)) == 0
    time.sleep(0.01)
    assert purge_tombstones(app, "TODO", dt.timedelta(0)) == 2
    remaining = client.get("/tables/todo?__includedeleted=true", headers=V3).json()["items"]
    assert [i["id"] for i in remaining] == ["p2", "p3"]
    with pytest.raises(ServerConfigError, match="no table"):
        purge_tombstones(app, "nosuch", dt.timedelta(0))
    with pytest.raises(ServerConfigError, match="negative"):
        purge_tombstones(app, "todo", dt.timedelta(seconds=-1))
