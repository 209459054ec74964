"""End to end: two devices edit offline, one conflicts, each policy resolves, all converge."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tablesync import Client, PullFailedError, PushFailedError, SQLiteStore
from tablesync.client import ClientWins, ConflictResolver, ServerWins
from tests._testclient import TestClient


def merge(local: dict[str, Any] | None, server: dict[str, Any]) -> dict[str, Any] | None:
    if local is None:
        return None
    return {**server, "text": f"{server['text']}+{local['text']}", "done": local["done"]}


POLICIES = [
    pytest.param(ServerWins, "from-a", False, id="server-wins"),
    pytest.param(ClientWins, "from-b", True, id="client-wins"),
    pytest.param(lambda: ConflictResolver(merge), "from-a+from-b", True, id="custom-merge"),
]


@pytest.fixture(params=[pytest.param("2.0.0", id="v2"), pytest.param("3.0.0", id="v3")])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[TestClient, str]]:
    from tablesync.server import Table, create_app

    app = create_app(
        f"sqlite:///{tmp_path / 'server.db'}",
        [Table("todoitem", columns={"text": "string", "done": "boolean"}, page_size=2)],
    )
    with TestClient(app, raise_server_exceptions=False) as http:
        yield http, request.param


def snapshot(rows: list[dict[str, Any]]) -> dict[str, tuple[Any, Any, Any]]:
    return {r["id"]: (r["text"], r["done"], r["version"]) for r in rows if not r.get("deleted")}


@pytest.mark.parametrize(("policy", "final_text", "final_done"), POLICIES)
def test_two_devices_converge(
    server: tuple[TestClient, str],
    tmp_path: Path,
    policy: Any,
    final_text: str,
    final_done: bool,
) -> None:
    http, version = server
    with (
        SQLiteStore(tmp_path / "a.db") as store_a,
        SQLiteStore(tmp_path / "b.db") as store_b,
        Client("http://testserver", store=store_a, http=http, api_version=version) as a,
        Client(
            "http://testserver",
            store=store_b,
            http=http,
            api_version=version,
            conflict_handler=policy(),
        ) as b,
    ):
        todo_a, todo_b = a.sync_table("todoitem"), b.sync_table("todoitem")
        shared = todo_a.insert({"id": "shared", "text": "start", "done": False})
        todo_a.insert({"id": "doomed", "text": "delete me", "done": False})
        todo_a.insert({"id": "quiet", "text": "untouched", "done": False})
        a.push()
        todo_b.pull(query_id="all")
        assert todo_b.get("shared")["text"] == "start"

        # Both go offline and edit.
        todo_a.update({**todo_a.get(shared["id"]), "text": "from-a"})
        todo_a.delete("doomed")
        todo_b.update({**todo_b.get("shared"), "text": "from-b", "done": True})
        todo_b.insert({"id": "new-on-b", "text": "hello", "done": False})

        assert a.push().ok
        assert b.push().ok  # the conflict on "shared" is settled by the policy

        # Both pull (device A incrementally, B with a fresh full pull too) and converge.
        todo_a.pull(query_id="all")
        todo_b.pull(query_id="all")
        server_rows = list(a.table("todoitem").query())
        assert snapshot(todo_a.query()) == snapshot(server_rows) == snapshot(todo_b.query())
        assert a.pending_operations == [] and b.pending_operations == []

        final = a.table("todoitem").get("shared")
        assert (final["text"], final["done"]) == (final_text, final_done)
        assert sorted(snapshot(server_rows)) == ["new-on-b", "quiet", "shared"]


def test_without_a_policy_the_conflict_waits_for_the_user(
    server: tuple[TestClient, str], tmp_path: Path
) -> None:
    http, version = server
    with (
        SQLiteStore(tmp_path / "a.db") as store_a,
        SQLiteStore(tmp_path / "b.db") as store_b,
        Client("http://testserver", store=store_a, http=http, api_version=version) as a,
        Client("http://testserver", store=store_b, http=http, api_version=version) as b,
    ):
        todo_a, todo_b = a.sync_table("todoitem"), b.sync_table("todoitem")
        todo_a.insert({"id": "x", "text": "start", "done": False})
        a.push()
        todo_b.pull(query_id="all")
        todo_a.update({**todo_a.get("x"), "text": "from-a"})
        todo_b.update({**todo_b.get("x"), "text": "from-b"})
        a.push()

        with pytest.raises(PullFailedError) as info:
            todo_b.pull(query_id="all")  # the implicit push fails, so the pull does
        failed = info.value.__cause__
        assert isinstance(failed, PushFailedError)
        (error,) = failed.result.errors
        assert error.server_item is not None and error.server_item["text"] == "from-a"
        assert todo_b.get("x")["text"] == "from-b"  # nothing lost while it waits

        error.cancel_and_update(error.server_item)
        todo_b.pull(query_id="all")
        assert todo_b.get("x")["text"] == "from-a" and b.pending_operations == []
