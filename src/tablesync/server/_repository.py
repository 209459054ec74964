"""SQL for the item tables: reads, queries, and writes with the version check in the statement.

Every function takes the caller's ``view`` (a condition, ``sa.true()`` without per-user views)
and ANDs it into every statement, including the reads that fill 409/412 bodies: a row outside
the view behaves as if it did not exist. Writes run inside the caller's transaction; a write
that did not happen returns ``written=False`` and the caller rolls back (undoing the clock).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import FromClause

from ._access import owned_by
from ._clock import advanced_stamp, advancing, new_version, next_stamp, now_ms
from ._engine import (
    can_defer,
    client_cursor,
    execute_on_driver,
    for_client_binding,
    take_deferred,
)
from ._items import stamp_datetime
from ._schema import TableState
from ._types import UtcDateTime

T = TypeVar("T")
Row = Mapping[Any, Any]
#: Called with the current row on a 409/412: the changes to write over it, or ``None`` to
#: answer with the server's row (server wins). Not given: the conflict is reported.
ConflictResolver = Callable[[Row], "dict[str, Any] | None"]
_SECOND = dt.timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class Preconditions:
    """Conditional-request headers (and the v2 body version) of one request.

    Attributes:
        if_match: versions from ``If-Match`` (``"*"`` matches any), or ``None``.
        if_none_match: versions from ``If-None-Match``, or ``None``.
        if_modified_since: ``If-Modified-Since`` (second precision), or ``None``.
        if_unmodified_since: ``If-Unmodified-Since`` (second precision), or ``None``.
        body_version: a ``version`` in a v2 body sent without ``If-Match`` (409 on mismatch).
    """

    if_match: tuple[str, ...] | None = None
    if_none_match: tuple[str, ...] | None = None
    if_modified_since: dt.datetime | None = None
    if_unmodified_since: dt.datetime | None = None
    body_version: str | None = None

    def sql(self, table: sa.Table) -> list[ColumnElement[bool]]:
        """The preconditions as conditions of a write statement (protocol.md §3.3)."""
        conditions: list[ColumnElement[bool]] = []
        version, updated = table.c.version, table.c.updatedAt
        if self.if_match is not None and "*" not in self.if_match:
            conditions.append(version.in_(self.if_match))
        elif self.if_match is None and self.if_unmodified_since is not None:
            conditions.append(updated < self.if_unmodified_since + _SECOND)
        if self.if_none_match is not None:
            matches_any = "*" in self.if_none_match
            conditions.append(sa.false() if matches_any else version.not_in(self.if_none_match))
        elif self.if_modified_since is not None:
            conditions.append(updated >= self.if_modified_since + _SECOND)
        if self.if_match is None and self.body_version is not None:
            conditions.append(version == self.body_version)
        return conditions

    def failure(self, row: Row, *, write: bool) -> int | None:
        """The status a precondition gives for the current ``row``: 412, 304, 409 or ``None``."""
        version = row["version"]
        modified = _floor_seconds(row["updatedAt"])
        if self.if_match is not None:
            if "*" not in self.if_match and version not in self.if_match:
                return 412
        elif self.if_unmodified_since is not None and modified > self.if_unmodified_since:
            return 412
        if self.if_none_match is not None:
            if "*" in self.if_none_match or version in self.if_none_match:
                return 412 if write else 304
        elif self.if_modified_since is not None and not modified > self.if_modified_since:
            return 412 if write else 304
        if self.if_match is None and self.body_version not in (None, version):
            return 409
        return None


def _floor_seconds(value: dt.datetime) -> dt.datetime:
    return value.replace(microsecond=0)


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of a repository call.

    Attributes:
        status: 200, 201, 204, 404, 409, 410 or 412 (the HTTP meaning).
        row: the row to answer with (the stored row, or the server's row on a conflict).
        written: whether anything was written (otherwise the caller rolls back).
    """

    status: int
    row: Row | None
    written: bool


def read_row(
    conn: Connection,
    state: TableState,
    view: ColumnElement[bool],
    item_id: str,
    *,
    lock: bool = False,
) -> RowMapping | None:
    """The stored row of ``item_id`` inside the view, or ``None``."""
    statement, values = kept(_read_statement, view, state.table, lock)
    return conn.execute(statement, {**values, _ITEM_ID: item_id}).mappings().first()


#: Statements kept per shape (:func:`kept`), per builder.
KEPT_STATEMENTS = 256
_ITEM_ID = "ts_id"


def kept(
    build: Callable[..., T], view: ColumnElement[bool], *args: Any
) -> tuple[T, dict[str, Any]]:
    """``build(view, *args)``, kept per shape when ``view`` allows, and the view's values.

    ``build`` is an ``lru_cache`` of statements. A kept statement is one object for every
    request of its shape, the request's values its named parameters: SQLAlchemy then finds
    its cache key (and its compiled SQL) memoized on it, where a new statement cost more to
    key than to build (~100 µs for a JSON page on PostgreSQL, a tenth of the request;
    docs/benchmarks.md). An owner view is kept with its caller's id left out, returned as
    the value to bind at each run. Any other view (an application's view function) may
    hold anything: that statement is built for its request alone.
    """
    if view is sa.true() or view is sa.false():
        return build(view, *args), {}
    owner = owned_by(view)
    if owner is not None:
        shared, values = owner
        return build(shared, *args), values
    return build.__wrapped__(view, *args), {}  # type: ignore[attr-defined]


@functools.lru_cache(maxsize=KEPT_STATEMENTS)
def _read_statement(view: ColumnElement[bool], table: sa.Table, lock: bool) -> sa.Select[Any]:
    item_id = sa.bindparam(_ITEM_ID, type_=table.c.id.type)
    statement = sa.select(table).where(table.c.id == item_id, view)
    return statement.with_for_update() if lock else statement


def page_statement(
    table: sa.Table,
    view: ColumnElement[bool],
    where: Sequence[ColumnElement[bool]],
    order_by: Sequence[ColumnElement[Any]],
    *,
    skip: int | ColumnElement[int],
    limit: int | ColumnElement[int],
    dialect: str,
    columns: Sequence[ColumnElement[Any]] | None = None,
    source: FromClause | None = None,
) -> sa.Select[Any]:
    """One page of rows matching ``where`` inside the view, in ``table.c`` order.

    Run it for plain rows (not mappings: the page renderer reads them by position, see
    ``_items``). On SQLite and PostgreSQL, timestamps come back as wire text (SQLite's
    stored text, PostgreSQL's ``to_char``): parsing them into datetimes to format them back
    cost more than the rest of the row. ``columns`` selects something else for each row,
    from ``source`` (``_page_json``), rows to read with :func:`fetch_raw`. ``skip`` and
    ``limit`` may be parameters, given when it runs.
    """
    if columns is None:
        columns = _page_columns(table, dialect)
    stmt = sa.select(*columns).select_from(table if source is None else source)
    return stmt.where(view, *where).order_by(*order_by).offset(skip).limit(limit)


def fetch_raw(
    conn: Connection, stmt: sa.Select[Any], values: Mapping[str, Any] | None = None
) -> list[Any]:
    """The driver's own row tuples of ``stmt``, for rows that need no result processing.

    A SQLAlchemy ``Row`` per row cost a third as much as a JSON page's statement (0.4 of
    1.4 ms for 1,000 rows). ``values``: those of its parameters.
    """
    with contextlib.closing(conn.execute(stmt, values)) as result:
        return list(result.cursor.fetchall())


@functools.lru_cache(maxsize=256)
def _page_columns(table: sa.Table, dialect: str) -> tuple[Any, ...]:
    if dialect not in ("sqlite", "postgresql"):
        return tuple(table.c)
    return tuple(
        wire_text(column, dialect) if isinstance(column.type, UtcDateTime) else column
        for column in table.c
    )


def wire_text(column: sa.Column[Any], dialect: str) -> ColumnElement[Any]:
    """A timestamp column selected as its wire text, made by the database."""
    if dialect == "sqlite":  # stored as that text already
        return sa.type_coerce(column, sa.String()).label(column.name)
    # PostgreSQL formats it in C; parsing datetimes and formatting them in Python cost more
    # than the rest of a row. timestamp(3) keeps exactly the milliseconds the format prints.
    utc = sa.func.timezone("UTC", column)
    return sa.func.to_char(utc, 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"', type_=sa.String()).label(
        column.name
    )


def count_statement(
    table: sa.Table, view: ColumnElement[bool], where: Sequence[ColumnElement[bool]]
) -> sa.Select[Any]:
    """How many rows match ``where`` inside the view (ignoring paging): one row, the count."""
    return sa.select(sa.func.count()).select_from(table).where(view, *where)


def insert(
    conn: Connection,
    state: TableState,
    view: ColumnElement[bool],
    values: dict[str, Any],
    *,
    strict: bool,
) -> Outcome:
    """Insert an item; an existing id gives 409 with the existing row (also if soft-deleted)."""
    stamp = stamp_datetime(next_stamp(conn, state.config.key, strict=strict))
    row = _insert_if_absent(conn, state.table, new_row(values, stamp))
    if row is not None:
        return Outcome(201, row, written=True)
    existing = read_row(conn, state, view, values["id"])
    return Outcome(409, existing, written=False)


def new_row(values: dict[str, Any], stamp: dt.datetime) -> dict[str, Any]:
    """The row an insert of ``values`` stores: the system columns set by the server."""
    return {**unstamped_row(values), "createdAt": stamp, "updatedAt": stamp}


def unstamped_row(values: dict[str, Any]) -> dict[str, Any]:
    """``new_row`` but for its stamps, which ``insert_committed`` takes in SQL."""
    return {**values, "version": new_version(), "deleted": False}


def insert_rows(
    conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]]
) -> dict[str, Row]:
    """Insert ``rows``, skipping those whose id is taken; the stored rows by id.

    An id is taken by a stored row or by an earlier one of ``rows``. The rows go in as few
    statements as their sets of columns allow: a group commit's inserts in one statement
    instead of one each, on PostgreSQL in one round trip where each insert made its own, all
    of it while the group holds its table's clock row, which the other processes' writers
    of that table wait for (docs/benchmarks.md). A statement that fails undoes all of its
    rows: the caller decides what then.
    """
    stored: dict[str, Row] = {}
    for columns, chunk in _chunks(conn.dialect, rows):
        plan = _insert_plan(conn, table, columns, len(chunk))
        if plan is None:
            for values in chunk:
                row = _insert_if_absent(conn, table, values)
                if row is not None:
                    stored[values["id"]] = row
            continue
        for row in plan.run(conn, chunk):
            stored[row["id"]] = row
    return stored


def insert_committed(
    conn: Connection, table: sa.Table, clock_key: str, rows: Sequence[dict[str, Any]]
) -> dict[str, Row] | None:
    """Insert ``rows`` (``unstamped_row``), stamped, and commit, all in one round trip.

    PostgreSQL through psycopg, on a connection in autocommit (``None`` elsewhere: the
    caller then runs the rows in a transaction of its own). One query carries ``BEGIN``, one
    statement per set of columns that stamps its rows from the table's clock row (a
    ``_clock.advancing`` CTE) and inserts them, and ``COMMIT``: a group commit's inserts
    then hold the clock row, which the other processes' writers of the table wait for, for
    the database's own work alone, not for three round trips and the Python between them
    (docs/benchmarks.md). Ids are taken as in ``insert_rows``; the stored rows by id. A
    statement that fails undoes them all (raised as SQLAlchemy raises it): nothing
    was written.
    """
    if conn.dialect.name != "postgresql" or conn.dialect.driver != "psycopg":
        return None
    plans: list[tuple[_OneTripInsert, list[dict[str, Any]]]] = []
    for columns, chunk in _chunks(conn.dialect, rows):
        plan = _one_trip_insert(table, conn.dialect, columns, len(chunk), stamped=True)
        if plan is None:
            return None
        plans.append((plan, chunk))
    now = now_ms()
    with client_cursor(conn) as cursor:
        queries = [
            plan.bound(conn, cursor, plan.params(chunk, clock_key, now)) for plan, chunk in plans
        ]
        sql = "BEGIN; " + "".join(f"{query}; " for query in queries) + "COMMIT"
        # Every statement returns the table's columns: the first plan reads them all.
        found = plans[0][0].send(conn, cursor, sql, rollback=True)
    return {row["id"]: row for row in found}


#: At most this many parameters in one SQLite statement (SQLite's limit before 3.32).
_SQLITE_PARAMETERS = 999


def _chunks(
    dialect: sa.Dialect, rows: Sequence[dict[str, Any]]
) -> list[tuple[frozenset[str], list[dict[str, Any]]]]:
    """``rows`` cut into runs of one set of columns, in order, each small enough to send.

    Only SQLite limits the parameters of a statement; PostgreSQL's values are bound on the
    client, into the text.
    """
    chunks: list[tuple[frozenset[str], list[dict[str, Any]]]] = []
    for values in rows:
        columns = frozenset(values)
        limit = max(1, _SQLITE_PARAMETERS // len(columns)) if dialect.name == "sqlite" else None
        last = chunks[-1] if chunks else None
        if last and last[0] == columns and (limit is None or len(last[1]) < limit):
            last[1].append(values)
        else:
            chunks.append((columns, [values]))
    return chunks


@functools.lru_cache(maxsize=256)
def _insert_statement(table: sa.Table, dialect: str) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING RETURNING *`` for ``table``, built once.

    Values go in as execute parameters: building the statement with them inline cost ~1.2 ms
    of SQLAlchemy work per insert (see docs/benchmarks.md). Tables are immutable, and a new
    ``sa.Table`` is built when a table gains columns, so the cache never serves a stale one.
    """
    module: Any = sqlite if dialect == "sqlite" else postgresql
    return module.insert(table).on_conflict_do_nothing().returning(*table.c)


def _insert_if_absent(conn: Connection, table: sa.Table, values: dict[str, Any]) -> Row | None:
    plan = _insert_plan(conn, table, frozenset(values), 1)
    if plan is not None:
        rows = plan.run(conn, [values])
        return rows[0] if rows else None
    dialect = conn.dialect.name
    if dialect in ("sqlite", "postgresql"):
        return conn.execute(_insert_statement(table, dialect), values).mappings().first()
    try:
        with conn.begin_nested():
            conn.execute(table.insert().values(values))
    except sa.exc.IntegrityError:
        return None
    return conn.execute(sa.select(table).where(table.c.id == values["id"])).mappings().first()


def _insert_plan(
    conn: Connection, table: sa.Table, columns: frozenset[str], rows: int
) -> _SQLiteInsert | _OneTripInsert | None:
    """The insert of ``rows`` rows of ``columns`` sent past SQLAlchemy, where it can be."""
    if conn.dialect.name == "sqlite":
        return _sqlite_insert(table, conn.dialect, columns, rows)
    if conn.dialect.name == "postgresql" and can_defer(conn):
        return _one_trip_insert(table, conn.dialect, columns, rows, stamped=False)
    return None


@dataclass(frozen=True, slots=True)
class _SQLiteInsert:
    """The SQLite insert of rows of one set of columns, executed on the driver's own cursor.

    SQLAlchemy's execution context (the event dispatch, the compiled cache lookup, the result
    object and its row) was most of an insert's time in a group commit: 44-52 µs against
    18-20 µs here, measured in process (bench/insert_statements.py), all of it spent
    holding the write turn every other process's writers wait for. The statement is
    SQLAlchemy's own, compiled once per table, set of columns and number of rows, and the
    values and the returned rows pass through the columns' own bind and result processors,
    as SQLAlchemy would pass them.
    It is sent by ``_engine.execute_on_driver``, which does what SQLAlchemy's hooks did for
    it (the statement timeout's clock, errors raised as SQLAlchemy raises them); any other
    hook on the engine (an ``echo`` log, say) does not see this statement.
    """

    sql: str
    #: One row's column names in the statement's order, each with its bind processor.
    binds: tuple[tuple[str, Callable[[Any], Any] | None], ...]
    #: The returned columns' names, each with its result processor.
    results: tuple[tuple[str, Callable[[Any], Any] | None], ...]

    def run(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> list[Row]:
        params = tuple(
            value if process is None else process(value)
            for values in rows
            for name, process in self.binds
            for value in (values[name],)
        )
        return [
            {
                name: value if process is None else process(value)
                for (name, process), value in zip(self.results, row, strict=True)
            }
            for row in execute_on_driver(conn, self.sql, params)
        ]


@functools.lru_cache(maxsize=1024)
def _sqlite_insert(
    table: sa.Table, dialect: sa.Dialect, columns: frozenset[str], rows: int
) -> _SQLiteInsert | None:
    """The insert of ``rows`` rows of ``columns``; ``None`` where SQLAlchemy must send it."""
    compiled = _compiled_insert(table, dialect, columns, rows, stamped=False)
    order = None if compiled is None else compiled.positiontup
    if order is None or sorted(order) != sorted(compiled.binds):
        return None  # a positional parameter for each value, once
    first_row = [_column_of(name) for name in order[: len(columns)]]
    return _SQLiteInsert(
        compiled.string,
        tuple((name, _bind_processor(table.c[name].type, dialect)) for name in first_row),
        tuple((column.name, _result_processor(column.type, dialect)) for column in table.c),
    )


@dataclass(slots=True)
class _OneTripInsert:
    """The PostgreSQL insert of rows of one set of columns, sent by psycopg in one query.

    A write of a group commit sends its savepoint and its insert as one query, in one round
    trip (``_engine.defer``); SQLAlchemy sends one statement per query. It also skips
    SQLAlchemy's execution context, which was a fifth of the worker thread's CPU for an
    insert (docs/benchmarks.md). The statement is SQLAlchemy's own, compiled once, and the
    values pass through the columns' own bind and result processors, as SQLAlchemy would
    pass them; psycopg binds them on the client (the simple query protocol carries several
    statements) with its own quoting.
    """

    sql: str
    #: Each column's name, its parameters' names (one per row) and its bind processor.
    binds: tuple[tuple[str, tuple[str, ...], Callable[[Any], Any] | None], ...]
    table: sa.Table
    #: ``psycopg.Error`` (psycopg is an optional dependency).
    error: type[Exception]
    #: Whether the rows' stamps come from the clock in the statement (``insert_committed``).
    stamped: bool = False
    #: Each result column's name and processor, known from the first result's types.
    results: tuple[tuple[str, Callable[[Any], Any] | None], ...] | None = None

    def params(
        self, rows: Sequence[dict[str, Any]], clock_key: str = "", now: int = 0
    ) -> dict[str, Any]:
        """The statement's parameters for ``rows``; with the clock's for a stamped one."""
        params = {
            parameter: value if process is None else process(value)
            for name, parameters, process in self.binds
            for parameter, values in zip(parameters, rows, strict=True)
            for value in (values[name],)
        }
        if self.stamped:
            params.update(clock_key=clock_key, clock_n=len(rows), clock_now=now)
        return params

    def run(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> list[Row]:
        """Insert ``rows`` in ``conn``'s transaction, after the statements it held back."""
        with client_cursor(conn) as cursor:
            # Bound on the client first: a value psycopg refuses (a NUL character) fails
            # here, before anything is sent, so the held-back savepoint stays unsent and
            # the write's rollback knows there is nothing to roll back to.
            query = self.bound(conn, cursor, self.params(rows))
            return self.send(conn, cursor, take_deferred(conn) + query)

    def bound(self, conn: Connection, cursor: Any, params: dict[str, Any]) -> str:
        """The statement with ``params`` bound by psycopg (errors raised as SQLAlchemy's)."""
        try:
            return str(cursor.mogrify(self.sql, params))
        except self.error as exc:
            raise sa.exc.DBAPIError.instance(
                self.sql, {}, exc, self.error, dialect=conn.dialect
            ) from exc

    def send(self, conn: Connection, cursor: Any, sql: str, *, rollback: bool = False) -> list[Row]:
        """Run ``sql`` (bound) and return the rows of its inserts, processed.

        With ``rollback``, a failure is followed by a ``ROLLBACK`` (``sql`` began a
        transaction of its own on a connection in autocommit).
        """
        found: list[Any] = []
        try:
            cursor.execute(sql)  # no parameters: sent as it is
            while True:
                if cursor.description is not None:
                    found.extend(cursor.fetchall())
                    if self.results is None:
                        self.results = self._result_processors(conn.dialect, cursor.description)
                if not cursor.nextset():
                    break
        except self.error as exc:
            if rollback:
                with contextlib.suppress(self.error):
                    cursor.execute("ROLLBACK")
            raise sa.exc.DBAPIError.instance(
                sql, {}, exc, self.error, dialect=conn.dialect
            ) from exc
        results = self.results or ()
        return [
            {
                name: value if process is None else process(value)
                for (name, process), value in zip(results, row, strict=True)
            }
            for row in found
        ]

    def _result_processors(
        self, dialect: sa.Dialect, description: Any
    ) -> tuple[tuple[str, Callable[[Any], Any] | None], ...]:
        return tuple(
            (column.name, _result_processor(column.type, dialect, info.type_code))
            for column, info in zip(self.table.c, description, strict=True)
        )


@functools.lru_cache(maxsize=1024)
def _one_trip_insert(
    table: sa.Table, dialect: sa.Dialect, columns: frozenset[str], rows: int, *, stamped: bool
) -> _OneTripInsert | None:
    """The insert of ``rows`` rows of ``columns``; ``None`` where SQLAlchemy must send it."""
    import psycopg  # the driver of the connections that get here (``_insert_plan``)

    compiled = _compiled_insert(table, dialect, columns, rows, stamped=stamped)
    if compiled is None:
        return None
    return _OneTripInsert(
        for_client_binding(compiled.string),
        tuple(
            (
                name,
                tuple(_parameter(name, row) for row in range(rows)),
                _bind_processor(table.c[name].type, dialect),
            )
            for name in sorted(columns)
        ),
        table,
        psycopg.Error,
        stamped,
    )


def _compiled_insert(
    table: sa.Table, dialect: sa.Dialect, columns: frozenset[str], rows: int, *, stamped: bool
) -> Any:
    """``_insert_statement`` of ``rows`` rows of ``columns``, compiled to send past SQLAlchemy.

    Each value is a parameter named by ``_parameter``. ``stamped``: the rows' ``createdAt``
    and ``updatedAt`` are taken from the table's clock in the statement (``_clock.advancing``,
    parameters ``clock_key``, ``clock_n`` and ``clock_now``). ``None`` where SQLAlchemy must
    send it: names that need escaping.
    """
    stamps = advancing() if stamped else None
    values = []
    for row in range(rows):
        value: dict[str, Any] = {
            name: sa.bindparam(_parameter(name, row), type_=table.c[name].type)
            for name in sorted(columns)
        }
        if stamps is not None:
            value["createdAt"] = value["updatedAt"] = advanced_stamp(stamps, row)
        values.append(value)
    stmt = _insert_statement(table, dialect.name).values(values)
    if stamps is not None:
        stmt = stmt.add_cte(stamps)
    compiled = stmt.compile(dialect=dialect)
    expected = {_parameter(name, row) for name in columns for row in range(rows)}
    if stamps is not None:
        expected |= {"clock_key", "clock_n", "clock_now"}
    if compiled.escaped_bind_names or set(compiled.binds) != expected:
        return None
    return compiled


def _parameter(column: str, row: int) -> str:
    """The name of the parameter of ``column`` in row ``row`` of an insert."""
    return f"{column}__{row}"


def _column_of(parameter: str) -> str:
    return parameter.rsplit("__", 1)[0]


def _bind_processor(
    kind: sa.types.TypeEngine[Any], dialect: sa.Dialect
) -> Callable[[Any], Any] | None:
    """The bind processor of a column type."""
    return kind.dialect_impl(dialect).bind_processor(dialect)


def _result_processor(
    kind: sa.types.TypeEngine[Any], dialect: sa.Dialect, result_type: Any = None
) -> Callable[[Any], Any] | None:
    """The result processor of a column type for the driver's ``result_type``.

    SQLite's driver reports no types: ``None`` there.
    """
    return kind.dialect_impl(dialect).result_processor(dialect, result_type)


def update(
    conn: Connection,
    state: TableState,
    view: ColumnElement[bool],
    item_id: str,
    changes: dict[str, Any],
    pre: Preconditions,
    *,
    include_deleted: bool,
    strict: bool,
    on_conflict: ConflictResolver | None = None,
) -> Outcome:
    """Update ``item_id`` with ``changes`` if the preconditions hold, in ONE statement.

    On zero rows the current row is read (locked) to tell 404, 410, 412 or 409 apart; with
    ``on_conflict`` a 409/412 is resolved inside this transaction instead of reported.
    """
    table = state.table
    base = [table.c.id == item_id, view]
    if not include_deleted:
        base.append(table.c.deleted == sa.false())
    # The statement is built before the stamp: taking the stamp locks the table's clock row
    # until commit, and SQLAlchemy's building is the slow part of the write.
    stmt = _update_statement(conn, table, [*base, *pre.sql(table)], changes)
    stamp = stamp_datetime(next_stamp(conn, state.config.key, strict=strict))
    row = _run_update(conn, table, stmt, stamp, item_id)
    if row is not None:
        return Outcome(200, row, written=True)
    current = read_row(conn, state, view, item_id, lock=True)
    if current is None:
        return Outcome(404, None, written=False)
    if current["deleted"] and not include_deleted:
        return Outcome(410, current, written=False)
    status = pre.failure(current, write=True) or 409
    if on_conflict is None:
        return Outcome(status, current, written=False)
    resolved = on_conflict(current)
    if resolved is None:
        return Outcome(200, current, written=False)
    retry = _update_statement(conn, table, [*base, table.c.version == current["version"]], resolved)
    row = _run_update(conn, table, retry, stamp, item_id)
    return Outcome(200, row, written=True) if row else Outcome(409, current, written=False)


def _update_statement(
    conn: Connection,
    table: sa.Table,
    where: Sequence[ColumnElement[bool]],
    changes: dict[str, Any],
) -> Any:
    """The UPDATE of ``changes``; ``updatedAt`` and ``version`` come as execute parameters.

    The values of ``changes`` go in as anonymous parameters: a parameter named after its
    column would clash with the WHERE clause's generated names for a user column such as
    ``id_1`` or ``version_1``. The two stamped columns are reserved names, so theirs cannot.
    """
    values = {
        name: _anonymous(table, name, value)
        for name, value in changes.items()
        if name not in _STAMPED
    }
    stmt = table.update().where(*where).values(values)
    return stmt.returning(*table.c) if conn.dialect.update_returning else stmt


_STAMPED = frozenset({"updatedAt", "version"})


def _anonymous(table: sa.Table, name: str, value: Any) -> Any:
    column = table.c.get(name)
    return value if column is None else sa.bindparam(None, value, type_=column.type)


def _run_update(
    conn: Connection, table: sa.Table, stmt: Any, stamp: dt.datetime, item_id: str
) -> Row | None:
    params = {"updatedAt": stamp, "version": new_version()}
    if conn.dialect.update_returning:
        return conn.execute(stmt, params).mappings().first()
    if conn.execute(stmt, params).rowcount == 0:
        return None
    return conn.execute(sa.select(table).where(table.c.id == item_id)).mappings().first()


def hard_delete(
    conn: Connection,
    state: TableState,
    view: ColumnElement[bool],
    item_id: str,
    pre: Preconditions,
    *,
    on_conflict: ConflictResolver | None = None,
) -> Outcome:
    """Remove ``item_id`` for good (tables without soft delete), if the preconditions hold."""
    table = state.table
    base = [table.c.id == item_id, view]
    if conn.execute(table.delete().where(*base, *pre.sql(table))).rowcount:
        return Outcome(204, None, written=True)
    current = read_row(conn, state, view, item_id, lock=True)
    if current is None:
        return Outcome(404, None, written=False)
    status = pre.failure(current, write=True) or 409
    if on_conflict is None:
        return Outcome(status, current, written=False)
    if on_conflict(current) is None:
        return Outcome(200, current, written=False)
    conn.execute(table.delete().where(*base))
    return Outcome(204, None, written=True)


def purge_deleted(conn: Connection, table: sa.Table, before: dt.datetime) -> int:
    """Delete tombstones last written before ``before``; returns how many were removed."""
    stmt = table.delete().where(table.c.deleted == sa.true(), table.c.updatedAt < before)
    return int(conn.execute(stmt).rowcount)
