"""The work behind each route, done synchronously in ONE worker-thread hop per request.

Handlers stay async and cheap (parse headers, read the body); everything that touches the
database runs here on a sync SQLAlchemy engine, inside as few transactions as possible: one
for a read or a write, plus a short schema transaction when a dynamic table grows a column.
The writes of a ``$batch`` share one transaction (:class:`WriteBatch`), each in a savepoint.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeGuard

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, RootTransaction, Transaction
from sqlalchemy.sql.elements import ColumnElement
from starlette.requests import Request

from ..protocol import ApiVersion, dumps, loads, new_id
from . import _repository as repo
from ._access import Access
from ._auth import Authenticator, principal_of
from ._clock import hold_clocks, mark_arrival, next_stamp, now_ms, store_clocks
from ._config import WriteEvent, WriteHook, is_valid_table_name
from ._engine import can_defer, commit_deferred, defer, execute_on_driver, settle_deferred
from ._errors import (
    BadRequest,
    HTTPError,
    NotFound,
    ServiceUnavailable,
    UnprocessableEntity,
    database_message,
    logger,
)
from ._idempotency import BatchKeys, Expiry, SingleKeys, StoredResponse
from ._items import ItemInput, parse_item, render, stamp_datetime
from ._replies import Reply, item_reply, missing, stored_reply
from ._schema import Schema, TableState

Action = Callable[[Connection, TableState], "tuple[Reply, bool]"]
IdempotencyKeys = type[SingleKeys] | BatchKeys
Operation = Literal["insert", "update", "delete", "undelete"]
_PUBLIC = Access.public()


@dataclass(frozen=True, slots=True)
class Settings:
    """App-wide behaviour.

    Attributes:
        strict_clock: stamp with the per-table clock (``False`` only for the comparison).
        max_body_bytes: the largest request body, after decompression.
        idempotency_ttl_ms: how long ``Idempotency-Key`` responses are kept.
        auth: who the caller is (``None``: every caller is anonymous).
        default_access: the access of tables configured without one.
        body_timeout_s: the longest a client may take to send a request body (then 408).
    """

    strict_clock: bool = True
    max_body_bytes: int = 1 << 20
    idempotency_ttl_ms: int = 24 * 3600 * 1000
    auth: Authenticator | None = None
    default_access: Access = _PUBLIC
    body_timeout_s: float = 30.0


@dataclass(frozen=True, slots=True)
class WriteRequest:
    """What a write needs from its request, gathered on the event loop.

    Attributes:
        request: the Starlette request (for views, hooks and URLs).
        key: the table key (lower-cased name).
        version: the protocol version.
        item_id: the id from the URL (``None`` for inserts).
        body: the decoded JSON body, or ``None``.
        pre: the preconditions.
        include_deleted: whether tombstones may be written (``__includedeleted``).
        idempotency_key: the ``Idempotency-Key``, or ``None``.
        arrival_ms: when the write arrived, before it waited for any lock (the naive clock's
            stamp, see ``_clock.next_stamp``).
    """

    request: Request
    key: str
    version: ApiVersion
    item_id: str | None
    body: Any
    pre: repo.Preconditions
    include_deleted: bool
    idempotency_key: str | None
    arrival_ms: int = field(default_factory=now_ms)


class WriteBatch:
    """The one transaction the writes of a ``$batch`` share; each write in a savepoint of it.

    A write that fails (an error, a conflict, a precondition) rolls back its own savepoint
    only, so every write's outcome is the one it would have had alone. ``before_commit``
    hooks run inside each write's savepoint; ``after_commit`` hooks wait for :meth:`commit`
    and then run in order. The transaction is opened by the first write and committed by
    :meth:`commit`; :meth:`close` rolls back whatever was not committed (a crash does too).
    A write that must change the schema (a dynamic table, or a new column) first commits the
    writes before it: schema changes run in their own transaction, on another connection.
    """

    def __init__(self, engine: Engine, tables: Iterable[str] = ()) -> None:
        self._engine = engine
        #: The tables whose clock rows the batch locks up front, in one sorted statement
        #: (``hold_clocks``): the tables its writes will stamp. Two batches then cannot wait
        #: for each other's clock rows in opposite orders (a deadlock on PostgreSQL).
        self._hold = tuple(sorted(set(tables)))
        self._conn: Connection | None = None
        self._tx: RootTransaction | None = None
        self._after: list[Callable[[], None]] = []
        #: The batch's idempotency keys (valid for its current transaction).
        self.keys = BatchKeys()

    def expect_keys(self, keys: list[tuple[str, str]]) -> None:
        """Look up, in one query, which of the batch's (key, table) pairs have no record.

        SQLite only (see :class:`BatchKeys`); elsewhere the transaction is not opened early.
        """
        if keys and self._engine.dialect.name == "sqlite":
            self.keys.expect(self.connection(), keys)

    def connection(self) -> Connection:
        """The batch's connection, inside its transaction (opened on first use)."""
        if self._conn is None:
            self._conn = self._engine.connect()
        if self._tx is None:
            self._tx = self._conn.begin()
            if self._conn.dialect.name == "sqlite" or self._hold:
                hold_clocks(self._conn, lock=self._hold)
        return self._conn

    def after_commit(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` once the writes so far are committed."""
        self._after.append(hook)

    def commit(self) -> None:
        """Commit the writes so far, then run their ``after_commit`` hooks in order."""
        if self._tx is not None:
            tx, self._tx = self._tx, None
            try:
                if self._conn is not None:
                    _check_not_aborted(self._conn)
                    self.keys.flush(self._conn)
                    store_clocks(self._conn)
                    commit_deferred(self._conn)  # the write-back and COMMIT in one query
                tx.commit()
            except BaseException:
                # A failed COMMIT can leave the database's transaction open (SQLite busy)
                # while SQLAlchemy counts it ended and would pool the connection as it is:
                # drop the connection, and the transaction with it.
                if self._conn is not None:
                    self._conn.invalidate()
                raise
            finally:
                self.keys.forget()
        hooks, self._after = self._after, []
        for hook in hooks:
            hook()

    def close(self) -> None:
        """Roll back anything not committed and return the connection."""
        self._after.clear()
        self.keys.forget()
        tx, conn, self._tx, self._conn = self._tx, self._conn, None, None
        try:
            if tx is not None and tx.is_active:
                tx.rollback()
        finally:
            if conn is not None:
                conn.close()


def _check_not_aborted(conn: Connection) -> None:
    """Refuse to commit a PostgreSQL transaction that a failed statement aborted.

    Each write runs in a savepoint, and a failed write rolls back to it; but a statement
    that failed outside any savepoint leaves the transaction aborted, and PostgreSQL answers
    its COMMIT with a silent ROLLBACK (psycopg raises nothing): the writes before it would
    be reported as done. Raising instead answers 503 to all of them; none happened.
    """
    status = getattr(
        getattr(conn.connection.dbapi_connection, "info", None), "transaction_status", None
    )
    if getattr(status, "name", None) == "INERROR":
        raise ServiceUnavailable(
            "The database aborted the transaction; nothing was written, retry",
            headers={"Retry-After": "1"},
        )


class _Savepoint:
    """One write's savepoint in a batch's transaction, as plain SQL.

    SQLAlchemy's ``begin_nested`` compiles its SAVEPOINT and RELEASE statements anew each time:
    that was a quarter of the server's CPU per batched insert (py-spy, docs/benchmarks.md).
    A write that succeeds leaves its savepoint open, and COMMIT ends them all: one statement
    (on PostgreSQL one round trip) fewer per write.

    - SQLite: the next write's savepoint nests in it; ROLLBACK TO goes to the newest of a name.
      SAVEPOINT goes straight to the driver (``_engine.execute_on_driver``).
    - PostgreSQL: the next write's SAVEPOINT releases the open one in the same round trip (each
      open savepoint is a subtransaction there, and more than 64 slow every session down).
      Both wait for the write's first statement and go in its query (``_engine.defer``): an
      insert is then one round trip, savepoint included.
    - Other databases: RELEASE after each write, as the SQL standard has it.
    """

    _NAME = "tablesync_write"

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._dialect = conn.dialect.name
        self._open = False
        #: Its statements wait to be sent with the write's first one (``_engine.defer``).
        self._deferred = self._dialect == "postgresql" and can_defer(conn)

    def __enter__(self) -> _Savepoint:
        sql = f"SAVEPOINT {self._NAME}"
        if self._deferred:
            release = (f"RELEASE SAVEPOINT {self._NAME}",) if self._left_open() else ()
            defer(self._conn, *release, sql)
        elif self._dialect == "sqlite":
            execute_on_driver(self._conn, sql)  # 1.3 µs; 8.6 through SQLAlchemy
        else:
            if self._dialect == "postgresql" and self._left_open():
                sql = f"RELEASE SAVEPOINT {self._NAME}; {sql}"
            self._conn.exec_driver_sql(sql)
        self._open = True
        return self

    def _never_made(self) -> bool:
        """Whether the savepoint was never made: nothing to release or roll back then.

        Either the write executed no statement, so its deferred SAVEPOINT was never sent, or
        that SAVEPOINT failed (in a transaction a failed statement had aborted). Rolling back
        to the name would then reach the savepoint of the write before, and revive an
        aborted transaction; it stays aborted, and its commit answers 503.
        """
        return self._deferred and settle_deferred(self._conn)

    def rollback(self) -> None:
        """Undo the write (its statements since the savepoint); the batch goes on."""
        if not self._open:
            return
        self._open = False
        if self._never_made():
            return
        undo = f"ROLLBACK TO SAVEPOINT {self._NAME}"
        if self._dialect == "sqlite":
            self._conn.exec_driver_sql(undo)  # and it stays open, as after a success
        elif self._dialect == "postgresql":
            self._conn.exec_driver_sql(f"{undo}; RELEASE SAVEPOINT {self._NAME}")
            self._conn.info.pop(_OPEN_SAVEPOINT, None)
        else:
            self._conn.exec_driver_sql(undo)
            self._conn.exec_driver_sql(f"RELEASE SAVEPOINT {self._NAME}")

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is not None:
            self.rollback()
        elif self._open:
            self._open = False
            if self._never_made():
                return
            if self._dialect == "postgresql":
                self._conn.info[_OPEN_SAVEPOINT] = self._conn.get_transaction()
            elif self._dialect != "sqlite":
                self._conn.exec_driver_sql(f"RELEASE SAVEPOINT {self._NAME}")

    def _left_open(self) -> bool:
        # Only within the transaction it was left in: a pooled connection outlives it.
        return self._conn.info.get(_OPEN_SAVEPOINT) is self._conn.get_transaction()


#: ``Connection.info`` key: the transaction in which a write left its savepoint open.
_OPEN_SAVEPOINT = "tablesync_open_savepoint"


@dataclass(frozen=True, slots=True, eq=False)
class PreparedInsert:
    """An insert whose item is validated and whose values are final, ready to run.

    Called with a batch (or ``None``: its own transaction) it runs alone; a group commit may
    instead run several in one statement (``TableService.write_together``).
    """

    service: TableService
    req: WriteRequest
    state: TableState
    #: The row's values, id and owner included; the server's columns are added at the write.
    values: dict[str, Any]
    #: The caller's view, or ``None``: the table's view function, to run with the write.
    view: ColumnElement[bool] | None

    def __call__(self, batch: WriteBatch | None) -> Reply:
        return self.service._run_insert(self, batch)

    def seen(self) -> ColumnElement[bool]:
        """The caller's view of the table's rows, for the row a conflict answers with."""
        return self.service.view(self.req.request, self.state) if self.view is None else self.view

    def reply(self, status: int, row: repo.Row | None) -> Reply:
        """201 with the stored row, or 409 with the row holding the id (400 if not visible)."""
        if row is None:
            raise BadRequest(f"The id {self.values['id']!r} is not available")
        return item_reply(status, self.state, row, self.req.version, self.req.request)

    def stored(self, conn: Connection | None, row: repo.Row | None) -> Reply | Exception:
        """The outcome of this insert run with others: ``row`` is its own, or ``None``.

        ``conn`` reads the row that holds the id when ``row`` is ``None``.
        """
        try:
            if row is not None:
                return self.reply(201, row)
            assert conn is not None, "a conflict's row is read on a connection"
            return self.reply(409, repo.read_row(conn, self.state, self.seen(), self.values["id"]))
        except HTTPError as exc:
            return exc


def _opened(batch: WriteBatch, outcomes: list[Reply | Exception]) -> bool:
    """Open ``batch``'s transaction; ``False`` (the error as an outcome) if it cannot be."""
    try:
        batch.connection()
    except Exception as exc:
        outcomes.append(exc)
        return False
    return True


def _attempt(
    write: Callable[[WriteBatch], Reply], batch: WriteBatch, outcomes: list[Reply | Exception]
) -> bool:
    """Run one write of a group in its savepoint; ``False`` where the group must stop."""
    try:
        outcomes.append(write(batch))
    except (HTTPError, sa.exc.DataError) as exc:
        outcomes.append(exc)
    except Exception as exc:
        outcomes.append(exc)
        return False
    return True


class TableService:
    """Reads and writes of every table of one app (shared by all requests; thread-safe)."""

    def __init__(self, schema: Schema, settings: Settings) -> None:
        self.schema = schema
        self.settings = settings
        self._expiry = Expiry(settings.idempotency_ttl_ms)

    # -- state and views -------------------------------------------------------------------

    def state(self, key: str, batch: WriteBatch | None = None) -> TableState | None:
        """The current state of table ``key`` (re-read for dynamic tables), or ``None``.

        In a batch the registry is read on the batch's connection: a second connection of an
        in-memory database is the same one, and returning it would roll the batch back.
        """
        state = self.schema.get(key)
        if state is not None and self.schema.is_dynamic(key):
            if batch is not None:
                return self.schema.refresh(batch.connection(), key)
            with self.schema.engine.connect() as conn:
                state = self.schema.refresh(conn, key)
        return state

    def fixed_state(self, key: str) -> TableState | None:
        """The state of table ``key`` when its columns cannot change, known without I/O.

        ``None`` for a table that may gain columns (its registry is read first, on a
        connection) or that this process does not know.
        """
        state = self.schema.cached(key)
        return None if state is None or self.schema.is_dynamic(key) else state

    def require(self, key: str, batch: WriteBatch | None = None) -> TableState:
        """The state of table ``key``, or 404."""
        state = self.state(key, batch)
        if state is None:
            raise NotFound(f"The table {key!r} does not exist")
        return state

    def access(self, state: TableState | None) -> Access:
        """The access rules of a table (the app default when it has none)."""
        if state is None or state.config.access is None:
            return self.settings.default_access
        return state.config.access

    def view(self, request: Request, state: TableState) -> ColumnElement[bool]:
        """The caller's view of ``state``'s rows: its access view AND its view function."""
        view = self.access(state).view(principal_of(request), state.table)
        if state.config.view is None:
            return view
        return sa.and_(view, state.config.view(request, state.table))

    # -- the write pipeline ----------------------------------------------------------------

    def batch(self, tables: Iterable[str] = ()) -> WriteBatch:
        """A transaction for writes of ``tables`` (a ``$batch``): pass it to each, then commit."""
        return WriteBatch(self.schema.writer, tables)

    def write_together(
        self, writes: Iterable[Callable[[WriteBatch], Reply]], table: str
    ) -> list[Reply | Exception]:
        """Run single-request writes in one transaction, each with the outcome it had alone.

        What ``DatabaseRunner.write_grouped`` runs ("group commit"). Each write is taken from
        ``writes`` when its turn comes: on PostgreSQL, the writes that arrive while the group
        waits for the table's clock row, or runs, join it. Each write runs in its own
        savepoint; a write that fails with an error of its own (a 4xx, a value the database
        rejects) has its savepoint rolled back, as alone it would have had its transaction,
        and the next write runs. Consecutive plain inserts of one table instead share one
        statement (:meth:`_insert_together`); on PostgreSQL a group that starts with them
        sends them with their BEGIN and COMMIT in one query (:meth:`_insert_committed`) and
        ends before the first write of another kind. Any other failure (the database busy or
        broken, a bug) may leave the transaction in doubt: the group stops there and
        commits the writes before it; the rest run in a new group. A failed commit raises:
        none of the group's writes happened.
        """
        outcomes: list[Reply | Exception] = []
        batch = self.batch(tables=(table,))
        inserts: list[PreparedInsert] = []
        # PostgreSQL: a group that starts with inserts sends them in one round trip with
        # their BEGIN and COMMIT (``_insert_committed``), so it takes the writes waiting
        # now instead of opening its transaction first.
        in_one_trip = can_defer(self.schema.writer)
        try:
            for write in writes:
                if self._can_share_statement(write, inserts):
                    inserts.append(write)
                    # Open the transaction before taking the next write: the writes that
                    # arrive while it waits for the table's clock row then join.
                    if len(inserts) == 1 and not in_one_trip and not _opened(batch, outcomes):
                        break
                    continue
                if inserts and in_one_trip:
                    self._insert_committed(inserts, batch, outcomes)
                    break  # ``write`` was taken but not run: it goes to the next group
                in_one_trip = False
                if inserts and not self._insert_together(inserts, batch, outcomes):
                    break  # ``write`` was taken but not run: it goes to the next group
                inserts = []
                if not _attempt(write, batch, outcomes):
                    break
            else:
                if inserts and in_one_trip:
                    self._insert_committed(inserts, batch, outcomes)
                elif inserts:
                    self._insert_together(inserts, batch, outcomes)
            batch.commit()
        finally:
            batch.close()
        return outcomes

    def _can_share_statement(
        self, write: object, inserts: list[PreparedInsert]
    ) -> TypeGuard[PreparedInsert]:
        """Whether ``write`` is an insert that can go in one statement with ``inserts``.

        An insert whose outcome depends on no more than its own row: no idempotency key (a
        record kept and maybe replayed), no hooks, the strict clock.
        """
        if not isinstance(write, PreparedInsert) or write.service is not self:
            return False
        config = write.state.config
        return (
            write.req.idempotency_key is None
            and self.settings.strict_clock
            and config.before_commit is None
            and config.after_commit is None
            and (not inserts or inserts[0].state is write.state)
        )

    def _insert_together(
        self, inserts: list[PreparedInsert], batch: WriteBatch, outcomes: list[Reply | Exception]
    ) -> bool:
        """Run ``inserts`` of one table in one statement, adding their outcomes to ``outcomes``.

        Measured per insert inside a group's turn, against one statement and one savepoint
        each: see docs/benchmarks.md. Each insert keeps the outcome it had alone: 201 with its
        row, or 409 with the row that holds its id (an earlier insert of the group's too). A
        statement that fails (a value the database refuses, say) is undone, and each insert
        then runs alone, to find whose it was. Returns ``False`` where the group must stop
        (see :meth:`write_together`).
        """
        if len(inserts) == 1:
            return _attempt(inserts[0], batch, outcomes)
        conn = batch.connection()
        state = inserts[0].state
        key = state.config.key
        rows = [
            repo.new_row(insert.values, stamp_datetime(next_stamp(conn, key))) for insert in inserts
        ]
        try:
            with _Savepoint(conn):
                stored = repo.insert_rows(conn, state.table, rows)
        except Exception:
            # Undone. Alone, each insert has the outcome it would have had: the one whose
            # value was refused gets its 400, and a database that is broken stops the group
            # at the first insert, as one statement each would have.
            return all(_attempt(insert, batch, outcomes) for insert in inserts)
        for insert, row in zip(inserts, rows, strict=True):
            found = stored.pop(row["id"], None)
            outcomes.append(insert.stored(conn, found))
        return True

    def _insert_committed(
        self, inserts: list[PreparedInsert], batch: WriteBatch, outcomes: list[Reply | Exception]
    ) -> None:
        """Run ``inserts`` of one table and commit them, in one round trip (PostgreSQL).

        See ``repo.insert_committed``: the rows are stamped by the database, from the
        table's clock row, which the group then holds for the database's work alone.
        Outcomes as :meth:`_insert_together`'s; the rows that hold the ids of 409s are read
        after the commit. Where the database refused a value (or found the clock row
        missing), nothing was written, and the inserts run as :meth:`_insert_together` runs
        them, in ``batch``, to find whose it was. Any other failure (the connection lost,
        the statement timeout) is every insert's outcome: whether the COMMIT happened may be
        unknown, so they are not run again.
        """
        state = inserts[0].state
        rows = [repo.unstamped_row(insert.values) for insert in inserts]
        try:
            with self.schema.writer.connect() as conn:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                stored = repo.insert_committed(conn, state.table, state.config.key, rows)
        except (sa.exc.IntegrityError, sa.exc.DataError):
            stored = None  # the server refused a statement: it skipped the COMMIT
        except Exception as exc:
            outcomes.extend([exc] * len(inserts))
            return
        if stored is None:
            self._insert_together(inserts, batch, outcomes)
            return
        outcomes.extend(self._answers(inserts, [stored.pop(row["id"], None) for row in rows]))

    def _answers(
        self, inserts: list[PreparedInsert], found: list[repo.Row | None]
    ) -> list[Reply | Exception]:
        """The outcomes of committed ``inserts``, given the row each stored (or ``None``).

        A 409's row is read now, after the commit; a failure of that read is that insert's
        outcome (it was not written, and the client's retry will tell it so again).
        """
        if all(row is not None for row in found):
            return [insert.stored(None, row) for insert, row in zip(inserts, found, strict=True)]
        try:
            with self.schema.reader.connect() as conn:
                return [
                    insert.stored(conn, row) for insert, row in zip(inserts, found, strict=True)
                ]
        except Exception as exc:  # the database went away: the rows written are still so
            return [
                insert.reply(201, row) if row is not None else exc
                for insert, row in zip(inserts, found, strict=True)
            ]

    def _write(
        self,
        req: WriteRequest,
        state: TableState,
        operation: Operation,
        action: Action,
        batch: WriteBatch | None,
    ) -> Reply:
        if batch is None:
            with self.schema.writer.connect() as conn:
                reply, event = self._transact(
                    conn, conn.begin(), SingleKeys, req, state, operation, action
                )
            if event is not None and state.config.after_commit is not None:
                _run_after_commit(state.config.after_commit, req.request, event)
            return reply
        conn = batch.connection()
        with batch.keys.write():
            savepoint = _Savepoint(conn)
            reply, event = self._transact(
                conn, savepoint, batch.keys, req, state, operation, action
            )
        hook = state.config.after_commit
        if event is not None and hook is not None:
            batch.after_commit(lambda: _run_after_commit(hook, req.request, event))
        return reply

    def _transact(
        self,
        conn: Connection,
        transaction: Transaction | _Savepoint,
        keys: IdempotencyKeys,
        req: WriteRequest,
        state: TableState,
        operation: Operation,
        action: Action,
    ) -> tuple[Reply, WriteEvent | None]:
        """The write inside ``transaction`` (the request's own, or a batch's savepoint)."""
        target = f"item {req.item_id}" if req.item_id is not None else f"new {_body_id(req.body)}"
        fingerprint = f"{req.request.method} {target}"
        mark_arrival(conn, req.arrival_ms)
        with transaction as tx:
            if req.idempotency_key is not None:
                if self._expiry.due():
                    self._expiry.purge(conn)
                stored = keys.claim(conn, req.idempotency_key, req.key, fingerprint)
                if stored is not None:
                    return self._replay(req, state, stored, fingerprint), None
            reply, written = _item_write(action, conn, state)
            if not written:
                tx.rollback()
                return reply, None
            if req.idempotency_key is not None:
                response = StoredResponse(
                    fingerprint, reply.status, reply.body, reply.headers.get("ETag")
                )
                keys.record(conn, req.idempotency_key, req.key, response)
            # Raising here rolls the write back (the context manager's exit).
            event = _event(req, state, operation, reply)
            if event is not None and state.config.before_commit is not None:
                state.config.before_commit(req.request, event)
        return reply, event

    @staticmethod
    def _replay(
        req: WriteRequest, state: TableState, stored: StoredResponse, fingerprint: str
    ) -> Reply:
        if stored.fingerprint != fingerprint:
            raise UnprocessableEntity(
                "This Idempotency-Key was already used for a different request "
                f"({stored.fingerprint}); use a new key for each operation"
            )
        return stored_reply(stored.status, stored.body, req.version, req.request, state)

    def _prepare(
        self, req: WriteRequest, batch: WriteBatch | None, *, create: bool
    ) -> tuple[TableState, ItemInput]:
        state = self.state(req.key, batch)
        dynamic = self.schema.is_dynamic(req.key)
        if state is None:
            if not (create and self.schema.allows_new_tables):
                raise NotFound(f"The table {req.key!r} does not exist")
            if not is_valid_table_name(req.key):
                raise BadRequest(
                    f"Invalid table name {req.key!r}: use a letter then letters, digits or '_' "
                    "(at most 63 characters, not starting with 'tablesync_')"
                )
            _before_schema_change(batch)
            state = self.schema.create_table(req.key)
        item = parse_item(state, req.body, dynamic=dynamic)
        if item.new_columns:
            _before_schema_change(batch)
            state = self.schema.add_columns(req.key, item.new_columns)
        return state, item

    # -- operations ------------------------------------------------------------------------

    def insert(self, req: WriteRequest, batch: WriteBatch | None = None) -> Reply:
        """``POST /tables/{table}``: 201 with the stored item, or 409 with the existing one."""
        state, item = self._prepare(req, batch, create=True)
        return self._inserting(req, state, item)(batch)

    def prepare_insert(self, req: WriteRequest) -> PreparedInsert | None:
        """An insert's work that needs no transaction, done now; the rest, to run in one.

        For a group commit: the body's validation, the values, the owner stamp and the
        caller's access view (not a table's own view function: the application's code,
        which runs with the write) are done before the insert joins its group, so the group's
        transaction, the turn every other process's writers wait for, holds only the
        clock stamp, the statement and the commit (docs/benchmarks.md). Only for a table
        whose state this process knows and that no write can change (a configured table
        without dynamic schema); otherwise ``None``: the table's state must then be read,
        and maybe changed, in the write's transaction (``insert``). The table's
        ``insert_hook`` runs here: call this where a hook may run (not for tables with
        hooks on the event loop).
        """
        state = self.schema.cached(req.key)
        if state is None or self.schema.is_dynamic(req.key):
            return None
        return self._inserting(req, state, parse_item(state, req.body, dynamic=False))

    def _inserting(self, req: WriteRequest, state: TableState, item: ItemInput) -> PreparedInsert:
        """The insert of a validated ``item``, to run in a transaction (a batch, or its own)."""
        if item.deleted:
            raise BadRequest("An item cannot be inserted as deleted")
        values: dict[str, Any] = {**item.values, "id": item.item_id or new_id()}
        if state.config.insert_hook is not None:
            values = state.config.insert_hook(req.request, values)
        # After the hook: the owner is the caller's, whatever the body or a hook said.
        values = self.access(state).stamp(principal_of(req.request), values)
        # The state cannot change before the write: ``state`` is the one passed back. A
        # table's own view function is the application's code: it runs where it ran before,
        # with the write (on a worker thread for PostgreSQL), not on the event loop.
        view = self.view(req.request, state) if state.config.view is None else None
        return PreparedInsert(self, req, state, values, view)

    def _run_insert(self, insert: PreparedInsert, batch: WriteBatch | None) -> Reply:
        """``insert`` alone: in its own transaction, or in a savepoint of ``batch``'s."""

        def action(conn: Connection, state: TableState) -> tuple[Reply, bool]:
            outcome = repo.insert(
                conn, state, insert.seen(), insert.values, strict=self.settings.strict_clock
            )
            return insert.reply(outcome.status, outcome.row), outcome.written

        return self._write(insert.req, insert.state, "insert", action, batch)

    def update(
        self, req: WriteRequest, batch: WriteBatch | None = None, *, replace_all: bool
    ) -> Reply:
        """``PATCH`` (merge) or ``PUT`` (replace) of one item, with optimistic concurrency."""
        assert req.item_id is not None
        state, item = self._prepare(req, batch, create=False)
        if item.item_id not in (None, req.item_id):
            raise BadRequest(
                f"The id in the body ({item.item_id!r}) differs from the id in the URL"
            )
        if item.deleted:
            raise BadRequest("Use DELETE to delete an item")
        pre = req.pre
        if req.version is ApiVersion.V2 and pre.if_match is None and item.version is not None:
            pre = replace(pre, body_version=item.version)
        changes = self._changes(state, item, replace_all=replace_all)
        for column in self.access(state).protected_columns():
            # Clients echo the whole item back: the owner is dropped, not rejected.
            changes.pop(column, None)
        # PATCH {"deleted": false} undeletes (v3). A PUT body always carries deleted=false
        # (AMA clients send the whole item), so PUT undeletes only with __includedeleted.
        undelete = item.deleted is False and (not replace_all or req.include_deleted)
        include_deleted = req.include_deleted or undelete
        if undelete:
            changes["deleted"] = False
        resolver = self._resolver(req, state, item, changes, replace_all=replace_all)

        def action(conn: Connection, state: TableState) -> tuple[Reply, bool]:
            outcome = repo.update(
                conn, state, self.view(req.request, state), req.item_id or "", changes, pre,
                include_deleted=include_deleted, strict=self.settings.strict_clock,
                on_conflict=resolver,
            )  # fmt: skip
            return self._reply(outcome, state, req, ok=200)

        return self._write(req, state, "update", action, batch)

    @staticmethod
    def _changes(state: TableState, item: ItemInput, *, replace_all: bool) -> dict[str, Any]:
        changes = dict(item.values)
        if replace_all:
            for column in state.kinds:
                changes.setdefault(column, None)
        return changes

    def _resolver(
        self,
        req: WriteRequest,
        state: TableState,
        item: ItemInput | None,
        changes: dict[str, Any],
        *,
        replace_all: bool = False,
    ) -> repo.ConflictResolver | None:
        policy = state.config.conflict_policy
        if policy == "reject":
            return None
        if policy == "server_wins":
            return lambda _current: None
        if policy == "client_wins":
            return lambda _current: changes
        if item is None:
            return None  # a merge function cannot merge a delete: report the conflict
        merge: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]] = policy

        def resolve(current: repo.Row) -> dict[str, Any]:
            merged = merge(render(state, current, ApiVersion.V3), dict(item.raw))
            result = parse_item(state, merged, dynamic=False)
            resolved = {**self._changes(state, result, replace_all=True), **_kept_flags(changes)}
            for column in self.access(state).protected_columns():
                resolved.pop(column, None)
            return resolved

        return resolve

    def _reply(
        self, outcome: repo.Outcome, state: TableState, req: WriteRequest, *, ok: int
    ) -> tuple[Reply, bool]:
        if outcome.status in (404, 410):
            raise missing(outcome.status, req.version)
        if outcome.row is None:
            return Reply(204), outcome.written
        status = ok if outcome.status == 200 and outcome.written else outcome.status
        return item_reply(status, state, outcome.row, req.version, req.request), outcome.written

    def delete(self, req: WriteRequest, batch: WriteBatch | None = None) -> Reply:
        """``DELETE``: a tombstone (soft delete) or removal; 204 for v2 and v3."""
        assert req.item_id is not None
        state = self.require(req.key, batch)
        soft = state.config.soft_delete
        resolver = self._resolver(req, state, None, {"deleted": True} if soft else {})

        def action(conn: Connection, state: TableState) -> tuple[Reply, bool]:
            view = self.view(req.request, state)
            item_id = req.item_id or ""
            if soft:
                outcome = repo.update(
                    conn, state, view, item_id, {"deleted": True}, req.pre,
                    include_deleted=False, strict=self.settings.strict_clock, on_conflict=resolver,
                )  # fmt: skip
            else:
                outcome = repo.hard_delete(
                    conn, state, view, item_id, req.pre, on_conflict=resolver
                )
            if outcome.written:
                return Reply(204), True
            return self._reply(outcome, state, req, ok=200)

        return self._write(req, state, "delete", action, batch)

    def undelete(self, req: WriteRequest, batch: WriteBatch | None = None) -> Reply:
        """v2 ``POST /tables/{table}/{id}``: clear ``deleted``; 201 with the item."""
        assert req.item_id is not None
        state = self.require(req.key, batch)

        def action(conn: Connection, state: TableState) -> tuple[Reply, bool]:
            outcome = repo.update(
                conn, state, self.view(req.request, state), req.item_id or "", {"deleted": False},
                req.pre, include_deleted=True, strict=self.settings.strict_clock,
            )  # fmt: skip
            return self._reply(outcome, state, req, ok=201)

        return self._write(req, state, "undelete", action, batch)

    def read(
        self,
        request: Request,
        key: str,
        item_id: str,
        version: ApiVersion,
        pre: repo.Preconditions,
        include_deleted: bool,
    ) -> Reply:
        """``GET /tables/{table}/{id}``: 200, 304, 404, 410 or 412."""
        state = self.require(key)
        with self.schema.reader.connect() as conn:
            row = repo.read_row(conn, state, self.view(request, state), item_id)
        status = read_status(row, version, pre, include_deleted)
        assert row is not None  # read_status raised otherwise
        if status == 304:
            return Reply(304, None, item_reply(200, state, row, version, request).headers)
        return item_reply(status, state, row, version, request)


def read_status(
    row: repo.Row | None, version: ApiVersion, pre: repo.Preconditions, include_deleted: bool
) -> int:
    """A read's status for the stored ``row``: 200, 304 or 412; 404 and 410 are raised.

    ``row`` needs ``deleted`` and what the preconditions read (``version``, ``updatedAt``).
    """
    if row is None:
        raise NotFound("The item does not exist")
    if row["deleted"] and not include_deleted:
        raise missing(410, version)
    return pre.failure(row, write=False) or 200


def _item_write(action: Action, conn: Connection, state: TableState) -> tuple[Reply, bool]:
    """Run a write's ``action``; a constraint of the database refusing the item is a 400.

    tablesync's own constraints never refuse an item (a taken id is a 409, found before),
    but an application may add its own (a CHECK, a NOT NULL, a trigger): the value the
    client sent is what they refuse, as with a ``DataError`` (a 400 too), not a server
    failure. Only around the item's own statements: elsewhere (idempotency records) a
    violation is tablesync's, and stays an error of the server.
    """
    try:
        return action(conn, state)
    except sa.exc.IntegrityError as exc:
        raise BadRequest(f"The database rejected the item: {database_message(exc)}") from exc


def _event(
    req: WriteRequest, state: TableState, operation: Operation, reply: Reply
) -> WriteEvent | None:
    """The hooks' view of a write, or ``None`` when the table has no hooks (no work then)."""
    if state.config.before_commit is None and state.config.after_commit is None:
        return None
    item = loads(reply.body) if reply.body is not None else None
    item_id = req.item_id or (str(item["id"]) if isinstance(item, dict) else "")
    return WriteEvent(state.config.key, operation, item_id, item)


def _before_schema_change(batch: WriteBatch | None) -> None:
    """Commit a batch's writes so far, before a schema change.

    The change runs in its own transaction on another connection, which would wait for the
    batch's locks (SQLite's write lock, PostgreSQL's table locks) for ever.
    """
    if batch is not None:
        batch.commit()


def _run_after_commit(hook: WriteHook, request: Request, event: WriteEvent) -> None:
    try:
        hook(request, event)
    except Exception:
        # The write is committed and its response is due: a failing hook must not turn it
        # into an error the client would retry.
        logger.exception("after_commit hook failed for %s %s", event.table, event.item_id)


def _body_id(body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("id"), str):
        return str(body["id"])
    return ""


def _kept_flags(changes: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in changes.items() if key == "deleted"}


def encode(value: Any) -> bytes:
    """JSON bytes for a response body."""
    return dumps(value)
