"""Local writes through SyncContext: ids, system properties, snapshots, bulk insert, bad input."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tablesync import QueueError, StoreError
from tablesync.client._context import SyncContext
from tablesync.client._store import OperationKind, OperationState

#: ``insert_many`` checks and normalises a batch at once, with a per-item fallback: every rule
#: of a single insert is tested through both, the item under test behind a good one.
INSERTS = ["insert", "insert_many"]


def insert(context: SyncContext, way: str, item: Any) -> dict[str, Any]:
    if way == "insert":
        return context.insert("todo", item)
    return context.insert_many("todo", [{"id": "good", "text": "fine"}, item])[1]


@pytest.mark.parametrize("way", INSERTS)
def test_insert_generates_a_hex_id_and_queues_an_insert_without_item(
    context: SyncContext, way: str
) -> None:
    item = insert(context, way, {"text": "milk"})
    assert len(item["id"]) == 32 and int(item["id"], 16) >= 0
    op = context.pending_operations()[-1]
    assert (op.table, op.item_id, op.kind, op.state, op.version, op.item) == (
        "todo", item["id"], OperationKind.INSERT, OperationState.PENDING, 1, None,
    )  # fmt: skip
    assert context.get("todo", item["id"]) == item


@pytest.mark.parametrize("way", INSERTS)
def test_insert_keeps_a_given_id_and_version_but_drops_server_stamps(
    context: SyncContext, way: str
) -> None:
    item = insert(
        context, way,
        {"text": "a", "version": "AAE=", "createdAt": "2024", "UpdatedAt": "t", "id": "x1",
         "deleted": False},
    )  # fmt: skip
    assert list(item.items()) == [("id", "x1"), ("text", "a"), ("version", "AAE=")]
    assert context.get("todo", "x1") == item


def test_insert_many_drops_server_stamps_from_a_batch_of_id_first_items(
    context: SyncContext,
) -> None:
    items = context.insert_many(
        "todo", [{"id": "a", "n": 1}, {"id": "b", "UpdatedAt": "t", "DELETED": True, "n": 2}]
    )
    assert items == [{"id": "a", "n": 1}, {"id": "b", "n": 2}]
    assert [context.get("todo", key) for key in "ab"] == items


def test_update_strips_system_properties_except_version(context: SyncContext) -> None:
    context.insert("todo", {"id": "x1", "text": "a"})
    context.update(
        "todo", {"id": "x1", "text": "b", "version": "v9", "updatedAt": "2024-01-01T00:00:00Z"}
    )
    assert context.get("todo", "x1") == {"id": "x1", "text": "b", "version": "v9"}


def test_update_of_an_item_not_stored_locally_upserts_it_and_queues_an_update(
    context: SyncContext,
) -> None:
    context.update("todo", {"id": "remote", "text": "b"})
    (op,) = context.pending_operations()
    assert op.kind is OperationKind.UPDATE
    assert context.get("todo", "remote") == {"id": "remote", "text": "b"}


@pytest.mark.parametrize("way", INSERTS)
def test_values_are_returned_as_they_are_stored(context: SyncContext, way: str) -> None:
    when = dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=dt.UTC)
    item = insert(context, way, {"due": when, "tags": ("a", "b"), "n": 1.5})
    assert item["due"] == "2024-05-06T07:08:09.123Z"
    assert item["tags"] == ["a", "b"]
    assert context.get("todo", item["id"]) == item


def test_delete_removes_the_row_and_keeps_a_snapshot(context: SyncContext) -> None:
    context.apply_pulled_page(
        "todo", [{"id": "s1", "text": "x", "version": "v1", "updatedAt": "2024-01-01T00:00:00.000Z",
                  "createdAt": "2023-01-01T00:00:00.000Z", "deleted": False}],
    )  # fmt: skip
    context.delete("todo", "s1")
    assert context.get("todo", "s1") is None
    (op,) = context.pending_operations()
    assert op.kind is OperationKind.DELETE
    assert op.item == {"id": "s1", "text": "x", "version": "v1"}
    assert context.item_for_push(op) == op.item


def test_delete_of_an_unknown_item_is_refused(context: SyncContext) -> None:
    with pytest.raises(StoreError, match="no item 'ghost'"):
        context.delete("todo", "ghost")
    assert context.pending_count() == 0


BAD_IDS = [
    pytest.param("", id="empty"),
    pytest.param("a/b", id="slash"),
    pytest.param("a?b", id="question-mark"),
    pytest.param("a\x00b", id="control-char"),
    pytest.param("..", id="dot-dot"),
    pytest.param("x" * 256, id="too-long"),
    pytest.param(42, id="integer"),
]


@pytest.mark.parametrize("bad_id", BAD_IDS)
def test_bad_ids_are_refused_and_nothing_is_written(context: SyncContext, bad_id: Any) -> None:
    with pytest.raises(StoreError, match="invalid item id"):
        context.insert("todo", {"id": bad_id, "text": "x"})
    with pytest.raises(StoreError, match="invalid item id"):
        context.update("todo", {"id": bad_id, "text": "x"})
    with pytest.raises(StoreError, match="invalid item id"):
        context.delete("todo", bad_id)
    with pytest.raises(StoreError, match="invalid item id"):
        insert(context, "insert_many", {"id": bad_id, "text": "x"})
    assert context.pending_count() == 0
    assert context.query("todo") == []


@pytest.mark.parametrize(
    ("item", "message"),
    [
        pytest.param(["not", "a", "dict"], "must be a mapping", id="list"),
        pytest.param("text", "must be a mapping", id="string"),
        pytest.param({"text": object()}, "cannot be stored as JSON", id="unserialisable"),
        pytest.param({1: "non-string key"}, "cannot be stored as JSON", id="int-key"),
        # With a valid id first, these pass insert_many's batch-wide checks until JSON.
        pytest.param(
            {"id": "x", "at": object()}, "cannot be stored as JSON", id="id-unserialisable"
        ),
        pytest.param({"id": "x", 1: "v"}, "cannot be stored as JSON", id="id-int-key"),
    ],
)
@pytest.mark.parametrize("way", INSERTS)
def test_bad_items_get_a_clear_error(
    context: SyncContext, item: Any, message: str, way: str
) -> None:
    with pytest.raises(StoreError, match=message):
        insert(context, way, item)
    assert context.pending_count() == 0
    assert context.query("todo") == []


def test_update_without_an_id_is_refused(context: SyncContext) -> None:
    with pytest.raises(StoreError, match="has no 'id'"):
        context.update("todo", {"text": "x"})


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("", id="empty"),
        pytest.param("a b", id="space"),
        pytest.param('x"; DROP TABLE __operations; --', id="injection"),
        pytest.param("-x", id="leading-dash"),
        pytest.param("t" * 129, id="too-long"),
        pytest.param("ta\u0301ble", id="non-ascii"),
    ],
)
def test_bad_table_names_are_refused(context: SyncContext, name: str) -> None:
    with pytest.raises(StoreError, match="invalid table name"):
        context.insert(name, {"text": "x"})
    assert context.pending_count() == 0


def test_table_names_are_case_insensitive(context: SyncContext) -> None:
    item = context.insert("TodoItem", {"text": "x"})
    assert context.get("todoitem", item["id"]) == item
    assert context.pending_operations("TODOITEM")[0].table == "todoitem"
    with pytest.raises(QueueError):
        context.insert("todoITEM", item)


def test_odd_but_valid_table_names_are_quoted(context: SyncContext) -> None:
    for name in ("my-table.v2", "_private", "123"):
        item = context.insert(name, {"text": name})
        assert context.query(name) == [item]
    assert context.store.table_names() == ["123", "_private", "my-table.v2"]


def test_insert_many_writes_rows_and_queue_in_order(context: SyncContext) -> None:
    items = context.insert_many("todo", [{"n": n} for n in range(50)] + [{"id": "mine", "n": 50}])
    ops = context.pending_operations("todo")
    assert [op.item_id for op in ops] == [item["id"] for item in items]
    assert [op.sequence for op in ops] == sorted({op.sequence for op in ops})
    assert all(op.kind is OperationKind.INSERT and op.version == 1 for op in ops)
    assert context.count("todo") == 51
    assert context.get("todo", "mine") == {"id": "mine", "n": 50}
    assert len({op.id for op in ops}) == 51


@pytest.mark.parametrize(
    "clash",
    [
        pytest.param("row", id="existing-row"),
        pytest.param("queued", id="queued-operation"),
        pytest.param("twice", id="same-id-twice"),
    ],
)
def test_insert_many_is_all_or_nothing(context: SyncContext, clash: str) -> None:
    context.apply_pulled_page("todo", [{"id": "row", "n": 0}])
    context.update("todo", {"id": "queued", "n": 0})
    before = (context.pending_operations(), context.query("todo"))
    batch = [{"id": "new1"}, {"id": clash}, {"id": "new2"}]
    if clash == "twice":
        batch.append({"id": "twice"})
    with pytest.raises(StoreError, match=f"'{clash}'"):
        context.insert_many("todo", batch)
    assert (context.pending_operations(), context.query("todo")) == before


def test_each_local_write_is_atomic_when_the_queue_write_fails(context: SyncContext) -> None:
    class Boom(Exception):
        pass

    store = context.store
    original = store.add_operation

    def failing(*args: Any, **kwargs: Any) -> Any:
        raise Boom

    store.add_operation = failing  # type: ignore[method-assign]
    try:
        with pytest.raises(Boom):
            context.insert("todo", {"id": "x", "text": "a"})
    finally:
        store.add_operation = original  # type: ignore[method-assign]
    assert context.get("todo", "x") is None
    assert context.pending_count() == 0


def test_insert_many_of_nothing_is_a_no_op(context: SyncContext) -> None:
    assert context.insert_many("todo", []) == []
    assert context.pending_count() == 0
