"""The server's fast paths give what the general ones give.

Covers the caches of parsed and compiled query options (by text, then by tree identity), the
page renderer that reads rows by position, and the UPDATE built before the clock stamp with
its values as anonymous parameters (user columns named like SQLAlchemy's generated names).
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import sqlalchemy as sa

from tablesync._exceptions import ODataSyntaxError
from tablesync.odata import parse_filter
from tablesync.protocol import ApiVersion, dumps
from tablesync.server import Table
from tablesync.server import _repository as repo
from tablesync.server._items import render, render_rows
from tablesync.server._paging import _filter
from tablesync.server._querying import _compiled_filter

from .conftest import TODO_COLUMNS, V2, V3, MakeClient

_AWKWARD = {"id_1": "integer", "version_1": "string", "param_1": "string", "text": "string"}


def _fill(client: object, n: int = 6) -> None:
    for i in range(n):
        item = {"id": f"t{i}", "text": f"row {i}", "count": i, "price": i / 2, "done": i % 2 == 0}
        item["due"] = f"2024-01-0{i + 1}T00:00:00.000Z"
        item["extra"] = {"n": i}
        response = client.post("/tables/todo", json=item, headers=V3)  # type: ignore[attr-defined]
        assert response.status_code == 201, response.text


def test_repeated_filter_text_gives_the_same_rows(make_client: MakeClient) -> None:
    client = make_client()
    _fill(client)
    params = {"$filter": "count ge 2 and done eq true", "$orderby": "count desc"}
    first = client.get("/tables/todo", params=params, headers=V3).json()["items"]
    second = client.get("/tables/todo", params=params, headers=V3).json()["items"]
    other = client.get(
        "/tables/todo", params={**params, "$filter": "count ge 3 and done eq true"}, headers=V3
    ).json()["items"]
    assert [item["id"] for item in first] == ["t4", "t2"]
    assert second == first
    assert [item["id"] for item in other] == ["t4"]


def test_equal_trees_that_render_differently_compile_apart() -> None:
    # 1.0m == 1.00m as trees; a cache keyed by equality would hand one the other's element.
    table = sa.Table("cache_probe", sa.MetaData(), sa.Column("price", sa.Numeric))
    one = parse_filter("price eq 1.0m")
    two = parse_filter("price eq 1.00m")
    assert one == two
    assert _compiled_filter(one, table) is not _compiled_filter(two, table)
    assert _compiled_filter(one, table) is _compiled_filter(one, table)


def test_parsed_filter_is_shared_by_text_and_errors_are_not_cached() -> None:
    assert _filter("year gt 5") is _filter("year gt 5")
    misses = _filter.cache_info().misses
    for _ in range(2):
        with pytest.raises(ODataSyntaxError):
            _filter("year gt")
    assert _filter.cache_info().misses == misses + 2


def test_page_items_match_the_general_renderer(make_client: MakeClient) -> None:
    client = make_client()
    _fill(client, 3)
    service = client.app.state.tablesync  # type: ignore[attr-defined]
    state = service.schema.get("todo")
    table = state.table
    with service.schema.engine.connect() as conn:
        general = conn.execute(sa.select(table).order_by(table.c.id)).all()
        statement = repo.page_statement(
            table, sa.true(), [], [table.c.id], skip=0, limit=10, dialect=conn.dialect.name
        )
        page = conn.execute(statement).all()
    assert len(page) == 3
    for version in (ApiVersion.V2, ApiVersion.V3):
        for select in ((), ("text", "deleted", "createdAt", "due")):
            expected = [render(state, row._mapping, version, select) for row in general]
            # Byte-identical on the wire, field order included.
            assert dumps(render_rows(state, page, version, select)) == dumps(expected)
    assert all(type(item["deleted"]) is bool for item in render_rows(state, page, ApiVersion.V3))


@pytest.mark.parametrize(
    ("stored", "wire"),
    [
        pytest.param("2024-01-02T03:04:05.678Z", "2024-01-02T03:04:05.678Z", id="canonical"),
        pytest.param("2024-01-02T03:04:05.6Z", "2024-01-02T03:04:05.600Z", id="short-fraction"),
        pytest.param("2024-01-02T05:04:05.678+02:00", "2024-01-02T03:04:05.678Z", id="offset"),
        pytest.param("2024-01-02 03:04:05", "2024-01-02T03:04:05.000Z", id="space-no-fraction"),
    ],
)
def test_stored_sqlite_text_is_sent_in_wire_form(tmp_path: Path, stored: str, wire: str) -> None:
    from starlette.testclient import TestClient

    from tablesync.server import create_app

    table = Table("todo", columns=TODO_COLUMNS, page_size=1)
    app = create_app(f"sqlite:///{tmp_path / 'raw.db'}", [table])
    with TestClient(app) as client:
        _fill(client, 2)
        with app.state.tablesync.schema.engine.begin() as conn:
            conn.exec_driver_sql(
                'UPDATE todo SET "updatedAt" = ?, due = ? WHERE id = ?', (stored, stored, "t0")
            )
        params = {"$orderby": "updatedAt"}
        first = client.get("/tables/todo", params=params, headers=V3).json()
        assert (first["items"][0]["updatedAt"], first["items"][0]["due"]) == (wire, wire)
        if stored == wire:
            # Only canonical text sorts as time does; the server never stores anything else.
            assert first["items"][0]["id"] == "t0"
            second = client.get(first["nextLink"], headers=V3).json()
            assert [item["id"] for item in second["items"]] == ["t1"]
        params = {"$select": "due", "$filter": "id eq 't0'"}
        selected = client.get("/tables/todo", params=params, headers=V2).json()
        assert [(item["id"], item["due"]) for item in selected] == [("t0", wire)]


def test_v2_and_v3_pages_carry_every_field(make_client: MakeClient) -> None:
    client = make_client()
    _fill(client, 2)
    v3 = client.get("/tables/todo", params={"$orderby": "id"}, headers=V3).json()["items"]
    v2 = client.get("/tables/todo", params={"$orderby": "id"}, headers=V2).json()
    fields = {"id", "updatedAt", "version", "deleted", *TODO_COLUMNS}
    assert set(v3[0]) == fields
    assert set(v2[0]) == fields | {"createdAt"}
    assert v3[1]["extra"] == {"n": 1} and v3[1]["deleted"] is False
    assert v3[0]["updatedAt"].endswith("Z") and len(v3[0]["updatedAt"]) == 24


def test_dynamic_column_is_rendered_after_the_table_grows(make_client: MakeClient) -> None:
    client = make_client([Table("todo", dynamic_schema=True)])
    assert client.post("/tables/todo", json={"id": "a", "x": 1}, headers=V3).status_code == 201
    params = {"$filter": "x eq 1"}
    assert [i["x"] for i in client.get("/tables/todo", params=params, headers=V3).json()["items"]]
    assert client.post("/tables/todo", json={"id": "b", "x": 1, "y": "new"}, headers=V3).is_success
    items = client.get("/tables/todo", params=params, headers=V3).json()["items"]
    assert {item["id"]: item.get("y", "missing") for item in items} == {"a": None, "b": "new"}


def test_update_of_columns_named_like_generated_parameters(make_client: MakeClient) -> None:
    client = make_client([Table("odd", columns=_AWKWARD)])
    body = {"id": "a", "id_1": 1, "version_1": "v", "param_1": "p", "text": "t"}
    created = client.post("/tables/odd", json=body, headers=V3)
    assert created.status_code == 201, created.text
    etag = created.headers["ETag"]
    changes = {"id_1": 2, "version_1": "w", "param_1": "q"}
    patched = client.patch("/tables/odd/a", json=changes, headers={**V3, "If-Match": etag})
    assert patched.status_code == 200, patched.text
    item = patched.json()
    assert (item["id_1"], item["version_1"], item["param_1"], item["text"]) == (2, "w", "q", "t")
    assert item["version"] != created.json()["version"]
    assert item["updatedAt"] > created.json()["updatedAt"]
    stale = client.patch("/tables/odd/a", json={"text": "x"}, headers={**V3, "If-Match": etag})
    assert stale.status_code == 412
    assert client.get("/tables/odd/a", headers=V3).json()["text"] == "t"


# -- pages written by SQLite's JSON functions (_page_json) ------------------------------------

_PLAIN_COLUMNS = {"text": "string", "count": "integer", "done": "boolean", "due": "datetime"}
_AWKWARD_TEXTS = ['quote " and \\ backslash', "tab\there\nnewline\x01\x1f\x7f", "é ü 東京 🙂", ""]


def _fill_plain(client: object) -> None:
    """Rows of every kind the JSON path takes, nulls and awkward text included."""
    for i, text in enumerate([*_AWKWARD_TEXTS, None]):
        item = {"id": f"p{i}", "text": text, "count": [0, -(2**63), 2**63 - 1, None, 7][i]}
        item |= {"done": [True, False, None, True, False][i]}
        item["due"] = None if i == 3 else f"2024-0{i + 1}-02T03:04:05.{i:03d}Z"
        response = client.post("/tables/plain", json=item, headers=V3)  # type: ignore[attr-defined]
        assert response.status_code == 201, response.text
    deleted = client.delete("/tables/plain/p4", headers=V3)  # type: ignore[attr-defined]
    assert deleted.status_code in (200, 204)


@pytest.mark.parametrize("version", [ApiVersion.V2, ApiVersion.V3])
def test_json_page_is_byte_identical_to_the_python_page(db_url: str, version: ApiVersion) -> None:
    from starlette.testclient import TestClient

    from tablesync.server import _page_json as page_json
    from tablesync.server import create_app

    app = create_app(db_url, [Table("plain", columns=_PLAIN_COLUMNS)])
    with TestClient(app) as client:
        _fill_plain(client)
        state = app.state.tablesync.schema.get("plain")
        table = state.table
        json_page = page_json.page_select(
            table, tuple(state.kinds), version, app.state.tablesync.schema.engine.dialect
        )
        assert json_page is not None  # the table takes the JSON path
        with app.state.tablesync.schema.engine.connect() as conn:
            page = functools.partial(
                repo.page_statement, table, sa.true(), [], [table.c.id], skip=0, limit=10,
                dialect=conn.dialect.name,
            )  # fmt: skip
            plain = conn.execute(page()).all()
            as_json = repo.fetch_raw(conn, page(columns=json_page.columns, source=json_page.source))
    assert len(as_json) == 5 and page_json.all_canonical(as_json)
    expected = dumps(render_rows(state, plain, version))
    assert dumps(page_json.items_fragment(as_json)) == expected
    assert page_json.last_item(as_json)["id"] == plain[-1].id


def test_tables_with_numbers_or_json_take_the_python_path() -> None:
    from tablesync.server import _page_json as page_json
    from tablesync.server._schema import build_table

    plain = build_table("t", _PLAIN_COLUMNS)  # type: ignore[arg-type]
    for url in ("sqlite://", "postgresql+psycopg://u@h/d"):
        dialect = sa.create_engine(url).dialect
        for kind in ("number", "json"):
            table = build_table("t", {"text": "string", "x": kind})
            assert page_json.page_select(table, ("text", "x"), ApiVersion.V3, dialect) is None
        assert page_json.page_select(plain, tuple(_PLAIN_COLUMNS), ApiVersion.V3, dialect)
    mysql = sa.dialects.mysql.dialect()  # type: ignore[attr-defined]
    assert page_json.page_select(plain, tuple(_PLAIN_COLUMNS), ApiVersion.V3, mysql) is None


def test_a_stored_non_canonical_time_sends_the_page_through_python(tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from tablesync.server import create_app

    app = create_app(f"sqlite:///{tmp_path / 'json.db'}", [Table("plain", columns=_PLAIN_COLUMNS)])
    with TestClient(app) as client:
        _fill_plain(client)
        with app.state.tablesync.schema.engine.begin() as conn:
            conn.exec_driver_sql(
                "UPDATE plain SET due = ? WHERE id = 'p1'", ("2024-01-02 03:04:05",)
            )
        params = {"$orderby": "id", "__includedeleted": "true"}
        items = client.get("/tables/plain", params=params, headers=V3).json()["items"]
        assert items[1]["due"] == "2024-01-02T03:04:05.000Z"
        assert items[4]["deleted"] is True and items[2]["done"] is None
        assert [item["text"] for item in items] == [*_AWKWARD_TEXTS, None]


@pytest.mark.parametrize(
    ("scheme", "host", "expected"),
    [
        ("http", "Example.COM", "http://example.com"),
        ("http", "example.com:80", "http://example.com"),
        ("http", "example.com:080", "http://example.com"),
        ("https", "example.com:80", "https://example.com:80"),
        ("https", "example.com:00443", "https://example.com"),
        ("http", "10.0.0.1:8080", "http://10.0.0.1:8080"),
        ("http", "[::1]:8000", "http://[::1]:8000"),  # the general path
        ("http", "h:99999", "http://127.0.0.1:8000"),  # an impossible port: the server's
        ("http", None, "http://127.0.0.1:8000"),
    ],
)
def test_the_origin_read_from_the_host_header_is_the_urls(
    scheme: str, host: str | None, expected: str
) -> None:
    from starlette.requests import Request

    from tablesync.server._paging import origin

    headers = [] if host is None else [(b"host", host.encode())]
    scope = {
        "type": "http",
        "scheme": scheme,
        "server": ("127.0.0.1", 8000),
        "path": "/tables/t",
        "headers": headers,
        "query_string": b"",
    }
    assert origin(Request(scope)) == expected
