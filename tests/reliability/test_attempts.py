"""The store side of lost attempts: what a push sent is kept until the server's answer is known."""

from __future__ import annotations

from pathlib import Path

import pytest

from tablesync import SQLiteStore
from tablesync.client._context import SyncContext


@pytest.fixture
def context(tmp_path: Path) -> SyncContext:
    return SyncContext(SQLiteStore(tmp_path / "c.db"))


def _first(context: SyncContext):  # type: ignore[no-untyped-def]
    op = context.next_operation(0)
    assert op is not None
    return op


def test_attempts_accumulate_until_the_operation_completes(context: SyncContext) -> None:
    item = context.insert("t", {"id": "a", "n": 1})
    op = context.mark_attempted(_first(context), item)
    context.update("t", {**item, "n": 2})
    op = context.mark_attempted(_first(context), {**item, "n": 2})
    assert [sent["n"] for sent in context.earlier_attempts(op)] == [1, 2]
    context.complete_operation(_first(context), {**item, "n": 2, "version": "v"})
    assert context.earlier_attempts(op) == []
    assert context.pending_count() == 0


def test_only_the_last_attempts_are_kept(context: SyncContext) -> None:
    item = context.insert("t", {"id": "a", "n": 0})
    for n in range(10):
        op = context.mark_attempted(_first(context), {**item, "n": n})
    assert [sent["n"] for sent in context.earlier_attempts(op)] == [6, 7, 8, 9]


def test_a_delete_replacing_an_attempted_update_inherits_its_attempts(
    context: SyncContext,
) -> None:
    context.store.upsert_items("t", [{"id": "a", "n": 1, "version": "v1"}])
    context.update("t", {"id": "a", "n": 2, "version": "v1"})
    update = context.mark_attempted(_first(context), {"id": "a", "n": 2, "version": "v1"})
    context.delete("t", "a")
    delete = _first(context)
    assert delete.id != update.id
    assert context.earlier_attempts(delete) == [{"id": "a", "n": 2, "version": "v1"}]
    assert context.earlier_attempts(update) == []


def test_a_forced_purge_forgets_the_attempts(context: SyncContext) -> None:
    item = context.insert("t", {"id": "a", "n": 1})
    op = context.mark_attempted(_first(context), item)
    context.purge("t", force=True)
    assert context.earlier_attempts(op) == []
