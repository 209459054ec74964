"""SQLiteStore / EncryptedSQLiteStore mechanics: transactions, migrations, lifecycle, threads."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from tablesync import StoreError, UsageError
from tablesync.client._context import SyncContext
from tablesync.client._migrations import STORE_MIGRATIONS, Migrations
from tablesync.client._sqlite_store import SQLiteStore
from tablesync.client._store import BulkLocalStore, LocalStore, OperationKind, OperationState

from .conftest import StoreFactory


class Stop(BaseException):
    """Not an Exception: rollbacks must happen for these too."""


def ids(store: SQLiteStore) -> list[str]:
    return [item["id"] for item in store.query_items("t")]


def test_both_stores_implement_the_protocols(store: SQLiteStore) -> None:
    assert isinstance(store, LocalStore)
    assert isinstance(store, BulkLocalStore)


def test_atomic_commits(store: SQLiteStore) -> None:
    with store.atomic():
        store.upsert_items("t", [{"id": "a"}])
        store.set_config("k", "v")
    assert (ids(store), store.get_config("k")) == (["a"], "v")


@pytest.mark.parametrize(
    "error", [pytest.param(ValueError, id="exception"), pytest.param(Stop, id="base-exception")]
)
def test_atomic_rolls_back_on_any_exception(store: SQLiteStore, error: type[BaseException]) -> None:
    with pytest.raises(error), store.atomic():
        store.upsert_items("t", [{"id": "a"}])
        store.add_operation("t", "a", 0, None)  # type: ignore[arg-type]
        raise error
    assert ids(store) == []
    assert store.count_operations() == 0
    # The table created in the rolled-back transaction is gone, and can be created again.
    store.upsert_items("t", [{"id": "b"}])
    assert ids(store) == ["b"]


def test_nested_atomic_rolls_back_only_the_inner_block(store: SQLiteStore) -> None:
    with store.atomic():
        store.upsert_items("t", [{"id": "outer"}])
        with pytest.raises(ValueError), store.atomic():
            store.upsert_items("t", [{"id": "inner"}])
            with store.atomic():
                store.upsert_items("t", [{"id": "innermost"}])
            raise ValueError
        store.upsert_items("t", [{"id": "after"}])
    assert ids(store) == ["after", "outer"]


def test_outer_failure_undoes_committed_inner_blocks(store: SQLiteStore) -> None:
    with pytest.raises(ValueError), store.atomic():
        with store.atomic():
            store.upsert_items("t", [{"id": "inner"}])
        raise ValueError
    assert ids(store) == []


def test_a_failed_bulk_write_inside_a_transaction_leaves_no_partial_rows(
    store: SQLiteStore,
) -> None:
    store.upsert_items("t", [{"id": "b"}])
    with store.atomic():
        with pytest.raises(StoreError):
            store.insert_items("t", [{"id": "a"}, {"id": "b"}, {"id": "c"}])
        store.upsert_items("t", [{"id": "d"}])
    assert ids(store) == ["b", "d"]


def test_bulk_operations_keep_their_order_kinds_and_snapshots(store: SQLiteStore) -> None:
    store.add_operation("t", "first", OperationKind.UPDATE, None)
    mixed = [
        ("d", OperationKind.DELETE, {"id": "d", "n": 1.5, "tags": ["x"]}),
        ("a", OperationKind.INSERT, None),
        ("c", OperationKind.UPDATE, None),
    ]
    uniform = [(f"u{n}", OperationKind.INSERT, None) for n in range(300, 0, -1)]
    store.add_operations("t", mixed)
    store.add_operations("t", uniform)
    ops = store.operations(tables=["t"])
    assert [(op.item_id, op.kind, op.item) for op in ops] == [
        ("first", OperationKind.UPDATE, None),
        *mixed,
        *uniform,
    ]
    assert [op.sequence for op in ops] == list(range(1, len(ops) + 1))
    assert {(op.state, op.version) for op in ops} == {(OperationState.PENDING, 1)}
    op_ids = [op.id for op in ops]
    assert len(set(op_ids)) == len(op_ids)
    assert all(len(op_id) == 32 and int(op_id, 16) >= 0 for op_id in op_ids)


def test_bulk_operations_are_all_or_nothing(store: SQLiteStore) -> None:
    store.add_operation("t", "taken", OperationKind.INSERT, None)
    with pytest.raises(StoreError):
        store.add_operations("t", [("new", OperationKind.INSERT, None),
                                   ("taken", OperationKind.INSERT, None)])  # fmt: skip
    assert [op.item_id for op in store.operations()] == ["taken"]


def test_items_need_string_ids(store: SQLiteStore) -> None:
    with pytest.raises(StoreError, match="string 'id'"):
        store.upsert_items("t", [{"id": 5}])
    for missing in ({"id": ""}, {"n": 1}):
        with pytest.raises(StoreError, match="string 'id'"):
            store.insert_items("t", [{"id": "fine"}, missing])
    assert ids(store) == []


def test_uses_wal_and_normal_synchronous(store: SQLiteStore) -> None:
    assert store._query("PRAGMA journal_mode")[0][0] == "wal"
    assert store._query("PRAGMA synchronous")[0][0] == 1  # NORMAL


def test_migrations_are_recorded_and_not_rerun(store_factory: StoreFactory, tmp_path: Path) -> None:
    first = store_factory(tmp_path / "m.db")
    assert first.migrations() == list(STORE_MIGRATIONS.names)
    SyncContext(first).insert("t", {"id": "kept"})
    first.close()
    again = store_factory(tmp_path / "m.db")
    assert again.migrations() == list(STORE_MIGRATIONS.names)
    assert again.get_item("t", "kept") == {"id": "kept"}
    assert again.count_operations() == 1
    assert again.table_names() == ["t"]


def test_a_store_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "newer.db"
    SQLiteStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO __migrations VALUES ('9999_future', '2099-01-01')")
    conn.close()
    with pytest.raises(StoreError, match=r"newer tablesync.*9999_future"):
        SQLiteStore(path)


def test_a_file_that_is_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot open"):
        SQLiteStore(path)


def test_a_missing_directory_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open"):
        SQLiteStore(tmp_path / "no" / "such" / "dir.db")


def test_migration_registry_rejects_duplicates_and_runs_in_order() -> None:
    registry = Migrations()
    registry("0001_a")(lambda cursor: None)
    registry("0002_b")(lambda cursor: None)
    with pytest.raises(ValueError, match="duplicate"):
        registry("0001_a")(lambda cursor: None)
    assert [m.name for m in registry.pending({"0001_a"})] == ["0002_b"]


def test_every_call_on_a_closed_store_is_a_usage_error(store: SQLiteStore) -> None:
    context = SyncContext(store)
    store.close()
    store.close()  # harmless twice
    assert store.closed
    calls = [
        lambda: store.get_item("t", "a"),
        lambda: store.query_items("t"),
        lambda: store.upsert_items("t", [{"id": "a"}]),
        lambda: store.count_operations(),
        lambda: store.get_config("k"),
        lambda: store.atomic().__enter__(),
        lambda: context.insert("t", {"text": "x"}),
        lambda: context.pending_operations(),
    ]
    for call in calls:
        with pytest.raises(UsageError, match="closed"):
            call()


def test_close_inside_a_transaction_is_refused(store: SQLiteStore) -> None:
    with store.atomic(), pytest.raises(UsageError):
        store.close()
    assert not store.closed


def test_store_is_a_context_manager(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "cm.db") as store:
        store.set_config("k", "v")
    assert store.closed


def test_memory_store_works(memory_store: SQLiteStore) -> None:
    context = SyncContext(memory_store)
    item = context.insert("t", {"x": 1})
    assert context.get("t", item["id"]) == item


def test_threads_share_one_store_safely(store: SQLiteStore) -> None:
    context = SyncContext(store)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(50):
                item = context.insert("t", {"id": f"{n}-{i}"})
                context.update("t", {**item, "done": True})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert context.pending_count() == 200
    assert {op.version for op in context.pending_operations()} == {2}
    assert store.count_items("t") == 200


def test_a_transaction_blocks_other_threads_until_it_ends(store: SQLiteStore) -> None:
    seen: list[int] = []
    started = threading.Event()

    def reader() -> None:
        started.set()
        seen.append(store.count_items("t"))

    with store.atomic():
        store.upsert_items("t", [{"id": "a"}])
        thread = threading.Thread(target=reader)
        thread.start()
        started.wait(5)
        thread.join(0.2)
        assert thread.is_alive()  # waiting for the lock, not reading half a transaction
        store.upsert_items("t", [{"id": "b"}])
    thread.join(5)
    assert seen == [2]


def test_a_write_locked_by_another_connection_fails_clearly_after_the_timeout(
    tmp_path: Path,
) -> None:
    path = tmp_path / "shared.db"
    with SQLiteStore(path) as holder, SQLiteStore(path, timeout=0.2) as waiter:
        with holder.atomic():
            holder.upsert_items("t", [{"id": "a"}])
            with pytest.raises(StoreError, match="locked"):
                SyncContext(waiter).insert("t", {"id": "b"})
        # Once the lock is released, the waiter's store works normally.
        SyncContext(waiter).insert("t", {"id": "b"})
        assert sorted(ids(waiter)) == ["a", "b"]
