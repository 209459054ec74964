"""SyncContext over a store that offers only the LocalStore protocol (no bulk methods)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tablesync import QueueError, StoreError
from tablesync.client._context import SyncContext
from tablesync.client._sqlite_store import SQLiteStore
from tablesync.client._store import BulkLocalStore, LocalStore

PROTOCOL_METHODS = {
    name
    for name in dir(LocalStore)
    if not name.startswith("_") and callable(getattr(LocalStore, name))
}


class MinimalStore:
    """Exposes exactly the LocalStore methods of a real store, nothing more."""

    def __init__(self, inner: SQLiteStore) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        if name not in PROTOCOL_METHODS:
            raise AttributeError(name)
        return getattr(self._inner, name)


@pytest.fixture
def minimal() -> Iterator[SyncContext]:
    inner = SQLiteStore(":memory:")
    store = MinimalStore(inner)
    yield SyncContext(store)  # type: ignore[arg-type]
    inner.close()


def test_the_minimal_store_is_a_local_store_but_not_a_bulk_one(minimal: SyncContext) -> None:
    assert isinstance(minimal.store, LocalStore)
    assert not isinstance(minimal.store, BulkLocalStore)


def test_insert_many_falls_back_to_single_writes(minimal: SyncContext) -> None:
    items = minimal.insert_many("t", [{"n": n} for n in range(20)])
    assert [op.item_id for op in minimal.pending_operations()] == [i["id"] for i in items]
    assert minimal.count("t") == 20


@pytest.mark.parametrize(
    ("clash", "error"),
    [
        pytest.param("row", StoreError, id="existing-row"),
        pytest.param("queued", QueueError, id="queued"),
    ],
)
def test_the_fallback_is_all_or_nothing_too(
    minimal: SyncContext, clash: str, error: type[Exception]
) -> None:
    minimal.apply_pulled_page("t", [{"id": "row"}])
    minimal.update("t", {"id": "queued"})
    before = (minimal.pending_operations(), minimal.query("t"))
    with pytest.raises(error, match=clash):
        minimal.insert_many("t", [{"id": "new"}, {"id": clash}])
    assert (minimal.pending_operations(), minimal.query("t")) == before


def test_the_whole_local_cycle_runs_on_the_protocol_alone(minimal: SyncContext) -> None:
    item = minimal.insert("t", {"text": "a"})
    minimal.update("t", {**item, "text": "b"})
    op = minimal.mark_attempted(minimal.next_operation(0))  # type: ignore[arg-type]
    minimal.complete_operation(op, {**item, "text": "b", "version": "v1"})
    minimal.delete("t", item["id"])
    assert [op.kind.name for op in minimal.pending_operations()] == ["DELETE"]
    assert minimal.purge("t", force=True, query_id="all") == 0
    assert minimal.pending_count() == 0
