"""Random sequences of local writes, pulls and push steps against a tiny model of §6.2.

The model is written from protocol.md, independently of SyncContext; hypothesis looks for a
sequence where the store and the model disagree on any row, operation kind, version or state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from tablesync import QueueError, StoreError
from tablesync.client._context import SyncContext
from tablesync.client._sqlite_store import SQLiteStore
from tablesync.client._store import OperationKind, OperationState

INS, UPD, DEL = OperationKind.INSERT, OperationKind.UPDATE, OperationKind.DELETE
PENDING, ATTEMPTED, FAILED = OperationState.PENDING, OperationState.ATTEMPTED, OperationState.FAILED
IDS = st.sampled_from(["a", "b", "c"])
VALUES = st.integers(0, 9)


@dataclass
class ModelOp:
    kind: OperationKind
    version: int = 1
    state: OperationState = PENDING


class QueueModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.store = SQLiteStore(":memory:")
        self.context = SyncContext(self.store)
        self.rows: dict[str, dict[str, Any]] = {}
        self.ops: dict[str, ModelOp] = {}

    def teardown(self) -> None:
        self.store.close()

    def expect_refusal(self, error: type[Exception], action: Any) -> None:
        try:
            action()
        except error:
            return
        raise AssertionError(f"expected {error.__name__}")

    @rule(item_id=IDS, value=VALUES)
    def insert(self, item_id: str, value: int) -> None:
        call = lambda: self.context.insert("t", {"id": item_id, "v": value})  # noqa: E731
        if item_id in self.ops:
            self.expect_refusal(QueueError, call)
        elif item_id in self.rows:
            self.expect_refusal(StoreError, call)
        else:
            call()
            self.rows[item_id] = {"id": item_id, "v": value}
            self.ops[item_id] = ModelOp(INS)

    @rule(item_id=IDS, value=VALUES)
    def update(self, item_id: str, value: int) -> None:
        call = lambda: self.context.update("t", {"id": item_id, "v": value})  # noqa: E731
        op = self.ops.get(item_id)
        if op is not None and op.kind is DEL:
            self.expect_refusal(QueueError, call)
            return
        call()
        self.rows[item_id] = {"id": item_id, "v": value}
        if op is None:
            self.ops[item_id] = ModelOp(UPD)
        else:
            op.version += 1

    @rule(item_id=IDS)
    def delete(self, item_id: str) -> None:
        call = lambda: self.context.delete("t", item_id)  # noqa: E731
        op = self.ops.get(item_id)
        if op is not None and (op.kind is DEL or (op.kind is INS and op.state is not PENDING)):
            self.expect_refusal(QueueError, call)
        elif op is None and item_id not in self.rows:
            self.expect_refusal(StoreError, call)
        else:
            call()
            self.rows.pop(item_id, None)
            if op is None:
                self.ops[item_id] = ModelOp(DEL)
            elif op.kind is INS:
                del self.ops[item_id]
            else:
                self.ops[item_id] = ModelOp(DEL, version=op.version + 1)

    @rule(item_id=IDS, value=VALUES, deleted=st.booleans())
    def pull(self, item_id: str, value: int, deleted: bool) -> None:
        server = {"id": item_id, "v": value, "version": "p", "deleted": deleted}
        self.context.apply_pulled_page("t", [server], delta_token=("tok", str(value)))
        if item_id in self.ops:
            return
        if deleted:
            self.rows.pop(item_id, None)
        else:
            self.rows[item_id] = server

    @rule(item_id=IDS, fail=st.booleans())
    def push_one(self, item_id: str, fail: bool) -> None:
        queued = self.context.store.get_operation("t", item_id)
        if queued is None:
            return
        op = self.context.mark_attempted(queued)
        self.ops[item_id].state = ATTEMPTED
        if fail:
            self.context.fail_operation(op, _error(op))
            self.ops[item_id].state = FAILED
            return
        server = {**self.rows.get(item_id, {"id": item_id}), "version": "s"}
        self.context.complete_operation(op, server)
        if self.ops.pop(item_id).kind is not DEL:
            self.rows[item_id] = server

    @invariant()
    def store_matches_model(self) -> None:
        assert {i["id"]: i for i in self.context.query("t")} == self.rows
        ops = {op.item_id: op for op in self.context.pending_operations()}
        assert {k: (o.kind, o.version, o.state) for k, o in ops.items()} == {
            k: (o.kind, o.version, o.state) for k, o in self.ops.items()
        }
        assert len(self.context.errors()) <= len(ops)


def _error(op: Any) -> Any:
    from tablesync.client._store import OperationError

    return OperationError(op.id, op.version, op.kind, op.table, op.item_id, 500, None, None)


QueueModel.TestCase.settings = settings(max_examples=40, stateful_step_count=20, deadline=None)
TestQueueModel = QueueModel.TestCase
