"""Applying pulled pages (protocol.md §8.5), delta tokens, and purge (§9)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tablesync import QueueError, StoreError, UsageError
from tablesync.client._context import PageApplied, SyncContext, delta_token_key
from tablesync.client._sqlite_store import SQLiteStore
from tablesync.client._store import OperationError, OperationKind
from tablesync.odata import Query


def row(item_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": item_id, "version": "v1", "updatedAt": "2024-01-01T00:00:00.000Z",
            "deleted": False, **fields}  # fmt: skip


TOKEN = ("deltaToken|movies|all", "2024-01-01T00:00:00.000Z")


def test_a_page_upserts_and_deletes_and_saves_the_token(context: SyncContext) -> None:
    context.apply_pulled_page("movies", [row("1", t="old"), row("2"), row("3")])
    result = context.apply_pulled_page(
        "movies",
        [row("1", t="new"), row("2", deleted=True), row("4"), row("never-seen", deleted=True)],
        delta_token=TOKEN,
    )
    assert result == PageApplied(upserted=2, deleted=2, skipped=0)
    assert sorted(item["id"] for item in context.query("movies")) == ["1", "3", "4"]
    assert context.get("movies", "1") == row("1", t="new")  # server data kept whole
    assert context.get_delta_token("Movies", "all") == TOKEN[1]


def test_items_with_pending_operations_are_skipped(context: SyncContext) -> None:
    context.insert("movies", {"id": "ins", "t": "mine"})
    context.apply_pulled_page("movies", [row("upd"), row("del")])
    context.update("movies", {"id": "upd", "t": "mine"})
    context.delete("movies", "del")
    result = context.apply_pulled_page(
        "movies", [row("ins", t="theirs"), row("upd", t="theirs"), row("del"), row("other")]
    )
    assert result == PageApplied(upserted=1, deleted=0, skipped=3)
    assert context.get("movies", "ins") == {"id": "ins", "t": "mine"}
    assert context.get("movies", "upd")["t"] == "mine"  # type: ignore[index]
    assert context.get("movies", "del") is None
    assert context.pending_count() == 3


def test_pending_operations_of_other_tables_do_not_skip(context: SyncContext) -> None:
    context.insert("other", {"id": "1"})
    assert context.apply_pulled_page("movies", [row("1")]).upserted == 1


@pytest.mark.parametrize(
    "junk",
    [
        pytest.param("a string", id="string"),
        pytest.param(None, id="null"),
        pytest.param({"text": "no id"}, id="no-id"),
        pytest.param({"id": 7}, id="integer-id"),
        pytest.param({"id": "a/b"}, id="invalid-id"),
    ],
)
def test_non_items_in_a_page_are_skipped(context: SyncContext, junk: Any) -> None:
    result = context.apply_pulled_page("movies", [junk, row("ok")])  # type: ignore[list-item]
    assert result == PageApplied(upserted=1, deleted=0, skipped=1)
    assert [item["id"] for item in context.query("movies")] == ["ok"]


def test_a_failing_page_leaves_rows_and_token_untouched(context: SyncContext) -> None:
    context.apply_pulled_page("movies", [row("1")], delta_token=(TOKEN[0], "before"))
    store = context.store
    original = store.set_config

    def failing(key: str, value: str) -> None:
        raise RuntimeError("disk full")

    store.set_config = failing  # type: ignore[method-assign]
    try:
        with pytest.raises(RuntimeError):
            context.apply_pulled_page(
                "movies", [row("2"), row("1", deleted=True)], delta_token=TOKEN
            )
    finally:
        store.set_config = original  # type: ignore[method-assign]
    assert [item["id"] for item in context.query("movies")] == ["1"]
    assert context.get_delta_token("movies", "all") == "before"


def test_a_page_of_1000_items_is_applied_whole(context: SyncContext) -> None:
    # Its speed is the benchmark's; that it is one transaction, test_performance's.
    page = [row(f"id-{n:04d}", title="x" * 40, n=n) for n in range(1000)]
    assert context.apply_pulled_page("movies", page, delta_token=TOKEN).upserted == 1000
    assert context.count("movies") == 1000


def test_delta_tokens_are_per_table_and_query(context: SyncContext) -> None:
    context.set_delta_token("movies", "all", "t1")
    context.set_delta_token("movies", "recent", "t2")
    context.set_delta_token("todo", "all", "t3")
    assert [context.get_delta_token(t, q) for t, q in
            [("movies", "all"), ("MOVIES", "recent"), ("todo", "all"), ("todo", "x")]] == [
        "t1", "t2", "t3", None]  # fmt: skip
    assert context.store.get_config("deltaToken|movies|all") == "t1"


@pytest.mark.parametrize(
    "query_id",
    [
        pytest.param("", id="empty"),
        pytest.param("a|b", id="pipe"),
        pytest.param("q" * 255, id="too-long"),
    ],
)
def test_bad_query_ids_are_refused(context: SyncContext, query_id: str) -> None:
    with pytest.raises(UsageError, match="query_id"):
        delta_token_key("movies", query_id)
    with pytest.raises(UsageError):
        context.get_delta_token("movies", query_id)
    with pytest.raises(UsageError):
        context.purge("movies", query_id=query_id)


# -- purge -------------------------------------------------------------------------------------
def filled(context: SyncContext) -> None:
    context.apply_pulled_page("movies", [row(str(n), year=2000 + n) for n in range(5)])
    context.set_delta_token("movies", "all", "t1")
    context.set_delta_token("movies", "other", "t2")


def test_purge_deletes_every_row_and_resets_only_its_token(context: SyncContext) -> None:
    filled(context)
    assert context.purge("movies", query_id="all") == 5
    assert context.query("movies") == []
    assert context.get_delta_token("movies", "all") is None
    assert context.get_delta_token("movies", "other") == "t2"


def test_purge_without_query_id_keeps_tokens(context: SyncContext) -> None:
    filled(context)
    context.purge("movies")
    assert context.get_delta_token("movies", "all") == "t1"


def test_purge_of_a_table_never_stored_is_zero(context: SyncContext) -> None:
    assert context.purge("nothing", query_id="all") == 0


def test_purge_with_pending_operations_is_refused_without_force(context: SyncContext) -> None:
    filled(context)
    context.update("movies", {"id": "1", "year": 1999})
    with pytest.raises(QueueError, match="cannot be purged because it has pending operations"):
        context.purge("movies", query_id="all")
    assert context.count("movies") == 5
    assert context.pending_count() == 1
    assert context.get_delta_token("movies", "all") == "t1"


def test_forced_purge_drops_the_table_operations_and_errors_only(context: SyncContext) -> None:
    filled(context)
    context.update("movies", {"id": "1", "year": 1999})
    context.insert("todo", {"id": "keep"})
    op = context.pending_operations("movies")[0]
    context.fail_operation(
        op, OperationError(op.id, op.version, op.kind, "movies", "1", 500, None, None)
    )
    assert context.purge("movies", query_id="all", force=True) == 5
    assert [op.table for op in context.pending_operations()] == ["todo"]
    assert context.errors() == []
    assert context.get("todo", "keep") == {"id": "keep"}


def test_forced_filtered_purge_with_pending_operations_is_refused(context: SyncContext) -> None:
    filled(context)
    context.delete("movies", "1")
    with pytest.raises(QueueError, match="filtered purge"):
        context.purge("movies", Query("year gt 2002"), force=True)
    assert context.count("movies") == 4
    assert context.pending_operations()[0].kind is OperationKind.DELETE


def test_a_page_repeating_an_id_keeps_its_last_copy(context: SyncContext) -> None:
    context.apply_pulled_page("movies", [row("1")])
    result = context.apply_pulled_page(
        "movies", [row("1", t="a"), row("1", deleted=True), row("2", t="b"), row("2", t="c")]
    )
    assert result == PageApplied(upserted=1, deleted=1, skipped=2)
    assert context.get("movies", "1") is None
    assert context.get("movies", "2") == row("2", t="c")


# -- pages written from their JSON text (JsonPageStore) ----------------------------------------


def as_source(body: Any, path: str = "$.items") -> tuple[bytes, str]:
    return orjson.dumps(body), path


def stored(context: SyncContext, table: str) -> list[dict[str, Any]]:
    return context.store.query_items(table)


def written_from_text(store: Any, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many rows each ``upsert_json_items`` call of ``store`` wrote (the path was taken)."""
    counts: list[int] = []
    write = store.upsert_json_items

    def recording(*args: Any) -> int:
        counts.append(write(*args))
        return counts[-1]

    monkeypatch.setattr(store, "upsert_json_items", recording)
    return counts


def tricky_page() -> list[dict[str, Any]]:
    """Every case a page can hold: tombstones, an id twice each way, a pending item, odd stamps."""
    return [
        row("keep", t='ünïcode \u2028 "quoted"', n=1.5, nested={"id": "x", "list": [1, None]}),
        row("twice-kept", deleted=True),
        row("twice-kept", t="last copy"),
        row("twice-gone", t="first copy"),
        row("twice-gone", deleted=True),
        row("gone", deleted=True),
        row("mine", t="server's"),
        row("odd-stamp", updatedAt="2024-01-01T00:00:00Z"),
        row("flag-one", deleted=1),  # not ``true``: kept, as the decoded path keeps it
    ]


@pytest.mark.parametrize("with_text", [False, True], ids=["items", "text"])
def test_a_page_from_its_text_is_stored_as_from_its_items(
    context: SyncContext, with_text: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    context.apply_pulled_page("movies", [row("gone"), row("twice-gone"), row("mine")])
    counts = written_from_text(context.store, monkeypatch)
    context.update("movies", {"id": "mine", "t": "local"})
    page = tricky_page()
    source = as_source({"items": page, "count": None}) if with_text else None
    result = context.apply_pulled_page("movies", page, delta_token=TOKEN, source=source)
    assert result == PageApplied(upserted=4, deleted=2, skipped=3)
    by_id = {item["id"]: item for item in stored(context, "movies")}
    assert sorted(by_id) == ["flag-one", "keep", "mine", "odd-stamp", "twice-kept"]
    assert by_id["keep"] == page[0] and by_id["odd-stamp"] == page[7]
    assert by_id["twice-kept"]["t"] == "last copy"
    assert by_id["mine"]["t"] == "local"  # pending: the local change wins
    assert context.store.get_config(TOKEN[0]) == TOKEN[1]
    # Both copies of twice-kept in order (its first, deleted copy is not left out: the last
    # copy overwrites it), none of twice-gone, gone and mine (pending).
    assert counts == ([5] if with_text else [])


def test_a_text_that_does_not_hold_the_items_falls_back_to_them(
    context: SyncContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    counts = written_from_text(context.store, monkeypatch)
    page = [row("1", t="decoded"), row("2")]
    wrong = as_source({"items": [row("1", t="text")]})  # fewer entries than the decoder read
    assert context.apply_pulled_page("movies", page, source=wrong).upserted == 2
    assert [item.get("t") for item in stored(context, "movies")] == ["decoded", None]
    unreadable = (b"{not json", "$.items")
    assert context.apply_pulled_page("movies", [row("3")], source=unreadable).upserted == 1
    assert context.store.count_items("movies") == 3
    assert counts == [1]  # the first text was written, then undone; the second unreadable


def test_a_bare_array_page_is_written_from_its_text(context: SyncContext) -> None:
    page = [row("1"), row("2", t="two")]
    assert context.apply_pulled_page("m", page, source=as_source(page, "$")).upserted == 2
    assert stored(context, "m") == page


def test_the_store_writes_the_objects_of_a_json_array_as_they_are(store: SQLiteStore) -> None:
    text = '{"items": [{"id": "a", "n": 1.50}, {"id": "b"}, {"id": "a", "n": 2}], "x": 1}'
    assert store.upsert_json_items("t", text, "$.items") == 3
    assert store.query_items("t") == [{"id": "a", "n": 2}, {"id": "b"}]
    assert store.upsert_json_items("t", '[{"id": "c"}, {"id": "b", "v": 1}]', "$", ["b"]) == 1
    assert store.query_items("t") == [{"id": "a", "n": 2}, {"id": "b"}, {"id": "c"}]
    with pytest.raises(StoreError):
        store.upsert_json_items("t", '[{"id": "d"}', "$")  # malformed: nothing written
    assert store.count_items("t") == 3
