"""``POST /tables/$batch``: each operation answered exactly as its single request would be."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from tablesync.server import Table, _service

from .conftest import TODO_COLUMNS, V2, V3, MakeClient, sent_statements

VOLATILE = ("updatedAt", "version", "createdAt")


def _rows(client: Any, table: str = "todo") -> list[dict[str, Any]]:
    engine = client.app.state.tablesync.schema.engine
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT id, text, deleted FROM {table} ORDER BY id"))
        return [dict(row._mapping) for row in rows]


def _batch(client: Any, operations: list[Any], headers: dict[str, str] = V3) -> Any:
    return client.post("/tables/$batch", json={"operations": operations}, headers=headers)


def _op(method: str, item_id: str | None = None, body: Any = None, **headers: str) -> Any:
    op: dict[str, Any] = {"method": method, "table": "todo", "headers": headers}
    if item_id is not None:
        op["id"] = item_id
    if body is not None:
        op["body"] = body
    return op


def _stable(body: Any) -> Any:
    if isinstance(body, dict):
        return {k: v for k, v in body.items() if k not in VOLATILE}
    return body


def _single(client: Any, op: dict[str, Any], version: dict[str, str]) -> tuple[int, Any]:
    url = "/tables/todo" + (f"/{op['id']}" if "id" in op else "")
    response = client.request(
        op["method"], url, json=op.get("body"), headers={**version, **op["headers"]}
    )
    return response.status_code, _stable(response.json()) if response.content else None


SCRIPTS = [
    pytest.param(
        V3,
        [
            _op("POST", body={"id": "a", "text": "one"}, **{"Idempotency-Key": "k1"}),
            _op("POST", body={"id": "a", "text": "dup"}),  # 409 with the stored row
            _op("PUT", "a", {"id": "a", "text": "stale"}, **{"If-Match": '"nope"'}),  # 412
            _op("PATCH", "a", {"text": "two"}),
            _op("DELETE", "missing"),  # 404
            _op("POST", body={"id": "b", "text": "three"}),
            _op("DELETE", "b"),  # 204, soft
            _op("PATCH", "b", {"text": "gone"}),  # 410 in v3
            _op("PATCH", "a", {"count": "not a number"}),  # 400
            _op("POST", "a", {}),  # 405: undelete is a v2 verb
            _op("PUT", "bad id!", {"text": "x"}),  # 400 id rules
        ],
        id="v3",
    ),
    pytest.param(
        V2,
        [
            _op("POST", body={"id": "a", "text": "one"}),
            _op("PATCH", "a", {"text": "stale", "version": "bm9wZQ=="}),  # 412 (body version)
            _op("PUT", "a", {"text": "x"}),  # 405: PUT is a v3 verb
            _op("DELETE", "a"),
            _op("POST", "a"),  # undelete
            _op("PATCH", "a", {"text": "back"}),
        ],
        id="v2",
    ),
]


@pytest.mark.parametrize(("version", "operations"), SCRIPTS)
def test_a_batch_answers_like_the_same_requests_one_by_one(
    make_client: MakeClient, version: dict[str, str], operations: list[Any]
) -> None:
    single_app = make_client()
    expected = [_single(single_app, op, version) for op in operations]
    batch_app = make_client(database=f"sqlite:///{_tmp_db(single_app)}")
    response = _batch(batch_app, operations, version)
    assert response.status_code == 200
    assert response.headers["x-tablesync-batch"] == "100"
    results = response.json()["results"]
    got = [(r["status"], _stable(r["body"]) if "body" in r else None) for r in results]
    assert got == expected
    assert _rows(batch_app) == _rows(single_app)


def _tmp_db(client: Any) -> str:
    # A second database beside the first (the fixture's may be PostgreSQL: use a SQLite file).
    import tempfile

    return tempfile.mkdtemp(prefix="batch-") + "/batch.db"


def test_conflict_results_carry_the_entity_and_its_etag(client: Any) -> None:
    client.post("/tables/todo", json={"id": "c", "text": "server"}, headers=V3)
    ops = [
        _op("PUT", "c", {"id": "c", "text": "mine"}, **{"If-Match": '"old"'}),
        _op("POST", body={"id": "c", "text": "again"}),
        _op("POST", body={"id": "d", "text": "after the conflicts"}),
    ]
    results = _batch(client, ops).json()["results"]
    assert [r["status"] for r in results] == [412, 409, 201]
    for conflict in results[:2]:
        assert conflict["body"]["text"] == "server"
        assert conflict["headers"]["ETag"] == f'"{conflict["body"]["version"]}"'
    assert results[2]["headers"]["Location"].endswith("/tables/todo/d")
    assert [row["text"] for row in _rows(client)] == ["server", "after the conflicts"]


def test_operations_run_in_order(client: Any) -> None:
    ops = [
        _op("POST", body={"id": "o", "text": "1"}),
        _op("PATCH", "o", {"text": "2"}),
        _op("PATCH", "o", {"text": "3"}),
    ]
    results = _batch(client, ops).json()["results"]
    assert [r["body"]["text"] for r in results] == ["1", "2", "3"]
    stamps = [r["body"]["updatedAt"] for r in results]
    assert stamps == sorted(stamps) and len(set(stamps)) == 3
    assert _rows(client)[0]["text"] == "3"


def test_a_repeated_batch_replays_every_result_and_writes_nothing_new(client: Any) -> None:
    ops = [
        _op("POST", body={"id": f"r{n}", "text": str(n)}, **{"Idempotency-Key": f"key-{n}"})
        for n in range(5)
    ]
    first = _batch(client, ops).json()["results"]
    again = _batch(client, ops).json()["results"]
    assert [r["status"] for r in again] == [201] * 5
    assert [r["body"] for r in again] == [r["body"] for r in first]
    assert all(r["headers"]["Idempotent-Replayed"] == "true" for r in again)
    assert len(_rows(client)) == 5


def test_a_lost_batch_retried_as_single_requests_replays_each(client: Any) -> None:
    created = client.post("/tables/todo", json={"id": "s", "text": "a"}, headers=V3)
    ops = [
        _op("POST", body={"id": "t", "text": "new"}, **{"Idempotency-Key": "ins"}),
        _op(
            "PUT",
            "s",
            {"id": "s", "text": "b"},
            **{"Idempotency-Key": "upd"},
            **{"If-Match": created.headers["etag"]},
        ),
    ]
    first = _batch(client, ops).json()["results"]
    insert = client.post("/tables/todo", json=ops[0]["body"], headers={**V3, **ops[0]["headers"]})
    update = client.put("/tables/todo/s", json=ops[1]["body"], headers={**V3, **ops[1]["headers"]})
    assert (insert.status_code, update.status_code) == (201, 200)  # not 409 / 412
    assert insert.json() == first[0]["body"] and update.json() == first[1]["body"]
    assert len(_rows(client)) == 2


MALFORMED = [
    pytest.param([], id="empty"),
    pytest.param({"operations": "x"}, id="not-a-list"),
    pytest.param({"operations": [{"method": "GET", "table": "todo", "id": "a"}]}, id="get"),
    pytest.param({"operations": [{"method": "POST"}]}, id="no-table"),
    pytest.param({"operations": [{"method": "PATCH", "table": "todo"}]}, id="no-id"),
    pytest.param({"operations": [{"method": "PATCH", "table": "todo", "id": 5}]}, id="int-id"),
    pytest.param({"operations": [{"method": "POST", "table": "todo", "body": [1]}]}, id="body"),
    pytest.param(
        {"operations": [{"method": "POST", "table": "todo", "headers": {"If-Match": 1}}]},
        id="header-value",
    ),
    pytest.param({"operations": ["POST"]}, id="op-not-object"),
    pytest.param({"operations": [{"method": {"x": 1}, "table": "todo"}]}, id="method-object"),
    pytest.param({"operations": [{"method": "POST", "table": ["todo"]}]}, id="table-list"),
    pytest.param({"operations": [{"method": "POST", "table": "todo", "headers": []}]}, id="hdrs"),
]

ODD = [
    pytest.param(_op("PATCH", "", {"text": "x"}), 400, id="empty-id"),
    pytest.param(_op("PUT", "a", {"text": "x"}, **{"If-Match": 'W/"x"'}), 400, id="weak-etag"),
    pytest.param(_op("POST", body={"id": "k"}, **{"Idempotency-Key": "\x01"}), 400, id="key"),
    pytest.param(_op("POST", body={"id": "n", "count": 10**30}), 400, id="huge-int"),
    pytest.param(_op("POST", body={"id": "d", "due": "nope"}), 400, id="bad-date"),
    pytest.param(_op("PATCH", "a"), 400, id="patch-no-body"),
    pytest.param(_op("POST"), 400, id="insert-no-body"),
    pytest.param({"method": "POST", "table": "../etc", "body": {"id": "e"}}, 404, id="table"),
]


@pytest.mark.parametrize(("op", "status"), ODD)
def test_bad_operations_answer_like_their_single_requests(
    client: Any, op: dict[str, Any], status: int
) -> None:
    results = _batch(client, [op, _op("POST", body={"id": "after"})]).json()["results"]
    assert [r["status"] for r in results] == [status, 201]
    assert results[0]["body"]["error"]
    assert [row["id"] for row in _rows(client)] == ["after"]


@pytest.mark.parametrize("tail", MALFORMED)
def test_a_malformed_batch_is_a_400_and_writes_nothing(client: Any, tail: Any) -> None:
    # A valid operation first: it must not run either.
    good = _op("POST", body={"id": "g", "text": "x"})
    if isinstance(tail, dict) and isinstance(tail.get("operations"), list):
        body: Any = {"operations": [good, *tail["operations"]]}
    else:
        body = tail
    response = client.post("/tables/$batch", json=body, headers=V3)
    assert response.status_code == 400
    assert response.json()["status"] == 400 and response.json()["error"]
    assert _rows(client) == []


def test_not_json_is_a_400(client: Any) -> None:
    response = client.post(
        "/tables/$batch", content=b"{no", headers={**V3, "Content-Type": "application/json"}
    )
    assert response.status_code == 400


def test_the_operation_limit_is_enforced_and_configurable(make_client: MakeClient) -> None:
    client = make_client(max_batch_operations=3)
    ops = [_op("POST", body={"id": f"l{n}"}) for n in range(4)]
    too_many = _batch(client, ops)
    assert too_many.status_code == 400 and "limit is 3" in too_many.json()["error"]
    assert _rows(client) == []
    assert _batch(client, ops[:3]).status_code == 200
    assert client.get("/tables/todo", headers=V3).headers["x-tablesync-batch"] == "3"


def test_the_extension_can_be_turned_off(make_client: MakeClient) -> None:
    client = make_client(max_batch_operations=0)
    assert "x-tablesync-batch" not in client.get("/tables/todo", headers=V3).headers
    response = _batch(client, [_op("POST", body={"id": "z"})])
    assert response.status_code == 404  # "$batch" is then just a table that does not exist
    assert _rows(client) == []


def test_the_api_version_is_required(client: Any) -> None:
    response = _batch(client, [_op("POST", body={"id": "v"})], headers={})
    assert response.status_code == 400 and "API version" in response.json()["error"]
    assert _rows(client) == []


def test_every_tables_response_advertises_the_batch_limit(client: Any) -> None:
    assert client.get("/tables/todo", headers=V3).headers["x-tablesync-batch"] == "100"
    assert client.get("/tables/nope", headers=V3).headers["x-tablesync-batch"] == "100"
    assert "x-tablesync-batch" not in client.get("/health").headers


def test_unknown_tables_and_hooks_behave_as_single_requests(make_client: MakeClient) -> None:
    seen: list[str] = []

    def hook(_request: Any, values: dict[str, Any]) -> dict[str, Any]:
        seen.append(values["id"])
        return {**values, "text": "hooked"}

    client = make_client([Table("todo", columns=TODO_COLUMNS, insert_hook=hook)])
    results = _batch(
        client,
        [
            _op("POST", body={"id": "h1", "text": "x"}),
            {"method": "POST", "table": "nosuch", "body": {"id": "n"}},
            _op("POST", body={"id": "h2", "text": "y"}),
        ],
    ).json()["results"]
    assert [r["status"] for r in results] == [201, 404, 201]
    assert seen == ["h1", "h2"]
    assert [row["text"] for row in _rows(client)] == ["hooked", "hooked"]


def test_access_rules_views_and_keys_are_the_callers(make_client: MakeClient) -> None:
    from tablesync.server import Access, ApiKeyAuth

    alice, bob = {**V3, "X-API-Key": "a" * 16}, {**V3, "X-API-Key": "b" * 16}
    client = make_client(
        [
            Table(
                "todo",
                columns={"text": "string", "owner": "string"},
                access=Access(owner_column="owner"),
            )
        ],
        auth=ApiKeyAuth({"a" * 16: "alice", "b" * 16: "bob"}),
    )
    mine = _op(
        "POST",
        body={"id": "p", "text": "alice's", "owner": "bob"},
        **{"Idempotency-Key": "same-key"},
    )
    assert _batch(client, [mine], alice).json()["results"][0]["body"]["owner"] == "alice"
    anonymous = _batch(client, [mine], headers=V3).json()["results"]
    assert [r["status"] for r in anonymous] == [401]  # the table's rule, per operation
    forged = _batch(client, [mine], headers={**V3, "X-API-Key": "c" * 16})
    assert forged.status_code == 401  # a bad credential: the whole batch

    results = _batch(
        client,
        [
            _op("PATCH", "p", {"text": "bob was here"}),  # outside bob's view
            _op("DELETE", "p"),
            mine,  # alice's key, bob's namespace: a new insert of an id bob cannot see
        ],
        bob,
    ).json()["results"]
    assert [r["status"] for r in results[:2]] == [404, 404]
    assert results[2]["status"] == 400 and "Idempotent-Replayed" not in results[2]["headers"]
    assert [(row["id"], row["text"]) for row in _rows(client)] == [("p", "alice's")]


def test_body_limits_apply_per_operation_and_to_the_whole_batch(make_client: MakeClient) -> None:
    client = make_client(max_body_bytes=1000)
    ops = [_op("POST", body={"id": f"b{n}", "text": "x" * 600}) for n in range(3)]
    ops.insert(1, _op("POST", body={"id": "big", "text": "y" * 1200}))  # alone it would be a 413
    results = _batch(client, ops).json()["results"]
    assert [r["status"] for r in results] == [201, 413, 201, 201]
    assert sorted(row["id"] for row in _rows(client)) == ["b0", "b1", "b2"]

    too_big = [_op("POST", body={"id": f"t{n}", "text": "z" * 900}) for n in range(5)]
    response = _batch(client, too_big)
    assert response.status_code == 413
    assert len(_rows(client)) == 3


def test_hooks_see_the_operation_as_its_single_request(make_client: MakeClient) -> None:
    seen: list[tuple[str, str]] = []

    def before_commit(request: Any, event: Any) -> None:
        seen.append((request.method, request.url.path))

    client = make_client([Table("todo", columns=TODO_COLUMNS, before_commit=before_commit)])
    _batch(client, [_op("POST", body={"id": "q a"}), _op("PATCH", "q a", {"text": "x"})])
    client.post("/tables/todo", json={"id": "single"}, headers=V3)
    # The third is the single request: the batched ones look just like it.
    assert seen == [
        ("POST", "/tables/todo"),
        ("PATCH", "/tables/todo/q a"),
        ("POST", "/tables/todo"),
    ]


def _count_commits(client: Any) -> list[str]:
    """Every COMMIT the app's engine makes from now on (a SQLAlchemy event), by dialect."""
    engine = client.app.state.tablesync.schema.engine
    commits: list[str] = []
    sa.event.listen(engine, "commit", lambda conn: commits.append(conn.dialect.name))
    return commits


def test_a_batch_of_inserts_commits_once(client: Any) -> None:
    commits = _count_commits(client)
    ops = [
        _op("POST", body={"id": f"c{n}", "text": str(n)}, **{"Idempotency-Key": f"c-{n}"})
        for n in range(20)
    ]
    results = _batch(client, ops).json()["results"]
    assert [r["status"] for r in results] == [201] * 20
    assert len(commits) == 1
    stamps = [r["body"]["updatedAt"] for r in results]
    assert stamps == sorted(stamps) and len(set(stamps)) == 20  # the clock, per operation
    assert client.post("/tables/todo", json={"id": "alone"}, headers=V3).status_code == 201
    # And a single request still commits on its own (on PostgreSQL in a query of its own,
    # which SQLAlchemy does not see): another connection finds its row.
    assert len(commits) == (2 if commits[0] == "sqlite" else 1)
    with client.app.state.tablesync.schema.engine.connect() as other:
        assert other.execute(sa.text("SELECT id FROM todo WHERE id = 'alone'")).all() == [
            ("alone",)
        ]


def test_a_failing_operation_in_the_middle_rolls_back_only_itself(
    make_client: MakeClient, request: pytest.FixtureRequest, db_url: str
) -> None:
    # The same script one by one and as a batch, each on its own empty database of the same
    # engine; the failures in the middle must not change the outcome of any other operation.
    postgres = db_url.startswith("postgres")
    second = request.getfixturevalue("postgres_database_factory")() if postgres else None
    ops = [
        _op("POST", body={"id": "m1", "text": "a"}, **{"Idempotency-Key": "m-1"}),
        _op("POST", body={"id": "m2", "count": "not a number"}, **{"Idempotency-Key": "m-2"}),
        _op("POST", body={"id": "m1", "text": "dup"}, **{"Idempotency-Key": "m-3"}),  # 409
        _op("PATCH", "m1", {"text": "b"}, **{"If-Match": '"stale"', "Idempotency-Key": "m-4"}),
        _op("PATCH", "m1", {"text": "c"}, **{"Idempotency-Key": "m-5"}),
        _op("POST", body={"id": "m3", "count": 10**30}),  # the database rejects it: 400
        _op("DELETE", "m1", **{"Idempotency-Key": "m-6"}),
        _op("POST", body={"id": "m4", "text": "d"}),
    ]
    single_app = make_client()
    expected = [_single(single_app, op, V3) for op in ops]
    batch_app = make_client(database=second or f"sqlite:///{_tmp_db(single_app)}")
    results = _batch(batch_app, ops).json()["results"]
    got = [(r["status"], _stable(r["body"]) if "body" in r else None) for r in results]
    assert [status for status, _ in got] == [201, 400, 409, 412, 200, 400, 204, 201]
    assert got == expected
    assert _rows(batch_app) == _rows(single_app)
    # Idempotency records are per operation: the written ones replay, the failed ones run again.
    again = _batch(batch_app, ops).json()["results"]
    replayed = ["Idempotent-Replayed" in r["headers"] for r in again]
    assert replayed == [True, False, False, False, True, False, True, False]


def test_a_batch_replayed_whole_writes_nothing_and_commits_nothing_new(client: Any) -> None:
    ops = [
        _op("POST", body={"id": f"w{n}", "text": str(n)}, **{"Idempotency-Key": f"w-{n}"})
        for n in range(4)
    ]
    first = _batch(client, ops).json()["results"]
    before = _rows(client)
    again = _batch(client, ops).json()["results"]
    assert [r["body"] for r in again] == [r["body"] for r in first]
    assert all(r["headers"]["Idempotent-Replayed"] == "true" for r in again)
    assert _rows(client) == before


def test_hooks_run_before_commit_per_operation_and_after_commit_after_the_one_commit(
    make_client: MakeClient,
) -> None:
    seen: list[str] = []

    def before(_request: Any, event: Any) -> None:
        seen.append(f"before {event.operation} {event.item_id}")
        if event.item_id == "veto":
            raise ValueError("the application refuses this one")

    def after(_request: Any, event: Any) -> None:
        seen.append(f"after {event.operation} {event.item_id}")

    client = make_client(
        [Table("todo", columns=TODO_COLUMNS, before_commit=before, after_commit=after)]
    )
    engine = client.app.state.tablesync.schema.engine
    sa.event.listen(engine, "commit", lambda _conn: seen.append("COMMIT"))
    ops = [
        _op("POST", body={"id": "h1"}),
        _op("POST", body={"id": "h1"}),  # 409: no write, no hooks
        _op("PATCH", "h1", {"text": "x"}),
        _op("POST", body={"id": "veto"}),  # before_commit raises: 500, the batch stops
        _op("POST", body={"id": "never"}),
    ]
    results = _batch(client, ops).json()["results"]
    assert [r["status"] for r in results] == [201, 409, 200, 500]
    assert seen == [
        "before insert h1",
        "before update h1",
        "before insert veto",
        "COMMIT",
        "after insert h1",
        "after update h1",
    ]
    # The operations before the failure were answered as written, and they are.
    assert [(row["id"], row["text"]) for row in _rows(client)] == [("h1", "x")]


def test_a_batch_that_dies_before_its_commit_writes_nothing_and_can_be_sent_again(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing = {"commit": True}
    client = make_client()
    engine = client.app.state.tablesync.schema.engine

    def crash(_conn: Any) -> None:
        if failing["commit"]:
            raise sa.exc.OperationalError("COMMIT", {}, Exception("the server went away"))

    sa.event.listen(engine, "commit", crash)
    # On PostgreSQL the COMMIT is sent with the clock write-back, before SQLAlchemy's commit.
    monkeypatch.setattr(_service, "commit_deferred", crash)
    ops = [
        _op("POST", body={"id": f"x{n}", "text": str(n)}, **{"Idempotency-Key": f"x-{n}"})
        for n in range(3)
    ]
    response = _batch(client, ops)
    assert response.status_code == 503  # no result may claim a write that was not committed
    assert _rows(client) == []
    failing["commit"] = False
    retried = _batch(client, ops).json()["results"]
    assert [r["status"] for r in retried] == [201] * 3
    assert not any("Idempotent-Replayed" in r["headers"] for r in retried)
    assert [row["id"] for row in _rows(client)] == ["x0", "x1", "x2"]


def test_a_batch_on_a_dynamic_schema_commits_before_each_schema_change(
    make_client: MakeClient,
) -> None:
    client = make_client(tables=[], dynamic_schema=True)
    ops = [
        {"method": "POST", "table": "notes", "body": {"id": "n1", "text": "a"}},
        {"method": "POST", "table": "notes", "body": {"id": "n2", "text": "b", "stars": 3}},
        {"method": "PATCH", "table": "notes", "id": "n1", "body": {"stars": 5}},
        {"method": "POST", "table": "notes", "body": {"id": "n3", "colour": "red"}},
    ]
    results = _batch(client, ops).json()["results"]
    assert [r["status"] for r in results] == [201, 201, 200, 201]
    assert results[2]["body"]["stars"] == 5 and results[3]["body"]["colour"] == "red"
    assert [row["id"] for row in _rows(client, "notes")] == ["n1", "n2", "n3"]


def _idempotency_statements(client: Any) -> list[str]:
    """The SQL of every statement on the idempotency table from now on."""
    engine = client.app.state.tablesync.schema.engine
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        verb = statement.split()[0]
        # DELETE: the once-a-minute purge of expired records, whenever it falls due.
        if "tablesync_idempotency" in statement and verb != "DELETE":
            seen.append(verb)

    sa.event.listen(engine, "before_cursor_execute", note)
    return seen


def test_a_batch_with_new_keys_records_each_in_one_statement_on_sqlite(client: Any) -> None:
    ops = [
        _op("POST", body={"id": f"k{n}", "text": str(n)}, **{"Idempotency-Key": f"k-{n}"})
        for n in range(10)
    ]
    seen = _idempotency_statements(client)
    assert [r["status"] for r in _batch(client, ops).json()["results"]] == [201] * 10
    if client.app.state.tablesync.schema.engine.dialect.name == "sqlite":
        # One lookup of all the keys (the batch holds SQLite's write lock), and one INSERT
        # (executemany) of their records just before the commit.
        assert seen == ["SELECT", "INSERT"]
    else:
        # Other writers run concurrently: each key is claimed, then its response recorded.
        assert seen == ["INSERT", "UPDATE"] * 10
    again = _batch(client, ops).json()["results"]
    assert all(r["headers"]["Idempotent-Replayed"] == "true" for r in again)


def test_a_key_used_twice_in_one_batch_replays_or_is_refused_as_one_by_one(
    client: Any,
) -> None:
    key = {"Idempotency-Key": "twice"}
    ops = [
        _op("POST", body={"id": "t1", "text": "a"}, **key),
        _op("POST", body={"id": "t1", "text": "a"}, **key),  # the same request: replayed
        _op("POST", body={"id": "t2", "text": "b"}, **key),  # another request: 422
        _op("POST", body={"id": "bad", "count": "NaN"}, **{"Idempotency-Key": "fails"}),  # 400
        _op("POST", body={"id": "t3", "text": "c"}, **{"Idempotency-Key": "fails"}),  # fresh
    ]
    results = _batch(client, ops).json()["results"]
    assert [r["status"] for r in results] == [201, 201, 422, 400, 201]
    assert results[1]["headers"]["Idempotent-Replayed"] == "true"
    assert results[1]["body"] == results[0]["body"]
    assert [row["id"] for row in _rows(client)] == ["t1", "t3"]
    again = _batch(client, ops[4:]).json()["results"]
    assert again[0]["headers"]["Idempotent-Replayed"] == "true"


def test_a_key_repeated_across_a_commit_in_the_middle_of_a_batch_replays(
    make_client: MakeClient,
) -> None:
    # A schema change commits the batch so far; other writers may then record keys, so the
    # keys looked up at the start no longer count as new.
    client = make_client(tables=[], dynamic_schema=True)
    key = {"Idempotency-Key": "same"}
    ops = [
        {"method": "POST", "table": "notes", "body": {"id": "n1"}, "headers": key},
        {"method": "POST", "table": "notes", "body": {"id": "n1"}, "headers": key},
        {"method": "POST", "table": "notes", "body": {"id": "n2", "extra": 1}, "headers": key},
    ]
    results = _batch(client, ops).json()["results"]
    assert [r["status"] for r in results] == [201, 201, 422]
    assert results[1]["headers"]["Idempotent-Replayed"] == "true"


def test_locations_in_a_batch_name_the_host_it_was_sent_to(client: Any) -> None:
    ops = [_op("POST", body={"id": f"l{n}"}) for n in range(3)]
    headers = {**V3, "Host": "sync.example.org:8443"}
    results = _batch(client, ops, headers=headers).json()["results"]
    single = client.post("/tables/todo", json={"id": "l9"}, headers=headers)
    assert single.headers["Location"] == "http://sync.example.org:8443/tables/todo/l9"
    locations = [r["headers"]["Location"] for r in results]
    assert locations == [f"http://sync.example.org:8443/tables/todo/l{n}" for n in range(3)]


def test_a_write_undone_by_its_hook_keeps_no_record_of_its_key(make_client: MakeClient) -> None:
    from tablesync.server._errors import BadRequest

    refusals = ["once"]

    def before(_request: Any, _event: Any) -> None:
        if refusals:
            refusals.pop()
            raise BadRequest("not this time")

    client = make_client([Table("todo", columns=TODO_COLUMNS, before_commit=before)])
    op = _op("POST", body={"id": "r1", "text": "a"}, **{"Idempotency-Key": "r-1"})
    results = _batch(client, [op, op]).json()["results"]
    # The first was rolled back after its response was made: the second is no replay of it.
    assert [r["status"] for r in results] == [400, 201]
    assert "Idempotent-Replayed" not in results[1]["headers"]
    assert [row["id"] for row in _rows(client)] == ["r1"]
    again = _batch(client, [op]).json()["results"]
    assert again[0]["status"] == 201 and again[0]["headers"]["Idempotent-Replayed"] == "true"


def test_a_batch_takes_its_tables_clock_rows_up_front_and_stamps_in_memory(
    make_client: MakeClient,
) -> None:
    tables = [Table(name, columns={"text": "string"}) for name in ("notes", "todo")]
    client = make_client(tables)
    engine = client.app.state.tablesync.schema.engine
    sent = sent_statements(engine)
    ops = [
        {"method": "POST", "table": table, "headers": {}, "body": {"id": f"{table}{n}"}}
        for n in range(5)
        for table in ("todo", "notes")
    ]

    results = _batch(client, ops).json()["results"]

    assert [r["status"] for r in results] == [201] * 10
    clock = [sql.split()[0] for sql in sent if "tablesync_clock" in sql]
    if engine.dialect.name == "postgresql":
        # Both rows locked in one sorted statement: two batches cannot wait for each other.
        # Their write-backs go with the COMMIT, past SQLAlchemy (_engine.commit_deferred).
        assert clock == ["SELECT"]
    else:  # SQLite's write lock is the batch's: each clock is taken at its first stamp
        assert clock == ["UPDATE", "UPDATE", "INSERT", "INSERT"]
    for table in ("todo", "notes"):
        mine = [r for r, op in zip(results, ops, strict=True) if op["table"] == table]
        stamps = [r["body"]["updatedAt"] for r in mine]
        assert stamps == sorted(stamps) and len(set(stamps)) == 5
